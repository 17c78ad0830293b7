//! Runs executed by workers: `runbook submit` queues a pinned plan in the state store;
//! `runbook worker` claims queued runs and runs each in an engine process of its own.
//!
//! A worker is a supervisor: the engine it starts is the ordinary `runbook run --plan` (or
//! `runbook resume` for a run an earlier claim started), so every promise of a run holds
//! unchanged: the lock and its fencing, the journal, resume rules. The worker only decides
//! what to run next, heartbeats its claims, and records how each engine ended. Engines die
//! with their worker (a parent-death signal), so a worker that dies leaves runs whose leases
//! expire: another worker's claim then resumes them under the usual rules (idempotent steps
//! in doubt run again; any other step in doubt waits for an operator's decision).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runbook_store::{Claim, Store, Submission};

use crate::error::{CliError, CliResult, Exit, Message, StoreAction};
use crate::exit;
use crate::input::display;
use crate::output::outln;

/// Set in an engine started by a worker: the worker's pid.
const WORKER_PID: &str = "RUNBOOK_WORKER_PID";

/// What `runbook submit` was asked.
#[derive(Debug)]
pub struct SubmitArgs<'a> {
    pub target: &'a crate::args::Target,
    pub labels: &'a [String],
    pub yes: bool,
    pub state: Option<&'a str>,
}

/// `runbook submit`: plan now (or check a given plan), queue it, print the run id.
pub fn submit(args: SubmitArgs<'_>, color: bool) -> CliResult {
    let target = args.target;
    let (runbook, params, file, plan) = match (target.plan.as_deref(), target.file.as_deref()) {
        (Some(path), _) => {
            let shown = display(path);
            let text = crate::loader::read(&shown).map_err(|e| {
                CliError::Invalid(Message::new(format!("cannot read the plan `{shown}`: {e}")))
            })?;
            let pinned = crate::run::load_pinned(&shown, &text, color)?;
            (pinned.runbook, pinned.params, pinned.file, text)
        }
        (None, Some(file)) => {
            let (runbook, values, text) =
                crate::queued::plan_of(file, &target.params, target.params_file.as_deref(), color).map_err(
                    |e| {
                        let location = crate::state::location(args.state);
                        crate::run::refuse_secrets_given(Path::new(file), &target.params, &location)
                            .err()
                            .unwrap_or(e)
                    },
                )?;
            (runbook, values, std::path::PathBuf::from(file), text)
        }
        // clap requires one of them.
        (None, None) => {
            return Err(CliError::Usage(Message::new("give a runbook file or `--plan PLAN.json`")));
        }
    };
    let location = crate::state::location(args.state);
    let secrets = crate::queued::vet(&runbook, &params, &file, args.yes, &location)?;
    crate::run::check_plan_holds_no_secret(&secrets, &plan)?;
    let run_id = crate::run::new_run_id();
    let submitted_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    crate::runtime::block_on(async {
        let store = crate::state::open(&location, true).await?;
        // Only now is the operator known: in `db-role` mode, without `--as`, it is the
        // identity of the store's session role.
        let operator = crate::identity::operator();
        let labels = args.labels.join(",");
        let texts = [("the operator's name", operator.as_str()), ("the labels", labels.as_str())];
        crate::run::check_texts_hold_no_secret(&secrets, &texts)?;
        let job = Submission {
            run_id: &run_id,
            runbook: &runbook.name,
            plan: &plan,
            labels: args.labels,
            submitted_by: &operator,
            submitted_at: &submitted_at,
        };
        store.submit(&job).await.map_err(|source| CliError::StoreAt {
            doing: StoreAction::Queue,
            location: location.shown(),
            source,
        })
    })?;
    outln!("{run_id}");
    crate::output::errln!(
        "queued run {run_id} of {}; follow it with `runbook show {run_id} --follow`",
        runbook.name
    );
    Ok(Exit::Success)
}

