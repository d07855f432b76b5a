//! The span store's SQLite file (`--telemetry-db`): spans outlive a restart, so the admin API and
//! the ops console still show the traces from before it (issue 14 item 2).
//!
//! Off the request path: [`SpanStore::record`](super::SpanStore::record) only offers each span
//! to a bounded channel (a full one drops the span and counts it, never waits); one task drains
//! it in batches, one transaction each, and after each batch (and once a minute) deletes what lies
//! past the store's bounds, by count and by age, so the file holds what memory holds. A file that
//! cannot be opened is an error at start; a write that fails later is logged (at most once a
//! minute) and costs those spans in the file only.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::limits::StoreLimits;
use super::span::{SpanKind, SpanRecord, Status, Value};

/// Spans waiting to be written at most; past it they are dropped (and counted).
pub(crate) const QUEUE: usize = 8_192;
/// Spans written in one transaction at most.
const BATCH: usize = 512;
/// How often the file is pruned by age when nothing is written.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Failures are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spans (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    start_unix_nanos INTEGER NOT NULL,
    duration_nanos INTEGER NOT NULL,
    end_unix_nanos INTEGER NOT NULL,
    error TEXT,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_by_end ON spans (end_unix_nanos);
";

enum Message {
    Span(Arc<SpanRecord>),
    Flush(oneshot::Sender<()>),
}

/// The sending side: what the store holds to hand spans to the writer.
#[derive(Debug)]
pub(crate) struct Persister {
    queue: mpsc::Sender<Message>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Span(_) => "Span",
            Self::Flush(_) => "Flush",
        })
    }
}

impl Persister {
    /// Offers `span` to the writer; never waits: a full queue drops it, counted.
    pub(crate) fn offer(&self, span: &Arc<SpanRecord>) {
        if self.queue.try_send(Message::Span(span.clone())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans not written to the file because the queue was full (or the writer gone).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every span offered before this call is written (or failed to be).
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Opens (creating it if needed) the file at `path`, creates its schema, prunes it to `limits`,
/// reads back the spans within them (oldest first) and starts the writer, with a queue of
/// `capacity` spans. Must run inside a Tokio runtime.
pub(crate) async fn open(
    path: &Path,
    limits: StoreLimits,
    capacity: usize,
) -> Result<(Persister, Vec<SpanRecord>), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        format!("telemetry database {}: cannot {what}: {e}", path.display())
    };
    crate::private_files::private_file(path).map_err(|e| fail("create it", &e))?;
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| fail("open it", &e))?;
    sqlx::raw_sql(SCHEMA)
        .execute(&mut conn)
        .await
        .map_err(|e| fail("create its schema", &e))?;
    prune(&mut conn, limits)
        .await
        .map_err(|e| fail("prune it", &e))?;
    let spans = load(&mut conn, limits)
        .await
        .map_err(|e| fail("read it", &e))?;
    let (queue, receiver) = mpsc::channel(capacity.max(1));
    tokio::spawn(write(conn, receiver, limits, path.to_owned()));
    Ok((
        Persister {
            queue,
            dropped: AtomicU64::new(0),
        },
        spans,
    ))
}

