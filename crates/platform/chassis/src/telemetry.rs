//! Telemetry: the spans every hop records, with W3C trace context carried between them.
//!
//! A request served is a **server** span, a call to another service a **client** span whose
//! context travels in `traceparent` and becomes the parent of the callee's server span, so one
//! click is one trace across every service, in one process as in a fleet. Names and attributes
//! follow the OpenTelemetry semantic conventions (`http.request.method`, `http.route`,
//! `http.response.status_code`, `server.address`, ...); finished spans go to the sinks
//! installed once per process: the bounded [`store`] (what the ops console reads) and, when
//! configured, an exporter.
//!
//! Recorded here rather than through `tracing-opentelemetry`: a span's ids must be the ones the
//! request context already propagates ([`crate::request_context`]: the server span *is* the
//! hop's context), the clock must stay the chassis's (a simulation moves it), and a span costs
//! one allocation and one lock instead of the bridge's per-field allocations, which matters on
//! the gateway's path (issue 14: at most 10 % of req/s for tracing at 100 % sampling). Logs stay
//! on `tracing`, and carry the trace and span ids from the request's `tracing` span.

mod limits;
pub mod otlp;
mod persist;
pub mod sampling;
pub mod span;
pub mod store;

use std::sync::{Arc, OnceLock};

pub use limits::StoreLimits;
pub use sampling::Sampler;
pub use span::{Span, SpanKind, SpanRecord, Status, Value};
pub use store::SpanStore;

use crate::trace_context::TraceParent;

/// Where finished spans go, besides the store (an exporter).
pub trait SpanSink: Send + Sync + 'static {
    /// Takes one finished span; must not block.
    fn record(&self, span: &Arc<SpanRecord>);
}

/// The process's telemetry: how traces are sampled and where finished spans go.
pub struct Telemetry {
    sampler: Sampler,
    store: Arc<SpanStore>,
    sinks: Vec<Box<dyn SpanSink>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("sampler", &self.sampler)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Telemetry sampling with `sampler` into `store`.
    pub fn new(sampler: Sampler, store: Arc<SpanStore>) -> Self {
        Self {
            sampler,
            store,
            sinks: Vec::new(),
        }
    }

    /// Also sends every finished span to `sink`.
    pub fn with_sink(mut self, sink: impl SpanSink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// The store of recent spans.
    pub fn store(&self) -> &Arc<SpanStore> {
        &self.store
    }

    fn finish(&self, span: SpanRecord) {
        let span = Arc::new(span);
        for sink in &self.sinks {
            sink.record(&span);
        }
        self.store.record(span);
    }
}

static INSTALLED: OnceLock<Telemetry> = OnceLock::new();

/// Makes `telemetry` the process's, once; `Err` gives it back when one is installed already
/// (the first stays: spans already under way finish into it).
pub fn install(telemetry: Telemetry) -> Result<(), Telemetry> {
    INSTALLED.set(telemetry)
}

/// The process's telemetry, if one was installed: without, nothing is recorded and trace
/// context is still propagated.
pub fn installed() -> Option<&'static Telemetry> {
    INSTALLED.get()
}

/// The context of a new trace starting here: random ids, sampled as the installed sampler
/// decides (always, with none installed, so that a downstream that records sees the trace).
pub fn new_root() -> TraceParent {
    let mut root = TraceParent::root();
    if let Some(telemetry) = installed() {
        root.flags = u8::from(telemetry.sampler.samples(root.trace_id));
    }
    root
}

tokio::task_local! {
    // The server span of the request being served on this task, so that what runs inside
    // (the router, once it has matched a route) can name it without a handle passed down.
    static SERVER_SPAN: std::cell::RefCell<Span>;
}

/// Runs `fut` with `span` as the current server span, recording it when `fut` is done (or
/// dropped).
pub async fn in_server_span<F: std::future::Future>(span: Span, fut: F) -> F::Output {
    SERVER_SPAN.scope(std::cell::RefCell::new(span), fut).await
}

/// Changes the current server span with `f`, when there is one being recorded.
pub fn annotate_server_span(f: impl FnOnce(&mut Span)) {
    // `try_with` fails outside a request; a borrow fails only if `f` were to re-enter.
    let _ = SERVER_SPAN.try_with(|span| {
        if let Ok(mut span) = span.try_borrow_mut()
            && span.is_recording()
        {
            f(&mut span);
        }
    });
}

/// `[telemetry]` configuration (README, "Telemetry").
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Share of the traces starting in this process that are recorded, 0 to 1; a trace that
    /// arrives keeps its caller's decision. `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`
    /// override it.
    pub sample_ratio: f64,
    /// `[telemetry.store]`: how many spans are kept, and how long.
    pub store: StoreLimits,
    /// Where spans are also sent with OTLP/HTTP (a base URL: `/v1/traces` is appended), as
    /// `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` say; none by default.
    pub otlp_endpoint: Option<String>,
    /// A SQLite file the store also keeps its spans in (`--telemetry-db`), so that a restart
    /// keeps them; memory only when `None` (the default).
    pub db: Option<std::path::PathBuf>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            sample_ratio: 1.0,
            store: StoreLimits::default(),
            otlp_endpoint: None,
            db: None,
        }
    }
}

