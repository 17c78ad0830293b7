-- Abandon with compensation from the console (issue 16): the console runs no step, so it
-- queues the run again with who asked and why; the worker that claims it runs
-- `runbook abandon RUN --compensate` as that operator. The reason is stored only after it
-- is redacted with the run's secrets. NULL: an ordinary queue entry.
ALTER TABLE queue ADD COLUMN abandon_by TEXT;
ALTER TABLE queue ADD COLUMN abandon_reason TEXT;
