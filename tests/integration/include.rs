//! `runbook` steps: another runbook run as one step, journaled under the including run,
//! its compensations joining the including run's, resumable step by step.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Output, run_in};

const CHILD: &str = r#"[runbook]
name = "child"
[params.name]
type = "string"
[steps.one]
run = "echo {{ params.name }} one >> trace; echo stamp={{ params.name }}-1 >> \"$RUNBOOK_OUTPUT\""
outputs = ["stamp"]
compensate = { run = "echo undo {{ params.name }} one '('{{ steps.one.outputs.stamp }}')' >> trace" }
[steps.two]
run = "echo {{ params.name }} two >> trace; test ! -e fail-{{ params.name }}"
compensate = { run = "echo undo {{ params.name }} two >> trace" }
"#;

fn sandbox(parent: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("lib")).expect("lib");
    std::fs::write(dir.path().join("lib/child.toml"), CHILD).expect("child");
    std::fs::write(dir.path().join("parent.toml"), parent).expect("parent");
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--state", "state.db"]);
    run_in(dir, &all)
}

fn trace(dir: &Path) -> String {
    // Steps run in the folder of their runbook: the child's trace is in lib/.
    std::fs::read_to_string(dir.join("lib/trace")).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("trace")).unwrap_or_default()
}

/// Start `runbook run parent.toml` and wait until `marker` exists.
fn start_until(dir: &Path, marker: &str) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "parent.toml", "--state", "state.db"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    for _ in 0..500 {
        if dir.join(marker).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dir.join(marker).exists(), "{marker} appeared");
    child
}

const PARENT: &str = r#"[runbook]
name = "parent"
[steps.first]
run = "echo first >> lib/trace"
compensate = { run = "echo 'undo first' >> lib/trace" }
[steps.inner]
runbook = { file = "lib/child.toml", params = { name = "api" } }
outputs = ["stamp"]
[steps.last]
run = "echo last {{ steps.inner.outputs.stamp }} >> lib/trace; test ! -e lib/fail-last"
"#;

