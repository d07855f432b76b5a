//! The resilience stack as it is applied: one policy per upstream, read from `[resilience]`, and
//! one stack per upstream for each calling service (or the gateway), made the first time that
//! caller asks its [`Peers`](crate::transport::Peers) for the upstream and shared by every client
//! it builds on it. Outermost first, a call meets:
//!
//! 1. **circuit breaker** ([`super::breaker`]), the caller's view of the upstream's health,
//!    judging each call by what it ended with after its retries;
//! 2. **retry** ([`super::retry`]), within the caller's budget for that upstream;
//! 3. **bulkhead** ([`super::bulkhead`]), the caller's cap on calls in flight to it, per attempt;
//! 4. **deadline** ([`super::deadline`]), per attempt: the earliest of the request's deadline,
//!    the upstream's `timeout_ms` and, for a read that may be repeated, the retry's
//!    `try_timeout_ms`, so a hung attempt is cut in time for a retry;
//! 5. the caller's injected faults on the upstream ([`crate::transport::faulted`]), then the
//!    transport itself (in-process, or balanced over the instances with outlier ejection).
//!
//! The breaker sits outside the retries because the instances behind a balanced upstream are
//! judged one by one by the balancer's outlier ejection (Envoy's per-host breaking): one bad
//! instance of two, whose failed attempts are repeated on the good one, must be ejected, not
//! open the circuit to the whole upstream; and a call that fails three attempts is one failed
//! call, not three. The breaker opens when calls fail as the caller sees them: every instance
//! failing, or the retries not helping. It sits outside the bulkhead, so a call the full
//! bulkhead refuses is our own overload, not the upstream's failure; and outside the deadline,
//! so a cut call counts against the upstream. Faults sit under everything, so the stack meets
//! an injected fault as it would meet the real one.
//!
//! The layers are the ones tested one by one, composed for cost: steps 3 and 4 are one gate
//! ([`crate::transport::gate`]) and the retry loop drives it, the breaker's permit is taken and
//! settled around the loop, so a call through the stack is
//! one future (and one per attempt), each attempt reads the clock and the request's deadline
//! once and sets one timer, which the transport's own deadline layer beneath does not repeat;
//! a clone of the stack's transport (a typed client clones it for every call) costs one
//! allocation for the stack, not one per layer. What a call still costs, and where:
//! `docs/benchmarks.md`.
//!
//! **Configuration** (`flotilla.toml`, or `FLOTILLA_RESILIENCE__…` in the environment):
//! `[resilience]` holds the policy of every upstream (`deadline`, `retry`, `breaker`,
//! `bulkhead` tables, each with documented defaults) and `[resilience.upstreams.<name>]` the
//! keys that differ for one upstream, merged over the others key by key, as Dapr's resiliency
//! specs do: `FLOTILLA_RESILIENCE__UPSTREAMS__SHIPPING__BULKHEAD__MAX_IN_FLIGHT=8`.

use axum::body::Body;
use axum::http::Request;
use figment::Figment;
use figment::providers::Serialized;
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tower::util::BoxCloneSyncService;
use utoipa::ToSchema;

use super::breaker::{Breaker, BreakerConfig, BreakerSnapshot, BreakerState};
use super::bulkhead::{Bulkhead, BulkheadConfig, BulkheadSnapshot};
use super::deadline::{self, DeadlineConfig, DeadlineLayer};
use super::retry::{self, Retries, RetryConfig, RetryLayer, RetryStats};
use crate::metrics::http_client::{CallOutcome, ClientMetrics};
use crate::transport::gate::Gate;
use crate::transport::gate::{self, Admission};
use crate::transport::peers::UpstreamGuard;
use crate::transport::read_cache::{ReadCache, ReadCacheConfig, ReadCacheStats};
use crate::transport::{Transport, TransportError};

/// How calls to one upstream are made. Every table has its defaults (README, "Resilience").
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamPolicy {
    /// Per-attempt timeout, within the request's deadline.
    pub deadline: DeadlineConfig,
    /// Retries and their budget.
    pub retry: RetryConfig,
    /// The circuit breaker's thresholds.
    pub breaker: BreakerConfig,
    /// The cap on calls in flight.
    pub bulkhead: BulkheadConfig,
    /// The cache of public reads, for the clients that use one.
    pub read_cache: ReadCacheConfig,
}

