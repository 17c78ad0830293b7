//! Promise 6 (issue 11): the audit trail means what it says. `audit verify` reads one
//! snapshot (no false alarm on a live run), everything `runs`, `show`, `logs` present is in
//! the hash chain or checked against it, logs kept in the store are capped with a visible
//! marker, and approvers' identities are normalised (and, on PostgreSQL, may be bound to the
//! database role that authenticated the session).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runbook_sandbox::peers::Postgres;

use crate::support::{Output, Scratch, ok, run_in_with_env};

/// Many short steps, one after the other: a run that appends records for a while.
fn long_runbook(steps: usize) -> String {
    let mut text = String::from("[runbook]\nname = \"long\"\n");
    for i in 0..steps {
        text.push_str(&format!("\n[steps.s{i:03}]\nrun = \"echo step {i}\"\n"));
        if i > 0 {
            text.push_str(&format!("needs = [\"s{:03}\"]\n", i - 1));
        }
    }
    text
}

fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runbook")
}

fn journal_kinds(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `audit verify` over and over while an engine appends to a run: every check passes.
/// `checks` verifications are made while a run is alive (another run starts when one ends
/// first: a busy machine verifies slowly).
fn verify_while_running(dir: &Path, state: &str, env: &[(&str, &str)], who: &str, checks: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done = 0;
    let mut alarms = Vec::new();
    while done < checks {
        assert!(Instant::now() < deadline, "only {done} checks while runs were alive");
        let mut child = spawn(dir, &["run", "r.toml", "--yes", "--state", state, "--as", who], env);
        while done < checks && child.try_wait().expect("try_wait").is_none() {
            let out = run_in_with_env(dir, &["audit", "verify", "--state", state, "--as", who], env);
            // Before the first run's first record there is nothing to verify yet.
            if out.stdout.trim().is_empty() {
                continue;
            }
            if out.code != 0 {
                alarms.push(format!("{}{}", out.stdout, out.stderr));
            }
            done += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(alarms.is_empty(), "{} false alarm(s) in {done} checks:\n{}", alarms.len(), alarms.join("\n"));
}

#[test]
fn audit_verify_during_a_live_run_raises_no_false_alarm_on_sqlite() {
    let scratch = Scratch::new(&long_runbook(400));
    verify_while_running(scratch.path(), &scratch.state(), &[], "ana", 40);
}

#[test]
fn audit_verify_during_a_live_run_raises_no_false_alarm_on_postgres() {
    let pg = Postgres::start();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), long_runbook(400)).expect("runbook");
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &url], &env), 0);
    verify_while_running(dir.path(), &url, &env, "ana", 40);
}

const TWO_STEPS: &str = r#"[runbook]
name = "audited"

[steps.deploy]
run = "echo deployed version 42; echo 'careful' >&2"

[steps.check]
needs = ["deploy"]
run = "echo all good"
"#;

fn sqlite(state: &str, sql: &str) {
    let out = Command::new("sqlite3").arg(state).arg(sql).output().expect("sqlite3");
    assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_tampered_runs_row_and_forged_step_logs_are_detected() {
    let scratch = Scratch::new(TWO_STEPS);
    let run = scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "ana")]);
    ok(&run, 0);
    let hash = crate::support::printed_hash(&run.stdout).expect("the run prints its last hash");
    let id = scratch.latest_run();
    let state = scratch.state();
    ok(&scratch.cmd(&["audit", "verify", &id, "--expect-hash", &hash], &[]), 0);
    // The local copies are gone (another host reads the shared history): only the store speaks.
    std::fs::remove_dir_all(scratch.path().join("state/runs")).expect("remove local logs");
    let logs = scratch.cmd(&["logs", &id], &[]);
    ok(&logs, 0);
    assert!(logs.stdout.contains("deploy | deployed version 42"), "{}", logs.stdout);

    // Mallory edits the summary and forges the log, without touching the journal's rows.
    // Past the triggers that now protect a run's identity, as the file's owner can.
    sqlite(&state, "DROP TRIGGER runs_identity_fixed");
    sqlite(&state, &format!("UPDATE runs SET operator = 'mallory' WHERE run_id = '{id}'"));
    sqlite(
        &state,
        &format!(
            "UPDATE step_logs SET body = 'out deployed version 41' WHERE run_id = '{id}' AND step = 'deploy'"
        ),
    );
    let verify = scratch.cmd(&["audit", "verify", &id, "--expect-hash", &hash], &[]);
    assert_eq!(verify.code, 4, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("runs.operator"), "{}", verify.stdout);
    assert!(verify.stdout.contains("step_logs"), "{}", verify.stdout);
    insta::assert_snapshot!("tampered_verify", verify.stdout.replace(&id, "[run]"));

    let show = scratch.cmd(&["show", &id], &[]);
    assert_eq!(show.code, 4, "{}{}", show.stdout, show.stderr);
    assert!(!show.stdout.contains("mallory"), "show presents the journal's operator: {}", show.stdout);
    assert!(show.stderr.contains("runs.operator"), "{}", show.stderr);
    insta::assert_snapshot!("tampered_show_stderr", show.stderr.replace(&id, "[run]"));

    let runs = scratch.cmd(&["runs"], &[]);
    assert!(!runs.stdout.contains("mallory"), "{}", runs.stdout);
    assert!(runs.stderr.contains(&id), "runs flags the row: {}", runs.stderr);

    let forged = scratch.cmd(&["logs", &id], &[]);
    assert_eq!(forged.code, 4, "{}{}", forged.stdout, forged.stderr);
    assert!(!forged.stdout.contains("version 41"), "a forged log is not presented: {}", forged.stdout);
    assert!(forged.stderr.contains("deploy"), "{}", forged.stderr);
}

#[test]
fn logs_bigger_than_the_store_accepts_are_cut_with_a_marker_and_a_chained_digest() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "chatty"

[steps.chatty]
run = "for i in $(seq 1 5000); do echo line $i of a long output; done"
"#,
    );
    let env = [("RUNBOOK_STORE_LOG_CAP", "4096")];
    let run = scratch.run(&["--yes"], &env);
    ok(&run, 0);
    let id = scratch.latest_run();
    let journal = scratch.audit(&id);
    let kept: Vec<serde_json::Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "log_kept")
        .collect();
    assert_eq!(kept.len(), 1, "{journal}");
    let event = &kept[0]["event"];
    assert_eq!(event["step"], "chatty");
    assert!(event["bytes"].as_u64().unwrap_or(0) > 100_000, "{event}");
    assert!(event["kept_bytes"].as_u64().unwrap_or(u64::MAX) <= 4096, "{event}");
    let logs = scratch.cmd(&["logs", &id], &[]);
    ok(&logs, 0);
    let local = scratch.path().join("state/runs").join(&id).join("chatty.1.log");
    assert!(logs.stdout.contains("line 1 of a long output"), "{}", logs.stdout);
    // The store's copy is cut; the marker says how much and where the whole file is.
    std::fs::remove_file(&local).expect("the local log exists");
    let stored = scratch.cmd(&["logs", &id], &[]);
    ok(&stored, 0);
    assert!(!stored.stdout.contains("line 5000 of"), "{}", stored.stdout);
    assert!(stored.stdout.contains("bytes of"), "{}", stored.stdout);
    assert!(stored.stdout.contains(&local.display().to_string()), "{}", stored.stdout);
    let digest = event["sha256"].as_str().unwrap_or_default();
    assert!(stored.stdout.contains(digest), "logs shows the chained digest: {}", stored.stdout);
    ok(&scratch.cmd(&["audit", "verify", &id], &[]), 0);
}

