//! What the store keeps beside the hash chain, checked against it.
//!
//! The chain ([`crate::journal::verify`]) covers the journal's records. The store also
//! keeps a summary row per run (`runs`), the columns of each record that queries read
//! (`events.kind`, `events.step`), and the step logs (`step_logs`). None of them is trusted
//! on its own: each is derived from the chain, or checked against a digest in it. This module
//! says how, as pure functions over what the store read in one snapshot; each finding names
//! the table and column that does not fit, so `audit verify` can name it too.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::journal::{Record, RunEvent, RunStatus};

/// A `runs` row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredRun {
    /// `run_id`.
    pub run_id: String,
    /// `runbook`.
    pub runbook: String,
    /// `operator`.
    pub operator: String,
    /// `started_at`.
    pub started_at: String,
    /// `status`.
    pub status: String,
    /// `finished_at`.
    pub finished_at: Option<String>,
    /// `lock_name`.
    pub lock_name: Option<String>,
    /// `last_seq`.
    pub last_seq: i64,
    /// `last_hash`.
    pub last_hash: Option<String>,
}

/// The columns of an `events` row that repeat what its body says, for queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredColumns {
    /// `seq`.
    pub seq: u64,
    /// `kind`.
    pub kind: String,
    /// `step`.
    pub step: Option<String>,
    /// `body`: the event's JSON as stored.
    pub body: String,
}

/// A `step_logs` row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLog {
    /// `step`.
    pub step: String,
    /// `attempt`.
    pub attempt: i64,
    /// `body`.
    pub body: String,
}

/// Something the store keeps that does not fit the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where: `table.column` (or several, `table.a or table.b`, when the chain cannot tell).
    pub place: String,
    /// What does not fit.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

fn finding(place: &str, message: String) -> Finding {
    Finding { place: place.to_string(), message }
}

/// What a run's summary is, according to its journal: the only source `show`, `runs` and
/// `report` present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// From `run_started`.
    pub runbook: String,
    /// From `run_started`.
    pub operator: String,
    /// The time of the first record.
    pub started_at: String,
    /// From the last of `run_finished`, `run_interrupted`, `run_suspended`, `run_resumed`.
    pub status: RunStatus,
    /// The time of the `run_finished` that ended it (none if resumed since).
    pub finished_at: Option<String>,
    /// Number of records.
    pub last_seq: u64,
    /// The last record's hash.
    pub last_hash: Option<String>,
}

/// How an event changes a run's summary (the store's `runs` row follows the same rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// The run ended (`finished_at` is the event's time).
    Finished(RunStatus),
    /// The run stopped without ending (interrupted, suspended).
    Stopped(RunStatus),
    /// A resumed run: running again, not finished any more.
    Reopened,
}

/// The change an event makes to a run's status, if any.
pub fn status_change(event: &RunEvent) -> Option<StatusChange> {
    match event {
        RunEvent::RunFinished { status, .. } => Some(StatusChange::Finished(*status)),
        RunEvent::RunInterrupted { .. } => Some(StatusChange::Stopped(RunStatus::Interrupted)),
        RunEvent::RunSuspended { .. } => Some(StatusChange::Stopped(RunStatus::NeedsOperator)),
        RunEvent::RunResumed { .. } => Some(StatusChange::Reopened),
        RunEvent::RunAbandoned { .. } => Some(StatusChange::Finished(RunStatus::Abandoned)),
        RunEvent::RunStarted { .. }
        | RunEvent::ScheduleFired { .. }
        | RunEvent::StepStarted { .. }
        | RunEvent::AttemptFailed { .. }
        | RunEvent::StepSucceeded { .. }
        | RunEvent::StepFailed { .. }
        | RunEvent::StepSkipped { .. }
        | RunEvent::CompensationStarted { .. }
        | RunEvent::CompensationSucceeded { .. }
        | RunEvent::CompensationFailed { .. }
        | RunEvent::OperatorDecision { .. }
        | RunEvent::CompensationDecision { .. }
        | RunEvent::ApprovalRequested { .. }
        | RunEvent::ApprovalGranted { .. }
        | RunEvent::ApprovalRejected { .. }
        | RunEvent::EscalationFired { .. }
        | RunEvent::LogKept { .. }
        | RunEvent::ConfirmationRequested { .. }
        | RunEvent::ConfirmationGiven { .. }
        | RunEvent::PreconditionFailed { .. } => None,
    }
}

