//! Abandoning a run: the one implementation behind `runbook abandon` (after its optional
//! compensation, which the CLI runs) and the console's abandon form. The console runs no
//! step: with compensation it asks a worker ([`request_compensated`]), which runs `runbook
//! abandon --compensate` (this module again) as the operator who asked.
//!
//! The run's lock is taken as the run itself takes it (`Store::acquire`, one transaction):
//! a live engine holds it and the abandon is refused; a dead or detached one is replaced,
//! a suspended or parked lock is taken back. Only then is `run_abandoned` appended, fenced
//! by that lease, and the lock released. The reason is redacted with the run's secrets.

use runbook_core::journal::{Record, RunEvent, RunStatus};
use runbook_core::lifecycle::RunDecision;
use runbook_store::{Acquire, Head, Store, StoreError};

use crate::approve::AsStarted;
use crate::dispatch;
use crate::secrets::{EngineEnv, Redactor, Unresolved};

/// One abandon asked for.
#[derive(Debug, Clone, Copy)]
pub struct Abandon<'a> {
    /// The run.
    pub run_id: &'a str,
    /// Who (the CLI's operator, the console's signed-in identity).
    pub operator: &'a str,
    /// Why (not empty).
    pub reason: &'a str,
    /// Its compensations ran just before (the CLI's `--compensate`).
    pub compensated: bool,
    /// The run's status before its compensations ran (with `compensated`).
    pub opened: Option<RunStatus>,
}

/// Why nothing was recorded.
#[derive(Debug)]
pub enum Refusal {
    /// The store failed (no such run included).
    Store(StoreError),
    /// The run has finished (its status): nothing to abandon.
    Finished(RunStatus),
    /// The run's lock cannot be taken (a live engine holds it).
    Lock(LockRefusal),
    /// The run has no `run_started` record.
    NoStart,
    /// The run's secrets cannot be read to redact the reason, one line each.
    Secrets(Vec<String>),
    /// Ctrl-C or SIGTERM came while a secret's helper ran.
    Interrupted(String),
    /// The runbook cannot be read as it was when the run started: its compensations cannot
    /// be known ([`request_compensated`]).
    NoRunbook,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

/// What was recorded.
#[derive(Debug)]
pub struct Abandoned {
    /// The lock let go.
    pub lock: String,
    /// Its status when abandoned (the engine-gone word when its engine was gone).
    pub was: String,
    /// The reason was not journaled (why), when no secret could be known.
    pub withheld: Option<String>,
}

/// What the journal holds in place of a reason that could not be checked for secrets.
pub const REASON_WITHHELD: &str =
    "(not recorded: the run's runbook could not be read to check the reason for secrets)";

/// The lifecycle's rule ([`runbook_core::lifecycle::check_open`]): only an unfinished run
/// is abandoned. Its status, when it may be.
pub fn check_unfinished(status: Option<RunStatus>) -> Result<RunStatus, RunStatus> {
    let status = status.unwrap_or(RunStatus::Running);
    runbook_core::lifecycle::check_open(RunDecision::Abandon, Some(status)).map(|()| status)
}

/// Take the run's lock, journal `run_abandoned` (fenced), let the lock go.
pub async fn abandon(
    store: &Store,
    a: Abandon<'_>,
    as_started: AsStarted<'_>,
    engine: &EngineEnv,
) -> Result<Abandoned, Refusal> {
    let id = a.run_id;
    attributable(store, a.operator).await?;
    let (summary, records) = store.run_and_records(id).await?;
    let state = runbook_core::journal::fold(&records);
    let status = match (state.status, a.compensated, a.opened) {
        // Compensated just now (checked unfinished before): its compensation ended it as
        // failed; it is abandoned after its compensations.
        (Some(RunStatus::Failed), true, Some(opened)) => opened,
        (now, _, _) => check_unfinished(now).map_err(Refusal::Finished)?,
    };
    let (redactor, withheld) = reason_redactor(&records, as_started, engine)?;
    let engine_was_gone = status == RunStatus::Running && dispatch::engine_gone(store, id).await;
    let (lock, lease) = take_lock::<Refusal>(store, id, a.operator, summary.last_seq).await?;
    let (now, _) = dispatch::now();
    let reason = match &withheld {
        None => a.reason.to_string(),
        Some(_) => REASON_WITHHELD.to_string(),
    };
    let event = redactor.redact_event(RunEvent::RunAbandoned {
        operator: a.operator.to_string(),
        reason,
        compensated: a.compensated,
    });
    let appended = store.append(id, &now, &event, Some(&lease)).await;
    let _ = store.release_lock(&lease).await;
    appended?;
    let was = if engine_was_gone { dispatch::ENGINE_GONE.to_string() } else { status.as_str().to_string() };
    Ok(Abandoned { lock, was, withheld })
}

/// What [`request_compensated`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// The run has nothing to compensate: abandon it directly ([`abandon`]).
    Nothing,
    /// Its entry is queued again; a worker abandons it after its compensations.
    Queued,
    /// Its queue entry is not done (`queued`, `claimed`: a worker has it, or was asked
    /// already): nothing changed.
    Busy(String),
}

