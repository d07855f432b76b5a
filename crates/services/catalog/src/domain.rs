//! The catalog's rules, free of I/O: what a product id looks like, which search queries and
//! limits are acceptable, and how a user's search text becomes a full-text query that cannot
//! be anything but a list of words.
//!
//! Input is parsed once at the edge into these types; the store and the handlers trust them.

use crate::contract::{MAX_FEATURED, MAX_LOOKUP_IDS, MAX_QUERY_CHARS, ProductId};
use crate::error::CatalogError;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Most words of a query that reach the full-text index; a longer conjunction matches nothing
/// anyway, and the cap bounds the work one request can ask for.
pub const MAX_QUERY_WORDS: usize = 16;

/// The public URL of a product's picture, at the gateway.
pub fn image_url(id: &str) -> String {
    format!("/api/catalog/products/{id}/image.svg")
}

/// The words of `text` as search compares them: runs of alphanumeric characters, lower-cased and
/// without diacritics (`Crème` is `creme`), so a query typed with or without accents finds the
/// same products. Queries and the indexed text both go through here: one rule, both sides.
pub fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(fold)
        .filter(|w| !w.is_empty())
}

/// `word` lower-cased and stripped of combining marks after canonical decomposition (NFD).
fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Search text that passed the length rules, split into the words it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

impl SearchQuery {
    /// Accepts at most [`MAX_QUERY_CHARS`] characters with at least one that is not ASCII
    /// whitespace, the rule the contract states (as a JSON Schema pattern, which a client can
    /// check: hence ASCII whitespace, whose definition every regex engine shares, and the length
    /// counted before trimming). Words are the runs of
    /// alphanumeric characters; everything else (quotes, stars, brackets, operators'
    /// punctuation) only separates them, so no input can carry query syntax into the index.
    pub fn parse(q: Option<&str>) -> Result<Self, CatalogError> {
        let raw = q.unwrap_or_default();
        let q = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        if q.is_empty() || raw.chars().count() > MAX_QUERY_CHARS {
            return Err(CatalogError::InvalidQuery);
        }
        let words = words_of(q).take(MAX_QUERY_WORDS).collect();
        Ok(Self { words })
    }

