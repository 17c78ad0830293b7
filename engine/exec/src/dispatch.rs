//! The dispatcher: the one loop that owns a run's state and writes its journal.
//!
//! Steps start as soon as their needs are satisfied, at most `max-parallel` at once. Each
//! attempt runs as a task that reports back over a channel; the dispatcher journals every
//! transition *before* acting on it (`step_started` is committed before the process is
//! spawned), decides retries with the core's retry maths, and on failure runs the
//! compensations of the steps that succeeded, in reverse order of completion.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use runbook_core::journal::{Record, RunEvent, RunStatus};
use runbook_core::model::{Action, OnFailure, ParamValue, Precondition, Runbook, Step, Template};
use runbook_core::retry::{self, AttemptEnd};
use runbook_core::template::{self, Mode};
use runbook_store::{Lease, Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::action::{self, Done, Outputs, Work};
use crate::output::Sink;
use crate::process::{self, Exit, Line, Spawn, Stream};
use crate::secrets::{Redactor, Secrets};
use crate::{http, sql};

/// Lines of output in flight between an attempt and its sink: the pipe readers wait (and
/// the step with them) when the sink falls behind, so memory stays bounded.
const LINES_IN_FLIGHT: usize = 64;

/// What the CLI hears about, to show progress. Secret values never reach it.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// A journal record was written.
    Recorded(Box<Record>),
    /// A step printed a line (already redacted).
    Output {
        /// Step id.
        step: String,
        /// Which stream.
        stream: Stream,
        /// The line.
        text: String,
    },
    /// Something the operator should know (a lock taken over).
    Notice(String),
    /// A retry will start after this wait.
    RetryScheduled {
        /// Step id.
        step: String,
        /// The wait.
        delay: Duration,
    },
}

/// Settings of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// The run's id.
    pub run_id: String,
    /// Who runs it.
    pub operator: String,
    /// Steps in flight at once (the runbook's `max-parallel` wins).
    pub max_parallel: usize,
    /// The runbook's folder: the default working directory.
    pub base_dir: PathBuf,
    /// Where step logs and output files go (one folder per run).
    pub run_dir: PathBuf,
    /// SIGTERM → SIGKILL grace period.
    pub grace: Duration,
    /// How long a lock lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Asks the operator a `confirm` question; `None` answers yes (`--yes`).
    pub confirm: Option<Confirm>,
    /// The runbook file (absolute), recorded for `resume`.
    pub runbook_file: PathBuf,
    /// Continue this run instead of starting one.
    pub resume: Option<Resume>,
    /// The helper that ends step processes if the engine dies (see [`process::Reaper`]).
    pub reaper: Option<Arc<process::Reaper>>,
    /// With `resume`: run no step, only the compensations of the steps that succeeded
    /// (`runbook compensate`).
    pub compensate_only: bool,
    /// Stay attached while approvals are pending (a terminal, or `--wait`) instead of
    /// suspending the run.
    pub wait_for_approvals: bool,
    /// Asks the operator to decide an approval inline, when the rules allow it.
    pub approve_inline: Option<ApproveInline>,
    /// How often an attached run looks for decisions made elsewhere.
    pub poll: Duration,
    /// For an included runbook: the prefix of its step ids in the journal (`rotate_api/`).
    pub prefix: String,
    /// For an included runbook: the lease of the run that includes it. Its events go into
    /// that run's journal, under `prefix`; it takes no lock and starts no run of its own.
    pub parent_lease: Option<Lease>,
    /// For an included runbook: the including run's redactor (it knows every secret of the
    /// run, the including runbook's too) and the secret variables to keep from its steps.
    pub inherited: Option<(Redactor, Vec<String>)>,
    /// The files besides runbooks that the run reads (SQL scripts, CA files) and their
    /// digests when the run was prepared: journaled with `run_started` after the runbook
    /// files, so that `resume` can refuse when one changed.
    pub reads: Vec<runbook_core::plan::FileHash>,
    /// Who submitted the run, for a queued run a worker executes: journaled with
    /// `run_started`, so that the submitter cannot approve the run's steps either.
    pub submitted_by: Option<String>,
}

/// An inline answer to an approval: approve or reject, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineAnswer {
    /// True to approve.
    pub approve: bool,
    /// Why.
    pub reason: String,
}

/// A way to ask the operator an approval question inline (blocking). `None`: no answer
/// here (the decision will come from `runbook approve`).
pub type ApproveInline = Arc<dyn Fn(&str) -> Option<InlineAnswer> + Send + Sync>;

/// What `resume` continues from: the folded journal and the operator's decisions.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The run's journal, folded.
    pub state: runbook_core::journal::RunState,
    /// When the run started.
    pub started_at: String,
    /// Decisions about steps in doubt: (step, decision, reason).
    pub decisions: Vec<(String, runbook_core::journal::Decision, String)>,
    /// Decisions about compensations in doubt: (step, decision, reason).
    pub compensation_decisions: Vec<(String, runbook_core::journal::Decision, String)>,
}

/// The lock a run holds: its runbook's `lock`, or a private one that tells `resume` whether
/// the run is still alive.
pub fn lock_name(runbook_lock: Option<String>, run_id: &str) -> String {
    runbook_lock.unwrap_or_else(|| format!("run:{run_id}"))
}

/// A way to ask the operator a yes/no question (blocking; run off the async threads).
pub type Confirm = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("run_id", &self.run_id).field("run_dir", &self.run_dir).finish()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Final status.
    pub status: RunStatus,
    /// Hash of the journal's last record: keep it elsewhere to detect a cut journal.
    pub last_hash: String,
    /// The outputs of its steps, later steps winning (what an including step may offer).
    pub outputs: Outputs,
    /// When it stopped to wait for approvals: the steps it waits on (journal paths).
    pub waiting: Vec<String>,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The store failed (or the lock is held by someone else).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A runbook-level precondition failed; nothing ran.
    #[error("preconditions failed; nothing ran:\n{}", .0.join("\n"))]
    Preconditions(Vec<String>),
    /// The runbook's `lock` name does not render with these values.
    #[error("cannot render the lock name: {0}")]
    LockName(String),
    /// A file the run needs could not be written.
    #[error("cannot prepare the run folder `{path}`: {error}")]
    RunDir {
        /// The folder.
        path: String,
        /// What failed.
        error: String,
    },
}

/// This machine's name.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// How the holder of a suspended run's lock begins.
pub const SUSPENDED: &str = "suspended: ";

/// True when a lock is held by a run that stopped to wait for approvals.
pub fn holder_is_suspended(holder: &str) -> bool {
    holder.starts_with(SUSPENDED)
}

/// How this engine names itself as a lock holder: `OPERATOR (pid N on HOST; process ID)`,
/// with the identity of [`process::process_identity`] (left out when `/proc` cannot say).
pub fn holder_name(operator: &str) -> String {
    let pid = std::process::id();
    match process::process_identity(pid as i32) {
        Some(id) => format!("{operator} (pid {pid} on {}; process {id})", hostname()),
        None => format!("{operator} (pid {pid} on {})", hostname()),
    }
}

/// True when a lock holder provably no longer runs: it names its process identity (see
/// [`holder_name`]) and that process is gone from this kernel boot and PID namespace. A
/// name, a pid and a host alone prove nothing (another PID namespace may reuse both): such a
/// holder's lease must expire.
pub fn holder_is_dead(holder: &str) -> bool {
    let Some(inner) = holder.rsplit_once("(pid ").map(|(_, rest)| rest.trim_end_matches(')')) else {
        return false;
    };
    let Some((pid, rest)) = inner.split_once(" on ") else { return false };
    let Ok(pid) = pid.trim().parse::<i32>() else { return false };
    let Some((host, identity)) = rest.split_once("; process ") else { return false };
    host.trim() == hostname() && process::identity_is_gone(pid, identity.trim())
}

/// Now as RFC 3339 (UTC, milliseconds) and as milliseconds since the epoch.
pub fn now() -> (String, i64) {
    let t = SystemTime::now();
    let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    (humantime::format_rfc3339_millis(t).to_string(), ms)
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting,
    Running,
    RetryWait,
    Succeeded,
    Failed,
    Skipped,
    /// An approval waiting for decisions.
    Awaiting,
}

