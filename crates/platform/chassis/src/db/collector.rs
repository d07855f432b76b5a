//! A service's connection pool as metrics, read at scrape time:
//! `flotilla_db_pool_connections{service,state}` (`idle`, `used`) and
//! `flotilla_db_pool_max_connections{service}`. (OpenTelemetry's `db.client.connection.count`
//! would become `db_client_connection_count`, which `promtool check metrics` refuses for a
//! gauge: `_count` belongs to histograms.)

use ::metrics::{describe_gauge, gauge};
use futures::future::BoxFuture;

use super::Db;
use crate::metrics::Collect;

/// The pool usage of one service's database.
pub struct PoolCollector {
    service: &'static str,
    db: Db,
}

impl PoolCollector {
    /// Collects `db`'s pool, recorded as `service`'s.
    pub fn new(service: &'static str, db: Db) -> Self {
        describe_gauge!(
            "flotilla_db_pool_connections",
            "Open database connections by state: idle in the pool, or used."
        );
        describe_gauge!(
            "flotilla_db_pool_max_connections",
            "The most connections the service's pool opens."
        );
        Self { service, db }
    }
}

impl Collect for PoolCollector {
    fn collect(&self) -> BoxFuture<'_, ()> {
        let usage = self.db.pool().usage();
        let count = |n: usize| n as f64;
        gauge!("flotilla_db_pool_connections", "service" => self.service, "state" => "idle")
            .set(count(usage.idle));
        gauge!("flotilla_db_pool_connections", "service" => self.service, "state" => "used")
            .set(count(usage.in_use()));
        gauge!("flotilla_db_pool_max_connections", "service" => self.service).set(count(usage.max));
        Box::pin(async {})
    }
}
