//! What every page handler is given: typed clients for the services the storefront calls, its
//! configuration, and the loading of the parts of a page that are nice to have (the category
//! navigation, the cart count in the header, featured products, the shipping cost shown before
//! checkout).
//!
//! Optional calls (categories, cart count, featured products, stock badges, shipping
//! estimates) run under a short deadline of their own (`[storefront] optional_call_ms`, 300 ms
//! by default, within the page's deadline) and their failures are logged and swallowed: a page
//! that cannot show its stock badge is still a page, and shows a notice instead. The deadline
//! travels with the call, so the resilience stack cuts it and counts the cut against the
//! upstream: a dependency answering in 5 s costs the first pages 300 ms each, until its circuit
//! opens, and then nothing (RELIABILITY.md L4).

use flotilla_cart::client::CartClient;
use flotilla_catalog::client::CatalogClient;
use flotilla_catalog::contract::{Category, Product, SearchResults};
use flotilla_chassis::request_context;
use flotilla_chassis::transport::{ClientError, Peers};
use flotilla_chassis::{Caller, Money, Page, PageParams};
use flotilla_identity::client::IdentityClient;
use flotilla_inventory::client::InventoryClient;
use flotilla_orders::client::OrdersClient;
use flotilla_shipping::client::ShippingClient;
use flotilla_shipping::contract::QuoteRequest;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

use crate::StorefrontConfig;
use crate::countries;
use crate::views::{Chrome, ShippingEstimate, Stock};

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
    /// Stock badges.
    pub inventory: InventoryClient,
    /// Shipping quotes shown before checkout.
    pub shipping: ShippingClient,
    /// The `[storefront]` section.
    pub config: StorefrontConfig,
}

impl Shop {
    /// Clients for the peers as `peers` reaches them (in-process or remote, it does not matter).
    pub fn new(peers: &Peers, config: StorefrontConfig) -> Self {
        Self {
            catalog: CatalogClient::cached(peers),
            cart: CartClient::new(peers.transport(flotilla_cart::NAME)),
            identity: IdentityClient::new(peers.transport(flotilla_identity::NAME)),
            orders: OrdersClient::new(peers.transport(flotilla_orders::NAME)),
            inventory: InventoryClient::new(peers.transport(flotilla_inventory::NAME)),
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
        self.optional("categories", self.catalog.categories()).await
    }

    /// The home page's featured products, or `None` when the catalog could not say.
    pub async fn featured(&self) -> Option<Vec<Product>> {
        if self.config.featured == 0 {
            return Some(Vec::new());
        }
        self.optional("featured", self.catalog.featured(self.config.featured))
            .await
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
        self.optional("shipping quote", self.shipping.quote(&request))
            .await
            .map(|quote| quote.amount)
    }

    /// What shipping `items` items to the shop's default country costs, for the product and
    /// cart pages (`None` when shipping could not say, or for no items), with `subtotal` plus
    /// shipping when a subtotal is given.
    pub async fn shipping_estimate(
        &self,
        items: u32,
        subtotal: Option<Money>,
    ) -> Option<ShippingEstimate> {
        if items == 0 {
            return None;
        }
        let amount = self
            .shipping_cost(countries::DEFAULT, ESTIMATE_POSTAL_CODE, items)
            .await?;
        Some(ShippingEstimate {
            country: countries::name_of(countries::DEFAULT),
            amount,
            total: subtotal.and_then(|subtotal| subtotal.checked_add(amount).ok()),
        })
    }

    /// The stock badge of product `id` (`None` when the inventory could not say; a product it
    /// holds no stock of is out of stock).
    pub async fn stock(&self, id: &str) -> Option<Stock> {
        let level = async {
            match self.inventory.stock(id).await {
                Ok(level) => Ok(Stock::of(level.available)),
                Err(error) if error.is_not_found() => Ok(Stock::Out),
                Err(error) => Err(error),
            }
        };
        self.optional("stock", level).await
    }

    /// Items in the caller's cart (`None` when anonymous or when the cart could not say).
    async fn cart_count(&self, caller: Option<&Caller>) -> Option<u32> {
        let caller = caller?;
        self.optional("cart count", self.cart.get(caller))
            .await
            .map(|cart| cart.item_count)
    }
}

impl Shop {
    /// Runs an optional call under the optional-call deadline (or the page's, if sooner): its
    /// answer, or `None` after a failure or at the deadline.
    async fn optional<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Option<T> {
        let budget = Duration::from_millis(self.config.optional_call_ms);
        let mut deadline = Instant::now() + budget;
        if let Some(page) = request_context::current_deadline() {
            deadline = deadline.min(page);
        }
        // The deadline cuts the call in the resilience stack (and counts against the
        // upstream); the timeout is only a backstop for a call that ignores it.
        let call = request_context::with_deadline(Some(deadline), call);
        match tokio::time::timeout_at(deadline + OPTIONAL_CALL_GRACE, call).await {
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
}

/// How long past its deadline an optional call is waited for before it is dropped.
const OPTIONAL_CALL_GRACE: Duration = Duration::from_millis(50);

/// Postal code of a shipping estimate made before an address is typed: shipping wants one in a
/// quote but prices by country and item count only, so any valid code gives the price.
pub const ESTIMATE_POSTAL_CODE: &str = "unknown";
