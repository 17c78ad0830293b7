//! The quarterly drill (`runbooks/drill.toml`) on schemas it was not written for (issue 12,
//! point 3): a later table with a foreign key, a view, legitimate zeros; a rollback that
//! fails; parameters that are wrong. The drill knows no table of the application: it checks
//! every table of the backup, and it always reaches its review.

use std::path::Path;
use std::process::Command;

use crate::e2e::{AFTER, Approvals, BEFORE, E2e};
use crate::support::ok;

const REVIEW: &[&str] = &["problems=ninguno", "procedure_updates=ninguno", "next_drill=2027-03-01"];

const APPROVALS: Approvals<'static> = &[
    ("rollback/checklist_before", "devops-lead", BEFORE),
    ("rollback/checklist_before", "dba", &[]),
    ("rollback/checklist_after", "backend-lead", AFTER),
    ("review", "tech-lead", REVIEW),
];

/// A custom-format dump of the app database as it is now: the "production backup".
fn production_backup(e: &E2e, name: &str) -> String {
    let file = e.sb.backups.join(name);
    let status = Command::new(e.sb.pg.bin().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&file)
        .arg(e.sb.database_url())
        .status()
        .expect("pg_dump");
    assert!(status.success(), "pg_dump of the production stand-in");
    file.display().to_string()
}

/// The drill's evidence dumps in the backup folder.
fn evidence_dumps(e: &E2e) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&e.sb.backups)
        .map(|d| d.flatten().map(|f| f.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| n.contains("-pre-drill-"));
    names.sort();
    names
}

