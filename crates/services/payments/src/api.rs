//! The payments service's HTTP API: thin handlers and their OpenAPI description.
//!
//! The money movements and the reads under `/payments` are for other services only (the orders
//! saga) and are tagged `internal`, so the gateway never exposes them; every money movement
//! requires an `Idempotency-Key`. The operator's views live under `/admin` and need the admin
//! role. Errors become problem+json in [`crate::error`].

use axum::extract::State;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::extract::{Json, Path, Query};
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::{Admin, Currency, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::PaymentsConfig;
use crate::contract::{
    AuthorizeRequest, DeclineProblem, LedgerEntry, Payment, PaymentStatus, PaymentSummary,
};
use crate::domain::{PaymentId, Transition};
use crate::error::PaymentError;
use crate::idempotency::{Answer, IdempotencyKey};
use crate::operations::{self, Authorization};
use crate::store::PaymentStore;

/// Largest page of the admin list.
const MAX_PAGE_SIZE: u32 = 100;

/// What the handlers share.
#[derive(Clone)]
pub struct PaymentsState {
    /// The service's tables.
    pub store: PaymentStore,
    /// Stamps payments, ledger entries and keys.
    pub clock: SharedClock,
    /// Limits.
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
        .routes(routes!(admin_list))
        .routes(routes!(admin_ledger))
        .routes(routes!(admin_summary))
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
        (status = 402, description = "The card was declined (`card-declined`); a payment with status `declined` was recorded", body = DeclineProblem, content_type = "application/problem+json"),
        (status = 409, description = "The key was used with different parameters (`idempotency-conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid order id, amount, currency or card (`invalid-card`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The processor failed (`processing-error`); nothing recorded, retry with the same key", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(order_id = %request.order_id, key = %key.as_str()))]
async fn authorize(
    State(state): State<PaymentsState>,
    key: IdempotencyKey,
    Json(request): Json<AuthorizeRequest>,
) -> Result<Answer, PaymentError> {
    let auth = Authorization::parse(&request, state.config.max_amount_minor)?;
    operations::authorize(&state.store, state.clock.now_millis(), &key, auth).await
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
) -> Result<axum::Json<Vec<Payment>>, PaymentError> {
    let payments = state.store.for_order(&query.order_id).await?;
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
) -> Result<axum::Json<Payment>, PaymentError> {
    let id = PaymentId::parse(&id).ok_or(PaymentError::UnknownPayment)?;
    let payment = state.store.payment(&id).await?;
    let payment = payment.ok_or(PaymentError::UnknownPayment)?;
    Ok(axum::Json(payment.to_contract()))
}

async fn run_transition(
    state: &PaymentsState,
    key: &IdempotencyKey,
    id: &str,
    transition: Transition,
) -> Result<Answer, PaymentError> {
    let now = state.clock.now_millis();
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
) -> Result<Answer, PaymentError> {
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
) -> Result<Answer, PaymentError> {
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
) -> Result<Answer, PaymentError> {
    run_transition(&state, &key, &id, Transition::Refund).await
}

/// `?page=&page_size=&status=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AdminListParams {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Payments per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Only payments in this status.
    status: Option<PaymentStatus>,
}

/// All payments, newest first (admin).
#[utoipa::path(
    get,
    path = "/admin/payments",
    tag = "payments", security(("bearerAuth" = ["admin"])),
    params(AdminListParams),
    responses(
        (status = 200, description = "One page of payments", body = Page<Payment>),
        (status = 400, description = "Bad paging parameters or unknown status", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.user_id))]
async fn admin_list(
    State(state): State<PaymentsState>,
    Admin(admin): Admin,
    Query(params): Query<AdminListParams>,
) -> Result<axum::Json<Page<Payment>>, Problem> {
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .validate(MAX_PAGE_SIZE)?;
    let (items, total) = state
        .store
        .list(params.status, page)
        .await
        .map_err(PaymentError::from)?;
    Ok(axum::Json(Page {
        items: items.iter().map(|p| p.to_contract()).collect(),
        total,
        page: page.page,
        page_size: page.page_size,
    }))
}

/// The ledger entries of one payment (admin).
#[utoipa::path(
    get,
    path = "/admin/payments/{id}/ledger",
    tag = "payments", security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path, description = "The payment id")),
    responses(
        (status = 200, description = "The payment's money movements, oldest first", body = Vec<LedgerEntry>),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.user_id, payment_id = %id))]
async fn admin_ledger(
    State(state): State<PaymentsState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<LedgerEntry>>, PaymentError> {
    let id = PaymentId::parse(&id).ok_or(PaymentError::UnknownPayment)?;
    if state.store.payment(&id).await?.is_none() {
        return Err(PaymentError::UnknownPayment);
    }
    Ok(axum::Json(state.store.ledger(&id).await?))
}

/// `?currency=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SummaryParams {
    /// ISO 4217 code of the totals (default EUR).
    #[param(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
}

/// The ledger's totals and the payment counts in one currency (admin).
#[utoipa::path(
    get,
    path = "/admin/summary",
    tag = "payments", security(("bearerAuth" = ["admin"])),
    params(SummaryParams),
    responses(
        (status = 200, description = "Totals in minor units and counts per status", body = PaymentSummary),
        (status = 400, description = "Not a currency code", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.user_id))]
async fn admin_summary(
    State(state): State<PaymentsState>,
    Admin(admin): Admin,
    Query(params): Query<SummaryParams>,
) -> Result<axum::Json<PaymentSummary>, Problem> {
    let currency = match params.currency.as_deref() {
        None => Currency::EUR,
        Some(code) => Currency::parse(code).map_err(|e| Problem::bad_request(e.to_string()))?,
    };
    let summary = state
        .store
        .summary(currency)
        .await
        .map_err(PaymentError::from)?;
    Ok(axum::Json(summary))
}
