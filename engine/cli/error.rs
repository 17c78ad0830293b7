//! How a command fails, as a value: [`CliError`]. Commands return `Result<Exit, CliError>`;
//! `main` prints the error once ([`CliError::render`]) and exits with its [`CliError::code`].
//!
//! The rule: code that finds a problem builds a `CliError` and returns it; it never prints
//! the problem itself. Progress a user watches (step lines, notes, warnings, questions) is
//! printed where it happens. The exit code of a failure is decided here, from the variant
//! (and, for the state store, from [`StoreError`], in one `match`), never at the call site.

use runbook_core::Diagnostic;
use runbook_exec::dispatch::ExecError;
use runbook_store::StoreError;

use crate::exit;

/// How a command that did not fail ended: its exit code tells the outcome (a run that
/// failed, or that waits for an operator, is not an error of the command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything went as asked.
    Success,
    /// A run failed (its compensations ran, or none were needed).
    Failed,
    /// `check` found invalid files (its report said which).
    Invalid,
    /// An operator must decide (a run stopped for a decision, or the store disagrees
    /// with a journal: the warnings said which).
    NeedsOperator,
    /// A run was interrupted (Ctrl-C, SIGTERM).
    Interrupted,
    /// `plan --diff` / `plan --against`: the two plans differ.
    Different,
}

impl Exit {
    /// The process's exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => exit::SUCCESS,
            Exit::Failed => exit::FAILED,
            Exit::Invalid => exit::INVALID,
            Exit::NeedsOperator => exit::NEEDS_OPERATOR,
            Exit::Interrupted => exit::INTERRUPTED,
            Exit::Different => exit::DIFFERENT,
        }
    }
}

/// What a command returns.
pub type CliResult = Result<Exit, CliError>;

/// The text of an error that is not worth a variant of its own: `error:` lines, indented
/// lines that explain them, and a hint. Rendered as
///
/// ```text
/// error: <each of errors>
///   <each of details>
///   help: <help>
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// One `error:` line each (at least one).
    pub errors: Vec<String>,
    /// Lines under them, indented by two spaces.
    pub details: Vec<String>,
    /// The hint.
    pub help: Option<String>,
}

impl Message {
    /// One error line.
    pub fn new(error: impl Into<String>) -> Message {
        Message { errors: vec![error.into()], ..Message::default() }
    }

    /// Several error lines (a list of problems).
    pub fn all(errors: impl IntoIterator<Item = String>) -> Message {
        Message { errors: errors.into_iter().collect(), ..Message::default() }
    }

    /// With a line under the error lines.
    pub fn detail(mut self, line: impl Into<String>) -> Message {
        self.details.push(line.into());
        self
    }

    /// With a hint.
    pub fn help(mut self, help: impl Into<String>) -> Message {
        self.help = Some(help.into());
        self
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.errors.join("; "))
    }
}

