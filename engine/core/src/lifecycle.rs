//! The rules of a run's lifecycle, as pure functions with typed results: who holds a run's
//! lock ([`Holder`]), whether a run may be resumed and what resuming it decides
//! ([`assess_resume`]), whether the runbook files are still the ones a run started with
//! ([`check_as_started`]), whether a pinned plan still holds ([`verify_pinned`]), and
//! whether an operator may decide on a waiting approval ([`judge_decision`]).
//!
//! Nothing here reads a file, a clock or a process: the callers (the CLI, the store, the
//! executor) hand in what they observed, and print or act on the answer.

use std::fmt;

use crate::journal::{Decision, RunEvent, RunState, RunStatus, StepState, StepStatus, ended_mid_work};
use crate::model::{Action, Runbook};

/// How the holder of a suspended run's lock begins.
pub const SUSPENDED: &str = "suspended: ";

/// Who holds a lock, as the store keeps it (the `locks.holder` text is its [`fmt::Display`];
/// [`Holder::parse`] reads back every text an engine writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A live engine: `OPERATOR (pid N on HOST; process ID)`, the process identity left out
    /// when `/proc` could not say.
    Engine {
        /// Who runs it.
        operator: String,
        /// Its process id.
        pid: u32,
        /// Its host.
        host: String,
        /// The process's identity (boot, PID namespace, start time), which proves it dead.
        process: Option<String>,
    },
    /// No engine: the run stopped to wait for approvals and keeps its lock while people
    /// decide; only the run itself takes it back (`resume`) or ends it (`compensate`).
    Suspended {
        /// The run.
        run: String,
        /// The steps it waits on.
        waiting: Vec<String>,
    },
    /// Any other text (written by hand or by another version): judged as before, by its
    /// words, suspended if it begins with [`SUSPENDED`], never proved dead.
    Other(String),
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Engine { operator, pid, host, process: Some(id) } => {
                write!(f, "{operator} (pid {pid} on {host}; process {id})")
            }
            Holder::Engine { operator, pid, host, process: None } => {
                write!(f, "{operator} (pid {pid} on {host})")
            }
            Holder::Suspended { run, waiting } => write!(
                f,
                "{SUSPENDED}run {run} waits for approval of {} (`runbook resume {run}` continues it, `runbook compensate {run}` ends it)",
                waiting.join(", ")
            ),
            Holder::Other(text) => f.write_str(text),
        }
    }
}

impl Holder {
    /// Read a stored holder. Total: a text that is not exactly what [`fmt::Display`] writes
    /// for an engine or a suspended run is [`Holder::Other`], so `parse(t).to_string() == t`
    /// for every `t`.
    pub fn parse(text: &str) -> Holder {
        Holder::typed(text)
            .filter(|h| h.to_string() == text)
            .unwrap_or_else(|| Holder::Other(text.to_string()))
    }

    fn typed(text: &str) -> Option<Holder> {
        if let Some(rest) = text.strip_prefix(SUSPENDED) {
            let rest = rest.strip_prefix("run ")?;
            let (run, rest) = rest.split_once(" waits for approval of ")?;
            let (waiting, _) = rest.rsplit_once(" (`runbook resume ")?;
            let waiting = if waiting.is_empty() {
                Vec::new()
            } else {
                waiting.split(", ").map(str::to_string).collect()
            };
            return Some(Holder::Suspended { run: run.to_string(), waiting });
        }
        let (operator, inner) = text.rsplit_once(" (pid ")?;
        let inner = inner.strip_suffix(')')?;
        let (pid, rest) = inner.split_once(" on ")?;
        let pid = pid.parse().ok()?;
        let (host, process) = match rest.split_once("; process ") {
            Some((host, id)) => (host, Some(id.to_string())),
            None => (rest, None),
        };
        Some(Holder::Engine { operator: operator.to_string(), pid, host: host.to_string(), process })
    }

    /// The lock is kept by a run that stopped to wait for approvals: no engine holds it.
    pub fn is_suspended(&self) -> bool {
        match self {
            Holder::Suspended { .. } => true,
            Holder::Other(text) => text.starts_with(SUSPENDED),
            Holder::Engine { .. } => false,
        }
    }

