//! The HTTP transport: a pooled hyper client to one base URL, e.g. `http://10.0.0.7:9002` or
//! `http://gateway:8080/api/catalog`. Each request gets a timeout (the earlier of the pool's and
//! the request's deadline, [`crate::resilience::deadline`]) and a service credential minted
//! for the service it calls, carrying the caller the request acts for: the caller headers a
//! typed client wrote are moved into the credential's signed claims and never leave the process.
//! Spreading calls over several instances is `flotilla_discovery::balanced`'s job: it holds one
//! [`HttpEndpoint`] per instance, all derived from the same pool, and calls each by reference.

use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;
use tower::util::BoxCloneSyncService;

use super::deadline::{self, DeadlineConfig, DeadlineLayer};
use super::gate;
use super::{Transport, TransportCall, TransportError};
use crate::caller::Caller;
use crate::service_credential::{SERVICE_TOKEN, ServiceCredentials};

/// Settings of an HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Longest wait for the response head.
    pub timeout: Duration,
    /// Idle pooled connections kept per host.
    pub max_idle_per_host: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_idle_per_host: 64,
        }
    }
}

/// A shared connection pool; make one per process and derive transports from it.
#[derive(Clone)]
pub struct HttpPool {
    client: Client<HttpConnector, Body>,
    credentials: Arc<ServiceCredentials>,
    settings: HttpSettings,
}

impl HttpPool {
    /// A pool whose requests carry credentials from `credentials`.
    pub fn new(credentials: Arc<ServiceCredentials>, settings: HttpSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            credentials,
            settings,
        }
    }

    /// A transport to `service` at `base_url` (scheme, authority and an optional path prefix).
    pub fn transport(
        &self,
        service: &str,
        base_url: &str,
    ) -> Result<Transport, url_error::InvalidBaseUrl> {
        Ok(self.endpoint(service, base_url)?.transport())
    }

    /// The instance of `service` at `base_url`, for a caller that holds many (a balancer): it
    /// is called by reference, so no transport is cloned per call.
    pub fn endpoint(
        &self,
        service: &str,
        base_url: &str,
    ) -> Result<HttpEndpoint, url_error::InvalidBaseUrl> {
        let BaseUrl {
            origin,
            scheme,
            authority,
            prefix,
        } = BaseUrl::parse(base_url)?;
        let bounded = deadline::layer(
            service,
            &DeadlineConfig {
                timeout_ms: u64::try_from(self.settings.timeout.as_millis()).unwrap_or(u64::MAX),
                margin_ms: 0,
            },
        );
        Ok(HttpEndpoint {
            bounded,
            target: Arc::new(Target {
                pool: self.clone(),
                service: service.to_owned(),
                origin,
                scheme,
                authority,
                prefix,
            }),
        })
    }

    async fn send(
        &self,
        service: &str,
        origin: &str,
        target: Uri,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, TransportError> {
        *req.uri_mut() = target;
        let caller = Caller::from_headers(req.headers());
        Caller::strip_headers(req.headers_mut());
        let token = self.credentials.token_header(service, caller.as_ref());
        req.headers_mut().insert(SERVICE_TOKEN.clone(), token);
        // No timer here: every call reaches this under the endpoint's deadline layer (or the
        // stack's, which cuts it no later), which bounds it by the pool's timeout already.
        let response = self
            .client
            .request(req)
            .await
            .map_err(|e| TransportError::Connect {
                service: service.to_owned(),
                source: Box::new(UnreachableInstance {
                    origin: origin.to_owned(),
                    source: e,
                }),
            })?;
        Ok(response.map(Body::new))
    }
}

/// One instance of a service: its base URL over the pool, bounded by the deadline layer every
/// transport applies. Cheap to clone.
#[derive(Clone)]
pub struct HttpEndpoint {
    bounded: DeadlineLayer,
    target: Arc<Target>,
}

struct Target {
    pool: HttpPool,
    service: String,
    origin: String,
    scheme: Scheme,
    authority: Authority,
    prefix: String,
}

impl HttpEndpoint {
    /// Sends `req` to the instance (what calling its [`Self::transport`] does).
    pub fn call(&self, req: Request<Body>) -> TransportCall {
        let entered = gate::enter_with(&self.bounded, req, |req| {
            Box::pin(Arc::clone(&self.target).send(req))
        });
        Box::pin(gate::finish(self.bounded.clone(), entered))
    }

    /// The instance as a transport.
    pub fn transport(&self) -> Transport {
        let target = Arc::clone(&self.target);
        self.bounded
            .layer(BoxCloneSyncService::new(tower::service_fn(
                move |req: Request<Body>| Arc::clone(&target).send(req),
            )))
    }
}

impl Target {
    async fn send(self: Arc<Self>, req: Request<Body>) -> Result<Response<Body>, TransportError> {
        let target = self
            .uri_of(req.uri())
            .map_err(|e| TransportError::Connect {
                service: self.service.clone(),
                source: Box::new(e),
            })?;
        self.pool
            .send(&self.service, &self.origin, target, req)
            .await
    }

    /// `uri`'s path and query at this instance: its origin, under its prefix. Built from parts
    /// (the origin parsed once, the path shared rather than copied when there is no prefix):
    /// formatting and parsing the whole URL on every call showed in the gateway's profile.
    fn uri_of(&self, uri: &Uri) -> Result<Uri, axum::http::Error> {
        let path_and_query = match uri.path_and_query() {
            Some(pq) if self.prefix.is_empty() => pq.clone(),
            pq => {
                let pq = pq.map_or("/", |pq| pq.as_str());
                PathAndQuery::try_from(format!("{}{pq}", self.prefix))?
            }
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

/// A base URL split into the origin requests go to and the path prefix they get.
struct BaseUrl {
    origin: String,
    scheme: Scheme,
    authority: Authority,
    prefix: String,
}

impl BaseUrl {
    fn parse(base_url: &str) -> Result<Self, url_error::InvalidBaseUrl> {
        let invalid = || url_error::InvalidBaseUrl(base_url.to_owned());
        let base: Uri = base_url.parse().map_err(|_| invalid())?;
        let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
            return Err(invalid());
        };
        // The pool's connector speaks plain HTTP only; refuse anything else up front.
        if scheme != "http" {
            return Err(invalid());
        }
        Ok(Self {
            origin: format!("{scheme}://{authority}"),
            scheme: Scheme::HTTP,
            authority: authority.clone(),
            prefix: base.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// Checks that `base_url` is one [`HttpPool::transport`] accepts, e.g. before announcing it.
pub fn check_base_url(base_url: &str) -> Result<(), url_error::InvalidBaseUrl> {
    BaseUrl::parse(base_url).map(|_| ())
}

/// The cause inside [`TransportError::Connect`] for an HTTP call: which instance failed. The
/// instance is named here, in the cause (which is logged), and not in the error's `service`
/// (which may be shown to end users).
#[derive(Debug, thiserror::Error)]
#[error("at {origin}: {source}")]
pub struct UnreachableInstance {
    /// `scheme://host:port` of the instance.
    pub origin: String,
    /// What hyper reported.
    #[source]
    pub source: hyper_util::client::legacy::Error,
}

/// Errors building an HTTP transport.
pub mod url_error {
    /// The base URL is not an absolute `http://host:port[/prefix]` URL.
    #[derive(Debug, thiserror::Error)]
    #[error("invalid base url {0:?}: expected http://host:port[/prefix]")]
    pub struct InvalidBaseUrl(pub String);
}
