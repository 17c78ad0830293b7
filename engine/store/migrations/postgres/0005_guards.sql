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
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_identity_key(TEXT) SET search_path = %I, pg_temp', current_schema());
END
$pin$;
