//! The typed client other services use to call shipping: the storefront and orders quote,
//! orders' checkout saga creates a shipment and, as its compensation, cancels it.
//!
//! A thin layer over the chassis [`ServiceClient`] decoding the [`crate::contract`] types.
//! Shipping's routes act for no user, so no call takes a caller. A refusal arrives as
//! [`ClientError::Status`] carrying the problem: compare its `kind` with the
//! `PROBLEM_*` constants of the contract (for instance
//! [`PROBLEM_CARRIER_REJECTED`](crate::contract::PROBLEM_CARRIER_REJECTED)) to tell a business
//! failure from an outage.

use axum::http::Method;
use flotilla_chassis::transport::{ClientError, ServiceClient, Transport};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::NAME;
use crate::contract::{CreateShipment, Quote, QuoteRequest, Shipment};

/// Characters left as-is in a path segment or query value: RFC 3986 unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client for the shipping service.
#[derive(Debug, Clone)]
pub struct ShippingClient {
    inner: ServiceClient,
}

impl ShippingClient {
    /// A client that reaches shipping over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(NAME, transport),
        }
    }

    /// `POST /quotes`: prices a parcel and stores the quote. A 422 means invalid fields or an
    /// unsupported destination.
    #[tracing::instrument(skip_all, fields(country = %req.country, items = req.items), err(level = "debug"))]
    pub async fn quote(&self, req: &QuoteRequest) -> Result<Quote, ClientError> {
        self.inner.send(Method::POST, "/quotes", None, req).await
    }

    /// `POST /shipments`: creates the order's shipment, or returns the one it has when the
    /// address and lines are the same (so the call may be retried). A 409 means the order has a
    /// different shipment; a 422 invalid fields, an unsupported destination or a carrier
    /// rejection.
    #[tracing::instrument(skip_all, fields(order_id = %req.order_id), err(level = "debug"))]
    pub async fn create_shipment(&self, req: &CreateShipment) -> Result<Shipment, ClientError> {
        self.inner.send(Method::POST, "/shipments", None, req).await
    }

    /// `POST /shipments/{id}/cancel`: cancels a shipment; cancelling a cancelled one succeeds.
    /// A 404 ([`ClientError::is_not_found`]) means there is no such shipment.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn cancel(&self, shipment_id: &str) -> Result<Shipment, ClientError> {
        let path = format!("{}/cancel", shipment_path(shipment_id));
        self.inner
            .send_without_body(Method::POST, &path, None)
            .await
    }

    /// `GET /shipments/{id}`. A 404 means there is no such shipment.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn shipment(&self, shipment_id: &str) -> Result<Shipment, ClientError> {
        self.inner.get(&shipment_path(shipment_id), None).await
    }

    /// `GET /shipments?order_id=`: the order's shipment, if it has one.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn for_order(&self, order_id: &str) -> Result<Option<Shipment>, ClientError> {
        let path = format!(
            "/shipments?order_id={}",
            utf8_percent_encode(order_id, UNRESERVED)
        );
        let found: Vec<Shipment> = self.inner.get(&path, None).await?;
        Ok(found.into_iter().next())
    }
}

/// `/shipments/{id}` with the id encoded as one path segment, so an odd id reaches the service
/// as the 404 it deserves instead of another route.
fn shipment_path(shipment_id: &str) -> String {
    format!(
        "/shipments/{}",
        utf8_percent_encode(shipment_id, UNRESERVED)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(shipment_path("abc-1"), "/shipments/abc-1");
        assert_eq!(shipment_path("../x y?"), "/shipments/..%2Fx%20y%3F");
    }
}
