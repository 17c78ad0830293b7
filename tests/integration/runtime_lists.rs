//! A `for-each` list that is not known when planning (red team adv18b F1): an included
//! runbook's list parameter bound, directly or through a chain of includes, to a step
//! output or any other run-time value. The plan showed `h[<output:gen.hosts>]` while the
//! run made other instances, past the 10,000-step bound. Refused at check and plan (RB128)
//! at the include's `params`, and nothing runs.

use crate::support::{Scratch, run_in};

const LEAF: &str = r#"[runbook]
name = "region"

[params.region]
type = "string"

[params.hosts]
type = "list"
default = ["h1"]

[steps.h]
for-each = "hosts"
run = "echo {{ params.region }} {{ item }} >> trace"
"#;

/// A middle runbook that takes the list as a string `s` and passes it on to the leaf.
const MIDDLE: &str = r#"[runbook]
name = "middle"

[params.region]
type = "string"

[params.s]
type = "string"
default = "[\"m1\"]"

[steps.down]
runbook = { file = "leaf.toml", params = { region = "{{ params.region }}", hosts = "{{ params.s }}" } }
"#;

/// The red team's parent with `value` as what it passes to `param` of `file`.
fn parent(file: &str, param: &str, value: &str) -> String {
    format!(
        r#"[runbook]
name = "world"

[params.regions]
type = "list"
default = ["r0", "r1", "r2"]

[secrets.token]
env = "TOKEN"

[steps.gen]
run = "echo 'hosts=[\"x0\",\"x1\"]' >> $RUNBOOK_OUTPUT"
outputs = ["hosts"]

[steps.gate]
approval = {{ prompt = "hosts?", inputs = {{ hosts = {{ type = "string", default = "[\"y\"]" }} }} }}

[steps.deploy]
needs = ["gen", "gate"]
for-each = "regions"
max-parallel = 2
runbook = {{ file = "{file}", params = {{ region = "{{{{ item }}}}", {param} = {value} }} }}
"#
    )
}

fn place(parent_text: &str) -> Scratch {
    let place = Scratch::new(parent_text);
    std::fs::write(place.path().join("leaf.toml"), LEAF).expect("leaf");
    std::fs::write(place.path().join("middle.toml"), MIDDLE).expect("middle");
    place
}

/// Every shape of a run-time value, passed directly to the leaf's list and through the
/// middle runbook's string: check, plan and run refuse it with RB128 at the parent's
/// `params` line, and nothing runs.
#[test]
fn a_for_each_list_from_a_run_time_value_is_refused_at_check_plan_and_run() {
    let values = [
        r#""{{ steps.gen.outputs.hosts }}""#,
        r#""[\"a\", \"{{ steps.gen.outputs.hosts }}\"]""#,
        r#""{{ steps.gen.outputs.hosts | default('[]') }}""#,
        r#""{{ steps.gate.inputs.hosts }}""#,
        r#""{{ secrets.token }}""#,
        r#""{{ run.id }}""#,
        r#"["{{ steps.gen.outputs.hosts }}"]"#,
    ];
    for (file, param) in [("leaf.toml", "hosts"), ("middle.toml", "s")] {
        for value in values {
            let text = parent(file, param, value);
            let place = place(&text);
            let line = text.lines().position(|l| l.starts_with("runbook = ")).expect("include line") + 1;
            for args in [&["check", "r.toml"][..], &["plan", "r.toml"], &["run", "r.toml", "--yes"]] {
                let out = run_in(place.path(), args);
                assert_eq!(out.code, 3, "{file} {value} {args:?}: {}\n{}", out.stdout, out.stderr);
                assert!(out.stderr.contains("RB128"), "{file} {value} {args:?}: {}", out.stderr);
                assert!(out.stderr.contains(&format!("r.toml:{line}:")), "{file} {value}: {}", out.stderr);
                assert!(!place.path().join("trace").exists(), "{file} {value} {args:?}: something ran");
            }
        }
    }
}

/// The red team's exact shape: 11 regions x 1,000 hosts from `gen`.
#[test]
fn the_red_teams_eleven_thousand_steps_are_refused_before_anything_runs() {
    let text = r#"[runbook]
name = "world"
[params.regions]
type = "list"
default = ["r0","r1","r2","r3","r4","r5","r6","r7","r8","r9","r10"]
[steps.gen]
run = "python3 -c \"import json; print('hosts='+json.dumps(['x%d' % i for i in range(1000)]))\" >> $RUNBOOK_OUTPUT"
outputs = ["hosts"]
[steps.deploy]
needs = ["gen"]
for-each = "regions"
max-parallel = 2
runbook = { file = "leaf.toml", params = { region = "{{ item }}", hosts = "{{ steps.gen.outputs.hosts }}" } }
"#;
    let place = place(text);
    let out = run_in(place.path(), &["plan", "r.toml"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("RB128"), "{}", out.stderr);
    let out = place.run(&["--yes"], &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!place.path().join("trace").exists());
    insta::assert_snapshot!(out.stderr);
}

/// Values known when planning still pass: a literal list, a parameter of the top
/// runbook (through the middle runbook's string), the element of a `for-each` include,
/// and a run-time value passed to a parameter no `for-each` reads.
#[test]
fn lists_known_when_planning_still_plan_and_run() {
    for (file, param, value) in [
        ("leaf.toml", "hosts", r#"["a", "b"]"#),
        ("leaf.toml", "hosts", r#""[\"{{ item }}-a\", \"{{ item }}-b\"]""#),
        ("middle.toml", "s", r#""[\"{{ item }}\"]""#),
    ] {
        let place = place(&parent(file, param, value));
        let out = run_in(place.path(), &["check", "r.toml"]);
        assert_eq!(out.code, 0, "{value}: {}", out.stderr);
        let out = run_in(place.path(), &["plan", "r.toml"]);
        assert_eq!(out.code, 0, "{value}: {}", out.stderr);
    }
    // A run-time value for a parameter that decides no list is fine.
    let text = parent("leaf.toml", "hosts", r#"["{{ item }}"]"#)
        .replace(r#"region = "{{ item }}""#, r#"region = "{{ steps.gen.outputs.hosts }}""#);
    let place = place(&text);
    let out = run_in(place.path(), &["check", "r.toml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
