//! Reservations through their life: reserve all lines or none, commit, release, and the
//! idempotent answers to repeated calls that the checkout saga relies on.

use axum::http::{Method, StatusCode};
use flotilla_inventory::contract::{
    RELEASED_ON_REQUEST, Reservation, ReservationLine, ReservationStatus, problem_types,
};
use serde_json::json;

use flotilla_chassis::clock::at_millis;

use crate::harness::{App, INITIAL, T0, expect_json, expect_problem, product, reserve_body, send};

fn line(product_id: &str, quantity: i64) -> ReservationLine {
    ReservationLine {
        product_id: product_id.parse().expect("a product id"),
        quantity,
    }
}

#[tokio::test]
async fn reserve_then_commit_keeps_the_units_out_for_good() {
    let app = App::start().await;
    let (a, b) = (product(1), product(2));
    let held = app.reserve("order-1", &[(&b, 3), (&a, 2)]).await;
    assert_eq!(held.id, "order-1");
    assert_eq!(held.status, ReservationStatus::Held);
    assert_eq!(
        held.lines,
        vec![line(&a, 2), line(&b, 3)],
        "sorted by product"
    );
    assert_eq!(held.created_at, at_millis(T0));
    assert_eq!(
        held.expires_at,
        at_millis(T0 + 900_000),
        "default ttl 900 s"
    );
    assert_eq!(held.released_reason, None);
    assert_eq!(app.available(&a).await, INITIAL - 2);
    assert_eq!(app.available(&b).await, INITIAL - 3);

    let committed = app.commit("order-1").await;
    assert_eq!(committed.status, ReservationStatus::Committed);
    assert_eq!(committed.lines, held.lines);
    assert_eq!(
        app.commit("order-1").await,
        committed,
        "commit is idempotent"
    );
    assert_eq!(app.reservation("order-1").await, committed);
    assert_eq!(app.available(&a).await, INITIAL - 2, "sold units stay out");

    let problem = expect_problem(app.act("order-1", "release").await, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, problem_types::RESERVATION_COMMITTED);
    assert_eq!(app.available(&a).await, INITIAL - 2);
}

#[tokio::test]
async fn release_returns_the_units_exactly_once() {
    let app = App::start().await;
    let a = product(3);
    app.reserve("order-2", &[(&a, 10)]).await;
    assert_eq!(app.available(&a).await, INITIAL - 10);

    let released = app.release("order-2").await;
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(
        released.released_reason.as_deref(),
        Some(RELEASED_ON_REQUEST)
    );
    assert_eq!(app.available(&a).await, INITIAL);
    assert_eq!(
        app.release("order-2").await,
        released,
        "release is idempotent"
    );
    assert_eq!(
        app.available(&a).await,
        INITIAL,
        "and returns nothing twice"
    );

    let problem = expect_problem(app.act("order-2", "commit").await, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, problem_types::RESERVATION_RELEASED);
    assert_eq!(app.available(&a).await, INITIAL);
}

