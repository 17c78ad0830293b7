-- Issue 11, second round: the same version as migrations/postgres/0005_guards.sql. SQLite
-- has no per-session schemas that could shadow the store's tables in a trigger. A queued
-- run is bound once submitted: its plan, labels and submitter never change and no entry is
-- deleted (a file's owner can drop these triggers; the book says so).
CREATE TRIGGER IF NOT EXISTS queue_plan_fixed BEFORE UPDATE OF run_id, runbook, plan, labels, submitted_by, submitted_at ON queue
WHEN NEW.run_id IS NOT OLD.run_id OR NEW.runbook IS NOT OLD.runbook OR NEW.plan IS NOT OLD.plan
  OR NEW.labels IS NOT OLD.labels OR NEW.submitted_by IS NOT OLD.submitted_by
  OR NEW.submitted_at IS NOT OLD.submitted_at
BEGIN
    SELECT RAISE(ABORT, 'a queued run''s plan, labels and submitter never change');
END;

CREATE TRIGGER IF NOT EXISTS queue_no_delete BEFORE DELETE ON queue
BEGIN
    SELECT RAISE(ABORT, 'no queued run is deleted');
END;
