//! A secret reaches text only verbatim, or in an encoding the redactor mirrors: `check`
//! refuses every template that computes something else from a secret (RB057), in every field
//! where secrets may go, so nothing a filter, a slice, a test or a loop makes of a secret can
//! reach a terminal, a log or the journal (red-team finding F12 of issue 14).

use crate::peers::HttpPeer;
use crate::support::{Output, Scratch, run_in_with_env};

const PW: &str = "hunter2xyz";

/// What the transforms of the red-team's reproduction make of `PW`.
const TRANSFORMED: [&str; 5] = ["HUNTER2XYZ", "zyx2retnuh", "h_nter2xyz", "nter2xyz", "h.u.n.t.e.r.2.x.y.z"];

fn runbook(fields: &str) -> String {
    format!(
        "[runbook]\nname = \"tf\"\n\n[params.flag]\ntype = \"boolean\"\ndefault = true\n\n[params.items]\ntype = \"string\"\ndefault = \"a\"\n\n[secrets.PW]\nenv = \"PW\"\n\n[secrets.OTHER]\nenv = \"OTHER\"\n\n{fields}\n"
    )
}

fn check(text: &str) -> Output {
    let s = Scratch::new(text);
    run_in_with_env(s.path(), &["check", "r.toml"], &[])
}

/// F12: the reproduction, through `check` and `run`: refused before anything runs, and no
/// transformed form of the secret on the terminal or in the journal.
#[test]
fn f12_filtered_secret_is_refused_and_never_sent() {
    let peer = HttpPeer::start();
    let url = peer.url("/status/404");
    let text = runbook(&format!(
        "[steps.h]\nhttp = {{ url = \"{url}?u={{{{ secrets.PW | upper }}}}&r={{{{ secrets.PW | reverse }}}}&x={{{{ secrets.PW | replace('u','_') }}}}&s={{{{ secrets.PW[2:] }}}}&l={{{{ secrets.PW | list | join('.') }}}}\" }}\n\n[steps.e]\nrun = 'echo \"a | $T\"'\nenv = {{ T = \"{{{{ secrets.PW | upper }}}}\" }}\n"
    ));
    let s = Scratch::new(&text);
    let checked = run_in_with_env(s.path(), &["check", "r.toml"], &[]);
    assert_eq!(checked.code, 3, "check accepts a transformed secret:\n{}{}", checked.stdout, checked.stderr);
    let all = format!("{}{}", checked.stdout, checked.stderr);
    assert!(all.contains("r.toml:19:56:"), "no file:line:col for the url:\n{all}");
    assert!(all.contains("r.toml:23:17:"), "no file:line:col for the env value:\n{all}");
    assert!(all.contains("error[RB057]"), "not RB057:\n{all}");

    let ran = s.run(&["--yes"], &[("PW", PW), ("OTHER", "other-value")]);
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert_ne!(ran.code, 0, "the run went ahead:\n{all}");
    assert!(peer.received().is_empty(), "a request was sent: {:?}", peer.received().len());
    let journal = std::fs::read(s.path().join("state/state.db")).unwrap_or_default();
    let journal = String::from_utf8_lossy(&journal);
    for form in TRANSFORMED.iter().chain([&PW]) {
        assert!(!all.contains(form), "the terminal shows the secret as {form}:\n{all}");
        assert!(!journal.contains(form), "the state store holds the secret as {form}");
    }
}

