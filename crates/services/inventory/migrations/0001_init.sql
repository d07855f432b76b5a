-- What can still be reserved of each product. A reservation moves units out of `available`,
-- releasing it puts them back, committing it keeps them out for good. Every change is a
-- conditional UPDATE; the CHECK is the last line of defence should one ever be wrong.
CREATE TABLE stock (
    product_id TEXT PRIMARY KEY,
    available BIGINT NOT NULL CHECK (available >= 0),
    updated_at BIGINT NOT NULL
);

-- One row per reservation. The primary key is the caller's reservation id, which makes
-- "reserve" idempotent: a second insert of the same id cannot succeed. Status only moves
-- held -> committed or held -> released, always with `WHERE status = 'held'`.
CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    released_reason TEXT NULL
);

-- The expiry pass looks for held reservations past their expiry, oldest first.
CREATE INDEX reservations_status_expires ON reservations (status, expires_at);
-- The admin listing pages through reservations newest first.
CREATE INDEX reservations_created ON reservations (created_at);

-- What each reservation holds, one row per product (a product appears once per reservation).
CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, product_id)
);
