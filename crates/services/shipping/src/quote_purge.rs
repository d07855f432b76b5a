//! The background task that deletes long-expired quotes, so a storefront that quotes on every
//! page view cannot grow the quotes table without bound.
//!
//! A quote is kept for a day after it expires (a late shipment can still be traced to the quote
//! it did not get, and `GET /quotes/{id}` still answers), then deleted. The task passes once an
//! hour (the chassis' [`periodic`](flotilla_chassis::periodic) loop: first at start-up, a tenth
//! of jitter so replicas do not purge in lock-step) and stops when the host shuts down.

use flotilla_chassis::clock::{Clock, SharedClock};
use flotilla_chassis::periodic;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::store::ShippingStore;

/// How long an expired quote is kept.
pub const RETENTION: time::Duration = time::Duration::DAY;
/// How often the task looks for quotes to delete.
pub const PERIOD: Duration = Duration::from_secs(60 * 60);

/// Runs until `shutdown` is cancelled, purging every `period` ([`PERIOD`] in service; first
/// right away).
pub async fn run(
    store: ShippingStore,
    clock: SharedClock,
    period: Duration,
    shutdown: CancellationToken,
) {
    periodic::every(period)
        .jitter(period / 10)
        .run(&shutdown, || async {
            match purge_once(&store, clock.as_ref()).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "expired quotes purged"),
                // Transient (a busy or closed pool): the next pass tries again.
                Err(e) => tracing::warn!(error = %e, "purging expired quotes failed"),
            }
        })
        .await;
}

/// Deletes the quotes that expired more than [`RETENTION`] before `clock`'s now.
pub async fn purge_once(store: &ShippingStore, clock: &dyn Clock) -> Result<u64, sqlx::Error> {
    store.purge_quotes(clock.now() - RETENTION).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::QuoteRequest;
    use crate::domain::QuoteInput;
    use crate::store::QuoteRecord;
    use crate::store::tests::test_store;
    use flotilla_chassis::clock::{ManualClock, at_millis};
    use flotilla_chassis::{Currency, Money};
    use std::sync::Arc;

    const NOW: i64 = 1_750_000_000_000;
    const RETENTION_MILLIS: i64 = 24 * 60 * 60 * 1000;

    async fn insert(store: &ShippingStore, expires_at: i64) -> QuoteRecord {
        let input = QuoteInput::parse(&QuoteRequest {
            country: "DE".into(),
            postal_code: "10117".into(),
            items: 1,
            weight_grams: None,
        })
        .expect("valid");
        store
            .insert_quote(
                &input,
                Money::new(490, Currency::EUR),
                at_millis(NOW),
                at_millis(expires_at),
            )
            .await
            .expect("insert")
    }

    #[tokio::test]
    async fn only_quotes_expired_longer_than_the_retention_are_purged() {
        let (store, _db) = test_store().await;
        let old = insert(&store, NOW + 1_000).await;
        let recent = insert(&store, NOW + 2_000).await;
        let clock = ManualClock::new(NOW + 1_000 + RETENTION_MILLIS);
        assert_eq!(purge_once(&store, &clock).await.expect("purge"), 0);
        clock.advance(1);
        assert_eq!(purge_once(&store, &clock).await.expect("purge"), 1);
        assert_eq!(store.quote(&old.id).await.expect("read"), None);
        assert_eq!(store.quote(&recent.id).await.expect("read"), Some(recent));
    }

    /// The task purges at start-up, again a period later once the clock has moved on, and
    /// stops on shutdown (a short period in real time: the store's pool needs real time).
    #[tokio::test]
    async fn the_task_purges_at_start_then_every_period_and_stops_on_shutdown() {
        let (store, _db) = test_store().await;
        let first = insert(&store, NOW).await;
        let clock = Arc::new(ManualClock::new(NOW + RETENTION_MILLIS + 1));
        let shutdown = CancellationToken::new();
        let period = Duration::from_millis(5);
        let task = tokio::spawn(run(store.clone(), clock.clone(), period, shutdown.clone()));
        wait_until_purged(&store, &first).await;

        let second = insert(&store, NOW + RETENTION_MILLIS).await;
        clock.advance(RETENTION_MILLIS);
        wait_until_purged(&store, &second).await;

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops promptly")
            .expect("no panic");
    }

    async fn wait_until_purged(store: &ShippingStore, quote: &QuoteRecord) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.quote(&quote.id).await.expect("read").is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "quote {} was never purged",
                quote.id
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
