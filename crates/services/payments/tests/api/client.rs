//! The typed client against the real service, as the orders saga will use it.

use axum::http::StatusCode;
use flotilla_chassis::{Currency, Money};
use flotilla_payments::client::{decline_code, is_retryable};
use flotilla_payments::contract::{AuthorizeRequest, PaymentStatus};

use crate::harness::*;

fn request(order: &str, card: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        order_id: order.to_owned(),
        amount: Money::new(4999, Currency::EUR),
        card_number: card.to_owned(),
    }
}

#[tokio::test]
async fn the_client_runs_a_saga_and_its_compensation() {
    let app = App::start().await;
    let client = app.client();

    let payment = client
        .authorize("order-1:authorize", &request("order-1", OK_CARD))
        .await
        .expect("authorize");
    assert_eq!(payment.status, PaymentStatus::Authorized);
    // A retry after a lost answer gets the same payment.
    let retried = client
        .authorize("order-1:authorize", &request("order-1", OK_CARD))
        .await
        .expect("authorize again");
    assert_eq!(retried, payment);

    let captured = client
        .capture("order-1:capture", &payment.id)
        .await
        .expect("capture");
    assert_eq!(captured.status, PaymentStatus::Captured);
    let refunded = client
        .refund("order-1:refund", &payment.id)
        .await
        .expect("refund");
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    assert_eq!(
        client.payment(&payment.id).await.expect("payment"),
        refunded
    );
    assert_eq!(
        client.for_order("order-1").await.expect("list"),
        vec![refunded]
    );
    assert!(
        client
            .for_order("order 1&x=y")
            .await
            .expect("list")
            .is_empty()
    );

    let other = client
        .authorize(
            "order-2:authorize",
            &request("order-2", CAPTURE_DECLINED_CARD),
        )
        .await
        .expect("authorize");
    let refused = client
        .capture("order-2:capture", &other.id)
        .await
        .expect_err("declined");
    assert_eq!(refused.status(), Some(StatusCode::PAYMENT_REQUIRED));
    assert!(!is_retryable(&refused));
    let voided = client.void("order-2:void", &other.id).await.expect("void");
    assert_eq!(voided.status, PaymentStatus::Voided);

    let unknown = client
        .payment("../admin/summary")
        .await
        .expect_err("unknown");
    assert!(unknown.is_not_found());
}

#[tokio::test]
async fn the_client_tells_declines_from_retryable_failures() {
    let app = App::start().await;
    let client = app.client();
    for (card, code) in [
        (DECLINED_CARD, "card_declined"),
        (NO_FUNDS_CARD, "insufficient_funds"),
    ] {
        let err = client
            .authorize(&format!("k-{code}"), &request("order-1", card))
            .await
            .expect_err("declined");
        assert_eq!(decline_code(&err).as_deref(), Some(code));
        assert!(!is_retryable(&err));
    }
    let err = client
        .authorize("k-processing", &request("order-1", PROCESSING_ERROR_CARD))
        .await
        .expect_err("processing error");
    assert!(is_retryable(&err));
    assert_eq!(decline_code(&err), None);

    let err = client
        .authorize("k-card_declined", &request("order-1", OK_CARD))
        .await
        .expect_err("conflict");
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    assert!(!is_retryable(&err));
}
