-- A resume an operator decided on the console (red team adv19a-5): the console queues the
-- run again with who decided, and the worker that claims it runs `runbook resume` as that
-- operator, so `run_resumed` names who decided, not the submitter. NULL: the submitter
-- (an ordinary queue entry, or a run handed back by a worker: `release_claim`
-- clears it, so a resume after a hand-back is the submitter's, red team adv19b-4).
ALTER TABLE queue ADD COLUMN resume_by TEXT;
