-- Issue 11: the audit trail means what it says. The same tables as
-- migrations/sqlite/0004_audit.sql, and the identity mode's enforcement.
-- `events.db_role`: the database role of the session that wrote a record, part of the
-- record's hash. `runbook_settings` holds the identity mode (`identity` = `declared` or
-- `db-role`), `runbook_identities` the administrator's mapping of database roles to
-- identities. Operators' roles must not own these tables (only the administrator changes
-- the mode, the mapping and the triggers).

ALTER TABLE events ADD COLUMN db_role TEXT;

-- A run's `started_at` is now its first record's time (so that it can be checked against the
-- journal); runs recorded before take it too.
UPDATE runs SET started_at = (SELECT e.ts FROM events e WHERE e.run_id = runs.run_id AND e.seq = 1)
WHERE EXISTS (SELECT 1 FROM events e WHERE e.run_id = runs.run_id AND e.seq = 1);

CREATE TABLE runbook_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE runbook_identities (
    db_role  TEXT PRIMARY KEY NOT NULL,
    identity TEXT NOT NULL
);

-- The normal form of an identity, as runbook_core::journal::identity_key computes it
-- (surrounding whitespace off, inner whitespace one space, lower case).
CREATE FUNCTION runbook_identity_key(name TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT lower(regexp_replace(btrim(name, E' \t\n\r\f\v'), E'\\s+', ' ', 'g'))
$$;

-- In `db-role` mode, a record must name the session's role, and an identity it claims (the
-- operator of a run, a resume, a decision, an approval) must be that role's identity: the
-- mapped one, else the role's own name. PostgreSQL's authentication stands behind the role.
-- In `db-role` mode: may this session claim to be `claimed`? Refuses otherwise.
CREATE FUNCTION runbook_check_identity(claimed TEXT) RETURNS void LANGUAGE plpgsql
SECURITY DEFINER AS $$
DECLARE
    allowed TEXT;
BEGIN
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    SELECT identity INTO allowed FROM runbook_identities WHERE db_role = session_user;
    allowed := coalesce(allowed, session_user);
    IF runbook_identity_key(claimed) <> runbook_identity_key(allowed) THEN
        RAISE EXCEPTION 'runbook identity: database role % acts as `%`, not as `%`',
            session_user, allowed, claimed USING ERRCODE = '42501';
    END IF;
END
$$;

CREATE FUNCTION runbook_db_role_mode() RETURNS boolean LANGUAGE sql STABLE
SECURITY DEFINER AS $$
    SELECT EXISTS (SELECT 1 FROM runbook_settings WHERE key = 'identity' AND value = 'db-role')
$$;

CREATE FUNCTION runbook_events_identity() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
DECLARE
    body JSONB;
BEGIN
    IF NOT runbook_db_role_mode() THEN
        RETURN NEW;
    END IF;
    IF NEW.db_role IS DISTINCT FROM session_user THEN
        RAISE EXCEPTION 'runbook identity: the record names database role %, but the session''s role is %',
            coalesce(NEW.db_role, 'none'), session_user USING ERRCODE = '42501';
    END IF;
    body := NEW.body::jsonb;
    PERFORM runbook_check_identity(CASE body ->> 'kind' WHEN 'approval_requested' THEN body ->> 'requested_by'
                                                        ELSE body ->> 'operator' END);
    RETURN NEW;
END
$$;

CREATE TRIGGER events_identity BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION runbook_events_identity();

-- A run's operator, too, is the session's identity in `db-role` mode.
CREATE FUNCTION runbook_runs_identity() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    IF runbook_db_role_mode() THEN
        PERFORM runbook_check_identity(NEW.operator);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER runs_identity BEFORE INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION runbook_runs_identity();

CREATE FUNCTION runbook_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.run_id, NEW.runbook, NEW.operator) IS NOT DISTINCT FROM (OLD.run_id, OLD.runbook, OLD.operator) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a run''s id, runbook and operator never change, and no run or kept log is deleted';
END
$$;

CREATE TRIGGER runs_identity_fixed BEFORE UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION runbook_runs_guard();

-- A run's head is its journal's: `last_seq` and `last_hash` name its last record.
CREATE FUNCTION runbook_runs_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.last_seq IS DISTINCT FROM (SELECT max(e.seq) FROM events e WHERE e.run_id = NEW.run_id)
       OR NEW.last_hash IS DISTINCT FROM
          (SELECT e.hash FROM events e WHERE e.run_id = NEW.run_id AND e.seq = NEW.last_seq) THEN
        RAISE EXCEPTION 'a run''s last_seq and last_hash are those of its last journal record';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER runs_head_is_the_journals BEFORE UPDATE OF last_seq, last_hash ON runs
    FOR EACH ROW EXECUTE FUNCTION runbook_runs_head();
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION runbook_runs_guard();
CREATE TRIGGER runs_no_truncate BEFORE TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_runs_guard();
CREATE TRIGGER step_logs_no_delete BEFORE DELETE ON step_logs
    FOR EACH ROW EXECUTE FUNCTION runbook_runs_guard();
CREATE TRIGGER step_logs_no_truncate BEFORE TRUNCATE ON step_logs
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_runs_guard();

-- A SECURITY DEFINER function must not find a session's own objects first: without this, a
-- temporary table `runbook_identities` (or `runbook_settings`) of the session would shadow
-- the real one (`pg_temp` is searched first unless it is named). The store's schema, then
-- `pg_temp` last.
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_check_identity(TEXT) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_db_role_mode() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_events_identity() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_runs_identity() SET search_path = %I, pg_temp', current_schema());
END
$pin$;
