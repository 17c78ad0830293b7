//! The team's runbooks, end to end, each against a fresh sandbox (`examples/sandbox`): a real
//! PostgreSQL database, a git origin, the app's health endpoint and a webhook receiver. Each
//! test runs against both environments (`NAME::inmova`, `NAME::shop`), which are built
//! differently: the runbooks must not know either.

use std::path::Path;

use runbook_sandbox::Sandbox;
pub(crate) use runbook_sandbox::sandbox::Shape;

use crate::support::{Output, ok, root};

pub(crate) struct E2e {
    pub(crate) sb: Sandbox,
    /// Watches every process the engine starts for the database password in its argv.
    sampler: crate::argv_sampler::Sampler,
    /// The database password the runbooks' DATABASE_URL carries.
    password: String,
    _dir: tempfile::TempDir,
}

/// The first environment's database has no password (trust over a Unix socket): its URL is
/// given this one, which the server ignores, so that every e2e run has a secret the argv
/// sampler can look for: this, followed by the sandbox's port (one per sandbox, so that tests
/// running side by side never see each other's). Characters that need percent-encoding, to
/// exercise the decoding.
pub(crate) const SENTINEL_PASSWORD: &str = "e2e-S3ntinel/p@ss:w%rd-";

/// The password part of `url`'s userinfo, as written (empty when there is none).
fn url_password(url: &str) -> String {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let userinfo = rest.split_once('@').map_or("", |(u, _)| u);
    userinfo.split_once(':').map_or("", |(_, p)| p).to_string()
}

/// `url` with `password` (percent-encoded) in its userinfo, unless it already has one.
fn with_password(url: &str, password: &str) -> String {
    let Some(scheme) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme + 3..];
    let Some(at) = rest.find('@') else { return url.to_string() };
    if rest[..at].contains(':') {
        return url.to_string();
    }
    let encoded = crate::argv_sampler::percent_encode(password);
    format!("{}{}:{encoded}{}", &url[..scheme + 3], &rest[..at], &rest[at..])
}

impl E2e {
    /// The first environment ([`Shape::Inmova`]).
    pub(crate) fn new() -> E2e {
        E2e::with(Shape::Inmova)
    }

    /// An environment of `shape`. Its password (the sentinel, for the first environment)
    /// is watched for in every process's argv while the harness lives.
    pub(crate) fn with(shape: Shape) -> E2e {
        let dir = tempfile::tempdir().expect("tempdir");
        let sb = Sandbox::start_shaped(dir.path(), shape);
        let password = match sb.db_password() {
            Some(p) => p.to_string(),
            None => format!("{SENTINEL_PASSWORD}{}", sb.app.port),
        };
        // The password exactly as the URL spells it, too (its own percent-encoding).
        let in_url = url_password(&with_password(&sb.database_url(), &password));
        let sampler = crate::argv_sampler::Sampler::start_with(&password, &[in_url]);
        E2e { sampler, password, sb, _dir: dir }
    }

