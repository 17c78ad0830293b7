//! The review document: the plan as a reviewer reads it in a pull request (markdown).
//!
//! A pure function of the plan, like every view. Its rules (ARCHITECTURE.md, "The review
//! document"):
//! - every text the run will execute is shown exactly, in a fenced code block whose fence is
//!   longer than any run of backticks inside it ([`fenced`]); control characters are shown
//!   as `\u{..}` escapes so nothing can hide a line;
//! - every other text goes through [`escape`] (markdown punctuation) or [`code`] (an inline
//!   code span sized to its content); a table cell also escapes `|` ([`cell`]);
//! - mermaid node ids are generated (`s1`, `s2`, ...), never a step id, so no step name can be
//!   one of Mermaid's words; labels are quoted with Mermaid's entity codes ([`mermaid_label`]);
//! - secrets are names: the plan holds `<secret:NAME>` placeholders, never values.
//!
//! The facts it prints (worst case, undo chains, points of no return, approvals) come from
//! the review model ([`super::review`]), shared with the HTML page: this file only writes
//! them as markdown ([`md`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::format_duration;
use crate::plan::{Plan, PlanCheck, PlanCommand, PlanCompensation, PlanStep};

use super::review::{self, Phrase, Piece, Risks, changes, on_failure_short, skipped, total_bound};
use super::{argv_text, body_text, read_kind, retry_text, source_text};

/// A phrase of the review model in markdown: the engine's words as they are, runbook text
/// escaped, names as code spans.
fn md(p: &Phrase) -> String {
    let mut out = String::new();
    for piece in &p.0 {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::Prose(s) => out.push_str(&prose(s)),
            Piece::Code(s) => out.push_str(&code(s)),
        }
    }
    out
}

fn ids(list: &[String]) -> String {
    md(&review::ids(list))
}

/// The plan as a review document (`plan --format markdown`).
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let rb = &plan.runbook;
    let title = rb.title.as_deref().map(|t| format!(": {}", prose(t))).unwrap_or_default();
    let _ = writeln!(out, "# Review of {}{title}\n", code(&rb.name));
    if let Some(d) = &rb.description {
        quote(&mut out, d);
    }
    let risks = Risks::of(plan);
    summary(&mut out, plan, &risks);
    risk_section(&mut out, plan, &risks);
    overview(&mut out, plan);
    mermaid(&mut out, plan);
    let _ = writeln!(out, "\n## Steps");
    if !plan.preconditions.is_empty() {
        let _ = writeln!(out, "\n### Preconditions (checked before any step; if one fails, nothing runs)\n");
        for c in &plan.preconditions {
            check_item(&mut out, c, "");
        }
    }
    for s in &plan.steps {
        step_section(&mut out, s, "###", "");
    }
    for s in &plan.finally {
        step_section(&mut out, s, "###", "");
    }
    for r in &plan.reads {
        if let Some(t) = &r.text {
            let _ = writeln!(out, "\n### SQL script {}, as it will run\n", code(&r.path));
            out.push_str(&fenced("sql", t, ""));
        }
    }
    let _ = writeln!(out, "\n_Dry run by runbook {}: nothing was executed._", plan.engine.version);
    out
}

// ----- the summary ---------------------------------------------------------------------

