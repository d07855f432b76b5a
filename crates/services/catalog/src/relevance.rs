//! Ranking search results without scoring every match.
//!
//! Ranking all matches in the database (FTS5's `bm25`, PostgreSQL's `ts_rank`) costs time in
//! proportion to the number of matches: at 100,000 products a common word matched 11,000 of
//! them and one page took 85 ms (issue 10). Search now ranks a bounded head instead: the
//! [`HEAD_CANDIDATES`] newest products whose *names* carry every word, plus the
//! [`HEAD_CANDIDATES`] newest matches anywhere, both read in index order (no scoring), then
//! scored here. The remaining matches follow the head, newest first. Name matches are fetched
//! as a tier of their own because the name weighs most: a product called "Oak Desk" is on the
//! first page for "oak" even when thousands of newer descriptions mention oak.
//!
//! The score mirrors the weights the database rankings had (name 10, category 4,
//! description 1) with bm25's saturation of repeated words and its normalisation by length, so
//! "Oak Desk" beats "Oak Desk with Oak-Veneered Oak Drawers" and both beat a description that
//! mentions oak once. Pure functions, the same on SQLite and PostgreSQL.

use std::cmp::Ordering;

use crate::contract::Product;
use crate::domain::SearchQuery;

/// Products fetched for the ranked head, per tier (name matches, all matches).
pub const HEAD_CANDIDATES: i64 = 100;

/// Matches counted at most: beyond it `total` is this figure and a lower bound ("1,000+"), so
/// counting stays bounded however common a word is.
pub const COUNT_CAP: u64 = 1_000;

/// bm25's term-frequency saturation (k1) and length normalisation (b), the usual defaults
/// (<https://en.wikipedia.org/wiki/Okapi_BM25>).
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// One searchable field: its weight and the length (in words) taken as typical for it.
struct Field {
    weight: f64,
    typical_words: f64,
}

const NAME: Field = Field {
    weight: 10.0,
    typical_words: 3.0,
};
const CATEGORY: Field = Field {
    weight: 4.0,
    typical_words: 1.0,
};
const DESCRIPTION: Field = Field {
    weight: 1.0,
    typical_words: 15.0,
};

/// How well `product` answers `query`: higher is better, 0 when no field carries a word.
pub fn score(query: &SearchQuery, product: &Product) -> f64 {
    field_score(query, &product.name, &NAME)
        + field_score(query, &product.category, &CATEGORY)
        + field_score(query, &product.description, &DESCRIPTION)
}

/// bm25 of `text` for the query's words (each a prefix, as in the index), without the idf
/// factor: every candidate matches every word, so idf would scale all candidates alike.
fn field_score(query: &SearchQuery, text: &str, field: &Field) -> f64 {
    let tokens: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    if tokens.is_empty() {
        return 0.0;
    }
    let length = tokens.len() as f64 / field.typical_words;
    let norm = K1 * (1.0 - B + B * length);
    let mut total = 0.0;
    for word in query.words() {
        let tf = tokens
            .iter()
            .filter(|t| t.starts_with(word.as_str()))
            .count() as f64;
        total += tf * (K1 + 1.0) / (tf + norm);
    }
    field.weight * total
}

/// Sorts `products` most relevant first; equal scores put the newest (highest id) first, the
/// order of the matches that follow the head.
pub fn rank(query: &SearchQuery, products: Vec<Product>) -> Vec<Product> {
    let mut scored: Vec<(f64, Product)> = products
        .into_iter()
        .map(|p| (score(query, &p), p))
        .collect();
    scored.sort_by(|(a, pa), (b, pb)| {
        b.partial_cmp(a)
            .unwrap_or(Ordering::Equal)
            .then_with(|| pb.id.cmp(&pa.id))
    });
    scored.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::{Currency, Money};

    fn product(id: &str, name: &str, category: &str, description: &str) -> Product {
        Product {
            id: id.to_owned(),
            sku: id.to_uppercase(),
            name: name.to_owned(),
            description: description.to_owned(),
            category: category.to_owned(),
            price: Money {
                amount_minor: 100,
                currency: Currency::parse("EUR").expect("EUR"),
            },
            image_url: String::new(),
            created_at: String::new(),
        }
    }

    fn query(q: &str) -> SearchQuery {
        SearchQuery::parse(Some(q)).expect("a query")
    }

    #[test]
    fn the_name_outweighs_the_category_which_outweighs_the_description() {
        let q = query("oak");
        let in_name = product("p0000001", "Oak Desk", "furniture", "A desk.");
        let in_category = product("p0000002", "Desk", "oak", "A desk.");
        let in_description = product("p0000003", "Desk", "furniture", "A desk made of oak.");
        let ranked = rank(
            &q,
            vec![in_description.clone(), in_category.clone(), in_name.clone()],
        );
        assert_eq!(ranked, vec![in_name, in_category, in_description]);
    }

    #[test]
    fn a_short_name_beats_a_long_one_and_words_count_as_prefixes() {
        let q = query("OAK des");
        let short = product("p0000001", "Oak Desk", "furniture", "");
        let long = product(
            "p0000002",
            "Oak Desk with Drawers, Shelves and a Matching Chair",
            "furniture",
            "",
        );
        assert!(score(&q, &short) > score(&q, &long));
        assert!(score(&q, &long) > 0.0);
        assert_eq!(score(&q, &product("p0000003", "Pine", "wood", "")), 0.0);
    }

    #[test]
    fn ties_put_the_newest_first() {
        let q = query("lamp");
        let old = product("p0000001", "Lamp", "lighting", "");
        let new = product("p0000002", "Lamp", "lighting", "");
        assert_eq!(rank(&q, vec![old.clone(), new.clone()]), vec![new, old]);
    }
}
