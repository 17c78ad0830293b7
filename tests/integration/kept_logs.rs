//! Issue 11, second round (red team F7, F8): the store's copy of a step's log is the output
//! this engine captured and redacted, for the attempts it ran in this stint; never a file
//! that another process wrote in the run folder (a step can write there), and never a
//! replacement for a log the journal already vouches for.

use std::process::Command;

use crate::support::{Scratch, ok};

fn store_logs(scratch: &Scratch, run: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(scratch.state())
        .arg(format!("SELECT step || '.' || attempt || ': ' || body FROM step_logs WHERE run_id = '{run}' ORDER BY step, attempt"))
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn a_step_that_plants_or_rewrites_logs_in_the_run_folder_does_not_reach_the_store() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "planted"

[steps.charge]
run = "echo CHARGED customer 42"

[steps.cleanup]
needs = ["charge"]
run = """
d=$(dirname "$RUNBOOK_OUTPUT")
echo 'out nothing charged' > "$d/charge.1.log"
echo 'out the CISO signed off' > "$d/ciso_signoff.1.log"
echo 'out planted' > "$d/leak.1.log"
echo cleaned
"""
"#,
    );
    let run = scratch.run(&["--yes"], &[]);
    ok(&run, 0);
    let id = scratch.latest_run();
    let kept = store_logs(&scratch, &id);
    assert!(kept.iter().any(|l| l.contains("cleanup.1: out cleaned")), "{kept:?}");
    assert!(
        !kept.iter().any(|l| l.contains("nothing charged") || l.contains("CISO") || l.contains("planted")),
        "{kept:?}"
    );
    // Each file the engine did not write as it is now is named, and left out.
    for file in ["ciso_signoff.1.log", "leak.1.log", "charge.1.log"] {
        assert!(run.stderr.contains(file), "{file} is not noted: {}", run.stderr);
    }
    assert!(run.stderr.contains("changed after this engine wrote it"), "{}", run.stderr);
    // Another host reads the store: nothing of what the step planted.
    std::fs::remove_dir_all(scratch.path().join("state/runs")).expect("remove local logs");
    let logs = scratch.cmd(&["logs", &id], &[]);
    assert!(!logs.stdout.contains("nothing charged") && !logs.stdout.contains("CISO"), "{}", logs.stdout);
    assert!(logs.stdout.contains("cleaned"), "{}", logs.stdout);
    ok(&scratch.cmd(&["audit", "verify", &id], &[]), 0);
}

#[test]
fn resuming_never_replaces_a_log_the_journal_vouches_for() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "resumed"

[steps.charge]
run = "echo CHARGED customer 42"

[steps.ship]
needs = ["charge"]
run = "test -f shipped"
on-failure = "stop"
"#,
    );
    assert_eq!(scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]).code, 1);
    let id = scratch.latest_run();
    assert!(store_logs(&scratch, &id).iter().any(|l| l.contains("CHARGED")));
    // Bob's copy of the run folder says otherwise; he resumes from it.
    let folder = scratch.path().join("state/runs").join(&id);
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("charge.1.log"), "out nothing charged\n").expect("plant");
    std::fs::write(scratch.path().join("shipped"), "").expect("fix");
    let resumed = scratch.cmd(&["resume", &id, "--yes", "--as", "bob"], &[]);
    ok(&resumed, 0);
    let kept = store_logs(&scratch, &id);
    assert!(kept.iter().any(|l| l.contains("charge.1: out CHARGED customer 42")), "{kept:?}");
    assert!(!kept.iter().any(|l| l.contains("nothing charged")), "{kept:?}");
    std::fs::remove_dir_all(scratch.path().join("state/runs")).expect("remove local logs");
    let logs = scratch.cmd(&["logs", &id], &[]);
    assert!(logs.stdout.contains("CHARGED customer 42"), "{}", logs.stdout);
    ok(&scratch.cmd(&["audit", "verify", &id], &[]), 0);
}

/// F4: the "kept before log digests" exception is decided from the journal (`run_started`
/// says whether its engine vouches for every log it keeps), never from the absence of a
/// `log_kept` record: a log planted for a current run that kept none yet is forged.
#[test]
fn a_log_planted_for_a_current_run_without_log_kept_records_is_called_forged() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "waits"

[steps.sign_off]
approval = { prompt = "Go?" }

[steps.a]
needs = ["sign_off"]
run = "echo transfer"
"#,
    );
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "ana")]), 4);
    let id = scratch.latest_run();
    let sql = Command::new("sqlite3")
        .arg(scratch.state())
        .arg(format!(
            "INSERT INTO step_logs (run_id, step, attempt, body) VALUES ('{id}', 'a', 1, 'out transfer completed OK, nothing charged')"
        ))
        .output()
        .expect("sqlite3");
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    let verify = scratch.cmd(&["audit", "verify", &id], &[]);
    assert_eq!(verify.code, 4, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("step_logs"), "{}", verify.stdout);
    let logs = scratch.cmd(&["logs", &id], &[]);
    assert_eq!(logs.code, 4, "{}{}", logs.stdout, logs.stderr);
    assert!(!logs.stdout.contains("nothing charged"), "{}", logs.stdout);
}

/// Minor finding: `logs` prefers the copy the journal vouches for over a local file someone
/// edited, and says that the local file differs.
#[test]
fn logs_prefer_the_vouched_copy_over_an_edited_local_file() {
    let scratch =
        Scratch::new("[runbook]\nname = \"one\"\n\n[steps.charge]\nrun = \"echo CHARGED customer 42\"\n");
    ok(&scratch.run(&["--yes"], &[]), 0);
    let id = scratch.latest_run();
    let file = scratch.path().join("state/runs").join(&id).join("charge.1.log");
    std::fs::write(&file, "out nothing charged\n").expect("edit");
    let logs = scratch.cmd(&["logs", &id], &[]);
    ok(&logs, 0);
    assert!(logs.stdout.contains("CHARGED customer 42"), "{}", logs.stdout);
    assert!(!logs.stdout.contains("nothing charged"), "{}", logs.stdout);
    assert!(logs.stderr.contains("differs from the copy the journal vouches for"), "{}", logs.stderr);
}

/// Issue 12 (point 7, misleading messages): a run that waits for an approval keeps its logs
/// when it suspends; the engine that resumes it must not then warn, for each of them, that
/// "another process" wrote it.
#[test]
fn a_resumed_run_does_not_warn_about_the_logs_its_first_stint_kept() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "suspended"

[steps.before]
run = "echo before the gate"

[steps.gate]
needs = ["before"]
approval = { prompt = "go?", approvers = ["lead"] }

[steps.after]
needs = ["gate"]
run = "echo after the gate"
"#,
    );
    ok(&scratch.run(&["--yes"], &[]), 4);
    let id = scratch.latest_run();
    ok(&scratch.cmd(&["approve", &id, "gate", "--as", "lead"], &[]), 0);
    let resumed = scratch.cmd(&["resume", &id, "--yes"], &[]);
    ok(&resumed, 0);
    assert!(!resumed.stderr.contains("is not kept in the store"), "{}", resumed.stderr);
    let kept = store_logs(&scratch, &id);
    assert!(kept.iter().any(|l| l.contains("before.1: out before the gate")), "{kept:?}");
    assert!(kept.iter().any(|l| l.contains("after.1: out after the gate")), "{kept:?}");
    ok(&scratch.cmd(&["audit", "verify", &id], &[]), 0);
}
