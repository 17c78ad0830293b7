//! The state store: the journal of runs, the run locks and the step logs. The only code
//! that speaks SQL.
//!
//! Two backends behind one API, [`Store`]: SQLite by default (one file, WAL,
//! `synchronous=FULL`), and PostgreSQL for a team that shares its history, locks and
//! approvals (`--state postgres://...`). Both run the same statements through sqlx's `Any`
//! driver (`$1` placeholders, which SQLite reads too); where the dialects differ (how a
//! write transaction takes its locks, where the schema version lives) [`Backend`] says so.
//!
//! Every journal write is one transaction that checks the writer's fence, locks and reads
//! the run's last record, chains the new one to it and inserts it, so concurrent writers can
//! neither leave a gap nor duplicate a sequence number. SQLite gets that from
//! `BEGIN IMMEDIATE` (one writer at a time); PostgreSQL from row locks (`FOR UPDATE` on the
//! run, `FOR SHARE` on the lock, so a takeover waits for a write in flight and every later
//! write sees the new fence). Triggers make journal rows append-only inside the database;
//! [`runbook_core::journal::verify`] catches what someone with the database in hand could
//! still change.
//!
//! The store reads no host clock: callers pass timestamps, so tests control time. Lease
//! times come from the database's clock ([`Store::clock_ms`]), which engines pass in.

// Only the CLI prints (ARCHITECTURE.md, invariants): a library returns values or reports
// over a channel.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use runbook_core::audit::StatusChange;
use runbook_core::journal::{Record, RunEvent, RunStatus};
pub use runbook_core::lifecycle::Holder;
pub use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{ConnectOptions, Executor, Row};

mod append;
mod files;
pub use files::{
    is_store_file_path, open_outside_store, opened_store as holds_store, read_outside_store,
    read_to_string_outside_store, write_outside_store,
};
mod listing;
mod live;
mod schedule_journal;
mod tokens;
use append::{Chained, bind_event, insert_events_sql, update_head_sql};
pub use listing::{RunFilter, RunList, listed_statuses};
pub use live::{LIVE_TAIL_BYTES, LiveOutput};
pub use schedule_journal::{FireRow, LAPSED, NoticeClaim, NoticeState, ScheduleJournal};
pub use tokens::ConsoleToken;

/// Events written by one `INSERT` statement at most: 9 bound values each, far below
/// SQLite's and PostgreSQL's limits on a statement's bound values.
const INSERT_BATCH: usize = 256;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("state store error: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("state store schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file is not a usable database (another kind of file, a directory, a
    /// truncated or damaged database). Said at once, not after the pool's retries.
    #[error("`{path}` is not a usable SQLite state store: {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process holds the SQLite store's schema-upgrade lock (`PATH.migrating`) and
    /// did not let go within [`MIGRATION_WAIT`]: a stopped or stuck process (promise 5: a
    /// wait that cannot end is an error, never a hang).
    #[error(
        "its schema is being upgraded by another process, which holds `{path}.migrating` and did not let go within {} s",
        MIGRATION_WAIT.as_secs()
    )]
    MigrationBusy {
        /// The store's file.
        path: String,
    },
    /// A shared store whose schema is older than this binary: `runbook state migrate`.
    #[error(
        "the state store's schema (version {applied}) is older than this runbook needs (version {known}); run `runbook state migrate` against it"
    )]
    NeedsMigration {
        /// Highest version applied to the store (0: an empty database).
        applied: i64,
        /// Highest version this binary has.
        known: i64,
    },
    /// The store was written by a newer `runbook`.
    #[error(
        "the state store's schema (version {found}) is newer than this runbook knows (version {known}); upgrade runbook"
    )]
    NewerSchema {
        /// Highest version applied to the store.
        found: i64,
        /// Highest version this binary has.
        known: i64,
    },
    /// A write came from a run that no longer holds its lock.
    #[error(
        "run `{run_id}` lost lock `{lock}` (its fence {fence} is older than {current}); the write was refused"
    )]
    Fenced {
        /// The run.
        run_id: String,
        /// The lock.
        lock: String,
        /// The writer's fence.
        fence: i64,
        /// The lock's current fence.
        current: i64,
    },
    /// The store did not answer a lease's renewal in time: the engine ended its steps, as
    /// when the lock is lost, before the reaper's watchdog would have (red team adv27 S2).
    #[error(
        "the state store did not renew lock `{lock}` within {secs} s; the run's steps were ended, as when its lock is lost"
    )]
    Stalled {
        /// The lock.
        lock: String,
        /// How long the renewal was given.
        secs: u64,
    },
    /// The lock is held by a live run.
    #[error("lock `{}` is held by run {} ({}, since {})", .0.name, .0.run_id, .0.holder, .0.acquired_at)]
    LockHeld(Box<LockHolder>),
    /// An engine was about to take a run whose journal is not where it read it: another
    /// engine got there first (or, for a new run, the id is taken).
    #[error("{}", run_changed(run_id, *read, *found))]
    RunChanged {
        /// The run.
        run_id: String,
        /// The last record the engine read (`None`: it expected no run).
        read: Option<u64>,
        /// The last record in the store (`None`: no such run).
        found: Option<u64>,
    },
    /// A stored value does not parse.
    #[error("the state store holds an unreadable record: {0}")]
    Corrupt(String),
    /// No run with this id.
    #[error("no run `{0}` in the state store")]
    NoSuchRun(String),
    /// A decision that the run's state does not allow.
    #[error("{0}")]
    Refused(String),
    /// The lock is kept by another run that has not finished, though no engine holds its
    /// lease ([`runbook_core::lifecycle::run_keeps_its_lock`]): the lock belongs to the run.
    #[error("lock `{}` is kept by run {} ({}): the run has not finished", .holder.name, .holder.run_id, .status)]
    LockKept {
        /// The lock and the run that keeps it.
        holder: Box<LockHolder>,
        /// The run's status (`runs.status`).
        status: String,
    },
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, StoreError>;

fn run_changed(run_id: &str, read: Option<u64>, found: Option<u64>) -> String {
    match (read, found) {
        (None, _) => format!("run `{run_id}` already exists; a run id names one run"),
        (Some(_), None) => format!("no run `{run_id}` in the state store"),
        (Some(read), Some(found)) => format!(
            "run `{run_id}` changed since this engine read it (its journal ended at record {read}, it now ends at {found}): another engine took it in between"
        ),
    }
}

/// The lease of a run that stopped to wait for people ([`Store::suspend_lock`]): held by no
/// engine, it never runs out, and only its own run takes it back.
pub const SUSPENDED_LEASE: i64 = i64::MAX;

/// What an engine expects of its run's journal when it takes the run's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// No expectation (a lock that is not an engine's hold on a run).
    Any,
    /// A new run: no run has this id yet.
    New,
    /// A resumed run: its journal still ends at this record.
    At(u64),
}

/// An engine's request for a lock ([`Store::acquire`]).
#[derive(Debug, Clone)]
pub struct Acquire<'a> {
    /// Lock name.
    pub name: &'a str,
    /// The run the engine carries out.
    pub run_id: &'a str,
    /// `operator (pid N on HOST)`.
    pub holder: &'a str,
    /// Now (RFC 3339).
    pub now: &'a str,
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// How long the lease lasts without renewal.
    pub ttl: Duration,
    /// A live holder the caller proved dead, replaced if it is still the holder.
    pub steal_from: Option<&'a str>,
    /// What the run's journal must look like.
    pub head: Head,
}

/// A write the database refused because of the identity mode (`runbook identity: ...`,
/// raised by the `db-role` triggers) becomes a [`StoreError::Refused`] with that reason;
/// any other error stays what it is.
fn identity_refusal(e: sqlx::Error) -> StoreError {
    match e.as_database_error().map(|d| d.message().to_string()) {
        Some(m) if m.starts_with("runbook identity: ") => StoreError::Refused(format!(
            "{} (connect to the store as your own database role; without `--as`, runbook acts as your role's identity)",
            m.replacen("runbook identity: ", "the store's identity mode is db-role: ", 1)
        )),
        _ => StoreError::Db(e),
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Lock name.
    pub name: String,
    /// The run holding it.
    pub run_id: String,
    /// The holder as stored: the text of a [`Holder`] (read it with
    /// [`LockHolder::parsed_holder`]).
    pub holder: String,
    /// When it was taken (RFC 3339).
    pub acquired_at: String,
    /// When the lease runs out (ms since the epoch).
    pub lease_until: i64,
}

impl LockHolder {
    /// Who holds the lock, typed: an engine, a suspended run, or text another writer left.
    pub fn parsed_holder(&self) -> Holder {
        Holder::parse(&self.holder)
    }
}

/// A held lock: the name and the fencing number every write of the run carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Lock name.
    pub name: String,
    /// Fencing number.
    pub fence: i64,
    /// The run holding it.
    pub run_id: String,
    /// Whether an expired lease of a dead run was taken over.
    pub took_over: Option<LockHolder>,
}

/// A run as listed by `runbook runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Id.
    pub run_id: String,
    /// Runbook name.
    pub runbook: String,
    /// Who started it.
    pub operator: String,
    /// When (RFC 3339).
    pub started_at: String,
    /// Status name.
    pub status: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Records in its journal.
    pub last_seq: i64,
    /// Hash of its last record.
    pub last_hash: Option<String>,
}

/// A new run's identity, written before its first event.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Id.
    pub run_id: &'a str,
    /// Runbook name.
    pub runbook: &'a str,
    /// Who starts it.
    pub operator: &'a str,
    /// When (RFC 3339).
    pub started_at: &'a str,
    /// Its lock, if any.
    pub lock_name: Option<&'a str>,
}

/// Where the state lives: a SQLite file, or a PostgreSQL database shared by a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// Read `--state`/`$RUNBOOK_STATE`: a `postgres://` or `postgresql://` URL, a
    /// `sqlite://` URL, or a path to a SQLite file.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Location::Postgres(text.to_string());
        }
        match text.strip_prefix("sqlite://") {
            Some(rest) => Location::Sqlite(PathBuf::from(rest)),
            None => Location::Sqlite(PathBuf::from(text)),
        }
    }

    /// Which backend serves it.
    pub fn backend(&self) -> Backend {
        match self {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Postgres(_) => Backend::Postgres,
        }
    }

    /// The location as it may be shown: a URL's password and query are left out, since a
    /// connection URL may carry credentials (`postgres://runbook:SECRET@db/ops`).
    pub fn shown(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => redact_url(url),
        }
    }
}

