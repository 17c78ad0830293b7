//! The review model: the facts a reviewer reads, computed once for every review format.
//!
//! The markdown document ([`super::markdown`]) and the HTML page ([`super::html`]) print
//! the same facts: the worst case, what undoes what, the points of no return, what asks a
//! human. They are computed here, as [`Phrase`]s: engine words ([`Piece::Lit`]), prose from
//! the runbook ([`Piece::Prose`], marked by the prose rule) and names or values shown as code
//! ([`Piece::Code`], marked by the rule of what is executed, on one line). Each renderer
//! escapes the pieces for its own medium; no phrase holds markup, and no piece of runbook
//! text is drawn as it is (red team adv16t A1, A1b, A3).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::graph::BitSet;
use crate::model::{OnFailure, format_duration};
use crate::plan::{ChainSummary, Plan, PlanCheck, PlanCommand, PlanCompensation, PlanSecret, PlanStep};

/// A piece of a sentence a reviewer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The engine's own words (never text from the runbook).
    Lit(String),
    /// Prose from the runbook (a description): one line, every hidden character, line break
    /// and tab marked ([`crate::shown::prose`]), escaped for the medium.
    Prose(String),
    /// A name or a value (a step id, a parameter, a path): shown as code.
    Code(String),
}

/// A sentence of pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phrase(pub Vec<Piece>);

impl Phrase {
    pub fn lit(s: impl Into<String>) -> Phrase {
        Phrase(vec![Piece::Lit(s.into())])
    }

    pub fn code(s: impl Into<String>) -> Phrase {
        Phrase(vec![Piece::Code(s.into())])
    }

    /// Appends the engine's words.
    pub fn l(mut self, s: impl Into<String>) -> Phrase {
        self.0.push(Piece::Lit(s.into()));
        self
    }

    /// Appends a name shown as code.
    pub fn c(mut self, s: impl Into<String>) -> Phrase {
        self.0.push(Piece::Code(s.into()));
        self
    }

    /// Appends prose from the runbook, read by the prose rule.
    pub fn prose(mut self, s: impl Into<String>) -> Phrase {
        self.0.push(Piece::Prose(s.into()));
        self
    }

    /// Appends another phrase.
    pub fn p(mut self, other: Phrase) -> Phrase {
        self.0.extend(other.0);
        self
    }

