-- The journal of runs, and the locks that keep one live run per lock name.
-- Forward-only: never edit a migration that has shipped; add a new one.

CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY NOT NULL,
    runbook     TEXT NOT NULL,
    operator    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    status      TEXT NOT NULL,           -- a RunStatus name: running, succeeded, ...
    finished_at TEXT,
    lock_name   TEXT,                    -- the rendered lock name, if the runbook has one
    last_seq    INTEGER NOT NULL DEFAULT 0,
    last_hash   TEXT
) STRICT;

CREATE TABLE events (
    run_id    TEXT NOT NULL REFERENCES runs (run_id),
    seq       INTEGER NOT NULL,          -- 1, 2, 3... per run, without gaps
    ts        TEXT NOT NULL,             -- RFC 3339, UTC
    kind      TEXT NOT NULL,             -- the event's kind, for queries; the body is authoritative
    step      TEXT,
    body      TEXT NOT NULL,             -- the event as JSON
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

-- Journal rows are append-only: the database itself refuses to change or remove one.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'journal rows are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'journal rows are append-only');
END;

CREATE TABLE locks (
    name        TEXT PRIMARY KEY NOT NULL,
    fence       INTEGER NOT NULL,        -- grows by one at every acquisition; never reused
    run_id      TEXT,                    -- NULL when released
    holder      TEXT,                    -- operator@host (pid N)
    acquired_at TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0   -- milliseconds since the Unix epoch
) STRICT;
