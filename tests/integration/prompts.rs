//! Issue 14 points 1, 2 and 6: prompts on a real pseudo-terminal. A question never holds a
//! journal write, Ctrl-C or a closed terminal at a prompt interrupts (no answer is not "no"),
//! and every confirmation is journaled with who answered, when, to which question.

use std::time::Duration;

use crate::support::Scratch;

/// Records of a run's journal (`audit --format jsonl`), as JSON values.
fn journal(s: &Scratch, run: &str) -> Vec<serde_json::Value> {
    s.audit(run).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn kind(r: &serde_json::Value) -> &str {
    r["event"]["kind"].as_str().unwrap_or_default()
}

fn of(records: &[serde_json::Value], k: &str, step: &str) -> Vec<serde_json::Value> {
    records.iter().filter(|r| kind(r) == k && r["event"]["step"] == step).cloned().collect()
}

/// Seconds since the epoch of a record's RFC 3339 time (milliseconds).
fn epoch(ts: &str) -> f64 {
    let t = humantime::parse_rfc3339(ts).expect("an RFC 3339 time");
    t.duration_since(std::time::UNIX_EPOCH).expect("after the epoch").as_secs_f64()
}

/// Asserts the one `confirmation_given` of `step`: (operator, confirmed, by `--yes`, question).
fn assert_answer(records: &[serde_json::Value], step: &str, want: (&str, bool, bool, &str)) {
    let given = of(records, "confirmation_given", step);
    assert_eq!(given.len(), 1, "{records:#?}");
    let e = &given[0]["event"];
    assert_eq!(
        (e["operator"].as_str(), e["confirmed"].as_bool(), e["by_yes"].as_bool(), e["question"].as_str()),
        (Some(want.0), Some(want.1), Some(want.2), Some(want.3))
    );
}

/// Runs `r.toml` on a terminal, types `keys` at the prompt that shows `question`, and
/// expects the run to end interrupted (exit 130); the run and its journal.
fn interrupted_at(s: &Scratch, question: &str, keys: &str) -> (String, Vec<serde_json::Value>) {
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect_prompt(question);
    t.send(keys);
    let status = t.wait_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "{}", t.screen());
    let run = s.latest_run();
    let records = journal(s, &run);
    let interrupted: Vec<_> = records.iter().filter(|r| kind(r) == "run_interrupted").collect();
    assert_eq!(interrupted.len(), 1, "{records:#?}");
    (run, records)
}

/// `a` writes its own end time (`date +%s.%N`, the last thing it does), then `b` asks.
const A_THEN_CONFIRM_B: &str = r#"[runbook]
name = "t"

[steps.a]
run = "sleep 1; date +%s.%N > a.end"

[steps.b]
needs = ["a"]
cmd = ["echo", "b ran"]
confirm = "Go on with b?"

[steps.c]
needs = ["b"]
cmd = ["echo", "c ran"]
"#;

/// Point 1: while the prompt waits (3 s), `step_succeeded a` is already in the journal, and
/// its time is within 200 ms of `a`'s end. `a`'s end is read from `a` itself: its last act
/// is writing the wall clock, on the same machine as the journal's clock, so the gap is the
/// process's exit, its reaping and one journal write, and nothing of the prompt. (The
/// journal's `step_started` + a known duration would include the start-up of `sleep`.)
#[test]
fn a_step_that_ends_while_a_prompt_waits_is_journaled_when_it_ends() {
    let s = Scratch::new(A_THEN_CONFIRM_B);
    let mut t = s.terminal(&["run", "r.toml"], &[("RUNBOOK_OPERATOR", "alice")]);
    let before = t.expect_prompt("Go on with b?");
    // What was reported before the question is on the screen before the prompt.
    assert!(before.contains("ok a in"), "{before}");
    std::thread::sleep(Duration::from_secs(3));
    let run = s.latest_run();
    let records = journal(&s, &run);
    let ended: f64 = s.read("a.end").trim().parse().expect("a wrote its end time");
    let succeeded = of(&records, "step_succeeded", "a");
    assert_eq!(succeeded.len(), 1, "while the prompt waits, `a` is journaled: {records:#?}");
    let at = epoch(succeeded[0]["ts"].as_str().unwrap_or_default());
    let gap = at - ended;
    assert!(
        (-0.002..=0.2).contains(&gap),
        "step_succeeded a at {at}, a ended at {ended}: {:.0} ms apart",
        gap * 1000.0
    );
    let asked = of(&records, "confirmation_requested", "b");
    assert_eq!(asked.len(), 1, "the question is journaled when asked: {records:#?}");
    assert_eq!(asked[0]["event"]["question"], "Go on with b?");
    assert!(of(&records, "confirmation_given", "b").is_empty());

    t.send_line("y");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    let records = journal(&s, &run);
    assert_answer(&records, "b", ("alice", true, false, "Go on with b?"));
    assert_eq!(of(&records, "step_succeeded", "c").len(), 1, "{records:#?}");
}

