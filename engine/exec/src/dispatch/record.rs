//! Writing the journal: every event is redacted, folded, then written.

use runbook_core::journal::RunEvent;

use super::{Dispatcher, ExecError, Report, now};

/// The dispatcher with nothing deferred: the only way to await anything that is not the
/// write of a record (a precondition's check). [`Dispatcher::quiet`] writes what was
/// deferred and hands this out; while it lives the dispatcher is borrowed, so nothing can be
/// deferred meanwhile. A deferred record (a step's success) thus waits only for the record
/// that follows in the same turn (the start of the step it frees), never for a check, a
/// question, a retry's delay, an approval or the loop's own wait (ARCHITECTURE.md, "a
/// deferred record waits for nothing").
pub(super) struct Quiet<'q, 'a>(&'q Dispatcher<'a>);

impl<'a> std::ops::Deref for Quiet<'_, 'a> {
    type Target = Dispatcher<'a>;

    fn deref(&self) -> &Dispatcher<'a> {
        self.0
    }
}

impl<'a> Dispatcher<'a> {
    pub(super) fn last_hash(&self) -> String {
        self.journal.last_hash.clone().unwrap_or_else(|| runbook_core::journal::GENESIS.to_string())
    }

    pub(super) async fn record(&mut self, event: RunEvent) -> Result<(), ExecError> {
        self.defer(event);
        self.flush().await
    }

    /// Fold an event now and write it with the next record (or [`Dispatcher::flush`]).
    /// Every string of every event passes the redactor here, once, whatever produced it
    /// (a failure reason quoting a rendered template, an output, a message).
    pub(super) fn defer(&mut self, event: RunEvent) {
        let event = self.redactor.redact_event(event);
        self.journal.apply(&event);
        self.deferred.push(event.with_step_prefix(&self.opts.prefix));
    }

    /// Write what was deferred, then lend the dispatcher out to wait ([`Quiet`]).
    pub(super) async fn quiet(&mut self) -> Result<Quiet<'_, 'a>, ExecError> {
        self.flush().await?;
        Ok(Quiet(self))
    }

    /// Write the deferred events, in one transaction.
    pub(super) async fn flush(&mut self) -> Result<(), ExecError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let (ts, _) = now();
        let events = std::mem::take(&mut self.deferred);
        let records = match self.creating.take() {
            Some(started_at) => {
                let lock_name = self.lease.as_ref().map(|l| l.name.clone());
                let run = runbook_store::NewRun {
                    run_id: &self.opts.run_id,
                    runbook: &self.runbook.name,
                    operator: &self.opts.operator,
                    started_at: &started_at,
                    lock_name: lock_name.as_deref(),
                };
                let started = self.store.start_run(&run, &events, self.lease.as_ref()).await;
                if started.is_err() {
                    self.release().await;
                }
                started?
            }
            None => self.store.append_all(&self.opts.run_id, &ts, &events, self.lease.as_ref()).await?,
        };
        for record in records {
            self.journal.last_seq = record.seq;
            self.journal.last_hash = Some(record.hash.clone());
            let _ = self.report.send(Report::Recorded(Box::new(record)));
        }
        if let Some(announce) = self.opts.announce.take() {
            announce().await;
        }
        Ok(())
    }
}
