//! Issue 12, points 5, 7, 8 and 9, for the team's deploy, backup, rollback-l1 and rollback-l2
//! runbooks: end to end through the real binary against the sandbox, with the argv sampler of
//! [`E2e`] watching every run for the database password.

use std::path::Path;

use crate::e2e::{AFTER, BEFORE, BEFORE_L2, E2e, Shape};
use crate::support::{ok, root};

/// One test per environment, `NAME::inmova` and `NAME::shop`, each running `case(shape)`: the
/// runbooks must not know the first environment.
macro_rules! both {
    ($(#[$doc:meta])* $name:ident, $case:ident) => {
        $(#[$doc])*
        mod $name {
            #[test]
            fn inmova() {
                super::$case(crate::e2e::Shape::Inmova)
            }
            #[test]
            fn shop() {
                super::$case(crate::e2e::Shape::Shop)
            }
        }
    };
}

/// The sampler must be able to fail: a run whose steps put a password on a command line,
/// plainly, percent-encoded and in base64, is caught in each form. (A password of its own,
/// so that the samplers of the tests running beside it do not see it.)
#[test]
fn the_argv_sampler_catches_a_password_on_a_command_line() {
    let e = E2e::new();
    let password = format!("leak-{}-S3ntinel/p@ss:w%rd", e.sb.app.port);
    let mut sampler = crate::argv_sampler::Sampler::start(&password);
    let forms = crate::argv_sampler::encodings(&password);
    let pick = |kind: &str| forms.iter().find(|(_, k)| *k == kind).map(|(f, _)| f.clone()).expect(kind);
    let mut text = String::from("[runbook]\nname = \"leak\"\n");
    let mut previous: Option<String> = None;
    for (id, form) in [("plain", pick("plain")), ("pct", pick("percent-encoded")), ("b64", pick("base64"))] {
        text.push_str(&format!(
            "\n[steps.{id}]\ncmd = [\"sh\", \"-c\", \"sleep 1\", {}]\n",
            toml_string(&form)
        ));
        if let Some(p) = previous.replace(id.to_string()) {
            text.push_str(&format!("needs = [\"{p}\"]\n"));
        }
    }
    let file = e.sb.dir.join("leak.toml");
    std::fs::write(&file, text).expect("runbook");
    ok(&e.runbook(&["run", &file.display().to_string(), "--yes"], "oncall"), 0);
    let (leaks, passes) = sampler.finish();
    assert!(passes > 0);
    for form in ["(plain)", "(percent-encoded)", "(base64)"] {
        assert!(leaks.iter().any(|l| l.contains(form) && l.contains("`sh`")), "{form} not caught: {leaks:?}");
    }
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Run `git ARGS` in `dir`, as the sandbox's developer; its trimmed stdout.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Inmova Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@inmova.test")
        .env("GIT_COMMITTER_NAME", "Inmova Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@inmova.test")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

both!(deploy_applies_migration_folders_not_named_with_14_digits_in_name_order, migration_folders);
/// Point 9: Prisma applies every folder of prisma/migrations holding a `migration.sql`,
/// whatever its name, in lexicographic order; so does the sandbox's stand-in, and a deploy
/// applies migrations named `20250401_notes` (the second depends on the first).
fn migration_folders(shape: Shape) {
    let e = E2e::with(shape);
    let migrations = e.sb.app_dir.join("prisma/migrations");
    for (name, sql) in [
        ("20250401_notes_body", "ALTER TABLE note ADD COLUMN body text NOT NULL DEFAULT '';\n"),
        ("20250401_notes", "CREATE TABLE note (id serial PRIMARY KEY);\n"),
    ] {
        std::fs::create_dir_all(migrations.join(name)).expect("folder");
        std::fs::write(migrations.join(name).join("migration.sql"), sql).expect("migration");
    }
    // A folder without migration.sql is not a migration.
    std::fs::create_dir_all(migrations.join("drafts")).expect("folder");
    std::fs::write(migrations.join("drafts/idea.md"), "not yet\n").expect("draft");
    git(&e.sb.repo, &["add", "-A"]);
    git(&e.sb.repo, &["commit", "--quiet", "-m", "feat: notes"]);
    git(&e.sb.repo, &["push", "--quiet", "origin", "main"]);

    let out = e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]);
    ok(&out, 0);
    let spec = e.sb.spec();
    let mut expected: Vec<&str> = spec.applied.to_vec();
    expected.extend([spec.next_migration, "20250401_notes", "20250401_notes_body"]);
    expected.sort_unstable();
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY migration_name COLLATE \"C\") FROM _prisma_migrations"),
        expected.join(",")
    );
    assert_eq!(e.sb.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'note'"), "2");
}

