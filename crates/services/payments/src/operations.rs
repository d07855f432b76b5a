//! The four money movements — authorize, capture, void, refund — each one transaction that
//! writes the effect (the payment, its conditional UPDATE, the ledger entry) and the idempotency
//! key together with the answer, then commits.
//!
//! Everything a retry must see again is decided inside that transaction and stored with the
//! key, so a caller that lost an answer (a timeout, a crash of either side) and asks again with
//! the same key gets the same status and the same bytes, and the effect happens once. A key
//! already taken shows when its INSERT finds it (after waiting for the transaction that wrote
//! it); the transaction then rolls back and the request answers as the key says.
//!
//! Each statement, BEGIN and COMMIT is a round trip to the database (on SQLite to the
//! connection's worker thread), so the paths are short: see `tests/round_trips.rs` for the
//! budgets.

use axum::http::StatusCode;
use flotilla_chassis::Money;
use time::OffsetDateTime;

use crate::contract::{AuthorizeRequest, LedgerKind, PaymentStatus};
use crate::domain::{
    Card, CardBehaviour, Decision, InvalidRequest, OrderId, PaymentId, PaymentRecord, Refusal,
    Transition, parse_amount,
};
use crate::error::PaymentsError;
use crate::idempotency::{Answer, IdempotencyKey, RequestHash, StoredResponse};
use crate::store::{KeyedTx, PaymentsStore, Prior};

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

impl Prior {
    /// The request's answer when its key was used before.
    fn into_answer(self) -> Result<Answer, PaymentsError> {
        match self {
            Prior::Replay(response) => Ok(Answer {
                response,
                replayed: true,
            }),
            Prior::Conflict => Err(PaymentsError::IdempotencyConflict),
        }
    }
}

/// The answer to store for `outcome`; errors that are not recorded answers pass through.
fn to_record(
    outcome: Result<StoredResponse, PaymentsError>,
) -> Result<StoredResponse, PaymentsError> {
    match outcome {
        Ok(response) => Ok(response),
        Err(err) => match err.recorded_response() {
            Some(response) => Ok(response?),
            None => Err(err),
        },
    }
}

/// Ends a request whose key turned out to be taken: rolls back what `tx` did and answers as the
/// key says.
async fn key_taken(tx: KeyedTx, prior: Prior) -> Result<Answer, PaymentsError> {
    tx.rollback().await?;
    prior.into_answer()
}

/// Commits `tx` and answers `response`, which it stored under the key.
async fn commit(tx: KeyedTx, response: StoredResponse) -> Result<Answer, PaymentsError> {
    tx.commit().await?;
    Ok(Answer {
        response,
        replayed: false,
    })
}

/// `POST /payments`: authorizes `auth` under `key`.
///
/// The answer is known before anything is written (the payment's id is made here), so the key
/// goes in first, complete with its answer, then the payment and its ledger entry: BEGIN, three
/// INSERTs, COMMIT. A key already taken stops the transaction at its first statement.
pub async fn authorize(
    store: &PaymentsStore,
    now: OffsetDateTime,
    key: &IdempotencyKey,
    auth: Authorization,
) -> Result<Answer, PaymentsError> {
    let hash = auth.fingerprint();
    let mut payment = PaymentRecord {
        id: PaymentId::generate(),
        order_id: auth.order_id.clone(),
        amount: auth.amount,
        status: PaymentStatus::Authorized,
        card_last4: auth.card.last4.clone(),
        card_brand: auth.card.brand.to_owned(),
        decline_code: None,
        created_at: now,
        updated_at: now,
    };
    let outcome = match auth.card.behaviour {
        // Nothing is recorded, not even the key, so the retry runs again; but a key already used
        // with other parameters is still a conflict, as it would be for any other card.
        CardBehaviour::ProcessingError => {
            return match store.prior(key, LedgerKind::Authorize, &hash).await? {
                Some(prior) => prior.into_answer(),
                None => Err(PaymentsError::ProcessingError),
            };
        }
        CardBehaviour::Declines(code) => {
            payment.status = PaymentStatus::Declined;
            payment.decline_code = Some(code);
            Err(PaymentsError::Declined {
                payment_id: payment.id.clone(),
                code,
            })
        }
        CardBehaviour::Approves | CardBehaviour::DeclinesCapture => Ok(StoredResponse::json(
            StatusCode::CREATED,
            &payment.to_contract(),
        )?),
    };
    let response = to_record(outcome)?;
    let mut tx = store.begin().await?;
    if let Some(prior) = tx
        .record_key(key, LedgerKind::Authorize, &hash, &response, now)
        .await?
    {
        return key_taken(tx, prior).await;
    }
    tx.insert_payment(&payment).await?;
    if payment.status == PaymentStatus::Authorized {
        tx.append_ledger(&payment.id, LedgerKind::Authorize, payment.amount, now)
            .await?;
    }
    commit(tx, response).await
}

