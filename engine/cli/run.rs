//! `runbook run`: check, resolve, then hand the runbook to the executor and show progress.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::model::{ParamValue, Runbook};
use runbook_exec::dispatch::{self, Dispatcher, ExecError, Outcome, Report, RunOptions};
use runbook_exec::process::Stream;
use runbook_exec::secrets;
use runbook_store::{Location, Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::args::RunOutput;
use crate::commands::{display, load_with_params};
use crate::exit;
use crate::output::outln;

/// What `runbook run` was asked besides the runbook and its parameters.
#[derive(Debug)]
pub struct RunArgs {
    pub yes: bool,
    pub wait: bool,
    pub state: Option<String>,
    pub output: RunOutput,
    /// The id a worker's submitted run was given (else a new one).
    pub run_id: Option<String>,
}

/// `user@host`, or `RUNBOOK_OPERATOR` when set.
static OPERATOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Who runs this command (`--as` or $RUNBOOK_OPERATOR), set once at start.
pub fn set_operator(op: String) {
    let _ = OPERATOR.set(op);
}

/// Who runs this command: `--as`/$RUNBOOK_OPERATOR, else `$USER@host`.
pub fn operator() -> String {
    if let Some(op) = OPERATOR.get() {
        return op.clone();
    }
    let user =
        std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// `20261130T101500Z-3f9a`: sortable, readable, unique enough for one store.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now).to_string().replace(['-', ':'], "");
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{stamp}-{:08x}", h.finish() & 0xffff_ffff)
}

fn ask_on_terminal(question: &str) -> bool {
    with_live_paused(|| ask_on_terminal_now(question))
}

fn ask_on_terminal_now(question: &str) -> bool {
    let mut err = std::io::stderr();
    let _ = write!(err, "? {question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Ask for an approval decision on the terminal: `y` approves, `n` rejects (with a reason),
/// anything else leaves the decision to `runbook approve`.
fn answer_on_terminal(prompt: &str) -> Option<dispatch::InlineAnswer> {
    with_live_paused(|| answer_on_terminal_now(prompt))
}

fn answer_on_terminal_now(prompt: &str) -> Option<dispatch::InlineAnswer> {
    let mut err = std::io::stderr();
    let _ = write!(err, "? {prompt} [y = approve / n = reject / Enter = decide elsewhere] ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    let approve = match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => true,
        "n" | "no" => false,
        _ => return None,
    };
    let _ = write!(err, "  reason: ");
    let _ = err.flush();
    let mut reason = String::new();
    let _ = std::io::stdin().lock().read_line(&mut reason);
    Some(dispatch::InlineAnswer { approve, reason: reason.trim().to_string() })
}

pub fn run(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    opts: RunArgs,
    color: bool,
) -> u8 {
    let (runbook, params) = match load_with_params(file, args, params_file, color) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // The plan first: whatever cannot render with these parameters (a value an `operand`
    // refuses, a filter that fails) stops the run before anything runs.
    if let Err(diags) = runbook_core::plan::plan(&runbook, &params) {
        crate::commands::print_diagnostics(&diags, color);
        return exit::INVALID;
    }
    let prepared = match prepare(runbook, params, file, opts.yes) {
        Ok(p) => Prepared { wait: opts.wait, ..p },
        Err(code) => return code,
    };
    start_new(prepared, opts)
}

/// `runbook run --plan plan.json`: run exactly what was reviewed, or nothing.
pub fn run_pinned(plan_path: &Path, opts: RunArgs, color: bool) -> u8 {
    let shown = display(plan_path);
    let text = match crate::loader::read(&shown) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read the plan `{shown}`: {e}");
            return exit::INVALID;
        }
    };
    let Pinned { runbook, params, file, reads } = match load_pinned(&shown, &text, color) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let prepared = match prepare(runbook, params, &file, opts.yes) {
        // The steps check what they read against the plan's digests, not against the ones
        // `prepare` takes a moment later (a file swapped in between would be pinned).
        Ok(p) => Prepared { wait: opts.wait, reads, ..p },
        Err(code) => return code,
    };
    start_new(prepared, opts)
}

/// What a pinned plan runs.
pub struct Pinned {
    pub runbook: Arc<Runbook>,
    pub params: BTreeMap<String, ParamValue>,
    pub file: PathBuf,
    /// The files besides runbooks that the run reads, with the digests the plan reviewed:
    /// each step compares what it reads with these, never with a digest taken later.
    pub reads: Vec<runbook_core::plan::FileHash>,
}

/// A pinned plan's runbook and parameters, if the plan still matches the files and the
/// engine exactly (`Err` is the exit code, the reasons printed).
pub fn load_pinned(shown: &str, text: &str, color: bool) -> Result<Pinned, u8> {
    use runbook_core::lifecycle::{PinChange, PinMismatch, PinnedPlan};
    let document: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        eprintln!("error: `{shown}` is not a plan document: {e}");
        exit::INVALID
    })?;
    let pinned = PinnedPlan::from_json(document);
    let Some(file) = pinned.file.as_deref().map(PathBuf::from) else {
        eprintln!("error: `{shown}` does not name its runbook file (`runbook.file`)");
        return Err(exit::INVALID);
    };
    let digest = |path: &str| {
        crate::loader::read_bytes(path).map(|bytes| runbook_core::plan::sha256_hex_bytes(&bytes))
    };
    if let Err(changes) =
        runbook_core::lifecycle::verify_pinned_files(&pinned, runbook_core::ENGINE_VERSION, digest)
    {
        eprintln!("error: the plan `{shown}` no longer matches what would run; nothing ran:");
        for c in &changes {
            match c {
                PinChange::Engine { planned, now } => {
                    eprintln!("  - the plan was made by runbook {planned}; this is runbook {now}")
                }
                PinChange::Changed { path, then, now } => eprintln!(
                    "  - `{path}` changed since it was planned (SHA-256 {} then, {} now)",
                    short(then),
                    short(now)
                ),
                PinChange::Unreadable { path, error } => eprintln!("  - `{path}` cannot be read: {error}"),
            }
        }
        eprintln!("  help: review a new plan (`runbook plan {} -o {shown}`)", file.display());
        return Err(exit::INVALID);
    }
    let (runbook, params) = load_with_params(&file, &pinned.params, None, color)?;
    // Same files, same engine, same values: the plan must come out the same. Checked anyway,
    // so that nothing unreviewed can run.
    // The params file's entry was checked with the others above; its values are in `params`.
    let params_files = pinned.params_files.iter().map(|f| runbook_core::plan::PlanRead {
        kind: runbook_core::model::ReadKind::ParamsFile,
        path: f.path.clone(),
        sha256: f.sha256.clone(),
        text: None,
    });
    let run_reads = crate::loader::reads(&runbook).ok();
    let reads = run_reads.clone().map(|mut r| {
        r.extend(params_files);
        r
    });
    let now = runbook_core::plan::plan(&runbook, &params)
        .ok()
        .zip(reads)
        .and_then(|(p, reads)| serde_json::to_value(runbook_core::plan::Plan { reads, ..p }).ok());
    let current_files: Vec<String> = runbook.sources().iter().map(|s| s.path.clone()).collect();
    match runbook_core::lifecycle::verify_pinned(&pinned, now.as_ref(), &current_files) {
        Ok(()) => {}
        Err(PinMismatch::PlanDiffers) => {
            eprintln!("error: the plan made now differs from `{shown}`; nothing ran");
            eprintln!("  help: review a new plan (`runbook plan {} -o {shown}`)", file.display());
            return Err(exit::INVALID);
        }
        Err(PinMismatch::OtherFiles) => {
            eprintln!("error: the runbook now involves other files than were planned; nothing ran");
            return Err(exit::INVALID);
        }
    }
    // Equal to the plan's (the plans compared equal), so these are the reviewed digests.
    let reads = run_reads
        .unwrap_or_default()
        .into_iter()
        .map(|r| runbook_core::plan::FileHash { path: r.path, sha256: r.sha256 })
        .collect();
    Ok(Pinned { runbook, params, file, reads })
}