    /// The holder provably no longer runs: an engine that names its process identity, on
    /// this host (`here`), whose process `gone(pid, identity)` says is gone from this kernel
    /// boot and PID namespace. A name, a pid and a host alone prove nothing (another PID
    /// namespace may reuse both): such a holder's lease must expire.
    pub fn is_dead(&self, here: &str, gone: impl FnOnce(i32, &str) -> bool) -> bool {
        match self {
            Holder::Engine { pid, host, process: Some(id), .. } => {
                host == here && i32::try_from(*pid).is_ok_and(|pid| gone(pid, id))
            }
            Holder::Engine { process: None, .. } | Holder::Suspended { .. } | Holder::Other(_) => false,
        }
    }

    /// No engine runs the run: its lock is suspended, or its engine is provably dead (see
    /// [`Holder::is_dead`]). A holder for whom this is false is a live engine while its
    /// lease lasts.
    pub fn is_detached(&self, here: &str, gone: impl FnOnce(i32, &str) -> bool) -> bool {
        self.is_suspended() || self.is_dead(here, gone)
    }
}

/// How a run last ended, unless it was resumed since (`None`: it did not end, or an
/// engine took it up again after its end): the last `run_finished` or `run_resumed`.
pub fn last_end(
    events: impl DoubleEndedIterator<Item = impl std::borrow::Borrow<RunEvent>>,
) -> Option<RunStatus> {
    events
        .rev()
        .find_map(|e| match e.borrow() {
            RunEvent::RunFinished { status, .. } => Some(Some(*status)),
            RunEvent::RunResumed { .. } => Some(None),
            _ => None,
        })
        .flatten()
}

/// The first rule of [`assess_resume`], which needs nothing but the journal: a run that
/// ended otherwise than failed has nothing to resume (`compensate` may still undo it).
pub fn check_not_finished(ended: Option<RunStatus>, compensating: bool) -> Result<(), Refusal> {
    match ended {
        // A failed run goes on: its failed steps get new attempts (only if nothing was
        // compensated: [`assess_resume`]).
        Some(RunStatus::Failed) | None => Ok(()),
        Some(_) if compensating => Ok(()),
        Some(status) => Err(Refusal::Finished { status }),
    }
}

/// What the operator asked of `resume` or `compensate`.
#[derive(Debug, Clone, Copy)]
pub struct ResumeRequest<'a> {
    /// `compensate` (undo the run) rather than `resume` (go on).
    pub compensating: bool,
    /// How the run last ended ([`last_end`]).
    pub ended: Option<RunStatus>,
    /// Units in doubt to run again (`--rerun`).
    pub rerun: &'a [String],
    /// Units in doubt to treat as done (`--skip`).
    pub skip: &'a [String],
    /// Main steps in doubt that took effect, to undo (`compensate --undo`).
    pub undo: &'a [String],
    /// Why (`--reason`), journaled with the decisions.
    pub reason: Option<&'a str>,
}

/// A decision about a unit in doubt: (step, decision, reason), as the executor takes it.
pub type UnitDecision = (String, Decision, String);

/// What resuming (or compensating) a run decides: the operator's decisions about the units
/// in doubt, and what the operator is told.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumePlan {
    /// Decisions about steps in doubt (and, for `compensate`, main steps undone).
    pub decisions: Vec<UnitDecision>,
    /// Decisions about compensations in doubt.
    pub compensation_decisions: Vec<UnitDecision>,
    /// What the operator is told, in order.
    pub notes: Vec<Note>,
}

/// Something the operator is told about a run that may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// These `runbook` steps' included runbooks undid themselves: they stay failed.
    IncludesUndone(Vec<String>),
    /// The run failed; these steps run again, with a new set of attempts.
    FailedRunAgain(Vec<String>),
    /// `compensate`: these main steps are in doubt and have no compensation; left as they are.
    DoubtWithoutCompensation(Vec<String>),
}

