//! Shipments: priced from their quote or anew, created once per order (also under
//! concurrency), refused by the carrier for the test address, and cancelled idempotently.

use axum::http::StatusCode;
use flotilla_chassis::{Currency, Money};
use flotilla_shipping::contract::{
    PROBLEM_CARRIER_REJECTED, PROBLEM_SHIPMENT_CONFLICT, PROBLEM_UNSUPPORTED_DESTINATION, Shipment,
    ShipmentStatus,
};
use serde_json::json;
use std::sync::Arc;

use crate::harness::{App, address, error_fields, expect_json, expect_problem, shipment_body};

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

#[tokio::test]
async fn a_shipment_has_a_tracking_number_and_its_quotes_price() {
    let app = App::start().await;
    // 3 items, 5 kg: 4.90 + 2 × 0.50 + 3 × 1.00. A shipment priced anew has no weight (5.90).
    let quote = app
        .quote(json!({ "country": "DE", "postal_code": "10117", "items": 3, "weight_grams": 5000 }))
        .await;
    assert_eq!(quote.amount, eur(890));
    let mut body = shipment_body("order-1");
    body["quote_id"] = json!(quote.id);
    let shipment = app.create_expect(&body, StatusCode::CREATED).await;
    assert_eq!(shipment.cost, quote.amount);
    assert_eq!(shipment.order_id, "order-1");
    assert_eq!(shipment.status, ShipmentStatus::Created);
    assert_eq!(shipment.lines.len(), 2);
    assert_eq!(shipment.lines[0].product_id, "p0000001");
    assert_eq!(shipment.created_at, shipment.updated_at);
    let tracking = &shipment.tracking_number;
    assert_eq!(tracking.len(), 15, "{tracking}");
    assert!(tracking.starts_with("FLT"));
    assert!(
        tracking[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    );

    let read: Shipment = expect_json(
        app.get(&format!("/shipments/{}", shipment.id)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, shipment);
    assert_eq!(
        app.for_order("order-1").await,
        std::slice::from_ref(&shipment)
    );
    assert!(app.for_order("order-2").await.is_empty());

    let other = app
        .create_expect(&shipment_body("order-2"), StatusCode::CREATED)
        .await;
    assert_ne!(other.tracking_number, shipment.tracking_number);
    assert_ne!(other.id, shipment.id);
    assert_eq!(other.cost, eur(590), "no quote: 3 items to DE priced now");
}

#[tokio::test]
async fn an_expired_or_foreign_quote_is_priced_anew() {
    let app = App::start().await;
    let quote = app
        .quote(json!({ "country": "DE", "postal_code": "10117", "items": 3, "weight_grams": 5000 }))
        .await;
    // Still honoured one millisecond before it expires.
    app.clock.advance(1800 * 1000 - 1);
    let mut body = shipment_body("in-time");
    body["quote_id"] = json!(quote.id);
    assert_eq!(
        app.create_expect(&body, StatusCode::CREATED).await.cost,
        eur(890)
    );

    app.clock.advance(1);
    let mut body = shipment_body("too-late");
    body["quote_id"] = json!(quote.id);
    assert_eq!(
        app.create_expect(&body, StatusCode::CREATED).await.cost,
        eur(590)
    );

    let french = app
        .quote(json!({ "country": "FR", "postal_code": "75001", "items": 3 }))
        .await;
    let mut body = shipment_body("elsewhere");
    body["quote_id"] = json!(french.id);
    assert_eq!(
        app.create_expect(&body, StatusCode::CREATED).await.cost,
        eur(590)
    );

    let mut body = shipment_body("unknown-quote");
    body["quote_id"] = json!("no-such-quote");
    assert_eq!(
        app.create_expect(&body, StatusCode::CREATED).await.cost,
        eur(590)
    );
}

#[tokio::test]
async fn the_same_order_twice_is_one_shipment_whatever_its_status() {
    let app = App::start().await;
    let body = shipment_body("order-1");
    let first = app.create_expect(&body, StatusCode::CREATED).await;
    let again = app.create_expect(&body, StatusCode::OK).await;
    assert_eq!(again, first);
    // Trimming is not a difference, and neither is a (new) quote.
    let mut padded = body.clone();
    padded["address"]["city"] = json!("  Berlin ");
    padded["quote_id"] = json!("some-later-quote");
    assert_eq!(app.create_expect(&padded, StatusCode::OK).await, first);

    let cancelled = app.cancel(&first.id).await;
    let replay = app.create_expect(&body, StatusCode::OK).await;
    assert_eq!(replay, cancelled);
    assert_eq!(replay.status, ShipmentStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_for_one_order_make_one_shipment() {
    let app = Arc::new(App::start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let app = app.clone();
        tasks.spawn(async move {
            let res = app.create(&shipment_body("order-race")).await;
            let status = res.status();
            let shipment: Shipment = expect_json(res, status).await;
            (status, shipment)
        });
    }
    let mut created = 0;
    let mut ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (status, shipment) = done.expect("task");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
        ids.push(shipment.id);
    }
    assert_eq!(created, 1);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer is the one shipment");
    assert_eq!(app.for_order("order-race").await.len(), 1);
}

#[tokio::test]
async fn a_different_shipment_for_the_same_order_conflicts() {
    let app = App::start().await;
    let first = app
        .create_expect(&shipment_body("order-1"), StatusCode::CREATED)
        .await;

    let mut other_address = shipment_body("order-1");
    other_address["address"] = address("FR");
    let mut other_lines = shipment_body("order-1");
    other_lines["lines"][0]["quantity"] = json!(3);
    let mut reordered = shipment_body("order-1");
    reordered["lines"] = json!([
        { "product_id": "p0000002", "quantity": 1 },
        { "product_id": "p0000001", "quantity": 2 },
    ]);
    for body in [other_address, other_lines, reordered] {
        let problem = expect_problem(app.create(&body).await, StatusCode::CONFLICT).await;
        assert_eq!(problem.kind, PROBLEM_SHIPMENT_CONFLICT);
    }
    assert_eq!(app.for_order("order-1").await, [first]);
}

#[tokio::test]
async fn the_carrier_rejects_the_test_address_and_nothing_is_stored() {
    let app = App::start().await;
    let mut body = shipment_body("order-test");
    body["address"]["postal_code"] = json!("00000");
    for _ in 0..2 {
        let problem =
            expect_problem(app.create(&body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem.kind, PROBLEM_CARRIER_REJECTED);
    }
    assert!(app.for_order("order-test").await.is_empty());
    // The order can still be shipped to a real address.
    app.create_expect(&shipment_body("order-test"), StatusCode::CREATED)
        .await;
}

#[tokio::test]
async fn invalid_shipments_are_refused_with_field_errors() {
    let app = App::start().await;
    let mut bad_address = shipment_body("o");
    bad_address["address"] = json!({
        "name": "", "line1": "x", "city": "c", "postal_code": "#1", "country": "Germany",
    });
    let mut no_lines = shipment_body("o");
    no_lines["lines"] = json!([]);
    let mut bad_line = shipment_body("o");
    bad_line["lines"][1]["quantity"] = json!(0);
    let mut too_many = shipment_body("o");
    too_many["lines"][0]["quantity"] = json!(1000);
    let mut no_order = shipment_body("");
    no_order["lines"] = json!([]);
    let cases = [
        (
            bad_address,
            vec!["address.name", "address.postal_code", "address.country"],
        ),
        (no_lines, vec!["lines"]),
        (bad_line, vec!["lines[1].quantity"]),
        (too_many, vec!["lines"]),
        (no_order, vec!["order_id", "lines"]),
    ];
    for (body, fields) in cases {
        let problem =
            expect_problem(app.create(&body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(problem.kind.ends_with(":validation"), "{problem:?}");
        assert_eq!(error_fields(&problem), fields, "{body}");
    }
    let mut antarctica = shipment_body("o");
    antarctica["address"] = address("AQ");
    let problem = expect_problem(
        app.create(&antarctica).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem.kind, PROBLEM_UNSUPPORTED_DESTINATION);
    assert_eq!(error_fields(&problem), ["address.country"]);
    assert!(app.for_order("o").await.is_empty());
}

#[tokio::test]
async fn a_shipment_is_cancelled_once_and_stays_cancelled() {
    let app = App::start().await;
    let shipment = app
        .create_expect(&shipment_body("order-1"), StatusCode::CREATED)
        .await;
    app.clock.advance(5_000);
    let cancelled = app.cancel(&shipment.id).await;
    assert_eq!(cancelled.status, ShipmentStatus::Cancelled);
    assert_eq!(cancelled.tracking_number, shipment.tracking_number);
    assert_ne!(cancelled.updated_at, shipment.updated_at);
    app.clock.advance(5_000);
    let again = app.cancel(&shipment.id).await;
    assert_eq!(again, cancelled, "a second cancel changes nothing");
    let read: Shipment = expect_json(
        app.get(&format!("/shipments/{}", shipment.id)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, cancelled);

    let res = app.post("/shipments/nope/cancel", &json!({})).await;
    expect_problem(res, StatusCode::NOT_FOUND).await;
}
