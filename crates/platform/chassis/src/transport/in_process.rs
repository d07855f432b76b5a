//! The in-process transport: a service's router called as a tower `Service`, without a socket.
//!
//! Routers are looked up by name in an [`InProcessRegistry`] at call time, so services can be
//! registered in any order (and a cycle of dependencies needs no special casing). Calls carry
//! and honour the request's deadline like HTTP ones ([`crate::resilience::deadline`]), with the
//! default upstream timeout. A response marked with an injected abort (`faults::AbortConnection`) fails the call as a
//! reset connection, as it would over a socket.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

use super::deadline::{self, DeadlineConfig};
use super::{Transport, TransportError};
use crate::caller::InProcess;

/// Service name → router, shared by everything in one process.
#[derive(Debug, Clone, Default)]
pub struct InProcessRegistry {
    // A std lock: held only to clone an `Arc`-backed router, never across an await.
    routers: Arc<RwLock<HashMap<String, Router>>>,
}

impl InProcessRegistry {
    /// Registers (or replaces) the router serving `service`.
    pub fn register(&self, service: &str, router: Router) {
        let mut map = self.routers.write().unwrap_or_else(|p| p.into_inner());
        map.insert(service.to_owned(), router);
    }

    /// The router for `service`, if registered.
    pub fn get(&self, service: &str) -> Option<Router> {
        let map = self.routers.read().unwrap_or_else(|p| p.into_inner());
        map.get(service).cloned()
    }

    /// A transport that calls `service`'s router.
    pub fn transport(&self, service: &str) -> Transport {
        let registry = self.clone();
        let bounded = deadline::layer(service, &DeadlineConfig::default());
        let service = service.to_owned();
        bounded.layer(BoxCloneSyncService::new(tower::service_fn(
            move |mut req: Request<Body>| {
                let router = registry.get(&service);
                let service = service.clone();
                async move {
                    let router =
                        router.ok_or_else(|| TransportError::NoInstance(service.clone()))?;
                    req.extensions_mut().insert(InProcess);
                    let response: Response<Body> = match router.oneshot(req).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    if let Some(reset) = crate::abort::abort_of(&response) {
                        return Err(TransportError::Connect {
                            service,
                            source: Box::new(reset),
                        });
                    }
                    Ok(response)
                }
            },
        )))
    }
}
