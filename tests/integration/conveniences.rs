//! Conveniences (issue 17, part A): shell completions loaded and driven in a real bash
//! (`runbook completions`, the dynamic protocol that completes runbook files, run ids and
//! step names), man pages rendered by groff (`runbook man`), and `runbook new` (a commented
//! runbook and its params file that `check` and `plan` take at once; its refusals).

use std::path::Path;
use std::process::Command;

use crate::support::{Output, bin, ok, run, run_in, run_in_with_env};

/// `bash -c SCRIPT` in `dir`, with `$RB` the binary under test (so the registration names
/// it by its full path) and no `RUNBOOK_STATE` from the test's environment.
fn bash(dir: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .current_dir(dir)
        .env("RB", bin())
        .env_remove("RUNBOOK_STATE")
        .env_remove("RUNBOOK_COMPLETE")
        .envs(env.iter().copied())
        .output()
        .expect("bash runs");
    Output::from(out)
}

/// What bash offers for the command line `line` (its last word is completed; a line that
/// ends with a space completes an empty word): the registration is sourced from
/// `runbook completions bash`, then the function it registered for `runbook` is called as
/// bash calls it on TAB (COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT, COMP_TYPE).
fn offered(dir: &Path, line: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut words: Vec<String> = line.split_whitespace().map(|w| format!("'{w}'")).collect();
    if line.ends_with(' ') {
        words.push("''".into());
    }
    let script = format!(
        r#"set -u
source <("$RB" completions bash) || exit 90
spec=$(complete -p runbook) || exit 91
fn=$(printf '%s\n' "$spec" | sed -E 's/.*-F ([^ ]+) .*/\1/')
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
"$fn" runbook "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = words.join(" "),
    );
    let out = bash(dir, &script, env);
    ok(&out, 0);
    out.stdout.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The candidates that are not options.
fn values(candidates: Vec<String>) -> Vec<String> {
    candidates.into_iter().filter(|c| !c.starts_with('-')).collect()
}

#[test]
fn completions_bash_registers_in_a_real_bash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bash(dir.path(), r#"source <("$RB" completions bash) && complete -p runbook"#, &[]);
    ok(&out, 0);
    let spec = out.stdout.trim();
    assert!(spec.starts_with("complete ") && spec.contains(" -F ") && spec.ends_with(" runbook"), "{spec}");
}

#[test]
fn bash_completes_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(offered(dir.path(), "runbook ch", &[]), ["check"]);
    let all = offered(dir.path(), "runbook ", &[]);
    for name in ["check", "plan", "run", "resume", "completions", "man", "new"] {
        assert!(all.iter().any(|c| c == name), "`{name}` not offered: {all:?}");
    }
    // Internal commands are never offered.
    assert!(!all.iter().any(|c| c.starts_with("__")), "{all:?}");
    // Options and their values complete too.
    assert_eq!(offered(dir.path(), "runbook plan --for", &[]), ["--format"]);
    assert_eq!(offered(dir.path(), "runbook new x --template ro", &[]), ["rollback"]);
}

#[test]
fn bash_completes_runbook_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("deploy.toml"), "").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "").expect("write");
    std::fs::create_dir(dir.path().join("more")).expect("mkdir");
    std::fs::write(dir.path().join("more/backup.toml"), "").expect("write");
    for line in ["runbook check ", "runbook plan ", "runbook run ", "runbook submit "] {
        let got = offered(dir.path(), line, &[]);
        assert!(got.iter().any(|c| c == "deploy.toml"), "{line}: {got:?}");
        assert!(got.iter().any(|c| c == "more/"), "{line}: {got:?}");
        assert!(!got.iter().any(|c| c == "notes.txt"), "{line}: {got:?}");
    }
    assert_eq!(offered(dir.path(), "runbook plan d", &[]), ["deploy.toml"]);
    assert_eq!(offered(dir.path(), "runbook check more/b", &[]), ["more/backup.toml"]);
    // A params file is a TOML or JSON file too.
    std::fs::write(dir.path().join("deploy.params.toml"), "").expect("write");
    std::fs::write(dir.path().join("deploy.log"), "").expect("write");
    let got = offered(dir.path(), "runbook plan deploy.toml --params-file dep", &[]);
    assert_eq!(got, ["deploy.params.toml", "deploy.toml"]);
    // Pinned plans are JSON files.
    std::fs::write(dir.path().join("old.json"), "").expect("write");
    std::fs::write(dir.path().join("other.txt"), "").expect("write");
    assert_eq!(offered(dir.path(), "runbook plan --diff o", &[]), ["old.json"]);
    assert_eq!(offered(dir.path(), "runbook plan --diff old.json o", &[]), ["old.json"]);
    assert_eq!(offered(dir.path(), "runbook run --plan o", &[]), ["old.json"]);
}

