//! The cart's HTTP API, exercised end to end: a real catalog and a real cart on fresh SQLite
//! files, spoken to over HTTP like the gateway does, and fed events through the bus.

mod claims;
mod client;
mod events;
mod harness;

use axum::http::{Method, StatusCode};
use flotilla_cart::contract::Cart;
use flotilla_chassis::{Currency, Money};
use harness::{App, expect_json, expect_problem, product_id};
use serde_json::json;

#[tokio::test]
async fn a_new_cart_is_empty_and_costs_nothing() {
    let app = App::start().await;
    let cart = app.cart("alice").await;
    assert_eq!(cart.user_id, "alice");
    assert!(cart.items.is_empty());
    assert_eq!(cart.total, Money::zero(Currency::EUR));
    assert_eq!(cart.item_count, 0);
}

#[tokio::test]
async fn lines_are_added_changed_removed_and_cleared() {
    let app = App::start().await;
    let (first, second, third) = (product_id(7), product_id(2), product_id(5));

    let cart = app.set("alice", &first, 2).await;
    assert_eq!(cart.items.len(), 1);
    assert_eq!(cart.items[0].product_id.to_string(), first);
    assert_eq!(cart.items[0].quantity, 2);
    assert!(cart.items[0].available);

    // Lines keep the order they were added in, whatever their ids.
    app.clock.advance(1_000);
    app.set("alice", &second, 1).await;
    app.clock.advance(1_000);
    app.set("alice", &third, 4).await;
    let cart = app.set("alice", &first, 5).await;
    let ids: Vec<String> = cart
        .items
        .iter()
        .map(|l| l.product_id.to_string())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str(), third.as_str()]);
    assert_eq!(
        cart.items[0].quantity, 5,
        "the quantity is replaced, not added"
    );
    assert_eq!(cart.item_count, 10);

    let cart = app.set("alice", &second, 0).await;
    let ids: Vec<String> = cart
        .items
        .iter()
        .map(|l| l.product_id.to_string())
        .collect();
    assert_eq!(ids, [first.as_str(), third.as_str()], "quantity 0 removes");

    let cart = app.remove("alice", &third).await;
    assert_eq!(cart.items.len(), 1);
    let again = app.remove("alice", &third).await;
    assert_eq!(again, cart, "removing an absent line is a no-op");
    let odd = app.remove("alice", &"x".repeat(100)).await;
    assert_eq!(odd, cart, "removing an impossible id is a no-op");

    let res = app
        .as_user(Method::DELETE, "/", "alice")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(app.cart("alice").await.items.is_empty());
}

#[tokio::test]
async fn the_total_is_unit_price_times_quantity_from_the_catalog() {
    let app = App::start().await;
    let wanted = [(product_id(1), 3), (product_id(12), 1), (product_id(30), 7)];
    for (id, quantity) in &wanted {
        app.set("alice", id, *quantity).await;
    }
    let cart = app.cart("alice").await;
    let mut expected = Money::zero(Currency::EUR);
    for ((id, quantity), line) in wanted.iter().zip(&cart.items) {
        let product = app.product(id).await;
        let line_total = product
            .price
            .checked_mul(i64::from(*quantity))
            .expect("fits");
        assert_eq!(line.product_id.to_string(), *id);
        assert_eq!(line.name, product.name);
        assert_eq!(line.image_url, product.image_url);
        assert_eq!(line.unit_price, product.price);
        assert_eq!(line.line_total, line_total);
        expected = expected.checked_add(line_total).expect("one currency");
    }
    assert_eq!(cart.total, expected);
    assert_eq!(cart.item_count, 11);
}

#[tokio::test]
async fn unknown_and_impossible_products_are_not_found() {
    let app = App::start().await;
    let long = "p".repeat(65);
    for id in [
        "p9999999",
        long.as_str(),
        "bad.id",
        "a%20b",
        "%C3%A9",
        "p0000001%2F",
    ] {
        let res = app.put("alice", id, json!({ "quantity": 1 })).await;
        let problem = expect_problem(res, StatusCode::NOT_FOUND).await;
        assert_eq!(problem.detail.as_deref(), Some("unknown product"), "{id}");
    }
    // However long, an id that is not the catalog's shape is just unknown.
    let res = app
        .put("alice", &"p".repeat(64), json!({ "quantity": 1 }))
        .await;
    expect_problem(res, StatusCode::NOT_FOUND).await;
    assert!(app.cart("alice").await.items.is_empty());
}

