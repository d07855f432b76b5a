//! The gateway: the only public entry to Flotilla.
//!
//! It routes `/api/<service>/<rest>` to the service (which sees `/<rest>`) and everything else to
//! the storefront, over whatever [`Transport`](flotilla_chassis::transport::Transport) the host
//! gives it (in-process or HTTP). On the way it authenticates the user (a bearer token for the
//! API, the `flotilla_token` cookie for the web shop), replaces any caller-identity headers the
//! client sent with the verified ones, and strips hop-by-hop headers.
//!
//! Every request gets a deadline here (the client's `x-flotilla-deadline-ms`, bounded, or the
//! route's default: [`RouteDeadlines`]) that bounds every call made for it downstream.
//! Rate limits (`rate_limit`) are checked per client address before the token and per user
//! after it. Load balancing and the other resilience layers are tower layers around the
//! per-service transports and the router built here; nothing in the routing needs to change.

mod admin_surface;
mod auth;
mod deadlines;
mod exposure;
mod keys;
mod proxy;
mod rate_limit;
mod routes;
mod traces;

pub use auth::{AuthError, Authenticator};
pub use deadlines::{InvalidRouteDeadline, Route, RouteDeadlines};
pub use exposure::{Exposure, INTERNAL_TAG};
pub use keys::KeyCache;
pub use rate_limit::{
    Bucket, ClassLimits, FailMode, RATE_LIMITED, RateLimitConfig, RateLimitSnapshot, RateLimiter,
};
pub use routes::{
    CorsConfig, Gateway, GatewayConfig, GatewayRouters, ResilienceReport, RoutePolicy,
};
