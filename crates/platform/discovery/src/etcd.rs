//! Discovery through etcd (v3 API). Key layout, one key per live instance:
//!
//! ```text
//! /{prefix}/services/{service}/{instance-id}  =  {base url}     (attached to a TTL lease)
//! e.g. /flotilla/services/catalog/ins_019a…   =  http://10.0.0.7:9002
//! /{prefix}/fingerprint                       =  {cluster fingerprint}   (no lease: the
//!                                                 first fleet to use the prefix keeps it)
//! ```
//!
//! **Registering** grants a lease with the configured TTL and puts the key with it; a background
//! task renews the lease every third of the TTL over one keep-alive stream. Deregistering
//! deletes the key and revokes the lease; a process that dies stops renewing and etcd
//! deletes the key when the TTL runs out. If the lease was lost anyway (the process was paused
//! or cut off for longer than the TTL), the task notices on its next renewal and puts the key
//! again under a new lease, so an instance that comes back reappears within one renewal.
//!
//! **Watching** reads the service's directory (one GET with the prefix) and then follows it with
//! a WATCH starting at the revision after that read, so no change falls in between. When the
//! watch breaks (etcd restarted, connection lost) the follower retries with backoff (100 ms
//! doubling to 1 s), takes a fresh snapshot and watches again; receivers keep the last known set
//! meanwhile.

mod follower;
mod keeper;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnOpResponse};
use flotilla_chassis::deadline;
use futures::TryFutureExt;
use futures::future::BoxFuture;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

use super::{
    Discovery, DiscoveryError, DiscoverySettings, Registration, check_service, normalize_url,
};
use follower::Follower;
use keeper::Keeper;

/// HTTP/2 pings that detect a silently dead etcd connection. etcd refuses pings more often than
/// every 5 s (`--grpc-keepalive-min-time`), so stay well above that.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Instances registered in and watched from an etcd cluster.
pub struct EtcdDiscovery {
    client: Client,
    root: String,
    /// `/{prefix}/fingerprint`.
    fingerprint_key: String,
    settings: DiscoverySettings,
}

impl EtcdDiscovery {
    /// Connects to the etcd cluster at `endpoints` (`host:port` each) and checks that it answers.
    /// Keys live under `/{prefix}/services/`.
    pub async fn connect(
        endpoints: &[&str],
        prefix: &str,
        settings: &DiscoverySettings,
    ) -> Result<Self, DiscoveryError> {
        let urls: Vec<String> = endpoints.iter().map(|e| format!("http://{e}")).collect();
        let mut options = ConnectOptions::new()
            .with_connect_timeout(settings.request_timeout)
            .with_keep_alive(PING_INTERVAL, PING_TIMEOUT);
        if let Some(credentials) = &settings.etcd_credentials {
            options = options.with_user(&credentials.user, &credentials.password);
        }
        let limit = settings.request_timeout;
        let mut client = within(limit, Client::connect(urls, Some(options))).await?;
        within(limit, client.status()).await?;
        let prefix = prefix.trim_matches('/');
        let (root, fingerprint_key) = if prefix.is_empty() {
            ("/services/".to_owned(), "/fingerprint".to_owned())
        } else {
            (
                format!("/{prefix}/services/"),
                format!("/{prefix}/fingerprint"),
            )
        };
        Ok(Self {
            client,
            root,
            fingerprint_key,
            settings: settings.clone(),
        })
    }

    /// The directory holding one key per instance of `service`, ending in `/`.
    pub fn directory(&self, service: &str) -> String {
        format!("{}{service}/", self.root)
    }
}

impl Discovery for EtcdDiscovery {
    fn register<'a>(
        &'a self,
        service: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Registration, DiscoveryError>> {
        Box::pin(async move {
            check_service(service)?;
            let url = normalize_url(url)?;
            let keeper = Keeper::register(
                self.client.clone(),
                format!(
                    "{}{}",
                    self.directory(service),
                    flotilla_chassis::ids::new_id("ins")
                ),
                url.clone(),
                self.settings.ttl,
                self.settings.request_timeout,
            )
            .await?;
            Ok(Registration::spawn(service, &url, move |end| {
                keeper.run(end)
            }))
        })
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Vec<String>>, DiscoveryError>> {
        Box::pin(async move {
            check_service(service)?;
            let follower = Follower::start(
                self.client.clone(),
                self.directory(service),
                self.settings.request_timeout,
            )
            .await?;
            let (tx, rx) = watch::channel(follower.urls());
            tokio::spawn(follower.run(tx));
            Ok(rx)
        })
    }
    fn claim_fingerprint<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, DiscoveryError>> {
        Box::pin(async move {
            let key = self.fingerprint_key.as_str();
            // One transaction: put it if the key was never created, read it otherwise.
            let txn = Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, fingerprint, None)])
                .or_else([TxnOp::get(key, None)]);
            let mut kv = self.client.kv_client();
            let response = within(self.settings.request_timeout, kv.txn(txn)).await?;
            if response.succeeded() {
                return Ok(Some(fingerprint.to_owned()));
            }
            let recorded = response.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(get) => get
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                _ => None,
            });
            recorded
                .map(Some)
                .ok_or_else(|| unavailable("the fingerprint key vanished while it was read"))
        })
    }
}

/// Retry delays for a lost etcd connection: 100 ms doubling to 1 s, so that clients catch up
/// within about a second of etcd answering again.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

/// One etcd call with a deadline: a down cluster must not hang registration or watching.
async fn within<T, E>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, DiscoveryError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    deadline::within(limit, call.map_err(unavailable), |limit| {
        unavailable(format!("no answer within {limit:?}"))
    })
    .await
}

fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> DiscoveryError {
    DiscoveryError::Unavailable {
        backend: "etcd",
        source: source.into(),
    }
}

fn closed(what: &str) -> DiscoveryError {
    unavailable(format!("the {what} stream was closed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