/// The summary a journal implies; `None` for a journal without its `run_started` record.
pub fn summary(records: &[Record]) -> Option<Summary> {
    let first = records.first()?;
    let RunEvent::RunStarted { runbook, operator, .. } = &first.event else { return None };
    let mut status = RunStatus::Running;
    let mut finished_at = None;
    for r in records {
        match status_change(&r.event) {
            Some(StatusChange::Finished(s)) => (status, finished_at) = (s, Some(r.ts.clone())),
            Some(StatusChange::Stopped(s)) => status = s,
            Some(StatusChange::Reopened) => (status, finished_at) = (RunStatus::Running, None),
            None => {}
        }
    }
    Some(Summary {
        runbook: runbook.clone(),
        operator: operator.clone(),
        started_at: first.ts.clone(),
        status,
        finished_at,
        last_seq: records.last().map_or(0, |r| r.seq),
        last_hash: records.last().map(|r| r.hash.clone()),
    })
}

/// Check a `runs` row against the run's journal: every column must be what the journal
/// implies (`lock_name`, which no command presents, is checked by the store against its
/// locks).
pub fn check_run(row: &StoredRun, records: &[Record]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(s) = summary(records) else {
        if !records.is_empty() {
            out.push(finding("events.body", "the first record is not `run_started`".into()));
        } else {
            // A run is created with its `run_started` record, in one transaction: a row
            // without records is not a run, whatever it claims.
            out.push(finding(
                "runs.run_id",
                format!(
                    "the row is not a run: it has no journal (it claims {} record(s), by `{}`)",
                    row.last_seq, row.operator
                ),
            ));
        }
        return out;
    };
    out.extend(check_summary(row, &s));
    out
}

/// The records the fold does not count because they break the approval rules journaled with
/// their request (a decision by someone not allowed to decide, a self-approval where it is
/// forbidden, the same person twice, an approval step's success without the decisions, a
/// request that changes the rules): judged by [`crate::journal::RunState::apply`], the same
/// function the live fold, `resume`, `show` and `report` use, so what verify names is what
/// no command counted.
pub fn check_decisions(records: &[Record]) -> Vec<Finding> {
    let mut state = crate::journal::RunState::default();
    let mut out = Vec::new();
    for r in records {
        let before = state.refused.len();
        state.apply(&r.event);
        for refused in &state.refused[before..] {
            out.push(finding(
                "events.body",
                format!(
                    "record {} ({} of `{}`) does not count: {}",
                    r.seq,
                    r.event.kind(),
                    refused.step,
                    refused.why
                ),
            ));
        }
    }
    out
}

/// Compare a `runs` row with the summary its journal implies, column by column.
pub fn check_summary(row: &StoredRun, s: &Summary) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut differs = |column: &str, stored: Option<&str>, journal: Option<&str>| {
        if stored != journal {
            out.push(finding(
                &format!("runs.{column}"),
                format!(
                    "the row says `{}`, the journal says `{}`",
                    stored.unwrap_or("NULL"),
                    journal.unwrap_or("NULL")
                ),
            ));
        }
    };
    differs("runbook", Some(&row.runbook), Some(&s.runbook));
    differs("operator", Some(&row.operator), Some(&s.operator));
    differs("started_at", Some(&row.started_at), Some(&s.started_at));
    differs("status", Some(&row.status), Some(s.status.as_str()));
    differs("finished_at", row.finished_at.as_deref(), s.finished_at.as_deref());
    differs("last_seq", Some(&row.last_seq.to_string()), Some(&s.last_seq.to_string()));
    differs("last_hash", row.last_hash.as_deref(), s.last_hash.as_deref());
    out
}

