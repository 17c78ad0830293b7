//! `runbook plan --diff OLD.json NEW.json` and `runbook plan FILE --against REV`: what
//! changed between two versions of a procedure.
//!
//! Both build two plan documents and hand them to the same pure function
//! ([`runbook_core::render::diff::diff`]). `--diff` reads pinned plans with `run --plan`'s
//! reader and errors; `--against` plans FILE twice: as it is, and as it was at REV, its
//! includes, SQL scripts, CA files and params file read at REV with git
//! ([`runbook_exec::process::git_show`], the only place that starts git), with the same
//! parameters, then compares the runbook files as written (`diff::procedure`: a template
//! whose change these values do not show); `--diff` says when equal plans come from runbook
//! files whose digests differ (`diff::files_changed`). Exit 0 when equal, 1 when different,
//! 3 for invalid input.

use std::path::Path;
use std::sync::Arc;

use runbook_core::diagnostic::Source;
use runbook_core::render::diff::{self, PlanDiff};
use runbook_core::{inputs, plan, validate};
use runbook_exec::process::{GitShow, git_show};
use serde_json::Value;

use crate::args::PlanFormat;
use crate::error::{CliError, CliResult, Exit, Message};
use crate::input::{
    NOT_SHOWN, display, load_with_params, params_problems, pinned_reads, print_diagnostics, quotable,
};
use crate::loader::{MAX_FILE_BYTES, confinement_hint};
use crate::output::out;

/// `plan --diff OLD NEW`.
pub fn files(old: &Path, new: &Path, format: PlanFormat) -> CliResult {
    format_ok(format)?;
    let old_doc = document(old)?;
    let new_doc = document(new)?;
    // The documents are compared in place (never copied); the digests are kept apart.
    let files = |doc: &Value| serde_json::json!({ "files": doc.get("files") });
    let (old_files, new_files) = (files(&old_doc), files(&new_doc));
    let mut d = diff::diff_owned(old_doc, new_doc).map_err(|e| CliError::Invalid(Message::new(e.0)))?;
    d.sources.extend(diff::files_changed(&old_files, &new_files, &d));
    Ok(show(&d, format))
}

/// What `plan FILE --against REV` compares.
pub struct Against<'a> {
    /// The runbook, as it is now.
    pub file: &'a Path,
    /// The revision of the old version.
    pub rev: &'a str,
    /// `-p` values, for both versions.
    pub params: &'a [(String, String)],
    /// `--params-file`, read at REV for the old version.
    pub params_file: Option<&'a Path>,
}

