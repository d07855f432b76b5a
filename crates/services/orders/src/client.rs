//! The typed client the storefront uses to call orders: check out, show an order, list the
//! caller's orders, and (for the ops console) the summary.
//!
//! A thin layer over the chassis [`ServiceClient`]. Every call acts for a [`Caller`]; orders
//! shows a user only their own orders (another user's is a 404). `checkout` sends the
//! idempotency key the browser session chose, so a retried or double-clicked checkout yields
//! the same order.

use axum::http::Method;
use flotilla_chassis::Caller;
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::transport::{ClientError, ServiceClient, Transport};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::NAME;
use crate::contract::{CheckoutRequest, Order, OrdersSummary};

/// Characters left as-is in a path segment: RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client for the orders service.
#[derive(Debug, Clone)]
pub struct OrdersClient {
    inner: ServiceClient,
}

impl OrdersClient {
    /// A client that reaches orders over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(NAME, transport),
        }
    }

    /// `POST /`: checks out the caller's cart. The order comes back `CONFIRMED` or `CANCELLED`
    /// when the saga finished quickly (201), otherwise `PENDING` (202: poll [`Self::order`]).
    /// Repeating the call with the same key and request returns the same order; with another
    /// request it is a 409 (`idempotency-conflict`). 422 for an invalid address or card, an
    /// empty cart or an undeliverable destination; 409 `product-unavailable`; 503 when a
    /// dependency is down (nothing was stored).
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn checkout(
        &self,
        caller: &Caller,
        idempotency_key: &str,
        req: &CheckoutRequest,
    ) -> Result<Order, ClientError> {
        self.inner
            .send_idempotent(Method::POST, "/", idempotency_key, Some(caller), req)
            .await
    }

    /// `GET /{id}`: one of the caller's orders ([`ClientError::is_not_found`] for an unknown
    /// id and for another user's order alike).
    #[tracing::instrument(skip(self, caller), fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn order(&self, caller: &Caller, id: &str) -> Result<Order, ClientError> {
        self.inner.get(&order_path(id), Some(caller)).await
    }

    /// `GET /`: the caller's orders, newest first.
    #[tracing::instrument(skip(self, caller), fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn list(
        &self,
        caller: &Caller,
        page: PageParams,
    ) -> Result<Page<Order>, ClientError> {
        self.inner.get(&list_path(page), Some(caller)).await
    }

    /// `GET /admin/summary`: orders per status (admins only; 403 otherwise).
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn summary(&self, caller: &Caller) -> Result<OrdersSummary, ClientError> {
        self.inner.get("/admin/summary", Some(caller)).await
    }
}

/// `/{id}` with the id encoded as one path segment, so an odd id reaches the service as the
/// 404 it deserves instead of another route.
fn order_path(id: &str) -> String {
    format!("/{}", utf8_percent_encode(id, PATH_SEGMENT))
}

/// `/?page=&page_size=` with only the parameters given.
fn list_path(page: PageParams) -> String {
    let params: Vec<String> = [("page", page.page), ("page_size", page.page_size)]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
        .collect();
    if params.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{}", params.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(order_path("ord_1"), "/ord_1");
        assert_eq!(order_path("admin/summary"), "/admin%2Fsummary");
    }

    #[test]
    fn list_paths_carry_only_the_given_parameters() {
        assert_eq!(list_path(PageParams::default()), "/");
        let page = PageParams {
            page: Some(2),
            page_size: Some(5),
        };
        assert_eq!(list_path(page), "/?page=2&page_size=5");
        let size_only = PageParams {
            page: None,
            page_size: Some(5),
        };
        assert_eq!(list_path(size_only), "/?page_size=5");
    }
}
