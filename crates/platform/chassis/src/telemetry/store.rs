//! The recent spans of this process, kept in memory within a bound by count and by age: what
//! the ops console and the tests read, with nothing to install; with `--telemetry-db`, also
//! in a SQLite file ([`super::persist`]) that the next start reads back.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::limits::{StoreLimits, now_unix_nanos};
use super::span::{SpanKind, SpanRecord, Status};

/// Recent spans, oldest first by the time they ended.
#[derive(Debug)]
pub struct SpanStore {
    limits: StoreLimits,
    spans: Mutex<VecDeque<Arc<SpanRecord>>>,
    evicted: AtomicU64,
    file: Option<super::persist::Persister>,
}

/// One trace, summed up for a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TraceSummary {
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// The name of its earliest span kept (its root, unless the root was evicted).
    pub root: String,
    /// The service that recorded that span.
    pub service: String,
    /// That span's `url.path`, when it served or made an HTTP request (its name is the route
    /// template, `/api/{*rest}` at the gateway; this is what was asked for, `/api/orders`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// From its first start to its last end, in nanoseconds.
    pub duration_nanos: u64,
    /// Spans kept of it.
    pub spans: usize,
    /// Whether any of them failed.
    pub failed: bool,
}

impl SpanStore {
    /// An empty store within `limits`.
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            spans: Mutex::new(VecDeque::new()),
            evicted: AtomicU64::new(0),
            file: None,
        }
    }

    /// A store within `limits` that also keeps its spans in the SQLite file at `path` (created
    /// if missing), starting with the spans the file holds within those limits: what a previous
    /// run recorded. Spans are written off the request path by a task spawned here (so this
    /// must run inside a Tokio runtime). `Err` says why the file cannot be used (not a
    /// database, not writable).
    pub async fn open(limits: StoreLimits, path: &std::path::Path) -> Result<Self, String> {
        Self::open_with_queue(limits, path, super::persist::QUEUE).await
    }

    pub(crate) async fn open_with_queue(
        limits: StoreLimits,
        path: &std::path::Path,
        queue: usize,
    ) -> Result<Self, String> {
        let (file, spans) = super::persist::open(path, limits, queue).await?;
        let horizon =
            now_unix_nanos().saturating_sub(limits.max_age_secs.saturating_mul(1_000_000_000));
        let mut kept: VecDeque<Arc<SpanRecord>> = spans
            .into_iter()
            .filter(|s| s.end_unix_nanos() >= horizon)
            .map(Arc::new)
            .collect();
        while kept.len() > limits.max_spans {
            kept.pop_front();
        }
        Ok(Self {
            limits,
            spans: Mutex::new(kept),
            evicted: AtomicU64::new(0),
            file: Some(file),
        })
    }

    /// Waits until the spans recorded so far are in the file (at once without one): before
    /// the process exits, and in tests.
    pub async fn flush(&self) {
        if let Some(file) = &self.file {
            file.flush().await;
        }
    }

    /// Spans not written to the file because its queue was full (the writer behind): they stay
    /// in memory only. Zero without a file.
    pub fn unpersisted(&self) -> u64 {
        self.file
            .as_ref()
            .map_or(0, super::persist::Persister::dropped)
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<SpanRecord>>> {
        // Each change is one push or pop: a panic elsewhere leaves the queue whole.
        self.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `span`, letting the oldest go past the bounds.
    pub fn record(&self, span: Arc<SpanRecord>) {
        if let Some(file) = &self.file {
            file.offer(&span);
        }
        let horizon = now_unix_nanos().saturating_sub(self.limits.max_age_secs * 1_000_000_000);
        let mut spans = self.spans();
        spans.push_back(span);
        let mut evicted = 0;
        while spans.len() > self.limits.max_spans
            || spans
                .front()
                .is_some_and(|oldest| oldest.end_unix_nanos() < horizon)
        {
            spans.pop_front();
            evicted += 1;
        }
        drop(spans);
        if evicted > 0 {
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// Spans kept now.
    pub fn len(&self) -> usize {
        self.spans().len()
    }

    /// Whether no span is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spans let go to stay within the bounds, since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// The spans kept of trace `trace_id`, by start time.
    pub fn trace(&self, trace_id: u128) -> Vec<Arc<SpanRecord>> {
        let mut spans: Vec<_> = self
            .spans()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        spans.sort_by_key(|s| s.start_unix_nanos);
        spans
    }

    /// The `limit` most recent traces with a server span of `service` (any, when `None`),
    /// newest first.
    pub fn recent_traces(&self, service: Option<&str>, limit: usize) -> Vec<TraceSummary> {
        let spans = self.spans();
        let mut traces: BTreeMap<u128, TraceSummary> = BTreeMap::new();
        let mut order: Vec<u128> = Vec::new();
        for span in spans.iter().rev() {
            let summary = traces.entry(span.trace_id).or_insert_with(|| {
                order.push(span.trace_id);
                TraceSummary {
                    trace_id: format!("{:032x}", span.trace_id),
                    root: String::new(),
                    service: String::new(),
                    path: None,
                    start_unix_nanos: u64::MAX,
                    duration_nanos: 0,
                    spans: 0,
                    failed: false,
                }
            });
            // The trace's end so far (none yet for a new summary, whose start is u64::MAX).
            let end = match summary.spans {
                0 => span.end_unix_nanos(),
                _ => summary
                    .start_unix_nanos
                    .saturating_add(summary.duration_nanos)
                    .max(span.end_unix_nanos()),
            };
            if span.start_unix_nanos <= summary.start_unix_nanos {
                summary.start_unix_nanos = span.start_unix_nanos;
                summary.root = span.name.to_string();
                summary.service = span.service.to_string();
                summary.path = match span.attribute("url.path") {
                    Some(super::Value::Str(path)) => Some(path.to_string()),
                    _ => None,
                };
            }
            summary.duration_nanos = end.saturating_sub(summary.start_unix_nanos);
            summary.spans += 1;
            summary.failed |= matches!(span.status, Status::Error(_));
        }
        drop(spans);
        let wanted = |id: &u128| match service {
            None => true,
            Some(service) => self
                .trace(*id)
                .iter()
                .any(|s| s.kind == SpanKind::Server && s.service == service),
        };
        order
            .into_iter()
            .filter(wanted)
            .take(limit)
            .filter_map(|id| traces.remove(&id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Value;

    fn span(trace_id: u128, span_id: u64, start: u64) -> Arc<SpanRecord> {
        Arc::new(SpanRecord {
            trace_id,
            span_id,
            parent_span_id: None,
            name: "GET /x".into(),
            kind: SpanKind::Server,
            service: "catalog".into(),
            start_unix_nanos: start,
            duration_nanos: 10,
            status: Status::Unset,
            attributes: vec![("http.response.status_code".into(), Value::Int(200))],
        })
    }

    #[test]
    fn keeps_at_most_its_count_oldest_out_first() {
        let store = SpanStore::new(StoreLimits {
            max_spans: 3,
            max_age_secs: 3600,
        });
        let now = now_unix_nanos();
        for i in 0..5 {
            store.record(span(u128::from(i) + 1, i + 1, now));
        }
        assert_eq!(store.len(), 3);
        assert_eq!(store.evicted(), 2);
        assert!(store.trace(1).is_empty() && store.trace(2).is_empty());
        assert_eq!(store.trace(5).len(), 1);
    }

    #[test]
    fn lets_spans_older_than_its_age_go() {
        let store = SpanStore::new(StoreLimits {
            max_spans: 100,
            max_age_secs: 60,
        });
        let now = now_unix_nanos();
        store.record(span(1, 1, now - 120 * 1_000_000_000));
        store.record(span(2, 2, now));
        assert!(store.trace(1).is_empty());
        assert_eq!(store.trace(2).len(), 1);
    }

    #[test]
    fn lists_traces_newest_first_with_their_root() {
        let store = SpanStore::new(StoreLimits::default());
        let now = now_unix_nanos();
        store.record(span(7, 2, now + 5));
        store.record(span(7, 1, now));
        store.record(span(9, 3, now + 100));
        let list = store.recent_traces(None, 10);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].trace_id, format!("{:032x}", 9));
        assert_eq!(list[0].spans, 1);
        assert_eq!(list[1].trace_id, format!("{:032x}", 7));
        assert_eq!(list[1].spans, 2);
        assert_eq!(list[1].start_unix_nanos, now);
        // From the first start (now) to the last end (now + 5 + 10).
        assert_eq!(list[1].duration_nanos, 15);
        assert_eq!(list[0].duration_nanos, 10);
        assert!(store.recent_traces(Some("orders"), 10).is_empty());
    }
}
