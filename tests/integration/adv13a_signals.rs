//! Red team adv13a: Ctrl-C / SIGTERM during the unwind phase and at a step's precondition.
//! These tests failed on 2792038 (findings 1-3: a signal was recorded as a failure); the
//! rule they hold is ARCHITECTURE.md's "A signal is a stop cause, never a failure".

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::bin;

fn engine(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .args(["--state", "state.db", "--as", "oncall"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .env("XDG_STATE_HOME", dir.join("host"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn wait_for(path: &Path) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
}

fn run_id(dir: &Path) -> String {
    std::fs::read_dir(dir.join("runs"))
        .expect("runs")
        .next()
        .expect("a run")
        .expect("entry")
        .file_name()
        .into_string()
        .expect("utf-8")
}

fn count(dir: &Path, line: &str) -> usize {
    std::fs::read_to_string(dir.join("trace")).unwrap_or_default().lines().filter(|l| *l == line).count()
}

/// Finding 1: a non-idempotent compensation cut off by SIGTERM must be in doubt: the run is
/// interrupted (130), and `compensate` waits for a decision instead of running it again.
#[test]
fn a_compensation_cut_off_by_sigterm_is_in_doubt_not_run_again() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        d.path().join("r.toml"),
        r#"[runbook]
name = "comp-sigterm"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo undo-start >> trace; touch reached; sleep 30; echo undo-end >> trace" }

[steps.boom]
needs = ["create"]
run = "exit 3"
"#,
    )
    .expect("runbook");
    let child = engine(d.path(), &["run", "r.toml", "--yes"]).spawn().expect("run");
    wait_for(&d.path().join("reached"));
    sigterm(&child);
    let first = child.wait_with_output().expect("wait");
    let run = run_id(d.path());
    let again = engine(d.path(), &["compensate", &run, "--yes"]).output().expect("compensate");
    assert_eq!(
        count(d.path(), "undo-start"),
        1,
        "the undo ran again without a decision: {}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_ne!(again.status.code(), Some(0));
    assert_eq!(
        first.status.code(),
        Some(130),
        "an interruption exits 130: {}",
        String::from_utf8_lossy(&first.stdout)
    );
}

/// Finding 3: SIGTERM during `finally` interrupts the run (130, resumable), and no later
/// `finally` step starts after the signal.
#[test]
fn sigterm_during_finally_interrupts_the_run() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        d.path().join("r.toml"),
        r#"[runbook]
name = "finally-sigterm"

[steps.work]
run = "echo work >> trace"

[finally.release_lock]
run = "echo release-start >> trace; touch reached; sleep 30; echo release-end >> trace"

[finally.notify]
run = "echo notify >> trace"
"#,
    )
    .expect("runbook");
    let child = engine(d.path(), &["run", "r.toml", "--yes"]).spawn().expect("run");
    wait_for(&d.path().join("reached"));
    sigterm(&child);
    let first = child.wait_with_output().expect("wait");
    let audit = engine(d.path(), &["audit", &run_id(d.path())]).output().expect("audit");
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(!audit.contains("step_started notify"), "a finally step started after the signal:\n{audit}");
    assert!(audit.contains("run_interrupted"), "the interruption is journaled:\n{audit}");
    assert_eq!(first.status.code(), Some(130));
}

/// Finding 2: SIGTERM while a step's precondition is checked is an interruption, not a step
/// failure: `on-failure = "compensate"` must not undo `a`.
#[test]
fn sigterm_at_a_precondition_does_not_compensate() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        d.path().join("r.toml"),
        r#"[runbook]
name = "pre-sigterm"

[steps.a]
run = "echo a >> trace"
compensate = { run = "echo UNDO-a >> trace" }

[steps.b]
needs = ["a"]
run = "echo b >> trace"
preconditions = { slow = { run = "touch reached; sleep 20" } }
"#,
    )
    .expect("runbook");
    let child = engine(d.path(), &["run", "r.toml", "--yes"]).spawn().expect("run");
    wait_for(&d.path().join("reached"));
    sigterm(&child);
    let first = child.wait_with_output().expect("wait");
    let audit = engine(d.path(), &["audit", &run_id(d.path())]).output().expect("audit");
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(!audit.contains("compensation_started"), "Ctrl-C started an undo:\n{audit}");
    assert_eq!(first.status.code(), Some(130), "{audit}");
}

