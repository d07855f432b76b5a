//! Quotes: priced by zone, items and weight, stored with an expiry, refused for unsupported
//! destinations and invalid fields.

use axum::http::StatusCode;
use flotilla_chassis::clock::at_millis;
use flotilla_chassis::{Currency, Money};
use flotilla_shipping::contract::{PROBLEM_UNSUPPORTED_DESTINATION, Quote};
use serde_json::json;

use crate::harness::{App, START_MILLIS, error_fields, expect_json, expect_problem};

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

#[tokio::test]
async fn quotes_are_priced_by_zone() {
    let app = App::start().await;
    for (country, price) in [
        ("DE", 490),
        ("FR", 990),
        ("GR", 990),
        ("US", 1990),
        ("CH", 1990),
    ] {
        let quote = app
            .quote(json!({ "country": country, "postal_code": "12345", "items": 1 }))
            .await;
        assert_eq!(quote.amount, eur(price), "{country}");
        assert_eq!(quote.country, country);
    }
}

#[tokio::test]
async fn items_and_started_kilograms_add_to_the_price() {
    let app = App::start().await;
    let price = |items: u32, weight: Option<u32>| {
        let app = &app;
        async move {
            app.quote(json!({
                "country": "FR", "postal_code": "75001", "items": items, "weight_grams": weight,
            }))
            .await
            .amount
        }
    };
    assert_eq!(price(1, None).await, eur(990));
    assert_eq!(price(4, None).await, eur(990 + 3 * 50));
    assert_eq!(price(1000, None).await, eur(990 + 999 * 50));
    assert_eq!(price(1, Some(2000)).await, eur(990));
    assert_eq!(price(1, Some(2001)).await, eur(1090));
    assert_eq!(price(3, Some(4500)).await, eur(990 + 100 + 300));
}

#[tokio::test]
async fn a_quote_is_stored_with_its_expiry() {
    let app = App::start().await;
    let quote = app
        .quote(json!({ "country": "DE", "postal_code": "10117", "items": 2 }))
        .await;
    assert_eq!(quote.expires_at, at_millis(START_MILLIS + 1800 * 1000));
    let read: Quote = expect_json(
        app.get(&format!("/quotes/{}", quote.id)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, quote);
    // An expired quote can still be read: its `expires_at` says it is no longer honoured.
    app.clock.advance(3600 * 1000);
    let read: Quote = expect_json(
        app.get(&format!("/quotes/{}", quote.id)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, quote);
    expect_problem(app.get("/quotes/nope").await, StatusCode::NOT_FOUND).await;

    let short = App::with_config(json!({ "quote_ttl_secs": 60 })).await;
    let quote = short
        .quote(json!({ "country": "DE", "postal_code": "10117", "items": 2 }))
        .await;
    assert_eq!(quote.expires_at, at_millis(START_MILLIS + 60 * 1000));
}

#[tokio::test]
async fn unsupported_destinations_are_refused() {
    let app = App::start().await;
    for country in ["AQ", "KP"] {
        let res = app
            .post(
                "/quotes",
                &json!({ "country": country, "postal_code": "1", "items": 1 }),
            )
            .await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem.kind, PROBLEM_UNSUPPORTED_DESTINATION);
        assert_eq!(error_fields(&problem), ["country"]);
    }
    // The list and the origin are configuration.
    let app =
        App::with_config(json!({ "origin_country": "FR", "unsupported_countries": ["US"] })).await;
    let res = app
        .post(
            "/quotes",
            &json!({ "country": "US", "postal_code": "1", "items": 1 }),
        )
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let antarctica = app
        .quote(json!({ "country": "AQ", "postal_code": "1", "items": 1 }))
        .await;
    assert_eq!(antarctica.amount, eur(1990));
    let germany = app
        .quote(json!({ "country": "DE", "postal_code": "1", "items": 1 }))
        .await;
    assert_eq!(germany.amount, eur(990), "DE is EU when shipping from FR");
    let france = app
        .quote(json!({ "country": "FR", "postal_code": "1", "items": 1 }))
        .await;
    assert_eq!(france.amount, eur(490));
}

#[tokio::test]
async fn invalid_quote_fields_are_each_reported() {
    let app = App::start().await;
    let cases = [
        (
            json!({ "country": "de", "postal_code": "1", "items": 1 }),
            vec!["country"],
        ),
        (
            json!({ "country": "DEU", "postal_code": "1", "items": 1 }),
            vec!["country"],
        ),
        (
            json!({ "country": "DE", "postal_code": "", "items": 1 }),
            vec!["postal_code"],
        ),
        (
            json!({ "country": "DE", "postal_code": "1/2", "items": 1 }),
            vec!["postal_code"],
        ),
        (
            json!({ "country": "DE", "postal_code": "1", "items": 0 }),
            vec!["items"],
        ),
        (
            json!({ "country": "DE", "postal_code": "1", "items": 1001 }),
            vec!["items"],
        ),
        (
            json!({ "country": "", "postal_code": " ", "items": 0 }),
            vec!["country", "postal_code", "items"],
        ),
    ];
    for (body, fields) in cases {
        let res = app.post("/quotes", &body).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(problem.kind.ends_with(":validation"), "{body}: {problem:?}");
        assert_eq!(error_fields(&problem), fields, "{body}");
    }
}
