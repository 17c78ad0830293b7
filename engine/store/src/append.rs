//! How an append reaches the database: the statements every backend shares, and SQLite's
//! short path.
//!
//! sqlx runs each SQLite connection on a thread of its own; every statement is a round trip
//! to that thread and back (two thread wake-ups), and a connection taken from the pool is
//! pinged when taken and again when given back. Through the pool, an append cost eight such
//! round trips (ping, `BEGIN IMMEDIATE`, the head, the tail, the insert, the head's update,
//! `COMMIT`, ping). On SQLite an append therefore goes through one connection kept for the
//! journal's writes ([`Writer`]) in two round trips: `BEGIN IMMEDIATE` with the read of the
//! run's head, fence and last record; then the inserts, the head's update and `COMMIT`.
//! The transaction, its checks and its one sync to disk are the same as before.

use std::sync::Arc;

use runbook_core::journal::{Record, RunEvent};
use sqlx::{Executor as _, Row as _};

use crate::{INSERT_BATCH, Lease, NewRun, Result, Store, StoreError, identity_refusal};

/// Events chained to a run's head, ready to insert, and what they change in its `runs` row.
pub(crate) struct Chained {
    pub(crate) records: Vec<Record>,
    /// Each record's event as JSON.
    pub(crate) bodies: Vec<String>,
    /// The new head.
    pub(crate) seq: u64,
    pub(crate) prev: String,
    pub(crate) status: Option<&'static str>,
    /// Whether the run finished (at the records' time).
    pub(crate) finished: bool,
    /// 1 when a finished run was reopened (resumed).
    pub(crate) reopened: i64,
    /// 1 when these are the run's first records.
    pub(crate) first: i64,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl Chained {
    /// Bind the values of [`update_head_sql`], in its order.
    pub(crate) fn bind_head<'q>(&'q self, query: AnyQuery<'q>, run_id: &'q str, ts: &'q str) -> AnyQuery<'q> {
        query
            .bind(self.seq as i64)
            .bind(&self.prev)
            .bind(self.status)
            .bind(self.finished.then_some(ts))
            .bind(run_id)
            .bind(self.reopened)
            .bind(self.first)
            .bind(ts)
    }
}

/// `INSERT` of `n` events, its placeholders numbered from `after + 1` (9 a record). The
/// text holds only placeholders.
pub(crate) fn insert_events_sql(n: usize, after: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::from(
        "INSERT INTO events (run_id, seq, ts, kind, step, body, prev_hash, hash, db_role) VALUES ",
    );
    for i in 0..n {
        let b = after + i * 9;
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}(");
        for k in 1..=9 {
            let _ = write!(sql, "{}${}", if k == 1 { "" } else { ", " }, b + k);
        }
        sql.push(')');
    }
    sql
}

/// Bind one record's values of [`insert_events_sql`], in its order.
pub(crate) fn bind_event<'q>(
    query: AnyQuery<'q>,
    run_id: &'q str,
    ts: &'q str,
    record: &'q Record,
    body: &'q str,
) -> AnyQuery<'q> {
    query
        .bind(run_id)
        .bind(record.seq as i64)
        .bind(ts)
        .bind(record.event.kind())
        .bind(record.event.step())
        .bind(body)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .bind(record.db_role.as_deref())
}

/// The `runs` row's update to the new head, its placeholders numbered from `after + 1`
/// (8 of them, bound by [`Chained::bind_head`]).
pub(crate) fn update_head_sql(after: usize) -> String {
    let p = |k: usize| format!("${}", after + k);
    format!(
        "UPDATE runs SET last_seq = {}, last_hash = {}, status = COALESCE({}, status), \
         finished_at = CASE WHEN {} = 1 THEN NULL ELSE COALESCE({}, finished_at) END, \
         started_at = CASE WHEN {} = 1 THEN {} ELSE started_at END WHERE run_id = {}",
        p(1),
        p(2),
        p(3),
        p(6),
        p(4),
        p(7),
        p(8),
        p(5)
    )
}

/// What one append writes: `events` to run `run_id`'s journal at `ts`, under `lease`; with
/// `new`, the run's row first.
#[derive(Clone, Copy)]
pub(crate) struct Append<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) ts: &'a str,
    pub(crate) events: &'a [RunEvent],
    pub(crate) lease: Option<&'a Lease>,
    pub(crate) new: Option<&'a NewRun<'a>>,
}

/// The one SQLite connection a process writes its journal with, shared by every clone of
/// the [`Store`] (one writer at a time: SQLite allows no more, and `BEGIN IMMEDIATE` would
/// make the others wait anyway). Taken from the pool at the first append.
#[derive(Debug, Clone, Default)]
pub(crate) struct Writer(Arc<tokio::sync::Mutex<WriterState>>);

#[derive(Debug, Default)]
struct WriterState {
    conn: Option<sqlx::AnyConnection>,
    /// A transaction was begun and neither committed nor rolled back: the append that began
    /// it was cancelled (its future dropped). The next append rolls it back first.
    open: bool,
}

