//! Plan: a validated runbook plus parameter values to the document a reviewer reads.
//!
//! The plan is the dry run. Building it executes nothing: templates are rendered with
//! secrets shown as `<secret:NAME>`, outputs of earlier steps as `<output:step.name>` and run
//! values as `<run.id>`. [`Plan`] is serialized as the stable JSON document of `plan --format
//! json` and `-o plan.json`; the text, markdown and dot views in [`crate::render`] are built
//! from the same value, so every view shows the same facts.

use std::collections::BTreeMap;

use crate::FastMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::diagnostic::{Code, Diagnostic, Source};
use crate::graph::{BitSet, Graph};
use crate::model::*;
use crate::params;
use crate::template::{self, Mode, TemplateError};

/// The version of the plan document. Fields are only added within a version. Version 2:
/// `compensation_chain` is a [`ChainSummary`] (a count and the first ids), no longer the
/// whole list (n²/2 ids on a chain of n compensable steps).
pub const FORMAT_VERSION: u32 = 2;

/// The most ids a [`ChainSummary`] holds: as many as a review document's table cell shows.
pub const CHAIN_SHOWN: usize = 30;

/// The plan document.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Version of this document's shape.
    pub format_version: u32,
    /// The engine that made the plan.
    pub engine: EngineInfo,
    /// The runbook.
    pub runbook: PlanRunbook,
    /// Parameter values (parameters are never secret).
    pub params: BTreeMap<String, ParamValue>,
    /// Declared secrets: names and sources, never values.
    pub secrets: Vec<PlanSecret>,
    /// Every runbook file involved, with its SHA-256.
    pub files: Vec<FileHash>,
    /// Every other file the run will read (SQL scripts, CA files), with its SHA-256 and, for
    /// a SQL script, its text: what runs is what was reviewed. The core reads no file: the
    /// caller fills this in ([`reads_entry`]) before the plan is shown or written.
    pub reads: Vec<PlanRead>,
    /// Checks run before any step.
    pub preconditions: Vec<PlanCheck>,
    /// Step ids by wave: the steps of a wave can run in parallel once the previous waves are done.
    pub waves: Vec<Vec<String>>,
    /// Main steps in execution order.
    pub steps: Vec<PlanStep>,
    /// Steps that always run last.
    pub finally: Vec<PlanStep>,
    /// Escalation timers.
    pub escalations: Vec<PlanEscalation>,
    /// The longest chain of needs, by estimate.
    pub critical_path: CriticalPath,
}

/// Which engine made a plan.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    /// Always `runbook`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The runbook's identity in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRunbook {
    /// Machine name.
    pub name: String,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Path as given.
    pub file: String,
    /// Expected duration.
    pub estimate: Option<String>,
    /// Parallelism cap (`null`: number of CPUs).
    pub max_parallel: Option<u32>,
    /// Rendered lock name.
    pub lock: Option<String>,
}

/// A secret as shown in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSecret {
    /// Name.
    pub name: String,
    /// Where the value will be read from.
    pub source: SecretSource,
}

/// What an approval input accepts besides its type, as shown in a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanInput {
    /// The value when the approver gives none (`null`: the input is required).
    pub default: Option<ParamValue>,
    /// The allowed values (`null`: any value of its type).
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<ParamValue>>,
    /// The regular expression a string must match.
    pub pattern: Option<String>,
    /// What it means.
    pub description: Option<String>,
}

/// A file and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileHash {
    /// Path as given or resolved.
    pub path: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A file a run reads besides runbooks, as pinned in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanRead {
    /// What it is.
    pub kind: ReadKind,
    /// Path, resolved from the folder of the runbook that names it.
    pub path: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// A SQL script's text (lossy UTF-8), for the reviewer; nothing for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The plan entry of a file a run reads, from its bytes.
pub fn reads_entry(read: &FileRead, bytes: &[u8]) -> PlanRead {
    let text = match read.kind {
        ReadKind::SqlScript => Some(String::from_utf8_lossy(bytes).into_owned()),
        ReadKind::CaFile | ReadKind::ParamsFile => None,
    };
    PlanRead { kind: read.kind, path: read.path.clone(), sha256: sha256_hex_bytes(bytes), text }
}

/// A precondition as shown in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanCheck {
    /// Id.
    pub id: String,
    /// What it runs.
    pub command: PlanCommand,
    /// Rendered failure message.
    pub message: Option<String>,
    /// Rendered environment.
    pub env: BTreeMap<String, String>,
    /// Working directory (`null`: the runbook's folder).
    pub dir: Option<String>,
    /// Time limit.
    pub timeout: String,
}

