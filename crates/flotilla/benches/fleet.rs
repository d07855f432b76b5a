//! The fleet against one process (issue #5), in one run and under the same load as the
//! `checkout` bench (customers checking out through the gateway, each checkout timed from
//! `POST /api/orders` to a terminal order):
//!
//! 1. `flotilla run` (every service in one process, SQLite) as a real process;
//! 2. `flotilla up` (every service its own process, PostgreSQL database per service, NATS
//!    JetStream, static discovery): time until ready, RSS of each process idle and under load,
//!    CPU time of each process during the load;
//! 3. the service that used the most CPU in (2) — the bottleneck — with 1, 2 and 3 replicas.
//!
//! It prints markdown tables and reports targets it misses (ready within 5 s, idle RSS of each
//! service process at most 25 MB) without failing; it fails when something cannot be set up.
//! Every process it starts is stopped, the PostgreSQL databases it created are dropped and its
//! NATS streams deleted.
//!
//!     cargo bench -p flotilla --bench fleet               # 15 s of load per scenario
//!     FLOTILLA_BENCH_SECS=5 FLOTILLA_BENCH_USERS=32 cargo bench -p flotilla --bench fleet
//!
//! `FLOTILLA_BENCH_RESULTS=DIR` also appends the figures to `DIR/checkout.jsonl` and
//! `DIR/resources.jsonl` for `flotilla-bench-report` (scripts/bench.sh).
//!
//! Servers: `FLOTILLA_BENCH_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432) and
//! `FLOTILLA_BENCH_NATS_URL` (default nats://127.0.0.1:4222).

mod support;

use anyhow::{Context, bail};
use flotilla::host::SERVICES;
use flotilla_chassis::db::Db;
use flotilla_nats::NatsBus;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{INITIAL_STOCK, MAX_QUANTITY, Outcome, PRODUCTS, WARM_UP, env_u64};

