//! How many SQL statements each money movement costs, counted from sqlx's own statement log.
//!
//! On SQLite every statement (and every BEGIN and COMMIT, which sqlx does not log) is a round
//! trip to the connection's worker thread: two context switches. These budgets keep the money
//! movements from growing new statements unnoticed. Every movement is one transaction (BEGIN and
//! COMMIT; ROLLBACK when it replays or finds no payment), except a processing error, which runs
//! its one statement alone. Its own test binary, because it installs a process-wide subscriber
//! and would count the statements of any test running beside it.

use axum::http::{Method, StatusCode};
use flotilla_testkit::TestFleet;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// The statements logged since the last [`take`].
static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every `sqlx::query` event and nothing else.
struct StatementLog;

/// The statement's text: in full when sqlx logged it in full, else its summary.
#[derive(Default)]
struct Statement {
    summary: String,
    full: String,
}

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.full),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Subscriber for StatementLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut statement = Statement::default();
        event.record(&mut statement);
        // Only the service's own tables: the platform's outbox relay polls on its own schedule,
        // and so does the retention task's DELETE.
        let text = format!("{} {}", statement.summary, statement.full);
        let own = ["payments", "ledger", "idempotency_keys"]
            .iter()
            .any(|table| text.contains(table));
        if own && !text.starts_with("DELETE FROM idempotency_keys") {
            STATEMENTS.lock().expect("log").push(statement.summary);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The statements logged since the last call.
fn take() -> Vec<String> {
    STATEMENTS.lock().expect("log").drain(..).collect()
}

struct Shop {
    fleet: TestFleet,
}

impl Shop {
    async fn post(&self, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .fleet
            .request(Method::POST, flotilla_payments::NAME, path)
            .header("idempotency-key", key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request reaches payments");
        let status = res.status();
        (status, res.json().await.expect("json body"))
    }

    async fn authorize(&self, key: &str, order: &str, card: &str) -> (StatusCode, Value) {
        let body = json!({
            "order_id": order,
            "amount": { "amount_minor": 1000, "currency": "EUR" },
            "card_number": card,
        });
        self.post("/payments", key, Some(body)).await
    }

    async fn movement(&self, action: &str, key: &str, id: &str) -> (StatusCode, Value) {
        self.post(&format!("/payments/{id}/{action}"), key, None)
            .await
    }
}

fn id_of(reply: &(StatusCode, Value)) -> String {
    reply.1["id"].as_str().expect("payment id").to_owned()
}

#[tokio::test]
async fn money_movements_stay_within_their_statement_budgets() {
    tracing::subscriber::set_global_default(StatementLog).expect("first subscriber");
    let shop = Shop {
        fleet: TestFleet::start(&[flotilla_payments::SPEC]).await,
    };
    let mut table = String::new();
    let mut over = Vec::new();
    // Measures one request: (what, expected status, statement budget).
    let mut measure = |what: &str, reply: &(StatusCode, Value), want: StatusCode, budget: usize| {
        let statements = take();
        assert_eq!(reply.0, want, "{what}: {}", reply.1);
        writeln!(table, "{what:<40} {:>2}  {statements:?}", statements.len()).expect("write");
        if statements.len() > budget {
            over.push(format!("{what}: {} > {budget}", statements.len()));
        }
    };
    take();

    let auth = shop.authorize("a1", "order-1", "4242424242424242").await;
    measure("authorize", &auth, StatusCode::CREATED, 3);
    let reply = shop.authorize("a1", "order-1", "4242424242424242").await;
    measure("authorize, replayed", &reply, StatusCode::CREATED, 2);
    let reply = shop.authorize("a1", "order-2", "4242424242424242").await;
    measure("authorize, key conflict", &reply, StatusCode::CONFLICT, 2);
    let reply = shop.authorize("a2", "order-2", "4000000000000002").await;
    measure(
        "authorize, declined",
        &reply,
        StatusCode::PAYMENT_REQUIRED,
        2,
    );
    let reply = shop.authorize("a3", "order-3", "4000000000000119").await;
    measure(
        "authorize, processing error",
        &reply,
        StatusCode::PAYMENT_REQUIRED,
        1,
    );

    let paid = id_of(&auth);
    let reply = shop.movement("capture", "c1", &paid).await;
    measure("capture", &reply, StatusCode::OK, 3);
    let reply = shop.movement("capture", "c1", &paid).await;
    measure("capture, replayed", &reply, StatusCode::OK, 2);
    let reply = shop.movement("capture", "c2", &paid).await;
    measure("capture, already captured", &reply, StatusCode::CONFLICT, 3);
    let reply = shop.movement("refund", "r1", &paid).await;
    measure("refund", &reply, StatusCode::OK, 3);
    let reply = shop.movement("refund", "r1", &paid).await;
    measure("refund, replayed", &reply, StatusCode::OK, 2);

    let held = id_of(&shop.authorize("a4", "order-4", "4242424242424242").await);
    take();
    let reply = shop.movement("void", "v1", &held).await;
    measure("void", &reply, StatusCode::OK, 3);
    let reply = shop.movement("void", "v2", &held).await;
    measure("void, already voided (new key)", &reply, StatusCode::OK, 3);

    let stuck = id_of(&shop.authorize("a5", "order-5", "4000000000000341").await);
    take();
    let reply = shop.movement("capture", "c3", &stuck).await;
    measure(
        "capture, declined by the card",
        &reply,
        StatusCode::PAYMENT_REQUIRED,
        3,
    );
    let reply = shop
        .movement("capture", "c4", "pay_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b")
        .await;
    measure("capture, unknown payment", &reply, StatusCode::NOT_FOUND, 2);

    println!("{table}");
    assert!(over.is_empty(), "over budget: {over:?}\n{table}");
}
