//! The typed client other services (the gateway, the storefront) use to call identity. It is a
//! thin layer over the chassis [`ServiceClient`], so request ids, trace context and caller
//! identity travel the same way as on every other call, whatever the transport.

use axum::http::Method;
use flotilla_chassis::Caller;
use flotilla_chassis::transport::{ClientError, ServiceClient, Transport};
use jsonwebtoken::jwk::JwkSet;

use crate::contract::{LoginRequest, SignupRequest, TokenResponse, User};

/// A client of the identity service.
#[derive(Debug, Clone)]
pub struct IdentityClient {
    inner: ServiceClient,
}

impl IdentityClient {
    /// A client over `transport` (from `ctx.peers.transport("identity")`).
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(crate::NAME, transport),
        }
    }

    /// Creates a customer account. A 409 means the email is taken, a 422 that a field is invalid.
    #[tracing::instrument(skip_all, name = "identity.signup")]
    pub async fn signup(&self, req: &SignupRequest) -> Result<User, ClientError> {
        self.inner.send(Method::POST, "/signup", None, req).await
    }

    /// Logs in. A 401 means the email or password is wrong (the service does not say which).
    #[tracing::instrument(skip_all, name = "identity.login")]
    pub async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, ClientError> {
        self.inner.send(Method::POST, "/login", None, req).await
    }

    /// The public keys that verify access tokens.
    #[tracing::instrument(skip_all, name = "identity.jwks")]
    pub async fn jwks(&self) -> Result<JwkSet, ClientError> {
        self.inner.get("/.well-known/jwks.json", None).await
    }

    /// The account of `caller`. A 404 means the account no longer exists.
    #[tracing::instrument(skip_all, name = "identity.me")]
    pub async fn me(&self, caller: &Caller) -> Result<User, ClientError> {
        self.inner.get("/me", Some(caller)).await
    }
}
