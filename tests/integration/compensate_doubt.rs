//! Issue 12, red team (data finding 3): `runbook compensate` after the engine died left the
//! main steps in doubt alone ("it is not known whether they ran") and undid the others, so
//! a restore that had committed stayed live under code that was put back, or a push that
//! had reached origin stayed published. A step in doubt that has a compensation now waits
//! for the operator's recorded decision: `--undo STEP` (it took effect: undo it) or
//! `--skip STEP` (it did not: leave it); an idempotent one as well, since running again
//! does not say whether the first attempt took effect.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, ok};

const RUNBOOK: &str = r#"[runbook]
name = "undo-in-doubt"

[defaults]
on-failure = "compensate"

[steps.announce]
run = "echo announce >> trace"
compensate = { run = "echo undo-announce >> trace" }

[steps.restore]
needs = ["announce"]
run = "echo restore-took-effect >> trace; touch reached; while [ ! -e release ]; do sleep 0.05; done"
compensate = { run = "echo undo-restore >> trace" }
IDEMPOTENT

[steps.after]
needs = ["restore"]
run = "true"
"#;

fn runbook(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .args(["--state", "state.db", "--as", "oncall"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn out(dir: &Path, args: &[&str]) -> crate::support::Output {
    let o = runbook(dir, args).output().expect("runbook");
    crate::support::Output {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn trace(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("trace")).unwrap_or_default().lines().map(str::to_string).collect()
}

/// A run killed (SIGKILL) while `restore` runs, after it took effect; its id.
fn killed_during_restore(dir: &Path, idempotent: bool) -> String {
    let text = RUNBOOK.replace("IDEMPOTENT", if idempotent { "idempotent = true" } else { "" });
    std::fs::write(dir.join("r.toml"), text).expect("runbook");
    let mut child = runbook(dir, &["run", "r.toml", "--yes"]).spawn().expect("run");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.join("reached").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dir.join("reached").exists(), "the run reached `restore`");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    std::fs::write(dir.join("release"), "").expect("release");
    crate::support::latest_run_id(dir, &dir.join("state.db")).expect("a run")
}

#[test]
fn compensate_waits_for_a_decision_about_a_step_in_doubt_that_has_a_compensation() {
    for idempotent in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let run = killed_during_restore(d, idempotent);
        let refused = out(d, &["compensate", &run, "--yes"]);
        ok(&refused, 4);
        assert!(refused.stderr.contains("restore"), "{}", refused.stderr);
        assert!(refused.stderr.contains("--undo restore"), "{}", refused.stderr);
        assert!(
            !trace(d).iter().any(|l| l.starts_with("undo-")),
            "nothing was undone before the decision: {:?}",
            trace(d)
        );
        // The operator checked: the restore took effect. It is undone, then the rest.
        let undone =
            out(d, &["compensate", &run, "--yes", "--undo", "restore", "--reason", "the new schema is live"]);
        ok(&undone, 1);
        let undos: Vec<String> = trace(d).into_iter().filter(|l| l.starts_with("undo-")).collect();
        assert_eq!(undos, ["undo-restore", "undo-announce"], "idempotent={idempotent}");
        let audit = out(d, &["audit", &run, "--format", "jsonl"]).stdout;
        assert!(
            audit.lines().any(|l| l.contains("\"operator_decision\"")
                && l.contains("\"undo\"")
                && l.contains("the new schema is live")),
            "{audit}"
        );
        ok(&out(d, &["audit", "verify", &run]), 0);
        let report = out(d, &["report", &run]).stdout;
        assert!(report.contains("restore"), "{report}");
    }
}

#[test]
fn compensate_leaves_a_step_in_doubt_the_operator_says_did_not_take_effect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = killed_during_restore(d, false);
    let left = out(
        d,
        &["compensate", &run, "--yes", "--skip", "restore", "--reason", "it never reached the database"],
    );
    ok(&left, 1);
    let undos: Vec<String> = trace(d).into_iter().filter(|l| l.starts_with("undo-")).collect();
    assert_eq!(undos, ["undo-announce"]);
    // `--undo` is a decision for `compensate` only, and only about a step in doubt.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let run2 = killed_during_restore(dir2.path(), false);
    let wrong = out(dir2.path(), &["resume", &run2, "--yes", "--undo", "restore", "--reason", "x"]);
    ok(&wrong, 2);
    let wrong = out(dir2.path(), &["compensate", &run2, "--yes", "--undo", "announce", "--reason", "x"]);
    ok(&wrong, 2);
    assert!(wrong.stderr.contains("not in doubt"), "{}", wrong.stderr);
}
