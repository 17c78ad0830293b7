//! Every format of every shipped runbook's plan, as snapshots (issue 15), and the JSON plan
//! contract: every field of the JSON is named in book/src/reference/plan-json.md.

use crate::support::{root, run};

/// The shipped runbooks (runbooks/*.toml), each with its staging parameters.
fn shipped() -> Vec<(String, String, String)> {
    let dir = root().join("runbooks");
    crate::support::files(&dir, "toml")
        .into_iter()
        .filter(|p| p.parent() == Some(dir.as_path()))
        .map(|p| {
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let file = format!("runbooks/{name}.toml");
            let params = format!("runbooks/params/{name}.staging.toml");
            (name, file, params)
        })
        .collect()
}

/// What differs between machines and releases: the engine's version and the checkout's path.
fn normalised(text: &str) -> String {
    text.replace(env!("CARGO_PKG_VERSION"), "[version]").replace(&root().display().to_string(), "[root]")
}

#[test]
fn every_format_of_every_shipped_runbook_is_a_snapshot() {
    let runbooks = shipped();
    assert!(runbooks.len() >= 6, "{runbooks:?}");
    for (name, file, params) in runbooks {
        for format in ["text", "json", "dot", "html"] {
            let out = run(&["plan", &file, "--params-file", &params, "--format", format]);
            assert_eq!(out.code, 0, "{name} {format}: {}", out.stderr);
            insta::assert_snapshot!(format!("plan_{format}_{name}"), normalised(&out.stdout));
        }
    }
}

/// Maps whose keys are the runbook's own names (parameters, variables, inputs, headers),
/// not fields of the document.
const NAMED_BY_THE_RUNBOOK: &[&str] = &["params", "env", "inputs", "headers", "query", "body"];

fn keys(value: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                if k == "input_rules" {
                    // Input names (the runbook's) to objects of documented fields.
                    v.as_object().into_iter().flat_map(|m| m.values()).for_each(|v| keys(v, out));
                } else if !NAMED_BY_THE_RUNBOOK.contains(&k.as_str()) {
                    keys(v, out);
                }
            }
        }
        serde_json::Value::Array(list) => list.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[test]
fn plan_json_doc_names_every_field_of_every_shipped_plan() {
    let doc = std::fs::read_to_string(root().join("book/src/reference/plan-json.md")).expect("plan-json.md");
    let mut found = std::collections::BTreeSet::new();
    for (name, file, params) in shipped() {
        let out = run(&["plan", &file, "--params-file", &params, "--format", "json"]);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        keys(&plan, &mut found);
    }
    // The contract is wide: a handful of keys would mean the walk went wrong.
    assert!(found.len() > 40, "{found:?}");
    let missing: Vec<&String> = found
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")) && !doc.contains(&format!("\"{k}\"")))
        .collect();
    assert!(missing.is_empty(), "fields of the JSON plan that plan-json.md does not name: {missing:?}");
}
