//! Runs one order's saga: holds its lease, runs the current step under the step deadline,
//! asks the state machine what follows, persists that (and the log entry) before anything
//! else happens, and goes on until the saga is done or it must stop.
//!
//! An executor only runs a saga it holds: the request that placed the order holds it from the
//! start; the recovery loop claims one whose lease ran out. The lease is renewed before every
//! step and every write is conditional on the executor's token, so an executor that stalled
//! past its lease (and was replaced) stops at its next write without changing anything. A long
//! backoff hands the lease back with a `next_attempt_at` instead of holding it idle; a shutdown
//! stops at the next await, exactly like a crash, and the saga resumes elsewhere from its last
//! persisted step.
//!
//! The peer calls of the steps are in [`steps`] and [`compensations`]; [`recovery`] is the loop
//! that resumes unfinished sagas.

mod compensations;
mod ending;
pub mod recovery;
pub mod steps;

use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::events::Outbox;
use flotilla_chassis::{request_context, telemetry};
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use self::steps::{Performed, SagaPeers};
use crate::contract::OrderStatus;
use crate::metrics::OrderMetrics;
use crate::saga::{
    OrderEnding, Outcome, PeerRefs, Phase, Policy, Step, Transition, advance, retry_delay,
};
use crate::store::OrdersStore;
use crate::store::sagas::{Progress, SagaRecord};

/// How long after a step's (or a checkout call's) deadline the timeout around it gives up, when
/// the call has not ended at its deadline by itself: the deadline is the resilience stack's to
/// enforce, so that the breaker records the cut.
pub(crate) const DEADLINE_BACKSTOP: Duration = Duration::from_millis(100);

/// The longest wait between two attempts of a step; compensations retry forever, so the cap
/// bounds how long a recovered peer waits for them.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The executor's timing settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub step_timeout: Duration,
    /// Tries of a forward step.
    pub step_attempts: u32,
    pub retry_base: Duration,
    /// How long a lease lasts.
    pub lease: Duration,
}

/// Why a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The saga is done; the order has this status. `ending` says how this run finished it
    /// (None when it was already done when the run began).
    Finished {
        /// CONFIRMED or CANCELLED.
        status: OrderStatus,
        /// What the final transaction this run committed wrote to the order.
        ending: Option<Box<OrderEnding>>,
    },
    /// Another executor holds the saga now (or it never existed).
    LostLease,
    /// Waiting for a retry; the recovery loop resumes it.
    HandedBack,
    /// The host is shutting down.
    Stopped,
    /// The run was asked to stop after a number of steps (tests drive sagas step by step).
    Paused,
    /// Storage failed; the lease runs out and the recovery loop resumes the saga.
    Storage(sqlx::Error),
    /// The final event could not be encoded (a bug); the saga is retried like a storage error.
    Unencodable(serde_json::Error),
}

impl RunEnd {
    /// Logs how a run of `order_id`'s saga ended, loudly only when something is wrong.
    pub fn log(&self, order_id: &str) {
        match self {
            RunEnd::Finished { status, .. } => {
                tracing::info!(%order_id, status = status.as_str(), "saga finished")
            }
            RunEnd::Storage(e) => {
                tracing::warn!(%order_id, error = %e, "saga paused by a storage error")
            }
            RunEnd::Unencodable(e) => {
                tracing::error!(%order_id, error = %e, "saga event cannot be encoded")
            }
            other => tracing::debug!(%order_id, end = ?other, "saga run ended"),
        }
    }
}

/// One step's result, on its way to being recorded.
#[derive(Debug)]
struct Stepped {
    ran: Step,
    outcome: Outcome,
    transition: Transition,
    /// The payment or shipment it made or found.
    refs: PeerRefs,
    /// How long to wait before retrying it.
    delay: Duration,
}

/// A recorded step: until when the lease now runs, and how the order ended if it did.
struct Persisted {
    lease_until: OffsetDateTime,
    ended: Option<Box<OrderEnding>>,
}

/// Runs sagas. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    store: OrdersStore,
    peers: SagaPeers,
    outbox: Outbox,
    clock: SharedClock,
    shutdown: CancellationToken,
    timing: Timing,
    metrics: OrderMetrics,
}

