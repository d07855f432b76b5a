//! What the service shows without a credential: its contract, and nothing else.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn the_contract_is_public_and_the_api_is_not() {
    let fleet = start().await;
    let url = fleet.url("identity");
    let res = fleet
        .http
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.expect("json");
    for path in ["/signup", "/login", "/me", "/.well-known/jwks.json"] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from openapi.json"
        );
    }
    // Every schema a route refers to is in the document (schemathesis resolves them).
    for schema in [
        "User",
        "Problem",
        "FieldError",
        "Role",
        "TokenResponse",
        "JwksDocument",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    // Straight to the service, without the gateway's credential: refused.
    let res = fleet
        .http
        .post(format!("{url}/login"))
        .json(&json!({"email": "a@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    problem(res, StatusCode::UNAUTHORIZED).await;
}
