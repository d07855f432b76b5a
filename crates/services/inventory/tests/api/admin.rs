//! The admin views: reservations page by page, the summary, and an expiry pass on demand, all
//! for admins only.

use axum::http::{Method, StatusCode};
use flotilla_chassis::Role;
use flotilla_chassis::pagination::Page;
use flotilla_inventory::contract::{InventorySummary, Reservation, ReservationStatus};

use crate::harness::{App, expect_json, expect_problem, product, send};

async fn list(app: &App, query: &str) -> Page<Reservation> {
    let res = send(app.as_user(
        Method::GET,
        &format!("/admin/reservations{query}"),
        Role::Admin,
    ))
    .await;
    expect_json(res, StatusCode::OK).await
}

#[tokio::test]
async fn reservations_are_listed_newest_first_and_filtered_by_status() {
    let app = App::start().await;
    let a = product(1);
    for n in 0..5 {
        app.reserve(&format!("r{n}"), &[(&a, 1)]).await;
        app.clock.advance(1_000);
    }
    app.commit("r1").await;
    app.release("r3").await;

    let all = list(&app, "").await;
    assert_eq!(all.total, 5);
    let ids: Vec<&str> = all.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(
        all.items[0].lines[0].product_id.to_string(),
        a,
        "lines are included"
    );

    let page = list(&app, "?page=2&page_size=2").await;
    let ids: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((ids, page.total, page.page), (vec!["r2", "r1"], 5, 2));

    let held = list(&app, "?status=held").await;
    assert_eq!(held.total, 3);
    assert!(
        held.items
            .iter()
            .all(|r| r.status == ReservationStatus::Held)
    );
    let committed = list(&app, "?status=committed&page_size=1").await;
    assert_eq!((committed.total, committed.items[0].id.as_str()), (1, "r1"));

    for bad in ["?status=lost", "?page=0", "?page_size=101", "?page_size=x"] {
        let res = send(app.as_user(
            Method::GET,
            &format!("/admin/reservations{bad}"),
            Role::Admin,
        ))
        .await;
        expect_problem(res, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn the_summary_counts_reservations_and_units() {
    let app = App::start().await;
    let (a, b) = (product(2), product(3));
    assert_eq!(
        app.summary().await,
        InventorySummary {
            held: 0,
            committed: 0,
            released: 0,
            units_held: 0,
            units_committed: 0
        }
    );
    app.reserve("s1", &[(&a, 2), (&b, 3)]).await;
    app.reserve("s2", &[(&a, 4)]).await;
    app.reserve("s3", &[(&b, 1)]).await;
    app.commit("s2").await;
    app.release("s3").await;
    assert_eq!(
        app.summary().await,
        InventorySummary {
            held: 1,
            committed: 1,
            released: 1,
            units_held: 5,
            units_committed: 4
        }
    );
}

#[tokio::test]
async fn admin_routes_are_for_admins_only() {
    let app = App::start().await;
    for (method, path) in [
        (Method::GET, "/admin/reservations"),
        (Method::GET, "/admin/summary"),
        (Method::POST, "/admin/expire"),
    ] {
        let anonymous = send(app.request(method.clone(), path)).await;
        expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
        let customer = send(app.as_user(method.clone(), path, Role::Customer)).await;
        expect_problem(customer, StatusCode::FORBIDDEN).await;
    }
}

#[tokio::test]
async fn internal_routes_are_tagged_internal_in_the_contract() {
    let app = App::start().await;
    let doc: serde_json::Value = expect_json(
        send(app.request(Method::GET, "/openapi.json")).await,
        StatusCode::OK,
    )
    .await;
    let internal: serde_json::Value = expect_json(
        send(app.request(Method::GET, "/openapi.internal.json")).await,
        StatusCode::OK,
    )
    .await;
    let tags = |path: &str, method: &str| -> Vec<String> {
        // Internal operations are only in the internal document, public ones only in the other.
        let op = &doc["paths"][path][method];
        let op = if op.is_null() {
            &internal["paths"][path][method]
        } else {
            assert!(internal["paths"][path][method].is_null(), "{method} {path}");
            op
        };
        op["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (path, method) in [
        ("/reservations", "post"),
        ("/reservations/{id}", "get"),
        ("/reservations/{id}/commit", "post"),
        ("/reservations/{id}/release", "post"),
        ("/admin/expire", "post"),
    ] {
        assert!(
            tags(path, method).contains(&"internal".to_owned()),
            "{method} {path}"
        );
    }
    for (path, method) in [
        ("/stock/{product_id}", "get"),
        ("/stock/{product_id}", "put"),
        ("/admin/reservations", "get"),
        ("/admin/summary", "get"),
    ] {
        let tags = tags(path, method);
        assert!(
            tags.contains(&"inventory".to_owned()) && !tags.contains(&"internal".to_owned()),
            "{method} {path}: {tags:?}"
        );
    }
}
