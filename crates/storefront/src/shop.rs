//! What every page handler is given: typed clients for the services the storefront calls, its
//! configuration, and the loading of the parts of a page that are nice to have (the category
//! navigation, the cart count in the header, featured products, the shipping cost shown before
//! checkout).
//!
//! Optional calls are bounded by [`OPTIONAL_CALL_TIMEOUT`] and their failures are logged and
//! swallowed: a page that cannot show its category links is still a page.

use flotilla_cart::client::CartClient;
use flotilla_catalog::client::CatalogClient;
use flotilla_catalog::contract::{Category, Product, SearchResults};
use flotilla_chassis::transport::{ClientError, Peers};
use flotilla_chassis::{Caller, Money, Page, PageParams};
use flotilla_identity::client::IdentityClient;
use flotilla_orders::client::OrdersClient;
use flotilla_shipping::client::ShippingClient;
use flotilla_shipping::contract::QuoteRequest;
use std::future::Future;
use std::time::Duration;

use crate::StorefrontConfig;
use crate::views::Chrome;

/// How long an optional call may delay a page. Short, because the page is useful without it and
/// a slow dependency should cost a missing cart count, not a slow shop.
const OPTIONAL_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The storefront's shared state.
pub struct Shop {
    /// The catalog: products, categories, search.
    pub catalog: CatalogClient,
    /// The cart of the logged-in caller.
    pub cart: CartClient,
    /// Sign-up and log-in.
    pub identity: IdentityClient,
    /// Checkout and the caller's orders.
    pub orders: OrdersClient,
    /// Shipping quotes shown before checkout.
    pub shipping: ShippingClient,
    /// The `[storefront]` section.
    pub config: StorefrontConfig,
}

impl Shop {
    /// Clients for the peers as `peers` reaches them (in-process or remote, it does not matter).
    pub fn new(peers: &Peers, config: StorefrontConfig) -> Self {
        Self {
            catalog: CatalogClient::new(peers.transport(flotilla_catalog::NAME)),
            cart: CartClient::new(peers.transport(flotilla_cart::NAME)),
            identity: IdentityClient::new(peers.transport(flotilla_identity::NAME)),
            orders: OrdersClient::new(peers.transport(flotilla_orders::NAME)),
            shipping: ShippingClient::new(peers.transport(flotilla_shipping::NAME)),
            config,
        }
    }

    /// The header of a page for `caller`: categories and cart count, loaded concurrently.
    pub async fn chrome(&self, caller: Option<&Caller>) -> Chrome {
        let (categories, count) = tokio::join!(self.categories(), self.cart_count(caller));
        let mut chrome = self.bare_chrome(caller).with_categories(categories);
        if caller.is_some() {
            chrome = chrome.with_cart_count(count);
        }
        chrome
    }

    /// A header without anything loaded: for pages that must not wait on other services.
    pub fn bare_chrome(&self, caller: Option<&Caller>) -> Chrome {
        Chrome::new(&self.config.shop_name, caller.is_some())
    }

    /// The category navigation, or `None` when the catalog could not say.
    pub async fn categories(&self) -> Option<Vec<Category>> {
        optional("categories", self.catalog.categories()).await
    }

    /// The home page's featured products, or `None` when the catalog could not say.
    pub async fn featured(&self) -> Option<Vec<Product>> {
        if self.config.featured == 0 {
            return Some(Vec::new());
        }
        optional("featured", self.catalog.featured(self.config.featured)).await
    }

    /// One page of the products of category `slug`.
    pub async fn products_in(
        &self,
        slug: &str,
        page: PageParams,
    ) -> Result<Page<Product>, ClientError> {
        self.catalog.list(page, Some(slug)).await
    }

    /// One page of the products matching `q`, most relevant first.
    pub async fn search(&self, q: &str, page: PageParams) -> Result<SearchResults, ClientError> {
        self.catalog.search(q, page).await
    }

    /// What shipping `items` items to `country` costs, or `None` when shipping could not say.
    /// Only for display: orders prices the shipment itself when the order is placed.
    pub async fn shipping_cost(
        &self,
        country: &str,
        postal_code: &str,
        items: u32,
    ) -> Option<Money> {
        let request = QuoteRequest {
            country: country.to_owned(),
            postal_code: postal_code.to_owned(),
            items,
            weight_grams: None,
        };
        optional("shipping quote", self.shipping.quote(&request))
            .await
            .map(|quote| quote.amount)
    }

    /// Items in the caller's cart (`None` when anonymous or when the cart could not say).
    async fn cart_count(&self, caller: Option<&Caller>) -> Option<u32> {
        let caller = caller?;
        optional("cart count", self.cart.get(caller))
            .await
            .map(|cart| cart.item_count)
    }
}

/// Runs an optional call: its answer, or `None` after a failure or [`OPTIONAL_CALL_TIMEOUT`].
async fn optional<T>(
    what: &'static str,
    call: impl Future<Output = Result<T, ClientError>>,
) -> Option<T> {
    match tokio::time::timeout(OPTIONAL_CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            tracing::warn!(what, %error, "optional call failed; rendering without it");
            None
        }
        Err(_) => {
            tracing::warn!(what, "optional call timed out; rendering without it");
            None
        }
    }
}
