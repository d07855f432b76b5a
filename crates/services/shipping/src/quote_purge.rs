//! The background task that deletes long-expired quotes, so a storefront that quotes on every
//! page view cannot grow the quotes table without bound.
//!
//! A quote is kept for a day after it expires (a late shipment can still be traced to the quote
//! it did not get, and `GET /quotes/{id}` still answers), then deleted. The task wakes once an
//! hour and stops when the host cancels its shutdown token.

use flotilla_chassis::clock::{Clock, SharedClock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::store::ShippingStore;

/// How long an expired quote is kept.
pub const RETENTION_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// How often the task looks for quotes to delete.
pub const PERIOD: Duration = Duration::from_secs(60 * 60);

/// Runs until `shutdown` is cancelled, purging every [`PERIOD`] (first right away).
pub async fn run(store: ShippingStore, clock: SharedClock, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match purge_once(&store, clock.as_ref()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired quotes purged"),
            // Transient (a busy or closed pool): the next tick tries again.
            Err(e) => tracing::warn!(error = %e, "purging expired quotes failed"),
        }
    }
}

/// Deletes the quotes that expired more than [`RETENTION_MILLIS`] before `clock`'s now.
pub async fn purge_once(store: &ShippingStore, clock: &dyn Clock) -> Result<u64, sqlx::Error> {
    let cutoff = clock.now_millis().saturating_sub(RETENTION_MILLIS);
    store.purge_quotes(cutoff).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::QuoteRequest;
    use crate::domain::QuoteInput;
    use crate::store::tests::test_store;
    use flotilla_chassis::clock::ManualClock;
    use flotilla_chassis::{Currency, Money};
    use std::sync::Arc;

    const NOW: i64 = 1_750_000_000_000;

    #[tokio::test]
    async fn only_quotes_expired_longer_than_the_retention_are_purged() {
        let (store, _db) = test_store().await;
        let input = QuoteInput::parse(&QuoteRequest {
            country: "DE".into(),
            postal_code: "10117".into(),
            items: 1,
            weight_grams: None,
        })
        .expect("valid");
        let price = Money::new(490, Currency::EUR);
        let old = store
            .insert_quote(&input, price, NOW, NOW + 1_000)
            .await
            .expect("insert");
        let recent = store
            .insert_quote(&input, price, NOW, NOW + 2_000)
            .await
            .expect("insert");
        let clock = ManualClock::new(NOW + 1_000 + RETENTION_MILLIS);
        assert_eq!(purge_once(&store, &clock).await.expect("purge"), 0);
        clock.advance(1);
        assert_eq!(purge_once(&store, &clock).await.expect("purge"), 1);
        assert_eq!(store.quote(&old.id).await.expect("read"), None);
        assert_eq!(store.quote(&recent.id).await.expect("read"), Some(recent));
    }

    #[tokio::test]
    async fn the_task_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let clock: SharedClock = Arc::new(ManualClock::new(NOW));
        let (store, _db) = test_store().await;
        let task = tokio::spawn(run(store, clock, shutdown.clone()));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops promptly")
            .expect("no panic");
    }
}
