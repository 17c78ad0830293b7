//! Reports state only facts from the journal (issue 12, points 4 and 7).
//!
//! Every report here is built from a REAL journal written by the binary (never from
//! hand-written records): success, failed with compensation, failed without, crashed
//! (SIGKILL of the engine) and resumed, drill passed and drill failed. The messages are
//! insta snapshots, with what changes from run to run (ids, times, hashes) masked.

use crate::resume::KILL_ENGINE_ONCE;
use crate::support::{Output, Scratch, ok};

const OPERATOR: (&str, &str) = ("RUNBOOK_OPERATOR", "oncall");
/// A secret that a failing step prints on its stderr.
const SENTINEL: &str = "tok-3c7f9a1e-never-shown";

/// A deploy-shaped runbook: it observes the version before, changes it (undone by a
/// compensation that writes an evidence path as its output), checks, and observes the
/// version again in `finally`, after any compensation.
fn deploy(fail: bool) -> String {
    format!(
        r#"[runbook]
name = "deploy"
title = "Deploy"

[secrets.TOKEN]
env = "REPORT_TOKEN"

[params.release]
type = "string"
default = "v1.1.0"

[steps.observe_before]
title = "Observar la versión desplegada"
run = "echo version=$(cat deployed 2>/dev/null || echo v1.0.0) >> \"$RUNBOOK_OUTPUT\""
outputs = ["version"]

[steps.change]
title = "Desplegar {{{{ params.release }}}}"
run = "echo {{{{ params.release }}}} > deployed"
compensate = {{ run = "echo v1.0.0 > deployed; echo evidence=evidence-1.dump >> \"$RUNBOOK_OUTPUT\"", outputs = ["evidence"] }}

[steps.health]
title = "Comprobar la salud"
env = {{ TOKEN = "{{{{ secrets.TOKEN }}}}" }}
# Both lines on standard error: lines of two pipes reach the tail in either order.
run = """
echo "checking with $TOKEN" >&2
if [ {fail} = true ]; then
  echo "psql: error: connection to server failed: FATAL: password authentication failed (token $TOKEN)" >&2
  exit 3
fi
"""

[finally.observe_after]
title = "Observar la versión resultante"
run = "echo version=$(cat deployed) >> \"$RUNBOOK_OUTPUT\""
outputs = ["version"]

[report]
version-before = "observe_before.version"
version-after = "observe_after.version"
evidence = ["change.compensate.evidence"]
"#
    )
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![OPERATOR, ("REPORT_TOKEN", SENTINEL)]
}

/// The report of the newest run, with what changes between runs masked.
fn report(s: &Scratch, extra: &[&str]) -> String {
    let run = s.latest_run();
    let mut args = vec!["report", run.as_str()];
    args.extend_from_slice(extra);
    let out = s.cmd(&args, &env());
    ok(&out, 0);
    assert!(!out.stdout.contains(SENTINEL), "a secret reached the report:\n{}", out.stdout);
    mask(&out.stdout, &run)
}

fn mask(text: &str, run: &str) -> String {
    let text = text.replace(run, "[run]");
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("- **Duración:**") {
            out.push_str("- **Duración:** [d]\n");
            continue;
        }
        out.push_str(&mask_line(line));
        out.push('\n');
    }
    out
}

