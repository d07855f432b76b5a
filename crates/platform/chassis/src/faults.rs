//! Fault injection: latency (fixed or jittered), error statuses and aborted connections, on a
//! service's own routes or on its calls to a peer, switched on and off at run time through
//! `/admin/faults` (admin role) and `flotilla chaos`. They are the faults the resilience tests
//! and operators inject to see deadlines, retries, breakers and fallbacks at work.
//!
//! Each service instance keeps its faults in memory ([`Faults`]): they vanish with the process
//! and apply to that instance only (through the gateway, a fleet's `POST` reaches one replica).
//! Every fault expires (at most an hour), so a forgotten experiment cannot outlive the
//! afternoon. Time is tokio's (tests pause it), and the dice are the chassis's usual
//! `rand::random`.
//!
//! - [`spec`]: the request, its checks and the route patterns;
//! - [`inject`]: the server side, a layer of the standard stack (inside the trust check, so
//!   the caller is known; outside the service's own timeout, so a delay is the delay asked for);
//! - [`crate::transport::faulted`]: the client side, a tower layer around the `Transport`s `Peers` hands out;
//! - [`admin`]: the routes.
//!
//! Faults never touch a service's `/admin/` routes (so the API that removes them always works)
//! or its contract documents; the probes are faulted only by a route that names them.

pub mod admin;
pub mod inject;
pub mod spec;

use axum::http::Method;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

use crate::control_plane::{is_operator_route as is_exempt, is_probe};

pub use inject::AbortConnection;
pub use spec::{Failure, FaultSpec, NewFault, RoutePattern, Target};

/// Most faults active at once in one instance (409 beyond).
pub const MAX_ACTIVE: usize = 1_000;

/// One service instance's active faults. Clones share them.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Registry>,
}

struct Registry {
    service: &'static str,
    /// How many faults are in `active` (expired ones included until pruned): zero lets every
    /// request pass without taking the lock.
    count: AtomicUsize,
    // A std lock: held to scan a short list, never across an await.
    active: Mutex<Vec<Arc<Active>>>,
    /// The peers the service calls, once `launch` has seen it build its clients: a fault on
    /// any other upstream could never fire, so it is refused.
    upstreams: OnceLock<Vec<String>>,
}

/// A fault in force.
struct Active {
    id: String,
    spec: FaultSpec,
    expires: Instant,
    matched: AtomicU64,
    fired: AtomicU64,
}

/// An active fault as the admin API shows it.
#[derive(Debug, Clone)]
pub struct FaultView {
    /// Its id (`flt_…`).
    pub id: String,
    /// What it does.
    pub spec: FaultSpec,
    /// Time until it expires.
    pub remaining: Duration,
    /// Requests its target matched.
    pub matched: u64,
    /// Requests it acted on.
    pub fired: u64,
}

/// What the faults that fired on one request do to it: wait, then fail (or serve it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// Total delay before anything else.
    pub delay: Duration,
    /// The failure of the first fault that has one, with that fault's id.
    pub failure: Option<(Failure, String)>,
}

/// Adding a fault failed: the instance already holds [`MAX_ACTIVE`].
#[derive(Debug, thiserror::Error)]
#[error("this instance already has {MAX_ACTIVE} active faults; remove some first")]
pub struct TooManyFaults;

impl Faults {
    /// No faults, for `service`.
    pub fn new(service: &'static str) -> Self {
        Self {
            inner: Arc::new(Registry {
                service,
                count: AtomicUsize::new(0),
                active: Mutex::new(Vec::new()),
                upstreams: OnceLock::new(),
            }),
        }
    }