const TWO_STEPS: &str = r#"[runbook]
name = "two"

[steps.first]
run = "true"

[steps.second]
needs = ["first"]
run = "true"
"#;

/// A folder (a git repository) with `two.toml`, and the path of its state store.
fn two_steps_folder() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect("git");
    std::fs::write(dir.path().join("two.toml"), TWO_STEPS).expect("write");
    let state = dir.path().join("state.db").to_str().expect("utf-8").to_string();
    (dir, state)
}

#[test]
fn bash_completes_run_ids_and_their_steps_from_the_store() {
    let (dir, state) = two_steps_folder();
    let state = state.as_str();
    ok(&run_in(dir.path(), &["run", "two.toml", "--state", state]), 0);
    let runs = run_in(dir.path(), &["runs", "--format", "json", "--state", state]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).expect("json");
    let id = runs[0]["run_id"].as_str().expect("a run id").to_string();

    // From `--state` on the line, and from `RUNBOOK_STATE`.
    // (On an empty word, clap offers the command's options after the values.)
    for (line, env) in [
        (format!("runbook show --state {state} "), vec![]),
        ("runbook show ".to_string(), vec![("RUNBOOK_STATE", state)]),
        (format!("runbook resume --state={state} "), vec![]),
        (format!("runbook report --state {state} {}", &id[..4]), vec![]),
    ] {
        assert_eq!(values(offered(dir.path(), &line, &env)), std::slice::from_ref(&id), "{line}");
    }
    // The steps of that run, for the commands that name one.
    for line in [
        format!("runbook logs --state {state} {id} "),
        format!("runbook resume {id} --state {state} --rerun "),
    ] {
        assert_eq!(values(offered(dir.path(), &line, &[])), ["first", "second"], "{line}");
    }
    assert_eq!(offered(dir.path(), &format!("runbook logs --state {state} {id} s"), &[]), ["second"]);
}

#[test]
fn completing_run_ids_never_creates_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("none/state.db");
    let line = format!("runbook show --state {} ", state.display());
    assert!(values(offered(dir.path(), &line, &[])).is_empty());
    let url = "postgres://nobody@127.0.0.1:1/none";
    assert!(values(offered(dir.path(), &format!("runbook show --state {url} "), &[])).is_empty());
    assert!(!dir.path().join("none").exists(), "completion created a folder or a store");
    // The default store either: a HOME with nothing in it stays empty.
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    let home_str = home.to_str().expect("utf-8");
    assert!(
        values(offered(dir.path(), "runbook show ", &[("HOME", home_str), ("XDG_STATE_HOME", home_str)]))
            .is_empty()
    );
    assert_eq!(std::fs::read_dir(&home).expect("read").count(), 0, "completion wrote into the state home");
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        ok(&out, 0);
        assert!(out.stdout.contains("RUNBOOK_COMPLETE"), "{shell}: {}", out.stdout);
    }
    let out = run(&["completions", "tcsh"]);
    ok(&out, 2);
}

