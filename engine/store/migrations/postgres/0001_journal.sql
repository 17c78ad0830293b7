-- The journal of runs, and the locks that keep one live run per lock name (PostgreSQL).
-- The same tables as migrations/sqlite/0001_journal.sql; integers are BIGINT because lease
-- times are milliseconds since the epoch. Forward-only: never edit a migration that has
-- shipped; add a new one, to both backends.

CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY NOT NULL,
    runbook     TEXT NOT NULL,
    operator    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    status      TEXT NOT NULL,
    finished_at TEXT,
    lock_name   TEXT,
    last_seq    BIGINT NOT NULL DEFAULT 0,
    last_hash   TEXT
);

CREATE TABLE events (
    run_id    TEXT NOT NULL REFERENCES runs (run_id),
    seq       BIGINT NOT NULL,
    ts        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    step      TEXT,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Journal rows are append-only: the database itself refuses to change, remove or truncate one.
CREATE FUNCTION runbook_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal rows are append-only';
END
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION runbook_events_append_only();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION runbook_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_events_append_only();

CREATE TABLE locks (
    name        TEXT PRIMARY KEY NOT NULL,
    fence       BIGINT NOT NULL,
    run_id      TEXT,
    holder      TEXT,
    acquired_at TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);
