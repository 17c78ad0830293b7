//! What a run's page shows, built from what the store read: pure functions over the
//! journal, each linear in its size. The run's status and its steps' states are
//! `runbook_core::audit::summary` and `runbook_core::journal::fold`, as `runbook show` has
//! them.

use std::collections::{BTreeMap, HashMap};

use runbook_core::journal::{self, Record, RunEvent};
use runbook_core::shown::one_line;
use serde::Serialize;

/// The longest value shown in a table cell (the whole is in `runbook audit`).
const BRIEF: usize = 200;

/// A value on one line, cut at [`BRIEF`] characters.
pub fn brief(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let line = one_line(&text);
    if line.chars().count() > BRIEF {
        format!("{}…", line.chars().take(BRIEF - 1).collect::<String>())
    } else {
        line
    }
}

/// One step's row.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    /// Its journal path.
    pub step: String,
    /// Its title in the runbook, when the runbook is at hand.
    pub title: Option<String>,
    /// The word `runbook show` prints.
    pub status: &'static str,
    pub attempts: u32,
    pub started: Option<String>,
    pub last: Option<String>,
    pub reason: Option<String>,
    pub compensation: Option<&'static str>,
    pub outputs: Vec<(String, String)>,
    /// `granted of needed approval(s)`, for an approval step that waits.
    pub approval: Option<String>,
    /// The end of the output of its last failure, line by line.
    pub failure_output: Vec<String>,
}

