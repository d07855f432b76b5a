//! Bad input is answered with a problem+json 4xx, never a 5xx, and changes nothing.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn money_movements_require_a_sane_idempotency_key() {
    let app = App::start().await;
    let payment = app.authorized("order-1", 100).await;
    let body = authorize_body("order-2", 100, OK_CARD);
    let missing = app
        .send(app.request(Method::POST, "/payments").json(&body))
        .await;
    assert_eq!(missing.slug(), "invalid-idempotency-key");
    missing.problem(StatusCode::BAD_REQUEST);
    let long = app.authorize_raw(&"k".repeat(201), body.clone()).await;
    long.problem(StatusCode::BAD_REQUEST);
    let longest = app.authorize_raw(&"k".repeat(200), body).await;
    assert_eq!(longest.status, StatusCode::CREATED, "{}", longest.body);
    for action in ["capture", "void", "refund"] {
        let path = format!("/payments/{}/{action}", payment.id);
        let reply = app.send(app.request(Method::POST, &path)).await;
        reply.problem(StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.for_order("order-1").await, vec![payment]);
}

#[tokio::test]
async fn malformed_and_misshapen_bodies_are_400_and_422() {
    let app = App::start().await;
    let malformed = app
        .request(Method::POST, "/payments")
        .header("idempotency-key", "k")
        .header("content-type", "application/json")
        .body("{\"order_id\": ");
    app.send(malformed).await.problem(StatusCode::BAD_REQUEST);

    let cases: Vec<Value> = vec![
        json!({ "order_id": "o" }),
        json!({ "order_id": "o", "amount": { "amount_minor": 1, "currency": "euro" }, "card_number": OK_CARD }),
        json!({ "order_id": "o", "amount": { "amount_minor": "1", "currency": "EUR" }, "card_number": OK_CARD }),
        json!({ "order_id": 7, "amount": { "amount_minor": 1, "currency": "EUR" }, "card_number": OK_CARD }),
        json!([1, 2, 3]),
    ];
    for body in cases {
        let reply = app.authorize_raw("k", body.clone()).await;
        reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let too_big = "x".repeat(70 * 1024);
    let reply = app
        .authorize_raw("k", authorize_body(&too_big, 1, OK_CARD))
        .await;
    assert_eq!(reply.slug(), "payload-too-large");
    reply.problem(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn amounts_and_order_ids_out_of_bounds_are_422() {
    let app = App::with_config(json!({ "max_amount_minor": 10_000 })).await;
    for (order, amount) in [
        ("o", 0),
        ("o", -1),
        ("o", 10_001),
        ("o", i64::MAX),
        ("", 1),
        (&"o".repeat(129), 1),
        ("a\u{0}b", 1),
    ] {
        let reply = app.authorize("k", order, amount, OK_CARD).await;
        assert_eq!(reply.slug(), "validation", "{order:?} {amount}");
        reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let max = app.authorize("k", "o", 10_000, OK_CARD).await;
    assert_eq!(max.status, StatusCode::CREATED, "{}", max.body);
}

#[tokio::test]
async fn reads_reject_what_they_cannot_parse() {
    let app = App::start().await;
    let no_order = app.send(app.request(Method::GET, "/payments")).await;
    no_order.problem(StatusCode::BAD_REQUEST);
    let unknown_route = app.send(app.request(Method::GET, "/payments/a/b/c")).await;
    unknown_route.problem(StatusCode::NOT_FOUND);
    let wrong_method = app
        .send(app.request(
            Method::DELETE,
            "/payments/pay_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b",
        ))
        .await;
    wrong_method.problem(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn service_routes_are_internal_and_admin_routes_are_not() {
    let app = App::start().await;
    let doc: Value = app
        .send(app.request(Method::GET, "/openapi.json"))
        .await
        .json(StatusCode::OK);
    let ours = [
        ("post", "/payments", true),
        ("get", "/payments", true),
        ("get", "/payments/{id}", true),
        ("post", "/payments/{id}/capture", true),
        ("post", "/payments/{id}/void", true),
        ("post", "/payments/{id}/refund", true),
        ("get", "/admin/payments", false),
        ("get", "/admin/payments/{id}/ledger", false),
        ("get", "/admin/summary", false),
    ];
    let internal_doc: Value = app
        .send(app.request(Method::GET, "/openapi.internal.json"))
        .await
        .json(StatusCode::OK);
    for (method, path, internal) in ours {
        // Internal operations are only in the internal document, public ones only in the other.
        let (here, not_there) = if internal {
            (&internal_doc, &doc)
        } else {
            (&doc, &internal_doc)
        };
        assert!(
            not_there["paths"][path][method].is_null(),
            "{method} {path}"
        );
        let tags: Vec<&str> = here["paths"][path][method]["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(tags.contains(&"internal"), internal, "{method} {path}");
    }
}
