//! `runbook approve` and `runbook reject`: record a decision on a waiting approval step.
//!
//! The decision is judged and appended in one store transaction (`append_checked`), against
//! the rules the run journaled with its request: the approvers, self-approval, one vote per
//! person, nothing after a rejection. Two conflicting decisions at once cannot both pass.

use std::collections::BTreeMap;
use std::path::PathBuf;

use runbook_core::model::ParamType;
use runbook_exec::dispatch;
use runbook_store::{Store, StoreError};

use crate::exit;
use crate::output::outln;

pub fn decide(
    run_id: &str,
    step: &str,
    approve: bool,
    inputs: &[(String, String)],
    reason: &str,
    state: Option<PathBuf>,
) -> u8 {
    let path = crate::run::state_location(state);
    if !path.exists() {
        eprintln!("error: no state store at `{}`", path.display());
        eprintln!("  help: use the run's store: `--state PATH` or $RUNBOOK_STATE");
        return exit::CANNOT_START;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::CANNOT_START;
        }
    };
    runtime.block_on(async {
        let store = match Store::open(&path).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot open the state store `{}`: {e}", path.display());
                return exit::CANNOT_START;
            }
        };
        record(&store, run_id, step, approve, inputs, reason).await
    })
}

async fn record(
    store: &Store,
    run_id: &str,
    step: &str,
    approve: bool,
    inputs: &[(String, String)],
    reason: &str,
) -> u8 {
    let operator = crate::run::operator();
    let records = match store.records(run_id).await {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            eprintln!("error: no run `{run_id}` in the state store");
            return exit::INVALID;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CANNOT_START;
        }
    };
    let folded = runbook_core::journal::fold(&records);
    // Judge early for a clear message; the store judges again inside its transaction.
    if let Err(why) = dispatch::check_decision(&folded, step, &operator) {
        eprintln!("error: {why}; nothing was recorded");
        return exit::INVALID;
    }
    let declared = folded.steps.get(step).and_then(|s| s.approval.as_ref()).map(|a| a.inputs.clone());
    let values = match typed_inputs(inputs, &declared.unwrap_or_default()) {
        Ok(v) => v,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            eprintln!("  help: give each input as `--input NAME=VALUE`; nothing was recorded");
            return exit::INVALID;
        }
    };
    let event = dispatch::decision_event(step, &operator, approve, reason, values);
    let (ts, _) = dispatch::now();
    match store
        .append_checked(run_id, &ts, &event, |state| dispatch::check_decision(state, step, &operator))
        .await
    {
        Ok(_) => {}
        Err(StoreError::Refused(why)) => {
            eprintln!("error: {why}; nothing was recorded");
            return exit::INVALID;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CANNOT_START;
        }
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
        let attached = matches!(after.status, Some(runbook_core::journal::RunStatus::Running));
        if attached {
            outln!("the run is attached and continues by itself");
        } else {
            outln!("continue the run with `runbook resume {run_id}`");
        }
    }
    exit::SUCCESS
}

/// `--input NAME=VALUE` values typed as the approval declared them.
fn typed_inputs(
    given: &[(String, String)],
    declared: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, serde_json::Value>, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, text) in given {
        let Some(ty) = declared.get(name) else {
            let known = if declared.is_empty() {
                "it has none".to_string()
            } else {
                format!("it has {}", declared.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
            };
            problems.push(format!("the approval has no input `{name}` ({known})"));
            continue;
        };
        let ty = match ty.as_str() {
            "integer" => ParamType::Integer,
            "number" => ParamType::Number,
            "boolean" => ParamType::Boolean,
            _ => ParamType::String,
        };
        match runbook_core::params::from_text(ty, text) {
            Ok(v) => {
                values.insert(name.clone(), serde_json::to_value(v).unwrap_or_default());
            }
            Err(e) => problems.push(format!("input `{name}`: {e}")),
        }
    }
    if problems.is_empty() { Ok(values) } else { Err(problems) }
}
