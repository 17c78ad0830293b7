//! Reading runs back: `runs`, `show`, `logs`, `audit`, `audit verify`.
//!
//! Every view folds the journal with `runbook_core::journal::fold`, the same function a run
//! and `resume` use, so they cannot disagree.

use std::time::Duration;

use runbook_core::journal::{self, Record};
use runbook_store::{RunSummary, Store, StoreError};

use crate::args::{AuditFormat, ListFormat, ReportFormat};
use crate::exit;
use crate::output::outln;

/// Open the store and run `f` on it; `Err` is an exit code already explained on stderr.
fn with_store<T>(
    state: Option<String>,
    f: impl AsyncFnOnce(Store) -> Result<T, StoreError>,
) -> Result<T, u8> {
    let location = crate::state::location(state.as_deref());
    crate::state::block_on(async {
        let store = crate::state::open(&location, false).await?;
        f(store).await.map_err(|e| {
            eprintln!("error: {e}");
            match e {
                StoreError::NoSuchRun(_) => exit::INVALID,
                _ => exit::CANNOT_START,
            }
        })
    })
}

fn duration(run: &RunSummary) -> String {
    let (Some(end), Ok(start)) = (run.finished_at.as_deref(), humantime::parse_rfc3339_weak(&run.started_at))
    else {
        return "-".into();
    };
    match humantime::parse_rfc3339_weak(end).ok().and_then(|e| e.duration_since(start).ok()) {
        Some(d) if d < Duration::from_secs(1) => format!("{}ms", d.as_millis()),
        Some(d) => humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
        None => "-".into(),
    }
}

/// How often `--watch` and `--follow` look at the store again.
const POLL: Duration = Duration::from_millis(500);

pub fn runs(state: Option<String>, format: ListFormat, watch: bool) -> u8 {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let listed = with_store(state, async |s| {
        let mut last = None;
        loop {
            let mut runs = s.runs().await?;
            // Submitted runs that never started (yet): queued or claimed, or cancelled, or
            // refused by their worker (the plan no longer matched).
            for q in s.queue().await? {
                if !runs.iter().any(|r| r.run_id == q.run_id) {
                    let status = match q.state.as_str() {
                        "done" if q.note.as_deref().is_some_and(|n| n.starts_with("cancelled")) => {
                            "cancelled".into()
                        }
                        "done" => "refused".into(),
                        _ => q.state,
                    };
                    runs.push(RunSummary {
                        run_id: q.run_id,
                        runbook: q.runbook,
                        operator: q.submitted_by,
                        started_at: q.submitted_at,
                        status,
                        finished_at: None,
                        last_seq: 0,
                        last_hash: None,
                    });
                }
            }
            runs.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
            if runs.is_empty() && format == ListFormat::Text && !watch {
                eprintln!("no runs yet");
                return Ok(());
            }
            let text = render_runs(&runs, format);
            if last.as_ref() != Some(&text) {
                if watch && tty {
                    // Clear the screen and go home, as `watch` does.
                    crate::output::out!("\x1b[H\x1b[2J");
                }
                crate::output::out!("{text}");
                last = Some(text);
            }
            if !watch {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    });
    match listed {
        Ok(()) => exit::SUCCESS,
        Err(code) => code,
    }
}

fn render_runs(runs: &[RunSummary], format: ListFormat) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match format {
        ListFormat::Json => {
            let items: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "run_id": r.run_id, "runbook": r.runbook, "status": r.status, "operator": r.operator,
                        "started_at": r.started_at, "finished_at": r.finished_at, "events": r.last_seq,
                        "last_hash": r.last_hash,
                    })
                })
                .collect();
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&items).unwrap_or_default());
        }
        ListFormat::Text if runs.is_empty() => out.push_str("no runs yet\n"),
        ListFormat::Text => {
            let _ = writeln!(
                out,
                "{:<26} {:<20} {:<15} {:<22} {:<26} TOOK",
                "RUN", "RUNBOOK", "STATUS", "OPERATOR", "STARTED"
            );
            for r in runs {
                let _ = writeln!(
                    out,
                    "{:<26} {:<20} {:<15} {:<22} {:<26} {}",
                    r.run_id,
                    r.runbook,
                    r.status,
                    r.operator,
                    r.started_at,
                    duration(r)
                );
            }
        }
    }
    out
}