/// What a step does, rendered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanCommand {
    /// A shell script and the shell it goes to.
    Run {
        /// Rendered script (values shell-quoted).
        script: String,
        /// Shell argv.
        shell: Vec<String>,
    },
    /// Rendered argv.
    Cmd(Vec<String>),
    /// An HTTP request.
    Http {
        /// Method.
        method: String,
        /// Rendered URL.
        url: String,
        /// Rendered headers.
        headers: BTreeMap<String, String>,
        /// Rendered query.
        query: BTreeMap<String, String>,
        /// Rendered body.
        body: Option<Value>,
        /// Accepted statuses (empty: any 2xx).
        expect_status: Vec<u16>,
        /// Latency limit.
        max_latency: Option<String>,
        /// Assertion, as written.
        assert: Option<String>,
        /// Extra trusted CA certificates.
        ca_file: Option<String>,
        /// Client-side limit for the whole request.
        request_timeout: Option<String>,
    },
    /// SQL.
    Sql {
        /// Rendered URL.
        url: String,
        /// The statement, as written, or the script file.
        query: Option<String>,
        /// Script file.
        file: Option<String>,
        /// Rendered bound arguments.
        args: Vec<Value>,
        /// Assertion, as written.
        assert: Option<String>,
        /// Read-only transaction.
        read_only: bool,
    },
    /// A human decision.
    Approval {
        /// Rendered question.
        prompt: String,
        /// Input names and types.
        inputs: BTreeMap<String, ParamType>,
        /// What each input accepts besides its type, by name: its default (an input with a
        /// default is optional: approving without it takes the default), allowed values,
        /// pattern and description. A change to any of them changes what runs.
        input_rules: BTreeMap<String, PlanInput>,
        /// Allowed identities.
        approvers: Vec<String>,
        /// Approvals needed.
        min_approvals: u32,
        /// Whether the run's operator may approve.
        allow_self_approval: bool,
        /// Wait limit.
        timeout: Option<String>,
    },
    /// A notification.
    Notify {
        /// Rendered webhook (usually a secret placeholder).
        webhook: String,
        /// Rendered body.
        body: Value,
        /// Delivery failure fails the step.
        required: bool,
    },
    /// Another runbook, planned.
    Runbook {
        /// File as written.
        file: String,
        /// Rendered parameters.
        params: BTreeMap<String, Value>,
        /// Its plan (files, engine and params are listed at the top level).
        plan: Box<Plan>,
    },
}

impl PlanCommand {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            PlanCommand::Run { .. } => "run",
            PlanCommand::Cmd(_) => "cmd",
            PlanCommand::Http { .. } => "http",
            PlanCommand::Sql { .. } => "sql",
            PlanCommand::Approval { .. } => "approval",
            PlanCommand::Notify { .. } => "notify",
            PlanCommand::Runbook { .. } => "runbook",
        }
    }
}

/// A `when` condition and, where it depends only on params, its value.
#[derive(Debug, Clone, Serialize)]
pub struct PlanWhen {
    /// As written.
    pub expr: String,
    /// `true`/`false` when known now, `null` when decided at run time.
    pub value: Option<bool>,
}

/// A compensation as shown in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanCompensation {
    /// What it runs.
    pub command: PlanCommand,
    /// Rendered environment.
    pub env: BTreeMap<String, String>,
    /// Working directory (`null`: the runbook's folder).
    pub dir: Option<String>,
    /// Time limit of one attempt.
    pub timeout: Option<String>,
    /// Its retry policy.
    pub retry: RetryPolicy,
    /// Runs again by itself if the engine died while it ran (otherwise an operator decides).
    pub idempotent: bool,
}

/// A step as shown in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Rendered title.
    pub title: Option<String>,
    /// Description, as written.
    pub description: Option<String>,
    /// Direct needs.
    pub needs: Vec<String>,
    /// Wave number, from 1 (0 for finally steps).
    pub wave: usize,
    /// Condition.
    pub when: Option<PlanWhen>,
    /// What it does.
    pub command: PlanCommand,
    /// Rendered environment (secrets as placeholders).
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub dir: Option<String>,
    /// Outputs it offers.
    pub outputs: Vec<String>,
    /// Checks right before it.
    pub preconditions: Vec<PlanCheck>,
    /// Time limit of one attempt.
    pub timeout: Option<String>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Safe to re-run when in doubt.
    pub idempotent: bool,
    /// Rendered confirmation question.
    pub confirm: Option<String>,
    /// Failure policy.
    pub on_failure: OnFailure,
    /// Its undo action.
    pub compensation: Option<Box<PlanCompensation>>,
    /// Steps whose compensations would run if this step failed, in order, as a count and
    /// the first [`CHAIN_SHOWN`]. Steps running in parallel that completed first would be
    /// compensated too.
    pub compensation_chain: ChainSummary,
    /// Expected duration.
    pub estimate: Option<String>,
}

