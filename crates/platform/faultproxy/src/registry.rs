//! The proxies of one fault proxy and their toxics: what the HTTP API and in-process tests
//! change. Each enabled proxy owns a listener and an accept loop; its connections watch the
//! proxy's toxic list, so a toxic added or removed reaches the live connections at once.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::link::{self, Slot, Toxics};
use crate::toxic::{Toxic, validate_name};

/// A proxy as the API shows it (Toxiproxy's fields).
#[derive(Debug, Clone, Serialize)]
pub struct ProxyInfo {
    /// Its name.
    pub name: String,
    /// The address it listens on: the bound address once bound (port 0 resolved).
    pub listen: String,
    /// Where its connections go.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
    /// Its toxics, in the order they act.
    pub toxics: Vec<Toxic>,
}

/// A change to a proxy: fields left `None` stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ProxyUpdate {
    /// Enable (listen again on the same address) or disable (close every connection, refuse
    /// new ones).
    pub enabled: Option<bool>,
    /// A new upstream; the proxy's connections are closed, as Toxiproxy does.
    pub upstream: Option<String>,
}

/// How much one fault proxy may hold. Each proxy is a listening socket and each of its
/// connections two more (the client's and the upstream's), so without caps an API client could
/// create proxies or open connections until the process runs out of file descriptors, and
/// every later failure would look like a bad request. A request over a cap is refused with a
/// problem that names the cap; a connection over its proxy's cap is closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Proxies at most (default [`Limits::PROXIES`]).
    pub proxies: usize,
    /// Toxics per proxy at most (default [`Limits::TOXICS_PER_PROXY`]).
    pub toxics_per_proxy: usize,
    /// Open connections per proxy at most (default [`Limits::CONNECTIONS_PER_PROXY`]).
    pub connections_per_proxy: usize,
}

impl Limits {
    /// Far more proxies than one test or fleet puts links in.
    pub const PROXIES: usize = 256;
    /// Far more toxics than a fault scenario stacks on one link (there are seven types).
    pub const TOXICS_PER_PROXY: usize = 32;
    /// A connection pool's worth and more; 256 proxies at this cap need about 2^19
    /// descriptors, so a process with a lower file limit meets the fd problem (503) first.
    pub const CONNECTIONS_PER_PROXY: usize = 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            proxies: Self::PROXIES,
            toxics_per_proxy: Self::TOXICS_PER_PROXY,
            connections_per_proxy: Self::CONNECTIONS_PER_PROXY,
        }
    }
}

/// Many proxies, each with its toxics; cheap to clone (one shared registry).
#[derive(Clone, Default)]
pub struct FaultProxy {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    proxies: Mutex<BTreeMap<String, Entry>>,
    next_id: AtomicU64,
    limits: Limits,
}

struct Entry {
    name: String,
    /// The address asked for (port 0 allowed).
    listen: String,
    /// The address bound, kept when disabled so that enabling again listens where the
    /// clients were told to connect.
    bound: Option<SocketAddr>,
    upstream: Arc<str>,
    enabled: bool,
    toxics: watch::Sender<Toxics>,
    running: Option<(CancellationToken, JoinHandle<()>)>,
    /// Open connections at most (see [`Limits::connections_per_proxy`]).
    max_connections: usize,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some((token, _)) = self.running.take() {
            token.cancel();
        }
    }
}

impl Entry {
    fn info(&self) -> ProxyInfo {
        ProxyInfo {
            name: self.name.clone(),
            listen: self
                .bound
                .map_or_else(|| self.listen.clone(), |a| a.to_string()),
            upstream: self.upstream.to_string(),
            enabled: self.enabled,
            toxics: self
                .toxics
                .borrow()
                .iter()
                .map(|s| s.toxic.clone())
                .collect(),
        }
    }

