//! The JSON Schema: generated from the code, committed, and agreeing with the validator.

use std::path::Path;

use crate::support::{files, relative, root, run};

/// Runbook files under a folder of runbooks (params files in `params/` are not runbooks).
/// Runbook files under `dir`: not params files, not the sandbox crate's `Cargo.toml`.
pub fn runbook_files(dir: &str) -> Vec<std::path::PathBuf> {
    files(&root().join(dir), ".toml")
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "params" || c.as_os_str() == "sandbox"))
        .collect()
}

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
        for path in runbook_files(dir) {
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
        for path in runbook_files(dir) {
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

/// Walk `value` alongside `schema`, recording `Definition.property` for every key used.
fn record_used(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    defs: &serde_json::Value,
    at: &str,
    used: &mut std::collections::BTreeSet<String>,
) {
    // Resolve `$ref` (possibly wrapped in a one-element allOf) and Option's anyOf-with-null.
    let mut schema = schema;
    let mut at = at.to_string();
    for _ in 0..8 {
        if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
            let name = r.rsplit('/').next().unwrap_or_default();
            at = name.to_string();
            schema = &defs[name];
            continue;
        }
        let branches = schema.get("anyOf").or_else(|| schema.get("allOf")).and_then(|b| b.as_array());
        match branches.map(|b| b.iter().filter(|x| x["type"] != "null").collect::<Vec<_>>()) {
            Some(real) if real.len() == 1 => schema = real[0],
            _ => break,
        }
    }
    match value {
        serde_json::Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (k, v) in map {
                    if let Some(sub) = props.get(k) {
                        used.insert(format!("{at}.{k}"));
                        record_used(v, sub, defs, &at, used);
                    }
                }
            } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for v in map.values() {
                    record_used(v, sub, defs, &at, used);
                }
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items {
                    record_used(v, sub, defs, &at, used);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn valid_fixtures_use_every_key_of_the_format() {
    let schema = schema();
    let defs = schema["definitions"].clone();
    let mut all = std::collections::BTreeSet::new();
    for (name, def) in defs.as_object().expect("definitions") {
        for key in def
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().collect())
            .unwrap_or_else(Vec::new)
        {
            all.insert(format!("{name}.{key}"));
        }
    }
    for key in schema["properties"].as_object().expect("top-level properties").keys() {
        all.insert(format!("runbook.{key}"));
    }
    let mut used = std::collections::BTreeSet::new();
    for path in files(&root().join("tests/fixtures/valid"), ".toml") {
        let doc = as_json(&path).expect("valid fixture is TOML");
        record_used(&doc, &schema, &defs, "runbook", &mut used);
    }
    assert!(all.len() > 80, "the schema walk found only {} keys", all.len());
    let missing: Vec<&String> = all.difference(&used).collect();
    assert!(missing.is_empty(), "no valid fixture uses these keys of the format: {missing:#?}");
}

#[test]
fn every_runbook_plans_with_its_sample_params() {
    for path in runbook_files("runbooks") {
        let file = relative(&path);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let params = format!("runbooks/params/{stem}.staging.toml");
        let mut args = vec!["plan", file.as_str(), "--format", "json"];
        if root().join(&params).exists() {
            args.extend(["--params-file", params.as_str()]);
        }
        let out = run(&args);
        assert_eq!(out.code, 0, "{file} does not plan with {params}:\n{}", out.stderr);
    }
    let examples = runbook_files("examples");
    let texts: Vec<String> =
        examples.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
    for path in &examples {
        let file = relative(path);
        // A runbook that another example includes gets its parameters from there.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let included =
            texts.iter().any(|t| t.contains(&format!("/{name}\"")) || t.contains(&format!("\"{name}\"")));
        if included {
            continue;
        }
        let out = run(&["plan", &file]);
        assert_eq!(out.code, 0, "{file} must plan without parameters:\n{}", out.stderr);
    }
}
