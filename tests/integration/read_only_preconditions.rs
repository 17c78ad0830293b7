//! Preconditions only read (issue 12, point 8's class): what the engine can enforce, it
//! enforces; what it can only see, `check` flags (RB081).

use crate::support::{Scratch, files, ok, root, run};

/// RB081 warnings the shipped runbooks still carry, as (file, precondition). Each is being
/// removed in its runbook's own change; backup.toml's `mkdir -p` was the last one. It only shrinks.
const KNOWN: &[(&str, &str)] = &[];

#[test]
fn the_shipped_runbooks_have_no_precondition_that_writes() {
    let dir = root().join("runbooks");
    for path in files(&dir, ".toml").into_iter().filter(|p| p.parent() == Some(dir.as_path())) {
        let file = crate::support::relative(&path);
        let out = run(&["check", &file]);
        ok(&out, 0);
        for line in out.stderr.lines().filter(|l| l.contains("warning[RB081]")) {
            assert!(
                KNOWN.iter().any(|(f, p)| file == *f && line.contains(&format!("precondition `{p}`"))),
                "a precondition of a shipped runbook writes:\n{line}"
            );
        }
    }
}

#[test]
fn a_sql_precondition_runs_read_only_whatever_it_says() {
    let s = Scratch::new(
        r#"[runbook]
name = "ro"

[preconditions.sneaky]
sql = { url = "sqlite://db.sqlite?mode=rwc", query = "CREATE TABLE written_by_a_precondition (x INTEGER)", read-only = false }
message = "no se pudo comprobar"

[steps.after]
run = "echo ran > ran"
"#,
    );
    // An empty database file: a read-only connection can open it.
    std::fs::write(s.path().join("db.sqlite"), b"").expect("db file");
    let out = s.run(&["--yes"], &[]);
    assert_ne!(out.code, 0, "a precondition wrote: {out:?}");
    assert!(s.read("ran").is_empty(), "the step ran");
    assert!(out.stderr.contains("precondition `sneaky`"), "{}", out.stderr);
    let db = std::fs::read(s.path().join("db.sqlite")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&db).contains("written_by_a_precondition"),
        "the precondition's CREATE TABLE reached the database"
    );
}
