//! All of the notifications service's SQL, in plain sight: recording a message inside the
//! consumer's transaction, and listing messages newest first by recipient and/or order.
//!
//! The SQL is portable (SQLite and PostgreSQL); the schema is in `migrations/0001_init.sql`.

use flotilla_chassis::Db;
use flotilla_chassis::clock::{at_millis, millis};
use flotilla_chassis::db::{CorruptRow, Migration};
use flotilla_chassis::pagination::PageRequest;
use sqlx::{AnyConnection, AssertSqlSafe};
use time::OffsetDateTime;

use crate::contract::{Message, MessageKind};
use crate::domain::{Draft, OrderId, UserId};

/// The service's schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "init",
    include_str!("../migrations/0001_init.sql"),
)];

/// Which messages a list shows; `None` means any.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageFilter<'a> {
    /// Only messages to this user.
    pub user_id: Option<&'a UserId>,
    /// Only messages about this order.
    pub order_id: Option<&'a OrderId>,
}

/// A message as it is read back.
type MessageRow = (String, String, String, String, String, String, i64);

/// The service's table of messages.
#[derive(Debug, Clone)]
pub struct NotificationsStore {
    db: Db,
}

impl NotificationsStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records `draft` as sent, as the message `id` caused by `event_id`, inside the consumer's
    /// transaction `conn`. False when a message for `event_id` already exists: nothing is
    /// written, so the event still sends at most one message.
    pub async fn record(
        conn: &mut AnyConnection,
        id: &str,
        draft: &Draft,
        event_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO messages (id, user_id, order_id, kind, subject, body, event_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(id)
        .bind(draft.user_id.as_str())
        .bind(draft.order_id.as_str())
        .bind(draft.kind.as_str())
        .bind(&draft.subject)
        .bind(&draft.body)
        .bind(event_id)
        .bind(millis(now))
        .execute(conn)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// One page of the messages `filter` selects, newest first (ties broken by id, so paging is
    /// stable), and how many it selects in all.
    pub async fn list(
        &self,
        filter: MessageFilter<'_>,
        page: PageRequest,
    ) -> Result<(Vec<Message>, u64), sqlx::Error> {
        // Only column names and placeholders are spliced in; every value is bound.
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        if let Some(user_id) = filter.user_id {
            values.push(user_id.as_str());
            conditions.push(format!("user_id = ${}", values.len()));
        }
        if let Some(order_id) = filter.order_id {
            values.push(order_id.as_str());
            conditions.push(format!("order_id = ${}", values.len()));
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let (limit, offset) = (values.len() + 1, values.len() + 2);

        let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM messages {clause}"
        )));
        let mut rows = sqlx::query_as::<_, MessageRow>(AssertSqlSafe(format!(
            "SELECT id, user_id, order_id, kind, subject, body, created_at FROM messages
             {clause} ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}"
        )));
        for value in values {
            count = count.bind(value);
            rows = rows.bind(value);
        }
        let total = count.fetch_one(self.db.pool()).await?;
        let rows = rows
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db.pool())
            .await?;
        let messages = rows
            .into_iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()?;
        Ok((messages, u64::try_from(total).unwrap_or(0)))
    }
}

fn message_from_row(row: MessageRow) -> Result<Message, sqlx::Error> {
    let (id, user_id, order_id, kind, subject, body, created_at) = row;
    let kind =
        MessageKind::parse(&kind).ok_or_else(|| CorruptRow::column("messages.kind", &kind))?;
    Ok(Message {
        id,
        user_id,
        order_id,
        kind,
        subject,
        body,
        created_at: at_millis(created_at),
    })
}
