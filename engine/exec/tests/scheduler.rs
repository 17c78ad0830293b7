//! The dispatcher's decisions, without processes: a runbook's [`Machine`] driven with
//! canned events over a journal folded in memory, as the dispatcher's loop drives it
//! (each command carried out before the next event). Milliseconds each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use runbook_core::Source;
use runbook_core::journal::{Decision, RunEvent, RunState};
use runbook_core::model::Runbook;
use runbook_core::validate::{self, NoIncludes};
use runbook_exec::dispatch::machine::{
    self, Begun, Command, Compensate, Conclusion, Event, Finally, Machine, Next, Phase, ResumeRule, Scope,
    Settled, Status, StopCause,
};
use runbook_exec::process::Exit;
use runbook_exec::report::Produced;

fn runbook(steps: &str) -> Arc<Runbook> {
    let text = format!("[runbook]\nname = \"t\"\n\n{steps}");
    let checked = validate::check(Source::new("t.toml", text), &NoIncludes);
    match checked.runbook {
        Some(r) => r,
        None => panic!("invalid test runbook: {:?}", checked.diagnostics),
    }
}

/// A run in memory: the machine, the folded journal, and what the dispatcher did.
struct Sim {
    rb: Arc<Runbook>,
    m: Machine,
    facts: RunState,
    /// Steps begun, in order.
    begun: Vec<String>,
    /// Steps skipped, with why.
    skipped: Vec<(String, String)>,
    /// How each `Begin` goes, by step (default: an attempt is spawned).
    on_begin: BTreeMap<String, Begun>,
    /// Every command, in order.
    log: Vec<Command>,
}

impl Sim {
    fn new(steps: &str) -> Sim {
        Sim::with(steps, 8, false)
    }

    fn with(steps: &str, max_parallel: usize, wait_for_approvals: bool) -> Sim {
        let rb = runbook(steps);
        let m = Machine::new(&rb, Scope::TopLevel, max_parallel, wait_for_approvals);
        Sim {
            rb,
            m,
            facts: RunState::default(),
            begun: Vec::new(),
            skipped: Vec::new(),
            on_begin: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn idx(&self, id: &str) -> usize {
        self.rb.steps.iter().position(|s| s.id.as_str() == id).unwrap_or_else(|| panic!("no step {id}"))
    }

    fn id(&self, idx: usize) -> String {
        self.rb.steps[idx].id.to_string()
    }

    fn apply(&mut self, event: RunEvent) {
        self.facts.apply(&event);
    }

    fn attempts(&self, id: &str) -> u32 {
        self.facts.steps.get(id).map_or(0, |s| s.attempts)
    }

    /// Hand `event` to the machine and carry out its commands as the dispatcher does.
    fn handle(&mut self, event: Event) {
        let mut queue: std::collections::VecDeque<Command> = self.m.handle(&self.facts, event).into();
        while let Some(command) = queue.pop_front() {
            self.log.push(command.clone());
            let next = match command {
                Command::Skip { step, reason } => {
                    let id = self.id(step);
                    self.skipped.push((id.clone(), reason.clone()));
                    self.apply(RunEvent::StepSkipped { step: id, reason });
                    Some(Event::Skipped { step })
                }
                Command::Begin { step } => {
                    let id = self.id(step);
                    self.begun.push(id.clone());
                    let begun = self.on_begin.get(&id).copied().unwrap_or(Begun::Spawned);
                    match begun {
                        Begun::Spawned | Begun::Include => {
                            let attempt = self.attempts(&id) + 1;
                            self.apply(RunEvent::StepStarted { step: id, attempt });
                        }
                        Begun::Failed => self.apply(RunEvent::StepFailed {
                            step: id,
                            attempt: 0,
                            reason: "precondition failed".into(),
                            output: None,
                        }),
                        Begun::Skipped => {
                            self.apply(RunEvent::StepSkipped { step: id, reason: "when".into() })
                        }
                        // Nothing journaled: the step stays pending.
                        Begun::Awaiting | Begun::Interrupted | Begun::Asking | Begun::Unanswered { .. } => {}
                    }
                    Some(Event::Begun { step, begun })
                }
                Command::Attempt { step } => {
                    let id = self.id(step);
                    self.begun.push(id.clone());
                    let attempt = self.attempts(&id) + 1;
                    self.apply(RunEvent::StepStarted { step: id, attempt });
                    None
                }
                Command::Succeed { step, attempt, outputs } => {
                    let id = self.id(step);
                    self.apply(RunEvent::StepSucceeded { step: id, attempt, outputs });
                    None
                }
                Command::Retry { step, attempt, exit_code, reason, output, .. } => {
                    let id = self.id(step);
                    self.apply(RunEvent::AttemptFailed { step: id, attempt, exit_code, reason, output });
                    None
                }
                Command::Fail { step, attempt, reason, output } => {
                    let id = self.id(step);
                    self.apply(RunEvent::StepFailed { step: id, attempt, reason, output });
                    None
                }
                Command::CancelAttempts => None,
            };
            if let Some(next) = next {
                queue.extend(self.m.handle(&self.facts, next));
            }
        }
    }

    fn schedule(&mut self) {
        self.handle(Event::Schedule);
    }

    fn end(&mut self, id: &str, exit: Exit) {
        let step = self.idx(id);
        let attempt = self.attempts(id);
        let outputs = if exit.success() { Produced::Values(BTreeMap::new()) } else { Produced::Nothing };
        self.handle(Event::AttemptEnded { step, attempt, exit, outputs, tail: None, jitter: 0.0 });
    }

    fn ok(&mut self, id: &str) {
        self.end(id, Exit::Code(0));
        self.schedule();
    }

    fn fail(&mut self, id: &str) {
        self.end(id, Exit::Code(1));
        self.schedule();
    }

    fn status(&self, id: &str) -> Status {
        self.m.status(&self.facts, self.idx(id))
    }

    fn delays(&self) -> Vec<Duration> {
        self.log
            .iter()
            .filter_map(|c| match c {
                Command::Retry { delay, .. } => Some(*delay),
                _ => None,
            })
            .collect()
    }

    fn begun(&self) -> Vec<&str> {
        self.begun.iter().map(String::as_str).collect()
    }
}

const CHAIN: &str = r#"
[steps.a]
run = "a"
on-failure = "stop"

[steps.b]
run = "b"
needs = ["a"]
on-failure = "stop"

[steps.c]
run = "c"
needs = ["b"]
on-failure = "stop"
"#;

const FAN: &str = r#"
[steps.a]
run = "a"

[steps.b]
run = "b"
needs = []

[steps.c]
run = "c"
needs = []

[steps.d]
run = "d"
needs = []
"#;

// --- Order and parallelism ---------------------------------------------------------------

#[test]
fn a_chain_starts_each_step_when_its_need_succeeded() {
    let mut s = Sim::new(CHAIN);
    s.schedule();
    assert_eq!(s.begun(), ["a"]);
    s.ok("a");
    assert_eq!(s.begun(), ["a", "b"]);
    s.ok("b");
    s.ok("c");
    assert_eq!(s.begun(), ["a", "b", "c"]);
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Finish { compensate: false, failed: false });
    assert_eq!(s.m.phase(), Phase::Finalizing);
}

#[test]
fn independent_steps_start_in_declaration_order_up_to_the_parallel_limit() {
    let mut s = Sim::with(FAN, 2, false);
    s.schedule();
    assert_eq!(s.begun(), ["a", "b"]);
    assert_eq!(s.m.next_move(), Next::Wait);
    s.ok("b");
    assert_eq!(s.begun(), ["a", "b", "c"]);
    s.ok("a");
    assert_eq!(s.begun(), ["a", "b", "c", "d"]);
}

#[test]
fn the_runbooks_max_parallel_wins_over_the_engines() {
    let text = format!("[runbook]\nname = \"t\"\nmax-parallel = 1\n\n{FAN}");
    let rb = validate::check(Source::new("t.toml", text), &NoIncludes).runbook.expect("valid");
    let mut m = Machine::new(&rb, Scope::TopLevel, 8, false);
    assert_eq!(m.handle(&RunState::default(), Event::Schedule), [Command::Begin { step: 0 }]);
}

#[test]
fn a_succeeded_step_never_begins_again() {
    let mut s = Sim::new(CHAIN);
    s.apply(RunEvent::StepStarted { step: "a".into(), attempt: 1 });
    s.apply(RunEvent::StepSucceeded { step: "a".into(), attempt: 1, outputs: BTreeMap::new() });
    s.schedule();
    assert_eq!(s.begun(), ["b"]);
}

#[test]
fn a_when_false_step_counts_as_satisfied() {
    let mut s = Sim::new(CHAIN);
    s.on_begin.insert("a".into(), Begun::Skipped);
    s.schedule();
    assert_eq!(s.begun(), ["a", "b"]);
}

// --- Failures and on-failure -------------------------------------------------------------

#[test]
fn stop_starts_nothing_more_and_does_not_compensate() {
    let mut s = Sim::new(CHAIN);
    s.schedule();
    s.fail("a");
    assert_eq!(s.begun(), ["a"]);
    assert_eq!(s.m.phase(), Phase::Stopping(StopCause::StepFailed { compensate: false }));
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Finish { compensate: false, failed: true });
}

