//! The team's runbooks, end to end, each against a fresh sandbox (`examples/sandbox`): a real
//! PostgreSQL database, a git origin, the app's health endpoint and a webhook receiver.

use std::path::Path;

use runbook_sandbox::Sandbox;
pub(crate) use runbook_sandbox::sandbox::Shape;

use crate::support::{Output, ok, root};

pub(crate) struct E2e {
    pub(crate) sb: Sandbox,
    _dir: tempfile::TempDir,
}

impl E2e {
    /// The first environment ([`Shape::Inmova`]).
    pub(crate) fn new() -> E2e {
        E2e::with(Shape::Inmova)
    }

    /// An environment of `shape`.
    pub(crate) fn with(shape: Shape) -> E2e {
        let dir = tempfile::tempdir().expect("tempdir");
        let sb = Sandbox::start_shaped(dir.path(), shape);
        E2e { sb, _dir: dir }
    }

    pub(crate) fn state(&self) -> String {
        self.sb.dir.join("state.db").display().to_string()
    }

    /// `runbook ARGS --state S` from the repository root, with the sandbox's environment.
    pub(crate) fn runbook(&self, args: &[&str], operator: &str) -> Output {
        let state = self.state();
        let mut all = args.to_vec();
        all.extend(["--state", &state, "--as", operator]);
        let env = self.sb.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::support::run_in_with_env(&root(), &all, &env)
    }

    pub(crate) fn params_file(&self, runbook: &str, extra: &[(&str, &str)]) -> String {
        let path = self.sb.dir.join(format!("{runbook}.params.toml"));
        std::fs::write(&path, self.sb.params_toml(runbook, extra)).expect("params");
        path.display().to_string()
    }

    /// The steps of the journal's `kind` records, in journal order.
    pub(crate) fn steps_with(&self, run: &str, kind: &str) -> Vec<String> {
        let audit = self.runbook(&["audit", run, "--format", "jsonl"], "oncall").stdout;
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["kind"] == kind)
            .filter_map(|r| r["step"].as_str().map(str::to_string))
            .collect()
    }

    pub(crate) fn latest_run(&self) -> String {
        crate::support::latest_run_id(&root(), Path::new(&self.state())).expect("a run")
    }
}

/// Who approves what, and with which inputs, when a run waits.
pub(crate) type Approvals<'a> = &'a [(&'a str, &'a str, &'a [&'a str])];

impl E2e {
    /// Run `runbook` to its end as an on-call engineer would: start it, and each time it
    /// waits for approvals, have the listed people approve, then resume. The last output.
    pub(crate) fn drive(&self, runbook: &str, extra: &[(&str, &str)], approvals: Approvals<'_>) -> Output {
        self.drive_file(&format!("runbooks/{runbook}.toml"), runbook, extra, approvals)
    }

    /// [`E2e::drive`] on the runbook at `file`, with the sandbox's params for `runbook`.
    pub(crate) fn drive_file(
        &self,
        file: &str,
        runbook: &str,
        extra: &[(&str, &str)],
        approvals: Approvals<'_>,
    ) -> Output {
        let params = self.params_file(runbook, extra);
        let file = file.to_string();
        let mut out = self.runbook(&["run", &file, "--params-file", &params, "--yes"], "oncall");
        for _ in 0..10 {
            if out.code != 4 {
                return out;
            }
            let Some(waiting) =
                out.stdout.lines().find_map(|l| l.strip_prefix("suspended: waiting for approval of "))
            else {
                return out;
            };
            let run = self.latest_run();
            for step in waiting.split(", ") {
                for (s, who, inputs) in approvals.iter().filter(|(s, _, _)| *s == step) {
                    let mut args = vec!["approve", run.as_str(), s];
                    for i in inputs.iter() {
                        args.extend(["--input", i]);
                    }
                    ok(&self.runbook(&args, who), 0);
                }
            }
            out = self.runbook(&["resume", &run, "--yes"], "oncall");
        }
        out
    }
}

