//! rollback-l3 where an incident happens (issue 12): inputs validated before any approval,
//! a restore over a schema that changed since the dump, nothing written lost when the run
//! undoes itself, the served version checked, and the password never in a process list.

use std::path::Path;
use std::process::Command;

use runbook_sandbox::Sandbox;

use crate::e2e::{AFTER, BEFORE, E2e, Shape, clone_state};
use crate::support::{Output, ok, root};

/// A plain-text dump of the app's schema only (`public`, as the sandboxes' URLs say): the
/// schemas a restore sets aside are kept in the same database, on purpose.
pub(crate) fn app_dump(sb: &Sandbox) -> String {
    schema_dump(sb, &sb.admin_url(), "public")
}

/// A plain-text dump (no owners, no privileges) of `schema` in the database at `url`.
pub(crate) fn schema_dump(sb: &Sandbox, url: &str, schema: &str) -> String {
    let out = Command::new(sb.pg.bin().join("pg_dump"))
        .args(["--no-owner", "--no-privileges", &format!("--schema={schema}"), url])
        .output()
        .expect("pg_dump");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every ref of origin, with its commit.
fn origin_refs(sb: &Sandbox) -> String {
    git(&["--git-dir", &sb.origin.display().to_string(), "for-each-ref"])
}

fn git(args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The schema names a run derives from its id (see `restore` in rollback-l3.toml).
pub(crate) fn run_key(run: &str) -> String {
    run.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// rollback-l3 as shipped, with the health check polling twice 100 ms apart (instead of 40
/// times 15 s apart), and `extra` TOML appended, written into the sandbox folder.
pub(crate) fn quick_l3(e: &E2e, health_needs: &str, extra: &str) -> String {
    let shipped = std::fs::read_to_string(root().join("runbooks/rollback-l3.toml")).expect("runbook");
    let poll = r#"retry = { attempts = 40, delay = "15s" }"#;
    let health = shipped.find("[steps.health]").expect("a health step");
    let at = health + shipped[health..].find(poll).expect("the health poll");
    let mut text = format!(
        "{}{}{}",
        &shipped[..at],
        r#"retry = { attempts = 2, delay = "100ms" }"#,
        &shipped[at + poll.len()..]
    );
    let needs = r#"needs = ["migrate_status", "migrations_clean"]"#;
    let n = health + text[health..].find(needs).expect("the health step's needs");
    text.replace_range(
        n..n + needs.len(),
        &format!(r#"needs = ["migrate_status", "migrations_clean"{health_needs}]"#),
    );
    text.push_str(extra);
    let file = e.sb.dir.join("rollback-l3.toml");
    std::fs::write(&file, text).expect("write runbook");
    file.display().to_string()
}

fn audit_text(e: &E2e, run: &str) -> String {
    e.runbook(&["audit", run, "--format", "jsonl"], "oncall").stdout
}

/// A custom-format dump of the app database as it is now.
pub(crate) fn dump_now(e: &E2e, file: &Path) {
    let status = Command::new(e.sb.pg.bin().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(file)
        .arg(e.sb.admin_url())
        .status()
        .expect("pg_dump");
    assert!(status.success());
}

/// What the app's schema holds once `dump` is restored: the dump restored into a scratch
/// database, as text.
pub(crate) fn restored_from(e: &E2e, dump: &Path) -> String {
    e.sb.pg.psql("postgres", "CREATE DATABASE l3_expected");
    let out = Command::new(e.sb.pg.bin().join("pg_restore"))
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "--dbname", &e.sb.pg.url("l3_expected")])
        .arg(dump)
        .output()
        .expect("pg_restore");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = schema_dump(&e.sb, &e.sb.pg.url("l3_expected"), "public");
    e.sb.pg.psql("postgres", "DROP DATABASE l3_expected");
    text
}

/// One `#[test]` per environment for each check below: the runbook must not know either.
macro_rules! both_shapes {
    ($check:ident: $inmova:ident, $shop:ident) => {
        #[test]
        fn $inmova() {
            $check(Shape::Inmova);
        }

        #[test]
        fn $shop() {
            $check(Shape::Shop);
        }
    };
}

both_shapes!(
    wrong_inputs_are_refused: wrong_dumps_and_tags_are_refused_before_any_approval_inmova,
    wrong_dumps_and_tags_are_refused_before_any_approval_shop
);

/// A corpus of wrong inputs: each is refused before any approval, names the value, and
/// nothing changes (database, origin, clone; nobody is told of a rollback).
fn wrong_inputs_are_refused(shape: Shape) {
    let e = E2e::with(shape);
    let spec = e.sb.spec();
    let tag = spec.stable_tag;
    let repo = e.sb.repo.display().to_string();
    let app_rel = spec.app_subdir;
    let backups = &e.sb.backups;

    // A text file, a dump of another database.
    let text = backups.join("notes.dump");
    std::fs::write(&text, "SELECT 1;\n").expect("text");
    let other_db = backups.join("postgres.dump");
    let status = Command::new(e.sb.pg.bin().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&other_db)
        .arg(e.sb.pg.url("postgres"))
        .status()
        .expect("pg_dump");
    assert!(status.success());
    // Dumps of this database whose history does not fit the tag: a later migration the tag
    // does not know, a failed one.
    let later = backups.join("later.dump");
    e.sb.psql("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count) VALUES ('l3-later', 'x', '20991231_later', now(), now(), 1)");
    dump_now(&e, &later);
    e.sb.psql("DELETE FROM _prisma_migrations WHERE id = 'l3-later'");
    let failed = backups.join("failed.dump");
    e.sb.psql("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) VALUES ('l3-failed', 'x', '20991231_half', now(), 0)");
    dump_now(&e, &failed);
    e.sb.psql("DELETE FROM _prisma_migrations WHERE id = 'l3-failed'");
    // A tag with one migration more than the dump holds (a folder named as Prisma allows,
    // not with 14 digits), and a tag whose commit has no app folder.
    git(&["-C", &repo, "checkout", "--quiet", "-b", "l3-extra", tag]);
    let extra = e.sb.repo.join(app_rel).join("prisma/migrations/20991231_extra");
    std::fs::create_dir_all(&extra).expect("migration folder");
    std::fs::write(extra.join("migration.sql"), "SELECT 1;\n").expect("migration");
    git(&["-C", &repo, "add", "-A"]);
    git(&["-C", &repo, "commit", "--quiet", "-m", "extra migration"]);
    git(&["-C", &repo, "tag", "v9.9.9-stable"]);
    git(&["-C", &repo, "checkout", "--quiet", "main"]);
    let empty_tree = git(&["-C", &repo, "hash-object", "-t", "tree", "-w", "/dev/null"]);
    let orphan = git(&["-C", &repo, "commit-tree", &empty_tree, "-m", "no app here"]);
    git(&["-C", &repo, "tag", "v0.0.1-stable", &orphan]);

    let db = e.sb.dump();
    let refs = origin_refs(&e.sb);
    let clone = clone_state(&e.sb.repo);
    let path = |p: &Path| p.display().to_string();
    let cases: Vec<(Vec<(&str, String)>, String)> = vec![
        (
            vec![("restore_file", path(&text))],
            format!("{} no es un backup en formato custom legible", path(&text)),
        ),
        (
            vec![("restore_file", path(&other_db))],
            format!(
                "{} es un backup de la BD 'postgres' y DATABASE_URL apunta a '{}'",
                path(&other_db),
                spec.database
            ),
        ),
        (
            vec![("restore_file", path(&other_db)), ("restore_database", "otra".into())],
            "es un backup de la BD 'postgres', no de 'otra' (restore_database)".into(),
        ),
        (
            vec![("restore_file", path(&other_db)), ("restore_database", "postgres".into())],
            "no tiene filas en public._prisma_migrations".into(),
        ),
        (
            vec![("restore_file", path(&later))],
            // (the second environment's live history has one more the tag does not know)
            "20991231_later. Es de una versión posterior: elige un backup tomado con".into(),
        ),
        (vec![("restore_file", path(&failed))], "registra migraciones fallidas: 20991231_half".into()),
        (
            vec![("stable_tag", "v9.9.9-stable".into())],
            "le faltan migraciones de v9.9.9-stable: 20991231_extra".into(),
        ),
        (
            vec![("stable_tag", "v0.0.1-stable".into())],
            format!("v0.0.1-stable ({orphan}) no contiene {app_rel}/package.json"),
        ),
        (vec![("stable_tag", "v7.7.7-stable".into())], "el tag v7.7.7-stable no existe".into()),
    ];
    let checked = cases.len();
    for (extra, message) in cases {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let params = e.params_file("rollback-l3", &extra);
        let out =
            e.runbook(&["run", "runbooks/rollback-l3.toml", "--params-file", &params, "--yes"], "oncall");
        let mut all = format!("{}{}", out.stdout, out.stderr);
        // The failed step's own log (its stdout and stderr, as the operator reads it).
        if let Some(run) = crate::support::latest_run_id(&root(), Path::new(&e.state())) {
            for step in ["check_tag", "inspect_dump"] {
                let log = e.sb.dir.join("runs").join(&run).join(format!("{step}.1.log"));
                all.push_str(&std::fs::read_to_string(log).unwrap_or_default());
            }
        }
        assert!(out.code != 0 && out.code != 4, "{extra:?} refused, not waiting:\n{all}");
        assert!(!all.contains("waiting for approval"), "{extra:?}: no approval asked:\n{all}");
        assert!(all.contains(&message), "{extra:?}: `{message}` in:\n{all}");
        assert_eq!(e.sb.dump(), db, "{extra:?}: the database is untouched");
        assert_eq!(origin_refs(&e.sb), refs, "{extra:?}: origin is untouched");
        assert_eq!(clone_state(&e.sb.repo), clone, "{extra:?}: the clone is untouched");
    }
    assert_eq!(checked, 9);
    let hooks = e.sb.app.hooks().join("\n");
    assert!(!hooks.contains("inminente"), "nobody was told of a rollback: {hooks}");
}

both_shapes!(
    restore_over_a_changed_schema: rollback_l3_restores_over_a_changed_schema_and_keeps_what_only_it_had_inmova,
    rollback_l3_restores_over_a_changed_schema_and_keeps_what_only_it_had_shop
);

/// The live schema has objects the dump does not (a table with a foreign key to a restored
/// table, a view over both, a column): the restore works, holds exactly the dump's data,
/// and the live schema is kept aside whole, its extra objects listed.
fn restore_over_a_changed_schema(shape: Shape) {
    let e = E2e::with(shape);
    let expected = restored_from(&e, &e.sb.stable_dump);
    // The later migration: the second environment has it; the first gets one by hand.
    let listed: Vec<&str> = match shape {
        Shape::Inmova => {
            e.sb.psql(
                r#"CREATE TABLE payments (id SERIAL PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES "Property"(id), paid NUMERIC(12, 2) NOT NULL);
                INSERT INTO payments (order_id, paid) VALUES (1, 1500.00), (2, 0);
                CREATE VIEW property_paid AS SELECT p.id, p.title, coalesce(sum(x.paid), 0) AS paid FROM "Property" p LEFT JOIN payments x ON x.order_id = p.id GROUP BY p.id;
                ALTER TABLE "User" ADD COLUMN phone TEXT;
                CREATE EXTENSION pgcrypto;
                ALTER TABLE payments ADD COLUMN token BYTEA DEFAULT public.gen_random_bytes(8);
                CREATE TYPE payment_state AS ENUM ('open', 'paid');
                CREATE DOMAIN positive_amount AS NUMERIC CHECK (VALUE > 0);
                CREATE FUNCTION paid_for(property INTEGER) RETURNS NUMERIC LANGUAGE sql AS 'SELECT coalesce(sum(paid), 0) FROM public.payments WHERE order_id = property';
                CREATE MATERIALIZED VIEW paid_snapshot AS SELECT order_id, sum(paid) AS paid FROM payments GROUP BY order_id"#,
            );
            vec![
                "table payments",
                "view property_paid",
                "column User.phone",
                "sequence payments_id_seq",
                "type payment_state",
                "type positive_amount",
                "function paid_for(property integer)",
                "materialized-view paid_snapshot",
            ]
        }
        Shape::Shop => vec!["table payments", "view order_totals", "sequence payments_id_seq"],
    };
    // A grant on the schema that no dump carries: the fresh schema must have it too.
    e.sb.psql("CREATE ROLE l3_reporting; GRANT USAGE ON SCHEMA public TO l3_reporting");
    let acl = "SELECT nspowner::regrole || ' ' || nspacl::text || ' ' || coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace WHERE nspname = ";
    let schema_before = e.sb.psql(&format!("{acl}'public'"));
    e.sb.corrupt();
    let later_rows = e.sb.psql("SELECT count(*) FROM payments");
    assert_ne!(later_rows, "0");
    let damaged = app_dump(&e.sb);
    let out = e.drive(
        "rollback-l3",
        &[],
        &[
            ("checklist_before", "devops-lead", BEFORE),
            ("checklist_before", "dba", &[]),
            ("checklist_after", "backend-lead", AFTER),
        ],
    );
    ok(&out, 0);
    assert_eq!(app_dump(&e.sb), expected, "the app's schema holds exactly the dump's data");
    let run = e.latest_run();
    let kept = format!("pre_l3_{}", run_key(&run));
    // Nothing of the live schema was dropped: it is kept aside whole, later objects included.
    let aside = schema_dump(&e.sb, &e.sb.admin_url(), &kept).replace(&kept, "public");
    let strip = |t: &str| t.lines().filter(|l| !l.contains("SCHEMA public")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&aside), strip(&damaged), "the kept schema is the live one, whole");
    assert_eq!(e.sb.psql(&format!("SELECT count(*) FROM {kept}.payments")), later_rows);
    assert_eq!(e.sb.psql(&format!("{acl}'public'")), schema_before, "owner, grants and comment copied");
    // The kept schema has the same owner and grants; its comment is the run's marker (the
    // live schema has the original comment).
    let comment = e.sb.psql("SELECT coalesce(obj_description('public'::regnamespace, 'pg_namespace'), '')");
    let grants = schema_before.strip_suffix(&comment).expect("the comment ends the line");
    assert_eq!(e.sb.psql(&format!("{acl}'{kept}'")), format!("{grants}rollback-l3 run {run}"));
    assert_eq!(e.sb.psql("SELECT has_schema_privilege('l3_reporting', 'public', 'USAGE')"), "t");
    // ...and listed: in the step's outputs (the journal), the after-checklist and the message.
    let audit = audit_text(&e, &run);
    for object in &listed {
        assert!(audit.contains(object), "{object} in the journal");
    }
    assert!(audit.contains(&format!("el schema anterior queda entero en {kept}")), "after-checklist prompt");
    let hooks = e.sb.app.hooks().join("\n");
    assert!(hooks.contains(&kept) && hooks.contains("table payments"), "{hooks}");
    if shape == Shape::Inmova {
        // The extension that lived in the app's schema moved to the fresh one; the kept
        // schema's defaults still reach it.
        assert_eq!(
            e.sb.psql("SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pgcrypto'"),
            "public"
        );
        assert_eq!(e.sb.psql("SELECT length(public.gen_random_bytes(4))"), "4");
        e.sb.psql(&format!("INSERT INTO {kept}.payments (order_id, paid) VALUES (1, 1)"));
        assert_eq!(e.sb.psql(&format!("SELECT count(token) FROM {kept}.payments")), "3");
    }
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

both_shapes!(
    write_during_health_wait: a_write_during_the_health_wait_survives_the_undo_inmova,
    a_write_during_the_health_wait_survives_the_undo_shop
);

/// The health check keeps failing after the restore, and meanwhile the app writes a row to
/// the restored schema. Undoing the restore keeps that row: in an evidence dump taken first,
/// and in the restored schema, set aside; the team is told where.
fn write_during_health_wait(shape: Shape) {
    let e = E2e::with(shape);
    let marker = "l3-written-during-the-health-wait";
    let write = e.sb.spec().write_row.replace("{marker}", marker);
    let step = format!(
        "\n[steps.app_writes]\ntitle = \"La app escribe mientras el health check espera\"\nneeds = [\"restore\"]\nsql = {{ url = \"{{{{ secrets.DATABASE_URL }}}}\", query = '''{write}''' }}\n"
    );
    let file = quick_l3(&e, r#", "app_writes""#, &step);
    e.sb.corrupt();
    let db = app_dump(&e.sb);
    let main = e.sb.origin_commit("main");
    e.sb.set_failing(true);
    let out = e.drive_file(
        &file,
        "rollback-l3",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_before", "dba", &[])],
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED health"), "{}", out.stdout);
    let run = e.latest_run();
    assert!(e.steps_with(&run, "step_succeeded").contains(&"app_writes".to_string()), "{}", out.stdout);
    assert_eq!(app_dump(&e.sb), db, "the app's schema is back to what it held before the rollback");
    assert_eq!(e.sb.origin_commit("main"), main);

    // The row is in the restored schema, kept aside...
    let undone = format!("l3_undone_{}", run_key(&run));
    assert!(schema_dump(&e.sb, &e.sb.admin_url(), &undone).contains(marker), "{marker} in {undone}");
    // ...and in the evidence dump taken before the swap back.
    let evidence = e.sb.backups.join(format!("{}-evidence-l3-{run}.dump", e.sb.spec().environment));
    let data = Command::new(e.sb.pg.bin().join("pg_restore"))
        .args(["--data-only", "--schema=public", "--file=-"])
        .arg(&evidence)
        .output()
        .expect("pg_restore");
    assert!(data.status.success(), "a readable evidence dump: {}", String::from_utf8_lossy(&data.stderr));
    assert!(String::from_utf8_lossy(&data.stdout).contains(marker));
    // The team is told where; the compensation's log names both.
    let hooks = e.sb.app.hooks().join("\n");
    assert!(hooks.contains(&evidence.display().to_string()), "{hooks}");
    assert!(hooks.contains(&format!("l3_undone_{}", run_key(&run))), "{hooks}");
    assert!(out.stdout.contains(&format!("evidence={}", evidence.display())), "{}", out.stdout);
    assert_eq!(
        e.steps_with(&run, "compensation_succeeded"),
        ["restore", "align_branch", "push_stable", "checkout_stable", "announce"]
    );
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

both_shapes!(
    health_waits_for_the_stable_version: the_health_check_waits_for_the_stable_version_inmova,
    the_health_check_waits_for_the_stable_version_shop
);

/// The app answers 200 but keeps serving what was deployed before (the pipeline did not
/// deploy the stable tag): the health check fails, and the run undoes itself.
fn health_waits_for_the_stable_version(shape: Shape) {
    let e = E2e::with(shape);
    let file = quick_l3(&e, "", "");
    let served = e.sb.deployed_version();
    e.sb.app.set_health(runbook_sandbox::peers::Health {
        token: Some(e.sb.token.clone()),
        ..runbook_sandbox::peers::Health::ok(&served)
    });
    let db = app_dump(&e.sb);
    let main = e.sb.origin_commit("main");
    let out = e.drive_file(
        &file,
        "rollback-l3",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_before", "dba", &[])],
    );
    ok(&out, 1);
    assert!(out.stdout.contains("FAILED health"), "{}", out.stdout);
    assert_eq!(app_dump(&e.sb), db);
    assert_eq!(e.sb.origin_commit("main"), main);
}

both_shapes!(
    no_self_approval: the_operator_who_starts_rollback_l3_cannot_approve_its_checklists_inmova,
    the_operator_who_starts_rollback_l3_cannot_approve_its_checklists_shop
);

/// Whoever starts the run approves none of its checklists, and every checklist names its
/// approvers.
fn no_self_approval(shape: Shape) {
    let e = E2e::with(shape);
    let params = e.params_file("rollback-l3", &[]);
    let out =
        e.runbook(&["run", "runbooks/rollback-l3.toml", "--params-file", &params, "--yes"], "devops-lead");
    ok(&out, 4);
    let run = e.latest_run();
    let mut args = vec!["approve", run.as_str(), "checklist_before"];
    for i in BEFORE {
        args.extend(["--input", i]);
    }
    ok(&e.runbook(&args, "devops-lead"), 3);
    ok(&e.runbook(&args, "dba"), 0);
    ok(&e.runbook(&["approve", &run, "checklist_before"], "backend-lead"), 0);
    ok(&e.runbook(&["resume", &run, "--yes"], "devops-lead"), 4);
    let mut args = vec!["approve", run.as_str(), "checklist_after"];
    for i in AFTER {
        args.extend(["--input", i]);
    }
    ok(&e.runbook(&args, "devops-lead"), 3);
    let text = std::fs::read_to_string(root().join("runbooks/rollback-l3.toml")).expect("runbook");
    let checklists = text.matches(".approval]").count();
    assert!(checklists >= 2);
    assert_eq!(text.matches("\napprovers = [").count(), checklists);
    assert!(!text.contains("allow-self-approval = true"));
}

/// Every `/proc/*/cmdline` that holds `needle` (with its program), sampled once.
fn cmdlines_with(needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return found };
    for p in procs.flatten() {
        let Ok(bytes) = std::fs::read(p.path().join("cmdline")) else { continue };
        let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
        if needles.iter().any(|n| line.contains(n.as_str())) {
            found.push(line);
        }
    }
    found
}

both_shapes!(
    password_never_in_argv: rollback_l3_never_puts_the_database_password_on_a_command_line_inmova,
    rollback_l3_never_puts_the_database_password_on_a_command_line_shop
);

/// Every process list sampled during a run, up to the restore, holds the password in no
/// form (plain or percent-encoded).
fn password_never_in_argv(shape: Shape) {
    let e = E2e::with(shape);
    // A URL as Prisma takes it: a percent-encoded password and Prisma-only parameters. The
    // first environment's server trusts its socket and ignores the one given here.
    let (password, url) = match e.sb.db_password() {
        Some(p) => (p.to_string(), e.sb.database_url()),
        None => (
            "l3-S3ntinel/pw".to_string(),
            e.sb.database_url().replacen("postgres://postgres@", "postgres://postgres:l3-S3ntinel%2Fpw@", 1)
                + "&schema=public&connection_limit=5",
        ),
    };
    let encoded = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(auth, _)| auth.split_once(':'))
        .map(|(_, pw)| pw.to_string())
        .expect("a password in the URL");
    let env: Vec<(String, String)> =
        e.sb.env()
            .into_iter()
            .map(|(k, v)| if k == "DATABASE_URL" { (k, url.clone()) } else { (k, v) })
            .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let needles = vec![password, encoded];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let needles = needles.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut samples = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.extend(cmdlines_with(&needles));
                samples += 1;
            }
            (seen, samples)
        })
    };
    let state = e.state();
    let params = e.params_file("rollback-l3", &[]);
    let runbook = |args: &[&str], who: &str| -> Output {
        let mut all = args.to_vec();
        all.extend(["--state", &state, "--as", who]);
        crate::support::run_in_with_env(&root(), &all, &env)
    };
    ok(&runbook(&["run", "runbooks/rollback-l3.toml", "--params-file", &params, "--yes"], "oncall"), 4);
    let run = e.latest_run();
    let mut args = vec!["approve", run.as_str(), "checklist_before"];
    for i in BEFORE {
        args.extend(["--input", i]);
    }
    ok(&runbook(&args, "devops-lead"), 0);
    ok(&runbook(&["approve", &run, "checklist_before"], "dba"), 0);
    let out = runbook(&["resume", &run, "--yes"], "oncall");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, samples) = sampler.join().expect("sampler");
    ok(&out, 4);
    assert!(out.stdout.contains("ok restore"), "{}", out.stdout);
    assert!(samples > 0);
    assert!(seen.is_empty(), "the password in a process list: {seen:?}");
}

