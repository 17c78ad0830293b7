//! The team runbooks act on exactly what was validated and approved (adv12 data findings 2,
//! 6, 7, 13, 14): git operands never parse as options, the stable tag is checked out as
//! the tag (never a branch of the same name), the dump restored is the one inspected,
//! the report's restore point comes from a restore that happened, and preconditions do
//! not even refresh the clone's index.

use std::process::Command;

use crate::e2e::{AFTER, BEFORE, E2e, Shape};
use crate::e2e_l3::{app_dump, dump_now, quick_l3, restored_from};
use crate::support::{ok, root, run_in};

/// The runbooks of this area and the parameters of each that reach git as an operand.
const GIT_PARAMS: &[(&str, &[&str])] = &[
    ("rollback-l3", &["git_remote", "branch"]),
    ("rollback-l2", &["git_remote", "branch"]),
    ("rollback-l1", &["git_remote", "branch"]),
    ("deploy", &["git_remote", "branch"]),
];

/// Every parameter that reaches git as an operand refuses a value git would read as an
/// option, at validation (before any precondition runs), with the parameter named; the
/// values teams use are accepted.
#[test]
fn git_parameters_that_look_like_options_are_refused_before_anything_runs() {
    let hostile = [
        "--upload-pack=touch /tmp/rb-adv12-marker;:",
        "-x",
        "-",
        "--",
        "--mirror",
        "-ccore.sshCommand=touch /tmp/rb-adv12-marker",
        "--exec=sh",
    ];
    let fine = [
        "origin",
        "upstream",
        "/srv/git/inmova.git",
        "https://git.example.invalid/o/r.git",
        "git@host:o/r.git",
    ];
    let branches = ["main", "release/1.2", "hotfix-3"];
    for (runbook, params) in GIT_PARAMS {
        let file = format!("runbooks/{runbook}.toml");
        let params_file = format!("runbooks/params/{runbook}.staging.toml");
        for param in *params {
            for value in hostile {
                let set = format!("{param}={value}");
                let out = run_in(&root(), &["plan", &file, "--params-file", &params_file, "-p", &set]);
                assert_ne!(out.code, 0, "{runbook}: {set} accepted:\n{}", out.stdout);
                assert!(out.stderr.contains(param), "{runbook}: {set}: {}", out.stderr);
            }
            let good: &[&str] = if *param == "branch" { &branches } else { &fine };
            for value in good {
                let set = format!("{param}={value}");
                let out = run_in(&root(), &["plan", &file, "--params-file", &params_file, "-p", &set]);
                ok(&out, 0);
            }
        }
    }
    assert!(!std::path::Path::new("/tmp/rb-adv12-marker").exists());
}

macro_rules! both_shapes {
    ($check:ident) => {
        mod $check {
            #[test]
            fn inmova() {
                super::$check(crate::e2e::Shape::Inmova)
            }
            #[test]
            fn shop() {
                super::$check(crate::e2e::Shape::Shop)
            }
        }
    };
}

both_shapes!(preconditions_leave_the_clone_index_untouched);

/// A run refused by its preconditions leaves every byte of the clone as it was, its index
/// included: `git diff` would refresh the index's stat cache (a write) after a `touch`.
fn preconditions_leave_the_clone_index_untouched(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    let package = e.sb.repo.join(spec.app_subdir).join("package.json");
    let index = e.sb.repo.join(".git/index");
    for runbook in ["rollback-l3", "rollback-l2", "rollback-l1", "deploy"] {
        // A tracked file whose content is unchanged, but whose stat is not the index's.
        let text = std::fs::read(&package).expect("package.json");
        std::fs::write(&package, text).expect("touch");
        let before = std::fs::read(&index).expect("index");
        let mtime = std::fs::metadata(&index).and_then(|m| m.modified()).expect("mtime");
        let params = e.params_file(
            runbook,
            &[("backup_dir", "/nonexistent/rb-adv12"), ("log_dir", "/nonexistent/rb-adv12")],
        );
        let out = e.runbook(
            &["run", &format!("runbooks/{runbook}.toml"), "--params-file", &params, "--yes"],
            "oncall",
        );
        assert_ne!(out.code, 0, "{runbook}: {}", out.stdout);
        assert!(out.stderr.contains("preconditions failed"), "{runbook}: {}", out.stderr);
        assert_eq!(std::fs::read(&index).expect("index"), before, "{runbook} rewrote .git/index");
        assert_eq!(std::fs::metadata(&index).and_then(|m| m.modified()).expect("mtime"), mtime, "{runbook}");
    }
}

