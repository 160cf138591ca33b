-- Times are Unix epoch milliseconds (UTC).
CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    phone         TEXT,
    role          TEXT NOT NULL CHECK (role IN ('user', 'organizer', 'admin')),
    password_hash TEXT NOT NULL,
    is_active     INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- A refresh-token family is one login's chain of rotated refresh tokens. Revoking the family
-- (logout, reuse of a rotated token) invalidates every token in it at once.
CREATE TABLE refresh_families (
    id             BLOB PRIMARY KEY NOT NULL,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

-- Only the SHA-256 of a refresh token is stored, never the token.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    family_id  BLOB NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Failed-login counters, per account ("acct:<email>") and per client ("ip:<addr>").
CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER
);