impl Executor {
    pub fn new(
        store: OrdersStore,
        peers: SagaPeers,
        outbox: Outbox,
        clock: SharedClock,
        shutdown: CancellationToken,
        timing: Timing,
        metrics: OrderMetrics,
    ) -> Self {
        Self {
            store,
            peers,
            outbox,
            clock,
            shutdown,
            timing,
            metrics,
        }
    }

    /// A fresh lease token: one per run, so that two runs in one process are told apart.
    pub fn new_owner() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    pub fn store(&self) -> &OrdersStore {
        &self.store
    }

    /// The lease deadline of a lease taken now.
    pub fn lease_until(&self, now: OffsetDateTime) -> OffsetDateTime {
        after(now, self.timing.lease)
    }

    /// Now, by the service's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Runs `order_id`'s saga, which `owner` holds, until it is done or must stop; at most
    /// `limit` step outcomes when given.
    #[tracing::instrument(skip(self, owner), fields(order_id = %order_id))]
    pub async fn run(&self, order_id: &str, owner: &str, limit: Option<usize>) -> RunEnd {
        match self.store.saga(order_id).await {
            Ok(Some(saga)) => self.run_from(saga, owner, None, limit).await,
            Ok(None) => RunEnd::LostLease,
            Err(e) => RunEnd::Storage(e),
        }
    }

