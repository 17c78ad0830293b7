//! Issue 14, points 3 and 5 (l-lock): a run survives the incident around it. A closed
//! terminal (SIGHUP) or SIGTERM is journaled before the engine exits; the lock belongs to
//! the run until it is finished, compensated or abandoned, never to the engine's process.

use std::time::{Duration, Instant};

use crate::support::Scratch;

/// A step that says it started, then runs long enough for the test to act on it.
const LONG: &str = r#"[runbook]
name = "long"
lock = "env-prod"

[steps.a]
run = "touch started; sleep 30; touch ended"
"#;

fn wait_for(s: &Scratch, file: &str) {
    let t0 = Instant::now();
    while !s.path().join(file).exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{file} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `run_interrupted` records of a run's journal.
fn interruptions(s: &Scratch, run: &str) -> Vec<String> {
    s.audit(run).lines().filter(|l| l.contains("\"run_interrupted\"")).map(str::to_string).collect()
}

/// Point 3: closing the terminal (a dropped SSH session: the kernel sends SIGHUP) while a
/// step runs journals `run_interrupted` with its cause, and the engine exits 130 like a
/// Ctrl-C, with nothing left `running`. Failed before the fix: SIGHUP killed the engine
/// with no record, and `runs` said `running` forever.
#[test]
fn a_closed_terminal_is_journaled_as_an_interruption() {
    let s = Scratch::new(LONG);
    let mut t = s.terminal(&["run", "r.toml", "--yes"], &[]);
    wait_for(&s, "started");
    t.hang_up();
    let status = t.wait();
    assert_eq!(status.code(), Some(130), "{status:?}\n{}", t.screen());
    let run = s.latest_run();
    let stops = interruptions(&s, &run);
    assert_eq!(stops.len(), 1, "{}", s.audit(&run));
    assert!(stops[0].contains("SIGHUP"), "{}", stops[0]);
    let runs = s.cmd(&["runs"], &[]);
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);
    assert!(!s.path().join("ended").exists(), "the step was not ended with the run");
}

/// Point 3: SIGTERM journals its own cause.
#[test]
fn sigterm_is_journaled_with_its_cause() {
    let s = Scratch::new(LONG);
    let mut child = s
        .command(&["run", "r.toml", "--yes"], &[])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    wait_for(&s, "started");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let run = s.latest_run();
    let stops = interruptions(&s, &run);
    assert_eq!(stops.len(), 1, "{}", s.audit(&run));
    assert!(stops[0].contains("SIGTERM") && !stops[0].contains("Ctrl-C"), "{}", stops[0]);
}
