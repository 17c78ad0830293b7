//! `runbook run`: real processes, a real SQLite state store in a temp dir.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::Output;

use crate::support::Scratch as Sandbox;

/// Start `runbook run r.toml` in the background and wait until `marker` exists.
fn spawn_until(sb: &Sandbox, marker: &str, output: Stdio) -> std::process::Child {
    let state = sb.path().join("state/state.db");
    let child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "r.toml", "--state", state.to_str().unwrap_or_default()])
        .current_dir(sb.path())
        .stdout(output)
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    for _ in 0..500 {
        if sb.path().join(marker).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[test]
fn a_run_executes_the_dag_passes_outputs_and_runs_finally() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "basic"
[params.who]
type = "string"
default = "it's me"
[steps.a]
run = "echo a >> trace; echo name={{ params.who }} >> \"$RUNBOOK_OUTPUT\""
outputs = ["name"]
[steps.b]
needs = ["a"]
cmd = ["sh", "-c", "echo \"b got $1\" >> trace", "sh", "{{ steps.a.outputs.name }}"]
[steps.c]
needs = []
run = "echo c >> trace"
[steps.skipped]
needs = ["b"]
when = "params.who == 'nobody'"
run = "echo skipped >> trace"
[steps.after_skip]
needs = ["skipped"]
run = "echo after_skip >> trace"
[finally.report]
run = "echo finally {{ run.status }} >> trace"
"#,
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let trace = sb.read("trace");
    assert!(trace.contains("b got it's me\n"), "{trace}");
    assert!(!trace.contains("skipped\n"), "a `when = false` step ran: {trace}");
    assert!(trace.contains("after_skip\n"), "a skipped step must count as satisfied: {trace}");
    assert!(trace.ends_with("finally succeeded\n"), "{trace}");
    let a = trace.find("a\n").unwrap_or(usize::MAX);
    let b = trace.find("b got").unwrap_or(0);
    assert!(a < b, "b ran before the step it needs: {trace}");
    assert!(out.stdout.contains("skip skipped: `when` is false"), "{}", out.stdout);
    assert!(out.stdout.contains("journal hash "));
}

#[test]
fn retries_count_every_attempt_and_honour_exit_codes() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "retries"
[steps.flaky]
run = "echo x >> attempts; test $(wc -l < attempts) -ge 3"
retry = { attempts = 5, delay = "10ms" }
[steps.wrong_code]
needs = []
run = "echo x >> wrong; exit 1"
retry = { attempts = 5, delay = "10ms", on-exit-codes = [75] }
on-failure = "continue"
"#,
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(sb.read("attempts").lines().count(), 3, "flaky needed exactly 3 attempts");
    assert_eq!(sb.read("wrong").lines().count(), 1, "exit 1 is not in on-exit-codes: no retry");
}

#[test]
fn a_failure_compensates_completed_steps_in_reverse_order() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "saga"
[steps.one]
run = "echo do one >> trace"
compensate = { run = "echo undo one >> trace" }
[steps.two]
run = "echo do two >> trace"
compensate = { run = "echo undo two >> trace" }
[steps.three]
run = "echo do three >> trace"
[steps.boom]
run = "echo boom >> trace; exit 7"
[steps.never]
run = "echo never >> trace"
[finally.last]
run = "echo finally {{ run.status }} >> trace"
"#,
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        sb.read("trace"),
        "do one\ndo two\ndo three\nboom\nundo two\nundo one\nfinally failed\n",
        "{}",
        out.stdout
    );
}

#[test]
fn a_failed_compensation_needs_an_operator() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "saga"
[steps.one]
run = "true"
compensate = { run = "exit 3" }
[steps.boom]
run = "exit 1"
"#,
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("UNDO FAILED one"), "{}", out.stdout);
    assert!(out.stdout.contains("needs_operator"), "{}", out.stdout);
}

#[test]
fn stop_ends_without_compensating() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "stop"
[steps.one]
run = "echo one >> trace"
compensate = { run = "echo undo >> trace" }
[steps.boom]
run = "exit 1"
on-failure = "stop"
"#,
    );
    assert_eq!(sb.run(&[], &[]).code, 1);
    assert_eq!(sb.read("trace"), "one\n");
}

