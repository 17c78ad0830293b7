//! The one async runtime of a command: one thread. Steps are processes, so the dispatcher
//! only waits; one thread saves the cross-thread wake-ups that a journaled step would
//! otherwise pay (measured with bench/exec), and a parent-death signal set for an engine a
//! worker starts follows the thread that spawned it, which lives as long as the worker.
//! Blocking work (questions on the terminal, printing a run's progress) runs on the
//! blocking pool.

use std::future::Future;

use crate::error::{CliError, Message};

/// Run `f` to its end on a new one-thread runtime.
pub fn block_on<T>(f: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::CannotStart(Message::new(format!("cannot start the async runtime: {e}"))))?;
    runtime.block_on(f)
}