/// Check the columns of `events` that repeat the body (`kind`, `step`), and that each body
/// is the event as written (no key added, changed or removed: what a parser would accept but
/// the hash would not cover).
pub fn check_columns(records: &[Record], columns: &[StoredColumns]) -> Vec<Finding> {
    let mut out = Vec::new();
    let by_seq: BTreeMap<u64, &Record> = records.iter().map(|r| (r.seq, r)).collect();
    for c in columns {
        let Some(r) = by_seq.get(&c.seq) else { continue };
        if c.kind != r.event.kind() {
            out.push(finding(
                "events.kind",
                format!("record {} says `{}`, its body says `{}`", c.seq, c.kind, r.event.kind()),
            ));
        }
        if c.step.as_deref() != r.event.step() {
            out.push(finding(
                "events.step",
                format!(
                    "record {} says `{}`, its body says `{}`",
                    c.seq,
                    c.step.as_deref().unwrap_or("NULL"),
                    r.event.step().unwrap_or("NULL")
                ),
            ));
        }
        let stored: Option<serde_json::Value> = serde_json::from_str(&c.body).ok();
        let written = serde_json::to_value(&r.event).ok();
        if !same_event(stored.as_ref(), written.as_ref()) {
            out.push(finding(
                "events.body",
                format!("record {} holds keys or values that are not part of its event", c.seq),
            ));
        }
    }
    out
}

/// Whether a stored body says what the event says. A key the event has with its default
/// value (`null`, `""`, `[]`, `{}`, `false`) may be absent: bodies written before a field
/// was added do not have it.
fn same_event(stored: Option<&serde_json::Value>, written: Option<&serde_json::Value>) -> bool {
    use serde_json::Value;
    let (Some(Value::Object(stored)), Some(Value::Object(written))) = (stored, written) else {
        return false;
    };
    let defaulted = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    };
    stored.keys().all(|k| written.contains_key(k))
        && written.iter().all(|(k, v)| match stored.get(k) {
            Some(s) => s == v,
            None => defaulted(v),
        })
}

/// The verifier's verdict that a journal's chain holds: made only by [`Verified::of`], which
/// verifies the chain itself, so no reader can vouch for output by passing `true` by hand.
#[derive(Debug, Clone, Copy)]
pub struct Verified(());

impl Verified {
    /// The chain of `records` verifies (`journal::verify`) and `audit verify`'s findings
    /// (`History::findings`) name nothing; `None` otherwise.
    pub fn of(records: &[Record], findings: &[Finding]) -> Option<Verified> {
        Verified::chain(records).ok()?.unless(findings)
    }

    /// The chain of `records` verified (`journal::verify`): the token, or where it breaks.
    /// For a reader that also needs the break (`History::verdict`): the chain is hashed
    /// once, where [`Verified::of`] after the findings would hash it a second time.
    pub fn chain(records: &[Record]) -> Result<Verified, crate::journal::ChainError> {
        crate::journal::verify(records, None).map(|()| Verified(()))
    }

    /// This token, kept only when `findings` name nothing.
    pub fn unless(self, findings: &[Finding]) -> Option<Verified> {
        findings.is_empty().then_some(self)
    }

    /// As [`Verified::of`], ignoring findings outside the journal (`events*`): `runbook
    /// logs`'s rule, which does not let a stale lock or row hide the output.
    pub fn of_chain(records: &[Record], findings: &[Finding]) -> Option<Verified> {
        let chain = findings.iter().filter(|f| f.place.starts_with("events")).cloned().collect::<Vec<_>>();
        Verified::of(records, &chain)
    }
}

/// The kept logs a reader may present, by (step, attempt), each with what vouches for it:
/// a log whose digest matches its `log_kept` record (and only with the verifier's verdict),
/// or every log of a journal from before log digests, labelled as not vouched for. A kept
/// log that does not match its digest is left out. The one rule for `runbook logs` and the
/// console.
pub fn vouched_logs(
    records: &[Record],
    logs: Vec<StoredLog>,
    verified: Option<Verified>,
) -> BTreeMap<(String, i64), (String, String)> {
    let chain_intact = verified.is_some();
    let vouched = kept_logs(records);
    let legacy = logs_predate_digests(records);
    logs.into_iter()
        .filter_map(|l| {
            let key = (l.step.clone(), l.attempt);
            if legacy {
                let label =
                    "kept in the store before log digests: not vouched for by the journal".to_string();
                return Some((key, (label, l.body)));
            }
            let (seq, digest) = vouched.get(&key)?;
            (chain_intact && *digest == log_digest(&l.body)).then(|| {
                (key, (format!("kept in the store, sha256 {digest} (journal record {seq})"), l.body))
            })
        })
        .collect()
}