impl Location {
    /// `text` (a driver's message, an error) with every form of this location's password
    /// replaced by `***`: the URL's user info is parsed (`scheme://user:PASSWORD@host`, the
    /// password running to the last `@` before the path or query, so `@` and `:` inside it
    /// are its own), and its `password`/`sslpassword` query values; each is masked as
    /// written and percent-decoded. A password shorter than 4 bytes cannot be told from the
    /// message's own words: a message that contains it is withheld whole.
    pub fn masked(&self, text: &str) -> String {
        let secrets = self.passwords();
        let mut out = text.to_string();
        for secret in &secrets {
            if secret.len() < 4 {
                if out.contains(secret.as_str()) {
                    return "(the database's message is withheld: it could contain the store's password)"
                        .into();
                }
            } else {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// Every form of this location's passwords, the longest first: the URL's user info
    /// (`scheme://user:PASSWORD@host`, running to the last `@` before the path or query, and
    /// to the last `@` of the whole URL, cut at a raw `#` or `?`), and each `password` or
    /// `sslpassword` query value (its key read decoded, `pass%77ord`); each as written and
    /// percent-decoded (a query value also with `+` read as a space, as sqlx's URL parser
    /// reads it). None for SQLite. The redactor of steps' output knows them too
    /// (`runbook_exec::secrets::EngineEnv::postgres`).
    pub fn passwords(&self) -> Vec<String> {
        let Location::Postgres(url) = self else { return Vec::new() };
        let mut secrets: Vec<String> = Vec::new();
        if let Some((_, rest)) = url.split_once("://") {
            let (before_query, query) = match rest.split_once('?') {
                Some((b, q)) => (b, Some(q)),
                None => (rest, None),
            };
            let before_query = before_query.split('#').next().unwrap_or_default();
            if let Some((auth, _host)) = before_query.rsplit_once('@')
                && let Some((_, password)) = auth.split_once(':')
            {
                secrets.push(password.to_string());
            }
            // A password holding a raw `#` or `?`: the user info runs to the last `@` of the
            // whole URL, and a driver that cut the URL there shows the password up to that
            // character (red team adv15c F6).
            if let Some((auth, _)) = rest.rsplit_once('@')
                && let Some((_, password)) = auth.split_once(':')
            {
                secrets.push(password.to_string());
                if let Some(cut) = password.split(['#', '?']).next() {
                    secrets.push(cut.to_string());
                }
            }
            for pair in query.unwrap_or_default().split(['&', '#']) {
                if let Some((key, value)) = pair.split_once('=')
                    && matches!(percent_decoded(key).as_str(), "password" | "sslpassword")
                {
                    secrets.push(value.to_string());
                    if value.contains('+') {
                        secrets.push(value.replace('+', " "));
                    }
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decoded(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // The longest first: a decoded form may contain the written one or the reverse.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        secrets
    }
}

/// `%XX` escapes decoded (invalid ones kept as written), lossy UTF-8.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `scheme://user@host/db`, without the password and the query string.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<unreadable URL>".into() };
    // The user info runs to the last `@`, found before the query or fragment is cut off: a
    // password may hold a raw `#` or `?` (red team adv15c F6: `ops:Tr0ub4dor#3@host` was
    // shown as `ops:Tr0ub4dor`).
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (Some(auth), host.split(['?', '#']).next().unwrap_or_default()),
        None => (None, rest.split(['?', '#']).next().unwrap_or_default()),
    };
    match auth.map(|a| a.split(':').next().unwrap_or_default()) {
        Some(user) if auth.is_some_and(|a| a.contains(':')) => format!("{scheme}://{user}:***@{host}"),
        Some(user) => format!("{scheme}://{user}@{host}"),
        None => format!("{scheme}://{host}"),
    }
}

/// The two databases a store can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Team mode.
    Postgres,
}

/// A trigger as the store holds it (see `Store::guards_held`).
struct HeldTrigger {
    name: String,
    table: String,
    definition: String,
    firing: bool,
}

/// How a guard differs from the one the migrations create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuardFault {
    Missing,
    Disabled,
    Altered,
}

/// One guard of the applied migrations and its fault, if any: a PostgreSQL guard function
/// (with the statement that creates it), or a trigger (with its statement, and the name and
/// table of the trigger the store holds under its name, in any case on SQLite).
enum GuardState {
    Function { name: String, create: String, fault: Option<GuardFault> },
    Trigger { name: String, statement: String, held: Option<(String, String)>, fault: Option<GuardFault> },
}

/// The function a PostgreSQL trigger statement executes (`EXECUTE FUNCTION f()`).
fn trigger_function(statement: &str) -> Option<String> {
    let mut words = statement.split_whitespace();
    words.find(|w| w.eq_ignore_ascii_case("FUNCTION") || w.eq_ignore_ascii_case("PROCEDURE"))?;
    let f = words.next()?;
    Some(f.split('(').next().unwrap_or(f).to_string())
}

/// A trigger's definition in a form that compares: whitespace collapsed, a trailing `;`
/// dropped, `IF NOT EXISTS` left out (SQLite does not keep it), and the trigger's name
/// unquoted and, on SQLite (whose names are case-insensitive), lower-cased. Everything else,
/// string literals included, must be the same.
fn canonical_trigger(backend: Backend, sql: &str) -> String {
    let sql = sql.trim().trim_end_matches(';');
    let mut words: Vec<String> = sql.split_whitespace().map(str::to_string).collect();
    if words.len() > 5 && words[2].eq_ignore_ascii_case("IF") && words[3].eq_ignore_ascii_case("NOT") {
        words.drain(2..5);
    }
    if let Some(name) = words.get_mut(2) {
        let bare = name.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']');
        *name = match backend {
            Backend::Sqlite => bare.to_ascii_lowercase(),
            Backend::Postgres => bare.to_string(),
        };
    }
    let mut text = words.join(" ");
    // PostgreSQL prints a trigger's events in its own order (`INSERT OR DELETE OR UPDATE`):
    // the events between the timing and `ON` compare as a set there.
    if backend == Backend::Postgres {
        let timing =
            [" BEFORE ", " AFTER ", " INSTEAD OF "].iter().find_map(|t| text.find(t).map(|at| at + t.len()));
        if let Some(from) = timing
            && let Some(on) = text[from..].find(" ON ").map(|e| from + e)
        {
            let mut events: Vec<&str> = text[from..on].split(" OR ").collect();
            events.sort_unstable();
            text = format!("{}{}{}", &text[..from], events.join(" OR "), &text[on..]);
        }
    }
    text
}

impl Backend {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn migrations(self) -> Vec<Migration> {
        let files = self.migration_files();
        files
            .into_iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    sqlx::SqlStr::from_static(sql),
                    false,
                )
            })
            .collect()
    }

    /// The guard triggers the migrations create (none is ever dropped by a later one), each
    /// with the migration that creates it and the statement that does, in order: the
    /// store's append-only and hash-chain guards. Read from the migrations themselves, so
    /// that no list kept by hand forgets one (the list `state check` kept lacked the two of
    /// `schedule_fires`). A store missing one is tampered with (red team adv24: a
    /// never-fired schedule's journal deleted whole after its guards were dropped went
    /// unseen), and `state migrate` puts it back.
    pub fn guards(self) -> Vec<(i64, String, String)> {
        self.guards_up_to(i64::MAX)
    }

    /// [`Backend::guards`] as the migrations up to `applied` leave them: a trigger a later
    /// migration defines again (migration 16's `queue_plan_fixed`) is checked on an older
    /// store as the older migration made it.
    fn guards_up_to(self, applied: i64) -> Vec<(i64, String, String)> {
        let mut out: Vec<(i64, String, String)> = Vec::new();
        for (version, _, sql) in self.migration_files().into_iter().filter(|(v, _, _)| *v <= applied) {
            let mut rest = sql;
            while let Some(at) = rest.find("CREATE TRIGGER ") {
                let text = &rest[at..];
                // SQLite: `... BEGIN ... END;`; PostgreSQL: `... EXECUTE FUNCTION f();`.
                let end = match self {
                    Backend::Sqlite => text.find("END;").map(|e| e + "END".len()),
                    Backend::Postgres => text.find(';'),
                };
                let Some(end) = end else { break };
                let statement = &text[..end];
                let mut words = statement["CREATE TRIGGER ".len()..].split_whitespace().peekable();
                if words.peek() == Some(&"IF") {
                    words.nth(2); // IF NOT EXISTS
                }
                let name = words.next().unwrap_or_default().to_string();
                out.retain(|(_, n, _)| *n != name);
                out.push((version, name, statement.to_string()));
                rest = &text[end..];
            }
        }
        out
    }

    /// A PostgreSQL guard function as the last migration up to `applied` that creates or
    /// replaces it does: (the statement, the body between its dollar quotes, which
    /// `pg_proc.prosrc` holds). None on SQLite or for a name no migration creates.
    fn guard_function(self, name: &str, applied: i64) -> Option<(String, String)> {
        if self == Backend::Sqlite {
            return None;
        }
        let mut found = None;
        for (version, _, sql) in self.migration_files() {
            if version > applied {
                continue;
            }
            for head in [format!("CREATE FUNCTION {name}("), format!("CREATE OR REPLACE FUNCTION {name}(")] {
                let mut rest = sql;
                while let Some(at) = rest.find(&head) {
                    let text = &rest[at..];
                    let Some(open) = text.find("AS $") else { break };
                    let after = &text[open + "AS ".len()..];
                    let Some(tag_len) = after[1..].find('$').map(|e| e + 2) else { break };
                    let tag = &after[..tag_len];
                    let body_from = open + "AS ".len() + tag_len;
                    let Some(body_len) = text[body_from..].find(tag) else { break };
                    let body = &text[body_from..body_from + body_len];
                    let close = body_from + body_len + tag.len();
                    let end = text[close..].find(';').map_or(text.len(), |e| close + e);
                    found = Some(((version, at), text[..end].to_string(), body.to_string()));
                    rest = &text[end..];
                }
            }
        }
        // The latest statement wins: a later migration's, or a later one in the same file.
        found.map(|(_, create, body)| (create, body))
    }

    /// The `EXECUTE format('ALTER FUNCTION name() ...', current_schema());` statements the
    /// migrations run on a guard function (its `search_path` and `SECURITY DEFINER`), in
    /// order: run again after the function is put back, since a re-created function has
    /// none of them.
    fn guard_function_pins(self, name: &str) -> Vec<String> {
        let head = format!("EXECUTE format('ALTER FUNCTION {name}(");
        let mut out = Vec::new();
        for (_, _, sql) in self.migration_files() {
            for line in sql.lines() {
                let line = line.trim();
                if line.starts_with(&head) && line.ends_with(';') {
                    out.push(line.to_string());
                }
            }
        }
        out
    }

    fn migration_files(self) -> [(i64, &'static str, &'static str); 16] {
        match self {
            Backend::Sqlite => [
                (1, "journal", include_str!("../migrations/sqlite/0001_journal.sql")),
                (2, "step logs", include_str!("../migrations/sqlite/0002_step_logs.sql")),
                (3, "queue", include_str!("../migrations/sqlite/0003_queue.sql")),
                (4, "audit", include_str!("../migrations/sqlite/0004_audit.sql")),
                (5, "guards", include_str!("../migrations/sqlite/0005_guards.sql")),
                (6, "tokens", include_str!("../migrations/sqlite/0006_tokens.sql")),
                (7, "schedules", include_str!("../migrations/sqlite/0007_schedules.sql")),
                (8, "schedule journal", include_str!("../migrations/sqlite/0008_schedule_journal.sql")),
                (9, "abandon", include_str!("../migrations/sqlite/0009_abandon.sql")),
                (10, "schedule notices", include_str!("../migrations/sqlite/0010_schedule_notices.sql")),
                (11, "sessions", include_str!("../migrations/sqlite/0011_sessions.sql")),
                (12, "abandon request", include_str!("../migrations/sqlite/0012_abandon_request.sql")),
                (13, "resume by", include_str!("../migrations/sqlite/0013_resume_by.sql")),
                (
                    14,
                    "schedule alert records",
                    include_str!("../migrations/sqlite/0014_schedule_alert_records.sql"),
                ),
                (15, "live output", include_str!("../migrations/sqlite/0015_live_output.sql")),
                (
                    16,
                    "refused plan erased",
                    include_str!("../migrations/sqlite/0016_refused_plan_erased.sql"),
                ),
            ],
            Backend::Postgres => [
                (1, "journal", include_str!("../migrations/postgres/0001_journal.sql")),
                (2, "step logs", include_str!("../migrations/postgres/0002_step_logs.sql")),
                (3, "queue", include_str!("../migrations/postgres/0003_queue.sql")),
                (4, "audit", include_str!("../migrations/postgres/0004_audit.sql")),
                (5, "guards", include_str!("../migrations/postgres/0005_guards.sql")),
                (6, "tokens", include_str!("../migrations/postgres/0006_tokens.sql")),
                (7, "schedules", include_str!("../migrations/postgres/0007_schedules.sql")),
                (8, "schedule journal", include_str!("../migrations/postgres/0008_schedule_journal.sql")),
                (9, "abandon", include_str!("../migrations/postgres/0009_abandon.sql")),
                (10, "schedule notices", include_str!("../migrations/postgres/0010_schedule_notices.sql")),
                (11, "sessions", include_str!("../migrations/postgres/0011_sessions.sql")),
                (12, "abandon request", include_str!("../migrations/postgres/0012_abandon_request.sql")),
                (13, "resume by", include_str!("../migrations/postgres/0013_resume_by.sql")),
                (
                    14,
                    "schedule alert records",
                    include_str!("../migrations/postgres/0014_schedule_alert_records.sql"),
                ),
                (15, "live output", include_str!("../migrations/postgres/0015_live_output.sql")),
                (
                    16,
                    "refused plan erased",
                    include_str!("../migrations/postgres/0016_refused_plan_erased.sql"),
                ),
            ],
        }
    }

    /// The statement that opens a write transaction. SQLite takes its one write lock at
    /// once (no upgrade from a read lock, which could fail half-way); PostgreSQL locks rows.
    fn begin(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// The statement that opens a read transaction whose reads all see one snapshot: what
    /// must agree (a run's row, its records, its logs) is read in one.
    fn begin_snapshot(self) -> &'static str {
        match self {
            // A deferred transaction: its first read fixes the snapshot (WAL) until the end.
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        }
    }

    /// Read a run's head, locked for the rest of the transaction.
    fn run_head(self) -> &'static str {
        match self {
            Backend::Sqlite => "SELECT last_seq, last_hash FROM runs WHERE run_id = $1",
            Backend::Postgres => "SELECT last_seq, last_hash FROM runs WHERE run_id = $1 FOR UPDATE",
        }
    }

    /// A lock's row, locked for an acquisition.
    fn lock_row(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "SELECT fence, run_id, holder, acquired_at, lease_until FROM locks WHERE name = $1"
            }
            Backend::Postgres => {
                "SELECT fence, run_id, holder, acquired_at, lease_until FROM locks WHERE name = $1 FOR UPDATE"
            }
        }
    }

    /// Claimable queue entries, oldest first; on PostgreSQL locked for this transaction and
    /// skipped by other workers' claims (`SKIP LOCKED`), so workers never wait on each other.
    fn claimable(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "SELECT q.run_id, q.plan, q.labels, q.submitted_by, q.claims, \
                 (SELECT COUNT(*) FROM runs r WHERE r.run_id = q.run_id), q.abandon_by, q.abandon_reason, q.abandon_head, q.resume_by \
                 FROM queue q WHERE ((q.state = 'queued' AND q.not_before_ms <= $1) \
                 OR (q.state = 'claimed' AND q.heartbeat_ms < $2)) \
                 ORDER BY q.submitted_at, q.run_id LIMIT 32"
            }
            Backend::Postgres => {
                "SELECT q.run_id, q.plan, q.labels, q.submitted_by, q.claims, \
                 (SELECT COUNT(*) FROM runs r WHERE r.run_id = q.run_id), q.abandon_by, q.abandon_reason, q.abandon_head, q.resume_by \
                 FROM queue q WHERE ((q.state = 'queued' AND q.not_before_ms <= $1) \
                 OR (q.state = 'claimed' AND q.heartbeat_ms < $2)) \
                 ORDER BY q.submitted_at, q.run_id LIMIT 32 FOR UPDATE OF q SKIP LOCKED"
            }
        }
    }

    /// 1 when the migrations table exists (the store was migrated at least once), else 0.
    fn has_migrations_table(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM (SELECT to_regclass('_sqlx_migrations') AS t) AS found WHERE t IS NOT NULL"
            }
        }
    }

    /// A failure that the same transaction, tried again, may not meet: SQLite's "database
    /// is locked", PostgreSQL's serialization failures and deadlocks.
    fn is_transient(self, e: &sqlx::Error) -> bool {
        let Some(d) = e.as_database_error() else { return false };
        match self {
            // SQLITE_BUSY (5) and its extended codes, SQLITE_LOCKED (6).
            Backend::Sqlite => {
                d.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
                    || d.message().contains("database is locked")
            }
            Backend::Postgres => d.code().is_some_and(|c| c == "40001" || c == "40P01"),
        }
    }
}

/// What `runbook state check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Which database.
    pub backend: Backend,
    /// Highest migration applied.
    pub applied: i64,
    /// Highest migration this binary has.
    pub known: i64,
    /// Runs recorded.
    pub runs: i64,
    /// Locks held now (by `now_ms`).
    pub live_locks: i64,
    /// The database's clock, ms since the epoch (leases compare hosts' clocks through it).
    pub db_now_ms: i64,
    /// How operators' identities are established.
    pub identity: IdentityMode,
    /// The database role of this session (PostgreSQL).
    pub db_role: Option<String>,
    /// The identity this session may act as, in `db-role` mode.
    pub session_identity: Option<String>,
    /// The guards (triggers) the applied migrations install that are missing or disabled:
    /// what the store promises and does not hold.
    pub missing_guards: Vec<String>,
}

/// How the store establishes who an operator is (set by the administrator with
/// `runbook state migrate --identity MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    /// Whatever `--as` (or `$USER@host`) says. Names are compared in their normal form, but
    /// nothing stands behind them.
    Declared,
    /// PostgreSQL only: every record names the database role of the session that wrote it,
    /// and the store refuses a record whose claimed operator is not that role's identity
    /// (the role's name, or the identity the administrator mapped it to).
    DbRole,
}

impl IdentityMode {
    /// The name used by `--identity` and stored in `runbook_settings`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMode::Declared => "declared",
            IdentityMode::DbRole => "db-role",
        }
    }

    /// Read a mode's name.
    pub fn parse(text: &str) -> Option<IdentityMode> {
        match text {
            "declared" => Some(IdentityMode::Declared),
            "db-role" => Some(IdentityMode::DbRole),
            _ => None,
        }
    }
}