/// The first 12 characters (any input: a plan file is user input).
fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// Open the state store and start a new run.
fn start_new(prepared: Prepared, opts: RunArgs) -> u8 {
    let location = crate::state::location(opts.state.as_deref());
    block_on(async move {
        let store = match crate::state::open(&location, true).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let run_id = opts.run_id.unwrap_or_else(new_run_id);
        execute(&store, &location, prepared, run_id, None, opts.output, false).await
    })
}

/// Everything a run needs besides the store, checked before anything runs.
struct Prepared {
    runbook: Arc<Runbook>,
    params: BTreeMap<String, ParamValue>,
    secrets: secrets::Secrets,
    confirm: Option<dispatch::Confirm>,
    base_dir: PathBuf,
    file: PathBuf,
    /// Every other file the run reads, with its digest now (journaled for `resume`).
    reads: Vec<runbook_core::plan::FileHash>,
    /// Stay attached while approvals are pending.
    wait: bool,
}

/// How `confirm` questions are answered: `--yes`, the terminal, or (no terminal) refused.
fn confirmation(runbook: &Runbook, yes: bool) -> Result<Option<dispatch::Confirm>, u8> {
    let needs_confirm = runbook.steps.iter().any(|s| s.confirm.is_some());
    if yes {
        Ok(None)
    } else if needs_confirm && !std::io::stdin().is_terminal() {
        eprintln!(
            "error: this runbook asks for confirmation before some steps, and there is no terminal to ask on"
        );
        eprintln!("  help: review the plan (`runbook plan`), then run again with `--yes`");
        Err(exit::INVALID)
    } else {
        Ok(Some(Arc::new(ask_on_terminal)))
    }
}

pub(crate) fn resolve_secrets(runbook: &Runbook, base_dir: &Path) -> Result<secrets::Secrets, u8> {
    secrets::resolve(runbook, base_dir).map_err(|problems| {
        for p in problems {
            eprintln!("error: {p}");
        }
        eprintln!("  help: secrets are read from their declared sources when a run starts; nothing ran");
        exit::INVALID
    })
}

/// Texts an operator typed that the store keeps beside the journal (the operator's name in
/// `runs.operator` and `locks.holder`, a queued run's labels and cancel reason): a text that
/// holds a secret is refused, never redacted (a redacted name would be another identity).
pub(crate) fn check_texts_hold_no_secret(
    secrets: &secrets::Secrets,
    texts: &[(&str, &str)],
) -> Result<(), u8> {
    refuse_if_any(
        secrets::texts_holding_secrets(secrets, texts.iter().copied()),
        "the store keeps operator names, labels and reasons as typed; keep secret values out of them (`--as`, `$RUNBOOK_OPERATOR`, `--labels`, `--reason`); nothing was recorded",
    )
}

/// Parameters are journaled as given and are not secrets: a value that holds a secret is
/// refused (it would be written to the journal in clear, or, redacted, be another value on
/// resume).
pub(crate) fn check_params_hold_no_secret(
    secrets: &secrets::Secrets,
    params: &BTreeMap<String, ParamValue>,
) -> Result<(), u8> {
    refuse_if_any(
        secrets::params_holding_secrets(secrets, params),
        "parameters are journaled and shown as given; pass secret values as `[secrets]`, and keep them out of parameter values; nothing ran",
    )
}

/// `Err` (and the problems printed, then the hint) when there are problems.
fn refuse_if_any(problems: Vec<String>, help: &str) -> Result<(), u8> {
    if problems.is_empty() {
        return Ok(());
    }
    for p in problems {
        eprintln!("error: {p}");
    }
    eprintln!("  help: {help}");
    Err(exit::INVALID)
}

