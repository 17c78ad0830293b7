//! Issue 12, points 5, 7, 8 and 9, for the team's deploy, backup, rollback-l1 and rollback-l2
//! runbooks: end to end through the real binary against the sandbox, with the argv sampler of
//! [`E2e`] watching every run for the database password.

use crate::e2e::E2e;
use crate::support::ok;

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

/// Point 9: Prisma applies every folder of prisma/migrations holding a `migration.sql`,
/// whatever its name, in lexicographic order; so does the sandbox's stand-in, and a deploy
/// applies migrations named `20250401_notes` (the second depends on the first).
#[test]
fn deploy_applies_migration_folders_not_named_with_14_digits_in_name_order() {
    let e = E2e::new();
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
    assert_eq!(
        e.sb.psql("SELECT string_agg(migration_name, ',' ORDER BY started_at, migration_name) FROM _prisma_migrations"),
        "20250101000000_init,20250301000000_property_archived_at,20250401_notes,20250401_notes_body"
    );
    assert_eq!(e.sb.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'note'"), "2");
}
