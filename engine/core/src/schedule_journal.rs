//! The journal of a schedule (issue 17): every decision a worker takes about a schedule,
//! as an append-only, hash-chained list of records, exactly as a run's journal is (the same
//! hash, [`crate::journal::chain_hash_of`], and the same verifier,
//! [`crate::journal::verify_chain`]).
//!
//! A record names things, never values: the schedule, its due times, the run a fire queued
//! (its own journal holds its parameters), the worker, and a fixed reason. No parameter
//! value, secret or webhook address is ever part of one.

use serde::{Deserialize, Serialize};

use crate::journal::{Linked, chain_hash_of};

/// Why a due time was not fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The schedule's previous run was still queued or running (`overlap = "skip"`).
    Overlap,
    /// Its run could not be queued: the runbook changed (RB104), no longer plans, asks for
    /// a confirmation, a parameter holds a secret...
    Refused,
}

impl SkipReason {
    /// The word the journal uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Overlap => "overlap",
            SkipReason::Refused => "refused",
        }
    }
}

/// One decision about a schedule, in the past tense. Appended at the end only: these are
/// stored, and every fold lists them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleEvent {
    /// A due time fired: its run was queued.
    Fired {
        /// The due time (RFC 3339, UTC).
        due: String,
        /// The run queued (its own journal says the rest).
        run_id: String,
        /// The worker that fired it.
        worker: String,
    },
    /// A due time was not fired, and why.
    Skipped {
        /// The due time.
        due: String,
        /// Why, as a word.
        reason: SkipReason,
        /// Why, as the fixed sentence the worker printed (no value is quoted).
        note: String,
        /// The worker.
        worker: String,
    },
    /// The catch-up policy left out due times; the latest of them is recorded.
    Missed {
        /// The latest due time left out.
        due: String,
        /// How many and why (a fixed sentence).
        note: String,
        /// The worker.
        worker: String,
    },
    /// The dead-man's switch: no success within `expect-success-within` (the first notice,
    /// or a reminder).
    Overdue {
        /// The success (or first due time) it is measured from.
        since: String,
        /// 0 for the first notice, 1, 2... for reminders.
        reminder: i64,
        /// The worker that took the notice.
        worker: String,
    },
    /// A notification was delivered to the schedule's webhook.
    Notified {
        /// What it was about: `overdue` or `change`.
        about: String,
        /// The worker that sent it.
        worker: String,
        /// The delivery attempt of an overdue notice (1, 2...): overdue notices are retried
        /// until delivered (issue 17, S3). Absent for a change notice and in records written
        /// before (so their hash is unchanged).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// A notification could not be delivered. The error's own words are printed by the
    /// worker, never recorded (they can quote the webhook's address, a credential): only a
    /// fixed classification is.
    NotifyFailed {
        /// What it was about.
        about: String,
        /// The worker that made the attempt.
        worker: String,
        /// The delivery attempt of an overdue notice (1, 2...), as for `notified`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        /// Why, in fixed words: `HTTP 503`, `timed out`, `connection refused`, `no outcome
        /// recorded before its lease expired`...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    /// A schedule that was overdue succeeded again.
    BackInTime {
        /// The success (or first due time) its overdue period was measured from.
        overdue_since: String,
        /// The success that ended it (RFC 3339).
        success: String,
        /// The worker that noticed.
        worker: String,
    },
    /// A row that decides the schedule was found with no record in this journal (written
    /// past the store's triggers, by the schema's owner): a due time taken, or an overdue
    /// notice taken, in silence (issue 17). Recorded once per due time (or overdue notice)
    /// by the first worker that sees it; `runbook schedules --state` shows it until a later
    /// due time fires.
    NoRecord {
        /// The table whose row it is: `schedule_fires` or `schedule_alerts`.
        table: String,
        /// The due time taken (`schedule_fires`), or the overdue period's start
        /// (`schedule_alerts`), RFC 3339.
        due: String,
        /// The overdue notice's reminder number (`schedule_alerts` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reminder: Option<i64>,
        /// The worker that saw it.
        worker: String,
    },
    /// A worker watched the schedule for the first time in this store: the journal's first
    /// record, appended once per name by the first worker that finds the journal empty
    /// (red team adv23 F2). Until the schedule's first due time is taken, every worker
    /// counts its due times from `since`, so a due time that passes while no worker runs
    /// is caught up (or recorded as missed) as after any downtime.
    Watched {
        /// When that worker started (RFC 3339, UTC, milliseconds).
        since: String,
        /// The worker.
        worker: String,
    },
    /// A worker watched the never-fired schedule again because no watch record before it
    /// is believed (red team adv24 S1, S2: a record from a clock that ran ahead, or one
    /// earlier than the store itself; `schedule::watch_doubt`). Appended once per such
    /// state, by the first worker whose own start is believable; every worker then counts
    /// from the earliest watch record it believes.
    Rewatched {
        /// When that worker started (RFC 3339, UTC, milliseconds).
        since: String,
        /// Why the watch records before it are not believed (a fixed sentence with their
        /// record numbers and times).
        doubt: String,
        /// The worker.
        worker: String,
    },
}

/// The table of the rows that take a due time.
pub const FIRES_TABLE: &str = "schedule_fires";
/// The table of the rows that take an overdue notice.
pub const ALERTS_TABLE: &str = "schedule_alerts";

impl ScheduleEvent {
    /// The event's kind, as stored beside its body.
    pub fn kind(&self) -> &'static str {
        match self {
            ScheduleEvent::Fired { .. } => "fired",
            ScheduleEvent::Skipped { .. } => "skipped",
            ScheduleEvent::Missed { .. } => "missed",
            ScheduleEvent::Overdue { .. } => "overdue",
            ScheduleEvent::Notified { .. } => "notified",
            ScheduleEvent::NotifyFailed { .. } => "notify_failed",
            ScheduleEvent::BackInTime { .. } => "back_in_time",
            ScheduleEvent::NoRecord { .. } => "no_record",
            ScheduleEvent::Watched { .. } => "watched",
            ScheduleEvent::Rewatched { .. } => "rewatched",
        }
    }

    /// The due time it is about, if it is about one (RFC 3339).
    pub fn due(&self) -> Option<&str> {
        match self {
            ScheduleEvent::Fired { due, .. }
            | ScheduleEvent::Skipped { due, .. }
            | ScheduleEvent::Missed { due, .. } => Some(due),
            ScheduleEvent::Overdue { .. }
            | ScheduleEvent::Notified { .. }
            | ScheduleEvent::NotifyFailed { .. }
            | ScheduleEvent::BackInTime { .. }
            | ScheduleEvent::NoRecord { .. }
            | ScheduleEvent::Watched { .. }
            | ScheduleEvent::Rewatched { .. } => None,
        }
    }

    /// The worker that took the decision.
    pub fn worker(&self) -> &str {
        match self {
            ScheduleEvent::Fired { worker, .. }
            | ScheduleEvent::Skipped { worker, .. }
            | ScheduleEvent::Missed { worker, .. }
            | ScheduleEvent::Overdue { worker, .. }
            | ScheduleEvent::Notified { worker, .. }
            | ScheduleEvent::NotifyFailed { worker, .. }
            | ScheduleEvent::BackInTime { worker, .. }
            | ScheduleEvent::NoRecord { worker, .. }
            | ScheduleEvent::Watched { worker, .. }
            | ScheduleEvent::Rewatched { worker, .. } => worker,
        }
    }

    /// What happened, in one line (without the worker).
    pub fn summary(&self) -> String {
        match self {
            ScheduleEvent::Fired { due, run_id, .. } => format!("due {due} fired: run {run_id}"),
            ScheduleEvent::Skipped { due, reason, note, .. } => {
                format!("due {due} skipped ({}): {note}", reason.as_str())
            }
            ScheduleEvent::Missed { due, note, .. } => format!("due {due} missed: {note}"),
            ScheduleEvent::Overdue { since, reminder: 0, .. } => {
                format!("overdue: no successful run since {since}")
            }
            ScheduleEvent::Overdue { since, reminder, .. } => {
                format!("overdue (reminder {reminder}): no successful run since {since}")
            }
            ScheduleEvent::Notified { about, attempt: None, .. } => format!("{about} notification sent"),
            ScheduleEvent::Notified { about, attempt: Some(n), .. } => {
                format!("{about} notification sent (attempt {n})")
            }
            ScheduleEvent::NotifyFailed { about, attempt, failure, .. } => {
                let mut text = format!("{about} notification not delivered");
                if let Some(n) = attempt {
                    text.push_str(&format!(" (attempt {n})"));
                }
                if let Some(why) = failure {
                    text.push_str(&format!(": {}", crate::shown::one_line(why)));
                }
                text
            }
            ScheduleEvent::BackInTime { overdue_since, success, .. } => {
                format!("back in time: a run succeeded at {success} (overdue since {overdue_since})")
            }
            ScheduleEvent::NoRecord { table, due, reminder, .. } => {
                let due = crate::shown::one_line(due);
                match reminder {
                    None => format!(
                        "due {due} did not fire: a row of {} takes it with no record in this journal (written outside runbook?)",
                        crate::shown::one_line(table)
                    ),
                    Some(n) => format!(
                        "the overdue notice {n} since {due} was not taken by a worker: a row of {} takes it with no record in this journal (written outside runbook?)",
                        crate::shown::one_line(table)
                    ),
                }
            }
            ScheduleEvent::Watched { since, .. } => format!(
                "watched from {}: due times count from here until one is taken",
                crate::shown::one_line(since)
            ),
            ScheduleEvent::Rewatched { since, doubt, .. } => format!(
                "watched again from {}: due times count from here until one is taken ({})",
                crate::shown::one_line(since),
                crate::shown::one_line(doubt)
            ),
        }
    }
}

