//! The page templates (askama, under `templates/`) and the data each one is rendered from.
//!
//! Every page extends `base.html` and carries a [`Chrome`]: the header with the shop's name, the
//! search box, the category links and the account links. askama escapes every value for HTML;
//! no template marks data as safe, so text from the services can never become markup. The pages
//! about orders (checkout, an order, the history) live in [`orders`].

mod orders;

pub use orders::{
    AddressFields, CheckoutPage, FormMessages, HistoryRow, OrderPage, OrderRow, OrdersPage,
    Progress, ShippingEstimate, display_time,
};

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use flotilla_cart::contract::Cart;
use flotilla_catalog::contract::{Category, Product};
use flotilla_chassis::Page;

/// `text`, trimmed, as a page shows it, with its first letter upper-case.
pub fn capitalized(text: &str) -> String {
    let mut chars = text.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The header shared by every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The shop's name.
    pub shop_name: String,
    /// Category links (empty when unknown).
    pub categories: Vec<Category>,
    /// The logged-in caller's account links, `None` for an anonymous visitor.
    pub account: Option<Account>,
    /// True when an optional part of the page could not be loaded.
    pub degraded: bool,
    /// What the search box shows (the current search, if any).
    pub query: String,
    /// Appended to the header's "Log in" and "Sign up" links (`?next=...` on the login and
    /// sign-up pages, so that switching between them keeps where the visitor was going).
    pub account_links_query: String,
}

/// The account links of a logged-in caller.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    /// Items in the cart, when the cart answered.
    pub cart_count: Option<u32>,
}

impl Chrome {
    /// A header with nothing loaded yet.
    pub fn new(shop_name: &str, logged_in: bool) -> Self {
        Self {
            shop_name: shop_name.to_owned(),
            categories: Vec::new(),
            account: logged_in.then_some(Account { cart_count: None }),
            degraded: false,
            query: String::new(),
            account_links_query: String::new(),
        }
    }

    /// Adds the category links; `None` (the catalog did not answer) marks the page degraded.
    pub fn with_categories(mut self, categories: Option<Vec<Category>>) -> Self {
        match categories {
            Some(categories) => self.categories = categories,
            None => self.degraded = true,
        }
        self
    }

    /// Adds the cart count of a logged-in caller; `None` (the cart did not answer) marks the
    /// page degraded.
    pub fn with_cart_count(mut self, count: Option<u32>) -> Self {
        if count.is_none() {
            self.degraded = true;
        }
        if let Some(account) = &mut self.account {
            account.cart_count = count;
        }
        self
    }

    /// The display name of the category `slug`, if the navigation knows it.
    pub fn category_name(&self, slug: &str) -> Option<&str> {
        self.categories
            .iter()
            .find(|c| c.slug == slug)
            .map(|c| c.name.as_str())
    }
}

/// Previous/next links of a paged list.
#[derive(Debug, Clone)]
pub struct Pager {
    /// This page (1-based).
    pub page: u32,
    /// Number of pages (0 for an empty list).
    pub pages: u64,
    /// Link to the previous page.
    pub prev: Option<String>,
    /// Link to the next page.
    pub next: Option<String>,
}

impl Pager {
    /// Links for `page`; `href(n)` builds the link to page `n` (a relative `?...` query, so the
    /// path never needs re-encoding).
    pub fn new<T>(page: &Page<T>, href: impl Fn(u32) -> String) -> Self {
        Self::with_next(
            page.page,
            page.pages(),
            u64::from(page.page) < page.pages(),
            href,
        )
    }

    /// Links for `page` of (at least) `pages`, with a next link when `has_next`: a search
    /// whose count is a lower bound has more pages than its `total` says.
    pub fn with_next(page: u32, pages: u64, has_next: bool, href: impl Fn(u32) -> String) -> Self {
        Self {
            page,
            pages,
            prev: (page > 1).then(|| href(page - 1)),
            next: has_next.then(|| href(page + 1)),
        }
    }
}

/// `GET /`.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// The header.
    pub chrome: Chrome,
    /// Featured products (empty when the catalog did not answer); named like the other
    /// listings' field because `partials/grid.html` reads `products`.
    pub products: Vec<Product>,
}

/// `GET /category/{slug}`.
#[derive(Template)]
#[template(path = "category.html")]
pub struct CategoryPage {
    /// The header.
    pub chrome: Chrome,
    /// The category's display name.
    pub title: String,
    /// The products on this page.
    pub products: Vec<Product>,
    /// Products in the whole category.
    pub total: u64,
    /// Paging links.
    pub pager: Pager,
}

