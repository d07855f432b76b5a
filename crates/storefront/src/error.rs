//! Error pages: the HTML counterpart of the chassis's problem+json.
//!
//! A handler that cannot show its page turns the cause into a [`PageError`] and renders it inside
//! the page's header. Visitors read a friendly sentence; the cause (which service, what it said)
//! goes to the log only. Every response with an error status and no body of its own — the
//! router's 405, and the chassis's refusals around the routes (408, 413, timeouts, a lapsed
//! deadline) — gets the same treatment from one place, the chassis's bare-error renderer, through
//! [`error_page`]; so no visitor ever sees a bare error or a JSON document.

use axum::http::StatusCode;
use axum::response::Response;
use flotilla_chassis::ErrorPage;
use flotilla_chassis::transport::ClientError;
use std::sync::Arc;
use tower_http::csrf::ProtectionError;

use crate::views::{Chrome, ErrorView, render};

/// Why a page cannot be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The page or the thing it shows does not exist.
    #[error("not found")]
    NotFound,
    /// The request could not be read (a mangled form post).
    #[error("bad request")]
    BadRequest,
    /// A form post larger than the shop accepts.
    #[error("request too large")]
    TooLarge,
    /// A form post whose body stopped arriving before it was whole.
    #[error("request body too slow")]
    TooSlow,
    /// A form was posted from another site.
    #[error("cross-site request refused")]
    CrossSite,
    /// The method is not one this page answers (e.g. `GET /logout`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A page for administrators, asked for by someone else.
    #[error("forbidden")]
    Forbidden,
    /// The visitor sent more than the gateway's rate limits allow.
    #[error("too many requests")]
    TooManyRequests,
    /// The service the page is about is down or overloaded.
    #[error("a service is unavailable")]
    Unavailable,
    /// A bug, or a service refusing a request it should have accepted.
    #[error("internal error")]
    Internal,
}

impl PageError {
    /// The status the page is served with.
    pub fn status(self) -> StatusCode {
        match self {
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::BadRequest => StatusCode::BAD_REQUEST,
            PageError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            PageError::CrossSite => StatusCode::FORBIDDEN,
            PageError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PageError::Forbidden => StatusCode::FORBIDDEN,
            PageError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page for an error response that has no body of its own.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => PageError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => PageError::MethodNotAllowed,
            // The CSRF check answers its own page (`csrf_rejection`); a bare 403 is the
            // gateway's refusal of an admin page.
            StatusCode::FORBIDDEN => PageError::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => PageError::TooManyRequests,
            StatusCode::PAYLOAD_TOO_LARGE => PageError::TooLarge,
            StatusCode::REQUEST_TIMEOUT => PageError::TooSlow,
            s if s.is_client_error() => PageError::BadRequest,
            // A timeout (503 from the service's limit, 504 from a gateway) reads as an outage.
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => PageError::Unavailable,
            _ => PageError::Internal,
        }
    }

    /// The headline and the sentence shown to the visitor.
    fn wording(self) -> (&'static str, &'static str) {
        match self {
            PageError::NotFound => (
                "Page not found",
                "We could not find what you were looking for. It may have been moved or removed.",
            ),
            PageError::BadRequest => (
                "That did not work",
                "We could not read what was sent. Please go back and try again.",
            ),
            PageError::TooLarge => (
                "That was too much",
                "What was sent is larger than this shop accepts. Please go back and send less.",
            ),
            PageError::TooSlow => (
                "That took too long",
                "What was sent stopped arriving before it was complete. Please try again.",
            ),
            PageError::CrossSite => (
                "Request refused",
                "This form was sent from another website, so we did not act on it. \
                 If you meant to do this, please use the form on this shop's own page.",
            ),
            PageError::MethodNotAllowed => (
                "That did not work",
                "This address does not accept that kind of request.",
            ),
            PageError::Forbidden => (
                "Not for this account",
                "This page is for the shop's administrators.",
            ),
            PageError::TooManyRequests => (
                "Slow down a little",
                "Too many requests came from you in a short time. \
                 Please wait a moment and try again.",
            ),
            PageError::Unavailable => (
                "We'll be right back",
                "This part of the shop is unavailable right now. Please try again in a moment.",
            ),
            PageError::Internal => (
                "Something went wrong",
                "Something went wrong on our side. Please try again in a moment.",
            ),
        }
    }

