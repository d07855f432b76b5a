//! The money movements against a real database (SQLite, or PostgreSQL when
//! `FLOTILLA_TEST_DATABASE_URL` is set): a failure at any statement, or a request abandoned at
//! any point, leaves a key and its effect together or neither, so the retry either replays the
//! answer of an effect that happened or makes the effect, once.

use super::*;
use axum::http::HeaderValue;
use flotilla_chassis::db::Backend;
use flotilla_chassis::{Currency, Db};
use flotilla_testkit::{TestDatabases, test_db};
use std::future::Future;
use std::task::Poll;

use crate::contract::Payment;
use crate::store::MIGRATIONS;

const NOW_MILLIS: i64 = 1_750_000_000_000;

/// A moment `plus` milliseconds after the tests' fixed now.
fn at(plus: i64) -> OffsetDateTime {
    flotilla_chassis::clock::at_millis(NOW_MILLIS + plus)
}
const OK_CARD: &str = "4242424242424242";

/// A migrated store, its database (for injecting failures) and the guard that drops it.
async fn store() -> (PaymentsStore, Db, TestDatabases) {
    let (db, guard) = test_db("payments").await;
    db.migrate(MIGRATIONS).await.expect("migrate");
    (PaymentsStore::new(db.clone()), db, guard)
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(&HeaderValue::from_str(text).expect("header")).expect("key")
}

fn authorization(order: &str) -> Authorization {
    let request = AuthorizeRequest {
        order_id: order.to_owned(),
        amount: Money::new(1000, Currency::EUR),
        card_number: OK_CARD.to_owned(),
    };
    Authorization::parse(&request, 100_000_000).expect("valid")
}

/// True when `key` holds an answer for `operation` (any answer: a probe's fingerprint matches
/// none, so a used key shows as a conflict).
async fn key_used(store: &PaymentsStore, key: &IdempotencyKey, operation: LedgerKind) -> bool {
    let probe = RequestHash::of(&["probe"]);
    store
        .prior(key, operation, &probe)
        .await
        .expect("read key")
        .is_some()
}

fn payment_of(answer: &Answer) -> Payment {
    serde_json::from_str(&answer.response.body).expect("payment body")
}

/// Makes every `event` (INSERT or UPDATE) on `table` fail, as a crash at that statement would.
async fn break_table(db: &Db, table: &str, event: &str) {
    let statements = match db.backend() {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER broken_{table} BEFORE {event} ON {table}
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )],
        Backend::Postgres => vec![
            "CREATE OR REPLACE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
                .to_owned(),
            format!(
                "CREATE TRIGGER broken_{table} BEFORE {event} ON {table}
                 FOR EACH ROW EXECUTE FUNCTION injected_failure()"
            ),
        ],
    };
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(db.pool())
            .await
            .expect("inject failure");
    }
}

