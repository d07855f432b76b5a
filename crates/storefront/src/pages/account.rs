//! Signing up, logging in and out.
//!
//! The storefront holds no accounts: identity checks the form, and on success the storefront
//! turns the access token it answers with into the `flotilla_token` cookie. A refused form comes
//! back filled in with what was typed, except the password, which is never echoed into a page.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use flotilla_chassis::Caller;
use flotilla_chassis::transport::ClientError;
use flotilla_identity::contract::{LoginRequest, SignupRequest};
use serde::Deserialize;
use std::sync::Arc;

use crate::error::PageError;
use crate::forms::{GENERIC_INVALID, HtmlForm, field_message, sentence};
use crate::session::{self, AccessToken};
use crate::shop::Shop;
use crate::views::{Chrome, LoginPage, SignupPage, render};

/// The sign-up form's fields. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// The login form's fields. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `?next=` of the login and sign-up pages.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// What the login page says after a refused attempt.
const WRONG_CREDENTIALS: &str = "Wrong email or password.";
/// What the login form says when identity throttles the address.
const TOO_MANY_FAILURES: &str =
    "Too many failed attempts for this email address. Please wait a minute and try again.";

/// The header of the login and sign-up pages: its account links keep `next` (sanitised).
async fn account_chrome(shop: &Shop, caller: Option<&Caller>, next: &str) -> Chrome {
    let mut chrome = shop.chrome(caller).await;
    chrome.account_links_query = session::next_query(next);
    chrome
}

/// The page to go to afterwards, from `?next=` (a local path only; `/` when absent or
/// unreadable).
fn next_of(query: Result<Query<NextQuery>, QueryRejection>) -> String {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    session::safe_next(query.next.as_deref())
}

/// `GET /signup?next=`.
pub async fn signup_form(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let next = next_of(query);
    let page = SignupPage {
        chrome: account_chrome(&shop, caller.as_ref(), &next).await,
        name: String::new(),
        email: String::new(),
        errors: Vec::new(),
        next_query: session::next_query(&next),
        next,
    };
    render(StatusCode::OK, &page)
}

/// `POST /signup`: create the account, log it in, go to `next` (home by default).
#[tracing::instrument(skip_all)]
pub async fn signup(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    HtmlForm(form): HtmlForm<SignupForm>,
) -> Response {
    let next = session::safe_next(form.next.as_deref());
    let request = SignupRequest {
        email: form.email.trim().to_owned(),
        password: form.password,
        name: form.name.trim().to_owned(),
    };
    if let Err(error) = shop.identity.signup(&request).await {
        let (status, errors) = match error.status() {
            Some(StatusCode::CONFLICT) => (
                StatusCode::CONFLICT,
                vec!["An account with this email address already exists. Log in instead?".into()],
            ),
            Some(StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                validation_messages(&error),
            ),
            _ => {
                let chrome = shop.chrome(caller.as_ref()).await;
                return PageError::from(error).page(chrome);
            }
        };
        let page = SignupPage {
            chrome: account_chrome(&shop, caller.as_ref(), &next).await,
            name: request.name,
            email: request.email,
            errors,
            next_query: session::next_query(&next),
            next,
        };
        return render(status, &page);
    }
    let login = LoginRequest {
        email: request.email,
        password: request.password,
    };
    match shop.identity.login(&login).await {
        Ok(token) => match AccessToken::parse(&token.access_token) {
            Some(access) => session::log_in(&next, &access, token.expires_in),
            None => {
                tracing::error!("identity issued a token that cannot be a cookie");
                PageError::Internal.page(shop.chrome(caller.as_ref()).await)
            }
        },
        // The account exists; only the automatic log-in failed. Let the visitor do it.
        Err(error) => {
            tracing::warn!(%error, "log-in right after sign-up failed");
            let page = LoginPage {
                chrome: account_chrome(&shop, caller.as_ref(), &next).await,
                email: login.email,
                next_query: session::next_query(&next),
                next,
                message: Some("Your account was created. Please log in.".to_owned()),
            };
            render(StatusCode::OK, &page)
        }
    }
}

/// The messages of identity's validation problem: one per field, else its detail.
fn validation_messages(error: &ClientError) -> Vec<String> {
    let ClientError::Status { problem, .. } = error else {
        return vec![GENERIC_INVALID.to_owned()];
    };
    let mut messages: Vec<String> = problem
        .errors
        .iter()
        .map(|e| field_message(&e.field, &e.message))
        .collect();
    if messages.is_empty() {
        messages.push(
            problem
                .detail
                .as_deref()
                .map(sentence)
                .unwrap_or_else(|| GENERIC_INVALID.to_owned()),
        );
    }
    messages
}

/// `GET /login?next=`.
pub async fn login_form(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let next = next_of(query);
    let page = LoginPage {
        chrome: account_chrome(&shop, caller.as_ref(), &next).await,
        email: String::new(),
        next_query: session::next_query(&next),
        next,
        message: None,
    };
    render(StatusCode::OK, &page)
}

/// `POST /login`: set the cookie and go to `next`, or show the form again.
#[tracing::instrument(skip_all)]
pub async fn login(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    HtmlForm(form): HtmlForm<LoginForm>,
) -> Response {
    let next = session::safe_next(form.next.as_deref());
    let request = LoginRequest {
        email: form.email.trim().to_owned(),
        password: form.password,
    };
    let mut retry_after = None;
    let refusal = if request.email.is_empty() || request.password.is_empty() {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please enter your email address and password.",
        )
    } else {
        match shop.identity.login(&request).await {
            Ok(token) => {
                return match AccessToken::parse(&token.access_token) {
                    Some(access) => session::log_in(&next, &access, token.expires_in),
                    None => {
                        tracing::error!("identity issued a token that cannot be a cookie");
                        PageError::Internal.page(shop.chrome(caller.as_ref()).await)
                    }
                };
            }
            // Identity's throttle (too many failures on this address): said as such, for
            // known and unknown addresses alike.
            Err(error) if error.status() == Some(StatusCode::TOO_MANY_REQUESTS) => {
                retry_after = error.retry_after();
                (StatusCode::TOO_MANY_REQUESTS, TOO_MANY_FAILURES)
            }
            // Any refusal reads the same, so the page never tells which half was wrong.
            Err(error)
                if error
                    .status()
                    .is_some_and(|s| s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS) =>
            {
                (StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS)
            }
            Err(error) => {
                return PageError::from(error).page(shop.chrome(caller.as_ref()).await);
            }
        }
    };
    let (status, message) = refusal;
    let page = LoginPage {
        chrome: account_chrome(&shop, caller.as_ref(), &next).await,
        email: request.email,
        next_query: session::next_query(&next),
        next,
        message: Some(message.to_owned()),
    };
    let mut response = render(status, &page);
    // Identity's advice on when to try again, passed on to the browser.
    if let Some(secs) = retry_after
        && let Ok(value) = secs.to_string().parse()
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `POST /logout`: clear the cookie, go home.
pub async fn logout() -> Response {
    session::log_out()
}