#[test]
fn rollback_l3_restores_the_database_and_the_stable_code() {
    let e = E2e::new();
    assert!(e.sb.deployed_version().starts_with("v1.0.1"), "{}", e.sb.deployed_version());
    // The state the chosen backup holds, then the corruption the rollback is for.
    let before = e.sb.dump();
    e.sb.psql(r#"DELETE FROM "Property" WHERE id > 2; UPDATE "User" SET email = 'lost@example.invalid' WHERE id = 1"#);
    assert_ne!(e.sb.dump(), before);

    let params = e.params_file("rollback-l3", &[]);
    let out = e.runbook(&["run", "runbooks/rollback-l3.toml", "--params-file", &params, "--yes"], "oncall");
    ok(&out, 4);
    assert!(out.stdout.contains("suspended: waiting for approval of checklist_before"), "{}", out.stdout);
    let run = e.latest_run();
    // Two of the three leads, each once; the on-call engineer who started it cannot.
    ok(&e.runbook(&["approve", &run, "checklist_before"], "oncall"), 3);
    let inputs = ["--input", "incident=INC-42", "--input", "root_cause=a bad data migration"];
    let mut args = vec!["approve", run.as_str(), "checklist_before"];
    args.extend(inputs);
    ok(&e.runbook(&args, "devops-lead"), 0);
    ok(&e.runbook(&["approve", &run, "checklist_before"], "dba"), 0);
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 4);
    assert!(out.stdout.contains("suspended: waiting for approval of checklist_after"), "{}", out.stdout);

    // The database is back to the backup, the code to the stable tag.
    assert_eq!(e.sb.dump(), before, "the restored database equals the state the backup held");
    assert_eq!(e.sb.origin_commit("main"), e.sb.origin_commit("v1.0.0-stable^{commit}"));

    let after = ["--input", "result=exito", "--input", "incident_report=https://wiki.inmova.test/INC-42"];
    let mut args = vec!["approve", run.as_str(), "checklist_after"];
    args.extend(after);
    ok(&e.runbook(&args, "backend-lead"), 0);
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 0);
    // The pre-rollback backup exists and is a readable custom-format dump.
    let backups: Vec<_> = std::fs::read_dir(&e.sb.backups)
        .expect("backups")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sandbox-pre-l3-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let hooks = e.sb.app.hooks().join("\n");
    assert!(hooks.contains("Rollback completo (nivel 3) inminente"), "{hooks}");
    assert!(hooks.contains("resultado exito"), "{hooks}");
    assert!(hooks.contains("terminó: succeeded"), "{hooks}");
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

pub(crate) const BEFORE: &[&str] = &["incident=INC-7", "root_cause=the release broke the listing"];
const BEFORE_L2: &[&str] = &[
    "incident=INC-8",
    "root_cause=archived_at broke queries",
    "migration_review=https://git.inmova.test/pr/9",
];
pub(crate) const AFTER: &[&str] = &["result=exito", "incident_report=https://wiki.inmova.test/INC"];

#[test]
fn deploy_publishes_the_release_and_migrates_the_database() {
    let e = E2e::new();
    let out = e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]);
    ok(&out, 0);
    assert_eq!(e.sb.deployed_version(), "v1.0.2");
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY 1) FROM _prisma_migrations"),
        "20250101000000_init,20250301000000_property_archived_at"
    );
    assert_eq!(
        e.sb.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'archived_at'"),
        "1"
    );
    assert!(
        std::fs::read_dir(&e.sb.backups)
            .expect("backups")
            .flatten()
            .any(|f| f.file_name().to_string_lossy().starts_with("sandbox-pre-v1.0.2-"))
    );
    assert!(e.sb.app.hooks().join("\n").contains("v1.0.2 desplegada en sandbox"));
}

