//! The connection pool behind [`crate::Db`]: deadpool holding sqlx `AnyConnection`s, with an
//! sqlx [`Executor`] of its own so stores write `query.execute(db.pool())` as with sqlx's pool.
//!
//! Why not sqlx's own `Pool`: it pings every connection when it hands it out
//! (`test_before_acquire`) and again, unconditionally, when it takes it back. On SQLite each
//! ping is a round trip to the connection's worker thread (two context switches), so a pooled
//! statement cost three round trips instead of one, and round trips were most of a checkout's
//! cost (see docs/benchmarks.md). An SQLite connection cannot "hang up", so it is never pinged.
//!
//! A PostgreSQL connection can: a server restart or a dropped socket breaks it, and sqlx keeps
//! answering every later statement on it with the same I/O error. So a connection goes back
//! into the pool trusted only when its last use was seen to finish. One whose statement failed
//! to reach the server ([`super::is_connection_failure`]) is thrown away when it comes back; one
//! whose use was not seen to finish (a transaction dropped unfinished, a request cancelled
//! mid-statement, a connection handed out by [`DbPool::acquire`], whose statements the pool
//! does not see) is pinged before it is handed out again. A connection failure seen anywhere
//! also makes every connection opened before it prove itself with a ping on its next use, as
//! does one idle for [`IDLE_BEFORE_CHECK`]. A busy, healthy service pays nothing; after the
//! database comes back, the first request on each stale connection costs one failed ping
//! rather than a failed request, and no connection stays broken. (Measured on a local server:
//! a statement through the pool ~20 µs; a connection from `acquire` ~35–45 µs, its ping
//! included, so the check costs one round trip and only there.)
//!
//! The pool only hands connections out and takes them back; transactions are [`DbTx`], which
//! rolls back a transaction dropped unfinished exactly as sqlx's `Transaction` does (queued on
//! the connection, flushed before its next statement).

use deadpool::managed::{self, Metrics, Object, PoolError, QueueMode, RecycleError, RecycleResult};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::any::{
    AnyConnectOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTransactionManager, AnyTypeInfo,
};
use sqlx::{Any, AnyConnection, ConnectOptions, Connection, Either, Execute, Executor, SqlStr};
// The facade does not re-export the trait behind `Transaction`; the pool drives it directly.
use sqlx_core::transaction::TransactionManager;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Backend, PoolSettings, is_connection_failure};

/// How long a PostgreSQL connection may sit unused before it is pinged on its way out.
pub const IDLE_BEFORE_CHECK: Duration = Duration::from_secs(2);

/// Opens connections with the backend's session settings, and vets returning ones.
#[derive(Debug)]
pub struct Manager {
    options: AnyConnectOptions,
    backend: Backend,
    /// Counts the connection failures seen on this pool: a connection that last proved itself
    /// before the latest one is checked before it is used again.
    failures_seen: AtomicU64,
}

impl Manager {
    fn failure_seen(&self) {
        self.failures_seen.fetch_add(1, Ordering::AcqRel);
    }
}

/// A pooled connection with what the pool knows about its health.
#[derive(Debug)]
pub struct TrackedConnection {
    raw: AnyConnection,
    /// Its last use was not seen to finish: check it before handing it out again.
    unverified: bool,
    /// A statement on it failed to reach the database: never hand it out again.
    broken: bool,
    /// [`Manager::failures_seen`] when it last proved itself.
    verified_at: u64,
}

impl managed::Manager for Manager {
    type Type = TrackedConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<TrackedConnection, sqlx::Error> {
        let verified_at = self.failures_seen.load(Ordering::Acquire);
        let mut raw = self.options.connect().await.inspect_err(|e| {
            if is_connection_failure(e) {
                self.failure_seen();
            }
        })?;
        if self.backend == Backend::Sqlite {
            // WAL: readers never block the writer. NORMAL: durable against a crashed process
            // (a power cut may lose the last transactions). The busy timeout covers several
            // connections writing at once.
            raw.execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
            )
            .await?;
        }
        Ok(TrackedConnection {
            raw,
            unverified: false,
            broken: false,
            verified_at,
        })
    }

    async fn recycle(
        &self,
        conn: &mut TrackedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if conn.broken {
            return Err(RecycleError::message(
                "a statement on the connection failed to reach the database",
            ));
        }
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let failures_seen = self.failures_seen.load(Ordering::Acquire);
        if conn.unverified
            || conn.verified_at != failures_seen
            || metrics.last_used() > IDLE_BEFORE_CHECK
        {
            if let Err(e) = conn.raw.ping().await {
                self.failure_seen();
                return Err(RecycleError::Backend(e));
            }
            conn.unverified = false;
            conn.verified_at = failures_seen;
        }
        Ok(())
    }
}

/// A pool of connections to one database. Cheap to clone.
#[derive(Clone)]
pub struct DbPool {
    inner: managed::Pool<Manager>,
}

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.inner.status();
        f.debug_struct("DbPool")
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

