-- Users: emails are stored normalised (trimmed, lower-cased), so the unique index is what makes
-- "one account per address" hold, also under concurrent sign-ups.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Ed25519 signing keys. Every row is published in the JWKS, so a retired key (active = FALSE)
-- keeps verifying the tokens it signed until they expire; only active keys sign.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_key_pkcs8 TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active BOOLEAN NOT NULL
);
