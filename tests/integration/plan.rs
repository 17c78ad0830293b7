//! `runbook plan`: the dry run, its formats, the pinned plan, and parameter errors.

use std::path::Path;

use sha2::Digest as _;

use crate::support::{root, run, run_in};

const L3: &str = "tests/fixtures/valid/rollback-l3.toml";

fn l3(extra: &[&str]) -> crate::support::Output {
    let mut args = vec!["plan", L3, "-p", "environment=staging", "-p", "base_url=https://staging.inmova.app"];
    args.extend_from_slice(extra);
    run(&args)
}

fn redacted_json(stdout: &str) -> serde_json::Value {
    let mut doc: serde_json::Value = serde_json::from_str(stdout).expect("plan json");
    doc["engine"]["version"] = "[version]".into();
    doc
}

#[test]
fn text_plan_shows_waves_commands_and_compensations() {
    let out = l3(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn json_plan_is_the_documented_document() {
    let out = l3(&["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = redacted_json(&out.stdout);
    assert_eq!(doc["format_version"], 2);
    assert_eq!(doc["runbook"]["name"], "rollback-l3");
    assert_eq!(doc["params"]["environment"], "staging");
    assert_eq!(doc["waves"][0], serde_json::json!(["backup"]));
    let steps = doc["steps"].as_array().expect("steps");
    for s in steps {
        for key in ["id", "kind", "needs", "wave"] {
            assert!(!s[key].is_null(), "step {} lacks {key}", s["id"]);
        }
    }
    // Execution order: waves ascending.
    let waves: Vec<u64> = steps.iter().map(|s| s["wave"].as_u64().unwrap_or(0)).collect();
    assert!(waves.windows(2).all(|w| w[0] <= w[1]), "{waves:?}");
    insta::assert_json_snapshot!(doc);
}

#[test]
fn markdown_plan_has_a_table_and_a_mermaid_graph() {
    let out = l3(&["--format", "markdown"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("| wave | step | kind |"));
    assert!(out.stdout.contains("```mermaid\nflowchart TD"));
    // Node ids are generated (issue 15): the edge is found through the nodes' labels.
    let node = |step: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.trim().split_once(&format!("[\"{step} (")).map(|(id, _)| id.to_string()))
            .unwrap_or_else(|| panic!("no node for {step}"))
    };
    let edge = format!("  {} --> {}", node("backup"), node("checkout_stable"));
    assert!(out.stdout.contains(&edge), "{edge}");
    insta::assert_snapshot!(out.stdout.replace(env!("CARGO_PKG_VERSION"), "[version]"));
}

#[test]
fn dot_plan_is_graphviz() {
    let out = l3(&["--format", "dot"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("digraph \"rollback-l3\" {"));
    assert!(out.stdout.contains("\"restore\" -> \"health\";"));
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn pinned_plan_records_file_hashes_and_engine_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("plan.json");
    let out = l3(&["-o", out_file.to_str().unwrap_or_default()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Wave 1"), "the text plan is printed");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).expect("plan written")).expect("json");
    assert_eq!(doc["engine"]["version"], env!("CARGO_PKG_VERSION"));
    let files = doc["files"].as_array().expect("files");
    let paths: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(paths, [L3, "tests/fixtures/valid/include/rollback-l1.toml"]);
    for f in files {
        let bytes = std::fs::read(root().join(f["path"].as_str().unwrap_or_default())).expect("file");
        let expected: String =
            sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(f["sha256"], expected.as_str());
    }
}

#[test]
fn static_when_is_evaluated_and_dynamic_when_is_not() {
    let out = run(&[
        "plan",
        L3,
        "-p",
        "environment=sandbox",
        "-p",
        "base_url=https://x.invalid",
        "--format",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let push = doc["steps"].as_array().and_then(|s| s.iter().find(|s| s["id"] == "push_stable")).cloned();
    assert_eq!(push.map(|p| p["when"]["value"].clone()), Some(serde_json::json!(false)));
}

#[test]
fn plan_executes_nothing_and_writes_nothing_but_the_out_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = r#"#:schema ../schemas/runbook.schema.json
[runbook]
name = "side-effects"

[secrets.TOKEN]
env = "SENTINEL_TOKEN"

[preconditions.touch]
cmd = ["touch", "precondition-ran"]

[steps.one]
run = "touch step-ran"
env = { TOKEN = "{{ secrets.TOKEN }}" }
compensate = { run = "touch compensation-ran" }
preconditions.local = { run = "touch step-precondition-ran" }

[steps.two]
http = { url = "http://127.0.0.1:9/never", headers = { Authorization = "Bearer {{ secrets.TOKEN }}" } }

[finally.always]
cmd = ["touch", "finally-ran"]
"#;
    std::fs::write(dir.path().join("r.toml"), runbook).expect("write");
    for format in ["text", "json", "markdown", "dot"] {
        let out = crate::support::run_in_with_env(
            dir.path(),
            &["plan", "r.toml", "--format", format, "-o", "pinned.json"],
            &[("SENTINEL_TOKEN", "s3cr3t-sentinel-value")],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            !out.stdout.contains("s3cr3t") && !out.stderr.contains("s3cr3t"),
            "secret leaked in {format}"
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["pinned.json", "r.toml"], "the plan ran something or wrote elsewhere");
    let pinned = std::fs::read_to_string(dir.path().join("pinned.json")).expect("pinned");
    assert!(!pinned.contains("s3cr3t"));
    assert!(pinned.contains("<secret:TOKEN>"));
}

#[test]
fn parameter_errors_name_the_parameter_and_point_at_it() {
    let cases: &[(&str, &[&str])] = &[
        ("missing", &["plan", L3]),
        ("unknown", &["plan", L3, "-p", "enviroment=staging", "-p", "base_url=x"]),
        ("not_in_enum", &["plan", L3, "-p", "environment=prod", "-p", "base_url=x"]),
        (
            "pattern",
            &["plan", L3, "-p", "environment=staging", "-p", "base_url=x", "-p", "stable_tag=latest"],
        ),
        (
            "wrong_type",
            &[
                "plan",
                "tests/fixtures/valid/deploy-canary.toml",
                "-p",
                "service=api",
                "-p",
                "tag=v1.0.0",
                "-p",
                "canary_percent=ten",
            ],
        ),
    ];
    for (name, args) in cases {
        let out = run(args);
        assert_eq!(out.code, 3, "{name}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{name}: no plan on stdout");
        insta::assert_snapshot!(format!("plan_param_{name}"), out.stderr);
    }
}

#[test]
fn params_file_errors_point_into_the_file_and_args_win_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = dir.path().join("params.toml");
    std::fs::write(&params, "environment = \"staging\"\nbase_url = 42\nstable_tag = \"v2.0.0\"\n")
        .expect("write");
    let rb = root().join(L3);
    let rb = rb.to_str().unwrap_or_default();
    let out = run_in(dir.path(), &["plan", rb, "--params-file", "params.toml"]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.starts_with("params.toml:2:12: error[RB071]"), "{}", out.stderr);
    // A command-line value replaces the file's (a bad value in the file is still an error).
    std::fs::write(
        &params,
        "environment = \"staging\"\nbase_url = \"https://file\"\nstable_tag = \"v2.0.0\"\n",
    )
    .expect("write");
    let out = run_in(
        dir.path(),
        &["plan", rb, "--params-file", "params.toml", "-p", "base_url=https://x", "--format", "json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["params"]["base_url"], "https://x");
    assert_eq!(doc["params"]["stable_tag"], "v2.0.0");
    // JSON params files are typed too.
    let json = dir.path().join("params.json");
    std::fs::write(&json, r#"{"environment": "production", "base_url": "https://inmova.app"}"#)
        .expect("write");
    let out = run_in(dir.path(), &["plan", rb, "--params-file", "params.json", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn values_in_run_text_are_bound_in_the_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("q.toml"),
        "[runbook]\nname = \"q\"\n[params.msg]\ntype = \"string\"\n[steps.say]\nrun = \"echo {{ params.msg }}\"\n",
    )
    .expect("write");
    let out = run_in(dir.path(), &["plan", "q.toml", "-p", "msg=$(touch pwned); it's", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        doc["steps"][0]["command"]["run"]["script"],
        "RB_1='$(touch pwned); it'\\''s'\necho \"$RB_1\""
    );
    assert!(!Path::new(&dir.path().join("pwned")).exists());
}

// ----- The review document (`plan --format markdown`, issue 15) -------------------------

/// A runbook with everything a reviewer must see: backticks and `|` in commands, a
/// multi-line script, a compensation, step preconditions, a confirmation, an approval whose
/// wait (30m) differs from the default step timeout (10m), SQL and HTTP with secrets, a
/// `stop` step after compensable work, and a `finally` step.
pub(crate) const REVIEW: &str = r#"[runbook]
name = "review-me"
title = "Move | the `v2` tag"
description = """
Moves the `v2` tag and restores *the* database.
A second line | with a pipe."""
estimate = "5m..20m"
lock = "review-{{ params.env }}"

[params.env]
type = "string"
default = "staging"

[secrets.TOKEN]
env = "REVIEW_TOKEN"

[secrets.DB]
env = "REVIEW_DB"

[defaults]
timeout = "10m"
on-failure = "compensate"

[preconditions.tools]
cmd = ["git", "--version"]
message = "git is missing"

[steps.backup]
run = '''
echo "now: `date`"
echo ``double`` and ```triple``` | tr a b
'''
timeout = "1m"
retry = { attempts = 3, delay = "10s", backoff = 2.0 }
idempotent = true
estimate = "1m"

[steps.backup.compensate]
run = "rm -f /tmp/backup-`date +%F`.dump"
timeout = "30s"

[steps.push]
needs = ["backup"]
confirm = "Push v2 to origin | {{ params.env }}?"
cmd = ["git", "push", "origin", "v2"]
preconditions.on_tag = { cmd = ["git", "describe", "--exact-match", "--tags", "HEAD"], message = "HEAD is not a tag" }

[steps.push.compensate]
cmd = ["git", "push", "--delete", "origin", "v2"]

[steps.migrate]
needs = ["push"]
sql = { url = "{{ secrets.DB }}", query = "SELECT count(*) AS pending FROM _prisma_migrations WHERE finished_at IS NULL", assert = "rows[0].pending == 0", read-only = true }
timeout = "30s"

[steps.health]
needs = ["migrate"]
http = { url = "https://app.invalid/api/health", headers = { Authorization = "Bearer {{ secrets.TOKEN }}" }, expect-status = [200], assert = "json.status == 'ok'" }
timeout = "5s"
retry = { attempts = 4, delay = "15s" }

[steps.sign_off]
needs = ["health"]
on-failure = "stop"

[steps.sign_off.approval]
prompt = "Is the app healthy on {{ params.env }}?"
approvers = ["ana", "luis"]
timeout = "30m"

[steps.sign_off.approval.inputs.ticket]
type = "string"
description = "Incident ticket"

[steps.announce]
needs = ["sign_off"]
run = "echo announced"
on-failure = "stop"

[finally.cleanup]
run = "rm -f /tmp/review-me.lock"
"#;

pub(crate) fn review(extra: &[&str]) -> (tempfile::TempDir, crate::support::Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("review.toml"), REVIEW).expect("write");
    let mut args = vec!["plan", "review.toml"];
    args.extend_from_slice(extra);
    let out = crate::support::run_in_with_env(
        dir.path(),
        &args,
        &[("REVIEW_TOKEN", "sentinel-token-value"), ("REVIEW_DB", "postgres://u:sentinel-db-pw@h/db")],
    );
    (dir, out)
}

/// The fenced code blocks of a markdown document, as a CommonMark parser reads them.
fn code_blocks(markdown: &str) -> Vec<(String, String)> {
    use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for event in Parser::new_ext(markdown, pulldown_cmark::Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let info = match kind {
                    CodeBlockKind::Fenced(i) => i.to_string(),
                    CodeBlockKind::Indented => "(indented)".to_string(),
                };
                current = Some((info, String::new()));
            }
            Event::Text(t) => {
                if let Some((_, body)) = current.as_mut() {
                    body.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            _ => {}
        }
    }
    blocks
}

/// The tables of a markdown document, as cells of text (inline code included).
fn tables(markdown: &str) -> Vec<Vec<Vec<String>>> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut tables = Vec::new();
    let mut table: Option<Vec<Vec<String>>> = None;
    for event in Parser::new_ext(markdown, pulldown_cmark::Options::ENABLE_TABLES) {
        match (event, table.as_mut()) {
            (Event::Start(Tag::Table(_)), _) => table = Some(Vec::new()),
            (Event::Start(Tag::TableHead | Tag::TableRow), Some(t)) => t.push(Vec::new()),
            (Event::Start(Tag::TableCell), Some(t)) => {
                if let Some(row) = t.last_mut() {
                    row.push(String::new());
                }
            }
            (Event::Text(s) | Event::Code(s), Some(t)) => {
                if let Some(cell) = t.last_mut().and_then(|r| r.last_mut()) {
                    cell.push_str(&s);
                }
            }
            (Event::End(TagEnd::Table), _) => tables.extend(table.take()),
            _ => {}
        }
    }
    tables
}

#[test]
fn review_document_shows_every_command_exactly_as_the_json_plan() {
    let (_dir, json) = review(&["--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let (_dir, md) = review(&["--format", "markdown"]);
    assert_eq!(md.code, 0, "{}", md.stderr);
    let blocks = code_blocks(&md.stdout);
    let bodies: Vec<&str> = blocks.iter().map(|(_, b)| b.trim_end_matches('\n')).collect();
    // Every script, compensation and query is a code block of its own, byte for byte.
    let steps =
        doc["steps"].as_array().expect("steps").iter().chain(doc["finally"].as_array().expect("finally"));
    let mut expected = Vec::new();
    for s in steps {
        for c in [&s["command"], &s["compensation"]["command"]] {
            if let Some(script) = c["run"]["script"].as_str() {
                expected.push(script.trim_end_matches('\n').to_string());
            }
            if let Some(q) = c["sql"]["query"].as_str() {
                expected.push(q.to_string());
            }
        }
    }
    assert!(expected.iter().any(|e| e.contains("echo \"now: `date`\"")), "{expected:?}");
    for e in &expected {
        assert!(bodies.contains(&e.as_str()), "missing code block {e:?} in\n{}", md.stdout);
    }
    // The approval waits what its own timeout says, not the default step timeout.
    let rows = tables(&md.stdout);
    let overview = rows.iter().find(|t| t[0].iter().any(|c| c == "timeout")).expect("overview table");
    let sign_off = overview.iter().find(|r| r.get(1).is_some_and(|c| c == "sign_off")).expect("sign_off row");
    let col = overview[0].iter().position(|c| c == "timeout").expect("timeout column");
    assert_eq!(sign_off[col], "30m", "{overview:?}");
    // A `finally` step is never "compensate": its failure leaves the run's status alone.
    let cleanup = overview.iter().find(|r| r.get(1).is_some_and(|c| c == "cleanup")).expect("cleanup row");
    let col = overview[0].iter().position(|c| c == "on failure").expect("on failure column");
    assert!(!cleanup[col].contains("compensate"), "{cleanup:?}");
    // Secrets by name only (promise 3).
    assert!(!md.stdout.contains("sentinel"), "{}", md.stdout);
    assert!(md.stdout.contains("Authorization: Bearer <secret:TOKEN>"), "{}", md.stdout);
    insta::assert_snapshot!(md.stdout.replace(env!("CARGO_PKG_VERSION"), "[version]"));
}

#[test]
fn review_document_has_a_summary_and_a_risk_section() {
    let (_dir, md) = review(&["--format", "markdown", "-p", "env=production"]);
    assert_eq!(md.code, 0, "{}", md.stderr);
    let out = &md.stdout;
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s:?} missing in\n{out}"));
    // Summary first, then risks, then the steps.
    assert!(at("## Summary") < at("## Risks"));
    assert!(at("## Risks") < at("## Steps"));
    for fact in [
        "`env` = `production`",
        "review-production",
        "`TOKEN`",
        "`DB`",
        "`ana`, `luis`",
        "Push v2 to origin \\| production?",
    ] {
        at(fact);
    }
    // The worst case: the precondition `tools` (1m, the default), then the critical path at
    // worst: backup 3 × 1m + 10s + 20s, push 1m (its precondition) + 10m (the default
    // timeout), migrate 30s, health 4 × 5s + 3 × 15s, sign_off 30m (its approval's wait, not
    // the default 10m), announce 10m; then `finally` cleanup 10m.
    at("**Worst case:** 1h 7m 5s");
    at("56m 5s");
    // Undoing at worst: push's compensation (the default 10m) and backup's (30s).
    at("**Undoing at worst:** 10m 30s, when `migrate` fails");
    // Point of no return: `sign_off` stops instead of undoing `push` and `backup`.
    at("**Point of no return:** `sign_off`");
    // What cannot be undone: a run step and a cmd step without compensation.
    at("**Changes that nothing undoes:** `announce`, `cleanup`");
}

#[test]
fn review_document_mermaid_ids_never_clash_with_mermaid_words() {
    // Mermaid's keywords and words that break a flowchart, and ids that begin like an edge.
    let words = [
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "style",
        "class",
        "classdef",
        "click",
        "linkstyle",
        "direction",
        "default",
        "call",
        "href",
        "callback",
        "interpolate",
        "o",
        "x",
        "o_ring",
        "x_ray",
        "td",
        "lr",
        "a",
        "s1",
        "n1",
        "finally",
    ];
    let mut toml = String::from("[runbook]\nname = \"mermaid-corpus\"\n\n");
    let mut prev: Option<&str> = None;
    for w in &words {
        let needs = prev.map(|p| format!("needs = [\"{p}\"]\n")).unwrap_or_else(|| "needs = []\n".into());
        toml.push_str(&format!("[steps.{w}]\n{needs}run = \"true\"\n\n"));
        prev = Some(w);
    }
    toml.push_str("[finally.end_of_run]\nrun = \"true\"\n");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("corpus.toml"), &toml).expect("write");
    let out = run_in(dir.path(), &["plan", "corpus.toml", "--format", "markdown"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let blocks = code_blocks(&out.stdout);
    let graph = &blocks.iter().find(|(info, _)| info == "mermaid").expect("mermaid block").1;
    let mut defined = std::collections::BTreeMap::new();
    let mut edges = 0;
    for line in graph.lines().skip(1).map(str::trim) {
        if line.starts_with("subgraph ") || line.starts_with("class") || line == "end" {
            continue;
        }
        if let Some((from, to)) = line.split_once(" --> ") {
            assert!(
                defined.contains_key(from) && defined.contains_key(to),
                "edge {line:?} to an undefined node"
            );
            edges += 1;
        } else if let Some((id, label)) = line.split_once("[\"") {
            assert!(
                id.len() > 1 && id.starts_with('s') && id[1..].chars().all(|c| c.is_ascii_digit()),
                "node id {id:?} is not a generated id"
            );
            defined.insert(id.to_string(), label.trim_end_matches("\"]").to_string());
        }
    }
    for w in words.iter().chain(["end_of_run"].iter()) {
        assert!(defined.values().any(|l| l.starts_with(&format!("{w} "))), "no node labelled {w}: {graph}");
    }
    assert_eq!(defined.len(), words.len() + 1);
    assert_eq!(edges, words.len() - 1);
}

#[test]
fn review_document_of_every_shipped_runbook_parses_as_commonmark() {
    let shipped = root().join("runbooks");
    for path in
        crate::support::files(&shipped, "toml").into_iter().filter(|p| p.parent() == Some(shipped.as_path()))
    {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let file = format!("runbooks/{name}.toml");
        let params = format!("runbooks/params/{name}.staging.toml");
        let out = run(&["plan", &file, "--params-file", &params, "--format", "markdown"]);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let json = run(&["plan", &file, "--params-file", &params, "--format", "json"]);
        let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
        // Every table row has as many cells as its header.
        for t in tables(&out.stdout) {
            for row in &t {
                assert_eq!(row.len(), t[0].len(), "{name}: {row:?}");
            }
        }
        // Every main and finally step has its own section, and each script is one block.
        let blocks = code_blocks(&out.stdout);
        let bodies: Vec<&str> = blocks.iter().map(|(_, b)| b.trim_end_matches('\n')).collect();
        let steps =
            doc["steps"].as_array().expect("steps").iter().chain(doc["finally"].as_array().expect("f"));
        for s in steps {
            let id = s["id"].as_str().unwrap_or_default();
            assert!(out.stdout.contains(&format!("\n### `{id}`")), "{name}: no section for {id}");
            if let Some(script) = s["command"]["run"]["script"].as_str() {
                let script = crate::plan_html::shown(script.trim_end_matches('\n'));
                assert!(bodies.contains(&script.as_str()), "{name}: {id}'s script");
            }
        }
        assert!(blocks.iter().any(|(info, _)| info == "mermaid"), "{name}: no graph");
        insta::assert_snapshot!(
            format!("review_{name}"),
            out.stdout.replace(env!("CARGO_PKG_VERSION"), "[version]")
        );
    }
}

/// A TOML basic string holding `s` exactly.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn review_document_keeps_every_text_of_a_corpus_exactly() {
    // Scripts: backtick runs of every length, fences inside, markdown that must stay text.
    let scripts = [
        "echo \"now: `date`\"",
        "``",
        "echo ```` four ````` five",
        "`starts with one",
        "ends with one`",
        "a | b || c \\| d",
        "# not a heading\n> not a quote\n- not a list\n1. not a list either\n    indented\n\n\ttab",
        "~~~\ntilde fence\n~~~",
        "```\ninner fence\n```",
        "<script>alert(1)</script> &amp; $x $$y$$ *a* _b_ [l](http://x) ![i](y)",
        "trailing spaces   \nnext line",
        "    leading spaces\n\n\nthree empty lines above",
        "héllo → ✓ 🚀",
    ];
    // Values shown in inline code spans.
    let values = ["`x`", "a|b", "``", " spaced ", "<b>bold</b>", "*x* _y_", "tab\there", "ends\\"];
    let title = "Move | the `v2` tag *now* <b>";
    let mut toml = format!("[runbook]\nname = \"corpus\"\ntitle = {}\n\n", toml_string(title));
    for (i, v) in values.iter().enumerate() {
        toml.push_str(&format!("[params.p{i}]\ntype = \"string\"\ndefault = {}\n\n", toml_string(v)));
    }
    for (i, s) in scripts.iter().enumerate() {
        toml.push_str(&format!("[steps.s{i}]\nrun = {}\n\n", toml_string(s)));
        toml.push_str(&format!("[steps.s{i}.compensate]\nrun = {}\n\n", toml_string(&format!("undo {s}"))));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("corpus.toml"), &toml).expect("write");
    let out = run_in(dir.path(), &["plan", "corpus.toml", "--format", "markdown"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = run_in(dir.path(), &["plan", "corpus.toml", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let blocks = code_blocks(&out.stdout);
    let bodies: Vec<&str> = blocks.iter().map(|(_, b)| b.trim_end_matches('\n')).collect();
    for s in doc["steps"].as_array().expect("steps") {
        for c in [&s["command"], &s["compensation"]["command"]] {
            let script = c["run"]["script"].as_str().expect("script");
            let script = crate::plan_html::shown(script.trim_end_matches('\n'));
            assert!(bodies.contains(&script.as_str()), "{script:?} not kept in\n{}", out.stdout);
        }
    }
    // Inline code spans and the title read back as written.
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut spans = Vec::new();
    let mut heading: Option<String> = None;
    let mut first_heading = None;
    for event in Parser::new_ext(&out.stdout, pulldown_cmark::Options::ENABLE_TABLES) {
        match event {
            Event::Code(c) => {
                spans.push(c.to_string());
                if let Some(h) = heading.as_mut() {
                    h.push_str(&c);
                }
            }
            Event::Text(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::Start(Tag::Heading { .. }) if first_heading.is_none() => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) if heading.is_some() => first_heading = heading.take(),
            _ => {}
        }
    }
    for v in values {
        // A value holding a control character is shown JSON-quoted, so it stays visible.
        let shown =
            if v.chars().any(char::is_control) { serde_json::json!(v).to_string() } else { v.to_string() };
        assert!(spans.contains(&shown), "{v:?} not kept: {spans:?}");
    }
    assert_eq!(first_heading.as_deref(), Some(format!("Review of corpus: {title}").as_str()));
}

#[test]
fn review_document_table_cells_stay_bounded_on_a_long_chain() {
    // 200 steps in a chain, every other one compensable, then a step that stops: its row
    // would list 200 ids (a table quadratic in the steps); it lists 30 and counts the rest.
    let mut toml = String::from("[runbook]\nname = \"chain\"\n\n");
    for i in 0..200 {
        toml.push_str(&format!("[steps.s{i}]\nrun = \"echo {i}\"\n\n"));
        if i % 2 == 0 {
            toml.push_str(&format!("[steps.s{i}.compensate]\nrun = \"echo undo {i}\"\n\n"));
        }
    }
    toml.push_str("[steps.last]\nrun = \"true\"\non-failure = \"stop\"\n");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("chain.toml"), &toml).expect("write");
    let out = run_in(dir.path(), &["plan", "chain.toml", "--format", "markdown"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row = out.stdout.lines().find(|l| l.starts_with("| 201 | `last` |")).expect("last's row");
    assert!(row.ends_with("`s170` and 170 more |"), "{row}");
    assert!(out.stdout.contains(
        "**Point of no return:** `last`: from there on, a failure stops instead of undoing `s198`, `s196`"
    ));
}
