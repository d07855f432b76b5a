//! All SQL of the identity service, in plain sight: users, signing keys and login attempts.
//!
//! Queries are portable (`$1` placeholders, BIGINT/TEXT/BOOLEAN columns) and run on SQLite and
//! PostgreSQL alike. Rows become domain types here, so a row that does not fit them (an unknown
//! role, say) surfaces as a decode error instead of travelling further.

use flotilla_chassis::Db;
use flotilla_chassis::Role;
use flotilla_chassis::clock::{at_millis, millis};
use flotilla_chassis::db::{CorruptRow, is_unique_violation};
use jsonwebtoken::jwk::Jwk;
use time::OffsetDateTime;

use crate::domain::{DisplayName, Email, PasswordHash, UserId, UserRecord};
use crate::token::{SigningKey, public_jwk};

/// Why a user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    /// An account with that (normalised) email exists.
    #[error("the email address is already registered")]
    EmailTaken,
    /// Anything else the database said.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// The columns of a `users` row, in `SELECT` order.
type UserRow = (String, String, String, String, String, i64);

/// The identity service's tables: users and signing keys.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    db: Db,
}

impl IdentityStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a new account; the unique index on `email` decides races between sign-ups.
    pub async fn insert_user(&self, user: &UserRecord) -> Result<(), InsertUserError> {
        let result = sqlx::query(
            "INSERT INTO users (id, email, name, role, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(user.role.as_str())
        .bind(user.password_hash.as_str())
        .bind(millis(user.created_at))
        .execute(self.db.pool())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(InsertUserError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// The account registered under `email`.
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, sqlx::Error> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, name, role, password_hash, created_at FROM users WHERE email = $1",
        )
        .bind(email.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(user_from_row).transpose()
    }

    /// The account with id `id`.
    pub async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, sqlx::Error> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, name, role, password_hash, created_at FROM users WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(user_from_row).transpose()
    }

    /// Gives the account `id` the admin role.
    pub async fn make_admin(&self, id: &UserId) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(Role::Admin.as_str())
            .bind(id.as_str())
            .execute(self.db.pool())
            .await
            .map(|_| ())
    }

    /// Writes login attempt `id` on `account` at `at` (milliseconds), forgets every attempt from
    /// before `forget_before`, and counts the attempts on `account` since then, this one
    /// included, with the time of the oldest. Written before the password is checked, so that
    /// concurrent attempts see each other: the k-th to be written counts at least k.
    pub async fn begin_login_attempt(
        &self,
        id: &str,
        account: &str,
        at: i64,
        forget_before: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        sqlx::query("DELETE FROM login_attempts WHERE attempted_at < $1")
            .bind(forget_before)
            .execute(self.db.pool())
            .await?;
        sqlx::query("INSERT INTO login_attempts (id, account, attempted_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(account)
            .bind(at)
            .execute(self.db.pool())
            .await?;
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(attempted_at) FROM login_attempts
             WHERE account = $1 AND attempted_at >= $2",
        )
        .bind(account)
        .bind(forget_before)
        .fetch_one(self.db.pool())
        .await?;
        Ok((count, oldest.unwrap_or(at)))
    }

    /// Forgets attempt `id` (refused before its password was checked).
    pub async fn forget_login_attempt(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_attempts WHERE id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await
            .map(|_| ())
    }

    /// Forgets every attempt on `account` (it has just logged in).
    pub async fn clear_login_attempts(&self, account: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_attempts WHERE account = $1")
            .bind(account)
            .execute(self.db.pool())
            .await
            .map(|_| ())
    }

    /// The newest active signing key, as stored: `(kid, private key as base64 PKCS#8)`.
    pub async fn active_signing_key(&self) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT kid, private_key_pkcs8 FROM signing_keys
             WHERE active = $1 ORDER BY created_at DESC, kid LIMIT 1",
        )
        .bind(true)
        .fetch_optional(self.db.pool())
        .await
    }

    /// Stores `key` as an active signing key.
    pub async fn insert_signing_key(
        &self,
        key: &SigningKey,
        created_at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_key_pkcs8, public_key, created_at, active)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.kid())
        .bind(key.pkcs8_base64())
        .bind(key.public_key())
        .bind(millis(created_at))
        .bind(true)
        .execute(self.db.pool())
        .await
        .map(|_| ())
    }

    /// The public half of every stored key, active or retired, oldest first: all of them may
    /// have signed a token that has not expired yet.
    pub async fn public_keys(&self) -> Result<Vec<Jwk>, sqlx::Error> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kid, public_key FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(self.db.pool())
                .await?;
        Ok(rows.iter().map(|(kid, x)| public_jwk(kid, x)).collect())
    }
}

/// A `users` row as a domain record.
fn user_from_row(
    (id, email, name, role, hash, created_at): UserRow,
) -> Result<UserRecord, sqlx::Error> {
    let role = Role::parse(&role).ok_or_else(|| CorruptRow::column("users.role", &role))?;
    Ok(UserRecord {
        id: UserId::from_trusted(id),
        email: Email::from_stored(email),
        name: DisplayName::from_stored(name),
        role,
        password_hash: PasswordHash::from_phc(hash),
        created_at: at_millis(created_at),
    })
}
