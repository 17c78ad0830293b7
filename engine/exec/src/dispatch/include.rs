//! `runbook` steps: an included runbook run as a nested dispatcher under a prefix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::model::{Action, ParamValue, Runbook};
use runbook_store::Store;
use tokio::sync::{mpsc, watch};

use crate::action::Outputs;
use crate::secrets::Secrets;

use super::unwind::Unwound;
use super::{Dispatcher, ExecError, Msg, Outcome, Report, Resume, RunOptions, Settled, render_json};

/// What an included runbook's task owns.
struct ChildRun {
    runbook: Arc<Runbook>,
    params: BTreeMap<String, ParamValue>,
    secrets: Secrets,
    store: Store,
    opts: RunOptions,
    report: mpsc::UnboundedSender<Report>,
}

/// Run an included runbook as a task of its own, reporting its end over `tx`. A plain
/// function (not an `async` one), so that the task's type does not sit inside the
/// dispatcher's own future.
fn spawn_child(c: ChildRun, cancel: watch::Receiver<bool>, tx: mpsc::UnboundedSender<Msg>, at: (usize, u32)) {
    let task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(async move {
        let dispatcher = Dispatcher::new(&c.runbook, &c.params, &c.secrets, &c.store, c.opts, c.report);
        let result = dispatcher.run(cancel).await;
        let _ = tx.send(Msg::Included { idx: at.0, attempt: at.1, result: Box::new(result) });
    });
    tokio::spawn(task);
}