const APPROVAL: &str = r#"[runbook]
name = "needs-two"

[steps.go]
approval = { prompt = "Go?", min-approvals = 2 }

[steps.after]
needs = ["go"]
run = "echo approved"
"#;

fn wait_for_kind(dir: &Path, state: &str, env: &[(&str, &str)], kind: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no `{kind}` record appeared");
        if let Some(id) =
            crate::support::latest_run_id(dir, Path::new(state)).filter(|_| !state.contains("://"))
        {
            let out = run_in_with_env(dir, &["audit", &id, "--format", "jsonl", "--state", state], env);
            if journal_kinds(&out.stdout).iter().any(|k| k == kind) {
                return id;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn approve_does_not_say_a_dead_engine_continues_the_run() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "attached"

[steps.go]
approval = { prompt = "Go?" }

[steps.after]
needs = ["go"]
run = "echo approved"
"#,
    );
    let state = scratch.state();
    let mut engine =
        spawn(scratch.path(), &["run", "r.toml", "--yes", "--wait", "--state", &state, "--as", "ana"], &[]);
    let id = wait_for_kind(scratch.path(), &state, &[], "approval_requested");
    engine.kill().expect("kill the engine");
    let _ = engine.wait();
    let approved = scratch.cmd(&["approve", &id, "go", "--as", "ben"], &[]);
    ok(&approved, 0);
    assert!(!approved.stdout.contains("continues by itself"), "{}", approved.stdout);
    assert!(approved.stdout.contains(&format!("runbook resume {id}")), "{}", approved.stdout);
    insta::with_settings!({ filters => vec![(r"\(pid \d+ on [^)]+\)", "(pid [pid] on [host])")] }, {
        insta::assert_snapshot!("approve_dead_engine", approved.stdout.replace(&id, "[run]"));
    });
}

#[test]
fn identities_that_differ_only_in_case_or_spaces_are_one_approver() {
    let scratch = Scratch::new(APPROVAL);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "ops")]), 4);
    let id = scratch.latest_run();
    ok(&scratch.cmd(&["approve", &id, "go", "--as", "ana"], &[]), 0);
    for same in ["Ana", " ana ", "ANA", "  ana  ", "AnA"] {
        let again = scratch.cmd(&["approve", &id, "go", "--as", same], &[]);
        assert_eq!(again.code, 3, "`{same}` counted as a second approver: {}{}", again.stdout, again.stderr);
        assert!(again.stderr.contains("already approved"), "{}", again.stderr);
    }
    let kinds = journal_kinds(&scratch.audit(&id));
    assert_eq!(kinds.iter().filter(|k| *k == "approval_granted").count(), 1, "{kinds:?}");
    // A tab or a line break is refused (issue 13, red team): it would print a line of its
    // own on the terminal.
    let broken = scratch.cmd(&["approve", &id, "go", "--as", "\tana\n"], &[]);
    assert_eq!(broken.code, 2, "{}{}", broken.stdout, broken.stderr);
    assert!(broken.stderr.contains("not a valid identity"), "{}", broken.stderr);
    // A combining mark is refused (issue 11, second round): it makes a look-alike.
    let marked = scratch.cmd(&["approve", &id, "go", "--as", "a\u{0301}na"], &[]);
    assert_eq!(marked.code, 2, "{}{}", marked.stdout, marked.stderr);
    assert!(marked.stderr.contains("not a valid identity"), "{}", marked.stderr);
    // A different name (an accent) is a different person: nothing else is folded away.
    ok(&scratch.cmd(&["approve", &id, "go", "--as", "\u{e1}na"], &[]), 0);
    // Self-approval is judged on the normalised name too.
    let scratch = Scratch::new(
        &APPROVAL.replace("min-approvals = 2", "approvers = [\"Ana\", \"ben\"], min-approvals = 1"),
    );
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", " ANA")]), 4);
    let id = scratch.latest_run();
    let own = scratch.cmd(&["approve", &id, "go", "--as", "ana"], &[]);
    assert_eq!(own.code, 3, "{}{}", own.stdout, own.stderr);
    ok(&scratch.cmd(&["approve", &id, "go", "--as", "BEN "], &[]), 0);
}

/// A PostgreSQL store in db-role identity mode: each operator connects as their own role.
pub(crate) struct Roles {
    pub(crate) pg: Postgres,
    pub(crate) dir: tempfile::TempDir,
}

impl Roles {
    pub(crate) fn url(&self, role: &str) -> String {
        self.pg.url("postgres").replacen("postgres@", &format!("{role}@"), 1)
    }

    /// Login roles for operators, with the grants the book gives them (and no ownership).
    pub(crate) fn operators(&self, names: &[&str]) {
        for role in names {
            self.pg.psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
            self.pg.psql(
                "postgres",
                &format!(
                    "GRANT SELECT, INSERT, UPDATE ON runs, events, step_logs, locks, queue TO {role}; GRANT SELECT, INSERT ON schedule_fires, schedule_alerts, schedule_events TO {role}; \
                     GRANT SELECT, INSERT, UPDATE ON schedule_heads, schedule_notices TO {role}; \
                     GRANT SELECT ON runbook_settings, runbook_identities, _sqlx_migrations TO {role}; \
                     GRANT SELECT, INSERT, UPDATE, DELETE ON live_output TO {role}"
                ),
            );
        }
    }

    pub(crate) fn cmd(&self, role: &str, args: &[&str], who: Option<&str>) -> Output {
        let url = self.url(role);
        let mut all = args.to_vec();
        all.extend(["--state", &url]);
        if let Some(who) = who {
            all.extend(["--as", who]);
        }
        let host = self.dir.path().join(role).display().to_string();
        run_in_with_env(self.dir.path(), &all, &[("XDG_STATE_HOME", &host)])
    }
}

