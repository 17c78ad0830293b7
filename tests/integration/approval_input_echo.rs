//! Red team adv19a-1: an approval input is never echoed back (a secret pasted into one came
//! back on the terminal and in the console's answer), and an input that holds a secret is
//! refused as a parameter is (journaled redacted, the placeholder would be what runs).

use crate::support::{Scratch, ok};

const SECRET: &str = "S3cr3tValue-Zq9xW7";

const APPR: &str = r#"[runbook]
name = "appr"

[secrets.TOKEN]
env = "RB_TOKEN"

[steps.gate.approval]
prompt = "go?"
approvers = ["alice", "bob"]

[steps.gate.approval.inputs.ticket]
type = "string"
pattern = '^CHG-\d+$'

[steps.gate.approval.inputs.size]
type = "integer"
default = 10

[steps.gate.approval.inputs.note]
type = "string"
default = "none"

[steps.after]
needs = ["gate"]
run = 'echo "the step got: {{ steps.gate.outputs.note }}"'
"#;

#[test]
fn approval_inputs_are_never_echoed_and_a_secret_in_one_is_refused() {
    let scratch = Scratch::new(APPR);
    let env = [("RB_TOKEN", SECRET), ("RUNBOOK_OPERATOR", "alice")];
    ok(&scratch.run(&["--yes"], &env), 4);
    let run = scratch.latest_run();
    let b64 = crate::secrets::base64(SECRET.as_bytes());
    let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    let cases = [
        vec!["ticket=CHG-1".to_string(), format!("size={SECRET}")],
        vec![format!("ticket={b64}")],
        vec![format!("ticket={SECRET}")],
        vec!["ticket=CHG-1".to_string(), format!("{SECRET}=1")],
        vec!["ticket=CHG-1".to_string(), format!("size={}", "9".repeat(500))],
        // Accepted by every rule, but holding the secret: refused, never journaled redacted.
        vec!["ticket=CHG-1".to_string(), format!("note=key={SECRET}")],
        vec!["ticket=CHG-1".to_string(), format!("note={b64}")],
        vec!["ticket=CHG-1".to_string(), format!("note={hex}")],
    ];
    for inputs in &cases {
        let mut args = vec!["approve", run.as_str(), "gate", "--as", "bob"];
        for i in inputs {
            args.extend(["--input", i.as_str()]);
        }
        let out = scratch.cmd(&args, &[("RB_TOKEN", SECRET)]);
        assert_ne!(out.code, 0, "{inputs:?} accepted: {}", out.stdout);
        let all = format!("{}{}", out.stdout, out.stderr);
        for form in [SECRET, b64.as_str(), hex.as_str()] {
            assert!(!all.contains(form), "{inputs:?} echoed: {all}");
        }
        assert!(!all.contains(&"9".repeat(100)), "{inputs:?}: an unbounded echo: {all}");
        assert!(all.contains("input"), "{inputs:?}: {all}");
    }
    assert!(!scratch.audit(&run).contains("approval_granted"), "{}", scratch.audit(&run));
    // A clean value is accepted and is what runs.
    ok(
        &scratch.cmd(
            &["approve", &run, "gate", "--as", "bob", "--input", "ticket=CHG-1", "--input", "note=fine"],
            &[("RB_TOKEN", SECRET)],
        ),
        0,
    );
}
