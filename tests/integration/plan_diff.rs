//! `runbook plan --diff OLD.json NEW.json` and `runbook plan FILE --against REV` (issue 15):
//! what changed between two versions of a procedure, through the real binary, in real git
//! repositories made in temporary folders.
//!
//! Real variations of a shipped runbook (rollback-l3 with `restore`'s compensation removed
//! and a command changed) in the three formats, the exit codes (0 equal, 1 different, 2
//! usage, 3 invalid input), garbage plan files, and a diff of two 5000-step plans whose
//! output stays proportional to what changed.

use std::path::Path;
use std::process::Command;

use crate::support::{Output, ok, root, run_in};

/// `git ARGS` in `dir`, with a fixed identity and dates (the commits are the same every time).
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ana")
        .env("GIT_AUTHOR_EMAIL", "ana@example.com")
        .env("GIT_COMMITTER_NAME", "Ana")
        .env("GIT_COMMITTER_EMAIL", "ana@example.com")
        .env("GIT_AUTHOR_DATE", "2026-12-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-12-01T12:00:00Z")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A git repository holding rollback-l3 (with its included runbook and its params file),
/// committed once.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let valid = root().join("tests/fixtures/valid");
    std::fs::create_dir(p.join("include")).expect("mkdir");
    let l3 = std::fs::read_to_string(valid.join("rollback-l3.toml"))
        .expect("read")
        .replace("#:schema ../../../schemas/runbook.schema.json\n", "");
    std::fs::write(p.join("rollback-l3.toml"), l3).expect("write");
    std::fs::copy(valid.join("include/rollback-l1.toml"), p.join("include/rollback-l1.toml")).expect("copy");
    std::fs::copy(root().join("tests/fixtures/params/rollback-l3.toml"), p.join("params.toml"))
        .expect("copy");
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "rollback-l3"]);
    dir
}

/// The working tree's rollback-l3 with `restore` given a compensation (so that the second
/// version can lose it), committed.
fn with_restore_compensation(p: &Path) {
    edit(p, |t| {
        t.replace(
            "env = { DATABASE_URL = \"{{ secrets.DATABASE_URL }}\" }\n\n[steps.health]",
            "env = { DATABASE_URL = \"{{ secrets.DATABASE_URL }}\" }\ncompensate = { run = \"pg_restore --dbname=\\\"$DATABASE_URL\\\" /backups/before-restore.dump\" }\n\n[steps.health]",
        )
    });
    git(p, &["commit", "-q", "-am", "restore can be undone"]);
}

fn edit(p: &Path, f: impl FnOnce(String) -> String) {
    let file = p.join("rollback-l3.toml");
    let before = std::fs::read_to_string(&file).expect("read");
    let after = f(before.clone());
    assert_ne!(before, after, "the edit changed nothing");
    std::fs::write(&file, after).expect("write");
}

/// The second version: `restore` lost its compensation, `backup`'s script changed, `health`
/// is retried less, and `push_stable` needs `restore`.
fn the_change(p: &Path) {
    edit(p, |t| {
        t.replace(
            "compensate = { run = \"pg_restore --dbname=\\\"$DATABASE_URL\\\" /backups/before-restore.dump\" }\n",
            "",
        )
        .replace("pg_dump --format=custom --file=\"$file\"", "pg_dump --format=custom --compress=9 --file=\"$file\"")
        .replace("retry = { attempts = 10, delay = \"3s\" }", "retry = { attempts = 2, delay = \"3s\" }")
        .replace("on-failure = \"compensate\"              # compensate", "needs = [\"restore\"]\non-failure = \"compensate\"              # compensate")
    });
}

fn against(p: &Path, rev: &str, format: &str) -> Output {
    run_in(
        p,
        &["plan", "rollback-l3.toml", "--params-file", "params.toml", "--against", rev, "--format", format],
    )
}