both_shapes!(rollback_l3_publishes_the_tag_not_a_branch_named_like_it);

/// A branch named like the stable tag, at the broken code: l3 checks out and publishes the
/// tag's commit (what `check_tag` validated and the approvers saw), and succeeds.
fn rollback_l3_publishes_the_tag_not_a_branch_named_like_it(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    let repo = e.sb.repo.display().to_string();
    let git = |args: &[&str]| {
        let out = Command::new("git").arg("-C").arg(&repo).args(args).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["branch", spec.stable_tag, "HEAD"]);
    let tag_commit = git(&["rev-parse", &format!("refs/tags/{}^{{commit}}", spec.stable_tag)]);
    let branch_commit = git(&["rev-parse", &format!("refs/heads/{}", spec.stable_tag)]);
    assert_ne!(tag_commit, branch_commit);
    let expected = restored_from(&e, &e.sb.stable_dump);
    e.sb.corrupt();
    let file = quick_l3(&e, "", "");
    let out = e.drive_file(
        &file,
        "rollback-l3",
        &[],
        &[
            ("checklist_before", "devops-lead", BEFORE),
            ("checklist_before", "dba", &[]),
            ("checklist_after", "devops-lead", AFTER),
        ],
    );
    ok(&out, 0);
    assert_eq!(e.sb.origin_commit("main"), tag_commit, "origin's branch holds the tag's commit");
    assert_eq!(git(&["rev-parse", "HEAD"]), tag_commit);
    assert_eq!(app_dump(&e.sb), expected);
    // The report's restore point is the restore's own observation.
    let run = e.latest_run();
    let report = e.runbook(&["report", &run], "oncall").stdout;
    let line = report.lines().find(|l| l.contains("Punto de restauración")).expect("a restore point");
    assert!(line.contains("observada por `restore."), "{line}");
}

both_shapes!(rollback_l3_restores_only_the_dump_it_inspected);

/// The dump at `restore_file` is replaced while the run waits for its approvals (by a dump
/// of the damaged database): the restore refuses it, nothing is restored, the run undoes
/// itself, and the report states no restore point.
fn rollback_l3_restores_only_the_dump_it_inspected(shape: Shape) {
    let e = E2e::with(shape);
    let latest = e.sb.backups.join("latest.dump");
    std::fs::copy(&e.sb.stable_dump, &latest).expect("copy");
    let latest_s = latest.display().to_string();
    let file = quick_l3(&e, "", "");
    e.sb.corrupt();
    let damaged = app_dump(&e.sb);
    let main = e.sb.origin_commit("main");
    let params = e.params_file("rollback-l3", &[("restore_file", &latest_s)]);
    let out = e.runbook(&["run", &file, "--params-file", &params, "--yes"], "oncall");
    ok(&out, 4);
    let run = e.latest_run();
    // Same name, another file: a newer dump, taken after the incident.
    let newer = e.sb.dir.join("newer.dump");
    dump_now(&e, &newer);
    std::fs::rename(&newer, &latest).expect("swap");
    for (who, inputs) in [("devops-lead", BEFORE), ("dba", &[][..])] {
        let mut args = vec!["approve", run.as_str(), "checklist_before"];
        for i in inputs {
            args.extend(["--input", i]);
        }
        ok(&e.runbook(&args, who), 0);
    }
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED restore"), "{}", out.stdout);
    let log =
        std::fs::read_to_string(e.sb.dir.join("runs").join(&run).join("restore.1.log")).unwrap_or_default();
    assert!(log.contains("no es el que se validó"), "{log}");
    assert_eq!(app_dump(&e.sb), damaged, "nothing restored");
    assert_eq!(e.sb.origin_commit("main"), main);
    let report = e.runbook(&["report", &run], "oncall").stdout;
    let line = report.lines().find(|l| l.contains("Punto de restauración")).expect("the restore point line");
    assert!(line.contains("desconocida"), "no restore happened: {line}");
}

