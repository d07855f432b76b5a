//! The happy path, and the requests refused before any order exists.

use axum::http::StatusCode;
use flotilla_inventory::contract::ReservationStatus;
use flotilla_orders::contract::{OrderConfirmed, OrderStatus};
use flotilla_payments::contract::PaymentStatus;
use flotilla_shipping::contract::ShipmentStatus;
use serde_json::json;

use crate::harness::{App, FLEET, GOOD_CARD, body, expect_problem, product, send};

#[tokio::test]
async fn a_checkout_is_confirmed_and_every_peer_agrees() {
    let app = App::start().await;
    app.fill_cart("alice", &[(3, 2), (7, 1)]).await;
    let before = (app.stock(3).await, app.stock(7).await);

    let placed = app
        .checkout("alice", "k-1", &body(GOOD_CARD, "10117"))
        .await;
    let order = app.settled("alice", &placed.id).await;

    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.reason, None);
    assert_eq!(order.user_id, "alice");
    let (p3, p7) = (app.price(3).await, app.price(7).await);
    let ids: Vec<(String, u32)> = order
        .lines
        .iter()
        .map(|l| (l.product_id.to_string(), l.quantity))
        .collect();
    assert_eq!(ids, [(product(3), 2), (product(7), 1)]);
    assert_eq!(order.lines[0].unit_price, p3);
    let subtotal = p3.amount_minor * 2 + p7.amount_minor;
    assert_eq!(order.subtotal.amount_minor, subtotal);
    assert!(order.shipping.amount_minor > 0);
    assert_eq!(
        order.total.amount_minor,
        subtotal + order.shipping.amount_minor
    );
    let history: Vec<&str> = order.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(history, ["PENDING", "CONFIRMED"]);

    // Payments: one payment, authorized and captured once, for the order's total.
    let payments = app.payments(&order.id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, PaymentStatus::Captured);
    assert_eq!(payments[0].amount, order.total);
    assert_eq!(order.payment_id.as_deref(), Some(payments[0].id.as_str()));
    let ledger = app.ledger(&order.id).await;
    assert_eq!(
        ledger,
        [("authorize".into(), 1), ("capture".into(), 1)].into()
    );

    // Shipping: one shipment, tracked as the order says.
    let shipment = app.shipment(&order.id).await.expect("a shipment");
    assert_eq!(shipment.status, ShipmentStatus::Created);
    assert_eq!(order.shipment_id.as_deref(), Some(shipment.id.as_str()));
    assert_eq!(
        order.tracking_number.as_deref(),
        Some(shipment.tracking_number.as_str())
    );
    assert_eq!(shipment.cost, order.shipping);

    // Inventory: the reservation is committed and the stock went down by what was bought.
    assert_eq!(
        app.reservation(&order.id).await.status,
        ReservationStatus::Committed
    );
    assert_eq!(
        (app.stock(3).await, app.stock(7).await),
        (before.0 - 2, before.1 - 1)
    );

    // The event is in the outbox, written with the status change.
    let events = app.events("order.confirmed").await;
    assert_eq!(events.len(), 1);
    let event: OrderConfirmed = serde_json::from_value(events[0].clone()).expect("v1 payload");
    assert_eq!(event.order_id, order.id);
    assert_eq!(event.total, order.total);
    assert_eq!(event.tracking_number, order.tracking_number);
    assert_eq!(event.lines.len(), 2);

    // The saga ran each step once, and let go of the card.
    let log = app.saga_log(&order.id).await;
    let expected = [
        "RESERVE",
        "AUTHORIZE",
        "SHIP",
        "CAPTURE",
        "COMMIT",
        "CONFIRM",
    ]
    .map(|s| format!("{s} do ok"));
    assert_eq!(log, expected);
    let saga = app.saga(&order.id).await;
    assert_eq!(
        (saga.status.as_str(), saga.step.as_str()),
        ("done", "CONFIRM")
    );
    let card: Option<String> =
        sqlx::query_scalar("SELECT card_number FROM sagas WHERE order_id = $1")
            .bind(&order.id)
            .fetch_one(app.fleet.dbs["orders"].pool())
            .await
            .expect("saga row");
    assert_eq!(card, None, "the card is forgotten");
    let text = send(app.as_user(
        axum::http::Method::GET,
        "orders",
        &format!("/{}", order.id),
        "alice",
    ))
    .await
    .text()
    .await
    .expect("body");
    assert!(!text.contains("4242"), "no card digits in responses");
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    let app = App::start().await;
    let good = body(GOOD_CARD, "10117");

    let res = app.post_checkout("bob", None, &good).await;
    assert_eq!(
        expect_problem(res, StatusCode::BAD_REQUEST).await.status,
        400
    );
    let long_key = "k".repeat(201);
    let res = app.post_checkout("bob", Some(&long_key), &good).await;
    expect_problem(res, StatusCode::BAD_REQUEST).await;

    let res = app.post_checkout("bob", Some("k"), &good).await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem.kind, "urn:flotilla:problem:empty-cart");

    app.fill_cart("bob", &[(1, 1)]).await;
    let res = app
        .post_checkout("bob", Some("k"), &body("1234", "10117"))
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem.errors[0].field, "card_number");

    let mut bad_address = good.clone();
    bad_address["address"]["city"] = json!("");
    bad_address["address"]["country"] = json!("germany");
    let res = app.post_checkout("bob", Some("k"), &bad_address).await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"address.city") && fields.contains(&"address.country"),
        "{fields:?}"
    );

    let mut antarctica = good.clone();
    antarctica["address"]["country"] = json!("AQ");
    let res = app.post_checkout("bob", Some("k"), &antarctica).await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem.kind, "urn:flotilla:problem:unsupported-destination");

    let anonymous = send(
        app.fleet
            .request(axum::http::Method::POST, "orders", "/")
            .json(&good),
    )
    .await;
    expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;

    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(app.fleet.dbs["orders"].pool())
        .await
        .expect("count");
    assert_eq!(stored, 0);

    // The same key still works once the request is right.
    let order = app.checkout("bob", "k", &good).await;
    assert_eq!(
        app.settled("bob", &order.id).await.status,
        OrderStatus::Confirmed
    );
}

