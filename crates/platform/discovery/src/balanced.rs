//! One transport over every live instance of a service: each request goes to one instance,
//! chosen by the power of two choices (two instances at random, the cheaper one wins;
//! Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", 2001), with outlier
//! ejection and active health checks ([`crate::outlier`], Envoy's semantics).
//!
//! The cost compared is peak-EWMA latency × (requests in flight + 1), as Finagle and linkerd
//! use, with every failure recorded as a slow answer (`failure_penalty_ms`). Comparing requests
//! in flight alone (what this transport did before) favours the instance that fails fastest: an
//! operator saw 30 % of reads fail under load with one of two replicas killed.
//!
//! Why not tower's `balance::p2c::Balance` any more: it only sees readiness, so it can neither
//! hand a refused request back to be sent to *another* instance nor tell an ejected endpoint
//! from a busy one, and its buffer worker put a task hop on every call. The picking here is
//! twenty lines over a shared, copy-on-write instance list that a background task keeps in step
//! with the discovery watch channel.
//!
//! What a request can expect:
//!
//! - **No instances means an immediate `NoInstance`**, not a wait.
//! - **A removed instance gets no new requests**: the background task applies every discovery
//!   change as soon as the watch channel is written; requests already on their way finish.
//! - **An ejected instance gets no new requests** while another is in rotation. Only when every
//!   instance the set holds is ejected (the set shrank under an ejection) are they all used
//!   again, as Envoy's panic routing does: a possibly dead instance beats a certain failure.
//! - **A refused connection is sent again, once, to another instance** (in rotation if any,
//!   ejected otherwise), whatever
//!   its method: the request never reached the refusing instance. The body is kept for that
//!   when its length is known and at most [`REPLAY_BODY_LIMIT`]; a larger or streamed body is
//!   sent once. A request that reached an instance is never repeated here (the retry layer
//!   decides that, within its budget).
//!
//! Failures are not hidden: a request that finds no way through fails with the instance's
//! [`TransportError`], naming the instance in its cause.

use axum::body::{Body, Bytes};
use axum::http::{Extensions, HeaderMap, Method, Request, Response, Uri, Version};
use futures::future::Either;
use futures::future::join_all;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tower::util::BoxCloneSyncService;

use crate::outlier::{Outcome, OutlierSettings, OutlierState};
use flotilla_chassis::deadline::DEADLINE_EXCEEDED_MARK;
use flotilla_chassis::problem::DEPENDENCY_FAILED_MARK;
use flotilla_chassis::resilience::retry::{RetryAttempt, TriedInstances};
use flotilla_chassis::transport::deadline;
use flotilla_chassis::transport::http::{HttpEndpoint, HttpPool, UnreachableInstance};
use flotilla_chassis::transport::{Transport, TransportError};

/// Cost of an unmeasured instance with a request in flight: above any real one (about a day).
const UNMEASURED_BUSY: f64 = 1e14;

/// Added to every measured latency estimate in the balancer's cost (ns): about a loopback
/// round trip, so that between instances idle long enough for their estimates to decay, the
/// requests in flight decide.
const LATENCY_FLOOR_NS: f64 = 200_000.0;

/// What a call ends with.
type Answer = Result<Response<Body>, TransportError>;

/// Largest request body kept in memory so that a refused request can be sent again.
pub const REPLAY_BODY_LIMIT: u64 = 64 * 1024;

/// A transport that spreads requests to `service` over the base URLs currently in `instances`,
/// with the default outlier settings. See [`Balancer`] for the handle that also reports.
///
/// Must be called within a tokio runtime.
pub fn balanced(
    service: &str,
    instances: watch::Receiver<Vec<String>>,
    pool: &HttpPool,
) -> Transport {
    Balancer::new(service, instances, pool, OutlierSettings::default()).transport()
}

/// The balancer of one service: hands out its [`Transport`] and reports its instances.
///
/// Must be created within a tokio runtime: a task of its own follows discovery and probes the
/// instances; it ends when the last clone of the balancer and of its transports is dropped.
#[derive(Clone)]
pub struct Balancer {
    shared: Arc<Shared>,
}

/// What the transports, the report and the background task share.
struct Shared {
    service: String,
    pool: HttpPool,
    settings: OutlierSettings,
    /// The current instances, replaced whole on each discovery change (readers clone the Arc).
    instances: RwLock<Arc<Vec<Arc<Instance>>>>,
    /// Discovery's channel, checked before every pick so that a change written to it is in
    /// effect for the next request (the background task applies it too when no request comes).
    discovery: Mutex<watch::Receiver<Vec<String>>>,
    discovery_closed: AtomicBool,
    /// Serialises ejections, so that two at once cannot both pass the cap.
    ejecting: Mutex<()>,
}

