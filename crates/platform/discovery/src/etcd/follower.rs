//! Following one service's directory: a snapshot, then a WATCH from the snapshot's revision,
//! and a fresh snapshot whenever the watch breaks.

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

use super::{Backoff, closed, unavailable, within};
use crate::{DiscoveryError, instance_list, publish};

/// Keeps one service's watch channel in step with its etcd directory.
pub(super) struct Follower {
    client: Client,
    directory: String,
    limit: Duration,
    /// key → url
    instances: BTreeMap<String, String>,
    /// The store revision the snapshot was read at.
    revision: i64,
}

impl Follower {
    /// Reads `directory` once: the receiver's first value.
    pub(super) async fn start(
        client: Client,
        directory: String,
        limit: Duration,
    ) -> Result<Self, DiscoveryError> {
        let mut follower = Self {
            client,
            directory,
            limit,
            instances: BTreeMap::new(),
            revision: 0,
        };
        follower.snapshot().await?;
        Ok(follower)
    }

    async fn snapshot(&mut self) -> Result<(), DiscoveryError> {
        let options = GetOptions::new().with_prefix();
        let response = within(
            self.limit,
            self.client.get(self.directory.as_str(), Some(options)),
        )
        .await?;
        self.instances = response
            .kvs()
            .iter()
            .filter_map(|kv| {
                Some((
                    kv.key_str().ok()?.to_owned(),
                    kv.value_str().ok()?.to_owned(),
                ))
            })
            .collect();
        self.revision = response.header().map_or(0, |h| h.revision());
        Ok(())
    }

    pub(super) fn urls(&self) -> Vec<String> {
        instance_list(self.instances.values().cloned())
    }

    /// Follows the directory until every receiver is gone, reconnecting when the watch breaks.
    pub(super) async fn run(mut self, tx: watch::Sender<Vec<String>>) {
        let mut retry = Backoff::default();
        loop {
            let error = tokio::select! {
                _ = tx.closed() => return,
                error = self.follow(&tx, &mut retry) => error,
            };
            tracing::warn!(directory = %self.directory, %error, "etcd watch interrupted; reconnecting");
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(retry.next_delay()) => {}
                }
                match self.snapshot().await {
                    Ok(()) => {
                        publish(&tx, self.urls());
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(directory = %self.directory, %error, "etcd still unavailable");
                    }
                }
            }
        }
    }

    /// Applies watch events from just after the snapshot on; returns why the watch ended.
    async fn follow(
        &mut self,
        tx: &watch::Sender<Vec<String>>,
        retry: &mut Backoff,
    ) -> DiscoveryError {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.revision + 1);
        let opened = within(
            self.limit,
            self.client.watch(self.directory.as_str(), Some(options)),
        )
        .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => return error,
        };
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return closed("watch"),
                Err(error) => return unavailable(error),
            };
            if response.canceled() {
                // Compacted past our revision, or the server is going away: read afresh.
                return unavailable(format!("watch cancelled: {}", response.cancel_reason()));
            }
            retry.reset();
            for event in response.events() {
                let Some((key, url)) = event
                    .kv()
                    .and_then(|kv| Some((kv.key_str().ok()?, kv.value_str().ok()?)))
                else {
                    continue;
                };
                match event.event_type() {
                    EventType::Put => self.instances.insert(key.to_owned(), url.to_owned()),
                    EventType::Delete => self.instances.remove(key),
                };
            }
            publish(tx, self.urls());
        }
    }
}
