//! The payments service's errors, and the one place they become problem+json.
//!
//! Some errors are *answers* the provider gives and records under the idempotency key (a
//! declined card, a refused transition): a retry with the same key must get them again, byte for
//! byte, so they are rendered once into a [`StoredResponse`]. The others are answered afresh
//! each time: bad input (nothing was attempted), an unknown payment, a key reused with other
//! parameters, and the failures a caller should retry (the provider's processing error, a busy
//! database), for which nothing was recorded.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_chassis::Problem;
use flotilla_chassis::problem::FieldError;

use crate::contract::{DeclineCode, DeclineProblem, PaymentStatus};
use crate::domain::{InvalidRequest, PaymentId, Refusal};
use crate::idempotency::{Answer, StoredResponse};

/// What can go wrong with a payments request.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// The request is invalid (422); nothing was attempted.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// No such payment (404).
    #[error("no such payment")]
    UnknownPayment,
    /// The key was used for this operation with different parameters (409).
    #[error("this Idempotency-Key was already used with different parameters")]
    IdempotencyConflict,
    /// The simulated provider failed; nothing was recorded (503, retryable).
    #[error("the card processor failed; retry with the same Idempotency-Key")]
    ProcessingError,
    /// The card was declined at authorization (402, recorded).
    #[error("the card was declined ({})", code.as_str())]
    Declined {
        /// The payment recorded as declined.
        payment_id: PaymentId,
        /// Why.
        code: DeclineCode,
    },
    /// A transition was refused (402 or 409, recorded).
    #[error("{}", refusal_detail(.0))]
    Refused(Refusal),
    /// A response could not be serialised (a bug).
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

fn refusal_detail(refusal: &Refusal) -> String {
    match refusal {
        Refusal::CaptureDeclined => {
            "the card issuer declined the capture; the payment stays authorized (void it)".into()
        }
        Refusal::AlreadyCaptured => "the payment was already captured; it is captured once".into(),
        Refusal::InvalidState(status) => {
            let hint = match status {
                PaymentStatus::Captured => " (refund it instead)",
                PaymentStatus::Authorized => " (void it instead)",
                _ => "",
            };
            format!("the payment is {status}{hint}")
        }
    }
}

impl PaymentsError {
    /// The answer recorded under the key for an error that is an answer (a decline or a refused
    /// transition); `None` for errors that are answered afresh every time.
    pub fn recorded_response(&self) -> Option<Result<StoredResponse, serde_json::Error>> {
        match self {
            PaymentsError::Declined { payment_id, code } => Some(StoredResponse::json(
                StatusCode::PAYMENT_REQUIRED,
                &DeclineProblem {
                    problem: self.problem(),
                    decline_code: *code,
                    payment_id: payment_id.as_str().to_owned(),
                },
            )),
            PaymentsError::Refused(_) => {
                let problem = self.problem();
                Some(StoredResponse::json(problem.status_code(), &problem))
            }
            _ => None,
        }
    }

    /// The standard problem document for this error.
    fn problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            PaymentsError::Invalid(invalid) => {
                let slug = if invalid.is_card() {
                    "invalid-card"
                } else {
                    "validation"
                };
                let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, slug, detail);
                problem.errors.push(FieldError {
                    field: invalid.field().to_owned(),
                    message: invalid.to_string(),
                });
                problem
            }
            PaymentsError::UnknownPayment => Problem::not_found(detail),
            PaymentsError::IdempotencyConflict => {
                Problem::new(StatusCode::CONFLICT, "idempotency-conflict", detail)
            }
            PaymentsError::ProcessingError => {
                Problem::new(StatusCode::PAYMENT_REQUIRED, "processing-error", detail)
            }
            PaymentsError::Declined { .. } => {
                Problem::new(StatusCode::PAYMENT_REQUIRED, "card-declined", detail)
            }
            PaymentsError::Refused(Refusal::CaptureDeclined) => {
                Problem::new(StatusCode::PAYMENT_REQUIRED, "capture-declined", detail)
            }
            PaymentsError::Refused(Refusal::AlreadyCaptured) => {
                Problem::new(StatusCode::CONFLICT, "already-captured", detail)
            }
            PaymentsError::Refused(Refusal::InvalidState(_)) => {
                Problem::new(StatusCode::CONFLICT, "invalid-state", detail)
            }
            PaymentsError::Encode(e) => {
                tracing::error!(error = %e, "a response could not be serialised");
                Problem::internal()
            }
            PaymentsError::Storage(e) if is_busy(e) => {
                tracing::warn!(error = %e, "storage busy");
                Problem::unavailable("storage is busy; retry with the same Idempotency-Key")
                    .with_retry_after(1)
            }
            PaymentsError::Storage(e) => flotilla_chassis::problem::storage_problem(e),
        }
    }
}

/// True for lock contention that a retry resolves: SQLite's BUSY/LOCKED (after its busy
/// timeout), PostgreSQL's serialization failure, deadlock and lock timeout. Answered as a 503
/// rather than a 500, so callers know to retry (safely: nothing was committed).
fn is_busy(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    // PostgreSQL reports a five-character SQLSTATE; SQLite its extended result code, a number
    // of at most four digits whose low byte is the primary code.
    if code.len() == 5 {
        return matches!(code.as_ref(), "40001" | "40P01" | "55P03");
    }
    code.parse::<i32>()
        .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6))
}

impl IntoResponse for PaymentsError {
    fn into_response(self) -> Response {
        // A recorded kind of answer looks the same whether it is sent now or replayed later.
        match self.recorded_response() {
            Some(Ok(response)) => Answer {
                response,
                replayed: false,
            }
            .into_response(),
            Some(Err(e)) => PaymentsError::Encode(e).problem().into_response(),
            None => self.problem().into_response(),
        }
    }
}

impl From<PaymentsError> for Problem {
    fn from(err: PaymentsError) -> Self {
        err.problem()
    }
}
