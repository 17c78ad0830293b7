//! Each schedule's journal (issue 17): the hash-chained records of `schedule_events`
//! (migration 8), written in the transaction of the `schedule_fires` / `schedule_alerts`
//! row that decides them, so that exactly one record stands for each decision however many
//! workers race for it; read back for `runbook audit schedule` and `audit verify`.

use runbook_core::journal::GENESIS;
use runbook_core::schedule_journal::{ScheduleEvent, ScheduleRecord, SkipReason};
use sqlx::Row;

use crate::{Backend, MISSED, NOT_QUEUED, Result, Store, StoreError};

impl Backend {
    /// A schedule journal's head, locked for the rest of the transaction (SQLite's
    /// `BEGIN IMMEDIATE` already holds the one write lock).
    fn schedule_head(self) -> &'static str {
        match self {
            Backend::Sqlite => "SELECT last_seq, last_hash FROM schedule_heads WHERE schedule = $1",
            Backend::Postgres => {
                "SELECT last_seq, last_hash FROM schedule_heads WHERE schedule = $1 FOR UPDATE"
            }
        }
    }
}

/// The record a due time not fired gets, from the note the worker recorded with it: a
/// refusal (its note starts with [`NOT_QUEUED`]), a miss ([`MISSED`]), else a skip by the
/// overlap policy. The prefixes are the store's own vocabulary (`schedules --state` reads
/// the same rows by them).
pub(crate) fn not_fired(due: String, note: &str, worker: &str) -> ScheduleEvent {
    let worker = worker.to_string();
    if let Some(rest) = note.strip_prefix(MISSED) {
        return ScheduleEvent::Missed { due, note: rest.to_string(), worker };
    }
    match note.strip_prefix(NOT_QUEUED) {
        Some(rest) => {
            ScheduleEvent::Skipped { due, reason: SkipReason::Refused, note: rest.to_string(), worker }
        }
        None => ScheduleEvent::Skipped { due, reason: SkipReason::Overlap, note: note.to_string(), worker },
    }
}

/// The failure journaled for a notice attempt whose worker's lease expired with no outcome.
pub const LAPSED: &str = "no outcome recorded before its lease expired";

/// A delivery attempt of an overdue notice this worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeClaim {
    /// The alert's overdue period (milliseconds since the epoch).
    pub since_ms: i64,
    /// The alert's reminder number.
    pub reminder: i64,
    /// The attempt (1, 2...).
    pub attempt: u32,
}

/// The notice of a schedule's latest overdue alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeState {
    /// The alert's overdue period.
    pub since_ms: i64,
    /// The alert's reminder number.
    pub reminder: i64,
    /// The attempt that delivered it (0: sent before attempts were recorded).
    pub delivered: Option<u32>,
    /// Attempts that failed or lapsed.
    pub failed: u32,
    /// The last failure, in fixed words.
    pub last_failure: Option<String>,
    /// An attempt in flight.
    pub in_flight: Option<u32>,
}

fn notice_attempts(rows: &[sqlx::any::AnyRow]) -> Result<Vec<runbook_core::schedule::NoticeAttempt>> {
    rows.iter()
        .map(|r| {
            Ok(runbook_core::schedule::NoticeAttempt {
                attempt: u32::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                outcome: r.try_get(1)?,
                lease_until_ms: r.try_get(2)?,
                retry_at_ms: r.try_get(3)?,
            })
        })
        .collect()
}

/// The first record of a schedule's journal.
const FIRST_RECORD: &str =
    "SELECT seq, ts, body, prev_hash, hash, db_role FROM schedule_events WHERE schedule = $1 AND seq = 1";

/// A schedule's watch records: its first record and every `rewatched` record.
const WATCH_RECORDS: &str = "SELECT seq, ts, body, prev_hash, hash, db_role FROM schedule_events \
     WHERE schedule = $1 AND (seq = 1 OR kind = 'rewatched') ORDER BY seq";

/// A row of [`FIRST_RECORD`] (or [`WATCH_RECORDS`]) as a record of `schedule`.
fn first_record(schedule: &str, row: &sqlx::any::AnyRow) -> Result<ScheduleRecord> {
    let seq: i64 = row.try_get(0)?;
    let body: String = row.try_get(2)?;
    let event = serde_json::from_str::<ScheduleEvent>(&body)
        .map_err(|e| StoreError::Corrupt(format!("schedule {schedule}: record {seq}: {e}")))?;
    Ok(ScheduleRecord {
        schedule: schedule.to_string(),
        seq: u64::try_from(seq).unwrap_or(0),
        ts: row.try_get(1)?,
        event,
        prev_hash: row.try_get(3)?,
        hash: row.try_get(4)?,
        db_role: row.try_get(5)?,
    })
}

