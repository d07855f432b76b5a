//! The publishing side: a service's [`Outbox`] writes events into its own `outbox` table inside
//! the business transaction, then wakes the relay.

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::db::Db;
use crate::request_context;
use crate::telemetry::{Span, SpanKind};

/// An event to publish: its type, payload schema version and payload.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What happened, e.g. `order.confirmed`.
    pub event_type: &'static str,
    /// Payload schema version.
    pub version: u32,
    /// The payload.
    pub payload: serde_json::Value,
}

impl NewEvent {
    /// An event with `payload` serialised to JSON.
    pub fn new(
        event_type: &'static str,
        version: u32,
        payload: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_type,
            version,
            payload: serde_json::to_value(payload)?,
        })
    }
}

/// A service's outbox: append inside a transaction, then [`Outbox::wake`] after commit.
#[derive(Clone)]
pub struct Outbox {
    source: &'static str,
    db: Db,
    clock: SharedClock,
    wake: Arc<Wake>,
}

/// How an outbox wakes its relay: a notification, and a count of wake-ups so that the relay can
/// tell a wake-up it has already covered (one that came before its last read of the outbox)
/// from a new one.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    count: AtomicU64,
}

impl Wake {
    fn wake(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Wake-ups so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Completes at the next wake-up, or at once if one came since the last completed wait.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// The outbox of service `source` in `db`.
    pub fn new(source: &'static str, db: Db, clock: SharedClock) -> Self {
        Self {
            source,
            db,
            clock,
            wake: Arc::new(Wake::default()),
        }
    }

    /// Writes `event` into the outbox on `conn` — pass the business transaction, so that the
    /// event is stored if and only if the state change commits. Returns the event id.
    pub async fn append(
        &self,
        conn: &mut sqlx::AnyConnection,
        event: NewEvent,
    ) -> Result<String, sqlx::Error> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = self.clock.now_millis();
        // The producer span: the event's context, whose child each consumer's span will be.
        let traceparent = request_context::current_trace().map(|context| {
            let publish = context.child();
            let mut span = Span::start(
                SpanKind::Producer,
                format!("publish {}", event.event_type),
                self.source,
                publish,
                Some(context.span_id),
            );
            if span.is_recording() {
                span.set("messaging.system", "flotilla");
                span.set("messaging.operation.type", "create");
                span.set("messaging.destination.name", event.event_type);
                span.set("messaging.message.id", id.clone());
            }
            publish.to_header()
        });
        sqlx::query(
            "INSERT INTO outbox (id, event_type, version, source, occurred_at, traceparent, payload,
                                 published_at, attempts, next_attempt_at, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0, $8, NULL)",
        )
        .bind(&id)
        .bind(event.event_type)
        .bind(i64::from(event.version))
        .bind(self.source)
        .bind(now)
        .bind(traceparent)
        .bind(event.payload.to_string())
        .bind(now)
        .execute(conn)
        .await?;
        Ok(id)
    }

    /// Tells the relay there is something to publish (call after the transaction commits; if
    /// forgotten, the relay's fallback pass still finds the rows, but only after its poll
    /// interval).
    pub fn wake(&self) {
        self.wake.wake();
    }

    /// The publishing service's name.
    pub fn source(&self) -> &'static str {
        self.source
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) fn waker(&self) -> Arc<Wake> {
        self.wake.clone()
    }
}