/// Hashes, dates and times in a line, masked (no regex crate among the test's dependencies).
fn mask_line(line: &str) -> String {
    let b: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let fits = |at: usize, pat: &str| {
        pat.chars()
            .enumerate()
            .all(|(k, p)| b.get(at + k).is_some_and(|c| if p == '9' { c.is_ascii_digit() } else { *c == p }))
    };
    while i < b.len() {
        let hex = b[i..].iter().take_while(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()).count();
        if hex >= 64 {
            out.push_str("[hash]");
            i += hex;
        } else if fits(i, "9999-99-99") {
            out.push_str("[date]");
            i += 10;
        } else if fits(i, "99:99:99") {
            out.push_str("[time]");
            i += 8;
            if b.get(i) == Some(&'.') {
                i += 1;
                while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn journal_text(s: &Scratch) -> String {
    s.audit(&s.latest_run())
}

fn assert_no_secret(s: &Scratch, out: &Output) {
    let run = s.latest_run();
    assert!(
        !out.stdout.contains(SENTINEL) && !out.stderr.contains(SENTINEL),
        "a secret reached the terminal"
    );
    assert!(!journal_text(s).contains(SENTINEL), "a secret reached the journal");
    let show = s.cmd(&["show", &run], &env());
    assert!(!show.stdout.contains(SENTINEL), "a secret reached `show`:\n{}", show.stdout);
}

#[test]
fn a_successful_run_reports_the_versions_its_steps_observed() {
    let s = Scratch::new(&deploy(false));
    let out = s.run(&["--yes"], &env());
    ok(&out, 0);
    let md = report(&s, &[]);
    assert!(md.contains("- **Versión anterior:** v1.0.0 (observada por `observe_before.version`"), "{md}");
    assert!(md.contains("- **Versión resultante:** v1.1.0 (observada por `observe_after.version`"), "{md}");
    assert!(md.contains("- **Resultado:** Éxito (el run terminó bien)"), "{md}");
    assert!(md.contains("Ninguna compensación se ejecutó."), "{md}");
    insta::assert_snapshot!("report_success", md);
}

#[test]
fn a_failed_run_reports_its_error_text_and_what_its_compensations_did() {
    let s = Scratch::new(&deploy(true));
    let out = s.run(&["--yes"], &env());
    ok(&out, 1);
    assert_no_secret(&s, &out);
    // The error text: in the terminal, the journal, `show` and the report.
    assert!(out.stdout.contains("password authentication failed"), "terminal:\n{}", out.stdout);
    let journal = journal_text(&s);
    assert!(journal.contains("password authentication failed"), "journal:\n{journal}");
    let show = s.cmd(&["show", &s.latest_run()], &env());
    assert!(show.stdout.contains("password authentication failed"), "show:\n{}", show.stdout);
    let md = report(&s, &[]);
    assert!(md.contains("password authentication failed"), "{md}");
    assert!(md.contains("deshecho: change: Desplegar v1.1.0 (evidence=evidence-1.dump)"), "{md}");
    assert!(
        md.contains("- **Evidencia:** evidence-1.dump (observada por `change.compensate.evidence`"),
        "{md}"
    );
    // Observed in `finally`, after the compensation: the version the environment is back on.
    assert!(md.contains("- **Versión resultante:** v1.0.0 (observada por `observe_after.version`"), "{md}");
    assert!(md.contains("- **Resultado:** Fallo (el run falló; 1 compensación(es) hecha(s))"), "{md}");
    insta::assert_snapshot!("report_failed_compensated", md);
}

#[test]
fn a_version_observed_before_the_last_compensation_is_reported_unknown() {
    // The resulting version declared as an output of a main step: the compensation that ran
    // after it changed the environment again, so the report must not state it.
    let text = deploy(true)
        .replace("version-after = \"observe_after.version\"", "version-after = \"observe_before.version\"");
    let s = Scratch::new(&text);
    ok(&s.run(&["--yes"], &env()), 1);
    let md = report(&s, &[]);
    assert!(
        md.contains("- **Versión resultante:** desconocida: `observe_before.version` no la observó después de la última compensación"),
        "{md}"
    );
    assert!(!md.contains("- **Versión resultante:** v1"), "{md}");
}

#[test]
fn a_failed_run_without_compensations_says_none_ran() {
    let s = Scratch::new(
        r#"[runbook]
name = "deploy"

[steps.build]
run = "echo 'error: yarn build failed: Module not found' >&2; exit 1"

[steps.after]
run = "true"
compensate = { run = "true" }
"#,
    );
    ok(&s.run(&["--yes"], &[OPERATOR]), 1);
    let md = report(&s, &[]);
    assert!(md.contains("- **Resultado:** Fallo (el run falló; ninguna compensación se ejecutó)"), "{md}");
    assert!(!md.contains("compensaciones hechas"), "{md}");
    assert!(md.contains("Module not found"), "{md}");
    assert!(md.contains("- **Versión anterior:** no declarada"), "{md}");
    insta::assert_snapshot!("report_failed_uncompensated", md);
}

#[test]
fn a_crash_and_its_resume_are_in_the_report() {
    let s = Scratch::new(&format!(
        r#"[runbook]
name = "deploy"

[steps.first]
run = "true"

[steps.killed]
idempotent = true
run = "{KILL_ENGINE_ONCE}"

[steps.last]
run = "true"
"#
    ));
    let out = s.run(&["--yes"], &[OPERATOR]);
    assert_ne!(out.code, 0, "{out:?}");
    let run = s.latest_run();
    ok(&s.cmd(&["resume", &run, "--yes"], &[("RUNBOOK_OPERATOR", "second-oncall")]), 0);
    let md = report(&s, &[]);
    assert!(md.contains("el motor se detuvo sin registrarlo (caída)"), "{md}");
    assert!(md.contains("en curso, sin resultado registrado: `killed`"), "{md}");
    assert!(md.contains("reanudado por second-oncall; vuelven a ejecutarse (idempotentes): killed"), "{md}");
    insta::assert_snapshot!("report_crashed_resumed", md);
}

fn drill(fail: bool) -> String {
    format!(
        r#"[runbook]
name = "drill"

[params.result]
type = "string"
default = "exito"

[steps.restore_copy]
run = "true"
estimate = "1m..5m"

[steps.integrity]
run = "if [ {fail} = true ]; then echo 'orders: 12 rows in the dump, 11 restored' >&2; exit 1; fi"
"#
    )
}

#[test]
fn a_drill_that_passed_is_reported_passed() {
    let s = Scratch::new(&drill(false));
    ok(&s.run(&["--yes"], &[OPERATOR]), 0);
    let md = report(&s, &[]);
    assert!(md.starts_with("# Drill Review"), "{md}");
    assert!(
        md.contains("- **Resultado:** Éxito (el run terminó bien); el parámetro indicó «exito»\n"),
        "{md}"
    );
    insta::assert_snapshot!("report_drill_passed", md);
}

#[test]
fn a_drill_that_failed_is_never_reported_a_success() {
    let s = Scratch::new(&drill(true));
    ok(&s.run(&["--yes"], &[OPERATOR]), 1);
    let md = report(&s, &[]);
    assert!(!md.contains("- **Resultado:** Éxito"), "{md}");
    assert!(
        md.contains("- **Resultado:** Fallo (el run falló; ninguna compensación se ejecutó); el parámetro indicó «exito» (no coincide con el estado del run en el journal)"),
        "{md}"
    );
    assert!(md.contains("12 rows in the dump, 11 restored"), "{md}");
    insta::assert_snapshot!("report_drill_failed", md);
}

/// Point 7: a precondition that fails says what failed, and one that could not run says so.
#[test]
fn failed_preconditions_say_what_failed_and_checks_that_could_not_run_say_so() {
    let s = Scratch::new(
        r#"[runbook]
name = "deploy"

[params.repo_dir]
type = "string"
default = "/nonexistent/repo"

[preconditions.clean]
run = "cd \"{{ params.repo_dir }}\" && git diff --quiet"
message = "hay cambios sin commitear"

[preconditions.tools]
cmd = ["no-such-tool-i12", "--version"]
message = "faltan herramientas"

[preconditions.in_dir]
dir = "missing-subfolder"
run = "true"
message = "la rama no es main"

[steps.work]
run = "echo should-not-run > ran"
"#,
    );
    let out = s.run(&["--yes"], &[OPERATOR]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(s.read("ran").is_empty(), "a step ran after failed preconditions");
    let stderr = out.stderr.replace(&s.path().display().to_string(), "[dir]");
    // The shell said why: the message alone would claim uncommitted changes.
    assert!(stderr.contains("cd: /nonexistent/repo: No such file or directory"), "{stderr}");
    // A missing program and a missing working directory: the check could not run.
    assert!(stderr.contains("precondition `tools` of runbook could not run"), "{stderr}");
    assert!(stderr.contains("no-such-tool-i12"), "{stderr}");
    assert!(stderr.contains("precondition `in_dir` of runbook could not run"), "{stderr}");
    assert!(stderr.contains("missing-subfolder"), "{stderr}");
    insta::assert_snapshot!("preconditions_say_what_failed", stderr);
    // Journaled with the run's end, and in `show` and the report.
    let run = s.latest_run();
    let journal = s.audit(&run);
    assert!(journal.contains("No such file or directory"), "{journal}");
    let show = s.cmd(&["show", &run], &[]);
    assert!(show.stdout.contains("could not run"), "{}", show.stdout);
    let md = report(&s, &[]);
    assert!(md.contains("una precondición del runbook falló"), "{md}");
}