/// One schedule's journal as the store holds it, read in one snapshot.
#[derive(Debug, Clone)]
pub struct ScheduleJournal {
    /// The schedule's name.
    pub schedule: String,
    /// Its head row: the last record's seq and hash (`None`: no head row).
    pub head: Option<(i64, Option<String>)>,
    /// The records, in order; `Err` names a record that does not parse.
    pub records: std::result::Result<Vec<ScheduleRecord>, String>,
    /// The `kind` column beside each record's body, in order.
    pub kinds: Vec<String>,
    /// The `due_ms` column beside each record's body, in order.
    pub due_ms: Vec<Option<i64>>,
    /// The schedule's rows of `schedule_fires`, by due time.
    pub fires: Vec<FireRow>,
    /// The schedule's rows of `schedule_alerts`: (since_ms, reminder), -1 for back in time.
    pub alerts: Vec<(i64, i64)>,
}

/// One row of `schedule_fires`, as `audit verify` compares it with the journal.
#[derive(Debug, Clone)]
pub struct FireRow {
    /// The due time, milliseconds since the epoch.
    pub due_ms: i64,
    /// `queued` or `skipped`.
    pub outcome: String,
    /// The run queued.
    pub run_id: Option<String>,
    /// Why it was skipped.
    pub note: String,
}

/// A fire row's decision, as the record it must have: its kind and, for a skip, its reason.
fn expected_kind(f: &FireRow) -> Option<(&'static str, Option<SkipReason>)> {
    match (f.outcome.as_str(), &f.run_id) {
        ("queued", Some(_)) => Some(("fired", None)),
        ("skipped", None) => match not_fired(String::new(), &f.note, "") {
            ScheduleEvent::Skipped { reason, .. } => Some(("skipped", Some(reason))),
            other => Some((other.kind(), None)),
        },
        _ => None,
    }
}

impl ScheduleJournal {
    /// Everything that does not fit: the chain (the run journal's verifier), its head, the
    /// `kind` column beside each body.
    pub fn findings(&self) -> Vec<String> {
        let records = match &self.records {
            Ok(r) => r,
            Err(e) => return vec![format!("schedule_events.body: a record does not parse ({e})")],
        };
        let last = self.head.as_ref().map(|(_, h)| h.clone().unwrap_or_else(|| GENESIS.to_string()));
        if let Err(e) = runbook_core::journal::verify_chain(records, last.as_deref()) {
            return vec![format!("record {}: {}", e.seq, e.reason)];
        }
        let mut out = Vec::new();
        match &self.head {
            None => out.push("schedule_heads: the journal has no head row".to_string()),
            Some((seq, _)) if u64::try_from(*seq).ok() != records.last().map(|r| r.seq).or(Some(0)) => out
                .push(format!(
                    "schedule_heads.last_seq: the head says record {seq}, the journal ends at record {}",
                    records.len()
                )),
            Some(_) => {}
        }
        out.extend(self.cross_check(records));
        for (r, kind) in records.iter().zip(&self.kinds) {
            if r.event.kind() != kind {
                out.push(format!(
                    "record {}: schedule_events.kind says `{kind}`, its body is `{}`",
                    r.seq,
                    r.event.kind()
                ));
            }
        }
        out
    }
}