/// Everything a command can fail with. Each variant's exit code is [`CliError::code`]
/// (the table is in `exit.rs` and the book's reference/exit-codes.md).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CliError {
    /// `--as` / `$RUNBOOK_OPERATOR` names nobody readable.
    #[error("--as / RUNBOOK_OPERATOR: {problem}")]
    #[diagnostic(
        code(runbook::bad_identity),
        help("use a name made of visible characters (letters, digits, `.`, `-`, `@`, spaces)")
    )]
    BadIdentity {
        /// What is wrong with it.
        problem: String,
    },
    /// The arguments ask for what cannot be, beyond what clap checks (a decision flag that
    /// does not fit the run).
    #[error("{0}")]
    #[diagnostic(code(runbook::usage))]
    Usage(Message),
    /// Problems in the files the command was given (a runbook, parameters, a params file),
    /// each with its place: printed as diagnostics.
    #[error("{} problem(s) in the input; nothing was run", .0.len())]
    #[diagnostic(code(runbook::invalid_input))]
    Diagnostics(Vec<Diagnostic>),
    /// The input is refused and nothing ran: a plan that no longer matches, a parameter or
    /// a text that holds a secret, a run that cannot go on...
    #[error("{0}")]
    #[diagnostic(code(runbook::refused))]
    Invalid(Message),
    /// A run that has finished cannot be resumed.
    #[error("run {run_id} has finished ({status}); there is nothing to resume")]
    #[diagnostic(code(runbook::run_finished))]
    RunFinished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: String,
    },
    /// An operator must decide before anything can go on (steps in doubt, a journal that
    /// fails verification).
    #[error("{0}")]
    #[diagnostic(code(runbook::needs_operator))]
    NeedsOperator(Message),
    /// What the store holds of a run does not fit its journal's hash chain.
    #[error("the store's record of run {run_id} does not fit its hash chain:")]
    #[diagnostic(
        code(runbook::chain_mismatch),
        help(
            "`runbook audit verify {run_id}` names them; `runbook audit {run_id}` prints the records as stored"
        )
    )]
    ChainMismatch {
        /// The run.
        run_id: String,
        /// What does not fit, one line each.
        findings: Vec<String>,
    },
    /// `audit verify` found journals that fail verification (listed on standard output).
    #[error("{}", broken_text(*count, *guards))]
    #[diagnostic(code(runbook::journals_broken))]
    JournalsBroken {
        /// How many journals.
        count: usize,
        /// How many guards of the store are missing, disabled or altered (red teams adv24, adv26).
        guards: usize,
    },
    /// No SQLite state store where one must already be.
    #[error("no state store at `{path}`")]
    #[diagnostic(code(runbook::no_state_store))]
    NoStateStore {
        /// The file.
        path: String,
        /// Say where runs are recorded.
        #[help]
        help: Option<String>,
    },
    /// The state store failed while doing something for the command.
    #[error("{}", store_at(*.doing, .location, .source))]
    #[diagnostic(code(runbook::state_store))]
    StoreAt {
        /// What was being done (`cannot open the state store`).
        doing: StoreAction,
        /// The store, as it may be shown (a URL without its password).
        location: String,
        /// What failed.
        source: StoreError,
    },
    /// The state store failed.
    #[error("{0}")]
    #[diagnostic(code(runbook::state_store))]
    Store(StoreError),
    /// The lock a run needs is held by a live run.
    #[error("lock `{name}` is held by run {run_id} ({holder}, since {since}){still}; nothing {what}", still = if *.still_running { ": the run is still running" } else { "" }, what = if *.still_running { "was done" } else { "ran" })]
    #[diagnostic(code(runbook::lock_held))]
    LockHeld {
        /// The lock.
        name: String,
        /// The run that holds it.
        run_id: String,
        /// Who holds it.
        holder: String,
        /// Since when.
        since: String,
        /// The run asked for is the holder itself (`resume` of a run still running).
        still_running: bool,
    },
    /// The executor refused to start, or stopped on the store.
    #[error(transparent)]
    #[diagnostic(code(runbook::exec))]
    Exec(ExecError),
    /// Something the command needs could not be set up (a folder, the async runtime, an
    /// output file).
    #[error("{0}")]
    #[diagnostic(code(runbook::cannot_start))]
    CannotStart(Message),
    /// In an engine a worker started: the worker is gone.
    #[error("the worker that started this run is gone; the run is left for another worker")]
    #[diagnostic(code(runbook::worker_gone))]
    WorkerGone,
    /// Ctrl-C or SIGTERM came before the run started (while a secret's helper ran): the
    /// helper was ended with its process group; nothing ran.
    #[error("interrupted while reading secret `{secret}`; its helper was ended and nothing ran")]
    #[diagnostic(code(runbook::interrupted))]
    Interrupted {
        /// The secret whose helper was running.
        secret: String,
    },
    /// Internal (`__tie`): a step's program could not be started.
    #[error("cannot start the step's program `{program}`: {error}")]
    #[diagnostic(code(runbook::step_not_started))]
    StepNotStarted {
        /// The program.
        program: String,
        /// Why.
        error: String,
    },
    /// The lock a run needs is kept by another run that has not finished, though no engine
    /// holds it (issue 14, point 5): the lock belongs to the run until it is resumed to its
    /// end or abandoned.
    #[error(
        "lock `{name}` is kept by run {run_id} ({}): a lock belongs to its run until the run is finished, compensated or abandoned; nothing ran",
        kept_state(status)
    )]
    #[diagnostic(
        code(runbook::lock_kept),
        help(
            "continue it with `runbook resume {run_id}{state}`, or end it with `runbook abandon {run_id} --reason TEXT{state}` (`--compensate` undoes what it did first)"
        )
    )]
    LockKept {
        /// The lock.
        name: String,
        /// The run that keeps it.
        run_id: String,
        /// Its status (`runs.status`).
        status: String,
        /// ` --state LOCATION` when the store is not the default one, else empty.
        state: String,
    },
}