/// `runbook ARGS` with the harness's environment, some variables replaced or added.
fn run_with(e: &E2e, args: &[&str], replace: &[(&str, &str)]) -> crate::support::Output {
    let state = e.state();
    let mut all = args.to_vec();
    all.extend(["--state", &state, "--as", "oncall"]);
    let mut env: Vec<(String, String)> =
        e.env().into_iter().filter(|(k, _)| !replace.iter().any(|(r, _)| r == k)).collect();
    env.extend(replace.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    crate::support::run_in_with_env(&root(), &all, &env)
}

/// What a run printed, both streams.
fn said(out: &crate::support::Output) -> String {
    format!("{}\n{}", out.stdout, out.stderr)
}

/// The run's journal started no step at all.
fn nothing_started(e: &E2e) {
    let run = e.latest_run();
    assert_eq!(e.steps_with(&run, "step_started"), Vec::<String>::new(), "no step may start");
}

/// Claims the preconditions used to make about a clone that does not exist.
const FALSE_CLAIMS: [&str; 5] = ["cambios sin commitear", "rama", "ya existe", "yarn prisma", "missing"];

both!(a_missing_repo_dir_is_named_and_nothing_else_is_claimed, missing_repo_dir);
/// Point 7: a `repo_dir` that does not exist is named, once, by a check that says so; no
/// check claims uncommitted changes, a wrong branch or an existing tag; nothing runs.
fn missing_repo_dir(shape: Shape) {
    let e = E2e::with(shape);
    let missing = e.sb.dir.join("no-such-clone").display().to_string();
    let app = format!("{missing}/{}", e.sb.spec().app_subdir);
    for runbook in ["deploy", "rollback-l1", "rollback-l2"] {
        let mut extra = vec![("repo_dir", missing.as_str())];
        if runbook != "rollback-l1" {
            extra.push(("app_dir", app.as_str()));
        }
        let params = e.params_file(runbook, &extra);
        let out = e.runbook(
            &["run", &format!("runbooks/{runbook}.toml"), "--params-file", &params, "--yes"],
            "oncall",
        );
        assert_ne!(out.code, 0, "{}", said(&out));
        let text = said(&out);
        assert!(
            text.contains(&format!("repo_dir = {missing} no existe o no es un clon git")),
            "{runbook}: {text}"
        );
        if runbook != "rollback-l1" {
            assert!(text.contains(&format!("app_dir = {app} no existe")), "{runbook}: {text}");
        }
        for claim in FALSE_CLAIMS {
            assert!(!text.contains(claim), "{runbook} claims `{claim}` about a missing clone: {text}");
        }
        nothing_started(&e);
        assert!(!Path::new(&missing).exists(), "no check created the clone's folder");
    }
}

/// The folders of this machine's `PATH` without the sandbox's `yarn`, with PostgreSQL's
/// programs: a host where one tool is missing.
fn path_without(e: &E2e, tool: &str) -> String {
    let path = format!("{}:/usr/bin:/bin", e.sb.pg.bin().display());
    for dir in path.split(':') {
        assert!(
            !Path::new(dir).join(tool).exists(),
            "{tool} is installed in {dir}: pick another missing tool"
        );
    }
    path
}

both!(a_missing_tool_is_named, missing_tool);
/// Point 7: the tools check names the tool that is missing, and only that one.
fn missing_tool(shape: Shape) {
    let e = E2e::with(shape);
    let path = path_without(&e, "yarn");
    for runbook in ["deploy", "rollback-l2"] {
        let params = e.params_file(runbook, &[]);
        let file = format!("runbooks/{runbook}.toml");
        let out = run_with(&e, &["run", &file, "--params-file", &params, "--yes"], &[("PATH", &path)]);
        assert_ne!(out.code, 0);
        let text = said(&out);
        assert!(text.contains("falta yarn: no está en el PATH"), "{runbook}: {text}");
        for other in ["falta git", "falta pg_dump", "falta pg_restore", "falta curl", "yarn prisma"] {
            assert!(!text.contains(other), "{runbook}: `{other}` in {text}");
        }
        nothing_started(&e);
    }
    // The backup's upload tool, when one is configured, before any dump: no dump, no retries.
    let path = path_without(&e, "rclone");
    let params = e.params_file("backup", &[("upload_tool", "rclone"), ("upload_to", "offsite:inmova/")]);
    let out =
        run_with(&e, &["run", "runbooks/backup.toml", "--params-file", &params, "--yes"], &[("PATH", &path)]);
    assert_ne!(out.code, 0);
    let text = said(&out);
    assert!(text.contains("upload_tool = rclone, pero rclone no está en el PATH"), "{text}");
    nothing_started(&e);
    assert_eq!(crate::support::files(&e.sb.backups, ".partial"), Vec::<std::path::PathBuf>::new());
    assert!(!e.sb.backups.join("daily").exists(), "no dump was taken");
}

both!(the_shipped_params_files_act_on_nothing, shipped_params);
/// Point 8: the shipped params files are examples: a run with one, on a host with real
/// credentials, stops at its preconditions, starts no step and creates none of the folders
/// it names (the backup's used to create /backups/database/daily, dump there and upload).
fn shipped_params(shape: Shape) {
    let e = E2e::with(shape);
    let backups_before = Path::new("/backups").exists();
    for runbook in ["backup", "deploy", "rollback-l1", "rollback-l2"] {
        let params = format!("runbooks/params/{runbook}.staging.toml");
        let text = std::fs::read_to_string(root().join(&params)).expect("params file");
        let table: toml::Table = text.parse().expect("params TOML");
        let paths: Vec<String> = table
            .iter()
            .filter(|(k, _)| k.ends_with("_dir"))
            .filter_map(|(_, v)| v.as_str().map(str::to_string))
            .collect();
        assert!(!paths.is_empty(), "{params} names folders");
        for p in &paths {
            assert!(p.starts_with("/EJEMPLO-cambiar/"), "{params}: {p} is not an obvious placeholder");
            assert!(!Path::new(p).exists());
        }
        if runbook == "backup" {
            assert_eq!(table.get("upload_tool").and_then(|v| v.as_str()), Some("none"), "upload off");
        }
        let out = e.runbook(
            &["run", &format!("runbooks/{runbook}.toml"), "--params-file", &params, "--yes"],
            "oncall",
        );
        assert_ne!(out.code, 0, "{runbook}: {}", said(&out));
        let said = said(&out);
        assert!(said.contains("/EJEMPLO-cambiar/") && said.contains("no existe"), "{runbook}: {said}");
        nothing_started(&e);
        for p in &paths {
            assert!(!Path::new(p).exists(), "{runbook} created {p}");
        }
        assert!(!Path::new("/EJEMPLO-cambiar").exists(), "{runbook} created the placeholder root");
    }
    assert_eq!(Path::new("/backups").exists(), backups_before, "nothing under /backups");
}

/// `runbook`'s shipped text with the polls of `steps` made fast (2 tries 100 ms apart), so
/// that a health check that never passes fails quickly; written into the sandbox's folder.
fn with_fast_polls(e: &E2e, runbook: &str, steps: &[&str]) -> String {
    let mut text = std::fs::read_to_string(root().join(format!("runbooks/{runbook}.toml"))).expect("runbook");
    for step in steps {
        let at = text.find(&format!("[steps.{step}]")).expect("the step");
        let retry = at + text[at..].find("retry = {").expect("its poll");
        let end = retry + text[retry..].find('\n').expect("end of line");
        text.replace_range(retry..end, r#"retry = { attempts = 2, delay = "100ms" }"#);
    }
    let file = e.sb.dir.join(format!("{runbook}.toml"));
    std::fs::write(&file, text).expect("write runbook");
    file.display().to_string()
}

/// The app answers 200 with `version`, whatever was deployed (a pipeline that did not
/// deploy, or still serves the previous build).
fn serve_version(e: &E2e, version: &str) {
    e.sb.app.set_health(runbook_sandbox::peers::Health {
        token: Some(e.sb.token.clone()),
        log: Some(e.sb.logs.join("app.log")),
        ..runbook_sandbox::peers::Health::ok(version)
    });
}

both!(l1_and_l2_health_checks_refuse_a_wrong_served_version, wrong_served_version);
/// Point 9: l1 (both modes) and l2 wait for the app to serve what they published; an app
/// still serving the previous build answers 200 but fails the check, and the run stops.
fn wrong_served_version(shape: Shape) {
    for mode in ["revert", "tag"] {
        let e = E2e::with(shape);
        let extra = match mode {
            "tag" => vec![("mode", "tag"), ("previous_tag", e.sb.spec().previous_tag), ("commit", "")],
            _ => vec![],
        };
        let before = e.sb.deployed_version();
        serve_version(&e, &before);
        let file = with_fast_polls(&e, "rollback-l1", &["health"]);
        let out = e.drive_file(
            &file,
            "rollback-l1",
            &extra,
            &[("checklist_before", "devops-lead", BEFORE), ("checklist_after", "devops-lead", AFTER)],
        );
        ok(&out, 1);
        assert!(out.stdout.contains("FAILED health"), "{mode}: {}", out.stdout);
        assert_ne!(e.sb.deployed_version(), before, "{mode}: the rollback was published");
    }
    let e = E2e::with(shape);
    ok(&e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]), 0);
    serve_version(&e, &e.sb.deployed_version());
    let file = with_fast_polls(&e, "rollback-l2", &["wait_deploy"]);
    let out = e.drive_file(
        &file,
        "rollback-l2",
        &[],
        &[("checklist_before", "dba", BEFORE_L2), ("checklist_after", "backend-lead", AFTER)],
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED wait_deploy"), "{}", out.stdout);
    assert_eq!(
        e.sb.psql(&format!(
            "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '{}'",
            e.sb.spec().reversal
        )),
        "0",
        "the reversal migration did not run under the old code"
    );
}

both!(every_checklist_has_approvers_and_the_operator_cannot_approve_their_own_run, approvers);
/// Point 9: every checklist of deploy, l1 and l2 names its approvers, so the operator who
/// starts a run cannot approve it.
fn approvers(shape: Shape) {
    for runbook in ["deploy", "rollback-l1", "rollback-l2", "backup"] {
        let text = std::fs::read_to_string(root().join(format!("runbooks/{runbook}.toml"))).expect("runbook");
        let table: toml::Table = text.parse().expect("TOML");
        let steps = table.get("steps").and_then(|s| s.as_table()).expect("steps");
        for (id, step) in steps {
            if let Some(approval) = step.get("approval") {
                let approvers =
                    approval.get("approvers").and_then(|a| a.as_array()).map(Vec::len).unwrap_or(0);
                assert!(approvers > 0, "{runbook}: `{id}` has no approvers");
            }
        }
    }
    let e = E2e::with(shape);
    let params = e.params_file("deploy", &[]);
    ok(&e.runbook(&["run", "runbooks/deploy.toml", "--params-file", &params, "--yes"], "oncall"), 4);
    let run = e.latest_run();
    ok(&e.runbook(&["approve", &run, "checklist_after"], "oncall"), 3);
    ok(&e.runbook(&["approve", &run, "checklist_after"], "tech-lead"), 0);
    ok(&e.runbook(&["resume", &run, "--yes"], "oncall"), 0);
    let params = e.params_file("rollback-l1", &[]);
    ok(&e.runbook(&["run", "runbooks/rollback-l1.toml", "--params-file", &params, "--yes"], "oncall"), 4);
    let run = e.latest_run();
    ok(&e.runbook(&["approve", &run, "checklist_before"], "oncall"), 3);
}

/// The happy paths of deploy, rollback-l1 (both modes), rollback-l2 and backup against the
/// second environment (the first one's are in e2e.rs): a role with a password over TCP,
/// Prisma's URL parameters, migration folders not named with 14 digits, the app under
/// `services/web`. The argv sampler watches the real password throughout.
#[test]
fn deploy_then_rollback_l2_on_the_second_environment() {
    let e = E2e::with(Shape::Shop);
    let spec = e.sb.spec();
    let (table, column) = spec.next_column;
    let has_column = || {
        e.sb.psql(&format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'"
        ))
    };
    ok(&e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]), 0);
    assert_eq!(e.sb.deployed_version(), spec.next_version);
    assert_eq!(has_column(), "1");
    let out = e.drive(
        "rollback-l2",
        &[],
        &[("checklist_before", "dba", BEFORE_L2), ("checklist_after", "backend-lead", AFTER)],
    );
    ok(&out, 0);
    assert_eq!(has_column(), "0");
    let mut history: Vec<&str> = spec.applied.to_vec();
    history.extend([spec.next_migration, spec.reversal]);
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY migration_name COLLATE \"C\") FROM _prisma_migrations"),
        history.join(",")
    );
}