enum Msg {
    Done {
        idx: usize,
        attempt: u32,
        done: Done,
        /// The last lines of its output (redacted).
        tail: Option<String>,
    },
    RetryDue {
        idx: usize,
    },
    /// The operator answered an approval on the terminal.
    Inline {
        idx: usize,
        answer: InlineAnswer,
    },
    /// An escalation's notification was attempted.
    Escalated {
        id: String,
        delivered: bool,
        error: Option<String>,
    },
    /// An included runbook (run as its own task) ended.
    Included {
        idx: usize,
        attempt: u32,
        result: Box<Result<Outcome, ExecError>>,
    },
}

/// One run of a validated runbook.
pub struct Dispatcher<'a> {
    runbook: &'a Runbook,
    params: &'a BTreeMap<String, ParamValue>,
    secrets: &'a Secrets,
    redactor: Redactor,
    store: &'a Store,
    opts: RunOptions,
    report: mpsc::UnboundedSender<Report>,
    lease: Option<Lease>,
    state: Vec<State>,
    attempts: Vec<u32>,
    /// Attempts a step had used before this resume gave it a new set (a failed step of a
    /// failed run): its retry policy counts from there.
    attempt_base: Vec<u32>,
    /// The run's journal, folded as it is written: the same fold `resume` and every report
    /// use. Outputs, the order of completion and compensations are read from it.
    journal: runbook_core::journal::RunState,
    /// Events folded into `journal` but not yet in the store: a step's success waits here
    /// for the next write (the start of the steps it freed), so that both take one
    /// transaction. Written before the dispatcher waits for anything.
    /// A new run not yet in the store: its row is written with its first records, at this
    /// start time.
    creating: Option<String>,
    deferred: Vec<RunEvent>,
    started_at: String,
    /// Included runbooks that stopped to wait for approvals, by step index: what they wait on.
    child_waiting: BTreeMap<usize, Vec<String>>,
    /// The task that renews the lease while this engine holds it (a run of its own only).
    renewal: Option<Renewal>,
}

