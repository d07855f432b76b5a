//! The cart's HTTP API: four routes on the caller's own cart, three internal ones with which
//! orders claims it for a checkout, releases it, and says the order was confirmed, and their
//! OpenAPI description. Errors become problem+json in [`crate::error`].
//!
//! There is no route that takes a user id: the cart is always the caller's (`Caller`, 401
//! without one), so a user can neither read nor change anyone else's. Every answer that shows a
//! cart prices it from the catalog at that moment ([`crate::pricing`]). A change is made only
//! after the catalog has answered for every product the reply will show, so a catalog outage is
//! a 503 that leaves the cart untouched.

use axum::extract::State;
use axum::http::StatusCode;
use flotilla_catalog::contract::ProductId;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::extract::{Json, Path};
use flotilla_chassis::{Caller, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::CartConfig;
use crate::contract::{
    Cart, CheckoutClaim, ClaimedCart, MAX_CLAIM_TTL_SECS, SetQuantity, TakenOrder, TakenOut,
};
use crate::domain::{self, OrderId, ProductSnapshot, QuantityChange};
use crate::error::CartError;
use crate::pricing::Pricer;
use crate::store::{CartStore, ClaimOutcome, SetOutcome};

#[derive(Clone)]
pub struct CartState {
    pub store: CartStore,
    /// Where prices come from.
    pub pricer: Pricer,
    /// Stamps `added_at` / `updated_at`.
    pub clock: SharedClock,
    /// Limits on a cart.
    pub config: CartConfig,
}

/// The routes, with their OpenAPI description.
pub fn routes(state: CartState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(get_cart, clear_cart))
        .routes(routes!(set_quantity, remove_line))
        .routes(routes!(claim_cart, release_claim))
        .routes(routes!(take_out_order))
        .with_state(state)
}

/// The caller's cart, priced now.
#[utoipa::path(
    get,
    path = "/",
    tag = "cart", security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The caller's cart with current prices", body = Cart),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The catalog is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
async fn get_cart(
    State(state): State<CartState>,
    caller: Caller,
) -> Result<axum::Json<Cart>, CartError> {
    let cart = state
        .pricer
        .priced_cart(&state.store, &caller.user_id, ProductSnapshot::default())
        .await?;
    Ok(axum::Json(cart))
}

/// Empties the caller's cart. Checkout does not need it: the products of a confirmed order
/// leave the cart by themselves (`order.confirmed`), and lines added since stay.
#[utoipa::path(
    delete,
    path = "/",
    tag = "cart", security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "The cart is empty"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
async fn clear_cart(
    State(state): State<CartState>,
    caller: Caller,
) -> Result<StatusCode, CartError> {
    state
        .store
        .clear(&caller.user_id, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets how many of a product the caller's cart holds; quantity 0 removes the line.
#[utoipa::path(
    put,
    path = "/items/{product_id}",
    tag = "cart", security(("bearerAuth" = [])),
    params(("product_id" = String, Path, description = "The catalog's product id", example = "p0000042")),
    request_body = SetQuantity,
    responses(
        (status = 200, description = "The updated cart", body = Cart),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The cart already holds `max_lines` products", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Quantity missing, negative or above `max_quantity`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The catalog is unavailable; nothing was changed", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, product_id = %product_id))]
async fn set_quantity(
    State(state): State<CartState>,
    caller: Caller,
    Path(product_id): Path<String>,
    Json(body): Json<SetQuantity>,
) -> Result<axum::Json<Cart>, CartError> {
    // An id that is not a catalog id names no product: no need to ask.
    let product_id = ProductId::parse(&product_id).ok_or(CartError::UnknownProduct)?;
    let change = QuantityChange::parse(body.quantity, state.config.max_quantity)?;
    let user_id = caller.user_id.as_str();
    let before = state.store.lines(user_id).await?;
    let snapshot = match change {
        QuantityChange::Remove => {
            let snapshot = state.pricer.snapshot_before_change(&before, None).await?;
            let now = state.clock.now();
            state.store.remove(user_id, product_id, now).await?;
            snapshot
        }
        QuantityChange::Set(quantity) => {
            let snapshot = state
                .pricer
                .snapshot_before_change(&before, Some(&product_id))
                .await?;
            if snapshot.get(product_id).is_none() {
                return Err(CartError::UnknownProduct);
            }
            let max = state.config.max_lines;
            let now = state.clock.now();
            let outcome = state
                .store
                .set_quantity(user_id, product_id, quantity, max, now)
                .await?;
            if outcome == SetOutcome::CartFull {
                return Err(CartError::CartFull { max });
            }
            snapshot
        }
    };
    let cart = state
        .pricer
        .priced_cart(&state.store, user_id, snapshot)
        .await?;
    Ok(axum::Json(cart))
}

