//! The inventory's HTTP API: stock levels (public reads, admin writes), reservations (internal:
//! for the checkout saga, not for end users) and the admin views in [`admin`].
//!
//! Handlers are thin: parse the request into domain types (422 for what breaks a rule, 404 for
//! an id that cannot exist), call the store, map its outcome to a status. The rules themselves
//! live in the store's conditional updates, so they hold however many requests race.

mod admin;

use axum::extract::State;
use axum::http::StatusCode;
use flotilla_catalog::contract::ProductId;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::extract::{Json, Path};
use flotilla_chassis::idempotency_key::IdempotencyKey;
use flotilla_chassis::{Admin, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::contract::{Reservation, ReserveRequest, SetStock, StockLevel};
use crate::domain::{self, Lines, ReservationId, ReservationLimits, StockAmount};
use crate::error::InventoryError;
use crate::store::{InventoryStore, ReserveOutcome, Transition};

#[derive(Clone)]
pub struct InventoryState {
    pub store: InventoryStore,
    /// Stamps reservations and decides when they expire.
    pub clock: SharedClock,
    /// Limits on a reservation.
    pub limits: ReservationLimits,
    /// How long a reservation is held when the request does not say.
    pub default_ttl_secs: u64,
}

/// The routes, with their OpenAPI description.
pub fn routes(state: InventoryState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(get_stock, set_stock))
        .routes(routes!(reserve))
        .routes(routes!(get_reservation))
        .routes(routes!(commit))
        .routes(routes!(release))
        .merge(admin::routes())
        .with_state(state)
}

type Answer<T> = Result<axum::Json<T>, InventoryError>;

/// A reservation id from a path: one that could not exist is simply not found.
fn path_reservation_id(raw: &str) -> Result<ReservationId, InventoryError> {
    ReservationId::parse(raw).map_err(|_| InventoryError::UnknownReservation)
}

/// How many units of a product can still be reserved. Public: anyone may ask.
#[utoipa::path(
    get,
    path = "/stock/{product_id}",
    tag = "inventory",
    params(("product_id" = String, Path, description = "The catalog's product id: `p` and seven digits, not all zero", pattern = "^p([1-9][0-9]{6}|0[1-9][0-9]{5}|00[1-9][0-9]{4}|000[1-9][0-9]{3}|0000[1-9][0-9]{2}|00000[1-9][0-9]|000000[1-9])$", example = "p0000042")),
    responses(
        (status = 200, description = "The product's stock level", body = StockLevel),
        (status = 404, description = "No stock is kept for this product", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip(state))]
async fn get_stock(
    State(state): State<InventoryState>,
    Path(product_id): Path<String>,
) -> Answer<StockLevel> {
    // An id the catalog could not hold has no stock either.
    let product = ProductId::parse(&product_id).ok_or(InventoryError::UnknownProduct)?;
    let available = state
        .store
        .available(product)
        .await?
        .ok_or(InventoryError::UnknownProduct)?;
    Ok(axum::Json(StockLevel {
        product_id: product,
        available,
    }))
}

/// Sets how many units of a product can be reserved (admins only), creating its stock if there
/// was none. Units held by reservations are not affected.
#[utoipa::path(
    put,
    path = "/stock/{product_id}",
    tag = "inventory", security(("bearerAuth" = ["admin"])),
    params(("product_id" = String, Path, description = "The catalog's product id: `p` and seven digits, not all zero", pattern = "^p([1-9][0-9]{6}|0[1-9][0-9]{5}|00[1-9][0-9]{4}|000[1-9][0-9]{3}|0000[1-9][0-9]{2}|00000[1-9][0-9]|000000[1-9])$", example = "p0000042")),
    request_body = SetStock,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A product id that cannot exist, or `available` outside 0..=1e9", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip(state, admin, body), fields(admin = %admin.0.user_id))]
async fn set_stock(
    State(state): State<InventoryState>,
    admin: Admin,
    Path(product_id): Path<String>,
    Json(body): Json<SetStock>,
) -> Answer<StockLevel> {
    let product = domain::product_id(&product_id, "product_id")?;
    let amount = StockAmount::parse(body.available)?;
    state
        .store
        .set_available(product, amount, state.clock.now())
        .await?;
    tracing::info!(available = amount.get(), "stock set");
    Ok(axum::Json(StockLevel {
        product_id: product,
        available: amount.get(),
    }))
}

