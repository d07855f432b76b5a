//! The storefront: the shop's web pages, rendered on the server from what the catalog, cart,
//! identity, orders and shipping services answer. It is a backend-for-frontend and owns no data.
//!
//! Every page has one critical call (the thing the page is about) and a few optional ones (the
//! category navigation, the cart count in the header, featured products). They run concurrently;
//! when an optional one fails the page renders anyway with a notice, and when the critical one's
//! service is down the answer is a friendly 503 page. Pages are plain HTML with no JavaScript:
//! every form is a POST answered with a 303 redirect, or with the form again and its message.
//!
//! Cross-site form posts are refused by tower-http's [`CsrfLayer`], which implements the
//! token-free scheme of Go 1.25 (`Sec-Fetch-Site`, with an `Origin`/`Host` fallback for old
//! browsers). Together with `SameSite=Lax` on the session cookie this needs no per-form token
//! and no server state, which a stateless backend-for-frontend cannot keep anyway.

mod assets;
mod countries;
mod error;
mod forms;
mod pages;
mod session;
mod shop;
mod views;

use axum::http::{HeaderName, HeaderValue};
use axum::routing::get;
use flotilla_chassis::{Service, ServiceContext, ServiceSpec, StartError};
use serde::Deserialize;
use std::sync::Arc;
use tower_http::csrf::CsrfLayer;

pub use error::error_page;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::shop::Shop;

/// The service's name: its configuration section.
pub const NAME: &str = "storefront";

/// How hosts start the storefront.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: false,
};

/// Largest page size the catalog accepts by default; asking for more would turn every listing
/// into an error.
const MAX_PAGE_SIZE: u32 = 100;

/// Most featured products the catalog returns (`flotilla_catalog::contract::MAX_FEATURED`).
const MAX_FEATURED: u32 = flotilla_catalog::contract::MAX_FEATURED;

/// The `[storefront]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StorefrontConfig {
    /// The shop's name, shown in the header and page titles.
    pub shop_name: String,
    /// Products per page on category and search pages (1 to 100).
    pub page_size: u32,
    /// Featured products on the home page (0 to 24; 0 hides the section).
    pub featured: u32,
    /// How long an optional part of a page (stock badge, shipping estimate, cart count,
    /// categories, featured products) may delay it, in ms (10 to 10000): past it the page is
    /// shown without that part, with a notice.
    pub optional_call_ms: u64,
}

impl Default for StorefrontConfig {
    fn default() -> Self {
        Self {
            shop_name: "Flotilla".to_owned(),
            page_size: 24,
            featured: 8,
            optional_call_ms: 300,
        }
    }
}

impl StorefrontConfig {
    /// Refuses values the services would reject on every request, so the mistake shows at start.
    fn validate(&self) -> Result<(), StartError> {
        if self.shop_name.trim().is_empty() {
            return Err(StartError::Other("storefront.shop_name is empty".into()));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(StartError::Other(format!(
                "storefront.page_size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        if !(10..=10_000).contains(&self.optional_call_ms) {
            return Err(StartError::Other(
                "storefront.optional_call_ms must be between 10 and 10000".into(),
            ));
        }
        if self.featured > MAX_FEATURED {
            return Err(StartError::Other(format!(
                "storefront.featured must be at most {MAX_FEATURED}"
            )));
        }
        Ok(())
    }
}

/// Starts the storefront: reads its configuration and returns its pages.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let config: StorefrontConfig = ctx.config()?;
    config.validate()?;
    let shop = Arc::new(Shop::new(&ctx.peers, config));
    let error_page = error::error_page(&shop.config.shop_name);
    Ok(Service::new(NAME, router(shop), None).with_error_page(error_page))
}

/// Headers every page carries (no script at all: the pages' policy). Pages carry the caller's
/// cart count, so no shared cache may keep them.
const SECURITY_HEADERS: [(HeaderName, &str); 4] =
    flotilla_chassis::layers::page_security_headers("private, no-cache");

/// Adds [`SECURITY_HEADERS`] to a page made outside the router (an error page of the chassis's
/// layers), where it has none of its own.
fn security_headers(headers: &mut axum::http::HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
}

/// The pages, the stylesheet and the HTML 404, behind the CSRF check and the security headers.
fn router(shop: Arc<Shop>) -> OpenApiRouter {
    let csrf = CsrfLayer::new()
        .with_rejection_response(error::csrf_rejection(shop.config.shop_name.clone()));
    let mut router = pages::routes()
        .route("/static/style.css", get(assets::style))
        .route("/static/icon.svg", get(assets::icon))
        .route("/favicon.ico", get(assets::icon))
        .fallback(pages::not_found)
        .layer(csrf);
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router.with_state(shop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        assert!(StorefrontConfig::default().validate().is_ok());
        let bad_page = StorefrontConfig {
            page_size: 0,
            ..Default::default()
        };
        assert!(bad_page.validate().is_err());
        let too_many = StorefrontConfig {
            featured: MAX_FEATURED + 1,
            ..Default::default()
        };
        assert!(too_many.validate().is_err());
    }
}
