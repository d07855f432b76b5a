//! identity: who the shop's users are and how they prove it.
//!
//! The service owns three things: user accounts, their Argon2id password hashes, and the Ed25519
//! keys it signs access tokens with. Users sign up and log in here and receive a short-lived JWT;
//! the gateway verifies that token on every request against the public keys this service
//! publishes at `/.well-known/jwks.json` and forwards the caller's id and role to the other
//! services, which only authorize. Nothing else in the fleet sees a password or a private key.
//!
//! Other crates may use [`contract`] (the published request and response types), [`client`] (the
//! typed client) and [`token`] (claims and the verifier the gateway runs); everything else is
//! private to the service.

mod api;
mod bootstrap;
pub mod client;
pub mod contract;
mod domain;
mod error;
mod password;
mod store;
pub mod token;

use flotilla_chassis::db::Migration;
use flotilla_chassis::{Service, ServiceContext, ServiceSpec, StartError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The service's name: its configuration section, database and gateway prefix.
pub const NAME: &str = "identity";

/// How hosts start the service.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// The schema, oldest first.
const MIGRATIONS: &[Migration] = &[
    Migration::portable(
        1,
        "users and signing keys",
        include_str!("../migrations/0001_init.sql"),
    ),
    Migration::portable(
        2,
        "login attempts",
        include_str!("../migrations/0002_login_failures.sql"),
    ),
];

/// The `[identity]` configuration section. The gateway reads it too, to verify tokens with the
/// same issuer, audience and leeway the service issues them with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    /// The `iss` claim of issued tokens, and the only issuer the verifier accepts.
    pub issuer: String,
    /// The `aud` claim of issued tokens, and the only audience the verifier accepts.
    pub audience: String,
    /// Lifetime of an access token, in seconds. Short, because tokens cannot be revoked.
    pub token_ttl_secs: u64,
    /// Clock skew tolerated when checking `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// The administrator account created at start (`FLOTILLA_ADMIN_EMAIL`), if any.
    pub admin_email: Option<String>,
    /// That account's initial password (`FLOTILLA_ADMIN_PASSWORD`). It only seeds a new account:
    /// an existing account keeps the password it has.
    pub admin_password: Option<String>,
    /// Failed logins an account may have within `login_window_secs`; the next ones are refused
    /// with 429 before any password is checked (RELIABILITY.md S6).
    pub login_failures_max: u32,
    /// The window those failures are counted over, in seconds.
    pub login_window_secs: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: "flotilla".to_owned(),
            audience: "flotilla".to_owned(),
            token_ttl_secs: 900,
            leeway_secs: 30,
            admin_email: None,
            admin_password: None,
            login_failures_max: 10,
            login_window_secs: 60,
        }
    }
}

/// Written by hand so that the admin password never reaches a log line.
impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("leeway_secs", &self.leeway_secs)
            .field("login_failures_max", &self.login_failures_max)
            .field("login_window_secs", &self.login_window_secs)
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Builds the identity service: migrates its database, loads (or creates) its signing key,
/// creates the configured administrator, and returns its routes.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let db = ctx.db()?;
    db.migrate(MIGRATIONS).await?;
    let config: IdentityConfig = ctx.config()?;
    bootstrap::check_config(&config)?;
    let store = store::IdentityStore::new(db.clone());
    let passwords = password::Passwords::new().await.map_err(bootstrap::fail)?;
    let signing_key = bootstrap::signing_key(&store, ctx.clock.as_ref()).await?;
    bootstrap::admin(&store, &passwords, &config, ctx.clock.as_ref()).await?;
    let state = api::IdentityState {
        store,
        passwords,
        issuer: Arc::new(token::TokenIssuer::new(signing_key, &config)),
        clock: ctx.clock.clone(),
        throttle: api::LoginThrottle {
            max_failures: config.login_failures_max,
            window_millis: i64::try_from(config.login_window_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        },
    };
    Ok(Service::new(NAME, api::routes(state), Some(db)))
}