impl UpstreamPolicy {
    /// Checks every table.
    pub fn validate(&self) -> Result<(), String> {
        self.deadline.validate().map_err(|e| e.to_string())?;
        self.retry.validate().map_err(|e| e.to_string())?;
        self.breaker.validate().map_err(|e| e.to_string())?;
        self.bulkhead.validate().map_err(|e| e.to_string())?;
        self.read_cache.validate().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The policy of every upstream: `[resilience]`, with the per-upstream overrides merged in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policies {
    default: UpstreamPolicy,
    upstreams: BTreeMap<String, UpstreamPolicy>,
}

/// A `[resilience]` section that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration [resilience{section}]: {reason}")]
pub struct InvalidPolicy {
    /// `""` or `.upstreams.<name>`.
    pub section: String,
    /// What is wrong.
    pub reason: String,
}

impl Policies {
    /// Reads `[resilience]` from `config` (its defaults when absent) and checks every policy.
    pub fn load(config: &Figment) -> Result<Self, InvalidPolicy> {
        let invalid = |section: &str, reason: String| InvalidPolicy {
            section: section.to_owned(),
            reason,
        };
        let mut section: Dict = if config.find_value("resilience").is_ok() {
            config
                .extract_inner("resilience")
                .map_err(|e| invalid("", e.to_string()))?
        } else {
            Dict::new()
        };
        let overrides = match section.remove("upstreams") {
            None => Dict::new(),
            Some(Value::Dict(_, dict)) => dict,
            Some(_) => return Err(invalid(".upstreams", "must be a table of upstreams".into())),
        };
        let base = Figment::from(Serialized::defaults(&section));
        let default: UpstreamPolicy = base.extract().map_err(|e| invalid("", e.to_string()))?;
        default.validate().map_err(|e| invalid("", e))?;
        let mut upstreams = BTreeMap::new();
        for (name, value) in overrides {
            let at = format!(".upstreams.{name}");
            let policy: UpstreamPolicy = base
                .clone()
                .merge(Serialized::defaults(&value))
                .extract()
                .map_err(|e| invalid(&at, e.to_string()))?;
            policy.validate().map_err(|e| invalid(&at, e))?;
            upstreams.insert(name, policy);
        }
        Ok(Self { default, upstreams })
    }

    /// Policies with `default` for every upstream (tests, benchmarks).
    pub fn uniform(default: UpstreamPolicy) -> Self {
        Self {
            default,
            upstreams: BTreeMap::new(),
        }
    }

    /// The policy for calls to `upstream`.
    pub fn for_upstream(&self, upstream: &str) -> &UpstreamPolicy {
        self.upstreams.get(upstream).unwrap_or(&self.default)
    }

    /// The upstreams given a policy of their own (to check them against the known services).
    pub fn named(&self) -> impl Iterator<Item = &str> {
        self.upstreams.keys().map(String::as_str)
    }
}

/// The stack of one caller towards one upstream.
struct Stack {
    policy: UpstreamPolicy,
    retry: RetryLayer,
    breaker: Arc<Breaker>,
    bulkhead: Arc<Bulkhead>,
    /// Bulkhead and per-attempt deadline as one gate (the same `Arc`).
    attempt: PerAttempt,
    read_cache: ReadCache,
    /// The caller's RED series for the upstream, timed around the whole stack.
    red: ClientMetrics,
}

/// The gates every attempt passes, outermost first.
type PerAttempt = (Arc<Bulkhead>, DeadlineLayer);

impl Stack {
    fn new(caller: &str, upstream: &str, policy: &UpstreamPolicy) -> Result<Self, InvalidPolicy> {
        let invalid = |reason: String| InvalidPolicy {
            section: format!(".upstreams.{upstream}"),
            reason,
        };
        let breaker =
            Breaker::new(upstream, policy.breaker.clone()).map_err(|e| invalid(e.to_string()))?;
        let bulkhead =
            Bulkhead::new(upstream, policy.bulkhead.clone()).map_err(|e| invalid(e.to_string()))?;
        let deadline = deadline::per_attempt(upstream, &policy.deadline);
        Ok(Self {
            policy: policy.clone(),
            retry: retry::layer(upstream, &policy.retry).map_err(|e| invalid(e.to_string()))?,
            attempt: (Arc::clone(&bulkhead), deadline),
            breaker,
            bulkhead,
            read_cache: ReadCache::new(&policy.read_cache).map_err(|e| invalid(e.to_string()))?,
            red: ClientMetrics::new(caller, upstream),
        })
    }

    /// `transport` inside the stack: the breaker's permit around the retry layer's loop, each
    /// attempt through the gate of bulkhead and deadline, all in one future (one allocation
    /// per call, one timer per attempt); the same as the layers nested (`breaker::layer`,
    /// `retry::layer`, ...), which are tested one by one. The first attempt is made in `Service::call` (when the
    /// request has no body to read first), calling `transport` by reference; a retry calls a
    /// clone of it, made for the call's first retry.
    fn wrap(self: &Arc<Self>, transport: Transport) -> Transport {
        let stack = Arc::clone(self);
        let for_retries = Arc::new(transport.clone());
        let mut transport = transport;
        BoxCloneSyncService::new(tower::service_fn(move |mut req: Request<Body>| {
            let at = Admission::now();
            // Refused at once by an open breaker: no attempt, no deposit in the budget.
            let permit = match stack.breaker.admit(&mut req, &at) {
                Ok(permit) => permit,
                Err(refused) => {
                    let red = stack.red.clone();
                    return futures::future::Either::Left(async move {
                        let refused = Err(refused);
                        red.record(outcome(&refused), std::time::Duration::ZERO);
                        refused
                    });
                }
            };
            let gates = &stack.attempt;
            let transport = &mut transport;
            let first = move |req, at: &Admission| gate::enter_at(gates, transport, req, at);
            let started = stack.retry.start(first, req, at);
            // The first attempt's future is made in the call's, and held there.
            let wait = {
                let gates = gates.clone();
                move |entered| gate::finish(gates, entered)
            };
            let gates = gates.clone();
            let mut retries = Retries::new(Arc::clone(&for_retries));
            let again = move |req, at: &Admission| {
                let entered = gate::enter_at(&gates, retries.transport(), req, at);
                // Boxed: what only some calls make would otherwise make every call's future
                // larger.
                Box::pin(gate::finish(gates.clone(), entered))
            };
            let call = stack.retry.finish(started, wait, again);
            let red = stack.red.clone();
            let breaker = Arc::clone(&stack.breaker);
            let began = std::time::Instant::now();
            futures::future::Either::Right(async move {
                // A probe is cut after the breaker's probe timeout, retries included.
                let result = match breaker.cut_at(&permit) {
                    Some(cut) => match tokio::time::timeout_at(cut, call).await {
                        Ok(answer) => answer,
                        Err(_) => Err(breaker.cut_error(&permit)),
                    },
                    None => call.await,
                };
                let result = breaker.settle(permit, result);
                red.record(outcome(&result), began.elapsed());
                result
            })
        }))
    }
}

/// How a call through the stack ended, for its RED series.
fn outcome<B>(result: &Result<axum::http::Response<B>, TransportError>) -> CallOutcome {
    match result {
        Ok(response) => CallOutcome::of_status(response.status().as_u16()),
        Err(TransportError::Timeout(_) | TransportError::DeadlineExceeded(_)) => {
            CallOutcome::Timeout
        }
        Err(TransportError::CircuitOpen(_) | TransportError::Overloaded(_)) => CallOutcome::Refused,
        Err(_) => CallOutcome::Failed,
    }
}

/// The resilience of one caller (a service, or the gateway): a stack per upstream, kept so that
/// every client the caller builds on an upstream shares its breaker, bulkhead and budget.
#[derive(Clone)]
pub struct Resilience {
    caller: String,
    policies: Arc<Policies>,
    stacks: Arc<Mutex<BTreeMap<String, Arc<Stack>>>>,
}

impl std::fmt::Debug for Resilience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

/// One upstream as a caller sees it, for the admin endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpstreamView {
    /// The upstream service.
    pub upstream: String,
    /// The policy in force.
    pub policy: UpstreamPolicy,
    /// Its circuit breaker.
    pub breaker: BreakerSnapshot,
    /// Its bulkhead.
    pub bulkhead: BulkheadSnapshot,
    /// What the retry layer did.
    pub retries: RetryStats,
    /// What the cache of public reads did (all zero for clients that use none).
    pub read_cache: ReadCacheStats,
}

impl Resilience {
    /// The resilience of `caller` under `policies`.
    pub fn new(caller: &str, policies: Arc<Policies>) -> Self {
        Self {
            caller: caller.to_owned(),
            policies,
            stacks: Arc::default(),
        }
    }

