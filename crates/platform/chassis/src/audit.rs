//! The operators' audit trail: every admin action that changes state (a saga retried,
//! compensated or set aside for review, a dead letter replayed or discarded) is written down
//! with who did it (the admin's `sub`), when, what, to which thing, and how it came out —
//! refusals included, because "I pressed retry and it said no" is exactly what an incident
//! review asks about.
//!
//! One table and one piece of code for every service: the actions differ, but what is kept
//! about them does not, so the shape lives here and each service only names its actions. The
//! table is a platform table (created with the outbox and inbox, see `events::schema`), so every
//! service with a database has it and `GET /admin/audit` reads it the same way everywhere.
//! An accepted action's row is written in the same transaction as the change it records (pass
//! the transaction to [`record`]), so the trail never claims a change that did not commit.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Admin;
use crate::clock::{at_millis, millis};
use crate::db::{Db, Migration};
use crate::extract::Query;
use crate::pagination::{Page, PageParams};
use crate::problem::Problem;

/// The platform migration that creates the table (listed in `events::schema`).
pub(crate) const MIGRATION: Migration = Migration::portable(
    2,
    "admin audit",
    "CREATE TABLE admin_audit (
        id TEXT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        note TEXT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('done', 'refused')),
        detail TEXT NULL
    );
    CREATE INDEX admin_audit_by_time ON admin_audit (at, id);
    CREATE INDEX admin_audit_by_subject ON admin_audit (subject, at, id);",
);

/// Most characters of a note or detail kept (an event payload kept with a discard included).
pub const MAX_TEXT: usize = 64 * 1024;

/// How an action came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The action took effect.
    Done,
    /// The action was refused (the thing's state did not allow it); nothing changed.
    Refused,
}

impl AuditOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Done => "done",
            AuditOutcome::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "done" => Some(AuditOutcome::Done),
            "refused" => Some(AuditOutcome::Refused),
            _ => None,
        }
    }
}

/// An action to write down.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    /// Who: the admin's user id (the `sub` of the verified token).
    pub actor: &'a str,
    /// What, as `<thing>.<verb>`: `saga.retry`, `dead_letter.discard`, ...
    pub action: &'a str,
    /// To what: an order id, an event id (`*` for "all of them").
    pub subject: &'a str,
    /// What the operator said (a review note, a discard reason).
    pub note: Option<&'a str>,
    /// How it came out.
    pub outcome: AuditOutcome,
    /// What happened: the state it acted on, why it was refused, counts, a discarded payload.
    pub detail: Option<&'a str>,
}

impl<'a> NewAudit<'a> {
    /// `admin` did `action` to `subject`, which took effect.
    pub fn done(admin: &'a Admin, action: &'a str, subject: &'a str) -> Self {
        Self {
            actor: &admin.0.user_id,
            action,
            subject,
            note: None,
            outcome: AuditOutcome::Done,
            detail: None,
        }
    }

    /// The same entry with `note`.
    pub fn with_note(mut self, note: Option<&'a str>) -> Self {
        self.note = note;
        self
    }

    /// The same entry with `detail`.
    pub fn with_detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The same entry, refused because of `why`.
    pub fn refused(mut self, why: &'a str) -> Self {
        self.outcome = AuditOutcome::Refused;
        self.detail = Some(why);
        self
    }
}

/// A written-down admin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// The entry's id (`aud_…`, time-ordered).
    pub id: String,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: the admin's user id.
    pub actor: String,
    /// What: `saga.retry`, `saga.compensate`, `saga.review`, `dead_letter.replay`,
    /// `dead_letter.replay_all`, `dead_letter.discard`.
    #[schema(example = "saga.retry")]
    pub action: String,
    /// To what: an order id or an event id (`*` for all dead letters).
    pub subject: String,
    /// What the operator said.
    pub note: Option<String>,
    /// How it came out.
    pub outcome: AuditOutcome,
    /// What happened.
    pub detail: Option<String>,
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// Writes `entry` at `at` on `conn` — the transaction of the change it records, when it made one.
pub async fn record(
    conn: &mut AnyConnection,
    entry: &NewAudit<'_>,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_audit (id, at, actor, action, subject, note, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(crate::ids::new_id("aud"))
    .bind(millis(at))
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.subject)
    .bind(entry.note.map(clip))
    .bind(entry.outcome.as_str())
    .bind(entry.detail.map(clip))
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes `entry` on its own (a refusal, or an action whose change is already committed).
pub async fn record_alone(
    db: &Db,
    entry: &NewAudit<'_>,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    record(&mut conn, entry, at).await
}

const SELECT: &str =
    "SELECT id, at, actor, action, subject, note, outcome, detail FROM admin_audit";

fn entry_of(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: at_millis(row.try_get("at")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        note: row.try_get("note")?,
        outcome: AuditOutcome::parse(&outcome)
            .ok_or_else(|| crate::db::CorruptRow::column("admin_audit.outcome", &outcome))?,
        detail: row.try_get("detail")?,
    })
}

/// Every entry about `subject`, oldest first.
pub async fn of_subject(db: &Db, subject: &str) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE subject = $1 ORDER BY at, id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(subject)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(entry_of)
        .collect()
}

/// What `GET /admin/audit` reads.
#[derive(Clone)]
pub struct AuditLog {
    /// The service's database.
    pub db: Db,
}

/// The route, to merge into a service's API.
pub fn routes(log: AuditLog) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(audit)).with_state(log)
}

/// The admin actions taken on this service, newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearerAuth" = ["admin"])), params(PageParams),
    responses(
        (status = 200, description = "One page of the audit trail", body = Page<AuditEntry>),
        (status = 400, description = "Invalid paging", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
async fn audit(
    _: Admin,
    State(log): State<AuditLog>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<Page<AuditEntry>>, Problem> {
    let page = params.validate(100)?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_audit")
        .fetch_one(log.db.pool())
        .await?;
    let sql = format!("{SELECT} ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2");
    let items = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(log.db.pool())
        .await?
        .iter()
        .map(entry_of)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page {
        items,
        total: u64::try_from(total).unwrap_or(0),
        page: page.page,
        page_size: page.page_size,
    }))
}

/// The longest note an operator may give with an action (a discard's reason, a review note).
pub const MAX_NOTE_CHARS: usize = 1000;

/// An operator's note, trimmed, or the field error saying what to write (`asks`, e.g. "say
/// why") when it is blank or longer than [`MAX_NOTE_CHARS`]: one rule for every action's note,
/// which the routes' schemas state as `minLength` 1, `maxLength` 1000 and a non-space.
pub fn operator_note<'a>(
    field: &str,
    value: &'a str,
    asks: &str,
) -> Result<&'a str, crate::problem::FieldError> {
    let note = value.trim();
    if note.is_empty() || note.chars().count() > MAX_NOTE_CHARS {
        return Err(crate::problem::FieldError {
            field: field.to_owned(),
            message: format!("{asks}, in 1 to {MAX_NOTE_CHARS} characters"),
        });
    }
    Ok(note)
}
