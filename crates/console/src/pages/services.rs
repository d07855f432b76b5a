//! Services: each service's readiness, outbox backlog and breakers, the instances the gateway
//! balances over (in a fleet), and what the recent spans say — who calls whom (rate, error
//! rate, p99) as a table and an SVG map, and each service's RED with a small chart.
//!
//! Spans come from the [`TRACES`] most recent traces (the console's own page views left out),
//! one API call per trace: the trace API has no bulk read, and a few dozen in-process calls
//! cost less than a new API would.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::Ctx;
use crate::call_stats::CallStats;
use crate::fleet::{ALL, WITH_DATABASE};
use crate::views::{MapEdge, MapNode, ServiceRow, ServicesPage};
use crate::waterfall::{Span, palette};

/// Traces read for the call map and the RED figures.
const TRACES: usize = 40;

#[derive(Debug, Deserialize)]
struct TraceList {
    traces: Vec<TraceRef>,
}

#[derive(Debug, Deserialize)]
struct TraceRef {
    trace_id: String,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OneTrace {
    spans: Vec<Span>,
}

/// `GET /ops/services`.
pub async fn show(ctx: Ctx) -> Response {
    let api = ctx.api();
    let gateway = api.get::<serde_json::Value>("/api/gateway/admin/resilience");
    let per_service = futures::future::join_all(WITH_DATABASE.iter().map(|service| {
        let api = &api;
        async move {
            let (ready, outbox, resilience) = (
                format!("/api/{service}/readyz"),
                format!("/api/{service}/admin/outbox"),
                format!("/api/{service}/admin/resilience"),
            );
            tokio::join!(
                api.get::<serde_json::Value>(&ready),
                api.get::<serde_json::Value>(&outbox),
                api.get::<serde_json::Value>(&resilience),
            )
        }
    }));
    let recent = format!("/api/gateway/admin/traces?limit={TRACES}");
    let list = api.get::<TraceList>(&recent);
    let (gateway, per_service, list) = tokio::join!(gateway, per_service, list);
    let gateway = gateway.unwrap_or_default();

    let rows = WITH_DATABASE
        .iter()
        .zip(per_service)
        .map(|(service, (ready, outbox, resilience))| {
            row(service, ready, outbox, resilience, &gateway)
        })
        .collect();

    let (spans, spans_error) = match list {
        Ok(list) => {
            let ids: Vec<String> = list
                .traces
                .into_iter()
                .filter(|t| {
                    !t.path
                        .as_deref()
                        .is_some_and(|p| p == "/ops" || p.starts_with("/ops/"))
                })
                .map(|t| t.trace_id)
                .collect();
            let traces = futures::future::join_all(ids.iter().map(|id| {
                let api = &api;
                async move {
                    api.get::<OneTrace>(&format!("/api/gateway/admin/traces/{id}"))
                        .await
                }
            }))
            .await;
            let spans: Vec<Span> = traces
                .into_iter()
                .filter_map(Result::ok)
                .flat_map(|t| t.spans)
                .collect();
            (spans, None)
        }
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    let stats = CallStats::of(&spans);
    let (nodes, edges) = map(&stats);
    let page = ServicesPage {
        chrome: ctx.chrome("services"),
        rows,
        span_count: spans.len(),
        spans_error,
        stats,
        nodes,
        edges,
    };
    ctx.page(StatusCode::OK, &page)
}

/// One service's row from its answers.
fn row(
    service: &str,
    ready: Result<serde_json::Value, crate::api::ApiError>,
    outbox: Result<serde_json::Value, crate::api::ApiError>,
    resilience: Result<serde_json::Value, crate::api::ApiError>,
    gateway: &serde_json::Value,
) -> ServiceRow {
    let (ready, ready_detail) = match ready {
        Ok(answer) => (
            answer["status"] == "ready",
            answer["checks"].to_string().replace(['{', '}', '"'], ""),
        ),
        Err(error) => (false, error.to_string()),
    };
    let outbox_text = match outbox {
        Ok(o) => {
            let outbox = format!(
                "outbox: {} pending, {} failing, oldest {} ms",
                o["pending"], o["failing"], o["oldest_pending_ms"]
            );
            match o["consumer"].as_object() {
                Some(c) => format!(
                    "{outbox}; consumer: {} handled, {} duplicates, {} failed, {} dead-lettered",
                    c["handled"], c["duplicates"], c["failures"], c["dead_lettered"]
                ),
                None => outbox,
            }
        }
        Err(error) => error.to_string(),
    };
    let breakers = match resilience {
        Ok(r) => r["upstreams"]
            .as_array()
            .map(|ups| {
                ups.iter()
                    .map(|u| {
                        (
                            u["upstream"].as_str().unwrap_or("?").to_owned(),
                            u["breaker"]["state"].as_str().unwrap_or("?").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let at_gateway = gateway["upstreams"]
        .as_array()
        .and_then(|ups| ups.iter().find(|u| u["upstream"] == service));
    let gateway_breaker = at_gateway
        .and_then(|u| u["breaker"]["state"].as_str())
        .unwrap_or("")
        .to_owned();
    let reached = at_gateway
        .and_then(|u| u["reached"].as_str())
        .unwrap_or("")
        .to_owned();
    let instances = at_gateway
        .and_then(|u| u["instances"]["instances"].as_array())
        .map(|list| {
            list.iter()
                .map(|i| {
                    format!(
                        "{}{} ({} requests, {} failed)",
                        i["url"].as_str().unwrap_or("?"),
                        if i["ejected"] == true { " EJECTED" } else { "" },
                        i["requests"],
                        i["failures"],
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ServiceRow {
        service: service.to_owned(),
        colour: palette(service),
        ready,
        ready_detail,
        outbox: outbox_text,
        breakers,
        gateway_breaker,
        reached,
        instances,
    }
}

/// The map: services on a circle (the shop's order), an arrow per edge.
fn map(stats: &CallStats) -> (Vec<MapNode>, Vec<MapEdge>) {
    let mut names: Vec<String> = Vec::new();
    for &name in ALL {
        if stats
            .edges
            .iter()
            .any(|e| e.caller == name || e.upstream == name)
        {
            names.push(name.to_owned());
        }
    }
    for e in &stats.edges {
        for name in [&e.caller, &e.upstream] {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let count = names.len().max(1) as f64;
    let nodes: Vec<MapNode> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let angle = std::f64::consts::TAU * i as f64 / count - std::f64::consts::FRAC_PI_2;
            MapNode {
                name: name.clone(),
                colour: palette(name),
                x: 330.0 + 250.0 * angle.cos(),
                y: 190.0 + 150.0 * angle.sin(),
            }
        })
        .collect();
    let at = |name: &str| nodes.iter().find(|n| n.name == name).map(|n| (n.x, n.y));
    let edges = stats
        .edges
        .iter()
        .filter_map(|e| {
            let (x1, y1) = at(&e.caller)?;
            let (x2, y2) = at(&e.upstream)?;
            // Stop short of the target's box so the arrowhead shows.
            let (dx, dy) = (x2 - x1, y2 - y1);
            let length = (dx * dx + dy * dy).sqrt().max(1.0);
            let cut = (42.0 / length).min(0.45);
            Some(MapEdge {
                x1: x1 + dx * cut,
                y1: y1 + dy * cut,
                x2: x2 - dx * cut,
                y2: y2 - dy * cut,
                failing: e.error_percent > 0.0,
                label: format!(
                    "{} → {}: {:.1}/s, {:.1}% errors, p99 {:.1} ms",
                    e.caller, e.upstream, e.per_second, e.error_percent, e.p99_ms
                ),
            })
        })
        .collect();
    (nodes, edges)
}
