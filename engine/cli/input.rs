//! What a command is given, read and checked: a runbook (and its includes), its parameter
//! values, and the digests of the other files a run of it reads. Problems come back as
//! [`CliError`]s; warnings are printed as they are found.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use runbook_core::model::{ParamValue, Runbook};
use runbook_core::validate::{self, Checked};
use runbook_core::{Diagnostic, Source, inputs, plan};

use crate::error::{CliError, Message};
use crate::loader;

/// A path as messages show it.
pub fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Read, parse and validate one file (and its includes).
pub fn load(path: &Path) -> Checked {
    let shown = display(path);
    match loader::read(&shown)
        .and_then(|t| if quotable(path, &t, false) { Ok(t) } else { Err(NOT_SHOWN.into()) })
    {
        Ok(text) => {
            let includes = loader::FsLoader::for_runbook(&shown);
            validate::check(Source::toml(shown, text), &includes)
        }
        Err(e) => Checked {
            runbook: None,
            diagnostics: vec![
                Diagnostic::error(
                    runbook_core::Code::Io,
                    &Source::new(shown.clone(), ""),
                    Default::default(),
                    format!("cannot read `{shown}`: {e}"),
                )
                .with_help(not_found_help(path, &e)),
            ],
        },
    }
}

/// Why a file named as a runbook is not quoted.
pub const NOT_SHOWN: &str =
    "it is not a runbook (a TOML file with a `[runbook]` table); its content is not shown";

/// Whether diagnostics may quote `text`, the content of the file named `path` on the command
/// line: when it is a runbook, or a `.toml` file named directly (a runbook being written has
/// syntax errors). Anything else (`check evil.toml` where `evil.toml` links to
/// `../../app.env`, `check .env`) gets one line without its content: a CI job may check file
/// names an attacker chose. `linked`: a symbolic link led to the text (at a revision: git's
/// link); one rule for the working tree and for text read at a revision.
pub fn quotable(path: &Path, text: &str, linked: bool) -> bool {
    validate::is_runbook_text(text) || (direct_toml(path) && !linked)
}

/// A `.toml` path that is not a symbolic link in the working tree.
fn direct_toml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// RB056 when the params file `pf` is the file of a secret of `runbook` (its path, the same
/// file through symbolic links, or a hard link to it: same `(device, inode)`): it is then not read, so nothing of it is quoted or
/// digested into a plan. The diagnostic points at the secret's declaration.
pub fn secrets_file(pf: &Path, runbook: &Runbook) -> Option<Diagnostic> {
    let shown = display(pf);
    let mine = (validate::normalize(&shown), loader::canonical(&shown), loader::identity(&shown));
    let s = runbook.secret_files().into_iter().find(|s| {
        validate::normalize(&s.path) == mine.0
            || (mine.1.is_some() && loader::canonical(&s.path) == mine.1)
            || (mine.2.is_some() && loader::identity(&s.path) == mine.2)
    })?;
    Some(
        Diagnostic::error(
            runbook_core::Code::SecretFileRead,
            &s.source,
            s.span,
            format!(
                "params file `{shown}` is the file `{}` of secret `{}`; it is not read",
                s.path, s.secret
            ),
        )
        .with_label("the secret's file")
        .with_help("a secret's file is read only as the secret; give the parameters a file of their own"),
    )
}

/// The problems of a params file as they are shown: its lines are quoted only when it is a
/// `.toml` file named directly (see [`quotable`]); otherwise one diagnostic without its
/// content. One rule for the working tree and for text read at a revision (`linked`).
pub fn params_problems(pf: &Path, diags: Vec<Diagnostic>, linked: bool) -> Vec<Diagnostic> {
    if diags.is_empty() || (direct_toml(pf) && !linked) {
        return diags;
    }
    let shown = display(pf);
    vec![
        Diagnostic::error(
            runbook_core::Code::InvalidParamValue,
            &Source::new(shown.clone(), ""),
            Default::default(),
            format!(
                "params file `{shown}` is not valid ({} problems); its content is not shown",
                diags.len()
            ),
        )
        .with_help("name a `.toml` params file directly (not through a symbolic link) to see the problems"),
    ]
}

