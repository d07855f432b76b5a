//! The keyed registry of breakers: one per upstream, or one per instance of it, made on first
//! use, so that every breaker of a process can be listed with its state for the admin endpoint.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Breaker, BreakerConfig, BreakerSnapshot, InvalidBreakerConfig};

/// Breakers by service and instance (`None` for one per service).
type ByKey = BTreeMap<(String, Option<String>), Arc<Breaker>>;

/// The breakers of one process, one per upstream (or per instance), made on first use with the
/// same config, so the admin endpoint can list them all.
#[derive(Debug)]
pub struct Breakers {
    config: BreakerConfig,
    breakers: Mutex<ByKey>,
}

impl Breakers {
    /// An empty registry whose breakers get `config`.
    pub fn new(config: BreakerConfig) -> Result<Self, InvalidBreakerConfig> {
        config.validate()?;
        Ok(Self {
            config,
            breakers: Mutex::new(BTreeMap::new()),
        })
    }

    /// The breaker for calls to `service`.
    pub fn get(&self, service: &str) -> Arc<Breaker> {
        self.entry(service, None)
    }

    /// The breaker for calls to one instance of `service` (e.g. its base URL).
    pub fn get_instance(&self, service: &str, instance: &str) -> Arc<Breaker> {
        self.entry(service, Some(instance))
    }

    /// Forgets the breaker of an instance that is gone.
    pub fn forget_instance(&self, service: &str, instance: &str) {
        self.lock()
            .remove(&(service.to_owned(), Some(instance.to_owned())));
    }

    /// Every breaker's state and counters, ordered by service and instance.
    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        let breakers: Vec<Arc<Breaker>> = self.lock().values().cloned().collect();
        breakers.iter().map(|b| b.snapshot()).collect()
    }

    fn entry(&self, service: &str, instance: Option<&str>) -> Arc<Breaker> {
        let key = (service.to_owned(), instance.map(str::to_owned));
        Arc::clone(
            self.lock().entry(key).or_insert_with(|| {
                Arc::new(Breaker::closed(service, instance, self.config.clone()))
            }),
        )
    }

    fn lock(&self) -> MutexGuard<'_, ByKey> {
        // Insertions and removals are single statements: a panic elsewhere leaves the map whole.
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