impl ScheduleJournal {
    /// The rows that decide the schedule (`schedule_fires`, `schedule_alerts`) against its
    /// records, both ways (red team adv18a S1, S2): each row has exactly one record of the
    /// same due time (or overdue period and reminder), kind and run, and each record its row;
    /// the `due_ms` column beside a record is its body's due time. Findings quote numbers,
    /// times and kinds only, never a row's free text (a forged row's text is the forger's).
    fn cross_check(&self, records: &[ScheduleRecord]) -> Vec<String> {
        use runbook_core::schedule::due_text;
        use std::collections::BTreeMap;
        let mut out = Vec::new();
        let mut fire_records: BTreeMap<i64, Vec<&ScheduleRecord>> = BTreeMap::new();
        let mut alert_records: BTreeMap<(String, i64), Vec<&ScheduleRecord>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            match &r.event {
                ScheduleEvent::Fired { due, .. }
                | ScheduleEvent::Skipped { due, .. }
                | ScheduleEvent::Missed { due, .. } => match self.due_ms.get(i).copied().flatten() {
                    Some(ms) if due_text(ms) == *due => fire_records.entry(ms).or_default().push(r),
                    Some(ms) => out.push(format!(
                        "record {}: schedule_events.due_ms says due time {}, its body says {}",
                        r.seq,
                        due_text(ms),
                        runbook_core::shown::one_line(due)
                    )),
                    None => out
                        .push(format!("record {}: schedule_events.due_ms is empty beside a due time", r.seq)),
                },
                ScheduleEvent::Overdue { since, reminder, .. } => {
                    alert_records.entry((since.clone(), *reminder)).or_default().push(r);
                }
                ScheduleEvent::BackInTime { overdue_since, .. } => {
                    alert_records.entry((overdue_since.clone(), -1)).or_default().push(r);
                }
                ScheduleEvent::Watched { .. } => {
                    // Appended only to an empty journal, with no due time (red team adv23 F2).
                    if r.seq != 1 {
                        out.push(format!(
                            "record {}: a `watched` record is only ever a journal's first",
                            r.seq
                        ));
                    }
                    if self.due_ms.get(i).copied().flatten().is_some() {
                        out.push(format!(
                            "record {}: schedule_events.due_ms is set beside a `watched` record",
                            r.seq
                        ));
                    }
                }
                ScheduleEvent::Rewatched { .. } => {
                    // Appended after record 1, before any due time was taken, with no due
                    // time (red team adv24 S1, S2).
                    if r.seq == 1 {
                        out.push(format!(
                            "record {}: a `rewatched` record is never a journal's first",
                            r.seq
                        ));
                    }
                    if self.due_ms.get(i).copied().flatten().is_some() {
                        out.push(format!(
                            "record {}: schedule_events.due_ms is set beside a `rewatched` record",
                            r.seq
                        ));
                    }
                }
                ScheduleEvent::Notified { .. }
                | ScheduleEvent::NotifyFailed { .. }
                | ScheduleEvent::NoRecord { .. } => {}
            }
        }
        for f in &self.fires {
            let due = due_text(f.due_ms);
            let Some(found) = fire_records.remove(&f.due_ms) else {
                out.push(format!(
                    "schedule_fires: the row of due time {due} ({}) has no journal record",
                    if f.outcome == "queued" { "queued" } else { "not fired" }
                ));
                continue;
            };
            if found.len() > 1 {
                let seqs: Vec<String> = found.iter().map(|r| r.seq.to_string()).collect();
                out.push(format!(
                    "schedule_fires: due time {due} has {} journal records ({})",
                    found.len(),
                    seqs.join(", ")
                ));
            }
            let r = found[0];
            let reason = match &r.event {
                ScheduleEvent::Skipped { reason, .. } => Some(*reason),
                _ => None,
            };
            match expected_kind(f) {
                None => out.push(format!("schedule_fires: the row of due time {due} is neither queued with a run nor skipped without one")),
                Some((kind, want)) if kind != r.event.kind() || want != reason => out.push(format!(
                    "record {}: it says `{}`{}, its schedule_fires row says `{kind}`{}",
                    r.seq,
                    r.event.kind(),
                    reason.map(|x| format!(" ({})", x.as_str())).unwrap_or_default(),
                    want.map(|x| format!(" ({})", x.as_str())).unwrap_or_default()
                )),
                Some(_) => {}
            }
            if let ScheduleEvent::Fired { run_id, .. } = &r.event
                && f.run_id.as_deref() != Some(run_id.as_str())
            {
                out.push(format!("record {}: its schedule_fires row names another run", r.seq));
            }
        }
        for rs in fire_records.values() {
            for r in rs {
                out.push(format!("record {}: its due time has no row in schedule_fires", r.seq));
            }
        }
        for (since_ms, reminder) in &self.alerts {
            let since = due_text(*since_ms);
            let what =
                if *reminder < 0 { "back in time".to_string() } else { format!("overdue notice {reminder}") };
            match alert_records.remove(&(since.clone(), *reminder)) {
                None => out.push(format!(
                    "schedule_alerts: the row of the {what} since {since} has no journal record"
                )),
                Some(rs) if rs.len() > 1 => out.push(format!(
                    "schedule_alerts: the {what} since {since} has {} journal records",
                    rs.len()
                )),
                Some(_) => {}
            }
        }
        for rs in alert_records.values() {
            for r in rs {
                out.push(format!("record {}: it has no row in schedule_alerts", r.seq));
            }
        }
        out
    }
}

impl Store {
    /// The head of `schedule`'s journal, locked inside `tx` (its row made first if the
    /// schedule has none): every writer of the journal takes it before reading the tail.
    async fn lock_schedule_head(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        schedule: &str,
    ) -> Result<sqlx::any::AnyRow> {
        sqlx::query(
            "INSERT INTO schedule_heads (schedule, last_seq, last_hash) VALUES ($1, 0, NULL) \
             ON CONFLICT (schedule) DO NOTHING",
        )
        .bind(schedule)
        .execute(&mut **tx)
        .await?;
        Ok(sqlx::query(self.backend.schedule_head()).bind(schedule).fetch_one(&mut **tx).await?)
    }

