//! The commands an operator is told to type (issue 14, point 9): complete, so that they work
//! as printed from another terminal: `--state` when the store is not the default, and the
//! `--input`s a waiting approval requires.

/// `runbook approve RUN STEP [--input NAME=<type>]... [--state STORE]`. `inputs`: each
/// required input's name and what it takes (its type, or its choices `a|b`). `state`: the
/// store as it may be shown (never a password), `None` for the default store.
pub fn approve_command(run_id: &str, step: &str, inputs: &[(String, String)], state: Option<&str>) -> String {
    let mut cmd = format!("runbook approve {} {}", word(run_id), word(step));
    for (name, takes) in inputs {
        cmd.push_str(&format!(" --input {}", word(&format!("{name}=<{takes}>"))));
    }
    cmd.push_str(&state_flag(state));
    cmd
}

/// `runbook reject RUN STEP --reason ... [--state STORE]`.
pub fn reject_command(run_id: &str, step: &str, state: Option<&str>) -> String {
    format!("runbook reject {} {} --reason ...{}", word(run_id), word(step), state_flag(state))
}

/// ` --state STORE`, or nothing for the default store.
pub fn state_flag(state: Option<&str>) -> String {
    state.map(|s| format!(" --state {}", word(s))).unwrap_or_default()
}

/// A word as a shell reads it: as is when it holds only plain characters, else in single
/// quotes (a quote inside written `'\''`). The one helper of every command a message
/// suggests (a run id, a step or instance id, a store): `drain[web 1]` is pasted as one word
/// (issue 15 point 6).
pub fn word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_carries_the_inputs_and_the_store() {
        let inputs = vec![("ticket".to_string(), "string".to_string()), ("env".into(), "a|b".into())];
        assert_eq!(
            approve_command("R1", "gate", &inputs, Some("/tmp/my state/s.db")),
            "runbook approve R1 gate --input 'ticket=<string>' --input 'env=<a|b>' --state '/tmp/my state/s.db'"
        );
        assert_eq!(approve_command("R1", "inc/gate", &[], None), "runbook approve R1 inc/gate");
        assert_eq!(
            reject_command("R1", "g", Some("it's")),
            "runbook reject R1 g --reason ... --state 'it'\\''s'"
        );
    }
}
