//! The Flotilla service chassis: everything a service is built on and nothing a service is.
//!
//! A service crate takes a [`ServiceContext`] and returns a [`Service`]; this crate supplies the
//! pieces in between: the problem+json error type, extractors that reject bad input cleanly, the
//! standard middleware stack, probes, storage, paging, prefixed ids, caller identity and its
//! trust rules, service credentials, and the transports and client that carry calls between
//! services.

pub mod abort;
pub mod audit;
pub mod caller;
pub mod clock;
pub mod cluster_fingerprint;
pub mod config;
pub mod control_plane;
pub mod db;
pub mod deadline;
pub mod events;
pub mod extract;
pub mod faults;
pub mod health;
pub mod idempotency_key;
pub mod ids;
pub mod input_message;
pub mod jwt_crypto;
pub mod launch;
pub mod layers;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod pagination;
pub mod periodic;
pub mod private_files;
pub mod problem;
pub mod request_context;
pub mod resilience;
pub mod server;
pub mod service;
pub mod service_credential;
pub mod telemetry;
pub mod text;
pub mod trace_context;
pub mod transport;
pub mod trust;

pub use caller::{Admin, Caller, Role};
pub use db::{Db, Migration};
pub use layers::{ErrorPage, Limits};
pub use money::{Currency, Money};
pub use pagination::{Page, PageParams, PageRequest};
pub use problem::Problem;
pub use service::{Service, ServiceContext, ServiceFactory, ServiceSpec, StartError};