/// The lease's renewal: a task of its own, so nothing the dispatcher awaits (a `finally`
/// step, a compensation, a precondition, a slow store) can delay it. Each round it first
/// arms the reaper's watchdog, then renews the lease; a refused renewal (the lock was taken)
/// kills every step process group at once and says so on `lost`. Dropped (aborted) when the
/// engine lets the lock go or suspends it.
struct Renewal {
    task: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<bool>,
    error: Arc<std::sync::Mutex<Option<StoreError>>>,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How often the lease is renewed, and how long the reaper lets step processes live without
/// news from the engine: a quarter and three quarters of the lease. The watchdog's clock
/// starts after the renewal was sent and the store's lease after it arrived, so the step
/// processes of a stalled engine are killed a quarter of a lease before anyone else may take
/// the lease.
pub fn renewal_times(ttl: Duration) -> (Duration, Duration) {
    (ttl / 4, ttl * 3 / 4)
}

/// Waits until `flag` turns `true`; never, without one.
async fn until_true(flag: &mut Option<watch::Receiver<bool>>) {
    match flag {
        Some(f) => {
            if f.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

impl std::fmt::Debug for Dispatcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("run_id", &self.opts.run_id).finish()
    }
}

impl<'a> Dispatcher<'a> {
    /// Prepare a run. Nothing happens until [`Dispatcher::run`].
    pub fn new(
        runbook: &'a Runbook,
        params: &'a BTreeMap<String, ParamValue>,
        secrets: &'a Secrets,
        store: &'a Store,
        opts: RunOptions,
        report: mpsc::UnboundedSender<Report>,
    ) -> Self {
        Dispatcher {
            runbook,
            params,
            secrets,
            redactor: opts.inherited.as_ref().map_or_else(|| Redactor::new(secrets), |(r, _)| r.clone()),
            store,
            opts,
            report,
            lease: None,
            state: vec![State::Waiting; runbook.steps.len()],
            attempts: vec![0; runbook.steps.len()],
            attempt_base: vec![0; runbook.steps.len()],
            journal: runbook_core::journal::RunState::default(),
            deferred: Vec::new(),
            creating: None,
            started_at: String::new(),
            child_waiting: BTreeMap::new(),
            renewal: None,
        }
    }

    /// Start renewing the lease just taken (see [`Renewal`]).
    fn start_renewal(&mut self) {
        let Some(lease) = self.lease.clone() else { return };
        let (tx, lost) = watch::channel(false);
        let error = Arc::new(std::sync::Mutex::new(None));
        let store = self.store.clone();
        let reaper = self.opts.reaper.clone();
        let ttl = self.opts.lease_ttl;
        let kept = error.clone();
        let task = tokio::spawn(async move {
            let (period, watchdog) = renewal_times(ttl);
            loop {
                tokio::time::sleep(period).await;
                if let Some(r) = &reaper {
                    // A dead reaper is seen by the dispatcher through `Reaper::gone`.
                    let _ = r.watch(watchdog);
                }
                // The store's clock, not this host's: every engine judges leases by it.
                let renewed = match store.clock_ms().await {
                    Ok(ms) => store.renew_lock(&lease, ms, ttl).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = renewed {
                    if let Some(r) = &reaper {
                        let _ = r.kill_all();
                    }
                    if let Ok(mut slot) = kept.lock() {
                        *slot = Some(e);
                    }
                    let _ = tx.send(true);
                    return;
                }
            }
        });
        self.renewal = Some(Renewal { task, lost, error });
    }

    /// Why the renewal stopped.
    fn lost_lease(&mut self) -> ExecError {
        let kept = self.renewal.take().and_then(|r| r.error.lock().ok().and_then(|mut e| e.take()));
        match kept {
            Some(e) => e.into(),
            None => ExecError::Store(StoreError::Fenced {
                run_id: self.opts.run_id.clone(),
                lock: self.lease.as_ref().map(|l| l.name.clone()).unwrap_or_default(),
                fence: self.lease.as_ref().map_or(0, |l| l.fence),
                current: 0,
            }),
        }
    }

    /// Carry out the run. `cancel` turning `true` interrupts it (Ctrl-C, SIGTERM).
    pub async fn run(mut self, mut cancel: watch::Receiver<bool>) -> Result<Outcome, ExecError> {
        crate::output::private_dir(&self.opts.run_dir).map_err(|e| ExecError::RunDir {
            path: self.opts.run_dir.display().to_string(),
            error: e.to_string(),
        })?;
        let nested = self.opts.parent_lease.is_some();
        if nested {
            self.start_nested(&cancel).await?;
        } else {
            self.start_top(&cancel).await?;
            // This engine holds the run now: values a dead engine's steps left in their
            // `$RUNBOOK_OUTPUT` files are removed (issue 11, promise 3).
            crate::output::remove_outputs_files(&self.opts.run_dir);
        }
        if self.opts.compensate_only {
            let mut status =
                if self.compensate(&cancel).await? { RunStatus::Failed } else { RunStatus::NeedsOperator };
            if !nested {
                if !self.finally(status, &cancel).await? {
                    status = RunStatus::NeedsOperator;
                }
                self.record(RunEvent::RunFinished { status, preconditions: Vec::new() }).await?;
                self.release().await;
            }
            return Ok(self.outcome(status));
        }

        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let (cancel_tx, attempt_cancel) = watch::channel(false);
        let mut running = 0usize;
        let mut waiting_retry = 0usize;
        let mut stopping = false;
        let mut interrupted = false;
        let mut failed_compensate = false;
        // A resumed run whose failed steps stay failed (an included runbook that undid
        // itself) is a failed run, whatever the rest does.
        let mut any_failed = self.state.iter().any(|s| matches!(s, State::Failed));
        let mut suspended = false;
        let max_parallel = self.runbook.max_parallel.map_or(self.opts.max_parallel, |m| m as usize).max(1);
        let mut lost = self.renewal.as_ref().map(|r| r.lost.clone());
        let mut reaper_gone = self.opts.reaper.as_ref().map(|r| r.gone());
        let mut interrupt_reason = "interrupted by a signal (Ctrl-C or SIGTERM)";
        let mut poll = tokio::time::interval(self.opts.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Decisions already in the journal (made while the run was suspended) are folded.
        let mut decisions_seen = self.journal.last_seq;
        let started = humantime::parse_rfc3339(&self.started_at).unwrap_or_else(|_| SystemTime::now());
        let mut escalating: Vec<String> = Vec::new();

        loop {
            if !stopping {
                // Start what is ready, in declaration order, up to the parallel limit.
                let mut progressed = true;
                while progressed && running < max_parallel {
                    progressed = false;
                    for idx in 0..self.runbook.steps.len() {
                        if running >= max_parallel || self.state[idx] != State::Waiting {
                            continue;
                        }
                        let outcome = match self.readiness(idx) {
                            Readiness::NotYet => continue,
                            Readiness::Blocked(reason) => {
                                self.skip(idx, reason).await?;
                                progressed = true;
                                continue;
                            }
                            Readiness::Ready => {
                                progressed = true;
                                self.begin(idx, &attempt_cancel, &tx, &cancel).await?
                            }
                        };
                        match outcome {
                            Begun::Spawned => running += 1,
                            Begun::Include => running += 1,
                            Begun::Skipped | Begun::Awaiting => {}
                            Begun::Failed => {
                                any_failed = true;
                                self.on_failure(idx, &mut stopping, &mut failed_compensate);
                            }
                        }
                    }
                }
            }
            // Approvals: fold decisions made anywhere, then settle what they decide.
            if !stopping && self.state.contains(&State::Awaiting) {
                decisions_seen = self.fold_decisions(decisions_seen).await?;
                let mut settled = false;
                for idx in 0..self.state.len() {
                    if self.state[idx] != State::Awaiting {
                        continue;
                    }
                    match self.settle_approval(idx).await? {
                        None => {}
                        Some(true) => settled = true,
                        Some(false) => {
                            settled = true;
                            any_failed = true;
                            self.on_failure(idx, &mut stopping, &mut failed_compensate);
                        }
                    }
                }
                if settled {
                    // Steps may have become ready.
                    continue;
                }
            }
            let awaiting = self.state.contains(&State::Awaiting);
            if running == 0 && (waiting_retry == 0 || stopping) {
                if !awaiting || stopping {
                    break;
                }
                if !self.opts.wait_for_approvals {
                    suspended = true;
                    break;
                }
            }
            // Nothing waits in memory while the dispatcher waits.
            self.flush().await?;
            let next_escalation = self.next_escalation(started, &escalating);
            tokio::select! {
                Some(msg) = rx.recv() => match msg {
                    Msg::RetryDue { idx } => {
                        waiting_retry -= 1;
                        if !stopping && self.state[idx] == State::RetryWait {
                            self.attempt(idx, &attempt_cancel, &tx).await?;
                            running += 1;
                        }
                    }
                    Msg::Done { idx, attempt, done, tail } => {
                        running -= 1;
                        match self.finish_attempt(idx, attempt, done, tail, interrupted, &tx).await? {
                            AttemptResult::Succeeded | AttemptResult::Interrupted => {}
                            AttemptResult::Retrying => waiting_retry += 1,
                            AttemptResult::Failed => {
                                any_failed = true;
                                self.on_failure(idx, &mut stopping, &mut failed_compensate);
                            }
                        }
                    }
                    Msg::Inline { idx, answer } => {
                        if self.state[idx] == State::Awaiting {
                            let step = format!("{}{}", self.opts.prefix, self.runbook.steps[idx].id);
                            let operator = self.opts.operator.clone();
                            if let Err(e) = self.decide(&step, &operator, answer.approve, &answer.reason, BTreeMap::new()).await {
                                let _ = self.report.send(Report::Notice(format!("your answer to `{step}` was not recorded: {e}")));
                            }
                            poll.reset_immediately();
                        }
                    }
                    Msg::Escalated { id, delivered, error } => {
                        self.record(RunEvent::EscalationFired { escalation: id, delivered, error }).await?;
                    }
                    Msg::Included { idx, attempt, result } => {
                        running -= 1;
                        if self.finish_include(idx, attempt, *result, interrupted).await? == AttemptResult::Failed {
                            any_failed = true;
                            self.on_failure(idx, &mut stopping, &mut failed_compensate);
                        }
                    }
                },
                _ = poll.tick(), if awaiting => {}
                _ = sleep_until(next_escalation), if next_escalation.is_some() => {
                    if let Some(id) = self.due_escalation(started, &escalating) {
                        escalating.push(id.clone());
                        self.escalate(&id, &tx);
                    }
                }
                changed = cancel.changed(), if !interrupted => {
                    if changed.is_err() || *cancel.borrow() {
                        interrupted = true;
                        stopping = true;
                        let _ = cancel_tx.send(true);
                    }
                }
                () = until_true(&mut lost) => {
                    // Another engine took the lock: the reaper killed every step process
                    // group; end every attempt. Our writes are refused anyway.
                    let _ = cancel_tx.send(true);
                    return Err(self.lost_lease());
                }
                () = until_true(&mut reaper_gone), if !interrupted => {
                    // Steps started from now on would not be tied to the engine: end the
                    // running ones and start nothing more; the run is interrupted (journaled).
                    interrupted = true;
                    stopping = true;
                    interrupt_reason = "the process reaper died: steps would no longer be tied to the engine";
                    let _ = cancel_tx.send(true);
                }
            }
        }
        // What the loop deferred (the success of the last steps) is written before anything
        // else happens: an included runbook ends here without a record of its own.
        self.flush().await?;
        // Escalations already on their way are journaled before the run ends.
        while escalating.len() > self.journal.escalations_fired.len() {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(Msg::Escalated { id, delivered, error })) => {
                    self.record(RunEvent::EscalationFired { escalation: id, delivered, error }).await?;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }

        if interrupted {
            if !nested {
                self.record(RunEvent::RunInterrupted { reason: interrupt_reason.into() }).await?;
                self.release().await;
            }
            return Ok(self.outcome(RunStatus::Interrupted));
        }
        if suspended {
            let waiting = self.waiting();
            if !nested {
                self.record(RunEvent::RunSuspended { waiting: waiting.clone() }).await?;
                // The environment stays taken while people decide: a suspended run is not over.
                self.renewal = None;
                if let Some(lease) = self.lease.take() {
                    let holder = format!(
                        "{SUSPENDED}run {} waits for approval of {} (`runbook resume {}` continues it, `runbook compensate {}` ends it)",
                        self.opts.run_id,
                        waiting.join(", "),
                        self.opts.run_id,
                        self.opts.run_id
                    );
                    self.store.suspend_lock(&lease, &holder).await?;
                }
            }
            return Ok(Outcome { waiting, ..self.outcome(RunStatus::NeedsOperator) });
        }
        // Approvals still open when the run stops after a failure will never be needed.
        for idx in 0..self.state.len() {
            if self.state[idx] == State::Awaiting {
                self.skip(idx, "the run stopped before a decision was needed".into()).await?;
            }
        }
        let mut status = if any_failed { RunStatus::Failed } else { RunStatus::Succeeded };
        if failed_compensate && !self.compensate(&cancel).await? {
            status = RunStatus::NeedsOperator;
        }
        if !self.finally(status, &cancel).await? {
            status = RunStatus::NeedsOperator;
        }
        if !nested {
            self.record(RunEvent::RunFinished { status, preconditions: Vec::new() }).await?;
            self.release().await;
        }
        Ok(self.outcome(status))
    }

    fn outcome(&self, status: RunStatus) -> Outcome {
        let mut outputs = Outputs::new();
        for id in &self.journal.completed {
            if let Some(s) = self.journal.steps.get(id) {
                outputs.extend(s.outputs.clone());
            }
        }
        Outcome { status, last_hash: self.last_hash(), outputs, waiting: Vec::new() }
    }

    /// Steps waiting for approval, as journal paths (an included runbook's under its step).
    fn waiting(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in self.state.iter().enumerate() {
            if *s == State::Awaiting {
                let id = &self.runbook.steps[i].id;
                match self.child_waiting.get(&i) {
                    Some(inner) => out.extend(inner.iter().cloned()),
                    None => out.push(format!("{}{id}", self.opts.prefix)),
                }
            }
        }
        out
    }

    /// A run of its own: take the lock, create the run (or resume it), check the runbook's
    /// preconditions.
    async fn start_top(&mut self, cancel: &watch::Receiver<bool>) -> Result<(), ExecError> {
        let (now_ts, _) = now();
        // The lock first: a second run on the same environment must not even check. Every
        // run holds one (a private `run:ID` lock without `lock`), so `resume` can tell a
        // live run from a dead one.
        let runbook_lock = match &self.runbook.lock {
            Some(t) => Some(self.render(t, Mode::Plain, None).map_err(ExecError::LockName)?),
            None => None,
        };
        let lock = lock_name(runbook_lock.clone(), &self.opts.run_id);
        let resume = self.opts.resume.take();
        match &resume {
            None => self.started_at = now_ts.clone(),
            Some(r) => self.started_at = r.started_at.clone(),
        }
        let holder = holder_name(&self.opts.operator);
        // One engine per run, decided by the store in the acquiring transaction: a live
        // holder refuses this engine even if it carries out the same run, and the journal
        // must still end where this engine read it (a resume) or not exist (a new run).
        let head = match &resume {
            Some(r) => runbook_store::Head::At(r.state.last_seq),
            None => runbook_store::Head::New,
        };
        // Leases are judged by the store's clock (one clock for every engine), not this host's.
        let now_ms = self.store.clock_ms().await?;
        let mut acquire = runbook_store::Acquire {
            name: &lock,
            run_id: &self.opts.run_id,
            holder: &holder,
            now: &now_ts,
            now_ms,
            ttl: self.opts.lease_ttl,
            steal_from: None,
            head,
        };
        let mut stolen = false;
        // The watchdog is armed before the lease exists (see `renewal_times`).
        if let Some(r) = &self.opts.reaper {
            let _ = r.watch(renewal_times(self.opts.lease_ttl).1);
        }
        let lease = match self.store.acquire(&acquire).await {
            Err(StoreError::LockHeld(h)) if holder_is_dead(&h.holder) => {
                stolen = true;
                // A process on this host that no longer exists cannot be running the step.
                let _ = self.report.send(Report::Notice(format!(
                    "taking over lock `{lock}` from run {} ({}): that process is gone",
                    h.run_id, h.holder
                )));
                acquire.steal_from = Some(&h.holder);
                self.store.acquire(&acquire).await?
            }
            other => other?,
        };
        if let Some(prev) = &lease.took_over
            && prev.run_id != self.opts.run_id
            && !stolen
        {
            let _ = self.report.send(Report::Notice(format!(
                "took over the expired lock `{lock}` of run {} ({})",
                prev.run_id, prev.holder
            )));
        }
        self.lease = Some(lease);
        self.start_renewal();
        // Only now, with the lock held, does a new run exist, and only with its first
        // record (`Store::start_run`, one transaction): a refused run, or an engine that dies
        // while starting, leaves no trace.
        if resume.is_none() {
            self.creating = Some(now_ts.clone());
        }

        match resume {
            None => {
                let files: Vec<runbook_core::plan::FileHash> = self
                    .runbook
                    .sources()
                    .iter()
                    .map(|s| runbook_core::plan::FileHash {
                        path: s.path.clone(),
                        sha256: runbook_core::plan::sha256_hex(&s.text),
                    })
                    .chain(self.opts.reads.iter().cloned())
                    .collect();
                let params =
                    self.params.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()));
                self.record(RunEvent::RunStarted {
                    runbook: self.runbook.name.clone(),
                    file: self.opts.runbook_file.display().to_string(),
                    files,
                    params: params.collect(),
                    operator: self.opts.operator.clone(),
                    engine_version: runbook_core::ENGINE_VERSION.to_string(),
                    submitted_by: self.opts.submitted_by.clone(),
                    log_digests: true,
                    report: self.runbook.report.clone(),
                })
                .await?;
                self.gate(cancel).await?;
            }
            Some(r) => {
                // The journal says a run passed its preconditions by the record of a step
                // (no step starts before they all pass). A run without one (the engine died
                // while checking them, or they failed) checks them again before any step
                // (ARCHITECTURE.md, "a gate counts once journaled").
                let unchecked = r.state.steps.is_empty() && !self.opts.compensate_only;
                self.restore(r).await?;
                if unchecked {
                    self.gate(cancel).await?;
                }
            }
        }
        Ok(())
    }

    /// Check the runbook's preconditions: any failure and no step runs; the run ends failed,
    /// with what failed and what it printed journaled.
    async fn gate(&mut self, cancel: &watch::Receiver<bool>) -> Result<(), ExecError> {
        let mut failures = Vec::new();
        for p in &self.runbook.preconditions {
            if let Err((message, output)) = self.check(p, None, cancel).await {
                failures.push(with_output(message, output.as_deref()));
            }
        }
        if !failures.is_empty() {
            let preconditions = failures.clone();
            self.record(RunEvent::RunFinished { status: RunStatus::Failed, preconditions }).await?;
            self.release().await;
            return Err(ExecError::Preconditions(failures));
        }
        Ok(())
    }

    /// An included runbook: it writes into the including run's journal with that run's lease.
    async fn start_nested(&mut self, cancel: &watch::Receiver<bool>) -> Result<(), ExecError> {
        self.lease = self.opts.parent_lease.clone();
        match self.opts.resume.take() {
            Some(r) => {
                self.started_at = r.started_at.clone();
                self.restore(r).await?;
            }
            None => {
                self.started_at = now().0;
                let mut failures = Vec::new();
                for p in &self.runbook.preconditions {
                    if let Err((message, output)) = self.check(p, None, cancel).await {
                        failures.push(with_output(message, output.as_deref()));
                    }
                }
                if !failures.is_empty() {
                    return Err(ExecError::Preconditions(failures));
                }
            }
        }
        Ok(())
    }

    /// What a failed step's `on-failure` means for the run.
    fn on_failure(&self, idx: usize, stopping: &mut bool, failed_compensate: &mut bool) {
        match self.runbook.steps[idx].on_failure {
            OnFailure::Continue => {}
            OnFailure::Stop => *stopping = true,
            OnFailure::Compensate => {
                *stopping = true;
                *failed_compensate = true;
            }
        }
    }

    /// Seed the run's state from its journal, and journal the operator's decisions.
    /// Succeeded steps keep their outputs and never run again; idempotent steps in doubt
    /// run again; the others were decided by the operator (checked by the caller).
    async fn restore(&mut self, r: Resume) -> Result<(), ExecError> {
        use runbook_core::journal::{Decision, StepStatus};
        // Resuming a run that failed (and was not compensated) gives its failed steps a new
        // set of attempts, and the steps they held back (skipped) another chance; steps an
        // operator skipped stay skipped, and `when` is evaluated again.
        let retry_failed = !self.opts.compensate_only;
        // A `runbook` step whose included runbook undid itself (its compensations ran, or
        // started) stays failed: going on would run the rest of a runbook whose completed
        // steps were undone. Its step's `on-failure` already decided what this run did next.
        let mut undone = vec![false; self.runbook.steps.len()];
        let failed_includes: Vec<usize> = (0..self.runbook.steps.len())
            .filter(|&idx| {
                let step = &self.runbook.steps[idx];
                matches!(step.action, Action::Runbook(_))
                    && r.state.steps.get(step.id.as_str()).is_some_and(|s| s.status == StepStatus::Failed)
            })
            .collect();
        if retry_failed && !failed_includes.is_empty() {
            let whole = runbook_core::journal::fold(&self.store.records(&self.opts.run_id).await?);
            for idx in failed_includes {
                let step = &self.runbook.steps[idx];
                let Action::Runbook(inc) = &step.action else { continue };
                let Some(child) = self.runbook.includes.get(inc.child) else { continue };
                let scoped = whole.scoped(&format!("{}{}/", self.opts.prefix, step.id));
                undone[idx] = child.undid_itself(&scoped);
            }
        }
        for (idx, step) in self.runbook.steps.iter().enumerate() {
            let Some(s) = r.state.steps.get(step.id.as_str()) else { continue };
            self.attempts[idx] = s.attempts;
            // An approval step is done only on decisions its request's rules count: a success
            // or a skip journaled without them (a forged record) asks again.
            let unapproved = matches!(step.action, Action::Approval(_))
                && matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped)
                && !s.skipped_by_operator()
                && !s.approval.as_ref().is_some_and(|a| a.is_granted());
            self.state[idx] = match s.status {
                _ if unapproved => State::Waiting,
                StepStatus::Succeeded => State::Succeeded,
                StepStatus::Skipped if retry_failed && !s.skipped_by_operator() => State::Waiting,
                StepStatus::Skipped => State::Skipped,
                // One ended by its timeout, a cancellation or a signal may have done part of
                // its work: again only if idempotent or by an operator's decision.
                StepStatus::Failed
                    if retry_failed
                        && !undone[idx]
                        && (step.idempotent
                            || !s.reason.as_deref().is_some_and(runbook_core::journal::ended_mid_work)
                            || r.decisions.iter().any(|(d, _, _)| d == step.id.as_str())) =>
                {
                    self.attempt_base[idx] = s.attempts;
                    State::Waiting
                }
                StepStatus::Failed => State::Failed,
                // An approval still waiting is asked again (not twice journaled) by `begin`.
                StepStatus::Pending
                | StepStatus::Started
                | StepStatus::Retrying
                | StepStatus::AwaitingApproval => State::Waiting,
            };
        }
        self.journal = r.state.clone();
        if self.opts.parent_lease.is_some() {
            // An included runbook: the including run journaled the resumption and the
            // decisions (under this runbook's prefix), and they are already in `state`.
            return Ok(());
        }
        // Compensating runs no main step again; its `finally` steps follow the usual rules.
        let runs_again =
            |id: &str| !self.opts.compensate_only || self.runbook.finally.iter().any(|f| f.id.as_str() == id);
        let rerun_idempotent: Vec<String> = self
            .journal
            .in_doubt()
            .into_iter()
            .filter(|id| runs_again(id) && !r.decisions.iter().any(|(d, _, _)| d == id))
            .map(str::to_string)
            .collect();
        self.record(RunEvent::RunResumed { operator: self.opts.operator.clone(), rerun_idempotent }).await?;
        for (step, decision, reason) in r.decisions {
            // A decision about a step of an included runbook (`include/step`) is journaled
            // here; the included runbook reads it back when it resumes.
            if self.runbook.find_step(&step).is_none() {
                continue;
            }
            self.record(RunEvent::OperatorDecision {
                step: step.clone(),
                decision,
                operator: self.opts.operator.clone(),
                reason: reason.clone(),
            })
            .await?;
            match (decision, self.index(&step)) {
                (Decision::Skip, Some(idx)) => self.state[idx] = State::Skipped,
                // It took effect (the operator said so): completed, so `compensate` undoes it.
                (Decision::Undo, Some(idx)) => self.state[idx] = State::Succeeded,
                (Decision::Rerun, _) | (_, None) => {}
            }
        }
        for (step, decision, reason) in r.compensation_decisions {
            if self.runbook.find_step(&step).is_none() {
                continue;
            }
            self.record(RunEvent::CompensationDecision {
                step,
                decision,
                operator: self.opts.operator.clone(),
                reason,
            })
            .await?;
        }
        Ok(())
    }

    fn last_hash(&self) -> String {
        self.journal.last_hash.clone().unwrap_or_else(|| runbook_core::journal::GENESIS.to_string())
    }

    async fn release(&mut self) {
        if self.opts.parent_lease.is_some() {
            // The lock is the including run's.
            return;
        }
        self.renewal = None;
        if let Some(lease) = self.lease.take() {
            let _ = self.store.release_lock(&lease).await;
        }
    }

    async fn record(&mut self, event: RunEvent) -> Result<(), ExecError> {
        self.defer(event);
        self.flush().await
    }

    /// Fold an event now and write it with the next record (or [`Dispatcher::flush`]).
    /// Every string of every event passes the redactor here, once, whatever produced it
    /// (a failure reason quoting a rendered template, an output, a message).
    fn defer(&mut self, event: RunEvent) {
        let event = self.redactor.redact_event(event);
        self.journal.apply(&event);
        self.deferred.push(event.with_step_prefix(&self.opts.prefix));
    }

    /// Write the deferred events, in one transaction.
    async fn flush(&mut self) -> Result<(), ExecError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let (ts, _) = now();
        let events = std::mem::take(&mut self.deferred);
        let records = match self.creating.take() {
            Some(started_at) => {
                let lock_name = self.lease.as_ref().map(|l| l.name.clone());
                let run = runbook_store::NewRun {
                    run_id: &self.opts.run_id,
                    runbook: &self.runbook.name,
                    operator: &self.opts.operator,
                    started_at: &started_at,
                    lock_name: lock_name.as_deref(),
                };
                let started = self.store.start_run(&run, &events, self.lease.as_ref()).await;
                if started.is_err() {
                    self.release().await;
                }
                started?
            }
            None => self.store.append_all(&self.opts.run_id, &ts, &events, self.lease.as_ref()).await?,
        };
        for record in records {
            self.journal.last_seq = record.seq;
            self.journal.last_hash = Some(record.hash.clone());
            let _ = self.report.send(Report::Recorded(Box::new(record)));
        }
        Ok(())
    }

