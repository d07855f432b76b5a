//! The shipping test harness: the service on a fresh SQLite file behind a manual clock, typed
//! helpers for the requests the tests make, and request bodies that pass validation.

use axum::http::{Method, StatusCode};
use flotilla_chassis::clock::ManualClock;
use flotilla_chassis::{Problem, Role};
use flotilla_shipping::NAME;
use flotilla_shipping::contract::{Quote, Shipment};
use flotilla_testkit::TestFleet;
use serde_json::{Value, json};
use std::sync::Arc;

/// Where the manual clock starts: 2025-06-15T15:06:40Z.
pub const START_MILLIS: i64 = 1_750_000_000_000;

/// A running shipping service and the clock it reads.
pub struct App {
    pub fleet: TestFleet,
    pub clock: Arc<ManualClock>,
}

impl App {
    /// Shipping with its default configuration.
    pub async fn start() -> Self {
        Self::with_config(json!({})).await
    }

    /// Shipping with `shipping` as its `[shipping]` configuration section.
    pub async fn with_config(shipping: Value) -> Self {
        let fleet = TestFleet::of(&[flotilla_shipping::SPEC])
            .config("shipping", shipping)
            .manual_clock(START_MILLIS)
            .start()
            .await;
        let clock = fleet.manual_clock().clone();
        Self { fleet, clock }
    }

    /// `method path` with the fleet's service credential and no user.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.fleet.client(NAME).request(method, path)
    }

    /// `method path` acting for `user` with `role`.
    pub fn as_user(
        &self,
        method: Method,
        path: &str,
        user: &str,
        role: Role,
    ) -> reqwest::RequestBuilder {
        self.fleet.client(NAME).as_user(method, path, user, role)
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST reaches shipping")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("GET reaches shipping")
    }

    /// `POST /quotes`, expecting a 201 quote.
    pub async fn quote(&self, body: Value) -> Quote {
        expect_json(self.post("/quotes", &body).await, StatusCode::CREATED).await
    }

    /// `POST /shipments` with `body`.
    pub async fn create(&self, body: &Value) -> reqwest::Response {
        self.post("/shipments", body).await
    }

    /// `POST /shipments` with `body`, expecting `status` and a shipment.
    pub async fn create_expect(&self, body: &Value, status: StatusCode) -> Shipment {
        expect_json(self.create(body).await, status).await
    }

    /// `POST /shipments/{id}/cancel`, expecting the shipment.
    pub async fn cancel(&self, id: &str) -> Shipment {
        let res = self
            .post(&format!("/shipments/{id}/cancel"), &json!({}))
            .await;
        expect_json(res, StatusCode::OK).await
    }

    /// `GET /shipments?order_id=`.
    pub async fn for_order(&self, order_id: &str) -> Vec<Shipment> {
        let res = self
            .request(Method::GET, "/shipments")
            .query(&[("order_id", order_id)])
            .send()
            .await
            .expect("GET reaches shipping");
        expect_json(res, StatusCode::OK).await
    }
}

/// A valid address in `country`.
pub fn address(country: &str) -> Value {
    json!({
        "name": "Ada Lovelace",
        "line1": "Unter den Linden 1",
        "city": "Berlin",
        "postal_code": "10117",
        "country": country,
    })
}

/// A valid `CreateShipment` for `order_id`: two lines (three items) to Germany.
pub fn shipment_body(order_id: &str) -> Value {
    json!({
        "order_id": order_id,
        "address": address("DE"),
        "lines": [
            { "product_id": "p0000001", "quantity": 2 },
            { "product_id": "p0000002", "quantity": 1 },
        ],
    })
}

pub use flotilla_testkit::{expect_json, expect_problem};

/// The field names of a problem's errors.
pub fn error_fields(problem: &Problem) -> Vec<&str> {
    problem.errors.iter().map(|e| e.field.as_str()).collect()
}
