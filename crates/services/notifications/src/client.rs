//! The typed client other services (the storefront's "my messages", the ops console) use to call
//! the notifications service.
//!
//! A thin layer over the chassis [`ServiceClient`]: every call acts for a [`Caller`] (the
//! customer whose messages are read, or the admin asking), encodes query values properly and
//! decodes the [`crate::contract`] types.

use flotilla_chassis::Caller;
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::transport::{ClientError, ServiceClient, Transport};

use crate::NAME;
use crate::contract::Message;

/// A client for the notifications service.
#[derive(Debug, Clone)]
pub struct NotificationsClient {
    inner: ServiceClient,
}

impl NotificationsClient {
    /// A client that reaches the notifications service over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(NAME, transport),
        }
    }

    /// `GET /messages`: one page of the caller's own messages, newest first (a 400 for a
    /// `page_size` above [`crate::contract::MAX_PAGE_SIZE`]).
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id), err(level = "debug"))]
    pub async fn mine(
        &self,
        caller: &Caller,
        page: PageParams,
    ) -> Result<Page<Message>, ClientError> {
        let path = list_path("/messages", page, &[]);
        self.inner.get(&path, Some(caller)).await
    }

    /// `GET /admin/messages`: one page of everyone's messages, newest first, optionally only
    /// those to `user_id` and/or about `order_id`. `caller` must be an admin (403 otherwise).
    #[tracing::instrument(
        skip_all,
        fields(admin = %caller.user_id, user_id = ?user_id, order_id = ?order_id),
        err(level = "debug")
    )]
    pub async fn all(
        &self,
        caller: &Caller,
        user_id: Option<&str>,
        order_id: Option<&str>,
        page: PageParams,
    ) -> Result<Page<Message>, ClientError> {
        let filters = [("user_id", user_id), ("order_id", order_id)];
        let path = list_path("/admin/messages", page, &filters);
        self.inner.get(&path, Some(caller)).await
    }
}

/// `path` with the paging parameters and the filters that are set, encoded as a query string.
fn list_path(path: &str, page: PageParams, filters: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(n) = page.page {
        query.append_pair("page", &n.to_string());
    }
    if let Some(n) = page.page_size {
        query.append_pair("page_size", &n.to_string());
    }
    for (name, value) in filters {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_and_unset_ones_left_out() {
        assert_eq!(
            list_path("/messages", PageParams::default(), &[]),
            "/messages"
        );
        let page = PageParams {
            page: Some(2),
            page_size: Some(10),
        };
        assert_eq!(
            list_path(
                "/admin/messages",
                page,
                &[("user_id", None), ("order_id", Some("o 1&x=y"))]
            ),
            "/admin/messages?page=2&page_size=10&order_id=o+1%26x%3Dy"
        );
    }
}