/// One run's history as the store holds it, read in one snapshot: its `runs` row, its
/// records (or why they do not parse), the columns beside each record's body, its kept logs,
/// and whether its lock is one the store knows.
#[derive(Debug, Clone)]
pub struct History {
    /// The `runs` row.
    pub row: runbook_core::audit::StoredRun,
    /// The records, in order; `Err` names a record that does not parse.
    pub records: std::result::Result<Vec<Record>, String>,
    /// `kind`, `step` and `body` of each record.
    pub columns: Vec<runbook_core::audit::StoredColumns>,
    /// The `step_logs` rows.
    pub logs: Vec<runbook_core::audit::StoredLog>,
    /// Whether `runs.lock_name` names a lock the store has (every run takes one).
    pub lock_known: bool,
}

impl History {
    /// Everything that does not fit the chain: the chain itself (against `expect_hash`, else
    /// the row's own `last_hash`), the row, the columns, the logs, the lock.
    pub fn findings(&self, expect_hash: Option<&str>) -> Vec<runbook_core::audit::Finding> {
        self.verdict(expect_hash).0
    }

    /// [`History::findings`], and the verifier's token when they name nothing
    /// ([`runbook_core::audit::Verified`]): the chain hashed once for both.
    pub fn verdict(
        &self,
        expect_hash: Option<&str>,
    ) -> (Vec<runbook_core::audit::Finding>, Option<runbook_core::audit::Verified>) {
        use runbook_core::audit::{self, Finding, Verified};
        let records = match &self.records {
            Ok(r) => r,
            Err(e) => {
                let finding = Finding {
                    place: "events.body".into(),
                    message: format!("a record does not parse ({e})"),
                };
                return (vec![finding], None);
            }
        };
        let mut out = Vec::new();
        let token = match Verified::chain(records) {
            Ok(token) => token,
            Err(e) => {
                let place = if e.reason.contains("missing or out of order") {
                    "events.seq or events.run_id"
                } else if e.reason.contains("prev_hash") {
                    "events.prev_hash (or events.hash of the record before)"
                } else {
                    "events.ts, events.body, events.db_role or events.hash"
                };
                out.push(Finding { place: place.into(), message: format!("record {}: {}", e.seq, e.reason) });
                return (out, None);
            }
        };
        if let Some(expected) = expect_hash
            && records.last().map(|r| r.hash.as_str()) != Some(expected)
        {
            out.push(Finding {
                place: "events".into(),
                message: format!(
                    "record {}: the last hash differs from the one you kept (records were cut or replaced)",
                    records.len() + 1
                ),
            });
        }
        out.extend(audit::check_columns(records, &self.columns));
        out.extend(audit::check_run(&self.row, records));
        out.extend(audit::check_decisions(records));
        out.extend(audit::check_logs(records, &self.logs));
        if !self.lock_known {
            out.push(Finding {
                place: "runs.lock_name".into(),
                message: format!(
                    "`{}` is not a lock of this store",
                    self.row.lock_name.as_deref().unwrap_or("NULL")
                ),
            });
        }
        let verified = token.unless(&out);
        (out, verified)
    }
}

/// An attempt's output to keep in the store.
#[derive(Debug, Clone)]
pub struct KeptLog<'a> {
    /// The step's journal path.
    pub step: &'a str,
    /// Attempt number.
    pub attempt: u32,
    /// Size of the whole local log.
    pub bytes: u64,
    /// The text to keep (already capped, with its marker).
    pub body: &'a str,
}

/// A run submitted for a worker.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The id the run will have.
    pub run_id: &'a str,
    /// Runbook name.
    pub runbook: &'a str,
    /// The pinned plan document (JSON).
    pub plan: &'a str,
    /// Labels a worker must have.
    pub labels: &'a [String],
    /// Who submitted it (the run's operator).
    pub submitted_by: &'a str,
    /// When (RFC 3339).
    pub submitted_at: &'a str,
}

/// The statement that queues `job` (for `submit`, and for a schedule's fire in its
/// transaction).
fn queue_insert<'q>(job: &'q Submission<'q>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO queue (run_id, runbook, plan, labels, submitted_by, submitted_at, state) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued')",
    )
    .bind(job.run_id)
    .bind(job.runbook)
    .bind(job.plan)
    .bind(job.labels.join(","))
    .bind(job.submitted_by)
    .bind(job.submitted_at)
}

/// A queue entry that an update did not move (it was not in the state the update asked
/// for): its state, the transaction rolled back; `NoSuchRun` when there is no entry.
/// What [`Store::cancel_queued`] answers for a queued run that has a journal: it started,
/// and was handed back to the queue to be resumed or abandoned.
pub const STARTED: &str = "started";

async fn unmoved(mut tx: sqlx::Transaction<'_, sqlx::Any>, run_id: &str) -> Result<Option<String>> {
    let state: Option<String> = sqlx::query("SELECT state FROM queue WHERE run_id = $1")
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    tx.rollback().await?;
    state.map(Some).ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))
}

/// A due time of a schedule, as the worker that fires it records it.
#[derive(Debug, Clone)]
pub struct Fire<'a> {
    /// The schedule's name.
    pub schedule: &'a str,
    /// The due time, milliseconds since the epoch.
    pub due_ms: i64,
    /// The worker.
    pub fired_by: &'a str,
    /// When (RFC 3339).
    pub fired_at: &'a str,
}

/// What happened to a due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// This worker fired it: the run is queued.
    Queued,
    /// This worker fired it, and skipped it (the overlap policy): the reason is recorded.
    Skipped,
    /// Another worker fired it first: nothing was done.
    Taken,
}

/// How the note of a due time whose run could not be queued starts (a refusal, as opposed
/// to a skip by the overlap policy).
pub const NOT_QUEUED: &str = "not queued: ";

/// How the note of a due time the catch-up policy did not fire starts.
pub const MISSED: &str = "missed: ";

/// The runs of a schedule, as `runbook schedules --state` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleRuns {
    /// The latest due time fired (queued or skipped), milliseconds since the epoch.
    pub last_due_ms: Option<i64>,
    /// The latest run queued: its id, its status (`queued` until a worker starts it) and
    /// when it started.
    pub last_run: Option<(String, String, Option<String>)>,
    /// When the latest successful run finished (RFC 3339).
    pub last_success: Option<String>,
    /// When the first run of the schedule was queued (RFC 3339).
    pub first_fired_at: Option<String>,
    /// Whether the latest run queued is still queued or running.
    pub active: bool,
    /// The earliest due time recorded in any outcome (queued or skipped), milliseconds
    /// since the epoch: the dead-man's switch measures from it when nothing succeeded, so
    /// a schedule whose every fire is refused still goes overdue.
    pub first_due_ms: Option<i64>,
    /// The latest due time refused (recorded as skipped because its run could not be
    /// queued: its note starts with [`NOT_QUEUED`]), milliseconds, and why.
    pub last_refused: Option<(i64, String)>,
    /// The latest due time recorded beyond the reader's limit (a clock ran ahead), if any.
    pub future_due_ms: Option<i64>,
    /// The latest due time recorded as missed (its note starts with [`MISSED`]) and why.
    pub last_missed: Option<(i64, String)>,
}

/// A queue entry a worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The run.
    pub run_id: String,
    /// The pinned plan document.
    pub plan: String,
    /// Who submitted it.
    pub submitted_by: String,
    /// True when the run already exists in the journal (an earlier claim started it): it is
    /// resumed, never started again.
    pub started: bool,
    /// How many times it was claimed before this one.
    pub earlier_claims: i64,
    /// An operator asked (from the console) that the run be abandoned after its
    /// compensations ([`Store::request_abandon`]): who, and why (already redacted). The
    /// worker runs `runbook abandon --compensate` as them instead of resuming it.
    pub abandon: Option<AbandonRequest>,
    /// The operator whose decision (on the console) handed the run back to be resumed
    /// ([`Store::requeue_to_resume`]): the worker resumes it as them, so the journal's
    /// `run_resumed` names who decided (red team adv19a-5). `None`: the submitter.
    pub resume_by: Option<String>,
}

/// Who asked that a run be abandoned with its compensations, why, and at which record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonRequest {
    /// The operator (the console's signed-in identity).
    pub by: String,
    /// The reason, redacted with the console's copy of the run's secrets before it was
    /// stored; `None` once a worker handed it to an engine ([`Store::hand_over_reason`]).
    pub reason: Option<String>,
    /// The journal's last record when it was asked (moved past its own engine's records
    /// when a worker hands it back): a record after it is another's decision, and the
    /// request is dropped.
    pub head: i64,
}

/// A queue entry as `runbook runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The run.
    pub run_id: String,
    /// Runbook name.
    pub runbook: String,
    /// queued, claimed or done.
    pub state: String,
    /// Who submitted it.
    pub submitted_by: String,
    /// When.
    pub submitted_at: String,
    /// The worker that claimed it last.
    pub worker: Option<String>,
    /// The engine's exit code, once done.
    pub exit_code: Option<i64>,
    /// What the worker last saw.
    pub note: Option<String>,
}

/// One step attempt's recorded output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLog {
    /// The step's journal path (`include/step` inside included runbooks).
    pub step: String,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// Lines `out TEXT` / `err TEXT`.
    pub body: String,
}

/// Run `op` again while SQLite answers "database is locked" at once. The busy timeout makes
/// a writer wait for another's transaction, but SQLite returns `SQLITE_BUSY` without waiting
/// in a few cases (a connection whose read snapshot went stale, WAL recovery); with several
/// writers in one run (included runbooks in parallel), those happen. Every write is one
/// transaction, so trying it again is safe.
async fn retry_busy<T, F, Fut>(backend: Backend, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = 2u64;
    for _ in 0..60 {
        match op().await {
            Err(StoreError::Db(e)) if backend.is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                wait = (wait * 2).min(100);
            }
            other => return other,
        }
    }
    op().await
}

/// How long opening a SQLite store waits for another process's schema upgrade: the
/// busy timeout every connection has. An upgrade takes milliseconds; a holder past this is
/// stopped or stuck, and the wait ends with [`StoreError::MigrationBusy`].
pub const MIGRATION_WAIT: Duration = Duration::from_secs(30);

/// The state store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The session's database role (PostgreSQL), written into every record.
    role: Option<String>,
    /// SQLite: the connection the journal is written with ([`append`]).
    writer: append::Writer,
}

/// The header every SQLite database file starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Look at a SQLite state file before any connection does: what its size and header say,
/// without SQLite. `Ok(false)` when there is no file yet, or an empty one (SQLite treats an
/// empty file as an empty database: the schema is created in it).
fn look_at_sqlite_file(path: &Path) -> Result<bool> {
    let bad = |reason: String| StoreError::BadFile { path: path.display().to_string(), reason };
    // From now on no other code of this process opens the store's files (adv20-1).
    files::opened_store(path);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // Missing: created by the pool (the caller decides whether that is wanted).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(bad(format!("cannot look at it: {e}"))),
    };
    if meta.is_dir() {
        return Err(bad("it is a directory".into()));
    }
    if !meta.is_file() {
        return Err(bad("it is not a regular file (a FIFO, a device or a socket)".into()));
    }
    if meta.len() == 0 {
        return Ok(false);
    }
    let mut head = [0u8; 16];
    if files::kept_header(path, &mut head).is_err() || &head != SQLITE_MAGIC {
        return Err(bad("it is not a SQLite database (its first bytes are not SQLite's header)".into()));
    }
    // The header says how big the database is (page size at 16, page count at 28, valid
    // when the change counter at 24 equals the one at 92): a shorter file was cut.
    let mut header = [0u8; 100];
    if files::kept_header(path, &mut header).is_ok() {
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65_536,
            n => u64::from(n),
        };
        let pages = u64::from(u32::from_be_bytes([header[28], header[29], header[30], header[31]]));
        let valid = header[24..28] == header[92..96];
        // While another process writes, the file is legitimately shorter than its header
        // says: pages live in the write-ahead log until a checkpoint copies them (and a
        // checkpoint writes page 1 before the pages that extend the file). Only a file
        // with no log or journal beside it is judged by its size.
        let sidecar = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).is_ok()
        };
        let in_use = sidecar("-wal") || sidecar("-journal");
        if valid && !in_use && page_size > 0 && meta.len() < pages * page_size {
            return Err(bad(format!(
                "it is truncated ({} bytes, where its header says {} pages of {page_size} bytes)",
                meta.len(),
                pages
            )));
        }
    } else {
        return Err(bad("it is truncated (shorter than SQLite's 100-byte header)".into()));
    }
    Ok(true)
}

/// Look at a SQLite state file before the pool does (the read-only store): the pool retries
/// a connection that fails (a file that is not a database fails every time) until its
/// timeout, 30 s later, with "pool timed out". One connection here says what is wrong at once.
///
/// The probe's connection is returned (`None` when there is no file yet): the caller closes it
/// once the pool has a connection of its own. Closed first, it would be the file's last
/// connection, whose close checkpoints and deletes the write-ahead log (three syncs to disk),
/// which the pool's first connection then creates again (one more). A store opened to write
/// has no probe: its pool's first connection is the probe ([`sqlite_pool_checked`]).
async fn probe_sqlite(path: &Path, read_only: bool) -> Result<Option<sqlx::SqliteConnection>> {
    use sqlx::Connection as _;
    let bad = |reason: String| StoreError::BadFile { path: path.display().to_string(), reason };
    if !look_at_sqlite_file(path)? {
        return Ok(None);
    }
    // Writers wait for each other as the pool's connections do (a store in use is not a
    // damaged one).
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| bad(format!("it cannot be opened: {}", db_message(&e))))?;
    // Reads the schema (the first page and the catalogue): a truncated or damaged file
    // fails here. `quick_check` would read every page; the journal's hash chain covers
    // the rows themselves.
    let probe = sqlx::query(SCHEMA_PROBE).execute(&mut conn).await;
    match probe {
        Ok(_) => Ok(Some(conn)),
        // Busy or locked: in use, not damaged; the pool waits for it as usual.
        Err(e) if is_busy(&e) => Ok(Some(conn)),
        Err(e) => {
            let _ = conn.close().await;
            Err(bad(format!("the database is damaged: {}", db_message(&e))))
        }
    }
}

/// Every PostgreSQL session of the store: a transaction left idle for a minute is ended by
/// the server, and its row locks with it. Every transaction of the store begins and ends
/// inside one store call (no other code runs inside one), so a transaction idle that long
/// belongs to a process that stopped (SIGSTOP, a paused VM, a frozen container) while it
/// held a schedule's head or a run's lock row: before (red team adv25 F2, F2b), every
/// other worker's schedule passes and a run waiting on that lock froze until it was killed.
/// A minute is the default lease: a holder stalled that long has lost its lease anyway.
const PG_SESSION: &str = "SET idle_in_transaction_session_timeout = '60s'";

/// Reads the schema (the first page and the catalogue): a truncated or damaged file fails
/// here. `quick_check` would read every page; the journal's hash chain covers the rows.
const SCHEMA_PROBE: &str = "SELECT count(*) FROM sqlite_master";

