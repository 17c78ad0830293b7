//! The run as a state machine: what happens next, decided without IO.
//!
//! The dispatcher's loop only turns wake-ups (an attempt's end, a retry timer, a signal, a
//! dead reaper, a lost lease) into [`Event`]s and hands them to [`Machine::handle`], which
//! decides and answers with [`Command`]s the loop carries out (journal, spawn, skip, start
//! an include, cancel the attempts). The machine reads where each step stands from the
//! folded journal ([`RunState`], the facts) and keeps of its own only what is not a fact:
//! which attempts are running, which steps wait for a retry timer or for decisions, which
//! steps this resume gave another chance, and the run's [`Phase`].

use std::collections::BTreeSet;
use std::time::Duration;

use runbook_core::journal::{RunState, StepState, StepStatus};
use runbook_core::model::{OnFailure, RetryPolicy, Runbook};
use runbook_core::retry::{self, AttemptEnd};

use crate::process::Exit;
use crate::report::Produced;

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
    /// Ctrl-C or SIGTERM: the running attempts are ended and left in doubt.
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
    pub fn reason(self) -> &'static str {
        match self {
            StopCause::ReaperGone => "the process reaper died: steps would no longer be tied to the engine",
            StopCause::StepFailed { .. } | StopCause::Interrupted | StopCause::LeaseLost => {
                "interrupted by a signal (Ctrl-C or SIGTERM)"
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
    /// The `finally` steps run; the run's status so far.
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
        outputs: crate::report::Outputs,
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

/// How a resume treats a step the journal knows (see [`Machine::resume_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResumeRule {
    /// The run failed and is continued (not compensated): failed steps get a new set of
    /// attempts, the steps they held back another chance.
    pub retry_failed: bool,
    /// A `runbook` step whose included runbook undid itself: it stays failed.
    pub undone: bool,
    /// The step is declared idempotent.
    pub idempotent: bool,
    /// The step is an approval.
    pub approval: bool,
    /// An operator decided about this step for this resume.
    pub decided: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    next: usize,
    progressed: bool,
}

/// The scheduling state of one run (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Machine {
    scope: Scope,
    phase: Phase,
    ids: Vec<String>,
    needs: Vec<Vec<usize>>,
    on_failure: Vec<OnFailure>,
    retry: Vec<RetryPolicy>,
    max_parallel: usize,
    wait_for_approvals: bool,
    running: BTreeSet<usize>,
    retry_wait: BTreeSet<usize>,
    awaiting: BTreeSet<usize>,
    /// Steps this resume gave another chance although the journal says they ended.
    reopened: BTreeSet<usize>,
    /// Attempts a step had used before this resume gave it a new set: its retry policy
    /// counts from there.
    attempt_base: Vec<u32>,
    scan: Scan,
}

impl Machine {
    /// The machine of `runbook`'s steps; `max_parallel`: the run's limit (the runbook's
    /// `max-parallel` wins).
    pub fn new(runbook: &Runbook, scope: Scope, max_parallel: usize, wait_for_approvals: bool) -> Machine {
        let index = |id: &str| runbook.steps.iter().position(|s| s.id.as_str() == id);
        Machine {
            scope,
            phase: Phase::Running,
            ids: runbook.steps.iter().map(|s| s.id.to_string()).collect(),
            needs: runbook.steps.iter().map(|s| s.needs.iter().filter_map(|n| index(n.as_str())).collect()).collect(),
            on_failure: runbook.steps.iter().map(|s| s.on_failure).collect(),
            retry: runbook.steps.iter().map(|s| s.retry.clone()).collect(),
            max_parallel: runbook.max_parallel.map_or(max_parallel, |m| m as usize).max(1),
            wait_for_approvals,
            running: BTreeSet::new(),
            retry_wait: BTreeSet::new(),
            awaiting: BTreeSet::new(),
            reopened: BTreeSet::new(),
            attempt_base: vec![0; runbook.steps.len()],
            scan: Scan::default(),
        }
    }

    /// A top-level run or an included runbook.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The run's phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Why the run stops, if it does.
    pub fn stop_cause(&self) -> Option<StopCause> {
        match self.phase {
            Phase::Stopping(cause) => Some(cause),
            _ => None,
        }
    }

    /// True once the running attempts are being ended.
    pub fn interrupted(&self) -> bool {
        self.stop_cause().is_some_and(StopCause::interrupts)
    }