both_shapes!(rollback_l3_refuses_objects_of_other_schemas_bound_to_the_app_schema);

/// Objects of another schema bound (by OID) to the app's schema would keep pointing at the
/// damaged schema the restore sets aside: a corpus of such dependents, each refused before
/// any approval, named in the log, nothing changed. An object of another schema that does
/// not depend on the app's is no reason to refuse.
fn rollback_l3_refuses_objects_of_other_schemas_bound_to_the_app_schema(shape: Shape) {
    let e = E2e::with(shape);
    let file = quick_l3(&e, "", "");
    // A table of the app's schema with a one-column primary key.
    let pk = e.sb.psql(
        "SELECT format('%I.%I|%I', n.nspname, c.relname, a.attname) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
         WHERE i.indisprimary AND i.indnatts = 1 AND n.nspname = 'public' AND c.relname <> '_prisma_migrations' ORDER BY c.relname LIMIT 1",
    );
    let (table, column) = pk.trim().split_once('|').expect("a table with a primary key");
    let owner = e.sb.psql("SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'");
    let corpus: Vec<(String, &str)> = vec![
        (format!("CREATE VIEW reporting.counted AS SELECT count(*) AS n FROM {table}"), "reporting.counted"),
        (format!("CREATE MATERIALIZED VIEW reporting.snap AS SELECT * FROM {table}"), "reporting.snap"),
        (format!("CREATE TABLE reporting.audit (id int PRIMARY KEY, ref int REFERENCES {table}({column}))"), "reporting.audit"),
        ("CREATE SEQUENCE public.rb_adv12_seq; CREATE TABLE reporting.numbered (n bigint DEFAULT nextval('public.rb_adv12_seq'))".into(), "reporting.numbered"),
        ("CREATE TYPE public.rb_adv12_mood AS ENUM ('ok', 'ko'); CREATE TABLE reporting.moods (m public.rb_adv12_mood)".into(), "reporting.moods"),
        (format!("CREATE FUNCTION reporting.how_many() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM {table}; END"), "reporting.how_many"),
    ];
    let db = app_dump(&e.sb);
    let main = e.sb.origin_commit("main");
    for (sql, name) in &corpus {
        e.sb.psql(&format!("CREATE SCHEMA reporting AUTHORIZATION {}; {sql}", owner.trim()));
        let params = e.params_file("rollback-l3", &[]);
        let out = e.runbook(&["run", &file, "--params-file", &params, "--yes"], "oncall");
        ok(&out, 1);
        assert!(out.stdout.contains("FAILED other_schemas"), "{sql}: {}", out.stdout);
        let run = e.latest_run();
        let log = std::fs::read_to_string(e.sb.dir.join("runs").join(&run).join("other_schemas.1.log"))
            .unwrap_or_default();
        assert!(log.contains(name), "{sql}: {log}");
        assert!(!e.steps_with(&run, "step_started").contains(&"checklist_before".to_string()));
        e.sb.psql("DROP SCHEMA reporting CASCADE; DROP SEQUENCE IF EXISTS public.rb_adv12_seq; DROP TYPE IF EXISTS public.rb_adv12_mood");
        assert_eq!(app_dump(&e.sb), db, "{sql}: nothing changed");
        assert_eq!(e.sb.origin_commit("main"), main);
    }
    // Not bound to the app's schema: the run goes on to its approval.
    e.sb.psql(&format!(
        "CREATE SCHEMA reporting AUTHORIZATION {}; CREATE VIEW reporting.now AS SELECT now() AS t",
        owner.trim()
    ));
    let params = e.params_file("rollback-l3", &[]);
    let out = e.runbook(&["run", &file, "--params-file", &params, "--yes"], "oncall");
    ok(&out, 4);
    assert!(out.stdout.contains("ok other_schemas"), "{}", out.stdout);
}

both_shapes!(rollback_l3_twice_on_a_long_schema_name_restores_both_times);

