//! The checkout saga: the steps that turn a PENDING order into a CONFIRMED one, the
//! compensations that undo them when one fails, and the pure state machine that decides what
//! comes next from where the saga is and what the last step did.
//!
//! Forward: RESERVE (inventory) → AUTHORIZE (payments) → SHIP (shipping) → CAPTURE (payments) →
//! COMMIT (inventory) → CONFIRM (local). A step that is refused (a declined card, no stock, a
//! carrier rejection), or that keeps failing for `step_attempts` tries, turns the saga to
//! compensating: it undoes, in reverse order, every step that happened *or may have happened*
//! (a step whose every attempt timed out may have taken effect), then CANCEL (local).
//! Compensations are CANCEL_SHIPMENT → VOID_OR_REFUND → RELEASE, always a suffix of that list:
//! a later step implies all earlier ones happened. The payment is one compensation because it
//! is one thing to give back — voided while only authorized, refunded once captured (CAPTURE
//! only changes *how* AUTHORIZE is undone).
//!
//! Two rules keep the money and the stock right whatever fails:
//! - COMMIT comes after the pivot (money captured, parcel handed over). Giving up on a slow
//!   inventory there could refund a customer for stock that was in fact sold, so COMMIT retries
//!   transient failures without limit; only a definitive refusal (the reservation expired)
//!   compensates.
//! - Compensations never give up: they are retried with capped backoff until they succeed,
//!   and the peers' idempotency makes every repeat harmless.
//!
//! This module is the saga's pure core, with no I/O (unit-tested exhaustively in `tests`): the
//! steps, the state machine and the plain values the executor, the store and the domain share
//! ([`PeerRefs`], [`OrderEnding`]). The I/O is in [`crate::executor`]: it calls the peers, runs
//! one saga and persists every outcome, and resumes unfinished ones.

use std::hash::{Hash, Hasher};
use std::time::Duration;
use time::OffsetDateTime;

use crate::contract::OrderStatus;

/// A step of the checkout saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Hold the order's stock (inventory).
    Reserve,
    /// Hold the order's total on the card (payments).
    Authorize,
    /// Create the shipment (shipping).
    Ship,
    /// Take the authorized money (payments).
    Capture,
    /// Turn the stock reservation into a sale (inventory).
    Commit,
    /// Local: the order is CONFIRMED and `order.confirmed` published.
    Confirm,
    /// Undo SHIP.
    CancelShipment,
    /// Undo AUTHORIZE (and CAPTURE): void an authorization, refund a capture.
    VoidOrRefund,
    /// Undo RESERVE.
    Release,
    /// Local: the order is CANCELLED and `order.cancelled` published.
    Cancel,
}

impl Step {
    /// Every step, forward ones first.
    pub const ALL: [Step; 10] = [
        Step::Reserve,
        Step::Authorize,
        Step::Ship,
        Step::Capture,
        Step::Commit,
        Step::Confirm,
        Step::CancelShipment,
        Step::VoidOrRefund,
        Step::Release,
        Step::Cancel,
    ];

    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Reserve => "RESERVE",
            Step::Authorize => "AUTHORIZE",
            Step::Ship => "SHIP",
            Step::Capture => "CAPTURE",
            Step::Commit => "COMMIT",
            Step::Confirm => "CONFIRM",
            Step::CancelShipment => "CANCEL_SHIPMENT",
            Step::VoidOrRefund => "VOID_OR_REFUND",
            Step::Release => "RELEASE",
            Step::Cancel => "CANCEL",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }

    /// `do` for the forward path (CONFIRM included), `compensate` for undoing (CANCEL included).
    pub fn action(self) -> &'static str {
        match self {
            Step::Reserve
            | Step::Authorize
            | Step::Ship
            | Step::Capture
            | Step::Commit
            | Step::Confirm => "do",
            Step::CancelShipment | Step::VoidOrRefund | Step::Release | Step::Cancel => {
                "compensate"
            }
        }
    }

    /// True for CONFIRM and CANCEL, which only write to the orders database.
    pub fn is_local(self) -> bool {
        matches!(self, Step::Confirm | Step::Cancel)
    }

    /// The forward step after this one.
    fn next_forward(self) -> Step {
        match self {
            Step::Reserve => Step::Authorize,
            Step::Authorize => Step::Ship,
            Step::Ship => Step::Capture,
            Step::Capture => Step::Commit,
            _ => Step::Confirm,
        }
    }

    /// The compensation after this one (CANCEL after the last).
    fn next_compensation(self) -> Step {
        match self {
            Step::CancelShipment => Step::VoidOrRefund,
            Step::VoidOrRefund => Step::Release,
            _ => Step::Cancel,
        }
    }

    /// The first compensation when this forward step failed: undo what happened before it,
    /// plus this step itself unless its failure was definitive (it may have taken effect).
    fn first_compensation(self, definitive: bool) -> Step {
        match (self, definitive) {
            (Step::Reserve, true) => Step::Cancel,
            (Step::Reserve, false) | (Step::Authorize, true) => Step::Release,
            (Step::Authorize, false) | (Step::Ship, true) => Step::VoidOrRefund,
            (Step::Ship, false) | (Step::Capture, _) | (Step::Commit, _) => Step::CancelShipment,
            // Local and compensation steps never fail into compensation.
            _ => Step::Cancel,
        }
    }
}

