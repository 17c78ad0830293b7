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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use crate::graph::BitSet;
use crate::model::{OnFailure, format_duration};
use crate::plan::{Plan, PlanCheck, PlanCommand, PlanCompensation, PlanStep};

use super::{argv_text, body_text, read_kind, retry_text, source_text};

/// The plan as a review document (`plan --format markdown`).
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let rb = &plan.runbook;
    let title = rb.title.as_deref().map(|t| format!(": {}", escape(t))).unwrap_or_default();
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
        let _ = write!(est, "; critical path {} estimated {e}", path_text(&cp.steps));
        if !cp.unestimated.is_empty() {
            let _ = write!(est, " ({} step(s) without estimate)", cp.unestimated.len());
        }
    }
    let _ = writeln!(out, "- **Estimate:** {est}");
    let _ = writeln!(out, "- **Worst case:** {}", worst_text(plan));
    if let Some(undo) = undo_text(plan) {
        let _ = writeln!(out, "- **Undoing at worst:** {undo}");
    }
    let _ = writeln!(
        out,
        "- **Parallelism:** {}",
        rb.max_parallel.map_or("number of CPUs".to_string(), |n| format!("{n} steps at a time"))
    );
    if plan.secrets.is_empty() {
        let _ = writeln!(out, "- **Secrets:** none");
    } else {
        let list: Vec<String> = plan
            .secrets
            .iter()
            .map(|s| format!("{} ({})", code(&s.name), escape(&source_text(&s.source))))
            .collect();
        let _ = writeln!(out, "- **Secrets** (names only): {}", list.join(", "));
    }
    if risks.approvals.is_empty() {
        let _ = writeln!(out, "- **Approvals:** none");
    } else {
        let _ = writeln!(out, "- **Approvals:**");
        for (id, text) in &risks.approvals {
            let _ = writeln!(out, "  - {}: {text}", code(id));
        }
    }
    if risks.confirmations.is_empty() {
        let _ = writeln!(out, "- **Confirmations:** none");
    } else {
        let _ = writeln!(out, "- **Confirmations** (the operator answers at the terminal):");
        for (id, text) in &risks.confirmations {
            let _ = writeln!(out, "  - {}: {}", code(id), escape(text));
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

fn path_text(ids: &[String]) -> String {
    ids.iter().map(|s| code(s)).collect::<Vec<_>>().join(" → ")
}

fn value_text(v: &crate::model::ParamValue) -> String {
    let json = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    match json.as_str() {
        Some(s) if !s.chars().any(crate::shown::is_hidden) => s.to_string(),
        _ => json.to_string(),
    }
}

// ----- worst case ----------------------------------------------------------------------

/// A bound on a duration: `None` when there is none (a step without a timeout).
type Bound = Option<Duration>;

fn add(a: Bound, b: Bound) -> Bound {
    Some(a? + b?)
}

/// Longer first: no bound is longer than any bound.
fn key(b: Bound) -> (bool, Duration) {
    (b.is_none(), b.unwrap_or_default())
}

fn parse(d: Option<&str>) -> Bound {
    humantime::parse_duration(d?).ok()
}

fn checks_bound(checks: &[PlanCheck]) -> Bound {
    checks.iter().try_fold(Duration::ZERO, |acc, c| Some(acc + parse(Some(&c.timeout))?))
}

/// The longest one step can take: every attempt to its timeout (its preconditions first),
/// with the longest wait between attempts (jitter only shortens it).
fn step_bound(s: &PlanStep) -> Bound {
    if skipped(s) {
        return Some(Duration::ZERO);
    }
    let pre = checks_bound(&s.preconditions);
    match &s.command {
        PlanCommand::Approval { timeout, .. } => add(pre, parse(timeout.as_deref())),
        PlanCommand::Runbook { plan, .. } => add(pre, total_bound(plan).0),
        PlanCommand::Http { request_timeout, .. } => {
            let one = parse(s.timeout.as_deref()).or(parse(request_timeout.as_deref()));
            attempts_bound(s, add(pre, one))
        }
        _ => attempts_bound(s, add(pre, parse(s.timeout.as_deref()))),
    }
}

fn attempts_bound(s: &PlanStep, one: Bound) -> Bound {
    let n = s.retry.attempts.max(1);
    let waits: Duration = (1..n).map(|k| crate::retry::delay(&s.retry, k, 1.0)).sum();
    Some(one? * n + waits)
}

/// The slowest chain of needs at worst, its bound, and the whole run's bound (preconditions,
/// that chain, then the `finally` steps one after the other).
fn total_bound(plan: &Plan) -> (Bound, Bound, Vec<String>) {
    let index: BTreeMap<&str, usize> =
        plan.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut finish: Vec<Bound> = Vec::with_capacity(plan.steps.len());
    let mut prev: Vec<Option<usize>> = Vec::with_capacity(plan.steps.len());
    // Plan steps are in wave order: every need comes before the step.
    for s in &plan.steps {
        let pick = s
            .needs
            .iter()
            .filter_map(|n| index.get(n.as_str()).copied())
            .filter(|&j| j < finish.len())
            .max_by_key(|&j| key(finish[j]));
        let base = pick.map_or(Some(Duration::ZERO), |j| finish[j]);
        finish.push(add(base, step_bound(s)));
        prev.push(pick);
    }
    let mut path = Vec::new();
    let mut end = (0..finish.len()).rev().max_by_key(|&i| key(finish[i]));
    let path_bound = end.map_or(Some(Duration::ZERO), |i| finish[i]);
    while let Some(i) = end {
        path.push(plan.steps[i].id.clone());
        end = prev[i];
    }
    path.reverse();
    let fin = plan.finally.iter().try_fold(Duration::ZERO, |acc, s| Some(acc + step_bound(s)?));
    let total = add(add(checks_bound(&plan.preconditions), path_bound), fin);
    (total, path_bound, path)
}

/// The longest a compensation can take: every attempt to its timeout, the longest waits.
fn compensation_bound(c: &PlanCompensation) -> Bound {
    let n = c.retry.attempts.max(1);
    let waits: Duration = (1..n).map(|k| crate::retry::delay(&c.retry, k, 1.0)).sum();
    Some(parse(c.timeout.as_deref())? * n + waits)
}

/// The longest undo a failure can start: the heaviest compensation chain at worst.
fn undo_text(plan: &Plan) -> Option<String> {
    let by_id: BTreeMap<&str, &PlanStep> = plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let chain_bound = |s: &PlanStep| -> Bound {
        s.compensation_chain.iter().try_fold(Duration::ZERO, |acc, id| {
            let c = by_id.get(id.as_str()).and_then(|a| a.compensation.as_deref())?;
            Some(acc + compensation_bound(c)?)
        })
    };
    let worst = plan
        .steps
        .iter()
        .filter(|s| !s.compensation_chain.is_empty() && !skipped(s))
        // The first of the longest: `max_by_key` keeps the last of equals.
        .rev()
        .max_by_key(|s| key(chain_bound(s)))?;
    let bound = chain_bound(worst).map_or_else(
        || "no bound (a compensation on the way has no time limit)".to_string(),
        format_duration,
    );
    Some(format!(
        "{bound}, when {} fails: the compensations of {} (every attempt to its timeout)",
        code(&worst.id),
        few(&worst.compensation_chain)
    ))
}

fn worst_text(plan: &Plan) -> String {
    let (total, path_bound, path) = total_bound(plan);
    let pre = checks_bound(&plan.preconditions);
    let fin = plan.finally.iter().try_fold(Duration::ZERO, |acc, s| Some(acc + step_bound(s)?));
    let show = |b: Bound| b.map_or("no bound".to_string(), format_duration);
    let head = match total {
        Some(t) => format_duration(t),
        None => {
            let unbounded: Vec<String> = plan
                .steps
                .iter()
                .chain(plan.finally.iter())
                .filter(|s| step_bound(s).is_none())
                .map(|s| code(&s.id))
                .collect();
            format!("no bound (no time limit on {})", few_shown(&unbounded))
        }
    };
    format!(
        "{head}: preconditions {}, then the critical path at worst {} ({}), then `finally` {} \
         (every attempt to its timeout, the longest waits between attempts, approvals to their own timeout)",
        show(pre),
        show(path_bound),
        if path.is_empty() { "no steps".to_string() } else { path_text(&path) },
        show(fin)
    )
}

// ----- risks ---------------------------------------------------------------------------

/// Whether a command may change something outside the engine. The engine cannot see into
/// a script, so `run` and `cmd` always may; approvals and notifications do not (a message
/// sent is not undone, and changes nothing); read-only SQL and HTTP GET/HEAD/OPTIONS do not.
fn changes(c: &PlanCommand) -> bool {
    match c {
        PlanCommand::Run { .. } | PlanCommand::Cmd(_) => true,
        PlanCommand::Http { method, .. } => !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS"),
        PlanCommand::Sql { read_only, .. } => !read_only,
        PlanCommand::Approval { .. } | PlanCommand::Notify { .. } => false,
        PlanCommand::Runbook { plan, .. } => {
            plan.steps.iter().chain(plan.finally.iter()).any(|s| changes(&s.command))
        }
    }
}

/// Whether a step is skipped whatever happens: its `when` depends only on parameters and
/// is false.
fn skipped(s: &PlanStep) -> bool {
    s.when.as_ref().is_some_and(|w| w.value == Some(false))
}

/// What a step's failure does, in a few words.
fn on_failure_short(s: &PlanStep) -> &'static str {
    if s.wave == 0 {
        return super::FINALLY_FAILURE;
    }
    match s.on_failure {
        OnFailure::Compensate => "compensate",
        OnFailure::Stop => "stop",
        OnFailure::Continue => "continue",
    }
}

/// What a step's failure does, in full.
fn on_failure_long(s: &PlanStep) -> String {
    if s.wave == 0 {
        return "recorded; the next `finally` step runs all the same, and the run's status does not change"
            .into();
    }
    match s.on_failure {
        OnFailure::Compensate if s.compensation_chain.is_empty() => {
            "compensate: nothing before it can be undone; no new step starts".into()
        }
        OnFailure::Compensate => format!(
            "compensate: no new step starts, and the compensations of {} run, in that order",
            few_then(&s.compensation_chain)
        ),
        OnFailure::Stop => "stop: no new step starts, and nothing is undone".into(),
        OnFailure::Continue => "continue: recorded, its dependents are skipped, the other steps go on".into(),
    }
}

/// The facts of the risk section, as the plan diff compares them ([`super::diff`]): the same
/// computation as the review document's, so the two never disagree.
pub(crate) struct RiskFacts {
    /// Steps that change something and have no compensation.
    pub irreversible: Vec<String>,
    /// Steps and compensations not declared idempotent, as markdown code spans.
    pub not_idempotent: Vec<String>,
    /// The points of no return.
    pub no_return: Vec<String>,
    /// Approval steps (included runbooks' under `include_step.`) and their rules.
    pub approvals: Vec<(String, String)>,
    /// Steps that ask first, and their questions.
    pub confirmations: Vec<(String, String)>,
    /// The whole run at worst (`None`: no bound).
    pub worst: Option<Duration>,
}

/// The risk facts of a plan.
pub(crate) fn risk_facts(plan: &Plan) -> RiskFacts {
    let r = Risks::of(plan);
    RiskFacts {
        irreversible: r.irreversible,
        not_idempotent: r.not_idempotent,
        no_return: r.no_return.into_iter().map(|(id, _)| id).collect(),
        approvals: r.approvals,
        confirmations: r.confirmations,
        worst: total_bound(plan).0,
    }
}

struct Risks {
    /// Main and finally steps that change something and have no compensation.
    irreversible: Vec<String>,
    /// Steps (and compensations) not declared idempotent, as markdown.
    not_idempotent: Vec<String>,
    /// The points of no return.
    no_return: Vec<(String, Vec<String>)>,
    /// For each main step: what its failure leaves as it is (completed changes not undone),
    /// as a table cell's list.
    kept: BTreeMap<String, String>,
    /// Approval steps and their rules.
    approvals: Vec<(String, String)>,
    /// Steps that ask first, and their questions.
    confirmations: Vec<(String, String)>,
    /// Whether any main step has a compensation.
    any_compensable: bool,
}

impl Risks {
    fn of(plan: &Plan) -> Risks {
        let index: BTreeMap<&str, usize> =
            plan.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        // Ancestors, in plan order (needs come first): n²/64 words, as the plan's chains.
        let n = plan.steps.len();
        let mut ancestors: Vec<BitSet> = Vec::with_capacity(n);
        for s in &plan.steps {
            let mut set = BitSet::new(n);
            for need in &s.needs {
                if let Some(&j) = index.get(need.as_str())
                    && j < ancestors.len()
                {
                    set.insert(j);
                    let (done, _) = ancestors.split_at(j + 1);
                    set.union_with(&done[j]);
                }
            }
            ancestors.push(set);
        }
        // What a failure after each step may still undo: the compensations that the failure
        // of any of its descendants runs (children come after their needs in plan order, so
        // one pass backwards; n²/64 words, as the ancestors).
        let own: Vec<BitSet> = plan
            .steps
            .iter()
            .map(|s| {
                let mut set = BitSet::new(n);
                if s.on_failure == OnFailure::Compensate && !skipped(s) {
                    for id in &s.compensation_chain {
                        if let Some(&k) = index.get(id.as_str()) {
                            set.insert(k);
                        }
                    }
                }
                set
            })
            .collect();
        let mut undone_later: Vec<BitSet> = (0..n).map(|_| BitSet::new(n)).collect();
        for i in (0..n).rev() {
            let mut after_need = undone_later[i].clone();
            after_need.union_with(&own[i]);
            for need in &plan.steps[i].needs {
                if let Some(&p) = index.get(need.as_str())
                    && p < i
                {
                    undone_later[p].union_with(&after_need);
                }
            }
        }
        let compensable = |j: usize| plan.steps[j].compensation.is_some();
        let mut no_return = Vec::new();
        let mut kept = BTreeMap::new();
        let mut past = BTreeSet::new();
        for (i, s) in plan.steps.iter().enumerate() {
            let undone: BTreeSet<&str> = s.compensation_chain.iter().map(String::as_str).collect();
            let left: Vec<usize> = ancestors[i]
                .iter()
                .filter(|&j| {
                    let a = &plan.steps[j];
                    changes(&a.command) && !skipped(a) && !undone.contains(a.id.as_str())
                })
                .collect();
            let shown: Vec<String> =
                left.iter().rev().take(SHOWN + 1).map(|&j| plan.steps[j].id.clone()).collect();
            kept.insert(s.id.clone(), few_of(&shown, left.len()));
            if skipped(s) {
                continue;
            }
            // A point of no return: its failure undoes nothing although work before it could
            // be undone, and no failure after it undoes that work either (from there on,
            // every failure keeps it). Only the first on each path is named.
            let lost: Vec<usize> =
                left.iter().copied().filter(|&j| compensable(j) && !undone_later[i].contains(j)).collect();
            if s.on_failure != OnFailure::Compensate && !lost.is_empty() {
                if !ancestors[i].iter().any(|j| past.contains(&j)) {
                    no_return
                        .push((s.id.clone(), lost.iter().rev().map(|&j| plan.steps[j].id.clone()).collect()));
                }
                past.insert(i);
            }
        }
        let mut approvals = Vec::new();
        let mut confirmations = Vec::new();
        let mut not_idempotent = Vec::new();
        let mut irreversible = Vec::new();
        asks(plan, "", &mut approvals, &mut confirmations);
        for s in plan.steps.iter().chain(plan.finally.iter()).filter(|s| !skipped(s)) {
            let acts = !matches!(s.command, PlanCommand::Approval { .. });
            if acts && !s.idempotent {
                not_idempotent.push(code(&s.id));
            }
            if let Some(c) = &s.compensation
                && !c.idempotent
            {
                not_idempotent.push(format!("{}'s compensation", code(&s.id)));
            }
            if changes(&s.command) && s.compensation.is_none() {
                irreversible.push(s.id.clone());
            }
        }
        Risks {
            irreversible,
            not_idempotent,
            no_return,
            kept,
            approvals,
            confirmations,
            any_compensable: plan.steps.iter().any(|s| s.compensation.is_some()),
        }
    }
}

/// What asks a human, included runbooks' steps too (under `include_step.`).
fn asks(
    plan: &Plan,
    prefix: &str,
    approvals: &mut Vec<(String, String)>,
    confirmations: &mut Vec<(String, String)>,
) {
    for s in plan.steps.iter().chain(plan.finally.iter()).filter(|s| !skipped(s)) {
        let id = format!("{prefix}{}", s.id);
        if let Some(c) = &s.confirm {
            confirmations.push((id.clone(), c.clone()));
        }
        match &s.command {
            PlanCommand::Approval { .. } => approvals.push((id, approval_text(&s.command))),
            PlanCommand::Runbook { plan, .. } => asks(plan, &format!("{id}."), approvals, confirmations),
            _ => {}
        }
    }
}

fn approval_text(c: &PlanCommand) -> String {
    let PlanCommand::Approval { inputs, approvers, min_approvals, allow_self_approval, timeout, .. } = c
    else {
        return String::new();
    };
    let who = if approvers.is_empty() { "any operator".to_string() } else { escape(&approvers.join(", ")) };
    let mut s = format!("{min_approvals} approval(s) from {who}");
    if !allow_self_approval {
        s.push_str(", not the operator who started the run");
    }
    match timeout {
        Some(t) => {
            let _ = write!(s, "; waits up to {t}, then the step fails");
        }
        None => s.push_str("; waits without a time limit"),
    }
    if !inputs.is_empty() {
        let list: Vec<String> =
            inputs.iter().map(|(k, ty)| format!("{} ({})", code(k), ty.as_str())).collect();
        let _ = write!(s, "; required inputs: {}", list.join(", "));
    }
    s
}

/// A table cell's list: the first thirty, then how many more (a long chain would make the
/// table quadratic in the number of steps; the step's own section lists them all).
fn few(list: &[String]) -> String {
    few_of(list, list.len())
}

/// Ids shown in a table cell before "and N more".
const SHOWN: usize = 30;

/// `few` of a list of `total` ids of which `first` are the first ones.
fn few_of(first: &[String], total: usize) -> String {
    if total <= SHOWN {
        return ids(first);
    }
    format!("{} and {} more", ids(&first[..SHOWN.min(first.len())]), total - SHOWN)
}

/// Markdown items already shown, joined, at most [`SHOWN`] and a count of the rest.
fn few_shown(list: &[String]) -> String {
    let mut s = list.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > SHOWN {
        let _ = write!(s, " and {} more", list.len() - SHOWN);
    }
    s
}

/// A compensation chain in its order, at most [`SHOWN`] ids and a count of the rest (the
/// JSON plan holds it whole): a step's section stays the same size however deep it is.
fn few_then(chain: &[String]) -> String {
    let mut s = chain.iter().take(SHOWN).map(|c| code(c)).collect::<Vec<_>>().join(", then ");
    if chain.len() > SHOWN {
        let _ = write!(s, ", then {} more (the JSON plan lists them all)", chain.len() - SHOWN);
    }
    s
}

fn ids(list: &[String]) -> String {
    list.iter().map(|s| code(s)).collect::<Vec<_>>().join(", ")
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
            few_shown(&risks.not_idempotent)
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
            ids(lost)
        );
    } else {
        let _ = writeln!(out, "- **Points of no return** (one on each branch):");
        for (id, lost) in &risks.no_return {
            let _ = writeln!(
                out,
                "  - {}: from there on, a failure stops instead of undoing {}",
                code(id),
                ids(lost)
            );
        }
    }
    let _ = writeln!(out, "\n### What a failure at each wave undoes\n");
    let _ = writeln!(out, "| wave | step | if it fails | undoes, in order | left as it is |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for s in plan.steps.iter().filter(|s| !skipped(s)) {
        let undoes =
            if s.compensation_chain.is_empty() { "nothing".to_string() } else { few(&s.compensation_chain) };
        let kept = risks.kept.get(&s.id).cloned().unwrap_or_default();
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
        let class = match (&s.command, &s.compensation) {
            (PlanCommand::Approval { .. }, _) => "approval",
            (_, Some(_)) => "compensable",
            (c, None) if changes(c) => "irreversible",
            _ => continue,
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
    for (k, v) in &c.env {
        let _ = writeln!(out, "  - env {} = {}", code(k), code(v));
    }
    if let Some(m) = &c.message {
        let _ = writeln!(out, "  - if it fails: {}", escape(m));
    }
    out.push('\n');
}

fn step_section(out: &mut String, s: &PlanStep, level: &str, prefix: &str) {
    let title = s.title.as_deref().map(|t| format!(": {}", escape(t))).unwrap_or_default();
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
    let _ = writeln!(out, "- **On failure:** {}", on_failure_long(s));
    if !s.preconditions.is_empty() {
        let _ = writeln!(out, "\n**Preconditions** (checked right before it; a failure fails the step):\n");
        for c in &s.preconditions {
            check_item(out, c, "");
        }
    }
    if let Some(c) = &s.confirm {
        let _ = writeln!(out, "\n**Asks first** (the step runs only on a yes):\n");
        out.push_str(&fenced("text", c, ""));
    }
    let _ = writeln!(out, "\n**Runs:**\n");
    match &s.command {
        PlanCommand::Runbook { file, params, plan } => {
            let list: Vec<String> =
                params.iter().map(|(k, v)| format!("{} = {}", code(k), code(&v.to_string()))).collect();
            let _ = writeln!(
                out,
                "- the runbook {} with {}",
                code(file),
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
            let mut req = format!("{method} {url}\n");
            for (k, v) in headers {
                let _ = writeln!(req, "{k}: {v}");
            }
            if let Some(b) = body {
                let _ = write!(req, "\n{}", b.as_str().map_or_else(|| b.to_string(), str::to_string));
            }
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
            let _ = writeln!(out, "{indent}- {}", approval_text(c));
        }
        PlanCommand::Notify { webhook, body, required } => {
            let text = match body.get("text").and_then(serde_json::Value::as_str) {
                Some(t) if body.as_object().is_some_and(|o| o.len() == 1) => t.to_string(),
                _ => serde_json::to_string_pretty(body).unwrap_or_default(),
            };
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
    if !s.contains('`') && !s.starts_with(' ') && !s.chars().any(crate::shown::is_hidden) {
        return format!("`{s}`");
    }
    let marked = crate::shown::marked(s);
    let note = if marked.replaced.is_empty() {
        String::new()
    } else {
        format!(" (invisible characters shown as escapes: {})", marked.names())
    };
    let s = crate::shown::one_line(s);
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
    let marked = crate::shown::marked(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '$' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("<br>"),
            '\t' => out.push('\t'),
            c if crate::shown::is_hidden(c) => out.push_str(&crate::shown::one_line(&c.to_string())),
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
        let line = escape(line.trim_start());
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
