//! One key, one order: repeats (one after another or all at once) get the first order back,
//! a different body with the same key is a conflict, and keys belong to their user.

use axum::http::StatusCode;
use flotilla_orders::contract::{Order, OrderStatus};

use crate::harness::{App, DECLINED_CARD, GOOD_CARD, body, decode, expect_problem};

async fn orders_of(app: &App, user: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.fleet.dbs["orders"].pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn a_repeated_request_returns_the_same_order() {
    let app = App::start().await;
    app.fill_cart("alice", &[(2, 1)]).await;
    let request = body(GOOD_CARD, "10117");
    let first = app.checkout("alice", "same", &request).await;
    let settled = app.settled("alice", &first.id).await;
    // Spacing of the card is not a difference.
    let mut respaced = request.clone();
    respaced["card_number"] = "4242424242424242".into();
    let res = app.post_checkout("alice", Some("same"), &respaced).await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "a settled order is answered 201"
    );
    let again: Order = decode(res).await;
    assert_eq!(again, settled);
    assert_eq!(orders_of(&app, "alice").await, 1);
    assert_eq!(app.payments(&first.id).await.len(), 1);
}

#[tokio::test]
async fn ten_concurrent_repeats_create_one_order() {
    let app = App::start().await;
    app.fill_cart("bob", &[(4, 1)]).await;
    let request = body(GOOD_CARD, "10117");
    let answers = futures::future::join_all(
        (0..10).map(|_| app.post_checkout("bob", Some("race"), &request)),
    )
    .await;
    let mut ids = std::collections::BTreeSet::new();
    for res in answers {
        let status = res.status();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
            "{status}"
        );
        let order: Order = decode(res).await;
        ids.insert(order.id);
    }
    assert_eq!(ids.len(), 1, "every answer is the same order");
    let id = ids.into_iter().next().unwrap_or_default();
    assert_eq!(app.settled("bob", &id).await.status, OrderStatus::Confirmed);
    assert_eq!(orders_of(&app, "bob").await, 1);
    assert_eq!(app.payments(&id).await.len(), 1);
    assert_eq!(app.ledger(&id).await.get("capture"), Some(&1));
}

#[tokio::test]
async fn a_different_body_with_the_same_key_is_a_conflict() {
    let app = App::start().await;
    app.fill_cart("carol", &[(5, 1)]).await;
    let first = app
        .checkout("carol", "reused", &body(GOOD_CARD, "10117"))
        .await;
    let res = app
        .post_checkout("carol", Some("reused"), &body(DECLINED_CARD, "10117"))
        .await;
    let problem = expect_problem(res, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, "urn:flotilla:problem:idempotency-conflict");
    let res = app
        .post_checkout("carol", Some("reused"), &body(GOOD_CARD, "10115"))
        .await;
    expect_problem(res, StatusCode::CONFLICT).await;
    app.settled("carol", &first.id).await;
    assert_eq!(orders_of(&app, "carol").await, 1);
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = App::start().await;
    app.fill_cart("dan", &[(6, 1)]).await;
    app.fill_cart("erin", &[(6, 1)]).await;
    let request = body(GOOD_CARD, "10117");
    let dans = app.checkout("dan", "shared-key", &request).await;
    let erins = app.checkout("erin", "shared-key", &request).await;
    assert_ne!(dans.id, erins.id);
    assert_eq!(app.settled("erin", &erins.id).await.user_id, "erin");
}
