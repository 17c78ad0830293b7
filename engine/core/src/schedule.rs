//! Schedules (issue 17): a schedules file (`schedules.toml`) of `[schedule.NAME]` tables,
//! each naming a runbook, its parameters, a cron expression in an IANA time zone and the
//! policies of a scheduler (overlap, catch-up, the dead-man's switch).
//!
//! Two types, as for runbooks: [`RawSchedule`] is the serde shape, [`Schedule`] the checked
//! domain type built by [`check`], which reports every problem of the file at once. Fire
//! times are a pure function of a schedule and an instant ([`Schedule::next_after`],
//! [`Schedule::due_between`]): no clock is read here.
//!
//! Cron expressions are parsed by `croner` (the Open Cron Pattern Specification): five
//! fields, minute-based. Its DST rules are ours (ARCHITECTURE.md, "Schedules (issue 17)"):
//! a fixed time that does not exist (02:30 on a spring-forward night) fires at the first
//! minute after the gap, the same day; a fixed time that happens twice (01:30 on a fall-back
//! night) fires once, at its first occurrence; a wildcard or step field (`*/15`) skips what
//! the gap removes and fires in both passes of a repeated hour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Code, Diagnostic, Source};
use crate::parse::{deserialize_unit, syntax_error};
use crate::raw::{RawNotify, SpannedString};
use crate::span::{Span, Spanned};
use crate::suggest::did_you_mean_suffix;

// ----- serde shapes --------------------------------------------------------------------

/// A `[schedule.NAME]` table, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawSchedule {
    /// The runbook to run, relative to the schedules file's folder.
    pub runbook: SpannedString,
    /// Parameter values of the runbook (as in a params file).
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub params: Option<BTreeMap<String, Spanned<toml::Value>>>,
    /// A params file, relative to the schedules file's folder.
    #[serde(default)]
    pub params_file: Option<SpannedString>,
    /// A cron expression of five fields: minute hour day-of-month month day-of-week.
    pub cron: SpannedString,
    /// The IANA time zone the expression is read in, e.g. `Europe/Madrid` or `UTC`.
    pub time_zone: SpannedString,
    /// When the previous run of this schedule is still active at a due time: `skip`
    /// (default), `queue` or `replace`.
    #[serde(default)]
    pub overlap: Option<SpannedString>,
    /// Due times missed while no worker ran: `none`, `latest` (default) or `all`.
    #[serde(default)]
    pub catch_up: Option<SpannedString>,
    /// With `catch-up = "all"`: at most this many missed times are fired (default 10).
    #[serde(default)]
    pub catch_up_limit: Option<Spanned<i64>>,
    /// The dead-man's switch: the schedule is overdue when its last success is older.
    #[serde(default)]
    pub expect_success_within: Option<SpannedString>,
    /// How often an overdue schedule's notification is sent again (default: once).
    #[serde(default)]
    pub remind_every: Option<SpannedString>,
    /// The notification sent when the schedule becomes overdue.
    #[serde(default)]
    pub notify: Option<Spanned<RawNotify>>,
}

/// The keys of a `[schedule.NAME]` table, for unknown-key messages.
pub const KEYS: [&str; 11] = [
    "runbook",
    "params",
    "params-file",
    "cron",
    "time-zone",
    "overlap",
    "catch-up",
    "catch-up-limit",
    "expect-success-within",
    "remind-every",
    "notify",
];

// ----- domain types ------------------------------------------------------------------------

/// What a due time does when the schedule's previous run is still queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The due time is skipped (journaled as `schedule_skipped`).
    Skip,
    /// The run is queued behind the active one.
    Queue,
    /// The active run is cancelled and the new one queued.
    Replace,
}

impl Overlap {
    /// As written in a schedules file.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Replace => "replace",
        }
    }
}

/// What happens to due times that passed while no worker was there to fire them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Missed times are dropped; the next due time fires.
    None,
    /// Only the latest missed time fires.
    Latest,
    /// Every missed time fires, oldest first, at most this many (the latest ones).
    All(u32),
}

impl CatchUp {
    /// As written in a schedules file.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
            CatchUp::All(_) => "all",
        }
    }
}

/// The notification of an overdue schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleNotify {
    /// The webhook URL.
    pub webhook: String,
    /// The text sent (default: a sentence naming the schedule).
    pub text: Option<String>,
}

/// What a schedule runs: its runbook and parameters as written. Kept for every schedule
/// that could be read, valid or not, so that its runbook and parameters are checked in the
/// same round as the rest of the file.
#[derive(Debug, Clone)]
pub struct Target {
    /// The schedule's name.
    pub name: String,
    /// The runbook path as written (relative to the schedules file), with its span.
    pub runbook: Spanned<String>,
    /// Parameter values as written.
    pub params: BTreeMap<String, Spanned<toml::Value>>,
    /// The params file as written.
    pub params_file: Option<Spanned<String>>,
}

