//! `flotilla up`: a local fleet — every service instance its own OS process (`flotilla serve`),
//! any number of replicas, storage, bus and discovery from configuration. The supervisor prints
//! where everything runs, restarts nothing behind the operator's back (a dead instance is
//! reported, not replaced), and stops every instance cleanly on Ctrl-C or SIGTERM.

use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

use crate::cli::Common;
use crate::host::{GATEWAY, SERVICES};
use crate::settings::HostSettings;

/// One planned instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Service (or `gateway`).
    pub service: String,
    /// 1-based replica number.
    pub replica: u16,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Instance {
    /// `service#replica`.
    fn label(&self) -> String {
        format!("{}#{}", self.service, self.replica)
    }

    fn url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            self.addr.ip().to_string()
        };
        format!("http://{host}:{}", self.addr.port())
    }
}

/// Every instance of the fleet with its listener, bound here: the gateway at `port`, the
/// services' replicas on the ports after it (or on free ports when `port` is 0). `up` hands each
/// instance its socket, so the port printed is the port served and no other process can take it
/// in between.
///
/// Only the gateway's port is the user's to choose; the others are internal (every process is
/// told every address, and `up` prints them), so one that cannot be bound is skipped for the
/// next free one rather than failing the fleet. SO_REUSEADDR (set by the chassis's `bind`)
/// does not cover every leftover: on Linux a port kept in TIME_WAIT by an outgoing connection,
/// whose socket had no SO_REUSEADDR, still refuses a listener, and such a port may well sit
/// right after the gateway's.
pub fn plan(
    replicas: &BTreeMap<String, u16>,
    host: IpAddr,
    port: u16,
) -> anyhow::Result<Vec<(Instance, TcpListener)>> {
    for name in replicas.keys() {
        if name != GATEWAY && !SERVICES.iter().any(|s| s.name == name) {
            bail!("--replicas names an unknown service {name:?}");
        }
    }
    let mut names: Vec<&str> = vec![GATEWAY];
    names.extend(SERVICES.iter().map(|s| s.name));
    let mut next = port;
    let mut planned = Vec::new();
    for name in names {
        let count = replicas.get(name).copied().unwrap_or(1);
        for replica in 1..=count.max(1) {
            let asked = SocketAddr::new(host, next);
            let listener = if planned.is_empty() || port == 0 {
                flotilla_chassis::server::bind(asked)
                    .with_context(|| format!("binding {name}#{replica} to {asked}"))?
            } else {
                bind_from(host, next)
                    .with_context(|| format!("binding {name}#{replica} from {asked} upwards"))?
            };
            let addr = listener.local_addr()?;
            if port != 0 {
                next = addr.port().checked_add(1).context("ran out of ports")?;
            }
            planned.push((
                Instance {
                    service: name.to_owned(),
                    replica,
                    addr,
                },
                listener,
            ));
        }
    }
    Ok(planned)
}

/// Ports tried upwards for an internal listener before the system is asked for any free one.
const PORTS_TRIED: u16 = 64;

/// A listener on the first port from `from` upwards that binds; after [`PORTS_TRIED`] refusals,
/// on a port the system picks.
fn bind_from(host: IpAddr, from: u16) -> std::io::Result<TcpListener> {
    let mut last = None;
    for port in (from..=u16::MAX).take(usize::from(PORTS_TRIED)) {
        match flotilla_chassis::server::bind(SocketAddr::new(host, port)) {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(err),
        }
    }
    flotilla_chassis::server::bind(SocketAddr::new(host, 0)).map_err(|err| last.unwrap_or(err))
}