/// An app schema whose name leaves no room for a suffix in PostgreSQL's 63 bytes, and two l3
/// runs in a row: each restores (the second does not mistake the first's kept schema for
/// its own), each kept schema exists under the name its run reports, with its run's marker.
fn rollback_l3_twice_on_a_long_schema_name_restores_both_times(shape: Shape) {
    const LONG: &str = "inmova_tenant_acme_properties_eu_west_main01_and_then_some_more";
    assert_eq!(LONG.len(), 63);
    let e = E2e::with(shape);
    let file = quick_l3(&e, "", "");
    let spec = e.sb.spec();
    // The stable dump, its app schema renamed: restored with its owners into a scratch
    // database of the same cluster, renamed, dumped again.
    e.sb.pg.psql("postgres", "CREATE DATABASE l3_long");
    let restore = Command::new(e.sb.pg.bin().join("pg_restore"))
        .args(["--exit-on-error", "--dbname", &e.sb.pg.url("l3_long")])
        .arg(&e.sb.stable_dump)
        .output()
        .expect("pg_restore");
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    e.sb.pg.psql("l3_long", &format!("ALTER SCHEMA public RENAME TO {LONG}"));
    let dump = e.sb.backups.join("long.dump");
    let status = Command::new(e.sb.pg.bin().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(e.sb.pg.url("l3_long"))
        .status()
        .expect("pg_dump");
    assert!(status.success());
    let expected = crate::e2e_l3::schema_dump(&e.sb, &e.sb.pg.url("l3_long"), LONG);
    // The live database: the app's schema under the long name (and found there by sessions
    // that ignore `?schema=`, as the sandbox's stand-ins do).
    e.sb.psql(&format!(
        "ALTER SCHEMA public RENAME TO {LONG}; CREATE SCHEMA public; ALTER DATABASE {} SET search_path = {LONG}",
        spec.database
    ));
    let env: Vec<(String, String)> = e
        .env()
        .into_iter()
        .map(|(k, v)| {
            if k != "DATABASE_URL" {
                return (k, v);
            }
            let v = match v.find("schema=") {
                Some(at) => {
                    let end = v[at..].find('&').map_or(v.len(), |n| at + n);
                    format!("{}schema={LONG}{}", &v[..at], &v[end..])
                }
                None if v.contains('?') => format!("{v}&schema={LONG}"),
                None => format!("{v}?schema={LONG}"),
            };
            (k, v)
        })
        .collect();
    let state = e.state();
    let runbook = |args: &[&str], who: &str| {
        let mut all = args.to_vec();
        all.extend(["--state", &state, "--as", who]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::support::run_in_with_env(&root(), &all, &env)
    };
    let dump_s = dump.display().to_string();
    let params = e.params_file("rollback-l3", &[("restore_file", &dump_s), ("restore_database", "l3_long")]);
    let mut kept = Vec::new();
    for round in 1..=2 {
        // The incident, then its recurrence on the restored (stable) schema.
        if round == 1 {
            e.sb.corrupt();
        } else {
            e.sb.psql(&format!(r#"TRUNCATE "{}" CASCADE"#, spec.tables[1]));
        }
        let out = runbook(&["run", &file, "--params-file", &params, "--yes"], "oncall");
        ok(&out, 4);
        let run = e.latest_run();
        for (who, inputs) in [("devops-lead", BEFORE), ("dba", &[][..])] {
            let mut args = vec!["approve", run.as_str(), "checklist_before"];
            for i in inputs {
                args.extend(["--input", i]);
            }
            ok(&runbook(&args, who), 0);
        }
        let out = runbook(&["resume", &run, "--yes"], "oncall");
        ok(&out, 4);
        assert_eq!(
            crate::e2e_l3::schema_dump(&e.sb, &e.sb.admin_url(), LONG),
            expected,
            "round {round}: restored"
        );
        let name = e.sb.psql(&format!(
            "SELECT nspname FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') = 'rollback-l3 run {run}'"
        ));
        assert!(
            out.stdout.contains(&format!("kept_schema={}", name.trim())),
            "round {round}: {name}: {}",
            out.stdout
        );
        assert!(name.trim().len() <= 63 && !name.trim().is_empty());
        let mut args = vec!["approve", run.as_str(), "checklist_after"];
        for i in AFTER {
            args.extend(["--input", i]);
        }
        ok(&runbook(&args, "devops-lead"), 0);
        ok(&runbook(&["resume", &run, "--yes"], "oncall"), 0);
        kept.push(name.trim().to_string());
    }
    assert_ne!(kept[0], kept[1]);
    e.sb.psql(&format!("ALTER DATABASE {} RESET search_path", spec.database));
}

both_shapes!(a_write_just_before_the_migration_is_in_a_dump);

/// `deploy` and `rollback-l2` back up long before their migration (tests, build, the wait
/// for the pipeline, a confirmation): a row the app writes in between is in the dump each
/// takes right before `prisma migrate deploy`. For l2 the write is into the column its
/// reversal migration drops.
fn a_write_just_before_the_migration_is_in_a_dump(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    let marker = "rb-adv12-written-before-the-migration";
    let inject = |runbook: &str, write: &str, extra_needs: Option<(&str, &str)>| -> String {
        let shipped =
            std::fs::read_to_string(root().join(format!("runbooks/{runbook}.toml"))).expect("runbook");
        let step = format!(
            "[steps.app_writes]\ntitle = \"La app escribe antes de la migración\"\n{}sql = {{ url = \"{{{{ secrets.DATABASE_URL }}}}\", query = '''{write}''' }}\n\n[steps.migrate]\n",
            extra_needs.map(|(needs, _)| format!("needs = {needs}\n")).unwrap_or_default()
        );
        assert_eq!(shipped.matches("[steps.migrate]\n").count(), 1);
        let mut text = shipped.replacen("[steps.migrate]\n", &step, 1);
        if let Some((_, (old, new))) = extra_needs.map(|(n, r)| (n, r.split_once('|').expect("old|new"))) {
            assert_eq!(text.matches(old).count(), 1, "{old}");
            text = text.replacen(old, new, 1);
        }
        let file = e.sb.dir.join(format!("{runbook}.toml"));
        std::fs::write(&file, text).expect("write");
        file.display().to_string()
    };
    let dumps_with = |value: &str| -> Vec<String> {
        let mut found = Vec::new();
        for f in std::fs::read_dir(&e.sb.backups).expect("backups").flatten() {
            let path = f.path();
            if path.extension().and_then(|x| x.to_str()) != Some("dump") {
                continue;
            }
            let out = Command::new(e.sb.pg.bin().join("pg_restore"))
                .args(["--data-only", "--file=-"])
                .arg(&path)
                .output()
                .expect("pg_restore");
            if String::from_utf8_lossy(&out.stdout).contains(value) {
                found.push(f.file_name().to_string_lossy().to_string());
            }
        }
        found
    };

    // deploy: a row written after its backup, before its migration.
    let write = spec.write_row.replace("{marker}", marker);
    let file = inject(
        "deploy",
        &write,
        Some((
            r#"["verify_backup"]"#,
            r#"needs = ["tests", "build", "verify_backup"]|needs = ["tests", "build", "verify_backup", "app_writes"]"#,
        )),
    );
    let before: Vec<String> = dumps_with(marker);
    assert_eq!(before, Vec::<String>::new());
    let out = e.drive_file(&file, "deploy", &[], &[("checklist_after", "tech-lead", &[])]);
    ok(&out, 0);
    assert!(!dumps_with(marker).is_empty(), "deploy: no dump holds the row written before its migration");

    // rollback-l2: a value written into the column its reversal drops.
    let (table, column) = spec.next_column;
    let value = "2011-11-11 11:11:11";
    let file = inject("rollback-l2", &format!(r#"UPDATE "{table}" SET "{column}" = '{value}'"#), None);
    let out = e.drive_file(
        &file,
        "rollback-l2",
        &[],
        &[("checklist_before", "dba", crate::e2e::BEFORE_L2), ("checklist_after", "backend-lead", AFTER)],
    );
    ok(&out, 0);
    assert_eq!(
        e.sb.psql(&format!("SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'")),
        "0",
        "the reversal dropped the column"
    );
    assert!(!dumps_with(value).is_empty(), "rollback-l2: the values of the dropped column are in no dump");
}
