//! The plan diff never says "no change" when what runs could differ (promise 2), through the
//! real binary in real git repositories (fxdiff: red team adv15b findings 1, 2, 3, 7, 8, 12,
//! 13, 14). The rules: ARCHITECTURE.md, "The plan diff is faithful" and "The procedure is
//! compared too".

use crate::plan_diff::git;
use crate::support::{HUNG, Output, run_in, run_limited};
use std::path::Path;

/// A git repository holding `rb.toml` = `old`, committed, with `new` in the working tree.
fn changed(old: &str, new: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rb.toml"), old).expect("write");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "base"]);
    std::fs::write(dir.path().join("rb.toml"), new).expect("write");
    dir
}

fn against(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["plan", "rb.toml", "--against", "HEAD"];
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

/// Every format says the change (exit 1) and each output holds every one of `shown`.
fn says_changed(old: &str, new: &str, shown: &[&str]) {
    let dir = changed(old, new);
    for format in ["text", "markdown", "json"] {
        let out = against(dir.path(), &["--format", format]);
        assert_eq!(out.code, 1, "{format}: a change is a change:\n{}{}", out.stdout, out.stderr);
        for s in shown {
            assert!(out.stdout.contains(s), "{format}: {s:?} is not shown:\n{}", out.stdout);
        }
    }
}

// ----- F1: what runs for other parameter values ---------------------------------------------

const ENV: &str = "[runbook]\nname = \"t\"\n\n[params.environment]\ntype = \"string\"\nenum = [\"staging\", \"production\"]\ndefault = \"staging\"\n\n[steps.deploy]\nrun = \"deploy --env {{ params.environment }}\"\n";

/// adv15b F1: a template change that only matters for other parameter values.
#[test]
fn a_template_change_for_other_parameter_values_is_a_change() {
    let new = ENV.replace(
        "run = \"deploy --env {{ params.environment }}\"",
        "run = \"{% if params.environment == 'production' %}drop-all-tables --yes{% else %}deploy --env {{ params.environment }}{% endif %}\"",
    );
    says_changed(ENV, &new, &["drop-all-tables --yes", "deploy"]);
    let dir = changed(ENV, &new);
    let out = against(dir.path(), &[]);
    assert!(out.stdout.contains("the plans for these parameters are the same"), "{}", out.stdout);
}

/// The class: any part of the procedure whose template changes without changing the plan for
/// the given values (a step's command, its compensation, its condition, its env, a
/// precondition, a confirmation, a notification body) is a change.
#[test]
fn every_template_the_given_values_do_not_show_is_a_change() {
    let base = "[runbook]\nname = \"t\"\n\n[params.env]\ntype = \"string\"\ndefault = \"staging\"\n\n[preconditions.ready]\nrun = \"test {{ params.env }}\"\n\n[steps.a]\nrun = \"echo {{ params.env }}\"\ncompensate = { run = \"undo {{ params.env }}\" }\nenv = { E = \"{{ params.env }}\" }\nconfirm = \"Go {{ params.env }}?\"\n\n[finally.f]\nrun = \"bye {{ params.env }}\"\n";
    let other = "{% if params.env == 'production' %}evil{% else %}{{ params.env }}{% endif %}";
    for (what, from) in [
        ("precondition", "test {{ params.env }}"),
        ("command", "echo {{ params.env }}"),
        ("compensation", "undo {{ params.env }}"),
        ("env", "\"{{ params.env }}\" }\nconfirm"),
        ("confirmation", "Go {{ params.env }}?"),
        ("finally", "bye {{ params.env }}"),
    ] {
        let to = from.replace("{{ params.env }}", other);
        let new = base.replacen(from, &to, 1);
        assert_ne!(new, base, "{what}");
        let dir = changed(base, &new);
        let out = against(dir.path(), &[]);
        assert_eq!(out.code, 1, "{what}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("evil"), "{what}: the template is not shown:\n{}", out.stdout);
    }
}

/// Comments, blank lines, key order and the quoting of a TOML value change no procedure.
#[test]
fn a_change_of_layout_alone_is_no_change() {
    let new = ENV.replace("[runbook]\n", "# the deploy runbook\n[runbook]\n\n").replace(
        "type = \"string\"\nenum = [\"staging\", \"production\"]",
        "enum = [ \"staging\",\n  \"production\" ]  # both\ntype = 'string'",
    );
    let dir = changed(ENV, &new);
    let out = against(dir.path(), &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "Plan diff of `t`: no change\n");
}

/// `--diff` compares plans only: equal plans of runbook files whose digests differ are said
/// (exit 1), with the way to see the template change.
#[test]
fn equal_plans_of_different_files_are_said() {
    let new = ENV.replace(
        "run = \"deploy --env {{ params.environment }}\"",
        "run = \"{% if params.environment == 'production' %}drop-all-tables --yes{% else %}deploy --env {{ params.environment }}{% endif %}\"",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("rb.toml"), ENV).expect("write");
    assert_eq!(run_in(p, &["plan", "rb.toml", "-o", "old.json"]).code, 0);
    std::fs::write(p.join("rb.toml"), &new).expect("write");
    assert_eq!(run_in(p, &["plan", "rb.toml", "-o", "new.json"]).code, 0);
    for format in ["text", "markdown", "json"] {
        let out = run_in(p, &["plan", "--diff", "old.json", "new.json", "--format", format]);
        assert_eq!(out.code, 1, "{format}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("--against"), "{format}: {}", out.stdout);
    }
    let same = run_in(p, &["plan", "--diff", "new.json", "new.json"]);
    assert_eq!(same.code, 0, "{}", same.stdout);
}

// ----- F2, F3: a faithful structural walk ---------------------------------------------------

const POST: &str = "[runbook]\nname = \"t\"\n\n[steps.purge_cache]\nhttp = { method = \"POST\", url = \"http://127.0.0.1:9/purge\" }\n";

/// adv15b F2: `{}` added as a body sends a body.
#[test]
fn an_empty_json_body_added_to_a_request_is_a_change() {
    says_changed(POST, &POST.replace("/purge\" }", "/purge\", json = {} }"), &["command.http.body"]);
    says_changed(POST, &POST.replace("/purge\" }", "/purge\", json = [] }"), &["command.http.body"]);
}

/// adv15b F2: an empty list removed from a body, at any depth.
#[test]
fn an_empty_list_removed_from_a_json_body_is_a_change() {
    let old = "[runbook]\nname = \"t\"\n\n[steps.terminate]\nhttp = { method = \"POST\", url = \"http://127.0.0.1:9/t\", json = { ids = [\"i-123\"], except = [], deep = { a = {} } } }\n";
    says_changed(old, &old.replace(", except = []", ""), &["except"]);
    says_changed(old, &old.replace("a = {}", "a = []"), &["deep"]);
    says_changed(old, &old.replace("deep = { a = {} }", "deep = {}"), &["deep"]);
}

/// adv15b F3: items sharing their `path` are not matched by it.
#[test]
fn a_json_patch_guard_removed_is_a_change() {
    let old = "[runbook]\nname = \"scale\"\n\n[steps.scale_up]\nhttp = { method = \"PATCH\", url = \"http://127.0.0.1:9/d\", json = [\n  { op = \"test\", path = \"/spec/replicas\", value = 3 },\n  { op = \"replace\", path = \"/spec/replicas\", value = 5 },\n] }\n";
    let new = old.replace(
        "{ op = \"test\", path = \"/spec/replicas\", value = 3 }",
        "{ op = \"replace\", path = \"/spec/replicas\", value = 5 }",
    );
    says_changed(old, &new, &["test"]);
}

// ----- F7: bounded -------------------------------------------------------------------------

/// adv15b F7: two scripts of 20,000 different lines: the diff ends (a generous hang limit,
/// no speed asserted) and its output is proportional to the two texts.
#[test]
fn a_diff_of_two_long_scripts_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("a.toml"), "[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"echo a\"\n")
        .expect("write");
    assert_eq!(run_in(p, &["plan", "a.toml", "-o", "base.json"]).code, 0);
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("base.json")).expect("read")).expect("json");
    let mut size = 0;
    for (name, tag) in [("old.json", "x"), ("new.json", "y")] {
        let mut d = base.clone();
        let script: String = (0..20_000).map(|i| format!("echo {tag}{i}\nkeep {}\n", i % 7)).collect();
        size += script.len();
        d["steps"][0]["command"]["run"]["script"] = serde_json::Value::from(script);
        std::fs::write(p.join(name), d.to_string()).expect("write");
    }
    let out =
        run_limited(p, &["plan", "--diff", "old.json", "new.json"], &[], std::time::Duration::from_secs(300));
    assert_ne!(out.code, HUNG, "the diff never ended");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("-echo x19999\n") && out.stdout.contains("+echo y19999\n"));
    assert!(out.stdout.len() < 2 * size, "{} bytes for {size}", out.stdout.len());
}

