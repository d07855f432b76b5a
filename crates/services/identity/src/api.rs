//! The identity routes, with their OpenAPI description. Handlers stay thin: parse the request
//! into domain types, call the store, password hashing or token issuer, map the result.
//!
//! The service sees paths without the gateway's `/api/identity` prefix.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::extract::Json;
use flotilla_chassis::{Caller, Problem, Role};
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::contract::{JwksDocument, LoginRequest, SignupRequest, TokenResponse, User};
use crate::domain::{Email, NewUser, Password, UserId, UserRecord};
use crate::error::IdentityError;
use crate::password::Passwords;
use crate::store::IdentityStore;
use crate::token::TokenIssuer;

/// How long clients may cache the key set. Short enough that a rotated-in key reaches every
/// verifier within minutes; verifiers also refetch on an unknown `kid`.
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

#[derive(Clone)]
pub struct IdentityState {
    pub store: IdentityStore,
    pub passwords: Passwords,
    /// Signs access tokens with the active key.
    pub issuer: Arc<TokenIssuer>,
    /// Wall clock for `iat`/`exp` and `created_at`.
    pub clock: SharedClock,
    /// How many failed logins an account may have lately.
    pub throttle: LoginThrottle,
}

/// Failed logins allowed per account: `max_failures` within `window_millis`; the next attempts
/// are refused (429, `Retry-After`) before any password hash is computed, until the oldest
/// failure leaves the window. Counted per address as typed, so an address with no account is
/// throttled exactly like one with an account, and in the database, so every replica of
/// identity counts the same attempts. Refused attempts are not counted: an attacker keeps an
/// account locked only by failing again every window, never for longer.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    /// Failures allowed within the window.
    pub max_failures: u32,
    /// The window, in milliseconds.
    pub window_millis: i64,
}

/// The routes, with their OpenAPI description.
pub fn routes(state: IdentityState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(jwks))
        .routes(routes!(me))
        .with_state(state)
}

/// Creates a customer account. Any `role` in the body is ignored.
#[utoipa::path(
    post,
    path = "/signup",
    tag = "identity",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created", body = User),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, name = "identity.signup")]
async fn signup(
    State(state): State<IdentityState>,
    Json(req): Json<SignupRequest>,
) -> Result<(StatusCode, axum::Json<User>), IdentityError> {
    let new_user = NewUser::parse(req).map_err(IdentityError::Invalid)?;
    let record = UserRecord {
        id: UserId::generate(),
        password_hash: state.passwords.hash(&new_user.password).await?,
        email: new_user.email,
        name: new_user.name,
        role: Role::Customer,
        created_at: state.clock.now(),
    };
    state.store.insert_user(&record).await?;
    tracing::info!(user_id = record.id.as_str(), "account created");
    Ok((StatusCode::CREATED, axum::Json(user_view(&record))))
}

/// Exchanges an email and password for a short-lived access token.
#[utoipa::path(
    post,
    path = "/login",
    tag = "identity",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins for this email address lately; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, name = "identity.login")]
async fn login(
    State(state): State<IdentityState>,
    Json(req): Json<LoginRequest>,
) -> Result<impl IntoResponse, IdentityError> {
    // An address that cannot exist is looked up as no one, so it costs the same hash as any
    // other failed login and gets the same answer.
    let email = Email::parse(&req.email).ok();
    let account = match &email {
        Some(email) => email.as_str().to_owned(),
        None => req.email.trim().to_lowercase(),
    };
    let attempt = flotilla_chassis::ids::new_id("att");
    let now = state.clock.now_millis();
    let window_start = now.saturating_sub(state.throttle.window_millis);
    let (attempts, oldest) = state
        .store
        .begin_login_attempt(&attempt, &account, now, window_start)
        .await?;
    if attempts > i64::from(state.throttle.max_failures) {
        state.store.forget_login_attempt(&attempt).await?;
        let wait_millis = oldest.saturating_add(state.throttle.window_millis) - now;
        let secs = u32::try_from(wait_millis.div_euclid(1000) + 1).unwrap_or(u32::MAX);
        return Err(IdentityError::Throttled(secs.max(1)));
    }
    let user = match &email {
        Some(email) => state.store.user_by_email(email).await?,
        None => None,
    };
    let password = Password::unchecked(req.password);
    let hash = user.as_ref().map(|u| &u.password_hash);
    let user = match (state.passwords.verify(&password, hash).await?, user) {
        (true, Some(user)) => user,
        // The attempt stays written: it is one of the account's failures now.
        _ => return Err(IdentityError::BadCredentials),
    };
    state.store.clear_login_attempts(&account).await?;
    let access_token = state
        .issuer
        .issue(user.id.as_str(), user.role, state.clock.now_secs())?;
    let body = TokenResponse {
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: state.issuer.ttl_secs(),
    };
    // RFC 6749 §5.1: responses carrying tokens must not be cached.
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)))
}

/// The public keys that verify access tokens (a JWK set, RFC 7517).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "identity",
    responses(
        (status = 200, description = "The key set; cacheable for 5 minutes", body = JwksDocument),
    )
)]
#[tracing::instrument(skip_all, name = "identity.jwks")]
async fn jwks(State(state): State<IdentityState>) -> Result<impl IntoResponse, IdentityError> {
    let keys = state.store.public_keys().await?;
    Ok((
        [(header::CACHE_CONTROL, JWKS_CACHE_CONTROL)],
        axum::Json(JwkSet { keys }),
    ))
}

/// The calling user's account.
#[utoipa::path(
    get,
    path = "/me",
    tag = "identity", security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The caller's account", body = User),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, name = "identity.me")]
async fn me(
    State(state): State<IdentityState>,
    caller: Caller,
) -> Result<axum::Json<User>, IdentityError> {
    let id = UserId::from_trusted(caller.user_id);
    let user = state
        .store
        .user_by_id(&id)
        .await?
        .ok_or(IdentityError::UserNotFound)?;
    Ok(axum::Json(user_view(&user)))
}

/// The public view of an account: everything but the hash.
fn user_view(user: &UserRecord) -> User {
    User {
        id: user.id.as_str().to_owned(),
        email: user.email.as_str().to_owned(),
        name: user.name.as_str().to_owned(),
        role: user.role,
        created_at: user.created_at,
    }
}
