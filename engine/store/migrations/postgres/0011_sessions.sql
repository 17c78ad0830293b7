-- Issue 16: the console's sessions (`/login` with an operator token), kept in the store so
-- that a restart signs no one out and two consoles on one store share them. The store keeps
-- the SHA-256 of a session id (the cookie's 32 random bytes), never the id: whoever reads
-- the store cannot sign in with what it holds. The CSRF token of a session's forms is an
-- HMAC of its id, never stored. `token` names the token row it came from
-- (`console_tokens.name`, one name per token ever): a revoked token's sessions are refused
-- at once and deleted. Times are Unix milliseconds; expired rows are deleted on sign-in.
CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY NOT NULL,  -- hex SHA-256 of the session id
    token       TEXT NOT NULL,              -- console_tokens.name
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX console_sessions_token ON console_sessions (token);
CREATE INDEX console_sessions_expires ON console_sessions (expires_ms);