fn prepare(
    runbook: Arc<Runbook>,
    params: BTreeMap<String, ParamValue>,
    file: &Path,
    yes: bool,
) -> Result<Prepared, u8> {
    let confirm = confirmation(&runbook, yes)?;
    let base_dir =
        file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let reads = read_digests(&runbook)?;
    let secrets = resolve_secrets(&runbook, &base_dir)?;
    check_params_hold_no_secret(&secrets, &params)?;
    check_texts_hold_no_secret(&secrets, &[("the operator's name", &operator())])?;
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    Ok(Prepared { runbook, params, secrets, confirm, base_dir, file, reads, wait: false })
}

/// The digests of every file besides runbooks that a run of `runbook` reads; `Err` (the
/// exit code) when one cannot be read, the reasons printed.
fn read_digests(runbook: &Runbook) -> Result<Vec<runbook_core::plan::FileHash>, u8> {
    match crate::loader::reads(runbook) {
        Ok(reads) => Ok(reads
            .into_iter()
            .map(|r| runbook_core::plan::FileHash { path: r.path, sha256: r.sha256 })
            .collect()),
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            eprintln!("  help: paths are relative to the folder of the runbook that names them; nothing ran");
            Err(exit::INVALID)
        }
    }
}

/// The engine's runtime: one thread. Steps are processes, so the dispatcher only waits;
/// one thread saves the cross-thread wake-ups that a journaled step would otherwise pay
/// (measured with bench/exec). Blocking work (questions on the terminal, printing) runs on
/// the blocking pool.
fn block_on(f: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            exit::CANNOT_START
        }
    }
}

/// Run the dispatcher for a new run, a resumed one, or (`compensate_only`) a compensation.
async fn execute(
    store: &Store,
    location: &Location,
    prepared: Prepared,
    run_id: String,
    resume: Option<dispatch::Resume>,
    output: RunOutput,
    compensate_only: bool,
) -> u8 {
    crate::output::keep_running_without_stdout();
    let run_dir = crate::state::run_dir(location, &run_id);
    let resuming = resume.is_some();
    let options = RunOptions {
        run_id: run_id.clone(),
        operator: operator(),
        max_parallel: std::thread::available_parallelism().map_or(2, |n| n.get()),
        base_dir: prepared.base_dir,
        run_dir: run_dir.clone(),
        grace: Duration::from_secs(5),
        lease_ttl: lease_ttl(),
        confirm: prepared.confirm,
        wait_for_approvals: prepared.wait || std::io::stdin().is_terminal(),
        approve_inline: std::io::stdin()
            .is_terminal()
            .then(|| Arc::new(answer_on_terminal) as dispatch::ApproveInline),
        poll: Duration::from_millis(250),
        prefix: String::new(),
        parent_lease: None,
        inherited: None,
        reads: prepared.reads,
        runbook_file: prepared.file,
        resume,
        reaper: start_reaper(&run_dir),
        compensate_only,
        // Set by a worker for the queued run it executes (see queue.rs): it only ever adds
        // a person who may not approve, so a forged value takes no right away.
        submitted_by: std::env::var("RUNBOOK_SUBMITTED_BY").ok().filter(|s| !s.trim().is_empty()),
    };
    let json = output == RunOutput::Json;
    let verb = match (compensate_only, resuming) {
        (true, _) => "compensating",
        (false, true) => "resuming",
        (false, false) => "run",
    };
    if json {
        outln!(
            "{}",
            serde_json::json!({ "run_id": run_id, "runbook": prepared.runbook.name, "state": location.shown(), "resume": resuming })
        );
    } else {
        outln!(
            "{verb} {run_id} of {} (state {}, logs {})",
            prepared.runbook.name,
            location.shown(),
            display(&run_dir)
        );
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let live = !json && std::io::stdout().is_terminal();
    // On a thread of its own: a terminal or pipe that stops reading must not stall the
    // engine (its lease renewals, its steps), which runs on one thread.
    let printer = tokio::task::spawn_blocking(move || print_reports(rx, json, live));
    let (cancel_tx, cancel) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = sigterm_handler();
        tokio::select! {
            // A handler that cannot be installed never fires: it is not a Ctrl-C.
            interrupted = tokio::signal::ctrl_c() => {
                if interrupted.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            () = sigterm(&mut term) => {}
        }
        let _ = cancel_tx.send(true);
    });
    let started = Instant::now();
    let result = Dispatcher::new(&prepared.runbook, &prepared.params, &prepared.secrets, store, options, tx)
        .run(cancel)
        .await;
    let _ = printer.await;
    // The logs' `log_kept` records follow the run's end: the hash to keep is the one after them.
    let kept = crate::state::keep_logs(store, &run_id, &run_dir).await;
    let result = result.map(|mut outcome| {
        if let Some(hash) = kept {
            outcome.last_hash = hash;
        }
        outcome
    });
    finish(&run_id, result, started.elapsed(), json)
}

/// How long a run's lock lease lasts without renewal (renewed every third of it):
/// `$RUNBOOK_LEASE_TTL` (a duration, at least 1s), else 60s. A shorter lease lets another
/// host take over sooner from an engine that stopped answering; a longer one tolerates
/// longer stalls of a live engine.
fn lease_ttl() -> Duration {
    let default = Duration::from_secs(60);
    match std::env::var("RUNBOOK_LEASE_TTL") {
        Ok(text) => match humantime::parse_duration(text.trim()) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            _ => {
                eprintln!("warning: RUNBOOK_LEASE_TTL=`{text}` is not a duration of at least 1s; using 60s");
                default
            }
        },
        Err(_) => default,
    }
}

