//! The ops console at `/ops` (issue 14): server-rendered pages over the gateway's admin API —
//! traces and their waterfalls, sagas and the operators' actions on them, dead letters, the
//! notifications mailbox and the services' health — for administrators only.
//!
//! Why it is shaped this way:
//!
//! - **A crate of its own, mounted by the gateway.** Everything the console shows already exists
//!   as JSON under `/api/<service>/admin/…` and `/api/gateway/admin/…`; the console only turns it
//!   into pages. It is neither a service (it owns no data and no contract) nor part of the
//!   storefront (a shop for customers, whose failures must not hide the ops view and whose
//!   pages must not grow admin code). The gateway already knows every route and every caller,
//!   so it mounts the console under `/ops`, in one process and in a fleet alike.
//! - **It reads through the gateway's own API handling, as the admin.** The gateway hands the
//!   console a [`Transport`] that is its API router (the very handler behind `/api/…`, no
//!   socket), and each request's [`OpsSession`]: the admin's verified session token. The console
//!   sends that token as a bearer token on every call, so the gateway checks it again, applies the
//!   admin surface rules and the exposure check, and the console can see and do exactly what
//!   that admin could with `curl` — no privilege of its own, no second code path to a service.
//!   The services' own audit trails therefore name the admin, not the console.
//! - **No JavaScript, no build step, no CDN.** Pages are askama templates (the storefront's
//!   engine, escaping every value by default; no template marks data safe), one stylesheet
//!   compiled into the binary, and inline SVG for the waterfall's bars and the charts. SVG's
//!   geometry attributes (`x`, `width`, `points`) need no inline CSS, so the page's
//!   Content-Security-Policy forbids both scripts and inline styles.
//! - **Forms, not scripts, change things.** Every action (retry a saga, replay a dead letter, …)
//!   is an HTML form POST answered with a 303 back to the page it came from and a one-time
//!   flash message (a short-lived cookie) saying what happened, refusals included. Posts must
//!   come from this origin (`Sec-Fetch-Site`/`Origin`, tower-http's [`CsrfLayer`]) *and* carry
//!   the session's form token ([`csrf`]), so neither a cross-site form nor a same-site page
//!   without the token can act for the admin.

mod api;
mod assets;
mod call_stats;
mod csrf;
mod flash;
mod fleet;
mod pages;
mod session;
mod time_text;
mod views;
mod waterfall;

use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use flotilla_chassis::transport::Transport;
use std::sync::Arc;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use session::OpsSession;

/// Where the console lives.
pub const PREFIX: &str = "/ops";

/// Headers every console answer carries (no script, no inline style: the pages' policy).
/// Pages show operational data: never cached anywhere.
const SECURITY_HEADERS: [(HeaderName, &str); 4] =
    flotilla_chassis::layers::page_security_headers("no-store");

/// What every page handler shares: the way to the gateway's API.
pub(crate) struct Console {
    api: Transport,
}

/// The console's router over `api`, the gateway's own API handling (requests to `/api/…`
/// answered as the gateway answers them). Every request must carry an [`OpsSession`] in its
/// extensions, put there by the gateway after it checked the caller is an administrator; one
/// without is refused.
pub fn router(api: Transport) -> Router {
    let console = Arc::new(Console { api });
    let csrf = CsrfLayer::new().with_rejection_response(pages::cross_site_refused());
    let mut router = pages::routes().layer(csrf);
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router.with_state(console)
}
