//! The cart: showing it and the three forms that change it (add, set a quantity, remove).
//!
//! Every change is a POST answered with a 303 to `/cart`, so reloading the page never repeats
//! it. A change the cart refuses (an unknown product, a quantity out of range) shows the cart or
//! the product page again with a notice and a 4xx status: the visitor's mistake is never
//! presented as our outage. Anonymous visitors are sent to log in first.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use flotilla_chassis::Caller;
use flotilla_chassis::transport::ClientError;
use serde::Deserialize;
use std::sync::Arc;

use crate::error::PageError;
use crate::forms::{self, HtmlForm, Quantity};
use crate::pages::product;
use crate::session;
use crate::shop::Shop;
use crate::views::{CartPage, render};

/// The add-to-cart form on a product page.
#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    quantity: String,
}

/// The quantity form on a cart line.
#[derive(Debug, Deserialize)]
pub struct SetForm {
    #[serde(default)]
    quantity: String,
}

/// Shown when the product named does not exist (any more).
const UNKNOWN_PRODUCT: &str = "That product is not in our catalog any more.";

/// `GET /cart`.
#[tracing::instrument(skip_all)]
pub async fn show(State(shop): State<Arc<Shop>>, caller: Option<Caller>) -> Response {
    match caller {
        Some(caller) => page(&shop, &caller, None, StatusCode::OK).await,
        None => session::to_login("/cart"),
    }
}

/// `POST /cart/items`: add `quantity` of `product_id` to what the cart already holds.
#[tracing::instrument(skip_all)]
pub async fn add(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    HtmlForm(form): HtmlForm<AddForm>,
) -> Response {
    let id = forms::product_id(&form.product_id);
    let Some(caller) = caller else {
        return match id {
            Some(id) => session::to_login(&format!("/product/{id}")),
            None => session::to_login("/cart"),
        };
    };
    let Some(id) = id else {
        return page(&shop, &caller, Some(UNKNOWN_PRODUCT), StatusCode::NOT_FOUND).await;
    };
    let more = match Quantity::parse_positive(&form.quantity) {
        Ok(more) => more,
        Err(error) => {
            let notice = Some(error.to_string());
            return product::page(
                &shop,
                Some(&caller),
                &id,
                notice,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    // The cart sets quantities, so adding is read-then-set; two tabs adding at the same moment
    // may lose one addition, which a shopper notices and fixes on the cart page.
    let cart = match shop.cart.get(&caller).await {
        Ok(cart) => cart,
        Err(error) => return PageError::from(error).page(shop.chrome(Some(&caller)).await),
    };
    let held = cart
        .items
        .iter()
        .find(|line| line.product_id == id)
        .map_or(0, |line| line.quantity);
    let quantity = Quantity::capped(held).add_capped(more);
    match shop
        .cart
        .set_quantity(&caller, &id.to_string(), quantity.get())
        .await
    {
        Ok(_) => Redirect::to("/cart").into_response(),
        Err(error) => match refusal(&error) {
            Some(Refusal::UnknownProduct) => {
                page(&shop, &caller, Some(UNKNOWN_PRODUCT), StatusCode::NOT_FOUND).await
            }
            Some(Refusal::Quantity) => {
                let notice = Some(QUANTITY_REFUSED.to_owned());
                product::page(
                    &shop,
                    Some(&caller),
                    &id,
                    notice,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            None => PageError::from(error).page(shop.chrome(Some(&caller)).await),
        },
    }
}

/// `POST /cart/items/{id}`: set a line's quantity (0 removes it).
#[tracing::instrument(skip(shop, caller, form))]
pub async fn set(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<SetForm>,
) -> Response {
    let Some(caller) = caller else {
        return session::to_login("/cart");
    };
    let Some(id) = forms::product_id(&id) else {
        return page(&shop, &caller, Some(UNKNOWN_PRODUCT), StatusCode::NOT_FOUND).await;
    };
    let quantity = match Quantity::parse(&form.quantity) {
        Ok(quantity) => quantity,
        Err(error) => {
            let notice = error.to_string();
            return page(
                &shop,
                &caller,
                Some(&notice),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match shop
        .cart
        .set_quantity(&caller, &id.to_string(), quantity.get())
        .await
    {
        Ok(_) => Redirect::to("/cart").into_response(),
        Err(error) => match refusal(&error) {
            Some(Refusal::UnknownProduct) => {
                page(&shop, &caller, Some(UNKNOWN_PRODUCT), StatusCode::NOT_FOUND).await
            }
            Some(Refusal::Quantity) => {
                page(
                    &shop,
                    &caller,
                    Some(QUANTITY_REFUSED),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            None => PageError::from(error).page(shop.chrome(Some(&caller)).await),
        },
    }
}

/// `POST /cart/items/{id}/remove`: remove a line.
#[tracing::instrument(skip(shop, caller))]
pub async fn remove(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Response {
    let Some(caller) = caller else {
        return session::to_login("/cart");
    };
    // A line that is not there (any more) is as removed as it gets.
    let Some(id) = forms::product_id(&id) else {
        return Redirect::to("/cart").into_response();
    };
    match shop.cart.remove(&caller, &id.to_string()).await {
        Ok(_) => Redirect::to("/cart").into_response(),
        Err(error) if error.is_not_found() => Redirect::to("/cart").into_response(),
        Err(error) => PageError::from(error).page(shop.chrome(Some(&caller)).await),
    }
}

/// Shown when the cart refuses a quantity the form let through.
const QUANTITY_REFUSED: &str = "You can have at most 99 of one product in your cart.";

/// The refusals of the cart a visitor can act on.
enum Refusal {
    /// 404: the product does not exist.
    UnknownProduct,
    /// 400 or 422: the quantity is out of range.
    Quantity,
}

fn refusal(error: &ClientError) -> Option<Refusal> {
    match error.status()? {
        StatusCode::NOT_FOUND => Some(Refusal::UnknownProduct),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Some(Refusal::Quantity),
        _ => None,
    }
}

/// The cart page with `status`, and `notice` above it when a change failed. The cart is the
/// critical call; the header's categories load beside it and the cart count comes from it.
pub async fn page(
    shop: &Shop,
    caller: &Caller,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let (categories, cart) = tokio::join!(shop.categories(), shop.cart.get(caller));
    let chrome = shop.bare_chrome(Some(caller)).with_categories(categories);
    let cart = match cart {
        Ok(cart) => cart,
        Err(error) => return PageError::from(error).page(chrome),
    };
    let shipping = shop
        .shipping_estimate(cart.item_count, Some(cart.total))
        .await;
    let shipping_unavailable = cart.item_count > 0 && shipping.is_none();
    let mut chrome = chrome.with_cart_count(Some(cart.item_count));
    chrome.degraded |= shipping_unavailable;
    let page = CartPage {
        chrome,
        cart,
        notice: notice.map(str::to_owned),
        shipping,
        shipping_unavailable,
    };
    render(status, &page)
}
