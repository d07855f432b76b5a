//! Starting Flotilla for a test: in this process through the library (`spawn_app`), or as child
//! processes of the real binary (`Process`), each with its own data directory and ports.

use flotilla::cli::Common;
use flotilla::host::{Host, Mode};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A `flotilla run` host started in this process on a random port.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The metrics listener, `http://127.0.0.1:PORT` (serves `/metrics`).
    pub metrics: String,
    /// Client with a cookie store (for storefront sessions) and no redirects.
    pub http: reqwest::Client,
    /// The data directory (holds `identity.db`, `catalog.db`, ...).
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A small catalog keeps start-up fast.
pub const TEST_PRODUCTS: u64 = 60;

/// Starts `flotilla run` in-process with `extra` configuration (JSON merged over defaults).
pub async fn spawn_app_with(extra: serde_json::Value) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = figment::Figment::from(figment::providers::Serialized::defaults(
        serde_json::json!({
            "catalog": {"seed_products": TEST_PRODUCTS},
            // Tests sign up and log in dozens of users from one address; `rate_limit.rs`
            // turns the limits on.
            "gateway": {"rate_limit": {"enabled": false}},
        }),
    ));
    config = config.merge(figment::providers::Serialized::defaults(extra));
    let common = Common {
        port: Some(0),
        data_dir: Some(dir.path().to_path_buf()),
        metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Common::default()
    };
    let (config, settings) = flotilla::settings(config, &common).expect("settings");
    let host = Host::build(config, settings, Mode::Run)
        .await
        .expect("host builds");
    let addr = host.gateway_addr().expect("gateway");
    let metrics = host.metrics_addr().expect("metrics listener");
    let shutdown = host.shutdown_token();
    tokio::spawn(host.run());
    TestApp {
        base: format!("http://{addr}"),
        metrics: format!("http://{metrics}"),
        http: client(),
        dir,
        shutdown,
    }
}

/// Starts `flotilla run` in-process with test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(serde_json::json!({})).await
}

/// A client that keeps cookies and does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A free local port (bound, then released: fine for tests that need to know ports up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `flotilla` child process, killed when dropped.
pub struct Process {
    child: Child,
    /// Name → address of each listener it printed.
    pub listeners: Vec<(String, SocketAddr)>,
    /// For `flotilla up`: (service, URL, pid) of each instance it printed (read by the fleet
    /// tests, which need etcd).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub instances: Vec<(String, String, u32)>,
}

impl Process {
    /// Starts the real binary with `args` and `envs`, waiting until it prints its listeners.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Process {
        Self::start_with_file_limit(None, args, envs)
    }

    /// [`Process::start`] with the process's standard error written to the file `log` (for a
    /// test that looks for panics in it).
    pub fn start_logging(args: &[&str], envs: &[(&str, &str)], log: &std::path::Path) -> Process {
        let file = std::fs::File::create(log).expect("log file");
        Self::spawn(None, args, envs, Stdio::from(file))
    }

    /// [`Process::start`] with the process's open-file limit lowered to `nofile` (`prlimit`).
    pub fn start_with_file_limit(
        nofile: Option<u64>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Process {
        Self::spawn(nofile, args, envs, Stdio::inherit())
    }

    fn spawn(nofile: Option<u64>, args: &[&str], envs: &[(&str, &str)], stderr: Stdio) -> Process {
        let mut cmd = match nofile {
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}"))
                    .arg(env!("CARGO_BIN_EXE_flotilla"));
                cmd
            }
            None => Command::new(env!("CARGO_BIN_EXE_flotilla")),
        };
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("RUST_LOG", "warn")
            // As in `spawn_app_with`: a test's callers all come from one address.
            .env("FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED", "false");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn flotilla");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the test stops listening, so the child never writes into a
            // closed pipe; and echo every line, so that a failed test shows what the process
            // reported (`up`: instances that exited, with their status).
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[flotilla stdout] {line}");
                let _ = tx.send(line);
            }
        });
        let mut listeners = Vec::new();
        let mut instances = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("flotilla printed its listeners in time");
            if let Some((name, rest)) = line.split_once(" listening on http://") {
                listeners.push((name.to_owned(), rest.trim().parse().expect("address")));
            }
            if let Some(rest) = line.strip_prefix("Fleet ready in ") {
                if let Some((_, url)) = rest.split_once("open http://") {
                    let addr = url
                        .trim()
                        .trim_end_matches('/')
                        .parse()
                        .expect("gateway address");
                    listeners.push(("gateway".to_owned(), addr));
                }
                break;
            }
            if let Some(rest) = line.split_whitespace().collect::<Vec<_>>().get(0..4)
                && rest.len() == 4
                && rest[2].starts_with("http://")
                && let Ok(pid) = rest[3].parse::<u32>()
            {
                instances.push((rest[0].to_owned(), rest[2].to_owned(), pid));
            }
            if line.starts_with("Flotilla is ready") {
                break;
            }
        }
        Process {
            child,
            listeners,
            instances,
        }
    }

    /// Base URL of the listener called `name`.
    pub fn url(&self, name: &str) -> String {
        let addr = self
            .listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .expect("listener");
        format!("http://{addr}")
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    /// A graceful stop (SIGTERM, as an operator would), then SIGKILL after 15 s.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

/// The gateway's `/healthz` at `base`: its load and its rate limiter's counters.
pub async fn gateway_health(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json")
}

/// Signs a new shopper up on the web shop with `web` (which keeps the session cookie); the
/// answer (a 303 that sets the cookie).
pub async fn web_signup(web: &reqwest::Client, base: &str, prefix: &str) -> reqwest::Response {
    let email = format!("{prefix}-{}@example.com", rand::random::<u32>());
    web.post(format!("{base}/signup"))
        .form(&[
            ("name", "Lin"),
            ("email", email.as_str()),
            ("password", "a long enough password"),
        ])
        .send()
        .await
        .expect("signup")
}
