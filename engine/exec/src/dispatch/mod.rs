//! The dispatcher: the one loop that owns a run's state and writes its journal.
//!
//! Steps start as soon as their needs are satisfied, at most `max-parallel` at once. Each
//! attempt runs as a task that reports back over a channel; the dispatcher journals every
//! transition *before* acting on it (`step_started` is committed before the process is
//! spawned), and on failure runs the compensations of the steps that succeeded, in reverse
//! order of completion.
//!
//! What happens next is decided by [`machine::Machine`] (synchronous, no IO) from the events
//! the loop (`run_loop.rs`) turns its wake-ups into; the other files carry out what it
//! decides, one concern each: starting or resuming a run (`start.rs`), attempts
//! (`attempt.rs`), approvals, includes, escalations, compensations and `finally`
//! (`unwind.rs`), rendering (`render.rs`), the journal (`record.rs`) and the lease (`lease.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::model::{ParamValue, Runbook};
use runbook_store::{Lease, Store, StoreError};
use tokio::sync::mpsc;

use crate::action::{Done, Outputs};
use crate::process;
use crate::secrets::{Redactor, Secrets};

mod approval;
mod attempt;
mod escalation;
pub mod event;
mod holder;
mod include;
mod lease;
pub mod machine;
pub mod phase;
mod record;
mod render;
mod run_loop;
mod start;
mod unwind;

pub use approval::{check_decision, decision_event};
use attempt::{unit_random, with_output};
pub use holder::{
    ENGINE_GONE, SUSPENDED, engine_gone, holder_is_dead, holder_is_suspended, holder_name, hostname,
    lock_name, now,
};
pub use lease::renewal_times;
use lease::{Renewal, until_true};
use machine::{Begun, Machine, Scope, Settled, attempt_end};
use render::render_json;

pub use crate::report::Report;

/// Lines of output in flight between an attempt and its sink: the pipe readers wait (and
/// the step with them) when the sink falls behind, so memory stays bounded.
const LINES_IN_FLIGHT: usize = 64;

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
    /// For an included runbook: the including run's word that its lease is lost (its
    /// renewal's `lost`): an included run takes no lease of its own, and must start and
    /// retry nothing once the run's is gone (red team adv28 L1, the class).
    pub parent_lost: Option<tokio::sync::watch::Receiver<bool>>,
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
    /// For a run a schedule queued: the schedule's name and the due time (RFC 3339),
    /// journaled as `schedule_fired` right after `run_started`.
    pub scheduled: Option<(String, String)>,
    /// The engine's own configuration and credentials: kept from every process the run
    /// starts, and the store's password redacted everywhere (red team adv13b F1).
    pub engine_env: crate::secrets::EngineEnv,
    /// The store as an operator names it from another terminal (`--state`, never a
    /// password), for the commands the run prints; `None` for the default store.
    pub state_arg: Option<String>,
    /// Called once, when the run's first records are written and before any step starts:
    /// the CLI prints the run's id there, so that an engine killed by its first step has
    /// still said which run to resume (awaited on the engine's thread; a moment at most).
    pub announce: Option<Announce>,
}

/// An inline answer to an approval: approve or reject, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineAnswer {
    /// True to approve.
    pub approve: bool,
    /// Why.
    pub reason: String,
}

/// What the operator did at an inline approval prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InlineReply {
    /// Approved or rejected, with a reason.
    Decided(InlineAnswer),
    /// Left the decision to `runbook approve` (Enter).
    Elsewhere,
    /// No answer: the question was withdrawn or the terminal closed.
    Unanswered(Unanswered),
}

/// A way to ask the operator an approval question inline (blocking, run off the async
/// threads). The read must end when [`Withdrawn`] says so.
pub type ApproveInline = Arc<dyn Fn(&str, &Withdrawn) -> InlineReply + Send + Sync>;

/// The answer to a `confirm` question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Confirmed: the step starts.
    Yes,
    /// Refused: the step fails ("the operator did not confirm it").
    No,
    /// No answer: the step stays pending and `resume` asks again.
    Unanswered(Unanswered),
}

/// Why a question got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The dispatcher withdrew it (a signal such as Ctrl-C, a failed step that stops the run,
    /// an approval decided elsewhere): the run goes on as that cause says.
    Withdrawn,
    /// The terminal closed (end of input, a dropped session): no answer is not "no"; the
    /// run is interrupted.
    TerminalClosed,
}

/// Tells a blocking question that it is withdrawn: its descriptor becomes readable (end of
/// file) when the dispatcher drops the other end of the pipe, so that a read polling it
/// together with the terminal can stop at once (a blocking read that cannot be stopped
/// would keep the process alive: the runtime waits for blocking tasks when it shuts down).
#[derive(Debug)]
pub struct Withdrawn(std::io::PipeReader);