/// Runs the fleet until a signal; returns when every instance has stopped. Unless
/// `export_configured` (an OTLP endpoint is set by flag, configuration or `OTEL_*`), every
/// instance but the gateways exports its spans to the first gateway's receiver, so that its
/// traces API and the ops console show whole traces across the processes.
pub async fn up(
    config_file: Option<&Path>,
    common: &Common,
    settings: &HostSettings,
    planned: Vec<(Instance, TcpListener)>,
    export_configured: bool,
) -> anyhow::Result<()> {
    // Checked here, once, rather than by every instance it would start (each would fail alike).
    if !cfg!(feature = "nats") {
        bail!(
            "flotilla up runs every service in its own process, sharing events over NATS, and this \
             flotilla was built without it: `cargo build --release --features fleet` (or \
             `cargo run --release --features fleet -- up ...`)"
        );
    }
    if settings.nats_url.is_none() {
        bail!(
            "flotilla up runs every service in its own process; events between them need NATS: give --nats-url"
        );
    }
    let secret =
        crate::secret::load_or_create(settings.service_secret.as_deref(), &settings.data_dir)?;
    crate::host::claim_cluster(settings, &secret).await?;
    let secret = String::from_utf8(secret).context("service secret is not UTF-8")?;
    let exe = std::env::current_exe().context("locating the flotilla binary")?;

    // Static discovery: every process is told every other service's instance URLs.
    let mut urls: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let instances: Vec<Instance> = planned.iter().map(|(i, _)| i.clone()).collect();
    for i in &instances {
        urls.entry(i.service.as_str()).or_default().push(i.url());
    }
    let spans_to_gateway = match &common.otlp_endpoint {
        Some(_) => None,
        None if export_configured => None,
        None => urls
            .get(GATEWAY)
            .and_then(|gateways| gateways.first())
            .map(|gateway| format!("{gateway}/api/gateway/otlp")),
    };
    let started = Instant::now();
    let mut children: Vec<(Instance, Child)> = Vec::new();
    for (instance, listener) in planned {
        let mut cmd = Command::new(&exe);
        if let Some(file) = config_file {
            cmd.arg("--config").arg(file);
        }
        cmd.arg("serve").arg(&instance.service);
        cmd.arg("--listen")
            .arg(format!("{}={}", instance.service, instance.addr));
        // The socket is the child's standard input (as inetd does): it accepts on the port
        // bound here, and our copy closes when `cmd` is dropped below.
        cmd.env("FLOTILLA_INHERITED_LISTENER", &instance.service)
            .stdin(Stdio::from(OwnedFd::from(listener)));
        cmd.arg("--data-dir").arg(&settings.data_dir);
        cmd.arg("--cluster").arg(&settings.cluster);
        cmd.arg("--discovery").arg(&settings.discovery);
        for (flag, value) in [
            ("--database-url", &settings.database_url),
            ("--nats-url", &settings.nats_url),
            ("--redis-url", &settings.redis_url),
            ("--database-prefix", &Some(settings.database_prefix.clone())),
        ] {
            if let Some(value) = value {
                cmd.arg(flag).arg(value);
            }
        }
        if settings.discovery == "static" {
            for (service, list) in &urls {
                if *service != instance.service && *service != GATEWAY {
                    cmd.arg("--remote")
                        .arg(format!("{service}={}", list.join(",")));
                }
            }
        }
        for (name, url) in &common.remote {
            if !urls.contains_key(name.as_str()) {
                cmd.arg("--remote").arg(format!("{name}={url}"));
            }
        }
        match (&common.otlp_endpoint, &spans_to_gateway) {
            (Some(endpoint), _) => {
                cmd.arg("--otlp-endpoint").arg(endpoint);
            }
            (None, Some(gateway)) if instance.service != GATEWAY => {
                cmd.arg("--otlp-endpoint").arg(gateway);
            }
            _ => {}
        }
        // One telemetry database, for the first gateway (which gathers the fleet's spans when
        // the others export to it): processes sharing a file would read back each other's.
        cmd.env_remove("FLOTILLA_TELEMETRY__DB");
        if let Some(path) = &common.telemetry_db
            && instance.service == GATEWAY
            && instance.replica == 1
        {
            cmd.arg("--telemetry-db").arg(path);
        }
        // One address cannot serve every instance: each serves its own series on its own
        // listener's `/metrics` (README, "Metrics").
        cmd.env_remove("FLOTILLA_METRICS_LISTEN");
        cmd.env("FLOTILLA_SERVICE_SECRET", &secret)
            .env("FLOTILLA_INSTANCE", instance.label())
            .env(crate::signal::PARENT_PID, std::process::id().to_string())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}#{}", instance.service, instance.replica))?;
        drop(cmd);
        children.push((instance, child));
    }

    // Ctrl-C during start-up stops the fleet as it would later.
    let signal = crate::signal::wait();
    tokio::pin!(signal);
    let http = crate::probe::Probe::new();
    let late = tokio::select! {
        _ = &mut signal => return stop_all(children).await,
        late = wait_ready(&http, &mut children) => late,
    };
    if children.is_empty() {
        bail!("every instance exited during start-up (their errors are above)");
    }
    crate::notice!(
        "{:<14} {:<8} {:<24} {:>8}",
        "SERVICE",
        "REPLICA",
        "ADDRESS",
        "PID"
    );
    for (i, child) in &children {
        crate::notice!(
            "{:<14} {:<8} {:<24} {:>8}",
            i.service,
            i.replica,
            i.url(),
            child.id().unwrap_or(0)
        );
    }
    if late.is_empty() {
        let gateway = children
            .iter()
            .find(|(i, _)| i.service == GATEWAY)
            .map(|(i, _)| i.url())
            .unwrap_or_default();
        crate::notice!(
            "Fleet ready in {} ms: open {gateway}/",
            started.elapsed().as_millis()
        );
    } else {
        crate::notice!(
            "Fleet started, but not ready after {} s: {}",
            READY_WITHIN.as_secs(),
            late.join(", ")
        );
    }
    supervise(children, signal).await
}

