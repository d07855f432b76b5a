//! The saga's state machine, exhaustively: every step × every kind of outcome, then whole runs
//! that fail at each point and must undo exactly what happened, in reverse order.

use super::*;

const POLICY: Policy = Policy { step_attempts: 3 };

/// Forward steps: (step, next after success, first compensation when refused, first
/// compensation when every attempt failed — `None`: it retries instead).
const FORWARD: [(Step, Step, Step, Option<Step>); 5] = [
    (
        Step::Reserve,
        Step::Authorize,
        Step::Cancel,
        Some(Step::Release),
    ),
    (
        Step::Authorize,
        Step::Ship,
        Step::Release,
        Some(Step::VoidOrRefund),
    ),
    (
        Step::Ship,
        Step::Capture,
        Step::VoidOrRefund,
        Some(Step::CancelShipment),
    ),
    (
        Step::Capture,
        Step::Commit,
        Step::CancelShipment,
        Some(Step::CancelShipment),
    ),
    (Step::Commit, Step::Confirm, Step::CancelShipment, None),
];

/// Compensations and what follows each.
const COMPENSATIONS: [(Step, Step); 3] = [
    (Step::CancelShipment, Step::VoidOrRefund),
    (Step::VoidOrRefund, Step::Release),
    (Step::Release, Step::Cancel),
];

fn at(phase: Phase, step: Step, attempts: u32) -> SagaState {
    SagaState {
        phase,
        step,
        attempts,
        failure: (phase != Phase::Running).then(|| "earlier failure".to_owned()),
    }
}

fn outcomes() -> [Outcome; 4] {
    [
        Outcome::Done("done".into()),
        Outcome::NothingToDo("nothing".into()),
        Outcome::Refused("refused".into()),
        Outcome::Failed("timeout".into()),
    ]
}

#[test]
fn names_round_trip() {
    for step in Step::ALL {
        assert_eq!(Step::parse(step.as_str()), Some(step));
    }
    for phase in Phase::ALL {
        assert_eq!(Phase::parse(phase.as_str()), Some(phase));
    }
    assert_eq!(Step::parse("reserve"), None);
    assert_eq!(Phase::parse("RUNNING"), None);
}

#[test]
fn a_forward_success_moves_to_the_next_step() {
    for (step, next, _, _) in FORWARD {
        for outcome in [
            Outcome::Done("ok".into()),
            Outcome::NothingToDo("ok".into()),
        ] {
            let t = advance(&at(Phase::Running, step, 2), &outcome, POLICY);
            assert_eq!(t.state, at(Phase::Running, next, 0), "{step:?}");
            assert!(!t.retry);
            assert_eq!(t.forget_card, step == Step::Authorize, "{step:?}");
        }
        let t = advance(
            &at(Phase::Running, step, 0),
            &Outcome::Done("ok".into()),
            POLICY,
        );
        assert_eq!(t.logged, Logged::Ok);
    }
}

#[test]
fn a_forward_refusal_compensates_what_happened_before() {
    for (step, _, first, _) in FORWARD {
        let t = advance(
            &at(Phase::Running, step, 1),
            &Outcome::Refused("no".into()),
            POLICY,
        );
        assert_eq!(t.state.phase, Phase::Compensating, "{step:?}");
        assert_eq!(t.state.step, first, "{step:?}");
        assert_eq!(t.state.attempts, 0);
        assert_eq!(t.state.failure.as_deref(), Some("no"));
        assert_eq!(t.logged, Logged::Failed);
        assert!(!t.retry);
        assert_eq!(t.forget_card, step == Step::Authorize, "{step:?}");
    }
}

#[test]
fn a_transient_forward_failure_is_retried_while_attempts_remain() {
    for (step, ..) in FORWARD {
        for attempts in 0..POLICY.step_attempts - 1 {
            let t = advance(
                &at(Phase::Running, step, attempts),
                &Outcome::Failed("t".into()),
                POLICY,
            );
            assert_eq!(t.state, at(Phase::Running, step, attempts + 1), "{step:?}");
            assert!(t.retry);
            assert!(!t.forget_card);
            assert_eq!(t.logged, Logged::Failed);
        }
    }
}