impl<'a> Dispatcher<'a> {
    /// Start an included runbook as this step: its params rendered and typed, its events
    /// journaled under `STEP/`, with this run's lease. What it already did in this run (after
    /// a resume) is read back from the journal, so its succeeded steps never run again.
    pub(super) async fn start_include(
        &mut self,
        idx: usize,
        cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<bool, ExecError> {
        let runbook: &'a Runbook = self.runbook;
        let step = &runbook.steps[idx];
        let Action::Runbook(inc) = &step.action else { return Ok(false) };
        let id = step.id.to_string();
        let Some(child) = runbook.includes.get(inc.child) else { return Ok(false) };
        let params = self.include_params(&id, inc, child);
        let attempt = self.attempts_of(&id) + 1;
        self.record(RunEvent::StepStarted { step: id.clone(), attempt }).await?;
        let secrets: Option<&'a Secrets> = self.secrets.include(inc.child);
        let (params, secrets) = match (params, secrets) {
            (Ok(p), Some(s)) => (p, s.clone()),
            (Err(problems), _) => {
                self.fail_before_start(idx, problems.join("; ")).await?;
                return Ok(false);
            }
            (_, None) => {
                self.fail_before_start(idx, "the included runbook's secrets were not read".into()).await?;
                return Ok(false);
            }
        };
        let prefix = format!("{}{id}/", self.opts.prefix);
        let opts = self.child_options(child, &prefix, false).await?;
        // Its own task: it writes to the store on its own schedule, never waiting for this
        // loop to poll it (a transaction it holds must not wait on one this loop opens).
        spawn_child(
            ChildRun {
                // Its `for-each` steps as their instances, as `plan` shows them.
                runbook: match runbook_core::foreach::expand(child, &params) {
                    std::borrow::Cow::Borrowed(_) => Arc::clone(child),
                    std::borrow::Cow::Owned(expanded) => Arc::new(expanded),
                },
                params,
                secrets,
                store: self.store.clone(),
                opts,
                report: self.report.clone(),
            },
            cancel.clone(),
            tx.clone(),
            (idx, attempt),
        );
        Ok(true)
    }

    /// The parameters an include passes, rendered against this run's context and typed by
    /// the included runbook's declarations. `id` is the `runbook` step's: an instance of a
    /// `for-each` include renders `{{ item }}` as its element.
    pub(super) fn include_params(
        &self,
        id: &str,
        inc: &runbook_core::model::IncludeSpec,
        child: &Runbook,
    ) -> Result<BTreeMap<String, ParamValue>, Vec<String>> {
        // Never a `for-each` expanded from a run-time value: validation refuses one
        // (RB128), so meeting one here is an engine bug, and the include does not start.
        if let Some((k, read)) = runbook_core::foreach::run_time_binding(child, &inc.params) {
            return Err(vec![format!(
                "internal error: parameter `{k}` of the included runbook decides a `for-each` list and reads `{read}`, known only at run time (RB128 refuses this when checking)"
            )]);
        }
        let ctx = self.context_for(id, None);
        let rendered: BTreeMap<String, serde_json::Value> = inc
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), render_json(v, &ctx)?)))
            .collect::<Result<_, String>>()
            .map_err(|e| vec![e])?;
        runbook_core::params::for_include(child, &rendered)
    }

    /// The options of an included runbook at `prefix`, resuming what the journal already
    /// holds of it.
    pub(super) async fn child_options(
        &self,
        child: &Runbook,
        prefix: &str,
        compensate_only: bool,
    ) -> Result<RunOptions, ExecError> {
        let records = self.store.records(&self.opts.run_id).await?;
        let scoped = runbook_core::journal::fold(&records).scoped(prefix);
        let resume = (!scoped.steps.is_empty()).then(|| Resume {
            state: scoped,
            started_at: self.started_at.clone(),
            decisions: Vec::new(),
            compensation_decisions: Vec::new(),
        });
        let file =
            std::path::absolute(&child.source.path).unwrap_or_else(|_| PathBuf::from(&child.source.path));
        Ok(RunOptions {
            prefix: prefix.to_string(),
            parent_lease: self.lease.clone(),
            parent_lost: self
                .renewal
                .as_ref()
                .map(|r| r.lost.clone())
                .or_else(|| self.opts.parent_lost.clone()),
            resume,
            base_dir: file.parent().map(std::path::Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
            runbook_file: file,
            compensate_only,
            inherited: Some((self.redactor.clone(), self.secret_env())),
            // The schedule is journaled once, by the top run.
            scheduled: None,
            // The top run has said its id.
            announce: None,
            ..self.opts.clone()
        })
    }

    /// Journal how an included runbook ended, as the outcome of its step.
    pub(super) async fn finish_include(
        &mut self,
        idx: usize,
        attempt: u32,
        result: Result<Outcome, ExecError>,
        interrupted: bool,
    ) -> Result<Settled, ExecError> {
        let step = &self.runbook.steps[idx];
        let id = step.id.to_string();
        let reason = match result {
            Ok(o) if !o.waiting.is_empty() => {
                // It waits for approvals and nobody is attached: this run waits with it, and
                // `resume` starts the included runbook again, where it stopped.
                self.child_waiting.insert(idx, o.waiting);
                return Ok(Settled::Awaiting);
            }
            Ok(o) if o.status == RunStatus::Interrupted && interrupted => {
                // In doubt, like a process cut off by the signal: `resume` continues it.
                return Ok(Settled::Interrupted);
            }
            Ok(o) if o.status == RunStatus::Succeeded => {
                let missing: Vec<&str> =
                    step.outputs.iter().filter(|k| !o.outputs.contains_key(*k)).map(String::as_str).collect();
                if missing.is_empty() {
                    let outputs =
                        o.outputs.into_iter().filter(|(k, _)| step.outputs.contains(k)).collect::<Outputs>();
                    self.record(RunEvent::StepSucceeded { step: id, attempt, outputs }).await?;
                    return Ok(Settled::Succeeded);
                }
                format!("the included runbook produced no output {}", missing.join(", "))
            }
            Ok(o) if o.status == RunStatus::NeedsOperator => {
                "the included runbook failed and one of its compensations failed too".to_string()
            }
            Ok(_) => "the included runbook failed".to_string(),
            Err(ExecError::Preconditions(messages)) => messages.join("; "),
            Err(ExecError::LockName(m)) => m,
            Err(e) => return Err(e),
        };
        self.record(RunEvent::StepFailed { step: id, attempt, reason, output: None }).await?;
        Ok(Settled::Failed)
    }

    /// Undo an included runbook that completed: its own compensations, most recent first.
    pub(super) async fn compensate_include(
        &mut self,
        idx: usize,
        cancel: &watch::Receiver<bool>,
    ) -> Result<Unwound, ExecError> {
        let runbook: &'a Runbook = self.runbook;
        let step = &runbook.steps[idx];
        let Action::Runbook(inc) = &step.action else { return Ok(Unwound::Complete) };
        let (Some(child), Some(secrets)) = (runbook.includes.get(inc.child), self.secrets.include(inc.child))
        else {
            return Ok(Unwound::Complete);
        };
        let prefix = format!("{}{}/", self.opts.prefix, step.id);
        let opts = self.child_options(child, &prefix, true).await?;
        // The same values as when it ran: they render from this run's params and the outputs
        // of steps that completed before it, all in the journal.
        let params = match self.include_params(step.id.as_str(), inc, child) {
            Ok(p) => p,
            Err(problems) => {
                let id = step.id.to_string();
                self.record(RunEvent::CompensationFailed {
                    step: id,
                    reason: problems.join("; "),
                    output: None,
                })
                .await?;
                return Ok(Unwound::NeedsOperator);
            }
        };
        let expanded = runbook_core::foreach::expand(child, &params);
        let dispatcher = Dispatcher::new(&expanded, &params, secrets, self.store, opts, self.report.clone());
        let outcome = Box::pin(dispatcher.run(cancel.clone())).await?;
        Ok(match outcome.status {
            RunStatus::Interrupted => Unwound::Interrupted,
            RunStatus::NeedsOperator => Unwound::NeedsOperator,
            RunStatus::Running | RunStatus::Succeeded | RunStatus::Failed | RunStatus::Abandoned => {
                Unwound::Complete
            }
        })
    }
}