#[test]
fn compensate_is_the_default_on_failure() {
    let mut s = Sim::new("[steps.a]\nrun = \"a\"\n\n[steps.b]\nrun = \"b\"\nneeds = [\"a\"]\n");
    s.schedule();
    s.fail("a");
    assert_eq!(s.m.stop_cause(), Some(StopCause::StepFailed { compensate: true }));
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Finish { compensate: true, failed: true });
    assert_eq!(s.m.phase(), Phase::Compensating);
    s.m.compensated();
    assert_eq!(s.m.phase(), Phase::Finalizing);
}

#[test]
fn continue_skips_the_dependents_and_runs_the_rest() {
    let mut s = Sim::new(
        "[steps.a]\nrun = \"a\"\non-failure = \"continue\"\n\n[steps.b]\nrun = \"b\"\nneeds = [\"a\"]\n\n[steps.c]\nrun = \"c\"\nneeds = [\"b\"]\n\n[steps.d]\nrun = \"d\"\nneeds = []\n",
    );
    s.schedule();
    assert_eq!(s.begun(), ["a", "d"]);
    s.fail("a");
    assert_eq!(s.skipped, [("b".to_string(), "`a` failed".to_string())]);
    // `c` needs a skipped step: it runs (a skip counts as satisfied).
    assert_eq!(s.begun(), ["a", "d", "c"]);
    assert_eq!(s.m.phase(), Phase::Running);
    s.ok("c");
    s.ok("d");
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Finish { compensate: false, failed: true });
}

#[test]
fn a_step_that_fails_before_starting_stops_the_round_at_once() {
    // A precondition failure with `on-failure = "stop"`: the steps after it in the same
    // round do not start (they did, before the machine: the round went on).
    let mut s = Sim::new(
        "[steps.a]\nrun = \"a\"\non-failure = \"stop\"\n\n[steps.b]\nrun = \"b\"\nneeds = []\n\n[steps.c]\nrun = \"c\"\nneeds = []\n",
    );
    s.on_begin.insert("a".into(), Begun::Failed);
    s.schedule();
    assert_eq!(s.begun(), ["a"]);
    assert_eq!(s.status("b"), Status::Waiting);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Finish { compensate: false, failed: true });
}

#[test]
fn a_compensating_failure_is_stronger_than_a_stopping_one() {
    let mut s = Sim::new(
        "[steps.a]\nrun = \"a\"\non-failure = \"stop\"\n\n[steps.b]\nrun = \"b\"\nneeds = []\non-failure = \"compensate\"\n",
    );
    s.schedule();
    s.fail("a");
    s.fail("b");
    assert_eq!(s.m.stop_cause(), Some(StopCause::StepFailed { compensate: true }));
    s.fail("a");
    assert_eq!(s.m.stop_cause(), Some(StopCause::StepFailed { compensate: true }));
}

