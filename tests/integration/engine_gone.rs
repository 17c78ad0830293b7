//! Issue 14, points 3 and 5 (l-lock): a run survives the incident around it. A closed
//! terminal (SIGHUP) or SIGTERM is journaled before the engine exits; the lock belongs to
//! the run until it is finished, compensated or abandoned, never to the engine's process.

use crate::support::Scratch;

/// A step that says it started, then runs long enough for the test to act on it.
const LONG: &str = r#"[runbook]
name = "long"
lock = "env-prod"

[steps.a]
run = "touch started; sleep 30; touch ended"
"#;

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
    s.wait_for("started", "");
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
    s.wait_for("started", "");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let run = s.latest_run();
    let stops = interruptions(&s, &run);
    assert_eq!(stops.len(), 1, "{}", s.audit(&run));
    assert!(stops[0].contains("SIGTERM") && !stops[0].contains("Ctrl-C"), "{}", stops[0]);
}

/// A step that runs long the first time and ends at once when run again (declared
/// idempotent, so a resume after a dead engine runs it again without a decision).
const ONCE_LONG: &str = r#"[runbook]
name = "rollback"
lock = "env-prod"

[steps.a]
run = "if [ -e started ]; then echo again; else touch started; sleep 30; fi"
idempotent = true
"#;

/// The same lock, another runbook: the second operator's run.
const OTHER: &str = r#"[runbook]
name = "other"
lock = "env-prod"

[steps.b]
run = "touch other-ran"
"#;

/// The ids `runs` lists.
fn listed(s: &Scratch) -> String {
    s.cmd(&["runs"], &[]).stdout
}

