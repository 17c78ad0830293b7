-- An overdue notice is taken with its record (issue 17, S1 for alerts): a row of
-- schedule_alerts is refused unless the schedule's journal already holds its record: an
-- `overdue` record of the same overdue period (its `due_ms` column) and reminder for a
-- notice (reminder >= 0), a `back_in_time` record of the period for its end (reminder -1).
-- A worker appends the record, then inserts the row, in one transaction; a row inserted by
-- plain SQL (a role with INSERT on the table) is refused instead of silencing the notice.
-- Records written before this migration (their `due_ms` is NULL) are not looked up: the
-- rows they decide were inserted already. The function reads a table: SECURITY DEFINER
-- with its search_path pinned to the store's schema (a session's temporary tables cannot
-- stand in for the journal).
CREATE FUNCTION runbook_schedule_alerts_record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM schedule_events e WHERE e.schedule = NEW.schedule AND e.due_ms = NEW.since_ms
               AND ((NEW.reminder >= 0 AND e.kind = 'overdue'
                     AND e.body LIKE '%"reminder":' || NEW.reminder::text || ',%')
                    OR (NEW.reminder = -1 AND e.kind = 'back_in_time'))) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a schedule''s overdue notice is taken only with its journal record';
END
$$;
CREATE TRIGGER schedule_alerts_have_their_record BEFORE INSERT ON schedule_alerts
    FOR EACH ROW EXECUTE FUNCTION runbook_schedule_alerts_record();
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_schedule_alerts_record() SET search_path = %I, pg_temp', current_schema());
END
$pin$;