/// `plan FILE --against REV`.
pub fn against(a: Against<'_>, format: PlanFormat, color: bool) -> CliResult {
    format_ok(format)?;
    let shown = display(a.file);
    // The old version first: an unknown revision is said before anything else.
    let old_text = match at_rev(a.file, a.rev)? {
        // Quoted by the working tree's rule (`input::quotable`): an `.env` file named as the
        // runbook is refused without its lines at REV as it is now.
        Some((text, linked)) if !quotable(a.file, &text, linked) => {
            return Err(CliError::Invalid(
                Message::new(format!("`{shown}` as it was at `{}`: {NOT_SHOWN}; nothing to compare", a.rev))
                    .help("name a runbook file"),
            ));
        }
        Some((text, _)) => Some(text),
        None => None,
    };
    let (old, included) = match &old_text {
        Some(text) => {
            let (doc, included) = old_plan(&a, &shown, text.clone(), color)?;
            (Some(doc), included)
        }
        None => (None, Vec::new()),
    };
    let (runbook, values) = load_with_params(a.file, a.params, a.params_file, color)?;
    let mut new_plan = plan::plan(&runbook, &values).map_err(CliError::Diagnostics)?;
    new_plan.reads = pinned_reads(&runbook, a.params_file)?;
    let new_doc = to_document(&new_plan)?;
    let (old_doc, note) = match old {
        Some(doc) => (doc, None),
        None => (
            diff::empty_document(),
            Some(format!(
                "`{shown}` is absent at `{}`: every step is shown as added (as `git diff` shows a new file)",
                a.rev
            )),
        ),
    };
    let mut d = diff::diff(&old_doc, &new_doc).map_err(|e| CliError::Invalid(Message::new(e.0)))?;
    d.notes.extend(note);
    // The procedure as written too: a template whose change these values do not show.
    if let Some(old_text) = &old_text {
        let new_text = crate::loader::read(&shown).map_err(|e| {
            CliError::Invalid(Message::new(format!(
                "cannot read `{shown}`: {}",
                runbook_core::shown::one_line(&e)
            )))
        })?;
        // The working tree's included files are read by the working tree's one confined
        // reader (red team adv16r F9, F10): inside the runbook's folder, the open file
        // checked, a regular file of bounded size; a file that is not a runbook is named,
        // never quoted.
        let tree = crate::loader::FsLoader::for_runbook(&shown);
        let mut sources = diff::procedure(old_text, &new_text, &d);
        // Included runbooks as written: unless a step that includes one shows a change.
        for (path, old_inc) in &included {
            let shown_by_step = d.steps.iter().any(|s| match s {
                diff::StepChange::Changed { step, .. } => includes(&new_doc, step, path),
                diff::StepChange::Renamed { to, .. } => includes(&new_doc, to, path),
                diff::StepChange::Added { .. } | diff::StepChange::Removed { .. } => false,
            });
            if shown_by_step {
                continue;
            }
            let inc = runbook_core::shown::one_line(path);
            let new_inc = match validate::Loader::load(&tree, path) {
                Ok(text) if validate::is_runbook_text(&text) => text,
                Ok(_) => {
                    sources.push(not_quoted(&inc, NOT_SHOWN));
                    continue;
                }
                // Removed since REV: the plans show what that changed.
                Err(_) if std::fs::symlink_metadata(path).is_err() => continue,
                Err(e) => {
                    sources.push(not_quoted(&inc, &runbook_core::shown::one_line(&e)));
                    continue;
                }
            };
            for (part, unified) in diff::procedure_parts(old_inc, &new_inc) {
                sources.push(diff::SourceChange {
                    note: format!("`{part}` of the included `{inc}` changed as written; the plans for these parameters are the same (its templates may render differently for other values)"),
                    part: format!("{inc}: {part}"),
                    unified: Some(unified),
                });
            }
        }
        d.sources.extend(sources);
    }
    Ok(show(&d, format))
}

/// A runbook included at REV whose working-tree file is not read or not quoted, and why.
fn not_quoted(inc: &str, why: &str) -> diff::SourceChange {
    diff::SourceChange {
        note: format!("the included `{inc}` as it is now is not compared: {why}"),
        part: inc.to_string(),
        unified: None,
    }
}

/// Whether step `id` of a plan document includes the runbook at `path` (as the loader named
/// it: the folder of the including runbook, then the `file` of the step).
fn includes(doc: &Value, id: &str, path: &str) -> bool {
    ["steps", "finally"].iter().filter_map(|k| doc.get(k).and_then(Value::as_array)).flatten().any(|s| {
        s.get("id").and_then(Value::as_str) == Some(id)
            && s.pointer("/command/runbook/file")
                .and_then(Value::as_str)
                .is_some_and(|f| Path::new(path).ends_with(f.trim_start_matches("./")))
    })
}

fn format_ok(format: PlanFormat) -> Result<(), CliError> {
    match format {
        PlanFormat::Text | PlanFormat::Json | PlanFormat::Markdown => Ok(()),
        PlanFormat::Dot => Err(CliError::Usage(Message::new(
            "a plan diff is shown as `--format text`, `markdown` or `json`, not `dot`",
        ))),
        PlanFormat::Html => Err(CliError::Usage(Message::new(
            "a plan diff is shown as `--format text`, `markdown` or `json`, not `html`",
        ))),
    }
}

