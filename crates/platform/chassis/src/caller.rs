//! Who is calling: the end user on whose behalf a request runs, and whether the hop that
//! delivered the request may vouch for that user.
//!
//! The gateway authenticates users (JWT). Inside one process the user travels in two headers,
//! believed only on the in-process transport (which marks the request with [`InProcess`], an
//! extension nothing on the network can set). Between processes the user travels inside the
//! signed claims of the service credential ([`crate::service_credential`]), minted for the one
//! service called: a network hop's caller comes from those claims alone, and bare caller headers
//! on it are removed before a handler can see them.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::problem::Problem;
use crate::service_credential::{SERVICE_TOKEN, ServiceCredentials};

/// The authenticated user's id, as forwarded by the gateway.
pub static USER_ID: HeaderName = HeaderName::from_static("x-flotilla-user-id");
/// The authenticated user's role, as forwarded by the gateway.
pub static USER_ROLE: HeaderName = HeaderName::from_static("x-flotilla-user-role");

/// Request extension set by the in-process transport: the request never left this process.
#[derive(Debug, Clone, Copy)]
pub struct InProcess;

/// Request extension set once the hop is known to be trusted (in-process or credentialed).
#[derive(Debug, Clone, Copy)]
pub struct TrustedHop;

/// Request extension: the user a trusted hop acts for, from the credential's signed claims or
/// (in-process) the caller headers. Handlers read it through the [`Caller`] extractor.
#[derive(Debug, Clone)]
struct TrustedCaller(Option<Caller>);

/// A user's role. Unknown roles are refused rather than guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A shopper.
    Customer,
    /// An operator of the shop.
    Admin,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The user a request acts for. Obtain it with the extractor; handlers that take a `Caller`
/// reject anonymous requests with 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user id (identity's `sub` claim).
    pub user_id: String,
    /// The user's role.
    pub role: Role,
}

impl Caller {
    /// Writes this caller into outgoing headers (used by typed clients and the gateway).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.user_id) {
            headers.insert(USER_ID.clone(), v);
            headers.insert(
                USER_ROLE.clone(),
                HeaderValue::from_static(self.role.as_str()),
            );
        }
    }

    /// Reads a caller from headers, without any trust decision (see [`establish_trust`]).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let user_id = headers.get(&USER_ID)?.to_str().ok()?;
        let role = Role::parse(headers.get(&USER_ROLE)?.to_str().ok()?)?;
        (!user_id.is_empty() && user_id.len() <= 128).then(|| Caller {
            user_id: user_id.to_owned(),
            role,
        })
    }

    /// Removes caller headers (what the gateway does to every incoming request).
    pub fn strip_headers(headers: &mut HeaderMap) {
        headers.remove(&USER_ID);
        headers.remove(&USER_ROLE);
    }
}

/// What the trust middleware needs: the credentials to check and whether untrusted requests are
/// refused outright (a service on its own listener) or merely anonymous (behind the gateway).
#[derive(Clone)]
pub struct TrustPolicy {
    /// Verifies `x-flotilla-service-token`.
    pub credentials: Option<Arc<ServiceCredentials>>,
    /// Refuse (401) requests that carry no valid credential, except probes and the contract.
    pub require_credential: bool,
}

/// The trust middleware's state for one service: the host's policy and the service's name, the
/// only audience its credentials may carry.
#[derive(Clone)]
pub struct ServiceTrust {
    /// The host's policy.
    pub policy: TrustPolicy,
    /// The service behind this middleware.
    pub service: &'static str,
}

/// Middleware: decides whether the hop is trusted and who it acts for; strips caller headers
/// from every network hop (a credentialed hop's caller comes from the credential).
pub async fn establish_trust(
    State(trust): State<ServiceTrust>,
    mut req: Request,
    next: Next,
) -> Response {
    let in_process = req.extensions().get::<InProcess>().is_some();
    let trusted = if in_process {
        Some(Caller::from_headers(req.headers()))
    } else {
        let verified = match (&trust.policy.credentials, req.headers().get(&SERVICE_TOKEN)) {
            (Some(creds), Some(token)) => token
                .to_str()
                .ok()
                .and_then(|t| creds.verify(t, trust.service).ok()),
            _ => None,
        };
        Caller::strip_headers(req.headers_mut());
        verified.map(|v| v.caller)
    };
    req.headers_mut().remove(&SERVICE_TOKEN);
    match trusted {
        Some(caller) => {
            req.extensions_mut().insert(TrustedHop);
            req.extensions_mut().insert(TrustedCaller(caller));
        }
        None if trust.policy.require_credential && !is_public_probe(req.uri().path()) => {
            return Problem::unauthorized(
                "this service accepts calls only through the gateway or with a service credential",
            )
            .into_response();
        }
        None => {}
    }
    next.run(req).await
}

/// Paths any monitor may read without a credential.
fn is_public_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/openapi.json" | "/metrics")
}

fn caller_from_parts(parts: &Parts) -> Option<Caller> {
    parts.extensions.get::<TrustedCaller>()?.0.clone()
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        caller_from_parts(parts)
            .ok_or_else(|| Problem::unauthorized("a valid access token is required"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(caller_from_parts(parts))
    }
}

/// A caller with the admin role; 401 when anonymous, 403 for any other role.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = <Caller as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if caller.role == Role::Admin {
            Ok(Admin(caller))
        } else {
            Err(Problem::forbidden("this operation requires the admin role"))
        }
    }
}
