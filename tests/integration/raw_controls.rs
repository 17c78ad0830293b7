//! Terminal injection, one class (red teams adv18b F8, adv18a S4): every text a runbook
//! provides (a step id, a schedule name, a title, a prompt, an approval input's `enum`)
//! reaches the terminal through the one escaping of a line. A CR or LF in it can never
//! print a line of its own choosing ("ok: 1 runbook valid"); ESC and bidi controls never
//! reach the terminal raw.

use crate::support::{Output, Scratch, run_in};

/// A line of its own choosing is one that starts at the first column: a plan shows a
/// multi-line script or prompt indented under its step, each line marked.
/// What a hostile name holds: CR, LF, ESC, a bidi override, and a forged line after them.
const EVIL: &str = r"\r\nFORGED ok: 1 runbook valid\u001b[2K\u202e\r\n";

fn clean(what: &str, out: &Output) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!text.contains('\r'), "{what} {stream}: a raw CR\n{text}");
        assert!(!text.contains('\u{1b}'), "{what} {stream}: a raw ESC\n{text}");
        assert!(!text.contains('\u{202e}'), "{what} {stream}: a raw bidi override\n{text}");
        assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{what} {stream}: a forged line\n{text}");
    }
}

/// A step id and a schedule name with CR/LF: `check` refuses them, on one line each.
#[test]
fn names_check_refuses_are_printed_on_their_own_line() {
    let step = format!("[runbook]\nname = \"x\"\n\n[steps.\"a{EVIL}\"]\nrun = \"true\"\n");
    let place = Scratch::new(&step);
    let out = run_in(place.path(), &["check", "r.toml"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    clean("check step id", &out);
    std::fs::write(place.path().join("rb.toml"), "[runbook]\nname = \"rb\"\n[steps.a]\nrun = \"true\"\n")
        .expect("rb");
    std::fs::write(
        place.path().join("s.toml"),
        format!("[schedule.\"a{EVIL}\"]\nrunbook = \"rb.toml\"\ncron = \"* * * * *\"\ntime-zone = \"UTC\"\n"),
    )
    .expect("schedules");
    let out = run_in(place.path(), &["check", "s.toml"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    clean("check schedule name", &out);
    for (what, text) in [
        ("need", format!("[runbook]\nname = \"x\"\n[steps.a]\nneeds = [\"b{EVIL}\"]\nrun = \"true\"\n")),
        ("param", format!("[runbook]\nname = \"x\"\n[params.\"p{EVIL}\"]\ntype = \"string\"\n")),
        ("output", format!("[runbook]\nname = \"x\"\n[steps.a]\nrun = \"true\"\noutputs = [\"o{EVIL}\"]\n")),
    ] {
        std::fs::write(place.path().join("r.toml"), text).expect("runbook");
        let out = run_in(place.path(), &["check", "r.toml"]);
        assert_eq!(out.code, 3, "{what}: {}", out.stderr);
        clean(what, &out);
    }
}

/// Every text slot a valid runbook has, holding CR, LF, ESC and bidi: check, plan, run (its
/// "waits for approval" note with the `enum`), show and approve print none of them raw.
#[test]
fn every_text_slot_of_a_valid_runbook_is_printed_escaped() {
    let text = format!(
        r#"[runbook]
name = "x"
title = "t{EVIL}"
description = "d{EVIL}"

[params.p]
type = "string"
default = "v{EVIL}"
description = "pd{EVIL}"

[steps.a]
title = "a{EVIL}"
run = "echo {{{{ params.p }}}}"

[steps.g]
needs = ["a"]
title = "g{EVIL}"
approval = {{ prompt = "ok{EVIL}", inputs = {{ t = {{ type = "string", enum = ["c{EVIL}", "y"], description = "i{EVIL}" }} }} }}
"#
    );
    let place = Scratch::new(&text);
    for args in [&["check", "r.toml"][..], &["plan", "r.toml"]] {
        let out = run_in(place.path(), args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        clean(&format!("{args:?}"), &out);
    }
    // A review document shows a multi-line script or prompt in a code block, each line as
    // it runs; no raw control character reaches it either.
    let out = run_in(place.path(), &["plan", "r.toml", "--format", "markdown"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains(['\r', '\u{1b}', '\u{202e}']), "markdown: {}", out.stdout);
    let out = place.run(&["--yes"], &[]);
    clean("run", &out);
    assert!(
        out.stdout.contains("waits for approval") || out.stderr.contains("waits for approval"),
        "{}",
        out.stderr
    );
    let run = place.latest_run();
    let out = place.cmd(&["show", &run], &[]);
    clean("show", &out);
    let out = place.cmd(&["approve", &run, "g", "--input", "t=nope", "--as", "bob", "--reason", "r"], &[]);
    clean("approve (refused)", &out);
    let out = place.cmd(&["approve", &run, "g", "--input", "t=y", "--as", "bob", "--reason", "r"], &[]);
    clean("approve", &out);
}
