//! The caller's orders: one order's page, where checkout leads, and the order history.
//!
//! Orders answers a checkout before its saga (reserve stock, take payment, book the shipment)
//! has finished, so an order's page is often first seen while the order is pending. It then
//! reloads itself every two seconds with `<meta http-equiv="refresh">`, the one way to poll
//! without script, and stops once the order is confirmed or cancelled; a plain Refresh link does
//! the same by hand. An order that is not the caller's is answered like one that does not exist.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use flotilla_chassis::{Caller, PageParams};
use flotilla_orders::contract::Order;
use serde::Deserialize;
use std::sync::Arc;

use crate::countries;
use crate::error::PageError;
use crate::forms::OrderId;
use crate::pages::browse::page_number;
use crate::session;
use crate::shop::Shop;
use crate::views::capitalized;
use crate::views::{
    Chrome, HistoryRow, OrderPage, OrderRow, OrdersPage, Pager, Progress, display_time, render,
};

/// Orders per page of the history: a shopper's orders of the last year or two fit on one.
const PAGE_SIZE: u32 = 20;

/// `?page=` of the history.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    page: Option<String>,
}

/// The page of order `id` (a plain id needs no encoding in a path).
pub fn path(id: &OrderId) -> String {
    format!("/orders/{}", id.as_str())
}

/// `GET /orders/{id}`.
#[tracing::instrument(skip(shop, caller))]
pub async fn show(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Response {
    let id = OrderId::parse(&id);
    let Some(caller) = caller else {
        let next = id.as_ref().map_or_else(|| "/orders".to_owned(), path);
        return session::to_login(&next);
    };
    let Some(id) = id else {
        return PageError::NotFound.page(shop.chrome(Some(&caller)).await);
    };
    let (chrome, order) = tokio::join!(
        shop.chrome(Some(&caller)),
        shop.orders.order(&caller, id.as_str())
    );
    match order {
        Ok(order) => render(StatusCode::OK, &order_page(chrome, order)),
        Err(error) => PageError::from_lookup(error).page(chrome),
    }
}

/// `GET /orders`: one page of the caller's orders, newest first.
#[tracing::instrument(skip_all)]
pub async fn history(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Some(caller) = caller else {
        return session::to_login("/orders");
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let params = PageParams {
        page: Some(page_number(query.page.as_deref())),
        page_size: Some(PAGE_SIZE),
    };
    let (chrome, listing) = tokio::join!(
        shop.chrome(Some(&caller)),
        shop.orders.list(&caller, params)
    );
    let listing = match listing {
        Ok(listing) => listing,
        Err(error) => return PageError::from(error).page(chrome),
    };
    let pager = Pager::new(&listing, |n| format!("?page={n}"));
    let page = OrdersPage {
        chrome,
        orders: listing.items.iter().map(OrderRow::from).collect(),
        total: listing.total,
        pager,
    };
    render(StatusCode::OK, &page)
}

/// The page of `order`.
fn order_page(chrome: Chrome, order: Order) -> OrderPage {
    let progress = Progress::of(order.status);
    let reason = match progress {
        Progress::Cancelled => cancel_reason(order.reason.as_deref()),
        _ => String::new(),
    };
    let history = order
        .history
        .iter()
        .map(|change| HistoryRow::new(&change.status, change.note.as_deref(), change.at))
        .collect();
    OrderPage {
        country: countries::name_of(&order.address.country),
        placed: display_time(order.created_at),
        progress,
        reason,
        history,
        chrome,
        order,
    }
}

/// Why an order was cancelled, as a sentence. Orders words its reasons for customers already
/// ("payment declined: insufficient funds"); this only makes them read as a sentence.
fn cancel_reason(reason: Option<&str>) -> String {
    match reason.map(capitalized).filter(|r| !r.is_empty()) {
        Some(reason) if reason.ends_with(['.', '!', '?']) => reason,
        Some(reason) => format!("{reason}."),
        None => "We could not complete your order.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reasons_read_as_sentences() {
        assert_eq!(cancel_reason(None), "We could not complete your order.");
        assert_eq!(
            cancel_reason(Some("payment declined: insufficient funds")),
            "Payment declined: insufficient funds."
        );
        assert_eq!(
            cancel_reason(Some("  ")),
            "We could not complete your order."
        );
        assert_eq!(cancel_reason(Some("Done.")), "Done.");
    }
}
