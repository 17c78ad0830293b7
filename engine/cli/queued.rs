//! What a queued run must be before it is queued, for `runbook submit` and for a schedule's
//! fire (`runbook worker --schedules`): its pinned plan, made as `runbook plan -o` makes
//! one, and the checks it must pass.

use std::collections::BTreeMap;
use std::path::Path;

use runbook_core::model::ParamValue;

use crate::error::{CliError, Message};
use crate::input::{load_with_params, pinned_reads};
use crate::run::Reading;

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
    vet_as(runbook, params, file, yes, location, Reading::Run)
}

/// [`vet`], the secrets read as `reading` reads them: a review runs no helper.
fn vet_as(
    runbook: &runbook_core::model::Runbook,
    params: &BTreeMap<String, ParamValue>,
    file: &Path,
    yes: bool,
    location: &runbook_store::Location,
    reading: Reading,
) -> Result<runbook_exec::secrets::Secrets, CliError> {
    if !yes && !runbook.confirming_steps().is_empty() {
        return Err(CliError::Invalid(
            Message::new(
                "this runbook asks for confirmation before some steps, and a queued run has no terminal",
            )
            .help("review the plan (`runbook plan`), then submit again with `--yes`"),
        ));
    }
    let base_dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let secrets = crate::run::resolve_secrets_as(runbook, base_dir, location, reading)?;
    crate::run::check_params_hold_no_secret(&secrets, params)?;
    Ok(secrets)
}

/// A run started from the console (`runbook serve`, POST `/runbooks/{name}/start`): the
/// same plan and checks as `runbook submit FILE -p NAME=VALUE...` ([`plan_of`], [`vet`], and
/// the operator's name held to the run's secrets), for `operator`, the signed-in identity.
/// The console queues what this returns; `Err` is the CLI's message, nothing queued.
/// A `review` (nothing queued: a dry run) runs no secret's helper, as `runbook plan` runs
/// none: its values are held to the secrets read without running anything (red team
/// adv19a-4); the start that queues reads them all.
pub(crate) fn to_start(
    file: &Path,
    params: &[(String, String)],
    yes: bool,
    review: bool,
    operator: &str,
    location: &runbook_store::Location,
) -> Result<runbook_web::ToStart, CliError> {
    let reading = if review { Reading::Review } else { Reading::Run };
    let ((runbook, values, plan), doc) = plan_doc_of(file, params, None, false).map_err(|e| {
        crate::run::refuse_secrets_given_in(file, params, location, reading).err().unwrap_or(e)
    })?;
    let secrets = vet_as(&runbook, &values, file, yes, location, reading)?;
    crate::run::check_texts_hold_no_secret(&secrets, &[("the operator's name", operator)])?;
    crate::run::check_plan_holds_no_secret(&secrets, &plan)?;
    Ok(runbook_web::ToStart {
        run_id: crate::run::new_run_id(),
        runbook: runbook.name.clone(),
        plan,
        // The console quotes no file but runbooks: a script is named with its digest.
        review: runbook_core::render::html_body(&doc, runbook_core::render::Quote::Digests),
        submitted_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    })
}
