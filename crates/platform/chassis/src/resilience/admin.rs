//! `GET /admin/resilience`, in every service (admin role only): the policy in force for each
//! upstream the service calls, with its breaker's state and counters, its bulkhead's load, what
//! its retries did, and, for an upstream reached over the network, its instances as the
//! balancer sees them (outlier ejections, latency, in-flight requests). Through the gateway:
//! `/api/<service>/admin/resilience`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::breaker::BreakerSnapshot;
use super::bulkhead::BulkheadSnapshot;
use super::retry::RetryStats;
use super::stack::{Resilience, UpstreamPolicy};
use crate::caller::Admin;
use crate::transport::Peers;
use crate::transport::read_cache::ReadCacheStats;

/// The resilience of the instance that answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResilienceReport {
    /// The calling service.
    pub service: String,
    /// Which instance answered (each keeps its own breakers): `pid <n>`.
    pub instance: String,
    /// Each upstream it has called or built a client for, by name.
    pub upstreams: Vec<UpstreamReport>,
}

/// One upstream as this service sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamReport {
    /// The upstream service.
    pub upstream: String,
    /// `in_process` or `network`.
    pub reached: &'static str,
    /// The policy in force (`[resilience]` merged with `[resilience.upstreams.<name>]`).
    pub policy: UpstreamPolicy,
    /// The circuit breaker.
    pub breaker: BreakerSnapshot,
    /// The bulkhead.
    pub bulkhead: BulkheadSnapshot,
    /// What the retry layer did.
    pub retries: RetryStats,
    /// What the cache of public reads did.
    pub read_cache: ReadCacheStats,
    /// Over the network: the balancer's view of each instance.
    #[schema(value_type = Option<Object>)]
    pub instances: Option<serde_json::Value>,
}

/// The route, to merge into a service's API: `resilience` is the service's, `peers` the
/// peers it applies to.
pub fn routes(resilience: Resilience, peers: Peers) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(report))
        .with_state((resilience, peers))
}

/// The policy, breaker, bulkhead and retry counters of every upstream this instance calls.
#[utoipa::path(get, path = "/admin/resilience", tag = "admin", security(("bearerAuth" = ["admin"])),
    responses((status = 200, body = ResilienceReport), (status = 401), (status = 403)))]
async fn report(
    _: Admin,
    State((resilience, peers)): State<(Resilience, Peers)>,
) -> axum::Json<ResilienceReport> {
    axum::Json(build(&resilience, &peers))
}

/// The report of `resilience` applied to `peers` (also what the gateway shows of its own
/// upstreams).
pub fn build(resilience: &Resilience, peers: &Peers) -> ResilienceReport {
    let upstreams = resilience
        .snapshot()
        .into_iter()
        .map(|view| UpstreamReport {
            reached: if peers.is_remote(&view.upstream) {
                "network"
            } else {
                "in_process"
            },
            instances: peers.instances(&view.upstream),
            upstream: view.upstream,
            policy: view.policy,
            breaker: view.breaker,
            bulkhead: view.bulkhead,
            retries: view.retries,
            read_cache: view.read_cache,
        })
        .collect();
    ResilienceReport {
        service: resilience.caller().to_owned(),
        instance: format!("pid {}", std::process::id()),
        upstreams,
    }
}
