//! `flotilla status`: the services, their instances as discovery reports them, and the health of
//! each (its `/readyz`), as one table.

use std::time::{Duration, Instant};

use crate::host::{GATEWAY, SERVICES};
use crate::settings::HostSettings;

/// Prints the table; returns false when some instance is not ready.
pub async fn status(settings: &HostSettings) -> anyhow::Result<bool> {
    let discovery = crate::host::discovery_for(settings).await?;
    let http = crate::probe::Probe::new();
    let mut names: Vec<&str> = vec![GATEWAY];
    names.extend(SERVICES.iter().map(|s| s.name));
    crate::report!(
        "{:<14} {:<40} {:<10} {:>8}",
        "SERVICE",
        "INSTANCE",
        "HEALTH",
        "LATENCY"
    );
    let mut all_ready = true;
    let mut found = 0;
    for name in names {
        let mut rx = discovery.watch(name).await?;
        // A fresh watch may still be loading: give it a moment to report something.
        if rx.borrow().is_empty() {
            let _ = tokio::time::timeout(Duration::from_millis(500), rx.changed()).await;
        }
        let instances = rx.borrow().clone();
        if instances.is_empty() {
            crate::report!("{name:<14} {:<40} {:<10} {:>8}", "-", "none", "-");
            continue;
        }
        found += instances.len();
        for url in instances {
            let probe = if name == GATEWAY { "healthz" } else { "readyz" };
            let started = Instant::now();
            let health = match http.get(&format!("{url}/{probe}")).await {
                Ok(status) if status.is_success() => "ready".to_owned(),
                Ok(status) => format!("{}", status.as_u16()),
                Err(_) => "down".to_owned(),
            };
            all_ready &= health == "ready";
            crate::report!(
                "{name:<14} {url:<40} {health:<10} {:>6}ms",
                started.elapsed().as_millis()
            );
        }
    }
    if found == 0 {
        // Nothing to look at is not "all ready": a one-process `flotilla run` registers nowhere.
        crate::report!(
            "no instance found through discovery ({}); a one-process `flotilla run` is not in \
             discovery: probe it with `curl http://127.0.0.1:8080/readyz`",
            settings.discovery
        );
        return Ok(false);
    }
    Ok(all_ready)
}
