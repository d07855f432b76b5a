//! Listing and paging, categories, single products, pictures and featured products.

use flotilla_catalog::contract::{Category, Product};
use flotilla_chassis::Currency;
use flotilla_chassis::pagination::Page;
use reqwest::StatusCode;

use crate::harness::{SEEDED, expect_problem, fleet, get, ids, ok};

#[tokio::test]
async fn lists_pages_of_products_in_id_order() {
    let fleet = fleet().await;
    let first: Page<Product> = ok(&fleet, "/products").await;
    assert_eq!((first.total, first.page, first.page_size), (SEEDED, 1, 20));
    assert_eq!(first.items.len(), 20);
    assert_eq!(first.items[0].id.to_string(), "p0000001");
    assert_eq!(first.items[19].id.to_string(), "p0000020");
    let p = &first.items[0];
    assert_eq!(p.image_url, "/api/catalog/products/p0000001/image.svg");
    assert_eq!(p.created_at.unix_timestamp(), 1_704_067_260);
    // The wire text of a time is what it was before it had a type.
    let raw: serde_json::Value = ok(&fleet, "/products/p0000001").await;
    assert_eq!(raw["created_at"], "2024-01-01T00:01:00Z");
    assert_eq!(p.price.currency, Currency::EUR);
    assert!((199..=49_999).contains(&p.price.amount_minor));

    let second: Page<Product> = ok(&fleet, "/products?page=2&page_size=20").await;
    assert_eq!(second.items[0].id.to_string(), "p0000021");
    let last: Page<Product> = ok(&fleet, "/products?page=3").await;
    assert_eq!(
        ids(&last.items).last().map(String::as_str),
        Some("p0000050")
    );
    assert_eq!(last.items.len(), 10);
    let beyond: Page<Product> = ok(&fleet, "/products?page=9").await;
    assert!(beyond.items.is_empty());
    let all: Page<Product> = ok(&fleet, "/products?page_size=100").await;
    assert_eq!(all.items.len(), 50);

    for bad in [
        "page_size=101",
        "page=0",
        "page=abc",
        "page_size=-1",
        "page_size=0",
    ] {
        expect_problem(
            get(&fleet, &format!("/products?{bad}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[tokio::test]
async fn filters_by_category_and_counts_categories() {
    let fleet = fleet().await;
    let categories: Vec<Category> = ok(&fleet, "/categories").await;
    assert_eq!(categories.len(), 10);
    assert_eq!(categories[0].slug, "kitchen");
    assert_eq!(categories[0].name, "Kitchen");
    assert_eq!(
        categories.iter().map(|c| c.product_count).sum::<u64>(),
        SEEDED
    );

    let busiest = categories
        .iter()
        .max_by_key(|c| c.product_count)
        .expect("some category");
    let path = format!("/products?category={}&page_size=100", busiest.slug);
    let page: Page<Product> = ok(&fleet, &path).await;
    assert_eq!(page.total, busiest.product_count);
    assert_eq!(page.items.len() as u64, busiest.product_count);
    assert!(page.items.iter().all(|p| p.category == busiest.slug));
    assert!(page.items.windows(2).all(|w| w[0].id < w[1].id));

    expect_problem(
        get(&fleet, "/products?category=lasers").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let injected = "/products?category=%27%20OR%20%271%27%3D%271";
    expect_problem(get(&fleet, injected).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn serves_one_product_or_404() {
    let fleet = fleet().await;
    let product: Product = ok(&fleet, "/products/p0000042").await;
    assert_eq!(product.id.to_string(), "p0000042");
    assert!(product.sku.ends_with("-0000042"));
    assert!(!product.name.is_empty() && !product.description.is_empty());
    for unknown in [
        "p0000051",
        "p9999999",
        "nope",
        "p42",
        "p0000042x",
        "P0000042",
        "%27--",
    ] {
        let res = get(&fleet, &format!("/products/{unknown}")).await;
        expect_problem(res, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn draws_product_pictures() {
    let fleet = fleet().await;
    let res = get(&fleet, "/products/p0000003/image.svg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert_eq!(res.headers()["cache-control"], "public, max-age=86400");
    let svg = res.text().await.expect("body");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>"));
    let again = get(&fleet, "/products/p0000003/image.svg")
        .await
        .text()
        .await;
    assert_eq!(again.expect("body"), svg);
    for unknown in ["p0000051", "nope"] {
        let res = get(&fleet, &format!("/products/{unknown}/image.svg")).await;
        expect_problem(res, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn featured_is_stable_and_limited() {
    let fleet = fleet().await;
    let default: Vec<Product> = ok(&fleet, "/featured").await;
    assert_eq!(default.len(), 8);
    let again: Vec<Product> = ok(&fleet, "/featured").await;
    assert_eq!(default, again);
    let most: Vec<Product> = ok(&fleet, "/featured?limit=24").await;
    assert_eq!(most.len(), 24);
    let one: Vec<Product> = ok(&fleet, "/featured?limit=1").await;
    assert_eq!(ids(&one), ["p0000001"]);
    for bad in ["limit=0", "limit=25", "limit=x", "limit=-3"] {
        let res = get(&fleet, &format!("/featured?{bad}")).await;
        expect_problem(res, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn publishes_its_contract() {
    let fleet = fleet().await;
    let document: serde_json::Value = ok(&fleet, "/openapi.json").await;
    for path in [
        "/products",
        "/products/{id}",
        "/products/{id}/image.svg",
        "/products/lookup",
        "/search",
        "/categories",
        "/featured",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
    assert!(document["components"]["schemas"]["Product"].is_object());
}