    /// Append `event` to the journal of `schedule` inside `tx`: the head locked, the record
    /// chained to the journal's last one (which the head must name), inserted, the head
    /// moved. `due_ms` is stored beside the body for queries.
    pub(crate) async fn append_schedule(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        schedule: &str,
        ts: &str,
        event: ScheduleEvent,
        due_ms: Option<i64>,
    ) -> Result<ScheduleRecord> {
        let head = self.lock_schedule_head(tx, schedule).await?;
        let (seq, last_hash): (i64, Option<String>) = (head.try_get(0)?, head.try_get(1)?);
        let tail = sqlx::query(
            "SELECT seq, hash FROM schedule_events WHERE schedule = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(schedule)
        .fetch_optional(&mut **tx)
        .await?;
        let tail: (i64, Option<String>) = match tail {
            Some(row) => (row.try_get(0)?, Some(row.try_get(1)?)),
            None => (0, None),
        };
        if tail != (seq, last_hash.clone()) {
            return Err(StoreError::Corrupt(format!(
                "schedule {schedule}: its head (record {seq}) is not its journal's last record (record {}): `runbook audit verify`",
                tail.0
            )));
        }
        let prev = last_hash.unwrap_or_else(|| GENESIS.to_string());
        let next = u64::try_from(seq).unwrap_or(0) + 1;
        let record = ScheduleRecord::new(schedule, next, ts, event, &prev, self.role.as_deref());
        let body = serde_json::to_string(&record.event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO schedule_events (schedule, seq, ts, kind, due_ms, body, prev_hash, hash, db_role) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(schedule)
        .bind(record.seq as i64)
        .bind(ts)
        .bind(record.event.kind())
        .bind(due_ms)
        .bind(&body)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .bind(record.db_role.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(crate::identity_refusal)?;
        sqlx::query("UPDATE schedule_heads SET last_seq = $1, last_hash = $2 WHERE schedule = $3")
            .bind(record.seq as i64)
            .bind(&record.hash)
            .bind(schedule)
            .execute(&mut **tx)
            .await?;
        Ok(record)
    }

    /// Journal the outcome of a notification this worker sent (`notified`, `notify_failed`),
    /// in a transaction of its own, after the send. No claim stands behind it: an overdue
    /// notice's outcome follows the `overdue` record whose claim the store gave this worker,
    /// but a change notification (`about = "change"`, RB104) is sent and journaled by every
    /// worker that finds the schedule's files changed, once per worker (red team adv18a S5;
    /// the schedules page says so). A SIGKILL between the send and this record leaves the
    /// outcome unrecorded (adv18a S3, not fixed yet: see ARCHITECTURE.md).
    pub async fn record_schedule_event(
        &self,
        schedule: &str,
        ts: &str,
        event: &ScheduleEvent,
    ) -> Result<ScheduleRecord> {
        crate::retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let record = self.append_schedule(&mut tx, schedule, ts, event.clone(), None).await?;
            tx.commit().await?;
            Ok(record)
        })
        .await
    }

    /// A schedule whose dead-man's switch fired is back in time: the one caller whose claim
    /// succeeds journals it (`back_in_time`). The claim is a row of `schedule_alerts` with
    /// reminder -1 for the overdue period (its `since_ms`), taken when a success
    /// (`success`, at `success_ms`) is later than the period's start. True for the one
    /// caller that recorded it.
    pub async fn claim_back_in_time(
        &self,
        schedule: &str,
        success: &str,
        success_ms: i64,
        by: &str,
        at: &str,
    ) -> Result<bool> {
        const OPEN: &str = "SELECT MAX(a.since_ms) FROM schedule_alerts a WHERE a.schedule = $1 AND a.reminder >= 0 \
             AND a.since_ms < $2 AND NOT EXISTS (SELECT 1 FROM schedule_alerts b \
             WHERE b.schedule = a.schedule AND b.since_ms = a.since_ms AND b.reminder = -1)";
        // Read first, without a write lock: most polls find nothing to record.
        let open: Option<i64> =
            sqlx::query(OPEN).bind(schedule).bind(success_ms).fetch_one(&self.pool).await?.try_get(0)?;
        if open.is_none() {
            return Ok(false);
        }
        crate::retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let open: Option<i64> =
                sqlx::query(OPEN).bind(schedule).bind(success_ms).fetch_one(&mut *tx).await?.try_get(0)?;
            let Some(since_ms) = open else {
                tx.rollback().await?;
                return Ok(false);
            };
            // The record first, then the row (the row's trigger wants it, migration 14).
            let event = ScheduleEvent::BackInTime {
                overdue_since: runbook_core::schedule::due_text(since_ms),
                success: success.to_string(),
                worker: by.to_string(),
            };
            self.append_schedule(&mut tx, schedule, at, event, Some(since_ms)).await?;
            let inserted = sqlx::query(
                "INSERT INTO schedule_alerts (schedule, since_ms, reminder, sent_by, sent_at) \
                 VALUES ($1, $2, -1, $3, $4) ON CONFLICT (schedule, since_ms, reminder) DO NOTHING",
            )
            .bind(schedule)
            .bind(since_ms)
            .bind(by)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Claim the next delivery attempt of the notice of `schedule`'s latest overdue alert
    /// (issue 17, S3), as [`runbook_core::schedule::next_notice`] decides from its attempts:
    /// the insert of (schedule, since, reminder, attempt) lets exactly one worker make each
    /// attempt, holding it until `now_ms + lease_ms`. An attempt whose lease expired with no
    /// outcome is journaled `notify_failed` (lapsed), under the worker that held it, in the
    /// transaction of the claim that takes it over. `None`: nothing to send now.
    pub async fn claim_notice(
        &self,
        schedule: &str,
        now_ms: i64,
        lease_ms: i64,
        by: &str,
        at: &str,
    ) -> Result<Option<NoticeClaim>> {
        use runbook_core::schedule::NoticeNext;
        // Read first, without a write lock: most passes find nothing to send.
        let (alert, next) = {
            let mut conn = self.pool.acquire().await?;
            self.notice_next(&mut conn, schedule, now_ms).await?
        };
        if alert.is_none() || !matches!(next, NoticeNext::Try { .. }) {
            return Ok(None);
        }
        crate::retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let (alert, next) = self.notice_next(&mut tx, schedule, now_ms).await?;
            let (Some((since_ms, reminder)), NoticeNext::Try { attempt, lapsed }) = (alert, next) else {
                tx.rollback().await?;
                return Ok(None);
            };
            let inserted = sqlx::query(
                "INSERT INTO schedule_notices (schedule, since_ms, reminder, attempt, claimed_by, claimed_at, lease_until_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (schedule, since_ms, reminder, attempt) DO NOTHING",
            )
            .bind(schedule)
            .bind(since_ms)
            .bind(reminder)
            .bind(i64::from(attempt))
            .bind(by)
            .bind(at)
            .bind(now_ms.saturating_add(lease_ms))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            if let Some(old) = lapsed {
                let held = sqlx::query(
                    "UPDATE schedule_notices SET outcome = 'lapsed', failure = $1 \
                     WHERE schedule = $2 AND since_ms = $3 AND reminder = $4 AND attempt = $5 AND outcome IS NULL \
                     RETURNING claimed_by",
                )
                .bind(LAPSED)
                .bind(schedule)
                .bind(since_ms)
                .bind(reminder)
                .bind(i64::from(old))
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = held {
                    let event = ScheduleEvent::NotifyFailed {
                        about: "overdue".into(),
                        worker: row.try_get(0)?,
                        attempt: Some(old),
                        failure: Some(LAPSED.into()),
                    };
                    self.append_schedule(&mut tx, schedule, at, event, None).await?;
                }
            }
            tx.commit().await?;
            Ok(Some(NoticeClaim { since_ms, reminder, attempt }))
        })
        .await
    }

