//! Keys: a retry replays the first answer byte for byte, a reused key with other parameters is
//! a 409, and concurrent requests with one key have one effect.

use axum::http::StatusCode;
use flotilla_payments::contract::{LedgerKind, Payment};

use crate::harness::*;

#[tokio::test]
async fn an_authorization_retried_with_its_key_is_replayed_exactly() {
    let app = App::start().await;
    let first = app.authorize("key-1", "order-1", 1500, OK_CARD).await;
    let payment: Payment = first.json(StatusCode::CREATED);
    // Time passes between attempts; the replay still shows the first answer.
    app.clock.advance(5_000);
    let second = app
        .authorize("key-1", "order-1", 1500, "4242 4242 4242 4242")
        .await;
    assert!(second.replayed);
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    assert_eq!(app.for_order("order-1").await, vec![payment]);
}

#[tokio::test]
async fn every_movement_retried_with_its_key_is_replayed_exactly() {
    let app = App::start().await;
    let captured = app.authorized("order-1", 1000).await;
    let voided = app.authorized("order-2", 2000).await;
    for (action, id) in [
        ("capture", &captured.id),
        ("refund", &captured.id),
        ("void", &voided.id),
    ] {
        let key = format!("{action}-key");
        let first = app.movement(action, &key, id).await;
        let _: Payment = first.json(StatusCode::OK);
        app.clock.advance(1_000);
        let again = app.movement(action, &key, id).await;
        assert!(again.replayed, "{action}");
        assert_eq!(
            (again.status, &again.body),
            (first.status, &first.body),
            "{action}"
        );
    }
    // A refused movement is an answer too, replayed as such.
    let refused = app.movement("void", "late-void", &captured.id).await;
    assert_eq!(refused.slug(), "invalid-state");
    let again = app.movement("void", "late-void", &captured.id).await;
    assert!(again.replayed);
    assert_eq!(again.body, refused.body);
}

#[tokio::test]
async fn a_key_reused_with_other_parameters_is_a_conflict() {
    let app = App::start().await;
    let first = app.authorize("key-1", "order-1", 1500, OK_CARD).await;
    let payment: Payment = first.json(StatusCode::CREATED);
    for (order, amount, card) in [
        ("order-1", 1501, OK_CARD),
        ("order-2", 1500, OK_CARD),
        ("order-1", 1500, CAPTURE_DECLINED_CARD),
    ] {
        let reply = app.authorize("key-1", order, amount, card).await;
        assert_eq!(reply.slug(), "idempotency-conflict");
        reply.problem(StatusCode::CONFLICT);
    }
    let other = app.authorized("order-3", 10).await;
    let _: Payment = app
        .movement("capture", "cap", &payment.id)
        .await
        .json(StatusCode::OK);
    let reply = app.movement("capture", "cap", &other.id).await;
    assert_eq!(reply.slug(), "idempotency-conflict");
    assert_eq!(app.ledger_count(&other.id, LedgerKind::Capture).await, 0);
}

#[tokio::test]
async fn keys_are_scoped_to_their_operation() {
    let app = App::start().await;
    let payment: Payment = app
        .authorize("same", "order-1", 100, OK_CARD)
        .await
        .json(StatusCode::CREATED);
    let captured: Payment = app
        .movement("capture", "same", &payment.id)
        .await
        .json(StatusCode::OK);
    let refunded: Payment = app
        .movement("refund", "same", &payment.id)
        .await
        .json(StatusCode::OK);
    assert_eq!(captured.id, refunded.id);
}

#[tokio::test]
async fn twenty_concurrent_authorizations_with_one_key_make_one_payment() {
    let app = std::sync::Arc::new(App::start().await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.authorize("one-key", "order-1", 4200, OK_CARD).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    let first = &replies[0];
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(
        replies
            .iter()
            .all(|r| r.status == first.status && r.body == first.body)
    );
    assert_eq!(replies.iter().filter(|r| !r.replayed).count(), 1);
    let payments = app.for_order("order-1").await;
    assert_eq!(payments.len(), 1);
    assert_eq!(app.summary().await.authorized_total, 4200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_movements_with_one_key_move_once_and_agree() {
    let app = std::sync::Arc::new(App::start().await);
    let captured = app.authorized("order-1", 700).await;
    let voided = app.authorized("order-2", 800).await;
    for (action, id, kind) in [
        ("capture", &captured.id, LedgerKind::Capture),
        ("void", &voided.id, LedgerKind::Void),
    ] {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let app = app.clone();
                let id = id.clone();
                tokio::spawn(async move { app.movement(action, "one-key", &id).await })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.expect("task"));
        }
        let first = &replies[0];
        let _: Payment = first.json(StatusCode::OK);
        assert!(
            replies
                .iter()
                .all(|r| r.status == first.status && r.body == first.body),
            "{action}: {replies:?}"
        );
        assert_eq!(
            replies.iter().filter(|r| !r.replayed).count(),
            1,
            "{action}"
        );
        assert_eq!(app.ledger_count(id, kind).await, 1, "{action}");
    }
}
