//! The catalog's full-text index, held in memory: every word of every product's name, category
//! and description, with how often it occurs in each field.
//!
//! Why not the databases' own indexes: ranking needs a score per match, and FTS5's `bm25()` /
//! PostgreSQL's `ts_rank` read each match's row (its column sizes, its tsvector) to compute it.
//! At 100,000 products a common word matches 11,000 of them, and `ORDER BY rank LIMIT 20` on
//! FTS5 took about 26 ms, `ts_rank` longer; reading a bounded head in index order instead (the
//! previous design) let older well-named products fall out of it. Here a match costs a few
//! array reads, so every match is scored and the ranking is exact, the same on both backends
//! (docs/benchmarks.md has the figures).
//!
//! Products are only ever appended (the seeder writes after the highest id and nothing updates
//! or deletes them), so the index grows in id order and the store catches it up with the
//! table by reading the products past the highest one indexed.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::Bound;

use crate::domain::words_of;
use crate::relevance::{self, FIELDS};

/// One product in the postings of one word: where the product is in `docs` and how often the
/// word occurs in each field (saturated at 255, far past where bm25 stops caring).
#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    occurrences: [u8; FIELDS],
}

/// A product as the index knows it: the number of its id and the length of each field, in words.
#[derive(Debug, Clone, Copy)]
struct Doc {
    number: u32,
    lengths: [u16; FIELDS],
}

/// The words of the catalog, each with the products it occurs in (in id order).
#[derive(Debug, Default)]
pub struct SearchIndex {
    postings: BTreeMap<Box<str>, Vec<Posting>>,
    docs: Vec<Doc>,
}

/// What one search found: how many products match, and the best of them in rank order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// Every matching product, counted.
    pub matches: usize,
    /// The numbers of the product ids asked for (a page of the ranking), most relevant first.
    pub numbers: Vec<u32>,
}

impl SearchIndex {
    /// The highest product number indexed, `None` when the index is empty.
    pub fn highest(&self) -> Option<u32> {
        self.docs.last().map(|doc| doc.number)
    }

    /// Adds product `number` with its name, category and description. Numbers must grow from one
    /// call to the next (postings stay in id order); a number at or below [`Self::highest`] is
    /// ignored, so a batch read twice does no harm.
    pub fn add(&mut self, number: u32, fields: [&str; FIELDS]) {
        if self.highest().is_some_and(|highest| number <= highest) {
            return;
        }
        let Ok(doc) = u32::try_from(self.docs.len()) else {
            return;
        };
        let mut lengths = [0u16; FIELDS];
        let mut counts: HashMap<String, [u8; FIELDS]> = HashMap::new();
        for (field, text) in fields.iter().enumerate() {
            for word in words_of(text) {
                lengths[field] = lengths[field].saturating_add(1);
                let count = &mut counts.entry(word).or_default()[field];
                *count = count.saturating_add(1);
            }
        }
        for (word, occurrences) in counts {
            self.postings
                .entry(word.into_boxed_str())
                .or_default()
                .push(Posting { doc, occurrences });
        }
        self.docs.push(Doc { number, lengths });
    }

