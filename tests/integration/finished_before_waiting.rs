//! Promise 1 (issue 14 point 1, adv14a F1): a step that has ended is journaled as ended
//! before the engine waits for anything else: a precondition, a question, a retry's delay,
//! an approval. An engine killed (-9) during any such wait leaves no finished step "in
//! doubt" (ARCHITECTURE.md, "a deferred record waits for nothing").

use std::time::{Duration, Instant};

use crate::support::{Scratch, kill9};

/// Start `runbook run r.toml ARGS`, wait until `a` has charged and `marker` exists (the
/// engine is in the wait under test), give it `settle`, then kill it (-9). What it had
/// printed by then.
fn kill_while_waiting(s: &Scratch, args: &[&str], marker: &str, settle: Duration) -> String {
    let mut all = vec!["run", "r.toml"];
    all.extend_from_slice(args);
    let engine = s.spawn(&all);
    s.wait_for("charge.log", "charged");
    let t0 = Instant::now();
    while !s.path().join(marker).exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{marker} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(settle);
    kill9(engine.id());
    let out = engine.wait_with_output().expect("the engine's output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// After the engine was killed: `a` is journaled as succeeded, and `resume` does not ask
/// about it (it is not in doubt), and `charge.log` holds one charge.
fn assert_a_journaled(s: &Scratch, during: &str) {
    let run = s.latest_run();
    let events = s.events(&run);
    assert!(
        events.iter().any(|(k, st)| k == "step_succeeded" && st == "a"),
        "step `a` ended before the engine waited {during}, then died, and its success was never journaled: {events:?}"
    );
    assert_eq!(s.read("charge.log").lines().count(), 1, "`a` ran once");
}

const A_THEN: &str = r#"[runbook]
name = "deferred"
lock = "env-deferred"

[steps.a]
run = "echo charged >> charge.log"
"#;

/// adv14a F1: kill -9 while the next step's (slow) precondition runs.
#[test]
fn a_finished_step_is_journaled_before_the_next_precondition_runs() {
    let s = Scratch::new(&format!(
        r#"{A_THEN}
[steps.b]
needs = ["a"]
run = "echo b"

[steps.b.preconditions.slow]
run = "touch checking; sleep 30"
message = "slow check"
timeout = "60s"
"#
    ));
    let printed = kill_while_waiting(&s, &["--yes"], "checking", Duration::from_millis(300));
    assert_a_journaled(&s, "for a precondition");
    // The terminal shows what the journal holds: `a` ended, before the check of `b` ended.
    assert!(
        printed.lines().any(|l| l.starts_with("ok a")),
        "`ok a` was not shown while b's check ran:\n{printed}"
    );
}

/// kill -9 while a retrying step waits for its next attempt.
#[test]
fn a_finished_step_is_journaled_before_a_retry_delay() {
    let s = Scratch::new(&format!(
        r#"{A_THEN}
[steps.flaky]
run = "touch tried; exit 1"
[steps.flaky.retry]
attempts = 3
delay = "30s"
"#
    ));
    let _ = kill_while_waiting(&s, &["--yes"], "tried", Duration::from_millis(500));
    assert_a_journaled(&s, "for a retry's delay");
}

/// kill -9 while the run waits (attached) for an approval after `a`.
#[test]
fn a_finished_step_is_journaled_before_an_approval_wait() {
    let s = Scratch::new(&format!(
        r#"{A_THEN}
[steps.gate]
needs = ["a"]
[steps.gate.approval]
prompt = "go?"
approvers = ["bob"]
"#
    ));
    let _ = kill_while_waiting(&s, &["--yes", "--wait"], "charge.log", Duration::from_millis(500));
    assert_a_journaled(&s, "for an approval");
}

/// kill -9 while the next step's `confirm` question waits on the terminal.
#[test]
fn a_finished_step_is_journaled_before_a_question() {
    let s = Scratch::new(&format!(
        r#"{A_THEN}
[steps.b]
needs = ["a"]
run = "echo b"
confirm = "Go on with b?"
"#
    ));
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect("Go on with b?");
    kill9(t.pid());
    assert_a_journaled(&s, "for an answer");
}
