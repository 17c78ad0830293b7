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

use crate::process::{self, Exit, Line, Spawn, Stream};
use crate::secrets::{Redactor, Secrets};

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
    /// The runbook uses something this release cannot execute.
    #[error("{0}")]
    Unsupported(String),
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

/// True when a lock holder (`... (pid N on HOST)`) ran on this host and its process is gone.
pub fn holder_is_dead(holder: &str) -> bool {
    let Some(inner) = holder.rsplit_once("(pid ").map(|(_, rest)| rest.trim_end_matches(')')) else {
        return false;
    };
    let Some((pid, host)) = inner.split_once(" on ") else { return false };
    let Ok(pid) = pid.trim().parse::<i32>() else { return false };
    host.trim() == hostname()
        && !matches!(crate::process::process_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Now as RFC 3339 (UTC, milliseconds) and as milliseconds since the epoch.
pub fn now() -> (String, i64) {
    let t = SystemTime::now();
    let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    (humantime::format_rfc3339_millis(t).to_string(), ms)
}

/// Refuse runbooks this release cannot execute, before anything runs.
pub fn check_supported(runbook: &Runbook) -> Result<(), ExecError> {
    let mut problems = Vec::new();
    let steps = runbook.steps.iter().chain(runbook.finally.iter());
    for step in steps {
        let mut kinds = vec![step.action.kind()];
        kinds.extend(step.compensate.iter().map(|c| c.action.kind()));
        kinds.extend(step.preconditions.iter().map(|p| p.action.kind()));
        for kind in kinds {
            if !matches!(kind, "run" | "cmd") {
                problems
                    .push(format!("step `{}` uses `{kind}`, which this release cannot execute yet", step.id));
            }
        }
    }
    for p in &runbook.preconditions {
        if !matches!(p.action, Action::Run { .. } | Action::Cmd(_)) {
            problems.push(format!(
                "precondition `{}` uses `{}`, which this release cannot execute yet",
                p.id,
                p.action.kind()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push("`run` and `cmd` run today; http, sql, approval, notify and runbook steps come in the next release (`runbook plan` shows them already)".into());
        Err(ExecError::Unsupported(problems.join("\n")))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting,
    Running,
    RetryWait,
    Succeeded,
    Failed,
    Skipped,
}

enum Msg {
    Done { idx: usize, attempt: u32, exit: Exit, outputs: Result<BTreeMap<String, String>, String> },
    RetryDue { idx: usize },
    Line { idx: usize, line: Line },
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
    /// The run's journal, folded as it is written: the same fold `resume` and every report
    /// use. Outputs, the order of completion and compensations are read from it.
    journal: runbook_core::journal::RunState,
    started_at: String,
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
            redactor: Redactor::new(secrets),
            store,
            opts,
            report,
            lease: None,
            state: vec![State::Waiting; runbook.steps.len()],
            attempts: vec![0; runbook.steps.len()],
            journal: runbook_core::journal::RunState::default(),
            started_at: String::new(),
        }
    }

    /// Carry out the run. `cancel` turning `true` interrupts it (Ctrl-C, SIGTERM).
    pub async fn run(mut self, mut cancel: watch::Receiver<bool>) -> Result<Outcome, ExecError> {
        check_supported(self.runbook)?;
        std::fs::create_dir_all(&self.opts.run_dir).map_err(|e| ExecError::RunDir {
            path: self.opts.run_dir.display().to_string(),
            error: e.to_string(),
        })?;
        let (now_ts, now_ms) = now();
        // The lock first: a second run on the same environment must not even check. Every
        // run holds one (a private `run:ID` lock without `lock`), so `resume` can tell a
        // live run from a dead one.
        let runbook_lock = match &self.runbook.lock {
            Some(t) => Some(self.render(t, Mode::Plain, None).map_err(ExecError::Unsupported)?),
            None => None,
        };
        let lock = lock_name(runbook_lock.clone(), &self.opts.run_id);
        let resume = self.opts.resume.take();
        match &resume {
            None => self.started_at = now_ts.clone(),
            Some(r) => self.started_at = r.started_at.clone(),
        }
        let holder = format!("{} (pid {} on {})", self.opts.operator, std::process::id(), hostname());
        let ttl = self.opts.lease_ttl;
        let mut stolen = false;
        let lease = match self
            .store
            .acquire_lock(&lock, &self.opts.run_id, &holder, &now_ts, now_ms, ttl, None)
            .await
        {
            Err(StoreError::LockHeld(h)) if holder_is_dead(&h.holder) => {
                stolen = true;
                // A process on this host that no longer exists cannot be running the step.
                let _ = self.report.send(Report::Notice(format!(
                    "taking over lock `{lock}` from run {} ({}): that process is gone",
                    h.run_id, h.holder
                )));
                self.store
                    .acquire_lock(&lock, &self.opts.run_id, &holder, &now_ts, now_ms, ttl, Some(&h.holder))
                    .await?
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
        // Only now, with the lock held, does a new run exist: a refused run leaves no trace.
        if resume.is_none() {
            let created = self
                .store
                .create_run(&runbook_store::NewRun {
                    run_id: &self.opts.run_id,
                    runbook: &self.runbook.name,
                    operator: &self.opts.operator,
                    started_at: &now_ts,
                    lock_name: Some(&lock),
                })
                .await;
            if let Err(e) = created {
                self.release().await;
                return Err(e.into());
            }
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
                })
                .await?;
                // Runbook preconditions: any failure and no step runs.
                let mut failures = Vec::new();
                for p in &self.runbook.preconditions {
                    if let Err(message) = self.check(p, None, &cancel).await {
                        failures.push(message);
                    }
                }
                if !failures.is_empty() {
                    self.record(RunEvent::RunFinished { status: RunStatus::Failed }).await?;
                    self.release().await;
                    return Err(ExecError::Preconditions(failures));
                }
            }
            Some(r) => self.restore(r).await?,
        }
        if self.opts.compensate_only {
            let status =
                if self.compensate(&cancel).await? { RunStatus::Failed } else { RunStatus::NeedsOperator };
            self.finally(status, &cancel).await?;
            self.record(RunEvent::RunFinished { status }).await?;
            self.release().await;
            return Ok(Outcome { status, last_hash: self.last_hash() });
        }

        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let (cancel_tx, attempt_cancel) = watch::channel(false);
        let mut running = 0usize;
        let mut waiting_retry = 0usize;
        let mut stopping = false;
        let mut interrupted = false;
        let mut failed_compensate = false;
        let mut any_failed = false;
        let max_parallel = self.runbook.max_parallel.map_or(self.opts.max_parallel, |m| m as usize).max(1);
        let mut renew = tokio::time::interval(self.opts.lease_ttl / 3);
        renew.tick().await;

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
                        match self.readiness(idx) {
                            Readiness::NotYet => {}
                            Readiness::Blocked(reason) => {
                                self.skip(idx, reason).await?;
                                progressed = true;
                            }
                            Readiness::Ready => {
                                progressed = true;
                                match self.begin(idx, &attempt_cancel, &tx, &cancel).await? {
                                    Begun::Spawned => running += 1,
                                    Begun::Skipped => {}
                                    Begun::Failed => {
                                        any_failed = true;
                                        match self.runbook.steps[idx].on_failure {
                                            OnFailure::Continue => {}
                                            OnFailure::Stop => stopping = true,
                                            OnFailure::Compensate => {
                                                stopping = true;
                                                failed_compensate = true;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if running == 0 && (waiting_retry == 0 || stopping) {
                break;
            }
            tokio::select! {
                Some(msg) = rx.recv() => match msg {
                    Msg::Line { idx, line } => {
                        let text = self.redactor.redact(&line.text);
                        self.log(idx, line.stream, &text);
                        let _ = self.report.send(Report::Output { step: self.runbook.steps[idx].id.to_string(), stream: line.stream, text });
                    }
                    Msg::RetryDue { idx } => {
                        waiting_retry -= 1;
                        if !stopping && self.state[idx] == State::RetryWait {
                            self.attempt(idx, &attempt_cancel, &tx).await?;
                            running += 1;
                        }
                    }
                    Msg::Done { idx, attempt, exit, outputs } => {
                        running -= 1;
                        match self.finish_attempt(idx, attempt, exit, outputs, interrupted, &tx).await? {
                            AttemptResult::Succeeded | AttemptResult::Interrupted => {}
                            AttemptResult::Retrying => waiting_retry += 1,
                            AttemptResult::Failed => {
                                any_failed = true;
                                match self.runbook.steps[idx].on_failure {
                                    OnFailure::Continue => {}
                                    OnFailure::Stop => stopping = true,
                                    OnFailure::Compensate => { stopping = true; failed_compensate = true; }
                                }
                            }
                        }
                    }
                },
                changed = cancel.changed(), if !interrupted => {
                    if changed.is_err() || *cancel.borrow() {
                        interrupted = true;
                        stopping = true;
                        let _ = cancel_tx.send(true);
                    }
                }
                _ = renew.tick(), if self.lease.is_some() => {
                    if let Some(lease) = &self.lease {
                        let (_, ms) = now();
                        if let Err(e) = self.store.renew_lock(lease, ms, self.opts.lease_ttl).await {
                            // Another run took the lock: end every attempt; our writes are refused anyway.
                            let _ = cancel_tx.send(true);
                            return Err(e.into());
                        }
                    }
                }
            }
        }

        if interrupted {
            self.record(RunEvent::RunInterrupted {
                reason: "interrupted by a signal (Ctrl-C or SIGTERM)".into(),
            })
            .await?;
            self.release().await;
            return Ok(Outcome { status: RunStatus::Interrupted, last_hash: self.last_hash() });
        }
        let mut status = if any_failed { RunStatus::Failed } else { RunStatus::Succeeded };
        if failed_compensate && !self.compensate(&cancel).await? {
            status = RunStatus::NeedsOperator;
        }
        self.finally(status, &cancel).await?;
        self.record(RunEvent::RunFinished { status }).await?;
        self.release().await;
        Ok(Outcome { status, last_hash: self.last_hash() })
    }

    /// Seed the run's state from its journal, and journal the operator's decisions.
    /// Succeeded steps keep their outputs and never run again; idempotent steps in doubt
    /// run again; the others were decided by the operator (checked by the caller).
    async fn restore(&mut self, r: Resume) -> Result<(), ExecError> {
        use runbook_core::journal::{Decision, StepStatus};
        for (idx, step) in self.runbook.steps.iter().enumerate() {
            let Some(s) = r.state.steps.get(step.id.as_str()) else { continue };
            self.attempts[idx] = s.attempts;
            self.state[idx] = match s.status {
                StepStatus::Succeeded => State::Succeeded,
                StepStatus::Skipped => State::Skipped,
                StepStatus::Failed => State::Failed,
                StepStatus::Pending | StepStatus::Started | StepStatus::Retrying => State::Waiting,
            };
        }
        self.journal = r.state.clone();
        let rerun_idempotent: Vec<String> = if self.opts.compensate_only {
            Vec::new()
        } else {
            self.journal
                .in_doubt()
                .into_iter()
                .filter(|id| !r.decisions.iter().any(|(d, _, _)| d == id))
                .map(str::to_string)
                .collect()
        };
        self.record(RunEvent::RunResumed { operator: self.opts.operator.clone(), rerun_idempotent }).await?;
        for (step, decision, reason) in r.decisions {
            let Some(idx) = self.index(&step) else { continue };
            self.record(RunEvent::OperatorDecision {
                step: step.clone(),
                decision,
                operator: self.opts.operator.clone(),
                reason: reason.clone(),
            })
            .await?;
            if decision == Decision::Skip {
                self.state[idx] = State::Skipped;
            }
        }
        Ok(())
    }

    fn last_hash(&self) -> String {
        self.journal.last_hash.clone().unwrap_or_else(|| runbook_core::journal::GENESIS.to_string())
    }

    async fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = self.store.release_lock(&lease).await;
        }
    }

    async fn record(&mut self, event: RunEvent) -> Result<(), ExecError> {
        // Every string of every event passes the redactor here, once, whatever produced it
        // (a failure reason quoting a rendered template, an output, a message).
        let event = self.redactor.redact_event(event);
        let (ts, _) = now();
        let record = self.store.append(&self.opts.run_id, &ts, &event, self.lease.as_ref()).await?;
        self.journal.apply(&record.event);
        self.journal.last_seq = record.seq;
        self.journal.last_hash = Some(record.hash.clone());
        let _ = self.report.send(Report::Recorded(Box::new(record)));
        Ok(())
    }

    fn log(&self, idx: usize, stream: Stream, text: &str) {
        let step = &self.runbook.steps[idx];
        append_log(&self.opts.run_dir.join(format!("{}.{}.log", step.id, self.attempts[idx])), stream, text);
    }

    /// The template context with real values (secret values included: they only reach
    /// `env`, where validation allowed them).
    fn context(&self, status: Option<RunStatus>) -> template::Context {
        let params: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        let secrets: serde_json::Map<String, serde_json::Value> = self
            .secrets
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let mut steps = serde_json::Map::new();
        for (id, s) in &self.journal.steps {
            if s.status == runbook_core::journal::StepStatus::Succeeded {
                steps.insert(id.clone(), serde_json::json!({ "outputs": s.outputs }));
            }
        }
        template::Context::new(&serde_json::json!({
            "params": params,
            "secrets": secrets,
            "steps": steps,
            "run": {
                "id": self.opts.run_id,
                "started_at": self.started_at,
                "status": status.map(RunStatus::as_str).unwrap_or("running"),
            },
            "runbook": { "name": self.runbook.name, "title": self.runbook.title.clone().unwrap_or_default() },
        }))
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

    /// Evaluate `when` and the step's preconditions, then start its first attempt.
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
                Ok(v) if !truthy(&v) => {
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
            if let Err(message) = self.check(p, Some(step), cancel).await {
                return self.fail_before_start(idx, message).await;
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
        self.attempt(idx, attempt_cancel, tx).await?;
        Ok(Begun::Spawned)
    }

    async fn fail_before_start(&mut self, idx: usize, reason: String) -> Result<Begun, ExecError> {
        self.state[idx] = State::Failed;
        let step = self.runbook.steps[idx].id.to_string();
        self.record(RunEvent::StepFailed { step, attempt: 0, reason }).await?;
        Ok(Begun::Failed)
    }

    /// Journal `step_started`, then spawn the attempt.
    async fn attempt(
        &mut self,
        idx: usize,
        attempt_cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<(), ExecError> {
        self.attempts[idx] += 1;
        let attempt = self.attempts[idx];
        let step = &self.runbook.steps[idx];
        let output_file = self.opts.run_dir.join(format!("{}.{attempt}.outputs", step.id));
        let prepared = self.spawn_spec(
            step.id.as_str(),
            &step.action,
            &step.env,
            step.dir.as_deref(),
            step.timeout,
            &output_file,
            None,
        );
        self.record(RunEvent::StepStarted { step: step.id.to_string(), attempt }).await?;
        self.state[idx] = State::Running;
        let declared = step.outputs.clone();
        let tx = tx.clone();
        let cancel = attempt_cancel.clone();
        let reaper = self.opts.reaper.clone();
        tokio::spawn(async move {
            let (exit, outputs) = match prepared {
                Err(e) => (Exit::SpawnFailed(e), Err(String::new())),
                Ok(spawn) => {
                    let (ltx, mut lrx) = mpsc::unbounded_channel();
                    let forward_tx = tx.clone();
                    let forward = tokio::spawn(async move {
                        while let Some(line) = lrx.recv().await {
                            let _ = forward_tx.send(Msg::Line { idx, line });
                        }
                    });
                    let exit = process::run_tied(&spawn, ltx, cancel, reaper.as_deref()).await;
                    let _ = forward.await;
                    (exit, read_outputs(&output_file, &declared))
                }
            };
            let _ = tx.send(Msg::Done { idx, attempt, exit, outputs });
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_spec(
        &self,
        label: &str,
        action: &Action,
        env: &[(String, Template)],
        dir: Option<&str>,
        timeout: Option<Duration>,
        output_file: &std::path::Path,
        status: Option<RunStatus>,
    ) -> Result<Spawn, String> {
        let ctx = self.context(status);
        let render = |t: &Template, mode| template::render(&t.text, mode, &ctx).map_err(|e| e.message);
        let argv = match action {
            Action::Run { script, shell } => {
                let mut argv = shell.clone();
                argv.push(render(script, Mode::Shell)?);
                argv
            }
            Action::Cmd(args) => args.iter().map(|a| render(a, Mode::Plain)).collect::<Result<_, _>>()?,
            other => return Err(format!("`{}` steps cannot run in this release", other.kind())),
        };
        let mut vars = vec![
            ("RUNBOOK_OUTPUT".to_string(), output_file.display().to_string()),
            ("RUNBOOK_RUN_ID".to_string(), self.opts.run_id.clone()),
            ("RUNBOOK_STEP".to_string(), label.to_string()),
        ];
        for (k, v) in env {
            vars.push((k.clone(), render(v, Mode::Plain)?));
        }
        // A secret's source variable reaches a step only when the step passes it in `env`.
        let env_remove = self
            .runbook
            .secrets
            .iter()
            .filter_map(|s| match &s.source {
                runbook_core::model::SecretSource::Env(var) => Some(var.clone()),
                _ => None,
            })
            .collect();
        Ok(Spawn {
            argv,
            env: vars,
            env_remove,
            dir: dir.map_or_else(|| self.opts.base_dir.clone(), |d| self.opts.base_dir.join(d)),
            timeout,
            grace: self.opts.grace,
        })
    }

    async fn finish_attempt(
        &mut self,
        idx: usize,
        attempt: u32,
        exit: Exit,
        outputs: Result<BTreeMap<String, String>, String>,
        interrupted: bool,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<AttemptResult, ExecError> {
        let step = &self.runbook.steps[idx];
        let id = step.id.to_string();
        if interrupted && exit == Exit::Cancelled {
            // No outcome is journaled: the step stays in doubt for `resume` to decide.
            self.state[idx] = State::Waiting;
            return Ok(AttemptResult::Interrupted);
        }
        let failure = match (&exit, outputs) {
            (Exit::Code(0), Ok(outputs)) => {
                let outputs = outputs
                    .into_iter()
                    .map(|(k, v)| (k, self.redactor.redact(&v)))
                    .collect::<BTreeMap<_, _>>();
                self.state[idx] = State::Succeeded;
                self.record(RunEvent::StepSucceeded { step: id, attempt, outputs }).await?;
                return Ok(AttemptResult::Succeeded);
            }
            (Exit::Code(0), Err(missing)) => (AttemptEnd::Other, None, missing),
            (Exit::Code(c), _) => (AttemptEnd::Exit(*c), Some(*c), exit.describe()),
            (Exit::TimedOut, _) => (AttemptEnd::TimedOut, None, exit.describe()),
            (_, _) => (AttemptEnd::Other, None, exit.describe()),
        };
        let (end, exit_code, reason) = failure;
        if retry::should_retry(&step.retry, attempt, end) {
            let delay = retry::delay(&step.retry, attempt, unit_random());
            self.state[idx] = State::RetryWait;
            self.record(RunEvent::AttemptFailed { step: id.clone(), attempt, exit_code, reason }).await?;
            let _ = self.report.send(Report::RetryScheduled { step: id, delay });
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Msg::RetryDue { idx });
            });
            return Ok(AttemptResult::Retrying);
        }
        self.state[idx] = State::Failed;
        self.record(RunEvent::StepFailed { step: id, attempt, reason }).await?;
        Ok(AttemptResult::Failed)
    }

    /// Run a precondition; `Err` carries the message to show.
    async fn check(
        &self,
        p: &Precondition,
        step: Option<&Step>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<(), String> {
        let owner = step.map_or_else(|| "runbook".to_string(), |s| format!("step `{}`", s.id));
        let scratch = self.opts.run_dir.join(format!("precondition-{}.outputs", p.id));
        let label = step.map_or(p.id.as_str(), |s| s.id.as_str());
        let spawn = self
            .spawn_spec(label, &p.action, &p.env, p.dir.as_deref(), Some(p.timeout), &scratch, None)
            .map_err(|e| format!("precondition `{}` of {owner}: {e}", p.id))?;
        let (tx, _rx) = mpsc::unbounded_channel();
        let exit = process::run_tied(&spawn, tx, cancel.clone(), self.opts.reaper.as_deref()).await;
        let _ = std::fs::remove_file(&scratch);
        if exit.success() {
            return Ok(());
        }
        let message = match &p.message {
            Some(m) => self.render(m, Mode::Plain, None).unwrap_or_else(|_| m.text.clone()),
            None => format!("check {}", exit.describe()),
        };
        Err(format!("precondition `{}` of {owner} failed: {}", p.id, self.redactor.redact(&message)))
    }

    /// Run one action to its end outside the main loop (compensations, `finally`), streaming
    /// its output, redacted, under `label`.
    async fn run_action(
        &self,
        label: &str,
        attempt: u32,
        spawn: Result<Spawn, String>,
        cancel: &watch::Receiver<bool>,
    ) -> Exit {
        let spawn = match spawn {
            Ok(s) => s,
            Err(e) => return Exit::SpawnFailed(e),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
        let redactor = self.redactor.clone();
        let report = self.report.clone();
        let step = label.to_string();
        let log = self.opts.run_dir.join(format!("{}.{attempt}.log", label.replace(' ', "-")));
        let forward = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let text = redactor.redact(&line.text);
                append_log(&log, line.stream, &text);
                let _ = report.send(Report::Output { step: step.clone(), stream: line.stream, text });
            }
        });
        let exit = process::run_tied(&spawn, tx, cancel.clone(), self.opts.reaper.as_deref()).await;
        let _ = forward.await;
        exit
    }

    /// Compensate the steps that succeeded, most recent first. False when one failed.
    async fn compensate(&mut self, cancel: &watch::Receiver<bool>) -> Result<bool, ExecError> {
        let done = runbook_core::journal::CompensationStatus::Succeeded;
        let order: Vec<usize> = self
            .journal
            .completed
            .iter()
            .rev()
            .filter(|id| self.journal.steps.get(*id).is_none_or(|s| s.compensation != done))
            .filter_map(|id| self.index(id))
            .collect();
        for idx in order {
            let step = &self.runbook.steps[idx];
            let Some(comp) = &step.compensate else { continue };
            let id = step.id.to_string();
            let mut attempt = 0;
            loop {
                attempt += 1;
                self.record(RunEvent::CompensationStarted { step: id.clone(), attempt }).await?;
                let scratch = self.opts.run_dir.join(format!("{id}.compensation.{attempt}.outputs"));
                let spawn = self.spawn_spec(
                    &id,
                    &comp.action,
                    &comp.env,
                    comp.dir.as_deref(),
                    comp.timeout,
                    &scratch,
                    None,
                );
                let exit = self.run_action(&format!("{id} (undo)"), attempt, spawn, cancel).await;
                let _ = std::fs::remove_file(&scratch);
                if exit.success() {
                    self.record(RunEvent::CompensationSucceeded { step: id.clone() }).await?;
                    break;
                }
                let end = attempt_end(&exit);
                if !retry::should_retry(&comp.retry, attempt, end) {
                    self.record(RunEvent::CompensationFailed { step: id.clone(), reason: exit.describe() })
                        .await?;
                    return Ok(false);
                }
                tokio::time::sleep(retry::delay(&comp.retry, attempt, unit_random())).await;
            }
        }
        Ok(true)
    }

    /// Run the `finally` steps in declaration order (their needs only order them).
    async fn finally(&mut self, status: RunStatus, cancel: &watch::Receiver<bool>) -> Result<(), ExecError> {
        for step in &self.runbook.finally {
            let id = step.id.to_string();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let scratch = self.opts.run_dir.join(format!("{id}.{attempt}.outputs"));
                let spawn = self.spawn_spec(
                    &id,
                    &step.action,
                    &step.env,
                    step.dir.as_deref(),
                    step.timeout,
                    &scratch,
                    Some(status),
                );
                self.record(RunEvent::StepStarted { step: id.clone(), attempt }).await?;
                let exit = self.run_action(&id, attempt, spawn, cancel).await;
                if exit.success() {
                    let outputs = read_outputs(&scratch, &step.outputs).unwrap_or_default();
                    self.record(RunEvent::StepSucceeded { step: id.clone(), attempt, outputs }).await?;
                    break;
                }
                let end = attempt_end(&exit);
                if !retry::should_retry(&step.retry, attempt, end) {
                    self.record(RunEvent::StepFailed { step: id.clone(), attempt, reason: exit.describe() })
                        .await?;
                    break;
                }
                self.record(RunEvent::AttemptFailed {
                    step: id.clone(),
                    attempt,
                    exit_code: None,
                    reason: exit.describe(),
                })
                .await?;
                tokio::time::sleep(retry::delay(&step.retry, attempt, unit_random())).await;
            }
        }
        Ok(())
    }
}

enum Readiness {
    NotYet,
    Ready,
    Blocked(String),
}

enum Begun {
    Spawned,
    Skipped,
    Failed,
}

enum AttemptResult {
    Succeeded,
    Retrying,
    Failed,
    Interrupted,
}

/// Append one (already redacted) line to a step's log: `out TEXT` or `err TEXT`.
fn append_log(path: &std::path::Path, stream: Stream, text: &str) {
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let tag = match stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        let _ = writeln!(f, "{tag} {text}");
    }
}

/// How an attempt ended, for the retry policy.
fn attempt_end(exit: &Exit) -> AttemptEnd {
    match exit {
        Exit::Code(c) => AttemptEnd::Exit(*c),
        Exit::TimedOut => AttemptEnd::TimedOut,
        _ => AttemptEnd::Other,
    }
}

fn truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
    }
}

/// `key=value` lines a step wrote to `$RUNBOOK_OUTPUT`; every declared output must be there.
/// The file is removed: a step may have written a secret into it, and what matters goes,
/// redacted, into the journal.
fn read_outputs(path: &std::path::Path, declared: &[String]) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let _ = std::fs::remove_file(path);
    let mut outputs = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            outputs.insert(k.trim().to_string(), v.to_string());
        }
    }
    let missing: Vec<&str> =
        declared.iter().filter(|d| !outputs.contains_key(*d)).map(String::as_str).collect();
    if missing.is_empty() {
        outputs.retain(|k, _| declared.contains(k));
        Ok(outputs)
    } else {
        Err(format!("declared output(s) missing from $RUNBOOK_OUTPUT: {}", missing.join(", ")))
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
