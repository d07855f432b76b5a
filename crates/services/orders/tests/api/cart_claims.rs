//! One cart, one order (RELIABILITY S10): concurrent checkouts of one cart with distinct
//! idempotency keys place exactly one order and capture once, the others are refused with a
//! 409 of their own type (or find the cart empty); a cancelled checkout gives the cart back at
//! once; a key's repeat still answers its order; a claim left by a checkout that never stored
//! its order lapses.

use axum::http::{Method, StatusCode};
use flotilla_orders::contract::{
    Order, OrderStatus, PROBLEM_CART_CHANGED, PROBLEM_CHECKOUT_IN_PROGRESS, PROBLEM_EMPTY_CART,
};
use serde_json::json;

use crate::harness::{App, DECLINED_CARD, GOOD_CARD, body, decode, expect_problem, send};

/// The orders `user` has, whatever their status.
async fn orders_of(app: &App, user: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.fleet.dbs["orders"].pool())
        .await
        .expect("count")
}

/// Captures the payments service has made, for anyone.
async fn captures(app: &App) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM ledger WHERE kind = 'capture'")
        .fetch_one(app.fleet.dbs["payments"].pool())
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_checkouts_of_one_cart_place_one_order() {
    let app = App::start().await;
    app.fill_cart("alice", &[(8, 1)]).await;
    let before = app.stock(8).await;
    let request = body(GOOD_CARD, "10117");
    let keys: Vec<String> = (0..20).map(|i| format!("tab-{i}")).collect();
    let answers = futures::future::join_all(
        keys.iter()
            .map(|key| app.post_checkout("alice", Some(key), &request)),
    )
    .await;

    let mut placed: Vec<Order> = Vec::new();
    for res in answers {
        match res.status() {
            StatusCode::CREATED | StatusCode::ACCEPTED => placed.push(decode(res).await),
            StatusCode::CONFLICT => {
                let problem = expect_problem(res, StatusCode::CONFLICT).await;
                assert!(
                    [PROBLEM_CHECKOUT_IN_PROGRESS, PROBLEM_CART_CHANGED]
                        .contains(&problem.kind.as_str()),
                    "{}",
                    problem.kind
                );
                assert!(problem.detail.is_some_and(|d| d.contains("checked out")));
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
                assert_eq!(problem.kind, PROBLEM_EMPTY_CART);
            }
            other => panic!("checkout answered {other}"),
        }
    }
    assert_eq!(placed.len(), 1, "exactly one checkout placed an order");
    let order = app.settled("alice", &placed[0].id).await;
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(orders_of(&app, "alice").await, 1);
    assert_eq!(captures(&app).await, 1);
    assert_eq!(app.payments(&order.id).await.len(), 1);
    assert_eq!(app.stock(8).await, before - 1, "sold once");
    assert_eq!(app.events("order.confirmed").await.len(), 1);
}

#[tokio::test]
async fn a_cancelled_checkout_gives_the_cart_back_at_once() {
    let app = App::start().await;
    app.fill_cart("bob", &[(9, 2)]).await;
    let declined = app
        .checkout("bob", "first", &body(DECLINED_CARD, "10117"))
        .await;
    assert_eq!(declined.status, OrderStatus::Cancelled);
    // Straight away, with another card and so another key: the cart is bob's again.
    let paid = app
        .checkout("bob", "second", &body(GOOD_CARD, "10117"))
        .await;
    assert_eq!(
        app.settled("bob", &paid.id).await.status,
        OrderStatus::Confirmed
    );
    assert_eq!(orders_of(&app, "bob").await, 2);
    assert_eq!(captures(&app).await, 1);
}

#[tokio::test]
async fn a_keys_repeat_answers_its_order_while_another_key_is_refused() {
    let app = App::with_orders(json!({ "respond_within_ms": 0 })).await;
    app.fill_cart("carol", &[(10, 1)]).await;
    let request = body(GOOD_CARD, "10117");
    let first = app.checkout("carol", "one", &request).await;
    let repeat = app.checkout("carol", "one", &request).await;
    assert_eq!(repeat.id, first.id, "the same key is the same order");
    let order = app.settled("carol", &first.id).await;
    assert_eq!(order.status, OrderStatus::Confirmed);
    // Another key: refused while the confirmed order's lines are still in the cart, and the
    // cart is empty once they left. Never a second order.
    let res = app.post_checkout("carol", Some("two"), &request).await;
    let problem = match res.status() {
        StatusCode::CONFLICT => expect_problem(res, StatusCode::CONFLICT).await,
        _ => expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    assert!(
        [
            PROBLEM_CHECKOUT_IN_PROGRESS,
            PROBLEM_CART_CHANGED,
            PROBLEM_EMPTY_CART
        ]
        .contains(&problem.kind.as_str()),
        "{}",
        problem.kind
    );
    app.wait_for_empty_cart("carol").await;
    let res = app.post_checkout("carol", Some("three"), &request).await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem.kind, PROBLEM_EMPTY_CART);
    let again = app.checkout("carol", "one", &request).await;
    assert_eq!(again, order, "the key still answers its order");
    assert_eq!(orders_of(&app, "carol").await, 1);
}

#[tokio::test]
async fn a_claim_whose_order_was_never_stored_lapses() {
    let app = App::start().await;
    app.fill_cart("dave", &[(11, 1)]).await;
    // What a checkout that died between the claim and storing its order leaves behind.
    let cart: flotilla_cart::contract::Cart = crate::harness::expect_json(
        send(app.as_user(Method::GET, "cart", "/", "dave")).await,
        StatusCode::OK,
    )
    .await;
    let claim = app
        .as_user(Method::PUT, "cart", "/claims/ord_lost", "dave")
        .json(&json!({ "version": cart.version, "ttl_secs": 30 }));
    assert_eq!(send(claim).await.status(), StatusCode::OK);
    let request = body(GOOD_CARD, "10117");
    let res = app.post_checkout("dave", Some("k"), &request).await;
    let problem = expect_problem(res, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, PROBLEM_CHECKOUT_IN_PROGRESS);
    assert_eq!(orders_of(&app, "dave").await, 0, "nothing stored");
    app.clock.advance(30_000);
    let order = app.checkout("dave", "k", &request).await;
    assert_eq!(
        app.settled("dave", &order.id).await.status,
        OrderStatus::Confirmed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_a_declined_checkout_leave_the_cart_free() {
    let app = App::start().await;
    app.fill_cart("erin", &[(12, 1)]).await;
    let declined = body(DECLINED_CARD, "10117");
    let answers = futures::future::join_all(
        (0..10).map(|_| app.post_checkout("erin", Some("declined"), &declined)),
    )
    .await;
    let mut ids = std::collections::BTreeSet::new();
    for res in answers {
        assert!(res.status().is_success(), "{}", res.status());
        ids.insert(decode::<Order>(res).await.id);
    }
    assert_eq!(ids.len(), 1, "one key, one order");
    let id = ids.pop_first().unwrap_or_default();
    assert_eq!(
        app.settled("erin", &id).await.status,
        OrderStatus::Cancelled
    );
    // However late a repeat renewed the claim, the cancelled order holds the cart no more.
    let paid = app
        .checkout("erin", "paid", &body(GOOD_CARD, "10117"))
        .await;
    assert_eq!(
        app.settled("erin", &paid.id).await.status,
        OrderStatus::Confirmed
    );
}
