//! Red team adv16t A4 (promise 5): the 8 MiB bound is per file, and includes multiplied it
//! (4 includes of an 8 MB runbook: a text plan of 1.1 GB, an abort). A runbook with its
//! includes expanded holds at most as many bytes as one file may: past that, RB065 at the
//! include that takes it past, from `check`, `plan` (every format) and `run`, before
//! anything is rendered.

use std::path::Path;

use crate::support::{ok, run_in};

const MIB: usize = 1024 * 1024;

/// A valid runbook of about `bytes` bytes: one step, padded with a comment.
fn padded(dir: &Path, name: &str, bytes: usize) {
    let mut s = format!(
        "[runbook]\nname = \"{}\"\ntitle = \"t\"\n\n[steps.a]\ncmd = [\"true\"]\n",
        name.trim_end_matches(".toml")
    );
    let line = format!("# {}\n", "x".repeat(1021));
    while s.len() + line.len() <= bytes {
        s.push_str(&line);
    }
    std::fs::write(dir.join(name), s).expect("write");
}

fn includer(dir: &Path, name: &str, files: &[&str]) {
    let mut s = format!("[runbook]\nname = \"{}\"\ntitle = \"t\"\n", name.trim_end_matches(".toml"));
    for (i, f) in files.iter().enumerate() {
        s.push_str(&format!("\n[steps.i{i}]\nrunbook = {{ file = \"{f}\" }}\n"));
    }
    std::fs::write(dir.join(name), s).expect("write");
}

#[test]
fn the_expanded_runbook_is_bounded_in_bytes_at_the_include_that_goes_past() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    padded(d, "big.toml", 3 * MIB);
    padded(d, "small.toml", 200);
    // Under the bound: two includes of 3 MiB, and many small ones.
    includer(d, "two.toml", &["big.toml", "big.toml"]);
    includer(d, "many.toml", &["small.toml"; 200]);
    for f in ["two.toml", "many.toml"] {
        ok(&run_in(d, &["check", f]), 0);
        ok(&run_in(d, &["plan", f, "--format", "json"]), 0);
    }
    // Past it: three includes (9 MiB, refused at the third, line 12), two includes of a
    // runbook that includes two (12 MiB, refused at the second, line 9), four of the same
    // file (the red team's shape).
    includer(d, "three.toml", &["big.toml", "big.toml", "big.toml"]);
    includer(d, "nested.toml", &["two.toml", "two.toml"]);
    includer(d, "four.toml", &["big.toml"; 4]);
    for (f, at) in
        [("three.toml", "three.toml:12:"), ("nested.toml", "nested.toml:9:"), ("four.toml", "four.toml:12:")]
    {
        for args in [
            &["check", f][..],
            &["plan", f],
            &["plan", f, "--format", "json"],
            &["plan", f, "--format", "markdown"],
            &["plan", f, "--format", "html"],
            &["run", f, "--yes", "--state", "s.db"],
        ] {
            let out = run_in(d, args);
            assert_eq!(out.code, 3, "{args:?}: {}", &out.stderr[..out.stderr.len().min(3000)]);
            assert!(out.stdout.len() < 4096, "{args:?}: rendered {} bytes", out.stdout.len());
            let e = &out.stderr;
            assert!(e.contains(at) && e.contains("error[RB065]"), "{args:?}: {e}");
            assert!(e.contains("bytes once its includes are expanded"), "{args:?}: {e}");
            assert!(e.contains("help:"), "{args:?}: {e}");
        }
    }
}
