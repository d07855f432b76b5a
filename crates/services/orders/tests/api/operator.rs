//! The operators' actions on a stuck or failed saga (issue 14): retried after the peer that
//! stopped it came back, it finishes with each step done once; compensated, it ends CANCELLED
//! with everything given back; set aside for review, the recovery loop leaves it alone. Each
//! action is refused (409) when the saga's state does not allow it or an executor holds the
//! saga, is written to the audit trail with the admin who asked, and races an executor (or
//! other operators) without both acting.

use axum::http::{Method, StatusCode};
use flotilla_chassis::audit::{AuditEntry, AuditOutcome};
use flotilla_chassis::pagination::Page;
use flotilla_chassis::{Caller, Role};
use flotilla_orders::contract::{CheckoutRequest, OrderStatus, SagaView};
use flotilla_payments::contract::PaymentStatus;
use serde_json::{Value, json};
use std::time::Duration;

use crate::harness::{
    App, FLEET, GOOD_CARD, LEASE_MS, SETTLE, body, counts, expect_json, expect_problem, send,
};

/// Forward steps retry long enough to be stuck, and the breaker in front of payments lets a
/// probe through soon after payments is back.
async fn patient_app() -> App {
    App::with_sections(
        &FLEET,
        json!({ "step_attempts": 100 }),
        &[("resilience", json!({ "breaker": { "open_wait_ms": 50 } }))],
    )
    .await
}

/// Every payments route answers 503 until [`payments_back`].
async fn payments_down(app: &App) {
    let res = send(
        app.as_user(Method::POST, "payments", "/admin/faults", "admin-1")
            .json(&json!({ "status": 503, "for_secs": 600 })),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED, "injecting the fault");
}

async fn payments_back(app: &App) {
    let res = send(app.as_user(Method::DELETE, "payments", "/admin/faults", "admin-1")).await;
    assert!(res.status().is_success(), "removing the fault");
}

/// `POST /admin/sagas/{order_id}/{verb}` as `user` (a review with `note`).
async fn act(app: &App, order_id: &str, verb: &str, user: &str) -> reqwest::Response {
    let path = format!("/admin/sagas/{order_id}/{verb}");
    let mut request = app.as_user(Method::POST, "orders", &path, user);
    if verb == "review" {
        request = request.json(&json!({ "note": "payments is down; retry once it is back" }));
    }
    send(request).await
}

/// The saga's row as the executor and the recovery loop see it.
async fn lease_and_attempts(app: &App, order_id: &str) -> (Option<String>, i64) {
    sqlx::query_as("SELECT lease_owner, attempts FROM sagas WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(app.fleet.db("orders").pool())
        .await
        .expect("saga row")
}

/// Checks out `user`'s cart with payments down and waits until the executor, after several
/// failed AUTHORIZE attempts, hands the saga back for a backoff longer than it holds a lease:
/// stuck at AUTHORIZE, nobody holding it. Returns the order id.
async fn stuck_at_authorize(app: &App, user: &str) -> String {
    app.fill_cart(user, &[(3, 1)]).await;
    payments_down(app).await;
    let order = app.checkout(user, "k1", &body(GOOD_CARD, "10117")).await;
    assert_eq!(order.status, OrderStatus::Pending);
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let (owner, attempts) = lease_and_attempts(app, &order.id).await;
        if owner.is_none() && attempts > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never handed back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let saga = app.saga(&order.id).await;
    assert_eq!(
        (saga.status.as_str(), saga.step.as_str()),
        ("running", "AUTHORIZE")
    );
    order.id
}

/// The saga's audit trail as `action outcome` lines, checking every entry names the admin.
fn audit_lines(saga: &SagaView, actor: &str) -> Vec<String> {
    saga.audit
        .iter()
        .map(|e| {
            assert_eq!(e.actor, actor, "{e:?}");
            assert_eq!(e.subject, saga.order_id);
            format!("{} {}", e.action, e.outcome.as_str())
        })
        .collect()
}

#[tokio::test]
async fn a_saga_stuck_at_authorize_is_retried_after_payments_returns_and_confirms_once() {
    let app = patient_app().await;
    let id = stuck_at_authorize(&app, "stuck").await;

    // Set aside: even once its backoff is over, the recovery loop leaves it alone.
    let held: SagaView =
        expect_json(act(&app, &id, "review", "admin-1").await, StatusCode::OK).await;
    let review = held.review.clone().expect("under review");
    assert_eq!(review.by, "admin-1");
    assert!(review.note.contains("payments is down"));
    payments_back(&app).await;
    app.clock.advance(31_000);
    // Proving that nothing happens takes some time: a dozen recovery passes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let still = app.saga(&id).await;
    assert_eq!(still.steps, held.steps, "the recovery loop left it alone");
    assert_eq!(app.order("stuck", &id).await.status, OrderStatus::Pending);

    let res = act(&app, &id, "retry", "admin-1").await;
    let resumed: SagaView = expect_json(res, StatusCode::ACCEPTED).await;
    assert_eq!(resumed.review, None, "a retry lifts the hold");
    let order = app.settled("stuck", &id).await;
    assert_eq!(order.status, OrderStatus::Confirmed, "{:?}", order.reason);
    // One authorization: the attempts that never reached payments left nothing behind, and
    // the retry used the same key.
    assert_eq!(app.payments(&id).await.len(), 1);
    assert_eq!(
        app.ledger(&id).await,
        counts(&[("authorize", 1), ("capture", 1)])
    );
    let saga = app.saga(&id).await;
    assert_eq!(
        audit_lines(&saga, "admin-1"),
        ["saga.review done", "saga.retry done"]
    );

    // A finished saga refuses everything, and says so in the trail.
    for verb in ["retry", "compensate", "review"] {
        let problem =
            expect_problem(act(&app, &id, verb, "admin-2").await, StatusCode::CONFLICT).await;
        assert_eq!(problem.kind, "urn:flotilla:problem:saga-action-refused");
        assert!(problem.detail.unwrap_or_default().contains("CONFIRMED"));
    }
    let saga = app.saga(&id).await;
    let refused: Vec<&AuditEntry> = saga
        .audit
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Refused)
        .collect();
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|e| e.actor == "admin-2"));

    // The service's whole trail, newest first, paged.
    let page: Page<AuditEntry> = expect_json(
        send(app.as_user(
            Method::GET,
            "orders",
            "/admin/audit?page=1&page_size=2",
            "admin-1",
        ))
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page.total, 5);
    assert_eq!(page.items.len(), 2);
    assert!(page.items[0].at >= page.items[1].at);
    assert_eq!(page.items[1].action, "saga.compensate");
}

