//! The control API, modelled on Toxiproxy's (same paths, same JSON), so that its clients and
//! habits carry over. Bodies are read as JSON whatever their `Content-Type` (as Toxiproxy does,
//! so `curl -d` works). Every refusal is problem+json with a 4xx status.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flotilla_chassis::Problem;
use flotilla_chassis::extract::{AnyJson, Path};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::registry::{FaultProxy, ProxyUpdate};
use crate::toxic::Toxic;

/// The routes, over `fault_proxy`.
pub fn router(fault_proxy: FaultProxy) -> Router {
    Router::new()
        .route("/proxies", get(list_proxies).post(create_proxy))
        .route(
            "/proxies/{proxy}",
            get(get_proxy).post(update_proxy).delete(delete_proxy),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(list_toxics).post(create_toxic),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(get_toxic).post(update_toxic).delete(delete_toxic),
        )
        .route("/reset", post(reset))
        .fallback(|| async { Problem::not_found("no such route; see the fault proxy's README") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this route does not take that method",
            )
        })
        .with_state(fault_proxy)
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    fault_proxy: FaultProxy,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(fault_proxy))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds `addr` and serves the API in a task; returns the bound address.
pub async fn start(
    fault_proxy: FaultProxy,
    addr: &str,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(err) = serve(fault_proxy, listener, shutdown).await {
            tracing::error!(error = %err, "fault proxy API stopped");
        }
    });
    Ok(bound)
}

type Answer = Result<Response, Problem>;

async fn list_proxies(State(fp): State<FaultProxy>) -> Answer {
    // Toxiproxy answers a map from name to proxy.
    let map: Map<String, Value> = fp
        .list()
        .await
        .into_iter()
        .map(|p| {
            (
                p.name.clone(),
                serde_json::to_value(p).unwrap_or(Value::Null),
            )
        })
        .collect();
    Ok(axum::Json(map).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProxy {
    name: String,
    #[serde(default = "any_port")]
    listen: String,
    upstream: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn any_port() -> String {
    "127.0.0.1:0".to_owned()
}

fn yes() -> bool {
    true
}

async fn create_proxy(State(fp): State<FaultProxy>, AnyJson(body): AnyJson<CreateProxy>) -> Answer {
    let info = fp
        .create(&body.name, &body.listen, &body.upstream, body.enabled)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

async fn get_proxy(State(fp): State<FaultProxy>, Path(proxy): Path<String>) -> Answer {
    Ok(axum::Json(fp.get(&proxy).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateProxy {
    /// Accepted when it repeats the proxy's name (Toxiproxy's clients send the whole proxy).
    name: Option<String>,
    /// Accepted when it repeats the bound address; a proxy does not move.
    listen: Option<String>,
    upstream: Option<String>,
    enabled: Option<bool>,
    /// Ignored, as Toxiproxy ignores it here: toxics have their own routes.
    #[serde(rename = "toxics")]
    _toxics: Option<Value>,
}

async fn update_proxy(
    State(fp): State<FaultProxy>,
    Path(proxy): Path<String>,
    AnyJson(body): AnyJson<UpdateProxy>,
) -> Answer {
    let current = fp.get(&proxy).await?;
    if body.name.as_ref().is_some_and(|n| *n != current.name) {
        return Err(Error::invalid("name", "a proxy cannot be renamed").into());
    }
    if body.listen.as_ref().is_some_and(|l| *l != current.listen) {
        return Err(Error::invalid(
            "listen",
            "a proxy cannot move; delete it and create another",
        )
        .into());
    }
    let update = ProxyUpdate {
        enabled: body.enabled,
        upstream: body.upstream,
    };
    Ok(axum::Json(fp.update(&proxy, update).await?).into_response())
}

async fn delete_proxy(State(fp): State<FaultProxy>, Path(proxy): Path<String>) -> Answer {
    fp.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_toxics(State(fp): State<FaultProxy>, Path(proxy): Path<String>) -> Answer {
    Ok(axum::Json(fp.toxics(&proxy).await?).into_response())
}

async fn create_toxic(
    State(fp): State<FaultProxy>,
    Path(proxy): Path<String>,
    AnyJson(body): AnyJson<Value>,
) -> Answer {
    // The proxy is looked up first, so that a toxic for a missing proxy is a 404 whatever
    // its body.
    fp.get(&proxy).await?;
    let toxic = Toxic::from_json(&body)?;
    Ok(axum::Json(fp.add_toxic(&proxy, toxic).await?).into_response())
}

async fn get_toxic(
    State(fp): State<FaultProxy>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Answer {
    Ok(axum::Json(fp.toxic(&proxy, &toxic).await?).into_response())
}

async fn update_toxic(
    State(fp): State<FaultProxy>,
    Path((proxy, toxic)): Path<(String, String)>,
    AnyJson(body): AnyJson<Value>,
) -> Answer {
    let updated = fp
        .update_toxic(&proxy, &toxic, |current| current.updated(&body))
        .await?;
    Ok(axum::Json(updated).into_response())
}

async fn delete_toxic(
    State(fp): State<FaultProxy>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Answer {
    fp.remove_toxic(&proxy, &toxic).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reset(State(fp): State<FaultProxy>) -> Answer {
    fp.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
