//! `for-each` on `[finally]` steps (issue 17, i18-fei): each element is a `finally` step of
//! its own, `STEP[ELEMENT]`, run as `finally` steps are (always, after success or failure,
//! one after the other in declaration order), journaled under its own id, and resumed
//! under promise 1 (a completed instance never runs again; one caught in flight runs again
//! only if idempotent, else waits for an operator's decision).

use crate::support::{Scratch, ok, run_in};

/// A runbook whose main step `work` runs `work` and whose `finally` step `cleanup` runs once
/// per host, appending `cleanup HOST` to `trace`, then `shell` (more shell, may be empty).
fn finally_runbook(work: &str, shell: &str, idempotent: bool) -> String {
    format!(
        r#"[runbook]
name = "fin"

[params.hosts]
type = "list"
default = ["a", "b", "c"]

[steps.work]
run = "{work}"

[finally.cleanup]
for-each = "hosts"
{}run = "echo cleanup {{{{ item }}}} >> trace; {shell}"

[finally.last]
needs = ["cleanup"]
run = "echo last >> trace"
"#,
        if idempotent { "idempotent = true\n" } else { "" }
    )
}

fn lines(place: &Scratch, file: &str) -> Vec<String> {
    place.read(file).lines().map(str::to_string).collect()
}

fn started(place: &Scratch, run: &str) -> Vec<String> {
    place.events(run).into_iter().filter(|(k, _)| k == "step_started").map(|(_, s)| s).collect()
}

/// Kills its engine (the shell's parent) when the element is `b`, the first time only.
const KILL_IN_B: &str =
    "if [ {{ item }} = b ] && [ ! -e killed ]; then touch killed; kill -9 $PPID; sleep 5; fi";

#[test]
fn finally_for_each_runs_every_instance_after_success_and_after_failure() {
    for (work, code) in [("echo work >> trace", 0), ("echo work >> trace; exit 1", 1)] {
        let place = Scratch::new(&finally_runbook(work, "true", false));
        let plan = run_in(place.path(), &["plan", "r.toml", "--format", "json"]);
        ok(&plan, 0);
        let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
        let ids: Vec<&str> =
            json["finally"].as_array().expect("finally").iter().filter_map(|s| s["id"].as_str()).collect();
        assert_eq!(ids, ["cleanup[a]", "cleanup[b]", "cleanup[c]", "last"], "{}", plan.stdout);
        assert_eq!(
            json["finally"][3]["needs"],
            serde_json::json!(["cleanup[a]", "cleanup[b]", "cleanup[c]"])
        );

        let out = place.run(&["--yes"], &[]);
        assert_eq!(out.code != 0, code != 0, "{work}: {}{}", out.stdout, out.stderr);
        assert_eq!(lines(&place, "trace"), ["work", "cleanup a", "cleanup b", "cleanup c", "last"], "{work}");
        let run = place.latest_run();
        assert_eq!(
            started(&place, &run),
            ["work", "cleanup[a]", "cleanup[b]", "cleanup[c]", "last"],
            "{work}"
        );
    }
}

/// SIGKILL inside the second instance: the first never runs again; the second, not
/// idempotent, waits for an operator's decision named by its instance id.
#[test]
fn a_run_killed_in_a_finally_instance_waits_for_an_operator() {
    let place = Scratch::new(&finally_runbook("true", KILL_IN_B, false));
    let out = place.run(&["--yes"], &[]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert_eq!(lines(&place, "trace"), ["cleanup a", "cleanup b"]);
    let run = place.latest_run();

    let waits = place.cmd(&["resume", &run, "--yes"], &[]);
    ok(&waits, 4);
    assert!(waits.stderr.contains("cleanup[b]"), "{}", waits.stderr);
    assert_eq!(lines(&place, "trace"), ["cleanup a", "cleanup b"], "an instance in doubt ran again");

    let done = place.cmd(&["resume", &run, "--yes", "--rerun", "cleanup[b]", "--reason", "checked b"], &[]);
    ok(&done, 0);
    assert_eq!(lines(&place, "trace"), ["cleanup a", "cleanup b", "cleanup b", "cleanup c", "last"]);
    let starts = started(&place, &run);
    assert_eq!(starts.iter().filter(|s| *s == "cleanup[a]").count(), 1, "{starts:?}");
}

/// The same crash with `idempotent = true`: the resume runs the instance again by itself.
#[test]
fn an_idempotent_finally_instance_caught_in_flight_runs_again_on_resume() {
    let place = Scratch::new(&finally_runbook("true", KILL_IN_B, true));
    let out = place.run(&["--yes"], &[]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let run = place.latest_run();
    ok(&place.cmd(&["resume", &run, "--yes"], &[]), 0);
    assert_eq!(lines(&place, "trace"), ["cleanup a", "cleanup b", "cleanup b", "cleanup c", "last"]);
}

/// The text plan lists each `finally` instance with its own element.
#[test]
fn the_plan_lists_each_finally_instance() {
    let place = Scratch::new(&finally_runbook("true", "true", false));
    let plan = run_in(place.path(), &["plan", "r.toml"]);
    ok(&plan, 0);
    let tail = plan.stdout.split_once("Finally").map(|(_, t)| t.to_string()).unwrap_or_default();
    insta::assert_snapshot!(tail);
}