#[test]
fn an_included_runbook_runs_as_one_step_journaled_under_it() {
    let dir = sandbox(PARENT);
    let out = run(dir.path(), &["run", "parent.toml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(trace(dir.path()), "first\napi one\napi two\nlast api-1\n");
    assert!(out.stdout.contains("ok inner/one"), "{}", out.stdout);
    let id = crate::support::latest_run_id(dir.path(), &dir.path().join("state.db")).expect("run");
    let audit = run(dir.path(), &["audit", &id, "--format", "jsonl"]).stdout;
    let steps: Vec<String> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "step_succeeded")
        .filter_map(|v| v["step"].as_str().map(str::to_string))
        .collect();
    assert_eq!(steps, ["first", "inner/one", "inner/two", "inner", "last"]);
    assert_eq!(run(dir.path(), &["audit", "verify", &id]).code, 0);
}

#[test]
fn a_later_failure_compensates_the_included_steps_in_reverse() {
    let dir = sandbox(PARENT);
    std::fs::write(dir.path().join("lib/fail-last"), "").expect("marker");
    let out = run(dir.path(), &["run", "parent.toml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        trace(dir.path()),
        "first\napi one\napi two\nlast api-1\nundo api two\nundo api one (api-1)\nundo first\n"
    );
}

#[test]
fn a_failure_inside_compensates_inside_then_outside() {
    let dir = sandbox(PARENT);
    std::fs::write(dir.path().join("lib/fail-api"), "").expect("marker");
    let out = run(dir.path(), &["run", "parent.toml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAILED inner: the included runbook failed"), "{}", out.stdout);
    // The child undid its own completed step; the parent then undid its own.
    assert_eq!(trace(dir.path()), "first\napi one\napi two\nundo api one (api-1)\nundo first\n");
}

#[test]
fn an_included_runbook_resumes_after_the_engine_is_killed() {
    let parent = r#"[runbook]
name = "parent"
[steps.inner]
runbook = { file = "lib/slow.toml" }
[steps.after]
run = "echo after >> lib/trace"
"#;
    let dir = sandbox(parent);
    std::fs::write(
        dir.path().join("lib/slow.toml"),
        r#"[runbook]
name = "slow"
[steps.a]
run = "echo a >> trace"
[steps.b]
run = "touch started-b; while [ ! -e release ]; do sleep 0.05; done; echo b >> trace"
idempotent = true
[steps.c]
run = "echo c >> trace"
"#,
    )
    .expect("slow");
    let mut child = start_until(dir.path(), "lib/started-b");
    child.kill().expect("kill");
    let _ = child.wait();
    std::fs::write(dir.path().join("lib/release"), "").expect("release");
    let id = crate::support::latest_run_id(dir.path(), &dir.path().join("state.db")).expect("run");
    let out = run(dir.path(), &["resume", &id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // `a` succeeded before the kill and never runs again; `b` was idempotent and in doubt.
    assert_eq!(trace(dir.path()), "a\nb\nc\nafter\n");
    assert!(out.stdout.contains("inner/b"), "{}", out.stdout);
}

#[test]
fn a_non_idempotent_included_step_in_doubt_waits_for_a_decision() {
    let parent = "[runbook]\nname = \"parent\"\n[steps.inner]\nrunbook = { file = \"lib/slow.toml\" }\n";
    let dir = sandbox(parent);
    std::fs::write(
        dir.path().join("lib/slow.toml"),
        "[runbook]\nname = \"slow\"\n[steps.b]\nrun = \"touch started-b; while [ ! -e release ]; do sleep 0.05; done; echo b >> trace\"\n",
    )
    .expect("slow");
    let mut child = start_until(dir.path(), "lib/started-b");
    child.kill().expect("kill");
    let _ = child.wait();
    let id = crate::support::latest_run_id(dir.path(), &dir.path().join("state.db")).expect("run");
    let out = run(dir.path(), &["resume", &id]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("inner/b"), "{}", out.stderr);
    let out = run(dir.path(), &["resume", &id, "--skip", "inner/b", "--reason", "ran it by hand"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(trace(dir.path()), "", "the skipped step did not run again");
}

#[test]
fn an_approval_inside_an_included_runbook_suspends_the_whole_run() {
    let parent = "[runbook]\nname = \"parent\"\n[steps.inner]\nrunbook = { file = \"lib/gated.toml\" }\n[steps.after]\nrun = \"echo after >> lib/trace\"\n";
    let dir = sandbox(parent);
    std::fs::write(
        dir.path().join("lib/gated.toml"),
        "[runbook]\nname = \"gated\"\n[steps.before]\nrun = \"echo before >> trace\"\n[steps.go]\napproval = { prompt = \"Go on?\", approvers = [\"ben\"], inputs = { ticket = { type = \"string\" } } }\n[steps.done]\nrun = \"echo done {{ steps.go.outputs.ticket }} >> trace\"\n",
    )
    .expect("gated");
    let out = run(dir.path(), &["run", "parent.toml", "--as", "ana"]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("suspended: waiting for approval of inner/go"), "{}", out.stdout);
    let id = crate::support::latest_run_id(dir.path(), &dir.path().join("state.db")).expect("run");
    assert_eq!(run(dir.path(), &["approve", &id, "inner/go", "--as", "ana"]).code, 3, "not an approver");
    assert!(out.stdout.contains("`runbook approve"), "{}", out.stdout);
    // The note names the path, the input the approval requires, and the store (issue 14).
    let state = dir.path().canonicalize().expect("dir").join("state.db");
    assert!(
        out.stdout.contains(&format!(
            "runbook approve {id} inner/go --input 'ticket=<string>' --state {}`",
            state.display()
        )),
        "the note names the path: {}",
        out.stdout
    );
    assert_eq!(
        run(dir.path(), &["approve", &id, "inner/go", "--as", "ben", "--input", "ticket=CHG-1"]).code,
        0
    );
    let out = run(dir.path(), &["resume", &id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(trace(dir.path()), "before\ndone CHG-1\nafter\n");

    // Attached: the run continues by itself when the approval arrives from elsewhere.
    std::fs::remove_file(dir.path().join("lib/trace")).expect("reset");
    let first = id.clone();
    let mut attached = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "parent.toml", "--wait", "--state", "state.db", "--as", "ana"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let mut id = String::new();
    for _ in 0..500 {
        if let Some(latest) = crate::support::latest_run_id(dir.path(), &dir.path().join("state.db"))
            && latest != first
            && run(dir.path(), &["audit", &latest]).stdout.contains("approval_requested")
        {
            id = latest;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        run(dir.path(), &["approve", &id, "inner/go", "--as", "ben", "--input", "ticket=CHG-2"]).code,
        0
    );
    let status = attached.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(trace(dir.path()), "before\ndone CHG-2\nafter\n");
}

#[test]
fn secrets_stay_in_their_runbook_and_a_child_beside_its_parent_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The child sits beside the parent, and the parent is named without a folder.
    std::fs::write(
        dir.path().join("parent.toml"),
        "[runbook]\nname = \"parent\"\n[secrets.PARENT_TOK]\nenv = \"PARENT_TOK\"\n[steps.own]\nrun = \"echo own=${CHILD_KEY:-unset} >> trace\"\n[steps.inner]\nrunbook = { file = \"child.toml\" }\n",
    )
    .expect("parent");
    std::fs::write(
        dir.path().join("child.toml"),
        "[runbook]\nname = \"child\"\n[secrets.API_KEY]\nenv = \"CHILD_KEY\"\n[steps.peek]\nrun = \"echo peek=${PARENT_TOK:-unset} key=$KEY >> trace; echo key=$KEY\"\nenv = { KEY = \"{{ secrets.API_KEY }}\" }\n",
    )
    .expect("child");
    let out = crate::support::run_in_with_env(
        dir.path(),
        &["run", "parent.toml", "--state", "state.db"],
        &[("PARENT_TOK", "parent-secret-value-123"), ("CHILD_KEY", "child-secret-value-456")],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // A secret's variable reaches no step that does not pass it in `env`, at any level.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("trace")).unwrap_or_default(),
        "own=unset\npeek=unset key=child-secret-value-456\n"
    );
    assert!(out.stdout.contains("inner/peek | key=<secret:API_KEY>"), "{}", out.stdout);
    for file in crate::support::files(&dir.path().join("runs"), "") {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(!text.contains("child-secret-value-456"), "{} holds the child's secret", file.display());
    }
}

#[test]
fn a_value_of_the_wrong_type_for_an_included_runbook_is_one_clear_error() {
    let parent = "[runbook]\nname = \"parent\"\n[params.count]\ntype = \"string\"\ndefault = \"three\"\n[steps.inner]\nrunbook = { file = \"lib/count.toml\", params = { count = \"{{ params.count }}\" } }\n";
    let dir = sandbox(parent);
    std::fs::write(
        dir.path().join("lib/count.toml"),
        "[runbook]\nname = \"count\"\n[params.count]\ntype = \"integer\"\n[steps.show]\ncmd = [\"echo\", \"count {{ params.count }}\"]\n",
    )
    .expect("child");
    for cmd in ["plan", "run"] {
        let mut args = vec![cmd, "parent.toml"];
        if cmd == "run" {
            args.extend(["--state", "state.db"]);
        }
        let out = run_in(dir.path(), &args);
        assert_eq!(out.code, 3, "{cmd}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(
                "parameter `count` of runbook `lib/count.toml`: expected an integer, found `three`"
            ),
            "{}",
            out.stderr
        );
        assert_eq!(out.stderr.matches("error[RB").count(), 1, "one error, no noise: {}", out.stderr);
    }
}

/// An included runbook that fails and undoes itself (its compensation kills the engine the
/// first time, when asked), under a `runbook` step with `on-failure = "continue"`.
fn undoing_parent(kill: bool) -> tempfile::TempDir {
    let parent = r#"[runbook]
name = "parent"
[steps.inner]
runbook = { file = "lib/undo.toml" }
on-failure = "continue"
[steps.gate]
needs = []
approval = { prompt = "Go on?", approvers = ["ben"] }
[steps.after]
needs = ["gate"]
run = "echo after >> lib/trace"
"#;
    let dir = sandbox(parent);
    let undo = format!(
        "[runbook]\nname = \"undo\"\n[steps.change]\nrun = \"echo change >> trace\"\ncompensate = {{ run = \"echo undo >> trace; {}\" }}\n[steps.boom]\nneeds = [\"change\"]\nrun = \"echo boom >> trace; exit 1\"\n",
        if kill { crate::resume::KILL_ENGINE_ONCE } else { "true" }
    );
    std::fs::write(dir.path().join("lib/undo.toml"), undo).expect("undo");
    dir
}

/// The included runbook undid itself and its step ended `failed` under `continue`: the run
/// went on to its approval and suspended. `resume` goes on too (as an attached engine
/// would), and never runs the included runbook, or any of its steps, again: what it did is
/// undone. Refused before (`resume` counted the included runbook's compensations as the
/// run's: "was compensating when the engine stopped").
#[test]
fn a_run_whose_included_runbook_undid_itself_under_continue_resumes_without_running_it_again() {
    let dir = undoing_parent(false);
    let out = run(dir.path(), &["run", "parent.toml", "--as", "ana"]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("suspended: waiting for approval of gate"), "{}", out.stdout);
    assert_eq!(trace(dir.path()), "change\nboom\nundo\n");
    let id = crate::support::latest_run_id(dir.path(), &dir.path().join("state.db")).expect("run");
    assert_eq!(run(dir.path(), &["approve", &id, "gate", "--as", "ben"]).code, 0);
    let out = run(dir.path(), &["resume", &id]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("the runbook included by inner undid itself"), "{}", out.stderr);
    assert_eq!(trace(dir.path()), "change\nboom\nundo\nafter\n", "nothing of `inner` ran again");
    let audit = run(dir.path(), &["audit", &id, "--format", "jsonl"]).stdout;
    let started = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "step_started" && v["step"].as_str().is_some_and(|s| s.starts_with("inner")))
        .count();
    assert_eq!(started, 3, "inner, inner/change, inner/boom started once each:\n{audit}");
    assert_eq!(run(dir.path(), &["audit", "verify", &id]).code, 0);
}

/// Promise 1 inside an included runbook: the engine died while the included runbook was
/// undoing itself (its step has no end record, its compensation none either). `resume`
/// refuses and `compensate` waits for a decision about the compensation in doubt; nothing
/// runs again without it, and nothing after the included runbook runs.
#[test]
fn a_run_whose_included_runbook_was_interrupted_while_undoing_itself_waits_for_a_decision() {
    let dir = undoing_parent(true);
    let out = run(dir.path(), &["run", "parent.toml", "--as", "ana"]);
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 4, "the engine was killed, not suspended: {}{}", out.stdout, out.stderr);
    assert_eq!(trace(dir.path()), "change\nboom\nundo\n");
    let id = crate::support::latest_run_id(dir.path(), &dir.path().join("state.db")).expect("run");
    let out = run(dir.path(), &["resume", &id]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("was compensating when the engine stopped"), "{}", out.stderr);
    assert!(out.stderr.contains("included by inner"), "{}", out.stderr);
    let out = run(dir.path(), &["compensate", &id, "--yes"]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("inner/change"), "{}", out.stderr);
    assert_eq!(trace(dir.path()), "change\nboom\nundo\n", "nothing ran again without a decision");
    let out = run(dir.path(), &["compensate", &id, "--yes", "--skip", "inner/change", "--reason", "undone"]);
    assert!(out.code == 0 || out.code == 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(trace(dir.path()), "change\nboom\nundo\n", "the skipped compensation did not run again");
    assert_eq!(run(dir.path(), &["audit", "verify", &id]).code, 0);
}