#[test]
fn running_steps_end_normally_after_a_failure_and_their_outcome_is_journaled() {
    let mut s = Sim::new(
        FAN.replace("[steps.a]\nrun = \"a\"", "[steps.a]\nrun = \"a\"\non-failure = \"stop\"").as_str(),
    );
    s.schedule();
    s.fail("a");
    assert_eq!(s.m.next_move(), Next::Wait, "b, c, d still run");
    s.ok("b");
    assert_eq!(s.status("b"), Status::Succeeded);
    s.ok("c");
    s.ok("d");
    assert_eq!(s.m.next_move(), Next::Conclude);
}

#[test]
fn missing_outputs_fail_a_successful_attempt() {
    let mut s = Sim::new("[steps.a]\nrun = \"a\"\noutputs = [\"v\"]\non-failure = \"stop\"\n");
    s.schedule();
    let why = "declared output(s) missing from $RUNBOOK_OUTPUT: v".to_string();
    s.handle(Event::AttemptEnded {
        step: 0,
        attempt: 1,
        exit: Exit::Code(0),
        outputs: Produced::Missing(why.clone()),
        tail: None,
        jitter: 0.0,
    });
    assert!(s.log.contains(&Command::Fail { step: 0, attempt: 1, reason: why, output: None }), "{:?}", s.log);
}

// --- Retries and backoff -----------------------------------------------------------------

const RETRIED: &str = r#"
[steps.a]
run = "a"
on-failure = "stop"
retry = { attempts = 4, delay = "1s", backoff = 2.0, max-delay = "3s" }

[steps.b]
run = "b"
needs = ["a"]
"#;

#[test]
fn a_failed_attempt_is_retried_after_its_backoff_and_capped() {
    let mut s = Sim::new(RETRIED);
    s.schedule();
    for _ in 0..3 {
        s.fail("a");
        assert_eq!(s.status("a"), Status::RetryWait);
        assert_eq!(s.m.next_move(), Next::Wait);
        s.handle(Event::RetryDue { step: 0 });
    }
    assert_eq!(s.delays(), [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(3)]);
    assert_eq!(s.begun(), ["a", "a", "a", "a"]);
    assert_eq!(s.attempts("a"), 4);
    s.fail("a");
    assert_eq!(s.status("a"), Status::Failed);
    assert!(s.log.contains(&Command::Fail {
        step: 0,
        attempt: 4,
        reason: "exited with code 1".into(),
        output: None
    }));
}

#[test]
fn a_retry_that_succeeds_frees_the_dependents() {
    let mut s = Sim::new(RETRIED);
    s.schedule();
    s.fail("a");
    s.handle(Event::RetryDue { step: 0 });
    s.ok("a");
    assert_eq!(s.begun(), ["a", "a", "b"]);
}

#[test]
fn retries_only_on_the_listed_exit_codes() {
    let mut s = Sim::new(
        "[steps.a]\nrun = \"a\"\non-failure = \"stop\"\nretry = { attempts = 3, on-exit-codes = [75] }\n",
    );
    s.schedule();
    s.end("a", Exit::Code(75));
    assert_eq!(s.status("a"), Status::RetryWait);
    s.handle(Event::RetryDue { step: 0 });
    s.end("a", Exit::Code(1));
    assert_eq!(s.status("a"), Status::Failed);
}

#[test]
fn a_timed_out_attempt_fails_with_the_reason_resume_reads_as_mid_work() {
    let mut s = Sim::new("[steps.a]\nrun = \"a\"\non-failure = \"stop\"\n");
    s.schedule();
    s.end("a", Exit::TimedOut);
    let reason = s.facts.steps["a"].reason.clone().unwrap_or_default();
    assert!(runbook_core::journal::ended_mid_work(&reason), "{reason}");
}

#[test]
fn a_retry_due_after_the_run_stopped_does_not_start() {
    let mut s = Sim::new(&format!("{RETRIED}\n[steps.c]\nrun = \"c\"\nneeds = []\non-failure = \"stop\"\n"));
    s.schedule();
    s.fail("a");
    s.fail("c");
    assert_eq!(s.m.next_move(), Next::Conclude, "a stopping run does not wait for retry timers");
    s.handle(Event::RetryDue { step: 0 });
    assert!(!s.log.iter().any(|c| matches!(c, Command::Attempt { .. })));
}

#[test]
fn jitter_draws_the_delay_below_the_cap() {
    let mut s =
        Sim::new("[steps.a]\nrun = \"a\"\nretry = { attempts = 2, delay = \"10s\", jitter = true }\n");
    s.schedule();
    s.handle(Event::AttemptEnded {
        step: 0,
        attempt: 1,
        exit: Exit::Code(1),
        outputs: Produced::Nothing,
        tail: None,
        jitter: 0.5,
    });
    let d = s.delays();
    assert_eq!(d.len(), 1);
    assert!(d[0] <= Duration::from_secs(10), "{d:?}");
}

// --- Interruptions and stop causes -------------------------------------------------------

#[test]
fn an_interrupt_cancels_the_attempts_once_and_leaves_them_in_doubt() {
    let mut s = Sim::new(FAN);
    s.schedule();
    s.handle(Event::Stop(StopCause::Interrupted));
    s.handle(Event::Stop(StopCause::Interrupted));
    assert_eq!(s.log.iter().filter(|c| **c == Command::CancelAttempts).count(), 1);
    s.end("a", Exit::Cancelled);
    // No outcome journaled: `a` is still `started` in the journal, in doubt.
    assert_eq!(s.facts.steps["a"].status, runbook_core::journal::StepStatus::Started);
    assert_eq!(s.status("a"), Status::Waiting);
    s.end("b", Exit::Code(0));
    assert_eq!(s.status("b"), Status::Succeeded, "an attempt that ended on its own is journaled");
    s.end("c", Exit::Cancelled);
    s.end("d", Exit::Cancelled);
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Interrupted(StopCause::Interrupted));
}

