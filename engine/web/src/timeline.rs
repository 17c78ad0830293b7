//! A run's timeline (a Gantt chart): each attempt of each step a bar from its start to its
//! end, retries side by side on the step's row, the time a step waited for approvals as a
//! bar of its own, compensations too, and the runbook's estimate of the step (where it
//! gives one) as a thin bar from the step's first start. Pure: numbers computed here from
//! the journal, drawn by `run.html` as inline SVG whose every text goes through the
//! template's autoescape (the graph's discipline). Linear in the records.

use std::collections::HashMap;
use std::time::Duration;

use runbook_core::journal::{Record, RunEvent};
use runbook_core::shown::one_line;
use serde::Serialize;

/// Width of the step names' column.
const LABEL_W: u32 = 190;
/// Width of the time axis.
const AXIS_W: u32 = 720;
const ROW_H: u32 = 20;
const BAR_H: u32 = 12;
const TOP: u32 = 24;
/// Characters of a step's name drawn (the whole name is its tooltip).
const LABEL: usize = 26;
/// The most rows drawn (then a note: the journal has the rest).
pub const MAX_ROWS: usize = 1000;

/// One bar.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    /// `ok`, `failed`, `retry` (an attempt that failed and was tried again), `running`,
    /// `waiting` (for approvals), `compensation`, `estimate`.
    pub kind: &'static str,
    /// The tooltip: what, how long.
    pub title: String,
}

/// One step's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub y: u32,
    pub label: String,
    pub name: String,
}

