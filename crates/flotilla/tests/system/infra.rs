//! Private infrastructure for fleet tests: an etcd and a NATS server of the test's own, on free
//! ports with temporary data (so a test can stop them without disturbing anything else), and
//! names for PostgreSQL databases and NATS streams that no other test uses.

use crate::support::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process killed when dropped.
pub struct Server {
    child: Option<Child>,
    args: Vec<String>,
    program: &'static str,
    /// Its client URL.
    pub url: String,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl Server {
    fn spawn(
        program: &'static str,
        args: Vec<String>,
        url: String,
        dir: std::sync::Arc<tempfile::TempDir>,
    ) -> Server {
        let child = Command::new(program)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} (is it installed? .ci/run installs it): {e}")
            });
        let server = Server {
            child: Some(child),
            args,
            program,
            url,
            _dir: dir,
        };
        server.wait_listening();
        server
    }

    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port())).is_err() {
            assert!(Instant::now() < deadline, "{} listening", self.program);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("restart");
        self.child = Some(child);
        self.wait_listening();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An etcd of the test's own.
pub fn etcd() -> Server {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("dir"));
    let (client, peer) = (free_port(), free_port());
    let args = vec![
        "--name".into(),
        "t".into(),
        "--data-dir".into(),
        dir.path().join("etcd").display().to_string(),
        "--listen-client-urls".into(),
        format!("http://127.0.0.1:{client}"),
        "--advertise-client-urls".into(),
        format!("http://127.0.0.1:{client}"),
        "--listen-peer-urls".into(),
        format!("http://127.0.0.1:{peer}"),
        "--initial-advertise-peer-urls".into(),
        format!("http://127.0.0.1:{peer}"),
        "--initial-cluster".into(),
        format!("t=http://127.0.0.1:{peer}"),
    ];
    Server::spawn("etcd", args, format!("etcd://127.0.0.1:{client}"), dir)
}

/// A NATS server with JetStream of the test's own.
pub fn nats() -> Server {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("dir"));
    let port = free_port();
    let args = vec![
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-js".into(),
        "-sd".into(),
        dir.path().join("js").display().to_string(),
    ];
    Server::spawn(
        "/usr/sbin/nats-server",
        args,
        format!("nats://127.0.0.1:{port}"),
        dir,
    )
}

/// The PostgreSQL server the tests share: `FLOTILLA_TEST_POSTGRES` (scripts/test.sh sets it,
/// to a throwaway server when none runs at the default address), else the machine's.
pub fn postgres() -> String {
    std::env::var("FLOTILLA_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A prefix no other test uses, for databases, streams and etcd keys.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}
