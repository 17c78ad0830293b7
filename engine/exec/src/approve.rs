//! Deciding an approval step: the one implementation behind `runbook approve`/`reject` (the
//! CLI prints what it returns) and the console's approval form (`runbook serve --auth`).
//!
//! The decision is judged early for a clear message and again inside the store's
//! transaction (`append_checked`), against the rules the run journaled with its request:
//! the approvers, self-approval, one vote per person, nothing after a rejection. The inputs
//! are typed and checked as the runbook (as the run started it) declares them; what was
//! typed is redacted with the run's secrets, read from their sources as the run reads them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use runbook_core::journal::{Record, RunEvent, RunState};
use runbook_core::model::{Action, ApprovalSpec, Param, Runbook};
use runbook_core::plan::FileHash;
use runbook_store::{Store, StoreError};

use crate::dispatch;
use crate::secrets::{EngineEnv, Redactor, Secrets, Unresolved};

/// One decision asked for.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The approval step.
    pub step: &'a str,
    /// Who decides (the CLI's operator, the console's signed-in identity).
    pub operator: &'a str,
    /// Approve, or reject.
    pub approve: bool,
    /// `NAME=VALUE` inputs as typed.
    pub inputs: &'a [(String, String)],
    /// Why (may be empty).
    pub reason: &'a str,
}

/// Why nothing was recorded.
#[derive(Debug)]
pub enum Refusal {
    /// The store failed (no such run included).
    Store(StoreError),
    /// The rules of the request refuse this operator or this step (the words of
    /// `lifecycle::judge_decision`).
    Rules(String),
    /// The runbook of the run cannot be read as it was when the run started.
    NoRunbook,
    /// The inputs do not fit the approval's declaration, one line each.
    Inputs(Vec<String>),
    /// The run's secrets cannot be read to redact what was typed, one line each.
    Secrets(Vec<String>),
    /// Ctrl-C or SIGTERM came while a secret's helper ran.
    Interrupted(String),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

/// What a recorded decision left.
#[derive(Debug)]
pub struct Decided {
    /// Distinct approvals now.
    pub granted: usize,
    /// Approvals needed.
    pub min_approvals: u32,
    /// Whether the step is settled (approved by enough people, or rejected).
    pub settled: bool,
    /// Who goes on with the run, when it is settled.
    pub next: Next,
}

/// Who goes on with the run once its approval is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Not settled yet: more approvals are needed.
    Waiting,
    /// An engine holds the run's lease and is alive: it continues by itself.
    Attached(String),
    /// The engine that held the run is gone (named): `runbook resume RUN`.
    EngineGone(String),
    /// No engine holds it: `runbook resume RUN`.
    Resume,
}

/// The runbook as the run started it, given by the caller (the CLI's loader pins files).
pub type AsStarted<'a> = &'a (dyn Fn(&str, &[FileHash]) -> Option<Arc<Runbook>> + Sync);

/// The runbook a run goes on with, from its journal: as the run started it (`as_started`:
/// its files unchanged), its `for-each` steps as their instances with the journaled values
/// ([`runbook_core::lifecycle::runbook_of_run`], what `runbook resume` judges against).
/// `None` when it cannot be had.
pub fn runbook_of_run(records: &[Record], as_started: AsStarted<'_>) -> Option<Arc<Runbook>> {
    let RunEvent::RunStarted { file, files, params, .. } = &records.first()?.event else { return None };
    let runbook = as_started(file, files)?;
    runbook_core::lifecycle::runbook_of_run(runbook, params).ok().map(|(runbook, _)| runbook)
}

