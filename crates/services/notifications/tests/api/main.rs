//! The notifications service end to end: order events in through the bus, messages out over
//! HTTP, on a fresh SQLite file, spoken to like the gateway does.

mod client;
mod dead_letters;
mod harness;

use axum::http::{Method, StatusCode};
use flotilla_chassis::events::Outcome;
use flotilla_chassis::{Page, Role};
use flotilla_notifications::contract::{Message, MessageKind};
use harness::{App, expect_json, expect_problem, order_cancelled, order_confirmed};
use serde_json::json;

#[tokio::test]
async fn a_published_confirmation_becomes_a_message_to_the_buyer() {
    let app = App::start().await;
    app.publish(&order_confirmed("e1", "alice", "o-1")).await;

    let page = app.messages("alice").await;
    assert_eq!(page.total, 1);
    let message = &page.items[0];
    assert_eq!(message.user_id, "alice");
    assert_eq!(message.order_id, "o-1");
    assert_eq!(message.kind, MessageKind::OrderConfirmed);
    assert_eq!(message.subject, "Your order o-1 is confirmed");
    for expected in [
        "2 × p0000001",
        "1 × p0000002",
        "Total: 42.50 EUR",
        "Tracking number: TRK-o-1",
        "shop@flotilla.example",
    ] {
        assert!(
            message.body.contains(expected),
            "{expected:?} in {}",
            message.body
        );
    }
    assert_eq!(message.created_at.offset(), time::UtcOffset::UTC);
}

#[tokio::test]
async fn a_published_cancellation_gives_the_reason() {
    let app = App::start().await;
    app.publish(&order_cancelled("e1", "alice", "o-2", "payment declined"))
        .await;

    let page = app.messages("alice").await;
    let message = &page.items[0];
    assert_eq!(message.kind, MessageKind::OrderCancelled);
    assert_eq!(message.subject, "Your order o-2 was cancelled");
    assert!(
        message.body.contains("Reason: payment declined"),
        "{}",
        message.body
    );
    assert!(message.body.contains("9.99 EUR"), "{}", message.body);
}

#[tokio::test]
async fn the_configured_sender_signs_every_message() {
    let app = App::with_config(json!({ "sender": "care@shop.example" })).await;
    app.publish(&order_confirmed("e1", "alice", "o-1")).await;
    app.publish(&order_cancelled("e2", "alice", "o-1", "changed my mind"))
        .await;
    let page = app.messages("alice").await;
    assert_eq!(page.items.len(), 2);
    for message in &page.items {
        assert!(
            message.body.contains("care@shop.example"),
            "{}",
            message.body
        );
        assert!(!message.body.contains("shop@flotilla.example"));
    }
}

#[tokio::test]
async fn an_event_delivered_three_times_sends_one_message() {
    let app = App::start().await;
    let event = order_confirmed("e-f3", "alice", "o-3");
    // At once, as a redelivering bus and a replaying relay might.
    let outcomes = futures::future::join_all((0..3).map(|_| app.consumer().deliver(&event))).await;
    let handled = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("delivered"))
        .filter(|outcome| *outcome == Outcome::Handled)
        .count();
    assert_eq!(handled, 1);
    assert_eq!(app.stored_messages().await, 1);
    assert_eq!(app.messages("alice").await.total, 1);
    assert_eq!(app.consumer().stats().snapshot().duplicates, 2);

    // And once more later, through the bus.
    app.publish(&event).await;
    assert_eq!(app.stored_messages().await, 1);
    assert_eq!(app.consumer().stats().snapshot().duplicates, 3);
}

#[tokio::test]
async fn an_event_the_inbox_forgot_still_sends_no_second_message() {
    let app = App::start().await;
    let event = order_confirmed("e-1", "alice", "o-1");
    app.publish(&event).await;
    // The inbox loses its record (restored from an old backup, say): the handler runs again,
    // and the unique event id on the messages table is what stops a second email.
    sqlx::query("DELETE FROM inbox WHERE event_id = $1")
        .bind(&event.id)
        .execute(app.db().pool())
        .await
        .expect("forget");
    let again = app.consumer().deliver(&event).await.expect("delivered");
    assert_eq!(again, Outcome::Handled);
    assert_eq!(app.stored_messages().await, 1);
}

#[tokio::test]
#[should_panic(expected = "[notifications] sender")]
async fn a_malformed_sender_address_stops_the_service_from_starting() {
    App::with_config(json!({ "sender": "not an address" })).await;
}

#[tokio::test]
async fn messages_are_visible_only_to_their_recipient() {
    let app = App::start().await;
    app.publish(&order_confirmed("e1", "alice", "o-a1")).await;
    app.publish(&order_cancelled("e2", "alice", "o-a2", "out of stock"))
        .await;
    app.publish(&order_confirmed("e3", "bob", "o-b1")).await;

    let alice = app.messages("alice").await;
    assert_eq!(alice.total, 2);
    assert!(alice.items.iter().all(|m| m.user_id == "alice"));
    let bob = app.messages("bob").await;
    assert_eq!(bob.total, 1);
    assert_eq!(bob.items[0].order_id, "o-b1");
    let carol = app.messages("carol").await;
    assert_eq!(carol.total, 0);
    assert!(carol.items.is_empty());

    // An admin reading their own messages sees theirs, not everyone's.
    let res = app
        .as_role(Method::GET, "/messages", "alice", Role::Admin)
        .send()
        .await
        .expect("GET");
    let own: Page<Message> = expect_json(res, StatusCode::OK).await;
    assert_eq!(own.total, 2);
}