#[test]
fn exhausted_attempts_compensate_the_step_itself_too_except_after_the_pivot() {
    for (step, _, _, exhausted) in FORWARD {
        let last = POLICY.step_attempts - 1;
        let t = advance(
            &at(Phase::Running, step, last),
            &Outcome::Failed("timeout".into()),
            POLICY,
        );
        match exhausted {
            Some(first) => {
                assert_eq!(t.state.phase, Phase::Compensating, "{step:?}");
                assert_eq!(t.state.step, first, "{step:?}");
                // The reason is the customer's: in words, without the step or the error.
                let failure = t.state.failure.unwrap_or_default();
                assert!(failure.contains("try again"), "{failure}");
                assert!(
                    !failure.contains(step.as_str()) && !failure.contains("timeout"),
                    "{failure}"
                );
                assert!(!t.retry);
                // The authorization's answer is unknown: the card settles it during VOID_OR_REFUND.
                assert!(!t.forget_card, "{step:?}");
            }
            None => {
                assert_eq!(t.state, at(Phase::Running, step, last + 1));
                assert!(t.retry, "COMMIT never gives up on a transient failure");
                let much_later = advance(
                    &at(Phase::Running, step, 1000),
                    &Outcome::Failed("t".into()),
                    POLICY,
                );
                assert!(much_later.retry);
            }
        }
    }
}

#[test]
fn confirm_finishes_the_saga_or_retries() {
    for outcome in outcomes() {
        let t = advance(&at(Phase::Running, Step::Confirm, 0), &outcome, POLICY);
        if matches!(outcome, Outcome::Done(_) | Outcome::NothingToDo(_)) {
            assert_eq!(
                t.state,
                SagaState {
                    phase: Phase::Done,
                    step: Step::Confirm,
                    attempts: 0,
                    failure: None
                }
            );
            assert!(t.forget_card && !t.retry);
            assert_eq!(t.state.order_status(), Some(OrderStatus::Confirmed));
        } else {
            assert_eq!(t.state, at(Phase::Running, Step::Confirm, 1));
            assert!(t.retry);
        }
    }
}

#[test]
fn compensations_move_on_when_done_or_moot_and_never_give_up() {
    for (step, next) in COMPENSATIONS {
        for outcome in outcomes() {
            for attempts in [0, POLICY.step_attempts, 1000] {
                let t = advance(&at(Phase::Compensating, step, attempts), &outcome, POLICY);
                if matches!(outcome, Outcome::Done(_) | Outcome::NothingToDo(_)) {
                    assert_eq!(t.state, at(Phase::Compensating, next, 0), "{step:?}");
                    assert!(!t.retry);
                    assert_eq!(t.forget_card, step == Step::VoidOrRefund);
                } else {
                    assert_eq!(
                        t.state,
                        at(Phase::Compensating, step, attempts + 1),
                        "{step:?}"
                    );
                    assert!(t.retry);
                    assert!(!t.forget_card);
                }
            }
        }
    }
}

#[test]
fn cancel_finishes_the_saga_keeping_the_reason() {
    for outcome in outcomes() {
        let t = advance(&at(Phase::Compensating, Step::Cancel, 0), &outcome, POLICY);
        if matches!(outcome, Outcome::Done(_) | Outcome::NothingToDo(_)) {
            assert_eq!(t.state, at(Phase::Done, Step::Cancel, 0));
            assert_eq!(t.state.failure.as_deref(), Some("earlier failure"));
            assert_eq!(t.state.order_status(), Some(OrderStatus::Cancelled));
            assert!(t.forget_card);
        } else {
            assert!(t.retry);
        }
    }
}

#[test]
fn a_done_saga_never_moves() {
    for step in [Step::Confirm, Step::Cancel] {
        for outcome in outcomes() {
            let done = at(Phase::Done, step, 0);
            let t = advance(&done, &outcome, POLICY);
            assert_eq!(t.state, done);
            assert!(!t.retry);
        }
    }
    assert_eq!(SagaState::start().order_status(), None);
}

/// Runs a whole saga where `fail` decides each step's outcome; returns the steps run (retries
/// collapsed) and the final state.
fn run(fail: impl Fn(Step, u32) -> Outcome) -> (Vec<Step>, SagaState) {
    let mut state = SagaState::start();
    let mut ran = Vec::new();
    for _ in 0..100 {
        if state.phase == Phase::Done {
            return (ran, state);
        }
        if ran.last() != Some(&state.step) {
            ran.push(state.step);
        }
        let outcome = fail(state.step, state.attempts);
        state = advance(&state, &outcome, POLICY).state;
    }
    panic!("the saga did not finish: {state:?}");
}

