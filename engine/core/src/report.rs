//! The incident report (and the drill review) of a run, filled from its journal.
//!
//! The structure is the team guide's "Plantilla de Incident Report": summary, description,
//! root cause, action taken, the rollback executed, prevention, action items and a timeline.
//! Every statement of fact is derived from a journal record: what ran, what failed and its
//! error text, what was compensated and whether each compensation succeeded, interruptions,
//! crashes and resumes (who, when), operators' decisions. Versions, the restore point and
//! evidence files are stated only as the step outputs the runbook declares in `[report]`
//! (journaled with `run_started`) observed them, with the step that observed them; a
//! version observed before the last compensation is not the resulting version (the report
//! says it is unknown). A parameter is never presented as an observation, and the result
//! follows the run's status whatever an approval input says (both are shown when they
//! disagree). What only people know stays as a placeholder for them to write. A drill run
//! (a runbook named `drill`, or any run with `--drill`) adds the review the guide asks for:
//! each step's time against its estimate, and the problems met.
//!
//! Pure: it reads records and, when the caller has it, the validated runbook.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use crate::journal::{Decision, Record, ReportFacts, RunEvent, RunStatus, fold, parse_fact_ref};
use crate::model::{Runbook, format_duration};
use crate::shown::{code, markdown as md};

/// Text that people must write.
pub const TO_FILL: &str = "_(a completar)_";

/// A filled report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The run.
    pub run_id: String,
    /// Runbook name.
    pub runbook: String,
    /// Runbook title, when known.
    pub title: Option<String>,
    /// Runbook description, when known.
    pub description: Option<String>,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// How long it took, until its last record.
    pub duration: Option<Duration>,
    /// Who started it.
    pub operator: String,
    /// Final (or current) status.
    pub status: Option<RunStatus>,
    /// `impact`, from a parameter or an approval input.
    pub impact: Option<String>,
    /// `severity`, likewise.
    pub severity: Option<String>,
    /// `incident`, likewise.
    pub incident: Option<String>,
    /// `root_cause`, likewise.
    pub root_cause: Option<String>,
    /// `result` as people gave it (`exito`, `parcial`, `fallo`), and where.
    pub result: Option<(String, String)>,
    /// Rollback level (1 to 3) from the runbook's name, if it is a rollback.
    pub level: Option<u8>,
    /// The version found deployed before, as observed.
    pub version_before: Fact,
    /// The version deployed at the end, as observed after the last compensation.
    pub version_after: Fact,
    /// When the restored data was taken, as observed.
    pub restore_point: Fact,
    /// Evidence files, as observed.
    pub evidence: Vec<Fact>,
    /// Steps that succeeded, by title, in order of completion.
    pub actions: Vec<String>,
    /// What failed: (what, reason, the end of its output).
    pub failures: Vec<Failure>,
    /// Compensations: each with its outcome.
    pub compensations: Vec<String>,
    /// How many compensations succeeded and failed.
    pub compensation_counts: (usize, usize),
    /// Interruptions, crashes, resumes and operators' decisions, with their times.
    pub interruptions: Vec<String>,
    /// (time, event) rows.
    pub timeline: Vec<(String, String)>,
    /// For drills: (step, took, estimate, over the estimate).
    pub step_times: Vec<StepTime>,
    /// Problems met: failed attempts, failures, escalations, rejections.
    pub problems: Vec<String>,
    /// Whether this is a drill review.
    pub drill: bool,
    /// What the team recorded in the drill's review (`problems`, `procedure_updates`,
    /// `next_drill`), when it did.
    pub review: Vec<(String, String)>,
    /// The journal's last hash.
    pub last_hash: Option<String>,
}

/// A fact the runbook declares in `[report]`, as the journal holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The runbook declares no output for it.
    Undeclared,
    /// Observed by `by` (a reference) at `at` (HH:MM:SS).
    Observed {
        /// The value observed.
        value: String,
        /// The output that observed it.
        by: String,
        /// When.
        at: String,
    },
    /// Declared, never observed (the step did not complete, or not after the last
    /// compensation): `earlier` is what it observed before being undone, if anything.
    Unknown {
        /// The output that should have observed it.
        by: String,
        /// Why it did not.
        why: String,
        /// What it observed before the last compensation.
        earlier: Option<String>,
    },
}

impl Fact {
    fn text(&self, undeclared: &str) -> String {
        match self {
            Fact::Undeclared => format!("no declarada ({undeclared})"),
            Fact::Observed { value, by, at } => {
                format!("{} (observada por `{}` a las {at})", md(value), code(by))
            }
            Fact::Unknown { by, why, earlier } => format!(
                "desconocida: `{}` no la observó {why}{}",
                code(by),
                earlier
                    .as_ref()
                    .map(|e| format!("; antes de deshacer observó {}, que ya no vale", md(e)))
                    .unwrap_or_default()
            ),
        }
    }
}

/// A failure the journal records.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What failed (a step, a compensation, a precondition), and when.
    pub what: String,
    /// The recorded reason.
    pub reason: String,
    /// The end of its output, redacted, as journaled.
    pub output: Option<String>,
}