/// What the CLI was doing with the state store when it failed (the first words of the
/// message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    Open,
    Connect,
    ReadIdentity,
    Migrate,
    SetIdentity,
    Check,
    Queue,
}

impl std::fmt::Display for StoreAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreAction::Open => "cannot open the state store",
            StoreAction::Connect => "cannot connect to the state store",
            StoreAction::ReadIdentity => "cannot read the identity mode of",
            StoreAction::Migrate => "cannot migrate the state store",
            StoreAction::SetIdentity => "cannot set the identity mode of",
            StoreAction::Check => "the state store fails its check",
            StoreAction::Queue => "cannot queue the run in",
        })
    }
}

/// `cannot open the state store `PATH`: why`.
fn store_at(doing: StoreAction, location: &str, source: &StoreError) -> String {
    match doing {
        StoreAction::Check => format!("the state store `{location}` fails its check: {source}"),
        doing => format!("{doing} `{location}`: {source}"),
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> CliError {
        match e {
            StoreError::LockKept { holder, status } => {
                CliError::LockKept { name: holder.name, run_id: holder.run_id, status, state: String::new() }
            }
            StoreError::LockHeld(h) => CliError::LockHeld {
                name: h.name,
                run_id: h.run_id,
                holder: h.holder,
                since: h.acquired_at,
                still_running: false,
            },
            e => CliError::Store(e),
        }
    }
}

impl From<ExecError> for CliError {
    fn from(e: ExecError) -> CliError {
        match e {
            ExecError::Store(e) => e.into(),
            e => CliError::Exec(e),
        }
    }
}

/// The exit code of a failure of the state store: the one place that decides it.
fn store_code(e: &StoreError) -> u8 {
    match e {
        // The id or the decision the operator typed is wrong: nothing was done.
        StoreError::NoSuchRun(_) | StoreError::Refused(_) => exit::INVALID,
        // The store cannot be used (unreachable, damaged, another schema), or another
        // engine holds the run: the command could not start.
        StoreError::Db(_)
        | StoreError::Migrate(_)
        | StoreError::BadFile { .. }
        | StoreError::MigrationBusy { .. }
        | StoreError::NeedsMigration { .. }
        | StoreError::NewerSchema { .. }
        | StoreError::Fenced { .. }
        | StoreError::Stalled { .. }
        | StoreError::LockHeld(_)
        | StoreError::LockKept { .. }
        | StoreError::RunChanged { .. }
        | StoreError::Corrupt(_) => exit::CANNOT_START,
    }
}

/// How the holder of a kept lock stands, in words.
fn kept_state(status: &str) -> String {
    match status {
        "running" => "running, but its engine is gone".into(),
        "needs_operator" => "it needs an operator".into(),
        other => other.to_string(),
    }
}

impl CliError {
    /// ` --state LOCATION` added to the commands a [`CliError::LockKept`] names, when the
    /// store is not the default one.
    pub fn with_state(self, state: &str) -> CliError {
        match self {
            CliError::LockKept { name, run_id, status, .. } => {
                CliError::LockKept { name, run_id, status, state: state.to_string() }
            }
            CliError::Exec(ExecError::Store(e)) => CliError::from(e).with_state(state),
            other => other,
        }
    }

    /// The exit code (exit.rs).
    pub fn code(&self) -> u8 {
        match self {
            CliError::BadIdentity { .. } | CliError::Usage(_) => exit::USAGE,
            CliError::Diagnostics(_) | CliError::Invalid(_) | CliError::RunFinished { .. } => exit::INVALID,
            CliError::NeedsOperator(_) | CliError::ChainMismatch { .. } | CliError::JournalsBroken { .. } => {
                exit::NEEDS_OPERATOR
            }
            CliError::NoStateStore { .. }
            | CliError::LockHeld { .. }
            | CliError::LockKept { .. }
            | CliError::CannotStart(_) => exit::CANNOT_START,
            // Identities and mappings are the administrator's input: a refusal is about them.
            CliError::StoreAt { doing: StoreAction::SetIdentity, .. } => exit::INVALID,
            CliError::StoreAt { .. } => exit::CANNOT_START,
            CliError::Store(e) => store_code(e),
            CliError::Exec(ExecError::Preconditions(_) | ExecError::LockName(_)) => exit::INVALID,
            CliError::Exec(ExecError::Store(e)) => store_code(e),
            CliError::Exec(ExecError::RunDir { .. } | ExecError::UnknownNeed { .. }) => exit::CANNOT_START,
            CliError::WorkerGone | CliError::Interrupted { .. } => exit::INTERRUPTED,
            CliError::StepNotStarted { .. } => exit::STEP_NOT_STARTED,
        }
    }

    /// The text on standard error, as the user reads it.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        match self {
            CliError::Diagnostics(diags) => {
                out.push_str(&crate::report::human(diags, color));
                if let Some(s) = crate::report::summary(diags) {
                    out.push_str(&s);
                    out.push('\n');
                }
                return out;
            }
            CliError::Usage(m)
            | CliError::Invalid(m)
            | CliError::NeedsOperator(m)
            | CliError::CannotStart(m) => {
                for e in &m.errors {
                    out.push_str(&format!("error: {}\n", one_line(e)));
                }
                for d in &m.details {
                    out.push_str(&format!("  {}\n", one_line(d)));
                }
                if let Some(h) = &m.help {
                    out.push_str(&format!("  help: {}\n", one_line(h)));
                }
                return out;
            }
            // A step sees this as its program's error output: it names the engine, like a shell.
            CliError::StepNotStarted { .. } => return format!("runbook: {}\n", lines(&self.to_string())),
            CliError::ChainMismatch { findings, .. } => {
                out.push_str(&format!("error: {}\n", lines(&self.to_string())));
                for f in findings {
                    out.push_str(&format!("  {}\n", one_line(f)));
                }
            }
            _ => out.push_str(&format!("error: {}\n", lines(&self.to_string()))),
        }
        if let Some(help) = self.hint() {
            out.push_str(&format!("  help: {}\n", lines(&help)));
        }
        out
    }

    /// The hint under the message: the diagnostic's help, or what fits the store's error.
    fn hint(&self) -> Option<String> {
        if let Some(help) = miette::Diagnostic::help(self) {
            return Some(help.to_string());
        }
        let store = match self {
            CliError::StoreAt { doing: StoreAction::Open | StoreAction::Connect, source, .. } => source,
            CliError::Store(source @ StoreError::Stalled { .. }) => source,
            // A run suspended at an approval keeps its lock until it is finished or
            // abandoned (issue 14, point 4): say how to end it.
            CliError::LockHeld { run_id, holder, still_running: false, .. }
                if runbook_core::lifecycle::Holder::parse(holder).is_suspended() =>
            {
                return Some(format!(
                    "`runbook resume {run_id}` continues it once approved; `runbook abandon {run_id} --reason TEXT` ends it (`--compensate` undoes what it did first)"
                ));
            }
            _ => return None,
        };
        match store {
            StoreError::MigrationBusy { path } => Some(format!(
                "another runbook process on this store is stopped or stuck mid-upgrade: find it (`fuser {}`), let it finish or end it, then run again; nothing was done",
                runbook_core::hint::word(&format!("{path}.migrating"))
            )),
            StoreError::Stalled { .. } => Some(
                "another process may hold the store's write lock (a stopped `runbook`, a long migration); once the store answers, `runbook show RUN_ID` names the steps in doubt and `runbook resume RUN_ID` decides them"
                    .into(),
            ),
            StoreError::NeedsMigration { .. } => Some(
                "`runbook state migrate --state URL` (once per upgrade, by whoever administers the store)"
                    .into(),
            ),
            // Only a regular file may be moved aside: the hint must never say `mv /dev/null`
            // (red team adv13b M2).
            StoreError::BadFile { path, .. } if !std::path::Path::new(path).is_file() => {
                Some("`--state PATH` names another state store (a SQLite file)".into())
            }
            StoreError::BadFile { path, .. } => Some(format!(
                "restore it from a backup, or move it aside (`mv {path} {path}.broken`) and run again to start an empty store; `--state PATH` names another"
            )),
            _ => None,
        }
    }
}

