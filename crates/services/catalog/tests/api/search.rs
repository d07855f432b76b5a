//! Full-text search: relevance, prefixes, and input that tries to be SQL or FTS syntax.

use flotilla_catalog::contract::Product;
use flotilla_chassis::pagination::Page;
use reqwest::StatusCode;

use crate::harness::{SEEDED, expect_problem, fleet, get, ids, ok};

#[tokio::test]
async fn search_ranks_matches_by_relevance() {
    let fleet = fleet().await;
    let product: Product = ok(&fleet, "/products/p0000017").await;
    let q = product.name.replace(' ', "+");
    let found: Page<Product> = ok(&fleet, &format!("/search?q={q}&page_size=100")).await;
    assert!(found.total >= 1 && found.total <= SEEDED);
    assert_eq!(found.items.len() as u64, found.total);
    assert!(ids(&found.items).contains(&"p0000017".to_owned()));
    // Products carrying every word of the name in the name itself outrank mere mentions.
    assert_eq!(found.items[0].name, product.name);

    // A prefix of one word is enough, in any case.
    let word = product.name.split(' ').next_back().expect("a word");
    let prefix: String = word.chars().take(4).collect::<String>().to_uppercase();
    let by_prefix: Page<Product> = ok(&fleet, &format!("/search?q={prefix}&page_size=100")).await;
    assert!(ids(&by_prefix.items).contains(&"p0000017".to_owned()));

    // Category names are searchable too.
    let category: Page<Product> = ok(&fleet, &format!("/search?q={}", product.category)).await;
    assert!(category.total >= 1);

    let paged: Page<Product> = ok(&fleet, "/search?q=a&page=2&page_size=5").await;
    assert_eq!((paged.page, paged.page_size), (2, 5));
    let none: Page<Product> = ok(&fleet, "/search?q=zzzzqqqq").await;
    assert_eq!((none.total, none.items.len()), (0, 0));
}

#[tokio::test]
async fn hostile_search_input_is_just_text() {
    let fleet = fleet().await;
    let hostile = [
        "'; DROP TABLE products; --",
        "\"unbalanced",
        "*",
        "NEAR(a b, 2)",
        "kettle OR 1=1",
        "name:kettle",
        "a AND NOT b",
        "^start",
        "(((",
        "\u{0}",
        "%",
        "' UNION SELECT sql FROM sqlite_master --",
    ];
    for q in hostile {
        let res = fleet
            .get("catalog", "/search")
            .query(&[("q", q)])
            .send()
            .await
            .expect("request");
        assert!(res.status().is_success(), "{q:?} gave {}", res.status());
        let _: Page<Product> = res.json().await.expect("a page");
    }
    let words_only: Page<Product> = fleet
        .get("catalog", "/search")
        .query(&[("q", "*\"'()-")])
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("a page");
    assert_eq!(words_only.total, 0);
    let still_there: Page<Product> = ok(&fleet, "/products").await;
    assert_eq!(still_there.total, SEEDED);

    let too_long = "a".repeat(201);
    for bad in [
        "/search",
        "/search?q=",
        "/search?q=%20%20",
        "/search?q=a&page_size=101",
    ] {
        expect_problem(get(&fleet, bad).await, StatusCode::BAD_REQUEST).await;
    }
    let res = get(&fleet, &format!("/search?q={too_long}")).await;
    expect_problem(res, StatusCode::BAD_REQUEST).await;
}