/// Holds stock for every line, or for none. Idempotent by `reservation_id`: repeating a
/// reservation returns it as it is now.
#[utoipa::path(
    post,
    path = "/reservations",
    tag = "internal",
    request_body = ReserveRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "If sent, must equal `reservation_id`")),
    responses(
        (status = 201, description = "The stock is held", body = Reservation),
        (status = 200, description = "This reservation was already made with the same lines; it is returned as it is now (possibly committed or released)", body = Reservation),
        (status = 400, description = "Malformed JSON or a bad Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out-of-stock` (nothing was reserved) or `reservation-conflict` (the id is taken by different lines)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id, lines, quantities or ttl", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(reservation_id = %request.reservation_id))]
async fn reserve(
    State(state): State<InventoryState>,
    key: Option<IdempotencyKey>,
    Json(request): Json<ReserveRequest>,
) -> Result<(StatusCode, axum::Json<Reservation>), InventoryError> {
    let id = ReservationId::parse(&request.reservation_id)?;
    if key.is_some_and(|key| key.as_str() != id.as_str()) {
        return Err(InventoryError::IdempotencyKey(
            "must equal the reservation_id of the body",
        ));
    }
    let lines = Lines::parse(&request.lines, state.limits)?;
    let ttl = domain::ttl(request.ttl_secs, state.default_ttl_secs)?;
    let now = state.clock.now();
    match state
        .store
        .reserve(&id, &lines, now, now.saturating_add(ttl))
        .await?
    {
        ReserveOutcome::Created(r) => Ok((StatusCode::CREATED, axum::Json(r.to_contract()))),
        ReserveOutcome::Replayed(r) => Ok((StatusCode::OK, axum::Json(r.to_contract()))),
        ReserveOutcome::Conflict => {
            Err(InventoryError::ReservationConflict(id.as_str().to_owned()))
        }
        ReserveOutcome::OutOfStock(products) => Err(InventoryError::OutOfStock(products)),
    }
}

/// A reservation as it is now.
#[utoipa::path(
    get,
    path = "/reservations/{id}",
    tag = "internal",
    params(("id" = String, Path, description = "The reservation id")),
    responses(
        (status = 200, description = "The reservation", body = Reservation),
        (status = 404, description = "No such reservation", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip(state))]
async fn get_reservation(
    State(state): State<InventoryState>,
    Path(id): Path<String>,
) -> Answer<Reservation> {
    let id = path_reservation_id(&id)?;
    let record = state
        .store
        .reservation(&id)
        .await?
        .ok_or(InventoryError::UnknownReservation)?;
    Ok(axum::Json(record.to_contract()))
}

/// Makes a held reservation's units sold for good. Idempotent; a reservation past its expiry is
/// released instead and cannot be committed.
#[utoipa::path(
    post,
    path = "/reservations/{id}/commit",
    tag = "internal",
    params(("id" = String, Path, description = "The reservation id")),
    responses(
        (status = 200, description = "The reservation is committed (now or before)", body = Reservation),
        (status = 404, description = "No such reservation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`reservation-released`: it was released or has expired", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip(state))]
async fn commit(
    State(state): State<InventoryState>,
    Path(id): Path<String>,
) -> Answer<Reservation> {
    let id = path_reservation_id(&id)?;
    match state.store.commit(&id, state.clock.now()).await? {
        Transition::Reached(r) => Ok(axum::Json(r.to_contract())),
        Transition::Blocked(r) => Err(InventoryError::ReservationReleased {
            id: id.as_str().to_owned(),
            reason: r.released_reason.unwrap_or_default(),
        }),
        Transition::NotFound => Err(InventoryError::UnknownReservation),
    }
}

/// Gives a held reservation's units back to stock. Idempotent; a compensation that finds no
/// reservation (404) has nothing to release.
#[utoipa::path(
    post,
    path = "/reservations/{id}/release",
    tag = "internal",
    params(("id" = String, Path, description = "The reservation id")),
    responses(
        (status = 200, description = "The reservation is released (now or before)", body = Reservation),
        (status = 404, description = "No such reservation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`reservation-committed`: its units are sold", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip(state))]
async fn release(
    State(state): State<InventoryState>,
    Path(id): Path<String>,
) -> Answer<Reservation> {
    let id = path_reservation_id(&id)?;
    match state.store.release(&id, state.clock.now()).await? {
        Transition::Reached(r) => Ok(axum::Json(r.to_contract())),
        Transition::Blocked(_) => Err(InventoryError::ReservationCommitted(id.as_str().to_owned())),
        Transition::NotFound => Err(InventoryError::UnknownReservation),
    }
}
