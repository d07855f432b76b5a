//! Rate limits at the edge: a token bucket per client IP address and per user (the verified
//! `sub`), each sized per route class — `login` (logging in and signing up, on the API and the
//! site), `write` (every other request that changes something) and `read` — answered `429`
//! with `Retry-After` when empty (RELIABILITY.md L6).
//!
//! The IP bucket is checked first, before the token is verified, so a flood costs one hash and
//! one compare-and-swap per request and never the signature checks; the user bucket after, so a
//! user is limited wherever they connect from. Health probes are never limited.
//!
//! The buckets are local to the process (`gcra::LocalBuckets`), or shared by every gateway
//! replica through Redis when `--redis-url` / `FLOTILLA_REDIS_URL` is set (`shared.rs`). When
//! Redis fails, `on_redis_error` decides: `open` admits (the default: a limiter outage should
//! not be a shop outage) or `closed` refuses with 503; either way the failure is logged (at most
//! once a second) and counted in the gateway's `/healthz`. A check waits `redis_timeout_ms` at
//! most, and after a failure Redis is left alone for a second (the failure mode applies at
//! once), so a Redis that hangs or refuses costs requests nothing but that.
//!
//! The client address is the TCP peer's. Behind trusted proxies (a load balancer, an ingress),
//! `forwarded_for_hops = N` takes the address the N-th proxy from the gateway saw, from
//! `X-Forwarded-For` (the N-th entry from the right); a client cannot choose it by sending its
//! own header, since proxies append. IPv6 addresses are limited per /64, what one host usually
//! holds.

mod gcra;
mod shared;

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use gcra::{Rate, Verdict};

/// The problem slug of a refused request: `urn:flotilla:problem:rate-limited`.
pub const RATE_LIMITED: &str = "rate-limited";

/// One bucket: `per_second` sustained, `burst` at once. `per_second = 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// Requests per second, sustained (fractions allowed: 0.5 is one every 2 s).
    pub per_second: f64,
    /// Requests at once from a full bucket.
    pub burst: u32,
}

impl Bucket {
    const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn rate(&self) -> Option<Rate> {
        (self.per_second > 0.0).then(|| Rate::new(self.per_second, self.burst))
    }
}

/// The buckets of one route class.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassLimits {
    /// Per client address.
    pub per_ip: Bucket,
    /// Per user, for requests with a valid token or session.
    pub per_user: Bucket,
}

/// What the limiter does when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Admit the request.
    Open,
    /// Refuse it with 503.
    Closed,
}

/// `[gateway.rate_limit]` (README, "Rate limits").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Off: no request is limited.
    pub enabled: bool,
    /// Logging in and signing up: `POST /api/identity/login`, `/api/identity/signup`, and the
    /// site's `POST /login`, `/signup`.
    pub login: ClassLimits,
    /// Every other request but GET, HEAD and OPTIONS.
    pub write: ClassLimits,
    /// GET, HEAD and OPTIONS.
    pub read: ClassLimits,
    /// Trusted proxies in front of the gateway: the client is the address the outermost of
    /// them saw (the `N`-th `X-Forwarded-For` entry from the right); 0 = the TCP peer.
    pub forwarded_for_hops: u32,
    /// With Redis: `open` admits when Redis fails, `closed` refuses with 503.
    pub on_redis_error: FailMode,
    /// With Redis: how long one check may take before it counts as a failure.
    pub redis_timeout_ms: u64,
    /// Without Redis: most keys (addresses and users) remembered; the least recently seen go.
    pub max_local_keys: usize,
}

impl Default for RateLimitConfig {
    /// Per address: reads 200/s with bursts of 400 (a page and its assets, many shoppers behind
    /// one NAT), writes 20/s burst 40, logins one every 2 s with bursts of 10. Per user: half of
    /// that for reads and writes, and the same for logins.
    fn default() -> Self {
        Self {
            enabled: true,
            login: ClassLimits {
                per_ip: Bucket::new(0.5, 10),
                per_user: Bucket::new(0.5, 10),
            },
            write: ClassLimits {
                per_ip: Bucket::new(20.0, 40),
                per_user: Bucket::new(10.0, 20),
            },
            read: ClassLimits {
                per_ip: Bucket::new(200.0, 400),
                per_user: Bucket::new(100.0, 200),
            },
            forwarded_for_hops: 0,
            on_redis_error: FailMode::Open,
            redis_timeout_ms: 100,
            max_local_keys: 100_000,
        }
    }
}