#[test]
fn in_db_role_identity_mode_a_role_cannot_approve_as_another() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.toml"),
        APPROVAL.replace("min-approvals = 2", "approvers = [\"ben\", \"chen\"], min-approvals = 2"),
    )
    .expect("runbook");
    let roles = Roles { pg, dir };
    // The administrator: the schema, the mode, a mapping; then the roles and their grants.
    let migrated =
        roles.cmd("postgres", &["state", "migrate", "--identity", "db-role", "--map", "c_lee=chen"], None);
    ok(&migrated, 0);
    roles.operators(&["ana", "ben", "c_lee"]);
    let check = roles.cmd("ana", &["state", "check"], None);
    ok(&check, 0);
    assert!(check.stdout.contains("identity: db-role"), "{}", check.stdout);

    // Ana's run: without `--as` she is her role; claiming to be someone else is refused.
    let forged = roles.cmd("ana", &["run", "r.toml", "--yes"], Some("ben"));
    assert_ne!(forged.code, 0, "{}{}", forged.stdout, forged.stderr);
    assert!(forged.stderr.contains("database role ana acts as `ana`, not as `ben`"), "{}", forged.stderr);
    let none = roles.cmd("ana", &["runs"], None);
    assert!(!none.stdout.contains("ben"), "a refused run leaves no trace: {}", none.stdout);
    ok(&roles.cmd("ana", &["run", "r.toml", "--yes"], None), 4);
    let runs: serde_json::Value =
        serde_json::from_str(&roles.cmd("ana", &["runs", "--format", "json"], None).stdout).expect("runs");
    let id = runs
        .as_array()
        .and_then(|r| r.iter().find(|r| r["status"] == "needs_operator"))
        .and_then(|r| r["run_id"].as_str())
        .expect("ana's run")
        .to_string();

    // Ben, connected as ben, cannot approve as chen (one shell, one role, two names).
    let as_chen = roles.cmd("ben", &["approve", &id, "go"], Some("chen"));
    assert_eq!(as_chen.code, 3, "{}{}", as_chen.stdout, as_chen.stderr);
    assert!(as_chen.stderr.contains("database role ben acts as `ben`, not as `chen`"), "{}", as_chen.stderr);
    insta::assert_snapshot!("db_role_refusal", as_chen.stderr);
    let identity_line = check.stdout.lines().find(|l| l.starts_with("identity:")).unwrap_or_default();
    insta::assert_snapshot!("db_role_state_check", identity_line);
    ok(&roles.cmd("ben", &["approve", &id, "go"], Some("ben")), 0);
    // The role mapped to chen can.
    ok(&roles.cmd("c_lee", &["approve", &id, "go"], None), 0);

    let journal = roles.cmd("ana", &["audit", &id, "--format", "jsonl"], None).stdout;
    let records: Vec<serde_json::Value> =
        journal.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(records.iter().all(|r| r["db_role"].is_string()), "every record names its role: {journal}");
    let granted: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["kind"] == "approval_granted")
        .map(|r| {
            (
                r["event"]["operator"].as_str().unwrap_or_default().to_string(),
                r["db_role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(granted, [("ben".to_string(), "ben".to_string()), ("chen".to_string(), "c_lee".to_string())]);
    ok(&roles.cmd("ben", &["audit", "verify", &id], None), 0);

    // F3: a role mapped to `ΣΟΦΟΣ` is not `σοφοσ` (Rust and PostgreSQL fold only ASCII case,
    // so the trigger and the rules agree on who is who).
    roles.pg.psql("postgres", "INSERT INTO runbook_identities VALUES ('sofos', 'ΣΟΦΟΣ')");
    roles.operators(&["sofos"]);
    let sigma = Command::new(roles.pg.bin().join("psql"))
        .args([&roles.url("sofos"), "-v", "ON_ERROR_STOP=1", "-Atc"])
        .arg(format!(
            "INSERT INTO events (run_id, seq, ts, kind, step, body, prev_hash, hash, db_role) \
             VALUES ('{id}', 98, 'now', 'approval_granted', 'go', \
             '{{\"kind\":\"approval_granted\",\"step\":\"go\",\"operator\":\"σοφοσ\",\"reason\":\"\"}}', 'x', 'y', 'sofos')"
        ))
        .output()
        .expect("psql");
    let stderr = String::from_utf8_lossy(&sigma.stderr);
    assert!(!sigma.status.success(), "sofos wrote a record as σοφοσ");
    assert!(stderr.contains("acts as `ΣΟΦΟΣ`, not as `σοφοσ`"), "{stderr}");

    // A client of its own cannot get past the store either: not by writing the record
    // directly, nor by shadowing the mapping with a temporary table of its session.
    for shadow in [
        "",
        "CREATE TEMP TABLE runbook_identities (db_role TEXT, identity TEXT); \
                       INSERT INTO runbook_identities VALUES ('ben', 'chen'); \
                       CREATE TEMP TABLE runbook_settings (key TEXT, value TEXT); ",
    ] {
        let out = Command::new(roles.pg.bin().join("psql"))
            .args([&roles.url("ben"), "-v", "ON_ERROR_STOP=1", "-Atc"])
            .arg(format!(
                "{shadow}INSERT INTO events (run_id, seq, ts, kind, step, body, prev_hash, hash, db_role) \
                 VALUES ('{id}', 99, 'now', 'approval_granted', 'go', \
                 '{{\"kind\":\"approval_granted\",\"step\":\"go\",\"operator\":\"chen\",\"reason\":\"\"}}', 'x', 'y', 'ben')"
            ))
            .output()
            .expect("psql");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "ben wrote a record as chen (shadow: {shadow:?})");
        assert!(stderr.contains("acts as `ben`, not as `chen`"), "{stderr}");
    }
}

fn sqlite_rows(state: &str, sql: &str) -> Vec<String> {
    let out = Command::new("sqlite3").arg(state).arg(sql).output().expect("sqlite3");
    assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// The edits the class tests make to a column: arithmetic on integers; on text, a prefix,
/// two substitutions (digits, letters) and NULL (a NULL column gets a value).
fn edits_of(name: &str, integer: bool) -> Vec<String> {
    if integer {
        return vec![format!("{name} + 1"), format!("{name} - 1"), format!("{name} * 7 + 3")];
    }
    vec![
        format!("CASE WHEN {name} IS NULL THEN 'x' ELSE 'x' || {name} END"),
        format!("CASE WHEN {name} IS NULL THEN 'ana' ELSE replace({name}, '1', '2') END"),
        format!("CASE WHEN {name} IS NULL THEN '' ELSE replace({name}, 'e', 'a') END"),
        "NULL".to_string(),
    ]
}

/// The class rule: whatever the store keeps about a run's history is in the chain or checked
/// against it. For every column of every history table (read from the schema, so a new column
/// is covered), several edits made past the triggers as the database's owner: each one is
/// named by `audit verify` (`table.column`), and `show` and `logs` refuse to present it as
/// the record.
#[test]
fn every_edit_of_every_column_of_every_history_table_is_named_by_audit_verify() {
    let scratch =
        Scratch::new(&TWO_STEPS.replacen("name = \"audited\"\n", "name = \"audited\"\nlock = \"prod\"\n", 1));
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "ana")]), 0);
    let id = scratch.latest_run();
    let state = scratch.state();
    let tables = ["runs", "events", "step_logs"];
    let mut cases = 0;
    let mut missed = Vec::new();
    for table in tables {
        let columns = sqlite_rows(&state, &format!("SELECT name, type FROM pragma_table_info('{table}')"));
        assert!(!columns.is_empty(), "{table} has columns");
        for column in columns {
            let (name, ty) = column.split_once('|').expect("name|type");
            let edits = edits_of(name, ty.eq_ignore_ascii_case("INTEGER"));
            for (n, edit) in edits.iter().enumerate() {
                // One row: for events, one about a step (its `step` column is not empty).
                let row = match table {
                    "events" => format!(
                        "rowid = (SELECT rowid FROM events WHERE run_id = '{id}' AND step IS NOT NULL ORDER BY seq LIMIT 1 OFFSET 1)"
                    ),
                    _ => format!(
                        "run_id = '{id}' AND rowid = (SELECT MIN(rowid) FROM {table} WHERE run_id = '{id}')"
                    ),
                };
                let copy = scratch.path().join(format!("tampered-{table}-{name}-{n}.db"));
                let copy = copy.display().to_string();
                sqlite(&state, &format!("VACUUM INTO '{copy}'"));
                let before = sqlite_rows(&copy, &format!("SELECT quote({name}) FROM {table} WHERE {row}"));
                // Past every trigger and constraint, as the file's owner can.
                let drops: String =
                    sqlite_rows(&copy, "SELECT name FROM sqlite_master WHERE type = 'trigger'")
                        .iter()
                        .map(|t| format!("DROP TRIGGER {t}; "))
                        .collect();
                let out = Command::new("sqlite3")
                    .arg(&copy)
                    .arg(format!(
                        "PRAGMA foreign_keys = OFF; PRAGMA ignore_check_constraints = ON; {drops}\
                         UPDATE OR IGNORE {table} SET {name} = {edit} WHERE {row};"
                    ))
                    .output()
                    .expect("sqlite3");
                let after = sqlite_rows(&copy, &format!("SELECT quote({name}) FROM {table} WHERE {row}"));
                if !out.status.success() || before == after {
                    // The edit changed nothing (NULL into a NOT NULL column, a value equal to
                    // the old one): nothing to detect.
                    continue;
                }
                cases += 1;
                let verify = run_in_with_env(scratch.path(), &["audit", "verify", "--state", &copy], &[]);
                let named = format!("{table}.{name}");
                if verify.code != 4 || !verify.stdout.contains(&named) {
                    missed.push(format!(
                        "{table}.{name} = {edit}: exit {}\n{}{}",
                        verify.code, verify.stdout, verify.stderr
                    ));
                }
                let show = run_in_with_env(scratch.path(), &["show", &id, "--state", &copy], &[]);
                let logs = run_in_with_env(scratch.path(), &["logs", &id, "--state", &copy], &[]);
                let report = run_in_with_env(scratch.path(), &["report", &id, "--state", &copy], &[]);
                let presented =
                    if table == "step_logs" { logs.code == 0 } else { show.code == 0 || report.code == 0 };
                if presented {
                    missed.push(format!(
                        "{table}.{name} = {edit}: show {} and logs {} present it",
                        show.code, logs.code
                    ));
                }
            }
        }
    }
    assert!(cases >= 40, "only {cases} edits made");
    assert!(missed.is_empty(), "{} of {cases} edits not named:\n{}", missed.len(), missed.join("\n---\n"));
}