#[test]
fn the_strongest_stop_cause_wins() {
    let mut s = Sim::new(CHAIN);
    s.schedule();
    s.fail("a");
    s.handle(Event::Stop(StopCause::Interrupted));
    assert_eq!(s.m.stop_cause(), Some(StopCause::Interrupted));
    s.handle(Event::Stop(StopCause::ReaperGone));
    assert_eq!(s.m.stop_cause(), Some(StopCause::ReaperGone));
    s.handle(Event::Stop(StopCause::Interrupted));
    assert_eq!(s.m.stop_cause(), Some(StopCause::ReaperGone));
    s.handle(Event::Stop(StopCause::LeaseLost));
    assert_eq!(s.m.stop_cause(), Some(StopCause::LeaseLost));
    assert_eq!(s.log.iter().filter(|c| **c == Command::CancelAttempts).count(), 1);
    assert!(StopCause::StepFailed { compensate: false } < StopCause::StepFailed { compensate: true });
    assert!(StopCause::StepFailed { compensate: true } < StopCause::Interrupted);
}

#[test]
fn an_interrupt_after_a_compensating_failure_does_not_compensate() {
    let mut s = Sim::new("[steps.a]\nrun = \"a\"\n\n[steps.b]\nrun = \"b\"\nneeds = []\n");
    s.schedule();
    s.fail("a");
    s.handle(Event::Stop(StopCause::Interrupted));
    s.end("b", Exit::Cancelled);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Interrupted(StopCause::Interrupted));
}

#[test]
fn a_dead_reaper_interrupts_with_its_own_reason() {
    let mut s = Sim::new(CHAIN);
    s.schedule();
    s.handle(Event::Stop(StopCause::ReaperGone));
    assert!(s.log.contains(&Command::CancelAttempts));
    s.end("a", Exit::Cancelled);
    let Conclusion::Interrupted(cause) = s.m.conclude(&s.facts) else { panic!("not interrupted") };
    assert!(cause.reason().contains("reaper"), "{}", cause.reason());
    assert!(StopCause::Interrupted.reason().contains("signal"));
}

#[test]
fn nothing_starts_after_an_interrupt() {
    let mut s = Sim::new(CHAIN);
    s.schedule();
    s.handle(Event::Stop(StopCause::Interrupted));
    s.end("a", Exit::Code(0));
    s.schedule();
    assert_eq!(s.begun(), ["a"]);
}

// A signal is a stop cause, never a failure (adv13a findings 1-3).

#[test]
fn a_precondition_cut_off_by_a_signal_leaves_the_step_pending_and_undoes_nothing() {
    // adv13a finding 2: the cancelled check was journaled as a failure, and `on-failure =
    // "compensate"` undid `a` after the signal.
    let mut s = Sim::new(&UNDO.replace(
        "needs = [\"a\"]\ncompensate = { run = \"undo b\"",
        "needs = [\"a\"]\non-failure = \"compensate\"\ncompensate = { run = \"undo b\"",
    ));
    s.on_begin.insert("b".into(), Begun::Interrupted);
    s.schedule();
    s.ok("a");
    assert!(s.begun().contains(&"b"));
    assert_eq!(s.m.stop_cause(), Some(StopCause::Interrupted));
    assert!(!s.log.iter().any(|c| matches!(c, Command::Fail { .. })), "{:?}", s.log);
    assert_eq!(s.status("b"), Status::Waiting, "pending: the resume checks it again");
    assert!(!s.facts.steps.contains_key("b"), "nothing journaled for `b`");
    // The attempts still running are ended; nothing else starts.
    assert_eq!(s.log.iter().filter(|c| **c == Command::CancelAttempts).count(), 1);
    for id in ["c", "d"] {
        if s.status(id) == Status::Running {
            s.end(id, Exit::Cancelled);
        }
    }
    let before = s.begun.len();
    s.schedule();
    assert_eq!(s.begun.len(), before, "nothing starts after the signal");
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Interrupted(StopCause::Interrupted));
}

#[test]
fn a_signal_seen_when_nothing_runs_concludes_interrupted_not_finished() {
    // adv13a finding 2: with nothing running, `next_move` concluded before the loop saw the
    // signal, and the run finished (compensated). The loop now hands the signal to the
    // machine before `next_move`; the machine concludes interrupted, whatever stopped it.
    let mut s = Sim::new(
        "[steps.a]\nrun = \"a\"\ncompensate = { run = \"undo a\" }\n\n[steps.b]\nrun = \"b\"\nneeds = [\"a\"]\n",
    );
    s.schedule();
    s.ok("a");
    s.fail("b");
    assert_eq!(s.m.stop_cause(), Some(StopCause::StepFailed { compensate: true }));
    s.handle(Event::Stop(StopCause::Interrupted));
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(
        s.m.conclude(&s.facts),
        Conclusion::Interrupted(StopCause::Interrupted),
        "no compensation, no finally"
    );
}

#[test]
fn a_retry_attempt_the_signal_kept_from_starting_leaves_the_step_pending() {
    // The retry's timer raced the signal: the loop does not spawn, and reports the attempt
    // as not begun; the machine does not wait for it.
    let mut s = Sim::new(RETRIED);
    s.schedule();
    s.end("a", Exit::Code(1));
    s.handle(Event::RetryDue { step: 0 });
    assert_eq!(s.status("a"), Status::Running);
    s.handle(Event::Begun { step: 0, begun: Begun::Interrupted });
    assert_eq!(s.status("a"), Status::Waiting);
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Interrupted(StopCause::Interrupted));
}