fn summary(out: &mut String, plan: &Plan, risks: &Risks) {
    let rb = &plan.runbook;
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(out, "- **File:** {}", code(&rb.file));
    for f in &plan.files {
        let _ = writeln!(out, "  - SHA-256 of {}: {}", code(&f.path), code(&f.sha256));
    }
    for r in &plan.reads {
        let _ =
            writeln!(out, "  - reads ({}) {}: SHA-256 {}", read_kind(r.kind), code(&r.path), code(&r.sha256));
    }
    if plan.params.is_empty() {
        let _ = writeln!(out, "- **Parameters:** none");
    } else {
        let list: Vec<String> =
            plan.params.iter().map(|(k, v)| format!("{} = {}", code(k), code(&value_text(v)))).collect();
        let _ = writeln!(out, "- **Parameters:** {}", list.join(", "));
    }
    match &rb.lock {
        Some(l) => {
            let _ = writeln!(out, "- **Lock:** {} (no other run holding it runs at the same time)", code(l));
        }
        None => {
            let _ = writeln!(out, "- **Lock:** none");
        }
    }
    let cp = &plan.critical_path;
    let mut est = rb.estimate.clone().unwrap_or_else(|| "none declared".into());
    if let Some(e) = &cp.estimate {
        let _ = write!(est, "; critical path {} estimated {e}", md(&review::path_text(&cp.steps)));
        if !cp.unestimated.is_empty() {
            let _ = write!(est, " ({} step(s) without estimate)", cp.unestimated.len());
        }
    }
    let _ = writeln!(out, "- **Estimate:** {est}");
    let _ = writeln!(out, "- **Worst case:** {}", md(&review::worst_text(plan)));
    if let Some(undo) = review::undo_text(plan).as_ref().map(md) {
        let _ = writeln!(out, "- **Undoing at worst:** {undo}");
    }
    let _ = writeln!(
        out,
        "- **Parallelism:** {}",
        rb.max_parallel.map_or("number of CPUs".to_string(), |n| format!("{n} steps at a time"))
    );
    let secrets = review::secrets(plan);
    if secrets.is_empty() {
        let _ = writeln!(out, "- **Secrets:** none");
    } else {
        let list: Vec<String> = secrets
            .iter()
            .map(|(by, s)| {
                let by = if by.is_empty() {
                    String::new()
                } else {
                    format!("; of the runbook included by {}", code(by))
                };
                format!("{} ({}{by})", code(&s.name), escape(&source_text(&s.source)))
            })
            .collect();
        let _ = writeln!(out, "- **Secrets** (names only): {}", list.join(", "));
    }
    if risks.approvals.is_empty() {
        let _ = writeln!(out, "- **Approvals:** none");
    } else {
        let _ = writeln!(out, "- **Approvals:**");
        for (id, text) in &risks.approvals {
            let _ = writeln!(out, "  - {}: {}", code(id), md(text));
        }
    }
    if risks.confirmations.is_empty() {
        let _ = writeln!(out, "- **Confirmations:** none");
    } else {
        let _ = writeln!(out, "- **Confirmations** (the operator answers at the terminal):");
        for (id, text) in &risks.confirmations {
            let _ = writeln!(out, "  - {}: {}", code(id), one_line(text));
        }
    }
    if !plan.escalations.is_empty() {
        let _ = writeln!(out, "- **Escalations:**");
        for e in &plan.escalations {
            let _ = writeln!(
                out,
                "  - after {}: {} to {}: {}",
                e.after,
                code(&e.id),
                code(&e.webhook),
                escape(&body_text(&e.body))
            );
        }
    }
}

pub(super) fn value_text(v: &crate::model::ParamValue) -> String {
    let json = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    match json.as_str() {
        Some(s) if !s.chars().any(crate::shown::is_hidden) => s.to_string(),
        _ => json.to_string(),
    }
}

/// The facts of the risk section, as the plan diff compares them ([`super::diff`]): the same
/// computation as the review document's ([`Risks::of`]), so the two never disagree.
pub(crate) struct RiskFacts {
    /// Steps that change something and have no compensation.
    pub irreversible: Vec<String>,
    /// Steps and compensations not declared idempotent, as markdown code spans.
    pub not_idempotent: Vec<String>,
    /// The points of no return.
    pub no_return: Vec<String>,
    /// Approval steps (included runbooks' under `include_step.`) and their rules, as markdown.
    pub approvals: Vec<(String, String)>,
    /// Steps that ask first, and their questions.
    pub confirmations: Vec<(String, String)>,
    /// The whole run at worst (`None`: no bound).
    pub worst: Option<std::time::Duration>,
}

/// The risk facts of a plan.
pub(crate) fn risk_facts(plan: &Plan) -> RiskFacts {
    let r = Risks::of(plan);
    RiskFacts {
        irreversible: r.irreversible,
        not_idempotent: r.not_idempotent.iter().map(md).collect(),
        no_return: r.no_return.into_iter().map(|(id, _)| id).collect(),
        approvals: r.approvals.iter().map(|(id, rule)| (id.clone(), md(rule))).collect(),
        confirmations: r.confirmations,
        worst: total_bound(plan).0,
    }
}

