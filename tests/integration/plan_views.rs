//! The plan views say exactly what runs (red team adv14b, findings F2, F3, F8, F9, F13).
//!
//! Each test drives the real binary: a script with terminal escapes or a carriage return
//! cannot make the text plan show another command; a real carriage return and the six
//! characters `\u{d}` never look alike in the review document; bidi and zero-width
//! characters never reach it raw; the text plan and the review state the engine's own
//! failure rules for `finally` steps and approvals and claim a point of no return only when
//! it is one; a 3000-step chain gives a plan linear in its size; a CRLF runbook runs LF
//! scripts.

use sha2::Digest as _;

use crate::support::{Output, Scratch, ok, run_in};

/// `runbook plan r.toml ARGS` in the folder (a plan opens no state store).
fn plan(s: &Scratch, args: &[&str]) -> Output {
    let mut all = vec!["plan", "r.toml"];
    all.extend_from_slice(args);
    run_in(s.path(), &all)
}

/// Characters a terminal or a document would not show as themselves, but the line break.
fn hidden(text: &str) -> Vec<(usize, char)> {
    text.char_indices().filter(|(_, c)| *c != '\n' && runbook_core::shown::is_hidden(*c)).collect()
}

#[test]
fn the_text_plan_shows_escapes_and_carriage_returns_as_text() {
    let s = Scratch::new("");
    std::fs::create_dir(s.path().join("victim")).expect("mkdir");
    let victim = s.path().join("victim").display().to_string();
    std::fs::write(
        s.path().join("r.toml"),
        format!(
            "[runbook]\nname = \"esc\"\n\n[steps.wipe]\ntitle = \"say\\u001b[2K\\rhello\"\nconfirm = \"Force-push x\\u001b[2K\\rharmless\"\nrun = \"rm -rf {victim} # \\u001b[2K\\recho hello\"\n"
        ),
    )
    .expect("write");
    let plan = plan(&s, &[]);
    ok(&plan, 0);
    assert_eq!(hidden(&plan.stdout), vec![], "{:?}", plan.stdout);
    let run_line = plan.stdout.lines().find(|l| l.trim_start().starts_with("run ")).expect("a run line");
    assert!(run_line.contains("rm -rf") && run_line.contains("\\u{1b}[2K\\recho hello"), "{run_line}");
    // The plan says, outside the value, which characters were replaced.
    assert!(plan.stdout.contains("U+001B") && plan.stdout.contains("U+000D"), "{}", plan.stdout);
    assert!(plan.stdout.contains("confirm     Force-push x\\u{1b}[2K\\rharmless"), "{}", plan.stdout);
}

#[test]
fn a_carriage_return_and_the_text_of_its_escape_never_look_alike_in_the_review() {
    let real = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"printf one\\rtwo\"\n");
    let typed = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = 'printf one\\u{d}two'\n");
    for format in ["markdown", "text"] {
        let a = plan(&real, &["--format", format]);
        let b = plan(&typed, &["--format", format]);
        ok(&a, 0);
        ok(&b, 0);
        assert_ne!(a.stdout, b.stdout, "{format}");
        assert!(a.stdout.contains("U+000D"), "{format}: {}", a.stdout);
        assert!(!b.stdout.contains("U+000D"), "{format}: {}", b.stdout);
    }
    let bidi = Scratch::new(
        "[runbook]\nname = \"bidi\"\n\n[steps.a]\ntitle = \"t\\u2066x\"\nrun = \"echo safe # \\u202e ; rm -rf /tmp/x \\u202c\\u200b\"\n",
    );
    for format in ["markdown", "text"] {
        let out = plan(&bidi, &["--format", format]);
        ok(&out, 0);
        assert_eq!(hidden(&out.stdout), vec![], "{format}: {}", out.stdout);
        for c in ["U+202E", "U+202C", "U+200B"] {
            assert!(out.stdout.contains(c), "{format} does not name {c}: {}", out.stdout);
        }
    }
}

#[test]
fn a_long_chain_with_compensations_gives_a_plan_linear_in_its_size() {
    let chain = |n: usize| -> String {
        let mut toml = String::from("[runbook]\nname = \"chain\"\n\n");
        for i in 0..n {
            toml.push_str(&format!(
                "[steps.s{i}]\nrun = \"echo {i}\"\ncompensate = {{ run = \"echo undo {i}\" }}\n"
            ));
            if i > 0 {
                toml.push_str(&format!("needs = [\"s{}\"]\n", i - 1));
            }
            toml.push('\n');
        }
        toml
    };
    let (half, full) = (chain(1500), chain(3000));
    let (a, b) = (Scratch::new(&half), Scratch::new(&full));
    for format in ["markdown", "text"] {
        let small = plan(&a, &["--format", format]);
        let big = plan(&b, &["--format", format]);
        ok(&small, 0);
        ok(&big, 0);
        // Linear: a bounded number of bytes per byte of input (quadratic was 235x at 3000
        // steps), and twice the steps give about twice the bytes (quadratic: four times).
        assert!(
            big.stdout.len() < full.len() * 20,
            "{format}: {} bytes for {}",
            big.stdout.len(),
            full.len()
        );
        let ratio = big.stdout.len() as f64 / small.stdout.len() as f64;
        assert!(ratio < 2.2, "{format}: {ratio:.2} times the bytes for twice the steps");
    }
}