/// One journal record as a line of `audit` and `show --follow`.
fn record_line(r: &Record) -> String {
    let step = r.event.step().map(|s| format!(" {s}")).unwrap_or_default();
    let hash: String = r.hash.chars().take(12).collect();
    format!("{:>4} {} {}{step}  {hash}", r.seq, r.ts, r.event.kind())
}

pub fn show(run_id: &str, follow: bool, state: Option<String>) -> u8 {
    let (summary, records) = match with_store(state, async |s| {
        let mut records = s.records(run_id).await?;
        if follow {
            s.run(run_id).await?;
            let mut shown = 0;
            loop {
                for r in &records[shown..] {
                    outln!("{}", record_line(r));
                }
                shown = records.len();
                // Finished, unless resumed since (a failed run may be).
                if records.last().is_some_and(|r| matches!(r.event, journal::RunEvent::RunFinished { .. })) {
                    break;
                }
                tokio::time::sleep(POLL).await;
                let seen = records.last().map_or(0, |r| r.seq);
                records.extend(s.records_after(run_id, seen).await?);
            }
            outln!();
        }
        Ok((s.run(run_id).await?, records))
    }) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let folded = journal::fold(&records);
    outln!("run {} of {} by {}", summary.run_id, summary.runbook, summary.operator);
    outln!("  status    {}", summary.status);
    outln!("  started   {}", summary.started_at);
    if let Some(f) = &summary.finished_at {
        outln!("  finished  {f} (took {})", duration(&summary));
    }
    outln!(
        "  journal   {} records, last hash {}",
        folded.last_seq,
        folded.last_hash.as_deref().unwrap_or("-")
    );
    let doubt = folded.in_doubt();
    if !doubt.is_empty() {
        let what = if summary.status == "running" {
            "started, no outcome yet: running, or in doubt if the engine died"
        } else {
            "started, no outcome recorded"
        };
        outln!("  in doubt  {} ({what})", doubt.join(", "));
    }
    outln!();
    let width = folded.order.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(24);
    for step in &folded.order {
        let Some(s) = folded.steps.get(step) else { continue };
        let status = serde_json::to_value(&s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut line = format!("  {step:<width$} {status:<10} attempts {}", s.attempts);
        if !s.outputs.is_empty() {
            let outs: Vec<String> = s.outputs.iter().map(|(k, v)| format!("{k}={}", brief(v))).collect();
            line.push_str(&format!("  outputs {}", outs.join(" ")));
        }
        if let Some(r) = &s.reason {
            line.push_str(&format!("  ({r})"));
        }
        if s.compensation != journal::CompensationStatus::None {
            line.push_str(&format!("  compensation {:?}", s.compensation).to_lowercase());
        }
        if let (journal::StepStatus::AwaitingApproval, Some(a)) = (&s.status, &s.approval) {
            let from = if a.approvers.is_empty() { "anyone".to_string() } else { a.approvers.join(", ") };
            let by = if a.granted_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", a.granted_by.join(", "))
            };
            line.push_str(&format!(
                "  {} of {} approval(s){by}; from {from}: `runbook approve {run_id} {step}`",
                a.granted_by.len(),
                a.min_approvals
            ));
        }
        outln!("{line}");
    }
    exit::SUCCESS
}

/// Step output: what the store kept (copied there when the run stopped), and what this
/// host's run folder holds beyond it (a run still going, or an engine that died).
pub fn logs(run_id: &str, step: Option<&str>, state: Option<String>) -> u8 {
    let location = crate::state::location(state.as_deref());
    let kept = match with_store(state, async |s| {
        s.run(run_id).await?;
        s.logs(run_id).await
    }) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let mut logs: std::collections::BTreeMap<(String, i64), String> =
        kept.into_iter().map(|l| ((l.step, l.attempt), l.body)).collect();
    if let Ok(entries) = std::fs::read_dir(crate::state::run_dir(&location, run_id)) {
        for path in entries.flatten().map(|e| e.path()) {
            if let (Some(key), Ok(body)) = (crate::state::log_name(&path), std::fs::read_to_string(&path)) {
                logs.insert(key, body);
            }
        }
    }
    let mut shown = 0;
    for ((log_step, attempt), body) in &logs {
        if step.is_some_and(|s| s != log_step) {
            continue;
        }
        outln!("== {log_step} (attempt {attempt})");
        for line in body.lines() {
            match line.split_once(' ') {
                Some(("err", text)) => outln!("{log_step} ! {text}"),
                Some((_, text)) => outln!("{log_step} | {text}"),
                None => outln!("{log_step} | {line}"),
            }
        }
        shown += 1;
    }
    if shown == 0 {
        eprintln!("no output recorded{}", step.map(|s| format!(" for step `{s}`")).unwrap_or_default());
    }
    exit::SUCCESS
}

