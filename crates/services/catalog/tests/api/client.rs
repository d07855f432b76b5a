//! The typed client other services use, against a catalog wired in-process exactly as the
//! `flotilla` binary wires it: every method, its query encoding and its 404s.

use flotilla_catalog::client::CatalogClient;
use flotilla_chassis::Limits;
use flotilla_chassis::pagination::PageParams;
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::trust::TrustPolicy;
use flotilla_testkit::{TestDatabases, test_db};
use serde_json::json;

use crate::harness::{SEEDED, context};

/// A catalog registered in an in-process registry, and a client to it. The database guard
/// must outlive the client.
async fn in_process_catalog() -> (CatalogClient, TestDatabases) {
    let (db, guard) = test_db("catalog").await;
    let registry = InProcessRegistry::default();
    let config = json!({ "catalog": { "seed_products": SEEDED, "max_page_size": 30 } });
    let ctx = context(db, config, &registry);
    let service = flotilla_catalog::service(ctx).await.expect("start");
    let trust = TrustPolicy {
        credentials: None,
        require_credential: false,
    };
    let (router, _openapi, _tasks) = service.into_parts(Limits::default(), trust);
    registry.register(flotilla_catalog::NAME, router);
    let client = CatalogClient::new(registry.transport(flotilla_catalog::NAME));
    (client, guard)
}

fn page(page: u32, page_size: u32) -> PageParams {
    PageParams {
        page: Some(page),
        page_size: Some(page_size),
    }
}

#[tokio::test]
async fn every_client_method_works_in_process() {
    let (client, _dir) = in_process_catalog().await;

    let second = client.list(page(2, 10), None).await.expect("list");
    assert_eq!(
        (second.total, second.items[0].id.to_string()),
        (SEEDED, "p0000011".to_owned())
    );
    let too_big = client.list(page(1, 31), None).await.expect_err("over max");
    assert_eq!(too_big.status().map(|s| s.as_u16()), Some(400));

    let categories = client.categories().await.expect("categories");
    assert_eq!(
        categories.iter().map(|c| c.product_count).sum::<u64>(),
        SEEDED
    );
    let category = &categories[0];
    let in_category = client
        .list(PageParams::default(), Some(&category.slug))
        .await
        .expect("category");
    assert_eq!(in_category.total, category.product_count);
    let unknown = client
        .list(PageParams::default(), Some("no such & thing"))
        .await;
    assert!(unknown.expect_err("unknown category").is_not_found());

    let product = client.product("p0000005").await.expect("product");
    assert_eq!(product.id.to_string(), "p0000005");
    for id in ["p0000999", "../categories", "p0000005/image.svg", "a b?c#d"] {
        let err = client.product(id).await.expect_err("unknown");
        assert!(err.is_not_found(), "{id:?}: {err}");
    }

    let found = client
        .search(&format!("{} & *\"", product.name), PageParams::default())
        .await
        .expect("search");
    assert!(found.items.iter().any(|p| p.id == product.id));

    let featured = client.featured(3).await.expect("featured");
    assert_eq!(featured.len(), 3);
    let over = client.featured(25).await.expect_err("over max");
    assert_eq!(over.status().map(|s| s.as_u16()), Some(400));

    let ids = vec![
        "p0000007".to_owned(),
        "p0009999".to_owned(),
        product.id.to_string(),
    ];
    let looked_up = client.lookup(&ids).await.expect("lookup");
    assert_eq!(looked_up.len(), 2);
    assert_eq!(looked_up[1], product);
}