#[test]
fn a_timeout_fails_the_step_and_kills_its_process_group() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "slow"
[steps.slow]
run = "sleep 1000 & echo $! > pid; wait"
timeout = "300ms"
"#,
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAILED slow: timed out"), "{}", out.stdout);
    let pid: i32 = sb.read("pid").trim().parse().expect("pid");
    std::thread::sleep(Duration::from_millis(300));
    let state = runbook_exec::process::process_state(pid).map(|(s, _)| s);
    assert!(matches!(state, None | Some('Z') | Some('X')), "grandchild {pid} survived: {state:?}");
}

#[test]
fn a_missing_declared_output_fails_the_step() {
    let sb = Sandbox::new("[runbook]\nname = \"o\"\n[steps.a]\nrun = \"true\"\noutputs = [\"file\"]\n");
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("declared output(s) missing from $RUNBOOK_OUTPUT: file"), "{}", out.stdout);
}

#[test]
fn failing_preconditions_run_nothing() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "pre"
[preconditions.first]
run = "exit 1"
message = "first check failed"
[preconditions.second]
cmd = ["false"]
message = "second check failed"
[steps.a]
run = "echo ran >> trace"
"#,
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("first check failed") && out.stderr.contains("second check failed"),
        "{}",
        out.stderr
    );
    assert_eq!(sb.read("trace"), "");
}

#[test]
fn secrets_reach_steps_through_env_and_are_redacted_everywhere() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "secret"
[secrets.TOKEN]
env = "SENTINEL_TOKEN"
[steps.leaky]
run = "echo token=$TOKEN; echo $TOKEN | base64; echo \"out=$TOKEN\" >> \"$RUNBOOK_OUTPUT\"; test -z \"${SENTINEL_TOKEN:-}\""
env = { TOKEN = "{{ secrets.TOKEN }}" }
outputs = ["out"]
[steps.other]
run = "test -z \"${SENTINEL_TOKEN:-}\" && test -z \"${TOKEN:-}\""
"#,
    );
    let secret = "s3cr3t-Sentinel-9f8e7d";
    let out = sb.run(&[], &[("SENTINEL_TOKEN", secret)]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("token=<secret:TOKEN>"), "{}", out.stdout);
    let b64 = "czNjcjN0LVNlbnRpbmVsLTlmOGU3ZA";
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(secret) && !text.contains(b64), "secret leaked: {text}");
    }
    // Nothing under the state folder (database, WAL, logs, outputs) holds the value.
    for path in crate::support::files(&sb.path().join("state"), "") {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(secret) && !text.contains(b64), "secret in {}", path.display());
    }
}

#[test]
fn a_missing_secret_stops_before_anything_runs() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"s\"\n[secrets.DB]\nenv = \"NOT_SET_ANYWHERE_42\"\n[steps.a]\nrun = \"echo ran >> trace\"\nenv = { DB = \"{{ secrets.DB }}\" }\n",
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("secret `DB`: environment variable `NOT_SET_ANYWHERE_42` is not set"),
        "{}",
        out.stderr
    );
    assert_eq!(sb.read("trace"), "");
}

#[test]
fn confirm_without_a_terminal_needs_yes() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"c\"\n[steps.push]\nconfirm = \"Push?\"\nrun = \"echo pushed >> trace\"\n",
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("--yes"));
    assert_eq!(sb.read("trace"), "");
    assert_eq!(sb.run(&["--yes"], &[]).code, 0);
    assert_eq!(sb.read("trace"), "pushed\n");
}

#[test]
fn steps_that_cannot_run_yet_are_refused_up_front() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"h\"\n[steps.a]\nrun = \"echo ran >> trace\"\n[finally.ok]\napproval = { prompt = \"Done?\" }\n",
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("error[RB014]: `approval` is not allowed on finally step `ok`"),
        "{}",
        out.stderr
    );
    assert_eq!(sb.read("trace"), "");
}

