//! The rules of a run's lifecycle, as pure functions with typed results: who holds a run's
//! lock ([`Holder`]), whether a run may be resumed and what resuming it decides
//! ([`assess_resume`]), whether the runbook files are still the ones a run started with
//! ([`check_as_started`]), whether a pinned plan still holds ([`verify_pinned`]), and
//! whether an operator may decide on a waiting approval ([`judge_decision`]).
//!
//! Nothing here reads a file, a clock or a process: the callers (the CLI, the store, the
//! executor) hand in what they observed, and print or act on the answer.

use std::fmt;

use crate::journal::{
    ApproverRefusal, CompensationStatus, Decision, RunEvent, RunState, RunStatus, StepState, StepStatus,
    ended_mid_work,
};
use crate::model::{Action, Runbook};
use crate::plan::FileHash;

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
    /// Any other text (written by hand, or an engine whose operator's name made it parse as
    /// nothing else): never suspended, never proved dead; its lease must expire.
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
        // An engine whose operator's name begins like a suspended run's text is an engine.
        Holder::suspended(text).filter(|h| h.to_string() == text).or_else(|| Holder::engine(text))
    }

    fn suspended(text: &str) -> Option<Holder> {
        let rest = text.strip_prefix(SUSPENDED)?;
        let rest = rest.strip_prefix("run ")?;
        let (run, rest) = rest.split_once(" waits for approval of ")?;
        let (waiting, _) = rest.rsplit_once(" (`runbook resume ")?;
        let waiting =
            if waiting.is_empty() { Vec::new() } else { waiting.split(", ").map(str::to_string).collect() };
        Some(Holder::Suspended { run: run.to_string(), waiting })
    }

    fn engine(text: &str) -> Option<Holder> {
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
            // Never by its words: an engine's holder begins with its operator's name, which
            // may read `suspended: ...` (red team, issue 13). Only the exact text a
            // suspended run writes parses as `Suspended`.
            Holder::Other(_) | Holder::Engine { .. } => false,
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

/// Every status of a run this binary knows (the lifecycle's rules fold them exhaustively).
pub const KNOWN_STATUSES: [RunStatus; 6] = [
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Interrupted,
    RunStatus::NeedsOperator,
    RunStatus::Abandoned,
];

/// The lock belongs to the run, not to its engine (issue 14, point 5): a run keeps its lock
/// until it is finished (`succeeded`, `failed`: compensated or nothing to undo), whatever
/// became of its engine. Running (perhaps with a dead engine), interrupted or needing an
/// operator, it keeps it: another run is refused, and only its own `resume` (a new fence)
/// or its end lets the lock go. `status` is the `runs.status` the store keeps; a name this
/// binary does not know keeps the lock (the safe side).
pub fn run_keeps_its_lock(status: &str) -> bool {
    match KNOWN_STATUSES.into_iter().find(|s| s.as_str() == status) {
        Some(RunStatus::Succeeded | RunStatus::Failed | RunStatus::Abandoned) => false,
        Some(RunStatus::Running | RunStatus::Interrupted | RunStatus::NeedsOperator) | None => true,
    }
}

/// Why an operator's decision on an approval step is refused ([`judge_decision`]); its
/// `Display` is the message `approve` prints (and the store's refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionRefusal {
    /// The run has no such step.
    NoSuchStep {
        /// The step named.
        step: String,
    },
    /// The step is not an approval step.
    NotAnApproval {
        /// The step.
        step: String,
    },
    /// The step is not waiting for decisions.
    NotWaiting {
        /// The step.
        step: String,
        /// Where it stands.
        status: StepStatus,
    },
    /// The request's deadline has passed.
    TimedOut {
        /// The step.
        step: String,
        /// The deadline (ms since the epoch).
        deadline_ms: i64,
    },
    /// The run has finished (`run_finished` succeeded or failed): nothing waits for a
    /// decision any more.
    RunFinished {
        /// How it ended.
        status: RunStatus,
    },
    /// The request's rules refuse this operator ([`crate::journal::Approval::judge`]).
    Approver(ApproverRefusal),
}

impl fmt::Display for DecisionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecisionRefusal::NoSuchStep { step } => {
                write!(f, "the run has no step `{step}` waiting for approval")
            }
            DecisionRefusal::NotAnApproval { step } => write!(f, "step `{step}` is not an approval step"),
            DecisionRefusal::RunFinished { status } => {
                write!(f, "the run has finished ({}): no decision counts any more", status.as_str())
            }
            DecisionRefusal::NotWaiting { step, status } => write!(
                f,
                "step `{step}` is not waiting for approval (it is {})",
                serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
            DecisionRefusal::TimedOut { step, deadline_ms } => write!(
                f,
                "the approval of `{step}` timed out at {}; the step fails when the run continues",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(u64::try_from(*deadline_ms).unwrap_or(0))
                )
            ),
            DecisionRefusal::Approver(why) => why.fmt(f),
        }
    }
}

/// Whether `operator` may approve or reject `step` at `now_ms` (the store's clock), judged on
/// the run's folded journal alone: the run has not finished, the step waits for approval, its deadline has not
/// passed, and the rules journaled with its request allow this operator. `approve` judges
/// with it before asking, and the store again inside the transaction that appends.
pub fn judge_decision(
    state: &RunState,
    step: &str,
    operator: &str,
    now_ms: i64,
) -> Result<(), DecisionRefusal> {
    let Some(s) = state.steps.get(step) else {
        return Err(DecisionRefusal::NoSuchStep { step: step.to_string() });
    };
    let Some(approval) = &s.approval else {
        return Err(DecisionRefusal::NotAnApproval { step: step.to_string() });
    };
    // A finished or abandoned run waits for nothing (a suspended or interrupted one does).
    check_open(RunDecision::Approval, state.status)
        .map_err(|status| DecisionRefusal::RunFinished { status })?;
    if s.status != StepStatus::AwaitingApproval {
        return Err(DecisionRefusal::NotWaiting { step: step.to_string(), status: s.status.clone() });
    }
    if let Some(deadline_ms) = approval.deadline_ms
        && now_ms >= deadline_ms
    {
        return Err(DecisionRefusal::TimedOut { step: step.to_string(), deadline_ms });
    }
    approval.judge(operator).map_err(DecisionRefusal::Approver)
}

/// A reviewed plan document (`runbook plan -o`), as `run --plan` reads it: what it pins.
/// Read leniently, as before this type ([`PinnedPlan::from_json`]): a missing or mistyped
/// part reads as empty, and the whole document must still equal the plan made now.
#[derive(Debug, Clone, PartialEq)]
pub struct PinnedPlan {
    /// The engine version that made it (`?` when it does not say).
    pub engine_version: String,
    /// The runbook file (`runbook.file`).
    pub file: Option<String>,
    /// The runbook files, with their digests (`files`).
    pub files: Vec<FileHash>,
    /// Every other file the run reads, with its digest (`reads`).
    pub reads: Vec<FileHash>,
    /// The parameters files among `reads`.
    pub params_files: Vec<FileHash>,
    /// The planned parameter values, as `name=value` text for the usual checks.
    pub params: Vec<(String, String)>,
    /// The whole document.
    pub document: serde_json::Value,
}