/// `zsh -n` / `fish -n` on the generated scripts, where the shell is installed.
#[test]
fn zsh_and_fish_scripts_parse() {
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        let which = Command::new("which").arg(shell).output().expect("which runs");
        if !which.status.success() {
            println!("skipped: `{shell}` is not installed on this machine, its script was not parsed");
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join(format!("runbook.{shell}"));
        let out = run(&["completions", shell]);
        ok(&out, 0);
        std::fs::write(&script, &out.stdout).expect("write");
        let parsed = Command::new(shell).arg(check).arg(&script).output().expect("the shell runs");
        assert!(parsed.status.success(), "{shell}: {}", String::from_utf8_lossy(&parsed.stderr));
    }
}

/// The subcommands `runbook --help` lists (what a man page must name).
fn subcommands() -> Vec<String> {
    let help = run(&["--help"]);
    ok(&help, 0);
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.stdout.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            if let Some(name) = line.split_whitespace().next()
                && line.starts_with("  ")
                && !line.starts_with("   ")
                && name != "help"
            {
                names.push(name.to_string());
            }
        }
    }
    assert!(names.len() > 20, "{names:?}");
    names
}

/// `groff -man -Tutf8` of a page, as plain text.
fn render(page: &Path) -> String {
    let out =
        Command::new("groff").args(["-man", "-Tutf8", "-P", "-cbou"]).arg(page).output().expect("groff runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "groff warned: {}", String::from_utf8_lossy(&out.stderr));
    // Justified lines: one space between words.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn man_page_renders_and_names_every_subcommand() {
    let out = run(&["man"]);
    ok(&out, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("runbook.1");
    std::fs::write(&page, &out.stdout).expect("write");
    let text = render(&page);
    assert!(
        text.contains("NAME")
            && text.contains("runbook - A declarative workflow engine")
            && text.contains("SUBCOMMANDS"),
        "{text}"
    );
    for name in subcommands() {
        assert!(text.contains(&format!("runbook-{name}(1)")), "the page does not name `{name}`:\n{text}");
    }
    assert!(!text.contains("__reaper") && !text.contains("__tie"), "{text}");
}

#[test]
fn man_out_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("man/man1");
    let out = run(&["man", "--out", out_dir.to_str().expect("utf-8")]);
    ok(&out, 0);
    let names = subcommands();
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("the folder was made")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> = names.iter().map(|n| format!("runbook-{n}.1")).collect();
    expected.push("runbook.1".into());
    // Nested subcommands get pages of their own (`runbook-state-migrate.1`).
    expected.extend(
        ["runbook-state-migrate.1", "runbook-state-check.1", "runbook-audit-verify.1"].map(String::from),
    );
    expected.sort();
    for page in &expected {
        assert!(written.contains(page), "{page} missing from {written:?}");
    }
    let run_page = render(&out_dir.join("runbook-run.1"));
    assert!(
        run_page.contains("runbook-run - Run a runbook") && run_page.contains("--params-file"),
        "{run_page}"
    );
    if Command::new("which").arg("man").output().is_ok_and(|o| o.status.success()) {
        let shown = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(out_dir.join("runbook-new.1"))
            .env("MANWIDTH", "80")
            .output()
            .expect("man runs");
        assert!(shown.status.success() && String::from_utf8_lossy(&shown.stdout).contains("--template"));
    }
    // Printed: what was written.
    assert!(out.stdout.contains("runbook.1") && out.stdout.contains("pages"), "{}", out.stdout);
}

const TEMPLATES: [&str; 4] = ["deploy", "rollback", "backup", "check"];

/// `runbook new` for each template: a runbook that `check` passes with no warning, and a
/// params file that `plan` takes.
#[test]
fn new_runbooks_check_clean_and_plan_with_their_params() {
    for template in TEMPLATES {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".git")).expect("git");
        let name = format!("my-{template}");
        let out = run_in(dir.path(), &["new", &name, "--template", template]);
        ok(&out, 0);
        let file = format!("{name}.toml");
        let params = format!("{name}.params.toml");
        let text = std::fs::read_to_string(dir.path().join(&file)).expect("runbook written");
        assert!(text.starts_with("#:schema "), "{template}: {text}");
        assert!(text.contains(&format!("name = \"{name}\"")), "{template}: {text}");
        assert!(std::fs::read_to_string(dir.path().join(&params)).expect("params written").contains('='));
        let check = run_in(dir.path(), &["check", &file, "--color", "never"]);
        ok(&check, 0);
        assert!(!check.stderr.contains("warning"), "{template}: {}", check.stderr);
        let plan = run_in(dir.path(), &["plan", &file, "--params-file", &params]);
        ok(&plan, 0);
        let json = run_in(dir.path(), &["plan", &file, "--params-file", &params, "--format", "json"]);
        ok(&json, 0);
        // The schema of `check --format json` of the written file: no diagnostics at all.
        let diags = run_in(dir.path(), &["check", &file, "--format", "json"]);
        assert_eq!(diags.stdout.trim(), "[]", "{template}");
    }
}

