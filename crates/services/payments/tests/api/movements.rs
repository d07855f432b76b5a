//! Capture, void and refund follow the lifecycle: one capture ever, void only before it,
//! refund only after it and once; unknown payments are 404 and leave the key unused.

use axum::http::{Method, StatusCode};
use flotilla_payments::contract::{DeclineProblem, LedgerKind, Payment, PaymentStatus};

use crate::harness::*;

#[tokio::test]
async fn a_payment_is_captured_once_and_refunded_once() {
    let app = App::start().await;
    let payment = app.authorized("order-1", 2500).await;
    app.clock.advance(1_000);
    let captured: Payment = app
        .movement("capture", "c1", &payment.id)
        .await
        .json(StatusCode::OK);
    assert_eq!(captured.status, PaymentStatus::Captured);
    assert_eq!(captured.created_at, payment.created_at);
    assert_ne!(captured.updated_at, payment.updated_at);

    let again = app.movement("capture", "c2", &payment.id).await;
    assert_eq!(again.slug(), "already-captured");
    again.problem(StatusCode::CONFLICT);
    let void = app.movement("void", "v1", &payment.id).await;
    assert_eq!(void.slug(), "invalid-state");
    void.problem(StatusCode::CONFLICT);

    let refunded: Payment = app
        .movement("refund", "r1", &payment.id)
        .await
        .json(StatusCode::OK);
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    // Refunding a refunded payment with another key answers it as it is, and moves nothing.
    let twice: Payment = app
        .movement("refund", "r2", &payment.id)
        .await
        .json(StatusCode::OK);
    assert_eq!(twice, refunded);
    let capture_after = app.movement("capture", "c3", &payment.id).await;
    assert_eq!(capture_after.slug(), "invalid-state");

    for kind in [
        LedgerKind::Authorize,
        LedgerKind::Capture,
        LedgerKind::Refund,
    ] {
        assert_eq!(app.ledger_count(&payment.id, kind).await, 1, "{kind:?}");
    }
    assert_eq!(app.ledger_count(&payment.id, LedgerKind::Void).await, 0);
}

#[tokio::test]
async fn a_void_releases_the_authorization_and_is_idempotent_by_state() {
    let app = App::start().await;
    let payment = app.authorized("order-1", 800).await;
    let voided: Payment = app
        .movement("void", "v1", &payment.id)
        .await
        .json(StatusCode::OK);
    assert_eq!(voided.status, PaymentStatus::Voided);
    let again: Payment = app
        .movement("void", "v2", &payment.id)
        .await
        .json(StatusCode::OK);
    assert_eq!(again, voided);
    for action in ["capture", "refund"] {
        let reply = app
            .movement(action, &format!("{action}-1"), &payment.id)
            .await;
        assert_eq!(reply.slug(), "invalid-state", "{action}");
        reply.problem(StatusCode::CONFLICT);
    }
    assert_eq!(app.ledger_count(&payment.id, LedgerKind::Void).await, 1);
    assert_eq!(app.payment(&payment.id).await.status, PaymentStatus::Voided);
}

#[tokio::test]
async fn a_refund_needs_a_capture() {
    let app = App::start().await;
    let payment = app.authorized("order-1", 800).await;
    let reply = app.movement("refund", "r1", &payment.id).await;
    assert_eq!(reply.slug(), "invalid-state");
    assert!(reply.body.contains("void it instead"), "{}", reply.body);
    assert_eq!(
        app.payment(&payment.id).await.status,
        PaymentStatus::Authorized
    );
    assert_eq!(app.ledger_count(&payment.id, LedgerKind::Refund).await, 0);
}

#[tokio::test]
async fn a_declined_payment_cannot_move() {
    let app = App::start().await;
    let declined: DeclineProblem = app
        .authorize("k", "order-1", 100, DECLINED_CARD)
        .await
        .json(StatusCode::PAYMENT_REQUIRED);
    for action in ["capture", "void", "refund"] {
        let reply = app
            .movement(action, &format!("{action}-1"), &declined.payment_id)
            .await;
        assert_eq!(reply.slug(), "invalid-state", "{action}");
    }
    assert!(app.ledger(&declined.payment_id).await.is_empty());
}

#[tokio::test]
async fn unknown_payments_are_404_and_leave_the_key_unused() {
    let app = App::start().await;
    let unknown = "pay_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b";
    for id in [
        unknown,
        "nope",
        "pay_%2e%2e",
        "pay_0190A1B2C3D47E8F9A0B1C2D3E4F5A6B",
    ] {
        for action in ["capture", "void", "refund"] {
            let reply = app.movement(action, "k", id).await;
            reply.problem(StatusCode::NOT_FOUND);
        }
        let get = app
            .send(app.request(Method::GET, &format!("/payments/{id}")))
            .await;
        get.problem(StatusCode::NOT_FOUND);
        let ledger = app
            .send(app.as_admin(Method::GET, &format!("/admin/payments/{id}/ledger")))
            .await;
        ledger.problem(StatusCode::NOT_FOUND);
    }
    // "k" was never recorded, so it may capture a real payment.
    let payment = app.authorized("order-1", 100).await;
    let _: Payment = app
        .movement("capture", "k", &payment.id)
        .await
        .json(StatusCode::OK);
}

#[tokio::test]
async fn the_payments_of_an_order_are_listed_oldest_first() {
    let app = App::start().await;
    let first = app.authorized("order-1", 100).await;
    app.clock.advance(10);
    let second = app.authorized("order-1", 200).await;
    app.authorized("order-2", 300).await;
    let ids: Vec<String> = app
        .for_order("order-1")
        .await
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, [first.id, second.id]);
    assert!(app.for_order("no such order").await.is_empty());
}
