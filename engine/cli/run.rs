//! `runbook run`: check, resolve, then hand the runbook to the executor and show progress.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_core::journal::{RunEvent, RunStatus, StepStatus};
use runbook_core::model::{Action, ParamValue, Runbook};
use runbook_exec::dispatch::{self, Dispatcher, ExecError, Outcome, Report, RunOptions};
use runbook_exec::process::Stream;
use runbook_exec::secrets;
use runbook_store::{Location, Store};
use tokio::sync::{mpsc, watch};

use crate::args::RunOutput;
use crate::as_started::{as_started_error, load_as_started};
use crate::error::{CliError, CliResult, Exit, Message};
use crate::identity::operator;
use crate::input::{display, load_with_missing_params, load_with_params};
use crate::output::Tone;
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

/// `20261130T101500Z-3f9a`: sortable, readable, unique enough for one store.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now).to_string().replace(['-', ':'], "");
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{stamp}-{:08x}", h.finish() & 0xffff_ffff)
}

/// A prompt is shown once the printer has shown everything reported before it (a step's
/// `ok` line never lands in the middle of the prompt): the asking thread sends a barrier
/// through the same channel as the reports and waits (a moment at most: never a reason to
/// hang) until the printer reaches it. The sender is there only while the run runs, so the
/// printer still sees the channel close.
static BARRIER: std::sync::Mutex<Option<mpsc::UnboundedSender<Report>>> = std::sync::Mutex::new(None);
static REACHED: (std::sync::Mutex<Vec<String>>, std::sync::Condvar) =
    (std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new());
/// How a barrier's text starts (no notice of the engine starts with a NUL).
const BARRIER_MARK: &str = "\u{0}prompt-barrier-";

/// Woken when the printer reaches a barrier, for [`after_printed_async`].
static PRINTED: std::sync::LazyLock<tokio::sync::Notify> = std::sync::LazyLock::new(tokio::sync::Notify::new);

/// Send a barrier to the printer: its token, `None` when no run's printer is there.
fn send_barrier() -> Option<String> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let token = format!("{BARRIER_MARK}{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let sent = BARRIER
        .lock()
        .ok()
        .and_then(|tx| tx.as_ref().map(|tx| tx.send(Report::Notice(token.clone())).is_ok()))
        .unwrap_or(false);
    sent.then_some(token)
}

/// True (and forgotten) once the printer has reached `token`.
fn take_reached(token: &str) -> bool {
    let Ok(mut reached) = REACHED.0.lock() else { return true };
    let was = reached.iter().any(|t| t == token);
    reached.retain(|t| t != token);
    was
}

/// [`after_printed`] for the engine's thread: the run's announcement waits on the runtime,
/// without a thread of the blocking pool (a thread costs a one-step run about half a
/// millisecond of CPU, issue 13). The same barrier, the same bound.
async fn after_printed_async() {
    let Some(token) = send_barrier() else { return };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let notified = PRINTED.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if take_reached(&token) {
            return;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            take_reached(&token);
            return;
        }
    }
}

/// Wait until the printer has shown what was reported before now.
fn after_printed() {
    let Some(token) = send_barrier() else { return };
    let Ok(reached) = REACHED.0.lock() else { return };
    let waited =
        REACHED.1.wait_timeout_while(reached, Duration::from_secs(2), |reached| !reached.contains(&token));
    if let Ok((mut reached, _)) = waited {
        reached.retain(|t| *t != token);
    }
}

/// The printer reached a barrier: true when `report` is one (it is not shown).
fn reached_barrier(report: &Report) -> bool {
    let Report::Notice(text) = report else { return false };
    if !text.starts_with(BARRIER_MARK) {
        return false;
    }
    if let Ok(mut reached) = REACHED.0.lock() {
        reached.push(text.clone());
        REACHED.1.notify_all();
    }
    PRINTED.notify_waiters();
    true
}

/// A run's `confirm` question, once the printer has shown what came before it.
fn ask_in_run(question: &str, withdrawn: &dispatch::Withdrawn) -> dispatch::Answer {
    after_printed();
    ask_on_terminal(question, withdrawn)
}

fn ask_on_terminal(question: &str, withdrawn: &dispatch::Withdrawn) -> dispatch::Answer {
    with_live_paused(|| ask_on_terminal_now(question, withdrawn))
}

fn ask_on_terminal_now(question: &str, withdrawn: &dispatch::Withdrawn) -> dispatch::Answer {
    use crate::prompt::{Reply, choose};
    // "No" fails the step and may start compensations: it is never assumed (an empty line,
    // a typo, an arrow key are asked again), and keys typed before the question are
    // discarded (`crate::prompt`).
    let yes_or_no: [(&[&str], bool); 2] = [(&["y", "yes"], true), (&["n", "no"], false)];
    match choose(&format!("? {question} [y/n] "), &yes_or_no, YES_OR_NO_AGAIN, Some(withdrawn.fd())) {
        Reply::Chosen(true) => dispatch::Answer::Yes,
        Reply::Chosen(false) => dispatch::Answer::No,
        Reply::Closed => dispatch::Answer::Unanswered(dispatch::Unanswered::TerminalClosed),
        Reply::Withdrawn => dispatch::Answer::Unanswered(dispatch::Unanswered::Withdrawn),
    }
}

/// Said when a yes/no question gets another answer.
const YES_OR_NO_AGAIN: &str = "  answer y or n (nothing else counts; Ctrl-C interrupts the run)";

/// Ask a yes/no question before anything runs (no run yet, nothing to withdraw it): Ctrl-C
/// here ends the process as it always does, end of input is no.
fn ask_before_running(question: &str) -> bool {
    match dispatch::Withdrawn::pair() {
        Ok((withdrawn, _keep)) => ask_on_terminal(question, &withdrawn) == dispatch::Answer::Yes,
        Err(_) => false,
    }
}

