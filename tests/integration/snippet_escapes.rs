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

/// Trojan Source (CVE-2021-42574, issue 15 point 5): bidi controls, zero-width and every
/// other invisible, format, private-use, unassigned or default-ignorable character
/// (`shown::unnameable`, the predicate that refuses them in `for-each` elements) in a
/// runbook's line is escaped in a diagnostic's snippet, never written raw: a reviewer reading
/// the error reads the bytes, not a reordered or hidden line. Every assigned code point of
/// those classes (and a sample of the others), in a comment on the line at fault.
#[test]
fn a_snippet_writes_no_raw_invisible_or_bidi_character() {
    let class =
        regex::Regex::new(r"[\p{Cf}\p{Zl}\p{Zp}\p{Zs}\p{Default_Ignorable_Code_Point}\p{Co}\p{Cn}--[\x20]]")
            .expect("re");
    let rare = regex::Regex::new(r"[\p{Co}\p{Cn}]").expect("re");
    let mut corpus = Vec::new();
    let mut seen_rare = 0usize;
    for c in (0xa0u32..=0x10FFFF).filter_map(char::from_u32) {
        let mut b = [0u8; 4];
        let s: &str = c.encode_utf8(&mut b);
        if class.is_match(s) {
            if rare.is_match(s) {
                seen_rare += 1;
                if seen_rare % 9973 != 1 {
                    continue;
                }
            }
            corpus.push(c);
        }
    }
    assert!(corpus.len() > 400, "{}", corpus.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut leaks = Vec::new();
    for (i, chunk) in corpus.chunks(12).enumerate() {
        let payload: String = chunk.iter().flat_map(|c| [*c, 'x']).collect();
        let text = format!("[runbook]\nname = \"e\"\n[steps.a]\nrun = 5 # {payload}\n");
        let f = format!("t{i}.toml");
        std::fs::write(dir.path().join(&f), &text).expect("write");
        let out = run_in_with_env(dir.path(), &["check", &f, "--color", "never"], &[]);
        ok(&out, 3);
        let raw: Vec<String> =
            out.stderr.chars().filter(|k| chunk.contains(k)).map(|k| format!("U+{:04X}", k as u32)).collect();
        if !raw.is_empty() {
            leaks.push(raw.join(" "));
        }
        for c in chunk {
            let escape = format!("\\u{{{:x}}}", *c as u32);
            if !out.stderr.contains(&escape) {
                leaks.push(format!("U+{:04X} not shown as {escape}", *c as u32));
            }
        }
    }
    assert!(leaks.is_empty(), "{} leaks:\n{}", leaks.len(), leaks.join("\n"));
}
