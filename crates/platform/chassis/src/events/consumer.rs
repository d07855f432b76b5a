//! The consuming side: a [`Consumer`] runs a service's handlers with exactly-once effect over
//! at-least-once delivery.
//!
//! Each delivery runs in one transaction that first inserts the event id into the service's
//! `inbox` (a duplicate is recognised and skipped there), then runs the handler, then commits.
//! A failed delivery is counted in `inbox_attempts`; at `max_deliveries` (or at once, for a
//! permanent failure) the event is parked in `dead_letters` and acknowledged, so one poison event
//! never blocks the ones behind it.
//!
//! Before any handler runs, the event's `source` is checked against the service that owns its
//! type (the [`Subscription`]'s `source`): a broker is shared, and any client on it can publish
//! on any subject, so an `order.confirmed` that says it comes from anyone but orders is refused
//! and parked at once, with the reason, instead of emptying a customer's cart.

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use utoipa::ToSchema;

use super::Event;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::request_context::{self, RequestContext};
use crate::telemetry::{self, Span, SpanKind};
use crate::trace_context::TraceParent;

/// A handler's failure: the delivery is retried, then parked; a permanent one is parked at once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    message: String,
    permanent: bool,
}

impl HandlerError {
    /// A failure described by `message`, which another delivery may not meet (storage, a peer).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure no redelivery can change (the event itself is wrong: a payload that does not
    /// decode, an id that breaks the rules): parked as a dead letter at its first delivery.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    /// Whether the failure is [`HandlerError::permanent`].
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        Self::new(format!("storage: {err}"))
    }
}

/// Handles one event type. The handler's writes go through `tx`, the same transaction that
/// records the event in the inbox, so the effect and the record commit together.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event`.
    fn handle<'a>(
        &'a self,
        tx: &'a mut sqlx::AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// One event type a service consumes and its handler.
#[derive(Clone)]
pub struct Subscription {
    /// The publishing service, e.g. `orders` (a broker keeps one stream per publisher).
    pub source: &'static str,
    /// The event type, e.g. `order.confirmed`.
    pub event_type: &'static str,
    /// The handler.
    pub handler: Arc<dyn EventHandler>,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The handler ran and its effect committed.
    Handled,
    /// The event had been handled before; nothing happened.
    Duplicate,
    /// This consumer does not subscribe to the event's type; nothing happened.
    Ignored,
    /// The event failed too often and is parked in `dead_letters`.
    DeadLettered,
}

impl Outcome {
    /// Its name in spans and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// Why a delivery did not complete (the sender retries).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The consumer's database failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    /// The handler failed; `attempt` deliveries have failed so far.
    #[error("attempt {attempt} failed: {message}")]
    Failed {
        /// Failed deliveries so far.
        attempt: i64,
        /// The handler's message.
        message: String,
    },
    /// A replay asked for an event that is not parked.
    #[error("no dead letter {0}")]
    NotParked(String),
}

/// Whether an inbox insert should refuse a parked event.
#[derive(Clone, Copy)]
enum InboxMode {
    /// A delivery: a parked event stays parked.
    UnlessParked,
    /// A replay of a parked event.
    Replay,
}

/// Counters of one consumer, reported on `/admin/outbox`.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    handled: AtomicU64,
    duplicates: AtomicU64,
    failures: AtomicU64,
    dead_lettered: AtomicU64,
}

/// A snapshot of [`ConsumerStats`].
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ConsumerCounts {
    /// Deliveries whose effect committed.
    pub handled: u64,
    /// Redeliveries recognised by the inbox (no second effect).
    pub duplicates: u64,
    /// Failed deliveries (each retried or parked).
    pub failures: u64,
    /// Events parked as dead letters.
    pub dead_lettered: u64,
}

impl ConsumerStats {
    /// The current counts.
    pub fn snapshot(&self) -> ConsumerCounts {
        ConsumerCounts {
            handled: self.handled.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
        }
    }
}

/// A service's consumer: its handlers, its inbox and its dead letters.
pub struct Consumer {
    service: &'static str,
    db: Db,
    clock: SharedClock,
    /// Handlers by event type, with the one service that publishes that type.
    handlers: HashMap<&'static str, (&'static str, Arc<dyn EventHandler>)>,
    /// Event types by publishing service, sorted (what a broker subscription asks for).
    sources: BTreeMap<&'static str, Vec<&'static str>>,
    max_deliveries: i64,
    stats: ConsumerStats,
    /// `flotilla_event_consumer_lag_seconds` per event type consumed (handles made once).
    lags: HashMap<&'static str, ::metrics::Histogram>,
}

