-- Login attempts of the last minute per account, for the throttle in front of the password check
-- (RELIABILITY.md S6). `account` is the address as typed, normalised, whether or not an account
-- has it, so known and unknown addresses are throttled alike. An attempt is written before its
-- password is checked and removed when it is refused or succeeds, so the rows of an account are
-- its failures plus the checks under way.
CREATE TABLE login_attempts (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    attempted_at BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_account ON login_attempts (account, attempted_at);
CREATE INDEX login_attempts_by_age ON login_attempts (attempted_at);
