-- Overdue notices delivered at least once (issue 17, S3): one row per delivery attempt of
-- the notice of a schedule_alerts row (schedule, since_ms, reminder). The primary key
-- decides which worker makes each attempt; its outcome is set once, in the transaction
-- that journals it (`notified` / `notify_failed`). A claim whose worker died is taken over
-- once `lease_until_ms` has passed, and that attempt becomes `lapsed`.
CREATE TABLE schedule_notices (
    schedule       TEXT NOT NULL,
    since_ms       BIGINT NOT NULL,           -- the alert's overdue period
    reminder       BIGINT NOT NULL,           -- the alert's reminder number
    attempt        BIGINT NOT NULL,           -- 1, 2...; 0: sent before this migration
    claimed_by     TEXT NOT NULL,             -- the worker
    claimed_at     TEXT NOT NULL,             -- when (RFC 3339)
    lease_until_ms BIGINT NOT NULL,           -- the worker holds the attempt until then
    outcome        TEXT,                      -- NULL in flight; delivered | failed | lapsed | legacy
    failure        TEXT,                      -- why not, in fixed words (never the error's text)
    retry_at_ms    BIGINT,                    -- failed: not tried again before
    PRIMARY KEY (schedule, since_ms, reminder, attempt)
);

-- An outcome is set once (a lapsed attempt may still turn out delivered); nothing is deleted.
CREATE FUNCTION runbook_schedule_notices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (OLD.outcome IS NULL OR (OLD.outcome = 'lapsed' AND NEW.outcome = 'delivered'))
       AND NEW.schedule = OLD.schedule AND NEW.since_ms = OLD.since_ms
       AND NEW.reminder = OLD.reminder AND NEW.attempt = OLD.attempt
       AND NEW.claimed_by = OLD.claimed_by THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a notice attempt''s outcome is set once, and notices are append-only';
END
$$;
CREATE TRIGGER schedule_notices_guard BEFORE UPDATE OR DELETE ON schedule_notices
    FOR EACH ROW EXECUTE FUNCTION runbook_schedule_notices_guard();
CREATE TRIGGER schedule_notices_no_truncate BEFORE TRUNCATE ON schedule_notices
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_schedule_notices_guard();
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_schedule_notices_guard() SET search_path = %I, pg_temp', current_schema());
END
$pin$;

-- Notices sent before this migration were sent at most once: they are not retried.
INSERT INTO schedule_notices (schedule, since_ms, reminder, attempt, claimed_by, claimed_at, lease_until_ms, outcome)
SELECT schedule, since_ms, reminder, 0, sent_by, sent_at, 0, 'legacy' FROM schedule_alerts WHERE reminder >= 0;

-- A due time is taken with its record (issue 17, S1): a row of schedule_fires is refused
-- unless the schedule's journal already holds the record of that due time's decision, of
-- the kind the row says. A worker appends the record, then inserts the row, in one
-- transaction; a row inserted by plain SQL (a role with INSERT on the table) is refused
-- instead of silently stopping that due time.
CREATE FUNCTION runbook_schedule_fires_record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM schedule_events e WHERE e.schedule = NEW.schedule AND e.due_ms = NEW.due_ms
               AND ((NEW.outcome = 'queued' AND e.kind = 'fired')
                    OR (NEW.outcome = 'skipped' AND e.kind IN ('skipped', 'missed')))) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a schedule''s due time is taken only with its journal record';
END
$$;
CREATE TRIGGER schedule_fires_have_their_record BEFORE INSERT ON schedule_fires
    FOR EACH ROW EXECUTE FUNCTION runbook_schedule_fires_record();
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_schedule_fires_record() SET search_path = %I, pg_temp', current_schema());
END
$pin$;