both_shapes!(
    restore_again_after_commit: a_restore_interrupted_after_its_commit_is_not_done_twice_inmova,
    a_restore_interrupted_after_its_commit_is_not_done_twice_shop
);

/// The restore's transaction committed, then the step failed before it could report (as
/// when the engine dies there): its next attempt finds the schema this run set aside and
/// does not restore again, which would set the restored data aside as if it were the
/// previous one.
fn restore_again_after_commit(shape: Shape) {
    let e = E2e::with(shape);
    let flag = e.sb.dir.join("fail-after-commit");
    std::fs::write(&flag, "").expect("flag");
    let file = quick_l3(&e, "", "");
    let text = std::fs::read_to_string(&file).expect("runbook");
    let last = "echo \"only_in_previous=${only:-nada}\" >> \"$RUNBOOK_OUTPUT\"\n";
    let fault = format!(
        "{last}if [ -e {flag} ]; then rm {flag}; echo 'simulated: interrupted after COMMIT' >&2; exit 1; fi\n",
        flag = flag.display()
    );
    let outputs = "outputs = [\"kept_schema\", \"only_in_previous\", \"restore_point\"]\n";
    assert_eq!(text.matches(last).count(), 1);
    assert_eq!(text.matches(outputs).count(), 1);
    let text = text
        .replace(last, &fault)
        .replace(outputs, &format!("{outputs}retry = {{ attempts = 2, delay = \"100ms\" }}\n"));
    std::fs::write(&file, text).expect("runbook");
    let expected = restored_from(&e, &e.sb.stable_dump);
    e.sb.corrupt();
    let damaged = app_dump(&e.sb);
    let out = e.drive_file(
        &file,
        "rollback-l3",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_before", "dba", &[])],
    );
    ok(&out, 4);
    let run = e.latest_run();
    let log = |attempt: u32| {
        std::fs::read_to_string(e.sb.dir.join("runs").join(&run).join(format!("restore.{attempt}.log")))
            .unwrap_or_default()
    };
    assert!(log(1).contains("simulated: interrupted after COMMIT"), "{}", log(1));
    assert!(log(2).contains("ya restauró"), "{}", log(2));
    assert!(!flag.exists());
    assert_eq!(app_dump(&e.sb), expected);
    let kept = format!("pre_l3_{}", run_key(&run));
    let strip = |t: &str| t.lines().filter(|l| !l.contains("SCHEMA public")).collect::<Vec<_>>().join("\n");
    assert_eq!(
        strip(&schema_dump(&e.sb, &e.sb.admin_url(), &kept).replace(&kept, "public")),
        strip(&damaged),
        "the kept schema is still the damaged live one"
    );
    assert_eq!(e.sb.psql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pre_l3_%'"), "1");
}

both_shapes!(
    other_schemas_are_named_not_restored: a_dump_with_other_schemas_restores_only_the_apps_and_says_so_inmova,
    a_dump_with_other_schemas_restores_only_the_apps_and_says_so_shop
);

/// A whole-database dump that holds schemas besides the app's (another service's `billing`,
/// and one an earlier incident kept aside): l3 restores only the app's schema, and says so
/// before any approval (the inspection and the first checklist), in the announcement, the
/// after-checklist and the final message. Before: it restored `public` alone and said "BD
/// restaurada", and the drill found `billing` empty after a "successful" rollback.
fn other_schemas_are_named_not_restored(shape: Shape) {
    let e = E2e::with(shape);
    let expected = restored_from(&e, &e.sb.stable_dump);
    let kept = "public_pre_l3_20260901t000000z_0ld";
    // Built by the app's role, as the environment's own backups are.
    let role = match shape {
        Shape::Inmova => "postgres",
        Shape::Shop => "shop_owner",
    };
    e.sb.pg.psql("postgres", &format!("CREATE DATABASE l3_others OWNER {role}"));
    let out = Command::new(e.sb.pg.bin().join("pg_restore"))
        .args(["--no-owner", "--no-privileges", "--exit-on-error", &format!("--role={role}")])
        .args(["--dbname", &e.sb.pg.url("l3_others")])
        .arg(&e.sb.stable_dump)
        .output()
        .expect("pg_restore");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    e.sb.pg.psql(
        "l3_others",
        &format!(
            "SET ROLE {role}; CREATE SCHEMA billing; CREATE TABLE billing.ledger (id INT PRIMARY KEY, note TEXT); \
             INSERT INTO billing.ledger VALUES (1, 'del backup'); \
             CREATE SCHEMA {kept}; CREATE TABLE {kept}.old_rows (id INT)"
        ),
    );
    let dump = e.sb.backups.join("with-other-schemas.dump");
    let status = Command::new(e.sb.pg.bin().join("pg_dump"))
        .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
        .arg(&dump)
        .arg(e.sb.pg.url("l3_others"))
        .status()
        .expect("pg_dump");
    assert!(status.success());
    // `billing` lives on in the database, with data newer than the dump's.
    e.sb.psql(
        "CREATE SCHEMA billing; CREATE TABLE billing.ledger (id INT PRIMARY KEY, note TEXT); \
         INSERT INTO billing.ledger VALUES (1, 'posterior al backup'); \
         GRANT USAGE ON SCHEMA billing TO PUBLIC; GRANT SELECT ON billing.ledger TO PUBLIC",
    );
    e.sb.corrupt();
    let dump_param = dump.display().to_string();
    let out = e.drive(
        "rollback-l3",
        &[("restore_file", &dump_param), ("restore_database", "l3_others")],
        &[
            ("checklist_before", "devops-lead", BEFORE),
            ("checklist_before", "dba", &[]),
            ("checklist_after", "backend-lead", AFTER),
        ],
    );
    ok(&out, 0);
    let run = e.latest_run();
    let others = format!("billing, {kept}");
    let inspected = e.runbook(&["logs", &run, "inspect_dump"], "oncall").stdout;
    assert!(
        inspected.contains(&format!("AVISO: el backup tiene otros schemas además de public: {others}.")),
        "{inspected}"
    );
    let restored = e.runbook(&["logs", &run, "restore"], "oncall").stdout;
    assert!(
        restored.contains(&format!(
            "restaurado en el schema public (solo ese; otros schemas del backup, no restaurados: {others})"
        )),
        "{restored}"
    );
    let audit = audit_text(&e, &run);
    let requested: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "approval_requested")
        .collect();
    let prompt = |step: &str| {
        requested
            .iter()
            .find(|r| r["step"] == step)
            .and_then(|r| r["event"]["prompt"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert!(
        prompt("checklist_before")
            .contains(&format!("Otros schemas del backup, no restaurados por este runbook: {others}.")),
        "{audit}"
    );
    assert!(
        prompt("checklist_after").contains(&format!("otros schemas del backup, NO restaurados: {others}"))
    );
    let hooks = e.sb.app.hooks().join("\n");
    assert!(hooks.contains(&format!("no restaurados por este runbook: {others}")), "announcement: {hooks}");
    assert!(hooks.contains(&format!("(no restaurados: {others})")), "final message: {hooks}");
    // Only the app's schema was restored: the rest is as the database had it.
    assert_eq!(app_dump(&e.sb), expected, "the app's schema holds exactly the dump's data");
    assert_eq!(e.sb.psql("SELECT note FROM billing.ledger"), "posterior al backup");
    assert_eq!(e.sb.psql(&format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{kept}'")), "0");
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}