/// The pool of a SQLite store: created when missing unless `read_only` (then `mode=ro`),
/// `pragmas` run on every connection.
async fn sqlite_pool(path: &Path, read_only: bool, pragmas: &'static str) -> Result<AnyPool> {
    let url = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(!read_only)
        .read_only(read_only)
        .to_url_lossy()
        .to_string();
    let pool = AnyPoolOptions::new()
        .max_connections(4)
        // A connection is pinged when given back (sqlx does it, and ends what a dropped query
        // left); a local file needs no second ping when it is taken again: one thread round
        // trip less per statement.
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(pragmas).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    Ok(pool)
}

/// The pool of a SQLite store opened to write: one connection, created when missing,
/// `pragmas` run on it. Its first connection is also the probe of the file (no connection
/// of its own, no thread of its own: issue 13): a connection whose pragmas or read of the
/// schema fail says so at once, where the pool would try again until its timeout.
///
/// One pooled connection, not four: sqlx gives a connection back to its pool only after a
/// ping on its thread, so with room for more, a query that follows another at once opened a
/// connection of its own (a thread, an open, a parse of the schema: three to four per
/// `runbook run`). The journal's writes have their own connection besides this one
/// ([`append::Writer`], detached from the pool); the rest of the store's calls take turns.
/// No code of the store takes a second pooled connection while it holds one.
async fn sqlite_pool_checked(path: &Path, pragmas: &'static str) -> Result<AnyPool> {
    let bad = |reason: String| StoreError::BadFile { path: path.display().to_string(), reason };
    let url = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .to_url_lossy()
        .to_string();
    // What failed on a connection that is not busy: the file, not the moment.
    let (damaged, mut damage) = tokio::sync::watch::channel(None::<String>);
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            let damaged = damaged.clone();
            Box::pin(async move {
                let checked = match conn.execute(pragmas).await {
                    Ok(_) => sqlx::query(SCHEMA_PROBE).execute(&mut *conn).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = &checked
                    && !is_busy(e)
                {
                    damaged.send_replace(Some(db_message(e)));
                }
                checked
            })
        })
        .connect_lazy(&url)?;
    let damage = async move {
        let seen = damage.wait_for(Option::is_some).await.map(|seen| (*seen).clone().unwrap_or_default());
        match seen {
            Ok(message) => message,
            // The pool (and its `after_connect`) is gone: nothing more to wait for.
            Err(_) => std::future::pending().await,
        }
    };
    let first = tokio::select! {
        first = pool.acquire() => first,
        message = damage => {
            pool.close().await;
            return Err(bad(format!("the database is damaged: {message}")));
        }
    };
    match first {
        Ok(first) => drop(first),
        Err(e) if e.as_database_error().is_some() => {
            return Err(bad(format!("it cannot be opened: {}", db_message(&e))));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(pool)
}

/// SQLite's "database is locked" or "busy" (codes 5 and 6, extended or not).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.code())
        .and_then(|c| c.parse::<u32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

fn db_message(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

impl Store {
    /// Open the store. A SQLite file is created when missing and its schema brought up to
    /// date (it belongs to one user). A PostgreSQL store is shared: its schema changes only
    /// through [`Store::migrate`] (`runbook state migrate`), so opening one whose schema is
    /// older is refused with [`StoreError::NeedsMigration`].
    pub async fn open(location: &Location) -> Result<Store> {
        let store = Store::connect(location).await?;
        match store.backend {
            Backend::Sqlite => {
                // Processes that open a new file at once (a run and a `runs` polling for
                // it) would each apply the migrations they read as missing: sqlx locks
                // nothing on SQLite. Whoever finds the schema behind takes a lock file, looks
                // again, and only then migrates.
                let (applied, known) = store.versions().await?;
                if applied < known {
                    let Location::Sqlite(path) = location else {
                        return Err(StoreError::Corrupt("a SQLite store without a path".into()));
                    };
                    let _lock = files::migration_lock(path).await?;
                    store.migrate().await?;
                }
            }
            Backend::Postgres => {
                let (applied, known) = store.versions().await?;
                if applied < known {
                    return Err(StoreError::NeedsMigration { applied, known });
                }
            }
        }
        Ok(store)
    }

    /// Open a SQLite store at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        Store::open(&Location::Sqlite(path.to_path_buf())).await
    }

    /// Open the store to read it, and only read it (the web console): nothing is written,
    /// whatever `location` holds. SQLite: `None` when the file does not exist or is empty
    /// (no runs yet); otherwise opened `mode=ro` with `query_only` (no schema is made, the
    /// journal mode is not switched, no lock file is taken), and a file without this
    /// engine's schema is refused. PostgreSQL: every transaction is read-only. A schema older
    /// than this binary is refused ([`StoreError::NeedsMigration`]): a writer brings it up
    /// to date.
    pub async fn open_read_only(location: &Location) -> Result<Option<Store>> {
        install_default_drivers();
        let backend = location.backend();
        let (pool, role) = match location {
            Location::Sqlite(path) => {
                match std::fs::metadata(path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Ok(m) if m.is_file() && m.len() == 0 => return Ok(None),
                    Ok(_) | Err(_) => {}
                }
                let Some(probe) = probe_sqlite(path, true).await? else { return Ok(None) };
                let pool =
                    sqlite_pool(path, true, "PRAGMA query_only = ON; PRAGMA busy_timeout = 30000;").await?;
                let _ = sqlx::Connection::close(probe).await;
                (pool, None)
            }
            Location::Postgres(url) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET default_transaction_read_only = on").await?;
                            conn.execute(PG_SESSION).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                let role: String =
                    sqlx::query("SELECT CAST(session_user AS TEXT)").fetch_one(&pool).await?.try_get(0)?;
                (pool, Some(role))
            }
        };
        let store = Store { pool, backend, role, writer: append::Writer::default() };
        let (applied, known) = store.versions().await?;
        if applied == 0 && backend == Backend::Sqlite {
            return Err(StoreError::BadFile {
                path: location.shown(),
                reason:
                    "it is not a runbook state store (it has no runbook schema); nothing was changed in it"
                        .into(),
            });
        }
        if applied < known {
            return Err(StoreError::NeedsMigration { applied, known });
        }
        Ok(Some(store))
    }

    /// Connect without looking at the schema (for `state migrate` and `state check`).
    pub async fn connect(location: &Location) -> Result<Store> {
        install_default_drivers();
        let backend = location.backend();
        let pool = match location {
            Location::Sqlite(path) => {
                // A new store is its user's alone (0600, whatever the umask): SQLite gives its
                // log and shared memory the database's mode (red team adv20-2: a store made
                // 0644 let any local user read step logs a form of a secret slipped into).
                if !look_at_sqlite_file(path)? {
                    files::create_private(path).map_err(|e| StoreError::BadFile {
                        path: path.display().to_string(),
                        reason: format!("cannot create it: {e}"),
                    })?;
                }
                // Every committed event survives a power loss; writers wait for each other
                // instead of failing at once. What a write frees (a row's old version, moved
                // when it grows or shrinks, or erased) is overwritten with zeros, not left in
                // the file's free space: an erased plan leaves no copy (`release_refused`).
                sqlite_pool_checked(
                    path,
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000; PRAGMA secure_delete = ON;",
                )
                .await?
            }
            Location::Postgres(url) => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(PG_SESSION).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        let role = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                Some(sqlx::query("SELECT CAST(session_user AS TEXT)").fetch_one(&pool).await?.try_get(0)?)
            }
        };
        Ok(Store { pool, backend, role, writer: append::Writer::default() })
    }

    /// Which database this store lives in.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Bring the schema up to date; the versions before and after. Refuses a store whose
    /// schema is newer than this binary. Safe to run from several hosts at once (the
    /// migrator takes a database lock).
    pub async fn migrate(&self) -> Result<(i64, i64)> {
        let (applied, known) = self.versions().await?;
        if applied > known {
            return Err(StoreError::NewerSchema { found: applied, known });
        }
        Migrator::with_migrations(self.backend.migrations()).run(&self.pool).await?;
        Ok((applied, known))
    }

    /// The store's triggers as they stand, each as (name, table, definition, firing):
    /// SQLite's `sqlite_master.sql`; PostgreSQL's `pg_get_triggerdef` with the store's
    /// schema left out, and `firing` only when `tgenabled` is `O` or `A` (a trigger switched
    /// to `R`, replica, or `D` fires in no ordinary session: red team adv26 G1).
    async fn guards_held(&self) -> Result<Vec<HeldTrigger>> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name, tbl_name, COALESCE(sql, ''), 1 FROM sqlite_master WHERE type = 'trigger'"
            }
            Backend::Postgres => {
                "SELECT CAST(t.tgname AS TEXT), CAST(c.relname AS TEXT), \
                 replace(replace(pg_get_triggerdef(t.oid), quote_ident(current_schema()) || '.', ''), current_schema() || '.', ''), \
                 CAST(CASE WHEN t.tgenabled IN ('O', 'A') THEN 1 ELSE 0 END AS BIGINT) \
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT t.tgisinternal AND n.nspname = current_schema()"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(HeldTrigger {
                    name: r.try_get::<String, _>(0)?,
                    table: r.try_get::<String, _>(1)?,
                    definition: r.try_get::<String, _>(2)?,
                    firing: r.try_get::<i64, _>(3)? != 0,
                })
            })
            .collect()
    }

    /// PostgreSQL's guard functions as they stand: (name, body), the store schema's
    /// functions without arguments. Nothing on SQLite, whose triggers hold their bodies.
    async fn guard_functions_held(&self) -> Result<Vec<(String, String)>> {
        if self.backend == Backend::Sqlite {
            return Ok(Vec::new());
        }
        let sql = "SELECT CAST(p.proname AS TEXT), p.prosrc FROM pg_proc p \
                   JOIN pg_namespace n ON n.oid = p.pronamespace \
                   WHERE n.nspname = current_schema() AND p.pronargs = 0";
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?))).collect()
    }

    /// Each guard of the applied migrations held as they create it, or not, and why: the
    /// guard functions first (PostgreSQL), then the triggers. A guard is known by its whole
    /// definition, never by its name alone (red team adv26 G1: a same-named trigger that
    /// does nothing, a trigger switched to replica, a function whose body was replaced all
    /// passed).
    async fn guard_states(&self, applied: i64) -> Result<Vec<GuardState>> {
        let held = self.guards_held().await?;
        let functions = self.guard_functions_held().await?;
        let guards: Vec<(i64, String, String)> = self.backend.guards_up_to(applied);
        let mut out = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (_, _, statement) in &guards {
            let Some(function) = trigger_function(statement) else { continue };
            if seen.contains(&function) {
                continue;
            }
            seen.push(function.clone());
            let Some((create, body)) = self.backend.guard_function(&function, applied) else { continue };
            let fault = match functions.iter().find(|(n, _)| *n == function) {
                None => Some(GuardFault::Missing),
                Some((_, b)) if *b != body => Some(GuardFault::Altered),
                Some(_) => None,
            };
            out.push(GuardState::Function { name: function, create, fault });
        }
        for (_, name, statement) in guards {
            let want = canonical_trigger(self.backend, &statement);
            // SQLite's names are case-insensitive: `EVENTS_NO_DELETE` takes the guard's name.
            let found = held.iter().find(|h| match self.backend {
                Backend::Sqlite => h.name.eq_ignore_ascii_case(&name),
                Backend::Postgres => h.name == name,
            });
            let fault = match found {
                None => Some(GuardFault::Missing),
                Some(h) if canonical_trigger(self.backend, &h.definition) != want => {
                    Some(GuardFault::Altered)
                }
                Some(h) if !h.firing => Some(GuardFault::Disabled),
                Some(_) => None,
            };
            out.push(GuardState::Trigger {
                held: found.map(|h| (h.name.clone(), h.table.clone())),
                name,
                statement,
                fault,
            });
        }
        Ok(out)
    }

    /// The guards of the store's schema that it does not hold as the migrations create
    /// them: missing, disabled (PostgreSQL's `DISABLE TRIGGER` or `ENABLE REPLICA TRIGGER`),
    /// or altered (a same-named trigger of another definition, a guard function of another
    /// body). Each one a finding of tampering, since no runbook command drops, disables or
    /// alters one (red teams adv24, adv26 G1). Nothing for a store never migrated.
    pub async fn guard_findings(&self) -> Result<Vec<String>> {
        let (applied, _) = self.versions().await?;
        if applied == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for state in self.guard_states(applied).await? {
            let (what, fault) = match &state {
                GuardState::Function { name, fault: Some(f), .. } => (format!("guard function `{name}`"), *f),
                GuardState::Trigger { name, fault: Some(f), .. } => (format!("guard trigger `{name}`"), *f),
                _ => continue,
            };
            out.push(match fault {
                GuardFault::Missing => format!(
                    "{what} is missing: the store's append-only guards were dropped (tampering); `runbook state migrate` puts them back"
                ),
                GuardFault::Disabled => format!(
                    "{what} is disabled: the store's append-only guards were switched off (tampering); `runbook state migrate` switches them on"
                ),
                GuardFault::Altered => format!(
                    "{what} is not the one the migrations create: the store's append-only guards were replaced (tampering); `runbook state migrate` puts them back"
                ),
            });
        }
        Ok(out)
    }

    /// Put back the guards the store lacks or holds altered, and switch on disabled ones,
    /// in one transaction: the guards put back, each as `guard trigger `name`` or `guard
    /// function `name``. Called by `runbook state migrate` after the migrations (which never
    /// run again, so they would not). A guard function comes back before its triggers (a
    /// `DROP FUNCTION ... CASCADE` took them with it: red team adv26 G3), with the settings
    /// the migrations pin on it; an altered trigger (any case of its name on SQLite) is
    /// dropped and created from the migration.
    pub async fn restore_guards(&self) -> Result<Vec<String>> {
        let (applied, _) = self.versions().await?;
        let states = self.guard_states(applied).await?;
        let mut tx = self.pool.begin_with(self.backend.begin()).await?;
        let mut restored = Vec::new();
        for state in states {
            match state {
                GuardState::Function { name, create, fault: Some(_) } => {
                    let create = match create.strip_prefix("CREATE FUNCTION ") {
                        Some(rest) => format!("CREATE OR REPLACE FUNCTION {rest}"),
                        None => create,
                    };
                    sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut *tx).await?;
                    for pin in self.backend.guard_function_pins(&name) {
                        let sql = format!("DO $restore$ BEGIN {pin} END $restore$");
                        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
                    }
                    restored.push(format!("guard function `{name}`"));
                }
                GuardState::Trigger { name, statement, held, fault: Some(fault) } => {
                    match (fault, held) {
                        (GuardFault::Disabled, Some((held, table))) => {
                            let sql = format!("ALTER TABLE \"{table}\" ENABLE TRIGGER \"{held}\"");
                            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
                        }
                        (_, held) => {
                            if let Some((held, table)) = held {
                                let sql = match self.backend {
                                    Backend::Sqlite => format!("DROP TRIGGER \"{held}\""),
                                    Backend::Postgres => format!("DROP TRIGGER \"{held}\" ON \"{table}\""),
                                };
                                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
                            }
                            sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
                        }
                    }
                    restored.push(format!("guard trigger `{name}`"));
                }
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(restored)
    }

    /// Set how identities are established, and map database roles to identities
    /// (`(role, identity)`; mapping a role to an empty identity removes its mapping). Only
    /// PostgreSQL has roles: `db-role` on SQLite is refused.
    pub async fn set_identity(&self, mode: IdentityMode, map: &[(String, String)]) -> Result<()> {
        if mode == IdentityMode::DbRole && self.backend == Backend::Sqlite {
            return Err(StoreError::Refused(
                "a SQLite store has no database roles: the `db-role` identity mode needs PostgreSQL".into(),
            ));
        }
        let mut tx = self.pool.begin_with(self.backend.begin()).await?;
        sqlx::query(
            "INSERT INTO runbook_settings (key, value) VALUES ('identity', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(mode.as_str())
        .execute(&mut *tx)
        .await?;
        for (role, identity) in map {
            if identity.trim().is_empty() {
                sqlx::query("DELETE FROM runbook_identities WHERE db_role = $1")
                    .bind(role)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO runbook_identities (db_role, identity) VALUES ($1, $2) \
                     ON CONFLICT (db_role) DO UPDATE SET identity = excluded.identity",
                )
                .bind(role)
                .bind(identity)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The identity mode, and the identity this session acts as in `db-role` mode (its
    /// role's mapped identity, else the role's name).
    pub async fn identity(&self) -> Result<(IdentityMode, Option<String>)> {
        let mode: Option<String> = sqlx::query("SELECT value FROM runbook_settings WHERE key = 'identity'")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let mode = match mode.as_deref() {
            None => IdentityMode::Declared,
            Some(m) => IdentityMode::parse(m)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown identity mode `{m}`")))?,
        };
        let (IdentityMode::DbRole, Some(role)) = (mode, &self.role) else { return Ok((mode, None)) };
        let mapped: Option<String> =
            sqlx::query("SELECT identity FROM runbook_identities WHERE db_role = $1")
                .bind(role)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        Ok((mode, Some(mapped.unwrap_or_else(|| role.clone()))))
    }

    /// The database role of this session (PostgreSQL).
    pub fn db_role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// (applied, known) schema versions; applied is 0 for an empty database.
    async fn versions(&self) -> Result<(i64, i64)> {
        let known = self.backend.migrations().iter().map(|m| m.version).max().unwrap_or(0);
        let migrated: i64 =
            sqlx::query(self.backend.has_migrations_table()).fetch_one(&self.pool).await?.try_get(0)?;
        let applied = if migrated == 0 {
            0
        } else {
            sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&self.pool)
                .await?
                .try_get::<Option<i64>, _>(0)?
                .unwrap_or(0)
        };
        if applied > known {
            return Err(StoreError::NewerSchema { found: applied, known });
        }
        Ok((applied, known))
    }

    /// Health of the store: schema versions, what it holds, the database clock; and a write
    /// that is rolled back, to prove this user may write.
    pub async fn check(&self, now_ms: i64) -> Result<Health> {
        let (applied, known) = self.versions().await?;
        let (runs, live_locks) = if applied > 0 {
            let runs = sqlx::query("SELECT COUNT(*) FROM runs").fetch_one(&self.pool).await?.try_get(0)?;
            let live =
                sqlx::query("SELECT COUNT(*) FROM locks WHERE run_id IS NOT NULL AND lease_until > $1")
                    .bind(now_ms)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
            (runs, live)
        } else {
            (0, 0)
        };
        let db_now_ms = self.clock_ms().await?;
        if applied > 0 {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            sqlx::query("UPDATE runs SET status = status WHERE run_id = $1")
                .bind("state-check")
                .execute(&mut *tx)
                .await?;
            tx.rollback().await?;
        }
        let (identity, session_identity) =
            if applied >= 4 { self.identity().await? } else { (IdentityMode::Declared, None) };
        Ok(Health {
            backend: self.backend,
            applied,
            known,
            runs,
            live_locks,
            db_now_ms,
            identity,
            db_role: self.role.clone(),
            session_identity,
            missing_guards: self.missing_guards(applied).await?,
        })
    }

    /// The guards the applied migrations install that the database does not hold as they
    /// create them (missing, disabled or altered).
    async fn missing_guards(&self, applied: i64) -> Result<Vec<String>> {
        Ok(self
            .guard_states(applied)
            .await?
            .into_iter()
            .filter_map(|state| match state {
                GuardState::Function { name, fault: Some(_), .. } => Some(format!("{name}()")),
                GuardState::Trigger { name, fault: Some(_), .. } => Some(name),
                _ => None,
            })
            .collect())
    }

    /// Record a new run (before its `run_started` event). Engines use [`Store::start_run`],
    /// which writes the row and the first records in one transaction.
    pub async fn create_run(&self, run: &NewRun<'_>) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        Self::insert_run(&mut conn, run).await
    }

    async fn insert_run(conn: &mut sqlx::AnyConnection, run: &NewRun<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (run_id, runbook, operator, started_at, status, lock_name) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run.run_id)
        .bind(run.runbook)
        .bind(run.operator)
        .bind(run.started_at)
        .bind(RunStatus::Running.as_str())
        .bind(run.lock_name)
        .execute(conn)
        .await
        .map_err(identity_refusal)?;
        Ok(())
    }

    /// Create a run and write its first records (`run_started`...) in one transaction: a
    /// run exists exactly when its first record does, so an engine that dies while starting
    /// leaves either a run with its `run_started` record or nothing at all.
    pub async fn start_run(
        &self,
        run: &NewRun<'_>,
        events: &[RunEvent],
        lease: Option<&Lease>,
    ) -> Result<Vec<Record>> {
        retry_busy(self.backend, || self.append_once(run.run_id, run.started_at, events, lease, Some(run)))
            .await
    }

    /// Append one event to a run's journal, chained to the previous record, in one
    /// transaction. With a lease, the write is refused unless the lease is still current.
    pub async fn append(
        &self,
        run_id: &str,
        ts: &str,
        event: &RunEvent,
        lease: Option<&Lease>,
    ) -> Result<Record> {
        let mut records = self.append_all(run_id, ts, std::slice::from_ref(event), lease).await?;
        records.pop().ok_or_else(|| StoreError::Corrupt("an append wrote nothing".into()))
    }

    /// Append events to a run's journal, in order, all or none, in one transaction (one
    /// sync to disk): what an engine records together, such as a step's success and the
    /// start of the steps that waited for it.
    pub async fn append_all(
        &self,
        run_id: &str,
        ts: &str,
        events: &[RunEvent],
        lease: Option<&Lease>,
    ) -> Result<Vec<Record>> {
        retry_busy(self.backend, || self.append_once(run_id, ts, events, lease, None)).await
    }

    async fn append_once(
        &self,
        run_id: &str,
        ts: &str,
        events: &[RunEvent],
        lease: Option<&Lease>,
        new: Option<&NewRun<'_>>,
    ) -> Result<Vec<Record>> {
        if self.backend == Backend::Sqlite {
            return self.append_sqlite(&append::Append { run_id, ts, events, lease, new }).await;
        }
        let mut tx = self.pool.begin_with(self.backend.begin()).await?;
        if let Some(run) = new {
            Self::insert_run(&mut tx, run).await?;
        }
        // PostgreSQL (SQLite took its own path above): the run's fence, its lock row held
        // until commit so a takeover waits for the write; the head is locked by `insert`.
        if let Some(lease) = lease {
            let current: Option<i64> =
                sqlx::query("SELECT fence FROM locks WHERE name = $1 AND run_id = $2 FOR SHARE")
                    .bind(&lease.name)
                    .bind(run_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
            self.check_fence(&mut tx, lease, current).await?;
        }
        let records = self.insert(&mut tx, run_id, ts, events, None).await?;
        tx.commit().await?;
        Ok(records)
    }

    /// Refuse a write whose lease is no longer the lock's current one.
    async fn check_fence(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        lease: &Lease,
        current: Option<i64>,
    ) -> Result<()> {
        if current == Some(lease.fence) {
            return Ok(());
        }
        Err(Self::fenced(&mut **tx, lease).await?)
    }

    /// The refusal of a write by a lease that is no longer the lock's current one.
    async fn fenced<'e, E>(executor: E, lease: &Lease) -> Result<StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let current: Option<i64> = sqlx::query("SELECT fence FROM locks WHERE name = $1")
            .bind(&lease.name)
            .fetch_optional(executor)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        Ok(StoreError::Fenced {
            run_id: lease.run_id.clone(),
            lock: lease.name.clone(),
            fence: lease.fence,
            current: current.unwrap_or(lease.fence),
        })
    }

    /// Append a decision (an approval, a rejection) only if `check` accepts the run's state
    /// as folded inside the same transaction: two conflicting decisions made at once cannot
    /// both pass, because the second one sees the first.
    pub async fn append_checked<F>(
        &self,
        run_id: &str,
        ts: &str,
        event: &RunEvent,
        check: F,
    ) -> Result<Record>
    where
        F: FnOnce(&runbook_core::journal::RunState) -> std::result::Result<(), String>,
    {
        let mut tx = self.pool.begin_with(self.backend.begin()).await?;
        // Lock the run first: a second decision waits here, then folds the first one in.
        if sqlx::query(self.backend.run_head()).bind(run_id).fetch_optional(&mut *tx).await?.is_none() {
            return Err(StoreError::NoSuchRun(run_id.to_string()));
        }
        let records = Self::read_records(&mut *tx, run_id, 0).await?;
        // A decision is judged against the journal, so only against one that verifies: an
        // edited record could change who may decide, and nothing is added to a broken chain
        // (red team adv22 F3; `resume` refuses such a journal too).
        if let Err(e) = runbook_core::journal::verify(&records, None) {
            return Err(StoreError::Refused(format!(
                "the journal of run {run_id} fails verification at record {}: {}; a decision is neither judged against it nor added to it (`runbook audit verify {run_id}`)",
                e.seq, e.reason
            )));
        }
        check(&runbook_core::journal::fold(&records)).map_err(StoreError::Refused)?;
        let mut records = self.insert(&mut tx, run_id, ts, std::slice::from_ref(event), None).await?;
        tx.commit().await?;
        records.pop().ok_or_else(|| StoreError::Corrupt("an append wrote nothing".into()))
    }

    async fn insert(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run_id: &str,
        ts: &str,
        events: &[RunEvent],
        head: Option<sqlx::any::AnyRow>,
    ) -> Result<Vec<Record>> {
        // The run's head, locked (`head`: already read with it).
        let last = match head {
            Some(row) => row,
            None => sqlx::query(self.backend.run_head())
                .bind(run_id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))?,
        };
        let seq = u64::try_from(last.try_get::<i64, _>(0)?).unwrap_or(0);
        let last_hash: Option<String> = last.try_get(1)?;
        // The head must name the last record, read in this transaction: a record is chained
        // to the journal, never to what the `runs` row says (a row moved past its triggers
        // would otherwise make every later record chain to a forged hash).
        let tail = sqlx::query("SELECT seq, hash FROM events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1")
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await?;
        let tail: (i64, Option<String>) = match tail {
            Some(row) => (row.try_get(0)?, Some(row.try_get(1)?)),
            None => (0, None),
        };
        let chained = self.chain(run_id, ts, events, (seq, last_hash), tail)?;
        for (i, chunk) in chained.records.chunks(INSERT_BATCH).enumerate() {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_events_sql(chunk.len(), 0)));
            for (record, body) in chunk.iter().zip(&chained.bodies[i * INSERT_BATCH..]) {
                query = bind_event(query, run_id, ts, record, body);
            }
            query.execute(&mut **tx).await.map_err(identity_refusal)?;
        }
        let query = sqlx::query(sqlx::AssertSqlSafe(update_head_sql(0)));
        chained.bind_head(query, run_id, ts).execute(&mut **tx).await?;
        Ok(chained.records)
    }

    /// Chain `events` to the run's head, `(last_seq, last_hash)` as its `runs` row says and
    /// `tail` (seq, hash) as its journal's last record says, which must agree.
    fn chain(
        &self,
        run_id: &str,
        ts: &str,
        events: &[RunEvent],
        (mut seq, last_hash): (u64, Option<String>),
        tail: (i64, Option<String>),
    ) -> Result<Chained> {
        if tail != (i64::try_from(seq).unwrap_or(-1), last_hash.clone()) {
            return Err(StoreError::Corrupt(format!(
                "run {run_id}: its row's head (record {seq}) is not its journal's last record (record {}): `runbook audit verify {run_id}`",
                tail.0
            )));
        }
        // The run's summary starts when its journal does (`started_at` is the first record's time).
        let first = i64::from(seq == 0);
        let mut prev: String = last_hash.unwrap_or_else(|| runbook_core::journal::GENESIS.to_string());
        let (mut status, mut finished, mut reopened) = (None, false, 0i64);
        let mut records = Vec::with_capacity(events.len());
        let mut bodies = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let record = Record::new_by(run_id, seq, ts, event.clone(), &prev, self.role.as_deref());
            bodies
                .push(serde_json::to_string(&record.event).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            // The same rule as the summary `audit verify` derives from the journal.
            match runbook_core::audit::status_change(&record.event) {
                Some(StatusChange::Finished(s)) => (status, finished, reopened) = (Some(s.as_str()), true, 0),
                Some(StatusChange::Stopped(s)) => status = Some(s.as_str()),
                // A failed run may be resumed: it is not finished any more.
                Some(StatusChange::Reopened) => {
                    (status, finished, reopened) = (Some(RunStatus::Running.as_str()), false, 1)
                }
                None => {}
            }
            prev = record.hash.clone();
            records.push(record);
        }
        Ok(Chained { records, bodies, seq, prev, status, finished, reopened, first })
    }

    /// A run's journal, in order.
    pub async fn records(&self, run_id: &str) -> Result<Vec<Record>> {
        Self::read_records(&self.pool, run_id, 0).await
    }

    /// A run's records after `seq`, in order (what a waiting run has not seen yet).
    pub async fn records_after(&self, run_id: &str, seq: u64) -> Result<Vec<Record>> {
        Self::read_records(&self.pool, run_id, seq).await
    }

    async fn read_records<'e, E>(executor: E, run_id: &str, after: u64) -> Result<Vec<Record>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let rows = sqlx::query(
            "SELECT seq, ts, body, prev_hash, hash, db_role FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(after as i64)
        .fetch_all(executor)
        .await?;
        Self::records_of_rows(run_id, &rows)
    }

    /// Records from rows whose first six columns are `seq, ts, body, prev_hash, hash, db_role`.
    fn records_of_rows(run_id: &str, rows: &[sqlx::any::AnyRow]) -> Result<Vec<Record>> {
        rows.iter()
            .map(|row| {
                let body: String = row.try_get(2)?;
                let event: RunEvent = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("run {run_id}: {e}")))?;
                Ok(Record {
                    run_id: run_id.to_string(),
                    seq: row.try_get::<i64, _>(0)? as u64,
                    ts: row.try_get(1)?,
                    event,
                    prev_hash: row.try_get(3)?,
                    hash: row.try_get(4)?,
                    db_role: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// A run's summary and its journal, read in one snapshot (so they agree even while the
    /// run is being written).
    pub async fn run_and_records(&self, run_id: &str) -> Result<(RunSummary, Vec<Record>)> {
        let mut tx = self.pool.begin_with(self.backend.begin_snapshot()).await?;
        let row = sqlx::query(
            "SELECT run_id, runbook, operator, started_at, status, finished_at, last_seq, last_hash \
             FROM runs WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))?;
        let run = summary(&row)?;
        let records = Self::read_records(&mut *tx, run_id, 0).await?;
        tx.rollback().await?;
        Ok((run, records))
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunSummary>> {
        let rows = sqlx::query(
            "SELECT run_id, runbook, operator, started_at, status, finished_at, last_seq, last_hash \
             FROM runs ORDER BY started_at DESC, run_id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary).collect()
    }

    /// One run's summary.
    pub async fn run(&self, run_id: &str) -> Result<RunSummary> {
        let row = sqlx::query(
            "SELECT run_id, runbook, operator, started_at, status, finished_at, last_seq, last_hash \
             FROM runs WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))?;
        summary(&row)
    }

    /// The lock a run holds (or held last), if any.
    pub async fn lock_of_run(&self, run_id: &str) -> Result<Option<LockHolder>> {
        let row = sqlx::query("SELECT name, holder, acquired_at, lease_until FROM locks WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(LockHolder {
                name: r.try_get(0)?,
                run_id: run_id.to_string(),
                holder: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                acquired_at: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                lease_until: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Take lock `name` for `run_id` until `now_ms + ttl`, with no expectation about the
    /// run's journal ([`Head::Any`]); see [`Store::acquire`] for the rule.
    #[allow(clippy::too_many_arguments)]
    pub async fn acquire_lock(
        &self,
        name: &str,
        run_id: &str,
        holder: &str,
        now: &str,
        now_ms: i64,
        ttl: Duration,
        steal_from: Option<&str>,
    ) -> Result<Lease> {
        self.acquire(&Acquire { name, run_id, holder, now, now_ms, ttl, steal_from, head: Head::Any }).await
    }

    /// Take a lock for an engine. Exactly one engine holds a run at a time, and which one is
    /// decided here, in one transaction (the lock row locked: `BEGIN IMMEDIATE` on SQLite,
    /// `FOR UPDATE` on PostgreSQL) that reads the holder, judges its lease and the run's
    /// journal head, and writes the new holder:
    ///
    /// - a live lease refuses everyone, the run's own engines too ([`StoreError::LockHeld`],
    ///   naming the holder), except: a suspended lease ([`SUSPENDED_LEASE`], held by no
    ///   engine) is taken back by its own run, and a holder the caller proved dead
    ///   (`steal_from`, compared with the stored holder in this transaction) is replaced;
    /// - an expired lease is taken over (reported in [`Lease::took_over`]);
    /// - [`Head`]: a new run's id must be unused, and a resumed run's journal must still end
    ///   where the caller read it ([`StoreError::RunChanged`]): an engine never acts on a
    ///   journal that another engine extended in between.
    ///
    /// The fence grows by one at every acquisition, so writes of an older holder are refused.
    pub async fn acquire(&self, a: &Acquire<'_>) -> Result<Lease> {
        retry_busy(self.backend, || self.try_acquire(a)).await
    }

    async fn try_acquire(&self, a: &Acquire<'_>) -> Result<Lease> {
        let mut tx = self.pool.begin_with(self.backend.begin()).await?;
        // The row exists before it is locked, so two first acquisitions queue on it.
        sqlx::query(
            "INSERT INTO locks (name, fence, lease_until) VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(a.name)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(self.backend.lock_row()).bind(a.name).fetch_optional(&mut *tx).await?;
        let (fence, previous) = match row {
            None => (1, None),
            Some(r) => {
                let fence: i64 = r.try_get(0)?;
                let current_run: Option<String> = r.try_get(1)?;
                let lease_until: i64 = r.try_get(4)?;
                let previous = match current_run {
                    Some(run) => Some(LockHolder {
                        name: a.name.to_string(),
                        run_id: run,
                        holder: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                        acquired_at: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                        lease_until,
                    }),
                    None => None,
                };
                if let Some(p) = &previous
                    && lease_until > a.now_ms
                {
                    let resumes_suspended = lease_until == SUSPENDED_LEASE && p.run_id == a.run_id;
                    let replaces_dead = a.steal_from == Some(p.holder.as_str());
                    if !resumes_suspended && !replaces_dead {
                        return Err(StoreError::LockHeld(Box::new(p.clone())));
                    }
                }
                // No live engine holds it: the lock still belongs to its run until that run
                // has finished (issue 14, point 5). Only the run itself takes it back; a
                // run that never got its first record (no `runs` row) held nothing.
                if let Some(p) = &previous
                    && p.run_id != a.run_id
                {
                    let status: Option<String> = sqlx::query("SELECT status FROM runs WHERE run_id = $1")
                        .bind(&p.run_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?;
                    if let Some(status) = status
                        && runbook_core::lifecycle::run_keeps_its_lock(&status)
                    {
                        return Err(StoreError::LockKept { holder: Box::new(p.clone()), status });
                    }
                }
                (fence + 1, previous)
            }
        };
        let head: Option<i64> = sqlx::query("SELECT last_seq FROM runs WHERE run_id = $1")
            .bind(a.run_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let expected = match a.head {
            Head::Any => head,
            Head::New => None,
            Head::At(seq) => Some(seq as i64),
        };
        if head != expected {
            return Err(StoreError::RunChanged {
                run_id: a.run_id.to_string(),
                read: expected.map(|s| s as u64),
                found: head.map(|s| s as u64),
            });
        }
        let lease_until = a.now_ms.saturating_add(a.ttl.as_millis() as i64).min(SUSPENDED_LEASE - 1);
        sqlx::query(
            "INSERT INTO locks (name, fence, run_id, holder, acquired_at, lease_until) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET fence = excluded.fence, run_id = excluded.run_id, \
             holder = excluded.holder, acquired_at = excluded.acquired_at, lease_until = excluded.lease_until",
        )
        .bind(a.name)
        .bind(fence)
        .bind(a.run_id)
        .bind(a.holder)
        .bind(a.now)
        .bind(lease_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Lease { name: a.name.to_string(), fence, run_id: a.run_id.to_string(), took_over: previous })
    }

    /// Keep a lock for a run that stopped to wait for people (approvals): the lease no longer
    /// expires, and the holder says so. Only the run itself takes it back (`resume`), or
    /// its end releases it (`compensate`).
    pub async fn suspend_lock(&self, lease: &Lease, holder: &str) -> Result<()> {
        self.suspend_lock_as(lease, holder).await
    }

    /// [`Store::suspend_lock`] with the holder typed: the lease's run, waiting on `waiting`
    /// ([`Holder::Suspended`]).
    pub async fn suspend_run_lock(&self, lease: &Lease, waiting: &[String]) -> Result<()> {
        let holder = Holder::Suspended { run: lease.run_id.clone(), waiting: waiting.to_vec() };
        self.suspend_lock_as(lease, &holder.to_string()).await
    }

    async fn suspend_lock_as(&self, lease: &Lease, holder: &str) -> Result<()> {
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            sqlx::query(
                "UPDATE locks SET holder = $1, lease_until = $2 WHERE name = $3 AND fence = $4 AND run_id = $5",
            )
            .bind(holder)
            .bind(SUSPENDED_LEASE)
            .bind(&lease.name)
            .bind(lease.fence)
            .bind(&lease.run_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Extend a lease while its run is alive. Refused if another run has taken the lock.
    pub async fn renew_lock(&self, lease: &Lease, now_ms: i64, ttl: Duration) -> Result<()> {
        let lease_until = now_ms.saturating_add(ttl.as_millis() as i64);
        let done =
            sqlx::query("UPDATE locks SET lease_until = $1 WHERE name = $2 AND fence = $3 AND run_id = $4")
                .bind(lease_until)
                .bind(&lease.name)
                .bind(lease.fence)
                .bind(&lease.run_id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(Self::fenced(&self.pool, lease).await?)
    }

    /// The database's clock, in ms since the epoch: the one clock lock leases are judged by
    /// (PostgreSQL's `clock_timestamp()`, shared by every host of a team; SQLite's `now`,
    /// the clock of the one host that holds the file). Engines pass it as `now_ms` to
    /// [`Store::acquire`] and [`Store::renew_lock`], never their own clock.
    pub async fn clock_ms(&self) -> Result<i64> {
        let clock = match self.backend {
            Backend::Sqlite => "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Backend::Postgres => "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        };
        Ok(sqlx::query(clock).fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// Keep the lock for a run that stopped unfinished (interrupted, needing an operator):
    /// no engine holds its lease any more, but the lock stays the run's
    /// ([`runbook_core::lifecycle::run_keeps_its_lock`]) until its `resume` takes it back or
    /// its end lets it go.
    pub async fn park_lock(&self, lease: &Lease) -> Result<()> {
        sqlx::query("UPDATE locks SET lease_until = 0 WHERE name = $1 AND fence = $2 AND run_id = $3")
            .bind(&lease.name)
            .bind(lease.fence)
            .bind(&lease.run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Let the lock go (the fence is kept, so it keeps growing).
    pub async fn release_lock(&self, lease: &Lease) -> Result<()> {
        sqlx::query(
            "UPDATE locks SET run_id = NULL, holder = NULL, acquired_at = NULL, lease_until = 0 \
             WHERE name = $1 AND fence = $2",
        )
        .bind(&lease.name)
        .bind(lease.fence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keep an attempt's output (replacing what an earlier copy of the same attempt kept),
    /// without a `log_kept` record: `audit verify` then finds a log the journal does not
    /// vouch for. The engine uses [`Store::keep_logs`]; this stays for tools and tests.
    pub async fn put_log(&self, run_id: &str, step: &str, attempt: i64, body: &str) -> Result<()> {
        retry_busy(self.backend, || async {
            sqlx::query(
                "INSERT INTO step_logs (run_id, step, attempt, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_id, step, attempt) DO UPDATE SET body = excluded.body",
            )
            .bind(run_id)
            .bind(step)
            .bind(attempt)
            .bind(body)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// A run's kept output, by step then attempt.
    pub async fn logs(&self, run_id: &str) -> Result<Vec<StepLog>> {
        Ok(Self::read_logs(&self.pool, run_id)
            .await?
            .into_iter()
            .map(|l| StepLog { step: l.step, attempt: l.attempt, body: l.body })
            .collect())
    }

    /// Fire a schedule's due time: in one transaction, the row of (schedule, due time) and,
    /// with `job`, the queued run. Only the first worker's insert of a due time succeeds:
    /// every other gets [`Fired::Taken`] and queues nothing. Without `job`, the due time is
    /// recorded as skipped with `note`.
    pub async fn fire(&self, fire: &Fire<'_>, job: Option<&Submission<'_>>, note: &str) -> Result<Fired> {
        self.fire_in_place_of(fire, job, note, None).await
    }

    /// [`Store::fire`], and when the run is queued, take `replaced` (a run id and the note
    /// it is closed with) off the queue in the same transaction if it is still queued
    /// (`overlap = "replace"`): the old run is taken back only when the new one is queued
    /// in its place (adv17a S11); a due time skipped or taken by another worker changes
    /// nothing.
    pub async fn fire_in_place_of(
        &self,
        fire: &Fire<'_>,
        job: Option<&Submission<'_>>,
        note: &str,
        replaced: Option<(&str, &str)>,
    ) -> Result<Fired> {
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            // The decision's one record in the schedule's journal first, then its row, in
            // this transaction: the row's trigger refuses a row without its record (issue
            // 17, S1), and the head's lock orders the workers of one schedule. A worker
            // whose row finds the due time taken rolls its record back with it.
            let due = runbook_core::schedule::due_text(fire.due_ms);
            let event = match job {
                Some(job) => runbook_core::schedule_journal::ScheduleEvent::Fired {
                    due,
                    run_id: job.run_id.to_string(),
                    worker: fire.fired_by.to_string(),
                },
                None => schedule_journal::not_fired(due, note, fire.fired_by),
            };
            self.append_schedule(&mut tx, fire.schedule, fire.fired_at, event, Some(fire.due_ms)).await?;
            let inserted = sqlx::query(
                "INSERT INTO schedule_fires (schedule, due_ms, outcome, run_id, note, fired_by, fired_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (schedule, due_ms) DO NOTHING",
            )
            .bind(fire.schedule)
            .bind(fire.due_ms)
            .bind(if job.is_some() { "queued" } else { "skipped" })
            .bind(job.map(|j| j.run_id))
            .bind(note)
            .bind(fire.fired_by)
            .bind(fire.fired_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(Fired::Taken);
            }
            if let Some(job) = job {
                if let Some((old, why)) = replaced {
                    sqlx::query(
                        "UPDATE queue SET state = 'done', note = $1 WHERE run_id = $2 AND state = 'queued'",
                    )
                    .bind(why)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                }
                queue_insert(job).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(if job.is_some() { Fired::Queued } else { Fired::Skipped })
        })
        .await
    }

    /// The dead-man's switch: claim the notification of `schedule` overdue since `since_ms`
    /// (its `reminder`-th, 0 the first). True for exactly one caller: the one that sends it.
    pub async fn claim_alert(
        &self,
        schedule: &str,
        since_ms: i64,
        reminder: i64,
        by: &str,
        at: &str,
    ) -> Result<bool> {
        // Read first, without a write lock: while a schedule stays overdue every pass of
        // every worker asks, and the notice is taken already.
        let taken = sqlx::query(
            "SELECT 1 FROM schedule_alerts WHERE schedule = $1 AND since_ms = $2 AND reminder = $3",
        )
        .bind(schedule)
        .bind(since_ms)
        .bind(reminder)
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(false);
        }
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            // The notice's one record in the schedule's journal first, then its row, in
            // this transaction: the row's trigger (migration 14) refuses a row without its
            // record, so a row inserted by plain SQL cannot silence the notice. A worker
            // whose row finds the notice taken rolls its record back with it.
            let event = runbook_core::schedule_journal::ScheduleEvent::Overdue {
                since: runbook_core::schedule::due_text(since_ms),
                reminder,
                worker: by.to_string(),
            };
            self.append_schedule(&mut tx, schedule, at, event, Some(since_ms)).await?;
            let inserted = sqlx::query(
                "INSERT INTO schedule_alerts (schedule, since_ms, reminder, sent_by, sent_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (schedule, since_ms, reminder) DO NOTHING",
            )
            .bind(schedule)
            .bind(since_ms)
            .bind(reminder)
            .bind(by)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// The runbooks (by name) of the runs schedule `schedule` queued in this store: a
    /// schedule's name is one schedule across every schedules file that shares the store
    /// (red team adv17a S4).
    pub async fn schedule_runbooks(&self, schedule: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT q.runbook FROM schedule_fires f JOIN queue q ON q.run_id = f.run_id \
             WHERE f.schedule = $1 ORDER BY q.runbook",
        )
        .bind(schedule)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get(0).map_err(Into::into)).collect()
    }

    /// The schedule and due time (milliseconds) that queued `run_id`, if a schedule did.
    pub async fn fire_of_run(&self, run_id: &str) -> Result<Option<(String, i64)>> {
        let row = sqlx::query("SELECT schedule, due_ms FROM schedule_fires WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
            None => Ok(None),
        }
    }

    /// What the store knows of a schedule's runs.
    pub async fn schedule_runs(&self, schedule: &str) -> Result<ScheduleRuns> {
        self.schedule_runs_until(schedule, i64::MAX).await
    }

    /// What the store knows of a schedule's runs, of its due times up to `until_ms` (the
    /// reader's now and a small skew): a due time recorded later than that was recorded by
    /// a clock that ran ahead, and is neither the cursor nor a success to measure from
    /// (adv17a S3); the latest of them is [`ScheduleRuns::future_due_ms`].
    pub async fn schedule_runs_until(&self, schedule: &str, until_ms: i64) -> Result<ScheduleRuns> {
        let mut out = ScheduleRuns::default();
        let row = sqlx::query("SELECT MAX(due_ms) FROM schedule_fires WHERE schedule = $1 AND due_ms <= $2")
            .bind(schedule)
            .bind(until_ms)
            .fetch_one(&self.pool)
            .await?;
        out.last_due_ms = row.try_get::<Option<i64>, _>(0)?;
        let row = sqlx::query("SELECT MAX(due_ms) FROM schedule_fires WHERE schedule = $1 AND due_ms > $2")
            .bind(schedule)
            .bind(until_ms)
            .fetch_one(&self.pool)
            .await?;
        out.future_due_ms = row.try_get::<Option<i64>, _>(0)?;
        let row = sqlx::query(
            "SELECT MIN(fired_at) FROM schedule_fires WHERE schedule = $1 AND outcome = 'queued'",
        )
        .bind(schedule)
        .fetch_one(&self.pool)
        .await?;
        out.first_fired_at = row.try_get::<Option<String>, _>(0)?;
        let row = sqlx::query("SELECT MIN(due_ms) FROM schedule_fires WHERE schedule = $1")
            .bind(schedule)
            .fetch_one(&self.pool)
            .await?;
        out.first_due_ms = row.try_get::<Option<i64>, _>(0)?;
        let refused = sqlx::query(
            "SELECT due_ms, note FROM schedule_fires WHERE schedule = $1 AND outcome = 'skipped' \
             AND note LIKE $2 ORDER BY due_ms DESC LIMIT 1",
        )
        .bind(schedule)
        .bind(format!("{NOT_QUEUED}%"))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = refused {
            out.last_refused = Some((row.try_get(0)?, row.try_get(1)?));
        }
        let missed = sqlx::query(
            "SELECT due_ms, note FROM schedule_fires WHERE schedule = $1 AND outcome = 'skipped' \
             AND note LIKE $2 AND due_ms <= $3 ORDER BY due_ms DESC LIMIT 1",
        )
        .bind(schedule)
        .bind(format!("{MISSED}%"))
        .bind(until_ms)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = missed {
            out.last_missed = Some((row.try_get(0)?, row.try_get(1)?));
        }
        let last = sqlx::query(
            "SELECT f.run_id, r.status, r.started_at, q.state FROM schedule_fires f \
             LEFT JOIN runs r ON r.run_id = f.run_id LEFT JOIN queue q ON q.run_id = f.run_id \
             WHERE f.schedule = $1 AND f.outcome = 'queued' AND f.due_ms <= $2 ORDER BY f.due_ms DESC LIMIT 1",
        )
        .bind(schedule)
        .bind(until_ms)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = last {
            let run_id: String = row.try_get(0)?;
            let status: Option<String> = row.try_get(1)?;
            let queue_state: Option<String> = row.try_get(3)?;
            out.active = matches!(queue_state.as_deref(), Some("queued" | "claimed"));
            out.last_run = Some((run_id, status.unwrap_or_else(|| "queued".into()), row.try_get(2)?));
        }
        let success = sqlx::query(
            "SELECT r.finished_at FROM schedule_fires f JOIN runs r ON r.run_id = f.run_id \
             WHERE f.schedule = $1 AND r.status = 'succeeded' AND f.due_ms <= $2 \
             ORDER BY f.due_ms DESC LIMIT 1",
        )
        .bind(schedule)
        .bind(until_ms)
        .fetch_optional(&self.pool)
        .await?;
        out.last_success = success.map(|r| r.try_get::<Option<String>, _>(0)).transpose()?.flatten();
        Ok(out)
    }

    /// Queue a run for the workers.
    pub async fn submit(&self, job: &Submission<'_>) -> Result<()> {
        queue_insert(job).execute(&self.pool).await?;
        Ok(())
    }

    /// Claim the oldest run this worker may take: a queued one whose labels the worker has,
    /// or one whose claiming worker stopped heartbeating before `stale_before_ms` (it died:
    /// the run is resumed under the usual rules). One transaction: two workers never claim
    /// the same entry.
    pub async fn claim(
        &self,
        worker: &str,
        labels: &[String],
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Option<Claim>> {
        self.claim_except(worker, labels, now_ms, stale_before_ms, &[]).await
    }

    /// [`Store::claim`], never of a run in `mine` (the runs the worker executes: a claim of
    /// its own whose heartbeat looks stale is still alive).
    pub async fn claim_except(
        &self,
        worker: &str,
        labels: &[String],
        now_ms: i64,
        stale_before_ms: i64,
        mine: &[String],
    ) -> Result<Option<Claim>> {
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let rows = sqlx::query(self.backend.claimable())
                .bind(now_ms)
                .bind(stale_before_ms)
                .fetch_all(&mut *tx)
                .await?;
            let mut chosen = None;
            for row in &rows {
                let wanted: String = row.try_get(2)?;
                let run_id: String = row.try_get(0)?;
                if mine.contains(&run_id) {
                    continue;
                }
                if wanted.split(',').filter(|l| !l.is_empty()).all(|l| labels.iter().any(|have| have == l)) {
                    chosen = Some(Claim {
                        run_id: row.try_get(0)?,
                        plan: row.try_get(1)?,
                        submitted_by: row.try_get(3)?,
                        earlier_claims: row.try_get(4)?,
                        started: row.try_get::<i64, _>(5)? > 0,
                        abandon: row
                            .try_get::<Option<String>, _>(6)?
                            .map(|by| -> Result<AbandonRequest> {
                                Ok(AbandonRequest {
                                    by,
                                    reason: row.try_get::<Option<String>, _>(7)?,
                                    head: row.try_get::<Option<i64>, _>(8)?.unwrap_or(0),
                                })
                            })
                            .transpose()?,
                        resume_by: row.try_get::<Option<String>, _>(9)?,
                    });
                    break;
                }
            }
            if let Some(c) = &chosen {
                sqlx::query(
                    "UPDATE queue SET state = 'claimed', worker = $1, claims = claims + 1, heartbeat_ms = $2 \
                     WHERE run_id = $3",
                )
                .bind(worker)
                .bind(now_ms)
                .bind(&c.run_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(chosen)
        })
        .await
    }

    /// A worker is alive and still executing these runs.
    pub async fn heartbeat(&self, worker: &str, now_ms: i64) -> Result<()> {
        retry_busy(self.backend, || async {
            sqlx::query("UPDATE queue SET heartbeat_ms = $1 WHERE worker = $2 AND state = 'claimed'")
                .bind(now_ms)
                .bind(worker)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    /// The engine of a claimed run that had not started refused it before anything ran
    /// (`runbook run --plan` exited 3): done with that code and `note`, and its plan erased
    /// (to ''), the one change of a queued run's plan its guard allows (migration 16). The
    /// engine reads the run's own secrets; the submitter's check may have read other values,
    /// so a refused plan may hold a secret's value in clear (red team adv25 F3b). Only the
    /// worker holding the claim may do it.
    pub async fn release_refused(&self, run_id: &str, worker: &str, note: &str) -> Result<()> {
        self.release(run_id, worker, Some(3), 0, note, true).await?;
        // SQLite: the write-ahead log still holds the pages as they were (the plan in clear)
        // until a checkpoint copies the new ones and empties it. Best effort: a reader still
        // in the log keeps it until the next checkpoint. PostgreSQL keeps a row's old version
        // in the table until VACUUM, and in its own WAL: the book says so.
        if self.backend == Backend::Sqlite {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await;
        }
        Ok(())
    }

    /// The engine of a claimed run ended: `Some(code)` marks it done; `None` hands it back
    /// to the queue (not before `not_before_ms`), to be resumed by whichever worker claims
    /// it. Only the worker holding the claim may do either.
    pub async fn release_claim(
        &self,
        run_id: &str,
        worker: &str,
        exit_code: Option<i64>,
        not_before_ms: i64,
        note: &str,
    ) -> Result<()> {
        self.release(run_id, worker, exit_code, not_before_ms, note, false).await
    }

    /// [`Store::release_claim`], the plan erased with it when `erase_plan`.
    async fn release(
        &self,
        run_id: &str,
        worker: &str,
        exit_code: Option<i64>,
        not_before_ms: i64,
        note: &str,
        erase_plan: bool,
    ) -> Result<()> {
        retry_busy(self.backend, || async {
            sqlx::query(
                "UPDATE queue SET state = $1, exit_code = $2, not_before_ms = $3, note = $4, \
                 abandon_by = CASE WHEN $1 = 'done' THEN NULL ELSE abandon_by END, \
                 abandon_reason = CASE WHEN $1 = 'done' THEN NULL ELSE abandon_reason END, \
                 abandon_head = CASE WHEN $1 = 'done' THEN NULL ELSE abandon_head END, \
                 resume_by = NULL, plan = CASE WHEN $7 = 1 THEN '' ELSE plan END \
                 WHERE run_id = $5 AND worker = $6 AND state = 'claimed'",
            )
            .bind(if exit_code.is_some() { "done" } else { "queued" })
            .bind(exit_code)
            .bind(not_before_ms)
            .bind(note)
            .bind(run_id)
            .bind(worker)
            .bind(i64::from(erase_plan))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Take a queued run off the queue before any worker claims it. `Ok(None)`: done;
    /// `Ok(Some(state))`: not queued any more (`claimed` or `done`), or [`STARTED`]: queued
    /// but it has a journal (a started run handed back to be resumed or abandoned), which a
    /// cancel would strand unjournaled; nothing changed. One statement decides, with the
    /// journal's existence in its condition (red team adv19a-6).
    pub async fn cancel_queued(&self, run_id: &str, note: &str) -> Result<Option<String>> {
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let done = sqlx::query(
                "UPDATE queue SET state = 'done', note = $1 WHERE run_id = $2 AND state = 'queued' \
                 AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = $3)",
            )
            .bind(note)
            .bind(run_id)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                tx.commit().await?;
                return Ok(None);
            }
            let started: Option<String> = sqlx::query("SELECT run_id FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            match unmoved(tx, run_id).await? {
                Some(state) if state == "queued" && started.is_some() => Ok(Some(STARTED.to_string())),
                other => Ok(other),
            }
        })
        .await
    }

    /// Hand a run a worker ran, and whose engine ended (`done`: it needs an operator), back
    /// to the queue, to be resumed by the next worker that claims it (the console, after an
    /// operator's decisions about its steps in doubt are journaled). `Ok(None)`: queued
    /// again; `Ok(Some(state))`: not `done` (`queued` or `claimed`: a worker has it), nothing
    /// changed; `NoSuchRun`: no worker ever had it (started with `runbook run`).
    pub async fn requeue_to_resume(&self, run_id: &str, by: &str, note: &str) -> Result<Option<String>> {
        self.requeue(run_id, note, None, Some(by)).await
    }

    /// Ask that a run a worker ran, and whose engine ended (`done`: interrupted, needing an
    /// operator), be abandoned after its compensations: its entry is queued again with who
    /// asked and why (`reason` must already be redacted with the run's secrets), and the
    /// worker that claims it runs `runbook abandon --compensate` as `by`. One statement
    /// decides: of two requests, one queues it; the other finds it `queued` or `claimed`
    /// (`Ok(Some(state))`, nothing changed). `NoSuchRun`: no worker ever had it.
    /// `head`: the journal's last record as the request judged it; a worker drops the
    /// request when the journal has moved past it.
    pub async fn request_abandon(
        &self,
        run_id: &str,
        by: &str,
        reason: &str,
        head: i64,
    ) -> Result<Option<String>> {
        self.requeue(run_id, &format!("abandon (compensating) asked by {by}"), Some((by, reason, head)), None)
            .await
    }

    /// The reason of an abandon request is gone from the queue once the worker that claimed
    /// it handed it to its engine (on its stdin): a secret the console could not know (the
    /// worker's environment resolves it otherwise) does not stay there (red team adv18c).
    pub async fn hand_over_reason(&self, run_id: &str, worker: &str) -> Result<()> {
        retry_busy(self.backend, || async {
            sqlx::query(
                "UPDATE queue SET abandon_reason = NULL WHERE run_id = $1 AND worker = $2 AND state = 'claimed'",
            )
            .bind(run_id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// An abandon request whose engine was killed goes back to the queue with its head moved
    /// to the journal's last record (its own engine's records are not another's decision).
    pub async fn hand_back_abandon(
        &self,
        run_id: &str,
        worker: &str,
        not_before_ms: i64,
        note: &str,
        head: i64,
    ) -> Result<()> {
        retry_busy(self.backend, || async {
            sqlx::query(
                "UPDATE queue SET state = 'queued', exit_code = NULL, not_before_ms = $1, note = $2, abandon_head = $3 \
                 WHERE run_id = $4 AND worker = $5 AND state = 'claimed'",
            )
            .bind(not_before_ms)
            .bind(note)
            .bind(head)
            .bind(run_id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// A `done` entry of a run that exists queued again (to be resumed; or abandoned, with
    /// who asked and why); `Ok(Some(state))` when it is not `done`, nothing changed.
    async fn requeue(
        &self,
        run_id: &str,
        note: &str,
        abandon: Option<(&str, &str, i64)>,
        resume_by: Option<&str>,
    ) -> Result<Option<String>> {
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let done = sqlx::query(
                "UPDATE queue SET state = 'queued', not_before_ms = 0, exit_code = NULL, note = $1, \
                 abandon_by = $2, abandon_reason = $3, resume_by = $4, abandon_head = $7 \
                 WHERE run_id = $5 AND state = 'done' AND EXISTS (SELECT 1 FROM runs r WHERE r.run_id = $6)",
            )
            .bind(note)
            .bind(abandon.map(|a| a.0))
            .bind(abandon.map(|a| a.1))
            .bind(resume_by)
            .bind(run_id)
            .bind(run_id)
            .bind(abandon.map(|a| a.2))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                tx.commit().await?;
                return Ok(None);
            }
            unmoved(tx, run_id).await
        })
        .await
    }

    /// Who asked that a run be abandoned with its compensations, while its queue entry is
    /// not done (a worker has yet to claim it, or is compensating it): `None` otherwise.
    pub async fn abandoning(&self, run_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT abandon_by FROM queue WHERE run_id = $1 AND state <> 'done'")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()?.flatten())
    }

    /// The state of a run's queue entry (`queued`, `claimed`, `done`), `None` when no
    /// worker ever had it.
    pub async fn queue_state(&self, run_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT state FROM queue WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The plan a queued run was submitted with (`None` when no such run is queued): what
    /// `cancel` reads the run's secrets from, to keep them out of `queue.note`.
    pub async fn queued_plan(&self, run_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT plan FROM queue WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The queue, oldest first.
    pub async fn queue(&self) -> Result<Vec<QueueEntry>> {
        let rows = sqlx::query(
            "SELECT run_id, runbook, state, submitted_by, submitted_at, worker, exit_code, note \
             FROM queue ORDER BY submitted_at, run_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(queue_entry).collect()
    }

    /// Runs' histories read in one snapshot (one run, or all), and the records and logs that
    /// belong to no run (their `run_id` was changed, or their run's row removed), as findings.
    /// Everything is read in one read transaction, so a run being written meanwhile is seen
    /// as of one moment: its row, records and logs agree.
    pub async fn histories(
        &self,
        run_id: Option<&str>,
    ) -> Result<(Vec<History>, Vec<runbook_core::audit::Finding>)> {
        let mut tx = self.pool.begin_with(self.backend.begin_snapshot()).await?;
        let rows = match run_id {
            Some(id) => {
                sqlx::query(
                    "SELECT run_id, runbook, operator, started_at, status, finished_at, lock_name, last_seq, last_hash, \
                     (SELECT COUNT(*) FROM locks l WHERE l.name = runs.lock_name) FROM runs WHERE run_id = $1",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT run_id, runbook, operator, started_at, status, finished_at, lock_name, last_seq, last_hash, \
                     (SELECT COUNT(*) FROM locks l WHERE l.name = runs.lock_name) FROM runs \
                     ORDER BY started_at DESC, run_id DESC",
                )
                .fetch_all(&mut *tx)
                .await?
            }
        };
        if let (Some(id), true) = (run_id, rows.is_empty()) {
            return Err(StoreError::NoSuchRun(id.to_string()));
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = runbook_core::audit::StoredRun {
                run_id: r.try_get(0)?,
                runbook: r.try_get(1)?,
                operator: r.try_get(2)?,
                started_at: r.try_get(3)?,
                status: r.try_get(4)?,
                finished_at: r.try_get(5)?,
                lock_name: r.try_get(6)?,
                last_seq: r.try_get(7)?,
                last_hash: r.try_get(8)?,
            };
            let lock_known = r.try_get::<i64, _>(9)? > 0;
            // The run's events are read once: the records and the columns beside them.
            let events = sqlx::query(
                "SELECT seq, ts, body, prev_hash, hash, db_role, kind, step FROM events WHERE run_id = $1 ORDER BY seq",
            )
            .bind(&row.run_id)
            .fetch_all(&mut *tx)
            .await?;
            let records = match Self::records_of_rows(&row.run_id, &events) {
                Ok(records) => Ok(records),
                Err(StoreError::Corrupt(e)) => Err(e),
                Err(e) => return Err(e),
            };
            let columns = events
                .iter()
                .map(|c| {
                    Ok(runbook_core::audit::StoredColumns {
                        seq: u64::try_from(c.try_get::<i64, _>(0)?).unwrap_or(0),
                        kind: c.try_get(6)?,
                        step: c.try_get(7)?,
                        body: c.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let logs = Self::read_logs(&mut *tx, &row.run_id).await?;
            out.push(History { row, records, columns, logs, lock_known });
        }
        let mut orphans = Vec::new();
        if run_id.is_none() {
            for (table, column) in [("events", "events.run_id"), ("step_logs", "step_logs.run_id")] {
                let sql = format!(
                    "SELECT DISTINCT t.run_id FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = t.run_id)"
                );
                for r in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *tx).await? {
                    let id: String = r.try_get(0)?;
                    orphans.push(runbook_core::audit::Finding {
                        place: format!("{column} or runs.run_id"),
                        message: format!("rows of run `{id}`, which the store has no run for"),
                    });
                }
            }
        }
        tx.rollback().await?;
        Ok((out, orphans))
    }

    /// What `runbook runs` lists: each run's row, and the summary its journal implies (from
    /// its first record, the records that change its status, and its last record), read in
    /// one snapshot. The summary is `None` for a run without records.
    /// Only the rows that may pass `filter` are read (its conditions are the query's), with
    /// the records of those runs alone.
    pub async fn runs_with_journal(
        &self,
        filter: &RunFilter,
    ) -> Result<Vec<(RunSummary, Option<runbook_core::audit::Summary>)>> {
        let Some(selected) = filter.runs_clause() else { return Ok(Vec::new()) };
        let values = filter.runs_values();
        let mut tx = self.pool.begin_with(self.backend.begin_snapshot()).await?;
        let runs_sql = format!(
            "SELECT run_id, runbook, operator, started_at, status, finished_at, last_seq, last_hash \
             FROM runs WHERE run_id IN (SELECT run_id FROM ({selected}) sel) ORDER BY started_at DESC, run_id DESC"
        );
        // Built of the store's own words (`RunFilter`); every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(runs_sql));
        for v in &values {
            query = query.bind(v.as_str());
        }
        let runs = query.fetch_all(&mut *tx).await?.iter().map(summary).collect::<Result<Vec<_>>>()?;
        let events_sql = format!(
            "SELECT e.run_id, e.seq, e.ts, e.body, e.prev_hash, e.hash, e.db_role FROM events e \
             JOIN (SELECT run_id, MAX(seq) AS last FROM events \
             WHERE run_id IN (SELECT run_id FROM ({selected}) sel) GROUP BY run_id) h ON h.run_id = e.run_id \
             WHERE e.seq = 1 OR e.seq = h.last \
             OR e.kind IN ('run_finished', 'run_interrupted', 'run_suspended', 'run_resumed') \
             ORDER BY e.run_id, e.seq"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(events_sql));
        for v in &values {
            query = query.bind(v.as_str());
        }
        let rows = query.fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        let mut parts: std::collections::BTreeMap<String, Vec<Record>> = std::collections::BTreeMap::new();
        for row in &rows {
            let run_id: String = row.try_get(0)?;
            let body: String = row.try_get(3)?;
            // A record that does not parse leaves its run without a summary: `runs` flags it.
            let Ok(event) = serde_json::from_str::<RunEvent>(&body) else {
                parts.entry(run_id).or_default().clear();
                continue;
            };
            let record = Record {
                run_id: run_id.clone(),
                seq: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                ts: row.try_get(2)?,
                event,
                prev_hash: row.try_get(4)?,
                hash: row.try_get(5)?,
                db_role: row.try_get(6)?,
            };
            parts.entry(run_id).or_default().push(record);
        }
        Ok(runs
            .into_iter()
            .map(|r| {
                let derived = parts.get(&r.run_id).and_then(|p| runbook_core::audit::summary(p));
                (r, derived)
            })
            .collect())
    }

    /// Keep attempts' output in the store, each with a `log_kept` record holding the digest of
    /// the kept text, all in one transaction (the rows and the records that vouch for them
    /// land together or not at all). A log the store already keeps with the same text is left
    /// alone. Returns the run's new last record, if anything was written.
    pub async fn keep_logs(&self, run_id: &str, ts: &str, logs: &[KeptLog<'_>]) -> Result<Option<Record>> {
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let head = sqlx::query(self.backend.run_head())
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))?;
            let records = Self::read_records(&mut *tx, run_id, 0).await?;
            let kept = runbook_core::audit::kept_logs(&records);
            let mut events = Vec::new();
            for log in logs {
                let sha256 = runbook_core::audit::log_digest(log.body);
                // A log the journal vouches for is never replaced (whatever the new text).
                if kept.contains_key(&(log.step.to_string(), i64::from(log.attempt))) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO step_logs (run_id, step, attempt, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (run_id, step, attempt) DO UPDATE SET body = excluded.body",
                )
                .bind(run_id)
                .bind(log.step)
                .bind(i64::from(log.attempt))
                .bind(log.body)
                .execute(&mut *tx)
                .await?;
                events.push(RunEvent::LogKept {
                    step: log.step.to_string(),
                    attempt: log.attempt,
                    bytes: log.bytes,
                    kept_bytes: log.body.len() as u64,
                    sha256,
                });
            }
            if events.is_empty() {
                tx.rollback().await?;
                return Ok(None);
            }
            let mut written = self.insert(&mut tx, run_id, ts, &events, Some(head)).await?;
            tx.commit().await?;
            Ok(written.pop())
        })
        .await
    }

    async fn read_logs<'e, E>(executor: E, run_id: &str) -> Result<Vec<runbook_core::audit::StoredLog>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query("SELECT step, attempt, body FROM step_logs WHERE run_id = $1 ORDER BY step, attempt")
            .bind(run_id)
            .fetch_all(executor)
            .await?
            .iter()
            .map(|r| {
                Ok(runbook_core::audit::StoredLog {
                    step: r.try_get(0)?,
                    attempt: r.try_get(1)?,
                    body: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The pool, for tests that must reach past the API (tampering, pragmas).
    #[doc(hidden)]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// A `runs` row, selected as `runs()` and `run()` do.
/// A queue row read as `run_id, runbook, state, submitted_by, submitted_at, worker,
/// exit_code, note`.
fn queue_entry(r: &sqlx::any::AnyRow) -> Result<QueueEntry> {
    Ok(QueueEntry {
        run_id: r.try_get(0)?,
        runbook: r.try_get(1)?,
        state: r.try_get(2)?,
        submitted_by: r.try_get(3)?,
        submitted_at: r.try_get(4)?,
        worker: r.try_get(5)?,
        exit_code: r.try_get(6)?,
        note: r.try_get(7)?,
    })
}

fn summary(r: &sqlx::any::AnyRow) -> Result<RunSummary> {
    Ok(RunSummary {
        run_id: r.try_get(0)?,
        runbook: r.try_get(1)?,
        operator: r.try_get(2)?,
        started_at: r.try_get(3)?,
        status: r.try_get(4)?,
        finished_at: r.try_get(5)?,
        last_seq: r.try_get(6)?,
        last_hash: r.try_get(7)?,
    })
}

/// Run one SQL statement as is, for tests that play an attacker with the file in hand.
#[doc(hidden)]
pub async fn raw_execute(pool: &AnyPool, statement: &str) -> Result<u64> {
    let done = sqlx::query(sqlx::AssertSqlSafe(statement.to_string())).execute(pool).await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::Location;

    /// Every shape of a password in a URL is masked in a message that quotes it, as written
    /// and decoded; a short one withholds the message; the rest of the message stays.
    #[test]
    fn a_password_with_a_hash_or_a_question_mark_is_not_shown_by_the_location() {
        // Failed before (red team adv15c F6): `postgres://ops:Tr0ub4dor`.
        for url in
            ["postgres://ops:Tr0ub4dor#3@127.0.0.1:1/runbook", "postgres://ops:Tr0ub4dor?3@h/db?sslmode=x"]
        {
            let shown = Location::Postgres(url.to_string()).shown();
            assert!(!shown.contains("Tr0ub4dor"), "{shown}");
            assert!(shown.starts_with("postgres://ops:***@"), "{shown}");
        }
    }

    #[test]
    fn a_store_password_is_masked_in_every_form() {
        let corpus = [
            ("postgres://u:hunter2long@h/db", vec!["hunter2long"]),
            ("postgres://u:p%40ss%3Aw0rd@h:5432/db", vec!["p%40ss%3Aw0rd", "p@ss:w0rd"]),
            ("postgres://u:p@ss:w0rd@h/db", vec!["p@ss:w0rd"]),
            ("postgres://u:a:b:c:d@h/db?sslmode=disable", vec!["a:b:c:d"]),
            ("postgres://u@h/db?password=qu%20ery-pw&sslmode=require", vec!["qu%20ery-pw", "qu ery-pw"]),
            ("postgres://u@h/db?sslpassword=key-pass-1", vec!["key-pass-1"]),
            ("postgresql://u:%E2%82%AC-euro@h/db", vec!["%E2%82%AC-euro", "€-euro"]),
            // A raw `#` or `?` in the password (red team adv15c F6): the whole password, and
            // what a driver that cut the URL there shows of it.
            ("postgres://ops:Tr0ub4dor#3@127.0.0.1:1/runbook", vec!["Tr0ub4dor#3", "Tr0ub4dor"]),
            ("postgres://ops:Tr0ub4dor?3x@127.0.0.1:1/runbook", vec!["Tr0ub4dor?3x", "Tr0ub4dor"]),
        ];
        for (url, forms) in corpus {
            let loc = Location::Postgres(url.to_string());
            for form in &forms {
                let message = format!("connect to h failed for user u with password {form}: refused");
                let masked = loc.masked(&message);
                assert!(!masked.contains(form), "{url}: {masked}");
                assert!(masked.contains("refused") && masked.contains("***"), "{url}: {masked}");
            }
        }
        // A short password (1 to 3 bytes) cannot be told from the message's words.
        for url in ["postgres://u:x@h/db", "postgres://u:ab@h/db", "postgres://u:%21%21%21@h/db"] {
            let loc = Location::Postgres(url.to_string());
            for message in ["password x ab !!! was refused", "pool timed out: x, ab or !!!"] {
                let masked = loc.masked(message);
                assert!(masked.contains("withheld"), "{url}: {masked}");
            }
            assert_eq!(loc.masked("pool timed out"), "pool timed out", "{url}");
        }
        // Nothing to mask: the message as it is.
        for url in ["postgres://u@h/db", "postgres://h/db", "not a url"] {
            assert_eq!(Location::Postgres(url.into()).masked("password x"), "password x");
        }
        assert_eq!(Location::Sqlite("a:b@c".into()).masked("b"), "b");
    }
}
