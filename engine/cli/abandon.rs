//! `runbook abandon RUN --reason TEXT [--compensate]` (issue 14, point 4): end an unfinished
//! run for good (its engine dead, interrupted, suspended at an approval, needing an
//! operator), journaled with who and why (`run_abandoned`), compensating first when asked
//! (the `compensate` path, with its ordinary rules), then letting its lock go.
//!
//! The run's lock is taken as the run itself takes it (`Store::acquire`, one transaction):
//! a live engine holds it and the abandon is refused; a dead or detached one is replaced,
//! a suspended or parked lock is taken back. Only then is `run_abandoned` appended, fenced
//! by that lease, and the lock released.

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_core::lifecycle::RunDecision;
use runbook_exec::dispatch;
use runbook_store::{Acquire, Head, StoreError};

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

/// The lifecycle's rule for `abandon` ([`runbook_core::lifecycle::check_open`]): only an
/// unfinished run is abandoned. Its status, when it may be.
fn check_unfinished(id: &str, status: Option<RunStatus>, compensate: bool) -> Result<RunStatus, CliError> {
    let status = status.unwrap_or(RunStatus::Running);
    match runbook_core::lifecycle::check_open(RunDecision::Abandon, Some(status)) {
        Ok(()) => Ok(status),
        Err(ended) => {
            let message = Message::new(format!(
                "run {id} has finished ({}); there is nothing to abandon; nothing was recorded",
                ended.as_str()
            ));
            Err(CliError::Invalid(match (ended, compensate) {
                (RunStatus::Succeeded | RunStatus::Failed, true) => message.help(format!(
                    "`abandon` ends unfinished runs; to undo a finished one, ask for it by name: `runbook compensate {id}`"
                )),
                _ => message,
            }))
        }
    }
}

async fn record(
    store: &runbook_store::Store,
    location: &runbook_store::Location,
    args: &AbandonArgs,
    opened: RunStatus,
) -> CliResult {
    let id = args.run_id.as_str();
    let (summary, records) = store.run_and_records(id).await?;
    let state = runbook_core::journal::fold(&records);
    let status = match (state.status, args.compensate) {
        // Compensated just now (`--compensate`, checked unfinished before): its
        // compensation ended it as failed; it is abandoned after its compensations.
        (Some(RunStatus::Failed), true) => opened,
        (now, _) => check_unfinished(id, now, args.compensate)?,
    };
    let (redactor, unchecked) = reason_redactor(&records, location)?;
    let engine_was_gone = status == RunStatus::Running && crate::state::engine_gone(store, id).await;
    let operator = crate::identity::operator();
    let lock = match store.lock_of_run(id).await? {
        Some(h) => h.name,
        None => dispatch::lock_name(None, id).map_err(CliError::Exec)?,
    };
    let holder = dispatch::holder_name(&operator);
    let (now, _) = dispatch::now();
    let mut acquire = Acquire {
        name: &lock,
        run_id: id,
        holder: &holder,
        now: &now,
        now_ms: store.clock_ms().await?,
        ttl: std::time::Duration::from_secs(60),
        steal_from: None,
        head: Head::At(u64::try_from(summary.last_seq).unwrap_or(0)),
    };
    let lease = match store.acquire(&acquire).await {
        Err(StoreError::LockHeld(h)) if dispatch::holder_is_dead(&h.holder) => {
            acquire.steal_from = Some(&h.holder);
            store.acquire(&acquire).await?
        }
        Err(StoreError::LockHeld(h)) => {
            return Err(CliError::CannotStart(
                Message::new(format!(
                    "run {id} is running in a live engine ({}, since {}); nothing was recorded",
                    h.holder, h.acquired_at
                ))
                .help("stop it first (Ctrl-C on its terminal, `kill -TERM` its engine, or SIGTERM to its worker), then abandon it"),
            ));
        }
        other => other?,
    };
    let reason = match &unchecked {
        None => args.reason.clone(),
        Some(_) => REASON_WITHHELD.to_string(),
    };
    let event = redactor.redact_event(RunEvent::RunAbandoned {
        operator: operator.clone(),
        reason,
        compensated: args.compensate,
    });
    let appended = store.append(id, &now, &event, Some(&lease)).await;
    let _ = store.release_lock(&lease).await;
    appended?;
    let what = if args.compensate {
        "after its compensations".to_string()
    } else {
        format!("(it was {})", if engine_was_gone { crate::state::ENGINE_GONE } else { status.as_str() })
    };
    outln!("abandoned run {id} {what} as {operator}; its lock `{lock}` is free; it cannot be resumed");
    if let Some(why) = unchecked {
        crate::output::errln!("warning: {why}; keep it where the incident is recorded");
    }
    Ok(Exit::Success)
}

