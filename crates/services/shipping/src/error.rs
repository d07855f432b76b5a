//! Shipping's errors, and the one place they become problem+json.
//!
//! The business refusals a caller can act on have their own problem types, published in
//! [`crate::contract`] so the orders saga can branch on them: an unsupported destination and a
//! carrier rejection are 422 (the request will never succeed as it is), a second, different
//! shipment for one order is 409. Storage failures are logged and answered as a generic 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_chassis::Problem;
use flotilla_chassis::problem::FieldError;

use crate::domain::pricing::UnsupportedDestination;

/// What can go wrong serving a shipping request.
#[derive(Debug, thiserror::Error)]
pub enum ShippingError {
    /// The request parsed but fields are invalid (422, one entry per field).
    #[error("invalid fields: {0:?}")]
    Invalid(Vec<FieldError>),
    /// The shop does not ship there (422 `unsupported-destination`); `field` names the country
    /// field of the request.
    #[error("{source}")]
    Unsupported {
        /// `country` or `address.country`.
        field: &'static str,
        /// Which country.
        source: UnsupportedDestination,
    },
    /// The carrier refused the shipment (422 `carrier-rejected`).
    #[error("the carrier rejected the shipment to this address")]
    CarrierRejected,
    /// No such quote (404).
    #[error("no such quote")]
    QuoteNotFound,
    /// No such shipment (404).
    #[error("no such shipment")]
    ShipmentNotFound,
    /// The order already has a shipment to another address or with other lines (409).
    #[error("order {0} already has a different shipment")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<ShippingError> for Problem {
    fn from(err: ShippingError) -> Self {
        let detail = err.to_string();
        match err {
            ShippingError::Invalid(errors) => Problem::invalid_fields(errors),
            ShippingError::Unsupported { field, .. } => {
                let mut problem = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unsupported-destination",
                    detail.clone(),
                );
                problem.errors.push(FieldError {
                    field: field.to_owned(),
                    message: detail,
                });
                problem
            }
            ShippingError::CarrierRejected => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "carrier-rejected", detail)
            }
            ShippingError::QuoteNotFound | ShippingError::ShipmentNotFound => {
                Problem::not_found(detail)
            }
            ShippingError::Conflict(_) => Problem::new(
                StatusCode::CONFLICT,
                "shipment-conflict",
                format!("{detail}: send the same address and lines to get it back"),
            ),
            ShippingError::Storage(e) => e.into(),
        }
    }
}

impl IntoResponse for ShippingError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