/// Point 5: the lock belongs to the run, not to its engine. A run whose engine was
/// SIGKILLed keeps its lock: another run is refused (exit 5) with the holder's state and
/// the commands that continue or end it, prints no run id (point 9), and runs nothing;
/// `resume` takes the lock back, and once the run is finished the other run may start.
/// Failed before the fix: the other run printed "taking over lock ... that process is
/// gone" and ran.
#[test]
fn a_dead_engine_s_unfinished_run_keeps_its_lock() {
    let s = Scratch::new(ONCE_LONG);
    std::fs::write(s.path().join("other.toml"), OTHER).expect("other runbook");
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    s.wait_for("started", "");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(engine.id() as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("SIGKILL");
    let _ = engine.wait();
    let held = s.latest_run();
    // Point 3: shown as its journal and its lease say, without a write by the reader.
    assert!(listed(&s).contains("interrupted (engine gone)"), "{}", listed(&s));
    let show = s.cmd(&["show", &held], &[]);
    assert!(show.stdout.contains("status    interrupted (engine gone)"), "{show:?}");
    assert!(!s.audit(&held).contains("run_interrupted"), "a reader wrote to the journal");

    let refused = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(!s.path().join("other-ran").exists(), "the other run ran");
    assert!(!refused.stderr.contains("taking over"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&held), "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("runbook resume {held}")), "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("runbook abandon {held} --reason")), "{}", refused.stderr);
    assert!(refused.stderr.contains("--state"), "not the default store: {}", refused.stderr);
    // Point 9: a refused run prints no id (it never exists).
    let runs = listed(&s);
    assert_eq!(runs.matches("other").count(), 0, "{runs}");
    assert!(!refused.stdout.contains(" of other "), "a refused run printed a header: {}", refused.stdout);

    let resumed = s.cmd(&["resume", &held, "--yes"], &[]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let after = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(after.code, 0, "{after:?}");
    assert!(s.path().join("other-ran").exists());
}

/// Point 5: an interrupted run (SIGTERM, Ctrl-C) keeps its lock too: it is unfinished.
#[test]
fn an_interrupted_run_keeps_its_lock_until_it_is_resumed() {
    let s = Scratch::new(ONCE_LONG);
    std::fs::write(s.path().join("other.toml"), OTHER).expect("other runbook");
    let engine = s.spawn(&["run", "r.toml", "--yes"]);
    s.wait_for("started", "");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(engine.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let out = engine.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let held = s.latest_run();

    let refused = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(refused.stderr.contains("interrupted"), "the holder's state: {}", refused.stderr);
    assert!(!s.path().join("other-ran").exists(), "the other run ran");

    let resumed = s.cmd(&["resume", &held, "--yes"], &[]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let after = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(after.code, 0, "{after:?}");
}

/// Point 4: `abandon` ends a run whose engine died: journaled with who and why, its lock
/// let go (the other run starts), never resumed, and the status `abandoned` in `runs`.
/// A finished run is refused; a live engine's run is refused. Failed before the fix: there
/// was no `abandon`.
#[test]
fn abandon_ends_a_dead_engine_s_run_and_lets_its_lock_go() {
    let s = Scratch::new(ONCE_LONG);
    std::fs::write(s.path().join("other.toml"), OTHER).expect("other runbook");
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    s.wait_for("started", "");

    // While its engine lives, the run is running, and it is not abandoned.
    let held = s.latest_run();
    let runs = listed(&s);
    assert!(runs.contains("running") && !runs.contains("engine gone"), "{runs}");
    let live = s.cmd(&["abandon", &held, "--reason", "too early"], &[]);
    assert_eq!(live.code, 5, "{live:?}");
    assert!(live.stderr.contains("live engine"), "{}", live.stderr);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(engine.id() as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("SIGKILL");
    let _ = engine.wait();
    let done = s.cmd(&["abandon", &held, "--reason", "rolled back by hand"], &[]);
    assert_eq!(done.code, 0, "{done:?}");
    let journal = s.audit(&held);
    let last = journal.lines().last().unwrap_or_default();
    assert!(
        last.contains("\"run_abandoned\"")
            && last.contains("rolled back by hand")
            && last.contains("\"compensated\":false"),
        "{journal}"
    );
    assert!(listed(&s).contains("abandoned"), "{}", listed(&s));
    let show = s.cmd(&["show", &held], &[]);
    assert!(show.stdout.contains("abandoned"), "{show:?}");

    let resumed = s.cmd(&["resume", &held, "--yes"], &[]);
    assert_ne!(resumed.code, 0, "{resumed:?}");
    assert!(resumed.stderr.contains("abandoned"), "{}", resumed.stderr);
    let again = s.cmd(&["abandon", &held, "--reason", "twice"], &[]);
    assert_eq!(again.code, 3, "{again:?}");
    assert!(again.stderr.contains("has finished (abandoned)"), "{}", again.stderr);

    let after = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(after.code, 0, "{after:?}");
    let finished = s.latest_run();
    let refused = s.cmd(&["abandon", &finished, "--reason", "done already"], &[]);
    assert_eq!(refused.code, 3, "{refused:?}");
}

/// Point 4: a run suspended at an approval (holding its lock) is abandoned with
/// `--compensate`: what it did is undone first, then it ends and lets the lock go.
/// Failed before the fix: `compensate` said "nothing to compensate" and the lock stayed.
#[test]
fn abandon_compensate_undoes_a_suspended_run_and_lets_its_lock_go() {
    let s = Scratch::new(
        r#"[runbook]
name = "suspended"
lock = "env-prod"

[steps.push]
run = "echo push >> trace"
compensate = { run = "echo undo-push >> trace" }

[steps.gate]
needs = ["push"]
approval = { prompt = "Go?", approvers = ["someone-else"] }
"#,
    );
    std::fs::write(s.path().join("other.toml"), OTHER).expect("other runbook");
    let first = s.run(&["--yes"], &[]);
    assert_eq!(first.code, 4, "suspended at its approval: {first:?}");
    let run = s.latest_run();
    let refused = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("`runbook abandon {run} --reason TEXT` ends it")),
        "{}",
        refused.stderr
    );

    let done = s.cmd(&["abandon", &run, "--reason", "change window closed", "--compensate", "--yes"], &[]);
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(s.read("trace"), "push\nundo-push\n");
    let journal = s.audit(&run);
    assert!(journal.lines().last().unwrap_or_default().contains("\"compensated\":true"), "{journal}");
    let after = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(after.code, 0, "{after:?}");
}

/// Promise 3: a secret pasted into the reason by mistake never reaches the journal; the
/// run's secrets are read from their sources as the run reads them.
#[test]
fn a_secret_in_an_abandon_reason_is_redacted() {
    let s = Scratch::new(
        r#"[runbook]
name = "with-secret"
lock = "env-prod"

[secrets.TOKEN]
file = "token.txt"
first-line = true

[steps.push]
run = "echo push"

[steps.gate]
needs = ["push"]
approval = { prompt = "Go?", approvers = ["someone-else"] }
"#,
    );
    let token = "tok-8c1f27d9e4-never-journaled";
    std::fs::write(s.path().join("token.txt"), format!("{token}\n")).expect("token");
    assert_eq!(s.run(&["--yes"], &[]).code, 4);
    let run = s.latest_run();
    let reason = format!("leaked {token} by mistake");
    let done = s.cmd(&["abandon", &run, "--reason", &reason], &[]);
    assert_eq!(done.code, 0, "{done:?}");
    let journal = s.audit(&run);
    assert!(journal.contains("run_abandoned"), "{journal}");
    assert!(!journal.contains(token), "the secret reached the journal: {journal}");
    assert!(!done.stdout.contains(token) && !done.stderr.contains(token), "{done:?}");
}

/// Red team adv20-3: when the runbook changed since the run started, the reason was redacted
/// with the secrets of the runbook *as it is now*: one edited to rename its secret redacted
/// nothing, and the run's value was journaled in clear. Only the runbook the run started
/// with lists its secrets; changed (or deleted), the reason is withheld and the operator told.
#[test]
fn an_abandon_reason_is_never_redacted_with_a_runbook_edited_since_the_run_started() {
    let runbook = r#"[runbook]
name = "with-secret"

[secrets.S]
env = "ADV20_S"

[steps.gate.approval]
prompt = "Go?"
approvers = ["someone-else"]

[steps.use]
needs = ["gate"]
run = "echo using"
env = { S = "{{ secrets.S }}" }
"#;
    let s = Scratch::new(runbook);
    let secret = "Zq8-very-secret-db-password-77";
    let env = [("ADV20_S", secret), ("ADV20_T", "another-value")];
    assert_eq!(s.run(&["--yes"], &env).code, 4);
    let run = s.latest_run();
    // Edited after the start: the secret now comes from another variable under another name.
    let edited = runbook
        .replace("secrets.S]", "secrets.T]")
        .replace("secrets.S }}", "secrets.T }}")
        .replace("ADV20_S", "ADV20_T");
    std::fs::write(s.path().join("r.toml"), edited).expect("edit");
    let reason = format!("aborting: the password {secret} was leaked in chat");
    let done = s.cmd(&["abandon", &run, "--reason", &reason], &env);
    assert_eq!(done.code, 0, "{done:?}");
    assert!(done.stderr.contains("the reason was not journaled"), "{}", done.stderr);
    let journal = s.audit(&run);
    assert!(journal.contains("run_abandoned"), "{journal}");
    assert!(!journal.contains(secret), "the secret reached the journal: {journal}");
    let store = std::fs::read(s.state()).expect("store");
    assert!(
        !store.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is in the store's file"
    );
}
