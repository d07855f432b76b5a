//! Crashes at every persisted transition (RELIABILITY F5). A [`SagaDriver`] — an orders
//! instance over the same database that runs nothing by itself — places orders and drives their
//! sagas to a chosen step, optionally makes the next step's call without recording it, and is
//! then dropped with its leases held: what `kill -9` leaves behind. Moving the clock past the
//! lease lets the fleet's recovery loop resume them; each must finish with no step taking
//! effect twice.
//!
//! [`SagaDriver`]: flotilla_orders::testing::SagaDriver

use flotilla_chassis::{Caller, Role};
use flotilla_inventory::contract::ReservationStatus;
use flotilla_orders::contract::{CheckoutRequest, OrderStatus};
use flotilla_payments::contract::PaymentStatus;
use flotilla_shipping::contract::ShipmentStatus;
use std::time::Duration;

use crate::harness::{App, CAPTURE_DECLINED_CARD, GOOD_CARD, LEASE_MS, TTL_SECS, body, counts};

const FORWARD: [&str; 6] = [
    "RESERVE",
    "AUTHORIZE",
    "SHIP",
    "CAPTURE",
    "COMMIT",
    "CONFIRM",
];

fn caller(user: &str) -> Caller {
    Caller {
        user_id: user.to_owned(),
        role: Role::Customer,
    }
}

fn request(card: &str) -> CheckoutRequest {
    serde_json::from_value(body(card, "10117")).expect("request")
}

/// How many log entries of `order_id` read `line`.
async fn logged(app: &App, order_id: &str, line: &str) -> usize {
    app.saga_log(order_id)
        .await
        .iter()
        .filter(|l| *l == line)
        .count()
}

#[tokio::test]
async fn a_saga_killed_after_any_step_resumes_with_no_second_effect() {
    let app = App::start().await;
    let driver = app.driver().await;
    // (order, user, product, stock before) for: crash after k recorded steps, with or without
    // the next call made but not recorded.
    let mut placed = Vec::new();
    for recorded in 0..FORWARD.len() {
        for unrecorded_call in [false, true] {
            let n = 1 + placed.len() as u32;
            let user = format!("crash-{recorded}-{unrecorded_call}");
            app.fill_cart(&user, &[(n, 2)]).await;
            let before = app.stock(n).await;
            let id = driver
                .place(&caller(&user), "k", &request(GOOD_CARD))
                .await
                .expect("placed");
            assert_eq!(
                driver.run(&id, recorded).await,
                Ok(None),
                "paused after {recorded} steps"
            );
            if unrecorded_call {
                driver
                    .call_without_recording(&id)
                    .await
                    .expect("the call is made");
            }
            placed.push((id, user, n, before));
        }
    }
    drop(driver);

    // The leases are still held: nothing moves until they run out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (id, user, ..) in &placed {
        assert_eq!(
            app.order(user, id).await.status,
            OrderStatus::Pending,
            "{id}"
        );
    }
    app.clock.advance(LEASE_MS + 1);

    for (id, user, n, before) in &placed {
        let order = app.settled(user, id).await;
        assert_eq!(order.status, OrderStatus::Confirmed, "{id}");
        for step in FORWARD {
            assert_eq!(
                logged(&app, id, &format!("{step} do ok")).await,
                1,
                "{id} {step}"
            );
        }
        assert_eq!(
            app.saga_log(id).await.len(),
            FORWARD.len(),
            "nothing failed, nothing repeated"
        );
        assert_eq!(app.payments(id).await.len(), 1, "{id}");
        assert_eq!(
            app.ledger(id).await,
            counts(&[("authorize", 1), ("capture", 1)]),
            "{id}"
        );
        let shipment = app.shipment(id).await.expect("shipped");
        assert_eq!(shipment.status, ShipmentStatus::Created);
        assert_eq!(
            app.reservation(id).await.status,
            ReservationStatus::Committed
        );
        assert_eq!(app.stock(*n).await, before - 2, "{id}: sold once");
    }
    let confirmed = app.events("order.confirmed").await;
    assert_eq!(confirmed.len(), placed.len(), "one event per order");
}