    /// Where step `idx` stands: the journal's status, with what only the machine knows.
    pub fn status(&self, facts: &RunState, idx: usize) -> Status {
        if self.running.contains(&idx) {
            return Status::Running;
        }
        if self.retry_wait.contains(&idx) {
            return Status::RetryWait;
        }
        if self.awaiting.contains(&idx) {
            return Status::Awaiting;
        }
        if self.reopened.contains(&idx) {
            return Status::Waiting;
        }
        match facts.steps.get(&self.ids[idx]).map(|s| &s.status) {
            Some(StepStatus::Succeeded) => Status::Succeeded,
            Some(StepStatus::Failed) => Status::Failed,
            Some(StepStatus::Skipped) => Status::Skipped,
            // Started, retrying or awaiting in the journal but not in this engine's memory:
            // in doubt after a crash or an interruption, or asked again.
            Some(
                StepStatus::Pending | StepStatus::Started | StepStatus::Retrying | StepStatus::AwaitingApproval,
            )
            | None => Status::Waiting,
        }
    }

    /// Steps waiting for decisions, in declaration order.
    pub fn awaiting(&self) -> impl Iterator<Item = usize> + '_ {
        self.awaiting.iter().copied()
    }

    /// True when step `idx` waits for decisions.
    pub fn is_awaiting(&self, idx: usize) -> bool {
        self.awaiting.contains(&idx)
    }

    /// Seed step `idx` from the journal when resuming: true when the resume gives it another
    /// chance although the journal says it ended (a failed step of a failed run, a step it
    /// held back, an approval without the decisions its rules count).
    pub fn resume_step(&mut self, idx: usize, s: &StepState, rule: ResumeRule) -> bool {
        // An approval step is done only on decisions its request's rules count: a success
        // or a skip journaled without them (a forged record) asks again.
        let unapproved = rule.approval
            && matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped)
            && !s.skipped_by_operator()
            && !s.approval.as_ref().is_some_and(|a| a.is_granted());
        let reopen = match s.status {
            _ if unapproved => true,
            StepStatus::Skipped => rule.retry_failed && !s.skipped_by_operator(),
            // One ended by its timeout, a cancellation or a signal may have done part of
            // its work: again only if idempotent or by an operator's decision.
            StepStatus::Failed => {
                let again = rule.retry_failed
                    && !rule.undone
                    && (rule.idempotent
                        || !s.reason.as_deref().is_some_and(runbook_core::journal::ended_mid_work)
                        || rule.decided);
                if again {
                    self.attempt_base[idx] = s.attempts;
                }
                again
            }
            StepStatus::Succeeded
            | StepStatus::Pending
            | StepStatus::Started
            | StepStatus::Retrying
            | StepStatus::AwaitingApproval => false,
        };
        if reopen {
            self.reopened.insert(idx);
        }
        reopen
    }

    /// An operator's decision settled step `idx` (skipped, or took effect): the journal
    /// says where it stands now.
    pub fn decided(&mut self, idx: usize) {
        self.reopened.remove(&idx);
    }

    /// Decide what an event means.
    pub fn handle(&mut self, facts: &RunState, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::Schedule => {
                self.scan = Scan { next: 0, progressed: false };
                if self.running.len() < self.max_parallel {
                    out.extend(self.next_start(facts));
                }
            }
            Event::Skipped { step } => {
                self.reopened.remove(&step);
                out.extend(self.next_start(facts));
            }
            Event::Begun { step, begun } => {
                self.reopened.remove(&step);
                match begun {
                    Begun::Spawned | Begun::Include => {
                        self.running.insert(step);
                    }
                    Begun::Awaiting => {
                        self.awaiting.insert(step);
                    }
                    Begun::Skipped => {}
                    Begun::Failed => self.failed(step, &mut out),
                }
                out.extend(self.next_start(facts));
            }
            Event::AttemptEnded { step, attempt, exit, outputs, tail, jitter } => {
                self.running.remove(&step);
                self.attempt_ended(step, attempt, exit, outputs, tail, jitter, &mut out);
            }
            Event::RetryDue { step } => {
                if self.retry_wait.remove(&step) && self.phase == Phase::Running {
                    self.running.insert(step);
                    out.push(Command::Attempt { step });
                }
            }
            Event::Settled { step, settled } => {
                self.running.remove(&step);
                self.awaiting.remove(&step);
                match settled {
                    Settled::Succeeded | Settled::Interrupted => {}
                    Settled::Awaiting => {
                        self.awaiting.insert(step);
                    }
                    Settled::Failed => self.failed(step, &mut out),
                }
            }
            Event::Stop(cause) => self.stop(cause, &mut out),
        }
        out
    }

    /// What the loop does now that every command was carried out.
    pub fn next(&mut self) -> Next {
        let stopping = self.stop_cause().is_some();
        if self.running.is_empty() && (self.retry_wait.is_empty() || stopping) {
            if self.awaiting.is_empty() || stopping {
                return Next::Conclude;
            }
            if !self.wait_for_approvals {
                self.phase = Phase::Suspended;
                return Next::Suspend;
            }
        }
        Next::Wait
    }

    /// How the run ends, once the loop is over; moves to the phase that follows.
    pub fn conclude(&mut self, facts: &RunState) -> Conclusion {
        match self.phase {
            Phase::Suspended => Conclusion::Suspended,
            Phase::Stopping(cause) if cause.interrupts() => Conclusion::Interrupted(cause),
            phase => {
                let compensate = phase == Phase::Stopping(StopCause::StepFailed { compensate: true });
                let failed = (0..self.ids.len()).any(|i| self.status(facts, i) == Status::Failed);
                self.phase = if compensate { Phase::Compensating } else { Phase::Finalizing };
                Conclusion::Finish { compensate, failed }
            }
        }
    }

    /// The compensations are over: the `finally` steps come next.
    pub fn compensated(&mut self) {
        self.phase = Phase::Finalizing;
    }

    /// The next step to start or skip in this round, in declaration order, within the
    /// parallel limit (a round passes over the steps until a pass changes nothing).
    fn next_start(&mut self, facts: &RunState) -> Option<Command> {
        if self.phase != Phase::Running {
            return None;
        }
        loop {
            if self.scan.next >= self.ids.len() {
                if self.scan.progressed && self.running.len() < self.max_parallel {
                    self.scan = Scan { next: 0, progressed: false };
                    continue;
                }
                return None;
            }
            let idx = self.scan.next;
            self.scan.next += 1;
            if self.running.len() >= self.max_parallel || self.status(facts, idx) != Status::Waiting {
                continue;
            }
            match self.readiness(facts, idx) {
                Readiness::NotYet => continue,
                Readiness::Blocked(need) => {
                    self.scan.progressed = true;
                    return Some(Command::Skip { step: idx, reason: format!("`{}` failed", self.ids[need]) });
                }
                Readiness::Ready => {
                    self.scan.progressed = true;
                    return Some(Command::Begin { step: idx });
                }
            }
        }
    }

    fn readiness(&self, facts: &RunState, idx: usize) -> Readiness {
        for &n in &self.needs[idx] {
            match self.status(facts, n) {
                Status::Succeeded | Status::Skipped => {}
                Status::Failed => return Readiness::Blocked(n),
                Status::Waiting | Status::Running | Status::RetryWait | Status::Awaiting => {
                    return Readiness::NotYet;
                }
            }
        }
        Readiness::Ready
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt_ended(
        &mut self,
        step: usize,
        attempt: u32,
        exit: Exit,
        outputs: Produced,
        output: Option<String>,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        if self.interrupted() && exit == Exit::Cancelled {
            // No outcome is journaled: the step stays in doubt for `resume` to decide.
            return;
        }
        let (end, exit_code, reason) = match (exit.success(), outputs) {
            (true, Produced::Values(outputs)) => {
                out.push(Command::Succeed { step, attempt, outputs });
                return;
            }
            (true, Produced::Missing(missing)) => (AttemptEnd::Other, None, missing),
            (true, Produced::Nothing) => (AttemptEnd::Other, None, exit.describe()),
            (false, _) => {
                let code = match exit {
                    Exit::Code(c) => Some(c),
                    _ => None,
                };
                (attempt_end(&exit), code, exit.describe())
            }
        };
        let counted = attempt.saturating_sub(self.attempt_base[step]);
        let policy = &self.retry[step];
        if retry::should_retry(policy, counted, end) {
            let delay = retry::delay(policy, counted, jitter);
            self.retry_wait.insert(step);
            out.push(Command::Retry { step, attempt, exit_code, reason, output, delay });
            return;
        }
        out.push(Command::Fail { step, attempt, reason, output });
        self.failed(step, out);
    }

    /// What a failed step's `on-failure` means for the run.
    fn failed(&mut self, step: usize, out: &mut Vec<Command>) {
        match self.on_failure[step] {
            OnFailure::Continue => {}
            OnFailure::Stop => self.stop(StopCause::StepFailed { compensate: false }, out),
            OnFailure::Compensate => self.stop(StopCause::StepFailed { compensate: true }, out),
        }
    }

    /// Stop for `cause`; the strongest cause wins. The running attempts are ended the first
    /// time a cause that interrupts arrives.
    fn stop(&mut self, cause: StopCause, out: &mut Vec<Command>) {
        let was = self.interrupted();
        let cause = match self.phase {
            Phase::Stopping(current) => current.max(cause),
            Phase::Running | Phase::Suspended | Phase::Compensating | Phase::Finalizing => cause,
        };
        self.phase = Phase::Stopping(cause);
        if cause.interrupts() && !was {
            out.push(Command::CancelAttempts);
        }
    }
}

enum Readiness {
    NotYet,
    Ready,
    /// A need failed: its index.
    Blocked(usize),
}

/// How an attempt ended, for the retry policy.
pub fn attempt_end(exit: &Exit) -> AttemptEnd {
    match exit {
        Exit::Code(c) => AttemptEnd::Exit(*c),
        Exit::TimedOut => AttemptEnd::TimedOut,
        _ => AttemptEnd::Other,
    }
}