impl Target {
    /// The parameter values as `-p NAME=VALUE` gives them: a string as itself, any other
    /// value as TOML writes it (each is read back by its declared type).
    pub fn params_as_text(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let text = match &v.value {
                    toml::Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

/// What [`check`] found: the valid schedules, what every readable schedule runs, and every
/// problem.
#[derive(Debug)]
pub struct Checked {
    /// The schedules without any problem (use them only when `diagnostics` has no error).
    pub schedules: Vec<Schedule>,
    /// What each schedule that could be read runs.
    pub targets: Vec<Target>,
    /// Every problem of the file, sorted.
    pub diagnostics: Vec<Diagnostic>,
}

/// One checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its name and what it runs.
    pub target: Target,
    /// The cron expression as written.
    pub cron_text: String,
    /// The parsed expression.
    pub cron: croner::Cron,
    /// The time zone.
    pub time_zone: Tz,
    /// The overlap policy.
    pub overlap: Overlap,
    /// The catch-up policy.
    pub catch_up: CatchUp,
    /// The dead-man's switch.
    pub expect_success_within: Option<Duration>,
    /// How often an overdue notification is sent again.
    pub remind_every: Option<Duration>,
    /// The overdue notification.
    pub notify: Option<ScheduleNotify>,
}

/// The largest `catch-up-limit`.
pub const MAX_CATCH_UP: i64 = 1000;

/// The default `catch-up-limit` of `catch-up = "all"`.
pub const DEFAULT_CATCH_UP: u32 = 10;

/// The largest number of fire times [`Schedule::next_after`] computes.
pub const MAX_NEXT: usize = 1000;

/// The most schedules one schedules file may hold (RB105).
pub const MAX_SCHEDULES: usize = 1000;

/// The most fire times `runbook schedules` lists in all (schedules × `--next`): beyond it,
/// fewer per schedule, and a line on standard error says so.
pub const MAX_LISTED: usize = 10_000;

/// The longest `expect-success-within` or `remind-every`: 10 years.
const MAX_WINDOW: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The shortest: a minute (schedules are minute-based).
const MIN_WINDOW: Duration = Duration::from_secs(60);

/// Whether a TOML text is a schedules file: it has a `schedule` table and no `runbook`
/// table. `runbook check` reads such a file as schedules, any other as a runbook.
pub fn is_schedules_file(text: &str) -> bool {
    let Ok(root) = DeTable::parse(text) else { return false };
    let root = root.get_ref();
    root.keys().any(|k| k.get_ref() == "schedule") && !root.keys().any(|k| k.get_ref() == "runbook")
}

/// Options of [`check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// TEST MODE ONLY: cron expressions may have a sixth, leading seconds field. The binary
    /// turns it on from the environment variable `RUNBOOK_TEST_SCHEDULE_SECONDS=1`, for the
    /// integration tests of workers; user files stay minute-based.
    pub seconds: bool,
}

/// Parse and check a schedules file: every schedule that is valid, and every problem of
/// the file (a file with any error must not be used).
pub fn check(source: &Arc<Source>, options: CheckOptions) -> Checked {
    let mut diags = Vec::new();
    let mut out = Vec::new();
    let mut targets = Vec::new();
    let (root, errors) = DeTable::parse_recoverable(&source.text);
    if !errors.is_empty() {
        for e in errors {
            diags.push(syntax_error(source, &e));
        }
        return Checked { schedules: out, targets, diagnostics: diags };
    }
    let root_span = Span::from(root.span());
    // A NUL character anywhere (a runbook path, a webhook, a parameter): RB130, as in a
    // runbook (red team adv27 V1).
    let root = toml::Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    crate::parse::nul_in_text(&root, source, &mut diags);
    let DeValue::Table(table) = root.into_inner() else {
        return Checked { schedules: out, targets, diagnostics: diags };
    };
    let mut sections: Vec<_> = table.into_iter().collect();
    sections.sort_by_key(|(k, _)| k.span().start);
    let mut found = false;
    for (key, value) in sections {
        if key.get_ref() != "schedule" {
            diags.push(
                Diagnostic::error(
                    Code::UnknownKey,
                    source,
                    Span::from(key.span()),
                    format!(
                        "unknown section `{}` in a schedules file{}",
                        key.get_ref(),
                        did_you_mean_suffix(key.get_ref(), ["schedule"])
                    ),
                )
                .with_help("a schedules file holds only `[schedule.NAME]` tables"),
            );
            continue;
        }
        found = true;
        let span = Span::from(value.span());
        let DeValue::Table(entries) = value.into_inner() else {
            diags.push(
                Diagnostic::error(Code::WrongType, source, span, "`schedule` must be a table")
                    .with_help("write each schedule as a `[schedule.NAME]` table"),
            );
            continue;
        };
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        // Bounded (red team adv17a S10, promise 5): what a file lists, `runbook schedules`
        // computes and a worker polls stays within a fixed size.
        if let Some((first, _)) = entries.get(MAX_SCHEDULES) {
            diags.push(
                Diagnostic::error(
                    Code::ScheduleCount,
                    source,
                    Span::from(first.span()),
                    format!(
                        "a schedules file holds at most {MAX_SCHEDULES} schedules; this one holds {}",
                        entries.len()
                    ),
                )
                .with_label(format!("schedule number {}", MAX_SCHEDULES + 1))
                .with_help("split the schedules among several files, one per team or host"),
            );
            return Checked { schedules: out, targets, diagnostics: diags };
        }
        for (name, mut value) in entries {
            let name = Spanned::new(name.get_ref().to_string(), Span::from(name.span()));
            if !valid_name(&name.value) {
                diags.push(
                    Diagnostic::error(
                        Code::InvalidId,
                        source,
                        name.span,
                        format!("schedule name `{}` is not snake_case", name.value),
                    )
                    .with_label("not a name")
                    .with_help("a schedule name is lowercase letters, digits and `_`, starting with a letter, e.g. `backup_daily`"),
                );
            }
            prune_unknown(&mut value, &name.value, source, &mut diags);
            let path = format!("schedule.{}", name.value);
            let unit_span = Span::from(value.span());
            let raw: Option<RawSchedule> = deserialize_unit(value, &path, source, &mut diags);
            if let Some(mut raw) = raw {
                let target = Target {
                    name: name.value.clone(),
                    runbook: raw.runbook.clone(),
                    params: raw.params.take().unwrap_or_default(),
                    params_file: raw.params_file.clone(),
                };
                if let Some(s) = validate(&target, unit_span, raw, source, options, &mut diags) {
                    out.push(s);
                }
                targets.push(target);
            }
        }
    }
    if !found {
        diags.push(
            Diagnostic::error(
                Code::MissingKey,
                source,
                Span::new(root_span.start, root_span.start),
                "a schedules file without any `[schedule.NAME]` table",
            )
            .with_help(
                "add a schedule, e.g. `[schedule.backup_daily]` with `runbook`, `cron` and `time-zone`",
            ),
        );
    }
    crate::diagnostic::sort(&mut diags);
    Checked { schedules: out, targets, diagnostics: diags }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64
}

/// Report and take out the keys a schedule does not have, so the rest is still read.
fn prune_unknown(
    value: &mut toml::Spanned<DeValue<'_>>,
    name: &str,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) {
    let DeValue::Table(table) = value.get_mut() else { return };
    let unknown: Vec<_> = table.keys().filter(|k| !KEYS.contains(&k.get_ref().as_ref())).cloned().collect();
    for key in unknown {
        diags.push(
            Diagnostic::error(
                Code::UnknownKey,
                source,
                Span::from(key.span()),
                format!(
                    "unknown key `{}` in `schedule.{name}`{}",
                    key.get_ref(),
                    did_you_mean_suffix(key.get_ref(), KEYS)
                ),
            )
            .with_label("unknown key")
            .with_help(format!("a schedule has the keys {}", KEYS.map(|k| format!("`{k}`")).join(", "))),
        );
        let old = std::mem::take(table);
        *table = old.into_iter().filter(|(k, _)| k.get_ref() != key.get_ref()).collect();
    }
}

fn err(
    diags: &mut Vec<Diagnostic>,
    code: Code,
    source: &Arc<Source>,
    span: Span,
    message: String,
    label: &str,
    help: &str,
) {
    diags.push(Diagnostic::error(code, source, span, message).with_label(label).with_help(help));
}

fn validate(
    target: &Target,
    unit_span: Span,
    raw: RawSchedule,
    source: &Arc<Source>,
    options: CheckOptions,
    diags: &mut Vec<Diagnostic>,
) -> Option<Schedule> {
    let before = diags.len();
    let n = &target.name;

    if raw.runbook.value.trim().is_empty() || raw.runbook.value.starts_with('/') {
        err(
            diags,
            Code::ScheduleRunbook,
            source,
            raw.runbook.span,
            format!("the runbook of `schedule.{n}` must be a relative path"),
            "not a relative path",
            "name the runbook relative to the schedules file's folder, e.g. `runbook = \"../runbooks/backup.toml\"`",
        );
    }
    if let Some(file) = &raw.params_file
        && (file.value.trim().is_empty() || file.value.starts_with('/'))
    {
        err(
            diags,
            Code::ScheduleRunbook,
            source,
            file.span,
            format!("the params file of `schedule.{n}` must be a relative path"),
            "not a relative path",
            "name the params file relative to the schedules file's folder",
        );
    }

    let cron = parse_cron(&raw.cron, n, source, options, diags);

    let time_zone = match raw.time_zone.value.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
            let suffix = did_you_mean_suffix(&raw.time_zone.value, names);
            err(
                diags,
                Code::ScheduleTimeZone,
                source,
                raw.time_zone.span,
                format!("unknown time zone `{}` in `schedule.{n}`{suffix}", raw.time_zone.value),
                "not an IANA time zone",
                "write an IANA time zone name such as `Europe/Madrid`, `America/New_York` or `UTC`",
            );
            None
        }
    };

    let overlap = choice(
        raw.overlap.as_ref(),
        &[("skip", Overlap::Skip), ("queue", Overlap::Queue), ("replace", Overlap::Replace)],
        Overlap::Skip,
        (("overlap policy", n.as_str()), "`overlap` is `skip` (the default), `queue` or `replace`"),
        source,
        diags,
    );

    let limit = match &raw.catch_up_limit {
        None => None,
        Some(l) if (1..=MAX_CATCH_UP).contains(&l.value) => u32::try_from(l.value).ok(),
        Some(l) => {
            err(
                diags,
                Code::SchedulePolicy,
                source,
                l.span,
                format!("`catch-up-limit` of `schedule.{n}` is {}, outside 1..={MAX_CATCH_UP}", l.value),
                "out of range",
                "give how many missed times at most are fired, from 1 to 1000",
            );
            None
        }
    };
    let catch_up = choice(
        raw.catch_up.as_ref(),
        &[
            ("none", CatchUp::None),
            ("latest", CatchUp::Latest),
            ("all", CatchUp::All(limit.unwrap_or(DEFAULT_CATCH_UP))),
        ],
        CatchUp::Latest,
        (
            ("catch-up policy", n.as_str()),
            "`catch-up` is `none`, `latest` (the default) or `all` (bounded by `catch-up-limit`)",
        ),
        source,
        diags,
    );
    if let Some(l) = &raw.catch_up_limit
        && !matches!(catch_up, Some(CatchUp::All(_)) | None)
    {
        err(
            diags,
            Code::SchedulePolicy,
            source,
            l.span,
            format!("`catch-up-limit` of `schedule.{n}` applies only to `catch-up = \"all\"`"),
            "has no effect",
            "remove `catch-up-limit`, or set `catch-up = \"all\"`",
        );
    }

    let expect =
        window(raw.expect_success_within.as_ref(), ("expect-success-within", n), options, source, diags);
    let remind = window(raw.remind_every.as_ref(), ("remind-every", n), options, source, diags);
    if let Some(r) = &raw.remind_every
        && raw.expect_success_within.is_none()
    {
        err(
            diags,
            Code::SchedulePolicy,
            source,
            r.span,
            format!("`remind-every` of `schedule.{n}` needs `expect-success-within`"),
            "never used",
            "a reminder repeats the overdue notification: set `expect-success-within = \"26h\"` too",
        );
    }
    if let Some(notify) = &raw.notify
        && raw.expect_success_within.is_none()
    {
        err(
            diags,
            Code::SchedulePolicy,
            source,
            notify.span,
            format!("`notify` of `schedule.{n}` needs `expect-success-within`"),
            "never sent",
            "the notification is sent when the schedule is overdue: set `expect-success-within`",
        );
    }
    let notify = raw.notify.as_ref().and_then(|n| {
        let w = &n.value.webhook;
        let ok = w.value.starts_with("https://") || w.value.starts_with("http://");
        if !ok {
            err(
                diags,
                Code::SchedulePolicy,
                source,
                w.span,
                "the webhook of a schedule's `notify` must be an http(s) URL".to_string(),
                "not a URL",
                "write the webhook URL, e.g. `webhook = \"https://hooks.example.com/T000/B000\"`",
            );
        }
        ok.then(|| ScheduleNotify {
            webhook: w.value.clone(),
            text: n.value.text.as_ref().map(|t| t.value.clone()),
        })
    });

    let _ = unit_span;
    if diags.len() > before {
        return None;
    }
    Some(Schedule {
        target: target.clone(),
        cron_text: raw.cron.value,
        cron: cron?,
        time_zone: time_zone?,
        overlap: overlap?,
        catch_up: catch_up?,
        expect_success_within: expect,
        remind_every: remind,
        notify,
    })
}

