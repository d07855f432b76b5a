//! One trace laid out as a waterfall: its spans in tree order (each under its parent, siblings
//! by start), each with its depth and its bar's offset and width on a 0..1000 scale of the
//! trace's duration. Pure, so the layout is tested without a page.

use serde::Deserialize;
use std::collections::HashMap;

/// The width of the scale bars are drawn on (the SVG's `viewBox` width).
pub const SCALE: u64 = 1000;

/// Deepest indentation the page draws; deeper spans are drawn at this depth.
pub const MAX_DEPTH: usize = 12;

/// A span as `GET /api/gateway/admin/traces/{id}` answers it (the fields the console reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    /// Its id (16 hex digits).
    pub span_id: String,
    /// Its parent's id; `None` for a root.
    #[serde(default)]
    pub parent_span_id: Option<String>,
    /// What it did.
    pub name: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    /// The service that recorded it.
    pub service: String,
    /// Start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// Duration in nanoseconds.
    pub duration_nanos: u64,
    /// `{"code": "unset"}` or `{"code": "error", "message": …}`.
    #[serde(default)]
    pub status: SpanStatus,
    /// Attributes by name.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// How a span ended.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SpanStatus {
    /// `unset` or `error`.
    #[serde(default)]
    pub code: String,
    /// Why it failed.
    #[serde(default)]
    pub message: Option<String>,
}

/// One row of the waterfall.
#[derive(Debug, Clone)]
pub struct Row {
    /// The span.
    pub span: Span,
    /// How deep in the tree (0 for a root), at most [`MAX_DEPTH`].
    pub depth: usize,
    /// The bar's start on the 0..[`SCALE`] axis.
    pub x: u64,
    /// The bar's width on that axis (at least 1, so an instant span still shows).
    pub width: u64,
    /// Milliseconds after the trace's start.
    pub offset_ms: f64,
}

impl Row {
    /// The span's duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.span.duration_nanos as f64 / 1e6
    }

    /// What the row says the span did: its name, and for a call the service and path it went
    /// to (a client span is named by its method only, as OpenTelemetry names them).
    pub fn label(&self) -> String {
        let text = |key: &str| {
            self.span
                .attributes
                .get(key)
                .and_then(serde_json::Value::as_str)
        };
        match (self.span.kind.as_str(), text("server.address")) {
            ("client", Some(upstream)) => format!(
                "{} → {upstream} {}",
                self.span.name,
                text("url.path").unwrap_or_default()
            ),
            _ => self.span.name.clone(),
        }
    }

    /// The colour class of the span's service.
    pub fn palette(&self) -> &'static str {
        palette(&self.span.service)
    }

    /// True when the span ended in an error.
    pub fn failed(&self) -> bool {
        self.span.status.code == "error"
    }

    /// Its attributes as (name, text) pairs, by name.
    pub fn attributes(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .span
            .attributes
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        pairs.sort();
        pairs
    }
}

/// The whole trace: its rows, its start and its duration.
#[derive(Debug, Clone)]
pub struct Waterfall {
    /// The spans in tree order.
    pub rows: Vec<Row>,
    /// The first span's start (ns since the epoch).
    pub start_unix_nanos: u64,
    /// From the first start to the last end, in nanoseconds.
    pub duration_nanos: u64,
}

impl Waterfall {
    /// Lays `spans` out. A span whose parent is not among them (recorded by a process whose spans
    /// are not here, or evicted) is drawn as a root.
    pub fn of(mut spans: Vec<Span>) -> Self {
        spans.sort_by(|a, b| {
            (a.start_unix_nanos, &a.span_id).cmp(&(b.start_unix_nanos, &b.span_id))
        });
        let (start, end) = window(&spans);
        let total = end.saturating_sub(start).max(1);
        let ids: HashMap<&str, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.as_str(), i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, span) in spans.iter().enumerate() {
            match span.parent_span_id.as_deref().and_then(|p| ids.get(p)) {
                Some(&parent) if parent != i => children[parent].push(i),
                _ => roots.push(i),
            }
        }
        // Depth first, siblings by start (the sort above); a visited mark keeps a malformed
        // cycle from looping, and a span in a cycle without a root is drawn at the end.
        let mut order: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        let mut visited = vec![false; spans.len()];
        let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            order.push((i, depth));
            for &child in children[i].iter().rev() {
                stack.push((child, depth + 1));
            }
        }
        for (i, seen) in visited.iter().enumerate() {
            if !seen {
                order.push((i, 0));
            }
        }
        let scaled =
            |nanos: u64| (u128::from(nanos) * u128::from(SCALE) / u128::from(total)) as u64;
        let rows = order
            .into_iter()
            .map(|(i, depth)| {
                let span = spans[i].clone();
                let offset = span.start_unix_nanos.saturating_sub(start);
                let x = scaled(offset).min(SCALE - 1);
                let width = scaled(span.duration_nanos).clamp(1, SCALE - x);
                Row {
                    depth: depth.min(MAX_DEPTH),
                    x,
                    width,
                    offset_ms: offset as f64 / 1e6,
                    span,
                }
            })
            .collect();
        Waterfall {
            rows,
            start_unix_nanos: start,
            duration_nanos: end.saturating_sub(start),
        }
    }

    /// The services with a span in the trace, in order of their first span, each with its
    /// colour class.
    pub fn services(&self) -> Vec<(String, &'static str)> {
        let mut seen: Vec<String> = Vec::new();
        let mut by_start: Vec<&Row> = self.rows.iter().collect();
        by_start.sort_by_key(|r| r.span.start_unix_nanos);
        for row in by_start {
            if !seen.contains(&row.span.service) {
                seen.push(row.span.service.clone());
            }
        }
        seen.into_iter()
            .map(|s| {
                let colour = palette(&s);
                (s, colour)
            })
            .collect()
    }
}

