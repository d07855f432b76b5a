-- A cart is checked out at most once (RELIABILITY S10). `version` counts the changes to a cart's
-- lines: the cart shows it, orders prices what it read at that version and then claims the cart
-- for its new order *at that version*, a conditional update that succeeds for one order only.
-- The claim (`claim_order_id`, until `claim_expires_at`, clock millis) is held while the order's
-- saga runs: `order.confirmed` takes the ordered lines out and ends it, `order.cancelled` releases
-- it so the customer can try again, and one that is never used (orders stopped between the claim
-- and the order) simply expires. Other changes to the lines are not blocked by a claim: they
-- bump the version, which is what keeps a slow, stale checkout from claiming later.
ALTER TABLE carts ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE carts ADD COLUMN claim_order_id TEXT NULL;
ALTER TABLE carts ADD COLUMN claim_expires_at BIGINT NULL;

-- The orders whose lines have been taken out of their buyer's cart. Two messengers say an order
-- was confirmed: orders itself, at once, when the saga ends within the checkout request (so the
-- customer can shop and check out again without waiting for the bus, or during its outage), and
-- `order.confirmed`, which cannot be lost. Whichever comes first takes the lines out; the other
-- meets this primary key and does nothing, so the lines leave once.
CREATE TABLE taken_orders (
    order_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    taken_at BIGINT NOT NULL
);