/// A compensation chain as a plan holds it: every compensable ancestor of the step (through
/// `needs`, directly or not), most recent first, summarised. The whole list of every step
/// would be quadratic in the number of steps (ARCHITECTURE.md, "Plan documents are linear");
/// it is derivable from the plan: the steps before this one, in plan order, that it needs
/// directly or not and that have a `compensation`, the last first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// How many compensations would run.
    pub count: usize,
    /// The first of them (the most recent first), at most [`CHAIN_SHOWN`].
    pub first: Vec<String>,
}

impl ChainSummary {
    /// True when nothing would be compensated.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// An escalation as shown in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEscalation {
    /// Id.
    pub id: String,
    /// Time since the run started.
    pub after: String,
    /// Rendered webhook.
    pub webhook: String,
    /// Rendered body.
    pub body: Value,
}

/// The longest chain of needs.
#[derive(Debug, Clone, Serialize)]
pub struct CriticalPath {
    /// Step ids, first to last.
    pub steps: Vec<String>,
    /// Sum of the estimates on the path, when any step on it has one.
    pub estimate: Option<String>,
    /// Steps on the path without an estimate.
    pub unestimated: Vec<String>,
}

/// Hex SHA-256 of a text.
pub fn sha256_hex(text: &str) -> String {
    sha256_hex_bytes(text.as_bytes())
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Build the plan of a validated runbook with already typed parameter values (`resolve`d).
pub fn plan(runbook: &Runbook, params: &BTreeMap<String, ParamValue>) -> Result<Plan, Vec<Diagnostic>> {
    plan_within(runbook, params, &std::cell::Cell::new(0))
}

/// [`plan`], with `budget`: the steps the include tree planned so far (each `for-each`
/// step counted as its instances, under each include). One bound for the whole tree,
/// checked with [`crate::foreach::size`] BEFORE a runbook is expanded (adv17b F11: RB119
/// and RB065 held per runbook, and a tree of includes multiplied them).
fn plan_within(
    runbook: &Runbook,
    params: &BTreeMap<String, ParamValue>,
    budget: &std::cell::Cell<u64>,
) -> Result<Plan, Vec<Diagnostic>> {
    // `for-each` steps are planned as their instances, as they run; refused when the
    // instances would make the plan grow faster than the runbook and its values (RB119).
    if let Some(d) = crate::foreach::check_size(runbook, params) {
        return Err(vec![d]);
    }
    let total = budget.get().saturating_add(crate::foreach::size(runbook, params).0);
    budget.set(total);
    if total > crate::model::MAX_EXPANDED_STEPS {
        let span = runbook
            .steps
            .iter()
            .chain(&runbook.finally)
            .find_map(|s| s.for_each.as_ref())
            .map_or(crate::span::Span::default(), |f| f.span);
        return Err(vec![Diagnostic::error(
            Code::ForEachSize,
            &runbook.source,
            span,
            format!(
                "with these lists the runbook and its included runbooks have more than {} steps once expanded (at least {total} when this runbook is planned)",
                crate::model::MAX_EXPANDED_STEPS
            ),
        )
        .with_label("expanded here")
        .with_help("each include counts every instance of the runbook it includes, once per include: give shorter lists, include fewer times, or run the parts as separate runbooks")]);
    }
    let expanded = crate::foreach::expand(runbook, params);
    let runbook: &Runbook = &expanded;
    // Every need names a step once expanded; one that does not is never "met" (adv17b F1).
    if let Some((step, need)) = crate::foreach::dangling_need(runbook) {
        let span = runbook
            .steps
            .iter()
            .chain(&runbook.finally)
            .find(|s| s.id == *step)
            .map_or(crate::span::Span::default(), |s| s.span);
        return Err(vec![Diagnostic::error(
            crate::diagnostic::Code::UnknownNeed,
            &runbook.source,
            span,
            format!("internal error: once its `for-each` steps are expanded, step `{step}` needs `{need}`, which is no step"),
        )
        .with_help("this is a bug in runbook: please report it with the runbook; nothing ran")]);
    }
    let mut p = Planner {
        runbook,
        budget,
        diags: Vec::new(),
        ctx: template::Context::new(&context(runbook, params)),
        rendered: FastMap::default(),
        item: None,
    };
    let plan = p.plan(params);
    if p.diags.is_empty() { Ok(plan) } else { Err(p.diags) }
}

/// Type the parameter values given as text (`-p name=value`), resolve defaults, and check
/// them. Problems are returned for the caller to place (command line or params file).
pub fn typed_params(
    runbook: &Runbook,
    given: &BTreeMap<String, ParamValue>,
) -> Result<BTreeMap<String, ParamValue>, Vec<params::ParamProblem>> {
    params::resolve(&runbook.params, given)
}

fn context(runbook: &Runbook, params: &BTreeMap<String, ParamValue>) -> Value {
    let p: Map<String, Value> =
        params.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null))).collect();
    let s: Map<String, Value> = runbook
        .secrets
        .iter()
        .map(|s| (s.name.clone(), template::placeholder(&format!("secret:{}", s.name))))
        .collect();
    let mut steps = Map::new();
    // Steps without outputs cannot be referenced (validation checked every reference).
    for step in runbook.steps.iter().chain(runbook.finally.iter()).filter(|s| !s.outputs.is_empty()) {
        let outs: Map<String, Value> = step
            .outputs
            .iter()
            .map(|o| (o.clone(), template::placeholder(&format!("output:{}.{o}", step.id))))
            .collect();
        steps.insert(step.id.to_string(), json!({ "outputs": outs }));
    }
    json!({
        "params": p,
        "secrets": s,
        "steps": steps,
        "run": { "id": template::placeholder("run.id"), "started_at": template::placeholder("run.started_at"), "status": template::placeholder("run.status") },
        "runbook": { "name": runbook.name, "title": runbook.title.clone().unwrap_or_default() },
    })
}