/// The digest a `log_kept` record holds: SHA-256 (hex) of the text kept in the store.
pub fn log_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The last `log_kept` record of each (step, attempt): what the store must hold.
pub fn kept_logs(records: &[Record]) -> BTreeMap<(String, i64), (u64, String)> {
    let mut kept = BTreeMap::new();
    for r in records {
        if let RunEvent::LogKept { step, attempt, sha256, .. } = &r.event {
            kept.insert((step.clone(), i64::from(*attempt)), (r.seq, sha256.clone()));
        }
    }
    kept
}

/// Whether a run's kept logs predate log digests: the journal has no `log_kept` record at
/// all, and its `run_started` does not say `log_digests` (runs recorded by engines before
/// issue 11's second round). Such logs are not vouched for by the chain; `logs` says so and `audit verify` notes them, without calling
/// the run broken (an upgrade must not make every older run look tampered).
pub fn logs_predate_digests(records: &[Record]) -> bool {
    // Decided from the journal: a run whose `run_started` says its engine vouches for every
    // log it keeps never predates digests, whether or not it kept a log yet.
    let current =
        records.first().is_some_and(|r| matches!(r.event, RunEvent::RunStarted { log_digests: true, .. }));
    !current && !records.iter().any(|r| matches!(r.event, RunEvent::LogKept { .. }))
}