/// One instance: its endpoint, counters and outlier state.
struct Instance {
    /// Shared with each call's [`TriedInstances`] without a copy.
    url: Arc<str>,
    /// Called by reference: no transport is cloned per call.
    endpoint: HttpEndpoint,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Requests sent while it was ejected (only when every instance was).
    routed_while_ejected: AtomicU64,
    state: Mutex<OutlierState>,
}

impl Instance {
    fn state(&self) -> std::sync::MutexGuard<'_, OutlierState> {
        // The state is plain counters: one left mid-update by a panic is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_ejected(&self) -> bool {
        self.state().is_ejected()
    }

    /// Whether its last answer was a failure.
    fn failing(&self) -> bool {
        self.state().consecutive() != (0, 0)
    }
}

/// One request in an instance's in-flight count, left when dropped: also when the caller
/// gives up on the request, so the count cannot leak.
struct InFlight(Arc<Instance>);

impl InFlight {
    fn enter(instance: Arc<Instance>) -> Self {
        instance.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(instance)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The least time an attempt must have had for its running out to be held against the
/// instance: a client's own deadline of a few milliseconds says nothing about it (an outside
/// tester ejected healthy replicas with `x-flotilla-deadline-ms: 1`). The retry layer's
/// shortest per-try cut is as long.
const FAIR_CHANCE: Duration = Duration::from_millis(100);

/// An attempt still waiting for its instance's answer. The stack's per-attempt deadline ends a
/// hung attempt by dropping its future, so without this the instance would never be blamed for
/// it and would keep its turn until an active probe failed. Dropped at or after the cut-off
/// the stack announced ([`deadline::cut_off`]), the attempt counts as a 504 would (Envoy maps
/// a timeout to a gateway failure the same way): five in a row eject the instance, and the
/// failure penalty makes it lose the balancer's comparison at once. Dropped earlier, its
/// caller gave up, which blames no one.
struct Unanswered<'a> {
    balancer: &'a Shared,
    instance: &'a Arc<Instance>,
    started: Instant,
    cut: Option<tokio::time::Instant>,
}

impl Unanswered<'_> {
    /// The answer came: nothing to record here.
    fn answered(mut self) {
        self.cut = None;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(cut) = self.cut
            && tokio::time::Instant::now() >= cut
        {
            let now = Instant::now();
            self.balancer
                .record(self.instance, Outcome::ServerError, now - self.started, now);
        }
    }
}

/// A serde snapshot of a balancer, for an admin endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct BalancerSnapshot {
    /// The service balanced over.
    pub service: String,
    /// The effective settings.
    pub settings: OutlierSettings,
    /// Each instance discovery currently lists, ejected or not.
    pub instances: Vec<InstanceSnapshot>,
}

/// One instance's counters.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceSnapshot {
    /// Base URL.
    pub url: String,
    /// Requests sent to it (each attempt counts).
    pub requests: u64,
    /// Of those, failed ones: 5xx, refused, reset or timed out.
    pub failures: u64,
    /// Requests waiting for its answer now.
    pub in_flight: usize,
    /// Whether it is out of rotation now.
    pub ejected: bool,
    /// Times it has been ejected.
    pub ejections: u64,
    /// Until when (ms since the Unix epoch) it stays out at least; a probe must pass after.
    pub ejected_until_unix_ms: Option<u64>,
    /// Current run of 5xx answers.
    pub consecutive_5xx: u32,
    /// Current run of local-origin failures.
    pub consecutive_local_failures: u32,
    /// Peak-EWMA latency estimate now, in ms (failures count as the penalty).
    pub latency_ewma_ms: f64,
    /// Requests it got while ejected (only when every instance was).
    pub routed_while_ejected: u64,
}

impl Balancer {
    /// A balancer over the base URLs in `instances`, with `settings` (validated by the caller;
    /// see [`OutlierSettings::validate`]).
    pub fn new(
        service: &str,
        mut instances: watch::Receiver<Vec<String>>,
        pool: &HttpPool,
        settings: OutlierSettings,
    ) -> Self {
        let first = instances.borrow_and_update().clone();
        let shared = Arc::new(Shared {
            service: service.to_owned(),
            pool: pool.clone(),
            settings,
            instances: RwLock::new(Arc::new(Vec::new())),
            discovery: Mutex::new(instances.clone()),
            discovery_closed: AtomicBool::new(false),
            ejecting: Mutex::new(()),
        });
        shared.update(&first);
        tokio::spawn(follow(Arc::downgrade(&shared), instances));
        Self { shared }
    }

