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

mod graph;
mod guard;
mod idle;
mod pages;
mod query;
mod view;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runbook_store::Location;

pub use guard::{HostName, headers};
pub use idle::IDLE;

/// What the console needs of the files on this host, given by the CLI (which alone reads
/// runbooks: its loader bounds and pins every file read).
pub trait Files: Send + Sync + 'static {
    /// The runbooks of `dir` (its `*.toml` files, not its subfolders), each checked.
    fn runbooks(&self, dir: &Path) -> Vec<RunbookFile>;
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
}

/// One runbook of `--runbooks DIR`, as `check` sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunbookFile {
    /// What the URL names it by: the file name without `.toml`.
    pub name: String,
    /// The file.
    pub file: PathBuf,
    /// The runbook's own name, when it parses.
    pub runbook: Option<String>,
    /// No errors.
    pub valid: bool,
    /// Its diagnostics as `check` prints them (no colour), empty when there are none.
    pub problems: String,
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

    /// Serve until `shutdown` completes; then give the requests in flight [`GRACE`] to
    /// finish and return. A connection that would hold the stop longer (a client that sent
    /// half a request and nothing more) is dropped with the runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), WebError> {
        let router = pages::router(self.app);
        let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
        let told = stopping.clone();
        let serve =
            axum::serve(idle::IdleListener::new(self.listener), router).with_graceful_shutdown(async move {
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
