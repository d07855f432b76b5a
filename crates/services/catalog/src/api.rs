//! The catalog's HTTP surface: handlers and their OpenAPI descriptions (refusals become
//! problem+json in `error`). Handlers stay thin: parse the request into domain
//! types, ask the store, shape the answer.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use flotilla_chassis::extract::{Json, Path, Query};
use flotilla_chassis::pagination::{Page, PageParams, PageRequest};
use flotilla_chassis::problem::Problem;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::contract::{Category, LookupRequest, LookupResponse, Product, ProductId, SearchResults};
use crate::domain::{self, FeaturedLimit, SearchQuery};
use crate::error::CatalogError;
use crate::image;
use crate::store::CatalogStore;

#[derive(Clone)]
pub struct AppState {
    pub store: CatalogStore,
    /// Largest page size the list endpoints accept.
    pub max_page_size: u32,
}

/// The catalog's routes.
pub fn router(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(product_image))
        .routes(routes!(search))
        .routes(routes!(list_categories))
        .routes(routes!(featured))
        .routes(routes!(lookup))
        .with_state(state)
}

/// Echoes at most this much of a caller's unknown id back in a problem's detail.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

fn page_of(items: Vec<Product>, total: u64, page: PageRequest) -> Page<Product> {
    Page {
        items,
        total,
        page: page.page,
        page_size: page.page_size,
    }
}

/// `?page=&page_size=&category=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Products per page (default 20, at most the configured maximum, 100 by default).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Only products of this category (its slug).
    category: Option<String>,
}

/// A page of products ordered by id, optionally of one category.
#[utoipa::path(get, path = "/products", tag = "catalog", params(ListParams),
    responses(
        (status = 200, description = "One page of products", body = Page<Product>),
        (status = 400, description = "Bad paging parameters", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown category", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip(state))]
async fn list_products(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<Product>>, Problem> {
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .validate(state.max_page_size)?;
    let (items, total) = match params.category.as_deref() {
        None => state.store.list(page).await?,
        Some(slug) => state
            .store
            .list_in_category(slug, page)
            .await?
            .ok_or_else(|| CatalogError::UnknownCategory(shorten(slug)))?,
    };
    Ok(axum::Json(page_of(items, total, page)))
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Product id, e.g. p0000042")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(level = "debug", skip(state))]
async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Product>, Problem> {
    let unknown = || CatalogError::UnknownProduct(shorten(&id));
    let product_id = ProductId::parse(&id).ok_or_else(unknown)?;
    let product = state.store.product(product_id).await?.ok_or_else(unknown)?;
    Ok(axum::Json(product))
}

/// A product's picture: a generated SVG, the same for as long as the product exists.
#[utoipa::path(get, path = "/products/{id}/image.svg", tag = "catalog",
    params(("id" = String, Path, description = "Product id, e.g. p0000042")),
    responses(
        (status = 200, description = "The picture", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(level = "debug", skip(state))]
async fn product_image(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let unknown = || CatalogError::UnknownProduct(shorten(&id));
    let product_id = ProductId::parse(&id).ok_or_else(unknown)?;
    let (name, category) = state
        .store
        .product_label(product_id)
        .await?
        .ok_or_else(unknown)?;
    let svg = image::render(&id, &category, &name);
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            // An SVG opened on its own is a document that could run script: this one has
            // none, and its policy says no script may run and nothing may load even so.
            (header::CONTENT_SECURITY_POLICY, IMAGE_CSP),
        ],
        svg,
    ))
}

/// The Content-Security-Policy of a product picture: no script, no fetches, its own inline
/// styles only, sandboxed.
const IMAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// `?q=&page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// What to look for: 1 to 200 characters, not all blank (ASCII whitespace); its words (runs
    /// of letters and digits) must all match, as prefixes. Text without a word matches nothing.
    #[param(
        required = true,
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t\n\f\r ]"
    )]
    q: Option<String>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Products per page (default 20, at most the configured maximum).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// Full-text search over names, descriptions and categories, every match ranked by relevance
/// (see `relevance`), ties newest first.
#[utoipa::path(get, path = "/search", tag = "catalog", params(SearchParams),
    responses(
        (status = 200, description = "One page of matches, the most relevant first (empty when q has no words); \
            total stops at 1000 with total_is_lower_bound set", body = SearchResults),
        (status = 400, description = "Missing or overlong q, bad paging", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip(state))]
async fn search(
    State(state): State<AppState>,
    Query(params): Query<SearchParams>,
) -> Result<axum::Json<SearchResults>, Problem> {
    let query = SearchQuery::parse(params.q.as_deref())?;
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .validate(state.max_page_size)?;
    let (items, matches) = state.store.search(&query, page).await?;
    Ok(axum::Json(SearchResults {
        items,
        total: matches.total,
        total_is_lower_bound: matches.is_lower_bound,
        page: page.page,
        page_size: page.page_size,
    }))
}

/// Every category with its number of products, in display order.
#[utoipa::path(get, path = "/categories", tag = "catalog",
    responses((status = 200, description = "The categories", body = Vec<Category>)))]
#[tracing::instrument(skip(state))]
async fn list_categories(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Category>>, Problem> {
    Ok(axum::Json(state.store.categories().await?))
}

/// `?limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FeaturedParams {
    /// How many products (default 8, 1 to 24).
    #[param(minimum = 1, maximum = 24)]
    limit: Option<u32>,
}

/// A stable selection of products spread across the whole catalog.
#[utoipa::path(get, path = "/featured", tag = "catalog", params(FeaturedParams),
    responses(
        (status = 200, description = "The featured products", body = Vec<Product>),
        (status = 400, description = "limit out of range", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip(state))]
async fn featured(
    State(state): State<AppState>,
    Query(params): Query<FeaturedParams>,
) -> Result<axum::Json<Vec<Product>>, Problem> {
    let limit = FeaturedLimit::parse(params.limit)?;
    let Some(highest) = state.store.highest_id().await? else {
        return Ok(axum::Json(Vec::new()));
    };
    let ids = domain::featured_ids(highest, limit);
    let products = state.store.products_by_ids(&ids).await?;
    Ok(axum::Json(in_order_of(&ids, products)))
}

/// Several products by id; unknown ids are left out.
#[utoipa::path(post, path = "/products/lookup", tag = "catalog", request_body = LookupRequest,
    responses(
        (status = 200, description = "The products that exist, in the order asked for", body = LookupResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "More than 100 ids, or not a lookup request", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(ids = request.ids.len()))]
async fn lookup(
    State(state): State<AppState>,
    Json(request): Json<LookupRequest>,
) -> Result<axum::Json<LookupResponse>, Problem> {
    let ids = domain::lookup_ids(&request.ids)?;
    let products = state.store.products_by_ids(&ids).await?;
    Ok(axum::Json(LookupResponse {
        products: in_order_of(&ids, products),
    }))
}

/// `products` sorted into the order of `ids` (the store returns them in any order).
fn in_order_of(ids: &[ProductId], mut products: Vec<Product>) -> Vec<Product> {
    products.sort_by_cached_key(|p| ids.iter().position(|wanted| *wanted == p.id));
    products
}
