//! Issue 11, second round (red team F2): no trigger of the store can be fooled by a session's
//! own objects. Generated from the database itself: every function a trigger runs, and every
//! `runbook_*` function, must pin its search path with `pg_temp` last (and run as its owner
//! when it reads tables); a role with the book's grants that shadows every table of the store
//! with a temporary copy of its own making gets past none of the guards; and an append chains
//! to the journal's last record, never to a `runs` row moved past its triggers.

use std::process::Command;

use runbook_sandbox::peers::Postgres;

use crate::audit::Roles;
use crate::support::ok;

const GATE: &str = r#"[runbook]
name = "gate"

[steps.go]
approval = { prompt = "Go?" }

[steps.after]
needs = ["go"]
run = "echo approved"
"#;

/// psql as `role`: (success, stdout + stderr).
fn psql_as(roles: &Roles, role: &str, sql: &str) -> (bool, String) {
    let out = Command::new(roles.pg.bin().join("psql"))
        .args([&roles.url(role), "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .expect("psql");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn no_trigger_of_the_store_reads_a_sessions_temporary_tables() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), GATE).expect("runbook");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate", "--identity", "db-role"], None), 0);
    roles.operators(&["ana", "mallory"]);
    ok(&roles.cmd("ana", &["run", "r.toml", "--yes"], None), 4);
    let id = roles.pg.psql("postgres", "SELECT run_id FROM runs");
    let last_seq = roles.pg.psql("postgres", &format!("SELECT last_seq FROM runs WHERE run_id = '{id}'"));

    // From the catalogue: every trigger function and every function of the store.
    let functions = roles.pg.psql(
        "postgres",
        "SELECT DISTINCT p.proname || '|' || p.prosecdef || '|' || coalesce(array_to_string(p.proconfig, ';'), '') \
         || '|' || replace(p.prosrc, E'\\n', ' ') \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = current_schema() AND (p.proname LIKE 'runbook%' \
            OR p.oid IN (SELECT tgfoid FROM pg_trigger WHERE NOT tgisinternal))",
    );
    let tables: Vec<String> = roles
        .pg
        .psql("postgres", "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(tables.len() >= 7, "{tables:?}");
    let mut unpinned = Vec::new();
    for f in functions.lines() {
        let parts: Vec<&str> = f.splitn(4, '|').collect();
        let [name, definer, config, source] = parts[..] else { panic!("{f}") };
        if !config.split(';').any(|c| c.starts_with("search_path=") && c.ends_with("pg_temp")) {
            unpinned.push(format!("{name}: search_path not pinned with pg_temp last ({config:?})"));
        }
        let reads =
            tables.iter().any(|t| source.contains(&format!(" {t} ")) || source.contains(&format!(" {t}\n")));
        if reads && definer != "true" {
            unpinned.push(format!("{name}: reads tables but is not SECURITY DEFINER"));
        }
    }
    assert!(functions.lines().count() >= 8, "{functions}");
    assert!(unpinned.is_empty(), "{}", unpinned.join("\n"));

    // Mallory shadows every table of the store with a copy of her own, forged where a guard
    // would look: the journal's last hash, the identity mapping, the mode.
    let mut shadow = String::new();
    for t in &tables {
        shadow.push_str(&format!("CREATE TEMP TABLE {t} (LIKE public.{t}); "));
        if t != "_sqlx_migrations" {
            shadow.push_str(&format!("INSERT INTO pg_temp.{t} SELECT * FROM public.{t}; "));
        }
    }
    shadow.push_str(
        "UPDATE pg_temp.events SET hash = 'forged'; DELETE FROM pg_temp.runbook_settings; \
         DELETE FROM pg_temp.runbook_identities; INSERT INTO pg_temp.runbook_identities VALUES ('mallory', 'ana'); ",
    );
    let attacks = [
        format!("UPDATE public.runs SET last_hash = 'forged' WHERE run_id = '{id}'"),
        format!("UPDATE public.runs SET last_seq = last_seq + 1 WHERE run_id = '{id}'"),
        format!("UPDATE public.runs SET operator = 'mallory' WHERE run_id = '{id}'"),
        format!("DELETE FROM public.runs WHERE run_id = '{id}'"),
        format!("DELETE FROM public.step_logs WHERE run_id = '{id}'"),
        format!("UPDATE public.events SET body = body WHERE run_id = '{id}'"),
        format!("DELETE FROM public.events WHERE run_id = '{id}'"),
        format!(
            "INSERT INTO public.events (run_id, seq, ts, kind, step, body, prev_hash, hash, db_role) \
             VALUES ('{id}', {last_seq} + 1, 'now', 'approval_granted', 'go', \
             '{{\"kind\":\"approval_granted\",\"step\":\"go\",\"operator\":\"ana\",\"reason\":\"\"}}', 'x', 'y', 'mallory')"
        ),
    ];
    for attack in &attacks {
        for search_path in ["", "SET search_path = pg_temp, public; "] {
            let (passed, text) = psql_as(&roles, "mallory", &format!("{shadow}{search_path}{attack}"));
            assert!(!passed, "mallory got past the guards with {search_path}{attack}: {text}");
        }
    }
    // Nothing changed: the journal verifies and the run goes on.
    ok(&roles.cmd("ana", &["audit", "verify", &id], None), 0);
    ok(&roles.cmd("mallory", &["approve", &id, "go"], None), 0);
    ok(&roles.cmd("ana", &["resume", &id, "--yes"], None), 0);
}

