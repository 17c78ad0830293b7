//! Unwinding: compensations of the steps that succeeded, and `finally`.

use std::time::Duration;

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::model::Action;
use runbook_core::retry::{self};
use tokio::sync::{mpsc, watch};

use crate::action::{self, Done, Outputs, Produced, Work};
use crate::output::Sink;
use crate::process::{Exit, Line};

use super::*;

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

    /// Compensate the steps that succeeded, most recent first. False when one failed.
    pub(super) async fn compensate(&mut self, cancel: &watch::Receiver<bool>) -> Result<bool, ExecError> {
        let order: Vec<usize> = self
            .journal
            .completed
            .iter()
            .rev()
            .filter(|id| self.journal.steps.get(*id).is_none_or(|s| !s.compensation.is_done()))
            .filter_map(|id| self.index(id))
            .collect();
        for idx in order {
            let step = &self.runbook.steps[idx];
            if let (Action::Runbook(_), None) = (&step.action, &step.compensate) {
                if !self.compensate_include(idx, cancel).await? {
                    return Ok(false);
                }
                continue;
            }
            let Some(comp) = &step.compensate else { continue };
            let id = step.id.to_string();
            // Folded from the journal like a step: a compensation that started and has no
            // end record is in doubt, and runs again only if idempotent (an operator's
            // decision folds it out of doubt first).
            let past = self.journal.steps.get(&id);
            let base = past.map_or(0, |s| s.compensation_attempts);
            if past.is_some_and(|s| s.compensation == runbook_core::journal::CompensationStatus::Started)
                && !comp.idempotent
            {
                let _ = self.report.send(Report::Notice(format!(
                    "the compensation of `{}{id}` is in doubt and not idempotent: it does not run again without an operator's decision",
                    self.opts.prefix
                )));
                return Ok(false);
            }
            let mut attempt = base;
            loop {
                attempt += 1;
                self.record(RunEvent::CompensationStarted { step: id.clone(), attempt }).await?;
                let scratch =
                    self.opts.run_dir.join(format!("{}.compensation.{attempt}.outputs", self.stem(&id)));
                let work = self.work(
                    &id,
                    &comp.action,
                    &comp.env,
                    comp.dir.as_deref(),
                    comp.timeout,
                    &scratch,
                    &comp.outputs,
                    None,
                );
                let (result, output) =
                    self.run_action(&format!("{id} (undo)"), attempt, work, comp.timeout, cancel).await;
                let _ = std::fs::remove_file(&scratch);
                if result.exit.success() {
                    // Its declared outputs (evidence paths...) are journaled with its success;
                    // one it did not write is absent, and the report says it was not observed.
                    let outputs = match result.outputs {
                        Produced::Values(o) => o,
                        Produced::Nothing => Outputs::new(),
                        Produced::Missing(missing) => {
                            let _ = self.report.send(Report::Notice(format!(
                                "the compensation of `{}{id}` succeeded without its outputs: {missing}",
                                self.opts.prefix
                            )));
                            Outputs::new()
                        }
                    };
                    self.record(RunEvent::CompensationSucceeded { step: id.clone(), outputs }).await?;
                    break;
                }
                let end = attempt_end(&result.exit);
                if !retry::should_retry(&comp.retry, attempt - base, end) {
                    self.record(RunEvent::CompensationFailed {
                        step: id.clone(),
                        reason: result.exit.describe(),
                        output,
                    })
                    .await?;
                    return Ok(false);
                }
                tokio::time::sleep(retry::delay(&comp.retry, attempt - base, unit_random())).await;
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
        use runbook_core::journal::StepStatus;
        let mut settled = true;
        for step in &self.runbook.finally {
            let id = step.id.to_string();
            let past = self.journal.steps.get(&id);
            let base = past.map_or(0, |s| s.attempts);
            match past.map(|s| &s.status) {
                Some(StepStatus::Succeeded | StepStatus::Skipped) => continue,
                Some(StepStatus::Started) if !step.idempotent => {
                    let _ = self.report.send(Report::Notice(format!(
                        "`finally` step `{}{id}` is in doubt and not idempotent: it does not run again without an operator's decision",
                        self.opts.prefix
                    )));
                    settled = false;
                    continue;
                }
                Some(
                    StepStatus::Started
                    | StepStatus::Pending
                    | StepStatus::Retrying
                    | StepStatus::Failed
                    | StepStatus::AwaitingApproval,
                )
                | None => {}
            }
            let mut attempt = base;
            loop {
                attempt += 1;
                let scratch = self.opts.run_dir.join(format!("{}.{attempt}.outputs", self.stem(&id)));
                let work = self.work(
                    &id,
                    &step.action,
                    &step.env,
                    step.dir.as_deref(),
                    step.timeout,
                    &scratch,
                    &step.outputs,
                    Some(status),
                );
                self.record(RunEvent::StepStarted { step: id.clone(), attempt }).await?;
                let (result, output) = self.run_action(&id, attempt, work, step.timeout, cancel).await;
                if result.exit.success() {
                    let outputs = match result.outputs {
                        Produced::Values(o) => o,
                        Produced::Missing(_) | Produced::Nothing => Outputs::new(),
                    };
                    self.record(RunEvent::StepSucceeded { step: id.clone(), attempt, outputs }).await?;
                    break;
                }
                let end = attempt_end(&result.exit);
                if !retry::should_retry(&step.retry, attempt - base, end) {
                    self.record(RunEvent::StepFailed {
                        step: id.clone(),
                        attempt,
                        reason: result.exit.describe(),
                        output,
                    })
                    .await?;
                    break;
                }
                self.record(RunEvent::AttemptFailed {
                    step: id.clone(),
                    attempt,
                    exit_code: None,
                    reason: result.exit.describe(),
                    output,
                })
                .await?;
                tokio::time::sleep(retry::delay(&step.retry, attempt - base, unit_random())).await;
            }
        }
        Ok(settled)
    }
}
