//! The list of runs `runbook runs` and the web console show: each run as its journal tells
//! it, the submitted runs that never started, newest first. One list for both, so they
//! cannot disagree.

use runbook_core::lifecycle::KNOWN_STATUSES;

use crate::{QueueEntry, Result, RunSummary, Store};

/// What a submitted run that never started may be listed as (see [`QueueEntry::status`]).
const QUEUE_STATUSES: [&str; 4] = ["queued", "claimed", "cancelled", "refused"];

/// Every status `runbook runs` lists, and so accepts in `--status`: a run's
/// (`runbook_core::lifecycle::KNOWN_STATUSES`), then a submitted run's that never started.
pub fn listed_statuses() -> Vec<&'static str> {
    KNOWN_STATUSES.iter().map(|s| s.as_str()).chain(QUEUE_STATUSES).collect()
}

/// Which runs to list (`runbook runs --runbook --status --operator --since --limit`). Every
/// filter is part of the store's query: a filtered list reads only the runs it shows. The
/// default lists every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this runbook (its name).
    pub runbook: Option<String>,
    /// Only runs in one of these statuses (names of [`listed_statuses`]; empty: any).
    pub statuses: Vec<String>,
    /// Only runs started (or submitted) by this operator.
    pub operator: Option<String>,
    /// Only runs started (or submitted) at or after this time: RFC 3339 in UTC with
    /// milliseconds (`2026-12-06T10:00:00.000Z`), the form the store keeps, so that the
    /// database compares it as text.
    pub since: Option<String>,
    /// At most this many, the newest.
    pub limit: Option<u32>,
}

/// A `WHERE` clause built from a filter, with its values in placeholder order.
#[derive(Default)]
struct Clause {
    conditions: Vec<String>,
    values: Vec<String>,
}

impl Clause {
    /// `column = $n` (or any condition over one value).
    fn value(&mut self, condition: impl FnOnce(usize) -> String, value: &str) {
        self.values.push(value.to_string());
        self.conditions.push(condition(self.values.len()));
    }

    /// The `WHERE ...` text, or nothing.
    fn text(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }
}

impl RunFilter {
    /// Whether a status (of `listed_statuses`) passes.
    fn admits(&self, status: &str) -> bool {
        self.statuses.is_empty() || self.statuses.iter().any(|s| s == status)
    }

    /// `LIMIT n`, or nothing.
    fn limit_text(&self) -> String {
        self.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
    }

    /// The runs rows that may pass (their journal decides: see `run_list_where`).
    pub(crate) fn runs_clause(&self) -> Option<String> {
        let run_statuses: Vec<&str> =
            KNOWN_STATUSES.iter().map(|s| s.as_str()).filter(|s| self.admits(s)).collect();
        if run_statuses.is_empty() {
            return None;
        }
        let mut c = Clause::default();
        self.common(&mut c, "runbook", "operator", "started_at");
        if !self.statuses.is_empty() {
            // Status names are the store's own words (`KNOWN_STATUSES`), never input.
            let names: Vec<String> = run_statuses.iter().map(|s| format!("'{s}'")).collect();
            c.conditions.push(format!("status IN ({})", names.join(", ")));
        }
        Some(format!(
            "SELECT run_id FROM runs{} ORDER BY started_at DESC, run_id DESC{}",
            c.text(),
            self.limit_text()
        ))
    }

    fn common(&self, c: &mut Clause, runbook: &str, operator: &str, at: &str) {
        if let Some(r) = &self.runbook {
            c.value(|n| format!("{runbook} = ${n}"), r);
        }
        if let Some(o) = &self.operator {
            c.value(|n| format!("{operator} = ${n}"), o);
        }
        if let Some(t) = &self.since {
            c.value(|n| format!("{at} >= ${n}"), t);
        }
    }

    /// The values `runs_clause` binds, in order.
    pub(crate) fn runs_values(&self) -> Vec<String> {
        let mut c = Clause::default();
        self.common(&mut c, "runbook", "operator", "started_at");
        c.values
    }

    /// Whether a run, as its journal tells it, passes (a row that disagrees with its journal
    /// is listed as the journal says, or not at all).
    fn passes(&self, run: &RunSummary) -> bool {
        self.runbook.as_ref().is_none_or(|r| *r == run.runbook)
            && self.operator.as_ref().is_none_or(|o| *o == run.operator)
            && self.since.as_ref().is_none_or(|t| run.started_at >= *t)
            && self.admits(&run.status)
    }
}

/// The runs, and the rows that disagree with their journals (each as one line naming the
/// run, for a warning).
#[derive(Debug, Clone, Default)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunSummary>,
    /// `RUN_ID: what disagrees`.
    pub flagged: Vec<String>,
}

impl RunSummary {
    /// A run's summary as its journal tells it.
    pub fn from_journal(run_id: String, d: runbook_core::audit::Summary) -> RunSummary {
        RunSummary {
            run_id,
            runbook: d.runbook,
            operator: d.operator,
            started_at: d.started_at,
            status: d.status.as_str().to_string(),
            finished_at: d.finished_at,
            last_seq: i64::try_from(d.last_seq).unwrap_or(i64::MAX),
            last_hash: d.last_hash,
        }
    }