/// Target: the whole fleet answers within this long after `flotilla up` is started.
const READY_TARGET: Duration = Duration::from_secs(5);
/// Target: resident memory of each idle service process, in kB.
const IDLE_RSS_TARGET_KB: u64 = 25 * 1024;
/// Kernel clock ticks per second in `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut leftovers = Leftovers {
        database_url: std::env::var("FLOTILLA_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned()),
        nats_url: std::env::var("FLOTILLA_BENCH_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()),
        prefixes: Vec::new(),
    };
    // Ctrl-C stops the bench the same way as a failure: processes stopped, databases dropped.
    let result = tokio::select! {
        result = bench(&mut leftovers) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let cleaned = leftovers.clean().await;
    if let (Err(_), Err(e)) = (&result, &cleaned) {
        eprintln!("{e:#}");
    }
    result?;
    cleaned
}

async fn bench(leftovers: &mut Leftovers) -> anyhow::Result<()> {
    let secs = env_u64("FLOTILLA_BENCH_SECS", 15);
    let users = env_u64("FLOTILLA_BENCH_USERS", 32) as usize;
    let duration = Duration::from_secs(secs);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(users * 2)
        .timeout(Duration::from_secs(30))
        .build()?;

    eprintln!("one process: flotilla run on SQLite, {users} users, {secs} s");
    let single = Deployment::run().await?;
    let single_run = measure(&single, &http, users, duration, "run").await?;
    let single_ready = single.ready;
    drop(single);

    eprintln!("fleet: flotilla up on PostgreSQL + NATS, {users} users, {secs} s");
    let fleet = Deployment::up(leftovers, None).await?;
    let fleet_run = measure(&fleet, &http, users, duration, "fleet").await?;
    let fleet_ready = fleet.ready;
    drop(fleet);

    // The bottleneck: the service whose instances used the most CPU during the fleet's load.
    let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
    for (p, cpu) in fleet_run.processes.iter().zip(&fleet_run.cpu) {
        if p.service != flotilla::host::GATEWAY && p.service != SUPERVISOR {
            *by_service.entry(p.service.as_str()).or_default() += cpu;
        }
    }
    let bottleneck = by_service
        .iter()
        .max_by_key(|(_, cpu)| **cpu)
        .map(|(s, _)| (*s).to_owned())
        .context("no service used any CPU")?;

    let mut scaled = Vec::new();
    for n in 1..=3u16 {
        eprintln!("fleet: --replicas {bottleneck}={n}, {users} users, {secs} s");
        let fleet = Deployment::up(leftovers, Some((&bottleneck, n))).await?;
        let run = measure(&fleet, &http, users, duration, &format!("r{n}")).await?;
        scaled.push((n, fleet.ready, run));
    }

    report(
        users,
        secs,
        (&single_ready, &single_run),
        (&fleet_ready, &fleet_run),
        &bottleneck,
        &scaled,
    );
    if let Ok(dir) = std::env::var("FLOTILLA_BENCH_RESULTS") {
        let mut runs = vec![
            (
                "one process (SQLite)".to_owned(),
                &single_ready,
                &single_run,
            ),
            (
                "fleet (PostgreSQL + NATS)".to_owned(),
                &fleet_ready,
                &fleet_run,
            ),
        ];
        for (n, ready, run) in &scaled {
            runs.push((format!("fleet, {bottleneck} ×{n}"), ready, run));
        }
        write_results(std::path::Path::new(&dir), users, &runs)?;
    }
    Ok(())
}

/// With `FLOTILLA_BENCH_RESULTS=DIR` (scripts/bench.sh): the figures as JSON lines for
/// `flotilla-bench-report` — `checkout.jsonl`, a row per deployment, and `resources.jsonl`, a
/// row per process and phase (idle; under load, with the checkouts it served).
fn write_results(
    dir: &std::path::Path,
    users: usize,
    runs: &[(String, &Ready, &Measured)],
) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    let mut checkout = open("checkout.jsonl")?;
    let mut resources = open("resources.jsonl")?;
    for (label, ready, m) in runs {
        let row = serde_json::json!({
            "label": label,
            "users": users,
            "checkouts_per_s": m.outcome.per_sec(),
            "p50_ms": m.outcome.ms(0.50),
            "p99_ms": m.outcome.ms(0.99),
            "confirmed": m.outcome.confirmed,
            "errors": m.outcome.errors,
            "ready_ms": ready.to_gateway.as_millis() as u64,
        });
        writeln!(checkout, "{row}")?;
        // Per-process figures for the one process and the fleet with one instance each.
        if label.contains('×') {
            continue;
        }
        for (i, p) in m.processes.iter().enumerate() {
            let idle = serde_json::json!({
                "mode": label, "process": p.label, "phase": "idle",
                "seconds": m.idle.elapsed.as_secs_f64(),
                "cpu_s": m.idle_cpu[i] as f64 / TICKS_PER_SEC,
                "rss_kib": m.idle_rss[i].unwrap_or(0),
            });
            let load = serde_json::json!({
                "mode": label, "process": p.label, "phase": "load",
                "seconds": m.outcome.elapsed.as_secs_f64(),
                "cpu_s": m.cpu[i] as f64 / TICKS_PER_SEC,
                "rss_kib": m.load_rss[i].unwrap_or(0),
                "work": m.outcome.confirmed, "work_unit": "checkouts",
            });
            writeln!(resources, "{idle}\n{load}")?;
        }
    }
    Ok(())
}

/// The label of the `flotilla up` process itself in the process lists.
const SUPERVISOR: &str = "flotilla up";

/// A Flotilla process (or processes) under test.
struct Deployment {
    /// Stopped when the deployment is dropped.
    _process: Spawned,
    /// The gateway's base URL.
    base: String,
    ready: Ready,
    /// What to measure: the processes that make up the deployment.
    processes: Vec<Watched>,
}

/// How quickly a deployment was ready.
#[derive(Debug, Clone, Copy)]
struct Ready {
    /// From spawning the process until every service answered ready through the gateway.
    to_gateway: Duration,
    /// What `flotilla up` printed: from starting the instances to every instance ready (after
    /// it created and migrated the databases).
    printed_ms: Option<u64>,
}

/// One process of a deployment.
#[derive(Debug, Clone)]
struct Watched {
    /// `orders#2`, `flotilla run`, ...
    label: String,
    /// The service it runs (`orders`), or the label for a process that is not an instance.
    service: String,
    pid: u32,
}

