//! Promise 1 (issue 11): nothing the journal records as completed runs again, and a unit
//! in doubt (started, no end record) runs again only if declared idempotent or by an
//! operator's journaled decision. Through the real binary, on SQLite and PostgreSQL.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runbook_sandbox::peers::Postgres;

use crate::support::{Output, ok, run_in_with_env};

/// A folder with `r.toml` and a state store: a SQLite file, or a throwaway PostgreSQL cluster.
pub(crate) struct Place {
    dir: tempfile::TempDir,
    state: String,
    _pg: Option<Postgres>,
}

impl Place {
    pub(crate) fn sqlite(runbook: &str) -> Place {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
        let state = dir.path().join("state.db").display().to_string();
        Place { dir, state, _pg: None }
    }

    pub(crate) fn postgres(runbook: &str) -> Place {
        let pg = Postgres::start();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
        let place = Place { dir, state: pg.url("postgres"), _pg: Some(pg) };
        ok(&place.cmd(&["state", "migrate"]), 0);
        place
    }

    /// The state store (a path or a URL), for `--state`.
    pub(crate) fn state(&self) -> &str {
        &self.state
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_env(args, &[])
    }

    /// [`Place::cmd`] with extra environment variables.
    pub(crate) fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--state", &self.state]);
        let local = self.path().join("host").display().to_string();
        let mut vars = vec![("XDG_STATE_HOME", local.as_str())];
        vars.extend_from_slice(env);
        run_in_with_env(self.path(), &all, &vars)
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.spawn_env(args, &[])
    }

    /// [`Place::spawn`] with extra environment variables.
    pub(crate) fn spawn_env(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_runbook"))
            .envs(env.iter().copied())
            .args(args)
            .args(["--state", &self.state])
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_STATE")
            .env("XDG_STATE_HOME", self.path().join("host"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runbook")
    }

    pub(crate) fn latest_run(&self) -> String {
        let out = self.cmd(&["runs", "--format", "json"]);
        let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        runs[0]["run_id"].as_str().map(str::to_string).expect("a run")
    }

    pub(crate) fn journal(&self, run: &str) -> Vec<serde_json::Value> {
        self.cmd(&["audit", run, "--format", "jsonl"])
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub(crate) fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn verify(&self, run: &str) {
        ok(&self.cmd(&["audit", "verify", run]), 0);
    }
}

pub(crate) fn wait(child: Child) -> Output {
    Output::from(child.wait_with_output().expect("wait"))
}

/// How many records of `kind` (about `step`, if given) a journal holds.
pub(crate) fn count(journal: &[serde_json::Value], kind: &str, step: Option<&str>) -> usize {
    journal
        .iter()
        .filter(|r| r["event"]["kind"] == kind && step.is_none_or(|s| r["event"]["step"] == s))
        .count()
}

/// Start `children`; once all but one have exited, write `release` (the winner's step waits
/// for it, so every loser meets a live engine however slow the machine), then collect all.
fn race(place: &Place, mut children: Vec<Option<Child>>, context: &str) -> Vec<Output> {
    let n = children.len();
    let mut outs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while outs.len() < n - 1 && Instant::now() < deadline {
        for child in children.iter_mut() {
            if child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
                && let Some(c) = child.take()
            {
                outs.push(wait(c));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Past the deadline more than one engine is in the step: release them all, and the
    // count of side effects below says what went wrong.
    std::fs::write(place.path().join("release"), "").expect("release");
    outs.extend(children.into_iter().flatten().map(wait));
    assert_eq!(outs.len(), n, "{context}");
    outs
}

const AFTER_APPROVAL: &str = r#"[runbook]
name = "after-approval"

[steps.go]
approval = { prompt = "Go?" }

[steps.effect]
needs = ["go"]
run = "echo ran >> effects; while [ ! -e release ]; do sleep 0.02; done"
"#;

/// A run suspended at an approval, approved, then resumed by 2 to 4 engines at the same
/// moment: exactly one resumes it, the step after the approval runs once, the others exit 5
/// naming the holder.
fn concurrent_resumes_run_the_step_once(place: &Place, trials: usize) {
    for trial in 0..trials {
        let context = format!("trial {trial}");
        let _ = std::fs::remove_file(place.path().join("release"));
        let _ = std::fs::remove_file(place.path().join("effects"));
        ok(&place.cmd(&["run", "r.toml", "--yes"]), 4);
        let run = place.latest_run();
        ok(&place.cmd(&["approve", &run, "go", "--reason", "go"]), 0);
        let contenders = 2 + trial % 3;
        let children = (0..contenders).map(|_| Some(place.spawn(&["resume", &run, "--yes"]))).collect();
        let outs = race(place, children, &context);
        assert_eq!(place.lines("effects").len(), 1, "{context}: the step ran more than once: {outs:#?}");
        assert_eq!(outs.iter().filter(|o| o.code == 0).count(), 1, "{context}: {outs:#?}");
        for o in outs.iter().filter(|o| o.code != 0) {
            assert_eq!(o.code, 5, "{context}: {o:#?}");
            assert!(o.stderr.contains(&format!("held by run {run} (")), "{context}: {}", o.stderr);
        }
        let journal = place.journal(&run);
        assert_eq!(count(&journal, "run_resumed", None), 1, "{context}: {journal:#?}");
        assert_eq!(count(&journal, "step_started", Some("effect")), 1, "{context}");
        place.verify(&run);
    }
}

fn trials(default: usize) -> usize {
    std::env::var("RUNBOOK_RESUME_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(default)
}

#[test]
fn concurrent_resumes_on_sqlite_run_the_step_after_an_approval_once() {
    concurrent_resumes_run_the_step_once(&Place::sqlite(AFTER_APPROVAL), trials(30));
}

#[test]
fn concurrent_resumes_on_postgres_run_the_step_after_an_approval_once() {
    concurrent_resumes_run_the_step_once(&Place::postgres(AFTER_APPROVAL), trials(30));
}

const BLOCKING: &str = r#"[runbook]
name = "blocking"

[steps.effect]
run = "echo ran >> effects; while [ ! -e release ]; do sleep 0.02; done"
"#;

/// The hidden `run --run-id` (workers) against a run that is alive: refused with exit 5
/// naming the holder; the live run is not disturbed.
fn run_id_of_a_live_run_is_not_taken_over(place: &Place) {
    let first = place.spawn(&["run", "r.toml", "--yes", "--run-id", "r-live"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while place.lines("effects").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = place.cmd(&["run", "r.toml", "--yes", "--run-id", "r-live"]);
    std::fs::write(place.path().join("release"), "").expect("release");
    let first = wait(first);
    ok(&second, 5);
    assert!(second.stderr.contains("held by run r-live ("), "{}", second.stderr);
    ok(&first, 0);
    assert_eq!(place.lines("effects").len(), 1);
    let journal = place.journal("r-live");
    assert_eq!(count(&journal, "run_started", None), 1, "{journal:#?}");
    place.verify("r-live");
    // Once finished, the id is not reused either: a run id names one run.
    let again = place.cmd(&["run", "r.toml", "--yes", "--run-id", "r-live"]);
    ok(&again, 5);
    assert_eq!(place.lines("effects").len(), 1);
}

#[test]
fn run_with_the_id_of_a_live_run_on_sqlite_is_refused() {
    run_id_of_a_live_run_is_not_taken_over(&Place::sqlite(BLOCKING));
}

#[test]
fn run_with_the_id_of_a_live_run_on_postgres_is_refused() {
    run_id_of_a_live_run_is_not_taken_over(&Place::postgres(BLOCKING));
}

#[test]
fn finally_steps_that_succeeded_do_not_run_again_when_a_failed_run_is_resumed() {
    let place = Place::sqlite(
        r#"[runbook]
name = "fin"

[steps.flaky]
run = "test -e fixed"
on-failure = "stop"

[finally.cleanup]
run = "echo cleanup >> effects"
"#,
    );
    ok(&place.cmd(&["run", "r.toml", "--yes"]), 1);
    assert_eq!(place.lines("effects"), ["cleanup"]);
    let run = place.latest_run();
    std::fs::write(place.path().join("fixed"), "").expect("fix");
    ok(&place.cmd(&["resume", &run, "--yes"]), 0);
    assert_eq!(place.lines("effects"), ["cleanup"], "the finally step ran again");
    place.verify(&run);
}

/// Kills its engine (the parent of the shell) the first time, after its side effect.
pub(crate) const KILL_ENGINE_ONCE: &str = "if [ ! -e killed ]; then touch killed; kill -9 $PPID; sleep 5; fi";

#[test]
fn a_finally_step_in_doubt_that_the_operator_skips_does_not_run() {
    let place = Place::sqlite(&format!(
        r#"[runbook]
name = "fin"

[steps.work]
run = "true"

[finally.cleanup]
run = "echo cleanup >> effects; {KILL_ENGINE_ONCE}"
"#
    ));
    let out = place.cmd(&["run", "r.toml", "--yes"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(place.lines("effects"), ["cleanup"]);
    let run = place.latest_run();
    let out = place.cmd(&["resume", &run, "--yes"]);
    ok(&out, 4);
    assert!(out.stderr.contains("cleanup"), "{}", out.stderr);
    ok(&place.cmd(&["resume", &run, "--yes", "--skip", "cleanup", "--reason", "it ran"]), 0);
    assert_eq!(place.lines("effects"), ["cleanup"], "a skipped finally step ran again");
    let journal = place.journal(&run);
    assert_eq!(count(&journal, "step_started", Some("cleanup")), 1, "{journal:#?}");
    assert_eq!(count(&journal, "operator_decision", Some("cleanup")), 1);
    place.verify(&run);
}

pub(crate) fn compensating(idempotent: bool) -> String {
    format!(
        r#"[runbook]
name = "undo"

[steps.change]
run = "echo change >> effects"
compensate = {{ run = "echo undo >> effects; {KILL_ENGINE_ONCE}"{} }}

[steps.boom]
run = "exit 1"
"#,
        if idempotent { ", idempotent = true" } else { "" }
    )
}

#[test]
fn a_compensation_in_doubt_waits_for_the_operator() {
    let place = Place::sqlite(&compensating(false));
    let out = place.cmd(&["run", "r.toml", "--yes"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(place.lines("effects"), ["change", "undo"]);
    let run = place.latest_run();
    let out = place.cmd(&["compensate", &run, "--yes"]);
    ok(&out, 4);
    assert!(out.stderr.contains("change"), "{}", out.stderr);
    assert!(out.stderr.contains("--reason"), "{}", out.stderr);
    assert_eq!(place.lines("effects"), ["change", "undo"], "a compensation in doubt ran again");
    // The operator checked by hand: it ran. Skipped, journaled, never run again.
    let out = place.cmd(&["compensate", &run, "--yes", "--skip", "change", "--reason", "undone by hand"]);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    assert_eq!(place.lines("effects"), ["change", "undo"]);
    let journal = place.journal(&run);
    assert_eq!(count(&journal, "compensation_started", Some("change")), 1, "{journal:#?}");
    assert_eq!(count(&journal, "compensation_decision", Some("change")), 1, "{journal:#?}");
    place.verify(&run);
}

#[test]
fn a_compensation_in_doubt_is_rerun_on_the_operator_s_decision() {
    let place = Place::sqlite(&compensating(false));
    assert_ne!(place.cmd(&["run", "r.toml", "--yes"]).code, 0);
    let run = place.latest_run();
    let out = place.cmd(&["compensate", &run, "--yes", "--rerun", "change", "--reason", "it did not run"]);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    assert_eq!(place.lines("effects"), ["change", "undo", "undo"]);
    let journal = place.journal(&run);
    assert_eq!(count(&journal, "compensation_decision", Some("change")), 1, "{journal:#?}");
    assert_eq!(count(&journal, "compensation_succeeded", Some("change")), 1, "{journal:#?}");
    place.verify(&run);
}

#[test]
fn an_idempotent_compensation_in_doubt_runs_again() {
    let place = Place::sqlite(&compensating(true));
    // The reviewer sees it in the plan.
    let plan = run_in_with_env(place.path(), &["plan", "r.toml"], &[]);
    ok(&plan, 0);
    assert!(plan.stdout.contains("idempotent: runs again by itself if the engine dies"), "{}", plan.stdout);
    assert_ne!(place.cmd(&["run", "r.toml", "--yes"]).code, 0);
    let run = place.latest_run();
    let out = place.cmd(&["compensate", &run, "--yes"]);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    assert_eq!(place.lines("effects"), ["change", "undo", "undo"]);
    // Done: never again.
    let _ = place.cmd(&["compensate", &run, "--yes"]);
    assert_eq!(place.lines("effects"), ["change", "undo", "undo"]);
    place.verify(&run);
}
