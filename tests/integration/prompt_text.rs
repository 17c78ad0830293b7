//! Red team adv14b F11, F1 and F6 (d): what a prompt shows and what counts as its answer, on
//! a real pseudo-terminal. Keys typed before a question is shown never answer it; an answer
//! that is neither yes nor no is asked again; every text a prompt shows has its control and
//! format characters made visible (the notation `show` uses); an answer that is not UTF-8
//! is said to be unreadable and asked again.

use std::time::Duration;

use crate::support::Scratch;

/// Records of a run's journal (`audit --format jsonl`), as JSON values.
fn journal(s: &Scratch, run: &str) -> Vec<serde_json::Value> {
    s.audit(run).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn of(records: &[serde_json::Value], kind: &str, step: &str) -> Vec<serde_json::Value> {
    records.iter().filter(|r| r["event"]["kind"] == kind && r["event"]["step"] == step).cloned().collect()
}

/// `a` runs for 3 s (with a compensation), then `b` asks.
const LONG_THEN_ASK: &str = r#"[runbook]
name = "ta"

[steps.a]
run = "sleep 3"
compensate = { run = "touch a.undone" }

[steps.b]
needs = ["a"]
run = "echo b-ran > b.ran"
confirm = "Continue with b?"
"#;

/// Starts `r.toml` on a terminal, types `keys` while `a` runs (before the question exists),
/// then waits for the question.
fn typed_ahead(s: &Scratch, keys: &str) -> crate::pty::Terminal {
    let mut t = s.terminal(&["run", "r.toml"], &[("RUNBOOK_OPERATOR", "alice")]);
    t.expect("(state ");
    // `a` sleeps 3 s after this line: the keys reach the terminal before `b` is asked.
    t.send(keys);
    t.expect("Continue with b?");
    t
}

/// F11 (a): the "is it still alive?" Enter pressed during a long step does not answer the
/// next question (it used to count as "no": `b` failed and `a` was compensated).
#[test]
fn an_enter_typed_while_a_step_runs_does_not_answer_the_next_question() {
    let s = Scratch::new(LONG_THEN_ASK);
    let mut t = typed_ahead(&s, "\r");
    t.send_line("y");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    assert_eq!(s.read("b.ran"), "b-ran\n");
    assert!(!s.path().join("a.undone").exists(), "nobody asked for a compensation: {}", t.screen());
    let records = journal(&s, &s.latest_run());
    let given = of(&records, "confirmation_given", "b");
    assert_eq!(given.len(), 1, "{records:#?}");
    assert_eq!(given[0]["event"]["confirmed"], true, "{records:#?}");
}

/// F11 (b): a `y` typed before the question is shown does not run the step.
#[test]
fn a_yes_typed_before_the_question_is_shown_does_not_run_the_step() {
    let s = Scratch::new(LONG_THEN_ASK);
    let mut t = typed_ahead(&s, "y\r");
    t.send_line("n");
    let status = t.wait();
    assert_eq!(status.code(), Some(1), "a refusal fails the step: {}", t.screen());
    assert!(!s.path().join("b.ran").exists(), "{}", t.screen());
    let records = journal(&s, &s.latest_run());
    let given = of(&records, "confirmation_given", "b");
    assert_eq!(given.len(), 1, "{records:#?}");
    assert_eq!(given[0]["event"]["confirmed"], false, "{records:#?}");
}

/// F11: "no" fails the step and may start compensations, so it is never assumed: an empty
/// answer, `yes!`, `yep`, `yy`, an arrow key after `y`, and text that is not UTF-8 are asked
/// again; `y`/`yes`/`n`/`no` in any case, with spaces around, answer.
#[test]
fn an_answer_that_is_neither_yes_nor_no_is_asked_again() {
    let s = Scratch::new(&LONG_THEN_ASK.replace("sleep 3", "true"));
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect("Continue with b? [y/n] ");
    for wrong in ["", "yes!", "yep", "yy", "y\x1b[A", "nope", "  "] {
        t.send_line(wrong);
        t.expect_within("answer y or n", Duration::from_secs(20));
        t.expect("Continue with b? [y/n] ");
    }
    t.send_bytes(b"y\xff\r");
    t.expect_within("not UTF-8 text", Duration::from_secs(20));
    t.expect("Continue with b? [y/n] ");
    t.send_line("  YeS ");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    assert_eq!(s.read("b.ran"), "b-ran\n");
    assert!(!s.path().join("a.undone").exists());
    let records = journal(&s, &s.latest_run());
    assert_eq!(of(&records, "confirmation_given", "b").len(), 1, "one answer: {records:#?}");
}

/// Every C0/C1 control but NUL (which no value may hold), DEL, and the format characters
/// (`Cf`) and line/paragraph separators a terminal draws as nothing or as a move.
fn corpus() -> Vec<char> {
    let mut codes: Vec<u32> = (0x01..0x20).chain(0x7F..0xA0).collect();
    codes.extend([0xAD, 0x61C, 0x6DD, 0x70F, 0x180E, 0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0xE0001]);
    codes.extend((0x600..=0x605).chain(0x200B..=0x200F).chain(0x2028..=0x202E));
    codes.extend((0x2060..=0x2064).chain(0x2066..=0x206F).chain(0xE0020..=0xE007F));
    codes.into_iter().filter_map(char::from_u32).collect()
}

/// How `show` writes a character it makes visible.
fn visible(c: char) -> String {
    match c {
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        c => format!("\\u{{{:x}}}", c as u32),
    }
}

/// The prompt as the terminal received it, from its last `? {start}` to the end of what
/// `expect` returned (the harness drops carriage returns; a raw one would be missing).
fn drawn_line<'a>(screen: &'a str, start: &str) -> &'a str {
    screen.rfind(&format!("? {start}")).map_or(screen, |at| &screen[at + 2..])
}

