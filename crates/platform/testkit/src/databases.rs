//! Throw-away databases for tests, on the backend the environment picks: fresh SQLite files by
//! default, or fresh databases on the PostgreSQL server named by `FLOTILLA_TEST_DATABASE_URL`
//! (e.g. `postgres://postgres@127.0.0.1:5432`), so one test suite proves the SQL on both.
//!
//! PostgreSQL databases are named `ft_<random>_<name>` and dropped with the [`TestDatabases`]
//! that made them, also when the test panics. A run killed outright leaves its databases
//! behind; the random part keeps them from colliding with later runs, and this removes them:
//!
//! ```text
//! psql -h 127.0.0.1 -U postgres -Atc "SELECT format('DROP DATABASE %I WITH (FORCE);', datname)
//!   FROM pg_database WHERE datname LIKE 'ft\_%'" | psql -h 127.0.0.1 -U postgres
//! ```

use flotilla_chassis::db::{Db, PoolSettings};

/// The environment variable naming the PostgreSQL server tests use instead of SQLite.
pub const TEST_DATABASE_URL: &str = "FLOTILLA_TEST_DATABASE_URL";

/// Longest name a test may give a database: PostgreSQL's 63 less `ft_<12 hex>_`.
const MAX_NAME_LEN: usize = 63 - 16;

/// An empty database (nothing migrated) for a test that works on a [`Db`] directly, on the
/// backend the environment picks; keep the guard alive as long as the `Db` is used.
///
/// ```ignore
/// let (db, _guard) = testkit::test_db("orders").await;
/// db.migrate(MIGRATIONS).await?;
/// ```
pub async fn test_db(name: &str) -> (Db, TestDatabases) {
    let mut databases = TestDatabases::new();
    let db = databases.open(name).await;
    (db, databases)
}

/// The databases one test made; dropping it removes them (the SQLite directory, or the
/// PostgreSQL databases).
pub struct TestDatabases {
    /// SQLite files live here (unused on PostgreSQL, and cheap).
    dir: tempfile::TempDir,
    /// The PostgreSQL server, when the environment names one.
    server: Option<String>,
    /// `ft_<random>`: what every database of this set starts with.
    prefix: String,
    /// PostgreSQL databases created so far, to drop.
    created: Vec<String>,
}

impl TestDatabases {
    /// An empty set on the backend `FLOTILLA_TEST_DATABASE_URL` picks.
    pub fn new() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            server: std::env::var(TEST_DATABASE_URL)
                .ok()
                .filter(|url| !url.trim().is_empty())
                .map(|url| without_durable_commits(&url)),
            prefix: format!("ft_{}", &random[..12]),
            created: Vec::new(),
        }
    }

    /// A fresh, empty database called `name`; opening a name again reopens the same database
    /// (a restart, say). Panics (test code) if it cannot be made.
    pub async fn open(&mut self, name: &str) -> Db {
        let mut dbs = self.open_all(&[name]).await;
        dbs.pop().expect("one database per name")
    }

    /// [`TestDatabases::open`] for several names at once, in order. PostgreSQL creates them
    /// concurrently: each `CREATE DATABASE` waits for its own fsyncs.
    pub async fn open_all(&mut self, names: &[&str]) -> Vec<Db> {
        // Checked on SQLite too, so that a name PostgreSQL would refuse fails everywhere.
        for name in names {
            assert!(
                !name.is_empty()
                    && name.len() <= MAX_NAME_LEN
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "test database name {name:?}: use 1 to {MAX_NAME_LEN} characters of [a-z0-9_]"
            );
        }
        let settings = PoolSettings::default();
        let Some(server) = self.server.clone() else {
            let mut dbs = Vec::with_capacity(names.len());
            for name in names {
                let path = self.dir.path().join(format!("{name}.db"));
                let db = Db::open_sqlite(&path, &settings)
                    .await
                    .unwrap_or_else(|e| panic!("opening SQLite {}: {e}", path.display()));
                dbs.push(db);
            }
            return dbs;
        };
        let databases: Vec<String> = names
            .iter()
            .map(|name| format!("{}_{name}", self.prefix))
            .collect();
        // Recorded before creating, so a half-made database is dropped too.
        for database in &databases {
            if !self.created.contains(database) {
                self.created.push(database.clone());
            }
        }
        futures::future::join_all(databases.iter().map(|database| {
            let (server, settings) = (&server, &settings);
            async move {
                Db::open_postgres(server, database, settings)
                    .await
                    .unwrap_or_else(|e| panic!("creating {database} on {TEST_DATABASE_URL}: {e}"))
            }
        }))
        .await
    }
}

