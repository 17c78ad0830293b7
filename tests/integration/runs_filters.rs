//! `runbook runs --runbook NAME --status S --operator O --since WHEN --limit N` (issue 17):
//! the same seeded history on a SQLite file and on a real PostgreSQL cluster, filtered by
//! the store's query. Recent runs are made by the binary; the old ones through the store's
//! own API (`Store::start_run` and `Store::append`, hash-chained like any run), never by
//! editing rows behind the chain.

use std::path::Path;

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_sandbox::peers::Postgres;
use runbook_store::{Location, NewRun, Store};

use crate::support::{Output, run_in_with_env};

const ALPHA: &str = "[runbook]\nname = \"alpha\"\n[steps.hello]\nrun = \"echo hello\"\n";
const BETA: &str = "[runbook]\nname = \"beta\"\n[steps.boom]\nrun = \"exit 1\"\n";

/// `runbook ARGS --state STATE` from `dir`.
fn rb(dir: &Path, state: &str, args: &[&str], who: &str) -> Output {
    let mut all = args.to_vec();
    all.extend(["--state", state]);
    let local = dir.join("host").display().to_string();
    run_in_with_env(dir, &all, &[("XDG_STATE_HOME", &local), ("RUNBOOK_OPERATOR", who)])
}

/// An old run written through the store's API: `run_started` at `at`, `run_finished` an
/// hour later (same day), chained like every journal.
fn old_run(state: &str, id: &str, runbook: &str, operator: &str, at: &str, status: RunStatus) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = Store::open(&Location::parse(state)).await.expect("open");
        let started = RunEvent::RunStarted {
            runbook: runbook.into(),
            file: String::new(),
            files: Vec::new(),
            params: Default::default(),
            operator: operator.into(),
            engine_version: "seed".into(),
            submitted_by: None,
            log_digests: false,
            report: Default::default(),
        };
        let run = NewRun { run_id: id, runbook, operator, started_at: at, lock_name: None };
        store.start_run(&run, &[started], None).await.expect("start");
        let end = at.replacen("T10:", "T11:", 1);
        let finished = RunEvent::RunFinished { status, preconditions: Vec::new() };
        store.append(id, &end, &finished, None).await.expect("finish");
    });
}

/// The seeded history: recent runs of `alpha` (ana, succeeded) and `beta` (bob, failed),
/// an old `alpha` (ana, 2020-01-01), an old `beta` (carol, 2020-01-02), a queued `alpha`
/// submitted by dan and a `beta` submitted and cancelled by erin.
fn seed(dir: &Path, state: &str) {
    std::fs::write(dir.join("alpha.toml"), ALPHA).expect("alpha");
    std::fs::write(dir.join("beta.toml"), BETA).expect("beta");
    old_run(
        state,
        "20200101T100000Z-0ld0a1fa",
        "alpha",
        "ana",
        "2020-01-01T10:00:00.000Z",
        RunStatus::Succeeded,
    );
    old_run(
        state,
        "20200102T100000Z-0ld0be7a",
        "beta",
        "carol",
        "2020-01-02T10:00:00.000Z",
        RunStatus::Failed,
    );
    let a = rb(dir, state, &["run", "alpha.toml"], "ana");
    assert_eq!(a.code, 0, "{}{}", a.stdout, a.stderr);
    let b = rb(dir, state, &["run", "beta.toml"], "bob");
    assert_ne!(b.code, 0, "beta fails: {}{}", b.stdout, b.stderr);
    let q = rb(dir, state, &["submit", "alpha.toml", "--yes"], "dan");
    assert_eq!(q.code, 0, "{}{}", q.stdout, q.stderr);
    let c = rb(dir, state, &["submit", "beta.toml", "--yes"], "erin");
    assert_eq!(c.code, 0, "{}{}", c.stdout, c.stderr);
    let id = c.stdout.split_whitespace().find(|w| w.contains('T') && w.contains('-')).expect("the run id");
    let cancelled = rb(dir, state, &["cancel", id, "--reason", "not today"], "erin");
    assert_eq!(cancelled.code, 0, "{}{}", cancelled.stdout, cancelled.stderr);
}