/// When a worker first watched the schedule whose journal begins with `first` (its record
/// 1), as RFC 3339 text: a `watched` record's `since`; for a journal begun before `watched`
/// records existed, its first record's time (a worker was watching then). `None` for a
/// record that is not the first.
pub fn watched_from(first: &ScheduleRecord) -> Option<&str> {
    if first.seq != 1 {
        return None;
    }
    match &first.event {
        ScheduleEvent::Watched { since, .. } => Some(since),
        _ => Some(&first.ts),
    }
}

/// The start a watch record claims (RFC 3339): a `watched` or `rewatched` record's
/// `since`; for a journal's first record of another kind, its time (see [`watched_from`]).
/// `None` for any other record.
pub fn watch_claimed(record: &ScheduleRecord) -> Option<&str> {
    match &record.event {
        ScheduleEvent::Rewatched { since, .. } => Some(since),
        _ => watched_from(record),
    }
}

/// One record of a schedule's journal: an event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// The schedule's name (the journal's name).
    pub schedule: String,
    /// Position, from 1, without gaps.
    pub seq: u64,
    /// When it was recorded (RFC 3339, UTC).
    pub ts: String,
    /// What was decided.
    pub event: ScheduleEvent,
    /// The previous record's hash ([`crate::journal::GENESIS`] for the first).
    pub prev_hash: String,
    /// The hash of this record ([`chain_hash_of`]).
    pub hash: String,
    /// The database role of the session that wrote it (PostgreSQL stores), in the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_role: Option<String>,
}