fn show(d: &PlanDiff, format: PlanFormat) -> Exit {
    match format {
        PlanFormat::Text => out!("{}", diff::text(d)),
        PlanFormat::Markdown => out!("{}", diff::markdown(d)),
        PlanFormat::Json => out!("{}\n", diff::json(d)),
        // Refused by `format_ok`.
        PlanFormat::Dot | PlanFormat::Html => {}
    }
    if d.is_empty() { Exit::Success } else { Exit::Different }
}

/// A pinned plan file: read as `run --plan` reads it, checked as a plan document.
fn document(path: &Path) -> Result<Value, CliError> {
    let shown = display(path);
    let text = crate::run::read_plan_text(&shown)?;
    let mut doc = crate::run::parse_plan_document(&shown, &text)?;
    drop(text);
    // In place: a version 1 document is read as its upgrade, not copied to be upgraded.
    diff::upgrade(&mut doc);
    diff::read_document(&doc)
        .map_err(|e| CliError::Invalid(Message::new(format!("`{shown}` is not a plan document: {}", e.0))))?;
    Ok(doc)
}

fn to_document(p: &plan::Plan) -> Result<Value, CliError> {
    serde_json::to_value(p)
        .map_err(|e| CliError::Invalid(Message::new(format!("the plan cannot be written as JSON: {e}"))))
}

/// The folder and the name git is asked about for `path`.
fn split(path: &Path) -> (&Path, String) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, name)
}

/// The folder git runs in and the path it is asked about for a file the runbook at `root`
/// names: from the runbook's own folder when the file is inside it (so a folder renamed or
/// removed since REV is still read as it was), else from the file's folder.
fn from_root<'a>(root: &'a Path, path: &'a Path) -> (&'a Path, String) {
    match path.strip_prefix(root) {
        Ok(inside)
            if path.is_absolute() == root.is_absolute()
                && !inside.components().any(|c| !matches!(c, std::path::Component::Normal(_))) =>
        {
            let dir = if root.as_os_str().is_empty() { Path::new(".") } else { root };
            (dir, inside.to_string_lossy().into_owned())
        }
        _ => split(path),
    }
}

/// FILE's text at REV (`None`: absent there) and whether a symbolic link led to it, or why
/// it cannot be read.
fn at_rev(path: &Path, rev: &str) -> Result<Option<(String, bool)>, CliError> {
    let shown = display(path);
    let (dir, name) = split(path);
    match git_show(dir, rev, &name, MAX_FILE_BYTES) {
        GitShow::Found { bytes, linked, .. } => String::from_utf8(bytes)
            .map(|t| Some((t, linked)))
            .map_err(|_| CliError::Invalid(Message::new(format!("`{shown}` at `{rev}` is not UTF-8 text")))),
        GitShow::Absent => Ok(None),
        other => Err(unreadable(&shown, rev, other)),
    }
}

/// Why `shown` cannot be read at `rev`, with the hint of its case.
fn unreadable(shown: &str, rev: &str, why: GitShow) -> CliError {
    if let GitShow::UnknownRevision = why {
        return CliError::Invalid(
            Message::new(format!("unknown revision `{rev}` in the git repository of `{shown}`"))
                .help(why_not(rev, why).1.unwrap_or_default()),
        );
    }
    let (message, help) = why_not(rev, why);
    let message = format!("`{shown}` {message}");
    CliError::Invalid(match help {
        Some(h) => Message::new(message).help(h),
        None => Message::new(message),
    })
}

