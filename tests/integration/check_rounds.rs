//! `check` reports independent mistakes in one round (red-team finding F4 of issue 14): every
//! wrong value of a nested or inline table, a step's other mistakes beside a mistyped kind key,
//! and no follow-on (such as "has no source") for a key that is present but mistyped.

use crate::support::{Scratch, run_in};

fn check(text: &str) -> String {
    let sb = Scratch::new(text);
    let out = run_in(sb.path(), &["check", "r.toml", "--color", "never"]);
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn every_wrong_value_of_inline_tables_in_one_round() {
    let out = check(
        "[runbook]\nname = \"e\"\n\n[steps.a]\nrun = \"x\"\nenv = { A = 1, B = true }\nretry = { attempts = \"3\", delay = 5 }\ncompensate = { run = 7, timeout = 9 }\n",
    );
    for key in [
        "steps.a.env.A`",
        "steps.a.env.B`",
        "retry.attempts`",
        "retry.delay`",
        "compensate.run`",
        "compensate.timeout`",
    ] {
        assert!(out.contains(key), "{key} not reported:\n{out}");
    }
    // No follow-on: the retry table that lost `attempts`, the compensation that lost its kind.
    assert!(!out.contains("missing key"), "{out}");
    assert!(!out.contains("has no kind"), "{out}");
}

#[test]
fn a_mistyped_kind_key_hides_nothing_else_in_the_step() {
    let out = check("[runbook]\nname = \"c\"\n\n[steps.c]\ncmd = \"ls\"\ncompensate = 5\n");
    assert!(out.contains("steps.c.cmd`"), "{out}");
    assert!(out.contains("steps.c.compensate`"), "{out}");
    assert!(!out.contains("has no kind"), "{out}");
}

#[test]
fn a_mistyped_secret_source_has_no_follow_on() {
    let out = check(
        "[runbook]\nname = \"c\"\n\n[secrets.S]\nenv = 5\n\n[steps.a]\nrun = \"true\"\nenv = { S = \"{{ secrets.S }}\" }\n",
    );
    assert!(out.contains("secrets.S.env`"), "{out}");
    assert!(!out.contains("has no source"), "{out}");
    assert!(!out.contains("unknown secret"), "{out}");
    assert_eq!(out.matches("RB0").count(), 1, "{out}");
}

/// A corpus over nested keys: 2,000 wrong values in one `[steps.a.env]` table, wrong values
/// in every nested table of a step and of a compensation, all in one round.
#[test]
fn a_corpus_of_nested_wrong_values_is_reported_in_one_round() {
    let mut text = String::from("[runbook]\nname = \"big\"\n\n[steps.a]\nrun = \"x\"\n\n[steps.a.env]\n");
    for i in 0..2000 {
        text.push_str(&format!("V{i} = {i}\n"));
    }
    let out = check(&text);
    for i in 0..2000 {
        assert!(out.contains(&format!("steps.a.env.V{i}`")), "V{i} not reported");
    }
    // Every nested table of a step, each with two wrong values.
    let nested = [
        ("retry", "attempts = \"3\", delay = 5", ["attempts", "delay"]),
        ("env", "X = 1, Y = false", ["X", "Y"]),
        ("compensate", "run = 1, timeout = 2", ["run", "timeout"]),
        ("compensate.retry", "attempts = \"x\", delay = 3", ["attempts", "delay"]),
        ("compensate.env", "P = 1, Q = 2", ["P", "Q"]),
    ];
    let mut text = String::from("[runbook]\nname = \"n\"\n");
    for (i, (table, body, _)) in nested.iter().enumerate() {
        text.push_str(&format!("\n[steps.s{i}]\nrun = \"x\"\nneeds = [1, \"z\", true]\n"));
        match table.split_once('.') {
            Some((outer, inner)) => {
                text.push_str(&format!("{outer} = {{ run = \"y\", {inner} = {{ {body} }} }}\n"))
            }
            None => text.push_str(&format!("{table} = {{ {body} }}\n")),
        }
    }
    let out = check(&text);
    for (i, (table, _, keys)) in nested.iter().enumerate() {
        for k in keys {
            let key = format!("steps.s{i}.{table}.{k}`");
            assert!(out.contains(&key), "{key} not reported:\n{out}");
        }
        for n in [0, 2] {
            let key = format!("steps.s{i}.needs[{n}]`");
            assert!(out.contains(&key), "{key} not reported:\n{out}");
        }
    }
    assert!(!out.contains("missing key") && !out.contains("has no kind"), "{out}");
}
