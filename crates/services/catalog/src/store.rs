//! All of the catalog's SQL, in plain sight, and the search index kept beside it. Queries are
//! portable (`$n` placeholders, BIGINT and TEXT columns), the same on SQLite and PostgreSQL;
//! full-text search reads the in-memory [`SearchIndex`], which the store catches up with the
//! `products` table before every search.
//!
//! Every value is bound; the only SQL assembled at run time is a list of `$n` placeholders whose
//! length depends on how many rows or ids there are.

pub(crate) mod search_index;

use flotilla_chassis::clock::{at_millis, millis};
use std::sync::{Arc, PoisonError, RwLock};

use flotilla_chassis::db::{CorruptRow, Db, placeholders};
use flotilla_chassis::pagination::PageRequest;
use flotilla_chassis::{Currency, Migration, Money};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use time::OffsetDateTime;

use crate::contract::{Category, Product, ProductId};
use crate::domain::{SearchQuery, image_url};
use search_index::SearchIndex;

/// The catalog's schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration::portable(1, "init", include_str!("../migrations/0001_init.sql")),
    Migration {
        version: 2,
        name: "search",
        sql: include_str!("../migrations/0002_search.sqlite.sql"),
        sqlite: Some(include_str!("../migrations/0002_search.sqlite.sql")),
        postgres: Some(include_str!("../migrations/0002_search.postgres.sql")),
    },
    Migration {
        version: 3,
        name: "search in memory",
        sql: include_str!("../migrations/0003_search_in_memory.sqlite.sql"),
        sqlite: Some(include_str!(
            "../migrations/0003_search_in_memory.sqlite.sql"
        )),
        postgres: Some(include_str!(
            "../migrations/0003_search_in_memory.postgres.sql"
        )),
    },
];

/// The columns of a product, in [`ProductRow`]'s order (a macro so `concat!` can build
/// `&'static str` queries from it).
macro_rules! product_columns {
    () => {
        "p.id, p.sku, p.name, p.description, p.category_slug, p.price_minor, p.currency, p.created_at"
    };
}

/// A `products` row as stored.
#[derive(Debug)]
struct ProductRow {
    id: String,
    sku: String,
    name: String,
    description: String,
    category_slug: String,
    price_minor: i64,
    currency: String,
    created_at: i64,
}

// By hand, not derived: sqlx's derive macro would compile its drivers a second time (issue 10).
impl sqlx::FromRow<'_, AnyRow> for ProductRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            sku: row.try_get("sku")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            category_slug: row.try_get("category_slug")?,
            price_minor: row.try_get("price_minor")?,
            currency: row.try_get("currency")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl TryFrom<ProductRow> for Product {
    type Error = sqlx::Error;

    fn try_from(row: ProductRow) -> Result<Self, Self::Error> {
        // Only the seeder writes currencies, from a parsed `Currency`; a bad one is corruption.
        let currency =
            Currency::parse(&row.currency).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        // Likewise ids, from a `ProductId`.
        let id =
            ProductId::parse(&row.id).ok_or_else(|| CorruptRow::column("products.id", &row.id))?;
        Ok(Product {
            image_url: image_url(&row.id),
            id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            category: row.category_slug,
            price: Money::new(row.price_minor, currency),
            created_at: at_millis(row.created_at),
        })
    }
}

fn into_products(rows: Vec<ProductRow>) -> Result<Vec<Product>, sqlx::Error> {
    rows.into_iter().map(Product::try_from).collect()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Matches counted at most: beyond it `total` is this figure and a lower bound ("1,000+"), the
/// contract's promise to clients (the index counts every match, cheaply, but the answer keeps
/// its shape).
pub const COUNT_CAP: u64 = 1_000;

/// How many products matched: exact up to [`COUNT_CAP`], a lower bound above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchCount {
    /// Matches counted (at most [`COUNT_CAP`]).
    pub total: u64,
    /// True when there are more than [`COUNT_CAP`] matches.
    pub is_lower_bound: bool,
}

