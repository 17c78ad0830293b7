//! `--as` is offered only by the commands that record who ran them (issue 17): the others
//! accept it (a wrapper that binds `--as` to the SSO user passes it to every command) but
//! do not show it.

use crate::support::run;

/// The commands that journal or record an identity (`engine/cli/identity.rs` callers).
const RECORDING: [&str; 9] =
    ["run", "submit", "cancel", "worker", "resume", "compensate", "approve", "reject", "abandon"];

/// The ones that record none.
const READING: [&str; 13] = [
    "check",
    "plan",
    "runs",
    "show",
    "logs",
    "report",
    "audit",
    "schema",
    "state",
    "serve",
    "schedules",
    "audit verify",
    "state migrate",
];

fn help(command: &str) -> String {
    let mut args: Vec<&str> = command.split(' ').filter(|a| !a.is_empty()).collect();
    args.push("--help");
    let out = run(&args);
    assert_eq!(out.code, 0, "{command} --help: {}", out.stderr);
    out.stdout
}

#[test]
fn as_is_shown_only_where_an_identity_is_recorded() {
    for c in RECORDING {
        assert!(help(c).contains("--as <IDENTITY>"), "`runbook {c} --help` lacks --as:\n{}", help(c));
    }
    for c in READING {
        assert!(!help(c).contains("--as <"), "`runbook {c} --help` shows --as:\n{}", help(c));
    }
    assert!(!help("").contains("--as <"), "the top-level help shows --as");
}

#[test]
fn as_is_still_accepted_by_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap_or_default();
    for args in [
        &["check", "examples/health-check.toml", "--as", "ana"][..],
        &["--as", "ana", "schema"][..],
        &["runs", "--as", "ana", "--state", state][..],
        &["audit", "verify", "--as", "ana", "--state", state][..],
    ] {
        let out = run(args);
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    }
}
