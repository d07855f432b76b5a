-- Search moved to an index in the catalog's memory (store/search_index.rs): ts_rank read the
-- tsvector of every match per query. The stored tsvector and its GIN index are no longer read.

DROP INDEX products_search_idx;
ALTER TABLE products DROP COLUMN search_document;