#[test]
fn a_failing_test_suite_stops_a_deploy_before_anything_changes() {
    let e = E2e::new();
    let flag = e.sb.dir.join("tests-fail");
    std::fs::write(&flag, "").expect("flag");
    let before = e.sb.dump();
    let params = e.params_file("deploy", &[]);
    let state = e.state();
    let env: Vec<(String, String)> =
        e.sb.env()
            .into_iter()
            .chain([("SANDBOX_FAIL_TESTS".to_string(), flag.display().to_string())])
            .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = crate::support::run_in_with_env(
        &root(),
        &["run", "runbooks/deploy.toml", "--params-file", &params, "--yes", "--state", &state],
        &env,
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED tests"), "{}", out.stdout);
    assert_eq!(e.sb.dump(), before, "no migration ran");
    assert!(e.sb.deployed_version().starts_with("v1.0.1"), "no tag was pushed");
}

#[test]
fn rollback_l1_reverts_a_commit() {
    let e = E2e::new();
    let out = e.drive(
        "rollback-l1",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_after", "devops-lead", AFTER)],
    );
    ok(&out, 0);
    let page = std::process::Command::new("git")
        .args(["--git-dir", &e.sb.origin.display().to_string(), "show", "main:nextjs_space/app/page.tsx"])
        .output()
        .expect("git show");
    assert!(
        String::from_utf8_lossy(&page.stdout).contains("<h1>Inmova</h1>"),
        "the landing page is v1.0.0's again"
    );
    assert!(
        std::process::Command::new("git")
            .args(["--git-dir", &e.sb.origin.display().to_string(), "log", "-1", "--format=%s", "main"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).starts_with("Revert \"feat: new landing page\""))
            .unwrap_or(false)
    );
}

#[test]
fn rollback_l1_redeploys_the_previous_tag() {
    let e = E2e::new();
    let out = e.drive(
        "rollback-l1",
        &[("mode", "tag"), ("previous_tag", "v1.0.0"), ("commit", "")],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_after", "devops-lead", AFTER)],
    );
    ok(&out, 0);
    assert_eq!(e.sb.origin_commit("main"), e.sb.origin_commit("v1.0.0^{commit}"));
}

#[test]
fn rollback_l2_reverts_the_code_and_applies_the_reversal_migration_forward() {
    let e = E2e::new();
    ok(&e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]), 0);
    assert_eq!(
        e.sb.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'archived_at'"),
        "1"
    );
    let out = e.drive(
        "rollback-l2",
        &[],
        &[("checklist_before", "dba", BEFORE_L2), ("checklist_after", "backend-lead", AFTER)],
    );
    ok(&out, 0);
    assert_eq!(
        e.sb.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'archived_at'"),
        "0"
    );
    // Forward only: the history keeps the migration and adds its reversal.
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY 1) FROM _prisma_migrations"),
        format!(
            "20250101000000_init,20250301000000_property_archived_at,{}",
            runbook_sandbox::sandbox::REVERSAL
        )
    );
}