    /// The latest overdue alert of `schedule` and what its notice's attempts say to do.
    async fn notice_next(
        &self,
        db: &mut sqlx::AnyConnection,
        schedule: &str,
        now_ms: i64,
    ) -> Result<(Option<(i64, i64)>, runbook_core::schedule::NoticeNext)> {
        let attempts = |since_ms: i64, reminder: i64| {
            sqlx::query(
                "SELECT attempt, outcome, lease_until_ms, retry_at_ms FROM schedule_notices \
                 WHERE schedule = $1 AND since_ms = $2 AND reminder = $3 ORDER BY attempt",
            )
            .bind(schedule.to_string())
            .bind(since_ms)
            .bind(reminder)
        };
        let alert = sqlx::query(
            "SELECT since_ms, reminder FROM schedule_alerts WHERE schedule = $1 AND reminder >= 0 \
             ORDER BY since_ms DESC, reminder DESC LIMIT 1",
        )
        .bind(schedule)
        .fetch_optional(&mut *db)
        .await?;
        let Some(alert) = alert else { return Ok((None, runbook_core::schedule::NoticeNext::Settled)) };
        let (since_ms, reminder): (i64, i64) = (alert.try_get(0)?, alert.try_get(1)?);
        let rows = attempts(since_ms, reminder).fetch_all(&mut *db).await?;
        let attempts = notice_attempts(&rows)?;
        Ok((Some((since_ms, reminder)), runbook_core::schedule::next_notice(&attempts, now_ms)))
    }