/// Listen for SIGTERM (`None` if the handler cannot be installed: then it never comes).
pub fn sigterm_handler() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()
}

/// The next SIGTERM.
pub async fn sigterm(handler: &mut Option<tokio::signal::unix::Signal>) {
    match handler.as_mut() {
        Some(h) => {
            h.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The helper that ends step processes if this process dies; without it (it could not be
/// started), steps still end with the engine in every case but SIGKILL.
fn start_reaper(run_dir: &Path) -> Option<Arc<runbook_exec::process::Reaper>> {
    let exe = std::env::current_exe().ok()?;
    match runbook_exec::process::Reaper::start(&exe, &["__reaper"]) {
        Ok(r) => Some(Arc::new(r.with_ledger(run_dir.join(PROCESS_GROUPS)))),
        Err(e) => {
            eprintln!(
                "warning: cannot start the process reaper ({e}); a killed engine could leave steps running"
            );
            None
        }
    }
}

/// What `runbook resume` was asked.
#[derive(Debug)]
pub struct ResumeArgs {
    pub run_id: String,
    pub rerun: Vec<String>,
    pub skip: Vec<String>,
    pub undo: Vec<String>,
    pub reason: Option<String>,
    pub expect_hash: Option<String>,
    pub yes: bool,
    pub wait: bool,
    pub state: Option<String>,
    pub output: RunOutput,
}

pub fn resume(args: ResumeArgs, color: bool) -> u8 {
    with_existing_store(&args, async |store, location| {
        match prepare_resume(store, location, &args, color, false).await {
            Ok((prepared, resume)) => {
                execute(store, location, prepared, args.run_id.clone(), Some(resume), args.output, false)
                    .await
            }
            Err(code) => code,
        }
    })
}

/// Open an existing state store (`resume` and `compensate` never create one) and run `f`.
fn with_existing_store(args: &ResumeArgs, f: impl AsyncFnOnce(&Store, &Location) -> u8) -> u8 {
    let location = crate::state::location(args.state.as_deref());
    block_on(async move {
        match crate::state::open(&location, false).await {
            Ok(store) => f(&store, &location).await,
            Err(code) => code,
        }
    })
}

/// `runbook compensate RUN_ID`: undo what a run did, by hand.
pub fn compensate(args: ResumeArgs, color: bool) -> u8 {
    with_existing_store(&args, async |store, location| {
        let (prepared, resume) = match prepare_resume(store, location, &args, color, true).await {
            Ok(x) => x,
            Err(code) => return code,
        };
        let undo: Vec<&str> = resume
            .state
            .completed
            .iter()
            .rev()
            .filter(|id| {
                prepared.runbook.step(id).is_some_and(|s| s.compensate.is_some())
                    && resume.state.steps.get(id.as_str()).is_none_or(|s| !s.compensation.is_done())
            })
            .map(String::as_str)
            .collect();
        // An engine that died while compensating may have undone everything and still
        // owe the run its `finally` steps and its end: this command finishes it.
        let unfinished = resume.state.status == Some(RunStatus::Running)
            && resume
                .state
                .steps
                .values()
                .any(|s| s.compensation != runbook_core::journal::CompensationStatus::None);
        if undo.is_empty() && !unfinished {
            eprintln!(
                "nothing to compensate in run {}: no succeeded step with a `compensate` is left to undo",
                args.run_id
            );
            return exit::SUCCESS;
        }
        let question = if undo.is_empty() {
            format!("Finish run {} (nothing is left to undo; its `finally` steps run)?", args.run_id)
        } else {
            format!("Compensate run {} (undo, in this order: {})?", args.run_id, undo.join(", "))
        };
        let yes = args.yes || (std::io::stdin().is_terminal() && ask_on_terminal(&question));
        if !yes {
            eprintln!("error: not confirmed; nothing ran");
            eprintln!("  help: {question} Run again with `--yes` to proceed without a terminal.");
            return exit::INVALID;
        }
        execute(store, location, prepared, args.run_id.clone(), Some(resume), args.output, true).await
    })
}

/// The file in a run's folder where its engines write down their step process groups.
const PROCESS_GROUPS: &str = "process-groups";

/// Read the run back, check it may be resumed, and settle the steps in doubt.
async fn prepare_resume(
    store: &Store,
    location: &Location,
    args: &ResumeArgs,
    color: bool,
    compensating: bool,
) -> Result<(Prepared, dispatch::Resume), u8> {
    let id = &args.run_id;
    // One snapshot: a row and records read apart disagree while another engine writes.
    let (summary, mut records) = match store.run_and_records(id).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(exit::INVALID);
        }
    };
    // Read one after the other, the summary and the records may straddle another engine's
    // write: the records the summary describes are the first `last_seq` (a journal only
    // grows). Taking the run later checks that its journal still ends there.
    records.truncate(usize::try_from(summary.last_seq).unwrap_or(usize::MAX));
    if let Err(e) = runbook_core::journal::verify(&records, summary.last_hash.as_deref()) {
        eprintln!("error: the journal of run {id} fails verification at record {}: {}", e.seq, e.reason);
        eprintln!("  help: `runbook audit verify {id}`; a journal that fails verification cannot be resumed");
        return Err(exit::NEEDS_OPERATOR);
    }
    // A journal cut at its end verifies on its own: a hash kept outside the store shows it.
    if let Some(kept) = args.expect_hash.as_deref().map(str::trim)
        && !records.iter().any(|r| r.hash == kept)
    {
        eprintln!(
            "error: the journal of run {id} does not hold the record with hash {kept}: it was cut or rewritten; nothing was done"
        );
        eprintln!(
            "  help: `runbook audit verify {id} --expect-hash {kept}`; restore the store from a backup"
        );
        return Err(exit::NEEDS_OPERATOR);
    }
    // How the run last ended, unless it was resumed since.
    let ended = runbook_core::lifecycle::last_end(records.iter().map(|r| &r.event));
    if let Err(refusal) = runbook_core::lifecycle::check_not_finished(ended, compensating) {
        print_refusal(id, &summary.status.to_string(), &refusal);
        return Err(refusal_code(&refusal));
    }
    let Some(RunEvent::RunStarted { file, files, params, .. }) = records.first().map(|r| r.event.clone())
    else {
        eprintln!("error: run {id} has no `run_started` record");
        return Err(exit::INVALID);
    };
    let file = PathBuf::from(file);
    let (runbook, reads) = match load_as_started(&display(&file), &files) {
        Ok(x) => x,
        Err(AsStarted::Unreadable(shown, e)) => {
            eprintln!("error: cannot read the run's runbook `{shown}`: {e}");
            return Err(exit::INVALID);
        }
        Err(AsStarted::Invalid(diagnostics)) => {
            eprint!("{}", crate::report::human(&diagnostics, color));
            return Err(exit::INVALID);
        }
        Err(AsStarted::ReadsUnreadable(problems)) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            eprintln!("  help: paths are relative to the folder of the runbook that names them; nothing ran");
            return Err(exit::INVALID);
        }
        Err(AsStarted::Changed(changes)) => {
            use runbook_core::lifecycle::FileChange;
            eprintln!(
                "error: the files of the run changed since run {id} started; resuming would run different steps"
            );
            // In the same order (paths may read differently: the run may have been started
            // from another folder).
            for c in changes {
                match c {
                    FileChange::Changed { path, then, now } => {
                        eprintln!("  `{path}` changed: SHA-256 {then} then, {now} now")
                    }
                    FileChange::NoLongerRead { path, sha256 } => {
                        eprintln!("  `{path}` (SHA-256 {sha256}) is no longer read by the run")
                    }
                    FileChange::NewlyRead { path, sha256 } => {
                        eprintln!(
                            "  `{path}` (SHA-256 {sha256}) is read now but was not when the run started"
                        )
                    }
                }
            }
            eprintln!("  help: restore the files as they were (same SHA-256), or start a new run");
            return Err(exit::INVALID);
        }
    };
    // Every journaled value is checked again, as a new run would check it: a value that
    // no longer fits its declaration (its type, enum or pattern) is refused, never run.
    let mut values = BTreeMap::new();
    for p in &runbook.params {
        let Some(json) = params.get(&p.name) else { continue };
        match runbook_core::params::from_json(p.ty, json)
            .and_then(|v| runbook_core::params::check(p, &v).map(|()| v))
        {
            Ok(v) => {
                values.insert(p.name.clone(), v);
            }
            Err(e) => {
                eprintln!("error: parameter `{}` of run {id}, as journaled: {e}", p.name);
                eprintln!(
                    "  help: a run resumes with the values it started with; start a new run; nothing ran"
                );
                return Err(exit::INVALID);
            }
        }
    }
    // A run whose lease is alive is running somewhere: said early, before any question.
    // (Only an early word: the store decides who holds the run when the engine takes its
    // lock, in one transaction.)
    if let Ok(Some(holder)) = store.lock_of_run(id).await {
        // The store's clock judges leases, as in `Store::acquire`; never this host's.
        let now_ms = store.clock_ms().await.unwrap_or(i64::MIN);
        if holder.lease_until > now_ms
            && !holder
                .parsed_holder()
                .is_detached(&dispatch::hostname(), runbook_exec::process::identity_is_gone)
        {
            eprintln!(
                "error: lock `{}` is held by run {id} ({}, since {}): the run is still running; nothing was done",
                holder.name, holder.holder, holder.acquired_at
            );
            return Err(exit::CANNOT_START);
        }
    }
    // On this host, what a dead engine of this run left running is ended before anything
    // is reported in doubt or run again (elsewhere, that engine's reaper answers for it).
    let ledger = crate::state::run_dir(location, id).join(PROCESS_GROUPS);
    let leftovers = runbook_exec::process::end_leftover_groups(&ledger);
    if !leftovers.is_empty() {
        let groups: Vec<String> = leftovers.iter().map(i32::to_string).collect();
        eprintln!(
            "note: ended process groups that a dead engine of run {id} left running: {}",
            groups.join(", ")
        );
    }
    let state = runbook_core::journal::fold(&records);
    let request = runbook_core::lifecycle::ResumeRequest {
        compensating,
        ended,
        rerun: &args.rerun,
        skip: &args.skip,
        undo: &args.undo,
        reason: args.reason.as_deref(),
    };
    let (decisions, compensation_decisions) =
        match runbook_core::lifecycle::assess_resume(&runbook, &state, &request) {
            Ok(plan) => {
                print_notes(id, &plan.notes);
                (plan.decisions, plan.compensation_decisions)
            }
            Err(refused) => {
                print_notes(id, &refused.notes);
                print_refusal(id, &summary.status.to_string(), &refused.refusal);
                return Err(refusal_code(&refused.refusal));
            }
        };
    let base_dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let secrets = resolve_secrets(&runbook, &base_dir)?;
    check_params_hold_no_secret(&secrets, &values)?;
    check_texts_hold_no_secret(&secrets, &[("the operator's name", &operator())])?;
    let confirm = confirmation(&runbook, args.yes)?;
    let prepared =
        Prepared { runbook, params: values, secrets, confirm, base_dir, file, reads, wait: args.wait };
    Ok((
        prepared,
        dispatch::Resume { state, started_at: summary.started_at.clone(), decisions, compensation_decisions },
    ))
}

/// Why the runbook of a run cannot be had as the run started it.
pub(crate) enum AsStarted {
    /// The runbook file cannot be read: (its path as shown, why).
    Unreadable(String, String),
    /// It no longer passes `check`.
    Invalid(Vec<runbook_core::Diagnostic>),
    /// Files it reads (SQL scripts, CA files) cannot be read.
    ReadsUnreadable(Vec<String>),
    /// Its files differ from those the run started with.
    Changed(Vec<runbook_core::lifecycle::FileChange>),
}

/// The runbook at `file` as the run started it: checked, and its files (the runbook files,
/// then every other file the run reads) with the digests journaled in `run_started`
/// ([`runbook_core::lifecycle::check_as_started`]); with the digests of the files it reads.
/// The one way `resume`, `compensate`, `approve` and `report` get a run's runbook.
pub(crate) fn load_as_started(
    shown: &str,
    files: &[runbook_core::plan::FileHash],
) -> Result<(Arc<Runbook>, Vec<runbook_core::plan::FileHash>), AsStarted> {
    let text = crate::loader::read(shown).map_err(|e| AsStarted::Unreadable(shown.to_string(), e))?;
    let includes = crate::loader::FsLoader::for_runbook(shown);
    let checked = runbook_core::validate::check(runbook_core::Source::new(shown, text), &includes);
    let invalid = checked.has_errors();
    let Some(runbook) = checked.runbook.filter(|_| !invalid) else {
        return Err(AsStarted::Invalid(checked.diagnostics));
    };
    // The runbook files, then every other file the run reads (SQL scripts, CA files).
    let reads: Vec<runbook_core::plan::FileHash> = crate::loader::reads(&runbook)
        .map_err(AsStarted::ReadsUnreadable)?
        .into_iter()
        .map(|r| runbook_core::plan::FileHash { path: r.path, sha256: r.sha256 })
        .collect();
    let now: Vec<runbook_core::plan::FileHash> = runbook
        .sources()
        .iter()
        .map(|s| runbook_core::plan::FileHash {
            path: s.path.clone(),
            sha256: runbook_core::plan::sha256_hex(&s.text),
        })
        .chain(reads.iter().cloned())
        .collect();
    runbook_core::lifecycle::check_as_started(files, &now).map_err(AsStarted::Changed)?;
    Ok((runbook, reads))
}

/// Tell the operator what resuming run `id` notes ([`runbook_core::lifecycle::Note`]).
fn print_notes(id: &str, notes: &[runbook_core::lifecycle::Note]) {
    use runbook_core::lifecycle::Note;
    for note in notes {
        match note {
            Note::IncludesUndone(steps) => eprintln!(
                "note: run {id}: the runbook included by {} undid itself; that step stays failed and does not run again",
                steps.join(", ")
            ),
            Note::FailedRunAgain(steps) => {
                eprintln!(
                    "note: run {id} failed; these steps run again, with a new set of attempts: {}",
                    steps.join(", ")
                )
            }
            Note::DoubtWithoutCompensation(steps) => {
                eprintln!(
                    "note: steps in doubt without a compensation are left as they are: {}",
                    steps.join(", ")
                )
            }
        }
    }
}

/// The exit code of a refusal to resume: a usage mistake, an operator's decision needed,
/// or a run that cannot go on.
fn refusal_code(refusal: &runbook_core::lifecycle::Refusal) -> u8 {
    use runbook_core::lifecycle::Refusal;
    match refusal {
        Refusal::Finished { .. } | Refusal::Compensated => exit::INVALID,
        Refusal::Compensating { .. } | Refusal::UndoUndecided { .. } | Refusal::Undecided { .. } => {
            exit::NEEDS_OPERATOR
        }
        Refusal::UndoInResume { .. }
        | Refusal::NotUndoable { .. }
        | Refusal::UndoAndRerunOrSkip { .. }
        | Refusal::RerunAndSkip { .. }
        | Refusal::NotInDoubt { .. }
        | Refusal::NoReason => exit::USAGE,
    }
}

/// Say why run `id` may not be resumed (`status`: the run's status as the store shows it).
fn print_refusal(id: &str, status: &str, refusal: &runbook_core::lifecycle::Refusal) {
    use runbook_core::lifecycle::Refusal;
    match refusal {
        Refusal::Finished { .. } => {
            eprintln!("error: run {id} has finished ({status}); there is nothing to resume")
        }
        Refusal::Compensated => {
            eprintln!(
                "error: run {id} failed under `on-failure = \"compensate\"`: what it did was undone, so it cannot go on"
            );
            eprintln!("  help: start a new run");
        }
        Refusal::Compensating { undoing } => {
            let what = if undoing.is_empty() {
                String::new()
            } else {
                format!(" (the runbook included by {} was undoing itself)", undoing.join(", "))
            };
            eprintln!(
                "error: run {id} had failed and was compensating when the engine stopped{what}; it cannot go on"
            );
            eprintln!("  help: `runbook compensate {id}` runs the compensations that are left");
        }
        Refusal::UndoInResume { step } => eprintln!(
            "error: `--undo {step}` is a decision for `runbook compensate`; `resume` re-runs or skips; nothing was done"
        ),
        Refusal::NotUndoable { step } => eprintln!(
            "error: `{step}` is not in doubt in run {id} with a compensation; `--undo` names a step that started, has no end record and can be undone"
        ),
        Refusal::UndoAndRerunOrSkip { step } => eprintln!(
            "error: `{step}` is named in `--undo` and in `--rerun` or `--skip`; a unit gets one decision; nothing was done"
        ),
        Refusal::RerunAndSkip { step } => {
            eprintln!(
                "error: `{step}` is named in both `--rerun` and `--skip`; a unit gets one decision; nothing was done"
            );
            eprintln!(
                "  help: name it once: `--rerun {step}` (run it again) or `--skip {step}` (treat it as done)"
            );
        }
        Refusal::NotInDoubt { step, compensating } => {
            let what = if *compensating { "compensations and `finally` steps" } else { "steps" };
            eprintln!(
                "error: `{step}` is not in doubt in run {id}; only {what} in doubt can be re-run or skipped"
            );
        }
        Refusal::NoReason => eprintln!(
            "error: `--rerun`, `--skip` and `--undo` need `--reason TEXT`: the decision is journaled with who made it and why"
        ),
        Refusal::UndoUndecided { steps } => {
            eprintln!("error: run {id} has steps in doubt that can be undone: {}", steps.join(", "));
            eprintln!(
                "  they started and the engine stopped before their outcome was recorded; they may have taken effect, and undoing the others while leaving them could leave the environment half done"
            );
            let first = steps.first().map(String::as_str).unwrap_or_default();
            eprintln!(
                "  help: check what they did, then `runbook compensate {id} --undo {first}` (it took effect: undo it) or `--skip {first}` (it did not: leave it), with `--reason TEXT`"
            );
        }
        Refusal::Undecided { steps, compensations, ended_mid_work, compensating } => {
            let command = if *compensating { "compensate" } else { "resume" };
            if !steps.is_empty() {
                eprintln!("error: run {id} has steps in doubt that are not idempotent: {}", steps.join(", "));
            }
            if !compensations.is_empty() {
                eprintln!(
                    "error: run {id} has compensations in doubt that are not idempotent: {}",
                    compensations.join(", ")
                );
            }
            eprintln!(
                "  they started and the engine stopped before their outcome was recorded; they may or may not have run"
            );
            if !ended_mid_work.is_empty() {
                eprintln!(
                    "  ended by their timeout, a cancellation or a signal, they may have done part of their work: {}",
                    ended_mid_work.join(", ")
                );
            }
            eprintln!(
                "  help: check what they did, then `runbook {command} {id} --rerun STEP` or `--skip STEP` (treat as done), with `--reason TEXT`"
            );
        }
    }
}

fn finish(run_id: &str, result: Result<Outcome, ExecError>, elapsed: Duration, json: bool) -> u8 {
    let took = humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64));
    match result {
        Ok(outcome) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "run_id": run_id, "status": outcome.status.as_str(), "last_hash": outcome.last_hash })
                );
            } else {
                outln!("run {run_id} {} in {took}", outcome.status.as_str());
                outln!("journal hash {} (keep it to detect a cut journal)", outcome.last_hash);
            }
            match outcome.status {
                RunStatus::Succeeded => exit::SUCCESS,
                RunStatus::Failed => exit::FAILED,
                RunStatus::NeedsOperator => exit::NEEDS_OPERATOR,
                RunStatus::Interrupted => exit::INTERRUPTED,
                RunStatus::Running => exit::FAILED,
            }
        }
        Err(ExecError::Store(StoreError::LockHeld(h))) => {
            eprintln!(
                "error: lock `{}` is held by run {} ({}, since {}); nothing ran",
                h.name, h.run_id, h.holder, h.acquired_at
            );
            exit::CANNOT_START
        }
        Err(e @ ExecError::Preconditions(_)) | Err(e @ ExecError::LockName(_)) => {
            eprintln!("error: {e}");
            exit::INVALID
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::CANNOT_START
        }
    }
}

