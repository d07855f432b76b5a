//! The notifications test harness: the service on a fresh SQLite file, the order events the
//! tests publish, and typed helpers for the requests they make.

use axum::http::{Method, StatusCode};
use flotilla_chassis::events::{Consumer, Event};
use flotilla_chassis::pagination::Page;
use flotilla_testkit::TestFleet;
// The shared assertions, re-exported so the test modules take everything from the harness.
use flotilla_chassis::{Db, Role};
use flotilla_notifications::contract::Message;
pub use flotilla_testkit::{expect_json, expect_problem};
use serde_json::{Value, json};
use std::sync::Arc;

/// A running notifications service.
pub struct App {
    pub fleet: TestFleet,
}

impl App {
    /// The service with its default configuration.
    pub async fn start() -> Self {
        Self::with_config(json!({})).await
    }

    /// The service with `notifications` as its configuration section.
    pub async fn with_config(notifications: Value) -> Self {
        let fleet = TestFleet::of(&[flotilla_notifications::SPEC])
            .config("notifications", notifications)
            .start()
            .await;
        Self { fleet }
    }

    /// The service's event consumer.
    pub fn consumer(&self) -> &Arc<Consumer> {
        self.fleet.consumer(flotilla_notifications::NAME)
    }

    /// The service's database.
    pub fn db(&self) -> &Db {
        self.fleet.db(flotilla_notifications::NAME)
    }

    /// Publishes `event` on the fleet's bus and expects every consumer to take it.
    pub async fn publish(&self, event: &Event) {
        self.fleet.bus.publish(event).await.expect("published");
    }

    /// A request to the service acting for `user` with `role`.
    pub fn as_role(
        &self,
        method: Method,
        path: &str,
        user: &str,
        role: Role,
    ) -> reqwest::RequestBuilder {
        self.fleet
            .client(flotilla_notifications::NAME)
            .as_user(method, path, user, role)
    }

    /// `GET path` for customer `user`.
    pub async fn get_as(&self, user: &str, path: &str) -> reqwest::Response {
        self.as_role(Method::GET, path, user, Role::Customer)
            .send()
            .await
            .expect("GET reaches the service")
    }

    /// `GET path` for an admin.
    pub async fn get_as_admin(&self, path: &str) -> reqwest::Response {
        self.as_role(Method::GET, path, "ops", Role::Admin)
            .send()
            .await
            .expect("GET reaches the service")
    }

    /// The first page of `user`'s own messages.
    pub async fn messages(&self, user: &str) -> Page<Message> {
        expect_json(self.get_as(user, "/messages").await, StatusCode::OK).await
    }

    /// `GET /admin/messages?{query}` as an admin, expecting a page.
    pub async fn admin_messages(&self, query: &str) -> Page<Message> {
        let res = self.get_as_admin(&format!("/admin/messages?{query}")).await;
        expect_json(res, StatusCode::OK).await
    }

    /// How many messages the table holds, read directly.
    pub async fn stored_messages(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(self.db().pool())
            .await
            .expect("count")
    }
}

/// An event envelope as orders would publish it.
pub fn event(id: &str, event_type: &str, version: u32, payload: Value) -> Event {
    flotilla_testkit::event("orders", id, event_type, version, payload)
}

/// `order.confirmed` v1 for `user`'s order `order`: 2 × p0000001 and 1 × p0000002, 42.50 EUR,
/// tracking number `TRK-<order>`.
pub fn order_confirmed(id: &str, user: &str, order: &str) -> Event {
    event(
        id,
        "order.confirmed",
        1,
        json!({
            "order_id": order,
            "user_id": user,
            "lines": [
                { "product_id": "p0000001", "quantity": 2 },
                { "product_id": "p0000002", "quantity": 1 },
            ],
            "total": { "amount_minor": 4250, "currency": "EUR" },
            "tracking_number": format!("TRK-{order}"),
        }),
    )
}

/// `order.cancelled` v1 for `user`'s order `order`, with `reason`.
pub fn order_cancelled(id: &str, user: &str, order: &str, reason: &str) -> Event {
    event(
        id,
        "order.cancelled",
        1,
        json!({
            "order_id": order,
            "user_id": user,
            "reason": reason,
            "total": { "amount_minor": 999, "currency": "EUR" },
        }),
    )
}