    /// The environment the runbooks run with: the sandbox's, with the password in the URL.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.sb
            .env()
            .into_iter()
            .map(|(k, v)| if k == "DATABASE_URL" { (k, with_password(&v, &self.password)) } else { (k, v) })
            .collect()
    }

    pub(crate) fn state(&self) -> String {
        self.sb.dir.join("state.db").display().to_string()
    }

    /// `runbook ARGS --state S` from the repository root, with the sandbox's environment.
    pub(crate) fn runbook(&self, args: &[&str], operator: &str) -> Output {
        let state = self.state();
        let mut all = args.to_vec();
        all.extend(["--state", &state, "--as", operator]);
        let env = self.env();
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

impl Drop for E2e {
    /// Every e2e test fails if the engine put the database password in a process's argv.
    fn drop(&mut self) {
        let (leaks, _) = self.sampler.finish();
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("the database password appeared in a process list:\n{}", leaks.join("\n"));
        }
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

/// One test per environment, `NAME::inmova` and `NAME::shop`, each running `NAME(shape)`:
/// every team runbook, happy path and failure paths, runs against both, each value that
/// differs taken from the sandbox's [`Spec`](runbook_sandbox::sandbox::Spec).
macro_rules! on_both_shapes {
    ($name:ident) => {
        on_both_shapes!($name, shop:);
    };
    ($name:ident, shop: $(#[$shop:meta])*) => {
        mod $name {
            #[test]
            fn inmova() {
                super::$name(crate::e2e::Shape::Inmova)
            }
            #[test]
            $(#[$shop])*
            fn shop() {
                super::$name(crate::e2e::Shape::Shop)
            }
        }
    };
}

on_both_shapes!(rollback_l3_restores_the_database_and_the_stable_code);

fn rollback_l3_restores_the_database_and_the_stable_code(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    assert!(e.sb.deployed_version().starts_with(spec.deployed_tag), "{}", e.sb.deployed_version());
    // The state the chosen backup holds, then the corruption the rollback is for.
    // The app's schema only: the restore keeps the previous one aside in the same database.
    let before = crate::e2e_l3::restored_from(&e, &e.sb.stable_dump);
    if shape == Shape::Inmova {
        // The first environment's backup holds the database as it is now.
        assert_eq!(crate::e2e_l3::app_dump(&e.sb), before);
    }
    e.sb.corrupt();
    assert_ne!(crate::e2e_l3::app_dump(&e.sb), before);
    // The second environment's later objects (a table with a foreign key to a restored one,
    // a view), which the backup predates: their rows now.
    let later: Vec<(&str, String)> = spec
        .later_objects
        .iter()
        .map(|o| (*o, e.sb.psql(&format!("SELECT count(*) FROM public.{o}"))))
        .collect();
    assert_eq!(later.len(), spec.later_objects.len());

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
    assert_eq!(
        crate::e2e_l3::app_dump(&e.sb),
        before,
        "the restored database equals the state the backup held"
    );
    assert_eq!(e.sb.origin_commit("main"), e.sb.origin_commit(&format!("{}^{{commit}}", spec.stable_tag)));
    // The later objects left the app's schema with the rest of it, whole, in the schema kept
    // aside.
    let kept = format!("pre_l3_{}", crate::e2e_l3::run_key(&run));
    for (object, rows) in &later {
        assert_eq!(e.sb.psql(&format!("SELECT to_regclass('public.{object}') IS NULL")), "t", "{object}");
        assert_eq!(&e.sb.psql(&format!("SELECT count(*) FROM {kept}.{object}")), rows, "{object} in {kept}");
    }

    let after = ["--input", "result=exito", "--input", "incident_report=https://wiki.inmova.test/INC-42"];
    let mut args = vec!["approve", run.as_str(), "checklist_after"];
    args.extend(after);
    ok(&e.runbook(&args, "backend-lead"), 0);
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 0);
    // The pre-rollback backup exists and is a readable custom-format dump.
    let prefix = format!("{}-pre-l3-", spec.environment);
    let backups: Vec<_> = std::fs::read_dir(&e.sb.backups)
        .expect("backups")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let list = std::process::Command::new(e.sb.pg.bin().join("pg_restore"))
        .arg("--list")
        .arg(e.sb.backups.join(&backups[0]))
        .output()
        .expect("pg_restore");
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    // ...and holds the later objects the restore replaced.
    let list = String::from_utf8_lossy(&list.stdout);
    for object in spec.later_objects {
        assert!(list.contains(&format!(" public {object} ")), "{object} in the pre-rollback backup:\n{list}");
    }
    let hooks = e.sb.app.hooks().join("\n");
    assert!(hooks.contains("Rollback completo (nivel 3) inminente"), "{hooks}");
    assert!(hooks.contains("resultado exito"), "{hooks}");
    assert!(hooks.contains("terminó: succeeded"), "{hooks}");
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

pub(crate) const BEFORE: &[&str] = &["incident=INC-7", "root_cause=the release broke the listing"];
pub(crate) const BEFORE_L2: &[&str] = &[
    "incident=INC-8",
    "root_cause=archived_at broke queries",
    "migration_review=https://git.inmova.test/pr/9",
];
pub(crate) const AFTER: &[&str] = &["result=exito", "incident_report=https://wiki.inmova.test/INC"];

/// The tables of the app database that have a column named `column`, comma-separated.
fn tables_with_column(e: &E2e, column: &str) -> String {
    e.sb.psql(&format!(
        "SELECT coalesce(string_agg(table_name, ',' ORDER BY 1), '') FROM information_schema.columns WHERE column_name = '{column}'"
    ))
}

on_both_shapes!(deploy_publishes_the_release_and_migrates_the_database);

fn deploy_publishes_the_release_and_migrates_the_database(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    let out = e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]);
    ok(&out, 0);
    assert_eq!(e.sb.deployed_version(), spec.next_version);
    let history: Vec<&str> = spec.applied.iter().copied().chain([spec.next_migration]).collect();
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY 1) FROM _prisma_migrations"),
        history.join(",")
    );
    assert_eq!(tables_with_column(&e, spec.next_column.1), spec.next_column.0);
    let backup = format!("{}-pre-{}-", spec.environment, spec.next_version);
    assert!(
        std::fs::read_dir(&e.sb.backups)
            .expect("backups")
            .flatten()
            .any(|f| f.file_name().to_string_lossy().starts_with(&backup))
    );
    let published = format!("{} desplegada en {}", spec.next_version, spec.environment);
    assert!(e.sb.app.hooks().join("\n").contains(&published));
}