/// On a terminal: a live line per running step (attempt, elapsed), above which finished
/// steps and output scroll. Elsewhere: plain lines.
struct Live {
    multi: indicatif::MultiProgress,
    bars: BTreeMap<String, indicatif::ProgressBar>,
}

/// The live view while one is drawn, so that a question on the terminal can pause it.
static LIVE: std::sync::Mutex<Option<indicatif::MultiProgress>> = std::sync::Mutex::new(None);

/// Run `f` (a question on the terminal) with the live view paused, so the two do not mix.
fn with_live_paused<T>(f: impl FnOnce() -> T) -> T {
    let live = LIVE.lock().ok().and_then(|l| l.clone());
    match live {
        Some(multi) => multi.suspend(f),
        None => f(),
    }
}

impl Live {
    fn new() -> Live {
        let multi = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout());
        if let Ok(mut l) = LIVE.lock() {
            *l = Some(multi.clone());
        }
        Live { multi, bars: BTreeMap::new() }
    }

    fn start(&mut self, step: &str, attempt: u32) {
        let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner().with_style(style));
        let attempt = if attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
        bar.set_message(format!("{step}{attempt}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Some(old) = self.bars.insert(step.to_string(), bar) {
            old.finish_and_clear();
        }
    }

    fn end(&mut self, step: &str) {
        if let Some(bar) = self.bars.remove(step) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn println(&self, line: &str) {
        if self.multi.println(line).is_err() {
            outln!("{line}");
        }
    }
}