/// The rows of the steps, in the order the journal first names them.
pub fn step_rows(
    records: &[Record],
    folded: &journal::RunState,
    titles: &HashMap<String, String>,
) -> Vec<StepRow> {
    let mut times: HashMap<&str, (Option<&str>, &str)> = HashMap::new();
    for r in records {
        if let Some(step) = r.event.step() {
            let entry = times.entry(step).or_insert((None, r.ts.as_str()));
            if entry.0.is_none() && matches!(r.event, RunEvent::StepStarted { .. }) {
                entry.0 = Some(r.ts.as_str());
            }
            entry.1 = r.ts.as_str();
        }
    }
    folded
        .order
        .iter()
        .filter_map(|step| {
            let s = folded.steps.get(step)?;
            let (started, last) = times.get(step.as_str()).copied().unwrap_or((None, ""));
            let compensation = match s.compensation {
                journal::CompensationStatus::None => None,
                journal::CompensationStatus::Started => Some("started"),
                journal::CompensationStatus::Succeeded => Some("succeeded"),
                journal::CompensationStatus::Failed => Some("failed"),
                journal::CompensationStatus::Skipped => Some("skipped"),
            };
            let approval = match (&s.status, &s.approval) {
                (journal::StepStatus::AwaitingApproval, Some(a)) => {
                    let from =
                        if a.approvers.is_empty() { "anyone".to_string() } else { a.approvers.join(", ") };
                    Some(one_line(&format!(
                        "{} of {} approval(s); from {from}",
                        a.granted_by.len(),
                        a.min_approvals
                    )))
                }
                _ => None,
            };
            Some(StepRow {
                step: one_line(step),
                title: titles.get(step).map(|t| one_line(t)),
                status: s.status.as_str(),
                attempts: s.attempts,
                started: started.map(str::to_string),
                last: (!last.is_empty()).then(|| last.to_string()),
                reason: s.reason.as_deref().map(one_line),
                compensation,
                outputs: s.outputs.iter().map(|(k, v)| (one_line(k), brief(v))).collect(),
                approval,
                failure_output: s
                    .output
                    .as_deref()
                    .map(|o| o.lines().map(one_line).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// One journal record's row.
#[derive(Debug, Clone, Serialize)]
pub struct RecordRow {
    pub seq: u64,
    pub ts: String,
    pub kind: &'static str,
    pub step: Option<String>,
    pub hash: String,
}

pub fn record_rows(records: &[Record]) -> Vec<RecordRow> {
    records
        .iter()
        .map(|r| RecordRow {
            seq: r.seq,
            ts: r.ts.clone(),
            kind: r.event.kind(),
            step: r.event.step().map(one_line),
            hash: r.hash.chars().take(16).collect(),
        })
        .collect()
}

/// The most bytes of one attempt's output a run page shows (its tail).
pub const LOG_TAIL: usize = 16 * 1024;
/// The most bytes of output one run page shows in all (adv16 f3: 60 steps of 1 MiB made a
/// page of 293 MB). Escaping can make the page up to 6 times more.
pub const LOG_TOTAL: usize = 512 * 1024;

/// One attempt's kept output.
#[derive(Debug, Clone, Serialize)]
pub struct LogView {
    pub step: String,
    pub attempt: i64,
    /// What vouches for it.
    pub label: String,
    /// (stream, text): `out` or `err`.
    pub lines: Vec<(&'static str, String)>,
    /// Bytes of this attempt's output not shown (before the lines shown), and the command
    /// that prints them all.
    pub omitted: usize,
    pub more: Option<String>,
}

/// The logs the journal vouches for (`runbook_core::audit::vouched_logs`, as `runbook
/// logs` has them), line by line, bounded (class rule: a page's size does not grow with
/// the output a run kept): the last [`LOG_TAIL`] bytes of each attempt while the page
/// has shown less than [`LOG_TOTAL`] bytes in all, the rest counted and named with the
/// command that prints it (`runbook logs RUN STEP`).
pub fn log_views(run: &str, logs: BTreeMap<(String, i64), (String, String)>) -> Vec<LogView> {
    let mut budget = LOG_TOTAL;
    logs.into_iter()
        .map(|((step, attempt), (label, body))| {
            let room = LOG_TAIL.min(budget);
            // The tail, from a line's start (or a character's when one line is longer).
            let mut from = body.len().saturating_sub(room);
            while !body.is_char_boundary(from) {
                from += 1;
            }
            if from > 0
                && let Some(nl) = body[from..].find('\n')
                && nl + 1 < body.len() - from
            {
                from += nl + 1;
            }
            let shown = &body[from..];
            budget -= shown.len().min(budget);
            LogView {
                step: one_line(&step),
                attempt,
                label: one_line(&label),
                lines: shown
                    .lines()
                    .map(|line| match line.split_once(' ') {
                        Some(("err", text)) => ("err", one_line(text)),
                        Some(("out", text)) => ("out", one_line(text)),
                        _ => ("out", one_line(line)),
                    })
                    .collect(),
                omitted: from,
                more: (from > 0).then(|| format!("runbook logs {run} {}", one_line(&step))),
            }
        })
        .collect()
}

/// What labels live output (issue 16): not vouched for by the journal.
pub const LIVE_LABEL: &str = "live, not yet kept: the engine publishes this output as the step runs; the journal does not vouch for it, and the kept output replaces it once the step's log is kept";

/// The live rows of the attempts whose log the journal does not keep yet (a row of a kept
/// attempt is worth nothing: the kept, verified output replaces it).
pub fn live_not_kept(
    records: &[Record],
    rows: Vec<runbook_store::LiveOutput>,
) -> Vec<runbook_store::LiveOutput> {
    let kept = runbook_core::audit::kept_logs(records);
    rows.into_iter().filter(|r| !kept.contains_key(&(r.step.clone(), r.attempt))).collect()
}

/// Live rows as the page shows them: as [`log_views`], labelled [`LIVE_LABEL`], the bytes
/// the tail does not hold counted as omitted.
pub fn live_views(run: &str, rows: Vec<runbook_store::LiveOutput>) -> Vec<LogView> {
    let mut before = BTreeMap::new();
    let mut logs = BTreeMap::new();
    for r in rows {
        let gone = usize::try_from(r.bytes_seen).unwrap_or(0).saturating_sub(r.tail.len());
        before.insert((one_line(&r.step), r.attempt), gone);
        logs.insert((r.step, r.attempt), (LIVE_LABEL.to_string(), r.tail));
    }
    let mut views = log_views(run, logs);
    for v in &mut views {
        v.omitted += before.get(&(v.step.clone(), v.attempt)).copied().unwrap_or(0);
        v.more = None;
    }
    views
}

/// The parameters `run_started` journaled (never a secret: secrets are not parameters).
pub fn params(records: &[Record]) -> Vec<(String, String)> {
    let Some(RunEvent::RunStarted { params, .. }) = records.first().map(|r| &r.event) else {
        return Vec::new();
    };
    params.iter().map(|(k, v)| (one_line(k), brief(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_or_multi_line_value_is_one_line_and_bounded() {
        let v = serde_json::Value::from(format!("a\nb\u{202e}{}", "x".repeat(500)));
        let b = brief(&v);
        assert!(!b.contains('\n') && !b.contains('\u{202e}'));
        assert!(b.chars().count() <= BRIEF);
    }
}