impl ScheduleRecord {
    /// A new record chained after `prev_hash`, written by database role `db_role`.
    pub fn new(
        schedule: &str,
        seq: u64,
        ts: &str,
        event: ScheduleEvent,
        prev_hash: &str,
        db_role: Option<&str>,
    ) -> ScheduleRecord {
        let hash = chain_hash_of(schedule, seq, ts, &event, prev_hash, db_role);
        ScheduleRecord {
            schedule: schedule.into(),
            seq,
            ts: ts.into(),
            event,
            prev_hash: prev_hash.into(),
            hash,
            db_role: db_role.map(str::to_string),
        }
    }
}

impl Linked for ScheduleRecord {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn rehash(&self) -> String {
        chain_hash_of(
            &self.schedule,
            self.seq,
            &self.ts,
            &self.event,
            &self.prev_hash,
            self.db_role.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{GENESIS, verify_chain};

    fn sample() -> Vec<ScheduleRecord> {
        let events = [
            ScheduleEvent::Watched { since: "2026-01-01T02:29:58.120Z".into(), worker: "w1".into() },
            ScheduleEvent::Fired {
                due: "2026-01-01T02:30:00Z".into(),
                run_id: "r1".into(),
                worker: "w1".into(),
            },
            ScheduleEvent::Skipped {
                due: "2026-01-02T02:30:00Z".into(),
                reason: SkipReason::Overlap,
                note: "run r1 of the schedule is still queued or running".into(),
                worker: "w2".into(),
            },
            ScheduleEvent::Overdue { since: "2026-01-01T02:30:00Z".into(), reminder: 0, worker: "w1".into() },
            ScheduleEvent::Notified { about: "overdue".into(), worker: "w1".into(), attempt: None },
            ScheduleEvent::NotifyFailed {
                about: "overdue".into(),
                worker: "w2".into(),
                attempt: Some(1),
                failure: Some("HTTP 503".into()),
            },
            ScheduleEvent::Notified { about: "overdue".into(), worker: "w1".into(), attempt: Some(2) },
            ScheduleEvent::NoRecord {
                table: FIRES_TABLE.into(),
                due: "2026-01-03T02:30:00Z".into(),
                reminder: None,
                worker: "w2".into(),
            },
            ScheduleEvent::NoRecord {
                table: ALERTS_TABLE.into(),
                due: "2026-01-01T02:30:00Z".into(),
                reminder: Some(0),
                worker: "w2".into(),
            },
        ];
        let mut prev = GENESIS.to_string();
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let r = ScheduleRecord::new("nightly", i as u64 + 1, "2026-01-01T02:30:01Z", e, &prev, None);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn a_schedule_journal_verifies_with_the_run_journal_s_verifier_and_breaks_as_it_does() {
        let records = sample();
        let last = records.last().map(|r| r.hash.clone()).unwrap_or_default();
        assert_eq!(verify_chain(&records, Some(&last)), Ok(()));
        let mut edited = records.clone();
        edited[1].ts = "2020-01-01T00:00:00Z".into();
        assert_eq!(verify_chain(&edited, None).map_err(|e| e.seq), Err(2));
        let mut deleted = records.clone();
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted, None).map_err(|e| e.seq), Err(2));
        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert_eq!(verify_chain(&swapped, None).map_err(|e| e.seq), Err(2));
        let mut cut = records.clone();
        cut.pop();
        assert_eq!(verify_chain(&cut, Some(&last)).map_err(|e| e.seq), Err(9));
        // Another schedule's name makes another chain.
        let mut renamed = records;
        renamed[0].schedule = "weekly".into();
        assert_eq!(verify_chain(&renamed, None).map_err(|e| e.seq), Err(1));
    }