/// `BEGIN IMMEDIATE` and the read of the run's head (`$1` the run, `$2` the lease's lock
/// or NULL): its `runs` row's head, the lock's fence for this run, and its journal's last
/// record. With `$3`..`$7`, the new run's row is inserted first.
const BEGIN_AND_HEAD: &str = "BEGIN IMMEDIATE; \
    SELECT r.last_seq, r.last_hash, (SELECT fence FROM locks WHERE name = $2 AND run_id = $1), t.seq, t.hash \
    FROM runs r LEFT JOIN (SELECT seq, hash FROM events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1) t ON 1 \
    WHERE r.run_id = $1";
const BEGIN_NEW_RUN_AND_HEAD: &str = "BEGIN IMMEDIATE; \
    INSERT INTO runs (run_id, runbook, operator, started_at, status, lock_name) VALUES ($1, $3, $4, $5, $6, $7); \
    SELECT r.last_seq, r.last_hash, (SELECT fence FROM locks WHERE name = $2 AND run_id = $1), t.seq, t.hash \
    FROM runs r LEFT JOIN (SELECT seq, hash FROM events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1) t ON 1 \
    WHERE r.run_id = $1";

impl Store {
    /// [`Store::append_all`] (and [`Store::start_run`], with `new`) on SQLite, through the
    /// journal's own connection: the same transaction as the pool's path, in two round trips.
    pub(crate) async fn append_sqlite(&self, append: &Append<'_>) -> Result<Vec<Record>> {
        let mut state = self.writer.0.lock().await;
        let state = &mut *state;
        let conn = match &mut state.conn {
            Some(conn) => conn,
            empty => empty.insert(self.pool.acquire().await?.detach()),
        };
        if state.open {
            // Nothing of a cancelled append was committed (or all of it was, and this
            // finds no transaction): either way the connection starts clean.
            let _ = conn.execute("ROLLBACK").await;
            state.open = false;
        }
        state.open = true;
        let result = self.append_on(conn, append).await;
        if result.is_err() {
            // Ends the transaction if one is open (none is when `BEGIN` failed or `COMMIT`
            // ended it). A connection that no longer answers is replaced at the next append.
            let _ = conn.execute("ROLLBACK").await;
            if sqlx::Connection::ping(conn).await.is_err() {
                state.conn = None;
            }
        }
        state.open = false;
        result
    }

    async fn append_on(&self, conn: &mut sqlx::AnyConnection, append: &Append<'_>) -> Result<Vec<Record>> {
        let Append { run_id, ts, events, lease, new } = *append;
        let lock = lease.map(|l| l.name.as_str());
        let rows = match new {
            None => sqlx::query(BEGIN_AND_HEAD).bind(run_id).bind(lock).fetch_all(&mut *conn).await?,
            Some(run) => sqlx::query(BEGIN_NEW_RUN_AND_HEAD)
                .bind(run_id)
                .bind(lock)
                .bind(run.runbook)
                .bind(run.operator)
                .bind(run.started_at)
                .bind(runbook_core::journal::RunStatus::Running.as_str())
                .bind(run.lock_name)
                .fetch_all(&mut *conn)
                .await
                .map_err(identity_refusal)?,
        };
        let row = rows.first().ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))?;
        if let Some(lease) = lease
            && row.try_get::<Option<i64>, _>(2)? != Some(lease.fence)
        {
            return Err(Self::fenced(&mut *conn, lease).await?);
        }
        let seq = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
        let tail = (row.try_get::<Option<i64>, _>(3)?.unwrap_or(0), row.try_get::<Option<String>, _>(4)?);
        let chained = self.chain(run_id, ts, events, (seq, row.try_get(1)?), tail)?;
        // Every batch but the last alone (an append of more than INSERT_BATCH events is
        // rare); the last with the head's update and `COMMIT`.
        let mut batches = chained.records.chunks(INSERT_BATCH).enumerate().peekable();
        let mut last = String::new();
        let mut last_batch: &[Record] = &[];
        let mut last_start = 0;
        while let Some((i, batch)) = batches.next() {
            if batches.peek().is_none() {
                last = insert_events_sql(batch.len(), 0);
                (last_batch, last_start) = (batch, i * INSERT_BATCH);
                break;
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_events_sql(batch.len(), 0)));
            for (record, body) in batch.iter().zip(&chained.bodies[i * INSERT_BATCH..]) {
                query = bind_event(query, run_id, ts, record, body);
            }
            query.execute(&mut *conn).await.map_err(identity_refusal)?;
        }
        if !last.is_empty() {
            last.push_str("; ");
        }
        last.push_str(&update_head_sql(last_batch.len() * 9));
        last.push_str("; COMMIT");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(last));
        for (record, body) in last_batch.iter().zip(&chained.bodies[last_start..]) {
            query = bind_event(query, run_id, ts, record, body);
        }
        chained.bind_head(query, run_id, ts).execute(&mut *conn).await.map_err(identity_refusal)?;
        Ok(chained.records)
    }
}
