//! One function per forward saga step, each calling one peer through its typed client and
//! judging the answer: done, refused for good, or worth another try (the undo steps are in
//! `compensations`).
//!
//! Every call is idempotent at the peer, keyed by the order: the reservation id is the order id,
//! payments get `{order_id}:authorize` / `:capture` / `:void` / `:refund`, shipping keys
//! shipments by order. So a step may be repeated after a timeout or a crash (even one that fell
//! between the call and the saga's record of it) and the peer answers as it did the first time,
//! with the effect applied once. When a compensation does not know what to undo (the id was
//! never learnt because the forward call's answer was lost), it asks the peer by order id.

use flotilla_chassis::Problem;
use flotilla_chassis::transport::ClientError;
use flotilla_inventory::client::InventoryClient;
use flotilla_inventory::contract::{
    ReservationLine, ReservationStatus, ReserveRequest, problem_types,
};
// `is_retryable` is the fleet's rule for a failure worth repeating with the same key (no answer,
// 429, 502-504); payments publishes it, and it holds for every peer the saga calls.
use flotilla_payments::client::{PaymentsClient, decline_code, is_retryable};
use flotilla_payments::contract::{
    AuthorizeRequest, PROBLEM_ALREADY_CAPTURED, PROBLEM_CAPTURE_DECLINED, Payment, PaymentStatus,
};
use flotilla_shipping::client::ShippingClient;
use flotilla_shipping::contract::{CreateShipment, ShipmentLine, ShipmentStatus};

use crate::domain::CardNumber;
use crate::saga::{Outcome, PeerRefs, Step};
use crate::store::sagas::SagaRecord;

/// The outcome of one step and what it told the saga of the peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performed {
    /// What the step came to.
    pub outcome: Outcome,
    /// The payment or shipment it made or found.
    pub refs: PeerRefs,
}

impl From<Outcome> for Performed {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            refs: PeerRefs::default(),
        }
    }
}

/// The peers the saga calls.
#[derive(Debug, Clone)]
pub struct SagaPeers {
    pub inventory: InventoryClient,
    pub payments: PaymentsClient,
    pub shipping: ShippingClient,
    /// How long a reservation is held before inventory releases it on its own.
    pub reservation_ttl_secs: u64,
}

/// `{order_id}:{operation}`: the payments idempotency key of one operation of one order.
pub fn payment_key(order_id: &str, operation: &str) -> String {
    format!("{order_id}:{operation}")
}

impl SagaPeers {
    /// Runs `saga`'s current step (a remote one; CONFIRM and CANCEL are the executor's).
    pub async fn perform(&self, saga: &SagaRecord) -> Performed {
        match saga.state.step {
            Step::Reserve => self.reserve(saga).await,
            Step::Authorize => self.authorize(saga).await,
            Step::Ship => self.ship(saga).await,
            Step::Capture => self.capture(saga).await,
            Step::Commit => self.commit(saga).await,
            Step::CancelShipment => self.cancel_shipment(saga).await,
            Step::VoidOrRefund => self.void_or_refund(saga).await,
            Step::Release => self.release(saga).await,
            Step::Confirm | Step::Cancel => Outcome::Done("local step".to_owned()).into(),
        }
    }

    async fn reserve(&self, saga: &SagaRecord) -> Performed {
        let request = ReserveRequest {
            reservation_id: saga.order_id.clone(),
            lines: saga
                .lines
                .iter()
                .map(|(product_id, quantity)| ReservationLine {
                    product_id: *product_id,
                    quantity: i64::from(*quantity),
                })
                .collect(),
            ttl_secs: Some(self.reservation_ttl_secs),
        };
        match self.inventory.reserve(&request).await {
            Ok(r) if r.status == ReservationStatus::Released => {
                Outcome::Refused("the stock reservation expired before checkout went on".into())
            }
            Ok(r) => Outcome::Done(format!("stock held until {}", r.expires_at)),
            Err(e) if is_retryable(&e) => Outcome::Failed(e.to_string()),
            Err(e) if kind_is(&e, problem_types::OUT_OF_STOCK) => {
                Outcome::Refused(format!("out of stock: {}", detail(&e)))
            }
            Err(e) => Outcome::Refused(format!("the inventory refused: {}", detail(&e))),
        }
        .into()
    }

    async fn authorize(&self, saga: &SagaRecord) -> Performed {
        let Some(card) = &saga.card else {
            return Outcome::Refused("the card number is no longer held".into()).into();
        };
        match self.send_authorize(saga, card).await {
            Ok(p)
                if matches!(
                    p.status,
                    PaymentStatus::Authorized | PaymentStatus::Captured
                ) =>
            {
                Performed {
                    outcome: Outcome::Done(format!("{} authorized as {}", p.amount, p.id)),
                    refs: PeerRefs {
                        payment_id: Some(p.id),
                        ..PeerRefs::default()
                    },
                }
            }
            Ok(p) => Outcome::Refused(format!("the payment is {}", p.status)).into(),
            Err(e) => match decline_code(&e) {
                Some(code) => {
                    Outcome::Refused(format!("card declined: {}", code.replace('_', " "))).into()
                }
                None if is_retryable(&e) => Outcome::Failed(e.to_string()).into(),
                None => Outcome::Refused(format!("payment refused: {}", detail(&e))).into(),
            },
        }
    }

