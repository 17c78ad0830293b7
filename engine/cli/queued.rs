//! What a queued run must be before it is queued, for `runbook submit` and for a schedule's
//! fire (`runbook worker --schedules`): its pinned plan, made as `runbook plan -o` makes
//! one, and the checks it must pass.

use std::collections::BTreeMap;
use std::path::Path;

use runbook_core::model::ParamValue;

use crate::error::{CliError, Message};
use crate::input::{load_with_params, pinned_reads};

/// The pinned plan of a runbook with its parameter values, as `runbook plan -o` writes it
/// (the worker runs it with `run --plan`): the runbook, the values and the plan's text.
pub(crate) type Planned =
    (std::sync::Arc<runbook_core::model::Runbook>, BTreeMap<String, ParamValue>, String);

/// See [`Planned`].
pub(crate) fn plan_of(
    file: &Path,
    params: &[(String, String)],
    params_file: Option<&Path>,
    color: bool,
) -> Result<Planned, CliError> {
    let ((runbook, values, text), _) = plan_doc_of(file, params, params_file, color)?;
    Ok((runbook, values, text))
}

/// [`plan_of`], and the plan itself (for its review document).
fn plan_doc_of(
    file: &Path,
    params: &[(String, String)],
    params_file: Option<&Path>,
    color: bool,
) -> Result<(Planned, runbook_core::plan::Plan), CliError> {
    let (runbook, values) = load_with_params(file, params, params_file, color)?;
    let mut plan = runbook_core::plan::plan(&runbook, &values).map_err(CliError::Diagnostics)?;
    plan.reads = pinned_reads(&runbook, params_file)?;
    let text = serde_json::to_string_pretty(&plan)
        .map_err(|e| CliError::Invalid(Message::new(format!("cannot write the plan: {e}"))))?;
    Ok(((runbook, values, text), plan))
}

/// What a queued run must pass before it is queued: a confirmation it asks for is given
/// (`yes`: a queued run has no terminal), and no parameter value holds a secret. The store
/// keeps the plan (with its parameters), the labels and who submitted it: the secrets are
/// read as the run will read them, and a value holding one is refused here, before anything
/// is queued (issue 11, promise 3).
pub(crate) fn vet(
    runbook: &runbook_core::model::Runbook,
    params: &BTreeMap<String, ParamValue>,
    file: &Path,
    yes: bool,
    location: &runbook_store::Location,
) -> Result<runbook_exec::secrets::Secrets, CliError> {
    if !yes && runbook.steps.iter().any(|s| s.confirm.is_some()) {
        return Err(CliError::Invalid(
            Message::new(
                "this runbook asks for confirmation before some steps, and a queued run has no terminal",
            )
            .help("review the plan (`runbook plan`), then submit again with `--yes`"),
        ));
    }
    let base_dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let secrets = crate::run::resolve_secrets(runbook, base_dir, location)?;
    crate::run::check_params_hold_no_secret(&secrets, params)?;
    Ok(secrets)
}

/// A secret typed as a parameter's name or value, refused in place of the checks of the
/// values (RB071, RB072 and the rest quote the name and the value), so a refusal never sends
/// the secret back (the console's form and API, `runbook submit -p`, `runbook run -p`; red
/// team adv16u F1). Called when those checks refused (the secrets, which a command may give,
/// are not read twice for a start that is fine); a runbook that does not load, or secrets
/// that cannot be read, leave the checks' own answer (no secret is known to look for).
pub(crate) fn refuse_secrets_given(
    file: &Path,
    params: &[(String, String)],
    location: &runbook_store::Location,
) -> Result<(), CliError> {
    if params.is_empty() {
        return Ok(());
    }
    let Ok((runbook, ..)) = crate::input::load_with_missing_params(file, &[], None, false) else {
        return Ok(());
    };
    let base_dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(secrets) = crate::run::resolve_secrets(&runbook, base_dir, location) else {
        return Ok(());
    };
    let holds = |text: &str| !runbook_exec::secrets::texts_holding_secrets(&secrets, [("", text)]).is_empty();
    let labels: Vec<(String, &str)> = params
        .iter()
        .flat_map(|(name, value)| {
            let of = if holds(name) {
                "a parameter given".to_string()
            } else {
                format!("parameter `{}`", runbook_core::shown::one_line(name))
            };
            [(format!("the name of {of}"), name.as_str()), (format!("the value of {of}"), value.as_str())]
        })
        .collect();
    let problems = runbook_exec::secrets::texts_holding_secrets(
        &secrets,
        labels.iter().map(|(label, text)| (label.as_str(), *text)),
    );
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Invalid(Message::all(problems).help(
        "parameters are journaled and shown as given; pass secret values as `[secrets]`, and keep them out of parameter values; nothing ran",
    )))
}

/// A run started from the console (`runbook serve`, POST `/runbooks/{name}/start`): the
/// same plan and checks as `runbook submit FILE -p NAME=VALUE...` ([`plan_of`], [`vet`], and
/// the operator's name held to the run's secrets), for `operator`, the signed-in identity.
/// The console queues what this returns; `Err` is the CLI's message, nothing queued.
pub(crate) fn to_start(
    file: &Path,
    params: &[(String, String)],
    yes: bool,
    operator: &str,
    location: &runbook_store::Location,
) -> Result<runbook_web::ToStart, CliError> {
    let ((runbook, values, plan), doc) = plan_doc_of(file, params, None, false)
        .map_err(|e| refuse_secrets_given(file, params, location).err().unwrap_or(e))?;
    let secrets = vet(&runbook, &values, file, yes, location)?;
    crate::run::check_texts_hold_no_secret(&secrets, &[("the operator's name", operator)])?;
    Ok(runbook_web::ToStart {
        run_id: crate::run::new_run_id(),
        runbook: runbook.name.clone(),
        plan,
        // The console quotes no file but runbooks: a script is named with its digest.
        review: runbook_core::render::html_body(&doc, runbook_core::render::Quote::Digests),
        submitted_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    })
}
