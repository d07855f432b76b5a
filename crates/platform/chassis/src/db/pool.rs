//! The connection pool behind [`crate::Db`]: deadpool holding sqlx `AnyConnection`s, with an
//! sqlx [`Executor`] of its own so stores write `query.execute(db.pool())` as with sqlx's pool.
//!
//! Why not sqlx's own `Pool`: it pings every connection when it hands it out
//! (`test_before_acquire`) and again, unconditionally, when it takes it back. On SQLite each
//! ping is a round trip to the connection's worker thread (two context switches), so a pooled
//! statement cost three round trips instead of one, and round trips were most of a checkout's
//! cost (see docs/benchmarks.md). An SQLite connection cannot "hang up", so it is never
//! checked; a PostgreSQL connection is pinged only when it has sat idle for a while
//! ([`IDLE_BEFORE_CHECK`]), which is when a server restart or a dropped socket would have
//! broken it, so a busy service pays nothing and an idle one finds out before its first query.
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
use std::time::Duration;

use super::{Backend, PoolSettings};

/// How long a PostgreSQL connection may sit unused before it is pinged on its way out.
pub const IDLE_BEFORE_CHECK: Duration = Duration::from_secs(2);

/// Opens connections with the backend's session settings, and vets returning ones.
#[derive(Debug)]
pub struct Manager {
    options: AnyConnectOptions,
    backend: Backend,
}

impl managed::Manager for Manager {
    type Type = AnyConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        if self.backend == Backend::Sqlite {
            // WAL: readers never block the writer. NORMAL: durable against a crashed process
            // (a power cut may lose the last transactions). The busy timeout covers several
            // connections writing at once.
            conn.execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
            )
            .await?;
        }
        Ok(conn)
    }

    async fn recycle(
        &self,
        conn: &mut AnyConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if self.backend == Backend::Postgres && metrics.last_used() > IDLE_BEFORE_CHECK {
            conn.ping().await.map_err(RecycleError::Backend)?;
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

/// A connection out of the pool; it goes back when dropped.
pub type PooledConnection = Object<Manager>;

impl DbPool {
    /// A pool opening connections with `options`; none is opened until one is needed.
    pub fn new(
        options: AnyConnectOptions,
        backend: Backend,
        settings: &PoolSettings,
    ) -> Result<Self, sqlx::Error> {
        let inner = managed::Pool::builder(Manager { options, backend })
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
        self.inner.get().await.map_err(|e| match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Configuration(other.to_string().into()),
        })
    }

    /// Starts a transaction on a connection of its own.
    pub async fn begin(&self) -> Result<DbTx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        AnyTransactionManager::begin(&mut conn, None).await?;
        Ok(DbTx { conn, open: true })
    }

    /// Refuses new work and closes the connections not in use; those in use close when they
    /// come back.
    pub async fn close(&self) {
        self.inner.close();
        let idle = self.inner.retain(|_, _| false);
        for conn in idle.removed {
            let _ = conn.close().await;
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
        AnyTransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    /// Undoes the transaction's changes now.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        AnyTransactionManager::rollback(&mut self.conn).await?;
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
            while let Some(row) = rows.try_next().await? {
                yield row;
            }
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
            (&mut *conn).fetch_optional(query).await
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
            (&mut *conn).prepare_with(sql, parameters).await
        })
    }

    // Required while sqlx's `offline` feature is on (the `macros` feature turns it on); only
    // the query macros call it.
    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            (&mut *conn).describe(sql).await
        })
    }
}
