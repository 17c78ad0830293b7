//! Issue 11, promise 3 (second round): nothing an operator types reaches the store in
//! clear through a column beside the journal (`runs.operator`, `locks.holder`,
//! `queue.plan`, `queue.submitted_by`, `queue.labels`, `queue.note`). Each command that
//! writes one of them reads the run's secrets first and refuses a text that holds one.

use crate::support::{Scratch, files};

const RUNBOOK: &str = r#"[runbook]
name = "side-columns"

[params.note]
type = "string"
default = "nothing"

[secrets.DB_USER]
env = "DB_USER_SRC"

[steps.hello]
run = 'printf "%s\n" "$NOTE"'
env = { NOTE = "{{ params.note }}" }
"#;

/// Every file of the state folder (database, WAL, journal copies, logs), as text.
fn state_bytes(s: &Scratch) -> Vec<(String, String)> {
    files(&s.path().join("state"), "")
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap_or_default();
            (f.display().to_string(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

fn assert_store_clean(s: &Scratch, secret: &str) {
    for (file, text) in state_bytes(s) {
        for form in crate::secrets::encoded_forms(secret) {
            assert!(!text.contains(&form), "{file} holds the secret (form {form:?})");
        }
    }
}

#[test]
fn an_operator_name_holding_a_secret_is_refused_before_a_run_row_or_lock_is_written() {
    let s = Scratch::new(RUNBOOK);
    let env = [("DB_USER_SRC", "deploy-bot")];
    let out = s.run(&["--as", "deploy-bot@ci-runner-7"], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("`DB_USER`") && out.stderr.contains("operator"), "{}", out.stderr);
    assert!(!out.stderr.contains("deploy-bot"), "the error names, never shows: {}", out.stderr);
    insta::assert_snapshot!("operator_holds_secret", out.stderr);
    assert_store_clean(&s, "deploy-bot");
    // The same name without the secret in it runs.
    let out = s.run(&["--as", "release-bot@ci-runner-7"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn submit_reads_the_secrets_and_refuses_a_parameter_an_operator_or_a_label_holding_one() {
    let token = "Zq7vB2Xq4wP9kLm2";
    let s = Scratch::new(RUNBOOK);
    let env = [("DB_USER_SRC", token)];
    let (param, op, labels) = (format!("note={token}"), format!("ci-{token}"), format!("prod,{token}"));
    for args in [
        vec!["submit", "r.toml", "-p", &param],
        vec!["submit", "r.toml", "--as", &op],
        vec!["submit", "r.toml", "--labels", &labels],
    ] {
        let out = s.cmd(&args, &env);
        assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("`DB_USER`"), "{}", out.stderr);
        assert!(!out.stderr.contains(token), "{}", out.stderr);
    }
    assert_store_clean(&s, token);
    // Secrets that cannot be read: nothing is queued either (as `run` would refuse).
    let out = s.cmd(&["submit", "r.toml"], &[]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let out = s.cmd(&["submit", "r.toml", "-p", "note=fine"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn a_cancel_reason_holding_a_secret_is_refused_and_never_stored() {
    let token = "Zq7vB2Xq4wP9kLm2";
    let s = Scratch::new(RUNBOOK);
    let env = [("DB_USER_SRC", token)];
    let out = s.cmd(&["submit", "r.toml"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let id = out.stdout.trim().to_string();
    let reason = format!("pasted: {token}");
    let out = s.cmd(&["cancel", &id, "--reason", &reason], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("`DB_USER`") && !out.stderr.contains(token), "{}", out.stderr);
    assert_store_clean(&s, token);
    // A reason typed without the secrets' sources cannot be checked: refused too.
    let out = s.cmd(&["cancel", &id, "--reason", "wrong environment"], &[]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    insta::assert_snapshot!("cancel_reason_unchecked", out.stderr);
    let out = s.cmd(&["cancel", &id, "--reason", "wrong environment"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// The class: a generated secret placed in every input an operator controls (operator
/// name, parameters, labels, reasons, approval inputs and reasons), through every command
/// that writes a column of the store; the store's files never hold it in any form.
#[test]
fn a_generated_secret_typed_into_every_operator_input_never_reaches_the_store() {
    let mut seed = crate::secrets::seed();
    for _ in 0..3 {
        let secret = format!("Sk{}", crate::secrets::random_alnum(&mut seed, 22));
        let s = Scratch::new(&format!(
            "{RUNBOOK}\n[steps.gate]\napproval = {{ prompt = \"Go?\", inputs = {{ ticket = {{ type = \"string\" }} }} }}\nneeds = [\"hello\"]\n"
        ));
        let env = [("DB_USER_SRC", secret.as_str())];
        let param = format!("note=x{secret}y");
        let op = format!("{secret}@host");
        let reason = format!("because {secret}");
        let label = format!("eu,{secret}");
        let refused: Vec<Vec<&str>> = vec![
            vec!["run", "r.toml", "-p", &param],
            vec!["run", "r.toml", "--as", &op],
            vec!["submit", "r.toml", "-p", &param],
            vec!["submit", "r.toml", "--as", &op],
            vec!["submit", "r.toml", "--labels", &label],
        ];
        for args in &refused {
            let out = s.cmd(args, &env);
            assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
        }
        // A run waiting for approval, then every typed text on it.
        let out = s.run(&[], &env);
        assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
        let id = s.latest_run();
        let input = format!("ticket={secret}");
        let out = s.cmd(&["approve", &id, "gate", "--reason", &reason, "--input", &input], &env);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let out = s.cmd(&["submit", "r.toml"], &env);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let queued = out.stdout.trim().to_string();
        let out = s.cmd(&["cancel", &queued, "--reason", &reason], &env);
        assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
        let out = s.cmd(&["cancel", &queued, "--as", &op], &env);
        assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
        assert_store_clean(&s, &secret);
    }
}
