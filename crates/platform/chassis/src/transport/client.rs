//! The one way to call another service: a [`ServiceClient`] sends JSON over a [`Transport`],
//! copies the request id and trace context of the request being served, writes the caller's
//! identity when the call acts for a user, and turns error responses into [`ClientError`].
//! Each service's typed client (`catalog::client::CatalogClient`, ...) is a thin layer on this.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use super::read_cache::ReadCache;
use super::{Transport, TransportError};
use crate::caller::Caller;
use crate::deadline::DEADLINE_EXCEEDED;
use crate::problem::Problem;
use crate::request_context::{self, REQUEST_ID};

/// A request extension saying that a `POST` changes nothing (a query with a body): the retry
/// layer treats it as a read ([`ServiceClient::query`]).
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly;

/// The header carrying an idempotency key.
pub static IDEMPOTENCY_KEY: axum::http::HeaderName =
    axum::http::HeaderName::from_static("idempotency-key");

/// Largest response body a client reads (a defence against a misbehaving peer).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Why a call to another service failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error status; its problem document is kept.
    #[error("{service} answered {problem}")]
    Status {
        /// The callee.
        service: &'static str,
        /// What it said.
        problem: Box<Problem>,
    },
    /// The service could not be reached or timed out.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The answer could not be read or decoded.
    #[error("{service} sent an unreadable response: {message}")]
    Decode {
        /// The callee.
        service: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl ClientError {
    /// The HTTP status the callee answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { problem, .. } => Some(problem.status_code()),
            _ => None,
        }
    }

    /// The callee's `Retry-After`, in seconds, when it sent one with its problem.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ClientError::Status { problem, .. } => problem.retry_after,
            _ => None,
        }
    }

    /// The slug of the callee's problem type (e.g. `out-of-stock`), when it answered with one.
    pub fn problem_slug(&self) -> Option<&str> {
        match self {
            ClientError::Status { problem, .. } => Some(problem.slug()),
            _ => None,
        }
    }

    /// True for a 404 from the callee.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}

/// The default translation for a failed dependency: the caller's client sees a 503 (the
/// dependency is unavailable or broken), never the dependency's own 4xx, which would blame the
/// client for our call. Services that expect a 4xx (e.g. "unknown product") match on it first.
impl From<ClientError> for Problem {
    fn from(err: ClientError) -> Self {
        tracing::warn!(error = %err, "dependency call failed");
        match &err {
            ClientError::Status { service, problem } if problem.status_code().is_client_error() => {
                tracing::error!(service, %problem, "dependency rejected our request");
                Problem::internal()
            }
            // The callee ran out of the deadline this request handed it: so have we.
            ClientError::Status { service, problem } if problem.slug() == DEADLINE_EXCEEDED => {
                Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    DEADLINE_EXCEEDED,
                    format!("the request's deadline ran out while waiting for {service}"),
                )
            }
            ClientError::Status { service, .. } | ClientError::Decode { service, .. } => {
                Problem::dependency_unavailable(
                    service,
                    format!("{service} is not working right now"),
                )
            }
            ClientError::Transport(TransportError::NoInstance(s))
            | ClientError::Transport(TransportError::Timeout(s))
            | ClientError::Transport(TransportError::Connect { service: s, .. }) => {
                Problem::dependency_unavailable(s, format!("{s} is unavailable right now"))
            }
            // Refused before leaving the process, so cheap to repeat: a second is long enough
            // for a bulkhead slot to free, and for a breaker kept per instance another
            // instance may already answer.
            ClientError::Transport(TransportError::CircuitOpen(s)) => {
                Problem::dependency_unavailable(s, format!("{s} is failing; retry shortly"))
                    .with_retry_after(1)
            }
            ClientError::Transport(TransportError::Overloaded(s)) => {
                Problem::dependency_unavailable(s, format!("{s} is busy; retry shortly"))
                    .with_retry_after(1)
            }
            ClientError::Transport(TransportError::DeadlineExceeded(s)) => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                DEADLINE_EXCEEDED,
                format!("the request's deadline ran out while waiting for {s}"),
            ),
        }
    }
}

/// A JSON client for one named service.
#[derive(Clone)]
pub struct ServiceClient {
    service: &'static str,
    transport: Transport,
    read_cache: Option<ReadCache>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// A client for `service` over `transport`.
    pub fn new(service: &'static str, transport: Transport) -> Self {
        Self {
            service,
            transport,
            read_cache: None,
        }
    }

