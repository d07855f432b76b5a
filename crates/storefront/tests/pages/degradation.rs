//! Graceful degradation: optional parts of a page missing, critical ones a 503 page.

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
