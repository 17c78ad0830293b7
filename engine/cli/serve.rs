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

impl runbook_web::Files for CliFiles {
    fn runbooks(&self, dir: &Path) -> Vec<runbook_web::RunbookFile> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        files.truncate(MAX_FILES);
        files
            .into_iter()
            .filter_map(|file| {
                let name = file.file_stem()?.to_string_lossy().into_owned();
                let mut checked = crate::input::load(&file);
                diagnostic::sort(&mut checked.diagnostics);
                let valid = !checked.has_errors();
                Some(runbook_web::RunbookFile {
                    name,
                    runbook: checked.runbook.as_ref().map(|r| r.name.clone()),
                    valid,
                    problems: if checked.diagnostics.is_empty() {
                        String::new()
                    } else {
                        crate::report::human(&checked.diagnostics, false)
                    },
                    file,
                })
            })
            .collect()
    }

    fn review(&self, file: &Path) -> Result<String, String> {
        let (runbook, values) =
            crate::input::load_with_params(file, &[], None, false).map_err(|e| e.render(false))?;
        let mut plan = plan::plan(&runbook, &values).map_err(|d| CliError::Diagnostics(d).render(false))?;
        plan.reads = crate::input::pinned_reads(&runbook, None).map_err(|e| e.render(false))?;
        Ok(render::markdown(&plan))
    }

    fn as_started(
        &self,
        file: &str,
        files: &[runbook_core::plan::FileHash],
    ) -> Option<Arc<runbook_core::model::Runbook>> {
        crate::as_started::load_as_started(file, files).ok().map(|(runbook, _)| runbook)
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

pub fn serve(listen: SocketAddr, state: Option<String>, runbooks: Option<PathBuf>) -> CliResult {
    let location = crate::state::location(state.as_deref());
    if let Some(dir) = &runbooks
        && !dir.is_dir()
    {
        return Err(CliError::Usage(
            Message::new(format!("--runbooks `{}` is not a folder", crate::input::display(dir)))
                .help("give the folder that holds the runbooks (`*.toml`) to show"),
        ));
    }
    if !runbook_web::is_loopback(&listen) {
        errln!(
            "warning: listening on {listen}, which is not a loopback address: anyone who can reach it can read every run in the store (the console has no authentication yet; it is read-only)"
        );
    }
    let config = runbook_web::Config { location, runbooks, files: Arc::new(CliFiles) };
    crate::runtime::block_on(async move {
        let server = runbook_web::bind(listen, config)
            .await
            .map_err(|e| CliError::CannotStart(Message::new(e.to_string())))?;
        outln!("listening on http://{}", server.local_addr());
        server.run(stop_signal()).await.map_err(|e| CliError::CannotStart(Message::new(e.to_string())))?;
        errln!("stopped");
        Ok(Exit::Success)
    })
}
