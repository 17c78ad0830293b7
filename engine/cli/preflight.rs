//! One answer before a run (issue 14, point 8): everything that stops a run and can be
//! known without running anything (missing parameters, secrets, `--yes`, files it reads) is
//! gathered here and reported together, as one [`CliError`] with the stable code RB090, the
//! params files found next to the runbook, and what comes after (the preconditions, which
//! run only once the inputs are complete). Nothing here prints; nothing is journaled.

use std::path::{Path, PathBuf};

use runbook_core::Code;
use runbook_core::model::Runbook;

use crate::error::{CliError, Message};

/// What stops a run, gathered section by section.
pub struct Answer<'a> {
    runbook: &'a Runbook,
    file: &'a Path,
    /// (section, lines, how many of them are problems)
    sections: Vec<(String, Vec<String>, usize)>,
    /// Whether parameters are missing (then the params files next to it are suggested).
    missing: bool,
    /// An error that is no input problem (an interrupted secret helper): returned as is.
    hard: Option<CliError>,
    /// The wrong values given: when they are all that stops the run, they are reported as
    /// they always were, each quoted at its place.
    wrong: Vec<runbook_core::Diagnostic>,
}

impl<'a> Answer<'a> {
    pub fn new(runbook: &'a Runbook, file: &'a Path) -> Answer<'a> {
        Answer { runbook, file, sections: Vec::new(), missing: false, hard: None, wrong: Vec::new() }
    }

    /// The required parameters nobody gave: one line each, with type, choices and meaning.
    pub fn missing_params(&mut self, missing: &[String]) {
        let width = missing.iter().map(|m| m.chars().count()).max().unwrap_or(0);
        let lines = missing
            .iter()
            .filter_map(|name| self.runbook.params.iter().find(|p| &p.name == name))
            .map(|p| {
                let mut line = format!("{:<width$}  {}", p.name, p.ty.as_str());
                if let Some(values) = p.allowed.as_ref().filter(|v| !v.is_empty()) {
                    let values: Vec<String> = values.iter().map(ToString::to_string).collect();
                    line.push_str(&format!(", one of {}", values.join("|")));
                }
                if let Some(d) = &p.description {
                    line.push_str(&format!(": {d}"));
                }
                line
            })
            .collect::<Vec<_>>();
        if !lines.is_empty() {
            self.missing = true;
            let title = format!(
                "missing parameters ({}; give them with `-p NAME=VALUE` or `--params-file FILE`)",
                lines.len()
            );
            let count = lines.len();
            self.sections.push((title, lines, count));
        }
    }

    /// The values given that are wrong (type, `enum`, `pattern`) or name no parameter, or a
    /// params file that cannot be read: one line each, at its place (`file:line:col`, the
    /// command line's column), with its stable code and what would be right. All of them: one
    /// wrong value hides nothing (red-team finding F10 of issue 14).
    pub fn wrong_values(&mut self, wrong: &[runbook_core::Diagnostic]) {
        if wrong.is_empty() {
            return;
        }
        let mut wrong = wrong.to_vec();
        runbook_core::diagnostic::sort(&mut wrong);
        self.wrong.clone_from(&wrong);
        let mut lines = Vec::new();
        for d in &wrong {
            lines.push(d.to_string());
            if let Some(help) = &d.help {
                lines.push(format!("  help: {help}"));
            }
        }
        self.sections.push((
            format!("wrong values given ({}; fix them in `-p NAME=VALUE` or the params file)", wrong.len()),
            lines,
            wrong.len(),
        ));
    }

    /// Keep what `result` holds, or record its problem under `section`.
    pub fn take<T>(&mut self, section: &str, result: Result<T, CliError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(CliError::Invalid(m)) => {
                let mut lines = m.errors;
                lines.extend(m.details);
                let count = lines.len();
                // The headline says that nothing ran.
                lines.extend(m.help.map(|h| format!("help: {}", h.trim_end_matches("; nothing ran"))));
                self.sections.push((section.to_string(), lines, count));
                None
            }
            Err(e) => {
                self.hard.get_or_insert(e);
                None
            }
        }
    }

    /// One more line under `section`, when it has problems (what they are about).
    pub fn note(&mut self, section: &str, line: String) {
        if let Some((_, lines, _)) = self.sections.iter_mut().find(|(s, _, _)| s == section) {
            lines.insert(1, line);
        }
    }

    /// `Ok` when nothing stops the run; otherwise one error naming everything.
    pub fn finish(self) -> Result<(), CliError> {
        if let Some(e) = self.hard {
            return Err(e);
        }
        if self.sections.is_empty() {
            return Ok(());
        }
        // Only wrong values: each quoted at its place, as `plan` says them.
        if self.sections.len() == 1 && !self.wrong.is_empty() {
            return Err(CliError::Diagnostics(self.wrong));
        }
        let count: usize = self.sections.iter().map(|(_, _, n)| n).sum();
        let mut m = Message::new(format!(
            "[{}] runbook `{}` cannot start: {count} problem(s) below; nothing ran and no run was recorded",
            Code::Preflight.as_str(),
            self.runbook.name
        ));
        for (title, lines, _) in &self.sections {
            m = m.detail(format!("{title}:"));
            for l in lines {
                m = m.detail(format!("  {l}"));
            }
        }
        if !self.runbook.preconditions.is_empty() {
            m = m.detail(format!(
                "preconditions ({}): not checked yet; they run (and only read) once everything above is given",
                self.runbook.preconditions.len()
            ));
        }
        let files = if self.missing { params_files(self.file, &self.runbook.name) } else { Vec::new() };
        let help = match files.as_slice() {
            [] => {
                "fix what is listed, then run again (`runbook plan` shows what the run would do)".to_string()
            }
            files => format!(
                "params files next to the runbook: {}",
                files
                    .iter()
                    .map(|f| format!("`--params-file {}`", f.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Err(CliError::Invalid(m.help(help)))
    }
}

/// The params files next to a runbook: `params/NAME.*.toml` in its folder (by its file
/// name and by its `name`), as the user would type them (relative to the same folder).
pub fn params_files(file: &Path, name: &str) -> Vec<PathBuf> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let folder = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder.join("params"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let matches = [stem.as_str(), name]
                .iter()
                .any(|s| !s.is_empty() && n.starts_with(&format!("{s}.")) && n.ends_with(".toml"));
            (matches && e.path().is_file()).then(|| dir.join("params").join(n))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Where a runbook named on the command line that does not exist might be: the same name
/// under the current folder's `runbooks/` and its other folders (one level down), or a close
/// name in the folder it names. At most five, as typed from here.
pub fn candidates(file: &Path) -> Vec<String> {
    let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    let push = |out: &mut Vec<String>, p: PathBuf| {
        let shown = p.strip_prefix("./").unwrap_or(&p).display().to_string();
        if p.is_file() && !out.contains(&shown) && out.len() < 5 {
            out.push(shown);
        }
    };
    push(&mut out, Path::new("runbooks").join(&name));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(".")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs.iter().take(200) {
        push(&mut out, d.join(&name));
    }
    if !out.is_empty() {
        return out;
    }
    // A close name (a typo) in the folder it names, and in `runbooks/`.
    let named = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    for folder in [named, PathBuf::from("runbooks")] {
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        names.sort();
        if let Some(close) = runbook_core::suggest::did_you_mean(&name, names.iter().map(String::as_str)) {
            push(&mut out, folder.join(close));
        }
    }
    out
}

/// Whether an operator is at a terminal to be asked (standard input and error both).
pub fn on_terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// On a terminal only: ask for each missing parameter in turn, typed and checked as a
/// `-p` value or a params file's is (`params::from_text`, `params::check`), its choices
/// listed. A wrong value is asked again (three tries), and so is one that is not UTF-8 or
/// holds a control or format character (the screen did not show what it holds); an empty
/// line stops the asking (what is still missing is reported in the one answer). Secrets are
/// never asked for here. Everything shown goes through `crate::prompt` (made visible).
/// Returns the values given, by name.
pub fn ask_missing(
    runbook: &Runbook,
    missing: &[String],
) -> std::collections::BTreeMap<String, runbook_core::model::ParamValue> {
    use crate::prompt::{Reply, say, text};
    let mut given = std::collections::BTreeMap::new();
    say(&format!(
        "{} required parameter(s) missing; type each value (an empty line stops and lists what is missing):",
        missing.len()
    ));
    'params: for p in missing.iter().filter_map(|m| runbook.params.iter().find(|p| &p.name == m)) {
        let mut what = p.ty.as_str().to_string();
        if let Some(values) = p.allowed.as_ref().filter(|v| !v.is_empty()) {
            let values: Vec<String> = values.iter().map(ToString::to_string).collect();
            what.push_str(&format!(", one of {}", values.join("|")));
        }
        if let Some(d) = &p.description {
            what.push_str(&format!("; {d}"));
        }
        for _ in 0..3 {
            let typed = match text(&format!("? {} ({what}): ", p.name), None) {
                Reply::Chosen(typed) => typed,
                Reply::Closed | Reply::Withdrawn => break 'params,
            };
            if typed.is_empty() {
                break 'params;
            }
            if typed.chars().any(runbook_core::shown::is_hidden) {
                say(&format!(
                    "  not taken: `{typed}` holds a control or format character (an arrow key, a pasted invisible character); type it again"
                ));
                continue;
            }
            match runbook_core::params::from_text(p.ty, &typed)
                .and_then(|v| runbook_core::params::check(p, &v).map(|()| v))
            {
                Ok(v) => {
                    given.insert(p.name.clone(), v);
                    continue 'params;
                }
                Err(e) => say(&format!("  not a valid value: {e}")),
            }
        }
        break;
    }
    given
}