    /// The service balanced over.
    pub fn service(&self) -> &str {
        &self.shared.service
    }

    /// The transport: cheap to clone, all clones share this balancer.
    pub fn transport(&self) -> Transport {
        let shared = self.shared.clone();
        BoxCloneSyncService::new(tower::service_fn(move |req: Request<Body>| {
            Arc::clone(&shared).call(req)
        }))
    }

    /// Every instance's counters now.
    pub fn snapshot(&self) -> BalancerSnapshot {
        let now = Instant::now();
        let settings = &self.shared.settings;
        let instances = self
            .shared
            .current()
            .iter()
            .map(|instance| {
                let state = instance.state();
                let (consecutive_5xx, consecutive_local_failures) = state.consecutive();
                InstanceSnapshot {
                    url: instance.url.to_string(),
                    requests: instance.requests.load(Ordering::Relaxed),
                    failures: instance.failures.load(Ordering::Relaxed),
                    in_flight: instance.in_flight.load(Ordering::Relaxed),
                    ejected: state.is_ejected(),
                    ejections: state.ejections,
                    ejected_until_unix_ms: state.ejected_until_unix_ms(),
                    consecutive_5xx,
                    consecutive_local_failures,
                    latency_ewma_ms: state.latency(now, settings) / 1e6,
                    routed_while_ejected: instance.routed_while_ejected.load(Ordering::Relaxed),
                }
            })
            .collect();
        BalancerSnapshot {
            service: self.shared.service.clone(),
            settings: settings.clone(),
            instances,
        }
    }
}

