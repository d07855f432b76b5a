//! A service's connection pool as metrics, read at scrape time (OpenTelemetry's
//! `db.client.connection.*` names in Prometheus form): `db_client_connection_count{service,state}`
//! (`idle`, `used`) and `db_client_connection_max{service}`.

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
            "db_client_connection_count",
            "Open database connections by state: idle in the pool, or used."
        );
        describe_gauge!(
            "db_client_connection_max",
            "The most connections the service's pool opens."
        );
        Self { service, db }
    }
}

impl Collect for PoolCollector {
    fn collect(&self) -> BoxFuture<'_, ()> {
        let usage = self.db.pool().usage();
        let count = |n: usize| n as f64;
        gauge!("db_client_connection_count", "service" => self.service, "state" => "idle")
            .set(count(usage.idle));
        gauge!("db_client_connection_count", "service" => self.service, "state" => "used")
            .set(count(usage.in_use()));
        gauge!("db_client_connection_max", "service" => self.service).set(count(usage.max));
        Box::pin(async {})
    }
}
