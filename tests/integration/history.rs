//! Reading runs back: `runs`, `show`, `logs`, `audit`, and `audit verify` against tampering.

use std::path::Path;

use crate::support::{Output, run_in};

fn runbook_in(dir: &Path) {
    std::fs::write(
        dir.join("r.toml"),
        r#"
[runbook]
name = "history"
[steps.hello]
run = "echo hello from the step; echo \"greeting=hi\" >> \"$RUNBOOK_OUTPUT\""
outputs = ["greeting"]
[steps.bye]
run = "echo bye >&2"
[finally.wave]
run = "echo finally waves"
"#,
    )
    .expect("write");
}

fn rb(dir: &Path, args: &[&str]) -> Output {
    let state = dir.join("state.db");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--state", state.to_str().unwrap_or_default()]);
    run_in(dir, &all)
}

fn only_run_id(dir: &Path) -> String {
    crate::support::latest_run_id(dir, &dir.join("state.db")).expect("a run")
}

fn sql(dir: &Path, statement: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = runbook_store::Store::open_sqlite(&dir.join("state.db")).await.expect("open");
        sqlx_exec(store.pool(), statement).await;
    });
}

async fn sqlx_exec(pool: &runbook_store::AnyPool, statement: &str) {
    runbook_store::raw_execute(pool, statement).await.expect("statement");
}

#[test]
fn runs_show_logs_and_audit_read_the_journal_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    runbook_in(dir.path());
    assert_eq!(rb(dir.path(), &["run", "r.toml"]).code, 0);
    let id = only_run_id(dir.path());

    let runs = rb(dir.path(), &["runs"]);
    assert!(runs.stdout.contains(&id) && runs.stdout.contains("succeeded"), "{}", runs.stdout);

    let show = rb(dir.path(), &["show", &id]);
    assert_eq!(show.code, 0);
    assert!(show.stdout.contains("outputs greeting=hi"), "{}", show.stdout);

    let logs = rb(dir.path(), &["logs", &id, "hello"]);
    assert!(logs.stdout.contains("hello | hello from the step"), "{}", logs.stdout);
    assert!(!logs.stdout.contains("bye"), "only the step asked for: {}", logs.stdout);
    let all = rb(dir.path(), &["logs", &id]).stdout;
    assert!(all.contains("bye ! bye"), "{all}");
    assert!(all.contains("wave | finally waves"), "finally steps are logged too: {all}");

    let audit = rb(dir.path(), &["audit", &id, "--format", "jsonl"]);
    let lines: Vec<serde_json::Value> =
        audit.stdout.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.first().map(|l| l["kind"].clone()), Some("run_started".into()));
    // The run's end, then the records that vouch for the logs kept in the store.
    let end = lines.iter().rposition(|l| l["kind"] != "log_kept");
    assert_eq!(end.map(|i| lines[i]["kind"].clone()), Some("run_finished".into()));
    assert!(lines[end.unwrap_or_default() + 1..].iter().all(|l| l["kind"] == "log_kept"));
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64 + 1);
        for key in ["ts", "kind", "step", "attempt", "prev_hash", "hash"] {
            assert!(l.get(key).is_some(), "record {i} lacks {key}");
        }
    }
    assert_eq!(rb(dir.path(), &["show", "no-such-run"]).code, 3);
}

