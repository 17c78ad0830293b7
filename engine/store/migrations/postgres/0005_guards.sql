-- Issue 11, second round: every function the store's triggers run reads the store's own
-- tables, never a session's. PostgreSQL searches a session's temporary schema (`pg_temp`)
-- first unless it is named: an operator's role could create a temporary `events` that a
-- trigger reads in place of the real one (red team F2). Each function is pinned to the
-- store's schema with `pg_temp` last, and the ones that read tables run as their owner.
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_runs_head() SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_runs_guard() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_events_append_only() SET search_path = %I, pg_temp', current_schema());
END
$pin$;

-- The normal form of an identity, exactly as runbook_core::journal::identity_key computes
-- it, for every string and in every locale: ASCII whitespace trimmed and collapsed, ASCII
-- letters lower-cased, nothing else changed. (lower() follows the database's locale and maps
-- some letters differently from Rust, such as a final capital sigma: red team F3. And E'\v'
-- is not an escape in PostgreSQL: the old form trimmed the letter v.)
CREATE OR REPLACE FUNCTION runbook_identity_key(name TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT translate(regexp_replace(btrim(name, E' \t\n\r\f\x0b'), E'[ \t\n\r\f\x0b]+', ' ', 'g'),
                     'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
$$;

-- A record's `db_role` is the role of the session that wrote it in both identity modes (in
-- `declared` mode any role could write any `db_role` before). In `db-role` mode the operator
-- it claims must also be that role's identity.
CREATE OR REPLACE FUNCTION runbook_events_identity() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
DECLARE
    body JSONB;
BEGIN
    IF NEW.db_role IS DISTINCT FROM session_user THEN
        RAISE EXCEPTION 'runbook identity: the record names database role %, but the session''s role is %',
            coalesce(NEW.db_role, 'none'), session_user USING ERRCODE = '42501';
    END IF;
    IF NOT runbook_db_role_mode() THEN
        RETURN NEW;
    END IF;
    body := NEW.body::jsonb;
    PERFORM runbook_check_identity(CASE body ->> 'kind' WHEN 'approval_requested' THEN body ->> 'requested_by'
                                                        ELSE body ->> 'operator' END);
    RETURN NEW;
END
$$;

-- A queued run is bound once submitted (red team F5): its plan, labels and submitter never
-- change and no entry is deleted; in `db-role` mode its submitter is the session's identity,
-- as a run's operator is. Workers change only the claim columns (state, worker, claims,
-- heartbeat_ms, not_before_ms, exit_code, note).
CREATE FUNCTION runbook_queue_guard() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF runbook_db_role_mode() THEN
            PERFORM runbook_check_identity(NEW.submitted_by);
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.run_id, NEW.runbook, NEW.plan, NEW.labels, NEW.submitted_by, NEW.submitted_at)
           IS NOT DISTINCT FROM (OLD.run_id, OLD.runbook, OLD.plan, OLD.labels, OLD.submitted_by, OLD.submitted_at) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'a queued run''s plan, labels and submitter never change, and no queued run is deleted';
END
$$;

CREATE TRIGGER queue_guard BEFORE INSERT OR UPDATE OR DELETE ON queue
    FOR EACH ROW EXECUTE FUNCTION runbook_queue_guard();
CREATE TRIGGER queue_no_truncate BEFORE TRUNCATE ON queue
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_queue_guard();

DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_identity_key(TEXT) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_queue_guard() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_events_identity() SET search_path = %I, pg_temp', current_schema());
END
$pin$;
