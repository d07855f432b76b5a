//! The four money movements — authorize, capture, void, refund — each one transaction: claim
//! the idempotency key, decide with the domain rules, change the state with a conditional
//! UPDATE, append to the ledger, store the answer with the key, commit.
//!
//! Everything a retry must see again is decided inside that transaction and stored with the
//! key, so a caller that lost an answer (a timeout, a crash of either side) and asks again with
//! the same key gets the same status and the same bytes, and the effect happens once.

use axum::http::StatusCode;
use flotilla_chassis::Money;

use crate::contract::{AuthorizeRequest, LedgerKind, PaymentStatus};
use crate::domain::{
    Card, CardBehaviour, Decision, InvalidRequest, OrderId, PaymentId, PaymentRecord, Refusal,
    Transition, parse_amount,
};
use crate::error::PaymentError;
use crate::idempotency::{Answer, IdempotencyKey, RequestHash, StoredResponse};
use crate::store::{KeyClaim, KeyedTx, PaymentStore};

/// A valid authorization request: the card already reduced to what may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    order_id: OrderId,
    amount: Money,
    card: Card,
}

impl Authorization {
    /// Validates `request` against the configured maximum amount.
    pub fn parse(
        request: &AuthorizeRequest,
        max_amount_minor: i64,
    ) -> Result<Self, InvalidRequest> {
        Ok(Self {
            order_id: OrderId::parse(&request.order_id)?,
            amount: parse_amount(request.amount, max_amount_minor)?,
            card: Card::parse(&request.card_number)?,
        })
    }

    /// The fingerprint a repeated key is compared by. The card enters only as the brand and last
    /// four digits the service keeps anyway: a digest of the full number would be a stored
    /// secret in disguise (the few unknown digits of a card are cheap to guess against it).
    fn fingerprint(&self) -> RequestHash {
        RequestHash::of(&[
            LedgerKind::Authorize.as_str(),
            self.order_id.as_str(),
            &self.amount.amount_minor.to_string(),
            self.amount.currency.as_str(),
            self.card.brand,
            &self.card.last4,
        ])
    }
}

/// Opens the keyed transaction, or ends the request with the key's earlier answer.
async fn claim(
    store: &PaymentStore,
    key: &IdempotencyKey,
    operation: LedgerKind,
    hash: &RequestHash,
    now_millis: i64,
) -> Result<Result<KeyedTx, Answer>, PaymentError> {
    match store.claim(key, operation, hash, now_millis).await? {
        KeyClaim::Fresh(tx) => Ok(Ok(tx)),
        KeyClaim::Replay(response) => Ok(Err(Answer {
            response,
            replayed: true,
        })),
        KeyClaim::Conflict => Err(PaymentError::IdempotencyConflict),
    }
}

/// Stores `outcome` as the key's answer and commits; errors that are not recorded answers roll
/// everything back instead.
async fn finish(
    tx: KeyedTx,
    outcome: Result<StoredResponse, PaymentError>,
) -> Result<Answer, PaymentError> {
    let response = match outcome {
        Ok(response) => response,
        Err(err) => match err.recorded_response() {
            Some(response) => response?,
            None => {
                tx.abandon().await?;
                return Err(err);
            }
        },
    };
    tx.record(&response).await?;
    Ok(Answer {
        response,
        replayed: false,
    })
}

/// `POST /payments`: authorizes `auth` under `key`.
pub async fn authorize(
    store: &PaymentStore,
    now_millis: i64,
    key: &IdempotencyKey,
    auth: Authorization,
) -> Result<Answer, PaymentError> {
    let hash = auth.fingerprint();
    let mut tx = match claim(store, key, LedgerKind::Authorize, &hash, now_millis).await? {
        Ok(tx) => tx,
        Err(replay) => return Ok(replay),
    };
    let mut payment = PaymentRecord {
        id: PaymentId::generate(),
        order_id: auth.order_id.as_str().to_owned(),
        amount: auth.amount,
        status: PaymentStatus::Authorized,
        card_last4: auth.card.last4.clone(),
        card_brand: auth.card.brand.to_owned(),
        decline_code: None,
        created_at: now_millis,
        updated_at: now_millis,
    };
    let outcome = match auth.card.behaviour {
        // Nothing is recorded, not even the key: the retry runs again.
        CardBehaviour::ProcessingError => Err(PaymentError::ProcessingError),
        CardBehaviour::Declines(code) => {
            payment.status = PaymentStatus::Declined;
            payment.decline_code = Some(code);
            tx.insert_payment(&payment).await?;
            Err(PaymentError::Declined {
                payment_id: payment.id.clone(),
                code,
            })
        }
        CardBehaviour::Approves | CardBehaviour::DeclinesCapture => {
            tx.insert_payment(&payment).await?;
            tx.append_ledger(
                &payment.id,
                LedgerKind::Authorize,
                payment.amount,
                now_millis,
            )
            .await?;
            Ok(StoredResponse::json(
                StatusCode::CREATED,
                &payment.to_contract(),
            )?)
        }
    };
    finish(tx, outcome).await
}

/// `POST /payments/{id}/capture|void|refund`: applies `transition` to payment `raw_id` under
/// `key`.
pub async fn transition(
    store: &PaymentStore,
    now_millis: i64,
    key: &IdempotencyKey,
    raw_id: &str,
    transition: Transition,
) -> Result<Answer, PaymentError> {
    let id = PaymentId::parse(raw_id).ok_or(PaymentError::UnknownPayment)?;
    let hash = RequestHash::of(&[transition.kind().as_str(), id.as_str()]);
    let mut tx = match claim(store, key, transition.kind(), &hash, now_millis).await? {
        Ok(tx) => tx,
        Err(replay) => return Ok(replay),
    };
    let outcome = apply(&mut tx, &id, transition, now_millis).await;
    let outcome = match outcome {
        Ok(payment) => Ok(StoredResponse::json(
            StatusCode::OK,
            &payment.to_contract(),
        )?),
        Err(err) => Err(err),
    };
    finish(tx, outcome).await
}

/// Decides and, when the rules allow, makes the change; returns the payment as it now is.
async fn apply(
    tx: &mut KeyedTx,
    id: &PaymentId,
    transition: Transition,
    now_millis: i64,
) -> Result<PaymentRecord, PaymentError> {
    let mut payment = tx.payment(id).await?.ok_or(PaymentError::UnknownPayment)?;
    match transition.decide(payment.status, &payment.card_last4) {
        Decision::AlreadyDone => Ok(payment),
        Decision::Refuse(refusal) => Err(PaymentError::Refused(refusal)),
        Decision::Apply => {
            if tx
                .transition(id, transition.from(), transition.to(), now_millis)
                .await?
            {
                tx.append_ledger(id, transition.kind(), payment.amount, now_millis)
                    .await?;
                payment.status = transition.to();
                payment.updated_at = now_millis;
                return Ok(payment);
            }
            // Another transaction moved the payment after our read (possible on PostgreSQL,
            // where the key lock does not cover the payment row): decide again on what it is now.
            // No state leads back to `from`, so "apply" cannot come up a second time.
            let current = tx.payment(id).await?.ok_or(PaymentError::UnknownPayment)?;
            match transition.decide(current.status, &current.card_last4) {
                Decision::AlreadyDone => Ok(current),
                Decision::Refuse(refusal) => Err(PaymentError::Refused(refusal)),
                Decision::Apply => {
                    Err(PaymentError::Refused(Refusal::InvalidState(current.status)))
                }
            }
        }
    }
}