#[test]
fn a_second_run_on_the_same_lock_is_refused() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "locked"
lock = "env-{{ params.env }}"
[params.env]
type = "string"
default = "prod"
[steps.hold]
run = "touch holding; sleep 3"
"#,
    );
    let mut first = spawn_until(&sb, "holding", Stdio::null());
    let second = sb.run(&[], &[]);
    assert_eq!(second.code, 5, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stderr.contains("lock `env-prod` is held by run"), "{}", second.stderr);
    // The refused run left no trace in the store.
    let state = sb.path().join("state/state.db");
    let runs = crate::support::run_in(
        sb.path(),
        &["runs", "--format", "json", "--state", state.to_str().unwrap_or_default()],
    );
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).expect("runs");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(first.wait().expect("first").code(), Some(0));
    // Released at the end: the next run gets it.
    assert_eq!(sb.run(&[], &[]).code, 0);
}

#[test]
fn sigterm_interrupts_the_run_and_ends_its_steps() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"long\"\n[steps.long]\nrun = \"echo $$ > pid; sleep 1000\"\n[steps.next]\nrun = \"echo next >> trace\"\n",
    );
    let child = spawn_until(&sb, "pid", Stdio::piped());
    // The pid file exists; wait until it has been written.
    for _ in 0..100 {
        if !sb.read("pid").is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("signal");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));
    assert_eq!(sb.read("trace"), "", "no new step starts after an interruption");
    let pid: i32 = sb.read("pid").trim().parse().expect("pid");
    std::thread::sleep(Duration::from_millis(300));
    let state = runbook_exec::process::process_state(pid).map(|(s, _)| s);
    assert!(matches!(state, None | Some('Z') | Some('X')), "step process {pid} survived: {state:?}");
}

/// Start `r.toml` in `sb`, SIGKILL the engine once `marker` exists; return the run id.
fn kill_when(sb: &Sandbox, marker: &str) -> String {
    let mut child = spawn_until(sb, marker, Stdio::null());
    let _ = child.kill();
    let _ = child.wait();
    sb.latest_run()
}

fn resume(sb: &Sandbox, args: &[&str]) -> Output {
    let state = sb.path().join("state/state.db");
    let mut all = vec!["resume"];
    all.extend_from_slice(args);
    all.extend(["--state", state.to_str().unwrap_or_default()]);
    crate::support::run_in(sb.path(), &all)
}

const IN_DOUBT: &str = "[runbook]\nname = \"doubt\"\n[steps.one]\nrun = \"echo one >> trace\"\n[steps.two]\nrun = \"touch started; sleep 1000; echo two >> trace\"\n[steps.three]\nrun = \"echo three >> trace\"\n";

#[test]
fn resume_waits_for_a_decision_about_a_non_idempotent_step_in_doubt() {
    let sb = Sandbox::new(IN_DOUBT);
    let id = kill_when(&sb, "started");
    let refused = resume(&sb, &[&id]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("not idempotent: two"), "{}", refused.stderr);
    assert_eq!(resume(&sb, &[&id, "--skip", "two"]).code, 2, "a decision needs a reason");
    assert_eq!(resume(&sb, &[&id, "--skip", "one", "--reason", "x"]).code, 2, "only steps in doubt");
    let done = resume(&sb, &[&id, "--skip", "two", "--reason", "done by hand"]);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(sb.read("trace"), "one\nthree\n", "one ran once, two was skipped, three ran");
    let state = sb.path().join("state/state.db");
    let audit = crate::support::run_in(
        sb.path(),
        &["audit", &id, "--format", "jsonl", "--state", state.to_str().unwrap_or_default()],
    );
    let decision =
        audit.stdout.lines().find(|l| l.contains("operator_decision")).unwrap_or_default().to_string();
    assert!(decision.contains("\"decision\":\"skip\"") && decision.contains("done by hand"), "{decision}");
    assert!(decision.contains("\"operator\":"), "{decision}");
    let again = resume(&sb, &[&id]);
    assert_eq!(again.code, 3, "a finished run cannot be resumed: {}", again.stderr);
}