    /// The error page, inside `chrome`.
    pub fn page(self, chrome: Chrome) -> Response {
        let (title, message) = self.wording();
        let status = self.status();
        render(
            status,
            &ErrorView {
                chrome,
                status: status.as_u16(),
                title,
                message,
            },
        )
    }

    /// For a call that names one thing (a product, a category): the catalog refusing the name
    /// (404, or 400/422 for a malformed one) means the visitor asked for something that does not
    /// exist; anything else is [`PageError::from`].
    pub fn from_lookup(error: ClientError) -> Self {
        match error.status() {
            Some(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST)
            | Some(StatusCode::UNPROCESSABLE_ENTITY) => PageError::NotFound,
            _ => PageError::from(error),
        }
    }
}

/// A failed call to the service a page is about. A 4xx the page did not expect is our bug (we
/// sent a request the service refuses), not the visitor's, and not an outage.
impl From<ClientError> for PageError {
    fn from(error: ClientError) -> Self {
        match error.status() {
            Some(StatusCode::NOT_FOUND) => PageError::NotFound,
            Some(StatusCode::TOO_MANY_REQUESTS) => {
                tracing::warn!(%error, "dependency is shedding load");
                PageError::Unavailable
            }
            Some(status) if status.is_client_error() => {
                tracing::error!(%error, "dependency refused our request");
                PageError::Internal
            }
            _ => {
                tracing::warn!(%error, "dependency unavailable");
                PageError::Unavailable
            }
        }
    }
}

/// Error pages for the refusals the chassis's layers make outside the storefront's routes (408
/// for a late body, 413 from the body limit, 503 from the timeout, 504 for a lapsed deadline),
/// which would otherwise be problem+json: see [`flotilla_chassis::Service::with_error_page`].
/// The same pages, for the shop named `shop_name`, are what the gateway answers when it refuses
/// a page itself (`flotilla_gateway::Gateway::site_error_page`): they need nothing but the name,
/// so any process can render them.
pub fn error_page(shop_name: &str) -> ErrorPage {
    let shop_name = shop_name.to_owned();
    Arc::new(move |status, caller| {
        let chrome = Chrome::new(&shop_name, caller.is_some());
        let mut page = PageError::for_status(status).page(chrome);
        crate::security_headers(page.headers_mut());
        page
    })
}

/// The answer to a refused cross-site post, for [`tower_http::csrf::CsrfLayer`].
pub fn csrf_rejection(shop_name: String) -> impl FnMut(ProtectionError) -> Response + Clone {
    move |error| {
        tracing::info!(%error, "refused a cross-site form post");
        PageError::CrossSite.page(Chrome::new(&shop_name, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_an_error_status_and_wording() {
        for error in [
            PageError::NotFound,
            PageError::BadRequest,
            PageError::TooLarge,
            PageError::TooSlow,
            PageError::CrossSite,
            PageError::MethodNotAllowed,
            PageError::Forbidden,
            PageError::TooManyRequests,
            PageError::Unavailable,
            PageError::Internal,
        ] {
            if error != PageError::CrossSite {
                // A bare status gets its own page back (the CSRF page is made by its layer).
                assert_eq!(PageError::for_status(error.status()), error, "{error}");
            }
            assert!(error.status().is_client_error() || error.status().is_server_error());
            let (title, message) = error.wording();
            assert!(!title.is_empty() && !message.is_empty());
        }
    }
}