/// Where a saga is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Moving forward.
    Running,
    /// Undoing, after a failure.
    Compensating,
    /// Finished: the order is CONFIRMED (step CONFIRM) or CANCELLED (step CANCEL).
    Done,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 3] = [Phase::Running, Phase::Compensating, Phase::Done];

    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Compensating => "compensating",
            Phase::Done => "done",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|phase| phase.as_str() == s)
    }
}

/// What is persisted of a saga's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaState {
    /// Forward, undoing, or finished.
    pub phase: Phase,
    /// The next step to run (the last one run, once done).
    pub step: Step,
    /// Failed attempts of `step` so far.
    pub attempts: u32,
    /// Why the saga is compensating.
    pub failure: Option<String>,
}

impl SagaState {
    /// A new saga: nothing done yet.
    pub fn start() -> Self {
        Self {
            phase: Phase::Running,
            step: Step::Reserve,
            attempts: 0,
            failure: None,
        }
    }

    /// The order's final status, once the saga is done.
    pub fn order_status(&self) -> Option<OrderStatus> {
        match (self.phase, self.step) {
            (Phase::Done, Step::Confirm) => Some(OrderStatus::Confirmed),
            (Phase::Done, _) => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// The payment and shipment the peers made for an order, as the saga learns them: CAPTURE and
/// the compensations act on them, and the order shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRefs {
    /// The payment, once authorized (or found).
    pub payment_id: Option<String>,
    /// The shipment, once created (or found).
    pub shipment_id: Option<String>,
    /// The shipment's tracking number.
    pub tracking_number: Option<String>,
}

impl PeerRefs {
    /// Keeps what `newer` adds.
    pub fn merge(&mut self, newer: PeerRefs) {
        self.payment_id = newer.payment_id.or(self.payment_id.take());
        self.shipment_id = newer.shipment_id.or(self.shipment_id.take());
        self.tracking_number = newer.tracking_number.or(self.tracking_number.take());
    }
}

/// How a finished saga leaves its order: what its final transaction writes (status, reason,
/// history note, time), and what the saga knew of the peers by then. The request that placed
/// the order builds its answer from it, without reading the order back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEnding {
    /// CONFIRMED or CANCELLED.
    pub status: OrderStatus,
    /// Why it was cancelled (None when confirmed).
    pub reason: Option<String>,
    /// The last history entry's note.
    pub note: String,
    /// When: the order's `updated_at` and its last history entry.
    pub at: OffsetDateTime,
    /// The payment, shipment and tracking number the order shows.
    pub refs: PeerRefs,
}

/// What running a step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step's effect is in place (now or earlier: a repeat finds it done).
    Done(String),
    /// A compensation found nothing to undo.
    NothingToDo(String),
    /// A definitive refusal: repeating the same request cannot succeed.
    Refused(String),
    /// No answer, or a transient one: the same request (same key) may succeed later.
    Failed(String),
}

/// Why an order was cancelled after `step` kept failing (no answer, or a transient one), as the customer
/// reads it: no addresses, step names or client errors (an order's reason is shown to its
/// customer; what failed is in the saga's step log, for operators).
fn gave_up(step: Step) -> String {
    let what = match step {
        Step::Reserve => "your items could not be reserved",
        Step::Authorize => "your payment could not be processed",
        Step::Ship => "your shipment could not be arranged",
        Step::Capture => "your payment could not be completed",
        _ => "your order could not be completed",
    };
    // Lower case like the other reasons, and true whatever the failure was (no answer, or a
    // processor that kept failing): the step was tried several times and never got through.
    format!(
        "{what} after several tries; nothing was charged and nothing is held, please try again \
         in a few minutes"
    )
}

