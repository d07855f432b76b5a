//! The typed client other services (cart, storefront, ...) use to call the catalog.
//!
//! It is a thin layer over the chassis [`ServiceClient`]: it builds paths with properly encoded
//! query values and path segments and decodes the [`crate::contract`] types. It never needs a
//! caller identity, since everything the catalog serves is public.
//!
//! The cart and the storefront read through a short cache ([`CatalogClient::with_read_cache`],
//! the caller's `[resilience.read_cache]` policy): a product page or a cart keeps its products,
//! a little stale, while the catalog is down, and [`CatalogClient::lookup`] keeps each product
//! it is told under the product's own path, so a cart priced once can be priced again from the
//! cache when the catalog fails.

use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::transport::read_cache::ReadCache;
use flotilla_chassis::transport::{ClientError, Peers, ServiceClient, Transport};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::NAME;
use crate::contract::{Category, LookupRequest, LookupResponse, Product, SearchResults};

/// Characters left as-is in a path segment: RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client for the catalog service.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    inner: ServiceClient,
}

impl CatalogClient {
    /// A client that reaches the catalog over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            inner: ServiceClient::new(NAME, transport),
        }
    }

    /// A client on `peers`' transport to the catalog that reads through the caller's cache of
    /// the catalog (see the module's doc).
    pub fn cached(peers: &Peers) -> Self {
        Self::new(peers.transport(NAME)).with_read_cache(peers.read_cache(NAME))
    }

    /// This client, reading through `cache` (see the module's doc; `None`: no cache).
    pub fn with_read_cache(self, cache: Option<ReadCache>) -> Self {
        Self {
            inner: self.inner.with_read_cache(cache),
        }
    }

    /// `GET /products`: one page of products ordered by id, optionally within one category
    /// (a 404 from the catalog when the category does not exist).
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn list(
        &self,
        page: PageParams,
        category: Option<&str>,
    ) -> Result<Page<Product>, ClientError> {
        // The serializer is not `Send`: build the path before the first await.
        let path = {
            let mut query = page_query(page);
            if let Some(category) = category {
                query.append_pair("category", category);
            }
            with_query("/products", query.finish())
        };
        self.inner.get(&path, None).await
    }

    /// `GET /products/{id}`: one product ([`ClientError::is_not_found`] when unknown).
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn product(&self, id: &str) -> Result<Product, ClientError> {
        self.inner.get(&product_path(id), None).await
    }

    /// `GET /search`: products matching `q`, most relevant first, with a count that may be a
    /// lower bound.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn search(&self, q: &str, page: PageParams) -> Result<SearchResults, ClientError> {
        let path = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("q", q);
            append_page(&mut query, page);
            with_query("/search", query.finish())
        };
        self.inner.get(&path, None).await
    }

    /// `GET /categories`: every category with its product count.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn categories(&self) -> Result<Vec<Category>, ClientError> {
        self.inner.get("/categories", None).await
    }

    /// `GET /featured`: a stable selection of `limit` products (at most
    /// [`crate::contract::MAX_FEATURED`]).
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn featured(&self, limit: u32) -> Result<Vec<Product>, ClientError> {
        self.inner
            .get(&format!("/featured?limit={limit}"), None)
            .await
    }

    /// `POST /products/lookup`: the products among `ids` that exist (at most
    /// [`crate::contract::MAX_LOOKUP_IDS`] ids per call).
    #[tracing::instrument(skip(self), fields(ids = ids.len()), err(level = "debug"))]
    pub async fn lookup(&self, ids: &[String]) -> Result<Vec<Product>, ClientError> {
        let Some(cache) = self.inner.read_cache() else {
            return self.fetch_lookup(ids).await;
        };
        // Fresh copies first; the rest asked in one call, each answer kept under its path.
        let mut found = Vec::with_capacity(ids.len());
        let mut asked = Vec::new();
        for id in ids {
            match cache.fresh(&product_path(id)) {
                Some(body) => found.push(self.inner.decode::<Product>(&body)?),
                None => asked.push(id.clone()),
            }
        }
        if asked.is_empty() {
            return Ok(found);
        }
        match self.fetch_lookup(&asked).await {
            Ok(products) => {
                for product in &products {
                    if let Ok(body) = serde_json::to_vec(product) {
                        cache.put(&product_path(&product.id.to_string()), body.into());
                    }
                }
                found.extend(products);
                Ok(found)
            }
            // The catalog is unwell: stale copies of every product asked for, or the error.
            Err(error) if ReadCache::covers(&error) => {
                for id in &asked {
                    let Some(body) = cache.stale(&product_path(id)) else {
                        return Err(error);
                    };
                    found.push(self.inner.decode::<Product>(&body)?);
                }
                Ok(found)
            }
            Err(error) => Err(error),
        }
    }

    async fn fetch_lookup(&self, ids: &[String]) -> Result<Vec<Product>, ClientError> {
        let body = LookupRequest { ids: ids.to_vec() };
        let response: LookupResponse = self.inner.query("/products/lookup", None, &body).await?;
        Ok(response.products)
    }
}

/// `/products/{id}` with `id` encoded as one path segment.
fn product_path(id: &str) -> String {
    format!("/products/{}", utf8_percent_encode(id, PATH_SEGMENT))
}

fn page_query(page: PageParams) -> form_urlencoded::Serializer<'static, String> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    append_page(&mut query, page);
    query
}

fn append_page(query: &mut form_urlencoded::Serializer<'_, String>, page: PageParams) {
    if let Some(n) = page.page {
        query.append_pair("page", &n.to_string());
    }
    if let Some(n) = page.page_size {
        query.append_pair("page_size", &n.to_string());
    }
}

fn with_query(path: &str, query: String) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments_and_query_values() {
        assert_eq!(product_path("p0000001"), "/products/p0000001");
        assert_eq!(product_path("a/b c?"), "/products/a%2Fb%20c%3F");
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("q", "tea & cake?");
        append_page(
            &mut q,
            PageParams {
                page: Some(2),
                page_size: None,
            },
        );
        assert_eq!(
            with_query("/search", q.finish()),
            "/search?q=tea+%26+cake%3F&page=2"
        );
        assert_eq!(with_query("/products", String::new()), "/products");
    }
}