#[test]
fn an_append_chains_to_the_journal_not_to_a_moved_runs_row() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), GATE).expect("runbook");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate"], None), 0);
    ok(&roles.cmd("postgres", &["run", "r.toml", "--yes"], Some("ana")), 4);
    let id = roles.pg.psql("postgres", "SELECT run_id FROM runs");
    // The owner (or anyone past the triggers) moves the head.
    roles.pg.psql(
        "postgres",
        &format!("SET session_replication_role = replica; UPDATE runs SET last_hash = 'forged' WHERE run_id = '{id}'"),
    );
    let approve = roles.cmd("postgres", &["approve", &id, "go"], Some("ben"));
    assert_ne!(
        approve.code, 0,
        "a record was chained to a forged head: {}{}",
        approve.stdout, approve.stderr
    );
    let chained = roles.pg.psql("postgres", "SELECT count(*) FROM events WHERE prev_hash = 'forged'");
    assert_eq!(chained, "0");
    // The journal itself is intact; only the row is named.
    let verify = roles.cmd("postgres", &["audit", "verify", &id], None);
    assert_eq!(verify.code, 4, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("runs.last_hash"), "{}", verify.stdout);
}

/// F6: a `runs` row with no records is not a run: `runs` does not list it, `show` and
/// `report` present nothing of it, `audit verify` names it (SQLite and PostgreSQL).
#[test]
fn a_made_up_runs_row_is_not_presented_as_a_run_and_verify_names_it() {
    let phantom = "20261206T000000Z-deadbeef";
    let insert = |who: &str| {
        format!(
            "INSERT INTO locks VALUES ('prod', 1, NULL, NULL, NULL, 0); \
             INSERT INTO runs (run_id, runbook, operator, started_at, status, finished_at, lock_name, last_seq, last_hash) \
             VALUES ('{phantom}', 'deploy-prod', '{who}', '2026-12-06T00:00:00.000Z', 'succeeded', \
             '2026-12-06T00:01:00.000Z', 'prod', 0, NULL)"
        )
    };
    let check = |out: &dyn Fn(&[&str]) -> crate::support::Output| {
        let runs = out(&["runs"]);
        assert!(!runs.stdout.contains(phantom), "{}", runs.stdout);
        assert!(runs.stderr.contains(phantom), "runs flags it: {}", runs.stderr);
        for cmd in ["show", "report"] {
            let shown = out(&[cmd, phantom]);
            assert_eq!(shown.code, 4, "{cmd}: {}{}", shown.stdout, shown.stderr);
            assert!(!shown.stdout.contains("deploy-prod"), "{cmd} presents it: {}", shown.stdout);
        }
        let verify = out(&["audit", "verify"]);
        assert_eq!(verify.code, 4, "{}{}", verify.stdout, verify.stderr);
        assert!(verify.stdout.contains(&format!("BROKEN {phantom}")), "{}", verify.stdout);
        assert!(verify.stdout.contains("not a run"), "{}", verify.stdout);
    };

    // SQLite: the file's owner writes the row.
    let scratch = crate::support::Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "ana")]), 4);
    let sql = Command::new("sqlite3").arg(scratch.state()).arg(insert("ceo")).output().expect("sqlite3");
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    check(&|args| scratch.cmd(args, &[]));

    // PostgreSQL in db-role mode: an operator's role with the book's grants writes it.
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), GATE).expect("runbook");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate", "--identity", "db-role"], None), 0);
    roles.operators(&["ana", "mallory"]);
    ok(&roles.cmd("ana", &["run", "r.toml", "--yes"], None), 4);
    let (done, text) = psql_as(&roles, "mallory", &insert("mallory"));
    assert!(done, "{text}");
    check(&|args| roles.cmd("ana", args, None));
}