/// `POST /payments/{id}/capture|void|refund`: applies `transition` to payment `raw_id` under
/// `key`.
///
/// The conditional UPDATE goes first and returns the moved payment, which is the answer: then
/// the key with that answer and the ledger entry, BEGIN, three statements, COMMIT. When the
/// UPDATE moves nothing (a replay, a refusal, a payment already where the transition leads, an
/// unknown payment), one read brings the payment and the key together, and the answer decided
/// from them is stored under the key in the same transaction.
pub async fn transition(
    store: &PaymentsStore,
    now: OffsetDateTime,
    key: &IdempotencyKey,
    raw_id: &str,
    transition: Transition,
) -> Result<Answer, PaymentsError> {
    let id = PaymentId::parse(raw_id).ok_or(PaymentsError::UnknownPayment)?;
    let operation = transition.kind();
    let hash = RequestHash::of(&[operation.as_str(), id.as_str()]);
    let mut tx = store.begin().await?;
    let moved = tx
        .move_payment(
            &id,
            transition.from(),
            transition.to(),
            transition.refused_last4(),
            now,
        )
        .await?;
    if let Some(payment) = moved {
        let response = StoredResponse::json(StatusCode::OK, &payment.to_contract())?;
        // Key before ledger: a key taken by another request ends this one with one statement
        // less, and the rollback undoes the UPDATE.
        if let Some(prior) = tx.record_key(key, operation, &hash, &response, now).await? {
            return key_taken(tx, prior).await;
        }
        tx.append_ledger(&id, operation, payment.amount, now)
            .await?;
        return commit(tx, response).await;
    }
    // The UPDATE took the write lock on SQLite, so this read is current; on PostgreSQL it sees
    // the latest commit, and a payment never returns to `from` once it has left it.
    let (current, prior) = tx.payment_and_prior(&id, key, operation, &hash).await?;
    if let Some(prior) = prior {
        return key_taken(tx, prior).await;
    }
    let Some(current) = current else {
        // Not recorded: the key stays free.
        tx.rollback().await?;
        return Err(PaymentsError::UnknownPayment);
    };
    let outcome = match transition.decide(current.status, &current.card_last4) {
        Decision::AlreadyDone => Ok(StoredResponse::json(
            StatusCode::OK,
            &current.to_contract(),
        )?),
        Decision::Refuse(refusal) => Err(PaymentsError::Refused(refusal)),
        // The UPDATE found the payment elsewhere than `from` (or on the refused card) and no
        // state leads back, so "apply" cannot come up; answered as the state it is in.
        Decision::Apply => Err(PaymentsError::Refused(Refusal::InvalidState(
            current.status,
        ))),
    };
    let response = to_record(outcome)?;
    // Written nothing yet, so a key taken meanwhile has nothing to undo.
    if let Some(prior) = tx.record_key(key, operation, &hash, &response, now).await? {
        return key_taken(tx, prior).await;
    }
    commit(tx, response).await
}

#[cfg(test)]
mod tests;