/// One of a few words (`overlap`, `catch-up`), its default when absent; RB103 otherwise.
/// `what`: what the word is and the schedule's name, for the message; and the hint.
fn choice<T: Copy>(
    written: Option<&SpannedString>,
    options: &[(&str, T)],
    default: T,
    what: ((&str, &str), &str),
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let Some(w) = written else { return Some(default) };
    if let Some((_, v)) = options.iter().find(|(k, _)| *k == w.value) {
        return Some(*v);
    }
    let suffix = did_you_mean_suffix(&w.value, options.iter().map(|(k, _)| *k));
    err(
        diags,
        Code::SchedulePolicy,
        source,
        w.span,
        format!("unknown {} `{}` in `schedule.{}`{suffix}", what.0.0, w.value, what.0.1),
        "not a policy",
        what.1,
    );
    None
}

fn window(
    s: Option<&SpannedString>,
    (key, n): (&str, &str),
    options: CheckOptions,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    let s = s?;
    // TEST MODE: schedules of seconds have windows of seconds.
    let min = if options.seconds { Duration::from_secs(1) } else { MIN_WINDOW };
    match humantime::parse_duration(s.value.trim()) {
        Ok(d) if (min..=MAX_WINDOW).contains(&d) => Some(d),
        Ok(_) => {
            err(
                diags,
                Code::SchedulePolicy,
                source,
                s.span,
                format!("`{key}` of `schedule.{n}` is `{}`, outside 1m..=10y", s.value),
                "out of range",
                "schedules are minute-based: give a duration from \"1m\" to \"10y\", e.g. \"26h\"",
            );
            None
        }
        Err(e) => {
            err(
                diags,
                Code::SchedulePolicy,
                source,
                s.span,
                format!(
                    "invalid duration `{}` for `{key}` of `schedule.{n}`: {}",
                    s.value,
                    duration_problem(&e)
                ),
                "not a duration",
                "write a duration such as \"26h\", \"8d\" or \"90m\"",
            );
            None
        }
    }
}

/// humantime's words, except for a number without its unit, where its hint suggests
/// seconds, shorter than any window a schedule accepts.
fn duration_problem(e: &humantime::DurationError) -> String {
    match e {
        humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
            "a number without its unit (such as `m`, `h` or `d`)".to_string()
        }
        other => other.to_string(),
    }
}

fn parse_cron(
    s: &SpannedString,
    n: &str,
    source: &Arc<Source>,
    options: CheckOptions,
    diags: &mut Vec<Diagnostic>,
) -> Option<croner::Cron> {
    let fields = s.value.split_whitespace().count();
    let allowed = if options.seconds { 5..=6 } else { 5..=5 };
    if !allowed.contains(&fields) {
        err(
            diags,
            Code::ScheduleCron,
            source,
            s.span,
            format!("the cron expression of `schedule.{n}` has {fields} field(s); it needs 5"),
            "not 5 fields",
            "write minute, hour, day of month, month and day of week, e.g. `0 2 * * *` (every day at 02:00); seconds and years are not allowed",
        );
        return None;
    }
    // croner's extensions (`L`, `W`, `#`, `?`) are not part of the documented syntax: what
    // the book lists is what parses (red team adv17a M3). Month and day names are set
    // aside first (`JUL`, `WED` hold the letters).
    let names = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN", "MON",
        "TUE", "WED", "THU", "FRI", "SAT",
    ];
    let bare = names.iter().fold(s.value.to_uppercase(), |t, name| t.replace(name, ""));
    if let Some(c) = bare.chars().find(|c| matches!(c, 'L' | 'W' | '#' | '?')) {
        err(
            diags,
            Code::ScheduleCron,
            source,
            s.span,
            format!("the cron expression of `schedule.{n}` uses `{c}`, which schedules do not support"),
            "not a supported cron field",
            "use `*`, `a-b`, `a,b`, `*/n`, numbers and month or day names; for the last day of a month, run daily and check the date in the runbook",
        );
        return None;
    }
    let seconds =
        if fields == 6 { croner::parser::Seconds::Required } else { croner::parser::Seconds::Disallowed };
    let parser =
        croner::parser::CronParser::builder().seconds(seconds).year(croner::parser::Year::Disallowed).build();
    match parser.parse(&s.value) {
        Ok(c) if !matches_a_date(&c) => {
            err(
                diags,
                Code::ScheduleCron,
                source,
                s.span,
                format!("the cron expression `{}` of `schedule.{n}` matches no date", s.value),
                "never fires",
                "a day that no month named has (February 30, April 31) never comes; check the day of month and the month",
            );
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            err(
                diags,
                Code::ScheduleCron,
                source,
                s.span,
                format!("invalid cron expression `{}` in `schedule.{n}`: {}", s.value, cron_error(&e)),
                "not a cron expression",
                "fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC) and day of week (0-7 or SUN-SAT); `*`, `a-b`, `a,b` and `*/n` are allowed",
            );
            None
        }
    }
}

/// Whether `cron` fires at all: an occurrence within 8 years of a fixed leap-year start
/// (2028-01-01 UTC, so the answer does not depend on today; 8 years hold two leap days).
fn matches_a_date(cron: &croner::Cron) -> bool {
    let Some(start) = DateTime::<Utc>::from_timestamp(1_830_297_600, 0) else { return true };
    let end = start + chrono::Duration::days(8 * 366);
    cron.find_next_occurrence(&start, true).is_ok_and(|t| t < end)
}

fn cron_error(e: &croner::errors::CronError) -> String {
    let text = e.to_string();
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "it does not parse".into(),
    }
}

// ----- parameters against the runbook ----------------------------------------------------------

/// Check a schedule's `params` against the runbook it names: every name declared, every
/// value of its type and within its declaration, every required parameter given (by
/// `params`, or by the params file: `not_in_file` names the required ones the params file
/// did not give, `None` when the schedule has no params file).
pub fn check_params(
    schedule: &Target,
    runbook: &crate::model::Runbook,
    source: &Arc<Source>,
    not_in_file: Option<&[String]>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let n = &schedule.name;
    for (name, value) in &schedule.params {
        let Some(param) = runbook.params.iter().find(|p| p.name == *name) else {
            let suffix = did_you_mean_suffix(name, runbook.params.iter().map(|p| p.name.as_str()));
            diags.push(
                Diagnostic::error(
                    Code::UnknownParam,
                    source,
                    value.span,
                    format!(
                        "`schedule.{n}` gives `{name}`, which runbook `{}` does not declare{suffix}",
                        runbook.name
                    ),
                )
                .with_label("not a parameter of the runbook")
                .with_help("give only the parameters the runbook declares in `[params.NAME]`"),
            );
            continue;
        };
        let problem =
            crate::params::from_toml(param.ty, &value.value).and_then(|v| crate::params::check(param, &v));
        if let Err(e) = problem {
            diags.push(
                Diagnostic::error(
                    Code::InvalidParamValue,
                    source,
                    value.span,
                    format!("invalid value for parameter `{name}` in `schedule.{n}`: {e}"),
                )
                .with_label("does not fit the declaration")
                .with_help(format!("see `[params.{name}]` in the runbook")),
            );
        }
    }
    let required: Vec<&str> = match not_in_file {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => runbook.params.iter().filter(|p| p.default.is_none()).map(|p| p.name.as_str()).collect(),
    };
    for name in required {
        if !schedule.params.contains_key(name) {
            diags.push(
                Diagnostic::error(
                    Code::MissingParam,
                    source,
                    schedule.runbook.span,
                    format!(
                        "`schedule.{n}` does not give the required parameter `{name}` of runbook `{}`",
                        runbook.name
                    ),
                )
                .with_label("runs without it")
                .with_help(format!(
                    "add `{name}` to `params` (e.g. `params = {{ {name} = \"...\" }}`) or to the params file"
                )),
            );
        }
    }
    diags
}

// ----- fire times ----------------------------------------------------------------------------

impl Schedule {
    /// The next `n` fire times strictly after `after`, in the schedule's time zone (at most
    /// [`MAX_NEXT`]; fewer when the expression has no more).
    pub fn next_after(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::new();
        let mut at = after.with_timezone(&self.time_zone);
        while out.len() < n.min(MAX_NEXT) {
            match self.cron.find_next_occurrence(&at, false) {
                Ok(t) => {
                    out.push(t);
                    at = t;
                }
                Err(_) => break,
            }
        }
        out
    }