#[test]
fn a_runbook_against_a_revision_shows_what_changed_in_every_format() {
    let dir = repo();
    let p = dir.path();
    with_restore_compensation(p);
    the_change(p);
    let text = against(p, "HEAD", "text");
    ok(&text, 1);
    insta::assert_snapshot!("against_head_text", text.stdout);
    for needle in
        ["`restore` lost its compensation", "--compress=9", "needs added `restore`", "attempts: 10 → 2"]
    {
        assert!(text.stdout.contains(needle), "{needle}: {}", text.stdout);
    }
    // Risk changes come first.
    let risk = text.stdout.find("lost its compensation").expect("risk");
    let step = text.stdout.find("--compress=9").expect("step");
    assert!(risk < step, "{}", text.stdout);
    let md = against(p, "HEAD", "markdown");
    ok(&md, 1);
    insta::assert_snapshot!("against_head_markdown", md.stdout);
    parses_as_commonmark(&md.stdout);
    let json = against(p, "HEAD", "json");
    ok(&json, 1);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(value["diff_version"], 1);
    insta::assert_snapshot!("against_head_json", json.stdout);
}

/// Every table and code block of the markdown diff is real CommonMark: code blocks hold the
/// diff's lines, and no line of the diff leaks out of its block.
fn parses_as_commonmark(md: &str) {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut in_code = false;
    let mut code = String::new();
    let mut blocks = 0;
    for event in Parser::new(md) {
        match event {
            Event::Start(Tag::CodeBlock(_)) => in_code = true,
            Event::End(TagEnd::CodeBlock) => {
                in_code = false;
                blocks += 1;
            }
            Event::Text(t) if in_code => code.push_str(&t),
            _ => {}
        }
    }
    assert!(!in_code, "an unclosed code block:\n{md}");
    assert!(blocks > 0 && code.contains("+pg_dump --format=custom --compress=9"), "{code}\n{md}");
}

#[test]
fn the_same_version_is_no_change_and_exit_0() {
    let dir = repo();
    let out = against(dir.path(), "HEAD", "text");
    ok(&out, 0);
    insta::assert_snapshot!("no_change", out.stdout);
}

#[test]
fn two_pinned_plans_give_the_same_diff_as_the_revision() {
    let dir = repo();
    let p = dir.path();
    with_restore_compensation(p);
    let plan = |out: &str| {
        ok(&run_in(p, &["plan", "rollback-l3.toml", "--params-file", "params.toml", "-o", out]), 0);
    };
    plan("old.json");
    the_change(p);
    plan("new.json");
    for format in ["text", "markdown", "json"] {
        let pinned = run_in(p, &["plan", "--diff", "old.json", "new.json", "--format", format]);
        ok(&pinned, 1);
        let rev = against(p, "HEAD", format);
        assert_eq!(pinned.stdout, rev.stdout, "{format}");
    }
    // Swapped: what was added is removed.
    let back = run_in(p, &["plan", "--diff", "new.json", "old.json"]);
    ok(&back, 1);
    assert!(back.stdout.contains("`restore` gained a compensation"), "{}", back.stdout);
    // The same file twice.
    ok(&run_in(p, &["plan", "--diff", "old.json", "old.json"]), 0);
}

#[test]
fn a_runbook_absent_at_the_revision_is_all_added_with_a_note() {
    let dir = repo();
    let p = dir.path();
    std::fs::write(p.join("new.toml"), "[runbook]\nname = \"n\"\n\n[steps.hello]\nrun = \"echo hello\"\n")
        .expect("write");
    let out = run_in(p, &["plan", "new.toml", "--against", "HEAD"]);
    ok(&out, 1);
    insta::assert_snapshot!("absent_at_rev", out.stdout);
}

#[test]
fn a_step_renamed_with_the_same_command_is_a_rename() {
    let dir = repo();
    let p = dir.path();
    edit(p, |t| {
        t.replace("[steps.restore]", "[steps.restore_db]")
            .replace("needs = [\"restore\"]", "needs = [\"restore_db\"]")
    });
    let out = against(p, "HEAD", "text");
    ok(&out, 1);
    assert!(out.stdout.contains("renamed `restore` → `restore_db`"), "{}", out.stdout);
    assert!(!out.stdout.contains("  - removed `restore`"), "{}", out.stdout);
}

#[test]
fn usage_errors_exit_2() {
    let dir = repo();
    let p = dir.path();
    for args in [
        vec!["plan", "--diff", "a.json", "b.json", "--against", "HEAD"],
        vec!["plan", "rollback-l3.toml", "--diff", "a.json", "b.json"],
        vec!["plan", "--against", "HEAD"],
        vec!["plan", "--diff", "a.json"],
        vec!["plan", "rollback-l3.toml", "--against", "--output=/tmp/x"],
        vec!["plan", "rollback-l3.toml", "--against", "HEAD", "--format", "dot"],
        vec!["plan", "rollback-l3.toml", "--against", "HEAD", "--format", "html"],
    ] {
        let out = run_in(p, &args);
        ok(&out, 2);
    }
}

