//! Reading runs back: `runs`, `show`, `logs`, `audit`, `audit verify`.
//!
//! Every view folds the journal with `runbook_core::journal::fold`, the same function a run
//! and `resume` use, so they cannot disagree.

use std::time::Duration;

use runbook_core::journal::{self, Record};
use runbook_store::{RunSummary, Store, StoreError};

use crate::args::{AuditFormat, ListFormat, ReportFormat};
use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::outln;

/// Open the (existing) store and run `f` on it.
fn with_store<T>(
    state: Option<String>,
    f: impl AsyncFnOnce(Store) -> Result<T, StoreError>,
) -> Result<T, CliError> {
    let location = crate::state::location(state.as_deref());
    crate::runtime::block_on(async {
        let store = crate::state::open(&location, false).await?;
        Ok(f(store).await?)
    })
}

/// The SQLite file `state` names when it does not exist yet: a new store, which holds no
/// runs. Listing them is not an error (`runs` lists nothing, `audit verify` verifies
/// nothing) and creates nothing; a run asked of it by id stays the error "no state store at
/// PATH" (exit 5), which says where runs were looked for. A PostgreSQL store always exists
/// (or is unreachable: an error).
fn missing_store(state: Option<&str>) -> Option<String> {
    match crate::state::location(state) {
        runbook_store::Location::Sqlite(path) if !path.exists() => Some(path.display().to_string()),
        runbook_store::Location::Sqlite(_) | runbook_store::Location::Postgres(_) => None,
    }
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

/// `runbook runs`: the runs `filter` selects (every run by default), newest first.
pub fn runs(
    state: Option<String>,
    format: ListFormat,
    watch: bool,
    filter: &runbook_store::RunFilter,
) -> CliResult {
    let none = if *filter == runbook_store::RunFilter::default() { "no runs yet" } else { "no runs match" };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    if !watch && missing_store(state.as_deref()).is_some() {
        match format {
            ListFormat::Text => crate::output::errln!("no runs yet"),
            ListFormat::Json => crate::output::out!("{}", render_runs(&[], format, none)),
        }
        return Ok(Exit::Success);
    }
    if watch && missing_store(state.as_deref()).is_some() {
        // Watched until the first run creates it: nothing to show, and nothing created.
        crate::output::errln!("no runs yet");
        while missing_store(state.as_deref()).is_some() {
            std::thread::sleep(POLL);
        }
    }
    let mut mismatched = false;
    let listed = with_store(state, async |s| {
        let mut last = None;
        loop {
            // Each run as its journal tells it, then the submitted runs that never started
            // (the one list, shared with the console).
            let runbook_store::RunList { mut runs, flagged } = s.run_list_where(filter).await?;
            // A run whose engine died with no record (issue 14, point 3): shown, not written;
            // JSON keeps the journal's status (a tool compares it with the status names).
            for r in runs.iter_mut().filter(|r| r.status == "running" && format == ListFormat::Text) {
                if crate::state::engine_gone(&s, &r.run_id).await {
                    r.status = crate::state::ENGINE_GONE.into();
                }
            }
            if runs.is_empty() && format == ListFormat::Text && !watch {
                crate::output::errln!("{none}");
                return Ok(());
            }
            let text = render_runs(&runs, format, none);
            if last.as_ref() != Some(&text) {
                for f in &flagged {
                    crate::output::errln!("warning: run {f}");
                }
                if !flagged.is_empty() {
                    crate::output::errln!(
                        "  help: the rows above disagree with their journals; `runbook audit verify` names what was changed"
                    );
                    mismatched = true;
                }
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
    listed?;
    // The warnings above said what disagrees.
    Ok(if mismatched { Exit::NeedsOperator } else { Exit::Success })
}

/// A name or text from the store as a terminal may show it: one line, control characters
/// (escape sequences, carriage returns) and invisible format characters (zero-width, bidi)
/// escaped, so that a value can neither rewrite what is on screen nor hide inside a secret
/// (`runbook_core::shown`).
fn visible(text: &str) -> String {
    runbook_core::shown::one_line(text)
}

/// The error that says what in the store does not fit the chain.
fn flag(run_id: &str, findings: &[runbook_core::audit::Finding]) -> CliError {
    CliError::ChainMismatch {
        run_id: run_id.to_string(),
        findings: findings.iter().map(ToString::to_string).collect(),
    }
}

/// The list as text or JSON; `none` is what an empty table says.
fn render_runs(runs: &[RunSummary], format: ListFormat, none: &str) -> String {
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
        ListFormat::Text if runs.is_empty() => {
            let _ = writeln!(out, "{none}");
        }
        ListFormat::Text => {
            let _ = writeln!(
                out,
                "{:<26} {:<20} {:<15} {:<22} {:<26} TOOK",
                "RUN", "RUNBOOK", "STATUS", "OPERATOR", "STARTED"
            );
            for r in runs {
                let _ = writeln!(
                    out,
                    "{:<26} {:<20} {} {:<22} {:<26} {}",
                    r.run_id,
                    visible(&r.runbook),
                    crate::output::status_cell(&r.status, 15),
                    visible(&r.operator),
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

pub fn show(run_id: &str, follow: bool, state: Option<String>) -> CliResult {
    let state_arg = crate::state::state_arg(&crate::state::location(state.as_deref()));
    let history = with_store(state, async |s| {
        if follow {
            s.run(run_id).await?;
            let mut records = s.records(run_id).await?;
            let mut shown = 0;
            loop {
                for r in &records[shown..] {
                    outln!("{}", record_line(r));
                }
                shown = records.len();
                // Finished, unless resumed since (a failed run may be).
                let ended = runbook_core::audit::summary(&records).is_some_and(|s| s.finished_at.is_some());
                if ended {
                    break;
                }
                tokio::time::sleep(POLL).await;
                let seen = records.last().map_or(0, |r| r.seq);
                records.extend(s.records_after(run_id, seen).await?);
            }
            outln!();
        }
        // What is presented is read in one snapshot and checked against the chain.
        let (mut histories, _) = s.histories(Some(run_id)).await?;
        let history = histories.pop().ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))?;
        Ok((history, crate::state::engine_gone(&s, run_id).await))
    })?;
    let (history, engine_gone) = history;
    let findings = history.findings(None);
    let records = history.records.clone().unwrap_or_default();
    // What does not fit the chain is not presented: nothing on stdout, the findings on
    // stderr (`runbook audit` prints the records themselves).
    let summary = match runbook_core::audit::summary(&records) {
        Some(d) if findings.is_empty() => RunSummary::from_journal(history.row.run_id.clone(), d),
        _ => return Err(flag(run_id, &findings)),
    };
    let folded = journal::fold(&records);
    let mut summary = summary;
    if summary.status == "running" && engine_gone {
        summary.status = crate::state::ENGINE_GONE.into();
    }
    outln!("run {} of {} by {}", summary.run_id, visible(&summary.runbook), visible(&summary.operator));
    outln!("  status    {}", crate::output::status_cell(&summary.status, 0));
    outln!("  started   {}", summary.started_at);
    if let Some(f) = &summary.finished_at {
        outln!("  finished  {f} (took {})", duration(&summary));
    }
    outln!(
        "  journal   {} records, last hash {}",
        folded.last_seq,
        folded.last_hash.as_deref().unwrap_or("-")
    );
    // What stopped a run before any step: its preconditions, with what they printed (each
    // journaled as `precondition_failed`; older journals only in `run_finished`).
    let runbook_checks = records
        .iter()
        .filter(|r| matches!(&r.event, journal::RunEvent::PreconditionFailed { step: None, .. }))
        .count();
    if runbook_checks > 0 && folded.has_finished().is_some() && folded.steps.is_empty() {
        outln!(
            "  why       it did not start: {runbook_checks} of the runbook's preconditions failed; no step ran"
        );
    }
    for r in &records {
        if let journal::RunEvent::RunFinished { preconditions, .. } = &r.event {
            for p in preconditions {
                let mut lines = p.lines();
                outln!("  failed    {}", visible(lines.next().unwrap_or_default()));
                for l in lines {
                    outln!("      {}", visible(l));
                }
            }
        }
    }
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
        let status = s.status.as_str();
        let mut line =
            format!("  {step:<width$} {} attempts {}", crate::output::status_cell(status, 10), s.attempts);
        if !s.outputs.is_empty() {
            let outs: Vec<String> = s.outputs.iter().map(|(k, v)| format!("{k}={}", brief(v))).collect();
            line.push_str(&format!("  outputs {}", outs.join(" ")));
        }
        if let Some(r) = &s.reason {
            line.push_str(&format!("  ({})", visible(r)));
        }
        if s.compensation != journal::CompensationStatus::None {
            use crate::output::Tone;
            let (word, tone) = match s.compensation {
                journal::CompensationStatus::Started => ("started", Tone::Undo),
                journal::CompensationStatus::Succeeded => ("succeeded", Tone::Undo),
                journal::CompensationStatus::Failed => ("failed", Tone::Failed),
                journal::CompensationStatus::Skipped => ("skipped", Tone::Undo),
                journal::CompensationStatus::None => ("none", Tone::Undo),
            };
            line.push_str(&format!("  compensation {}", crate::output::paint(word, tone)));
        }
        // A finished run waits for no decision: no `approve` command to offer.
        if let (journal::StepStatus::AwaitingApproval, Some(a), None) =
            (&s.status, &s.approval, folded.has_finished())
        {
            let from =
                if a.approvers.is_empty() { "anyone".to_string() } else { visible(&a.approvers.join(", ")) };
            let by = if a.granted_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", visible(&a.granted_by.join(", ")))
            };
            // The words the run's notice printed (journaled with the request); a journal from
            // before them has only the types.
            let inputs: Vec<(String, String)> = a
                .takes
                .as_ref()
                .unwrap_or(&a.inputs)
                .iter()
                .map(|(name, ty)| (visible(name), visible(ty)))
                .collect();
            let command = runbook_core::hint::approve_command(run_id, step, &inputs, state_arg.as_deref());
            line.push_str(&format!(
                "  {} of {} approval(s){by}; from {from}: `{command}`",
                a.granted_by.len(),
                a.min_approvals
            ));
        }
        outln!("{line}");
        // The error text the journal keeps for its last failure.
        if let Some(out) = &s.output {
            for l in out.lines() {
                outln!("      {}", visible(l));
            }
        }
    }
    show_confirmations(&records);
    if findings.is_empty() { Ok(Exit::Success) } else { Err(flag(run_id, &findings)) }
}

/// The `confirm` questions of a run: when each was asked, who answered it (or that `--yes`
/// did), and the answer; a question without an answer says so (`resume` asks it again).
fn show_confirmations(records: &[Record]) {
    let mut lines = Vec::new();
    let mut open: Vec<(String, String, String)> = Vec::new();
    for r in records {
        match &r.event {
            journal::RunEvent::ConfirmationRequested { step, question } => {
                open.retain(|(s, _, _)| s != step);
                open.push((step.clone(), question.clone(), r.ts.clone()));
            }
            journal::RunEvent::ConfirmationGiven { step, question, operator, confirmed, by_yes } => {
                open.retain(|(s, _, _)| s != step);
                let answer = if *confirmed { "yes" } else { "no" };
                let who = if *by_yes {
                    format!("--yes, passed by {}", visible(operator))
                } else {
                    visible(operator)
                };
                lines.push(format!("  {} {step}: {} -> {answer} ({who})", r.ts, visible(question)));
            }
            _ => {}
        }
    }
    for (step, question, ts) in open {
        lines.push(format!("  {ts} {step}: {} -> no answer (asked again on resume)", visible(&question)));
    }
    if !lines.is_empty() {
        outln!();
        outln!("confirmations");
        for l in lines {
            outln!("{l}");
        }
    }
}

/// Step output: what the store kept (copied there when the run stopped, each log vouched for
/// by the digest in a `log_kept` record), and what this host's run folder holds beyond it (a
/// run still going, an engine that died, or the whole of a log the store keeps cut). A kept
/// log that does not match its digest is not shown.
pub fn logs(run_id: &str, step: Option<&str>, state: Option<String>) -> CliResult {
    let location = crate::state::location(state.as_deref());
    let history = with_store(state, async |s| {
        let (mut histories, _) = s.histories(Some(run_id)).await?;
        histories.pop().ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))
    })?;
    let findings = history.findings(None);
    let records = history.records.clone().unwrap_or_default();
    let verified = runbook_core::audit::Verified::of_chain(&records, &findings);
    let mut logs = runbook_core::audit::vouched_logs(&records, history.logs, verified);
    // A copy the journal vouches for wins over a local file (a plain file of this host, which
    // a step or anyone with access to the folder can change); a local file is shown only
    // for attempts the store has no vouched copy of (a run still going, an engine that
    // died), labelled as such.
    if let Ok(entries) = std::fs::read_dir(crate::state::run_dir(&location, run_id)) {
        for path in entries.flatten().map(|e| e.path()) {
            let (Some(key), Ok(bytes)) =
                (crate::state::log_name(&path), runbook_store::read_outside_store(&path))
            else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            match logs.get(&key) {
                Some((_, kept)) if *kept != text => crate::output::errln!(
                    "note: the local file {} differs from the copy the journal vouches for (shown); it is not vouched for",
                    path.display()
                ),
                Some(_) => {}
                None => {
                    let label = format!("local file {}, not vouched for by the journal", path.display());
                    logs.insert(key, (label, text));
                }
            }
        }
    }
    let mut shown = 0;
    for ((log_step, attempt), (label, body)) in &logs {
        if step.is_some_and(|s| s != log_step) {
            continue;
        }
        outln!("== {log_step} (attempt {attempt}) {}", visible(label));
        for line in body.lines() {
            match line.split_once(' ') {
                Some(("err", text)) => outln!("{log_step} ! {}", visible(text)),
                Some((_, text)) => outln!("{log_step} | {}", visible(text)),
                None => outln!("{log_step} | {}", visible(line)),
            }
        }
        shown += 1;
    }
    // What failed preconditions printed: journaled (redacted) with each `precondition_failed`,
    // as no log file keeps a check's output.
    for r in &records {
        let journal::RunEvent::PreconditionFailed { step: owner, precondition, output, .. } = &r.event else {
            continue;
        };
        if step.is_some_and(|s| Some(s) != owner.as_deref()) {
            continue;
        }
        let of = owner.as_deref().map_or("runbook".to_string(), |s| format!("step `{s}`"));
        let label = match owner {
            Some(s) => format!("{s}: precondition {precondition}"),
            None => format!("precondition {precondition}"),
        };
        outln!("== precondition `{precondition}` of {} (failed; journal record {})", visible(&of), r.seq);
        match output {
            Some(out) => {
                for line in out.lines() {
                    outln!("{} | {}", visible(&label), visible(line));
                }
            }
            None => outln!("{} (printed nothing)", visible(&label)),
        }
        shown += 1;
    }
    if shown == 0 {
        // A step the journal never saw start is not "a step without output" (red team
        // adv13b M5): a misspelt name gets an error.
        if let Some(step) = step
            && !runbook_core::journal::fold(&records).steps.contains_key(step)
        {
            return Err(CliError::Invalid(
                Message::new(format!("run {run_id} has no step `{step}` that started; nothing to show"))
                    .help(format!("`runbook show {run_id}` lists the run's steps")),
            ));
        }
        crate::output::errln!(
            "no output recorded{}",
            step.map(|s| format!(" for step `{s}`")).unwrap_or_default()
        );
    }
    if findings.is_empty() { Ok(Exit::Success) } else { Err(flag(run_id, &findings)) }
}

fn record_json(r: &Record) -> serde_json::Value {
    let attempt = match &r.event {
        journal::RunEvent::StepStarted { attempt, .. }
        | journal::RunEvent::AttemptFailed { attempt, .. }
        | journal::RunEvent::StepSucceeded { attempt, .. }
        | journal::RunEvent::StepFailed { attempt, .. }
        | journal::RunEvent::CompensationStarted { attempt, .. }
        | journal::RunEvent::LogKept { attempt, .. } => Some(*attempt),
        _ => None,
    };
    serde_json::json!({
        "run_id": r.run_id, "seq": r.seq, "ts": r.ts, "kind": r.event.kind(), "step": r.event.step(),
        "attempt": attempt, "event": r.event, "prev_hash": r.prev_hash, "hash": r.hash, "db_role": r.db_role,
    })
}

pub fn audit(run_id: &str, format: AuditFormat, state: Option<String>) -> CliResult {
    let records = with_store(state, async |s| {
        s.run(run_id).await?;
        s.records(run_id).await
    })?;
    for r in &records {
        match format {
            AuditFormat::Jsonl => outln!("{}", record_json(r)),
            AuditFormat::Text => outln!("{}", record_line(r)),
        }
    }
    Ok(Exit::Success)
}

pub fn verify(run_id: Option<&str>, expect_hash: Option<&str>, state: Option<String>) -> CliResult {
    if run_id.is_none()
        && let Some(path) = missing_store(state.as_deref())
    {
        crate::output::errln!("no runs yet at `{path}`: nothing to verify");
        return Ok(Exit::Success);
    }
    // One snapshot: a run being written meanwhile is seen as of one moment, so its row, its
    // records and its logs agree (no false alarm on a live run).
    let (histories, orphans) = with_store(state.clone(), async |s| s.histories(run_id).await)?;
    let mut broken = 0;
    let mut guards_broken = 0;
    for h in &histories {
        let id = &h.row.run_id;
        let findings = h.findings(expect_hash);
        if findings.is_empty() {
            let records = h.records.as_deref().unwrap_or_default();
            let last = records.last().map_or("-", |r| r.hash.as_str());
            outln!("ok {id}: {} records, last hash {last}", records.len());
            if !h.logs.is_empty() && runbook_core::audit::logs_predate_digests(records) {
                outln!(
                    "note {id}: its {} kept log(s) have no `log_kept` record (kept before the journal recorded log digests): the chain does not vouch for them",
                    h.logs.len()
                );
            }
        } else {
            broken += 1;
            for f in findings {
                outln!("BROKEN {id}: {f}");
            }
        }
    }
    for o in &orphans {
        broken += 1;
        outln!("BROKEN {o}");
    }
    // Every schedule's journal too, with the same verifier (when no one run was asked).
    if run_id.is_none() {
        // The guards first: with them dropped, a journal may have been deleted whole, which
        // no chain shows (red team adv24).
        let guards = with_store(state.clone(), async |s| s.guard_findings().await)?;
        for g in &guards {
            outln!("BROKEN store: {g}");
        }
        guards_broken = guards.len();
        let journals = with_store(state, async |s| s.schedule_journals(None).await)?;
        for j in &journals {
            let name = runbook_core::shown::one_line(&j.schedule);
            let findings = j.findings();
            if findings.is_empty() {
                let records = j.records.as_deref().unwrap_or_default();
                let last = records.last().map_or("-", |r| r.hash.as_str());
                outln!("ok schedule {name}: {} records, last hash {last}", records.len());
            } else {
                broken += 1;
                for f in findings {
                    outln!("BROKEN schedule {name}: {f}");
                }
            }
        }
    }
    if broken > 0 || guards_broken > 0 {
        Err(CliError::JournalsBroken { count: broken, guards: guards_broken })
    } else {
        Ok(Exit::Success)
    }
}

/// `runbook audit verify --schedule NAME [--expect-hash HASH]`: one schedule's journal,
/// cross-checked with its rows, and the hash kept elsewhere (red team adv18a S2): a schedule
/// journal keeps growing, so the kept hash must still name a record of its chain; a journal
/// cut below it, or deleted whole, no longer holds it.
pub fn verify_schedule(name: &str, expect_hash: Option<&str>, state: Option<String>) -> CliResult {
    let shown = runbook_core::shown::one_line(name);
    let journals = with_store(state, async |s| s.schedule_journals(Some(name)).await)?;
    let Some(j) = journals.first() else {
        if expect_hash.is_some() {
            outln!(
                "BROKEN schedule {shown}: no journal in this store, and you kept a hash of one (it was deleted)"
            );
            return Err(CliError::JournalsBroken { count: 1, guards: 0 });
        }
        return Err(CliError::Invalid(
            Message::new(format!("schedule `{shown}` has no journal in this store"))
                .help("a schedule's journal starts when a worker (`runbook worker --schedules FILE`) first watches it"),
        ));
    };
    let mut findings = j.findings();
    let records = j.records.as_deref().unwrap_or_default();
    if let Some(kept) = expect_hash.map(str::trim)
        && findings.is_empty()
        && !records.iter().any(|r| r.hash == kept)
    {
        findings.push("the hash you kept is not in its journal (records were cut or replaced)".to_string());
    }
    if findings.is_empty() {
        let last = records.last().map_or("-", |r| r.hash.as_str());
        outln!("ok schedule {shown}: {} records, last hash {last}", records.len());
        return Ok(Exit::Success);
    }
    for f in &findings {
        outln!("BROKEN schedule {shown}: {f}");
    }
    Err(CliError::JournalsBroken { count: 1, guards: 0 })
}

/// An output value on one line: text as it is, other values as compact JSON, cut at 80
/// characters (an HTTP body or SQL rows can be long; `runbook audit` has them whole).
pub fn brief(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line = visible(&text);
    if one_line.chars().count() > 80 {
        format!("{}…", one_line.chars().take(79).collect::<String>())
    } else {
        one_line
    }
}

pub fn report(run_id: &str, format: ReportFormat, drill: bool, state: Option<String>) -> CliResult {
    // The report is built from records read in one snapshot and checked against the chain.
    let history = with_store(state, async |s| {
        let (mut histories, _) = s.histories(Some(run_id)).await?;
        histories.pop().ok_or_else(|| StoreError::NoSuchRun(run_id.to_string()))
    })?;
    let findings = history.findings(None);
    if !findings.is_empty() {
        // A report of what does not fit the chain is not written at all.
        return Err(flag(run_id, &findings));
    }
    let records = history.records.unwrap_or_default();
    // Step titles and estimates come from the runbook, when its file is still as it ran.
    let runbook = records.first().and_then(|r| match &r.event {
        journal::RunEvent::RunStarted { file, files, .. } => {
            crate::as_started::load_as_started(file, files).ok().map(|(runbook, _)| runbook)
        }
        _ => None,
    });
    let report = runbook_core::report::build(&records, runbook.as_deref(), drill);
    match format {
        ReportFormat::Markdown => outln!("{}", report.markdown().trim_end()),
        ReportFormat::Html => outln!("{}", report.html().trim_end()),
    }
    if findings.is_empty() { Ok(Exit::Success) } else { Err(flag(run_id, &findings)) }
}

/// One record of a schedule's journal on one line: seq, time, what was decided, by whom.
fn schedule_line(r: &runbook_core::schedule_journal::ScheduleRecord) -> String {
    let hash: String = r.hash.chars().take(12).collect();
    let line = format!("{:>4} {} {} (by {})", r.seq, r.ts, r.event.summary(), r.event.worker());
    format!("{}  {hash}", runbook_core::shown::one_line(&line))
}

/// `runbook audit schedule NAME`: a schedule's journal, as `runbook audit RUN_ID` prints a
/// run's (text, or one JSON object per line with its chain).
pub fn audit_schedule(name: &str, format: AuditFormat, state: Option<String>) -> CliResult {
    let records = with_store(state, async |s| s.schedule_records(name).await)?;
    if records.is_empty() {
        return Err(CliError::Invalid(
            Message::new(format!("schedule `{}` has no journal in this store", runbook_core::shown::one_line(name)))
                .help("a schedule's journal starts when a worker (`runbook worker --schedules FILE`) first watches it"),
        ));
    }
    for r in &records {
        match format {
            AuditFormat::Jsonl => outln!(
                "{}",
                serde_json::json!({
                    "schedule": r.schedule, "seq": r.seq, "ts": r.ts, "kind": r.event.kind(),
                    "due": r.event.due(), "event": r.event, "prev_hash": r.prev_hash, "hash": r.hash,
                    "db_role": r.db_role,
                })
            ),
            AuditFormat::Text => outln!("{}", schedule_line(r)),
        }
    }
    if let (AuditFormat::Text, Some(last)) = (format, records.last()) {
        // The anchor, kept elsewhere, detects a cut journal (red team adv18a S2).
        crate::output::errln!(
            "last hash {}\nkeep it elsewhere: `runbook audit verify --schedule {} --expect-hash {}` detects a journal cut below it",
            last.hash,
            runbook_core::shown::one_line(name),
            last.hash
        );
    }
    Ok(Exit::Success)
}