impl Shared {
    fn current(&self) -> Arc<Vec<Arc<Instance>>> {
        self.instances
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies the newest set discovery wrote, if it changed since the last look.
    fn refresh(&self) {
        let mut discovery = self
            .discovery
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A closed channel keeps its last value: applied once, then the set stays as it is.
        let apply = match discovery.has_changed() {
            Ok(changed) => changed,
            Err(_) => !self.discovery_closed.swap(true, Ordering::Relaxed),
        };
        if apply {
            let urls = discovery.borrow_and_update().clone();
            self.update(&urls);
        }
    }

    /// Makes the instance list `urls`, keeping the state of instances already known.
    fn update(&self, urls: &[String]) {
        let current = self.current();
        let known: HashMap<&str, &Arc<Instance>> = current.iter().map(|i| (&*i.url, i)).collect();
        let now = Instant::now();
        let mut next = Vec::with_capacity(urls.len());
        for url in urls {
            if let Some(instance) = known.get(url.as_str()) {
                next.push(Arc::clone(instance));
                continue;
            }
            match self.pool.endpoint(&self.service, url) {
                Ok(endpoint) => next.push(Arc::new(Instance {
                    url: Arc::from(url.as_str()),
                    endpoint,
                    in_flight: AtomicUsize::new(0),
                    requests: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    routed_while_ejected: AtomicU64::new(0),
                    state: Mutex::new(OutlierState::new(now)),
                })),
                Err(error) => {
                    tracing::warn!(service = %self.service, %error, "ignoring an instance");
                }
            }
        }
        *self
            .instances
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
    }

    /// [`Self::pick`], preferring an instance the call has not tried yet (a retry goes
    /// elsewhere when it can), and noting the one picked among the tried.
    fn pick_untried(
        &self,
        all: &[Arc<Instance>],
        tried: Option<&TriedInstances>,
        except: Option<&Arc<Instance>>,
    ) -> Option<Arc<Instance>> {
        let not_except = |i: &Arc<Instance>| except.is_none_or(|e| !Arc::ptr_eq(e, i));
        let chosen = match tried {
            // The first attempt has nothing to avoid.
            Some(tried) if !tried.is_empty() => self
                .pick(all, |i| not_except(i) && !tried.contains(&i.url))
                .or_else(|| self.pick(all, not_except)),
            _ => self.pick(all, not_except),
        };
        if let (Some(tried), Some(chosen)) = (tried, &chosen) {
            tried.push(&chosen.url);
        }
        chosen
    }

    /// Power of two choices among the `allowed` instances in rotation; when none is in
    /// rotation, among the ejected ones (panic routing). When the winner's last answer was a
    /// failure, the cheapest of all is taken instead. The candidates are walked, not
    /// collected: no allocation per pick.
    fn pick(
        &self,
        all: &[Arc<Instance>],
        allowed: impl Fn(&Arc<Instance>) -> bool,
    ) -> Option<Arc<Instance>> {
        let allowed = &allowed;
        let in_rotation = all.iter().filter(|i| allowed(i) && !i.is_ejected()).count();
        let ejected = in_rotation == 0;
        let candidates = || {
            all.iter()
                .filter(move |i| allowed(i) && (ejected || !i.is_ejected()))
        };
        let n = if ejected {
            candidates().count()
        } else {
            in_rotation
        };
        let chosen = match n {
            0 => return None,
            1 => candidates().next(),
            n => {
                let a = random_below(n);
                let b = (a + 1 + random_below(n - 1)) % n;
                let now = Instant::now();
                // An ejection between the walks can shorten the list: take what is there.
                let winner = match (candidates().nth(a), candidates().nth(b)) {
                    (Some(x), Some(y)) if self.cost(y, now) < self.cost(x, now) => Some(y),
                    (x, y) => x.or(y).or_else(|| candidates().next()),
                };
                if winner.is_some_and(|w| w.failing()) {
                    // Both drawn were failing (two of three failing, one of them kept in
                    // rotation by the cap, is a third of all draws): look at every one.
                    candidates()
                        .min_by(|x, y| self.cost(x, now).total_cmp(&self.cost(y, now)))
                        .or(winner)
                } else {
                    winner
                }
            }
        }?;
        if ejected {
            chosen.routed_while_ejected.fetch_add(1, Ordering::Relaxed);
        }
        Some(Arc::clone(chosen))
    }

    /// (Peak-EWMA latency + a floor) × (requests in flight + 1). An instance not measured
    /// yet (new, or back from an ejection) costs nothing while idle, so it is tried at once,
    /// and more than anything while its first request is out, so a hung newcomer holds one
    /// request, not all (Finagle's rule). The floor ([`LATENCY_FLOOR_NS`]) keeps the requests
    /// in flight counting once the estimates of idle instances have decayed towards zero:
    /// without it, an instance measured long ago and frozen since cost about nothing however
    /// many requests it held, and a burst went almost whole to it (20 of 23 calls, in an
    /// outside tester's run).
    fn cost(&self, instance: &Instance, now: Instant) -> f64 {
        let latency = instance.state().latency(now, &self.settings);
        let in_flight = instance.in_flight.load(Ordering::Relaxed);
        match (latency == 0.0, in_flight) {
            (true, 0) => 0.0,
            (true, _) => UNMEASURED_BUSY,
            (false, n) => (latency + LATENCY_FLOOR_NS) * (n as f64 + 1.0),
        }
    }

    /// Picks an instance now, in the caller's task, and sends `req` to it. The future is
    /// small (it only waits for the instance's answer) unless the request may have to be sent
    /// again after a refused connection (more than one instance, a body kept for that): that
    /// rarer path is boxed on its own.
    fn call(self: Arc<Self>, req: Request<Body>) -> impl Future<Output = Answer> + Send {
        self.refresh();
        let all = self.current();
        // Read here, as the retry layer above hands the attempt over (see `RetryAttempt`).
        let tried = RetryAttempt::current().map(|attempt| attempt.tried().clone());
        let cut = deadline::cut_off();
        let Some(first) = self.pick_untried(&all, tried.as_ref(), None) else {
            let none = TransportError::NoInstance(self.service.clone());
            return Either::Left(std::future::ready(Err(none)));
        };
        // Keeping a copy only pays when there is somewhere else to send it.
        if all.len() > 1 && Replay::fits(&req) {
            return Either::Right(Either::Right(Box::pin(
                self.call_with_replay(first, tried, cut, req),
            )));
        }
        Either::Right(Either::Left(self.attempt(first, req, cut)))
    }

    /// [`Self::call`] keeping a copy of the request, sent once more to another instance if the
    /// first refuses the connection.
    async fn call_with_replay(
        self: Arc<Self>,
        first: Arc<Instance>,
        tried: Option<TriedInstances>,
        cut: Option<tokio::time::Instant>,
        req: Request<Body>,
    ) -> Answer {
        let (req, replay) = Replay::split(req, &self.service).await?;
        let result = Arc::clone(&self)
            .attempt(Arc::clone(&first), req, cut)
            .await;
        match (result, replay) {
            (Err(error), Some(replay)) if never_sent(&error) => {
                // An ejected instance, when no other is left in rotation, is still a better
                // bet than one that just refused.
                let all = self.current();
                match self.pick_untried(&all, tried.as_ref(), Some(&first)) {
                    Some(second) => self.attempt(second, replay.into_request(), cut).await,
                    None => Err(error),
                }
            }
            (result, _) => result,
        }
    }

    /// Sends `req` to `instance` now; the future waits for the answer and records it, or
    /// records the attempt's cut at `cut` ([`Unanswered`]).
    fn attempt(
        self: Arc<Self>,
        instance: Arc<Instance>,
        req: Request<Body>,
        cut: Option<tokio::time::Instant>,
    ) -> impl Future<Output = Answer> + Send {
        instance.requests.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight::enter(instance);
        let started = Instant::now();
        // A cut sooner than a fair chance is the caller's doing.
        let cut = cut.filter(|cut| {
            cut.saturating_duration_since(tokio::time::Instant::now()) >= FAIR_CHANCE
        });
        let call = in_flight.0.endpoint.call(req);
        async move {
            let unanswered = Unanswered {
                balancer: &self,
                instance: &in_flight.0,
                started,
                cut,
            };
            let result = call.await;
            unanswered.answered();
            let now = Instant::now();
            let instance = Arc::clone(&in_flight.0);
            drop(in_flight);
            let took = now - started;
            let outcome = match &result {
                // The instance answered for a dependency of its own: any instance would.
                Ok(response) if response.headers().contains_key(DEPENDENCY_FAILED_MARK) => None,
                // It ran out of the deadline the caller gave it (504 deadline-exceeded): as for
                // a cut below, only a fair chance makes that the instance's fault.
                Ok(response)
                    if response.headers().contains_key(DEADLINE_EXCEEDED_MARK)
                        && took < FAIR_CHANCE =>
                {
                    None
                }
                Ok(response) => match response.status().as_u16() {
                    500 | 502 | 503 | 504 => Some(Outcome::ServerError),
                    _ => Some(Outcome::Success),
                },
                // The request's deadline ran out: the instance's fault only if it had a fair
                // chance, and then as a 504 would be.
                Err(TransportError::DeadlineExceeded(_)) => {
                    (took >= FAIR_CHANCE).then_some(Outcome::ServerError)
                }
                Err(_) => Some(Outcome::LocalFailure),
            };
            if let Some(outcome) = outcome {
                self.record(&instance, outcome, took, now);
            }
            result
        }
    }

    /// Counts an outcome and ejects the instance when it crossed a threshold and the cap allows.
    fn record(&self, instance: &Arc<Instance>, outcome: Outcome, rtt: Duration, now: Instant) {
        if outcome != Outcome::Success {
            instance.failures.fetch_add(1, Ordering::Relaxed);
        }
        let crossed = instance.state().record(outcome, rtt, now, &self.settings);
        if crossed {
            self.try_eject(instance);
        }
    }

    fn try_eject(&self, instance: &Arc<Instance>) {
        let _one_at_a_time = self
            .ejecting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let all = self.current();
        let ejected = all.iter().filter(|i| i.is_ejected()).count();
        let cap = self.settings.ejection_cap(all.len());
        let mut state = instance.state();
        if state.is_ejected() || !all.iter().any(|i| Arc::ptr_eq(i, instance)) {
            return;
        }
        if ejected >= cap {
            tracing::debug!(service = %self.service, url = %instance.url, ejected, cap,
                "outlier not ejected: the cap is reached");
            return;
        }
        let time = state.eject(Instant::now(), &self.settings);
        tracing::warn!(service = %self.service, url = %instance.url,
            ejection = state.ejections, ms = time.as_millis() as u64, "instance ejected");
    }

    /// Starts the health checks that are due, in a task of their own so that a hung instance
    /// holds up neither discovery changes nor the other probes. Ejected instances are probed
    /// every health interval (back when their time is over, or early when the rotation is
    /// failing: `OutlierState::probed_while_ejected`); instances in rotation when `probe_all`.
    fn start_probes(self: &Arc<Self>) {
        let now = Instant::now();
        // Not due again before this probe has had its time.
        let busy_until = now + self.settings.health_interval() + self.settings.health_timeout();
        let due: Vec<Arc<Instance>> = self
            .current()
            .iter()
            .filter(|i| {
                let mut state = i.state();
                let due =
                    state.next_probe <= now && (state.is_ejected() || self.settings.probe_all);
                if due {
                    state.next_probe = busy_until;
                }
                due
            })
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            join_all(due.iter().map(|instance| shared.probe(instance))).await;
        });
    }

    async fn probe(&self, instance: &Arc<Instance>) {
        let passed = self.probe_passes(instance).await;
        let now = Instant::now();
        // Read before the instance's own state is locked (one lock at a time).
        let rotation_failing = self
            .current()
            .iter()
            .any(|i| !Arc::ptr_eq(i, instance) && !i.is_ejected() && i.failing());
        let was_ejected = {
            let mut state = instance.state();
            if state.is_ejected() {
                state.probed_while_ejected(passed, rotation_failing, now, &self.settings);
                true
            } else {
                state.next_probe = now + self.settings.health_interval();
                false
            }
        };
        if was_ejected {
            if passed {
                tracing::info!(service = %self.service, url = %instance.url,
                    "instance back in rotation");
            }
        } else if !passed {
            self.record(
                instance,
                Outcome::LocalFailure,
                self.settings.health_timeout(),
                now,
            );
        }
    }

    async fn probe_passes(&self, instance: &Instance) -> bool {
        let Ok(request) = Request::get(self.settings.health_path.as_str()).body(Body::empty())
        else {
            return false;
        };
        let answer = tokio::time::timeout(
            self.settings.health_timeout(),
            instance.endpoint.call(request),
        )
        .await;
        matches!(answer, Ok(Ok(response)) if response.status().is_success())
    }

    /// When the background task should look again: the earliest due probe, at most one
    /// health interval away.
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let interval = self.settings.health_interval();
        self.current()
            .iter()
            .filter_map(|i| {
                let state = i.state();
                (state.is_ejected() || self.settings.probe_all)
                    .then(|| state.next_probe.saturating_duration_since(now))
            })
            .min()
            .unwrap_or(interval)
            .min(interval)
    }
}