/// Every way a template can reach a secret's value other than the plain tag, in every field
/// where secrets may go: refused by `check` with a code and the line of the field.
#[test]
fn every_transform_of_a_secret_is_refused_in_every_field() {
    let exprs = [
        "{{ secrets.PW | upper }}",
        "{{ secrets.PW | lower }}",
        "{{ secrets.PW | reverse }}",
        "{{ secrets.PW | replace('u', '_') }}",
        "{{ secrets.PW | list | join('.') }}",
        "{{ secrets.PW | trim }}",
        "{{ secrets.PW | title }}",
        "{{ secrets.PW | capitalize }}",
        "{{ secrets.PW | length }}",
        "{{ secrets.PW | first }}",
        "{{ secrets.PW | last }}",
        "{{ secrets.PW | urlencode | upper }}",
        "{{ secrets.PW | tojson | reverse }}",
        "{{ secrets.PW | default('x') }}",
        "{{ secrets.PW | string }}",
        "{{ secrets.PW | indent(2) }}",
        "{{ secrets.PW[2:] }}",
        "{{ secrets.PW[0] }}",
        "{{ secrets.PW[::-1] }}",
        "{{ secrets.PW.upper() }}",
        "{{ secrets.PW.split('2') }}",
        "{{ secrets.PW ~ 'x' }}",
        "{{ 'x' ~ secrets.PW }}",
        "{{ secrets.PW + secrets.OTHER }}",
        "{{ secrets.PW == 'hunter2xyz' }}",
        "{{ secrets.PW is startingwith('h') }}",
        "{{ 'a' if secrets.PW == 'x' else 'b' }}",
        "{{ 'hun' in secrets.PW }}",
        "{{ secrets['PW'] }}",
        "{{ secrets.get('PW') }}",
        "{{ secrets | items }}",
        "{{ secrets | tojson }}",
        "{{ secrets }}",
        "{{ [secrets.PW] | join(',') }}",
        "{{ {'a': secrets.PW} }}",
        "{{ (secrets.PW) }}",
        "{{ secrets.PW|upper }}",
        "{{- secrets.PW | upper -}}",
        "{% for c in secrets.PW %}{{ c }}.{% endfor %}",
        "{% for k in secrets %}{{ k }}{% endfor %}",
        "{% set x = secrets.PW %}{{ x | upper }}",
        "{% set x %}{{ secrets.PW }}{% endset %}{{ x | upper }}",
        "{% filter upper %}{{ secrets.PW }}{% endfilter %}",
        "{% macro m() %}{{ secrets.PW }}{% endmacro %}{{ m() | upper }}",
        "{% macro m(v) %}{{ v | upper }}{% endmacro %}{{ m(secrets.PW) }}",
        "{% with x = secrets.PW %}{{ x | reverse }}{% endwith %}",
        "{% if secrets.PW == 'hunter2xyz' %}yes{% endif %}",
        "{% if secrets.PW is startingwith('h') %}h{% endif %}",
        "{% for i in [1] %}{{ secrets.PW }}{% endfor %}",
        "{% for i in [1] recursive %}{{ secrets.PW }}{% endfor %}",
        "{% autoescape 'html' %}{{ secrets.PW }}{% endautoescape %}",
        "{% raw %}x{% endraw %}{{ secrets.PW }}",
        "{% set ns = namespace(v=secrets.PW) %}{{ ns.v | upper }}",
        "{{ dict(a=secrets.PW) }}",
        "{{ secrets.PW | urlencode(1) }}",
    ];
    let fields: [(&str, &str); 9] = [
        ("http.url", "http = { url = \"http://127.0.0.1:9/x?q=EXPR\" }"),
        (
            "http.headers",
            "http = { url = \"http://127.0.0.1:9/x\", headers = { Authorization = \"Bearer EXPR\" } }",
        ),
        ("http.query", "http = { url = \"http://127.0.0.1:9/x\", query = { q = \"EXPR\" } }"),
        ("http.body", "http = { url = \"http://127.0.0.1:9/x\", method = \"POST\", body = \"EXPR\" }"),
        (
            "http.json",
            "http = { url = \"http://127.0.0.1:9/x\", method = \"POST\", json = { a = [\"EXPR\"] } }",
        ),
        ("env", "run = 'echo \"$T\"'\nenv = { T = \"EXPR\" }"),
        ("sql.url", "sql = { url = \"postgres://u:EXPR@127.0.0.1:9/db\", query = \"SELECT 1\" }"),
        ("sql.args", "sql = { url = \"sqlite://x.db\", query = \"SELECT $1\", args = [\"EXPR\"] }"),
        ("notify.webhook", "notify = { webhook = \"http://127.0.0.1:9/h?k=EXPR\", text = \"hi\" }"),
    ];
    let mut accepted = Vec::new();
    let mut count = 0;
    for (name, field) in fields {
        // One runbook per field, one step per expression: every step must be refused, at its line.
        let mut steps = String::new();
        let mut lines = Vec::new();
        let at = field.lines().position(|l| l.contains("EXPR")).unwrap_or(0);
        for (i, expr) in exprs.iter().enumerate() {
            let body = field.replace("EXPR", &expr.replace('"', "\\\""));
            steps.push_str(&format!("[steps.s{i}]\n{body}\nneeds = []\n\n"));
            count += 1;
        }
        let text = runbook(&steps);
        for i in 0..exprs.len() {
            // The header's line (1-based), then the field's line holding the template.
            let header = text.lines().position(|l| l == format!("[steps.s{i}]")).unwrap_or(0);
            lines.push(header + 2 + at);
        }
        let out = check(&text);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, 3, "check accepts transforms in {name}:\n{all}");
        for (expr, line) in exprs.iter().zip(&lines) {
            if !all.contains(&format!("r.toml:{line}:")) {
                accepted.push(format!("{name}: {expr} (line {line})"));
            }
        }
    }
    assert!(accepted.is_empty(), "accepted {} of {count}:\n{}", accepted.len(), accepted.join("\n"));
}