/// Products read per query while catching the search index up (a first start at 100,000
/// products reads them in 20 queries, each indexed before the next is read).
const INDEX_BATCH: i64 = 5_000;

/// The catalog's data: its database and the search index built from it. Cheap to clone (every
/// clone shares the index).
#[derive(Clone)]
pub struct CatalogStore {
    db: Db,
    index: Arc<RwLock<SearchIndex>>,
    /// Held while products are read into the index, so concurrent searches that find it behind
    /// read the new products once.
    catching_up: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for CatalogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogStore").finish_non_exhaustive()
    }
}

impl CatalogStore {
    /// A store over `db` with an empty search index; the first search (or
    /// [`Self::catch_up_index`]) fills it.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            index: Arc::default(),
            catching_up: Arc::default(),
        }
    }

    /// One product by id: a single primary-key lookup (this is the benchmarked hot path).
    pub async fn product(&self, id: ProductId) -> Result<Option<Product>, sqlx::Error> {
        let row: Option<ProductRow> = sqlx::query_as(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products p WHERE p.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(Product::try_from).transpose()
    }

    /// The name and category of a product, all its picture needs.
    pub async fn product_label(
        &self,
        id: ProductId,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT name, category_slug FROM products WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await
    }

    /// One page of all products, ordered by id, with the total.
    pub async fn list(&self, page: PageRequest) -> Result<(Vec<Product>, u64), sqlx::Error> {
        let rows: Vec<ProductRow> = sqlx::query_as(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products p ORDER BY p.id LIMIT $1 OFFSET $2"
        ))
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(self.db.pool())
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
            .fetch_one(self.db.pool())
            .await?;
        Ok((into_products(rows)?, count(total)))
    }

    /// One page of a category's products, ordered by id, with the category's total; `None` when
    /// the category does not exist.
    pub async fn list_in_category(
        &self,
        slug: &str,
        page: PageRequest,
    ) -> Result<Option<(Vec<Product>, u64)>, sqlx::Error> {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT slug FROM categories WHERE slug = $1")
                .bind(slug.to_owned())
                .fetch_optional(self.db.pool())
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows: Vec<ProductRow> = sqlx::query_as(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products p WHERE p.category_slug = $1 ORDER BY p.id LIMIT $2 OFFSET $3"
        ))
        .bind(slug.to_owned())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(self.db.pool())
        .await?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE category_slug = $1")
                .bind(slug.to_owned())
                .fetch_one(self.db.pool())
                .await?;
        Ok(Some((into_products(rows)?, count(total))))
    }

    /// Every category in display order, with its product count.
    pub async fn categories(&self) -> Result<Vec<Category>, sqlx::Error> {
        // One counted index range per category rather than a join and GROUP BY over every product.
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT c.slug, c.name, \
                    (SELECT COUNT(*) FROM products p WHERE p.category_slug = c.slug) \
             FROM categories c ORDER BY c.position",
        )
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(slug, name, n)| Category {
                slug,
                name,
                product_count: count(n),
            })
            .collect())
    }

    /// The products among `ids` that exist, in no particular order.
    pub async fn products_by_ids(&self, ids: &[ProductId]) -> Result<Vec<Product>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Only placeholders are spliced in; the ids themselves are bound.
        let sql = format!(
            concat!(
                "SELECT ",
                product_columns!(),
                " FROM products p WHERE p.id IN ({})"
            ),
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query_as::<_, ProductRow>(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.to_string());
        }
        into_products(query.fetch_all(self.db.pool()).await?)
    }

    /// The product with the highest id (read from the primary-key index, not a scan).
    pub async fn highest_id(&self) -> Result<Option<ProductId>, sqlx::Error> {
        let id: Option<String> = sqlx::query_scalar("SELECT MAX(id) FROM products")
            .fetch_one(self.db.pool())
            .await?;
        Ok(id.as_deref().and_then(ProductId::parse))
    }

    /// One page of the products matching `query`, the most relevant first (see [`crate::relevance`]),
    /// ties newest first, and how many match. Two primary-key reads in the database (the
    /// highest id, the page's products); the matching and ranking are in memory.
    pub async fn search(
        &self,
        query: &SearchQuery,
        page: PageRequest,
    ) -> Result<(Vec<Product>, MatchCount), sqlx::Error> {
        if query.is_empty() {
            let none = MatchCount {
                total: 0,
                is_lower_bound: false,
            };
            return Ok((Vec::new(), none));
        }
        self.catch_up_index().await?;
        let skip = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let take = usize::try_from(page.limit()).unwrap_or(usize::MAX);
        let ranked = self.read_index().search(query.words(), skip, take);
        let ids: Vec<ProductId> = ranked
            .numbers
            .iter()
            .filter_map(|n| ProductId::from_number(u64::from(*n)))
            .collect();
        let mut products = self.products_by_ids(&ids).await?;
        products.sort_by_cached_key(|p| ids.iter().position(|i| *i == p.id));
        let matches = u64::try_from(ranked.matches).unwrap_or(u64::MAX);
        let count = MatchCount {
            total: matches.min(COUNT_CAP),
            is_lower_bound: matches > COUNT_CAP,
        };
        Ok((products, count))
    }

    /// Reads the products added since the search index was last caught up (all of them the
    /// first time) into it. One primary-key read when there are none, which is nearly always.
    pub async fn catch_up_index(&self) -> Result<(), sqlx::Error> {
        let behind = |highest: Option<ProductId>, indexed: Option<u32>| {
            highest.map(ProductId::number) > indexed
        };
        let highest = self.highest_id().await?;
        if !behind(highest, self.read_index().highest()) {
            return Ok(());
        }
        let _alone = self.catching_up.lock().await;
        let (started, mut indexed) = (std::time::Instant::now(), 0);
        loop {
            let after = self.read_index().highest().unwrap_or(0);
            let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT id, name, category_slug, description FROM products \
                 WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(
                ProductId::from_number(u64::from(after))
                    .map_or_else(String::new, |id| id.to_string()),
            )
            .bind(INDEX_BATCH)
            .fetch_all(self.db.pool())
            .await?;
            let read = rows.len();
            indexed += read;
            {
                let mut index = self.write_index();
                for (id, name, category, description) in &rows {
                    let id = ProductId::parse(id).ok_or_else(|| CorruptRow::column("id", id))?;
                    index.add(id.number(), [name, category, description]);
                }
            }
            if read < usize::try_from(INDEX_BATCH).unwrap_or(usize::MAX) {
                if indexed > 0 {
                    tracing::info!(products = indexed, took = ?started.elapsed(), "search index caught up");
                }
                return Ok(());
            }
        }
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, SearchIndex> {
        // A panic while indexing leaves at worst a product half-added: still a usable index.
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, SearchIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A product the seeder is about to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    /// Its category's slug.
    pub category: &'static str,
    pub price: Money,
    /// When it was added (stored as unix millis).
    pub created_at: OffsetDateTime,
}

/// Bind parameters per product row.
const COLUMNS_PER_ROW: usize = 8;

/// Inserts `rows` with one multi-row statement, skipping rows that already exist (a second
/// instance seeding the same catalog at the same moment writes the same rows). Returns how many
/// were inserted. Callers keep `rows` short enough for the backend's bind-parameter limit.
pub async fn insert_products(
    tx: &mut AnyConnection,
    rows: &[NewProduct],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let values = (0..rows.len())
        .map(|r| {
            format!(
                "({})",
                placeholders(r * COLUMNS_PER_ROW + 1, COLUMNS_PER_ROW)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Only placeholders are spliced in; every value is bound below.
    let sql = format!(
        "INSERT INTO products (id, sku, name, description, category_slug, price_minor, currency, \
         created_at) VALUES {values} ON CONFLICT DO NOTHING"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        query = query
            .bind(row.id.to_string())
            .bind(row.sku.clone())
            .bind(row.name.clone())
            .bind(row.description.clone())
            .bind(row.category)
            .bind(row.price.amount_minor)
            .bind(row.price.currency.as_str().to_owned())
            .bind(millis(row.created_at));
    }
    Ok(query.execute(tx).await?.rows_affected())
}
