//! Dead letters: the events each service's consumer gave up on, with their payload and last
//! error, and the operators' ways out — replay one, replay a bounded batch, or discard one with
//! a reason — each a form post to the service's `/admin/dead-letters…`, which does it and
//! audits it.

use axum::Form;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::sagas::{Audit, Page};
use super::{Ctx, outcome, query, segment};
use crate::flash::{self, Flash};
use crate::fleet::WITH_DATABASE;
use crate::time_text;
use crate::views::{AuditRow, DeadLetterRow, DeadLettersPage, ServiceDeadLetters};

/// Dead letters shown per service.
const SHOWN: u32 = 20;

/// A parked event as the API answers it.
#[derive(Debug, Deserialize)]
struct DeadLetter {
    event_id: String,
    event_type: String,
    #[serde(default)]
    attempts: i64,
    #[serde(default)]
    last_error: String,
    #[serde(default)]
    parked_at: String,
    #[serde(default)]
    event: String,
}

/// `?service=`.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    service: String,
}

/// `GET /ops/dead-letters[?service=]`: every service's dead letters (or one service's).
pub async fn list(ctx: Ctx, params: Result<Query<ListParams>, QueryRejection>) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let chosen: Vec<&str> = WITH_DATABASE
        .iter()
        .copied()
        .filter(|s| params.service.is_empty() || *s == params.service)
        .collect();
    let api = ctx.api();
    let size = SHOWN.to_string();
    let answers = futures::future::join_all(chosen.iter().map(|service| {
        let path = format!(
            "/api/{service}/admin/dead-letters{}",
            query(&[("page_size", &size)])
        );
        let api = &api;
        async move { api.get::<Page<DeadLetter>>(&path).await }
    }))
    .await;
    // One service chosen: its audit trail too (replays and discards are audited there).
    let (audit, audit_error) = match chosen.as_slice() {
        [one] => match api
            .get::<Page<Audit>>(&format!("/api/{one}/admin/audit?page_size=20"))
            .await
        {
            Ok(page) => (page.items.into_iter().map(AuditRow::from).collect(), None),
            Err(error) => (Vec::new(), Some(error.to_string())),
        },
        _ => (Vec::new(), None),
    };
    let services = chosen
        .iter()
        .zip(answers)
        .map(|(service, answer)| match answer {
            Ok(page) => ServiceDeadLetters {
                service: (*service).to_owned(),
                total: page.total,
                rows: page
                    .items
                    .into_iter()
                    .map(|d| DeadLetterRow {
                        parked: time_text::rfc3339(&d.parked_at),
                        event_id: d.event_id,
                        event_type: d.event_type,
                        attempts: d.attempts,
                        last_error: d.last_error,
                        payload: pretty(&d.event),
                    })
                    .collect(),
                error: None,
            },
            Err(error) => ServiceDeadLetters {
                service: (*service).to_owned(),
                total: 0,
                rows: Vec::new(),
                error: Some(error.to_string()),
            },
        })
        .collect();
    let page = DeadLettersPage {
        chrome: ctx.chrome("dead-letters"),
        filter: params.service.clone(),
        all: WITH_DATABASE.iter().map(|s| (*s).to_owned()).collect(),
        one: chosen.len() == 1,
        services,
        audit,
        audit_error,
    };
    ctx.page(StatusCode::OK, &page)
}

/// The payload as indented JSON when it is JSON, as it came otherwise.
fn pretty(event: &str) -> String {
    serde_json::from_str::<serde_json::Value>(event)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| event.to_owned())
}

/// The form of every dead-letter action.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    limit: String,
}

/// The page to come back to after an action on `service`'s dead letters.
fn back(service: &str) -> String {
    format!("/ops/dead-letters{}", query(&[("service", service)]))
}

/// The page to come back to when `form` may act on `service`'s dead letters; the refusal when
/// the service keeps none (refused before asking the API) or the form is not this session's.
fn admit(ctx: &Ctx, service: &str, form: &ActionForm) -> Result<String, Response> {
    if !WITH_DATABASE.contains(&service) {
        return Err(flash::redirect(
            "/ops/dead-letters",
            &Flash {
                ok: false,
                text: "Refused: no such service.".into(),
            },
        ));
    }
    let back = back(service);
    ctx.check_form(&form.csrf, &back)?;
    Ok(back)
}

/// `POST /ops/dead-letters/{service}/{event_id}/{replay|discard}`.
pub async fn act(
    ctx: Ctx,
    Path((service, event_id, action)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = match admit(&ctx, &service, &form) {
        Ok(back) => back,
        Err(refused) => return refused,
    };
    let event = segment(&event_id);
    let result = match action.as_str() {
        "replay" => ctx
            .api()
            .send(
                Method::POST,
                &format!("/api/{service}/admin/dead-letters/{event}/replay"),
                None,
            )
            .await
            .map(|answer| {
                let how = answer["outcome"].as_str().unwrap_or("handled");
                format!("Replayed {event_id} on {service}: {how}.")
            }),
        "discard" => ctx
            .api()
            .send(
                Method::DELETE,
                &format!("/api/{service}/admin/dead-letters/{event}"),
                Some(&serde_json::json!({ "reason": form.reason })),
            )
            .await
            .map(|_| {
                format!("Discarded {event_id} on {service}; the reason is in the audit trail.")
            }),
        _ => {
            return flash::redirect(
                &back,
                &Flash {
                    ok: false,
                    text: "Refused: no such action.".into(),
                },
            );
        }
    };
    flash::redirect(&back, &outcome(result))
}

/// `POST /ops/dead-letters/{service}/replay-all` with `limit` (1 to 100).
pub async fn replay_all(
    ctx: Ctx,
    Path(service): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = match admit(&ctx, &service, &form) {
        Ok(back) => back,
        Err(refused) => return refused,
    };
    let limit = form.limit.trim();
    let path = format!(
        "/api/{service}/admin/dead-letters/replay{}",
        query(&[("limit", limit)])
    );
    let result = ctx.api().send(Method::POST, &path, None).await.map(|answer| {
        format!(
            "Replayed on {service}: {} handled, {} found handled already, {} still failing, {} left.",
            answer["replayed"],
            answer["duplicates"],
            answer["still_failing"].as_array().map_or(0, Vec::len),
            answer["remaining"],
        )
    });
    flash::redirect(&back, &outcome(result))
}
