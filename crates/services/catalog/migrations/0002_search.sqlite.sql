-- Full-text search on SQLite: a contentless FTS5 index over name, description and category name.
--
-- Contentless (content='') because the text already lives in `products`; the index stores only
-- tokens. Its rowid is the number of the product id (p0000042 -> 42): `products` has a TEXT key,
-- and its implicit rowid may change on VACUUM, while the id's number never does.
-- Triggers keep the index in step with every write, whoever makes it. A contentless table
-- forgets the indexed text, so a delete must repeat the values that were indexed.

CREATE VIRTUAL TABLE products_fts USING fts5(
    name,
    description,
    category,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, description, category)
    VALUES (
        CAST(substr(new.id, 2) AS INTEGER),
        new.name,
        new.description,
        (SELECT name FROM categories WHERE slug = new.category_slug)
    );
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, category)
    VALUES (
        'delete',
        CAST(substr(old.id, 2) AS INTEGER),
        old.name,
        old.description,
        (SELECT name FROM categories WHERE slug = old.category_slug)
    );
END;

CREATE TRIGGER products_fts_update AFTER UPDATE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, category)
    VALUES (
        'delete',
        CAST(substr(old.id, 2) AS INTEGER),
        old.name,
        old.description,
        (SELECT name FROM categories WHERE slug = old.category_slug)
    );
    INSERT INTO products_fts (rowid, name, description, category)
    VALUES (
        CAST(substr(new.id, 2) AS INTEGER),
        new.name,
        new.description,
        (SELECT name FROM categories WHERE slug = new.category_slug)
    );
END;
