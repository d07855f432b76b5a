//! Property test: random sequences of authorize, capture, void and refund — with keys reused,
//! on purpose, with the same and with other parameters — against the real service. After every
//! sequence: each payment has at most one entry of each kind and exactly the entries its status
//! implies, captured − refunded equals the amounts of the payments now captured, and every
//! repeated request got the first answer byte for byte (or a 409 when its parameters differed).

use axum::http::{Method, StatusCode};
use flotilla_chassis::pagination::Page;
use flotilla_payments::contract::{DeclineProblem, LedgerKind, Payment, PaymentStatus};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::*;

const CARDS: [&str; 5] = [
    OK_CARD,
    DECLINED_CARD,
    NO_FUNDS_CARD,
    PROCESSING_ERROR_CARD,
    CAPTURE_DECLINED_CARD,
];
const ACTIONS: [&str; 3] = ["capture", "void", "refund"];

#[derive(Debug, Clone)]
enum Op {
    Authorize {
        key: u8,
        card: usize,
        amount: i64,
    },
    Move {
        action: usize,
        key: u8,
        payment: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // The good card is the one whose payments go on to capture and refund: favour it.
        2 => (0_u8..3, prop_oneof![3 => Just(0), 2 => 1..CARDS.len()], 1_i64..=5_000)
            .prop_map(|(key, card, amount)| Op::Authorize { key, card, amount }),
        5 => (0..ACTIONS.len(), 0_u8..4, 0_usize..3)
            .prop_map(|(action, key, payment)| Op::Move { action, key, payment }),
    ]
}

/// Every page of `/admin/payments` (optionally `?status=`).
async fn all_payments(app: &App, status: Option<&str>) -> Vec<Payment> {
    let mut all = Vec::new();
    for page in 1.. {
        let mut path = format!("/admin/payments?page_size=100&page={page}");
        if let Some(status) = status {
            path.push_str(&format!("&status={status}"));
        }
        let page: Page<Payment> = app
            .send(app.as_admin(Method::GET, &path))
            .await
            .json(StatusCode::OK);
        let done = page.items.is_empty();
        all.extend(page.items);
        if done || all.len() as u64 >= page.total {
            break;
        }
    }
    all
}

/// How often the runs hit the paths the property is about, so a generator that stops reaching
/// them fails the test instead of passing it vacuously.
#[derive(Default)]
struct Coverage {
    replays: AtomicUsize,
    conflicts: AtomicUsize,
    captures: AtomicUsize,
    refunds: AtomicUsize,
}

