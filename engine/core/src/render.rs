//! Views of a [`Plan`]: text for a terminal, markdown for a pull request, a self-contained HTML
//! page for a browser (and the web console), dot for Graphviz.
//!
//! Each view reads only the plan document, so they cannot disagree with `--format json`.
//! They return strings; printing is the CLI's job.

use std::fmt::Write as _;

use serde_json::Value;

use crate::model::{OnFailure, ReadKind, RetryPolicy, format_duration};
use crate::plan::{Plan, PlanCheck, PlanCommand, PlanStep};
use crate::template::shell_quote;

pub mod diff;
mod html;
mod markdown;
mod review;

pub use html::{HTML_STYLE, Quote, ReviewHtml, html, html_body};
pub use markdown::markdown;

/// The plan for a terminal.
pub fn text(plan: &Plan) -> String {
    let mut out = Text::default();
    text_into(&mut out, plan, "");
    for r in &plan.reads {
        if let Some(t) = &r.text {
            let _ = writeln!(out, "\nSQL script {} (sha256 {}), as it will run:", r.path, r.sha256);
            // Split on line feeds alone: a carriage return is executed (data inside a
            // string literal), so it stays in its line, where it is marked `\r`.
            for line in t.strip_suffix('\n').unwrap_or(t).split('\n') {
                let _ = writeln!(out, "  | {line}");
            }
        }
    }
    let _ = writeln!(out, "\nThis is a dry run: nothing was executed.");
    drawable(&out.s, &out.spans)
}

/// The text plan being written, and the byte ranges of its prose (titles, precondition
/// messages) and of the engine's own non-ASCII words (` · `), which [`drawable`] reads apart
/// ([`crate::shown::marked_spans`]); every other byte is read by the rule of what is executed.
#[derive(Default)]
struct Text {
    s: String,
    spans: Vec<(std::ops::Range<usize>, crate::shown::Span)>,
}

impl std::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.s.push_str(s);
        Ok(())
    }
}

impl Text {
    /// Prose from the runbook, then the rest of its line.
    fn prose(&mut self, s: &str, rest: &str) {
        let start = self.s.len();
        self.s.push_str(s);
        self.spans.push((start..self.s.len(), crate::shown::Span::Prose));
        self.s.push_str(rest);
    }

    /// The rest of a field's line: a value of the runbook (a path, an env value, a
    /// parameter, a `when`) that the renderer draws on one line; its line breaks and tabs are
    /// marked ([`crate::shown::Span::OneLine`]): no value draws a line or a column.
    fn value(&mut self, head: &str, value: &str) {
        self.s.push_str(head);
        let start = self.s.len();
        self.s.push_str(value);
        self.spans.push((start..self.s.len(), crate::shown::Span::OneLine));
        self.s.push('\n');
    }

    /// A line of the review model's pieces after `head`: the engine's words as they are,
    /// code by the rule of what is executed on one line, prose by the prose rule (red team
    /// adv16t A1, A1b: an approval input's description and pattern).
    fn phrase(&mut self, head: &str, p: &review::Phrase) {
        self.s.push_str(head);
        for piece in &p.0 {
            let (s, span) = match piece {
                review::Piece::Lit(s) => {
                    self.s.push_str(s);
                    continue;
                }
                review::Piece::Code(s) => (s, crate::shown::Span::OneLine),
                review::Piece::Prose(s) => (s, crate::shown::Span::Prose),
            };
            let start = self.s.len();
            self.s.push_str(s);
            self.spans.push((start..self.s.len(), span));
        }
        self.s.push('\n');
    }

    /// The engine's own words: a literal, never a runbook's text.
    fn engine(&mut self, words: &'static str) {
        let start = self.s.len();
        self.s.push_str(words);
        self.spans.push((start..self.s.len(), crate::shown::Span::Engine));
    }