#[test]
fn new_prints_what_it_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("schemas")).expect("mkdir");
    std::fs::write(dir.path().join("schemas/runbook.schema.json"), "{}").expect("write");
    std::fs::create_dir(dir.path().join("runbooks")).expect("mkdir");
    let out = run_in(dir.path(), &["new", "restart-api", "--template", "deploy", "--dir", "runbooks"]);
    ok(&out, 0);
    insta::assert_snapshot!("new_output", out.stdout);
    let text = std::fs::read_to_string(dir.path().join("runbooks/restart-api.toml")).expect("written");
    // The directive points at the schema the folder's tree has.
    assert!(text.starts_with("#:schema ../schemas/runbook.schema.json\n"), "{text}");
    // Without a schema above it, the note says how to write one.
    let bare = tempfile::tempdir().expect("tempdir");
    let out = run_in(bare.path(), &["new", "restart-api"]);
    ok(&out, 0);
    let text = std::fs::read_to_string(bare.path().join("restart-api.toml")).expect("written");
    assert!(text.starts_with("#:schema runbook.schema.json\n"), "{text}");
    assert!(out.stdout.contains("runbook schema > runbook.schema.json"), "{}", out.stdout);
}

#[test]
fn new_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("db.toml"), "# mine\n").expect("write");
    let out = run_in_with_env(dir.path(), &["new", "db", "--color", "never"], &[]);
    ok(&out, 3);
    insta::assert_snapshot!("new_exists", out.stderr);
    assert_eq!(std::fs::read_to_string(dir.path().join("db.toml")).expect("read"), "# mine\n");
    assert!(!dir.path().join("db.params.toml").exists(), "nothing is written when one file exists");
    // The params file alone existing refuses too, and the runbook is not written.
    std::fs::write(dir.path().join("api.params.toml"), "x = 1\n").expect("write");
    let out = run_in(dir.path(), &["new", "api", "--color", "never"]);
    ok(&out, 3);
    assert!(out.stderr.contains("RB121") && out.stderr.contains("api.params.toml"), "{}", out.stderr);
    assert!(!dir.path().join("api.toml").exists());
}

#[test]
fn new_refuses_names_that_are_not_runbook_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_in(dir.path(), &["new", "../escape", "--color", "never"]);
    ok(&out, 3);
    insta::assert_snapshot!("new_bad_name", out.stderr);
    for name in
        ["a/b", "..", ".", "my runbook", "Deploy", "9lives", "x.toml", "ok\u{7}", "é", "/etc/passwd", ""]
    {
        let out = run_in(dir.path(), &["new", name, "--color", "never"]);
        ok(&out, 3);
        assert!(out.stderr.contains("RB120"), "{name:?}: {}", out.stderr);
    }
    // `--name`-like words are options to clap (exit 2), never files.
    ok(&run_in(dir.path(), &["new", "-x"]), 2);
    assert_eq!(std::fs::read_dir(dir.path()).expect("read").count(), 0, "something was written");
    assert!(!dir.path().parent().expect("parent").join("escape.toml").exists());
}