#[test]
fn resume_refuses_a_runbook_that_changed() {
    let sb = Sandbox::new(IN_DOUBT);
    let id = kill_when(&sb, "started");
    std::fs::write(sb.path().join("r.toml"), IN_DOUBT.replace("echo three", "echo THREE")).expect("edit");
    let out = resume(&sb, &[&id, "--rerun", "two", "--reason", "x"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("changed since run"), "{}", out.stderr);
    assert_eq!(sb.read("trace"), "one\n");
}

#[test]
fn a_pinned_plan_runs_as_reviewed_or_not_at_all() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"pinned\"\n[params.n]\ntype = \"integer\"\ndefault = 1\n[params.who]\ntype = \"string\"\n[steps.a]\nrun = \"echo {{ params.who }} {{ params.n }} >> trace\"\n",
    );
    let plan = crate::support::run_in(
        sb.path(),
        &["plan", "r.toml", "-p", "who=ana", "-p", "n=7", "-o", "plan.json"],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let state = sb.path().join("state/state.db");
    let state = state.to_str().unwrap_or_default();
    let run = crate::support::run_in(sb.path(), &["run", "--plan", "plan.json", "--state", state]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(sb.read("trace"), "ana 7\n", "the planned parameter values were used");

    // Parameters come from the plan only.
    let mixed =
        crate::support::run_in(sb.path(), &["run", "--plan", "plan.json", "-p", "who=x", "--state", state]);
    assert_eq!(mixed.code, 2);

    // A changed runbook: refused, saying what changed, and nothing runs.
    let edited = std::fs::read_to_string(sb.path().join("r.toml"))
        .unwrap_or_default()
        .replace(">> trace", ">> trace; echo extra >> trace");
    std::fs::write(sb.path().join("r.toml"), edited).expect("edit");
    let stale = crate::support::run_in(sb.path(), &["run", "--plan", "plan.json", "--state", state]);
    assert_eq!(stale.code, 3, "{}", stale.stderr);
    assert!(stale.stderr.contains("`r.toml` changed since it was planned"), "{}", stale.stderr);
    assert_eq!(sb.read("trace"), "ana 7\n");

    // A plan edited by hand (a different value) does not match what would be planned.
    std::fs::write(
        sb.path().join("r.toml"),
        "[runbook]\nname = \"pinned\"\n[params.n]\ntype = \"integer\"\ndefault = 1\n[params.who]\ntype = \"string\"\n[steps.a]\nrun = \"echo {{ params.who }} {{ params.n }} >> trace\"\n",
    )
    .expect("restore");
    let text = std::fs::read_to_string(sb.path().join("plan.json")).unwrap_or_default();
    // The value bound to the script's variable (values are bound, never spliced).
    assert!(text.contains("RB_1=ana"), "{text}");
    std::fs::write(sb.path().join("plan.json"), text.replace("RB_1=ana", "RB_1=bob")).expect("forge");
    let forged = crate::support::run_in(sb.path(), &["run", "--plan", "plan.json", "--state", state]);
    assert_eq!(forged.code, 3, "{}", forged.stderr);
    assert_eq!(sb.read("trace"), "ana 7\n");
}

#[test]
fn compensate_undoes_a_stopped_run_by_hand_once() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "manual-undo"
[steps.one]
run = "echo do one >> trace"
compensate = { run = "echo undo one >> trace" }
[steps.two]
run = "echo do two >> trace"
compensate = { run = "echo undo two >> trace" }
[steps.boom]
run = "exit 1"
on-failure = "stop"
"#,
    );
    assert_eq!(sb.run(&[], &[]).code, 1);
    assert_eq!(sb.read("trace"), "do one\ndo two\n");
    let state = sb.path().join("state/state.db");
    let state = state.to_str().unwrap_or_default();
    let id = sb.latest_run();
    let unasked = crate::support::run_in(sb.path(), &["compensate", &id, "--state", state]);
    assert_eq!(unasked.code, 3, "no terminal and no --yes: {}", unasked.stderr);
    let undo = crate::support::run_in(sb.path(), &["compensate", &id, "--yes", "--state", state]);
    assert_eq!(undo.code, 1, "{}\n{}", undo.stdout, undo.stderr);
    assert_eq!(sb.read("trace"), "do one\ndo two\nundo two\nundo one\n");
    let again = crate::support::run_in(sb.path(), &["compensate", &id, "--yes", "--state", state]);
    assert_eq!(again.code, 0);
    assert!(again.stderr.contains("nothing to compensate"), "{}", again.stderr);
    assert_eq!(sb.read("trace"), "do one\ndo two\nundo two\nundo one\n", "each compensation runs once");
    let verify = crate::support::run_in(sb.path(), &["audit", "verify", &id, "--state", state]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn retry_delays_follow_the_backoff_exactly() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"backoff\"\n[steps.flaky]\nrun = \"exit 1\"\nretry = { attempts = 4, delay = \"100ms\", backoff = 3.0, max-delay = \"500ms\" }\n",
    );
    // The URL form of --state works too.
    let state = format!("sqlite://{}", sb.path().join("state/state.db").display());
    let out = crate::support::run_in(sb.path(), &["run", "r.toml", "--output", "json", "--state", &state]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let delays: Vec<u64> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["retry"]["delay_ms"].as_u64())
        .collect();
    // 100 ms, then x3 = 300 ms, then x3 = 900 ms capped at 500 ms; the 4th attempt is the last.
    assert_eq!(delays, [100, 300, 500]);
    let attempts = out.stdout.lines().filter(|l| l.contains("\"kind\":\"step_started\"")).count();
    assert_eq!(attempts, 4);
    assert!(sb.path().join("state/state.db").exists());
}