    /// Binds (the bound address again when there is one) and starts accepting.
    async fn start(&mut self) -> Result<(), Error> {
        let addr = self
            .bound
            .map_or_else(|| self.listen.clone(), |a| a.to_string());
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| Error::Listen {
                addr: addr.clone(),
                source,
            })?;
        self.bound = Some(listener.local_addr().map_err(|source| Error::Listen {
            addr: addr.clone(),
            source,
        })?);
        let token = CancellationToken::new();
        let task = tokio::spawn(accept(
            listener,
            self.upstream.clone(),
            self.toxics.subscribe(),
            Arc::new(Semaphore::new(
                self.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            token.clone(),
        ));
        self.running = Some((token, task));
        Ok(())
    }

    /// Closes every connection and the listener; returns once the port is free.
    async fn stop(&mut self) {
        if let Some((token, task)) = self.running.take() {
            token.cancel();
            let _ = task.await;
        }
    }
}

/// The first pause after a failed accept, and the longest.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// The pause after `failures` accepts failed in a row: doubling from the first to the longest.
fn accept_backoff(failures: u32) -> Duration {
    let (first, longest) = ACCEPT_BACKOFF;
    first
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(longest)
}

async fn accept(
    listener: TcpListener,
    upstream: Arc<str>,
    toxics: watch::Receiver<Toxics>,
    connections: Arc<Semaphore>,
    token: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                failures = 0;
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    // Over the cap: closed at once, so the client fails fast and the
                    // process keeps its descriptors.
                    tracing::warn!(%peer, "fault proxy at its connection limit; connection closed");
                    continue;
                };
                let _ = client.set_nodelay(true);
                let upstream = upstream.clone();
                let (toxics, closed) = (toxics.clone(), token.child_token());
                tokio::spawn(async move {
                    link::serve(client, upstream, toxics, closed).await;
                    drop(permit);
                });
            }
            Err(err) => {
                // Out of file descriptors, most likely (EMFILE/ENFILE): the pending connection
                // stays in the backlog and accept fails again at once, so wait, longer each
                // time, rather than spin; a connection that ends frees a descriptor.
                failures = failures.saturating_add(1);
                let pause = accept_backoff(failures);
                if failures == 1 || pause == ACCEPT_BACKOFF.1 {
                    tracing::warn!(error = %err, ?pause, "fault proxy cannot accept");
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// An upstream is `HOST:PORT`, resolved at each connection (so a name may move).
fn validate_addr(field: &str, addr: &str) -> Result<(), Error> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{addr:?} is not HOST:PORT")))
    }
}