#[test]
fn new_writes_into_dir_and_refuses_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_in(dir.path(), &["new", "x", "--dir", "nope", "--color", "never"]);
    ok(&out, 5);
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
    std::fs::create_dir(dir.path().join("rb")).expect("mkdir");
    ok(&run_in(dir.path(), &["new", "x", "--dir", "rb", "--template", "backup"]), 0);
    assert!(dir.path().join("rb/x.toml").is_file() && dir.path().join("rb/x.params.toml").is_file());
}

/// The backup template runs for real: two runs back to back (within one second) make two
/// archives, verified, and `keep = 1` prunes the older one.
#[test]
fn new_backup_runs_and_prunes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect("git");
    ok(&run_in(dir.path(), &["new", "nightly", "--template", "backup"]), 0);
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::create_dir(&backups).expect("mkdir");
    std::fs::write(data.join("a.txt"), "hello\n").expect("write");
    let state = dir.path().join("state.db");
    let params = [
        "-p".to_string(),
        format!("source_dir={}", data.display()),
        "-p".to_string(),
        format!("backup_dir={}", backups.display()),
        "-p".to_string(),
        "keep=1".to_string(),
        "--state".to_string(),
        state.display().to_string(),
    ];
    let archives = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&backups)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let mut args = vec!["run", "nightly.toml"];
    args.extend(params.iter().map(String::as_str));
    ok(&run_in(dir.path(), &args), 0);
    let first = archives();
    assert!(
        first.len() == 1 && first[0].starts_with("nightly-") && first[0].ends_with(".tar.gz"),
        "{first:?}"
    );
    ok(&run_in(dir.path(), &args), 0);
    let second = archives();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "the second run's archive replaces the first");
}

/// The check, deploy and rollback templates run for real against an HTTP server on
/// 127.0.0.1 (their placeholders echo; their health step polls the server), with their
/// params file and the server's address.
#[test]
fn new_check_deploy_and_rollback_run_against_a_real_server() {
    let peer = crate::peers::HttpPeer::start();
    peer.set_health(crate::peers::Health::ok("v1.0.0"));
    let base_url = format!("base_url={}", peer.url(""));
    for template in ["check", "deploy", "rollback"] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".git")).expect("git");
        let name = format!("svc-{template}");
        ok(&run_in(dir.path(), &["new", &name, "--template", template]), 0);
        let state = dir.path().join("state.db");
        let (file, params) = (format!("{name}.toml"), format!("{name}.params.toml"));
        let out = run_in(
            dir.path(),
            &[
                "run",
                &file,
                "--params-file",
                &params,
                "-p",
                &base_url,
                "-p",
                "health_path=api/health",
                "--yes",
                "--state",
                state.to_str().expect("utf-8"),
            ],
        );
        ok(&out, 0);
        assert!(out.stdout.contains("healthy"), "{template}: {}", out.stdout);
    }
    assert!(peer.received().iter().filter(|r| r.path == "/api/health").count() >= 3);
}

/// `RUNBOOK_COMPLETE` left in an environment (a worker's, a CI job's) never turns a command
/// into a completion: only the protocol's own shapes (`runbook` alone, or `runbook -- WORDS`)
/// answer one.
#[test]
fn a_stray_completion_variable_does_not_hijack_a_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("two.toml"), TWO_STEPS).expect("write");
    let out = run_in_with_env(dir.path(), &["check", "two.toml"], &[("RUNBOOK_COMPLETE", "bash")]);
    ok(&out, 0);
    assert!(out.stderr.contains("ok: 1 runbook valid") && !out.stdout.contains("complete"), "{out:?}");
    let out = run_in_with_env(dir.path(), &["plan", "two.toml"], &[("RUNBOOK_COMPLETE", "zsh")]);
    ok(&out, 0);
    assert!(out.stdout.contains("Plan for two"), "{out:?}");
    // The protocol itself still answers.
    let out = run_in_with_env(dir.path(), &[], &[("RUNBOOK_COMPLETE", "bash")]);
    ok(&out, 0);
    assert!(out.stdout.contains("complete -o"), "{out:?}");
    let out = run_in_with_env(
        dir.path(),
        &["--", "runbook", "sch"],
        &[("RUNBOOK_COMPLETE", "bash"), ("_CLAP_COMPLETE_INDEX", "1"), ("_CLAP_IFS", "\n")],
    );
    ok(&out, 0);
    assert!(out.stdout.contains("schedules") && out.stdout.contains("schema"), "{out:?}");
}

