//! Schedules files (issue 17): `runbook check` of a schedules file (every schedule, the
//! runbooks they name and their parameters) and `runbook schedules` (the next fire times).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use runbook_core::schedule::{self, CheckOptions, Schedule};
use runbook_core::{Code, Diagnostic, Severity, Source};

use crate::args::ListFormat;
use crate::error::{CliError, CliResult, Exit, Message};
use crate::input::{display, load, load_with_missing_params};
use crate::loader;
use crate::output::{out, outln};

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
    // The inline values of schedules whose parameters hold a secret.
    let mut hidden: Vec<runbook_core::Span> = Vec::new();
    for s in &targets {
        // An absolute path is reported by the core already (RB102): nothing of it is read.
        if Path::new(&s.runbook.value).is_absolute()
            || s.params_file.as_ref().is_some_and(|p| Path::new(&p.value).is_absolute())
        {
            continue;
        }
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
        // A secret's value in an inline parameter is refused before any check quotes it
        // (red team adv17a S8); the diagnostic points at the runbook's line, not the value's.
        if let Err(e) = crate::input::refuse_secrets_in(&runbook, &s.params_as_text(), None) {
            hidden.extend(s.params.values().map(|v| v.span));
            diags.push(
                Diagnostic::error(
                    Code::SecretExposed,
                    &source,
                    s.runbook.span,
                    format!("the parameters of `schedule.{}` are refused: {}", s.name, refusal_text(&e)),
                )
                .with_label("a parameter of this schedule")
                .with_help("parameters are journaled and shown as given; keep secret values out of them"),
            );
            continue;
        }
        let not_in_file = match &s.params_file {
            None => None,
            Some(pf) => {
                let pf_path = folder.join(&pf.value);
                if let Some(d) = outside(&pf_path, root.as_deref(), &source, pf.span, "params file", &s.name)
                {
                    diags.push(d);
                    continue;
                }
                // A params file that the confined reader refuses (a folder, a FIFO...) is a
                // problem of this line of the schedules file (red team adv17a M2).
                if let Some(Err(e)) = root.as_deref().map(|r| loader::read_inside(r, &display(&pf_path))) {
                    diags.push(
                        Diagnostic::error(
                            Code::ScheduleRunbook,
                            &source,
                            pf.span,
                            format!("the params file of `schedule.{}` cannot be read: {e}", s.name),
                        )
                        .with_label("cannot be read")
                        .with_help("name a params file (a regular TOML file) relative to the schedules file"),
                    );
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
    // No diagnostic shows the values refused, even as a line of context.
    if !hidden.is_empty() {
        let mut bytes = source.text.clone().into_bytes();
        for span in &hidden {
            for b in bytes.iter_mut().take(span.end).skip(span.start) {
                if *b != b'\n' {
                    *b = b'*';
                }
            }
        }
        let redacted = Source::new(source.path.clone(), String::from_utf8_lossy(&bytes).into_owned());
        for d in &mut diags {
            if Arc::ptr_eq(&d.source, &source) {
                d.source = redacted.clone();
            }
        }
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

/// The schedules of a schedules file that `check` passes; its problems otherwise (exit 3),
/// or a usage error for a file that is not a schedules file.
fn read_valid(file: &Path) -> Result<Vec<Schedule>, CliError> {
    let shown = display(file);
    let text = loader::read(&shown).map_err(|e| {
        CliError::CannotStart(Message::new(format!("cannot read the schedules file `{shown}`: {e}")))
    })?;
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
    Ok(schedules)
}

/// What `runbook schedules` was asked.
#[derive(Debug)]
pub struct ListArgs<'a> {
    pub file: &'a Path,
    pub next: usize,
    pub at: Option<&'a str>,
    pub format: ListFormat,
    pub state: Option<&'a str>,
}

/// What the store says of one schedule, and whether it is overdue.
#[derive(Debug, Default)]
struct Seen {
    runs: runbook_store::ScheduleRuns,
    overdue: bool,
    /// The notice of its latest overdue alert (issue 17, S3).
    notice: Option<runbook_store::NoticeState>,
    /// Rows found with no journal record since its last fire (`no_record`, issue 17), and
    /// the `rewatched` records of a schedule that never fired (red team adv24 S1, S2).
    warnings: Vec<runbook_core::schedule_journal::ScheduleRecord>,
    /// The watch records of a never-fired schedule that are not believed (adv24 S1, S2):
    /// (record, the start it claims, why).
    watch_doubts: Vec<(u64, String, &'static str)>,
}

/// `runbook schedules FILE`: each schedule with its next fire times, and with a store its
/// last run, last success and whether it is overdue.
pub fn list(args: ListArgs<'_>, color: crate::args::Color) -> CliResult {
    let ListArgs { file, next, at, format, state } = args;
    let schedules = read_valid(file)?;
    let now = match at {
        None => DateTime::<Utc>::from(std::time::SystemTime::now()),
        Some(t) => DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)).map_err(|e| {
            CliError::Usage(
                Message::new(format!("`--at {t}` is not an RFC 3339 time: {e}"))
                    .help("write a time such as 2026-03-28T12:00:00Z"),
            )
        })?,
    };
    let seen = match state {
        None => None,
        Some(state) => Some(seen(&schedules, state, now)?),
    };
    let asked = next.min(schedule::MAX_NEXT);
    // A total bound (red team adv17a S10, promise 5): at most MAX_LISTED fire times in all.
    let next = if schedules.len().saturating_mul(asked) > schedule::MAX_LISTED {
        let per = (schedule::MAX_LISTED / schedules.len().max(1)).max(1);
        crate::output::errln!(
            "note: {} schedules × --next {asked} is more than {} fire times: showing the next {per} of each",
            schedules.len(),
            schedule::MAX_LISTED
        );
        per
    } else {
        asked
    };
    let color = match color {
        crate::args::Color::Always => true,
        crate::args::Color::Never => false,
        crate::args::Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
    };
    // Streamed: one schedule at a time is computed and written.
    match format {
        ListFormat::Json => {
            if schedules.is_empty() {
                out!("{{\n  \"schedules\": []\n}}\n");
            } else {
                out!("{{\n  \"schedules\": [\n");
                for (i, s) in schedules.iter().enumerate() {
                    let item = json_item(s, seen.as_deref().and_then(|all| all.get(i)), now, next);
                    let text = serde_json::to_string_pretty(&item).unwrap_or_default();
                    let indented: Vec<String> = text.lines().map(|l| format!("    {l}")).collect();
                    let comma = if i + 1 < schedules.len() { "," } else { "" };
                    out!("{}{comma}\n", indented.join("\n"));
                }
                out!("  ]\n}}\n");
            }
        }
        ListFormat::Text => {
            for (i, s) in schedules.iter().enumerate() {
                if i > 0 {
                    out!("\n");
                }
                out!("{}", text_view(s, seen.as_deref().and_then(|all| all.get(i)), now, next, color));
            }
        }
    }
    Ok(Exit::Success)
}

/// The store's view of every schedule, read only.
fn seen(schedules: &[Schedule], state: &str, now: DateTime<Utc>) -> Result<Vec<Seen>, CliError> {
    let location = crate::state::location(Some(state));
    crate::runtime::block_on(async {
        let store = match runbook_store::Store::open_read_only(&location).await {
            Ok(Some(store)) => store,
            // No store yet: nothing ran.
            Ok(None) => return Ok(schedules.iter().map(|_| Seen::default()).collect()),
            Err(source) => {
                return Err(CliError::StoreAt {
                    doing: crate::error::StoreAction::Open,
                    location: location.shown(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for s in schedules {
            let until = (now + SKEW).timestamp_millis();
            let runs = store.schedule_runs_until(&s.target.name, until).await.map_err(|source| {
                CliError::StoreAt {
                    doing: crate::error::StoreAction::Open,
                    location: location.shown(),
                    source,
                }
            })?;
            let parse = |t: &Option<String>| {
                t.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
            };
            let first = runs.first_due_ms.and_then(schedule::utc_from_millis);
            let overdue = s.overdue(parse(&runs.last_success), first, now);
            // A store older than migration 10 has no attempts to show: nothing is said.
            let notice = store.notice_state(&s.target.name).await.ok().flatten();
            // A store older than migration 8 has no journal: nothing to say.
            let warnings = store.schedule_warnings(&s.target.name).await.unwrap_or_default();
            let watch_doubts = match runs.last_due_ms {
                Some(_) => Vec::new(),
                None => watch_doubts(&store, &s.target.name, now).await,
            };
            out.push(Seen { runs, overdue, notice, warnings, watch_doubts });
        }
        Ok(out)
    })
}

/// The boot clock's reading (Linux `CLOCK_BOOTTIME`: time since boot, suspends included,
/// never stepped), if the system has one.
fn boot_clock() -> Option<std::time::Duration> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u32::try_from(t.tv_nsec()).ok()?;
    Some(std::time::Duration::new(secs, nanos))
}

/// The watch records of never-fired schedule `name` a worker reading at `now` would not
/// believe (`schedule::first_watch`, red team adv24 S1, S2). Nothing for a store that cannot
/// say (older than the journal).
async fn watch_doubts(
    store: &runbook_store::Store,
    name: &str,
    now: DateTime<Utc>,
) -> Vec<(u64, String, &'static str)> {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc));
    let records = store.watch_records(name).await.unwrap_or_default();
    let claims: Vec<(u64, schedule::WatchClaim)> = records
        .iter()
        .filter_map(|r| {
            let since = runbook_core::schedule_journal::watch_claimed(r).and_then(parse)?;
            let recorded = parse(&r.ts).unwrap_or(since);
            Some((r.seq, schedule::WatchClaim { since, recorded, mine: false }))
        })
        .collect();
    let began = store.began_ms().await.ok().flatten().and_then(schedule::utc_from_millis);
    claims
        .iter()
        .filter_map(|(seq, c)| {
            let doubt = schedule::watch_doubt(c, began, now, now)?;
            Some((*seq, c.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), doubt.reason()))
        })
        .collect()
}

fn fire(t: &DateTime<chrono_tz::Tz>) -> (String, String) {
    (
        t.format("%Y-%m-%d %H:%M %Z (%:z)").to_string(),
        t.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn text_view(s: &Schedule, seen: Option<&Seen>, now: DateTime<Utc>, next: usize, color: bool) -> String {
    let mut out = String::new();
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
    if let Some(seen) = seen {
        let last = seen
            .runs
            .last_run
            .as_ref()
            .map_or("none".to_string(), |(id, status, _)| format!("{id} ({status})"));
        out.push_str(&format!("  last run     {last}\n"));
        out.push_str(&format!("  last success {}\n", seen.runs.last_success.as_deref().unwrap_or("none")));
        if let Some((due, why)) = &seen.runs.last_refused {
            out.push_str(&format!("  last refused {}: {}\n", due_text(*due), shown_value(why)));
        }
        if let Some((due, why)) = &seen.runs.last_missed {
            out.push_str(&format!("  last missed  {}: {}\n", due_text(*due), shown_value(why)));
        }
        if seen.overdue {
            let window = s.expect_success_within.map(span_text).unwrap_or_default();
            let word = if color { "\x1b[1;31mOVERDUE\x1b[0m" } else { "OVERDUE" };
            out.push_str(&format!("  {word}      no successful run within {window}\n"));
        }
        if let Some(n) = &seen.notice
            && s.notify.is_some()
        {
            out.push_str(&format!("  notice       {}\n", notice_text(n)));
        }
        for w in &seen.warnings {
            let word = if color { "\x1b[1;31mWARNING\x1b[0m" } else { "WARNING" };
            out.push_str(&format!("  {word}      {} (record {}, {})\n", w.event.summary(), w.seq, w.ts));
        }
        for (seq, since, why) in &seen.watch_doubts {
            let word = if color { "\x1b[1;31mWARNING\x1b[0m" } else { "WARNING" };
            out.push_str(&format!(
                "  {word}      watch record {seq} says a worker watched it from {since}: not believed, {why}\n"
            ));
        }
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
    out
}

/// The delivery of an overdue notice, in one line: delivered, or how many attempts failed,
/// the last failure (fixed words) and an attempt in flight.
fn notice_text(n: &runbook_store::NoticeState) -> String {
    if let Some(attempt) = n.delivered {
        return match attempt {
            0 => "overdue notice delivered".to_string(),
            a => format!("overdue notice delivered (attempt {a})"),
        };
    }
    let mut text = match (n.failed, &n.last_failure) {
        (0, _) => "overdue, notice not delivered yet".to_string(),
        (1, Some(why)) => {
            format!("overdue, notice not delivered: 1 attempt failed, last {}", shown_value(why))
        }
        (k, Some(why)) => {
            format!("overdue, notice not delivered: {k} attempts failed, last {}", shown_value(why))
        }
        (k, None) => format!("overdue, notice not delivered: {k} attempts failed"),
    };
    if let Some(a) = n.in_flight {
        text.push_str(&format!("; attempt {a} in flight"));
    }
    text
}

/// A value from the file, on one line whatever it holds (control characters escaped).
fn shown_value(text: &str) -> String {
    text.chars().flat_map(char::escape_debug).collect::<String>().replace("\\\"", "\"").replace("\\'", "'")
}

fn json_item(s: &Schedule, seen: Option<&Seen>, now: DateTime<Utc>, next: usize) -> serde_json::Value {
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
        "last_run": seen.and_then(|x| x.runs.last_run.as_ref()).map(|(id, status, started)| {
            serde_json::json!({ "run_id": id, "status": status, "started_at": started })
        }),
        "last_success": seen.and_then(|x| x.runs.last_success.clone()),
        "overdue": seen.map(|x| x.overdue),
        "last_missed": seen.and_then(|x| x.runs.last_missed.as_ref()).map(|(due, why)| {
            serde_json::json!({ "due": due_text(*due), "reason": why })
        }),
        "last_refused": seen.and_then(|x| x.runs.last_refused.as_ref()).map(|(due, why)| {
            serde_json::json!({ "due": due_text(*due), "reason": why })
        }),
        "warnings": seen.map(|x| x.warnings.iter().map(warning_json).collect::<Vec<_>>()),
        "watch_doubts": seen.map(|x| x.watch_doubts.iter().map(|(seq, since, why)| {
            serde_json::json!({ "record": seq, "since": since, "reason": why })
        }).collect::<Vec<_>>()),
        "notice": seen.and_then(|x| x.notice.as_ref()).filter(|_| s.notify.is_some()).map(|n| {
            serde_json::json!({
                "overdue_since": due_text(n.since_ms),
                "reminder": n.reminder,
                "delivered": n.delivered.is_some(),
                "delivered_attempt": n.delivered,
                "failed_attempts": n.failed,
                "last_failure": n.last_failure,
                "in_flight_attempt": n.in_flight,
            })
        }),
    })
}

use runbook_core::schedule::due_text;

/// A `no_record` record as `schedules --state --format json` shows it.
fn warning_json(r: &runbook_core::schedule_journal::ScheduleRecord) -> serde_json::Value {
    let (table, due, reminder) = match &r.event {
        runbook_core::schedule_journal::ScheduleEvent::NoRecord { table, due, reminder, .. } => {
            (Some(table.as_str()), Some(due.as_str()), *reminder)
        }
        _ => (None, None, None),
    };
    serde_json::json!({
        "seq": r.seq,
        "recorded_at": r.ts,
        "table": table,
        "due": due,
        "reminder": reminder,
        "worker": r.event.worker(),
        "text": r.event.summary(),
    })
}

use runbook_core::schedule::span_text;

/// A due time or success recorded more than this after the reader's now was recorded by a
/// clock that ran ahead: it is not the cursor of the fires, nor a success (adv17a S3).
const SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// A due time seen less than this late is not missed (a worker polls): `catch-up = "none"`
/// still fires it.
const LATE: std::time::Duration = std::time::Duration::from_secs(60);

/// The schedules a worker fires (`runbook worker --schedules FILE`).
///
/// Everything a fire runs is pinned when the worker starts (red team adv17a S1, promise 2):
/// the schedules file is read once and never reloaded, and each schedule's plan is made once,
/// from its runbook and params file as the confined reader reads them; every file of that
/// plan (runbooks, included runbooks, the params file, SQL scripts, CA files) is pinned by
/// its digest. A fire queues that plan, after reading each pinned file again through the
/// confined reader ([`loader::read_inside`]): a file that changed, moved out of the
/// repository or cannot be read refuses the fire (skipped, RB104) and the schedule's
/// notification is sent once. Restarting the worker (after review) takes the new version.
#[derive(Debug)]
pub struct Firing {
    /// The repository (or folder) the schedules file's runbooks must be read from.
    root: Option<PathBuf>,
    schedules: Vec<Schedule>,
    /// For each schedule (same order), its plan pinned at the worker's start, or why none.
    pinned: Vec<Result<Pinned, String>>,
    /// When this worker started (before its schedules were read and pinned, which takes a
    /// moment): a schedule that never fired fires its due times after it, or after the
    /// first time a worker watched it when that was earlier ([`schedule::count_from`]).
    since: DateTime<Utc>,
    /// The same instant on the monotonic clock: a wall clock stepped back after the start
    /// (NTP's first step at boot, a VM restored from a snapshot) must not put the start in
    /// the future, where no due time would come before it (red team adv23 F3).
    started: std::time::Instant,
    /// The same instant on the boot clock (Linux `CLOCK_BOOTTIME`: it counts a suspended
    /// machine's time, and no step of the wall clock), when the system has one.
    boot_start: Option<std::time::Duration>,
    /// The schedules whose change this worker has already notified.
    changed: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// How late a due time may be seen and still fire with `catch-up = "none"`: at least
    /// [`LATE`], and twice the worker's poll interval (adv17a S9).
    late: std::time::Duration,
    /// The schedules whose due times recorded in the future this worker has warned of
    /// (once each).
    warned_future: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// How often this worker's schedule pass runs: a failed notice is tried again no sooner.
    poll: std::time::Duration,
    /// The watch records of each schedule none of whose due times was taken yet (red team
    /// adv23 F2, adv24 S1/S2): read once, then judged at every pass (a record from the
    /// future is believed once its time came); read again after a `rewatched` attempt.
    watched: std::sync::Mutex<BTreeMap<String, Vec<runbook_core::schedule_journal::ScheduleRecord>>>,
    /// When the store began (its first migration), once read.
    began: std::sync::Mutex<Option<Option<DateTime<Utc>>>>,
}

/// A schedule's run as pinned at the worker's start.
#[derive(Debug)]
struct Pinned {
    runbook: Arc<runbook_core::model::Runbook>,
    values: BTreeMap<String, runbook_core::model::ParamValue>,
    /// The runbook file as the plan names it.
    file: PathBuf,
    /// The pinned plan's JSON text: what every fire queues.
    plan: String,
    /// Every file of the plan (path as the plan names it, SHA-256).
    digests: Vec<(String, String)>,
}

/// The reason a fire is refused when a pinned file changed (RB104).
const CHANGED: &str =
    "the runbook or its params file changed since the worker started: restart the worker after review";

impl Firing {
    /// The schedules of `file`, refused with every problem if `check` would refuse it, each
    /// with its plan pinned (or the reason it cannot be, printed once here), for a worker
    /// that started at `since`: a due time that passes while the plans are pinned still fires.
    pub fn load(
        file: &Path,
        since: std::time::SystemTime,
        started: std::time::Instant,
    ) -> Result<Firing, CliError> {
        let schedules = read_valid(file)?;
        let folder =
            file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let root = confinement_root(&folder);
        let pinned = schedules
            .iter()
            .map(|s| {
                pin(&folder, root.as_deref(), s).inspect_err(|why| {
                    crate::output::errln!("warning: schedule `{}` will not fire: {why}", s.target.name);
                })
            })
            .collect();
        Ok(Firing {
            root,
            schedules,
            pinned,
            since: DateTime::<Utc>::from(since),
            boot_start: boot_clock().and_then(|b| b.checked_sub(started.elapsed())),
            started,
            changed: std::sync::Mutex::default(),
            late: LATE,
            warned_future: std::sync::Mutex::default(),
            poll: std::time::Duration::from_secs(1),
            watched: std::sync::Mutex::default(),
            began: std::sync::Mutex::default(),
        })
    }

    /// The lateness window for a worker polling every `poll`: never shorter than two polls.
    #[must_use]
    pub fn polling_every(mut self, poll: std::time::Duration) -> Firing {
        self.late = LATE.max(poll.saturating_mul(2));
        self.poll = poll;
        self
    }

    /// Fire every due time of every schedule that the store has not seen fired: the store
    /// decides which worker fires each (one row per schedule and due time).
    pub async fn fire_due(
        &self,
        store: &runbook_store::Store,
        worker: &str,
        location: &runbook_store::Location,
    ) {
        let now = DateTime::<Utc>::from(std::time::SystemTime::now());
        // The worker's start on today's wall clock: now less the time passed since, as the
        // boot clock counts it. A start read from a clock stepped back since (adv23 F3) or
        // forward since (a host that booted behind, then NTP's step; red team adv24 S2) is
        // wrong either way. The boot clock counts a suspended or paused machine's time
        // (the monotonic clock does not: its start would move later by the pause, and a due
        // time in the pause would be skipped); without it, the earlier of the start read
        // then and now less the monotonic time, as before.
        let since = match self.boot_start.and_then(|b| boot_clock().and_then(|n| n.checked_sub(b))) {
            Some(passed) => chrono::Duration::from_std(passed)
                .ok()
                .and_then(|passed| now.checked_sub_signed(passed))
                .unwrap_or(self.since),
            None => chrono::Duration::from_std(self.started.elapsed())
                .ok()
                .and_then(|passed| now.checked_sub_signed(passed))
                .map_or(self.since, |start| start.min(self.since)),
        };
        for (s, pinned) in self.schedules.iter().zip(&self.pinned) {
            let runs = match store.schedule_runs_until(&s.target.name, (now + SKEW).timestamp_millis()).await
            {
                Ok(r) => r,
                Err(e) => {
                    crate::output::errln!(
                        "warning: cannot read the fires of schedule `{}`: {e}",
                        s.target.name
                    );
                    continue;
                }
            };
            // Two files sharing a store and a name (started at the same time): this worker
            // stops firing the schedule, and says so once; nothing is recorded for it.
            if let Ok(p) = pinned
                && store
                    .schedule_runbooks(&s.target.name)
                    .await
                    .is_ok_and(|r| r.iter().any(|r| *r != p.runbook.name))
            {
                let first = self
                    .changed
                    .lock()
                    .map(|mut seen| seen.insert(format!("{}\0conflict", s.target.name)))
                    .unwrap_or(false);
                if first {
                    crate::output::errln!(
                        "warning: schedule `{}` is also fired in this store for another runbook: this worker no longer fires it; rename one of the schedules",
                        s.target.name
                    );
                }
                continue;
            }
            if let Some(ahead) = runs.future_due_ms
                && self.warned_future.lock().is_ok_and(|mut w| w.insert(s.target.name.clone()))
            {
                crate::output::errln!(
                    "warning: schedule `{}` has a due time recorded in the future ({}): a clock ran ahead; it fires from now, and the due times it recorded do not fire again",
                    s.target.name,
                    due_text(ahead)
                );
            }
            // The cursor is the latest due time taken: a row with no journal record (written
            // past the store's trigger) would stop due times in silence (issue 17, S1).
            if let Some(last) = runs.last_due_ms
                && store.due_time_recorded(&s.target.name, last).await.is_ok_and(|r| !r)
                && self.warned_future.lock().is_ok_and(|mut w| w.insert(format!("{}\0{last}", s.target.name)))
            {
                taken(store, &s.target.name, worker, last, &due_text(last)).await;
            }
            // A schedule none of whose due times was taken counts from the first time a
            // worker watched it, not from this worker's start: a due time between one
            // worker's stop and the next one's start is caught up (red team adv23 F2).
            let last = runs.last_due_ms.and_then(schedule::utc_from_millis);
            let first_watch = match last {
                Some(_) => None,
                None => self.first_watch(store, worker, &s.target.name, since, now).await,
            };
            let from = schedule::count_from(last, first_watch, since);
            let due = s.due_search(from, now, self.late);
            // A due time `latest` or `all` leaves out only because a pass came a moment
            // late is not missed; one older than the lateness window is.
            let late = chrono::Duration::from_std(self.late).unwrap_or(chrono::Duration::MAX);
            if let Some(dropped) = due.dropped
                && (s.catch_up == schedule::CatchUp::None || now.signed_duration_since(dropped) > late)
            {
                self.record_missed(store, worker, s, dropped, from).await;
            }
            if !due.complete {
                crate::output::errln!(
                    "warning: schedule `{}`: the search of its due times since {} ran out of steps; the latest may be missing",
                    s.target.name,
                    from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            for due in due.times {
                self.fire_one(store, worker, location, s, pinned, due).await;
            }
            // The dead-man's switch of a schedule that never fired is measured from the same
            // first watch: every worker agrees on it, and a restart does not postpone it.
            let start = first_watch.map_or(since, |w| w.min(since));
            watch(store, worker, s, &runs, start, now, &self.warned_future).await;
            deliver(store, worker, s, self.poll).await;
        }
    }

    /// When a worker first watched schedule `name` in this store, as far as this worker
    /// believes it: the earliest of the journal's watch records (its first record, a
    /// `watched` record this worker appends with its start `since` when the journal is
    /// empty, red team adv23 F2; and any `rewatched` record) that is neither later than now
    /// nor earlier than the store's beginning (`schedule::first_watch`, red team adv24 S1,
    /// S2). When none is believed, this worker says so (once per record) and appends a
    /// `rewatched` record with its own start, so that every later worker counts from an
    /// instant believed. `None` when none is believed or the store cannot say (printed).
    async fn first_watch(
        &self,
        store: &runbook_store::Store,
        worker: &str,
        name: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc));
        let since_text = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let cached = self.watched.lock().ok().and_then(|w| w.get(name).cloned());
        let records = match cached {
            Some(r) => r,
            None => {
                let read = match store.watch_schedule(name, &since_text, worker, &at).await {
                    Ok(_) => store.watch_records(name).await,
                    Err(e) => Err(e),
                };
                match read {
                    Ok(r) => r,
                    Err(e) => {
                        crate::output::errln!(
                            "warning: cannot record that this worker watches schedule `{name}`: {e}"
                        );
                        return None;
                    }
                }
            }
        };
        let claims: Vec<schedule::WatchClaim> = records
            .iter()
            .filter_map(|r| {
                let claimed = runbook_core::schedule_journal::watch_claimed(r).and_then(parse)?;
                Some(schedule::WatchClaim {
                    since: claimed,
                    recorded: parse(&r.ts).unwrap_or(claimed),
                    mine: r.event.worker() == worker,
                })
            })
            .collect();
        let began = self.began(store).await;
        let judged = schedule::first_watch(&claims, began, since, now);
        let mut doubts = Vec::new();
        for &(i, doubt) in &judged.doubted {
            let (Some(r), Some(c)) = (records.get(i), claims.get(i)) else { continue };
            let shown = c.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            doubts.push(format!("record {} ({shown}): {}", r.seq, doubt.reason()));
            if self.warned_future.lock().is_ok_and(|mut w| w.insert(format!("{name}\0watch\0{}", r.seq))) {
                crate::output::errln!(
                    "warning: schedule `{name}`: its watch record {} says a worker watched it from {shown}, which is not believed: {}; its due times count from the earliest watch believed, else from this worker's start",
                    r.seq,
                    doubt.reason()
                );
            }
        }
        if judged.from.is_none()
            && !judged.rewatch
            && self.warned_future.lock().is_ok_and(|mut w| w.insert(format!("{name}\0own-start")))
        {
            crate::output::errln!(
                "warning: schedule `{name}`: this worker's own start ({since_text}) is earlier than the state store's creation or later than its clock: its clock is wrong; it counts from its own start and records no watch"
            );
        }
        if judged.rewatch {
            let after = records.last().map_or(0, |r| r.seq);
            let doubt = format!("no watch record before is believed: {}", doubts.join("; "));
            match store.rewatch_schedule(name, after, &since_text, &doubt, worker, &at).await {
                Ok(Some(r)) => {
                    crate::output::errln!(
                        "warning: schedule `{name}`: watched again from {since_text} (record {}): its due times count from here until one is taken",
                        r.seq
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    crate::output::errln!(
                        "warning: cannot record that this worker watches schedule `{name}` again: {e}"
                    );
                }
            }
            // Read again at the next pass: this record, or another worker's.
            if let Ok(mut w) = self.watched.lock() {
                w.remove(name);
            }
            return None;
        }
        if let Ok(mut w) = self.watched.lock() {
            w.insert(name.to_string(), records);
        }
        judged.from
    }

    /// When the store began (its first migration), read once: no watch is believed earlier.
    async fn began(&self, store: &runbook_store::Store) -> Option<DateTime<Utc>> {
        if let Some(b) = self.began.lock().ok().and_then(|b| *b) {
            return b;
        }
        let read = store.began_ms().await.ok().map(|ms| ms.and_then(schedule::utc_from_millis));
        if let (Some(b), Ok(mut cell)) = (read, self.began.lock()) {
            *cell = Some(b);
        }
        read.flatten()
    }

    /// Record the latest due time the catch-up policy does not fire as skipped, with how
    /// many were left out and why: a dropped due time is never silent (adv17a S9).
    async fn record_missed(
        &self,
        store: &runbook_store::Store,
        worker: &str,
        s: &Schedule,
        due: DateTime<Utc>,
        from: DateTime<Utc>,
    ) {
        let name = &s.target.name;
        let why = match s.catch_up {
            schedule::CatchUp::None => {
                format!("more than {} late (catch-up = \"none\")", humantime::format_duration(self.late))
            }
            schedule::CatchUp::Latest => "a later due time fires instead (catch-up = \"latest\")".to_string(),
            schedule::CatchUp::All(n) => {
                format!("beyond the latest {n} (catch-up = \"all\", catch-up-limit)")
            }
        };
        let note = format!(
            "{}the due times after {} up to this one were not fired: {why}",
            runbook_store::MISSED,
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let due = Due::new(due);
        record_skipped(store, &due.fire(name, worker), &due.text, note).await;
    }

    async fn fire_one(
        &self,
        store: &runbook_store::Store,
        worker: &str,
        location: &runbook_store::Location,
        s: &Schedule,
        pinned: &Result<Pinned, String>,
        due: DateTime<Utc>,
    ) {
        let name = &s.target.name;
        let due = Due::new(due);
        let fire = due.fire(name, worker);
        let until = (DateTime::<Utc>::from(std::time::SystemTime::now()) + SKEW).timestamp_millis();
        let active = match store.schedule_runs_until(name, until).await {
            Ok(r) if r.active => r.last_run.map(|(id, ..)| id),
            Ok(_) => None,
            Err(e) => {
                crate::output::errln!("warning: cannot read the runs of schedule `{name}`: {e}");
                return;
            }
        };
        let (fire, due_text) = (&fire, due.text.as_str());
        let skip = |note: String| record_skipped(store, fire, due_text, note);
        // Only a run still queued can be taken back (a running one finishes), and only in
        // the transaction that queues its replacement: a due time that cannot be queued
        // keeps it (adv17a S11).
        let replaced = match (&active, s.overlap) {
            (Some(id), schedule::Overlap::Skip) => {
                return skip(format!(
                    "run {id} of the schedule is still queued or running (overlap = \"skip\")"
                ))
                .await;
            }
            (Some(id), schedule::Overlap::Replace) => {
                Some((id.as_str(), format!("replaced by the run of schedule {name} due {due_text}")))
            }
            (Some(_), schedule::Overlap::Queue) | (None, _) => None,
        };
        let pinned = match pinned {
            Ok(p) => p,
            Err(why) => return skip(format!("{}{}", runbook_store::NOT_QUEUED, first_line(why))).await,
        };
        if !unchanged(self.root.as_deref(), pinned) {
            skip(format!("not queued: {}: {CHANGED}", Code::ScheduleChanged)).await;
            let first = self.changed.lock().map(|mut seen| seen.insert(name.clone())).unwrap_or(false);
            if first {
                let text = format!("runbook: schedule `{name}` was not fired: {CHANGED}");
                notify(
                    store,
                    worker,
                    s,
                    "change",
                    serde_json::json!({ "text": text, "schedule": name, "changed": true }),
                )
                .await;
            }
            return;
        }
        // Off the worker's one thread: reading the secrets may run a helper (up to its
        // timeout) and holding the parameters to them builds a redactor (seconds for a large
        // secret); the heartbeat and the claims go on meanwhile (red team adv23 F4: another
        // worker took the running run for a dead worker's).
        let (runbook, values, file, at) =
            (pinned.runbook.clone(), pinned.values.clone(), pinned.file.clone(), location.clone());
        let vetted = tokio::task::spawn_blocking(move || {
            crate::queued::vet(&runbook, &values, &file, false, &at).map(drop)
        })
        .await;
        match vetted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return skip(format!("not queued: {}", first_line(&note_of(&e)))).await,
            Err(_) => return skip("not queued: the check of its secrets stopped".to_string()).await,
        }
        let run_id = crate::run::new_run_id();
        let operator = crate::identity::operator();
        let job = runbook_store::Submission {
            run_id: &run_id,
            runbook: &pinned.runbook.name,
            plan: &pinned.plan,
            labels: &[],
            submitted_by: &operator,
            submitted_at: &due.fired_at,
        };
        let replaced = replaced.as_ref().map(|(id, why)| (*id, why.as_str()));
        match store.fire_in_place_of(fire, Some(&job), "", replaced).await {
            Ok(runbook_store::Fired::Queued) => outln!("schedule {name} due {due_text}: queued run {run_id}"),
            Ok(runbook_store::Fired::Taken) => taken(store, name, fire.fired_by, fire.due_ms, due_text).await,
            Ok(_) => {}
            Err(e) => crate::output::errln!("warning: cannot fire schedule `{name}` due {due_text}: {e}"),
        }
    }

    /// The schedules whose name the store already fires for another runbook (red team
    /// adv17a S4: a name is one schedule in a store, whatever file defines it), each as a
    /// sentence naming both runbooks.
    pub async fn conflicts(&self, store: &runbook_store::Store) -> Vec<String> {
        let mut out = Vec::new();
        for (s, pinned) in self.schedules.iter().zip(&self.pinned) {
            let Ok(pinned) = pinned else { continue };
            let mine = &pinned.runbook.name;
            let Ok(theirs) = store.schedule_runbooks(&s.target.name).await else { continue };
            if let Some(other) = theirs.iter().find(|r| *r != mine) {
                out.push(format!(
                    "schedule `{}` is already fired in this store for runbook `{other}`, not `{mine}`: another schedules file uses the name",
                    s.target.name
                ));
            }
        }
        out
    }
}

/// Whether every file of the pinned plan still reads, through the confined reader under
/// `root`, as it was pinned.
fn unchanged(root: Option<&Path>, pinned: &Pinned) -> bool {
    let Some(root) = root else { return false };
    pinned.digests.iter().all(|(path, sha)| {
        loader::read_inside(root, path).is_ok_and(|b| runbook_core::plan::sha256_hex_bytes(&b) == *sha)
    })
}

/// The plan of schedule `s`, made once from its runbook and params file as the confined
/// reader reads them, with the digests of every file it reads; or why it cannot be made
/// (a fixed reason: no parameter value is quoted).
fn pin(folder: &Path, root: Option<&Path>, s: &Schedule) -> Result<Pinned, String> {
    let root = root.ok_or_else(|| {
        format!("{}: the folder of the schedules file cannot be resolved", Code::ScheduleRunbook)
    })?;
    let file = folder.join(&s.target.runbook.value);
    let params_file = s.target.params_file.as_ref().map(|p| folder.join(&p.value));
    let confined = |path: &Path| {
        loader::read_inside(root, &display(path)).map(|b| runbook_core::plan::sha256_hex_bytes(&b)).map_err(
            |e| {
                format!(
                    "{}: `{}` cannot be read inside `{}`: {e}",
                    Code::ScheduleRunbook,
                    display(path),
                    root.display()
                )
            },
        )
    };
    let before = confined(&file)?;
    let params_before = params_file.as_deref().map(confined).transpose()?;
    let (runbook, values, plan) =
        crate::queued::plan_of(&file, &s.target.params_as_text(), params_file.as_deref(), false)
            .map_err(|e| note_of(&e))?;
    let doc: serde_json::Value =
        serde_json::from_str(&plan).map_err(|e| format!("cannot read the plan made: {e}"))?;
    let digests: Vec<(String, String)> = ["files", "reads"]
        .iter()
        .flat_map(|k| doc[k].as_array().cloned().unwrap_or_default())
        .filter_map(|f| Some((f["path"].as_str()?.to_string(), f["sha256"].as_str()?.to_string())))
        .collect();
    let pinned = Pinned { runbook, values, file, plan, digests };
    // The plan was made from the bytes the confined reader read, and nothing moved since.
    let has = |sha: &str| pinned.digests.iter().any(|(_, d)| d == sha);
    if !has(&before) || params_before.as_deref().is_some_and(|p| !has(p)) || !unchanged(Some(root), &pinned) {
        return Err(format!("{}: {CHANGED}", Code::ScheduleChanged));
    }
    Ok(pinned)
}

/// What a refusal says where it is printed and recorded for a schedule: a problem with the
/// runbook or its values as its code and a fixed reason (diagnostics quote values; a
/// schedule's note is stored), any other refusal as its message (they quote no value).
fn note_of(e: &CliError) -> String {
    match e {
        CliError::Diagnostics(diags) => {
            let codes: std::collections::BTreeSet<String> =
                diags.iter().map(|d| d.code.to_string()).collect();
            format!(
                "{}: the runbook or its parameters do not plan (`runbook check` of the schedules file says where)",
                codes.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
        other => other.render(false),
    }
}

/// A due time as the worker that takes it records it: the one constructor of every
/// [`runbook_store::Fire`] and of the due time's text (review finding D7).
struct Due {
    ms: i64,
    /// RFC 3339 UTC, seconds: as printed and journaled.
    text: String,
    /// When this worker took it (RFC 3339, milliseconds).
    fired_at: String,
}

impl Due {
    fn new(due: DateTime<Utc>) -> Due {
        Due {
            ms: due.timestamp_millis(),
            text: due_text(due.timestamp_millis()),
            fired_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        }
    }

    fn fire<'a>(&'a self, schedule: &'a str, worker: &'a str) -> runbook_store::Fire<'a> {
        runbook_store::Fire { schedule, due_ms: self.ms, fired_by: worker, fired_at: &self.fired_at }
    }
}

/// Record a due time as skipped with `note`, and print it when this worker recorded it.
async fn record_skipped(
    store: &runbook_store::Store,
    fire: &runbook_store::Fire<'_>,
    due_text: &str,
    note: String,
) {
    let name = fire.schedule;
    match store.fire(fire, None, &note).await {
        Ok(runbook_store::Fired::Skipped) => outln!("schedule {name} due {due_text}: skipped: {note}"),
        Ok(runbook_store::Fired::Taken) => taken(store, name, fire.fired_by, fire.due_ms, due_text).await,
        Ok(_) => {}
        Err(e) => crate::output::errln!("warning: cannot record schedule `{name}` due {due_text}: {e}"),
    }
}

/// A due time another writer took: it must have its record in the schedule's journal
/// (the store's trigger refuses a row without one; only its owner can pass it). One that
/// has none is said loudly, never skipped in silence (issue 17, S1), and journaled as a
/// `no_record` record by the first worker that sees it (`schedules --state` shows it).
async fn taken(store: &runbook_store::Store, name: &str, worker: &str, due_ms: i64, due_text: &str) {
    match store.due_time_recorded(name, due_ms).await {
        Ok(true) => {}
        Ok(false) => {
            crate::output::errln!(
                "warning: schedule `{name}` due {due_text} did not fire: a row of schedule_fires takes it with no record in the schedule's journal (written outside runbook?); `runbook audit verify` names it"
            );
            let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            let table = runbook_core::schedule_journal::FIRES_TABLE;
            if let Err(e) = store.record_no_record(name, table, due_ms, None, worker, &at).await {
                crate::output::errln!("warning: cannot journal it in the journal of schedule `{name}`: {e}");
            }
        }
        Err(e) => crate::output::errln!("warning: cannot read the journal of schedule `{name}`: {e}"),
    }
}

/// An overdue notice another writer took: it must have its `overdue` record (the store's
/// trigger, migration 14, refuses a row without one). One that has none is said loudly,
/// once per worker, and journaled once (`no_record`): the notice was silenced.
async fn alert_taken(
    store: &runbook_store::Store,
    name: &str,
    worker: &str,
    since_ms: i64,
    reminder: i64,
    warned: &std::sync::Mutex<std::collections::BTreeSet<String>>,
) {
    match store.alert_recorded(name, since_ms, reminder).await {
        Ok(true) => {}
        Ok(false) => {
            let first =
                warned.lock().is_ok_and(|mut w| w.insert(format!("{name}\0alert\0{since_ms}\0{reminder}")));
            // Once per worker (the store journals it once in all: the first worker's).
            if !first {
                return;
            }
            crate::output::errln!(
                "warning: schedule `{name}`: the overdue notice {reminder} since {} was not taken by a worker: a row of schedule_alerts takes it with no record in the schedule's journal (written outside runbook?); `runbook audit verify` names it",
                due_text(since_ms)
            );
            let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            let table = runbook_core::schedule_journal::ALERTS_TABLE;
            if let Err(e) = store.record_no_record(name, table, since_ms, Some(reminder), worker, &at).await {
                crate::output::errln!("warning: cannot journal it in the journal of schedule `{name}`: {e}");
            }
        }
        Err(e) => crate::output::errln!("warning: cannot read the journal of schedule `{name}`: {e}"),
    }
}

/// The dead-man's switch: when `s` is overdue, the one worker whose claim of this
/// notification the store accepts sends it (once per overdue period, and once per
/// `remind-every` after that).
async fn watch(
    store: &runbook_store::Store,
    worker: &str,
    s: &Schedule,
    runs: &runbook_store::ScheduleRuns,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    warned: &std::sync::Mutex<std::collections::BTreeSet<String>>,
) {
    let parse = |t: &Option<String>| {
        t.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
    };
    // Measured from the last success, else from the first due time the store recorded in
    // any outcome (a refused fire counts), else from this worker's start: a schedule whose
    // every fire is refused, or that never fires, still goes overdue (adv17a S2).
    let success = parse(&runs.last_success);
    let first = Some(runs.first_due_ms.and_then(schedule::utc_from_millis).unwrap_or(started));
    let (Some(window), Some(since)) = (s.expect_success_within, success.or(first)) else { return };
    if !s.overdue(success, first, now) {
        // Back in time after an overdue notice: the one worker whose claim the store takes
        // journals it.
        if let (Some(ok), Some(text)) = (success, runs.last_success.as_deref()) {
            let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            let name = &s.target.name;
            match store.claim_back_in_time(name, text, ok.timestamp_millis(), worker, &at).await {
                Ok(true) => outln!("schedule {name} back in time: a run succeeded at {text}"),
                Ok(false) => {}
                Err(e) => crate::output::errln!(
                    "warning: cannot record that schedule `{name}` is back in time: {e}"
                ),
            }
        }
        return;
    }
    let late = now.signed_duration_since(since).to_std().unwrap_or_default().saturating_sub(window);
    let reminder = s.remind_every.map_or(0, |r| late.as_millis() / r.as_millis().max(1));
    let reminder = i64::try_from(reminder).unwrap_or(i64::MAX);
    let name = &s.target.name;
    let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    match store.claim_alert(name, since.timestamp_millis(), reminder, worker, &at).await {
        Ok(true) => outln!(
            "schedule {name} overdue: no successful run since {} (expected within {})",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            span_text(window)
        ),
        Ok(false) => alert_taken(store, name, worker, since.timestamp_millis(), reminder, warned).await,
        Err(e) => {
            crate::output::errln!("warning: cannot record the overdue notice of schedule `{name}`: {e}")
        }
    }
}

/// Delivers the notice of the schedule's latest overdue alert at least once (issue 17, S3):
/// each pass of each worker asks the store for the next delivery attempt of a notice not
/// yet delivered ([`runbook_store::Store::claim_notice`]: one worker per attempt, a lease,
/// a backoff after a failure); the attempt's outcome is journaled with its number.
async fn deliver(store: &runbook_store::Store, worker: &str, s: &Schedule, pass: std::time::Duration) {
    let (Some(_), Some(window)) = (&s.notify, s.expect_success_within) else { return };
    let name = &s.target.name;
    let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let lease = i64::try_from(schedule::NOTICE_LEASE.as_millis()).unwrap_or(i64::MAX);
    let claim = match store.claim_notice(name, crate::state::now_ms(), lease, worker, &at).await {
        Ok(Some(claim)) => claim,
        Ok(None) => return,
        Err(e) => {
            crate::output::errln!("warning: cannot claim the overdue notice of schedule `{name}`: {e}");
            return;
        }
    };
    let since_text = due_text(claim.since_ms);
    let text = s.notify.as_ref().and_then(|n| n.text.clone()).unwrap_or_else(|| {
        format!(
            "runbook: schedule `{name}` is overdue: no successful run of `{}` since {since_text} (expected within {})",
            s.target.runbook.value,
            span_text(window)
        )
    });
    let body = serde_json::json!({
        "text": text,
        "schedule": name,
        "overdue_since": since_text,
        "reminder": claim.reminder,
        "attempt": claim.attempt,
    });
    let sent = send(s, body).await;
    let retry = schedule::notice_retry_after(claim.attempt, pass);
    let retry_at =
        crate::state::now_ms().saturating_add(i64::try_from(retry.as_millis()).unwrap_or(i64::MAX));
    let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let failure = sent.as_ref().err().map(|(fixed, _)| fixed.as_str());
    // Journaled before it is printed: a line printed is a record kept.
    if let Err(e) = store.record_notice_outcome(name, &claim, failure, retry_at, worker, &at).await {
        crate::output::errln!("warning: cannot journal the overdue notification of schedule `{name}`: {e}");
    }
    match sent {
        Ok(()) => outln!("schedule {name}: overdue notification sent (attempt {})", claim.attempt),
        Err((_, why)) => crate::output::errln!(
            "warning: the overdue notification of schedule `{name}` was not delivered (attempt {}): {why}; tried again in {} at the earliest",
            claim.attempt,
            humantime::format_duration(retry)
        ),
    }
}

/// Posts `body` to the schedule's webhook. An error is the failure in fixed words (for the
/// journal: `HTTP 503`, `timed out`...) and the error's own words (printed, with the
/// webhook's address replaced).
async fn send(s: &Schedule, body: serde_json::Value) -> Result<(), (String, String)> {
    let Some(notify) = &s.notify else { return Ok(()) };
    let req = runbook_exec::http::Request {
        method: "POST".into(),
        url: notify.webhook.clone(),
        headers: Vec::new(),
        query: Vec::new(),
        body: runbook_exec::http::Body::Json(body),
        expect_status: Vec::new(),
        max_latency: None,
        ca_file: None,
        ca_sha256: None,
        request_timeout: Some(schedule::NOTICE_TIMEOUT),
    };
    let redactor = runbook_exec::secrets::Redactor::new(&runbook_exec::secrets::Secrets::default());
    // The webhook's URL is not printed: a chat webhook's URL is its credential.
    let shown = |why: String| why.replace(&notify.webhook, "the webhook");
    match runbook_exec::http::send(&req, &redactor).await {
        Ok(out) => match runbook_exec::http::judge(&req, &out) {
            runbook_exec::report::Check::Passed(_) => Ok(()),
            runbook_exec::report::Check::Failed(why) => {
                let status = out.get("status").and_then(serde_json::Value::as_u64).unwrap_or(0);
                Err((format!("HTTP {status}"), shown(why)))
            }
        },
        Err(why) => Err((failure_words(&why).to_string(), shown(why))),
    }
}

/// A delivery error as fixed words: the journal never holds an error's own text, which can
/// quote the webhook's address (a credential).
fn failure_words(why: &str) -> &'static str {
    if why.contains("timed out") {
        "timed out"
    } else if why.contains("connection refused") {
        "connection refused"
    } else if why.contains("closed the connection") {
        "the server closed the connection"
    } else if why.contains("DNS") {
        "the host name does not resolve"
    } else if why.contains("TLS") || why.contains("certificate") {
        "TLS failed"
    } else {
        "request failed"
    }
}

/// Sends a change notice (`body`) to the schedule's `notify` webhook, if it has one, and
/// journals whether it was delivered (in fixed words, never the error's own text). Each
/// worker that finds the change sends its own, once (red team adv18a S5).
async fn notify(
    store: &runbook_store::Store,
    worker: &str,
    s: &Schedule,
    what: &str,
    body: serde_json::Value,
) {
    if s.notify.is_none() {
        return;
    }
    let name = &s.target.name;
    let sent = send(s, body).await;
    let (about, worker) = (what.to_string(), worker.to_string());
    let event = match &sent {
        Ok(()) => runbook_core::schedule_journal::ScheduleEvent::Notified { about, worker, attempt: None },
        Err((fixed, _)) => runbook_core::schedule_journal::ScheduleEvent::NotifyFailed {
            about,
            worker,
            attempt: None,
            failure: Some(fixed.clone()),
        },
    };
    // Journaled before it is printed: a line printed is a record kept.
    let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    if let Err(e) = store.record_schedule_event(name, &at, &event).await {
        crate::output::errln!("warning: cannot journal the {what} notification of schedule `{name}`: {e}");
    }
    match sent {
        Ok(()) => outln!("schedule {name}: {what} notification sent"),
        Err((_, why)) => {
            crate::output::errln!(
                "warning: the {what} notification of schedule `{name}` was not delivered: {why}"
            )
        }
    }
}

/// A refusal's message on one line.
fn refusal_text(e: &CliError) -> String {
    let text = e.render(false);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("error:").trim())
        .filter(|l| !l.is_empty() && !l.starts_with("help:"))
        .collect();
    lines.join("; ")
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim_start_matches("error:").trim_start().to_string()
}