struct Planner<'r> {
    runbook: &'r Runbook,
    /// The steps the whole include tree planned so far ([`plan_within`]).
    budget: &'r std::cell::Cell<u64>,
    diags: Vec<Diagnostic>,
    ctx: template::Context,
    /// Renders already done, by (text, shell mode).
    rendered: FastMap<(String, Mode, Option<String>), Result<String, TemplateError>>,
    /// While a `for-each` instance is planned: its id and its context (`item` set).
    item: Option<(String, template::Context)>,
}

impl Planner<'_> {
    fn source(&self) -> &Arc<Source> {
        &self.runbook.source
    }

    fn render(&mut self, t: &Template, mode: Mode) -> String {
        // Text without markup renders to itself (most argv elements).
        if template::is_literal(&t.text) {
            return t.text.clone();
        }
        // The context is fixed for the whole plan, so equal texts render equally.
        let key = (t.text.clone(), mode, self.item.as_ref().map(|(id, _)| id.clone()));
        let result = match self.rendered.get(&key) {
            Some(r) => r.clone(),
            None => {
                let ctx = self.item.as_ref().map_or(&self.ctx, |(_, c)| c);
                let r = template::render(&t.text, mode, ctx);
                self.rendered.insert(key, r.clone());
                r
            }
        };
        match result {
            Ok(s) => s,
            Err(e) => {
                self.render_error(t, &e);
                String::new()
            }
        }
    }

    fn render_error(&mut self, t: &Template, e: &TemplateError) {
        let span = template::inner_span(self.source(), t.span, e.range.clone());
        if e.too_costly {
            let d = Diagnostic::error(
                Code::TemplateLimit,
                self.source(),
                span,
                format!("template costs too much with these parameters: {}", e.message),
            )
            .with_help("loop over less, or do the work in the step's script");
            self.diags.push(d);
            return;
        }
        let d = Diagnostic::error(
            Code::TemplateSyntax,
            self.source(),
            span,
            format!("template cannot be rendered with these parameters: {}", e.message),
        )
        .with_help("check the parameter values this template uses, and the filters it applies to them");
        self.diags.push(d);
    }

    fn render_json(&mut self, v: &Value, span: crate::span::Span) -> Value {
        match v {
            Value::String(s) => {
                let t = Template { text: s.clone(), span };
                Value::String(self.render(&t, Mode::Plain))
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.render_json(x, span)).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| (k.clone(), self.render_json(x, span))).collect())
            }
            other => other.clone(),
        }
    }

    fn render_map(&mut self, m: &[(String, Template)]) -> BTreeMap<String, String> {
        m.iter().map(|(k, t)| (k.clone(), self.render(t, Mode::Plain))).collect()
    }

    fn plan(&mut self, params: &BTreeMap<String, ParamValue>) -> Plan {
        let rb = self.runbook;
        let lock = rb.lock.as_ref().map(|l| self.render(l, Mode::Plain));
        // A lock that renders into the reserved `run:` namespace would take another run's
        // private lock: the plan refuses it, as `run` does before it takes the lock.
        if let (Some(t), Some(rendered)) = (&rb.lock, &lock)
            && let Err(e) = crate::model::check_lock_name(rendered)
        {
            let d = Diagnostic::error(Code::InvalidValue, self.source(), t.span, format!("lock {e}"))
                .with_help("choose parameter values that do not make the lock start with `run:`");
            self.diags.push(d);
        }
        let preconditions = rb.preconditions.iter().map(|c| self.check(c)).collect();

        let graph = needs_graph(&rb.steps);
        let topo = graph.topo_order();
        let waves_of = graph.waves_in(&topo);
        let mut order: Vec<usize> = (0..rb.steps.len()).collect();
        order.sort_by_key(|&i| (waves_of[i], i));
        let wave_count = waves_of.iter().copied().max().map_or(0, |m| m + 1);
        let mut waves: Vec<Vec<String>> = vec![Vec::new(); wave_count];
        for &i in &order {
            waves[waves_of[i]].push(rb.steps[i].id.to_string());
        }
        let mut position = vec![0; rb.steps.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut compensable = BitSet::new(rb.steps.len());
        for (i, s) in rb.steps.iter().enumerate() {
            // A `runbook` step is undone by undoing its included runbook (i18-fei).
            if rb.undoes(s) {
                compensable.insert(i);
            }
        }
        // Ancestor sets cost n²/64 words: only worth it when something can be compensated.
        let ancestors = if compensable.is_empty() { Vec::new() } else { graph.ancestors_in(&topo) };
        let mut scratch = Vec::new();
        let steps = order
            .iter()
            .map(|&i| {
                let chain = compensation_chain(
                    rb,
                    i,
                    ancestors.get(i).and_then(Option::as_ref),
                    &compensable,
                    &position,
                    &mut scratch,
                );
                self.step(&rb.steps[i], waves_of[i] + 1, chain)
            })
            .collect();
        let f_waves = needs_graph(&rb.finally).waves();
        let mut f_order: Vec<usize> = (0..rb.finally.len()).collect();
        f_order.sort_by_key(|&i| (f_waves[i], i));
        let finally =
            f_order.iter().map(|&i| self.step(&rb.finally[i], 0, ChainSummary::default())).collect();
        let escalations = rb
            .escalations
            .iter()
            .map(|e| {
                let (webhook, body) = self.notify_parts(&e.notify);
                PlanEscalation { id: e.id.clone(), after: format_duration(e.after), webhook, body }
            })
            .collect();

        Plan {
            format_version: FORMAT_VERSION,
            engine: EngineInfo { name: "runbook".into(), version: crate::ENGINE_VERSION.into() },
            runbook: PlanRunbook {
                name: rb.name.clone(),
                title: rb.title.clone(),
                description: rb.description.clone(),
                file: rb.source.path.clone(),
                estimate: rb.estimate.map(|e| e.to_string()),
                max_parallel: rb.max_parallel,
                lock,
            },
            params: params.clone(),
            secrets: rb
                .secrets
                .iter()
                .map(|s| PlanSecret { name: s.name.clone(), source: s.source.clone() })
                .collect(),
            files: rb
                .sources()
                .iter()
                .map(|s| FileHash { path: s.path.clone(), sha256: sha256_hex(s.file_text()) })
                .collect(),
            reads: Vec::new(),
            preconditions,
            waves,
            steps,
            finally,
            escalations,
            critical_path: critical_path(&rb.steps, &topo),
        }
    }

    fn check(&mut self, c: &Precondition) -> PlanCheck {
        PlanCheck {
            id: c.id.clone(),
            command: self.command(&c.action),
            message: c.message.as_ref().map(|m| self.render(m, Mode::Plain)),
            env: self.render_map(&c.env),
            dir: c.dir.clone(),
            timeout: format_duration(c.timeout),
        }
    }

    fn step(&mut self, s: &Step, wave: usize, compensation_chain: ChainSummary) -> PlanStep {
        self.item = crate::foreach::item_context(&self.ctx, s).map(|c| (s.id.to_string(), c));
        let step = self.step_in_context(s, wave, compensation_chain);
        self.item = None;
        step
    }

    fn step_in_context(&mut self, s: &Step, wave: usize, compensation_chain: ChainSummary) -> PlanStep {
        let when = s.when.as_ref().map(|w| PlanWhen {
            expr: w.text.clone(),
            value: if w.static_only {
                match template::eval(&w.text, self.item.as_ref().map_or(&self.ctx, |(_, c)| c)) {
                    Ok(v) => Some(crate::template::truthy(&v)),
                    Err(e) => {
                        self.render_error(&Template { text: w.text.clone(), span: w.span }, &e);
                        None
                    }
                }
            } else {
                None
            },
        });
        let compensation = s.compensate.as_ref().map(|c| {
            Box::new(PlanCompensation {
                command: self.command(&c.action),
                env: self.render_map(&c.env),
                dir: c.dir.clone(),
                timeout: c.timeout.map(format_duration),
                retry: c.retry.clone(),
                idempotent: c.idempotent,
            })
        });
        PlanStep {
            id: s.id.to_string(),
            kind: s.action.kind().to_string(),
            title: s.title.as_ref().map(|t| self.render(t, Mode::Plain)),
            description: s.description.clone(),
            needs: s.needs.iter().map(|n| n.to_string()).collect(),
            wave,
            when,
            command: self.command(&s.action),
            env: self.render_map(&s.env),
            dir: s.dir.clone(),
            outputs: s.outputs.clone(),
            preconditions: s.preconditions.iter().map(|c| self.check(c)).collect(),
            timeout: s.timeout.map(format_duration),
            retry: s.retry.clone(),
            idempotent: s.idempotent,
            confirm: s.confirm.as_ref().map(|t| self.render(t, Mode::Plain)),
            on_failure: s.on_failure,
            compensation,
            compensation_chain,
            estimate: s.estimate.map(|e| e.to_string()),
        }
    }

    fn notify_parts(&mut self, n: &NotifySpec) -> (String, Value) {
        let webhook = self.render(&n.webhook, Mode::Url);
        let body = match &n.message {
            NotifyMessage::Text(t) => json!({ "text": self.render(t, Mode::Plain) }),
            NotifyMessage::Json(j) => self.render_json(j, n.webhook.span),
        };
        (webhook, body)
    }

    fn command(&mut self, a: &Action) -> PlanCommand {
        match a {
            Action::Run { script, shell } => {
                PlanCommand::Run { script: self.render(script, Mode::Shell), shell: shell.clone() }
            }
            Action::Cmd(argv) => {
                let rendered: Vec<String> = argv.iter().map(|t| self.render(t, Mode::Plain)).collect();
                let texts: Vec<&str> = argv.iter().map(|t| t.text.as_str()).collect();
                // A value that would be read as an option is refused (promise 4).
                if let Err((k, message)) = template::argv_options(&texts, &rendered) {
                    let e = TemplateError {
                        message,
                        range: None,
                        at_render: true,
                        unknown_callable: false,
                        too_costly: false,
                    };
                    self.render_error(&argv[k], &e);
                }
                PlanCommand::Cmd(rendered)
            }
            Action::Http(h) => {
                let body = match (&h.body, &h.json) {
                    (Some(b), _) => Some(Value::String(self.render(b, Mode::Plain))),
                    (None, Some(j)) => Some(self.render_json(j, h.url.span)),
                    (None, None) => None,
                };
                PlanCommand::Http {
                    method: h.method.clone(),
                    url: self.render(&h.url, Mode::Url),
                    headers: self.render_map(&h.headers),
                    query: self.render_map(&h.query),
                    body,
                    expect_status: h.expect_status.clone(),
                    max_latency: h.max_latency.map(format_duration),
                    assert: h.assert.as_ref().map(|a| a.text.clone()),
                    ca_file: h.ca_file.clone(),
                    request_timeout: h.request_timeout.map(format_duration),
                }
            }
            Action::Sql(q) => {
                let (query, file) = match &q.statement {
                    SqlStatement::Query(t) => (Some(t.clone()), None),
                    SqlStatement::File(f) => (None, Some(f.clone())),
                };
                PlanCommand::Sql {
                    url: self.render(&q.url, Mode::Url),
                    query,
                    file,
                    args: q.args.iter().map(|a| self.render_json(a, q.url.span)).collect(),
                    assert: q.assert.as_ref().map(|a| a.text.clone()),
                    read_only: q.read_only,
                }
            }
            Action::Approval(a) => PlanCommand::Approval {
                prompt: self.render(&a.prompt, Mode::Plain),
                inputs: a.inputs.iter().map(|p| (p.name.clone(), p.ty)).collect(),
                input_rules: a
                    .inputs
                    .iter()
                    .map(|p| {
                        let rule = PlanInput {
                            default: p.default.clone(),
                            allowed: p.allowed.clone(),
                            pattern: p.pattern.clone(),
                            description: p.description.clone(),
                        };
                        (p.name.clone(), rule)
                    })
                    .collect(),
                approvers: a.approvers.clone(),
                min_approvals: a.min_approvals,
                allow_self_approval: a.allow_self_approval,
                timeout: a.timeout.map(format_duration),
            },
            Action::Notify(n) => {
                let (webhook, body) = self.notify_parts(n);
                PlanCommand::Notify { webhook, body, required: n.required }
            }
            Action::Runbook(inc) => self.include(inc),
        }
    }

    fn include(&mut self, inc: &IncludeSpec) -> PlanCommand {
        let rb = self.runbook;
        let child = &rb.includes[inc.child];
        let span = inc.span;
        let rendered: BTreeMap<String, Value> =
            inc.params.iter().map(|(k, v)| (k.clone(), self.render_json(v, span))).collect();
        // Validation refuses a `for-each` list known only at run time (RB128); planning
        // one would show instances that never run (red team adv18b F1), so never.
        if let Some((k, read)) = crate::foreach::run_time_binding(child, &inc.params) {
            let (message, help) = crate::foreach::run_time_list_problem(&k, &inc.file, &read);
            self.diags
                .push(Diagnostic::error(Code::ForEachRunTime, self.source(), span, message).with_help(help));
            return PlanCommand::Runbook {
                file: inc.file.clone(),
                params: rendered,
                plan: Box::new(empty_plan(child)),
            };
        }
        let child_params = match params::for_include(child, &rendered) {
            Ok(p) => p,
            Err(problems) => {
                for msg in problems {
                    self.diags
                        .push(Diagnostic::error(Code::IncludeParams, self.source(), span, msg).with_help(
                        "the values passed in `runbook.params` must fit the included runbook's declarations",
                    ));
                }
                // Planning the child without its parameters would only add noise.
                return PlanCommand::Runbook {
                    file: inc.file.clone(),
                    params: rendered,
                    plan: Box::new(empty_plan(child)),
                };
            }
        };
        // Past the tree's bound already (one error said so): no further child is expanded.
        if self.budget.get() > crate::model::MAX_EXPANDED_STEPS {
            return PlanCommand::Runbook {
                file: inc.file.clone(),
                params: rendered,
                plan: Box::new(empty_plan(child)),
            };
        }
        let child_plan = match plan_within(child, &child_params, self.budget) {
            Ok(p) => p,
            Err(mut d) => {
                self.diags.append(&mut d);
                return PlanCommand::Runbook {
                    file: inc.file.clone(),
                    params: rendered,
                    plan: Box::new(empty_plan(child)),
                };
            }
        };
        PlanCommand::Runbook { file: inc.file.clone(), params: rendered, plan: Box::new(child_plan) }
    }
}