    /// Parts joined by the engine's ` · `, then a line break.
    fn dotted<S: AsRef<str>>(&mut self, parts: &[S]) {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.engine(" · ");
            }
            self.s.push_str(p.as_ref());
        }
        self.s.push('\n');
    }

    fn append(&mut self, other: Text) {
        let at = self.s.len();
        self.s.push_str(&other.s);
        self.spans.extend(other.spans.into_iter().map(|(r, k)| (r.start + at..r.end + at, k)));
    }
}

/// The text plan as a terminal may draw it. Every line of it passes here, whatever value
/// it holds (a title, a script, a confirm text, a parameter, an included plan): a hidden
/// character (an escape sequence, a carriage return, a bidi override, a zero-width space)
/// is shown as the escape `show` uses, and the plan says so on a line of its own under the
/// line that held it and once at its end, where a runbook's text cannot reach, so that a
/// real carriage return and the typed text `\r` never look alike.
fn drawable(out: &str, spans: &[(std::ops::Range<usize>, crate::shown::Span)]) -> String {
    let m = crate::shown::marked_spans(out, spans);
    if m.replaced.is_empty() {
        return m.text;
    }
    let mut shown = String::with_capacity(m.text.len() + 256);
    let mut at = m.replaced.iter().peekable();
    let mut lines = 0;
    for (i, line) in m.text.split_inclusive('\n').enumerate() {
        shown.push_str(line);
        let here = crate::shown::Marked {
            text: String::new(),
            replaced: std::iter::from_fn(|| at.next_if(|(n, _)| *n == i + 1).copied()).collect(),
        };
        if !here.replaced.is_empty() {
            lines += 1;
            let indent: String = line.chars().take_while(|c| *c == ' ').collect();
            let _ = writeln!(shown, "{indent}  ^ invisible characters shown as escapes: {}", here.names());
        }
    }
    let _ = writeln!(
        shown,
        "This plan shows {} invisible character(s) as escapes (\\r, \\u{{..}}), on {lines} line(s) marked ^: {}.",
        m.replaced.len(),
        m.names()
    );
    shown
}

fn text_into(out: &mut Text, plan: &Plan, indent: &str) {
    let rb = &plan.runbook;
    let _ = write!(out, "{indent}Plan for {}", rb.name);
    match &rb.title {
        Some(t) => out.prose(&format!(": {t}"), "\n"),
        None => out.s.push('\n'),
    }
    out.value(&format!("{indent}  file       "), &rb.file);
    if let Some(e) = &rb.estimate {
        out.value(&format!("{indent}  estimate   "), e);
    }
    let cp = &plan.critical_path;
    if !cp.steps.is_empty() {
        let est = match &cp.estimate {
            Some(e) if cp.unestimated.is_empty() => format!(" ({e})"),
            Some(e) => format!(" ({e}, {} step(s) without estimate)", cp.unestimated.len()),
            None => String::new(),
        };
        let _ = writeln!(out, "{indent}  critical   {}{est}", cp.steps.join(" -> "));
    }
    if let Some(l) = &rb.lock {
        out.value(&format!("{indent}  lock       "), l);
    }
    let _ = writeln!(
        out,
        "{indent}  parallel   {}",
        rb.max_parallel.map_or("number of CPUs".to_string(), |n| n.to_string())
    );
    if !plan.params.is_empty() {
        let list: Vec<String> =
            plan.params.iter().map(|(k, v)| format!("{k}={}", shell_quote(&v.as_argument()))).collect();
        out.value(&format!("{indent}  params     "), &list.join(" "));
    }
    if !plan.secrets.is_empty() {
        let list: Vec<String> =
            plan.secrets.iter().map(|s| format!("{} ({})", s.name, source_text(&s.source))).collect();
        out.value(&format!("{indent}  secrets    "), &list.join(", "));
    }
    // What a pinned plan checks, at the top only (an included plan's files are listed here).
    if indent.is_empty() {
        for f in &plan.files {
            out.value("  runbook    ", &format!("{} (sha256 {})", f.path, f.sha256));
        }
    }
    for r in &plan.reads {
        out.value(
            &format!("{indent}  reads      {} ", read_kind(r.kind)),
            &format!("{} (sha256 {})", r.path, r.sha256),
        );
    }
    if !plan.preconditions.is_empty() {
        let _ = writeln!(
            out,
            "{}\n{indent}Preconditions (checked before any step; if one fails, nothing runs)",
            indent.trim_end()
        );
        for c in &plan.preconditions {
            check_text(out, c, &format!("{indent}  "));
        }
    }
    let by_id: std::collections::HashMap<&str, &PlanStep> =
        plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    for (n, wave) in plan.waves.iter().enumerate() {
        let parallel =
            if wave.len() > 1 { format!(" ({} steps in parallel)", wave.len()) } else { String::new() };
        let _ = writeln!(out, "{}\n{indent}Wave {}{parallel}", indent.trim_end(), n + 1);
        for id in wave {
            if let Some(step) = by_id.get(id.as_str()) {
                step_text(out, step, &format!("{indent}  "));
            }
        }
    }
    if !plan.finally.is_empty() {
        let _ =
            writeln!(out, "{}\n{indent}Finally (always runs last, whatever the outcome)", indent.trim_end());
        for step in &plan.finally {
            step_text(out, step, &format!("{indent}  "));
        }
    }
    if !plan.escalations.is_empty() {
        let _ =
            writeln!(out, "{}\n{indent}Escalations (fire once if the run is still going)", indent.trim_end());
        for e in &plan.escalations {
            out.value(
                &format!("{indent}  after {:<6} {}  notify ", e.after, e.id),
                &format!("{} {}", e.webhook, body_text(&e.body)),
            );
        }
    }
}

