//! The typed client, exactly as orders and the storefront use it, over real HTTP with the
//! fleet's service credential.

use flotilla_chassis::transport::ClientError;
use flotilla_chassis::{Caller, Role};
use flotilla_inventory::client::InventoryClient;
use flotilla_inventory::contract::{
    ReservationLine, ReservationStatus, ReserveRequest, problem_types,
};

use crate::harness::{App, INITIAL, product};

fn client(app: &App) -> InventoryClient {
    InventoryClient::new(app.fleet.transport(flotilla_inventory::NAME))
}

fn caller(role: Role) -> Caller {
    Caller {
        user_id: "someone".to_owned(),
        role,
    }
}

fn request(id: &str, product_id: &str, quantity: i64) -> ReserveRequest {
    ReserveRequest {
        reservation_id: id.to_owned(),
        lines: vec![ReservationLine {
            product_id: product_id.parse().expect("a product id"),
            quantity,
        }],
        ttl_secs: Some(300),
    }
}

/// The problem type of a status error.
fn kind(err: &ClientError) -> &str {
    match err {
        ClientError::Status { problem, .. } => problem.kind.as_str(),
        other => panic!("expected a status error, got {other}"),
    }
}

#[tokio::test]
async fn the_saga_steps_through_the_client() {
    let app = App::start().await;
    let inventory = client(&app);
    let a = product(1);

    assert_eq!(inventory.stock(&a).await.expect("stock").available, INITIAL);
    let held = inventory
        .reserve(&request("saga-1", &a, 4))
        .await
        .expect("reserve");
    assert_eq!(held.status, ReservationStatus::Held);
    let replay = inventory
        .reserve(&request("saga-1", &a, 4))
        .await
        .expect("replay");
    assert_eq!(replay, held);
    assert_eq!(inventory.reservation("saga-1").await.expect("get"), held);
    let committed = inventory.commit("saga-1").await.expect("commit");
    assert_eq!(committed.status, ReservationStatus::Committed);
    assert_eq!(inventory.commit("saga-1").await.expect("again"), committed);

    inventory
        .reserve(&request("saga-2", &a, 1))
        .await
        .expect("reserve");
    let released = inventory.release("saga-2").await.expect("release");
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(
        inventory.stock(&a).await.expect("stock").available,
        INITIAL - 4
    );

    // The answers a saga branches on.
    let err = inventory.release("never-reserved").await.expect_err("404");
    assert!(err.is_not_found(), "{err}");
    let err = inventory.commit("saga-2").await.expect_err("released");
    assert_eq!(kind(&err), problem_types::RESERVATION_RELEASED);
    let err = inventory.release("saga-1").await.expect_err("committed");
    assert_eq!(kind(&err), problem_types::RESERVATION_COMMITTED);
    let err = inventory
        .reserve(&request("saga-3", &a, INITIAL))
        .await
        .expect_err("too many");
    assert_eq!(kind(&err), problem_types::OUT_OF_STOCK);
    let err = inventory
        .reserve(&request("saga-1", &a, 5))
        .await
        .expect_err("other lines");
    assert_eq!(kind(&err), problem_types::RESERVATION_CONFLICT);
    // An id the service refuses still reaches it, as a 422 rather than a client-side failure.
    let err = inventory
        .reserve(&request("not a valid id é", &a, 1))
        .await
        .expect_err("invalid");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422));
    let err = inventory.stock("no/such product").await.expect_err("404");
    assert!(err.is_not_found());
}

#[tokio::test]
async fn admins_manage_stock_and_read_the_books_through_the_client() {
    let app = App::start().await;
    let inventory = client(&app);
    let admin = caller(Role::Admin);
    let a = product(2);

    let level = inventory.set_stock(&admin, &a, 3).await.expect("set");
    assert_eq!(level.available, 3);
    let err = inventory
        .set_stock(&caller(Role::Customer), &a, 9)
        .await
        .expect_err("customers may not");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
    let err = inventory.set_stock(&admin, &a, -1).await.expect_err("422");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422));

    inventory
        .reserve(&request("books-1", &a, 2))
        .await
        .expect("reserve");
    let summary = inventory.summary(&admin).await.expect("summary");
    assert_eq!((summary.held, summary.units_held), (1, 2));
    let page = inventory
        .reservations(&admin, Some(ReservationStatus::Held), 1, 10)
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].id, "books-1");

    app.clock.advance(300_000);
    assert_eq!(inventory.expire(&admin).await.expect("expire").released, 1);
    assert_eq!(inventory.stock(&a).await.expect("stock").available, 3);
}
