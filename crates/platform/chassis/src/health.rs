//! `/healthz` (the process is alive) and `/readyz` (it can do useful work: its database answers).
//! Load balancers and `flotilla status` read these; they need no credential.
//!
//! The database must answer within [`READY_WITHIN`]: a probe is answered 503 by then rather
//! than held for the pool's acquire timeout when the link to the database has gone silent (an
//! outside tester measured 10 s), so that it is an answer, not a probe timeout, for the
//! balancer's health checks (1 s) and Kubernetes' (2 s in the manifests).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::time::Duration;

use crate::db::Db;

/// How long `/readyz` waits for the database's answer.
pub const READY_WITHIN: Duration = Duration::from_millis(800);

/// Routes for the two probes, checking `db` for readiness.
pub fn routes(service: &'static str, db: Option<Db>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(move || async move { Json(json!({"status": "ok", "service": service})) }),
        )
        .route("/readyz", get(readyz))
        .with_state((service, db))
}

async fn readyz(State((service, db)): State<(&'static str, Option<Db>)>) -> Response {
    let db_ok = match &db {
        Some(db) => matches!(
            tokio::time::timeout(READY_WITHIN, db.ping()).await,
            Ok(Ok(()))
        ),
        None => true,
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if db_ok { "ready" } else { "not ready" },
        "service": service,
        "checks": { "database": if db.is_none() { "none" } else if db_ok { "ok" } else { "failing" } },
    });
    (status, Json(body)).into_response()
}
