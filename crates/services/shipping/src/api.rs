//! Shipping's HTTP API: quotes for anyone (the storefront shows shipping costs), shipments for
//! other services (tagged `internal`, so the gateway never exposes them), and a paged list for
//! operators under `/admin`. Handlers stay thin: parse into domain types, price, ask the store.
//!
//! Creating a shipment is idempotent by order id, because the orders saga retries it after a
//! crash or a timeout: the same order with the same address and lines gets the shipment it
//! already has (200), whatever its status; anything else for that order is a 409.

use axum::extract::State;
use axum::http::StatusCode;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::extract::{Json, Path, Query};
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::{Admin, Problem};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::contract::{CreateShipment, Quote, QuoteRequest, Shipment, ShipmentStatus};
use crate::domain::pricing::RateCard;
use crate::domain::{NewShipment, OrderId, QuoteId, QuoteInput, ShipmentId};
use crate::error::ShippingError;
use crate::store::{CreateOutcome, QuoteRecord, ShippingStore};

/// Largest page the admin list serves.
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Clone)]
pub struct ShippingState {
    pub store: ShippingStore,
    pub rates: Arc<RateCard>,
    /// Stamps quotes and shipments, and decides whether a quote has expired.
    pub clock: SharedClock,
    /// How long a quote is honoured.
    pub quote_ttl: time::Duration,
}

/// The routes, with their OpenAPI description.
pub fn routes(state: ShippingState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_quote))
        .routes(routes!(get_quote))
        .routes(routes!(create_shipment, shipments_for_order))
        .routes(routes!(get_shipment))
        .routes(routes!(cancel_shipment))
        .routes(routes!(admin_list))
        .with_state(state)
}

fn quote_view(record: QuoteRecord) -> Quote {
    Quote {
        id: record.id.to_string(),
        country: record.country,
        amount: record.amount,
        expires_at: record.expires_at,
    }
}

/// Answers a repeated create with the order's shipment, or 409 when it is not a repeat.
fn settle(new: &NewShipment, existing: Shipment) -> Result<Shipment, ShippingError> {
    if new.repeats(&existing) {
        Ok(existing)
    } else {
        Err(ShippingError::Conflict(new.order_id.to_string()))
    }
}

/// Prices a parcel and stores the quote, honoured for `quote_ttl_secs`.
#[utoipa::path(post, path = "/quotes", tag = "shipping", request_body = QuoteRequest,
    responses(
        (status = 201, description = "The stored quote", body = Quote),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or `unsupported-destination`", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(country = %req.country, items = req.items))]
async fn create_quote(
    State(state): State<ShippingState>,
    Json(req): Json<QuoteRequest>,
) -> Result<(StatusCode, axum::Json<Quote>), ShippingError> {
    let input = QuoteInput::parse(&req).map_err(ShippingError::Invalid)?;
    let amount = state
        .rates
        .price(input.country, input.items, input.weight)
        .map_err(|source| ShippingError::Unsupported {
            field: "country",
            source,
        })?;
    let now = state.clock.now();
    let expires_at = now.saturating_add(state.quote_ttl);
    let record = state
        .store
        .insert_quote(&input, amount, now, expires_at)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(quote_view(record))))
}

/// A stored quote, expired or not (compare `expires_at`).
#[utoipa::path(get, path = "/quotes/{id}", tag = "shipping",
    params(("id" = String, Path, description = "The quote id")),
    responses(
        (status = 200, description = "The quote", body = Quote),
        (status = 404, description = "No such quote", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(level = "debug", skip(state))]
async fn get_quote(
    State(state): State<ShippingState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Quote>, ShippingError> {
    let id = QuoteId::parse(&id).ok_or(ShippingError::QuoteNotFound)?;
    let record = state
        .store
        .quote(&id)
        .await?
        .ok_or(ShippingError::QuoteNotFound)?;
    Ok(axum::Json(quote_view(record)))
}

/// Creates the shipment of an order, once. Postal code `00000` is the test address the carrier
/// always rejects (422 `carrier-rejected`, nothing stored).
#[utoipa::path(post, path = "/shipments", tag = "internal", request_body = CreateShipment,
    responses(
        (status = 201, description = "The new shipment", body = Shipment),
        (status = 200, description = "The order's existing shipment (a repeated request)", body = Shipment),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`shipment-conflict`: the order has a shipment to another address or with other lines", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, `unsupported-destination` or `carrier-rejected`", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = %req.order_id))]
