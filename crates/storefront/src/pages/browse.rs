//! Browsing: a category's products and full-text search, both paged.
//!
//! Page numbers come from the address bar, so they are read leniently: anything that is not a
//! page number shows the first page rather than an error.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use flotilla_chassis::pagination::MAX_PAGE;
use flotilla_chassis::{Caller, PageParams};
use serde::Deserialize;
use std::sync::Arc;

use crate::error::PageError;
use crate::shop::Shop;
use crate::views::{CategoryPage, Pager, SearchPage, render};

/// Longest search the storefront passes on; longer ones are not searches people type.
const MAX_QUERY_CHARS: usize = 200;

/// `?page=` of a category page.
#[derive(Debug, Default, Deserialize)]
pub struct CategoryQuery {
    page: Option<String>,
}

/// `?q=&page=` of the search page.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    page: Option<String>,
}

/// The page number in `raw`, or 1.
pub fn page_number(raw: Option<&str>) -> u32 {
    raw.and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .unwrap_or(1)
}

/// `GET /category/{slug}`: one page of a category's products.
#[tracing::instrument(skip(shop, caller, query))]
pub async fn category(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    Path(slug): Path<String>,
    query: Result<Query<CategoryQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let params = PageParams {
        page: Some(page_number(query.page.as_deref())),
        page_size: Some(shop.config.page_size),
    };
    let (chrome, listing) = tokio::join!(
        shop.chrome(caller.as_ref()),
        shop.products_in(&slug, params)
    );
    let listing = match listing {
        Ok(listing) => listing,
        Err(error) => return PageError::from_lookup(error).page(chrome),
    };
    let title = chrome.category_name(&slug).unwrap_or(&slug).to_owned();
    let pager = Pager::new(&listing, |n| format!("?page={n}"));
    let page = CategoryPage {
        chrome,
        title,
        total: listing.total,
        products: listing.items,
        pager,
    };
    render(StatusCode::OK, &page)
}

/// `GET /search`: the search form, or one page of results.
#[tracing::instrument(skip_all)]
pub async fn search(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let q = query.q.as_deref().unwrap_or("").trim().to_owned();
    if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS {
        let hint = if q.is_empty() {
            "Type a word or two: a product's name, or what it is for."
        } else {
            "That search is too long. Try a few words."
        };
        let mut chrome = shop.chrome(caller.as_ref()).await;
        chrome.query = q.chars().take(MAX_QUERY_CHARS).collect();
        let status = if q.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return render(status, &SearchPage::hint(chrome, hint));
    }
    let params = PageParams {
        page: Some(page_number(query.page.as_deref())),
        page_size: Some(shop.config.page_size),
    };
    let (mut chrome, results) = tokio::join!(shop.chrome(caller.as_ref()), shop.search(&q, params));
    chrome.query = q.clone();
    let results = match results {
        Ok(results) => results,
        // The catalog refusing the words (too short, odd characters) is the visitor's to fix.
        Err(error) if error.status().is_some_and(|s| s.is_client_error()) => {
            tracing::debug!(%error, "catalog refused the search");
            let hint = "We could not search for that. Try different words.";
            return render(StatusCode::BAD_REQUEST, &SearchPage::hint(chrome, hint));
        }
        Err(error) => return PageError::from(error).page(chrome),
    };
    let pages = results.total.div_ceil(u64::from(results.page_size.max(1)));
    let has_next = u64::from(results.page) < pages
        || (results.total_is_lower_bound
            && results.items.len() as u64 == u64::from(results.page_size));
    let pager = Pager::with_next(results.page, pages, has_next, |n| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &q)
            .append_pair("page", &n.to_string())
            .finish();
        format!("?{query}")
    });
    let page = SearchPage {
        chrome,
        total: results.total,
        total_is_lower_bound: results.total_is_lower_bound,
        products: results.items,
        pager: Some(pager),
        hint: None,
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_are_read_leniently() {
        assert_eq!(page_number(None), 1);
        assert_eq!(page_number(Some("3")), 3);
        assert_eq!(page_number(Some(" 2 ")), 2);
        assert_eq!(page_number(Some("0")), 1);
        assert_eq!(page_number(Some("-4")), 1);
        assert_eq!(page_number(Some("abc")), 1);
        assert_eq!(page_number(Some("99999999999")), 1);
    }
}
