//! The names the console knows the shop's services by: the choices of its filters, the pages
//! that ask every service, and the order of the call map. Any other name a span reports is
//! shown as data, never trusted as one of these.

/// Every process role a span may name, in the order a request meets them.
pub const ALL: &[&str] = &[
    "gateway",
    "storefront",
    "identity",
    "catalog",
    "cart",
    "orders",
    "inventory",
    "payments",
    "shipping",
    "notifications",
];

/// The services with a database, so with an outbox, an inbox, dead letters and an audit trail.
pub const WITH_DATABASE: &[&str] = &[
    "identity",
    "catalog",
    "cart",
    "inventory",
    "orders",
    "payments",
    "shipping",
    "notifications",
];
