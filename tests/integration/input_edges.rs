//! Edges of issue 14's input checks (red-team finding F6): a bound so small it can never be
//! met, a hint that suggests a refused value, a heartbeat that floods the output.

use crate::support::{Scratch, run_in};

fn check(text: &str) -> crate::support::Output {
    let sb = Scratch::new(text);
    run_in(sb.path(), &["check", "r.toml", "--color", "never"])
}

/// Every duration that bounds something refuses a value under 1ms, in every unit.
#[test]
fn a_bound_too_small_to_be_met_is_refused() {
    for value in ["1ns", "999us", "1us", "500000ns", "0.5ms"] {
        for (key, text) in [
            ("steps.a.timeout", format!("[steps.a]\nrun = \"true\"\ntimeout = \"{value}\"\n")),
            ("defaults.timeout", format!("[defaults]\ntimeout = \"{value}\"\n[steps.a]\nrun = \"true\"\n")),
            (
                "compensate.timeout",
                format!(
                    "[steps.a]\nrun = \"true\"\ncompensate = {{ run = \"true\", timeout = \"{value}\" }}\n"
                ),
            ),
        ] {
            let out = check(&format!("[runbook]\nname = \"z\"\n{text}"));
            if value == "0.5ms" {
                // Not a humantime duration: refused as such.
                assert_eq!(out.code, 3, "{}", out.stderr);
                continue;
            }
            assert_eq!(out.code, 3, "{key} = {value} accepted:\n{}", out.stderr);
            assert!(
                out.stderr.contains("RB030") && out.stderr.contains("shorter than 1ms"),
                "{key} = {value}:\n{}",
                out.stderr
            );
            assert!(out.stderr.contains(key), "{}", out.stderr);
        }
    }
    let ok = check("[runbook]\nname = \"z\"\n[steps.a]\nrun = \"true\"\ntimeout = \"1ms\"\n");
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
fn the_duration_hint_never_suggests_a_refused_value() {
    for value in ["1s0", "5", "10 minutes please", "1x"] {
        let out =
            check(&format!("[runbook]\nname = \"z\"\n[steps.a]\nrun = \"true\"\ntimeout = \"{value}\"\n"));
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(out.stderr.contains("RB030"), "{}", out.stderr);
        assert!(!out.stderr.contains("0sec") && !out.stderr.contains("0ms"), "{value}:\n{}", out.stderr);
    }
    let out = check("[runbook]\nname = \"z\"\n[steps.a]\nrun = \"true\"\ntimeout = \"1s0\"\n");
    insta::assert_snapshot!("duration_without_unit", out.stderr);
}

#[test]
fn a_heartbeat_under_a_second_is_raised_to_one_second() {
    let sb = Scratch::new("[runbook]\nname = \"hb\"\n[steps.a]\nrun = \"sleep 2\"\n");
    let out = sb.run(&["--yes"], &[("RUNBOOK_HEARTBEAT", "1ns")]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    let beats = all.matches("still running").count();
    // A 2 s step: at most a beat a second (and a few more on a loaded machine is impossible).
    assert!(beats <= 3, "{beats} heartbeat lines for a 2 s step:\n{all}");
    assert!(all.contains("RUNBOOK_HEARTBEAT=`1ns` is under 1s; using 1s"), "{all}");
}
