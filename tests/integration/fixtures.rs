//! The fixture corpus: every invalid runbook is rejected with its expected code and an exact
//! message (snapshots); every valid runbook passes `check` and plans.

use std::path::Path;

use crate::support::{relative, root, run};

/// The code a fixture declares on its first line: `# expect: RB022`.
fn expected_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let first = text.lines().next().unwrap_or("");
    first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} must start with `# expect: RBnnn`", path.display()))
        .trim()
        .to_string()
}

#[test]
fn invalid_fixtures_are_rejected_with_their_code_and_message() {
    insta::glob!("../fixtures/invalid", "*.toml", |path| {
        let file = relative(path);
        let expected = expected_code(path);
        let out = run(&["check", "--format", "json", &file]);
        assert_eq!(out.code, 3, "{file}: exit code\n{}", out.stderr);
        let diags: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json diagnostics");
        let codes: Vec<&str> = diags.iter().filter_map(|d| d["code"].as_str()).collect();
        assert!(codes.contains(&expected.as_str()), "{file}: expected {expected}, got {codes:?}");
        // In the fixture itself, the only other code allowed is the follow-on "included
        // runbook is not valid"; an included file reports its own problems.
        for d in diags.iter().filter(|d| d["file"] == file.as_str()) {
            let c = d["code"].as_str().unwrap_or_default();
            assert!(c == expected || c == "RB061", "{file}: unexpected {c} besides {expected}: {codes:?}");
        }
        for d in &diags {
            assert!(d["line"].as_u64().unwrap_or(0) >= 1, "{file}: diagnostics carry a line: {d}");
            assert!(d["help"].is_string() || d["label"].is_string(), "{file}: {d} has no hint");
        }
        let human = run(&["check", &file]);
        assert_eq!(human.code, 3);
        insta::assert_snapshot!(format!("exit: {}\n{}", human.code, human.stderr));
    });
}

#[test]
fn there_are_enough_invalid_fixtures_and_every_code_is_covered() {
    let dir = root().join("tests/fixtures/invalid");
    let fixtures: Vec<_> = crate::support::files(&dir, ".toml")
        .into_iter()
        .filter(|p| p.parent() == Some(dir.as_path()))
        .collect();
    assert!(fixtures.len() >= 40, "only {} invalid fixtures", fixtures.len());
    let covered: std::collections::BTreeSet<String> = fixtures.iter().map(|p| expected_code(p)).collect();
    // Parameter and IO errors are covered by the plan tests instead.
    // RB046 and RB081 are warnings: their fixtures are in `warnings/`.
    // RB090 is `run`'s one answer before a run: tests/integration/preflight.rs.
    // RB119 depends on the lists given to `plan`: tests/integration/for_each.rs.
    // RB120 and RB121 are `runbook new`'s refusals: tests/integration/conveniences.rs.
    // RB104 is a worker's refusal of a changed file, RB105 needs 1,001 schedules:
    // tests/integration/schedules.rs.
    // RB122 refuses a plan file (JSON), not a runbook: tests/integration/plan_size.rs.
    // RB123 refuses a plan file's unknown top-level key: tests/integration/plan_diff_cost.rs.
    let elsewhere = [
        "RB000", "RB046", "RB070", "RB071", "RB072", "RB081", "RB090", "RB104", "RB105", "RB119", "RB120",
        "RB121", "RB122", "RB123",
    ];
    for code in runbook_core::Code::ALL {
        let c = code.as_str();
        assert!(covered.contains(c) || elsewhere.contains(&c), "no invalid fixture expects {c}");
    }
}

#[test]
fn warnings_are_shown_and_do_not_block() {
    let dir = root().join("tests/fixtures/warnings");
    for path in crate::support::files(&dir, ".toml") {
        let file = crate::support::relative(&path);
        let expected = expected_code(&path);
        let out = run(&["check", &file]);
        assert_eq!(out.code, 0, "{file}: a warning does not make a runbook invalid");
        assert!(out.stderr.contains(&format!("warning[{expected}]")), "{file}: {}", out.stderr);
        insta::assert_snapshot!(
            format!("warning-{}", expected),
            format!("exit: {}\n{}", out.code, out.stderr)
        );
    }
}

#[test]
fn valid_fixtures_check_and_plan() {
    let dir = root().join("tests/fixtures/valid");
    let files: Vec<_> = crate::support::files(&dir, ".toml")
        .into_iter()
        .filter(|p| p.parent() == Some(dir.as_path()))
        .collect();
    assert!(files.len() >= 10);
    for path in files {
        let file = relative(&path);
        let out = run(&["check", &file]);
        assert_eq!(out.code, 0, "{file}:\n{}", out.stderr);
        // Required parameters come from tests/fixtures/params/NAME.toml when the runbook has any.
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let params = format!("tests/fixtures/params/{stem}.toml");
        let mut args = vec!["plan", file.as_str(), "--format", "json"];
        if root().join(&params).exists() {
            args.extend(["--params-file", params.as_str()]);
        }
        let plan = run(&args);
        assert_eq!(plan.code, 0, "{file}:\n{}", plan.stderr);
        let doc: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
        assert!(doc["steps"].as_array().is_some_and(|s| !s.is_empty()), "{file}: no steps");
    }
}

#[test]
fn check_reports_every_file_and_every_problem_at_once() {
    let out = run(&[
        "check",
        "tests/fixtures/valid/minimal.toml",
        "tests/fixtures/invalid/46-unknown-need.toml",
        "tests/fixtures/invalid/49-cycle-three.toml",
        "tests/fixtures/invalid/07-unknown-key-neeeds.toml",
    ]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("error: 3 problems in 3 files; nothing was run"), "{}", out.stderr);
}

#[test]
fn a_missing_file_is_an_io_error() {
    let out = run(&["check", "tests/fixtures/no-such-file.toml"]);
    assert_eq!(out.code, 3);
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["check"]).code, 2);
    assert_eq!(run(&["plan", "x.toml", "-p", "novalue"]).code, 2);
    assert_eq!(run(&["frobnicate"]).code, 2);
}