#[test]
fn the_happy_path_runs_every_forward_step_once() {
    let (ran, state) = run(|step, _| Outcome::Done(step.as_str().into()));
    use Step::*;
    assert_eq!(ran, [Reserve, Authorize, Ship, Capture, Commit, Confirm]);
    assert_eq!(state.order_status(), Some(OrderStatus::Confirmed));
}

#[test]
fn each_failure_point_undoes_exactly_what_happened_in_reverse_order() {
    use Step::*;
    let cases: [(Step, bool, &[Step]); 9] = [
        (Reserve, true, &[Reserve, Cancel]),
        (Reserve, false, &[Reserve, Release, Cancel]),
        (Authorize, true, &[Reserve, Authorize, Release, Cancel]),
        (
            Authorize,
            false,
            &[Reserve, Authorize, VoidOrRefund, Release, Cancel],
        ),
        (
            Ship,
            true,
            &[Reserve, Authorize, Ship, VoidOrRefund, Release, Cancel],
        ),
        (
            Ship,
            false,
            &[
                Reserve,
                Authorize,
                Ship,
                CancelShipment,
                VoidOrRefund,
                Release,
                Cancel,
            ],
        ),
        (
            Capture,
            true,
            &[
                Reserve,
                Authorize,
                Ship,
                Capture,
                CancelShipment,
                VoidOrRefund,
                Release,
                Cancel,
            ],
        ),
        (
            Capture,
            false,
            &[
                Reserve,
                Authorize,
                Ship,
                Capture,
                CancelShipment,
                VoidOrRefund,
                Release,
                Cancel,
            ],
        ),
        (
            Commit,
            true,
            &[
                Reserve,
                Authorize,
                Ship,
                Capture,
                Commit,
                CancelShipment,
                VoidOrRefund,
                Release,
                Cancel,
            ],
        ),
    ];
    for (failing, definitive, expected) in cases {
        let (ran, state) = run(|step, _| match step {
            s if s == failing && definitive => Outcome::Refused("refused".into()),
            s if s == failing => Outcome::Failed("timeout".into()),
            s => Outcome::Done(s.as_str().into()),
        });
        assert_eq!(ran, expected, "failing {failing:?} definitive={definitive}");
        assert_eq!(state.order_status(), Some(OrderStatus::Cancelled));
    }
}

#[test]
fn transient_failures_that_clear_in_time_change_nothing() {
    let (ran, state) = run(|step, attempts| {
        if attempts + 1 < POLICY.step_attempts {
            Outcome::Failed("blip".into())
        } else {
            Outcome::Done(step.as_str().into())
        }
    });
    assert_eq!(ran.len(), 6);
    assert_eq!(state.order_status(), Some(OrderStatus::Confirmed));
}

#[test]
fn backoff_grows_is_capped_and_replays_exactly() {
    let base = Duration::from_millis(100);
    let cap = Duration::from_secs(5);
    for attempt in 1..40 {
        let d = retry_delay(attempt, base, cap, "ord_1");
        let exponential = base.saturating_mul(1 << (attempt - 1).min(20)).min(cap);
        assert!(
            d >= exponential / 2 && d <= exponential,
            "attempt {attempt}: {d:?}"
        );
        assert_eq!(d, retry_delay(attempt, base, cap, "ord_1"), "deterministic");
    }
    assert!(retry_delay(30, base, cap, "x") <= cap);
    let spread: std::collections::HashSet<Duration> = (0..20)
        .map(|i| retry_delay(4, base, cap, &format!("ord_{i}")))
        .collect();
    assert!(spread.len() > 1, "orders failing together spread out");
}

#[test]
fn newer_peer_refs_win_and_nothing_is_forgotten() {
    let mut refs = PeerRefs {
        payment_id: Some("pay_1".into()),
        ..PeerRefs::default()
    };
    refs.merge(PeerRefs {
        shipment_id: Some("s1".into()),
        tracking_number: Some("FLT1".into()),
        ..PeerRefs::default()
    });
    assert_eq!(refs.payment_id.as_deref(), Some("pay_1"));
    assert_eq!(refs.shipment_id.as_deref(), Some("s1"));
    refs.merge(PeerRefs::default());
    assert_eq!(refs.tracking_number.as_deref(), Some("FLT1"));
}
