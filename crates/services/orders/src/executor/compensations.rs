//! The compensations: one function per undo, each calling one peer and judging its answer.
//!
//! A compensation must end up done whatever happened before it, so each first finds out what
//! there is to undo — by the id the saga learnt, or, when the forward call's answer was lost,
//! by asking the peer about the order — and treats "already undone" as done and "nothing was
//! ever made" as nothing to do. Repeats are harmless: void, refund, cancel and release are
//! idempotent at the peers (keys `{order_id}:void` and `{order_id}:refund` for the money).

use flotilla_inventory::contract::{RELEASED_ON_REQUEST, problem_types};
use flotilla_payments::client::is_retryable;
use flotilla_payments::contract::{PROBLEM_PROCESSING_ERROR, Payment, PaymentStatus};

use super::steps::{Performed, SagaPeers, kind_is, payment_key};
use crate::saga::{Outcome, PeerRefs};
use crate::store::sagas::SagaRecord;

impl SagaPeers {
    /// CANCEL_SHIPMENT: cancels the order's shipment, found by order when its id is unknown.
    pub(super) async fn cancel_shipment(&self, saga: &SagaRecord) -> Performed {
        let shipment_id = match &saga.refs.shipment_id {
            Some(id) => id.clone(),
            None => match self.shipping.for_order(&saga.order_id).await {
                Ok(Some(shipment)) => shipment.id,
                Ok(None) => return Outcome::NothingToDo("no shipment was created".into()).into(),
                Err(e) => return Outcome::Failed(e.to_string()).into(),
            },
        };
        let outcome = match self.shipping.cancel(&shipment_id).await {
            Ok(_) => Outcome::Done(format!("shipment {shipment_id} cancelled")),
            Err(e) if e.is_not_found() => Outcome::NothingToDo("no such shipment".into()),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        Performed {
            outcome,
            refs: PeerRefs {
                shipment_id: Some(shipment_id),
                ..PeerRefs::default()
            },
        }
    }

    /// VOID_OR_REFUND: gives the money back as the payment stands now — voids an
    /// authorization, refunds a capture (a late capture is refunded on the next attempt).
    pub(super) async fn void_or_refund(&self, saga: &SagaRecord) -> Performed {
        let payment = match self.find_payment(saga).await {
            Ok(Some(payment)) => payment,
            Ok(None) => return Outcome::NothingToDo("no payment was authorized".into()).into(),
            Err(outcome) => return outcome.into(),
        };
        let outcome = match payment.status {
            PaymentStatus::Authorized => {
                let key = payment_key(&saga.order_id, "void");
                match self.payments.void(&key, &payment.id).await {
                    Ok(_) => Outcome::Done(format!("{} voided", payment.id)),
                    // Captured meanwhile (a late capture): the next attempt reads it and refunds.
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            PaymentStatus::Captured => {
                let key = payment_key(&saga.order_id, "refund");
                match self.payments.refund(&key, &payment.id).await {
                    Ok(_) => Outcome::Done(format!("{} refunded {}", payment.id, payment.amount)),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            PaymentStatus::Voided | PaymentStatus::Refunded => {
                Outcome::Done(format!("{} already {}", payment.id, payment.status))
            }
            PaymentStatus::Declined => Outcome::NothingToDo("the card was declined".into()),
        };
        Performed {
            outcome,
            refs: PeerRefs {
                payment_id: Some(payment.id),
                ..PeerRefs::default()
            },
        }
    }

    /// The order's payment: by its id when known, else by order id; and when none is found but
    /// the authorization's answer was lost (the card is still held), by asking for that answer
    /// again under the same key — after which no late duplicate can authorize anything new.
    async fn find_payment(&self, saga: &SagaRecord) -> Result<Option<Payment>, Outcome> {
        if let Some(id) = &saga.refs.payment_id {
            return match self.payments.payment(id).await {
                Ok(payment) => Ok(Some(payment)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(Outcome::Failed(e.to_string())),
            };
        }
        let found = self
            .payments
            .for_order(&saga.order_id)
            .await
            .map_err(|e| Outcome::Failed(e.to_string()))?;
        let held = |p: &&Payment| {
            matches!(
                p.status,
                PaymentStatus::Authorized | PaymentStatus::Captured
            )
        };
        if let Some(payment) = found.iter().find(held).or(found.first()) {
            return Ok(Some(payment.clone()));
        }
        let Some(card) = &saga.card else {
            return Ok(None);
        };
        match self.send_authorize(saga, card).await {
            Ok(payment) => Ok(Some(payment)),
            // The provider answered and recorded nothing under the key: nothing is held.
            Err(e) if kind_is(&e, PROBLEM_PROCESSING_ERROR) => Ok(None),
            Err(e) if is_retryable(&e) => Err(Outcome::Failed(e.to_string())),
            Err(_) => Ok(None),
        }
    }

    /// RELEASE: puts the reserved units back (nothing reserved, or already released, is fine).
    pub(super) async fn release(&self, saga: &SagaRecord) -> Performed {
        match self.inventory.release(&saga.order_id).await {
            Ok(r) => match r.released_reason.as_deref() {
                Some(reason) if reason != RELEASED_ON_REQUEST => {
                    Outcome::Done(format!("stock back in stock ({reason})"))
                }
                _ => Outcome::Done("stock back in stock".into()),
            },
            Err(e) if e.is_not_found() => Outcome::NothingToDo("nothing was reserved".into()),
            Err(e) if kind_is(&e, problem_types::RESERVATION_COMMITTED) => {
                // Cannot happen by the saga's rules (COMMIT never compensates unless refused);
                // if it does, the units are sold and only an operator can put them back.
                tracing::error!(order_id = %saga.order_id, "compensating a committed reservation");
                Outcome::NothingToDo("the reservation is committed: its units stay sold".into())
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
        .into()
    }
}
