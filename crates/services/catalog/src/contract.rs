//! The catalog's published contract: the request and response bodies of its HTTP API.
//!
//! These types are shared with [`crate::client::CatalogClient`] and with every service that calls
//! the catalog, so changing a field here changes the public API: add fields, never rename or
//! remove them without bumping the contract version.

use flotilla_chassis::Money;
use flotilla_chassis::events::PublishedEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/catalog/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events catalog publishes (none): part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[];

/// Most ids one [`LookupRequest`] may carry (a basket or an order, never the whole catalog).
pub const MAX_LOOKUP_IDS: usize = 100;

/// Longest search text `GET /search` accepts, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Default number of products `GET /featured` returns.
pub const DEFAULT_FEATURED: u32 = 8;

/// Most products `GET /featured` returns.
pub const MAX_FEATURED: u32 = 24;

/// A product id: `p` followed by exactly seven digits. The number is also the product's position
/// in the deterministic catalog and its row id in the SQLite full-text index.
///
/// The one definition of a product id for every service that names products (cart, inventory,
/// orders): on the wire it is the text `p0000042`; text of another shape names no product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(u32);

impl ProductId {
    /// The largest number a seven-digit id holds.
    pub const MAX_NUMBER: u32 = 9_999_999;

    /// The id with this number, if it fits in seven digits and is not zero.
    pub fn from_number(n: u64) -> Option<Self> {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=Self::MAX_NUMBER).contains(n))
            .map(Self)
    }

    /// Parses `p0000042`; anything else is `None` (such a product cannot exist).
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix('p')?;
        if digits.len() != 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok().and_then(Self::from_number)
    }

    /// The number in the id.
    pub fn number(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for ProductId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{:07}", self.0)
    }
}

impl std::str::FromStr for ProductId {
    type Err = InvalidProductId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(InvalidProductId)
    }
}

/// Text that is not a product id (`p` followed by seven digits, not all zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a product id is `p` followed by seven digits, e.g. p0000042")]
pub struct InvalidProductId;

impl Serialize for ProductId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProductId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A product as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// The product id: `p` followed by seven digits, e.g. `p0000042`.
    #[schema(value_type = String, example = "p0000042")]
    pub id: ProductId,
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
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
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
    /// The products on this page, the most relevant first (ties newest first).
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
