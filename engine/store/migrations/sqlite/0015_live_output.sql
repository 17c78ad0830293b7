-- Live output (issue 16): while an attempt runs, its engine publishes the redacted tail of
-- its output here, so that a console (on another host in team mode) shows it before the
-- attempt's log is kept. Best effort and not vouched by the journal: one row per attempt,
-- replaced at most every 500 ms, the tail at most 64 KiB of lines `out TEXT` / `err TEXT`
-- (the bytes the local log gets, secrets already redacted). Readers ignore the row of an
-- attempt once its `log_kept` record exists; the engine removes its run's rows when it stops.
CREATE TABLE live_output (
    run_id     TEXT NOT NULL,
    step       TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    bytes_seen INTEGER NOT NULL,   -- bytes of output the attempt had written (the tail is their end)
    tail       TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, step, attempt)
) STRICT;