/// The hint for a runbook that cannot be read: where a file of that name is, when it is
/// not found (`crate::preflight::candidates`).
fn not_found_help(path: &Path, reason: &str) -> String {
    let plain = "check the path; it is relative to the current directory".to_string();
    if reason != "file not found" {
        return plain;
    }
    match crate::preflight::candidates(path).as_slice() {
        [] => plain,
        found => format!(
            "did you mean {}? (paths are relative to the current directory)",
            found.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Print diagnostics where they are found: the warnings of a command that goes on, or
/// `check`'s report.
pub fn print_diagnostics(diags: &[Diagnostic], color: bool) {
    if diags.is_empty() {
        return;
    }
    crate::output::err!("{}", crate::report::human(diags, color));
}

/// Load and validate a runbook and resolve its parameters; its warnings are printed.
pub fn load_with_params(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    color: bool,
) -> Result<(Arc<Runbook>, BTreeMap<String, ParamValue>), CliError> {
    let Given { runbook, values: given, problems, .. } = load_given(file, args, params_file, color)?;
    if !problems.is_empty() {
        return Err(CliError::Diagnostics(problems));
    }
    match inputs::resolve(&runbook, &given) {
        Ok(v) => Ok((runbook, v)),
        Err(d) => Err(CliError::Diagnostics(d)),
    }
}

/// A runbook, the values of its parameters, the names of the required ones nobody gave, and
/// every problem with the values given (wrong values, unknown names, an unreadable params
/// file), each a diagnostic at its place.
pub type WithMissing = (Arc<Runbook>, BTreeMap<String, ParamValue>, Vec<String>, Vec<Diagnostic>);

/// [`load_with_params`], except that no problem with the values stops here: the required
/// parameters nobody gave come back by name, and every problem with the values given comes
/// back as a diagnostic, all of them (red-team finding F10 of issue 14), for `run`'s one
/// answer (`crate::preflight`), which lists them with everything else that stops the run.
/// `Err` only when the runbook itself is not valid.
pub fn load_with_missing_params(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    color: bool,
) -> Result<WithMissing, CliError> {
    let Given { runbook, values: given, mut problems, wrong } = load_given(file, args, params_file, color)?;
    // A parameter given a wrong value is neither given nor missing: its problem is listed.
    let wrong: Vec<&String> = wrong.iter().filter(|w| !given.contains_key(*w)).collect();
    let missing: Vec<String> = runbook
        .params
        .iter()
        .filter(|p| p.default.is_none() && !given.contains_key(&p.name) && !wrong.contains(&&p.name))
        .map(|p| p.name.clone())
        .collect();
    // The missing and wrong ones left out: every value given is still checked (`enum`,
    // `pattern`), each on its own.
    let params = runbook
        .params
        .iter()
        .filter(|p| !missing.contains(&p.name) && !wrong.contains(&&p.name))
        .cloned()
        .collect();
    let resolved = match inputs::resolve(&Runbook { params, ..(*runbook).clone() }, &given) {
        Ok(v) => v,
        Err(d) => {
            problems.extend(d);
            BTreeMap::new()
        }
    };
    Ok((runbook, resolved, missing, problems))
}

/// What [`load_given`] read: the runbook, the values given that fit their type, the
/// problems with the others, and the names of the declared parameters given a wrong value.
struct Given {
    runbook: Arc<Runbook>,
    values: BTreeMap<String, inputs::Given>,
    problems: Vec<Diagnostic>,
    wrong: Vec<String>,
}

/// The runbook (its warnings printed) and the values given for its parameters, each
/// checked on its own (syntax, unknown names), every problem collected; `Err` only when the
/// runbook is not valid.
fn load_given(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    color: bool,
) -> Result<Given, CliError> {
    let checked = load(file);
    let invalid = checked.diagnostics.iter().any(|d| d.severity == runbook_core::Severity::Error);
    let Some(runbook) = checked.runbook.filter(|_| !invalid) else {
        return Err(CliError::Diagnostics(checked.diagnostics));
    };
    print_diagnostics(&checked.diagnostics, color);
    let mut given = BTreeMap::new();
    let mut problems = Vec::new();
    let mut wrong = Vec::new();
    let read = match params_file {
        Some(pf) if secrets_file(pf, &runbook).is_none() => Some(
            loader::read_params(&display(file), &display(pf))
                .and_then(|b| String::from_utf8(b).map_err(|_| "the file is not UTF-8 text".to_string())),
        ),
        _ => None,
    };
    // Before anything can quote a value given (red team adv17a S8, promise 3).
    let pf_text = params_file.zip(read.as_ref().and_then(|r| r.as_ref().ok()));
    refuse_secrets_in(&runbook, args, pf_text.map(|(pf, text)| (display(pf), text.as_str())))?;
    if let Some(pf) = params_file
        && let Some(d) = secrets_file(pf, &runbook)
    {
        problems.push(d);
    } else if let (Some(pf), Some(read)) = (params_file, read) {
        let shown = display(pf);
        match read {
            Ok(text) => {
                let (values, diags, bad) = inputs::from_file(&Source::toml(shown.clone(), text), &runbook);
                given.extend(values);
                wrong.extend(bad);
                // A link or another kind of file could be anything (an `.env` file of passwords).
                problems.extend(params_problems(pf, diags, false));
            }
            Err(e) => problems.push(Diagnostic::error(
                runbook_core::Code::Io,
                &Source::new(shown.clone(), ""),
                Default::default(),
                format!("cannot read params file `{shown}`: {e}"),
            )),
        }
    }
    let (values, diags, bad) = inputs::from_args(args, &runbook);
    given.extend(values);
    wrong.extend(bad);
    problems.extend(diags);
    Ok(Given { runbook, values: given, problems, wrong })
}

/// The one refusal of a secret given as a parameter (red team adv16u F1, adv17a S8; promise
/// 3), made by [`load_given`], which every command that turns given values into a plan
/// goes through (`plan`, `run`, `submit`, the console's start, a schedule's check and
/// fire), before any diagnostic can quote a value: a name or value given on the command
/// line, or anywhere in the text of the params file, that holds the value of one of the
/// runbook's secrets (its includes' too) is refused, quoting neither. Only the secrets
/// that can be read without running anything are looked for (`env` and `file` sources; a
/// `command` source is run only by a run, which refuses such a value again in `vet` and
/// `run`); a secret that cannot be read is skipped.
pub(crate) fn refuse_secrets_in(
    runbook: &Runbook,
    args: &[(String, String)],
    params_file: Option<(String, &str)>,
) -> Result<(), CliError> {
    if args.is_empty() && params_file.is_none() {
        return Ok(());
    }
    let known = runbook_exec::secrets::readable(runbook, &runbook_exec::secrets::EngineEnv::sqlite())
        .map_err(|problems| {
            CliError::Invalid(
                Message::all(problems).help(
                    "secrets are read from their declared sources to check the parameters; nothing ran",
                ),
            )
        })?;
    if known.all().is_empty() {
        return Ok(());
    }
    let mut labels: Vec<(String, &str)> = Vec::new();
    for (name, value) in args {
        let of = if !runbook_exec::secrets::texts_holding_secrets(&known, [("", name.as_str())]).is_empty() {
            "a parameter given".to_string()
        } else {
            format!("parameter `{}`", runbook_core::shown::one_line(name))
        };
        labels.push((format!("the name of {of}"), name.as_str()));
        labels.push((format!("the value of {of}"), value.as_str()));
    }
    if let Some((shown, text)) = &params_file {
        labels.push((format!("the params file `{}`", runbook_core::shown::one_line(shown)), text));
    }
    // The values as used, decoded (red team adv17b F2): a JSON list on the command line and
    // a params file decode escapes (`\u0065`, `\/`, a line-ending backslash), so the text
    // given may hide a secret that the value holds. Every string inside every value, and
    // every key, is looked at, whatever the parameter's declared type.
    let mut decoded: Vec<(String, String)> = Vec::new();
    for (_, value) in args {
        let of = "the value of a parameter given".to_string();
        decoded
            .extend(runbook_core::inputs::decoded_strings_json(value).into_iter().map(|t| (of.clone(), t)));
    }
    if let Some((shown, text)) = &params_file {
        let of = format!("the params file `{}`", runbook_core::shown::one_line(shown));
        let strings = if shown.ends_with(".json") {
            runbook_core::inputs::decoded_strings_json(text)
        } else {
            runbook_core::inputs::decoded_strings_toml(text)
        };
        decoded.extend(strings.into_iter().map(|t| (of.clone(), t)));
    }
    labels.extend(decoded.iter().map(|(l, t)| (l.clone(), t.as_str())));
    let mut problems: Vec<String> =
        runbook_exec::secrets::texts_holding_secrets(&known, labels.iter().map(|(l, t)| (l.as_str(), *t)));
    problems.dedup();
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Invalid(Message::all(problems).help(
        "parameters are journaled and shown as given; pass secret values as `[secrets]`, and keep them out of parameter values; nothing ran",
    )))
}

/// The `reads` of a plan: every other file a run of `runbook` reads, and the params file the
/// values came from, each with its digest (a SQL script with its text).
pub fn pinned_reads(runbook: &Runbook, params_file: Option<&Path>) -> Result<Vec<plan::PlanRead>, CliError> {
    let mut reads = loader::reads(runbook).map_err(|problems| {
        CliError::Invalid(
            Message::all(problems).help("paths are relative to the folder of the runbook that names them"),
        )
    })?;
    if let Some(pf) = params_file {
        let read = runbook_core::model::FileRead {
            kind: runbook_core::model::ReadKind::ParamsFile,
            path: display(pf),
        };
        match loader::read_params(&runbook.source.path, &read.path) {
            Ok(bytes) => reads.push(plan::reads_entry(&read, &bytes)),
            Err(e) => {
                return Err(CliError::Invalid(Message::new(format!(
                    "cannot read params file `{}`: {e}",
                    read.path
                ))));
            }
        }
    }
    Ok(reads)
}