/// The drawing.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub width: u32,
    pub height: u32,
    pub label_w: u32,
    pub bar_h: u32,
    pub rows: Vec<Row>,
    pub bars: Vec<Bar>,
    /// The axis' end, as text (`1m 30s`).
    pub span: String,
    /// Rows not drawn (over [`MAX_ROWS`]).
    pub more: usize,
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as the journal writes it
/// (`2026-12-06T19:36:39.238Z`); `None` for any other text.
pub fn millis(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = ts.get(19..)?;
    let ms = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
            let three: String = digits.chars().chain("000".chars()).take(3).collect();
            if !frac[digits.len()..].eq("Z") {
                return None;
            }
            three.parse::<i64>().ok()?
        }
        None if rest == "Z" => 0,
        None => return None,
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// A duration as people read it: `850ms`, `12s`, `3m 05s`, `2h 10m`.
pub fn human(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// An open bar's key: the step, and what (`attempt`, `waiting`, `compensation`).
type Key = (String, &'static str);
/// An open bar: its row, since when, the attempt.
type Open = (usize, i64, u32);

/// A bar in time, before it is scaled.
struct Span {
    row: usize,
    from: i64,
    to: i64,
    kind: &'static str,
    title: String,
}

/// The timeline of `records`; the steps' estimates (low, high) from the runbook where it
/// gives them; `now` (ms) ends the bars still open (a run going on), else the last record
/// does. `None` when no step started.
pub fn timeline(
    records: &[Record],
    estimates: &HashMap<String, (Duration, Duration)>,
    now: Option<i64>,
) -> Option<Timeline> {
    let start = millis(&records.first()?.ts)?;
    let last = records.iter().rev().find_map(|r| millis(&r.ts)).unwrap_or(start);
    let end = now.map_or(last, |n| n.max(last));
    let mut rows: Vec<String> = Vec::new();
    let mut row_of: HashMap<String, usize> = HashMap::new();
    let mut spans: Vec<Span> = Vec::new();
    // Open bars: (step, what) -> (row, since, attempt).
    let mut open: HashMap<Key, Open> = HashMap::new();
    let mut first_start: HashMap<usize, i64> = HashMap::new();
    let mut row = |step: &str, rows: &mut Vec<String>| -> usize {
        *row_of.entry(step.to_string()).or_insert_with(|| {
            rows.push(step.to_string());
            rows.len() - 1
        })
    };
    for r in records {
        let Some(t) = millis(&r.ts) else { continue };
        let mut close =
            |step: &str, what: &'static str, kind: &'static str, word: &str, spans: &mut Vec<Span>| {
                if let Some((row, since, attempt)) = open.remove(&(step.to_string(), what)) {
                    let title = if what == "attempt" {
                        format!("{step}: attempt {attempt} {word}, {}", human(t.saturating_sub(since)))
                    } else {
                        format!("{step}: {word}, {}", human(t.saturating_sub(since)))
                    };
                    // A clock that stepped back: the bar from the earlier to the later time.
                    spans.push(Span { row, from: since.min(t), to: since.max(t), kind, title });
                }
            };
        match &r.event {
            RunEvent::StepStarted { step, attempt } => {
                let at = row(step, &mut rows);
                close(step, "waiting", "waiting", "waited for approval", &mut spans);
                first_start.entry(at).or_insert(t);
                open.insert((step.clone(), "attempt"), (at, t, *attempt));
            }
            RunEvent::AttemptFailed { step, .. } => close(step, "attempt", "retry", "failed", &mut spans),
            RunEvent::StepSucceeded { step, .. } => {
                close(step, "waiting", "waiting", "waited for approval", &mut spans);
                close(step, "attempt", "ok", "succeeded", &mut spans);
            }
            RunEvent::StepFailed { step, .. } => {
                close(step, "waiting", "waiting", "waited for approval, rejected", &mut spans);
                close(step, "attempt", "failed", "failed", &mut spans);
            }
            RunEvent::StepSkipped { step, .. } | RunEvent::ApprovalRejected { step, .. } => {
                close(step, "waiting", "waiting", "waited for approval", &mut spans);
            }
            RunEvent::ApprovalRequested { step, .. } => {
                let at = row(step, &mut rows);
                open.entry((step.clone(), "waiting")).or_insert((at, t, 0));
            }
            RunEvent::CompensationStarted { step, attempt } => {
                let at = row(step, &mut rows);
                open.insert((step.clone(), "compensation"), (at, t, *attempt));
            }
            RunEvent::CompensationSucceeded { step, .. } => {
                close(step, "compensation", "compensation", "compensation succeeded", &mut spans);
            }
            RunEvent::CompensationFailed { step, .. } => {
                close(step, "compensation", "failed", "compensation failed", &mut spans);
            }
            RunEvent::RunStarted { .. }
            | RunEvent::RunInterrupted { .. }
            | RunEvent::RunResumed { .. }
            | RunEvent::OperatorDecision { .. }
            | RunEvent::CompensationDecision { .. }
            | RunEvent::ApprovalGranted { .. }
            | RunEvent::RunSuspended { .. }
            | RunEvent::EscalationFired { .. }
            | RunEvent::RunFinished { .. }
            | RunEvent::LogKept { .. }
            | RunEvent::ConfirmationRequested { .. }
            | RunEvent::ConfirmationGiven { .. }
            | RunEvent::PreconditionFailed { .. }
            | RunEvent::RunAbandoned { .. }
            | RunEvent::ScheduleFired { .. } => {}
        }
    }
    if rows.is_empty() {
        return None;
    }
    // Bars still open: to the end (a run going on, or one whose engine stopped).
    let finished = records
        .iter()
        .any(|r| matches!(r.event, RunEvent::RunFinished { .. } | RunEvent::RunAbandoned { .. }));
    let mut still: Vec<(Key, Open)> = open.into_iter().collect();
    still.sort_by_key(|(_, (row, since, _))| (*row, *since));
    for ((step, what), (row, since, _)) in still {
        let (kind, word) = match what {
            "waiting" => ("waiting", if finished { "waited for approval" } else { "waiting for approval" }),
            _ => ("running", if finished { "no end recorded" } else { "running" }),
        };
        spans.push(Span {
            row,
            from: since,
            to: end,
            kind,
            title: format!("{step}: {word}, {}", human(end.saturating_sub(since))),
        });
    }
    // Estimates, from each step's first start.
    for (step, &at) in &row_of {
        if let (Some((low, high)), Some(&from)) = (estimates.get(step), first_start.get(&at)) {
            let ms = |d: &Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let (low, high) = (ms(low), ms(high));
            let est = if low == high { human(high) } else { format!("{}..{}", human(low), human(high)) };
            spans.push(Span {
                row: at,
                from,
                to: from.saturating_add(high),
                kind: "estimate",
                title: format!("{step}: estimate {est}"),
            });
        }
    }
    // Journal times are not monotonic (a clock stepped back): the axis runs from the earliest
    // time to the latest, every difference saturates, every x is clamped to the axis.
    let start = spans.iter().map(|s| s.from).min().unwrap_or(start).min(start);
    let span_end = spans.iter().map(|s| s.to).max().unwrap_or(end).max(end).max(start.saturating_add(1));
    let scale = AXIS_W as f64 / span_end.saturating_sub(start) as f64;
    let x = |t: i64| {
        LABEL_W + ((t.saturating_sub(start).max(0) as f64) * scale).round().min(AXIS_W as f64) as u32
    };
    let shown = rows.len().min(MAX_ROWS);
    let y = |row: usize| TOP + row as u32 * ROW_H;
    let mut bars: Vec<Bar> = spans
        .into_iter()
        .filter(|s| s.row < shown)
        .map(|s| {
            let (x1, x2) = (x(s.from.min(s.to)), x(s.from.max(s.to)));
            let thin = s.kind == "estimate";
            Bar {
                x: x1,
                y: y(s.row) + if thin { BAR_H + 1 } else { 0 },
                w: x2.saturating_sub(x1).max(2),
                kind: s.kind,
                title: one_line(&s.title),
            }
        })
        .collect();
    // Estimates under the attempts.
    bars.sort_by_key(|b| b.kind != "estimate");
    Some(Timeline {
        width: LABEL_W + AXIS_W + 10,
        height: TOP + shown as u32 * ROW_H + 6,
        label_w: LABEL_W,
        bar_h: BAR_H,
        rows: rows
            .iter()
            .take(shown)
            .enumerate()
            .map(|(i, name)| {
                let name = one_line(name);
                let label = if name.chars().count() > LABEL {
                    format!("{}…", name.chars().take(LABEL - 1).collect::<String>())
                } else {
                    name.clone()
                };
                Row { y: y(i) + BAR_H - 2, label, name }
            })
            .collect(),
        bars,
        span: human(span_end.saturating_sub(start)),
        more: rows.len() - shown,
    })
}

/// The timeline of a run's page: the estimates of its runbook as it started (when at hand),
/// its open bars to now while it is not finished.
pub fn of_run(records: &[Record], shape: Option<&crate::pages::Shape>, going: bool) -> Option<Timeline> {
    let none = HashMap::new();
    let estimates = shape.map_or(&none, |s| s.estimates());
    let now = going.then(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    });
    timeline(records, estimates, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, ts: &str, event: RunEvent) -> Record {
        Record {
            run_id: "r".into(),
            seq,
            ts: ts.into(),
            event,
            prev_hash: String::new(),
            hash: String::new(),
            db_role: None,
        }
    }

    #[test]
    fn times_are_read_as_the_journal_writes_them() {
        assert_eq!(millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(millis("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(millis("2026-12-06T19:36:39.238Z"), Some(1_796_585_799_238));
        for bad in [
            "",
            "2026-12-06",
            "2026-13-06T00:00:00Z",
            "2026-12-06T19:36:39.238",
            "2026-12-06T19:36:39+01:00",
            "x026-12-06T19:36:39Z",
        ] {
            assert_eq!(millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn retries_waits_and_estimates_are_bars() {
        let started = RunEvent::RunStarted {
            runbook: "r".into(),
            file: String::new(),
            files: Vec::new(),
            params: Default::default(),
            operator: "o".into(),
            engine_version: "0".into(),
            submitted_by: None,
            log_digests: false,
            report: Default::default(),
        };
        let records = vec![
            rec(1, "2026-01-01T00:00:00Z", started),
            rec(2, "2026-01-01T00:00:00Z", RunEvent::StepStarted { step: "a".into(), attempt: 1 }),
            rec(
                3,
                "2026-01-01T00:00:10Z",
                RunEvent::AttemptFailed {
                    step: "a".into(),
                    attempt: 1,
                    exit_code: Some(1),
                    reason: "x".into(),
                    output: None,
                },
            ),
            rec(4, "2026-01-01T00:00:12Z", RunEvent::StepStarted { step: "a".into(), attempt: 2 }),
            rec(
                5,
                "2026-01-01T00:00:20Z",
                RunEvent::StepSucceeded { step: "a".into(), attempt: 2, outputs: Default::default() },
            ),
            rec(
                6,
                "2026-01-01T00:00:20Z",
                RunEvent::ApprovalRequested {
                    step: "<b>gate</b>".into(),
                    prompt: "p".into(),
                    approvers: Vec::new(),
                    min_approvals: 1,
                    allow_self_approval: true,
                    requested_by: "o".into(),
                    inputs: Default::default(),
                    deadline_ms: None,
                    takes: None,
                },
            ),
            rec(
                7,
                "2026-01-01T00:01:00Z",
                RunEvent::StepSucceeded {
                    step: "<b>gate</b>".into(),
                    attempt: 1,
                    outputs: Default::default(),
                },
            ),
        ];
        let mut est = HashMap::new();
        est.insert("a".to_string(), (Duration::from_secs(5), Duration::from_secs(15)));
        let t = timeline(&records, &est, None).expect("a timeline");
        let kinds: Vec<&str> = t.bars.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, ["estimate", "retry", "ok", "waiting"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.span, "1m 00s");
        assert!(t.bars[1].x < t.bars[2].x && t.bars[2].x < t.bars[3].x);
        assert!(t.bars[3].title.contains("waited for approval, 40.0s"), "{}", t.bars[3].title);
        assert!(t.bars[0].title.contains("estimate 5.0s..15.0s"), "{}", t.bars[0].title);
        // The bars fit the axis.
        assert!(t.bars.iter().all(|b| b.x + b.w <= t.width));
        // Running: the open attempt runs to now.
        let t = timeline(&records[..4], &HashMap::new(), Some(millis("2026-01-01T00:00:30Z").expect("t")))
            .expect("t");
        assert_eq!(t.bars.last().map(|b| b.kind), Some("running"));
    }

    /// adv16u F2: journal times are not monotonic (an NTP step, a resume on a host whose
    /// clock is behind): every order of a step's records, the run's own start after them,
    /// times years apart, an absurd estimate, and `now` before the records, each drawn
    /// without a panic, every bar inside the axis.
    #[test]
    fn a_clock_that_steps_back_draws_bars_inside_the_axis() {
        let times = [
            "2026-12-06T21:16:47.000Z",
            "2026-12-05T21:16:48.000Z",
            "2026-12-06T21:16:46.999Z",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
        ];
        let step = |ts: &str, seq, ev| rec(seq, ts, ev);
        for a in times {
            for b in times {
                for c in times {
                    let records = vec![
                        step(a, 1, RunEvent::StepStarted { step: "s".into(), attempt: 1 }),
                        step(
                            b,
                            2,
                            RunEvent::AttemptFailed {
                                step: "s".into(),
                                attempt: 1,
                                exit_code: Some(1),
                                reason: "x".into(),
                                output: None,
                            },
                        ),
                        step(c, 3, RunEvent::StepStarted { step: "s".into(), attempt: 2 }),
                        step(
                            a,
                            4,
                            RunEvent::StepSucceeded {
                                step: "s".into(),
                                attempt: 2,
                                outputs: Default::default(),
                            },
                        ),
                        step(c, 5, RunEvent::CompensationStarted { step: "t".into(), attempt: 1 }),
                    ];
                    let mut est = HashMap::new();
                    est.insert("s".to_string(), (Duration::from_secs(1), Duration::MAX));
                    for now in [None, Some(0), Some(i64::MIN), Some(i64::MAX)] {
                        let t = timeline(&records, &est, now).expect("a timeline");
                        for bar in &t.bars {
                            assert!(bar.w >= 2 && bar.x + bar.w <= t.width, "{a} {b} {c} {now:?}: {bar:?}");
                        }
                    }
                }
            }
        }
    }
}
