//! The plan views say exactly what runs (red team adv14b, findings F2, F3, F8, F9, F13).
//!
//! Each test drives the real binary: a script with terminal escapes or a carriage return
//! cannot make the text plan show another command; a real carriage return and the six
//! characters `\u{d}` never look alike in the review document; bidi and zero-width
//! characters never reach it raw; the text plan and the review state the engine's own
//! failure rules for `finally` steps and approvals and claim a point of no return only when
//! it is one; a 3000-step chain gives a plan linear in its size; a CRLF runbook runs LF
//! scripts.

use crate::support::{Output, Scratch, ok, run_in};

/// `runbook plan r.toml ARGS` in the folder (a plan opens no state store).
fn plan(s: &Scratch, args: &[&str]) -> Output {
    let mut all = vec!["plan", "r.toml"];
    all.extend_from_slice(args);
    run_in(s.path(), &all)
}

/// Characters a terminal or a document would not show as themselves, but the line break.
fn hidden(text: &str) -> Vec<(usize, char)> {
    text.char_indices().filter(|(_, c)| *c != '\n' && runbook_core::shown::is_hidden(*c)).collect()
}

#[test]
fn the_text_plan_shows_escapes_and_carriage_returns_as_text() {
    let s = Scratch::new("");
    std::fs::create_dir(s.path().join("victim")).expect("mkdir");
    let victim = s.path().join("victim").display().to_string();
    std::fs::write(
        s.path().join("r.toml"),
        format!(
            "[runbook]\nname = \"esc\"\n\n[steps.wipe]\ntitle = \"say\\u001b[2K\\rhello\"\nconfirm = \"Force-push x\\u001b[2K\\rharmless\"\nrun = \"rm -rf {victim} # \\u001b[2K\\recho hello\"\n"
        ),
    )
    .expect("write");
    let plan = plan(&s, &[]);
    ok(&plan, 0);
    assert_eq!(hidden(&plan.stdout), vec![], "{:?}", plan.stdout);
    let run_line = plan.stdout.lines().find(|l| l.trim_start().starts_with("run ")).expect("a run line");
    assert!(run_line.contains("rm -rf") && run_line.contains("\\u{1b}[2K\\recho hello"), "{run_line}");
    // The plan says, outside the value, which characters were replaced.
    assert!(plan.stdout.contains("U+001B") && plan.stdout.contains("U+000D"), "{}", plan.stdout);
    assert!(plan.stdout.contains("confirm     Force-push x\\u{1b}[2K\\rharmless"), "{}", plan.stdout);
}

#[test]
fn a_carriage_return_and_the_text_of_its_escape_never_look_alike_in_the_review() {
    let real = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"printf one\\rtwo\"\n");
    let typed = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = 'printf one\\u{d}two'\n");
    for format in ["markdown", "text"] {
        let a = plan(&real, &["--format", format]);
        let b = plan(&typed, &["--format", format]);
        ok(&a, 0);
        ok(&b, 0);
        assert_ne!(a.stdout, b.stdout, "{format}");
        assert!(a.stdout.contains("U+000D"), "{format}: {}", a.stdout);
        assert!(!b.stdout.contains("U+000D"), "{format}: {}", b.stdout);
    }
    let bidi = Scratch::new(
        "[runbook]\nname = \"bidi\"\n\n[steps.a]\ntitle = \"t\\u2066x\"\nrun = \"echo safe # \\u202e ; rm -rf /tmp/x \\u202c\\u200b\"\n",
    );
    for format in ["markdown", "text"] {
        let out = plan(&bidi, &["--format", format]);
        ok(&out, 0);
        assert_eq!(hidden(&out.stdout), vec![], "{format}: {}", out.stdout);
        for c in ["U+202E", "U+202C", "U+200B"] {
            assert!(out.stdout.contains(c), "{format} does not name {c}: {}", out.stdout);
        }
    }
}
