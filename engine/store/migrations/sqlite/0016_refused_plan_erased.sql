-- Red team adv25 F3b: a run submitted with a parameter that holds a secret's value, checked
-- by a submitter whose secrets are not the run's (another value under the same variable),
-- is queued; the worker's engine, which reads the run's values, refuses it (exit 3,
-- nothing ran), and its plan, the value in clear, was kept. A queued run's plan still never
-- changes but in one way: the worker that claimed it erases it (to '') as it records that
-- its engine refused the run before anything ran: only a run with no journal (red team
-- adv28 A1: a running run's plan could be erased and the run called refused). Same guard as 0005 otherwise; the same
-- version as migrations/postgres/0016_refused_plan_erased.sql.
DROP TRIGGER IF EXISTS queue_plan_fixed;

CREATE TRIGGER IF NOT EXISTS queue_plan_fixed BEFORE UPDATE OF run_id, runbook, plan, labels, submitted_by, submitted_at ON queue
WHEN NEW.run_id IS NOT OLD.run_id OR NEW.runbook IS NOT OLD.runbook
  OR (NEW.plan IS NOT OLD.plan
      AND NOT (NEW.plan = '' AND OLD.state = 'claimed' AND NEW.state = 'done' AND NEW.exit_code = 3
               AND NOT EXISTS (SELECT 1 FROM events WHERE events.run_id = OLD.run_id)))
  OR NEW.labels IS NOT OLD.labels OR NEW.submitted_by IS NOT OLD.submitted_by
  OR NEW.submitted_at IS NOT OLD.submitted_at
BEGIN
    SELECT RAISE(ABORT, 'a queued run''s plan, labels and submitter never change (a refused run''s plan is only erased)');
END;
