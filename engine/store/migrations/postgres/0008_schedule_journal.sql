-- The journal of each schedule (issue 17): every decision about a schedule (a due time fired,
-- skipped, missed; an overdue notice, its delivery; back in time) as a hash-chained record,
-- chained like `events` (seq, prev_hash, hash; the same hash). Each is written in the
-- transaction that inserts the schedule_fires / schedule_alerts row that decides it; the
-- head row (`FOR UPDATE`) orders the writers of one schedule.
CREATE TABLE schedule_events (
    schedule  TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    ts        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    due_ms    BIGINT,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    db_role   TEXT,
    PRIMARY KEY (schedule, seq)
);

CREATE TABLE schedule_heads (
    schedule  TEXT PRIMARY KEY NOT NULL,
    last_seq  BIGINT NOT NULL,
    last_hash TEXT
);

-- The same guards as `events`: no update, delete or truncate of a record; a record names
-- the role of the session that wrote it.
CREATE FUNCTION runbook_schedule_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.db_role IS DISTINCT FROM session_user THEN
            RAISE EXCEPTION 'runbook identity: the record names database role %, but the session''s role is %',
                coalesce(NEW.db_role, 'none'), session_user USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a schedule''s journal is append-only';
END
$$;
CREATE TRIGGER schedule_events_append_only BEFORE INSERT OR UPDATE OR DELETE ON schedule_events
    FOR EACH ROW EXECUTE FUNCTION runbook_schedule_events_guard();
CREATE TRIGGER schedule_events_no_truncate BEFORE TRUNCATE ON schedule_events
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_schedule_events_guard();

-- A head is created empty and then only ever names its journal's last record; never deleted.
CREATE FUNCTION runbook_schedule_heads_guard() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.last_seq = 0 AND NEW.last_hash IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.schedule = OLD.schedule
       AND EXISTS (SELECT 1 FROM schedule_events e WHERE e.schedule = NEW.schedule
                   AND e.seq = NEW.last_seq AND e.hash = NEW.last_hash
                   AND NOT EXISTS (SELECT 1 FROM schedule_events l WHERE l.schedule = NEW.schedule AND l.seq > e.seq)) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a schedule''s head names its journal''s last record, and is never deleted';
END
$$;
CREATE TRIGGER schedule_heads_guard BEFORE INSERT OR UPDATE OR DELETE ON schedule_heads
    FOR EACH ROW EXECUTE FUNCTION runbook_schedule_heads_guard();
CREATE TRIGGER schedule_heads_no_truncate BEFORE TRUNCATE ON schedule_heads
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_schedule_heads_guard();

DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_schedule_events_guard() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION runbook_schedule_heads_guard() SET search_path = %I, pg_temp', current_schema());
END
$pin$;
