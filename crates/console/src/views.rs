//! The page templates (askama, under `templates/`) and the data each one is rendered from.
//! askama escapes every value for HTML, and no template marks data as safe: span attributes,
//! event payloads and error messages are data from services and clients, never markup.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::flash::Flash;
use crate::waterfall::Waterfall;

/// The header shared by every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The administrator's user id.
    pub user_id: String,
    /// The session's form token, for every form on the page.
    pub csrf: String,
    /// What the last action said, shown once.
    pub flash: Option<Flash>,
    /// The nav entry to mark current.
    pub section: &'static str,
}

/// An error in place of a page's data.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub headline: String,
    pub detail: String,
}

/// The filters of the trace list, as the form shows them.
#[derive(Debug, Clone, Default)]
pub struct TraceFilters {
    pub service: String,
    pub route: String,
    pub status: String,
    pub min_ms: Option<f64>,
    pub min_ms_text: String,
    pub console: bool,
}

/// One trace in the list.
#[derive(Debug, Clone)]
pub struct TraceRow {
    pub trace_id: String,
    pub started: String,
    pub root: String,
    pub service: String,
    pub duration_ms: f64,
    pub spans: u64,
    pub failed: bool,
}

/// `GET /ops/traces`.
#[derive(Template)]
#[template(path = "traces.html")]
pub struct TracesPage {
    pub chrome: Chrome,
    pub filters: TraceFilters,
    pub services: Vec<String>,
    pub rows: Vec<TraceRow>,
    pub scanned: usize,
    pub kept_spans: u64,
    pub error: Option<String>,
}

/// `GET /ops/traces/{trace_id}`.
#[derive(Template)]
#[template(path = "trace.html")]
pub struct TracePage {
    pub chrome: Chrome,
    pub trace_id: String,
    pub waterfall: Waterfall,
    pub services: Vec<(String, &'static str)>,
    pub total_ms: f64,
    pub started: String,
    /// The orders whose saga ran in this trace (links to their saga pages).
    pub order_ids: Vec<String>,
}

/// What is shown when a template cannot render (a bug): plain, with no data in it.
const RENDER_FAILED: &str = "<!doctype html><title>Error</title><p>This page could not be shown.";

/// `template` as an HTML answer with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(%error, "console template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                RENDER_FAILED,
            )
                .into_response()
        }
    }
}

/// One saga in the list.
#[derive(Debug, Clone)]
pub struct SagaRow {
    pub order_id: String,
    pub status: String,
    pub step: String,
    pub attempts: u32,
    pub failure: String,
    pub in_review: bool,
    pub updated: String,
    pub age: String,
}

/// One operator action in an audit trail.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub refused: bool,
    pub note: String,
    pub detail: String,
}

/// `GET /ops/sagas`.
#[derive(Template)]
#[template(path = "sagas.html")]
pub struct SagasPage {
    pub chrome: Chrome,
    pub status: String,
    pub rows: Vec<SagaRow>,
    pub total: u64,
    pub page: u32,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub audit: Vec<AuditRow>,
    pub audit_error: Option<String>,
}

/// One step outcome of a saga.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub step: String,
    pub action: String,
    pub outcome: String,
    pub failed: bool,
    pub at: String,
    pub after_ms: String,
    pub key: String,
    pub detail: String,
}

/// `GET /ops/sagas/{order_id}`.
#[derive(Template)]
#[template(path = "saga.html")]
pub struct SagaPage {
    pub chrome: Chrome,
    pub order_id: String,
    pub status: String,
    pub step: String,
    pub next_key: String,
    pub attempts: u32,
    pub failure: String,
    /// (note, by, at) when set aside for review.
    pub review: Option<(String, String, String)>,
    pub updated: String,
    pub age: String,
    pub steps: Vec<StepRow>,
    pub audit: Vec<AuditRow>,
}

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetterRow {
    pub event_id: String,
    pub event_type: String,
    pub attempts: i64,
    pub parked: String,
    pub last_error: String,
    pub payload: String,
}

/// One service's dead letters (or why they could not be read).
#[derive(Debug, Clone)]
pub struct ServiceDeadLetters {
    pub service: String,
    pub total: u64,
    pub rows: Vec<DeadLetterRow>,
    pub error: Option<String>,
}

