//! Who runs this command, and on which host: one place for the operator's identity
//! (`--as`, `$RUNBOOK_OPERATOR`, the store's `db-role` identity, else `$USER@host`) and for
//! this machine's name.

use std::sync::OnceLock;

use crate::error::CliError;

/// The operator, once it is known (`--as`, or the store's `db-role` identity).
static OPERATOR: OnceLock<String> = OnceLock::new();

/// Take `--as` / `$RUNBOOK_OPERATOR` as the operator, unless it is blank. A name nobody can
/// read as typed (controls, escapes, invisible characters) is not an identity: refused
/// before anything is written.
pub fn declare(op: Option<String>) -> Result<(), CliError> {
    let Some(op) = op.filter(|o| !o.trim().is_empty()) else { return Ok(()) };
    if let Some(problem) = runbook_core::journal::identity_problem(&op) {
        return Err(CliError::BadIdentity { problem });
    }
    // A worker passes the submitter to its engine as `--as=NAME`; a name that reads as an
    // option is refused all the same (red team adv13b F4).
    if op.starts_with('-') {
        return Err(CliError::BadIdentity {
            problem: format!(
                "`{}` is not a valid identity: it starts with `-`, like an option",
                op.escape_default()
            ),
        });
    }
    set_operator(op);
    Ok(())
}

/// Who runs this command, set once (the first wins).
pub fn set_operator(op: String) {
    let _ = OPERATOR.set(op);
}

/// Who runs this command: `--as`/$RUNBOOK_OPERATOR (or the store's role), else `$USER@host`.
pub fn operator() -> String {
    if let Some(op) = OPERATOR.get() {
        return op.clone();
    }
    let user =
        std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", host())
}

/// This machine's name (`localhost` if it has none that can be read).
pub fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
