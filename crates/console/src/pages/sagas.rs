//! Sagas: every checkout's saga with its state, one saga with its steps, timings and keys, and
//! the operators' actions on it (retry from the failed step, compensate now, set aside for
//! review) — each a form post to orders' `/admin/sagas/{order_id}/…`, which decides whether the
//! action is safe, does it and audits it; the console only asks and shows the answer.

use axum::Form;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Ctx, outcome, query, segment};
use crate::flash;
use crate::time_text;
use crate::views::{AuditRow, SagaPage, SagaRow, SagasPage, StepRow};

/// Sagas per page of the list.
const PAGE_SIZE: u32 = 50;

/// `?status=&page=`.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: Option<u32>,
}

/// A saga as orders' admin API answers it (the fields the console reads).
#[derive(Debug, Deserialize)]
struct SagaView {
    order_id: String,
    status: String,
    step: String,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    failure: Option<String>,
    #[serde(default)]
    review: Option<Review>,
    updated_at: String,
    #[serde(default)]
    steps: Vec<Step>,
    #[serde(default)]
    audit: Vec<Audit>,
}

#[derive(Debug, Deserialize)]
struct Review {
    note: String,
    by: String,
    at: String,
}

#[derive(Debug, Deserialize)]
struct Step {
    step: String,
    action: String,
    outcome: String,
    at: String,
    #[serde(default)]
    detail: Option<String>,
}

/// An audit entry (`GET /admin/audit`, and a saga's own).
#[derive(Debug, Deserialize)]
pub(super) struct Audit {
    at: String,
    actor: String,
    action: String,
    subject: String,
    outcome: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

impl From<Audit> for AuditRow {
    fn from(a: Audit) -> Self {
        AuditRow {
            at: time_text::rfc3339(&a.at),
            actor: a.actor,
            action: a.action,
            subject: a.subject,
            refused: a.outcome != "done",
            note: a.note.unwrap_or_default(),
            detail: a.detail.unwrap_or_default(),
        }
    }
}

/// A page of a list.
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub total: u64,
}

/// `GET /ops/sagas`: the sagas, newest change first, and orders' recent audit trail.
pub async fn list(ctx: Ctx, params: Result<Query<ListParams>, QueryRejection>) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let status = match params.status.as_str() {
        "running" | "compensating" | "done" => params.status.as_str(),
        _ => "",
    };
    let page = params.page.unwrap_or(1).clamp(1, 100_000);
    let page_text = page.to_string();
    let size = PAGE_SIZE.to_string();
    let path = format!(
        "/api/orders/admin/sagas{}",
        query(&[
            ("status", status),
            ("page", &page_text),
            ("page_size", &size)
        ])
    );
    let api = ctx.api();
    let (sagas, audit) = tokio::join!(
        api.get::<Page<SagaView>>(&path),
        api.get::<Page<Audit>>("/api/orders/admin/audit?page_size=20"),
    );
    let sagas = match sagas {
        Ok(sagas) => sagas,
        Err(error) => return ctx.error("sagas", "Sagas cannot be shown", &error),
    };
    let rows = sagas
        .items
        .into_iter()
        .map(|s| SagaRow {
            age: time_text::age(&s.updated_at),
            updated: time_text::rfc3339(&s.updated_at),
            order_id: s.order_id,
            status: s.status,
            step: s.step,
            attempts: s.attempts,
            failure: s.failure.unwrap_or_default(),
            in_review: s.review.is_some(),
        })
        .collect();
    let (audit, audit_error) = match audit {
        Ok(page) => (page.items.into_iter().map(AuditRow::from).collect(), None),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    let more = u64::from(page) * u64::from(PAGE_SIZE) < sagas.total;
    let view = SagasPage {
        chrome: ctx.chrome("sagas"),
        status: status.to_owned(),
        rows,
        total: sagas.total,
        page,
        prev: (page > 1).then(|| query(&[("status", status), ("page", &(page - 1).to_string())])),
        next: more.then(|| query(&[("status", status), ("page", &(page + 1).to_string())])),
        audit,
        audit_error,
    };
    ctx.page(StatusCode::OK, &view)
}

