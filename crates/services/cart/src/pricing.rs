//! Pricing a cart at the moment it is shown: the catalog is asked about the cart's products (one
//! lookup for all lines), its answers become the cart's own [`ProductView`]s, and
//! [`crate::domain::price_cart`] totals the lines with them.
//!
//! A change to a cart asks the catalog first, about every product the reply will show
//! ([`Pricer::snapshot_before_change`]), so a catalog outage fails the request before anything
//! is written; pricing after the change then asks only about what that snapshot lacks.

use flotilla_catalog::client::CatalogClient;
use flotilla_catalog::contract::{MAX_LOOKUP_IDS, Product, ProductId};
use flotilla_chassis::transport::ClientError;

use crate::contract::Cart;
use crate::domain::{self, ProductSnapshot, ProductView, StoredLine};
use crate::error::CartError;
use crate::store::CartStore;

/// Prices carts from the catalog.
#[derive(Debug, Clone)]
pub struct Pricer {
    catalog: CatalogClient,
}

impl Pricer {
    pub fn new(catalog: CatalogClient) -> Self {
        Self { catalog }
    }

    /// Reads `user_id`'s lines and prices them, asking the catalog only about products
    /// `snapshot` has no answer for (none, unless another request changed the cart meanwhile).
    pub async fn priced_cart(
        &self,
        store: &CartStore,
        user_id: &str,
        mut snapshot: ProductSnapshot,
    ) -> Result<Cart, CartError> {
        // The version first (see `CartStore::version`).
        let version = store.version(user_id).await?;
        let lines = store.lines(user_id).await?;
        let unasked = snapshot.unasked(lines.iter().map(|line| &line.product_id));
        self.fetch(&mut snapshot, &unasked).await?;
        let version = u64::try_from(version).unwrap_or(0);
        Ok(domain::price_cart(user_id, version, &lines, &snapshot)?)
    }

    /// The catalog's answer for the products of `lines` plus `extra`, fetched before a change.
    pub async fn snapshot_before_change(
        &self,
        lines: &[StoredLine],
        extra: Option<&ProductId>,
    ) -> Result<ProductSnapshot, ClientError> {
        let mut snapshot = ProductSnapshot::default();
        let ids = snapshot.unasked(lines.iter().map(|line| &line.product_id).chain(extra));
        self.fetch(&mut snapshot, &ids).await?;
        Ok(snapshot)
    }

    /// Asks the catalog about `ids`, in as few calls as the lookup limit allows (one for any cart
    /// within the default `max_lines`).
    async fn fetch(
        &self,
        snapshot: &mut ProductSnapshot,
        ids: &[ProductId],
    ) -> Result<(), ClientError> {
        for chunk in ids.chunks(MAX_LOOKUP_IDS) {
            let asked: Vec<String> = chunk.iter().map(ProductId::to_string).collect();
            let found = self.catalog.lookup(&asked).await?;
            snapshot.record(chunk, found.into_iter().map(view).collect());
        }
        Ok(())
    }
}

/// The cart's view of a product the catalog returned: only what a cart line shows.
fn view(product: Product) -> (ProductId, ProductView) {
    let view = ProductView {
        name: product.name,
        image_url: product.image_url,
        price: product.price,
    };
    (product.id, view)
}
