//! The loop: it only waits. Each wake-up (an attempt's end, a retry timer, a signal, a dead
//! reaper, a lost lease) becomes a [`machine::Event`]; [`Machine::handle`] decides; the loop
//! carries out the [`Command`]s it answers with (journal, spawn, skip, start an include).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use runbook_core::journal::{RunEvent, RunStatus, StepStatus};
use tokio::sync::{mpsc, watch};

use super::machine::{Begun, Command, Conclusion, Event, Next, Phase, StopCause};
use super::start::Gate;
use super::unwind::Unwound;
use super::{
    Dispatcher, ExecError, InlineReply, Msg, Outcome, Report, Scope, Settled, Unanswered, sleep_until,
    unit_random, until_true,
};

/// What the loop hands to the commands it carries out.
pub(super) struct Wires<'w> {
    /// Where attempts and timers report back.
    pub(super) tx: &'w mpsc::UnboundedSender<Msg>,
    /// Ends every running attempt.
    pub(super) attempt_cancel: &'w watch::Receiver<bool>,
    /// Sent `true` to end them.
    pub(super) cancel_tx: &'w watch::Sender<bool>,
    /// The run's own cancellation (for preconditions and confirmations).
    pub(super) cancel: &'w watch::Receiver<bool>,
}

impl Dispatcher<'_> {
    /// Carry out the run. `cancel` turning `true` interrupts it (Ctrl-C, SIGTERM).
    pub async fn run(mut self, mut cancel: watch::Receiver<bool>) -> Result<Outcome, ExecError> {
        // The machine indexes needs by step id: one naming no step would never be waited for
        // (adv17b F1). Refused before anything is journaled.
        if let Some((step, need)) = runbook_core::foreach::dangling_need(self.runbook) {
            return Err(ExecError::UnknownNeed { step: step.to_string(), need: need.to_string() });
        }
        crate::output::private_dir(&self.opts.run_dir).map_err(|e| ExecError::RunDir {
            path: self.opts.run_dir.display().to_string(),
            error: e.to_string(),
        })?;
        let top = self.machine.scope() == Scope::TopLevel;
        let gate = if top {
            let gate = self.start_top(&cancel).await?;
            // This engine holds the run now: values a dead engine's steps left in their
            // `$RUNBOOK_OUTPUT` files are removed (issue 11, promise 3).
            crate::output::remove_outputs_files(&self.opts.run_dir);
            gate
        } else {
            self.start_nested(&cancel).await?
        };
        match gate {
            Gate::Passed => {}
            // A signal cut the runbook's preconditions off (journaled by the gate): no
            // failure, and the resume checks them again.
            Gate::Interrupted => return Ok(self.outcome(RunStatus::Interrupted)),
            Gate::Failed(failures) => {
                return Err(ExecError::Preconditions(
                    failures.iter().map(super::start::Failed::shown).collect(),
                ));
            }
        }
        if self.opts.compensate_only {
            self.machine.compensate_only();
            // Approvals still open will never be needed: the run ends here, as `Finish`
            // settles them (adv13a finding 7).
            let open: Vec<usize> = (0..self.runbook.steps.len())
                .filter(|&idx| {
                    self.journal
                        .steps
                        .get(self.runbook.steps[idx].id.as_str())
                        .is_some_and(|s| s.status == StepStatus::AwaitingApproval)
                })
                .collect();
            for idx in open {
                self.skip(idx, "the run was compensated before a decision was needed".into()).await?;
            }
            let status = match self.compensate(&cancel).await? {
                Unwound::Complete => RunStatus::Failed,
                Unwound::NeedsOperator => RunStatus::NeedsOperator,
                Unwound::Interrupted => return self.interrupted(StopCause::Interrupted).await,
            };
            self.machine.compensated();
            if !top {
                // An included runbook undone by `runbook compensate`: the including run
                // runs its `finally` steps.
                return Ok(self.outcome(status));
            }
            if status == RunStatus::NeedsOperator {
                // The `finally` steps come after the compensations: they run once these
                // are settled (the `compensate` that settles them runs them).
                return self.end(status).await;
            }
            return self.finish(status, &cancel).await;
        }

        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let (cancel_tx, attempt_cancel) = watch::channel(false);
        let mut lost = self.renewal.as_ref().map(|r| r.lost.clone());
        let mut reaper_gone = self.opts.reaper.as_ref().map(|r| r.gone());
        let mut poll = tokio::time::interval(self.opts.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Decisions already in the journal (made while the run was suspended) are folded.
        let mut decisions_seen = self.journal.last_seq;
        let started = humantime::parse_rfc3339(&self.started_at).unwrap_or_else(|_| SystemTime::now());
        let mut escalating: Vec<String> = Vec::new();

        loop {
            let wires =
                Wires { tx: &tx, attempt_cancel: &attempt_cancel, cancel_tx: &cancel_tx, cancel: &cancel };
            // The machine learns of a signal before it decides anything more (a signal that
            // came while a precondition ran, or while nothing ran).
            self.signalled(&wires).await?;
            // Nothing starts without the lease (red team adv28 L5: a step was spawned after
            // the renewal had said it was lost).
            if self.lease_lost() {
                return Err(self.lost_lease());
            }
            // Start what is ready, in declaration order, up to the parallel limit.
            self.handle(Event::Schedule, &wires).await?;
            // Approvals: fold decisions made anywhere, then settle what they decide. Reading
            // the store is a wait too: what the turn deferred is written first.
            if self.machine.phase() == Phase::Running && self.machine.awaiting().next().is_some() {
                self.flush().await?;
                decisions_seen = self.fold_decisions(decisions_seen).await?;
                let mut settled = false;
                for idx in self.machine.awaiting().collect::<Vec<_>>() {
                    if let Some(granted) = self.settle_approval(idx).await? {
                        settled = true;
                        let settled = if granted { Settled::Succeeded } else { Settled::Failed };
                        self.handle(Event::Settled { step: idx, settled }, &wires).await?;
                    }
                }
                if settled {
                    // Steps may have become ready.
                    continue;
                }
            }
            // Never conclude without knowing of a signal: it is a stop cause, never a
            // failure, and decides how the run ends.
            self.signalled(&wires).await?;
            match self.machine.next_move() {
                Next::Conclude | Next::Suspend => break,
                Next::Wait => {}
            }
            let awaiting = self.machine.awaiting().next().is_some();
            let interrupted = self.machine.interrupted();
            let reaper_alive = self.machine.stop_cause() < Some(StopCause::ReaperGone);
            // Nothing waits in memory while the dispatcher waits.
            self.flush().await?;
            let next_escalation = self.next_escalation(started, &escalating);
            let event = tokio::select! {
                Some(msg) = rx.recv() => match msg {
                    Msg::RetryDue { idx } => Some(Event::RetryDue { step: idx }),
                    // The lease was lost (the renewal says so before it kills the steps): an
                    // attempt that ended now was ended by that kill, not by itself; it stays
                    // in doubt for `resume` (red team adv27 S2).
                    Msg::Done { .. } | Msg::Included { .. } if self.lease_lost() => {
                        Some(Event::Stop(StopCause::LeaseLost))
                    }
                    Msg::Done { idx, attempt, done, tail } => Some(Event::AttemptEnded {
                        step: idx,
                        attempt,
                        exit: done.exit,
                        outputs: done.outputs,
                        tail,
                        jitter: unit_random(),
                    }),
                    Msg::Inline { idx, reply } => {
                        self.questions.remove(&idx);
                        match reply {
                            InlineReply::Decided(answer) if self.machine.is_awaiting(idx) => {
                                let step = format!("{}{}", self.opts.prefix, self.runbook.steps[idx].id);
                                let operator = self.opts.operator.clone();
                                if let Err(e) = self.decide(&step, &operator, answer.approve, &answer.reason, BTreeMap::new()).await {
                                    let _ = self.report.send(Report::Notice(format!("your answer to `{step}` was not recorded: {e}")));
                                }
                                poll.reset_immediately();
                                None
                            }
                            InlineReply::Decided(_)
                            | InlineReply::Elsewhere
                            | InlineReply::Unanswered(Unanswered::Withdrawn) => None,
                            // No answer is not a rejection: the run is interrupted, the
                            // approval still waits, and `resume` asks again.
                            InlineReply::Unanswered(Unanswered::TerminalClosed) => {
                                self.interrupt_reason
                                    .get_or_insert_with(|| "the terminal closed at a prompt: no answer".to_string());
                                Some(Event::Stop(StopCause::Interrupted))
                            }
                        }
                    }
                    Msg::Answered { idx, question, answer } => {
                        let begun = self.answered(idx, question, answer, &attempt_cancel, &tx, &cancel).await?;
                        Some(Event::Begun { step: idx, begun })
                    }
                    Msg::Escalated { id, delivered, error } => {
                        self.record(RunEvent::EscalationFired { escalation: id, delivered, error }).await?;
                        None
                    }
                    Msg::Included { idx, attempt, result } => {
                        let settled = self.finish_include(idx, attempt, *result, interrupted).await?;
                        Some(Event::Settled { step: idx, settled })
                    }
                },
                _ = poll.tick(), if awaiting => None,
                _ = sleep_until(next_escalation), if next_escalation.is_some() => {
                    if let Some(id) = self.due_escalation(started, &escalating) {
                        escalating.push(id.clone());
                        self.escalate(&id, &tx);
                    }
                    None
                }
                changed = cancel.changed(), if !interrupted => {
                    (changed.is_err() || *cancel.borrow()).then_some(Event::Stop(StopCause::Interrupted))
                }
                () = until_true(&mut lost) => Some(Event::Stop(StopCause::LeaseLost)),
                () = until_true(&mut reaper_gone), if reaper_alive => Some(Event::Stop(StopCause::ReaperGone)),
            };
            if let Some(event) = event {
                let wires = Wires {
                    tx: &tx,
                    attempt_cancel: &attempt_cancel,
                    cancel_tx: &cancel_tx,
                    cancel: &cancel,
                };
                self.handle(event, &wires).await?;
            }
            if self.machine.stop_cause() == Some(StopCause::LeaseLost) {
                // Another engine took the lock: the reaper killed every step process group;
                // every attempt was ended. Our writes are refused anyway.
                return Err(self.lost_lease());
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

        match self.machine.conclude(&self.journal) {
            Conclusion::Interrupted(cause) => self.interrupted(cause).await,
            Conclusion::Suspended => self.suspend().await,
            Conclusion::Finish { compensate, failed } => {
                // Approvals still open when the run stops after a failure will never be needed.
                for idx in self.machine.awaiting().collect::<Vec<_>>() {
                    self.skip(idx, "the run stopped before a decision was needed".into()).await?;
                }
                let status = if failed { RunStatus::Failed } else { RunStatus::Succeeded };
                if compensate {
                    match self.compensate(&cancel).await? {
                        Unwound::Complete => {}
                        Unwound::Interrupted => return self.interrupted(StopCause::Interrupted).await,
                        Unwound::NeedsOperator => {
                            // The `finally` steps come after the compensations: they run
                            // once these are settled (by `runbook compensate`).
                            self.machine.compensated();
                            return self.end(RunStatus::NeedsOperator).await;
                        }
                    }
                }
                self.machine.compensated();
                self.finish(status, &cancel).await
            }
        }
    }

    /// Tell the machine of a signal it has not seen yet.
    async fn signalled(&mut self, wires: &Wires<'_>) -> Result<(), ExecError> {
        if *wires.cancel.borrow() && !self.machine.interrupted() {
            self.handle(Event::Stop(StopCause::Interrupted), wires).await?;
        }
        Ok(())
    }

    /// End interrupted by `cause`: journaled (a run of its own, which keeps its lock: see
    /// [`Dispatcher::park`]), exit 130; `resume` (or `compensate`) goes on from here.
    async fn interrupted(mut self, cause: StopCause) -> Result<Outcome, ExecError> {
        if self.machine.scope() == Scope::TopLevel {
            let reason = self.interrupt_reason.clone().unwrap_or_else(|| cause.reason().into());
            self.record(RunEvent::RunInterrupted { reason }).await?;
            self.park().await;
        }
        Ok(self.outcome(RunStatus::Interrupted))
    }

    /// Hand `event` to the machine and carry out what it decides, feeding back what the
    /// commands report (a skip journaled, a step begun) until nothing is left to do.
    async fn handle(&mut self, event: Event, wires: &Wires<'_>) -> Result<(), ExecError> {
        let mut queue: VecDeque<Command> = self.machine.handle(&self.journal, event).into();
        while let Some(command) = queue.pop_front() {
            if let Some(next) = self.carry_out(command, wires).await? {
                queue.extend(self.machine.handle(&self.journal, next));
            }
        }
        self.withdraw_questions();
        Ok(())
    }

    /// Withdraw the questions nobody needs answered any more: every one once the run stops
    /// (a signal, a failed step, a closed terminal), an approval's once it is settled. Each
    /// comes back as an unanswered event; its step stays pending.
    fn withdraw_questions(&mut self) {
        if self.machine.phase() != Phase::Running {
            self.questions.clear();
            return;
        }
        let steps: Vec<usize> = self.questions.keys().copied().collect();
        for idx in steps {
            let approval = matches!(self.runbook.steps[idx].action, runbook_core::model::Action::Approval(_));
            if approval && !self.machine.is_awaiting(idx) {
                self.questions.remove(&idx);
            }
        }
    }

    /// Carry out one command; the event it reports back, if any.
    async fn carry_out(&mut self, command: Command, w: &Wires<'_>) -> Result<Option<Event>, ExecError> {
        Ok(match command {
            Command::Skip { step, reason } => {
                self.skip(step, reason).await?;
                Some(Event::Skipped { step })
            }
            Command::Begin { step } => {
                let begun = self.begin(step, w.attempt_cancel, w.tx, w.cancel).await?;
                Some(Event::Begun { step, begun })
            }
            // A retry's attempt: nothing starts once the run is interrupted (a signal the
            // machine has not seen yet, raced with the retry's timer).
            Command::Attempt { step } if *w.cancel.borrow() => {
                Some(Event::Begun { step, begun: Begun::Interrupted })
            }
            Command::Attempt { step } => {
                self.attempt(step, w.attempt_cancel, w.tx).await?;
                None
            }
            Command::Succeed { step, attempt, outputs } => {
                // Written with the next record of this turn (the start of the step it frees:
                // one transaction instead of two), and before anything that waits: a check
                // takes the dispatcher only through [`Dispatcher::quiet`], which writes it,
                // and the loop writes it before it waits. Nothing acts on it unwritten.
                let step = self.runbook.steps[step].id.to_string();
                self.defer(RunEvent::StepSucceeded { step, attempt, outputs });
                None
            }
            Command::Retry { step: idx, attempt, exit_code, reason, output, delay } => {
                let step = self.runbook.steps[idx].id.to_string();
                self.record(RunEvent::AttemptFailed {
                    step: step.clone(),
                    attempt,
                    exit_code,
                    reason,
                    output,
                })
                .await?;
                // The terminal names a step by its journal path, as every record does
                // (`host_b/health`, not `health`: ARCHITECTURE.md, "a step's name on the
                // terminal").
                let step = format!("{}{step}", self.opts.prefix);
                let _ = self.report.send(Report::RetryScheduled { step, delay });
                let tx = w.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Msg::RetryDue { idx });
                });
                None
            }
            Command::Fail { step, attempt, reason, output } => {
                let step = self.runbook.steps[step].id.to_string();
                self.record(RunEvent::StepFailed { step, attempt, reason, output }).await?;
                None
            }
            Command::CancelAttempts => {
                let _ = w.cancel_tx.send(true);
                None
            }
        })
    }

    /// Stop to wait for approvals: journal it, and keep the lock under a holder that says so
    /// (a suspended run is not over).
    async fn suspend(mut self) -> Result<Outcome, ExecError> {
        let waiting = self.waiting();
        if self.machine.scope() == Scope::TopLevel {
            self.record(RunEvent::RunSuspended { waiting: waiting.clone() }).await?;
            // The environment stays taken while people decide: a suspended run is not over.
            self.renewal = None;
            if let Some(lease) = self.lease.take() {
                // The holder says so ([`runbook_core::lifecycle::Holder::Suspended`]).
                self.store.suspend_run_lock(&lease, &waiting).await?;
            }
        }
        Ok(Outcome { waiting, ..self.outcome(RunStatus::NeedsOperator) })
    }

    /// Run the `finally` steps, then (a run of its own) journal the end and let the lock go.
    async fn finish(
        mut self,
        status: RunStatus,
        cancel: &watch::Receiver<bool>,
    ) -> Result<Outcome, ExecError> {
        match self.finally(status, cancel).await? {
            Unwound::Complete => self.end(status).await,
            Unwound::NeedsOperator => self.end(RunStatus::NeedsOperator).await,
            // Never turned into a success: the resume runs the `finally` steps not done.
            Unwound::Interrupted => self.interrupted(StopCause::Interrupted).await,
        }
    }

    /// (A run of its own) journal the end and let the lock go; a run that needs an operator
    /// has not finished and keeps it ([`runbook_core::lifecycle::run_keeps_its_lock`]).
    async fn end(mut self, status: RunStatus) -> Result<Outcome, ExecError> {
        if self.machine.scope() == Scope::TopLevel {
            self.record(RunEvent::RunFinished { status, preconditions: Vec::new() }).await?;
            if runbook_core::lifecycle::run_keeps_its_lock(status.as_str()) {
                self.park().await;
            } else {
                self.release().await;
            }
        }
        Ok(self.outcome(status))
    }
}
