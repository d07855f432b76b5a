//! The typed client the orders saga uses to move money.
//!
//! A thin layer over the chassis [`ServiceClient`]: each money movement takes the caller's
//! idempotency key, so any call may be repeated after a timeout with the same key and yields the
//! first answer. [`is_retryable`] tells the failures worth repeating (the provider or the network
//! failed; nothing or the same thing happened) from the answers that are final (declined,
//! refused, invalid), and [`decline_code`] reads why a card was declined.

use axum::http::{Method, StatusCode};
use flotilla_chassis::transport::{ClientError, ServiceClient, Transport};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::NAME;
use crate::contract::{
    AuthorizeRequest, DeclineCode, PROBLEM_CARD_DECLINED, PROBLEM_PROCESSING_ERROR, Payment,
};

/// Characters left as-is in a path segment: RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client for the payments service.
#[derive(Debug, Clone)]
pub struct PaymentsClient {
    inner: ServiceClient,
}

impl PaymentsClient {
    /// A client that reaches payments over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(NAME, transport),
        }
    }

    /// `POST /payments`: authorizes `req.amount` on the card. A decline is a 402 error (read it
    /// with [`decline_code`]); a processing error a retryable 503.
    #[tracing::instrument(skip_all, fields(order_id = %req.order_id, key = %idempotency_key), err(level = "debug"))]
    pub async fn authorize(
        &self,
        idempotency_key: &str,
        req: &AuthorizeRequest,
    ) -> Result<Payment, ClientError> {
        self.inner
            .send_idempotent(Method::POST, "/payments", idempotency_key, None, req)
            .await
    }

    /// `POST /payments/{id}/capture`: takes the authorized amount. 402 `capture-declined` leaves
    /// the payment authorized (void it); 409 `already-captured` means another key captured it.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn capture(
        &self,
        idempotency_key: &str,
        payment_id: &str,
    ) -> Result<Payment, ClientError> {
        self.movement("capture", idempotency_key, payment_id).await
    }

    /// `POST /payments/{id}/void`: releases the authorization (succeeds again on a voided
    /// payment, whatever the key); 409 `invalid-state` when it was captured.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn void(
        &self,
        idempotency_key: &str,
        payment_id: &str,
    ) -> Result<Payment, ClientError> {
        self.movement("void", idempotency_key, payment_id).await
    }

    /// `POST /payments/{id}/refund`: gives back the captured amount (succeeds again on a refunded
    /// payment, whatever the key); 409 `invalid-state` when it was never captured.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn refund(
        &self,
        idempotency_key: &str,
        payment_id: &str,
    ) -> Result<Payment, ClientError> {
        self.movement("refund", idempotency_key, payment_id).await
    }

    /// `GET /payments/{id}` ([`ClientError::is_not_found`] when unknown).
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn payment(&self, payment_id: &str) -> Result<Payment, ClientError> {
        self.inner.get(&payment_path(payment_id), None).await
    }

    /// `GET /payments?order_id=`: an order's payments, oldest first (what a recovering saga
    /// reads to learn what it already did).
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn for_order(&self, order_id: &str) -> Result<Vec<Payment>, ClientError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("order_id", order_id)
            .finish();
        self.inner.get(&format!("/payments?{query}"), None).await
    }

    async fn movement(
        &self,
        action: &str,
        idempotency_key: &str,
        payment_id: &str,
    ) -> Result<Payment, ClientError> {
        let path = format!("{}/{action}", payment_path(payment_id));
        let no_body = serde_json::Map::new();
        self.inner
            .send_idempotent(Method::POST, &path, idempotency_key, None, &no_body)
            .await
    }
}

/// `/payments/{id}` with the id encoded as one path segment.
fn payment_path(payment_id: &str) -> String {
    format!(
        "/payments/{}",
        utf8_percent_encode(payment_id, PATH_SEGMENT)
    )
}

/// Why the card was declined (`card_declined`, `insufficient_funds`), when `err` is a declined
/// authorization; `None` for any other error. Read from the problem's `decline_code` extension
/// member (see [`crate::contract::DeclineProblem`]).
pub fn decline_code(err: &ClientError) -> Option<String> {
    let ClientError::Status { problem, .. } = err else {
        return None;
    };
    if problem.kind != PROBLEM_CARD_DECLINED {
        return None;
    }
    let code = problem.extensions.get("decline_code")?.as_str()?;
    DeclineCode::parse(code).map(|code| code.as_str().to_owned())
}

/// True when repeating the call with the same key may succeed: the network or the callee failed
/// before an answer was recorded (transport errors, timeouts, 429, 502, 503 and 504, and the
/// provider's 402 `processing-error`), or the answer was lost on the way. False for final
/// answers: 402 declines, 404, 409 conflicts, 422 invalid requests, 500.
pub fn is_retryable(err: &ClientError) -> bool {
    match err {
        ClientError::Transport(_) => true,
        // A body that could not be read may be a connection cut mid-answer; the key makes a
        // repeat safe, and a repeat of a genuinely bad answer fails the same way.
        ClientError::Decode { .. } => true,
        ClientError::Status { problem, .. } => {
            problem.kind == PROBLEM_PROCESSING_ERROR
                || matches!(
                    problem.status_code(),
                    StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::Problem;
    use flotilla_chassis::transport::TransportError;

    fn status(problem: Problem) -> ClientError {
        ClientError::Status {
            service: NAME,
            problem: Box::new(problem),
        }
    }

    #[test]
    fn payment_ids_are_one_path_segment() {
        assert_eq!(payment_path("pay_1"), "/payments/pay_1");
        assert_eq!(payment_path("../x?y"), "/payments/..%2Fx%3Fy");
    }

    #[test]
    fn the_decline_code_is_read_from_a_card_declined_problem_only() {
        let declined = Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "card-declined",
            "the card was declined (insufficient_funds)",
        )
        .with_extension("decline_code", "insufficient_funds");
        assert_eq!(
            decline_code(&status(declined)).as_deref(),
            Some("insufficient_funds")
        );
        let other = Problem::new(StatusCode::PAYMENT_REQUIRED, "capture-declined", "x")
            .with_extension("decline_code", "card_declined");
        assert_eq!(decline_code(&status(other)), None);
        let missing = Problem::new(StatusCode::PAYMENT_REQUIRED, "card-declined", "no code");
        assert_eq!(decline_code(&status(missing)), None);
        let garbled = Problem::new(StatusCode::PAYMENT_REQUIRED, "card-declined", "x")
            .with_extension("decline_code", "stolen_card_or_worse");
        assert_eq!(decline_code(&status(garbled)), None);
        // As it travels: the member survives a round trip through JSON.
        let wire: Problem = serde_json::from_value(
            serde_json::to_value(
                Problem::new(StatusCode::PAYMENT_REQUIRED, "card-declined", "x")
                    .with_extension("decline_code", "card_declined"),
            )
            .expect("encode"),
        )
        .expect("decode");
        assert_eq!(
            decline_code(&status(wire)).as_deref(),
            Some("card_declined")
        );
    }

    #[test]
    fn only_failures_without_a_final_answer_are_retryable() {
        let processing = Problem::new(StatusCode::PAYMENT_REQUIRED, "processing-error", "x");
        assert!(is_retryable(&status(processing)));
        assert!(is_retryable(&ClientError::Transport(
            TransportError::Timeout(NAME.into())
        )));
        for final_status in [
            StatusCode::PAYMENT_REQUIRED,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            let problem = Problem::new(final_status, "x", "y");
            assert!(!is_retryable(&status(problem)), "{final_status}");
        }
    }
}