impl Consumer {
    /// A consumer for `service` with `subscriptions`, parking events after `max_deliveries`.
    pub fn new(
        service: &'static str,
        db: Db,
        clock: SharedClock,
        subscriptions: Vec<Subscription>,
        max_deliveries: u32,
    ) -> Self {
        let mut sources: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
        for s in &subscriptions {
            sources.entry(s.source).or_default().push(s.event_type);
        }
        sources.values_mut().for_each(|types| types.sort_unstable());
        ::metrics::describe_histogram!(
            "flotilla_event_consumer_lag_seconds",
            ::metrics::Unit::Seconds,
            "Time from an event's occurrence to its handling by this consumer, by event type."
        );
        let lags = subscriptions
            .iter()
            .map(|s| {
                let lag = ::metrics::histogram!("flotilla_event_consumer_lag_seconds",
                    "service" => service, "event_type" => s.event_type);
                (s.event_type, lag)
            })
            .collect();
        let handlers = subscriptions
            .into_iter()
            .map(|s| (s.event_type, (s.source, s.handler)))
            .collect();
        Self {
            lags,
            service,
            db,
            clock,
            handlers,
            sources,
            max_deliveries: i64::from(max_deliveries.max(1)),
            stats: ConsumerStats::default(),
        }
    }

    /// The consuming service.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// True when this consumer subscribes to `event_type`.
    pub fn handles(&self, event_type: &str) -> bool {
        self.handlers.contains_key(event_type)
    }

    /// The event types consumed.
    pub fn event_types(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }

    /// The event types consumed, by the service that publishes them.
    pub fn event_types_by_source(&self) -> &BTreeMap<&'static str, Vec<&'static str>> {
        &self.sources
    }

    /// Counters.
    pub fn stats(&self) -> &ConsumerStats {
        &self.stats
    }

    /// [`Self::deliver`] as the next hop of the trace the event was published in: the handler
    /// runs in a consumer span, child of the publisher's, and its own calls and events carry
    /// the trace on (every bus delivers through here).
    pub async fn deliver_in_trace(&self, event: &Event) -> Result<Outcome, DeliveryError> {
        let parent = event.traceparent.as_deref().and_then(TraceParent::parse);
        let trace = parent.map_or_else(telemetry::new_root, |parent| parent.child());
        let mut span = Span::start(
            SpanKind::Consumer,
            format!("process {}", event.event_type),
            self.service,
            trace,
            parent.map(|p| p.span_id),
        );
        if span.is_recording() {
            span.set("messaging.system", "flotilla");
            span.set("messaging.operation.type", "process");
            span.set("messaging.destination.name", event.event_type.clone());
            span.set("messaging.message.id", event.id.clone());
        }
        let context = RequestContext {
            request_id: event.id.clone(),
            trace,
        };
        let delivered = request_context::scope(context, self.deliver(event)).await;
        match &delivered {
            Ok(outcome) => span.set("flotilla.outcome", (*outcome).name()),
            Err(err) => span.fail(err.to_string()),
        }
        delivered
    }

    /// Delivers `event` once. `Ok` means the sender may forget it; `Err` means retry later.
    pub async fn deliver(&self, event: &Event) -> Result<Outcome, DeliveryError> {
        let Some((owner, handler)) = self.handlers.get(event.event_type.as_str()) else {
            return Ok(Outcome::Ignored);
        };
        if let Some(refused) = wrong_source(event, owner) {
            return self.park(event, refused).await;
        }
        // Every statement is a round trip to SQLite's worker thread, so the common path is kept
        // to four: BEGIN, the inbox insert (which also refuses parked events), the handler's
        // writes, COMMIT. Attempt counters of events that failed before succeeding are left
        // behind; they are a few rows and never read again.
        let mut tx = self.db.pool().begin().await?;
        if !self
            .record_in_inbox(&mut tx, event, InboxMode::UnlessParked)
            .await?
        {
            // Asked on the transaction's connection rather than on a fresh one from the pool.
            let parked: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM dead_letters WHERE event_id = $1")
                    .bind(&event.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.rollback().await?;
            if parked.is_some() {
                return Ok(Outcome::DeadLettered);
            }
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::Duplicate);
        }
        match handler.handle(&mut tx, event).await {
            Ok(()) => {
                tx.commit().await?;
                self.stats.handled.fetch_add(1, Ordering::Relaxed);
                self.record_lag(event);
                Ok(Outcome::Handled)
            }
            Err(err) => {
                tx.rollback().await?;
                self.record_failure(event, &err).await
            }
        }
    }

    /// Records how long after it occurred `event` was handled.
    fn record_lag(&self, event: &Event) {
        let (Some(lag), Ok(at)) = (
            self.lags.get(event.event_type.as_str()),
            time::OffsetDateTime::parse(
                &event.time,
                &time::format_description::well_known::Rfc3339,
            ),
        ) else {
            return;
        };
        let lag_ms = self
            .clock
            .now_millis()
            .saturating_sub(crate::clock::millis(at))
            .max(0);
        lag.record(lag_ms as f64 / 1000.0);
    }