    /// This client, with its `GET`s sent without a caller identity answered through `cache`
    /// (fresh copies without a call, stale ones when the service fails: [`ReadCache`]). Only
    /// for services whose public reads are the same for everyone.
    pub fn with_read_cache(mut self, cache: Option<ReadCache>) -> Self {
        self.read_cache = cache;
        self
    }

    /// The cache this client reads through, if any.
    pub fn read_cache(&self) -> Option<&ReadCache> {
        self.read_cache.as_ref()
    }

    /// The callee's name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// `GET path`, decoding a JSON answer.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        caller: Option<&Caller>,
    ) -> Result<T, ClientError> {
        match (&self.read_cache, caller) {
            (Some(cache), None) => {
                let fetch = async {
                    let request = self.request(Method::GET, path, None, None::<&()>)?;
                    self.exchange(request).await
                };
                self.decode(&cache.read(path, fetch).await?)
            }
            _ => self.call(Method::GET, path, caller, None::<&()>).await,
        }
    }

    /// `method path` with a JSON body, decoding a JSON answer.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(method, path, caller, Some(body)).await
    }

    /// `POST path` with a JSON body for a query that changes nothing (a lookup by ids): marked
    /// [`ReadOnly`], so the resilience stack repeats it and cuts a hung attempt of it as it
    /// does a `GET`'s, instead of holding it to its deadline as an unkeyed `POST`.
    pub async fn query<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        caller: Option<&Caller>,
        body: &B,
    ) -> Result<T, ClientError> {
        let mut request = self.request(Method::POST, path, caller, Some(body))?;
        request.extensions_mut().insert(ReadOnly);
        self.decode(&self.exchange(request).await?)
    }

    /// `method path` with a JSON body and an `Idempotency-Key` header, decoding a JSON answer.
    /// The callee replays its first answer for a repeated key, so the call may be retried.
    pub async fn send_idempotent<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        idempotency_key: &str,
        caller: Option<&Caller>,
        body: &B,
    ) -> Result<T, ClientError> {
        let mut request = self.request(method, path, caller, Some(body))?;
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| ClientError::Decode {
            service: self.service,
            message: "idempotency key is not a valid header value".into(),
        })?;
        request.headers_mut().insert(IDEMPOTENCY_KEY.clone(), key);
        self.decode(&self.exchange(request).await?)
    }

    /// `method path` without a request body, decoding a JSON answer (e.g. a DELETE that returns
    /// the updated resource).
    pub async fn send_without_body<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
    ) -> Result<T, ClientError> {
        self.call(method, path, caller, None::<&()>).await
    }

    /// `method path` without a body, expecting no content back (204 or any 2xx).
    pub async fn send_empty(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
    ) -> Result<(), ClientError> {
        let request = self.request(method, path, caller, None::<&()>)?;
        self.exchange(request).await.map(|_| ())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let request = self.request(method, path, caller, body)?;
        self.decode(&self.exchange(request).await?)
    }

    /// Decodes a JSON answer of this client's service.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            service: self.service,
            message: e.to_string(),
        })
    }

    fn request<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
        body: Option<&B>,
    ) -> Result<Request<Body>, ClientError> {
        let body = match body {
            Some(b) => Body::from(serde_json::to_vec(b).map_err(|e| ClientError::Decode {
                service: self.service,
                message: e.to_string(),
            })?),
            None => Body::empty(),
        };
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().map_err(|_| ClientError::Decode {
            service: self.service,
            message: format!("bad path {path:?}"),
        })?;
        let headers = request.headers_mut();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // The trace context is the transport's to write (`super::traced`): its client span's.
        if let Some(id) = request_context::current_request_id()
            && let Ok(v) = HeaderValue::from_str(&id)
        {
            headers.insert(REQUEST_ID.clone(), v);
        }
        if let Some(caller) = caller {
            caller.write_headers(headers);
        }
        Ok(request)
    }

    async fn exchange(&self, request: Request<Body>) -> Result<bytes::Bytes, ClientError> {
        let response = self.transport.clone().oneshot(request).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| ClientError::Decode {
                service: self.service,
                message: e.to_string(),
            })?
            .to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        let mut problem = serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| {
            Problem::new(
                status,
                "upstream",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>(),
            )
        });
        // The header is not part of the body: kept so that a caller can pass the advice on.
        problem.retry_after = retry_after;
        Err(ClientError::Status {
            service: self.service,
            problem: Box::new(problem),
        })
    }
}