/// The console's abandon with compensation (it runs no step): the run must be unfinished
/// and have completed steps to undo (judged against the runbook as it started, `for-each`
/// expanded, by the engine's own [`dispatch::machine::compensations`]); the reason is
/// redacted with the run's secrets ([`reason_redactor`]) before it is stored; then
/// [`Store::request_abandon`] queues it for a worker, which runs `runbook abandon
/// --compensate` as `a.operator`. `NoSuchRun`: no worker ever had it.
pub async fn request_compensated(
    store: &Store,
    a: Abandon<'_>,
    as_started: AsStarted<'_>,
    engine: &EngineEnv,
) -> Result<Requested, Refusal> {
    attributable(store, a.operator).await?;
    let (summary, records) = store.run_and_records(a.run_id).await?;
    let state = runbook_core::journal::fold(&records);
    check_unfinished(state.status).map_err(Refusal::Finished)?;
    // A live engine (a `runbook resume` on a terminal) refuses it now, as the worker's
    // abandon would: never an abandon that waits to fire once that engine stops.
    if state.status == Some(RunStatus::Running)
        && !dispatch::engine_gone(store, a.run_id).await
        && let Some(h) = store.lock_of_run(a.run_id).await?
    {
        return Err(LockRefusal::Live { holder: h.holder, since: h.acquired_at }.into());
    }
    let Some(runbook) = crate::approve::runbook_of_run(&records, as_started) else {
        return Err(Refusal::NoRunbook);
    };
    if dispatch::machine::compensations(&runbook, &state).is_empty() {
        return Ok(Requested::Nothing);
    }
    let (redactor, withheld) = reason_redactor(&records, as_started, engine)?;
    let reason = match withheld {
        None => redactor.redact(a.reason),
        Some(_) => REASON_WITHHELD.to_string(),
    };
    Ok(match store.request_abandon(a.run_id, a.operator, &reason, summary.last_seq).await? {
        None => Requested::Queued,
        Some(state) => Requested::Busy(state),
    })
}

/// Whether this store session may record `operator` (one predicate for an abandon, with
/// compensation or without, red team adv18c B1): in `db-role` mode the store records only
/// the identity of the session's role, so an operator who is not that identity is refused
/// here, before anything is judged, queued or run ([`StoreError::Refused`], the store's own
/// words), never queued for a worker that would journal someone else.
pub async fn attributable(store: &Store, operator: &str) -> Result<(), StoreError> {
    let (runbook_store::IdentityMode::DbRole, Some(identity)) = store.identity().await? else {
        return Ok(());
    };
    let key = runbook_core::journal::identity_key;
    if key(&identity) == key(operator) {
        return Ok(());
    }
    Err(StoreError::Refused(format!(
        "the store's identity mode is db-role: database role {} acts as `{identity}`, not as `{operator}` (connect to the store as your own database role; without `--as`, runbook acts as your role's identity)",
        store.db_role().unwrap_or("?")
    )))
}