/// From the first start to the last end of `spans` (ns since the epoch; `(0, 0)` for none).
pub fn window(spans: &[Span]) -> (u64, u64) {
    let start = spans.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.start_unix_nanos.saturating_add(s.duration_nanos))
        .max()
        .unwrap_or(start);
    (start, end)
}

/// The colour class of `service`: one per service of the shop, `c-other` for anything else
/// (a name a span reports is data, never a class of its own).
pub fn palette(service: &str) -> &'static str {
    match service {
        "gateway" => "c-gateway",
        "storefront" => "c-storefront",
        "identity" => "c-identity",
        "catalog" => "c-catalog",
        "cart" => "c-cart",
        "inventory" => "c-inventory",
        "orders" => "c-orders",
        "payments" => "c-payments",
        "shipping" => "c-shipping",
        "notifications" => "c-notifications",
        _ => "c-other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: u64, duration: u64) -> Span {
        Span {
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            name: format!("span {id}"),
            kind: "server".into(),
            service: format!("svc-{id}"),
            start_unix_nanos: start,
            duration_nanos: duration,
            status: SpanStatus::default(),
            attributes: serde_json::Map::new(),
        }
    }

    #[test]
    fn children_follow_their_parent_and_bars_scale_to_the_trace() {
        // root 0..1000; a 100..600 under it, b 700..900 under it, c 200..300 under a.
        let spans = vec![
            span("b", Some("root"), 700, 200),
            span("c", Some("a"), 200, 100),
            span("root", None, 0, 1000),
            span("a", Some("root"), 100, 500),
        ];
        let w = Waterfall::of(spans);
        let order: Vec<(&str, usize)> = w
            .rows
            .iter()
            .map(|r| (r.span.span_id.as_str(), r.depth))
            .collect();
        assert_eq!(order, [("root", 0), ("a", 1), ("c", 2), ("b", 1)]);
        let c = &w.rows[2];
        assert_eq!((c.x, c.width), (200, 100));
        assert_eq!((w.rows[0].x, w.rows[0].width), (0, 1000));
        assert_eq!(w.duration_nanos, 1000);
    }

    #[test]
    fn orphans_and_cycles_are_drawn_and_never_loop() {
        let spans = vec![
            span("x", Some("gone"), 10, 0),
            span("p", Some("q"), 20, 5),
            span("q", Some("p"), 30, 5),
        ];
        let w = Waterfall::of(spans);
        assert_eq!(w.rows.len(), 3);
        assert!(
            w.rows
                .iter()
                .all(|r| r.width >= 1 && r.x + r.width <= SCALE)
        );
        assert_eq!(w.rows[0].span.span_id, "x");
    }

    #[test]
    fn a_call_says_where_it_went() {
        let mut call = span("c", None, 0, 10);
        call.kind = "client".into();
        call.name = "POST".into();
        call.attributes
            .insert("server.address".into(), "payments".into());
        call.attributes
            .insert("url.path".into(), "/payments".into());
        let w = Waterfall::of(vec![call, span("s", None, 0, 10)]);
        let labels: Vec<String> = w.rows.iter().map(Row::label).collect();
        assert_eq!(labels, ["POST → payments /payments", "span s"]);
    }

    #[test]
    fn an_empty_trace_is_empty() {
        let w = Waterfall::of(Vec::new());
        assert!(w.rows.is_empty());
        assert!(w.services().is_empty());
    }
}