    /// The products carrying every one of `words` (each as a prefix: `oak` finds `oaken`),
    /// ranked by [`relevance`], ties newest first; `skip` and `take` choose the page. Costs a
    /// few array reads per posting of the words' prefixes and a partial sort, with no I/O.
    pub fn search(&self, words: &[String], skip: usize, take: usize) -> Ranked {
        let mut scored: Option<Vec<(u32, f64)>> = None;
        for word in words {
            let found = self.occurrences(word);
            let next: Vec<(u32, f64)> = match scored {
                None => found
                    .into_iter()
                    .map(|(doc, occurrences)| (doc, self.word_score(doc, occurrences)))
                    .collect(),
                // Both lists are in doc order: a merge join keeps the products with every word.
                Some(before) => {
                    let mut next = Vec::with_capacity(before.len().min(found.len()));
                    let mut found = found.into_iter().peekable();
                    for (doc, score) in before {
                        while found.next_if(|(d, _)| *d < doc).is_some() {}
                        if let Some((_, occurrences)) = found.next_if(|(d, _)| *d == doc) {
                            next.push((doc, score + self.word_score(doc, occurrences)));
                        }
                    }
                    next
                }
            };
            if next.is_empty() {
                return Ranked {
                    matches: 0,
                    numbers: Vec::new(),
                };
            }
            scored = Some(next);
        }
        let mut ranked: Vec<(f64, u32)> = scored
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(doc, score)| Some((score, self.doc(doc)?.number)))
            .collect();
        let matches = ranked.len();
        // Most relevant first, then newest (highest number) first.
        let order = |a: &(f64, u32), b: &(f64, u32)| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(Ordering::Equal)
                .then(b.1.cmp(&a.1))
        };
        let end = skip.saturating_add(take).min(matches);
        if skip >= end {
            return Ranked {
                matches,
                numbers: Vec::new(),
            };
        }
        if end < matches {
            ranked.select_nth_unstable_by(end - 1, order);
            ranked.truncate(end);
        }
        ranked.sort_unstable_by(order);
        Ranked {
            matches,
            numbers: ranked[skip..].iter().map(|(_, number)| *number).collect(),
        }
    }

    /// Every product with a word starting with `prefix`, in doc order, with the word's
    /// occurrences per field summed over the words that start so (`oak` and `oaken`).
    fn occurrences(&self, prefix: &str) -> Vec<(u32, [u32; FIELDS])> {
        let lists: Vec<&[Posting]> = self
            .postings
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(word, _)| word.starts_with(prefix))
            .map(|(_, list)| list.as_slice())
            .collect();
        let widen = |p: &Posting| p.occurrences.map(u32::from);
        if let [only] = lists.as_slice() {
            return only.iter().map(|p| (p.doc, widen(p))).collect();
        }
        // A k-way merge of the lists (each in doc order) that sums a product's counts.
        let mut out: Vec<(u32, [u32; FIELDS])> = Vec::new();
        let mut heads: BinaryHeap<Reverse<(u32, usize, usize)>> = lists
            .iter()
            .enumerate()
            .filter_map(|(list, postings)| Some(Reverse((postings.first()?.doc, list, 0))))
            .collect();
        while let Some(Reverse((doc, list, at))) = heads.pop() {
            let posting = lists[list][at];
            match out.last_mut() {
                Some((last, counts)) if *last == doc => {
                    for (sum, n) in counts.iter_mut().zip(widen(&posting)) {
                        *sum += n;
                    }
                }
                _ => out.push((doc, widen(&posting))),
            }
            if let Some(next) = lists[list].get(at + 1) {
                heads.push(Reverse((next.doc, list, at + 1)));
            }
        }
        out
    }

    fn doc(&self, doc: u32) -> Option<&Doc> {
        self.docs.get(usize::try_from(doc).ok()?)
    }

    fn word_score(&self, doc: u32, occurrences: [u32; FIELDS]) -> f64 {
        let lengths = self
            .doc(doc)
            .map_or([0; FIELDS], |d| d.lengths.map(u32::from));
        relevance::word_score(occurrences, lengths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(products: &[(u32, &str, &str, &str)]) -> SearchIndex {
        let mut index = SearchIndex::default();
        for (number, name, category, description) in products {
            index.add(*number, [*name, *category, *description]);
        }
        index
    }

    fn words(q: &str) -> Vec<String> {
        words_of(q).collect()
    }

    #[test]
    fn every_word_is_required_as_a_prefix_and_ranked() {
        let index = index(&[
            (1, "Oak Desk", "office", "A desk."),
            (2, "Desk", "office", "A desk made of oak."),
            (3, "Oaken Chair with Arms", "home", "Sturdy."),
            (4, "Pine Desk", "office", "No match."),
        ]);
        let found = index.search(&words("oak"), 0, 10);
        assert_eq!((found.matches, found.numbers), (3, vec![1, 3, 2]));
        let both = index.search(&words("DESK oak"), 0, 10);
        assert_eq!((both.matches, both.numbers), (2, vec![1, 2]));
        assert_eq!(index.search(&words("oak pine"), 0, 10).matches, 0);
        assert_eq!(index.search(&words("zzz"), 0, 10).matches, 0);
    }

    #[test]
    fn accents_are_folded_on_both_sides() {
        let index = index(&[(1, "Crème Brûlée Torch", "kitchen", "For café desserts.")]);
        for q in ["creme", "CRÈME", "brulee", "cafe", "Café"] {
            assert_eq!(index.search(&words(q), 0, 10).numbers, vec![1], "{q}");
        }
    }

    #[test]
    fn pages_cut_the_ranking_and_ties_put_the_newest_first() {
        let products: Vec<(u32, String)> = (1..=10).map(|n| (n, format!("Lamp {n}"))).collect();
        let mut index = SearchIndex::default();
        for (n, name) in &products {
            index.add(*n, [name.as_str(), "home", "A lamp."]);
        }
        let first = index.search(&words("lamp"), 0, 3);
        assert_eq!((first.matches, first.numbers), (10, vec![10, 9, 8]));
        assert_eq!(index.search(&words("lamp"), 9, 3).numbers, vec![1]);
        assert!(index.search(&words("lamp"), 10, 3).numbers.is_empty());
        // Adding a number already indexed changes nothing.
        index.add(5, ["Lamp lamp lamp", "home", ""]);
        assert_eq!(index.search(&words("lamp"), 0, 20).matches, 10);
    }
}