#[tokio::test]
async fn a_compensation_killed_midway_finishes_once() {
    let app = App::start().await;
    let driver = app.driver().await;
    app.fill_cart("comp", &[(20, 1)]).await;
    let before = app.stock(20).await;
    let id = driver
        .place(&caller("comp"), "k", &request(CAPTURE_DECLINED_CARD))
        .await
        .expect("placed");
    // RESERVE, AUTHORIZE, SHIP, CAPTURE (declined), CANCEL_SHIPMENT; then the void is made and
    // the process dies before recording it.
    assert_eq!(driver.run(&id, 5).await, Ok(None));
    let made = driver
        .call_without_recording(&id)
        .await
        .expect("the void is made");
    assert!(made.starts_with("VOID_OR_REFUND"), "{made}");
    drop(driver);
    app.clock.advance(LEASE_MS + 1);

    let order = app.settled("comp", &id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
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
    assert_eq!(app.saga_log(&id).await, expected.map(String::from));
    assert_eq!(
        app.ledger(&id).await,
        counts(&[("authorize", 1), ("void", 1)])
    );
    assert_eq!(app.payments(&id).await[0].status, PaymentStatus::Voided);
    assert_eq!(
        app.shipment(&id).await.map(|s| s.status),
        Some(ShipmentStatus::Cancelled)
    );
    assert_eq!(app.stock(20).await, before);
}

#[tokio::test]
async fn a_reservation_expired_before_commit_is_refunded_and_unshipped() {
    let app = App::start().await;
    let driver = app.driver().await;
    app.fill_cart("late", &[(21, 3)]).await;
    let before = app.stock(21).await;
    let id = driver
        .place(&caller("late"), "k", &request(GOOD_CARD))
        .await
        .expect("placed");
    // RESERVE, AUTHORIZE, SHIP, CAPTURE: the money is taken...
    assert_eq!(driver.run(&id, 4).await, Ok(None));
    drop(driver);
    // ...and the process is down longer than the reservation lives.
    app.clock.advance(TTL_SECS * 1000 + LEASE_MS);

    let order = app.settled("late", &id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert!(order.reason.unwrap_or_default().contains("expired"));
    let expected = [
        "RESERVE do ok",
        "AUTHORIZE do ok",
        "SHIP do ok",
        "CAPTURE do ok",
        "COMMIT do failed",
        "CANCEL_SHIPMENT compensate ok",
        "VOID_OR_REFUND compensate ok",
        "RELEASE compensate ok",
        "CANCEL compensate ok",
    ];
    assert_eq!(app.saga_log(&id).await, expected.map(String::from));
    assert_eq!(
        app.ledger(&id).await,
        counts(&[("authorize", 1), ("capture", 1), ("refund", 1)])
    );
    assert_eq!(app.payments(&id).await[0].status, PaymentStatus::Refunded);
    assert_eq!(
        app.shipment(&id).await.map(|s| s.status),
        Some(ShipmentStatus::Cancelled)
    );
    assert_eq!(
        app.reservation(&id).await.status,
        ReservationStatus::Released
    );
    assert_eq!(app.stock(21).await, before, "the stock is back");
}

#[tokio::test]
async fn an_executor_that_lost_its_lease_changes_nothing() {
    let app = App::start().await;
    let driver = app.driver().await;
    app.fill_cart("slow", &[(22, 1)]).await;
    let id = driver
        .place(&caller("slow"), "k", &request(GOOD_CARD))
        .await
        .expect("placed");
    assert_eq!(driver.run(&id, 2).await, Ok(None));
    // The driver stalls past its lease; the recovery loop takes the saga over and finishes it.
    app.clock.advance(LEASE_MS + 1);
    assert_eq!(
        app.settled("slow", &id).await.status,
        OrderStatus::Confirmed
    );
    // Waking up, the stale executor finds the saga done (or no longer its own) and writes
    // nothing: the log has each step once.
    assert!(matches!(
        driver.run(&id, 10).await,
        Ok(Some(OrderStatus::Confirmed)) | Err(_)
    ));
    assert_eq!(app.saga_log(&id).await.len(), FORWARD.len());
    assert_eq!(
        app.ledger(&id).await,
        counts(&[("authorize", 1), ("capture", 1)])
    );
}