    /// Phrases joined by the engine's words `sep`.
    pub fn join(list: impl IntoIterator<Item = Phrase>, sep: &str) -> Phrase {
        let mut out = Phrase::default();
        for (i, p) in list.into_iter().enumerate() {
            if i > 0 {
                out.0.push(Piece::Lit(sep.to_string()));
            }
            out.0.extend(p.0);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub fn path_text(ids: &[String]) -> Phrase {
    Phrase::join(ids.iter().map(Phrase::code), " → ")
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

pub fn checks_bound(checks: &[PlanCheck]) -> Bound {
    checks.iter().try_fold(Duration::ZERO, |acc, c| Some(acc + parse(Some(&c.timeout))?))
}

/// The longest one step can take: every attempt to its timeout (its preconditions first),
/// with the longest wait between attempts (jitter only shortens it).
pub fn step_bound(s: &PlanStep) -> Bound {
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
pub fn total_bound(plan: &Plan) -> (Bound, Bound, Vec<String>) {
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

/// The ancestors of each main step through `needs`, in plan order (needs come first): n²/64
/// words, as the plan's own. Its compensation chain is its ancestors that have a
/// compensation ([`compensable`]), most recent first: the plan holds only a summary of it.
pub fn ancestors(plan: &Plan) -> Vec<BitSet> {
    let index: BTreeMap<&str, usize> =
        plan.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
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
    ancestors
}

/// Whether a failure can undo `s`: it has a compensation, or it is a `runbook` step whose
/// included runbook (at any depth) has steps that can be undone: the engine undoes an
/// include by undoing its runbook (`Runbook::undoes`, i18-fei). Every sentence, column and
/// colour of a review document that says whether a step is undone asks this.
pub fn undoable(s: &PlanStep) -> bool {
    s.compensation.is_some()
        || matches!(&s.command, PlanCommand::Runbook { plan, .. } if plan.steps.iter().any(undoable))
}

/// The main steps that can be undone ([`undoable`]), by plan position.
pub fn compensable(plan: &Plan) -> BitSet {
    let mut set = BitSet::new(plan.steps.len());
    for (i, s) in plan.steps.iter().enumerate() {
        if undoable(s) {
            set.insert(i);
        }
    }
    set
}

/// The longest undo a failure can start: the heaviest compensation chain at worst. The sum
/// over each step's compensable ancestors, from the bitsets (the plan holds a summary of
/// each chain, not the whole list); each compensation's bound is computed once.
pub fn undo_text(plan: &Plan) -> Option<Phrase> {
    let ancestors = ancestors(plan);
    let compensable = compensable(plan);
    let bounds: Vec<Bound> =
        plan.steps.iter().map(|s| s.compensation.as_deref().and_then(compensation_bound)).collect();
    let chain_bound = |i: usize| -> Bound {
        ancestors[i].iter_and(&compensable).try_fold(Duration::ZERO, |acc, j| Some(acc + bounds[j]?))
    };
    let (worst, worst_bound) = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.compensation_chain.is_empty() && !skipped(s))
        .map(|(i, s)| (s, chain_bound(i)))
        // The first of the longest: `max_by_key` keeps the last of equals.
        .rev()
        .max_by_key(|(_, b)| key(*b))?;
    let bound = worst_bound.map_or_else(
        || "no bound (a compensation on the way has no time limit)".to_string(),
        format_duration,
    );
    Some(
        Phrase::lit(format!("{bound}, when "))
            .c(&worst.id)
            .l(" fails: the compensations of ")
            .p(few_chain(&worst.compensation_chain))
            .l(" (every attempt to its timeout)"),
    )
}

pub fn worst_text(plan: &Plan) -> Phrase {
    let (total, path_bound, path) = total_bound(plan);
    let pre = checks_bound(&plan.preconditions);
    let fin = plan.finally.iter().try_fold(Duration::ZERO, |acc, s| Some(acc + step_bound(s)?));
    let show = |b: Bound| b.map_or("no bound".to_string(), format_duration);
    let head = match total {
        Some(t) => Phrase::lit(format_duration(t)),
        None => {
            let unbounded: Vec<Phrase> = plan
                .steps
                .iter()
                .chain(plan.finally.iter())
                .filter(|s| step_bound(s).is_none())
                .map(|s| Phrase::code(&s.id))
                .collect();
            Phrase::lit("no bound (no time limit on ").p(few_shown(&unbounded)).l(")")
        }
    };
    head.l(format!(": preconditions {}, then the critical path at worst {} (", show(pre), show(path_bound)))
        .p(if path.is_empty() { Phrase::lit("no steps") } else { path_text(&path) })
        .l("), then ")
        .c("finally")
        .l(format!(
            " {} (every attempt to its timeout, the longest waits between attempts, approvals to their own timeout)",
            show(fin)
        ))
}

// ----- risks ---------------------------------------------------------------------------

/// Whether a command may change something outside the engine. The engine cannot see into
/// a script, so `run` and `cmd` always may; approvals and notifications do not (a message
/// sent is not undone, and changes nothing); read-only SQL and HTTP GET/HEAD/OPTIONS do not.
pub fn changes(c: &PlanCommand) -> bool {
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
pub fn skipped(s: &PlanStep) -> bool {
    s.when.as_ref().is_some_and(|w| w.value == Some(false))
}

/// What a step's failure does, in a few words.
pub fn on_failure_short(s: &PlanStep) -> &'static str {
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
pub fn on_failure_long(s: &PlanStep) -> Phrase {
    if s.wave == 0 {
        return Phrase::lit("recorded; the next ")
            .c("finally")
            .l(" step runs all the same, and the run's status does not change");
    }
    match s.on_failure {
        OnFailure::Compensate if s.compensation_chain.is_empty() => {
            Phrase::lit("compensate: nothing before it can be undone; no new step starts")
        }
        OnFailure::Compensate => Phrase::lit("compensate: no new step starts, and the compensations of ")
            .p(few_then(&s.compensation_chain))
            .l(" run, in that order"),
        OnFailure::Stop => Phrase::lit("stop: no new step starts, and nothing is undone"),
        OnFailure::Continue => {
            Phrase::lit("continue: recorded, its dependents are skipped, the other steps go on")
        }
    }
}

pub struct Risks {
    /// Main and finally steps that change something and have no compensation.
    pub irreversible: Vec<String>,
    /// Steps (and compensations) not declared idempotent.
    pub not_idempotent: Vec<Phrase>,
    /// The points of no return.
    /// The points of no return, each with what it leaves as it is (at most [`SHOWN`] ids
    /// and a count of the rest: one point per branch, each of up to every step before it).
    pub no_return: Vec<(String, Phrase)>,
    /// For each main step: what its failure leaves as it is (completed changes not undone),
    /// as a table cell's list.
    pub kept: BTreeMap<String, Phrase>,
    /// Approval steps and their rules.
    pub approvals: Vec<(String, Phrase)>,
    /// Steps that ask first, and their questions.
    pub confirmations: Vec<(String, String)>,
    /// Whether any main step has a compensation.
    pub any_compensable: bool,
}

impl Risks {
    pub fn of(plan: &Plan) -> Risks {
        let index: BTreeMap<&str, usize> =
            plan.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        // Ancestors, in plan order (needs come first): n²/64 words, as the plan's chains.
        let n = plan.steps.len();
        let ancestors = ancestors(plan);
        let compensable_set = compensable(plan);
        // What a step's failure undoes: its compensable ancestors when its policy is
        // `compensate` (its whole chain, of which the plan holds a summary).
        let undoes = |i: usize| -> BitSet {
            let mut set = BitSet::new(n);
            if plan.steps[i].on_failure == OnFailure::Compensate
                && !plan.steps[i].compensation_chain.is_empty()
            {
                for k in ancestors[i].iter_and(&compensable_set) {
                    set.insert(k);
                }
            }
            set
        };
        // What a failure after each step may still undo: the compensations that the failure
        // of any of its descendants runs (children come after their needs in plan order, so
        // one pass backwards; n²/64 words, as the ancestors).
        let own: Vec<BitSet> =
            (0..n).map(|i| if skipped(&plan.steps[i]) { BitSet::new(n) } else { undoes(i) }).collect();
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
        let compensable = |j: usize| undoable(&plan.steps[j]);
        let mut no_return = Vec::new();
        let mut kept = BTreeMap::new();
        let mut past = BTreeSet::new();
        for (i, s) in plan.steps.iter().enumerate() {
            let undone = undoes(i);
            let left: Vec<usize> = ancestors[i]
                .iter()
                .filter(|&j| {
                    let a = &plan.steps[j];
                    changes(&a.command) && !skipped(a) && !undone.contains(j)
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
                    let shown: Vec<String> =
                        lost.iter().rev().take(SHOWN).map(|&j| plan.steps[j].id.clone()).collect();
                    no_return.push((s.id.clone(), few_of(&shown, lost.len())));
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
                not_idempotent.push(Phrase::code(&s.id));
            }
            if let Some(c) = &s.compensation
                && !c.idempotent
            {
                not_idempotent.push(Phrase::code(&s.id).l("'s compensation"));
            }
            if changes(&s.command) && !undoable(s) {
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
            any_compensable: plan.steps.iter().any(undoable),
        }
    }
}

/// Every secret a run of the plan reads, in the order shown: the runbook's own (with `""`),
/// then each included runbook's at any depth, with the id of the step that includes it
/// (`prepare`, `prepare.nested`), whether that step runs or is skipped: a secret with a
/// `command` source is a command that runs, so a document that lists the runbook's own
/// secrets only would hide it.
pub fn secrets(plan: &Plan) -> Vec<(String, &PlanSecret)> {
    let mut out: Vec<(String, &PlanSecret)> = plan.secrets.iter().map(|s| (String::new(), s)).collect();
    included_secrets(plan, "", &mut out);
    out
}

fn included_secrets<'a>(plan: &'a Plan, prefix: &str, out: &mut Vec<(String, &'a PlanSecret)>) {
    for s in plan.steps.iter().chain(plan.finally.iter()) {
        if let PlanCommand::Runbook { plan, .. } = &s.command {
            let id = format!("{prefix}{}", s.id);
            out.extend(plan.secrets.iter().map(|secret| (id.clone(), secret)));
            included_secrets(plan, &format!("{id}."), out);
        }
    }
}

/// What asks a human, included runbooks' steps too (under `include_step.`).
pub fn asks(
    plan: &Plan,
    prefix: &str,
    approvals: &mut Vec<(String, Phrase)>,
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

pub fn approval_text(c: &PlanCommand) -> Phrase {
    let PlanCommand::Approval {
        inputs,
        input_rules,
        approvers,
        min_approvals,
        allow_self_approval,
        timeout,
        ..
    } = c
    else {
        return Phrase::default();
    };
    let mut s = Phrase::lit(format!("{min_approvals} approval(s) from "));
    // Each approver is its own code value: `alice, bob` is one name, and a line break in a
    // name is marked (red team adv16t A3).
    s = if approvers.is_empty() {
        s.l("any operator")
    } else {
        s.p(Phrase::join(approvers.iter().map(Phrase::code), ", "))
    };
    if !allow_self_approval {
        s = s.l(", not the operator who started the run");
    }
    s = match timeout {
        Some(t) => s.l(format!("; waits up to {t}, then the step fails")),
        None => s.l("; waits without a time limit"),
    };
    if !inputs.is_empty() {
        let list = inputs.iter().map(|(k, ty)| input_phrase(k, ty, input_rules.get(k)));
        s = s.l("; inputs: ").p(Phrase::join(list, ", "));
    }
    s
}

/// An approval input as a reviewer reads it, in every document (the text plan too): its
/// name, type, default, allowed values and pattern as code, its description as prose.
pub fn input_phrase(k: &str, ty: &crate::model::ParamType, rule: Option<&crate::plan::PlanInput>) -> Phrase {
    let value =
        |v: &crate::model::ParamValue| serde_json::to_value(v).map(|j| j.to_string()).unwrap_or_default();
    let mut p = Phrase::code(k).l(format!(" ({}", ty.as_str()));
    p = match rule.and_then(|r| r.default.as_ref()) {
        Some(d) => p.l(", optional, default ").c(value(d)),
        None => p.l(", required"),
    };
    if let Some(allowed) = rule.and_then(|r| r.allowed.as_ref()) {
        let list = allowed.iter().map(|v| Phrase::code(value(v)));
        p = p.l(", one of ").p(Phrase::join(list, ", "));
    }
    if let Some(pattern) = rule.and_then(|r| r.pattern.as_ref()) {
        p = p.l(", matching ").c(pattern.clone());
    }
    if let Some(d) = rule.and_then(|r| r.description.as_ref()) {
        p = p.l(": ").prose(d.clone());
    }
    p.l(")")
}

/// Ids shown in a table cell before "and N more": as many as a plan's compensation chain
/// holds.
pub const SHOWN: usize = crate::plan::CHAIN_SHOWN;

/// A table cell's list of `total` ids of which `first` are the first ones: at most
/// [`SHOWN`], then how many more (a long list would make the table quadratic in the number
/// of steps).
fn few_of(first: &[String], total: usize) -> Phrase {
    if total <= SHOWN {
        return ids(first);
    }
    ids(&first[..SHOWN.min(first.len())]).l(format!(" and {} more", total - SHOWN))
}

/// Phrases joined, at most [`SHOWN`] and a count of the rest.
pub fn few_shown(list: &[Phrase]) -> Phrase {
    let s = Phrase::join(list.iter().take(SHOWN).cloned(), ", ");
    if list.len() > SHOWN { s.l(format!(" and {} more", list.len() - SHOWN)) } else { s }
}

/// A compensation chain as a table cell's list: [`few`] of its summary.
pub fn few_chain(chain: &ChainSummary) -> Phrase {
    few_of(&chain.first, chain.count)
}

/// A compensation chain in its order, at most [`SHOWN`] ids and a count of the rest: a
/// step's section stays the same size however deep it is.
pub fn few_then(chain: &ChainSummary) -> Phrase {
    let s = Phrase::join(chain.first.iter().take(SHOWN).map(Phrase::code), ", then ");
    if chain.count > SHOWN {
        s.l(format!(", then {} more ({})", chain.count - SHOWN, MORE_IN_CHAIN))
    } else {
        s
    }
}

/// What the rest of a long compensation chain is, after its first [`SHOWN`] ids: the plan
/// counts them and does not list them (a plan is linear in its runbook).
pub const MORE_IN_CHAIN: &str =
    "the other steps before it, that it needs directly or not, with a compensation";

pub fn ids(list: &[String]) -> Phrase {
    Phrase::join(list.iter().map(Phrase::code), ", ")
}

/// The colour class of a step in a graph, as the mermaid graph and the HTML page draw it.
pub fn node_class(s: &PlanStep) -> Option<&'static str> {
    match &s.command {
        PlanCommand::Approval { .. } => Some("approval"),
        _ if undoable(s) => Some("compensable"),
        c if changes(c) => Some("irreversible"),
        _ => None,
    }
}

/// The exact text a reviewer reads for an HTTP request: the request line, the headers (secret
/// values as placeholders), a blank line and the body.
pub fn http_request_text(
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&serde_json::Value>,
) -> String {
    let mut req = format!("{method} {url}\n");
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push('\n');
    }
    if let Some(b) = body {
        req.push('\n');
        req.push_str(&b.as_str().map_or_else(|| b.to_string(), str::to_string));
    }
    req
}

/// The exact text a notification posts: its `text` alone, or the whole body as JSON.
pub fn notify_text(body: &serde_json::Value) -> String {
    match body.get("text").and_then(serde_json::Value::as_str) {
        Some(t) if body.as_object().is_some_and(|o| o.len() == 1) => t.to_string(),
        _ => serde_json::to_string_pretty(body).unwrap_or_default(),
    }
}
