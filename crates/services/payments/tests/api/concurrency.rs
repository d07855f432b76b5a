//! Races: many requests at once against one payment produce one effect, no 5xx and answers
//! that agree with the ledger.

use axum::http::StatusCode;
use flotilla_payments::contract::{LedgerKind, PaymentStatus};
use std::sync::Arc;

use crate::harness::*;

async fn race(app: &Arc<App>, requests: Vec<(&'static str, String, String)>) -> Vec<Reply> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(action, key, id)| {
            let app = app.clone();
            tokio::spawn(async move { app.movement(action, &key, &id).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_captures_with_different_keys_capture_once() {
    let app = Arc::new(App::start().await);
    let payment = app.authorized("order-1", 1234).await;
    let requests = (0..20)
        .map(|i| ("capture", format!("cap-{i}"), payment.id.clone()))
        .collect();
    let replies = race(&app, requests).await;
    let won: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(won.len(), 1, "{replies:?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        assert_eq!(reply.slug(), "already-captured");
    }
    assert_eq!(app.ledger_count(&payment.id, LedgerKind::Capture).await, 1);
    assert_eq!(app.summary().await.captured_total, 1234);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_racing_captures_leaves_exactly_one_winner() {
    let app = Arc::new(App::start().await);
    let payment = app.authorized("order-1", 500).await;
    let requests = (0..20)
        .map(|i| {
            let action = if i % 2 == 0 { "capture" } else { "void" };
            (action, format!("{action}-{i}"), payment.id.clone())
        })
        .collect();
    let replies = race(&app, requests).await;
    assert!(
        replies
            .iter()
            .all(|r| r.status.is_success() || r.status == StatusCode::CONFLICT)
    );
    let captures = app.ledger_count(&payment.id, LedgerKind::Capture).await;
    let voids = app.ledger_count(&payment.id, LedgerKind::Void).await;
    assert_eq!(captures + voids, 1);
    let status = app.payment(&payment.id).await.status;
    let expected = if captures == 1 {
        PaymentStatus::Captured
    } else {
        PaymentStatus::Voided
    };
    assert_eq!(status, expected);
    // Every 200 shows the winner's state: a losing capture or void never claims success.
    for reply in replies.iter().filter(|r| r.status == StatusCode::OK) {
        let shown: flotilla_payments::contract::Payment = reply.json(StatusCode::OK);
        assert_eq!(shown.status, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refunds_refund_once() {
    let app = Arc::new(App::start().await);
    let payment = app.authorized("order-1", 900).await;
    app.movement("capture", "cap", &payment.id).await;
    let requests = (0..20)
        .map(|i| ("refund", format!("refund-{i}"), payment.id.clone()))
        .collect();
    let replies = race(&app, requests).await;
    assert!(
        replies.iter().all(|r| r.status == StatusCode::OK),
        "{replies:?}"
    );
    assert_eq!(app.ledger_count(&payment.id, LedgerKind::Refund).await, 1);
    let summary = app.summary().await;
    assert_eq!(summary.captured_total - summary.refunded_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_mixed_requests_gets_no_5xx_and_keeps_the_books() {
    let app = Arc::new(App::start().await);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            app.authorized(&format!("order-{i}"), 100 * (i + 1))
                .await
                .id,
        );
    }
    let mut tasks = Vec::new();
    for round in 0..10 {
        for (i, id) in ids.iter().enumerate() {
            let app = app.clone();
            let id = id.clone();
            let action = ["capture", "void", "refund"][(round + i) % 3];
            // Keys repeat across rounds, so replays race with first attempts too.
            let key = format!("{action}-{i}-{}", round % 4);
            tasks.push(tokio::spawn(async move {
                app.movement(action, &key, &id).await
            }));
        }
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.authorize(&format!("new-{round}"), "order-new", 10, OK_CARD)
                .await
        }));
    }
    for task in tasks {
        let reply = task.await.expect("task");
        assert!(
            !reply.status.is_server_error(),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let summary = app.summary().await;
    let mut held = 0;
    for id in &ids {
        let payment = app.payment(id).await;
        for kind in [LedgerKind::Capture, LedgerKind::Void, LedgerKind::Refund] {
            assert!(app.ledger_count(id, kind).await <= 1);
        }
        if payment.status == PaymentStatus::Captured {
            held += payment.amount.amount_minor;
        }
    }
    assert_eq!(summary.captured_total - summary.refunded_total, held);
    assert_eq!(app.for_order("order-new").await.len(), 10);
}