impl PinnedPlan {
    /// Read a plan document.
    pub fn from_json(document: serde_json::Value) -> PinnedPlan {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let hashes = |list: &serde_json::Value, keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<FileHash> {
            list.as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter(|f| keep(f))
                        .map(|f| FileHash { path: text(&f["path"]), sha256: text(&f["sha256"]) })
                        .collect()
                })
                .unwrap_or_default()
        };
        PinnedPlan {
            engine_version: document["engine"]["version"].as_str().unwrap_or("?").to_string(),
            file: document["runbook"]["file"].as_str().map(str::to_string),
            files: hashes(&document["files"], &|_| true),
            reads: hashes(&document["reads"], &|_| true),
            params_files: hashes(&document["reads"], &|r| r["kind"] == "params-file"),
            params: document["params"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                        .collect()
                })
                .unwrap_or_default(),
            document,
        }
    }
}

/// How a pinned plan no longer matches what would run ([`verify_pinned_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    /// Another engine version made the plan.
    Engine {
        /// The plan's.
        planned: String,
        /// This one.
        now: String,
    },
    /// A file the plan digested has another digest now.
    Changed {
        /// The file.
        path: String,
        /// Its SHA-256 in the plan.
        then: String,
        /// Its SHA-256 now.
        now: String,
    },
    /// A file the plan digested cannot be read.
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
}

/// The first check of a pinned plan (promise 2: a reviewed plan is exactly what runs): the
/// same engine version, and every file the plan digested (the runbooks, then the files the
/// run reads) with the same digest now. `digest` gives a file's SHA-256 now (the caller
/// reads it). All changes are named.
pub fn verify_pinned_files(
    plan: &PinnedPlan,
    engine_version: &str,
    mut digest: impl FnMut(&str) -> Result<String, String>,
) -> Result<(), Vec<PinChange>> {
    let mut changes = Vec::new();
    if plan.engine_version != engine_version {
        changes.push(PinChange::Engine {
            planned: plan.engine_version.clone(),
            now: engine_version.to_string(),
        });
    }
    for f in plan.files.iter().chain(&plan.reads) {
        match digest(&f.path) {
            Ok(now) if now == f.sha256 => {}
            Ok(now) => changes.push(PinChange::Changed { path: f.path.clone(), then: f.sha256.clone(), now }),
            Err(error) => changes.push(PinChange::Unreadable { path: f.path.clone(), error }),
        }
    }
    if changes.is_empty() { Ok(()) } else { Err(changes) }
}

/// Why a pinned plan whose files still match does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinMismatch {
    /// The plan made now (same files, engine and values) is not the document.
    PlanDiffers,
    /// The runbook now involves other files than the plan names.
    OtherFiles,
}

/// The second check of a pinned plan: the plan made now from the same files and values
/// (`now`: `None` when it cannot be made) is exactly the reviewed document, and the runbook
/// involves exactly the files the plan names (`current_files`, in order).
pub fn verify_pinned(
    plan: &PinnedPlan,
    now: Option<&serde_json::Value>,
    current_files: &[String],
) -> Result<(), PinMismatch> {
    if now != Some(&plan.document) {
        return Err(PinMismatch::PlanDiffers);
    }
    if !current_files.iter().eq(plan.files.iter().map(|f| &f.path)) {
        return Err(PinMismatch::OtherFiles);
    }
    Ok(())
}

/// How a file differs from the run's start ([`check_as_started`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// The file at this place in the list has another digest now.
    Changed {
        /// The path journaled when the run started.
        path: String,
        /// Its SHA-256 then.
        then: String,
        /// The SHA-256 of the file at its place now.
        now: String,
    },
    /// The run no longer reads this file.
    NoLongerRead {
        /// The path journaled.
        path: String,
        /// Its SHA-256 then.
        sha256: String,
    },
    /// The run reads this file now, and did not when it started.
    NewlyRead {
        /// The path now.
        path: String,
        /// Its SHA-256 now.
        sha256: String,
    },
}

/// THE check that the runbook is the one the run started with: the files the run started
/// with (`then`, journaled in `run_started`: the runbook files, then every other file the
/// run reads) and the same files now (`now`, in the same order) have the same digests, one
/// for one. Paths are not compared (the run may have been started from another folder).
/// `resume`, `compensate`, `approve` and `report` all call it.
pub fn check_as_started(then: &[FileHash], now: &[FileHash]) -> Result<(), Vec<FileChange>> {
    let mut changes = Vec::new();
    for (i, f) in then.iter().enumerate() {
        match now.get(i) {
            Some(n) if n.sha256 == f.sha256 => {}
            Some(n) => changes.push(FileChange::Changed {
                path: f.path.clone(),
                then: f.sha256.clone(),
                now: n.sha256.clone(),
            }),
            None => changes.push(FileChange::NoLongerRead { path: f.path.clone(), sha256: f.sha256.clone() }),
        }
    }
    for n in now.iter().skip(then.len()) {
        changes.push(FileChange::NewlyRead { path: n.path.clone(), sha256: n.sha256.clone() });
    }
    if changes.is_empty() { Ok(()) } else { Err(changes) }
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
            RunEvent::RunAbandoned { .. } => Some(Some(RunStatus::Abandoned)),
            RunEvent::RunResumed { .. } => Some(None),
            _ => None,
        })
        .flatten()
}

/// A command that decides about a run: each is judged by [`check_open`] before it acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunDecision {
    /// `approve` or `reject` (a decision on an approval step).
    Approval,
    /// `resume`.
    Resume,
    /// `compensate`.
    Compensate,
    /// `abandon` (with or without `--compensate`).
    Abandon,
}

impl RunDecision {
    /// Every decision, for corpus tests.
    pub const ALL: [RunDecision; 4] =
        [RunDecision::Approval, RunDecision::Resume, RunDecision::Compensate, RunDecision::Abandon];
}

/// The one rule of the lifecycle for a decision on a run (red team adv14a F5): whether
/// `decision` may act on a run whose status (or last end, [`last_end`]) is `status`
/// (`None`: it has not ended, or was resumed since). On `Err`, the status that refuses it.
///
/// - An abandoned run is over for good: every decision is refused.
/// - A succeeded run can only be undone, asked by name (`compensate`).
/// - A failed run goes on (`resume`: new attempts) or is undone (`compensate`); nothing
///   waits for an approval any more, and it has already ended (`abandon` has nothing to end).
/// - A run that is running (perhaps with a dead engine), interrupted or needs an operator
///   takes every decision.
pub fn check_open(decision: RunDecision, status: Option<RunStatus>) -> Result<(), RunStatus> {
    let Some(status) = status else { return Ok(()) };
    let open = match status {
        RunStatus::Running | RunStatus::Interrupted | RunStatus::NeedsOperator => true,
        RunStatus::Abandoned => false,
        RunStatus::Succeeded => match decision {
            RunDecision::Compensate => true,
            RunDecision::Approval | RunDecision::Resume | RunDecision::Abandon => false,
        },
        RunStatus::Failed => match decision {
            RunDecision::Resume | RunDecision::Compensate => true,
            RunDecision::Approval | RunDecision::Abandon => false,
        },
    };
    if open { Ok(()) } else { Err(status) }
}

/// The first rule of [`assess_resume`], which needs nothing but the journal: a run that
/// ended otherwise than failed has nothing to resume (`compensate` may still undo it);
/// [`check_open`] decides.
pub fn check_not_finished(ended: Option<RunStatus>, compensating: bool) -> Result<(), Refusal> {
    let decision = if compensating { RunDecision::Compensate } else { RunDecision::Resume };
    check_open(decision, ended).map_err(|status| Refusal::Finished { status })
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
    /// Decisions the journal already holds and that were carried out (by an engine that
    /// raced this one, or died after acting on them): accepted as done, not acted on again.
    AlreadyCarriedOut(Vec<String>),
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
        /// Those of `steps` and `compensations` that were ended by their timeout, a
        /// cancellation or a signal.
        ended_mid_work: Vec<String>,
        /// Whether it was `compensate`.
        compensating: bool,
    },
}

