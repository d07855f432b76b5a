//! The typed client against the real service over HTTP: what orders and the storefront call.

use axum::http::StatusCode;
use flotilla_chassis::transport::ClientError;
use flotilla_shipping::client::ShippingClient;
use flotilla_shipping::contract::{
    Address, CreateShipment, PROBLEM_CARRIER_REJECTED, QuoteRequest, ShipmentLine, ShipmentStatus,
    TEST_REJECTED_POSTAL_CODE,
};

use crate::harness::App;

fn request(order_id: &str, quote_id: Option<String>) -> CreateShipment {
    CreateShipment {
        order_id: order_id.to_owned(),
        quote_id,
        address: Address {
            name: "Grace Hopper".into(),
            line1: "1 Rue de Rivoli".into(),
            city: "Paris".into(),
            postal_code: "75001".into(),
            country: "FR".into(),
        },
        lines: vec![ShipmentLine {
            product_id: "p0000007".into(),
            quantity: 2,
        }],
    }
}

fn problem_kind(err: &ClientError) -> Option<&str> {
    match err {
        ClientError::Status { problem, .. } => Some(problem.kind.as_str()),
        _ => None,
    }
}

#[tokio::test]
async fn the_client_quotes_ships_finds_and_cancels() {
    let app = App::start().await;
    let client = ShippingClient::new(app.fleet.transport(flotilla_shipping::NAME));

    let quote = client
        .quote(&QuoteRequest {
            country: "FR".into(),
            postal_code: "75001".into(),
            items: 2,
            weight_grams: Some(2500),
        })
        .await
        .expect("quote");
    assert_eq!(quote.amount.amount_minor, 990 + 50 + 100);

    let req = request("order/1 ?&", Some(quote.id.clone()));
    let shipment = client.create_shipment(&req).await.expect("create");
    assert_eq!(shipment.cost, quote.amount);
    assert_eq!(shipment.order_id, "order/1 ?&");
    let again = client.create_shipment(&req).await.expect("repeat");
    assert_eq!(again, shipment);

    assert_eq!(client.shipment(&shipment.id).await.expect("get"), shipment);
    assert_eq!(
        client.for_order("order/1 ?&").await.expect("for order"),
        Some(shipment.clone())
    );
    assert_eq!(client.for_order("order-none").await.expect("none"), None);

    let cancelled = client.cancel(&shipment.id).await.expect("cancel");
    assert_eq!(cancelled.status, ShipmentStatus::Cancelled);
    assert_eq!(client.cancel(&shipment.id).await.expect("again"), cancelled);
}

#[tokio::test]
async fn the_client_reports_the_services_refusals() {
    let app = App::start().await;
    let client = ShippingClient::new(app.fleet.transport(flotilla_shipping::NAME));

    let mut rejected = request("order-2", None);
    rejected.address.postal_code = TEST_REJECTED_POSTAL_CODE.into();
    let err = client
        .create_shipment(&rejected)
        .await
        .expect_err("rejected");
    assert_eq!(err.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(problem_kind(&err), Some(PROBLEM_CARRIER_REJECTED));

    client
        .create_shipment(&request("order-3", None))
        .await
        .expect("create");
    let mut changed = request("order-3", None);
    changed.lines[0].quantity = 3;
    let err = client
        .create_shipment(&changed)
        .await
        .expect_err("conflict");
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));

    for id in ["missing", "../shipments", "a b?c"] {
        assert!(
            client.cancel(id).await.is_err_and(|e| e.is_not_found()),
            "{id}"
        );
        assert!(
            client.shipment(id).await.is_err_and(|e| e.is_not_found()),
            "{id}"
        );
    }
    let bad_quote = QuoteRequest {
        country: "KP".into(),
        postal_code: "1".into(),
        items: 1,
        weight_grams: None,
    };
    let err = client.quote(&bad_quote).await.expect_err("unsupported");
    assert_eq!(err.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
}
