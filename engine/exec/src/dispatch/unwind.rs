//! Unwinding: compensations of the steps that succeeded, and `finally`.

use std::time::Duration;

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::model::{Action, RetryPolicy, Runbook, Template};
use runbook_core::retry;
use tokio::sync::{mpsc, watch};

use crate::action::{self, Done, Outputs, Produced, Work};
use crate::output::Sink;
use crate::process::{Exit, Line};

use super::machine::{self, Compensate, Finally};
use super::{Dispatcher, ExecError, LINES_IN_FLIGHT, Report, attempt_end, unit_random};

impl Dispatcher<'_> {
    /// Run one action to its end outside the main loop (compensations, `finally`), streaming
    /// its output, redacted, under `label`.
    pub(super) async fn run_action(
        &self,
        label: &str,
        attempt: u32,
        work: Result<Work, String>,
        timeout: Option<Duration>,
        cancel: &watch::Receiver<bool>,
    ) -> (Done, Option<String>) {
        let work = match work {
            Ok(w) => w,
            Err(e) => return (Done { exit: Exit::SpawnFailed(e), outputs: Produced::Nothing }, None),
        };
        let (tx, rx) = mpsc::channel::<Line>(LINES_IN_FLIGHT);
        let step = format!("{}{label}", self.opts.prefix);
        let log = self.opts.run_dir.join(format!("{}.{attempt}.log", self.stem(&label.replace(' ', "-"))));
        let live = crate::output::log_key(&log)
            .map(|(key, _)| crate::output::Live::new(self.store.clone(), &self.opts.run_id, &key, attempt));
        let sink = Sink::new(log, step, attempt, self.report.clone());
        let sink = match live {
            Some(live) => sink.with_live(live),
            None => sink,
        };
        let forward = tokio::spawn(sink.drain(rx));
        let done =
            action::perform(work, timeout, &self.redactor, tx, cancel.clone(), self.opts.reaper.as_deref())
                .await;
        let tail = forward.await.ok().and_then(|t| t.text());
        (done, tail)
    }

    /// Compensate the steps that succeeded, most recent first. [`Unwound::NeedsOperator`]
    /// when one failed (or is in doubt and not idempotent); [`Unwound::Interrupted`] when a
    /// signal came first (nothing starts after it; the one it cut off is in doubt).
    pub(super) async fn compensate(&mut self, cancel: &watch::Receiver<bool>) -> Result<Unwound, ExecError> {
        let runbook: &Runbook = self.runbook;
        for planned in machine::compensations(runbook, &self.journal) {
            if *cancel.borrow() {
                return Ok(Unwound::Interrupted);
            }
            let (idx, base) = match planned {
                Compensate::Include(idx) => {
                    match self.compensate_include(idx, cancel).await? {
                        Unwound::Complete => {}
                        other => return Ok(other),
                    }
                    continue;
                }
                Compensate::InDoubt(idx) => {
                    let _ = self.report.send(Report::Notice(format!(
                        "the compensation of `{}{}` is in doubt and not idempotent: it does not run again without an operator's decision",
                        self.opts.prefix, runbook.steps[idx].id
                    )));
                    return Ok(Unwound::NeedsOperator);
                }
                Compensate::Run { step, base } => (step, base),
            };
            let step = &runbook.steps[idx];
            let Some(comp) = &step.compensate else { continue };
            let unit = Unit {
                id: step.id.to_string(),
                undo: true,
                action: &comp.action,
                env: &comp.env,
                dir: comp.dir.as_deref(),
                timeout: comp.timeout,
                outputs: &comp.outputs,
                retry: &comp.retry,
                status: None,
            };
            match self.unwind(&unit, base, cancel).await? {
                UnitEnd::Succeeded => {}
                UnitEnd::Failed => return Ok(Unwound::NeedsOperator),
                UnitEnd::Interrupted => return Ok(Unwound::Interrupted),
            }
        }
        Ok(Unwound::Complete)
    }

    /// Run the `finally` steps in declaration order (their needs only order them). Folded
    /// from the journal like any step: one that succeeded or was skipped never runs again;
    /// one that failed gets a new set of attempts; one in doubt runs again only if
    /// idempotent (or by an operator's decision, folded before). [`Unwound::NeedsOperator`]
    /// when one is left in doubt for an operator (a failure does not change the run's
    /// status); [`Unwound::Interrupted`] when a signal came first: no `finally` step starts
    /// after it, the one it cut off is in doubt, and the resume runs those not done.
    pub(super) async fn finally(
        &mut self,
        status: RunStatus,
        cancel: &watch::Receiver<bool>,
    ) -> Result<Unwound, ExecError> {
        let runbook: &Runbook = self.runbook;
        let mut settled = Unwound::Complete;
        for step in &runbook.finally {
            let id = step.id.to_string();
            let base = match machine::finally_plan(step, self.journal.steps.get(&id)) {
                Finally::Done => continue,
                Finally::InDoubt => {
                    let _ = self.report.send(Report::Notice(format!(
                        "`finally` step `{}{id}` is in doubt and not idempotent: it does not run again without an operator's decision",
                        self.opts.prefix
                    )));
                    settled = Unwound::NeedsOperator;
                    continue;
                }
                Finally::Run { base } => base,
            };
            if *cancel.borrow() {
                return Ok(Unwound::Interrupted);
            }
            let unit = Unit {
                id,
                undo: false,
                action: &step.action,
                env: &step.env,
                dir: step.dir.as_deref(),
                timeout: step.timeout,
                outputs: &step.outputs,
                retry: &step.retry,
                status: Some(status),
            };
            match self.unwind(&unit, base, cancel).await? {
                UnitEnd::Succeeded | UnitEnd::Failed => {}
                UnitEnd::Interrupted => return Ok(Unwound::Interrupted),
            }
        }
        Ok(settled)
    }

    /// Run one compensation or `finally` step to its end: attempts after `base`, as its retry
    /// policy allows, each journaled (a `finally` step as a step, with its exit code; a
    /// compensation as a compensation). The wait between attempts ends early when the run
    /// is cancelled, and no attempt follows it (the unit fails with its last reason, and the
    /// run is interrupted). An attempt the signal cut off has no end record: it is in doubt
    /// (a signal is a stop cause, never a failure). No attempt starts once the run is
    /// interrupted.
    async fn unwind(
        &mut self,
        unit: &Unit<'_>,
        base: u32,
        cancel: &watch::Receiver<bool>,
    ) -> Result<UnitEnd, ExecError> {
        let id = unit.id.clone();
        let mut attempt = base;
        loop {
            if *cancel.borrow() {
                return Ok(UnitEnd::Interrupted);
            }
            if self.lease_lost() {
                // No attempt starts without the lease (red team adv28 L1).
                return Err(self.lost_lease());
            }
            attempt += 1;
            let scratch = if unit.undo {
                self.opts.run_dir.join(format!("{}.compensation.{attempt}.outputs", self.stem(&id)))
            } else {
                self.opts.run_dir.join(format!("{}.{attempt}.outputs", self.stem(&id)))
            };
            let work = self.work(
                &id,
                unit.action,
                unit.env,
                unit.dir,
                unit.timeout,
                &scratch,
                unit.outputs,
                unit.status,
            );
            self.record(if unit.undo {
                RunEvent::CompensationStarted { step: id.clone(), attempt }
            } else {
                RunEvent::StepStarted { step: id.clone(), attempt }
            })
            .await?;
            if self.lease_lost() {
                // Lost while the start was made durable: nothing starts (red team adv28 L5).
                return Err(self.lost_lease());
            }
            let label = if unit.undo { format!("{id} (undo)") } else { id.clone() };
            let (result, output) = self.run_action(&label, attempt, work, unit.timeout, cancel).await;
            let _ = std::fs::remove_file(&scratch);
            if self.lease_lost() {
                // Ended by the lease's loss (the renewal says so before it kills the groups):
                // never the unit's failure, no end record: in doubt (red team adv27 S2).
                return Err(self.lost_lease());
            }
            if result.exit == Exit::Cancelled {
                // Ended by the interruption: no end record, in doubt, like a main step's.
                return Ok(UnitEnd::Interrupted);
            }
            if result.exit.success() {
                let outputs = match result.outputs {
                    Produced::Values(o) => o,
                    Produced::Nothing => Outputs::new(),
                    // A compensation's declared outputs (evidence paths...) are journaled with
                    // its success; one it did not write is absent, and the report says it was
                    // not observed.
                    Produced::Missing(missing) => {
                        if unit.undo {
                            let _ = self.report.send(Report::Notice(format!(
                                "the compensation of `{}{id}` succeeded without its outputs: {missing}",
                                self.opts.prefix
                            )));
                        }
                        Outputs::new()
                    }
                };
                self.record(if unit.undo {
                    RunEvent::CompensationSucceeded { step: id.clone(), outputs }
                } else {
                    RunEvent::StepSucceeded { step: id.clone(), attempt, outputs }
                })
                .await?;
                return Ok(UnitEnd::Succeeded);
            }
            let reason = result.exit.describe();
            let exit_code = match result.exit {
                Exit::Code(c) => Some(c),
                _ => None,
            };
            let counted = attempt - base;
            let again =
                retry::should_retry(unit.retry, counted, attempt_end(&result.exit)) && !*cancel.borrow();
            if again && !unit.undo {
                let event = RunEvent::AttemptFailed {
                    step: id.clone(),
                    attempt,
                    exit_code,
                    reason: reason.clone(),
                    output: output.clone(),
                };
                self.record(event).await?;
            }
            let interrupted = if again {
                if !cancelled_during(retry::delay(unit.retry, counted, unit_random()), cancel).await {
                    continue;
                }
                true
            } else {
                *cancel.borrow()
            };
            self.record(if unit.undo {
                RunEvent::CompensationFailed { step: id.clone(), reason, output }
            } else {
                RunEvent::StepFailed { step: id.clone(), attempt, reason, output }
            })
            .await?;
            return Ok(if interrupted { UnitEnd::Interrupted } else { UnitEnd::Failed });
        }
    }
}

