//! Lock names and holders: how an engine names itself, and how another tells it is gone.

use std::time::SystemTime;

use crate::process::{self};

/// The lock a run holds: its runbook's `lock`, or a private one that tells `resume` whether
/// the run is still alive.
pub fn lock_name(runbook_lock: Option<String>, run_id: &str) -> String {
    runbook_lock.unwrap_or_else(|| format!("run:{run_id}"))
}

/// This machine's name.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// How the holder of a suspended run's lock begins.
pub const SUSPENDED: &str = "suspended: ";

/// True when a lock is held by a run that stopped to wait for approvals.
pub fn holder_is_suspended(holder: &str) -> bool {
    holder.starts_with(SUSPENDED)
}

/// How this engine names itself as a lock holder: `OPERATOR (pid N on HOST; process ID)`,
/// with the identity of [`process::process_identity`] (left out when `/proc` cannot say).
pub fn holder_name(operator: &str) -> String {
    let pid = std::process::id();
    match process::process_identity(pid as i32) {
        Some(id) => format!("{operator} (pid {pid} on {}; process {id})", hostname()),
        None => format!("{operator} (pid {pid} on {})", hostname()),
    }
}

/// True when a lock holder provably no longer runs: it names its process identity (see
/// [`holder_name`]) and that process is gone from this kernel boot and PID namespace. A
/// name, a pid and a host alone prove nothing (another PID namespace may reuse both): such a
/// holder's lease must expire.
pub fn holder_is_dead(holder: &str) -> bool {
    let Some(inner) = holder.rsplit_once("(pid ").map(|(_, rest)| rest.trim_end_matches(')')) else {
        return false;
    };
    let Some((pid, rest)) = inner.split_once(" on ") else { return false };
    let Ok(pid) = pid.trim().parse::<i32>() else { return false };
    let Some((host, identity)) = rest.split_once("; process ") else { return false };
    host.trim() == hostname() && process::identity_is_gone(pid, identity.trim())
}

/// Now as RFC 3339 (UTC, milliseconds) and as milliseconds since the epoch.
pub fn now() -> (String, i64) {
    let t = SystemTime::now();
    let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    (humantime::format_rfc3339_millis(t).to_string(), ms)
}
