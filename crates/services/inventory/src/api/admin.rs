//! The admin views of the inventory: reservations page by page, a summary of what is held and
//! sold (what the ops console and the tests read), and one expiry pass on demand.
//!
//! All take the `Admin` extractor (401 anonymous, 403 other roles). Running an expiry pass is
//! also internal: it exists so tests and operators can drive the expiry task deterministically.

use axum::extract::State;
use flotilla_chassis::extract::Query;
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::{Admin, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Answer, InventoryState};
use crate::contract::{ExpiryPass, InventorySummary, Reservation, ReservationStatus};

/// Largest page of reservations served.
const MAX_PAGE_SIZE: u32 = 100;

/// The admin routes (state supplied by [`super::routes`]).
pub fn routes() -> OpenApiRouter<InventoryState> {
    OpenApiRouter::new()
        .routes(routes!(list_reservations))
        .routes(routes!(summary))
        .routes(routes!(expire))
}

/// `?status=&page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only reservations in this status (`held`, `committed`, `released`); all when absent.
    status: Option<ReservationStatus>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Reservations per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// Reservations, newest first.
#[utoipa::path(
    get,
    path = "/admin/reservations",
    tag = "inventory", security(("bearerAuth" = ["admin"])),
    params(ListParams),
    responses(
        (status = 200, description = "One page of reservations", body = Page<Reservation>),
        (status = 400, description = "Bad paging parameters or an unknown status", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip(state, _admin))]
async fn list_reservations(
    State(state): State<InventoryState>,
    _admin: Admin,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<Reservation>>, Problem> {
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .validate(MAX_PAGE_SIZE)?;
    let (records, total) = state.store.list(params.status, page).await?;
    Ok(axum::Json(Page {
        items: records.iter().map(|r| r.to_contract()).collect(),
        total,
        page: page.page,
        page_size: page.page_size,
    }))
}

/// How many reservations are held, committed and released, and the units held and sold.
#[utoipa::path(
    get,
    path = "/admin/summary",
    tag = "inventory", security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, description = "Reservation counts and units", body = InventorySummary),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn summary(State(state): State<InventoryState>, _admin: Admin) -> Answer<InventorySummary> {
    Ok(axum::Json(state.store.summary().await?))
}

/// Runs one pass of the expiry task now: releases every held reservation past its expiry.
#[utoipa::path(
    post,
    path = "/admin/expire",
    tag = "internal", security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, description = "What the pass released", body = ExpiryPass),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn expire(State(state): State<InventoryState>, _admin: Admin) -> Answer<ExpiryPass> {
    let released = state.store.release_expired(state.clock.now()).await?;
    Ok(axum::Json(ExpiryPass { released }))
}
