//! The typed client other services (the storefront, orders at checkout) use to call the cart.
//!
//! A thin layer over the chassis [`ServiceClient`]: every call acts for a [`Caller`], whose cart
//! it reads or changes (the cart service has no way to name another user's cart), and decodes the
//! [`crate::contract`] types.

use axum::http::Method;
use flotilla_chassis::Caller;
use flotilla_chassis::transport::{ClientError, ServiceClient, Transport};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::NAME;
use crate::contract::{Cart, CheckoutClaim, ClaimedCart, SetQuantity, TakenOrder, TakenOut};

/// Characters left as-is in a path segment: RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client for the cart service.
#[derive(Debug, Clone)]
pub struct CartClient {
    inner: ServiceClient,
}

impl CartClient {
    /// A client that reaches the cart over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(NAME, transport),
        }
    }

    /// `GET /`: the caller's cart, priced now.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn get(&self, caller: &Caller) -> Result<Cart, ClientError> {
        self.inner.get("/", Some(caller)).await
    }

    /// `PUT /items/{product_id}`: sets how many of `product_id` the caller's cart holds (0
    /// removes the line). A 404 ([`ClientError::is_not_found`]) means the product is unknown,
    /// a 409 that the cart is full, a 422 that `quantity` is above the maximum.
    #[tracing::instrument(
        skip_all,
        fields(user_id = %caller.user_id, product_id = %product_id, quantity = quantity),
        err(level = "debug")
    )]
    pub async fn set_quantity(
        &self,
        caller: &Caller,
        product_id: &str,
        quantity: u32,
    ) -> Result<Cart, ClientError> {
        self.inner
            .send(
                Method::PUT,
                &item_path(product_id),
                Some(caller),
                &SetQuantity { quantity },
            )
            .await
    }

    /// `DELETE /items/{product_id}`: removes `product_id` from the caller's cart (removing an
    /// absent line succeeds).
    #[tracing::instrument(
        skip_all,
        fields(user_id = %caller.user_id, product_id = %product_id),
        err(level = "debug")
    )]
    pub async fn remove(&self, caller: &Caller, product_id: &str) -> Result<Cart, ClientError> {
        self.inner
            .send_without_body(Method::DELETE, &item_path(product_id), Some(caller))
            .await
    }

    /// `PUT /claims/{order_id}`: claims the caller's cart at `claim.version` for the checkout
    /// of `order_id`. A 409 means the cart cannot be checked out now: its problem `type` is
    /// [`crate::contract::PROBLEM_CART_CLAIMED`] (another order's checkout is running) or
    /// [`crate::contract::PROBLEM_CART_CHANGED`] (the lines changed since that version).
    /// Repeating it for the same order is safe.
    #[tracing::instrument(
        skip_all,
        fields(user_id = %caller.user_id, order_id = %order_id, version = claim.version),
        err(level = "debug")
    )]
    pub async fn claim(
        &self,
        caller: &Caller,
        order_id: &str,
        claim: &CheckoutClaim,
    ) -> Result<ClaimedCart, ClientError> {
        self.inner
            .send(Method::PUT, &claim_path(order_id), Some(caller), claim)
            .await
    }

    /// `DELETE /claims/{order_id}`: ends `order_id`'s claim on the caller's cart, leaving its
    /// lines as they are (the order was not placed, or was cancelled). Repeating it is harmless.
    #[tracing::instrument(
        skip_all,
        fields(user_id = %caller.user_id, order_id = %order_id),
        err(level = "debug")
    )]
    pub async fn release(&self, caller: &Caller, order_id: &str) -> Result<(), ClientError> {
        self.inner
            .send_empty(Method::DELETE, &claim_path(order_id), Some(caller))
            .await
    }

    /// `POST /claims/{order_id}/taken`: order `order_id` was confirmed, so its lines leave the
    /// caller's cart and its claim ends. Repeating it (or `order.confirmed` arriving too) takes
    /// nothing out a second time.
    #[tracing::instrument(
        skip_all,
        fields(user_id = %caller.user_id, order_id = %order_id),
        err(level = "debug")
    )]
    pub async fn taken(
        &self,
        caller: &Caller,
        order_id: &str,
        order: &TakenOrder,
    ) -> Result<TakenOut, ClientError> {
        let path = format!("{}/taken", claim_path(order_id));
        self.inner
            .send(Method::POST, &path, Some(caller), order)
            .await
    }

    /// `DELETE /`: empties the caller's cart.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn clear(&self, caller: &Caller) -> Result<(), ClientError> {
        self.inner
            .send_empty(Method::DELETE, "/", Some(caller))
            .await
    }
}

/// `/items/{product_id}` with the id encoded as one path segment, so an odd id reaches the
/// service as the 404 it deserves instead of another route.
fn item_path(product_id: &str) -> String {
    format!("/items/{}", utf8_percent_encode(product_id, PATH_SEGMENT))
}

/// `/claims/{order_id}` with the id encoded as one path segment.
fn claim_path(order_id: &str) -> String {
    format!("/claims/{}", utf8_percent_encode(order_id, PATH_SEGMENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_are_one_path_segment() {
        assert_eq!(item_path("p0000001"), "/items/p0000001");
        assert_eq!(item_path("../a b?"), "/items/..%2Fa%20b%3F");
    }
}