/// `GET /ops/dead-letters`.
#[derive(Template)]
#[template(path = "dead_letters.html")]
pub struct DeadLettersPage {
    pub chrome: Chrome,
    pub filter: String,
    pub all: Vec<String>,
    pub services: Vec<ServiceDeadLetters>,
    /// True when one service is shown (its audit trail is then shown too).
    pub one: bool,
    pub audit: Vec<AuditRow>,
    pub audit_error: Option<String>,
}

/// One message of the mailbox.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub sent: String,
    pub kind: String,
    pub user_id: String,
    pub order_id: String,
    pub subject: String,
    pub body: String,
}

/// `GET /ops/mailbox`.
#[derive(Template)]
#[template(path = "mailbox.html")]
pub struct MailboxPage {
    pub chrome: Chrome,
    pub rows: Vec<MessageRow>,
    pub total: u64,
    pub page: u32,
    pub prev: Option<u32>,
    pub next: Option<u32>,
}

/// One service on the services page.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub service: String,
    pub colour: &'static str,
    pub ready: bool,
    pub ready_detail: String,
    pub outbox: String,
    /// (upstream, breaker state) of the service's own calls.
    pub breakers: Vec<(String, String)>,
    /// The gateway's breaker toward the service.
    pub gateway_breaker: String,
    /// How the gateway reaches it (`in_process`, `http`, …).
    pub reached: String,
    /// The instances the gateway balances over (a fleet), one line each.
    pub instances: Vec<String>,
}

/// A service on the call map.
#[derive(Debug, Clone)]
pub struct MapNode {
    pub name: String,
    pub colour: &'static str,
    pub x: f64,
    pub y: f64,
}

/// A caller → upstream arrow on the call map.
#[derive(Debug, Clone)]
pub struct MapEdge {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    pub failing: bool,
    pub label: String,
}

/// `GET /ops/services`.
#[derive(Template)]
#[template(path = "services.html")]
pub struct ServicesPage {
    pub chrome: Chrome,
    pub rows: Vec<ServiceRow>,
    pub span_count: usize,
    pub spans_error: Option<String>,
    pub stats: crate::call_stats::CallStats,
    pub nodes: Vec<MapNode>,
    pub edges: Vec<MapEdge>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waterfall::{Span, SpanStatus};

    const HOSTILE: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";

    fn chrome() -> Chrome {
        Chrome {
            user_id: HOSTILE.into(),
            csrf: "token".into(),
            flash: Some(Flash {
                ok: false,
                text: HOSTILE.into(),
            }),
            section: "dead-letters",
        }
    }

    fn assert_escaped(html: &str) {
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&#60;script&#62;"), "{html}");
    }

    #[test]
    fn data_from_services_is_text_never_markup() {
        let row = DeadLetterRow {
            event_id: HOSTILE.into(),
            event_type: HOSTILE.into(),
            attempts: 5,
            parked: HOSTILE.into(),
            last_error: HOSTILE.into(),
            payload: HOSTILE.into(),
        };
        let page = DeadLettersPage {
            chrome: chrome(),
            filter: HOSTILE.into(),
            all: vec!["notifications".into()],
            services: vec![ServiceDeadLetters {
                service: "notifications".into(),
                total: 1,
                rows: vec![row],
                error: None,
            }],
            one: true,
            audit: Vec::new(),
            audit_error: None,
        };
        let html = page.render().expect("renders");
        assert_escaped(&html);
        assert!(html.contains("name=\"reason\""), "the discard form");

        let mut attributes = serde_json::Map::new();
        attributes.insert(HOSTILE.into(), HOSTILE.into());
        let span = Span {
            span_id: HOSTILE.into(),
            parent_span_id: Some(HOSTILE.into()),
            name: HOSTILE.into(),
            kind: "client".into(),
            service: HOSTILE.into(),
            start_unix_nanos: 1,
            duration_nanos: 1,
            status: SpanStatus {
                code: "error".into(),
                message: Some(HOSTILE.into()),
            },
            attributes,
        };
        let waterfall = Waterfall::of(vec![span]);
        let page = TracePage {
            chrome: chrome(),
            trace_id: HOSTILE.into(),
            services: waterfall.services(),
            waterfall,
            total_ms: 1.0,
            started: HOSTILE.into(),
            order_ids: vec![HOSTILE.into()],
        };
        let html = page.render().expect("renders");
        assert_escaped(&html);
        assert!(
            html.contains("class=\"chip c-other\""),
            "an unknown service gets no class of its own"
        );
    }
}
