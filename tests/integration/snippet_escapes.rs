//! Red team adv17b F7 (terminal, promise 5): a diagnostic's source snippet shows the
//! runbook's bytes as every other shown text is shown: control characters (C0 but tab and
//! line feed, DEL, C1, ESC) escaped, the caret still under the right column. Failed before:
//! the snippet wrote the runbook's escape sequences raw (`ESC[2J` cleared the screen, a fake
//! "ok" was drawn, `ESC[8m` concealed the rest), with `--color never` and `NO_COLOR` too.

use crate::support::{ok, run_in_with_env};

/// Every control character a terminal acts on, in a comment (RB001: control characters
/// are not allowed in TOML) and in a value that is refused for another reason.
#[test]
fn a_snippet_writes_no_raw_control_character() {
    let mut controls: Vec<char> =
        (0u32..0x20).chain([0x7f]).chain(0x80..0xa0).filter_map(char::from_u32).collect();
    controls.retain(|c| *c != '\n' && *c != '\t' && *c != '\r');
    let dir = tempfile::tempdir().expect("tempdir");
    let mut leaks = Vec::new();
    for (i, c) in controls.iter().enumerate() {
        for (what, text) in [
            (
                "comment",
                format!(
                    "[runbook]\nname = \"e\"\n[steps.a]\n# x{c}[2J{c}[Hok: 1 runbook valid{c}[8m\nneeds = [\"zz\"]\nrun = \"true\"\n"
                ),
            ),
            ("value", format!("[runbook]\nname = \"e\"\n[steps.a]\nrun = \"true\"\nneeds = [\"b{c}[2J\"]\n")),
        ] {
            let f = format!("e{i}-{what}.toml");
            std::fs::write(dir.path().join(&f), &text).expect("write");
            for color in ["never", "always"] {
                let out = run_in_with_env(dir.path(), &["check", &f, "--color", color], &[]);
                ok(&out, 3);
                let bad: Vec<char> = out
                    .stderr
                    .chars()
                    .chain(out.stdout.chars())
                    .filter(|k| controls.contains(k) && (color == "never" || *k != '\u{1b}'))
                    .collect();
                if !bad.is_empty() {
                    leaks.push(format!("{:?} {what} --color {color}: {bad:?}", *c));
                }
                if color == "always" && out.stderr.contains("\u{1b}[2J") {
                    leaks.push(format!("{:?} {what} --color always: raw ESC[2J", *c));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "{} leaks:\n{}", leaks.len(), leaks.join("\n"));
}

/// What the operator reads: the escapes, and the caret under the character at fault.
#[test]
fn a_snippet_shows_escapes_at_the_right_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("evil.toml"),
        "[runbook]\nname = \"e\"\n# \u{1b}[2J\u{1b}[Hok: 1 runbook valid\u{1b}[8m\n[steps.a]\nrun = \"true\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("value.toml"),
        "[runbook]\nname = \"e\"\n[steps.a]\nrun = \"true\"\nneeds = [\"\u{1b}[2Jb\", \"nope\"]\n",
    )
    .expect("write");
    let out = run_in_with_env(dir.path(), &["check", "evil.toml", "--color", "never"], &[("NO_COLOR", "1")]);
    ok(&out, 3);
    insta::assert_snapshot!("snippet_escapes_comment", out.stderr);
    let out = run_in_with_env(dir.path(), &["check", "value.toml", "--color", "never"], &[]);
    ok(&out, 3);
    insta::assert_snapshot!("snippet_escapes_value", out.stderr);
}