    /// Sends AUTHORIZE's request under its key. VOID_OR_REFUND repeats it to learn an answer
    /// that was lost, which works only when the key and the body are the same to the letter
    /// (another body under the key is a 409): hence one place that builds them.
    pub(super) async fn send_authorize(
        &self,
        saga: &SagaRecord,
        card: &CardNumber,
    ) -> Result<Payment, ClientError> {
        let request = AuthorizeRequest {
            order_id: saga.order_id.clone(),
            amount: saga.total,
            card_number: card.digits().to_owned(),
        };
        let key = payment_key(&saga.order_id, "authorize");
        self.payments.authorize(&key, &request).await
    }

    async fn ship(&self, saga: &SagaRecord) -> Performed {
        let request = CreateShipment {
            order_id: saga.order_id.clone(),
            quote_id: saga.quote_id.clone(),
            address: saga.address.clone(),
            lines: saga
                .lines
                .iter()
                .map(|(product_id, quantity)| ShipmentLine {
                    product_id: product_id.to_string(),
                    quantity: *quantity,
                })
                .collect(),
        };
        match self.shipping.create_shipment(&request).await {
            Ok(s) if s.status == ShipmentStatus::Created => Performed {
                outcome: Outcome::Done(format!(
                    "shipment {} tracked as {}",
                    s.id, s.tracking_number
                )),
                refs: PeerRefs {
                    shipment_id: Some(s.id),
                    tracking_number: Some(s.tracking_number),
                    ..PeerRefs::default()
                },
            },
            Ok(s) => Outcome::Refused(format!("shipment {} was cancelled", s.id)).into(),
            Err(e) if is_retryable(&e) => Outcome::Failed(e.to_string()).into(),
            Err(e) => Outcome::Refused(format!("shipping refused: {}", detail(&e))).into(),
        }
    }

    async fn capture(&self, saga: &SagaRecord) -> Performed {
        let Some(payment_id) = &saga.refs.payment_id else {
            return Outcome::Refused("no authorized payment to capture".into()).into();
        };
        let key = payment_key(&saga.order_id, "capture");
        match self.payments.capture(&key, payment_id).await {
            Ok(p) if p.status == PaymentStatus::Captured => {
                Outcome::Done(format!("{} captured", p.amount))
            }
            Ok(p) => Outcome::Refused(format!("the payment is {}", p.status)),
            // Only this saga captures this payment, so "already captured" is our own capture.
            Err(e) if kind_is(&e, PROBLEM_ALREADY_CAPTURED) => {
                Outcome::Done("already captured".into())
            }
            Err(e) if kind_is(&e, PROBLEM_CAPTURE_DECLINED) => {
                Outcome::Refused("the payment capture was declined".into())
            }
            Err(e) if is_retryable(&e) => Outcome::Failed(e.to_string()),
            Err(e) => Outcome::Refused(format!("payment capture refused: {}", detail(&e))),
        }
        .into()
    }

    async fn commit(&self, saga: &SagaRecord) -> Performed {
        let expired = "the stock reservation expired before the order was completed";
        match self.inventory.commit(&saga.order_id).await {
            Ok(r) if r.status == ReservationStatus::Committed => Outcome::Done("stock sold".into()),
            Ok(_) => Outcome::Refused(expired.into()),
            Err(e) if kind_is(&e, problem_types::RESERVATION_RELEASED) => {
                Outcome::Refused(expired.into())
            }
            Err(e) if e.is_not_found() => Outcome::Refused("the stock reservation is gone".into()),
            // Past the pivot only a definitive "released" may undo the order; anything else is
            // asked again (see the module notes on COMMIT).
            Err(e) => Outcome::Failed(e.to_string()),
        }
        .into()
    }
}

/// The callee's problem, when it answered with one.
pub(super) fn problem(err: &ClientError) -> Option<&Problem> {
    match err {
        ClientError::Status { problem, .. } => Some(problem),
        _ => None,
    }
}

/// True when the callee answered with a problem of type `kind`.
pub(super) fn kind_is(err: &ClientError, kind: &str) -> bool {
    problem(err).is_some_and(|p| p.kind == kind)
}

/// The callee's explanation, for a reason a customer may read.
pub(super) fn detail(err: &ClientError) -> String {
    problem(err)
        .and_then(|p| p.detail.clone())
        .unwrap_or_else(|| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_by_order_and_operation() {
        assert_eq!(payment_key("ord_1", "authorize"), "ord_1:authorize");
        assert_ne!(payment_key("ord_1", "void"), payment_key("ord_1", "refund"));
    }
}
