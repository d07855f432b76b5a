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

#[tokio::test]
async fn a_product_page_shows_its_stock_badge_and_shipping_estimate() {
    let shop = shop().await;
    let product = shop.some_product().await;
    let (status, body) = shop.page(&format!("/product/{}", product.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(r#"<span class="badge">In stock</span>"#),
        "{body}"
    );
    assert!(body.contains("Shipping to Germany: "), "{body}");
    assert!(!body.contains(NOTICE));
}

#[tokio::test]
async fn without_inventory_and_shipping_a_product_page_renders_and_says_so() {
    let shop = shop_of(&[flotilla_catalog::SPEC, flotilla_storefront::SPEC]).await;
    let product = shop.some_product().await;
    let (status, body) = shop.page(&format!("/product/{}", product.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&escaped(&product.name)));
    assert!(body.contains("Stock information is unavailable right now."));
    assert!(body.contains("Shipping costs are unavailable right now"));
    assert!(body.contains(NOTICE));
}

/// Injects a fault in `service`'s calls to `upstream` (or its own routes when `upstream` is
/// `None`) through its admin API.
async fn inject(shop: &Shop, service: &str, fault: serde_json::Value) {
    let res = shop
        .fleet
        .client(service)
        .as_admin(Method::POST, "/admin/faults")
        .json(&fault)
        .send()
        .await
        .expect("fault");
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_product_seen_before_is_still_shown_while_the_catalog_fails() {
    // Every read asks the catalog again (nothing is fresh), so the second page load meets the
    // failing catalog and is answered from the copy kept for errors.
    let shop = shop_reading_the_catalog_afresh().await;
    let product = shop.some_product().await;
    let path = format!("/product/{}", product.id);
    let (status, _) = shop.page(&path).await;
    assert_eq!(status, StatusCode::OK);

    inject(&shop, "catalog", serde_json::json!({"status": 503})).await;
    let (status, body) = shop.page(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&escaped(&product.name)));
    // A product never seen has nothing to fall back on.
    let (status, _) = shop.page("/product/p0000002").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let report: serde_json::Value = shop
        .fleet
        .client("storefront")
        .as_admin(Method::GET, "/admin/resilience")
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("json");
    let catalog = report["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .find(|u| u["upstream"] == "catalog")
        .expect("catalog")
        .clone();
    assert!(
        catalog["read_cache"]["served_stale"].as_u64() >= Some(1),
        "{catalog}"
    );
}

#[tokio::test]
async fn a_cart_is_priced_from_kept_copies_while_the_catalog_fails() {
    let shop = shop_reading_the_catalog_afresh().await;
    let product = shop.some_product().await;
    let user = "user-stale";
    let res = shop
        .send(shop.as_user(Method::POST, "/cart/items", user).form(&[
            ("product_id", product.id.to_string()),
            ("quantity", "2".into()),
        ]))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    inject(&shop, "catalog", serde_json::json!({"status": 503})).await;
    let (status, body) = shop.page_as(user, "/cart").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&escaped(&product.name)), "{body}");
    assert!(!body.contains("No longer available"), "{body}");
}

/// The shop with nothing kept fresh: every read asks the catalog, and the kept copy is only
/// for errors.
async fn shop_reading_the_catalog_afresh() -> Shop {
    let fresh_reads = serde_json::json!({"read_cache": {"fresh_ms": 0}});
    shop_configured(SHOP, None, &[("resilience", fresh_reads)]).await
}
