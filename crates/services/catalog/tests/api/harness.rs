//! What every catalog test starts from: a fleet with a small seeded catalog and terse ways to
//! ask it things and check its problems.

use flotilla_catalog::contract::Product;
use flotilla_chassis::clock::SystemClock;
use flotilla_chassis::transport::Peers;
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::{Db, ServiceContext};
use flotilla_testkit::{TestFleet, expect_json};
use reqwest::{Response, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use flotilla_testkit::expect_problem;

/// Products in every test fleet's catalog.
pub const SEEDED: u64 = 50;

/// A fleet running only the catalog, seeded with [`SEEDED`] products.
pub async fn fleet() -> TestFleet {
    TestFleet::of(&[flotilla_catalog::SPEC])
        .config("catalog", json!({ "seed_products": SEEDED }))
        .start()
        .await
}

/// `GET path` on the catalog, with a service credential.
pub async fn get(fleet: &TestFleet, path: &str) -> Response {
    fleet
        .client(flotilla_catalog::NAME)
        .get(path)
        .send()
        .await
        .expect("request")
}

/// `GET path`, asserting 200 and decoding the body.
pub async fn ok<T: serde::de::DeserializeOwned>(fleet: &TestFleet, path: &str) -> T {
    expect_json(get(fleet, path).await, StatusCode::OK).await
}

/// The ids of `products`, in order.
pub fn ids(products: &[Product]) -> Vec<String> {
    products.iter().map(|p| p.id.to_string()).collect()
}

/// A context for starting the catalog by hand on `db` with `config` (JSON of the whole
/// configuration), its peers in `registry`: what a host does, for tests the fleet cannot express.
pub fn context(db: Db, config: serde_json::Value, registry: &InProcessRegistry) -> ServiceContext {
    ServiceContext::new(
        flotilla_catalog::NAME,
        figment::Figment::from(figment::providers::Serialized::defaults(config)),
        Some(db),
        Peers::new(registry.clone(), HashMap::new()),
        Arc::new(SystemClock),
        CancellationToken::new(),
    )
}
