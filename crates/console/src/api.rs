//! The console's way to the data: requests to the gateway's own API handling, made as the
//! administrator (their token as a bearer token), answered exactly as the API answers them.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use flotilla_chassis::transport::Transport;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::session::OpsSession;

/// The largest answer the console reads (a page of spans or dead letters is far smaller).
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// Why a call gave no usable answer: what a page shows instead of its data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status; `detail` is its problem's explanation.
    #[error("{detail} (HTTP {status})")]
    Refused {
        /// The status.
        status: StatusCode,
        /// The problem's `detail` (or `title`).
        detail: String,
    },
    /// No answer: the gateway could not be called, or its answer could not be read.
    #[error("{0}")]
    Broken(String),
}

impl ApiError {
    /// The status a page showing this error is served with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Refused { status, .. } if *status == StatusCode::NOT_FOUND => {
                StatusCode::NOT_FOUND
            }
            ApiError::Refused { status, .. } if status.is_client_error() => *status,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The API, as one administrator.
pub struct Api<'a> {
    transport: &'a Transport,
    session: &'a OpsSession,
}

impl<'a> Api<'a> {
    /// Calls through `transport` for `session`'s administrator.
    pub fn new(transport: &'a Transport, session: &'a OpsSession) -> Self {
        Self { transport, session }
    }

    /// `GET path` (with its query), its JSON answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let (_, body) = self.call(Method::GET, path, None).await?;
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::Broken(format!("the answer of {path} is unreadable: {err}")))
    }

    /// `method path` with an optional JSON body; the answer's JSON (`null` when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ApiError> {
        let (_, answer) = self.call(method, path, body).await?;
        if answer.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&answer)
            .map_err(|err| ApiError::Broken(format!("the answer of {path} is unreadable: {err}")))
    }

    /// One call; an error status becomes [`ApiError::Refused`] with the problem's words.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.session.token()),
            )
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let request = request
            .body(body)
            .map_err(|err| ApiError::Broken(format!("cannot ask for {path}: {err}")))?;
        let response = self
            .transport
            .clone()
            .oneshot(request)
            .await
            .map_err(|err| ApiError::Broken(err.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|err| ApiError::Broken(format!("the answer of {path} was cut: {err}")))?;
        if status.is_client_error() || status.is_server_error() {
            let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let detail = problem["detail"]
                .as_str()
                .or_else(|| problem["title"].as_str())
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
                .to_owned();
            return Err(ApiError::Refused { status, detail });
        }
        Ok((status, bytes.to_vec()))
    }
}