#[test]
fn invalid_input_exits_3_with_a_clear_error() {
    let dir = repo();
    let p = dir.path();
    ok(&run_in(p, &["plan", "rollback-l3.toml", "--params-file", "params.toml", "-o", "good.json"]), 0);
    let good = std::fs::read_to_string(p.join("good.json")).expect("read");
    std::fs::write(p.join("truncated.json"), &good[..good.len() / 2]).expect("write");
    std::fs::write(p.join("v99.json"), good.replace("\"format_version\": 2", "\"format_version\": 99"))
        .expect("write");
    std::fs::write(p.join("nested.json"), "[".repeat(4 * 1024 * 1024)).expect("write");
    std::fs::write(p.join("not-a-plan.json"), "{\"hello\": 1}").expect("write");
    // Beyond the 64 MiB a plan file may hold (sparse: nothing is written).
    let big = std::fs::File::create(p.join("huge.json")).expect("create");
    big.set_len(65 * 1024 * 1024).expect("grow");
    let mut twin: serde_json::Value = serde_json::from_str(&good).expect("json");
    let first = twin["steps"][0].clone();
    twin["steps"].as_array_mut().expect("steps").push(first);
    std::fs::write(p.join("twin.json"), twin.to_string()).expect("write");
    let mut all = String::new();
    for bad in [
        "truncated.json",
        "v99.json",
        "nested.json",
        "huge.json",
        "not-a-plan.json",
        "twin.json",
        "missing.json",
    ] {
        let out = run_in(p, &["plan", "--diff", "good.json", bad]);
        ok(&out, 3);
        assert!(out.stderr.contains(bad), "{bad}: {}", out.stderr);
        all.push_str(&format!("$ runbook plan --diff good.json {bad}\n{}\n", out.stderr));
    }
    let unknown = against(p, "no-such-rev", "text");
    ok(&unknown, 3);
    all.push_str(&format!("$ runbook plan rollback-l3.toml --against no-such-rev\n{}\n", unknown.stderr));
    insta::assert_snapshot!("invalid_input", all);
}

/// 5000 steps each: one changed step gives a diff of a few lines, and a plan whose every
/// step changed gives a diff linear in the plan's size, never quadratic.
#[test]
fn two_plans_of_5000_steps_give_a_diff_proportional_to_what_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let big = |tag: &str, every: bool| {
        let mut t = String::from("[runbook]\nname = \"big\"\n");
        for i in 0..5000 {
            let word = if every || i == 2500 { tag } else { "same" };
            t.push_str(&format!("\n[steps.s{i}]\nrun = \"echo {word} {i}\"\n"));
        }
        t
    };
    let plan = |name: &str, text: String| {
        std::fs::write(p.join("r.toml"), text).expect("write");
        ok(&run_in(p, &["plan", "r.toml", "-o", name]), 0);
        std::fs::metadata(p.join(name)).expect("plan").len()
    };
    plan("a.json", big("old", false));
    let size = plan("b.json", big("new", false));
    let one = run_in(p, &["plan", "--diff", "a.json", "b.json"]);
    ok(&one, 1);
    assert!(one.stdout.len() < 2_000, "{}", one.stdout);
    assert!(one.stdout.contains("echo new 2500"), "{}", one.stdout);
    plan("c.json", big("other", true));
    let all = run_in(p, &["plan", "--diff", "a.json", "c.json"]);
    ok(&all, 1);
    assert!((all.stdout.len() as u64) < 2 * size, "{} bytes against a plan of {size}", all.stdout.len());
    assert_eq!(all.stdout.matches("+echo other ").count(), 5000);
}

