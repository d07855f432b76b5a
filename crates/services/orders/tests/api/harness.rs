//! What every orders test starts from: the whole checkout fleet (catalog, cart, inventory,
//! payments, shipping, orders) on fresh SQLite files, reading one manual clock, with fast saga
//! timings; and terse ways to fill a cart, check out, wait for an order to settle and ask each
//! peer what it did.

use axum::http::{Method, StatusCode};
use flotilla_catalog::contract::Product;
use flotilla_chassis::clock::ManualClock;
use flotilla_chassis::{Money, Role, ServiceSpec};
use flotilla_inventory::contract::{Reservation, StockLevel};
use flotilla_orders::contract::{Order, SagaView};
use flotilla_orders::testing::SagaDriver;
use flotilla_payments::contract::Payment;
use flotilla_shipping::contract::Shipment;
use flotilla_testkit::{TestFleet, product_id};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use flotilla_testkit::{expect_json, expect_problem};

/// Products the catalog and inventory are seeded with: `p0000001` to `p0000040`.
pub const SEEDED: u64 = 40;
/// Where the manual clock starts.
pub const T0: i64 = 1_750_000_000_000;
/// The saga lease in the test fleet.
pub const LEASE_MS: i64 = 3000;
/// The reservation lifetime in the test fleet.
pub const TTL_SECS: i64 = 60;
/// How long a test waits for an order to settle.
pub const SETTLE: Duration = Duration::from_secs(10);

/// Stripe's test cards, as the payments simulator treats them.
pub const GOOD_CARD: &str = "4242 4242 4242 4242";
pub const DECLINED_CARD: &str = "4000000000000002";
pub const NO_FUNDS_CARD: &str = "4000000000009995";
pub const PROCESSING_ERROR_CARD: &str = "4000000000000119";
pub const CAPTURE_DECLINED_CARD: &str = "4000000000000341";

/// Every service checkout touches.
pub const FLEET: [ServiceSpec; 6] = [
    flotilla_catalog::SPEC,
    flotilla_cart::SPEC,
    flotilla_inventory::SPEC,
    flotilla_payments::SPEC,
    flotilla_shipping::SPEC,
    flotilla_orders::SPEC,
];

/// A running fleet and the clock it reads.
pub struct App {
    pub fleet: TestFleet,
    pub clock: Arc<ManualClock>,
}

/// The catalog id of the `n`th seeded product.
pub fn product(n: u32) -> String {
    product_id(u64::from(n))
}

