//! Events the service cannot handle: parked after the platform's `max_deliveries` (5 by
//! default) when another delivery might succeed (storage out of reach), at once when it cannot
//! (an unknown version, a payload that does not decode, an id that breaks the rules, an event
//! from a service that does not publish its type); listed to admins only,
//! replayable once the cause is fixed, and never in the way of the events behind them.

use axum::http::{Method, StatusCode};
use flotilla_chassis::Role;
use flotilla_chassis::events::Outcome;
use flotilla_chassis::pagination::Page;
use serde_json::{Value, json};

use crate::harness::{App, event, expect_json, expect_problem, order_confirmed};

/// The platform's default number of failed deliveries before an event is parked.
const MAX_DELIVERIES: usize = 5;

/// Delivers `poison` until it is parked, checking every earlier delivery failed and that it
/// took `deliveries`.
async fn deliver_until_parked(
    app: &App,
    poison: &flotilla_chassis::events::Event,
    deliveries: usize,
) {
    for attempt in 1..deliveries {
        let result = app.consumer().deliver(poison).await;
        assert!(
            result.is_err(),
            "attempt {attempt} of {}: {result:?}",
            poison.id
        );
    }
    let parked = app.consumer().deliver(poison).await.expect("parked");
    assert_eq!(parked, Outcome::DeadLettered);
}

async fn dead_letters(app: &App) -> Page<Value> {
    expect_json(
        app.get_as_admin("/admin/dead-letters").await,
        StatusCode::OK,
    )
    .await
}

async fn replay(app: &App, event_id: &str, role: Role) -> reqwest::Response {
    let path = format!("/admin/dead-letters/{event_id}/replay");
    app.as_role(Method::POST, &path, "ops", role)
        .send()
        .await
        .expect("POST reaches the service")
}

