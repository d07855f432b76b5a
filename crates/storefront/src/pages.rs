//! The pages, one module per area of the shop, and the routes that reach them.
//!
//! Each handler follows the same shape: start the page's critical call and its header
//! ([`Shop::chrome`]) concurrently, turn a failed critical call into an error page, render.

mod account;
mod browse;
mod cart;
mod checkout;
mod home;
mod orders;
mod product;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use flotilla_chassis::Caller;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;

use crate::error::PageError;
use crate::shop::Shop;

/// Every page of the shop. HTML pages are not part of the OpenAPI document.
pub fn routes() -> OpenApiRouter<Arc<Shop>> {
    OpenApiRouter::new()
        .route("/", get(home::home))
        .route("/category/{slug}", get(browse::category))
        .route("/search", get(browse::search))
        .route("/product/{id}", get(product::product))
        .route("/signup", get(account::signup_form).post(account::signup))
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", post(account::logout))
        .route("/cart", get(cart::show))
        .route("/cart/items", post(cart::add))
        .route("/cart/items/{id}", post(cart::set))
        .route("/cart/items/{id}/remove", post(cart::remove))
        .route("/checkout", get(checkout::show).post(checkout::place))
        .route("/orders", get(orders::history))
        .route("/orders/{id}", get(orders::show))
}

/// The router's fallback: any unknown path is a 404 page.
pub async fn not_found(State(shop): State<Arc<Shop>>, caller: Option<Caller>) -> Response {
    PageError::NotFound.page(shop.chrome(caller.as_ref()).await)
}