/// How a [`Refusal`] is worded: one text for the CLI (`runbook resume`/`compensate`, which
/// picks the exit code) and the console (which picks the HTTP status), so that neither
/// holds a copy (review D2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefusalWords {
    /// The error lines.
    pub errors: Vec<String>,
    /// Lines under them.
    pub details: Vec<String>,
    /// What to do.
    pub help: Option<String>,
}

impl RefusalWords {
    fn new(error: String) -> RefusalWords {
        RefusalWords { errors: vec![error], ..RefusalWords::default() }
    }

    fn help(mut self, help: String) -> RefusalWords {
        self.help = Some(help);
        self
    }
}

impl Refusal {
    /// This refusal for run `id`, worded (the CLI's words, the console's too).
    pub fn words(&self, id: &str) -> RefusalWords {
        match self {
            Refusal::Finished { status } => RefusalWords::new(format!(
                "run {id} has finished ({}); there is nothing to resume",
                status.as_str()
            )),
            Refusal::Compensated => RefusalWords::new(format!(
                "run {id} failed under `on-failure = \"compensate\"`: what it did was undone, so it cannot go on"
            ))
            .help("start a new run".to_string()),
            Refusal::Compensating { undoing } => {
                let what = if undoing.is_empty() {
                    String::new()
                } else {
                    format!(" (the runbook included by {} was undoing itself)", undoing.join(", "))
                };
                RefusalWords::new(format!(
                    "run {id} had failed and was compensating when the engine stopped{what}; it cannot go on"
                ))
                .help(format!("`runbook compensate {id}` runs the compensations that are left"))
            }
            Refusal::UndoInResume { step } => RefusalWords::new(format!(
                "`--undo {step}` is a decision for `runbook compensate`; `resume` re-runs or skips; nothing was done"
            )),
            Refusal::NotUndoable { step } => RefusalWords::new(format!(
                "`{step}` is not in doubt in run {id} with a compensation; `--undo` names a step that started, has no end record and can be undone"
            )),
            Refusal::UndoAndRerunOrSkip { step } => RefusalWords::new(format!(
                "`{step}` is named in `--undo` and in `--rerun` or `--skip`; a unit gets one decision; nothing was done"
            )),
            Refusal::RerunAndSkip { step } => RefusalWords::new(format!(
                "`{step}` is named in both `--rerun` and `--skip`; a unit gets one decision; nothing was done"
            ))
            .help(format!(
                "name it once: `--rerun {w}` (run it again) or `--skip {w}` (treat it as done)",
                w = crate::hint::word(step)
            )),
            Refusal::NotInDoubt { step, compensating } => {
                let what = if *compensating { "compensations and `finally` steps" } else { "steps" };
                RefusalWords::new(format!(
                    "`{step}` is not in doubt in run {id}; only {what} in doubt can be re-run or skipped"
                ))
            }
            Refusal::NoReason => RefusalWords::new(
                "`--rerun`, `--skip` and `--undo` need `--reason TEXT`: the decision is journaled with who made it and why"
                    .to_string(),
            ),
            Refusal::UndoUndecided { steps } => {
                let first = crate::hint::word(&steps.first().cloned().unwrap_or_default());
                let mut words = RefusalWords::new(format!(
                    "run {id} has steps in doubt that can be undone: {}",
                    steps.join(", ")
                ))
                .help(format!(
                    "check what they did, then `runbook compensate {} --undo {first}` (it took effect: undo it) or `--skip {first}` (it did not: leave it), with `--reason TEXT`",
                    crate::hint::word(id)
                ));
                words.details.push(
                    "they started and the engine stopped before their outcome was recorded; they may have taken effect, and undoing the others while leaving them could leave the environment half done".to_string(),
                );
                words
            }
            Refusal::Undecided { steps, compensations, ended_mid_work, compensating } => {
                let command = if *compensating { "compensate" } else { "resume" };
                let mut words = RefusalWords::default();
                if !steps.is_empty() {
                    words.errors.push(format!(
                        "run {id} has steps in doubt that are not idempotent: {}",
                        steps.join(", ")
                    ));
                }
                if !compensations.is_empty() {
                    words.errors.push(format!(
                        "run {id} has compensations in doubt that are not idempotent: {}",
                        compensations.join(", ")
                    ));
                }
                words.details.push(
                    "they started and the engine stopped before their outcome was recorded; they may or may not have run".to_string(),
                );
                if !ended_mid_work.is_empty() {
                    words.details.push(format!(
                        "ended by their timeout, a cancellation or a signal, they may have done part of their work: {}",
                        ended_mid_work.join(", ")
                    ));
                }
                words.help(format!(
                    "check what they did, then `runbook {command} {id} --rerun STEP` or `--skip STEP` (treat as done), with `--reason TEXT`"
                ))
            }
        }
    }
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

/// The units among `names` (given `decision` by `--rerun`, `--skip` or `--undo`) about
/// which the journal already records that same decision, and that are no longer in doubt:
/// the decision was carried out, by an engine given it that raced this one or died after
/// acting on it. They are accepted as done and never acted on again (promise 1); the
/// others go to [`assess_resume`]. The rule holds for every kind of unit (main step,
/// compensation, `finally` step) at every include depth: it compares journal names.
pub fn carried_out<'a>(
    events: impl Iterator<Item = &'a RunEvent>,
    state: &RunState,
    names: &[String],
    decision: Decision,
) -> Vec<String> {
    let journaled: Vec<&str> = events
        .filter_map(|e| match e {
            RunEvent::OperatorDecision { step, decision: d, .. }
            | RunEvent::CompensationDecision { step, decision: d, .. }
                if *d == decision =>
            {
                Some(step.as_str())
            }
            _ => None,
        })
        .collect();
    let in_doubt: Vec<&str> = state
        .in_doubt()
        .into_iter()
        .chain(state.compensations_in_doubt())
        .chain(state.failed_mid_work())
        .collect();
    names
        .iter()
        .filter(|n| journaled.contains(&n.as_str()) && !in_doubt.contains(&n.as_str()))
        .cloned()
        .collect()
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
            // An included runbook in doubt is not left as it is: its completed nested steps
            // are undone (`machine::compensations`); its own units in doubt are named here.
            .filter(|s| !runbook.find_step(s).is_some_and(|st| matches!(st.action, Action::Runbook(_))))
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
        // Those that ended (not cut off by the engine's death): their timeout or a signal.
        let compensation_mid_work = |s: &&String| {
            state.steps.get(s.as_str()).is_some_and(|st| st.compensation == CompensationStatus::Failed)
        };
        let ended_mid_work = undecided
            .iter()
            .filter(|s| mid_work.contains(&s.as_str()))
            .chain(undecided_compensations.iter().filter(compensation_mid_work))
            .cloned()
            .collect();
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

    /// Issue 14, point 5: every unfinished status keeps the lock; only an end lets it go.
    #[test]
    fn a_run_keeps_its_lock_until_it_has_finished() {
        for kept in ["running", "interrupted", "needs_operator", "from-a-newer-binary"] {
            assert!(run_keeps_its_lock(kept), "{kept}");
        }
        for ended in ["succeeded", "failed", "abandoned"] {
            assert!(!run_keeps_its_lock(ended), "{ended}");
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
            (Holder::Other("suspended: by hand".into()), "db-1", true, false, false),
            // An engine whose operator is named like a suspended run: alive, then gone.
            (
                Holder::parse("suspended: run X waits for approval of gate (pid 7 on db-1; process id)"),
                "db-1",
                false,
                false,
                false,
            ),
            (
                Holder::parse("suspended: run X waits for approval of gate (pid 7 on db-1; process id)"),
                "db-1",
                true,
                false,
                true,
            ),
            (Holder::Other("w1".into()), "db-1", true, false, false),
        ];
        for (holder, here, is_gone, suspended, dead) in cases {
            assert_eq!(holder.is_suspended(), suspended, "{holder}");
            let dead_now = if is_gone { holder.is_dead(here, gone) } else { holder.is_dead(here, alive) };
            assert_eq!(dead_now, dead, "{holder} on {here}");
            assert_eq!(holder.is_detached(here, if is_gone { gone } else { alive }), suspended || dead);
        }
    }

    #[test]
    fn the_runbook_as_started() {
        let f = |path: &str, sha: &str| FileHash { path: path.into(), sha256: sha.into() };
        let then = vec![f("/a/rb.toml", "1"), f("/a/q.sql", "2")];
        // (now, changes)
        let cases: Vec<(Vec<FileHash>, Vec<FileChange>)> = vec![
            (vec![f("rb.toml", "1"), f("q.sql", "2")], vec![]),
            (
                vec![f("rb.toml", "1"), f("q.sql", "3")],
                vec![FileChange::Changed { path: "/a/q.sql".into(), then: "2".into(), now: "3".into() }],
            ),
            (
                vec![f("rb.toml", "1")],
                vec![FileChange::NoLongerRead { path: "/a/q.sql".into(), sha256: "2".into() }],
            ),
            (
                vec![f("rb.toml", "1"), f("q.sql", "2"), f("ca.pem", "4")],
                vec![FileChange::NewlyRead { path: "ca.pem".into(), sha256: "4".into() }],
            ),
            // Order counts: the same digests elsewhere are other files.
            (
                vec![f("q.sql", "2"), f("rb.toml", "1")],
                vec![
                    FileChange::Changed { path: "/a/rb.toml".into(), then: "1".into(), now: "2".into() },
                    FileChange::Changed { path: "/a/q.sql".into(), then: "2".into(), now: "1".into() },
                ],
            ),
        ];
        for (now, changes) in cases {
            let expect = if changes.is_empty() { Ok(()) } else { Err(changes) };
            assert_eq!(check_as_started(&then, &now), expect, "{now:?}");
        }
    }

    /// adv19a-7: the first approval fixes the inputs; a later approval that repeats them
    /// counts, one that changes or adds a value counts for nothing (a record written past
    /// `approve`, with SQL, included).
    #[test]
    fn a_later_approval_approves_the_inputs_as_the_first_gave_them() {
        use std::collections::BTreeMap;

        use crate::journal::{Record, fold};
        let values = |pairs: &[(&str, serde_json::Value)]| -> BTreeMap<String, serde_json::Value> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        let granted = |by: &str, inputs: BTreeMap<String, serde_json::Value>| RunEvent::ApprovalGranted {
            step: "gate".into(),
            operator: by.into(),
            reason: String::new(),
            inputs,
        };
        let fold_of = |later: Vec<RunEvent>| {
            let mut all = vec![
                RunEvent::RunStarted {
                    runbook: "t".into(),
                    file: "/t.toml".into(),
                    files: vec![],
                    params: BTreeMap::new(),
                    operator: "ops".into(),
                    engine_version: "0".into(),
                    submitted_by: None,
                    log_digests: false,
                    report: Default::default(),
                },
                RunEvent::ApprovalRequested {
                    step: "gate".into(),
                    prompt: "purge?".into(),
                    approvers: vec![],
                    min_approvals: 2,
                    allow_self_approval: false,
                    requested_by: "ops".into(),
                    inputs: [
                        ("target".to_string(), "string".to_string()),
                        ("batch".to_string(), "integer".to_string()),
                    ]
                    .into_iter()
                    .collect(),
                    deadline_ms: None,
                    takes: None,
                },
                granted("bob", values(&[("target", "staging".into())])),
            ];
            all.extend(later);
            let mut prev = crate::journal::GENESIS.to_string();
            let records: Vec<Record> = all
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let r = Record::new("r", i as u64 + 1, "t", e, &prev);
                    prev = r.hash.clone();
                    r
                })
                .collect();
            fold(&records)
        };
        for (case, inputs, counts) in [
            ("no inputs", values(&[]), true),
            ("the same value", values(&[("target", "staging".into())]), true),
            ("another value", values(&[("target", "prod".into())]), false),
            ("a value the first left to its default", values(&[("batch", 100000.into())]), false),
            ("the same and another", values(&[("target", "staging".into()), ("batch", 5.into())]), false),
        ] {
            let folded = fold_of(vec![granted("carol", inputs)]);
            let gate = &folded.steps["gate"];
            let approval = gate.approval.as_ref().expect("the request");
            assert_eq!(approval.granted_by.len() == 2, counts, "{case}: {approval:?}");
            assert_eq!(folded.refused.is_empty(), counts, "{case}: {:?}", folded.refused);
            assert_eq!(folded.approval_inputs["gate"], values(&[("target", "staging".into())]), "{case}");
        }
        // The refusal names who and which input, never the value.
        let folded = fold_of(vec![granted("carol", values(&[("target", "prod-secret-ish".into())]))]);
        assert_eq!(
            folded.refused.iter().map(|r| r.why.as_str()).collect::<Vec<_>>(),
            [
                "the approval by `carol` gives input `target` after the first approval fixed the inputs; a later approval approves them as given"
            ]
        );
    }

    #[test]
    fn every_decision_case() {
        use std::collections::BTreeMap;

        use crate::journal::{Record, fold};
        let request = |approvers: &[&str], min: u32, allow_self: bool, deadline: Option<i64>| {
            RunEvent::ApprovalRequested {
                step: "gate".into(),
                prompt: "go?".into(),
                approvers: approvers.iter().map(|s| s.to_string()).collect(),
                min_approvals: min,
                allow_self_approval: allow_self,
                requested_by: "ops".into(),
                inputs: BTreeMap::new(),
                deadline_ms: deadline,
                takes: None,
            }
        };
        let granted = |by: &str| RunEvent::ApprovalGranted {
            step: "gate".into(),
            operator: by.into(),
            reason: String::new(),
            inputs: BTreeMap::new(),
        };
        let rejected = |by: &str| RunEvent::ApprovalRejected {
            step: "gate".into(),
            operator: by.into(),
            reason: "no".into(),
        };
        let state = |events: Vec<RunEvent>| {
            let mut all = vec![RunEvent::RunStarted {
                runbook: "t".into(),
                file: "/t.toml".into(),
                files: vec![],
                params: BTreeMap::new(),
                operator: "ops".into(),
                engine_version: "0".into(),
                submitted_by: Some("sub".into()),
                log_digests: false,
                report: Default::default(),
            }];
            all.extend(events);
            let mut prev = crate::journal::GENESIS.to_string();
            let records: Vec<Record> = all
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let r = Record::new("r", i as u64 + 1, "t", e, &prev);
                    prev = r.hash.clone();
                    r
                })
                .collect();
            fold(&records)
        };
        let step = |s: &str| s.to_string();
        let started = RunEvent::StepStarted { step: "work".into(), attempt: 1 };
        // (case, events, operator, now, judgement, message)
        type Case =
            (&'static str, Vec<RunEvent>, &'static str, i64, Result<(), DecisionRefusal>, &'static str);
        let cases: Vec<Case> = vec![
            ("anyone may approve", vec![request(&[], 1, false, None)], "ana", 0, Ok(()), ""),
            ("a named approver", vec![request(&["Ana"], 1, false, None)], " ana ", 0, Ok(()), ""),
            (
                "no such step",
                vec![],
                "ana",
                0,
                Err(DecisionRefusal::NoSuchStep { step: step("gate") }),
                "the run has no step `gate` waiting for approval",
            ),
            (
                "not an approval",
                vec![RunEvent::StepStarted { step: "gate".into(), attempt: 1 }],
                "ana",
                0,
                Err(DecisionRefusal::NotAnApproval { step: step("gate") }),
                "step `gate` is not an approval step",
            ),
            (
                "granted already",
                vec![request(&[], 1, false, None), granted("ana")],
                "bo",
                0,
                Err(DecisionRefusal::Approver(ApproverRefusal::Granted { by: vec![step("ana")] })),
                "the step was already approved (by ana)",
            ),
            (
                "timed out",
                vec![request(&[], 1, false, Some(1_000))],
                "ana",
                1_000,
                Err(DecisionRefusal::TimedOut { step: step("gate"), deadline_ms: 1_000 }),
                "the approval of `gate` timed out at 1970-01-01T00:00:01Z; the step fails when the run continues",
            ),
            (
                "not an identity",
                vec![request(&[], 1, false, None)],
                "",
                0,
                Err(DecisionRefusal::Approver(ApproverRefusal::NoIdentity(
                    "an identity cannot be empty".into(),
                ))),
                "an identity cannot be empty",
            ),
            (
                "not an approver",
                vec![request(&["ana", "bo"], 1, false, None)],
                "cy",
                0,
                Err(DecisionRefusal::Approver(ApproverRefusal::NotAnApprover {
                    operator: step("cy"),
                    approvers: vec![step("ana"), step("bo")],
                })),
                "`cy` is not among the approvers (ana, bo)",
            ),
            (
                "the starter",
                vec![request(&[], 1, false, None)],
                "OPS",
                0,
                Err(DecisionRefusal::Approver(ApproverRefusal::OwnRun { operator: step("OPS") })),
                "`OPS` started or submitted this run and may not approve its own steps (`allow-self-approval` is false)",
            ),
            (
                "the submitter",
                vec![request(&[], 1, false, None)],
                "sub",
                0,
                Err(DecisionRefusal::Approver(ApproverRefusal::OwnRun { operator: step("sub") })),
                "",
            ),
            ("self-approval allowed", vec![request(&[], 1, true, None)], "ops", 0, Ok(()), ""),
            (
                "one vote per person",
                vec![request(&[], 2, false, None), granted("ana")],
                "Ana",
                0,
                Err(DecisionRefusal::Approver(ApproverRefusal::AlreadyApprovedBy { operator: step("Ana") })),
                "`Ana` has already approved this step",
            ),
            ("quorum not reached", vec![request(&[], 2, false, None), granted("ana")], "bo", 0, Ok(()), ""),
            (
                "rejected",
                vec![request(&[], 2, false, None), rejected("ana")],
                "bo",
                0,
                Err(DecisionRefusal::Approver(ApproverRefusal::Rejected { by: step("ana") })),
                "the step was already rejected by `ana`",
            ),
            (
                "not waiting once work started elsewhere",
                vec![started],
                "bo",
                0,
                Err(DecisionRefusal::NoSuchStep { step: step("gate") }),
                "",
            ),
        ];
        for (name, events, operator, now, expect, message) in cases {
            let got = judge_decision(&state(events), "gate", operator, now);
            assert_eq!(got, expect, "{name}");
            if !message.is_empty() {
                assert_eq!(got.err().map(|e| e.to_string()).unwrap_or_default(), message, "{name}");
            }
        }
        // A step that is no longer waiting.
        let mut done = state(vec![request(&[], 1, false, None), granted("ana")]);
        if let Some(s) = done.steps.get_mut("gate") {
            s.status = StepStatus::Succeeded;
        }
        let got = judge_decision(&done, "gate", "bo", 0);
        assert_eq!(
            got,
            Err(DecisionRefusal::NotWaiting { step: step("gate"), status: StepStatus::Succeeded })
        );
        assert_eq!(
            got.err().map(|e| e.to_string()).unwrap_or_default(),
            "step `gate` is not waiting for approval (it is succeeded)"
        );
        // No decision counts on a finished run. adv13a finding 7: `compensate` ended a suspended run; its approval, still
        // `awaiting` in a journal from before the fix, was granted after `run_finished`.
        for status in [RunStatus::Failed, RunStatus::Succeeded] {
            let mut finished = state(vec![request(&[], 1, false, None)]);
            finished.apply(&RunEvent::RunFinished { status, preconditions: Vec::new() });
            let got = judge_decision(&finished, "gate", "bo", 0);
            assert_eq!(got, Err(DecisionRefusal::RunFinished { status }));
            assert_eq!(
                got.err().map(|e| e.to_string()).unwrap_or_default(),
                format!("the run has finished ({}): no decision counts any more", status.as_str())
            );
        }
        // Suspended or interrupted runs are not over: decisions count.
        for event in [
            RunEvent::RunSuspended { waiting: vec!["gate".into()] },
            RunEvent::RunInterrupted { reason: "signal".into() },
        ] {
            let mut open = state(vec![request(&[], 1, false, None)]);
            open.apply(&event);
            assert_eq!(judge_decision(&open, "gate", "bo", 0), Ok(()));
        }
    }

    #[test]
    fn pinned_plans() {
        let document = serde_json::json!({
            "engine": { "version": "1.0.0" },
            "runbook": { "file": "/rb/deploy.toml" },
            "files": [ { "path": "/rb/deploy.toml", "sha256": "aa" } ],
            "reads": [
                { "kind": "sql-script", "path": "/rb/q.sql", "sha256": "bb" },
                { "kind": "params-file", "path": "/rb/p.toml", "sha256": "cc" }
            ],
            "params": { "env": "prod", "replicas": 3 }
        });
        let plan = PinnedPlan::from_json(document.clone());
        let f = |path: &str, sha: &str| FileHash { path: path.into(), sha256: sha.into() };
        assert_eq!(plan.engine_version, "1.0.0");
        assert_eq!(plan.file.as_deref(), Some("/rb/deploy.toml"));
        assert_eq!(plan.files, vec![f("/rb/deploy.toml", "aa")]);
        assert_eq!(plan.reads, vec![f("/rb/q.sql", "bb"), f("/rb/p.toml", "cc")]);
        assert_eq!(plan.params_files, vec![f("/rb/p.toml", "cc")]);
        assert_eq!(plan.params, vec![("env".into(), "prod".into()), ("replicas".into(), "3".into())]);
        // Lenient: nothing pinned reads as empty; no file named is for the caller to refuse.
        let empty = PinnedPlan::from_json(serde_json::json!({ "files": "x" }));
        assert_eq!((empty.engine_version.as_str(), empty.file, empty.files), ("?", None, vec![]));

        let same = |p: &str| {
            Ok(match p {
                "/rb/deploy.toml" => "aa",
                "/rb/q.sql" => "bb",
                _ => "cc",
            }
            .to_string())
        };
        assert_eq!(verify_pinned_files(&plan, "1.0.0", same), Ok(()));
        let changed = |p: &str| match p {
            "/rb/q.sql" => Ok("dd".to_string()),
            "/rb/p.toml" => Err("gone".to_string()),
            _ => Ok("aa".to_string()),
        };
        assert_eq!(
            verify_pinned_files(&plan, "1.1.0", changed),
            Err(vec![
                PinChange::Engine { planned: "1.0.0".into(), now: "1.1.0".into() },
                PinChange::Changed { path: "/rb/q.sql".into(), then: "bb".into(), now: "dd".into() },
                PinChange::Unreadable { path: "/rb/p.toml".into(), error: "gone".into() },
            ])
        );

        let files = vec!["/rb/deploy.toml".to_string()];
        assert_eq!(verify_pinned(&plan, Some(&document), &files), Ok(()));
        let mut other = document.clone();
        other["params"]["env"] = "staging".into();
        assert_eq!(verify_pinned(&plan, Some(&other), &files), Err(PinMismatch::PlanDiffers));
        assert_eq!(verify_pinned(&plan, None, &files), Err(PinMismatch::PlanDiffers));
        let more = vec!["/rb/deploy.toml".to_string(), "/rb/inc.toml".to_string()];
        assert_eq!(verify_pinned(&plan, Some(&document), &more), Err(PinMismatch::OtherFiles));
    }

    mod resume {
        use std::collections::BTreeMap;
        use std::sync::Arc;

        use super::super::*;
        use crate::journal::{Record, fold};

        /// `a` undoable and stops the run on failure, `b` idempotent, `c` neither, `d`
        /// compensated on failure (the default), `bye` a `finally` step.
        const RUNBOOK: &str = r#"
[runbook]
name = "t"

[steps.a]
cmd = ["true"]
on-failure = "stop"
compensate = { cmd = ["true"] }

[steps.b]
cmd = ["true"]
idempotent = true
on-failure = "stop"

[steps.c]
cmd = ["true"]
on-failure = "stop"

[steps.d]
cmd = ["true"]
compensate = { cmd = ["true"], idempotent = true }

[finally.bye]
cmd = ["true"]
"#;

        fn runbook() -> Arc<Runbook> {
            let checked =
                crate::validate::check(crate::Source::new("t.toml", RUNBOOK), &crate::validate::NoIncludes);
            assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
            checked.runbook.unwrap_or_else(|| panic!("no runbook"))
        }

        fn state(events: Vec<RunEvent>) -> RunState {
            let mut prev = crate::journal::GENESIS.to_string();
            let mut all = vec![RunEvent::RunStarted {
                runbook: "t".into(),
                file: "/t.toml".into(),
                files: vec![],
                params: BTreeMap::new(),
                operator: "ops".into(),
                engine_version: "0".into(),
                submitted_by: None,
                log_digests: false,
                report: Default::default(),
            }];
            all.extend(events);
            let records: Vec<Record> = all
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let r = Record::new("r", i as u64 + 1, "t", e, &prev);
                    prev = r.hash.clone();
                    r
                })
                .collect();
            fold(&records)
        }

        fn started(step: &str) -> RunEvent {
            RunEvent::StepStarted { step: step.into(), attempt: 1 }
        }
        fn succeeded(step: &str) -> RunEvent {
            RunEvent::StepSucceeded {
                step: step.into(),
                attempt: 1,
                outputs: std::collections::BTreeMap::new(),
            }
        }
        fn failed(step: &str, reason: &str) -> RunEvent {
            RunEvent::StepFailed { step: step.into(), attempt: 1, reason: reason.into(), output: None }
        }
        fn names(v: &[&str]) -> Vec<String> {
            v.iter().map(|s| s.to_string()).collect()
        }

        struct Case {
            name: &'static str,
            events: Vec<RunEvent>,
            compensating: bool,
            ended: Option<RunStatus>,
            rerun: Vec<String>,
            skip: Vec<String>,
            undo: Vec<String>,
            reason: Option<&'static str>,
            expect: Result<ResumePlan, Refused>,
        }

        fn case(name: &'static str, events: Vec<RunEvent>) -> Case {
            Case {
                name,
                events,
                compensating: false,
                ended: None,
                rerun: vec![],
                skip: vec![],
                undo: vec![],
                reason: None,
                expect: Ok(ResumePlan::default()),
            }
        }

        fn refused(notes: Vec<Note>, refusal: Refusal) -> Result<ResumePlan, Refused> {
            Err(Refused { notes, refusal })
        }

        #[test]
        fn every_rule_of_resume_and_compensate() {
            let why = Some("checked by hand");
            let decision = |s: &str, d| (s.to_string(), d, "checked by hand".to_string());
            let cases = vec![
                Case {
                    ended: Some(RunStatus::Succeeded),
                    expect: refused(vec![], Refusal::Finished { status: RunStatus::Succeeded }),
                    ..case("finished", vec![])
                },
                Case {
                    ended: Some(RunStatus::NeedsOperator),
                    compensating: true,
                    ..case("compensate a finished run", vec![])
                },
                Case { ended: Some(RunStatus::Failed), ..case("a failed run goes on", vec![]) },
                Case {
                    ended: Some(RunStatus::Failed),
                    expect: Ok(ResumePlan {
                        notes: vec![Note::FailedRunAgain(names(&["c"]))],
                        ..Default::default()
                    }),
                    ..case("failed steps run again", vec![started("c"), failed("c", "exit 1")])
                },
                Case {
                    ended: Some(RunStatus::Failed),
                    expect: refused(vec![], Refusal::Compensated),
                    ..case("compensated", vec![started("d"), failed("d", "exit 1")])
                },
                Case {
                    expect: refused(vec![], Refusal::Compensating { undoing: vec![] }),
                    ..case(
                        "was compensating",
                        vec![
                            started("a"),
                            succeeded("a"),
                            RunEvent::CompensationStarted { step: "a".into(), attempt: 1 },
                        ],
                    )
                },
                case("idempotent step in doubt runs again", vec![started("b")]),
                Case {
                    expect: refused(
                        vec![],
                        Refusal::Undecided {
                            steps: names(&["c"]),
                            compensations: vec![],
                            ended_mid_work: vec![],
                            compensating: false,
                        },
                    ),
                    ..case("not idempotent in doubt", vec![started("c")])
                },
                Case {
                    ended: Some(RunStatus::Failed),
                    expect: refused(
                        vec![],
                        Refusal::Undecided {
                            steps: names(&["c"]),
                            compensations: vec![],
                            ended_mid_work: names(&["c"]),
                            compensating: false,
                        },
                    ),
                    ..case("ended mid-work", vec![started("c"), failed("c", crate::journal::TIMED_OUT)])
                },
                Case {
                    rerun: names(&["c"]),
                    reason: why,
                    expect: Ok(ResumePlan {
                        decisions: vec![decision("c", Decision::Rerun)],
                        ..Default::default()
                    }),
                    ..case("rerun decided", vec![started("c")])
                },
                Case {
                    skip: names(&["c"]),
                    reason: why,
                    expect: Ok(ResumePlan {
                        decisions: vec![decision("c", Decision::Skip)],
                        ..Default::default()
                    }),
                    ..case("skip decided", vec![started("c")])
                },
                Case {
                    skip: names(&["c"]),
                    reason: Some("  "),
                    expect: refused(vec![], Refusal::NoReason),
                    ..case("no reason", vec![started("c")])
                },
                Case {
                    rerun: names(&["c"]),
                    skip: names(&["c"]),
                    reason: why,
                    expect: refused(vec![], Refusal::RerunAndSkip { step: "c".into() }),
                    ..case("rerun and skip", vec![started("c")])
                },
                Case {
                    rerun: names(&["a"]),
                    reason: why,
                    expect: refused(vec![], Refusal::NotInDoubt { step: "a".into(), compensating: false }),
                    ..case("not in doubt", vec![started("c")])
                },
                Case {
                    undo: names(&["a"]),
                    reason: why,
                    expect: refused(vec![], Refusal::UndoInResume { step: "a".into() }),
                    ..case("undo in resume", vec![started("a")])
                },
                Case {
                    compensating: true,
                    undo: names(&["c"]),
                    reason: why,
                    expect: refused(vec![], Refusal::NotUndoable { step: "c".into() }),
                    ..case("undo without compensation", vec![started("c")])
                },
                Case {
                    compensating: true,
                    undo: names(&["a"]),
                    skip: names(&["a"]),
                    reason: why,
                    expect: refused(vec![], Refusal::UndoAndRerunOrSkip { step: "a".into() }),
                    ..case("undo and skip", vec![started("a")])
                },
                Case {
                    compensating: true,
                    expect: refused(vec![], Refusal::UndoUndecided { steps: names(&["a"]) }),
                    ..case("compensate with an undoable step in doubt", vec![started("a")])
                },
                Case {
                    compensating: true,
                    undo: names(&["a"]),
                    reason: why,
                    expect: Ok(ResumePlan {
                        decisions: vec![decision("a", Decision::Undo)],
                        ..Default::default()
                    }),
                    ..case("undo decided", vec![started("a")])
                },
                Case {
                    compensating: true,
                    expect: Ok(ResumePlan {
                        notes: vec![Note::DoubtWithoutCompensation(names(&["c"]))],
                        ..Default::default()
                    }),
                    ..case("compensate leaves a step in doubt without compensation", vec![started("c")])
                },
                Case {
                    compensating: true,
                    expect: refused(
                        vec![],
                        Refusal::Undecided {
                            steps: names(&["bye"]),
                            compensations: names(&["a"]),
                            ended_mid_work: vec![],
                            compensating: true,
                        },
                    ),
                    ..case(
                        "compensation and finally in doubt",
                        vec![
                            started("a"),
                            succeeded("a"),
                            RunEvent::CompensationStarted { step: "a".into(), attempt: 1 },
                            started("bye"),
                        ],
                    )
                },
                Case {
                    // adv13a finding 1 (variant): a compensation ended by its timeout was run
                    // again by `compensate` without a decision.
                    compensating: true,
                    ended: Some(RunStatus::NeedsOperator),
                    expect: refused(
                        vec![],
                        Refusal::Undecided {
                            steps: vec![],
                            compensations: names(&["a"]),
                            ended_mid_work: names(&["a"]),
                            compensating: true,
                        },
                    ),
                    ..case(
                        "compensation ended by its timeout",
                        vec![
                            started("a"),
                            succeeded("a"),
                            RunEvent::CompensationStarted { step: "a".into(), attempt: 1 },
                            RunEvent::CompensationFailed {
                                step: "a".into(),
                                reason: crate::journal::TIMED_OUT.into(),
                                output: None,
                            },
                        ],
                    )
                },
                Case {
                    compensating: true,
                    ..case(
                        "idempotent compensation in doubt runs again",
                        vec![
                            started("d"),
                            succeeded("d"),
                            RunEvent::CompensationStarted { step: "d".into(), attempt: 1 },
                        ],
                    )
                },
                Case {
                    compensating: true,
                    rerun: names(&["a"]),
                    reason: why,
                    expect: Ok(ResumePlan {
                        compensation_decisions: vec![decision("a", Decision::Rerun)],
                        ..Default::default()
                    }),
                    ..case(
                        "compensation rerun decided",
                        vec![
                            started("a"),
                            succeeded("a"),
                            RunEvent::CompensationStarted { step: "a".into(), attempt: 1 },
                        ],
                    )
                },
                Case {
                    ended: Some(RunStatus::Failed),
                    expect: refused(
                        vec![Note::FailedRunAgain(names(&["b"]))],
                        Refusal::Undecided {
                            steps: names(&["c"]),
                            compensations: vec![],
                            ended_mid_work: vec![],
                            compensating: false,
                        },
                    ),
                    ..case(
                        "notes come before a refusal",
                        vec![started("b"), failed("b", "exit 1"), started("c")],
                    )
                },
            ];
            let rb = runbook();
            for c in cases {
                let request = ResumeRequest {
                    compensating: c.compensating,
                    ended: c.ended,
                    rerun: &c.rerun,
                    skip: &c.skip,
                    undo: &c.undo,
                    reason: c.reason,
                };
                assert_eq!(assess_resume(&rb, &state(c.events), &request), c.expect, "{}", c.name);
            }
        }

        #[test]
        fn the_last_end_counts_unless_resumed_since() {
            let finished = |status| RunEvent::RunFinished { status, preconditions: vec![] };
            let resumed = RunEvent::RunResumed { operator: "o".into(), rerun_idempotent: vec![] };
            assert_eq!(last_end(Vec::<RunEvent>::new().iter()), None);
            assert_eq!(last_end([finished(RunStatus::Failed)].iter()), Some(RunStatus::Failed));
            assert_eq!(last_end([finished(RunStatus::Failed), resumed.clone()].iter()), None);
            assert_eq!(
                last_end([resumed, finished(RunStatus::Interrupted)].iter()),
                Some(RunStatus::Interrupted)
            );
        }
    }

    /// fxinclude's class: a decision the journal holds and that was carried out is named as
    /// carried out, for every kind of unit at every depth; one still in doubt (started again
    /// after the decision), one decided otherwise, one never decided are not.
    #[test]
    fn a_journaled_decision_carried_out_is_named_for_every_kind_of_unit() {
        let decided = |step: &str, decision, compensation: bool| {
            let (operator, reason) = ("o".to_string(), "r".to_string());
            let step = step.to_string();
            if compensation {
                RunEvent::CompensationDecision { step, decision, operator, reason }
            } else {
                RunEvent::OperatorDecision { step, decision, operator, reason }
            }
        };
        for unit in ["a", "inc/x", "inc/deeper/x", "inc/y"] {
            for compensation in [false, true] {
                for decision in [Decision::Rerun, Decision::Skip, Decision::Undo] {
                    let start = if compensation {
                        RunEvent::CompensationStarted { step: unit.into(), attempt: 1 }
                    } else {
                        RunEvent::StepStarted { step: unit.into(), attempt: 1 }
                    };
                    let end = if compensation {
                        RunEvent::CompensationSucceeded {
                            step: unit.into(),
                            outputs: std::collections::BTreeMap::new(),
                        }
                    } else {
                        RunEvent::StepSucceeded {
                            step: unit.into(),
                            attempt: 2,
                            outputs: std::collections::BTreeMap::new(),
                        }
                    };
                    let fold = |events: &[RunEvent]| {
                        let mut state = RunState::default();
                        for e in events {
                            state.apply(e);
                        }
                        state
                    };
                    let names = vec![unit.to_string()];
                    let done = vec![start.clone(), decided(unit, decision, compensation), start.clone(), end];
                    let again = vec![start.clone(), decided(unit, decision, compensation), start.clone()];
                    let context = format!("{unit} {decision:?} compensation={compensation}");
                    assert_eq!(carried_out(done.iter(), &fold(&done), &names, decision), names, "{context}");
                    assert!(
                        carried_out(again.iter(), &fold(&again), &names, decision).is_empty(),
                        "{context}"
                    );
                    let other = if decision == Decision::Skip { Decision::Rerun } else { Decision::Skip };
                    assert!(carried_out(done.iter(), &fold(&done), &names, other).is_empty(), "{context}");
                    let never = vec![start.clone()];
                    assert!(
                        carried_out(never.iter(), &fold(&never), &names, decision).is_empty(),
                        "{context}"
                    );
                }
            }
        }
    }

    /// Red team adv14a F5's class: every decision on every status, by one rule. An abandoned
    /// run takes none; a succeeded one only `compensate`; a failed one `resume` and
    /// `compensate`; an unfinished one every decision. `abandon` is open exactly where the
    /// run keeps its lock (what it ends is what holds the lock).
    #[test]
    fn one_rule_decides_which_decision_a_run_takes() {
        for decision in RunDecision::ALL {
            assert_eq!(check_open(decision, None), Ok(()), "{decision:?} on an unended run");
            for status in KNOWN_STATUSES {
                let expect = match (status, decision) {
                    (RunStatus::Running | RunStatus::Interrupted | RunStatus::NeedsOperator, _) => true,
                    (RunStatus::Abandoned, _) => false,
                    (RunStatus::Succeeded, d) => d == RunDecision::Compensate,
                    (RunStatus::Failed, d) => matches!(d, RunDecision::Resume | RunDecision::Compensate),
                };
                assert_eq!(check_open(decision, Some(status)).is_ok(), expect, "{decision:?} on {status:?}");
                if !expect {
                    assert_eq!(check_open(decision, Some(status)), Err(status));
                }
                if decision == RunDecision::Abandon {
                    assert_eq!(expect, run_keeps_its_lock(status.as_str()), "abandon on {status:?}");
                }
            }
        }
    }
}