on_both_shapes!(a_failing_test_suite_stops_a_deploy_before_anything_changes);

fn a_failing_test_suite_stops_a_deploy_before_anything_changes(shape: Shape) {
    let e = E2e::with(shape);
    let flag = e.sb.dir.join("tests-fail");
    std::fs::write(&flag, "").expect("flag");
    let before = e.sb.dump();
    let params = e.params_file("deploy", &[]);
    let state = e.state();
    let env: Vec<(String, String)> =
        e.env().into_iter().chain([("SANDBOX_FAIL_TESTS".to_string(), flag.display().to_string())]).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = crate::support::run_in_with_env(
        &root(),
        &["run", "runbooks/deploy.toml", "--params-file", &params, "--yes", "--state", &state],
        &env,
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED tests"), "{}", out.stdout);
    assert_eq!(e.sb.dump(), before, "no migration ran");
    assert!(e.sb.deployed_version().starts_with(e.sb.spec().deployed_tag), "no tag was pushed");
}

on_both_shapes!(rollback_l1_reverts_a_commit);

fn rollback_l1_reverts_a_commit(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    let out = e.drive(
        "rollback-l1",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_after", "devops-lead", AFTER)],
    );
    ok(&out, 0);
    let (file, text) = spec.frontend_file;
    let page = std::process::Command::new("git")
        .args(["--git-dir", &e.sb.origin.display().to_string(), "show"])
        .arg(format!("main:{}/{file}", spec.app_subdir))
        .output()
        .expect("git show");
    assert!(
        String::from_utf8_lossy(&page.stdout).contains(text),
        "the reverted file is the previous release's again"
    );
    let revert = format!("Revert \"{}\"", spec.frontend_commit);
    assert!(
        std::process::Command::new("git")
            .args(["--git-dir", &e.sb.origin.display().to_string(), "log", "-1", "--format=%s", "main"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).starts_with(&revert))
            .unwrap_or(false)
    );
}

on_both_shapes!(rollback_l1_redeploys_the_previous_tag);

fn rollback_l1_redeploys_the_previous_tag(shape: Shape) {
    let e = E2e::with(shape);
    let previous = e.sb.spec().previous_tag;
    let out = e.drive(
        "rollback-l1",
        &[("mode", "tag"), ("previous_tag", previous), ("commit", "")],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_after", "devops-lead", AFTER)],
    );
    ok(&out, 0);
    assert_eq!(e.sb.origin_commit("main"), e.sb.origin_commit(&format!("{previous}^{{commit}}")));
}

on_both_shapes!(rollback_l2_reverts_the_code_and_applies_the_reversal_migration_forward);

fn rollback_l2_reverts_the_code_and_applies_the_reversal_migration_forward(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    ok(&e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]), 0);
    assert_eq!(tables_with_column(&e, spec.next_column.1), spec.next_column.0);
    let out = e.drive(
        "rollback-l2",
        &[],
        &[("checklist_before", "dba", BEFORE_L2), ("checklist_after", "backend-lead", AFTER)],
    );
    ok(&out, 0);
    assert_eq!(tables_with_column(&e, spec.next_column.1), "");
    // Forward only: the history keeps the migration and adds its reversal.
    let history: Vec<&str> =
        spec.applied.iter().copied().chain([spec.next_migration, spec.reversal]).collect();
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY 1) FROM _prisma_migrations"),
        history.join(",")
    );
}