/// The plan document of every shipped runbook (runbooks/ with their staging parameters,
/// tests/fixtures/valid/ with theirs), as the binary prints it.
fn shipped_plans() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut add = |file: std::path::PathBuf, params: std::path::PathBuf| {
        let rel = crate::support::relative(&file);
        let mut args = vec!["plan".to_string(), rel.clone(), "--format".into(), "json".into()];
        if params.exists() {
            args.extend(["--params-file".into(), crate::support::relative(&params)]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let plan = crate::support::run(&args);
        ok(&plan, 0);
        out.push((rel, serde_json::from_str(&plan.stdout).expect("a plan document")));
    };
    for f in crate::support::files(&root().join("runbooks"), ".toml")
        .into_iter()
        .filter(|f| !f.starts_with(root().join("runbooks/params")))
    {
        let stem = f.file_stem().expect("stem").to_string_lossy().into_owned();
        add(f.clone(), root().join(format!("runbooks/params/{stem}.staging.toml")));
    }
    for f in std::fs::read_dir(root().join("tests/fixtures/valid")).expect("dir").flatten().map(|e| e.path())
    {
        if f.extension().is_some_and(|e| e == "toml") {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            add(f.clone(), root().join(format!("tests/fixtures/params/{name}")));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every place in a JSON value (`/steps/3/retry/attempts`), the value first.
fn places(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    out.push(at.to_string());
    match v {
        serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| places(v, &format!("{at}/{k}"), out)),
        serde_json::Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, v)| places(v, &format!("{at}/{i}"), out))
        }
        _ => {}
    }
}

/// Another value of the same shape (a leaf changed; a list one item longer; an object one
/// key more), so the document stays readable where it can.
fn mutated(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Null => Value::String("x".into()),
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => match n.as_u64() {
            Some(n) => Value::from(n + 1),
            None => Value::from(n.as_f64().unwrap_or(0.0) + 1.5),
        },
        Value::String(s) => Value::String(format!("{s}x")),
        Value::Array(a) => {
            let mut a = a.clone();
            a.push(a.last().cloned().unwrap_or(Value::String("x".into())));
            Value::Array(a)
        }
        Value::Object(o) => {
            let mut o = o.clone();
            o.insert("zz_added".into(), Value::String("x".into()));
            Value::Object(o)
        }
    }
}

/// Promise 2, as a class: no change to a field of the plan document is invisible in the diff.
/// Every place of every shipped runbook's plan is changed in turn (a leaf changed, a list
/// made longer, a key added, a value removed); the diff must refuse the document (a value
/// the engine would not read) or name the change: the step it is in, and the field. Only the
/// top-level fields the diff lists as ignored (`IGNORED_TOP`, each with its reason) may change
/// unseen.
#[test]
fn no_change_to_any_field_of_any_shipped_plan_is_invisible_in_the_diff() {
    use runbook_core::render::diff::{IGNORED_TOP, StepChange, diff};
    let mut checked = 0;
    let mut refused = 0;
    let mut silent = Vec::new();
    for (name, doc) in shipped_plans() {
        let mut all = Vec::new();
        places(&doc, "", &mut all);
        for place in all.iter().filter(|p| !p.is_empty()) {
            let top = place.split('/').nth(1).unwrap_or("");
            let left_out = |f: &str| f != "steps" && f != "finally";
            // An included runbook's plan leaves out what a plan does (its files' digests): its
            // file as written is compared by `--against` (`diff::procedure`).
            let ignored = IGNORED_TOP.iter().any(|(f, _)| {
                left_out(f) && (*f == top || place.contains(&format!("/command/runbook/plan/{f}")))
            });
            let original = doc.pointer(place).expect("a place");
            let mut variants = vec![mutated(original)];
            // Removed (a key) or emptied (an item).
            variants.push(serde_json::Value::Null);
            for variant in variants {
                let mut changed = doc.clone();
                *changed.pointer_mut(place).expect("a place") = variant;
                // `null`, `[]` and `{}` say "nothing" for the plan's own fields (the diff's
                // rule; below them it is exact, tested in the core): skipped here.
                let nothing = |v: &serde_json::Value| {
                    v.is_null()
                        || v.as_array().is_some_and(Vec::is_empty)
                        || v.as_object().is_some_and(serde_json::Map::is_empty)
                };
                if changed == doc || (nothing(original) && nothing(changed.pointer(place).expect("a place")))
                {
                    continue;
                }
                checked += 1;
                let Ok(d) = diff(&doc, &changed) else {
                    refused += 1;
                    continue;
                };
                if ignored {
                    continue;
                }
                let mut parts = place.split('/').skip(1);
                let section = parts.next().unwrap_or("");
                let index: Option<usize> = parts.clone().next().and_then(|i| i.parse().ok());
                let seen = if let Some(index) = index.filter(|_| section == "steps" || section == "finally") {
                    parts.next();
                    let id = doc[section][index]["id"].as_str().unwrap_or("").to_string();
                    let field = parts.next().unwrap_or("");
                    d.steps.iter().any(|s| match s {
                        StepChange::Changed { step, changes } => {
                            *step == id
                                && changes.iter().any(|c| field.is_empty() || c.field.starts_with(field))
                        }
                        StepChange::Renamed { from, to, .. } => *from == id || to.starts_with(&id),
                        StepChange::Added { step, .. } | StepChange::Removed { step, .. } => {
                            step.starts_with(&id)
                        }
                    }) || (field.is_empty() && !d.is_empty())
                } else if section == "steps" || section == "finally" {
                    // The whole list.
                    !d.is_empty()
                } else {
                    d.fields.iter().any(|c| c.field.starts_with(section))
                };
                if !seen {
                    silent.push(format!("{name}: {place}"));
                }
            }
        }
    }
    assert!(silent.is_empty(), "{} change(s) the diff does not name:\n{}", silent.len(), silent.join("\n"));
    // The corpus is what it claims: thousands of places over every shipped runbook.
    assert!(checked > 5_000, "{checked}");
    eprintln!("{checked} changes checked, {refused} refused as unreadable documents");
}