#[test]
fn a_run_killed_while_compensating_is_finished_with_compensate() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "undo-crash"
[steps.one]
run = "echo do one >> trace"
compensate = { run = "if [ ! -e compensating ]; then touch compensating; sleep 1000; fi; echo undo one >> trace" }
[steps.boom]
run = "exit 1"
"#,
    );
    let id = kill_when(&sb, "compensating");
    let state = sb.path().join("state/state.db");
    let state = state.to_str().unwrap_or_default();
    let refused = resume(&sb, &[&id]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("runbook compensate {id}")), "{}", refused.stderr);
    // The compensation was cut off: in doubt, and not idempotent, so an operator decides.
    let undo = crate::support::run_in(sb.path(), &["compensate", &id, "--yes", "--state", state]);
    assert_eq!(undo.code, 4, "{}\n{}", undo.stdout, undo.stderr);
    assert!(undo.stderr.contains("compensations in doubt that are not idempotent: one"), "{}", undo.stderr);
    let undo = crate::support::run_in(
        sb.path(),
        &["compensate", &id, "--yes", "--rerun", "one", "--reason", "it was cut off", "--state", state],
    );
    assert_eq!(undo.code, 1, "{}\n{}", undo.stdout, undo.stderr);
    assert_eq!(sb.read("trace"), "do one\nundo one\n");
}

#[test]
fn a_closed_stdout_does_not_stop_a_run() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"pipe\"\n[steps.a]\nrun = \"for i in $(seq 200); do echo line $i; done\"\n[steps.b]\nrun = \"sleep 0.3; echo b >> trace\"\n",
    );
    let state = sb.path().join("state/state.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "r.toml", "--state", state.to_str().unwrap_or_default()])
        .current_dir(sb.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    drop(child.stdout.take());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(sb.read("trace"), "b\n", "the run went on to the end");
}

#[test]
fn resume_refuses_a_run_that_is_still_alive() {
    let sb = Sandbox::new(IN_DOUBT);
    let mut child = spawn_until(&sb, "started", Stdio::null());
    let id = sb.latest_run();
    let out = resume(&sb, &[&id, "--rerun", "two", "--reason", "x"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("is still running"), "{}", out.stderr);
}

#[test]
fn a_secret_too_short_to_redact_is_refused() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"s\"\n[secrets.PIN]\nenv = \"SHORT_PIN\"\n[steps.a]\nrun = \"echo ran >> trace\"\nenv = { PIN = \"{{ secrets.PIN }}\" }\n",
    );
    let out = sb.run(&[], &[("SHORT_PIN", "42")]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("secret `PIN` is shorter than 4 characters"), "{}", out.stderr);
    assert!(!out.stderr.contains("42"), "{}", out.stderr);
    assert_eq!(sb.read("trace"), "");
}

