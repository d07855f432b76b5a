//! The store against a real database (SQLite, or PostgreSQL when `FLOTILLA_TEST_DATABASE_URL`
//! is set): the paths the HTTP tests cannot force, such as an insert that loses the race for its
//! order after the handler's first look found nothing.

use flotilla_chassis::clock::at_millis;
use flotilla_chassis::pagination::PageRequest;
use flotilla_chassis::{Currency, Money};
use flotilla_testkit::{TestDatabases, test_db};

use super::*;
use crate::contract::{Address, CreateShipment, ShipmentLine, ShipmentStatus};
use crate::domain::{NewShipment, OrderId, ShipmentId};

/// A migrated store over a fresh database, which lives as long as the guard.
pub(crate) async fn test_store() -> (ShippingStore, TestDatabases) {
    let (db, guard) = test_db("shipping").await;
    db.migrate(MIGRATIONS).await.expect("migrate");
    (ShippingStore::new(db), guard)
}

fn new_shipment(order_id: &str) -> NewShipment {
    NewShipment::parse(&CreateShipment {
        order_id: order_id.to_owned(),
        quote_id: None,
        address: Address {
            name: "Ada".into(),
            line1: "Street 1".into(),
            city: "Berlin".into(),
            postal_code: "10117".into(),
            country: "DE".into(),
        },
        lines: vec![
            ShipmentLine {
                product_id: "p2".into(),
                quantity: 1,
            },
            ShipmentLine {
                product_id: "p1".into(),
                quantity: 4,
            },
        ],
    })
    .expect("valid")
}

#[tokio::test]
async fn a_second_insert_for_an_order_returns_the_first_untouched() {
    let (store, _db) = test_store().await;
    let cost = Money::new(640, Currency::EUR);
    let CreateOutcome::Created(first) = store
        .create_shipment(&new_shipment("o-1"), cost, at_millis(1_000))
        .await
        .expect("create")
    else {
        panic!("the first insert creates");
    };
    let again = store
        .create_shipment(
            &new_shipment("o-1"),
            Money::new(1, Currency::EUR),
            at_millis(2_000),
        )
        .await
        .expect("create");
    assert_eq!(again, CreateOutcome::Existing(first.clone()));
    let id = ShipmentId::parse(&first.id).expect("a shipment id");
    assert_eq!(
        store.shipment(&id).await.expect("read"),
        Some(first.clone())
    );
    assert_eq!(first.lines[0].product_id, "p2", "lines keep their order");
}

#[tokio::test]
async fn cancelling_is_conditional_and_lists_filter_by_status() {
    let (store, _db) = test_store().await;
    let cost = Money::new(640, Currency::EUR);
    for (n, order) in ["a", "b", "c"].into_iter().enumerate() {
        store
            .create_shipment(&new_shipment(order), cost, at_millis(1_000 + n as i64))
            .await
            .expect("create");
    }
    let order_b = OrderId::parse("b").expect("an order id");
    let b = store
        .for_order(&order_b)
        .await
        .expect("read")
        .expect("exists");
    let b_id = ShipmentId::parse(&b.id).expect("a shipment id");
    let cancelled = store
        .cancel(&b_id, at_millis(5_000))
        .await
        .expect("cancel")
        .expect("exists");
    let again = store
        .cancel(&b_id, at_millis(9_000))
        .await
        .expect("cancel")
        .expect("exists");
    assert_eq!(again, cancelled, "the second cancel writes nothing");
    assert_eq!(
        store
            .cancel(&ShipmentId::generate(), at_millis(9_000))
            .await
            .expect("cancel"),
        None
    );

    let page = PageRequest {
        page: 1,
        page_size: 10,
    };
    let (all, total) = store.list(None, page).await.expect("list");
    assert_eq!(total, 3);
    let orders: Vec<&str> = all.iter().map(|s| s.order_id.as_str()).collect();
    assert_eq!(orders, ["c", "b", "a"]);
    assert!(all.iter().all(|s| s.lines.len() == 2));
    let (live, total) = store
        .list(Some(ShipmentStatus::Created), page)
        .await
        .expect("list");
    assert_eq!(total, 2);
    assert!(live.iter().all(|s| s.status == ShipmentStatus::Created));
}