/// The team's own rollback-l3 (runbooks/), planned with its staging parameters, then changed
/// as a pull request might: `push_stable` loses its compensation and `align_branch`'s command
/// changes. The diff of the two pinned plans, as text and as the PR comment.
#[test]
fn a_variation_of_the_shipped_rollback_l3_in_text_and_markdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let rb = std::fs::read_to_string(root().join("runbooks/rollback-l3.toml")).expect("read");
    std::fs::create_dir(p.join("params")).expect("mkdir");
    std::fs::copy(root().join("runbooks/params/rollback-l3.staging.toml"), p.join("params/staging.toml"))
        .expect("copy");
    let plan = |text: &str, out: &str| {
        std::fs::write(p.join("rollback-l3.toml"), text).expect("write");
        ok(&run_in(p, &["plan", "rollback-l3.toml", "--params-file", "params/staging.toml", "-o", out]), 0);
    };
    plan(&rb, "old.json");
    let push_undo = "compensate = { cmd = [\"git\", \"-C\", \"{{ params.repo_dir }}\", \"push\", \"--force-with-lease={{ params.branch }}:{{ steps.checkout_stable.outputs.stable_commit }}\"";
    let start = rb.find(push_undo).expect("push_stable's compensation");
    let end = start + rb[start..].find('\n').expect("its line");
    let changed = format!("{}{}", &rb[..start], &rb[end + 1..]).replace(
        "cmd = [\"git\", \"-C\", \"{{ params.repo_dir }}\", \"checkout\", \"--quiet\", \"-B\", \"{{ params.branch }}\"]",
        "cmd = [\"git\", \"-C\", \"{{ params.repo_dir }}\", \"checkout\", \"--quiet\", \"--no-track\", \"-B\", \"{{ params.branch }}\"]",
    );
    assert_ne!(changed.len() + push_undo.len(), rb.len(), "both edits applied");
    plan(&changed, "new.json");
    let text = run_in(p, &["plan", "--diff", "old.json", "new.json"]);
    ok(&text, 1);
    assert!(text.stdout.contains("`push_stable` lost its compensation"), "{}", text.stdout);
    assert!(text.stdout.contains("--no-track"), "{}", text.stdout);
    insta::assert_snapshot!("shipped_rollback_l3_text", text.stdout);
    let md = run_in(p, &["plan", "--diff", "old.json", "new.json", "--format", "markdown"]);
    ok(&md, 1);
    insta::assert_snapshot!("shipped_rollback_l3_markdown", md.stdout);
}