fn risk_section(out: &mut String, plan: &Plan, risks: &Risks) {
    let _ = writeln!(out, "\n## Risks\n");
    if risks.irreversible.is_empty() {
        let _ = writeln!(out, "- **Changes that nothing undoes:** none");
    } else {
        let _ = writeln!(
            out,
            "- **Changes that nothing undoes:** {} (they may change something and have no compensation)",
            ids(&risks.irreversible)
        );
    }
    if risks.not_idempotent.is_empty() {
        let _ = writeln!(out, "- **Not idempotent:** none");
    } else {
        let _ = writeln!(
            out,
            "- **Not idempotent:** {} (if the engine dies while one runs, it waits for an operator's decision instead of running again)",
            md(&review::few_shown(&risks.not_idempotent))
        );
    }
    if risks.no_return.is_empty() {
        let why = if risks.any_compensable {
            "a failure of any step runs the compensations of the steps completed before it; the changes that nothing undoes stay as they are"
        } else {
            "nothing in this runbook can be undone: a failure leaves every completed step as it is"
        };
        let _ = writeln!(out, "- **Point of no return:** none ({why})");
    } else if let [(id, lost)] = risks.no_return.as_slice() {
        let _ = writeln!(
            out,
            "- **Point of no return:** {}: from there on, a failure stops instead of undoing {}",
            code(id),
            md(lost)
        );
    } else {
        let _ = writeln!(out, "- **Points of no return** (one on each branch):");
        for (id, lost) in &risks.no_return {
            let _ = writeln!(
                out,
                "  - {}: from there on, a failure stops instead of undoing {}",
                code(id),
                md(lost)
            );
        }
    }
    let _ = writeln!(out, "\n### What a failure at each wave undoes\n");
    let _ = writeln!(out, "| wave | step | if it fails | undoes, in order | left as it is |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for s in plan.steps.iter().filter(|s| !skipped(s)) {
        let undoes = if s.compensation_chain.is_empty() {
            "nothing".to_string()
        } else {
            md(&review::few_chain(&s.compensation_chain))
        };
        let kept = risks.kept.get(&s.id).map(md).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.wave,
            cell(&code(&s.id)),
            on_failure_short(s),
            cell(&undoes),
            cell(if kept.is_empty() { "nothing" } else { &kept })
        );
    }
    if risks.any_compensable && plan.waves.iter().any(|w| w.len() > 1) {
        let _ = writeln!(
            out,
            "\nSteps of the same wave run in parallel: those that completed before the failure are undone too, if they have a compensation."
        );
    }
}

// ----- the overview table and the graph ------------------------------------------------

fn timeout_text(s: &PlanStep) -> String {
    super::step_timeout(s).unwrap_or("none").to_string()
}

fn overview(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\n## Order\n");
    let _ =
        writeln!(out, "| wave | step | kind | needs | timeout | retry | idempotent | undo | on failure |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for s in plan.steps.iter().chain(plan.finally.iter()) {
        let mut wave = if s.wave == 0 { "finally".to_string() } else { s.wave.to_string() };
        if skipped(s) {
            wave.push_str(" (skipped: `when` is false)");
        }
        let undo = match &s.compensation {
            Some(c) => format!("yes ({})", c.command.kind()),
            None if super::review::undoable(s) => "yes (its runbook's)".to_string(),
            None if changes(&s.command) => "**none**".to_string(),
            None => "not needed".to_string(),
        };
        let retry = super::step_retry(s).map_or_else(|| "no retry".to_string(), retry_text);
        let _ = writeln!(
            out,
            "| {wave} | {} | {} | {} | {} | {} | {} | {undo} | {} |",
            cell(&code(&s.id)),
            s.kind,
            cell(&ids(&s.needs)),
            timeout_text(s),
            cell(&escape(&retry)),
            match (&s.command, s.idempotent) {
                (PlanCommand::Approval { .. }, _) => "n/a",
                (_, true) => "yes",
                (_, false) => "no",
            },
            on_failure_short(s),
        );
    }
}

