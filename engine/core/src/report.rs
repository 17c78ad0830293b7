//! The incident report (and the drill review) of a run, filled from its journal.
//!
//! The structure is the team guide's "Plantilla de Incident Report": summary, description,
//! root cause, action taken, the rollback executed, prevention, action items and a timeline.
//! What the journal knows is filled in (times, who decided what, versions, the result);
//! what only people know stays as a placeholder for them to write. A drill run (a runbook
//! named `drill`, or any run with `--drill`) adds the review the guide asks for: each
//! step's time against its estimate, and the problems met.
//!
//! Pure: it reads records and, when the caller has it, the validated runbook.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use crate::journal::{Decision, Record, RunEvent, RunStatus, fold};
use crate::model::{Runbook, format_duration};

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
    /// `result`, likewise (`exito`, `parcial`, `fallo`).
    pub result: Option<String>,
    /// Rollback level (1 to 3) from the runbook's name, if it is a rollback.
    pub level: Option<u8>,
    /// The version before: what the run found deployed.
    pub version_before: Option<String>,
    /// The version after: what the run deployed.
    pub version_after: Option<String>,
    /// Steps that succeeded, by title, in order of completion.
    pub actions: Vec<String>,
    /// Compensations that ran.
    pub compensated: Vec<String>,
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