#[test]
fn a_compensation_ended_from_outside_is_in_doubt_like_a_step() {
    // adv13a finding 1 (variant): a compensation ended by its timeout (or, in journals from
    // before the fix, by a signal: `cancelled`) was run again by `compensate` with no
    // decision. An ordinary failure runs again.
    for (reason, plan) in [
        ("timed out", "doubt c"),
        ("cancelled", "doubt c"),
        ("killed by signal 9", "doubt c"),
        ("exited with code 1", "c#1"),
    ] {
        let mut s = Sim::new(UNDO);
        for id in ["a", "c"] {
            s.apply(started(id, 1));
            s.apply(succeeded(id));
        }
        s.apply(RunEvent::CompensationStarted { step: "c".into(), attempt: 1 });
        s.apply(RunEvent::CompensationFailed { step: "c".into(), reason: reason.into(), output: None });
        let got = ids(&s.rb, &machine::compensations(&s.rb, &s.facts));
        assert_eq!(got.first().map(String::as_str), Some(plan), "{reason}");
        assert_eq!(s.facts.compensations_in_doubt().contains(&"c"), plan.starts_with("doubt"), "{reason}");
    }
    // An idempotent one runs again.
    let mut s = Sim::new(UNDO);
    for id in ["a", "b"] {
        s.apply(started(id, 1));
        s.apply(succeeded(id));
    }
    s.apply(RunEvent::CompensationStarted { step: "b".into(), attempt: 1 });
    s.apply(RunEvent::CompensationFailed { step: "b".into(), reason: "timed out".into(), output: None });
    assert_eq!(ids(&s.rb, &machine::compensations(&s.rb, &s.facts)), ["b#1", "a#0"]);
}

// --- Approvals and includes --------------------------------------------------------------

const APPROVAL: &str = r#"
[steps.ask]
on-failure = "stop"

[steps.ask.approval]
prompt = "go?"
approvers = ["alice"]

[steps.go]
run = "go"
needs = ["ask"]
"#;

#[test]
fn an_approval_with_nobody_attached_suspends_the_run() {
    let mut s = Sim::new(APPROVAL);
    s.on_begin.insert("ask".into(), Begun::Awaiting);
    s.schedule();
    assert_eq!(s.status("ask"), Status::Awaiting);
    assert_eq!(s.m.next_move(), Next::Suspend);
    assert_eq!(s.m.phase(), Phase::Suspended);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Suspended);
}

#[test]
fn an_attached_run_waits_for_the_decision_then_goes_on() {
    let mut s = Sim::with(APPROVAL, 8, true);
    s.on_begin.insert("ask".into(), Begun::Awaiting);
    s.schedule();
    assert_eq!(s.m.next_move(), Next::Wait);
    assert_eq!(s.m.awaiting().collect::<Vec<_>>(), [0]);
    // The dispatcher journaled the success (the decisions count); the machine frees `go`.
    s.apply(RunEvent::StepSucceeded { step: "ask".into(), attempt: 1, outputs: BTreeMap::new() });
    s.handle(Event::Settled { step: 0, settled: Settled::Succeeded });
    s.schedule();
    assert_eq!(s.begun(), ["ask", "go"]);
}

#[test]
fn a_rejected_approval_fails_its_step_and_its_on_failure_decides() {
    let mut s = Sim::with(APPROVAL, 8, true);
    s.on_begin.insert("ask".into(), Begun::Awaiting);
    s.schedule();
    s.apply(RunEvent::StepFailed { step: "ask".into(), attempt: 1, reason: "rejected".into(), output: None });
    s.handle(Event::Settled { step: 0, settled: Settled::Failed });
    assert_eq!(s.m.stop_cause(), Some(StopCause::StepFailed { compensate: false }));
    assert_eq!(s.m.next_move(), Next::Conclude);
}

#[test]
fn a_stopping_run_does_not_wait_for_approvals() {
    let mut s = Sim::with(
        &format!("{APPROVAL}\n[steps.x]\nrun = \"x\"\nneeds = []\non-failure = \"stop\"\n"),
        8,
        true,
    );
    s.on_begin.insert("ask".into(), Begun::Awaiting);
    s.schedule();
    s.fail("x");
    assert_eq!(s.m.next_move(), Next::Conclude);
    // The dispatcher skips the approvals still waiting.
    assert_eq!(s.m.awaiting().collect::<Vec<_>>(), [0]);
}

#[test]
fn an_included_runbook_that_waits_for_approvals_suspends_its_step() {
    let mut s = Sim::new(CHAIN);
    s.on_begin.insert("a".into(), Begun::Include);
    s.schedule();
    assert_eq!(s.status("a"), Status::Running);
    s.handle(Event::Settled { step: 0, settled: Settled::Awaiting });
    assert_eq!(s.status("a"), Status::Awaiting);
    assert_eq!(s.m.next_move(), Next::Suspend);
}

#[test]
fn an_included_runbook_cut_off_by_an_interrupt_is_in_doubt() {
    let mut s = Sim::new(CHAIN);
    s.on_begin.insert("a".into(), Begun::Include);
    s.schedule();
    s.handle(Event::Stop(StopCause::Interrupted));
    s.handle(Event::Settled { step: 0, settled: Settled::Interrupted });
    assert_eq!(s.status("a"), Status::Waiting);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Interrupted(StopCause::Interrupted));
}

#[test]
fn an_included_runbook_that_failed_fails_its_step() {
    let mut s = Sim::new(CHAIN);
    s.on_begin.insert("a".into(), Begun::Include);
    s.schedule();
    s.apply(RunEvent::StepFailed { step: "a".into(), attempt: 1, reason: "inner".into(), output: None });
    s.handle(Event::Settled { step: 0, settled: Settled::Failed });
    assert_eq!(s.m.stop_cause(), Some(StopCause::StepFailed { compensate: false }));
}

#[test]
fn a_nested_machine_knows_its_scope() {
    let rb = runbook(CHAIN);
    assert_eq!(Machine::new(&rb, Scope::Nested, 1, false).scope(), Scope::Nested);
}

// --- Resume after each kind of crash point -----------------------------------------------

fn resumed(steps: &str, events: Vec<RunEvent>, rule: ResumeRule, idempotent: &[&str]) -> Sim {
    let mut s = Sim::new(steps);
    for e in events {
        s.apply(e);
    }
    let facts = s.facts.clone();
    for (idx, step) in s.rb.clone().steps.iter().enumerate() {
        if let Some(st) = facts.steps.get(step.id.as_str()) {
            let rule = ResumeRule { idempotent: idempotent.contains(&step.id.as_str()), ..rule };
            s.m.resume_step(idx, st, rule);
        }
    }
    s
}