fn toc(e: &E2e, file: &Path) -> String {
    let out = Command::new(e.sb.pg.bin().join("pg_restore")).arg("--list").arg(file).output().expect("list");
    assert!(out.status.success(), "{} is a readable custom-format dump", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn logs(e: &E2e, run: &str, step: &str) -> String {
    e.runbook(&["logs", run, step], "oncall").stdout
}

fn write(e: &E2e, name: &str, text: &str) -> String {
    let path = e.sb.dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// The situation of the team's second environment, reproduced on the sandbox: production's
/// data holds a legitimate zero; after the backup was taken, a migration added a table with a
/// foreign key to one of the backup's tables and a view over it. A plain
/// `pg_restore --clean` cannot drop the referenced table's key; the old drill failed there,
/// after staging had been touched, and its check counted every zero as corruption.
#[test]
fn the_drill_works_over_a_later_table_with_a_foreign_key_a_view_and_legitimate_zeros() {
    let e = E2e::new();
    e.sb.psql(r#"UPDATE "Property" SET price = 0 WHERE id = 4"#);
    let production = e.sb.dump();
    let backup = production_backup(&e, "production-daily.dump");
    e.sb.psql(
        r#"CREATE TABLE payments (id SERIAL PRIMARY KEY, property_id INTEGER NOT NULL REFERENCES "Property"(id), amount NUMERIC(12, 2) NOT NULL);
           INSERT INTO payments (property_id, amount) VALUES (1, 1000.00), (4, 0);
           CREATE VIEW property_totals AS SELECT p.id, coalesce(sum(pay.amount), 0) AS paid FROM "Property" p LEFT JOIN payments pay ON pay.property_id = p.id GROUP BY p.id;
           INSERT INTO "User" (email, name) VALUES ('staging-only@inmova.test', 'Staging')"#,
    );
    // The team's own checks (name, expected, found) and incident, as files.
    let checks = write(
        &e,
        "checks.sql",
        "SELECT 'inmuebles', 5, count(*) FROM \"Property\";\n\
         SELECT 'inmuebles a precio 0 (legítimos)', 1, count(*) FROM \"Property\" WHERE price = 0;\n",
    );
    let incident = write(&e, "incident.sql", "UPDATE \"Property\" SET price = 0;\n");

    let out = e.drive(
        "drill",
        &[("production_backup", &backup), ("checks_file", &checks), ("incident_file", &incident)],
        APPROVALS,
    );
    ok(&out, 0);
    let run = e.latest_run();

    // The rehearsal named what only staging had, before anything changed.
    let rehearse = logs(&e, &run, "rehearse");
    assert!(
        rehearse.contains("public.payments") && rehearse.contains("public.property_totals"),
        "{rehearse}"
    );
    // Staging as it was is kept, named in the announcement.
    let evidence = evidence_dumps(&e);
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let list = toc(&e, &e.sb.backups.join(&evidence[0]));
    assert!(list.contains("TABLE public payments") && list.contains("VIEW public property_totals"), "{list}");
    let hooks = e.sb.app.hooks().join("\n");
    assert!(hooks.contains(&evidence[0]), "the announcement names the evidence dump: {hooks}");
    // Staging is production's copy again (the later table and view went with the swap).
    assert_eq!(e.sb.dump(), production, "staging holds exactly the production backup");
    // Every table compared, with its values; the team's checks printed with theirs.
    let check = logs(&e, &run, "data_restored");
    for table in [r#"public."Property""#, r#"public."User""#, "public._prisma_migrations"] {
        let line = check.lines().find(|l| l.contains(table)).unwrap_or_default();
        assert!(line.ends_with("igual"), "{table} in:\n{check}");
    }
    assert!(check.contains("inmuebles a precio 0 (legítimos) | 1 | 1 | igual"), "{check}");
    assert!(check.contains("correcto: las 3 tablas del backup coinciden"), "{check}");
    assert!(hooks.contains("Simulacro en sandbox: succeeded"), "{hooks}");
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

/// Start the drill on a sandbox whose origin refuses pushes, approve l3's first checklist,
/// and go on: l3 fails at its push and undoes itself. The run id.
fn start_a_drill_whose_rollback_fails(e: &E2e) -> String {
    e.sb.set_origin_refusing(true);
    let params = e.params_file("drill", &[]);
    let out = e.runbook(&["run", "runbooks/drill.toml", "--params-file", &params, "--yes"], "oncall");
    ok(&out, 4);
    assert!(
        out.stdout.contains("suspended: waiting for approval of rollback/checklist_before"),
        "{}",
        out.stdout
    );
    let run = e.latest_run();
    let mut args = vec!["approve", run.as_str(), "rollback/checklist_before"];
    for i in BEFORE {
        args.extend(["--input", i]);
    }
    ok(&e.runbook(&args, "devops-lead"), 0);
    ok(&e.runbook(&["approve", &run, "rollback/checklist_before"], "dba"), 0);
    run
}

const FAILED_REVIEW: &[&str] =
    &["problems=push rechazado por origin", "procedure_updates=revisar permisos", "next_drill=2027-03-01"];

fn approve_review(e: &E2e, run: &str) {
    let mut args = vec!["approve", run, "review"];
    for i in FAILED_REVIEW {
        args.extend(["--input", i]);
    }
    ok(&e.runbook(&args, "tech-lead"), 0);
}

/// What a drill whose rollback failed must have left: the check printed both values of the
/// table the incident emptied, the review recorded, the run `failed`.
fn assert_failed_and_reviewed(e: &E2e, run: &str) {
    assert!(e.steps_with(run, "step_failed").contains(&"rollback".to_string()));
    // The incident deleted the backup's largest table (chosen and printed at run time); the
    // rollback undid itself, so the check finds it empty and prints both values.
    let incident = logs(e, run, "simulate_incident");
    assert!(incident.contains(r#"se borran las 5 filas de public."Property""#), "{incident}");
    let check = logs(e, run, "data_restored");
    let line = check.lines().find(|l| l.contains(r#"public."Property""#)).unwrap_or_default();
    let line = line.split_once(" | ").map_or(line, |(_, text)| text);
    // table, backup's rows and checksum, database's rows and checksum, verdict
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols.len(), 6, "{check}");
    assert_eq!((cols[1], cols[3], cols[5]), ("5", "0", "DISTINTA"), "{check}");
    assert_ne!(cols[2], cols[4], "{check}");
    assert!(check.contains("FALLO: 1 de 3 tablas distintas del backup"), "{check}");
    // The review was reached and recorded; the run's status stays honest.
    assert!(e.steps_with(run, "step_succeeded").contains(&"review".to_string()));
    let skipped = e.steps_with(run, "step_skipped");
    assert!(skipped.contains(&"rollback_done".to_string()) && skipped.contains(&"data_checked".to_string()));
    let audit = e.runbook(&["audit", run, "--format", "jsonl"], "oncall").stdout;
    let finished: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "run_finished")
        .collect();
    assert_eq!(
        finished.last().map(|r| r["event"]["status"].clone()),
        Some(serde_json::json!("failed")),
        "{audit}"
    );
    assert!(e.sb.app.hooks().join("\n").contains("Simulacro en sandbox: failed"));
    let report = e.runbook(&["report", run], "oncall").stdout;
    assert!(report.contains("push rechazado por origin"), "{report}");
    ok(&e.runbook(&["audit", "verify", run], "oncall"), 0);
}

/// A rollback that fails (the push is refused; l3 undoes itself) is what a drill is for: the
/// check still runs and prints what differs, the review is still asked for and recorded, and
/// the run ends `failed`, not "success". Here the engine stays attached (`--wait`) while the
/// review is decided from another terminal.
#[test]
fn a_drill_whose_rollback_fails_still_checks_the_data_reaches_the_review_and_ends_failed() {
    let e = E2e::new();
    let run = start_a_drill_whose_rollback_fails(&e);
    let state = e.state();
    let mut engine = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["resume", &run, "--yes", "--wait", "--state", &state, "--as", "oncall"])
        .current_dir(crate::support::root())
        .envs(e.sb.env())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("resume");
    // Generous: the rollback, its compensation and the check run first on a loaded machine.
    let mut asked = false;
    for _ in 0..6000 {
        if e.steps_with(&run, "approval_requested").contains(&"review".to_string()) {
            asked = true;
            break;
        }
        if engine.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !asked {
        let _ = engine.kill();
    }
    assert!(asked, "the review is asked for after the failed rollback");
    approve_review(&e, &run);
    let out = engine.wait_with_output().expect("engine");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("FAILED rollback"), "{stdout}");
    assert_failed_and_reviewed(&e, &run);
}

/// The same drill suspended at its review (no terminal): `runbook resume` after the review's
/// approval must finish it. The engine refuses today: `resume` counts the compensations that
/// the INCLUDED rollback ran on itself as the drill's own, although the `rollback` step's
/// `on-failure` is `continue` (engine/cli/run.rs, `compensated`).
#[test]
#[ignore = "engine gap: resume refuses a run whose included runbook compensated itself under a step with on-failure = continue"]
fn a_drill_suspended_at_its_review_after_a_failed_rollback_resumes_to_the_end() {
    let e = E2e::new();
    let run = start_a_drill_whose_rollback_fails(&e);
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 4);
    assert!(out.stdout.contains("suspended: waiting for approval of review"), "{}", out.stdout);
    approve_review(&e, &run);
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 1);
    assert_failed_and_reviewed(&e, &run);
}

/// Everything the drill can verify before staging changes fails before staging changes:
/// the tag, the backup, the folder for the evidence, the team's SQL files (readable, no
/// transaction control, valid against the BACKUP's schema, not only staging's).
#[test]
fn a_drill_with_a_wrong_parameter_fails_before_staging_changes() {
    let e = E2e::new();
    // Staging has data and a column of its own (a later migration), unlike the backup.
    e.sb.psql(
        r#"INSERT INTO "User" (email, name) VALUES ('staging-only@inmova.test', 'Staging');
           ALTER TABLE "Property" ADD COLUMN archived_at TIMESTAMPTZ"#,
    );
    let before = e.sb.dump();
    let not_a_dump = write(&e, "not-a-dump.sql", "SELECT 1;\n");
    let missing_table = write(&e, "checks-missing.sql", "SELECT 'pagos', 0, count(*) FROM payments;\n");
    let commits = write(&e, "checks-commit.sql", "SELECT 'x', 1, 1;\nCOMMIT;\n");
    // Valid against staging's schema, not against the backup's.
    let later_column = write(&e, "incident-later.sql", "UPDATE \"Property\" SET archived_at = now();\n");
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("tag that does not exist", &[("stable_tag", "v9.9.9-stable")]),
        ("backup that is not a custom-format dump", &[("production_backup", &not_a_dump)]),
        ("no folder for the evidence dump", &[("backup_dir", "/nonexistent/backups")]),
        ("check on a table the backup lacks", &[("checks_file", &missing_table)]),
        ("check file that commits", &[("checks_file", &commits)]),
        ("incident on a column only staging has", &[("incident_file", &later_column)]),
        ("unreadable incident file", &[("incident_file", "/nonexistent/incident.sql")]),
    ];
    for (case, extra) in cases {
        let params = e.params_file("drill", extra);
        let out = e.runbook(&["run", "runbooks/drill.toml", "--params-file", &params, "--yes"], "oncall");
        assert!(out.code != 0 && out.code != 4, "{case}: exit {}\n{}\n{}", out.code, out.stdout, out.stderr);
        assert_eq!(e.sb.dump(), before, "{case}: staging untouched\n{}", out.stdout);
        assert!(evidence_dumps(&e).is_empty(), "{case}: nothing dumped");
        assert!(
            !e.sb.app.hooks().join("\n").contains("Simulacro trimestral"),
            "{case}: nobody was told it started"
        );
    }
}