#[test]
fn audit_verify_catches_edits_deletions_and_cut_tails() {
    let dir = tempfile::tempdir().expect("tempdir");
    runbook_in(dir.path());
    let run = rb(dir.path(), &["run", "r.toml"]);
    let last_hash = crate::support::printed_hash(&run.stdout).expect("the run prints its last hash");
    let id = only_run_id(dir.path());
    let ok = rb(dir.path(), &["audit", "verify"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert_eq!(rb(dir.path(), &["audit", "verify", &id, "--expect-hash", &last_hash]).code, 0);

    // Past the triggers, someone edits a record: the chain names it.
    sql(dir.path(), "DROP TRIGGER events_no_update");
    sql(dir.path(), "UPDATE events SET ts = '2020-01-01T00:00:00Z' WHERE seq = 3");
    let edited = rb(dir.path(), &["audit", "verify", &id]);
    assert_eq!(edited.code, 4, "{}", edited.stdout);
    assert!(edited.stdout.contains("record 3"), "{}", edited.stdout);

    // A record edited into something that does not even parse is broken too (not an error
    // of the store), and verification of the other runs goes on.
    assert_eq!(rb(dir.path(), &["run", "r.toml"]).code, 0);
    sql(
        dir.path(),
        "UPDATE events SET body = '{not json' WHERE seq = 2 AND run_id = (SELECT run_id FROM runs ORDER BY started_at LIMIT 1)",
    );
    let unparsable = rb(dir.path(), &["audit", "verify"]);
    assert_eq!(unparsable.code, 4, "{}\n{}", unparsable.stdout, unparsable.stderr);
    assert!(unparsable.stdout.contains("does not parse"), "{}", unparsable.stdout);
    assert!(
        unparsable.stdout.lines().any(|l| l.starts_with("ok ")),
        "the other run is still checked: {}",
        unparsable.stdout
    );
}

#[test]
fn a_cut_journal_is_caught_with_the_kept_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    runbook_in(dir.path());
    let run = rb(dir.path(), &["run", "r.toml"]);
    let last_hash = crate::support::printed_hash(&run.stdout).expect("last hash");
    let id = only_run_id(dir.path());
    // Cut the tail and make the run's own summary agree, as a careful forger would.
    // The tail is the `log_kept` records: the kept logs they vouch for must go too.
    sql(dir.path(), "DROP TRIGGER events_no_delete");
    sql(dir.path(), "DROP TRIGGER step_logs_no_delete");
    sql(dir.path(), "DELETE FROM events WHERE kind = 'log_kept'");
    sql(dir.path(), "DELETE FROM step_logs");
    sql(
        dir.path(),
        "UPDATE runs SET last_seq = (SELECT MAX(seq) FROM events e WHERE e.run_id = runs.run_id), \
         last_hash = (SELECT hash FROM events e WHERE e.run_id = runs.run_id ORDER BY seq DESC LIMIT 1)",
    );
    assert_eq!(
        rb(dir.path(), &["audit", "verify", &id]).code,
        0,
        "without the kept hash the cut is invisible"
    );
    let cut = rb(dir.path(), &["audit", "verify", &id, "--expect-hash", &last_hash]);
    assert_eq!(cut.code, 4, "{}", cut.stdout);
}

#[test]
fn reading_commands_survive_a_closed_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    runbook_in(dir.path());
    assert_eq!(rb(dir.path(), &["run", "r.toml"]).code, 0);
    let id = only_run_id(dir.path());
    let state = dir.path().join("state.db");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["audit", &id, "--state", state.to_str().unwrap_or_default()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Processes that open a new SQLite store at the same moment (a `run` and a `runs` polling
/// for it, two terminals) bring its schema up to date once, together: none fails on a
/// migration the other applied ("duplicate column name", "table runs already exists").
#[test]
fn processes_opening_a_new_store_at_once_migrate_it_once() {
    let trials: usize =
        std::env::var("RUNBOOK_MIGRATE_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    for trial in 0..trials {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.toml"), "[runbook]\nname = \"m\"\n[steps.a]\ncmd = [\"true\"]\n")
            .expect("runbook");
        let state = dir.path().join("state.db");
        let state = state.to_str().expect("utf-8 path");
        let children: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new(crate::support::bin())
                    .args(["run", "r.toml", "--state", state])
                    .current_dir(dir.path())
                    .env("NO_COLOR", "1")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("runbook starts")
            })
            .collect();
        for child in children {
            let out = Output::from(child.wait_with_output().expect("wait"));
            assert_eq!(out.code, 0, "trial {trial}: {}{}", out.stdout, out.stderr);
        }
    }
}

/// A store being written is not a damaged one: commands that open it while a run writes
/// (its pages in the write-ahead log, a checkpoint half done) read it as usual.
#[test]
fn a_store_read_while_a_run_writes_it_is_not_called_damaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("[runbook]\nname = \"busy\"\n");
    for i in 0..120 {
        text.push_str(&format!("[steps.s{i}]\ncmd = [\"true\"]\n"));
    }
    std::fs::write(dir.path().join("r.toml"), text).expect("runbook");
    let state = dir.path().join("state.db");
    let state = state.to_str().expect("utf-8 path");
    // The store exists before the race starts (a new one is another test's subject).
    let first = rb(dir.path(), &["run", "r.toml"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let mut writer = std::process::Command::new(crate::support::bin())
        .args(["run", "r.toml", "--state", state])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    let mut reads = 0;
    while writer.try_wait().expect("wait").is_none() && reads < 400 {
        let out = rb(dir.path(), &["runs"]);
        assert_eq!(out.code, 0, "read {reads} while the run wrote: {}", out.stderr);
        reads += 1;
    }
    assert_eq!(writer.wait().expect("wait").code(), Some(0));
}
