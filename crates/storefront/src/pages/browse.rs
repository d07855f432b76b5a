//! Browsing: a category's products and full-text search, both paged.
//!
//! Page numbers come from the address bar, so they are read leniently: anything that is not a
//! whole number from 1 up (`0`, `-4`, `abc`) shows the first page rather than an error. A page
//! past the last one (an old bookmark, a hand-edited link) redirects (303) to the last page, so
//! the visitor never sees "Page 9999 of 4" with a link to page 9998.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
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

/// The page number in `raw`, or 1 when it is not a whole number from 1 up. A number beyond
/// [`MAX_PAGE`] is past the end of any listing: it is read as `MAX_PAGE`, which
/// [`past_the_end`] then sends to the last page.
pub fn page_number(raw: Option<&str>) -> u32 {
    let Some(digits) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return 1;
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 1;
    }
    match digits.trim_start_matches('0') {
        "" => 1,
        n => n.parse::<u32>().map_or(MAX_PAGE, |n| n.min(MAX_PAGE)),
    }
}

/// A redirect to the last page (page 1 of an empty listing) when `page`, showing `shown` items
/// of a listing `pages` long, is past it; `href(n)` links page `n`. A page with items on it is
/// never past the end: a search whose count is a lower bound may have more than `pages`.
fn past_the_end(
    page: u32,
    pages: u64,
    shown: usize,
    href: impl Fn(u32) -> String,
) -> Option<Response> {
    let last = u32::try_from(pages.max(1))
        .unwrap_or(MAX_PAGE)
        .min(MAX_PAGE);
    (page > last && shown == 0).then(|| Redirect::to(&href(last)).into_response())
}

/// The link to page `n` of a category (relative, so the path is never re-encoded).
fn category_href(n: u32) -> String {
    format!("?page={n}")
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
    if let Some(redirect) = past_the_end(
        listing.page,
        listing.pages(),
        listing.items.len(),
        category_href,
    ) {
        return redirect;
    }
    let title = chrome.category_name(&slug).unwrap_or(&slug).to_owned();
    let pager = Pager::new(&listing, category_href);
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
    let href = |n: u32| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &q)
            .append_pair("page", &n.to_string())
            .finish();
        format!("?{query}")
    };
    if let Some(redirect) = past_the_end(results.page, pages, results.items.len(), href) {
        return redirect;
    }
    let pager = Pager::with_next(results.page, pages, has_next, href);
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
        assert_eq!(page_number(Some("2x")), 1);
        assert_eq!(page_number(Some("")), 1);
        assert_eq!(page_number(Some("007")), 7);
        assert_eq!(page_number(Some("99999999999")), MAX_PAGE);
        assert_eq!(page_number(Some("100001")), MAX_PAGE);
    }

    #[test]
    fn only_an_empty_page_past_the_last_redirects_and_to_the_last() {
        let location = |r: Response| {
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            r.headers()[axum::http::header::LOCATION]
                .to_str()
                .map(str::to_owned)
                .expect("ascii")
        };
        assert!(past_the_end(4, 4, 3, category_href).is_none());
        assert!(past_the_end(1, 0, 0, category_href).is_none());
        // A lower-bound count: page 5 of "4" has items, so it is real.
        assert!(past_the_end(5, 4, 2, category_href).is_none());
        assert_eq!(
            location(past_the_end(9999, 4, 0, category_href).expect("redirect")),
            "?page=4"
        );
        assert_eq!(
            location(past_the_end(2, 0, 0, category_href).expect("redirect")),
            "?page=1"
        );
    }
}
