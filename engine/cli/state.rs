//! Where the state lives, opening it, and `runbook state migrate|check`.
//!
//! `--state`/`$RUNBOOK_STATE` names a SQLite file (the default, created on first use) or a
//! PostgreSQL URL (a store shared by a team; its schema changes only through
//! `runbook state migrate`). A URL is never printed whole: it may carry a password.

use std::path::{Path, PathBuf};

use runbook_store::{Backend, IdentityMode, KeptLog, Location, Store};

use crate::error::{CliError, CliResult, Exit, Message, StoreAction};
use crate::identity;
use crate::output::outln;
use crate::runtime::block_on;

/// The default state store: `$XDG_STATE_HOME/runbook/state.db`, else
/// `~/.local/state/runbook/state.db`, else `.runbook/state.db`.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    match base {
        Some(b) => b.join("runbook").join("state.db"),
        None => PathBuf::from(".runbook/state.db"),
    }
}

/// `--state` as given, or the default SQLite file.
pub fn location(state: Option<&str>) -> Location {
    let location = match state {
        Some(text) => Location::parse(text),
        None => Location::Sqlite(default_path()),
    };
    // From the moment a command knows its store, nothing it reads for a runbook, a step or an
    // operator may be one of the store's files (adv20-1): a run whose script is the store is
    // refused with the other unreadable files, before anything runs.
    if let Location::Sqlite(path) = &location {
        runbook_store::holds_store(path);
    }
    location
}

/// The store as an operator names it from another terminal, for the commands a run or
/// `show` prints: `None` for the default store; a SQLite path made absolute; a URL without
/// its password ([`url_to_type`]).
pub fn state_arg(location: &Location) -> Option<String> {
    if *location == self::location(None) {
        return None;
    }
    Some(match location {
        Location::Sqlite(path) => {
            std::path::absolute(path).unwrap_or_else(|_| path.clone()).display().to_string()
        }
        Location::Postgres(url) => url_to_type(url),
    })
}

/// The query parameters of a PostgreSQL URL that carry a secret: dropped from a hint.
const SECRET_QUERY: [&str; 2] = ["password", "sslpassword"];

/// A PostgreSQL URL as an operator types it again (red team F5): everything that says where
/// and how to connect (user, host, port, database, `sslmode`, `host=/socket`, `options`),
/// never the password, neither as `:***` (which would be sent as the password: an explicit
/// one wins over `PGPASSWORD` and `~/.pgpass`) nor in the query. The password then comes from
/// `PGPASSWORD` or `~/.pgpass`. Not [`Location::shown`]: that is a display, not an argument.
pub fn url_to_type(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return Location::Postgres(url.into()).shown() };
    let rest = rest.split('#').next().unwrap_or_default();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let main = match main.rsplit_once('@') {
        Some((auth, host)) => format!("{}@{host}", auth.split(':').next().unwrap_or_default()),
        None => main.to_string(),
    };
    let kept: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !SECRET_QUERY.iter().any(|k| key.eq_ignore_ascii_case(k))
        })
        .collect();
    if kept.is_empty() {
        format!("{scheme}://{main}")
    } else {
        format!("{scheme}://{main}?{}", kept.join("&"))
    }
}

/// ` --state LOCATION` for a command to type against `location` (shell-quoted), or nothing
/// when it is the default store (a URL without its password: the operator supplies it, or
/// $RUNBOOK_STATE).
pub fn state_flag(location: &Location) -> String {
    runbook_core::hint::state_flag(state_arg(location).as_deref())
}

/// How `runs` and `show` name a run the journal says is running while no engine holds it
/// (one judge for the CLI and the console: `runbook_exec::dispatch::engine_gone`).
pub use runbook_exec::dispatch::{ENGINE_GONE, engine_gone};

/// What of the engine's environment no process it starts may see, and the store's password
/// for the redactor (red team adv13b F1): decided by the store the command uses.
pub fn engine_env(location: &Location) -> runbook_exec::secrets::EngineEnv {
    match location {
        Location::Sqlite(_) => runbook_exec::secrets::EngineEnv::sqlite(),
        Location::Postgres(url) => runbook_exec::secrets::EngineEnv::postgres(url),
    }
}