/// A journaled parameter value of a run that no longer fits its declaration (its type,
/// enum or pattern): the run cannot go on with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournaledValue {
    /// The parameter.
    pub param: String,
    /// Why it does not fit.
    pub why: String,
}

/// The runbook a run goes on with: the runbook as the run started it (`runbook`, its
/// files checked by the caller) with its `for-each` steps as their instances, expanded
/// with the values journaled in `run_started` (`journaled`), each checked again as a new
/// run checks it. The one function that `runbook resume`, `runbook compensate` and the
/// console's decisions about steps in doubt judge a run against (class rule: a run is
/// judged against the steps it runs, never the runbook before its expansion). With the
/// checked values.
pub fn runbook_of_run(
    runbook: std::sync::Arc<Runbook>,
    journaled: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<RunbookOfRun, JournaledValue> {
    let mut values = std::collections::BTreeMap::new();
    for p in &runbook.params {
        let Some(json) = journaled.get(&p.name) else { continue };
        match crate::params::from_json(p.ty, json).and_then(|v| crate::params::check(p, &v).map(|()| v)) {
            Ok(v) => {
                values.insert(p.name.clone(), v);
            }
            Err(why) => return Err(JournaledValue { param: p.name.clone(), why }),
        }
    }
    let expanded = match crate::foreach::expand(&runbook, &values) {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(expanded) => Some(expanded),
    };
    Ok((expanded.map(std::sync::Arc::new).unwrap_or(runbook), values))
}

/// What [`runbook_of_run`] gives: the expanded runbook and the checked values.
pub type RunbookOfRun =
    (std::sync::Arc<Runbook>, std::collections::BTreeMap<String, crate::model::ParamValue>);

/// Why a worker drops an abandon with compensation asked from the console, instead of
/// carrying it out ([`judge_abandon_request`], red team adv18c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleAbandon {
    /// The run has finished (its status): someone else ended it.
    Finished(RunStatus),
    /// Records were journaled after the request (the first one's kind and who it names):
    /// another decision came first (a `runbook resume`, an approval, a decision).
    Moved {
        /// The journal's last record when the request was made.
        head: u64,
        /// The first record after it: its kind.
        kind: &'static str,
    },
    /// The store's identity mode records only the worker's own identity, and it is not the
    /// requester's: the journal would name the wrong operator.
    NotAttributable {
        /// Who asked.
        asked_by: String,
        /// Who this worker's engine would record.
        worker_acts_as: String,
    },
}