/// `runbook cancel`: take a queued run off the queue (recorded with who and why).
pub fn cancel(run_id: &str, reason: &str, state: Option<&str>) -> CliResult {
    let location = crate::state::location(state);
    let operator = crate::identity::operator();
    let note = match reason.trim() {
        "" => format!("cancelled by {operator}"),
        why => format!("cancelled by {operator}: {why}"),
    };
    let cancelled = crate::runtime::block_on(async {
        let store = crate::state::open(&location, false).await?;
        // The note is kept in the queue as typed: the run's secrets are read (from the plan it
        // was submitted with) and a reason or name holding one is refused (issue 11, promise 3).
        // An erased plan (a run its engine refused) is done: the cancel below says so.
        if let Some(plan) = store.queued_plan(run_id).await?
            && !plan.is_empty()
        {
            check_cancel_texts(&plan, reason.trim(), &operator, &location)?;
        }
        match store.cancel_queued(run_id, &note).await {
            // A run that exists but was never queued (started with `runbook run`) is not
            // "no run" (red team adv13b M4).
            Err(runbook_store::StoreError::NoSuchRun(_)) if store.run(run_id).await.is_ok() => {
                Err(CliError::Invalid(
                    Message::new(format!("run {run_id} is not a queued run; nothing was changed")).help(
                        "`cancel` takes a submitted run off the queue; a run started with `runbook run` is stopped on its terminal (Ctrl-C), or undone with `runbook compensate`",
                    ),
                ))
            }
            other => Ok(other?),
        }
    })?;
    match cancelled {
        None => {
            crate::output::errln!("run {run_id} taken off the queue; no worker will run it");
            Ok(Exit::Success)
        }
        Some(state) if state == runbook_store::STARTED => Err(CliError::Invalid(
            Message::new(format!(
                "run {run_id} has started (it has a journal) and waits in the queue to go on; nothing was changed"
            ))
            .help(format!(
                "a cancel would strand it, unjournaled; abandon it instead: `runbook abandon {run_id}` (or the run's page on the console)"
            )),
        )),
        Some(state) => Err(CliError::Invalid(
            Message::new(format!("run {run_id} is not queued any more ({state}); nothing was changed")).help(
                "a run a worker started is stopped like any run: on its worker (SIGTERM hands it back), or with `runbook compensate` once it stops",
            ),
        )),
    }
}

/// Refuse a cancel whose reason or operator name holds one of the queued run's secrets. A
/// reason that cannot be checked (the plan's files or the secrets' sources are not here) is
/// refused too; without a reason, only the name is checked, when it can be.
pub(crate) fn check_cancel_texts(
    plan: &str,
    reason: &str,
    operator: &str,
    location: &runbook_store::Location,
) -> Result<(), CliError> {
    let texts = [("the operator's name", operator), ("the reason", reason)];
    let cannot_check = || {
        CliError::Invalid(
            Message::new("the reason cannot be checked for the run's secrets here; nothing was changed")
                .help(
                    "cancel where the run's runbook and secrets' sources are, or cancel without `--reason`",
                ),
        )
    };
    let pinned = match crate::run::load_pinned("the queued plan", plan, false) {
        Ok(p) => p,
        Err(_) if reason.is_empty() => return Ok(()),
        Err(_) => return Err(cannot_check()),
    };
    let base_dir =
        pinned.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let engine = crate::state::engine_env(location);
    let secrets = match runbook_exec::secrets::resolve(&pinned.runbook, base_dir, &engine) {
        Ok(s) => s,
        Err(_) if reason.is_empty() => return Ok(()),
        Err(_) => return Err(cannot_check()),
    };
    crate::run::check_texts_hold_no_secret(&secrets, &texts)
}

/// In an engine a worker started: die with the worker, so that a dead worker leaves no
/// engine running unobserved (its runs are resumed by another worker once their leases
/// expire). Does nothing outside a worker.
pub fn die_with_worker() -> Result<(), CliError> {
    let Some(worker) = std::env::var(WORKER_PID).ok().and_then(|p| p.parse::<i32>().ok()) else {
        return Ok(());
    };
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    // The worker may have died before the line above: then nothing would ever signal us.
    if nix::unistd::getppid().as_raw() != worker {
        return Err(CliError::WorkerGone);
    }
    Ok(())
}

