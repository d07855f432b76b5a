-- Quotes: what a parcel to a destination was priced at, honoured until expires_at. Kept after
-- they expire (for a grace period, then purged) so a late shipment can still be traced to the
-- quote it did not get.
CREATE TABLE quotes (
    id TEXT PRIMARY KEY,
    country TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    items BIGINT NOT NULL CHECK (items > 0),
    weight_grams BIGINT,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX quotes_expires_at ON quotes (expires_at);

-- Shipments. UNIQUE (order_id) is what makes creation idempotent per order even under
-- concurrency: the second insert for an order conflicts and reads the first instead.
-- UNIQUE (tracking_number) turns the (practically impossible) collision of two random numbers
-- into an error the store retries, never two parcels with one number.
CREATE TABLE shipments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    tracking_number TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('created', 'cancelled')),
    quote_id TEXT,
    name TEXT NOT NULL,
    line1 TEXT NOT NULL,
    city TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    country TEXT NOT NULL,
    cost_minor BIGINT NOT NULL CHECK (cost_minor > 0),
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The admin list: newest first, all or by status.
CREATE INDEX shipments_created ON shipments (created_at, id);
CREATE INDEX shipments_status_created ON shipments (status, created_at, id);

-- What each shipment holds, in the order the request listed it.
CREATE TABLE shipment_lines (
    shipment_id TEXT NOT NULL REFERENCES shipments (id),
    position BIGINT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, position)
);
