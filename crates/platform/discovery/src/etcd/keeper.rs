//! Keeping one registration alive: the lease, its renewals, and putting the key back when the
//! lease was lost.

use etcd_client::{Client, PutOptions};
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

use super::{Backoff, closed, within};
use crate::DiscoveryError;
use crate::registration::{EndSignal, Ending};

/// Keeps one instance's key alive.
pub(super) struct Keeper {
    client: Client,
    key: String,
    url: String,
    ttl_seconds: i64,
    renew_every: Duration,
    limit: Duration,
    lease: i64,
}

/// Why renewing over one keep-alive stream stopped.
enum Interruption {
    /// etcd no longer knows the lease: the key is gone and must be put again.
    LeaseLost,
    /// The stream failed; the lease may still be alive.
    Failed(DiscoveryError),
}

impl Keeper {
    /// Puts `key` = `url` under a lease of `ttl`: the instance is registered when this returns.
    pub(super) async fn register(
        client: Client,
        key: String,
        url: String,
        ttl: Duration,
        limit: Duration,
    ) -> Result<Self, DiscoveryError> {
        let mut keeper = Self {
            client,
            key,
            url,
            // etcd counts whole seconds; round up so an instance never expires early.
            ttl_seconds: i64::try_from(ttl.as_millis().div_ceil(1000))
                .unwrap_or(i64::MAX)
                .max(1),
            renew_every: ttl / 3,
            limit,
            lease: 0,
        };
        keeper.lease = keeper.announce().await?;
        Ok(keeper)
    }

    /// Grants a fresh lease and puts the key under it; returns the lease.
    async fn announce(&mut self) -> Result<i64, DiscoveryError> {
        let lease = within(self.limit, self.client.lease_grant(self.ttl_seconds, None))
            .await?
            .id();
        let put = PutOptions::new().with_lease(lease);
        within(
            self.limit,
            self.client
                .put(self.key.as_str(), self.url.as_str(), Some(put)),
        )
        .await?;
        Ok(lease)
    }

    /// Renews until the registration ends, then removes the key if it was deregistered.
    pub(super) async fn run(mut self, end: EndSignal) {
        let ending = tokio::select! {
            ending = end.ended() => ending,
            never = self.keep_alive() => match never {},
        };
        if ending == Ending::Deregister {
            self.remove().await;
        }
    }

    /// Renews the lease forever, announcing the key again whenever the lease was lost.
    async fn keep_alive(&mut self) -> Infallible {
        let mut retry = Backoff::default();
        let mut lost = false;
        loop {
            if lost {
                match self.announce().await {
                    Ok(lease) => {
                        tracing::info!(key = %self.key, "lease was lost; registered again");
                        self.lease = lease;
                        lost = false;
                    }
                    Err(error) => {
                        tracing::warn!(key = %self.key, %error, "etcd registration failed; retrying");
                        tokio::time::sleep(retry.next_delay()).await;
                        continue;
                    }
                }
            }
            match self.renew(&mut retry).await {
                Interruption::LeaseLost => lost = true,
                Interruption::Failed(error) => {
                    tracing::warn!(key = %self.key, %error, "etcd keep-alive interrupted; retrying");
                    tokio::time::sleep(retry.next_delay()).await;
                }
            }
        }
    }

    /// Renews the lease every `renew_every` over one keep-alive stream until something breaks.
    async fn renew(&mut self, retry: &mut Backoff) -> Interruption {
        let opened = within(self.limit, self.client.lease_keep_alive(self.lease)).await;
        let (mut keeper, mut responses) = match opened {
            Ok(stream) => stream,
            Err(error) => return Interruption::Failed(error),
        };
        let mut tick = tokio::time::interval(self.renew_every);
        // After a pause (SIGSTOP, a long GC-like stall) renew once at once, not once per miss.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = within(self.limit, keeper.keep_alive()).await {
                return Interruption::Failed(error);
            }
            match within(self.limit, responses.message()).await {
                Ok(Some(response)) if response.ttl() > 0 => retry.reset(),
                Ok(Some(_)) => return Interruption::LeaseLost,
                Ok(None) => return Interruption::Failed(closed("lease keep-alive")),
                Err(error) => return Interruption::Failed(error),
            }
        }
    }

    /// Removes the key now, then frees its lease. Deleting the key (rather than only revoking
    /// the lease) also covers a key put under a new lease by a re-announcement that was cut
    /// short. If etcd does not answer, the lease expires on its own.
    async fn remove(&mut self) {
        if let Err(error) = within(self.limit, self.client.delete(self.key.as_str(), None)).await {
            tracing::warn!(key = %self.key, %error, "could not deregister; the lease expires on its own");
            return;
        }
        // The lease may already be gone (it expired while we were paused): nothing to free.
        let _ = within(self.limit, self.client.lease_revoke(self.lease)).await;
    }
}