/// Why a run may not be resumed (or compensated) as asked. Each carries what the message
/// names; the CLI words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The run ended (not failed): nothing to resume.
    Finished {
        /// How.
        status: RunStatus,
    },
    /// The run failed under `on-failure = "compensate"` and was undone: it cannot go on.
    Compensated,
    /// The run was compensating when its engine stopped (or, with `undoing`, these
    /// `runbook` steps' included runbooks were undoing themselves).
    Compensating {
        /// The `runbook` steps whose runbooks were undoing themselves (empty: the run's own).
        undoing: Vec<String>,
    },
    /// `resume --undo STEP`: undoing is `compensate`'s decision.
    UndoInResume {
        /// The first step named.
        step: String,
    },
    /// `--undo STEP` names no main step in doubt that has a compensation.
    NotUndoable {
        /// The step.
        step: String,
    },
    /// A unit named in `--undo` and in `--rerun` or `--skip`.
    UndoAndRerunOrSkip {
        /// The unit.
        step: String,
    },
    /// A unit named in `--rerun` and in `--skip`.
    RerunAndSkip {
        /// The unit.
        step: String,
    },
    /// `--rerun`/`--skip` names a unit that is not in doubt.
    NotInDoubt {
        /// The unit.
        step: String,
        /// Whether it was `compensate` (compensations and `finally` steps may be decided).
        compensating: bool,
    },
    /// Decisions without `--reason`.
    NoReason,
    /// `compensate`: main steps in doubt that could be undone wait for `--undo` or `--skip`.
    UndoUndecided {
        /// The steps.
        steps: Vec<String>,
    },
    /// Units in doubt that are not idempotent wait for a decision.
    Undecided {
        /// Steps in doubt.
        steps: Vec<String>,
        /// Compensations in doubt.
        compensations: Vec<String>,
        /// Those of `steps` that were ended by their timeout, a cancellation or a signal.
        ended_mid_work: Vec<String>,
        /// Whether it was `compensate`.
        compensating: bool,
    },
}

/// A refusal and what the operator was told before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The notes that come before the refusal, in order.
    pub notes: Vec<Note>,
    /// Why not.
    pub refusal: Refusal,
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Refused {
        Refused { notes: Vec::new(), refusal }
    }
}

