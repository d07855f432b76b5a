//! Each test card does what Stripe's does, and only the brand and last four digits are kept.

use axum::http::{Method, StatusCode};
use flotilla_payments::contract::{DeclineProblem, LedgerKind, Payment, PaymentStatus};

use crate::harness::*;

#[tokio::test]
async fn the_good_card_authorizes_and_only_its_last_four_digits_are_kept() {
    let app = App::start().await;
    let reply = app
        .authorize("k1", "order-1", 1999, "4242 4242 4242 4242")
        .await;
    let payment: Payment = reply.json(StatusCode::CREATED);
    assert!(!reply.replayed);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert!(!reply.body.contains("4242424242424242"));
    assert_eq!(payment.status, PaymentStatus::Authorized);
    assert_eq!(
        (payment.card_last4.as_str(), payment.card_brand.as_str()),
        ("4242", "visa")
    );
    assert_eq!(payment.amount.amount_minor, 1999);
    assert_eq!(payment.order_id, "order-1");
    assert_eq!(
        payment.created_at,
        time::macros::datetime!(2025-06-15 15:06:40 UTC)
    );
    assert!(
        reply
            .body
            .contains(r#""created_at":"2025-06-15T15:06:40Z""#),
        "the wire text of a time: {}",
        reply.body
    );
    assert_eq!(app.payment(&payment.id).await, payment);
    let ledger = app.ledger(&payment.id).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].kind, LedgerKind::Authorize);
    assert_eq!(ledger[0].amount, payment.amount);
}

#[tokio::test]
async fn declined_cards_answer_402_with_their_code_and_are_recorded() {
    let app = App::start().await;
    for (card, code) in [
        (DECLINED_CARD, "card_declined"),
        (NO_FUNDS_CARD, "insufficient_funds"),
    ] {
        let order = format!("order-{code}");
        let reply = app.authorize(&format!("k-{code}"), &order, 500, card).await;
        assert_eq!(reply.slug(), "card-declined");
        let problem = reply.problem(StatusCode::PAYMENT_REQUIRED);
        assert!(problem.detail.as_deref().is_some_and(|d| d.contains(code)));
        // A plain problem reader keeps the extension members.
        assert_eq!(problem.extensions["decline_code"], code);
        assert!(problem.extensions["payment_id"].is_string());
        let declined: DeclineProblem = reply.json(StatusCode::PAYMENT_REQUIRED);
        assert_eq!(declined.decline_code.as_str(), code);

        // The decline is a recorded answer: the retry gets the same bytes.
        let again = app.authorize(&format!("k-{code}"), &order, 500, card).await;
        assert!(again.replayed);
        assert_eq!((again.status, &again.body), (reply.status, &reply.body));

        let payments = app.for_order(&order).await;
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0].id, declined.payment_id);
        assert_eq!(payments[0].status, PaymentStatus::Declined);
        assert!(app.ledger(&declined.payment_id).await.is_empty());
    }
}

#[tokio::test]
async fn a_processing_error_records_nothing_so_a_retry_runs_again() {
    let app = App::start().await;
    for _ in 0..2 {
        let reply = app
            .authorize("k", "order-1", 500, PROCESSING_ERROR_CARD)
            .await;
        assert_eq!(reply.slug(), "processing-error");
        reply.problem(StatusCode::PAYMENT_REQUIRED);
        assert!(!reply.replayed);
    }
    assert!(app.for_order("order-1").await.is_empty());
    // Nothing was stored under the key: it is free for a request with other parameters.
    let reply = app.authorize("k", "order-1", 500, OK_CARD).await;
    let _: Payment = reply.json(StatusCode::CREATED);
}

#[tokio::test]
async fn a_card_whose_capture_is_declined_stays_authorized_and_can_be_voided() {
    let app = App::start().await;
    let reply = app
        .authorize("k", "order-1", 700, CAPTURE_DECLINED_CARD)
        .await;
    let payment: Payment = reply.json(StatusCode::CREATED);
    assert_eq!(payment.card_last4, "0341");

    let capture = app.movement("capture", "cap-1", &payment.id).await;
    assert_eq!(capture.slug(), "capture-declined");
    capture.problem(StatusCode::PAYMENT_REQUIRED);
    let replay = app.movement("capture", "cap-1", &payment.id).await;
    assert!(replay.replayed);
    assert_eq!(replay.body, capture.body);
    assert_eq!(
        app.payment(&payment.id).await.status,
        PaymentStatus::Authorized
    );
    // Another key gets the same verdict: the card still declines.
    let other = app.movement("capture", "cap-2", &payment.id).await;
    assert_eq!(other.slug(), "capture-declined");

    let voided: Payment = app
        .movement("void", "void-1", &payment.id)
        .await
        .json(StatusCode::OK);
    assert_eq!(voided.status, PaymentStatus::Voided);
    assert_eq!(app.ledger_count(&payment.id, LedgerKind::Capture).await, 0);
    assert_eq!(app.ledger_count(&payment.id, LedgerKind::Void).await, 1);
}

#[tokio::test]
async fn other_card_numbers_are_422_invalid_card_and_never_echoed() {
    let app = App::start().await;
    for card in [
        "4111111111111111",
        "5555555555554444",
        "12345678901",
        "12345678901234567890",
        "4242-4242-4242-4242",
        "abcd",
        "",
    ] {
        let reply = app.authorize("k", "order-1", 100, card).await;
        assert_eq!(reply.slug(), "invalid-card", "{card}");
        let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.errors[0].field, "card_number");
        if !card.is_empty() {
            assert!(!reply.body.contains(card), "{card} echoed");
        }
    }
    let list = app.send(app.as_admin(Method::GET, "/admin/payments")).await;
    assert!(list.body.contains("\"total\":0"), "{}", list.body);
}