/// Removes a product from the caller's cart; removing one that is not there is not an error.
#[utoipa::path(
    delete,
    path = "/items/{product_id}",
    tag = "cart", security(("bearerAuth" = [])),
    params(("product_id" = String, Path, description = "The catalog's product id", example = "p0000042")),
    responses(
        (status = 200, description = "The updated cart", body = Cart),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The catalog is unavailable; nothing was changed", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, product_id = %product_id))]
async fn remove_line(
    State(state): State<CartState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> Result<axum::Json<Cart>, CartError> {
    let user_id = caller.user_id.as_str();
    let before = state.store.lines(user_id).await?;
    let snapshot = state.pricer.snapshot_before_change(&before, None).await?;
    // An id that names no product cannot be in the cart either: removing it is a no-op.
    if let Some(product_id) = ProductId::parse(&product_id) {
        state
            .store
            .remove(user_id, product_id, state.clock.now())
            .await?;
    }
    let cart = state
        .pricer
        .priced_cart(&state.store, user_id, snapshot)
        .await?;
    Ok(axum::Json(cart))
}

/// Claims the caller's cart for one order's checkout (orders calls it before storing the
/// order), so that of any number of concurrent checkouts of the same lines one order is placed.
#[utoipa::path(
    put,
    path = "/claims/{order_id}",
    tag = "internal",
    params(("order_id" = String, Path, description = "The order being placed")),
    request_body = CheckoutClaim,
    responses(
        (status = 200, description = "The cart is claimed for this order (now or already)", body = ClaimedCart),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cart-claimed` (another order's checkout is running) or `cart-changed` (the lines changed since `version`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An odd order id or `ttl_secs`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, order_id = %order_id))]
async fn claim_cart(
    State(state): State<CartState>,
    caller: Caller,
    Path(order_id): Path<String>,
    Json(body): Json<CheckoutClaim>,
) -> Result<axum::Json<ClaimedCart>, CartError> {
    let order = OrderId::parse(&order_id).map_err(|_| CartError::OrderId)?;
    if !(1..=MAX_CLAIM_TTL_SECS).contains(&body.ttl_secs) {
        return Err(CartError::ClaimTtl);
    }
    // A version no cart can reach is simply not the current one.
    let version = i64::try_from(body.version).unwrap_or(-1);
    let now = state.clock.now();
    // Within `MAX_CLAIM_TTL_SECS`, checked above.
    let ttl = time::Duration::seconds(i64::try_from(body.ttl_secs).unwrap_or(i64::MAX));
    let expires_at = now.saturating_add(ttl);
    let outcome = state
        .store
        .claim(&caller.user_id, order.as_str(), version, expires_at, now)
        .await?;
    match outcome {
        ClaimOutcome::Claimed => {
            tracing::info!(version = body.version, "cart claimed for checkout");
            Ok(axum::Json(ClaimedCart {
                order_id: order.as_str().to_owned(),
                version: body.version,
                expires_at,
            }))
        }
        ClaimOutcome::HeldByAnother => Err(CartError::Claimed),
        ClaimOutcome::Changed => Err(CartError::Changed),
    }
}

/// Ends an order's claim on the caller's cart, leaving the lines as they are: orders calls it
/// when the order was not placed after all, or was cancelled (`order.cancelled` does the same,
/// later). A claim held by another order, or none, is left alone.
#[utoipa::path(
    delete,
    path = "/claims/{order_id}",
    tag = "internal",
    params(("order_id" = String, Path, description = "The order whose claim ends")),
    responses(
        (status = 204, description = "The order holds no claim on the cart (any more)"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, order_id = %order_id))]
async fn release_claim(
    State(state): State<CartState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<StatusCode, CartError> {
    // An id that cannot be an order's holds no claim.
    if let Ok(order) = OrderId::parse(&order_id) {
        state
            .store
            .release_now(&caller.user_id, order.as_str())
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a confirmed order's lines out of the caller's cart and ends its claim: orders says so
/// as soon as the saga confirms within the checkout request, so the customer's next checkout
/// does not wait for `order.confirmed` (which does the same, and then nothing, later).
#[utoipa::path(
    post,
    path = "/claims/{order_id}/taken",
    tag = "internal",
    params(("order_id" = String, Path, description = "The confirmed order")),
    request_body = TakenOrder,
    responses(
        (status = 200, description = "The order's lines are out of the cart (by this call, or before)", body = TakenOut),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An odd order id, or a line whose product id is not a catalog id", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, order_id = %order_id))]
async fn take_out_order(
    State(state): State<CartState>,
    caller: Caller,
    Path(order_id): Path<String>,
    Json(body): Json<TakenOrder>,
) -> Result<axum::Json<TakenOut>, CartError> {
    let order = OrderId::parse(&order_id).map_err(|_| CartError::OrderId)?;
    let changes: Vec<_> =
        domain::ordered_changes(body.lines.iter().map(|l| (l.product_id, l.quantity))).collect();
    let taken = state
        .store
        .take_out_order_now(&caller.user_id, order.as_str(), &changes, state.clock.now())
        .await?;
    Ok(axum::Json(TakenOut { taken }))
}
