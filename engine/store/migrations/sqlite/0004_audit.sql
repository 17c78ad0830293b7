-- Issue 11: the audit trail means what it says.
-- `events.db_role`: the database role of the session that wrote a record (PostgreSQL; always
-- NULL here), part of the record's hash. `runbook_settings` holds the identity mode and
-- `runbook_identities` the administrator's mapping of database roles to identities (both
-- used on PostgreSQL only; the same tables here so that both backends have one schema).
-- The run summaries and the kept logs are protected as the journal is: a run's identity never
-- changes and no row is deleted; `audit verify` checks what may change against the chain.

ALTER TABLE events ADD COLUMN db_role TEXT;

-- A run's `started_at` is now its first record's time (so that it can be checked against the
-- journal); runs recorded before take it too.
UPDATE runs SET started_at = (SELECT e.ts FROM events e WHERE e.run_id = runs.run_id AND e.seq = 1)
WHERE EXISTS (SELECT 1 FROM events e WHERE e.run_id = runs.run_id AND e.seq = 1);

CREATE TABLE runbook_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE runbook_identities (
    db_role  TEXT PRIMARY KEY NOT NULL,
    identity TEXT NOT NULL
) STRICT;

CREATE TRIGGER runs_identity_fixed BEFORE UPDATE OF run_id, runbook, operator ON runs
BEGIN
    SELECT RAISE(ABORT, 'a run''s id, runbook and operator never change');
END;

-- A run's head is its journal's: `last_seq` and `last_hash` name its last record.
CREATE TRIGGER runs_head_is_the_journals BEFORE UPDATE OF last_seq, last_hash ON runs
WHEN NEW.last_seq IS NOT (SELECT MAX(e.seq) FROM events e WHERE e.run_id = NEW.run_id)
  OR NEW.last_hash IS NOT (SELECT e.hash FROM events e WHERE e.run_id = NEW.run_id AND e.seq = NEW.last_seq)
BEGIN
    SELECT RAISE(ABORT, 'a run''s last_seq and last_hash are those of its last journal record');
END;

CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
BEGIN
    SELECT RAISE(ABORT, 'runs are never deleted');
END;

CREATE TRIGGER step_logs_no_delete BEFORE DELETE ON step_logs
BEGIN
    SELECT RAISE(ABORT, 'kept logs are never deleted');
END;
