//! The operators' list: admins only, newest first, paged, filtered by status.

use axum::http::{Method, StatusCode};
use flotilla_chassis::Role;
use flotilla_chassis::pagination::Page;
use flotilla_shipping::contract::{Shipment, ShipmentStatus};

use crate::harness::{App, expect_json, expect_problem, shipment_body};

async fn list(app: &App, query: &str) -> reqwest::Response {
    app.as_user(
        Method::GET,
        &format!("/admin/shipments{query}"),
        "root",
        Role::Admin,
    )
    .send()
    .await
    .expect("GET reaches shipping")
}

#[tokio::test]
async fn only_admins_may_list_shipments() {
    let app = App::start().await;
    let anonymous = app.get("/admin/shipments").await;
    expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let customer = app
        .as_user(Method::GET, "/admin/shipments", "alice", Role::Customer)
        .send()
        .await
        .expect("GET reaches shipping");
    expect_problem(customer, StatusCode::FORBIDDEN).await;
    let page: Page<Shipment> = expect_json(list(&app, "").await, StatusCode::OK).await;
    assert!(page.items.is_empty());
    assert_eq!(page.total, 0);
}

#[tokio::test]
async fn the_list_is_newest_first_paged_and_filtered() {
    let app = App::start().await;
    let mut created = Vec::new();
    for n in 0..5 {
        app.clock.advance(1_000);
        created.push(
            app.create_expect(&shipment_body(&format!("order-{n}")), StatusCode::CREATED)
                .await,
        );
    }
    app.cancel(&created[1].id).await;
    app.cancel(&created[3].id).await;

    let page: Page<Shipment> = expect_json(list(&app, "?page_size=2").await, StatusCode::OK).await;
    assert_eq!(page.total, 5);
    assert_eq!((page.page, page.page_size), (1, 2));
    let ids: Vec<&str> = page.items.iter().map(|s| s.order_id.as_str()).collect();
    assert_eq!(ids, ["order-4", "order-3"]);
    assert_eq!(page.items[1].lines, created[3].lines, "lines come along");

    let last: Page<Shipment> =
        expect_json(list(&app, "?page=3&page_size=2").await, StatusCode::OK).await;
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.items[0].order_id, "order-0");

    let cancelled: Page<Shipment> =
        expect_json(list(&app, "?status=cancelled").await, StatusCode::OK).await;
    assert_eq!(cancelled.total, 2);
    assert!(
        cancelled
            .items
            .iter()
            .all(|s| s.status == ShipmentStatus::Cancelled)
    );
    let live: Page<Shipment> =
        expect_json(list(&app, "?status=created").await, StatusCode::OK).await;
    let ids: Vec<&str> = live.items.iter().map(|s| s.order_id.as_str()).collect();
    assert_eq!(ids, ["order-4", "order-2", "order-0"]);

    for query in ["?status=lost", "?page=0", "?page_size=101", "?page=x"] {
        expect_problem(list(&app, query).await, StatusCode::BAD_REQUEST).await;
    }
}
