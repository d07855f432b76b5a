//! Full-text search: relevance, prefixes, and input that tries to be SQL or FTS syntax.

use flotilla_catalog::contract::Product;
use flotilla_chassis::pagination::Page;
use reqwest::StatusCode;

use crate::helpers::{SEEDED, expect_problem, fleet, get, ids, ok};

#[tokio::test]
async fn search_ranks_matches_by_relevance() {
    let fleet = fleet().await;
    let product: Product = ok(&fleet, "/products/p0000017").await;
    let q = product.name.replace(' ', "+");
    let found: Page<Product> = ok(&fleet, &format!("/search?q={q}&page_size=100")).await;
    assert!(found.total >= 1 && found.total <= SEEDED);
    assert_eq!(found.items.len() as u64, found.total);
    assert!(ids(&found.items).contains(&"p0000017"));
    // Products carrying every word of the name in the name itself outrank mere mentions.
    assert_eq!(found.items[0].name, product.name);

    // A prefix of one word is enough, in any case.
    let word = product.name.split(' ').next_back().expect("a word");
    let prefix: String = word.chars().take(4).collect::<String>().to_uppercase();
    let by_prefix: Page<Product> = ok(&fleet, &format!("/search?q={prefix}&page_size=100")).await;
    assert!(ids(&by_prefix.items).contains(&"p0000017"));

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
