-- Schedules (issue 17): one row per (schedule, due time), inserted by the worker that fires
-- it in the same transaction that queues its run. The primary key decides which worker
-- fires a due time: every other worker's insert finds the row and queues nothing.
CREATE TABLE schedule_fires (
    schedule   TEXT NOT NULL,                 -- the schedule's name
    due_ms     BIGINT NOT NULL,                  -- the due time, milliseconds since the epoch (UTC)
    outcome    TEXT NOT NULL,                 -- queued | skipped
    run_id     TEXT,                          -- the queued run (NULL when skipped)
    note       TEXT NOT NULL DEFAULT '',      -- why it was skipped
    fired_by   TEXT NOT NULL,                 -- the worker
    fired_at   TEXT NOT NULL,                 -- when (RFC 3339)
    PRIMARY KEY (schedule, due_ms)
);

CREATE INDEX schedule_fires_by_run ON schedule_fires (run_id);

-- A fire is a fact: a row changed or deleted would let a due time fire again.
CREATE FUNCTION runbook_schedule_fires_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a schedule''s fires are append-only';
END;
$$;
CREATE TRIGGER schedule_fires_append_only BEFORE UPDATE OR DELETE ON schedule_fires
    FOR EACH ROW EXECUTE FUNCTION runbook_schedule_fires_guard();
CREATE TRIGGER schedule_fires_no_truncate BEFORE TRUNCATE ON schedule_fires
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_schedule_fires_guard();
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_schedule_fires_guard() SET search_path = %I, pg_temp', current_schema());
END
$pin$;

-- The dead-man's switch: one row per (schedule, overdue since, reminder), inserted by the
-- worker that sends that notification. The key decides which worker sends it: once, and
-- once per `remind-every` after that.
CREATE TABLE schedule_alerts (
    schedule   TEXT NOT NULL,
    since_ms   BIGINT NOT NULL,                  -- the last success (or first run) it is measured from
    reminder   BIGINT NOT NULL,                  -- 0: the first notification; 1, 2...: reminders
    sent_by    TEXT NOT NULL,                 -- the worker
    sent_at    TEXT NOT NULL,                 -- when (RFC 3339)
    PRIMARY KEY (schedule, since_ms, reminder)
);
