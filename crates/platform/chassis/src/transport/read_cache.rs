//! A caller's short cache of an upstream's public reads, served stale when the upstream fails
//! (HTTP's `stale-if-error`, RFC 5861): a page that shows products keeps showing them while the
//! catalog restarts, and a burst of the same read costs the upstream one call per freshness
//! period.
//!
//! An answer is **fresh** for `fresh_ms` after it was fetched and is then served without a call.
//! After that a read calls the upstream again; when that call fails in a way that says the
//! upstream is unwell (no answer, a timeout, an open circuit, a 5xx or 429), the last answer is
//! served instead for up to `stale_if_error_ms` after it was fetched. A 404 or another 4xx is
//! the upstream's answer and is passed on, never hidden behind an old copy.
//!
//! Only reads that are the same for every caller are cached (a client caches a `GET` sent with
//! no caller identity, see [`super::ServiceClient::with_read_cache`]); the entries are the raw
//! JSON bodies, keyed by path and query. At most `max_entries` are kept (`quick_cache`'s
//! CLOCK-Pro eviction), so a crawler walking every search page cannot grow the cache without
//! bound. Time is tokio's, so tests drive it with paused time.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::ClientError;

/// How a caller caches an upstream's public reads (`[resilience.read_cache]`; only clients
/// that opt in use it: the catalog's, in cart and storefront).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReadCacheConfig {
    /// How long an answer is served without asking again, in ms (0: always ask, and keep the
    /// answer only for errors).
    pub fresh_ms: u64,
    /// How long after it was fetched an answer may still be served when the upstream fails,
    /// in ms (0: never serve stale).
    pub stale_if_error_ms: u64,
    /// Answers kept at most (1 to 1,000,000).
    pub max_entries: u32,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        Self {
            fresh_ms: 2_000,
            stale_if_error_ms: 600_000,
            max_entries: 10_000,
        }
    }
}

/// A [`ReadCacheConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("read cache setting {0}")]
pub struct InvalidReadCacheConfig(&'static str);

impl ReadCacheConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), InvalidReadCacheConfig> {
        if self.max_entries == 0 || self.max_entries > 1_000_000 {
            return Err(InvalidReadCacheConfig(
                "max_entries: must be between 1 and 1000000",
            ));
        }
        if self.fresh_ms > 86_400_000 || self.stale_if_error_ms > 86_400_000 {
            return Err(InvalidReadCacheConfig(
                "fresh_ms and stale_if_error_ms: at most 86400000 (a day)",
            ));
        }
        Ok(())
    }
}

/// What a cache did, for the admin endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReadCacheStats {
    /// Reads answered fresh from the cache, without a call.
    pub fresh_hits: u64,
    /// Reads that called the upstream.
    pub fetches: u64,
    /// Reads the upstream failed that were answered with an older copy.
    pub served_stale: u64,
    /// Answers held now.
    pub entries: u64,
}

#[derive(Clone)]
struct Entry {
    body: Bytes,
    fetched: Instant,
}

/// One caller's cache of one upstream's reads; clones share it.
#[derive(Clone)]
pub struct ReadCache {
    fresh: Duration,
    stale: Duration,
    entries: Arc<quick_cache::sync::Cache<String, Entry>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    fresh_hits: AtomicU64,
    fetches: AtomicU64,
    served_stale: AtomicU64,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("fresh", &self.fresh)
            .field("stale", &self.stale)
            .finish_non_exhaustive()
    }
}

impl ReadCache {
    /// An empty cache.
    pub fn new(config: &ReadCacheConfig) -> Result<Self, InvalidReadCacheConfig> {
        config.validate()?;
        Ok(Self {
            fresh: Duration::from_millis(config.fresh_ms),
            stale: Duration::from_millis(config.stale_if_error_ms),
            entries: Arc::new(quick_cache::sync::Cache::new(config.max_entries as usize)),
            counters: Arc::default(),
        })
    }

    /// The answer to `key`: fresh from the cache, else from `fetch` (and kept), else, when
    /// `fetch` fails because the upstream is unwell, the last answer if it is recent enough.
    pub async fn read<F>(&self, key: &str, fetch: F) -> Result<Bytes, ClientError>
    where
        F: Future<Output = Result<Bytes, ClientError>>,
    {
        if let Some(body) = self.fresh(key) {
            return Ok(body);
        }
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        match fetch.await {
            Ok(body) => {
                self.put(key, body.clone());
                Ok(body)
            }
            Err(e) => self.stale_or(key, e),
        }
    }

    /// The answer to `key` if it is fresh (counted as a hit).
    pub fn fresh(&self, key: &str) -> Option<Bytes> {
        let entry = self.entries.get(key)?;
        (entry.fetched.elapsed() < self.fresh).then(|| {
            self.counters.fresh_hits.fetch_add(1, Ordering::Relaxed);
            entry.body
        })
    }

