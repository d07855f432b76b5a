//! The typed client other services use to call the inventory: orders' checkout saga (reserve,
//! then commit or release), the storefront (stock levels), the ops console (admin views).
//!
//! A thin layer over the chassis [`ServiceClient`]. Errors keep the inventory's problem: match
//! `ClientError::Status { problem, .. }` on `problem.kind` against
//! [`crate::contract::problem_types`] (out of stock, conflict, released, committed) and use
//! [`ClientError::is_not_found`] for 404s. Every reservation call is idempotent, so a caller may
//! repeat it after a timeout; `reserve` also sends its reservation id as the `Idempotency-Key`,
//! which marks it as safe to retry.

use axum::http::Method;
use flotilla_chassis::Caller;
use flotilla_chassis::pagination::Page;
use flotilla_chassis::transport::{ClientError, ServiceClient, Transport};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::NAME;
use crate::contract::{
    ExpiryPass, InventorySummary, Reservation, ReservationStatus, ReserveRequest, SetStock,
    StockLevel,
};
use crate::domain::ReservationId;

/// Characters left as-is in a path segment: RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client for the inventory service.
#[derive(Debug, Clone)]
pub struct InventoryClient {
    inner: ServiceClient,
}

impl InventoryClient {
    /// A client that reaches the inventory over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(NAME, transport),
        }
    }

    /// `GET /stock/{product_id}`: units that can still be reserved (404 when the product has
    /// no stock).
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn stock(&self, product_id: &str) -> Result<StockLevel, ClientError> {
        self.inner
            .get(&format!("/stock/{}", segment(product_id)), None)
            .await
    }

    /// `PUT /stock/{product_id}`: sets the units that can be reserved; `caller` must be an
    /// admin (403 otherwise), `available` 0 to 1e9 (422 otherwise).
    #[tracing::instrument(skip(self, caller), fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn set_stock(
        &self,
        caller: &Caller,
        product_id: &str,
        available: i64,
    ) -> Result<StockLevel, ClientError> {
        self.inner
            .send(
                Method::PUT,
                &format!("/stock/{}", segment(product_id)),
                Some(caller),
                &SetStock { available },
            )
            .await
    }

    /// `POST /reservations`: holds every line or none (409 `out-of-stock`); repeating it with
    /// the same lines returns the reservation as it is now, with different lines is a 409
    /// `reservation-conflict`.
    #[tracing::instrument(skip_all, fields(reservation_id = %req.reservation_id), err(level = "debug"))]
    pub async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation, ClientError> {
        // An id the service will refuse (422) may not be a valid header value either: send it
        // without the key and let the service say what is wrong.
        if ReservationId::parse(&req.reservation_id).is_err() {
            return self
                .inner
                .send(Method::POST, "/reservations", None, req)
                .await;
        }
        self.inner
            .send_idempotent(
                Method::POST,
                "/reservations",
                &req.reservation_id,
                None,
                req,
            )
            .await
    }

    /// `POST /reservations/{id}/commit`: the units are sold. Repeating it succeeds; a released
    /// (or expired) reservation is a 409 `reservation-released`.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn commit(&self, reservation_id: &str) -> Result<Reservation, ClientError> {
        self.inner
            .send_without_body(Method::POST, &action_path(reservation_id, "commit"), None)
            .await
    }

    /// `POST /reservations/{id}/release`: the units go back to stock. Repeating it succeeds; a
    /// committed reservation is a 409 `reservation-committed`; a 404 means there was never such
    /// a reservation (nothing to release).
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn release(&self, reservation_id: &str) -> Result<Reservation, ClientError> {
        self.inner
            .send_without_body(Method::POST, &action_path(reservation_id, "release"), None)
            .await
    }

    /// `GET /reservations/{id}`: the reservation as it is now.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn reservation(&self, reservation_id: &str) -> Result<Reservation, ClientError> {
        self.inner
            .get(&format!("/reservations/{}", segment(reservation_id)), None)
            .await
    }

    /// `GET /admin/reservations`: one page of reservations, newest first (admins only).
    #[tracing::instrument(skip(self, caller), fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn reservations(
        &self,
        caller: &Caller,
        status: Option<ReservationStatus>,
        page: u32,
        page_size: u32,
    ) -> Result<Page<Reservation>, ClientError> {
        let mut path = format!("/admin/reservations?page={page}&page_size={page_size}");
        if let Some(status) = status {
            path.push_str("&status=");
            path.push_str(status.as_str());
        }
        self.inner.get(&path, Some(caller)).await
    }

    /// `GET /admin/summary`: reservation counts and the units held and sold (admins only).
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn summary(&self, caller: &Caller) -> Result<InventorySummary, ClientError> {
        self.inner.get("/admin/summary", Some(caller)).await
    }

    /// `POST /admin/expire`: runs one expiry pass now (admins only).
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn expire(&self, caller: &Caller) -> Result<ExpiryPass, ClientError> {
        self.inner
            .send_without_body(Method::POST, "/admin/expire", Some(caller))
            .await
    }
}

/// `id` encoded as one path segment, so an odd id reaches the service as the 404 it deserves
/// instead of another route.
fn segment(id: &str) -> String {
    utf8_percent_encode(id, PATH_SEGMENT).to_string()
}

/// `/reservations/{id}/{action}`.
fn action_path(reservation_id: &str, action: &str) -> String {
    format!("/reservations/{}/{action}", segment(reservation_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(segment("p0000001"), "p0000001");
        assert_eq!(segment("../a b?"), "..%2Fa%20b%3F");
        assert_eq!(action_path("r/1", "commit"), "/reservations/r%2F1/commit");
    }
}