// ----- F8: sections ------------------------------------------------------------------------

/// adv15b F8: a step moved out of `finally` (and a rename across sections) says so.
#[test]
fn a_step_moved_out_of_finally_is_named_as_moved() {
    let old = "[runbook]\nname = \"t\"\n\n[steps.deploy]\nrun = \"deploy\"\n\n[finally.wipe_staging]\nrun = \"rm -rf /srv/staging/*\"\n";
    let new = "[runbook]\nname = \"t\"\n\n[steps.wipe_staging]\nrun = \"rm -rf /srv/staging/*\"\n\n[steps.deploy]\nrun = \"deploy\"\nneeds = [\"wipe_staging\"]\n";
    let dir = changed(old, new);
    let json = against(dir.path(), &["--format", "json"]);
    assert_eq!(json.code, 1);
    assert!(json.stdout.contains("\"field\": \"section\""), "{}", json.stdout);
    let text = against(dir.path(), &[]);
    assert!(text.stdout.contains("section: \"finally\" → \"steps\""), "{}", text.stdout);
    assert!(
        text.stdout.contains("`wipe_staging` moved from the `finally` steps to the main steps"),
        "{}",
        text.stdout
    );
    let back = changed(new, old);
    let text = against(back.path(), &[]);
    assert!(
        text.stdout.contains("`wipe_staging` moved from the main steps to the `finally` steps"),
        "{}",
        text.stdout
    );
    let renamed = changed(old, &new.replace("wipe_staging", "wipe"));
    let text = against(renamed.path(), &[]);
    assert!(text.stdout.contains("renamed `wipe_staging` → `wipe`"), "{}", text.stdout);
    assert!(text.stdout.contains("section: \"finally\" → \"steps\""), "{}", text.stdout);
}

