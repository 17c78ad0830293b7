//! Preconditions only read, and a gate counts only once it is journaled as passed (issue 12,
//! red team adv12: engine findings 1, 2 and 11, data finding 12). Through the real binary,
//! against SQLite and a throwaway PostgreSQL cluster.

use std::path::Path;
use std::time::{Duration, Instant};

use runbook_sandbox::peers::Postgres;

use crate::resume::{Place, count, wait};
use crate::support::{Scratch, ok};

/// SQL that a read-only check must not run: each does more than read, and a read-only
/// transaction alone does not stop it.
const DOES_MORE_THAN_READ: &[&str] = &[
    "SET TRANSACTION READ WRITE; INSERT INTO t VALUES (1)",
    "COMMIT; INSERT INTO t VALUES (2)",
    "COMMIT; VACUUM INTO 'copy.db'",
    "COPY (SELECT 1) TO '/tmp/x'",
    "COPY t TO PROGRAM 'id'",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "SELECT pg_cancel_backend(1)",
    "SELECT lo_export(1, '/tmp/x')",
    "SELECT dblink_exec('host=x', 'DELETE FROM t')",
    "SELECT set_config('search_path', 'x', false)",
    "SELECT pg_reload_conf()",
    "SELECT 1 /* ; */ ; DELETE FROM t",
    "SELECT $q$;$q$; DELETE FROM t",
    "DELETE FROM t",
    "PRAGMA query_only = 0",
    "ATTACH 'x.db' AS x",
    "VACUUM INTO 'copy.db'",
    "DO $$ BEGIN PERFORM 1; END $$",
    "SELECT \"pg_terminate_backend\"(pid) FROM pg_stat_activity",
    "SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, true, '')",
];