/// `{kind: count}` as [`App::ledger`] answers it, for comparing with.
pub fn counts(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
    entries.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// A checkout body shipping to Berlin (or `postal_code`) and paying with `card`.
pub fn body(card: &str, postal_code: &str) -> Value {
    json!({
        "address": {
            "name": "Ada Lovelace",
            "line1": "Unter den Linden 1",
            "city": "Berlin",
            "postal_code": postal_code,
            "country": "DE",
        },
        "card_number": card,
    })
}

impl App {
    /// The whole fleet with the test timings.
    pub async fn start() -> Self {
        Self::with(&FLEET, json!({})).await
    }

    /// The whole fleet with `orders` merged over the test timings.
    pub async fn with_orders(orders: Value) -> Self {
        Self::with(&FLEET, orders).await
    }

    /// `specs` only, with `orders` merged over the test timings.
    pub async fn with(specs: &[ServiceSpec], orders: Value) -> Self {
        Self::with_sections(specs, orders, &[]).await
    }

    /// [`App::with`], plus whole configuration `sections` (`resilience`, ...).
    pub async fn with_sections(
        specs: &[ServiceSpec],
        orders: Value,
        sections: &[(&str, Value)],
    ) -> Self {
        let timings = json!({
            "step_timeout_ms": 1000,
            "step_attempts": 3,
            "retry_base_ms": 5,
            "recovery_interval_ms": 50,
            "lease_ms": LEASE_MS,
            "respond_within_ms": 2000,
            "reservation_ttl_secs": TTL_SECS,
        });
        let mut builder = TestFleet::of(specs);
        for (section, values) in sections {
            builder = builder.config(section, values.clone());
        }
        let fleet = builder
            .config("catalog", json!({ "seed_products": SEEDED }))
            .config("inventory", json!({ "seed_products": SEEDED }))
            .config("orders", timings)
            .config("orders", orders)
            .manual_clock(T0)
            .start()
            .await;
        let clock = fleet.manual_clock().clone();
        Self { fleet, clock }
    }

    /// A request to `service` acting for `user` (a customer, or an admin for `admin-*`).
    pub fn as_user(
        &self,
        method: Method,
        service: &str,
        path: &str,
        user: &str,
    ) -> reqwest::RequestBuilder {
        let role = if user.starts_with("admin") {
            Role::Admin
        } else {
            Role::Customer
        };
        self.fleet.client(service).as_user(method, path, user, role)
    }

    /// Puts `lines` (product number, quantity) in `user`'s cart.
    pub async fn fill_cart(&self, user: &str, lines: &[(u32, u32)]) {
        for (n, quantity) in lines {
            let res = send(
                self.as_user(
                    Method::PUT,
                    "cart",
                    &format!("/items/{}", product(*n)),
                    user,
                )
                .json(&json!({ "quantity": quantity })),
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK, "filling the cart");
        }
    }

    /// `POST /` to orders, raw.
    pub async fn post_checkout(
        &self,
        user: &str,
        key: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self.as_user(Method::POST, "orders", "/", user).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        send(request).await
    }

    /// Checks out `user`'s cart, expecting 201 or 202, and returns the order.
    pub async fn checkout(&self, user: &str, key: &str, body: &Value) -> Order {
        let res = self.post_checkout(user, Some(key), body).await;
        let status = res.status();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
            "checkout answered {status}: {:?}",
            res.text().await
        );
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let order: Order = decode(res).await;
        assert_eq!(location, Some(format!("/api/orders/{}", order.id)));
        assert_eq!(status == StatusCode::CREATED, order.status.is_terminal());
        if order.status.is_terminal() {
            // A saga that ended within the request is answered from memory: exactly what a
            // read returns.
            assert_eq!(order, self.order(user, &order.id).await, "answer vs stored");
        }
        order
    }

    /// `GET /{id}` as `user`, expecting 200.
    pub async fn order(&self, user: &str, id: &str) -> Order {
        expect_json(self.get_order(user, id).await, StatusCode::OK).await
    }

    /// `GET /{id}` as `user`, raw.
    pub async fn get_order(&self, user: &str, id: &str) -> reqwest::Response {
        send(self.as_user(Method::GET, "orders", &format!("/{id}"), user)).await
    }

    /// Polls the order until it is CONFIRMED or CANCELLED (panics after [`SETTLE`]).
    pub async fn settled(&self, user: &str, id: &str) -> Order {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let order = self.order(user, id).await;
            if order.status.is_terminal() {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} still {:?}",
                order.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `user`'s cart until it holds nothing: the cart has heard `order.confirmed` (it
    /// comes through the outbox, after the order's answer), so the claim of the order that
    /// emptied it has ended (panics after [`SETTLE`]).
    pub async fn wait_for_empty_cart(&self, user: &str) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let res = send(self.as_user(Method::GET, "cart", "/", user)).await;
            let cart: flotilla_cart::contract::Cart = expect_json(res, StatusCode::OK).await;
            if cart.items.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{user}'s cart still holds {:?}",
                cart.items
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The saga of `order_id` (admin view).
    pub async fn saga(&self, order_id: &str) -> SagaView {
        let path = format!("/admin/sagas/{order_id}");
        expect_json(
            send(self.as_user(Method::GET, "orders", &path, "admin-1")).await,
            StatusCode::OK,
        )
        .await
    }

    /// The saga log as `STEP action outcome` lines.
    pub async fn saga_log(&self, order_id: &str) -> Vec<String> {
        self.saga(order_id)
            .await
            .steps
            .iter()
            .map(|s| format!("{} {} {}", s.step, s.action, s.outcome))
            .collect()
    }

    /// The catalog's price of product `n`.
    pub async fn price(&self, n: u32) -> Money {
        let res = send(
            self.fleet
                .client("catalog")
                .get(&format!("/products/{}", product(n))),
        )
        .await;
        expect_json::<Product>(res, StatusCode::OK).await.price
    }

    /// Units of product `n` that can still be reserved.
    pub async fn stock(&self, n: u32) -> i64 {
        let res = send(
            self.fleet
                .client("inventory")
                .get(&format!("/stock/{}", product(n))),
        )
        .await;
        expect_json::<StockLevel>(res, StatusCode::OK)
            .await
            .available
    }

    /// Sets the reservable units of product `n` (as an admin).
    pub async fn set_stock(&self, n: u32, available: i64) {
        let path = format!("/stock/{}", product(n));
        let res = send(
            self.as_user(Method::PUT, "inventory", &path, "admin-1")
                .json(&json!({ "available": available })),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "setting stock");
    }

    /// The inventory's reservation for `order_id`.
    pub async fn reservation(&self, order_id: &str) -> Reservation {
        let res = send(
            self.fleet
                .client("inventory")
                .get(&format!("/reservations/{order_id}")),
        )
        .await;
        expect_json(res, StatusCode::OK).await
    }

    /// The payments made for `order_id`.
    pub async fn payments(&self, order_id: &str) -> Vec<Payment> {
        let res = send(
            self.fleet
                .client("payments")
                .get(&format!("/payments?order_id={order_id}")),
        )
        .await;
        expect_json(res, StatusCode::OK).await
    }

    /// The ledger entries of `order_id`'s payments, counted by kind.
    pub async fn ledger(&self, order_id: &str) -> BTreeMap<String, i64> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT l.kind, COUNT(*) FROM ledger l JOIN payments p ON p.id = l.payment_id
             WHERE p.order_id = $1 GROUP BY l.kind",
        )
        .bind(order_id)
        .fetch_all(self.fleet.db("payments").pool())
        .await
        .expect("ledger query");
        rows.into_iter().collect()
    }

    /// The shipment of `order_id`, if any.
    pub async fn shipment(&self, order_id: &str) -> Option<Shipment> {
        let res = send(
            self.fleet
                .client("shipping")
                .get(&format!("/shipments?order_id={order_id}")),
        )
        .await;
        let found: Vec<Shipment> = expect_json(res, StatusCode::OK).await;
        assert!(found.len() <= 1, "one shipment per order at most");
        found.into_iter().next()
    }

    /// Payloads of the `event_type` events in the orders outbox.
    pub async fn events(&self, event_type: &str) -> Vec<Value> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id")
                .bind(event_type)
                .fetch_all(self.fleet.db("orders").pool())
                .await
                .expect("outbox query");
        rows.iter()
            .map(|p| serde_json::from_str(p).expect("json payload"))
            .collect()
    }

    /// A hand-driven orders instance over the fleet's orders database, reaching the peers over
    /// HTTP like another process would.
    pub async fn driver(&self) -> SagaDriver {
        SagaDriver::new(self.fleet.context(flotilla_orders::NAME))
            .await
            .expect("driver starts")
    }
}

/// Sends `request`, panicking (this is a test) when it cannot.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("the request reaches the fleet")
}

/// Decodes a JSON body.
pub async fn decode<T: serde::de::DeserializeOwned>(res: reqwest::Response) -> T {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("undecodable body {text}: {e}"))
}