/// Whether a run (its journal folded into `state`, its runbook as it started) may be
/// resumed or compensated as `request` asks, and with which decisions about its units in
/// doubt. Promise 1: a unit that started and has no end record runs again only if it is
/// idempotent or an operator decided so (with a reason, journaled).
pub fn assess_resume(
    runbook: &Runbook,
    state: &RunState,
    request: &ResumeRequest,
) -> Result<ResumePlan, Refused> {
    let ResumeRequest { compensating, ended, rerun, skip, undo, reason } = *request;
    check_not_finished(ended, compensating)?;
    let mut notes = Vec::new();
    let refuse = |notes: &Vec<Note>, refusal| Refused { notes: notes.clone(), refusal };
    // A run whose failure was (or was being) compensated cannot go on: its completed steps
    // are undone. One that stopped (`stop`, `continue`) can: its failed steps run again.
    // The same rule holds for each included runbook, within its own scope (its `runbook`
    // step's prefix): one that undid itself is over, and its step's `on-failure` decided
    // what the run did next; while its step has no end record, it was still undoing itself
    // when the engine stopped, and that waits for a decision like the run's own.
    if !compensating {
        let scope_undid = |path: &str| {
            runbook
                .find_include(path)
                .is_some_and(|child| child.undid_itself(&state.scoped(&format!("{path}/"))))
        };
        let ended_step = |s: &StepState| {
            matches!(s.status, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped)
        };
        let undoing: Vec<String> = state
            .steps
            .iter()
            .filter(|(path, s)| !ended_step(s) && scope_undid(path))
            .map(|(path, _)| path.clone())
            .collect();
        let undone: Vec<&str> = state
            .steps
            .iter()
            .filter(|(path, s)| s.status == StepStatus::Failed && scope_undid(path))
            .map(|(path, _)| path.as_str())
            .collect();
        let compensated = runbook.undid_itself(&state.scoped(""));
        if compensated && ended.is_some() {
            return Err(Refusal::Compensated.into());
        }
        if compensated || !undoing.is_empty() {
            let undoing = if compensated { Vec::new() } else { undoing };
            return Err(Refusal::Compensating { undoing }.into());
        }
        if !undone.is_empty() {
            notes.push(Note::IncludesUndone(undone.iter().map(|s| s.to_string()).collect()));
        }
        let failed: Vec<String> = state
            .steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Failed)
            // Those ended from outside are named with the steps in doubt.
            .filter(|(id, s)| {
                !s.reason.as_deref().is_some_and(ended_mid_work)
                    || runbook.find_step(id).is_some_and(|st| st.idempotent)
            })
            // An included runbook that undid itself, and what is inside it, stay as they are.
            .filter(|(id, _)| !undone.iter().any(|u| *id == u || id.starts_with(&format!("{u}/"))))
            .map(|(id, _)| id.clone())
            .collect();
        if !failed.is_empty() {
            notes.push(Note::FailedRunAgain(failed));
        }
    }
    // Units in doubt: started, no end record. Idempotent ones run again; the others wait
    // for the operator's decision, journaled with who made it. `resume` runs steps (main
    // and `finally`); `compensate` runs compensations and `finally` steps, and leaves the
    // main steps in doubt alone (they are not compensated: it is not known whether they ran).
    let is_finally = |step: &str| runbook.finally.iter().any(|f| f.id.as_str() == step);
    let mut steps_in_doubt: Vec<&str> =
        state.in_doubt().into_iter().filter(|s| !compensating || is_finally(s)).collect();
    // A step ended by its timeout, a cancellation or a signal may have done part of its
    // work: a failed run that goes on treats it as in doubt too.
    let mid_work: Vec<&str> = if compensating { Vec::new() } else { state.failed_mid_work() };
    steps_in_doubt.extend(mid_work.iter().copied());
    // `compensate`: a main step in doubt that has a compensation may have taken effect (a
    // restore committed, a push reached origin): undoing the others and leaving it would put
    // the environment in a state nobody chose. The operator says which it was.
    let doubt_with_undo: Vec<&str> = if compensating {
        state
            .in_doubt()
            .into_iter()
            .filter(|s| !is_finally(s))
            .filter(|s| runbook.find_step(s).is_some_and(|st| st.compensate.is_some()))
            .collect()
    } else {
        Vec::new()
    };
    if !compensating && let Some(step) = undo.first() {
        return Err(refuse(&notes, Refusal::UndoInResume { step: step.clone() }));
    }
    if let Some(s) = undo.iter().find(|s| !doubt_with_undo.contains(&s.as_str())) {
        return Err(refuse(&notes, Refusal::NotUndoable { step: s.clone() }));
    }
    if let Some(twice) = undo.iter().find(|u| rerun.contains(u) || skip.contains(u)) {
        return Err(refuse(&notes, Refusal::UndoAndRerunOrSkip { step: twice.clone() }));
    }
    if let Some(both) = rerun.iter().find(|r| skip.contains(r)) {
        return Err(refuse(&notes, Refusal::RerunAndSkip { step: both.clone() }));
    }
    let compensations_in_doubt: Vec<&str> =
        if compensating { state.compensations_in_doubt() } else { Vec::new() };
    for s in rerun.iter().chain(skip.iter()) {
        let undoable = doubt_with_undo.contains(&s.as_str()) && skip.contains(s);
        if !steps_in_doubt.contains(&s.as_str()) && !compensations_in_doubt.contains(&s.as_str()) && !undoable
        {
            return Err(refuse(&notes, Refusal::NotInDoubt { step: s.clone(), compensating }));
        }
    }
    let reason = reason.unwrap_or_default();
    if (!rerun.is_empty() || !skip.is_empty() || !undo.is_empty()) && reason.trim().is_empty() {
        return Err(refuse(&notes, Refusal::NoReason));
    }
    let decide = |unit: &str| {
        let decision = if rerun.iter().any(|r| r == unit) {
            Decision::Rerun
        } else if skip.iter().any(|r| r == unit) {
            Decision::Skip
        } else if undo.iter().any(|r| r == unit) {
            Decision::Undo
        } else {
            return None;
        };
        Some((unit.to_string(), decision, reason.to_string()))
    };
    let mut plan = ResumePlan::default();
    let mut undecided = Vec::new();
    for step in &steps_in_doubt {
        match decide(step) {
            Some(d) => plan.decisions.push(d),
            // An included runbook resumes step by step, under its own rules.
            None if runbook
                .find_step(step)
                .is_some_and(|st| st.idempotent || matches!(st.action, Action::Runbook(_))) => {}
            None => undecided.push(step.to_string()),
        }
    }
    let mut undecided_compensations = Vec::new();
    for step in &compensations_in_doubt {
        match decide(step) {
            Some(d) => plan.compensation_decisions.push(d),
            None if runbook
                .find_step(step)
                .and_then(|st| st.compensate.as_ref())
                .is_some_and(|c| c.idempotent) => {}
            None => undecided_compensations.push(step.to_string()),
        }
    }
    let mut undecided_undo = Vec::new();
    for step in &doubt_with_undo {
        match decide(step) {
            Some(d) => plan.decisions.push(d),
            None => undecided_undo.push(step.to_string()),
        }
    }
    if compensating {
        let doubt: Vec<String> = state
            .in_doubt()
            .into_iter()
            .filter(|s| !is_finally(s) && !doubt_with_undo.contains(s))
            .map(str::to_string)
            .collect();
        if !doubt.is_empty() {
            notes.push(Note::DoubtWithoutCompensation(doubt));
        }
    }
    if !undecided_undo.is_empty() {
        return Err(refuse(&notes, Refusal::UndoUndecided { steps: undecided_undo }));
    }
    if !undecided.is_empty() || !undecided_compensations.is_empty() {
        let ended_mid_work = undecided.iter().filter(|s| mid_work.contains(&s.as_str())).cloned().collect();
        return Err(refuse(
            &notes,
            Refusal::Undecided {
                steps: undecided,
                compensations: undecided_compensations,
                ended_mid_work,
                compensating,
            },
        ));
    }
    plan.notes = notes;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(process: Option<&str>) -> Holder {
        Holder::Engine {
            operator: "ana@bastion".into(),
            pid: 4242,
            host: "db-1".into(),
            process: process.map(str::to_string),
        }
    }

    #[test]
    fn every_holder_text_round_trips() {
        // (stored text, what it reads as)
        let cases: Vec<(&str, Holder)> = vec![
            (
                "ana@bastion (pid 4242 on db-1; process b00t/4026531836/123456)",
                engine(Some("b00t/4026531836/123456")),
            ),
            ("ana@bastion (pid 4242 on db-1)", engine(None)),
            (
                "suspended: run r-1 waits for approval of gate, prod/gate (`runbook resume r-1` continues it, `runbook compensate r-1` ends it)",
                Holder::Suspended { run: "r-1".into(), waiting: vec!["gate".into(), "prod/gate".into()] },
            ),
            (
                "suspended: run r-1 waits for approval of  (`runbook resume r-1` continues it, `runbook compensate r-1` ends it)",
                Holder::Suspended { run: "r-1".into(), waiting: vec![] },
            ),
            // An operator whose name holds the markers: the last `(pid` counts.
            (
                "x (pid 1 on h) (pid 7 on h2; process a/b/c)",
                Holder::Engine {
                    operator: "x (pid 1 on h)".into(),
                    pid: 7,
                    host: "h2".into(),
                    process: Some("a/b/c".into()),
                },
            ),
            // Not exactly what an engine writes: kept as text.
            ("w1", Holder::Other("w1".into())),
            ("", Holder::Other("".into())),
            ("ana (pid 012 on h)", Holder::Other("ana (pid 012 on h)".into())),
            ("ana (pid -1 on h)", Holder::Other("ana (pid -1 on h)".into())),
            ("ana (pid 1 on h", Holder::Other("ana (pid 1 on h".into())),
            ("suspended: by hand", Holder::Other("suspended: by hand".into())),
        ];
        for (text, holder) in cases {
            assert_eq!(Holder::parse(text), holder, "{text}");
            assert_eq!(holder.to_string(), text);
        }
    }

    #[test]
    fn suspended_and_dead_holders() {
        let gone = |_: i32, _: &str| true;
        let alive = |_: i32, _: &str| false;
        let suspended = Holder::Suspended { run: "r".into(), waiting: vec!["a".into()] };
        // (holder, here, process gone?, suspended, dead)
        let cases = [
            (engine(Some("id")), "db-1", true, false, true),
            (engine(Some("id")), "db-1", false, false, false),
            (engine(Some("id")), "db-2", true, false, false),
            (engine(None), "db-1", true, false, false),
            (suspended, "db-1", true, true, false),
            (Holder::Other("suspended: by hand".into()), "db-1", true, true, false),
            (Holder::Other("w1".into()), "db-1", true, false, false),
        ];
        for (holder, here, is_gone, suspended, dead) in cases {
            assert_eq!(holder.is_suspended(), suspended, "{holder}");
            let dead_now = if is_gone { holder.is_dead(here, gone) } else { holder.is_dead(here, alive) };
            assert_eq!(dead_now, dead, "{holder} on {here}");
            assert_eq!(holder.is_detached(here, if is_gone { gone } else { alive }), suspended || dead);
        }
    }
}
