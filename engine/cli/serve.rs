//! `runbook serve`: the web console. The CLI parses the flags, resolves the store as every
//! command does (`state::location`), reads the runbooks for the console (its loader bounds
//! and pins every file), prints the address and the warnings, and picks the exit code;
//! `runbook_web` serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runbook_core::{diagnostic, plan, render};

use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::{errln, outln};

/// The console's view of the files on this host: the CLI's loader and checks.
struct CliFiles;

/// The most runbook files read from `--runbooks DIR`.
const MAX_FILES: usize = 500;
/// The most bytes of one file's diagnostics the console keeps and shows.
const MAX_PROBLEMS: usize = 64 * 1024;

impl runbook_web::Files for CliFiles {
    fn runbooks(&self, dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        files.truncate(MAX_FILES);
        files
    }

    fn check(&self, file: &Path) -> runbook_web::RunbookFile {
        let mut checked = load_runbook_only(file);
        diagnostic::sort(&mut checked.diagnostics);
        let valid = !checked.has_errors();
        let mut problems = if checked.diagnostics.is_empty() {
            String::new()
        } else {
            crate::report::human(&checked.diagnostics, false)
        };
        if problems.len() > MAX_PROBLEMS {
            let mut cut = MAX_PROBLEMS;
            while !problems.is_char_boundary(cut) {
                cut -= 1;
            }
            problems.truncate(cut);
            problems.push_str(&format!(
                "\n… (more: `runbook check {}` on this host prints them all)\n",
                crate::input::display(file)
            ));
        }
        let others = checked.runbook.as_ref().is_none_or(|r| !r.includes.is_empty() || !r.reads().is_empty());
        runbook_web::RunbookFile {
            others,
            name: runbook_web::runbook_name(file),
            runbook: checked.runbook.as_ref().map(|r| r.name.clone()),
            valid,
            problems,
            file: file.to_path_buf(),
        }
    }

    fn review(&self, file: &Path) -> Result<render::ReviewHtml, String> {
        runbook_text(file)?;
        let (runbook, values) =
            crate::input::load_with_params(file, &[], None, false).map_err(|e| e.render(false))?;
        let mut plan = plan::plan(&runbook, &values).map_err(|d| CliError::Diagnostics(d).render(false))?;
        plan.reads = crate::input::pinned_reads(&runbook, None).map_err(|e| e.render(false))?;
        // The console quotes no file but runbooks: a script is named with its digest.
        Ok(render::html_body(&plan, render::Quote::Digests))
    }

    fn as_started(
        &self,
        file: &str,
        files: &[runbook_core::plan::FileHash],
    ) -> Option<Arc<runbook_core::model::Runbook>> {
        crate::as_started::load_as_started(file, files).ok().map(|(runbook, _)| runbook)
    }

    fn as_now(&self, file: &str) -> Option<Arc<runbook_core::model::Runbook>> {
        crate::abandon::runbook_as_now(file)
    }

    fn to_start(
        &self,
        file: &Path,
        params: &[(String, String)],
        confirmed: bool,
        review: bool,
        operator: &str,
        location: &runbook_store::Location,
    ) -> Result<runbook_web::ToStart, String> {
        runbook_text(file)?;
        crate::queued::to_start(file, params, confirmed, review, operator, location)
            .map_err(|e| e.render(false))
    }

    fn cancel_check(
        &self,
        plan: &str,
        reason: &str,
        operator: &str,
        location: &runbook_store::Location,
    ) -> Result<(), String> {
        crate::queue::check_cancel_texts(plan, reason, operator, location).map_err(|e| e.render(false))
    }

    fn schedules(&self, dir: &Path) -> Vec<runbook_web::SchedulesFile> {
        let mut out = Vec::new();
        for file in self.runbooks(dir) {
            let Ok(text) = crate::loader::read(&crate::input::display(&file)) else { continue };
            if !crate::schedules::is_schedules(&text) {
                continue;
            }
            let (schedules, mut diags) = crate::schedules::check_text(&file, text);
            let schedules = if diags.iter().any(|d| d.severity == runbook_core::Severity::Error) {
                // Where and which code only: a diagnostic's excerpt and message quote the
                // file, and a schedules file holds webhook addresses and parameter values.
                diagnostic::sort(&mut diags);
                let mut lines: Vec<String> = diags
                    .iter()
                    .filter(|d| d.severity == runbook_core::Severity::Error)
                    .map(|d| runbook_core::shown::one_line(&format!("{}: error[{}]", d.location(), d.code)))
                    .collect();
                lines.push(format!(
                    "`runbook check {}` on this host says what is wrong",
                    runbook_core::shown::one_line(&crate::input::display(&file))
                ));
                Err(lines.join("\n"))
            } else {
                Ok(schedules)
            };
            out.push(runbook_web::SchedulesFile { file, schedules });
        }
        out
    }
}