/// Check the `step_logs` rows of a run against its `log_kept` records: each row has one, with
/// its digest, and each record has its row. Nothing to check for a run whose logs predate
/// digests ([`logs_predate_digests`]).
pub fn check_logs(records: &[Record], logs: &[StoredLog]) -> Vec<Finding> {
    let mut out = Vec::new();
    if logs_predate_digests(records) {
        return out;
    }
    let kept = kept_logs(records);
    for l in logs {
        match kept.get(&(l.step.clone(), l.attempt)) {
            None => out.push(finding(
                "step_logs.run_id, step_logs.step or step_logs.attempt",
                format!(
                    "a log of `{}` (attempt {}) that no `log_kept` record of the journal vouches for",
                    l.step, l.attempt
                ),
            )),
            Some((seq, digest)) if *digest != log_digest(&l.body) => out.push(finding(
                "step_logs.body",
                format!(
                    "the log of `{}` (attempt {}) is not the text whose digest record {seq} holds",
                    l.step, l.attempt
                ),
            )),
            Some(_) => {}
        }
    }
    for ((step, attempt), (seq, _)) in &kept {
        if !logs.iter().any(|l| &l.step == step && l.attempt == *attempt) {
            out.push(finding(
                "step_logs.run_id, step_logs.step or step_logs.attempt",
                format!("the log of `{step}` (attempt {attempt}) that record {seq} vouches for is missing"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{GENESIS, identity_key};
    use proptest::prelude::*;

    proptest! {
        /// Case and whitespace never make two people of one name; the normal form is stable;
        /// and names that differ in anything else stay apart.
        #[test]
        fn identity_keys_fold_case_and_spaces_only(
            name in "[a-zA-Z0-9._@-]{1,12}( [a-zA-Z0-9._@-]{1,12}){0,2}",
            pad in "[ \t\n]{0,3}",
            other in "[a-z0-9._@-]{1,12}",
        ) {
            let key = identity_key(&name);
            prop_assert_eq!(identity_key(&key), key.clone());
            prop_assert_eq!(identity_key(&format!("{pad}{}{pad}", name.to_uppercase())), key.clone());
            prop_assert_eq!(identity_key(&name.replace(' ', &format!(" {pad}"))), key.clone());
            if other != key {
                prop_assert_ne!(identity_key(&other), key);
            }
        }
    }

    /// Red team adv19a-3: one person whatever the spelling (case, compatibility forms,
    /// combining or precomposed accents), and different names stay different people.
    #[test]
    fn identity_keys_fold_unicode_case_and_compatibility_forms() {
        let same = [
            ("jérôme", "JÉrôme"),
            ("jérôme", "jérÔme"),
            ("jérôme", "JÉRÔME"),
            ("jérôme", "je\u{301}ro\u{302}me"),
            ("JÉRÔME", "JE\u{301}RO\u{302}ME"),
            ("bob", "ｂob"),
            ("bob", "bｏb"),
            ("bob", "ＢＯＢ"),
            ("straße", "STRASSE"),
            ("straße", "Straẞe"),
            ("σοφος", "ΣΟΦΟΣ"),
            ("σοφοσ", "σοφος"),
            ("ﬁona", "FIONA"),
            ("ǆemal", "ǅemal"),
            ("ǆemal", "DŽEMAL"),
            ("zoë", "ZOË"),
            ("ana maria", " Ana\u{3000}MARIA "),
            ("ꭰꭱ", "ᎠᎡ"),
        ];
        for (a, b) in same {
            assert_eq!(identity_key(a), identity_key(b), "{a:?} and {b:?} are one person");
            assert_eq!(identity_key(&identity_key(a)), identity_key(a), "{a:?}: the key is stable");
        }
        let distinct = [
            ("jérôme", "jerome"),
            ("jérôme", "jèrôme"),
            ("ana", "aná"),
            ("bob", "bobby"),
            ("straße", "strase"),
            ("σοφος", "σοφο"),
            ("i", "ı"),
            ("I", "ı"),
            ("dıana", "DIANA"),
            ("i", "İ"),
            ("ana maria", "anamaria"),
            ("ｂob", "b.ob"),
        ];
        for (a, b) in distinct {
            assert_ne!(identity_key(a), identity_key(b), "{a:?} and {b:?} are two people");
        }
    }

    fn chain(events: Vec<RunEvent>) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let r = Record::new("r1", i as u64 + 1, &format!("2026-12-06T00:00:{i:02}Z"), e, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn a_log_is_vouched_for_by_its_last_digest_only() {
        let kept = |body: &str| RunEvent::LogKept {
            step: "a".into(),
            attempt: 1,
            bytes: 3,
            kept_bytes: 3,
            sha256: log_digest(body),
        };
        let records = chain(vec![
            RunEvent::RunStarted {
                runbook: "rb".into(),
                file: String::new(),
                files: vec![],
                params: BTreeMap::new(),
                operator: "ana".into(),
                engine_version: "0".into(),
                submitted_by: None,
                log_digests: false,
                report: Default::default(),
            },
            RunEvent::RunFinished { status: RunStatus::Succeeded, preconditions: vec![] },
            kept("old"),
            kept("new"),
        ]);
        let log = |body: &str| StoredLog { step: "a".into(), attempt: 1, body: body.into() };
        assert!(check_logs(&records, &[log("new")]).is_empty());
        assert_eq!(check_logs(&records, &[log("old")])[0].place, "step_logs.body");
        assert_eq!(check_logs(&records, &[]).len(), 1, "a vouched-for log that is gone");
        let s = summary(&records).expect("a summary");
        assert_eq!((s.status, s.last_seq), (RunStatus::Succeeded, 4));
        assert_eq!(s.finished_at.as_deref(), Some("2026-12-06T00:00:01Z"));
    }

    #[test]
    fn a_body_with_an_extra_key_is_not_the_event() {
        let event = serde_json::json!({"kind": "run_finished", "status": "succeeded"});
        let extra = serde_json::json!({"kind": "run_finished", "status": "succeeded", "by": "mallory"});
        assert!(same_event(Some(&event), Some(&event)));
        assert!(!same_event(Some(&extra), Some(&event)));
        let older = serde_json::json!({"kind": "x", "file": ""});
        assert!(same_event(Some(&serde_json::json!({"kind": "x"})), Some(&older)));
    }
}
