//! Logging in: the tokens issued, their times, the answers that give nothing away, `/me`, and
//! the configured admin.

use flotilla_chassis::Role;
use flotilla_identity::IdentityConfig;
use flotilla_identity::contract::{TokenResponse, User};
use flotilla_identity::token::{TokenError, TokenVerifier};
use flotilla_testkit::TestFleet;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::harness::*;

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
    let fleet = TestFleet::of(&[flotilla_identity::SPEC])
        .manual_clock(start_millis)
        .start()
        .await;
    signup(&fleet, "ada@example.com").await;
    fleet.manual_clock().advance(60_000);
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
    let fleet = TestFleet::of(&[flotilla_identity::SPEC])
        .config(
            "identity",
            json!({"admin_email": "Root@Example.com", "admin_password": "admin-password-1"}),
        )
        .start()
        .await;
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
async fn failed_logins_throttle_an_address_until_the_oldest_leaves_the_window() {
    // RELIABILITY.md S6 on identity's clock: 10 failures in 60 s, then 429 before any password
    // is checked, for a known and an unknown address alike; a success clears the count.
    let fleet = TestFleet::of(&[flotilla_identity::SPEC])
        .manual_clock(1_700_000_000_000)
        .start()
        .await;
    signup(&fleet, "ada@example.com").await;
    for email in ["ada@example.com", "nobody@example.com"] {
        for i in 0..10 {
            assert_eq!(
                login(&fleet, email, "wrong").await.status(),
                StatusCode::UNAUTHORIZED,
                "{email}, try {i}"
            );
            fleet.manual_clock().advance(1_000);
        }
    }
    // Ada's first failure was 20 s ago, the unknown address's 10 s ago.
    for (email, wait) in [("ada@example.com", "41"), ("nobody@example.com", "51")] {
        let res = login(&fleet, email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{email}");
        assert_eq!(header_of(&res, header::RETRY_AFTER), Some(wait), "{email}");
        assert_eq!(header_of(&res, header::CONTENT_TYPE), Some(PROBLEM_JSON));
    }
    assert_eq!(
        login(&fleet, "ADA@example.com", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the address is normalised before it is counted"
    );
    // Once Ada's oldest failure is over a minute old, one more try is allowed: the right one.
    fleet.manual_clock().advance(41_000);
    assert_eq!(
        login(&fleet, "ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    // That success forgot her failures: ten more may fail before the next refusal.
    for _ in 0..10 {
        assert_eq!(
            login(&fleet, "ada@example.com", "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&fleet, "ada@example.com", "wrong").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
