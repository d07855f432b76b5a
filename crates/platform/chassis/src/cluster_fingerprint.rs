//! The cluster fingerprint: which fleet a database belongs to, so that two fleets that share a
//! database server and prefix by mistake refuse to run together instead of breaking each other.
//!
//! Two fleets with the same `--database-prefix` but different service secrets would otherwise
//! share every table while refusing each other's service credentials: logins, carts and
//! checkouts of the first start failing (401/500) the moment the second comes up. Each database
//! therefore records, at its first start, a fingerprint of the secret (a SHA-256 of it, never the
//! secret itself), and every later start compares: a different fingerprint stops the process
//! with a message naming the database and the two ways out.

use ring::digest::{SHA256, digest};
use std::fmt::Write;

use crate::db::{Db, Migration};

/// Hex characters of the digest kept: enough to tell secrets apart, short enough to read.
const FINGERPRINT_LEN: usize = 16;

const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "cluster fingerprint",
    "CREATE TABLE cluster_fingerprint (
        id BIGINT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        claimed_at BIGINT NOT NULL
    )",
)];

/// The fingerprint of a fleet's service secret.
pub fn of_secret(secret: &[u8]) -> String {
    let mut input = b"flotilla cluster fingerprint\0".to_vec();
    input.extend_from_slice(secret);
    let mut hex = String::with_capacity(FINGERPRINT_LEN);
    for byte in digest(&SHA256, &input).as_ref() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex.truncate(FINGERPRINT_LEN);
    hex
}

/// Why a process may not use a database (or discovery namespace) with its secret.
#[derive(Debug, thiserror::Error)]
pub enum ClusterClash {
    /// The database was first used by a fleet with another secret.
    #[error(
        "{place} belongs to another Flotilla fleet (cluster fingerprint {found}; this process's \
         service secret gives {ours}): two fleets would share its data and refuse each other's \
         service credentials. Give this fleet its own --database-prefix (or --cluster), or run \
         it with the other fleet's service secret (the same --service-secret, or the same \
         data directory)"
    )]
    Foreign {
        /// What is claimed, e.g. `database flotilla_cart`.
        place: String,
        /// The fingerprint recorded there.
        found: String,
        /// This process's fingerprint.
        ours: String,
    },
    /// The fingerprint could not be read or written.
    #[error("checking the cluster fingerprint of {place}: {source}")]
    Storage {
        /// What was being claimed.
        place: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Records `fingerprint` in `db` if it has none yet, and refuses one that differs. `place` names
/// the database for the message (e.g. `PostgreSQL database flotilla_cart`).
pub async fn claim_database(db: &Db, place: &str, fingerprint: &str) -> Result<(), ClusterClash> {
    let storage = |e: sqlx::Error| ClusterClash::Storage {
        place: place.to_owned(),
        source: Box::new(e),
    };
    db.migrate_tracked("_platform_cluster_migrations", MIGRATIONS)
        .await
        .map_err(storage)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO cluster_fingerprint (id, fingerprint, claimed_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(fingerprint)
    .bind(now)
    .execute(db.pool())
    .await
    .map_err(storage)?;
    let found: String =
        sqlx::query_scalar("SELECT fingerprint FROM cluster_fingerprint WHERE id = 1")
            .fetch_one(db.pool())
            .await
            .map_err(storage)?;
    compare(place, found, fingerprint)
}

/// The verdict once the recorded fingerprint is known.
pub fn compare(place: &str, found: String, ours: &str) -> Result<(), ClusterClash> {
    if found == ours {
        Ok(())
    } else {
        Err(ClusterClash::Foreign {
            place: place.to_owned(),
            found,
            ours: ours.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_secrets_apart_and_hide_them() {
        let a = of_secret(b"secret-a-0123456789abcdef0123456789");
        assert_eq!(a, of_secret(b"secret-a-0123456789abcdef0123456789"));
        assert_ne!(a, of_secret(b"secret-b-0123456789abcdef0123456789"));
        assert_eq!(a.len(), FINGERPRINT_LEN);
        assert!(!a.contains("secret"));
    }

    #[tokio::test]
    async fn a_database_keeps_the_first_fleets_fingerprint() {
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::open_sqlite(&dir.path().join("cart.db"), &Default::default())
            .await
            .expect("db");
        let first = of_secret(b"first-fleet-secret-0123456789abcdef");
        let second = of_secret(b"second-fleet-secret-0123456789abcde");
        claim_database(&db, "database cart", &first)
            .await
            .expect("first claim");
        claim_database(&db, "database cart", &first)
            .await
            .expect("same fleet again");
        let err = claim_database(&db, "database cart", &second)
            .await
            .expect_err("another fleet");
        let message = err.to_string();
        assert!(message.contains("database cart"), "{message}");
        assert!(
            message.contains(&first) && message.contains(&second),
            "{message}"
        );
        assert!(message.contains("--database-prefix"), "{message}");
    }
}
