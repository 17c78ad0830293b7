//! Every value a report or a terminal shows is one line, escaped for its medium (issue 12,
//! adv12-engine findings 3, 4, 8, 9 and 10).
//!
//! Each test drives the real binary: a parameter, an approval input or an output that holds
//! line breaks and markdown cannot add lines to the report; a step that prints carriage
//! returns, escape sequences or invisible format characters around a secret cannot make a
//! terminal draw it whole (`logs`, `show`, `report`, the live failure tail); the report
//! never renders a title anew; `[report]` refuses what a person typed as an observation; the
//! report of a run whose engine died says so and names the step in doubt.

use crate::resume::KILL_ENGINE_ONCE;
use crate::support::{Scratch, ok, run_in};

const OPERATOR: (&str, &str) = ("RUNBOOK_OPERATOR", "oncall");
const SECRET: &str = "Zq7wK2pLm9Xv4RtY";

/// Characters a terminal or a document would not show as themselves: controls other than
/// the line break, and Unicode format characters (zero-width, bidi, word joiner, soft hyphen).
fn hidden(text: &str) -> Vec<(usize, char)> {
    text.char_indices()
        .filter(|(_, c)| {
            (c.is_control() && *c != '\n')
                || matches!(*c as u32,
                    0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
                    | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE0001
                    | 0xE0020..=0xE007F)
        })
        .collect()
}

/// A report's lines that start like the engine's own statements.
fn statements<'a>(md: &'a str, label: &str) -> Vec<&'a str> {
    md.lines().filter(|l| l.starts_with(&format!("- **{label}"))).collect()
}

const FORGED: &str = "Ninguno.\n- **Estado en el journal:** succeeded\n\n## Rollback Ejecutado\n- **Versión resultante:** v9.9.9 (observada por `observe_after.version` a las 08:59:59)\n- **Resultado:** Éxito (el run terminó bien)";

#[test]
fn a_parameter_an_approval_input_or_an_output_cannot_add_lines_to_the_report() {
    let s = Scratch::new(
        r#"[runbook]
name = "rollback-l1"

[params.impact]
type = "string"
default = "none"

[params.root_cause]
type = "string"
default = "none"

[steps.observe_before]
title = "Observar"
run = "printf 'version=v1.0.0\\r- **Resultado:** \u00c9xito\u2028## Rollback Ejecutado\\n' >> \"$RUNBOOK_OUTPUT\""
outputs = ["version"]

[steps.sign_off]
needs = ["observe_before"]
approval = { prompt = "ok?", approvers = ["lead"], inputs = { incident = { type = "string" } } }

[steps.change]
needs = ["sign_off"]
run = 'exit 1'

[report]
version-before = "observe_before.version"
"#,
    );
    let impact = format!("impact={FORGED}");
    let cause = "root_cause=# Causa falsa\n| 00:00:00 | Fin del run: succeeded |\n<script>alert(1)</script> **x** `y` _(z)_";
    let out = s.run(&["--yes", "-p", &impact, "-p", cause], &[OPERATOR]);
    assert_ne!(out.code, 0, "{out:?}");
    let run = s.latest_run();
    let input = format!("incident={FORGED}\r\n```\n</pre><h1>x</h1>");
    ok(&s.cmd(&["approve", &run, "sign_off", "--as", "lead", "--input", &input], &[]), 0);
    let out = s.cmd(&["resume", &run, "--yes"], &[OPERATOR]);
    assert_ne!(out.code, 0, "{out:?}");
    let md = s.cmd(&["report", &run], &[]);
    ok(&md, 0);
    let md = md.stdout;
    assert_eq!(statements(&md, "Estado en el journal"), ["- **Estado en el journal:** failed"], "{md}");
    assert_eq!(statements(&md, "Resultado").len(), 1, "{md}");
    assert!(statements(&md, "Resultado")[0].contains("Fallo"), "{md}");
    assert_eq!(statements(&md, "Versión resultante").len(), 1, "{md}");
    assert_eq!(md.lines().filter(|l| *l == "## Rollback Ejecutado").count(), 1, "{md}");
    assert_eq!(md.lines().filter(|l| l.starts_with("# ")).count(), 1, "{md}");
    assert!(!md.contains("| 00:00:00 |"), "{md}");
    assert_eq!(hidden(&md), [], "{md}");
    // The values are there, escaped: one line each.
    assert!(md.contains("- **Impacto:** Ninguno.\\n- \\*\\*Estado en el journal:\\*\\* succeeded"), "{md}");
    let html = s.cmd(&["report", &run, "--format", "html"], &[]);
    ok(&html, 0);
    let html = html.stdout;
    assert!(!html.contains("<script>") && !html.contains("<h1>x</h1>"), "{html}");
    assert_eq!(html.matches("<h2>Rollback Ejecutado</h2>").count(), 1, "{html}");
    assert_eq!(html.matches("Estado en el journal:</strong>").count(), 1, "{html}");
    assert_eq!(html.matches("<strong>Resultado:</strong>").count(), 1, "{html}");
    assert_eq!(hidden(&html), [], "{html}");
}