fn empty_plan(rb: &Runbook) -> Plan {
    Plan {
        format_version: FORMAT_VERSION,
        engine: EngineInfo { name: "runbook".into(), version: crate::ENGINE_VERSION.into() },
        runbook: PlanRunbook {
            name: rb.name.clone(),
            title: rb.title.clone(),
            description: rb.description.clone(),
            file: rb.source.path.clone(),
            estimate: None,
            max_parallel: rb.max_parallel,
            lock: None,
        },
        params: BTreeMap::new(),
        secrets: Vec::new(),
        files: Vec::new(),
        reads: Vec::new(),
        preconditions: Vec::new(),
        waves: Vec::new(),
        steps: Vec::new(),
        finally: Vec::new(),
        escalations: Vec::new(),
        critical_path: CriticalPath { steps: Vec::new(), estimate: None, unestimated: Vec::new() },
    }
}

/// The needs of a list of steps as a graph over their indices.
fn needs_graph(steps: &[Step]) -> Graph {
    let index: FastMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    Graph::new(
        steps
            .iter()
            .map(|s| s.needs.iter().filter_map(|n| index.get(n.as_str()).copied()).collect())
            .collect(),
    )
}

/// The compensations that would run if step `i` failed: its ancestors' (they have all
/// completed), most recent first, as a count and the first [`CHAIN_SHOWN`]. Empty unless the
/// step's policy is `compensate`. Linear in what it returns: the count is a popcount of two
/// bitsets, and only the ancestors are looked at (in `scratch`, reused from step to step),
/// never a list per step of every ancestor.
fn compensation_chain(
    rb: &Runbook,
    i: usize,
    ancestors: Option<&BitSet>,
    compensable: &BitSet,
    position: &[usize],
    scratch: &mut Vec<usize>,
) -> ChainSummary {
    let Some(ancestors) = ancestors else { return ChainSummary::default() };
    if rb.steps[i].on_failure != OnFailure::Compensate || compensable.is_empty() {
        return ChainSummary::default();
    }
    scratch.clear();
    scratch.extend(ancestors.iter_and(compensable));
    let count = scratch.len();
    let by_recent = |a: &usize| std::cmp::Reverse(position[*a]);
    if scratch.len() > CHAIN_SHOWN {
        scratch.select_nth_unstable_by_key(CHAIN_SHOWN, by_recent);
        scratch.truncate(CHAIN_SHOWN);
    }
    scratch.sort_by_key(by_recent);
    ChainSummary { count, first: scratch.iter().map(|&a| rb.steps[a].id.to_string()).collect() }
}