/// psql on the cluster as its owner: (success, output).
fn psql_try(pg: &Postgres, sql: &str) -> (bool, String) {
    let out = Command::new(pg.bin().join("psql"))
        .args([&pg.url("postgres"), "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .expect("psql");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The class rule on PostgreSQL: every column of every history table, edited past the
/// triggers by the database's owner (`session_replication_role = replica` turns triggers and
/// foreign keys off), is named by `audit verify`; `show`, `report` and `logs` refuse it.
#[test]
fn every_edit_of_every_column_of_every_history_table_is_named_on_postgres_too() {
    let pg = Postgres::start();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.toml"),
        TWO_STEPS.replacen("name = \"audited\"\n", "name = \"audited\"\nlock = \"prod\"\n", 1),
    )
    .expect("runbook");
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    let rb = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--state", &url]);
        run_in_with_env(dir.path(), &all, &env)
    };
    ok(&rb(&["state", "migrate"]), 0);
    ok(&rb(&["run", "r.toml", "--yes", "--as", "ana"]), 0);
    let id: String = {
        let runs: serde_json::Value =
            serde_json::from_str(&rb(&["runs", "--format", "json"]).stdout).expect("runs");
        runs[0]["run_id"].as_str().expect("a run").to_string()
    };
    ok(&rb(&["audit", "verify"]), 0);
    let mut cases = 0;
    let mut missed = Vec::new();
    for table in ["runs", "events", "step_logs"] {
        let (_, columns) = psql_try(
            &pg,
            &format!(
                "SELECT column_name || '|' || data_type FROM information_schema.columns \
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            ),
        );
        assert!(!columns.is_empty(), "{table} has columns");
        pg.psql("postgres", &format!("CREATE TABLE backup_{table} AS SELECT * FROM {table}"));
        let row = match table {
            "events" => format!(
                "(run_id, seq) = (SELECT run_id, seq FROM events WHERE run_id = '{id}' AND step IS NOT NULL ORDER BY seq LIMIT 1 OFFSET 1)"
            ),
            "step_logs" => format!(
                "(run_id, step, attempt) = (SELECT run_id, step, attempt FROM step_logs WHERE run_id = '{id}' ORDER BY step LIMIT 1)"
            ),
            _ => format!("run_id = '{id}'"),
        };
        for column in columns.lines() {
            let (name, ty) = column.split_once('|').expect("name|type");
            let edits = edits_of(name, ty == "bigint" || ty == "integer");
            for edit in &edits {
                let value = format!("SELECT {name}::text FROM {table} WHERE {row}");
                let (_, before) = psql_try(&pg, &value);
                let (done, _) = psql_try(
                    &pg,
                    &format!(
                        "SET session_replication_role = replica; UPDATE {table} SET {name} = {edit} WHERE {row}"
                    ),
                );
                let (_, after) = psql_try(&pg, &value);
                if done && before != after {
                    cases += 1;
                    let verify = rb(&["audit", "verify"]);
                    let named = format!("{table}.{name}");
                    if verify.code != 4 || !verify.stdout.contains(&named) {
                        missed.push(format!(
                            "{named} = {edit}: exit {}\n{}{}",
                            verify.code, verify.stdout, verify.stderr
                        ));
                    }
                    let presented = if table == "step_logs" {
                        rb(&["logs", &id]).code == 0
                    } else {
                        rb(&["show", &id]).code == 0 || rb(&["report", &id]).code == 0
                    };
                    if presented {
                        missed.push(format!("{named} = {edit}: presented as the record"));
                    }
                }
                pg.psql(
                    "postgres",
                    &format!(
                        "SET session_replication_role = replica; DELETE FROM {table}; \
                         INSERT INTO {table} SELECT * FROM backup_{table}"
                    ),
                );
            }
        }
    }
    ok(&rb(&["audit", "verify"]), 0);
    assert!(cases >= 40, "only {cases} edits made");
    assert!(missed.is_empty(), "{} of {cases} edits not named:\n{}", missed.len(), missed.join("\n---\n"));
}

/// The store's `runbook_identity_key` (which the db-role trigger uses) never takes two
/// people for one: names it joins (ASCII case, spaces, tabs and newlines in every position)
/// Rust's `identity_key` joins too, since Rust's key of PostgreSQL's key is Rust's key of the
/// name. PostgreSQL folds less (not Unicode case or NFKC, red team adv19a-3): the trigger may
/// refuse a spelling the engine takes for the role's identity, never accept another person.
#[test]
fn the_store_and_the_engine_normalise_identities_alike() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &pg.url("postgres")], &[]), 0);
    // With letters whose case mappings differ between Rust, PostgreSQL and its locales
    // (final sigma, dotted and dotless i, sharp s, titlecase digraphs, ligatures), and a
    // trailing `v` (PostgreSQL has no E'\v').
    let parts = [
        "ana",
        "Ben",
        "CHEN",
        "d.o'neil",
        "eve-2",
        "x_y",
        "Zoë",
        "ΣΟΦΟΣ",
        "σοφος",
        "İi",
        "ıI",
        "straße",
        "STRASSE",
        "ǅ",
        "ﬀ",
        "dev",
        "v",
        "ΌΣ",
    ];
    let spaces = ["", " ", "  ", "\t", "\n", " \t "];
    let mut names = Vec::new();
    let mut seed = 7u64;
    for _ in 0..2000 {
        let mut name = String::new();
        for _ in 0..3 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            name.push_str(spaces[(seed >> 33) as usize % spaces.len()]);
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let part = parts[(seed >> 33) as usize % parts.len()];
            // Random case, letter by letter, with Unicode's full mappings.
            for (i, c) in part.chars().enumerate() {
                match (seed >> (i % 30)) & 3 {
                    0 => name.extend(c.to_uppercase()),
                    1 => name.extend(c.to_lowercase()),
                    2 => name.push(c.to_ascii_uppercase()),
                    _ => name.push(c),
                }
            }
        }
        names.push(name);
    }
    let values: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "(E'{}')",
                n.replace('\\', "\\\\").replace('\'', "\\'").replace('\t', "\\t").replace('\n', "\\n")
            )
        })
        .collect();
    let (done, keys) = psql_try(
        &pg,
        &format!(
            "SELECT encode(convert_to(runbook_identity_key(n), 'UTF8'), 'hex') FROM (VALUES {}) AS v(n)",
            values.join(", ")
        ),
    );
    assert!(done, "{keys}");
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), names.len());
    for (name, key) in names.iter().zip(keys) {
        let bytes: Vec<u8> = (0..key.len() / 2)
            .map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        let theirs = String::from_utf8(bytes).expect("UTF-8");
        let key = runbook_core::journal::identity_key;
        assert_eq!(key(&theirs), key(name), "`{name:?}`: PostgreSQL's key `{theirs:?}`");
    }
}

