//! Lock names and holders: how an engine names itself, and how another tells it is gone.

use std::time::SystemTime;

use crate::process::{self};

/// The lock a run holds: its runbook's `lock`, or a private one that tells `resume` whether
/// the run is still alive.
///
/// A rendered `lock` in the reserved `run:` namespace is refused
/// ([`runbook_core::model::check_lock_name`]): it would take another run's private lock.
pub fn lock_name(runbook_lock: Option<String>, run_id: &str) -> Result<String, super::ExecError> {
    match runbook_lock {
        Some(l) => {
            runbook_core::model::check_lock_name(&l).map_err(super::ExecError::LockName)?;
            Ok(l)
        }
        None => Ok(format!("{}{run_id}", runbook_core::model::RESERVED_LOCK_PREFIX)),
    }
}

/// This machine's name.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

use runbook_core::lifecycle::Holder;
pub use runbook_core::lifecycle::SUSPENDED;

/// True when a lock is held by a run that stopped to wait for approvals
/// ([`Holder::is_suspended`]).
pub fn holder_is_suspended(holder: &str) -> bool {
    Holder::parse(holder).is_suspended()
}

/// How this engine names itself as a lock holder ([`Holder::Engine`]:
/// `OPERATOR (pid N on HOST; process ID)`), with the identity of
/// [`process::process_identity`] (left out when `/proc` cannot say).
pub fn holder_name(operator: &str) -> String {
    let pid = std::process::id();
    Holder::Engine {
        operator: operator.to_string(),
        pid,
        host: hostname(),
        process: process::process_identity(pid as i32),
    }
    .to_string()
}

/// True when a lock holder provably no longer runs ([`Holder::is_dead`]): it names its
/// process identity and that process is gone from this kernel boot and PID namespace.
pub fn holder_is_dead(holder: &str) -> bool {
    Holder::parse(holder).is_dead(&hostname(), process::identity_is_gone)
}

/// How `runs`, `show` and the console name a run the journal says is running while no
/// engine holds it.
pub const ENGINE_GONE: &str = "interrupted (engine gone)";

/// The run's engine died without a record (SIGKILL, a lost host): its lease has expired,
/// or its holder is provably dead on this host, or it holds no lock at all. A display
/// derived from the journal and the lease, never a write by a reader; `resume` and
/// `abandon` go on from it as from any unfinished run. The one judge of it for the CLI's
/// `runs`/`show`/`abandon` and the web console.
pub async fn engine_gone(store: &runbook_store::Store, run_id: &str) -> bool {
    let Ok(holder) = store.lock_of_run(run_id).await else { return false };
    let Some(holder) = holder else { return true };
    let Ok(now_ms) = store.clock_ms().await else { return false };
    holder.lease_until <= now_ms || holder_is_dead(&holder.holder)
}

/// Now as RFC 3339 (UTC, milliseconds) and as milliseconds since the epoch.
pub fn now() -> (String, i64) {
    let t = SystemTime::now();
    let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    (humantime::format_rfc3339_millis(t).to_string(), ms)
}

#[cfg(test)]
mod lock_name_tests {
    use super::*;

    /// The second line behind check and plan (red team adv13b F9): a rendered `lock` in the
    /// `run:` namespace never becomes the lock a run takes.
    #[test]
    fn a_runbook_lock_in_the_run_namespace_is_refused() {
        assert_eq!(lock_name(None, "r-1").ok().as_deref(), Some("run:r-1"));
        assert_eq!(lock_name(Some("db-prod".into()), "r-1").ok().as_deref(), Some("db-prod"));
        match lock_name(Some("run:r-0".into()), "r-1") {
            Err(super::super::ExecError::LockName(m)) => assert!(m.contains("reserved"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