    /// Inserts the event into the inbox; false when it was there already (or, unless
    /// replaying, when it is parked as a dead letter).
    async fn record_in_inbox(
        &self,
        conn: &mut sqlx::AnyConnection,
        event: &Event,
        mode: InboxMode,
    ) -> Result<bool, sqlx::Error> {
        let sql = match mode {
            InboxMode::UnlessParked => {
                "INSERT INTO inbox (event_id, event_type, source, handled_at)
                 SELECT $1, $2, $3, $4
                 WHERE NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_id = $1)
                 ON CONFLICT (event_id) DO NOTHING"
            }
            InboxMode::Replay => {
                "INSERT INTO inbox (event_id, event_type, source, handled_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (event_id) DO NOTHING"
            }
        };
        let inserted = sqlx::query(sql)
            .bind(&event.id)
            .bind(&event.event_type)
            .bind(&event.source)
            .bind(self.clock.now_millis())
            .execute(conn)
            .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Parks `event` at once, with `reason`, without running a handler: for what no handler may
    /// see, such as an envelope that did not decode (the NATS reader's) or an event from the
    /// wrong source. An event of a type this consumer does not take is ignored, and one already
    /// handled or parked stays as it is.
    pub async fn park(
        &self,
        event: &Event,
        reason: impl Into<String>,
    ) -> Result<Outcome, DeliveryError> {
        if !self.handles(&event.event_type) {
            return Ok(Outcome::Ignored);
        }
        let handled: Option<i64> = sqlx::query_scalar("SELECT 1 FROM inbox WHERE event_id = $1")
            .bind(&event.id)
            .fetch_optional(self.db.pool())
            .await?;
        if handled.is_some() {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::Duplicate);
        }
        let parked: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM dead_letters WHERE event_id = $1")
                .bind(&event.id)
                .fetch_optional(self.db.pool())
                .await?;
        if parked.is_some() {
            return Ok(Outcome::DeadLettered);
        }
        self.record_failure(event, &HandlerError::permanent(reason))
            .await
    }

    async fn record_failure(
        &self,
        event: &Event,
        err: &HandlerError,
    ) -> Result<Outcome, DeliveryError> {
        let now = self.clock.now_millis();
        let message: String = err.to_string().chars().take(1000).collect();
        let mut tx = self.db.pool().begin().await?;
        let attempts: i64 = sqlx::query(
            "INSERT INTO inbox_attempts (event_id, attempts, last_error, updated_at) VALUES ($1, 1, $2, $3)
             ON CONFLICT (event_id) DO UPDATE SET attempts = inbox_attempts.attempts + 1,
                 last_error = excluded.last_error, updated_at = excluded.updated_at
             RETURNING attempts",
        )
        .bind(&event.id)
        .bind(&message)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        if attempts < self.max_deliveries && !err.is_permanent() {
            tx.commit().await?;
            tracing::warn!(service = self.service, event_id = %event.id, attempts, error = %message, "event delivery failed");
            return Err(DeliveryError::Failed {
                attempt: attempts,
                message,
            });
        }
        let json = serde_json::to_string(event).unwrap_or_default();
        sqlx::query(
            "INSERT INTO dead_letters (event_id, event, event_type, attempts, last_error, parked_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(json)
        .bind(&event.event_type)
        .bind(attempts)
        .bind(&message)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        tracing::error!(service = self.service, event_id = %event.id, attempts, error = %message, "event parked as a dead letter");
        Ok(Outcome::DeadLettered)
    }

    /// Runs a parked event's handler again; on success it leaves the dead letters.
    pub async fn replay(&self, event_id: &str) -> Result<Outcome, DeliveryError> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT event FROM dead_letters WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(self.db.pool())
                .await?;
        let text = row.ok_or_else(|| DeliveryError::NotParked(event_id.to_owned()))?;
        let event: Event = serde_json::from_str(&text).map_err(|e| DeliveryError::Failed {
            attempt: 0,
            message: format!("stored event unreadable: {e}"),
        })?;
        let (owner, handler) = self
            .handlers
            .get(event.event_type.as_str())
            .ok_or_else(|| DeliveryError::Failed {
                attempt: 0,
                message: format!("no handler for {} any more", event.event_type),
            })?;
        // A forged event stays parked: replaying it would apply it.
        if let Some(message) = wrong_source(&event, owner) {
            return Err(DeliveryError::Failed {
                attempt: 0,
                message,
            });
        }
        let mut tx = self.db.pool().begin().await?;
        let fresh = self
            .record_in_inbox(&mut tx, &event, InboxMode::Replay)
            .await?;
        if fresh && let Err(err) = handler.handle(&mut tx, &event).await {
            tx.rollback().await?;
            sqlx::query("UPDATE dead_letters SET attempts = attempts + 1, last_error = $2 WHERE event_id = $1")
                .bind(event_id)
                .bind(err.to_string())
                .execute(self.db.pool())
                .await?;
            return Err(DeliveryError::Failed {
                attempt: 0,
                message: err.to_string(),
            });
        }
        sqlx::query("DELETE FROM dead_letters WHERE event_id = $1")
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM inbox_attempts WHERE event_id = $1")
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if fresh {
            self.stats.handled.fetch_add(1, Ordering::Relaxed);
            Ok(Outcome::Handled)
        } else {
            Ok(Outcome::Duplicate)
        }
    }
}

/// Why `event` is refused, unless it comes from `owner`, the one service that publishes its type.
fn wrong_source(event: &Event, owner: &str) -> Option<String> {
    if event.source == owner {
        return None;
    }
    let claimed: String = event.source.chars().take(64).collect();
    Some(format!(
        "refused: {} events are published by {owner}, but this one names {claimed:?} as its source",
        event.event_type
    ))
}
