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
    let user = match Email::parse(&req.email) {
        Ok(email) => state.store.user_by_email(&email).await?,
        Err(_) => None,
    };
    let password = Password::unchecked(req.password);
    let hash = user.as_ref().map(|u| &u.password_hash);
    let user = match (state.passwords.verify(&password, hash).await?, user) {
        (true, Some(user)) => user,
        _ => return Err(IdentityError::BadCredentials),
    };
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
