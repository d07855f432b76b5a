//! The recovery loop: every `recovery_interval_ms`, until shutdown, it claims each unfinished
//! saga whose lease ran out and whose next attempt is due, and resumes it from its stored step.
//!
//! This is what finishes a saga after a crash (its lease simply runs out: leases are clock
//! times, so one left by a killed process delays recovery by at most `lease_ms`), after a
//! storage error, and after an executor handed a long backoff back. Claims are conditional
//! updates, so several replicas may run this loop at once: each saga is resumed by one. A
//! semaphore bounds how many sagas one process resumes at a time, so a restart after an outage
//! does not stampede the peers.

use flotilla_chassis::periodic;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Executor;

/// Most sagas one process resumes at once.
pub const MAX_RESUMING: usize = 64;

/// Runs the loop until `shutdown` is cancelled. A tenth of the interval of jitter keeps the
/// replicas' passes apart, so they do not race for the same due sagas every time.
pub async fn run(executor: Executor, interval: Duration, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_RESUMING));
    periodic::every(interval)
        .jitter(interval / 10)
        .run(&shutdown, || async {
            if let Err(e) = pass(&executor, &permits).await {
                tracing::warn!(error = %e, "saga recovery pass failed");
            }
        })
        .await;
}

/// One pass: claims and resumes the sagas due now, as many as there are free permits.
async fn pass(executor: &Executor, permits: &Arc<Semaphore>) -> Result<(), sqlx::Error> {
    let free = permits.available_permits();
    if free == 0 {
        return Ok(());
    }
    let now = executor.now();
    let due = executor
        .store()
        .due(now, i64::try_from(free).unwrap_or(i64::MAX))
        .await?;
    for order_id in due {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            break;
        };
        let owner = Executor::new_owner();
        let until = executor.lease_until(now);
        if !executor
            .store()
            .claim(&order_id, &owner, now, until)
            .await?
        {
            // Someone else (the placing request, another replica) holds it.
            continue;
        }
        tracing::info!(%order_id, "resuming saga");
        let executor = executor.clone();
        tokio::spawn(async move {
            let end = executor.run(&order_id, &owner, None).await;
            end.log(&order_id);
            drop(permit);
        });
    }
    Ok(())
}
