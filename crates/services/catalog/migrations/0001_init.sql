-- The catalog's tables, in SQL both SQLite and PostgreSQL accept.
-- Categories are fixed and created here; products are written by the seeder.

CREATE TABLE categories (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    position BIGINT NOT NULL
);

CREATE TABLE products (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    category_slug TEXT NOT NULL REFERENCES categories (slug),
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- (category_slug, id) rather than category_slug alone: a category's page, ordered by id, is then
-- read straight from the index instead of sorting the whole category.
CREATE INDEX products_category_idx ON products (category_slug, id);

INSERT INTO categories (slug, name, position) VALUES
    ('kitchen', 'Kitchen', 1),
    ('garden', 'Garden', 2),
    ('books', 'Books', 3),
    ('outdoor', 'Outdoor', 4),
    ('toys', 'Toys', 5),
    ('office', 'Office', 6),
    ('audio', 'Audio', 7),
    ('apparel', 'Apparel', 8),
    ('home', 'Home', 9),
    ('sports', 'Sports', 10);
