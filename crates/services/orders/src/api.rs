//! The orders HTTP API: checkout and the caller's orders here, the operators' views in
//! [`admin`], their actions on sagas in [`saga_actions`], and the one place where errors become problem+json ([`crate::error`]).
//!
//! Handlers are thin: parse, call [`Checkout`] or the store, map to a status. A user sees only
//! their own orders: another user's order is a 404, exactly like an id that does not exist, so
//! ids cannot be probed (OWASP API1). Checkout answers 201 with an order its saga finished
//! within the request, 202 with a PENDING one, which the client polls (see [`crate::checkout`]).

mod admin;
mod saga_actions;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_chassis::extract::{Json, Path, Query};
use flotilla_chassis::idempotency_key::IdempotencyKey;
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::{Caller, Problem, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::checkout::Checkout;
use crate::contract::{CheckoutRequest, Order};
use crate::domain::OrderId;
use crate::error::OrdersError;
use crate::executor::Executor;
use crate::store::{OrderFilter, OrdersStore};

/// Largest page the list routes serve.
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Clone)]
pub struct OrdersState {
    pub checkout: Checkout,
    /// What the read routes read.
    pub store: OrdersStore,
    /// Runs the sagas an operator resumes.
    pub executor: Executor,
}

/// The routes, with their OpenAPI description.
pub fn routes(state: OrdersState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(checkout, list_orders))
        .routes(routes!(get_order))
        .merge(admin::routes())
        .merge(saga_actions::routes())
        .with_state(state)
}

/// Checks out the caller's cart: the order is stored PENDING and its saga reserves the stock,
/// authorizes the payment, creates the shipment, captures the payment and commits the stock.
#[utoipa::path(
    post,
    path = "/",
    tag = "orders", security(("bearerAuth" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$",
        description = "1 to 200 visible ASCII characters chosen per checkout; a repeat with the same body returns the same order")),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "The order, already CONFIRMED or CANCELLED", body = Order, headers(("Location" = String, description = "/api/orders/{id}"))),
        (status = 202, description = "The order, PENDING: poll it", body = Order, headers(("Location" = String, description = "/api/orders/{id}"))),
        (status = 400, description = "Missing or malformed Idempotency-Key, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency-conflict` (the key was used for another request), `product-unavailable`, `checkout-in-progress` (another checkout of this cart, with another key, is placing or running its order: a cart is checked out once) or `cart-changed` (the cart changed during checkout)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid address or card, `empty-cart`, `too-many-lines`, or a destination shipping refuses", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is down; nothing was stored", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
async fn checkout(
    State(state): State<OrdersState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<CheckoutRequest>,
) -> Result<Response, OrdersError> {
    let order = state.checkout.submit(&caller, &key, &req).await?;
    Ok(answer(order))
}

/// 201 with a terminal order, 202 with a pending one; `Location` names it either way.
fn answer(order: Order) -> Response {
    let status = if order.status.is_terminal() {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    // Order ids are `ord_` and hex digits, so the header value is always valid.
    match HeaderValue::from_str(&format!("/api/orders/{}", order.id)) {
        Ok(location) => (status, [(header::LOCATION, location)], axum::Json(order)).into_response(),
        Err(_) => (status, axum::Json(order)).into_response(),
    }
}

/// The caller's orders, newest first.
#[utoipa::path(
    get,
    path = "/",
    tag = "orders", security(("bearerAuth" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "One page of the caller's orders", body = Page<Order>),
        (status = 400, description = "Invalid paging", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
async fn list_orders(
    State(state): State<OrdersState>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<Page<Order>>, Problem> {
    let page = params.validate(MAX_PAGE_SIZE)?;
    let filter = OrderFilter {
        user_id: Some(&caller.user_id),
        status: None,
    };
    Ok(axum::Json(state.store.orders(filter, page).await?))
}

/// One of the caller's orders (admins may read any).
#[utoipa::path(
    get,
    path = "/{id}",
    tag = "orders", security(("bearerAuth" = [])),
    params(("id" = String, Path, description = "The order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, order_id = %id))]
async fn get_order(
    State(state): State<OrdersState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Order>, OrdersError> {
    let id = OrderId::parse(&id).ok_or(OrdersError::NotFound)?;
    let order = state
        .store
        .order(id.as_str())
        .await?
        .filter(|order| caller.role == Role::Admin || order.user_id == caller.user_id)
        .ok_or(OrdersError::NotFound)?;
    Ok(axum::Json(order))
}
