//! An operator's decisions about a run's steps in doubt, recorded before an engine resumes
//! it: the console's decision form (`runbook serve`), whose run a worker then resumes.
//!
//! The rules are the core's, never a copy: [`in_doubt`] and [`record`] ask
//! [`runbook_core::lifecycle::assess_resume`] (what `runbook resume --rerun/--skip` asks),
//! with the runbook as the run started, its `for-each` steps expanded as `resume` expands
//! them ([`crate::approve::runbook_of_run`]). What is recorded is what `runbook resume` records for
//! a decision, `operator_decision` (step, `rerun` or `skip`, the operator, the reason),
//! appended under the run's lock taken as the run takes it (a live engine refuses), fenced
//! by that lease, the reason redacted with the run's secrets. The journal's fold then holds
//! each decided step as the decision says (`rerun`: pending, it runs again; `skip`: skipped
//! by the operator), so the engine that resumes the run needs no decision of its own and
//! acts on these (promise 1: a step in doubt runs again only by an operator's decision).

use runbook_core::journal::{Decision, Record, RunEvent, RunState};
use runbook_core::lifecycle::{Refusal as Rule, ResumeRequest};
use runbook_store::{Store, StoreError};

use crate::abandon::LockRefusal;
use crate::approve::AsStarted;
use crate::dispatch;
use crate::secrets::{EngineEnv, Redactor, Unresolved};

/// The steps of a run that wait for an operator's decision before it may be resumed (the
/// core's [`runbook_core::lifecycle::Refusal::Undecided`]), or `None` when the run needs
/// none (it resumes as it is, it finished, or its runbook cannot be read as it started).
pub fn in_doubt(records: &[Record], as_started: AsStarted<'_>) -> Option<Vec<String>> {
    let runbook = crate::approve::runbook_of_run(records, as_started)?;
    let state = runbook_core::journal::fold(records);
    let ended = runbook_core::lifecycle::last_end(records.iter().map(|r| &r.event));
    let request =
        ResumeRequest { compensating: false, ended, rerun: &[], skip: &[], undo: &[], reason: None };
    match runbook_core::lifecycle::assess_resume(&runbook, &state, &request) {
        Err(refused) => match refused.refusal {
            Rule::Undecided { steps, .. } if !steps.is_empty() => Some(steps),
            _ => None,
        },
        Ok(_) => None,
    }
}

/// The decisions asked for.
#[derive(Debug, Clone, Copy)]
pub struct Decisions<'a> {
    /// The run.
    pub run_id: &'a str,
    /// Who decides (the console's signed-in identity).
    pub operator: &'a str,
    /// Steps in doubt to run again.
    pub rerun: &'a [String],
    /// Steps in doubt to treat as done.
    pub skip: &'a [String],
    /// Why (journaled with each decision).
    pub reason: &'a str,
}

/// Why nothing was recorded.
#[derive(Debug)]
pub enum Refusal {
    /// The store failed (no such run included).
    Store(StoreError),
    /// The lifecycle's rule (the words `runbook resume` would print come from it).
    Rules(Rule),
    /// The runbook cannot be read as it was when the run started.
    NoRunbook,
    /// No decision was asked, and none is needed.
    Nothing,
    /// The journal fails verification at this record (seq, why).
    Journal(u64, String),
    /// The run's lock cannot be taken (a live engine holds it).
    Lock(LockRefusal),
    /// The run's secrets cannot be read to redact the reason, one line each.
    Secrets(Vec<String>),
    /// Ctrl-C or SIGTERM came while a secret's helper ran.
    Interrupted(String),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

impl From<LockRefusal> for Refusal {
    fn from(e: LockRefusal) -> Refusal {
        Refusal::Lock(e)
    }
}

/// Judge the decisions by the core's rules, then take the run's lock, journal one
/// `operator_decision` per step (fenced), and let the lock go. Returns the decisions
/// recorded, in order.
pub async fn record(
    store: &Store,
    d: Decisions<'_>,
    as_started: AsStarted<'_>,
    engine: &EngineEnv,
) -> Result<Vec<(String, Decision)>, Refusal> {
    let id = d.run_id;
    let (summary, mut records) = store.run_and_records(id).await?;
    records.truncate(usize::try_from(summary.last_seq).unwrap_or(usize::MAX));
    if let Err(e) = runbook_core::journal::verify(&records, summary.last_hash.as_deref()) {
        return Err(Refusal::Journal(e.seq, e.reason));
    }
    let runbook = crate::approve::runbook_of_run(&records, as_started).ok_or(Refusal::NoRunbook)?;
    let state: RunState = runbook_core::journal::fold(&records);
    let ended = runbook_core::lifecycle::last_end(records.iter().map(|r| &r.event));
    let request = ResumeRequest {
        compensating: false,
        ended,
        rerun: d.rerun,
        skip: d.skip,
        undo: &[],
        reason: Some(d.reason),
    };
    let plan = runbook_core::lifecycle::assess_resume(&runbook, &state, &request)
        .map_err(|refused| Refusal::Rules(refused.refusal))?;
    if plan.decisions.is_empty() {
        return Err(Refusal::Nothing);
    }
    let base_dir = std::path::Path::new(&runbook.source.path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let redactor = match crate::secrets::resolve(&runbook, &base_dir, engine) {
        Ok(secrets) => Redactor::new(&secrets),
        Err(Unresolved::Interrupted(secret)) => return Err(Refusal::Interrupted(secret)),
        Err(Unresolved::Problems(problems)) => return Err(Refusal::Secrets(problems)),
    };
    let (_, lease) = crate::abandon::take_lock::<Refusal>(store, id, d.operator, summary.last_seq).await?;
    let (now, _) = dispatch::now();
    let mut recorded = Vec::new();
    let mut result = Ok(());
    for (step, decision, reason) in plan.decisions {
        let event = redactor.redact_event(RunEvent::OperatorDecision {
            step: step.clone(),
            decision,
            operator: d.operator.to_string(),
            reason,
        });
        if let Err(e) = store.append(id, &now, &event, Some(&lease)).await {
            result = Err(e);
            break;
        }
        recorded.push((step, decision));
    }
    let _ = store.release_lock(&lease).await;
    result?;
    Ok(recorded)
}