// ----- F12: look-alikes ----------------------------------------------------------------------

/// adv15b F12: a no-break space, other Unicode spaces and a Cyrillic look-alike are marked.
#[test]
fn characters_that_read_the_same_are_marked() {
    let old = "[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"rm -rf /srv/app/cache\"\n";
    for (c, name) in [('\u{a0}', "U+00A0"), ('\u{2009}', "U+2009"), ('\u{3000}', "U+3000")] {
        let dir = changed(old, &old.replace("-rf /srv", &format!("-rf{c}/srv")));
        let out = against(dir.path(), &[]);
        assert_eq!(out.code, 1);
        assert!(out.stdout.contains(name), "{name}: {}", out.stdout);
        let md = against(dir.path(), &["--format", "markdown"]);
        assert!(md.stdout.contains(name), "{name}: {}", md.stdout);
    }
    let appr =
        "[runbook]\nname = \"t\"\n\n[steps.a]\napproval = { prompt = \"ok?\", approvers = [\"ana\"] }\n";
    let dir = changed(appr, &appr.replace("\"ana\"", "\"\u{430}na\""));
    for format in ["text", "markdown"] {
        let out = against(dir.path(), &["--format", format]);
        assert_eq!(out.code, 1);
        assert!(out.stdout.contains("U+0430"), "{format}: {}", out.stdout);
    }
}

// ----- F13, F14: an added step as it is --------------------------------------------------------

