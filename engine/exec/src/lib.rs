//! The executor: runs a validated runbook's `run` and `cmd` steps on tokio.
//!
//! The only code that spawns processes and sleeps. Every transition is appended to the
//! journal (through `runbook-store`) before the engine acts on it.

pub mod dispatch;
pub mod process;
pub mod secrets;