/// The background task: applies discovery changes and runs the probes that are due. Holds the
/// balancer only weakly between rounds, so it ends once nobody uses the balancer.
async fn follow(shared: Weak<Shared>, mut instances: watch::Receiver<Vec<String>>) {
    let mut discovery_open = true;
    loop {
        let wake = match shared.upgrade() {
            Some(shared) => shared.next_wake(),
            None => return,
        };
        let changed = tokio::select! {
            changed = instances.changed(), if discovery_open => {
                // A closed channel leaves the last set in place.
                discovery_open = changed.is_ok();
                changed.is_ok()
            }
            () = tokio::time::sleep(wake) => false,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if changed {
            instances.borrow_and_update();
            shared.refresh();
        } else {
            shared.start_probes();
        }
    }
}

/// Whether the request failed before any byte of it left: the connection was refused (or
/// could not be made at all), so another instance may be asked with no risk.
fn never_sent(error: &TransportError) -> bool {
    match error {
        TransportError::Connect { source, .. } => source
            .downcast_ref::<UnreachableInstance>()
            .is_some_and(|cause| cause.source.is_connect()),
        _ => false,
    }
}

/// A copy of a request, to send it again after a refused connection.
struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
}

impl Replay {
    /// Whether a copy of `req` can be kept: its body is small and of known length.
    fn fits(req: &Request<Body>) -> bool {
        use axum::body::HttpBody as _;
        req.body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= REPLAY_BODY_LIMIT)
    }

    /// Splits `req` into the request to send first and, when its body is small and of known
    /// length, a copy to send again.
    async fn split(
        req: Request<Body>,
        service: &str,
    ) -> Result<(Request<Body>, Option<Self>), TransportError> {
        use axum::body::HttpBody as _;
        let known = req.body().size_hint().exact();
        let Some(length) = known.filter(|n| *n <= REPLAY_BODY_LIMIT) else {
            return Ok((req, None));
        };
        let (parts, body) = req.into_parts();
        let limit = usize::try_from(length).unwrap_or(usize::MAX);
        let body =
            axum::body::to_bytes(body, limit)
                .await
                .map_err(|error| TransportError::Connect {
                    service: service.to_owned(),
                    source: error.into(),
                })?;
        let replay = Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
            body: body.clone(),
        };
        Ok((Request::from_parts(parts, Body::from(body)), Some(replay)))
    }

    fn into_request(self) -> Request<Body> {
        let mut req = Request::new(Body::from(self.body));
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        *req.extensions_mut() = self.extensions;
        req
    }
}

/// A uniformly random index below `n` (n ≥ 1).
fn random_below(n: usize) -> usize {
    (rand::random::<u64>() % n as u64) as usize
}