/// `GET /ops/sagas/{order_id}`.
pub async fn one(ctx: Ctx, Path(order_id): Path<String>) -> Response {
    let path = format!("/api/orders/admin/sagas/{}", segment(&order_id));
    let saga = match ctx.api().get::<SagaView>(&path).await {
        Ok(saga) => saga,
        Err(error) => return ctx.error("sagas", "This saga cannot be shown", &error),
    };
    let mut previous: Option<OffsetDateTime> = None;
    let steps = saga
        .steps
        .into_iter()
        .map(|s| {
            let at = OffsetDateTime::parse(&s.at, &Rfc3339).ok();
            let after_ms = match (previous, at) {
                (Some(p), Some(a)) => Some((a - p).as_seconds_f64() * 1000.0),
                _ => None,
            };
            previous = at.or(previous);
            StepRow {
                key: idempotency_key(&s.step, &saga.order_id),
                at: time_text::rfc3339(&s.at),
                after_ms: after_ms
                    .map(|ms| format!("+{ms:.0} ms"))
                    .unwrap_or_default(),
                failed: s.outcome == "failed",
                step: s.step,
                action: s.action,
                outcome: s.outcome,
                detail: s.detail.unwrap_or_default(),
            }
        })
        .collect();
    let view = SagaPage {
        chrome: ctx.chrome("sagas"),
        next_key: idempotency_key(&saga.step, &saga.order_id),
        updated: time_text::rfc3339(&saga.updated_at),
        age: time_text::age(&saga.updated_at),
        order_id: saga.order_id,
        status: saga.status,
        step: saga.step,
        attempts: saga.attempts,
        failure: saga.failure.unwrap_or_default(),
        review: saga
            .review
            .map(|r| (r.note, r.by, time_text::rfc3339(&r.at))),
        steps,
        audit: saga.audit.into_iter().map(AuditRow::from).collect(),
    };
    ctx.page(StatusCode::OK, &view)
}

/// The idempotency key a step is sent with, as orders' executor makes it
/// (`crates/services/orders/src/executor/steps.rs`): reservations and shipments are keyed by
/// the order id, payments by `{order_id}:{operation}`.
fn idempotency_key(step: &str, order_id: &str) -> String {
    match step {
        "AUTHORIZE" => format!("{order_id}:authorize"),
        "CAPTURE" => format!("{order_id}:capture"),
        "VOID_OR_REFUND" => format!("{order_id}:void / {order_id}:refund"),
        "RESERVE" | "COMMIT" | "RELEASE" | "SHIP" | "CANCEL_SHIPMENT" => order_id.to_owned(),
        _ => String::new(),
    }
}

/// An action's form: the session's token and, for a review, the note.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// `POST /ops/sagas/{order_id}/{retry|compensate|review}`.
pub async fn act(
    ctx: Ctx,
    Path((order_id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = format!("/ops/sagas/{}", segment(&order_id));
    if let Err(refused) = ctx.check_form(&form.csrf, &back) {
        return refused;
    }
    let (body, done) = match action.as_str() {
        "retry" => (
            None,
            "Retry accepted: the saga runs again from its current step, with the same keys.",
        ),
        "compensate" => (
            None,
            "Compensation accepted: the saga undoes what it did and cancels the order.",
        ),
        "review" => (
            Some(serde_json::json!({ "note": form.note })),
            "Set aside for manual review: the recovery loop leaves this saga alone.",
        ),
        _ => {
            return flash::redirect(
                &back,
                &flash::Flash {
                    ok: false,
                    text: "Refused: no such action.".into(),
                },
            );
        }
    };
    let path = format!("/api/orders/admin/sagas/{}/{action}", segment(&order_id));
    let result = ctx
        .api()
        .send(Method::POST, &path, body.as_ref())
        .await
        .map(|_| done.to_owned());
    flash::redirect(&back, &outcome(result))
}
