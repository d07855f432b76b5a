//! `GET /`: the featured products. Nothing on it is critical: a catalog outage leaves a page
//! with the header, a notice and a hint instead of an error.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use flotilla_chassis::Caller;
use std::sync::Arc;

use crate::shop::Shop;
use crate::views::{HomePage, render};

/// The home page.
#[tracing::instrument(skip_all)]
pub async fn home(State(shop): State<Arc<Shop>>, caller: Option<Caller>) -> Response {
    let (mut chrome, featured) = tokio::join!(shop.chrome(caller.as_ref()), shop.featured());
    if featured.is_none() {
        chrome.degraded = true;
    }
    let products = featured.unwrap_or_default();
    render(StatusCode::OK, &HomePage { chrome, products })
}