impl fmt::Display for StaleAbandon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleAbandon::Finished(status) => write!(f, "the run has finished ({})", status.as_str()),
            StaleAbandon::Moved { head, kind } => write!(
                f,
                "the run's journal moved on after the request (record {} is `{kind}`): another decision came first",
                head + 1
            ),
            StaleAbandon::NotAttributable { asked_by, worker_acts_as } => write!(
                f,
                "the store's identity mode is db-role and this worker records only `{worker_acts_as}`, not `{asked_by}` who asked; `{asked_by}` abandons it under their own role (`runbook abandon RUN --compensate`)"
            ),
        }
    }
}

/// Whether an abandon with compensation asked from the console still stands when a worker
/// claims it, judged from the journal alone: the run is unfinished, nothing was journaled
/// after `head` (the journal's last record when it was asked), and the worker's engine can
/// journal the requester's identity (`worker_acts_as`: `Some` when the store holds the
/// engine to its own identity, `db-role` mode). Identities compare by
/// [`crate::journal::identity_key`].
pub fn judge_abandon_request(
    records: &[crate::journal::Record],
    head: u64,
    asked_by: &str,
    worker_acts_as: Option<&str>,
) -> Result<(), StaleAbandon> {
    if let Some(me) = worker_acts_as
        && crate::journal::identity_key(me) != crate::journal::identity_key(asked_by)
    {
        return Err(StaleAbandon::NotAttributable {
            asked_by: asked_by.to_string(),
            worker_acts_as: me.to_string(),
        });
    }
    let status = crate::journal::fold(records).status;
    check_open(RunDecision::Abandon, status).map_err(StaleAbandon::Finished)?;
    if let Some(after) = records.iter().find(|r| r.seq > head) {
        return Err(StaleAbandon::Moved { head, kind: after.event.kind() });
    }
    Ok(())
}

