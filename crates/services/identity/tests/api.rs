//! The identity service over real HTTP with a real SQLite file, as the gateway would call it.

use flotilla_chassis::Role;
use flotilla_chassis::clock::ManualClock;
use flotilla_chassis::testkit::{FleetOptions, TestFleet};
use flotilla_identity::IdentityConfig;
use flotilla_identity::contract::{TokenResponse, User};
use flotilla_identity::token::{AccessClaims, TokenError, TokenVerifier};
use jsonwebtoken::jwk::JwkSet;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;

const PASSWORD: &str = "correct horse battery";
const PROBLEM_JSON: &str = "application/problem+json";

async fn start() -> TestFleet {
    TestFleet::start(&[flotilla_identity::SPEC]).await
}

async fn post(fleet: &TestFleet, path: &str, body: &Value) -> reqwest::Response {
    fleet
        .request(Method::POST, "identity", path)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn signup(fleet: &TestFleet, email: &str) -> User {
    let res = post(
        fleet,
        "/signup",
        &json!({"email": email, "password": PASSWORD, "name": "Ada"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.expect("user")
}

async fn login(fleet: &TestFleet, email: &str, password: &str) -> reqwest::Response {
    post(
        fleet,
        "/login",
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn token_for(fleet: &TestFleet, email: &str, password: &str) -> TokenResponse {
    let res = login(fleet, email, password).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("token")
}

async fn jwks(fleet: &TestFleet) -> JwkSet {
    let res = fleet
        .get("identity", "/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks");
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("jwk set")
}

/// The claims of `token`, verified against the service's published keys at the current time.
async fn verified(fleet: &TestFleet, token: &TokenResponse) -> AccessClaims {
    let now = flotilla_chassis::clock::unix_millis(std::time::SystemTime::now()) / 1000;
    TokenVerifier::new(&IdentityConfig::default())
        .verify(&token.access_token, &jwks(fleet).await, now)
        .expect("valid token")
}

fn header_of(res: &reqwest::Response, name: header::HeaderName) -> Option<&str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Asserts a problem+json answer with `status` and returns its body.
async fn problem(res: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(header_of(&res, header::CONTENT_TYPE), Some(PROBLEM_JSON));
    res.json().await.expect("problem body")
}

#[tokio::test]
async fn signup_creates_a_customer_without_exposing_the_hash() {
    let fleet = start().await;
    let res = post(
        &fleet,
        "/signup",
        &json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "name": " Ada Lovelace "}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let text = res.text().await.expect("body");
    for secret in ["password", "hash", "argon2", PASSWORD] {
        assert!(!text.contains(secret), "body leaks {secret}: {text}");
    }
    let user: User = serde_json::from_str(&text).expect("user");
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.name, "Ada Lovelace");
    assert_eq!(user.role, Role::Customer);
    // On the wire the time is RFC 3339 text in UTC, as it always was.
    let wire: serde_json::Value = serde_json::from_str(&text).expect("json");
    let created_at = wire["created_at"].as_str().expect("created_at is text");
    assert!(
        created_at.contains('T') && created_at.ends_with('Z'),
        "{created_at}"
    );
    assert!(user.created_at.offset().is_utc());
}

#[tokio::test]
async fn a_role_in_the_signup_body_is_ignored() {
    let fleet = start().await;
    let body = json!({"email": "mallory@example.com", "password": PASSWORD, "name": "M",
                      "role": "admin", "id": "chosen-id", "created_at": "1970-01-01T00:00:00Z"});
    let res = post(&fleet, "/signup", &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: User = res.json().await.expect("user");
    assert_eq!(user.role, Role::Customer);
    assert_ne!(user.id, "chosen-id");
    let token = token_for(&fleet, "mallory@example.com", PASSWORD).await;
    assert_eq!(verified(&fleet, &token).await.role, Role::Customer);
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_whatever_its_case() {
    let fleet = start().await;
    signup(&fleet, "ada@example.com").await;
    for email in ["ada@example.com", "ADA@Example.com", " ada@example.com "] {
        let body = json!({"email": email, "password": PASSWORD, "name": "Ada"});
        let res = post(&fleet, "/signup", &body).await;
        problem(res, StatusCode::CONFLICT).await;
    }
}

#[tokio::test]
async fn invalid_fields_are_422_with_field_errors() {
    let fleet = start().await;
    let long_email = format!("{}@example.com", "a".repeat(250));
    let cases = [
        (
            json!({"email": "nope", "password": PASSWORD, "name": "A"}),
            vec!["email"],
        ),
        (
            json!({"email": "a b@example.com", "password": PASSWORD, "name": "A"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@@example.com", "password": PASSWORD, "name": "A"}),
            vec!["email"],
        ),
        (
            json!({"email": "@example.com", "password": PASSWORD, "name": "A"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@localhost", "password": PASSWORD, "name": "A"}),
            vec!["email"],
        ),
        (
            json!({"email": long_email, "password": PASSWORD, "name": "A"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@example.com", "password": "1234567", "name": "A"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(129), "name": "A"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "   "}),
            vec!["name"],
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "n".repeat(101)}),
            vec!["name"],
        ),
        (
            json!({"email": "x", "password": "y", "name": ""}),
            vec!["email", "password", "name"],
        ),
    ];
    for (body, fields) in cases {
        let res = post(&fleet, "/signup", &body).await;
        let problem = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let got: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(got, fields, "{body}");
    }
}

#[tokio::test]
async fn look_alike_identities_are_refused_and_names_normalised() {
    let fleet = start().await;
    for (email, name, field) in [
        ("z\u{200b}w@t.io", "Zed", "email"),
        ("\u{430}dmin@t.io", "Admin", "email"),
        ("ada@p\u{430}ypal.com", "Ada", "email"),
        ("ada@t.io", "evil\u{202e}gnp.exe", "name"),
        ("ada@t.io", "Ad\u{ad}a", "name"),
        ("ada@t.io", "\u{feff}Ada", "name"),
    ] {
        let body = json!({"email": email, "password": PASSWORD, "name": name});
        let problem = problem(
            post(&fleet, "/signup", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    // One spelling per name (NFC), and a Unicode domain in its IDNA form.
    let body =
        json!({"email": "rene@B\u{fc}cher.example", "password": PASSWORD, "name": "Rene\u{301}"});
    let res = post(&fleet, "/signup", &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Value = res.json().await.expect("user");
    assert_eq!(user["name"], "Ren\u{e9}");
    assert_eq!(user["email"], "rene@xn--bcher-kva.example");
}

#[tokio::test]
async fn bad_bodies_are_problems_not_errors() {
    let fleet = start().await;
    for path in ["/signup", "/login"] {
        let malformed = fleet
            .request(Method::POST, "identity", path)
            .header(header::CONTENT_TYPE, "application/json")
            .body("{\"email\": ")
            .send()
            .await
            .expect("request");
        problem(malformed, StatusCode::BAD_REQUEST).await;

        let wrong_shape = post(&fleet, path, &json!({"email": 42})).await;
        problem(wrong_shape, StatusCode::UNPROCESSABLE_ENTITY).await;

        let not_json = fleet
            .request(Method::POST, "identity", path)
            .body("email=a@example.com")
            .send()
            .await
            .expect("request");
        problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

        let huge =
            json!({"email": "a@example.com", "password": "x".repeat(70 * 1024), "name": "A"});
        // Rejected by the chassis' body limit before the handler runs. Its body is still
        // tower-http's text/plain (a chassis fix is pending), so only the status is asserted.
        let res = post(&fleet, path, &huge).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}

#[tokio::test]
async fn login_issues_a_token_that_verifies_against_the_published_keys() {
    let fleet = start().await;
    let user = signup(&fleet, "ada@example.com").await;
    let res = login(&fleet, "ADA@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, header::CACHE_CONTROL), Some("no-store"));
    let token: TokenResponse = res.json().await.expect("token");
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.expires_in, 900);

    let res = fleet
        .get("identity", "/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks");
    let cache = header_of(&res, header::CACHE_CONTROL);
    assert_eq!(cache, Some("public, max-age=300"));
    let raw: Value = res.json().await.expect("json");
    let key = &raw["keys"][0];
    for (field, value) in [
        ("kty", "OKP"),
        ("crv", "Ed25519"),
        ("alg", "EdDSA"),
        ("use", "sig"),
    ] {
        assert_eq!(key[field], json!(value), "{field}");
    }
    // A public key only: no private part (`d`) is ever published.
    assert!(key["kid"].is_string() && key.get("d").is_none());

    let claims = verified(&fleet, &token).await;
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.role, Role::Customer);
    assert_eq!(claims.exp - claims.iat, 900);
}

#[tokio::test]
async fn token_times_come_from_the_service_clock() {
    let start_millis = 1_700_000_000_000;
    let clock = Arc::new(ManualClock::new(start_millis));
    let options = FleetOptions {
        clock: Some(clock.clone()),
        ..FleetOptions::default()
    };
    let fleet = TestFleet::start_with(&[flotilla_identity::SPEC], options).await;
    signup(&fleet, "ada@example.com").await;
    clock.advance(60_000);
    let token = token_for(&fleet, "ada@example.com", PASSWORD).await;
    let keys = jwks(&fleet).await;
    let verifier = TokenVerifier::new(&IdentityConfig::default());
    let issued = start_millis / 1000 + 60;
    let claims = verifier
        .verify(&token.access_token, &keys, issued)
        .expect("valid at issue time");
    assert_eq!(claims.iat, issued);
    assert_eq!(
        verifier.verify(&token.access_token, &keys, issued + 900 + 30),
        Err(TokenError::Expired)
    );
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_identical_answers() {
    let fleet = start().await;
    signup(&fleet, "ada@example.com").await;
    let mut answers = Vec::new();
    for (email, password) in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
        ("ada@example.com", ""),
    ] {
        let res = fleet
            .request(Method::POST, "identity", "/login")
            .header("x-request-id", "same-request-id")
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("request");
        let status = res.status();
        let content_type = res.headers().get(header::CONTENT_TYPE).cloned();
        let body = res.bytes().await.expect("body");
        answers.push((status, content_type, body));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

#[tokio::test]
async fn me_returns_the_callers_account() {
    let fleet = start().await;
    let user = signup(&fleet, "ada@example.com").await;
    let res = fleet
        .as_user(Method::GET, "identity", "/me", &user.id, Role::Customer)
        .send()
        .await
        .expect("me");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<User>().await.expect("user"), user);

    let anonymous = fleet.get("identity", "/me").send().await.expect("me");
    problem(anonymous, StatusCode::UNAUTHORIZED).await;

    let gone = fleet
        .as_user(
            Method::GET,
            "identity",
            "/me",
            "no-such-user",
            Role::Customer,
        )
        .send()
        .await
        .expect("me");
    problem(gone, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn the_configured_admin_is_created_and_logs_in_as_admin() {
    let config = figment::Figment::from(figment::providers::Serialized::defaults(json!({
        "identity": {"admin_email": "Root@Example.com", "admin_password": "admin-password-1"}
    })));
    let options = FleetOptions {
        config: Some(config),
        ..FleetOptions::default()
    };
    let fleet = TestFleet::start_with(&[flotilla_identity::SPEC], options).await;
    let token = token_for(&fleet, "root@example.com", "admin-password-1").await;
    let claims = verified(&fleet, &token).await;
    assert_eq!(claims.role, Role::Admin);
    let me: User = fleet
        .as_user(Method::GET, "identity", "/me", &claims.sub, Role::Admin)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("user");
    assert_eq!(
        (me.email.as_str(), me.role),
        ("root@example.com", Role::Admin)
    );

    // Without the configuration there is no admin.
    let plain = start().await;
    let res = login(&plain, "root@example.com", "admin-password-1").await;
    problem(res, StatusCode::UNAUTHORIZED).await;
}

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