/// The critical path of a runbook's steps, as its plan states it (`runbook list` shows its
/// estimate): it depends on the steps' `needs` and estimates, not on parameter values.
pub fn critical_path_of(rb: &Runbook) -> CriticalPath {
    critical_path(&rb.steps, &needs_graph(&rb.steps).topo_order())
}

fn critical_path(steps: &[Step], topo_order: &[usize]) -> CriticalPath {
    // best[i] = (sum of high estimates, number of steps) of the heaviest chain ending at i.
    let mut best: Vec<(std::time::Duration, usize)> = vec![(Default::default(), 0); steps.len()];
    let mut prev: Vec<Option<usize>> = vec![None; steps.len()];
    let index: FastMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    for &i in topo_order {
        let own = steps[i].estimate.map(|e| e.high).unwrap_or_default();
        let mut pick: Option<usize> = None;
        for n in &steps[i].needs {
            if let Some(&j) = index.get(n.as_str())
                && pick.is_none_or(|p| best[j] > best[p])
            {
                pick = Some(j);
            }
        }
        let base = pick.map(|p| best[p]).unwrap_or_default();
        best[i] = (base.0 + own, base.1 + 1);
        prev[i] = pick;
    }
    let Some(mut end) = (0..steps.len()).max_by_key(|&i| (best[i], std::cmp::Reverse(i))) else {
        return CriticalPath { steps: Vec::new(), estimate: None, unestimated: Vec::new() };
    };
    let mut path = vec![end];
    while let Some(p) = prev[end] {
        path.push(p);
        end = p;
    }
    path.reverse();
    let estimated: Vec<Estimate> = path.iter().filter_map(|&i| steps[i].estimate).collect();
    let estimate = (!estimated.is_empty()).then(|| {
        let low = estimated.iter().map(|e| e.low).sum();
        let high = estimated.iter().map(|e| e.high).sum();
        Estimate { low, high }.to_string()
    });
    CriticalPath {
        steps: path.iter().map(|&i| steps[i].id.to_string()).collect(),
        estimate,
        unestimated: path
            .iter()
            .filter(|&&i| steps[i].estimate.is_none())
            .map(|&i| steps[i].id.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::diagnostic::Source;
    use crate::validate::{NoIncludes, check};

    use super::*;

    /// A seeded random DAG of `n` steps: each needs up to three earlier ones (or follows the
    /// one before), about half have a compensation, some stop or continue on failure.
    fn random_runbook(n: usize, seed: u64) -> String {
        let mut x = seed;
        let mut next = move |m: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let mut t = String::from("[runbook]\nname = \"r\"\n");
        for i in 0..n {
            t.push_str(&format!("\n[steps.s{i}]\nrun = \"echo {i}\"\n"));
            if i > 0 && next(4) > 0 {
                let k = 1 + next(3);
                let needs: BTreeSet<u64> = (0..k).map(|_| next(i as u64)).collect();
                let list: Vec<String> = needs.iter().map(|j| format!("\"s{j}\"")).collect();
                t.push_str(&format!("needs = [{}]\n", list.join(", ")));
            }
            if next(2) == 0 {
                t.push_str(&format!("compensate = {{ run = \"echo undo {i}\" }}\n"));
            }
            match next(6) {
                0 => t.push_str("on-failure = \"stop\"\n"),
                1 => t.push_str("on-failure = \"continue\"\n"),
                _ => {}
            }
        }
        t
    }

    /// The summary is the whole chain's count and its first [`CHAIN_SHOWN`], as computed the
    /// naive way (every ancestor through `needs`, those with a compensation, the latest in
    /// plan order first), on random DAGs of up to 120 steps.
    #[test]
    fn the_chain_summary_is_the_count_and_the_head_of_the_whole_chain() {
        for seed in 0..40 {
            let text = random_runbook(20 + (seed as usize * 7) % 100, seed);
            let checked = check(Source::toml("r.toml", &text), &NoIncludes);
            let rb = checked.runbook.unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
            let values = crate::inputs::resolve(&rb, &BTreeMap::new()).expect("no params");
            let p = plan(&rb, &values).expect("a plan");
            let pos: BTreeMap<&str, usize> =
                p.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
            let by_id: BTreeMap<&str, &PlanStep> = p.steps.iter().map(|s| (s.id.as_str(), s)).collect();
            for s in &p.steps {
                let mut seen = BTreeSet::new();
                let mut todo: Vec<&str> = s.needs.iter().map(String::as_str).collect();
                while let Some(a) = todo.pop() {
                    if seen.insert(a) {
                        todo.extend(by_id[a].needs.iter().map(String::as_str));
                    }
                }
                let mut whole: Vec<&str> =
                    seen.into_iter().filter(|a| by_id[a].compensation.is_some()).collect();
                whole.sort_by_key(|a| std::cmp::Reverse(pos[a]));
                if s.on_failure != OnFailure::Compensate {
                    whole.clear();
                }
                let head: Vec<String> = whole.iter().take(CHAIN_SHOWN).map(|a| a.to_string()).collect();
                assert_eq!(s.compensation_chain.count, whole.len(), "seed {seed}, step {}", s.id);
                assert_eq!(s.compensation_chain.first, head, "seed {seed}, step {}", s.id);
            }
        }
    }
}
