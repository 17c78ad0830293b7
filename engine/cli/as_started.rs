//! The one way `resume`, `compensate`, `approve` and `report` get a run's runbook: as the
//! run started it ([`runbook_core::lifecycle::check_as_started`]). A leaf of the CLI's
//! modules, so that each of those commands can use it.

use std::sync::Arc;

use runbook_core::model::Runbook;

use crate::error::{CliError, Message};

/// Why the runbook of a run cannot be had as the run started it.
pub enum AsStarted {
    /// The runbook file cannot be read: (its path as shown, why).
    Unreadable(String, String),
    /// It no longer passes `check`.
    Invalid(Vec<runbook_core::Diagnostic>),
    /// Files it reads (SQL scripts, CA files) cannot be read.
    ReadsUnreadable(Vec<String>),
    /// Its files differ from those the run started with.
    Changed(Vec<runbook_core::lifecycle::FileChange>),
}

/// The runbook at `file` as the run started it: checked, and its files (the runbook files,
/// then every other file the run reads) with the digests journaled in `run_started`
/// ([`runbook_core::lifecycle::check_as_started`]); with the digests of the files it reads.
/// The one way `resume`, `compensate`, `approve` and `report` get a run's runbook.
pub fn load_as_started(
    shown: &str,
    files: &[runbook_core::plan::FileHash],
) -> Result<(Arc<Runbook>, Vec<runbook_core::plan::FileHash>), AsStarted> {
    let text = crate::loader::read(shown).map_err(|e| AsStarted::Unreadable(shown.to_string(), e))?;
    let includes = crate::loader::FsLoader::for_runbook(shown);
    let checked = runbook_core::validate::check(runbook_core::Source::toml(shown, text), &includes);
    let invalid = checked.has_errors();
    let Some(runbook) = checked.runbook.filter(|_| !invalid) else {
        return Err(AsStarted::Invalid(checked.diagnostics));
    };
    // The runbook files, then every other file the run reads (SQL scripts, CA files).
    let reads: Vec<runbook_core::plan::FileHash> = crate::loader::reads(&runbook)
        .map_err(AsStarted::ReadsUnreadable)?
        .into_iter()
        .map(|r| runbook_core::plan::FileHash { path: r.path, sha256: r.sha256 })
        .collect();
    let now: Vec<runbook_core::plan::FileHash> = runbook
        .sources()
        .iter()
        .map(|s| runbook_core::plan::FileHash {
            path: s.path.clone(),
            sha256: runbook_core::plan::sha256_hex(s.file_text()),
        })
        .chain(reads.iter().cloned())
        .collect();
    runbook_core::lifecycle::check_as_started(files, &now).map_err(AsStarted::Changed)?;
    Ok((runbook, reads))
}

/// Why the runbook of run `id` cannot be had as the run started it, as the error printed.
pub fn as_started_error(id: &str, e: AsStarted) -> CliError {
    use runbook_core::lifecycle::FileChange;
    match e {
        AsStarted::Unreadable(shown, e) => {
            CliError::Invalid(Message::new(format!("cannot read the run's runbook `{shown}`: {e}")))
        }
        AsStarted::Invalid(diagnostics) => CliError::Diagnostics(diagnostics),
        AsStarted::ReadsUnreadable(problems) => CliError::Invalid(
            Message::all(problems)
                .help("paths are relative to the folder of the runbook that names them; nothing ran"),
        ),
        AsStarted::Changed(changes) => {
            // In the same order (paths may read differently: the run may have been started
            // from another folder).
            let details = changes.into_iter().map(|c| match c {
                FileChange::Changed { path, then, now } => {
                    format!("`{path}` changed: SHA-256 {then} then, {now} now")
                }
                FileChange::NoLongerRead { path, sha256 } => {
                    format!("`{path}` (SHA-256 {sha256}) is no longer read by the run")
                }
                FileChange::NewlyRead { path, sha256 } => {
                    format!("`{path}` (SHA-256 {sha256}) is read now but was not when the run started")
                }
            });
            CliError::Invalid(Message {
                errors: vec![format!(
                    "the files of the run changed since run {id} started; resuming would run different steps"
                )],
                details: details.collect(),
                help: Some("restore the files as they were (same SHA-256), or start a new run".into()),
            })
        }
    }
}