#[test]
fn a_secret_drawn_by_cursor_moves_or_hidden_by_format_characters_never_reaches_a_terminal() {
    let s = Scratch::new(
        r#"[runbook]
name = "term"

[secrets.TOK]
env = "ADV_TOK"

[steps.s]
run = '''
printf '    %s\r%s\n' "${T:4}" "${T:0:4}"
printf '    %s\033[16D%s\n' "${T:4}" "${T:0:4}"
printf '%s\u200b%s\n' "${T:0:4}" "${T:4}"
printf '%s\u2060%s \u202e%s\n' "${T:0:4}" "${T:4}" "$(printf '%s' "$T" | rev)"
printf '%s\302\255%s\033]0;title\007\302\233\n' "${T:0:4}" "${T:4}"
exit 3
'''
env = { T = "{{ secrets.TOK }}" }
"#,
    );
    let env = [OPERATOR, ("ADV_TOK", SECRET), ("LANG", "C.UTF-8")];
    let out = s.run(&["--yes"], &env);
    ok(&out, 1);
    let run = s.latest_run();
    let mut shown = vec![("run (stdout)", out.stdout), ("run (stderr)", out.stderr)];
    for (name, args) in [
        ("logs", vec!["logs", run.as_str()]),
        ("show", vec!["show", run.as_str()]),
        ("report", vec!["report", run.as_str()]),
        ("report html", vec!["report", run.as_str(), "--format", "html"]),
    ] {
        let o = s.cmd(&args, &env);
        ok(&o, 0);
        shown.push((name, format!("{}{}", o.stdout, o.stderr)));
    }
    for (name, text) in &shown {
        assert_eq!(hidden(text), [], "{name} passes invisible characters to the terminal:\n{text}");
        assert!(!text.contains(SECRET), "{name} shows the secret:\n{text}");
    }
    // What the step printed is there, made visible.
    let logs = &shown[2].1;
    assert!(logs.contains("\\r") && logs.contains("\\u{1b}[16D") && logs.contains("\\u{200b}"), "{logs}");
}

#[test]
fn the_report_never_renders_a_title_anew() {
    let s = Scratch::new(
        r#"[runbook]
name = "t"

[secrets.TOK]
env = "ADV_TOK"

[params.who]
type = "string"
default = "ana"

[steps.a]
title = "Preparar para {{ params.who }}"
run = 'echo "p1=${T:0:8}" >> "$RUNBOOK_OUTPUT"; echo "p2=${T:8}" >> "$RUNBOOK_OUTPUT"'
outputs = ["p1", "p2"]
env = { T = "{{ secrets.TOK }}" }

[steps.b]
needs = ["a"]
title = "Desplegar {{ steps.a.outputs.p1 }}{{ steps.a.outputs.p2 }} {{ steps.a.outputs.p2 | reverse }}"
run = 'exit 1'
"#,
    );
    let env = [OPERATOR, ("ADV_TOK", SECRET)];
    ok(&s.run(&["--yes"], &env), 1);
    let run = s.latest_run();
    for format in ["markdown", "html"] {
        let out = s.cmd(&["report", &run, "--format", format], &env);
        ok(&out, 0);
        assert!(!out.stdout.contains(SECRET), "{}", out.stdout);
        assert!(!out.stdout.contains(&SECRET[8..].chars().rev().collect::<String>()), "{}", out.stdout);
    }
    let md = s.cmd(&["report", &run], &env).stdout;
    // A title over parameters is rendered; one over outputs is shown as written.
    assert!(md.contains("Completado: a: Preparar para ana"), "{md}");
    assert!(md.contains("Fallo: b: Desplegar {{ steps.a.outputs.p1 }}{{ steps.a.outputs.p2 }} {{ steps.a.outputs.p2 \\| reverse }}"), "{md}");
}

#[test]
fn report_refuses_an_approval_input_as_an_observation() {
    let s = Scratch::new(
        r#"[runbook]
name = "rollback-l1"

[steps.deploy]
run = 'exit 0'

[steps.confirm_version]
needs = ["deploy"]
approval = { prompt = "¿Qué versión quedó?", approvers = ["lead"], inputs = { version = { type = "string" } } }

[report]
version-after = "confirm_version.version"
"#,
    );
    let out = run_in(s.path(), &["check", "r.toml"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("RB080"), "{}", out.stderr);
    assert!(out.stderr.contains("what a person typed"), "{}", out.stderr);
}

#[test]
fn the_report_of_a_run_whose_engine_died_names_the_step_in_doubt() {
    let s = Scratch::new(&format!(
        r#"[runbook]
name = "rep"

[steps.change]
run = 'echo v2 > deployed'

[steps.slow]
needs = ["change"]
run = "{KILL_ENGINE_ONCE}"
"#
    ));
    let out = s.run(&["--yes"], &[OPERATOR]);
    assert_ne!(out.code, 0, "{out:?}");
    let run = s.latest_run();
    let md = s.cmd(&["report", &run], &[]);
    ok(&md, 0);
    let md = md.stdout;
    assert!(!md.contains("Ninguna: el journal no registra interrupciones"), "{md}");
    assert!(md.contains("sin resultado registrado: `slow`"), "{md}");
    assert!(md.contains("el motor murió sin registrarlo"), "{md}");
}
