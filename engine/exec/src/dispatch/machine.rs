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

use runbook_core::journal::{RunState, StepState, StepStatus};
use runbook_core::model::{Action, OnFailure, RetryPolicy, Runbook, Step};
use runbook_core::retry::{self, AttemptEnd};

use crate::process::Exit;
use crate::report::Produced;

pub use super::event::{Begun, Command, Conclusion, Event, Next, Settled, Status};
pub use super::phase::{Phase, Scope, StopCause};

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
    /// Steps whose `confirm` question waits for the operator's answer.
    asking: BTreeSet<usize>,
    /// Steps this resume gave another chance although the journal says they ended.
    reopened: BTreeSet<usize>,
    /// Attempts a step had used before this resume gave it a new set: its retry policy
    /// counts from there.
    attempt_base: Vec<u32>,
    scan: Scan,
    /// How a reason names a step: its journal path (`host_b/` for an included runbook).
    prefix: String,
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
            needs: runbook
                .steps
                .iter()
                .map(|s| s.needs.iter().filter_map(|n| index(n.as_str())).collect())
                .collect(),
            on_failure: runbook.steps.iter().map(|s| s.on_failure).collect(),
            retry: runbook.steps.iter().map(|s| s.retry.clone()).collect(),
            max_parallel: runbook.max_parallel.map_or(max_parallel, |m| m as usize).max(1),
            wait_for_approvals,
            running: BTreeSet::new(),
            retry_wait: BTreeSet::new(),
            awaiting: BTreeSet::new(),
            asking: BTreeSet::new(),
            reopened: BTreeSet::new(),
            attempt_base: vec![0; runbook.steps.len()],
            scan: Scan::default(),
            prefix: String::new(),
        }
    }

    /// The machine of an included runbook: its reasons name steps by their journal path,
    /// `prefix` first (`host_b/`), as every line about them does.
    pub fn with_prefix(mut self, prefix: &str) -> Machine {
        self.prefix = prefix.to_string();
        self
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
        // A step whose question waits for an answer is begun: not started again, and the
        // steps that need it wait.
        if self.running.contains(&idx) || self.asking.contains(&idx) {
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
                StepStatus::Pending
                | StepStatus::Started
                | StepStatus::Retrying
                | StepStatus::AwaitingApproval,
            )
            | None => Status::Waiting,
        }
    }

    /// Steps waiting for decisions, in declaration order.
    pub fn awaiting(&self) -> impl Iterator<Item = usize> + '_ {
        self.awaiting.iter().copied()
    }

    /// True when a question waits for the operator's answer.
    pub fn asking(&self) -> bool {
        !self.asking.is_empty()
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
                self.asking.remove(&step);
                match begun {
                    Begun::Spawned | Begun::Include => {
                        self.running.insert(step);
                    }
                    Begun::Awaiting => {
                        self.awaiting.insert(step);
                    }
                    Begun::Skipped => {}
                    Begun::Failed => self.failed(step, &mut out),
                    Begun::Interrupted => {
                        // Not started (a retry's attempt was `running` while it waited).
                        self.running.remove(&step);
                        self.stop(StopCause::Interrupted, &mut out);
                    }
                    Begun::Asking => {
                        self.asking.insert(step);
                    }
                    // No answer is not "no": the step stays pending. A closed terminal
                    // interrupts the run like Ctrl-C; a withdrawn question follows the
                    // cause that withdrew it.
                    Begun::Unanswered { closed } => {
                        if closed {
                            self.stop(StopCause::Interrupted, &mut out);
                        }
                    }
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
    pub fn next_move(&mut self) -> Next {
        let stopping = self.stop_cause().is_some();
        // A question waiting for its answer keeps the loop waiting: the dispatcher withdraws
        // it when the run stops, and the withdrawal comes back as an event.
        if self.running.is_empty() && self.asking.is_empty() && (self.retry_wait.is_empty() || stopping) {
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

    /// `runbook compensate`: no step runs, the steps that succeeded are undone.
    pub fn compensate_only(&mut self) {
        self.phase = Phase::Compensating;
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
                    let reason = format!("`{}{}` failed", self.prefix, self.ids[need]);
                    return Some(Command::Skip { step: idx, reason });
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

/// What `compensate` does for one step that succeeded (see [`compensations`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compensate {
    /// Run its compensation; attempts so far: `base`.
    Run {
        /// The step.
        step: usize,
        /// Attempts of its compensation already journaled.
        base: u32,
    },
    /// Undo its included runbook (a `runbook` step without a compensation of its own).
    Include(usize),
    /// Its compensation started and has no end, and is not idempotent: stop here, for an
    /// operator's decision.
    InDoubt(usize),
}

/// The compensations to run, in order: the steps that succeeded, most recent first, whose
/// compensation is not done (skipping those without one). Up to the first in doubt.
pub fn compensations(runbook: &Runbook, facts: &RunState) -> Vec<Compensate> {
    let mut out = Vec::new();
    // An included runbook left in doubt (its step started and has no end record: the
    // engine died inside it) holds the most recent work: the nested steps its journal
    // records as completed are undone first, by undoing it (what is in doubt inside it is
    // decided as any unit in doubt). Red team adv18b F6.
    for id in facts.order.iter().rev() {
        if facts.steps.get(id).is_some_and(|s| s.status == StepStatus::Started)
            && let Some(idx) = runbook.steps.iter().position(|s| s.id.as_str() == id)
            && matches!(runbook.steps[idx].action, Action::Runbook(_))
        {
            out.push(Compensate::Include(idx));
        }
    }
    for id in facts.completed.iter().rev() {
        let past = facts.steps.get(id);
        if past.is_some_and(|s| s.compensation.is_done()) {
            continue;
        }
        let Some(idx) = runbook.steps.iter().position(|s| s.id.as_str() == id) else { continue };
        let step = &runbook.steps[idx];
        let Some(comp) = &step.compensate else {
            if matches!(step.action, Action::Runbook(_)) {
                out.push(Compensate::Include(idx));
            }
            continue;
        };
        // Folded from the journal like a step: a compensation that started and has no end
        // record, or was ended from outside (its timeout, a signal), is in doubt, and runs
        // again only if idempotent (an operator's decision folds it out of doubt first).
        if past.is_some_and(StepState::compensation_in_doubt) && !comp.idempotent {
            out.push(Compensate::InDoubt(idx));
            break;
        }
        out.push(Compensate::Run { step: idx, base: past.map_or(0, |s| s.compensation_attempts) });
    }
    out
}

/// What `finally` does with one of its steps (see [`finally_plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finally {
    /// It succeeded or was skipped: never again.
    Done,
    /// It started and has no end, and is not idempotent: left for an operator's decision.
    InDoubt,
    /// Run it; attempts so far: `base` (a failed one gets a new set of attempts).
    Run {
        /// Attempts already journaled.
        base: u32,
    },
}

/// What to do with `finally` step `step`, given what the journal says of it.
pub fn finally_plan(step: &Step, past: Option<&StepState>) -> Finally {
    match past.map(|s| &s.status) {
        Some(StepStatus::Succeeded | StepStatus::Skipped) => Finally::Done,
        Some(StepStatus::Started) if !step.idempotent => Finally::InDoubt,
        Some(
            StepStatus::Started
            | StepStatus::Pending
            | StepStatus::Retrying
            | StepStatus::Failed
            | StepStatus::AwaitingApproval,
        )
        | None => Finally::Run { base: past.map_or(0, |s| s.attempts) },
    }
}

/// The escalations still to fire, at `elapsed` since the run started: the first whose time
/// has come, and how long until the next one. One journaled (`fired`) or on its way
/// (`sending`) never fires again; an included runbook's are the including run's to make.
pub fn escalations(
    runbook: &Runbook,
    scope: Scope,
    fired: &[String],
    sending: &[String],
    elapsed: std::time::Duration,
) -> Escalations {
    if scope == Scope::Nested {
        return Escalations::default();
    }
    let open = || runbook.escalations.iter().filter(|e| !sending.contains(&e.id) && !fired.contains(&e.id));
    Escalations {
        due: open().find(|e| e.after <= elapsed).map(|e| e.id.clone()),
        next_in: open().map(|e| e.after.saturating_sub(elapsed)).min(),
    }
}

/// See [`escalations`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Escalations {
    /// The first escalation whose time has come.
    pub due: Option<String>,
    /// How long until the next one is due (zero: now).
    pub next_in: Option<std::time::Duration>,
}
