//! Bad input of every kind is a problem+json 4xx, never a 5xx; and the published contract
//! marks which operations are internal to the fleet.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{App, expect_problem, shipment_body};

#[tokio::test]
async fn malformed_bodies_are_client_errors() {
    let app = App::start().await;
    for path in ["/quotes", "/shipments"] {
        let malformed = app
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(r#"{"country": "DE""#)
            .send()
            .await
            .expect("POST");
        expect_problem(malformed, StatusCode::BAD_REQUEST).await;

        for body in [json!({}), json!(null), json!([1]), json!({ "items": -1 })] {
            let res = app.post(path, &body).await;
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        }

        let no_type = app
            .request(Method::POST, path)
            .body(r#"{"country": "DE", "postal_code": "1", "items": 1}"#)
            .send()
            .await
            .expect("POST");
        expect_problem(no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

        let huge = format!(r#"{{"padding": "{}"}}"#, "x".repeat(70 * 1024));
        let too_large = app
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .expect("POST");
        // Only the status: with a Content-Length over the limit the chassis's body-limit layer
        // answers before the route.
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let wrong_types = json!({ "country": "DE", "postal_code": "1", "items": "2" });
    expect_problem(
        app.post("/quotes", &wrong_types).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut wrong_lines = shipment_body("o");
    wrong_lines["lines"] = json!("p0000001");
    expect_problem(
        app.create(&wrong_lines).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn address_text_with_invisible_or_direction_characters_is_refused() {
    let app = App::start().await;
    for (field, value) in [
        ("name", "Ada\u{202e}ecalevol"),
        ("line1", "1 Main\u{200b} St"),
        ("city", "Ber\u{ad}lin"),
    ] {
        let mut body = shipment_body("ord-lookalike");
        body["address"][field] = json!(value);
        let res = app.post("/shipments", &body).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.iter().any(|f| f.ends_with(field)),
            "{field}: {fields:?}"
        );
    }
}

#[tokio::test]
async fn unknown_ids_and_routes_are_not_found() {
    let app = App::start().await;
    let long = "x".repeat(500);
    for path in [
        "/quotes/0190b2c4-7e1a-7c3e-9f00-0123456789ab".to_owned(),
        "/shipments/0190b2c4-7e1a-7c3e-9f00-0123456789ab".to_owned(),
        format!("/shipments/{long}"),
        "/shipments/%C3%A9".to_owned(),
        "/nowhere".to_owned(),
    ] {
        expect_problem(app.get(&path).await, StatusCode::NOT_FOUND).await;
    }
    let res = app.post("/shipments/missing/cancel", &json!({})).await;
    expect_problem(res, StatusCode::NOT_FOUND).await;
    // The order's shipment is looked up by a required query parameter.
    expect_problem(app.get("/shipments").await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn the_contract_is_published_with_internal_operations_tagged() {
    let app = App::start().await;
    let url = format!("{}/openapi.json", app.fleet.url(flotilla_shipping::NAME));
    let doc: serde_json::Value = reqwest::get(&url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let internal: serde_json::Value = app
        .fleet
        .get(flotilla_shipping::NAME, "/openapi.internal.json")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let paths = &doc["paths"];
    let tags = |path: &str, method: &str| -> Vec<String> {
        // Internal operations are only in the internal document, public ones only in the other.
        let public = &paths[path][method];
        let private = &internal["paths"][path][method];
        assert!(
            public.is_null() || private.is_null(),
            "{method} {path} in one document only"
        );
        let op = if public.is_null() { private } else { public };
        assert!(op.is_object(), "{method} {path} in {paths}");
        serde_json::from_value(op["tags"].clone()).expect("tags")
    };
    for (path, method) in [
        ("/shipments", "post"),
        ("/shipments", "get"),
        ("/shipments/{id}", "get"),
        ("/shipments/{id}/cancel", "post"),
    ] {
        assert_eq!(tags(path, method), ["internal"], "{method} {path}");
    }
    for (path, method) in [
        ("/quotes", "post"),
        ("/quotes/{id}", "get"),
        ("/admin/shipments", "get"),
    ] {
        assert!(
            !tags(path, method).contains(&"internal".to_owned()),
            "{method} {path}"
        );
    }
    for schema in [
        "Address",
        "QuoteRequest",
        "Quote",
        "CreateShipment",
        "Shipment",
        "ShipmentLine",
        "ShipmentStatus",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
