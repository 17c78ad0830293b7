//! Promise 5 on the shape of a runbook's includes (red team adv15a F12): a chain of includes
//! deeper than [`MAX_INCLUDE_DEPTH`] is refused with RB065 at the include that goes past it,
//! by `check`, `plan` (every format) and `run`, before anything is planned or runs; a chain at
//! the limit is checked and planned as usual. Validation and planning recurse once per level,
//! so without the bound a 1,000-file chain (1,000 steps) overflowed the stack.

use std::path::Path;
use std::time::Duration;

use crate::support::{HUNG, run_limited};

/// Only to turn a hang into a failure on a loaded machine; never a speed assertion.
const LIMIT: Duration = Duration::from_secs(120);

/// The engine's bound (engine/core/src/model.rs `MAX_INCLUDE_DEPTH`): the top runbook and
/// this many levels of includes under it.
const MAX_INCLUDE_DEPTH: usize = 16;

/// `r0.toml` includes `r1.toml` ... includes `r{levels}.toml`, whose step touches `ran`.
fn chain(d: &Path, levels: usize) {
    for i in 0..levels {
        std::fs::write(
            d.join(format!("r{i}.toml")),
            format!("[runbook]\nname = \"r{i}\"\n[steps.inc]\nrunbook = {{ file = \"r{}.toml\" }}\n", i + 1),
        )
        .expect("write");
    }
    std::fs::write(
        d.join(format!("r{levels}.toml")),
        format!("[runbook]\nname = \"leaf\"\n[steps.leaf]\nrun = \"touch {}\"\n", d.join("ran").display()),
    )
    .expect("write");
}

#[test]
fn regression_an_include_chain_past_the_depth_limit_is_refused_never_a_stack_overflow() {
    // The red team's 1,000 files, and the first depth past the limit.
    for levels in [MAX_INCLUDE_DEPTH + 1, 1000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        chain(d, levels);
        for args in [
            &["check", "r0.toml"][..],
            &["plan", "r0.toml"],
            &["plan", "r0.toml", "--format", "json"],
            &["plan", "r0.toml", "--format", "markdown"],
            &["plan", "r0.toml", "--format", "html"],
            &["run", "r0.toml", "--yes", "--state", "s.db"],
        ] {
            let out = run_limited(d, args, &[], LIMIT);
            let what = format!("{levels} levels, {args:?}");
            assert_ne!(out.code, HUNG, "{what}: hung");
            assert_eq!(
                out.code,
                3,
                "{what}: exit {}\n{}",
                out.code,
                &out.stderr[..out.stderr.len().min(3000)]
            );
            assert!(out.stderr.contains("RB065"), "{what}: {}", &out.stderr[..out.stderr.len().min(3000)]);
            assert!(
                out.stderr.contains(&format!("more than {MAX_INCLUDE_DEPTH} levels")),
                "{what}: the limit is named: {}",
                &out.stderr[..out.stderr.len().min(3000)]
            );
            // Said once, where the chain goes past the limit (not once per level).
            assert_eq!(out.stderr.matches("levels of includes").count(), 1, "{what}: {}", out.stderr);
            assert!(out.stderr.len() < 20_000, "{what}: {} bytes of errors", out.stderr.len());
            assert!(!d.join("ran").exists(), "{what}: a step ran");
        }
    }
}

#[test]
fn an_include_chain_at_the_depth_limit_is_checked_planned_and_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    chain(d, MAX_INCLUDE_DEPTH);
    let out = run_limited(d, &["check", "r0.toml"], &[], LIMIT);
    assert_eq!(out.code, 0, "check: {}", out.stderr);
    let out = run_limited(d, &["plan", "r0.toml", "--format", "json"], &[], LIMIT);
    assert_eq!(out.code, 0, "plan: {}", out.stderr);
    // The pinned plan of the deepest chain is read back by `plan --diff` (serde_json's
    // nesting limit must not be the bound that refuses it).
    std::fs::write(d.join("p.json"), &out.stdout).expect("write");
    let out = run_limited(d, &["plan", "--diff", "p.json", "p.json"], &[], LIMIT);
    assert_eq!(out.code, 0, "plan --diff: {}", out.stderr);
    let out = run_limited(d, &["run", "r0.toml", "--yes", "--state", "s.db"], &[], LIMIT);
    assert_eq!(out.code, 0, "run: {}\n{}", out.stdout, out.stderr);
    assert!(d.join("ran").exists(), "the leaf ran");
}

/// The depth of a file already checked elsewhere counts where it is included again: `m`
/// includes `r6` (11 levels under it: fine at level 1) and, through `t1` ... `t5`, again at
/// level 6, which makes 17 levels. The cached check must not hide the second path.
#[test]
fn a_file_checked_once_is_measured_again_where_it_is_included_deeper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    chain(d, MAX_INCLUDE_DEPTH + 1);
    let t = |i: usize, target: &str| {
        format!("[runbook]\nname = \"t{i}\"\n[steps.i]\nrunbook = {{ file = \"{target}\" }}\n")
    };
    for i in 1..5 {
        std::fs::write(d.join(format!("t{i}.toml")), t(i, &format!("t{}.toml", i + 1))).expect("write");
    }
    std::fs::write(d.join("t5.toml"), t(5, "r6.toml")).expect("write");
    std::fs::write(
        d.join("m.toml"),
        "[runbook]\nname = \"m\"\n[steps.a]\nrunbook = { file = \"r6.toml\" }\n[steps.b]\nrunbook = { file = \"t1.toml\" }\n",
    )
    .expect("write");
    for args in [&["check", "m.toml"][..], &["plan", "m.toml", "--format", "json"]] {
        let out = run_limited(d, args, &[], LIMIT);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("t5.toml:4:20: error[RB065]")
                && out.stderr.contains("at level 6, and it has 11 more under it"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Without the second path, `r6` at level 1 is fine.
    std::fs::write(
        d.join("m.toml"),
        "[runbook]\nname = \"m\"\n[steps.a]\nrunbook = { file = \"r6.toml\" }\n",
    )
    .expect("write");
    let out = run_limited(d, &["check", "m.toml"], &[], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
