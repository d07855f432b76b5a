//! Admin routes every event-using service gets (admin role only): its outbox backlog, its
//! consumer's counters, and its dead letters with replay.

use axum::extract::State;
use serde::Serialize;
use sqlx::Row;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::consumer::{Consumer, ConsumerCounts, DeliveryError, Outcome};
use super::relay::{RelayCounts, RelayStats};
use crate::caller::Admin;
use crate::clock::{SharedClock, rfc3339};
use crate::db::Db;
use crate::extract::{Path, Query};
use crate::pagination::{Page, PageParams};
use crate::problem::Problem;

/// What the admin routes read.
#[derive(Clone)]
pub struct EventsAdmin {
    /// The service's database.
    pub db: Db,
    /// The clock (for backlog ages).
    pub clock: SharedClock,
    /// The relay's counters, when the service publishes.
    pub relay: Option<Arc<RelayStats>>,
    /// The consumer, when the service consumes.
    pub consumer: Option<Arc<Consumer>>,
}

/// The outbox backlog.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxReport {
    /// Events not yet published.
    pub pending: u64,
    /// Pending events whose last publish attempt failed.
    pub failing: u64,
    /// Age of the oldest pending event, in ms (0 when none).
    pub oldest_pending_ms: i64,
    /// Published events still retained.
    pub published_retained: u64,
    /// The relay's counters since start.
    pub relay: Option<RelayCounts>,
    /// The consumer's counters since start (handled, duplicates, failures, dead letters).
    pub consumer: Option<ConsumerCounts>,
}

/// A parked event.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    /// The event id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Failed deliveries.
    pub attempts: i64,
    /// The last failure.
    pub last_error: String,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
    /// The event as received (up to 64 KiB shown).
    pub event: String,
}

/// The result of a replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    /// The event id.
    pub event_id: String,
    /// `handled` or `duplicate` (it had been handled meanwhile).
    pub outcome: Outcome,
}

/// The routes, to merge into a service's API.
pub fn routes(admin: EventsAdmin) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(outbox))
        .routes(routes!(dead_letters))
        .routes(routes!(replay))
        .with_state(admin)
}

/// The service's outbox backlog and event counters.
#[utoipa::path(get, path = "/admin/outbox", tag = "admin", security(("bearerAuth" = ["admin"])),
    responses((status = 200, body = OutboxReport), (status = 401), (status = 403)))]
async fn outbox(
    _: Admin,
    State(admin): State<EventsAdmin>,
) -> Result<axum::Json<OutboxReport>, Problem> {
    let row = sqlx::query(
        "SELECT
            COUNT(CASE WHEN published_at IS NULL THEN 1 END) AS pending,
            COUNT(CASE WHEN published_at IS NULL AND attempts > 0 THEN 1 END) AS failing,
            MIN(CASE WHEN published_at IS NULL THEN occurred_at END) AS oldest,
            COUNT(CASE WHEN published_at IS NOT NULL THEN 1 END) AS published
         FROM outbox",
    )
    .fetch_one(admin.db.pool())
    .await?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    let count = |name: &str| -> Result<u64, sqlx::Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
    };
    Ok(axum::Json(OutboxReport {
        pending: count("pending")?,
        failing: count("failing")?,
        oldest_pending_ms: oldest
            .map(|t| (admin.clock.now_millis() - t).max(0))
            .unwrap_or(0),
        published_retained: count("published")?,
        relay: admin.relay.as_ref().map(|r| r.snapshot()),
        consumer: admin.consumer.as_ref().map(|c| c.stats().snapshot()),
    }))
}

/// Events this service failed to handle `max_deliveries` times, newest first.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "admin", security(("bearerAuth" = ["admin"])), params(PageParams),
    responses((status = 200, body = Page<DeadLetter>), (status = 400), (status = 401), (status = 403)))]
async fn dead_letters(
    _: Admin,
    State(admin): State<EventsAdmin>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<Page<DeadLetter>>, Problem> {
    let page = params.validate(100)?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
        .fetch_one(admin.db.pool())
        .await?;
    let rows = sqlx::query(
        "SELECT event_id, event_type, attempts, last_error, parked_at, event FROM dead_letters
         ORDER BY parked_at DESC, event_id LIMIT $1 OFFSET $2",
    )
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(admin.db.pool())
    .await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let event: String = row.try_get("event")?;
            Ok(DeadLetter {
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                attempts: row.try_get("attempts")?,
                last_error: row.try_get("last_error")?,
                parked_at: rfc3339(row.try_get("parked_at")?),
                event: event.chars().take(64 * 1024).collect(),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page {
        items,
        total: u64::try_from(total).unwrap_or(0),
        page: page.page,
        page_size: page.page_size,
    }))
}

/// Runs a dead letter's handler again; on success it leaves the dead letters.
#[utoipa::path(post, path = "/admin/dead-letters/{event_id}/replay", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(("event_id" = String, Path, description = "The parked event's id")),
    responses((status = 200, body = ReplayResult), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn replay(
    _: Admin,
    State(admin): State<EventsAdmin>,
    Path(event_id): Path<String>,
) -> Result<axum::Json<ReplayResult>, Problem> {
    let Some(consumer) = &admin.consumer else {
        return Err(Problem::not_found("this service consumes no events"));
    };
    match consumer.replay(&event_id).await {
        Ok(outcome) => Ok(axum::Json(ReplayResult { event_id, outcome })),
        Err(DeliveryError::NotParked(_)) => Err(Problem::not_found(format!(
            "no dead letter {}",
            crate::input_message::quote(&event_id)
        ))),
        Err(DeliveryError::Failed { message, .. }) => Err(Problem::conflict(format!(
            "the handler failed again: {message}"
        ))),
        Err(DeliveryError::Storage(err)) => Err(err.into()),
    }
}