#[tokio::test]
async fn admins_filter_everyones_messages_by_user_and_order() {
    let app = App::start().await;
    app.publish(&order_confirmed("e1", "alice", "o-1")).await;
    app.publish(&order_cancelled("e2", "alice", "o-1", "too slow"))
        .await;
    app.publish(&order_confirmed("e3", "bob", "o-2")).await;

    assert_eq!(app.admin_messages("").await.total, 3);
    let order = app.admin_messages("order_id=o-1").await;
    assert_eq!(order.total, 2);
    assert!(order.items.iter().all(|m| m.order_id == "o-1"));
    let bob = app.admin_messages("user_id=bob").await;
    assert_eq!(bob.total, 1);
    assert_eq!(bob.items[0].user_id, "bob");
    assert_eq!(
        app.admin_messages("user_id=bob&order_id=o-1").await.total,
        0
    );
    assert_eq!(app.admin_messages("order_id=o-unknown").await.total, 0);
}

#[tokio::test]
async fn the_admin_list_needs_an_admin() {
    let app = App::start().await;
    app.publish(&order_confirmed("e1", "alice", "o-1")).await;
    let res = app.get_as("alice", "/admin/messages?user_id=alice").await;
    expect_problem(res, StatusCode::FORBIDDEN).await;
    for path in ["/admin/messages", "/messages"] {
        // Credentialed, but acting for nobody.
        let res = app
            .fleet
            .get(flotilla_notifications::NAME, path)
            .send()
            .await
            .expect("GET");
        expect_problem(res, StatusCode::UNAUTHORIZED).await;
    }
    // Identity headers without a service credential are not believed.
    let url = format!("{}/messages", app.fleet.url(flotilla_notifications::NAME));
    let res = reqwest::Client::new()
        .get(&url)
        .header("x-flotilla-user-id", "alice")
        .header("x-flotilla-user-role", "customer")
        .send()
        .await
        .expect("GET");
    let problem = expect_problem(res, StatusCode::UNAUTHORIZED).await;
    assert!(!format!("{problem:?}").contains("o-1"));
}

#[tokio::test]
async fn lists_are_newest_first_and_paged() {
    let app = App::start().await;
    for n in 1..=5 {
        let id = format!("e{n}");
        app.publish(&order_confirmed(&id, "alice", &format!("o-{n}")))
            .await;
    }
    let res = app.get_as("alice", "/messages?page=1&page_size=2").await;
    let first: Page<Message> = expect_json(res, StatusCode::OK).await;
    assert_eq!((first.total, first.page, first.page_size), (5, 1, 2));
    let orders: Vec<&str> = first.items.iter().map(|m| m.order_id.as_str()).collect();
    assert_eq!(orders, ["o-5", "o-4"]);
    let res = app.get_as("alice", "/messages?page=3&page_size=2").await;
    let last: Page<Message> = expect_json(res, StatusCode::OK).await;
    let orders: Vec<&str> = last.items.iter().map(|m| m.order_id.as_str()).collect();
    assert_eq!(orders, ["o-1"]);
    let all = app.admin_messages("page_size=100").await;
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.items[0].order_id, "o-5");
}

#[tokio::test]
async fn bad_paging_and_filters_are_400s() {
    let app = App::start().await;
    for path in [
        "/messages?page_size=101",
        "/messages?page_size=0",
        "/messages?page=0",
        "/messages?page=abc",
        "/messages?page_size=-1",
    ] {
        let res = app.get_as("alice", path).await;
        expect_problem(res, StatusCode::BAD_REQUEST).await;
    }
    let long = "x".repeat(129);
    for query in [
        "page_size=101".to_owned(),
        "page=0".to_owned(),
        "user_id=".to_owned(),
        "order_id=".to_owned(),
        format!("order_id={long}"),
        "user_id=a%0Ab".to_owned(),
    ] {
        let res = app.get_as_admin(&format!("/admin/messages?{query}")).await;
        let problem = expect_problem(res, StatusCode::BAD_REQUEST).await;
        assert!(
            problem.kind.ends_with(":bad-request"),
            "{query}: {problem:?}"
        );
    }
    assert_eq!(app.admin_messages("page_size=100").await.page_size, 100);
}

#[tokio::test]
async fn the_contract_is_published() {
    let app = App::start().await;
    let url = format!(
        "{}/openapi.json",
        app.fleet.url(flotilla_notifications::NAME)
    );
    let doc: serde_json::Value = reqwest::get(&url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let paths = &doc["paths"];
    for path in [
        "/messages",
        "/admin/messages",
        "/admin/dead-letters",
        "/admin/outbox",
    ] {
        assert!(paths[path]["get"].is_object(), "GET {path} in {paths}");
    }
    for schema in ["Message", "MessageKind"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
