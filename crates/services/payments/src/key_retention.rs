//! The background task that forgets old idempotency keys.
//!
//! A key must outlive every retry of its request (the orders saga retries for seconds, a
//! restarted saga within minutes), but kept forever the table only grows. Keys older than the
//! configured retention are deleted once a minute (the chassis' [`periodic`] loop: first at
//! start-up, a tenth of jitter so replicas do not delete in lock-step); the task stops when the
//! host shuts down, also in the middle of a round: the DELETE is one statement, so it either
//! happened or it did not.

use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::periodic;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::store::PaymentsStore;

/// How often old keys are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Deletes keys older than `retention` every `every`, until `shutdown` is cancelled. A failed
/// round is logged and tried again at the next one.
pub async fn prune_keys(
    store: PaymentsStore,
    clock: SharedClock,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let retention = time::Duration::try_from(retention).unwrap_or(time::Duration::MAX);
    periodic::every(every)
        .jitter(every / 10)
        .run(&shutdown, || async {
            let cutoff = clock.now().saturating_sub(retention);
            match store.prune_keys(cutoff).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "old idempotency keys deleted"),
                Err(e) => tracing::warn!(error = %e, "could not delete old idempotency keys"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};
    use flotilla_chassis::clock::{Clock, ManualClock, at_millis};
    use flotilla_testkit::{TestDatabases, test_db};
    use std::sync::Arc;
    use std::time::Instant;

    use crate::contract::LedgerKind;
    use crate::idempotency::{IdempotencyKey, RequestHash, StoredResponse};
    use crate::store::MIGRATIONS;

    const HOUR_MILLIS: i64 = 3_600_000;

    /// A migrated store on SQLite, or on PostgreSQL when `FLOTILLA_TEST_DATABASE_URL` is set;
    /// the guard drops the database.
    async fn store() -> (PaymentsStore, TestDatabases) {
        let (db, guard) = test_db("payments").await;
        db.migrate(MIGRATIONS).await.expect("migrate");
        (PaymentsStore::new(db), guard)
    }

    /// Records an answer under `key` for a capture with parameters `param`; true when the key
    /// was free (it is taken from now on).
    async fn take(store: &PaymentsStore, key: &str, param: &str, now: i64) -> bool {
        let now = at_millis(now);
        let key = IdempotencyKey::parse(&HeaderValue::from_str(key).expect("header")).expect("key");
        let hash = RequestHash::of(&[param]);
        let answer = StoredResponse {
            status: StatusCode::OK,
            body: "{}".into(),
        };
        let mut tx = store.begin().await.expect("begin");
        let prior = tx
            .record_key(&key, LedgerKind::Capture, &hash, &answer, now)
            .await
            .expect("record");
        match prior {
            None => {
                tx.commit().await.expect("commit");
                true
            }
            Some(_) => false,
        }
    }

    #[tokio::test]
    async fn pruning_deletes_only_keys_older_than_the_cutoff() {
        let (store, _guard) = store().await;
        assert!(take(&store, "old", "a", 1_000).await);
        assert!(take(&store, "new", "a", 2_000).await);
        assert_eq!(store.prune_keys(at_millis(1_000)).await.expect("prune"), 0);
        assert_eq!(store.prune_keys(at_millis(1_001)).await.expect("prune"), 1);
        assert!(
            take(&store, "old", "b", 3_000).await,
            "the old key is free again"
        );
        assert!(
            !take(&store, "new", "b", 3_000).await,
            "the new key is still held"
        );
    }

    #[tokio::test]
    async fn the_task_forgets_expired_keys_and_stops_on_shutdown() {
        let (store, _guard) = store().await;
        let clock = Arc::new(ManualClock::new(1_750_000_000_000));
        assert!(take(&store, "k", "a", clock.now_millis()).await);
        clock.advance(HOUR_MILLIS + 1);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(prune_keys(
            store.clone(),
            clock.clone(),
            Duration::from_secs(3_600),
            Duration::from_millis(5),
            shutdown.clone(),
        ));
        // Wait (with a deadline) for a round of the task to have freed the key.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !take(&store, "k", "b", clock.now_millis()).await {
            assert!(Instant::now() < deadline, "the key was never pruned");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task stops on shutdown")
            .expect("the task did not panic");
        // The key taken just now is younger than the retention: no later round may delete it.
        assert!(!take(&store, "k", "c", clock.now_millis()).await);
    }
}
