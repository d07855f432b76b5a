//! Graceful degradation: optional parts of a page missing, critical ones a 503 page (the plain
//! `shop()` has no orders service, so it is the fleet of an orders outage).

use crate::fleet::*;

#[tokio::test]
async fn pages_degrade_when_the_cart_and_identity_are_down() {
    let shop = shop_of(&[flotilla_catalog::SPEC, flotilla_storefront::SPEC]).await;
    let product = shop.some_product().await;

    let (status, body) = shop
        .page_as("user-1", &format!("/product/{}", product.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(NOTICE));
    assert!(body.contains(&escaped(&product.name)));
    assert!(body.contains(">Cart</a>"));

    let (status, body) = shop.page_as("user-1", "/cart").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("We&#39;ll be right back"));
    assert!(!body.contains("cart is unavailable"));

    let form = [("email", "a@example.com"), ("password", "whatever1")];
    let (status, _) = read_html(shop.send(shop.post("/login").form(&form)).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // Anonymous visitors never call the cart, so their pages are whole.
    let (status, body) = shop.page("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains(NOTICE));
}

#[tokio::test]
async fn pages_degrade_when_the_catalog_is_down() {
    let shop = shop_of(&[flotilla_cart::SPEC, flotilla_storefront::SPEC]).await;
    let (status, body) = shop.page("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(NOTICE));

    let (status, body) = shop.page("/product/p0000001").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("We&#39;ll be right back"));
}

#[tokio::test]
async fn order_pages_are_unavailable_without_orders_but_the_shop_is_not() {
    let shop = shop().await;
    let user = "user-1";
    for path in [
        "/checkout",
        "/orders",
        "/orders/ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b",
    ] {
        let (status, body) = shop.page_as(user, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(body.contains("We&#39;ll be right back"), "{path}");
        assert!(body.contains(r#"<a href="/orders">Orders</a>"#), "{path}");
    }
    let form = [
        ("idempotency_key", "3f1c7a52-8a3e-4c1e-9a57-2b1f0d4c6e11"),
        ("name", "Ada Lovelace"),
        ("line1", "Unter den Linden 1"),
        ("city", "Berlin"),
        ("postal_code", "10117"),
        ("country", "DE"),
        ("card_number", "4242424242424242"),
    ];
    let res = shop
        .send(shop.as_user(Method::POST, "/checkout", user).form(&form))
        .await;
    assert_eq!(read_html(res).await.0, StatusCode::SERVICE_UNAVAILABLE);

    let (status, body) = shop.page_as(user, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"<a href="/orders">Orders</a>"#));
    assert!(!body.contains(NOTICE));
}
