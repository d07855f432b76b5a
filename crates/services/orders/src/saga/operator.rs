//! What an operator may do to a saga, decided from its state alone (no I/O, every case tested
//! below): retry it now, compensate it now, or set it aside for manual review.
//!
//! Each action is built so that it cannot do what the saga itself would not:
//! - **Retry** keeps the saga where it is — the same phase, the same step, hence the same
//!   idempotency keys — and only forgets the failed attempts and the backoff. A step that in
//!   fact succeeded downstream is found done by its peer, never done twice.
//! - **Compensate** turns a forward saga to compensating exactly as a step that kept failing
//!   does ([`Step::first_compensation`] with a non-definitive failure: the current step is
//!   undone too, since it may have taken effect), so the normal compensations run and the
//!   order ends CANCELLED. It is refused past the pivot (COMMIT, CONFIRM: the money is
//!   captured and the parcel handed over, and the saga only goes forward from there), and
//!   while already compensating (compensations never give up; retry to hurry them).
//! - **Review** changes nothing but a flag that keeps the recovery loop away until an operator
//!   retries or compensates.
//!
//! A finished saga refuses all three. The store applies a decision with an update conditional
//! on the very state it was made from, and on no executor holding the saga.

use super::{Phase, SagaState, Step};

/// What the customer reads when an operator cancelled the order.
pub const OPERATOR_CANCELLED: &str = "your order was cancelled by the shop; anything charged is \
                                      given back and nothing is held";

/// An operator's action on a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the current step again now, with the same keys.
    Retry,
    /// Undo what was done, now, and cancel the order.
    Compensate,
    /// Keep the recovery loop away until an operator decides.
    Review,
}

impl Action {
    /// Its name in the audit trail.
    pub fn audit_name(self) -> &'static str {
        match self {
            Action::Retry => "saga.retry",
            Action::Compensate => "saga.compensate",
            Action::Review => "saga.review",
        }
    }
}

/// Why the action is refused, as the operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The state `action` leaves a saga at `state` in (`under_review`: it is set aside now), or
/// why it may not be taken.
pub fn decide(state: &SagaState, under_review: bool, action: Action) -> Result<SagaState, Refused> {
    let at = format!("{} at {}", state.phase.as_str(), state.step.as_str());
    if let Some(status) = state.order_status() {
        return Err(Refused(format!(
            "the saga is finished: the order is {}; there is nothing left to {}",
            status.as_str(),
            match action {
                Action::Retry => "retry",
                Action::Compensate => "compensate",
                Action::Review => "review",
            }
        )));
    }
    match action {
        Action::Retry => Ok(SagaState {
            attempts: 0,
            ..state.clone()
        }),
        Action::Review if under_review => Err(Refused(format!(
            "the saga ({at}) is already set aside for review; retry or compensate it"
        ))),
        Action::Review => Ok(state.clone()),
        Action::Compensate => match (state.phase, state.step) {
            (Phase::Compensating, _) => Err(Refused(format!(
                "the saga is already compensating ({at}); retry it to run the compensation now"
            ))),
            (_, Step::Commit | Step::Confirm) => Err(Refused(format!(
                "the saga is past its pivot ({at}): the payment is captured and the shipment \
                 handed over, so it can only go forward; retry it"
            ))),
            _ => Ok(SagaState {
                phase: Phase::Compensating,
                step: state.step.first_compensation(false),
                attempts: 0,
                failure: Some(OPERATOR_CANCELLED.to_owned()),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(phase: Phase, step: Step, attempts: u32) -> SagaState {
        SagaState {
            phase,
            step,
            attempts,
            failure: None,
        }
    }

    #[test]
    fn a_finished_saga_refuses_everything() {
        for step in [Step::Confirm, Step::Cancel] {
            for action in [Action::Retry, Action::Compensate, Action::Review] {
                let refused = decide(&at(Phase::Done, step, 0), false, action);
                assert!(refused.is_err(), "{step:?} {action:?}");
            }
        }
    }

    #[test]
    fn retry_keeps_the_step_and_forgets_the_attempts() {
        for phase in [Phase::Running, Phase::Compensating] {
            for step in Step::ALL {
                let from = at(phase, step, 7);
                let to = decide(&from, true, Action::Retry).expect("allowed");
                assert_eq!(to, at(phase, step, 0));
            }
        }
    }

    #[test]
    fn compensate_undoes_the_current_step_too_and_stops_at_the_pivot() {
        let cases = [
            (Step::Reserve, Some(Step::Release)),
            (Step::Authorize, Some(Step::VoidOrRefund)),
            (Step::Ship, Some(Step::CancelShipment)),
            (Step::Capture, Some(Step::CancelShipment)),
            (Step::Commit, None),
            (Step::Confirm, None),
        ];
        for (step, first) in cases {
            let decided = decide(&at(Phase::Running, step, 2), false, Action::Compensate);
            match first {
                Some(first) => {
                    let to = decided.expect("allowed");
                    assert_eq!(to.phase, Phase::Compensating);
                    assert_eq!(to.step, first, "{step:?}");
                    assert_eq!(to.attempts, 0);
                    assert_eq!(to.failure.as_deref(), Some(OPERATOR_CANCELLED));
                }
                None => assert!(decided.is_err(), "{step:?} is past the pivot"),
            }
        }
        let compensating = at(Phase::Compensating, Step::Release, 3);
        assert!(decide(&compensating, false, Action::Compensate).is_err());
    }

    #[test]
    fn review_once_until_decided() {
        let from = at(Phase::Running, Step::Authorize, 2);
        assert_eq!(decide(&from, false, Action::Review), Ok(from.clone()));
        assert!(decide(&from, true, Action::Review).is_err());
    }
}