/// How long `up` waits for every instance to be ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Polls every instance's probe until all are ready or [`READY_WITHIN`] passes. An instance
/// that exits meanwhile is reported and dropped from `children` at once (not waited for).
/// Returns the instances still alive but not ready.
async fn wait_ready(
    http: &crate::probe::Probe,
    children: &mut Vec<(Instance, Child)>,
) -> Vec<String> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut ready: BTreeSet<String> = BTreeSet::new();
    loop {
        children.retain_mut(|(instance, child)| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                report_exit(instance, &status.to_string(), " during start-up");
                false
            }
            Err(e) => {
                report_exit(instance, &e.to_string(), " during start-up");
                false
            }
        });
        for (instance, _) in children.iter() {
            if ready.contains(&instance.label()) {
                continue;
            }
            let probe = if instance.service == GATEWAY {
                "healthz"
            } else {
                "readyz"
            };
            let ok = http
                .get(&format!("{}/{probe}", instance.url()))
                .await
                .is_ok_and(|status| status.is_success());
            if ok {
                ready.insert(instance.label());
            }
        }
        let late: Vec<String> = children
            .iter()
            .map(|(i, _)| i.label())
            .filter(|label| !ready.contains(label))
            .collect();
        if late.is_empty() || Instant::now() >= deadline {
            return late;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Says that `instance` exited (`when`: "" or " during start-up"), and that `up` does not
/// replace it.
fn report_exit(instance: &Instance, status: &str, when: &str) {
    crate::notice!(
        "{} exited{when} ({status}); not restarting it",
        instance.label()
    );
}

/// Waits for `signal`, reporting instances that die; then stops them all. Fails when every
/// instance died.
async fn supervise(
    mut children: Vec<(Instance, Child)>,
    mut signal: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<()> {
    loop {
        let outcome = {
            let exits =
                futures::future::select_all(children.iter_mut().map(|(_, c)| Box::pin(c.wait())));
            tokio::select! {
                _ = &mut signal => None,
                (status, index, _) = exits => Some((status, index)),
            }
        };
        let Some((status, index)) = outcome else {
            break;
        };
        let (instance, _) = children.remove(index);
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        report_exit(&instance, &status, "");
        if children.is_empty() {
            bail!("every instance has exited");
        }
    }
    stop_all(children).await
}

/// Stops every instance: SIGTERM, then SIGKILL for those still running after 15 s.
async fn stop_all(mut children: Vec<(Instance, Child)>) -> anyhow::Result<()> {
    crate::notice!("stopping {} instances", children.len());
    for (_, child) in &children {
        if let Some(pid) = child.id() {
            crate::signal::terminate(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for (instance, child) in &mut children {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, child.wait()).await.is_err() {
            crate::notice!("{} did not stop in time; killing it", instance.label());
            let _ = child.kill().await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_ports_are_distinct_even_when_chosen_by_the_system() {
        let replicas: BTreeMap<String, u16> = ["catalog", "cart", "orders", "notifications"]
            .into_iter()
            .map(|s| (s.to_owned(), 25))
            .collect();
        let host: IpAddr = "127.0.0.1".parse().expect("ip");
        for _ in 0..5 {
            let plan = plan(&replicas, host, 0).expect("plan");
            let ports: BTreeSet<u16> = plan.iter().map(|(i, _)| i.addr.port()).collect();
            assert_eq!(ports.len(), plan.len(), "a port planned twice");
        }
    }

    #[test]
    fn a_fixed_port_numbers_the_instances_upwards_and_unknown_services_are_refused() {
        let host: IpAddr = "127.0.0.1".parse().expect("ip");
        let replicas = BTreeMap::from([("cart".to_owned(), 2)]);
        // Eleven consecutive free ports: another process may hold one, so try a few bases.
        let plan = (0..10)
            .find_map(|_| {
                let base = TcpListener::bind((host, 0)).ok()?.local_addr().ok()?.port();
                plan(&replicas, host, base).ok()
            })
            .expect("a free run of ports");
        assert_eq!(plan[0].0.service, GATEWAY);
        let ports: Vec<u16> = plan.iter().map(|(i, _)| i.addr.port()).collect();
        assert_eq!(ports[0], plan[0].0.addr.port());
        assert!(ports.windows(2).all(|w| w[1] > w[0]), "{ports:?}");
        for (instance, listener) in &plan {
            assert_eq!(listener.local_addr().expect("addr"), instance.addr);
        }
        assert_eq!(plan.iter().filter(|(i, _)| i.service == "cart").count(), 2);
        let unknown = BTreeMap::from([("carts".to_owned(), 2)]);
        assert!(super::plan(&unknown, host, 0).is_err());
    }

    #[test]
    fn a_port_already_taken_stops_the_plan_and_is_named() {
        let host: IpAddr = "127.0.0.1".parse().expect("ip");
        let taken = TcpListener::bind((host, 0)).expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let err = plan(&BTreeMap::new(), host, port).expect_err("port in use");
        assert!(
            format!("{err:#}").contains(&format!("gateway#1 to 127.0.0.1:{port}")),
            "{err:#}"
        );
    }

    /// A port in TIME_WAIT after an outgoing connection (its socket without SO_REUSEADDR, as
    /// most clients' are) refuses a listener even with SO_REUSEADDR; right after the gateway's
    /// port, it must not fail the fleet: the service goes to the next free port.
    #[test]
    fn a_port_in_time_wait_after_the_gateway_is_skipped() {
        let host: IpAddr = "127.0.0.1".parse().expect("ip");
        let target = TcpListener::bind((host, 0)).expect("bind");
        let plan = (0..20)
            .find_map(|_| {
                // A client bound to a port of its own, closing first: TIME_WAIT is its side.
                let client = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::STREAM,
                    Some(socket2::Protocol::TCP),
                )
                .ok()?;
                client.bind(&SocketAddr::new(host, 0).into()).ok()?;
                let waiting = client.local_addr().ok()?.as_socket()?.port();
                client.connect(&target.local_addr().ok()?.into()).ok()?;
                let (accepted, _) = target.accept().ok()?;
                drop(client);
                drop(accepted);
                // The bug's condition: the port refuses a listener (it may not on every kernel).
                if flotilla_chassis::server::bind(SocketAddr::new(host, waiting)).is_ok() {
                    return None;
                }
                let gateway = waiting.checked_sub(1)?;
                TcpListener::bind((host, gateway)).ok()?;
                Some((waiting, plan(&BTreeMap::new(), host, gateway)))
            })
            .expect("a port in TIME_WAIT with a free port below it");
        let (waiting, plan) = plan;
        let plan = plan.expect("the fleet is planned around the port in TIME_WAIT");
        assert_eq!(
            plan[0].0.addr.port(),
            waiting - 1,
            "the gateway keeps its port"
        );
        let ports: BTreeSet<u16> = plan.iter().map(|(i, _)| i.addr.port()).collect();
        assert_eq!(ports.len(), plan.len(), "a port planned twice");
        assert!(!ports.contains(&waiting), "{waiting} is in TIME_WAIT");
    }
}
