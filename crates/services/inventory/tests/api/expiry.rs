//! Expiry: a held reservation past its `expires_at` is released (reason "expired") by the
//! expiry pass, is never committable, and returns its units exactly once however the pass,
//! commits and releases interleave. Time is a manual clock; no test sleeps.

use axum::http::StatusCode;
use flotilla_inventory::contract::{
    RELEASED_EXPIRED, Reservation, ReservationStatus, problem_types,
};
use futures::future::join_all;
use serde_json::json;
use std::time::{Duration, Instant};

use crate::harness::{App, INITIAL, expect_json, expect_problem, product, reserve_body};

/// Reserves `lines` under `id`, held for `ttl_secs`.
async fn reserve_for(app: &App, id: &str, lines: &[(&str, i64)], ttl_secs: u64) -> Reservation {
    let mut body = reserve_body(id, lines);
    body["ttl_secs"] = json!(ttl_secs);
    expect_json(app.post_reserve(body).await, StatusCode::CREATED).await
}

#[tokio::test]
async fn the_pass_releases_what_expired_and_nothing_else() {
    let app = App::start().await;
    let a = product(1);
    reserve_for(&app, "short", &[(&a, 4)], 60).await;
    reserve_for(&app, "long", &[(&a, 6)], 120).await;
    assert_eq!(app.expire().await, 0, "nothing has expired yet");

    app.clock.advance(59_999);
    assert_eq!(app.expire().await, 0, "one millisecond early");
    app.clock.advance(1);
    assert_eq!(app.expire().await, 1, "due at exactly expires_at");
    assert_eq!(app.expire().await, 0, "a second pass finds nothing");

    let short = app.reservation("short").await;
    assert_eq!(short.status, ReservationStatus::Released);
    assert_eq!(short.released_reason.as_deref(), Some(RELEASED_EXPIRED));
    assert_eq!(app.available(&a).await, INITIAL - 6);
    let problem = expect_problem(app.act("short", "commit").await, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, problem_types::RESERVATION_RELEASED);
    assert!(problem.detail.unwrap_or_default().contains("expired"));

    assert_eq!(
        app.commit("long").await.status,
        ReservationStatus::Committed
    );
    app.clock.advance(3_600_000);
    assert_eq!(
        app.expire().await,
        0,
        "a committed reservation never expires"
    );
    assert_eq!(app.available(&a).await, INITIAL - 6);
}

#[tokio::test]
async fn an_expired_hold_is_not_committable_even_before_the_pass() {
    let app = App::start().await;
    let a = product(2);
    reserve_for(&app, "late", &[(&a, 5)], 30).await;
    app.clock.advance(30_000);
    let problem = expect_problem(app.act("late", "commit").await, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, problem_types::RESERVATION_RELEASED);
    let late = app.reservation("late").await;
    assert_eq!(late.status, ReservationStatus::Released);
    assert_eq!(late.released_reason.as_deref(), Some(RELEASED_EXPIRED));
    assert_eq!(
        app.available(&a).await,
        INITIAL,
        "the commit attempt released it"
    );
    assert_eq!(app.expire().await, 0, "so the pass has nothing left to do");
    assert_eq!(app.release("late").await, late, "and a release is a no-op");
    assert_eq!(app.available(&a).await, INITIAL, "units came back once");
}

#[tokio::test]
async fn releases_racing_expiry_passes_return_units_once() {
    let app = App::start().await;
    let (a, b) = (product(3), product(4));
    let ids: Vec<String> = (0..20).map(|n| format!("race-{n}")).collect();
    for id in &ids {
        reserve_for(&app, id, &[(&a, 2), (&b, 3)], 10).await;
    }
    assert_eq!(app.available(&a).await, INITIAL - 40);
    app.clock.advance(10_000);

    let releases = ids.iter().map(|id| app.act(id, "release"));
    let passes = (0..4).map(|_| app.expire());
    let (answers, passes) = tokio::join!(join_all(releases), join_all(passes));
    let mut released_on_request = 0;
    for res in answers {
        let r: Reservation = expect_json(res, StatusCode::OK).await;
        assert_eq!(r.status, ReservationStatus::Released);
        if r.released_reason.as_deref() != Some(RELEASED_EXPIRED) {
            released_on_request += 1;
        }
    }
    let by_passes: u64 = passes.into_iter().sum();
    assert_eq!(
        by_passes + released_on_request,
        20,
        "each released exactly once"
    );
    assert_eq!(app.available(&a).await, INITIAL);
    assert_eq!(app.available(&b).await, INITIAL);
    let summary = app.summary().await;
    assert_eq!((summary.held, summary.released), (0, 20));
    assert_eq!(summary.units_held, 0);
}

#[tokio::test]
async fn the_background_task_releases_expired_holds() {
    let app = App::with_config(json!({ "expiry_interval_ms": 10 })).await;
    let a = product(5);
    reserve_for(&app, "abandoned", &[(&a, 7)], 1).await;
    assert_eq!(app.available(&a).await, INITIAL - 7);
    app.clock.advance(1_000);
    // The task runs on real time; wait for its effect with a deadline instead of sleeping.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.reservation("abandoned").await;
        if r.status == ReservationStatus::Released {
            assert_eq!(r.released_reason.as_deref(), Some(RELEASED_EXPIRED));
            break;
        }
        assert!(Instant::now() < deadline, "the expiry task never ran");
        tokio::task::yield_now().await;
    }
    assert_eq!(app.available(&a).await, INITIAL);
}

#[tokio::test]
async fn a_pass_releases_more_than_a_batch_and_returns_each_products_units_once() {
    let app = App::start().await;
    let (a, b, c) = (product(6), product(7), product(8));
    // 130 reservations (more than one batch of 100), sharing products, with one and two lines;
    // ten of them committed, and ten that expire later.
    for n in 0..130 {
        let id = format!("many-{n:03}");
        match n % 3 {
            0 => reserve_for(&app, &id, &[(&a, 1)], 60).await,
            1 => reserve_for(&app, &id, &[(&a, 1), (&b, 1)], 60).await,
            _ => reserve_for(&app, &id, &[(&b, 1), (&c, 1)], 60).await,
        };
    }
    for n in 0..10 {
        reserve_for(&app, &format!("later-{n}"), &[(&c, 1)], 120).await;
    }
    for n in 0..10 {
        app.commit(&format!("many-{n:03}")).await;
    }
    // Committed: many-000 .. many-009, which hold a: 4 + 3, b: 3 + 3, c: 3.
    let (a_sold, b_sold, c_sold) = (7, 6, 3);
    app.clock.advance(60_000);
    assert_eq!(app.expire().await, 120);
    assert_eq!(app.expire().await, 0, "a second pass finds nothing");
    assert_eq!(app.available(&a).await, INITIAL - a_sold);
    assert_eq!(app.available(&b).await, INITIAL - b_sold);
    assert_eq!(app.available(&c).await, INITIAL - c_sold - 10);
    let released = app.reservation("many-128").await;
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(released.released_reason.as_deref(), Some(RELEASED_EXPIRED));
    assert_eq!(released.lines.len(), 2);
    let summary = app.summary().await;
    assert_eq!(
        (summary.held, summary.committed, summary.released),
        (10, 10, 120)
    );
    assert_eq!(summary.units_held, 10);
}