/// A catalog holding only `products` (name, description), all in `home`, ids from p0000001 in
/// the order given, started in-process; and a typed client to it. The guard keeps the database.
async fn catalog_of(
    products: &[(String, String)],
) -> (
    flotilla_catalog::client::CatalogClient,
    flotilla_testkit::TestDatabases,
) {
    use flotilla_chassis::transport::in_process::InProcessRegistry;
    use flotilla_chassis::trust::TrustPolicy;

    let (db, guard) = flotilla_testkit::test_db("catalog").await;
    flotilla_catalog::migrate(&db).await.expect("migrate");
    for (chunk_no, chunk) in products.chunks(200).enumerate() {
        let values: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, (name, description))| {
                let n = chunk_no * 200 + i + 1;
                format!(
                    "('p{n:07}', 'HOM-{n:07}', '{name}', '{description}', 'home', 100, 'EUR', {n})"
                )
            })
            .collect();
        // Test data written by the test itself: no quotes in it, nothing to bind.
        let sql = format!(
            "INSERT INTO products (id, sku, name, description, category_slug, price_minor, \
             currency, created_at) VALUES {}",
            values.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(db.pool())
            .await
            .expect("insert");
    }
    let registry = InProcessRegistry::default();
    let config = serde_json::json!({ "catalog": { "seed_products": 0 } });
    let service = flotilla_catalog::service(crate::harness::context(db, config, &registry))
        .await
        .expect("start");
    let trust = TrustPolicy {
        credentials: None,
        require_credential: false,
    };
    let (router, _openapi, _tasks) = service.into_parts(flotilla_chassis::Limits::default(), trust);
    registry.register(flotilla_catalog::NAME, router);
    let client =
        flotilla_catalog::client::CatalogClient::new(registry.transport(flotilla_catalog::NAME));
    (client, guard)
}

fn page(page: u32, page_size: u32) -> flotilla_chassis::pagination::PageParams {
    flotilla_chassis::pagination::PageParams {
        page: Some(page),
        page_size: Some(page_size),
    }
}

#[tokio::test]
async fn an_old_name_match_outranks_many_newer_mentions_and_every_match_is_paged_once() {
    // The oldest product has the word in its name; 300 newer ones only mention it, more than
    // the head of newest matches holds.
    let mut products = vec![("Oak Desk".to_owned(), "A desk.".to_owned())];
    for n in 0..300 {
        products.push((format!("Chair {n}"), "A chair with oak legs.".to_owned()));
    }
    products.push(("Pine Shelf".to_owned(), "No match here.".to_owned()));
    let (client, _db) = catalog_of(&products).await;

    let first = client.search("oak", page(1, 10)).await.expect("search");
    assert_eq!(first.items[0].name, "Oak Desk");
    assert_eq!((first.total, first.total_is_lower_bound), (301, false));

    // Pages of 7 cross from the ranked head into the newest-first rest: each match once.
    let mut seen = std::collections::BTreeSet::new();
    for n in 1..=44 {
        let results = client.search("oak", page(n, 7)).await.expect("search");
        assert_eq!(results.total, 301);
        let expected = if n < 44 { 7 } else { 301 - 43 * 7 };
        assert_eq!(results.items.len(), expected, "page {n}");
        for product in results.items {
            assert!(product.description.contains("oak") || product.name.contains("Oak"));
            assert!(seen.insert(product.id), "{} twice (page {n})", product.id);
        }
    }
    assert_eq!(seen.len(), 301);
    let beyond = client.search("oak", page(45, 7)).await.expect("search");
    assert!(beyond.items.is_empty());
}

#[tokio::test]
async fn counting_stops_at_a_thousand_and_says_so() {
    let products: Vec<(String, String)> = (0..1_050)
        .map(|n| (format!("Lamp {n}"), "A lamp.".to_owned()))
        .collect();
    let (client, _db) = catalog_of(&products).await;
    let results = client.search("lamp", page(1, 20)).await.expect("search");
    assert_eq!((results.total, results.total_is_lower_bound), (1_000, true));
    assert_eq!(results.items.len(), 20);
    // Matches past the counted thousand are still served.
    let last = client.search("lamp", page(11, 100)).await.expect("search");
    assert_eq!(last.items.len(), 50);
    assert_eq!(last.items[49].id.to_string(), "p0000001");
    // Under the cap the count is exact.
    let one = client
        .search("lamp 1049", page(1, 20))
        .await
        .expect("search");
    assert_eq!((one.total, one.total_is_lower_bound), (1, false));
}

