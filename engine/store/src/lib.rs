//! The state store: the journal of runs and the run locks. The only code that speaks SQL.
//!
//! SQLite by default (one file, WAL, `synchronous=FULL`); PostgreSQL comes with team mode.
//! Every journal write is one `BEGIN IMMEDIATE` transaction that checks the writer's fence,
//! reads the run's last record, chains the new one to it and inserts it, so concurrent
//! writers can neither leave a gap nor duplicate a sequence number. Triggers make journal
//! rows append-only inside the database; [`runbook_core::journal::verify`] catches what
//! someone with the file in hand could still change.
//!
//! The store reads no clock: callers pass timestamps, so tests control time.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use runbook_core::journal::{Record, RunEvent, RunStatus};
use sqlx::Row;
pub use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("state store error: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("state store schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The store was written by a newer `runbook`.
    #[error(
        "the state store's schema (version {found}) is newer than this runbook knows (version {known}); upgrade runbook"
    )]
    NewerSchema {
        /// Highest version applied to the store.
        found: i64,
        /// Highest version this binary has.
        known: i64,
    },
    /// A write came from a run that no longer holds its lock.
    #[error(
        "run `{run_id}` lost lock `{lock}` (its fence {fence} is older than {current}); the write was refused"
    )]
    Fenced {
        /// The run.
        run_id: String,
        /// The lock.
        lock: String,
        /// The writer's fence.
        fence: i64,
        /// The lock's current fence.
        current: i64,
    },
    /// The lock is held by a live run.
    #[error("lock `{}` is held by run {} ({}, since {})", .0.name, .0.run_id, .0.holder, .0.acquired_at)]
    LockHeld(Box<LockHolder>),
    /// A stored value does not parse.
    #[error("the state store holds an unreadable record: {0}")]
    Corrupt(String),
    /// No run with this id.
    #[error("no run `{0}` in the state store")]
    NoSuchRun(String),
    /// A decision that the run's state does not allow.
    #[error("{0}")]
    Refused(String),
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Lock name.
    pub name: String,
    /// The run holding it.
    pub run_id: String,
    /// `operator@host (pid N)`.
    pub holder: String,
    /// When it was taken (RFC 3339).
    pub acquired_at: String,
    /// When the lease runs out (ms since the epoch).
    pub lease_until: i64,
}

/// A held lock: the name and the fencing number every write of the run carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Lock name.
    pub name: String,
    /// Fencing number.
    pub fence: i64,
    /// The run holding it.
    pub run_id: String,
    /// Whether an expired lease of a dead run was taken over.
    pub took_over: Option<LockHolder>,
}

/// A run as listed by `runbook runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Id.
    pub run_id: String,
    /// Runbook name.
    pub runbook: String,
    /// Who started it.
    pub operator: String,
    /// When (RFC 3339).
    pub started_at: String,
    /// Status name.
    pub status: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Records in its journal.
    pub last_seq: i64,
    /// Hash of its last record.
    pub last_hash: Option<String>,
}

/// A new run's identity, written before its first event.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Id.
    pub run_id: &'a str,
    /// Runbook name.
    pub runbook: &'a str,
    /// Who starts it.
    pub operator: &'a str,
    /// When (RFC 3339).
    pub started_at: &'a str,
    /// Its lock, if any.
    pub lock_name: Option<&'a str>,
}

fn migrations() -> Vec<Migration> {
    vec![Migration::new(
        1,
        "journal".into(),
        MigrationType::Simple,
        sqlx::SqlStr::from_static(include_str!("../migrations/sqlite/0001_journal.sql")),
        false,
    )]
}

