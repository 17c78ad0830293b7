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
    EXECUTE format('ALTER FUNCTION runbook_identity_key(TEXT) SET search_path = %I, pg_temp', current_schema());
END
$pin$;