/// What git's answer says about a file at `rev` ("at `REV` is a folder", ...), and a hint.
fn why_not(rev: &str, why: GitShow) -> (String, Option<String>) {
    let mib = MAX_FILE_BYTES / (1024 * 1024);
    match why {
        GitShow::Found { .. } | GitShow::Absent => (format!("is absent at `{rev}`"), None),
        GitShow::UnknownRevision => (
            format!("cannot be read at `{rev}`: unknown revision in its git repository"),
            Some("name a commit, a branch or a tag of that repository (`git log --oneline` lists commits; a shallow clone, as CI checkouts often are, may lack it: fetch it first)".into()),
        ),
        GitShow::NoCommits => (
            format!("cannot be read at `{rev}`: its git repository has no commit yet"),
            Some("commit a first version, then compare with it (`git commit`)".into()),
        ),
        GitShow::NotACommit(kind) => (
            format!("cannot be read at `{rev}`: `{rev}` names a {}, not a commit", runbook_core::shown::one_line(&kind)),
            Some("name a commit, a branch or a tag (`HEAD`, `main`, `origin/main`), not a path or an object inside one".into()),
        ),
        GitShow::NotAFile(what) => (
            format!("at `{rev}` is {what}, not a file"),
            Some("name the file itself; at that revision the path held no file".into()),
        ),
        GitShow::LinkOutside => (
            format!("at `{rev}` is a symbolic link that leads outside the repository"),
            Some("only files of the repository are read at a revision; compare a path inside it".into()),
        ),
        GitShow::LinkLoop => (
            format!("at `{rev}` goes through more than {} symbolic links (a loop)", runbook_exec::process::MAX_LINKS),
            Some("fix the links at that revision, or compare with another one".into()),
        ),
        GitShow::TooLarge => (format!("at `{rev}` is larger than {mib} MiB"), None),
        GitShow::Failed(why) => (
            format!("cannot be read at `{rev}` with git: {}", runbook_core::shown::one_line(&why)),
            None,
        ),
    }
}

/// Why a file at REV is refused when a symbolic link there leads out of the runbook's folder.
const OUT_AT_REV: &str =
    "it is outside the folder of the runbook being compared, symbolic links at that revision resolved";

/// Reads the included runbooks at a revision.
struct GitLoader<'a> {
    rev: &'a str,
    /// Each runbook read (its path as asked, its text), for the procedure's comparison.
    loaded: std::cell::RefCell<Vec<(String, String)>>,
    /// The folder of the runbook named on the command line: includes live in it or below.
    root: &'a Path,
}

impl validate::Loader for GitLoader<'_> {
    fn load(&self, path: &str) -> Result<String, String> {
        let p = Path::new(path);
        self.confine(path).map_err(confinement_hint)?;
        let (dir, name) = from_root(self.root, p);
        match git_show(dir, self.rev, &name, MAX_FILE_BYTES) {
            GitShow::Found { path: real, folder, .. } if !real.starts_with(&folder) => {
                Err(format!("{OUT_AT_REV}; included runbooks must live in that folder or below it"))
            }
            GitShow::Found { bytes, .. } => {
                let text = String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_string())?;
                self.loaded.borrow_mut().push((path.to_string(), text.clone()));
                Ok(text)
            }
            other => Err(format!("it {}", why_not(self.rev, other).0)),
        }
    }

    /// The rule of the working tree's loader, read at REV: a path in the folder of the runbook
    /// compared or below it (a symbolic link at REV that leads out is refused when read).
    fn confine(&self, path: &str) -> Result<(), String> {
        let p = Path::new(path);
        let inside = p.strip_prefix(self.root).unwrap_or(p);
        if self.root.as_os_str().is_empty() && p.is_absolute()
            || !p.starts_with(self.root)
            || inside.components().any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err("it is outside the folder of the runbook being compared".into());
        }
        // Links at REV resolved there (red team adv16r F2): the same rule as `inside`.
        let (dir, name) = from_root(self.root, p);
        match git_show(dir, self.rev, &name, MAX_FILE_BYTES) {
            GitShow::Found { path: real, folder, .. } if !real.starts_with(&folder) => Err(OUT_AT_REV.into()),
            GitShow::LinkOutside => Err(OUT_AT_REV.into()),
            _ => Ok(()),
        }
    }

    /// The file at REV once links are followed there, for RB056 (a secret's file named as
    /// a script through a link at REV is the same file).
    fn canonical(&self, path: &str) -> Option<String> {
        let (dir, name) = from_root(self.root, Path::new(path));
        match git_show(dir, self.rev, &name, MAX_FILE_BYTES) {
            GitShow::Found { path, .. } => Some(format!("{}:{path}", self.rev)),
            _ => None,
        }
    }
}