    /// Keeps `body` as the answer to `key`, fetched now.
    pub fn put(&self, key: &str, body: Bytes) {
        let entry = Entry {
            body,
            fetched: Instant::now(),
        };
        self.entries.insert(key.to_owned(), entry);
    }

    /// After `error` on a read of `key`: the last answer when the error says the upstream is
    /// unwell and that answer is within the stale period, else the error.
    pub fn stale_or(&self, key: &str, error: ClientError) -> Result<Bytes, ClientError> {
        if !Self::covers(&error) {
            return Err(error);
        }
        self.stale(key).ok_or(error)
    }

    /// The last answer to `key` if it is within the stale period (counted as served stale): for
    /// a caller that has seen the upstream fail in a way [`Self::covers`].
    pub fn stale(&self, key: &str) -> Option<Bytes> {
        let entry = self.entries.get(key)?;
        (entry.fetched.elapsed() < self.stale).then(|| {
            self.counters.served_stale.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key, "upstream failed; served a stale answer");
            entry.body
        })
    }

    /// True for failures that say nothing about the answer but something about the upstream's
    /// health, which a stale answer may cover: no answer (unreachable, timed out, circuit open,
    /// overloaded, deadline), 5xx, 429, an unreadable answer. A 404 or another 4xx is the
    /// upstream's answer.
    pub fn covers(error: &ClientError) -> bool {
        match error {
            ClientError::Transport(_) | ClientError::Decode { .. } => true,
            ClientError::Status { problem, .. } => {
                let status = problem.status_code();
                status.is_server_error() || status.as_u16() == 429
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> ReadCacheStats {
        ReadCacheStats {
            fresh_hits: self.counters.fresh_hits.load(Ordering::Relaxed),
            fetches: self.counters.fetches.load(Ordering::Relaxed),
            served_stale: self.counters.served_stale.load(Ordering::Relaxed),
            entries: self.entries.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Problem;
    use crate::transport::TransportError;
    use axum::http::StatusCode;

    fn cache(fresh_ms: u64, stale_if_error_ms: u64) -> ReadCache {
        ReadCache::new(&ReadCacheConfig {
            fresh_ms,
            stale_if_error_ms,
            max_entries: 100,
        })
        .expect("valid")
    }

    fn down() -> ClientError {
        ClientError::Transport(TransportError::CircuitOpen("catalog".into()))
    }

    fn status(code: StatusCode) -> ClientError {
        ClientError::Status {
            service: "catalog",
            problem: Box::new(Problem::new(code, "x", "x")),
        }
    }

    async fn ok(body: &'static str) -> Result<Bytes, ClientError> {
        Ok(Bytes::from_static(body.as_bytes()))
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_answers_are_served_without_a_call_then_asked_again() {
        let cache = cache(1_000, 60_000);
        assert_eq!(cache.read("/k", ok("1")).await.expect("fetched"), "1");
        // Within the freshness period the fetch is not even polled.
        let never = async { panic!("called while fresh") };
        assert_eq!(cache.read("/k", never).await.expect("fresh"), "1");
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert_eq!(cache.read("/k", ok("2")).await.expect("refetched"), "2");
        let stats = cache.stats();
        assert_eq!((stats.fresh_hits, stats.fetches), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unwell_upstream_is_covered_by_the_last_answer_for_the_stale_period() {
        let cache = cache(1_000, 10_000);
        cache.read("/k", ok("1")).await.expect("fetched");
        tokio::time::advance(Duration::from_millis(5_000)).await;
        for error in [
            down(),
            status(StatusCode::SERVICE_UNAVAILABLE),
            status(StatusCode::TOO_MANY_REQUESTS),
        ] {
            let served = cache.read("/k", async { Err(error) }).await;
            assert_eq!(served.expect("stale"), "1");
        }
        assert_eq!(cache.stats().served_stale, 3);
        // Past the stale period the failure is the answer.
        tokio::time::advance(Duration::from_millis(5_000)).await;
        assert!(cache.read("/k", async { Err(down()) }).await.is_err());
        // A key never fetched has nothing to fall back on.
        assert!(cache.read("/other", async { Err(down()) }).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_upstreams_own_answers_are_never_hidden_behind_an_old_copy() {
        let cache = cache(0, 60_000);
        cache.read("/k", ok("1")).await.expect("fetched");
        let err = cache
            .read("/k", async { Err(status(StatusCode::NOT_FOUND)) })
            .await
            .expect_err("404 passed on");
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    }

    #[test]
    fn the_cache_is_bounded_and_its_settings_checked() {
        let cache = cache(60_000, 60_000);
        for i in 0..1_000 {
            cache.put(&format!("/k{i}"), Bytes::from_static(b"x"));
        }
        assert!(cache.stats().entries <= 100, "{:?}", cache.stats());
        let zero = ReadCacheConfig {
            max_entries: 0,
            ..ReadCacheConfig::default()
        };
        assert!(ReadCache::new(&zero).is_err());
    }
}