#[test]
fn a_failed_run_resumes_its_failed_steps_with_new_attempts_and_never_repeats_the_rest() {
    let sb = Sandbox::new(
        r#"
[runbook]
name = "fix-and-go-on"
[steps.one]
run = "echo one >> trace"
[steps.flaky]
needs = ["one"]
run = "echo flaky >> trace; test -f fixed"
retry = { attempts = 2, delay = "10ms" }
on-failure = "stop"
[steps.after]
needs = ["flaky"]
run = "echo after >> trace"
[steps.never]
needs = ["one"]
when = "false"
run = "echo never >> trace"
[finally.report]
run = "echo finally {{ run.status }} >> trace"
"#,
    );
    assert_eq!(sb.run(&[], &[]).code, 1);
    assert_eq!(sb.read("trace"), "one\nflaky\nflaky\nfinally failed\n");
    let id = sb.latest_run();
    std::fs::write(sb.path().join("fixed"), "").expect("fix");
    let out = resume(&sb, &[&id]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("these steps run again, with a new set of attempts: flaky"),
        "{}",
        out.stderr
    );
    // The `finally` step completed in the first run: it does not run again (issue 11).
    assert_eq!(sb.read("trace"), "one\nflaky\nflaky\nfinally failed\nflaky\nafter\n");
    let audit = sb.audit(&id);
    let started = |step: &str| {
        audit
            .lines()
            .filter(|l| l.contains("\"step_started\"") && l.contains(&format!("\"step\":\"{step}\"")))
            .count()
    };
    assert_eq!((started("one"), started("flaky"), started("after"), started("never")), (1, 3, 1, 0));
    assert!(audit.contains("\"attempt\":3"), "the new attempt is numbered after the old ones");
    let verify = resume(&sb, &[&id]);
    assert_eq!(verify.code, 3, "a succeeded run has nothing to resume: {}", verify.stderr);
}

#[test]
fn a_failed_run_that_was_compensated_cannot_go_on() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"undone\"\n[steps.one]\nrun = \"echo one >> trace\"\ncompensate = { run = \"echo undo >> trace\" }\n[steps.boom]\nneeds = [\"one\"]\nrun = \"exit 1\"\n",
    );
    assert_eq!(sb.run(&[], &[]).code, 1);
    let id = sb.latest_run();
    let out = resume(&sb, &[&id]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("what it did was undone, so it cannot go on"), "{}", out.stderr);
    assert_eq!(sb.read("trace"), "one\nundo\n");
}

#[test]
fn regression_a_step_that_fails_before_starting_with_stop_starts_nothing_more() {
    // Found by the dispatcher's state machine (issue 13): a precondition failure with
    // `on-failure = "stop"` went on starting the steps after it in the same round.
    let sb = Sandbox::new(
        "[runbook]\nname = \"pre-stop\"\n[steps.gate]\nrun = \"echo gate >> trace\"\non-failure = \"stop\"\n[steps.gate.preconditions.no]\nrun = \"exit 1\"\n[steps.other]\nneeds = []\nrun = \"echo other >> trace\"\n",
    );
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(sb.read("trace"), "", "nothing starts after a step that stops the run");
}

#[test]
fn regression_a_finally_steps_failed_attempt_is_journaled_with_its_exit_code() {
    // Found while putting compensations and `finally` over one retry helper (issue 13):
    // a `finally` step's `attempt_failed` carried no exit code.
    let sb = Sandbox::new(
        "[runbook]\nname = \"fin\"\n[steps.one]\nrun = \"true\"\n[finally.tidy]\nrun = \"exit 3\"\nretry = { attempts = 2, delay = \"10ms\" }\n",
    );
    let out = sb.run(&[], &[]);
    let id = sb.latest_run();
    let audit = sb.audit(&id);
    assert!(audit.contains("\"exit_code\":3"), "{}\n{audit}", out.stdout);
}

#[test]
fn regression_sigterm_ends_the_wait_between_a_compensations_attempts() {
    // Found while putting compensations and `finally` over one retry helper (issue 13):
    // the wait before a compensation's next attempt ignored cancellation.
    let sb = Sandbox::new(
        "[runbook]\nname = \"undo-wait\"\n[steps.one]\nrun = \"true\"\ncompensate = { run = \"echo undo >> trace; touch undoing; exit 1\", retry = { attempts = 3, delay = \"60s\" } }\n[steps.boom]\nrun = \"exit 1\"\n",
    );
    let child = spawn_until(&sb, "undoing", Stdio::piped());
    let asked = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("signal");
    let out = child.wait_with_output().expect("wait");
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "the engine slept through the signal ({:?}): {}",
        asked.elapsed(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(sb.read("trace"), "undo\n", "no attempt follows a cancelled wait");
}
