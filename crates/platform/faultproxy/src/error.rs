//! What can go wrong when proxies and toxics are managed, as variants a caller can act on; the
//! HTTP API turns each into problem+json: a 4xx for what the client can change, a 503 when the
//! process is out of file descriptors (nothing a client sends is a 500).

use axum::http::StatusCode;
use flotilla_chassis::Problem;

/// A refused request to the fault proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No proxy or toxic of that name.
    #[error("{0}")]
    NotFound(String),
    /// A proxy or toxic of that name exists already.
    #[error("{0}")]
    Conflict(String),
    /// A field is missing, malformed or out of range.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A cap of [`crate::Limits`] is reached: the request is sound, the fault proxy is full.
    #[error("{detail}")]
    LimitReached { limit: usize, detail: String },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<Error> for Problem {
    fn from(err: Error) -> Self {
        match err {
            Error::NotFound(detail) => Problem::not_found(detail),
            Error::Conflict(detail) => Problem::conflict(detail),
            Error::Invalid { field, message } => Problem::invalid(&field, message),
            Error::Listen { ref source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                Problem::new(StatusCode::CONFLICT, "address-in-use", err.to_string())
            }
            // Full: 409, as for a name taken — the request conflicts with the proxy's state,
            // and deleting a proxy or toxic resolves it (RFC 9110 §15.5.10).
            Error::LimitReached { limit, .. } => {
                Problem::new(StatusCode::CONFLICT, "limit-reached", err.to_string())
                    .with_extension("limit", limit)
            }
            Error::Listen { ref source, .. } if out_of_descriptors(source) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "out-of-file-descriptors",
                format!(
                    "{err}: the fault proxy is out of file descriptors; close connections, \
                     delete proxies or raise the file limit (ulimit -n), then retry"
                ),
            )
            .with_retry_after(1),
            Error::Listen { .. } => Problem::invalid("listen", err.to_string()),
        }
    }
}

/// EMFILE (this process) or ENFILE (the whole system): no descriptor for a new socket, which
/// is the server's state, not the request's fault.
pub(crate) fn out_of_descriptors(err: &std::io::Error) -> bool {
    // The same numbers on Linux, macOS and the BSDs.
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    matches!(err.raw_os_error(), Some(EMFILE | ENFILE))
}
