//! The operator's views: only for admins, paged and filtered, and totals that agree with the
//! ledger.

use axum::http::{Method, StatusCode};
use flotilla_chassis::Role;
use flotilla_chassis::pagination::Page;
use flotilla_payments::contract::{LedgerKind, Payment, PaymentStatus};
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn admin_routes_need_the_admin_role() {
    let app = App::start().await;
    for path in [
        "/admin/payments",
        "/admin/summary",
        "/admin/payments/pay_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b/ledger",
    ] {
        let anonymous = app.send(app.request(Method::GET, path)).await;
        anonymous.problem(StatusCode::UNAUTHORIZED);
        let customer = app.fleet.as_user(
            Method::GET,
            flotilla_payments::NAME,
            path,
            "alice",
            Role::Customer,
        );
        app.send(customer).await.problem(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn the_admin_list_is_paged_newest_first_and_filtered_by_status() {
    let app = App::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        app.clock.advance(10);
        ids.push(app.authorized(&format!("order-{i}"), 100 + i).await.id);
    }
    app.movement("capture", "c", &ids[1]).await;
    app.movement("capture", "c2", &ids[3]).await;

    let page: Page<Payment> = app
        .send(app.as_admin(Method::GET, "/admin/payments?page=2&page_size=2"))
        .await
        .json(StatusCode::OK);
    assert_eq!(page.total, 5);
    let shown: Vec<&str> = page.items.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(shown, [ids[2].as_str(), ids[1].as_str()]);

    let captured: Page<Payment> = app
        .send(app.as_admin(Method::GET, "/admin/payments?status=captured"))
        .await
        .json(StatusCode::OK);
    assert_eq!(captured.total, 2);
    assert!(
        captured
            .items
            .iter()
            .all(|p| p.status == PaymentStatus::Captured)
    );

    for bad in ["?status=lost", "?page=0", "?page_size=101", "?page=x"] {
        let reply = app
            .send(app.as_admin(Method::GET, &format!("/admin/payments{bad}")))
            .await;
        reply.problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn the_summary_adds_up_the_ledger_per_currency() {
    let app = App::start().await;
    let captured = app.authorized("o1", 1000).await;
    let refunded = app.authorized("o2", 2000).await;
    let voided = app.authorized("o3", 400).await;
    let _pending = app.authorized("o4", 50).await;
    app.authorize("d", "o5", 70, NO_FUNDS_CARD).await;
    app.movement("capture", "c1", &captured.id).await;
    app.movement("capture", "c2", &refunded.id).await;
    app.movement("refund", "r2", &refunded.id).await;
    app.movement("void", "v3", &voided.id).await;
    let usd = app
        .authorize_raw(
            "usd",
            json!({
                "order_id": "o6",
                "amount": { "amount_minor": 99_999, "currency": "USD" },
                "card_number": OK_CARD,
            }),
        )
        .await;
    let usd: Payment = usd.json(StatusCode::CREATED);
    app.movement("capture", "cu", &usd.id).await;

    let summary = app.summary().await;
    assert_eq!(summary.currency, "EUR");
    assert_eq!(summary.authorized_total, 3450);
    assert_eq!(summary.captured_total, 3000);
    assert_eq!(summary.refunded_total, 2000);
    assert_eq!(summary.voided_total, 400);
    let counts: Vec<(&str, u64)> = summary
        .count_by_status
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        counts,
        [
            ("authorized", 1),
            ("captured", 1),
            ("declined", 1),
            ("refunded", 1),
            ("voided", 1)
        ]
    );

    // The same totals, added up entry by entry from the ledger.
    let mut sums = [0_i64; 4];
    for payment in [&captured, &refunded, &voided, &_pending] {
        for entry in app.ledger(&payment.id).await {
            let slot = match entry.kind {
                LedgerKind::Authorize => 0,
                LedgerKind::Capture => 1,
                LedgerKind::Refund => 2,
                LedgerKind::Void => 3,
            };
            sums[slot] += entry.amount.amount_minor;
        }
    }
    assert_eq!(
        sums,
        [
            summary.authorized_total,
            summary.captured_total,
            summary.refunded_total,
            summary.voided_total
        ]
    );

    let in_usd = app
        .send(app.as_admin(Method::GET, "/admin/summary?currency=USD"))
        .await
        .json::<flotilla_payments::contract::PaymentSummary>(StatusCode::OK);
    assert_eq!(
        (in_usd.captured_total, in_usd.currency.as_str()),
        (99_999, "USD")
    );
    let bad = app
        .send(app.as_admin(Method::GET, "/admin/summary?currency=euro"))
        .await;
    bad.problem(StatusCode::BAD_REQUEST);
}