/// Ask for an approval decision on the terminal: `y` approves, `n` rejects (with a reason),
/// an empty line leaves the decision to `runbook approve`; anything else is asked again.
fn answer_on_terminal(prompt: &str, withdrawn: &dispatch::Withdrawn) -> dispatch::InlineReply {
    after_printed();
    with_live_paused(|| answer_on_terminal_now(prompt, withdrawn))
}

fn answer_on_terminal_now(prompt: &str, withdrawn: &dispatch::Withdrawn) -> dispatch::InlineReply {
    use crate::prompt::{Reply, choose, text};
    use dispatch::{InlineReply, Unanswered};
    let choices: [(&[&str], Option<bool>); 3] =
        [(&["y", "yes"], Some(true)), (&["n", "no"], Some(false)), (&[""], None)];
    let again = "  answer y (approve), n (reject), or an empty line (decide elsewhere)";
    let fd = Some(withdrawn.fd());
    let approve = match choose(
        &format!("? {prompt} [y = approve / n = reject / Enter = decide elsewhere] "),
        &choices,
        again,
        fd,
    ) {
        Reply::Chosen(Some(approve)) => approve,
        Reply::Chosen(None) => return InlineReply::Elsewhere,
        Reply::Closed => return InlineReply::Unanswered(Unanswered::TerminalClosed),
        Reply::Withdrawn => return InlineReply::Unanswered(Unanswered::Withdrawn),
    };
    match text("  reason: ", fd) {
        Reply::Chosen(reason) => {
            InlineReply::Decided(dispatch::InlineAnswer { approve, reason: reason.trim().to_string() })
        }
        Reply::Closed => InlineReply::Unanswered(Unanswered::TerminalClosed),
        Reply::Withdrawn => InlineReply::Unanswered(Unanswered::Withdrawn),
    }
}

pub fn run(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    opts: RunArgs,
    color: bool,
) -> CliResult {
    let (runbook, mut params, mut missing, wrong) = load_with_missing_params(file, args, params_file, color)?;
    // A secret typed as a parameter is refused in place of the problems that quote it (adv16u F1).
    if !wrong.is_empty() {
        refuse_secrets_given(file, args, &crate::state::location(opts.state.as_deref()))?;
    }
    // On a terminal, the operator may type what is missing (never without one).
    if !missing.is_empty() && crate::preflight::on_terminal() {
        let typed = crate::preflight::ask_missing(&runbook, &missing);
        missing.retain(|m| !typed.contains_key(m));
        params.extend(typed);
    }
    // The plan first: whatever cannot render with these parameters (a value an `operand`
    // refuses, a filter that fails) stops the run before anything runs. Missing parameters
    // are reported with everything else that stops the run (`prepare`), in one answer.
    if missing.is_empty() && wrong.is_empty() {
        runbook_core::plan::plan(&runbook, &params).map_err(CliError::Diagnostics)?;
    }
    let location = crate::state::location(opts.state.as_deref());
    let given = Given { missing: &missing, wrong: &wrong };
    let prepared =
        Prepared { wait: opts.wait, ..prepare(runbook, params, given, file, opts.yes, &location)? };
    start_new(prepared, opts)
}

/// `runbook run --plan plan.json`: run exactly what was reviewed, or nothing.
pub fn run_pinned(plan_path: &Path, opts: RunArgs, color: bool) -> CliResult {
    let shown = display(plan_path);
    let text = read_plan_text(&shown)?;
    let Pinned { runbook, params, file, reads } = load_pinned(&shown, &text, color)?;
    // The steps check what they read against the plan's digests, not against the ones
    // `prepare` takes a moment later (a file swapped in between would be pinned).
    let location = crate::state::location(opts.state.as_deref());
    let prepared = Prepared {
        wait: opts.wait,
        reads,
        ..prepare(runbook, params, Given::ALL, &file, opts.yes, &location)?
    };
    start_new(prepared, opts)
}

/// The text of a plan file (`run --plan`, `plan --diff`), or the error both commands give.
pub fn read_plan_text(shown: &str) -> Result<String, CliError> {
    crate::loader::read_plan(shown)
        .map_err(|e| CliError::Invalid(Message::new(format!("cannot read the plan `{shown}`: {e}"))))
}