fn record_json(r: &Record) -> serde_json::Value {
    let attempt = match &r.event {
        journal::RunEvent::StepStarted { attempt, .. }
        | journal::RunEvent::AttemptFailed { attempt, .. }
        | journal::RunEvent::StepSucceeded { attempt, .. }
        | journal::RunEvent::StepFailed { attempt, .. }
        | journal::RunEvent::CompensationStarted { attempt, .. } => Some(*attempt),
        _ => None,
    };
    serde_json::json!({
        "run_id": r.run_id, "seq": r.seq, "ts": r.ts, "kind": r.event.kind(), "step": r.event.step(),
        "attempt": attempt, "event": r.event, "prev_hash": r.prev_hash, "hash": r.hash,
    })
}

pub fn audit(run_id: &str, format: AuditFormat, state: Option<String>) -> u8 {
    let records = match with_store(state, async |s| {
        s.run(run_id).await?;
        s.records(run_id).await
    }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    for r in &records {
        match format {
            AuditFormat::Jsonl => outln!("{}", record_json(r)),
            AuditFormat::Text => outln!("{}", record_line(r)),
        }
    }
    exit::SUCCESS
}

pub fn verify(run_id: Option<&str>, expect_hash: Option<&str>, state: Option<String>) -> u8 {
    let checked = with_store(state, async |s| {
        let ids: Vec<String> = match run_id {
            Some(id) => vec![s.run(id).await?.run_id],
            None => s.runs().await?.into_iter().map(|r| r.run_id).collect(),
        };
        let mut out = Vec::new();
        for id in ids {
            let summary = s.run(&id).await?;
            // A record that no longer parses was tampered with: that run is broken, the
            // others are still checked.
            let records = match s.records(&id).await {
                Ok(r) => Ok(r),
                Err(StoreError::Corrupt(e)) => Err(e),
                Err(e) => return Err(e),
            };
            out.push((id, records, summary));
        }
        Ok(out)
    });
    let runs = match checked {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut broken = 0;
    for (id, records, summary) in &runs {
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                broken += 1;
                outln!("BROKEN {id}: a record does not parse ({e})");
                continue;
            }
        };
        // The store's own record of the last hash is one more anchor; a kept copy is better.
        let anchor = expect_hash.or(summary.last_hash.as_deref());
        match journal::verify(records, anchor) {
            Ok(()) => outln!("ok {id}: {} records, last hash {}", records.len(), anchor.unwrap_or("-")),
            Err(e) => {
                broken += 1;
                outln!("BROKEN {id}: record {}: {}", e.seq, e.reason);
            }
        }
    }
    if broken > 0 {
        eprintln!("error: {broken} journal(s) fail verification");
        exit::NEEDS_OPERATOR
    } else {
        exit::SUCCESS
    }
}

/// An output value on one line: text as it is, other values as compact JSON, cut at 80
/// characters (an HTTP body or SQL rows can be long; `runbook audit` has them whole).
pub fn brief(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line = text.replace('\n', "\\n");
    if one_line.chars().count() > 80 {
        format!("{}…", one_line.chars().take(79).collect::<String>())
    } else {
        one_line
    }
}

pub fn report(run_id: &str, format: ReportFormat, drill: bool, state: Option<String>) -> u8 {
    let records = match with_store(state, async |s| {
        s.run(run_id).await?;
        s.records(run_id).await
    }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // Step titles and estimates come from the runbook, when its file is still as it ran.
    let runbook = records.first().and_then(|r| match &r.event {
        journal::RunEvent::RunStarted { file, files, .. } => {
            let text = crate::loader::read(file).ok()?;
            let same = files.first().is_some_and(|f| f.sha256 == runbook_core::plan::sha256_hex(&text));
            let checked = runbook_core::validate::check(
                runbook_core::Source::new(file.clone(), text),
                &crate::loader::FsLoader::for_runbook(file),
            );
            let valid = same && !checked.has_errors();
            checked.runbook.filter(|_| valid)
        }
        _ => None,
    });
    let report = runbook_core::report::build(&records, runbook.as_deref(), drill);
    match format {
        ReportFormat::Markdown => outln!("{}", report.markdown().trim_end()),
        ReportFormat::Html => outln!("{}", report.html().trim_end()),
    }
    exit::SUCCESS
}
