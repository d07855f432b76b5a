//! Forwarding one request to an upstream transport: a fresh request with the target path, the
//! client's end-to-end headers minus hop-by-hop ones and minus any identity it tried to assert,
//! plus the identity the gateway verified.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use flotilla_chassis::caller::Caller;
use flotilla_chassis::problem::Problem;
use flotilla_chassis::resilience::deadline::DEADLINE_EXCEEDED;
use flotilla_chassis::service_credential::SERVICE_TOKEN;
use flotilla_chassis::transport::{Transport, TransportError};
use tower::ServiceExt;

/// Headers meaningful only for one connection (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names (no hashing) spares the removals below,
    // which hash each name, on every request and answer.
    let any = headers.keys().any(|name| {
        name == header::CONNECTION
            || HOP_BY_HOP.contains(name)
            || name.as_str().eq_ignore_ascii_case("keep-alive")
    });
    if !any {
        return;
    }
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| name.trim().parse().ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Sends `req` to `transport` as `target` (path and query), acting for `caller` (verified by the
/// gateway: a user's token, or another Flotilla process's credential), and relays the answer.
/// Client-sent identity headers are replaced; the transport carries the caller on (in-process as
/// headers, over HTTP inside the next hop's credential).
pub async fn forward(
    transport: &Transport,
    service: &str,
    req: Request,
    target: &str,
    caller: Option<Caller>,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(uri) = target.parse::<axum::http::Uri>() else {
        return Problem::bad_request("the request path is not valid").into_response();
    };
    let mut forwarded = Request::new(body);
    *forwarded.method_mut() = parts.method;
    *forwarded.uri_mut() = uri;
    *forwarded.headers_mut() = parts.headers;
    let headers = forwarded.headers_mut();
    strip_hop_by_hop(headers);
    headers.remove(&SERVICE_TOKEN);
    Caller::strip_headers(headers);
    if let Some(caller) = caller {
        caller.write_headers(headers);
    }
    match transport.clone().oneshot(forwarded).await {
        Ok(response) => relay_whole(service, response).await,
        // Bare, like the edge's own deadline refusal, which this one races: rendered for the
        // route (the storefront's page for a page).
        Err(TransportError::DeadlineExceeded(_)) => {
            tracing::debug!(service, "the deadline ran out before the upstream answered");
            flotilla_chassis::layers::deadline_exceeded()
        }
        Err(err) => transport_problem(service, &err).into_response(),
    }
}

/// The largest answer the gateway relays (the typed clients' limit too).
const MAX_RELAYED_BODY: usize = 8 * 1024 * 1024;

/// `response` with its body read to the end first (RELIABILITY.md F12). Relayed as it came, a
/// body trickling from a slow upstream went on past the request's deadline behind a 200 already
/// sent, and one cut mid-way reached the client as a 200 with half a body. Read here, under the
/// deadline the caller runs this in, a late body is answered 504 at the deadline and a cut one
/// 502, like any other failed call.
async fn relay_whole(service: &str, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    match axum::body::to_bytes(body, MAX_RELAYED_BODY).await {
        Ok(bytes) => Response::from_parts(parts, axum::body::Body::from(bytes)),
        Err(err) => {
            tracing::warn!(service, error = %err, "upstream's answer cut");
            Problem::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "upstream-unreachable",
                format!("{service}'s answer was cut off"),
            )
            .into_response()
        }
    }
}

fn transport_problem(service: &str, err: &TransportError) -> Problem {
    tracing::warn!(service, error = %err, "upstream failed");
    match err {
        TransportError::NoInstance(_) => {
            Problem::unavailable(format!("{service} is not available"))
        }
        TransportError::Timeout(_) => Problem::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
            format!("{service} did not answer in time"),
        ),
        TransportError::Connect { .. } => Problem::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "upstream-unreachable",
            format!("{service} could not be reached"),
        ),
        // Refused by a resilience layer before leaving the gateway, so cheap to repeat soon.
        TransportError::CircuitOpen(_) => Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "upstream-circuit-open",
            format!("{service} is failing; calls to it are suspended for a while"),
        )
        .with_retry_after(1),
        TransportError::Overloaded(_) => Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "upstream-overloaded",
            format!("{service} is busy; retry shortly"),
        )
        .with_retry_after(1),
        TransportError::DeadlineExceeded(_) => Problem::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            DEADLINE_EXCEEDED,
            format!("the request's deadline ran out before {service} answered"),
        ),
    }
}
