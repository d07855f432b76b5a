//! Creating and dropping a service's database on a PostgreSQL server.
//!
//! A Flotilla deployment points every service at one server (`postgres://user@host:5432`) and
//! each service keeps its tables in a database of its own, named after it. Creating that
//! database on first start, instead of asking an operator to, makes PostgreSQL as easy to run as
//! SQLite; tests use the same path with throw-away names.
//!
//! `CREATE DATABASE` cannot run inside a transaction and has no `IF NOT EXISTS`, so creation
//! checks `pg_database` first and treats losing a race to another replica as success. The name
//! is spliced into the statement (identifiers cannot be bound), which is why it is validated
//! against a strict alphabet and quoted.
//!
//! New databases compare text byte by byte (`LC_COLLATE 'C'`), as SQLite does: the same
//! `ORDER BY` then gives the same order on both backends whatever locale the server was
//! initialised with (a locale such as `en_US.UTF-8` skips punctuation on first comparison and
//! sorts `orda` before `ord_b`; SQLite and `C` sort it after). It also makes index comparisons
//! cheaper. A database that already exists is used as it is.

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};
use std::str::FromStr;

use super::{Db, PoolSettings};

/// SQLSTATE `duplicate_database`: another session created it first.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE `unique_violation`: what a concurrent `CREATE DATABASE` of the same name reports
/// when both passed the catalog check before either committed.
const UNIQUE_VIOLATION: &str = "23505";
/// PostgreSQL's longest identifier (NAMEDATALEN - 1).
const MAX_NAME_LEN: usize = 63;

impl Db {
    /// Opens a pool on the database `database` of the PostgreSQL server at `server_url`
    /// (`postgres://user[:password]@host:port`, any path ignored), creating the database first
    /// if it does not exist.
    ///
    /// `database` must be 1 to 63 characters of `[a-z0-9_]`. Safe to call from several
    /// processes at once: all of them end up with the one database.
    pub async fn open_postgres(
        server_url: &str,
        database: &str,
        settings: &PoolSettings,
    ) -> Result<Self, sqlx::Error> {
        validate_name(database)?;
        let mut admin = connect_admin(server_url).await?;
        let created = create_if_missing(&mut admin, database).await;
        admin.close().await?;
        created?;
        Self::connect_with(database_options(server_url, database)?, settings).await
    }

    /// Drops the database `database` on the server at `server_url` if it exists, disconnecting
    /// whoever is still connected to it (`WITH (FORCE)`, PostgreSQL 13 or later). For tests and
    /// tooling: a service never drops its own data.
    pub async fn drop_postgres(server_url: &str, database: &str) -> Result<(), sqlx::Error> {
        validate_name(database)?;
        let mut admin = connect_admin(server_url).await?;
        let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
        admin.close().await?;
        dropped.map(|_| ())
    }
}

/// Rejects any name that would need more than plain double quotes to be a safe identifier.
fn validate_name(database: &str) -> Result<(), sqlx::Error> {
    let valid = !database.is_empty()
        && database.len() <= MAX_NAME_LEN
        && database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(sqlx::Error::Configuration(
            format!(
                "invalid database name {database:?}: use 1 to {MAX_NAME_LEN} characters of [a-z0-9_]"
            )
            .into(),
        ))
    }
}

/// `server_url` pointed at `database`, keeping its credentials and query parameters (sslmode…).
fn database_options(server_url: &str, database: &str) -> Result<AnyConnectOptions, sqlx::Error> {
    let mut options = AnyConnectOptions::from_str(server_url)?;
    match options.database_url.scheme() {
        "postgres" | "postgresql" => {}
        other => {
            return Err(sqlx::Error::Configuration(
                format!("{other}:// is not a PostgreSQL server url: use postgres://").into(),
            ));
        }
    }
    options.database_url.set_path(&format!("/{database}"));
    Ok(options)
}

/// One connection to the server's maintenance database, `postgres`, which always exists.
async fn connect_admin(server_url: &str) -> Result<AnyConnection, sqlx::Error> {
    super::postgres_built_in()?;
    sqlx::any::install_default_drivers();
    database_options(server_url, "postgres")?.connect().await
}

async fn create_if_missing(admin: &mut AnyConnection, database: &str) -> Result<(), sqlx::Error> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(database)
        .fetch_optional(&mut *admin)
        .await?;
    if exists.is_some() {
        return Ok(());
    }
    // template0: a collation other than the server default may only be copied from it.
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{database}\" TEMPLATE template0 LC_COLLATE 'C'"
    )))
    .execute(&mut *admin)
    .await;
    match created {
        Ok(_) => {
            tracing::info!(database, "database created");
            Ok(())
        }
        Err(sqlx::Error::Database(e))
            if e.code().as_deref() == Some(DUPLICATE_DATABASE)
                || e.code().as_deref() == Some(UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_limited_to_a_quotable_alphabet() {
        for good in ["catalog", "ft_0a1b_orders", "a", &"x".repeat(63)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Catalog",
            "my-db",
            "a\"b",
            "x; DROP",
            "é",
            &"x".repeat(64),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_server_url_keeps_everything_but_its_path() {
        let options = database_options(
            "postgres://app:secret@db.internal:6432/ignored?sslmode=require",
            "orders",
        )
        .expect("valid");
        assert_eq!(
            options.database_url.as_str(),
            "postgres://app:secret@db.internal:6432/orders?sslmode=require"
        );
        assert!(database_options("sqlite://x.db", "orders").is_err());
    }
}
