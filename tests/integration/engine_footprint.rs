//! What a one-step `runbook run` starts besides its step (issue 13, target (b)): SQLite
//! connections (each a thread of sqlx's, an open and a parse of the schema), threads of the
//! blocking pool, and threads of its own. Each costs a one-step run about half a millisecond of
//! CPU or more on the test machine (a thread's first allocation makes the kernel zero a 2 MB
//! page: bench/README.md, issue 13). Measured by structure, never by time: the step reads
//! its engine's threads in `/proc`, and `strace`, where it is installed, counts the
//! connections the whole run opened (the probe of the file's connection is closed before
//! any step starts). Before: four connections (the probe's and three of the pool's, opened
//! because sqlx gives a connection back only after a ping), two threads of the blocking pool
//! (the printer, and the run's announcement) and a thread watching the reaper.

use std::process::Command;

use crate::support::{Scratch, bin, ok};

/// One step that writes its engine's threads' names to `threads.txt`.
const ONE_STEP: &str = r#"
[runbook]
name = "footprint"

[steps.look]
cmd = ["sh", "-c", "cat /proc/$PPID/task/*/comm > threads.txt"]
"#;

/// The engine's threads by name, as its step saw them.
fn threads(s: &Scratch) -> Vec<String> {
    let mut names: Vec<String> = s.read("threads.txt").lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn a_one_step_run_on_an_existing_store_runs_its_step_beside_two_connections_and_one_blocking_thread_at_most()
{
    let s = Scratch::new(ONE_STEP);
    // The first run makes the store (its migrations); the second is the one measured.
    ok(&s.run(&[], &[]), 0);
    ok(&s.run(&[], &[]), 0);
    let names = threads(&s);
    let count = |name: &str| names.iter().filter(|n| n.as_str() == name).count();
    // sqlx names its SQLite threads `sqlx-sqlite-worker` (cut to 15 bytes); tokio its
    // blocking pool's `tokio-runtime-worker`.
    let sqlite = count("sqlx-sqlite-wor");
    let blocking = count("tokio-rt-worker");
    // The journal's, and the pool's one when a renewal of the lease has opened it.
    assert!(sqlite <= 2, "SQLite connections open while the step runs: {sqlite}, threads {names:?}");
    assert!(blocking <= 1, "threads of the blocking pool (the printer only): {blocking}, threads {names:?}");
    // The engine's own thread, the connections, the printer: nothing else.
    assert!(names.len() <= 4, "the engine's threads while its step runs: {names:?}");
}

#[test]
fn a_one_step_run_on_an_existing_store_opens_two_sqlite_connections_in_all() {
    let s = Scratch::new(ONE_STEP);
    ok(&s.run(&[], &[]), 0);
    // Where there is no strace (or no ptrace), the test above still holds the threads.
    let trace = s.path().join("trace.txt");
    let traced = Command::new("strace")
        .args(["-f", "-e", "trace=prctl", "-o"])
        .arg(&trace)
        .arg(bin())
        .args(["run", "r.toml", "--state", &s.state()])
        .current_dir(s.path())
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .output();
    let Ok(out) = traced else {
        eprintln!("strace is not installed: the connections of a whole run are not counted");
        return;
    };
    let trace = std::fs::read_to_string(&trace).unwrap_or_default();
    if !out.status.success() && !trace.contains("PR_SET_NAME") {
        eprintln!("strace cannot trace here: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // One thread per connection, named when it starts: the pool's (which also probes the
    // file) and the journal's.
    let connections =
        trace.lines().filter(|l| l.contains("PR_SET_NAME") && l.contains("sqlx-sqlite")).count();
    assert!(connections <= 2, "SQLite connections a one-step run opened: {connections}\n{trace}");
    assert!(connections >= 1, "strace saw no SQLite connection: the count above means nothing\n{trace}");
}
