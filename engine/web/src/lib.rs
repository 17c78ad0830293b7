//! The web console (`runbook serve`): read-only pages over the state store's runs and a
//! folder of runbooks, rendered on the server.
//!
//! - Every page is a view of the journal: a run's status and its steps' states come from
//!   `runbook_core::audit::summary` and `runbook_core::journal::fold` (what `runbook show`
//!   uses), the journal's verdict from `runbook_store::History::findings` (what
//!   `runbook audit verify` uses), the list of runs from `Store::run_list` (what
//!   `runbook runs` uses). No second fold.
//! - Text from a runbook or a journal reaches HTML only through minijinja's autoescape
//!   (every template, whatever its name; no `|safe`: `tests/tidy.rs` checks the templates).
//! - Without authentication the console is read-only: every method but GET and HEAD is
//!   answered 405, on every path.
//! - Every response carries the security headers ([`headers`]); a `Host` that does not name
//!   the console (an IP address or `localhost` on its port, or a `--host` name) is refused
//!   whatever the listen address (DNS rebinding).
//! - Reading files (runbooks) is the CLI's: it hands a [`Files`] to [`bind`].

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod actions;
mod auth;
mod graph;
mod guard;
mod idle;
mod live;
mod output;
mod pages;
mod query;
mod schedules;
mod timeline;
mod view;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runbook_store::Location;

pub use auth::{Auth, identity, new_token, operator_name, token_hash};
pub use guard::{HostName, headers};
pub use idle::{Conn, IDLE, TOTAL};

/// What the console needs of the files on this host, given by the CLI (which alone reads
/// runbooks: its loader bounds and pins every file read).
pub trait Files: Send + Sync + 'static {
    /// The runbook files of `dir` (its `*.toml` files, not its subfolders), sorted, not
    /// read: listing is cheap, checking is not (the console caches each file's check).
    fn runbooks(&self, dir: &Path) -> Vec<PathBuf>;
    /// `check` of one runbook file (its [`RunbookFile::name`] is [`runbook_name`]).
    fn check(&self, file: &Path) -> RunbookFile;
    /// The review document (`plan --format html`'s body) of the runbook at `file` with its
    /// parameters' defaults, or why there is none (its problems, as text).
    fn review(&self, file: &Path) -> Result<runbook_core::render::ReviewHtml, String>;
    /// The runbook of a run as the run started it (`run_started`'s file and digests), if
    /// its files are still as they were.
    fn as_started(
        &self,
        file: &str,
        files: &[runbook_core::plan::FileHash],
    ) -> Option<Arc<runbook_core::model::Runbook>>;
    /// The runbook at `file` as it is now (checked, its digests not compared): the form of a
    /// run to start. Never the secrets of a run that started from another version of it
    /// (red team adv20-3).
    fn as_now(&self, file: &str) -> Option<Arc<runbook_core::model::Runbook>>;
    /// A run to start from the console: `file` planned with `params` (`NAME`, `VALUE` as
    /// `runbook submit -p` takes them) and vetted exactly as `runbook submit` vets it
    /// (`confirmed` is its `--yes`), for `operator`. `Err`: the CLI's message; nothing is
    /// queued. A `review` (nothing will be queued) runs no secret's helper.
    fn to_start(
        &self,
        file: &Path,
        params: &[(String, String)],
        confirmed: bool,
        review: bool,
        operator: &str,
        location: &Location,
    ) -> Result<ToStart, String>;
    /// `runbook cancel`'s check of what a cancel keeps in the queue (`operator`'s name and
    /// `reason`) against the secrets of the queued `plan`, read as the run would read them.
    /// `Err`: the CLI's message; nothing is changed.
    fn cancel_check(
        &self,
        plan: &str,
        reason: &str,
        operator: &str,
        location: &Location,
    ) -> Result<(), String>;
    /// The schedules files of `dir` (its `*.toml` files holding `[schedule.NAME]` tables
    /// and no `[runbook]` table, as `runbook check` tells them), each checked as
    /// `runbook schedules FILE` checks it.
    fn schedules(&self, dir: &Path) -> Vec<SchedulesFile>;
}

/// One schedules file of `--runbooks DIR` ([`Files::schedules`]).
#[derive(Debug, Clone)]
pub struct SchedulesFile {
    /// The file (on a page only as [`shown_path`] words it).
    pub file: PathBuf,
    /// Its schedules, or its problems as `runbook check` prints them (no colour).
    pub schedules: Result<Vec<runbook_core::schedule::Schedule>, String>,
}

/// A pinned run ready for the queue ([`Files::to_start`]).
#[derive(Debug, Clone)]
pub struct ToStart {
    /// The id the run will have.
    pub run_id: String,
    /// The runbook's name.
    pub runbook: String,
    /// The pinned plan (JSON), as `runbook plan -o` writes it.
    pub plan: String,
    /// When it was made (RFC 3339).
    pub submitted_at: String,
    /// The plan's review document (`runbook plan --format html`'s body).
    pub review: runbook_core::render::ReviewHtml,
}

/// One runbook of `--runbooks DIR`, as `check` sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunbookFile {
    /// What the URL names it by: the file name without `.toml`.
    pub name: String,
    /// The file (on a page only as [`shown_path`] words it: never serialized raw).
    #[serde(serialize_with = "serialize_shown_path")]
    pub file: PathBuf,
    /// The runbook's own name, when it parses.
    pub runbook: Option<String>,
    /// No errors.
    pub valid: bool,
    /// Its diagnostics as `check` prints them (no colour), empty when there are none.
    pub problems: String,
    /// The check may depend on files besides this one (it includes runbooks, names files
    /// to read, or did not load): the console checks it again after a while, since only
    /// this file's identity keys its cache.
    #[serde(skip)]
    pub others: bool,
}

