//! The shop as the generator sees it: HTTP/1.1 calls to the gateway over a pooled hyper
//! client (the client `flotilla chaos` and the probes use), each bounded by `--timeout` and
//! read whole, failures sorted into the kinds the report counts.

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::time::Duration;

use super::stats::ErrorKind;

/// Largest answer read (a page of 100 products is ~60 KB).
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// An answer read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The body as `T`, if it is one.
    pub fn json<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The error kind of the status, `None` for a success.
    pub fn error(&self) -> Option<ErrorKind> {
        ErrorKind::of_status(self.status)
    }
}

/// A call that got no answer, and why.
#[derive(Debug, Clone)]
pub struct Failed {
    pub kind: ErrorKind,
    pub detail: String,
}

/// The gateway of the shop under load.
#[derive(Clone)]
pub struct Shop {
    base: String,
    client: Client<HttpConnector, Body>,
    timeout: Duration,
}

/// One request: method, path under the gateway, optional bearer token, JSON body and
/// idempotency key.
pub struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub token: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    pub idempotency_key: Option<String>,
}

impl<'a> Call<'a> {
    pub fn get(path: String, token: Option<&'a str>) -> Self {
        Self {
            method: Method::GET,
            path,
            token,
            body: None,
            idempotency_key: None,
        }
    }

    pub fn send_json(
        method: Method,
        path: String,
        token: Option<&'a str>,
        body: &impl serde::Serialize,
    ) -> Self {
        Self {
            method,
            path,
            token,
            // Serialising the contract types the generator builds cannot fail.
            body: Some(serde_json::to_vec(body).unwrap_or_default()),
            idempotency_key: None,
        }
    }
}

impl Shop {
    /// A client of the gateway at `base` (`http://host:port`).
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            anyhow::bail!(
                "--target {base:?} is not an http:// URL (write e.g. http://127.0.0.1:8080)"
            );
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        connector.set_nodelay(true);
        Ok(Self {
            base,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends the call and reads its answer whole, within the timeout.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, Failed> {
        let url = format!("{}{}", self.base, call.path);
        let mut request = Request::builder().method(call.method).uri(&url);
        if let Some(token) = call.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(key) = call.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = match call.body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .map_err(|e| Failed {
            kind: ErrorKind::Other,
            detail: format!("{url}: {e}"),
        })?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| Failed {
                kind: if e.is_connect() {
                    ErrorKind::Connect
                } else {
                    ErrorKind::Other
                },
                detail: format!("{url}: {e}"),
            })?;
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_ANSWER_BYTES)
                .await
                .map_err(|e| Failed {
                    kind: ErrorKind::Other,
                    detail: format!("reading the answer of {url}: {e}"),
                })?;
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Failed {
                    kind: ErrorKind::Timeout,
                    detail: format!("{url}: no answer within {:?}", self.timeout),
                })
            })
    }
}
