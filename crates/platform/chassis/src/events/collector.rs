//! A service's events as metrics. Read at scrape time, from its tables and from the counters
//! the relay and the consumer keep for `/admin/outbox`:
//!
//! - `flotilla_outbox_backlog_events{service}`: events written and not yet published;
//! - `flotilla_outbox_oldest_unpublished_age_seconds{service}`: how long the oldest of them has
//!   waited (0 when none): the relay's lag now;
//! - `flotilla_outbox_published_total`, `flotilla_outbox_publish_failures_total`;
//! - `flotilla_events_consumed_total{service,result}` (`handled`, `duplicate`, `failed`);
//! - `flotilla_dead_letters{service}`: events parked now; `flotilla_events_dead_lettered_total`.
//!
//! Recorded as they happen, with handles made once: the relay's lag per event published
//! (`flotilla_outbox_relay_lag_seconds`, `relay.rs`) and the consumer's per event handled
//! (`flotilla_event_consumer_lag_seconds`, `consumer.rs`).

use ::metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use futures::future::BoxFuture;
use sqlx::Row;
use std::sync::Arc;

use super::consumer::Consumer;
use super::relay::RelayStats;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::metrics::Collect;

/// The event series of one service.
pub struct EventsCollector {
    service: &'static str,
    db: Db,
    clock: SharedClock,
    relay: Option<Arc<RelayStats>>,
    consumer: Option<Arc<Consumer>>,
}

impl EventsCollector {
    /// Collects `service`'s outbox (when `relay` is given) and consumer (when given), reading
    /// backlogs and dead letters from `db`.
    pub fn new(
        service: &'static str,
        db: Db,
        clock: SharedClock,
        relay: Option<Arc<RelayStats>>,
        consumer: Option<Arc<Consumer>>,
    ) -> Self {
        describe_gauge!(
            "flotilla_outbox_backlog_events",
            "Events in the outbox not yet published to the bus."
        );
        describe_gauge!(
            "flotilla_outbox_oldest_unpublished_age_seconds",
            Unit::Seconds,
            "Age of the oldest event not yet published (0 when none): the relay's lag now."
        );
        describe_counter!(
            "flotilla_outbox_published_total",
            Unit::Count,
            "Events the relay published to the bus."
        );
        describe_counter!(
            "flotilla_outbox_publish_failures_total",
            Unit::Count,
            "Publish attempts the bus refused (each retried with backoff)."
        );
        describe_counter!(
            "flotilla_events_consumed_total",
            Unit::Count,
            "Event deliveries by result: handled, duplicate (seen before), failed (retried or parked)."
        );
        describe_gauge!(
            "flotilla_dead_letters",
            "Events parked as dead letters now (replayable under /admin/dead-letters)."
        );
        describe_counter!(
            "flotilla_events_dead_lettered_total",
            Unit::Count,
            "Events parked as dead letters."
        );
        Self {
            service,
            db,
            clock,
            relay,
            consumer,
        }
    }

    /// The backlog and the age of its oldest event in ms, from the outbox's pending index.
    async fn backlog(&self) -> Result<(i64, i64), sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pending, MIN(occurred_at) AS oldest
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(self.db.pool())
        .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        let age = oldest.map_or(0, |t| (self.clock.now_millis() - t).max(0));
        Ok((row.try_get("pending")?, age))
    }

    async fn dead_letters(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
            .fetch_one(self.db.pool())
            .await
    }
}

impl Collect for EventsCollector {
    fn collect(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let service = self.service;
            if let Some(relay) = &self.relay {
                let counts = relay.snapshot();
                counter!("flotilla_outbox_published_total", "service" => service)
                    .absolute(counts.published);
                counter!("flotilla_outbox_publish_failures_total", "service" => service)
                    .absolute(counts.failures);
                match self.backlog().await {
                    Ok((pending, age_ms)) => {
                        gauge!("flotilla_outbox_backlog_events", "service" => service)
                            .set(pending as f64);
                        gauge!("flotilla_outbox_oldest_unpublished_age_seconds", "service" => service)
                            .set(age_ms as f64 / 1000.0);
                    }
                    // The last values stay: a scrape is no reason to fail, the log says why.
                    Err(err) => {
                        tracing::warn!(service, error = %err, "metrics: outbox backlog unread")
                    }
                }
            }
            if let Some(consumer) = &self.consumer {
                let counts = consumer.stats().snapshot();
                for (result, value) in [
                    ("handled", counts.handled),
                    ("duplicate", counts.duplicates),
                    ("failed", counts.failures),
                ] {
                    counter!("flotilla_events_consumed_total", "service" => service, "result" => result)
                        .absolute(value);
                }
                counter!("flotilla_events_dead_lettered_total", "service" => service)
                    .absolute(counts.dead_lettered);
                match self.dead_letters().await {
                    Ok(parked) => {
                        gauge!("flotilla_dead_letters", "service" => service).set(parked as f64)
                    }
                    Err(err) => {
                        tracing::warn!(service, error = %err, "metrics: dead letters unread")
                    }
                }
            }
        })
    }
}
