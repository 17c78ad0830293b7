//! The list of runs `runbook runs` and the web console show: each run as its journal tells
//! it, the submitted runs that never started, newest first. One list for both, so they
//! cannot disagree.

use crate::{QueueEntry, Result, RunSummary, Store};

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
        let mut flagged = Vec::new();
        let mut runs: Vec<RunSummary> = self
            .runs_with_journal()
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
            .collect();
        for q in self.queue().await? {
            if !runs.iter().any(|r| r.run_id == q.run_id) {
                let status = q.status();
                runs.push(RunSummary {
                    run_id: q.run_id,
                    runbook: q.runbook,
                    operator: q.submitted_by,
                    started_at: q.submitted_at,
                    status,
                    finished_at: None,
                    last_seq: 0,
                    last_hash: None,
                });
            }
        }
        runs.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
        Ok(RunList { runs, flagged })
    }
}