/// `resume` of a live run reads the run's row and records in one snapshot: while another
/// engine writes, it is refused because the run is running, never because the journal
/// "fails verification".
#[test]
fn resume_during_a_live_run_never_calls_its_journal_tampered() {
    let scratch = Scratch::new(&long_runbook(400));
    let state = scratch.state();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut tries = 0;
    let mut wrong = Vec::new();
    let mut previous = None;
    // Another run starts when one ends first (a busy machine resumes slowly).
    while tries < 30 {
        assert!(Instant::now() < deadline, "only {tries} tries while runs were alive");
        let mut child =
            spawn(scratch.path(), &["run", "r.toml", "--yes", "--state", &state, "--as", "ana"], &[]);
        // The new run's id (not the one killed before it).
        let id = loop {
            let id = wait_for_kind(scratch.path(), &state, &[], "step_started");
            if previous.as_ref() != Some(&id) {
                break id;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        previous = Some(id.clone());
        while tries < 30 && child.try_wait().expect("try_wait").is_none() {
            let out = scratch.cmd(&["resume", &id, "--yes", "--as", "ben"], &[]);
            if out.stderr.contains("fails verification") || out.code == 0 {
                wrong.push(format!("exit {}: {}", out.code, out.stderr));
            }
            tries += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        wrong.is_empty(),
        "{} of {tries} resumes misjudged the live run:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Logs kept before the journal recorded their digests (a store upgraded to schema 4) are
/// shown and noted as not vouched for, never called tampered: an upgrade raises no alarm.
/// Make a run's journal what an engine before log digests wrote: no `log_kept` records and a
/// `run_started` without `log_digests`, chained anew (as the file's owner, past the triggers).
fn as_before_log_digests(scratch: &Scratch, id: &str) {
    use runbook_core::journal::{GENESIS, Record, RunEvent};
    let state = scratch.state();
    let old: Vec<Record> = scratch.audit(id).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut prev = GENESIS.to_string();
    let mut sql =
        String::from("DROP TRIGGER IF EXISTS events_no_delete; DELETE FROM events WHERE run_id = '{id}'; ")
            .replace("{id}", id);
    let mut seq = 0;
    for r in old {
        let event = match r.event {
            RunEvent::LogKept { .. } => continue,
            RunEvent::RunStarted {
                runbook,
                file,
                files,
                params,
                operator,
                engine_version,
                submitted_by,
                report,
                ..
            } => RunEvent::RunStarted {
                runbook,
                file,
                files,
                params,
                operator,
                engine_version,
                submitted_by,
                log_digests: false,
                report,
            },
            other => other,
        };
        seq += 1;
        let n = Record::new(id, seq, &r.ts, event, &prev);
        let body = serde_json::to_string(&n.event).expect("json").replace('\'', "''");
        let step = n.event.step().map_or("NULL".to_string(), |s| format!("'{s}'"));
        sql.push_str(&format!(
            "INSERT INTO events (run_id, seq, ts, kind, step, body, prev_hash, hash) VALUES \
             ('{id}', {seq}, '{}', '{}', {step}, '{body}', '{}', '{}'); ",
            n.ts,
            n.event.kind(),
            n.prev_hash,
            n.hash
        ));
        prev = n.hash;
    }
    sql.push_str(&format!("UPDATE runs SET last_seq = {seq}, last_hash = '{prev}' WHERE run_id = '{id}';"));
    sqlite(&state, &sql);
}

#[test]
fn logs_kept_before_digests_are_noted_not_called_tampered() {
    let scratch = Scratch::new(TWO_STEPS);
    ok(&scratch.run(&["--yes"], &[]), 0);
    let id = scratch.latest_run();
    // As an older runbook left it: the logs, and no `log_kept` records.
    as_before_log_digests(&scratch, &id);
    std::fs::remove_dir_all(scratch.path().join("state/runs")).expect("remove local logs");
    let verify = scratch.cmd(&["audit", "verify", &id], &[]);
    ok(&verify, 0);
    assert!(verify.stdout.contains("the chain does not vouch for them"), "{}", verify.stdout);
    let logs = scratch.cmd(&["logs", &id], &[]);
    ok(&logs, 0);
    assert!(logs.stdout.contains("deploy | deployed version 42"), "{}", logs.stdout);
    assert!(logs.stdout.contains("not vouched for by the journal"), "{}", logs.stdout);
}

/// Output with NUL bytes and invalid UTF-8 is kept in a PostgreSQL store (whose text holds
/// neither) as U+FFFD, not left behind on the host.
#[test]
fn odd_bytes_in_a_log_are_kept_in_a_postgres_store() {
    let pg = Postgres::start();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.toml"),
        "[runbook]\nname = \"odd\"\n\n[steps.odd]\nrun = \"printf 'a\\\\000b \\\\377 end\\\\n'\"\n",
    )
    .expect("runbook");
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &url], &env), 0);
    let run = run_in_with_env(dir.path(), &["run", "r.toml", "--yes", "--state", &url], &env);
    ok(&run, 0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let runs: serde_json::Value = serde_json::from_str(
        &run_in_with_env(dir.path(), &["runs", "--format", "json", "--state", &url], &env).stdout,
    )
    .expect("runs");
    let id = runs[0]["run_id"].as_str().expect("a run").to_string();
    std::fs::remove_dir_all(dir.path().join("host")).expect("remove local logs");
    let logs = run_in_with_env(dir.path(), &["logs", &id, "--state", &url], &env);
    ok(&logs, 0);
    assert!(logs.stdout.contains("odd | a\u{FFFD}b \u{FFFD} end"), "{}", logs.stdout);
    ok(&run_in_with_env(dir.path(), &["audit", "verify", "--state", &url], &env), 0);
}

/// A store written by the previous schema (3) verifies clean once upgraded: its runs'
/// `started_at` (then the time before the first record) is taken from the journal by the
/// migration, and its logs (without digests) are noted, not called tampered.
#[test]
fn a_store_of_the_previous_schema_verifies_clean_after_the_upgrade() {
    let scratch = Scratch::new(TWO_STEPS);
    ok(&scratch.run(&["--yes"], &[]), 0);
    let id = scratch.latest_run();
    let state = scratch.state();
    // Back to what schema 3 held: no log digests, a start time written before the first
    // record, and none of the objects of migrations 4 and later.
    as_before_log_digests(&scratch, &id);
    sqlite(
        &state,
        "DROP TRIGGER runs_identity_fixed; DROP TRIGGER runs_no_delete; \
         DROP TRIGGER runs_head_is_the_journals; \
         DROP TRIGGER step_logs_no_delete; DROP TRIGGER queue_plan_fixed; DROP TRIGGER queue_no_delete; \
         UPDATE runs SET started_at = '2020-01-01T00:00:00.000Z', \
         last_seq = (SELECT MAX(seq) FROM events e WHERE e.run_id = runs.run_id), \
         last_hash = (SELECT hash FROM events e WHERE e.run_id = runs.run_id ORDER BY seq DESC LIMIT 1); \
         DROP TABLE runbook_settings; DROP TABLE runbook_identities; ALTER TABLE events DROP COLUMN db_role; \
         DROP TABLE console_tokens; DROP TABLE schedule_fires; DROP TABLE schedule_alerts; \
         DROP TRIGGER queue_abandon_request_fixed; DROP TRIGGER queue_abandon_not_submitted; ALTER TABLE queue DROP COLUMN abandon_head; ALTER TABLE queue DROP COLUMN resume_by; ALTER TABLE queue DROP COLUMN abandon_by; ALTER TABLE queue DROP COLUMN abandon_reason; \
         DROP TABLE schedule_events; DROP TABLE schedule_heads; DROP TABLE schedule_notices; DROP TABLE console_sessions; DROP TABLE live_output; \
         DELETE FROM _sqlx_migrations WHERE version >= 4; \
         CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'journal rows are append-only'); END;",
    );
    let verify = scratch.cmd(&["audit", "verify"], &[]);
    ok(&verify, 0);
    assert!(verify.stdout.contains(&format!("ok {id}")), "{}", verify.stdout);
    assert!(verify.stdout.contains("the chain does not vouch for them"), "{}", verify.stdout);
    ok(&scratch.cmd(&["show", &id], &[]), 0);
    assert_eq!(sqlite_rows(&state, "SELECT MAX(version) FROM _sqlx_migrations"), ["16"]);
}

/// In db-role mode a worker's engines act as the worker's role (the store would refuse the
/// submitter's name from it): the queued run executes, and its journal names the worker.
#[test]
fn in_db_role_identity_mode_a_worker_runs_queued_runs_as_itself() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.toml"),
        "[runbook]\nname = \"quick\"\n[steps.a]\ncmd = [\"touch\", \"ran\"]\n",
    )
    .expect("runbook");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate", "--identity", "db-role"], None), 0);
    roles.operators(&["ana", "runner"]);
    ok(&roles.cmd("ana", &["submit", "r.toml"], None), 0);
    let host = roles.dir.path().join("runner").display().to_string();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["worker", "--poll", "20ms"])
        .current_dir(roles.dir.path())
        .env("NO_COLOR", "1")
        .env("RUNBOOK_STATE", roles.url("runner"))
        .env("RUNBOOK_OPERATOR", "ana")
        .env("XDG_STATE_HOME", &host)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker");
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let runs: serde_json::Value =
            serde_json::from_str(&roles.cmd("ana", &["runs", "--format", "json"], None).stdout)
                .unwrap_or_default();
        if let Some(r) = runs.as_array().and_then(|r| r.iter().find(|r| r["status"] == "succeeded")) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "the queued run never succeeded: {runs}");
        std::thread::sleep(Duration::from_millis(100));
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let _ = worker.wait();
    assert_eq!(run["operator"], "runner", "{run}");
    assert!(roles.dir.path().join("ran").exists());
    ok(&roles.cmd("ana", &["audit", "verify"], None), 0);
}