async fn run_case(
    app: &App,
    case: usize,
    ops: Vec<Op>,
    coverage: &Coverage,
) -> Result<(), TestCaseError> {
    let order = format!("prop-{case}");
    let mut payments: Vec<String> = Vec::new();
    // (operation, key) → (parameters, first recorded reply)
    let mut seen: HashMap<(&str, String), (String, Reply)> = HashMap::new();
    for op in ops {
        let (operation, key, params, reply) = match op {
            Op::Authorize { key, card, amount } => {
                let key = format!("{order}-authorize-{key}");
                let reply = app.authorize(&key, &order, amount, CARDS[card]).await;
                ("authorize", key, format!("{card}/{amount}"), reply)
            }
            Op::Move {
                action,
                key,
                payment,
            } => {
                let Some(id) = payments.get(payment % payments.len().max(1)).cloned() else {
                    continue;
                };
                let action = ACTIONS[action];
                let key = format!("{order}-{action}-{key}");
                let reply = app.movement(action, &key, &id).await;
                (action, key, id, reply)
            }
        };
        prop_assert!(
            !reply.status.is_server_error(),
            "{} {}",
            reply.status,
            reply.body
        );
        match seen.get(&(operation, key.clone())) {
            Some((first_params, first)) if *first_params == params => {
                prop_assert!(reply.replayed, "{operation} {key} was not replayed");
                coverage.replays.fetch_add(1, Ordering::Relaxed);
                prop_assert_eq!(reply.status, first.status);
                prop_assert_eq!(&reply.body, &first.body);
            }
            Some(_) => {
                prop_assert_eq!(reply.status, StatusCode::CONFLICT);
                prop_assert_eq!(reply.slug(), "idempotency-conflict");
                coverage.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                prop_assert!(!reply.replayed);
                if reply.status == StatusCode::OK && operation == "capture" {
                    coverage.captures.fetch_add(1, Ordering::Relaxed);
                }
                if reply.status == StatusCode::OK && operation == "refund" {
                    coverage.refunds.fetch_add(1, Ordering::Relaxed);
                }
                // A processing error records nothing: the key stays free.
                if reply.slug() != "processing-error" {
                    seen.insert((operation, key), (params, reply.clone()));
                }
            }
        }
        if operation == "authorize" && !reply.replayed {
            if reply.status == StatusCode::CREATED {
                payments.push(reply.json::<Payment>(StatusCode::CREATED).id);
            } else if reply.slug() == "card-declined" {
                let declined: DeclineProblem = reply.json(StatusCode::PAYMENT_REQUIRED);
                payments.push(declined.payment_id);
            }
        }
    }

    for id in &payments {
        let status = app.payment(id).await.status;
        let ledger = app.ledger(id).await;
        let count = |kind| ledger.iter().filter(|e| e.kind == kind).count();
        let counts = [
            count(LedgerKind::Authorize),
            count(LedgerKind::Capture),
            count(LedgerKind::Void),
            count(LedgerKind::Refund),
        ];
        let expected = match status {
            PaymentStatus::Declined => [0, 0, 0, 0],
            PaymentStatus::Authorized => [1, 0, 0, 0],
            PaymentStatus::Captured => [1, 1, 0, 0],
            PaymentStatus::Voided => [1, 0, 1, 0],
            PaymentStatus::Refunded => [1, 1, 0, 1],
        };
        prop_assert_eq!(counts, expected, "payment {} is {}", id, status);
    }

    let summary = app.summary().await;
    let held: i64 = all_payments(app, Some("captured"))
        .await
        .iter()
        .map(|p| p.amount.amount_minor)
        .sum();
    prop_assert_eq!(summary.captured_total - summary.refunded_total, held);
    Ok(())
}

#[test]
fn random_operation_sequences_keep_the_ledger_straight() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = rt.block_on(App::start());
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let case = AtomicUsize::new(0);
    let coverage = Coverage::default();
    let result = runner.run(&prop::collection::vec(op(), 1..25), |ops| {
        // Shrinking replays cases: each run gets its own order and keys.
        let case = case.fetch_add(1, Ordering::Relaxed);
        rt.block_on(run_case(&app, case, ops, &coverage))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }

    // Across everything the runs did: the summary is the ledger, entry by entry.
    rt.block_on(async {
        let summary = app.summary().await;
        let mut sums: HashMap<LedgerKind, i64> = HashMap::new();
        for payment in all_payments(&app, None).await {
            for entry in app.ledger(&payment.id).await {
                *sums.entry(entry.kind).or_default() += entry.amount.amount_minor;
            }
        }
        let sum = |kind| sums.get(&kind).copied().unwrap_or(0);
        assert_eq!(sum(LedgerKind::Authorize), summary.authorized_total);
        assert_eq!(sum(LedgerKind::Capture), summary.captured_total);
        assert_eq!(sum(LedgerKind::Void), summary.voided_total);
        assert_eq!(sum(LedgerKind::Refund), summary.refunded_total);
        for (what, count) in [
            ("replays", &coverage.replays),
            ("conflicts", &coverage.conflicts),
            ("captures", &coverage.captures),
            ("refunds", &coverage.refunds),
        ] {
            assert!(count.load(Ordering::Relaxed) > 0, "the runs made no {what}");
        }
    });
}
