//! The notifications mailbox: the messages notifications "sent" (its simulated mailer records
//! them), newest first, each linked to the saga of its order.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::Ctx;
use super::sagas::Page;
use crate::time_text;
use crate::views::{MailboxPage, MessageRow};

/// Messages per page.
const PAGE_SIZE: u32 = 50;

/// `?page=`.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    page: Option<u32>,
}

/// A message as the API answers it.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    order_id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    created_at: String,
}

/// `GET /ops/mailbox[?page=]`.
pub async fn list(ctx: Ctx, params: Result<Query<Params>, QueryRejection>) -> Response {
    let page = params
        .ok()
        .and_then(|Query(p)| p.page)
        .unwrap_or(1)
        .clamp(1, 100_000);
    let path = format!("/api/notifications/admin/messages?page={page}&page_size={PAGE_SIZE}");
    let messages = match ctx.api().get::<Page<Message>>(&path).await {
        Ok(messages) => messages,
        Err(error) => return ctx.error("mailbox", "The mailbox cannot be shown", &error),
    };
    let more = u64::from(page) * u64::from(PAGE_SIZE) < messages.total;
    let view = MailboxPage {
        chrome: ctx.chrome("mailbox"),
        rows: messages
            .items
            .into_iter()
            .map(|m| MessageRow {
                sent: time_text::rfc3339(&m.created_at),
                kind: m.kind.replace('_', " "),
                user_id: m.user_id,
                order_id: m.order_id,
                subject: m.subject,
                body: m.body,
            })
            .collect(),
        total: messages.total,
        page,
        prev: (page > 1).then(|| page - 1),
        next: more.then(|| page + 1),
    };
    ctx.page(StatusCode::OK, &view)
}