    /// The service these faults belong to.
    pub fn service(&self) -> &'static str {
        self.inner.service
    }

    /// Records the peers the service calls (the first call wins): from then on a fault on
    /// another upstream is refused.
    pub fn know_upstreams(&self, upstreams: Vec<String>) {
        let _ = self.inner.upstreams.set(upstreams);
    }

    /// What a new fault is checked against: this service, and the peers it calls if known.
    pub fn context(&self) -> spec::FaultContext<'_> {
        spec::FaultContext {
            service: self.inner.service,
            upstreams: self.inner.upstreams.get().map(Vec::as_slice),
        }
    }

    /// Puts `spec` in force until its lifetime runs out.
    pub fn add(&self, spec: FaultSpec) -> Result<FaultView, TooManyFaults> {
        let now = Instant::now();
        let mut active = self.lock();
        active.retain(|f| f.expires > now);
        if active.len() >= MAX_ACTIVE {
            self.inner.count.store(active.len(), Ordering::Relaxed);
            return Err(TooManyFaults);
        }
        let fault = Arc::new(Active {
            id: crate::ids::new_id("flt"),
            expires: now + spec.lifetime,
            spec,
            matched: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        });
        active.push(fault.clone());
        self.inner.count.store(active.len(), Ordering::Relaxed);
        tracing::warn!(service = self.inner.service, id = %fault.id, spec = ?fault.spec, "fault injected");
        Ok(fault.view(now))
    }

    /// The faults in force, oldest first.
    pub fn list(&self) -> Vec<FaultView> {
        let now = Instant::now();
        let mut active = self.lock();
        active.retain(|f| f.expires > now);
        self.inner.count.store(active.len(), Ordering::Relaxed);
        active.iter().map(|f| f.view(now)).collect()
    }

    /// Ends fault `id`; false when no such fault is in force.
    pub fn remove(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut active = self.lock();
        active.retain(|f| f.expires > now);
        let before = active.len();
        active.retain(|f| f.id != id);
        self.inner.count.store(active.len(), Ordering::Relaxed);
        before != active.len()
    }

    /// Ends every fault; returns how many were in force.
    pub fn clear(&self) -> usize {
        let now = Instant::now();
        let mut active = self.lock();
        let cleared = active.iter().filter(|f| f.expires > now).count();
        active.clear();
        self.inner.count.store(0, Ordering::Relaxed);
        cleared
    }

    /// What the faults do to a request this service serves, if any fires.
    pub fn on_served(&self, method: &Method, path: &str) -> Option<Injection> {
        if self.inner.count.load(Ordering::Relaxed) == 0 || is_exempt(path) {
            return None;
        }
        self.roll(|target| match target {
            // Only a route that names a probe faults it: a fault meant for the service's work
            // (`*:/*` included) should not make its supervisor or balancer give up on it.
            Target::Served(None) => !is_probe(path),
            Target::Served(Some(route)) if is_probe(path) => route.names(method, path),
            Target::Served(Some(route)) => route.matches(method, path),
            Target::Upstream { .. } => false,
        })
    }

    /// What the faults do to a call this service makes to `upstream`, if any fires.
    pub fn on_call(&self, upstream: &str, method: &Method, path: &str) -> Option<Injection> {
        if self.inner.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.roll(|target| match target {
            Target::Upstream {
                upstream: name,
                route,
            } => name == upstream && route.as_ref().is_none_or(|r| r.matches(method, path)),
            Target::Served(_) => false,
        })
    }

    /// Rolls the dice of every fault whose target `matches`: delays add up, the oldest failure
    /// wins.
    fn roll(&self, matches: impl Fn(&Target) -> bool) -> Option<Injection> {
        let now = Instant::now();
        let hits: Vec<Arc<Active>> = {
            let mut active = self.lock();
            if active.iter().any(|f| f.expires <= now) {
                active.retain(|f| f.expires > now);
                self.inner.count.store(active.len(), Ordering::Relaxed);
            }
            active
                .iter()
                .filter(|f| matches(&f.spec.target))
                .cloned()
                .collect()
        };
        let mut injection: Option<Injection> = None;
        for fault in hits {
            fault.matched.fetch_add(1, Ordering::Relaxed);
            if rand::random::<f64>() >= fault.spec.rate {
                continue;
            }
            fault.fired.fetch_add(1, Ordering::Relaxed);
            let it = injection.get_or_insert(Injection {
                delay: Duration::ZERO,
                failure: None,
            });
            it.delay += delay(fault.spec.latency, fault.spec.jitter);
            if it.failure.is_none() {
                it.failure = fault.spec.failure.map(|f| (f, fault.id.clone()));
            }
        }
        injection
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Active>>> {
        self.inner.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `latency` ± up to `jitter`, uniformly (Toxiproxy's latency toxic), never below zero.
fn delay(latency: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let jitter_ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX / 4);
    let span = jitter_ms.saturating_mul(2).saturating_add(1);
    let offset = rand::random::<u64>() % span; // 0 ..= 2 × jitter
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX / 4);
    Duration::from_millis((latency_ms + offset).saturating_sub(jitter_ms))
}

impl Active {
    fn view(&self, now: Instant) -> FaultView {
        FaultView {
            id: self.id.clone(),
            spec: self.spec.clone(),
            remaining: self.expires.saturating_duration_since(now),
            matched: self.matched.load(Ordering::Relaxed),
            fired: self.fired.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> FaultSpec {
        serde_json::from_value::<NewFault>(json)
            .expect("well-formed")
            .check()
            .expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn faults_expire_on_time_and_are_listed_with_what_is_left() {
        let faults = Faults::new("svc");
        faults
            .add(spec(serde_json::json!({"status": 503, "for_secs": 10})))
            .expect("added");
        faults
            .add(spec(serde_json::json!({"status": 500, "for_secs": 20})))
            .expect("added");
        tokio::time::advance(Duration::from_secs(4)).await;
        let listed = faults.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].remaining, Duration::from_secs(6));
        let hit = faults.on_served(&Method::GET, "/x").expect("fires");
        assert_eq!(
            hit.failure.map(|(f, _)| f),
            Some(Failure::Status(axum::http::StatusCode::SERVICE_UNAVAILABLE)),
            "the oldest failure wins"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(faults.list().len(), 1, "the first expired at 10 s");
        let hit = faults.on_served(&Method::GET, "/x").expect("fires");
        assert_eq!(
            hit.failure.map(|(f, _)| f),
            Some(Failure::Status(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            ))
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(
            faults.on_served(&Method::GET, "/x").is_none(),
            "all expired"
        );
        assert!(faults.list().is_empty());
        assert_eq!(
            faults.inner.count.load(Ordering::Relaxed),
            0,
            "fast path again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn targets_pick_their_requests_and_admin_routes_are_never_faulted() {
        let faults = Faults::new("svc");
        faults
            .add(spec(
                serde_json::json!({"route": "POST:/quotes", "abort": true}),
            ))
            .expect("added");
        faults
            .add(spec(
                serde_json::json!({"upstream": "catalog", "status": 502}),
            ))
            .expect("added");
        assert!(faults.on_served(&Method::POST, "/quotes").is_some());
        assert!(faults.on_served(&Method::GET, "/quotes").is_none());
        assert!(faults.on_served(&Method::POST, "/shipments").is_none());
        assert!(
            faults
                .on_call("catalog", &Method::GET, "/products")
                .is_some()
        );
        assert!(faults.on_call("cart", &Method::GET, "/").is_none());
        faults
            .add(spec(serde_json::json!({"latency_ms": 10})))
            .expect("added");
        assert!(faults.on_served(&Method::GET, "/anything").is_some());
        assert!(
            faults.on_served(&Method::GET, "/readyz").is_none(),
            "probes need a route"
        );
        for exempt in ["/admin/faults", "/admin/outbox", "/openapi.json"] {
            assert!(faults.on_served(&Method::GET, exempt).is_none(), "{exempt}");
        }
        faults
            .add(spec(serde_json::json!({"route": "/readyz", "status": 503})))
            .expect("added");
        assert!(faults.on_served(&Method::GET, "/readyz").is_some());
        let listed = faults.list();
        assert_eq!(listed[0].matched, 1);
        assert_eq!(listed[0].fired, 1);
        assert!(faults.remove(&listed[0].id));
        assert!(!faults.remove(&listed[0].id), "already gone");
        assert_eq!(faults.clear(), 3);
        assert!(faults.list().is_empty());
    }

    #[test]
    fn jittered_delays_stay_within_latency_plus_or_minus_jitter() {
        let (latency, jitter) = (Duration::from_millis(100), Duration::from_millis(30));
        let delays: Vec<Duration> = (0..2000).map(|_| delay(latency, jitter)).collect();
        assert!(delays.iter().all(|d| (70..=130).contains(&d.as_millis())));
        assert!(delays.iter().any(|d| d.as_millis() < 80), "spread low");
        assert!(delays.iter().any(|d| d.as_millis() > 120), "spread high");
        let floor = delay(Duration::from_millis(10), Duration::from_millis(50));
        assert!(floor <= Duration::from_millis(60));
    }

    #[test]
    fn the_registry_is_bounded() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let faults = Faults::new("svc");
            for _ in 0..MAX_ACTIVE {
                faults
                    .add(spec(serde_json::json!({"status": 503})))
                    .expect("room");
            }
            assert!(
                faults
                    .add(spec(serde_json::json!({"status": 503})))
                    .is_err()
            );
        });
    }
}
