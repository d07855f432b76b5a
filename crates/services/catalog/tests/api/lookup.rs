//! `POST /products/lookup`: found, unknown and malformed requests.

use axum::http::Method;
use flotilla_catalog::contract::{LookupResponse, Product};
use flotilla_testkit::TestFleet;
use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::harness::{SEEDED, expect_problem, fleet, ids, ok};

async fn lookup(fleet: &TestFleet, body: serde_json::Value) -> Response {
    fleet
        .request(Method::POST, "catalog", "/products/lookup")
        .json(&body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn looks_up_products_by_id() {
    let fleet = fleet().await;
    let res = lookup(
        &fleet,
        json!({ "ids": ["p0000009", "p0000999", "junk", "p0000002", "p0000009"] }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let found: LookupResponse = res.json().await.expect("json");
    assert_eq!(ids(&found.products), ["p0000009", "p0000002"]);
    let single: Product = ok(&fleet, "/products/p0000002").await;
    assert_eq!(found.products[1], single);

    let empty: LookupResponse = lookup(&fleet, json!({ "ids": [] }))
        .await
        .json()
        .await
        .expect("json");
    assert!(empty.products.is_empty());
    let hundred: Vec<String> = (1..=100).map(|n| format!("p{n:07}")).collect();
    let res = lookup(&fleet, json!({ "ids": hundred })).await;
    let found: LookupResponse = res.json().await.expect("json");
    assert_eq!(found.products.len() as u64, SEEDED);

    let too_many: Vec<String> = (1..=101).map(|n| format!("p{n:07}")).collect();
    let res = lookup(&fleet, json!({ "ids": too_many })).await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    expect_problem(
        lookup(&fleet, json!({ "ids": "p0000001" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect_problem(
        lookup(&fleet, json!([1, 2])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let post = |body: String| {
        fleet
            .request(Method::POST, "catalog", "/products/lookup")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = post(r#"{"ids": ["p0000001""#.to_owned())
        .await
        .expect("request");
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;
    let huge = format!(r#"{{"ids": ["{}"]}}"#, "p".repeat(70 * 1024));
    // Status only: with a declared Content-Length the chassis' body-limit layer answers 413
    // itself, as text/plain, before any problem rewriting (reported to the chassis owner).
    let res = post(huge).await.expect("request");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let untyped = fleet
        .request(Method::POST, "catalog", "/products/lookup")
        .body(r#"{"ids": []}"#)
        .send()
        .await
        .expect("request");
    expect_problem(untyped, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}
