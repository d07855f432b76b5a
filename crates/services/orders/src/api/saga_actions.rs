//! The operators' actions on a stuck or failed checkout saga (admin role only): retry it now,
//! compensate it now, or set it aside for manual review. Each is decided from the saga's state
//! by [`crate::saga::operator`], applied by one update conditional on that state and on no
//! executor holding the saga ([`crate::store`]), and written to the audit trail with the
//! admin's user id — refusals too. Retry and compensate take the saga's lease for a fresh
//! executor in that same update and start it at once, so the saga moves now rather than at the
//! next recovery pass, and no recovery pass can run it alongside.

use axum::extract::State;
use axum::http::StatusCode;
use flotilla_chassis::audit::{self, NewAudit};
use flotilla_chassis::extract::{Json, Path};
use flotilla_chassis::{Admin, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::OrdersState;
use crate::contract::{ReviewRequest, SagaView};
use crate::error::OrdersError;
use crate::executor::Executor;
use crate::saga::operator::{Action, decide};
use crate::store::operator_actions::OperatorChange;

pub fn routes() -> OpenApiRouter<OrdersState> {
    OpenApiRouter::new()
        .routes(routes!(retry))
        .routes(routes!(compensate))
        .routes(routes!(review))
}

/// Runs the saga's current step again now, with the same idempotency keys (a step that did
/// succeed downstream is found done, not done twice); forgets its failed attempts and backoff
/// and lifts a review hold. A compensating saga resumes its compensation.
#[utoipa::path(post, path = "/admin/sagas/{order_id}/retry", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(("order_id" = String, Path, description = "The order id")),
    responses(
        (status = 202, description = "Resumed: the saga as the action left it; poll it", body = SagaView),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saga", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`saga-action-refused` (the saga is finished) or `saga-busy` (an executor holds it now)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
async fn retry(
    caller: Admin,
    State(state): State<OrdersState>,
    Path(order_id): Path<String>,
) -> Result<(StatusCode, axum::Json<SagaView>), OrdersError> {
    act(&state, &caller, &order_id, Action::Retry, None).await
}

/// Undoes what the saga did, now, as its own compensation path does (the current step
/// included, since it may have taken effect), and cancels the order; lifts a review hold.
/// Refused past the pivot (COMMIT, CONFIRM) and while already compensating.
#[utoipa::path(post, path = "/admin/sagas/{order_id}/compensate", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(("order_id" = String, Path, description = "The order id")),
    responses(
        (status = 202, description = "Compensating: the saga as the action left it; poll it", body = SagaView),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saga", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`saga-action-refused` (finished, already compensating, or past the pivot) or `saga-busy` (an executor holds it now)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
async fn compensate(
    caller: Admin,
    State(state): State<OrdersState>,
    Path(order_id): Path<String>,
) -> Result<(StatusCode, axum::Json<SagaView>), OrdersError> {
    act(&state, &caller, &order_id, Action::Compensate, None).await
}

/// Sets the saga aside for manual review: the recovery loop leaves it alone until an operator
/// retries or compensates it.
#[utoipa::path(post, path = "/admin/sagas/{order_id}/review", tag = "admin", security(("bearerAuth" = ["admin"])),
    params(("order_id" = String, Path, description = "The order id")),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "Set aside: the saga with its review note", body = SagaView),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saga", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`saga-action-refused` (finished, or already under review) or `saga-busy` (an executor holds it now)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No note, or a note too long", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
async fn review(
    caller: Admin,
    State(state): State<OrdersState>,
    Path(order_id): Path<String>,
    Json(body): Json<ReviewRequest>,
) -> Result<(StatusCode, axum::Json<SagaView>), OrdersError> {
    let note = audit::operator_note("note", &body.note, "say what needs looking at")
        .map_err(|e| OrdersError::Invalid(vec![e]))?;
    act(&state, &caller, &order_id, Action::Review, Some(note)).await
}

/// Decides, applies and audits `action`; starts an executor when the action resumes the saga.
async fn act(
    state: &OrdersState,
    caller: &Admin,
    order_id: &str,
    action: Action,
    note: Option<&str>,
) -> Result<(StatusCode, axum::Json<SagaView>), OrdersError> {
    let executor = &state.executor;
    let store = executor.store();
    let control = store
        .saga_control(order_id)
        .await?
        .ok_or(OrdersError::NotFound)?;
    let now = executor.now();
    let entry = NewAudit::done(caller, action.audit_name(), order_id).with_note(note);
    let from = format!(
        "{} at {} (attempt {})",
        control.state.phase.as_str(),
        control.state.step.as_str(),
        control.state.attempts
    );
    let refuse = |err: OrdersError| async {
        let why = err.to_string();
        audit::record_alone(store.db(), &entry.clone().refused(&why), now).await?;
        Err::<(StatusCode, axum::Json<SagaView>), OrdersError>(err)
    };
    if control.lease_until > now {
        let busy = OrdersError::SagaBusy(format!(
            "an executor holds this saga ({from}) until {}: it is running a step or waiting a \
             short backoff; look again after that",
            flotilla_chassis::clock::rfc3339(flotilla_chassis::clock::millis(control.lease_until))
        ));
        return refuse(busy).await;
    }
    let to = match decide(&control.state, control.under_review, action) {
        Ok(to) => to,
        Err(refused) => return refuse(OrdersError::SagaActionRefused(refused.0)).await,
    };
    let owner = Executor::new_owner();
    let resumes = action != Action::Review;
    let detail = format!("{from} -> {} at {}", to.phase.as_str(), to.step.as_str());
    let change = OperatorChange {
        order_id,
        from: &control,
        to: &to,
        review_note: if resumes { None } else { note },
        lease: resumes.then(|| (owner.as_str(), executor.lease_until(now))),
        now,
        audit: entry.clone().with_detail(&detail),
    };
    if !store.apply_operator(&change).await? {
        return refuse(OrdersError::SagaBusy(format!(
            "the saga changed while the action was decided ({from} when read): an executor \
             took it; look again"
        )))
        .await;
    }
    tracing::info!(%order_id, action = action.audit_name(), actor = %caller.0.user_id, %detail, "operator action on a saga");
    if resumes {
        let executor = executor.clone();
        let order_id = order_id.to_owned();
        tokio::spawn(async move {
            let end = executor.run(&order_id, &owner, None).await;
            end.log(&order_id);
        });
    }
    let view = store
        .saga_view(order_id)
        .await?
        .ok_or(OrdersError::NotFound)?;
    let status = if resumes {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view)))
}
