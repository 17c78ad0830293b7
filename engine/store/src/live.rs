//! Live output (issue 16): the redacted tail of a running attempt's output, published by
//! its engine and read by the console. A side table (`live_output`, migration 15), not the
//! journal: nothing in it is vouched for, a write is best effort (never retried, the
//! journal's writer never waits for it), and a row is worth nothing once its attempt's
//! `log_kept` record exists (readers skip it; the engine removes its run's rows when it
//! stops).

use sqlx::Row as _;

use crate::{Backend, Result, Store};

/// The most bytes of an attempt's tail the table holds (a reader cuts a longer one).
pub const LIVE_TAIL_BYTES: usize = 64 * 1024;

/// The most rows one read returns (a run's attempts whose logs are not kept yet).
const MAX_ROWS: i64 = 256;

/// One attempt's live output as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOutput {
    /// The step's journal path (`include/step` inside included runbooks).
    pub step: String,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// Bytes of output the attempt had written when the row was written; `tail` is their end.
    pub bytes_seen: i64,
    /// The last lines, `out TEXT` / `err TEXT` (redacted by the engine), at most
    /// [`LIVE_TAIL_BYTES`].
    pub tail: String,
    /// When the row was written, ms since the epoch (the engine's clock).
    pub updated_ms: i64,
}

impl Store {
    /// Replace the live row of an attempt: one statement, no retry (a failure is the
    /// caller's to drop). `tail` must be redacted output, at most [`LIVE_TAIL_BYTES`].
    pub async fn publish_live(&self, run_id: &str, live: &LiveOutput) -> Result<()> {
        sqlx::query(
            "INSERT INTO live_output (run_id, step, attempt, bytes_seen, tail, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run_id, step, attempt) DO UPDATE SET bytes_seen = excluded.bytes_seen, \
             tail = excluded.tail, updated_ms = excluded.updated_ms",
        )
        .bind(run_id)
        .bind(&live.step)
        .bind(live.attempt)
        .bind(live.bytes_seen)
        .bind(&live.tail)
        .bind(live.updated_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A run's live rows, by step then attempt: at most 256, each tail cut to its last
    /// [`LIVE_TAIL_BYTES`] characters whatever a writer put there. The caller skips the
    /// attempts whose `log_kept` exists.
    pub async fn live_output(&self, run_id: &str) -> Result<Vec<LiveOutput>> {
        let cut = match self.backend {
            Backend::Sqlite => "substr(tail, -65536)",
            Backend::Postgres => "right(tail, 65536)",
        };
        let sql = format!(
            "SELECT step, attempt, bytes_seen, {cut}, updated_ms FROM live_output WHERE run_id = $1 \
             ORDER BY step, attempt LIMIT {MAX_ROWS}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let tail: String = r.try_get(3)?;
                Ok(LiveOutput {
                    step: r.try_get(0)?,
                    attempt: r.try_get(1)?,
                    bytes_seen: r.try_get(2)?,
                    tail: cut_to_lines(&tail, LIVE_TAIL_BYTES).to_string(),
                    updated_ms: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Remove a run's live rows (its engine stopped: what it ran is kept, or stays on its
    /// host). Best effort for the caller.
    pub async fn drop_live(&self, run_id: &str) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM live_output WHERE run_id = $1").bind(run_id).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}

/// The end of `text` within `max` bytes, from a character boundary.
fn cut_to_lines(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
