//! The outbox relay: the background task that moves a service's outbox rows onto the bus.
//!
//! It wakes when the outbox says a transaction committed events, and also every
//! `poll_interval` (so rows left by a crash, or by a forgotten wake-up, still go out). Rows are
//! published oldest first; a row is marked published only after the bus accepted it. A failed
//! publish is retried with exponential backoff (capped), row by row, so one stuck event does not
//! hold back the others. Published rows are deleted after `retention`.

use serde::Serialize;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::Event;
use super::bus::SharedBus;
use super::outbox::Outbox;
use crate::clock::rfc3339;

/// Relay tuning; every value is documented in the README.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// Rows read per pass.
    pub batch: i64,
    /// Longest wait between passes when nothing wakes the relay, in ms.
    pub poll_interval_ms: u64,
    /// First retry delay after a failed publish, in ms (doubles per attempt).
    pub retry_base_ms: i64,
    /// Longest retry delay, in ms.
    pub retry_max_ms: i64,
    /// How long published rows are kept, in ms.
    pub retention_ms: i64,
    /// Failed deliveries after which a consumer parks an event as a dead letter.
    pub max_deliveries: u32,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 200,
            poll_interval_ms: 500,
            retry_base_ms: 100,
            retry_max_ms: 30_000,
            retention_ms: 24 * 3600 * 1000,
            max_deliveries: 5,
        }
    }
}

/// Counters of one relay, reported on `/admin/outbox`.
#[derive(Debug, Default)]
pub struct RelayStats {
    published: AtomicU64,
    failures: AtomicU64,
}

/// A snapshot of the relay's counters.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct RelayCounts {
    /// Events published since start.
    pub published: u64,
    /// Failed publish attempts since start.
    pub failures: u64,
}

impl RelayStats {
    /// The current counts.
    pub fn snapshot(&self) -> RelayCounts {
        RelayCounts {
            published: self.published.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// Moves one service's outbox to the bus.
pub struct Relay {
    outbox: Outbox,
    bus: SharedBus,
    settings: RelaySettings,
    stats: Arc<RelayStats>,
}

impl Relay {
    /// A relay for `outbox` onto `bus`.
    pub fn new(outbox: Outbox, bus: SharedBus, settings: RelaySettings) -> Self {
        Self {
            outbox,
            bus,
            settings,
            stats: Arc::new(RelayStats::default()),
        }
    }

    /// The relay's counters (shared with the admin routes).
    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown`: a pass at start (rows a crash left behind), then whenever woken
    /// or every poll interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.outbox.waker();
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        let mut passes: u64 = 0;
        loop {
            let moved = match self.pass().await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(service = self.outbox.source(), error = %err, "outbox relay pass failed");
                    0
                }
            };
            passes += 1;
            if passes.is_multiple_of(100) {
                let _ = self.prune().await;
            }
            if moved >= self.settings.batch as usize {
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Publishes every due row once; returns how many rows it looked at.
    pub async fn pass(&self) -> Result<usize, sqlx::Error> {
        let db = self.outbox.db();
        let now = self.outbox.clock().now_millis();
        let rows = sqlx::query(
            "SELECT id, event_type, version, source, occurred_at, traceparent, payload, attempts
             FROM outbox WHERE published_at IS NULL AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(self.settings.batch)
        .fetch_all(db.pool())
        .await?;
        let count = rows.len();
        for row in rows {
            let id: String = row.try_get("id")?;
            let attempts: i64 = row.try_get("attempts")?;
            let payload: String = row.try_get("payload")?;
            let event = Event {
                id: id.clone(),
                event_type: row.try_get("event_type")?,
                version: u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
                source: row.try_get("source")?,
                time: rfc3339(row.try_get("occurred_at")?),
                traceparent: row.try_get("traceparent")?,
                // A payload that is not JSON still travels (as a string), so the consumer parks
                // it visibly instead of the relay retrying it forever.
                payload: serde_json::from_str(&payload)
                    .unwrap_or(serde_json::Value::String(payload)),
            };
            match self.bus.publish(&event).await {
                Ok(()) => {
                    sqlx::query(
                        "UPDATE outbox SET published_at = $2, last_error = NULL WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(self.outbox.clock().now_millis())
                    .execute(db.pool())
                    .await?;
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    let delay = self.backoff(attempts + 1);
                    let message: String = err.to_string().chars().take(1000).collect();
                    tracing::debug!(event_id = %id, attempts = attempts + 1, error = %message, "publish failed; will retry");
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(self.outbox.clock().now_millis() + delay)
                    .bind(message)
                    .execute(db.pool())
                    .await?;
                }
            }
        }
        Ok(count)
    }

    /// Exponential backoff with "equal jitter" (half fixed, half random), capped.
    fn backoff(&self, attempt: i64) -> i64 {
        let exp = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
        let ceiling = self
            .settings
            .retry_base_ms
            .saturating_mul(1_i64 << exp)
            .min(self.settings.retry_max_ms);
        let jitter = i64::from(rand::random::<u32>()) % ceiling.max(1);
        (ceiling / 2 + jitter / 2).max(1)
    }

    /// Deletes published rows older than the retention.
    async fn prune(&self) -> Result<u64, sqlx::Error> {
        let cutoff = self.outbox.clock().now_millis() - self.settings.retention_ms;
        let done =
            sqlx::query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
                .bind(cutoff)
                .execute(self.outbox.db().pool())
                .await?;
        Ok(done.rows_affected())
    }
}
