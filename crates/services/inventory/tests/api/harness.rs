//! What every inventory test starts from: the inventory alone on a fresh SQLite file, seeded
//! with a few products, reading a manual clock; and terse ways to ask it things and check its
//! answers.

use axum::http::{Method, StatusCode};
use flotilla_chassis::Role;
use flotilla_chassis::clock::ManualClock;
use flotilla_inventory::contract::{InventorySummary, Reservation, StockLevel};
use flotilla_testkit::TestFleet;
use serde_json::{Value, json};
use std::sync::Arc;

pub use flotilla_testkit::{expect_json, expect_problem, product_id as product};

/// Products every test inventory is seeded with: `p0000001` to `p0000020`.
pub const SEEDED: u64 = 20;
/// Units each seeded product starts with.
pub const INITIAL: i64 = 100;
/// Where the manual clock starts (2025-06-15T15:06:40Z).
pub const T0: i64 = 1_750_000_000_000;

/// A running inventory and the clock it reads.
pub struct App {
    pub fleet: TestFleet,
    pub clock: Arc<ManualClock>,
}

impl App {
    /// The inventory with the test seed and otherwise default configuration.
    pub async fn start() -> Self {
        Self::with_config(json!({})).await
    }

    /// The inventory with `extra` merged over the test seed as its `[inventory]` section.
    pub async fn with_config(extra: Value) -> Self {
        let fleet = TestFleet::of(&[flotilla_inventory::SPEC])
            .config(
                "inventory",
                json!({ "seed_products": SEEDED, "initial_stock": INITIAL }),
            )
            .config("inventory", extra)
            .manual_clock(T0)
            .start()
            .await;
        let clock = fleet.manual_clock().clone();
        Self { fleet, clock }
    }

    /// A credentialed request acting for nobody (as another service calls).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.fleet
            .client(flotilla_inventory::NAME)
            .request(method, path)
    }

    /// A request acting for user `user` with `role`.
    pub fn as_user(&self, method: Method, path: &str, role: Role) -> reqwest::RequestBuilder {
        let inventory = self.fleet.client(flotilla_inventory::NAME);
        match role {
            Role::Admin => inventory.as_admin(method, path),
            Role::Customer => inventory.as_customer(method, path, "alice"),
        }
    }

    /// `GET /stock/{product}`, raw.
    pub async fn get_stock(&self, product: &str) -> reqwest::Response {
        send(self.request(Method::GET, &format!("/stock/{product}"))).await
    }

    /// The available units of `product`.
    pub async fn available(&self, product: &str) -> i64 {
        let level: StockLevel = expect_json(self.get_stock(product).await, StatusCode::OK).await;
        assert_eq!(level.product_id.to_string(), product);
        level.available
    }

    /// `PUT /stock/{product}` as an admin, raw.
    pub async fn put_stock(&self, product: &str, body: Value) -> reqwest::Response {
        send(
            self.as_user(Method::PUT, &format!("/stock/{product}"), Role::Admin)
                .json(&body),
        )
        .await
    }

    /// Sets the stock of `product` as an admin, expecting success.
    pub async fn set_stock(&self, product: &str, available: i64) -> StockLevel {
        let res = self
            .put_stock(product, json!({ "available": available }))
            .await;
        expect_json(res, StatusCode::OK).await
    }

    /// `POST /reservations` with `body`, raw.
    pub async fn post_reserve(&self, body: Value) -> reqwest::Response {
        send(self.request(Method::POST, "/reservations").json(&body)).await
    }

    /// Reserves `lines` (product, quantity) under `id`, expecting 201.
    pub async fn reserve(&self, id: &str, lines: &[(&str, i64)]) -> Reservation {
        let res = self.post_reserve(reserve_body(id, lines)).await;
        expect_json(res, StatusCode::CREATED).await
    }

    /// `POST /reservations/{id}/{action}`, raw.
    pub async fn act(&self, id: &str, action: &str) -> reqwest::Response {
        send(self.request(Method::POST, &format!("/reservations/{id}/{action}"))).await
    }

    /// Commits `id`, expecting 200.
    pub async fn commit(&self, id: &str) -> Reservation {
        expect_json(self.act(id, "commit").await, StatusCode::OK).await
    }

    /// Releases `id`, expecting 200.
    pub async fn release(&self, id: &str) -> Reservation {
        expect_json(self.act(id, "release").await, StatusCode::OK).await
    }

    /// `GET /reservations/{id}`, expecting 200.
    pub async fn reservation(&self, id: &str) -> Reservation {
        let res = send(self.request(Method::GET, &format!("/reservations/{id}"))).await;
        expect_json(res, StatusCode::OK).await
    }

    /// `GET /admin/summary` as an admin.
    pub async fn summary(&self) -> InventorySummary {
        let res = send(self.as_user(Method::GET, "/admin/summary", Role::Admin)).await;
        expect_json(res, StatusCode::OK).await
    }

    /// Runs one expiry pass (`POST /admin/expire`) and returns how many it released.
    pub async fn expire(&self) -> u64 {
        let res = send(self.as_user(Method::POST, "/admin/expire", Role::Admin)).await;
        let pass: Value = expect_json(res, StatusCode::OK).await;
        pass["released"].as_u64().expect("released is a count")
    }
}

/// Sends `request`, panicking (test code) if the service cannot be reached.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("the inventory answers")
}

/// A `ReserveRequest` body.
pub fn reserve_body(id: &str, lines: &[(&str, i64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(product_id, quantity)| json!({ "product_id": product_id, "quantity": quantity }))
        .collect();
    json!({ "reservation_id": id, "lines": lines })
}
