//! Exit codes: one documented table (book: reference/exit-codes.md).

/// Everything went as asked (`check`: every file is valid).
pub const SUCCESS: u8 = 0;
/// A run failed; its compensations ran, or none were needed.
pub const FAILED: u8 = 1;
/// `plan --diff` / `plan --against`: the two plans differ (as `diff` does; 0 when equal).
pub const DIFFERENT: u8 = 1;
/// The command line is wrong (clap exits with this code itself).
pub const USAGE: u8 = 2;
/// A runbook, a parameter, a params file or a plan is invalid; nothing ran.
pub const INVALID: u8 = 3;
/// An operator must decide (a compensation failed, a step is in doubt).
pub const NEEDS_OPERATOR: u8 = 4;
/// The run could not start: lock held, state store unavailable, or an output file could not be written.
pub const CANNOT_START: u8 = 5;
/// Interrupted by Ctrl-C or SIGTERM.
pub const INTERRUPTED: u8 = 130;
/// Internal (`__tie`, the wrapper a step's program starts through): the program could not be
/// started. The step sees it as its exit code, as from a shell.
pub const STEP_NOT_STARTED: u8 = 127;
