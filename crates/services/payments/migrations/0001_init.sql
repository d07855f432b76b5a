-- One row per authorization attempt that reached a verdict: approved (then captured, voided,
-- refunded) or declined. Only the last four digits and the brand of a card are ever stored.
-- `status` moves only by conditional UPDATEs (`... WHERE status = 'authorized'`), so each
-- transition happens at most once however many requests race for it.
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('authorized', 'captured', 'voided', 'refunded', 'declined')),
    card_last4 TEXT NOT NULL,
    card_brand TEXT NOT NULL,
    decline_code TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- "The payments of one order" is how the orders saga finds what it must compensate.
CREATE INDEX payments_by_order ON payments (order_id, created_at);
-- The admin list, newest first, optionally of one status.
CREATE INDEX payments_by_status ON payments (status, created_at);

-- Append-only: one row per money movement. The unique pair makes a second capture, void or
-- refund of one payment impossible even if a bug slipped past the conditional UPDATE.
CREATE TABLE ledger (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    kind TEXT NOT NULL CHECK (kind IN ('authorize', 'capture', 'void', 'refund')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    at BIGINT NOT NULL,
    UNIQUE (payment_id, kind)
);

CREATE INDEX ledger_by_currency ON ledger (currency, kind);

-- The first answer given for each (key, operation), inserted complete with that answer in the
-- same transaction as the operation's effect. Its primary key makes a concurrent request with
-- the same key wait at its own INSERT for the first to commit, then replay the first answer.
CREATE TABLE idempotency_keys (
    key TEXT NOT NULL,
    operation TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code BIGINT NOT NULL,
    response_body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key, operation)
);

-- The retention task deletes by age.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
