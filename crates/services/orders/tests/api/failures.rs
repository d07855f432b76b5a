//! A business failure at each saga step (RELIABILITY F4): the order ends CANCELLED with a
//! reason, every earlier step is compensated exactly once and in reverse order (the saga log
//! says so, and each peer agrees), the stock is back where it was, refunds equal captures.
//! The failure after CAPTURE (an expired reservation) is in `recovery`, where time can be
//! moved between the steps.

use flotilla_orders::contract::{Order, OrderCancelled, OrderStatus};
use flotilla_payments::contract::PaymentStatus;
use flotilla_shipping::contract::ShipmentStatus;

use crate::harness::{
    App, CAPTURE_DECLINED_CARD, DECLINED_CARD, GOOD_CARD, NO_FUNDS_CARD, PROCESSING_ERROR_CARD,
    body, counts,
};

/// Checks out 2 of product `n` for `user` and waits for the order to settle, which must be a
/// cancellation whose reason mentions `because`; checks what every failure leaves behind.
async fn cancelled(
    app: &App,
    user: &str,
    n: u32,
    card: &str,
    postal_code: &str,
    because: &str,
) -> Order {
    app.fill_cart(user, &[(n, 2)]).await;
    let before = app.stock(n).await;
    let placed = app.checkout(user, "key", &body(card, postal_code)).await;
    let order = app.settled(user, &placed.id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    let reason = order.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(because),
        "reason {reason:?} should mention {because:?}"
    );
    let history: Vec<&str> = order.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(history, ["PENDING", "CANCELLED"]);
    assert_eq!(app.stock(n).await, before, "the stock is back");
    let ledger = app.ledger(&order.id).await;
    assert_eq!(
        ledger.get("capture"),
        ledger.get("refund"),
        "refunds = captures"
    );
    let events = app.events("order.cancelled").await;
    let event: OrderCancelled =
        serde_json::from_value(events.last().cloned().unwrap_or_default()).expect("v1 payload");
    assert_eq!(
        (event.order_id.as_str(), event.reason.as_str()),
        (order.id.as_str(), reason.as_str())
    );
    assert!(app.events("order.confirmed").await.is_empty());
    order
}

fn log(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

#[tokio::test]
async fn out_of_stock_at_reserve_undoes_nothing() {
    let app = App::start().await;
    app.set_stock(5, 1).await;
    let order = cancelled(&app, "u1", 5, GOOD_CARD, "10117", "out of stock").await;
    assert_eq!(
        app.saga_log(&order.id).await,
        log(&["RESERVE do failed", "CANCEL compensate ok"])
    );
    assert!(
        app.payments(&order.id).await.is_empty(),
        "no payment was attempted"
    );
    assert!(app.shipment(&order.id).await.is_none());
}

#[tokio::test]
async fn a_declined_card_at_authorize_releases_the_stock() {
    let app = App::start().await;
    let order = cancelled(&app, "u2", 6, DECLINED_CARD, "10117", "card declined").await;
    let expected = [
        "RESERVE do ok",
        "AUTHORIZE do failed",
        "RELEASE compensate ok",
        "CANCEL compensate ok",
    ];
    assert_eq!(app.saga_log(&order.id).await, log(&expected));
    let payments = app.payments(&order.id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, PaymentStatus::Declined);
    assert!(app.ledger(&order.id).await.is_empty(), "nothing was held");
}

#[tokio::test]
async fn insufficient_funds_at_authorize_releases_the_stock() {
    let app = App::start().await;
    let order = cancelled(&app, "u3", 7, NO_FUNDS_CARD, "10117", "insufficient funds").await;
    let expected = [
        "RESERVE do ok",
        "AUTHORIZE do failed",
        "RELEASE compensate ok",
        "CANCEL compensate ok",
    ];
    assert_eq!(app.saga_log(&order.id).await, log(&expected));
}

#[tokio::test]
async fn a_provider_that_keeps_failing_is_retried_then_given_up() {
    let app = App::start().await;
    let order = cancelled(
        &app,
        "u4",
        8,
        PROCESSING_ERROR_CARD,
        "10117",
        "your payment could not be processed",
    )
    .await;
    // The customer reads the reason: nothing of the shop's insides is in it.
    let reason = order.reason.clone().unwrap_or_default();
    for internal in [
        "AUTHORIZE",
        "attempts",
        "http",
        "503",
        "Idempotency-Key",
        "payments",
    ] {
        assert!(!reason.contains(internal), "{internal} in {reason:?}");
    }
    let expected = [
        "RESERVE do ok",
        "AUTHORIZE do failed",
        "AUTHORIZE do failed",
        "AUTHORIZE do failed",
        // The answer was never had: asked once more under the same key, nothing is held.
        "VOID_OR_REFUND compensate skipped",
        "RELEASE compensate ok",
        "CANCEL compensate ok",
    ];
    assert_eq!(app.saga_log(&order.id).await, log(&expected));
    assert!(app.ledger(&order.id).await.is_empty());
}

#[tokio::test]
async fn a_carrier_rejection_at_ship_voids_and_releases() {
    let app = App::start().await;
    let order = cancelled(&app, "u5", 9, GOOD_CARD, "00000", "carrier rejected").await;
    let expected = [
        "RESERVE do ok",
        "AUTHORIZE do ok",
        "SHIP do failed",
        "VOID_OR_REFUND compensate ok",
        "RELEASE compensate ok",
        "CANCEL compensate ok",
    ];
    assert_eq!(app.saga_log(&order.id).await, log(&expected));
    assert_eq!(
        app.ledger(&order.id).await,
        counts(&[("authorize", 1), ("void", 1)])
    );
    assert!(app.shipment(&order.id).await.is_none());
}

#[tokio::test]
async fn a_declined_capture_cancels_the_shipment_voids_and_releases() {
    let app = App::start().await;
    let order = cancelled(
        &app,
        "u6",
        10,
        CAPTURE_DECLINED_CARD,
        "10117",
        "capture was declined",
    )
    .await;
    let expected = [
        "RESERVE do ok",
        "AUTHORIZE do ok",
        "SHIP do ok",
        "CAPTURE do failed",
        "CANCEL_SHIPMENT compensate ok",
        "VOID_OR_REFUND compensate ok",
        "RELEASE compensate ok",
        "CANCEL compensate ok",
    ];
    assert_eq!(app.saga_log(&order.id).await, log(&expected));
    assert_eq!(
        app.ledger(&order.id).await,
        counts(&[("authorize", 1), ("void", 1)])
    );
    let shipment = app
        .shipment(&order.id)
        .await
        .expect("the shipment was made");
    assert_eq!(shipment.status, ShipmentStatus::Cancelled);
    assert_eq!(
        app.payments(&order.id).await[0].status,
        PaymentStatus::Voided
    );
}
