//! Values cannot inject in any shell context (issue 11, promise 4).
//!
//! Regression tests, through the real binary, for the contexts where a shell-quoted word
//! was still code: an unquoted heredoc, a comment, `[[ -lt ]]`, and `{% autoescape false %}`.

use std::path::Path;

use crate::support::{ok, run_in};

/// Write `r.toml` and `p.toml` (params, TOML) into `dir`.
fn write(dir: &Path, runbook: &str, params: &str) {
    std::fs::write(dir.join("r.toml"), runbook).expect("runbook");
    std::fs::write(dir.join("p.toml"), params).expect("params");
}

fn run(dir: &Path) -> crate::support::Output {
    run_in(dir, &["run", "r.toml", "--params-file", "p.toml", "--state", "s.db", "--yes"])
}

#[test]
fn a_value_in_an_unquoted_heredoc_is_text_not_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "[runbook]\nname = \"heredoc\"\n[params.msg]\ntype = \"string\"\n[steps.a]\nrun = '''\ncat <<EOF > out.txt\nmessage: {{ params.msg }}\nEOF\n'''\n",
        "msg = \"$(touch pwned) `touch pwned2` ${HOME}\"\n",
    );
    let out = run(dir.path());
    ok(&out, 0);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
    assert!(!dir.path().join("pwned2").exists(), "the value ran as code");
    let text = std::fs::read_to_string(dir.path().join("out.txt")).expect("out.txt");
    assert_eq!(text, "message: $(touch pwned) `touch pwned2` ${HOME}\n");
}

#[test]
fn a_value_with_a_newline_in_a_comment_stays_in_the_comment() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "[runbook]\nname = \"comment\"\n[params.msg]\ntype = \"string\"\n[steps.a]\nrun = '''\n# deploying {{ params.msg }}\necho done > out.txt\n'''\n",
        "msg = \"v1\\ntouch pwned\\n#\"\n",
    );
    let out = run(dir.path());
    ok(&out, 0);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).ok().as_deref(), Some("done\n"));
}

#[test]
fn a_string_in_an_arithmetic_test_is_refused_by_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = "[runbook]\nname = \"arith\"\n[params.x]\ntype = \"string\"\n[steps.a]\nrun = '[[ 3 -lt {{ params.x }} ]] && echo big > out.txt'\n";
    write(dir.path(), runbook, "x = \"a[$(touch pwned)]\"\n");
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    assert!(check.stderr.contains("r.toml:6:17: error[RB047]"), "{}", check.stderr);
    let out = run(dir.path());
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
    // An integer cannot be code: the same test with a typed parameter runs.
    write(dir.path(), &runbook.replace("\"string\"", "\"integer\""), "x = 5\n");
    ok(&run(dir.path()), 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).ok().as_deref(), Some("big\n"));
}

#[test]
fn autoescape_false_in_run_text_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "[runbook]\nname = \"autoescape\"\n[params.msg]\ntype = \"string\"\n[steps.a]\nrun = '{% autoescape false %}echo {{ params.msg }}{% endautoescape %}'\n",
        "msg = \"x; touch pwned\"\n",
    );
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    assert!(check.stderr.contains("error[RB048]"), "{}", check.stderr);
    let out = run(dir.path());
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
}