    /// The environment variables every step of this run loses (secret sources).
    fn secret_env(&self) -> Vec<String> {
        let mut vars = self.runbook.secret_env_vars();
        if let Some((_, inherited)) = &self.opts.inherited {
            vars.extend(inherited.iter().cloned());
        }
        vars
    }

    /// A step's name in the run folder's file names: its journal path with `/` as `+`
    /// (`rotate_api+prune.1.log`), so the steps of two includes of one runbook stay apart.
    fn stem(&self, id: &str) -> String {
        format!("{}{id}", self.opts.prefix).replace('/', "+")
    }

    /// The template context with real values (secret values included: they only reach
    /// `env` and the request fields where validation allowed them).
    fn context(&self, status: Option<RunStatus>) -> template::Context {
        template::Context::new(&self.context_json(status, true))
    }

    /// The template context as JSON; without secrets for expressions (`assert`), which the
    /// validator keeps secrets out of anyway.
    fn context_json(&self, status: Option<RunStatus>, with_secrets: bool) -> serde_json::Value {
        let params: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        let secrets: serde_json::Map<String, serde_json::Value> = if with_secrets {
            self.secrets
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect()
        } else {
            serde_json::Map::new()
        };
        let mut steps = serde_json::Map::new();
        for (id, s) in &self.journal.steps {
            if s.status == runbook_core::journal::StepStatus::Succeeded {
                steps.insert(id.clone(), serde_json::json!({ "outputs": s.outputs }));
            }
        }
        serde_json::json!({
            "params": params,
            "secrets": secrets,
            "steps": steps,
            "run": {
                "id": self.opts.run_id,
                "started_at": self.started_at,
                "status": status.map(RunStatus::as_str).unwrap_or("running"),
            },
            "runbook": { "name": self.runbook.name, "title": self.runbook.title.clone().unwrap_or_default() },
        })
    }

