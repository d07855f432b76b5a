//! Who calls whom, and each service's RED, computed from spans: client spans give the edges
//! (caller → `server.address`, with rate, error rate and p99), server spans each service's
//! requests per second, errors and p50/p99, and a per-bucket request count for its chart. Pure,
//! so the numbers are tested without a fleet.

use std::collections::BTreeMap;

use crate::waterfall::Span;

/// Buckets of a service's request chart.
pub const BUCKETS: usize = 24;

/// One caller → upstream edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub caller: String,
    pub upstream: String,
    pub calls: u64,
    pub per_second: f64,
    pub error_percent: f64,
    pub p99_ms: f64,
}

/// One service's requests served.
#[derive(Debug, Clone, PartialEq)]
pub struct Red {
    pub service: String,
    pub requests: u64,
    pub per_second: f64,
    pub error_percent: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Requests per bucket of the window, oldest first ([`BUCKETS`] of them).
    pub buckets: Vec<u64>,
    /// Failed requests per bucket.
    pub error_buckets: Vec<u64>,
}

/// One service's server spans while they are counted: durations, failures, requests and
/// failures per bucket.
#[derive(Default)]
struct Served {
    durations: Vec<u64>,
    errors: u64,
    buckets: Vec<u64>,
    error_buckets: Vec<u64>,
}

/// What the spans say.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    pub edges: Vec<Edge>,
    pub red: Vec<Red>,
    /// The window the spans cover, in seconds.
    pub window_secs: f64,
}

/// True when `span` failed: an error status, or an HTTP answer of 500 or more.
fn failed(span: &Span) -> bool {
    span.status.code == "error"
        || span
            .attributes
            .get("http.response.status_code")
            .and_then(serde_json::Value::as_i64)
            .is_some_and(|status| status >= 500)
}

/// The `q` quantile (0..=1) of sorted `values`, nearest rank.
fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

impl CallStats {
    /// The statistics of `spans` (from any number of traces).
    pub fn of(spans: &[Span]) -> Self {
        let (start, end) = crate::waterfall::window(spans);
        let window_nanos = end.saturating_sub(start).max(1_000_000);
        let window_secs = window_nanos as f64 / 1e9;
        let mut edges: BTreeMap<(String, String), (Vec<u64>, u64)> = BTreeMap::new();
        let mut served: BTreeMap<String, Served> = BTreeMap::new();
        for span in spans {
            match span.kind.as_str() {
                "client" => {
                    let Some(upstream) = span
                        .attributes
                        .get("server.address")
                        .and_then(serde_json::Value::as_str)
                    else {
                        continue;
                    };
                    let entry = edges
                        .entry((span.service.clone(), upstream.to_owned()))
                        .or_default();
                    entry.0.push(span.duration_nanos);
                    entry.1 += u64::from(failed(span));
                }
                "server" => {
                    let entry = served
                        .entry(span.service.clone())
                        .or_insert_with(|| Served {
                            buckets: vec![0; BUCKETS],
                            error_buckets: vec![0; BUCKETS],
                            ..Served::default()
                        });
                    entry.durations.push(span.duration_nanos);
                    let bucket = (u128::from(span.start_unix_nanos.saturating_sub(start))
                        * BUCKETS as u128
                        / u128::from(window_nanos)) as usize;
                    let bucket = bucket.min(BUCKETS - 1);
                    entry.buckets[bucket] += 1;
                    if failed(span) {
                        entry.errors += 1;
                        entry.error_buckets[bucket] += 1;
                    }
                }
                _ => {}
            }
        }
        let edges = edges
            .into_iter()
            .map(|((caller, upstream), (mut durations, errors))| {
                durations.sort_unstable();
                let calls = durations.len() as u64;
                Edge {
                    caller,
                    upstream,
                    calls,
                    per_second: calls as f64 / window_secs,
                    error_percent: errors as f64 * 100.0 / calls.max(1) as f64,
                    p99_ms: quantile(&durations, 0.99),
                }
            })
            .collect();
        let red = served
            .into_iter()
            .map(
                |(
                    service,
                    Served {
                        mut durations,
                        errors,
                        buckets,
                        error_buckets,
                    },
                )| {
                    durations.sort_unstable();
                    let requests = durations.len() as u64;
                    Red {
                        service,
                        requests,
                        per_second: requests as f64 / window_secs,
                        error_percent: errors as f64 * 100.0 / requests.max(1) as f64,
                        p50_ms: quantile(&durations, 0.5),
                        p99_ms: quantile(&durations, 0.99),
                        buckets,
                        error_buckets,
                    }
                },
            )
            .collect();
        CallStats {
            edges,
            red,
            window_secs,
        }
    }
}

