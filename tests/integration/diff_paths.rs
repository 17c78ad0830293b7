//! The plan diff draws every path so that no two values share it (red team adv16t A2): a
//! JSON key holding `.`, `[`, `]`, a quote, a space, digits only, or nothing is shown
//! bracketed and quoted (`body["user.role"]`), never joined with `.` like a nested key.

use std::collections::BTreeSet;

use crate::support::{ok, run_in};

/// Keys that a joined path would confuse with a nested key, an index, or one another, each
/// beside the nested key it would read as.
const BODY: &str = r#"{ "user.role" = "V0", user = { role = "V1" }, "a[0].x" = "V2", a = [{ x = "V3" }], "q\"x" = "V4", "has space" = "V5", "" = "V6", "0" = "V7", "x]y" = "V8", x = { "]y" = "V9" }, "-" = "V10", "m.n.o" = "V11", m = { "n.o" = "V12", n = { o = "V13" } } }"#;

const LEAVES: usize = 14;

fn runbook(values: &str) -> String {
    let mut body = BODY.to_string();
    for i in (0..LEAVES).rev() {
        body = body.replace(&format!("\"V{i}\""), &format!("\"{values}{i}\""));
    }
    format!(
        "[runbook]\nname = \"t\"\ntitle = \"t\"\n\n[steps.grant]\nhttp = {{ url = \"http://127.0.0.1:9/u\", method = \"PATCH\", json = {body} }}\n"
    )
}

#[test]
fn every_changed_json_key_has_its_own_path_in_every_diff_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("o.toml"), runbook("old")).expect("write");
    std::fs::write(p.join("n.toml"), runbook("new")).expect("write");
    for (f, j) in [("o.toml", "o.json"), ("n.toml", "n.json")] {
        let out = run_in(p, &["plan", f, "--format", "json"]);
        ok(&out, 0);
        std::fs::write(p.join(j), out.stdout).expect("write");
    }
    let json = run_in(p, &["plan", "--diff", "o.json", "n.json", "--format", "json"]);
    ok(&json, 1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let steps = doc["steps"].as_array().expect("steps");
    let fields: Vec<String> = steps[0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|f| f["field"].as_str().expect("field").to_string())
        .collect();
    let distinct: BTreeSet<&String> = fields.iter().collect();
    assert_eq!(fields.len(), LEAVES, "one change per value: {fields:#?}");
    assert_eq!(distinct.len(), LEAVES, "two values share a path: {fields:#?}");
    for f in &fields {
        assert!(f.starts_with("command.http.body"), "{f}");
    }
    for expected in [
        r#"command.http.body["user.role"]"#,
        "command.http.body.user.role",
        r#"command.http.body["a[0].x"]"#,
        "command.http.body.a[0].x",
        r#"command.http.body["q\"x"]"#,
        r#"command.http.body["has space"]"#,
        r#"command.http.body[""]"#,
        "command.http.body.0",
        r#"command.http.body["x]y"]"#,
        r#"command.http.body.x["]y"]"#,
        "command.http.body.-",
        r#"command.http.body["m.n.o"]"#,
        r#"command.http.body.m["n.o"]"#,
        "command.http.body.m.n.o",
    ] {
        assert!(fields.iter().any(|f| f == expected), "{expected} missing: {fields:#?}");
    }
    // The text and the markdown draw the same paths, each once.
    let text = run_in(p, &["plan", "--diff", "o.json", "n.json"]);
    ok(&text, 1);
    let md = run_in(p, &["plan", "--diff", "o.json", "n.json", "--format", "markdown"]);
    ok(&md, 1);
    for f in &fields {
        let t = format!("      {f}: ");
        assert_eq!(text.stdout.matches(&t).count(), 1, "{t} in:\n{}", text.stdout);
        let m = format!("  - `{f}`: ");
        assert_eq!(md.stdout.matches(&m).count(), 1, "{m} in:\n{}", md.stdout);
    }
}