/// One step's time against its estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTime {
    /// Step id.
    pub step: String,
    /// How long it took (first start to success).
    pub took: Duration,
    /// Its estimate, as written.
    pub estimate: Option<String>,
    /// True when it took longer than the estimate's upper bound.
    pub over: bool,
}

fn ts(s: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

fn hms(s: &str) -> String {
    // `2026-11-30T06:44:29.770Z` → `06:44:29`
    s.get(11..19).unwrap_or(s).to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The last record in which `reference` was observed: (seq, time, value).
fn observed(records: &[Record], reference: &str) -> Option<(u64, String, String)> {
    let (step, compensate, output) = parse_fact_ref(reference)?;
    records.iter().rev().find_map(|r| {
        let outputs = match &r.event {
            RunEvent::StepSucceeded { step: s, outputs, .. } if !compensate && s == step => outputs,
            RunEvent::CompensationSucceeded { step: s, outputs } if compensate && s == step => outputs,
            _ => return None,
        };
        let value = outputs.get(output).map(text).filter(|v| !v.trim().is_empty())?;
        Some((r.seq, hms(&r.ts), value))
    })
}

/// A declared fact as the journal holds it; with `after`, only an observation recorded
/// after that sequence number counts.
fn fact(records: &[Record], reference: Option<&String>, after: Option<&(u64, String)>) -> Fact {
    let Some(by) = reference else { return Fact::Undeclared };
    match (observed(records, by), after) {
        (Some((seq, _, value)), Some((last, at))) if seq < *last => Fact::Unknown {
            by: by.clone(),
            why: format!("después de la última compensación ({at})"),
            earlier: Some(value),
        },
        (Some((_, at, value)), _) => Fact::Observed { value, by: by.clone(), at },
        (None, _) => Fact::Unknown { by: by.clone(), why: "(no se completó)".into(), earlier: None },
    }
}

/// Build the report of a run from its records, with the runbook when the caller has it.
pub fn build(records: &[Record], runbook: Option<&Runbook>, drill: bool) -> Report {
    let state = fold(records);
    let mut params: BTreeMap<String, Value> = BTreeMap::new();
    let mut name = String::new();
    let mut operator = String::new();
    let mut declared = ReportFacts::default();
    for r in records {
        if let RunEvent::RunStarted { runbook, params: p, operator: o, report, .. } = &r.event {
            name = runbook.clone();
            operator = o.clone();
            params.extend(p.clone());
            declared = report.clone();
        }
    }
    // A journal from before `[report]` was journaled: the runbook's declaration, when the
    // caller has the runbook as it ran.
    if declared.is_empty()
        && let Some(rb) = runbook
    {
        declared = rb.report.clone();
    }
    // Facts people gave: parameters, then approval inputs (the later win), with where.
    let mut facts: BTreeMap<String, (Value, String)> =
        params.iter().map(|(k, v)| (k.clone(), (v.clone(), "el parámetro".to_string()))).collect();
    for (step, inputs) in &state.approval_inputs {
        for (k, v) in inputs {
            facts.insert(k.clone(), (v.clone(), format!("la aprobación `{}`", code(step))));
        }
    }
    let fact_of = |k: &str| facts.get(k).map(|(v, _)| text(v)).filter(|s| !s.is_empty());
    // Titles render against the run's journaled parameters alone, given by people before the
    // run. Never against outputs: a template over what steps wrote (which may hold a secret
    // in a form the redactor does not know, or in pieces) could join or transform it into a
    // secret no sink ever saw. A title that needs outputs (or cannot render) is shown as
    // written; a step of an included runbook (its parameters are not journaled) is named by
    // its id alone.
    let ctx = crate::template::Context::new(&serde_json::json!({
        "params": params,
        "steps": {},
        "secrets": {},
        "run": { "id": records.first().map(|r| r.run_id.clone()).unwrap_or_default(), "status": "", "started_at": "" },
        "runbook": { "name": name, "title": runbook.and_then(|rb| rb.title.clone()).unwrap_or_default() },
    }));
    let title_of = |id: &str| -> String {
        if id.contains('/') {
            return md(id);
        }
        runbook
            .and_then(|rb| rb.find_step(id))
            .and_then(|s| s.title.as_ref())
            .map(|t| {
                let uses_outputs = t.text.contains("steps.") || t.text.contains("steps[");
                let text = (!uses_outputs)
                    .then(|| crate::template::render(&t.text, crate::template::Mode::Plain, &ctx).ok())
                    .flatten()
                    .unwrap_or_else(|| t.text.clone());
                format!("{}: {}", md(id), md(&text))
            })
            .unwrap_or_else(|| md(id))
    };
    let started_at = records.first().map(|r| r.ts.clone()).unwrap_or_default();
    let duration = match (records.first().and_then(|r| ts(&r.ts)), records.last().and_then(|r| ts(&r.ts))) {
        (Some(a), Some(b)) => b.duration_since(a).ok(),
        _ => None,
    };
    let level = name.strip_prefix("rollback-l").and_then(|l| l.parse::<u8>().ok());
    // The resulting version counts only if observed after the last compensation began.
    let last_compensation = records.iter().rev().find_map(|r| match &r.event {
        RunEvent::CompensationStarted { .. } => Some((r.seq, hms(&r.ts))),
        _ => None,
    });
    let version_before = fact(records, declared.version_before.as_ref(), None);
    let version_after = fact(records, declared.version_after.as_ref(), last_compensation.as_ref());
    let restore_point = fact(records, declared.restore_point.as_ref(), None);
    // Evidence is listed when it exists, or when the unit that makes it started and did not
    // make it (a failed evidence dump is a fact); a compensation that never ran made none.
    let started = |reference: &str| {
        let (unit, compensation) = match reference.split_once(".compensate.") {
            Some((step, _)) => (step, true),
            None => (reference.split_once('.').map_or(reference, |(step, _)| step), false),
        };
        records.iter().any(|r| {
            matches!(&r.event, RunEvent::StepStarted { step, .. } if !compensation && step == unit)
                || matches!(&r.event, RunEvent::CompensationStarted { step, .. } if compensation && step == unit)
        })
    };
    let evidence = declared
        .evidence
        .iter()
        .map(|e| fact(records, Some(e), None))
        .zip(&declared.evidence)
        .filter(|(f, e)| matches!(f, Fact::Observed { .. }) || started(e))
        .map(|(f, _)| f)
        .collect();

    let mut timeline = Vec::new();
    let mut problems = Vec::new();
    let mut failures = Vec::new();
    let mut compensations = Vec::new();
    let (mut undone, mut undo_failed) = (0, 0);
    let mut interruptions = Vec::new();
    let mut first_start: BTreeMap<String, String> = BTreeMap::new();
    let mut step_times = Vec::new();
    // Whether the engine that wrote the last records recorded its own stop.
    let mut stopped = false;
    for (i, r) in records.iter().enumerate() {
        let t = hms(&r.ts);
        let last_stopped = stopped;
        stopped = match &r.event {
            RunEvent::RunSuspended { .. }
            | RunEvent::RunInterrupted { .. }
            | RunEvent::RunFinished { .. }
            | RunEvent::RunAbandoned { .. } => true,
            RunEvent::RunStarted { .. } | RunEvent::RunResumed { .. } => false,
            _ => stopped,
        };
        let row = match &r.event {
            RunEvent::RunStarted { operator, .. } => {
                Some(format!("Inicio de `{}` por {}", code(&name), md(operator)))
            }
            RunEvent::ScheduleFired { schedule, due } => {
                Some(format!("Programado: `{}`, para {}", code(schedule), md(due)))
            }
            RunEvent::StepStarted { step, attempt } => {
                first_start.entry(step.clone()).or_insert_with(|| r.ts.clone());
                (*attempt == 1).then(|| format!("Inicio: {}", title_of(step)))
            }
            RunEvent::StepSucceeded { step, .. } => {
                if let (Some(start), Some(end)) = (first_start.get(step).and_then(|s| ts(s)), ts(&r.ts)) {
                    let took = end.duration_since(start).unwrap_or_default();
                    let estimate = runbook.and_then(|rb| rb.find_step(step)).and_then(|s| s.estimate);
                    step_times.push(StepTime {
                        step: step.clone(),
                        took,
                        estimate: estimate.map(|e| e.to_string()),
                        over: estimate.is_some_and(|e| took > e.high),
                    });
                }
                Some(format!("Completado: {}", title_of(step)))
            }
            RunEvent::AttemptFailed { step, attempt, reason, .. } => {
                problems.push(format!("`{}`, intento {attempt}: {}", code(step), md(reason)));
                None
            }
            RunEvent::StepFailed { step, attempt, reason, output } => {
                problems.push(format!("`{}` falló: {}", code(step), md(reason)));
                failures.push(Failure {
                    what: format!("{t} `{}` falló (intento {attempt})", code(step)),
                    reason: md(reason),
                    output: output.clone(),
                });
                Some(format!("Fallo: {} ({})", title_of(step), md(reason)))
            }
            RunEvent::StepSkipped { .. } => None,
            RunEvent::CompensationStarted { step, attempt } => {
                (*attempt == 1).then(|| format!("Compensación: {}", title_of(step)))
            }
            RunEvent::CompensationSucceeded { step, outputs } => {
                undone += 1;
                let outs: Vec<String> =
                    outputs.iter().map(|(k, v)| format!("{}={}", md(k), md(&text(v)))).collect();
                compensations.push(format!(
                    "{t} deshecho: {}{}",
                    title_of(step),
                    if outs.is_empty() { String::new() } else { format!(" ({})", outs.join(", ")) }
                ));
                Some(format!("Compensación hecha: {}", title_of(step)))
            }
            RunEvent::CompensationFailed { step, reason, output } => {
                undo_failed += 1;
                let reason = md(reason);
                problems.push(format!("la compensación de `{}` falló: {reason}", code(step)));
                compensations.push(format!("{t} la compensación de {} FALLÓ: {reason}", title_of(step)));
                failures.push(Failure {
                    what: format!("{t} la compensación de `{}` falló", code(step)),
                    reason: reason.clone(),
                    output: output.clone(),
                });
                Some(format!("Compensación fallida: {} ({reason})", title_of(step)))
            }
            RunEvent::ApprovalRequested { step, .. } => {
                Some(format!("Aprobación solicitada: {}", title_of(step)))
            }
            RunEvent::ApprovalGranted { step, operator, reason, .. } => Some(format!(
                "Aprobado por {}: {}{}",
                md(operator),
                title_of(step),
                if reason.is_empty() { String::new() } else { format!(" ({})", md(reason)) }
            )),
            RunEvent::ApprovalRejected { step, operator, reason } => {
                let (operator, reason) = (md(operator), md(reason));
                problems.push(format!("{operator} rechazó `{}`: {reason}", code(step)));
                Some(format!("Rechazado por {operator}: {} ({reason})", title_of(step)))
            }
            RunEvent::RunSuspended { waiting } => {
                let waiting: Vec<String> = waiting.iter().map(|w| md(w)).collect();
                Some(format!("En espera de aprobación: {}", waiting.join(", ")))
            }
            RunEvent::RunResumed { operator, rerun_idempotent } => {
                let operator = md(operator);
                let rerun_idempotent: Vec<String> = rerun_idempotent.iter().map(|s| md(s)).collect();
                // A resume with no record of a stop since the engine before it started (a
                // suspension, an interruption, an end): that engine died (a crash, a kill, a
                // lost host) without recording anything. Decisions others recorded meanwhile
                // (approvals) say nothing about it.
                let crashed = i > 0 && !last_stopped;
                if crashed {
                    let before = &records[i - 1];
                    interruptions.push(format!(
                        "el motor se detuvo sin registrarlo (caída) después del registro {} de las {}{}",
                        before.seq,
                        hms(&before.ts),
                        in_doubt(&records[..i])
                    ));
                    problems.push(format!(
                        "el motor se detuvo sin registrarlo después de las {}",
                        hms(&before.ts)
                    ));
                    timeline.push((
                        hms(&before.ts),
                        "Caída del motor: no registró por qué se detuvo".to_string(),
                    ));
                }
                interruptions.push(format!(
                    "{t} reanudado por {operator}{}",
                    if rerun_idempotent.is_empty() {
                        String::new()
                    } else {
                        format!("; vuelven a ejecutarse (idempotentes): {}", rerun_idempotent.join(", "))
                    }
                ));
                Some(format!("Reanudado por {operator}"))
            }
            RunEvent::RunInterrupted { reason } => {
                let reason = md(reason);
                problems.push(format!("run interrumpido: {reason}"));
                interruptions.push(format!("{t} run interrumpido: {reason}"));
                Some(format!("Interrumpido: {reason}"))
            }
            RunEvent::OperatorDecision { step, decision, operator, reason } => {
                let what = match decision {
                    Decision::Rerun => "repetir",
                    Decision::Skip => "dar por zanjado (no se repite ni se deshace)",
                    Decision::Undo => "que tuvo efecto, y deshacer",
                };
                let line = format!("{} decide {what} `{}`: {}", md(operator), code(step), md(reason));
                interruptions.push(format!("{t} {line}"));
                Some(line)
            }
            RunEvent::CompensationDecision { step, decision, operator, reason } => {
                let what = match decision {
                    Decision::Rerun => "repetir",
                    Decision::Skip => "dar por hecha",
                    Decision::Undo => "deshacer (no aplica a una compensación)",
                };
                let line = format!(
                    "{} decide {what} la compensación de `{}`: {}",
                    md(operator),
                    code(step),
                    md(reason)
                );
                interruptions.push(format!("{t} {line}"));
                if *decision == Decision::Skip {
                    compensations.push(format!(
                        "{t} compensación de `{}` dada por hecha por {}, sin ejecutarse",
                        code(step),
                        md(operator)
                    ));
                }
                Some(line)
            }
            RunEvent::EscalationFired { escalation, delivered, .. } => {
                let escalation = code(escalation);
                problems.push(format!("escalación `{escalation}` disparada"));
                Some(format!(
                    "Escalación `{escalation}`{}",
                    if *delivered { " notificada" } else { " (notificación fallida)" }
                ))
            }
            RunEvent::PreconditionFailed { step, precondition, message, output } => {
                let of = match step {
                    Some(step) => format!("del paso `{}`", code(step)),
                    None => "del runbook".to_string(),
                };
                // A step's is reported with the `step_failed` it causes; the runbook's own
                // here (its `run_finished` then only says how the run ended).
                if step.is_none() {
                    problems.push(md(message));
                    failures.push(Failure {
                        what: format!("{t} una precondición del runbook falló; ningún paso se ejecutó"),
                        reason: md(message),
                        output: output.clone(),
                    });
                }
                Some(format!("Precondición `{}` {of} falló: {}", code(precondition), md(message)))
            }
            RunEvent::RunFinished { status, preconditions } => {
                // Journals written before `precondition_failed` existed carry them here only.
                let journaled = records[..i]
                    .iter()
                    .any(|r| matches!(&r.event, RunEvent::PreconditionFailed { step: None, .. }));
                for p in preconditions.iter().filter(|_| !journaled) {
                    let p = md(p);
                    problems.push(p.clone());
                    failures.push(Failure {
                        what: format!("{t} una precondición del runbook falló; ningún paso se ejecutó"),
                        reason: p,
                        output: None,
                    });
                }
                Some(format!("Fin del run: {}", status.as_str()))
            }
            // Where the step's output is kept: not an event of the run's story.
            RunEvent::LogKept { .. } => None,
            RunEvent::ConfirmationRequested { step, question } => {
                Some(format!("Se pregunta antes de `{}`: «{}»", code(step), md(question)))
            }
            RunEvent::ConfirmationGiven { step, question, operator, confirmed, by_yes } => {
                let who = if *by_yes { format!("{} (con `--yes`)", md(operator)) } else { md(operator) };
                let what = if *confirmed { "confirma" } else { "no confirma" };
                Some(format!("{who} {what} `{}`: «{}»", code(step), md(question)))
            }
            RunEvent::RunAbandoned { operator, reason, compensated } => Some(format!(
                "Abandonada por {}{}: {}",
                md(operator),
                if *compensated { " (tras compensar)" } else { "" },
                md(reason)
            )),
        };
        if let Some(row) = row {
            timeline.push((t, row));
        }
    }
    // The last engine recorded no stop (no suspension, interruption or end): the run is
    // still going, or that engine died without a word (no resume has said so yet). The
    // report cannot tell which; it says both, and names what has no outcome.
    if !stopped && let Some(last) = records.last() {
        interruptions.push(format!(
            "el journal no registra que el motor se detuviera (último registro: {} de las {}): o el run sigue en curso, o el motor murió sin registrarlo (caída); `runbook show` y `runbook resume` lo comprueban{}",
            last.seq,
            hms(&last.ts),
            in_doubt(records)
        ));
    }
    // A run that stops with a compensation started and no outcome: in doubt.
    for step in state.compensations_in_doubt() {
        compensations
            .push(format!("compensación de `{}` empezada, sin resultado registrado (en duda)", code(step)));
    }
    let actions = state.completed.iter().filter(|id| !id.contains('/')).map(|id| title_of(id)).collect();
    Report {
        run_id: records.first().map(|r| r.run_id.clone()).unwrap_or_default(),
        runbook: name.clone(),
        title: runbook.and_then(|rb| rb.title.clone()),
        description: runbook.and_then(|rb| rb.description.clone()),
        started_at,
        duration,
        operator,
        status: state.status,
        impact: fact_of("impact"),
        severity: fact_of("severity"),
        incident: fact_of("incident"),
        root_cause: fact_of("root_cause"),
        result: facts.get("result").map(|(v, from)| (text(v), from.clone())).filter(|(v, _)| !v.is_empty()),
        level,
        version_before,
        version_after,
        restore_point,
        evidence,
        actions,
        failures,
        compensations,
        compensation_counts: (undone, undo_failed),
        interruptions,
        timeline,
        step_times,
        problems,
        drill: drill || name == "drill",
        review: [
            ("Problemas registrados", "problems"),
            ("Cambios acordados", "procedure_updates"),
            ("Próximo simulacro", "next_drill"),
        ]
        .iter()
        .filter_map(|(label, k)| fact_of(k).map(|v| (label.to_string(), v)))
        .collect(),
        last_hash: state.last_hash,
    }
}

/// `; en curso, sin resultado registrado: `a`, `b`` for the steps started with no outcome
/// in these records, or nothing.
fn in_doubt(records: &[Record]) -> String {
    let doubt: Vec<String> = fold(records).in_doubt().iter().map(|s| format!("`{}`", code(s))).collect();
    if doubt.is_empty() {
        String::new()
    } else {
        format!("; en curso, sin resultado registrado: {}", doubt.join(", "))
    }
}

fn or_fill(v: &Option<String>) -> String {
    v.as_deref().map(md).unwrap_or_else(|| TO_FILL.to_string())
}

impl Report {
    /// The result, from the run's status; what people said is shown beside it, never
    /// instead of it.
    fn result_text(&self) -> String {
        let (ok, failed) = self.compensation_counts;
        let from_journal = match self.status {
            Some(RunStatus::Succeeded) => "Éxito (el run terminó bien)".to_string(),
            Some(RunStatus::Failed) => {
                let undo = match (ok, failed) {
                    (0, 0) => "ninguna compensación se ejecutó".to_string(),
                    (n, 0) => format!("{n} compensación(es) hecha(s)"),
                    (n, f) => format!("{n} compensación(es) hecha(s), {f} fallida(s)"),
                };
                format!("Fallo (el run falló; {undo})")
            }
            Some(RunStatus::NeedsOperator) => {
                "Sin terminar: espera la decisión de un operador (needs_operator)".to_string()
            }
            Some(s) => format!("Sin terminar ({})", s.as_str()),
            None => TO_FILL.to_string(),
        };
        let Some((said, from)) = &self.result else { return from_journal };
        let agrees = matches!(
            (said.as_str(), self.status),
            ("exito", Some(RunStatus::Succeeded)) | ("fallo", Some(RunStatus::Failed))
        );
        format!(
            "{from_journal}; {from} indicó «{}»{}",
            md(said),
            if agrees { "" } else { " (no coincide con el estado del run en el journal)" }
        )
    }

    /// The report as markdown, in the guide's template.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let date = self.started_at.get(..10).unwrap_or(&self.started_at);
        let heading = if self.drill { "Drill Review" } else { "Incident Report" };
        let _ = writeln!(o, "# {heading}: {date}\n");
        let _ = writeln!(o, "## Resumen");
        let _ = writeln!(
            o,
            "- **Fecha/Hora:** {} (UTC)",
            self.started_at.replace('T', " ").trim_end_matches('Z')
        );
        let _ = writeln!(
            o,
            "- **Duración:** {}",
            self.duration.map(format_duration).unwrap_or_else(|| TO_FILL.into())
        );
        let _ = writeln!(o, "- **Impacto:** {}", or_fill(&self.impact));
        let _ = writeln!(
            o,
            "- **Severidad:** {}",
            self.severity.as_deref().map(md).unwrap_or_else(|| format!("P1 / P2 / P3 / P4 {TO_FILL}"))
        );
        let _ = writeln!(
            o,
            "- **Run:** `{}` de `{}`, iniciado por {}",
            code(&self.run_id),
            code(&self.runbook),
            md(&self.operator)
        );
        let _ = writeln!(
            o,
            "- **Estado en el journal:** {}",
            self.status.map_or("sin registros", |s| s.as_str())
        );
        if let Some(i) = &self.incident {
            let _ = writeln!(o, "- **Incidente:** {}", md(i));
        }
        let _ = writeln!(o, "\n## Descripción");
        let _ = writeln!(
            o,
            "{}\n",
            self.title.as_deref().map(|t| format!("{}. {TO_FILL}", md(t))).unwrap_or_else(|| TO_FILL.into())
        );
        let _ = writeln!(o, "## Causa Raíz\n{}\n", or_fill(&self.root_cause));
        let _ = writeln!(o, "## Acción Tomada");
        if self.actions.is_empty() {
            let _ = writeln!(o, "Ningún paso se completó.");
        }
        for a in &self.actions {
            let _ = writeln!(o, "- {a}");
        }
        let _ = writeln!(o, "\n## Errores");
        if self.failures.is_empty() {
            let _ = writeln!(o, "Ningún paso ni compensación falló.");
        }
        for f in &self.failures {
            let _ = writeln!(o, "- {}: {}", f.what, f.reason);
            if let Some(out) = &f.output {
                let _ = writeln!(o, "\n```text");
                for line in out.lines() {
                    let _ = writeln!(o, "{}", crate::shown::one_line(line).replace("```", "` ` `"));
                }
                let _ = writeln!(o, "```");
            }
        }
        let _ = writeln!(o, "\n## Compensaciones");
        if self.compensations.is_empty() {
            let _ = writeln!(o, "Ninguna compensación se ejecutó.");
        }
        for c in &self.compensations {
            let _ = writeln!(o, "- {c}");
        }
        let _ = writeln!(o, "\n## Interrupciones y reanudaciones");
        if self.interruptions.is_empty() {
            let _ = writeln!(o, "Ninguna: el journal no registra interrupciones, caídas ni reanudaciones.");
        }
        for c in &self.interruptions {
            let _ = writeln!(o, "- {c}");
        }
        let _ = writeln!(o, "\n## Rollback Ejecutado");
        let kind = match self.level {
            Some(l) => format!("Nivel {l}"),
            None => format!("{} (no es un rollback)", md(&self.runbook)),
        };
        let _ = writeln!(o, "- **Tipo:** {kind}");
        let _ = writeln!(
            o,
            "- **Versión anterior:** {}",
            self.version_before.text("el runbook no declara `[report] version-before`")
        );
        let _ = writeln!(
            o,
            "- **Versión resultante:** {}",
            self.version_after.text("el runbook no declara `[report] version-after`")
        );
        if self.restore_point != Fact::Undeclared {
            let _ = writeln!(
                o,
                "- **Punto de restauración (se pierde lo escrito después):** {}",
                self.restore_point.text("")
            );
        }
        for e in &self.evidence {
            let _ = writeln!(o, "- **Evidencia:** {}", e.text(""));
        }
        let _ = writeln!(o, "- **Resultado:** {}\n", self.result_text());
        if self.drill {
            let _ = writeln!(o, "## Tiempos frente a estimaciones\n");
            let _ = writeln!(o, "| Paso | Duración | Estimación | |\n| ----- | ----- | ----- | ----- |");
            for s in &self.step_times {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    md(&s.step),
                    format_duration(Duration::from_secs(s.took.as_secs())),
                    s.estimate.as_deref().map(md).unwrap_or_else(|| "-".into()),
                    if s.over { "por encima" } else { "" }
                );
            }
            let _ = writeln!(o, "\n## Problemas encontrados");
            if self.problems.is_empty() {
                let _ = writeln!(o, "Ningún fallo ni escalación en el journal.");
            }
            for p in &self.problems {
                let _ = writeln!(o, "- {p}");
            }
            if !self.review.is_empty() {
                let _ = writeln!(o, "\n## Revisión del equipo");
                for (label, value) in &self.review {
                    let _ = writeln!(o, "- **{label}:** {}", md(value));
                }
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "## Prevención Futura\n{TO_FILL}\n");
        let _ = writeln!(o, "## Action Items\n- [ ] {TO_FILL}\n- [ ] {TO_FILL}\n");
        let _ = writeln!(o, "## Timeline\n| Hora (UTC) | Evento |\n| ----- | ----- |");
        for (t, e) in &self.timeline {
            let _ = writeln!(o, "| {t} | {e} |");
        }
        let _ = writeln!(
            o,
            "\n---\nGenerado del journal del run `{}` (último hash `{}`); `runbook audit verify {}` lo comprueba.",
            code(&self.run_id),
            code(self.last_hash.as_deref().unwrap_or("-")),
            code(&self.run_id)
        );
        o
    }

    /// The report as a standalone HTML page (the markdown's structure, escaped).
    pub fn html(&self) -> String {
        let md = self.markdown();
        let title = if self.drill { "Drill Review" } else { "Incident Report" };
        let mut o =
            String::from("<!DOCTYPE html>\n<html lang=\"es\">\n<head><meta charset=\"utf-8\"><title>");
        o.push_str(title);
        o.push_str(
            "</title>\n<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}</style></head>\n<body>\n",
        );
        let mut in_list = false;
        let mut in_table = false;
        let mut in_pre = false;
        for line in md.lines() {
            if line.starts_with("```") {
                if in_list {
                    o.push_str("</ul>\n");
                    in_list = false;
                }
                o.push_str(if in_pre { "</pre>\n" } else { "<pre>" });
                in_pre = !in_pre;
                continue;
            }
            if in_pre {
                let _ =
                    writeln!(o, "{}", line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"));
                continue;
            }
            let is_item = line.starts_with("- ");
            let is_row = line.starts_with('|');
            if in_list && !is_item {
                o.push_str("</ul>\n");
                in_list = false;
            }
            if in_table && !is_row {
                o.push_str("</table>\n");
                in_table = false;
            }
            if let Some(h) = line.strip_prefix("# ") {
                let _ = writeln!(o, "<h1>{}</h1>", inline(h));
            } else if let Some(h) = line.strip_prefix("## ") {
                let _ = writeln!(o, "<h2>{}</h2>", inline(h));
            } else if let Some(item) = line.strip_prefix("- ") {
                if !in_list {
                    o.push_str("<ul>\n");
                    in_list = true;
                }
                let item = item.replace("[ ] ", "&#9744; ");
                let _ = writeln!(o, "<li>{}</li>", inline(&item));
            } else if is_row {
                if line.contains("-----") {
                    continue;
                }
                let tag = if in_table { "td" } else { "th" };
                if !in_table {
                    o.push_str("<table>\n");
                    in_table = true;
                }
                let cells: Vec<String> = line
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| format!("<{tag}>{}</{tag}>", inline(c.trim().replace("\\|", "|").as_str())))
                    .collect();
                let _ = writeln!(o, "<tr>{}</tr>", cells.concat());
            } else if line == "---" {
                o.push_str("<hr>\n");
            } else if !line.is_empty() {
                let _ = writeln!(o, "<p>{}</p>", inline(line));
            }
        }
        if in_list {
            o.push_str("</ul>\n");
        }
        if in_table {
            o.push_str("</table>\n");
        }
        o.push_str("</body>\n</html>\n");
        o
    }
}

/// Escape HTML, then turn `**bold**`, `_italic_` and `` `code` `` into tags.
fn inline(s: &str) -> String {
    let escaped = s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let escaped = escaped.replace("&amp;#9744;", "&#9744;");
    let mut out = String::new();
    let mut rest = escaped.as_str();
    let marks = [("**", "strong"), ("`", "code"), ("_(", "em")];
    'outer: while !rest.is_empty() {
        // `\*`, `\|`, `\<` (as `\&lt;`): a value's character shown as written.
        if let Some(after) = rest.strip_prefix('\\')
            && let Some(c) = after.chars().next().filter(char::is_ascii_punctuation)
        {
            out.push(c);
            rest = &after[c.len_utf8()..];
            continue;
        }
        for (mark, tag) in marks {
            if let Some(body) = rest.strip_prefix(mark) {
                let close = if mark == "_(" { ")_" } else { mark };
                if let Some(end) = body.find(close) {
                    let inner = &body[..end];
                    if mark == "_(" {
                        let _ = write!(out, "<{tag}>({inner})</{tag}>");
                    } else {
                        let _ = write!(out, "<{tag}>{inner}</{tag}>");
                    }
                    rest = &body[end + close.len()..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::GENESIS;

    fn journal(events: Vec<(&str, RunEvent)>) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        events
            .into_iter()
            .enumerate()
            .map(|(i, (t, e))| {
                let r = Record::new("r1", i as u64 + 1, t, e, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn a_rollback_report_fills_what_the_journal_knows() {
        let records = journal(vec![
            (
                "2026-11-30T14:00:00.000Z",
                RunEvent::RunStarted {
                    runbook: "rollback-l3".into(),
                    file: String::new(),
                    files: vec![],
                    params: BTreeMap::from([("stable_tag".into(), Value::from("v1.0.0-stable"))]),
                    operator: "oncall".into(),
                    engine_version: "0.1.0".into(),
                    submitted_by: None,
                    log_digests: false,
                    report: ReportFacts::default(),
                },
            ),
            ("2026-11-30T14:01:00.000Z", RunEvent::StepStarted { step: "sync".into(), attempt: 1 }),
            (
                "2026-11-30T14:02:00.000Z",
                RunEvent::StepSucceeded {
                    step: "sync".into(),
                    attempt: 1,
                    outputs: BTreeMap::from([("remote_head".into(), Value::from("abc123"))]),
                },
            ),
            (
                "2026-11-30T14:03:00.000Z",
                RunEvent::ApprovalGranted {
                    step: "checklist_after".into(),
                    operator: "dba".into(),
                    reason: String::new(),
                    inputs: BTreeMap::from([("result".into(), Value::from("exito"))]),
                },
            ),
            (
                "2026-11-30T14:30:00.000Z",
                RunEvent::RunFinished { status: RunStatus::Succeeded, preconditions: vec![] },
            ),
        ]);
        let md = build(&records, None, false).markdown();
        assert!(md.starts_with("# Incident Report: 2026-11-30\n"), "{md}");
        assert!(md.contains("- **Duración:** 30m"), "{md}");
        assert!(md.contains("- **Tipo:** Nivel 3"), "{md}");
        // Nothing is declared in `[report]`: an output named like a version and a parameter
        // naming a tag are not observations of what is deployed.
        assert!(md.contains("- **Versión anterior:** no declarada"), "{md}");
        assert!(md.contains("- **Versión resultante:** no declarada"), "{md}");
        assert!(!md.contains("v1.0.0-stable"), "{md}");
        // The approval has no request in this journal: its input does not count.
        assert!(md.contains("- **Resultado:** Éxito (el run terminó bien)\n"), "{md}");
        assert!(md.contains("| 14:03:00 | Aprobado por dba: checklist_after |"), "{md}");
        assert!(md.contains(&format!("## Causa Raíz\n{TO_FILL}")), "{md}");
        let html = build(&records, None, true).html();
        assert!(html.contains("<h1>Drill Review: 2026-11-30</h1>"), "{html}");
        assert!(html.contains("<td>14:03:00</td><td>Aprobado por dba: checklist_after</td>"), "{html}");
    }

    #[test]
    fn a_failed_compensation_is_counted_and_error_text_is_escaped_in_html() {
        let started = RunEvent::RunStarted {
            runbook: "rollback-l3".into(),
            file: String::new(),
            files: vec![],
            params: BTreeMap::new(),
            operator: "oncall".into(),
            engine_version: "0.1.0".into(),
            submitted_by: None,
            log_digests: false,
            report: ReportFacts {
                version_after: Some("observe.version".into()),
                evidence: vec!["restore.compensate.evidence".into()],
                ..ReportFacts::default()
            },
        };
        let records = journal(vec![
            ("2026-11-30T14:00:00.000Z", started),
            ("2026-11-30T14:00:01.000Z", RunEvent::StepStarted { step: "restore".into(), attempt: 1 }),
            (
                "2026-11-30T14:00:02.000Z",
                RunEvent::StepSucceeded { step: "restore".into(), attempt: 1, outputs: BTreeMap::new() },
            ),
            ("2026-11-30T14:00:03.000Z", RunEvent::StepStarted { step: "health".into(), attempt: 1 }),
            (
                "2026-11-30T14:00:04.000Z",
                RunEvent::StepFailed {
                    step: "health".into(),
                    attempt: 1,
                    reason: "exited with code 1".into(),
                    output: Some("! <secret:TOKEN> refused & gone".into()),
                },
            ),
            (
                "2026-11-30T14:00:05.000Z",
                RunEvent::CompensationStarted { step: "restore".into(), attempt: 1 },
            ),
            (
                "2026-11-30T14:00:06.000Z",
                RunEvent::CompensationFailed {
                    step: "restore".into(),
                    reason: "exited with code 2".into(),
                    output: Some("! pg_restore: error".into()),
                },
            ),
            (
                "2026-11-30T14:00:07.000Z",
                RunEvent::RunFinished { status: RunStatus::NeedsOperator, preconditions: vec![] },
            ),
        ]);
        let report = build(&records, None, false);
        let md = report.markdown();
        assert!(md.contains("la compensación de restore FALLÓ: exited with code 2"), "{md}");
        assert!(
            md.contains(
                "- **Versión resultante:** desconocida: `observe.version` no la observó (no se completó)"
            ),
            "{md}"
        );
        assert!(
            md.contains("- **Evidencia:** desconocida: `restore.compensate.evidence` no la observó"),
            "{md}"
        );
        assert!(md.contains("- **Resultado:** Sin terminar: espera la decisión de un operador"), "{md}");
        let html = report.html();
        assert!(html.contains("<pre>! &lt;secret:TOKEN&gt; refused &amp; gone\n</pre>"), "{html}");
        assert!(!html.contains("<secret:"), "{html}");
    }
}