#[tokio::test]
async fn a_stuck_saga_compensated_by_an_operator_ends_cancelled_with_everything_given_back() {
    let app = patient_app().await;
    let before = app.stock(3).await;
    let id = stuck_at_authorize(&app, "undo").await;
    assert_eq!(app.stock(3).await, before - 1, "reserved");
    payments_back(&app).await;

    let res = act(&app, &id, "compensate", "admin-1").await;
    let compensating: SagaView = expect_json(res, StatusCode::ACCEPTED).await;
    assert_eq!(compensating.status, "compensating");
    let order = app.settled("undo", &id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    let reason = order.reason.unwrap_or_default();
    assert!(reason.contains("cancelled by the shop"), "{reason}");
    assert_eq!(app.stock(3).await, before, "released");
    // The compensation settles the authorization whose answer was lost by asking again under
    // the same key, then voids what that finds: nothing stays held.
    assert_eq!(
        app.ledger(&id).await,
        counts(&[("authorize", 1), ("void", 1)])
    );
    let payments = app.payments(&id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, PaymentStatus::Voided);
    let log = app.saga_log(&id).await;
    assert_eq!(
        log[log.len() - 3..],
        [
            "VOID_OR_REFUND compensate ok",
            "RELEASE compensate ok",
            "CANCEL compensate ok",
        ]
    );
    let saga = app.saga(&id).await;
    assert_eq!(audit_lines(&saga, "admin-1"), ["saga.compensate done"]);
    assert!(
        saga.audit[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("running at AUTHORIZE")
    );
    let problem = expect_problem(
        act(&app, &id, "compensate", "admin-1").await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(problem.kind, "urn:flotilla:problem:saga-action-refused");
}

fn caller(user: &str) -> Caller {
    Caller {
        user_id: user.to_owned(),
        role: Role::Customer,
    }
}

fn request(card: &str) -> CheckoutRequest {
    serde_json::from_value(body(card, "10117")).expect("request")
}

#[tokio::test]
async fn an_executor_holding_the_saga_excludes_every_action_and_one_that_stalled_loses_it() {
    // No recovery pass during the test: the only executors are the driver and the operator's.
    let app = App::with_orders(json!({ "recovery_interval_ms": 3_600_000 })).await;
    let before = app.stock(5).await;
    app.fill_cart("held", &[(5, 1)]).await;
    let driver = app.driver().await;
    let id = driver
        .place(&caller("held"), "k1", &request(GOOD_CARD))
        .await
        .expect("placed");

    // The driver holds the saga: every action is refused, and nothing changes.
    for verb in ["retry", "compensate", "review"] {
        let problem =
            expect_problem(act(&app, &id, verb, "admin-1").await, StatusCode::CONFLICT).await;
        assert_eq!(problem.kind, "urn:flotilla:problem:saga-busy", "{verb}");
    }
    assert_eq!(driver.run(&id, 1).await, Ok(None), "RESERVE, still its own");

    // The driver stalls past its lease; an operator compensates; the driver's next write finds
    // the saga is no longer its own and changes nothing.
    app.clock.advance(LEASE_MS + 1);
    let res = act(&app, &id, "compensate", "admin-1").await;
    expect_json::<SagaView>(res, StatusCode::ACCEPTED).await;
    let order = app.settled("held", &id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    let log = app.saga_log(&id).await;
    let stalled = driver.run(&id, 5).await;
    assert_eq!(
        stalled,
        Ok(Some(OrderStatus::Cancelled)),
        "it finds the saga finished"
    );
    assert_eq!(app.saga_log(&id).await, log, "and changes nothing");
    assert_eq!(app.stock(5).await, before);
    // AUTHORIZE never ran; the compensation asked under its key and voided what that made.
    assert_eq!(
        app.ledger(&id).await,
        counts(&[("authorize", 1), ("void", 1)])
    );
    let saga = app.saga(&id).await;
    assert_eq!(
        audit_lines(&saga, "admin-1"),
        [
            "saga.retry refused",
            "saga.compensate refused",
            "saga.review refused",
            "saga.compensate done",
        ]
    );
}

#[tokio::test]
async fn operators_racing_each_other_and_the_recovery_loop_act_once() {
    let app = patient_app().await;
    let id = stuck_at_authorize(&app, "race").await;
    payments_back(&app).await;
    // Due now: the recovery loop claims it at its next pass, while eight operators click.
    app.clock.advance(31_000);
    let answers = futures::future::join_all(
        ["retry", "compensate"]
            .iter()
            .cycle()
            .take(8)
            .map(|verb| act(&app, &id, verb, "admin-1")),
    )
    .await;
    let mut won = Vec::new();
    for (n, res) in answers.into_iter().enumerate() {
        let verb = if n % 2 == 0 { "retry" } else { "compensate" };
        match res.status() {
            StatusCode::ACCEPTED => won.push(verb),
            StatusCode::CONFLICT => {}
            other => panic!("{verb} answered {other}"),
        }
    }
    assert!(won.len() <= 1, "several actions took effect: {won:?}");
    let order = app.settled("race", &id).await;
    let expected = if won == ["compensate"] {
        OrderStatus::Cancelled
    } else {
        OrderStatus::Confirmed
    };
    assert_eq!(order.status, expected, "won: {won:?}");
    let ledger = app.ledger(&id).await;
    if expected == OrderStatus::Confirmed {
        assert_eq!(ledger, counts(&[("authorize", 1), ("capture", 1)]));
    } else {
        // Nothing held: the compensation's lookup under AUTHORIZE's key authorized and voided.
        assert_eq!(ledger, counts(&[("authorize", 1), ("void", 1)]));
    }
    let saga = app.saga(&id).await;
    let done = saga
        .audit
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Done)
        .count();
    assert_eq!(done, won.len());
    assert_eq!(saga.audit.len(), 8, "every click is in the trail");
}

#[tokio::test]
async fn saga_actions_and_the_audit_trail_are_for_admins_only() {
    let app = App::start().await;
    app.fill_cart("alice", &[(1, 1)]).await;
    let order = app.checkout("alice", "a", &body(GOOD_CARD, "10117")).await;
    app.settled("alice", &order.id).await;
    for verb in ["retry", "compensate", "review"] {
        expect_problem(
            act(&app, &order.id, verb, "alice").await,
            StatusCode::FORBIDDEN,
        )
        .await;
        let path = format!("/admin/sagas/{}/{verb}", order.id);
        let anonymous = send(
            app.fleet
                .request(Method::POST, "orders", &path)
                .json(&json!({ "note": "x" })),
        )
        .await;
        expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
    }
    let res = send(app.as_user(Method::GET, "orders", "/admin/audit", "alice")).await;
    expect_problem(res, StatusCode::FORBIDDEN).await;
    let res = send(app.fleet.get("orders", "/admin/audit")).await;
    expect_problem(res, StatusCode::UNAUTHORIZED).await;
    assert!(
        app.saga(&order.id).await.audit.is_empty(),
        "nothing was done"
    );

    // Unknown sagas are 404s; a review needs a note.
    let unknown = "ord_00000000000000000000000000000000";
    expect_problem(
        act(&app, unknown, "retry", "admin-1").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let path = format!("/admin/sagas/{}/review", order.id);
    let blank = send(
        app.as_user(Method::POST, "orders", &path, "admin-1")
            .json(&json!({ "note": "  " })),
    )
    .await;
    expect_problem(blank, StatusCode::UNPROCESSABLE_ENTITY).await;
    let empty: Value = expect_json(
        send(app.as_user(Method::GET, "orders", "/admin/audit", "admin-1")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(empty["total"], 0);
}