/// How an outcome is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// The step took effect.
    Ok,
    /// The step failed (retried or compensated).
    Failed,
    /// Nothing to undo.
    Skipped,
}

impl Logged {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Logged::Ok => "ok",
            Logged::Failed => "failed",
            Logged::Skipped => "skipped",
        }
    }
}

/// The retry rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Tries of a forward step (before COMMIT) before a transient failure counts as failed.
    pub step_attempts: u32,
}

/// What follows an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state to persist.
    pub state: SagaState,
    /// How the outcome is logged.
    pub logged: Logged,
    /// The same step runs again, after a backoff.
    pub retry: bool,
    /// The card number is no longer needed: AUTHORIZE has a definitive answer (or the saga
    /// ended).
    pub forget_card: bool,
}

/// The next state of a saga at `state` whose current step came to `outcome`.
pub fn advance(state: &SagaState, outcome: &Outcome, policy: Policy) -> Transition {
    let logged = match outcome {
        Outcome::Done(_) => Logged::Ok,
        Outcome::NothingToDo(_) => Logged::Skipped,
        Outcome::Refused(_) | Outcome::Failed(_) => Logged::Failed,
    };
    let succeeded = matches!(outcome, Outcome::Done(_) | Outcome::NothingToDo(_));
    let moved = |phase: Phase, step: Step, failure: Option<String>| Transition {
        forget_card: phase == Phase::Done
            || (succeeded && step_settles_card(state.step))
            || (state.step == Step::Authorize && matches!(outcome, Outcome::Refused(_))),
        state: SagaState {
            phase,
            step,
            attempts: 0,
            failure,
        },
        logged,
        retry: false,
    };
    let again = || Transition {
        state: SagaState {
            attempts: state.attempts.saturating_add(1),
            ..state.clone()
        },
        logged,
        retry: true,
        forget_card: false,
    };
    let failure = state.failure.clone();
    match state.phase {
        Phase::Done => Transition {
            state: state.clone(),
            logged,
            retry: false,
            forget_card: true,
        },
        Phase::Running if state.step.is_local() => match outcome {
            Outcome::Done(_) | Outcome::NothingToDo(_) => moved(Phase::Done, state.step, failure),
            Outcome::Refused(_) | Outcome::Failed(_) => again(),
        },
        Phase::Running => match outcome {
            Outcome::Done(_) | Outcome::NothingToDo(_) => {
                moved(Phase::Running, state.step.next_forward(), None)
            }
            Outcome::Refused(reason) => moved(
                Phase::Compensating,
                state.step.first_compensation(true),
                Some(reason.clone()),
            ),
            Outcome::Failed(_) => {
                let tries = state.attempts.saturating_add(1);
                if state.step == Step::Commit || tries < policy.step_attempts {
                    again()
                } else {
                    moved(
                        Phase::Compensating,
                        state.step.first_compensation(false),
                        Some(gave_up(state.step)),
                    )
                }
            }
        },
        Phase::Compensating => match outcome {
            Outcome::Done(_) | Outcome::NothingToDo(_) if state.step == Step::Cancel => {
                moved(Phase::Done, Step::Cancel, failure)
            }
            Outcome::Done(_) | Outcome::NothingToDo(_) => {
                moved(Phase::Compensating, state.step.next_compensation(), failure)
            }
            Outcome::Refused(_) | Outcome::Failed(_) => again(),
        },
    }
}

/// True for the steps after whose success the card is no longer needed: AUTHORIZE, and the
/// payment's compensation (which settles an authorization whose answer was lost).
fn step_settles_card(step: Step) -> bool {
    matches!(step, Step::Authorize | Step::VoidOrRefund)
}

/// How long to wait before attempt `attempt + 1` of a step: exponential from `base`, capped at
/// `cap`, with "equal jitter" (half fixed, half spread) so that sagas failing together do not
/// retry together. The spread comes from hashing `salt` (the order id) with the attempt, so a
/// replayed run waits exactly as long as the original (see AWS's "Exponential Backoff and
/// Jitter", <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>).
pub fn retry_delay(attempt: u32, base: Duration, cap: Duration, salt: &str) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    let exponential = base.saturating_mul(1u32 << doublings).min(cap);
    let half = exponential / 2;
    let spread_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let mut hasher = std::hash::DefaultHasher::new();
    (salt, attempt).hash(&mut hasher);
    let jitter = hasher.finish() % spread_ms.saturating_add(1);
    half + Duration::from_millis(jitter)
}

pub mod operator;

#[cfg(test)]
mod tests;