fn mermaid(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\n## Graph\n");
    let _ = writeln!(out, "```mermaid\nflowchart TD");
    // Generated ids: a step id is never a node id, so no step name can be a Mermaid word.
    let node: BTreeMap<&str, String> = plan
        .steps
        .iter()
        .chain(plan.finally.iter())
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), format!("s{}", i + 1)))
        .collect();
    let label = |s: &PlanStep| mermaid_label(&format!("{} ({})", s.id, s.kind));
    for s in &plan.steps {
        let _ = writeln!(out, "  {}[\"{}\"]", node[s.id.as_str()], label(s));
    }
    for s in &plan.steps {
        for n in &s.needs {
            if let Some(from) = node.get(n.as_str()) {
                let _ = writeln!(out, "  {from} --> {}", node[s.id.as_str()]);
            }
        }
    }
    if !plan.finally.is_empty() {
        let _ = writeln!(out, "  subgraph finally_steps [\"finally\"]");
        for s in &plan.finally {
            let _ = writeln!(out, "    {}[\"{}\"]", node[s.id.as_str()], label(s));
        }
        let _ = writeln!(out, "  end");
        for s in &plan.finally {
            for n in &s.needs {
                if let Some(from) = node.get(n.as_str()) {
                    let _ = writeln!(out, "  {from} --> {}", node[s.id.as_str()]);
                }
            }
        }
    }
    let mut classes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in plan.steps.iter().chain(plan.finally.iter()) {
        let Some(class) = review::node_class(s) else {
            continue;
        };
        classes.entry(class).or_default().push(node[s.id.as_str()].as_str());
    }
    if !classes.is_empty() {
        let _ = writeln!(out, "  classDef approval fill:#fff3bf,stroke:#f08c00");
        let _ = writeln!(out, "  classDef compensable fill:#d3f9d8,stroke:#2f9e44");
        let _ = writeln!(out, "  classDef irreversible fill:#ffe3e3,stroke:#e03131");
        for (class, nodes) in &classes {
            let _ = writeln!(out, "  class {} {class}", nodes.join(","));
        }
    }
    let _ = writeln!(out, "```");
    let _ = writeln!(
        out,
        "\nYellow: asks for an approval. Green: has a compensation. Red: may change something that nothing undoes."
    );
}

