//! Red team adv16r F4, F8: no value of a runbook draws a line, a column or a structure of a
//! review document that the renderer did not draw itself, and no executed character is
//! dropped from a quoted script.

use std::path::Path;

use crate::support::{ok, run_in};

/// Every line break a value can hold, and the tab (a column).
const BREAKS: [&str; 9] = ["\n", "\r", "\r\n", "\u{2028}", "\u{2029}", "\u{85}", "\u{b}", "\u{c}", "\t"];

/// A TOML basic string holding `s`, every non-ASCII or control character as `\uXXXX`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A runbook whose every prose field (and a few one-line executed values, an approval's
/// inputs' description, pattern, allowed values and default) holds `prose`;
/// the step title is also templated from the parameter `tag`.
fn runbook(prose: &str) -> String {
    let p = toml_string(prose);
    format!(
        r#"[runbook]
name = "t"
title = {p}

[params.tag]
type = "string"
default = "v1"

[preconditions.p]
cmd = ["true"]
message = {p}

[steps.a]
title = {p}
confirm = {p}
run = "rm -rf /srv/data"
env = {{ K = {p} }}
preconditions.q = {{ cmd = ["true"], message = {p} }}

[steps.b]
needs = ["a"]
title = "Deploy {{{{ params.tag }}}}"
cmd = ["echo", "b"]

[steps.b.compensate]
cmd = ["echo", "undo"]

[steps.ap.approval]
prompt = "ok"
approvers = ["alice smith", "alice, bob"]

[steps.ap.approval.inputs.d]
type = "string"
description = {p}
pattern = {p}

[steps.ap.approval.inputs.e]
type = "string"
enum = [{p}, "x"]
default = {p}
description = "e"
"#
    )
}

/// The document's lines that are not the engine's notes of invisible characters.
fn structure(doc: &str, format: &str) -> Vec<String> {
    doc.lines()
        .filter(|l| {
            !l.trim_start().starts_with("^ invisible characters") && !l.starts_with("This plan shows")
        })
        .map(|l| {
            // The line's shape: its indentation and its first word (a heading, a field).
            let indent = l.len() - l.trim_start().len();
            let head: String = l.trim_start().chars().take_while(|c| !c.is_whitespace()).collect();
            let head = if format == "text" {
                head
            } else {
                head.chars().take_while(|c| !c.is_alphanumeric()).collect()
            };
            format!("{indent}:{head}")
        })
        .collect()
}

fn plan(dir: &Path, format: &str, tag: &str) -> String {
    let param = format!("tag={tag}");
    let out = run_in(dir, &["plan", "r.toml", "--format", format, "--param", &param]);
    ok(&out, 0);
    out.stdout
}

/// F4 (and adv16t A1, A1b, A3: an approval input's description, pattern, allowed values
/// and default): a title, a description, a precondition's message, a confirm text, an env value or a
/// parameter templated into a title, holding any line break or a tab, leaves every document
/// (text, markdown, HTML) with the lines, the step headings and the fields of the same
/// runbook with harmless prose. Failed before: the text plan drew a fake `Wave 2` and a step
/// `a2 [run]` from a title, and the markdown drew `<br>` in a heading. An approver's name
/// holding a break is no longer drawn at all: it can never be an identity, so `plan` refuses
/// the runbook (RB033, adv19b-8).
#[test]
fn no_value_draws_a_line_of_a_review_document() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("r.toml"), runbook("harmless words")).expect("write");
    let base: Vec<(&str, Vec<String>)> = ["text", "markdown", "html"]
        .into_iter()
        .map(|f| (f, structure(&plan(dir.path(), f, "v1"), f)))
        .collect();
    for br in BREAKS {
        let forged = format!("harmless{br}Wave 7{br}  a2 [run]  x{br}<br>");
        std::fs::write(dir.path().join("r.toml"), runbook(&forged)).expect("write");
        for (format, want) in &base {
            let doc = plan(dir.path(), format, &forged);
            assert_eq!(&structure(&doc, format), want, "{format}, {br:?}:\n{doc}");
            assert!(!doc.lines().any(|l| l.trim_start().starts_with("a2 [run]")), "{format} {br:?}:\n{doc}");
            assert!(!doc.lines().any(|l| l.trim_start().starts_with("Wave 7")), "{format} {br:?}:\n{doc}");
            if *format == "markdown" {
                assert!(!doc.lines().any(|l| l.starts_with('#') && l.contains("<br>")), "{br:?}:\n{doc}");
            }
            for c in br.chars().filter(|c| *c != '\n') {
                assert!(!doc.contains(c), "{format} {br:?}: {c:?} raw:\n{doc}");
            }
        }
        let approver = runbook("harmless words").replace("\"alice smith\"", &toml_string(&forged));
        std::fs::write(dir.path().join("r.toml"), approver).expect("write");
        let out = run_in(dir.path(), &["plan", "r.toml", "--format", "markdown"]);
        ok(&out, 3);
        assert!(out.stderr.contains("error[RB033]") && out.stdout.is_empty(), "{br:?}: {}", out.stderr);
    }
}