async fn create_shipment(
    State(state): State<ShippingState>,
    Json(req): Json<CreateShipment>,
) -> Result<(StatusCode, axum::Json<Shipment>), ShippingError> {
    let new = NewShipment::parse(&req).map_err(ShippingError::Invalid)?;
    if new.carrier_rejects() {
        return Err(ShippingError::CarrierRejected);
    }
    // What the shipment costs without a quote (the store honours a valid one instead). A
    // destination that cannot be priced is refused, unless this is a repeat: a repeat needs no
    // pricing, and must succeed even if pricing would now refuse it.
    let otherwise = match state.rates.price(new.country, new.items, None) {
        Ok(otherwise) => otherwise,
        Err(source) => {
            if let Some(existing) = state.store.for_order(&new.order_id).await? {
                return Ok((StatusCode::OK, axum::Json(settle(&new, existing)?)));
            }
            return Err(ShippingError::Unsupported {
                field: "address.country",
                source,
            });
        }
    };
    let now = state.clock.now();
    match state.store.create_shipment(&new, otherwise, now).await? {
        CreateOutcome::Created(shipment) => {
            tracing::info!(shipment_id = %shipment.id, tracking = %shipment.tracking_number, "shipment created");
            Ok((StatusCode::CREATED, axum::Json(shipment)))
        }
        CreateOutcome::Existing(existing) => {
            Ok((StatusCode::OK, axum::Json(settle(&new, existing)?)))
        }
    }
}

/// `?order_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ForOrderParams {
    /// The order whose shipment to find.
    order_id: String,
}

/// The shipment of one order: a list of none or one.
#[utoipa::path(get, path = "/shipments", tag = "internal", params(ForOrderParams),
    responses(
        (status = 200, description = "The order's shipment, if it has one", body = Vec<Shipment>),
        (status = 400, description = "`order_id` missing", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(level = "debug", skip(state))]
async fn shipments_for_order(
    State(state): State<ShippingState>,
    Query(params): Query<ForOrderParams>,
) -> Result<axum::Json<Vec<Shipment>>, ShippingError> {
    // An id orders could never have sent has no shipment.
    let Some(order_id) = OrderId::parse(&params.order_id) else {
        return Ok(axum::Json(Vec::new()));
    };
    let found = state.store.for_order(&order_id).await?;
    Ok(axum::Json(found.into_iter().collect()))
}

/// One shipment.
#[utoipa::path(get, path = "/shipments/{id}", tag = "internal",
    params(("id" = String, Path, description = "The shipment id")),
    responses(
        (status = 200, description = "The shipment", body = Shipment),
        (status = 404, description = "No such shipment", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(level = "debug", skip(state))]
async fn get_shipment(
    State(state): State<ShippingState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Shipment>, ShippingError> {
    let id = ShipmentId::parse(&id).ok_or(ShippingError::ShipmentNotFound)?;
    let shipment = state
        .store
        .shipment(&id)
        .await?
        .ok_or(ShippingError::ShipmentNotFound)?;
    Ok(axum::Json(shipment))
}

/// Cancels a shipment (the saga's compensation); cancelling it again changes nothing.
#[utoipa::path(post, path = "/shipments/{id}/cancel", tag = "internal",
    params(("id" = String, Path, description = "The shipment id")),
    responses(
        (status = 200, description = "The cancelled shipment", body = Shipment),
        (status = 404, description = "No such shipment", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip(state))]
async fn cancel_shipment(
    State(state): State<ShippingState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Shipment>, ShippingError> {
    let id = ShipmentId::parse(&id).ok_or(ShippingError::ShipmentNotFound)?;
    let now = state.clock.now();
    let shipment = state
        .store
        .cancel(&id, now)
        .await?
        .ok_or(ShippingError::ShipmentNotFound)?;
    Ok(axum::Json(shipment))
}

/// `?page=&page_size=&status=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AdminListParams {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Shipments per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Only shipments with this status.
    status: Option<ShipmentStatus>,
}

/// All shipments, newest first, for operators.
#[utoipa::path(get, path = "/admin/shipments", tag = "shipping", security(("bearerAuth" = ["admin"])), params(AdminListParams),
    responses(
        (status = 200, description = "One page of shipments", body = Page<Shipment>),
        (status = 400, description = "Bad paging parameters or status", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip(state, _admin))]
async fn admin_list(
    State(state): State<ShippingState>,
    _admin: Admin,
    Query(params): Query<AdminListParams>,
) -> Result<axum::Json<Page<Shipment>>, Problem> {
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .validate(MAX_PAGE_SIZE)?;
    let (items, total) = state.store.list(params.status, page).await?;
    Ok(axum::Json(Page {
        items,
        total,
        page: page.page,
        page_size: page.page_size,
    }))
}
