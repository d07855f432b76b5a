//! The cart's test harness: a fleet of catalog + cart on fresh SQLite files, typed helpers for
//! the requests the tests make, and a [`Transport`] that lets the typed client reach the fleet
//! over HTTP the way a remote caller would.

use axum::http::{Method, StatusCode};
use flotilla_cart::contract::Cart;
use flotilla_catalog::contract::Product;
use flotilla_chassis::clock::ManualClock;
use flotilla_chassis::transport::Transport;
use flotilla_testkit::{FleetClient, TestFleet};
use serde_json::{Value, json};
use std::sync::Arc;

/// Products the test catalog is seeded with: `p0000001` to `p0000030`.
pub const SEEDED: u32 = 30;

/// A running catalog + cart, and the clock they read.
pub struct App {
    pub fleet: TestFleet,
    pub clock: Arc<ManualClock>,
}

impl App {
    /// Catalog and cart with the cart's default configuration.
    pub async fn start() -> Self {
        Self::with_cart_config(json!({})).await
    }

    /// Catalog and cart, with `cart` as the `[cart]` configuration section.
    pub async fn with_cart_config(cart: Value) -> Self {
        Self::with_services(&[flotilla_catalog::SPEC, flotilla_cart::SPEC], cart).await
    }

    /// The cart alone: every catalog call fails as "unavailable".
    pub async fn without_catalog() -> Self {
        Self::with_services(&[flotilla_cart::SPEC], json!({})).await
    }

    async fn with_services(specs: &[flotilla_chassis::ServiceSpec], cart: Value) -> Self {
        let fleet = TestFleet::of(specs)
            .config("catalog", json!({ "seed_products": SEEDED }))
            .config("cart", cart)
            .manual_clock(1_750_000_000_000)
            .start()
            .await;
        let clock = fleet.manual_clock().clone();
        Self { fleet, clock }
    }

    /// The cart, as the gateway calls it.
    pub fn cart_api(&self) -> FleetClient<'_> {
        self.fleet.client(flotilla_cart::NAME)
    }

    /// A request to the cart acting for `user` (a customer).
    pub fn as_user(&self, method: Method, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.cart_api().as_customer(method, path, user)
    }

    /// `PUT /items/{product}` with `body`, for `user`.
    pub async fn put(&self, user: &str, product: &str, body: Value) -> reqwest::Response {
        self.as_user(Method::PUT, &format!("/items/{product}"), user)
            .json(&body)
            .send()
            .await
            .expect("PUT reaches the cart")
    }

    /// Sets a quantity and expects the updated cart.
    pub async fn set(&self, user: &str, product: &str, quantity: u32) -> Cart {
        let res = self
            .put(user, product, json!({ "quantity": quantity }))
            .await;
        expect_json(res, StatusCode::OK).await
    }

    /// `DELETE /items/{product}`, expecting the updated cart.
    pub async fn remove(&self, user: &str, product: &str) -> Cart {
        let res = self
            .as_user(Method::DELETE, &format!("/items/{product}"), user)
            .send()
            .await
            .expect("DELETE reaches the cart");
        expect_json(res, StatusCode::OK).await
    }

    /// `GET /` for `user`.
    pub async fn cart(&self, user: &str) -> Cart {
        let res = self
            .as_user(Method::GET, "/", user)
            .send()
            .await
            .expect("GET reaches the cart");
        expect_json(res, StatusCode::OK).await
    }

    /// The product as the catalog shows it, for checking prices independently of the cart.
    pub async fn product(&self, id: &str) -> Product {
        let res = self
            .fleet
            .client(flotilla_catalog::NAME)
            .get(&format!("/products/{id}"))
            .send()
            .await
            .expect("GET reaches the catalog");
        expect_json(res, StatusCode::OK).await
    }

    /// A transport to the cart over HTTP, carrying the fleet's service credential.
    pub fn cart_transport(&self) -> Transport {
        self.cart_api().transport()
    }
}

pub use flotilla_testkit::{expect_json, expect_problem};

/// `p` followed by seven digits: the id of the `n`th seeded product.
pub fn product_id(n: u32) -> String {
    flotilla_testkit::product_id(u64::from(n))
}
