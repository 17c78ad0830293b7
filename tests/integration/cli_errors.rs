//! The runtime errors a user reads, through the real binary: one snapshot per kind of
//! `CliError` that a command line can produce here (engine/cli/error.rs snapshots the
//! others from values). Each snapshot holds the exit code and standard error, with the
//! temp folder shown as `[dir]`.

use crate::support::{Output, Scratch, ok, run_in_with_env};

const RUNBOOK: &str = r#"
[runbook]
name = "errors"

[params.count]
type = "integer"
default = 1

[steps.one]
cmd = ["true"]
"#;

/// Exit code and standard error as the user sees them, the temp folder replaced.
fn shown(scratch: &Scratch, out: &Output) -> String {
    let dir = scratch.path().display().to_string();
    let real = std::fs::canonicalize(scratch.path()).map(|p| p.display().to_string()).unwrap_or_default();
    let text = format!("exit {}\n{}", out.code, out.stderr).replace(&real, "[dir]").replace(&dir, "[dir]");
    assert!(!text.contains("panicked"), "{text}");
    text
}

/// The snapshot `name` of what the user saw, and the exit code.
fn expect(scratch: &Scratch, name: &str, out: &Output, code: i32) {
    insta::assert_snapshot!(name, shown(scratch, out));
    ok(out, code);
}

/// `runbook ARGS` in the scratch folder, without `--state`.
fn bare(scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_in_with_env(scratch.path(), args, env)
}

#[test]
fn runtime_errors_read_as_the_snapshots_say() {
    let s = Scratch::new(RUNBOOK);
    // Before any store exists.
    expect(&s, "no_state_store", &s.cmd(&["show", "r-1"], &[]), 5);
    expect(&s, "bad_identity", &s.cmd(&["runs", "--as", "ana\u{7}"], &[]), 2);
    expect(&s, "usage", &bare(&s, &["audit"], &[]), 2);
    expect(&s, "bad_params", &s.run(&["-p", "count=many", "--yes"], &[]), 3);
    expect(&s, "plan_unreadable", &bare(&s, &["run", "--plan", "missing.json"], &[]), 3);
    expect(&s, "cannot_write_plan", &bare(&s, &["plan", "r.toml", "-o", "no/such/folder/plan.json"], &[]), 5);
    expect(&s, "worker_gone", &s.run(&["--yes"], &[("RUNBOOK_WORKER_PID", "999999999")]), 130);

    let pid = std::process::id().to_string();
    expect(&s, "step_not_started", &bare(&s, &["__tie", &pid, "--", "/no/such/program"], &[]), 127);

    // A finished run, in a store that exists.
    ok(&s.run(&["--yes", "--run-id", "r-done"], &[]), 0);
    expect(&s, "unknown_run", &s.cmd(&["show", "r-unknown"], &[]), 3);
    expect(&s, "finished_run_resumed", &s.cmd(&["resume", "r-done", "--yes"], &[]), 3);
    expect(&s, "journal_cut", &s.cmd(&["resume", "r-done", "--yes", "--expect-hash", "0000"], &[]), 4);
    expect(
        &s,
        "decision_for_a_unit_not_in_doubt",
        &s.cmd(&["compensate", "r-done", "--undo", "one", "--reason", "r", "--yes"], &[]),
        2,
    );

    // A store that is not a database.
    std::fs::write(s.path().join("text.db"), "not a database\n").expect("write");
    expect(&s, "store_unusable", &bare(&s, &["runs", "--state", "text.db"], &[]), 5);

    // A precondition that fails: the executor refuses; nothing ran.
    std::fs::write(
        s.path().join("p.toml"),
        format!(
            "{RUNBOOK}\n[preconditions.never]\ncmd = [\"false\"]\nmessage = \"this check always fails\"\n"
        ),
    )
    .expect("write");
    expect(&s, "precondition_failed", &s.cmd(&["run", "p.toml", "--yes"], &[]), 3);
}

/// Promise 5: a process stopped mid-upgrade (it holds `state.db.migrating` and never lets
/// go) makes opening the store an error after `MIGRATION_WAIT`, with what to do, never a
/// hang and nothing run; once the lock is released the same command upgrades and runs.
/// Before: `migration_lock` blocked on `File::lock` for as long as the holder lived.
#[test]
fn a_schema_upgrade_lock_never_released_is_an_error_not_a_hang() {
    use std::process::{Command, Stdio};
    let s = Scratch::new(&RUNBOOK.replace("[\"true\"]", "[\"sh\", \"-c\", \"echo ran >> effects\"]"));
    std::fs::create_dir_all(s.path().join("state")).expect("the state folder");
    let lock = s.path().join("state/state.db.migrating");
    // One process holds it (the shell takes the lock on fd 9, then becomes `sleep`): killed,
    // the lock goes with it.
    let mut holder = Command::new("sh")
        .args(["-c", "exec 9>\"$1\" && flock 9 && exec sleep 600", "sh"])
        .arg(&lock)
        .stdin(Stdio::null())
        .spawn()
        .expect("sh runs");
    // Held once `flock -n` on the same file fails.
    while Command::new("flock").arg("-n").arg(&lock).arg("true").status().expect("flock -n").success() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let state = s.state();
    let stuck = crate::support::run_limited(
        s.path(),
        &["run", "r.toml", "--yes", "--state", &state],
        &[],
        std::time::Duration::from_secs(600),
    );
    crate::support::kill9(holder.id());
    let _ = holder.wait();
    expect(&s, "store_migration_busy", &stuck, 5);
    assert!(!s.path().join("effects").exists(), "a step ran");
    ok(&s.run(&["--yes"], &[]), 0);
    assert_eq!(s.read("effects"), "ran\n");
}
