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
        let sink = Sink::new(log, step, attempt, self.report.clone());
        let forward = tokio::spawn(sink.drain(rx));
        let done =
            action::perform(work, timeout, &self.redactor, tx, cancel.clone(), self.opts.reaper.as_deref())
                .await;
        let tail = forward.await.ok().and_then(|t| t.text());
        (done, tail)
    }

    /// Compensate the steps that succeeded, most recent first. False when one failed (or
    /// is in doubt and not idempotent).
    pub(super) async fn compensate(&mut self, cancel: &watch::Receiver<bool>) -> Result<bool, ExecError> {
        let runbook: &Runbook = self.runbook;
        for planned in machine::compensations(runbook, &self.journal) {
            let (idx, base) = match planned {
                Compensate::Include(idx) => {
                    if !self.compensate_include(idx, cancel).await? {
                        return Ok(false);
                    }
                    continue;
                }
                Compensate::InDoubt(idx) => {
                    let _ = self.report.send(Report::Notice(format!(
                        "the compensation of `{}{}` is in doubt and not idempotent: it does not run again without an operator's decision",
                        self.opts.prefix, runbook.steps[idx].id
                    )));
                    return Ok(false);
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
            if !self.unwind(&unit, base, cancel).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Run the `finally` steps in declaration order (their needs only order them). Folded
    /// from the journal like any step: one that succeeded or was skipped never runs again;
    /// one that failed gets a new set of attempts; one in doubt runs again only if
    /// idempotent (or by an operator's decision, folded before). False when one is left in
    /// doubt for an operator.
    pub(super) async fn finally(
        &mut self,
        status: RunStatus,
        cancel: &watch::Receiver<bool>,
    ) -> Result<bool, ExecError> {
        let runbook: &Runbook = self.runbook;
        let mut settled = true;
        for step in &runbook.finally {
            let id = step.id.to_string();
            let base = match machine::finally_plan(step, self.journal.steps.get(&id)) {
                Finally::Done => continue,
                Finally::InDoubt => {
                    let _ = self.report.send(Report::Notice(format!(
                        "`finally` step `{}{id}` is in doubt and not idempotent: it does not run again without an operator's decision",
                        self.opts.prefix
                    )));
                    settled = false;
                    continue;
                }
                Finally::Run { base } => base,
            };
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
            self.unwind(&unit, base, cancel).await?;
        }
        Ok(settled)
    }

    /// Run one compensation or `finally` step to its end: attempts after `base`, as its retry
    /// policy allows, each journaled (a `finally` step as a step, with its exit code; a
    /// compensation as a compensation). The wait between attempts ends early when the run
    /// is cancelled, and no attempt follows it. True when it succeeded.
    async fn unwind(
        &mut self,
        unit: &Unit<'_>,
        base: u32,
        cancel: &watch::Receiver<bool>,
    ) -> Result<bool, ExecError> {
        let id = unit.id.clone();
        let mut attempt = base;
        loop {
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
            let label = if unit.undo { format!("{id} (undo)") } else { id.clone() };
            let (result, output) = self.run_action(&label, attempt, work, unit.timeout, cancel).await;
            let _ = std::fs::remove_file(&scratch);
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
                return Ok(true);
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
            if again && !cancelled_during(retry::delay(unit.retry, counted, unit_random()), cancel).await {
                continue;
            }
            self.record(if unit.undo {
                RunEvent::CompensationFailed { step: id.clone(), reason, output }
            } else {
                RunEvent::StepFailed { step: id.clone(), attempt, reason, output }
            })
            .await?;
            return Ok(false);
        }
    }
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
