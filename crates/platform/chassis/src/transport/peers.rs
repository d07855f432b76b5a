//! Where each peer service lives, as seen from one process: in this process (the default), at
//! a remote base URL, or spread over the instances discovery reports (a transport the host
//! builds with `flotilla-discovery` and [`Peers::insert`]s). A service asks its [`Peers`] for a
//! transport by name and never learns which. A service's own peers (`launch` makes them with
//! [`Peers::with_faults`]) wrap every transport in the service's injected faults.

use std::collections::HashMap;
use std::sync::Arc;

use super::Transport;
use super::faulted::FaultLayer;
use super::http::HttpPool;
use super::in_process::InProcessRegistry;
use crate::faults::Faults;

/// The peers of the services hosted in one process.
#[derive(Clone)]
pub struct Peers {
    local: InProcessRegistry,
    remote: Arc<HashMap<String, Transport>>,
    /// The faults of the service these peers belong to (none for a host's own peers).
    faults: Option<Faults>,
}

impl Peers {
    /// Peers reached in-process through `local`, except those listed in `remote`.
    pub fn new(local: InProcessRegistry, remote: HashMap<String, Transport>) -> Self {
        Self {
            local,
            remote: Arc::new(remote),
            faults: None,
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

    /// These peers, with every transport they hand out subject to `faults` (the client side
    /// of fault injection: `faults` belong to the service that calls).
    pub fn with_faults(&self, faults: Faults) -> Self {
        Self {
            faults: Some(faults),
            ..self.clone()
        }
    }

    /// The transport to `service`.
    pub fn transport(&self, service: &str) -> Transport {
        let transport = match self.remote.get(service) {
            Some(t) => t.clone(),
            None => self.local.transport(service),
        };
        match &self.faults {
            Some(faults) => FaultLayer::new(faults.clone(), service).wrap(transport),
            None => transport,
        }
    }

    /// True when `service` is reached over the network.
    pub fn is_remote(&self, service: &str) -> bool {
        self.remote.contains_key(service)
    }
}