/// The plan document of FILE as it was at REV, and the runbooks it included (path, text).
type OldPlan = (Value, Vec<(String, String)>);

/// The plan document of FILE as it was at REV.
fn old_plan(a: &Against<'_>, shown: &str, text: String, color: bool) -> Result<OldPlan, CliError> {
    let invalid = |what: &str| {
        CliError::Invalid(Message::new(format!(
            "`{shown}` as it was at `{}`: {what}; nothing to compare",
            a.rev
        )))
    };
    let root = a.file.parent().unwrap_or(Path::new(""));
    let loader = GitLoader { rev: a.rev, root, loaded: std::cell::RefCell::new(Vec::new()) };
    let checked = validate::check(Source::toml(shown.to_string(), text), &loader);
    let errors = checked.diagnostics.iter().any(|d| d.severity == runbook_core::Severity::Error);
    let Some(runbook) = checked.runbook.filter(|_| !errors) else {
        print_diagnostics(&checked.diagnostics, color);
        return Err(invalid("it is not a valid runbook (the problems above)"));
    };
    let mut given = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    let mut reads = Vec::new();
    for r in runbook.reads() {
        let (dir, name) = from_root(root, Path::new(&r.path));
        let outside = validate::Loader::confine(&loader, &r.path).err();
        match git_show(dir, a.rev, &name, MAX_FILE_BYTES) {
            GitShow::Found { path: real, folder, .. } if outside.is_some() || !real.starts_with(&folder) => {
                return Err(invalid(&format!("`{}`: {}", r.path, outside.as_deref().unwrap_or(OUT_AT_REV))));
            }
            GitShow::Found { bytes, .. } => reads.push(plan::reads_entry(&r, &bytes)),
            other => {
                let (why, help) = why_not(a.rev, other);
                let message =
                    format!("`{shown}` as it was at `{}`: `{}` {why}; nothing to compare", a.rev, r.path);
                return Err(CliError::Invalid(match help {
                    Some(h) => Message::new(message).help(h),
                    None => Message::new(message),
                }));
            }
        }
    }
    if let Some(pf) = a.params_file {
        if let Some(d) = crate::input::secrets_file(pf, &runbook) {
            print_diagnostics(&[d], color);
            return Err(invalid("its params file is a secret's file (the problem above)"));
        }
        let pf_shown = display(pf);
        // In the runbook's folder: the folder rule at REV too, links there resolved (F3).
        if crate::loader::in_folder_of(shown, &pf_shown)
            && let Err(e) = validate::Loader::confine(&loader, &pf_shown)
        {
            return Err(invalid(&format!("its params file `{pf_shown}`: {e}")));
        }
        let (text, linked) = match at_rev(pf, a.rev)? {
            Some(found) => found,
            None => return Err(invalid(&format!("its params file `{pf_shown}` is absent at `{}`", a.rev))),
        };
        let read = runbook_core::model::FileRead {
            kind: runbook_core::model::ReadKind::ParamsFile,
            path: pf_shown.clone(),
        };
        reads.push(plan::reads_entry(&read, text.as_bytes()));
        let (values, diags, _) = inputs::from_file(&Source::toml(pf_shown, text), &runbook);
        given.extend(values);
        problems.extend(params_problems(pf, diags, linked));
    }
    let (values, diags, _) = inputs::from_args(a.params, &runbook);
    given.extend(values);
    problems.extend(diags);
    if !problems.is_empty() {
        print_diagnostics(&problems, color);
        return Err(invalid("its parameters do not fit it (the problems above)"));
    }
    let values = inputs::resolve(&runbook, &given).map_err(|d| {
        print_diagnostics(&d, color);
        invalid("its parameters do not fit it (the problems above)")
    })?;
    let mut old = plan::plan(&runbook, &values).map_err(|d| {
        print_diagnostics(&d, color);
        invalid("it cannot be planned (the problems above)")
    })?;
    old.reads = reads;
    let _: &Arc<_> = &runbook;
    Ok((to_document(&old)?, loader.loaded.into_inner()))
}
