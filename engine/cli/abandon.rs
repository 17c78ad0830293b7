//! `runbook abandon RUN --reason TEXT [--compensate]` (issue 14, point 4): end an unfinished
//! run for good (its engine dead, interrupted, suspended at an approval, needing an
//! operator), journaled with who and why (`run_abandoned`), compensating first when asked
//! (the `compensate` path, with its ordinary rules), then letting its lock go.
//!
//! The recording (the lock taken as the run takes it, `run_abandoned` fenced by that lease,
//! the reason redacted) is `runbook_exec::abandon::abandon`, which the console's abandon
//! form calls too; this file runs the compensation first when asked and words the answer.

use runbook_core::journal::RunStatus;
use runbook_exec::abandon::{LockRefusal, Refusal};

use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::outln;

/// What `abandon` was asked.
pub struct AbandonArgs {
    /// The run.
    pub run_id: String,
    /// Why (required).
    pub reason: String,
    /// Run its compensations first.
    pub compensate: bool,
    /// Do not ask before compensating.
    pub yes: bool,
    /// `--state`.
    pub state: Option<String>,
}

/// The longest reason read from `--reason-file` (bytes): a reason is a few lines.
const MAX_REASON_FILE: u64 = 64 * 1024;

/// `--reason-file FILE` (`-`: stdin): the reason, its final line break dropped. A file that
/// is not UTF-8 or longer than [`MAX_REASON_FILE`] is refused before anything is done.
pub fn read_reason(file: &std::path::Path) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        crate::prompt::read_input(MAX_REASON_FILE + 1, &mut bytes)
    } else {
        // As every file the CLI reads: a regular file opened without blocking (a FIFO is
        // refused at once: adv20-5), never the store's (adv20-1).
        match crate::loader::read_bytes(&file.to_string_lossy()) {
            Ok(read) => {
                bytes = read;
                Ok(bytes.len())
            }
            Err(why) => Err(std::io::Error::other(why)),
        }
    };
    let shown = file.display();
    let refused = |why: String| {
        CliError::Usage(Message::new(format!(
            "cannot read the reason from `{shown}`: {why}; nothing was done"
        )))
    };
    read.map_err(|e| refused(e.to_string()))?;
    if bytes.len() as u64 > MAX_REASON_FILE {
        return Err(refused(format!("it is longer than {MAX_REASON_FILE} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| refused("it is not UTF-8 text".into()))?;
    Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string())
}

/// `runbook abandon`.
pub fn abandon(args: AbandonArgs) -> CliResult {
    if args.reason.trim().is_empty() {
        return Err(CliError::Usage(
            Message::new("`--reason` says why the run is abandoned; it is journaled; nothing was done")
                .help(format!("runbook abandon {} --reason \"...\"", args.run_id)),
        ));
    }
    let location = crate::state::location(args.state.as_deref());
    // Check, then act (red team adv14a F3): the run must be unfinished BEFORE anything is
    // compensated; a finished run is refused with nothing run and nothing recorded.
    let opened = crate::runtime::block_on(async {
        let store = crate::state::open(&location, false).await?;
        let (_, records) = store.run_and_records(&args.run_id).await?;
        let state = runbook_core::journal::fold(&records);
        check_unfinished(&args.run_id, state.status, args.compensate)
    })?;
    if args.compensate {
        // The ordinary compensation first (reverse completion order, retries, failures
        // reported); the run is abandoned only once its compensations are settled.
        let exit = crate::run::compensate(crate::run::ResumeArgs {
            run_id: args.run_id.clone(),
            rerun: Vec::new(),
            skip: Vec::new(),
            undo: Vec::new(),
            reason: Some(args.reason.clone()),
            expect_hash: None,
            yes: args.yes,
            wait: false,
            state: args.state.clone(),
            output: crate::args::RunOutput::Text,
        })?;
        match exit {
            Exit::Success | Exit::Failed => {}
            Exit::Invalid | Exit::NeedsOperator | Exit::Interrupted | Exit::Different => {
                crate::output::errln!(
                    "run {} is not abandoned: its compensations are not settled (see above)",
                    args.run_id
                );
                return Ok(exit);
            }
        }
    }
    crate::runtime::block_on(async {
        let store = crate::state::open(&location, false).await?;
        record(&store, &location, &args, opened).await
    })
}

/// The lifecycle's rule for `abandon` ([`runbook_exec::abandon::check_unfinished`]): only
/// an unfinished run is abandoned. Its status, when it may be.
fn check_unfinished(id: &str, status: Option<RunStatus>, compensate: bool) -> Result<RunStatus, CliError> {
    runbook_exec::abandon::check_unfinished(status).map_err(|ended| finished(id, ended, compensate))
}

fn finished(id: &str, ended: RunStatus, compensate: bool) -> CliError {
    let message = Message::new(format!(
        "run {id} has finished ({}); there is nothing to abandon; nothing was recorded",
        ended.as_str()
    ));
    CliError::Invalid(match (ended, compensate) {
        (RunStatus::Succeeded | RunStatus::Failed, true) => message.help(format!(
            "`abandon` ends unfinished runs; to undo a finished one, ask for it by name: `runbook compensate {id}`"
        )),
        _ => message,
    })
}

async fn record(
    store: &runbook_store::Store,
    location: &runbook_store::Location,
    args: &AbandonArgs,
    opened: RunStatus,
) -> CliResult {
    let id = args.run_id.as_str();
    let operator = crate::identity::operator();
    let request = runbook_exec::abandon::Abandon {
        run_id: id,
        operator: &operator,
        reason: &args.reason,
        compensated: args.compensate,
        opened: Some(opened),
    };
    let as_started = |file: &str, files: &[runbook_core::plan::FileHash]| {
        crate::as_started::load_as_started(file, files).ok().map(|(runbook, _)| runbook)
    };
    let done =
        runbook_exec::abandon::abandon(store, request, &as_started, &crate::state::engine_env(location))
            .await
            .map_err(|r| refusal(r, id, args.compensate))?;
    let what = if args.compensate {
        "after its compensations".to_string()
    } else {
        format!("(it was {})", done.was)
    };
    outln!("abandoned run {id} {what} as {operator}; its lock `{}` is free; it cannot be resumed", done.lock);
    if let Some(why) = done.withheld {
        crate::output::errln!("warning: {why}; keep it where the incident is recorded");
    }
    Ok(Exit::Success)
}

/// The CLI's words for a refused abandon.
fn refusal(r: Refusal, id: &str, compensate: bool) -> CliError {
    match r {
        Refusal::Store(e) => e.into(),
        Refusal::Finished(ended) => finished(id, ended, compensate),
        Refusal::Lock(LockRefusal::Live { holder, since }) => CliError::CannotStart(
            Message::new(format!("run {id} is running in a live engine ({holder}, since {since}); nothing was recorded"))
                .help("stop it first (Ctrl-C on its terminal, `kill -TERM` its engine, or SIGTERM to its worker), then abandon it"),
        ),
        Refusal::NoStart => {
            CliError::Invalid(Message::new("the run has no `run_started` record; nothing was recorded"))
        }
        Refusal::Secrets(problems) => CliError::Invalid(Message::all(problems).help(
            "`abandon` reads the run's secrets as the run does, to keep them out of the reason it journals; give it the same sources; nothing was recorded",
        )),
        Refusal::Interrupted(secret) => CliError::Interrupted { secret },
        Refusal::Lock(LockRefusal::Exec(e)) => CliError::Exec(e),
        Refusal::NoRunbook => CliError::Invalid(Message::new(
            "the run's runbook cannot be read as it was when the run started; nothing was recorded",
        )),
    }
}

/// The runbook at `file` as it is now (checked, its digests not compared), if it reads: the
/// console's start form. Never the secrets of a run started from another version (adv20-3).
pub fn runbook_as_now(file: &str) -> Option<std::sync::Arc<runbook_core::model::Runbook>> {
    let text = crate::loader::read(file).ok()?;
    let includes = crate::loader::FsLoader::for_runbook(file);
    let checked = runbook_core::validate::check(runbook_core::Source::new(file, text), &includes);
    if checked.has_errors() { None } else { checked.runbook }
}