/// `new` takes exactly the names that `check` takes in a runbook's `name` field: one rule,
/// over a corpus of names good and bad.
#[test]
fn new_and_check_agree_on_runbook_names() {
    let corpus = [
        "a",
        "db",
        "restart-api",
        "backup_daily",
        "x1",
        "a-",
        "a_",
        "z9-9_z",
        "rollback-l3",
        "A",
        "Deploy",
        "9lives",
        "-x1",
        "_a",
        "a.b",
        "a/b",
        "..",
        ".",
        "a b",
        " a",
        "a\t",
        "é",
        "ñame",
        "x.toml",
        "a\u{7}",
        "ab\u{202e}c",
        "a\u{301}",
        "ǅ",
        "a:b",
        "a*",
        "a?b",
        "~",
        "$x",
        "a'b",
        "a\"b",
        "a\\b",
        "",
    ];
    let mut accepted = 0;
    for name in corpus {
        let new_dir = tempfile::tempdir().expect("tempdir");
        // After `--`, even `-x1` reaches the name rule.
        let by_new = run_in(new_dir.path(), &["new", "--color", "never", "--", name]);
        let check_dir = tempfile::tempdir().expect("tempdir");
        let quoted = toml::Value::String(name.to_string()).to_string();
        std::fs::write(
            check_dir.path().join("r.toml"),
            format!("[runbook]\nname = {quoted}\n\n[steps.a]\nrun = \"true\"\n"),
        )
        .expect("write");
        let by_check = run_in(check_dir.path(), &["check", "r.toml", "--color", "never"]);
        assert_eq!(by_new.code == 0, by_check.code == 0, "{name:?}: new {by_new:?}, check {by_check:?}");
        if by_new.code == 0 {
            accepted += 1;
            assert!(new_dir.path().join(format!("{name}.toml")).is_file(), "{name:?}");
        } else {
            assert_eq!(by_new.code, 3, "{name:?}: {by_new:?}");
            assert!(by_new.stderr.contains("RB120"), "{name:?}: {}", by_new.stderr);
            assert_eq!(
                std::fs::read_dir(new_dir.path()).expect("read").count(),
                0,
                "{name:?}: something written"
            );
        }
    }
    assert_eq!(accepted, 9, "the good names of the corpus");
}

/// A submitted run that no worker has taken yet is offered too (`runbook cancel <TAB>`).
#[test]
fn bash_completes_queued_run_ids() {
    let (dir, state) = two_steps_folder();
    let state = state.as_str();
    let out = run_in(dir.path(), &["submit", "two.toml", "--state", state]);
    ok(&out, 0);
    let id = out
        .stdout
        .split_whitespace()
        .find(|w| w.len() > 20 && w.contains('T'))
        .expect("a run id")
        .to_string();
    assert_eq!(
        values(offered(dir.path(), &format!("runbook cancel --state {state} "), &[])),
        std::slice::from_ref(&id)
    );
}