/// Finding 1 (variant, fixed with it): a non-idempotent compensation ended by its timeout
/// may have done part of its work, like a timed-out main step: `compensate` waits for a
/// decision instead of running it again.
#[test]
fn a_compensation_ended_by_its_timeout_waits_for_a_decision() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        d.path().join("r.toml"),
        r#"[runbook]
name = "comp-timeout"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo undo-start >> trace; sleep 5; echo undo-end >> trace", timeout = "1s" }

[steps.boom]
needs = ["create"]
run = "exit 3"
"#,
    )
    .expect("runbook");
    let first = engine(d.path(), &["run", "r.toml", "--yes"]).output().expect("run");
    assert_eq!(first.status.code(), Some(4), "{}", String::from_utf8_lossy(&first.stdout));
    let run = run_id(d.path());
    let again = engine(d.path(), &["compensate", &run, "--yes"]).output().expect("compensate");
    let err = String::from_utf8_lossy(&again.stderr).into_owned();
    assert_eq!(count(d.path(), "undo-start"), 1, "the undo ran again without a decision: {err}");
    assert_eq!(again.status.code(), Some(4), "{err}");
    assert!(err.contains("compensations in doubt") && err.contains("ended by their timeout"), "{err}");
    // The operator can decide about it.
    let skip =
        engine(d.path(), &["compensate", &run, "--yes", "--skip", "create", "--reason", "undone by hand"])
            .output()
            .expect("compensate --skip");
    assert_eq!(skip.status.code(), Some(1), "{}", String::from_utf8_lossy(&skip.stderr));
    assert_eq!(count(d.path(), "undo-start"), 1);
}

/// Finding 7: `compensate` ends a suspended run; its approval is settled (skipped), and a
/// decision on the finished run is refused.
#[test]
fn an_approval_left_open_by_compensate_cannot_be_decided() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        d.path().join("r.toml"),
        r#"[runbook]
name = "gated"

[steps.prep]
run = "echo prep >> trace"
compensate = { run = "echo undo-prep >> trace" }

[steps.gate]
needs = ["prep"]
approval = { prompt = "go?" }

[steps.after]
needs = ["gate"]
run = "echo after >> trace"
"#,
    )
    .expect("runbook");
    let first = engine(d.path(), &["run", "r.toml", "--yes"]).output().expect("run");
    assert_eq!(first.status.code(), Some(4), "{}", String::from_utf8_lossy(&first.stderr));
    let run = run_id(d.path());
    let undo = engine(d.path(), &["compensate", &run, "--yes"]).output().expect("compensate");
    assert_eq!(undo.status.code(), Some(1), "{}", String::from_utf8_lossy(&undo.stderr));
    let approve = Command::new(bin())
        .args(["approve", &run, "gate", "--state", "state.db", "--as", "bo"])
        .current_dir(d.path())
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .env("XDG_STATE_HOME", d.path().join("host"))
        .stdin(Stdio::null())
        .output()
        .expect("approve");
    let err = String::from_utf8_lossy(&approve.stderr).into_owned();
    assert_ne!(approve.status.code(), Some(0), "an approval counted on a finished run: {err}");
    assert!(err.contains("has finished"), "{err}");
    let audit = engine(d.path(), &["audit", &run]).output().expect("audit");
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(audit.contains("step_skipped gate"), "the open approval is settled:\n{audit}");
    assert!(!audit.contains("approval_granted"), "{audit}");
}