/// The run's secrets, read from their sources as the run reads them (and as `approve` does):
/// a reason may hold one, pasted by mistake, and the journal must not (promise 3).
///
/// `abandon` is the way out of an incident, so it needs nothing of the runbook (red team
/// adv14a F2): the runbook the run started with when its files are unchanged; else the
/// runbook at the same path as it is now (an operator fixed it during the incident; its
/// secrets are read from their sources, and redacting more is never wrong); else (deleted,
/// unreadable, invalid, its secrets unreadable) no secret can be known, and the reason is
/// not journaled at all: a fixed text stands in its place and the operator is told
/// (`Some(why)`). The run is abandoned and its lock let go in every case.
fn reason_redactor(
    records: &[runbook_core::journal::Record],
    location: &runbook_store::Location,
) -> Result<(runbook_exec::secrets::Redactor, Option<String>), CliError> {
    let Some(RunEvent::RunStarted { file, files, .. }) = records.first().map(|r| &r.event) else {
        return Err(CliError::Invalid(Message::new(
            "the run has no `run_started` record; nothing was recorded",
        )));
    };
    let withheld = || Ok((runbook_exec::secrets::Redactor::from_values([]), Some(unreadable(file))));
    let (runbook, as_started) = match crate::as_started::load_as_started(file, files) {
        Ok((runbook, _)) => (runbook, true),
        Err(_) => match runbook_as_now(file) {
            Some(runbook) => (runbook, false),
            None => return withheld(),
        },
    };
    let base_dir = std::path::Path::new(&runbook.source.path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    match runbook_exec::secrets::resolve(&runbook, &base_dir, &crate::state::engine_env(location)) {
        Ok(secrets) => Ok((runbook_exec::secrets::Redactor::new(&secrets), None)),
        Err(runbook_exec::secrets::Unresolved::Interrupted(secret)) => Err(CliError::Interrupted { secret }),
        // The runbook as it is now may name sources the run never had: nothing is known.
        Err(runbook_exec::secrets::Unresolved::Problems(_)) if !as_started => withheld(),
        Err(runbook_exec::secrets::Unresolved::Problems(problems)) => Err(CliError::Invalid(Message::all(problems).help(
            "`abandon` reads the run's secrets as the run does, to keep them out of the reason it journals; give it the same sources; nothing was recorded",
        ))),
    }
}

/// The runbook at `file` as it is now (checked, its digests not compared), if it reads.
fn runbook_as_now(file: &str) -> Option<std::sync::Arc<runbook_core::model::Runbook>> {
    let text = crate::loader::read(file).ok()?;
    let includes = crate::loader::FsLoader::for_runbook(file);
    let checked = runbook_core::validate::check(runbook_core::Source::new(file, text), &includes);
    if checked.has_errors() { None } else { checked.runbook }
}

/// Why the reason is not journaled: the run's runbook cannot be read to know its secrets.
fn unreadable(file: &str) -> String {
    format!(
        "the reason was not journaled: the run's runbook `{file}` cannot be read to keep its secrets out of it"
    )
}

/// What the journal holds in place of a reason that could not be checked for secrets.
pub const REASON_WITHHELD: &str =
    "(not recorded: the run's runbook could not be read to check the reason for secrets)";
