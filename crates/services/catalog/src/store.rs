//! All of the catalog's SQL, in plain sight. Queries are portable (`$n` placeholders, BIGINT and
//! TEXT columns) except full-text search, which branches on the backend: FTS5 on SQLite, a
//! tsvector GIN index on PostgreSQL (see `migrations/0002_search.*.sql`). Search reads matches
//! in index order only; the ranking is [`relevance`]'s, the same on both.
//!
//! Every value is bound; the only SQL assembled at run time is a list of `$n` placeholders whose
//! length depends on how many rows or ids there are.

use flotilla_chassis::clock::rfc3339;
use flotilla_chassis::db::{Backend, Db, placeholders};
use flotilla_chassis::pagination::PageRequest;
use flotilla_chassis::{Currency, Migration, Money};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::contract::{Category, Product};
use crate::domain::{ProductId, SearchQuery, image_url};
use crate::relevance::{self, COUNT_CAP, HEAD_CANDIDATES};

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

/// The SQL of one backend's search. `$1` is the query, `$2` the same limited to names, `$3`
/// [`HEAD_CANDIDATES`]; none of them ranks in SQL: [`relevance`] scores the bounded head.
struct SearchSql {
    /// Up to `$2` (the cap + 1) matches of `$1`, counted.
    count: &'static str,
    /// The head: the `$3` newest name matches and the `$3` newest matches.
    head: &'static str,
    /// Matches outside the head, newest first, `LIMIT $4 OFFSET $5`.
    tail: &'static str,
}

/// The head's two tiers as an id list, in SQLite's terms (FTS5 reads `ORDER BY rowid DESC`
/// straight from its index; the rowid is the id's number).
macro_rules! sqlite_head_ids {
    () => {
        "SELECT rowid FROM (SELECT rowid FROM products_fts WHERE products_fts MATCH $2 \
                            ORDER BY rowid DESC LIMIT $3) \
         UNION SELECT rowid FROM (SELECT rowid FROM products_fts WHERE products_fts MATCH $1 \
                                  ORDER BY rowid DESC LIMIT $3)"
    };
}

const SEARCH_SQLITE: SearchSql = SearchSql {
    count: "SELECT COUNT(*) FROM (SELECT 1 FROM products_fts WHERE products_fts MATCH $1 LIMIT $2)",
    head: concat!(
        "SELECT ",
        product_columns!(),
        " FROM products p WHERE p.id IN (SELECT printf('p%07d', rowid) FROM (",
        sqlite_head_ids!(),
        "))"
    ),
    tail: concat!(
        "SELECT ",
        product_columns!(),
        " FROM products_fts JOIN products p ON p.id = printf('p%07d', products_fts.rowid) \
         WHERE products_fts MATCH $1 AND products_fts.rowid NOT IN (",
        sqlite_head_ids!(),
        ") ORDER BY products_fts.rowid DESC LIMIT $4 OFFSET $5"
    ),
};

/// The same on PostgreSQL, over the weighted tsvector of `0002_search.postgres.sql` (`$2`
/// restricts every word to weight A, the name).
macro_rules! postgres_head_ids {
    () => {
        "SELECT id FROM (SELECT id FROM products \
                         WHERE search_document @@ to_tsquery('simple', $2) \
                         ORDER BY id DESC LIMIT $3) AS named \
         UNION SELECT id FROM (SELECT id FROM products \
                               WHERE search_document @@ to_tsquery('simple', $1) \
                               ORDER BY id DESC LIMIT $3) AS newest"
    };
}

const SEARCH_POSTGRES: SearchSql = SearchSql {
    count: "SELECT COUNT(*) FROM (SELECT 1 FROM products \
            WHERE search_document @@ to_tsquery('simple', $1) LIMIT $2) AS matches",
    head: concat!(
        "SELECT ",
        product_columns!(),
        " FROM products p WHERE p.id IN (",
        postgres_head_ids!(),
        ")"
    ),
    tail: concat!(
        "SELECT ",
        product_columns!(),
        " FROM products p WHERE p.search_document @@ to_tsquery('simple', $1) AND p.id NOT IN (",
        postgres_head_ids!(),
        ") ORDER BY p.id DESC LIMIT $4 OFFSET $5"
    ),
};

/// How many products matched: exact up to [`COUNT_CAP`], a lower bound above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchCount {
    /// Matches counted (at most [`COUNT_CAP`]).
    pub total: u64,
    /// True when counting stopped at [`COUNT_CAP`].
    pub is_lower_bound: bool,
}

/// One page of the products matching `query`: the ranked head (see [`relevance`]), then the
/// other matches newest first. Reads at most 2 × [`HEAD_CANDIDATES`] products to rank and
/// counts at most [`COUNT_CAP`] + 1 matches, however many products match.
pub async fn search(
    db: &Db,
    query: &SearchQuery,
    page: PageRequest,
) -> Result<(Vec<Product>, MatchCount), sqlx::Error> {
    let (all, named, sql) = match db.backend() {
        Backend::Sqlite => (query.to_fts5(), query.to_fts5_in_name(), SEARCH_SQLITE),
        Backend::Postgres => (
            query.to_tsquery(),
            query.to_tsquery_in_name(),
            SEARCH_POSTGRES,
        ),
    };
    let none = MatchCount {
        total: 0,
        is_lower_bound: false,
    };
    let (Some(all), Some(named)) = (all, named) else {
        return Ok((Vec::new(), none));
    };
    let cap = i64::try_from(COUNT_CAP).unwrap_or(i64::MAX);
    let counted: i64 = sqlx::query_scalar(sql.count)
        .bind(all.clone())
        .bind(cap + 1)
        .fetch_one(db.pool())
        .await?;
    let matches = MatchCount {
        total: count(counted).min(COUNT_CAP),
        is_lower_bound: count(counted) > COUNT_CAP,
    };
    if counted == 0 {
        return Ok((Vec::new(), none));
    }
    let head: Vec<ProductRow> = sqlx::query_as(sql.head)
        .bind(all.clone())
        .bind(named.clone())
        .bind(HEAD_CANDIDATES)
        .fetch_all(db.pool())
        .await?;
    let head = relevance::rank(query, into_products(head)?);
    let (offset, limit) = (page.offset(), page.limit());
    let head_len = i64::try_from(head.len()).unwrap_or(i64::MAX);
    let mut items: Vec<Product> = head
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    let wanted = limit - i64::try_from(items.len()).unwrap_or(limit);
    // Every match is in the head when fewer were counted than the head holds.
    if wanted > 0 && (matches.is_lower_bound || counted > head_len) {
        let tail: Vec<ProductRow> = sqlx::query_as(sql.tail)
            .bind(all)
            .bind(named)
            .bind(HEAD_CANDIDATES)
            .bind(wanted)
            .bind((offset - head_len).max(0))
            .fetch_all(db.pool())
            .await?;
        items.extend(into_products(tail)?);
    }
    Ok((items, matches))
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
