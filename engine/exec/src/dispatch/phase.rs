//! The run's phase and why it stops: one value, so that impossible combinations
//! ("stopping and suspended", "interrupted but compensating") cannot be written.

/// Why a run stops starting steps. Ordered: when two causes meet, the strongest wins (a
/// lost lease over a dead reaper over a signal over a failed step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopCause {
    /// A step failed and its `on-failure` stops the run; `compensate`: and undoes what
    /// succeeded (`on-failure = "compensate"`).
    StepFailed {
        /// Compensate the steps that succeeded.
        compensate: bool,
    },
    /// Ctrl-C, SIGTERM or SIGHUP: the running attempts are ended and left in doubt.
    Interrupted,
    /// The process reaper died: steps started from now on would not be tied to the engine.
    ReaperGone,
    /// Another engine took the lock: nothing this engine writes counts any more.
    LeaseLost,
}

impl StopCause {
    /// True when the running attempts are ended (not waited for).
    pub fn interrupts(self) -> bool {
        self >= StopCause::Interrupted
    }

    /// The reason journaled with `run_interrupted`.
    /// A signal names itself (SIGINT, SIGTERM, SIGHUP: [`crate::process::first_stop_signal`]).
    pub fn reason(self) -> &'static str {
        match self {
            StopCause::ReaperGone => "the process reaper died: steps would no longer be tied to the engine",
            StopCause::StepFailed { .. } | StopCause::Interrupted | StopCause::LeaseLost => {
                match crate::process::first_stop_signal() {
                    Some(signal) => signal.reason(),
                    None => "interrupted by a signal (Ctrl-C or SIGTERM)",
                }
            }
        }
    }
}

/// Where the run stands. One value, so that "stopping and suspended" cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Steps start as their needs are met.
    Running,
    /// Nothing new starts; the running attempts end (or are ended, see
    /// [`StopCause::interrupts`]).
    Stopping(StopCause),
    /// Nothing runs and only approvals wait, with nobody attached: the run ends as
    /// `needs_operator` and keeps its lock.
    Suspended,
    /// The steps that succeeded are being undone, most recent first.
    Compensating,
    /// The `finally` steps run (after the compensations, if any).
    Finalizing,
}

/// A top-level run, or a runbook included by a `runbook` step (decided once, when the
/// dispatcher is made). A nested run writes into its including run's journal with that
/// run's lease: it takes no lock, journals no start or end of its own, and leaves
/// escalations to the including run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A run of its own.
    TopLevel,
    /// An included runbook.
    Nested,
}
