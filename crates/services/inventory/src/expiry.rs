//! The expiry task: every `expiry_interval_ms`, release each held reservation whose expiry has
//! passed, so stock held by an abandoned or partitioned checkout comes back on its own.
//!
//! A pass is [`InventoryStore::release_expired`]: the same conditional update as an explicit
//! release, so a pass racing a commit, a release or another instance's pass returns each
//! reservation's units exactly once. "Now" is read from the service's clock, so tests move a
//! manual clock and run a pass (`POST /admin/expire`) instead of sleeping.

use std::time::Duration;

use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::periodic;
use tokio_util::sync::CancellationToken;

use crate::store::InventoryStore;

/// Runs a pass every `period` (plus up to a tenth of it, so replicas started together do not
/// sweep in lock-step) until `shutdown` is cancelled. A failed pass is logged and retried at the
/// next one: expiry is a sweep, and the next one covers whatever this one missed.
pub async fn run(
    store: InventoryStore,
    clock: SharedClock,
    period: Duration,
    shutdown: CancellationToken,
) {
    periodic::every(period)
        .jitter(period / 10)
        .run(&shutdown, || async {
            match store.release_expired(clock.now()).await {
                Ok(0) => {}
                Ok(released) => tracing::info!(released, "expired reservations released"),
                Err(error) => {
                    tracing::warn!(%error, "expiry pass failed; retrying at the next one");
                }
            }
        })
        .await;
    tracing::debug!("expiry task stopped");
}