#[cfg(test)]
mod abandon_request_tests {
    use super::*;
    use crate::journal::Record;

    fn journal(events: Vec<RunEvent>) -> Vec<Record> {
        let mut prev = crate::journal::GENESIS.to_string();
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let r = Record::new("r", i as u64 + 1, "2026-01-01T00:00:00Z", e, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn interrupted() -> RunEvent {
        RunEvent::RunInterrupted { reason: "SIGTERM".into() }
    }

    #[test]
    fn a_request_stands_only_on_the_journal_it_judged_and_for_an_identity_the_worker_records() {
        let asked = journal(vec![interrupted()]);
        assert_eq!(judge_abandon_request(&asked, 1, "bob", None), Ok(()));
        assert_eq!(judge_abandon_request(&asked, 1, " Bob ", Some("bob")), Ok(()));
        assert!(matches!(
            judge_abandon_request(&asked, 1, "bob", Some("wkr")),
            Err(StaleAbandon::NotAttributable { .. })
        ));
        let resumed = journal(vec![
            interrupted(),
            RunEvent::RunResumed { operator: "ana".into(), rerun_idempotent: vec![] },
        ]);
        assert_eq!(
            judge_abandon_request(&resumed, 1, "bob", None),
            Err(StaleAbandon::Moved { head: 1, kind: "run_resumed" })
        );
        // Moved past its own engine's records on a hand-back: it stands.
        assert_eq!(judge_abandon_request(&resumed, 2, "bob", None), Ok(()));
        let abandoned = journal(vec![
            interrupted(),
            RunEvent::RunAbandoned { operator: "ana".into(), reason: "x".into(), compensated: false },
        ]);
        assert_eq!(
            judge_abandon_request(&abandoned, 2, "bob", None),
            Err(StaleAbandon::Finished(RunStatus::Abandoned))
        );
    }
}
