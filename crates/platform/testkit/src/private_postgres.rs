//! A PostgreSQL server of a test's own, for tests that stop and restart the database: the
//! shared server at 127.0.0.1:5432 serves every other engineer's and CI job's tests, and must
//! never go down for one of them.
//!
//! The server is made with `initdb` in a temporary directory and run with `pg_ctl` on a free
//! port, without fsync (a test's data need not survive a power cut, only a stopped server:
//! commits stay synchronous, so an immediate stop loses nothing acknowledged). PostgreSQL
//! refuses to run as root, so as root the tools run as the `postgres` OS user, which owns the
//! directory. The binaries are found in `FLOTILLA_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout), else on `PATH`. Dropping the handle stops the
//! server and removes the directory.
//!
//! ```ignore
//! let pg = PrivatePostgres::start().await;
//! let db = Db::open_postgres(&pg.url(), "shop", &PoolSettings::default()).await?;
//! pg.stop().await;   // immediate shutdown, like a crash
//! pg.resume().await; // same port, same data
//! ```

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::Command;

/// A running (or stopped) PostgreSQL server in a temporary directory.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl PrivatePostgres {
    /// Makes a cluster and starts it on a free port; panics (this is test code) when it cannot.
    pub async fn start() -> Self {
        let bin = binaries();
        let dir = tempfile::tempdir().expect("temp dir");
        // Root owns /proc/self exactly when this process runs as root.
        let as_postgres_user = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if as_postgres_user {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path()),
                "chown the directory to postgres",
            )
            .await;
        }
        let mut pg = Self {
            dir,
            bin,
            port: 0,
            as_postgres_user,
        };
        let mut initdb = pg.tool("initdb");
        initdb
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(&mut initdb, "initdb").await;
        // A port found free may be taken before the server binds it; try a few.
        for attempt in 0..3 {
            pg.port = free_port();
            if pg.try_start().await {
                return pg;
            }
            eprintln!(
                "private PostgreSQL did not start on port {} (attempt {attempt})",
                pg.port
            );
        }
        panic!(
            "private PostgreSQL did not start; see {}",
            pg.log().display()
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT`, the form `FLOTILLA_DATABASE_URL` takes.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same after [`PrivatePostgres::resume`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`): every connection is cut, as in a
    /// crash; the data stays for [`PrivatePostgres::resume`].
    pub async fn stop(&self) {
        let mut stop = self.tool("pg_ctl");
        stop.arg("stop")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w"]);
        run(&mut stop, "pg_ctl stop").await;
    }

    /// Starts the stopped server again on the same port, waiting until it accepts connections.
    pub async fn resume(&self) {
        assert!(
            self.try_start().await,
            "private PostgreSQL restarts; see {}",
            self.log().display()
        );
    }

    async fn try_start(&self) -> bool {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let mut start = self.tool("pg_ctl");
        start
            .arg("start")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "30", "-o", &options]);
        start.stdout(Stdio::null()).stderr(Stdio::null());
        start.status().await.is_ok_and(|s| s.success())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A command running PostgreSQL's tool `name`, as the `postgres` user when we are root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Synchronous: a drop cannot wait on the runtime. Fails harmlessly when already stopped.
        let program = self.bin.join("pg_ctl");
        let mut stop = if self.as_postgres_user {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            std::process::Command::new(program)
        };
        let _ = stop
            .arg("stop")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The directory holding `initdb` and `pg_ctl`.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLOTILLA_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").exists())
        .expect("PostgreSQL's initdb (set FLOTILLA_PG_BIN, or install postgresql)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
