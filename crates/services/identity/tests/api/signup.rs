//! Signing up: who may, what is stored, and what is refused as a problem.

use flotilla_chassis::Role;
use flotilla_identity::contract::User;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::harness::*;

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