/// What taking a run's lock for an operator's record can refuse ([`take_lock`]), shared by
/// every such record (an abandon, the console's decisions about steps in doubt): each
/// record's refusal wraps it (`Lock`), and its callers word it once.
#[derive(Debug)]
pub enum LockRefusal {
    /// A live engine holds the run: its holder and since when.
    Live {
        /// The engine holding the lock.
        holder: String,
        /// Since when (RFC 3339).
        since: String,
    },
    /// The run's lock name cannot be made.
    Exec(crate::dispatch::ExecError),
}

impl From<LockRefusal> for Refusal {
    fn from(e: LockRefusal) -> Refusal {
        Refusal::Lock(e)
    }
}

/// The run's lock, taken for an operator's record outside an engine (an abandon, the
/// console's decisions about steps in doubt) as the run itself takes it (`Store::acquire`,
/// one transaction, at the journal's head `last_seq`): a live engine refuses; a dead or
/// detached one is replaced; a suspended or parked lock is taken back. The lock's name and
/// the lease that fences the append.
pub(crate) async fn take_lock<E: From<StoreError> + From<LockRefusal>>(
    store: &Store,
    id: &str,
    operator: &str,
    last_seq: i64,
) -> Result<(String, runbook_store::Lease), E> {
    let lock = match store.lock_of_run(id).await? {
        Some(h) => h.name,
        None => dispatch::lock_name(None, id).map_err(LockRefusal::Exec)?,
    };
    let holder = dispatch::holder_name(operator);
    let (now, _) = dispatch::now();
    let mut acquire = Acquire {
        name: &lock,
        run_id: id,
        holder: &holder,
        now: &now,
        now_ms: store.clock_ms().await?,
        ttl: std::time::Duration::from_secs(60),
        steal_from: None,
        head: Head::At(u64::try_from(last_seq).unwrap_or(0)),
    };
    let lease = match store.acquire(&acquire).await {
        Err(StoreError::LockHeld(h)) if dispatch::holder_is_dead(&h.holder) => {
            acquire.steal_from = Some(&h.holder);
            store.acquire(&acquire).await?
        }
        Err(StoreError::LockHeld(h)) => {
            return Err(LockRefusal::Live { holder: h.holder, since: h.acquired_at }.into());
        }
        other => other?,
    };
    Ok((lock, lease))
}

/// The run's secrets, read from their sources as the run reads them (and as `approve` does):
/// a reason may hold one, pasted by mistake, and the journal must not (promise 3).
///
/// Abandoning is the way out of an incident, so it needs nothing of the runbook (red team
/// adv14a F2): the runbook the run started with when its files are unchanged; else (changed
/// since, deleted, unreadable) the run's secrets cannot be known, and the reason is not
/// journaled at all: a fixed text stands in its place and the operator is told
/// (`Some(why)`).
fn reason_redactor(
    records: &[Record],
    as_started: AsStarted<'_>,
    engine: &EngineEnv,
) -> Result<(Redactor, Option<String>), Refusal> {
    let Some(RunEvent::RunStarted { file, files, .. }) = records.first().map(|r| &r.event) else {
        return Err(Refusal::NoStart);
    };
    // Only the runbook the run started with lists the run's secrets: a file edited since
    // may declare fewer (a secret renamed), and its redactor would journal the run's value
    // in clear (red team adv20-3). Changed, deleted or unreadable: nothing is known.
    let Some(runbook) = as_started(file, files) else {
        return Ok((Redactor::from_values([]), Some(unreadable(file))));
    };
    let base_dir = std::path::Path::new(&runbook.source.path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    match crate::secrets::resolve(&runbook, &base_dir, engine) {
        Ok(secrets) => Ok((Redactor::new(&secrets), None)),
        Err(Unresolved::Interrupted(secret)) => Err(Refusal::Interrupted(secret)),
        Err(Unresolved::Problems(problems)) => Err(Refusal::Secrets(problems)),
    }
}

/// Why the reason is not journaled: the run's runbook cannot be read to know its secrets.
fn unreadable(file: &str) -> String {
    format!(
        "the reason was not journaled: the run's runbook `{file}` cannot be read as the run started it (changed, moved or deleted since) to keep its secrets out of it"
    )
}
