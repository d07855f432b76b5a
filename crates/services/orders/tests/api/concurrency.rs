//! Many checkouts racing for little stock (RELIABILITY L2, scaled down): 50 users, 5 products
//! with 5 units each, 10 buyers per product. Exactly 5 of each are sold, stock never goes
//! below zero, and confirmed orders, captured payments and committed reservations agree.

use axum::http::{Method, StatusCode};
use flotilla_inventory::contract::InventorySummary;
use flotilla_orders::contract::{Order, OrderStatus};
use flotilla_payments::contract::PaymentSummary;
use std::collections::BTreeMap;

use crate::harness::{App, GOOD_CARD, body, expect_json, send};

const PRODUCTS: [u32; 5] = [31, 32, 33, 34, 35];
const STOCK: i64 = 5;
const USERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_checkouts_on_five_scarce_products_never_oversell() {
    let app = App::start().await;
    for n in PRODUCTS {
        app.set_stock(n, STOCK).await;
    }
    let buyers: Vec<(String, u32)> = (0..USERS)
        .map(|i| (format!("buyer-{i:02}"), PRODUCTS[i % PRODUCTS.len()]))
        .collect();
    for (user, n) in &buyers {
        app.fill_cart(user, &[(*n, 1)]).await;
    }
    let request = body(GOOD_CARD, "10117");
    let placed: Vec<Order> = futures::future::join_all(
        buyers
            .iter()
            .map(|(user, _)| app.checkout(user, "buy", &request)),
    )
    .await;

    let mut sold: BTreeMap<u32, i64> = BTreeMap::new();
    let mut confirmed = 0;
    for ((user, n), order) in buyers.iter().zip(&placed) {
        let order = app.settled(user, &order.id).await;
        match order.status {
            OrderStatus::Confirmed => {
                confirmed += 1;
                *sold.entry(*n).or_default() += 1;
            }
            _ => {
                let reason = order.reason.unwrap_or_default();
                assert!(reason.contains("out of stock"), "{reason}");
            }
        }
    }
    for n in PRODUCTS {
        assert_eq!(
            sold.get(&n),
            Some(&STOCK),
            "product {n}: min(demand, stock) sold"
        );
        assert_eq!(
            app.stock(n).await,
            0,
            "product {n}: nothing left, nothing negative"
        );
    }
    assert_eq!(confirmed, PRODUCTS.len() * STOCK as usize);

    let admin = |service: &str| app.as_user(Method::GET, service, "/admin/summary", "admin-1");
    let payments: PaymentSummary = expect_json(send(admin("payments")).await, StatusCode::OK).await;
    assert_eq!(
        payments.count_by_status.get("captured"),
        Some(&(confirmed as u64))
    );
    assert_eq!(payments.refunded_total, 0);
    let inventory: InventorySummary =
        expect_json(send(admin("inventory")).await, StatusCode::OK).await;
    assert_eq!(inventory.committed, confirmed as u64);
    assert_eq!(
        inventory.held, 0,
        "every reservation was committed or released"
    );
    assert_eq!(inventory.units_committed, confirmed as i64);
    let events =
        app.events("order.confirmed").await.len() + app.events("order.cancelled").await.len();
    assert_eq!(events, USERS, "one event per order");
}
