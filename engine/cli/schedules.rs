//! Schedules files (issue 17): `runbook check` of a schedules file (every schedule, the
//! runbooks they name and their parameters) and `runbook schedules` (the next fire times).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use runbook_core::schedule::{self, CheckOptions, Schedule};
use runbook_core::{Code, Diagnostic, Severity, Source};

use crate::args::ListFormat;
use crate::error::{CliError, CliResult, Exit, Message};
use crate::input::{display, load, load_with_missing_params};
use crate::loader;
use crate::output::out;

/// TEST MODE ONLY: `RUNBOOK_TEST_SCHEDULE_SECONDS=1` lets cron expressions have a leading
/// seconds field, for the integration tests of workers. User files stay minute-based.
pub const TEST_SECONDS_ENV: &str = "RUNBOOK_TEST_SCHEDULE_SECONDS";

fn options() -> CheckOptions {
    CheckOptions { seconds: std::env::var(TEST_SECONDS_ENV).is_ok_and(|v| v == "1") }
}

/// Whether the file at `path` (its text `text`) is a schedules file.
pub fn is_schedules(text: &str) -> bool {
    schedule::is_schedules_file(text)
}

/// Every schedule of a schedules file and every problem of it, of the runbooks it names and
/// of their parameters.
pub fn check_text(path: &Path, text: String) -> (Vec<Schedule>, Vec<Diagnostic>) {
    let shown = display(path);
    let source = Source::toml(shown, text);
    let schedule::Checked { schedules, targets, diagnostics: mut diags } =
        schedule::check(&source, options());
    let folder = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let root = confinement_root(folder);
    // Each runbook is checked once, however many schedules name it.
    let mut runbooks: BTreeMap<PathBuf, Option<Arc<runbook_core::model::Runbook>>> = BTreeMap::new();
    for s in &targets {
        let file = folder.join(&s.runbook.value);
        if let Some(d) = outside(&file, root.as_deref(), &source, s.runbook.span, "runbook", &s.name) {
            diags.push(d);
            continue;
        }
        if !runbooks.contains_key(&file) {
            let checked = load(&file);
            let invalid = checked.diagnostics.iter().any(|d| d.severity == Severity::Error);
            diags.extend(checked.diagnostics);
            runbooks.insert(file.clone(), checked.runbook.filter(|_| !invalid));
        }
        let Some(runbook) = runbooks.get(&file).cloned().flatten() else {
            diags.push(
                Diagnostic::error(
                    Code::ScheduleRunbook,
                    &source,
                    s.runbook.span,
                    format!("the runbook of `schedule.{}` is not a valid runbook", s.name),
                )
                .with_label("reported above")
                .with_help(format!(
                    "fix `{}` first: `runbook check {}`",
                    display(&file),
                    display(&file)
                )),
            );
            continue;
        };
        let not_in_file = match &s.params_file {
            None => None,
            Some(pf) => {
                let pf_path = folder.join(&pf.value);
                if let Some(d) = outside(&pf_path, root.as_deref(), &source, pf.span, "params file", &s.name)
                {
                    diags.push(d);
                    continue;
                }
                match load_with_missing_params(&file, &[], Some(&pf_path), false) {
                    Ok((_, _, missing, problems)) => {
                        diags.extend(problems);
                        Some(missing)
                    }
                    Err(e) => {
                        diags.push(
                            Diagnostic::error(
                                Code::ScheduleRunbook,
                                &source,
                                pf.span,
                                format!("the params file of `schedule.{}` cannot be used: {e}", s.name),
                            )
                            .with_label("cannot be used"),
                        );
                        continue;
                    }
                }
            }
        };
        diags.extend(schedule::check_params(s, &runbook, &source, not_in_file.as_deref()));
    }
    runbook_core::diagnostic::sort(&mut diags);
    (schedules, diags)
}

/// The folder a schedules file's runbooks must live in: the repository that holds it (the
/// nearest folder above it with a `.git`), or its own folder outside any repository.
fn confinement_root(folder: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(folder).ok()?;
    let repo = real.ancestors().find(|a| a.join(".git").exists()).map(Path::to_path_buf);
    Some(repo.unwrap_or(real))
}

/// RB102 when `file` resolves outside `root` (or cannot be resolved at all: then loading it
/// says why, so nothing is reported here).
fn outside(
    file: &Path,
    root: Option<&Path>,
    source: &Arc<Source>,
    span: runbook_core::Span,
    what: &str,
    name: &str,
) -> Option<Diagnostic> {
    let root = root?;
    let real = std::fs::canonicalize(file).ok()?;
    if real.starts_with(root) {
        return None;
    }
    Some(
        Diagnostic::error(
            Code::ScheduleRunbook,
            source,
            span,
            format!("the {what} of `schedule.{name}` is outside `{}`", root.display()),
        )
        .with_label(format!("resolves to `{}`", real.display()))
        .with_help(
            "a schedules file names files of its own repository (or of its folder, outside a repository)",
        ),
    )
}

