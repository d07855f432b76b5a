//! The resilience layers as metrics, read at scrape time from the counters and states they
//! already keep for `/admin/resilience` (so the hot path pays nothing more):
//!
//! - `flotilla_breaker_state{service,upstream,state}`: 1 for the state a call would meet now
//!   (`closed`, `open`, `half_open`), 0 for the others;
//! - `flotilla_breaker_opened_total`, `flotilla_breaker_rejections_total`;
//! - `flotilla_retries_total`, `flotilla_retry_budget_refusals_total`;
//! - `flotilla_bulkhead_in_flight`, `flotilla_bulkhead_rejections_total`;
//! - the gateway's load shedding: `flotilla_shed_requests_total`, `flotilla_requests_in_flight`.

use ::metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use futures::future::BoxFuture;
use std::sync::Arc;

use super::breaker::BreakerState;
use super::shedding::Shedding;
use super::stack::Resilience;
use crate::metrics::Collect;

/// The breaker, retry and bulkhead series of one caller's stacks.
pub struct ResilienceCollector {
    resilience: Resilience,
}

impl ResilienceCollector {
    /// Collects `resilience`'s stacks (every upstream it has called).
    pub fn new(resilience: Resilience) -> Self {
        describe_gauge!(
            "flotilla_breaker_state",
            "Circuit breaker state per caller and upstream: 1 for the current state, 0 otherwise."
        );
        describe_counter!(
            "flotilla_breaker_opened_total",
            Unit::Count,
            "Times the circuit breaker opened."
        );
        describe_counter!(
            "flotilla_breaker_rejections_total",
            Unit::Count,
            "Calls failed fast by an open (or saturated half-open) circuit breaker."
        );
        describe_counter!(
            "flotilla_retries_total",
            Unit::Count,
            "Retries sent (idempotent requests only)."
        );
        describe_counter!(
            "flotilla_retry_budget_refusals_total",
            Unit::Count,
            "Retries worth making that the retry budget refused."
        );
        describe_gauge!(
            "flotilla_bulkhead_in_flight",
            "Calls holding a bulkhead slot now."
        );
        describe_counter!(
            "flotilla_bulkhead_rejections_total",
            Unit::Count,
            "Calls refused at once because the bulkhead was full."
        );
        Self { resilience }
    }
}

impl Collect for ResilienceCollector {
    fn collect(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let service = self.resilience.caller().to_owned();
            for view in self.resilience.snapshot() {
                let labels = [
                    ("service", service.clone()),
                    ("upstream", view.upstream.clone()),
                ];
                for (state, name) in [
                    (BreakerState::Closed, "closed"),
                    (BreakerState::Open, "open"),
                    (BreakerState::HalfOpen, "half_open"),
                ] {
                    let value = if view.breaker.state == state {
                        1.0
                    } else {
                        0.0
                    };
                    gauge!("flotilla_breaker_state", "service" => service.clone(),
                        "upstream" => view.upstream.clone(), "state" => name)
                    .set(value);
                }
                counter!("flotilla_breaker_opened_total", &labels)
                    .absolute(view.breaker.times_opened);
                counter!("flotilla_breaker_rejections_total", &labels)
                    .absolute(view.breaker.rejected);
                counter!("flotilla_retries_total", &labels).absolute(view.retries.retries);
                counter!("flotilla_retry_budget_refusals_total", &labels)
                    .absolute(view.retries.refused_by_budget);
                gauge!("flotilla_bulkhead_in_flight", &labels)
                    .set(f64::from(view.bulkhead.in_flight));
                counter!("flotilla_bulkhead_rejections_total", &labels)
                    .absolute(view.bulkhead.rejected);
            }
        })
    }
}

/// The load shedding of one server (the gateway).
pub struct SheddingCollector {
    service: &'static str,
    shedding: Arc<Shedding>,
}

impl SheddingCollector {
    /// Collects `shedding`, recorded as `service`'s.
    pub fn new(service: &'static str, shedding: Arc<Shedding>) -> Self {
        describe_counter!(
            "flotilla_shed_requests_total",
            Unit::Count,
            "Requests refused with 503 because the server was at its cap of requests in flight."
        );
        describe_gauge!(
            "flotilla_requests_in_flight",
            "Requests being served now, under the load-shedding cap."
        );
        Self { service, shedding }
    }
}

impl Collect for SheddingCollector {
    fn collect(&self) -> BoxFuture<'_, ()> {
        let snapshot = self.shedding.snapshot();
        counter!("flotilla_shed_requests_total", "service" => self.service).absolute(snapshot.shed);
        gauge!("flotilla_requests_in_flight", "service" => self.service)
            .set(f64::from(snapshot.in_flight));
        Box::pin(async {})
    }
}
