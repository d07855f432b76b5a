//! Stock levels: seeded on first start, readable by anyone, settable only by admins, and never
//! set to something that cannot be.

use axum::http::{Method, StatusCode};
use flotilla_chassis::{Caller, Role};
use flotilla_inventory::contract::StockLevel;
use serde_json::json;

use crate::harness::{App, INITIAL, SEEDED, expect_json, expect_problem, product, send};

#[tokio::test]
async fn the_catalogs_products_are_seeded_with_the_initial_stock() {
    let app = App::start().await;
    for n in [1, 7, SEEDED] {
        assert_eq!(app.available(&product(n)).await, INITIAL);
    }
    let beyond = app.get_stock(&product(SEEDED + 1)).await;
    expect_problem(beyond, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn stock_is_public_to_read() {
    let app = App::start().await;
    // Credentialed but acting for nobody: what the gateway forwards for an anonymous visitor.
    let res = send(app.request(Method::GET, &format!("/stock/{}", product(3)))).await;
    let level: StockLevel = expect_json(res, StatusCode::OK).await;
    assert_eq!(level.available, INITIAL);
    // A customer may read it too.
    let res = send(app.as_user(
        Method::GET,
        &format!("/stock/{}", product(3)),
        Role::Customer,
    ))
    .await;
    expect_json::<StockLevel>(res, StatusCode::OK).await;
}

#[tokio::test]
async fn unknown_and_impossible_products_are_not_found() {
    let app = App::start().await;
    let long = "p".repeat(65);
    for id in ["p9999999", long.as_str(), "bad.id", "a%20b", "%C3%A9"] {
        let problem = expect_problem(app.get_stock(id).await, StatusCode::NOT_FOUND).await;
        assert!(problem.kind.ends_with(":not-found"), "{id}: {problem:?}");
    }
}

#[tokio::test]
async fn admins_set_stock_and_create_rows() {
    let app = App::start().await;
    let level = app.set_stock(&product(2), 7).await;
    assert_eq!(
        level,
        StockLevel {
            product_id: product(2).parse().expect("a product id"),
            available: 7
        }
    );
    assert_eq!(app.available(&product(2)).await, 7);
    assert_eq!(app.set_stock(&product(2), 0).await.available, 0);
    assert_eq!(app.available(&product(2)).await, 0);

    // A product the seed did not cover gets a row.
    let fresh = product(9_999_999);
    expect_problem(app.get_stock(&fresh).await, StatusCode::NOT_FOUND).await;
    app.set_stock(&fresh, 1_000_000_000).await;
    assert_eq!(app.available(&fresh).await, 1_000_000_000);
}

#[tokio::test]
async fn only_admins_set_stock() {
    let app = App::start().await;
    let path = format!("/stock/{}", product(1));
    let body = json!({ "available": 5 });
    let anonymous = send(app.request(Method::PUT, &path).json(&body)).await;
    expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let customer = send(app.as_user(Method::PUT, &path, Role::Customer).json(&body)).await;
    expect_problem(customer, StatusCode::FORBIDDEN).await;
    // Identity headers without a service credential are not believed.
    let forged = reqwest::Client::new()
        .put(format!("{}{path}", app.fleet.url(flotilla_inventory::NAME)))
        .header("x-flotilla-user-id", "mallory")
        .header("x-flotilla-user-role", "admin")
        .json(&body)
        .send()
        .await
        .expect("PUT");
    expect_problem(forged, StatusCode::UNAUTHORIZED).await;
    // A credential is bound to its callee and carries the user: one minted for cart (even
    // acting for an admin) opens nothing here, and one without a user gives bare admin headers
    // no weight (issue 9, RELIABILITY.md S8).
    let admin = Caller {
        user_id: "mallory".into(),
        role: Role::Admin,
    };
    let url = format!("{}{path}", app.fleet.url(flotilla_inventory::NAME));
    let for_cart = app.fleet.credential("cart", Some(&admin));
    let for_inventory_anonymous = app.fleet.credential(flotilla_inventory::NAME, None);
    for (token, status) in [
        (&for_cart, StatusCode::UNAUTHORIZED),
        (&for_inventory_anonymous, StatusCode::UNAUTHORIZED),
    ] {
        let replayed = reqwest::Client::new()
            .put(&url)
            .header("x-flotilla-service-token", token)
            .header("x-flotilla-user-id", "mallory")
            .header("x-flotilla-user-role", "admin")
            .json(&body)
            .send()
            .await
            .expect("PUT");
        expect_problem(replayed, status).await;
    }
    assert_eq!(app.available(&product(1)).await, INITIAL, "untouched");
}

#[tokio::test]
async fn bad_stock_levels_and_bodies_are_client_errors() {
    let app = App::start().await;
    let id = product(4);
    for body in [
        json!({ "available": -1 }),
        json!({ "available": 1_000_000_001_i64 }),
        json!({ "available": "5" }),
        json!({ "available": 1.5 }),
        json!({}),
        json!(null),
    ] {
        let problem = expect_problem(
            app.put_stock(&id, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(problem.kind.ends_with(":validation"), "{body}: {problem:?}");
    }
    let problem = expect_problem(
        app.put_stock(&id, json!({ "available": -1 })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem.errors[0].field, "available");

    // Stock is kept only for ids the catalog could hold (`p` and seven digits).
    for odd in [
        "x".repeat(65),
        "new-product_1".to_owned(),
        "p000001".to_owned(),
    ] {
        let problem = expect_problem(
            app.put_stock(&odd, json!({ "available": 1 })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem.errors[0].field, "product_id", "{odd}");
    }

    let path = format!("/stock/{id}");
    let malformed = send(
        app.as_user(Method::PUT, &path, Role::Admin)
            .header("content-type", "application/json")
            .body(r#"{"available": 1"#),
    )
    .await;
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;

    let huge = format!(
        r#"{{"available": 1, "padding": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let too_large = send(
        app.as_user(Method::PUT, &path, Role::Admin)
            .header("content-type", "application/json")
            .body(huge),
    )
    .await;
    expect_problem(too_large, StatusCode::PAYLOAD_TOO_LARGE).await;

    assert_eq!(app.available(&id).await, INITIAL, "nothing stored");
}

#[tokio::test]
async fn setting_stock_leaves_reservations_alone() {
    let app = App::start().await;
    let id = product(5);
    app.reserve("r-held", &[(&id, 30)]).await;
    assert_eq!(app.available(&id).await, INITIAL - 30);
    app.set_stock(&id, 10).await;
    assert_eq!(app.reservation("r-held").await.lines[0].quantity, 30);
    // Releasing puts the held units back on top of the new level.
    app.release("r-held").await;
    assert_eq!(app.available(&id).await, 40);
}
