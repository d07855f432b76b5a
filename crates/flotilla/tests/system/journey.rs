//! The user journey through the gateway — sign up, log in, search, open a product, fill the
//! cart, view it — against the real binary: all in one process, and with `cart` extracted into
//! a process of its own.

use crate::support::{Process, client, free_port};
use serde_json::{Value, json};

/// The API half of the journey, returning the product put in the cart.
pub async fn api_journey(http: &reqwest::Client, base: &str) -> Value {
    let email = format!("ada-{}@example.com", rand::random::<u32>());
    let res = http
        .post(format!("{base}/api/identity/signup"))
        .json(&json!({"email": email, "password": "correct horse battery", "name": "Ada"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(res.status(), 201);
    let user: Value = res.json().await.expect("user json");
    assert_eq!(user["email"], email);
    let text = user.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("correct horse"),
        "no secrets in {text}"
    );

    let res = http
        .post(format!("{base}/api/identity/login"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200);
    let token: Value = res.json().await.expect("token json");
    assert_eq!(token["token_type"], "Bearer");
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().expect("access token")
    );

    let page: Value = http
        .get(format!("{base}/api/catalog/products?page=2&page_size=5"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("page json");
    let first = page["items"][0].clone();
    let word = first["name"]
        .as_str()
        .expect("name")
        .split_whitespace()
        .last()
        .expect("a word")
        .to_owned();
    let found: Value = http
        .get(format!("{base}/api/catalog/search"))
        .query(&[("q", word.as_str()), ("page_size", "100")])
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("search json");
    let ids: Vec<&str> = found["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(
        ids.contains(&first["id"].as_str().expect("id")),
        "search for {word:?} finds {}",
        first["id"]
    );

    let id = first["id"].as_str().expect("id");
    let product: Value = http
        .get(format!("{base}/api/catalog/products/{id}"))
        .send()
        .await
        .expect("product")
        .json()
        .await
        .expect("product json");
    assert_eq!(product, first);

    let res = http
        .put(format!("{base}/api/cart/items/{id}"))
        .header("authorization", &bearer)
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .expect("add to cart");
    assert_eq!(res.status(), 200);
    let cart: Value = http
        .get(format!("{base}/api/cart"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("cart")
        .json()
        .await
        .expect("cart json");
    assert_eq!(cart["items"][0]["product_id"], id);
    assert_eq!(cart["items"][0]["quantity"], 2);
    let price = product["price"]["amount_minor"].as_i64().expect("price");
    assert_eq!(cart["total"]["amount_minor"].as_i64(), Some(price * 2));

    let res = http
        .get(format!("{base}/api/cart"))
        .send()
        .await
        .expect("anonymous cart");
    assert_eq!(res.status(), 401);
    product
}

/// The web half: the storefront pages, logging in with the form (cookie session).
pub async fn web_journey(base: &str, product: &Value) {
    let http = client();
    let home = http.get(format!("{base}/")).send().await.expect("home");
    assert_eq!(home.status(), 200);
    assert!(home.text().await.expect("html").contains("<html"));

    let res = crate::support::web_signup(&http, base, "web").await;
    assert_eq!(res.status(), 303, "signup redirects");

    let id = product["id"].as_str().expect("id");
    let page = http
        .get(format!("{base}/product/{id}"))
        .send()
        .await
        .expect("product page");
    assert_eq!(page.status(), 200);
    let name = product["name"].as_str().expect("name");
    assert!(
        page.text()
            .await
            .expect("html")
            .contains(&name.replace('&', "&amp;"))
    );

    let res = http
        .post(format!("{base}/cart/items"))
        .form(&[("product_id", id), ("quantity", "3")])
        .send()
        .await
        .expect("add via form");
    assert_eq!(res.status(), 303);
    let cart = http
        .get(format!("{base}/cart"))
        .send()
        .await
        .expect("cart page");
    assert_eq!(cart.status(), 200);
    let html = cart.text().await.expect("html");
    assert!(
        html.contains(id) || html.contains(&name.replace('&', "&amp;")),
        "cart shows the product"
    );
}

#[tokio::test]
async fn one_process_journey() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let app = Process::start(
        &["run", "--port", "0", "--data-dir", data],
        &[("FLOTILLA_CATALOG__SEED_PRODUCTS", "60")],
    );
    let base = app.url("gateway");
    let product = api_journey(&reqwest::Client::new(), &base).await;
    web_journey(&base, &product).await;
}

#[tokio::test]
async fn journey_with_cart_extracted() {
    let secret = format!("{:064x}", rand::random::<u128>());
    let shop_port = free_port();
    let cart_port = free_port();
    let cart_dir = tempfile::tempdir().expect("tempdir");
    let shop_dir = tempfile::tempdir().expect("tempdir");
    let envs = [
        ("FLOTILLA_SERVICE_SECRET", secret.as_str()),
        ("FLOTILLA_CATALOG__SEED_PRODUCTS", "60"),
    ];
    let catalog_url = format!("catalog=http://127.0.0.1:{shop_port}/api/catalog");
    let cart = Process::start(
        &[
            "serve",
            "cart",
            "--port",
            &cart_port.to_string(),
            "--data-dir",
            cart_dir.path().to_str().expect("path"),
            "--remote",
            &catalog_url,
        ],
        &envs,
    );
    let cart_url = format!("cart={}", cart.url("cart"));
    let shop = Process::start(
        &[
            "run",
            "--port",
            &shop_port.to_string(),
            "--data-dir",
            shop_dir.path().to_str().expect("path"),
            "--remote",
            &cart_url,
        ],
        &envs,
    );
    let base = shop.url("gateway");
    let product = api_journey(&reqwest::Client::new(), &base).await;
    web_journey(&base, &product).await;

    // The extracted cart refuses callers without a service credential, even with a user header.
    let res = reqwest::Client::new()
        .get(format!("{}/", cart.url("cart")))
        .header("x-flotilla-user-id", "someone")
        .header("x-flotilla-user-role", "admin")
        .send()
        .await
        .expect("direct call");
    assert_eq!(res.status(), 401);
    let res = reqwest::get(format!("{}/healthz", cart.url("cart")))
        .await
        .expect("health");
    assert_eq!(res.status(), 200);
}
