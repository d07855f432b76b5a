//! The paths every service serves to its operators and supervisors rather than to its users:
//! the probes (`/healthz`, `/readyz`), the contract documents (`/openapi.json`,
//! `/openapi.internal.json`) and the admin routes (`/admin/…`, the fault API among them).
//!
//! They are the tools used to see and repair a failing service, so the mechanisms that contain
//! failures must not take them away: a caller's circuit breaker and bulkhead
//! ([`crate::resilience`]) let them through whatever their state and do not count their
//! outcomes (a fault on one business route once opened the gateway's breaker and locked the
//! admin out of the very API that removes the fault), and injected faults ([`crate::faults`])
//! never touch the admin routes or the contract, and touch the probes only through a route that
//! names them. A leaf module, so that both can read it without depending on each other.
//!
//! Paths are matched as the callee sees them (service-relative, no query) and exactly: a path
//! spelt another way is an ordinary call, which costs nothing but the exemption.

/// `/healthz` or `/readyz`.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// An operator's route (`/admin` or under `/admin/`) or a contract document (`/openapi…`).
pub fn is_operator_route(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/") || path.starts_with("/openapi")
}

/// A probe, an admin route or a contract document: never refused by a caller's breaker or
/// bulkhead, never counted by its breaker.
pub fn is_control_plane(path: &str) -> bool {
    is_probe(path) || is_operator_route(path)
}
