//! Whether the hop that delivered a request may vouch for a user, and which user: the trust
//! middleware every service runs behind.
//!
//! A request that never left the process (marked [`InProcess`] by the in-process transport) is
//! trusted with the caller headers it carries. A network hop is trusted only with a service
//! credential minted for this service ([`crate::service_credential`]); its caller comes from the
//! credential's signed claims, and bare caller headers are removed before a handler sees them.
//! This module sits above both [`crate::caller`] and [`crate::service_credential`], so neither
//! imports the other's user.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use crate::caller::{Caller, InProcess, TrustedCaller, TrustedHop};
use crate::problem::Problem;
use crate::service_credential::{SERVICE_TOKEN, ServiceCredentials};

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