#[tokio::test]
async fn a_cart_with_too_many_lines_is_refused() {
    let app = App::with_orders(json!({ "max_lines": 2 })).await;
    app.fill_cart("carol", &[(1, 1), (2, 1), (3, 1)]).await;
    let res = app
        .post_checkout("carol", Some("k"), &body(GOOD_CARD, "10117"))
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem.kind, "urn:flotilla:problem:too-many-lines");
}

#[tokio::test]
async fn a_dependency_down_before_the_order_exists_is_a_503_with_nothing_stored() {
    // No shipping: the quote cannot be had.
    let without_shipping: Vec<_> = FLEET.into_iter().filter(|s| s.name != "shipping").collect();
    let app = App::with(&without_shipping, json!({})).await;
    app.fill_cart("dave", &[(1, 1)]).await;
    let res = app
        .post_checkout("dave", Some("k"), &body(GOOD_CARD, "10117"))
        .await;
    expect_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(app.fleet.dbs["orders"].pool())
        .await
        .expect("count");
    assert_eq!(stored, 0);
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkout_keys")
        .fetch_one(app.fleet.dbs["orders"].pool())
        .await
        .expect("count");
    assert_eq!(keys, 0, "the key is free for a retry");
}

#[tokio::test]
async fn a_slow_saga_is_answered_202_and_finishes_without_the_request() {
    let app = App::with_orders(json!({ "respond_within_ms": 0 })).await;
    app.fill_cart("erin", &[(4, 1)]).await;
    let res = app
        .post_checkout("erin", Some("k"), &body(GOOD_CARD, "10117"))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let order: flotilla_orders::contract::Order = crate::harness::decode(res).await;
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.history.len(), 1);
    assert_eq!(
        app.settled("erin", &order.id).await.status,
        OrderStatus::Confirmed
    );
}

#[tokio::test]
async fn the_contract_lists_every_route() {
    let app = App::start().await;
    let res = send(app.fleet.get("orders", "/openapi.json")).await;
    let document: serde_json::Value = crate::harness::expect_json(res, StatusCode::OK).await;
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/",
        "/{id}",
        "/admin/sagas",
        "/admin/sagas/{order_id}",
        "/admin/orders",
        "/admin/summary",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert!(paths["/"].get("post").is_some() && paths["/"].get("get").is_some());
}