#[test]
fn rollback_l1_in_both_modes_on_the_second_environment() {
    let approvals: crate::e2e::Approvals<'_> =
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_after", "devops-lead", AFTER)];
    let e = E2e::with(Shape::Shop);
    let spec = e.sb.spec();
    ok(&e.drive("rollback-l1", &[], approvals), 0);
    let (file, text) = spec.frontend_file;
    let shown = git(&e.sb.origin, &["show", &format!("main:{}/{file}", spec.app_subdir)]);
    assert!(shown.contains(text), "the change of `{}` is reverted: {shown}", spec.frontend_commit);

    let e = E2e::with(Shape::Shop);
    let spec = e.sb.spec();
    ok(
        &e.drive(
            "rollback-l1",
            &[("mode", "tag"), ("previous_tag", spec.previous_tag), ("commit", "")],
            approvals,
        ),
        0,
    );
    assert_eq!(e.sb.origin_commit("main"), e.sb.origin_commit(&format!("{}^{{commit}}", spec.previous_tag)));
}

#[test]
fn backup_on_the_second_environment() {
    let e = E2e::with(Shape::Shop);
    let out = e.drive("backup", &[("kind", "weekly")], &[]);
    ok(&out, 0);
    let weekly = e.sb.backups.join("weekly");
    let dumps = crate::support::files(&weekly, ".dump");
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let list = std::process::Command::new(e.sb.pg.bin().join("pg_restore"))
        .arg("--list")
        .arg(&dumps[0])
        .output()
        .expect("pg_restore");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("TABLE DATA public orders") && list.contains("TABLE DATA public payments"),
        "{list}"
    );
}