/// A line of an error as the terminal shows it: what a user typed (a run id, a step name)
/// may hold control characters, and an escape sequence (a window title, a colour) or a line
/// break must not reach the terminal as such (red team adv13b M1): they are escaped.
/// A [`Message`]'s pieces are one line each, so a line break in one is escaped too.
fn one_line(text: &str) -> String {
    escaped(text, false)
}

/// An error's own text, whose line breaks (a list of failed preconditions) are kept.
fn lines(text: &str) -> String {
    escaped(text, true)
}

fn escaped(text: &str, keep_newlines: bool) -> String {
    let shown_as_is = |c: char| {
        (!c.is_control() && (c.is_ascii() || !runbook_core::shown::unnameable(c)))
            || c == '\t'
            || (keep_newlines && c == '\n')
    };
    if text.chars().all(shown_as_is) {
        return text.to_string();
    }
    text.chars()
        .map(|c| if shown_as_is(c) { c.to_string() } else { c.escape_default().to_string() })
        .collect()
}

/// What `audit verify` found broken, in one line: journals, and the store's guards.
fn broken_text(journals: usize, guards: usize) -> String {
    match (journals, guards) {
        (j, 0) => format!("{j} journal(s) fail verification"),
        (0, g) => format!("{g} guard(s) of the store are missing, disabled or altered: it was tampered with"),
        (j, g) => format!(
            "{j} journal(s) fail verification, and {g} guard(s) of the store are missing, disabled or altered: it was tampered with"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_has_the_code_the_book_gives() {
        assert_eq!(CliError::from(StoreError::NoSuchRun("r".into())).code(), exit::INVALID);
        assert_eq!(CliError::from(StoreError::Refused("no".into())).code(), exit::INVALID);
        assert_eq!(CliError::from(StoreError::Corrupt("x".into())).code(), exit::CANNOT_START);
        let stale = StoreError::RunChanged { run_id: "r".into(), read: Some(1), found: Some(2) };
        assert_eq!(CliError::from(ExecError::Store(stale)).code(), exit::CANNOT_START);
        assert_eq!(CliError::from(ExecError::LockName("x".into())).code(), exit::INVALID);
    }

    /// The errors tests/integration/cli_errors.rs cannot easily reach through the binary,
    /// rendered as `main` prints them (exit code first).
    #[test]
    fn errors_read_as_the_snapshots_say() {
        let holder = runbook_store::LockHolder {
            name: "deploy-prod".into(),
            run_id: "r-1".into(),
            holder: "ana@host1 (pid 42)".into(),
            acquired_at: "2026-12-06T10:00:00Z".into(),
            lease_until: 0,
        };
        let cases: Vec<(&str, CliError)> = vec![
            ("lock_held", StoreError::LockHeld(Box::new(holder.clone())).into()),
            (
                "lock_held_by_a_suspended_run",
                StoreError::LockHeld(Box::new(runbook_store::LockHolder {
                    holder: runbook_core::lifecycle::Holder::Suspended {
                        run: "r-1".into(),
                        waiting: vec!["gate".into()],
                    }
                    .to_string(),
                    ..holder.clone()
                }))
                .into(),
            ),
            (
                "lock_kept",
                CliError::from(StoreError::LockKept { holder: Box::new(holder.clone()), status: "running".into() })
                    .with_state(" --state /srv/runbook/state.db"),
            ),
            (
                "lock_held_by_the_run_itself",
                CliError::LockHeld {
                    name: holder.name,
                    run_id: holder.run_id,
                    holder: holder.holder,
                    since: holder.acquired_at,
                    still_running: true,
                },
            ),
            (
                "chain_mismatch",
                CliError::ChainMismatch {
                    run_id: "r-1".into(),
                    findings: vec!["runs.operator: the row says `mallory`, the journal says `ana`".into()],
                },
            ),
            ("journals_broken", CliError::JournalsBroken { count: 2, guards: 0 }),
            (
                "store_needs_migration",
                CliError::StoreAt {
                    doing: StoreAction::Open,
                    location: "postgres://runbook@db/runbook".into(),
                    source: StoreError::NeedsMigration { applied: 3, known: 5 },
                },
            ),
            (
                "store_migration_busy",
                CliError::StoreAt {
                    doing: StoreAction::Open,
                    location: "state.db".into(),
                    source: StoreError::MigrationBusy { path: "state.db".into() },
                },
            ),
            (
                "store_identity_refused",
                CliError::StoreAt {
                    doing: StoreAction::SetIdentity,
                    location: "state.db".into(),
                    source: StoreError::Refused("a SQLite file cannot check database roles".into()),
                },
            ),
            (
                "store_check_failed",
                CliError::StoreAt {
                    doing: StoreAction::Check,
                    location: "state.db".into(),
                    source: StoreError::Corrupt("runs.status `maybe`".into()),
                },
            ),
            (
                "plan_no_longer_matches",
                CliError::Invalid(Message {
                    errors: vec!["the plan `p.json` no longer matches what would run; nothing ran:".into()],
                    details: vec!["- `r.toml` changed since it was planned (SHA-256 aaa then, bbb now)".into()],
                    help: Some("review a new plan (`runbook plan r.toml -o p.json`)".into()),
                }),
            ),
            (
                "steps_in_doubt",
                CliError::NeedsOperator(
                    Message::all([
                        "run r-1 has steps in doubt that are not idempotent: migrate".to_string(),
                        "run r-1 has compensations in doubt that are not idempotent: restore".to_string(),
                    ])
                    .detail("they started and the engine stopped before their outcome was recorded; they may or may not have run")
                    .help("check what they did, then `runbook resume r-1 --rerun STEP` or `--skip STEP` (treat as done), with `--reason TEXT`"),
                ),
            ),
            (
                "cannot_start",
                CliError::CannotStart(Message::new("cannot start the async runtime: out of file descriptors")),
            ),
            ("lock_name", ExecError::LockName("unknown variable `params.env`".into()).into()),
            (
                "run_dir",
                ExecError::RunDir { path: "/state/runs/r-1".into(), error: "permission denied".into() }.into(),
            ),
            ("unknown_need", ExecError::UnknownNeed { step: "verify".into(), need: "drain".into() }.into()),
            ("run_changed", StoreError::RunChanged { run_id: "r-1".into(), read: Some(7), found: Some(9) }.into()),
            ("interrupted", CliError::Interrupted { secret: "VAULT".into() }),
        ];
        for (name, error) in cases {
            insta::assert_snapshot!(name, format!("exit {}\n{}", error.code(), error.render(false)));
        }
    }
}