/// A [`RateLimitConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[gateway.rate_limit] {field}: {reason}")]
pub struct InvalidRateLimit {
    field: String,
    reason: &'static str,
}

impl RateLimitConfig {
    /// Checks every bucket and bound.
    pub fn validate(&self) -> Result<(), InvalidRateLimit> {
        let invalid = |field: String, reason| Err(InvalidRateLimit { field, reason });
        for (class, limits) in [
            ("login", &self.login),
            ("write", &self.write),
            ("read", &self.read),
        ] {
            for (who, bucket) in [("per_ip", &limits.per_ip), ("per_user", &limits.per_user)] {
                let field = format!("{class}.{who}");
                if !(0.0..=1_000_000.0).contains(&bucket.per_second) {
                    return invalid(field, "per_second must be between 0 (off) and 1000000");
                }
                if bucket.per_second > 0.0 && !(1..=1_000_000).contains(&bucket.burst) {
                    return invalid(field, "burst must be between 1 and 1000000");
                }
            }
        }
        if self.forwarded_for_hops > 16 {
            return invalid("forwarded_for_hops".into(), "must be at most 16");
        }
        if !(1..=10_000).contains(&self.redis_timeout_ms) {
            return invalid("redis_timeout_ms".into(), "must be between 1 and 10000");
        }
        if !(100..=100_000_000).contains(&self.max_local_keys) {
            return invalid("max_local_keys".into(), "must be between 100 and 100000000");
        }
        Ok(())
    }
}

/// A request's route class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Logging in or signing up.
    Login,
    /// Changes something.
    Write,
    /// Reads.
    Read,
}

impl Class {
    /// The class of `method` on the gateway's `path`.
    pub fn of(method: &Method, path: &str) -> Self {
        let login_path = matches!(
            path,
            "/api/identity/login" | "/api/identity/signup" | "/login" | "/signup"
        );
        if *method == Method::POST && login_path {
            Self::Login
        } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Self::Read
        } else {
            Self::Write
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Write => "write",
            Self::Read => "read",
        }
    }
}

/// Whose bucket.
#[derive(Debug, Clone, Copy, Hash)]
enum Who<'a> {
    Ip(IpAddr),
    User(&'a str),
}

/// The counters shown in the gateway's `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitSnapshot {
    /// `local`, `redis` or `off`.
    pub backend: &'static str,
    /// Requests refused with 429 since start.
    pub limited: u64,
    /// Checks Redis failed since start.
    pub redis_errors: u64,
    /// Keys (addresses and users) in the local table now.
    pub local_keys: usize,
}

/// The limiter: the configuration, the buckets and the counters.
pub struct RateLimiter {
    config: RateLimitConfig,
    local: gcra::LocalBuckets,
    shared: Option<shared::RedisBuckets>,
    limited: AtomicU64,
    redis_errors: AtomicU64,
    /// When a Redis failure was last logged (seconds since the epoch).
    last_logged: AtomicI64,
    /// Until when (µs since the epoch) Redis is taken as down after a failure: checks then
    /// take the failure mode at once instead of each waiting for a reconnection.
    redis_down_until_us: AtomicU64,
}

/// How long Redis is taken as down after a failed check; one check then tries it again.
const REDIS_DOWN_FOR_US: u64 = 1_000_000;

