//! Where each peer service lives, as seen from one process: in this process (the default), at
//! a remote base URL, or spread over the instances discovery reports (a transport the host
//! builds with `flotilla-discovery` and [`Peers::insert`]s). A service asks its [`Peers`] for a
//! transport by name and never learns which. A service's own peers (`launch` makes them with
//! [`Peers::with_faults`] and [`Peers::with_resilience`]) wrap every transport in the service's
//! injected faults, then in its resilience stack for that upstream ([`crate::resilience::stack`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::Transport;
use super::faulted::FaultLayer;
use super::http::HttpPool;
use super::in_process::InProcessRegistry;
use super::read_cache::ReadCache;
use crate::faults::Faults;

/// What a balanced transport reports of its instances, for the admin endpoint (the balancer
/// lives in `flotilla-discovery`, which the chassis does not know).
pub type InstancesReport = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What a caller puts around each upstream's transport: its resilience stack
/// ([`crate::resilience::stack::Resilience`]), named here as a trait so that the transport
/// does not depend on the layers built on it.
pub trait UpstreamGuard: Send + Sync + 'static {
    /// `transport` (to `upstream`) inside the caller's protection for it.
    fn wrap(&self, upstream: &str, transport: Transport) -> Transport;
    /// The caller's name (whose client spans its calls are).
    fn caller(&self) -> &str;
    /// Whether calls to `upstream` are refused now (its circuit is open).
    fn is_refusing(&self, upstream: &str) -> bool;
    /// The caller's cache of `upstream`'s public reads.
    fn read_cache(&self, upstream: &str) -> Option<ReadCache>;
}

/// The peers of the services hosted in one process.
#[derive(Clone)]
pub struct Peers {
    local: InProcessRegistry,
    remote: Arc<HashMap<String, Transport>>,
    reports: Arc<HashMap<String, InstancesReport>>,
    /// The faults of the service these peers belong to (none for a host's own peers).
    faults: Option<Faults>,
    /// The resilience of the caller these peers belong to (none for a host's own peers).
    resilience: Option<Arc<dyn UpstreamGuard>>,
}

impl Peers {
    /// Peers reached in-process through `local`, except those listed in `remote`.
    pub fn new(local: InProcessRegistry, remote: HashMap<String, Transport>) -> Self {
        Self {
            local,
            remote: Arc::new(remote),
            reports: Arc::default(),
            faults: None,
            resilience: None,
        }
    }

    /// Peers with remote base URLs (`service → url`), sharing `pool`.
    pub fn with_urls(
        local: InProcessRegistry,
        pool: &HttpPool,
        urls: &HashMap<String, String>,
    ) -> Result<Self, super::http::url_error::InvalidBaseUrl> {
        let remote = urls
            .iter()
            .map(|(name, url)| Ok((name.clone(), pool.transport(name, url)?)))
            .collect::<Result<HashMap<_, _>, _>>()?;
        Ok(Self::new(local, remote))
    }

    /// Reaches `service` through `transport` (replacing any earlier one). Clones of these
    /// peers made before keep what they had.
    pub fn insert(&mut self, service: &str, transport: Transport) {
        Arc::make_mut(&mut self.remote).insert(service.to_owned(), transport);
    }

    /// Like [`Self::insert`], with a report of the instances behind `transport` for the
    /// admin endpoint.
    pub fn insert_reported(
        &mut self,
        service: &str,
        transport: Transport,
        report: InstancesReport,
    ) {
        self.insert(service, transport);
        Arc::make_mut(&mut self.reports).insert(service.to_owned(), report);
    }

    /// These peers, with every transport they hand out subject to `faults` (the client side
    /// of fault injection: `faults` belong to the service that calls).
    pub fn with_faults(&self, faults: Faults) -> Self {
        Self {
            faults: Some(faults),
            ..self.clone()
        }
    }

    /// These peers, with every transport they hand out inside `resilience`'s stack for its
    /// upstream (`resilience` belongs to the caller).
    pub fn with_resilience(&self, resilience: impl UpstreamGuard) -> Self {
        Self {
            resilience: Some(Arc::new(resilience)),
            ..self.clone()
        }
    }

    /// The transport to `service`.
    pub fn transport(&self, service: &str) -> Transport {
        let transport = match self.remote.get(service) {
            Some(t) => t.clone(),
            None => self.local.transport(service),
        };
        let transport = match &self.faults {
            Some(faults) => FaultLayer::new(faults.clone(), service).wrap(transport),
            None => transport,
        };
        match &self.resilience {
            Some(resilience) => {
                let caller = resilience.caller();
                super::traced::traced(caller, service, resilience.wrap(service, transport))
            }
            // A host's own calls (no service's) are not traced; the callee starts the trace.
            None => transport,
        }
    }

    /// Whether the caller's circuit breaker for `service` refuses calls now: work that needs
    /// `service` can be refused at once rather than started.
    pub fn is_refusing(&self, service: &str) -> bool {
        self.resilience
            .as_ref()
            .is_some_and(|r| r.is_refusing(service))
    }

    /// The caller's cache of `service`'s public reads (`None` for a host's own peers), for
    /// the clients that opt in ([`super::ServiceClient::with_read_cache`]).
    pub fn read_cache(&self, service: &str) -> Option<ReadCache> {
        self.resilience.as_ref()?.read_cache(service)
    }

    /// The balancer's report of the instances of `service`, when it is balanced.
    pub fn instances(&self, service: &str) -> Option<serde_json::Value> {
        self.reports.get(service).map(|report| report())
    }

    /// True when `service` is reached over the network.
    pub fn is_remote(&self, service: &str) -> bool {
        self.remote.contains_key(service)
    }
}
