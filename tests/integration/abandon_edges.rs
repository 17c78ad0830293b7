//! The edges of `abandon` and of the decisions on a run that has ended (red team adv14a
//! F2, F3, F5; /work/prompts/adv14a-findings.md). Each test failed on 79c2a88.

use crate::support::{Scratch, kill9};

const LOCKED: &str = r#"[runbook]
name = "locked"
lock = "env-prod"

[steps.a]
run = "touch started; sleep 30"
"#;

const OTHER: &str = r#"[runbook]
name = "other"
lock = "env-prod"

[steps.b]
run = "touch other-ran"
"#;

/// A run of [`LOCKED`] whose engine was killed (-9) during its step, holding `env-prod`;
/// `other.toml` wants the same lock.
fn dead_locked_run() -> (Scratch, String) {
    let s = Scratch::new(LOCKED);
    std::fs::write(s.path().join("other.toml"), OTHER).expect("other");
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    s.wait_for("started", "");
    kill9(engine.id());
    let _ = engine.wait();
    let run = s.latest_run();
    (s, run)
}

#[test]
fn f2_a_dead_run_whose_runbook_changed_can_never_be_abandoned() {
    let (s, run) = dead_locked_run();
    // The runbook is fixed during the incident.
    std::fs::write(s.path().join("r.toml"), format!("{LOCKED}# fixed\n")).expect("edit");
    let abandon = s.cmd(&["abandon", &run, "--reason", "engine died; runbook fixed"], &[]);
    let other = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(
        (abandon.code, other.code),
        (0, 0),
        "abandon:\n{}{}\nother run:\n{}",
        abandon.stdout,
        abandon.stderr,
        other.stderr
    );
}

/// F3 (abandon): `abandon --compensate` on a run that SUCCEEDED undoes it and rewrites its
/// status to `abandoned`; without `--compensate` the same run is refused ("has finished
/// (succeeded); there is nothing to abandon"). The finished-check comes after the
/// compensations. Expected: refused before anything runs, nothing undone.
const SUCCEEDS: &str = r#"[runbook]
name = "ok"

[steps.a]
run = "echo a >> a.log"
compensate = { run = "echo undo-a >> undo.log" }
"#;

/// F2, the runbook deleted: `abandon` needs nothing of it.
#[test]
fn a_dead_run_whose_runbook_was_deleted_is_abandoned_and_frees_its_lock() {
    let (s, run) = dead_locked_run();
    std::fs::remove_file(s.path().join("r.toml")).expect("rm");
    let abandon = s.cmd(
        &["abandon", &run, "--reason", "engine died; runbook gone"],
        &[("RUNBOOK_OPERATOR", "alice@ops")],
    );
    let other = s.cmd(&["run", "other.toml", "--yes"], &[]);
    assert_eq!(
        (abandon.code, other.code),
        (0, 0),
        "abandon:\n{}{}\nother run:\n{}",
        abandon.stdout,
        abandon.stderr,
        other.stderr
    );
    assert!(s.path().join("other-ran").exists());
    let last = s.events(&run).last().cloned().unwrap_or_default().0;
    assert_eq!(last, "run_abandoned");
    // No secret could be known: the reason is not journaled, and the operator is told.
    assert!(!s.audit(&run).contains("runbook gone"), "{}", s.audit(&run));
    let dir = s.path().display().to_string();
    insta::assert_snapshot!(
        "abandon_runbook_gone",
        format!("{}{}", abandon.stdout, abandon.stderr).replace(&run, "[run]").replace(&dir, "[dir]")
    );
}

#[test]
fn f3_abandon_compensate_refuses_a_succeeded_run_before_anything_runs() {
    let s = Scratch::new(SUCCEEDS);
    let first = s.run(&["--yes"], &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let run = s.latest_run();
    let plain = s.cmd(&["abandon", &run, "--reason", "oops"], &[]);
    assert_ne!(plain.code, 0, "a succeeded run is refused without --compensate");
    let out = s.cmd(&["abandon", &run, "--reason", "oops", "--compensate", "--yes"], &[]);
    let runs = s.cmd(&["runs"], &[]).stdout;
    insta::assert_snapshot!("abandon_compensate_succeeded", out.stderr.replace(&run, "[run]"));
    assert!(
        out.code != 0 && s.read("undo.log").is_empty() && runs.contains("succeeded"),
        "a finished (succeeded) run was compensated and abandoned: exit {}\n{}{}\nundo.log: {:?}\nruns:\n{runs}",
        out.code,
        out.stdout,
        out.stderr,
        s.read("undo.log")
    );
}

const SUSPENDS: &str = r#"[runbook]
name = "gated"
lock = "env-f5"

[steps.a]
run = "echo a >> a.log"

[steps.gate]
needs = ["a"]
[steps.gate.approval]
prompt = "go?"
approvers = ["bob"]

[steps.c]
needs = ["gate"]
run = "echo c-ran >> c.log"
"#;

#[test]
fn f5_an_abandoned_run_accepts_an_approval_and_stops_being_abandoned() {
    let s = Scratch::new(SUSPENDS);
    let first = s.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]);
    assert_eq!(first.code, 4, "suspended at the approval: {}{}", first.stdout, first.stderr);
    let run = s.latest_run();
    let ab = s.cmd(&["abandon", &run, "--reason", "stop"], &[("RUNBOOK_OPERATOR", "alice")]);
    assert_eq!(ab.code, 0, "{}", ab.stderr);
    let approve = s.cmd(&["approve", &run, "gate"], &[("RUNBOOK_OPERATOR", "bob")]);
    let runs = s.cmd(&["runs"], &[]);
    let after: Vec<String> = s.events(&run).into_iter().map(|(k, _)| k).collect();
    assert!(
        approve.code != 0
            && runs.stdout.contains("abandoned")
            && after.last().map(String::as_str) == Some("run_abandoned"),
        "approve on an abandoned run: exit {}\n{}\njournal: {after:?}\nruns:\n{}{}",
        approve.code,
        approve.stdout,
        runs.stdout,
        runs.stderr
    );
}

