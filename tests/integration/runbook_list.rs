//! `runbook list [DIR]` (alias `runbooks`, issue 17): the runbooks under a folder with their
//! title, critical-path estimate and last run; files that are not runbooks skipped quietly,
//! broken runbooks one line each; the store only read, never created.

use std::path::Path;

use crate::support::{Output, run_in_with_env};

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A folder `runbooks/` with two runbooks (one in a sub-folder), a params file, a
/// schedules file, a file that is not TOML and a runbook that does not validate.
fn folder(dir: &Path) {
    write(
        dir,
        "runbooks/deploy.toml",
        r#"[runbook]
name = "deploy"
title = "Deploy the app"
[steps.build]
run = "true"
estimate = "1m..2m"
[steps.ship]
run = "true"
needs = ["build"]
estimate = "30s"
[steps.notes]
run = "true"
estimate = "10s"
"#,
    );
    write(dir, "runbooks/ops/restart.toml", "[runbook]\nname = \"restart\"\n[steps.go]\nrun = \"true\"\n");
    write(dir, "runbooks/deploy.params.toml", "env = \"prod\"\n");
    write(
        dir,
        "runbooks/schedules.toml",
        "[schedule.nightly]\nrunbook = \"deploy.toml\"\ncron = \"0 2 * * *\"\n",
    );
    write(dir, "runbooks/broken.toml", "[runbook\nname = \"x\"\n");
    write(
        dir,
        "runbooks/ops/typo.toml",
        "[runbook]\nname = \"typo\"\n[steps.a]\nrun = \"true\"\nneeds = [\"b\"]\n",
    );
    write(dir, "runbooks/README.md", "not toml\n");
}

fn rb(dir: &Path, args: &[&str]) -> Output {
    let local = dir.join("host").display().to_string();
    run_in_with_env(dir, args, &[("XDG_STATE_HOME", &local), ("RUNBOOK_OPERATOR", "ana")])
}

/// Run ids and times made stable for a snapshot.
fn stable(text: &str) -> String {
    let id = regex::Regex::new(r"\d{8}T\d{6}Z-[0-9a-f]{8}").expect("regex");
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").expect("regex");
    time.replace_all(&id.replace_all(text, "[RUN]"), "[TIME]").into_owned()
}

#[test]
fn list_shows_runbooks_with_title_estimate_and_last_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    folder(d);
    let state = d.join("state.db");
    let state = state.to_str().unwrap_or_default();

    // No store yet: listed without last runs, and none is created.
    let before = rb(d, &["list", "--state", state]);
    assert_eq!(before.code, 0, "{}{}", before.stdout, before.stderr);
    assert!(!Path::new(state).exists(), "`list` created the store");

    let ran = rb(d, &["run", "runbooks/deploy.toml", "--state", state]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let out = rb(d, &["list", "--state", state]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    insta::assert_snapshot!(
        "list_text",
        format!("$ runbook list\n{}--- stderr\n{}", stable(&out.stdout), stable(&out.stderr))
    );
    insta::assert_snapshot!("list_text_no_store", format!("{}--- stderr\n{}", before.stdout, before.stderr));

    // The alias, a folder named, and JSON.
    let alias = rb(d, &["runbooks", "runbooks/ops", "--state", state, "--format", "json"]);
    assert_eq!(alias.code, 0, "{}", alias.stderr);
    let v: serde_json::Value = serde_json::from_str(&alias.stdout).expect("json");
    let names: Vec<&str> =
        v["runbooks"].as_array().expect("runbooks").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["restart"]);
    assert_eq!(v["problems"][0]["code"], "RB020", "{}", alias.stdout);
    let json = rb(d, &["list", "--state", state, "--format", "json"]);
    insta::assert_snapshot!("list_json", stable(&json.stdout));
}

#[test]
fn list_of_a_missing_folder_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = rb(dir.path(), &["list"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    insta::assert_snapshot!(out.stderr);
}

/// On PostgreSQL too the store is only read: an unmigrated database is refused with the
/// way out (and left without a schema), a migrated one gives the last runs.
#[test]
fn list_reads_a_postgres_store_and_never_migrates_it() {
    let pg = runbook_sandbox::peers::Postgres::start();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    folder(d);
    let refused = rb(d, &["list", "--state", &url]);
    assert_ne!(refused.code, 0, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("runbook state migrate"), "{}", refused.stderr);
    assert_eq!(
        pg.psql("postgres", "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"),
        "0",
        "`list` made a schema"
    );
    assert_eq!(rb(d, &["state", "migrate", "--state", &url]).code, 0);
    let ran = rb(d, &["run", "runbooks/ops/restart.toml", "--state", &url]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let out = rb(d, &["list", "--state", &url, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let last: Vec<String> = v["runbooks"]
        .as_array()
        .expect("runbooks")
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["name"].as_str().unwrap_or("?"),
                r["last_run"]["status"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(last, ["deploy:-", "restart:succeeded"]);
}

/// What a runbook says about itself (its title) and what its file is called reach the
/// terminal escaped, one line each, in the table and in the problem lines.
#[test]
fn list_escapes_titles_and_file_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "runbooks/x.toml",
        "[runbook]\nname = \"x\"\ntitle = \"a\\u001b[2Jb\\u202eevil\"\n[steps.a]\nrun = \"true\"\n",
    );
    write(
        d,
        "runbooks/bad\u{1b}[2J\nname.toml",
        "[runbook]\nname = \"y\"\n[steps.a]\nrun = \"true\"\nneeds = [\"b\"]\n",
    );
    write(d, "runbooks/ok\u{1b}]0;title\u{7}.toml", "[runbook]\nname = \"z\"\n[steps.a]\nrun = \"true\"\n");
    let out = rb(d, &["list", "--state", "none.db"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
    assert!(out.stdout.contains(r"a\u{1b}[2Jb\u{202e}evil"), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 3, "a header and two runbooks: {}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 2, "one problem and its help: {}", out.stderr);
}
