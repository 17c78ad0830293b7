-- Red team adv25 F3b: a run submitted with a parameter that holds a secret's value, checked
-- by a submitter whose secrets are not the run's (another value under the same variable),
-- is queued; the worker's engine, which reads the run's values, refuses it (exit 3,
-- nothing ran), and its plan, the value in clear, was kept. A queued run's plan still never
-- changes but in one way: the worker that claimed it erases it (to '') as it records that
-- its engine refused the run before anything ran: only a run with no journal (red team
-- adv28 A1: a running run's plan could be erased and the run called refused). The guard of 0012 otherwise; the same
-- version as migrations/sqlite/0016_refused_plan_erased.sql.
CREATE OR REPLACE FUNCTION runbook_queue_guard() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF runbook_db_role_mode() THEN
            PERFORM runbook_check_identity(NEW.submitted_by);
        END IF;
        IF NEW.abandon_by IS NOT NULL OR NEW.abandon_reason IS NOT NULL OR NEW.abandon_head IS NOT NULL THEN
            RAISE EXCEPTION 'a submitted run carries no abandon request';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.run_id, NEW.runbook, NEW.labels, NEW.submitted_by, NEW.submitted_at)
           IS DISTINCT FROM (OLD.run_id, OLD.runbook, OLD.labels, OLD.submitted_by, OLD.submitted_at)
           OR (NEW.plan IS DISTINCT FROM OLD.plan
               AND NOT (NEW.plan = '' AND OLD.state = 'claimed' AND NEW.state = 'done' AND NEW.exit_code = 3
                        AND NOT EXISTS (SELECT 1 FROM events WHERE events.run_id = OLD.run_id))) THEN
            RAISE EXCEPTION 'a queued run''s plan, labels and submitter never change (a refused run''s plan is only erased), and no queued run is deleted';
        END IF;
        IF (NEW.abandon_by, NEW.abandon_reason, NEW.abandon_head)
           IS NOT DISTINCT FROM (OLD.abandon_by, OLD.abandon_reason, OLD.abandon_head) THEN
            RETURN NEW;
        END IF;
        IF OLD.state = 'done' AND NEW.state = 'queued' THEN
            IF runbook_db_role_mode() THEN
                PERFORM runbook_check_identity(NEW.abandon_by);
            END IF;
            RETURN NEW;
        END IF;
        IF (NEW.state = 'done' AND NEW.abandon_by IS NULL AND NEW.abandon_reason IS NULL AND NEW.abandon_head IS NULL)
           OR (NEW.abandon_reason IS NULL AND (NEW.abandon_by, NEW.abandon_head) IS NOT DISTINCT FROM (OLD.abandon_by, OLD.abandon_head))
           OR (OLD.state = 'claimed' AND NEW.state = 'queued' AND NEW.abandon_by IS NOT DISTINCT FROM OLD.abandon_by
               AND (NEW.abandon_reason IS NULL OR NEW.abandon_reason IS NOT DISTINCT FROM OLD.abandon_reason)) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'an abandon request (who asked, why, at which record) is made once: it is never changed while it stands';
    END IF;
    RAISE EXCEPTION 'a queued run''s plan, labels and submitter never change, and no queued run is deleted';
END
$$;

DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION runbook_queue_guard() SET search_path = %I, pg_temp', current_schema());
END
$pin$;
