//! The JSON Schema: generated from the code, committed, and agreeing with the validator.

use std::path::Path;

use crate::support::{files, relative, root, run};

fn schema() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("schemas/runbook.schema.json")).expect("committed schema");
    serde_json::from_str(&text).expect("schema is JSON")
}

/// A TOML file as JSON, the way editors validate it.
fn as_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: toml::Table = toml::from_str(&text).ok()?;
    serde_json::to_value(value).ok()
}

#[test]
fn committed_schema_is_up_to_date() {
    let out = run(&["schema"]);
    assert_eq!(out.code, 0);
    let committed = std::fs::read_to_string(root().join("schemas/runbook.schema.json")).expect("schema");
    assert!(
        committed == out.stdout,
        "schemas/runbook.schema.json is stale: run `cargo run -- schema > schemas/runbook.schema.json`"
    );
    assert_eq!(schema()["$schema"], "http://json-schema.org/draft-07/schema#");
}

#[test]
fn every_valid_runbook_passes_the_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let mut checked = 0;
    for dir in ["tests/fixtures/valid", "runbooks", "examples"] {
        for path in files(&root().join(dir), ".toml") {
            let doc = as_json(&path).unwrap_or_else(|| panic!("{} is TOML", path.display()));
            let errors: Vec<String> =
                validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", relative(&path));
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} files checked");
}

#[test]
fn structurally_invalid_fixtures_fail_the_schema() {
    // Unknown keys, wrong types and missing keys are what a JSON Schema can see; the other
    // codes need the validator (cross-field rules, templates, graphs).
    let structural = ["RB002", "RB003", "RB004"];
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let dir = root().join("tests/fixtures/invalid");
    let mut checked = 0;
    for path in files(&dir, ".toml").into_iter().filter(|p| p.parent() == Some(dir.as_path())) {
        let text = std::fs::read_to_string(&path).expect("fixture");
        let code =
            text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or("").trim().to_string();
        if !structural.contains(&code.as_str()) {
            continue;
        }
        let doc = as_json(&path).expect("structural fixtures are TOML");
        assert!(!validator.is_valid(&doc), "{} ({code}) passes the schema", relative(&path));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} structural fixtures");
}

#[test]
fn every_runbook_and_example_declares_the_schema() {
    for dir in ["runbooks", "examples"] {
        for path in files(&root().join(dir), ".toml") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let first = text.lines().next().unwrap_or("");
            assert!(
                first.starts_with("#:schema ") && first.ends_with("schemas/runbook.schema.json"),
                "{} lacks `#:schema`",
                relative(&path)
            );
            let out = run(&["check", &relative(&path)]);
            assert_eq!(out.code, 0, "{}:\n{}", relative(&path), out.stderr);
        }
    }
}
