-- Red team adv18c: an abandon with compensation asked from the console is a request made
-- once. `abandon_head` is the journal's last record when it was asked: a worker that claims
-- it drops it if anything was journaled since (another decision came first). Who asked, why
-- and that head change only when a `done` entry is queued again (a new request, or a resume
-- that clears them), and then, in `db-role` mode, who asked is the session's identity (as a
-- submitter is); the reason may be cleared at any time (the worker clears it once it has
-- handed it to its engine); the request is cleared with its entry `done`; a hand-back
-- (`claimed` to `queued`) moves the head past its own engine's records. A submission never
-- carries a request.
ALTER TABLE queue ADD COLUMN abandon_head BIGINT;

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
        IF (NEW.run_id, NEW.runbook, NEW.plan, NEW.labels, NEW.submitted_by, NEW.submitted_at)
           IS DISTINCT FROM (OLD.run_id, OLD.runbook, OLD.plan, OLD.labels, OLD.submitted_by, OLD.submitted_at) THEN
            RAISE EXCEPTION 'a queued run''s plan, labels and submitter never change, and no queued run is deleted';
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