/// The writer: drains the queue in batches until every sender is gone.
async fn write(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<Message>,
    limits: StoreLimits,
    path: PathBuf,
) {
    let mut failures = Failures::new(path);
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = queue.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
            }
            _ = tick.tick() => {
                if let Err(e) = prune(&mut conn, limits).await {
                    failures.note("prune", &e);
                }
                continue;
            }
        }
        let mut spans = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for message in batch.drain(..) {
            match message {
                Message::Span(span) => spans.push(span),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !spans.is_empty() {
            if let Err(e) = insert(&mut conn, &spans).await {
                failures.note("write spans to", &e);
            } else if let Err(e) = prune(&mut conn, limits).await {
                failures.note("prune", &e);
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
    let _ = conn.close().await;
}

/// Failures of the writer, logged at most once per [`LOG_EVERY`].
struct Failures {
    path: PathBuf,
    last_logged: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl Failures {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            last_logged: None,
            unlogged: 0,
        }
    }

    fn note(&mut self, what: &str, error: &sqlx::Error) {
        self.unlogged += 1;
        let now = tokio::time::Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            path = %self.path.display(),
            failures = self.unlogged,
            error = %error,
            "cannot {what} the telemetry database; spans stay in memory",
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

async fn insert(conn: &mut SqliteConnection, spans: &[Arc<SpanRecord>]) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    for span in spans {
        sqlx::query(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, service, \
             start_unix_nanos, duration_nanos, end_unix_nanos, error, attributes) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(format!("{:032x}", span.trace_id))
        .bind(format!("{:016x}", span.span_id))
        .bind(span.parent_span_id.map(|id| format!("{id:016x}")))
        .bind(span.name.as_ref())
        .bind(kind_name(span.kind))
        .bind(span.service.as_ref())
        .bind(as_i64(span.start_unix_nanos))
        .bind(as_i64(span.duration_nanos))
        .bind(as_i64(span.end_unix_nanos()))
        .bind(match &span.status {
            Status::Unset => None,
            Status::Error(message) => Some(message.as_str()),
        })
        .bind(attributes_json(&span.attributes))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Deletes the spans past `limits`: beyond the newest `max_spans`, or ended before the horizon.
async fn prune(conn: &mut SqliteConnection, limits: StoreLimits) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM spans WHERE seq <= \
         (SELECT seq FROM spans ORDER BY seq DESC LIMIT 1 OFFSET ?)",
    )
    .bind(i64::try_from(limits.max_spans).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM spans WHERE end_unix_nanos < ?")
        .bind(as_i64(horizon(limits)))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The spans within `limits`, oldest first; a row that cannot be read back is skipped.
async fn load(conn: &mut SqliteConnection, limits: StoreLimits) -> sqlx::Result<Vec<SpanRecord>> {
    let rows = sqlx::query(
        "SELECT trace_id, span_id, parent_span_id, name, kind, service, start_unix_nanos, \
         duration_nanos, error, attributes FROM spans WHERE end_unix_nanos >= ? \
         ORDER BY seq DESC LIMIT ?",
    )
    .bind(as_i64(horizon(limits)))
    .bind(i64::try_from(limits.max_spans).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    let mut spans = Vec::with_capacity(rows.len());
    for row in rows.iter().rev() {
        let read = || -> Option<SpanRecord> {
            let trace_id: String = row.try_get("trace_id").ok()?;
            let span_id: String = row.try_get("span_id").ok()?;
            let parent: Option<String> = row.try_get("parent_span_id").ok()?;
            let kind: String = row.try_get("kind").ok()?;
            let start: i64 = row.try_get("start_unix_nanos").ok()?;
            let duration: i64 = row.try_get("duration_nanos").ok()?;
            let error: Option<String> = row.try_get("error").ok()?;
            let attributes: String = row.try_get("attributes").ok()?;
            Some(SpanRecord {
                trace_id: u128::from_str_radix(&trace_id, 16).ok()?,
                span_id: u64::from_str_radix(&span_id, 16).ok()?,
                parent_span_id: match parent {
                    None => None,
                    Some(id) => Some(u64::from_str_radix(&id, 16).ok()?),
                },
                name: Cow::Owned(row.try_get("name").ok()?),
                kind: kind_from_name(&kind)?,
                service: Cow::Owned(row.try_get("service").ok()?),
                start_unix_nanos: u64::try_from(start).ok()?,
                duration_nanos: u64::try_from(duration).ok()?,
                status: error.map_or(Status::Unset, Status::Error),
                attributes: attributes_from_json(&attributes)?,
            })
        };
        if let Some(span) = read() {
            spans.push(span);
        }
    }
    Ok(spans)
}

fn horizon(limits: StoreLimits) -> u64 {
    super::limits::now_unix_nanos()
        .saturating_sub(limits.max_age_secs.saturating_mul(1_000_000_000))
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

fn kind_from_name(name: &str) -> Option<SpanKind> {
    Some(match name {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => return None,
    })
}

/// Attributes as a JSON array of `[name, value]` pairs: their order kept, and a value's JSON
/// type (string, integer, boolean) telling which [`Value`] it is.
fn attributes_json(attributes: &[(Cow<'static, str>, Value)]) -> String {
    let pairs: Vec<serde_json::Value> = attributes
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Str(text) => serde_json::Value::from(text.as_ref()),
                Value::Int(n) => serde_json::Value::from(*n),
                Value::Bool(flag) => serde_json::Value::from(*flag),
            };
            serde_json::Value::Array(vec![serde_json::Value::from(key.as_ref()), value])
        })
        .collect();
    serde_json::Value::Array(pairs).to_string()
}

fn attributes_from_json(text: &str) -> Option<Vec<(Cow<'static, str>, Value)>> {
    let serde_json::Value::Array(pairs) = serde_json::from_str(text).ok()? else {
        return None;
    };
    pairs
        .into_iter()
        .map(|pair| {
            let serde_json::Value::Array(mut pair) = pair else {
                return None;
            };
            let value = pair.pop()?;
            let key = pair.pop()?;
            let key = Cow::Owned(key.as_str()?.to_owned());
            let value = match value {
                serde_json::Value::String(text) => Value::Str(Cow::Owned(text)),
                serde_json::Value::Bool(flag) => Value::Bool(flag),
                serde_json::Value::Number(n) => Value::Int(n.as_i64()?),
                _ => return None,
            };
            Some((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::limits::now_unix_nanos;
    use super::super::store::SpanStore;
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn span(trace_id: u128, span_id: u64, parent: Option<u64>, start: u64) -> Arc<SpanRecord> {
        Arc::new(SpanRecord {
            trace_id,
            span_id,
            parent_span_id: parent,
            name: "GET /products/{id}".into(),
            kind: if parent.is_some() {
                SpanKind::Client
            } else {
                SpanKind::Server
            },
            service: "catalog".into(),
            start_unix_nanos: start,
            duration_nanos: 1_500,
            status: if span_id.is_multiple_of(2) {
                Status::Error("upstream answered 503".into())
            } else {
                Status::Unset
            },
            attributes: vec![
                (
                    "url.path".into(),
                    Value::from(format!("/api/products/{span_id}")),
                ),
                ("http.response.status_code".into(), Value::Int(200)),
                ("error".into(), Value::Bool(span_id.is_multiple_of(2))),
            ],
        })
    }

    fn limits(max_spans: usize, max_age_secs: u64) -> StoreLimits {
        StoreLimits {
            max_spans,
            max_age_secs,
        }
    }

    async fn rows(path: &Path) -> i64 {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .connect()
            .await
            .expect("open");
        sqlx::query_scalar("SELECT COUNT(*) FROM spans")
            .fetch_one(&mut conn)
            .await
            .expect("count")
    }

    fn same(a: &SpanRecord, b: &SpanRecord) {
        assert_eq!(
            serde_json::to_value(a).expect("json"),
            serde_json::to_value(b).expect("json")
        );
        assert_eq!(a.attributes, b.attributes);
    }

    #[tokio::test]
    async fn spans_outlive_a_restart_with_their_ids_parents_and_attributes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("telemetry.db");
        let now = now_unix_nanos();
        let recorded = [
            span(7, 1, None, now),
            span(7, 2, Some(1), now + 10),
            span(9, 3, None, now + 100),
        ];
        let first = SpanStore::open(StoreLimits::default(), &path)
            .await
            .expect("open");
        for s in &recorded {
            first.record(s.clone());
        }
        first.flush().await;
        let before = first.recent_traces(None, 10);
        drop(first);

        let second = SpanStore::open(StoreLimits::default(), &path)
            .await
            .expect("reopen");
        assert_eq!(second.len(), 3);
        let after = second.recent_traces(None, 10);
        assert_eq!(
            serde_json::to_value(&before).expect("json"),
            serde_json::to_value(&after).expect("json")
        );
        let trace = second.trace(7);
        assert_eq!(trace.len(), 2);
        same(&trace[0], &recorded[0]);
        same(&trace[1], &recorded[1]);
        assert_eq!(trace[1].parent_span_id, Some(1));
        same(&second.trace(9)[0], &recorded[2]);
        // What the second run records joins the file after the first run's spans.
        second.record(span(11, 5, None, now + 200));
        second.flush().await;
        assert_eq!(rows(&path).await, 4);
    }

    #[tokio::test]
    async fn the_file_keeps_within_the_same_bounds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("telemetry.db");
        let now = now_unix_nanos();
        let store = SpanStore::open(limits(3, 3600), &path).await.expect("open");
        store.record(span(1, 1, None, now - 7200 * SECOND));
        for i in 2..=6 {
            store.record(span(u128::from(i), i, None, now + i));
        }
        store.flush().await;
        assert_eq!(rows(&path).await, 3);
        drop(store);

        // Opened with a tighter count, the file is pruned to it and only the newest come back.
        let reopened = SpanStore::open(limits(2, 3600), &path)
            .await
            .expect("reopen");
        assert_eq!(reopened.len(), 2);
        assert!(reopened.trace(4).is_empty());
        assert_eq!(reopened.trace(5).len(), 1);
        assert_eq!(reopened.trace(6).len(), 1);
        assert_eq!(rows(&path).await, 2);
    }

    #[tokio::test]
    async fn spans_past_the_age_are_not_read_back_and_leave_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("telemetry.db");
        let now = now_unix_nanos();
        let store = SpanStore::open(limits(100, 3600), &path)
            .await
            .expect("open");
        store.record(span(1, 1, None, now - 1800 * SECOND));
        store.record(span(2, 3, None, now));
        store.flush().await;
        drop(store);
        // A minute's bound at the next start: the half-hour-old span is gone, from both.
        let reopened = SpanStore::open(limits(100, 60), &path)
            .await
            .expect("reopen");
        assert!(reopened.trace(1).is_empty());
        assert_eq!(reopened.trace(2).len(), 1);
        assert_eq!(rows(&path).await, 1);
    }

    // One thread: the writer cannot run while `record` is called, so the queue fills.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("telemetry.db");
        let now = now_unix_nanos();
        let store = SpanStore::open_with_queue(StoreLimits::default(), &path, 2)
            .await
            .expect("open");
        for i in 1..=10 {
            store.record(span(u128::from(i), i, None, now + i));
        }
        // Every span is in memory; two reached the queue, eight were dropped for the file.
        assert_eq!(store.len(), 10);
        assert_eq!(store.unpersisted(), 8);
        store.flush().await;
        assert_eq!(rows(&path).await, 2);
    }

    #[tokio::test]
    async fn a_failing_write_costs_the_file_those_spans_and_memory_goes_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("telemetry.db");
        let now = now_unix_nanos();
        let store = SpanStore::open(StoreLimits::default(), &path)
            .await
            .expect("open");
        // Another connection holds the write lock past the writer's busy timeout.
        let mut other = SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .expect("open");
        sqlx::raw_sql("BEGIN EXCLUSIVE")
            .execute(&mut other)
            .await
            .expect("lock");
        store.record(span(1, 1, None, now));
        store.flush().await;
        assert_eq!(store.trace(1).len(), 1);
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut other)
            .await
            .expect("unlock");
        // The writer goes on once the file can be written again.
        store.record(span(2, 3, None, now + 1));
        store.flush().await;
        assert_eq!(store.len(), 2);
        assert_eq!(rows(&path).await, 1);
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_an_error_at_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("telemetry.db");
        std::fs::write(&path, "this is not a database, only text ".repeat(200)).expect("write");
        let error = SpanStore::open(StoreLimits::default(), &path)
            .await
            .expect_err("not a database");
        assert!(error.contains(&path.display().to_string()), "{error}");

        let missing = dir.path().join("no such dir").join("telemetry.db");
        let error = SpanStore::open(StoreLimits::default(), &missing)
            .await
            .expect_err("no directory");
        assert!(error.contains("cannot create it"), "{error}");
    }
}