/// The gated runbook whose last step fails when `fail` exists: each terminal state is
/// reachable through the real binary.
const GATED_MAY_FAIL: &str = r#"[runbook]
name = "gated"
lock = "env-corpus"

[steps.a]
run = "echo a >> a.log"
compensate = { run = "echo undo-a >> undo.log" }

[steps.gate]
needs = ["a"]
[steps.gate.approval]
prompt = "go?"
approvers = ["bob"]

[steps.c]
needs = ["gate"]
run = "echo c-ran >> c.log; test ! -f fail"
"#;

/// A run of [`GATED_MAY_FAIL`] brought to `terminal` (succeeded, failed, abandoned).
fn run_ended(terminal: &str) -> (Scratch, String) {
    let s = Scratch::new(GATED_MAY_FAIL);
    if terminal == "failed" {
        std::fs::write(s.path().join("fail"), "").expect("fail");
    }
    let alice = [("RUNBOOK_OPERATOR", "alice")];
    let first = s.run(&["--yes"], &alice);
    assert_eq!(first.code, 4, "suspended at the approval: {}{}", first.stdout, first.stderr);
    let run = s.latest_run();
    if terminal == "abandoned" {
        let ab = s.cmd(&["abandon", &run, "--reason", "stop"], &alice);
        assert_eq!(ab.code, 0, "{}", ab.stderr);
    } else {
        let ok = s.cmd(&["approve", &run, "gate"], &[("RUNBOOK_OPERATOR", "bob")]);
        assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
        let resumed = s.cmd(&["resume", &run, "--yes"], &alice);
        let want = if terminal == "failed" { 1 } else { 0 };
        assert_eq!(resumed.code, want, "{}{}", resumed.stdout, resumed.stderr);
    }
    let runs = s.cmd(&["runs"], &[]).stdout;
    assert!(runs.contains(terminal), "{terminal}:\n{runs}");
    (s, run)
}

/// Every decision command on every terminal state (issue 14, F5's class): refused, nothing
/// journaled, nothing run, the run's status kept. `compensate` of a succeeded or failed
/// run is the one decision that still applies (undoing a finished run, asked by name), and
/// `resume` of a failed one (new attempts); an abandoned run takes none.
#[test]
fn no_decision_reopens_a_run_that_has_ended() {
    let commands: [(&str, &[&str]); 6] = [
        ("approve", &["approve", "RUN", "gate"]),
        ("reject", &["reject", "RUN", "gate", "--reason", "no"]),
        ("resume", &["resume", "RUN", "--yes"]),
        ("compensate", &["compensate", "RUN", "--yes"]),
        ("abandon", &["abandon", "RUN", "--reason", "stop"]),
        ("abandon --compensate", &["abandon", "RUN", "--reason", "stop", "--compensate", "--yes"]),
    ];
    let mut wrong = Vec::new();
    for terminal in ["succeeded", "failed", "abandoned"] {
        for (name, argv) in commands {
            let still_open =
                matches!((terminal, name), ("succeeded" | "failed", "compensate") | ("failed", "resume"));
            if still_open {
                continue;
            }
            let (s, run) = run_ended(terminal);
            let before = s.events(&run);
            let undo_before = s.read("undo.log");
            let c_before = s.read("c.log");
            let argv: Vec<&str> = argv.iter().map(|a| if *a == "RUN" { run.as_str() } else { a }).collect();
            let out = s.cmd(&argv, &[("RUNBOOK_OPERATOR", "bob")]);
            let after = s.events(&run);
            let runs = s.cmd(&["runs"], &[]).stdout;
            if out.code == 0
                || after != before
                || s.read("undo.log") != undo_before
                || s.read("c.log") != c_before
                || !runs.contains(terminal)
            {
                wrong.push(format!(
                    "{name} on a {terminal} run: exit {}\n{}{}\njournal grew: {:?}\n",
                    out.code,
                    out.stdout,
                    out.stderr,
                    &after[before.len().min(after.len())..]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Red team adv20-5: `--reason-file` naming a FIFO (nobody writing) blocked in `open(2)` for
/// ever, with nothing said; every other file option refuses a FIFO at once. Now the reason
/// file is read as every file the CLI reads: a regular file, opened without blocking.
#[test]
fn a_reason_file_that_is_a_fifo_is_refused_at_once() {
    let s = Scratch::new(LOCKED);
    let fifo = s.path().join("reason");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let fifo = fifo.display().to_string();
    for extra in [&[][..], &["--compensate", "--yes"][..]] {
        let mut args = vec!["abandon", "20261207T000000Z-00000000", "--reason-file", &fifo];
        args.extend_from_slice(extra);
        // `timeout` bounds the old hang; the refusal comes at once.
        let (bin, state) = (crate::support::bin(), s.state());
        let mut full = vec!["30", bin.as_str()];
        full.extend(args.iter().copied());
        full.extend(["--state", state.as_str()]);
        let out = std::process::Command::new("timeout")
            .args(&full)
            .current_dir(s.path())
            .output()
            .expect("timeout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(124), "it hung on the FIFO");
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("FIFO"), "{stderr}");
    }
}
