//! The deterministic catalog: product number `n` is always the same product, whichever batch,
//! machine or run generates it, so tests, benchmarks and every installation agree on what is
//! for sale.
//!
//! Each product is drawn from its own ChaCha8 generator seeded with its number, so generating
//! product 70,000 needs nothing from products 1..69,999 and seeding can append in any batch
//! size. Rows go in with multi-row INSERTs inside batched transactions, which is what makes
//! 100,000 products a matter of seconds on SQLite.

mod words;

use flotilla_chassis::clock::at_millis;
use flotilla_chassis::{Currency, Db, Money};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::contract::ProductId;
use crate::store::{self, CatalogStore, NewProduct};
use words::{ADJECTIVES, CATEGORIES, CLOSINGS, OPENING_ENDS};

/// Rows per multi-row INSERT: 8 bind parameters each, 4,000 per statement, far below SQLite's
/// (32,766) and PostgreSQL's (65,535) limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Statements per transaction: large enough to amortise commits, small enough that a
/// concurrent reader never waits long behind the writer.
const STATEMENTS_PER_TRANSACTION: usize = 4;

/// Creation time of product 1 (2024-01-01T00:00:00Z); each later product is a minute younger.
const EPOCH_MILLIS: i64 = 1_704_067_200_000;

/// Mixed into every product's seed so this catalog's stream differs from any other use of
/// ChaCha8 seeded with small integers.
const SEED_DOMAIN: &[u8; 16] = b"flotilla-catalog";

/// Appends `count` products after the highest existing id (or from `p0000001` on an empty
/// catalog), prices in `currency`. Returns how many rows were inserted, which is `count`
/// unless another instance was seeding the same ids at the same moment or the id space
/// (seven digits) runs out.
pub async fn seed_products(db: &Db, count: u64, currency: Currency) -> Result<u64, sqlx::Error> {
    let first = CatalogStore::new(db.clone())
        .highest_id()
        .await?
        .map_or(1, |id| u64::from(id.number()) + 1);
    let last = first
        .saturating_add(count)
        .min(u64::from(ProductId::MAX_NUMBER) + 1);
    let numbers: Vec<u64> = (first..last).collect();
    let mut inserted = 0;
    for chunk in numbers.chunks(ROWS_PER_STATEMENT * STATEMENTS_PER_TRANSACTION) {
        let mut tx = db.pool().begin().await?;
        for statement in chunk.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<NewProduct> = statement
                .iter()
                .filter_map(|n| ProductId::from_number(*n))
                .map(|id| generate(id, currency))
                .collect();
            inserted += store::insert_products(&mut tx, &rows).await?;
        }
        tx.commit().await?;
    }
    if inserted > 0 {
        tracing::info!(inserted, first, "catalog seeded");
    }
    Ok(inserted)
}

/// Seeds `count` products if, and only if, the catalog is empty; what `service` calls at every
/// start. On an existing catalog this is a single index read.
pub async fn ensure_seeded(db: &Db, count: u64, currency: Currency) -> Result<u64, sqlx::Error> {
    if CatalogStore::new(db.clone()).highest_id().await?.is_some() {
        return Ok(0);
    }
    seed_products(db, count, currency).await
}

/// The product with id `id`: a pure function of the id (and the currency label).
pub(crate) fn generate(id: ProductId, currency: Currency) -> NewProduct {
    let number = id.number();
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(SEED_DOMAIN);
    seed[16..20].copy_from_slice(&number.to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(seed);
    let words = pick(&mut rng, CATEGORIES);
    let adjective = pick(&mut rng, ADJECTIVES);
    let kind = pick(&mut rng, words.kinds);
    let thing = pick(&mut rng, words.things);
    // No article: "a socks" would be wrong for plural things, and the name reads fine bare.
    let mut description = format!(
        "{adjective} {} {} {}.",
        lower(kind),
        lower(thing),
        pick_word(&mut rng, OPENING_ENDS)
    );
    // One to three sentences: the opener, then maybe a selling point, then maybe a closer.
    let extra = below(&mut rng, 3);
    if extra >= 1 {
        description.push(' ');
        description.push_str(pick_word(&mut rng, words.features));
    }
    if extra >= 2 {
        description.push(' ');
        description.push_str(pick_word(&mut rng, CLOSINGS));
    }
    // Prices end in .99: 1.99 to 499.99.
    let price_minor = (1 + below(&mut rng, 499) as i64) * 100 + 99;
    NewProduct {
        id,
        sku: format!("{}-{:07}", words.sku_prefix, number),
        name: format!("{adjective} {kind} {thing}"),
        description,
        category: words.slug,
        price: Money::new(price_minor, currency),
        created_at: at_millis(EPOCH_MILLIS + i64::from(number) * 60_000),
    }
}

/// A number in `0..n` (n > 0). Plain modulo on purpose: unlike `rand`'s samplers it cannot
/// change between crate versions, and with n in the hundreds its bias (~n/2^64) is nil.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

/// One element of a non-empty list.
fn pick<'a, T>(rng: &mut ChaCha8Rng, list: &'a [T]) -> &'a T {
    let i = below(rng, list.len() as u64) as usize;
    // `below` is < len for a non-empty list; every list here is a non-empty constant.
    &list[i.min(list.len().saturating_sub(1))]
}

/// Lower-cases a word for use mid-sentence, except acronyms such as `DAC`.
fn lower(word: &str) -> String {
    if word.len() > 1 && word.chars().all(|c| c.is_ascii_uppercase()) {
        word.to_owned()
    } else {
        word.to_lowercase()
    }
}

/// One word (or phrase) of a non-empty list.
fn pick_word(rng: &mut ChaCha8Rng, list: &[&'static str]) -> &'static str {
    let word: &&'static str = pick(rng, list);
    word
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::clock::millis;

    fn id(n: u64) -> ProductId {
        ProductId::from_number(n).expect("valid number")
    }

    #[test]
    fn a_product_depends_only_on_its_id() {
        assert_eq!(
            generate(id(42), Currency::EUR),
            generate(id(42), Currency::EUR)
        );
        assert_ne!(
            generate(id(42), Currency::EUR).name,
            generate(id(43), Currency::EUR).name
        );
        let p = generate(id(42), Currency::EUR);
        assert_eq!(p.id.to_string(), "p0000042");
        assert!(p.sku.ends_with("-0000042"), "{}", p.sku);
        assert_eq!(millis(p.created_at), EPOCH_MILLIS + 42 * 60_000);
    }

    #[test]
    fn generated_products_follow_the_rules() {
        let mut categories = std::collections::HashSet::new();
        for n in 1..=2000 {
            let p = generate(id(n), Currency::EUR);
            assert!(
                (199..=49_999).contains(&p.price.amount_minor),
                "{}",
                p.price
            );
            assert!(p.name.split_whitespace().count() >= 3, "{}", p.name);
            let sentences = p.description.matches(". ").count() + 1;
            assert!((1..=3).contains(&sentences), "{}", p.description);
            assert!(p.description.ends_with('.'));
            categories.insert(p.category);
        }
        assert_eq!(categories.len(), CATEGORIES.len());
    }

    #[test]
    fn word_lists_are_usable() {
        for c in CATEGORIES {
            assert!(!c.kinds.is_empty() && !c.things.is_empty() && !c.features.is_empty());
            assert_eq!(c.sku_prefix.len(), 3);
        }
        assert_eq!(lower("Noise-Cancelling"), "noise-cancelling");
        assert_eq!(lower("DAC"), "DAC");
    }
}
