-- Schedules (issue 17): one row per (schedule, due time), inserted by the worker that fires
-- it in the same transaction that queues its run. The primary key decides which worker
-- fires a due time: every other worker's insert finds the row and queues nothing.
CREATE TABLE schedule_fires (
    schedule   TEXT NOT NULL,                 -- the schedule's name
    due_ms     INTEGER NOT NULL,                  -- the due time, milliseconds since the epoch (UTC)
    outcome    TEXT NOT NULL,                 -- queued | skipped
    run_id     TEXT,                          -- the queued run (NULL when skipped)
    note       TEXT NOT NULL DEFAULT '',      -- why it was skipped
    fired_by   TEXT NOT NULL,                 -- the worker
    fired_at   TEXT NOT NULL,                 -- when (RFC 3339)
    PRIMARY KEY (schedule, due_ms)
) STRICT;

CREATE INDEX schedule_fires_by_run ON schedule_fires (run_id);

-- A fire is a fact: a row changed or deleted would let a due time fire again.
CREATE TRIGGER schedule_fires_no_update BEFORE UPDATE ON schedule_fires
BEGIN SELECT RAISE(ABORT, 'a schedule''s fires are append-only'); END;
CREATE TRIGGER schedule_fires_no_delete BEFORE DELETE ON schedule_fires
BEGIN SELECT RAISE(ABORT, 'a schedule''s fires are append-only'); END;

-- The dead-man's switch: one row per (schedule, overdue since, reminder), inserted by the
-- worker that sends that notification. The key decides which worker sends it: once, and
-- once per `remind-every` after that.
CREATE TABLE schedule_alerts (
    schedule   TEXT NOT NULL,
    since_ms   INTEGER NOT NULL,                  -- the last success (or first run) it is measured from
    reminder   INTEGER NOT NULL,                  -- 0: the first notification; 1, 2...: reminders
    sent_by    TEXT NOT NULL,                 -- the worker
    sent_at    TEXT NOT NULL,                 -- when (RFC 3339)
    PRIMARY KEY (schedule, since_ms, reminder)
) STRICT;