/// F1: a parameter value with ESC and CR (the finding's), then every control and format
/// character, cannot rewrite the confirmation question: the question is drawn as one line
/// with each of them made visible, the same text `show` prints, before a `y` counts. The
/// approval prompt that follows shows the same value the same way.
#[test]
fn a_value_cannot_rewrite_the_question_it_is_shown_in() {
    let s = Scratch::new(
        r#"[runbook]
name = "conf"

[params.tag]
type = "string"

[steps.push]
run = "echo pushing > pushed"
confirm = "Force-push {{ params.tag }} to origin/main?"

[steps.gate]
needs = ["push"]
approval = { prompt = "Ship {{ params.tag }}?", allow-self-approval = true }
"#,
    );
    let finding = "v1.0 to staging (harmless)?\n\x1b[2K\rForce-push nothing";
    let all: String = corpus().into_iter().collect();
    let value = format!("{finding}<{all}>");
    let mut t = s.terminal(&["run", "r.toml", "-p", &format!("tag={value}")], &[]);
    // (`[y/` alone: the choices changed with F11.)
    let asked = t.expect(" to origin/main? [y/");
    let line = drawn_line(&asked, "Force-push v1.0");
    let shown: String =
        value.chars().map(|c| if corpus().contains(&c) { visible(c) } else { c.to_string() }).collect();
    assert!(shown.contains("(harmless)?\\n\\u{1b}[2K\\rForce-push nothing<\\u{1}"), "{shown}");
    assert_eq!(line, format!("Force-push {shown} to origin/main? [y/"));
    t.send_line("y");
    let approval = t.expect("[y = approve / n = reject / Enter = decide elsewhere] ");
    assert_eq!(
        drawn_line(&approval, "Ship "),
        format!("Ship {shown}? [y = approve / n = reject / Enter = decide elsewhere] ")
    );
    t.send_line("y");
    t.expect("reason: ");
    t.send_line("reviewed");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    let show = s.cmd(&["show", &s.latest_run()], &[]).stdout;
    assert!(show.contains(&format!("Force-push {shown} to origin/main?")), "show writes it alike:\n{show}");
}

