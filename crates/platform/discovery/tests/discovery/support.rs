//! What the discovery tests share: HTTP instances that can be killed like a process, an etcd
//! server per test, and waiting on a watch channel with a deadline.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::transport::http::{HttpPool, HttpSettings};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// A pool like a host's.
pub fn pool() -> HttpPool {
    pool_with_timeout(HttpSettings::default().timeout)
}

/// A pool like a host's whose requests wait at most `timeout` for an answer.
pub fn pool_with_timeout(timeout: Duration) -> HttpPool {
    let credentials = ServiceCredentials::new(b"discovery-tests-shared-secret-32b", "tests");
    HttpPool::new(
        Arc::new(credentials),
        HttpSettings {
            timeout,
            ..HttpSettings::default()
        },
    )
}

/// How a test instance answers `GET /whoami`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with its id.
    Id,
    /// 500, always (its `/readyz` still passes, as a process whose handlers fail would).
    ServerError,
    /// Never: the request is read and held, as by a process stuck in its handlers.
    Hang,
    /// 503 reporting that a dependency of its own failed (`x-flotilla-dependency-failed`).
    DependencyFailed,
}

impl Answer {
    fn code(self) -> u8 {
        match self {
            Answer::Id => 0,
            Answer::ServerError => 1,
            Answer::Hang => 2,
            Answer::DependencyFailed => 3,
        }
    }
}

/// An HTTP server answering `GET /whoami` with its id and `GET /readyz` with 200, in a runtime
/// (and thread) of its own so that [`Instance::kill`] can take it down the way a crash does:
/// listener and every open connection closed at once.
pub struct Instance {
    pub url: String,
    pub addr: std::net::SocketAddr,
    /// How `/whoami` answers now ([`Answer::code`]).
    answering: Arc<AtomicU8>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    pub fn start(id: &str) -> Self {
        Self::start_with(id, Answer::Id)
    }

    pub fn start_with(id: &str, answer: Answer) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        Self::serve(listener, id, answer)
    }

    /// Starts again where a killed instance was.
    pub fn start_on(addr: std::net::SocketAddr, id: &str) -> Self {
        let listener = std::net::TcpListener::bind(addr).expect("bind the old port");
        Self::serve(listener, id, Answer::Id)
    }

    fn serve(listener: std::net::TcpListener, id: &str, answer: Answer) -> Self {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let url = format!("http://{addr}");
        let (stop, stopped) = oneshot::channel::<()>();
        let id = id.to_owned();
        let answering = Arc::new(AtomicU8::new(answer.code()));
        let mode = answering.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("instance runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let whoami = move || {
                    let id = id.clone();
                    let mode = mode.load(Ordering::Relaxed);
                    let status = if mode == Answer::ServerError.code() {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else if mode == Answer::DependencyFailed.code() {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    let mark = (mode == Answer::DependencyFailed.code())
                        .then_some(("x-flotilla-dependency-failed", "1"));
                    async move {
                        if mode == Answer::Hang.code() {
                            std::future::pending::<()>().await;
                        }
                        (status, axum::response::AppendHeaders(mark), id)
                    }
                };
                let app = Router::new()
                    .route("/whoami", get(whoami))
                    .route("/readyz", get(|| async { "ready" }))
                    .route("/echo", post(|body: String| async move { body }));
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: their sockets close now.
        });
        Self {
            url,
            addr,
            answering,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// From now on `/whoami` answers as `answer` says.
    pub fn answer(&self, answer: Answer) {
        self.answering.store(answer.code(), Ordering::Relaxed);
    }

    /// Stops the server abruptly and waits until its sockets are closed.
    pub fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("instance thread");
        }
    }
}