    /// The caller's name.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    fn stacks(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Stack>>> {
        // Only inserts, each one statement: a panic elsewhere leaves the map whole.
        self.stacks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The caller's stack for `upstream`, made on first use (`None` only if its policy were
    /// invalid, which [`Policies`] rules out).
    fn stack(&self, upstream: &str) -> Option<Arc<Stack>> {
        let mut stacks = self.stacks();
        if let Some(stack) = stacks.get(upstream) {
            return Some(Arc::clone(stack));
        }
        match Stack::new(&self.caller, upstream, self.policies.for_upstream(upstream)) {
            Ok(stack) => {
                let stack = Arc::new(stack);
                stacks.insert(upstream.to_owned(), Arc::clone(&stack));
                Some(stack)
            }
            Err(e) => {
                tracing::error!(upstream, error = %e, "no resilience stack");
                None
            }
        }
    }

    /// `transport` (to `upstream`) inside the caller's stack for that upstream.
    pub fn wrap(&self, upstream: &str, transport: Transport) -> Transport {
        match self.stack(upstream) {
            Some(stack) => stack.wrap(transport),
            // Unreachable (see `stack`); if it were not, an unprotected call beats no call.
            None => transport,
        }
    }

    /// The caller's cache of `upstream`'s public reads.
    pub fn read_cache(&self, upstream: &str) -> Option<ReadCache> {
        self.stack(upstream).map(|stack| stack.read_cache.clone())
    }