#[tokio::test]
async fn unreadable_events_are_parked_and_later_events_still_send() {
    let app = App::start().await;
    let mut unknown_version = order_confirmed("e-v2", "alice", "o-1");
    unknown_version.version = 2;
    let malformed = event(
        "e-malformed",
        "order.cancelled",
        1,
        json!({ "order_id": "o-1", "user_id": "alice", "reason": 42 }),
    );
    let nobody = event(
        "e-nobody",
        "order.cancelled",
        1,
        json!({ "order_id": "o-1", "user_id": "", "reason": "x",
                "total": { "amount_minor": 1, "currency": "EUR" } }),
    );
    let mut forged = order_confirmed("e-forged", "alice", "o-1");
    forged.source = "cart".into();
    for (poison, deliveries) in [
        (&unknown_version, 1),
        (&malformed, 1),
        (&nobody, 1),
        (&forged, 1),
    ] {
        deliver_until_parked(&app, poison, deliveries).await;
        // Parked means acknowledged: further deliveries neither fail nor run the handler.
        let again = app.consumer().deliver(poison).await.expect("still parked");
        assert_eq!(again, Outcome::DeadLettered);
    }
    assert_eq!(app.stored_messages().await, 0);
    let stats = app.consumer().stats().snapshot();
    assert_eq!(stats.dead_lettered, 4);
    assert_eq!(stats.failures, 4);

    app.publish(&order_confirmed("e-good", "alice", "o-2"))
        .await;
    let page = app.messages("alice").await;
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].order_id, "o-2");

    let parked = dead_letters(&app).await;
    assert_eq!(parked.total, 4);
    let mut ids: Vec<&str> = parked
        .items
        .iter()
        .map(|d| d["event_id"].as_str().expect("event_id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["e-forged", "e-malformed", "e-nobody", "e-v2"]);
    for letter in &parked.items {
        assert_eq!(letter["attempts"], 1, "{letter}");
        assert!(!letter["last_error"].as_str().unwrap_or("").is_empty());
    }
    let v2 = parked
        .items
        .iter()
        .find(|d| d["event_id"] == "e-v2")
        .expect("listed");
    assert!(
        v2["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("version 2")
    );
}

#[tokio::test]
async fn dead_letters_are_for_admins_only() {
    let app = App::start().await;
    let mut poison = order_confirmed("e-v9", "alice", "o-1");
    poison.version = 9;
    deliver_until_parked(&app, &poison, 1).await;

    let res = app.get_as("alice", "/admin/dead-letters").await;
    expect_problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .fleet
        .get(flotilla_notifications::NAME, "/admin/dead-letters")
        .send()
        .await
        .expect("GET");
    expect_problem(res, StatusCode::UNAUTHORIZED).await;
    let res = replay(&app, "e-v9", Role::Customer).await;
    expect_problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .fleet
        .request(
            Method::POST,
            flotilla_notifications::NAME,
            "/admin/dead-letters/e-v9/replay",
        )
        .send()
        .await
        .expect("POST");
    expect_problem(res, StatusCode::UNAUTHORIZED).await;
    assert_eq!(dead_letters(&app).await.total, 1, "still parked");
}

#[tokio::test]
async fn replaying_an_event_that_is_still_unreadable_is_a_409() {
    let app = App::start().await;
    let mut poison = order_confirmed("e-v2", "alice", "o-1");
    poison.version = 2;
    deliver_until_parked(&app, &poison, 1).await;

    // Nothing an operator can do here fixes a version this service does not understand.
    let res = replay(&app, "e-v2", Role::Admin).await;
    let problem = expect_problem(res, StatusCode::CONFLICT).await;
    assert!(
        problem
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("version 2"),
        "{problem:?}"
    );
    assert_eq!(dead_letters(&app).await.total, 1, "still parked");
    assert_eq!(app.stored_messages().await, 0);

    let res = replay(&app, "e-unknown", Role::Admin).await;
    expect_problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_dead_letter_replayed_after_the_cause_is_fixed_sends_one_message() {
    let app = App::start().await;
    // The cause: the messages table is out of reach for a while (a botched migration).
    sqlx::raw_sql("ALTER TABLE messages RENAME TO messages_away")
        .execute(app.db().pool())
        .await
        .expect("rename");
    let event = order_confirmed("e-later", "alice", "o-7");
    deliver_until_parked(&app, &event, MAX_DELIVERIES).await;
    assert_eq!(dead_letters(&app).await.total, 1);

    // The fix.
    sqlx::raw_sql("ALTER TABLE messages_away RENAME TO messages")
        .execute(app.db().pool())
        .await
        .expect("rename back");
    let res = replay(&app, "e-later", Role::Admin).await;
    let result: Value = expect_json(res, StatusCode::OK).await;
    assert_eq!(
        result,
        json!({ "event_id": "e-later", "outcome": "handled" })
    );

    let page = app.messages("alice").await;
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].order_id, "o-7");
    assert_eq!(dead_letters(&app).await.total, 0);

    // Replayed once: a second replay finds nothing, a late redelivery is a duplicate.
    let res = replay(&app, "e-later", Role::Admin).await;
    expect_problem(res, StatusCode::NOT_FOUND).await;
    let late = app.consumer().deliver(&event).await.expect("delivered");
    assert_eq!(late, Outcome::Duplicate);
    assert_eq!(app.stored_messages().await, 1);
}

/// Parks `event` behind a messages table out of reach, then brings the table back.
async fn park_until_fixed(app: &App, events: &[flotilla_chassis::events::Event]) {
    sqlx::raw_sql("ALTER TABLE messages RENAME TO messages_away")
        .execute(app.db().pool())
        .await
        .expect("rename");
    for event in events {
        deliver_until_parked(app, event, MAX_DELIVERIES).await;
    }
    sqlx::raw_sql("ALTER TABLE messages_away RENAME TO messages")
        .execute(app.db().pool())
        .await
        .expect("rename back");
}

async fn replay_all(app: &App, query: &str, role: Role) -> reqwest::Response {
    let path = format!("/admin/dead-letters/replay{query}");
    app.as_role(Method::POST, &path, "ops", role)
        .send()
        .await
        .expect("POST reaches the service")
}

async fn discard(app: &App, event_id: &str, body: Value, role: Role) -> reqwest::Response {
    let path = format!("/admin/dead-letters/{event_id}");
    app.as_role(Method::DELETE, &path, "ops", role)
        .json(&body)
        .send()
        .await
        .expect("DELETE reaches the service")
}

async fn audit(app: &App) -> Page<Value> {
    expect_json(app.get_as_admin("/admin/audit").await, StatusCode::OK).await
}

#[tokio::test]
async fn dead_letters_replayed_from_the_console_are_handled_once_in_bounded_batches() {
    let app = App::start().await;
    let events: Vec<_> = (1..=3)
        .map(|n| order_confirmed(&format!("e-{n}"), "alice", &format!("o-{n}")))
        .collect();
    park_until_fixed(&app, &events).await;
    let mut poison = order_confirmed("e-v2", "alice", "o-9");
    poison.version = 2;
    deliver_until_parked(&app, &poison, 1).await;
    assert_eq!(dead_letters(&app).await.total, 4);

    // A batch of two: the least-tried first (the unreadable one was tried once).
    let first: Value = expect_json(
        replay_all(&app, "?limit=2", Role::Admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["replayed"], 1, "{first}");
    assert_eq!(first["still_failing"][0]["event_id"], "e-v2", "{first}");
    assert_eq!(first["remaining"], 3, "{first}");
    let rest: Value = expect_json(replay_all(&app, "", Role::Admin).await, StatusCode::OK).await;
    assert_eq!(rest["replayed"], 2, "{rest}");
    assert_eq!(
        rest["still_failing"].as_array().map(Vec::len),
        Some(1),
        "{rest}"
    );
    assert_eq!(rest["remaining"], 1, "{rest}");

    // Each handled once: one message per event, and a late redelivery is a duplicate.
    assert_eq!(app.stored_messages().await, 3);
    for event in &events {
        let late = app.consumer().deliver(event).await.expect("delivered");
        assert_eq!(late, Outcome::Duplicate);
    }
    let again: Value = expect_json(replay_all(&app, "", Role::Admin).await, StatusCode::OK).await;
    assert_eq!(again["replayed"], 0);
    assert_eq!(app.stored_messages().await, 3);

    let trail = audit(&app).await;
    assert_eq!(trail.total, 3);
    assert!(
        trail
            .items
            .iter()
            .all(|e| e["action"] == "dead_letter.replay_all"
                && e["actor"] == "ops"
                && e["subject"] == "*")
    );

    let bad = replay_all(&app, "?limit=101", Role::Admin).await;
    expect_problem(bad, StatusCode::BAD_REQUEST).await;
    expect_problem(
        replay_all(&app, "", Role::Customer).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn a_discarded_dead_letter_is_gone_for_good_with_its_reason_in_the_audit_trail() {
    let app = App::start().await;
    let mut poison = order_confirmed("e-v3", "alice", "o-1");
    poison.version = 3;
    deliver_until_parked(&app, &poison, 1).await;

    // A reason is required, and only admins discard.
    let none = discard(&app, "e-v3", json!({}), Role::Admin).await;
    assert!(none.status().is_client_error(), "{}", none.status());
    let blank = discard(&app, "e-v3", json!({ "reason": " " }), Role::Admin).await;
    expect_problem(blank, StatusCode::UNPROCESSABLE_ENTITY).await;
    let customer = discard(&app, "e-v3", json!({ "reason": "x" }), Role::Customer).await;
    expect_problem(customer, StatusCode::FORBIDDEN).await;
    let anonymous = app
        .fleet
        .request(
            Method::DELETE,
            flotilla_notifications::NAME,
            "/admin/dead-letters/e-v3",
        )
        .json(&json!({ "reason": "x" }))
        .send()
        .await
        .expect("DELETE");
    expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
    assert_eq!(dead_letters(&app).await.total, 1, "still parked");

    let reason = "published by a test harness pointed at production";
    let res = discard(&app, "e-v3", json!({ "reason": reason }), Role::Admin).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(dead_letters(&app).await.total, 0);
    let again = discard(&app, "e-v3", json!({ "reason": reason }), Role::Admin).await;
    expect_problem(again, StatusCode::NOT_FOUND).await;

    // Settled: redelivered, it is a duplicate, never handled.
    let late = app.consumer().deliver(&poison).await.expect("delivered");
    assert_eq!(late, Outcome::Duplicate);
    assert_eq!(app.stored_messages().await, 0);

    let trail = audit(&app).await;
    assert_eq!(trail.total, 1);
    let entry = &trail.items[0];
    assert_eq!(entry["action"], "dead_letter.discard");
    assert_eq!(entry["actor"], "ops");
    assert_eq!(entry["subject"], "e-v3");
    assert_eq!(entry["note"], reason);
    assert_eq!(entry["outcome"], "done");
    assert!(
        entry["detail"].as_str().unwrap_or("").contains("o-1"),
        "the event is kept"
    );
}
