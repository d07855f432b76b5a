-- Full-text search on PostgreSQL: a stored, weighted tsvector per product and a GIN index on
-- it. Stored (a generated column) rather than an expression index because ranking reads the
-- vector of every match: recomputing it per row made a one-letter prefix search over 100,000
-- products take seconds.
--
-- The 'simple' configuration (no stemming, no stop words) behaves like SQLite's unicode61
-- tokenizer. Weights mirror the FTS5 ranking in store.rs (name 10, category 4, description 1):
-- name is A (1.0 in ts_rank), category B (0.4), description D (0.1). The category's slug stands
-- in for its name: a generated column cannot read another table, and every category name is
-- its capitalised slug.

ALTER TABLE products ADD COLUMN search_document tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', name), 'A')
    || setweight(to_tsvector('simple', category_slug), 'B')
    || setweight(to_tsvector('simple', description), 'D')
) STORED;

CREATE INDEX products_search_idx ON products USING GIN (search_document);