/// What the URL and the pages name a runbook file by: its name without `.toml`, lossy when
/// it is not UTF-8, its hidden characters (line breaks, controls, bidi) escaped as
/// [`shown_path`] does. Two names that differ only in invalid bytes have the same name:
/// the URL leads to the first.
pub fn runbook_name(file: &Path) -> String {
    file.file_stem().map(|s| runbook_core::shown::one_line(&s.to_string_lossy())).unwrap_or_default()
}

/// The most characters of a path a page shows (a file name is at most 255 bytes; a folder
/// can be deeper).
pub const SHOWN_PATH: usize = 300;

/// A path as every page shows it, the console's one conversion of a path to text (class
/// rule: no page serializes a raw path, which fails on a name that is not UTF-8): invalid
/// UTF-8 bytes as U+FFFD with a note saying so, hidden characters (line breaks, controls,
/// bidi) escaped as `runbook_core::shown::one_line` does, at most [`SHOWN_PATH`] characters
/// (then `…`). Markup stays text: the templates escape it.
pub fn shown_path(path: &std::path::Path) -> String {
    let raw = path.as_os_str();
    let lossy = raw.to_string_lossy();
    let not_utf8 = raw.to_str().is_none();
    let mut shown: String = runbook_core::shown::one_line(&lossy);
    if shown.chars().count() > SHOWN_PATH {
        shown = shown.chars().take(SHOWN_PATH).collect::<String>() + "…";
    }
    if not_utf8 {
        shown.push_str(" (the name is not UTF-8: its invalid bytes are shown as \u{fffd})");
    }
    shown
}

fn serialize_shown_path<S: serde::Serializer>(path: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&shown_path(path))
}

/// How `runbook serve` was asked to run.
pub struct Config {
    /// The state store.
    pub location: Location,
    /// `--runbooks DIR`.
    pub runbooks: Option<PathBuf>,
    /// The CLI's file reading.
    pub files: Arc<dyn Files>,
    /// `--host NAME[:PORT]`: names the console answers to besides IP addresses and
    /// `localhost` (the `Host` rule: any other name is a 421).
    pub hosts: Vec<HostName>,
    /// `--auth`: who may act (none: read-only).
    pub auth: Auth,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("location", &self.location.shown())
            .field("runbooks", &self.runbooks)
            .finish_non_exhaustive()
    }
}

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the console stopped: {0}")]
    Serve(std::io::Error),
    /// A template does not compile (a bug of this crate: the tests render every page).
    #[error("a page template is broken: {0}")]
    Template(String),
}

/// How long the requests in flight may take to finish once the console is told to stop.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A bound console, not serving yet: its address can be printed first.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    app: Arc<pages::App>,
}

/// Bind `listen` (port 0: a free port) and prepare the pages.
pub async fn bind(listen: SocketAddr, config: Config) -> Result<Server, WebError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| WebError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| WebError::Bind { addr: listen, source })?;
    let app = Arc::new(pages::App::new(config, addr)?);
    Ok(Server { listener, addr, app })
}

impl Server {
    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many times the pollers of followed runs read the store so far (one poller per
    /// followed run, whatever its followers: `runbook serve` says it when it stops).
    pub fn poller_reads(&self) -> impl Fn() -> u64 + Send + 'static {
        let app = self.app.clone();
        move || app.hub.polls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serve until `shutdown` completes; then give the requests in flight [`GRACE`] to
    /// finish and return. A connection that would hold the stop longer (a client that sent
    /// half a request and nothing more) is dropped with the runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), WebError> {
        let router = pages::router(self.app);
        let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
        let told = stopping.clone();
        let serve = axum::serve(
            idle::IdleListener::new(self.listener),
            router.into_make_service_with_connect_info::<idle::Conn>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            told.notify_one();
        });
        tokio::select! {
            served = serve => served.map_err(WebError::Serve),
            () = async {
                stopping.notified().await;
                tokio::time::sleep(GRACE).await;
            } => Ok(()),
        }
    }
}

/// Whether `addr` is a loopback address (the console's default; any other prints a warning).
/// An IPv4-mapped loopback (`[::ffff:127.0.0.1]`) is loopback.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt as _;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any file name (any bytes but `/` and NUL) is shown as one bounded line, and a
        /// runbook file of that name serializes (adv16 f10: a non-UTF-8 name panicked).
        #[test]
        fn any_file_name_is_shown_and_serializes(name in proptest::collection::vec(1u8..=255, 1..600)) {
            let name: Vec<u8> = name.into_iter().filter(|b| *b != b'/').collect();
            prop_assume!(!name.is_empty());
            let path = Path::new("/some/dir").join(std::ffi::OsStr::from_bytes(&name));
            let shown = shown_path(&path);
            prop_assert!(!shown.contains(['\n', '\r', '\u{202e}', '\u{1b}']), "{shown}");
            prop_assert!(shown.chars().count() <= SHOWN_PATH + 80);
            let file = RunbookFile {
                name: runbook_name(&path),
                file: path.clone(),
                runbook: None,
                valid: true,
                problems: String::new(),
                others: false,
            };
            let json = serde_json::to_value(&file).expect("serializes");
            prop_assert_eq!(json["file"].as_str(), Some(shown.as_str()));
            prop_assert!(!file.name.contains(['\n', '\u{202e}']), "{}", file.name);
        }
    }
}