#[test]
fn a_crlf_runbook_runs_its_scripts_with_lf_line_ends() {
    let s = Scratch::new("");
    let dir = s.path().join("made").display().to_string();
    std::fs::write(
        s.path().join("r.toml"),
        format!("[runbook]\r\nname = \"crlf\"\r\n\r\n[steps.a]\r\nrun = \"\"\"\r\nmkdir -p {dir}\r\ncd {dir}\r\necho ok\r\n\"\"\"\r\n"),
    )
    .expect("write");
    let json = plan(&s, &["--format", "json"]);
    ok(&json, 0);
    assert!(!json.stdout.contains("\\r"), "{}", json.stdout);
    ok(&s.run(&["--yes"], &[]), 0);
    assert!(s.path().join("made").is_dir(), "{:?}", std::fs::read_dir(s.path()).map(|d| d.count()));
    // A pinned plan hashes the file's bytes as they are, and runs the same LF script.
    let bytes = std::fs::read(s.path().join("r.toml")).expect("read");
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let hash: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(plan["files"][0]["sha256"], serde_json::Value::String(hash), "{}", json.stdout);
    std::fs::remove_dir(s.path().join("made")).expect("rmdir");
    ok(&run_in(s.path(), &["plan", "r.toml", "-o", "plan.json"]), 0);
    ok(&s.cmd(&["run", "--plan", "plan.json", "--yes"], &[]), 0);
    assert!(s.path().join("made").is_dir());
}
#[test]
fn the_plans_state_the_failure_rules_the_engine_follows() {
    let s = Scratch::new(
        r#"[runbook]
name = "rv"

[defaults]
retry = { attempts = 3, delay = "1s" }
on-failure = "stop"

[steps.a]
run = "echo a"
compensate = { run = "echo undo a" }

[steps.gate]
approval = { prompt = "go?" }

[steps.b]
run = "echo b; exit 1"
retry = { attempts = 1 }
on-failure = "compensate"

[finally.f1]
run = "echo f1; exit 1"
retry = { attempts = 1 }

[finally.f2]
run = "echo f2"
"#,
    );
    let text = plan(&s, &[]);
    ok(&text, 0);
    let md = plan(&s, &["--format", "markdown"]);
    ok(&md, 0);
    let block = |id: &str| -> String {
        let from = text.stdout.find(&format!("  {id} [")).expect("the step");
        text.stdout[from..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("      "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // (a) a failed finally step is recorded and the next one runs.
    assert!(!block("f1").contains("stop, without compensating"), "{}", block("f1"));
    assert!(block("f1").contains("the next finally step runs"), "{}", block("f1"));
    // (b) an approval is never retried.
    assert!(!block("gate").contains("attempts"), "{}", block("gate"));
    assert!(block("gate").contains("no retry"), "{}", block("gate"));
    // (c) `b`, after the gate, undoes `a`: the gate is no point of no return.
    assert!(!md.stdout.contains("from there on"), "{}", md.stdout);
    assert!(md.stdout.contains("- **Point of no return:** none"), "{}", md.stdout);
    // And the run does what the plans say.
    let env = [("RUNBOOK_OPERATOR", "ana")];
    let _ = s.run(&[], &env);
    let id = s.latest_run();
    ok(&s.cmd(&["approve", &id, "gate"], &[("RUNBOOK_OPERATOR", "bob")]), 0);
    let resumed = s.cmd(&["resume", &id], &env);
    let all = format!("{}{}", resumed.stdout, resumed.stderr);
    assert!(all.contains("undo a") || s.audit(&id).contains("compensation"), "{all}");
    assert!(s.audit(&id).contains("\"f2\""), "{}", s.audit(&id));
}

/// Every combination of failure rules after a compensable step: the review names as point of
/// no return the first step from which no failure undoes `a` any more, and none when a later
/// failure still undoes it.
#[test]
fn a_point_of_no_return_is_named_only_when_every_later_failure_keeps_the_change() {
    let rules = ["compensate", "stop", "continue"];
    for g in rules {
        for b in rules {
            for c in rules {
                let s = Scratch::new(&format!(
                    "[runbook]\nname = \"p\"\n\n[steps.a]\nrun = \"echo a\"\ncompensate = {{ run = \"echo undo a\" }}\n\n\
                     [steps.g]\nrun = \"echo g\"\nneeds = [\"a\"]\non-failure = \"{g}\"\n\n\
                     [steps.b]\nrun = \"echo b\"\nneeds = [\"g\"]\non-failure = \"{b}\"\n\n\
                     [steps.c]\nrun = \"echo c\"\nneeds = [\"b\"]\non-failure = \"{c}\"\n"
                ));
                let md = plan(&s, &["--format", "markdown"]);
                ok(&md, 0);
                // The first step after which nothing compensates, if it does not itself.
                let chain = [("g", g), ("b", b), ("c", c)];
                let last_compensating = chain.iter().rposition(|(_, r)| *r == "compensate");
                let expected = match last_compensating {
                    Some(i) if i + 1 < chain.len() => Some(chain[i + 1].0),
                    Some(_) => None,
                    None => Some("g"),
                };
                let line =
                    md.stdout.lines().find(|l| l.starts_with("- **Point")).unwrap_or_default().to_string();
                match expected {
                    Some(id) => assert!(
                        line.starts_with(&format!("- **Point of no return:** `{id}`: from there on")),
                        "{g} {b} {c}: {line}"
                    ),
                    None => {
                        assert!(line.starts_with("- **Point of no return:** none"), "{g} {b} {c}: {line}")
                    }
                }
            }
        }
    }
}