/// Build the report of a run from its records, with the runbook when the caller has it.
pub fn build(records: &[Record], runbook: Option<&Runbook>, drill: bool) -> Report {
    let state = fold(records);
    let mut params: BTreeMap<String, Value> = BTreeMap::new();
    let mut name = String::new();
    let mut operator = String::new();
    for r in records {
        if let RunEvent::RunStarted { runbook, params: p, operator: o, .. } = &r.event {
            name = runbook.clone();
            operator = o.clone();
            params.extend(p.clone());
        }
    }
    // Facts people gave: parameters, then approval inputs (the later win).
    let mut facts = params.clone();
    for inputs in state.approval_inputs.values() {
        facts.extend(inputs.clone());
    }
    let fact = |k: &str| facts.get(k).map(text).filter(|s| !s.is_empty());
    // Titles render against the run's parameters and outputs, as the run showed them; a step
    // of an included runbook (its parameters are not journaled) or a title that cannot render
    // is named by its id alone.
    let mut step_outputs = serde_json::Map::new();
    for (id, s) in &state.steps {
        step_outputs.insert(id.clone(), serde_json::json!({ "outputs": s.outputs }));
    }
    let ctx = crate::template::Context::new(&serde_json::json!({
        "params": params,
        "steps": step_outputs,
        "secrets": {},
        "run": { "id": records.first().map(|r| r.run_id.clone()).unwrap_or_default(), "status": "", "started_at": "" },
        "runbook": { "name": name, "title": runbook.and_then(|rb| rb.title.clone()).unwrap_or_default() },
    }));
    let title_of = |id: &str| -> String {
        if id.contains('/') {
            return id.to_string();
        }
        runbook
            .and_then(|rb| rb.step(id))
            .and_then(|s| s.title.as_ref())
            .and_then(|t| crate::template::render(&t.text, crate::template::Mode::Plain, &ctx).ok())
            .map(|t| format!("{id}: {t}"))
            .unwrap_or_else(|| id.to_string())
    };
    let started_at = records.first().map(|r| r.ts.clone()).unwrap_or_default();
    let duration = match (records.first().and_then(|r| ts(&r.ts)), records.last().and_then(|r| ts(&r.ts))) {
        (Some(a), Some(b)) => b.duration_since(a).ok(),
        _ => None,
    };
    let level = name.strip_prefix("rollback-l").and_then(|l| l.parse::<u8>().ok());
    let mut outputs: BTreeMap<String, Value> = BTreeMap::new();
    for id in &state.completed {
        if let Some(s) = state.steps.get(id) {
            for (k, v) in &s.outputs {
                outputs.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    // What was deployed before: the remote branch's commit the run found (a branch name such
    // as `previous_ref` says nothing).
    let version_before =
        ["remote_head", "previous_head", "commit"].iter().find_map(|k| outputs.get(*k).map(text));
    let version_after = ["stable_tag", "previous_tag", "version"]
        .iter()
        .find_map(|k| params.get(*k).map(text))
        .filter(|s| !s.is_empty());

    let mut timeline = Vec::new();
    let mut problems = Vec::new();
    let mut compensated = Vec::new();
    let mut first_start: BTreeMap<String, String> = BTreeMap::new();
    let mut step_times = Vec::new();
    for r in records {
        let t = hms(&r.ts);
        let row = match &r.event {
            RunEvent::RunStarted { operator, .. } => Some(format!("Inicio de `{name}` por {operator}")),
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
                problems.push(format!("`{step}`, intento {attempt}: {reason}"));
                None
            }
            RunEvent::StepFailed { step, reason, .. } => {
                problems.push(format!("`{step}` falló: {reason}"));
                Some(format!("Fallo: {} ({reason})", title_of(step)))
            }
            RunEvent::StepSkipped { .. } => None,
            RunEvent::CompensationStarted { step, attempt } => {
                (*attempt == 1).then(|| format!("Compensación: {}", title_of(step)))
            }
            RunEvent::CompensationSucceeded { step } => {
                compensated.push(title_of(step));
                None
            }
            RunEvent::CompensationFailed { step, reason } => {
                problems.push(format!("la compensación de `{step}` falló: {reason}"));
                Some(format!("Compensación fallida: {} ({reason})", title_of(step)))
            }
            RunEvent::ApprovalRequested { step, .. } => {
                Some(format!("Aprobación solicitada: {}", title_of(step)))
            }
            RunEvent::ApprovalGranted { step, operator, reason, .. } => Some(format!(
                "Aprobado por {operator}: {}{}",
                title_of(step),
                if reason.is_empty() { String::new() } else { format!(" ({reason})") }
            )),
            RunEvent::ApprovalRejected { step, operator, reason } => {
                problems.push(format!("{operator} rechazó `{step}`: {reason}"));
                Some(format!("Rechazado por {operator}: {} ({reason})", title_of(step)))
            }
            RunEvent::RunSuspended { waiting } => {
                Some(format!("En espera de aprobación: {}", waiting.join(", ")))
            }
            RunEvent::RunResumed { operator, .. } => Some(format!("Reanudado por {operator}")),
            RunEvent::RunInterrupted { reason } => {
                problems.push(format!("run interrumpido: {reason}"));
                Some(format!("Interrumpido: {reason}"))
            }
            RunEvent::OperatorDecision { step, decision, operator, reason } => {
                let what = match decision {
                    Decision::Rerun => "repetir",
                    Decision::Skip => "dar por hecho",
                };
                Some(format!("{operator} decide {what} `{step}`: {reason}"))
            }
            RunEvent::CompensationDecision { step, decision, operator, reason } => {
                let what = match decision {
                    Decision::Rerun => "repetir",
                    Decision::Skip => "dar por hecha",
                };
                Some(format!("{operator} decide {what} la compensación de `{step}`: {reason}"))
            }
            RunEvent::EscalationFired { escalation, delivered, .. } => {
                problems.push(format!("escalación `{escalation}` disparada"));
                Some(format!(
                    "Escalación `{escalation}`{}",
                    if *delivered { " notificada" } else { " (notificación fallida)" }
                ))
            }
            RunEvent::RunFinished { status } => Some(format!("Fin del run: {}", status.as_str())),
            // Where the step's output is kept: not an event of the run's story.
            RunEvent::LogKept { .. } => None,
        };
        if let Some(row) = row {
            timeline.push((t, row));
        }
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
        impact: fact("impact"),
        severity: fact("severity"),
        incident: fact("incident"),
        root_cause: fact("root_cause"),
        result: fact("result"),
        level,
        version_before,
        version_after,
        actions,
        compensated,
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
        .filter_map(|(label, k)| fact(k).map(|v| (label.to_string(), v)))
        .collect(),
        last_hash: state.last_hash,
    }
}

fn or_fill(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| TO_FILL.to_string())
}

impl Report {
    fn result_text(&self) -> String {
        match (self.result.as_deref(), self.status) {
            (Some("exito"), _) => "Éxito".into(),
            (Some("parcial"), _) => "Parcial".into(),
            (Some("fallo"), _) => "Fallo".into(),
            (Some(other), _) => other.into(),
            (None, Some(RunStatus::Succeeded)) => "Éxito (el run terminó bien)".into(),
            (None, Some(RunStatus::Failed)) => "Fallo (el run falló; compensaciones hechas)".into(),
            (None, Some(s)) => format!("Sin terminar ({})", s.as_str()),
            (None, None) => TO_FILL.into(),
        }
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
            self.severity.clone().unwrap_or_else(|| format!("P1 / P2 / P3 / P4 {TO_FILL}"))
        );
        let _ =
            writeln!(o, "- **Run:** `{}` de `{}`, iniciado por {}", self.run_id, self.runbook, self.operator);
        if let Some(i) = &self.incident {
            let _ = writeln!(o, "- **Incidente:** {i}");
        }
        let _ = writeln!(o, "\n## Descripción");
        let _ = writeln!(
            o,
            "{}\n",
            self.title.clone().map(|t| format!("{t}. {TO_FILL}")).unwrap_or_else(|| TO_FILL.into())
        );
        let _ = writeln!(o, "## Causa Raíz\n{}\n", or_fill(&self.root_cause));
        let _ = writeln!(o, "## Acción Tomada");
        if self.actions.is_empty() {
            let _ = writeln!(o, "Ningún paso se completó.");
        }
        for a in &self.actions {
            let _ = writeln!(o, "- {a}");
        }
        for c in &self.compensated {
            let _ = writeln!(o, "- Deshecho (compensación): {c}");
        }
        let _ = writeln!(o, "\n## Rollback Ejecutado");
        let kind = match self.level {
            Some(l) => format!("Nivel {l}"),
            None => format!("{} (no es un rollback)", self.runbook),
        };
        let _ = writeln!(o, "- **Tipo:** {kind}");
        let _ = writeln!(o, "- **Versión anterior:** {}", or_fill(&self.version_before));
        let _ = writeln!(o, "- **Versión resultante:** {}", or_fill(&self.version_after));
        let _ = writeln!(o, "- **Resultado:** {}\n", self.result_text());
        if self.drill {
            let _ = writeln!(o, "## Tiempos frente a estimaciones\n");
            let _ = writeln!(o, "| Paso | Duración | Estimación | |\n| ----- | ----- | ----- | ----- |");
            for s in &self.step_times {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    s.step,
                    format_duration(Duration::from_secs(s.took.as_secs())),
                    s.estimate.clone().unwrap_or_else(|| "-".into()),
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
                    let _ = writeln!(o, "- **{label}:** {value}");
                }
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "## Prevención Futura\n{TO_FILL}\n");
        let _ = writeln!(o, "## Action Items\n- [ ] {TO_FILL}\n- [ ] {TO_FILL}\n");
        let _ = writeln!(o, "## Timeline\n| Hora (UTC) | Evento |\n| ----- | ----- |");
        for (t, e) in &self.timeline {
            let _ = writeln!(o, "| {t} | {} |", e.replace('|', "\\|"));
        }
        let _ = writeln!(
            o,
            "\n---\nGenerado del journal del run `{}` (último hash `{}`); `runbook audit verify {}` lo comprueba.",
            self.run_id,
            self.last_hash.as_deref().unwrap_or("-"),
            self.run_id
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
        for line in md.lines() {
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
            ("2026-11-30T14:30:00.000Z", RunEvent::RunFinished { status: RunStatus::Succeeded }),
        ]);
        let md = build(&records, None, false).markdown();
        assert!(md.starts_with("# Incident Report: 2026-11-30\n"), "{md}");
        assert!(md.contains("- **Duración:** 30m"), "{md}");
        assert!(md.contains("- **Tipo:** Nivel 3"), "{md}");
        assert!(md.contains("- **Versión anterior:** abc123"), "{md}");
        assert!(md.contains("- **Versión resultante:** v1.0.0-stable"), "{md}");
        assert!(md.contains("- **Resultado:** Éxito"), "{md}");
        assert!(md.contains("| 14:03:00 | Aprobado por dba: checklist_after |"), "{md}");
        assert!(md.contains(&format!("## Causa Raíz\n{TO_FILL}")), "{md}");
        let html = build(&records, None, true).html();
        assert!(html.contains("<h1>Drill Review: 2026-11-30</h1>"), "{html}");
        assert!(html.contains("<td>14:03:00</td><td>Aprobado por dba: checklist_after</td>"), "{html}");
    }
}
