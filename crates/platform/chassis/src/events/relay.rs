//! The outbox relay: the background task that moves a service's outbox rows onto the bus.
//!
//! It is driven by wake-ups: the outbox wakes it when a transaction committed events, and it
//! sets its own timer for the earliest retry it scheduled. Only as a fallback does it also look
//! every `poll_interval` (so rows left by a crash, written by another process sharing the
//! database, or committed without a wake-up still go out); an idle relay costs one query per
//! interval. Rows are published oldest first; a row is marked published only after the bus
//! accepted it, and the rows of one pass that the bus accepted are marked with one statement
//! after the last publish of the pass (a crash in between publishes them again: at least once).
//! A failed publish is retried with exponential backoff (capped), row by row, so one stuck event
//! does not hold back the others. Published rows are deleted after `retention`.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
    /// Longest wait between passes when nothing wakes the relay, in ms: only the fallback for
    /// rows nobody woke it for (left by a crash, or written by another process), since commits
    /// wake it and it times its own retries.
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
            poll_interval_ms: 5_000,
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

/// Most ids marked published by one statement (far below either backend's parameter limit).
const MARK_CHUNK: usize = 500;

/// What one pass did.
#[derive(Debug, Default)]
struct PassReport {
    /// Rows the pass read (published or not).
    looked_at: usize,
    /// When the retries this pass scheduled fall due (clock millis).
    retries: Vec<i64>,
}

/// Moves one service's outbox to the bus.
pub struct Relay {
    outbox: Outbox,
    bus: SharedBus,
    settings: RelaySettings,
    stats: Arc<RelayStats>,
    /// `flotilla_outbox_relay_lag_seconds` of this service: written to published, per event.
    lag: ::metrics::Histogram,
}

impl Relay {
    /// A relay for `outbox` onto `bus`.
    pub fn new(outbox: Outbox, bus: SharedBus, settings: RelaySettings) -> Self {
        ::metrics::describe_histogram!(
            "flotilla_outbox_relay_lag_seconds",
            ::metrics::Unit::Seconds,
            "Time from an event's write into the outbox to its publication on the bus."
        );
        let lag = ::metrics::histogram!("flotilla_outbox_relay_lag_seconds", "service" => outbox.source());
        Self {
            outbox,
            bus,
            settings,
            stats: Arc::new(RelayStats::default()),
            lag,
        }
    }

    /// The relay's counters (shared with the admin routes).
    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown`: a pass at start (rows a crash left behind), then whenever the
    /// outbox wakes it, when a retry it scheduled falls due, or at the latest every poll
    /// interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.outbox.waker();
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        let clock = self.outbox.clock().clone();
        // Retries scheduled by this relay, earliest first.
        let mut retries: BinaryHeap<Reverse<i64>> = BinaryHeap::new();
        let mut passes: u64 = 0;
        let mut failed_passes: i64 = 0;
        loop {
            // Wake-ups counted before the pass reads the outbox: the rows of every one of them
            // are committed (an outbox is woken after the commit), so this pass sees them.
            let seen = wake.count();
            let started = clock.now_millis();
            let moved = match self.pass_report().await {
                Ok(report) => {
                    failed_passes = 0;
                    retries.extend(report.retries.into_iter().map(Reverse));
                    report.looked_at
                }
                Err(err) => {
                    tracing::warn!(service = self.outbox.source(), error = %err, "outbox relay pass failed");
                    // The pass may have missed rows it was woken for: try again after a backoff.
                    failed_passes += 1;
                    let retry_at = clock
                        .now_millis()
                        .saturating_add(self.backoff(failed_passes));
                    retries.push(Reverse(retry_at));
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
            // Retries due by the start of the pass were among the rows it read.
            while retries.peek().is_some_and(|Reverse(at)| *at <= started) {
                retries.pop();
            }
            let sleep = retries.peek().map_or(poll, |Reverse(at)| {
                let wait = u64::try_from(at.saturating_sub(clock.now_millis())).unwrap_or(0);
                Duration::from_millis(wait).min(poll)
            });
            let timer = tokio::time::sleep(sleep);
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.notified() => {
                        // A wake-up the pass already covered (it came while the pass ran, before
                        // its query) would only cost an empty pass: keep waiting.
                        if wake.count() != seen {
                            break;
                        }
                    }
                    _ = &mut timer => break,
                }
            }
        }
    }

    /// Publishes every due row once; returns how many rows it looked at.
    pub async fn pass(&self) -> Result<usize, sqlx::Error> {
        self.pass_report().await.map(|report| report.looked_at)
    }

    /// [`Relay::pass`], also reporting the retries it scheduled.
    async fn pass_report(&self) -> Result<PassReport, sqlx::Error> {
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
        let mut report = PassReport {
            looked_at: rows.len(),
            retries: Vec::new(),
        };
        let mut published: Vec<String> = Vec::with_capacity(rows.len());
        let mut refused: Vec<(String, i64, String)> = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let attempts: i64 = row.try_get("attempts")?;
            let payload: String = row.try_get("payload")?;
            let occurred_at: i64 = row.try_get("occurred_at")?;
            let event = Event {
                id: id.clone(),
                event_type: row.try_get("event_type")?,
                version: u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
                source: row.try_get("source")?,
                time: rfc3339(occurred_at),
                traceparent: row.try_get("traceparent")?,
                // A payload that is not JSON still travels (as a string), so the consumer parks
                // it visibly instead of the relay retrying it forever.
                payload: serde_json::from_str(&payload)
                    .unwrap_or(serde_json::Value::String(payload)),
            };
            match self.bus.publish(&event).await {
                Ok(()) => {
                    let lag_ms = self.outbox.clock().now_millis().saturating_sub(occurred_at);
                    self.lag.record(lag_ms.max(0) as f64 / 1000.0);
                    published.push(id);
                }
                Err(err) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    let delay = self.backoff(attempts + 1);
                    let message: String = err.to_string().chars().take(1000).collect();
                    tracing::debug!(event_id = %id, attempts = attempts + 1, error = %message, "publish failed; will retry");
                    let retry_at = self.outbox.clock().now_millis().saturating_add(delay);
                    refused.push((id, retry_at, message));
                }
            }
        }
        // What the bus took first: the sooner it is marked, the less a crash sends again.
        self.mark_published(&published).await?;
        for (id, retry_at, message) in refused {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(&id)
            .bind(retry_at)
            .bind(message)
            .execute(db.pool())
            .await?;
            report.retries.push(retry_at);
        }
        Ok(report)
    }

    /// Marks the rows `ids`, which the bus has accepted, as published: one statement per
    /// [`MARK_CHUNK`] ids. Should it fail, the rows stay unpublished and go out again.
    async fn mark_published(&self, ids: &[String]) -> Result<(), sqlx::Error> {
        let now = self.outbox.clock().now_millis();
        for chunk in ids.chunks(MARK_CHUNK) {
            // Only placeholders are spliced in; the ids are bound.
            let placeholders = (2..chunk.len() + 2)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut query = sqlx::query(AssertSqlSafe(format!(
                "UPDATE outbox SET published_at = $1, last_error = NULL
                 WHERE id IN ({placeholders}) AND published_at IS NULL"
            )))
            .bind(now);
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(self.outbox.db().pool()).await?;
            self.stats
                .published
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(())
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