/// Judge, check, redact and record one decision.
pub async fn decide(
    store: &Store,
    d: Decision<'_>,
    as_started: AsStarted<'_>,
    engine: &EngineEnv,
) -> Result<Decided, Refusal> {
    let records = match store.records(d.run_id).await {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return Err(StoreError::NoSuchRun(d.run_id.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    let folded = runbook_core::journal::fold(&records);
    // Judge early for a clear message; the store judges again inside its transaction.
    runbook_core::lifecycle::judge_decision(&folded, d.step, d.operator, dispatch::now().1)
        .map_err(|why| Refusal::Rules(why.to_string()))?;
    // The inputs' rules (type, enum, pattern, required) are the runbook's, as it ran.
    let (runbook, spec) = approval_spec(&records, d.step, as_started).ok_or(Refusal::NoRunbook)?;
    // Inputs another approver already gave count.
    let given_before: Vec<String> =
        folded.approval_inputs.get(d.step).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let values = typed_inputs(d.inputs, d.approve, &spec.inputs, &given_before).map_err(Refusal::Inputs)?;
    // The first approval fixed the inputs (given, or their defaults): a later one approves
    // them as given (red team adv19a-7; the fold counts nothing else).
    if d.approve {
        let first =
            folded.steps.get(d.step).and_then(|s| s.approval.as_ref()).and_then(|a| a.granted_by.first());
        if let Some(first) = first {
            let given = folded.approval_inputs.get(d.step);
            let changed: Vec<String> = values
                .iter()
                .filter(|(name, value)| given.and_then(|g| g.get(*name)) != Some(*value))
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            if !changed.is_empty() {
                return Err(Refusal::Inputs(vec![format!(
                    "the first approval (by {}) fixed the inputs, and this one gives {} otherwise; a later approval approves the values as given: approve without them (or with the same values), or reject the step if they are wrong",
                    runbook_core::shown::one_line(first),
                    changed.join(", ")
                )]));
            }
        }
    }
    // The run's secrets, read from their sources as the run reads them: an input or a
    // reason may hold one (pasted by mistake), and the journal must not.
    let base_dir = Path::new(&runbook.source.path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let secrets = match crate::secrets::resolve(&runbook, &base_dir, engine) {
        Ok(s) => s,
        // Nothing typed, nothing to redact: an approver without the sources may still
        // approve or reject without words.
        Err(_) if d.inputs.is_empty() && d.reason.is_empty() => Secrets::default(),
        Err(Unresolved::Interrupted(secret)) => return Err(Refusal::Interrupted(secret)),
        Err(Unresolved::Problems(problems)) => return Err(Refusal::Secrets(problems)),
    };
    // An input that holds a secret is refused, as a parameter is: journaled redacted, the
    // placeholder would be the value that runs, not the value approved (adv19a-1).
    let named: Vec<(String, &str)> =
        d.inputs.iter().map(|(name, text)| (format!("input `{name}`"), text.as_str())).collect();
    let holding =
        crate::secrets::texts_holding_secrets(&secrets, named.iter().map(|(w, t)| (w.as_str(), *t)));
    if !holding.is_empty() {
        return Err(Refusal::Inputs(holding));
    }
    let redactor = Redactor::new(&secrets);
    let event =
        redactor.redact_event(dispatch::decision_event(d.step, d.operator, d.approve, d.reason, values));
    let (ts, _) = dispatch::now();
    match store
        .append_checked(d.run_id, &ts, &event, |state| {
            runbook_core::lifecycle::judge_decision(state, d.step, d.operator, dispatch::now().1)
                .map_err(|why| why.to_string())
        })
        .await
    {
        Ok(_) => {}
        Err(StoreError::Refused(why)) => return Err(Refusal::Rules(why)),
        Err(e) => return Err(e.into()),
    }
    let after = match store.records(d.run_id).await {
        Ok(r) => runbook_core::journal::fold(&r),
        Err(_) => folded,
    };
    let approval = after.steps.get(d.step).and_then(|s| s.approval.clone()).unwrap_or_default();
    let settled = !d.approve || approval.is_granted();
    let next = if settled { next_of(store, d.run_id, &after).await } else { Next::Waiting };
    Ok(Decided { granted: approval.granted_by.len(), min_approvals: approval.min_approvals, settled, next })
}

/// Who continues a settled run. "Running" in the journal only says no end was recorded: an
/// engine is attached only if it holds the run's lease and, on this host, its process is
/// alive.
async fn next_of(store: &Store, run_id: &str, after: &RunState) -> Next {
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
                    .is_detached(&dispatch::hostname(), crate::process::identity_is_gone) =>
        {
            Next::Attached(h.holder)
        }
        Some(h) if running => Next::EngineGone(h.holder),
        _ => Next::Resume,
    }
}

/// The runbook the run started with (refused if its files changed since) and the approval
/// step's declaration in it.
pub fn approval_spec(
    records: &[Record],
    step: &str,
    as_started: AsStarted<'_>,
) -> Option<(Arc<Runbook>, ApprovalSpec)> {
    let runbook = runbook_of_run(records, as_started)?;
    let spec = match &runbook.find_step(step)?.action {
        Action::Approval(spec) => (**spec).clone(),
        _ => return None,
    };
    Some((runbook, spec))
}

/// `why` (a refusal of the value `text`) without the value: an approval input refused is
/// never shown back, in any form the message could quote it (red team adv19a-1: a secret
/// pasted as an input came back on the terminal and in the console's answer).
fn unquoted(why: &str, text: &str) -> String {
    let shown = runbook_core::params::shown(text);
    let mut out = why.to_string();
    for form in
        [format!("`{shown}`"), format!("`{text}`"), format!("`{}`", runbook_core::params::shown(text.trim()))]
    {
        out = out.replace(&form, "the value given");
    }
    if !text.trim().is_empty() && (out.contains(text.trim()) || out.contains(shown.trim_end_matches('…'))) {
        return "the value given is refused by the input's rules (its type, pattern or allowed values)"
            .into();
    }
    out
}

/// `NAME=VALUE` values, typed and checked as the approval declares them; an approval must
/// give every input that has no default.
pub fn typed_inputs(
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
            // The name is not echoed: a name nobody declared may be anything pasted, a
            // secret's value included (red team adv19a-1).
            problems.push(format!("a name given is not an input of the approval ({known})"));
            continue;
        };
        match runbook_core::params::from_text(param.ty, text)
            .and_then(|v| runbook_core::params::check(param, &v).map(|()| v))
        {
            Ok(v) => {
                values.insert(name.clone(), serde_json::to_value(v).unwrap_or_default());
            }
            Err(e) => problems.push(format!("input `{name}`: {}", unquoted(&e, text))),
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
