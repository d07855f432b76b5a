//! The health probe `up` and `status` send to each instance (`GET …/readyz` or `…/healthz`):
//! hyper's client, which the chassis's transport already brings, rather than a second HTTP
//! client crate (reqwest, with its own tower-http and cookie stacks) in the binary for one GET.
//! `flotilla probe URL` sends one, for the container image's health check.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Longest wait for an instance's answer (connecting included).
const TIMEOUT: Duration = Duration::from_secs(2);

/// A pooled plain-HTTP client for probes.
pub(crate) struct Probe {
    client: Client<HttpConnector, Body>,
}

impl Probe {
    /// A client whose every probe gives up after two seconds.
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The status of `GET url`, or why there is none (unreachable, bad URL, no answer in time).
    pub(crate) async fn get(&self, url: &str) -> anyhow::Result<StatusCode> {
        let request = Request::get(url).body(Body::empty())?;
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("{url} did not answer within {TIMEOUT:?}"))??;
        Ok(response.status())
    }
}

/// One probe of `url`: its status, or why there is none (`flotilla probe`).
pub async fn once(url: &str) -> anyhow::Result<StatusCode> {
    Probe::new().get(url).await
}