    /// Whether the caller's breaker for `upstream` refuses calls now (open, or half-open with
    /// every probe taken): a caller may then answer at once instead of starting work that
    /// needs the upstream.
    pub fn is_refusing(&self, upstream: &str) -> bool {
        let stack = self.stacks().get(upstream).cloned();
        stack.is_some_and(|stack| {
            let snapshot = stack.breaker.snapshot();
            match snapshot.state {
                BreakerState::Closed => false,
                BreakerState::Open => true,
                BreakerState::HalfOpen => {
                    snapshot.probes_admitted >= stack.policy.breaker.half_open_probes
                }
            }
        })
    }

    /// The upstreams the caller has asked its peers for so far, by name.
    pub fn upstreams(&self) -> Vec<String> {
        self.stacks().keys().cloned().collect()
    }

    /// Every upstream the caller has a stack for, by name.
    pub fn snapshot(&self) -> Vec<UpstreamView> {
        let stacks: Vec<(String, Arc<Stack>)> = self
            .stacks()
            .iter()
            .map(|(name, stack)| (name.clone(), Arc::clone(stack)))
            .collect();
        stacks
            .into_iter()
            .map(|(upstream, stack)| UpstreamView {
                upstream,
                policy: stack.policy.clone(),
                breaker: stack.breaker.snapshot(),
                bulkhead: stack.bulkhead.snapshot(),
                retries: stack.retry.stats(),
                read_cache: stack.read_cache.stats(),
            })
            .collect()
    }
}

impl UpstreamGuard for Resilience {
    fn caller(&self) -> &str {
        Resilience::caller(self)
    }

    fn wrap(&self, upstream: &str, transport: Transport) -> Transport {
        Resilience::wrap(self, upstream, transport)
    }

    fn is_refusing(&self, upstream: &str) -> bool {
        Resilience::is_refusing(self, upstream)
    }

    fn read_cache(&self, upstream: &str) -> Option<ReadCache> {
        Resilience::read_cache(self, upstream)
    }
}
