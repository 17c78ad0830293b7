//! `runbook list [DIR]` (alias `runbooks`): the runbooks under a folder, each with its
//! title, the estimate of its critical path (as `plan` states it) and its last run from
//! the state store. A reader: the store is opened read-only and never created or migrated;
//! a file that is not a runbook is skipped, a runbook that does not check is one line.

use std::path::{Path, PathBuf};

use runbook_core::shown::one_line;
use runbook_core::{Diagnostic, Severity};
use runbook_store::{RunFilter, RunSummary, Store};

use crate::args::ListFormat;
use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::{errln, out};

/// Files looked at, at most (a folder of runbooks, not a home directory).
const MAX_FILES: usize = 10_000;
/// Folders deep, at most.
const MAX_DEPTH: usize = 32;
/// A title is cut at this many characters in the table (JSON keeps it whole).
const TITLE_WIDTH: usize = 40;

/// A runbook of the folder.
struct Listed {
    file: String,
    name: String,
    title: Option<String>,
    /// The critical path's estimate (`1m..3m`), when a step on it has one.
    estimate: Option<String>,
    last: Option<RunSummary>,
}

/// A file that looks like a runbook but does not check: its first error.
struct Problem {
    file: String,
    location: String,
    code: &'static str,
    message: String,
    more: usize,
}

pub fn list(dir: &Path, format: ListFormat, state: Option<String>) -> CliResult {
    let shown = crate::input::display(dir);
    if !dir.is_dir() {
        return Err(CliError::Usage(
            Message::new(format!("no folder `{}` to list runbooks from", one_line(&shown)))
                .help("name the folder of your runbooks: `runbook list DIR` (default: `runbooks`)"),
        ));
    }
    let mut files = Vec::new();
    let cut = toml_files(dir, 0, &mut files);
    files.sort();
    let (mut listed, problems) = read(&files);
    last_runs(&mut listed, state)?;
    match format {
        ListFormat::Json => out!("{}", json(&listed, &problems, cut)),
        ListFormat::Text => {
            if listed.is_empty() {
                errln!("no runbooks under `{}`", one_line(&shown));
            } else {
                out!("{}", table(&listed));
            }
            for p in &problems {
                let more = if p.more > 0 { format!(" (and {} more)", p.more) } else { String::new() };
                errln!("{}: error[{}]: {}{more}", p.location, p.code, p.message);
            }
            if let Some(p) = problems.first() {
                errln!("  help: `runbook check {}` shows each problem in full", one_line(&p.file));
            }
            if cut {
                errln!("warning: only the first {MAX_FILES} files were read");
            }
        }
    }
    Ok(Exit::Success)
}

/// The `.toml` files under `dir`, recursively: hidden folders and linked folders are not
/// entered (no loops, nothing outside). True when [`MAX_FILES`] cut the list.
fn toml_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let Ok(kind) = e.file_type() else { continue };
        let path = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if kind.is_dir() {
            if !hidden && depth < MAX_DEPTH && toml_files(&path, depth + 1, out) {
                return true;
            }
        } else if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            if out.len() == MAX_FILES {
                return true;
            }
            out.push(path);
        }
    }
    false
}

/// Each file checked: runbooks listed, runbooks with errors as problems; a file that parses
/// as TOML without a `[runbook]` table (parameters, schedules) is not a runbook: skipped.
fn read(files: &[PathBuf]) -> (Vec<Listed>, Vec<Problem>) {
    let mut listed = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let shown = crate::input::display(file);
        let Ok(text) = crate::loader::read(&shown) else { continue };
        if runbook_core::validate::is_other_toml(&text) {
            continue;
        }
        let mut checked = crate::input::load(file);
        runbook_core::diagnostic::sort(&mut checked.diagnostics);
        let errors: Vec<&Diagnostic> =
            checked.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
        match (&checked.runbook, errors.first()) {
            (Some(rb), None) => listed.push(Listed {
                file: shown,
                name: rb.name.clone(),
                title: rb.title.clone(),
                estimate: runbook_core::plan::critical_path_of(rb).estimate,
                last: None,
            }),
            (_, Some(d)) => problems.push(Problem {
                file: shown,
                location: one_line(&d.location()),
                code: d.code.as_str(),
                message: one_line(d.message.lines().next().unwrap_or_default()),
                more: errors.len() - 1,
            }),
            (None, None) => {}
        }
    }
    (listed, problems)
}

/// Each runbook's newest run, from the store when there is one: opened read-only, never
/// created or migrated (a missing SQLite file is no runs).
fn last_runs(listed: &mut [Listed], state: Option<String>) -> Result<(), CliError> {
    if listed.is_empty() {
        return Ok(());
    }
    let location = crate::state::location(state.as_deref());
    crate::runtime::block_on(async {
        let Some(store) = Store::open_read_only(&location).await? else { return Ok(()) };
        for l in listed.iter_mut() {
            let filter = RunFilter { runbook: Some(l.name.clone()), limit: Some(1), ..RunFilter::default() };
            l.last = store.run_list_where(&filter).await?.runs.into_iter().next();
        }
        Ok(())
    })
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

fn table(listed: &[Listed]) -> String {
    let rows: Vec<[String; 5]> = listed
        .iter()
        .map(|l| {
            [
                one_line(&l.name),
                cut(&one_line(l.title.as_deref().unwrap_or("-")), TITLE_WIDTH),
                l.estimate.clone().unwrap_or_else(|| "-".into()),
                l.last.as_ref().map_or_else(|| "-".into(), |r| format!("{} {}", r.status, r.started_at)),
                one_line(&l.file),
            ]
        })
        .collect();
    let header = ["NAME", "TITLE", "ESTIMATE", "LAST RUN", "FILE"].map(String::from);
    let mut width = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(width).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn json(listed: &[Listed], problems: &[Problem], cut: bool) -> String {
    let runbooks: Vec<serde_json::Value> = listed
        .iter()
        .map(|l| {
            serde_json::json!({
                "name": l.name, "title": l.title, "file": l.file, "estimate": l.estimate,
                "last_run": l.last.as_ref().map(|r| serde_json::json!({
                    "run_id": r.run_id, "status": r.status, "operator": r.operator,
                    "started_at": r.started_at, "finished_at": r.finished_at,
                })),
            })
        })
        .collect();
    let problems: Vec<serde_json::Value> = problems
        .iter()
        .map(|p| {
            serde_json::json!({
                "file": p.file, "location": p.location, "code": p.code, "message": p.message, "more": p.more,
            })
        })
        .collect();
    let doc = serde_json::json!({ "runbooks": runbooks, "problems": problems, "truncated": cut });
    format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
}
