-- Full-text search on PostgreSQL: a GIN index over the same tsvector expression the search
-- query uses (store.rs, SEARCH_POSTGRES), so the planner can match the two.
-- The 'simple' configuration (no stemming, no stop words) behaves like SQLite's unicode61
-- tokenizer. The category's slug stands in for its name: an index expression cannot read
-- another table, and every category name is its capitalised slug.

CREATE INDEX products_search_idx ON products USING GIN (
    to_tsvector('simple', name || ' ' || description || ' ' || category_slug)
);
