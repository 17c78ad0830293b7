//! Starting a run: the lock, the run's first records, its preconditions; or resuming it.

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::model::Action;
use runbook_core::template::Mode;
use runbook_store::StoreError;
use tokio::sync::watch;

use super::attempt::Check;
use super::machine::StopCause;
use super::record::Quiet;
use super::{
    Dispatcher, ExecError, Report, Resume, Scope, holder_is_dead, holder_name, lock_name, now, renewal_times,
    with_output,
};

impl Dispatcher<'_> {
    /// A run of its own: take the lock, create the run (or resume it), check the runbook's
    /// preconditions. [`Gate::Interrupted`]: a signal cut the check off (journaled).
    pub(super) async fn start_top(&mut self, cancel: &watch::Receiver<bool>) -> Result<Gate, ExecError> {
        let (now_ts, _) = now();
        // The lock first: a second run on the same environment must not even check. Every
        // run holds one (a private `run:ID` lock without `lock`), so `resume` can tell a
        // live run from a dead one.
        let runbook_lock = match &self.runbook.lock {
            Some(t) => Some(self.render(t, Mode::Plain, None).map_err(ExecError::LockName)?),
            None => None,
        };
        let lock = lock_name(runbook_lock.clone(), &self.opts.run_id)?;
        let resume = self.opts.resume.take();
        match &resume {
            None => self.started_at = now_ts.clone(),
            Some(r) => self.started_at = r.started_at.clone(),
        }
        let holder = holder_name(&self.opts.operator);
        // One engine per run, decided by the store in the acquiring transaction: a live
        // holder refuses this engine even if it carries out the same run, and the journal
        // must still end where this engine read it (a resume) or not exist (a new run).
        let head = match &resume {
            Some(r) => runbook_store::Head::At(r.state.last_seq),
            None => runbook_store::Head::New,
        };
        // Leases are judged by the store's clock (one clock for every engine), not this host's.
        let now_ms = self.store.clock_ms().await?;
        let mut acquire = runbook_store::Acquire {
            name: &lock,
            run_id: &self.opts.run_id,
            holder: &holder,
            now: &now_ts,
            now_ms,
            ttl: self.opts.lease_ttl,
            steal_from: None,
            head,
        };
        let mut stolen = false;
        // The watchdog is armed before the lease exists (see `renewal_times`).
        if let Some(r) = &self.opts.reaper {
            let _ = r.watch(renewal_times(self.opts.lease_ttl).1);
        }
        let lease = match self.store.acquire(&acquire).await {
            Err(StoreError::LockHeld(h)) if holder_is_dead(&h.holder) => {
                stolen = true;
                // A process on this host that no longer exists cannot be running the step;
                // the store still refuses another run's lock while that run is unfinished
                // (`StoreError::LockKept`): said only once the lock is taken.
                acquire.steal_from = Some(&h.holder);
                let lease = self.store.acquire(&acquire).await?;
                let _ = self.report.send(Report::Notice(format!(
                    "taking over lock `{lock}` from run {} ({}): that process is gone",
                    h.run_id, h.holder
                )));
                lease
            }
            other => other?,
        };
        if let Some(prev) = &lease.took_over
            && prev.run_id != self.opts.run_id
            && !stolen
        {
            let _ = self.report.send(Report::Notice(format!(
                "took over the expired lock `{lock}` of run {} ({})",
                prev.run_id, prev.holder
            )));
        }
        self.lease = Some(lease);
        self.start_renewal();
        // Only now, with the lock held, does a new run exist, and only with its first
        // record (`Store::start_run`, one transaction): a refused run, or an engine that dies
        // while starting, leaves no trace.
        if resume.is_none() {
            self.creating = Some(now_ts.clone());
        }

        match resume {
            None => {
                let files: Vec<runbook_core::plan::FileHash> = self
                    .runbook
                    .sources()
                    .iter()
                    .map(|s| runbook_core::plan::FileHash {
                        path: s.path.clone(),
                        sha256: runbook_core::plan::sha256_hex(s.file_text()),
                    })
                    .chain(self.opts.reads.iter().cloned())
                    .collect();
                let params =
                    self.params.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()));
                self.record(RunEvent::RunStarted {
                    runbook: self.runbook.name.clone(),
                    file: self.opts.runbook_file.display().to_string(),
                    files,
                    params: params.collect(),
                    operator: self.opts.operator.clone(),
                    engine_version: runbook_core::ENGINE_VERSION.to_string(),
                    submitted_by: self.opts.submitted_by.clone(),
                    log_digests: true,
                    report: self.runbook.report.clone(),
                })
                .await?;
                if let Some((schedule, due)) = self.opts.scheduled.clone() {
                    self.record(RunEvent::ScheduleFired { schedule, due }).await?;
                }
                return self.gate(cancel).await;
            }
            Some(r) => {
                // The journal says a run passed its preconditions by the record of a step
                // (no step starts before they all pass). A run without one (the engine died
                // while checking them, or they failed) checks them again before any step
                // (ARCHITECTURE.md, "a gate counts once journaled").
                let unchecked = r.state.steps.is_empty() && !self.opts.compensate_only;
                self.restore(r).await?;
                if unchecked {
                    return self.gate(cancel).await;
                }
            }
        }
        Ok(Gate::Passed)
    }

    /// Check the runbook's preconditions: any failure and no step runs; the run ends failed,
    /// with what failed and what it printed journaled. A signal that cuts the checks off is
    /// no failure: the run is interrupted (journaled), and its resume checks them again.
    pub(super) async fn gate(&mut self, cancel: &watch::Receiver<bool>) -> Result<Gate, ExecError> {
        let checked = self.quiet().await?.preconditions(cancel).await;
        let failures = match checked {
            Gate::Interrupted => {
                self.record(RunEvent::RunInterrupted { reason: StopCause::Interrupted.reason().into() })
                    .await?;
                // Interrupted, not finished: the run keeps its lock.
                self.park().await;
                return Ok(Gate::Interrupted);
            }
            Gate::Passed => return Ok(Gate::Passed),
            // Checks the lease's loss ended are no failures of the system they read (red
            // team adv28 L4): the run stops as for a lost lease, and its resume checks again.
            Gate::Failed(_) if self.lease_lost() => return Err(self.lost_lease()),
            Gate::Failed(failures) => failures,
        };
        let preconditions = self.journal_failed(&failures, None).await?;
        self.record(RunEvent::RunFinished {
            status: RunStatus::Failed,
            preconditions: preconditions.clone(),
        })
        .await?;
        self.release().await;
        Err(ExecError::Preconditions(preconditions))
    }

    /// Journal each failed precondition (`precondition_failed`, redacted like every event)
    /// and return them as the terminal shows them: message, then the end of the output.
    pub(super) async fn journal_failed(
        &mut self,
        failures: &[Failed],
        step: Option<String>,
    ) -> Result<Vec<String>, ExecError> {
        for f in failures {
            self.record(RunEvent::PreconditionFailed {
                step: step.clone(),
                precondition: f.id.clone(),
                message: f.message.clone(),
                output: f.output.clone(),
            })
            .await?;
        }
        Ok(failures.iter().map(Failed::shown).collect())
    }

    /// An included runbook: it writes into the including run's journal with that run's lease.
    pub(super) async fn start_nested(&mut self, cancel: &watch::Receiver<bool>) -> Result<Gate, ExecError> {
        self.lease = self.opts.parent_lease.clone();
        match self.opts.resume.take() {
            Some(r) => {
                self.started_at = r.started_at.clone();
                self.restore(r).await?;
            }
            None => {
                self.started_at = now().0;
                let checked = self.quiet().await?.preconditions(cancel).await;
                match checked {
                    Gate::Passed => {}
                    Gate::Interrupted => return Ok(Gate::Interrupted),
                    Gate::Failed(failures) => {
                        // Journaled under the `runbook` step that includes this runbook.
                        let step = self.opts.prefix.trim_end_matches('/').to_string();
                        let failures = self.journal_failed(&failures, Some(step)).await?;
                        return Err(ExecError::Preconditions(failures));
                    }
                }
            }
        }
        Ok(Gate::Passed)
    }

    /// Seed the run's state from its journal, and journal the operator's decisions.
    /// Succeeded steps keep their outputs and never run again; idempotent steps in doubt
    /// run again; the others were decided by the operator (checked by the caller).
    pub(super) async fn restore(&mut self, r: Resume) -> Result<(), ExecError> {
        use super::machine::ResumeRule;
        use runbook_core::journal::{Decision, StepStatus};
        // Resuming a run that failed (and was not compensated) gives its failed steps a new
        // set of attempts, and the steps they held back (skipped) another chance; steps an
        // operator skipped stay skipped, and `when` is evaluated again.
        let retry_failed = !self.opts.compensate_only;
        // A `runbook` step whose included runbook undid itself (its compensations ran, or
        // started) stays failed: going on would run the rest of a runbook whose completed
        // steps were undone. Its step's `on-failure` already decided what this run did next.
        let mut undone = vec![false; self.runbook.steps.len()];
        let failed_includes: Vec<usize> = (0..self.runbook.steps.len())
            .filter(|&idx| {
                let step = &self.runbook.steps[idx];
                matches!(step.action, Action::Runbook(_))
                    && r.state.steps.get(step.id.as_str()).is_some_and(|s| s.status == StepStatus::Failed)
            })
            .collect();
        if retry_failed && !failed_includes.is_empty() {
            let whole = runbook_core::journal::fold(&self.store.records(&self.opts.run_id).await?);
            for idx in failed_includes {
                let step = &self.runbook.steps[idx];
                let Action::Runbook(inc) = &step.action else { continue };
                let Some(child) = self.runbook.includes.get(inc.child) else { continue };
                let scoped = whole.scoped(&format!("{}{}/", self.opts.prefix, step.id));
                undone[idx] = child.undid_itself(&scoped);
            }
        }
        for (idx, step) in self.runbook.steps.iter().enumerate() {
            let Some(s) = r.state.steps.get(step.id.as_str()) else { continue };
            // Where the step stands is the journal's; the machine keeps only which steps
            // this resume gives another chance (an approval still waiting is asked again,
            // not twice journaled, by `begin`).
            let rule = ResumeRule {
                retry_failed,
                undone: undone[idx],
                idempotent: step.idempotent,
                approval: matches!(step.action, Action::Approval(_)),
                decided: r.decisions.iter().any(|(d, _, _)| d == step.id.as_str()),
            };
            self.machine.resume_step(idx, s, rule);
        }
        self.journal = r.state.clone();
        if self.machine.scope() == Scope::Nested {
            // An included runbook: the including run journaled the resumption and the
            // decisions (under this runbook's prefix), and they are already in `state`.
            return Ok(());
        }
        // Compensating runs no main step again; its `finally` steps follow the usual rules.
        let runs_again =
            |id: &str| !self.opts.compensate_only || self.runbook.finally.iter().any(|f| f.id.as_str() == id);
        let rerun_idempotent: Vec<String> = self
            .journal
            .in_doubt()
            .into_iter()
            .filter(|id| runs_again(id) && !r.decisions.iter().any(|(d, _, _)| d == id))
            .map(str::to_string)
            .collect();
        self.record(RunEvent::RunResumed { operator: self.opts.operator.clone(), rerun_idempotent }).await?;
        for (step, decision, reason) in r.decisions {
            // A decision about a step of an included runbook (`include/step`) is journaled
            // here; the included runbook reads it back when it resumes.
            if self.runbook.find_step(&step).is_none() {
                continue;
            }
            self.record(RunEvent::OperatorDecision {
                step: step.clone(),
                decision,
                operator: self.opts.operator.clone(),
                reason: reason.clone(),
            })
            .await?;
            // Skipped, or it took effect (the operator said so): completed, so `compensate`
            // undoes it. The journal now says so.
            match (decision, self.index(&step)) {
                (Decision::Skip | Decision::Undo, Some(idx)) => self.machine.decided(idx),
                (Decision::Rerun, _) | (_, None) => {}
            }
        }
        for (step, decision, reason) in r.compensation_decisions {
            if self.runbook.find_step(&step).is_none() {
                continue;
            }
            self.record(RunEvent::CompensationDecision {
                step,
                decision,
                operator: self.opts.operator.clone(),
                reason,
            })
            .await?;
        }
        Ok(())
    }
}