async fn repair_table(db: &Db, table: &str) {
    let sql = match db.backend() {
        Backend::Sqlite => format!("DROP TRIGGER broken_{table}"),
        Backend::Postgres => format!("DROP TRIGGER broken_{table} ON {table}"),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(db.pool())
        .await
        .expect("repair");
}

#[tokio::test]
async fn a_failure_at_any_statement_of_an_authorization_leaves_no_trace() {
    let (store, db, _guard) = store().await;
    for (i, table) in ["idempotency_keys", "payments", "ledger"]
        .into_iter()
        .enumerate()
    {
        let key = key(&format!("auth-{i}"));
        let order = format!("order-{i}");
        break_table(&db, table, "INSERT").await;
        let failed = authorize(&store, at(0), &key, authorization(&order)).await;
        assert!(
            matches!(failed, Err(PaymentsError::Storage(_))),
            "{table}: {failed:?}"
        );
        repair_table(&db, table).await;
        assert!(
            !key_used(&store, &key, LedgerKind::Authorize).await,
            "{table}"
        );
        assert!(
            store
                .for_order(&OrderId::parse(&order).expect("an order id"))
                .await
                .expect("read")
                .is_empty()
        );
        // The retry runs afresh and takes effect once.
        let answer = authorize(&store, at(0), &key, authorization(&order))
            .await
            .expect("retry");
        assert_eq!(answer.response.status, StatusCode::CREATED);
        assert!(!answer.replayed);
        let payments = store
            .for_order(&OrderId::parse(&order).expect("an order id"))
            .await
            .expect("read");
        assert_eq!(payments.len(), 1);
        assert_eq!(store.ledger(&payments[0].id).await.expect("read").len(), 1);
    }
}

#[tokio::test]
async fn a_failure_at_any_statement_of_a_capture_leaves_the_payment_as_it_was() {
    let (store, db, _guard) = store().await;
    for (i, (table, event)) in [
        ("payments", "UPDATE"),
        ("idempotency_keys", "INSERT"),
        ("ledger", "INSERT"),
    ]
    .into_iter()
    .enumerate()
    {
        let authorized = authorize(&store, at(0), &key(&format!("auth-{i}")), {
            authorization(&format!("order-{i}"))
        })
        .await
        .expect("authorize");
        let id = PaymentId::parse(&payment_of(&authorized).id).expect("id");
        let key = key(&format!("capture-{i}"));
        break_table(&db, table, event).await;
        let failed = transition(&store, at(1), &key, id.as_str(), Transition::Capture).await;
        assert!(
            matches!(failed, Err(PaymentsError::Storage(_))),
            "{table}: {failed:?}"
        );
        repair_table(&db, table).await;
        assert!(
            !key_used(&store, &key, LedgerKind::Capture).await,
            "{table}"
        );
        let payment = store.payment(&id).await.expect("read").expect("payment");
        assert_eq!(payment.status, PaymentStatus::Authorized, "{table}");
        assert_eq!(store.ledger(&id).await.expect("read").len(), 1, "{table}");
        let answer = transition(&store, at(2), &key, id.as_str(), Transition::Capture)
            .await
            .expect("retry");
        assert_eq!(answer.response.status, StatusCode::OK);
        assert!(!answer.replayed);
        assert_eq!(payment_of(&answer).status, PaymentStatus::Captured);
        assert_eq!(store.ledger(&id).await.expect("read").len(), 2);
    }
}

/// Polls `fut` at most `polls` times, then drops it wherever it stands, as a client that went
/// away or a process that died would leave it; its output if it finished first.
async fn abandon_after<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut left = polls;
    std::future::poll_fn(|cx| {
        if left == 0 {
            return Poll::Ready(None);
        }
        left -= 1;
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Abandons `run(case)` after 0, 1, 2, ... polls until it finishes untouched, and runs
/// `check(case)` after each attempt, every attempt with a case number of its own: every point at
/// which the operation can be stopped is tried. Where the polls fall depends on how fast the
/// database answers, so the sweep is made [`ROUNDS`] times.
async fn abandon_everywhere<R, RF, C, CF>(mut run: R, mut check: C)
where
    R: FnMut(usize) -> RF,
    RF: Future<Output = Result<Answer, PaymentsError>>,
    C: FnMut(usize) -> CF,
    CF: Future<Output = ()>,
{
    for round in 0..ROUNDS {
        let mut finished = false;
        for polls in 0..MAX_POLLS {
            let case = round * MAX_POLLS + polls;
            finished = abandon_after(run(case), polls).await.is_some();
            check(case).await;
            if finished {
                break;
            }
        }
        assert!(
            finished,
            "the operation did not finish in {MAX_POLLS} polls"
        );
    }
}

/// More polls than any money movement needs.
const MAX_POLLS: usize = 50;
/// How many times the sweep is made.
const ROUNDS: usize = 4;

#[tokio::test]
async fn an_authorization_abandoned_at_any_point_leaves_its_key_and_payment_together() {
    let (store, _db, _guard) = store().await;
    let store = &store;
    let case_of = |case: usize| (key(&format!("auth-{case}")), format!("order-{case}"));
    abandon_everywhere(
        |case| async move {
            let (key, order) = case_of(case);
            authorize(store, at(0), &key, authorization(&order)).await
        },
        // The retry runs to completion; then there is one payment, and it is the one the key's
        // answer names: an effect without its key would have made a second one, a key without
        // its effect would name a missing one.
        |case| async move {
            let (key, order) = case_of(case);
            let retry = authorize(store, at(0), &key, authorization(&order))
                .await
                .expect("retry");
            assert_eq!(retry.response.status, StatusCode::CREATED);
            let payments = store
                .for_order(&OrderId::parse(&order).expect("an order id"))
                .await
                .expect("read");
            assert_eq!(payments.len(), 1, "case {case}");
            assert_eq!(payment_of(&retry).id, payments[0].id.as_str());
            let ledger = store.ledger(&payments[0].id).await.expect("read");
            assert_eq!(ledger.len(), 1, "case {case}");
        },
    )
    .await;
}

#[tokio::test]
async fn a_capture_abandoned_at_any_point_leaves_its_key_and_capture_together() {
    let (store, _db, _guard) = store().await;
    let store = &store;
    let mut ids = Vec::new();
    for i in 0..ROUNDS * MAX_POLLS {
        let answer = authorize(
            store,
            at(0),
            &key(&format!("auth-{i}")),
            authorization(&format!("order-{i}")),
        )
        .await
        .expect("authorize");
        ids.push(PaymentId::parse(&payment_of(&answer).id).expect("id"));
    }
    let ids = &ids;
    let capture = |case: usize| async move {
        let key = key(&format!("capture-{case}"));
        transition(store, at(1), &key, ids[case].as_str(), Transition::Capture).await
    };
    abandon_everywhere(capture, |case| async move {
        // Captured once, whether the abandoned attempt committed (the retry replays) or not
        // (the retry captures).
        let retry = capture(case).await.expect("retry");
        assert_eq!(
            retry.response.status,
            StatusCode::OK,
            "{}",
            retry.response.body
        );
        assert_eq!(payment_of(&retry).status, PaymentStatus::Captured);
        let id = &ids[case];
        let payment = store.payment(id).await.expect("read").expect("payment");
        assert_eq!(payment.status, PaymentStatus::Captured);
        let captures = store
            .ledger(id)
            .await
            .expect("read")
            .iter()
            .filter(|e| e.kind == LedgerKind::Capture)
            .count();
        assert_eq!(captures, 1, "case {case}");
    })
    .await;
}