impl FaultProxy {
    /// An empty fault proxy with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty fault proxy with these limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            inner: Arc::new(Registry {
                limits,
                ..Registry::default()
            }),
        }
    }

    /// Its limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Every proxy, by name.
    pub async fn list(&self) -> Vec<ProxyInfo> {
        let proxies = self.inner.proxies.lock().await;
        proxies.values().map(Entry::info).collect()
    }

    /// One proxy.
    pub async fn get(&self, name: &str) -> Result<ProxyInfo, Error> {
        let proxies = self.inner.proxies.lock().await;
        proxies
            .get(name)
            .map(Entry::info)
            .ok_or_else(|| no_proxy(name))
    }

    /// Creates a proxy from `listen` (port 0 allowed) to `upstream`, listening at once when
    /// `enabled`.
    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        enabled: bool,
    ) -> Result<ProxyInfo, Error> {
        validate_name("name", name)?;
        validate_addr("listen", listen)?;
        validate_addr("upstream", upstream)?;
        let mut proxies = self.inner.proxies.lock().await;
        if proxies.contains_key(name) {
            return Err(Error::Conflict(format!("a proxy named {name:?} exists")));
        }
        let max = self.inner.limits.proxies;
        if proxies.len() >= max {
            return Err(Error::LimitReached {
                limit: max,
                detail: format!(
                    "the fault proxy holds its maximum of {max} proxies; delete one first \
                     (`flotilla proxy --max-proxies` raises the limit)"
                ),
            });
        }
        let (toxics, _) = watch::channel(Arc::new(Vec::new()));
        let mut entry = Entry {
            name: name.to_owned(),
            listen: listen.to_owned(),
            bound: None,
            upstream: upstream.into(),
            enabled,
            toxics,
            running: None,
            max_connections: self.inner.limits.connections_per_proxy,
        };
        if enabled {
            entry.start().await?;
        }
        let info = entry.info();
        proxies.insert(name.to_owned(), entry);
        tracing::info!(proxy = name, listen = %info.listen, upstream, "proxy created");
        Ok(info)
    }

    /// Enables, disables or re-points a proxy.
    pub async fn update(&self, name: &str, update: ProxyUpdate) -> Result<ProxyInfo, Error> {
        if let Some(upstream) = &update.upstream {
            validate_addr("upstream", upstream)?;
        }
        let mut proxies = self.inner.proxies.lock().await;
        let entry = proxies.get_mut(name).ok_or_else(|| no_proxy(name))?;
        if let Some(upstream) = update.upstream
            && *upstream != *entry.upstream
        {
            entry.stop().await;
            entry.upstream = upstream.into();
            if entry.enabled
                && let Err(err) = entry.start().await
            {
                // The port was taken meanwhile: the proxy stays, disabled, and says so.
                entry.enabled = false;
                return Err(err);
            }
        }
        match update.enabled {
            Some(true) if !entry.enabled => {
                entry.start().await?;
                entry.enabled = true;
            }
            Some(false) if entry.enabled => {
                entry.stop().await;
                entry.enabled = false;
            }
            _ => {}
        }
        Ok(entry.info())
    }

    /// Deletes a proxy, closing its connections and its listener.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let mut proxies = self.inner.proxies.lock().await;
        let mut entry = proxies.remove(name).ok_or_else(|| no_proxy(name))?;
        entry.stop().await;
        Ok(())
    }

    /// Enables every proxy and removes every toxic (Toxiproxy's reset).
    pub async fn reset(&self) -> Result<(), Error> {
        let mut proxies = self.inner.proxies.lock().await;
        for entry in proxies.values_mut() {
            entry.toxics.send_replace(Arc::new(Vec::new()));
            if !entry.enabled {
                entry.start().await?;
                entry.enabled = true;
            }
        }
        Ok(())
    }

    /// A proxy's toxics.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, Error> {
        Ok(self.get(proxy).await?.toxics)
    }

    /// One toxic.
    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<Toxic, Error> {
        self.toxics(proxy)
            .await?
            .into_iter()
            .find(|t| t.name == toxic)
            .ok_or_else(|| no_toxic(proxy, toxic))
    }

    /// Adds a toxic after the others; it acts on live connections from now on.
    pub async fn add_toxic(&self, proxy: &str, toxic: Toxic) -> Result<Toxic, Error> {
        toxic.validate()?;
        let proxies = self.inner.proxies.lock().await;
        let entry = proxies.get(proxy).ok_or_else(|| no_proxy(proxy))?;
        if entry
            .toxics
            .borrow()
            .iter()
            .any(|s| s.toxic.name == toxic.name)
        {
            return Err(Error::Conflict(format!(
                "proxy {proxy:?} has a toxic named {:?}",
                toxic.name
            )));
        }
        let max = self.inner.limits.toxics_per_proxy;
        if entry.toxics.borrow().len() >= max {
            return Err(Error::LimitReached {
                limit: max,
                detail: format!(
                    "proxy {proxy:?} has its maximum of {max} toxics; remove one first \
                     (`flotilla proxy --max-toxics` raises the limit)"
                ),
            });
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        entry.toxics.send_modify(|list| {
            let mut next = list.as_ref().clone();
            next.push(Slot {
                id,
                generation: 0,
                toxic: toxic.clone(),
            });
            *list = Arc::new(next);
        });
        tracing::info!(proxy, toxic = %toxic.name, kind = toxic.kind.type_name(), "toxic added");
        Ok(toxic)
    }

    /// Changes a toxic with `change` (which may refuse); connections draw its toxicity again.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        name: &str,
        change: impl FnOnce(&Toxic) -> Result<Toxic, Error>,
    ) -> Result<Toxic, Error> {
        let proxies = self.inner.proxies.lock().await;
        let entry = proxies.get(proxy).ok_or_else(|| no_proxy(proxy))?;
        let current = entry
            .toxics
            .borrow()
            .iter()
            .find(|s| s.toxic.name == name)
            .cloned()
            .ok_or_else(|| no_toxic(proxy, name))?;
        let next = change(&current.toxic)?;
        next.validate()?;
        if next.name != name || next.stream != current.toxic.stream {
            return Err(Error::invalid(
                "name",
                "a toxic's name and stream cannot be changed",
            ));
        }
        entry.toxics.send_modify(|list| {
            let mut updated = list.as_ref().clone();
            for slot in &mut updated {
                if slot.id == current.id {
                    slot.toxic = next.clone();
                    slot.generation += 1;
                }
            }
            *list = Arc::new(updated);
        });
        Ok(next)
    }

    /// Removes a toxic; the data it held moves on at once.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), Error> {
        let proxies = self.inner.proxies.lock().await;
        let entry = proxies.get(proxy).ok_or_else(|| no_proxy(proxy))?;
        if !entry.toxics.borrow().iter().any(|s| s.toxic.name == name) {
            return Err(no_toxic(proxy, name));
        }
        entry.toxics.send_modify(|list| {
            let kept = list.iter().filter(|s| s.toxic.name != name).cloned();
            *list = Arc::new(kept.collect());
        });
        tracing::info!(proxy, toxic = name, "toxic removed");
        Ok(())
    }

    /// Creates a proxy named `name` on a free local port to `upstream` and returns a handle
    /// for tests: `proxy.addr()` is where to connect instead of the upstream.
    pub async fn proxy(&self, name: &str, upstream: &str) -> Result<Proxy, Error> {
        let info = self.create(name, "127.0.0.1:0", upstream, true).await?;
        let addr = info.listen.parse().map_err(|_| {
            Error::invalid(
                "listen",
                format!("bound to {:?}, not an address", info.listen),
            )
        })?;
        Ok(Proxy {
            fault_proxy: self.clone(),
            name: name.to_owned(),
            addr,
        })
    }
}

