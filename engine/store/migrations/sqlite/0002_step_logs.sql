-- Step output, one row per step attempt, so that every operator of a shared store can read
-- it (`runbook logs`), not only the host that ran the step. Written when the attempt ends.
CREATE TABLE step_logs (
    run_id  TEXT NOT NULL REFERENCES runs (run_id),
    step    TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    body    TEXT NOT NULL,           -- lines `out TEXT` / `err TEXT`, secrets already redacted
    PRIMARY KEY (run_id, step, attempt)
) STRICT;
