//! What every identity test starts from: the service alone on a fresh database, and terse ways
//! to sign up, log in and check the tokens it issues against its published keys.

use flotilla_identity::IdentityConfig;
use flotilla_identity::contract::{TokenResponse, User};
use flotilla_identity::token::{AccessClaims, TokenVerifier};
use flotilla_testkit::TestFleet;
use jsonwebtoken::jwk::JwkSet;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The identity service alone, with its default configuration.
pub async fn start() -> TestFleet {
    TestFleet::start(&[flotilla_identity::SPEC]).await
}

/// `POST path` with a JSON body, as the gateway sends it.
pub async fn post(fleet: &TestFleet, path: &str, body: &Value) -> reqwest::Response {
    fleet
        .client(flotilla_identity::NAME)
        .post(path)
        .json(body)
        .send()
        .await
        .expect("request")
}

pub async fn signup(fleet: &TestFleet, email: &str) -> User {
    let res = post(
        fleet,
        "/signup",
        &json!({"email": email, "password": PASSWORD, "name": "Ada"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.expect("user")
}

pub async fn login(fleet: &TestFleet, email: &str, password: &str) -> reqwest::Response {
    post(
        fleet,
        "/login",
        &json!({"email": email, "password": password}),
    )
    .await
}

pub async fn token_for(fleet: &TestFleet, email: &str, password: &str) -> TokenResponse {
    let res = login(fleet, email, password).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("token")
}

pub async fn jwks(fleet: &TestFleet) -> JwkSet {
    let res = fleet
        .get("identity", "/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks");
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("jwk set")
}

/// The claims of `token`, verified against the service's published keys at the current time.
pub async fn verified(fleet: &TestFleet, token: &TokenResponse) -> AccessClaims {
    let now = flotilla_chassis::clock::unix_millis(std::time::SystemTime::now()) / 1000;
    TokenVerifier::new(&IdentityConfig::default())
        .verify(&token.access_token, &jwks(fleet).await, now)
        .expect("valid token")
}

pub fn header_of(res: &reqwest::Response, name: header::HeaderName) -> Option<&str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Asserts a problem+json answer with `status` and returns its body.
pub async fn problem(res: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(header_of(&res, header::CONTENT_TYPE), Some(PROBLEM_JSON));
    res.json().await.expect("problem body")
}
