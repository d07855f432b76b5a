//! `GET /api/gateway/admin/traces[/{trace_id}]` (admin role): the recent traces this process
//! recorded (`flotilla_chassis::telemetry`), as JSON — in one process, every service's; the ops
//! console reads the same. And `POST /api/gateway/otlp/v1/traces`, the receiver other processes
//! export their spans to (OTLP/HTTP, JSON), so that a fleet's traces are read in one place.

use axum::response::{IntoResponse, Response};
use flotilla_chassis::problem::Problem;
use flotilla_chassis::telemetry;
use serde::Deserialize;

/// The most traces one list answers.
pub const MAX_LIST: usize = 200;

/// `?service=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only traces with a request served by this service.
    pub service: Option<String>,
    /// How many, newest first: 1 to [`MAX_LIST`], 50 by default.
    pub limit: Option<usize>,
}

/// The list, newest first.
pub fn list(query: &ListQuery) -> Response {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Problem::bad_request(format!("limit must be from 1 to {MAX_LIST}")).into_response();
    }
    let Some(telemetry) = telemetry::installed() else {
        return axum::Json(serde_json::json!({"traces": []})).into_response();
    };
    let store = telemetry.store();
    let traces = store.recent_traces(query.service.as_deref(), limit);
    axum::Json(serde_json::json!({
        "traces": traces,
        "kept_spans": store.len(),
        "evicted_spans": store.evicted(),
        "unpersisted_spans": store.unpersisted(),
    }))
    .into_response()
}

/// One trace's spans, by start time.
pub fn one(trace_id: &str) -> Response {
    let id = (trace_id.len() == 32)
        .then(|| u128::from_str_radix(trace_id, 16).ok())
        .flatten()
        .filter(|id| *id != 0);
    let Some(id) = id else {
        return Problem::bad_request("a trace id is 32 hexadecimal digits").into_response();
    };
    let spans = telemetry::installed()
        .map(|t| t.store().trace(id))
        .unwrap_or_default();
    if spans.is_empty() {
        return Problem::not_found("no such trace is kept here").into_response();
    }
    let spans: Vec<&telemetry::SpanRecord> = spans.iter().map(AsRef::as_ref).collect();
    axum::Json(serde_json::json!({ "trace_id": trace_id, "spans": spans })).into_response()
}

/// Spans one export may hold at most.
pub const MAX_RECEIVED: usize = 2048;

/// Keeps the spans of an OTLP JSON export request; answers OTLP's (empty) success.
pub fn receive(headers: &axum::http::HeaderMap, body: &[u8]) -> Response {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send OTLP/HTTP with JSON bodies (content-type: application/json); protobuf is not read here",
        )
        .into_response();
    }
    let spans = match telemetry::otlp::decode(body, MAX_RECEIVED) {
        Ok(spans) => spans,
        Err(why) => return Problem::bad_request(why).into_response(),
    };
    if let Some(telemetry) = telemetry::installed() {
        for span in spans {
            telemetry.store().record(std::sync::Arc::new(span));
        }
    }
    axum::Json(serde_json::json!({})).into_response()
}
