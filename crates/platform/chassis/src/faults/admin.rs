//! `/admin/faults`, in every service (admin role only): list the faults in force with their
//! remaining time and counters, add one, remove one, remove all. Through the gateway these are
//! `/api/<service>/admin/faults`; `flotilla chaos` drives them.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::spec::{Failure, NewFault, Target};
use super::{FaultView, Faults};
use crate::caller::Admin;
use crate::extract::{Json, Path};
use crate::problem::Problem;

/// A fault in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct Fault {
    /// Its id, for `DELETE /admin/faults/{id}`.
    #[schema(example = "flt_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// The route pattern it targets (all routes, or all calls to `upstream`, when null).
    pub route: Option<String>,
    /// The peer whose calls it faults (client side), or null for this service's own routes.
    pub upstream: Option<String>,
    /// Fixed delay, ms.
    pub latency_ms: u64,
    /// Variation of the delay either way, ms.
    pub jitter_ms: u64,
    /// The status it answers instead of the service, if any.
    pub status: Option<u16>,
    /// Whether it drops the connection instead of answering.
    pub abort: bool,
    /// Share of matching requests it acts on.
    pub rate: f64,
    /// The lifetime it was given, in seconds.
    pub for_secs: u64,
    /// Time left before it expires, ms.
    pub remaining_ms: u64,
    /// Requests its target matched so far.
    pub matched: u64,
    /// Requests it acted on so far.
    pub fired: u64,
}

/// The faults in force in the instance that answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultList {
    /// The service.
    pub service: String,
    /// Which instance answered (faults live in each instance's memory): `pid <n>`.
    pub instance: String,
    /// Its active faults, oldest first.
    pub faults: Vec<Fault>,
}

/// What `DELETE /admin/faults` removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cleared {
    /// How many faults were in force.
    pub cleared: u64,
    /// Which instance answered (in a fleet, the others keep theirs): `pid <n>`.
    pub instance: String,
}

impl From<FaultView> for Fault {
    fn from(view: FaultView) -> Self {
        let spec = view.spec;
        let (route, upstream) = match spec.target {
            Target::Served(route) => (route, None),
            Target::Upstream { upstream, route } => (route, Some(upstream)),
        };
        let (status, abort) = match spec.failure {
            None => (None, false),
            Some(Failure::Abort) => (None, true),
            Some(Failure::Status(status)) => (Some(status.as_u16()), false),
        };
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Fault {
            id: view.id,
            route: route.map(|r| r.as_str().to_owned()),
            upstream,
            latency_ms: ms(spec.latency),
            jitter_ms: ms(spec.jitter),
            status,
            abort,
            rate: spec.rate,
            for_secs: spec.lifetime.as_secs(),
            remaining_ms: ms(view.remaining),
            matched: view.matched,
            fired: view.fired,
        }
    }
}

/// The routes, to merge into a service's API.
pub fn routes(faults: Faults) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list, add, clear))
        .routes(routes!(remove))
        .with_state(faults)
}

/// The faults in force in this instance, with their remaining time and counters.
#[utoipa::path(get, path = "/admin/faults", tag = "admin", security(("bearerAuth" = ["admin"])),
    responses((status = 200, body = FaultList), (status = 401), (status = 403)))]
async fn list(_: Admin, State(faults): State<Faults>) -> axum::Json<FaultList> {
    axum::Json(FaultList {
        service: faults.service().to_owned(),
        instance: format!("pid {}", std::process::id()),
        faults: faults.list().into_iter().map(Fault::from).collect(),
    })
}

/// Injects a fault into this instance until it expires.
#[utoipa::path(post, path = "/admin/faults", tag = "admin", security(("bearerAuth" = ["admin"])),
    request_body = NewFault,
    responses(
        (status = 201, description = "The fault is in force", body = Fault),
        (status = 401), (status = 403),
        (status = 409, description = "The instance already has as many faults as it holds"),
        (status = 422, description = "A field is out of range or malformed (each one is listed)"),
    ))]
async fn add(
    _: Admin,
    State(faults): State<Faults>,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<(StatusCode, axum::Json<Fault>), Problem> {
    // Read as an object first: serde would take a struct from an array too (`[null, null]`),
    // which the schema (an object) does not allow.
    let spec = NewFault::read(body, faults.context())?;
    let view = faults
        .add(spec)
        .map_err(|err| Problem::conflict(err.to_string()))?;
    Ok((StatusCode::CREATED, axum::Json(view.into())))
}

/// Ends every fault in this instance.
#[utoipa::path(delete, path = "/admin/faults", tag = "admin", security(("bearerAuth" = ["admin"])),
    responses((status = 200, body = Cleared), (status = 401), (status = 403)))]
async fn clear(_: Admin, State(faults): State<Faults>) -> axum::Json<Cleared> {
    let cleared = u64::try_from(faults.clear()).unwrap_or(u64::MAX);
    axum::Json(Cleared {
        cleared,
        instance: format!("pid {}", std::process::id()),
    })
}

/// Ends one fault.
#[utoipa::path(delete, path = "/admin/faults/{id}", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path, description = "The fault's id (`flt_…`)")),
    responses((status = 204, description = "The fault is gone"), (status = 401), (status = 403),
        (status = 404, description = "No such fault in force here")))]
async fn remove(
    _: Admin,
    State(faults): State<Faults>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    if faults.remove(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!(
            "no fault {} in force here (it may have expired, or live in another instance)",
            crate::input_message::quote(&id)
        )))
    }
}