fn started(id: &str, attempt: u32) -> RunEvent {
    RunEvent::StepStarted { step: id.into(), attempt }
}

fn succeeded(id: &str) -> RunEvent {
    RunEvent::StepSucceeded { step: id.into(), attempt: 1, outputs: BTreeMap::new() }
}

fn failed(id: &str, attempt: u32, reason: &str) -> RunEvent {
    RunEvent::StepFailed { step: id.into(), attempt, reason: reason.into(), output: None }
}

const GO_ON: ResumeRule =
    ResumeRule { retry_failed: true, undone: false, idempotent: false, approval: false, decided: false };

#[test]
fn resume_a_step_in_doubt_runs_it_again_with_the_next_attempt() {
    // The CLI let it through: idempotent, or decided by an operator.
    let mut s = resumed(CHAIN, vec![started("a", 1), succeeded("a"), started("b", 1)], GO_ON, &["b"]);
    assert_eq!(s.status("a"), Status::Succeeded);
    assert_eq!(s.status("b"), Status::Waiting);
    s.schedule();
    assert_eq!(s.begun(), ["b"]);
    assert_eq!(s.attempts("b"), 2);
}

#[test]
fn resume_a_failed_run_gives_failed_steps_a_new_set_of_attempts() {
    let events = vec![
        started("a", 1),
        RunEvent::AttemptFailed {
            step: "a".into(),
            attempt: 1,
            exit_code: Some(1),
            reason: "exited with code 1".into(),
            output: None,
        },
        started("a", 2),
        failed("a", 2, "exited with code 1"),
    ];
    let mut s = resumed(&RETRIED.replace("attempts = 4", "attempts = 2"), events, GO_ON, &[]);
    assert_eq!(s.status("a"), Status::Waiting);
    s.schedule();
    assert_eq!(s.attempts("a"), 3);
    s.fail("a");
    assert_eq!(s.status("a"), Status::RetryWait, "the retry policy counts afresh from attempt 2");
    s.handle(Event::RetryDue { step: 0 });
    s.fail("a");
    assert_eq!(s.status("a"), Status::Failed);
}

#[test]
fn resume_a_step_that_timed_out_stays_failed_unless_idempotent_or_decided() {
    let events = || vec![started("a", 1), failed("a", 1, runbook_core::journal::TIMED_OUT)];
    let mut s = resumed(CHAIN, events(), GO_ON, &[]);
    assert_eq!(s.status("a"), Status::Failed);
    s.schedule();
    // `b` is held back; `c` needs only `b`, and a skip counts as satisfied.
    assert_eq!(s.skipped, [("b".to_string(), "`a` failed".to_string())]);
    assert_eq!(s.begun(), ["c"]);

    let s = resumed(CHAIN, events(), GO_ON, &["a"]);
    assert_eq!(s.status("a"), Status::Waiting);
    let s = resumed(CHAIN, events(), ResumeRule { decided: true, ..GO_ON }, &[]);
    assert_eq!(s.status("a"), Status::Waiting);
}

#[test]
fn resume_an_operators_skip_stays_skipped_and_a_held_back_step_runs() {
    let events = vec![
        started("a", 1),
        failed("a", 1, "exited with code 1"),
        RunEvent::StepSkipped { step: "b".into(), reason: "`a` failed".into() },
        RunEvent::OperatorDecision {
            step: "c".into(),
            decision: Decision::Skip,
            operator: "op".into(),
            reason: "no".into(),
        },
    ];
    let mut s = resumed(CHAIN, events, GO_ON, &[]);
    assert_eq!(s.status("b"), Status::Waiting);
    assert_eq!(s.status("c"), Status::Skipped);
    s.schedule();
    s.ok("a");
    s.ok("b");
    assert_eq!(s.begun(), ["a", "b"]);
}

#[test]
fn resume_a_decision_settles_a_reopened_step() {
    let events = vec![started("a", 1), failed("a", 1, runbook_core::journal::CANCELLED)];
    let mut s = resumed(CHAIN, events, ResumeRule { decided: true, ..GO_ON }, &[]);
    assert_eq!(s.status("a"), Status::Waiting);
    s.apply(RunEvent::OperatorDecision {
        step: "a".into(),
        decision: Decision::Undo,
        operator: "op".into(),
        reason: "it did".into(),
    });
    s.m.decided(0);
    assert_eq!(s.status("a"), Status::Succeeded);
    s.schedule();
    assert_eq!(s.begun(), ["b"]);
}

#[test]
fn resume_an_included_runbook_that_undid_itself_stays_failed() {
    let events = vec![started("a", 1), failed("a", 1, "the included runbook failed")];
    let mut s = resumed(CHAIN, events, ResumeRule { undone: true, ..GO_ON }, &[]);
    assert_eq!(s.status("a"), Status::Failed);
    s.schedule();
    assert!(!s.begun().contains(&"a"));
    s.ok("c");
    assert_eq!(s.m.next_move(), Next::Conclude);
    assert_eq!(s.m.conclude(&s.facts), Conclusion::Finish { compensate: false, failed: true });
}

#[test]
fn resume_to_compensate_reopens_nothing() {
    let events = vec![started("a", 1), failed("a", 1, "exited with code 1")];
    let s = resumed(CHAIN, events, ResumeRule { retry_failed: false, ..GO_ON }, &[]);
    assert_eq!(s.status("a"), Status::Failed);
}

#[test]
fn resume_an_approval_journaled_as_done_without_its_decisions_asks_again() {
    let s = resumed(APPROVAL, vec![succeeded("ask")], ResumeRule { approval: true, ..GO_ON }, &[]);
    assert_eq!(s.status("ask"), Status::Waiting);
}