    /// [`Executor::run`] from `saga` as the caller knows it (the request that just stored it),
    /// held by `owner` until `held_until` when the caller knows that too (None: renew first).
    #[tracing::instrument(skip_all, fields(order_id = %saga.order_id))]
    pub async fn run_from(
        &self,
        mut saga: SagaRecord,
        owner: &str,
        mut held_until: Option<OffsetDateTime>,
        limit: Option<usize>,
    ) -> RunEnd {
        let order_id = saga.order_id.clone();
        let order_id = order_id.as_str();
        let policy = Policy {
            step_attempts: self.timing.step_attempts,
        };
        let mut outcomes = 0;
        let mut ending = None;
        loop {
            if let Some(status) = saga.state.order_status() {
                return RunEnd::Finished { status, ending };
            }
            if limit.is_some_and(|limit| outcomes >= limit) {
                return RunEnd::Paused;
            }
            if self.shutdown.is_cancelled() {
                return RunEnd::Stopped;
            }
            // Each recorded step renews the lease, so a step that follows right away still has
            // most of it; only a lease too short to cover the step is renewed first (one more
            // write per saga rather than one per step).
            let now = self.now();
            let step_margin = after(now, self.timing.step_timeout.saturating_mul(2));
            if held_until.is_none_or(|until| until <= step_margin) {
                // The step's record below renews it again.
                match self
                    .store
                    .renew(order_id, owner, self.lease_until(now))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return RunEnd::LostLease,
                    Err(e) => return RunEnd::Storage(e),
                }
            }
            let ran = saga.state.step;
            let (outcome, refs) = if ran.is_local() {
                (Outcome::Done(String::new()), PeerRefs::default())
            } else {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return RunEnd::Stopped,
                    performed = self.perform(&saga) => (performed.outcome, performed.refs),
                }
            };
            let transition = advance(&saga.state, &outcome, policy);
            let delay = if transition.retry {
                retry_delay(
                    transition.state.attempts,
                    self.timing.retry_base,
                    MAX_BACKOFF,
                    order_id,
                )
            } else {
                Duration::ZERO
            };
            let stepped = Stepped {
                ran,
                outcome,
                transition,
                refs,
                delay,
            };
            match self.persist(&saga, owner, &stepped).await {
                Ok(Persisted { lease_until, ended }) => {
                    held_until = Some(lease_until);
                    ending = ended;
                }
                Err(end) => return end,
            }
            tracing::debug!(step = ran.as_str(), outcome = ?stepped.outcome, "saga step recorded");
            let Stepped {
                transition, refs, ..
            } = stepped;
            saga.state = transition.state;
            saga.refs.merge(refs);
            if transition.forget_card {
                saga.card = None;
            }
            outcomes += 1;
            if transition.retry {
                // Not worth holding a lease for: the recovery loop resumes it when due.
                if delay > self.timing.lease / 2 {
                    let at = after(self.now(), delay);
                    return match self.store.hand_back(order_id, owner, at).await {
                        Ok(()) => RunEnd::HandedBack,
                        Err(e) => RunEnd::Storage(e),
                    };
                }
                tokio::select! {
                    _ = self.shutdown.cancelled() => return RunEnd::Stopped,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    /// Runs the current step of `saga` under the step deadline.
    ///
    /// The step deadline is the deadline of the step's calls (RELIABILITY.md F8): the
    /// resilience stack cuts a call at it and counts the cut against the upstream, so a silent
    /// partition opens the breaker, and the callee is told how long it has. A call only dropped
    /// by a timeout around it is recorded by nothing, and the breaker stayed closed however
    /// many calls hung. The timeout stays as a backstop a little later.
    pub async fn perform(&self, saga: &SagaRecord) -> Performed {
        let deadline = self.timing.step_timeout;
        let until = tokio::time::Instant::now() + deadline;
        let step = request_context::with_deadline(Some(until), self.peers.perform(saga));
        let attributes = [
            ("flotilla.order_id", saga.order_id.clone().into()),
            (
                "flotilla.saga.attempt",
                i64::from(saga.state.attempts).into(),
            ),
        ];
        let step = telemetry::in_span(
            format!(
                "saga {} {}",
                saga.state.phase.as_str(),
                saga.state.step.as_str()
            ),
            crate::NAME,
            &attributes,
            step,
        );
        match tokio::time::timeout(deadline + DEADLINE_BACKSTOP, step).await {
            Ok(performed) => performed,
            Err(_) => {
                Outcome::Failed(format!("no answer within {} ms", deadline.as_millis())).into()
            }
        }
    }

    /// Records the outcome of `ran` and what follows; the final step's record is the order's
    /// final transaction (status, history, event).
    async fn persist(
        &self,
        saga: &SagaRecord,
        owner: &str,
        stepped: &Stepped,
    ) -> Result<Persisted, RunEnd> {
        let Stepped {
            ran,
            outcome,
            transition,
            refs,
            delay,
        } = stepped;
        let now = self.now();
        let detail = match outcome {
            Outcome::Done(d)
            | Outcome::NothingToDo(d)
            | Outcome::Refused(d)
            | Outcome::Failed(d) => d.clone(),
        };
        let detail = if transition.retry {
            format!("attempt {}: {detail}", transition.state.attempts)
        } else {
            detail
        };
        let (ending, event) = match transition.state.phase {
            Phase::Done => {
                let (ending, event) =
                    ending::ending_of(saga, transition, now).map_err(RunEnd::Unencodable)?;
                (Some(ending), Some(event))
            }
            _ => (None, None),
        };
        let lease_until = self.lease_until(now);
        let progress = Progress {
            order_id: &saga.order_id,
            owner,
            ran: *ran,
            transition,
            detail: ending.as_ref().map_or(&detail, |e| &e.note),
            refs,
            now,
            lease_until,
            next_attempt_at: after(now, *delay),
        };
        let written = match (&ending, event) {
            (Some(ending), Some(event)) => {
                let written = self
                    .store
                    .finish(&progress, ending, event, &self.outbox)
                    .await;
                if matches!(written, Ok(true)) {
                    self.outbox.wake();
                    // Only the write that won ends the saga: counted once, whoever ran it.
                    let took = (now - saga.started_at).try_into().unwrap_or_default();
                    self.metrics.finished(ending.status, took, &saga.total);
                }
                written
            }
            _ => self.store.record(&progress).await,
        };
        match written {
            Ok(true) => Ok(Persisted {
                lease_until,
                ended: ending.map(Box::new),
            }),
            Ok(false) => Err(RunEnd::LostLease),
            Err(e) => Err(RunEnd::Storage(e)),
        }
    }
}

/// `d` after `t`, saturating at the last representable time.
fn after(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.saturating_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}
