//! The machine's vocabulary: the events the loop hands it, the commands it answers with,
//! and where a step stands for scheduling.

use std::time::Duration;

use crate::process::Exit;
use crate::report::{Outputs, Produced};

use super::phase::StopCause;

/// Where a step stands for scheduling: the journal's status, with what is only in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not started in this stint (or back in doubt after an interruption).
    Waiting,
    /// An attempt (or an included runbook) runs.
    Running,
    /// Waiting for a retry timer.
    RetryWait,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Skipped.
    Skipped,
    /// An approval (or an included runbook) waiting for decisions.
    Awaiting,
}

/// How a `Begin` went: the dispatcher evaluated `when`, the preconditions and the
/// confirmation, and journaled what that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    /// An attempt was spawned.
    Spawned,
    /// An included runbook was started.
    Include,
    /// It was skipped (`when` is false).
    Skipped,
    /// An approval waits for decisions.
    Awaiting,
    /// It failed before starting (journaled).
    Failed,
    /// The run was interrupted before it started (a signal while its precondition or
    /// confirmation was pending, or before its attempt was spawned): nothing is journaled,
    /// and the step stays pending. A signal is a stop cause, never a failure.
    Interrupted,
    /// Its `confirm` question was journaled and put to the operator, off the loop: the
    /// answer comes back as another `Begun` (the step is begun, fails, or stays pending).
    /// Meanwhile the step counts as started for the steps that need it, and other steps
    /// go on.
    Asking,
    /// Its question got no answer (nothing journaled but the question: the step stays
    /// pending and `resume` asks again). `closed`: the terminal closed at the prompt, which
    /// interrupts the run; else the dispatcher withdrew it (the run already stops).
    Unanswered {
        /// The terminal closed.
        closed: bool,
    },
}

/// How an included runbook (or an approval) settled, as its step's outcome (journaled by
/// the dispatcher).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The step succeeded.
    Succeeded,
    /// The step failed.
    Failed,
    /// Cut off by the interruption: in doubt, `resume` continues it.
    Interrupted,
    /// It waits for approvals (an included runbook that suspended).
    Awaiting,
}

/// What woke the dispatcher up, or what it did that the machine asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new round: start what is ready.
    Schedule,
    /// A skip the machine asked for was journaled.
    Skipped {
        /// The step.
        step: usize,
    },
    /// A `Begin` the machine asked for went this far.
    Begun {
        /// The step.
        step: usize,
        /// How.
        begun: Begun,
    },
    /// An attempt ended.
    AttemptEnded {
        /// The step.
        step: usize,
        /// Its attempt number.
        attempt: u32,
        /// How its process (or request) ended.
        exit: Exit,
        /// Its outputs.
        outputs: Produced,
        /// The last lines of its output (redacted).
        tail: Option<String>,
        /// A number in `[0, 1)` for the retry's jitter.
        jitter: f64,
    },
    /// A retry's wait is over.
    RetryDue {
        /// The step.
        step: usize,
    },
    /// An included runbook ended, or an approval was decided (journaled as such).
    Settled {
        /// The step.
        step: usize,
        /// How.
        settled: Settled,
    },
    /// The run must stop: a signal, a dead reaper, a lost lease.
    Stop(StopCause),
}

/// What the dispatcher must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Journal `step_skipped`, then report [`Event::Skipped`].
    Skip {
        /// The step.
        step: usize,
        /// Why.
        reason: String,
    },
    /// Evaluate `when`, the preconditions, the confirmation; start the first attempt (or
    /// the include, or ask for decisions); then report [`Event::Begun`].
    Begin {
        /// The step.
        step: usize,
    },
    /// Journal `step_started` and spawn the next attempt (a retry is due).
    Attempt {
        /// The step.
        step: usize,
    },
    /// Journal `step_succeeded` (deferred: written with the next record).
    Succeed {
        /// The step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// Its outputs.
        outputs: Outputs,
    },
    /// Journal `attempt_failed`, say a retry is scheduled, and start its timer.
    Retry {
        /// The step.
        step: usize,
        /// The attempt that failed.
        attempt: u32,
        /// Its exit code, for a process that exited.
        exit_code: Option<i32>,
        /// Why it failed.
        reason: String,
        /// The end of its output.
        output: Option<String>,
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// Journal `step_failed`.
    Fail {
        /// The step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// Why.
        reason: String,
        /// The end of its output.
        output: Option<String>,
    },
    /// End every running attempt (they report back as cancelled).
    CancelAttempts,
}

/// What the loop does when nothing is left to decide now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next wake-up.
    Wait,
    /// The loop is over: conclude the run.
    Conclude,
    /// Stop and wait for approvals with nobody attached.
    Suspend,
}

/// How the run ends, once the loop is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    /// Interrupted (journal `run_interrupted` with this cause's reason).
    Interrupted(StopCause),
    /// Suspended for approvals.
    Suspended,
    /// Finished: compensate first when asked, then `finally`; `failed`: a step failed.
    Finish {
        /// Compensate the steps that succeeded.
        compensate: bool,
        /// A step failed (the run's status is `failed`).
        failed: bool,
    },
}