/// The ids of the preconditions a run reports as failed.
fn failed_checks(out: &crate::support::Output) -> Vec<String> {
    let mut ids: Vec<String> = said(out)
        .lines()
        .filter_map(|l| l.strip_prefix("precondition `"))
        .filter_map(|l| l.split_once("` of runbook failed").map(|(id, _)| id.to_string()))
        .collect();
    ids.sort();
    ids
}

both!(each_broken_environment_is_reported_by_its_own_check_alone, broken_environments);
/// Point 7, as a class: for each way an environment can be broken, the run stops before any
/// step, and exactly the checks of that cause fail (a corpus of causes x deploy, l1, l2).
fn broken_environments(shape: Shape) {
    let e = E2e::with(shape);
    let repo = e.sb.repo.display().to_string();
    let empty = e.sb.dir.join("empty-folder");
    std::fs::create_dir_all(&empty).expect("folder");
    let empty = empty.display().to_string();
    let missing = e.sb.dir.join("missing").display().to_string();
    let nowhere = e.sb.dir.join("no-such-origin.git").display().to_string();
    let deployed = e.sb.spec().deployed_tag;
    let tracked = e.sb.app_dir.join("package.json");
    let no_yarn = path_without(&e, "yarn");
    // (cause, params, PATH, runbook -> the checks that must fail; a runbook not listed skips it)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>, Vec<(&'a str, Vec<&'a str>)>);
    // The check of a cause every one of deploy, l1 and l2 checks.
    let all_three =
        |check| vec![("deploy", vec![check]), ("rollback-l1", vec![check]), ("rollback-l2", vec![check])];
    let cases: Vec<Case<'_>> = vec![
        ("repo_dir missing", vec![("repo_dir", &missing)], None, all_three("repo_dir_is_a_clone")),
        ("repo_dir not a clone", vec![("repo_dir", &empty)], None, all_three("repo_dir_is_a_clone")),
        (
            "app_dir missing",
            vec![("app_dir", &missing)],
            None,
            vec![("deploy", vec!["app_dir_exists"]), ("rollback-l2", vec!["app_dir_exists"])],
        ),
        (
            "backup_dir missing",
            vec![("backup_dir", &missing)],
            None,
            vec![
                ("deploy", vec!["backup_dir_writable"]),
                ("rollback-l1", vec!["backup_dir_writable"]),
                ("rollback-l2", vec!["backup_dir_writable"]),
                ("backup", vec!["backup_dir_exists"]),
            ],
        ),
        (
            "remote unreachable",
            vec![("git_remote", &nowhere)],
            None,
            vec![("deploy", vec!["remote_reachable"])],
        ),
        ("tag exists", vec![("version", deployed)], None, vec![("deploy", vec!["tag_is_new"])]),
        (
            "yarn missing",
            vec![],
            Some(&no_yarn),
            vec![("deploy", vec!["tool_yarn"]), ("rollback-l2", vec!["tool_yarn"])],
        ),
        (
            "wrong branch (which origin does not have either)",
            vec![("branch", "release")],
            None,
            vec![
                ("deploy", vec!["on_branch", "remote_reachable"]),
                ("rollback-l1", vec!["on_branch"]),
                ("rollback-l2", vec!["on_branch"]),
            ],
        ),
        ("uncommitted changes", vec![], None, all_three("clean_tree")),
    ];
    let mut checked = 0;
    for (cause, params, path, expected) in &cases {
        if *cause == "uncommitted changes" {
            std::fs::write(&tracked, "{}\n").expect("a change");
        }
        for (runbook, checks) in expected {
            let params = e.params_file(runbook, params);
            let file = format!("runbooks/{runbook}.toml");
            let args = ["run", file.as_str(), "--params-file", &params, "--yes"];
            let out = match path {
                Some(p) => run_with(&e, &args, &[("PATH", p)]),
                None => run_with(&e, &args, &[]),
            };
            assert_eq!(out.code, 3, "{cause}, {runbook}: {}", said(&out));
            assert_eq!(failed_checks(&out), *checks, "{cause}, {runbook}: {}", said(&out));
            nothing_started(&e);
            checked += 1;
        }
        if *cause == "uncommitted changes" {
            git(&e.sb.repo, &["checkout", "--", "."]);
        }
    }
    assert!(checked >= 20, "{checked}");
    assert_eq!(git(Path::new(&repo), &["status", "--porcelain"]), "", "the clone is as it was");
}

