//! An answer that must not be sent: a response marked [`AbortConnection`] tells whoever carries
//! it to drop the connection instead (the server's connection loop closes the socket; the
//! in-process transport fails the call as a reset connection). Fault injection
//! ([`crate::faults`]) sets the mark; the carriers honour it. A leaf module, so that the carriers
//! need not depend on fault injection, which depends on them.

/// Response extension: close the connection without sending this response (an injected
/// abort). Transports turn it into a reset connection.
#[derive(Debug, Clone)]
pub struct AbortConnection {
    /// The fault that asked for it.
    pub fault_id: String,
}

/// The error a transport reports for an aborted connection.
#[derive(Debug, thiserror::Error)]
#[error("connection reset (fault {fault_id} injected an abort)")]
pub struct InjectedReset {
    /// The fault that asked for it.
    pub fault_id: String,
}

/// The abort mark of `response`, if it has one.
pub fn abort_of<B>(response: &axum::http::Response<B>) -> Option<InjectedReset> {
    response
        .extensions()
        .get::<AbortConnection>()
        .map(|a| InjectedReset {
            fault_id: a.fault_id.clone(),
        })
}