/// A plan file's text as JSON, or the error `run --plan` and `plan --diff` give.
pub fn parse_plan_document(shown: &str, text: &str) -> Result<serde_json::Value, CliError> {
    runbook_core::render::diff::parse_document(text)
        .map_err(|e| CliError::Invalid(Message::new(format!("`{shown}` is not a plan document: {}", e.0))))
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
/// engine exactly (`Err` says why not).
pub fn load_pinned(shown: &str, text: &str, color: bool) -> Result<Pinned, CliError> {
    use runbook_core::lifecycle::{PinChange, PinMismatch, PinnedPlan};
    let document = parse_plan_document(shown, text)?;
    let pinned = PinnedPlan::from_json(document);
    let Some(file) = pinned.file.as_deref().map(PathBuf::from) else {
        return Err(CliError::Invalid(Message::new(format!(
            "`{shown}` does not name its runbook file (`runbook.file`)"
        ))));
    };
    let digest = |path: &str| {
        crate::loader::read_bytes(path).map(|bytes| runbook_core::plan::sha256_hex_bytes(&bytes))
    };
    if let Err(changes) =
        runbook_core::lifecycle::verify_pinned_files(&pinned, runbook_core::ENGINE_VERSION, digest)
    {
        let details = changes.iter().map(|c| match c {
            PinChange::Engine { planned, now } => {
                format!("- the plan was made by runbook {planned}; this is runbook {now}")
            }
            PinChange::Changed { path, then, now } => format!(
                "- `{path}` changed since it was planned (SHA-256 {} then, {} now)",
                short(then),
                short(now)
            ),
            PinChange::Unreadable { path, error } => format!("- `{path}` cannot be read: {error}"),
        });
        return Err(CliError::Invalid(Message {
            errors: vec![format!("the plan `{shown}` no longer matches what would run; nothing ran:")],
            details: details.collect(),
            help: Some(format!("review a new plan (`runbook plan {} -o {shown}`)", file.display())),
        }));
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
            return Err(CliError::Invalid(
                Message::new(format!("the plan made now differs from `{shown}`; nothing ran"))
                    .help(format!("review a new plan (`runbook plan {} -o {shown}`)", file.display())),
            ));
        }
        Err(PinMismatch::OtherFiles) => {
            return Err(CliError::Invalid(Message::new(
                "the runbook now involves other files than were planned; nothing ran",
            )));
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
fn start_new(prepared: Prepared, opts: RunArgs) -> CliResult {
    let location = crate::state::location(opts.state.as_deref());
    crate::runtime::block_on(async move {
        let store = crate::state::open(&location, true).await?;
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
fn confirmation(runbook: &Runbook, yes: bool) -> Result<Option<dispatch::Confirm>, CliError> {
    let needs_confirm = !runbook.confirming_steps().is_empty();
    if yes {
        Ok(None)
    } else if needs_confirm && !std::io::stdin().is_terminal() {
        Err(CliError::Invalid(
            Message::new(
                "this runbook asks for confirmation before some steps, and there is no terminal to ask on",
            )
            .help("review the plan (`runbook plan`), then run again with `--yes`"),
        ))
    } else {
        Ok(Some(Arc::new(ask_in_run)))
    }
}

/// Read the runbook's secrets from their sources; a secret's helper does not see the
/// engine's own configuration and credentials for the store at `location` (F1).
pub(crate) fn resolve_secrets(
    runbook: &Runbook,
    base_dir: &Path,
    location: &Location,
) -> Result<secrets::Secrets, CliError> {
    secrets::resolve(runbook, base_dir, &crate::state::engine_env(location)).map_err(|unresolved| {
        match unresolved {
            secrets::Unresolved::Problems(problems) => CliError::Invalid(
                Message::all(problems)
                    .help("secrets are read from their declared sources when a run starts; nothing ran"),
            ),
            secrets::Unresolved::Interrupted(secret) => CliError::Interrupted { secret },
        }
    })
}

/// Texts an operator typed that the store keeps beside the journal (the operator's name in
/// `runs.operator` and `locks.holder`, a queued run's labels and cancel reason): a text that
/// holds a secret is refused, never redacted (a redacted name would be another identity).
pub(crate) fn check_texts_hold_no_secret(
    secrets: &secrets::Secrets,
    texts: &[(&str, &str)],
) -> Result<(), CliError> {
    refuse_if_any(
        secrets::texts_holding_secrets(secrets, texts.iter().copied()),
        "the store keeps operator names, labels and reasons as typed; keep secret values out of them (`--as`, `$RUNBOOK_OPERATOR`, `--labels`, `--reason`); nothing was recorded",
    )
}

/// A plan quotes the files it reads (SQL scripts): a plan whose text holds a secret's
/// value, in any form the redactor knows, is refused before it is shown, queued or written
/// to a worker's plan file (red team adv19a-2). The message names the secret, never a value.
pub(crate) fn check_plan_holds_no_secret(secrets: &secrets::Secrets, plan: &str) -> Result<(), CliError> {
    refuse_if_any(
        secrets::texts_holding_secrets(secrets, [("the plan (a file it quotes)", plan)]),
        "a plan quotes the SQL scripts it reads and is kept in the store; keep secret values out of script files; nothing was queued",
    )
}

/// Parameters are journaled as given and are not secrets: a value that holds a secret is
/// refused (it would be written to the journal in clear, or, redacted, be another value on
/// resume).
pub(crate) fn check_params_hold_no_secret(
    secrets: &secrets::Secrets,
    params: &BTreeMap<String, ParamValue>,
) -> Result<(), CliError> {
    refuse_if_any(
        secrets::params_holding_secrets(secrets, params),
        "parameters are journaled and shown as given; pass secret values as `[secrets]`, and keep them out of parameter values; nothing ran",
    )
}

/// `Err` (the problems, then the hint) when there are problems.
fn refuse_if_any(problems: Vec<String>, help: &str) -> Result<(), CliError> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Invalid(Message::all(problems).help(help)))
}

/// Everything a run needs besides the store. What stops it and can be known without running
/// anything (`missing` parameters, `--yes`, files it reads, secrets) is reported together, in
/// one answer (`crate::preflight`); the preconditions come after, in the run.
/// What was wrong with the parameter values given to a new run: the required ones nobody
/// gave, and the problems with the values given (one answer lists both with the rest).
#[derive(Clone, Copy)]
struct Given<'a> {
    missing: &'a [String],
    wrong: &'a [runbook_core::Diagnostic],
}

impl Given<'_> {
    /// Every value given and right (a pinned plan, a resumed run).
    const ALL: Given<'static> = Given { missing: &[], wrong: &[] };
}

fn prepare(
    runbook: Arc<Runbook>,
    params: BTreeMap<String, ParamValue>,
    given: Given<'_>,
    file: &Path,
    yes: bool,
    location: &Location,
) -> Result<Prepared, CliError> {
    let mut answer = crate::preflight::Answer::new(&runbook, file);
    answer.wrong_values(given.wrong);
    answer.missing_params(given.missing);
    let confirm = answer.take("confirmation", confirmation(&runbook, yes));
    let asking: Vec<String> = runbook.confirming_steps().iter().map(|s| format!("`{s}`")).collect();
    answer.note("confirmation", format!("steps that ask: {}", asking.join(", ")));
    let base_dir =
        file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let reads = answer.take("files the run reads", read_digests(&runbook));
    let secrets = answer.take("secrets", resolve_secrets(&runbook, &base_dir, location));
    answer.finish()?;
    // `finish` returned every problem `take` recorded: each is here.
    let (Some(confirm), Some(reads), Some(secrets)) = (confirm, reads, secrets) else {
        return Err(CliError::Invalid(Message::new("the run cannot start; nothing ran")));
    };
    check_params_hold_no_secret(&secrets, &params)?;
    check_texts_hold_no_secret(&secrets, &[("the operator's name", &operator())])?;
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let runbook = expanded(runbook, &params);
    Ok(Prepared { runbook, params, secrets, confirm, base_dir, file, reads, wait: false })
}

/// The runbook with its `for-each` steps as their instances ([`runbook_core::foreach::expand`]):
/// what the dispatcher runs, `resume` judges and `compensate` undoes.
fn expanded(runbook: Arc<Runbook>, params: &BTreeMap<String, ParamValue>) -> Arc<Runbook> {
    match runbook_core::foreach::expand(&runbook, params) {
        std::borrow::Cow::Borrowed(_) => runbook,
        std::borrow::Cow::Owned(expanded) => Arc::new(expanded),
    }
}

/// The digests of every file besides runbooks that a run of `runbook` reads; `Err` when one
/// cannot be read.
fn read_digests(runbook: &Runbook) -> Result<Vec<runbook_core::plan::FileHash>, CliError> {
    match crate::loader::reads(runbook) {
        Ok(reads) => Ok(reads
            .into_iter()
            .map(|r| runbook_core::plan::FileHash { path: r.path, sha256: r.sha256 })
            .collect()),
        Err(problems) => Err(CliError::Invalid(
            Message::all(problems)
                .help("paths are relative to the folder of the runbook that names them; nothing ran"),
        )),
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
) -> CliResult {
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
        parent_lost: None,
        inherited: None,
        reads: prepared.reads,
        runbook_file: prepared.file,
        resume,
        reaper: start_reaper(&run_dir),
        compensate_only,
        // Set by a worker for the queued run it executes (see queue.rs): it only ever adds
        // a person who may not approve, so a forged value takes no right away.
        submitted_by: std::env::var("RUNBOOK_SUBMITTED_BY").ok().filter(|s| !s.trim().is_empty()),
        // Set by a worker for a run a schedule queued (`NAME@DUE`, see schedules.rs): journaled
        // as `schedule_fired`, a fact about the run's origin that grants nothing.
        scheduled: std::env::var("RUNBOOK_SCHEDULED")
            .ok()
            .and_then(|s| s.split_once('@').map(|(n, d)| (n.to_string(), d.to_string()))),
        engine_env: crate::state::engine_env(location),
        state_arg: crate::state::state_arg(location),
        // The run's id is on the screen before its first step starts (the header is shown
        // with the first report; this waits until the printer has shown it).
        announce: Some(std::sync::Arc::new(|| Box::pin(after_printed_async()))),
    };
    let json = output == RunOutput::Json;
    let verb = match (compensate_only, resuming) {
        (true, _) => "compensating",
        (false, true) => "resuming",
        (false, false) => "run",
    };
    // Printed with the run's first report, that is once the run holds its lock: a run the
    // lock refuses never exists, and prints no id (issue 14, point 9).
    let header = if json {
        serde_json::json!({ "run_id": run_id, "runbook": prepared.runbook.name, "state": location.shown(), "resume": resuming })
            .to_string()
    } else {
        format!(
            "{verb} {run_id} of {} (state {}, logs {})",
            prepared.runbook.name,
            location.shown(),
            display(&run_dir)
        )
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let live = !json && std::io::stdout().is_terminal();
    // The live view shows each running step's time; without it a quiet step says, now and
    // then, that it is still running.
    runbook_exec::output::set_heartbeat((!live).then(heartbeat).flatten());
    // On a thread of its own: a terminal or pipe that stops reading must not stall the
    // engine (its lease renewals, its steps), which runs on one thread.
    let printer = tokio::task::spawn_blocking(move || print_reports(rx, json, live, header));
    let (cancel_tx, cancel) = watch::channel(false);
    // Ctrl-C, SIGTERM and a closed terminal (SIGHUP) stop the run alike, and each is
    // journaled with its cause; installed here, before the run starts, so that none of
    // them kills the engine before it journals.
    let mut stops = runbook_exec::process::StopSignals::listen();
    tokio::spawn(async move {
        stops.next().await;
        let _ = cancel_tx.send(true);
    });
    let started = Instant::now();
    if let Ok(mut barrier) = BARRIER.lock() {
        *barrier = Some(tx.clone());
    }
    let result = Dispatcher::new(&prepared.runbook, &prepared.params, &prepared.secrets, store, options, tx)
        .run(cancel)
        .await;
    if let Ok(mut barrier) = BARRIER.lock() {
        *barrier = None;
    }
    let _ = printer.await;
    // A lock kept by another run: the commands it names address this store.
    let result = match result {
        Err(e @ ExecError::Store(runbook_store::StoreError::LockKept { .. })) => {
            return Err(CliError::from(e).with_state(&crate::state::state_flag(location)));
        }
        other => other,
    };
    // The logs' `log_kept` records follow the run's end: the hash to keep is the one after them.
    let kept = crate::state::keep_logs(store, &run_id, &run_dir).await;
    // The engine stopped: its live output is kept now, or stays on this host (best effort;
    // a reader skips a row whose attempt's log is kept in any case).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), store.drop_live(&run_id)).await;
    let result = result.map(|mut outcome| {
        if let Some(hash) = kept {
            outcome.last_hash = hash;
        }
        outcome
    });
    finish(&run_id, result, started.elapsed(), json)
}

/// How often a quiet step says it is still running when no terminal shows it live:
/// `$RUNBOOK_HEARTBEAT` (a duration, at least 1s; `0` or `off`: never), else 30s. Under a
/// second it is raised to one, with a warning: `1ns` printed a thousand lines a second
/// (red-team finding F6 of issue 14).
fn heartbeat() -> Option<Duration> {
    let default = Some(Duration::from_secs(30));
    let floor = Duration::from_secs(1);
    match std::env::var("RUNBOOK_HEARTBEAT") {
        Ok(text) if matches!(text.trim(), "0" | "off") => None,
        Ok(text) => match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => None,
            Ok(d) if d < floor => {
                crate::output::errln!("warning: RUNBOOK_HEARTBEAT=`{text}` is under 1s; using 1s");
                Some(floor)
            }
            Ok(d) => Some(d),
            Err(_) => {
                crate::output::errln!("warning: RUNBOOK_HEARTBEAT=`{text}` is not a duration; using 30s");
                default
            }
        },
        Err(_) => default,
    }
}

/// How long a run's lock lease lasts without renewal (renewed every third of it):
/// `$RUNBOOK_LEASE_TTL` (a duration, at least 1s), else 60s. A shorter lease lets another
/// host take over sooner from an engine that stopped answering; a longer one tolerates
/// longer stalls of a live engine.
fn lease_ttl() -> Duration {
    let default = Duration::from_secs(60);
    match std::env::var("RUNBOOK_LEASE_TTL") {
        // At most a day: a lease is a few store round trips, and a huge one overflowed the
        // engine's arithmetic (red team adv28 E1).
        Ok(text) => match humantime::parse_duration(text.trim()) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => d,
            _ => {
                crate::output::errln!(
                    "warning: RUNBOOK_LEASE_TTL=`{text}` is not a duration from 1s to 1 day; using 60s"
                );
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

/// The binary every step's program starts through (`engine/cli/bin/tie.rs`).
const TIE_BINARY: &str = "runbook-tie";

/// The helper that ends step processes if this process dies; without it (it could not be
/// started), steps still end with the engine in every case but SIGKILL.
fn start_reaper(run_dir: &Path) -> Option<Arc<runbook_exec::process::Reaper>> {
    let exe = std::env::current_exe().ok()?;
    // The small tie binary, installed next to this one (`cargo install` puts both in one
    // folder), which is also the reaper; without it steps start through `runbook __tie` and
    // the reaper is `runbook __reaper`, which cost more (bench/README).
    let tie = exe.with_file_name(TIE_BINARY);
    let tie = tie.is_file().then_some(tie);
    match runbook_exec::process::Reaper::start(tie.as_deref().unwrap_or(&exe), &["__reaper"]) {
        Ok(r) => {
            let r = r.with_program(exe).with_ledger(run_dir.join(PROCESS_GROUPS));
            Some(Arc::new(match tie {
                Some(tie) => r.with_tie(tie),
                None => r,
            }))
        }
        Err(e) => {
            crate::output::errln!(
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

pub fn resume(args: ResumeArgs) -> CliResult {
    with_existing_store(&args, async |store, location| {
        let (prepared, resume) = prepare_resume(store, location, &args, false).await?;
        execute(store, location, prepared, args.run_id.clone(), Some(resume), args.output, false).await
    })
}

/// Open an existing state store (`resume` and `compensate` never create one) and run `f`.
fn with_existing_store(args: &ResumeArgs, f: impl AsyncFnOnce(&Store, &Location) -> CliResult) -> CliResult {
    let location = crate::state::location(args.state.as_deref());
    crate::runtime::block_on(async move {
        let store = crate::state::open(&location, false).await?;
        f(&store, &location).await
    })
}

/// `runbook compensate RUN_ID`: undo what a run did, by hand.
pub fn compensate(args: ResumeArgs) -> CliResult {
    with_existing_store(&args, async |store, location| {
        let (prepared, resume) = prepare_resume(store, location, &args, true).await?;
        // An included runbook left in doubt is undone first (its completed nested steps),
        // as the dispatcher does (`machine::compensations`); then what completed.
        let in_doubt_includes = resume.state.order.iter().rev().filter(|id| {
            !id.contains('/')
                && resume.state.steps.get(id.as_str()).is_some_and(|s| s.status == StepStatus::Started)
                && prepared
                    .runbook
                    .find_step(id)
                    .is_some_and(|s| matches!(s.action, Action::Runbook(_)) && prepared.runbook.undoes(s))
        });
        let undo: Vec<&str> = in_doubt_includes
            .chain(resume.state.completed.iter().rev().filter(|id| {
                // Top-level steps: a nested one is undone through its `runbook` step.
                !id.contains('/')
                    && prepared.runbook.find_step(id).is_some_and(|s| prepared.runbook.undoes(s))
                    && resume.state.steps.get(id.as_str()).is_none_or(|s| !s.compensation.is_done())
            }))
            .map(String::as_str)
            .collect();
        // An engine that died while compensating may have undone everything and still
        // owe the run its `finally` steps and its end: this command finishes it. "While
        // compensating" is the core's rule (`undid_itself`: a compensation started, or a step
        // failed under `compensate`), so a run that failed with nothing to undo and died in
        // its `finally` step is finished too (CI, holder torture seed 1796603238440715697:
        // `compensate --rerun f` said "nothing to compensate" and the run never ended).
        // Unfinished: running (engine gone), interrupted by a signal, or waiting for an
        // operator; the run must not be stuck because a signal, not a kill, stopped it.
        let unfinished = matches!(
            resume.state.status,
            Some(RunStatus::Running | RunStatus::Interrupted | RunStatus::NeedsOperator)
        ) && prepared.runbook.undid_itself(&resume.state.scoped(""));
        // Succeeded nested steps with a `compensate` of an included runbook that failed
        // and stopped (it did not undo itself): not undone here (red team adv18b F7), and
        // named, so "nothing to compensate" is never said of them.
        let left_inside: Vec<&str> = resume
            .state
            .completed
            .iter()
            .filter(|id| id.contains('/'))
            .filter(|id| prepared.runbook.find_step(id).is_some_and(|s| s.compensate.is_some()))
            .filter(|id| resume.state.steps.get(id.as_str()).is_none_or(|s| !s.compensation.is_done()))
            .map(String::as_str)
            .collect();
        if undo.is_empty() && !unfinished && !left_inside.is_empty() {
            crate::output::errln!(
                "nothing to compensate in run {}: the succeeded steps with a `compensate` that are left ({}) are inside included runbooks that failed and stopped without undoing themselves, which `runbook compensate` does not undo",
                args.run_id,
                left_inside.join(", ")
            );
            return Ok(Exit::Success);
        }
        if undo.is_empty() && !unfinished {
            crate::output::errln!(
                "nothing to compensate in run {}: no succeeded step with a `compensate` is left to undo",
                args.run_id
            );
            return Ok(Exit::Success);
        }
        let question = if undo.is_empty() {
            format!("Finish run {} (nothing is left to undo; its `finally` steps run)?", args.run_id)
        } else {
            format!("Compensate run {} (undo, in this order: {})?", args.run_id, undo.join(", "))
        };
        let yes = args.yes || (std::io::stdin().is_terminal() && ask_before_running(&question));
        if !yes {
            return Err(CliError::Invalid(
                Message::new("not confirmed; nothing ran")
                    .help(format!("{question} Run again with `--yes` to proceed without a terminal.")),
            ));
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
    compensating: bool,
) -> Result<(Prepared, dispatch::Resume), CliError> {
    let id = &args.run_id;
    // One snapshot: a row and records read apart disagree while another engine writes.
    let (summary, mut records) = store.run_and_records(id).await?;
    // Read one after the other, the summary and the records may straddle another engine's
    // write: the records the summary describes are the first `last_seq` (a journal only
    // grows). Taking the run later checks that its journal still ends there.
    records.truncate(usize::try_from(summary.last_seq).unwrap_or(usize::MAX));
    if let Err(e) = runbook_core::journal::verify(&records, summary.last_hash.as_deref()) {
        return Err(CliError::NeedsOperator(
            Message::new(format!(
                "the journal of run {id} fails verification at record {}: {}",
                e.seq, e.reason
            ))
            .help(format!(
                "`runbook audit verify {id}`; a journal that fails verification cannot be resumed"
            )),
        ));
    }
    // A journal cut at its end verifies on its own: a hash kept outside the store shows it.
    if let Some(kept) = args.expect_hash.as_deref().map(str::trim)
        && !records.iter().any(|r| r.hash == kept)
    {
        return Err(CliError::NeedsOperator(
            Message::new(format!(
                "the journal of run {id} does not hold the record with hash {kept}: it was cut or rewritten; nothing was done"
            ))
            .help(format!("`runbook audit verify {id} --expect-hash {kept}`; restore the store from a backup")),
        ));
    }
    // How the run last ended, unless it was resumed since.
    let ended = runbook_core::lifecycle::last_end(records.iter().map(|r| &r.event));
    if let Err(refusal) = runbook_core::lifecycle::check_not_finished(ended, compensating) {
        return Err(refusal_error(id, &summary.status.to_string(), refusal));
    }
    let Some(RunEvent::RunStarted { file, files, params, .. }) = records.first().map(|r| r.event.clone())
    else {
        return Err(CliError::Invalid(Message::new(format!("run {id} has no `run_started` record"))));
    };
    let file = PathBuf::from(file);
    let (runbook, reads) = load_as_started(&display(&file), &files).map_err(|e| as_started_error(id, e))?;
    // Every journaled value is checked again, as a new run would check it: a value that
    // no longer fits its declaration (its type, enum or pattern) is refused, never run. Its
    // `for-each` steps as the instances it started with: the journaled values and the
    // runbook's files as started (both checked) give the same instances. The console judges
    // a run with the same function.
    let (runbook, values) = runbook_core::lifecycle::runbook_of_run(runbook, &params).map_err(|e| {
        CliError::Invalid(
            Message::new(format!("parameter `{}` of run {id}, as journaled: {}", e.param, e.why))
                .help("a run resumes with the values it started with; start a new run; nothing ran"),
        )
    })?;
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
            return Err(CliError::LockHeld {
                name: holder.name,
                run_id: id.clone(),
                holder: holder.holder,
                since: holder.acquired_at,
                still_running: true,
            });
        }
    }
    // On this host, what a dead engine of this run left running is ended before anything
    // is reported in doubt or run again (elsewhere, that engine's reaper answers for it).
    let ledger = crate::state::run_dir(location, id).join(PROCESS_GROUPS);
    let leftovers = runbook_exec::process::end_leftover_groups(&ledger);
    if !leftovers.is_empty() {
        let groups: Vec<String> = leftovers.iter().map(i32::to_string).collect();
        crate::output::errln!(
            "note: ended process groups that a dead engine of run {id} left running: {}",
            groups.join(", ")
        );
    }
    let state = runbook_core::journal::fold(&records);
    // A decision already journaled and carried out (an engine given it raced this one, or
    // died after acting on it) is accepted as done and not acted on again.
    let (mut done, mut left) = (Vec::new(), Vec::new());
    for (names, decision) in [
        (&args.rerun, runbook_core::journal::Decision::Rerun),
        (&args.skip, runbook_core::journal::Decision::Skip),
        (&args.undo, runbook_core::journal::Decision::Undo),
    ] {
        let carried =
            runbook_core::lifecycle::carried_out(records.iter().map(|r| &r.event), &state, names, decision);
        left.push(names.iter().filter(|n| !carried.contains(n)).cloned().collect::<Vec<String>>());
        done.extend(carried);
    }
    if !done.is_empty() {
        print_notes(id, &[runbook_core::lifecycle::Note::AlreadyCarriedOut(done)]);
    }
    let request = runbook_core::lifecycle::ResumeRequest {
        compensating,
        ended,
        rerun: &left[0],
        skip: &left[1],
        undo: &left[2],
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
                return Err(refusal_error(id, &summary.status.to_string(), refused.refusal));
            }
        };
    let base_dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let secrets = resolve_secrets(&runbook, &base_dir, location)?;
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

/// Tell the operator what resuming run `id` notes ([`runbook_core::lifecycle::Note`]).
fn print_notes(id: &str, notes: &[runbook_core::lifecycle::Note]) {
    use runbook_core::lifecycle::Note;
    for note in notes {
        match note {
            Note::IncludesUndone(steps) => crate::output::errln!(
                "note: run {id}: the runbook included by {} undid itself; that step stays failed and does not run again",
                steps.join(", ")
            ),
            Note::FailedRunAgain(steps) => {
                crate::output::errln!(
                    "note: run {id} failed; these steps run again, with a new set of attempts: {}",
                    steps.join(", ")
                )
            }
            Note::AlreadyCarriedOut(steps) => crate::output::errln!(
                "note: run {id}: the journal already holds these decisions, carried out; they are not acted on again: {}",
                steps.join(", ")
            ),
            Note::DoubtWithoutCompensation(steps) => {
                crate::output::errln!(
                    "note: steps in doubt without a compensation are left as they are: {}",
                    steps.join(", ")
                )
            }
        }
    }
}

/// Why run `id` may not be resumed (`status`: the run's status as the store shows it), as
/// the error printed; its variant picks the exit code: a usage mistake, an operator's
/// decision needed, or a run that cannot go on.
fn refusal_error(id: &str, status: &str, refusal: runbook_core::lifecycle::Refusal) -> CliError {
    use runbook_core::lifecycle::Refusal;
    // The words are the core's, shared with the console (`Refusal::words`); the CLI picks
    // the exit code.
    let words = refusal.words(id);
    let mut message = Message::all(words.errors);
    for line in words.details {
        message = message.detail(line);
    }
    if let Some(help) = words.help {
        message = message.help(help);
    }
    match refusal {
        Refusal::Finished { .. } => {
            CliError::RunFinished { run_id: id.to_string(), status: status.to_string() }
        }
        Refusal::Compensated => CliError::Invalid(message),
        Refusal::Compensating { .. } | Refusal::UndoUndecided { .. } | Refusal::Undecided { .. } => {
            CliError::NeedsOperator(message)
        }
        Refusal::UndoInResume { .. }
        | Refusal::NotUndoable { .. }
        | Refusal::UndoAndRerunOrSkip { .. }
        | Refusal::RerunAndSkip { .. }
        | Refusal::NotInDoubt { .. }
        | Refusal::NoReason => CliError::Usage(message),
    }
}

/// Say how the run ended, and pick the outcome from its status (an engine that could not
/// run it is the error `main` prints).
fn finish(run_id: &str, result: Result<Outcome, ExecError>, elapsed: Duration, json: bool) -> CliResult {
    let took = humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64));
    let outcome = result?;
    if json {
        outln!(
            "{}",
            serde_json::json!({ "run_id": run_id, "status": outcome.status.as_str(), "last_hash": outcome.last_hash })
        );
    } else {
        outln!("run {run_id} {} in {took}", outcome.status.as_str());
        outln!("journal hash {} (keep it to detect a cut journal)", outcome.last_hash);
    }
    Ok(match outcome.status {
        RunStatus::Succeeded => Exit::Success,
        RunStatus::Failed => Exit::Failed,
        RunStatus::NeedsOperator => Exit::NeedsOperator,
        RunStatus::Interrupted => Exit::Interrupted,
        RunStatus::Running | RunStatus::Abandoned => Exit::Failed,
    })
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

fn print_reports(mut rx: mpsc::UnboundedReceiver<Report>, json: bool, live: bool, header: String) {
    let mut live = live.then(Live::new);
    let mut started: BTreeMap<String, Instant> = BTreeMap::new();
    let mut header = Some(header);
    while let Some(report) = rx.blocking_recv() {
        if let Some(h) = header.take() {
            outln!("{h}");
        }
        // However it is shown below, it no longer waits: more output may come.
        runbook_exec::output::shown(&report);
        if reached_barrier(&report) {
            continue;
        }
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
                Report::Heartbeat { step, running } => {
                    serde_json::json!({ "heartbeat": { "step": step, "running_ms": running.as_millis() as u64 } })
                }
            };
            outln!("{value}");
            continue;
        }
        let tone = match &report {
            Report::Recorded(r) => tone_of(&r.event),
            Report::Output { .. }
            | Report::Notice(_)
            | Report::RetryScheduled { .. }
            | Report::Heartbeat { .. } => None,
        };
        let line = match report {
            Report::Output { step, stream, text } => match stream {
                Stream::Stdout => format!("{step} | {text}"),
                Stream::Stderr => format!("{step} ! {text}"),
            },
            // A note is one line (red team adv18b F8: an `enum` value's LF in the
            // "waits for approval" command printed a line of its own).
            Report::Notice(text) => format!("note: {}", runbook_core::shown::one_line(&text)),
            Report::RetryScheduled { step, delay } => {
                format!(
                    "  {step}: retrying in {}",
                    humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
                )
            }
            Report::Heartbeat { step, running } => {
                format!(
                    "  {step}: still running ({})",
                    humantime::format_duration(Duration::from_secs(running.as_secs()))
                )
            }
            Report::Recorded(record) => match record.event {
                // The prompt showed the question and the operator typed the answer (or passed
                // `--yes`): `show`, `audit` and the report tell who confirmed what. A failed
                // precondition is told by the error that ends the run, or the `step_failed`
                // that follows it (with its output).
                RunEvent::RunStarted { .. }
                | RunEvent::RunFinished { .. }
                | RunEvent::LogKept { .. }
                | RunEvent::ConfirmationRequested { .. }
                | RunEvent::ConfirmationGiven { .. }
                | RunEvent::PreconditionFailed { .. }
                | RunEvent::RunAbandoned { .. }
                | RunEvent::ScheduleFired { .. } => {
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
                    // A value inside the prompt (or a reason) is one line: its line breaks are
                    // shown as `\n`, never a line that reads like the engine's own.
                    let prompt = runbook_core::shown::one_line(&prompt);
                    format!("wait {step}: {prompt} ({min_approvals} approval(s) needed{who})")
                }
                RunEvent::ApprovalGranted { step, operator, reason, .. } => {
                    format!(
                        "approved {step} by {operator}{}",
                        if reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", runbook_core::shown::one_line(&reason))
                        }
                    )
                }
                RunEvent::ApprovalRejected { step, operator, reason } => {
                    format!("rejected {step} by {operator}: {}", runbook_core::shown::one_line(&reason))
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
                l.println(&painted(&line, tone));
            }
            None => outln!("{}", painted(&line, tone)),
        }
    }
    if let Some(l) = live {
        for (_, bar) in l.bars {
            bar.finish_and_clear();
        }
    }
}

/// The colour of an event's line, and the engine's word it starts with (the only text
/// painted). By the event's journal name: an event this does not name is shown plain.
fn tone_of(event: &RunEvent) -> Option<(Tone, &'static str)> {
    match event.kind() {
        "step_succeeded" => Some((Tone::Ok, "ok")),
        "approval_granted" => Some((Tone::Ok, "approved")),
        "step_failed" => Some((Tone::Failed, "FAILED")),
        "attempt_failed" => Some((Tone::Failed, "x")),
        "compensation_failed" => Some((Tone::Failed, "UNDO FAILED")),
        "approval_rejected" => Some((Tone::Failed, "rejected")),
        "compensation_started" => Some((Tone::Undo, "undo")),
        "compensation_succeeded" => Some((Tone::Undo, "undone")),
        "run_interrupted" => Some((Tone::Undo, "interrupted")),
        _ => None,
    }
}

/// `line` (already escaped) with its leading engine word painted.
fn painted(line: &str, tone: Option<(Tone, &'static str)>) -> String {
    match tone {
        Some((tone, word)) if line.starts_with(word) => {
            format!("{}{}", crate::output::paint(word, tone), &line[word.len()..])
        }
        Some(_) | None => line.to_string(),
    }
}

/// The end of a failed attempt's output (as journaled), indented under its line.
pub(crate) fn output_tail(output: Option<&str>) -> String {
    match output {
        Some(out) => out.lines().map(|l| format!("\n    {l}")).collect(),
        None => String::new(),
    }
}

/// A secret typed as a parameter's name or value, refused in place of the checks of the
/// values (RB071, RB072 and the rest quote the name and the value), so a refusal never sends
/// the secret back (the console's form and API, `runbook submit -p`, `runbook run -p`; red
/// team adv16u F1). Called when those checks refused (the secrets, which a command may give,
/// are not read twice for a start that is fine); a runbook that does not load, or secrets
/// that cannot be read, leave the checks' own answer (no secret is known to look for).
pub(crate) fn refuse_secrets_given(
    file: &Path,
    params: &[(String, String)],
    location: &runbook_store::Location,
) -> Result<(), CliError> {
    refuse_secrets_given_in(file, params, location, Reading::Run)
}

/// How a check reads the run's secrets: as the run will ([`resolve_secrets`]), or for a
/// review, running no helper ([`secrets::resolve_for_review`], red team adv19a-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    Run,
    Review,
}

/// The secrets as `reading` reads them.
pub(crate) fn resolve_secrets_as(
    runbook: &Runbook,
    base_dir: &Path,
    location: &Location,
    reading: Reading,
) -> Result<secrets::Secrets, CliError> {
    match reading {
        Reading::Run => resolve_secrets(runbook, base_dir, location),
        Reading::Review => {
            secrets::resolve_for_review(runbook, base_dir).map_err(|unresolved| match unresolved {
                secrets::Unresolved::Problems(problems) => CliError::Invalid(
                    Message::all(problems)
                        .help("secrets are read from their declared sources when a run starts; nothing ran"),
                ),
                secrets::Unresolved::Interrupted(secret) => CliError::Interrupted { secret },
            })
        }
    }
}

/// [`refuse_secrets_given`], the secrets read as `reading` reads them.
pub(crate) fn refuse_secrets_given_in(
    file: &Path,
    params: &[(String, String)],
    location: &runbook_store::Location,
    reading: Reading,
) -> Result<(), CliError> {
    if params.is_empty() {
        return Ok(());
    }
    let Ok((runbook, ..)) = crate::input::load_with_missing_params(file, &[], None, false) else {
        return Ok(());
    };
    let base_dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(secrets) = resolve_secrets_as(&runbook, base_dir, location, reading) else {
        return Ok(());
    };
    let holds = |text: &str| !runbook_exec::secrets::texts_holding_secrets(&secrets, [("", text)]).is_empty();
    let labels: Vec<(String, &str)> = params
        .iter()
        .flat_map(|(name, value)| {
            let of = if holds(name) {
                "a parameter given".to_string()
            } else {
                format!("parameter `{}`", runbook_core::shown::one_line(name))
            };
            [(format!("the name of {of}"), name.as_str()), (format!("the value of {of}"), value.as_str())]
        })
        .collect();
    let problems = runbook_exec::secrets::texts_holding_secrets(
        &secrets,
        labels.iter().map(|(label, text)| (label.as_str(), *text)),
    );
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Invalid(Message::all(problems).help(
        "parameters are journaled and shown as given; pass secret values as `[secrets]`, and keep them out of parameter values; nothing ran",
    )))
}
