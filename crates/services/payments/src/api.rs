//! The payments service's HTTP API: thin handlers and their OpenAPI description.
//!
//! The money movements and the reads under `/payments`, here, are for other services only (the
//! orders saga) and are tagged `internal`, so the gateway never exposes them; every money
//! movement requires an `Idempotency-Key`. The operator's views live under `/admin` in
//! [`admin`] and need the admin role. Errors become problem+json in [`crate::error`].

mod admin;

use axum::extract::State;
use flotilla_chassis::Problem;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::extract::{Json, Path, Query};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::PaymentsConfig;
use crate::contract::{AuthorizeRequest, DeclineProblem, Payment};
use crate::domain::{OrderId, PaymentId, Transition};
use crate::error::PaymentsError;
use crate::idempotency::{Answer, IdempotencyKey};
use crate::operations::{self, Authorization};
use crate::store::PaymentsStore;

#[derive(Clone)]
pub struct PaymentsState {
    pub store: PaymentsStore,
    /// Stamps payments, ledger entries and keys.
    pub clock: SharedClock,
    pub config: PaymentsConfig,
}

/// The routes, with their OpenAPI description.
pub fn routes(state: PaymentsState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(authorize, for_order))
        .routes(routes!(get_payment))
        .routes(routes!(capture))
        .routes(routes!(void))
        .routes(routes!(refund))
        .merge(admin::routes())
        .with_state(state)
}

/// Authorizes an amount on a card. Declines are answers too: 402, recorded under the key.
#[utoipa::path(
    post,
    path = "/payments",
    tag = "internal",
    params(("Idempotency-Key" = String, Header, description = "1 to 200 visible ASCII characters; a retry with the same key and body replays the first answer")),
    request_body = AuthorizeRequest,
    responses(
        (status = 201, description = "Authorized", body = Payment),
        (status = 400, description = "Missing or invalid Idempotency-Key, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The card was declined (`card-declined`, with `decline_code`; a payment with status `declined` was recorded), or the processor failed on it (`processing-error`, no `decline_code`; nothing recorded, retry with the same key). A 402, as Stripe answers a card's processing error: it is about this card, not the service's health, so callers' circuit breakers do not count it", body = DeclineProblem, content_type = "application/problem+json"),
        (status = 409, description = "The key was used with different parameters (`idempotency-conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid order id, amount, currency or card (`invalid-card`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(order_id = %request.order_id, key = %key.as_str()))]
async fn authorize(
    State(state): State<PaymentsState>,
    key: IdempotencyKey,
    Json(request): Json<AuthorizeRequest>,
) -> Result<Answer, PaymentsError> {
    let auth = Authorization::parse(&request, state.config.max_amount_minor)?;
    operations::authorize(&state.store, state.clock.now(), &key, auth).await
}

/// `?order_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OrderQuery {
    /// The order whose payments to list.
    order_id: String,
}

/// The payments of an order, oldest first.
#[utoipa::path(
    get,
    path = "/payments",
    tag = "internal",
    params(OrderQuery),
    responses(
        (status = 200, description = "The order's payments (none is an empty list)", body = Vec<Payment>),
        (status = 400, description = "order_id missing", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(order_id = %query.order_id))]
async fn for_order(
    State(state): State<PaymentsState>,
    Query(query): Query<OrderQuery>,
) -> Result<axum::Json<Vec<Payment>>, PaymentsError> {
    // An id the provider would have refused to authorize has no payments.
    let Ok(order_id) = OrderId::parse(&query.order_id) else {
        return Ok(axum::Json(Vec::new()));
    };
    let payments = state.store.for_order(&order_id).await?;
    Ok(axum::Json(
        payments.iter().map(|p| p.to_contract()).collect(),
    ))
}

/// One payment.
#[utoipa::path(
    get,
    path = "/payments/{id}",
    tag = "internal",
    params(("id" = String, Path, description = "The payment id")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(payment_id = %id))]
async fn get_payment(
    State(state): State<PaymentsState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Payment>, PaymentsError> {
    let id = PaymentId::parse(&id).ok_or(PaymentsError::UnknownPayment)?;
    let payment = state.store.payment(&id).await?;
    let payment = payment.ok_or(PaymentsError::UnknownPayment)?;
    Ok(axum::Json(payment.to_contract()))
}

/// Runs `transition` on payment `id` under `key`, now.
async fn run_transition(
    state: &PaymentsState,
    key: &IdempotencyKey,
    id: &str,
    transition: Transition,
) -> Result<Answer, PaymentsError> {
    let now = state.clock.now();
    operations::transition(&state.store, now, key, id, transition).await
}

/// Captures the full authorized amount; a payment is captured at most once.
#[utoipa::path(
    post,
    path = "/payments/{id}/capture",
    tag = "internal",
    params(
        ("id" = String, Path, description = "The payment id"),
        ("Idempotency-Key" = String, Header, description = "A retry with the same key replays the first answer"),
    ),
    responses(
        (status = 200, description = "Captured", body = Payment),
        (status = 400, description = "Missing or invalid Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The capture was declined (`capture-declined`); the payment stays authorized", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already-captured`, `invalid-state` or `idempotency-conflict`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(payment_id = %id, key = %key.as_str()))]
async fn capture(
    State(state): State<PaymentsState>,
    key: IdempotencyKey,
    Path(id): Path<String>,
) -> Result<Answer, PaymentsError> {
    run_transition(&state, &key, &id, Transition::Capture).await
}

/// Releases an authorization; voiding a voided payment answers it as it is.
#[utoipa::path(
    post,
    path = "/payments/{id}/void",
    tag = "internal",
    params(
        ("id" = String, Path, description = "The payment id"),
        ("Idempotency-Key" = String, Header, description = "A retry with the same key replays the first answer"),
    ),
    responses(
        (status = 200, description = "Voided (now or before)", body = Payment),
        (status = 400, description = "Missing or invalid Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid-state` (a captured payment is refunded, not voided) or `idempotency-conflict`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(payment_id = %id, key = %key.as_str()))]
async fn void(
    State(state): State<PaymentsState>,
    key: IdempotencyKey,
    Path(id): Path<String>,
) -> Result<Answer, PaymentsError> {
    run_transition(&state, &key, &id, Transition::Void).await
}

/// Refunds a captured payment in full; refunding a refunded payment answers it as it is.
#[utoipa::path(
    post,
    path = "/payments/{id}/refund",
    tag = "internal",
    params(
        ("id" = String, Path, description = "The payment id"),
        ("Idempotency-Key" = String, Header, description = "A retry with the same key replays the first answer"),
    ),
    responses(
        (status = 200, description = "Refunded (now or before)", body = Payment),
        (status = 400, description = "Missing or invalid Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid-state` (only a captured payment is refunded) or `idempotency-conflict`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(payment_id = %id, key = %key.as_str()))]
async fn refund(
    State(state): State<PaymentsState>,
    key: IdempotencyKey,
    Path(id): Path<String>,
) -> Result<Answer, PaymentsError> {
    run_transition(&state, &key, &id, Transition::Refund).await
}