    /// Journal the outcome of delivery attempt `claim` of an overdue notice, and set it on
    /// its row, in one transaction. A failure sets when the next attempt may be made
    /// (`retry_at_ms`). An attempt already taken over as lapsed records only a delivery
    /// (its failure is already journaled): `None` for a failure that came too late.
    pub async fn record_notice_outcome(
        &self,
        schedule: &str,
        claim: &NoticeClaim,
        failure: Option<&str>,
        retry_at_ms: i64,
        by: &str,
        at: &str,
    ) -> Result<Option<ScheduleRecord>> {
        crate::retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let set = sqlx::query(
                "UPDATE schedule_notices SET outcome = $1, failure = $2, retry_at_ms = $3 \
                 WHERE schedule = $4 AND since_ms = $5 AND reminder = $6 AND attempt = $7 \
                 AND (outcome IS NULL OR (outcome = 'lapsed' AND $1 = 'delivered'))",
            )
            .bind(if failure.is_none() { "delivered" } else { "failed" })
            .bind(failure)
            .bind(failure.map(|_| retry_at_ms))
            .bind(schedule)
            .bind(claim.since_ms)
            .bind(claim.reminder)
            .bind(i64::from(claim.attempt))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if set != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            let (about, worker, attempt) = ("overdue".to_string(), by.to_string(), Some(claim.attempt));
            let event = match failure {
                None => ScheduleEvent::Notified { about, worker, attempt },
                Some(why) => {
                    ScheduleEvent::NotifyFailed { about, worker, attempt, failure: Some(why.into()) }
                }
            };
            let record = self.append_schedule(&mut tx, schedule, at, event, None).await?;
            tx.commit().await?;
            Ok(Some(record))
        })
        .await
    }

    /// The notice of `schedule`'s latest overdue alert, as `runbook schedules --state` shows
    /// it (`None`: no alert, or a store older than migration 10).
    pub async fn notice_state(&self, schedule: &str) -> Result<Option<NoticeState>> {
        let alert = sqlx::query(
            "SELECT since_ms, reminder FROM schedule_alerts WHERE schedule = $1 AND reminder >= 0 \
             ORDER BY since_ms DESC, reminder DESC LIMIT 1",
        )
        .bind(schedule)
        .fetch_optional(&self.pool)
        .await?;
        let Some(alert) = alert else { return Ok(None) };
        let (since_ms, reminder): (i64, i64) = (alert.try_get(0)?, alert.try_get(1)?);
        let rows = sqlx::query(
            "SELECT attempt, outcome, failure FROM schedule_notices \
             WHERE schedule = $1 AND since_ms = $2 AND reminder = $3 ORDER BY attempt",
        )
        .bind(schedule)
        .bind(since_ms)
        .bind(reminder)
        .fetch_all(&self.pool)
        .await?;
        let mut state = NoticeState { since_ms, reminder, ..NoticeState::default() };
        for row in rows {
            let attempt = u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
            let outcome: Option<String> = row.try_get(1)?;
            match outcome.as_deref() {
                Some("delivered") | Some("legacy") => state.delivered = Some(attempt),
                Some(_) => {
                    state.failed += 1;
                    state.last_failure = row.try_get(2)?;
                }
                None => state.in_flight = Some(attempt),
            }
        }
        Ok(Some(state))
    }

    /// Whether the journal of `schedule` holds the record of the decision about due time
    /// `due_ms` (`fired`, `skipped`, `missed`): a worker that finds the due time taken asks,
    /// and a row without its record (possible only past the store's triggers) is reported
    /// (issue 17, S1).
    pub async fn due_time_recorded(&self, schedule: &str, due_ms: i64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM schedule_events WHERE schedule = $1 AND due_ms = $2 \
             AND kind IN ('fired', 'skipped', 'missed') LIMIT 1",
        )
        .bind(schedule)
        .bind(due_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Whether the journal of `schedule` holds the `overdue` record of the notice
    /// (`since_ms`, `reminder`): a worker whose claim finds the notice taken asks, and a row
    /// without its record (possible only past the store's trigger) is reported (issue 17).
    pub async fn alert_recorded(&self, schedule: &str, since_ms: i64, reminder: i64) -> Result<bool> {
        let since = runbook_core::schedule::due_text(since_ms);
        let rows = sqlx::query("SELECT body FROM schedule_events WHERE schedule = $1 AND kind = 'overdue'")
            .bind(schedule)
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let body: String = row.try_get(0)?;
            if let Ok(ScheduleEvent::Overdue { since: s, reminder: r, .. }) = serde_json::from_str(&body)
                && s == since
                && r == reminder
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Journal that a row of `table` (`schedule_fires` or `schedule_alerts`) takes a due
    /// time (`due_ms`), or an overdue notice (its period's start `due_ms` and `reminder`),
    /// with no record in the journal of `schedule` (issue 17): once per due time or notice,
    /// by the first worker that asks; the head's lock orders them. True for the one caller
    /// that recorded it.
    pub async fn record_no_record(
        &self,
        schedule: &str,
        table: &str,
        due_ms: i64,
        reminder: Option<i64>,
        by: &str,
        at: &str,
    ) -> Result<bool> {
        let due = runbook_core::schedule::due_text(due_ms);
        crate::retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            self.lock_schedule_head(&mut tx, schedule).await?;
            let rows = sqlx::query(
                "SELECT body FROM schedule_events WHERE schedule = $1 AND kind = 'no_record' AND due_ms = $2",
            )
            .bind(schedule)
            .bind(due_ms)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let body: String = row.try_get(0)?;
                if let Ok(ScheduleEvent::NoRecord { table: t, reminder: r, .. }) = serde_json::from_str(&body)
                    && t == table
                    && r == reminder
                {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            let event = ScheduleEvent::NoRecord {
                table: table.to_string(),
                due: due.clone(),
                reminder,
                worker: by.to_string(),
            };
            self.append_schedule(&mut tx, schedule, at, event, Some(due_ms)).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// The `no_record` records of `schedule` still to be shown (`runbook schedules --state`,
    /// the console): one about a due time until a later due time fires (a `fired` record
    /// after it), one about an overdue notice until a later notice is taken (an `overdue`
    /// or `back_in_time` record after it).
    pub async fn schedule_warnings(&self, schedule: &str) -> Result<Vec<ScheduleRecord>> {
        let last = |q: &'static str| async move {
            let seq: i64 = sqlx::query(q).bind(schedule).fetch_one(&self.pool).await?.try_get(0)?;
            Ok::<u64, StoreError>(u64::try_from(seq).unwrap_or(0))
        };
        let fired =
            last("SELECT COALESCE(MAX(seq), 0) FROM schedule_events WHERE schedule = $1 AND kind = 'fired'")
                .await?;
        let noticed = last(
            "SELECT COALESCE(MAX(seq), 0) FROM schedule_events WHERE schedule = $1 \
             AND kind IN ('overdue', 'back_in_time')",
        )
        .await?;
        let rows = sqlx::query(
            "SELECT seq, ts, body, prev_hash, hash, db_role FROM schedule_events WHERE schedule = $1 \
             AND kind IN ('no_record', 'rewatched') ORDER BY seq",
        )
        .bind(schedule)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let seq: i64 = row.try_get(0)?;
            let body: String = row.try_get(2)?;
            let event = serde_json::from_str::<ScheduleEvent>(&body)
                .map_err(|e| StoreError::Corrupt(format!("schedule {schedule}: record {seq}: {e}")))?;
            let seq = u64::try_from(seq).unwrap_or(0);
            let after = match &event {
                ScheduleEvent::NoRecord { reminder: None, .. } | ScheduleEvent::Rewatched { .. } => fired,
                _ => noticed,
            };
            if seq <= after {
                continue;
            }
            out.push(ScheduleRecord {
                schedule: schedule.to_string(),
                seq,
                ts: row.try_get(1)?,
                event,
                prev_hash: row.try_get(3)?,
                hash: row.try_get(4)?,
                db_role: row.try_get(5)?,
            });
        }
        Ok(out)
    }

    /// A worker watches `schedule` (red team adv23 F2): the first worker that finds its
    /// journal empty appends a `watched` record (the worker, its start `since`, no due
    /// time), in one transaction that holds the journal's head lock and appends only while
    /// the journal is empty, so that exactly one stands per name however many workers race.
    /// Every caller gets the journal's first record back: that `watched` record, or the
    /// first record of a journal begun before them.
    pub async fn watch_schedule(
        &self,
        schedule: &str,
        since: &str,
        by: &str,
        at: &str,
    ) -> Result<ScheduleRecord> {
        // Read first, without a write lock: every pass but the first finds the record.
        let row = sqlx::query(FIRST_RECORD).bind(schedule).fetch_optional(&self.pool).await?;
        if let Some(row) = row {
            return first_record(schedule, &row);
        }
        crate::retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let head = self.lock_schedule_head(&mut tx, schedule).await?;
            if head.try_get::<i64, _>(0)? == 0 {
                let event = ScheduleEvent::Watched { since: since.to_string(), worker: by.to_string() };
                self.append_schedule(&mut tx, schedule, at, event, None).await?;
            }
            let row = sqlx::query(FIRST_RECORD).bind(schedule).fetch_optional(&mut *tx).await?;
            let first = match row {
                Some(row) => first_record(schedule, &row)?,
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "schedule {schedule}: its head names records its journal does not hold: `runbook audit verify`"
                    )));
                }
            };
            tx.commit().await?;
            Ok(first)
        })
        .await
    }

    /// The watch records of `schedule`'s journal, in order: its first record (a `watched`
    /// record, or the first of a journal begun before them) and every `rewatched` record.
    pub async fn watch_records(&self, schedule: &str) -> Result<Vec<ScheduleRecord>> {
        let rows = sqlx::query(WATCH_RECORDS).bind(schedule).fetch_all(&self.pool).await?;
        rows.iter().map(|row| first_record(schedule, row)).collect()
    }

    /// A worker watches never-fired `schedule` again (red team adv24 S1, S2): a `rewatched`
    /// record with its start `since` and why the watch records before it are not believed,
    /// appended in one transaction holding the journal's head lock, only while the journal's
    /// last watch record is still record `after` (so that one worker appends it for one
    /// state of the journal however many race) and no due time of the schedule was taken.
    /// The record appended, or `None` when another worker was first or a due time was taken.
    pub async fn rewatch_schedule(
        &self,
        schedule: &str,
        after: u64,
        since: &str,
        doubt: &str,
        by: &str,
        at: &str,
    ) -> Result<Option<ScheduleRecord>> {
        crate::retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            let _head = self.lock_schedule_head(&mut tx, schedule).await?;
            let last: Option<i64> = sqlx::query(
                "SELECT MAX(seq) FROM schedule_events WHERE schedule = $1 AND (seq = 1 OR kind = 'rewatched')",
            )
            .bind(schedule)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let taken: i64 = sqlx::query("SELECT COUNT(*) FROM schedule_fires WHERE schedule = $1")
                .bind(schedule)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if last.and_then(|l| u64::try_from(l).ok()) != Some(after) || taken > 0 {
                return Ok(None);
            }
            let event = ScheduleEvent::Rewatched {
                since: since.to_string(),
                doubt: doubt.to_string(),
                worker: by.to_string(),
            };
            let record = self.append_schedule(&mut tx, schedule, at, event, None).await?;
            tx.commit().await?;
            Ok(Some(record))
        })
        .await
    }

    /// When the store began: its first migration, on the database's clock (PostgreSQL) or
    /// the migrating process's (SQLite), in milliseconds since the epoch. `None` for a store
    /// that does not say. No watch of a schedule in it is believed earlier (adv24 S2).
    pub async fn began_ms(&self) -> Result<Option<i64>> {
        let sql = match self.backend {
            crate::Backend::Sqlite => {
                "SELECT CAST(ROUND((julianday(MIN(installed_on)) - 2440587.5) * 86400000.0) AS INTEGER) FROM _sqlx_migrations"
            }
            crate::Backend::Postgres => {
                "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM MIN(installed_on)) * 1000) AS BIGINT) FROM _sqlx_migrations"
            }
        };
        Ok(sqlx::query(sql).fetch_one(&self.pool).await?.try_get::<Option<i64>, _>(0)?)
    }

    /// The journal of `schedule`, in order (empty when it has none).
    pub async fn schedule_records(&self, schedule: &str) -> Result<Vec<ScheduleRecord>> {
        let mut journals = self.schedule_journals(Some(schedule)).await?;
        match journals.pop() {
            Some(j) => j.records.map_err(|e| StoreError::Corrupt(format!("schedule {schedule}: {e}"))),
            None => Ok(Vec::new()),
        }
    }

    /// Every schedule's journal (or only `only`'s), each with its head, read in one snapshot.
    pub async fn schedule_journals(&self, only: Option<&str>) -> Result<Vec<ScheduleJournal>> {
        let mut tx = self.pool.begin_with(self.backend.begin_snapshot()).await?;
        let names = sqlx::query(
            "SELECT schedule FROM schedule_heads WHERE (CAST($1 AS TEXT) IS NULL OR schedule = $1) \
             UNION SELECT DISTINCT schedule FROM schedule_events WHERE (CAST($1 AS TEXT) IS NULL OR schedule = $1) \
             UNION SELECT DISTINCT schedule FROM schedule_fires WHERE (CAST($1 AS TEXT) IS NULL OR schedule = $1) \
             UNION SELECT DISTINCT schedule FROM schedule_alerts WHERE (CAST($1 AS TEXT) IS NULL OR schedule = $1) \
             ORDER BY 1",
        )
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(names.len());
        for row in names {
            let schedule: String = row.try_get(0)?;
            let head = sqlx::query("SELECT last_seq, last_hash FROM schedule_heads WHERE schedule = $1")
                .bind(&schedule)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| -> Result<(i64, Option<String>)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
                .transpose()?;
            let rows = sqlx::query(
                "SELECT seq, ts, kind, body, prev_hash, hash, db_role, due_ms FROM schedule_events \
                 WHERE schedule = $1 ORDER BY seq",
            )
            .bind(&schedule)
            .fetch_all(&mut *tx)
            .await?;
            let mut kinds = Vec::with_capacity(rows.len());
            let mut due_ms = Vec::with_capacity(rows.len());
            let mut records = Ok(Vec::with_capacity(rows.len()));
            for row in &rows {
                let seq: i64 = row.try_get(0)?;
                kinds.push(row.try_get::<String, _>(2)?);
                due_ms.push(row.try_get::<Option<i64>, _>(7)?);
                let body: String = row.try_get(3)?;
                let event = serde_json::from_str::<ScheduleEvent>(&body);
                match (&mut records, event) {
                    (Ok(list), Ok(event)) => list.push(ScheduleRecord {
                        schedule: schedule.clone(),
                        seq: u64::try_from(seq).unwrap_or(0),
                        ts: row.try_get(1)?,
                        event,
                        prev_hash: row.try_get(4)?,
                        hash: row.try_get(5)?,
                        db_role: row.try_get(6)?,
                    }),
                    (Ok(_), Err(e)) => records = Err(format!("record {seq}: {e}")),
                    (Err(_), _) => {}
                }
            }
            let fires = sqlx::query(
                "SELECT due_ms, outcome, run_id, note FROM schedule_fires WHERE schedule = $1 ORDER BY due_ms",
            )
            .bind(&schedule)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| -> Result<FireRow> {
                Ok(FireRow { due_ms: r.try_get(0)?, outcome: r.try_get(1)?, run_id: r.try_get(2)?, note: r.try_get(3)? })
            })
            .collect::<Result<Vec<_>>>()?;
            let alerts = sqlx::query(
                "SELECT since_ms, reminder FROM schedule_alerts WHERE schedule = $1 ORDER BY since_ms, reminder",
            )
            .bind(&schedule)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| -> Result<(i64, i64)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
            .collect::<Result<Vec<_>>>()?;
            out.push(ScheduleJournal { schedule, head, records, kinds, due_ms, fires, alerts });
        }
        tx.rollback().await?;
        Ok(out)
    }
}