/// adv16t A3: each approver is its own quoted value, so that a name holding `, ` reads as one
/// name: `"alice, bob"` in the text plan, `` `alice, bob` `` in the markdown, one `<code>` in
/// the HTML. Failed before: `from alice, bob, harmless words`, two names to the eye.
#[test]
fn each_approver_is_quoted_as_one_name() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("r.toml"), runbook("harmless words")).expect("write");
    let text = plan(dir.path(), "text", "v1");
    assert!(text.contains(r#"approval(s) from "alice smith", "alice, bob")"#), "{text}");
    let md = plan(dir.path(), "markdown", "v1");
    assert!(md.contains("approval(s) from `alice smith`, `alice, bob`"), "{md}");
    let html = plan(dir.path(), "html", "v1");
    assert!(html.contains("approval(s) from <code>alice smith</code>, <code>alice, bob</code>"), "{html}");
}

/// F8: a script is quoted with every carriage return it holds, in every document (split on
/// line feeds alone). Failed before: the text plan dropped a `\r` before each `\n`.
#[test]
fn a_quoted_script_keeps_every_carriage_return() {
    for script in [
        "UPDATE notes SET body = 'line one\r\nline two';\r\n",
        "SELECT 'a\rb';\n",
        "SELECT 1;\r",
        "SELECT 1;\r\r\n",
        "SELECT 1;\n\r\nSELECT 2;\r\n",
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("s.sql"), script).expect("write");
        std::fs::write(
            dir.path().join("r.toml"),
            "[runbook]\nname = \"t\"\n\n[steps.a]\nsql = { url = \"postgres://rw@127.0.0.1:1/app\", file = \"s.sql\" }\n",
        )
        .expect("write");
        let crs = script.matches('\r').count();
        for format in ["text", "markdown", "html"] {
            let out = run_in(dir.path(), &["plan", "r.toml", "--format", format]);
            ok(&out, 0);
            assert!(!out.stdout.contains('\r'), "{format} {script:?}: a raw CR");
            assert!(out.stdout.matches("\\r").count() >= crs, "{format} {script:?}:\n{}", out.stdout);
        }
    }
}

/// F5: the path of a changed field (a header name, a query parameter name, a JSON body key,
/// a read file's path) is sent or read, so the text diff marks it by the rule of what is
/// executed, as the markdown diff does. Failed before: `X-Auth-D<U+0430>t` drawn raw in the
/// text diff, a no-op remove and re-add to the eye.
#[test]
fn the_text_diff_marks_a_field_path_as_it_marks_what_runs() {
    for c in ['\u{430}', '\u{3bf}', '\u{261}', '\u{ff41}', '\u{e1}', '\u{2028}'] {
        let dir = tempfile::tempdir().expect("tmp");
        let mk = |name: &str, key: &str, file: &str| {
            let key = toml_string(key);
            std::fs::write(
                dir.path().join(name),
                format!(
                    "[runbook]\nname = \"t\"\n\n[steps.b]\nhttp = {{ url = \"https://127.0.0.1:1/x\", method = \"POST\", headers = {{ {key} = \"v\" }}, query = {{ {key} = \"v\" }}, json = {{ {key} = \"v\" }} }}\n\n[steps.c]\nsql = {{ url = \"postgres://rw@127.0.0.1:1/app\", file = {} }}\n",
                    toml_string(file)
                ),
            )
            .expect("write");
        };
        std::fs::write(dir.path().join("s.sql"), "SELECT 1;\n").expect("write");
        let other = format!("s{c}.sql");
        std::fs::write(dir.path().join(&other), "SELECT 1;\n").expect("write");
        mk("old.toml", "X-Auth-Dat", "s.sql");
        mk("new.toml", &format!("X-Auth-D{c}t"), &other);
        for (toml, json) in [("old.toml", "old.json"), ("new.toml", "new.json")] {
            let out = run_in(dir.path(), &["plan", toml, "--format", "json"]);
            ok(&out, 0);
            std::fs::write(dir.path().join(json), &out.stdout).expect("write");
        }
        let out = run_in(dir.path(), &["plan", "--diff", "old.json", "new.json"]);
        assert!(out.code == 0 || out.code == 1, "{}\n{}", out.stdout, out.stderr);
        assert!(!out.stdout.contains(c), "{c:?} raw in the text diff:\n{}", out.stdout);
        let escape = format!("\\u{{{:x}}}", c as u32);
        assert!(out.stdout.matches(&escape).count() >= 3, "{escape} in the text diff:\n{}", out.stdout);
    }
}
