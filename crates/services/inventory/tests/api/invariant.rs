//! The core invariant, property-tested: random sequences of reserve, commit, release, clock
//! moves, expiry passes and stock changes, run against the real service and a model of it.
//!
//! After every step the service must agree with the model on each answer's status and on every
//! stock level, `available` must be ≥ 0, and `sum(available) + units_held + units_committed`
//! must equal the stock ever supplied (which only a stock change alters).

use axum::http::StatusCode;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

use crate::harness::{App, expect_json, product, reserve_body};
use flotilla_inventory::contract::Reservation;

/// Products the sequences play with.
const PRODUCTS: u64 = 3;
/// Units each starts with (small, so stock runs out often).
const START: i64 = 5;

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        id: u8,
        lines: BTreeMap<u64, i64>,
        ttl_secs: u64,
    },
    Commit(u8),
    Release(u8),
    Advance(i64),
    Expire,
    SetStock(u64, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            0u8..6,
            proptest::collection::btree_map(1..=PRODUCTS, 1i64..=4, 1..=3),
            prop_oneof![Just(10u64), Just(60)],
        )
            .prop_map(|(id, lines, ttl_secs)| Op::Reserve { id, lines, ttl_secs }),
        2 => (0u8..6).prop_map(Op::Commit),
        2 => (0u8..6).prop_map(Op::Release),
        1 => (0i64..=40_000).prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => (1..=PRODUCTS, 0i64..=8).prop_map(|(p, n)| Op::SetStock(p, n)),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Held,
    Committed,
    Released,
}

#[derive(Debug)]
struct Held {
    lines: BTreeMap<u64, i64>,
    state: State,
    expires_at: i64,
}

/// What the service should hold.
#[derive(Debug, Default)]
struct Model {
    now: i64,
    available: HashMap<u64, i64>,
    supplied: i64,
    reservations: HashMap<u8, Held>,
}

impl Model {
    fn give_back(&mut self, id: u8) {
        let held = self.reservations.get_mut(&id).expect("known");
        held.state = State::Released;
        for (p, q) in &held.lines {
            *self.available.entry(*p).or_default() += q;
        }
    }

    fn units(&self, state: State) -> i64 {
        self.reservations
            .values()
            .filter(|h| h.state == state)
            .flat_map(|h| h.lines.values())
            .sum()
    }

    /// Applies `op` and returns the status the service must answer with.
    fn apply(&mut self, op: &Op) -> StatusCode {
        match op {
            Op::Reserve {
                id,
                lines,
                ttl_secs,
            } => {
                if let Some(existing) = self.reservations.get(id) {
                    return if existing.lines == *lines {
                        StatusCode::OK
                    } else {
                        StatusCode::CONFLICT
                    };
                }
                if lines.iter().any(|(p, q)| self.available[p] < *q) {
                    return StatusCode::CONFLICT;
                }
                for (p, q) in lines {
                    *self.available.entry(*p).or_default() -= q;
                }
                let expires_at = self.now + i64::try_from(*ttl_secs).expect("small") * 1_000;
                self.reservations.insert(
                    *id,
                    Held {
                        lines: lines.clone(),
                        state: State::Held,
                        expires_at,
                    },
                );
                StatusCode::CREATED
            }
            Op::Commit(id) => match self.reservations.get(id).map(|h| (h.state, h.expires_at)) {
                None => StatusCode::NOT_FOUND,
                Some((State::Committed, _)) => StatusCode::OK,
                Some((State::Released, _)) => StatusCode::CONFLICT,
                Some((State::Held, expires_at)) if expires_at <= self.now => {
                    self.give_back(*id);
                    StatusCode::CONFLICT
                }
                Some((State::Held, _)) => {
                    self.reservations.get_mut(id).expect("known").state = State::Committed;
                    StatusCode::OK
                }
            },
            Op::Release(id) => match self.reservations.get(id).map(|h| h.state) {
                None => StatusCode::NOT_FOUND,
                Some(State::Committed) => StatusCode::CONFLICT,
                Some(State::Released) => StatusCode::OK,
                Some(State::Held) => {
                    self.give_back(*id);
                    StatusCode::OK
                }
            },
            Op::Advance(ms) => {
                self.now += ms;
                StatusCode::OK
            }
            Op::Expire => {
                let due: Vec<u8> = self
                    .reservations
                    .iter()
                    .filter(|(_, h)| h.state == State::Held && h.expires_at <= self.now)
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    self.give_back(id);
                }
                StatusCode::OK
            }
            Op::SetStock(p, n) => {
                self.supplied += n - self.available[p];
                self.available.insert(*p, *n);
                StatusCode::OK
            }
        }
    }
}

/// Sends `op` to the service and returns the status it answered with.
async fn perform(app: &App, op: &Op) -> StatusCode {
    match op {
        Op::Reserve {
            id,
            lines,
            ttl_secs,
        } => {
            let products: Vec<(String, i64)> =
                lines.iter().map(|(p, q)| (product(*p), *q)).collect();
            let lines: Vec<(&str, i64)> = products.iter().map(|(p, q)| (p.as_str(), *q)).collect();
            let mut body = reserve_body(&format!("prop-{id}"), &lines);
            body["ttl_secs"] = (*ttl_secs).into();
            app.post_reserve(body).await.status()
        }
        Op::Commit(id) => app.act(&format!("prop-{id}"), "commit").await.status(),
        Op::Release(id) => app.act(&format!("prop-{id}"), "release").await.status(),
        Op::Advance(ms) => {
            app.clock.advance(*ms);
            StatusCode::OK
        }
        Op::Expire => {
            app.expire().await;
            StatusCode::OK
        }
        Op::SetStock(p, n) => {
            app.set_stock(&product(*p), *n).await;
            StatusCode::OK
        }
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let app = App::start().await;
    let mut model = Model::default();
    for p in 1..=PRODUCTS {
        app.set_stock(&product(p), START).await;
        model.available.insert(p, START);
        model.supplied += START;
    }
    for (step, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let actual = perform(&app, op).await;
        prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);

        let mut total_available = 0;
        for p in 1..=PRODUCTS {
            let available = app.available(&product(p)).await;
            prop_assert!(available >= 0, "step {step}: {p} at {available}");
            prop_assert_eq!(
                available,
                model.available[&p],
                "step {}: product {}",
                step,
                p
            );
            total_available += available;
        }
        let summary = app.summary().await;
        prop_assert_eq!(
            summary.units_held,
            model.units(State::Held),
            "step {}",
            step
        );
        prop_assert_eq!(
            summary.units_committed,
            model.units(State::Committed),
            "step {}",
            step
        );
        prop_assert_eq!(
            total_available + summary.units_held + summary.units_committed,
            model.supplied,
            "step {}: units were created or lost",
            step
        );
    }
    // Every reservation the model knows is where the model says.
    for (id, held) in &model.reservations {
        let r: Reservation = expect_json(
            crate::harness::send(
                app.request(axum::http::Method::GET, &format!("/reservations/prop-{id}")),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        prop_assert_eq!(format!("{:?}", r.status), format!("{:?}", held.state));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn stock_is_conserved_and_never_negative(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops))?;
    }
}
