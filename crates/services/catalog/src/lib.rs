//! The catalog service: products, categories and prices, product pictures and full-text search.
//!
//! Everything it serves is public and read-only. On first start it seeds a deterministic
//! catalog (see [`seed`]), so every Flotilla installation sells the same things and benchmarks
//! are comparable. Other services use only [`contract`] and [`client`]; `api` (handlers),
//! `domain` (rules), `error` (refusals), `image` (pictures), `relevance` (ranking) and `store`
//! (SQL and the search index) are private.

pub mod client;
pub mod contract;
pub mod seed;

mod api;
mod domain;
mod error;
mod image;
mod relevance;
mod store;

use flotilla_chassis::{Currency, Db, Service, ServiceContext, ServiceSpec, StartError};
use serde::Deserialize;

/// The service's name: its configuration section, database name and gateway prefix.
pub const NAME: &str = "catalog";

/// How hosts start the catalog.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// The `[catalog]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CatalogConfig {
    /// Products seeded on first start, when the catalog is empty (default 1000).
    pub seed_products: u64,
    /// Largest `page_size` the list and search endpoints accept (default 100).
    pub max_page_size: u32,
    /// ISO 4217 code of the currency seeded prices are in (default `EUR`).
    pub currency: String,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            seed_products: 1000,
            max_page_size: 100,
            currency: "EUR".to_owned(),
        }
    }
}

/// Brings `db` to the catalog's current schema. [`service`] does this at start; tools and tests
/// that seed a database directly call it first.
pub async fn migrate(db: &Db) -> Result<(), sqlx::Error> {
    db.migrate(store::MIGRATIONS).await
}

/// Starts the catalog: migrates its database, seeds it when empty and returns its routes.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let db = ctx.db()?;
    let config: CatalogConfig = ctx.config()?;
    let currency = Currency::parse(&config.currency)
        .map_err(|e| StartError::Other(format!("catalog.currency: {e}")))?;
    if config.max_page_size == 0 {
        return Err(StartError::Other(
            "catalog.max_page_size must be at least 1".to_owned(),
        ));
    }
    migrate(&db).await?;
    seed::ensure_seeded(&db, config.seed_products, currency).await?;
    // Built before the first request so that no search pays for reading the whole catalog.
    let store = store::CatalogStore::new(db.clone());
    store.catch_up_index().await?;
    let api = api::router(api::AppState {
        store,
        max_page_size: config.max_page_size,
    });
    Ok(Service::new(NAME, api, Some(db)))
}