    /// The due times in `(from, to]`, oldest first, that the catch-up policy fires at `to`
    /// when the schedule last fired at `from`: with `none`, only those at most `late` old
    /// (they are not missed, only seen a moment late: a worker polls); with `latest`, the
    /// latest; with `all`, the latest [`CatchUp::All`] of them.
    pub fn due_between(&self, from: DateTime<Utc>, to: DateTime<Utc>, late: Duration) -> Vec<DateTime<Utc>> {
        self.due_search(from, to, late).times
    }

    /// [`Schedule::due_between`], with how many due times of `(from, to]` it left out (not
    /// fired by the catch-up policy) and whether the search covered the whole interval.
    ///
    /// The latest due times are found from `to` backwards, never by stepping from `from`
    /// (adv17a S5: a schedule due every second, a year behind, would take millions of
    /// steps): a window ending at `to` doubles until it holds as many due times as the
    /// policy keeps, or reaches `from`. Stepping inside a window goes forward, as the worker
    /// always steps (DST: a fixed time in a repeated hour fires once), from a start that is
    /// not inside a repeated hour. The steps are bounded ([`MAX_STEPS`]); a search that
    /// runs out says so (`complete: false`), it never passes a partial answer as complete.
    pub fn due_search(&self, from: DateTime<Utc>, to: DateTime<Utc>, late: Duration) -> Due {
        let keep = match self.catch_up {
            CatchUp::None | CatchUp::Latest => 1,
            CatchUp::All(n) => n as usize,
        };
        let mut out = Due { times: Vec::new(), left_out: 0, complete: true, dropped: None };
        if to <= from {
            return out;
        }
        let mut span = chrono::Duration::seconds(2);
        let mut steps = 0usize;
        loop {
            let start = self.unambiguous(std::cmp::max(from, to - span)).max(from);
            let mut window: std::collections::VecDeque<DateTime<Utc>> = std::collections::VecDeque::new();
            let mut seen = 0usize;
            let mut dropped = None;
            let mut at = start.with_timezone(&self.time_zone);
            loop {
                steps += 1;
                if steps > MAX_STEPS {
                    out.complete = false;
                    break;
                }
                let Ok(t) = self.cron.find_next_occurrence(&at, false) else { break };
                let u = t.with_timezone(&Utc);
                if u > to {
                    break;
                }
                seen += 1;
                window.push_back(u);
                if window.len() > keep {
                    dropped = window.pop_front();
                }
                at = t;
            }
            if window.len() >= keep || start <= from || !out.complete {
                out.left_out = seen - window.len();
                // Before the window: due times not counted one by one (the window did not
                // reach `from`), at least one since the window is not the whole interval.
                if start > from && window.len() >= keep && dropped.is_none() {
                    dropped = self.latest_due_between(from, start);
                }
                if start > from && window.len() >= keep && self.has_due_between(from, start) {
                    out.left_out += 1;
                }
                out.dropped = dropped;
                out.times = window.into();
                break;
            }
            span = span * 2;
        }
        if self.catch_up == CatchUp::None {
            let late = chrono::Duration::from_std(late).unwrap_or_default();
            let kept: Vec<DateTime<Utc>> =
                out.times.iter().copied().filter(|t| to.signed_duration_since(*t) <= late).collect();
            out.left_out += out.times.len() - kept.len();
            if let Some(last) = out.times.iter().copied().rfind(|t| !kept.contains(t)) {
                out.dropped = Some(last);
            }
            out.times = kept;
        }
        out
    }

    /// The latest due time in `(from, to]`, searched backwards from `to` (for a record of
    /// what was dropped, never for what fires).
    fn latest_due_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = self.cron.find_previous_occurrence(&to.with_timezone(&self.time_zone), true).ok()?;
        Some(t.with_timezone(&Utc)).filter(|t| *t > from)
    }

    /// Whether some due time lies in `(from, to]`.
    fn has_due_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.cron
            .find_next_occurrence(&from.with_timezone(&self.time_zone), false)
            .is_ok_and(|t| t.with_timezone(&Utc) <= to)
    }

    /// `t`, or a moment before it that is not inside a repeated (fall-back) hour of the time
    /// zone: stepping forward from inside a repeated hour would meet the second pass of a
    /// fixed time that stepping from before it fires once.
    fn unambiguous(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let mut at = t;
        for _ in 0..8 {
            let local = at.with_timezone(&self.time_zone).naive_local();
            if self.time_zone.from_local_datetime(&local).single().is_some() {
                return at;
            }
            at -= chrono::Duration::minutes(30);
        }
        at
    }

    /// Whether the schedule is overdue at `now`: it expects a success within a window, and
    /// its last success (or, with none, its first run) is older than that.
    pub fn overdue(
        &self,
        last_success: Option<DateTime<Utc>>,
        first_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(window) = self.expect_success_within else { return false };
        let Some(since) = last_success.or(first_run) else { return false };
        let Ok(window) = chrono::Duration::from_std(window) else { return false };
        now.signed_duration_since(since) > window
    }
}

/// How long a worker may take to deliver an overdue notice it claimed (the webhook's
/// request timeout, [`NOTICE_TIMEOUT`], and time to journal the outcome): past it, another
/// worker takes the notice over (issue 17, S3).
pub const NOTICE_LEASE: Duration = Duration::from_secs(15);

/// The webhook's request timeout for a notification.
pub const NOTICE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between two delivery attempts of one notice (unless one pass of the
/// worker is longer).
pub const NOTICE_RETRY_CAP: Duration = Duration::from_secs(300);

/// How long after its `failed`-th failed attempt (1, 2...) a notice is tried again by a
/// worker whose pass runs every `pass`: one pass (at least a second), doubled after each
/// failure, at most [`NOTICE_RETRY_CAP`] (or one pass, if that is longer).
pub fn notice_retry_after(failed: u32, pass: Duration) -> Duration {
    let base = pass.max(Duration::from_secs(1));
    let doubled = base.saturating_mul(1u32 << failed.saturating_sub(1).min(20));
    doubled.min(NOTICE_RETRY_CAP.max(base))
}

/// One delivery attempt of an overdue notice, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeAttempt {
    /// 1, 2... (0: a notice sent before attempts were recorded, never retried).
    pub attempt: u32,
    /// `None` while in flight; `delivered`, `failed`, `lapsed` (its worker's lease expired
    /// with no outcome) or `legacy`.
    pub outcome: Option<String>,
    /// Until when its worker holds it (milliseconds since the epoch).
    pub lease_until_ms: i64,
    /// A failed attempt: not tried again before (milliseconds since the epoch).
    pub retry_at_ms: Option<i64>,
}

/// What a worker does about a notice, given its attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeNext {
    /// Delivered (or sent before attempts were recorded): nothing more.
    Settled,
    /// An attempt is in flight under a live lease, or the backoff has not elapsed.
    Wait,
    /// Claim attempt `attempt`; `lapsed` names the attempt whose lease expired with no
    /// outcome (to be journaled as failed).
    Try {
        /// The attempt to claim.
        attempt: u32,
        /// The previous attempt, when it lapsed.
        lapsed: Option<u32>,
    },
}

/// The one decision of which attempt of a notice comes next (pure: the store applies it
/// in a transaction, and its primary key lets one worker claim each attempt).
pub fn next_notice(attempts: &[NoticeAttempt], now_ms: i64) -> NoticeNext {
    if attempts.iter().any(|a| matches!(a.outcome.as_deref(), Some("delivered" | "legacy"))) {
        return NoticeNext::Settled;
    }
    let Some(last) = attempts.iter().max_by_key(|a| a.attempt) else {
        return NoticeNext::Try { attempt: 1, lapsed: None };
    };
    let attempt = last.attempt.saturating_add(1);
    match last.outcome.as_deref() {
        None if last.lease_until_ms > now_ms => NoticeNext::Wait,
        None => NoticeNext::Try { attempt, lapsed: Some(last.attempt) },
        Some(_) if last.retry_at_ms.is_some_and(|t| t > now_ms) => NoticeNext::Wait,
        Some(_) => NoticeNext::Try { attempt, lapsed: None },
    }
}

/// What [`Schedule::due_search`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The due times to fire, oldest first.
    pub times: Vec<DateTime<Utc>>,
    /// How many due times of the interval the policy does not fire (at least: the ones
    /// before the window searched count as one).
    pub left_out: usize,
    /// False when the search ran out of steps: `times` may not be the latest.
    pub complete: bool,
    /// The latest due time of the interval the policy does not fire (recorded as missed).
    pub dropped: Option<DateTime<Utc>>,
}

/// The most cron steps one search of due times takes.
pub const MAX_STEPS: usize = 200_000;