#[tokio::test]
async fn bad_quantities_and_bodies_are_client_errors() {
    let app = App::start().await;
    let id = product_id(3);
    for body in [
        json!({ "quantity": 100 }),
        json!({ "quantity": -1 }),
        json!({ "quantity": "2" }),
        json!({ "quantity": 1.5 }),
        json!({ "quantity": 4_294_967_296_u64 }),
        json!({}),
        json!(null),
    ] {
        let res = app.put("alice", &id, body.clone()).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(problem.kind.ends_with(":validation"), "{body}: {problem:?}");
    }
    let res = app.put("alice", &id, json!({ "quantity": 100 })).await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem.errors[0].field, "quantity");

    let path = format!("/items/{id}");
    let malformed = app
        .as_user(Method::PUT, &path, "alice")
        .header("content-type", "application/json")
        .body(r#"{"quantity": 1"#)
        .send()
        .await
        .expect("PUT");
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;

    let huge = format!(
        r#"{{"quantity": 1, "padding": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let too_large = app
        .as_user(Method::PUT, &path, "alice")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("PUT");
    // Only the status: with a Content-Length over the limit, the chassis's body-limit layer
    // answers before the route, with tower-http's text/plain body (reported to the chassis).
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let no_type = app
        .as_user(Method::PUT, &path, "alice")
        .body(r#"{"quantity": 1}"#)
        .send()
        .await
        .expect("PUT");
    expect_problem(no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    assert!(app.cart("alice").await.items.is_empty(), "nothing stored");
}

#[tokio::test]
async fn every_route_needs_a_caller() {
    let app = App::start().await;
    app.set("alice", &product_id(1), 2).await;
    let item = format!("/items/{}", product_id(1));
    for (method, path) in [
        (Method::GET, "/"),
        (Method::DELETE, "/"),
        (Method::PUT, item.as_str()),
        (Method::DELETE, item.as_str()),
    ] {
        // Credentialed, but acting for nobody.
        let res = app
            .fleet
            .request(method.clone(), flotilla_cart::NAME, path)
            .json(&json!({ "quantity": 1 }))
            .send()
            .await
            .expect("request");
        expect_problem(res, StatusCode::UNAUTHORIZED).await;
    }
    assert_eq!(app.cart("alice").await.items.len(), 1);
}

#[tokio::test]
async fn identity_headers_without_a_service_credential_are_ignored() {
    let app = App::start().await;
    app.set("alice", &product_id(1), 2).await;
    let url = format!("{}/", app.fleet.url(flotilla_cart::NAME));
    let res = reqwest::Client::new()
        .get(&url)
        .header("x-flotilla-user-id", "alice")
        .header("x-flotilla-user-role", "customer")
        .send()
        .await
        .expect("GET");
    let problem = expect_problem(res, StatusCode::UNAUTHORIZED).await;
    assert!(!format!("{problem:?}").contains(&product_id(1)));
    let res = reqwest::Client::new()
        .delete(&url)
        .header("x-flotilla-user-id", "alice")
        .header("x-flotilla-user-role", "customer")
        .send()
        .await
        .expect("DELETE");
    expect_problem(res, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.cart("alice").await.items.len(), 1, "untouched");
}

#[tokio::test]
async fn one_users_cart_is_invisible_to_another() {
    let app = App::start().await;
    let a = app.set("alice", &product_id(4), 2).await;
    assert!(app.cart("bob").await.items.is_empty());

    app.set("bob", &product_id(4), 9).await;
    app.remove("bob", &product_id(4)).await;
    let res = app
        .as_user(Method::DELETE, "/", "bob")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_eq!(app.cart("alice").await, a);
}

#[tokio::test]
async fn a_full_cart_refuses_new_lines_but_not_changes() {
    let app = App::with_cart_config(json!({ "max_lines": 3 })).await;
    for n in 1..=3 {
        app.set("alice", &product_id(n), 1).await;
    }
    let res = app
        .put("alice", &product_id(4), json!({ "quantity": 1 }))
        .await;
    let problem = expect_problem(res, StatusCode::CONFLICT).await;
    assert!(problem.kind.ends_with(":cart-full"), "{problem:?}");
    assert_eq!(app.cart("alice").await.items.len(), 3, "nothing added");

    let cart = app.set("alice", &product_id(2), 6).await;
    assert_eq!(cart.item_count, 8, "existing lines can still change");
    app.set("alice", &product_id(1), 0).await;
    let cart = app.set("alice", &product_id(4), 1).await;
    assert_eq!(cart.items.len(), 3, "room again after a removal");
    // The limit is per cart.
    app.set("bob", &product_id(5), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_one_line_leave_one_line() {
    let app = std::sync::Arc::new(App::start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for quantity in 1..=10_u32 {
        let app = app.clone();
        tasks.spawn(async move {
            let res = app
                .put("alice", &product_id(9), json!({ "quantity": quantity }))
                .await;
            expect_json::<Cart>(res, StatusCode::OK).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        let cart = done.expect("task");
        assert_eq!(cart.items.len(), 1);
    }
    let cart = app.cart("alice").await;
    assert_eq!(cart.items.len(), 1);
    assert!((1..=10).contains(&cart.items[0].quantity));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_never_overfill_a_cart() {
    let app = std::sync::Arc::new(App::with_cart_config(json!({ "max_lines": 3 })).await);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 1..=10 {
        let app = app.clone();
        tasks.spawn(async move {
            let res = app
                .put("alice", &product_id(n), json!({ "quantity": 1 }))
                .await;
            res.status()
        });
    }
    let mut added = 0;
    while let Some(done) = tasks.join_next().await {
        match done.expect("task") {
            StatusCode::OK => added += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(added, 3);
    assert_eq!(app.cart("alice").await.items.len(), 3);
}

#[tokio::test]
async fn a_missing_catalog_is_a_503_and_changes_nothing() {
    let app = App::without_catalog().await;
    // An empty cart needs no prices.
    assert!(app.cart("alice").await.items.is_empty());
    let res = app
        .put("alice", &product_id(1), json!({ "quantity": 1 }))
        .await;
    expect_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(app.cart("alice").await.items.is_empty(), "nothing stored");
}

#[tokio::test]
async fn the_contract_is_published() {
    let app = App::start().await;
    // The public document is open to anyone; the internal one needs a service credential,
    // which the fleet's own requests carry.
    let public: serde_json::Value = reqwest::get(format!(
        "{}/openapi.json",
        app.fleet.url(flotilla_cart::NAME)
    ))
    .await
    .expect("GET")
    .json()
    .await
    .expect("json");
    let internal: serde_json::Value = app
        .fleet
        .get(flotilla_cart::NAME, "/openapi.internal.json")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    for (path, method) in [
        ("/", "get"),
        ("/", "delete"),
        ("/items/{product_id}", "put"),
        ("/items/{product_id}", "delete"),
    ] {
        assert!(
            public["paths"][path][method].is_object(),
            "{method} {path} in {}",
            public["paths"]
        );
    }
    // The claims are orders' business: described in the internal document only, so the
    // gateway (which serves what the public one lists) never exposes them.
    for (path, method) in [
        ("/claims/{order_id}", "put"),
        ("/claims/{order_id}", "delete"),
        ("/claims/{order_id}/taken", "post"),
    ] {
        assert!(
            internal["paths"][path][method].is_object(),
            "{method} {path} in {}",
            internal["paths"]
        );
        assert!(public["paths"][path][method].is_null(), "{method} {path}");
    }
    for schema in ["Cart", "CartLine", "SetQuantity"] {
        assert!(
            public["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    for schema in ["CheckoutClaim", "ClaimedCart"] {
        assert!(
            internal["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    // Typed inside, product ids are the same text on the wire.
    let line = &public["components"]["schemas"]["CartLine"]["properties"]["product_id"];
    assert_eq!(line["type"], "string", "{line}");
    let taken = &internal["components"]["schemas"]["TakenLine"]["properties"]["product_id"];
    assert_eq!(taken["type"], "string", "{taken}");
}

#[tokio::test]
async fn a_stored_line_whose_product_id_is_not_one_is_a_corrupt_row() {
    let app = App::start().await;
    app.set("alice", &product_id(1), 2).await;
    app.set("bob", &product_id(1), 1).await;
    // Only parsed ids are ever written: this one was edited by hand.
    let edited = sqlx::query("UPDATE cart_items SET product_id = $1 WHERE user_id = $2")
        .bind("../not-a-product")
        .bind("alice")
        .execute(app.fleet.db(flotilla_cart::NAME).pool())
        .await
        .expect("edit the row");
    assert_eq!(edited.rows_affected(), 1);

    let res = app
        .as_user(Method::GET, "/", "alice")
        .send()
        .await
        .expect("GET reaches the cart");
    let problem = expect_problem(res, StatusCode::INTERNAL_SERVER_ERROR).await;
    let shown = format!("{problem:?}");
    assert!(
        !shown.contains("not-a-product"),
        "stored data stays in the logs: {shown}"
    );
    // The row fails its own cart only; the service goes on.
    assert_eq!(app.cart("bob").await.items.len(), 1);
}
