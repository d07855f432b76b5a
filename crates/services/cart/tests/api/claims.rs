//! Checkout claims (RELIABILITY S10): a cart is claimed for one order at the version whose lines
//! it priced; other orders are refused while the claim runs or once the lines changed; the
//! claim ends with the order's `order.confirmed` (lines out) or `order.cancelled` (lines stay),
//! when orders says so first, or when it lapses.

use axum::http::{Method, StatusCode};
use flotilla_cart::contract::{ClaimedCart, PROBLEM_CART_CHANGED, PROBLEM_CART_CLAIMED, TakenOut};
use flotilla_chassis::events::Event;
use serde_json::{Value, json};

use crate::harness::{App, expect_json, expect_problem, product_id};

/// `PUT /claims/{order}` for `user` at `version`, lasting `ttl_secs`.
async fn claim(
    app: &App,
    user: &str,
    order: &str,
    version: u64,
    ttl_secs: u64,
) -> reqwest::Response {
    app.as_user(Method::PUT, &format!("/claims/{order}"), user)
        .json(&json!({ "version": version, "ttl_secs": ttl_secs }))
        .send()
        .await
        .expect("PUT reaches the cart")
}

/// `DELETE /claims/{order}` for `user`, expecting 204.
async fn release(app: &App, user: &str, order: &str) {
    let res = app
        .as_user(Method::DELETE, &format!("/claims/{order}"), user)
        .send()
        .await
        .expect("DELETE reaches the cart");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

/// Expects a 409 of `kind`.
async fn refused(res: reqwest::Response, kind: &str) {
    let problem = expect_problem(res, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, kind);
}

/// An event orders would publish about `order` of `user`.
fn order_event(id: &str, event_type: &str, order: &str, user: &str, lines: Value) -> Event {
    Event {
        id: id.to_owned(),
        event_type: event_type.to_owned(),
        version: 1,
        source: "orders".to_owned(),
        time: "2026-01-01T00:00:00Z".to_owned(),
        traceparent: None,
        payload: json!({
            "order_id": order,
            "user_id": user,
            "lines": lines,
            "reason": "card declined",
            "total": { "amount_minor": 1000, "currency": "EUR" },
            "tracking_number": null,
        }),
    }
}

#[tokio::test]
async fn a_cart_is_claimed_by_one_order_at_a_time_and_a_repeat_is_granted() {
    let app = App::start().await;
    let v = app.set("alice", &product_id(1), 2).await.version;
    assert!(v > 0, "a written cart has a version");

    let granted: ClaimedCart =
        expect_json(claim(&app, "alice", "ord_a", v, 60).await, StatusCode::OK).await;
    assert_eq!((granted.order_id.as_str(), granted.version), ("ord_a", v));
    refused(
        claim(&app, "alice", "ord_b", v, 60).await,
        PROBLEM_CART_CLAIMED,
    )
    .await;
    // The same order again (a retried request, a twin with the same key): granted.
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_a", v, 60).await, StatusCode::OK).await;
    // Another user's cart is another cart.
    let w = app.set("bob", &product_id(1), 2).await.version;
    expect_json::<ClaimedCart>(claim(&app, "bob", "ord_b", w, 60).await, StatusCode::OK).await;

    // Releasing another order's claim, or one never held, changes nothing.
    release(&app, "alice", "ord_b").await;
    release(&app, "alice", "no-such-order").await;
    refused(
        claim(&app, "alice", "ord_b", v, 60).await,
        PROBLEM_CART_CLAIMED,
    )
    .await;
    release(&app, "alice", "ord_a").await;
    release(&app, "alice", "ord_a").await;
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_b", v, 60).await, StatusCode::OK).await;
    assert_eq!(
        app.cart("alice").await.version,
        v,
        "claims do not change the lines"
    );
}

#[tokio::test]
async fn a_claim_at_a_version_the_cart_has_left_is_refused() {
    let app = App::start().await;
    let v = app.set("alice", &product_id(1), 2).await.version;
    let cart = app.remove("alice", &product_id(9)).await;
    assert_eq!(cart.version, v, "removing nothing is no change");
    let v2 = app.set("alice", &product_id(2), 1).await.version;
    assert!(v2 > v);
    refused(
        claim(&app, "alice", "ord_a", v, 60).await,
        PROBLEM_CART_CHANGED,
    )
    .await;
    refused(
        claim(&app, "alice", "ord_a", u64::MAX, 60).await,
        PROBLEM_CART_CHANGED,
    )
    .await;
    refused(
        claim(&app, "nobody", "ord_a", 0, 60).await,
        PROBLEM_CART_CHANGED,
    )
    .await;
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_a", v2, 60).await, StatusCode::OK).await;
    // Changing the lines is not blocked by a claim: it moves the version on.
    let v3 = app.remove("alice", &product_id(2)).await.version;
    assert!(v3 > v2);
}

#[tokio::test]
async fn an_unused_claim_lapses() {
    let app = App::start().await;
    let v = app.set("alice", &product_id(1), 1).await.version;
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_a", v, 60).await, StatusCode::OK).await;
    app.clock.advance(59_999);
    refused(
        claim(&app, "alice", "ord_b", v, 60).await,
        PROBLEM_CART_CLAIMED,
    )
    .await;
    app.clock.advance(1);
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_b", v, 60).await, StatusCode::OK).await;
}

#[tokio::test]
async fn odd_claims_are_422() {
    let app = App::start().await;
    let v = app.set("alice", &product_id(1), 1).await.version;
    for ttl in [0, 7 * 24 * 3600 + 1] {
        let res = claim(&app, "alice", "ord_a", v, ttl).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let res = claim(&app, "alice", &"x".repeat(65), v, 60).await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let res = claim(&app, "alice", "a%20b", v, 60).await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_claims_of_one_cart_grant_one() {
    let app = App::start().await;
    let v = app.set("alice", &product_id(1), 1).await.version;
    let orders: Vec<String> = (0..20).map(|i| format!("ord_{i}")).collect();
    let answers = futures::future::join_all(
        orders
            .iter()
            .map(|order| claim(&app, "alice", order, v, 60)),
    )
    .await;
    let granted = answers
        .iter()
        .filter(|res| res.status() == StatusCode::OK)
        .count();
    assert_eq!(
        granted,
        1,
        "{:?}",
        answers.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    for res in answers.into_iter().filter(|r| r.status() != StatusCode::OK) {
        refused(res, PROBLEM_CART_CLAIMED).await;
    }
}

#[tokio::test]
async fn the_orders_end_ends_its_claim() {
    let app = App::start().await;
    let v = app.set("alice", &product_id(1), 2).await.version;
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_a", v, 600).await, StatusCode::OK).await;

    // Another order's end leaves the claim alone.
    let other = order_event("e0", "order.cancelled", "ord_z", "alice", json!([]));
    app.fleet.bus.publish(&other).await.expect("published");
    refused(
        claim(&app, "alice", "ord_b", v, 600).await,
        PROBLEM_CART_CLAIMED,
    )
    .await;

    // Cancelled: the claim ends, the lines stay and may be checked out again.
    let cancelled = order_event("e1", "order.cancelled", "ord_a", "alice", json!([]));
    app.fleet.bus.publish(&cancelled).await.expect("published");
    let cart = app.cart("alice").await;
    assert_eq!((cart.items.len(), cart.version), (1, v));
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_b", v, 600).await, StatusCode::OK).await;

    // Confirmed: the lines leave and the claim ends in one go; the old version cannot be
    // claimed again, by anyone.
    let lines = json!([{ "product_id": product_id(1), "quantity": 2 }]);
    let confirmed = order_event("e2", "order.confirmed", "ord_b", "alice", lines);
    app.fleet.bus.publish(&confirmed).await.expect("published");
    let cart = app.cart("alice").await;
    assert!(cart.items.is_empty());
    assert!(cart.version > v);
    refused(
        claim(&app, "alice", "ord_c", v, 600).await,
        PROBLEM_CART_CHANGED,
    )
    .await;
    expect_json::<ClaimedCart>(
        claim(&app, "alice", "ord_c", cart.version, 600).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn orders_word_and_the_event_take_a_confirmed_orders_lines_out_once() {
    let app = App::start().await;
    app.set("alice", &product_id(1), 3).await;
    let v = app.set("alice", &product_id(2), 1).await.version;
    expect_json::<ClaimedCart>(claim(&app, "alice", "ord_a", v, 600).await, StatusCode::OK).await;
    let lines = json!([{ "product_id": product_id(1), "quantity": 2 }]);
    let taken = || {
        app.as_user(Method::POST, "/claims/ord_a/taken", "alice")
            .json(&json!({ "lines": lines }))
            .send()
    };
    let first: TakenOut = expect_json(taken().await.expect("POST"), StatusCode::OK).await;
    assert!(first.taken);
    let cart = app.cart("alice").await;
    let quantities: Vec<u32> = cart.items.iter().map(|l| l.quantity).collect();
    assert_eq!(quantities, [1, 1], "two of p1 left the cart");
    // The claim ended with them: the next checkout may claim the cart as it is now.
    expect_json::<ClaimedCart>(
        claim(&app, "alice", "ord_b", cart.version, 600).await,
        StatusCode::OK,
    )
    .await;

    // The event, and orders saying it again, take nothing more out.
    let confirmed = order_event("e1", "order.confirmed", "ord_a", "alice", lines.clone());
    app.fleet.bus.publish(&confirmed).await.expect("published");
    let again: TakenOut = expect_json(taken().await.expect("POST"), StatusCode::OK).await;
    assert!(!again.taken);
    assert_eq!(app.cart("alice").await, cart, "nothing changed");
}