fn source_text(s: &crate::model::SecretSource) -> String {
    match s {
        crate::model::SecretSource::Env(v) => format!("env {v}"),
        crate::model::SecretSource::File(f) => format!("file {f}"),
        crate::model::SecretSource::Command(c) => format!("command {}", argv_text(c)),
    }
}

/// The shell a `run` command goes to, when it is not the default one (`bash -e -o pipefail
/// -c`): the argv the script is appended to, code of its own before the script included.
fn shell_text(c: &PlanCommand) -> Option<String> {
    match c {
        PlanCommand::Run { shell, .. } if *shell != crate::validate::DEFAULT_SHELL => Some(argv_text(shell)),
        _ => None,
    }
}

fn argv_text(argv: &[String]) -> String {
    argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

fn body_text(v: &Value) -> String {
    match v.get("text").and_then(Value::as_str) {
        Some(t) if v.as_object().is_some_and(|o| o.len() == 1) => format!("text: {t}"),
        _ => format!("json: {v}"),
    }
}

fn check_text(out: &mut Text, c: &PlanCheck, indent: &str) {
    let cont = format!("\n{indent}    ");
    let _ = writeln!(
        out,
        "{indent}{}  [{}] {}",
        c.id,
        c.command.kind(),
        command_line(&c.command).replace('\n', &cont)
    );
    check_fields(out, c, &format!("{indent}    "), &cont);
}

/// The fields of a check under its first line, each line starting with `sub` (a script's
/// continuation lines with `cont`): the same for a runbook's checks and a step's.
fn check_fields(out: &mut Text, c: &PlanCheck, sub: &str, cont: &str) {
    if let Some(sh) = shell_text(&c.command) {
        let _ = writeln!(out, "{sub}shell {}", sh.replace('\n', cont));
    }
    if let Some(d) = &c.dir {
        out.value(&format!("{sub}dir "), d);
    }
    for (k, v) in &c.env {
        out.value(&format!("{sub}env "), &format!("{k}={v}"));
    }
    let _ = writeln!(out, "{sub}timeout {}", c.timeout);
    if let Some(m) = &c.message {
        let _ = write!(out, "{sub}if it fails: ");
        out.prose(m, "\n");
    }
}

/// The parts of a request a reviewer needs besides its first line.
fn command_details(c: &PlanCommand) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(sh) = shell_text(c) {
        out.push(("shell", sh));
    }
    match c {
        PlanCommand::Http { headers, query, body, assert, .. } => {
            for (k, v) in headers {
                out.push(("header", format!("{k}: {v}")));
            }
            for (k, v) in query {
                out.push(("query", format!("{k}={v}")));
            }
            if let Some(b) = body {
                out.push(("body", b.as_str().map_or_else(|| b.to_string(), str::to_string)));
            }
            if let Some(a) = assert {
                out.push(("assert", a.clone()));
            }
        }
        PlanCommand::Sql { args, assert, read_only, .. } => {
            if !args.is_empty() {
                let list: Vec<String> =
                    args.iter().enumerate().map(|(i, a)| format!("${}={a}", i + 1)).collect();
                out.push(("args", list.join(" ")));
            }
            if let Some(a) = assert {
                out.push(("assert", a.clone()));
            }
            if *read_only {
                out.push(("read-only", "yes (read-only transaction)".into()));
            }
        }
        // Its inputs are written by `text_into`, marked piece by piece (`Text::phrase`).
        PlanCommand::Approval { timeout, allow_self_approval, .. } => {
            if let Some(t) = timeout {
                out.push(("waits", format!("up to {t}")));
            }
            if !allow_self_approval {
                out.push(("approvers", "not the operator who started the run".into()));
            }
        }
        _ => {}
    }
    out
}