/// `runs --format json ARGS`: each listed run as `runbook/status/operator`, newest first.
fn listed(dir: &Path, state: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["runs", "--format", "json"];
    all.extend(args);
    let out = rb(dir, state, &all, "reader");
    assert_eq!(out.code, 0, "runs {args:?}: {}{}", out.stdout, out.stderr);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    runs.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}",
                r["runbook"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("?"),
                r["operator"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn filters_filter(dir: &Path, state: &str) {
    seed(dir, state);
    let all = listed(dir, state, &[]);
    assert_eq!(
        all,
        [
            "beta/cancelled/erin",
            "alpha/queued/dan",
            "beta/failed/bob",
            "alpha/succeeded/ana",
            "beta/failed/carol",
            "alpha/succeeded/ana"
        ],
        "everything, newest first (the default lists every run, as before)"
    );
    assert_eq!(
        listed(dir, state, &["--runbook", "alpha"]),
        ["alpha/queued/dan", "alpha/succeeded/ana", "alpha/succeeded/ana"]
    );
    assert_eq!(listed(dir, state, &["--status", "failed"]), ["beta/failed/bob", "beta/failed/carol"]);
    assert_eq!(
        listed(dir, state, &["--status", "queued", "--status", "succeeded"]),
        ["alpha/queued/dan", "alpha/succeeded/ana", "alpha/succeeded/ana"],
        "--status repeats"
    );
    assert_eq!(
        listed(dir, state, &["--status", "queued,failed"]),
        ["alpha/queued/dan", "beta/failed/bob", "beta/failed/carol"]
    );
    assert_eq!(listed(dir, state, &["--operator", "bob"]), ["beta/failed/bob"]);
    assert_eq!(
        listed(dir, state, &["--operator", "dan"]),
        ["alpha/queued/dan"],
        "a submitted run is its submitter's"
    );
    let recent = ["beta/cancelled/erin", "alpha/queued/dan", "beta/failed/bob", "alpha/succeeded/ana"];
    assert_eq!(listed(dir, state, &["--since", "7d"]), recent);
    assert_eq!(listed(dir, state, &["--since", "90m"]), recent);
    assert_eq!(listed(dir, state, &["--status", "cancelled"]), ["beta/cancelled/erin"]);
    assert_eq!(
        listed(dir, state, &["--status", "refused"]),
        Vec::<String>::new(),
        "cancelled is not refused"
    );
    assert_eq!(
        listed(dir, state, &["--since", "2020-01-01T12:00:00Z"]),
        [
            "beta/cancelled/erin",
            "alpha/queued/dan",
            "beta/failed/bob",
            "alpha/succeeded/ana",
            "beta/failed/carol"
        ],
        "an RFC 3339 time"
    );
    assert_eq!(
        listed(dir, state, &["--since", "2020-01-01T11:00:00+01:00"]),
        all,
        "an offset is honoured (10:00Z is not before it)"
    );
    assert_eq!(listed(dir, state, &["--limit", "2"]), ["beta/cancelled/erin", "alpha/queued/dan"]);
    assert_eq!(listed(dir, state, &["--limit", "1", "--status", "failed"]), ["beta/failed/bob"]);
    assert_eq!(
        listed(dir, state, &["--runbook", "alpha", "--status", "succeeded", "--since", "7d"]),
        ["alpha/succeeded/ana"],
        "filters combine"
    );
    assert_eq!(
        listed(dir, state, &["--runbook", "gamma"]),
        Vec::<String>::new(),
        "no match is an empty list"
    );

    // The table says the same, and says when nothing matched.
    let text = rb(dir, state, &["runs", "--operator", "carol"], "reader");
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert_eq!(text.stdout.lines().count(), 2, "a header and carol's run: {}", text.stdout);
    assert!(text.stdout.contains("beta") && text.stdout.contains("carol"), "{}", text.stdout);
    let none = rb(dir, state, &["runs", "--runbook", "gamma"], "reader");
    assert_eq!(none.code, 0);
    assert!(none.stderr.contains("no runs match"), "{}{}", none.stdout, none.stderr);
}

/// Every combination of filters (runbooks, statuses, operators, times, limits that match
/// and that do not) lists exactly the unfiltered list narrowed by the same rules: the
/// store's query and the list as a reader would filter it agree.
fn every_combination_agrees(dir: &Path, state: &str) {
    let out = rb(dir, state, &["runs", "--format", "json"], "reader");
    let all: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(all.len(), 6);
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let mut checked = 0;
    for runbook in [None, Some("alpha"), Some("beta"), Some("gamma")] {
        for status in [
            None,
            Some("failed"),
            Some("succeeded"),
            Some("queued"),
            Some("cancelled"),
            Some("failed,queued"),
        ] {
            for operator in [None, Some("ana"), Some("bob"), Some("erin"), Some("nobody")] {
                // `7d` keeps this year's runs: every run made by the binary, none of 2020.
                for (since, cutoff) in [
                    (None, ""),
                    (Some("7d"), "2021"),
                    (Some("2020-01-01T12:00:00Z"), "2020-01-01T12:00:00.000Z"),
                ] {
                    for limit in [None, Some("2")] {
                        let mut args: Vec<&str> = Vec::new();
                        let mut add = |flag: &'static str, v: Option<&'static str>| {
                            if let Some(v) = v {
                                args.extend([flag, v]);
                            }
                        };
                        add("--runbook", runbook);
                        add("--status", status);
                        add("--operator", operator);
                        add("--since", since);
                        add("--limit", limit);
                        let expected: Vec<String> = all
                            .iter()
                            .filter(|r| runbook.is_none_or(|v| field(r, "runbook") == v))
                            .filter(|r| status.is_none_or(|v| v.split(',').any(|s| field(r, "status") == s)))
                            .filter(|r| operator.is_none_or(|v| field(r, "operator") == v))
                            .filter(|r| field(r, "started_at").as_str() >= cutoff)
                            .take(limit.map_or(usize::MAX, |n| n.parse().unwrap_or(0)))
                            .map(|r| field(r, "run_id"))
                            .collect();
                        let mut all_args = vec!["runs", "--format", "json"];
                        all_args.extend(&args);
                        let got = rb(dir, state, &all_args, "reader");
                        assert_eq!(got.code, 0, "{args:?}: {}", got.stderr);
                        let got: Vec<serde_json::Value> = serde_json::from_str(&got.stdout).expect("json");
                        let got: Vec<String> = got.iter().map(|r| field(r, "run_id")).collect();
                        assert_eq!(got, expected, "runs {args:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 720);
}

#[test]
fn runs_filters_filter_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.db").display().to_string();
    filters_filter(dir.path(), &state);
    every_combination_agrees(dir.path(), &state);
}

#[test]
fn runs_filters_filter_on_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url("postgres");
    let migrated = rb(dir.path(), &url, &["state", "migrate"], "admin");
    assert_eq!(migrated.code, 0, "{}{}", migrated.stdout, migrated.stderr);
    filters_filter(dir.path(), &url);
    every_combination_agrees(dir.path(), &url);
}

/// Bad filter values are refused before the store is opened, each with what is accepted.
#[test]
fn runs_filters_refuse_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap_or_default();
    let mut seen = String::new();
    for args in [
        &["runs", "--status", "done"][..],
        &["runs", "--status", "NEEDS_OPERATOR"][..],
        &["runs", "--limit", "0"][..],
        &["runs", "--limit", "-3"][..],
        &["runs", "--since", "yesterday"][..],
        &["runs", "--since", "2026-13-40T00:00:00Z"][..],
        &["runs", "--since", "99999999999d"][..],
    ] {
        let out = rb(dir.path(), state, args, "reader");
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        seen.push_str(&format!("$ runbook {}\n{}\n", args.join(" "), out.stderr.trim_end()));
    }
    assert!(!Path::new(state).exists(), "a refused command creates no store");
    insta::assert_snapshot!(seen);
}

/// `--watch` with a filter that matches nothing says so (not "no runs yet": there are runs).
#[test]
fn a_watched_filter_that_matches_nothing_says_so() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.db").display().to_string();
    std::fs::write(dir.path().join("alpha.toml"), ALPHA).expect("alpha");
    assert_eq!(rb(dir.path(), &state, &["run", "alpha.toml"], "ana").code, 0);
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["runs", "--watch", "--runbook", "gamma", "--state", &state])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut first).expect("a line");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first, "no runs match\n");
}
