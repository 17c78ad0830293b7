//! `runbook approve` and `runbook reject`: record a decision on a waiting approval step.
//!
//! The decision is judged and appended in one store transaction (`append_checked`), against
//! the rules the run journaled with its request: the approvers, self-approval, one vote per
//! person, nothing after a rejection. Two conflicting decisions at once cannot both pass.

use std::collections::BTreeMap;

use runbook_core::journal::RunEvent;
use runbook_core::model::{Action, ApprovalSpec, Param};
use runbook_exec::dispatch;
use runbook_store::{Store, StoreError};

use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::outln;

pub fn decide(
    run_id: &str,
    step: &str,
    approve: bool,
    inputs: &[(String, String)],
    reason: &str,
    state: Option<String>,
) -> CliResult {
    let location = crate::state::location(state.as_deref());
    crate::runtime::block_on(async {
        let store = crate::state::open(&location, false).await?;
        record(&store, &location, run_id, step, approve, inputs, reason).await
    })
}

async fn record(
    store: &Store,
    location: &runbook_store::Location,
    run_id: &str,
    step: &str,
    approve: bool,
    inputs: &[(String, String)],
    reason: &str,
) -> CliResult {
    let operator = crate::identity::operator();
    let records = match store.records(run_id).await {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return Err(StoreError::NoSuchRun(run_id.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    let folded = runbook_core::journal::fold(&records);
    // Judge early for a clear message; the store judges again inside its transaction.
    if let Err(why) = runbook_core::lifecycle::judge_decision(&folded, step, &operator, dispatch::now().1) {
        return Err(CliError::Invalid(Message::new(format!("{why}; nothing was recorded"))));
    }
    // The inputs' rules (type, enum, pattern, required) are the runbook's, as it ran.
    let Some((runbook, spec)) = approval_spec(&records, step) else {
        return Err(CliError::Invalid(
            Message::new(format!(
                "the runbook of run {run_id} cannot be read as it was when the run started; nothing was recorded"
            ))
            .help("restore the runbook files (same SHA-256): `runbook resume` needs them too"),
        ));
    };
    // Inputs another approver already gave count.
    let given_before: Vec<String> =
        folded.approval_inputs.get(step).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let values = typed_inputs(inputs, approve, &spec.inputs, &given_before).map_err(|problems| {
        CliError::Invalid(
            Message::all(problems).help("give each input as `--input NAME=VALUE`; nothing was recorded"),
        )
    })?;
    // The run's secrets, read from their sources as the run reads them: an input or a
    // reason may hold one (pasted by mistake), and the journal must not.
    let base_dir = std::path::Path::new(&runbook.source.path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let secrets = match runbook_exec::secrets::resolve(
        &runbook,
        &base_dir,
        &crate::state::engine_env(location),
    ) {
        Ok(s) => s,
        // Nothing typed, nothing to redact: an approver without the sources may still
        // approve or reject without words.
        Err(_) if inputs.is_empty() && reason.is_empty() => runbook_exec::secrets::Secrets::default(),
        Err(runbook_exec::secrets::Unresolved::Interrupted(secret)) => {
            return Err(CliError::Interrupted { secret });
        }
        Err(runbook_exec::secrets::Unresolved::Problems(problems)) => {
            return Err(CliError::Invalid(Message::all(problems).help(
                "`approve` reads the run's secrets as the run does, to keep them out of what you type (inputs, reason); give it the same sources, or decide without inputs and reason; nothing was recorded",
            )));
        }
    };
    let redactor = runbook_exec::secrets::Redactor::new(&secrets);
    let event = redactor.redact_event(dispatch::decision_event(step, &operator, approve, reason, values));
    let (ts, _) = dispatch::now();
    match store
        .append_checked(run_id, &ts, &event, |state| {
            runbook_core::lifecycle::judge_decision(state, step, &operator, dispatch::now().1)
                .map_err(|why| why.to_string())
        })
        .await
    {
        Ok(_) => {}
        Err(StoreError::Refused(why)) => {
            return Err(CliError::Invalid(Message::new(format!("{why}; nothing was recorded"))));
        }
        Err(e) => return Err(e.into()),
    }
    let after = match store.records(run_id).await {
        Ok(r) => runbook_core::journal::fold(&r),
        Err(_) => folded,
    };
    let approval = after.steps.get(step).and_then(|s| s.approval.clone()).unwrap_or_default();
    if approve {
        outln!(
            "approved `{step}` of run {run_id} as {operator} ({} of {} approval(s))",
            approval.granted_by.len(),
            approval.min_approvals
        );
    } else {
        outln!("rejected `{step}` of run {run_id} as {operator}: the step fails");
    }
    if !approve || approval.is_granted() {
        // "Running" in the journal only says no end was recorded: an engine is attached only
        // if it holds the run's lease and, on this host, its process is alive.
        let running = matches!(after.status, Some(runbook_core::journal::RunStatus::Running));
        let engine = match store.lock_of_run(run_id).await {
            Ok(Some(h)) if running => Some(h),
            _ => None,
        };
        match engine {
            Some(h)
                if h.lease_until > dispatch::now().1
                    && !h
                        .parsed_holder()
                        .is_detached(&dispatch::hostname(), runbook_exec::process::identity_is_gone) =>
            {
                outln!("the run is attached to {} and continues by itself", h.holder);
            }
            Some(h) if running => {
                outln!(
                    "the engine attached to the run is gone: {}; continue the run with `runbook resume {run_id}`",
                    h.holder
                );
            }
            _ => outln!("continue the run with `runbook resume {run_id}`"),
        }
    }
    Ok(Exit::Success)
}

/// The runbook the run started with (refused if its files changed since) and the approval
/// step's declaration in it.
fn approval_spec(
    records: &[runbook_core::journal::Record],
    step: &str,
) -> Option<(std::sync::Arc<runbook_core::model::Runbook>, ApprovalSpec)> {
    let RunEvent::RunStarted { file, files, .. } = &records.first()?.event else { return None };
    // The one "as started" check: every file the run started with, the files it reads too.
    let (runbook, _) = crate::as_started::load_as_started(file, files).ok()?;
    let spec = match &runbook.find_step(step)?.action {
        Action::Approval(spec) => (**spec).clone(),
        _ => return None,
    };
    Some((runbook, spec))
}

/// `--input NAME=VALUE` values, typed and checked as the approval declares them; an
/// approval must give every input that has no default.
fn typed_inputs(
    given: &[(String, String)],
    approve: bool,
    declared: &[Param],
    given_before: &[String],
) -> Result<BTreeMap<String, serde_json::Value>, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, text) in given {
        let Some(param) = declared.iter().find(|p| &p.name == name) else {
            let known = if declared.is_empty() {
                "it has none".to_string()
            } else {
                format!(
                    "it has {}",
                    declared.iter().map(|p| format!("`{}`", p.name)).collect::<Vec<_>>().join(", ")
                )
            };
            problems.push(format!("the approval has no input `{name}` ({known})"));
            continue;
        };
        match runbook_core::params::from_text(param.ty, text)
            .and_then(|v| runbook_core::params::check(param, &v).map(|()| v))
        {
            Ok(v) => {
                values.insert(name.clone(), serde_json::to_value(v).unwrap_or_default());
            }
            Err(e) => problems.push(format!("input `{name}`: {e}")),
        }
    }
    if approve {
        for p in declared.iter().filter(|p| {
            p.default.is_none() && !values.contains_key(&p.name) && !given_before.contains(&p.name)
        }) {
            problems.push(format!(
                "input `{}` is required{}",
                p.name,
                p.description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
            ));
        }
    }
    if problems.is_empty() { Ok(values) } else { Err(problems) }
}