/// F1, the missing-parameter prompt: a parameter's choices and description are shown with
/// their control characters made visible (`ESC[8m` concealed what followed, what the
/// operator typed included; `ESC[2J` cleared the screen).
#[test]
fn the_parameter_prompt_shows_choices_and_description_as_text() {
    let s = Scratch::new(
        "[runbook]\nname = \"pq\"\n\n[params.env]\ntype = \"string\"\nenum = [\"staging\", \"prod\\u001b[8m\"]\ndescription = \"d\\u001b[2Jx\\u202e\"\n\n[steps.a]\nrun = \"echo {{ params.env }} > env\"\n",
    );
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    let asked = t.expect("): ");
    assert_eq!(
        drawn_line(&asked, "env ("),
        "env (string, one of staging|prod\\u{1b}[8m; d\\u{1b}[2Jx\\u{202e}): "
    );
    t.send_line("staging");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    assert_eq!(s.read("env"), "staging\n");
}

/// F6 (d): an answer at the parameter prompt that is not UTF-8 is said to be unreadable and
/// asked again (it used to end the asking silently, reported as a missing parameter).
#[test]
fn a_parameter_answer_that_is_not_utf8_is_said_and_asked_again() {
    let s = Scratch::new(
        "[runbook]\nname = \"pp\"\n\n[params.name]\ntype = \"string\"\n\n[steps.a]\nrun = \"echo {{ params.name }} > name\"\n",
    );
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect("? name (string): ");
    t.send_bytes(b"ab\xff\xfecd\r");
    t.expect_within("not UTF-8 text", Duration::from_secs(20));
    t.expect("? name (string): ");
    t.send_line("abcd");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    assert_eq!(s.read("name"), "abcd\n");
}

/// Where `text` reads the terminal itself or writes to standard error by hand: a read of
/// standard input (`stdin()` for anything but `.is_terminal()`, `read_line`, a raw `read`)
/// or a handle on standard error (for anything but `.is_terminal()`).
fn own_prompts(text: &str) -> Vec<String> {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found = Vec::new();
    for handle in ["stdin()", "stderr()"] {
        for (at, _) in flat.match_indices(handle) {
            let after = flat[at + handle.len()..].trim_start();
            if !after.starts_with(".is_terminal()") {
                found.push(flat[at.saturating_sub(40)..(at + 60).min(flat.len())].to_string());
            }
        }
    }
    for read in ["read_line(", "unistd::read(", "BufRead"] {
        found.extend(flat.match_indices(read).map(|(at, _)| flat[at..(at + 60).min(flat.len())].to_string()));
    }
    found
}

/// The class of F1 and F11, closed by design: the CLI asks on the terminal only through
/// `engine/cli/prompt.rs` (which discards typeahead and makes every shown text visible).
/// No other module reads standard input or writes to standard error by hand (`output.rs`
/// writes standard error for everyone, through `err!`/`errln!`).
#[test]
fn the_terminal_is_asked_only_through_the_prompt_module() {
    let dir = crate::support::root().join("engine/cli");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("engine/cli is readable").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || name == "prompt.rs" || name == "output.rs" {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("a module is readable");
        found.extend(own_prompts(&text).into_iter().map(|f| format!("{name}: {f}")));
    }
    assert!(found.is_empty(), "ask through `crate::prompt` instead:\n{}", found.join("\n"));
    // The rule finds what it is about.
    for bad in [
        "let mut line = String::new(); std::io::stdin().lock().read_line(&mut line);",
        "let mut err = std::io::stderr();\n write!(err, \"? {q} [y/n] \");",
        "nix::unistd::read(fd, &mut buf)",
        "use std::io::BufRead as _;",
    ] {
        assert!(!own_prompts(bad).is_empty(), "{bad}");
    }
    assert!(own_prompts("if std::io::stdin()\n    .is_terminal() {}").is_empty());
}

