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