/// The old version is the whole procedure at REV: its included runbook and its params file
/// are read at REV too, not from the working tree.
#[test]
fn includes_and_the_params_file_are_read_at_the_revision() {
    let dir = repo();
    let p = dir.path();
    let l1 = p.join("include/rollback-l1.toml");
    let text = std::fs::read_to_string(&l1).expect("read");
    std::fs::write(
        &l1,
        text.replace(
            "\"git\", \"revert\", \"--no-edit\"",
            "\"git\", \"revert\", \"--no-edit\", \"--signoff\"",
        ),
    )
    .expect("write");
    let params = std::fs::read_to_string(p.join("params.toml")).expect("read");
    std::fs::write(
        p.join("params.toml"),
        params.replace("https://staging.inmova.app", "https://staging2.inmova.app"),
    )
    .expect("write");
    let out = against(p, "HEAD", "text");
    ok(&out, 1);
    assert!(out.stdout.contains("--signoff"), "the included runbook at HEAD: {}", out.stdout);
    assert!(
        out.stdout
            .contains("params.base_url: \"https://staging.inmova.app\" → \"https://staging2.inmova.app\""),
        "the params file at HEAD: {}",
        out.stdout
    );
    // Committed, the same files give no change.
    git(p, &["commit", "-q", "-am", "signoff, staging2"]);
    ok(&against(p, "HEAD", "text"), 0);
    // The include's folder renamed since: the old version still reads it as it was.
    std::fs::rename(p.join("include"), p.join("inc")).expect("rename");
    edit(p, |t| t.replace("include/rollback-l1.toml", "inc/rollback-l1.toml"));
    let moved = against(p, "HEAD", "text");
    ok(&moved, 1);
    assert!(
        moved
            .stdout
            .contains("command.runbook.file: \"include/rollback-l1.toml\" → \"inc/rollback-l1.toml\""),
        "{}",
        moved.stdout
    );
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "inc"]);
    // A runbook in a subfolder, named from elsewhere, by an absolute path.
    let abs = p.join("rollback-l3.toml").display().to_string();
    let params = p.join("params.toml").display().to_string();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    ok(&run_in(elsewhere.path(), &["plan", &abs, "--params-file", &params, "--against", "HEAD~1"]), 1);
}

/// Promise 3: a secret's value, present in the environment, never reaches the diff.
#[test]
fn secret_values_never_reach_the_diff() {
    let dir = repo();
    let p = dir.path();
    with_restore_compensation(p);
    the_change(p);
    let env = [
        ("DATABASE_URL", "postgres://app:hunter2-db@db/prod"),
        ("CRON_SECRET", "hunter2-cron"),
        ("SLACK_WEBHOOK", "https://hooks.example/hunter2-slack"),
    ];
    for format in ["text", "markdown", "json"] {
        let out = crate::support::run_in_with_env(
            p,
            &[
                "plan",
                "rollback-l3.toml",
                "--params-file",
                "params.toml",
                "--against",
                "HEAD",
                "--format",
                format,
            ],
            &env,
        );
        ok(&out, 1);
        assert!(
            !out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"),
            "{format}: {}",
            out.stdout
        );
        assert!(out.stdout.contains("DATABASE_URL"), "{format}: the secret by name: {}", out.stdout);
    }
}

/// An old version that is not a valid runbook cannot be planned: its problems are shown, and
/// the command says which version they are in (exit 3, nothing compared).
#[test]
fn an_invalid_old_version_is_named_as_such() {
    let dir = repo();
    let p = dir.path();
    edit(p, |t| {
        t.replace(
            "[steps.restore]\nneeds = [\"checkout_stable\"]",
            "[steps.restore]\nneeds = [\"checkout_stabel\"]",
        )
    });
    git(p, &["commit", "-q", "-am", "a typo"]);
    edit(p, |t| t.replace("checkout_stabel", "checkout_stable"));
    let out = against(p, "HEAD", "text");
    ok(&out, 3);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("checkout_stabel"), "{}", out.stderr);
    assert!(
        out.stderr.contains("error: `rollback-l3.toml` as it was at `HEAD`: it is not a valid runbook (the problems above); nothing to compare"),
        "{}",
        out.stderr
    );
}

/// A pull request that commits the files of a bare git repository into the runbooks' folder
/// (with a replace ref swapping the base commit for one that holds the new runbook) cannot
/// make `plan --against` read the "old" version from it: the reproduction of red team adv15c
/// F8 (`tests/integration/scripts/adv15c_f8_planted_repository.sh`) must not find its break.
/// Failed before: `plan --against BASE` said "no change" (exit 0) for `rm -rf /srv/app/cache`
/// turned into `rm -rf /srv/app`, and the review comment said "No runbook's plan changed.".
#[test]
fn a_repository_planted_in_the_runbooks_folder_is_not_read() {
    let script = crate::support::root().join("tests/integration/scripts/adv15c_f8_planted_repository.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(crate::support::bin())
        .env("NO_COLOR", "1")
        .output()
        .expect("bash runs the reproduction");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("BREAK"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("plan --against exit 3"), "the planted repository is refused, loudly: {stdout}");
}
