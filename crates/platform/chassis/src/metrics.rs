//! Prometheus metrics for every process (issue 14, item 3): the process's recorder, the
//! collectors that read state at scrape time, and the text a scrape gets.
//!
//! Code records through the `metrics` facade (CRATES.md row 11), so a library needs no handle
//! passed in; one `metrics-exporter-prometheus` recorder per process holds the series, built
//! without its own HTTP listener: each host serves [`Metrics::render`] on its own routes. Every
//! series carries a `service` label — the service whose code recorded it, `gateway` for the
//! gateway — so one process running every service (`flotilla run`) is one scrape, and
//! `?service=<name>` (or a service router's own `/metrics`) is the view of one service.
//!
//! Two ways in, chosen by cost:
//! - **on the hot path**, handles resolved once and kept ([`http_server`] per route,
//!   [`http_client`] per caller and upstream, the relay and consumer per event type): a
//!   request costs an atomic push into a histogram, never a label string or a registry lookup;
//! - **at scrape time**, [`Collect`]ors read what the code already counts (breaker state,
//!   retry and bulkhead counters, pool usage, outbox backlog, dead letters) and set gauges and
//!   counters from it: no cost between scrapes, and no second counter beside the first.
//!
//! Seams for the rest of issue 14: a telemetry store can keep samples by calling
//! [`Metrics::render`] (or be added as a second recorder with `metrics-util`'s fan-out), and
//! the ops console reads the same text through the gateway's admin route.

use ::metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

mod exposition;
pub mod http_client;
pub mod http_server;

pub use exposition::only_service;

/// Latency buckets, in seconds, of every `_seconds` histogram: from 100 µs (an in-process call
/// through the gateway) to 10 s (the default request timeout), about ×2.5 apart.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often the recorder's upkeep runs (idle histograms drained even when nobody scrapes).
const UPKEEP: Duration = Duration::from_secs(5);

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that sets gauges and counters from state it reads when a scrape asks.
pub trait Collect: Send + Sync + 'static {
    /// Reads the state and records it (`gauge!(…).set`, `counter!(…).absolute`).
    fn collect(&self) -> BoxFuture<'_, ()>;
}

/// The metrics of one host: the process's recorder and the collectors of what the host runs.
/// Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    handle: Option<PrometheusHandle>,
    collectors: Arc<Mutex<Vec<Arc<dyn Collect>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("recording", &self.handle.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics of a new host, with no collectors yet. The first call in a process installs
    /// the Prometheus recorder as the `metrics` facade's global one; handles resolved before
    /// it record nothing, so hosts (and the test kit) make this before starting services.
    pub fn new() -> Self {
        Self {
            handle: recorder().clone(),
            collectors: Arc::default(),
        }
    }

    /// Adds `collector`, run before every render of this host's metrics.
    pub fn add_collector(&self, collector: impl Collect) {
        self.collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(collector));
    }

    /// The exposition text: every series of the process, or only `service`'s.
    pub async fn render(&self, service: Option<&str>) -> String {
        let collectors: Vec<Arc<dyn Collect>> = self
            .collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for collector in collectors {
            collector.collect().await;
        }
        let Some(handle) = &self.handle else {
            return String::new();
        };
        let text = handle.render();
        match service {
            Some(service) => only_service(&text, service),
            None => text,
        }
    }

    /// `GET /metrics` (`?service=<name>` for one service's series), for a metrics listener.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(self.clone())
    }

    /// `GET /metrics` with only `service`'s series: each service's router has one.
    pub fn service_routes<S: Clone + Send + Sync + 'static>(
        &self,
        service: &'static str,
    ) -> axum::routing::MethodRouter<S> {
        let metrics = self.clone();
        get(move || {
            let metrics = metrics.clone();
            async move { exposition(metrics.render(Some(service)).await) }
        })
    }
}

/// `?service=<name>`.
#[derive(Debug, Deserialize)]
struct ScrapeParams {
    service: Option<String>,
}

async fn scrape(State(metrics): State<Metrics>, Query(params): Query<ScrapeParams>) -> Response {
    exposition(metrics.render(params.service.as_deref()).await)
}

/// `text` as a scrape's answer.
pub fn exposition(text: String) -> Response {
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The process's recorder, installed on first use; `None` when another recorder was installed
/// first (then nothing Flotilla records is kept, and `/metrics` is empty).
fn recorder() -> &'static Option<PrometheusHandle> {
    static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS);
        let builder = match builder {
            Ok(builder) => builder,
            Err(err) => {
                tracing::error!(error = %err, "metrics: invalid buckets; not recording");
                return None;
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(err) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %err, "metrics: another recorder is installed; not recording");
            return None;
        }
        let upkeep = handle.clone();
        // A thread of its own: the recorder outlives any one tokio runtime (tests make many).
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "metrics: no upkeep thread; histograms drain at scrapes only");
        }
        Some(handle)
    })
}
