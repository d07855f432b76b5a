//! Admin routes every event-using service gets (admin role only): its outbox backlog, its
//! consumer's counters, and its dead letters: list, replay one, replay all (a bounded batch per
//! call), discard one with a reason. Every replay and discard is written to the audit trail
//! ([`crate::audit`]) with the admin who asked.
//!
//! Replays go through [`Consumer::replay`], which records the event in the inbox in the same
//! transaction as its handler's writes, so a replay racing another replay, a redelivery or a
//! discard handles the event at most once.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::consumer::{Consumer, ConsumerCounts, DeliveryError, Outcome};
use super::discard::{Discarded, discard};
use super::relay::{RelayCounts, RelayStats};
use crate::audit::{self, NewAudit};
use crate::caller::Admin;
use crate::clock::{SharedClock, rfc3339};
use crate::db::Db;
use crate::extract::{Json, Path, Query};
use crate::input_message::quote;
use crate::pagination::{Page, PageParams};
use crate::problem::Problem;

/// Most dead letters one `POST /admin/dead-letters/replay` replays: each replay runs a handler
/// in its own transaction, so the call's length is bounded, not the backlog's.
pub const MAX_REPLAY_BATCH: u32 = 100;

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

/// `?limit=` of a replay of all dead letters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayAllParams {
    /// Most dead letters this call replays (default and most 100); call again while
    /// `remaining` is above zero.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A dead letter a replay could not handle.
#[derive(Debug, Serialize, ToSchema)]
pub struct StillFailing {
    /// The event id.
    pub event_id: String,
    /// Why its handler failed again.
    pub error: String,
}

/// The result of replaying a batch of dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayAllResult {
    /// Handled by this call and gone from the dead letters.
    pub replayed: u64,
    /// Found handled meanwhile (a redelivery or another replay got there first): gone too.
    pub duplicates: u64,
    /// Failed again; still parked.
    pub still_failing: Vec<StillFailing>,
    /// Dead letters left after this call (the still failing ones included).
    pub remaining: u64,
}

/// `DELETE /admin/dead-letters/{event_id}`: why the event is given up on.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DiscardRequest {
    /// Why the event will never be handled (required, at most 1000 characters); kept in the
    /// audit trail.
    #[schema(
        example = "test event published by mistake",
        min_length = 1,
        max_length = 1000,
        pattern = r"\S"
    )]
    pub reason: String,
}

/// The routes, to merge into a service's API.
pub fn routes(admin: EventsAdmin) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(outbox))
        .routes(routes!(dead_letters))
        .routes(routes!(replay))
        .routes(routes!(replay_all))
        .routes(routes!(discard_one))
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
    caller: Admin,
    State(admin): State<EventsAdmin>,
    Path(event_id): Path<String>,
) -> Result<axum::Json<ReplayResult>, Problem> {
    let Some(consumer) = &admin.consumer else {
        return Err(Problem::not_found("this service consumes no events"));
    };
    let entry = NewAudit::done(&caller, "dead_letter.replay", &event_id);
    match consumer.replay(&event_id).await {
        Ok(outcome) => {
            let detail = outcome.name();
            audit::record_alone(&admin.db, &entry.with_detail(detail), admin.clock.now()).await?;
            Ok(axum::Json(ReplayResult { event_id, outcome }))
        }
        Err(DeliveryError::NotParked(_)) => Err(Problem::not_found(format!(
            "no dead letter {}",
            quote(&event_id)
        ))),
        Err(DeliveryError::Failed { message, .. }) => {
            let why = format!("the handler failed again: {message}");
            audit::record_alone(&admin.db, &entry.refused(&why), admin.clock.now()).await?;
            Err(Problem::conflict(why))
        }
        Err(DeliveryError::Storage(err)) => Err(err.into()),
    }
}

/// Replays the dead letters, least-tried first, at most `limit` per call: those handled leave
/// the dead letters, those failing again stay (tried once more, so the next call reaches others
/// first).
#[utoipa::path(post, path = "/admin/dead-letters/replay", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(ReplayAllParams),
    responses(
        (status = 200, description = "What the batch came to", body = ReplayAllResult),
        (status = 400, description = "Invalid limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This service consumes no events", body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay_all(
    caller: Admin,
    State(admin): State<EventsAdmin>,
    Query(params): Query<ReplayAllParams>,
) -> Result<axum::Json<ReplayAllResult>, Problem> {
    let Some(consumer) = &admin.consumer else {
        return Err(Problem::not_found("this service consumes no events"));
    };
    let limit = params.limit.unwrap_or(MAX_REPLAY_BATCH);
    if !(1..=MAX_REPLAY_BATCH).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_REPLAY_BATCH}"
        )));
    }
    let batch: Vec<String> = sqlx::query_scalar(
        "SELECT event_id FROM dead_letters ORDER BY attempts, parked_at, event_id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(admin.db.pool())
    .await?;
    let mut result = ReplayAllResult {
        replayed: 0,
        duplicates: 0,
        still_failing: Vec::new(),
        remaining: 0,
    };
    for event_id in batch {
        match consumer.replay(&event_id).await {
            Ok(Outcome::Handled) => result.replayed += 1,
            Ok(_) => result.duplicates += 1,
            // Replayed or discarded by someone else since the batch was read.
            Err(DeliveryError::NotParked(_)) => {}
            Err(DeliveryError::Failed { message, .. }) => result.still_failing.push(StillFailing {
                event_id,
                error: message,
            }),
            Err(DeliveryError::Storage(err)) => return Err(err.into()),
        }
    }
    let remaining: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
        .fetch_one(admin.db.pool())
        .await?;
    result.remaining = u64::try_from(remaining).unwrap_or(0);
    let detail = format!(
        "replayed {}, duplicates {}, still failing {}, remaining {}",
        result.replayed,
        result.duplicates,
        result.still_failing.len(),
        result.remaining
    );
    let entry = NewAudit::done(&caller, "dead_letter.replay_all", "*").with_detail(&detail);
    audit::record_alone(&admin.db, &entry, admin.clock.now()).await?;
    Ok(axum::Json(result))
}

/// Gives up on a dead letter: it leaves the dead letters, is marked settled (a redelivery is a
/// duplicate, never handled), and the audit trail keeps the reason and the event.
#[utoipa::path(delete, path = "/admin/dead-letters/{event_id}", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(("event_id" = String, Path, description = "The parked event's id")),
    request_body = DiscardRequest,
    responses(
        (status = 204, description = "Discarded"),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason given, or a reason too long", body = Problem, content_type = "application/problem+json"),
    ))]
async fn discard_one(
    caller: Admin,
    State(admin): State<EventsAdmin>,
    Path(event_id): Path<String>,
    Json(body): Json<DiscardRequest>,
) -> Result<StatusCode, Problem> {
    let reason = audit::operator_note("reason", &body.reason, "say why")
        .map_err(|e| Problem::invalid_fields(vec![e]))?;
    let entry = NewAudit::done(&caller, "dead_letter.discard", &event_id).with_note(Some(reason));
    match discard(&admin.db, entry, admin.clock.now()).await? {
        Discarded::Done => Ok(StatusCode::NO_CONTENT),
        Discarded::NotParked => Err(Problem::not_found(format!(
            "no dead letter {}",
            quote(&event_id)
        ))),
    }
}
