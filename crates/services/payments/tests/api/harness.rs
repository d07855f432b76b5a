//! The payments test harness: the service on a fresh SQLite file with a manual clock, typed
//! helpers for the requests the tests make, and assertions on status and body.

use axum::http::{Method, StatusCode};
use flotilla_chassis::clock::ManualClock;
use flotilla_chassis::problem::PROBLEM_JSON;
use flotilla_chassis::{Problem, Role};
use flotilla_payments::client::PaymentsClient;
use flotilla_payments::contract::{LedgerEntry, LedgerKind, Payment, PaymentSummary};
use flotilla_testkit::TestFleet;
use serde_json::{Value, json};
use std::sync::Arc;

/// The card that always succeeds.
pub const OK_CARD: &str = "4242424242424242";
/// Declined with `card_declined`.
pub const DECLINED_CARD: &str = "4000000000000002";
/// Declined with `insufficient_funds`.
pub const NO_FUNDS_CARD: &str = "4000000000009995";
/// The processor fails (503, retryable).
pub const PROCESSING_ERROR_CARD: &str = "4000000000000119";
/// Authorizes, but its capture is declined.
pub const CAPTURE_DECLINED_CARD: &str = "4000000000000341";

/// The header a replayed answer carries.
pub const REPLAYED: &str = "idempotent-replayed";

/// A running payments service and the clock it reads.
pub struct App {
    pub fleet: TestFleet,
    pub clock: Arc<ManualClock>,
}

/// A response read whole: status, replay marker and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub replayed: bool,
    pub content_type: Option<String>,
    pub body: String,
}

impl Reply {
    async fn read(res: reqwest::Response) -> Self {
        let status = res.status();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let replayed = header(REPLAYED).as_deref() == Some("true");
        let content_type = header(reqwest::header::CONTENT_TYPE.as_str());
        let body = res.text().await.expect("body");
        Self {
            status,
            replayed,
            content_type,
            body,
        }
    }

    /// The body as JSON of type `T`, asserting `status`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, status: StatusCode) -> T {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("undecodable body {}: {e}", self.body))
    }

    /// The body as a problem document, asserting `status` and the problem media type.
    pub fn problem(&self, status: StatusCode) -> Problem {
        let problem: Problem = self.json(status);
        assert_eq!(self.content_type.as_deref(), Some(PROBLEM_JSON));
        assert_eq!(problem.status, status.as_u16());
        problem
    }

    /// The problem's slug (`type` without `urn:flotilla:problem:`).
    pub fn slug(&self) -> String {
        let value: Value = serde_json::from_str(&self.body).expect("json body");
        value["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:flotilla:problem:"))
            .unwrap_or_default()
            .to_owned()
    }
}

impl App {
    /// Payments with its default configuration.
    pub async fn start() -> Self {
        Self::with_config(json!({})).await
    }

    /// Payments with `payments` as its configuration section.
    pub async fn with_config(payments: Value) -> Self {
        let fleet = TestFleet::of(&[flotilla_payments::SPEC])
            .config("payments", payments)
            .manual_clock(1_750_000_000_000)
            .start()
            .await;
        let clock = fleet.manual_clock().clone();
        Self { fleet, clock }
    }

    /// A request with the service credential and no user, as the orders service sends it.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.fleet
            .client(flotilla_payments::NAME)
            .request(method, path)
    }

    /// A request acting for an admin.
    pub fn as_admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.fleet
            .client(flotilla_payments::NAME)
            .as_user(method, path, "ops", Role::Admin)
    }

    /// Sends `req` and reads the whole reply.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        Reply::read(req.send().await.expect("request reaches payments")).await
    }

    /// `POST /payments` with `body` under `key`.
    pub async fn authorize_raw(&self, key: &str, body: Value) -> Reply {
        let req = self
            .request(Method::POST, "/payments")
            .header("idempotency-key", key)
            .json(&body);
        self.send(req).await
    }

    /// `POST /payments` for `order` of `amount` EUR cents on `card`.
    pub async fn authorize(&self, key: &str, order: &str, amount: i64, card: &str) -> Reply {
        self.authorize_raw(key, authorize_body(order, amount, card))
            .await
    }

    /// Authorizes with the good card and expects the payment.
    pub async fn authorized(&self, order: &str, amount: i64) -> Payment {
        let key = format!("auth-{order}-{amount}");
        self.authorize(&key, order, amount, OK_CARD)
            .await
            .json(StatusCode::CREATED)
    }

    /// `POST /payments/{id}/{action}` under `key`.
    pub async fn movement(&self, action: &str, key: &str, id: &str) -> Reply {
        let req = self
            .request(Method::POST, &format!("/payments/{id}/{action}"))
            .header("idempotency-key", key);
        self.send(req).await
    }

    /// `GET /payments/{id}`.
    pub async fn payment(&self, id: &str) -> Payment {
        let req = self.request(Method::GET, &format!("/payments/{id}"));
        self.send(req).await.json(StatusCode::OK)
    }

    /// `GET /payments?order_id=`.
    pub async fn for_order(&self, order: &str) -> Vec<Payment> {
        let req = self
            .request(Method::GET, "/payments")
            .query(&[("order_id", order)]);
        self.send(req).await.json(StatusCode::OK)
    }

    /// `GET /admin/payments/{id}/ledger`.
    pub async fn ledger(&self, id: &str) -> Vec<LedgerEntry> {
        let req = self.as_admin(Method::GET, &format!("/admin/payments/{id}/ledger"));
        self.send(req).await.json(StatusCode::OK)
    }

    /// How many ledger entries of `kind` payment `id` has.
    pub async fn ledger_count(&self, id: &str, kind: LedgerKind) -> usize {
        self.ledger(id)
            .await
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    /// `GET /admin/summary` in EUR.
    pub async fn summary(&self) -> PaymentSummary {
        let req = self.as_admin(Method::GET, "/admin/summary");
        self.send(req).await.json(StatusCode::OK)
    }

    /// A typed client over real HTTP with the fleet's service credential.
    pub fn client(&self) -> PaymentsClient {
        PaymentsClient::new(self.fleet.client(flotilla_payments::NAME).transport())
    }
}

/// An authorization body.
pub fn authorize_body(order: &str, amount: i64, card: &str) -> Value {
    json!({
        "order_id": order,
        "amount": { "amount_minor": amount, "currency": "EUR" },
        "card_number": card,
    })
}