/// Red team adv17b F3 (promise 4): a candidate is inserted into the line as shell text, so a
/// completer never offers one the shell would interpret: a step instance id holding
/// `$(touch PWNED)` and a file named `x$(touch PWNED2).toml` are not offered (nor names with
/// spaces, quotes, `;`, `|`, `&`, backquotes, `*`, `?`, control characters); completing and
/// then running the line never creates the canary. Failed before: both were offered
/// verbatim, and the line ran `touch`.
#[test]
fn completion_never_offers_a_candidate_the_shell_would_interpret() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect("git");
    let hostile_files = [
        "x$(touch PWNED2).toml",
        "x`touch PWNED3`.toml",
        "x y.toml",
        "x;touch PWNED4.toml",
        "x'q.toml",
        "x\"q.toml",
        "x|q.toml",
        "x&q.toml",
        "x*q.toml",
        "x?q.toml",
        "x\tq.toml",
        "x\u{1b}[2Jq.toml",
        "x\\q.toml",
        "x>q.toml",
        "x{a,b}.toml",
        "x!q.toml",
        "x#q.toml",
    ];
    for f in hostile_files {
        std::fs::write(dir.path().join(f), "").expect("write");
    }
    std::fs::write(dir.path().join("xok.toml"), "").expect("write");
    assert_eq!(offered(dir.path(), "runbook check x", &[]), ["xok.toml"]);
    assert_eq!(offered(dir.path(), "runbook plan xok.toml --params-file x", &[]), ["xok.toml"]);

    let runbook = "[runbook]\nname = \"f\"\n[params.hosts]\ntype = \"list\"\n[steps.drain]\nfor-each = \"hosts\"\nrun = \"echo {{ item }}\"\n";
    std::fs::write(dir.path().join("f.toml"), runbook).expect("write");
    let state = dir.path().join("state.db").display().to_string();
    let hosts = r#"hosts=["ok","$(touch PWNED)","a b","`touch PWNED5`"]"#;
    ok(&run_in(dir.path(), &["run", "f.toml", "--yes", "-p", hosts, "--state", &state]), 0);
    let runs = run_in(dir.path(), &["runs", "--format", "json", "--state", &state]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).expect("json");
    let id = runs[0]["run_id"].as_str().expect("a run id").to_string();
    let got = offered(dir.path(), &format!("runbook logs --state {state} {id} dr"), &[]);
    assert_eq!(got, ["drain[ok]"]);

    // What is offered, put on the line as bash does and run, runs no command of its own.
    let mut lines: Vec<String> = offered(dir.path(), "runbook check x", &[])
        .into_iter()
        .map(|c| format!("\"$RB\" check {c}"))
        .collect();
    lines.extend(got.iter().map(|c| format!("\"$RB\" logs --state '{state}' {id} {c}")));
    for line in &lines {
        let _ = bash(dir.path(), line, &[]);
    }
    for canary in ["PWNED", "PWNED2", "PWNED3", "PWNED4", "PWNED5"] {
        assert!(!dir.path().join(canary).exists(), "{canary} created by {lines:?}");
    }
}

/// Red team adv17b F9: `man --out DIR` never writes through a symbolic link planted in DIR
/// (a page's name linked to a file elsewhere, or to a missing file): the link itself is
/// replaced by the page, the file it pointed at is untouched. Failed before: the victim
/// file was overwritten with the page, and a dangling link created its target.
#[test]
fn man_out_replaces_links_and_never_writes_through_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("man1");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").expect("write");
    std::os::unix::fs::symlink(&victim, out_dir.join("runbook-run.1")).expect("link");
    std::os::unix::fs::symlink(dir.path().join("created.txt"), out_dir.join("runbook-plan.1")).expect("link");
    let out = run(&["man", "--out", out_dir.to_str().expect("utf-8")]);
    ok(&out, 0);
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "precious\n");
    assert!(!dir.path().join("created.txt").exists());
    for page in ["runbook-run.1", "runbook-plan.1"] {
        let meta = std::fs::symlink_metadata(out_dir.join(page)).expect("page");
        assert!(meta.file_type().is_file(), "{page} is still a link");
        assert!(render(&out_dir.join(page)).contains("SYNOPSIS"), "{page}");
    }
    // No temporary file is left behind.
    let left: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".1"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
