//! The platform's tables in every service database: the outbox, inbox and dead letters of
//! events, and the admin audit trail ([`crate::audit`]). Kept apart from each service's own
//! migrations (their own version table) so that services never number around them.

use crate::db::{Db, Migration};

const MIGRATIONS: &[Migration] = &[
    Migration::portable(
        1,
        "events",
        "CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        version BIGINT NOT NULL,
        source TEXT NOT NULL,
        occurred_at BIGINT NOT NULL,
        traceparent TEXT,
        payload TEXT NOT NULL,
        published_at BIGINT,
        attempts BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        last_error TEXT
    );
    CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE published_at IS NULL;
    CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
    CREATE TABLE inbox (
        event_id TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        source TEXT NOT NULL,
        handled_at BIGINT NOT NULL
    );
    CREATE TABLE inbox_attempts (
        event_id TEXT PRIMARY KEY,
        attempts BIGINT NOT NULL,
        last_error TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE dead_letters (
        event_id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        event_type TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        last_error TEXT NOT NULL,
        parked_at BIGINT NOT NULL
    );",
    ),
    crate::audit::MIGRATION,
];

/// Creates or upgrades the event tables in `db`.
pub async fn migrate(db: &Db) -> Result<(), sqlx::Error> {
    db.migrate_tracked("_platform_migrations", MIGRATIONS).await
}