/// `server_url` with `synchronous_commit` off for every connection: a commit then returns
/// before its WAL reaches the disk. Nothing a test checks changes (commits stay atomic and
/// isolated; only a crash of the server could lose the last ones, of throw-away databases), and
/// a commit costs ~0.4 ms instead of an fsync's ~3.5 ms (measured on the CI-like machine).
fn without_durable_commits(server_url: &str) -> String {
    let separator = if server_url.contains('?') { '&' } else { '?' };
    format!("{server_url}{separator}options[synchronous_commit]=off")
}

impl Default for TestDatabases {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabases {
    /// Drops the PostgreSQL databases on a thread of its own with a small runtime: this may
    /// run inside the test's runtime, which cannot block on a future itself. The thread is
    /// joined (a fraction of a second) so that the test binary cannot exit before it is done.
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let databases = std::mem::take(&mut self.created);
        if databases.is_empty() {
            return;
        }
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let dropped = futures::future::join_all(
                    databases
                        .iter()
                        .map(|database| Db::drop_postgres(&server, database)),
                )
                .await;
                for (database, result) in databases.iter().zip(dropped) {
                    if let Err(e) = result {
                        return Err(format!("dropping {database}: {e}"));
                    }
                }
                Ok(())
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            // Not a panic: the test's own outcome matters more than a leftover database.
            Ok(Err(e)) => eprintln!("test databases left behind: {e}"),
            Err(_) => eprintln!("test databases left behind: the dropping thread panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whichever backend the environment picks: a name opened twice is one database, and
    /// dropping the set (inside a runtime, pools still open) removes everything it made.
    #[tokio::test]
    async fn a_set_reopens_by_name_and_removes_its_databases_when_dropped() {
        let mut databases = TestDatabases::new();
        let first = databases.open("probe").await;
        sqlx::raw_sql("CREATE TABLE t (x BIGINT NOT NULL); INSERT INTO t (x) VALUES (7)")
            .execute(first.pool())
            .await
            .expect("a usable database");
        let again = databases.open("probe").await;
        let x: i64 = sqlx::query_scalar("SELECT x FROM t")
            .fetch_one(again.pool())
            .await
            .expect("the same database");
        assert_eq!(x, 7);

        let dir = databases.dir.path().to_owned();
        let server = databases.server.clone();
        let name = format!("{}_probe", databases.prefix);
        drop(databases);
        assert!(!dir.exists(), "the SQLite directory is gone");
        if let Some(server) = server {
            let admin = Db::open_postgres(&server, "postgres", &PoolSettings::default())
                .await
                .expect("maintenance database");
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
                    .bind(&name)
                    .fetch_one(admin.pool())
                    .await
                    .expect("catalog");
            assert_eq!(left, 0, "{name} was dropped");
        }
    }

    #[test]
    fn commits_stop_waiting_for_the_disk_whatever_the_url_holds() {
        assert_eq!(
            without_durable_commits("postgres://u@h:5432"),
            "postgres://u@h:5432?options[synchronous_commit]=off"
        );
        assert_eq!(
            without_durable_commits("postgres://u@h/x?sslmode=disable"),
            "postgres://u@h/x?sslmode=disable&options[synchronous_commit]=off"
        );
    }
}
