//! How well a product answers a search: a bm25 score per searched word and field, summed.
//!
//! The weights are name 10, category 4, description 1, so a product called "Oak Desk" outranks
//! one whose description mentions oak. bm25's saturation of repeated words and its
//! normalisation by length make "Oak Desk" beat "Oak Desk with Oak-Veneered Oak Drawers". The
//! idf factor is left out: every product a search returns carries every word, so idf would
//! scale them all alike. Pure functions over word counts; [`crate::store::search_index`]
//! supplies the counts from its postings, the same on SQLite and PostgreSQL.

/// The fields a product is searched by, in the order of the count arrays below.
pub const FIELDS: usize = 3;

/// bm25's term-frequency saturation (k1) and length normalisation (b), the usual defaults
/// (<https://en.wikipedia.org/wiki/Okapi_BM25>).
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// One searchable field: its weight and the length (in words) taken as typical for it.
struct Field {
    weight: f64,
    typical_words: f64,
}

/// Name, category, description: the order of every `[_; FIELDS]` array.
const WEIGHTS: [Field; FIELDS] = [
    Field {
        weight: 10.0,
        typical_words: 3.0,
    },
    Field {
        weight: 4.0,
        typical_words: 1.0,
    },
    Field {
        weight: 1.0,
        typical_words: 15.0,
    },
];

/// The score one searched word earns in a product where it occurs `occurrences[f]` times in
/// field `f`, which is `lengths[f]` words long. Higher is better; 0 when it occurs nowhere.
pub fn word_score(occurrences: [u32; FIELDS], lengths: [u32; FIELDS]) -> f64 {
    let mut total = 0.0;
    for ((field, tf), length) in WEIGHTS.iter().zip(occurrences).zip(lengths) {
        if tf == 0 {
            continue;
        }
        let tf = f64::from(tf);
        let norm = K1 * (1.0 - B + B * f64::from(length) / field.typical_words);
        total += field.weight * tf * (K1 + 1.0) / (tf + norm);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_outweighs_the_category_which_outweighs_the_description() {
        let in_name = word_score([1, 0, 0], [2, 1, 2]);
        let in_category = word_score([0, 1, 0], [1, 1, 2]);
        let in_description = word_score([0, 0, 1], [1, 1, 6]);
        assert!(in_name > in_category && in_category > in_description && in_description > 0.0);
        assert_eq!(word_score([0, 0, 0], [2, 1, 2]), 0.0);
    }

    #[test]
    fn a_short_name_beats_a_long_one_and_repeats_saturate() {
        let short = word_score([1, 0, 0], [2, 1, 0]);
        let long = word_score([1, 0, 0], [10, 1, 0]);
        assert!(short > long && long > 0.0);
        let repeated = word_score([3, 0, 0], [10, 1, 0]);
        assert!(repeated > long && repeated < 3.0 * long);
    }
}