on_both_shapes!(a_refused_push_compensates_rollback_l3_and_leaves_everything_as_it_was);

fn a_refused_push_compensates_rollback_l3_and_leaves_everything_as_it_was(shape: Shape) {
    let e = E2e::with(shape);
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

on_both_shapes!(a_second_rollback_on_the_same_environment_is_refused_while_one_runs);

fn a_second_rollback_on_the_same_environment_is_refused_while_one_runs(shape: Shape) {
    let e = E2e::with(shape);
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
        .envs(e.env())
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
    let lock = format!("lock `inmova-{}` is held by run", e.sb.spec().environment);
    assert!(second.stderr.contains(&lock), "{}", second.stderr);
    let _ = first.kill();
    let _ = first.wait();
}

on_both_shapes!(rollback_l3_killed_mid_way_resumes_without_running_a_non_idempotent_step_twice);

fn rollback_l3_killed_mid_way_resumes_without_running_a_non_idempotent_step_twice(shape: Shape) {
    let e = E2e::with(shape);
    // What the app's schema holds once the backup is restored (on the first environment,
    // what it holds now).
    let before = crate::e2e_l3::restored_from(&e, &e.sb.stable_dump);
    if shape == Shape::Inmova {
        assert_eq!(crate::e2e_l3::app_dump(&e.sb), before);
    }
    e.sb.corrupt();
    assert_ne!(crate::e2e_l3::app_dump(&e.sb), before);
    let later: Vec<(&str, String)> =
        e.sb.spec()
            .later_objects
            .iter()
            .map(|o| (*o, e.sb.psql(&format!("SELECT count(*) FROM public.{o}"))))
            .collect();
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
        .envs(e.env())
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
    assert_eq!(crate::e2e_l3::app_dump(&e.sb), before);
    // The restore ran once: the later objects are in the schema it set aside, whole.
    let kept = format!("pre_l3_{}", crate::e2e_l3::run_key(&run));
    for (object, rows) in &later {
        assert_eq!(&e.sb.psql(&format!("SELECT count(*) FROM {kept}.{object}")), rows, "{object} in {kept}");
    }

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

on_both_shapes!(backup_verifies_each_dump_and_prunes_by_retention);

fn backup_verifies_each_dump_and_prunes_by_retention(shape: Shape) {
    let e = E2e::with(shape);
    let environment = e.sb.spec().environment;
    let daily = e.sb.backups.join("daily");
    std::fs::create_dir_all(&daily).expect("daily");
    // Old and recent backups of this kind, and a file that is not one.
    let old = format!("{environment}-daily-20250101T020000Z.dump");
    let recent = format!("{environment}-daily-20250105T020000Z.dump");
    for (name, age) in
        [(old.as_str(), "10 days ago"), (recent.as_str(), "3 days ago"), ("notes.txt", "30 days ago")]
    {
        std::fs::write(daily.join(name), "x").expect("old backup");
        let ok = std::process::Command::new("touch").args(["-d", age]).arg(daily.join(name)).status();
        assert!(ok.is_ok_and(|s| s.success()));
    }
    let out = e.drive("backup", &[("kind", "daily")], &[]);
    ok(&out, 0);
    assert!(out.stdout.contains("removed 1, kept 2"), "{}", out.stdout);
    let names = files_in(&daily);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&old));
    assert!(names.contains(&"notes.txt".to_string()));
    let new = names
        .iter()
        .find(|n| n.starts_with(&format!("{environment}-daily-")) && n.ends_with(".dump") && **n != recent)
        .expect("today's backup");
    let list = std::process::Command::new(e.sb.pg.bin().join("pg_restore"))
        .arg("--list")
        .arg(daily.join(new))
        .output()
        .expect("pg_restore");
    assert!(list.status.success(), "the kept dump is a readable custom-format archive");
    // It holds every table of the app, and what later migrations added (a table with a
    // foreign key, a view), which the stable backup predates.
    let list = String::from_utf8_lossy(&list.stdout);
    for object in e.sb.spec().tables.iter().chain(e.sb.spec().later_objects) {
        assert!(list.contains(&format!(" public {object} ")), "{object} in the backup:\n{list}");
    }

    // A dump that does not verify (a database without the app's tables) is removed, and
    // nothing is pruned.
    let before = files_in(&daily);
    let params = e.params_file("backup", &[("kind", "daily")]);
    let env: Vec<(String, String)> = e
        .env()
        .into_iter()
        .map(|(k, v)| {
            if k == "DATABASE_URL" {
                (k, v.replace(&format!("/{}?", e.sb.spec().database), "/postgres?"))
            } else {
                (k, v)
            }
        })
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
    assert!(e.sb.app.hooks().join("\n").contains(&format!("Backup daily de {environment}: failed")));
}