    /// A record written before attempts were recorded keeps its bytes, hence its hash: the
    /// new fields are absent when empty, and a body without them reads back.
    #[test]
    fn records_without_attempts_keep_their_bytes() {
        let old = r#"{"kind":"notify_failed","about":"overdue","worker":"w"}"#;
        let event: ScheduleEvent = serde_json::from_str(old).expect("old body");
        assert_eq!(serde_json::to_string(&event).expect("json"), old);
        let old = r#"{"kind":"notified","about":"change","worker":"w"}"#;
        let event: ScheduleEvent = serde_json::from_str(old).expect("old body");
        assert_eq!(serde_json::to_string(&event).expect("json"), old);
    }

    /// Red team adv23 F2: the first watch is the `watched` record's start, or a legacy
    /// journal's first record's time; a later record says nothing of it.
    #[test]
    fn the_first_watch_is_the_journal_s_first_record() {
        let records = sample();
        assert_eq!(watched_from(&records[0]), Some("2026-01-01T02:29:58.120Z"));
        assert_eq!(watched_from(&records[1]), None);
        let mut legacy = records[1].clone();
        legacy.seq = 1;
        assert_eq!(watched_from(&legacy), Some("2026-01-01T02:30:01Z"));
    }

    #[test]
    fn schedule_events_round_trip_with_explicit_kinds() {
        for r in sample() {
            let text = serde_json::to_string(&r.event).expect("json");
            assert!(text.contains(&format!("\"kind\":\"{}\"", r.event.kind())), "{text}");
            let back: ScheduleEvent = serde_json::from_str(&text).expect("parse");
            assert_eq!(back, r.event);
        }
    }
}