impl Quiet<'_, '_> {
    /// Check the runbook's preconditions, every one (unless a signal cuts them off).
    async fn preconditions(&self, cancel: &watch::Receiver<bool>) -> Gate {
        let mut failures = Vec::new();
        for p in &self.runbook.preconditions {
            match self.check(p, None, cancel).await {
                Check::Passed => {}
                Check::Interrupted => return Gate::Interrupted,
                Check::Failed { message, output } => {
                    failures.push(Failed { id: p.id.clone(), message, output })
                }
            }
        }
        if failures.is_empty() { Gate::Passed } else { Gate::Failed(failures) }
    }
}

/// How the runbook's preconditions (its gate) ended.
pub(super) enum Gate {
    /// Every one passed (or none was due): the steps may start.
    Passed,
    /// A signal cut the checks off: no failure, the run is interrupted.
    Interrupted,
    /// These failed (with the end of what they printed).
    Failed(Vec<Failed>),
}

/// A precondition that failed: its id, what failed, the end of what it printed (redacted).
pub(super) struct Failed {
    id: String,
    message: String,
    output: Option<String>,
}

impl Failed {
    /// As the terminal shows it: the message, then the end of the output.
    pub(super) fn shown(&self) -> String {
        with_output(self.message.clone(), self.output.as_deref())
    }
}
