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
