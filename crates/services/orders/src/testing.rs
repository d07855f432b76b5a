//! A hand-driven orders instance for crash tests (hidden from the docs: not part of the
//! contract).
//!
//! [`SagaDriver`] is built from a [`ServiceContext`] exactly like the service, over the same
//! database, but runs no background loop and starts no saga by itself: a test places an order,
//! runs its saga a chosen number of steps, optionally makes the next step's peer call without
//! recording it, and then simply drops the driver — which is what a process killed at that
//! point leaves behind: a saga whose lease is still held and whose last outcome may not be
//! recorded. The real service's recovery loop must then finish it with no second effect.

use axum::http::HeaderValue;
use flotilla_chassis::idempotency_key::IdempotencyKey;
use flotilla_chassis::{Caller, Problem, ServiceContext, StartError};

use crate::Parts;
use crate::checkout::Placement;
use crate::contract::{CheckoutRequest, OrderStatus};
use crate::executor::{Executor, RunEnd};

/// An orders instance whose sagas move only when told to.
pub struct SagaDriver {
    parts: Parts,
    owner: String,
}

impl SagaDriver {
    /// A driver over `ctx` (its database is migrated if needed).
    pub async fn new(ctx: ServiceContext) -> Result<Self, StartError> {
        Ok(Self {
            parts: crate::assemble(&ctx).await?,
            owner: Executor::new_owner(),
        })
    }

    /// Checks out as `POST /` does, holding the new saga's lease, but does not run it. Returns
    /// the order id.
    pub async fn place(
        &self,
        caller: &Caller,
        key: &str,
        req: &CheckoutRequest,
    ) -> Result<String, Problem> {
        let header = HeaderValue::from_str(key)
            .map_err(|_| Problem::bad_request("the Idempotency-Key must be visible ASCII"))?;
        let key = IdempotencyKey::parse(&header)?;
        match self
            .parts
            .checkout
            .place(caller, &key, req, &self.owner)
            .await?
        {
            Placement::New { saga, .. } => Ok(saga.order_id),
            Placement::Repeat(id) => Ok(id),
        }
    }

    /// Runs `order_id`'s saga (placed by this driver) for at most `outcomes` recorded step
    /// outcomes. `Ok(Some(status))` when it finished, `Ok(None)` when it stopped after
    /// `outcomes`, `Err` for anything else (lost lease, storage).
    pub async fn run(
        &self,
        order_id: &str,
        outcomes: usize,
    ) -> Result<Option<OrderStatus>, String> {
        let executor = &self.parts.executor;
        match executor.run(order_id, &self.owner, Some(outcomes)).await {
            RunEnd::Finished { status, .. } => Ok(Some(status)),
            RunEnd::Paused => Ok(None),
            other => Err(format!("{other:?}")),
        }
    }

    /// Makes the peer call of `order_id`'s current step and records nothing, as if the process
    /// died right after the call. Returns the outcome, for the test's information.
    pub async fn call_without_recording(&self, order_id: &str) -> Result<String, String> {
        let saga = self
            .parts
            .store
            .saga(order_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no saga for {order_id}"))?;
        let performed = self.parts.executor.perform(&saga).await;
        Ok(format!(
            "{} {:?}",
            saga.state.step.as_str(),
            performed.outcome
        ))
    }
}
