//! `runbook new NAME [--template T] [--dir DIR]`: a commented runbook `NAME.toml` that
//! `check` passes at once, and its params file `NAME.params.toml`, from the templates
//! embedded in the binary (engine/cli/templates/new/). The runbook's first line is the
//! `#:schema` directive of the folder's tree (the nearest `schemas/runbook.schema.json` at
//! or above DIR, up to the repository's root), or `runbook.schema.json` beside it with a
//! note that says how to write it.
//!
//! NAME is the runbook's `name` field and its files' names, so it follows the one rule of
//! the `name` field (`syntax::RUNBOOK_NAME`: no path, no `..`, no space): RB120. A file that
//! exists is never overwritten, whichever of the two it is: RB121, and nothing is written
//! (both are created with `create_new`, so a file appearing meanwhile is not overwritten
//! either).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runbook_core::diagnostic::{Code, Diagnostic, Source};
use runbook_core::{Span, syntax};

use crate::args::NewTemplate;
use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::outln;

/// The runbook and params file of each template.
fn template(t: NewTemplate) -> (&'static str, &'static str) {
    match t {
        NewTemplate::Check => {
            (include_str!("templates/new/check.toml"), include_str!("templates/new/check.params.toml"))
        }
        NewTemplate::Deploy => {
            (include_str!("templates/new/deploy.toml"), include_str!("templates/new/deploy.params.toml"))
        }
        NewTemplate::Rollback => {
            (include_str!("templates/new/rollback.toml"), include_str!("templates/new/rollback.params.toml"))
        }
        NewTemplate::Backup => {
            (include_str!("templates/new/backup.toml"), include_str!("templates/new/backup.params.toml"))
        }
    }
}

fn template_name(t: NewTemplate) -> &'static str {
    match t {
        NewTemplate::Check => "check",
        NewTemplate::Deploy => "deploy",
        NewTemplate::Rollback => "rollback",
        NewTemplate::Backup => "backup",
    }
}

/// The schema's place in a repository (`runbook schema > schemas/runbook.schema.json`).
const SCHEMA: &str = "schemas/runbook.schema.json";

/// `runbook new`.
pub fn new(name: &str, t: NewTemplate, dir: &Path) -> CliResult {
    // The command line as a source, so a refusal points at NAME.
    let shown_name = name.escape_debug().to_string();
    let line = format!("runbook new {shown_name}");
    let source = Source::new("command line", line.clone());
    let at_name = Span::new(line.len() - shown_name.len(), line.len());
    if !syntax::RUNBOOK_NAME.matches(name) {
        let mut d = Diagnostic::error(Code::NewName, &source, at_name, format!("`{shown_name}` is not a runbook name"))
            .with_label("the runbook's `name` and its files' names")
            .with_help(
                "a runbook name is lowercase letters, digits, `_` and `-`, starting with a letter (`^[a-z][a-z0-9_-]*$`); the folder goes in `--dir`",
            );
        if let Some(better) = suggestion(name) {
            d = d.with_help(format!(
                "a runbook name is lowercase letters, digits, `_` and `-`, starting with a letter (`^[a-z][a-z0-9_-]*$`); the folder goes in `--dir`: did you mean `runbook new {better}`?"
            ));
        }
        return Err(CliError::Diagnostics(vec![d]));
    }
    if !dir.is_dir() {
        return Err(CliError::CannotStart(
            Message::new(format!(
                "cannot write into `{}`: it is not a folder; nothing was written",
                dir.display()
            ))
            .help(format!("create it first (`mkdir -p {}`), or give another `--dir`", dir.display())),
        ));
    }
    let runbook_path = dir.join(format!("{name}.toml"));
    let params_path = dir.join(format!("{name}.params.toml"));
    let shown = |p: &Path| -> String {
        if dir == Path::new(".") {
            p.strip_prefix(".").unwrap_or(p).display().to_string()
        } else {
            p.display().to_string()
        }
    };
    let taken: Vec<&PathBuf> =
        [&runbook_path, &params_path].into_iter().filter(|p| p.symlink_metadata().is_ok()).collect();
    if !taken.is_empty() {
        return Err(exists(&source, at_name, &taken.iter().map(|p| shown(p)).collect::<Vec<_>>()));
    }
    let (schema, found) = schema_directive(dir);
    let title = title(name);
    let (runbook_text, params_text) = template(t);
    let fill = |text: &str| {
        text.replace("__SCHEMA__", &schema).replace("__NAME__", name).replace("__TITLE__", &title)
    };
    let runbook_text = fill(runbook_text);
    let params_text = fill(params_text);

    // Both files are claimed before either is written: nothing is left half-made.
    let open = |p: &Path| {
        runbook_store::open_outside_store(p, std::fs::OpenOptions::new().write(true).create_new(true))
    };
    let mut runbook_file = match open(&runbook_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(exists(&source, at_name, &[shown(&runbook_path)]));
        }
        Err(e) => return Err(cannot_write(&shown(&runbook_path), &e)),
    };
    let mut params_file = match open(&params_path) {
        Ok(f) => f,
        Err(e) => {
            drop(runbook_file);
            let _ = std::fs::remove_file(&runbook_path);
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                exists(&source, at_name, &[shown(&params_path)])
            } else {
                cannot_write(&shown(&params_path), &e)
            });
        }
    };
    runbook_file.write_all(runbook_text.as_bytes()).map_err(|e| cannot_write(&shown(&runbook_path), &e))?;
    params_file.write_all(params_text.as_bytes()).map_err(|e| cannot_write(&shown(&params_path), &e))?;

    let (rb, params) = (shown(&runbook_path), shown(&params_path));
    outln!("wrote {rb} (template `{}`) and its parameters {params}", template_name(t));
    if !found {
        let schema_path = shown(&dir.join("runbook.schema.json"));
        outln!(
            "note: its `#:schema` line names runbook.schema.json beside it, for editors: write it with `runbook schema > {schema_path}`"
        );
    }
    outln!("next:");
    outln!("  runbook check {rb}");
    outln!("  runbook plan {rb} --params-file {params}");
    outln!("  runbook run {rb} --params-file {params}");
    Ok(Exit::Success)
}