#[tokio::test]
async fn a_repeated_reserve_returns_the_reservation_as_it_is_now() {
    let app = App::start().await;
    let (a, b) = (product(4), product(5));
    let first = app.reserve("order-3", &[(&a, 1), (&b, 2)]).await;
    // Same lines in another order: a replay, answered 200, nothing reserved twice.
    let res = app
        .post_reserve(reserve_body("order-3", &[(&b, 2), (&a, 1)]))
        .await;
    let again: Reservation = expect_json(res, StatusCode::OK).await;
    assert_eq!(again, first);
    assert_eq!(app.available(&a).await, INITIAL - 1);

    // A replay after the reservation moved on shows where it is now, and changes nothing.
    app.clock.advance(5_000);
    let committed = app.commit("order-3").await;
    let res = app
        .post_reserve(reserve_body("order-3", &[(&a, 1), (&b, 2)]))
        .await;
    assert_eq!(
        expect_json::<Reservation>(res, StatusCode::OK).await,
        committed
    );
    assert_eq!(app.available(&b).await, INITIAL - 2);

    // The same Idempotency-Key as the id is accepted; another one is a mistake.
    let body = reserve_body("order-3", &[(&a, 1), (&b, 2)]);
    let keyed = send(
        app.request(Method::POST, "/reservations")
            .header("idempotency-key", "order-3")
            .json(&body),
    )
    .await;
    expect_json::<Reservation>(keyed, StatusCode::OK).await;
    for key in ["order-4", &"k".repeat(201)] {
        let res = send(
            app.request(Method::POST, "/reservations")
                .header("idempotency-key", key)
                .json(&body),
        )
        .await;
        expect_problem(res, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_reused_id_with_other_lines_is_a_conflict() {
    let app = App::start().await;
    let (a, b) = (product(6), product(7));
    app.reserve("order-5", &[(&a, 1)]).await;
    for lines in [
        vec![(a.as_str(), 2)],
        vec![(a.as_str(), 1), (b.as_str(), 1)],
    ] {
        let res = app.post_reserve(reserve_body("order-5", &lines)).await;
        let problem = expect_problem(res, StatusCode::CONFLICT).await;
        assert_eq!(problem.kind, problem_types::RESERVATION_CONFLICT);
    }
    assert_eq!(app.available(&a).await, INITIAL - 1);
    assert_eq!(app.available(&b).await, INITIAL);
}

#[tokio::test]
async fn out_of_stock_reserves_nothing() {
    let app = App::start().await;
    let (a, b, c) = (product(8), product(9), product(10));
    app.set_stock(&b, 2).await;
    let res = app
        .post_reserve(reserve_body(
            "order-6",
            &[(&a, 5), (&b, 3), (&c, 1), ("p9999999", 1)],
        ))
        .await;
    let problem = expect_problem(res, StatusCode::CONFLICT).await;
    assert_eq!(problem.kind, problem_types::OUT_OF_STOCK);
    let detail = problem.detail.unwrap_or_default();
    assert!(
        detail.contains(&b) && detail.contains("p9999999"),
        "{detail}"
    );
    assert!(!detail.contains(&a) && !detail.contains(&c), "{detail}");
    assert_eq!(app.available(&a).await, INITIAL, "no line was reserved");
    assert_eq!(app.available(&b).await, 2);
    assert_eq!(app.available(&c).await, INITIAL);
    let res = send(app.request(Method::GET, "/reservations/order-6")).await;
    expect_problem(res, StatusCode::NOT_FOUND).await;

    // The id was not used up: once there is stock, the same reservation succeeds.
    app.set_stock(&b, 3).await;
    app.set_stock("p9999999", 1).await;
    app.reserve("order-6", &[(&a, 5), (&b, 3), (&c, 1), ("p9999999", 1)])
        .await;
    assert_eq!(app.available(&b).await, 0);

    // Exactly what is left can be reserved; one more cannot.
    app.reserve("order-7", &[(&a, INITIAL - 5)]).await;
    let res = app.post_reserve(reserve_body("order-8", &[(&a, 1)])).await;
    expect_problem(res, StatusCode::CONFLICT).await;
    assert_eq!(app.available(&a).await, 0);
}

#[tokio::test]
async fn the_ttl_sets_the_expiry() {
    let app = App::start().await;
    let mut body = reserve_body("order-9", &[(&product(1), 1)]);
    body["ttl_secs"] = json!(60);
    // Checked as the text on the wire: RFC 3339 in UTC, whole seconds without a fraction.
    let held: serde_json::Value =
        expect_json(app.post_reserve(body).await, StatusCode::CREATED).await;
    assert_eq!(held["created_at"], "2025-06-15T15:06:40Z");
    assert_eq!(held["expires_at"], "2025-06-15T15:07:40Z");
}

#[tokio::test]
async fn unknown_reservations_are_not_found() {
    let app = App::start().await;
    let long = "r".repeat(101);
    for id in ["never-made", long.as_str(), "a%20b", "%2F"] {
        for action in ["commit", "release"] {
            let problem = expect_problem(app.act(id, action).await, StatusCode::NOT_FOUND).await;
            assert!(problem.kind.ends_with(":not-found"), "{id} {action}");
        }
        let res = send(app.request(Method::GET, &format!("/reservations/{id}"))).await;
        expect_problem(res, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn invalid_reservations_are_422_and_reserve_nothing() {
    let app = App::start().await;
    let app_small = App::with_config(json!({ "max_lines": 2, "max_quantity_per_line": 5 })).await;
    let p = product(1);
    let long_id = "r".repeat(101);
    let cases = [
        (json!({ "reservation_id": "r", "lines": [] }), "lines"),
        (reserve_body("", &[(&p, 1)]), "reservation_id"),
        (reserve_body(&long_id, &[(&p, 1)]), "reservation_id"),
        (reserve_body("a b", &[(&p, 1)]), "reservation_id"),
        (reserve_body("r", &[(&p, 0)]), "lines[0].quantity"),
        (reserve_body("r", &[(&p, -3)]), "lines[0].quantity"),
        (reserve_body("r", &[(&p, 6)]), "lines[0].quantity"),
        (
            reserve_body("r", &[(&p, 1), (&p, 1)]),
            "lines[1].product_id",
        ),
        (reserve_body("r", &[("bad/id", 1)]), "lines[0].product_id"),
        (
            reserve_body("r", &[(&product(1), 1), (&product(2), 1), (&product(3), 1)]),
            "lines",
        ),
        (
            json!({ "reservation_id": "r", "lines": [{ "product_id": p, "quantity": 1 }], "ttl_secs": 0 }),
            "ttl_secs",
        ),
    ];
    for (body, field) in cases {
        let res = app_small.post_reserve(body.clone()).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem.errors[0].field, field, "{body}");
    }
    assert_eq!(app_small.available(&p).await, INITIAL);

    // Wrong shapes are 422 from the extractor; unparseable JSON is 400; too big is 413.
    for body in [
        json!({ "reservation_id": "r" }),
        json!({ "reservation_id": 5, "lines": [] }),
        json!({ "reservation_id": "r", "lines": [{ "product_id": p, "quantity": 1.5 }] }),
        json!({ "reservation_id": "r", "lines": [{ "product_id": p, "quantity": 1 }], "ttl_secs": -1 }),
        json!([]),
    ] {
        let res = app.post_reserve(body.clone()).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let malformed = send(
        app.request(Method::POST, "/reservations")
            .header("content-type", "application/json")
            .body(r#"{"reservation_id": "r""#),
    )
    .await;
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;
    let lines: Vec<_> = (0..3000)
        .map(|n| json!({ "product_id": product(n), "quantity": 1 }))
        .collect();
    let huge = json!({ "reservation_id": "r", "lines": lines });
    let too_large = app.post_reserve(huge).await;
    expect_problem(too_large, StatusCode::PAYLOAD_TOO_LARGE).await;
    let no_type = send(
        app.request(Method::POST, "/reservations")
            .body(reserve_body("r", &[(&p, 1)]).to_string()),
    )
    .await;
    expect_problem(no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(app.summary().await.held, 0);
}