    /// True when the text held no word at all (e.g. `"*'--"`): it matches nothing.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The words, folded by [`words_of`], in the order typed.
    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// How many products `GET /featured` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeaturedLimit(u32);

impl FeaturedLimit {
    /// Default [`crate::contract::DEFAULT_FEATURED`], at most [`MAX_FEATURED`], never 0.
    pub fn parse(limit: Option<u32>) -> Result<Self, CatalogError> {
        match limit.unwrap_or(crate::contract::DEFAULT_FEATURED) {
            n @ 1..=MAX_FEATURED => Ok(Self(n)),
            _ => Err(CatalogError::InvalidLimit),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// The featured products of a catalog whose highest product number is `highest`: `limit`
/// numbers spread evenly from the first product to the last, so the selection is stable and
/// covers the whole catalog (and so every category) without scanning it.
pub fn featured_ids(highest: ProductId, limit: FeaturedLimit) -> Vec<ProductId> {
    let n = u64::from(highest.number());
    let limit = u64::from(limit.get());
    let mut ids: Vec<ProductId> = (0..limit)
        .filter_map(|k| ProductId::from_number(1 + k * n / limit))
        .collect();
    ids.dedup();
    ids
}

/// The ids of a lookup that can exist, in the order first asked for, each once. Refuses more
/// than [`MAX_LOOKUP_IDS`]; ids of the wrong shape are dropped (they name nothing).
pub fn lookup_ids(ids: &[String]) -> Result<Vec<ProductId>, CatalogError> {
    if ids.len() > MAX_LOOKUP_IDS {
        return Err(CatalogError::TooManyIds(ids.len()));
    }
    let mut seen = std::collections::HashSet::new();
    Ok(ids
        .iter()
        .filter_map(|id| ProductId::parse(id))
        .filter(|id| seen.insert(*id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_have_one_shape() {
        let id = ProductId::parse("p0000042").expect("valid");
        assert_eq!(id.number(), 42);
        assert_eq!(id.to_string(), "p0000042");
        for bad in [
            "",
            "p",
            "p42",
            "p00000042",
            "P0000042",
            "p000004x",
            "p-000042",
            "p+000042",
            "p0000000",
            "x0000042",
            "p٠٠٠٠٠٤٢",
        ] {
            assert_eq!(ProductId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ProductId::from_number(10_000_000), None);
        assert_eq!(
            ProductId::from_number(9_999_999).map(|i| i.to_string()),
            Some("p9999999".into())
        );
    }

    #[test]
    fn search_text_becomes_folded_words() {
        let q = SearchQuery::parse(Some("  Red KETTLE ")).expect("valid");
        assert_eq!(q.words(), ["red", "kettle"]);
        let accented = SearchQuery::parse(Some("Crème BRÛLÉE Ångström café")).expect("valid");
        assert_eq!(accented.words(), ["creme", "brulee", "angstrom", "cafe"]);
        let decomposed = SearchQuery::parse(Some("cafe\u{301}")).expect("valid");
        assert_eq!(decomposed.words(), ["cafe"]);
    }

    #[test]
    fn query_syntax_and_injection_are_only_separators() {
        let cases: [(&str, &[&str]); 3] = [
            (
                r#"'; DROP TABLE products; --"#,
                &["drop", "table", "products"],
            ),
            (
                r#"name:"x" OR NEAR(a b)"#,
                &["name", "x", "or", "near", "a", "b"],
            ),
            ("caf\u{e9}* -tea^", &["cafe", "tea"]),
        ];
        for (input, expected) in cases {
            let q = SearchQuery::parse(Some(input)).expect("valid length");
            assert_eq!(q.words(), expected, "{input:?}");
        }
        let punctuation = SearchQuery::parse(Some(r#"*"'()--"#)).expect("valid length");
        assert!(punctuation.is_empty());
    }

    #[test]
    fn query_length_is_bounded() {
        assert_eq!(SearchQuery::parse(None), Err(CatalogError::InvalidQuery));
        assert_eq!(
            SearchQuery::parse(Some("   ")),
            Err(CatalogError::InvalidQuery)
        );
        assert!(SearchQuery::parse(Some(&"é".repeat(200))).is_ok());
        assert_eq!(
            SearchQuery::parse(Some(&"a".repeat(201))),
            Err(CatalogError::InvalidQuery)
        );
        let many = SearchQuery::parse(Some(&"w ".repeat(40))).expect("valid");
        assert_eq!(many.words.len(), MAX_QUERY_WORDS);
    }

    #[test]
    fn featured_is_spread_and_bounded() {
        assert_eq!(FeaturedLimit::parse(None).map(FeaturedLimit::get), Ok(8));
        assert_eq!(
            FeaturedLimit::parse(Some(0)),
            Err(CatalogError::InvalidLimit)
        );
        assert_eq!(
            FeaturedLimit::parse(Some(25)),
            Err(CatalogError::InvalidLimit)
        );
        let highest = ProductId::from_number(1000).expect("valid");
        let ids = featured_ids(highest, FeaturedLimit::parse(Some(4)).expect("valid"));
        let numbers: Vec<u32> = ids.iter().map(|i| i.number()).collect();
        assert_eq!(numbers, [1, 251, 501, 751]);
        let tiny = ProductId::from_number(3).expect("valid");
        let ids = featured_ids(tiny, FeaturedLimit::parse(Some(24)).expect("valid"));
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn lookup_ids_are_parsed_deduplicated_and_capped() {
        let ids: Vec<String> = ["p0000002", "nope", "p0000001", "p0000002"]
            .map(String::from)
            .to_vec();
        let parsed = lookup_ids(&ids).expect("few ids");
        assert_eq!(
            parsed.iter().map(|i| i.number()).collect::<Vec<_>>(),
            [2, 1]
        );
        let too_many = vec!["p0000001".to_owned(); 101];
        assert_eq!(lookup_ids(&too_many), Err(CatalogError::TooManyIds(101)));
    }
}