/// The folder of a run's local files (live step logs, step output files): beside a SQLite
/// store; under the default state folder on this host for a shared store.
pub fn run_dir(location: &Location, run_id: &str) -> PathBuf {
    let base = match location {
        Location::Sqlite(path) => path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        Location::Postgres(_) => default_path().parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let dir = base.join("runs").join(run_id);
    // Absolute: steps run in other folders (`dir`, included runbooks) and get paths in it.
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Open the store. `create`: a missing SQLite file is created (a new run); otherwise it is
/// an error (reading history, resuming, approving).
pub async fn open(location: &Location, create: bool) -> Result<Store, CliError> {
    if let Location::Sqlite(path) = location {
        if !create && !path.exists() {
            return Err(CliError::NoStateStore {
                path: path.display().to_string(),
                help: Some(
                    "runs are recorded where `runbook run` put them: `--state PATH|URL` or $RUNBOOK_STATE"
                        .into(),
                ),
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return Err(CliError::CannotStart(Message::new(format!(
                "cannot create the state store folder `{}`: {e}",
                dir.display()
            ))));
        }
    }
    let store =
        Store::open(location).await.map_err(|source| store_failed(StoreAction::Open, location, source))?;
    // In `db-role` mode the session's role says who this is: it is the operator unless
    // `--as` claimed a name (which the store then accepts only if it is the same identity).
    match store.identity().await {
        Ok((IdentityMode::DbRole, Some(identity))) => identity::set_operator(identity),
        Ok(_) => {}
        Err(source) => return Err(store_failed(StoreAction::ReadIdentity, location, source)),
    }
    Ok(store)
}

/// How much of one attempt's log the store keeps: `$RUNBOOK_STORE_LOG_CAP` bytes (at least
/// 1 KiB), else 1 MiB. The rest stays in the local file, which the kept text names.
pub fn store_log_cap() -> usize {
    std::env::var("RUNBOOK_STORE_LOG_CAP")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(1 << 20, |cap| cap.max(1024))
}

/// The text the store keeps of a log: the whole of it when it fits in `cap` bytes, else its
/// first lines (cut at a line and character boundary) and a marker line that says how much
/// was cut and where the whole log is. Invalid UTF-8 is shown as U+FFFD.
pub fn capped_log(bytes: &[u8], total: u64, cap: usize, local: &Path) -> String {
    // PostgreSQL's text holds no NUL: a NUL byte is kept as U+FFFD, like invalid UTF-8.
    let text = String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}");
    if total as usize <= cap && bytes.len() as u64 == total {
        return text;
    }
    let host = identity::host();
    let marker = format!(
        "err [runbook] log cut: the store keeps the first {{KEPT}} bytes of {total}; the whole log is {} on {host}\n",
        local.display()
    );
    let budget = cap.saturating_sub(marker.len() + 20);
    let mut end = budget.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let head = match head.rfind('\n') {
        Some(i) => &head[..=i],
        None => head,
    };
    let mut kept = head.to_string();
    if !kept.is_empty() && !kept.ends_with('\n') {
        kept.push('\n');
    }
    kept.push_str(&marker.replace("{KEPT}", &head.len().to_string()));
    kept
}

/// Copy a run's local step logs into the store, so that every operator of a shared store
/// reads them with `runbook logs`: each capped ([`store_log_cap`]), and each with a
/// `log_kept` record holding the digest of what was kept, in one transaction. Called when
/// the run stops, whatever its outcome; logs that cannot be copied stay in the run folder,
/// with a warning. Returns the run's new last hash when records were written.
pub async fn keep_logs(store: &Store, run_id: &str, run_dir: &Path) -> Option<String> {
    let entries = std::fs::read_dir(run_dir).ok()?;
    let cap = store_log_cap();
    // Logs an earlier engine of this run (before a suspension or a crash) already kept: the
    // journal vouches for them (its `log_kept` records, the rule the store applies too);
    // nothing to say about them. Read from the records, not the log bodies.
    let already = store
        .records(run_id)
        .await
        .map(|records| runbook_core::audit::kept_logs(&records))
        .unwrap_or_default();
    let mut found = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        let Some((step, attempt)) = log_name(&path) else { continue };
        if already.contains_key(&(step.clone(), attempt)) {
            continue;
        }
        // Only what this engine captured and redacted, for the attempts it ran: a step can
        // write in the run folder, and another host's engine wrote its own copies.
        let why = match runbook_exec::output::written_log(&path) {
            None => Some("this engine did not write it (another process did)"),
            Some(None) => Some("it was cut while being written"),
            Some(Some((sha256, bytes))) => match runbook_exec::output::read_log(&path, cap) {
                Some((head, total, digest)) if digest == sha256 && total == bytes => {
                    let body = capped_log(&head, total.max(head.len() as u64), cap, &path);
                    found.push((step, u32::try_from(attempt).unwrap_or(1), total, body, path.clone()));
                    None
                }
                Some(_) => Some("it changed after this engine wrote it"),
                None => Some("it cannot be read"),
            },
        };
        if let Some(why) = why {
            crate::output::errln!("warning: {} is not kept in the store: {why}", path.display());
        }
    }
    if found.is_empty() {
        return None;
    }
    found.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let logs: Vec<KeptLog<'_>> = found
        .iter()
        .map(|(step, attempt, bytes, body, _)| KeptLog { step, attempt: *attempt, bytes: *bytes, body })
        .collect();
    let (ts, _) = runbook_exec::dispatch::now();
    match store.keep_logs(run_id, &ts, &logs).await {
        Ok(record) => record.map(|r| r.hash),
        Err(e) => {
            crate::output::errln!(
                "warning: the step logs stay in {} (not kept in the store): {e}",
                run_dir.display()
            );
            None
        }
    }
}

/// A log file's step path and attempt: `inc+step.2.log` is attempt 2 of `inc/step`.
pub fn log_name(path: &Path) -> Option<(String, i64)> {
    runbook_exec::output::log_key(path)
}

/// `runbook state migrate`: bring a store's schema up to date, and (`--identity`,
/// `--map`) set how identities are established.
pub fn migrate(state: Option<&str>, identity: Option<&str>, map: &[(String, String)]) -> CliResult {
    let location = location(state);
    let (before, after) = block_on(async {
        let store = connect(&location).await?;
        let versions = store.migrate().await.map_err(|source| CliError::StoreAt {
            doing: StoreAction::Migrate,
            location: location.shown(),
            source,
        })?;
        // The migrations never run twice: guard triggers dropped since (tampering, red
        // team adv24) are put back here, and said so.
        let restored = store.restore_guards().await.map_err(|source| CliError::StoreAt {
            doing: StoreAction::Migrate,
            location: location.shown(),
            source,
        })?;
        for guard in &restored {
            outln!(
                "put back {guard}: it was missing, disabled or not the migrations' own (tampering: `runbook audit verify`)"
            );
        }
        if identity.is_some() || !map.is_empty() {
            let mode = match identity.and_then(IdentityMode::parse) {
                Some(m) => m,
                None => store.identity().await.map(|(m, _)| m).unwrap_or(IdentityMode::Declared),
            };
            store.set_identity(mode, map).await.map_err(|source| CliError::StoreAt {
                doing: StoreAction::SetIdentity,
                location: location.shown(),
                source,
            })?;
            outln!("identity mode: {}", mode.as_str());
            for (role, who) in map {
                if who.is_empty() {
                    outln!("  database role {role}: mapping removed");
                } else {
                    outln!("  database role {role} acts as {who}");
                }
            }
        }
        Ok(versions)
    })?;
    if before == after {
        outln!("state store {} is up to date (schema version {after})", location.shown());
    } else {
        outln!("state store {} migrated from schema version {before} to {after}", location.shown());
    }
    Ok(Exit::Success)
}

/// `runbook state check`: can this host use the store, and is it healthy?
pub fn check(state: Option<&str>) -> CliResult {
    let location = location(state);
    if let Location::Sqlite(path) = &location
        && !path.exists()
    {
        return Err(CliError::NoStateStore { path: path.display().to_string(), help: None });
    }
    let now_ms = now_ms();
    let health = block_on(async {
        let store = connect(&location).await?;
        store.check(now_ms).await.map_err(|source| CliError::StoreAt {
            doing: StoreAction::Check,
            location: location.shown(),
            source,
        })
    })?;
    let skew_ms = health.db_now_ms - now_ms;
    outln!("store:    {} ({})", location.shown(), health.backend.name());
    outln!("schema:   version {} (this runbook knows {})", health.applied, health.known);
    outln!("contents: {} run(s), {} lock(s) held", health.runs, health.live_locks);
    let mut unheld = Vec::new();
    match (health.identity, &health.session_identity) {
        // A SQLite file cannot know who writes it: the setting is not enforced.
        (IdentityMode::DbRole, _) if health.backend == Backend::Sqlite => {
            outln!(
                "identity: declared (the file's settings ask for db-role, which a SQLite file cannot enforce)"
            );
            unheld.push("db-role identity mode on a SQLite file".to_string());
        }
        (IdentityMode::DbRole, Some(who)) => outln!(
            "identity: db-role (this session is database role {}, acting as {who}; the store refuses other names)",
            health.db_role.as_deref().unwrap_or("?")
        ),
        (IdentityMode::DbRole, None) => outln!("identity: db-role"),
        (IdentityMode::Declared, _) => {
            outln!("identity: declared (`--as` names the operator; nothing checks it)")
        }
    }
    if health.missing_guards.is_empty() {
        outln!("guards:   every trigger of the schema is present and enabled");
    } else {
        outln!("guards:   missing, disabled or altered: {}", health.missing_guards.join(", "));
        unheld.push(format!("the triggers {}", health.missing_guards.join(", ")));
    }
    outln!(
        "clock:    this host is {} ms {} the database",
        skew_ms.abs(),
        if skew_ms > 0 { "behind" } else { "ahead of" }
    );
    if health.applied < health.known {
        return Err(CliError::CannotStart(Message::new(
            "the schema is older than this runbook needs: run `runbook state migrate`",
        )));
    }
    if !unheld.is_empty() {
        return Err(CliError::CannotStart(
            Message::new(format!("the store does not hold what it promises: {}", unheld.join("; "))).help(
                "someone who owns the tables changed them; `runbook audit verify` checks the journals, and `runbook state migrate` cannot restore dropped triggers: ask the administrator",
            ),
        ));
    }
    // Leases are compared across hosts: a clock far off would take over a live lease early.
    if health.backend == Backend::Postgres && skew_ms.abs() > 5_000 {
        return Err(CliError::CannotStart(Message::new(format!(
            "this host's clock is {} s off the database's; sync it (NTP) before running here: lock leases depend on it",
            skew_ms.abs() / 1000
        ))));
    }
    outln!("ok: the store is usable from this host");
    Ok(Exit::Success)
}

async fn connect(location: &Location) -> Result<Store, CliError> {
    Store::connect(location).await.map_err(|source| store_failed(StoreAction::Connect, location, source))
}

/// A failure of the store at `location` as the CLI says it: the database's message with the
/// URL's password masked (`Location::masked`, the console's mask too). When the message
/// held the password, the error is that masked text (same exit status, no hint).
fn store_failed(doing: StoreAction, location: &Location, source: runbook_store::StoreError) -> CliError {
    let text = source.to_string();
    let masked = location.masked(&text);
    if masked == text {
        return CliError::StoreAt { doing, location: location.shown(), source };
    }
    CliError::CannotStart(Message::new(format!("{doing} `{}`: {masked}", location.shown())))
}

/// Milliseconds since the epoch on this host.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::url_to_type;

    /// Every shape of a PostgreSQL URL: the password never survives, in any place; what says
    /// where and how to connect always does.
    #[test]
    fn a_url_to_type_keeps_where_and_never_the_password() {
        let cases = [
            ("postgres://u:pw@h:5432/db", "postgres://u@h:5432/db"),
            ("postgres://u:pw@h/db?sslmode=require", "postgres://u@h/db?sslmode=require"),
            ("postgresql://u:p%40w@h/db?sslmode=disable#frag", "postgresql://u@h/db?sslmode=disable"),
            ("postgres://u:p@w@h/db", "postgres://u@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            (
                "postgres:///db?host=/run/postgresql&port=5433",
                "postgres:///db?host=/run/postgresql&port=5433",
            ),
            ("postgres://u@localhost/db?host=/tmp/s&password=pw", "postgres://u@localhost/db?host=/tmp/s"),
            ("postgres://u@h/db?PASSWORD=pw&sslmode=verify-full", "postgres://u@h/db?sslmode=verify-full"),
            (
                "postgres://u@h/db?sslpassword=pw&options=-c%20search_path%3Dx",
                "postgres://u@h/db?options=-c%20search_path%3Dx",
            ),
            ("postgres://u:@h/db?password=", "postgres://u@h/db"),
        ];
        for (url, want) in cases {
            let got = url_to_type(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("pw") && !got.contains("***"), "{url} -> {got}");
        }
    }
}