/// Why the console does not quote `file`: it cannot be read, or it does not parse as a
/// runbook (a TOML file with a `[runbook]` table). `check` on a terminal quotes any `.toml`
/// file named on its command line; the console shows pages to whoever reaches it, so a
/// file of the folder that is not a runbook (credentials, settings, a runbook with a syntax
/// error) is named, never quoted.
fn runbook_text(file: &Path) -> Result<(), String> {
    let shown = crate::input::display(file);
    match crate::loader::read(&shown) {
        Ok(text) if runbook_core::validate::is_runbook_text(&text) => Ok(()),
        Ok(_) => Err(format!(
            "`{shown}` does not parse as a runbook (a TOML file with a `[runbook]` table); its content is not shown here: `runbook check {shown}` on this host says what is wrong"
        )),
        Err(e) => Err(format!("cannot read `{shown}`: {e}")),
    }
}

/// `check` of a file of the folder, when it is a runbook; else one diagnostic that says
/// why, without its content ([`runbook_text`]).
fn load_runbook_only(file: &Path) -> runbook_core::validate::Checked {
    match runbook_text(file) {
        Ok(()) => crate::input::load(file),
        Err(why) => {
            let shown = crate::input::display(file);
            runbook_core::validate::Checked {
                runbook: None,
                diagnostics: vec![runbook_core::Diagnostic::error(
                    runbook_core::Code::Io,
                    &runbook_core::Source::new(shown, ""),
                    Default::default(),
                    why,
                )],
            }
        }
    }
}

/// Resolves when SIGTERM or Ctrl-C (SIGINT) arrives.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the default actions still end the process.
        _ => std::future::pending::<()>().await,
    }
}

pub fn serve(
    listen: SocketAddr,
    state: Option<String>,
    runbooks: Option<PathBuf>,
    hosts: Vec<runbook_web::HostName>,
    auth: runbook_web::Auth,
) -> CliResult {
    let location = crate::state::location(state.as_deref());
    if let Some(dir) = &runbooks
        && !dir.is_dir()
    {
        return Err(CliError::Usage(
            Message::new(format!("--runbooks `{}` is not a folder", crate::input::display(dir)))
                .help("give the folder that holds the runbooks (`*.toml`) to show"),
        ));
    }
    if !runbook_web::is_loopback(&listen) && !auth.writes() {
        errln!(
            "warning: listening on {listen}, which is not a loopback address: anyone who can reach it can read every run in the store (started without `--auth`: no sign-in, read-only)"
        );
    }
    if auth.writes() {
        // The console writes (tokens' last use, decisions): its store must be up to date
        // and usable for writing now, not at the first sign-in.
        crate::runtime::block_on(crate::state::open(&location, true))?;
    }
    let config = runbook_web::Config { location, runbooks, files: Arc::new(CliFiles), hosts, auth };
    crate::runtime::block_on(async move {
        let server = runbook_web::bind(listen, config)
            .await
            .map_err(|e| CliError::CannotStart(Message::new(e.to_string())))?;
        outln!("listening on http://{}", server.local_addr());
        let reads = server.poller_reads();
        server.run(stop_signal()).await.map_err(|e| CliError::CannotStart(Message::new(e.to_string())))?;
        errln!("stopped");
        let reads = reads();
        if reads > 0 {
            errln!("followed runs: their pollers read the store {reads} time(s)");
        }
        Ok(Exit::Success)
    })
}

/// `--auth MODE --trusted-proxy IP --user-header NAME` as the console's [`runbook_web::Auth`].
pub fn auth(
    mode: Option<crate::args::AuthMode>,
    trusted: Vec<std::net::IpAddr>,
    header: String,
) -> Result<runbook_web::Auth, CliError> {
    use crate::args::AuthMode;
    let usage =
        |text: &str, help: &str| CliError::Usage(Message::new(text.to_string()).help(help.to_string()));
    match mode {
        None if !trusted.is_empty() => Err(usage(
            "--trusted-proxy is given without `--auth proxy`",
            "add `--auth proxy` to believe the proxy's identity header",
        )),
        None => Ok(runbook_web::Auth::None),
        Some(AuthMode::Token) if !trusted.is_empty() => Err(usage(
            "--trusted-proxy is for `--auth proxy`, not `--auth token`",
            "choose one way of signing in",
        )),
        Some(AuthMode::Token) => Ok(runbook_web::Auth::Token),
        Some(AuthMode::Proxy) if trusted.is_empty() => Err(usage(
            "`--auth proxy` needs `--trusted-proxy IP`: the address the proxy connects from",
            "the identity header is believed only from these addresses; from any other it is ignored",
        )),
        Some(AuthMode::Proxy) if trusted.iter().any(|t| t.is_unspecified()) => Err(usage(
            "`--trusted-proxy` is an unspecified address (`0.0.0.0` or `::`): no proxy connects from it",
            "give the address the proxy connects from, e.g. `--trusted-proxy 127.0.0.1`; there is no \"trust every address\"",
        )),
        Some(AuthMode::Proxy) => {
            let fits = !header.is_empty()
                && header.len() <= 64
                && header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !fits {
                return Err(usage(
                    &format!("`{}` is not a header name", runbook_core::shown::one_line(&header)),
                    "give a header name like `X-Forwarded-Email`",
                ));
            }
            Ok(runbook_web::Auth::Proxy { trusted, header: header.to_ascii_lowercase() })
        }
    }
}

