//! Issue 14 point 9, "smaller": the rough edges an operator meets around a run, each through
//! the real binary.

use crate::support::{Output, run_in};

fn rb(dir: &std::path::Path, args: &[&str]) -> Output {
    let state = dir.join("state/state.db");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--state", state.to_str().unwrap_or_default()]);
    run_in(dir, &all)
}

/// `runs` on a store that does not exist yet lists no runs (exit 0) in every format and
/// creates nothing; `audit verify` of every run has nothing to verify; a run id asked of it is
/// unknown (exit 3, as in an existing store), said as such.
#[test]
fn a_new_store_has_no_runs_and_that_is_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = rb(dir.path(), &["runs"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(text.stdout, "", "{text:?}");
    assert!(text.stderr.contains("no runs yet"), "{text:?}");
    let json = rb(dir.path(), &["runs", "--format", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json.stdout).ok(),
        Some(serde_json::json!([])),
        "{json:?}"
    );
    let verify = rb(dir.path(), &["audit", "verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    // Reading created no store.
    assert!(!dir.path().join("state").exists());
    for cmd in [&["show", "nope"][..], &["logs", "nope"], &["audit", "nope"], &["report", "nope"]] {
        let out = rb(dir.path(), cmd);
        assert_eq!(out.code, 3, "{cmd:?}: {out:?}");
        assert!(out.stderr.contains("no run `nope`"), "{cmd:?}: {out:?}");
        assert!(out.stderr.contains("no state store at"), "{cmd:?}: {out:?}");
    }
}
