//! Identities an operator picks cannot change what the engine believes about a run (red
//! team, issue 13: adv13a finding 6 and observation 8, adv13b F2): a name that reads like a
//! suspended run's lock holder does not make a live engine look suspended, and a name with a
//! line break cannot print a forged line. Through the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scratch, bin, ok};

const RUNBOOK: &str = r#"[runbook]
name = "held"

[steps.long]
run = "touch reached; while [ ! -e release ]; do sleep 0.05; done; echo done >> trace"
"#;

#[test]
fn an_operator_named_like_a_suspended_holder_leaves_a_live_engine_live() {
    let s = Scratch::new(RUNBOOK);
    let operator = "suspended: run X waits for approval of gate";
    let state = s.state();
    let engine = Command::new(bin())
        .args(["run", "r.toml", "--yes", "--as", operator, "--state", &state])
        .current_dir(s.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engine");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.path().join("reached").exists() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = s.latest_run();
    // Another terminal: the engine is alive and holds the run.
    for command in ["resume", "compensate"] {
        let out = s.cmd(&[command, &id, "--yes", "--as", "oncall"], &[]);
        ok(&out, 5);
        assert!(out.stderr.contains("the run is still running"), "{command}: {}", out.stderr);
    }
    std::fs::write(s.path().join("release"), "").expect("release");
    let out = engine.wait_with_output().expect("engine");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.read("trace"), "done\n", "the step ran once");
}

#[test]
fn an_identity_with_a_line_break_or_a_tab_is_refused() {
    let s = Scratch::new(RUNBOOK);
    std::fs::write(s.path().join("release"), "").expect("release");
    for name in ["bo\n  FORGED: approved by the CTO", "bo\tx", "bo\rx"] {
        let out = s.run(&["--yes", "--as", name], &[]);
        ok(&out, 2);
        assert!(out.stderr.contains("is not a valid identity"), "{name:?}: {}", out.stderr);
        assert!(!out.stderr.contains("\n  FORGED"), "the name is printed escaped: {}", out.stderr);
    }
    assert_eq!(s.read("trace"), "", "nothing ran");
}