/// `runbook serve token add|list|revoke`.
pub fn token(command: crate::args::ServeCommand) -> CliResult {
    use crate::args::{ServeCommand, TokenCommand};
    let ServeCommand::Token(command) = command;
    let state = match &command {
        TokenCommand::Add { state, .. }
        | TokenCommand::List { state }
        | TokenCommand::Revoke { state, .. } => state.state.clone(),
    };
    let location = crate::state::location(state.as_deref());
    let now = runbook_exec::dispatch::now().0;
    crate::runtime::block_on(async {
        match command {
            TokenCommand::Add { name, .. } => {
                runbook_web::operator_name(&name).map_err(|why| {
                    CliError::Usage(
                        Message::new(format!("`{}` cannot be an operator's name: {why}", runbook_core::shown::one_line(&name)))
                            .help("name the operator as the journal should record them, e.g. `alice` or `alice@example.com`"),
                    )
                })?;
                let token = runbook_web::new_token().map_err(|e| CliError::CannotStart(Message::new(e)))?;
                let store = crate::state::open(&location, true).await?;
                match store.add_token(&name, &runbook_web::token_hash(&token), &now).await {
                    Ok(()) => {}
                    Err(runbook_store::StoreError::Refused(why)) => {
                        // The hint names the token that exists (revoke takes its exact name).
                        let existing = twin_token(&store, &name).await.unwrap_or_else(|| name.clone());
                        return Err(CliError::Invalid(Message::new(why).help(format!(
                            "revoke it first (`runbook serve token revoke {}`) and choose another name: a name's history stays listed",
                            shell_word(&existing)
                        ))));
                    }
                    Err(e) => return Err(e.into()),
                }
                errln!("token for `{name}` (shown once: the store keeps only its SHA-256):");
                outln!("{token}");
                Ok(Exit::Success)
            }
            TokenCommand::List { .. } => {
                let store = crate::state::open(&location, false).await?;
                let tokens = store.tokens().await?;
                if tokens.is_empty() {
                    outln!("no tokens (`runbook serve token add NAME` makes one)");
                    return Ok(Exit::Success);
                }
                let width = tokens.iter().map(|t| t.name.chars().count()).max().unwrap_or(4).max(4);
                outln!("{:width$}  {:24}  {:24}  REVOKED", "NAME", "CREATED", "LAST USED");
                for t in tokens {
                    outln!(
                        "{:width$}  {:24}  {:24}  {}",
                        runbook_core::shown::one_line(&t.name),
                        t.created_at,
                        t.last_used.as_deref().unwrap_or("never"),
                        t.revoked_at.as_deref().unwrap_or("no")
                    );
                }
                Ok(Exit::Success)
            }
            TokenCommand::Revoke { name, .. } => {
                let store = crate::state::open(&location, false).await?;
                let revoked = store.revoke_token(&name, &now).await?;
                if !revoked.is_empty() {
                    for token in revoked {
                        outln!(
                            "revoked the token of `{}`: it and its sessions sign no one in from now on",
                            runbook_core::shown::one_line(&token)
                        );
                    }
                    Ok(Exit::Success)
                } else {
                    // Revoke takes a token's exact name; a twin of it (the same operator) is named.
                    let help = match twin_token(&store, &name).await {
                        Some(twin) => format!(
                            "`{}` is the same operator: `runbook serve token revoke {}` revokes its token",
                            runbook_core::shown::one_line(&twin),
                            shell_word(&twin)
                        ),
                        None => "`runbook serve token list` lists them".to_string(),
                    };
                    Err(CliError::Invalid(
                        Message::new(format!(
                            "there is no token named `{}`",
                            runbook_core::shown::one_line(&name)
                        ))
                        .help(help),
                    ))
                }
            }
        }
    })
}

/// The token whose name is the same operator as `name` (the same identity key), if any.
async fn twin_token(store: &runbook_store::Store, name: &str) -> Option<String> {
    let key = runbook_core::journal::identity_key(name);
    let tokens = store.tokens().await.ok()?;
    tokens.into_iter().map(|t| t.name).find(|other| runbook_core::journal::identity_key(other) == key)
}

/// `name` as one shell word in a hint: as it is when it is plain, else single-quoted.
fn shell_word(name: &str) -> String {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "@._+-".contains(c));
    if plain {
        name.to_string()
    } else {
        format!("'{}'", runbook_core::shown::one_line(name).replace('\'', "'\\''"))
    }
}
