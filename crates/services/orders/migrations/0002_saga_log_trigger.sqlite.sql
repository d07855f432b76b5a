-- Each saga step used to cost a transaction of its own: BEGIN, UPDATE sagas, INSERT saga_log,
-- COMMIT. On SQLite every statement is a round trip to the connection's thread, and those round
-- trips were most of a checkout's cost. Now the executor writes a step's outcome into the saga row
-- itself (`log_seq` + 1 and the `log_*` columns) in one conditional UPDATE, and this trigger
-- appends that outcome to `saga_log` inside the same statement: one round trip, still all or
-- nothing. `log_*` also tell the admin view what the saga did last.
ALTER TABLE sagas ADD COLUMN log_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sagas ADD COLUMN log_step TEXT NULL;
ALTER TABLE sagas ADD COLUMN log_action TEXT NULL;
ALTER TABLE sagas ADD COLUMN log_outcome TEXT NULL;
ALTER TABLE sagas ADD COLUMN log_detail TEXT NULL;

UPDATE sagas SET log_seq = (SELECT COALESCE(MAX(seq), 0) FROM saga_log
                            WHERE saga_log.order_id = sagas.order_id);

CREATE TRIGGER saga_log_append AFTER UPDATE OF log_seq ON sagas
WHEN NEW.log_seq > OLD.log_seq
BEGIN
    INSERT INTO saga_log (order_id, seq, step, action, outcome, detail, at)
    VALUES (NEW.order_id, NEW.log_seq, NEW.log_step, NEW.log_action, NEW.log_outcome,
            NEW.log_detail, NEW.updated_at);
END;
