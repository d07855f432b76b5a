//! The typed client against the real service: what other services will call.

use axum::http::StatusCode;
use flotilla_cart::client::CartClient;
use flotilla_chassis::{Caller, Role};
use std::sync::Arc;

use crate::harness::{App, product_id};

fn caller(user_id: &str) -> Caller {
    Caller {
        user_id: user_id.to_owned(),
        role: Role::Customer,
    }
}

#[tokio::test]
async fn the_client_reads_and_changes_the_callers_cart() {
    let app = Arc::new(App::start().await);
    let client = CartClient::new(app.cart_transport());
    let alice = caller("alice");

    let cart = client.get(&alice).await.expect("get");
    assert!(cart.items.is_empty());

    let cart = client
        .set_quantity(&alice, &product_id(3), 2)
        .await
        .expect("set");
    assert_eq!(cart.item_count, 2);
    app.clock.advance(1);
    let cart = client
        .set_quantity(&alice, &product_id(8), 1)
        .await
        .expect("set");
    assert_eq!(cart.items.len(), 2);

    let cart = client.remove(&alice, &product_id(3)).await.expect("remove");
    assert_eq!(cart.items.len(), 1);
    assert_eq!(cart.items[0].product_id.to_string(), product_id(8));
    assert_eq!(client.get(&alice).await.expect("get"), cart);
    assert!(
        client
            .get(&caller("bob"))
            .await
            .expect("get")
            .items
            .is_empty()
    );

    client.clear(&alice).await.expect("clear");
    assert!(client.get(&alice).await.expect("get").items.is_empty());
}

#[tokio::test]
async fn the_client_reports_the_services_refusals() {
    let app = Arc::new(App::start().await);
    let client = CartClient::new(app.cart_transport());
    let alice = caller("alice");

    let unknown = client.set_quantity(&alice, "p9999999", 1).await;
    assert!(unknown.is_err_and(|e| e.is_not_found()));
    // An id with path characters stays one segment and is simply unknown.
    let odd = client.set_quantity(&alice, "../p0000001", 1).await;
    assert!(odd.is_err_and(|e| e.is_not_found()));
    let too_many = client.set_quantity(&alice, &product_id(1), 100).await;
    assert_eq!(
        too_many.err().and_then(|e| e.status()),
        Some(StatusCode::UNPROCESSABLE_ENTITY)
    );
    let cart = client.remove(&alice, "../p0000001").await.expect("remove");
    assert!(cart.items.is_empty());
}
