//! The loop: waits for what happens, and acts on it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::model::OnFailure;
use tokio::sync::{mpsc, watch};

use super::*;

impl Dispatcher<'_> {
    /// Carry out the run. `cancel` turning `true` interrupts it (Ctrl-C, SIGTERM).
    pub async fn run(mut self, mut cancel: watch::Receiver<bool>) -> Result<Outcome, ExecError> {
        crate::output::private_dir(&self.opts.run_dir).map_err(|e| ExecError::RunDir {
            path: self.opts.run_dir.display().to_string(),
            error: e.to_string(),
        })?;
        let nested = self.opts.parent_lease.is_some();
        if nested {
            self.start_nested(&cancel).await?;
        } else {
            self.start_top(&cancel).await?;
            // This engine holds the run now: values a dead engine's steps left in their
            // `$RUNBOOK_OUTPUT` files are removed (issue 11, promise 3).
            crate::output::remove_outputs_files(&self.opts.run_dir);
        }
        if self.opts.compensate_only {
            let mut status =
                if self.compensate(&cancel).await? { RunStatus::Failed } else { RunStatus::NeedsOperator };
            if !nested {
                if !self.finally(status, &cancel).await? {
                    status = RunStatus::NeedsOperator;
                }
                self.record(RunEvent::RunFinished { status, preconditions: Vec::new() }).await?;
                self.release().await;
            }
            return Ok(self.outcome(status));
        }

        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let (cancel_tx, attempt_cancel) = watch::channel(false);
        let mut running = 0usize;
        let mut waiting_retry = 0usize;
        let mut stopping = false;
        let mut interrupted = false;
        let mut failed_compensate = false;
        // A resumed run whose failed steps stay failed (an included runbook that undid
        // itself) is a failed run, whatever the rest does.
        let mut any_failed = self.state.iter().any(|s| matches!(s, State::Failed));
        let mut suspended = false;
        let max_parallel = self.runbook.max_parallel.map_or(self.opts.max_parallel, |m| m as usize).max(1);
        let mut lost = self.renewal.as_ref().map(|r| r.lost.clone());
        let mut reaper_gone = self.opts.reaper.as_ref().map(|r| r.gone());
        let mut interrupt_reason = "interrupted by a signal (Ctrl-C or SIGTERM)";
        let mut poll = tokio::time::interval(self.opts.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Decisions already in the journal (made while the run was suspended) are folded.
        let mut decisions_seen = self.journal.last_seq;
        let started = humantime::parse_rfc3339(&self.started_at).unwrap_or_else(|_| SystemTime::now());
        let mut escalating: Vec<String> = Vec::new();

        loop {
            if !stopping {
                // Start what is ready, in declaration order, up to the parallel limit.
                let mut progressed = true;
                while progressed && running < max_parallel {
                    progressed = false;
                    for idx in 0..self.runbook.steps.len() {
                        if running >= max_parallel || self.state[idx] != State::Waiting {
                            continue;
                        }
                        let outcome = match self.readiness(idx) {
                            Readiness::NotYet => continue,
                            Readiness::Blocked(reason) => {
                                self.skip(idx, reason).await?;
                                progressed = true;
                                continue;
                            }
                            Readiness::Ready => {
                                progressed = true;
                                self.begin(idx, &attempt_cancel, &tx, &cancel).await?
                            }
                        };
                        match outcome {
                            Begun::Spawned => running += 1,
                            Begun::Include => running += 1,
                            Begun::Skipped | Begun::Awaiting => {}
                            Begun::Failed => {
                                any_failed = true;
                                self.on_failure(idx, &mut stopping, &mut failed_compensate);
                            }
                        }
                    }
                }
            }
            // Approvals: fold decisions made anywhere, then settle what they decide.
            if !stopping && self.state.contains(&State::Awaiting) {
                decisions_seen = self.fold_decisions(decisions_seen).await?;
                let mut settled = false;
                for idx in 0..self.state.len() {
                    if self.state[idx] != State::Awaiting {
                        continue;
                    }
                    match self.settle_approval(idx).await? {
                        None => {}
                        Some(true) => settled = true,
                        Some(false) => {
                            settled = true;
                            any_failed = true;
                            self.on_failure(idx, &mut stopping, &mut failed_compensate);
                        }
                    }
                }
                if settled {
                    // Steps may have become ready.
                    continue;
                }
            }
            let awaiting = self.state.contains(&State::Awaiting);
            if running == 0 && (waiting_retry == 0 || stopping) {
                if !awaiting || stopping {
                    break;
                }
                if !self.opts.wait_for_approvals {
                    suspended = true;
                    break;
                }
            }
            // Nothing waits in memory while the dispatcher waits.
            self.flush().await?;
            let next_escalation = self.next_escalation(started, &escalating);
            tokio::select! {
                Some(msg) = rx.recv() => match msg {
                    Msg::RetryDue { idx } => {
                        waiting_retry -= 1;
                        if !stopping && self.state[idx] == State::RetryWait {
                            self.attempt(idx, &attempt_cancel, &tx).await?;
                            running += 1;
                        }
                    }
                    Msg::Done { idx, attempt, done, tail } => {
                        running -= 1;
                        match self.finish_attempt(idx, attempt, done, tail, interrupted, &tx).await? {
                            AttemptResult::Succeeded | AttemptResult::Interrupted => {}
                            AttemptResult::Retrying => waiting_retry += 1,
                            AttemptResult::Failed => {
                                any_failed = true;
                                self.on_failure(idx, &mut stopping, &mut failed_compensate);
                            }
                        }
                    }
                    Msg::Inline { idx, answer } => {
                        if self.state[idx] == State::Awaiting {
                            let step = format!("{}{}", self.opts.prefix, self.runbook.steps[idx].id);
                            let operator = self.opts.operator.clone();
                            if let Err(e) = self.decide(&step, &operator, answer.approve, &answer.reason, BTreeMap::new()).await {
                                let _ = self.report.send(Report::Notice(format!("your answer to `{step}` was not recorded: {e}")));
                            }
                            poll.reset_immediately();
                        }
                    }
                    Msg::Escalated { id, delivered, error } => {
                        self.record(RunEvent::EscalationFired { escalation: id, delivered, error }).await?;
                    }
                    Msg::Included { idx, attempt, result } => {
                        running -= 1;
                        if self.finish_include(idx, attempt, *result, interrupted).await? == AttemptResult::Failed {
                            any_failed = true;
                            self.on_failure(idx, &mut stopping, &mut failed_compensate);
                        }
                    }
                },
                _ = poll.tick(), if awaiting => {}
                _ = sleep_until(next_escalation), if next_escalation.is_some() => {
                    if let Some(id) = self.due_escalation(started, &escalating) {
                        escalating.push(id.clone());
                        self.escalate(&id, &tx);
                    }
                }
                changed = cancel.changed(), if !interrupted => {
                    if changed.is_err() || *cancel.borrow() {
                        interrupted = true;
                        stopping = true;
                        let _ = cancel_tx.send(true);
                    }
                }
                () = until_true(&mut lost) => {
                    // Another engine took the lock: the reaper killed every step process
                    // group; end every attempt. Our writes are refused anyway.
                    let _ = cancel_tx.send(true);
                    return Err(self.lost_lease());
                }
                () = until_true(&mut reaper_gone), if !interrupted => {
                    // Steps started from now on would not be tied to the engine: end the
                    // running ones and start nothing more; the run is interrupted (journaled).
                    interrupted = true;
                    stopping = true;
                    interrupt_reason = "the process reaper died: steps would no longer be tied to the engine";
                    let _ = cancel_tx.send(true);
                }
            }
        }
        // What the loop deferred (the success of the last steps) is written before anything
        // else happens: an included runbook ends here without a record of its own.
        self.flush().await?;
        // Escalations already on their way are journaled before the run ends.
        while escalating.len() > self.journal.escalations_fired.len() {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(Msg::Escalated { id, delivered, error })) => {
                    self.record(RunEvent::EscalationFired { escalation: id, delivered, error }).await?;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }

        if interrupted {
            if !nested {
                self.record(RunEvent::RunInterrupted { reason: interrupt_reason.into() }).await?;
                self.release().await;
            }
            return Ok(self.outcome(RunStatus::Interrupted));
        }
        if suspended {
            let waiting = self.waiting();
            if !nested {
                self.record(RunEvent::RunSuspended { waiting: waiting.clone() }).await?;
                // The environment stays taken while people decide: a suspended run is not over.
                self.renewal = None;
                if let Some(lease) = self.lease.take() {
                    let holder = format!(
                        "{SUSPENDED}run {} waits for approval of {} (`runbook resume {}` continues it, `runbook compensate {}` ends it)",
                        self.opts.run_id,
                        waiting.join(", "),
                        self.opts.run_id,
                        self.opts.run_id
                    );
                    self.store.suspend_lock(&lease, &holder).await?;
                }
            }
            return Ok(Outcome { waiting, ..self.outcome(RunStatus::NeedsOperator) });
        }
        // Approvals still open when the run stops after a failure will never be needed.
        for idx in 0..self.state.len() {
            if self.state[idx] == State::Awaiting {
                self.skip(idx, "the run stopped before a decision was needed".into()).await?;
            }
        }
        let mut status = if any_failed { RunStatus::Failed } else { RunStatus::Succeeded };
        if failed_compensate && !self.compensate(&cancel).await? {
            status = RunStatus::NeedsOperator;
        }
        if !self.finally(status, &cancel).await? {
            status = RunStatus::NeedsOperator;
        }
        if !nested {
            self.record(RunEvent::RunFinished { status, preconditions: Vec::new() }).await?;
            self.release().await;
        }
        Ok(self.outcome(status))
    }

    /// What a failed step's `on-failure` means for the run.
    pub(super) fn on_failure(&self, idx: usize, stopping: &mut bool, failed_compensate: &mut bool) {
        match self.runbook.steps[idx].on_failure {
            OnFailure::Continue => {}
            OnFailure::Stop => *stopping = true,
            OnFailure::Compensate => {
                *stopping = true;
                *failed_compensate = true;
            }
        }
    }
}
