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
    assert_eq!(doc["format_version"], 1);
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
    assert!(out.stdout.contains("  backup --> checkout_stable"));
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