#[test]
fn resume_an_approval_still_waiting_is_asked_again() {
    let events = vec![RunEvent::ApprovalRequested {
        step: "ask".into(),
        prompt: "go?".into(),
        approvers: vec!["alice".into()],
        min_approvals: 1,
        allow_self_approval: false,
        requested_by: "op".into(),
        inputs: BTreeMap::new(),
        deadline_ms: None,
        takes: None,
    }];
    let mut s = resumed(APPROVAL, events, ResumeRule { approval: true, ..GO_ON }, &[]);
    assert_eq!(s.status("ask"), Status::Waiting);
    s.on_begin.insert("ask".into(), Begun::Awaiting);
    s.schedule();
    assert_eq!(s.begun(), ["ask"]);
    assert_eq!(s.status("ask"), Status::Awaiting);
}

// --- Compensations and finally -----------------------------------------------------------

const UNDO: &str = r#"
[steps.a]
run = "a"
compensate = { run = "undo a" }

[steps.b]
run = "b"
needs = ["a"]
compensate = { run = "undo b", idempotent = true }

[steps.c]
run = "c"
needs = ["a"]
compensate = { run = "undo c" }

[steps.d]
run = "d"
needs = ["a"]

[steps.e]
run = "e"
needs = ["b", "c", "d"]
"#;

fn ids(rb: &Runbook, plan: &[Compensate]) -> Vec<String> {
    plan.iter()
        .map(|c| match c {
            Compensate::Run { step, base } => format!("{}#{base}", rb.steps[*step].id),
            Compensate::Include(i) => format!("include {}", rb.steps[*i].id),
            Compensate::InDoubt(i) => format!("doubt {}", rb.steps[*i].id),
        })
        .collect()
}

#[test]
fn compensations_undo_parallel_branches_in_reverse_order_of_completion() {
    let mut s = Sim::new(UNDO);
    s.schedule();
    s.ok("a");
    assert_eq!(s.begun(), ["a", "b", "c", "d"]);
    // The branches complete in another order than declared.
    s.ok("c");
    s.ok("d");
    s.ok("b");
    s.fail("e");
    let plan = machine::compensations(&s.rb, &s.facts);
    assert_eq!(ids(&s.rb, &plan), ["b#0", "c#0", "a#0"], "d has no compensation");
}

#[test]
fn a_compensation_done_is_not_run_again_and_one_in_doubt_stops_the_unwinding() {
    let mut s = Sim::new(UNDO);
    for id in ["a", "c", "b"] {
        s.apply(started(id, 1));
        s.apply(succeeded(id));
    }
    s.apply(RunEvent::CompensationStarted { step: "b".into(), attempt: 1 });
    s.apply(RunEvent::CompensationSucceeded { step: "b".into(), outputs: BTreeMap::new() });
    s.apply(RunEvent::CompensationStarted { step: "c".into(), attempt: 1 });
    let plan = machine::compensations(&s.rb, &s.facts);
    assert_eq!(ids(&s.rb, &plan), ["doubt c"]);
    // The operator decided: run it again.
    s.apply(RunEvent::CompensationDecision {
        step: "c".into(),
        decision: Decision::Rerun,
        operator: "op".into(),
        reason: "r".into(),
    });
    assert_eq!(ids(&s.rb, &machine::compensations(&s.rb, &s.facts)), ["c#1", "a#0"]);
}

#[test]
fn an_idempotent_compensation_in_doubt_runs_again() {
    let mut s = Sim::new(UNDO);
    for id in ["a", "b"] {
        s.apply(started(id, 1));
        s.apply(succeeded(id));
    }
    s.apply(RunEvent::CompensationStarted { step: "b".into(), attempt: 1 });
    assert_eq!(ids(&s.rb, &machine::compensations(&s.rb, &s.facts)), ["b#1", "a#0"]);
}

#[test]
fn an_included_runbook_without_a_compensation_undoes_itself() {
    let rb = runbook(CHAIN);
    // A plain step without `compensate` is passed over.
    let mut facts = RunState::default();
    facts.apply(&started("a", 1));
    facts.apply(&succeeded("a"));
    assert!(machine::compensations(&rb, &facts).is_empty());
}

const FINALLY: &str = r#"
[steps.a]
run = "a"

[finally.tidy]
run = "tidy"

[finally.again]
run = "again"
idempotent = true
"#;

#[test]
fn finally_after_an_interrupt_runs_what_did_not_end_and_never_what_ended() {
    let rb = runbook(FINALLY);
    let tidy = &rb.finally[0];
    let again = &rb.finally[1];
    let mut facts = RunState::default();
    assert_eq!(machine::finally_plan(tidy, None), Finally::Run { base: 0 });
    facts.apply(&started("tidy", 1));
    // In doubt (the engine died or was interrupted during it): not idempotent, it waits.
    assert_eq!(machine::finally_plan(tidy, facts.steps.get("tidy")), Finally::InDoubt);
    facts.apply(&started("again", 1));
    assert_eq!(machine::finally_plan(again, facts.steps.get("again")), Finally::Run { base: 1 });
    facts.apply(&failed("tidy", 1, "exited with code 1"));
    assert_eq!(machine::finally_plan(tidy, facts.steps.get("tidy")), Finally::Run { base: 1 });
    facts.apply(&started("tidy", 2));
    facts.apply(&RunEvent::StepSucceeded { step: "tidy".into(), attempt: 2, outputs: BTreeMap::new() });
    assert_eq!(machine::finally_plan(tidy, facts.steps.get("tidy")), Finally::Done);
    facts.apply(&RunEvent::OperatorDecision {
        step: "again".into(),
        decision: Decision::Skip,
        operator: "op".into(),
        reason: "r".into(),
    });
    assert_eq!(machine::finally_plan(again, facts.steps.get("again")), Finally::Done);
}

// --- Escalations -------------------------------------------------------------------------

const ESCALATIONS: &str = r#"
[steps.a]
run = "a"

[escalation.early]
after = "10m"
notify = { webhook = "https://hooks.example.com/x", text = "still going" }

[escalation.late]
after = "1h"
notify = { webhook = "https://hooks.example.com/y", text = "still going" }
"#;

