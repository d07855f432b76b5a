//! The operators' views (admin role only): sagas with their logs, every order by status, and
//! the summary the ops console and the load tests read.

use axum::extract::State;
use flotilla_chassis::extract::{Path, Query};
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::{Admin, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{MAX_PAGE_SIZE, OrdersState};
use crate::contract::{Order, OrderStatus, OrdersSummary, SagaView};
use crate::error::OrdersError;
use crate::saga::Phase;
use crate::store::OrderFilter;

pub fn routes() -> OpenApiRouter<OrdersState> {
    OpenApiRouter::new()
        .routes(routes!(list_sagas))
        .routes(routes!(get_saga))
        .routes(routes!(list_all_orders))
        .routes(routes!(summary))
}

/// `?status=&page=&page_size=` for sagas.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SagaFilterParams {
    /// Only sagas in this phase; any other value is a 400.
    #[param(schema_with = phase_schema)]
    status: Option<String>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Items per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// `?status=&page=&page_size=` for orders (an unknown status is a 400 from the extractor).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OrderFilterParams {
    /// Only orders with this status.
    status: Option<OrderStatus>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Items per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// The phases `?status=` accepts for sagas, as the document lists them.
fn phase_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Phase::ALL.map(Phase::as_str)))
        .description(Some("Only sagas in this phase."))
        .build()
}

fn paging(page: Option<u32>, page_size: Option<u32>) -> PageParams {
    PageParams { page, page_size }
}

/// Checkout sagas, most recently changed first, each with its log.
#[utoipa::path(get, path = "/admin/sagas", tag = "admin", security(("bearerAuth" = ["admin"])), params(SagaFilterParams),
    responses(
        (status = 200, description = "One page of sagas", body = Page<SagaView>),
        (status = 400, description = "Unknown status or invalid paging", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn list_sagas(
    _: Admin,
    State(state): State<OrdersState>,
    Query(params): Query<SagaFilterParams>,
) -> Result<axum::Json<Page<SagaView>>, OrdersError> {
    let page = paging(params.page, params.page_size)
        .validate(MAX_PAGE_SIZE)
        .map_err(bad_query)?;
    let phase = match params.status.as_deref() {
        None => None,
        Some(s) => Some(
            Phase::parse(s)
                .ok_or_else(|| OrdersError::BadQuery(format!("unknown status {s:?}")))?,
        ),
    };
    Ok(axum::Json(state.store.saga_views(phase, page).await?))
}

/// One order's saga with its log.
#[utoipa::path(get, path = "/admin/sagas/{order_id}", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(("order_id" = String, Path, description = "The order id")),
    responses(
        (status = 200, description = "The saga", body = SagaView),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saga", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
async fn get_saga(
    _: Admin,
    State(state): State<OrdersState>,
    Path(order_id): Path<String>,
) -> Result<axum::Json<SagaView>, OrdersError> {
    let view = state.store.saga_view(&order_id).await?;
    view.map(axum::Json).ok_or(OrdersError::NotFound)
}

/// Every user's orders, newest first.
#[utoipa::path(get, path = "/admin/orders", tag = "admin", security(("bearerAuth" = ["admin"])), params(OrderFilterParams),
    responses(
        (status = 200, description = "One page of orders", body = Page<Order>),
        (status = 400, description = "Unknown status or invalid paging", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn list_all_orders(
    _: Admin,
    State(state): State<OrdersState>,
    Query(params): Query<OrderFilterParams>,
) -> Result<axum::Json<Page<Order>>, OrdersError> {
    let page = paging(params.page, params.page_size)
        .validate(MAX_PAGE_SIZE)
        .map_err(bad_query)?;
    let filter = OrderFilter {
        user_id: None,
        status: params.status,
    };
    Ok(axum::Json(state.store.orders(filter, page).await?))
}

/// Orders per status and the money confirmed orders brought in.
#[utoipa::path(get, path = "/admin/summary", tag = "admin", security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, description = "The summary", body = OrdersSummary),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn summary(
    _: Admin,
    State(state): State<OrdersState>,
) -> Result<axum::Json<OrdersSummary>, OrdersError> {
    Ok(axum::Json(state.store.summary().await?))
}

fn bad_query(problem: Problem) -> OrdersError {
    OrdersError::BadQuery(problem.detail.unwrap_or_default())
}
