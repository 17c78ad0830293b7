//! What stops a run before anything runs, said once and kept (issue 14, points 7 and 8):
//! failed preconditions journaled as `precondition_failed` and shown by `show`, `logs` and
//! the report; everything missing before a run reported together.

use crate::support::Scratch;

const SECRET: &str = "s3cr3t-Preflight-4b1d";
/// base64 of [`SECRET`] without padding (a leak in another encoding).
const SECRET_B64: &str = "czNjcjN0LVByZWZsaWdodC00YjFk";

/// Every surface a failed precondition reaches: the run's terminal, `show`, `logs`, the
/// report, the journal, and the state store's bytes. None holds the secret.
fn no_secret_anywhere(sb: &Scratch, run: &str, texts: &[&str]) {
    let mut all: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    for args in
        [vec!["show", run], vec!["logs", run], vec!["report", run], vec!["audit", run, "--format", "jsonl"]]
    {
        let out = sb.cmd(&args, &[]);
        all.push(out.stdout);
        all.push(out.stderr);
    }
    for entry in walk(sb.path()) {
        all.push(String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned());
    }
    for text in &all {
        assert!(!text.contains(SECRET) && !text.contains(SECRET_B64), "secret leaked:\n{text}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

const RUN_LEVEL: &str = r#"
[runbook]
name = "pre-run"
[secrets.tok]
env = "PF_TOK"
[preconditions.tool]
run = "echo 'kubectl: command not found'; echo \"token $T\"; echo \"$T\" | base64; exit 1"
env = { T = "{{ secrets.tok }}" }
message = "kubectl is installed"
[preconditions.fine]
run = "true"
[steps.a]
run = "echo ran >> trace"
"#;

#[test]
fn a_failed_runbook_precondition_is_journaled_and_shown_redacted() {
    let sb = Scratch::new(RUN_LEVEL);
    let out = sb.run(&[], &[("PF_TOK", SECRET)]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(sb.read("trace"), "", "a step ran");
    let run = sb.latest_run();
    // The journal: `run_started`, one `precondition_failed` with its message and output, then
    // `run_finished failed`.
    let journal = sb.audit(&run);
    let kinds: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["kind"].as_str().unwrap_or("").into()
        })
        .collect();
    assert_eq!(kinds, ["run_started", "precondition_failed", "run_finished"], "{journal}");
    let failed: serde_json::Value =
        serde_json::from_str(journal.lines().nth(1).expect("a second record")).expect("json");
    let event = &failed["event"];
    assert_eq!(event["precondition"], "tool", "{event}");
    assert!(event.get("step").is_none(), "{event}");
    assert!(event["message"].as_str().expect("a message").contains("kubectl is installed"), "{event}");
    let output = event["output"].as_str().expect("an output");
    assert!(
        output.contains("kubectl: command not found") && output.contains("token <secret:tok>"),
        "{output}"
    );
    // `show` says why the run did not start.
    let show = sb.cmd(&["show", &run], &[]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout
            .contains("why       it did not start: 1 of the runbook's preconditions failed; no step ran"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("kubectl is installed"), "{}", show.stdout);
    // `logs` shows what the precondition printed (it used to say "no output recorded").
    let logs = sb.cmd(&["logs", &run], &[]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("precondition tool | kubectl: command not found"), "{}", logs.stdout);
    assert!(logs.stdout.contains("precondition tool | token <secret:tok>"), "{}", logs.stdout);
    assert!(!logs.stderr.contains("no output recorded"), "{}", logs.stderr);
    // The report says it, with the output.
    let report = sb.cmd(&["report", &run], &[]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert!(
        report.stdout.contains("una precondición del runbook falló; ningún paso se ejecutó"),
        "{}",
        report.stdout
    );
    assert!(report.stdout.contains("kubectl: command not found"), "{}", report.stdout);
    no_secret_anywhere(&sb, &run, &[&out.stdout, &out.stderr]);
}

#[test]
fn a_failed_step_precondition_is_journaled_and_shown_redacted() {
    let sb = Scratch::new(
        r#"
[runbook]
name = "pre-step"
[secrets.tok]
env = "PF_TOK"
[steps.a]
run = "echo a-ran >> trace"
[steps.b]
needs = ["a"]
run = "echo b-ran >> trace"
[steps.b.preconditions.disk]
run = "echo \"df says full; auth $T\"; exit 2"
env = { T = "{{ secrets.tok }}" }
message = "the disk has room"
"#,
    );
    let out = sb.run(&[], &[("PF_TOK", SECRET)]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(sb.read("trace"), "a-ran\n");
    let run = sb.latest_run();
    let journal = sb.audit(&run);
    let records: Vec<serde_json::Value> =
        journal.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let at = records.iter().position(|r| r["kind"] == "precondition_failed").expect(&journal);
    let event = &records[at]["event"];
    assert_eq!(
        (event["step"].as_str(), event["precondition"].as_str()),
        (Some("b"), Some("disk")),
        "{event}"
    );
    assert_eq!(event["output"], "df says full; auth <secret:tok>", "{event}");
    // Written before the `step_failed` it causes.
    assert_eq!(records[at + 1]["kind"], "step_failed", "{journal}");
    let show = sb.cmd(&["show", &run], &[]);
    assert!(show.stdout.contains("the disk has room"), "{}", show.stdout);
    let logs = sb.cmd(&["logs", &run, "b"], &[]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(
        logs.stdout.contains("b: precondition disk | df says full; auth <secret:tok>"),
        "{}",
        logs.stdout
    );
    let report = sb.cmd(&["report", &run], &[]);
    assert!(report.stdout.contains("Precondición `disk` del paso `b` falló"), "{}", report.stdout);
    no_secret_anywhere(&sb, &run, &[&out.stdout, &out.stderr]);
}

const INCOMPLETE: &str = r#"
[runbook]
name = "incomplete"
[params.environment]
type = "string"
enum = ["sandbox", "staging", "production"]
description = "Where it runs"
[params.tag]
type = "string"
description = "The tag to go back to"
[params.replicas]
type = "integer"
[params.note]
type = "string"
default = "none"
[secrets.TOKEN]
env = "PF_MISSING_TOKEN"
[preconditions.ready]
run = "true"
[steps.push]
run = "echo pushed >> trace"
confirm = "push {{ params.tag }} to {{ params.environment }}?"
"#;

#[test]
fn everything_that_stops_a_run_is_reported_in_one_answer() {
    let sb = Scratch::new(INCOMPLETE);
    std::fs::create_dir_all(sb.path().join("params")).expect("params folder");
    std::fs::write(sb.path().join("params/r.staging.toml"), "environment = \"staging\"\n")
        .expect("params file");
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    // One answer: missing parameters (one line each), the secret, `--yes`, what comes after,
    // and the params file next to the runbook.
    assert_eq!(out.stderr.matches("error:").count(), 1, "{}", out.stderr);
    assert!(out.stderr.lines().count() <= 16, "{}", out.stderr);
    insta::assert_snapshot!("one_answer", out.stderr);
    // Nothing ran, and no run was recorded (no store was even created).
    assert_eq!(sb.read("trace"), "");
    assert!(!std::path::Path::new(&sb.state()).exists(), "a state store was created");
}

#[test]
fn given_inputs_leave_only_the_rest_in_the_answer() {
    let sb = Scratch::new(INCOMPLETE);
    let out = sb.run(&["-p", "environment=staging", "-p", "tag=v1", "-p", "replicas=2"], &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("missing parameters"), "{}", out.stderr);
    assert!(out.stderr.contains("PF_MISSING_TOKEN") && out.stderr.contains("--yes"), "{}", out.stderr);
    // A value that does not fit is still an error at its place, as before.
    let bad = sb.run(&["-p", "environment=moon"], &[]);
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(bad.stderr.contains("RB071"), "{}", bad.stderr);
    // Complete: the run starts and its preconditions run.
    let done = sb.run(
        &["-p", "environment=staging", "-p", "tag=v1", "-p", "replicas=2", "--yes"],
        &[("PF_MISSING_TOKEN", "tok-123456")],
    );
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(sb.read("trace"), "pushed\n");
}

#[test]
fn a_runbook_not_found_suggests_where_it_is() {
    let sb = Scratch::new(INCOMPLETE);
    std::fs::create_dir_all(sb.path().join("runbooks")).expect("runbooks folder");
    std::fs::write(sb.path().join("runbooks/rollback-l3.toml"), INCOMPLETE).expect("runbook");
    let out = sb.cmd(&["run", "rollback-l3.toml"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `runbooks/rollback-l3.toml`?"), "{}", out.stderr);
    // A typo: the close name.
    let typo = sb.cmd(&["run", "runbooks/rolback-l3.toml"], &[]);
    assert!(typo.stderr.contains("did you mean `runbooks/rollback-l3.toml`?"), "{}", typo.stderr);
    // Nothing close: the plain hint.
    let none = sb.cmd(&["run", "zzz-unrelated.toml"], &[]);
    assert!(none.stderr.contains("check the path"), "{}", none.stderr);
}

/// The team's runbook from the repository root, with nothing given: one answer naming every
/// missing parameter, secret and `--yes`, and `runbooks/params/rollback-l3.staging.toml`.
#[test]
fn the_team_rollback_l3_with_nothing_given_gets_one_answer() {
    let state = tempfile::tempdir().expect("tempdir");
    let db = state.path().join("state.db");
    let mut cmd = std::process::Command::new(crate::support::bin());
    cmd.args(["run", "runbooks/rollback-l3.toml", "--state"])
        .arg(&db)
        .current_dir(crate::support::root())
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE");
    for var in ["DATABASE_URL", "CRON_SECRET", "SLACK_WEBHOOK"] {
        cmd.env_remove(var);
    }
    let out = crate::support::Output::from(cmd.output().expect("the binary runs"));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.matches("error:").count(), 1, "{}", out.stderr);
    for name in ["environment", "stable_tag", "restore_file", "repo_dir", "app_dir", "base_url"] {
        assert!(out.stderr.contains(&format!("    {name} ")), "{name}: {}", out.stderr);
    }
    for what in [
        "DATABASE_URL",
        "CRON_SECRET",
        "SLACK_WEBHOOK",
        "--yes",
        "--params-file runbooks/params/rollback-l3.staging.toml",
    ] {
        assert!(out.stderr.contains(what), "{what}: {}", out.stderr);
    }
    assert!(out.stderr.lines().count() < 25, "{}", out.stderr);
    assert!(!db.exists(), "a state store was created");
    // From the root with the bare name: where it is.
    let mut bare = std::process::Command::new(crate::support::bin());
    bare.args(["run", "rollback-l3.toml", "--state"])
        .arg(&db)
        .current_dir(crate::support::root())
        .env("NO_COLOR", "1");
    let out = crate::support::Output::from(bare.output().expect("the binary runs"));
    assert!(out.stderr.contains("did you mean `runbooks/rollback-l3.toml`?"), "{}", out.stderr);
}

const GATED: &str = r#"
[runbook]
name = "gated"
[steps.gate]
approval = { prompt = "Ship?", approvers = ["ben"], inputs = { ticket = { type = "string" }, window = { type = "string", enum = ["now", "tonight"] }, note = { type = "string", default = "-" } } }
[steps.ship]
needs = ["gate"]
run = "echo shipped {{ steps.gate.outputs.ticket }} {{ steps.gate.outputs.window }} >> trace"
"#;

/// Issue 14 point 9: the `runbook approve` hint a suspended run prints (and `show` repeats)
/// carries `--state` when the store is not the default and every input the approval
/// requires; typed as printed, from another folder, it records the decision.
#[test]
fn the_approve_hint_carries_the_store_and_the_required_inputs() {
    let sb = Scratch::new(GATED);
    let out = sb.run(&["--as", "ana"], &[]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let run = sb.latest_run();
    let state = std::path::Path::new(&sb.state()).canonicalize().expect("state").display().to_string();
    let line = out.stdout.lines().find(|l| l.contains("waits for approval")).expect("a hint").to_string();
    insta::assert_snapshot!("approve_hint", line.replace(&run, "RUN").replace(&state, "STATE"));
    let show = sb.cmd(&["show", &run], &[]);
    // `show` repeats the very command of the notice (red team F5: it listed the input with a
    // default and lost the choices of `window`).
    assert!(
        show.stdout.contains(&format!("`runbook approve {run} gate --input 'ticket=<string>' --input 'window=<now|tonight>' --state {state}`")),
        "{}",
        show.stdout
    );
    // The printed command, with values in place of the placeholders, from another folder.
    let printed =
        line.split('`').find(|s| s.starts_with("runbook approve")).expect("the command").to_string();
    let typed = printed.replace("<string>", "CHG-7").replace("<now|tonight>", "tonight");
    let words: Vec<&str> = typed.split_whitespace().collect();
    assert_eq!(words[..2], ["runbook", "approve"], "{typed}");
    let args: Vec<String> = words[1..].iter().map(|w| w.trim_matches('\'').to_string()).collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--as", "ben"]);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let approved = crate::support::run_in(elsewhere.path(), &args);
    assert_eq!(approved.code, 0, "{typed}\n{}\n{}", approved.stdout, approved.stderr);
    let resumed = sb.cmd(&["resume", &run], &[]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(sb.read("trace"), "shipped CHG-7 tonight\n");
}

/// With the default store, the hint has no `--state`.
#[test]
fn the_approve_hint_of_the_default_store_has_no_state_flag() {
    let sb = Scratch::new(GATED);
    let home = tempfile::tempdir().expect("home");
    let home_dir = home.path().display().to_string();
    let env = [("HOME", home_dir.as_str()), ("XDG_STATE_HOME", home_dir.as_str())];
    let mut cmd = std::process::Command::new(crate::support::bin());
    cmd.args(["run", "r.toml", "--as", "ana"])
        .current_dir(sb.path())
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(env);
    let out = crate::support::Output::from(cmd.output().expect("runs"));
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let hint = out.stdout.lines().find(|l| l.contains("waits for approval")).expect("a hint");
    assert!(hint.contains("gate --input 'ticket=<string>' --input 'window=<now|tonight>'`"), "{hint}");
    assert!(!hint.contains("--state"), "{hint}");
}

const ASKS: &str = r#"
[runbook]
name = "asks"
[params.environment]
type = "string"
enum = ["sandbox", "staging", "production"]
description = "Where it runs"
[params.replicas]
type = "integer"
[params.tag]
type = "string"
[steps.deploy]
run = "echo {{ params.environment }} {{ params.replicas }} {{ params.tag }} >> trace"
"#;

/// On a real terminal, the missing parameters are asked for one by one: typed and checked
/// like a `-p` value (a wrong one is asked again), the choices listed; the run then starts
/// with them (journaled as its parameters).
#[test]
fn on_a_terminal_missing_parameters_are_asked_for_and_checked() {
    let sb = Scratch::new(ASKS);
    let mut t = sb.terminal(&["run", "r.toml", "-p", "tag=v2"], &[]);
    t.expect("2 required parameter(s) missing");
    t.expect("? environment (string, one of sandbox|staging|production; Where it runs): ");
    t.send_line("moon");
    t.expect("not a valid value");
    t.expect("? environment (");
    t.send_line("staging");
    t.expect("? replicas (integer): ");
    t.send_line("two");
    t.expect("not a valid value");
    t.expect("? replicas (integer): ");
    t.send_line("3");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    assert_eq!(sb.read("trace"), "staging 3 v2\n");
    let journal = sb.audit(&sb.latest_run());
    let started: serde_json::Value =
        serde_json::from_str(journal.lines().next().expect("a record")).expect("json");
    assert_eq!(started["event"]["params"]["environment"], "staging", "{journal}");
    assert_eq!(started["event"]["params"]["replicas"], 3, "{journal}");
}

/// An empty line stops the asking: what is still missing is reported in the one answer,
/// and nothing runs.
#[test]
fn on_a_terminal_an_empty_line_stops_and_reports_what_is_missing() {
    let sb = Scratch::new(ASKS);
    let mut t = sb.terminal(&["run", "r.toml"], &[]);
    t.expect("? environment (");
    t.send_line("sandbox");
    t.expect("? replicas (integer): ");
    t.send_line("");
    t.expect("[RB090]");
    let status = t.wait();
    assert_eq!(status.code(), Some(3), "{}", t.screen());
    let screen = t.screen();
    assert!(screen.contains("missing parameters (2;"), "{screen}");
    assert!(!screen.contains("    environment "), "{screen}");
    assert_eq!(sb.read("trace"), "");
}

/// Without a terminal nothing is asked: the one answer comes at once.
#[test]
fn without_a_terminal_nothing_is_asked() {
    let sb = Scratch::new(ASKS);
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(!out.stderr.contains("required parameter(s) missing; type"), "{}", out.stderr);
    assert!(!out.stderr.contains("? environment"), "{}", out.stderr);
    assert!(out.stderr.contains("missing parameters (3;"), "{}", out.stderr);
}

/// An included runbook's own precondition: journaled under the `runbook` step that includes
/// it, and its step-level ones under their full path.
#[test]
fn an_included_runbooks_failed_preconditions_name_their_place() {
    let sb = Scratch::new(
        "[runbook]\nname = \"parent\"\n[steps.inner]\nrunbook = { file = \"lib/child.toml\" }\non-failure = \"stop\"\n",
    );
    std::fs::create_dir_all(sb.path().join("lib")).expect("lib");
    std::fs::write(
        sb.path().join("lib/child.toml"),
        "[runbook]\nname = \"child\"\n[preconditions.ready]\nrun = \"echo not ready; exit 1\"\nmessage = \"the child is ready\"\n[steps.go]\nrun = \"echo went >> trace\"\n",
    )
    .expect("child");
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(sb.read("lib/trace"), "");
    let journal = sb.audit(&sb.latest_run());
    let failed: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|r| r["kind"] == "precondition_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{journal}");
    let event = &failed[0]["event"];
    assert_eq!(
        (event["step"].as_str(), event["precondition"].as_str()),
        (Some("inner"), Some("ready")),
        "{event}"
    );
    assert_eq!(event["output"], "not ready", "{event}");
    let logs = sb.cmd(&["logs", &sb.latest_run(), "inner"], &[]);
    assert!(logs.stdout.contains("inner: precondition ready | not ready"), "{}", logs.stdout);
}

/// Ctrl-C at a parameter question ends the command: nothing ran, no run was recorded.
#[test]
fn ctrl_c_at_a_parameter_question_ends_without_a_run() {
    let sb = Scratch::new(ASKS);
    let mut t = sb.terminal(&["run", "r.toml"], &[]);
    t.expect("? environment (");
    t.ctrl_c();
    let status = t.wait();
    assert_ne!(status.code(), Some(0), "{}", t.screen());
    assert_eq!(sb.read("trace"), "");
    assert!(!std::path::Path::new(&sb.state()).exists(), "a state store was created");
}

/// Red-team finding F10 of issue 14: one wrong value given hid the other wrong values, the
/// missing parameters, `--yes` and the secrets (3 rounds to learn 4 problems).
const WRONG_VALUES: &str = r#"
[runbook]
name = "pp"

[params.env]
type = "string"
enum = ["staging", "production"]

[params.n]
type = "integer"

[params.name]
type = "string"

[secrets.TOKEN]
env = "PF_F10_UNSET_TOKEN"

[steps.a]
run = "echo {{ params.env }} {{ params.n }} {{ params.name }} >> trace"
env = { T = "{{ secrets.TOKEN }}" }
confirm = "go?"
"#;

#[test]
fn wrong_values_given_are_in_the_one_answer_with_everything_else() {
    let sb = Scratch::new(WRONG_VALUES);
    let out = sb.run(&["-p", "env=prod", "-p", "n=x"], &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let err = &out.stderr;
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains("RB090"), "{err}");
    assert!(err.contains("not one of"), "env=prod not reported:\n{err}");
    assert!(err.contains("parameter `n`"), "n=x not reported:\n{err}");
    assert!(err.contains("missing parameters (1;"), "{err}");
    assert!(err.contains("  name  string"), "the missing `name` not reported:\n{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(err.contains("PF_F10_UNSET_TOKEN"), "{err}");
    insta::assert_snapshot!("one_answer_wrong_values", err);
    assert_eq!(sb.read("trace"), "");
}

#[test]
fn a_params_files_wrong_and_unknown_values_are_in_the_one_answer() {
    let sb = Scratch::new(WRONG_VALUES);
    std::fs::write(sb.path().join("values.toml"), "env = \"prod\"\nn = \"x\"\nunknown = 1\n")
        .expect("params file");
    let out = sb.run(&["--params-file", "values.toml"], &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let err = &out.stderr;
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains("values.toml:1:7"), "env = \"prod\" not reported at its place:\n{err}");
    assert!(err.contains("values.toml:2:5"), "n = \"x\" not reported at its place:\n{err}");
    assert!(err.contains("values.toml:3:1") && err.contains("unknown parameter `unknown`"), "{err}");
    assert!(err.contains("  name  string"), "{err}");
    assert!(err.contains("--yes") && err.contains("PF_F10_UNSET_TOKEN"), "{err}");
    assert_eq!(sb.read("trace"), "");
}

/// A corpus: every combination of right, wrong and absent values for the three parameters,
/// from `-p` and from a params file: the answer names every wrong one, every missing one,
/// `--yes` and the secret, at once.
#[test]
fn every_combination_of_wrong_and_missing_values_gets_one_answer() {
    let sb = Scratch::new(WRONG_VALUES);
    // (name, right value, wrong value and what the answer says of it)
    let params = [
        ("env", "staging", ("prod", "not one of")),
        ("n", "1", ("x", "parameter `n`")),
        ("name", "v", ("", "")),
    ];
    for combo in 0..27u32 {
        let mut args: Vec<String> = Vec::new();
        let mut file = String::new();
        let mut expect: Vec<&str> = vec!["--yes", "PF_F10_UNSET_TOKEN"];
        for (i, (name, right, (wrong, said))) in params.iter().enumerate() {
            // 0: absent, 1: right, 2: wrong (`name` takes any string: right twice).
            let choice = (combo / 3u32.pow(i as u32)) % 3;
            let value = match choice {
                0 => {
                    expect.push(if *name == "name" { "  name  string" } else { "missing parameters" });
                    continue;
                }
                1 => *right,
                _ if wrong.is_empty() => *right,
                _ => {
                    expect.push(said);
                    *wrong
                }
            };
            if combo % 2 == 0 {
                args.extend(["-p".to_string(), format!("{name}={value}")]);
            } else {
                let quoted =
                    if *name == "n" && choice == 1 { value.to_string() } else { format!("\"{value}\"") };
                file.push_str(&format!("{name} = {quoted}\n"));
            }
        }
        if combo % 2 == 1 {
            std::fs::write(sb.path().join("values.toml"), &file).expect("params file");
            args.extend(["--params-file".to_string(), "values.toml".to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sb.run(&args, &[]);
        assert_eq!(out.code, 3, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        assert_eq!(out.stderr.matches("error:").count(), 1, "{args:?}\n{}", out.stderr);
        for e in expect {
            assert!(out.stderr.contains(e), "{args:?}: `{e}` not in the answer:\n{}", out.stderr);
        }
    }
    assert_eq!(sb.read("trace"), "");
}

/// Red team adv28 N3: a secret whose value holds a NUL character (a `file` secret, a
/// `command`'s output) is refused in the run's one answer before anything runs; the step
/// that used it failed at its start, after the steps before it had run.
#[test]
fn a_secret_holding_a_nul_character_is_refused_before_anything_runs() {
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "nul-secret"

[secrets.TOKEN]
file = "token.txt"

[secrets.CMDTOK]
command = ["printf", "abcd\\000efgh"]

[steps.backup]
run = "touch backed-up"

[steps.use]
needs = ["backup"]
run = 'test -n "$TOKEN$CMD"'
env = { TOKEN = "{{ secrets.TOKEN }}", CMD = "{{ secrets.CMDTOK }}" }
"#,
    );
    std::fs::write(s.path().join("token.txt"), b"tok\0en-value").expect("token");
    let out = s.run(&["--yes"], &[]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    for name in ["TOKEN", "CMDTOK"] {
        assert!(
            out.stderr.contains(&format!("secret `{name}` holds a NUL character")),
            "{name}: {}",
            out.stderr
        );
    }
    assert!(!s.path().join("backed-up").exists(), "nothing ran");
}