#[test]
fn an_escalation_fires_once_when_its_time_has_come() {
    let rb = runbook(ESCALATIONS);
    let min = |m: u64| Duration::from_secs(60 * m);
    let at = |fired: &[String], sending: &[String], elapsed| {
        machine::escalations(&rb, Scope::TopLevel, fired, sending, elapsed)
    };
    let none: &[String] = &[];
    assert_eq!(at(none, none, min(4)), machine::Escalations { due: None, next_in: Some(min(6)) });
    assert_eq!(at(none, none, min(10)).due.as_deref(), Some("early"));
    let early = ["early".to_string()];
    // On its way, or journaled: never again; the next one is the late one.
    assert_eq!(at(none, &early, min(11)), machine::Escalations { due: None, next_in: Some(min(49)) });
    assert_eq!(at(&early, none, min(11)).due, None);
    let both = ["early".to_string(), "late".to_string()];
    assert_eq!(at(&both, none, min(120)), machine::Escalations::default());
}

#[test]
fn a_resumed_run_keeps_its_clock_and_fires_what_is_overdue() {
    // The clock is the run's start (journaled), not the resume's: overdue fires at once.
    let rb = runbook(ESCALATIONS);
    let e = machine::escalations(&rb, Scope::TopLevel, &[], &[], Duration::from_secs(2 * 3600));
    assert_eq!(e.due.as_deref(), Some("early"));
    assert_eq!(e.next_in, Some(Duration::ZERO));
}

#[test]
fn an_included_runbook_leaves_escalations_to_the_including_run() {
    let rb = runbook(ESCALATIONS);
    let e = machine::escalations(&rb, Scope::Nested, &[], &[], Duration::from_secs(2 * 3600));
    assert_eq!(e, machine::Escalations::default());
}

/// Issue 14 point 1: a question is an event of the machine. While step `b`'s question waits
/// for its answer, `b` counts as begun (its dependents wait, it is not begun again), a step
/// that does not need it starts and ends, and the loop waits for the answer; the answer comes
/// back as another `Begun`.
#[test]
fn a_question_waits_off_the_loop_and_holds_up_only_its_dependents() {
    let mut sim = Sim::new(
        r#"
[steps.a]
run = "a"

[steps.b]
run = "b"
needs = ["a"]
confirm = "b?"

[steps.c]
run = "c"
needs = ["b"]

[steps.d]
run = "d"
needs = ["a"]
"#,
    );
    sim.on_begin.insert("b".into(), Begun::Asking);
    sim.schedule();
    sim.ok("a");
    assert_eq!(sim.begun(), ["a", "b", "d"], "d starts while b's question waits");
    assert_eq!(sim.status("b"), Status::Running);
    assert_eq!(sim.status("c"), Status::Waiting);
    sim.ok("d");
    assert_eq!(sim.begun(), ["a", "b", "d"], "b is not begun again, c waits for it");
    assert_eq!(sim.m.next_move(), Next::Wait, "the loop waits for the answer");
    // The answer: yes, and b's attempt was spawned.
    let b = sim.idx("b");
    sim.apply(RunEvent::StepStarted { step: "b".into(), attempt: 1 });
    sim.handle(Event::Begun { step: b, begun: Begun::Spawned });
    sim.ok("b");
    assert_eq!(sim.begun(), ["a", "b", "d", "c"]);
}

/// Issue 14 point 2: a signal while a question waits stops the run; the loop still waits for
/// the withdrawn question to come back, then concludes as interrupted, the step pending. A
/// closed terminal (no answer) interrupts the run by itself.
#[test]
fn an_unanswered_question_leaves_its_step_pending_and_a_closed_terminal_interrupts() {
    for closed in [false, true] {
        let mut sim = Sim::new(CHAIN);
        sim.on_begin.insert("b".into(), Begun::Asking);
        sim.schedule();
        sim.ok("a");
        if !closed {
            sim.handle(Event::Stop(StopCause::Interrupted));
            assert_eq!(sim.m.next_move(), Next::Wait, "the withdrawn question comes back first");
        }
        let b = sim.idx("b");
        sim.handle(Event::Begun { step: b, begun: Begun::Unanswered { closed } });
        assert_eq!(sim.m.next_move(), Next::Conclude);
        assert_eq!(sim.m.conclude(&sim.facts), Conclusion::Interrupted(StopCause::Interrupted));
        assert_eq!(sim.status("b"), Status::Waiting, "no answer is not a failure");
        assert_eq!(sim.begun(), ["a", "b"]);
    }
}

/// adv14a F4 and its retry observation: a step declared without `needs` follows the step
/// declared before it, so it waits for that step's question by design; with `needs = []` it
/// starts while that question waits, and while that step waits for its retry.
#[test]
fn only_the_steps_that_need_an_asking_or_retrying_step_wait_for_it() {
    let asking = |needs: &str| {
        format!("[steps.a]\nrun = \"a\"\nconfirm = \"a?\"\n\n[steps.p]\nrun = \"p\"\n{needs}\n")
    };
    let mut s = Sim::with(&asking(""), 4, false);
    s.on_begin.insert("a".into(), Begun::Asking);
    s.schedule();
    assert_eq!(s.begun(), ["a"], "p follows a, the step declared before it");
    let mut s = Sim::with(&asking("needs = []"), 4, false);
    s.on_begin.insert("a".into(), Begun::Asking);
    s.schedule();
    assert_eq!(s.begun(), ["a", "p"], "p needs nothing: it starts while a's question waits");

    let retried = "[steps.a]\nrun = \"a\"\nretry = { attempts = 3, delay = \"3s\" }\n\n[steps.p]\nrun = \"p\"\nneeds = []\n";
    let mut s = Sim::with(retried, 1, false);
    s.schedule();
    assert_eq!(s.begun(), ["a"], "one step at a time");
    s.fail("a");
    assert_eq!(s.status("a"), Status::RetryWait);
    assert_eq!(s.begun(), ["a", "p"], "p starts while a waits for its retry");
}
