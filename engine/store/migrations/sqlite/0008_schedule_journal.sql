-- The journal of each schedule (issue 17): every decision about a schedule (a due time fired,
-- skipped, missed; an overdue notice, its delivery; back in time) as a hash-chained record,
-- chained like `events` (seq, prev_hash, hash; the same hash). Each is written in the
-- transaction that inserts the schedule_fires / schedule_alerts row that decides it.
CREATE TABLE schedule_events (
    schedule  TEXT NOT NULL,              -- the schedule's name: the journal's name
    seq       INTEGER NOT NULL,           -- 1, 2, 3... per schedule, without gaps
    ts        TEXT NOT NULL,              -- RFC 3339, UTC
    kind      TEXT NOT NULL,              -- the event's kind, for queries; the body is authoritative
    due_ms    INTEGER,                    -- the due time it is about, for queries
    body      TEXT NOT NULL,              -- the event as JSON
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    db_role   TEXT,
    PRIMARY KEY (schedule, seq)
) STRICT;

CREATE TRIGGER schedule_events_no_update BEFORE UPDATE ON schedule_events
BEGIN SELECT RAISE(ABORT, 'a schedule''s journal is append-only'); END;
CREATE TRIGGER schedule_events_no_delete BEFORE DELETE ON schedule_events
BEGIN SELECT RAISE(ABORT, 'a schedule''s journal is append-only'); END;

-- Each schedule journal's head: the last record's seq and hash (a cut tail is detected
-- against it). It is created empty, then only ever names the journal's last record, and is never deleted.
CREATE TABLE schedule_heads (
    schedule  TEXT PRIMARY KEY NOT NULL,
    last_seq  INTEGER NOT NULL,
    last_hash TEXT                    -- NULL while the journal is empty
) STRICT;

CREATE TRIGGER schedule_heads_no_delete BEFORE DELETE ON schedule_heads
BEGIN SELECT RAISE(ABORT, 'a schedule''s journal is append-only'); END;
CREATE TRIGGER schedule_heads_are_the_journals BEFORE UPDATE ON schedule_heads
WHEN NEW.schedule IS NOT OLD.schedule
  OR NEW.last_seq IS NOT (SELECT MAX(seq) FROM schedule_events WHERE schedule = NEW.schedule)
  OR NEW.last_hash IS NOT (SELECT hash FROM schedule_events WHERE schedule = NEW.schedule ORDER BY seq DESC LIMIT 1)
BEGIN SELECT RAISE(ABORT, 'a schedule''s head names its journal''s last record'); END;
CREATE TRIGGER schedule_heads_start_empty BEFORE INSERT ON schedule_heads
WHEN NEW.last_seq <> 0 OR NEW.last_hash IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a schedule''s head starts empty'); END;