    /// The summary as the audit module compares it.
    fn stored(&self) -> runbook_core::audit::StoredRun {
        runbook_core::audit::StoredRun {
            run_id: self.run_id.clone(),
            runbook: self.runbook.clone(),
            operator: self.operator.clone(),
            started_at: self.started_at.clone(),
            status: self.status.clone(),
            finished_at: self.finished_at.clone(),
            lock_name: None,
            last_seq: self.last_seq,
            last_hash: self.last_hash.clone(),
        }
    }
}

impl QueueEntry {
    /// Where a submitted run that never started stands, as `runs` and the console say it:
    /// `queued`, `claimed`, `cancelled`, or `refused` (its worker found the plan changed).
    pub fn status(&self) -> String {
        match self.state.as_str() {
            "done" if self.note.as_deref().is_some_and(|n| n.starts_with("cancelled")) => "cancelled".into(),
            "done" => "refused".into(),
            other => other.to_string(),
        }
    }
}

impl Store {
    /// Every run as its journal tells it (a row that says otherwise is flagged; a row
    /// without a journal that begins with `run_started` is not a run: not listed, flagged),
    /// then the submitted runs that never started (queued, claimed, cancelled, or refused by
    /// their worker), newest first.
    pub async fn run_list(&self) -> Result<RunList> {
        self.run_list_where(&RunFilter::default()).await
    }

    /// [`Store::run_list`] narrowed by `filter` in the query itself: only the rows that pass
    /// are read, with their journals, and each listed run passes as its journal tells it.
    pub async fn run_list_where(&self, filter: &RunFilter) -> Result<RunList> {
        let mut flagged = Vec::new();
        let mut runs: Vec<RunSummary> = self
            .runs_with_journal(filter)
            .await?
            .into_iter()
            .filter_map(|(row, derived)| {
                let Some(d) = derived else {
                    flagged.push(format!(
                        "{}: runs.run_id: the row is not a run: it has no journal (it claims {} record(s))",
                        row.run_id, row.last_seq
                    ));
                    return None;
                };
                for f in runbook_core::audit::check_summary(&row.stored(), &d) {
                    flagged.push(format!("{}: {f}", row.run_id));
                }
                Some(RunSummary::from_journal(row.run_id, d))
            })
            .filter(|r| filter.passes(r))
            .collect();
        let started: std::collections::BTreeSet<String> = runs.iter().map(|r| r.run_id.clone()).collect();
        for q in self.queue_where(filter).await? {
            if !started.contains(&q.run_id) {
                let status = q.status();
                let run = RunSummary {
                    run_id: q.run_id,
                    runbook: q.runbook,
                    operator: q.submitted_by,
                    started_at: q.submitted_at,
                    status,
                    finished_at: None,
                    last_seq: 0,
                    last_hash: None,
                };
                if filter.passes(&run) {
                    runs.push(run);
                }
            }
        }
        runs.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
        if let Some(n) = filter.limit {
            runs.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(RunList { runs, flagged })
    }

    /// The submitted runs that never started and pass `filter` (newest first, at most its
    /// limit): a queue entry whose run has a journal is that run, listed as its journal says.
    async fn queue_where(&self, filter: &RunFilter) -> Result<Vec<QueueEntry>> {
        let mut c = Clause::default();
        filter.common(&mut c, "q.runbook", "q.submitted_by", "q.submitted_at");
        let queue_statuses: Vec<&str> = QUEUE_STATUSES.into_iter().filter(|s| filter.admits(s)).collect();
        if queue_statuses.is_empty() {
            return Ok(Vec::new());
        }
        if !filter.statuses.is_empty() {
            let either: Vec<&str> = queue_statuses
                .iter()
                .map(|s| match *s {
                    "queued" => "q.state = 'queued'",
                    "claimed" => "q.state = 'claimed'",
                    "cancelled" => "(q.state = 'done' AND q.note LIKE 'cancelled%')",
                    _ => "(q.state = 'done' AND (q.note IS NULL OR q.note NOT LIKE 'cancelled%'))",
                })
                .collect();
            c.conditions.push(format!("({})", either.join(" OR ")));
        }
        c.conditions
            .push("NOT EXISTS (SELECT 1 FROM events e WHERE e.run_id = q.run_id AND e.seq = 1)".into());
        let sql = format!(
            "SELECT q.run_id, q.runbook, q.state, q.submitted_by, q.submitted_at, q.worker, q.exit_code, q.note \
             FROM queue q{} ORDER BY q.submitted_at DESC, q.run_id DESC{}",
            c.text(),
            filter.limit_text()
        );
        // The text is built of the store's own words; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in &c.values {
            query = query.bind(v.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(crate::queue_entry).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_a_list_shows_is_accepted() {
        let listed = listed_statuses();
        for s in KNOWN_STATUSES {
            assert!(listed.contains(&s.as_str()));
        }
        for q in ["queued", "claimed", "cancelled", "refused"] {
            let entry = QueueEntry {
                run_id: String::new(),
                runbook: String::new(),
                state: if q == "cancelled" || q == "refused" { "done".into() } else { q.into() },
                submitted_by: String::new(),
                submitted_at: String::new(),
                worker: None,
                exit_code: None,
                note: (q == "cancelled").then(|| "cancelled by ana".into()),
            };
            assert_eq!(entry.status(), q);
            assert!(listed.contains(&q));
        }
    }
}
