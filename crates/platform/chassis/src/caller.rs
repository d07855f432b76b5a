//! Who is calling: the end user on whose behalf a request runs, and whether the hop that
//! delivered the request may vouch for that user.
//!
//! The gateway authenticates users (JWT). Inside one process the user travels in two headers,
//! believed only on the in-process transport (which marks the request with [`InProcess`], an
//! extension nothing on the network can set). Between processes the user travels inside the
//! signed claims of the service credential ([`crate::service_credential`]), minted for the one
//! service called: a network hop's caller comes from those claims alone, and bare caller headers
//! on it are removed before a handler can see them. The decision is [`crate::trust`]'s; this
//! module holds what it decides about and what handlers read.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::Problem;

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
/// (in-process) the caller headers, set by [`crate::trust`]. Handlers read it through the
/// [`Caller`] extractor.
#[derive(Debug, Clone)]
pub(crate) struct TrustedCaller(pub(crate) Option<Caller>);

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

    /// Reads a caller from headers, without any trust decision (see [`crate::trust::establish_trust`]).
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
