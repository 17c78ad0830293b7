-- Issue 16: the console's operator tokens (`runbook serve token add NAME`). Only the
-- SHA-256 of a token is kept (a token is 32 random bytes: a fast hash is enough, nothing
-- to guess), never the token. A revoked token stays listed (who had access, until when).
CREATE TABLE console_tokens (
    name        TEXT PRIMARY KEY NOT NULL,  -- the operator the token signs in as
    hash        TEXT NOT NULL UNIQUE,       -- hex SHA-256 of the token
    created_at  TEXT NOT NULL,
    last_used   TEXT,
    revoked_at  TEXT
);