/// One engine the worker runs.
struct Engine {
    child: tokio::process::Child,
    claim: Claim,
}

/// `runbook worker`: claim, run, record, until SIGTERM or Ctrl-C; then let running runs
/// finish for `grace`, interrupt the rest and hand them back to the queue.
/// What `runbook worker` was asked.
#[derive(Debug)]
pub struct WorkerArgs<'a> {
    pub concurrency: usize,
    pub labels: &'a [String],
    pub poll: Duration,
    pub grace: Duration,
    /// A schedules file whose due times this worker fires (with the others of the store).
    pub schedules: Option<&'a Path>,
}

pub fn worker(args: WorkerArgs<'_>, state: Option<&str>) -> CliResult {
    // Taken first: pinning the schedules' plans takes a moment (seconds on a loaded host), and
    // a due time in it must still fire.
    let started = (std::time::SystemTime::now(), std::time::Instant::now());
    let WorkerArgs { concurrency, labels, poll, grace, schedules } = args;
    let location = crate::state::location(state);
    // A schedules file with any problem stops the worker before it starts: nothing fires
    // from a file that `check` refuses.
    let firing = schedules
        .map(|f| crate::schedules::Firing::load(f, started.0, started.1))
        .transpose()?
        .map(|f| f.polling_every(poll));
    let name = format!(
        "worker {} (pid {} on {})",
        crate::identity::operator(),
        std::process::id(),
        crate::identity::host()
    );
    let dir = crate::state::default_path().parent().unwrap_or(Path::new(".")).join("worker");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Err(CliError::CannotStart(Message::new(format!(
            "cannot create the worker folder `{}`: {e}",
            dir.display()
        ))));
    }
    let Ok(exe) = std::env::current_exe() else {
        return Err(CliError::CannotStart(Message::new("cannot find this program to start engines with")));
    };
    // One thread (the runtime module says why): a parent-death signal follows the thread that
    // spawned the child, and this thread lives as long as the worker.
    crate::runtime::block_on(async {
        let store = crate::state::open(&location, true).await?;
        if let Some(firing) = &firing {
            let conflicts = firing.conflicts(&store).await;
            if !conflicts.is_empty() {
                return Err(CliError::CannotStart(Message::all(conflicts).help(
                    "a schedule's name is one schedule in a store: rename one of them (its fires, runs and dead-man's switch are keyed by the name)",
                )));
            }
        }
        // In `db-role` mode the store accepts only this worker's own identity: its engines
        // act as it, not as the submitter (who stays recorded in the queue).
        let as_submitter = !matches!(store.identity().await, Ok((runbook_store::IdentityMode::DbRole, _)));
        let w = Worker {
            store,
            name,
            labels: labels.to_vec(),
            exe,
            dir,
            state: state.map(str::to_string),
            as_submitter,
            location: location.clone(),
        };
        Ok(w.serve(concurrency, poll, grace, firing).await)
    })
}

struct Worker {
    store: Store,
    name: String,
    labels: Vec<String>,
    exe: PathBuf,
    dir: PathBuf,
    state: Option<String>,
    /// Engines act as the run's submitter (`--as`); false in `db-role` identity mode.
    as_submitter: bool,
    location: runbook_store::Location,
}

/// A task of the worker that runs beside its loop, stopped when dropped.
struct Background(tokio::task::JoinHandle<()>);