on_both_shapes!(the_quarterly_drill_runs_rollback_l3_on_a_copy_and_reviews_it);

fn the_quarterly_drill_runs_rollback_l3_on_a_copy_and_reviews_it(shape: Shape) {
    let e = E2e::with(shape);
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

on_both_shapes!(a_failed_restore_compensates_rollback_l3_and_puts_the_previous_code_back);

fn a_failed_restore_compensates_rollback_l3_and_puts_the_previous_code_back(shape: Shape) {
    let e = E2e::with(shape);
    // A backup that reads fine (`pg_restore --list`) but cannot be restored here: a table of
    // it lives in a tablespace this cluster no longer has (its objects also belong to a role
    // it does not have, which a dump of another database is restored without).
    e.sb.pg.psql("postgres", "CREATE ROLE ghost");
    e.sb.pg.psql("postgres", "CREATE DATABASE ghostdb OWNER ghost");
    let cluster = e.sb.pg.url("postgres");
    let cluster = cluster.split("host=").nth(1).and_then(|h| h.split('&').next()).unwrap_or_default();
    let location = std::path::Path::new(cluster).join("ghost_ts");
    std::fs::create_dir_all(&location).expect("tablespace folder");
    let _ = std::process::Command::new("chown").arg("postgres:postgres").arg(&location).status();
    e.sb.pg.psql("postgres", &format!("CREATE TABLESPACE ghost_ts LOCATION '{}'", location.display()));
    // It passes rollback-l3's validation (accepted as another database's dump with
    // `restore_database`, and its history is the stable tag's), so the restore itself fails.
    let spec = e.sb.spec();
    let listing = std::process::Command::new("git")
        .arg("-C")
        .arg(&e.sb.repo)
        .args(["ls-tree", "--name-only"])
        .arg(format!("{}:{}/prisma/migrations", spec.stable_tag, spec.app_subdir))
        .output()
        .expect("git ls-tree");
    let at_tag: Vec<String> =
        String::from_utf8_lossy(&listing.stdout).lines().map(|m| format!("'{m}'")).collect();
    assert!(!at_tag.is_empty(), "the stable tag has migrations");
    let history = e.sb.psql(&format!(
        "SELECT string_agg(format('(%L, now(), %L)', id, migration_name), ', ') FROM _prisma_migrations WHERE migration_name IN ({})",
        at_tag.join(", ")
    ));
    e.sb.pg.psql(
        "ghostdb",
        &format!("CREATE TABLE haunted (id int) TABLESPACE ghost_ts; ALTER TABLE haunted OWNER TO ghost; SET ROLE ghost; CREATE TABLE _prisma_migrations (id text, finished_at timestamptz, migration_name text, rolled_back_at timestamptz); INSERT INTO _prisma_migrations (id, finished_at, migration_name) VALUES {history}"),
    );
    let dump = e.sb.backups.join("ghost.dump");
    let ok_dump = std::process::Command::new(e.sb.pg.bin().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(e.sb.pg.url("ghostdb"))
        .status()
        .expect("pg_dump");
    assert!(ok_dump.success());
    e.sb.pg.psql("postgres", "DROP DATABASE ghostdb");
    e.sb.pg.psql("postgres", "DROP TABLESPACE ghost_ts");
    e.sb.pg.psql("postgres", "DROP ROLE ghost");
    e.sb.corrupt();
    let db = e.sb.dump();
    let main = e.sb.origin_commit("main");
    let clone = clone_state(&e.sb.repo);

    let dump = dump.display().to_string();
    let out = e.drive(
        "rollback-l3",
        &[("restore_file", &dump), ("restore_database", "ghostdb")],
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
pub(crate) fn clone_state(repo: &Path) -> (String, String) {
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

on_both_shapes!(a_failing_health_check_after_the_restore_puts_the_database_and_the_code_back);

fn a_failing_health_check_after_the_restore_puts_the_database_and_the_code_back(shape: Shape) {
    let e = E2e::with(shape);
    // The shipped runbook, with one change: the health check polls twice, 100 ms apart,
    // instead of 40 times 15 s apart (10 minutes), so that its failure comes quickly.
    let file = std::path::PathBuf::from(crate::e2e_l3::quick_l3(&e, "", ""));

    // The state the rollback starts from: a damaged table, the code deployed now.
    e.sb.corrupt();
    let db = crate::e2e_l3::app_dump(&e.sb);
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
    assert_eq!(
        crate::e2e_l3::app_dump(&e.sb),
        db,
        "the app's schema is back to what it held before the rollback"
    );
    for object in e.sb.spec().later_objects {
        // (the dump above compared them too; said plainly: they are back where the app reads)
        assert_eq!(e.sb.psql(&format!("SELECT to_regclass('public.{object}') IS NOT NULL")), "t", "{object}");
    }
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

/// What would make a test know one environment: a value of its [`Spec`] written into the test
/// (a tag, a migration, the app folder, a table in SQL, a file or lock name made of its
/// `environment`), instead of read from `e.sb.spec()`. The ones found in `source`.
///
/// [`Spec`]: runbook_sandbox::sandbox::Spec
fn environment_literals_in(source: &str) -> Vec<String> {
    let mut literals = Vec::new();
    for shape in Shape::ALL {
        let spec = shape.spec();
        let quoted = |v: &str| [format!("\"{v}\""), format!("\"{v}^"), format!("\"{v},"), format!(",{v}\"")];
        for v in [spec.stable_tag, spec.deployed_tag, spec.previous_tag, spec.next_version] {
            literals.extend(quoted(v));
        }
        for m in spec.applied.iter().chain([&spec.next_migration, &spec.reversal]) {
            literals.push((*m).to_string());
        }
        literals.push(format!("{}/", spec.app_subdir));
        literals.push(format!(":{}", spec.app_subdir));
        literals.push(spec.frontend_file.0.to_string());
        literals.push(format!("\"{}\"", spec.frontend_file.1));
        literals.push(format!("inmova-{}", spec.environment));
        literals.push(format!("\"{}-", spec.environment));
        literals.push(format!("de {}:", spec.environment));
        literals.push(format!("/{}?", spec.database));
        // (Prisma's own table is in both: it is the product's, not an environment's.)
        let shared = |t: &&str| Shape::ALL.iter().all(|s| s.spec().tables.contains(t));
        for table in spec.tables.iter().chain(spec.later_objects).filter(|t| !shared(t)) {
            literals.push(format!("\"{table}\""));
            for keyword in ["FROM", "INTO", "UPDATE", "TABLE", "JOIN"] {
                literals.push(format!("{keyword} {table} "));
            }
        }
    }
    let mut found: Vec<String> = literals.into_iter().filter(|l| source.contains(l.as_str())).collect();
    found.sort();
    found.dedup();
    found
}

/// Every test above runs against both environments and knows neither: it is generated by
/// `on_both_shapes!`, and no value of either environment is written in it.
#[test]
fn the_e2e_tests_run_against_both_environments_and_know_neither() {
    let source = std::fs::read_to_string(root().join("tests/integration/e2e.rs")).expect("e2e.rs");
    let (tests, _) = source
        .split_once("/// The second environment is what its documentation says")
        .expect("the second environment's own test, which describes it on purpose, comes last");
    assert_eq!(environment_literals_in(tests), Vec::<String>::new());
    // The only `#[test]`s are the macro's two, indented; every test is one of its invocations.
    let tests_attrs: Vec<&str> = tests.lines().filter(|l| l.trim() == "#[test]").collect();
    assert_eq!(tests_attrs, ["            #[test]", "            #[test]"]);
    let count = tests.lines().filter(|l| l.starts_with("on_both_shapes!(")).count();
    assert!(count >= 13, "{count} tests on both shapes");
    let (_, generated) = tests.split_once("macro_rules! on_both_shapes").expect("the macro");
    assert!(
        !generated.contains("E2e::new()") && !generated.contains("with(Shape::"),
        "a test on one shape only"
    );

    // The rule can fail: lines the tests had when they knew the first environment (and their
    // like for the second) are each caught; their rewrites are not.
    for known in [
        r#"assert_eq!(e.sb.deployed_version(), "v1.0.2");"#,
        r#"assert!(e.sb.deployed_version().starts_with("v1.0.1"), "no tag was pushed");"#,
        r#"e.sb.origin_commit("v1.0.0-stable^{commit}")"#,
        r#"&[("mode", "tag"), ("previous_tag", "v1.0.0"), ("commit", "")],"#,
        r#""20250101000000_init,20250301000000_property_archived_at""#,
        r#"format!("x,{}", runbook_sandbox::sandbox::REVERSAL.replace("20250315000000_rollback_archived_at", ""))"#,
        r#""show", "main:nextjs_space/app/page.tsx""#,
        r#".contains("<h1>Inmova</h1>"),"#,
        r#"second.stderr.contains("lock `inmova-sandbox` is held by run")"#,
        r##"e.sb.psql(r#"DELETE FROM "Property" WHERE id = 1"#);"##,
        r#"UPDATE "User" SET email = 'lost@example.invalid' WHERE id = 1"#,
        r#".filter(|n| n.starts_with("sandbox-pre-l3-"))"#,
        r#"("sandbox-daily-20250101T020000Z.dump", "10 days ago"),"#,
        r#"v.replace("/inmova?", "/postgres?")"#,
        r#".contains("Backup daily de sandbox: failed")"#,
        r#"assert_eq!(e.sb.deployed_version(), "v2.5.0");"#,
        r#"e.sb.origin_commit("v2.3.0-stable^{commit}")"#,
        r#""20241101_init,20250210_payments,20250301_order_notes""#,
        r#""main:services/web/app/checkout.tsx""#,
        r#"e.sb.psql("DELETE FROM orders WHERE id > 3");"#,
        r#"e.sb.psql("SELECT count(*) FROM payments WHERE paid > 0")"#,
        r#"lock `inmova-staging` is held"#,
        r#".filter(|n| n.starts_with("staging-pre-l3-"))"#,
        r#"v.replace("/shop?", "/postgres?")"#,
    ] {
        assert_ne!(environment_literals_in(known), Vec::<String>::new(), "not caught: {known}");
    }
    for rewritten in [
        r#"assert_eq!(e.sb.deployed_version(), spec.next_version);"#,
        r#"e.sb.origin_commit(&format!("{}^{{commit}}", spec.stable_tag))"#,
        r#"let prefix = format!("{}-pre-l3-", spec.environment);"#,
        r#"v.replace(&format!("/{}?", e.sb.spec().database), "/postgres?")"#,
        r#"e.sb.corrupt();"#,
        r#"let revert = format!("Revert \"{}\"", spec.frontend_commit);"#,
    ] {
        assert_eq!(environment_literals_in(rewritten), Vec::<String>::new(), "{rewritten}");
    }
}
