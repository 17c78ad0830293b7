//! The console's operator tokens (`runbook serve token add|list|revoke`, `--auth token`).
//! The store keeps a token's SHA-256 (hex), never the token: whoever reads the store cannot
//! sign in with what it holds. The console's sessions (`/login`) are kept here too, by the
//! SHA-256 of their id, so that they survive a restart and every console on the store
//! shares them.

use sqlx::Row as _;

use crate::{Result, Store, StoreError, retry_busy};

/// One token as the store keeps it (its hash stays inside the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleToken {
    /// The operator the token signs in as.
    pub name: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it last signed someone in or authorized an API call.
    pub last_used: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

impl ConsoleToken {
    /// Whether it still signs anyone in.
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

fn token_of(row: &sqlx::any::AnyRow) -> Result<ConsoleToken> {
    Ok(ConsoleToken {
        name: row.try_get(0)?,
        created_at: row.try_get(1)?,
        last_used: row.try_get(2)?,
        revoked_at: row.try_get(3)?,
    })
}

impl Store {
    /// Keep a new token's hash under `name`; refused when the name has a token already
    /// (revoked or not: a name is one operator's, and its history stays listed). Names are
    /// compared as the approval rules compare identities (`journal::identity_key`: `BOB`
    /// is `bob`), so a revoked operator gets no new token under another spelling.
    pub async fn add_token(&self, name: &str, hash: &str, now: &str) -> Result<()> {
        let key = runbook_core::journal::identity_key(name);
        let names = sqlx::query("SELECT name FROM console_tokens").fetch_all(&self.pool).await?;
        for row in &names {
            let other: String = row.try_get(0)?;
            if runbook_core::journal::identity_key(&other) == key {
                let same = if other == name {
                    String::new()
                } else {
                    format!(" (`{}` is the same operator)", runbook_core::shown::one_line(name))
                };
                return Err(StoreError::Refused(format!(
                    "a token named `{}` exists already{same}",
                    runbook_core::shown::one_line(&other)
                )));
            }
        }
        let done = sqlx::query(
            "INSERT INTO console_tokens (name, hash, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Refused(format!("a token named `{name}` exists already")));
        }
        Ok(())
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<ConsoleToken>> {
        let rows =
            sqlx::query("SELECT name, created_at, last_used, revoked_at FROM console_tokens ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(token_of).collect()
    }

    /// The token whose hash is `hash`, with that hash (the caller compares it again in
    /// constant time).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<(ConsoleToken, String)>> {
        let row = sqlx::query(
            "SELECT name, created_at, last_used, revoked_at, hash FROM console_tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((token_of(&r)?, r.try_get(4)?))),
            None => Ok(None),
        }
    }

    /// The other live tokens whose names are `name`'s identity (`journal::identity_key`): a
    /// store written before identities were folded beyond ASCII case (red team adv19a-3) may
    /// hold `jérôme` and `JÉRÔME`, two tokens of one person. The console refuses both at use
    /// until an administrator revokes one of them.
    pub async fn token_twins(&self, name: &str) -> Result<Vec<String>> {
        let key = runbook_core::journal::identity_key(name);
        let rows = sqlx::query("SELECT name FROM console_tokens WHERE revoked_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        let mut twins = Vec::new();
        for row in &rows {
            let other: String = row.try_get(0)?;
            if other != name && runbook_core::journal::identity_key(&other) == key {
                twins.push(other);
            }
        }
        Ok(twins)
    }

    /// The token named `name`.
    pub async fn token(&self, name: &str) -> Result<Option<ConsoleToken>> {
        let row =
            sqlx::query("SELECT name, created_at, last_used, revoked_at FROM console_tokens WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(token_of).transpose()
    }

    /// Record a use of the token `name`.
    pub async fn touch_token(&self, name: &str, now: &str) -> Result<()> {
        retry_busy(self.backend, || async {
            sqlx::query("UPDATE console_tokens SET last_used = $1 WHERE name = $2")
                .bind(now)
                .bind(name)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    /// Revoke the token named `name`, else the token of the operator `name` (every token
    /// whose name is the same identity): the names of the tokens revoked, none when there is none; revoking twice
    /// keeps the first time. Their sessions are deleted (they are refused anyway:
    /// [`Store::session`] reads the token's row).
    pub async fn revoke_token(&self, name: &str, now: &str) -> Result<Vec<String>> {
        // The operator, not the spelling (red team adv20-6): every token whose name is the
        // same identity (`journal::identity_key`: NFKC, case folded) as `name`.
        // A name given exactly revokes that token alone (two live tokens of one person, left
        // by an older store, are told apart by their exact names).
        let key = runbook_core::journal::identity_key(name);
        let mut names = Vec::new();
        for row in sqlx::query("SELECT name FROM console_tokens").fetch_all(&self.pool).await? {
            names.push(row.try_get::<String, _>(0)?);
        }
        let exact = names.iter().any(|n| n == name);
        let mut revoked = Vec::new();
        for token in names {
            let this = if exact { token == name } else { runbook_core::journal::identity_key(&token) == key };
            if !this {
                continue;
            }
            let done = sqlx::query(
                "UPDATE console_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE name = $2",
            )
            .bind(now)
            .bind(&token)
            .execute(&self.pool)
            .await?;
            sqlx::query("DELETE FROM console_sessions WHERE token = $1")
                .bind(&token)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() > 0 {
                revoked.push(token);
            }
        }
        Ok(revoked)
    }

    /// Keep a new session of the token `token` by the SHA-256 of its id (`id_hash`), valid
    /// until `expires_ms`. First the expired sessions and those of revoked (or deleted)
    /// tokens are deleted, then the token's oldest beyond `per_token - 1`; `false` (nothing
    /// kept) when `max` sessions remain.
    pub async fn start_session(
        &self,
        id_hash: &str,
        token: &str,
        now_ms: i64,
        expires_ms: i64,
        per_token: usize,
        max: usize,
    ) -> Result<bool> {
        retry_busy(self.backend, || async {
            let mut tx = self.pool.begin_with(self.backend.begin()).await?;
            sqlx::query(
                "DELETE FROM console_sessions WHERE expires_ms <= $1 OR token NOT IN \
                 (SELECT name FROM console_tokens WHERE revoked_at IS NULL)",
            )
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let own = sqlx::query(
                "SELECT id_hash FROM console_sessions WHERE token = $1 ORDER BY created_ms DESC, id_hash",
            )
            .bind(token)
            .fetch_all(&mut *tx)
            .await?;
            for row in own.iter().skip(per_token.saturating_sub(1)) {
                let old: String = row.try_get(0)?;
                sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1").bind(old).execute(&mut *tx).await?;
            }
            let count: i64 =
                sqlx::query("SELECT COUNT(*) FROM console_sessions").fetch_one(&mut *tx).await?.try_get(0)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO console_sessions (id_hash, token, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(id_hash)
            .bind(token)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// The token name of the live session whose id hashes to `id_hash`: `None` when there
    /// is none, it expired, or its token is revoked (such a row is deleted).
    pub async fn session(&self, id_hash: &str, now_ms: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT s.token, s.expires_ms, t.revoked_at, t.name FROM console_sessions s \
             LEFT JOIN console_tokens t ON t.name = s.token WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token: String = row.try_get(0)?;
        let expires: i64 = row.try_get(1)?;
        let revoked: Option<String> = row.try_get(2)?;
        let exists: Option<String> = row.try_get(3)?;
        if expires > now_ms && revoked.is_none() && exists.is_some() {
            return Ok(Some(token));
        }
        self.end_session(id_hash).await?;
        Ok(None)
    }

    /// End the session whose id hashes to `id_hash` (`/logout`).
    pub async fn end_session(&self, id_hash: &str) -> Result<()> {
        retry_busy(self.backend, || async {
            sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }
}