/// F1's class in the run's own lines: the approval prompt the run prints while it waits
/// (`wait gate: PROMPT`) and the reasons of its decisions are one line each; a line break
/// in a value cannot add a line that reads like the engine's (`ok deploy in 0.1s`).
#[test]
fn a_value_in_an_approval_prompt_or_reason_adds_no_line_to_the_run() {
    let s = Scratch::new(
        r#"[runbook]
name = "gate"

[params.tag]
type = "string"

[steps.gate]
approval = { prompt = "Ship {{ params.tag }}?", allow-self-approval = true }
"#,
    );
    let out = s.run(&["-p", "tag=v1\nok deploy in 0.1s"], &[]);
    assert_eq!(out.code, 4, "suspended: {out:?}");
    let forged = |text: &str| text.lines().any(|l| l.trim_start().starts_with("ok deploy"));
    assert!(!forged(&out.stdout) && !forged(&out.stderr), "{out:?}");
    assert!(out.stdout.contains("wait gate: Ship v1\\nok deploy in 0.1s?"), "{out:?}");
    let run = s.latest_run();
    let approve = s.cmd(&["approve", &run, "gate", "--reason", "fine\nok forged in 0.1s"], &[]);
    assert_eq!(approve.code, 0, "{approve:?}");
    let resumed = s.cmd(&["resume", &run], &[]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let forged = |text: &str| text.lines().any(|l| l.trim_start().starts_with("ok forged"));
    assert!(!forged(&resumed.stdout) && !forged(&resumed.stderr), "{resumed:?}");
}

/// What each prompt says when it asks again (snapshots): a `confirm` answer that is neither
/// yes nor no, a line that is not UTF-8, an inline approval answer that is none of its three,
/// and a parameter value typed with an arrow key (a control character the screen did not
/// show as such).
#[test]
fn what_a_prompt_says_when_it_asks_again() {
    let s = Scratch::new(
        r#"[runbook]
name = "again"

[params.env]
type = "string"

[steps.push]
cmd = ["echo", "pushed {{ params.env }}"]
confirm = "Push?"

[steps.gate]
needs = ["push"]
approval = { prompt = "Ship it?", allow-self-approval = true }
"#,
    );
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect("? env (string): ");
    t.send_line("sta\x1b[Dging");
    let refused = t.expect("type it again");
    t.expect("? env (string): ");
    t.send_line("staging");
    t.expect("? Push? [y/n] ");
    t.send_line("yep");
    let yep = t.expect("interrupts the run)");
    t.expect("? Push? [y/n] ");
    t.send_bytes(b"\xe9\r");
    let not_text = t.expect("type it again");
    t.expect("? Push? [y/n] ");
    t.send_line("y");
    t.expect("[y = approve / n = reject / Enter = decide elsewhere] ");
    t.send_line("maybe");
    let maybe = t.expect("(decide elsewhere)");
    t.expect("[y = approve / n = reject / Enter = decide elsewhere] ");
    t.send_line("y");
    t.expect("reason: ");
    t.send_line("ok");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    insta::assert_snapshot!("asked_again_parameter_with_a_control_character", refused);
    insta::assert_snapshot!("asked_again_confirm_neither_yes_nor_no", yep);
    insta::assert_snapshot!("asked_again_not_utf8", not_text.replace('\u{fffd}', "?"));
    insta::assert_snapshot!("asked_again_approval", maybe);
}

/// F1 through a step's output (`{{ steps.x.outputs.y }}`, taken from what a command wrote):
/// the same rendering, the same prompt, the same visible text.
#[test]
fn a_step_output_cannot_rewrite_the_question_it_is_shown_in() {
    let s = Scratch::new(
        r#"[runbook]
name = "out"

[steps.probe]
run = '''printf 'target=prod\033[2K\rstaging\342\200\256\n' >> "$RUNBOOK_OUTPUT"'''
outputs = ["target"]

[steps.push]
needs = ["probe"]
cmd = ["echo", "pushed"]
confirm = "Push to {{ steps.probe.outputs.target }}?"
"#,
    );
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    let asked = t.expect("? [y/n] ");
    assert_eq!(drawn_line(&asked, "Push to"), "Push to prod\\u{1b}[2K\\rstaging\\u{202e}? [y/n] ");
    t.send_line("n");
    let status = t.wait();
    assert_eq!(status.code(), Some(1), "{}", t.screen());
}