fn no_proxy(name: &str) -> Error {
    Error::NotFound(format!("no proxy named {name:?}"))
}

fn no_toxic(proxy: &str, name: &str) -> Error {
    Error::NotFound(format!("proxy {proxy:?} has no toxic named {name:?}"))
}

/// One proxy, for tests that put it on a link in-process; it keeps its fault proxy alive.
#[derive(Clone)]
pub struct Proxy {
    fault_proxy: FaultProxy,
    name: String,
    addr: SocketAddr,
}

impl Proxy {
    /// Where clients connect (the listen address, bound).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fault proxy it belongs to.
    pub fn fault_proxy(&self) -> &FaultProxy {
        &self.fault_proxy
    }

    /// Adds a toxic (see [`FaultProxy::add_toxic`]).
    pub async fn add_toxic(&self, toxic: Toxic) -> Result<Toxic, Error> {
        self.fault_proxy.add_toxic(&self.name, toxic).await
    }

    /// Replaces a toxic's attributes and toxicity (see [`FaultProxy::update_toxic`]).
    pub async fn update_toxic(&self, toxic: Toxic) -> Result<Toxic, Error> {
        let name = toxic.name.clone();
        self.fault_proxy
            .update_toxic(&self.name, &name, |_| Ok(toxic))
            .await
    }

    /// Removes a toxic (see [`FaultProxy::remove_toxic`]).
    pub async fn remove_toxic(&self, name: &str) -> Result<(), Error> {
        self.fault_proxy.remove_toxic(&self.name, name).await
    }

    /// Enables or disables the proxy (see [`ProxyUpdate::enabled`]).
    pub async fn set_enabled(&self, enabled: bool) -> Result<(), Error> {
        let update = ProxyUpdate {
            enabled: Some(enabled),
            upstream: None,
        };
        self.fault_proxy.update(&self.name, update).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backs_off_doubling_to_a_second() {
        let pauses: Vec<Duration> = (1..=9).map(accept_backoff).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(pauses[6], Duration::from_millis(640));
        assert_eq!(pauses[7], Duration::from_secs(1));
        assert_eq!(accept_backoff(u32::MAX), Duration::from_secs(1));
    }
}