impl TelemetryConfig {
    /// The sampler, with the standard OpenTelemetry variables (`always_on`, `always_off`,
    /// `traceidratio` and their `parentbased_` forms; `OTEL_TRACES_SAMPLER_ARG` the ratio)
    /// taking precedence over `sample_ratio`, as every OpenTelemetry SDK does.
    pub fn sampler(&self, env: impl Fn(&str) -> Option<String>) -> Result<Sampler, String> {
        let ratio = match env("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            None | Some("") => self.sample_ratio,
            Some("always_on" | "parentbased_always_on") => 1.0,
            Some("always_off" | "parentbased_always_off") => 0.0,
            Some("traceidratio" | "parentbased_traceidratio") => {
                match env("OTEL_TRACES_SAMPLER_ARG") {
                    None => 1.0,
                    Some(arg) => arg.trim().parse::<f64>().map_err(|_| {
                        format!("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, not {arg:?}")
                    })?,
                }
            }
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER={other:?} is not supported here (always_on, always_off, \
                     traceidratio and their parentbased_ forms are)"
                ));
            }
        };
        Sampler::ratio(ratio).map_err(|e| format!("[telemetry] sample_ratio: {e}"))
    }

    /// Installs this process's telemetry from this configuration, unless one is installed
    /// already (a second host in one process shares the first one's); returns the installed.
    /// `credential` goes with spans exported to a Flotilla gateway ([`otlp::GATEWAY_RECEIVER`]).
    /// With `db`, the store is opened on that file first (its spans read back); a file that
    /// cannot be used is an `Err`.
    pub async fn install(
        &self,
        credential: Option<otlp::Credential>,
    ) -> Result<&'static Telemetry, String> {
        if self.store.max_spans == 0 {
            return Err("[telemetry.store] max_spans must be at least 1".into());
        }
        if let Some(installed) = installed() {
            return Ok(installed);
        }
        let env = |name: &str| std::env::var(name).ok();
        let sampler = self.sampler(env)?;
        let target = self.otlp_target(env)?;
        let store = match &self.db {
            None => SpanStore::new(self.store),
            Some(path) => {
                let store = SpanStore::open(self.store, path).await?;
                tracing::info!(
                    path = %path.display(),
                    spans = store.len(),
                    "telemetry database opened",
                );
                store
            }
        };
        let store = Arc::new(store);
        let mut telemetry = Telemetry::new(sampler, store);
        if let Some(mut target) = target {
            target.credential = credential;
            tracing::info!(url = %target.url, "exporting spans with OTLP/HTTP");
            telemetry = telemetry.with_sink(otlp::OtlpExporter::start(target));
        }
        let _ = install(telemetry);
        installed().ok_or_else(|| "telemetry could not be installed".to_owned())
    }

    /// Where spans are exported: `otlp_endpoint`, else the standard variables
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, their `_HEADERS`
    /// and `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub fn otlp_target(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<otlp::OtlpTarget>, String> {
        let traces_url = match &self.otlp_endpoint {
            Some(_) => None,
            None => env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        };
        let endpoint = self
            .otlp_endpoint
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let headers =
            env("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"));
        let timeout =
            env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT"));
        otlp::OtlpTarget::parse(
            endpoint.as_deref(),
            traces_url.as_deref(),
            headers.as_deref(),
            timeout.as_deref(),
        )
    }
}

/// Runs `work` as an internal span of `service` named `name` (with `attributes`), child of the
/// current request's span: the calls and events `work` makes are its children. Outside a
/// request, `work` just runs.
pub async fn in_span<F: std::future::Future>(
    name: impl Into<std::borrow::Cow<'static, str>>,
    service: &'static str,
    attributes: &[(&'static str, Value)],
    work: F,
) -> F::Output {
    use crate::request_context::{self, RequestContext};
    let Some(context) = request_context::current() else {
        return work.await;
    };
    let trace = context.trace.child();
    let mut span = Span::start(
        SpanKind::Internal,
        name,
        service,
        trace,
        Some(context.trace.span_id),
    );
    for (key, value) in attributes {
        span.set(key, value.clone());
    }
    let scoped = RequestContext { trace, ..context };
    let output = request_context::scope(scoped, work).await;
    drop(span);
    output
}

#[cfg(test)]
mod tests {
    use super::TelemetryConfig;

    #[test]
    fn otel_variables_override_the_configured_ratio() {
        let config = TelemetryConfig {
            sample_ratio: 0.0,
            ..TelemetryConfig::default()
        };
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let id = u128::MAX;
        assert!(!config.sampler(env(&[])).expect("valid").samples(id));
        assert!(
            config
                .sampler(env(&[("OTEL_TRACES_SAMPLER", "parentbased_always_on")]))
                .expect("valid")
                .samples(id)
        );
        let half = config
            .sampler(env(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ]))
            .expect("valid");
        assert!(half.samples(1) && !half.samples(u128::from(u64::MAX)));
        for bad in [
            &[("OTEL_TRACES_SAMPLER", "jaeger_remote")][..],
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "lots"),
            ],
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ],
        ] {
            assert!(config.sampler(env(bad)).is_err(), "{bad:?}");
        }
    }
}
