//! Issue 12, engine findings 5 to 7: what a template, a step's outputs and a step's
//! descendants can cost is bounded, and going over a bound is a clear failure, never an
//! abort or a hang.

use std::path::Path;
use std::time::Duration;

use crate::support::{HUNG, Output, run_limited, run_program_limited};

/// Only to turn a hang into a failure; never a speed assertion.
const LIMIT: Duration = Duration::from_secs(90);

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).expect("write");
}

/// `runbook ARGS` under an address-space cap of about 1.5 GB, so a blow-up is an abort
/// (a negative code) and never takes the machine's memory.
fn capped(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = crate::support::bin();
    let script = format!("ulimit -v 1500000; exec '{bin}' \"$@\"");
    let mut argv = vec!["-c", script.as_str(), "runbook"];
    argv.extend(args);
    run_program_limited("bash", dir, &argv, env, LIMIT)
}

/// Finding 5, and the class: a builtin filter whose output size an argument picks
/// (`tojson(indent=N)`, `indent`, `format` widths, `join` separators, `replace`, `batch`
/// fill...) is refused with RB049 before it builds its result, in `check`, `plan` and a
/// run, whether the size is written or comes from a parameter.
#[test]
fn regression_filters_whose_size_an_argument_picks_are_bounded_before_they_allocate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let big = "(range(1000)|list)";
    let cases = [
        format!("{big}|tojson(indent=1000000)|length"),
        format!("{big}|tojson(indent=3000000)|length"),
        format!("{big}|tojson(3000000)|length"),
        format!("[{big}, [{big}, [{big}]]]|tojson(indent=2000000)|length"),
        format!("{{'a': {big}, 'b': {{'c': {big}}}}}|tojson(indent=1000000)|length"),
        format!("{big}|join('x' * 1000000)|length"),
        "'%100000000s'|format('x')|length".to_string(),
        "'%.100000000f'|format(1.5)|length".to_string(),
        format!("({big}|join('\\n'))|indent(3000000)|length"),
        format!("{big}|map('string')|join('\\n')|indent(width=3000000, first=true, blank=true)|length"),
        "('x' * 1000000)|replace('x', 'y' * 1000)|length".to_string(),
        format!("{big}|batch(3000000, 'x' * 1000)|list|length"),
        "['<' * 12000000]|tojson|length".to_string(),
        "('<' * 8000000)|pprint|length".to_string(),
        format!("({big}|tojson(indent=10000))|urlencode|length"),
        format!("({big}|tojson(indent=10000))|escape|length"),
    ];
    for case in &cases {
        write(
            d,
            "r.toml",
            &format!("[runbook]\nname = \"t\"\n[steps.a]\nrun = '''echo {{{{ {case} }}}} > ran'''\n"),
        );
        for args in
            [&["check", "r.toml"][..], &["plan", "r.toml"], &["run", "r.toml", "--yes", "--state", "s.db"]]
        {
            let out = capped(d, args, &[]);
            assert_ne!(out.code, HUNG, "{case} {args:?}: hung");
            assert!(
                out.code == 3 || out.code == 1,
                "{case} {args:?}: exit {}\n{}",
                out.code,
                tail(&out.stderr)
            );
            assert!(out.stderr.contains("RB049"), "{case} {args:?}: no RB049\n{}", tail(&out.stderr));
            assert!(!d.join("ran").exists(), "{case} {args:?}: the step ran");
        }
    }
    // A parameter picks the size: `check` cannot know it, `plan` and `run` refuse it.
    let rb = "[runbook]\nname = \"t\"\n[params.n]\ntype = \"integer\"\ndefault = 2\n[steps.a]\n\
              run = 'echo {{ (range(1000)|list)|tojson(indent=params.n)|length }} > ran'\n";
    write(d, "p.toml", rb);
    let out = capped(d, &["check", "p.toml"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for args in [
        &["plan", "p.toml", "-p", "n=3000000"][..],
        &["run", "p.toml", "-p", "n=3000000", "--yes", "--state", "s.db"],
    ] {
        let out = capped(d, args, &[]);
        assert_ne!(out.code, HUNG, "{args:?}: hung");
        assert!(out.code == 3 || out.code == 1, "{args:?}: exit {}\n{}", out.code, tail(&out.stderr));
        assert!(
            out.stderr.contains("RB049") || out.stderr.contains("more work"),
            "{args:?}: {}",
            tail(&out.stderr)
        );
        assert!(!d.join("ran").exists(), "{args:?}: the step ran");
    }
    // Within the bound, the filters still work.
    write(
        d,
        "ok.toml",
        "[runbook]\nname = \"t\"\n[steps.a]\nrun = 'echo {{ [1, [2]]|tojson(indent=4)|length }} > ran'\n",
    );
    let out = capped(d, &["run", "ok.toml", "--yes", "--state", "s.db"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(d.join("ran")).expect("ran").trim(), "32");
}

fn tail(s: &str) -> &str {
    let mut cut = s.len().saturating_sub(3000);
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    &s[cut..]
}

const WRITE_BIG: &str =
    "{ printf 'v='; head -c 200000000 /dev/zero | tr '\\0' x; echo; } >> \"$RUNBOOK_OUTPUT\"";

/// Finding 6, and the class: whatever writes `$RUNBOOK_OUTPUT` (a step, a compensation, a
/// finally step, a precondition), a file over the outputs bound fails that attempt with a
/// message that says so, in bounded memory; the run ends (never `running` with a step in
/// doubt) and the file is gone.
#[test]
fn regression_outputs_over_the_bound_fail_the_attempt_clearly_instead_of_aborting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let head = "[runbook]\nname = \"big\"\n[secrets.TOK]\nenv = \"ADV_TOK\"\n";
    let cases = [
        ("a step", format!("{head}[steps.s]\nrun = '''\n{WRITE_BIG}\n'''\noutputs = [\"v\"]\n")),
        ("a step that declares no output", format!("{head}[steps.s]\nrun = '''\n{WRITE_BIG}\n'''\n")),
        (
            "a compensation",
            format!(
                "{head}[steps.s]\nrun = 'true'\n[steps.s.compensate]\nrun = '''\n{WRITE_BIG}\n'''\noutputs = [\"v\"]\n\
                 [steps.t]\nneeds = [\"s\"]\nrun = 'exit 1'\n"
            ),
        ),
        (
            "a finally step",
            format!(
                "{head}[steps.s]\nrun = 'true'\n[finally.f]\nrun = '''\n{WRITE_BIG}\n'''\noutputs = [\"v\"]\n"
            ),
        ),
    ];
    for (what, rb) in &cases {
        let state = format!("{}.db", what.replace(' ', "_"));
        write(d, "rb.toml", rb);
        let out = capped(
            d,
            &["run", "rb.toml", "--yes", "--state", &state, "--as", "oncall"],
            &[("ADV_TOK", "Zq7wK2pLm9Xv4RtY")],
        );
        assert_ne!(out.code, HUNG, "{what}: hung");
        // A failed compensation leaves the run for an operator (exit 4); a failed finally
        // step is reported but does not change the run's outcome.
        let want = match *what {
            "a compensation" => 4,
            "a finally step" => 0,
            _ => 1,
        };
        assert_eq!(out.code, want, "{what}: exit {}\n{}", out.code, tail(&out.stderr));
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("$RUNBOOK_OUTPUT holds more than 1 MiB"), "{what}: {}", tail(&all));
        let runs = run_limited(d, &["runs", "--state", &state], &[], LIMIT);
        assert!(!runs.stdout.contains("running"), "{what}: {}", runs.stdout);
        let big: Vec<_> = walk(&d.join("runs"))
            .into_iter()
            .filter(|p| p.metadata().is_ok_and(|m| m.len() > 1 << 20))
            .collect();
        assert!(big.is_empty(), "{what}: left behind {big:?}");
        let _ = std::fs::remove_dir_all(d.join("runs"));
    }
    // A value within the bound is an output as before.
    write(
        d,
        "ok.toml",
        "[runbook]\nname = \"ok\"\n[steps.s]\nrun = '''\n{ printf 'v='; head -c 100000 /dev/zero | tr '\\0' x; echo; } >> \"$RUNBOOK_OUTPUT\"\n'''\n\
         outputs = [\"v\"]\n[steps.t]\nneeds = [\"s\"]\nrun = 'printf %s {{ steps.s.outputs.v }} | wc -c > len'\n",
    );
    let out = capped(d, &["run", "ok.toml", "--yes", "--state", "ok.db"], &[]);
    assert_eq!(out.code, 0, "{}", tail(&out.stderr));
    assert_eq!(std::fs::read_to_string(d.join("len")).expect("len").trim(), "100000");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Finding 7, and the class: an attempt is its process group. When its main process has
/// exited (or its `timeout` fired) and the group is ended, the engine reads what is left
/// in the pipes and stops: a descendant that left the group (`setsid`, a daemon that keeps
/// the step's stdout) holding the pipe open neither hangs the run nor stretches the
/// attempt past its `timeout`, with or without one, in a precondition, a step, a
/// compensation and a finally step.
#[test]
fn regression_a_descendant_outside_the_group_holding_the_pipe_does_not_hold_the_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Each escapee writes its pid down, to be ended at the end of the test. The step goes on
    // once the escapee has left (its session is its own: field 6 of `/proc/PID/stat`); else
    // the step's group could be ended before `setsid` ran, with nothing left holding the pipe.
    let escape = |tag: &str| {
        format!(
            "setsid sleep 100000 & echo $! >> {tag}.pids; \
             while read -r _ _ _ _ _ sid _ < /proc/$!/stat && [ \"$sid\" != \"$!\" ]; do sleep 0.01; done; \
             echo started"
        )
    };
    let cases = [
        (
            "precondition, timeout",
            format!(
                "[preconditions.p]\nrun = '{}'\ntimeout = \"3s\"\n[steps.s]\nrun = 'echo ok'\n",
                escape("p")
            ),
        ),
        ("precondition", format!("[preconditions.p]\nrun = '{}'\n[steps.s]\nrun = 'echo ok'\n", escape("p"))),
        ("step, timeout", format!("[steps.s]\nrun = '{}'\ntimeout = \"3s\"\n", escape("s"))),
        ("step", format!("[steps.s]\nrun = '{}'\n", escape("s"))),
        (
            "step that goes on printing",
            r#"[steps.s]
run = """setsid sh -c 'echo $$ >> y.pids; exec yes' & sleep 1; echo main done"""
timeout = "30s"
"#
            .to_string(),
        ),
        (
            "compensation",
            format!(
                "[steps.s]\nrun = 'true'\ncompensate = {{ run = '{}' }}\n[steps.t]\nneeds = [\"s\"]\nrun = 'exit 1'\n",
                escape("c")
            ),
        ),
        ("finally", format!("[steps.s]\nrun = 'true'\n[finally.f]\nrun = '{}'\n", escape("f"))),
    ];
    for (what, body) in &cases {
        write(d, "rb.toml", &format!("[runbook]\nname = \"h\"\n{body}"));
        let out = run_limited(d, &["run", "rb.toml", "--yes", "--state", "st.db", "--as", "o"], &[], LIMIT);
        end_escapees(d);
        assert_ne!(out.code, HUNG, "{what}: hung");
        let want = if what.starts_with("compensation") { 1 } else { 0 };
        assert_eq!(out.code, want, "{what}: exit {}\n{}", out.code, tail(&out.stderr));
        let all = format!("{}{}", out.stdout, out.stderr);
        // A precondition that passes shows no output; a step, a compensation and a
        // finally step say why they did not wait.
        if !what.starts_with("precondition") {
            assert!(all.contains("left its process group"), "{what}: {}", tail(&all));
        }
    }
}

/// End every escapee the steps wrote down (by its pid, with `kill`).
fn end_escapees(d: &Path) {
    for entry in std::fs::read_dir(d).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "pids") {
            for pid in std::fs::read_to_string(entry.path()).unwrap_or_default().split_whitespace() {
                let _ = std::process::Command::new("kill").arg("-9").arg(pid).status();
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