impl Red {
    /// The colour class of the service.
    pub fn colour(&self) -> &'static str {
        crate::waterfall::palette(&self.service)
    }

    /// The chart's line: `x,y` points on a 240×60 box, the busiest bucket at the top.
    pub fn points(&self) -> String {
        points(
            &self.buckets,
            self.buckets.iter().copied().max().unwrap_or(0),
        )
    }

    /// The failures' line on the same scale.
    pub fn error_points(&self) -> String {
        points(
            &self.error_buckets,
            self.buckets.iter().copied().max().unwrap_or(0),
        )
    }
}

/// `values` as SVG polyline points on a 240×60 box with `max` at the top.
fn points(values: &[u64], max: u64) -> String {
    let max = max.max(1) as f64;
    let step = 240.0 / (values.len().max(2) - 1) as f64;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                58.0 - (*v as f64 / max) * 54.0
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waterfall::SpanStatus;

    fn span(
        service: &str,
        kind: &str,
        upstream: Option<&str>,
        start_ms: u64,
        ms: u64,
        status: i64,
    ) -> Span {
        let mut attributes = serde_json::Map::new();
        if let Some(upstream) = upstream {
            attributes.insert("server.address".into(), upstream.into());
        }
        attributes.insert("http.response.status_code".into(), status.into());
        Span {
            span_id: format!("{service}{start_ms}"),
            parent_span_id: None,
            name: "x".into(),
            kind: kind.into(),
            service: service.into(),
            start_unix_nanos: start_ms * 1_000_000,
            duration_nanos: ms * 1_000_000,
            status: SpanStatus::default(),
            attributes,
        }
    }

    #[test]
    fn edges_and_red_come_from_client_and_server_spans() {
        let mut spans = Vec::new();
        for i in 0..10 {
            spans.push(span(
                "orders",
                "client",
                Some("payments"),
                i * 100,
                10 + i,
                if i == 0 { 503 } else { 200 },
            ));
            spans.push(span("payments", "server", None, i * 100, 5 + i, 200));
        }
        spans.push(span("orders", "internal", None, 0, 1000, 200));
        let stats = CallStats::of(&spans);
        assert_eq!(stats.edges.len(), 1);
        let edge = &stats.edges[0];
        assert_eq!(
            (edge.caller.as_str(), edge.upstream.as_str(), edge.calls),
            ("orders", "payments", 10)
        );
        assert!((edge.error_percent - 10.0).abs() < 1e-9);
        assert!((edge.p99_ms - 19.0).abs() < 1e-9);
        assert!((stats.window_secs - 1.0).abs() < 1e-9);
        assert!((edge.per_second - 10.0).abs() < 1e-9);
        let red = &stats.red[0];
        assert_eq!((red.service.as_str(), red.requests), ("payments", 10));
        assert!((red.p50_ms - 9.0).abs() < 1e-9);
        assert_eq!(red.buckets.iter().sum::<u64>(), 10);
        assert_eq!(red.points().split(' ').count(), BUCKETS);
    }

    #[test]
    fn no_spans_no_numbers() {
        let stats = CallStats::of(&[]);
        assert!(stats.edges.is_empty() && stats.red.is_empty());
    }
}
