-- Every message the service "sent". One message per event: the platform's inbox already stops a
-- redelivered event from running the handler twice; the UNIQUE event_id is defence in depth, so
-- that even a handler run outside the inbox (a bug, a hand replay) cannot send a second email.
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('order_confirmed', 'order_cancelled')),
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- "My messages, newest first", the route every customer reads.
CREATE INDEX messages_by_user ON messages (user_id, created_at, id);
-- The ops console's look-up of one order's messages.
CREATE INDEX messages_by_order ON messages (order_id, created_at, id);
-- The ops console's unfiltered list, newest first.
CREATE INDEX messages_by_time ON messages (created_at, id);
