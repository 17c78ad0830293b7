//! Approval steps: requests, decisions made anywhere, and what they settle.

use std::collections::BTreeMap;
use std::sync::Arc;

use runbook_core::journal::RunEvent;
use runbook_core::model::Action;
use runbook_core::template::Mode;
use tokio::sync::mpsc;

use crate::action::Outputs;

use super::{Dispatcher, ExecError, Msg, Report, now};

/// The event for an approval decision.
pub fn decision_event(
    step: &str,
    operator: &str,
    approve: bool,
    reason: &str,
    inputs: BTreeMap<String, serde_json::Value>,
) -> RunEvent {
    if approve {
        RunEvent::ApprovalGranted {
            step: step.into(),
            operator: operator.into(),
            reason: reason.into(),
            inputs,
        }
    } else {
        RunEvent::ApprovalRejected { step: step.into(), operator: operator.into(), reason: reason.into() }
    }
}

/// Whether `operator` may decide `step` at `now_ms`, judged on the run's folded journal
/// ([`runbook_core::lifecycle::judge_decision`], the rule `approve` and the store apply).
pub fn check_decision(
    state: &runbook_core::journal::RunState,
    step: &str,
    operator: &str,
    now_ms: i64,
) -> Result<(), String> {
    runbook_core::lifecycle::judge_decision(state, step, operator, now_ms).map_err(|e| e.to_string())
}