impl RateLimiter {
    /// A limiter with local buckets, or buckets in the Redis at `redis_url` under `prefix`.
    pub fn new(
        config: RateLimitConfig,
        redis_url: Option<&str>,
        prefix: &str,
    ) -> Result<Arc<Self>, String> {
        config.validate().map_err(|e| e.to_string())?;
        let shared = match redis_url {
            Some(url) => Some(
                shared::RedisBuckets::new(
                    url,
                    &format!("{prefix}:rate"),
                    Duration::from_millis(config.redis_timeout_ms),
                )
                .map_err(|e| format!("--redis-url {url:?}: {e}"))?,
            ),
            None => None,
        };
        Ok(Arc::new(Self {
            local: gcra::LocalBuckets::new(config.max_local_keys),
            config,
            shared,
            limited: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            last_logged: AtomicI64::new(0),
            redis_down_until_us: AtomicU64::new(0),
        }))
    }

    /// A limiter that admits everything.
    pub fn off() -> Arc<Self> {
        let config = RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::default()
        };
        Arc::new(Self {
            local: gcra::LocalBuckets::new(1),
            config,
            shared: None,
            limited: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            last_logged: AtomicI64::new(0),
            redis_down_until_us: AtomicU64::new(0),
        })
    }

    /// The counters.
    pub fn snapshot(&self) -> RateLimitSnapshot {
        RateLimitSnapshot {
            backend: match (&self.shared, self.config.enabled) {
                (_, false) => "off",
                (Some(_), true) => "redis",
                (None, true) => "local",
            },
            limited: self.limited.load(Ordering::Relaxed),
            redis_errors: self.redis_errors.load(Ordering::Relaxed),
            local_keys: self.local.len(),
        }
    }

    /// The client address of a request from TCP peer `peer` with `headers`.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let hops = self.config.forwarded_for_hops as usize;
        if hops == 0 {
            return peer;
        }
        // Every X-Forwarded-For line, in order, as one list: the N-th from the right.
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        entries
            .len()
            .checked_sub(hops)
            .and_then(|i| entries[i].parse().ok())
            .or(peer)
    }

    /// Takes a token from `ip`'s bucket of `class`; the refusal to answer when there is none.
    pub async fn check_ip(&self, class: Class, ip: Option<IpAddr>) -> Result<(), Response> {
        let Some(ip) = ip else { return Ok(()) };
        let limits = self.limits(class);
        self.check(class, Who::Ip(per_host(ip)), limits.per_ip)
            .await
    }

    /// Takes a token from `user`'s bucket of `class`.
    pub async fn check_user(&self, class: Class, user: &str) -> Result<(), Response> {
        let limits = self.limits(class);
        self.check(class, Who::User(user), limits.per_user).await
    }

    fn limits(&self, class: Class) -> &ClassLimits {
        match class {
            Class::Login => &self.config.login,
            Class::Write => &self.config.write,
            Class::Read => &self.config.read,
        }
    }

    async fn check(&self, class: Class, who: Who<'_>, bucket: Bucket) -> Result<(), Response> {
        if !self.config.enabled {
            return Ok(());
        }
        let Some(rate) = bucket.rate() else {
            return Ok(());
        };
        let verdict = match &self.shared {
            None => self.local.check((class.name(), who), now_us(), rate),
            Some(shared) => {
                // Failed within the last second: the failure mode at once, without waiting
                // for a connection that is not there.
                if now_us() < self.redis_down_until_us.load(Ordering::Relaxed) {
                    return self.redis_failed("Redis failed within the last second");
                }
                let key = match who {
                    Who::Ip(ip) => format!("{}:ip:{ip}", class.name()),
                    Who::User(user) => format!("{}:user:{user}", class.name()),
                };
                let timeout = Duration::from_millis(self.config.redis_timeout_ms);
                match tokio::time::timeout(timeout, shared.check(&key, rate)).await {
                    Ok(Ok(verdict)) => {
                        self.redis_down_until_us.store(0, Ordering::Relaxed);
                        verdict
                    }
                    Ok(Err(err)) => {
                        self.redis_down_until_us
                            .store(now_us() + REDIS_DOWN_FOR_US, Ordering::Relaxed);
                        return self.redis_failed(&err.to_string());
                    }
                    Err(_) => {
                        self.redis_down_until_us
                            .store(now_us() + REDIS_DOWN_FOR_US, Ordering::Relaxed);
                        return self.redis_failed("no answer within redis_timeout_ms");
                    }
                }
            }
        };
        match verdict {
            Verdict::Admit => Ok(()),
            Verdict::Refuse { retry_after_us } => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                Err(too_many_requests(class, retry_after_us))
            }
        }
    }

    fn redis_failed(&self, err: &str) -> Result<(), Response> {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        let now = now_us() as i64 / 1_000_000;
        let last = self.last_logged.load(Ordering::Relaxed);
        if now > last
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %err,
                mode = ?self.config.on_redis_error,
                errors = self.redis_errors.load(Ordering::Relaxed),
                "rate limiter: Redis failed; failing {}",
                match self.config.on_redis_error {
                    FailMode::Open => "open (admitting)",
                    FailMode::Closed => "closed (refusing)",
                }
            );
        }
        match self.config.on_redis_error {
            FailMode::Open => Ok(()),
            // Bare, so that a page gets the site's error page and the API a problem.
            FailMode::Closed => {
                let mut refused = flotilla_chassis::layers::bare(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "rate-limit-unavailable",
                    "cannot check rate limits right now; retry shortly",
                );
                refused.headers_mut().insert(
                    header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
                Err(refused)
            }
        }
    }
}

