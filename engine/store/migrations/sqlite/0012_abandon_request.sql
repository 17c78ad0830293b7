-- Red team adv18c: an abandon with compensation asked from the console is a request made
-- once. `abandon_head` is the journal's last record when it was asked: a worker that claims
-- it drops it if anything was journaled since (another decision came first). Who asked, why
-- and that head change only when a `done` entry is queued again (a new request, or a resume
-- that clears them); the reason may be cleared at any time (the worker clears it once it
-- has handed it to its engine); the request is cleared with its entry `done`; a hand-back
-- (`claimed` to `queued`) moves the head past its own engine's records. A submission never
-- carries a request.
ALTER TABLE queue ADD COLUMN abandon_head INTEGER;

CREATE TRIGGER IF NOT EXISTS queue_abandon_request_fixed BEFORE UPDATE ON queue
WHEN (NEW.abandon_by IS NOT OLD.abandon_by OR NEW.abandon_reason IS NOT OLD.abandon_reason
      OR NEW.abandon_head IS NOT OLD.abandon_head)
  AND NOT (OLD.state = 'done' AND NEW.state = 'queued')
  AND NOT (NEW.state = 'done' AND NEW.abandon_by IS NULL AND NEW.abandon_reason IS NULL AND NEW.abandon_head IS NULL)
  AND NOT (NEW.abandon_reason IS NULL AND NEW.abandon_by IS OLD.abandon_by AND NEW.abandon_head IS OLD.abandon_head)
  AND NOT (OLD.state = 'claimed' AND NEW.state = 'queued' AND NEW.abandon_by IS OLD.abandon_by
           AND (NEW.abandon_reason IS NULL OR NEW.abandon_reason IS OLD.abandon_reason))
BEGIN
    SELECT RAISE(ABORT, 'an abandon request (who asked, why, at which record) is made once: it is never changed while it stands');
END;

CREATE TRIGGER IF NOT EXISTS queue_abandon_not_submitted BEFORE INSERT ON queue
WHEN NEW.abandon_by IS NOT NULL OR NEW.abandon_reason IS NOT NULL OR NEW.abandon_head IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a submitted run carries no abandon request');
END;