impl Deployment {
    /// `flotilla run` on SQLite in a fresh data directory.
    async fn run() -> anyhow::Result<Deployment> {
        let mut process = Spawned::start(&["run".into(), "--port".into(), "0".into()])?;
        let line = process
            .wait_for(|l| l.starts_with("Flotilla is ready"))
            .await?;
        let addr = line
            .split("open http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|a| a.trim_end_matches('/').to_owned())
            .with_context(|| format!("no gateway address in {line:?}"))?;
        let base = format!("http://{addr}");
        let to_gateway = process.gateway_ready(&base).await?;
        let pid = process.child.id();
        Ok(Deployment {
            _process: process,
            base,
            ready: Ready {
                to_gateway,
                printed_ms: None,
            },
            processes: vec![Watched {
                label: "flotilla run".into(),
                service: "flotilla run".into(),
                pid,
            }],
        })
    }

    /// `flotilla up` on fresh PostgreSQL databases and a NATS prefix of its own, with
    /// `replicas` of one service.
    async fn up(
        leftovers: &mut Leftovers,
        replicas: Option<(&str, u16)>,
    ) -> anyhow::Result<Deployment> {
        let prefix = format!("fb{:08x}", rand::random::<u32>());
        leftovers.prefixes.push(prefix.clone());
        let mut args: Vec<String> = [
            "up",
            "--port",
            "0",
            "--database-url",
            &leftovers.database_url,
            "--database-prefix",
            &prefix,
            "--cluster",
            &prefix,
            "--nats-url",
            &leftovers.nats_url,
            "--discovery",
            "static",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if let Some((service, n)) = replicas {
            args.push("--replicas".into());
            args.push(format!("{service}={n}"));
        }
        let mut process = Spawned::start(&args)?;
        let mut processes = vec![Watched {
            label: SUPERVISOR.into(),
            service: SUPERVISOR.into(),
            pid: process.child.id(),
        }];
        let line = process
            .wait_for(|l| {
                // The table of instances: SERVICE REPLICA ADDRESS PID.
                let cols: Vec<&str> = l.split_whitespace().collect();
                if let [service, replica, url, pid] = cols[..]
                    && url.starts_with("http://")
                    && let (Ok(replica), Ok(pid)) = (replica.parse::<u16>(), pid.parse::<u32>())
                {
                    processes.push(Watched {
                        label: format!("{service}#{replica}"),
                        service: service.to_owned(),
                        pid,
                    });
                }
                l.starts_with("Fleet ready in ") || l.starts_with("Fleet started, but not ready")
            })
            .await?;
        process.instances = processes.iter().skip(1).map(|p| p.pid).collect();
        let Some(rest) = line.strip_prefix("Fleet ready in ") else {
            bail!("flotilla up: {line}");
        };
        let printed_ms = rest
            .split_whitespace()
            .next()
            .and_then(|ms| ms.parse().ok());
        let base = rest
            .split("open ")
            .nth(1)
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .with_context(|| format!("no gateway URL in {line:?}"))?;
        let to_gateway = process.gateway_ready(&base).await?;
        Ok(Deployment {
            _process: process,
            base,
            ready: Ready {
                to_gateway,
                printed_ms,
            },
            processes,
        })
    }
}

/// What one measured load on a deployment found.
struct Measured {
    outcome: Outcome,
    processes: Vec<Watched>,
    /// CPU used while idle after start, before any request.
    idle: Idle,
    /// Per process (in `processes` order): CPU ticks used while idle.
    idle_cpu: Vec<u64>,
    /// Per process (in `processes` order): RSS in kB idle after start, before any request.
    idle_rss: Vec<Option<u64>>,
    /// Per process: RSS after the customers signed up and logged in (before the load).
    signed_up_rss: Vec<Option<u64>>,
    /// Per process: the largest RSS sampled during the measured load.
    load_rss: Vec<Option<u64>>,
    /// Per process: CPU ticks used during the measured load.
    cpu: Vec<u64>,
    /// CPU ticks of every PostgreSQL process, of NATS, and of this bench (the load generator).
    postgres_cpu: u64,
    nats_cpu: u64,
    bench_cpu: u64,
    /// CPU ticks of the whole machine.
    machine_cpu: u64,
}

impl Measured {
    /// CPU ticks of whatever else ran on the machine during the load (another build, say):
    /// what makes a run noisy.
    fn other_cpu(&self) -> u64 {
        let ours =
            self.cpu.iter().sum::<u64>() + self.postgres_cpu + self.nats_cpu + self.bench_cpu;
        self.machine_cpu.saturating_sub(ours)
    }
}

/// Idle RSS, then customers, a warm-up, and the measured load with CPU and RSS watched.
async fn measure(
    deployment: &Deployment,
    http: &reqwest::Client,
    users: usize,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<Measured> {
    let pids: Vec<u32> = deployment.processes.iter().map(|p| p.pid).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_started = Instant::now();
    let before = CpuSnapshot::take(&pids);
    tokio::time::sleep(IDLE).await;
    let after = CpuSnapshot::take(&pids);
    let idle_cpu: Vec<u64> = pids
        .iter()
        .map(|p| delta(&before.watched, &after.watched, *p))
        .collect();
    let idle = Idle {
        elapsed: idle_started.elapsed(),
        flotilla_cpu: idle_cpu.iter().sum(),
        servers_cpu: sum_delta(&before.postgres, &after.postgres)
            + sum_delta(&before.nats, &after.nats),
    };
    let idle_rss = pids.iter().map(|p| rss_kb(*p)).collect();
    let base = &deployment.base;
    let bearers = support::customers(http, base, users).await?;
    let signed_up_rss = pids.iter().map(|p| rss_kb(*p)).collect();
    support::load(http, base, &bearers, WARM_UP, &format!("{tag}-warm")).await;

    let before = CpuSnapshot::take(&pids);
    let sampler = RssSampler::start(pids.clone());
    let outcome = support::load(http, base, &bearers, duration, tag).await;
    let load_rss = sampler.stop().await;
    let after = CpuSnapshot::take(&pids);
    let load_rss = pids.iter().map(|p| load_rss.get(p).copied()).collect();
    Ok(Measured {
        outcome,
        processes: deployment.processes.clone(),
        idle,
        idle_cpu,
        idle_rss,
        signed_up_rss,
        load_rss,
        cpu: pids
            .iter()
            .map(|p| delta(&before.watched, &after.watched, *p))
            .collect(),
        postgres_cpu: sum_delta(&before.postgres, &after.postgres),
        nats_cpu: sum_delta(&before.nats, &after.nats),
        bench_cpu: after.bench.saturating_sub(before.bench),
        machine_cpu: after.machine.saturating_sub(before.machine),
    })
}

/// How long a deployment is watched while idle.
const IDLE: Duration = Duration::from_secs(2);

/// CPU ticks used while idle.
struct Idle {
    elapsed: Duration,
    /// Every Flotilla process of the deployment.
    flotilla_cpu: u64,
    /// PostgreSQL and NATS.
    servers_cpu: u64,
}

/// CPU ticks (user + system) of the processes that matter, at one moment.
struct CpuSnapshot {
    watched: HashMap<u32, u64>,
    postgres: HashMap<u32, u64>,
    nats: HashMap<u32, u64>,
    bench: u64,
    /// Busy ticks of the whole machine, every core (`/proc/stat`).
    machine: u64,
}

impl CpuSnapshot {
    fn take(pids: &[u32]) -> CpuSnapshot {
        let mut postgres = HashMap::new();
        let mut nats = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                let target = match comm.trim() {
                    "postgres" => &mut postgres,
                    "nats-server" => &mut nats,
                    _ => continue,
                };
                if let Some(ticks) = cpu_ticks(&pid.to_string()) {
                    target.insert(pid, ticks);
                }
            }
        }
        CpuSnapshot {
            watched: pids
                .iter()
                .filter_map(|p| Some((*p, cpu_ticks(&p.to_string())?)))
                .collect(),
            postgres,
            nats,
            bench: cpu_ticks("self").unwrap_or(0),
            machine: machine_busy_ticks().unwrap_or(0),
        }
    }
}

fn delta(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>, pid: u32) -> u64 {
    let after = after.get(&pid).copied().unwrap_or(0);
    after.saturating_sub(before.get(&pid).copied().unwrap_or(0))
}

/// Ticks used between the snapshots by the processes alive at the second (a process started in
/// between counts in full).
fn sum_delta(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after.keys().map(|pid| delta(before, after, *pid)).sum()
}

/// Ticks every core of the machine spent neither idle nor waiting for I/O.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let all: u64 = ticks.iter().take(8).sum();
    Some(all - ticks.get(3)? - ticks.get(4)?)
}

