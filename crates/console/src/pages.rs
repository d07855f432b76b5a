//! The console's pages, one module per area, and the routes that reach them.
//!
//! Each GET handler asks the API for its data as the session's administrator and renders it;
//! an API refusal or outage is shown in the page, with the API's own words. Each POST handler
//! checks the form token, makes one API call and redirects back with a flash of the outcome.

mod dead_letters;
mod mailbox;
mod sagas;
mod services;
mod traces;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;

use crate::api::{Api, ApiError};
use crate::csrf;
use crate::flash::{self, Flash};
use crate::session::OpsSession;
use crate::views::{Chrome, ErrorPage, render};
use crate::{Console, assets};

/// Every page of the console.
pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/ops", get(|| async { Redirect::to("/ops/traces") }))
        .route("/ops/", get(|| async { Redirect::to("/ops/traces") }))
        .route("/ops/static/console.css", get(assets::style))
        .route("/ops/traces", get(traces::list))
        .route("/ops/traces/{trace_id}", get(traces::one))
        .route("/ops/sagas", get(sagas::list))
        .route("/ops/sagas/{order_id}", get(sagas::one))
        .route("/ops/sagas/{order_id}/{action}", post(sagas::act))
        .route("/ops/dead-letters", get(dead_letters::list))
        .route(
            "/ops/dead-letters/{service}/replay-all",
            post(dead_letters::replay_all),
        )
        .route(
            "/ops/dead-letters/{service}/{event_id}/{action}",
            post(dead_letters::act),
        )
        .route("/ops/mailbox", get(mailbox::list))
        .route("/ops/services", get(services::show))
        .fallback(not_found)
}

/// What every page handler starts from: the administrator, the flash left for this page, and
/// the API as that administrator.
pub struct Ctx {
    pub session: OpsSession,
    pub flash: Option<Flash>,
    pub console: Arc<Console>,
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let session = OpsSession::from_request_parts(parts, console).await?;
        Ok(Ctx {
            session,
            flash: flash::take(&parts.headers),
            console: Arc::clone(console),
        })
    }
}

impl Ctx {
    /// The API, as this administrator.
    pub fn api(&self) -> Api<'_> {
        Api::new(&self.console.api, &self.session)
    }

    /// The page header for `section`.
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            user_id: self.session.user_id().to_owned(),
            csrf: csrf::token(self.session.token()),
            flash: self.flash.clone(),
            section,
        }
    }

    /// Renders `page`; a flash shown on it is cleared.
    pub fn page(&self, status: StatusCode, page: &impl askama::Template) -> Response {
        let mut response = render(status, page);
        if self.flash.is_some() {
            flash::clear(&mut response);
        }
        response
    }

    /// The page saying why `section`'s data could not be shown.
    pub fn error(&self, section: &'static str, what: &str, error: &ApiError) -> Response {
        let page = ErrorPage {
            chrome: self.chrome(section),
            headline: what.to_owned(),
            detail: error.to_string(),
        };
        self.page(error.status(), &page)
    }

    /// `Ok` when `form_token` is this session's form token; the refusal otherwise.
    pub fn check_form(&self, form_token: &str, back: &str) -> Result<(), Response> {
        if csrf::is_valid(self.session.token(), form_token) {
            Ok(())
        } else {
            tracing::info!("refused a console form without this session's token");
            Err(flash::redirect(
                back,
                &Flash {
                    ok: false,
                    text:
                        "Refused: the form was not this session's (reload the page and try again)."
                            .into(),
                },
            ))
        }
    }
}

/// The outcome of an action as a flash: `done` when the API accepted it, its refusal otherwise.
pub fn outcome(result: Result<String, ApiError>) -> Flash {
    match result {
        Ok(done) => Flash {
            ok: true,
            text: done,
        },
        Err(error) => Flash {
            ok: false,
            text: format!("Refused: {error}"),
        },
    }
}

/// A path of the console that does not exist.
async fn not_found(ctx: Ctx) -> Response {
    let page = ErrorPage {
        chrome: ctx.chrome(""),
        headline: "Not found".into(),
        detail: "The console has no such page.".into(),
    };
    ctx.page(StatusCode::NOT_FOUND, &page)
}

/// The answer to a form posted from another site (tower-http's `CsrfLayer`).
pub fn cross_site_refused() -> impl FnMut(tower_http::csrf::ProtectionError) -> Response + Clone {
    |error| {
        tracing::info!(%error, "refused a cross-site console form");
        (
            StatusCode::FORBIDDEN,
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>Refused</title><p>This form was sent from another site, \
             so the console did not act on it.",
        )
            .into_response()
    }
}

/// The `?key=value` query of `pairs`, empty values left out.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if !v.is_empty() {
            serializer.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", serializer.finish())
    } else {
        String::new()
    }
}

/// `text` as one path segment (percent-encoded).
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