/// The failure paths of e2e.rs's first-environment tests, against the second: a failing test
/// suite stops a deploy before anything changes; a dump that does not verify (another
/// database, without the app's tables) is removed and nothing is pruned.
#[test]
fn deploy_and_backup_failures_on_the_second_environment() {
    let e = E2e::with(Shape::Shop);
    let flag = e.sb.dir.join("tests-fail");
    std::fs::write(&flag, "").expect("flag");
    let before = e.sb.dump();
    let params = e.params_file("deploy", &[]);
    let flag = flag.display().to_string();
    let out = run_with(
        &e,
        &["run", "runbooks/deploy.toml", "--params-file", &params, "--yes"],
        &[("SANDBOX_FAIL_TESTS", &flag)],
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED tests"), "{}", out.stdout);
    assert_eq!(e.sb.dump(), before, "no migration ran");
    assert!(e.sb.deployed_version().starts_with(e.sb.spec().deployed_tag), "no tag was pushed");

    let daily = e.sb.backups.join("daily");
    std::fs::create_dir_all(&daily).expect("daily");
    std::fs::write(daily.join(format!("{}-daily-20250101T020000Z.dump", e.sb.spec().environment)), "x")
        .expect("old");
    let before = crate::support::files(&daily, "");
    let url = e.env().into_iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v).expect("url");
    let other = url.replace("/shop?", "/postgres?");
    assert_ne!(other, url);
    let params = e.params_file("backup", &[("kind", "daily")]);
    let out =
        run_with(&e, &["run", "runbooks/backup.toml", "--params-file", &params], &[("DATABASE_URL", &other)]);
    ok(&out, 1);
    assert!(out.stdout.contains("no _prisma_migrations data in the dump"), "{}", out.stdout);
    assert!(out.stdout.contains("undone dump"), "{}", out.stdout);
    assert_eq!(crate::support::files(&daily, ""), before, "nothing new, nothing pruned, no .partial left");
}