/// What stays allowed: the plain tag, the encodings the redactor mirrors, a tag chosen by an
/// `if` on a parameter, next to any expression on parameters.
#[test]
fn the_plain_secret_and_mirrored_encodings_pass_check() {
    for expr in [
        "{{ secrets.PW }}",
        "{{secrets.PW}}",
        "{{- secrets.PW -}}",
        "{{ secrets.PW | urlencode }}",
        "{{ secrets.PW|tojson }}",
        "{{ secrets.PW }}:{{ secrets.OTHER }}",
        "{% if params.flag %}{{ secrets.PW }}{% else %}{{ secrets.OTHER }}{% endif %}",
        "{{ params.items | upper }}-{{ secrets.PW }}",
        "{# a comment #}{{ secrets.PW }}",
    ] {
        let text = runbook(&format!(
            "[steps.h]\nhttp = {{ url = \"http://127.0.0.1:9/x\", headers = {{ A = \"{}\" }} }}\n",
            expr.replace('"', "\\\"")
        ));
        let out = check(&text);
        assert_eq!(out.code, 0, "check refuses {expr}:\n{}{}", out.stdout, out.stderr);
    }
}

/// minijinja's analysis of the variables does not see the target of a slice: a sliced secret
/// (or an undeclared one) in a field where secrets are refused is still refused.
#[test]
fn a_sliced_secret_is_seen_where_secrets_are_refused() {
    for (field, code) in [
        ("confirm = \"go {{ secrets.PW[0:] }}?\"\nrun = \"true\"", "RB044"),
        ("notify = { webhook = \"http://127.0.0.1:9/h\", text = \"{{ secrets.PW[1:] }}\" }", "RB044"),
        ("http = { url = \"http://127.0.0.1:9/x?q={{ secrets.NOPE[1:] }}\" }", "RB"),
        ("run = \"true\"\nwhen = \"secrets.PW[0:] == 'x'\"", "RB044"),
    ] {
        let out = check(&runbook(&format!("[steps.s]\n{field}\n")));
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, 3, "check accepts {field}:\n{all}");
        assert!(all.contains(&format!("error[{code}")), "not {code}: {field}\n{all}");
    }
}

/// The word `secrets` in literal text or in a string of a tag is no read of a secret.
#[test]
fn the_word_secrets_in_text_or_strings_is_no_read() {
    for expr in ["/secrets/{{ params.items }}", "{{ params.items ~ '/secrets' }}", "{{ \"secrets\" }}"] {
        let text = runbook(&format!(
            "[steps.h]\nhttp = {{ url = \"http://127.0.0.1:9/{}\" }}\nconfirm = \"{}\"\n",
            expr.replace('"', "\\\""),
            expr.replace('"', "\\\"")
        ));
        let out = check(&text);
        assert_eq!(out.code, 0, "check refuses {expr}:\n{}{}", out.stdout, out.stderr);
    }
}