/// F5: a submitted run is bound: an operator's role cannot change its plan or its submitter,
/// nor delete it, and in db-role mode cannot submit as someone else.
#[test]
fn a_queued_plan_and_its_submitter_cannot_be_changed_by_an_operators_role() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.toml"),
        "[runbook]\nname = \"p\"\n\n[steps.deploy]\nrun = \"echo deployed-to-staging\"\n",
    )
    .expect("runbook");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate", "--identity", "db-role"], None), 0);
    roles.operators(&["alice", "mallory"]);
    let forged = roles.cmd("mallory", &["submit", "p.toml", "--yes"], Some("alice"));
    assert_ne!(forged.code, 0, "mallory submitted as alice: {}{}", forged.stdout, forged.stderr);
    ok(&roles.cmd("alice", &["submit", "p.toml", "--yes"], None), 0);
    let id = roles.pg.psql("postgres", "SELECT run_id FROM queue");
    for attack in [
        format!("UPDATE queue SET plan = replace(plan, 'staging', 'production') WHERE run_id = '{id}'"),
        format!("UPDATE queue SET submitted_by = 'mallory' WHERE run_id = '{id}'"),
        format!("UPDATE queue SET labels = 'anywhere' WHERE run_id = '{id}'"),
        format!("DELETE FROM queue WHERE run_id = '{id}'"),
    ] {
        let (passed, text) = psql_as(&roles, "mallory", &attack);
        assert!(!passed, "mallory changed the queue: {attack}: {text}");
    }
    let plan = roles.pg.psql("postgres", &format!("SELECT plan FROM queue WHERE run_id = '{id}'"));
    assert!(plan.contains("staging") && !plan.contains("production"), "{plan}");
}

/// Minor finding: `state check` verifies what it reports: a trigger dropped or disabled, or a
/// db-role setting a SQLite file cannot enforce, is named and the check fails (exit 5).
#[test]
fn state_check_names_guards_that_do_not_hold() {
    let scratch = crate::support::Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "ana")]), 4);
    let fine = scratch.cmd(&["state", "check"], &[]);
    ok(&fine, 0);
    assert!(fine.stdout.contains("every trigger of the schema is present"), "{}", fine.stdout);
    let sqlite = |sql: &str| {
        let out = Command::new("sqlite3").arg(scratch.state()).arg(sql).output().expect("sqlite3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    sqlite("DROP TRIGGER runs_head_is_the_journals");
    let dropped = scratch.cmd(&["state", "check"], &[]);
    assert_eq!(dropped.code, 5, "{}{}", dropped.stdout, dropped.stderr);
    assert!(
        dropped.stdout.contains("missing, disabled or altered: runs_head_is_the_journals"),
        "{}",
        dropped.stdout
    );
    sqlite("INSERT OR REPLACE INTO runbook_settings VALUES ('identity', 'db-role')");
    let claimed = scratch.cmd(&["state", "check"], &[]);
    assert_eq!(claimed.code, 5, "{}{}", claimed.stdout, claimed.stderr);
    assert!(!claimed.stdout.contains("identity: db-role"), "{}", claimed.stdout);
    assert!(claimed.stdout.contains("cannot enforce"), "{}", claimed.stdout);

    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate", "--identity", "db-role"], None), 0);
    roles.operators(&["ana"]);
    ok(&roles.cmd("ana", &["state", "check"], None), 0);
    roles.pg.psql("postgres", "ALTER TABLE events DISABLE TRIGGER events_identity");
    let disabled = roles.cmd("ana", &["state", "check"], None);
    assert_eq!(disabled.code, 5, "{}{}", disabled.stdout, disabled.stderr);
    assert!(disabled.stdout.contains("events_identity"), "{}", disabled.stdout);
}

/// Minor finding: in `declared` mode too, a record's `db_role` is the writer's session role
/// (any role could write `db_role: bob` before).
#[test]
fn in_declared_mode_a_record_names_its_writers_role_too() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), GATE).expect("runbook");
    let roles = Roles { pg, dir };
    ok(&roles.cmd("postgres", &["state", "migrate"], None), 0);
    roles.operators(&["ana", "mallory"]);
    ok(&roles.cmd("ana", &["run", "r.toml", "--yes"], None), 4);
    let id = roles.pg.psql("postgres", "SELECT run_id FROM runs");
    let (passed, text) = psql_as(
        &roles,
        "mallory",
        &format!(
            "INSERT INTO events (run_id, seq, ts, kind, step, body, prev_hash, hash, db_role) \
             VALUES ('{id}', 97, 'now', 'approval_granted', 'go', \
             '{{\"kind\":\"approval_granted\",\"step\":\"go\",\"operator\":\"bob\",\"reason\":\"\"}}', 'x', 'y', 'bob')"
        ),
    );
    assert!(!passed, "mallory wrote a record naming role bob: {text}");
    // The engine's own records still pass, in this mode as in the other.
    ok(&roles.cmd("mallory", &["approve", &id, "go"], Some("bob")), 0);
}
