//! The cost of `plan --diff` is bounded by the size of the two plan files, whatever they hold
//! (promise 5, issue 15; red team adv18b F2, F5). Through the real binary, under `ulimit -v`
//! (a memory bound, never a clock): the line diffs of a whole document share one budget, past
//! which a changed text is shown as one hunk and the output says so.

use std::path::Path;

use crate::plan_size::bounded_kib;

/// The binary's address space, in KiB (`ulimit -v`).
const MEMORY_KIB: u64 = 1_200_000;

/// `runbook ARGS` in `dir` under [`MEMORY_KIB`]: its exit code and output.
fn bounded(dir: &Path, args: &[&str]) -> crate::support::Output {
    bounded_kib(dir, args, MEMORY_KIB)
}

/// A runbook of `steps` steps, each running a script of `lines` lines of `line`.
fn texts(steps: usize, lines: usize, line: &str) -> String {
    let mut t = String::from("[runbook]\nname = \"texts\"\n");
    let body = format!("{line}\n").repeat(lines);
    for i in 0..steps {
        t.push_str(&format!("\n[steps.s{i}]\nrun = \"\"\"\n{body}\"\"\"\n"));
    }
    t
}

/// The plans of two such runbooks, `a` lines against `b` lines, written as `old.json` and
/// `new.json` in `dir` by `plan -o`.
fn two_plans(dir: &Path, steps: usize, lines: usize) {
    for (name, line) in [("old", "a"), ("new", "b")] {
        std::fs::write(dir.join(format!("{name}.toml")), texts(steps, lines, line)).expect("write");
        let out = bounded(dir, &["plan", &format!("{name}.toml"), "-o", &format!("{name}.json")]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
}

/// Red team adv18b F2: 100 texts of 2,000 lines, each wholly changed (exactly the per-text
/// limit of differing lines, so each one was a full Myers diff: 44 s on a debug build), and
/// 1,000 of them. The line diffs share one budget per document: past it the remaining texts
/// are one hunk each, every step is still named, and the output says the diff was summarised.
#[test]
fn many_wholly_changed_texts_share_one_line_diff_budget() {
    for steps in [100, 1000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        two_plans(p, steps, 2000);
        for format in ["text", "json"] {
            let out = bounded(p, &["plan", "--diff", "old.json", "new.json", "--format", format]);
            assert_eq!(out.code, 1, "{steps} steps, {format}: {}", out.stderr);
            assert!(
                out.stdout.contains("line diffs of this plan compare at most"),
                "{steps} steps, {format}: no summary note in {}",
                &out.stdout[..out.stdout.len().min(2000)]
            );
            for i in [0, steps / 2, steps - 1] {
                assert!(out.stdout.contains(&format!("s{i}")), "{steps} steps, {format}: s{i} is named");
            }
        }
    }
}

/// The plan `runbook plan -o` writes for a one-step runbook, as text without its closing `}`:
/// a head that more top-level keys can follow.
fn head(dir: &Path) -> String {
    std::fs::write(dir.join("r.toml"), "[runbook]\nname = \"p\"\n\n[steps.a]\nrun = \"echo hi\"\n")
        .expect("write");
    let out = bounded(dir, &["plan", "r.toml", "-o", "base.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let base = std::fs::read_to_string(dir.join("base.json")).expect("plan");
    base.trim_end().strip_suffix('}').expect("a JSON object").to_string()
}

/// `head` and `"KEY": {"k0": V, "k1": V, ...}` with `n` one-digit values.
fn padded(head: &str, key: &str, n: usize, v: u8) -> String {
    let mut doc = String::with_capacity(head.len() + n * 12 + 32);
    doc.push_str(head);
    doc.push_str(&format!(",\n  \"{key}\": {{"));
    for i in 0..n {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&format!("\"k{i}\":{v}"));
    }
    doc.push_str("}\n}\n");
    doc
}

/// Red team adv18b F5: a plan file holding a key no plan has (`"x"`, a million tiny values,
/// 12 MB) was walked leaf by leaf (380 MB resident, 72 MB of output). A plan document holds
/// only the keys `runbook plan -o` writes: any other top-level key is refused with RB123 by
/// `plan --diff` and `run --plan`, named, found while the values are counted, before any is
/// built: within about ten times the files' size in memory.
#[test]
fn a_plan_file_with_a_key_no_plan_has_is_refused_before_it_is_built() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let head = head(p);
    for (name, v) in [("old.json", 0), ("new.json", 1)] {
        std::fs::write(p.join(name), padded(&head, "x", 1_000_000, v)).expect("write");
    }
    let input = std::fs::metadata(p.join("old.json")).expect("old").len();
    assert!(input > 10_000_000, "the red team's shape: {input} bytes");
    for args in [
        vec!["plan", "--diff", "old.json", "new.json"],
        vec!["plan", "--diff", "base.json", "new.json"],
        vec!["run", "--plan", "new.json", "--yes", "--state", "s.db"],
    ] {
        let out = bounded_kib(p, &args, 10 * 2 * input / 1024 + BASELINE_KIB);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("RB123"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("top-level key `x`"), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: nothing compared: {}", out.stdout);
    }
    assert!(!p.join("s.db").exists(), "nothing ran");
    // The message, as a user reads it: a key a tool added, named, escaped.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("base.json")).expect("plan")).expect("json");
    doc["reviewed_by\u{202e}"] = "ana".into();
    std::fs::write(p.join("pinned.json"), serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    let out = bounded(p, &["run", "--plan", "pinned.json", "--yes", "--state", "s.db"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    insta::assert_snapshot!(out.stderr);
}

/// The address space (KiB) the binary takes before it reads a plan file (its code, libraries
/// and threads' stacks): what [`bounded_kib`] adds to a bound proportional to the input.
const BASELINE_KIB: u64 = 200_000;

/// A plan whose known keys hold a million changed values (`params`, 14 MB) showed 43 MB of
/// changes. The changes shown have a byte budget: past it they are counted, not built, the
/// output says how many are not shown, and it stays within a small multiple of the input.
#[test]
fn a_million_changed_values_show_a_bounded_diff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    head(p);
    let base = std::fs::read_to_string(p.join("base.json")).expect("plan");
    for (name, v) in [("old.json", 0), ("new.json", 1)] {
        let mut doc: serde_json::Value = serde_json::from_str(&base).expect("json");
        doc["params"] = (0..1_000_000).map(|i| (format!("k{i}"), serde_json::Value::from(v))).collect();
        std::fs::write(p.join(name), serde_json::to_string(&doc).expect("json")).expect("write");
    }
    let input = std::fs::metadata(p.join("old.json")).expect("old").len();
    for format in ["text", "json"] {
        let out = bounded(p, &["plan", "--diff", "old.json", "new.json", "--format", format]);
        assert_eq!(out.code, 1, "{format}: {}", out.stderr);
        assert!(out.stdout.contains("more change(s) are not shown"), "{format}: no summary note");
        assert!(
            out.stdout.contains("params.k0") || out.stdout.contains("params.k1"),
            "{format}: the first are shown"
        );
        let shown = out.stdout.len() as u64;
        assert!(shown <= 2 * input, "{format}: {shown} bytes of output for {input} bytes of plan");
    }
}