fn print_reports(mut rx: mpsc::UnboundedReceiver<Report>, json: bool, live: bool) {
    let mut live = live.then(Live::new);
    let mut started: BTreeMap<String, Instant> = BTreeMap::new();
    while let Some(report) = rx.blocking_recv() {
        // However it is shown below, it no longer waits: more output may come.
        runbook_exec::output::shown(&report);
        if json {
            let value = match &report {
                Report::Recorded(r) => serde_json::to_value(r.as_ref()).unwrap_or_default(),
                Report::Output { step, stream, text } => serde_json::json!({
                    "output": { "step": step, "stream": if *stream == Stream::Stdout { "stdout" } else { "stderr" }, "text": text }
                }),
                Report::RetryScheduled { step, delay } => {
                    serde_json::json!({ "retry": { "step": step, "delay_ms": delay.as_millis() as u64 } })
                }
                Report::Notice(text) => serde_json::json!({ "notice": text }),
            };
            outln!("{value}");
            continue;
        }
        let line = match report {
            Report::Output { step, stream, text } => match stream {
                Stream::Stdout => format!("{step} | {text}"),
                Stream::Stderr => format!("{step} ! {text}"),
            },
            Report::Notice(text) => format!("note: {text}"),
            Report::RetryScheduled { step, delay } => {
                format!(
                    "  {step}: retrying in {}",
                    humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
                )
            }
            Report::Recorded(record) => match record.event {
                RunEvent::RunStarted { .. } | RunEvent::RunFinished { .. } | RunEvent::LogKept { .. } => {
                    continue;
                }
                RunEvent::StepStarted { step, attempt } => {
                    started.insert(step.clone(), Instant::now());
                    if let Some(l) = live.as_mut() {
                        l.start(&step, attempt);
                        continue;
                    }
                    if attempt > 1 { format!("> {step} (attempt {attempt})") } else { format!("> {step}") }
                }
                RunEvent::StepSucceeded { step, outputs, .. } => {
                    let took = started
                        .get(&step)
                        .map(|t| format!(" in {:.1}s", t.elapsed().as_secs_f64()))
                        .unwrap_or_default();
                    // The bulky outputs of http and sql steps (their line already summed them up)
                    // stay in `runbook show` and the journal.
                    let outs: Vec<String> = outputs
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "headers" | "body" | "json" | "rows"))
                        .map(|(k, v)| format!("{k}={}", crate::history::brief(v)))
                        .collect();
                    let outs =
                        if outs.is_empty() { String::new() } else { format!(" ({})", outs.join(", ")) };
                    format!("ok {step}{took}{outs}")
                }
                RunEvent::AttemptFailed { step, attempt, reason, output, .. } => {
                    format!("x {step} attempt {attempt} {reason}{}", output_tail(output.as_deref()))
                }
                RunEvent::StepFailed { step, reason, output, .. } => {
                    format!("FAILED {step}: {reason}{}", output_tail(output.as_deref()))
                }
                RunEvent::StepSkipped { step, reason } => format!("skip {step}: {reason}"),
                RunEvent::CompensationStarted { step, .. } => format!("undo {step}"),
                RunEvent::CompensationSucceeded { step, outputs } => {
                    let outs: Vec<String> =
                        outputs.iter().map(|(k, v)| format!("{k}={}", crate::history::brief(v))).collect();
                    if outs.is_empty() {
                        format!("undone {step}")
                    } else {
                        format!("undone {step} ({})", outs.join(", "))
                    }
                }
                RunEvent::CompensationFailed { step, reason, output } => {
                    format!("UNDO FAILED {step}: {reason}{}", output_tail(output.as_deref()))
                }
                RunEvent::RunInterrupted { reason } => format!("interrupted: {reason}"),
                RunEvent::RunResumed { operator, rerun_idempotent } => {
                    if rerun_idempotent.is_empty() {
                        format!("resumed by {operator}")
                    } else {
                        format!(
                            "resumed by {operator}; running again (idempotent): {}",
                            rerun_idempotent.join(", ")
                        )
                    }
                }
                RunEvent::ApprovalRequested { step, prompt, min_approvals, approvers, .. } => {
                    let who = if approvers.is_empty() {
                        String::new()
                    } else {
                        format!(" from {}", approvers.join(", "))
                    };
                    format!("wait {step}: {prompt} ({min_approvals} approval(s) needed{who})")
                }
                RunEvent::ApprovalGranted { step, operator, reason, .. } => {
                    format!(
                        "approved {step} by {operator}{}",
                        if reason.is_empty() { String::new() } else { format!(": {reason}") }
                    )
                }
                RunEvent::ApprovalRejected { step, operator, reason } => {
                    format!("rejected {step} by {operator}: {reason}")
                }
                RunEvent::RunSuspended { waiting } => {
                    format!("suspended: waiting for approval of {}", waiting.join(", "))
                }
                RunEvent::EscalationFired { escalation, delivered, error } => match (delivered, error) {
                    (true, _) => format!("escalation {escalation}: notified"),
                    (false, e) => {
                        format!("escalation {escalation}: notification failed: {}", e.unwrap_or_default())
                    }
                },
                RunEvent::OperatorDecision { step, decision, operator, reason } => {
                    let decision = match decision {
                        runbook_core::journal::Decision::Rerun => "re-run",
                        runbook_core::journal::Decision::Skip => "skip",
                        runbook_core::journal::Decision::Undo => "undo (it took effect)",
                    };
                    format!("{operator} decided to {decision} {step}: {reason}")
                }
                RunEvent::CompensationDecision { step, decision, operator, reason } => {
                    let decision = match decision {
                        runbook_core::journal::Decision::Rerun => "re-run",
                        runbook_core::journal::Decision::Skip => "skip",
                        runbook_core::journal::Decision::Undo => "undo",
                    };
                    format!("{operator} decided to {decision} the compensation of {step}: {reason}")
                }
            },
        };
        // Every line as a terminal may show it: what a step printed, its error text, names and
        // reasons are one line each, with control and invisible format characters escaped.
        let line: String = line.split('\n').map(runbook_core::shown::one_line).collect::<Vec<_>>().join("\n");
        match live.as_mut() {
            Some(l) => {
                // A step's line leaves the live view once the step has an outcome.
                if let Some(step) = line
                    .split_whitespace()
                    .nth(1)
                    .filter(|_| ["ok ", "FAILED ", "skip ", "x "].iter().any(|p| line.starts_with(p)))
                {
                    let step = step.trim_end_matches(':');
                    if !line.starts_with("x ") {
                        l.end(step);
                    }
                }
                l.println(&line);
            }
            None => outln!("{line}"),
        }
    }
    if let Some(l) = live {
        for (_, bar) in l.bars {
            bar.finish_and_clear();
        }
    }
}

/// The end of a failed attempt's output (as journaled), indented under its line.
pub(crate) fn output_tail(output: Option<&str>) -> String {
    match output {
        Some(out) => out.lines().map(|l| format!("\n    {l}")).collect(),
        None => String::new(),
    }
}
