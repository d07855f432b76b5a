-- Search moved to an index in the catalog's memory (store/search_index.rs): FTS5 ranked every
-- match per query. The FTS5 table and the triggers that fed it are no longer read.

DROP TRIGGER products_fts_insert;
DROP TRIGGER products_fts_delete;
DROP TRIGGER products_fts_update;
DROP TABLE products_fts;