    fn render(&self, t: &Template, mode: Mode, status: Option<RunStatus>) -> Result<String, String> {
        template::render(&t.text, mode, &self.context(status)).map_err(|e| e.message)
    }

    fn readiness(&self, idx: usize) -> Readiness {
        let step = &self.runbook.steps[idx];
        for need in &step.needs {
            let Some(n) = self.index(need.as_str()) else { continue };
            match &self.state[n] {
                State::Succeeded | State::Skipped => {}
                State::Failed => return Readiness::Blocked(format!("`{need}` failed")),
                _ => return Readiness::NotYet,
            }
        }
        Readiness::Ready
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.runbook.steps.iter().position(|s| s.id.as_str() == id)
    }

    async fn skip(&mut self, idx: usize, reason: String) -> Result<(), ExecError> {
        self.state[idx] = State::Skipped;
        let step = self.runbook.steps[idx].id.to_string();
        self.record(RunEvent::StepSkipped { step, reason }).await
    }

    /// Evaluate `when` and the step's preconditions, then start its first attempt (or, for
    /// an approval, ask for decisions).
    async fn begin(
        &mut self,
        idx: usize,
        attempt_cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<Begun, ExecError> {
        let step = &self.runbook.steps[idx];
        if let Some(when) = &step.when {
            match template::eval(&when.text, &self.context(None)) {
                Ok(v) if !template::truthy(&v) => {
                    self.skip(idx, format!("`when` is false: {}", when.text)).await?;
                    return Ok(Begun::Skipped);
                }
                Ok(_) => {}
                Err(e) => {
                    return self
                        .fail_before_start(idx, format!("`when` cannot be evaluated: {}", e.message))
                        .await;
                }
            }
        }
        for p in &step.preconditions {
            if let Err((message, output)) = self.check(p, Some(step), cancel).await {
                return self.fail_before_start_with(idx, message, output).await;
            }
        }
        if let (Some(question), Some(ask)) = (&step.confirm, &self.opts.confirm) {
            let question = self.render(question, Mode::Plain, None).unwrap_or_else(|_| question.text.clone());
            let ask = Arc::clone(ask);
            let yes = tokio::task::spawn_blocking(move || ask(&question)).await.unwrap_or(false);
            if !yes {
                return self.fail_before_start(idx, "the operator did not confirm it".into()).await;
            }
        }
        if let Action::Approval(_) = &step.action {
            self.request_approval(idx, tx).await?;
            return Ok(Begun::Awaiting);
        }
        if let Action::Runbook(_) = &step.action {
            return Ok(if self.start_include(idx, attempt_cancel, tx).await? {
                Begun::Include
            } else {
                Begun::Failed
            });
        }
        self.attempt(idx, attempt_cancel, tx).await?;
        Ok(Begun::Spawned)
    }

    async fn fail_before_start(&mut self, idx: usize, reason: String) -> Result<Begun, ExecError> {
        self.fail_before_start_with(idx, reason, None).await
    }

    /// [`Dispatcher::fail_before_start`] with the end of what a precondition printed.
    async fn fail_before_start_with(
        &mut self,
        idx: usize,
        reason: String,
        output: Option<String>,
    ) -> Result<Begun, ExecError> {
        self.state[idx] = State::Failed;
        let step = self.runbook.steps[idx].id.to_string();
        self.record(RunEvent::StepFailed { step, attempt: 0, reason, output }).await?;
        Ok(Begun::Failed)
    }

    /// Start an included runbook as this step: its params rendered and typed, its events
    /// journaled under `STEP/`, with this run's lease. What it already did in this run (after
    /// a resume) is read back from the journal, so its succeeded steps never run again.
    async fn start_include(
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
        let params = self.include_params(inc, child);
        self.attempts[idx] += 1;
        let attempt = self.attempts[idx];
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
        self.state[idx] = State::Running;
        let prefix = format!("{}{id}/", self.opts.prefix);
        let opts = self.child_options(child, &prefix, false).await?;
        // Its own task: it writes to the store on its own schedule, never waiting for this
        // loop to poll it (a transaction it holds must not wait on one this loop opens).
        spawn_child(
            ChildRun {
                runbook: Arc::clone(child),
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
    /// the included runbook's declarations.
    fn include_params(
        &self,
        inc: &runbook_core::model::IncludeSpec,
        child: &Runbook,
    ) -> Result<BTreeMap<String, ParamValue>, Vec<String>> {
        let ctx = self.context(None);
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
    async fn child_options(
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
            resume,
            base_dir: file.parent().map(std::path::Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
            runbook_file: file,
            compensate_only,
            inherited: Some((self.redactor.clone(), self.secret_env())),
            ..self.opts.clone()
        })
    }

    /// Journal how an included runbook ended, as the outcome of its step.
    async fn finish_include(
        &mut self,
        idx: usize,
        attempt: u32,
        result: Result<Outcome, ExecError>,
        interrupted: bool,
    ) -> Result<AttemptResult, ExecError> {
        let step = &self.runbook.steps[idx];
        let id = step.id.to_string();
        let reason = match result {
            Ok(o) if !o.waiting.is_empty() => {
                // It waits for approvals and nobody is attached: this run waits with it, and
                // `resume` starts the included runbook again, where it stopped.
                self.state[idx] = State::Awaiting;
                self.child_waiting.insert(idx, o.waiting);
                return Ok(AttemptResult::Interrupted);
            }
            Ok(o) if o.status == RunStatus::Interrupted && interrupted => {
                // In doubt, like a process cut off by the signal: `resume` continues it.
                self.state[idx] = State::Waiting;
                return Ok(AttemptResult::Interrupted);
            }
            Ok(o) if o.status == RunStatus::Succeeded => {
                let missing: Vec<&str> =
                    step.outputs.iter().filter(|k| !o.outputs.contains_key(*k)).map(String::as_str).collect();
                if missing.is_empty() {
                    let outputs =
                        o.outputs.into_iter().filter(|(k, _)| step.outputs.contains(k)).collect::<Outputs>();
                    self.state[idx] = State::Succeeded;
                    self.record(RunEvent::StepSucceeded { step: id, attempt, outputs }).await?;
                    return Ok(AttemptResult::Succeeded);
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
        self.state[idx] = State::Failed;
        self.record(RunEvent::StepFailed { step: id, attempt, reason, output: None }).await?;
        Ok(AttemptResult::Failed)
    }

    /// Undo an included runbook that completed: its own compensations, most recent first.
    async fn compensate_include(
        &mut self,
        idx: usize,
        cancel: &watch::Receiver<bool>,
    ) -> Result<bool, ExecError> {
        let runbook: &'a Runbook = self.runbook;
        let step = &runbook.steps[idx];
        let Action::Runbook(inc) = &step.action else { return Ok(true) };
        let (Some(child), Some(secrets)) = (runbook.includes.get(inc.child), self.secrets.include(inc.child))
        else {
            return Ok(true);
        };
        let prefix = format!("{}{}/", self.opts.prefix, step.id);
        let opts = self.child_options(child, &prefix, true).await?;
        // The same values as when it ran: they render from this run's params and the outputs
        // of steps that completed before it, all in the journal.
        let params = match self.include_params(inc, child) {
            Ok(p) => p,
            Err(problems) => {
                let id = step.id.to_string();
                self.record(RunEvent::CompensationFailed {
                    step: id,
                    reason: problems.join("; "),
                    output: None,
                })
                .await?;
                return Ok(false);
            }
        };
        let dispatcher = Dispatcher::new(child, &params, secrets, self.store, opts, self.report.clone());
        let outcome = Box::pin(dispatcher.run(cancel.clone())).await?;
        Ok(outcome.status != RunStatus::NeedsOperator)
    }

    /// Journal an approval request (once: a resumed run keeps waiting on the same one), and
    /// offer the operator an inline answer when the rules let them decide.
    async fn request_approval(
        &mut self,
        idx: usize,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<(), ExecError> {
        let step = &self.runbook.steps[idx];
        let Action::Approval(spec) = &step.action else { return Ok(()) };
        let id = step.id.to_string();
        self.state[idx] = State::Awaiting;
        let prompt =
            self.render(&spec.prompt, Mode::Plain, None).unwrap_or_else(|_| spec.prompt.text.clone());
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
                deadline_ms: spec.timeout.map(|t| now_ms.saturating_add(t.as_millis() as i64)),
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
            tokio::task::spawn_blocking(move || {
                if let Some(answer) = ask(&prompt) {
                    let _ = tx.send(Msg::Inline { idx, answer });
                }
            });
        } else {
            let path = format!("{}{id}", self.opts.prefix);
            let _ = self.report.send(Report::Notice(format!(
                "step `{path}` waits for approval: `runbook approve {} {path}` (or `runbook reject {} {path} --reason ...`)",
                self.opts.run_id, self.opts.run_id
            )));
        }
        Ok(())
    }

    /// Fold approval decisions journaled since `seen` (by `runbook approve` in any terminal,
    /// or inline). Returns the new high-water mark.
    async fn fold_decisions(&mut self, seen: u64) -> Result<u64, ExecError> {
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
    async fn settle_approval(&mut self, idx: usize) -> Result<Option<bool>, ExecError> {
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
        let attempt = self.attempts[idx].max(1);
        if let Some(by) = &approval.rejected_by {
            let reason = self.journal.steps.get(&id).and_then(|s| s.reason.clone());
            self.state[idx] = State::Failed;
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
            self.state[idx] = State::Succeeded;
            self.record(RunEvent::StepSucceeded { step: id, attempt, outputs }).await?;
            return Ok(Some(true));
        }
        let (_, now_ms) = now();
        if approval.deadline_ms.is_some_and(|d| now_ms >= d) {
            self.state[idx] = State::Failed;
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
    async fn decide(
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

    /// When the next unfired escalation is due.
    fn next_escalation(&self, started: SystemTime, escalating: &[String]) -> Option<tokio::time::Instant> {
        if self.opts.parent_lease.is_some() {
            // An included runbook's escalations are the including run's to make.
            return None;
        }
        let elapsed = SystemTime::now().duration_since(started).unwrap_or_default();
        self.runbook
            .escalations
            .iter()
            .filter(|e| !escalating.contains(&e.id) && !self.journal.escalations_fired.contains(&e.id))
            .map(|e| tokio::time::Instant::now() + e.after.saturating_sub(elapsed))
            .min()
    }

    /// The escalation whose time has come, if any.
    fn due_escalation(&self, started: SystemTime, escalating: &[String]) -> Option<String> {
        let elapsed = SystemTime::now().duration_since(started).unwrap_or_default();
        self.runbook
            .escalations
            .iter()
            .filter(|e| !escalating.contains(&e.id) && !self.journal.escalations_fired.contains(&e.id))
            .find(|e| e.after <= elapsed)
            .map(|e| e.id.clone())
    }

    /// Send an escalation's notification in the background; the loop journals the result.
    fn escalate(&self, id: &str, tx: &mpsc::UnboundedSender<Msg>) {
        let Some(escalation) = self.runbook.escalations.iter().find(|e| e.id == id) else { return };
        let _ = self.report.send(Report::Notice(format!(
            "escalation `{id}`: the run is still going after {}",
            runbook_core::model::format_duration(escalation.after)
        )));
        let request = self.notify_request(&escalation.notify, None);
        let redactor = self.redactor.clone();
        let tx = tx.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let (delivered, error) = match request {
                Err(e) => (false, Some(e)),
                Ok(request) => match http::send(&request, &redactor).await {
                    Err(e) => (false, Some(e)),
                    Ok(outputs) => match http::judge(&request, &outputs) {
                        action::Check::Passed(_) => (true, None),
                        action::Check::Failed(e) => (false, Some(e)),
                    },
                },
            };
            let error = error.map(|e| redactor.redact(&e));
            let _ = tx.send(Msg::Escalated { id, delivered, error });
        });
    }

    /// Journal `step_started`, then start the attempt.
    async fn attempt(
        &mut self,
        idx: usize,
        attempt_cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<(), ExecError> {
        self.attempts[idx] += 1;
        let attempt = self.attempts[idx];
        let step = &self.runbook.steps[idx];
        let output_file =
            self.opts.run_dir.join(format!("{}.{attempt}.outputs", self.stem(step.id.as_str())));
        let prepared = self.work(
            step.id.as_str(),
            &step.action,
            &step.env,
            step.dir.as_deref(),
            step.timeout,
            &output_file,
            &step.outputs,
            None,
        );
        let timeout = step.timeout;
        let log = self.opts.run_dir.join(format!("{}.{attempt}.log", self.stem(step.id.as_str())));
        let sink = Sink::new(log, format!("{}{}", self.opts.prefix, step.id), attempt, self.report.clone());
        self.record(RunEvent::StepStarted { step: step.id.to_string(), attempt }).await?;
        self.state[idx] = State::Running;
        let tx = tx.clone();
        let cancel = attempt_cancel.clone();
        let reaper = self.opts.reaper.clone();
        let redactor = self.redactor.clone();
        tokio::spawn(async move {
            let (done, tail) = match prepared {
                Err(e) => (Done { exit: Exit::SpawnFailed(e), outputs: Err(String::new()) }, None),
                Ok(work) => {
                    // Output goes from the attempt to its log and the terminal here, off the
                    // dispatcher's loop, over a bounded channel.
                    let (ltx, lrx) = mpsc::channel(LINES_IN_FLIGHT);
                    let forward = tokio::spawn(sink.drain(lrx));
                    let done =
                        action::perform(work, timeout, &redactor, ltx, cancel, reaper.as_deref()).await;
                    let tail = forward.await.ok().and_then(|t| t.text());
                    (done, tail)
                }
            };
            let _ = tx.send(Msg::Done { idx, attempt, done, tail });
        });
        Ok(())
    }

    /// The digest a file had when the run started, from [`RunOptions::reads`] (paths there
    /// are as the CLI resolved them, relative to its folder or absolute).
    fn pinned_digest(&self, path: &std::path::Path) -> Option<String> {
        let key = |p: &std::path::Path| {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            runbook_core::validate::normalize(&abs.to_string_lossy())
        };
        let want = key(path);
        self.opts.reads.iter().find(|r| key(std::path::Path::new(&r.path)) == want).map(|r| r.sha256.clone())
    }

    /// Render an action into the work of one attempt.
    #[allow(clippy::too_many_arguments)]
    fn work(
        &self,
        label: &str,
        action: &Action,
        env: &[(String, Template)],
        dir: Option<&str>,
        timeout: Option<Duration>,
        output_file: &std::path::Path,
        declared: &[String],
        status: Option<RunStatus>,
    ) -> Result<Work, String> {
        let ctx = self.context(status);
        let render = |t: &Template| template::render(&t.text, Mode::Plain, &ctx).map_err(|e| e.message);
        let assert = |expr: &Option<runbook_core::model::Expr>| {
            expr.as_ref()
                .map(|e| action::Assert { expr: e.text.clone(), ctx: self.context_json(status, false) })
        };
        let argv = match action {
            Action::Run { script, shell } => {
                let mut argv = shell.clone();
                argv.push(template::render(&script.text, Mode::Shell, &ctx).map_err(|e| e.message)?);
                argv
            }
            Action::Cmd(args) => {
                let argv: Vec<String> = args.iter().map(render).collect::<Result<_, _>>()?;
                // A value that would be read as an option is refused before anything runs.
                let texts: Vec<&str> = args.iter().map(|t| t.text.as_str()).collect();
                template::argv_options(&texts, &argv).map_err(|(_, m)| m)?;
                argv
            }
            Action::Http(spec) => {
                let request = http::Request {
                    method: spec.method.clone(),
                    url: template::render(&spec.url.text, Mode::Url, &ctx).map_err(|e| e.message)?,
                    headers: render_pairs(&spec.headers, &render)?,
                    query: render_pairs(&spec.query, &render)?,
                    body: match (&spec.body, &spec.json) {
                        (Some(b), _) => http::Body::Text(render(b)?),
                        (None, Some(j)) => http::Body::Json(render_json(j, &ctx)?),
                        (None, None) => http::Body::None,
                    },
                    expect_status: spec.expect_status.clone(),
                    max_latency: spec.max_latency,
                    ca_file: spec.ca_file.as_ref().map(|c| self.opts.base_dir.join(c)),
                    ca_sha256: spec
                        .ca_file
                        .as_ref()
                        .and_then(|c| self.pinned_digest(&self.opts.base_dir.join(c))),
                    request_timeout: spec.request_timeout,
                };
                return Ok(Work::Http { request, assert: assert(&spec.assert) });
            }
            Action::Sql(spec) => {
                let base_dir = dir.map_or_else(|| self.opts.base_dir.clone(), |d| self.opts.base_dir.join(d));
                let script_sha256 = match &spec.statement {
                    runbook_core::model::SqlStatement::File(f) => self.pinned_digest(&base_dir.join(f)),
                    runbook_core::model::SqlStatement::Query(_) => None,
                };
                let request = sql::Request {
                    url: template::render(&spec.url.text, Mode::Url, &ctx).map_err(|e| e.message)?,
                    statement: match &spec.statement {
                        runbook_core::model::SqlStatement::Query(q) => sql::Statement::Query(q.clone()),
                        runbook_core::model::SqlStatement::File(f) => sql::Statement::File(f.clone()),
                    },
                    args: spec.args.iter().map(|a| render_json(a, &ctx)).collect::<Result<_, _>>()?,
                    read_only: spec.read_only,
                    base_dir,
                    script_sha256,
                };
                return Ok(Work::Sql { request, assert: assert(&spec.assert) });
            }
            Action::Notify(spec) => {
                let request = self.notify_request(spec, status)?;
                return Ok(Work::Notify { request, required: spec.required });
            }
            other => return Err(format!("`{}` steps are not run as an action", other.kind())),
        };
        let mut vars = vec![
            ("RUNBOOK_OUTPUT".to_string(), output_file.display().to_string()),
            ("RUNBOOK_RUN_ID".to_string(), self.opts.run_id.clone()),
            ("RUNBOOK_STEP".to_string(), label.to_string()),
        ];
        for (k, v) in env {
            vars.push((k.clone(), render(v)?));
        }
        // A secret's source variable reaches a step only when the step passes it in `env`:
        // the variables of every secret of the run, including runbooks' and included ones'.
        let env_remove = self.secret_env();
        Ok(Work::Process {
            spawn: Spawn {
                argv,
                env: vars,
                env_remove,
                dir: dir.map_or_else(|| self.opts.base_dir.clone(), |d| self.opts.base_dir.join(d)),
                timeout,
                grace: self.opts.grace,
            },
            output_file: output_file.to_path_buf(),
            declared: declared.to_vec(),
        })
    }

    /// A notification as a JSON POST: `{"text": ...}` or the custom body.
    fn notify_request(
        &self,
        spec: &runbook_core::model::NotifySpec,
        status: Option<RunStatus>,
    ) -> Result<http::Request, String> {
        let ctx = self.context(status);
        let body = match &spec.message {
            runbook_core::model::NotifyMessage::Text(t) => {
                serde_json::json!({ "text": template::render(&t.text, Mode::Plain, &ctx).map_err(|e| e.message)? })
            }
            runbook_core::model::NotifyMessage::Json(j) => render_json(j, &ctx)?,
        };
        Ok(http::Request {
            method: "POST".into(),
            url: template::render(&spec.webhook.text, Mode::Url, &ctx).map_err(|e| e.message)?,
            headers: Vec::new(),
            query: Vec::new(),
            body: http::Body::Json(body),
            expect_status: Vec::new(),
            max_latency: None,
            ca_file: None,
            ca_sha256: None,
            request_timeout: Some(Duration::from_secs(10)),
        })
    }

    async fn finish_attempt(
        &mut self,
        idx: usize,
        attempt: u32,
        done: Done,
        output: Option<String>,
        interrupted: bool,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<AttemptResult, ExecError> {
        let step = &self.runbook.steps[idx];
        let id = step.id.to_string();
        let Done { exit, outputs } = done;
        if interrupted && exit == Exit::Cancelled {
            // No outcome is journaled: the step stays in doubt for `resume` to decide.
            self.state[idx] = State::Waiting;
            return Ok(AttemptResult::Interrupted);
        }
        let failure = match (exit.success(), outputs) {
            (true, Ok(outputs)) => {
                self.state[idx] = State::Succeeded;
                // Written with the start of the steps it frees (or before the dispatcher
                // waits): one transaction instead of two. Nothing acts on it unwritten.
                self.defer(RunEvent::StepSucceeded { step: id, attempt, outputs });
                return Ok(AttemptResult::Succeeded);
            }
            (true, Err(missing)) => (AttemptEnd::Other, None, missing),
            (false, _) => {
                let code = match exit {
                    Exit::Code(c) => Some(c),
                    _ => None,
                };
                (attempt_end(&exit), code, exit.describe())
            }
        };
        let (end, exit_code, reason) = failure;
        let counted = attempt.saturating_sub(self.attempt_base[idx]);
        if retry::should_retry(&step.retry, counted, end) {
            let delay = retry::delay(&step.retry, counted, unit_random());
            self.state[idx] = State::RetryWait;
            self.record(RunEvent::AttemptFailed { step: id.clone(), attempt, exit_code, reason, output })
                .await?;
            let _ = self.report.send(Report::RetryScheduled { step: id, delay });
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Msg::RetryDue { idx });
            });
            return Ok(AttemptResult::Retrying);
        }
        self.state[idx] = State::Failed;
        self.record(RunEvent::StepFailed { step: id, attempt, reason, output }).await?;
        Ok(AttemptResult::Failed)
    }

    /// Run a precondition; `Err` carries the message to show and the end of what the check
    /// printed (redacted). A check that could not run (it could not start, its program or
    /// working directory is missing, bash's 126/127) says so instead of its message: its
    /// message says what a check that ran and said no means, and this one said nothing.
    async fn check(
        &self,
        p: &Precondition,
        step: Option<&Step>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<(), (String, Option<String>)> {
        let owner = step.map_or_else(|| "runbook".to_string(), |s| format!("step `{}`", s.id));
        let scratch = self.opts.run_dir.join(format!("precondition-{}.outputs", self.stem(&p.id)));
        let label = step.map_or(p.id.as_str(), |s| s.id.as_str());
        let work = self
            .work(label, &p.action, &p.env, p.dir.as_deref(), Some(p.timeout), &scratch, &[], None)
            .map_err(|e| (format!("precondition `{}` of {owner} could not run: {e}", p.id), None))?;
        // Nobody shows a precondition's output as it comes; its last lines say why it failed.
        let (tx, rx) = mpsc::channel(LINES_IN_FLIGHT);
        let collect = tokio::spawn(crate::output::Tail::collect(rx));
        let done = action::perform(
            work,
            Some(p.timeout),
            &self.redactor,
            tx,
            cancel.clone(),
            self.opts.reaper.as_deref(),
        )
        .await;
        let _ = std::fs::remove_file(&scratch);
        let tail = collect.await.ok().and_then(|t| t.text());
        if done.exit.success() {
            return Ok(());
        }
        let message = p.message.as_ref().map(|m| {
            self.redactor.redact(&self.render(m, Mode::Plain, None).unwrap_or_else(|_| m.text.clone()))
        });
        let could_not_run = matches!(done.exit, Exit::SpawnFailed(_) | Exit::Code(126 | 127));
        let text = match (could_not_run, message) {
            (true, Some(m)) => format!(
                "precondition `{}` of {owner} could not run ({}), so it checked nothing; what it checks: {m}",
                p.id,
                done.exit.describe()
            ),
            (true, None) => {
                format!("precondition `{}` of {owner} could not run ({})", p.id, done.exit.describe())
            }
            (false, Some(m)) => {
                format!("precondition `{}` of {owner} failed: {m} (the check {})", p.id, done.exit.describe())
            }
            (false, None) => {
                format!("precondition `{}` of {owner} failed: the check {}", p.id, done.exit.describe())
            }
        };
        Err((self.redactor.redact(&text), tail))
    }

    /// Run one action to its end outside the main loop (compensations, `finally`), streaming
    /// its output, redacted, under `label`.
    async fn run_action(
        &self,
        label: &str,
        attempt: u32,
        work: Result<Work, String>,
        timeout: Option<Duration>,
        cancel: &watch::Receiver<bool>,
    ) -> (Done, Option<String>) {
        let work = match work {
            Ok(w) => w,
            Err(e) => return (Done { exit: Exit::SpawnFailed(e), outputs: Err(String::new()) }, None),
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
    async fn compensate(&mut self, cancel: &watch::Receiver<bool>) -> Result<bool, ExecError> {
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
                        Ok(o) => o,
                        Err(missing) => {
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
    async fn finally(
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
                    let outputs = result.outputs.unwrap_or_default();
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

/// Whether `operator` may decide `step` at `now_ms`, judged on the run's folded journal.
pub fn check_decision(
    state: &runbook_core::journal::RunState,
    step: &str,
    operator: &str,
    now_ms: i64,
) -> Result<(), String> {
    use runbook_core::journal::StepStatus;
    let Some(s) = state.steps.get(step) else {
        return Err(format!("the run has no step `{step}` waiting for approval"));
    };
    let Some(approval) = &s.approval else {
        return Err(format!("step `{step}` is not an approval step"));
    };
    if s.status != StepStatus::AwaitingApproval {
        return Err(format!(
            "step `{step}` is not waiting for approval (it is {})",
            serde_json::to_value(&s.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ));
    }
    if let Some(deadline) = approval.deadline_ms
        && now_ms >= deadline
    {
        return Err(format!(
            "the approval of `{step}` timed out at {}; the step fails when the run continues",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(deadline).unwrap_or(0))
            )
        ));
    }
    approval.may_decide(operator)
}

/// Render `(name, template)` pairs.
fn render_pairs(
    pairs: &[(String, Template)],
    render: &dyn Fn(&Template) -> Result<String, String>,
) -> Result<Vec<(String, String)>, String> {
    pairs.iter().map(|(k, v)| Ok((k.clone(), render(v)?))).collect()
}

/// Render the string leaves of a JSON value as templates; other values are kept.
fn render_json(value: &serde_json::Value, ctx: &template::Context) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(template::render(s, Mode::Plain, ctx).map_err(|e| e.message)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render_json(v, ctx)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), render_json(v, ctx)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

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

/// Sleep until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

enum Readiness {
    NotYet,
    Ready,
    Blocked(String),
}

enum Begun {
    Spawned,
    Include,
    Skipped,
    Awaiting,
    Failed,
}

#[derive(PartialEq, Eq)]
enum AttemptResult {
    Succeeded,
    Retrying,
    Failed,
    Interrupted,
}

/// How an attempt ended, for the retry policy.
fn attempt_end(exit: &Exit) -> AttemptEnd {
    match exit {
        Exit::Code(c) => AttemptEnd::Exit(*c),
        Exit::TimedOut => AttemptEnd::TimedOut,
        _ => AttemptEnd::Other,
    }
}

/// A number in `[0, 1)` for jitter, from the standard library's per-process random keys.
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Shared handle used by the CLI.
pub type SharedRunbook = Arc<Runbook>;

/// A precondition's failure message with the end of what it printed, for the terminal and
/// the journal.
fn with_output(message: String, output: Option<&str>) -> String {
    match output {
        Some(out) => {
            let lines: Vec<String> = out.lines().map(|l| format!("    {l}")).collect();
            format!("{message}; its output ends with:\n{}", lines.join("\n"))
        }
        None => message,
    }
}