impl Dispatcher<'_> {
    /// Journal an approval request (once: a resumed run keeps waiting on the same one), and
    /// offer the operator an inline answer when the rules let them decide.
    pub(super) async fn request_approval(
        &mut self,
        idx: usize,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<(), ExecError> {
        let step = &self.runbook.steps[idx];
        let Action::Approval(spec) = &step.action else { return Ok(()) };
        let id = step.id.to_string();
        let prompt = self
            .render_for(step.id.as_str(), &spec.prompt, Mode::Plain, None)
            .unwrap_or_else(|_| spec.prompt.text.clone());
        // What each required input takes, as the `approve` command writes it: journaled, so
        // that `show` prints the very command this notice prints.
        let takes: std::collections::BTreeMap<String, String> = spec
            .inputs
            .iter()
            .filter(|p| p.default.is_none())
            .map(|p| {
                let takes = match p.allowed.as_ref().filter(|v| !v.is_empty()) {
                    Some(values) => values.iter().map(ToString::to_string).collect::<Vec<_>>().join("|"),
                    None => p.ty.as_str().to_string(),
                };
                (p.name.clone(), takes)
            })
            .collect();
        let pending = self.journal.steps.get(&id).and_then(|s| s.approval.as_ref());
        if pending.is_none() {
            let (_, now_ms) = now();
            self.record(RunEvent::ApprovalRequested {
                step: id.clone(),
                prompt: prompt.clone(),
                approvers: spec.approvers.clone(),
                min_approvals: spec.min_approvals,
                allow_self_approval: spec.allow_self_approval,
                // Self-approval is judged against who started the run, not who resumed it.
                requested_by: self.journal.started_by.clone().unwrap_or_else(|| self.opts.operator.clone()),
                inputs: spec.inputs.iter().map(|p| (p.name.clone(), p.ty.as_str().to_string())).collect(),
                deadline_ms: spec.timeout.map(|t| runbook_core::model::deadline_ms(now_ms, t)),
                takes: Some(takes.clone()),
            })
            .await?;
        }
        let decided = self
            .journal
            .steps
            .get(&id)
            .and_then(|s| s.approval.as_ref())
            .is_some_and(|a| a.is_granted() || a.rejected_by.is_some());
        if decided {
            // Decided while the run was suspended: the loop settles it at once.
            return Ok(());
        }
        let may_answer = self
            .journal
            .steps
            .get(&id)
            .and_then(|s| s.approval.as_ref())
            .is_some_and(|a| a.may_decide(&self.opts.operator).is_ok());
        // Inline answers carry no inputs: an approval with inputs is given with `runbook approve`.
        if let (Some(ask), true, true) = (&self.opts.approve_inline, may_answer, spec.inputs.is_empty()) {
            let ask = Arc::clone(ask);
            let tx = tx.clone();
            // Withdrawn when the approval settles otherwise (decided elsewhere, timed out)
            // or the run stops: the read ends, and never keeps the process alive.
            if let Ok((withdrawn, handle)) = super::Withdrawn::pair() {
                self.questions.insert(idx, handle);
                tokio::task::spawn_blocking(move || {
                    let reply = ask(&prompt, &withdrawn);
                    let _ = tx.send(Msg::Inline { idx, reply });
                });
            }
        } else {
            let path = format!("{}{id}", self.opts.prefix);
            // Complete as printed: the inputs the approval requires and the store; the same
            // words `show` prints, from the journal.
            let inputs: Vec<(String, String)> = takes.into_iter().collect();
            let state = self.opts.state_arg.as_deref();
            let _ = self.report.send(Report::Notice(format!(
                "step `{path}` waits for approval: `{}` (or `{}`)",
                runbook_core::hint::approve_command(&self.opts.run_id, &path, &inputs, state),
                runbook_core::hint::reject_command(&self.opts.run_id, &path, state)
            )));
        }
        Ok(())
    }

    /// Fold approval decisions journaled since `seen` (by `runbook approve` in any terminal,
    /// or inline). Returns the new high-water mark.
    pub(super) async fn fold_decisions(&mut self, seen: u64) -> Result<u64, ExecError> {
        // Only what was written since the last look: a run may wait for hours.
        let records = self.store.records_after(&self.opts.run_id, seen).await?;
        let mut high = seen;
        for r in &records {
            high = high.max(r.seq);
            if !matches!(r.event, RunEvent::ApprovalGranted { .. } | RunEvent::ApprovalRejected { .. }) {
                continue;
            }
            // Decisions name steps by their journal path; this runbook's own are under its prefix.
            let Some(own) = r.event.clone().without_step_prefix(&self.opts.prefix) else { continue };
            self.journal.apply(&own);
            let _ = self.report.send(Report::Recorded(Box::new(r.clone())));
        }
        Ok(high)
    }

    /// Settle an approval from the folded decisions: `Some(true)` granted, `Some(false)`
    /// rejected or timed out (the step failed), `None` still waiting.
    pub(super) async fn settle_approval(&mut self, idx: usize) -> Result<Option<bool>, ExecError> {
        let step = &self.runbook.steps[idx];
        let Action::Approval(spec) = &step.action else { return Ok(None) };
        let id = step.id.to_string();
        let Some(approval) = self.journal.steps.get(&id).and_then(|s| s.approval.clone()) else {
            return Ok(None);
        };
        // The journaled request must carry the runbook's rules (a request journaled by
        // someone else before the engine reached the step is not this step's): else no
        // decision settles it.
        let inputs: BTreeMap<String, String> =
            spec.inputs.iter().map(|p| (p.name.clone(), p.ty.as_str().to_string())).collect();
        if approval.approvers != spec.approvers
            || approval.min_approvals != spec.min_approvals
            || approval.allow_self_approval != spec.allow_self_approval
            || approval.inputs != inputs
        {
            return Ok(None);
        }
        let attempt = self.attempts_of(&id).max(1);
        if let Some(by) = &approval.rejected_by {
            let reason = self.journal.steps.get(&id).and_then(|s| s.reason.clone());
            let reason = reason.unwrap_or_else(|| format!("rejected by {by}"));
            self.record(RunEvent::StepFailed { step: id, attempt, reason, output: None }).await?;
            return Ok(Some(false));
        }
        if approval.is_granted() {
            let given = self.journal.approval_inputs.get(&id).cloned().unwrap_or_default();
            let mut outputs = Outputs::new();
            for input in &spec.inputs {
                let value = given
                    .get(&input.name)
                    .cloned()
                    .or_else(|| input.default.as_ref().and_then(|d| serde_json::to_value(d).ok()))
                    .unwrap_or(serde_json::Value::Null);
                outputs.insert(input.name.clone(), value);
            }
            self.record(RunEvent::StepSucceeded { step: id, attempt, outputs }).await?;
            return Ok(Some(true));
        }
        let (_, now_ms) = now();
        if approval.deadline_ms.is_some_and(|d| now_ms >= d) {
            let reason = format!(
                "no decision within the approval timeout ({} of {} approvals)",
                approval.granted_by.len(),
                approval.min_approvals
            );
            self.record(RunEvent::StepFailed { step: id, attempt, reason, output: None }).await?;
            return Ok(Some(false));
        }
        Ok(None)
    }

    /// Record a decision through the store's checked append, as `runbook approve` does.
    pub(super) async fn decide(
        &mut self,
        step: &str,
        operator: &str,
        approve: bool,
        reason: &str,
        inputs: BTreeMap<String, serde_json::Value>,
    ) -> Result<(), ExecError> {
        let event = decision_event(step, operator, approve, reason, inputs);
        let event = self.redactor.redact_event(event);
        let (ts, _) = now();
        self.store
            .append_checked(&self.opts.run_id, &ts, &event, |state| {
                check_decision(state, step, operator, now().1)
            })
            .await?;
        Ok(())
    }
}
