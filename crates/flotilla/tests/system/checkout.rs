//! Checkout through the gateway in one process: the happy path end to end (order, stock,
//! payment, shipment, cart cleared by an event, a notification), the public surface of the new
//! services, RELIABILITY.md L2 — 500 concurrent checkouts of 100 carts over 5 products with
//! stock 10 each, with no oversell, one order per cart and every count agreeing — and S10, two
//! checkout tabs of one cart through the gateway.

use crate::support::{TestApp, spawn_app_with};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const ADMIN_EMAIL: &str = "admin@flotilla.example";
pub const ADMIN_PASSWORD: &str = "admin-password-123";

/// A shop with an administrator, `products` catalog products and `stock` units of each.
pub async fn shop(products: u64, stock: i64) -> TestApp {
    spawn_app_with(json!({
        "identity": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "catalog": {"seed_products": products},
        "inventory": {"seed_products": products, "initial_stock": stock},
        "orders": {"respond_within_ms": 200},
    }))
    .await
}

/// The default shop with an administrator, and the administrator's bearer header value.
pub async fn admin_shop() -> (TestApp, String) {
    let app = spawn_app_with(json!({
        "identity": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
    }))
    .await;
    let admin = login(&app.http, &app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (app, admin)
}

/// A logged-in user of `app`: (user id, bearer header value).
pub async fn login(http: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let token: Value = http
        .post(format!("{base}/api/identity/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("token");
    format!(
        "Bearer {}",
        token["access_token"].as_str().expect("access token")
    )
}

/// Signs up a fresh customer and returns their bearer header value.
pub async fn customer(http: &reqwest::Client, base: &str) -> String {
    let email = format!("c{}@example.com", rand::random::<u64>());
    let res = http
        .post(format!("{base}/api/identity/signup"))
        .json(&json!({"email": email, "password": "password-123", "name": "C"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(res.status(), 201);
    login(http, base, &email, "password-123").await
}

/// Puts `quantity` of `product` in the cart of `bearer`.
pub async fn add_to_cart(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    product: &str,
    quantity: u32,
) {
    let res = http
        .put(format!("{base}/api/cart/items/{product}"))
        .header("authorization", bearer)
        .json(&json!({"quantity": quantity}))
        .send()
        .await
        .expect("add to cart");
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

/// Checks out; returns the HTTP status and the order (or problem) body.
pub async fn checkout(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    key: &str,
    card: &str,
) -> (u16, Value) {
    try_checkout(http, base, bearer, key, card)
        .await
        .expect("checkout")
}

/// Checks out, reporting a failed exchange (e.g. the server was killed) instead of panicking.
pub async fn try_checkout(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    key: &str,
    card: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let res = checkout_request(http, base, bearer, key, card)
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

/// Checks out with the always-approved card under the W3C `traceparent` given, asserting the
/// order was acknowledged (201 or 202); the order.
pub async fn traced_checkout(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    key: &str,
    traceparent: &str,
) -> Value {
    let res = checkout_request(http, base, bearer, key, "4242424242424242")
        .header("traceparent", traceparent)
        .send()
        .await
        .expect("checkout");
    let status = res.status();
    assert!(status == 201 || status == 202, "{status}");
    res.json().await.expect("order")
}

/// `POST /api/orders` as `bearer`, shipping to Berlin and paying with `card`.
fn checkout_request(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    key: &str,
    card: &str,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/api/orders"))
        .header("authorization", bearer)
        .header("idempotency-key", key)
        .json(&json!({
            "address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "card_number": card,
        }))
}

/// Polls the order until it is CONFIRMED or CANCELLED.
pub async fn terminal(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    id: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let res = http
            .get(format!("{base}/api/orders/{id}"))
            .header("authorization", bearer)
            .send()
            .await;
        if let Ok(res) = res
            && res.status() == 200
        {
            let order: Value = res.json().await.expect("order");
            if order["status"] != "PENDING" {
                return order;
            }
        }
        assert!(
            Instant::now() < deadline,
            "order {id} terminal within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_json(http: &reqwest::Client, url: String, bearer: &str) -> Value {
    let res = http
        .get(&url)
        .header("authorization", bearer)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200, "{url}");
    res.json().await.expect("json")
}

#[tokio::test]
async fn checkout_end_to_end_through_the_gateway() {
    let app = shop(30, 5).await;
    let (http, base) = (&app.http, app.base.as_str());
    let ada = customer(http, base).await;
    add_to_cart(http, base, &ada, "p0000003", 2).await;
    add_to_cart(http, base, &ada, "p0000004", 1).await;

    let (status, order) = checkout(http, base, &ada, "key-1", "4242424242424242").await;
    assert!(status == 201 || status == 202, "{status} {order}");
    let id = order["id"].as_str().expect("id").to_owned();
    let order = terminal(http, base, &ada, &id, Duration::from_secs(15)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert!(
        order["tracking_number"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    // The same request again: the same order.
    let (_, again) = checkout(http, base, &ada, "key-1", "4242424242424242").await;
    assert_eq!(again["id"], order["id"]);

    let stock = get_json(http, format!("{base}/api/inventory/stock/p0000003"), &ada).await;
    assert_eq!(stock["available"], 3);
    // The cart is emptied by the cart service when it consumes order.confirmed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cart = get_json(http, format!("{base}/api/cart"), &ada).await;
        if cart["items"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "cart cleared: {cart}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and notifications wrote to the customer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let messages = get_json(http, format!("{base}/api/notifications/messages"), &ada).await;
        if messages["items"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["order_id"] == id.as_str()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "notification sent: {messages}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Public surface: internal operations are not reachable through the gateway, stock
    // changes need the admin role.
    let res = http
        .post(format!("{base}/api/inventory/reservations"))
        .header("authorization", &ada)
        .json(&json!({"reservation_id": "x", "lines": [{"product_id": "p0000001", "quantity": 5}]}))
        .send()
        .await
        .expect("internal route");
    assert_eq!(res.status(), 404);
    let res = http
        .post(format!("{base}/api/payments/payments"))
        .header("authorization", &ada)
        .header("idempotency-key", "k")
        .json(&json!({"order_id": "o", "amount": {"amount_minor": 1, "currency": "EUR"}, "card_number": "4242424242424242"}))
        .send()
        .await
        .expect("internal route");
    assert_eq!(res.status(), 404);
    let set = |bearer: String| async move {
        http.put(format!("{base}/api/inventory/stock/p0000009"))
            .header("authorization", bearer)
            .json(&json!({"available": 42}))
            .send()
            .await
            .expect("set stock")
            .status()
    };
    assert_eq!(set(ada.clone()).await, 403);
    let admin = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(set(admin.clone()).await, 200);
    assert_eq!(
        get_json(http, format!("{base}/api/inventory/stock/p0000009"), &ada).await["available"],
        42
    );

    // Another customer cannot see Ada's order.
    let bob = customer(http, base).await;
    let res = http
        .get(format!("{base}/api/orders/{id}"))
        .header("authorization", &bob)
        .send()
        .await
        .expect("x");
    assert_eq!(res.status(), 404);
}

pub const SKUS: u64 = 20;
pub const STOCK: i64 = 10;

#[tokio::test]
async fn five_hundred_concurrent_checkouts_never_oversell() {
    let app = shop(SKUS, STOCK).await;
    never_oversell(&app.base).await;
}

/// RELIABILITY.md L2 against the shop at `base` (seeded with `SKUS` products, `STOCK` each, and
/// the test administrator): 500 concurrent checkouts, five per customer, of 100 carts holding one
/// unit each of the first `CONTESTED` products (20 carts per product against 10 units). A cart
/// is checked out once (S10), so each customer's five checkouts place one order and the others
/// are refused (409 `checkout-in-progress` / `cart-changed`, or 422 `empty-cart` once the order
/// took the lines); and of the 20 orders per product exactly 10 are confirmed.
pub async fn never_oversell(base: &str) {
    const USERS: usize = 100;
    const PER_USER: usize = 5;
    const CONTESTED: u64 = 5;
    let base = base.to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");

    let mut users = Vec::new();
    for u in 0..USERS {
        let bearer = customer(&http, &base).await;
        let sku = format!("p{:07}", (u as u64 % CONTESTED) + 1);
        add_to_cart(&http, &base, &bearer, &sku, 1).await;
        users.push((bearer, sku));
    }
    let admin = login(&http, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // Watch stock while the checkouts run: it must never read below zero.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (http, base, watching) = (http.clone(), base.clone(), watching.clone());
        tokio::spawn(async move {
            let mut lowest = i64::MAX;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                for n in 1..=SKUS {
                    let stock: Value = http
                        .get(format!("{base}/api/inventory/stock/p{n:07}"))
                        .send()
                        .await
                        .expect("stock")
                        .json()
                        .await
                        .expect("json");
                    lowest = lowest.min(stock["available"].as_i64().expect("available"));
                }
            }
            lowest
        })
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (u, (bearer, sku)) in users.iter().enumerate() {
        for k in 0..PER_USER {
            let (http, base, bearer, sku) =
                (http.clone(), base.clone(), bearer.clone(), sku.clone());
            tasks.push(tokio::spawn(async move {
                let (status, order) = checkout(
                    &http,
                    &base,
                    &bearer,
                    &format!("u{u}-k{k}"),
                    "4242424242424242",
                )
                .await;
                if status == 201 || status == 202 {
                    let id = order["id"].as_str().expect("id").to_owned();
                    let order = terminal(&http, &base, &bearer, &id, Duration::from_secs(30)).await;
                    return (u, sku, Some(order));
                }
                let refusal = order["type"].as_str().unwrap_or_default();
                assert!(
                    (status == 409
                        && (refusal.ends_with(":checkout-in-progress")
                            || refusal.ends_with(":cart-changed")))
                        || (status == 422 && refusal.ends_with(":empty-cart")),
                    "{status} {order}"
                );
                (u, sku, None)
            }));
        }
    }
    let mut confirmed_per_sku = std::collections::HashMap::<String, i64>::new();
    let mut orders_per_user = vec![0; USERS];
    let mut confirmed = 0;
    let mut confirmed_total = 0;
    for task in tasks {
        let (u, sku, order) = task.await.expect("checkout task");
        let Some(order) = order else { continue };
        orders_per_user[u] += 1;
        if order["status"] == "CONFIRMED" {
            confirmed += 1;
            confirmed_total += order["total"]["amount_minor"].as_i64().expect("total");
            *confirmed_per_sku.entry(sku).or_default() += 1;
        } else {
            assert_eq!(order["status"], "CANCELLED");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "all terminal in {:?}",
        started.elapsed()
    );
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let lowest = watcher.await.expect("watcher");
    assert!(lowest >= 0, "stock read below zero: {lowest}");

    assert!(
        orders_per_user.iter().all(|n| *n == 1),
        "one order per cart: {orders_per_user:?}"
    );
    // Demand per contested SKU is 20 carts against 10 in stock; the others are not asked for.
    for n in 1..=SKUS {
        let sku = format!("p{n:07}");
        let (sold, left) = if n <= CONTESTED {
            (STOCK, 0)
        } else {
            (0, STOCK)
        };
        assert_eq!(
            confirmed_per_sku.get(&sku).copied().unwrap_or(0),
            sold,
            "sold of {sku}"
        );
        let stock = get_json(&http, format!("{base}/api/inventory/stock/{sku}"), &admin).await;
        assert_eq!(stock["available"], left, "{sku}");
    }
    let payments = get_json(&http, format!("{base}/api/payments/admin/summary"), &admin).await;
    let inventory = get_json(&http, format!("{base}/api/inventory/admin/summary"), &admin).await;
    let orders = get_json(&http, format!("{base}/api/orders/admin/summary"), &admin).await;
    assert_eq!(orders["confirmed"], confirmed);
    assert_eq!(
        inventory["committed"], confirmed,
        "committed reservations: {inventory}"
    );
    assert_eq!(
        payments["count_by_status"]["captured"], confirmed,
        "captured payments: {payments}"
    );
    let captured = payments["captured_total"].as_i64().expect("captured");
    let refunded = payments["refunded_total"].as_i64().expect("refunded");
    assert_eq!(captured - refunded, confirmed_total, "money: {payments}");
}

/// RELIABILITY.md S10 through the gateway: ten concurrent checkouts of one cart with distinct
/// idempotency keys place one order and capture once.
#[tokio::test]
async fn one_cart_checked_out_ten_times_at_once_is_one_order() {
    let app = shop(30, 5).await;
    let (http, base) = (&app.http, app.base.as_str());
    let ada = customer(http, base).await;
    add_to_cart(http, base, &ada, "p0000007", 1).await;

    let keys: Vec<String> = (0..10).map(|k| format!("tab-{k}")).collect();
    let answers = futures::future::join_all(
        keys.iter()
            .map(|key| checkout(http, base, &ada, key, "4242424242424242")),
    )
    .await;
    let placed: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201 || *status == 202)
        .map(|(_, order)| order)
        .collect();
    assert_eq!(placed.len(), 1, "{answers:?}");
    for (status, problem) in answers.iter().filter(|(s, _)| *s != 201 && *s != 202) {
        let kind = problem["type"].as_str().unwrap_or_default();
        assert!(
            (*status == 409
                && (kind.ends_with(":checkout-in-progress") || kind.ends_with(":cart-changed")))
                || (*status == 422 && kind.ends_with(":empty-cart")),
            "{status} {problem}"
        );
    }
    let id = placed[0]["id"].as_str().expect("id");
    let order = terminal(http, base, &ada, id, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "CONFIRMED");
    let admin = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let orders = get_json(http, format!("{base}/api/orders/admin/summary"), &admin).await;
    assert_eq!(orders["confirmed"], 1, "{orders}");
    assert_eq!(orders["cancelled"], 0, "{orders}");
    let payments = get_json(http, format!("{base}/api/payments/admin/summary"), &admin).await;
    assert_eq!(payments["count_by_status"]["captured"], 1, "{payments}");
}