/// How a compensation or a `finally` step ended ([`Dispatcher::unwind`]).
enum UnitEnd {
    /// It succeeded (journaled).
    Succeeded,
    /// Its last attempt failed (journaled).
    Failed,
    /// The run was interrupted: before it started, while it ran (no end record: in doubt),
    /// or while it waited for its next attempt.
    Interrupted,
}

/// How unwinding (the compensations, or the `finally` steps) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unwound {
    /// Every unit is done (a `finally` step's failure does not change the run's status).
    Complete,
    /// One failed or is in doubt: an operator decides (the run needs one).
    NeedsOperator,
    /// A signal came first: the run is interrupted (exit 130), resumable from here.
    Interrupted,
}

/// A compensation or a `finally` step, as [`Dispatcher::unwind`] runs it.
struct Unit<'u> {
    /// The step's id.
    id: String,
    /// A compensation (journaled as one); else a `finally` step.
    undo: bool,
    action: &'u Action,
    env: &'u [(String, Template)],
    dir: Option<&'u str>,
    timeout: Option<Duration>,
    outputs: &'u [String],
    retry: &'u RetryPolicy,
    /// The run's status so far (`finally` steps see it as `run.status`).
    status: Option<RunStatus>,
}

/// Wait `delay`; true when the run was cancelled first (or is already).
async fn cancelled_during(delay: Duration, cancel: &watch::Receiver<bool>) -> bool {
    let mut cancel = cancel.clone();
    let cancelled = async move {
        // Nobody left to cancel: never.
        if cancel.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = cancelled => true,
    }
}