#[test]
fn a_refused_push_compensates_rollback_l3_and_leaves_everything_as_it_was() {
    let e = E2e::new();
    e.sb.set_origin_refusing(true);
    let db = e.sb.dump();
    let main = e.sb.origin_commit("main");
    let out = e.drive(
        "rollback-l3",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_before", "dba", &[])],
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED push_stable"), "{}", out.stdout);
    assert!(out.stdout.contains("undone checkout_stable"), "{}", out.stdout);
    assert_eq!(e.sb.dump(), db, "the database was not touched");
    assert_eq!(e.sb.origin_commit("main"), main, "origin was not touched");
    let head = std::process::Command::new("git")
        .args(["-C", &e.sb.repo.display().to_string(), "symbolic-ref", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(head, "main", "the clone is back on its branch");
    assert!(e.sb.app.hooks().join("\n").contains("abortado y deshecho"));
    let run = e.latest_run();
    let audit = e.runbook(&["audit", &run, "--format", "jsonl"], "oncall").stdout;
    for kind in ["step_failed", "compensation_started", "compensation_succeeded", "run_finished"] {
        assert!(audit.contains(&format!("\"kind\":\"{kind}\"")), "{kind} in the audit trail");
    }
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

#[test]
fn a_second_rollback_on_the_same_environment_is_refused_while_one_runs() {
    let e = E2e::new();
    let params = e.params_file("rollback-l3", &[]);
    // The first one waits for its approvals, attached: it holds the environment's lock.
    let state = e.state();
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            "runbooks/rollback-l3.toml",
            "--params-file",
            &params,
            "--yes",
            "--wait",
            "--state",
            &state,
        ])
        .current_dir(root())
        .envs(e.sb.env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("first run");
    let mut waiting = false;
    for _ in 0..500 {
        if let Some(run) = crate::support::latest_run_id(&root(), Path::new(&state))
            && e.runbook(&["audit", &run], "oncall").stdout.contains("approval_requested")
        {
            waiting = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(waiting, "the first rollback waits for approval");
    let second = e.runbook(
        &["run", "runbooks/rollback-l1.toml", "--params-file", &e.params_file("rollback-l1", &[]), "--yes"],
        "other",
    );
    ok(&second, 5);
    assert!(second.stderr.contains("lock `inmova-sandbox` is held by run"), "{}", second.stderr);
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn rollback_l3_killed_mid_way_resumes_without_running_a_non_idempotent_step_twice() {
    let e = E2e::new();
    let before = e.sb.dump();
    e.sb.psql(r#"DELETE FROM "Property""#);
    let params = e.params_file("rollback-l3", &[]);
    ok(&e.runbook(&["run", "runbooks/rollback-l3.toml", "--params-file", &params, "--yes"], "oncall"), 4);
    let run = e.latest_run();
    ok(
        &e.runbook(
            &[
                "approve",
                &run,
                "checklist_before",
                "--input",
                "incident=INC-9",
                "--input",
                "root_cause=bad data",
            ],
            "devops-lead",
        ),
        0,
    );
    ok(&e.runbook(&["approve", &run, "checklist_before"], "dba"), 0);
    // Resume, and kill the engine with SIGKILL while `yarn install` runs.
    let hold = e.sb.dir.join("hold");
    std::fs::write(&hold, "").expect("hold");
    let state = e.state();
    let mut engine = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["resume", &run, "--yes", "--state", &state, "--as", "oncall"])
        .current_dir(root())
        .envs(e.sb.env())
        .env("SANDBOX_HOLD", &hold)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("resume");
    let reached = e.sb.dir.join("hold.reached");
    for _ in 0..1000 {
        if reached.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(reached.exists(), "the run reached `yarn install`");
    engine.kill().expect("SIGKILL");
    let _ = engine.wait();
    std::fs::remove_file(&hold).expect("release");

    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 4);
    // `backup` runs beside `install` and may also have been in flight: both are idempotent.
    let rerun = out
        .stdout
        .lines()
        .find_map(|l| l.split_once("running again (idempotent): ").map(|(_, steps)| steps.to_owned()))
        .unwrap_or_default();
    assert!(rerun.split(", ").any(|s| s == "install"), "{}", out.stdout);
    ok(
        &e.runbook(
            &[
                "approve",
                &run,
                "checklist_after",
                "--input",
                "result=exito",
                "--input",
                "incident_report=INC-9",
            ],
            "backend-lead",
        ),
        0,
    );
    ok(&e.runbook(&["resume", &run, "--yes"], "oncall"), 0);
    assert_eq!(e.sb.dump(), before);

    // Every step that is not idempotent started at most once in the whole journal.
    let text = std::fs::read_to_string(root().join("runbooks/rollback-l3.toml")).expect("runbook");
    let checked = runbook_core::validate::check(
        runbook_core::Source::new("runbooks/rollback-l3.toml", text),
        &runbook_core::validate::NoIncludes,
    );
    let runbook = checked.runbook.expect("valid");
    let audit = e.runbook(&["audit", &run, "--format", "jsonl"], "oncall").stdout;
    let records: Vec<serde_json::Value> =
        audit.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut checked_steps = 0;
    for step in runbook.steps.iter().filter(|s| !s.idempotent) {
        let starts =
            records.iter().filter(|r| r["kind"] == "step_started" && r["step"] == step.id.as_str()).count();
        assert!(starts <= 1, "non-idempotent step `{}` started {starts} times", step.id);
        checked_steps += 1;
    }
    assert!(checked_steps >= 3);
    let install_starts =
        records.iter().filter(|r| r["kind"] == "step_started" && r["step"] == "install").count();
    assert_eq!(install_starts, 2, "the idempotent step in doubt ran again");
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|f| f.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn backup_verifies_each_dump_and_prunes_by_retention() {
    let e = E2e::new();
    let daily = e.sb.backups.join("daily");
    std::fs::create_dir_all(&daily).expect("daily");
    // Old and recent backups of this kind, and a file that is not one.
    for (name, age) in [
        ("sandbox-daily-20250101T020000Z.dump", "10 days ago"),
        ("sandbox-daily-20250105T020000Z.dump", "3 days ago"),
        ("notes.txt", "30 days ago"),
    ] {
        std::fs::write(daily.join(name), "x").expect("old backup");
        let ok = std::process::Command::new("touch").args(["-d", age]).arg(daily.join(name)).status();
        assert!(ok.is_ok_and(|s| s.success()));
    }
    let out = e.drive("backup", &[("kind", "daily")], &[]);
    ok(&out, 0);
    assert!(out.stdout.contains("removed 1, kept 2"), "{}", out.stdout);
    let names = files_in(&daily);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&"sandbox-daily-20250101T020000Z.dump".to_string()));
    assert!(names.contains(&"notes.txt".to_string()));
    let new = names
        .iter()
        .find(|n| n.starts_with("sandbox-daily-2026") || (n.ends_with(".dump") && !n.contains("20250105")))
        .expect("today's backup");
    let list = std::process::Command::new(e.sb.pg.bin().join("pg_restore"))
        .arg("--list")
        .arg(daily.join(new))
        .output()
        .expect("pg_restore");
    assert!(list.status.success(), "the kept dump is a readable custom-format archive");

    // A dump that does not verify (a database without the app's tables) is removed, and
    // nothing is pruned.
    let before = files_in(&daily);
    let params = e.params_file("backup", &[("kind", "daily")]);
    let env: Vec<(String, String)> =
        e.sb.env()
            .into_iter()
            .map(|(k, v)| if k == "DATABASE_URL" { (k, v.replace("/inmova?", "/postgres?")) } else { (k, v) })
            .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let state = e.state();
    let out = crate::support::run_in_with_env(
        &root(),
        &["run", "runbooks/backup.toml", "--params-file", &params, "--state", &state],
        &env,
    );
    ok(&out, 1);
    assert!(out.stdout.contains("no _prisma_migrations data in the dump"), "{}", out.stdout);
    assert!(out.stdout.contains("undone dump"), "{}", out.stdout);
    assert_eq!(files_in(&daily), before, "nothing new, nothing pruned, no .partial left");
    assert!(e.sb.app.hooks().join("\n").contains("Backup daily de sandbox: failed"));
}

#[test]
fn the_quarterly_drill_runs_rollback_l3_on_a_copy_and_reviews_it() {
    let e = E2e::new();
    let out = e.drive(
        "drill",
        &[],
        &[
            ("rollback/checklist_before", "devops-lead", BEFORE),
            ("rollback/checklist_before", "dba", &[]),
            ("rollback/checklist_after", "backend-lead", AFTER),
            (
                "review",
                "tech-lead",
                &["problems=ninguno", "procedure_updates=ninguno", "next_drill=2027-03-01"],
            ),
        ],
    );
    ok(&out, 0);
    let run = e.latest_run();
    let show = e.runbook(&["show", &run], "oncall").stdout;
    let succeeded = |step: &str| {
        show.lines().any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == [step, "succeeded"])
    };
    assert!(succeeded("data_restored") && succeeded("rollback/restore"), "{show}");
    // The approvals' inputs reached the included runbook's later steps.
    assert!(e.sb.app.hooks().join("\n").contains("Incidente: INC-7"), "{:?}", e.sb.app.hooks());
    let report = e.runbook(&["report", &run], "oncall");
    ok(&report, 0);
    for part in [
        "# Drill Review:",
        "## Tiempos frente a estimaciones",
        "| rollback/restore |",
        "Aprobado por dba: rollback/checklist_before",
        "- **Próximo simulacro:** 2027-03-01",
        "prepare_copy: Crear la copia de producción en staging",
    ] {
        assert!(report.stdout.contains(part), "{part} in:\n{}", report.stdout);
    }
    let html = e.runbook(&["report", &run, "--format", "html"], "oncall");
    assert!(html.stdout.starts_with("<!DOCTYPE html>"));
}

#[test]
fn a_failed_restore_compensates_rollback_l3_and_puts_the_previous_code_back() {
    let e = E2e::new();
    // A backup that reads fine (`pg_restore --list`) but cannot be restored here: its objects
    // belong to a role this cluster does not have.
    e.sb.pg.psql("postgres", "CREATE ROLE ghost");
    e.sb.pg.psql("postgres", "CREATE DATABASE ghostdb OWNER ghost");
    e.sb.pg.psql("ghostdb", "SET ROLE ghost; CREATE TABLE haunted (id int)");
    let dump = e.sb.backups.join("ghost.dump");
    let ok_dump = std::process::Command::new(e.sb.pg.bin().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(e.sb.pg.url("ghostdb"))
        .status()
        .expect("pg_dump");
    assert!(ok_dump.success());
    e.sb.pg.psql("postgres", "DROP DATABASE ghostdb");
    e.sb.pg.psql("postgres", "DROP ROLE ghost");
    e.sb.psql(r#"DELETE FROM "Property" WHERE id = 1"#);
    let db = e.sb.dump();
    let main = e.sb.origin_commit("main");
    let clone = clone_state(&e.sb.repo);

    let dump = dump.display().to_string();
    let out = e.drive(
        "rollback-l3",
        &[("restore_file", &dump)],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_before", "dba", &[])],
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED restore"), "{}", out.stdout);
    for undone in ["undone align_branch", "undone push_stable", "undone checkout_stable", "undone announce"] {
        assert!(out.stdout.contains(undone), "{undone}: {}", out.stdout);
    }
    assert_eq!(e.sb.dump(), db, "the failed restore changed nothing (one transaction)");
    assert_eq!(e.sb.origin_commit("main"), main, "origin's main holds the previous code again");
    assert_eq!(clone_state(&e.sb.repo), clone, "the clone is back on its branch and commit");
    assert!(e.sb.app.hooks().join("\n").contains("abortado y deshecho"));
    let run = e.latest_run();
    assert_eq!(
        e.steps_with(&run, "compensation_succeeded"),
        ["align_branch", "push_stable", "checkout_stable", "announce"],
        "reverse order of completion"
    );
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

/// The state of the clone: its HEAD commit and the branch it is on.
fn clone_state(repo: &Path) -> (String, String) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    (git(&["rev-parse", "HEAD"]), git(&["symbolic-ref", "--short", "HEAD"]))
}

#[test]
fn a_failing_health_check_after_the_restore_puts_the_database_and_the_code_back() {
    let e = E2e::new();
    // The shipped runbook, with one change: the health check polls twice, 100 ms apart,
    // instead of 40 times 15 s apart (10 minutes), so that its failure comes quickly.
    let shipped = std::fs::read_to_string(root().join("runbooks/rollback-l3.toml")).expect("runbook");
    let poll = r#"retry = { attempts = 40, delay = "15s" }"#;
    let health = shipped.find("[steps.health]").expect("a health step");
    let at = health + shipped[health..].find(poll).expect("the health poll");
    let fast = format!(
        "{}{}{}",
        &shipped[..at],
        r#"retry = { attempts = 2, delay = "100ms" }"#,
        &shipped[at + poll.len()..]
    );
    let file = e.sb.dir.join("rollback-l3.toml");
    std::fs::write(&file, fast).expect("write runbook");

    // The state the rollback starts from: a damaged table, the code of v1.0.1 and later.
    e.sb.psql(r#"DELETE FROM "Property" WHERE id = 1"#);
    let db = e.sb.dump();
    let main = e.sb.origin_commit("main");
    let clone = clone_state(&e.sb.repo);
    // The app stays unhealthy whatever is deployed.
    e.sb.set_failing(true);

    let out = e.drive_file(
        &file.display().to_string(),
        "rollback-l3",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_before", "dba", &[])],
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED health"), "{}", out.stdout);
    assert_eq!(e.sb.dump(), db, "the database is back to what it held before the rollback");
    assert_eq!(e.sb.origin_commit("main"), main, "origin's main holds the previous code again");
    assert_eq!(clone_state(&e.sb.repo), clone, "the clone is back on its branch and commit");
    assert!(e.sb.app.hooks().join("\n").contains("abortado y deshecho"));

    let run = e.latest_run();
    let of = |kind: &str| e.steps_with(&run, kind);
    assert_eq!(of("step_failed"), ["health"]);
    assert_eq!(
        of("compensation_succeeded"),
        ["restore", "align_branch", "push_stable", "checkout_stable", "announce"],
        "reverse order of completion: the database first, then the code, then the team"
    );
    assert!(of("step_succeeded").contains(&"restore".to_string()), "the restore had happened");
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
    let report = e.runbook(&["report", &run], "oncall").stdout;
    assert!(report.contains("health"), "{report}");
}

/// The second environment is what its documentation says: the runbooks must not be able to
/// pass against it by knowing the first one.
#[test]
fn the_second_environment_is_built_differently_from_the_first() {
    let e = E2e::with(Shape::Shop);
    let spec = e.sb.spec();
    assert!(e.sb.deployed_version().starts_with(spec.deployed_tag), "{}", e.sb.deployed_version());
    assert!(e.sb.app_dir.ends_with("services/web"));
    // A role that is not superuser, with a password, over TCP; Prisma's URL parameters.
    let url = e.sb.database_url();
    assert!(url.starts_with("postgresql://shop_owner:") && url.contains("@127.0.0.1:"), "{url}");
    assert!(url.ends_with("/shop?schema=public&connection_limit=5"), "{url}");
    assert_eq!(e.sb.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'shop_owner'"), "f");
    let password = e.sb.db_password().expect("a password");
    assert!(!url.contains(password), "the URL carries it percent-encoded");
    // Legitimate zeros, a later table with a foreign key to a restored one, and a view.
    assert_eq!(e.sb.psql("SELECT count(*) FROM orders WHERE amount = 0"), "2");
    assert_eq!(
        e.sb.psql("SELECT confrelid::regclass FROM pg_constraint WHERE conrelid = 'payments'::regclass AND contype = 'f'"),
        "orders"
    );
    assert_eq!(e.sb.psql("SELECT count(*) FROM order_totals"), "6");
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY 1) FROM _prisma_migrations"),
        spec.applied.join(",")
    );
    // The stable dump predates `payments` and the view.
    let list = std::process::Command::new(e.sb.pg.bin().join("pg_restore"))
        .arg("--list")
        .arg(&e.sb.stable_dump)
        .output()
        .expect("pg_restore");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("TABLE public orders") && !list.contains("payments"), "{list}");
    // The yarn stand-in knows migration folders that are not named with 14 digits, and
    // reaches the database with the password out of its argv.
    let env = e.sb.env();
    let status = std::process::Command::new(e.sb.bin.join("yarn"))
        .args(["prisma", "migrate", "status"])
        .current_dir(&e.sb.app_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("yarn");
    // The clone is on `main`, one unreleased migration ahead of the database.
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("3 migrations found"), "{text}{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("have not yet been applied:\n20250301_order_notes"), "{text}");
    assert!(!text.contains("not found locally"), "{text}");
    // The app serves the deployed tag behind the token.
    let health = std::process::Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {}", e.sb.token)])
        .arg(e.sb.app.url("/api/health"))
        .output();
    if let Ok(h) = health {
        let body = String::from_utf8_lossy(&h.stdout);
        assert!(body.is_empty() || body.contains(spec.deployed_tag), "{body}");
    }
}