/// A server that accepts connections and reads requests but never answers, as a SIGSTOPped
/// process looks from outside (the kernel still completes handshakes). Its sockets are held
/// until it is dropped.
pub struct Hung {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Hung {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { url, task }
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the channel's value satisfies `done`, at most `limit`; returns how long it took.
/// Fails the test with the last value seen otherwise.
pub async fn wait_until(
    rx: &mut watch::Receiver<Vec<String>>,
    limit: Duration,
    what: &str,
    done: impl FnMut(&Vec<String>) -> bool,
) -> Duration {
    let start = Instant::now();
    let outcome = tokio::time::timeout(limit, rx.wait_for(done))
        .await
        .map(|seen| seen.is_ok());
    match outcome {
        Ok(true) => start.elapsed(),
        Ok(false) => panic!("{what}: the watch channel closed"),
        Err(_) => panic!(
            "{what}: not within {limit:?}; instances are {:?}",
            *rx.borrow()
        ),
    }
}

/// Sorted owned URLs, as a watch channel carries them.
pub fn sorted(urls: &[&str]) -> Vec<String> {
    let mut list: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
    list.sort();
    list
}

#[cfg(feature = "etcd")]
pub use etcd_server::Etcd;

#[cfg(feature = "etcd")]
mod etcd_server {
    use std::path::PathBuf;
    use std::process::Stdio;
    use std::time::Duration;
    use tokio::process::{Child, Command};
    use tokio::time::Instant;

    /// An etcd server of the test's own: random ports, a temporary data directory, killed when
    /// dropped. The binary is `etcd` on the PATH or `$ETCD_BIN`; without one the test fails.
    pub struct Etcd {
        dir: tempfile::TempDir,
        client_port: u16,
        peer_port: u16,
        child: Option<Child>,
    }

    impl Etcd {
        pub async fn start() -> Self {
            let mut etcd = Self {
                dir: tempfile::tempdir().expect("temporary directory"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            };
            etcd.launch().await;
            etcd
        }

        /// The `--discovery` value for this server.
        pub fn spec(&self) -> String {
            format!("etcd://127.0.0.1:{}", self.client_port)
        }

        fn endpoint(&self) -> String {
            format!("http://127.0.0.1:{}", self.client_port)
        }

        /// A plain etcd client, to look behind discovery's back.
        pub async fn raw_client(&self) -> etcd_client::Client {
            etcd_client::Client::connect([self.endpoint()], None)
                .await
                .expect("raw etcd client")
        }

        /// The keys under `prefix`.
        pub async fn list(&self, prefix: &str) -> Vec<etcd_client::KeyValue> {
            let options = etcd_client::GetOptions::new().with_prefix();
            let mut listing = self
                .raw_client()
                .await
                .get(prefix, Some(options))
                .await
                .expect("etcd get");
            listing.take_kvs()
        }

        /// SIGKILL, as a crash.
        pub async fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                child.kill().await.expect("kill etcd");
            }
        }

        /// Starts again on the same ports and data directory.
        pub async fn restart(&mut self) {
            self.kill().await;
            self.launch().await;
        }

        fn log_path(&self) -> PathBuf {
            self.dir.path().join("etcd.log")
        }

        fn log_tail(&self) -> String {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }

        async fn launch(&mut self) {
            let bin = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned());
            let client = format!("http://127.0.0.1:{}", self.client_port);
            let peer = format!("http://127.0.0.1:{}", self.peer_port);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("etcd log file");
            let spawned = Command::new(&bin)
                .arg("--name")
                .arg("t")
                .arg("--data-dir")
                .arg(self.dir.path().join("data"))
                .arg("--listen-client-urls")
                .arg(&client)
                .arg("--advertise-client-urls")
                .arg(&client)
                .arg("--listen-peer-urls")
                .arg(&peer)
                .arg("--initial-advertise-peer-urls")
                .arg(&peer)
                .arg("--initial-cluster")
                .arg(format!("t={peer}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("etcd log file"))
                .stderr(log)
                .kill_on_drop(true)
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "etcd is needed by this test but `{bin}` was not found: install the \
                     etcd-server package (scripts/deps.sh does) or set ETCD_BIN"
                ),
                Err(e) => panic!("could not start `{bin}`: {e}"),
            };
            self.child = Some(child);
            self.wait_ready().await;
        }

        async fn wait_ready(&mut self) {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if self.answers().await {
                    return;
                }
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("etcd exited with {status}:\n{}", self.log_tail());
                }
                if Instant::now() > deadline {
                    panic!("etcd did not answer within 30 s:\n{}", self.log_tail());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        async fn answers(&self) -> bool {
            let limit = Duration::from_secs(1);
            let Ok(Ok(mut client)) =
                tokio::time::timeout(limit, etcd_client::Client::connect([self.endpoint()], None))
                    .await
            else {
                return false;
            };
            matches!(
                tokio::time::timeout(limit, client.status()).await,
                Ok(Ok(_))
            )
        }
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        listener.local_addr().expect("bound address").port()
    }
}