/// adv15b F13: an added step's multi-line confirmation, description and compensation script.
#[test]
fn an_added_steps_multi_line_fields_are_shown() {
    let old = "[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"echo a\"\n";
    let new = format!(
        "{old}\n[steps.drop_db]\nrun = \"dropdb prod\"\nconfirm = \"\"\"\nThis drops the PRODUCTION database.\nType yes only if the backup finished.\"\"\"\ncompensate = {{ run = \"\"\"\npg_restore one\npg_restore two\n\"\"\" }}\n"
    );
    let dir = changed(old, &new);
    for format in ["text", "markdown"] {
        let out = against(dir.path(), &["--format", format]);
        assert_eq!(out.code, 1);
        assert!(!out.stdout.contains("(none)"), "{format}: {}", out.stdout);
        assert!(out.stdout.contains("This drops the PRODUCTION database.\n"), "{format}: {}", out.stdout);
        assert!(out.stdout.contains("pg_restore one\n"), "{format}: {}", out.stdout);
    }
}

/// adv15b F14: in the text view an added step's script lines are fenced by a marker that no
/// field line has.
#[test]
fn an_added_steps_script_cannot_pass_for_its_fields() {
    let old = "[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"echo a\"\n";
    let new = format!(
        "{old}\n[steps.drop_db]\nrun = \"\"\"\ndropdb prod\nidempotent: true\ntimeout: \"1h\"\"\"\"\n"
    );
    let dir = changed(old, &new);
    let out = against(dir.path(), &[]);
    assert_eq!(out.code, 1);
    let script: Vec<&str> = out.stdout.lines().filter(|l| l.contains("idempotent: true")).collect();
    assert!(!script.is_empty() && script.iter().all(|l| l.starts_with("      | ")), "{}", out.stdout);
    assert!(out.stdout.contains("      | dropdb prod\n"), "{}", out.stdout);
}

/// The class reaches included runbooks: a template change in one, that the given values do
/// not show, is a change named with its file.
#[test]
fn a_template_change_in_an_included_runbook_is_a_change() {
    let top = "[runbook]\nname = \"top\"\n\n[params.env]\ntype = \"string\"\ndefault = \"staging\"\n\n[steps.inc]\nrunbook = { file = \"inc/child.toml\", params = { env = \"{{ params.env }}\" } }\n";
    let child = "[runbook]\nname = \"child\"\n\n[params.env]\ntype = \"string\"\n\n[steps.go]\nrun = \"go {{ params.env }}\"\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::create_dir(p.join("inc")).expect("mkdir");
    std::fs::write(p.join("rb.toml"), top).expect("write");
    std::fs::write(p.join("inc/child.toml"), child).expect("write");
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "base"]);
    let same = against(p, &[]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    std::fs::write(p.join("inc/child.toml"), format!("# a comment\n{child}")).expect("write");
    assert_eq!(against(p, &[]).code, 0, "a comment is no change");
    let evil = child.replace(
        "go {{ params.env }}",
        "{% if params.env == 'production' %}evil{% else %}go {{ params.env }}{% endif %}",
    );
    std::fs::write(p.join("inc/child.toml"), evil).expect("write");
    let out = against(p, &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("child.toml") && out.stdout.contains("evil"), "{}", out.stdout);
}

/// A step whose plan shows a change for these values and whose compensation's template
/// changed for other values only: the template is shown as written too.
#[test]
fn a_template_change_beside_a_visible_change_is_shown() {
    let old = "[runbook]\nname = \"t\"\n\n[params.env]\ntype = \"string\"\ndefault = \"staging\"\n\n[steps.a]\nrun = \"echo one\"\ncompensate = { run = \"undo {{ params.env }}\" }\n";
    let new = old.replace("echo one", "echo two").replace(
        "undo {{ params.env }}",
        "{% if params.env == 'production' %}evil{% else %}undo {{ params.env }}{% endif %}",
    );
    says_changed(old, &new, &["+echo two", "evil", "its plan for these parameters is above"]);
}

/// An added step's command with a no-break space names it too, in text and markdown.
#[test]
fn an_added_steps_look_alike_characters_are_named() {
    let old = "[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"echo a\"\n";
    let new = format!("{old}\n[steps.b]\nrun = \"rm -rf\u{a0}/srv/x\"\n");
    let dir = changed(old, &new);
    for format in ["text", "markdown"] {
        let out = against(dir.path(), &["--format", format]);
        assert_eq!(out.code, 1);
        assert!(out.stdout.contains("U+00A0"), "{format}: {}", out.stdout);
    }
}