/// Point 1, other steps: an independent step is not held up by a question, and ends (and
/// is journaled) while the prompt waits.
#[test]
fn a_question_holds_up_only_the_steps_that_need_its_answer() {
    let s = Scratch::new(
        r#"[runbook]
name = "t"

[steps.ask]
cmd = ["echo", "asked"]
confirm = "Proceed?"

[steps.after]
needs = ["ask"]
cmd = ["echo", "after"]

[steps.free]
needs = []
run = "sleep 1; echo free-done"
"#,
    );
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect_prompt("Proceed?");
    // The screen keeps step output back while the prompt is open (it follows the answer);
    // the journal does not wait.
    let run = s.latest_run();
    let mut records = journal(&s, &run);
    for _ in 0..100 {
        if !of(&records, "step_succeeded", "free").is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        records = journal(&s, &run);
    }
    assert_eq!(of(&records, "step_succeeded", "free").len(), 1, "{records:#?}");
    assert!(of(&records, "step_started", "after").is_empty(), "{records:#?}");
    t.send_line("n");
    let status = t.wait();
    assert_eq!(status.code(), Some(1), "a refusal fails the step: {}", t.screen());
    let records = journal(&s, &run);
    let given = of(&records, "confirmation_given", "ask");
    assert_eq!(given[0]["event"]["confirmed"], false, "{records:#?}");
    assert_eq!(of(&records, "step_failed", "ask").len(), 1, "{records:#?}");
}

/// Point 2: Ctrl-C at a `[y/N]` prompt interrupts the run (exit 130, `run_interrupted`),
/// fails nothing and undoes nothing; `resume` asks the question again.
#[test]
fn ctrl_c_at_a_prompt_interrupts_and_resume_asks_again() {
    let s = Scratch::new(
        &A_THEN_CONFIRM_B
            .replace("[steps.b]\n", "[steps.b]\ncompensate = { cmd = [\"touch\", \"b.undone\"] }\n")
            .replace("[steps.a]\n", "[steps.a]\ncompensate = { cmd = [\"touch\", \"a.undone\"] }\n"),
    );
    let (run, records) = interrupted_at(&s, "Go on with b?", "\x03");
    assert_eq!(of(&records, "step_succeeded", "a").len(), 1, "{records:#?}");
    assert!(of(&records, "confirmation_given", "b").is_empty(), "no answer: {records:#?}");
    for k in ["step_failed", "compensation_started"] {
        assert!(!records.iter().any(|r| kind(r) == k), "nothing fails, nothing is undone: {records:#?}");
    }
    assert!(of(&records, "step_started", "b").is_empty(), "{records:#?}");
    assert!(!s.path().join("a.undone").exists());
    let show = s.cmd(&["show", &run], &[]).stdout;
    let block = show.split("\nconfirmations\n").nth(1).unwrap_or_default();
    insta::assert_snapshot!("show_a_question_without_an_answer", stamps()(block));

    let mut t = s.terminal(&["resume", &run], &[]);
    t.expect_prompt("Go on with b?");
    t.send_line("yes");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    let records = journal(&s, &run);
    assert_eq!(of(&records, "confirmation_requested", "b").len(), 2, "asked again: {records:#?}");
    assert_eq!(of(&records, "step_succeeded", "a").len(), 1, "a never runs again: {records:#?}");
    assert_eq!(of(&records, "step_succeeded", "c").len(), 1, "{records:#?}");
}

/// Point 2: end of input at a prompt (Ctrl-D, a terminal that closed) is no answer either:
/// the run is interrupted with that cause, not failed and compensated.
#[test]
fn end_of_input_at_a_prompt_interrupts_with_its_cause() {
    let s = Scratch::new(A_THEN_CONFIRM_B);
    // Ctrl-D: the terminal's end of input, what a read sees when the terminal is gone.
    let (run, records) = interrupted_at(&s, "Go on with b?", "\x04");
    let show = s.cmd(&["show", &run], &[]).stdout;
    let status: String = show.lines().filter(|l| l.contains("status")).collect();
    assert!(status.contains("interrupted"), "{show}");
    let interrupted: Vec<_> = records.iter().filter(|r| kind(r) == "run_interrupted").collect();
    insta::assert_snapshot!(
        "end_of_input_interrupt_reason",
        interrupted[0]["event"]["reason"].as_str().unwrap_or_default()
    );
    assert!(!records.iter().any(|r| kind(r) == "step_failed"), "{records:#?}");
}

/// Point 1: a session dropped at the prompt leaves nothing in doubt that had finished.
#[test]
fn a_session_dropped_at_a_prompt_leaves_the_finished_step_finished() {
    let s = Scratch::new(A_THEN_CONFIRM_B);
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect_prompt("Go on with b?");
    t.hang_up();
    let _ = t.wait_within(Duration::from_secs(20));
    let run = s.latest_run();
    let records = journal(&s, &run);
    assert_eq!(of(&records, "step_succeeded", "a").len(), 1, "{records:#?}");
    let show = s.cmd(&["show", &run], &[]);
    assert!(!show.stdout.contains("in doubt"), "{}", show.stdout);
}