fn sql_precondition(query: &str) -> String {
    format!(
        "[runbook]\nname = \"ro\"\n\n[preconditions.reads]\nsql = {{ url = \"sqlite:db.sqlite\", query = {} }}\nmessage = \"no\"\n\n[steps.after]\nrun = \"echo ran > ran\"\n",
        toml_string(query)
    )
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `check` names every such SQL precondition (RB081), and `run` refuses it before the
/// database sees it: the step after it never runs.
#[test]
fn check_flags_and_run_refuses_sql_that_does_more_than_read() {
    for query in DOES_MORE_THAN_READ {
        let s = Scratch::new(&sql_precondition(query));
        let out = crate::support::run_in(s.path(), &["check", "r.toml"]);
        assert!(out.stderr.contains("warning[RB081]"), "check says nothing about {query}:\n{}", out.stderr);
        let out = s.run(&["--yes", "--as", "oncall"], &[]);
        assert_ne!(out.code, 0, "{query} ran: {out:?}");
        assert!(s.read("ran").is_empty(), "the step ran after {query}");
        assert!(!s.path().join("copy.db").exists(), "{query} wrote copy.db");
    }
    // What only reads is not flagged.
    for query in ["SELECT 1 AS one", "WITH x AS (SELECT 'COMMIT; DELETE' AS a) SELECT a FROM x"] {
        let s = Scratch::new(&sql_precondition(query));
        let out = crate::support::run_in(s.path(), &["check", "r.toml"]);
        assert!(!out.stderr.contains("RB081"), "{query} flagged:\n{}", out.stderr);
    }
}

/// SQLite: a script that ends the engine's transaction and runs `VACUUM INTO` wrote a full
/// copy of the database (adv12 engine finding 1).
#[test]
fn a_sqlite_precondition_script_cannot_end_its_transaction_and_write() {
    let s = Scratch::new(
        "[runbook]\nname = \"s\"\n[preconditions.c]\nsql = { url = \"sqlite:db.sqlite\", file = \"c.sql\" }\n[steps.s]\nrun = \"echo ran > ran\"\n",
    );
    let db = s.path().join("db.sqlite");
    let make = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE t(a); INSERT INTO t VALUES ('a row')")
        .status();
    if !make.is_ok_and(|st| st.success()) {
        // Without the sqlite3 shell: an empty file is a valid, empty database.
        std::fs::write(&db, b"").expect("db");
    }
    std::fs::write(s.path().join("c.sql"), "COMMIT;\nVACUUM INTO 'copy.db';\n").expect("script");
    let out = s.run(&["--yes", "--as", "o"], &[]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!s.path().join("copy.db").exists(), "a read-only precondition wrote copy.db: {out:?}");
    assert!(s.read("ran").is_empty(), "the step ran");
}

/// PostgreSQL: `SET TRANSACTION READ WRITE` first, `COMMIT` first, and `COPY .. TO` a file
/// all wrote from a "read-only" precondition (adv12 engine finding 1).
#[test]
fn a_postgres_precondition_cannot_escape_its_read_only_transaction() {
    let pg = Postgres::start();
    pg.psql("postgres", "CREATE TABLE adv_ro(x int)");
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let copied = dir.path().join("copied.txt");
    std::fs::write(
        dir.path().join("escape.sql"),
        "SET TRANSACTION READ WRITE;\nINSERT INTO adv_ro VALUES (1);\n",
    )
    .expect("escape.sql");
    std::fs::write(dir.path().join("commit.sql"), "COMMIT;\nINSERT INTO adv_ro VALUES (2);\n")
        .expect("commit.sql");
    let copy = format!("COPY (SELECT 'pwned') TO '{}'", copied.display());
    for (n, sql) in [
        "file = \"escape.sql\"".to_string(),
        "file = \"commit.sql\"".to_string(),
        format!("query = {}", toml_string(&copy)),
        format!(
            "query = {}",
            toml_string("WITH w AS (SELECT 1) SELECT set_config('application_name', 'changed', false)")
        ),
    ]
    .iter()
    .enumerate()
    {
        let runbook = format!(
            "[runbook]\nname = \"ro-escape\"\n[params.db]\ntype = \"string\"\n[preconditions.only_reads]\nsql = {{ url = \"{{{{ params.db }}}}\", {sql} }}\n[steps.noop]\nrun = \"echo ran > ran-{n}\"\n"
        );
        std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
        let state = dir.path().join("state.db").display().to_string();
        let p = format!("db={url}");
        let out = crate::support::run_in(
            dir.path(),
            &["run", "r.toml", "-p", &p, "--yes", "--state", &state, "--as", "oncall"],
        );
        assert_ne!(out.code, 0, "{sql}: {out:?}");
        assert!(!dir.path().join(format!("ran-{n}")).exists(), "{sql}: the step ran");
    }
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM adv_ro"), "0", "a precondition wrote rows");
    assert!(!copied.exists(), "COPY TO wrote a server file from a read-only precondition");
}

/// Prisma's `?schema=` is the schema its tables live in: a `sql` step reads that schema's
/// tables, not `public`'s (adv12 data finding 12).
#[test]
fn a_sql_step_reads_the_schema_its_url_names() {
    let pg = Postgres::start();
    pg.psql(
        "postgres",
        "CREATE SCHEMA app; CREATE TABLE app.marker(v text); INSERT INTO app.marker VALUES ('app');
         CREATE TABLE public.marker(v text); INSERT INTO public.marker VALUES ('public');",
    );
    let url = format!("{}&schema=app", pg.url("postgres"));
    let s = Scratch::new(
        r#"[runbook]
name = "schema"
[params.db]
type = "string"
[steps.which]
sql = { url = "{{ params.db }}", query = "SELECT v, current_schema() AS s FROM marker", assert = "rows[0].v == 'app' and rows[0].s == 'app'", read-only = true }
[steps.written]
needs = ["which"]
sql = { url = "{{ params.db }}", query = "INSERT INTO marker VALUES ('written')" }
"#,
    );
    let p = format!("db={url}");
    let out = s.run(&["-p", &p, "--yes", "--as", "oncall"], &[]);
    ok(&out, 0);
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM app.marker WHERE v = 'written'"), "1");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM public.marker"), "1");
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start the run, kill the engine with SIGKILL once `marker` exists, then let what it
/// started go on (`release`).
fn kill_run_when(place: &Place, marker: &str) {
    let mut engine = place.spawn(&["run", "r.toml", "--yes", "--as", "oncall"]);
    wait_for(&place.path().join(marker));
    engine.kill().expect("kill -9");
    let _ = wait(engine);
    std::fs::write(place.path().join("release"), "").expect("release");
}