/// `GET /search`.
#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    /// The header (its `query` is the search).
    pub chrome: Chrome,
    /// Results (empty before a search).
    pub products: Vec<Product>,
    /// Matches in all.
    pub total: u64,
    /// True when `total` is a lower bound (shown as "1000+ results").
    pub total_is_lower_bound: bool,
    /// Paging links, once there was a search.
    pub pager: Option<Pager>,
    /// A hint instead of results (empty search, unusable search).
    pub hint: Option<String>,
}

impl SearchPage {
    /// The search form with a hint and no results.
    pub fn hint(chrome: Chrome, hint: &str) -> Self {
        SearchPage {
            chrome,
            products: Vec::new(),
            total: 0,
            total_is_lower_bound: false,
            pager: None,
            hint: Some(hint.to_owned()),
        }
    }
}

/// `GET /product/{id}`.
#[derive(Template)]
#[template(path = "product.html")]
pub struct ProductPage {
    /// The header.
    pub chrome: Chrome,
    /// The product.
    pub product: Product,
    /// Its category's display name.
    pub category_name: String,
    /// A message about the last add-to-cart attempt.
    pub notice: Option<String>,
    /// Its stock badge (`None`: the inventory did not answer in time; the page says so).
    pub stock: Option<Stock>,
    /// Shipping one to the default country (`None`: shipping did not answer in time).
    pub shipping: Option<ShippingEstimate>,
}

/// A product's stock, as its badge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stock {
    /// Ten or more.
    Plenty,
    /// A few left.
    Few(i64),
    /// None.
    Out,
}

impl Stock {
    /// The badge for `available` units.
    pub fn of(available: i64) -> Self {
        match available {
            n if n <= 0 => Stock::Out,
            n if n < 10 => Stock::Few(n),
            _ => Stock::Plenty,
        }
    }

    /// The badge's words.
    pub fn label(&self) -> String {
        match self {
            Stock::Plenty => "In stock".to_owned(),
            Stock::Few(n) => format!("Only {n} left"),
            Stock::Out => "Out of stock".to_owned(),
        }
    }
}

/// `GET /signup`, and the form again after a refusal.
#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    /// The header.
    pub chrome: Chrome,
    /// The name typed so far.
    pub name: String,
    /// The email typed so far (never the password).
    pub email: String,
    /// Why the last attempt was refused.
    pub errors: Vec<String>,
    /// Where to go after signing up (already sanitised).
    pub next: String,
    /// `?next=...` for the link to the login page ([`crate::session::next_query`]).
    pub next_query: String,
}

/// `GET /login`, and the form again after a refusal.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// The header.
    pub chrome: Chrome,
    /// The email typed so far (never the password).
    pub email: String,
    /// Where to go after logging in (already sanitised).
    pub next: String,
    /// `?next=...` for the link to the sign-up page ([`crate::session::next_query`]).
    pub next_query: String,
    /// Why the last attempt was refused, or a note such as "account created".
    pub message: Option<String>,
}

/// `GET /cart`.
#[derive(Template)]
#[template(path = "cart.html")]
pub struct CartPage {
    /// The header.
    pub chrome: Chrome,
    /// The caller's cart.
    pub cart: Cart,
    /// A message about the last change attempted.
    pub notice: Option<String>,
    /// Shipping the cart to the default country (`None`: empty cart, or shipping did not
    /// answer in time; `shipping_unavailable` tells which).
    pub shipping: Option<ShippingEstimate>,
    /// True when shipping was asked and did not answer in time.
    pub shipping_unavailable: bool,
}

/// Any error page: 404, 503, ...
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorView {
    /// The header.
    pub chrome: Chrome,
    /// The status code, shown small.
    pub status: u16,
    /// The headline.
    pub title: &'static str,
    /// What the visitor can do about it.
    pub message: &'static str,
}

/// The last resort when a template fails to render (a bug): static, so it cannot fail too.
const RENDER_FAILED: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>Something went wrong</title></head><body><h1>Something went wrong</h1>\
    <p>Please try again in a moment. <a href=\"/\">Back to the shop</a></p></body></html>";

/// Renders `template` as an HTML response with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                RENDER_FAILED,
            )
                .into_response()
        }
    }
}
