//! A cache of identity's public signing keys (its JWKS), fetched through identity's typed client.
//!
//! Keys are fetched on first use and again when a token names a key id the cache does not know
//! (identity rotated its key), at most once per `min_refresh_interval` so that a flood of tokens
//! with made-up key ids cannot turn the gateway into an amplifier against identity.

use flotilla_identity::client::IdentityClient;
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

/// The cached key set.
pub struct KeyCache {
    client: IdentityClient,
    keys: RwLock<Option<Arc<JwkSet>>>,
    last_fetch: Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
}

impl KeyCache {
    /// A cache that fetches through `client`.
    pub fn new(client: IdentityClient, min_refresh_interval: Duration) -> Self {
        Self {
            client,
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
            min_refresh_interval,
        }
    }

    /// The current keys, fetching them if none are cached yet.
    pub async fn current(&self) -> Option<Arc<JwkSet>> {
        if let Some(keys) = self.keys.read().await.clone() {
            return Some(keys);
        }
        self.refresh().await
    }

    /// Fetches the keys again unless that happened less than the minimum interval ago; returns
    /// what is cached afterwards.
    pub async fn refresh(&self) -> Option<Arc<JwkSet>> {
        let mut last = self.last_fetch.lock().await;
        let recently = last.is_some_and(|t| t.elapsed() < self.min_refresh_interval);
        let have = self.keys.read().await.clone();
        if recently && have.is_some() {
            return have;
        }
        *last = Some(Instant::now());
        match self.client.jwks().await {
            Ok(set) => {
                let set = Arc::new(set);
                *self.keys.write().await = Some(set.clone());
                Some(set)
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not fetch identity's signing keys");
                have
            }
        }
    }
}
