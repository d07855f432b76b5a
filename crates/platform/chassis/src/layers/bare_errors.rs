//! Bare errors: the refusals the stack makes on its own, before or around a handler (404 from
//! the router, 405, 413 from the body limit, 503 from the timeout, 504 for a lapsed deadline,
//! 408 for a body that stopped arriving). Each is answered *bare* — a status with no body of its
//! own, optionally naming its problem kind with a [`BareError`] extension — and rendered in one
//! place, [`render`], for the caller the router serves: the service's [`ErrorPage`] where it has
//! one (the storefront's HTML), problem+json otherwise. That is what keeps a browser from ever
//! seeing problem+json for a page, whichever layer refused it.

use axum::extract::{OptionalFromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ErrorPage;
use crate::caller::Caller;
use crate::problem::Problem;

/// The problem kind of a bare error, for callers that get problem+json (`slug` becomes
/// `urn:flotilla:problem:<slug>`). Without it the kind follows from the status.
#[derive(Debug, Clone, Copy)]
pub struct BareError {
    /// The problem type's slug.
    pub slug: &'static str,
    /// What went wrong, for the problem's `detail`.
    pub detail: &'static str,
}

/// A bare `status` of kind `slug`, for [`render`] to give a body.
pub fn bare(status: StatusCode, slug: &'static str, detail: &'static str) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(BareError { slug, detail });
    response
}

/// How [`render`] answers the requests of one router.
#[derive(Clone)]
pub struct Renderer {
    /// The error page, when the router has one.
    pub page: Option<ErrorPage>,
    /// Which paths get the page (the gateway's site, not its API); problem+json for the rest.
    pub is_page: fn(&str) -> bool,
}

impl Renderer {
    /// `page` for every path, if given.
    pub fn pages(page: Option<ErrorPage>) -> Self {
        Self {
            page,
            is_page: |_| true,
        }
    }
}

/// True for an error response with no body of its own (none, or a layer's plain text).
fn is_bare(response: &Response) -> bool {
    let status = response.status();
    let bare = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(ct) => ct.as_bytes().starts_with(b"text/plain"),
    };
    bare && (status.is_client_error() || status.is_server_error())
}

/// `response`'s headers (but its length and type) copied onto `rendered`, where it has none.
fn keep_headers(response: &Response, mut rendered: Response) -> Response {
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rendered.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    rendered
}

/// Middleware: bare errors get the router's page or a problem body. Errors a handler rendered on
/// purpose (JSON, HTML pages) are left alone.
pub async fn render(State(renderer): State<Renderer>, req: Request, next: Next) -> Response {
    let page = renderer
        .page
        .filter(|_| (renderer.is_page)(req.uri().path()));
    // Read the caller first, so a page's header shows the right account links.
    let (mut parts, body) = req.into_parts();
    let caller = <Caller as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &())
        .await
        .ok()
        .flatten();
    let response = next.run(Request::from_parts(parts, body)).await;
    if !is_bare(&response) {
        return response;
    }
    let status = response.status();
    let rendered = match page {
        Some(page) => {
            let mut rendered = page(status, caller.as_ref());
            *rendered.status_mut() = status;
            rendered
        }
        None => problem(&response).into_response(),
    };
    keep_headers(&response, rendered)
}

/// The problem a bare `response` stands for.
fn problem(response: &Response) -> Problem {
    let status = response.status();
    if let Some(kind) = response.extensions().get::<BareError>() {
        return Problem::new(status, kind.slug, kind.detail);
    }
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method-not-allowed", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            "the request body is larger than this service accepts",
        ),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => (
            "timeout",
            "the request took longer than the configured timeout",
        ),
        _ => ("error", "request failed"),
    };
    Problem::new(status, slug, detail)
}
