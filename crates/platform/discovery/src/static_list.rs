//! Discovery from configuration: each service's instances are the URLs it was given, plus the
//! instances registered through this value while their registrations last (an in-memory
//! registry, handy for tests and single-machine setups). Nothing here ever expires on its own:
//! a registration ends when it is deregistered or dropped.
//!
//! [`Pinned`] puts such a list in front of a live backend, so that a URL given on the command
//! line wins over what etcd or DNS say.

use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

use super::{
    Discovery, DiscoveryError, Registration, check_service, instance_list, normalize_url, publish,
};

/// Fixed instances per service, plus those registered in this process.
#[derive(Default)]
pub struct StaticDiscovery {
    // A std lock: held only to edit a map and send on a watch channel, never across an await.
    services: Arc<Mutex<BTreeMap<String, Entry>>>,
}

struct Entry {
    fixed: Vec<String>,
    registered: BTreeMap<u64, String>,
    next_id: u64,
    tx: watch::Sender<Vec<String>>,
}

impl Entry {
    fn new(fixed: Vec<String>) -> Self {
        let (tx, _) = watch::channel(instance_list(fixed.iter().cloned()));
        Self {
            fixed,
            registered: BTreeMap::new(),
            next_id: 0,
            tx,
        }
    }

    fn publish(&self) {
        let all = self.fixed.iter().chain(self.registered.values()).cloned();
        publish(&self.tx, instance_list(all));
    }
}

impl StaticDiscovery {
    /// Discovery serving `urls` (service → base URLs of its instances).
    pub fn new(urls: &BTreeMap<String, Vec<String>>) -> Result<Self, DiscoveryError> {
        let mut services = BTreeMap::new();
        for (service, list) in urls {
            check_service(service)?;
            let fixed = list
                .iter()
                .map(|url| normalize_url(url))
                .collect::<Result<Vec<_>, _>>()?;
            services.insert(service.clone(), Entry::new(fixed));
        }
        Ok(Self {
            services: Arc::new(Mutex::new(services)),
        })
    }

    fn with_entry<T>(
        services: &Mutex<BTreeMap<String, Entry>>,
        service: &str,
        f: impl FnOnce(&mut Entry) -> T,
    ) -> T {
        let mut map = services.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(service.to_owned())
            .or_insert_with(|| Entry::new(Vec::new()));
        f(entry)
    }
}

impl Discovery for StaticDiscovery {
    fn register<'a>(
        &'a self,
        service: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Registration, DiscoveryError>> {
        Box::pin(async move {
            check_service(service)?;
            let url = normalize_url(url)?;
            let id = Self::with_entry(&self.services, service, |entry| {
                let id = entry.next_id;
                entry.next_id += 1;
                entry.registered.insert(id, url.clone());
                entry.publish();
                id
            });
            let services = self.services.clone();
            let name = service.to_owned();
            // In memory there is no TTL to wait for: deregistered or abandoned, it goes at once.
            Ok(Registration::spawn(service, &url, move |end| async move {
                end.ended().await;
                Self::with_entry(&services, &name, |entry| {
                    entry.registered.remove(&id);
                    entry.publish();
                });
            }))
        })
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Vec<String>>, DiscoveryError>> {
        Box::pin(async move {
            check_service(service)?;
            Ok(Self::with_entry(&self.services, service, |entry| {
                entry.tx.subscribe()
            }))
        })
    }
}

/// A backend with some services pinned to configured URLs: `watch` answers those from the
/// configuration and every other service from the backend; `register` always goes to the
/// backend (this process's own instances are announced for others to find).
pub struct Pinned {
    fixed: StaticDiscovery,
    pinned: BTreeSet<String>,
    backend: Arc<dyn Discovery>,
}

impl Pinned {
    /// `backend`, except for the `pinned` services, which `fixed` answers.
    pub fn new(
        fixed: StaticDiscovery,
        pinned: impl IntoIterator<Item = String>,
        backend: Arc<dyn Discovery>,
    ) -> Self {
        Self {
            fixed,
            pinned: pinned.into_iter().collect(),
            backend,
        }
    }
}

impl Discovery for Pinned {
    fn register<'a>(
        &'a self,
        service: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Registration, DiscoveryError>> {
        self.backend.register(service, url)
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Vec<String>>, DiscoveryError>> {
        if self.pinned.contains(service) {
            self.fixed.watch(service)
        } else {
            self.backend.watch(service)
        }
    }
    fn claim_fingerprint<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, DiscoveryError>> {
        self.backend.claim_fingerprint(fingerprint)
    }
}
