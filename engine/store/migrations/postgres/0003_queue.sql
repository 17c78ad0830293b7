-- Runs submitted for workers (`runbook submit`, `runbook worker`). A queued run is a pinned
-- plan: the worker executes exactly what was submitted, or refuses if the files changed.
CREATE TABLE queue (
    run_id        TEXT PRIMARY KEY NOT NULL,   -- the id the run gets once a worker starts it
    runbook       TEXT NOT NULL,
    plan          TEXT NOT NULL,               -- the pinned plan document (JSON)
    labels        TEXT NOT NULL DEFAULT '',    -- labels a worker must have, comma-separated
    submitted_by  TEXT NOT NULL,
    submitted_at  TEXT NOT NULL,
    state         TEXT NOT NULL,               -- queued | claimed | done
    worker        TEXT,                        -- who claimed it last
    claims        BIGINT NOT NULL DEFAULT 0,  -- how many times it was claimed
    heartbeat_ms  BIGINT NOT NULL DEFAULT 0,  -- the claiming worker's last sign of life
    not_before_ms BIGINT NOT NULL DEFAULT 0,  -- not claimed again before (a lock was held)
    exit_code     BIGINT,                     -- the engine's exit code, once done
    note          TEXT                         -- what the worker last saw
);

CREATE INDEX queue_by_state ON queue (state, submitted_at);
