//! The expiry task: every `expiry_interval_ms`, release each held reservation whose expiry has
//! passed, so stock held by an abandoned or partitioned checkout comes back on its own.
//!
//! A pass is [`InventoryStore::release_expired`]: the same conditional update as an explicit
//! release, so a pass racing a commit, a release or another instance's pass returns each
//! reservation's units exactly once. "Now" is read from the service's clock, so tests move a
//! manual clock and run a pass (`POST /admin/expire`) instead of sleeping.

use std::time::Duration;

use flotilla_chassis::clock::SharedClock;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::store::InventoryStore;

/// Runs a pass every `every` until `shutdown` is cancelled. A failed pass is logged and retried
/// at the next tick: expiry is a sweep, and the next one covers whatever this one missed.
pub async fn run(
    store: InventoryStore,
    clock: SharedClock,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    // After a slow pass, carry on at the normal pace rather than running a burst of passes.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let pass = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            pass = store.release_expired(clock.now_millis()) => pass,
        };
        match pass {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "expired reservations released"),
            Err(error) => tracing::warn!(%error, "expiry pass failed; retrying at the next tick"),
        }
    }
    tracing::debug!("expiry task stopped");
}