impl Background {
    fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) -> Background {
        Background(tokio::spawn(f))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A claim whose worker has not heartbeaten for this long is taken to be dead.
const STALE_AFTER: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(1);

impl Worker {
    async fn serve(
        &self,
        concurrency: usize,
        poll: Duration,
        grace: Duration,
        firing: Option<crate::schedules::Firing>,
    ) -> Exit {
        outln!("{} serving {} run(s) at once", self.name, concurrency);
        let mut term = crate::run::sigterm_handler();
        let mut engines: BTreeMap<String, Engine> = BTreeMap::new();
        let mut draining: Option<tokio::time::Instant> = None;
        let mut interrupted = false;
        // The heartbeat and the schedule pass each run on a timer of their own: a slow pass
        // (a notification webhook that never answers, a long catch-up) never stalls the
        // heartbeat of the runs this worker executes, nor their reaping (adv17a S7).
        let beat = Background::spawn({
            let (store, name) = (self.store.clone(), self.name.clone());
            async move {
                loop {
                    if let Err(e) = store.heartbeat(&name, crate::state::now_ms()).await {
                        crate::output::errln!("warning: heartbeat failed: {e}");
                    }
                    tokio::time::sleep(HEARTBEAT).await;
                }
            }
        });
        let mut fires = firing.map(|firing| {
            let (store, name, location) = (self.store.clone(), self.name.clone(), self.location.clone());
            Background::spawn(async move {
                loop {
                    firing.fire_due(&store, &name, &location).await;
                    tokio::time::sleep(poll).await;
                }
            })
        });
        let _beat = beat;
        loop {
            self.reap(&mut engines).await;
            if let Some(since) = draining {
                if engines.is_empty() {
                    outln!("{} stopped", self.name);
                    return Exit::Success;
                }
                if !interrupted && since.elapsed() >= grace {
                    interrupted = true;
                    for (id, e) in &engines {
                        outln!("{id}: interrupted, handed back to the queue");
                        if let Some(pid) = e.child.id() {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid as i32),
                                nix::sys::signal::Signal::SIGTERM,
                            );
                        }
                    }
                }
            } else {
                while engines.len() < concurrency {
                    let mine: Vec<String> = engines.keys().cloned().collect();
                    match self.claim_next(&mine).await {
                        Some(engine) => {
                            engines.insert(engine.claim.run_id.clone(), engine);
                        }
                        None => break,
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = crate::run::sigterm(&mut term), if draining.is_none() => {
                    outln!("{} finishing its runs (up to {}), then stopping", self.name, humantime::format_duration(grace));
                    draining = Some(tokio::time::Instant::now());
                    drop(fires.take());
                }
                _ = tokio::signal::ctrl_c(), if draining.is_none() => {
                    draining = Some(tokio::time::Instant::now());
                    drop(fires.take());
                }
            }
        }
    }

    /// Claim the next run and start its engine; `None` when there is nothing to do now.
    /// `mine`: the runs this worker is executing, never claimed again by it (a claim of its
    /// own that looks stale is still its own: adv17a S7).
    async fn claim_next(&self, mine: &[String]) -> Option<Engine> {
        loop {
            let now = crate::state::now_ms();
            let stale = now - i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
            let claim = match self.store.claim_except(&self.name, &self.labels, now, stale, mine).await {
                Ok(c) => c?,
                Err(e) => {
                    crate::output::errln!("warning: cannot claim from the queue: {e}");
                    return None;
                }
            };
            // Started by an earlier claim and already finished (that worker died before it
            // could say so): record it, run nothing.
            if claim.started
                && let Ok(run) = self.store.run(&claim.run_id).await
                && let Some(code) = finished_code(&run.status)
            {
                self.release(&claim.run_id, Some(code), &format!("{} (found finished)", run.status)).await;
                continue;
            }
            // An abandon with compensation asked from the console is judged again from the
            // journal (red team adv18c): carried out only if nothing was journaled since it
            // was asked (no other decision came first) and this worker's engine can journal
            // the requester; otherwise dropped, with a note, and nothing runs.
            if claim.started
                && let Some(asked) = &claim.abandon
            {
                match self.judge_abandon(&claim.run_id, asked).await {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => {
                        let note = format!(
                            "abandon (compensating) asked by {} dropped: {why}; nothing was run",
                            asked.by.escape_default()
                        );
                        outln!("{}: {note}", claim.run_id);
                        self.release(&claim.run_id, Some(i64::from(exit::INVALID)), &note).await;
                        continue;
                    }
                    Err(e) => {
                        crate::output::errln!("warning: cannot read the journal of {}: {e}", claim.run_id);
                        self.hand_back(&claim.run_id, Duration::from_secs(1), "journal unreadable").await;
                        return None;
                    }
                }
            }
            // A run a schedule queued says so in its journal (`schedule_fired`).
            let scheduled = match self.store.fire_of_run(&claim.run_id).await {
                Ok(s) => s,
                Err(e) => {
                    crate::output::errln!("warning: cannot read which schedule queued {}: {e}", claim.run_id);
                    None
                }
            };
            match self.start(&claim, scheduled) {
                Ok(child) => {
                    // The reason is the engine's now (on its stdin): it leaves the queue, where a
                    // secret the console could not know would stay in clear (adv18c B2).
                    if claim.started
                        && claim.abandon.is_some()
                        && let Err(e) = self.store.hand_over_reason(&claim.run_id, &self.name).await
                    {
                        crate::output::errln!("warning: cannot clear the reason of {}: {e}", claim.run_id);
                    }
                    let verb = match (&claim.abandon, claim.started) {
                        (Some(_), true) => "abandoning after its compensations",
                        (None, true) => "resuming",
                        (_, false) => "running",
                    };
                    outln!("{}: {verb} (submitted by {})", claim.run_id, claim.submitted_by);
                    return Some(Engine { child, claim });
                }
                Err(e) => {
                    crate::output::errln!("error: cannot start an engine for {}: {e}", claim.run_id);
                    self.hand_back(&claim.run_id, Duration::from_secs(5), &format!("no engine: {e}")).await;
                    return None;
                }
            }
        }
    }

    /// The engine for a claim: `run --plan` for a new run, `resume` for one that started.
    fn start(
        &self,
        claim: &Claim,
        scheduled: Option<(String, i64)>,
    ) -> std::io::Result<tokio::process::Child> {
        let out = runbook_store::open_outside_store(
            &self.dir.join(format!("{}.out", claim.run_id)),
            std::fs::OpenOptions::new().create(true).append(true),
        )?;
        let mut env_remove_operator = false;
        let mut stdin = None;
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(asked) = claim.abandon.as_ref().filter(|_| claim.started) {
            // Abandon with compensation, asked from the console: the CLI's own path (a live
            // engine still refuses; the compensations run by their ordinary rules), as the
            // operator who asked. The reason goes on the engine's stdin, never on its command
            // line (any user of the host reads those: adv18c B2); the engine redacts it with
            // the secrets the run resolves here before it journals it.
            args.extend([
                "abandon".into(),
                claim.run_id.clone().into(),
                "--reason-file".into(),
                "-".into(),
                "--compensate".into(),
                "--yes".into(),
            ]);
            stdin = Some(engine_reason(asked.reason.as_deref()));
            if self.as_submitter {
                args.push(format!("--as={}", asked.by).into());
            } else {
                env_remove_operator = true;
            }
        } else if claim.started {
            args.extend(["resume".into(), claim.run_id.clone().into()]);
        } else {
            let plan = self.dir.join(format!("{}.plan.json", claim.run_id));
            runbook_store::write_outside_store(&plan, claim.plan.as_bytes())?;
            args.extend([
                "run".into(),
                "--plan".into(),
                plan.into_os_string(),
                "--run-id".into(),
                claim.run_id.clone().into(),
            ]);
        }
        let mut env: Vec<(String, std::ffi::OsString)> =
            vec![("RUNBOOK_SUBMITTED_BY".into(), claim.submitted_by.clone().into())];
        let mut env_remove = Vec::new();
        if claim.abandon.is_some() && claim.started {
            if env_remove_operator {
                env_remove.push("RUNBOOK_OPERATOR".to_string());
            }
        } else if self.as_submitter {
            args.extend(["--yes".into(), "--wait".into()]);
            // Journaled with `run_started`: the submitter may not approve their own run.
            // One argument: a name that starts with `-` is never read as an option (F4).
            // A resume an operator decided is theirs (`run_resumed`), not the submitter's.
            let by = claim.resume_by.as_deref().filter(|_| claim.started).unwrap_or(&claim.submitted_by);
            args.push(format!("--as={by}").into());
        } else {
            args.extend(["--yes".into(), "--wait".into()]);
            env_remove.push("RUNBOOK_OPERATOR".to_string());
        }
        // Through the environment, not the command line: a store URL may carry a password,
        // and any user of the host can read a process's arguments (`ps`).
        if let Some(state) = &self.state {
            env.push(("RUNBOOK_STATE".into(), state.into()));
        }
        env.push((WORKER_PID.into(), std::process::id().to_string().into()));
        if let Some((schedule, due_ms)) = scheduled
            && let Some(due) = runbook_core::schedule::utc_from_millis(due_ms)
        {
            let due = due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            env.push(("RUNBOOK_SCHEDULED".into(), format!("{schedule}@{due}").into()));
        }
        runbook_exec::process::spawn_engine(runbook_exec::process::EngineCommand {
            program: self.exe.clone(),
            args,
            env,
            env_remove,
            output: out,
            stdin,
        })
    }

    /// Record the engines that ended.
    async fn reap(&self, engines: &mut BTreeMap<String, Engine>) {
        let ended: Vec<(String, Option<i32>, bool, bool)> = engines
            .iter_mut()
            .filter_map(|(id, e)| match e.child.try_wait() {
                Ok(Some(status)) => {
                    let fresh = e.claim.abandon.is_none() && !e.claim.started;
                    Some((id.clone(), status.code(), e.claim.abandon.is_some(), fresh))
                }
                _ => None,
            })
            .collect();
        for (id, code, abandoning, fresh) in ended {
            engines.remove(&id);
            // The plan file was the engine's input (`run --plan`): once it ended, the run's
            // journal holds what it started with, and a plan its engine refused may hold a
            // secret's value (below). A claim handed back writes it again.
            if fresh {
                let _ = std::fs::remove_file(self.dir.join(format!("{id}.plan.json")));
            }
            match code.map(|c| u8::try_from(c).unwrap_or(u8::MAX)) {
                // Refused before anything ran (a plan that no longer matches, secrets that
                // cannot be read, a parameter that holds a secret's value): the engine read
                // the run's own secrets, which the submitter's check may not have (another
                // value under the same variable), so the plan is erased from the queue
                // (red team adv25 F3b). The submitter still has it; nothing ran.
                Some(exit::INVALID) if fresh => {
                    outln!("{id}: refused: nothing ran (exit 3), its plan erased; `runbook show {id}`");
                    let note =
                        "refused: nothing ran; its plan was erased (it may hold what the engine refused)";
                    // The guard erases only the plan of a run with no journal; one whose engine
                    // journaled anything ends as any refused run (red team adv28 A1, L4).
                    if self.store.release_refused(&id, &self.name, note).await.is_err() {
                        self.release(&id, Some(i64::from(exit::INVALID)), "refused").await;
                    }
                }
                // An abandon asked from the console ended (abandoned, or refused: a live
                // engine, its compensations not settled): done, never retried on its own;
                // `runbook show` and the worker's output say which.
                Some(c) if abandoning => {
                    let what = if c == exit::SUCCESS {
                        "abandoned after its compensations"
                    } else {
                        "abandon refused"
                    };
                    outln!("{id}: {what} (exit {c}); `runbook show {id}`");
                    self.release(&id, Some(i64::from(c)), what).await;
                }
                Some(exit::CANNOT_START) => {
                    outln!(
                        "{id}: could not start (its lock is held, or it is still running elsewhere); retrying later"
                    );
                    self.hand_back(&id, Duration::from_secs(1), "could not start: lock held").await;
                }
                Some(exit::INTERRUPTED) => {
                    outln!("{id}: interrupted; handed back to the queue, to be resumed");
                    self.hand_back(&id, Duration::ZERO, "interrupted").await;
                }
                // An abandon whose engine was killed: handed back with its request's head
                // moved past its own engine's records (they are no other's decision); the
                // next claim runs the same `abandon --compensate`, which finds what is in
                // doubt and runs nothing again by itself.
                None if abandoning => {
                    outln!("{id}: its engine was killed while abandoning; handed back to the queue");
                    let head = match self.store.run(&id).await {
                        Ok(run) => run.last_seq,
                        Err(e) => {
                            crate::output::errln!("warning: cannot read the journal of {id}: {e}");
                            self.hand_back(&id, Duration::from_secs(1), "engine killed").await;
                            continue;
                        }
                    };
                    let not_before = crate::state::now_ms() + 1000;
                    if let Err(e) =
                        self.store.hand_back_abandon(&id, &self.name, not_before, "engine killed", head).await
                    {
                        crate::output::errln!("warning: cannot hand {id} back: {e}");
                    }
                }
                // Killed by a signal (out of memory, an operator): handed back, but not at
                // once, so an engine that keeps dying does not spin.
                None => {
                    outln!("{id}: its engine was killed; handed back to the queue, to be resumed");
                    self.hand_back(&id, Duration::from_secs(1), "engine killed").await;
                }
                Some(c) => {
                    let what = match c {
                        exit::SUCCESS => "succeeded",
                        exit::FAILED => "failed",
                        exit::NEEDS_OPERATOR => "needs an operator",
                        exit::INVALID => "refused: nothing ran",
                        _ => "ended",
                    };
                    outln!("{id}: {what} (exit {c}); `runbook show {id}`");
                    self.release(&id, Some(i64::from(c)), what).await;
                }
            }
        }
    }

    /// Whether an abandon request still stands ([`runbook_core::lifecycle::judge_abandon_request`]):
    /// this worker's engine acts as the worker's own identity in `db-role` mode.
    async fn judge_abandon(
        &self,
        run_id: &str,
        asked: &runbook_store::AbandonRequest,
    ) -> Result<Result<(), runbook_core::lifecycle::StaleAbandon>, runbook_store::StoreError> {
        let (_, records) = self.store.run_and_records(run_id).await?;
        let me = (!self.as_submitter).then(crate::identity::operator);
        Ok(runbook_core::lifecycle::judge_abandon_request(
            &records,
            u64::try_from(asked.head).unwrap_or(0),
            &asked.by,
            me.as_deref(),
        ))
    }

    async fn release(&self, run_id: &str, code: Option<i64>, note: &str) {
        if let Err(e) = self.store.release_claim(run_id, &self.name, code, 0, note).await {
            crate::output::errln!("warning: cannot record the end of {run_id}: {e}");
        }
    }

    async fn hand_back(&self, run_id: &str, after: Duration, note: &str) {
        let not_before = crate::state::now_ms() + i64::try_from(after.as_millis()).unwrap_or(0);
        if let Err(e) = self.store.release_claim(run_id, &self.name, None, not_before, note).await {
            crate::output::errln!("warning: cannot hand {run_id} back: {e}");
        }
    }
}

/// What stands in for a reason an earlier engine was handed and did not journal (it died):
/// the reason left the queue when it was handed over.
const REASON_HANDED_OVER: &str =
    "(the reason was handed to an earlier engine, which stopped before journaling it)";

/// The reason an abandon's engine reads on its stdin, cut (at a character) to what a
/// worker hands on.
fn engine_reason(reason: Option<&str>) -> Vec<u8> {
    let reason = reason.unwrap_or(REASON_HANDED_OVER);
    let mut end = reason.len().min(runbook_exec::process::MAX_ENGINE_STDIN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.as_bytes()[..end].to_vec()
}

/// The exit code of a run that already ended, from its status.
fn finished_code(status: &str) -> Option<i64> {
    match status {
        "succeeded" => Some(i64::from(exit::SUCCESS)),
        "failed" => Some(i64::from(exit::FAILED)),
        _ => None,
    }
}
