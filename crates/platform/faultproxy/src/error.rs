//! What can go wrong when proxies and toxics are managed, as variants a caller can act on; the
//! HTTP API turns each into problem+json (always a 4xx: nothing a client sends is a 500).

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
            Error::Listen { .. } => Problem::invalid("listen", err.to_string()),
        }
    }
}