/// Point 2, approvals: Ctrl-C at an inline approval prompt interrupts the run too; the
/// approval still waits (no rejection is recorded).
#[test]
fn ctrl_c_at_an_approval_prompt_interrupts_without_rejecting() {
    let s = Scratch::new(
        r#"[runbook]
name = "t"

[steps.gate]
approval = { prompt = "Ship it?", allow-self-approval = true }
"#,
    );
    let (_, records) = interrupted_at(&s, "Ship it?", "\x03");
    assert!(
        !records.iter().any(|r| kind(r) == "approval_rejected" || kind(r) == "step_failed"),
        "{records:#?}"
    );
}

/// Point 6: `--yes` is journaled as the answer, with who passed it and the question; `show`
/// and the report say who confirmed what, when.
#[test]
fn yes_is_journaled_and_shown_as_the_answer() {
    let s = Scratch::new(A_THEN_CONFIRM_B.replace("sleep 1; ", "").as_str());
    let out = s.run(&["--yes"], &[("RUNBOOK_OPERATOR", "bob")]);
    assert_eq!(out.code, 0, "{out:?}");
    let run = s.latest_run();
    let records = journal(&s, &run);
    assert_answer(&records, "b", ("bob", true, true, "Go on with b?"));
    let stamp = stamps();
    let show = s.cmd(&["show", &run], &[]).stdout;
    let block = show.split("\nconfirmations\n").nth(1).unwrap_or_default();
    insta::assert_snapshot!("show_confirmations_by_yes", stamp(block));
    let report = s.cmd(&["report", &run], &[]).stdout;
    let line: String = report.lines().filter(|l| l.contains("confirma")).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!("report_confirmations_by_yes", stamp(&line));
}

/// Replaces RFC 3339 times and `HH:MM:SS` with placeholders.
fn stamps() -> impl Fn(&str) -> String {
    |text: &str| {
        let mut out = String::new();
        for word in text.split_inclusive(' ') {
            let w = word.trim_end();
            let bare = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            if humantime::parse_rfc3339(bare).is_ok() {
                out.push_str(&word.replace(bare, "[time]"));
            } else if bare.len() == 8 && bare.chars().filter(|c| *c == ':').count() == 2 {
                out.push_str(&word.replace(bare, "[hms]"));
            } else {
                out.push_str(word);
            }
        }
        out
    }
}

/// An inline approval prompt is withdrawn when the approval is decided elsewhere: the run
/// goes on and ends, and the prompt's read does not keep the process alive (a blocking read
/// used to hold the exit until someone pressed Enter).
#[test]
fn an_approval_decided_elsewhere_withdraws_the_inline_prompt() {
    let s = Scratch::new(
        r#"[runbook]
name = "t"

[steps.gate]
approval = { prompt = "Ship it?", approvers = ["alice", "bob"], allow-self-approval = true }

[steps.after]
cmd = ["echo", "shipped"]
"#,
    );
    let mut t = s.terminal(&["run", "r.toml"], &[("RUNBOOK_OPERATOR", "alice")]);
    t.expect("Ship it?");
    let run = s.latest_run();
    let bob = s.cmd(&["approve", &run, "gate", "--as", "bob"], &[]);
    assert_eq!(bob.code, 0, "{bob:?}");
    let status = t.wait_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    assert!(t.screen().contains("shipped"), "{}", t.screen());
}

/// The class, in an included runbook: its question is journaled under the include's prefix,
/// Ctrl-C at it interrupts the including run (nothing fails, nothing is undone), and
/// `resume` asks it again; the included steps that ended never run again.
#[test]
fn a_question_in_an_included_runbook_follows_the_same_rules() {
    let s = Scratch::new(
        r#"[runbook]
name = "parent"

[steps.inner]
runbook = { file = "lib/child.toml" }

[steps.after]
cmd = ["echo", "after"]
"#,
    );
    std::fs::create_dir_all(s.path().join("lib")).expect("lib");
    std::fs::write(
        s.path().join("lib/child.toml"),
        r#"[runbook]
name = "child"

[steps.one]
run = "echo one >> trace"
compensate = { run = "echo undo one >> trace" }

[steps.two]
run = "echo two >> trace"
confirm = "Child two?"
"#,
    )
    .expect("child");
    let (run, records) = interrupted_at(&s, "Child two?", "\x03");
    assert_eq!(of(&records, "confirmation_requested", "inner/two").len(), 1, "{records:#?}");
    assert!(!records.iter().any(|r| kind(r) == "step_failed" || kind(r) == "compensation_started"));
    assert_eq!(s.read("lib/trace"), "one\n");

    let mut t = s.terminal(&["resume", &run], &[("RUNBOOK_OPERATOR", "carol")]);
    t.expect_prompt("Child two?");
    t.send_line("y");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    let records = journal(&s, &run);
    assert_answer(&records, "inner/two", ("carol", true, false, "Child two?"));
    assert_eq!(s.read("lib/trace"), "one\ntwo\n", "one never runs again");
    assert_eq!(of(&records, "step_succeeded", "after").len(), 1, "{records:#?}");
}