impl Withdrawn {
    /// The descriptor to poll with the terminal: readable (end of file) once withdrawn.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_fd()
    }

    /// A question and the handle that withdraws it (dropping it withdraws the question).
    pub fn pair() -> std::io::Result<(Withdrawn, std::io::PipeWriter)> {
        let (r, w) = std::io::pipe()?;
        Ok((Withdrawn(r), w))
    }
}

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

/// A way to ask the operator a yes/no question (blocking; run off the async threads). The
/// read must end when [`Withdrawn`] says so.
pub type Confirm = Arc<dyn Fn(&str, &Withdrawn) -> Answer + Send + Sync>;

/// See [`RunOptions::announce`].
pub type Announce =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

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
    /// A step of the runbook given needs a step it does not have (an engine bug, e.g. a
    /// `for-each` expansion that lost a step): never treated as met; nothing ran.
    #[error(
        "internal error: step `{step}` needs `{need}`, which is no step of the runbook; nothing ran (this is a bug in runbook: please report it)"
    )]
    UnknownNeed {
        /// The step.
        step: String,
        /// What it needs.
        need: String,
    },
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
        reply: InlineReply,
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
    /// A `confirm` question was answered (or got no answer).
    Answered {
        idx: usize,
        question: String,
        answer: Answer,
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
    /// The run's scheduling: its phase and what is only in memory (running attempts,
    /// retry timers, approvals waited on). Where a step stands is read from `journal`.
    machine: Machine,
    /// The run's journal, folded as it is written: the same fold `resume` and every report
    /// use. Step status, attempts, outputs, the order of completion and compensations are
    /// read from it.
    journal: runbook_core::journal::RunState,
    /// A new run not yet in the store: its row is written with its first records, at this
    /// start time.
    creating: Option<String>,
    /// Events folded into `journal` but not yet in the store: a step's success waits here
    /// for the next write (the start of the steps it freed), so that both take one
    /// transaction. Written before the dispatcher waits for anything.
    deferred: Vec<RunEvent>,
    started_at: String,
    /// Included runbooks that stopped to wait for approvals, by step index: what they wait on.
    child_waiting: BTreeMap<usize, Vec<String>>,
    /// The task that renews the lease while this engine holds it (a run of its own only).
    renewal: Option<Renewal>,
    /// Questions put to the operator and not answered yet, by step: dropping one's pipe end
    /// withdraws it (see [`Withdrawn`]).
    questions: BTreeMap<usize, std::io::PipeWriter>,
    /// Why the run is interrupted when it is not a signal (the terminal closed at a prompt):
    /// journaled with `run_interrupted` instead of the stop cause's reason.
    interrupt_reason: Option<String>,
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
        let scope = if opts.parent_lease.is_some() { Scope::Nested } else { Scope::TopLevel };
        let machine = Machine::new(runbook, scope, opts.max_parallel, opts.wait_for_approvals)
            .with_prefix(&opts.prefix);
        Dispatcher {
            runbook,
            params,
            secrets,
            redactor: opts.inherited.as_ref().map_or_else(
                || Redactor::from_values(secrets.all().into_iter().chain(opts.engine_env.redacted())),
                |(r, _)| r.clone(),
            ),
            store,
            opts,
            report,
            lease: None,
            machine,
            journal: runbook_core::journal::RunState::default(),
            deferred: Vec::new(),
            creating: None,
            started_at: String::new(),
            child_waiting: BTreeMap::new(),
            renewal: None,
            questions: BTreeMap::new(),
            interrupt_reason: None,
        }
    }

    pub(super) fn outcome(&self, status: RunStatus) -> Outcome {
        let mut outputs = Outputs::new();
        for id in &self.journal.completed {
            if let Some(s) = self.journal.steps.get(id) {
                outputs.extend(s.outputs.clone());
            }
        }
        Outcome { status, last_hash: self.last_hash(), outputs, waiting: Vec::new() }
    }

    /// Steps waiting for approval, as journal paths (an included runbook's under its step).
    pub(super) fn waiting(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in self.machine.awaiting() {
            let id = &self.runbook.steps[i].id;
            match self.child_waiting.get(&i) {
                Some(inner) => out.extend(inner.iter().cloned()),
                None => out.push(format!("{}{id}", self.opts.prefix)),
            }
        }
        out
    }

    /// Attempts step `id` started, as the journal says.
    pub(super) fn attempts_of(&self, id: &str) -> u32 {
        self.journal.steps.get(id).map_or(0, |s| s.attempts)
    }

    pub(super) fn index(&self, id: &str) -> Option<usize> {
        self.runbook.steps.iter().position(|s| s.id.as_str() == id)
    }

    pub(super) async fn skip(&mut self, idx: usize, reason: String) -> Result<(), ExecError> {
        let step = self.runbook.steps[idx].id.to_string();
        self.record(RunEvent::StepSkipped { step, reason }).await
    }
}

/// Sleep until `at`, or forever.
pub(super) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Shared handle used by the CLI.
pub type SharedRunbook = Arc<Runbook>;
