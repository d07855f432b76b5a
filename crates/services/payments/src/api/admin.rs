//! The operators' views of payments under `/admin` (the admin role only): every payment a page
//! at a time, one payment's ledger, and the ledger's totals in one currency. They read what the
//! money movements wrote and change nothing.

use axum::extract::State;
use flotilla_chassis::extract::{Path, Query};
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::{Admin, Currency, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PaymentsState;
use crate::contract::{LedgerEntry, Payment, PaymentStatus, PaymentSummary};
use crate::domain::PaymentId;
use crate::error::PaymentsError;

/// Largest page of the admin list.
const MAX_PAGE_SIZE: u32 = 100;

/// The admin routes, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<PaymentsState> {
    OpenApiRouter::new()
        .routes(routes!(admin_list))
        .routes(routes!(admin_ledger))
        .routes(routes!(admin_summary))
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
        .map_err(PaymentsError::from)?;
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
) -> Result<axum::Json<Vec<LedgerEntry>>, PaymentsError> {
    let id = PaymentId::parse(&id).ok_or(PaymentsError::UnknownPayment)?;
    if state.store.payment(&id).await?.is_none() {
        return Err(PaymentsError::UnknownPayment);
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
        .map_err(PaymentsError::from)?;
    Ok(axum::Json(summary))
}