/// F12: the submitter of a queued run may not approve it (self-approval is judged against
/// the run's starter and its submitter, journaled in `run_started`), even though a worker's
/// role executes it.
#[test]
fn in_db_role_identity_mode_the_submitter_cannot_approve_a_queued_run() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.toml"),
        "[runbook]\nname = \"gated\"\n\n[steps.go]\napproval = { prompt = \"Go?\", approvers = [\"ana\", \"ben\"] }\n\n\
         [steps.a]\nneeds = [\"go\"]\ncmd = [\"touch\", \"ran\"]\n",
    )
    .expect("runbook");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate", "--identity", "db-role"], None), 0);
    roles.operators(&["ana", "ben", "runner"]);
    ok(&roles.cmd("ana", &["submit", "r.toml", "--yes"], None), 0);
    let host = roles.dir.path().join("runner").display().to_string();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["worker", "--poll", "20ms"])
        .current_dir(roles.dir.path())
        .env("NO_COLOR", "1")
        .env("RUNBOOK_STATE", roles.url("runner"))
        .env("XDG_STATE_HOME", &host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker");
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let id = roles.pg.psql("postgres", "SELECT run_id FROM events WHERE kind = 'approval_requested'");
        if !id.is_empty() {
            break id;
        }
        assert!(Instant::now() < deadline, "the queued run never asked for approval");
        std::thread::sleep(Duration::from_millis(100));
    };
    let own = roles.cmd("ana", &["approve", &id, "go"], None);
    let ben = roles.cmd("ben", &["approve", &id, "go"], None);
    let done = loop {
        if roles.dir.path().join("ran").exists() || Instant::now() > deadline {
            break roles.dir.path().join("ran").exists();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let _ = worker.wait();
    assert_eq!(own.code, 3, "the submitter approved: {}{}", own.stdout, own.stderr);
    assert!(own.stderr.contains("submitted"), "{}", own.stderr);
    ok(&ben, 0);
    assert!(done, "ben's approval did not settle it");
}

/// Red team adv24, "a never-fired schedule's whole journal deleted" (promise 6): with the
/// guard triggers dropped, rows can be deleted whole and no chain shows it, so a store
/// missing a guard is itself tampering. `runbook audit verify` names every guard trigger
/// the schema has and the store lacks (exit 4), and `runbook state migrate`, which said "up
/// to date" and left them dropped, puts each back and says so; the store verifies again and
/// the guard refuses again. The corpus: every guard trigger of a fresh SQLite store dropped
/// alone, then all at once, then the red team's case (a schedule's `watched` record and head
/// deleted). Failed before: `audit verify` said nothing (exit 0) and `state migrate` put
/// nothing back.
#[test]
fn a_dropped_guard_trigger_is_reported_by_verify_and_put_back_by_migrate_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect("git");
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    let rb = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--state", &state]);
        run_in_with_env(dir.path(), &all, &env)
    };
    ok(&rb(&["state", "migrate"]), 0);
    let all = sqlite_rows(&state, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name");
    assert!(all.len() >= 21, "{all:?}");
    let mut cases: Vec<Vec<String>> = all.iter().map(|t| vec![t.clone()]).collect();
    cases.push(all.clone());
    for dropped in &cases {
        for t in dropped {
            sqlite(&state, &format!("DROP TRIGGER \"{t}\""));
        }
        let verified = rb(&["audit", "verify"]);
        ok(&verified, 4);
        for t in dropped {
            assert!(
                verified.stdout.contains(&format!("BROKEN store: guard trigger `{t}` is missing")),
                "{t}: {}",
                verified.stdout
            );
        }
        assert_eq!(verified.stdout.matches("BROKEN store: ").count(), dropped.len(), "{}", verified.stdout);
        let migrated = rb(&["state", "migrate"]);
        ok(&migrated, 0);
        for t in dropped {
            assert!(
                migrated.stdout.contains(&format!("put back guard trigger `{t}`")),
                "{t}: {}",
                migrated.stdout
            );
        }
        let now = sqlite_rows(&state, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name");
        assert_eq!(now, all);
        ok(&rb(&["audit", "verify"]), 0);
        let again = rb(&["state", "migrate"]);
        assert!(!again.stdout.contains("put back"), "{}", again.stdout);
    }
    // Red team adv26 G1, G3: a guard is its definition, not its name. Every guard trigger
    // replaced by a do-nothing trigger of its table under the same name, then under the
    // name in capitals (SQLite's names are case-insensitive), alone and all at once: each
    // named by `audit verify` as not the migrations' own, each dropped and created again by
    // `state migrate`, the definitions exactly as before. Failed before: verify said ok
    // (exit 0), and migrate either left the impostor or failed on "already exists".
    let defs = sqlite_rows(
        &state,
        "SELECT name || '|' || tbl_name FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
    );
    let sql_before =
        sqlite_rows(&state, "SELECT sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name");
    let pairs: Vec<(String, String)> =
        defs.iter().filter_map(|l| l.split_once('|').map(|(a, b)| (a.to_string(), b.to_string()))).collect();
    let mut impostors: Vec<Vec<(String, String, bool)>> = Vec::new();
    for upper in [false, true] {
        for (t, table) in &pairs {
            impostors.push(vec![(t.clone(), table.clone(), upper)]);
        }
        impostors.push(pairs.iter().map(|(t, table)| (t.clone(), table.clone(), upper)).collect());
    }
    for case in &impostors {
        for (t, table, upper) in case {
            let named = if *upper { t.to_ascii_uppercase() } else { t.clone() };
            sqlite(
                &state,
                &format!(
                    "DROP TRIGGER \"{t}\"; CREATE TRIGGER \"{named}\" BEFORE DELETE ON \"{table}\" BEGIN SELECT 1; END;"
                ),
            );
        }
        let verified = rb(&["audit", "verify"]);
        ok(&verified, 4);
        for (t, _, _) in case {
            assert!(
                verified.stdout.contains(&format!(
                    "BROKEN store: guard trigger `{t}` is not the one the migrations create"
                )),
                "{t}: {}",
                verified.stdout
            );
        }
        assert_eq!(verified.stdout.matches("BROKEN store: ").count(), case.len(), "{}", verified.stdout);
        let migrated = rb(&["state", "migrate"]);
        ok(&migrated, 0);
        for (t, _, _) in case {
            assert!(
                migrated.stdout.contains(&format!("put back guard trigger `{t}`")),
                "{t}: {}",
                migrated.stdout
            );
        }
        assert_eq!(
            sqlite_rows(&state, "SELECT sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"),
            sql_before
        );
        assert_eq!(
            sqlite_rows(&state, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"),
            all
        );
        ok(&rb(&["audit", "verify"]), 0);
    }
    // What the operator reads: every guard named, then each put back.
    for t in &all {
        sqlite(&state, &format!("DROP TRIGGER \"{t}\""));
    }
    let verified = rb(&["audit", "verify"]);
    ok(&verified, 4);
    insta::assert_snapshot!("guards_dropped_verify", format!("{}{}", verified.stdout, verified.stderr));
    let migrated = rb(&["state", "migrate"]);
    ok(&migrated, 0);
    insta::assert_snapshot!("guards_dropped_migrate", migrated.stdout.replace(&state, "[state]"));
    // The red team's case: a schedule's journal deleted whole, its guards dropped first.
    for sql in [
        "INSERT INTO schedule_heads (schedule, last_seq, last_hash) VALUES ('nightly', 0, NULL)",
        "DROP TRIGGER schedule_heads_no_delete",
        "DELETE FROM schedule_heads WHERE schedule = 'nightly'",
    ] {
        sqlite(&state, sql);
    }
    let verified = rb(&["audit", "verify"]);
    ok(&verified, 4);
    assert!(
        verified.stdout.contains("BROKEN store: guard trigger `schedule_heads_no_delete` is missing"),
        "{}",
        verified.stdout
    );
    ok(&rb(&["state", "migrate"]), 0);
    // The guard is back: a head is refused its deletion again.
    sqlite(&state, "INSERT INTO schedule_heads (schedule, last_seq, last_hash) VALUES ('weekly', 0, NULL)");
    let refused = Command::new("sqlite3")
        .arg(&state)
        .arg("DELETE FROM schedule_heads WHERE schedule = 'weekly'")
        .output()
        .expect("sqlite3");
    assert!(!refused.status.success(), "the guard did not refuse the delete");
}

/// The same on PostgreSQL: every guard trigger dropped at once and one disabled (`ALTER
/// TABLE ... DISABLE TRIGGER`, which SQLite has not): each named by `audit verify`, each
/// put back (or switched on) by `state migrate`. Failed before as on SQLite.
#[test]
fn a_dropped_guard_trigger_is_reported_by_verify_and_put_back_by_migrate_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect("git");
    let state = pg.url("postgres");
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    let rb = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--state", &state]);
        run_in_with_env(dir.path(), &all, &env)
    };
    ok(&rb(&["state", "migrate"]), 0);
    let list = "SELECT t.tgname || ' ' || c.relname || ' ' || CAST(t.tgenabled AS TEXT) FROM pg_trigger t \
                JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal ORDER BY 1";
    let all = pg.psql("postgres", list);
    let guards: Vec<(String, String)> = all
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect();
    assert!(guards.len() >= 20, "{all}");
    let (kept, table) = guards.last().cloned().expect("a guard");
    let mut sql = String::new();
    for (t, table) in &guards[..guards.len() - 1] {
        sql.push_str(&format!("DROP TRIGGER {t} ON {table}; "));
    }
    sql.push_str(&format!("ALTER TABLE {table} DISABLE TRIGGER {kept};"));
    pg.psql("postgres", &sql);
    let verified = rb(&["audit", "verify"]);
    ok(&verified, 4);
    for (t, _) in &guards[..guards.len() - 1] {
        assert!(
            verified.stdout.contains(&format!("BROKEN store: guard trigger `{t}` is missing")),
            "{t}: {}",
            verified.stdout
        );
    }
    assert!(
        verified.stdout.contains(&format!("BROKEN store: guard trigger `{kept}` is disabled")),
        "{}",
        verified.stdout
    );
    let migrated = rb(&["state", "migrate"]);
    ok(&migrated, 0);
    for (t, _) in &guards {
        assert!(
            migrated.stdout.contains(&format!("put back guard trigger `{t}`")),
            "{t}: {}",
            migrated.stdout
        );
    }
    assert_eq!(pg.psql("postgres", list), all);
    ok(&rb(&["audit", "verify"]), 0);
    // Red team adv26 G1: every guard switched to fire only in replica sessions (`tgenabled`
    // 'R', off for every ordinary session) is named disabled and switched on; every guard
    // function's body replaced by one that lets all through is named and put back, with the
    // settings the migrations pin on it. G3: a guard function dropped with its triggers
    // (CASCADE) comes back before them. Failed before: verify said ok to the first two and
    // migrate "up to date"; to the third, migrate failed on "function ... does not exist".
    let mut sql = String::new();
    for (t, table) in &guards {
        sql.push_str(&format!("ALTER TABLE {table} ENABLE REPLICA TRIGGER {t}; "));
    }
    pg.psql("postgres", &sql);
    let verified = rb(&["audit", "verify"]);
    ok(&verified, 4);
    for (t, _) in &guards {
        assert!(
            verified.stdout.contains(&format!("BROKEN store: guard trigger `{t}` is disabled")),
            "{t}: {}",
            verified.stdout
        );
    }
    ok(&rb(&["state", "migrate"]), 0);
    assert_eq!(pg.psql("postgres", list), all);
    ok(&rb(&["audit", "verify"]), 0);
    let functions_list = "SELECT DISTINCT p.proname || ' ' || CAST(p.prosecdef AS TEXT) || ' ' || \
                          COALESCE(array_to_string(p.proconfig, ';'), '') || ' ' || md5(p.prosrc) \
                          FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal ORDER BY 1";
    let functions_before = pg.psql("postgres", functions_list);
    let functions: Vec<String> =
        functions_before.lines().filter_map(|l| l.split(' ').next().map(str::to_string)).collect();
    assert!(functions.len() >= 8, "{functions_before}");
    let mut sql = String::new();
    for f in &functions {
        sql.push_str(&format!(
            "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$; "
        ));
    }
    pg.psql("postgres", &sql);
    let verified = rb(&["audit", "verify"]);
    ok(&verified, 4);
    for f in &functions {
        assert!(
            verified.stdout.contains(&format!(
                "BROKEN store: guard function `{f}` is not the one the migrations create"
            )),
            "{f}: {}",
            verified.stdout
        );
    }
    let migrated = rb(&["state", "migrate"]);
    ok(&migrated, 0);
    for f in &functions {
        assert!(
            migrated.stdout.contains(&format!("put back guard function `{f}`")),
            "{f}: {}",
            migrated.stdout
        );
    }
    assert_eq!(pg.psql("postgres", functions_list), functions_before);
    ok(&rb(&["audit", "verify"]), 0);
    for f in &functions {
        pg.psql("postgres", &format!("DROP FUNCTION {f}() CASCADE"));
        let verified = rb(&["audit", "verify"]);
        ok(&verified, 4);
        assert!(
            verified.stdout.contains(&format!("BROKEN store: guard function `{f}` is missing")),
            "{}",
            verified.stdout
        );
        ok(&rb(&["state", "migrate"]), 0);
        assert_eq!(pg.psql("postgres", list), all);
        assert_eq!(pg.psql("postgres", functions_list), functions_before);
        ok(&rb(&["audit", "verify"]), 0);
    }
}
