//! The cart as a consumer of `order.confirmed`: ordered products leave the buyer's cart once,
//! whatever the bus redelivers, and nothing else in any cart changes.

use flotilla_cart::contract::Cart;
use flotilla_chassis::events::{Event, Outcome};
use serde_json::{Value, json};

use crate::harness::{App, product_id};

/// An `order.confirmed` v1 event for `user` with `(product number, quantity)` lines.
fn order_confirmed(id: &str, user: &str, lines: &[(u32, u32)]) -> Event {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(n, quantity)| json!({ "product_id": product_id(*n), "quantity": quantity }))
        .collect();
    Event {
        id: id.to_owned(),
        event_type: "order.confirmed".to_owned(),
        version: 1,
        source: "orders".to_owned(),
        time: "2026-01-01T00:00:00Z".to_owned(),
        traceparent: None,
        payload: json!({
            "order_id": format!("order-{id}"),
            "user_id": user,
            "lines": lines,
            "total": { "amount_minor": 1000, "currency": "EUR" },
            "tracking_number": null,
        }),
    }
}

/// `(product number, quantity)` of each line, in cart order.
fn quantities(cart: &Cart) -> Vec<(String, u32)> {
    cart.items
        .iter()
        .map(|line| (line.product_id.to_string(), line.quantity))
        .collect()
}

#[tokio::test]
async fn a_confirmed_order_takes_its_products_out_of_the_buyers_cart_only() {
    let app = App::start().await;
    app.set("alice", &product_id(1), 2).await;
    app.set("alice", &product_id(2), 3).await;
    app.set("alice", &product_id(3), 1).await;
    let bob = app.set("bob", &product_id(1), 2).await;

    let event = order_confirmed("e1", "alice", &[(1, 2), (2, 1)]);
    app.fleet.bus.publish(&event).await.expect("published");

    let cart = app.cart("alice").await;
    assert_eq!(
        quantities(&cart),
        [(product_id(2), 2), (product_id(3), 1)],
        "p1 fully ordered, p2 partly, p3 not at all"
    );
    assert_eq!(
        app.cart("bob").await,
        bob,
        "another user's cart is untouched"
    );
}

#[tokio::test]
async fn a_redelivered_order_takes_nothing_out_a_second_time() {
    let app = App::start().await;
    app.set("alice", &product_id(4), 5).await;
    let consumer = &app.fleet.consumers[flotilla_cart::NAME];
    let event = order_confirmed("e2", "alice", &[(4, 1)]);

    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(consumer.deliver(&event).await.expect("delivered"));
    }
    assert_eq!(
        outcomes,
        [Outcome::Handled, Outcome::Duplicate, Outcome::Duplicate]
    );
    assert_eq!(quantities(&app.cart("alice").await), [(product_id(4), 4)]);
    assert_eq!(consumer.stats().snapshot().duplicates, 2);
}

#[tokio::test]
async fn products_added_after_checkout_stay_in_the_cart() {
    let app = App::start().await;
    // Checked out 2 × p5; meanwhile raised the line to 5 and added p6.
    app.set("alice", &product_id(5), 5).await;
    app.set("alice", &product_id(6), 1).await;

    let event = order_confirmed("e3", "alice", &[(5, 2)]);
    app.fleet.bus.publish(&event).await.expect("published");

    assert_eq!(
        quantities(&app.cart("alice").await),
        [(product_id(5), 3), (product_id(6), 1)]
    );
}

#[tokio::test]
async fn ordering_more_than_the_cart_holds_removes_the_line() {
    let app = App::start().await;
    app.set("alice", &product_id(7), 1).await;
    app.set("alice", &product_id(8), 2).await;

    // The same product twice in one order, and one the cart never held.
    let event = order_confirmed("e4", "alice", &[(7, 3), (8, 1), (8, 1), (9, 4)]);
    app.fleet.bus.publish(&event).await.expect("published");

    assert!(app.cart("alice").await.items.is_empty());
}

#[tokio::test]
async fn a_product_ordered_on_several_lines_is_taken_out_by_their_sum() {
    let app = App::start().await;
    app.set("alice", &product_id(10), 5).await;
    app.set("alice", &product_id(11), 4).await;
    app.set("alice", &product_id(12), 2).await;

    // p10: 1 + 2 of 5 leaves 2; p11: 2 + 2 of 4 leaves nothing; p12 shrinks by 1.
    let event = order_confirmed(
        "e6",
        "alice",
        &[(10, 1), (11, 2), (10, 2), (12, 1), (11, 2)],
    );
    app.fleet.bus.publish(&event).await.expect("published");

    assert_eq!(
        quantities(&app.cart("alice").await),
        [(product_id(10), 2), (product_id(12), 1)]
    );
}

#[tokio::test]
async fn an_order_for_a_user_without_a_cart_changes_nothing() {
    let app = App::start().await;
    let consumer = &app.fleet.consumers[flotilla_cart::NAME];
    let event = order_confirmed("e5", "carol", &[(1, 1)]);
    assert_eq!(
        consumer.deliver(&event).await.expect("delivered"),
        Outcome::Handled
    );
    assert!(app.cart("carol").await.items.is_empty());
}

#[tokio::test]
async fn an_order_the_cart_cannot_read_is_parked_and_changes_nothing() {
    let app = App::start().await;
    app.set("alice", &product_id(1), 2).await;
    let consumer = &app.fleet.consumers[flotilla_cart::NAME];
    let mut v2 = order_confirmed("e6", "alice", &[(1, 2)]);
    v2.version = 2;
    let mut malformed = order_confirmed("e7", "alice", &[(1, 2)]);
    malformed.payload = json!({ "order_id": "o7", "user_id": "alice", "lines": "all of them" });

    // A version it does not know is parked at once (replayable after an upgrade).
    assert_eq!(
        consumer.deliver(&v2).await.expect("parked"),
        Outcome::DeadLettered
    );
    // A payload that does not decode never will: parked at its first delivery.
    assert_eq!(
        consumer.deliver(&malformed).await.expect("parked"),
        Outcome::DeadLettered
    );
    assert_eq!(quantities(&app.cart("alice").await), [(product_id(1), 2)]);

    // Later events still flow.
    let good = order_confirmed("e8", "alice", &[(1, 1)]);
    app.fleet.bus.publish(&good).await.expect("published");
    assert_eq!(quantities(&app.cart("alice").await), [(product_id(1), 1)]);
}
