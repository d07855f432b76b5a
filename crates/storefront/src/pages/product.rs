//! `GET /product/{id}`: one product with its add-to-cart form. The cart's form handler renders
//! this page again, with a notice, when the quantity typed cannot be added.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Caller;
use std::sync::Arc;

use crate::error::PageError;
use crate::forms;
use crate::shop::Shop;
use crate::views::{ProductPage, render};

/// The product page.
#[tracing::instrument(skip(shop, caller))]
pub async fn product(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Response {
    match forms::product_id(&id) {
        Some(id) => page(&shop, caller.as_ref(), &id, None, StatusCode::OK).await,
        None => PageError::NotFound.page(shop.chrome(caller.as_ref()).await),
    }
}

/// The page of product `id` with `status`, and `notice` above it when an action failed.
pub async fn page(
    shop: &Shop,
    caller: Option<&Caller>,
    id: &ProductId,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let id = id.to_string();
    let (chrome, product, stock, shipping) = tokio::join!(
        shop.chrome(caller),
        shop.catalog.product(&id),
        shop.stock(&id),
        shop.shipping_estimate(1, None),
    );
    let mut chrome = chrome;
    let product = match product {
        Ok(product) => product,
        Err(error) => return PageError::from_lookup(error).page(chrome),
    };
    if stock.is_none() || shipping.is_none() {
        chrome.degraded = true;
    }
    let category_name = chrome
        .category_name(&product.category)
        .unwrap_or(&product.category)
        .to_owned();
    let page = ProductPage {
        chrome,
        product,
        category_name,
        notice,
        stock,
        shipping,
    };
    render(status, &page)
}