/// `runbook schedules FILE`: each schedule with its next fire times.
pub fn list(file: &Path, next: usize, from: Option<&str>, format: ListFormat) -> CliResult {
    let shown = display(file);
    let text = loader::read(&shown)
        .map_err(|e| CliError::CannotStart(Message::new(format!("cannot read `{shown}`: {e}"))))?;
    if !is_schedules(&text) {
        return Err(CliError::Usage(
            Message::new(format!("`{shown}` is not a schedules file"))
                .help("a schedules file holds `[schedule.NAME]` tables and no `[runbook]` table"),
        ));
    }
    let (schedules, diags) = check_text(file, text);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(CliError::Diagnostics(diags));
    }
    let now = match from {
        None => DateTime::<Utc>::from(std::time::SystemTime::now()),
        Some(t) => DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)).map_err(|e| {
            CliError::Usage(
                Message::new(format!("`--from {t}` is not an RFC 3339 time: {e}"))
                    .help("write a time such as 2026-03-28T12:00:00Z"),
            )
        })?,
    };
    let next = next.min(schedule::MAX_NEXT);
    match format {
        ListFormat::Json => out!("{}\n", json(&schedules, now, next)),
        ListFormat::Text => out!("{}", text_view(&schedules, now, next)),
    }
    Ok(Exit::Success)
}

fn fire(t: &DateTime<chrono_tz::Tz>) -> (String, String) {
    (
        t.format("%Y-%m-%d %H:%M %Z (%:z)").to_string(),
        t.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn text_view(schedules: &[Schedule], now: DateTime<Utc>, next: usize) -> String {
    let mut out = String::new();
    for (i, s) in schedules.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{}\n", s.target.name));
        out.push_str(&format!("  runbook      {}\n", shown_value(&s.target.runbook.value)));
        if !s.target.params.is_empty() {
            let params: Vec<String> = s
                .target
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", shown_value(&v.value.to_string())))
                .collect();
            out.push_str(&format!("  params       {}\n", params.join(" ")));
        }
        if let Some(pf) = &s.target.params_file {
            out.push_str(&format!("  params file  {}\n", shown_value(&pf.value)));
        }
        out.push_str(&format!("  cron         {} in {}\n", shown_value(&s.cron_text), s.time_zone.name()));
        let catch_up = match s.catch_up {
            schedule::CatchUp::All(n) => format!("all (at most {n})"),
            other => other.as_str().to_string(),
        };
        out.push_str(&format!("  overlap      {}; catch-up {catch_up}\n", s.overlap.as_str()));
        if let Some(w) = s.expect_success_within {
            let remind = s.remind_every.map_or(String::from("once"), |r| format!("every {}", span_text(r)));
            out.push_str(&format!(
                "  expects      a success within {}; notifies {}\n",
                span_text(w),
                if s.notify.is_some() { remind } else { "nobody (no `notify`)".into() }
            ));
        }
        let times = s.next_after(now, next);
        for (j, t) in times.iter().enumerate() {
            let (local, utc) = fire(t);
            let label = if j == 0 { "  next" } else { "      " };
            out.push_str(&format!("{label}         {local} = {utc}\n"));
        }
        if times.is_empty() {
            out.push_str("  next         never (the expression matches no future time)\n");
        }
    }
    out
}

/// A value from the file, on one line whatever it holds (control characters escaped).
fn shown_value(text: &str) -> String {
    text.chars().flat_map(char::escape_debug).collect::<String>().replace("\\\"", "\"").replace("\\'", "'")
}

fn json(schedules: &[Schedule], now: DateTime<Utc>, next: usize) -> String {
    let list: Vec<serde_json::Value> = schedules
        .iter()
        .map(|s| {
            let times: Vec<serde_json::Value> = s
                .next_after(now, next)
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "local": t.to_rfc3339(),
                        "utc": t.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    })
                })
                .collect();
            let params: serde_json::Map<String, serde_json::Value> = s
                .target
                .params
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::to_value(&v.value).unwrap_or(serde_json::Value::Null)))
                .collect();
            serde_json::json!({
                "name": s.target.name,
                "runbook": s.target.runbook.value,
                "params": params,
                "params_file": s.target.params_file.as_ref().map(|p| p.value.clone()),
                "cron": s.cron_text,
                "time_zone": s.time_zone.name(),
                "overlap": s.overlap.as_str(),
                "catch_up": s.catch_up.as_str(),
                "catch_up_limit": match s.catch_up { schedule::CatchUp::All(n) => Some(n), _ => None },
                "expect_success_within": s.expect_success_within.map(span_text),
                "remind_every": s.remind_every.map(span_text),
                "notify": s.notify.is_some(),
                "next": times,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "schedules": list })).unwrap_or_default()
}

/// A window as days, hours and minutes (`31d 2h`): schedules are minute-based.
fn span_text(d: std::time::Duration) -> String {
    let m = d.as_secs() / 60;
    let (days, hours, minutes) = (m / 1440, (m / 60) % 24, m % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() { "0m".into() } else { parts.join(" ") }
}
