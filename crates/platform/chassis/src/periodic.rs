//! Background passes that run on a period until shutdown: expiring reservations, purging old
//! quotes, forgetting old idempotency keys, resuming stalled sagas.
//!
//! Every such loop needs the same four things, written once here: a first pass at start-up, a
//! pause between passes measured from the end of the previous one (a slow pass is followed by a
//! normal pause, never by a burst of catch-up passes), a random jitter on each pause (replicas
//! started together do not sweep the same rows in lock-step), and a prompt stop when the host
//! shuts down, even in the middle of a pass. Passes are written to be idempotent sweeps, so a
//! pass cut short is finished by the next one, in this process or another.
//!
//! Time is tokio's, so tests drive these loops with paused time (`tokio::time::pause`).

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A period with optional jitter; [`Periodic::run`] runs passes on it.
#[derive(Debug, Clone, Copy)]
pub struct Periodic {
    period: Duration,
    jitter: Duration,
}

/// Passes every `period` (the first at once), without jitter unless [`Periodic::jitter`] adds it.
pub fn every(period: Duration) -> Periodic {
    Periodic {
        period,
        jitter: Duration::ZERO,
    }
}

impl Periodic {
    /// Each pause is `period` plus a uniformly random extra of at most `up_to`.
    #[must_use]
    pub fn jitter(mut self, up_to: Duration) -> Self {
        self.jitter = up_to;
        self
    }

    /// The pause before the next pass.
    fn pause(&self) -> Duration {
        let ceiling = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if ceiling == 0 {
            return self.period;
        }
        self.period + Duration::from_millis(rand::random::<u64>() % (ceiling + 1))
    }

    /// Runs `pass` now and then after every pause, until `shutdown` is cancelled; a pass in
    /// flight at that moment is dropped. Returns when stopped.
    pub async fn run<F, Fut>(self, shutdown: &CancellationToken, mut pass: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = pass() => {}
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.pause()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn passes_at_once_then_once_a_period_until_shutdown() {
        let passes = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let passes = passes.clone();
            let shutdown = shutdown.clone();
            async move {
                every(Duration::from_secs(10))
                    .run(&shutdown, || {
                        let passes = passes.clone();
                        async move {
                            passes.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .await;
            }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            1,
            "the first pass runs at start-up"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 4);
        shutdown.cancel();
        task.await.expect("the loop stops");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 4, "no pass after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drops_a_pass_in_flight() {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                every(Duration::from_secs(1))
                    .run(&shutdown, std::future::pending::<()>)
                    .await;
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stopped promptly")
            .expect("no panic");
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let periodic = every(Duration::from_secs(60)).jitter(Duration::from_secs(6));
        for _ in 0..1000 {
            let pause = periodic.pause();
            assert!(pause >= Duration::from_secs(60) && pause <= Duration::from_secs(66));
        }
        assert_eq!(
            every(Duration::from_secs(1)).pause(),
            Duration::from_secs(1)
        );
    }
}