/// The engine is killed while a runbook precondition (which would fail) is being checked;
/// `resume` must check it again, not start the steps (adv12 engine finding 2).
#[test]
fn resume_checks_the_preconditions_a_run_never_passed() {
    let place = Place::sqlite(
        r#"[runbook]
name = "pc"
[preconditions.gate]
run = 'touch checking; while [ ! -f release ]; do sleep 0.05; done; rm -f checking; echo "the gate says no" >&2; exit 1'
message = "el entorno no está listo"
[steps.irreversible]
run = 'echo done > irreversible-happened'
"#,
    );
    kill_run_when(&place, "checking");
    // The orphaned check ends on its own: it sees `release` and removes `checking`, or it
    // was ended with its engine (no process is left in the run's folder). Waiting for the
    // first alone waited the whole minute when the second happened.
    let start = Instant::now();
    while place.path().join("checking").exists()
        && !crate::crash::processes_in(place.path()).is_empty()
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = place.latest_run();
    let out = place.cmd(&["resume", &run, "--yes", "--as", "oncall"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        !place.path().join("irreversible-happened").exists(),
        "the step ran; the gate never passed: {out:?}"
    );
    assert!(out.stderr.contains("precondition `gate`"), "{}", out.stderr);
    let journal = place.journal(&run);
    assert_eq!(count(&journal, "step_started", Some("irreversible")), 0);
    place.verify(&run);
}

/// A precondition whose pass the journal records is not checked again at resume: what it
/// checked may have changed because of the run's own steps.
#[test]
fn resume_does_not_check_again_preconditions_the_run_passed() {
    let place = Place::sqlite(
        r#"[runbook]
name = "pc"
[preconditions.fresh]
run = 'test ! -f first-done'
[steps.first]
run = 'touch first-done'
[steps.wait]
needs = ["first"]
run = 'touch waiting; while [ ! -f release ]; do sleep 0.05; done'
idempotent = true
[steps.last]
needs = ["wait"]
run = 'touch last-done'
"#,
    );
    kill_run_when(&place, "waiting");
    let run = place.latest_run();
    let out = place.cmd(&["resume", &run, "--yes", "--as", "oncall"]);
    ok(&out, 0);
    assert!(place.path().join("last-done").exists());
}

/// RB081 knows the writers of this team's stack (adv12 engine finding 11).
#[test]
fn rb081_names_the_writers_of_the_teams_stack() {
    for script in [
        r#"psql "$DATABASE_URL" -c "DELETE FROM users""#,
        r#"psql "$DATABASE_URL" -tAc "UPDATE users SET a = 1""#,
        "yarn prisma migrate reset --force",
        "npx prisma migrate deploy",
        "npx prisma db push",
        "rsync -a --delete a/ b/",
        "find . -delete",
        "kill -9 1234",
    ] {
        let s = Scratch::new(&format!(
            "[runbook]\nname = \"w\"\n[preconditions.p]\nrun = '''{script}'''\n[steps.s]\nrun = \"true\"\n"
        ));
        let out = crate::support::run_in(s.path(), &["check", "r.toml"]);
        assert!(out.stderr.contains("warning[RB081]"), "no RB081 for {script}:\n{}", out.stderr);
    }
    for script in
        [r#"psql "$DATABASE_URL" -tAc "SELECT 1""#, "npx prisma migrate status", r#"kill -0 "$pid""#]
    {
        let s = Scratch::new(&format!(
            "[runbook]\nname = \"w\"\n[preconditions.p]\nrun = '''{script}'''\n[steps.s]\nrun = \"true\"\n"
        ));
        let out = crate::support::run_in(s.path(), &["check", "r.toml"]);
        assert!(!out.stderr.contains("RB081"), "RB081 for {script}:\n{}", out.stderr);
    }
}