/// An instant in UTC from seconds since the epoch (for callers holding store times).
pub fn utc_from_millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// A due time in milliseconds as RFC 3339 UTC (seconds), as every view and the schedule's
/// journal write it (the number itself when it is no time).
pub fn due_text(ms: i64) -> String {
    utc_from_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Where a worker counts a schedule's due times from (the `from` of
/// [`Schedule::due_search`]): after the latest due time the store took, whoever took it;
/// for a schedule none was taken of, from the first time a worker watched it in this store
/// (its journal's first record, [`crate::schedule_journal::watched_from`]), so that a due
/// time passing between one worker's stop and the next one's start is fired or recorded as
/// missed by the catch-up policy, as after any downtime (red team adv23 F2). `start`, this
/// worker's own start, bounds it: a first watch recorded by a clock that ran ahead does not
/// put the count in the future.
pub fn count_from(
    last_due: Option<DateTime<Utc>>,
    first_watch: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
) -> DateTime<Utc> {
    match last_due {
        Some(last) => last,
        None => first_watch.map_or(start, |w| w.min(start)),
    }
}

/// How far a time recorded by another clock may be after the reader's now and still be
/// believed: clocks of hosts kept by NTP agree far closer; a time beyond it was recorded by a
/// clock that ran ahead (adv17a S3, red team adv24 S1).
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// A record of the first watch of a never-fired schedule (`watched`, or a later
/// `rewatched`) as a worker reads it: one clock's claim of when a worker watched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchClaim {
    /// The start the watching worker read from its clock.
    pub since: DateTime<Utc>,
    /// When the record was written (the same worker's clock).
    pub recorded: DateTime<Utc>,
    /// Written by the reading worker itself (same worker, same process).
    pub mine: bool,
}

/// Why a watch claim is not believed (red team adv24 S1, S2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchDoubt {
    /// Its start or its record is later than the reader's now (beyond [`CLOCK_SKEW`]): the
    /// watching worker's clock ran ahead. Believed, it would put the count in the future
    /// and the catch-up of a restart gap would be off in silence (S1).
    Ahead,
    /// Its start is earlier than the store's own beginning (its first migration, beyond
    /// [`CLOCK_SKEW`]): no worker watched a schedule in a store that did not exist, so the
    /// watching worker's clock was behind. Believed, a new schedule would catch up days it
    /// never existed for (S2).
    BeforeTheStore,
    /// The reader wrote it, and its boot clock says its start was another instant
    /// (beyond [`CLOCK_SKEW`]): the wall clock was stepped since it read its start.
    NotMyStart,
}

impl WatchDoubt {
    /// Why, in words, for a warning and a `rewatched` record.
    pub fn reason(self) -> &'static str {
        match self {
            WatchDoubt::Ahead => "it is later than the reader's clock: a clock ran ahead",
            WatchDoubt::BeforeTheStore => "it is earlier than the state store's creation: a clock was behind",
            WatchDoubt::NotMyStart => {
                "this worker's clock was stepped since it read its start (its boot clock disagrees)"
            }
        }
    }
}

/// Whether a reader believes `claim`, the store having begun at `began` (its first
/// migration; `None` when it cannot say), the reader having started at `start` (its start on
/// its clock of now: now less the monotonic time since) and reading at `now`. A claim is a
/// start only between the store's beginning and the reader's now, and a worker's own claim
/// only if its boot clock agrees (the rule of ARCHITECTURE.md, "a first watch is
/// believed between the store's beginning and the reader's now").
pub fn watch_doubt(
    claim: &WatchClaim,
    began: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<WatchDoubt> {
    let latest = now.checked_add_signed(CLOCK_SKEW).unwrap_or(now);
    if claim.since > latest || claim.recorded > latest {
        return Some(WatchDoubt::Ahead);
    }
    // A beginning later than now was read by a clock that ran ahead when the store was
    // made: it bounds nothing (else every watch, the reader's own too, would be refused).
    if let Some(began) = began.filter(|b| *b <= latest)
        && claim.since < began.checked_sub_signed(CLOCK_SKEW).unwrap_or(began)
    {
        return Some(WatchDoubt::BeforeTheStore);
    }
    if claim.mine && (claim.since - start).abs() > CLOCK_SKEW {
        return Some(WatchDoubt::NotMyStart);
    }
    None
}

/// What a worker makes of a never-fired schedule's watch records (see [`first_watch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstWatch {
    /// The earliest believed start: due times count from it ([`count_from`]). `None` when
    /// none is believed: the worker counts from its own start.
    pub from: Option<DateTime<Utc>>,
    /// The claims not believed (their index in the records given) and why.
    pub doubted: Vec<(usize, WatchDoubt)>,
    /// No claim is believed, and the reader's own start would be: the reader appends a
    /// `rewatched` record with it, so that every later worker counts from an instant
    /// believed, not from its own start (which would skip a restart gap in silence).
    pub rewatch: bool,
}

/// The earliest believable instant a never-fired schedule was watched from, given its
/// watch records in journal order ([`watch_doubt`] for each).
pub fn first_watch(
    claims: &[WatchClaim],
    began: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> FirstWatch {
    let mut from: Option<DateTime<Utc>> = None;
    let mut doubted = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        match watch_doubt(c, began, start, now) {
            Some(d) => doubted.push((i, d)),
            None => from = Some(from.map_or(c.since, |f| f.min(c.since))),
        }
    }
    let own = WatchClaim { since: start, recorded: now, mine: true };
    let rewatch = from.is_none() && watch_doubt(&own, began, start, now).is_none();
    FirstWatch { from, doubted, rewatch }
}

