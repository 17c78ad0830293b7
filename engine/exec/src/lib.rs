//! The executor: runs a validated runbook's steps on tokio.
//!
//! The only code that spawns processes, sends requests, queries databases and sleeps. Every transition is appended to the
//! journal (through `runbook-store`) before the engine acts on it.

// Only the CLI prints (ARCHITECTURE.md, invariants): a library returns values or reports
// over a channel.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod abandon;
pub mod action;
pub mod approve;
pub mod dispatch;
pub mod doubt;
pub mod files;
pub mod http;
pub mod output;
pub mod process;
pub mod report;
pub mod secrets;
pub mod sql;
