//! Traces: the recent ones with filters, and one trace as a waterfall.
//!
//! The API filters by service and count; route, status and duration are filtered here over the
//! most recent [`SCANNED`] traces (the store answers at most that many), which is what an
//! operator looking for "the slow checkout a minute ago" needs.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Ctx, query, segment};
use crate::fleet::ALL;
use crate::time_text;
use crate::views::{TraceFilters, TracePage, TraceRow, TracesPage};
use crate::waterfall::{Span, Waterfall};

/// How many recent traces the list reads before filtering (the API's maximum).
const SCANNED: usize = 200;

/// `?service=&route=&status=&min_ms=`; anything unreadable is ignored, not refused.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    service: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    min_ms: String,
    /// `1` to list the console's own page views too (hidden by default: every page of the
    /// console is a trace of its own API calls).
    #[serde(default)]
    console: String,
}

/// A trace as the API lists it.
#[derive(Debug, Deserialize)]
struct Summary {
    trace_id: String,
    #[serde(default)]
    root: String,
    #[serde(default)]
    service: String,
    /// What the root asked for (`/api/orders`), when it was an HTTP request.
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    start_unix_nanos: u64,
    #[serde(default)]
    duration_nanos: u64,
    #[serde(default)]
    spans: u64,
    #[serde(default)]
    failed: bool,
}

/// `GET /api/gateway/admin/traces`.
#[derive(Debug, Deserialize)]
struct List {
    traces: Vec<Summary>,
    #[serde(default)]
    kept_spans: u64,
}

/// `GET /api/gateway/admin/traces/{id}`.
#[derive(Debug, Deserialize)]
struct OneTrace {
    spans: Vec<Span>,
}

/// `GET /ops/traces`.
pub async fn list(ctx: Ctx, params: Result<Query<ListParams>, QueryRejection>) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let service = ALL
        .iter()
        .find(|s| **s == params.service)
        .copied()
        .unwrap_or("");
    let min_ms = params
        .min_ms
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|ms| ms.is_finite() && *ms >= 0.0);
    let filters = TraceFilters {
        service: service.to_owned(),
        route: params.route.trim().chars().take(200).collect(),
        status: match params.status.as_str() {
            "error" | "ok" => params.status.clone(),
            _ => String::new(),
        },
        min_ms,
        min_ms_text: min_ms.map(|ms| ms.to_string()).unwrap_or_default(),
        console: params.console == "1",
    };
    let limit = SCANNED.to_string();
    let path = format!(
        "/api/gateway/admin/traces{}",
        query(&[("service", service), ("limit", &limit)])
    );
    let (rows, scanned, kept_spans, error) = match ctx.api().get::<List>(&path).await {
        Ok(list) => {
            let scanned = list.traces.len();
            let rows = list
                .traces
                .into_iter()
                .filter(|t| matches(&filters, t))
                .map(|t| TraceRow {
                    started: time_text::clock_nanos(t.start_unix_nanos),
                    duration_ms: t.duration_nanos as f64 / 1e6,
                    trace_id: t.trace_id,
                    root: match &t.path {
                        Some(path) if !t.root.ends_with(path.as_str()) => {
                            format!("{} · {path}", t.root)
                        }
                        _ => t.root.clone(),
                    },
                    service: t.service,
                    spans: t.spans,
                    failed: t.failed,
                })
                .collect();
            (rows, scanned, list.kept_spans, None)
        }
        Err(error) => (Vec::new(), 0, 0, Some(error.to_string())),
    };
    let page = TracesPage {
        chrome: ctx.chrome("traces"),
        filters,
        services: ALL.iter().map(|s| (*s).to_owned()).collect(),
        rows,
        scanned,
        kept_spans,
        error,
    };
    ctx.page(StatusCode::OK, &page)
}

/// True when the trace `t` passes the filters the API could not apply.
fn matches(filters: &TraceFilters, t: &Summary) -> bool {
    let path = t.path.as_deref().unwrap_or_default();
    let wanted = filters.route.to_lowercase();
    let route_ok = wanted.is_empty()
        || t.root.to_lowercase().contains(&wanted)
        || path.to_lowercase().contains(&wanted);
    let console_ok = filters.console || !(path == "/ops" || path.starts_with("/ops/"));
    let status_ok = match filters.status.as_str() {
        "error" => t.failed,
        "ok" => !t.failed,
        _ => true,
    };
    let duration_ok = filters
        .min_ms
        .is_none_or(|ms| t.duration_nanos as f64 / 1e6 >= ms);
    route_ok && status_ok && duration_ok && console_ok
}

/// `GET /ops/traces/{trace_id}`.
pub async fn one(ctx: Ctx, Path(trace_id): Path<String>) -> Response {
    let path = format!("/api/gateway/admin/traces/{}", segment(&trace_id));
    let trace = match ctx.api().get::<OneTrace>(&path).await {
        Ok(trace) => trace,
        Err(error) => return ctx.error("traces", "This trace cannot be shown", &error),
    };
    let waterfall = Waterfall::of(trace.spans);
    let mut order_ids: Vec<String> = Vec::new();
    for row in &waterfall.rows {
        if let Some(serde_json::Value::String(id)) = row.span.attributes.get("flotilla.order_id")
            && !order_ids.contains(id)
        {
            order_ids.push(id.clone());
        }
    }
    let page = TracePage {
        chrome: ctx.chrome("traces"),
        services: waterfall.services(),
        total_ms: waterfall.duration_nanos as f64 / 1e6,
        started: time_text::clock_nanos(waterfall.start_unix_nanos),
        trace_id,
        waterfall,
        order_ids,
    };
    ctx.page(StatusCode::OK, &page)
}