/// A mermaid label's text, for `id["..."]`: the characters that could end or rewrite it
/// as Mermaid entity codes.
fn mermaid_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' | '\r' => out.push(' '),
            '`' => out.push_str("#96;"),
            c if crate::shown::is_hidden(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// ----- step sections -------------------------------------------------------------------

fn check_item(out: &mut String, c: &PlanCheck, prefix: &str) {
    let _ = writeln!(out, "- {}{} ({}, timeout {}):\n", prefix, code(&c.id), c.command.kind(), c.timeout);
    command_block(out, &c.command, "  ");
    if let Some(d) = &c.dir {
        let _ = writeln!(out, "  - directory {}", code(d));
    }
    for (k, v) in &c.env {
        let _ = writeln!(out, "  - env {} = {}", code(k), code(v));
    }
    if let Some(m) = &c.message {
        let _ = writeln!(out, "  - if it fails: {}", prose(m));
    }
    out.push('\n');
}

fn step_section(out: &mut String, s: &PlanStep, level: &str, prefix: &str) {
    let title = s.title.as_deref().map(|t| format!(": {}", prose(t))).unwrap_or_default();
    let full = format!("{prefix}{}", s.id);
    let _ = writeln!(out, "\n{level} {}{title}\n", code(&full));
    if let Some(d) = &s.description {
        quote(out, d);
    }
    let wave =
        if s.wave == 0 { "`finally` (always runs last)".to_string() } else { format!("wave {}", s.wave) };
    let needs = if s.needs.is_empty() { String::new() } else { format!(", after {}", ids(&s.needs)) };
    let _ = writeln!(out, "- **Kind:** {}, {wave}{needs}", s.kind);
    if let Some(w) = &s.when {
        let value = match w.value {
            Some(true) => "true: it runs",
            Some(false) => "false: it is skipped",
            None => "decided at run time",
        };
        let _ = writeln!(out, "- **When:** {} ({value})", code(&w.expr));
    }
    let _ = writeln!(out, "- **Timeout:** {}", timeout_text(s));
    if let Some(r) = super::step_retry(s) {
        let _ = writeln!(out, "- **Retry:** {}", escape(&retry_text(r)));
    }
    let idem = match (&s.command, s.idempotent) {
        (PlanCommand::Approval { .. }, _) => None,
        (_, true) => Some("yes: runs again by itself if the engine dies while it runs"),
        (_, false) => Some("no: if the engine dies while it runs, an operator decides"),
    };
    if let Some(idem) = idem {
        let _ = writeln!(out, "- **Idempotent:** {idem}");
    }
    if let Some(e) = &s.estimate {
        let _ = writeln!(out, "- **Estimate:** {e}");
    }
    if let Some(d) = &s.dir {
        let _ = writeln!(out, "- **Directory:** {}", code(d));
    }
    for (k, v) in &s.env {
        let _ = writeln!(out, "- **Env** {} = {}", code(k), code(v));
    }
    if !s.outputs.is_empty() {
        let _ = writeln!(out, "- **Outputs:** {}", ids(&s.outputs));
    }
    let _ = writeln!(out, "- **On failure:** {}", md(&review::on_failure_long(s)));
    if !s.preconditions.is_empty() {
        let _ = writeln!(out, "\n**Preconditions** (checked right before it; a failure fails the step):\n");
        for c in &s.preconditions {
            check_item(out, c, "");
        }
    }
    if let Some(c) = &s.confirm {
        // On one line, as the text plan shows it: its line breaks draw no line.
        let _ = writeln!(out, "\n**Asks first** (the step runs only on a yes): {}", one_line(c));
    }
    let _ = writeln!(out, "\n**Runs:**\n");
    match &s.command {
        PlanCommand::Runbook { file, params, plan } => {
            let list: Vec<String> =
                params.iter().map(|(k, v)| format!("{} = {}", code(k), code(&v.to_string()))).collect();
            let title = plan.runbook.title.as_deref().map(|t| format!(": {}", prose(t))).unwrap_or_default();
            let _ = writeln!(
                out,
                "- the runbook {} ({}{title}) with {}",
                code(file),
                code(&plan.runbook.name),
                if list.is_empty() { "no parameters".into() } else { list.join(", ") }
            );
            let _ = writeln!(
                out,
                "- its worst case: {}",
                total_bound(plan).0.map_or("no bound".to_string(), format_duration)
            );
            let deeper = if level.len() < 6 { format!("{level}#") } else { level.to_string() };
            let nested = format!("{full}.");
            for c in &plan.preconditions {
                check_item(out, c, &nested);
            }
            for step in plan.steps.iter().chain(plan.finally.iter()) {
                step_section(out, step, &deeper, &nested);
            }
        }
        other => command_block(out, other, ""),
    }
    if let Some(c) = &s.compensation {
        compensation(out, c);
    }
}

fn compensation(out: &mut String, c: &PlanCompensation) {
    let idem = if c.idempotent { "idempotent" } else { "not idempotent" };
    let _ = writeln!(
        out,
        "\n**Compensation** (undoes it if a later step fails; {}, timeout {}, {}):\n",
        c.command.kind(),
        c.timeout.as_deref().unwrap_or("none"),
        escape(&format!("{}, {idem}", retry_text(&c.retry)))
    );
    command_block(out, &c.command, "");
    for (k, v) in &c.env {
        let _ = writeln!(out, "- env {} = {}", code(k), code(v));
    }
    if let Some(d) = &c.dir {
        let _ = writeln!(out, "- directory {}", code(d));
    }
}

/// What a command does: its exact text in a fenced block, then its details as a list.
fn command_block(out: &mut String, c: &PlanCommand, indent: &str) {
    match c {
        PlanCommand::Run { script, shell } => {
            out.push_str(&fenced("sh", script, indent));
            let _ = writeln!(out, "{indent}- shell: {}", code(&argv_text(shell)));
        }
        PlanCommand::Cmd(argv) => {
            out.push_str(&fenced("sh", &argv_text(argv), indent));
            let _ = writeln!(
                out,
                "{indent}- argv, no shell: {}",
                argv.iter().map(|a| code(a)).collect::<Vec<_>>().join(" ")
            );
        }
        PlanCommand::Http {
            method,
            url,
            headers,
            query,
            body,
            expect_status,
            max_latency,
            assert,
            ca_file,
            request_timeout,
        } => {
            let req = review::http_request_text(method, url, headers, body.as_ref());
            out.push_str(&fenced("http", &req, indent));
            for (k, v) in query {
                let _ = writeln!(out, "{indent}- query {} = {}", code(k), code(v));
            }
            let status = if expect_status.is_empty() {
                "any 2xx".to_string()
            } else {
                expect_status.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(out, "{indent}- expects status {status}");
            if let Some(l) = max_latency {
                let _ = writeln!(out, "{indent}- within {l}");
            }
            if let Some(a) = assert {
                let _ = writeln!(out, "{indent}- asserts {}", code(a));
            }
            if let Some(f) = ca_file {
                let _ = writeln!(out, "{indent}- trusts the CA file {}", code(f));
            }
            if let Some(t) = request_timeout {
                let _ = writeln!(out, "{indent}- request timeout {t}");
            }
        }
        PlanCommand::Sql { url, query, file, args, assert, read_only } => {
            match (query, file) {
                (Some(q), _) => out.push_str(&fenced("sql", q, indent)),
                (None, Some(f)) => {
                    let _ = writeln!(
                        out,
                        "{indent}- the script {} in one transaction (its text is below)",
                        code(f)
                    );
                }
                (None, None) => {}
            }
            let _ = writeln!(out, "{indent}- on {}", code(url));
            for (i, a) in args.iter().enumerate() {
                let _ = writeln!(out, "{indent}- ${} = {}", i + 1, code(&a.to_string()));
            }
            if let Some(a) = assert {
                let _ = writeln!(out, "{indent}- asserts {}", code(a));
            }
            if *read_only {
                let _ = writeln!(out, "{indent}- read-only transaction");
            }
        }
        PlanCommand::Approval { prompt, .. } => {
            out.push_str(&fenced("text", prompt, indent));
            let _ = writeln!(out, "{indent}- {}", md(&review::approval_text(c)));
        }
        PlanCommand::Notify { webhook, body, required } => {
            let text = review::notify_text(body);
            out.push_str(&fenced("text", &text, indent));
            let _ = writeln!(out, "{indent}- posted to {}", code(webhook));
            if *required {
                let _ = writeln!(out, "{indent}- a failed delivery fails the step");
            }
        }
        PlanCommand::Runbook { file, .. } => {
            let _ = writeln!(out, "{indent}- the runbook {}", code(file));
        }
    }
}

// ----- markdown text -------------------------------------------------------------------

/// A fenced code block holding `text` exactly (control characters shown as escapes), with a
/// fence longer than any run of backticks in it, so nothing inside can close it.
pub(crate) fn fenced(info: &str, text: &str, indent: &str) -> String {
    let marked = crate::shown::marked(text.strip_suffix('\n').unwrap_or(text));
    let text = &marked.text;
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = format!("{indent}{fence}{info}\n");
    for line in text.split('\n') {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{indent}{line}");
        }
    }
    let _ = writeln!(out, "{indent}{fence}\n");
    if let Some(note) = marked.note() {
        let _ = writeln!(out, "{indent}Invisible characters, shown above as escapes: {note}.\n");
    }
    out
}

/// An inline code span holding `s`: delimited by more backticks than any run inside it,
/// padded when it starts or ends with one; line breaks and control characters as escapes.
pub(crate) fn code(s: &str) -> String {
    // Most spans are ids: nothing to measure.
    if !s.contains('`')
        && !s.starts_with(' ')
        && !s.is_empty()
        && s.is_ascii()
        && !s.chars().any(crate::shown::is_hidden)
    {
        return format!("`{s}`");
    }
    // One line: its line breaks and tabs are marked and named as well.
    let marked = crate::shown::marked_spans(s, &[(0..s.len(), crate::shown::Span::OneLine)]);
    let note = if marked.replaced.is_empty() {
        String::new()
    } else {
        format!(" (invisible characters shown as escapes: {})", marked.names())
    };
    // An empty code span does not exist in CommonMark: two backticks would pair with the
    // next ones on the line. An empty value is shown as `""`.
    if s.is_empty() {
        return "`\"\"`".to_string();
    }
    let s = marked.text;
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let ticks = "`".repeat(longest + 1);
    if s.starts_with('`')
        || s.ends_with('`')
        || (s.starts_with(' ') && s.ends_with(' ') && !s.trim().is_empty())
    {
        format!("{ticks} {s} {ticks}{note}")
    } else {
        format!("{ticks}{s}{ticks}{note}")
    }
}

/// Text that markdown must show as written: punctuation that could start markup escaped,
/// line breaks as hard breaks (`<br>`), control characters as escapes.
pub(crate) fn escape(s: &str) -> String {
    escape_marked(s, crate::shown::marked(s))
}

/// A value drawn on one line (a confirm text) as [`escape`] shows it, its line breaks and
/// tabs marked too ([`crate::shown::Span::OneLine`]).
pub(crate) fn one_line(s: &str) -> String {
    escape_marked(s, crate::shown::marked_spans(s, &[(0..s.len(), crate::shown::Span::OneLine)]))
}

/// Prose (a title, a description, a precondition's message) as [`escape`] shows it, marked
/// as prose ([`crate::shown::prose`]): the letters of its language stay.
pub(crate) fn prose(s: &str) -> String {
    escape_marked(s, crate::shown::prose(s))
}

fn escape_marked(s: &str, marked: crate::shown::Marked) -> String {
    let at: std::collections::HashSet<(usize, char)> = marked.replaced.iter().copied().collect();
    let mut out = String::with_capacity(s.len());
    // Lines as the marking counts them: a marked line break does not start one.
    let mut n = 1;
    for c in s.chars() {
        let mark = at.contains(&(n, c));
        if c == '\n' && !mark {
            n += 1;
        }
        match c {
            c if mark => out.push_str(&crate::shown::escape(c)),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '$' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("<br>"),
            '\t' => out.push('\t'),
            c => out.push(c),
        }
    }
    if !marked.replaced.is_empty() {
        let _ = write!(out, " (invisible characters shown as escapes: {})", marked.names());
    }
    out
}

/// A table cell: `|` escaped (also inside code spans, as tables require).
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut backslashes = 0;
    for c in s.chars() {
        if c == '|' && backslashes % 2 == 0 {
            out.push('\\');
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
        out.push(c);
    }
    out
}

/// A block quote of free text, line by line.
fn quote(out: &mut String, text: &str) {
    for line in text.trim_end().split('\n') {
        let line = prose(line.trim_start());
        // A quote line that would start a list, a heading or a thematic break stays text.
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let guarded = match line.chars().next() {
            Some('-' | '+' | '=') => format!("\\{line}"),
            _ if digits > 0 && matches!(line[digits..].chars().next(), Some('.' | ')')) => {
                format!("{}\\{}", &line[..digits], &line[digits..])
            }
            _ => line,
        };
        let _ = writeln!(out, "> {guarded}  ");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_any_backticks() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("echo `date`"), "`` echo `date` ``");
        assert_eq!(code("`x`"), "`` `x` ``");
    }

    #[test]
    fn fences_are_longer_than_any_backtick_run() {
        let block = fenced("sh", "echo ```` four\n", "");
        assert!(block.starts_with("`````sh\n"), "{block}");
    }

    #[test]
    fn cells_escape_pipes_once() {
        assert_eq!(cell("a|b"), "a\\|b");
        assert_eq!(cell("a\\|b"), "a\\|b");
    }
}
