//! `runbook approve` and `runbook reject`: record a decision on a waiting approval step.
//!
//! The deciding (rules, inputs, redaction, the checked append) is
//! `runbook_exec::approve::decide`, which the console's approval form calls too; this file
//! only words its answer.

use runbook_exec::approve::{Decision, Next, Refusal};

use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::outln;

pub fn decide(
    run_id: &str,
    step: &str,
    approve: bool,
    inputs: &[(String, String)],
    reason: &str,
    state: Option<String>,
) -> CliResult {
    let location = crate::state::location(state.as_deref());
    crate::runtime::block_on(async {
        let store = crate::state::open(&location, false).await?;
        let operator = crate::identity::operator();
        let decision = Decision { run_id, step, operator: &operator, approve, inputs, reason };
        let as_started = |file: &str, files: &[runbook_core::plan::FileHash]| {
            crate::as_started::load_as_started(file, files).ok().map(|(runbook, _)| runbook)
        };
        let decided = runbook_exec::approve::decide(
            &store,
            decision,
            &as_started,
            &crate::state::engine_env(&location),
        )
        .await
        .map_err(|r| refusal(r, run_id))?;
        if approve {
            outln!(
                "approved `{step}` of run {run_id} as {operator} ({} of {} approval(s))",
                decided.granted,
                decided.min_approvals
            );
        } else {
            outln!("rejected `{step}` of run {run_id} as {operator}: the step fails");
        }
        match decided.next {
            Next::Waiting => {}
            Next::Attached(holder) => outln!("the run is attached to {holder} and continues by itself"),
            Next::EngineGone(holder) => outln!(
                "the engine attached to the run is gone: {holder}; continue the run with `runbook resume {run_id}`"
            ),
            Next::Resume => outln!("continue the run with `runbook resume {run_id}`"),
        }
        Ok(Exit::Success)
    })
}

/// The CLI's words for a refused decision.
fn refusal(r: Refusal, run_id: &str) -> CliError {
    match r {
        Refusal::Store(e) => e.into(),
        Refusal::Rules(why) => CliError::Invalid(Message::new(format!("{why}; nothing was recorded"))),
        Refusal::NoRunbook => CliError::Invalid(
            Message::new(format!(
                "the runbook of run {run_id} cannot be read as it was when the run started; nothing was recorded"
            ))
            .help("restore the runbook files (same SHA-256): `runbook resume` needs them too"),
        ),
        Refusal::Inputs(problems) => CliError::Invalid(
            Message::all(problems).help("give each input as `--input NAME=VALUE`; nothing was recorded"),
        ),
        Refusal::Secrets(problems) => CliError::Invalid(Message::all(problems).help(
            "`approve` reads the run's secrets as the run does, to keep them out of what you type (inputs, reason); give it the same sources, or decide without inputs and reason; nothing was recorded",
        )),
        Refusal::Interrupted(secret) => CliError::Interrupted { secret },
    }
}
