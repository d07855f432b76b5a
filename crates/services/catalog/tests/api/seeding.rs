//! Determinism and seeding: the same id is the same product in every fleet and whatever the
//! batch boundaries, and seeding appends.

use flotilla_catalog::contract::Product;
use flotilla_catalog::seed;
use flotilla_chassis::pagination::Page;
use flotilla_chassis::{Currency, Db};
use flotilla_testkit::{TestDatabases, TestFleet};
use reqwest::StatusCode;
use serde_json::json;

use flotilla_chassis::transport::in_process::InProcessRegistry;

use crate::harness::{context, fleet, get, ok};

#[tokio::test]
async fn the_catalog_is_the_same_everywhere() {
    let (a, b) = (fleet().await, fleet().await);
    let from_a: Page<Product> = ok(&a, "/products?page_size=50").await;
    let from_b: Page<Product> = ok(&b, "/products?page_size=50").await;
    assert_eq!(from_a.items, from_b.items);
    let one_a: Product = ok(&a, "/products/p0000033").await;
    let one_b: Product = ok(&b, "/products/p0000033").await;
    assert_eq!(one_a, one_b);
    let svg_a = get(&a, "/products/p0000033/image.svg").await.text().await;
    let svg_b = get(&b, "/products/p0000033/image.svg").await.text().await;
    assert_eq!(svg_a.expect("svg"), svg_b.expect("svg"));
}

/// A migrated catalog database called `name` in `databases`.
async fn temp_db(databases: &mut TestDatabases, name: &str) -> Db {
    let db = databases.open(name).await;
    flotilla_catalog::migrate(&db).await.expect("migrate");
    db
}

async fn all_rows(db: &Db) -> Vec<(String, String, String, String, String, i64, i64)> {
    sqlx::query_as(
        "SELECT id, sku, name, description, category_slug, price_minor, created_at \
         FROM products ORDER BY id",
    )
    .fetch_all(db.pool())
    .await
    .expect("rows")
}

#[tokio::test]
async fn seeding_appends_the_same_products_whatever_the_batches() {
    let mut databases = TestDatabases::new();
    let stepwise = temp_db(&mut databases, "stepwise").await;
    assert_eq!(
        seed::ensure_seeded(&stepwise, 700, Currency::EUR)
            .await
            .expect("seed"),
        700
    );
    assert_eq!(
        seed::ensure_seeded(&stepwise, 700, Currency::EUR)
            .await
            .expect("noop"),
        0
    );
    assert_eq!(
        seed::seed_products(&stepwise, 1_601, Currency::EUR)
            .await
            .expect("seed"),
        1_601
    );
    assert_eq!(
        seed::seed_products(&stepwise, 0, Currency::EUR)
            .await
            .expect("seed"),
        0
    );

    let at_once = temp_db(&mut databases, "at_once").await;
    assert_eq!(
        seed::seed_products(&at_once, 2_301, Currency::EUR)
            .await
            .expect("seed"),
        2_301
    );

    let rows = all_rows(&stepwise).await;
    assert_eq!(rows.len(), 2_301);
    assert_eq!(rows.first().map(|r| r.0.as_str()), Some("p0000001"));
    assert_eq!(rows.last().map(|r| r.0.as_str()), Some("p0002301"));
    assert_eq!(rows, all_rows(&at_once).await);
}

/// Not part of the default run (it writes 100,000 rows): `cargo test -p flotilla-catalog --test
/// api -- --ignored --nocapture` shows how long seeding and the heavier reads take at scale.
#[tokio::test]
#[ignore = "measures seeding 100,000 products"]
async fn seeds_a_large_catalog_in_seconds() {
    let started = std::time::Instant::now();
    let fleet = TestFleet::of(&[flotilla_catalog::SPEC])
        .config("catalog", json!({ "seed_products": 100_000 }))
        .start()
        .await;
    println!("start with 100,000 products: {:?}", started.elapsed());
    for path in [
        "/products/p0099999",
        "/products?page=500",
        "/products?category=books&page=100",
        "/categories",
        "/search?q=cast+iron",
        "/search?q=a",
        "/featured?limit=24",
    ] {
        let t = std::time::Instant::now();
        let res = get(&fleet, path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        println!("{path}: {:?}", t.elapsed());
    }
}

#[tokio::test]
async fn a_restart_keeps_the_catalog_and_seeds_nothing() {
    let mut databases = TestDatabases::new();
    let registry = InProcessRegistry::default();
    for seed_products in [20, 35] {
        let db = databases.open("catalog").await; // the second time: the same database again
        let config = json!({ "catalog": { "seed_products": seed_products } });
        flotilla_catalog::service(context(db.clone(), config, &registry))
            .await
            .expect("start");
        assert_eq!(all_rows(&db).await.len(), 20);
        db.close().await;
    }
}

#[tokio::test]
async fn bad_configuration_stops_the_start() {
    let mut databases = TestDatabases::new();
    let registry = InProcessRegistry::default();
    for config in [
        json!({ "catalog": { "currency": "euro" } }),
        json!({ "catalog": { "max_page_size": 0 } }),
        json!({ "catalog": { "seed_products": -1 } }),
    ] {
        let db = temp_db(&mut databases, "bad").await;
        let started = flotilla_catalog::service(context(db, config.clone(), &registry)).await;
        assert!(started.is_err(), "{config}");
    }
}