/// The address that stands for `ip`'s host: itself for IPv4, its /64 for IPv6 (an IPv4 address
/// mapped into IPv6 is the IPv4 address).
fn per_host(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// 429, bare (rendered as the site's page or a problem by the edge), with `Retry-After` in
/// whole seconds, at least 1.
fn too_many_requests(class: Class, retry_after_us: u64) -> Response {
    let secs = retry_after_us.div_ceil(1_000_000).max(1);
    let detail = match class {
        Class::Login => "too many logins or sign-ups from here; wait before trying again",
        Class::Write | Class::Read => "too many requests; slow down and retry later",
    };
    let mut response =
        flotilla_chassis::layers::bare(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED, detail);
    if let Ok(value) = secs.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_method_and_path() {
        assert_eq!(
            Class::of(&Method::POST, "/api/identity/login"),
            Class::Login
        );
        assert_eq!(Class::of(&Method::POST, "/signup"), Class::Login);
        assert_eq!(Class::of(&Method::GET, "/login"), Class::Read);
        assert_eq!(Class::of(&Method::POST, "/api/orders"), Class::Write);
        assert_eq!(
            Class::of(&Method::DELETE, "/api/cart/items/p1"),
            Class::Write
        );
        assert_eq!(Class::of(&Method::HEAD, "/"), Class::Read);
    }

    #[test]
    fn ipv6_hosts_are_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::V4(0.into()));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(per_host(a), per_host(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(
            per_host(mapped),
            "192.0.2.7".parse::<IpAddr>().ok().unwrap_or(mapped)
        );
    }

    #[test]
    fn forwarded_for_is_read_only_behind_trusted_hops() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "6.6.6.6, 10.0.0.1".parse().expect("value"),
        );
        headers.append("x-forwarded-for", "10.0.0.2".parse().expect("value"));
        let peer = Some("10.0.0.3".parse().expect("ip"));
        let with = |hops| {
            let config = RateLimitConfig {
                forwarded_for_hops: hops,
                ..RateLimitConfig::default()
            };
            RateLimiter::new(config, None, "t")
                .expect("limiter")
                .client_ip(peer, &headers)
        };
        assert_eq!(with(0), peer, "no trusted proxy: the TCP peer");
        assert_eq!(with(1), Some("10.0.0.2".parse().expect("ip")));
        assert_eq!(with(2), Some("10.0.0.1".parse().expect("ip")));
        assert_eq!(with(3), Some("6.6.6.6".parse().expect("ip")));
        assert_eq!(with(4), peer, "fewer entries than hops: the TCP peer");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut config = RateLimitConfig::default();
        config.login.per_ip.burst = 0;
        assert!(config.validate().is_err());
        let mut config = RateLimitConfig::default();
        config.read.per_user.per_second = -1.0;
        assert!(config.validate().is_err());
        let mut config = RateLimitConfig::default();
        config.read.per_user = Bucket::new(0.0, 0);
        assert!(config.validate().is_ok(), "0/s turns a bucket off");
    }
}
