//! All of the catalog's SQL, in plain sight. Queries are portable (`$n` placeholders, BIGINT and
//! TEXT columns) except full-text search, which branches on the backend: FTS5 on SQLite, a
//! tsvector GIN index on PostgreSQL (see `migrations/0002_search.*.sql`).
//!
//! Every value is bound; the only SQL assembled at run time is a list of `$n` placeholders whose
//! length depends on how many rows or ids there are.

use flotilla_chassis::clock::rfc3339;
use flotilla_chassis::db::{Backend, Db, placeholders};
use flotilla_chassis::pagination::PageRequest;
use flotilla_chassis::{Currency, Migration, Money};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::contract::{Category, Product};
use crate::domain::{ProductId, SearchQuery, image_url};

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
];

/// The columns of a product, in [`ProductRow`]'s order (a macro so `concat!` can build
/// `&'static str` queries from it).
macro_rules! product_columns {
    () => {
        "p.id, p.sku, p.name, p.description, p.category_slug, p.price_minor, p.currency, p.created_at"
    };
}

/// A `products` row as stored.
#[derive(Debug, sqlx::FromRow)]
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

impl TryFrom<ProductRow> for Product {
    type Error = sqlx::Error;

    fn try_from(row: ProductRow) -> Result<Self, Self::Error> {
        // Only the seeder writes currencies, from a parsed `Currency`; a bad one is corruption.
        let currency =
            Currency::parse(&row.currency).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Product {
            image_url: image_url(&row.id),
            id: row.id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            category: row.category_slug,
            price: Money::new(row.price_minor, currency),
            created_at: rfc3339(row.created_at),
        })
    }
}

fn into_products(rows: Vec<ProductRow>) -> Result<Vec<Product>, sqlx::Error> {
    rows.into_iter().map(Product::try_from).collect()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// One product by id: a single primary-key lookup (this is the benchmarked hot path).
pub async fn product(db: &Db, id: ProductId) -> Result<Option<Product>, sqlx::Error> {
    let row: Option<ProductRow> = sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        " FROM products p WHERE p.id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.map(Product::try_from).transpose()
}

/// The name and category of a product, all its picture needs.
pub async fn product_label(
    db: &Db,
    id: ProductId,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT name, category_slug FROM products WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await
}

/// One page of all products, ordered by id, with the total.
pub async fn list(db: &Db, page: PageRequest) -> Result<(Vec<Product>, u64), sqlx::Error> {
    let rows: Vec<ProductRow> = sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        " FROM products p ORDER BY p.id LIMIT $1 OFFSET $2"
    ))
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(db.pool())
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(db.pool())
        .await?;
    Ok((into_products(rows)?, count(total)))
}

/// One page of a category's products, ordered by id, with the category's total; `None` when
/// the category does not exist.
pub async fn list_in_category(
    db: &Db,
    slug: &str,
    page: PageRequest,
) -> Result<Option<(Vec<Product>, u64)>, sqlx::Error> {
    let exists: Option<String> = sqlx::query_scalar("SELECT slug FROM categories WHERE slug = $1")
        .bind(slug.to_owned())
        .fetch_optional(db.pool())
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
    .fetch_all(db.pool())
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE category_slug = $1")
        .bind(slug.to_owned())
        .fetch_one(db.pool())
        .await?;
    Ok(Some((into_products(rows)?, count(total))))
}

/// Every category in display order, with its product count.
pub async fn categories(db: &Db) -> Result<Vec<Category>, sqlx::Error> {
    // One counted index range per category rather than a join and GROUP BY over every product.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT c.slug, c.name, \
                (SELECT COUNT(*) FROM products p WHERE p.category_slug = c.slug) \
         FROM categories c ORDER BY c.position",
    )
    .fetch_all(db.pool())
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

/// FTS5: name weighs most, then the category, then the description (bm25 is lower-is-better);
/// ties in relevance fall back to id so pages are stable.
const SEARCH_SQLITE: &str = concat!(
    "SELECT ",
    product_columns!(),
    " FROM products_fts JOIN products p ON p.id = printf('p%07d', products_fts.rowid) \
     WHERE products_fts MATCH $1 \
     ORDER BY bm25(products_fts, 10.0, 1.0, 4.0), p.id LIMIT $2 OFFSET $3"
);
const COUNT_SQLITE: &str = "SELECT COUNT(*) FROM products_fts WHERE products_fts MATCH $1";

/// PostgreSQL: `search_document` is the weighted tsvector column of `0002_search.postgres.sql`.
/// `ts_rank` is normalised by document length (flag 1), as bm25 is, so a match in a short name
/// beats one in a long description; ties fall back to id so pages are stable.
const SEARCH_POSTGRES: &str = concat!(
    "SELECT ",
    product_columns!(),
    " FROM products p WHERE p.search_document @@ to_tsquery('simple', $1) \
     ORDER BY ts_rank(p.search_document, to_tsquery('simple', $1), 1) DESC, p.id \
     LIMIT $2 OFFSET $3"
);
const COUNT_POSTGRES: &str =
    "SELECT COUNT(*) FROM products p WHERE p.search_document @@ to_tsquery('simple', $1)";

/// One page of the products matching `query`, most relevant first, with the number of matches.
pub async fn search(
    db: &Db,
    query: &SearchQuery,
    page: PageRequest,
) -> Result<(Vec<Product>, u64), sqlx::Error> {
    let (expression, search_sql, count_sql) = match db.backend() {
        Backend::Sqlite => (query.to_fts5(), SEARCH_SQLITE, COUNT_SQLITE),
        Backend::Postgres => (query.to_tsquery(), SEARCH_POSTGRES, COUNT_POSTGRES),
    };
    let Some(expression) = expression else {
        return Ok((Vec::new(), 0));
    };
    let rows: Vec<ProductRow> = sqlx::query_as(search_sql)
        .bind(expression.clone())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(db.pool())
        .await?;
    let total: i64 = sqlx::query_scalar(count_sql)
        .bind(expression)
        .fetch_one(db.pool())
        .await?;
    Ok((into_products(rows)?, count(total)))
}

/// The products among `ids` that exist, in no particular order.
pub async fn products_by_ids(db: &Db, ids: &[ProductId]) -> Result<Vec<Product>, sqlx::Error> {
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
    into_products(query.fetch_all(db.pool()).await?)
}

/// The product with the highest id (read from the primary-key index, not a scan).
pub async fn highest_id(db: &Db) -> Result<Option<ProductId>, sqlx::Error> {
    let id: Option<String> = sqlx::query_scalar("SELECT MAX(id) FROM products")
        .fetch_one(db.pool())
        .await?;
    Ok(id.as_deref().and_then(ProductId::parse))
}

/// A product the seeder is about to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Its id.
    pub id: ProductId,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its category's slug.
    pub category: &'static str,
    /// Its price.
    pub price: Money,
    /// When it was added, unix millis.
    pub created_at: i64,
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
            .bind(row.created_at);
    }
    Ok(query.execute(tx).await?.rows_affected())
}