/// A window as days, hours and minutes (`31d 2h`), as `runbook schedules` and the console
/// word it: schedules are minute-based.
pub fn span_text(d: std::time::Duration) -> String {
    let m = d.as_secs() / 60;
    let (days, hours, minutes) = (m / 1440, (m / 60) % 24, m % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() { "0m".into() } else { parts.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Schedule {
        let source = Source::new("s.toml", text);
        let mut c = check(&source, CheckOptions::default());
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
        c.schedules.remove(0)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    fn fmt(t: &DateTime<Tz>) -> String {
        format!("{} = {}", t.format("%Y-%m-%d %H:%M %Z"), t.with_timezone(&Utc).format("%H:%M UTC"))
    }

    const MADRID_0230: &str =
        "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"30 2 * * *\"\ntime-zone = \"Europe/Madrid\"\n";

    /// Spring forward in Madrid, 2026-03-29: 02:00 jumps to 03:00. A daily 02:30 fires at
    /// 03:00 that day (the first minute after the gap), then at 02:30 again.
    #[test]
    fn a_time_that_does_not_exist_fires_right_after_the_gap() {
        let s = one(MADRID_0230);
        let got: Vec<String> = s.next_after(utc("2026-03-27T12:00:00Z"), 4).iter().map(fmt).collect();
        assert_eq!(
            got,
            [
                "2026-03-28 02:30 CET = 01:30 UTC",
                "2026-03-29 03:00 CEST = 01:00 UTC",
                "2026-03-30 02:30 CEST = 00:30 UTC",
                "2026-03-31 02:30 CEST = 00:30 UTC",
            ]
        );
    }

    /// Fall back in Madrid, 2026-10-25: 03:00 goes back to 02:00, so 02:30 happens twice. A
    /// fixed time fires once, at its first occurrence (CEST).
    #[test]
    fn a_time_that_happens_twice_fires_once_at_its_first_occurrence() {
        let s = one(MADRID_0230);
        let got: Vec<String> = s.next_after(utc("2026-10-23T12:00:00Z"), 3).iter().map(fmt).collect();
        assert_eq!(
            got,
            [
                "2026-10-24 02:30 CEST = 00:30 UTC",
                "2026-10-25 02:30 CEST = 00:30 UTC",
                "2026-10-26 02:30 CET = 01:30 UTC",
            ]
        );
    }

    /// New York's fall back, 2026-11-01 at 02:00 EDT: 01:30 happens twice. An interval job
    /// (`*/30` minutes) fires in both passes; a fixed 01:30 fires once.
    /// adv17a S5: the search from `to` backwards gives exactly the latest due times that
    /// stepping forward from `from` gives, across DST changes (fixed times in repeated
    /// hours, gaps, Lord Howe's 30-minute change), for every policy; and a schedule a year
    /// behind is answered in a bounded number of steps, with the latest due time.
    #[test]
    fn the_latest_due_times_are_found_from_now_backwards_as_stepping_forward_finds_them() {
        let exprs = ["30 1 * * *", "*/30 1 * * *", "*/7 * * * *", "0 2 * * 0", "15 2 25 10 *", "0 0 1 * *"];
        let zones = ["America/New_York", "Europe/Madrid", "Australia/Lord_Howe", "UTC", "Asia/Kathmandu"];
        let policies =
            [("latest", 1usize), ("all\"\ncatch-up-limit = \"3", 3), ("all\"\ncatch-up-limit = \"40", 40)];
        let mut cases = 0;
        for e in exprs {
            for z in zones {
                for (p, keep) in policies {
                    let text = format!(
                        "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"{e}\"\ntime-zone = \"{z}\"\ncatch-up = \"{p}\"\n"
                    )
                    .replace("catch-up-limit = \"3\"", "catch-up-limit = 3")
                    .replace("catch-up-limit = \"40\"", "catch-up-limit = 40");
                    let s = one(&text);
                    for (from, hours) in [
                        ("2026-10-24T20:00:00Z", 30),
                        ("2026-10-31T23:00:00Z", 40),
                        ("2026-04-04T10:00:00Z", 200),
                        ("2026-03-01T00:00:00Z", 24 * 120),
                    ] {
                        let from = utc(from);
                        let to = from + chrono::Duration::hours(hours);
                        let mut all = Vec::new();
                        let mut at = from.with_timezone(&s.time_zone);
                        while let Ok(t) = s.cron.find_next_occurrence(&at, false) {
                            if t.with_timezone(&Utc) > to {
                                break;
                            }
                            all.push(t.with_timezone(&Utc));
                            at = t;
                        }
                        let want: Vec<_> = all[all.len().saturating_sub(keep)..].to_vec();
                        let got = s.due_search(from, to, Duration::from_secs(60));
                        assert!(got.complete);
                        assert_eq!(got.times, want, "{e} in {z}, {p}, from {from} for {hours}h");
                        assert_eq!(got.left_out > 0, all.len() > want.len(), "{e} in {z}, {p}, from {from}");
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 6 * 5 * 3 * 4);
        let tick = one("[schedule.x]\nrunbook = \"a.toml\"\ncron = \"* * * * *\"\ntime-zone = \"UTC\"\n");
        let got = tick.due_search(utc("2023-01-01T00:00:00Z"), utc("2026-12-06T22:39:30Z"), Duration::ZERO);
        assert!(got.complete);
        assert_eq!(got.times, [utc("2026-12-06T22:39:00Z")]);
    }

    #[test]
    fn a_repeated_hour_fires_an_interval_twice_and_a_fixed_time_once() {
        let fixed = one(
            "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"30 1 * * *\"\ntime-zone = \"America/New_York\"\n",
        );
        let got: Vec<String> = fixed.next_after(utc("2026-11-01T04:00:00Z"), 2).iter().map(fmt).collect();
        assert_eq!(got, ["2026-11-01 01:30 EDT = 05:30 UTC", "2026-11-02 01:30 EST = 06:30 UTC"]);
        let every = one(
            "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"*/30 1 * * *\"\ntime-zone = \"America/New_York\"\n",
        );
        let got: Vec<String> = every.next_after(utc("2026-11-01T04:00:00Z"), 4).iter().map(fmt).collect();
        assert_eq!(
            got,
            [
                "2026-11-01 01:00 EDT = 05:00 UTC",
                "2026-11-01 01:30 EDT = 05:30 UTC",
                "2026-11-01 01:00 EST = 06:00 UTC",
                "2026-11-01 01:30 EST = 06:30 UTC",
            ]
        );
    }

    #[test]
    fn catch_up_keeps_none_the_latest_or_a_bounded_all() {
        let base = "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"0 * * * *\"\ntime-zone = \"UTC\"\n";
        let from = utc("2026-01-01T00:00:00Z");
        let to = utc("2026-01-01T05:30:00Z");
        let latest = one(base);
        let late = Duration::from_secs(60);
        assert_eq!(latest.due_between(from, to, late), [utc("2026-01-01T05:00:00Z")]);
        let none = one(&format!("{base}catch-up = \"none\"\n"));
        assert!(none.due_between(from, to, late).is_empty());
        assert_eq!(none.due_between(from, utc("2026-01-01T05:00:30Z"), late), [utc("2026-01-01T05:00:00Z")]);
        let all = one(&format!("{base}catch-up = \"all\"\ncatch-up-limit = 3\n"));
        assert_eq!(
            all.due_between(from, to, late),
            [utc("2026-01-01T03:00:00Z"), utc("2026-01-01T04:00:00Z"), utc("2026-01-01T05:00:00Z")]
        );
    }

    #[test]
    fn overdue_is_measured_from_the_last_success() {
        let s = one(
            "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"0 2 * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"26h\"\n",
        );
        let now = utc("2026-01-03T04:00:00Z");
        assert!(!s.overdue(Some(utc("2026-01-02T02:30:00Z")), None, now));
        assert!(s.overdue(Some(utc("2026-01-02T01:59:00Z")), None, now));
        assert!(!s.overdue(None, None, now), "nothing ran yet: no reference");
        assert!(s.overdue(None, Some(utc("2026-01-01T02:00:00Z")), now));
    }

    /// RB130 in a schedules file too: a NUL in any string or key, at its place.
    #[test]
    fn a_nul_in_a_schedules_file_is_refused_at_its_place() {
        let fine = "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"0 2 * * *\"\ntime-zone = \"UTC\"\nparams = { note = \"n\" }\nexpect-success-within = \"26h\"\nnotify = { webhook = \"https://h.example/x\" }\n";
        assert!(check(&Source::new("s.toml", fine), CheckOptions::default()).diagnostics.is_empty());
        for (from, to) in [
            ("\"a.toml\"", "\"a\\u0000.toml\""),
            ("\"UTC\"", "\"UTC\\u0000\""),
            ("\"n\"", "\"n\\U00000000\""),
            ("/x\"", "/x\\u0000\""),
            ("note", "\"no\\u0000te\""),
        ] {
            let text = fine.replacen(from, to, 1);
            let d = check(&Source::new("s.toml", text.clone()), CheckOptions::default()).diagnostics;
            let nul = d.iter().find(|d| d.code == Code::NulInText);
            assert!(
                nul.is_some_and(|d| d.source.slice(d.span).is_some_and(|t| t.contains("0000"))),
                "{text}: {d:?}"
            );
        }
    }

    #[test]
    fn seconds_only_in_test_mode() {
        let text = "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\n";
        let d = check(&Source::new("s.toml", text), CheckOptions::default()).diagnostics;
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Code::ScheduleCron);
        let Checked { schedules: s, diagnostics: d, .. } =
            check(&Source::new("s.toml", text), CheckOptions { seconds: true });
        assert!(d.is_empty(), "{d:?}");
        let next = s[0].next_after(utc("2026-01-01T00:00:00Z"), 2);
        assert_eq!(next[1].with_timezone(&Utc), utc("2026-01-01T00:00:02Z"));
    }

    #[test]
    fn the_file_kind_is_told_by_its_tables() {
        assert!(is_schedules_file("[schedule.a]\ncron = \"x\"\n"));
        assert!(!is_schedules_file("[runbook]\nname = \"a\"\n[steps.a]\nrun = \"x\"\n"));
        assert!(!is_schedules_file("[runbook]\nname = \"a\"\n[schedule.a]\n"));
        assert!(!is_schedules_file("not toml ["));
    }

    /// Promise 5 for schedules files: whatever the text, `check` returns (no panic), every
    /// diagnostic points inside the file, and a file without an error yields schedules
    /// whose fire times can be computed. Texts are built from the pieces a schedules file
    /// is made of, wrong ones included (a corpus far larger than the examples).
    #[test]
    fn check_never_panics_and_points_inside_the_file() {
        let pieces = [
            "[schedule.a]\n",
            "[schedule.B-1]\n",
            "[runbook]\n",
            "runbook = \"r.toml\"\n",
            "runbook = \"/abs\"\n",
            "cron = \"0 2 * * *\"\n",
            "cron = \"*/0 * * * *\"\n",
            "cron = \"59 23 31 2 *\"\n",
            "cron = \"0 0 L * 5#3\"\n",
            "cron = \"\u{1F980} * * * *\"\n",
            "cron = \"99999999999999999999 * * * *\"\n",
            "cron = \"\"\n",
            "time-zone = \"Europe/Madrid\"\n",
            "time-zone = \"\"\n",
            "time-zone = 5\n",
            "overlap = \"queue\"\n",
            "catch-up = \"all\"\n",
            "catch-up-limit = -9223372036854775808\n",
            "catch-up-limit = 1000\n",
            "expect-success-within = \"99999999999y\"\n",
            "expect-success-within = \"26h\"\n",
            "remind-every = \"0s\"\n",
            "params = { a = 1, b = [1, 2], c = { d = 1 } }\n",
            "notify = { webhook = \"ftp://x\" }\n",
            "notify = 3\n",
            "schedule = 1\n",
            "= \n",
            "[schedule]\n",
            "[[schedule.c]]\n",
            "\"\"\"\n",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let from = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap_or_default();
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(next() % 12) {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            for seconds in [false, true] {
                let source = Source::new("s.toml", text.clone());
                let c = check(&source, CheckOptions { seconds });
                for d in &c.diagnostics {
                    assert!(d.span.end <= text.len() && d.span.start <= d.span.end, "{text:?}: {d}");
                }
                if c.diagnostics.is_empty() {
                    valid += c.schedules.len();
                } else {
                    invalid += 1;
                }
                if c.diagnostics.is_empty() {
                    for s in &c.schedules {
                        let _ = s.next_after(from, 3);
                        let _ =
                            s.due_between(from, from + chrono::Duration::hours(2), Duration::from_secs(60));
                    }
                }
            }
        }
        assert!(invalid > 1000, "the corpus is not varied: {valid} valid, {invalid} invalid");
        // And every combination of valid expressions and zones (DST of one hour, of 30
        // minutes at Lord Howe, none, a 45-minute offset) is valid, and fires strictly
        // forward in real time across a whole year of transitions.
        let crons = [
            "0 2 * * *",
            "30 2 * * *",
            "*/15 * * * *",
            "0 3 * * SUN",
            "0 4 1 * *",
            "30 1 * * 1-5",
            "0 0 29 2 *",
        ];
        let zones = ["UTC", "Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"];
        for cron in crons {
            for zone in zones {
                let text = format!(
                    "[schedule.a]\nrunbook = \"r.toml\"\ncron = \"{cron}\"\ntime-zone = \"{zone}\"\n"
                );
                let s = one(&text);
                let times = s.next_after(from, 400);
                assert!(times.len() >= 4, "{cron} in {zone}");
                for pair in times.windows(2) {
                    assert!(pair[0] < pair[1], "{cron} in {zone}: {} then {}", pair[0], pair[1]);
                }
            }
        }
    }

    #[test]
    fn notice_retries_back_off_from_one_pass_to_a_cap() {
        let pass = Duration::from_millis(100);
        let waits: Vec<u64> = (1..=12).map(|n| notice_retry_after(n, pass).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(notice_retry_after(u32::MAX, pass), NOTICE_RETRY_CAP);
        let slow = Duration::from_secs(600);
        assert_eq!(notice_retry_after(1, slow), slow);
        assert_eq!(notice_retry_after(9, slow), slow);
        assert!(NOTICE_LEASE > NOTICE_TIMEOUT);
    }

    #[test]
    fn the_next_attempt_of_a_notice_is_decided_by_its_attempts() {
        let at = |attempt, outcome: Option<&str>, lease, retry| NoticeAttempt {
            attempt,
            outcome: outcome.map(str::to_string),
            lease_until_ms: lease,
            retry_at_ms: retry,
        };
        assert_eq!(next_notice(&[], 0), NoticeNext::Try { attempt: 1, lapsed: None });
        assert_eq!(next_notice(&[at(1, None, 100, None)], 50), NoticeNext::Wait);
        assert_eq!(
            next_notice(&[at(1, None, 100, None)], 100),
            NoticeNext::Try { attempt: 2, lapsed: Some(1) }
        );
        let failed = at(1, Some("failed"), 100, Some(200));
        assert_eq!(next_notice(std::slice::from_ref(&failed), 150), NoticeNext::Wait);
        assert_eq!(
            next_notice(std::slice::from_ref(&failed), 200),
            NoticeNext::Try { attempt: 2, lapsed: None }
        );
        let lapsed = at(1, Some("lapsed"), 100, None);
        assert_eq!(
            next_notice(&[lapsed.clone(), at(2, Some("failed"), 0, Some(10))], 20),
            NoticeNext::Try { attempt: 3, lapsed: None }
        );
        // A lapsed attempt that delivered after all settles the notice.
        assert_eq!(
            next_notice(&[at(1, Some("delivered"), 0, None), at(2, None, 999, None)], 0),
            NoticeNext::Settled
        );
        assert_eq!(next_notice(&[at(0, Some("legacy"), 0, None)], 0), NoticeNext::Settled);
    }
}

/// Red team adv23 F2, the class: workers that start and stop (SIGTERM, restarts, outages)
/// around the due times of a schedule never lose one in silence, whether or not it ever
/// fired. Each worker's passes are simulated as `runbook worker` makes them (the cursor of
/// [`count_from`], the catch-up of [`Schedule::due_search`], a dropped due time recorded as
/// missed), over random crons, time zones, policies, downtimes and polls; after every
/// worker, the latest due time since the first watch is recorded (fired or missed), and
/// nothing before the first watch is.
#[cfg(test)]
mod restart_gaps {
    use super::*;
    use proptest::prelude::*;

    type Cursor = fn(Option<DateTime<Utc>>, Option<DateTime<Utc>>, DateTime<Utc>) -> DateTime<Utc>;

    const CRONS: [&str; 8] = [
        "0 * * * * *",
        "*/7 * * * * *",
        "0 0 * * * *",
        "30 15 2 * * *",
        "0 30 2 * * SUN",
        "0 0 0 1 * *",
        "0 0 3 * * *",
        "0 0 9-17 * * MON-FRI",
    ];
    const ZONES: [&str; 3] = ["UTC", "Europe/Madrid", "America/New_York"];
    const POLICIES: [&str; 4] = [
        "catch-up = \"latest\"",
        "catch-up = \"none\"",
        "catch-up = \"all\"",
        "catch-up = \"all\"\ncatch-up-limit = 2",
    ];
    const LATE: Duration = Duration::from_secs(60);

    fn schedule(cron: &str, zone: &str, policy: &str) -> Schedule {
        let text = format!(
            "[schedule.x]\nrunbook = \"a.toml\"\ncron = \"{cron}\"\ntime-zone = \"{zone}\"\n{policy}\n"
        );
        let mut c = check(&Source::new("s.toml", text), CheckOptions { seconds: true });
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
        c.schedules.remove(0)
    }

    /// One worker: it starts `gap` seconds after the previous one stopped, polls every
    /// `poll` seconds, and stops after `len` seconds (or its 12th pass).
    #[derive(Debug, Clone)]
    struct Worker {
        gap: i64,
        len: i64,
        poll: i64,
    }

    /// What the store holds: the first watch, and each due time taken (fired or missed).
    #[derive(Debug, Default)]
    struct Store {
        first_watch: Option<DateTime<Utc>>,
        taken: BTreeMap<DateTime<Utc>, &'static str>,
    }

    /// One pass of a worker started at `start`, at `now`, as `Firing::fire_due` makes it.
    fn pass(s: &Schedule, store: &mut Store, start: DateTime<Utc>, now: DateTime<Utc>, cursor: Cursor) {
        let last = store.taken.keys().next_back().copied();
        // The first worker to find the journal empty records its watch.
        let watch = match last {
            Some(_) => None,
            None => Some(*store.first_watch.get_or_insert(start)),
        };
        let from = cursor(last, watch, start);
        let due = s.due_search(from, now, LATE);
        let late = chrono::Duration::from_std(LATE).unwrap_or_default();
        if let Some(dropped) = due.dropped
            && (s.catch_up == CatchUp::None || now.signed_duration_since(dropped) > late)
        {
            store.taken.entry(dropped).or_insert("missed");
        }
        for t in due.times {
            store.taken.entry(t).or_insert("fired");
        }
    }

    /// Runs `workers` one after the other from `t0`; after each, the problem with the
    /// store's record, if any.
    fn run(s: &Schedule, t0: DateTime<Utc>, workers: &[Worker], cursor: Cursor) -> Result<(), String> {
        let oracle = Schedule { catch_up: CatchUp::Latest, ..s.clone() };
        let mut store = Store::default();
        let mut at = t0;
        for (i, w) in workers.iter().enumerate() {
            let start = at + chrono::Duration::seconds(w.gap);
            let passes = (w.len / w.poll).min(12);
            let mut now = start;
            for k in 0..=passes {
                now = start + chrono::Duration::seconds(k * w.poll);
                pass(s, &mut store, start, now, cursor);
            }
            at = now;
            let Some(first) = store.first_watch else { return Err("no first watch".into()) };
            if let Some((early, _)) = store.taken.iter().find(|(t, _)| **t <= first) {
                return Err(format!("worker {i}: due time {early} before the first watch {first} was taken"));
            }
            let latest = oracle.due_search(first, now, Duration::ZERO).times.last().copied();
            let taken = store.taken.keys().next_back().copied();
            if latest.is_some() && taken < latest {
                return Err(format!(
                    "worker {i} (stopped at {now}): the due time {latest:?} since the first watch {first} was neither fired nor recorded (latest taken: {taken:?})"
                ));
            }
        }
        Ok(())
    }

    fn worker() -> impl Strategy<Value = Worker> {
        (prop_oneof![0i64..120, 0i64..7_200, 0i64..400_000], 0i64..7_200, 1i64..900)
            .prop_map(|(gap, len, poll)| Worker { gap, len, poll })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn no_due_time_is_lost_in_silence_across_worker_restarts(
            cron in 0..CRONS.len(),
            zone in 0..ZONES.len(),
            policy in 0..POLICIES.len(),
            t0 in 1_767_225_600i64..1_798_761_600, // 2026
            workers in proptest::collection::vec(worker(), 1..7),
        ) {
            let s = schedule(CRONS[cron], ZONES[zone], POLICIES[policy]);
            let t0 = Utc.timestamp_opt(t0, 0).single().unwrap_or_default();
            prop_assert_eq!(run(&s, t0, &workers, count_from), Ok(()));
        }
    }

    /// Red team adv24 S1, S2, the class: one worker whose wall clock is wrong (ahead by up
    /// to years, or behind by up to decades) watches a never-fired schedule first, then
    /// workers with right clocks start and stop. The watch record it leaves must neither
    /// switch the restart-gap catch-up off (a start in the future) nor make the schedule
    /// catch up due times from before the store existed (a start in the past). After every
    /// right worker, the latest due time since the first right worker's start is taken, and
    /// no due time before the store's beginning ever is.
    fn run_with_a_wrong_clock(
        s: &Schedule,
        t0: DateTime<Utc>,
        skew: i64,
        workers: &[Worker],
        believe_all: bool,
    ) -> Result<(), String> {
        let oracle = Schedule { catch_up: CatchUp::Latest, ..s.clone() };
        // The store is made at t0 (on a right clock); the wrong worker watches first.
        let began = t0;
        let wrong = t0 + chrono::Duration::seconds(5);
        let liar = wrong + chrono::Duration::seconds(skew);
        let mut claims = vec![WatchClaim { since: liar, recorded: liar, mine: false }];
        let mut taken: BTreeMap<DateTime<Utc>, &'static str> = BTreeMap::new();
        let mut at = wrong + chrono::Duration::seconds(10);
        let mut first_right: Option<DateTime<Utc>> = None;
        for (i, w) in workers.iter().enumerate() {
            let start = at + chrono::Duration::seconds(w.gap);
            first_right.get_or_insert(start);
            let passes = (w.len / w.poll).min(12);
            let mut now = start;
            for k in 0..=passes {
                now = start + chrono::Duration::seconds(k * w.poll);
                let last = taken.keys().next_back().copied();
                let watch = match last {
                    Some(_) => None,
                    None if believe_all => claims.iter().map(|c| c.since).min(),
                    None => {
                        let fw = first_watch(&claims, Some(began), start, now);
                        if fw.rewatch {
                            claims.push(WatchClaim { since: start, recorded: now, mine: false });
                        }
                        fw.from
                    }
                };
                let from = count_from(last, watch, start);
                if from > now + CLOCK_SKEW {
                    return Err(format!("worker {i}: counts from {from}, after its now {now}"));
                }
                let due = s.due_search(from, now, LATE);
                let late = chrono::Duration::from_std(LATE).unwrap_or_default();
                if let Some(dropped) = due.dropped
                    && (s.catch_up == CatchUp::None || now.signed_duration_since(dropped) > late)
                {
                    taken.entry(dropped).or_insert("missed");
                }
                for t in due.times {
                    taken.entry(t).or_insert("fired");
                }
            }
            at = now;
            if let Some((early, _)) = taken.iter().find(|(t, _)| **t < began) {
                return Err(format!(
                    "worker {i}: due time {early} before the store began ({began}) was taken"
                ));
            }
            let Some(first) = first_right else { return Err("no worker".into()) };
            let latest = oracle.due_search(first, now, Duration::ZERO).times.last().copied();
            let last = taken.keys().next_back().copied();
            if latest.is_some() && last < latest {
                return Err(format!(
                    "worker {i} (stopped at {now}): the due time {latest:?} since the first right watch {first} was neither fired nor recorded (latest taken: {last:?}; the wrong clock's watch {liar})"
                ));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn a_watch_from_a_wrong_clock_neither_silences_nor_invents_due_times(
            cron in 0..CRONS.len(),
            zone in 0..ZONES.len(),
            policy in 0..POLICIES.len(),
            t0 in 1_767_225_600i64..1_798_761_600, // 2026
            skew in prop_oneof![
                120i64..86_400,                 // ahead, up to a day
                86_400i64..20 * 31_536_000,     // ahead, up to 20 years
                -2_592_000i64..-120,            // behind, up to 30 days
                -1_790_000_000i64..-2_592_000,  // behind, down to 1970
            ],
            workers in proptest::collection::vec(worker(), 1..6),
        ) {
            let s = schedule(CRONS[cron], ZONES[zone], POLICIES[policy]);
            let t0 = Utc.timestamp_opt(t0, 0).single().unwrap_or_default();
            prop_assert_eq!(run_with_a_wrong_clock(&s, t0, skew, &workers, false), Ok(()));
        }

        /// Whatever the claims, the start counted from is never after the reader's now,
        /// never before the store's beginning, and never after a claim of a right clock.
        #[test]
        fn the_first_watch_is_between_the_store_s_beginning_and_now(
            began in 1_700_000_000i64..1_800_000_000,
            age in 0i64..100_000_000,
            up in 0i64..1_000_000,
            claims in proptest::collection::vec(
                (-2_000_000_000i64..2_000_000_000, 0i64..1_000, any::<bool>()), 0..6),
            honest in proptest::option::of((0u32..=1000, 0i64..1_000)),
        ) {
            let at = |s: i64| Utc.timestamp_opt(s, 0).single().unwrap_or_default();
            let now = began + age;
            let start = now - up.min(age);
            let mut claims: Vec<WatchClaim> = claims
                .iter()
                .map(|&(off, late, mine)| WatchClaim {
                    since: at(now + off),
                    recorded: at(now + off + late),
                    mine,
                })
                .collect();
            // A claim of a right clock: written between the store's beginning and now.
            let honest = honest.map(|(frac, late)| {
                let since = began + (age * i64::from(frac)) / 1000;
                let c = WatchClaim { since: at(since), recorded: at((since + late).min(now)), mine: false };
                claims.push(c);
                c
            });
            let fw = first_watch(&claims, Some(at(began)), at(start), at(now));
            if let Some(from) = fw.from {
                prop_assert!(from <= at(now) + CLOCK_SKEW, "{from} after now {}", at(now));
                prop_assert!(from >= at(began) - CLOCK_SKEW, "{from} before the store {}", at(began));
                prop_assert!(!fw.rewatch);
            }
            if let Some(h) = honest {
                prop_assert!(fw.from.is_some_and(|f| f <= h.since), "{:?} not before {}", fw.from, h.since);
            }
            // Every claim is either believed (counted in `from`) or doubted with a reason.
            prop_assert_eq!(fw.from.is_none(), fw.doubted.len() == claims.len());
        }
    }

    /// A store made by a clock that ran ahead (its beginning after the reader's now) bounds
    /// nothing: a right worker's watch and its own start are still believed.
    #[test]
    fn a_beginning_in_the_future_bounds_nothing() {
        let at = |s: i64| Utc.timestamp_opt(s, 0).single().unwrap_or_default();
        let (now, began) = (1_796_650_000, 1_796_650_000 + 86_400);
        let right = WatchClaim { since: at(now - 600), recorded: at(now - 600), mine: false };
        let fw = first_watch(&[right], Some(at(began)), at(now - 10), at(now));
        assert_eq!(fw.from, Some(at(now - 600)));
        let ahead = WatchClaim { since: at(now + 3_600), recorded: at(now + 3_600), mine: false };
        let fw = first_watch(&[ahead], Some(at(began)), at(now - 10), at(now));
        assert_eq!((fw.from, fw.rewatch), (None, true));
    }

    /// The red team's cases, and the property failing for the cursor before the fix (every
    /// claim believed, the earliest taken): the adv24 repro of S1 (a day ahead, workers
    /// :45-:55 and :05-:40, due every minute) and of S2 (30 days behind, daily at 02:00).
    #[test]
    fn the_wrong_clock_property_fails_when_every_watch_is_believed() {
        let minute = 1_796_650_000 - 1_796_650_000 % 60;
        let t0 = Utc.timestamp_opt(minute, 0).single().unwrap_or_default();
        let ahead = [Worker { gap: 30, len: 10, poll: 1 }, Worker { gap: 10, len: 35, poll: 1 }];
        let daily = [Worker { gap: 5, len: 25, poll: 1 }];
        for policy in POLICIES {
            let s = schedule("0 * * * * *", "UTC", policy);
            assert!(run_with_a_wrong_clock(&s, t0, 86_400, &ahead, true).is_err(), "{policy}");
            assert_eq!(run_with_a_wrong_clock(&s, t0, 86_400, &ahead, false), Ok(()), "{policy}");
            let s = schedule("0 0 2 * * *", "UTC", policy);
            for skew in [-2_592_000, -1_796_000_000] {
                assert!(run_with_a_wrong_clock(&s, t0, skew, &daily, true).is_err(), "{policy} {skew}");
                assert_eq!(run_with_a_wrong_clock(&s, t0, skew, &daily, false), Ok(()), "{policy} {skew}");
            }
        }
    }

    /// The property fails for the cursor before the fix (a never-fired schedule counted from
    /// each worker's own start): the adv23 reproduction, a worker from :45 to :55 and the
    /// next from :05, a schedule due at :00, lost under every policy.
    #[test]
    fn the_property_fails_for_the_cursor_of_each_worker_s_own_start() {
        let before: Cursor = |last, _, start| last.unwrap_or(start);
        let t0 = Utc.timestamp_opt(1_796_650_000 - 1_796_650_000 % 60 + 45, 0).single().unwrap_or_default();
        let workers = [Worker { gap: 0, len: 10, poll: 1 }, Worker { gap: 10, len: 35, poll: 1 }];
        for policy in POLICIES {
            let s = schedule("0 * * * * *", "UTC", policy);
            assert!(run(&s, t0, &workers, before).is_err(), "{policy}");
            assert_eq!(run(&s, t0, &workers, count_from), Ok(()), "{policy}");
        }
    }
}