/// utime + stime of `/proc/<pid>/stat`, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS of `pid`, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Samples the RSS of processes every 100 ms, keeping each one's largest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<HashMap<u32, u64>>,
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut max: HashMap<u32, u64> = HashMap::new();
                loop {
                    for pid in &pids {
                        if let Some(kb) = rss_kb(*pid) {
                            let m = max.entry(*pid).or_default();
                            *m = (*m).max(kb);
                        }
                    }
                    if stop.load(Ordering::Relaxed) {
                        return max;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        RssSampler { stop, task }
    }

    async fn stop(self) -> HashMap<u32, u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// A `flotilla` child process whose stdout is read line by line; stopped when dropped.
struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
    spawned: Instant,
    /// For `flotilla up`: the pids of its instances.
    instances: Vec<u32>,
    /// The data directory (and working directory, so no `flotilla.toml` is picked up).
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts the bench's `flotilla` binary with `args`, a fresh data directory, and the bench's
    /// catalog and stock as configuration; nothing else from the environment's `FLOTILLA_*`.
    fn start(args: &[String]) -> anyhow::Result<Spawned> {
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLOTILLA_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .current_dir(dir.path())
            .env("FLOTILLA_CATALOG__SEED_PRODUCTS", PRODUCTS.to_string())
            .env("FLOTILLA_INVENTORY__SEED_PRODUCTS", PRODUCTS.to_string())
            .env(
                "FLOTILLA_INVENTORY__INITIAL_STOCK",
                INITIAL_STOCK.to_string(),
            )
            .env("FLOTILLA_CART__MAX_QUANTITY", MAX_QUANTITY.to_string())
            // As in the checkout bench: the load comes from one address, as fast as it can.
            .env("FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let spawned = Instant::now();
        let mut child = cmd.spawn().context("starting flotilla")?;
        let stdout = child.stdout.take().context("flotilla's stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining after the bench stops listening, so the child never blocks on a
            // full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Spawned {
            child,
            lines,
            spawned,
            instances: Vec::new(),
            _dir: dir,
        })
    }

    /// Reads stdout until a line `done` accepts (each line is shown to it); that line.
    async fn wait_for(&mut self, mut done: impl FnMut(&str) -> bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    if done(&line) {
                        return Ok(line);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {
                    if Instant::now() > deadline {
                        bail!("flotilla did not get ready within 120 s");
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("flotilla exited before it was ready ({status}); its log is above");
                }
            }
        }
    }

    /// Waits until every service answers `/readyz` through the gateway at `base`; the time
    /// since the process was spawned.
    async fn gateway_ready(&self, base: &str) -> anyhow::Result<Duration> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut waiting: Vec<&str> = SERVICES
            .iter()
            .map(|s| s.name)
            .filter(|s| *s != flotilla_storefront::NAME)
            .collect();
        while !waiting.is_empty() {
            let mut still = Vec::new();
            for service in waiting {
                let ok = http
                    .get(format!("{base}/api/{service}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    still.push(service);
                }
            }
            waiting = still;
            if Instant::now() > deadline {
                bail!("not ready through the gateway after 60 s: {waiting:?}");
            }
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(self.spawned.elapsed())
    }

    /// Ctrl-C (SIGINT), as an operator stops it, then SIGKILL after 30 s; instances of a
    /// `flotilla up` still alive after that are killed too.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = self.child.try_wait() {
                eprintln!("flotilla did not stop within 30 s; killing it");
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // An instance is ours while its environment names this supervisor (pids are reused).
        let parent = format!("{}={}", flotilla::signal::PARENT_PID, self.child.id());
        for pid in &self.instances {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if environ.split(|b| *b == 0).any(|v| v == parent.as_bytes()) {
                eprintln!("instance {pid} outlived flotilla up; killing it");
                signal(*pid, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// What the fleets leave on the servers: databases `<prefix>_<service>` and NATS streams.
struct Leftovers {
    database_url: String,
    nats_url: String,
    prefixes: Vec<String>,
}

impl Leftovers {
    async fn clean(&self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for prefix in &self.prefixes {
            for spec in SERVICES.iter().filter(|s| s.needs_database) {
                let database = format!("{prefix}_{}", spec.name);
                if let Err(e) = Db::drop_postgres(&self.database_url, &database).await {
                    failures.push(format!("dropping database {database}: {e}"));
                }
            }
            if let Err(e) = NatsBus::purge(&self.nats_url, prefix).await {
                failures.push(format!("deleting NATS streams {prefix}: {e}"));
            }
        }
        if !failures.is_empty() {
            bail!("cleaning up: {}", failures.join("; "));
        }
        Ok(())
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("—".into(), |kb| format!("{:.1} MB", kb as f64 / 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// CPU ticks as seconds and as a share of the machine's capacity over `elapsed`.
fn cpu(ticks: u64, elapsed: Duration) -> String {
    let secs = ticks as f64 / TICKS_PER_SEC;
    let capacity = elapsed.as_secs_f64() * support::cores().max(1) as f64;
    format!("{secs:.1} s ({:.0} %)", 100.0 * secs / capacity)
}

/// CPU time of the deployment and its servers per confirmed checkout.
fn per_checkout(m: &Measured) -> String {
    let ticks = m.cpu.iter().sum::<u64>() + m.postgres_cpu + m.nats_cpu;
    let ms = 1000.0 * ticks as f64 / TICKS_PER_SEC / m.outcome.confirmed.max(1) as f64;
    format!("{ms:.1} ms")
}

fn yes(met: bool) -> String {
    if met { "yes" } else { "**no**" }.into()
}

fn total(values: &[Option<u64>]) -> Option<u64> {
    values.iter().copied().sum()
}

fn report(
    users: usize,
    secs: u64,
    (single_ready, single): (&Ready, &Measured),
    (fleet_ready, fleet): (&Ready, &Measured),
    bottleneck: &str,
    scaled: &[(u16, Ready, Measured)],
) {
    println!();
    println!(
        "flotilla fleet bench: {} cores, {users} users, {secs} s per scenario; one process on \
         SQLite, fleet on PostgreSQL + NATS (static discovery)",
        support::cores()
    );
    println!();
    println!("### One process against the fleet, same load");
    println!();
    let flotilla_cpu = |m: &Measured| m.cpu.iter().sum::<u64>();
    let mut rows = Vec::new();
    for (i, [label, value]) in single.outcome.rows().into_iter().enumerate() {
        rows.push([label, value, fleet.outcome.rows()[i][1].clone()]);
    }
    rows.extend([
        [
            "ready after start (spawn → every service ready through the gateway)".into(),
            ms(single_ready.to_gateway),
            ms(fleet_ready.to_gateway),
        ],
        [
            "processes".into(),
            single.processes.len().to_string(),
            format!("{} (supervisor + instances)", fleet.processes.len()),
        ],
        [
            "RSS idle, all Flotilla processes".into(),
            mb(total(&single.idle_rss)),
            mb(total(&fleet.idle_rss)),
        ],
        [
            format!("RSS after {users} sign-ups and logins, all Flotilla processes"),
            mb(total(&single.signed_up_rss)),
            mb(total(&fleet.signed_up_rss)),
        ],
        [
            "RSS under load (max), all Flotilla processes".into(),
            mb(total(&single.load_rss)),
            mb(total(&fleet.load_rss)),
        ],
        [
            "CPU while idle: Flotilla processes".into(),
            cpu(single.idle.flotilla_cpu, single.idle.elapsed),
            cpu(fleet.idle.flotilla_cpu, fleet.idle.elapsed),
        ],
        [
            "CPU while idle: PostgreSQL + NATS".into(),
            cpu(single.idle.servers_cpu, single.idle.elapsed),
            cpu(fleet.idle.servers_cpu, fleet.idle.elapsed),
        ],
        [
            "CPU during the load: Flotilla processes".into(),
            cpu(flotilla_cpu(single), single.outcome.elapsed),
            cpu(flotilla_cpu(fleet), fleet.outcome.elapsed),
        ],
        [
            "CPU during the load: PostgreSQL + NATS".into(),
            cpu(
                single.postgres_cpu + single.nats_cpu,
                single.outcome.elapsed,
            ),
            cpu(fleet.postgres_cpu + fleet.nats_cpu, fleet.outcome.elapsed),
        ],
        [
            "CPU during the load: load generator (this bench)".into(),
            cpu(single.bench_cpu, single.outcome.elapsed),
            cpu(fleet.bench_cpu, fleet.outcome.elapsed),
        ],
        [
            "CPU per confirmed checkout: Flotilla + PostgreSQL + NATS".into(),
            per_checkout(single),
            per_checkout(fleet),
        ],
        [
            "CPU during the load: anything else on the machine".into(),
            cpu(single.other_cpu(), single.outcome.elapsed),
            cpu(fleet.other_cpu(), fleet.outcome.elapsed),
        ],
    ]);
    support::print_table(
        [
            "measure",
            "one process (SQLite)",
            "fleet (PostgreSQL + NATS)",
        ],
        &rows,
    );

    println!();
    println!("### Each process of the fleet");
    println!();
    let elapsed = fleet.outcome.elapsed;
    let mut rows: Vec<[String; 5]> = fleet
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            [
                p.label.clone(),
                mb(fleet.idle_rss[i]),
                mb(fleet.signed_up_rss[i]),
                mb(fleet.load_rss[i]),
                cpu(fleet.cpu[i], elapsed),
            ]
        })
        .collect();
    rows.extend([
        [
            "PostgreSQL (every backend)".into(),
            "—".into(),
            "—".into(),
            "—".into(),
            cpu(fleet.postgres_cpu, elapsed),
        ],
        [
            "nats-server".into(),
            "—".into(),
            "—".into(),
            "—".into(),
            cpu(fleet.nats_cpu, elapsed),
        ],
        [
            "load generator (this bench)".into(),
            "—".into(),
            "—".into(),
            "—".into(),
            cpu(fleet.bench_cpu, elapsed),
        ],
        [
            "anything else on the machine".into(),
            "—".into(),
            "—".into(),
            "—".into(),
            cpu(fleet.other_cpu(), elapsed),
        ],
    ]);
    support::print_table(
        [
            "process",
            "RSS idle",
            "RSS after sign-ups",
            "RSS under load (max)",
            "CPU during the load (share of the machine)",
        ],
        &rows,
    );

    println!();
    println!("### Replicas of the bottleneck ({bottleneck}: the most CPU in the fleet's load)");
    println!();
    let rows: Vec<[String; 7]> = scaled
        .iter()
        .map(|(n, ready, m)| {
            let bottleneck_cpu: u64 = m
                .processes
                .iter()
                .zip(&m.cpu)
                .filter(|(p, _)| p.service == bottleneck)
                .map(|(_, c)| c)
                .sum();
            [
                format!("`--replicas {bottleneck}={n}`"),
                format!("{:.0}", m.outcome.per_sec()),
                format!("{:.1} ms", m.outcome.ms(0.99)),
                format!("{} / {}", m.outcome.confirmed, m.outcome.errors),
                cpu(bottleneck_cpu, m.outcome.elapsed),
                cpu(m.other_cpu(), m.outcome.elapsed),
                ms(ready.to_gateway),
            ]
        })
        .collect();
    support::print_table(
        [
            "fleet",
            "checkouts/s",
            "p99",
            "confirmed / errors",
            &format!("CPU of {bottleneck}"),
            "CPU of anything else",
            "ready after start",
        ],
        &rows,
    );

    println!();
    println!("### Targets");
    println!();
    let mut starts: Vec<Ready> = vec![*fleet_ready];
    starts.extend(scaled.iter().map(|(_, r, _)| *r));
    let slowest = starts
        .iter()
        .map(|r| r.to_gateway)
        .max()
        .unwrap_or_default();
    let printed: Vec<String> = starts
        .iter()
        .filter_map(|r| r.printed_ms)
        .map(|ms| ms.to_string())
        .collect();
    let (heaviest, heaviest_kb) = fleet
        .processes
        .iter()
        .zip(&fleet.idle_rss)
        .filter(|(p, _)| p.service != SUPERVISOR)
        .filter_map(|(p, kb)| Some((p.label.as_str(), (*kb)?)))
        .max_by_key(|(_, kb)| *kb)
        .unwrap_or(("—", 0));
    support::print_table(
        ["target", "measured", "met"],
        &[
            [
                "whole fleet ready within 5 s of `flotilla up` (fresh databases)".into(),
                format!(
                    "slowest of {} starts: {} (`up` printed {} ms, from the instances' spawn)",
                    starts.len(),
                    ms(slowest),
                    printed.join(", ")
                ),
                yes(slowest <= READY_TARGET),
            ],
            [
                "RSS of each service process idle ≤ 25 MB".into(),
                format!("largest: {heaviest} {}", mb(Some(heaviest_kb))),
                yes(heaviest_kb > 0 && heaviest_kb <= IDLE_RSS_TARGET_KB),
            ],
        ],
    );
}
