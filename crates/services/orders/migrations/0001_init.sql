-- Orders as the customer sees them. Amounts are minor units of `currency` (one currency per
-- order); `status` moves PENDING -> CONFIRMED or PENDING -> CANCELLED, only in the saga's final
-- transaction. The address is copied here because the shipment is created from it later.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    reason TEXT NULL,
    currency TEXT NOT NULL,
    subtotal_minor BIGINT NOT NULL CHECK (subtotal_minor >= 0),
    shipping_minor BIGINT NOT NULL CHECK (shipping_minor >= 0),
    total_minor BIGINT NOT NULL CHECK (total_minor >= 0),
    address_name TEXT NOT NULL,
    address_line1 TEXT NOT NULL,
    address_city TEXT NOT NULL,
    address_postal_code TEXT NOT NULL,
    address_country TEXT NOT NULL,
    quote_id TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- "My orders, newest first" and the admin list by status.
CREATE INDEX orders_by_user ON orders (user_id, created_at, id);
CREATE INDEX orders_by_status ON orders (status, created_at, id);

-- The lines as priced at checkout: the saga reserves, charges and ships exactly these.
CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    product_id TEXT NOT NULL,
    name TEXT NOT NULL,
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    line_total_minor BIGINT NOT NULL CHECK (line_total_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- Append-only: every status an order has had, with why.
CREATE TABLE order_history (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    note TEXT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- One row per (user, Idempotency-Key) that created an order. Inserted first in the checkout
-- transaction, so of two concurrent requests with one key exactly one commits; the other meets
-- the primary key and answers with its twin's order (no foreign key to `orders`: the key row is
-- written before the order it names). `request_hash` tells a repeat from a reuse of the key
-- with another body.
CREATE TABLE checkout_keys (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    order_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- The checkout saga of each order: where it is (`status` running | compensating | done, `step`
-- the next thing to do), what it learnt from the peers, and who may run it. An executor holds
-- the saga while `lease_until` (clock millis) is in the future and `lease_owner` is its token;
-- every write is conditional on the token, so two executors never both advance one saga.
-- `card_number` is kept only until the authorization has a definitive answer (a simulation
-- compromise: a real shop would hold the provider's token, never the number).
CREATE TABLE sagas (
    order_id TEXT PRIMARY KEY REFERENCES orders (id),
    status TEXT NOT NULL CHECK (status IN ('running', 'compensating', 'done')),
    step TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    failure TEXT NULL,
    card_number TEXT NULL,
    payment_id TEXT NULL,
    shipment_id TEXT NULL,
    tracking_number TEXT NULL,
    lease_owner TEXT NULL,
    lease_until BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What the recovery loop scans: unfinished sagas by when they may next run.
CREATE INDEX sagas_due ON sagas (status, next_attempt_at);

-- Append-only: every step outcome, in order (the admin view and the tests read it).
CREATE TABLE saga_log (
    order_id TEXT NOT NULL REFERENCES sagas (order_id),
    seq BIGINT NOT NULL,
    step TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('do', 'compensate')),
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'skipped')),
    detail TEXT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (order_id, seq)
);
