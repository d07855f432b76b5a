//! The catalog's published contract: the request and response bodies of its HTTP API.
//!
//! These types are shared with [`crate::client::CatalogClient`] and with every service that calls
//! the catalog, so changing a field here changes the public API: add fields, never rename or
//! remove them without bumping the contract version.

use flotilla_chassis::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most ids one [`LookupRequest`] may carry (a basket or an order, never the whole catalog).
pub const MAX_LOOKUP_IDS: usize = 100;

/// Default number of products `GET /featured` returns.
pub const DEFAULT_FEATURED: u32 = 8;

/// Most products `GET /featured` returns.
pub const MAX_FEATURED: u32 = 24;

/// A product as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// The product id: `p` followed by seven digits, e.g. `p0000042`.
    #[schema(example = "p0000042")]
    pub id: String,
    /// The stock-keeping unit, unique across the catalog.
    #[schema(example = "KIT-0000042")]
    pub sku: String,
    /// Display name.
    pub name: String,
    /// One to three sentences of description.
    pub description: String,
    /// The slug of the product's category, e.g. `kitchen`.
    #[schema(example = "kitchen")]
    pub category: String,
    /// The unit price.
    pub price: Money,
    /// Public URL of the product's picture, at the gateway:
    /// `/api/catalog/products/{id}/image.svg`.
    pub image_url: String,
    /// When the product was added, RFC 3339.
    #[schema(example = "2025-01-01T00:00:00Z")]
    pub created_at: String,
}

/// A category with the number of products in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    /// URL-safe identifier, e.g. `kitchen`.
    #[schema(example = "kitchen")]
    pub slug: String,
    /// Display name, e.g. `Kitchen`.
    pub name: String,
    /// Products in the category.
    pub product_count: u64,
}

/// `POST /products/lookup`: fetch several products by id in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LookupRequest {
    /// The ids to look up, at most [`MAX_LOOKUP_IDS`] (422 otherwise).
    pub ids: Vec<String>,
}

/// The answer to a [`LookupRequest`]: the products that exist, in the order first asked for
/// (an id asked twice appears once); unknown ids are simply absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LookupResponse {
    /// The products found.
    pub products: Vec<Product>,
}

/// `GET /search`: one page of matches: the fields of a
/// [`Page`](flotilla_chassis::pagination::Page) plus `total_is_lower_bound`: counting stops at 1,000 matches, so a common word answers
/// `total: 1000, total_is_lower_bound: true` ("1,000+") rather than counting every match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    /// The products on this page: the most relevant first, then the remaining matches newest
    /// first (see the README's "Search" section).
    pub items: Vec<Product>,
    /// How many products match, exactly, or at least this many when `total_is_lower_bound`.
    pub total: u64,
    /// True when there are more matches than were counted (`total` is the counting limit).
    #[serde(default)]
    pub total_is_lower_bound: bool,
    /// This page's number (1-based).
    pub page: u32,
    /// The page size used.
    pub page_size: u32,
}