#[tokio::test]
async fn an_old_well_named_product_outranks_hundreds_of_newer_name_matches() {
    // The oldest product is called just "Oak"; 300 newer ones carry oak in longer names, more
    // than any bounded head of newest matches would hold, and 200 more mention it.
    let mut products = vec![("Oak".to_owned(), "A block of wood.".to_owned())];
    for n in 0..300 {
        products.push((
            format!("Oak Chair Model {n} With Arms"),
            "A chair.".to_owned(),
        ));
    }
    for n in 0..200 {
        products.push((format!("Stool {n}"), "Legs of oak.".to_owned()));
    }
    let (client, _db) = catalog_of(&products).await;
    let first = client.search("oak", page(1, 5)).await.expect("search");
    assert_eq!(first.items[0].id.to_string(), "p0000001");
    assert_eq!(first.total, 501);
    // Then the name matches (newest first among equals), and the mentions after all of them.
    assert_eq!(first.items[1].id.to_string(), "p0000301");
    let last = client.search("oak", page(6, 100)).await.expect("search");
    assert_eq!(last.items.len(), 1);
    assert!(last.items[0].name.starts_with("Stool"));
    let boundary = client.search("oak", page(4, 100)).await.expect("search");
    assert!(boundary.items[0].name.starts_with("Oak Chair"));
    assert!(boundary.items[1].name.starts_with("Stool"));
}

#[tokio::test]
async fn accents_match_with_or_without_them() {
    let products = vec![
        ("Crème Brûlée Torch".to_owned(), "For the café.".to_owned()),
        ("Creme Jug".to_owned(), "Plain.".to_owned()),
        ("Teapot".to_owned(), "Nothing accented.".to_owned()),
    ];
    let (client, _db) = catalog_of(&products).await;
    for (q, expected) in [
        ("creme", vec!["p0000002", "p0000001"]),
        ("CRÈME", vec!["p0000002", "p0000001"]),
        ("brulee", vec!["p0000001"]),
        ("Brûlée", vec!["p0000001"]),
        ("cafe", vec!["p0000001"]),
        ("café torch", vec!["p0000001"]),
    ] {
        let found = client.search(q, page(1, 10)).await.expect("search");
        assert_eq!(ids(&found.items), expected, "{q}");
    }
}

#[tokio::test]
async fn products_added_after_start_are_found() {
    use flotilla_chassis::transport::in_process::InProcessRegistry;
    use flotilla_chassis::trust::TrustPolicy;

    let (db, _guard) = flotilla_testkit::test_db("catalog").await;
    let registry = InProcessRegistry::default();
    let config = serde_json::json!({ "catalog": { "seed_products": 100 } });
    let service = flotilla_catalog::service(crate::harness::context(db.clone(), config, &registry))
        .await
        .expect("start");
    let trust = TrustPolicy {
        credentials: None,
        require_credential: false,
    };
    let (router, _openapi, _tasks) = service.into_parts(flotilla_chassis::Limits::default(), trust);
    registry.register(flotilla_catalog::NAME, router);
    let client =
        flotilla_catalog::client::CatalogClient::new(registry.transport(flotilla_catalog::NAME));
    let before = client.search("a", page(1, 1)).await.expect("search");
    assert!(before.total > 0);

    // Another instance (here: the seeder on the same database) appends products.
    let added = flotilla_catalog::seed::seed_products(&db, 1_000, flotilla_chassis::Currency::EUR)
        .await
        .expect("seed");
    assert_eq!(added, 1_000);
    let after = client.search("a", page(1, 1)).await.expect("search");
    assert!(
        after.total > before.total,
        "{} then {}",
        before.total,
        after.total
    );
    let newest = client.search("a", page(1, 100)).await.expect("search");
    assert!(newest.items.iter().any(|p| p.id.number() > 100));
}