/// Run `op` again while SQLite answers "database is locked" at once. The busy timeout makes
/// a writer wait for another's transaction, but SQLite returns `SQLITE_BUSY` without waiting
/// in a few cases (a connection whose read snapshot went stale, WAL recovery); with several
/// writers in one run (included runbooks in parallel), those happen. Every write is one
/// transaction, so trying it again is safe.
async fn retry_busy<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = 2u64;
    for _ in 0..60 {
        match op().await {
            Err(StoreError::Db(e)) if is_busy(&e) => {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                wait = (wait * 2).min(100);
            }
            other => return other,
        }
    }
    op().await
}

fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        // SQLITE_BUSY (5) and its extended codes, SQLITE_LOCKED (6).
        d.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
            || d.message().contains("database is locked")
    })
}

/// The SQLite state store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating if needed) the store at `path` and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every committed event survives a power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let known = migrations().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = sqlx::query(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE EXISTS \
             (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_optional(&self.pool)
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<Option<i64>, _>(0).ok().flatten());
        if let Some(found) = applied
            && found > known
        {
            return Err(StoreError::NewerSchema { found, known });
        }
        Migrator::with_migrations(migrations()).run(&self.pool).await?;
        Ok(())
    }

    /// Record a new run (before its `run_started` event).
    pub async fn create_run(&self, run: &NewRun<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (run_id, runbook, operator, started_at, status, lock_name) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(run.run_id)
        .bind(run.runbook)
        .bind(run.operator)
        .bind(run.started_at)
        .bind(RunStatus::Running.as_str())
        .bind(run.lock_name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Append one event to a run's journal, chained to the previous record, in one
    /// transaction. With a lease, the write is refused unless the lease is still current.
    pub async fn append(
        &self,
        run_id: &str,
        ts: &str,
        event: &RunEvent,
        lease: Option<&Lease>,
    ) -> Result<Record> {
        retry_busy(|| self.append_once(run_id, ts, event, lease)).await
    }

    async fn append_once(
        &self,
        run_id: &str,
        ts: &str,
        event: &RunEvent,
        lease: Option<&Lease>,
    ) -> Result<Record> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(lease) = lease {
            let current: Option<i64> = sqlx::query("SELECT fence FROM locks WHERE name = ? AND run_id = ?")
                .bind(&lease.name)
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            if current != Some(lease.fence) {
                let newest: Option<i64> = sqlx::query("SELECT fence FROM locks WHERE name = ?")
                    .bind(&lease.name)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                return Err(StoreError::Fenced {
                    run_id: run_id.to_string(),
                    lock: lease.name.clone(),
                    fence: lease.fence,
                    current: newest.unwrap_or(lease.fence),
                });
            }
        }
        let record = Self::insert(&mut tx, run_id, ts, event).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Append a decision (an approval, a rejection) only if `check` accepts the run's state
    /// as folded inside the same transaction: two conflicting decisions made at once cannot
    /// both pass, because the second one sees the first.
    pub async fn append_checked<F>(
        &self,
        run_id: &str,
        ts: &str,
        event: &RunEvent,
        check: F,
    ) -> Result<Record>
    where
        F: FnOnce(&runbook_core::journal::RunState) -> std::result::Result<(), String>,
    {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let records = Self::read_records(&mut *tx, run_id, 0).await?;
        if records.is_empty() {
            return Err(StoreError::NoSuchRun(run_id.to_string()));
        }
        check(&runbook_core::journal::fold(&records)).map_err(StoreError::Refused)?;
        let record = Self::insert(&mut tx, run_id, ts, event).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn insert(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        run_id: &str,
        ts: &str,
        event: &RunEvent,
    ) -> Result<Record> {
        let last = sqlx::query("SELECT last_seq, last_hash FROM runs WHERE run_id = ?")
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))?;
        let last_seq: i64 = last.try_get(0)?;
        let last_hash: Option<String> = last.try_get(1)?;
        let prev = last_hash.unwrap_or_else(|| runbook_core::journal::GENESIS.to_string());
        let record = Record::new(run_id, last_seq as u64 + 1, ts, event.clone(), &prev);
        let body = serde_json::to_string(&record.event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO events (run_id, seq, ts, kind, step, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(record.seq as i64)
        .bind(ts)
        .bind(record.event.kind())
        .bind(record.event.step())
        .bind(&body)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .execute(&mut **tx)
        .await?;
        let (status, finished) = match &record.event {
            RunEvent::RunFinished { status } => (Some(status.as_str()), Some(ts)),
            RunEvent::RunInterrupted { .. } => (Some(RunStatus::Interrupted.as_str()), None),
            RunEvent::RunSuspended { .. } => (Some(RunStatus::NeedsOperator.as_str()), None),
            RunEvent::RunResumed { .. } => (Some(RunStatus::Running.as_str()), None),
            _ => (None, None),
        };
        sqlx::query(
            "UPDATE runs SET last_seq = ?, last_hash = ?, status = COALESCE(?, status), \
             finished_at = COALESCE(?, finished_at) WHERE run_id = ?",
        )
        .bind(record.seq as i64)
        .bind(&record.hash)
        .bind(status)
        .bind(finished)
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
        Ok(record)
    }

    /// A run's journal, in order.
    pub async fn records(&self, run_id: &str) -> Result<Vec<Record>> {
        Self::read_records(&self.pool, run_id, 0).await
    }

    /// A run's records after `seq`, in order (what a waiting run has not seen yet).
    pub async fn records_after(&self, run_id: &str, seq: u64) -> Result<Vec<Record>> {
        Self::read_records(&self.pool, run_id, seq).await
    }

    async fn read_records<'e, E>(executor: E, run_id: &str, after: u64) -> Result<Vec<Record>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
    {
        let rows = sqlx::query(
            "SELECT seq, ts, body, prev_hash, hash FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(run_id)
        .bind(after as i64)
        .fetch_all(executor)
        .await?;
        rows.iter()
            .map(|row| {
                let body: String = row.try_get(2)?;
                let event: RunEvent = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("run {run_id}: {e}")))?;
                Ok(Record {
                    run_id: run_id.to_string(),
                    seq: row.try_get::<i64, _>(0)? as u64,
                    ts: row.try_get(1)?,
                    event,
                    prev_hash: row.try_get(3)?,
                    hash: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunSummary>> {
        let rows = sqlx::query(
            "SELECT run_id, runbook, operator, started_at, status, finished_at, last_seq, last_hash \
             FROM runs ORDER BY started_at DESC, run_id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunSummary {
                    run_id: r.try_get(0)?,
                    runbook: r.try_get(1)?,
                    operator: r.try_get(2)?,
                    started_at: r.try_get(3)?,
                    status: r.try_get(4)?,
                    finished_at: r.try_get(5)?,
                    last_seq: r.try_get(6)?,
                    last_hash: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// One run's summary.
    pub async fn run(&self, run_id: &str) -> Result<RunSummary> {
        self.runs()
            .await?
            .into_iter()
            .find(|r| r.run_id == run_id)
            .ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))
    }

    /// The lock a run holds (or held last), if any.
    pub async fn lock_of_run(&self, run_id: &str) -> Result<Option<LockHolder>> {
        let row = sqlx::query("SELECT name, holder, acquired_at, lease_until FROM locks WHERE run_id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(LockHolder {
                name: r.try_get(0)?,
                run_id: run_id.to_string(),
                holder: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                acquired_at: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                lease_until: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Take lock `name` for `run_id` until `now_ms + ttl`. A live holder refuses it; an
    /// expired lease is taken over (reported in [`Lease::took_over`]), and so is a live lease
    /// whose holder is exactly `steal_from` (a holder the caller proved dead). The fence grows
    /// by one at every acquisition, so writes of an older holder are refused.
    #[allow(clippy::too_many_arguments)]
    pub async fn acquire_lock(
        &self,
        name: &str,
        run_id: &str,
        holder: &str,
        now: &str,
        now_ms: i64,
        ttl: Duration,
        steal_from: Option<&str>,
    ) -> Result<Lease> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row =
            sqlx::query("SELECT fence, run_id, holder, acquired_at, lease_until FROM locks WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let (fence, previous) = match row {
            None => (1, None),
            Some(r) => {
                let fence: i64 = r.try_get(0)?;
                let current_run: Option<String> = r.try_get(1)?;
                let lease_until: i64 = r.try_get(4)?;
                let previous = match current_run {
                    Some(run) => Some(LockHolder {
                        name: name.to_string(),
                        run_id: run,
                        holder: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                        acquired_at: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                        lease_until,
                    }),
                    None => None,
                };
                // A live lease blocks everyone but the run itself (a suspended run resuming)
                // and a caller that proved the holder dead.
                if let Some(p) = &previous
                    && lease_until > now_ms
                    && p.run_id != run_id
                    && steal_from != Some(p.holder.as_str())
                {
                    return Err(StoreError::LockHeld(Box::new(p.clone())));
                }
                (fence + 1, previous)
            }
        };
        let lease_until = now_ms.saturating_add(ttl.as_millis() as i64);
        sqlx::query(
            "INSERT INTO locks (name, fence, run_id, holder, acquired_at, lease_until) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET fence = excluded.fence, run_id = excluded.run_id, \
             holder = excluded.holder, acquired_at = excluded.acquired_at, lease_until = excluded.lease_until",
        )
        .bind(name)
        .bind(fence)
        .bind(run_id)
        .bind(holder)
        .bind(now)
        .bind(lease_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Lease { name: name.to_string(), fence, run_id: run_id.to_string(), took_over: previous })
    }

    /// Keep a lock for a run that stopped to wait for people (approvals): the lease no longer
    /// expires, and the holder says so. Only the run itself takes it back (`resume`), or
    /// its end releases it (`compensate`).
    pub async fn suspend_lock(&self, lease: &Lease, holder: &str) -> Result<()> {
        retry_busy(|| async {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(
                "UPDATE locks SET holder = ?, lease_until = ? WHERE name = ? AND fence = ? AND run_id = ?",
            )
            .bind(holder)
            .bind(i64::MAX)
            .bind(&lease.name)
            .bind(lease.fence)
            .bind(&lease.run_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Extend a lease while its run is alive. Refused if another run has taken the lock.
    pub async fn renew_lock(&self, lease: &Lease, now_ms: i64, ttl: Duration) -> Result<()> {
        let lease_until = now_ms.saturating_add(ttl.as_millis() as i64);
        let done =
            sqlx::query("UPDATE locks SET lease_until = ? WHERE name = ? AND fence = ? AND run_id = ?")
                .bind(lease_until)
                .bind(&lease.name)
                .bind(lease.fence)
                .bind(&lease.run_id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let current: Option<i64> = sqlx::query("SELECT fence FROM locks WHERE name = ?")
            .bind(&lease.name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        Err(StoreError::Fenced {
            run_id: lease.run_id.clone(),
            lock: lease.name.clone(),
            fence: lease.fence,
            current: current.unwrap_or(lease.fence),
        })
    }

    /// Let the lock go (the fence is kept, so it keeps growing).
    pub async fn release_lock(&self, lease: &Lease) -> Result<()> {
        sqlx::query(
            "UPDATE locks SET run_id = NULL, holder = NULL, acquired_at = NULL, lease_until = 0 \
             WHERE name = ? AND fence = ?",
        )
        .bind(&lease.name)
        .bind(lease.fence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The pool, for tests that must reach past the API (tampering, pragmas).
    #[doc(hidden)]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Run one SQL statement as is, for tests that play an attacker with the file in hand.
#[doc(hidden)]
pub async fn raw_execute(pool: &SqlitePool, statement: &str) -> Result<u64> {
    let done = sqlx::query(sqlx::AssertSqlSafe(statement.to_string())).execute(pool).await?;
    Ok(done.rows_affected())
}
