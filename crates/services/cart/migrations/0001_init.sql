-- One row per cart that has ever been written to. Adding a line locks this row first, so the
-- "at most max_lines lines" check and the insert that follows it are serialised per user on
-- PostgreSQL (row lock) as on SQLite (database write lock); without it two concurrent adds of
-- different products could both pass the check.
CREATE TABLE carts (
    user_id TEXT PRIMARY KEY,
    updated_at BIGINT NOT NULL
);

-- The lines of every cart. Prices are not stored: the cart is priced from the catalog on read.
-- The primary key also serves "the lines of one user", the only way the table is read.
CREATE TABLE cart_items (
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    added_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