/// RB121: `files` exist.
fn exists(source: &Arc<Source>, at_name: Span, files: &[String]) -> CliError {
    let list = files.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" and ");
    let verb = if files.len() == 1 { "exists" } else { "exist" };
    CliError::Diagnostics(vec![
        Diagnostic::error(Code::NewExists, source, at_name, format!("{list} {verb} already; nothing was written"))
            .with_label("names the files")
            .with_help("`runbook new` never overwrites a file: choose another name, another `--dir`, or move the file away"),
    ])
}

fn cannot_write(file: &str, e: &std::io::Error) -> CliError {
    CliError::CannotStart(Message::new(format!("cannot write `{file}`: {e}")))
}

/// The `#:schema` path for a runbook in `dir`, and whether that schema exists: the nearest
/// `schemas/runbook.schema.json` at or above `dir`, stopping at the repository's root (a
/// folder with `.git`); else `runbook.schema.json` beside the runbook.
fn schema_directive(dir: &Path) -> (String, bool) {
    if dir.join("runbook.schema.json").is_file() {
        return ("runbook.schema.json".into(), true);
    }
    if let Ok(real) = dir.canonicalize() {
        for (up, ancestor) in real.ancestors().enumerate() {
            if ancestor.join(SCHEMA).is_file() {
                return (format!("{}{SCHEMA}", "../".repeat(up)), true);
            }
            if ancestor.join(".git").exists() {
                break;
            }
        }
    }
    ("runbook.schema.json".into(), false)
}

/// `restart-api` → `Restart api`.
fn title(name: &str) -> String {
    let words = name.replace(['-', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What to type instead, when it is close: a path's last part as the name (without
/// `.toml`, lowercase, spaces as `-`) and its folder as `--dir`; `None` when that is not a
/// name either.
fn suggestion(typed: &str) -> Option<String> {
    let (folder, last) = match typed.rsplit_once('/') {
        Some((folder, last)) => (Some(if folder.is_empty() { "/" } else { folder }), last),
        None => (None, typed),
    };
    let stem = last.strip_suffix(".toml").unwrap_or(last);
    let better = stem.trim().to_lowercase().replace(' ', "-");
    if better == typed || !syntax::RUNBOOK_NAME.matches(&better) {
        return None;
    }
    Some(match folder {
        Some(folder) if !folder.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            format!("{better} --dir {folder}")
        }
        Some(_) => return None,
        None => better,
    })
}