/// A connection out of the pool; it goes back when dropped. Derefs to the sqlx connection.
///
/// It goes back unverified (checked before its next use on PostgreSQL) unless the pool saw its
/// last use finish: the pool's own executor and [`DbTx`] do; statements a store runs on a
/// connection from [`DbPool::acquire`] are not seen.
pub struct PooledConnection {
    object: Object<Manager>,
    verified: bool,
    broken: bool,
}

impl PooledConnection {
    /// Records how a use of the connection ended, which decides what happens to it next.
    fn outcome<T>(&mut self, result: &Result<T, sqlx::Error>) {
        match result {
            Err(e) if is_connection_failure(e) => {
                self.broken = true;
                if let Some(pool) = Object::pool(&self.object) {
                    pool.manager().failure_seen();
                }
            }
            // A constraint violation or a bad query leaves the connection as good as it was.
            _ => self.verified = true,
        }
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        self.object.broken |= self.broken;
        self.object.unverified |= !self.verified;
    }
}

impl Deref for PooledConnection {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.object.raw
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        // Whoever writes to it may leave it in any state.
        self.verified = false;
        &mut self.object.raw
    }
}

/// How much of a pool is in use (for `flotilla_db_pool_connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open now.
    pub open: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// The most the pool opens.
    pub max: usize,
}

impl PoolUsage {
    /// Open connections handed out now.
    pub fn in_use(&self) -> usize {
        self.open.saturating_sub(self.idle)
    }
}

impl DbPool {
    /// How much of the pool is in use now.
    pub fn usage(&self) -> PoolUsage {
        let status = self.inner.status();
        PoolUsage {
            open: status.size,
            idle: status.available,
            max: status.max_size,
        }
    }

    /// A pool opening connections with `options`; none is opened until one is needed.
    pub fn new(
        options: AnyConnectOptions,
        backend: Backend,
        settings: &PoolSettings,
    ) -> Result<Self, sqlx::Error> {
        let manager = Manager {
            options,
            backend,
            failures_seen: AtomicU64::new(0),
        };
        let inner = managed::Pool::builder(manager)
            .max_size(settings.max_connections.max(1) as usize)
            .wait_timeout(Some(settings.acquire_timeout))
            .create_timeout(Some(settings.acquire_timeout))
            .recycle_timeout(Some(settings.acquire_timeout))
            // The connection used last is reused first: its worker thread and caches are warm,
            // and connections a quiet service no longer needs stay idle.
            .queue_mode(QueueMode::Lifo)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
        Ok(Self { inner })
    }

    /// A connection for several statements in a row (not a transaction: see [`DbPool::begin`]).
    pub async fn acquire(&self) -> Result<PooledConnection, sqlx::Error> {
        let object = self.inner.get().await.map_err(|e| match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Configuration(other.to_string().into()),
        })?;
        Ok(PooledConnection {
            object,
            verified: false,
            broken: false,
        })
    }

    /// Starts a transaction on a connection of its own.
    pub async fn begin(&self) -> Result<DbTx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        let begun = AnyTransactionManager::begin(&mut conn, None).await;
        conn.outcome(&begun);
        begun?;
        Ok(DbTx { conn, open: true })
    }

    /// Refuses new work and closes the connections not in use; those in use close when they
    /// come back.
    pub async fn close(&self) {
        self.inner.close();
        let idle = self.inner.retain(|_, _| false);
        for conn in idle.removed {
            let _ = conn.raw.close().await;
        }
    }
}

/// A transaction: commit it, or it rolls back when dropped. Derefs to its connection, so
/// statements run on `&mut *tx` and helpers take `&mut AnyConnection`.
pub struct DbTx {
    conn: PooledConnection,
    open: bool,
}

impl DbTx {
    /// Makes the transaction's changes durable.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let committed = AnyTransactionManager::commit(&mut self.conn).await;
        self.conn.outcome(&committed);
        committed?;
        self.open = false;
        Ok(())
    }

    /// Undoes the transaction's changes now.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let rolled_back = AnyTransactionManager::rollback(&mut self.conn).await;
        self.conn.outcome(&rolled_back);
        rolled_back?;
        self.open = false;
        Ok(())
    }
}

impl Deref for DbTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for DbTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for DbTx {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection and sent before anything else it runs.
            AnyTransactionManager::start_rollback(&mut self.conn);
        }
    }
}

// Each statement takes a connection for itself, like sqlx's `&Pool` executor does.
impl<'p> Executor<'p> for &'_ DbPool {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut conn = pool.acquire().await?;
            let mut rows = (&mut *conn).fetch_many(query);
            let mut ended = Ok(());
            loop {
                match rows.try_next().await {
                    Ok(Some(row)) => yield row,
                    Ok(None) => break,
                    Err(e) => {
                        ended = Err(e);
                        break;
                    }
                }
            }
            drop(rows);
            conn.outcome(&ended);
            ended?;
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let result = (&mut *conn).fetch_optional(query).await;
            conn.outcome(&result);
            result
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let result = (&mut *conn).prepare_with(sql, parameters).await;
            conn.outcome(&result);
            result
        })
    }

    // No `describe`: the trait has it only with sqlx's `offline` feature, which only the query
    // macros need and the workspace does not enable (Cargo.toml, issue 10).
}