/// One line saying what a command does.
pub fn command_line(c: &PlanCommand) -> String {
    match c {
        PlanCommand::Run { script, .. } => script.trim().to_string(),
        PlanCommand::Cmd(argv) => argv_text(argv),
        PlanCommand::Http { method, url, expect_status, max_latency, .. } => {
            let mut s = format!("{method} {url}");
            if !expect_status.is_empty() {
                let list: Vec<String> = expect_status.iter().map(u16::to_string).collect();
                let _ = write!(s, " expect {}", list.join("|"));
            }
            if let Some(l) = max_latency {
                let _ = write!(s, " within {l}");
            }
            s
        }
        PlanCommand::Sql { url, query, file, .. } => match (query, file) {
            (Some(q), _) => format!("{} on {url}", q.trim()),
            (None, Some(f)) => format!("script {f} on {url} (one transaction)"),
            _ => url.clone(),
        },
        PlanCommand::Approval { prompt, min_approvals, approvers, .. } => {
            // Each name quoted: `"alice, bob"` is one name, a line break in it is `\n`
            // (red team adv16t A3).
            let who = if approvers.is_empty() {
                "any operator".to_string()
            } else {
                approvers
                    .iter()
                    .map(|a| serde_json::to_string(a).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("{prompt} ({min_approvals} approval(s) from {who})")
        }
        PlanCommand::Notify { webhook, body, .. } => format!("{webhook} {}", body_text(body)),
        PlanCommand::Runbook { file, plan, .. } => format!("{file} ({} steps)", plan.steps.len()),
    }
}

fn retry_text(r: &RetryPolicy) -> String {
    if r.attempts <= 1 {
        return "no retry".into();
    }
    let mut s = format!("{} attempts, delay {}", r.attempts, format_duration(r.delay));
    if r.backoff > 1.0 {
        let _ = write!(s, " x{}", r.backoff);
    }
    if let Some(m) = r.max_delay {
        let _ = write!(s, " up to {}", format_duration(m));
    }
    if r.jitter {
        s.push_str(", jitter");
    }
    if !r.on_exit_codes.is_empty() {
        let codes: Vec<String> = r.on_exit_codes.iter().map(i32::to_string).collect();
        let _ = write!(s, ", on exit codes {}", codes.join(", "));
    }
    s
}

fn step_text(out: &mut Text, s: &PlanStep, indent: &str) {
    let _ = write!(out, "{indent}{} [{}]", s.id, s.kind);
    match &s.title {
        Some(t) => out.prose(&format!("  {t}"), "\n"),
        None => out.s.push('\n'),
    }
    let pad = format!("{indent}    ");
    // Continuation lines of a multi-line value line up under its first line.
    let cont = format!("\n{pad}            ");
    if !s.needs.is_empty() {
        let _ = writeln!(out, "{pad}needs       {}", s.needs.join(", "));
    }
    if let Some(w) = &s.when {
        let value = match w.value {
            Some(true) => "true: runs",
            Some(false) => "false: skipped",
            None => "decided at run time",
        };
        out.value(&format!("{pad}when        "), &format!("{} ({value})", w.expr));
    }
    if let Some(c) = &s.confirm {
        out.value(&format!("{pad}confirm     "), c);
    }
    for c in &s.preconditions {
        let line = command_line(&c.command).replace('\n', &cont);
        let _ = writeln!(out, "{pad}check       {} [{}] {line}", c.id, c.command.kind());
        check_fields(out, c, &format!("{pad}              "), &cont);
    }
    match &s.command {
        PlanCommand::Runbook { plan, params, .. } => {
            let list: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", json_scalar(v))).collect();
            out.value(&format!("{pad}runbook     "), &format!("{} {}", plan.runbook.file, list.join(" ")));
            let mut nested = Text::default();
            text_into(&mut nested, plan, &format!("{pad}  | "));
            out.append(nested);
        }
        other => {
            let _ = writeln!(out, "{pad}{:<11} {}", s.kind, command_line(other).replace('\n', &cont));
            if let PlanCommand::Approval { inputs, input_rules, .. } = other {
                for (k, ty) in inputs {
                    out.phrase(
                        &format!("{pad}input       "),
                        &review::input_phrase(k, ty, input_rules.get(k)),
                    );
                }
            }
            for (label, value) in command_details(other) {
                let _ = writeln!(out, "{pad}{label:<11} {}", value.replace('\n', &cont));
            }
        }
    }
    for (k, v) in &s.env {
        out.value(&format!("{pad}env         "), &format!("{k}={v}"));
    }
    if let Some(d) = &s.dir {
        out.value(&format!("{pad}dir         "), d);
    }
    if !s.outputs.is_empty() {
        let _ = writeln!(out, "{pad}outputs     {}", s.outputs.join(", "));
    }
    let mut facts = Vec::new();
    facts.push(format!("timeout {}", step_timeout(s).unwrap_or("none")));
    facts.push(step_retry(s).map_or_else(|| "no retry".to_string(), retry_text));
    if !matches!(s.command, PlanCommand::Approval { .. }) {
        facts.push(if s.idempotent { "idempotent".into() } else { "not idempotent".into() });
    }
    if let Some(e) = &s.estimate {
        facts.push(format!("estimate {e}"));
    }
    out.s.push_str(&pad);
    out.dotted(&facts);
    if let Some(c) = &s.compensation {
        let line = command_line(&c.command).replace('\n', &cont);
        let _ = writeln!(out, "{pad}undo        [{}] {line}", c.command.kind());
        if let Some(sh) = shell_text(&c.command) {
            let _ = writeln!(out, "{pad}            shell {}", sh.replace('\n', &cont));
        }
        if let Some(d) = &c.dir {
            out.value(&format!("{pad}            dir "), d);
        }
        for (k, v) in &c.env {
            out.value(&format!("{pad}            env "), &format!("{k}={v}"));
        }
        let timeout = c.timeout.as_deref().unwrap_or("none");
        let _ = write!(out, "{pad}            ");
        out.dotted(&[format!("timeout {timeout}"), retry_text(&c.retry)]);
        if c.idempotent {
            let _ = writeln!(
                out,
                "{pad}            idempotent: runs again by itself if the engine dies while it runs"
            );
        }
    }
    let on_fail = match s.on_failure {
        _ if s.wave == 0 => Some(FINALLY_FAILURE.to_string()),
        OnFailure::Compensate if s.compensation_chain.is_empty() => {
            Some("compensate (nothing before it to undo)".to_string())
        }
        OnFailure::Compensate => Some(format!("compensate {}", few_then(&s.compensation_chain))),
        OnFailure::Stop => Some("stop, without compensating".into()),
        OnFailure::Continue => Some("continue; its dependents are skipped".into()),
    };
    if let Some(f) = on_fail {
        let _ = writeln!(out, "{pad}on failure  {f}");
    }
}

/// What the engine does when a `finally` step fails, whatever its `on-failure` says: the
/// failure is recorded and the next `finally` step runs. Every view says it with these words.
pub(crate) const FINALLY_FAILURE: &str = "recorded; the next finally step runs";

/// The retry the engine applies to a step, in every view: an approval is never retried (a
/// rejection is an answer), nor is an include (its own steps retry); `None` for those,
/// whatever `retry` the step or `[defaults]` gives.
pub(crate) fn step_retry(s: &PlanStep) -> Option<&RetryPolicy> {
    match s.command {
        PlanCommand::Approval { .. } | PlanCommand::Runbook { .. } => None,
        _ => Some(&s.retry),
    }
}

/// Ids shown in one list of the text plan before "N more": as many as a plan's
/// compensation chain holds.
const SHOWN: usize = crate::plan::CHAIN_SHOWN;

/// A compensation chain in its order, at most [`SHOWN`] ids and a count of the rest: a
/// step's lines stay the same size however deep it is, so the plan is linear in the runbook.
fn few_then(chain: &crate::plan::ChainSummary) -> String {
    let mut s = chain.first.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", then ");
    if chain.count > SHOWN {
        let _ = write!(s, ", then {} more ({})", chain.count - SHOWN, review::MORE_IN_CHAIN);
    }
    s
}

/// The time limit that really applies to a step: an approval waits its own `timeout` (the
/// step's, or `[defaults]`', never applies to it: the engine does not run it as an attempt).
fn step_timeout(s: &PlanStep) -> Option<&str> {
    match &s.command {
        PlanCommand::Approval { timeout, .. } => timeout.as_deref(),
        _ => s.timeout.as_deref(),
    }
}

fn read_kind(kind: ReadKind) -> &'static str {
    match kind {
        ReadKind::SqlScript => "sql-script",
        ReadKind::CaFile => "ca-file",
        ReadKind::ParamsFile => "params-file",
    }
}

fn json_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => shell_quote(s),
        other => other.to_string(),
    }
}

/// The DAG for Graphviz.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_id(&plan.runbook.name));
    let _ = writeln!(out, "  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];");
    for s in &plan.steps {
        let _ = writeln!(out, "  {} [label={}];", dot_id(&s.id), dot_id(&format!("{}\n{}", s.id, s.kind)));
    }
    for s in &plan.steps {
        for n in &s.needs {
            let _ = writeln!(out, "  {} -> {};", dot_id(n), dot_id(&s.id));
        }
    }
    if !plan.finally.is_empty() {
        let _ = writeln!(out, "  subgraph cluster_finally {{\n    label=\"finally\";\n    style=dashed;");
        for s in &plan.finally {
            let _ =
                writeln!(out, "    {} [label={}];", dot_id(&s.id), dot_id(&format!("{}\n{}", s.id, s.kind)));
        }
        let _ = writeln!(out, "  }}");
        for s in &plan.finally {
            for n in &s.needs {
                let _ = writeln!(out, "  {} -> {};", dot_id(n), dot_id(&s.id));
            }
        }
    }
    let _ = writeln!(out, "}}");
    out
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}
