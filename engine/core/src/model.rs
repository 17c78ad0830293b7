//! The validated runbook: domain types built by [`crate::validate`] from the raw shapes.
//!
//! Architecture invariant: nothing here derives `Deserialize`. A value of these types has
//! passed every check of the format, so the planner and the executor never re-check.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::diagnostic::Source;
use crate::span::Span;

/// The longest duration a runbook may write (a step or approval `timeout`, an escalation's
/// `after`, a retry delay...): 100 years (of 365.25 days, as humantime counts `y`). Longer ones
/// are refused at check (RB030), so every deadline the engine computes from one fits in an
/// `i64` of milliseconds with room to spare.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// The most steps a runbook may have once its includes are expanded (RB065): each `runbook`
/// step counts as itself plus every step of the runbook it includes, recursively. Plans and
/// runs hold every included instance, so a few files that each include the next twice would
/// otherwise grow as 2^depth; and the review documents and diffs keep per-step sets of steps
/// (n²/64 words), so a runbook of its own is bounded too (red team adv17b F10: a 250,000-step
/// file under the 8 MiB limit would have needed gigabytes for its markdown review).
pub const MAX_EXPANDED_STEPS: u64 = 10_000;

/// The most bytes of runbook text a runbook may hold once its includes are expanded (RB065):
/// its own file plus, for each `runbook` step, the expanded bytes of the file it includes,
/// once per include. The same as the limit of one file (8 MiB): a runbook and its includes
/// hold no more than one file may, so a plan of it is bounded as the plan of one file is
/// (red team adv16t A4: 4 includes of an 8 MB file made a 1.1 GB text plan and an abort).
pub const MAX_EXPANDED_BYTES: u64 = 8 * 1024 * 1024;

/// The most levels of includes under a runbook (RB065): a runbook that includes one that
/// includes another is two levels deep. Checking, planning, rendering and running an
/// included runbook each recurse once per level, and every nested plan lists its own files,
/// so depth is bounded on its own (a chain of 1,000 one-step files, far below
/// [`MAX_EXPANDED_STEPS`], overflowed the stack). Real runbooks nest two or three levels.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// The prefix of the private lock every run without `lock` holds (`run:ID`). A runbook's
/// `lock` may not start with it: refused at check when written (RB033) and at run time when
/// rendered, so no runbook can take another run's private lock.
pub const RESERVED_LOCK_PREFIX: &str = "run:";

/// A runbook's rendered `lock`, or why it may not be used: names in the
/// [`RESERVED_LOCK_PREFIX`] namespace belong to runs, not runbooks.
pub fn check_lock_name(rendered: &str) -> Result<(), String> {
    if rendered.starts_with(RESERVED_LOCK_PREFIX) {
        return Err(format!(
            "`{rendered}` is in the `{RESERVED_LOCK_PREFIX}` namespace, reserved for the private lock of each run; name the lock after what it guards"
        ));
    }
    Ok(())
}

/// `now_ms + d` in milliseconds, saturating at `i64::MAX` instead of wrapping: a deadline
/// computed from any duration is never in the past.
pub fn deadline_ms(now_ms: i64, d: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A step id: `^[a-z][a-z0-9_]*$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StepId(pub String);

impl StepId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A template string with where it was written. Its references were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The text, as written.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// An expression (`when`, `assert`) with where it was written. It compiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The text, as written.
    pub text: String,
    /// Where.
    pub span: Span,
    /// True when its value depends only on `params` and `runbook`, so a plan can show it.
    pub static_only: bool,
}

/// The type of a parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Text.
    String,
    /// A 64-bit whole number.
    Integer,
    /// A floating-point number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list of strings (`type = "list"`).
    StringList,
    /// A list of whole numbers (`type = "list"`, `items = "integer"`).
    IntegerList,
    /// A list of numbers (`type = "list"`, `items = "number"`).
    NumberList,
}

/// The most elements a `list` parameter may hold: a `for-each` step over it is that many
/// steps in the plan and the journal.
pub const MAX_LIST_ELEMENTS: usize = 1_000;

impl ParamType {
    /// The name used in the format (`list` for every list type; [`ParamType::element`] says
    /// of what).
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::StringList | ParamType::IntegerList | ParamType::NumberList => "list",
        }
    }

    /// The type of a list's elements; `None` for a scalar type.
    pub fn element(self) -> Option<ParamType> {
        match self {
            ParamType::StringList => Some(ParamType::String),
            ParamType::IntegerList => Some(ParamType::Integer),
            ParamType::NumberList => Some(ParamType::Number),
            ParamType::String | ParamType::Integer | ParamType::Number | ParamType::Boolean => None,
        }
    }
}

impl Serialize for ParamType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A typed parameter value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// Text.
    String(String),
    /// Whole number.
    Integer(i64),
    /// Floating-point number.
    Number(f64),
    /// Boolean.
    Boolean(bool),
    /// The elements of a list (scalars of one type).
    List(Vec<ParamValue>),
}

impl ParamValue {
    /// The value as `-p NAME=VALUE` takes it back, one to one: a scalar as its text, a list
    /// as a JSON array (`["a,b", "c"]`), never its elements joined with commas, which
    /// `["a,b", "c"]` and `a,b,c` would print alike (adv17b L2). Every place that shows a
    /// parameter for an operator to read or type again uses this form.
    pub fn as_argument(&self) -> String {
        match self {
            ParamValue::List(_) => serde_json::to_string(self).unwrap_or_default(),
            ParamValue::String(_)
            | ParamValue::Integer(_)
            | ParamValue::Number(_)
            | ParamValue::Boolean(_) => self.to_string(),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::String(s) => f.write_str(s),
            ParamValue::Integer(i) => write!(f, "{i}"),
            ParamValue::Number(n) => write!(f, "{n}"),
            ParamValue::Boolean(b) => write!(f, "{b}"),
            ParamValue::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// Name.
    pub name: String,
    /// Where it was declared.
    pub span: Span,
    /// Its type.
    pub ty: ParamType,
    /// What it means.
    pub description: Option<String>,
    /// The value when none is given; `None` means required.
    pub default: Option<ParamValue>,
    /// Allowed values.
    pub allowed: Option<Vec<ParamValue>>,
    /// The regular expression a string must match (source text; it compiles).
    pub pattern: Option<String>,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file, relative to the runbook's folder.
    File(String),
    /// A command's standard output.
    Command(Vec<String>),
}

/// A declared secret. Its value is never part of any model, plan or record.
#[derive(Debug, Clone)]
pub struct Secret {
    /// Name.
    pub name: String,
    /// Source.
    pub source: SecretSource,
    /// What it is for.
    pub description: Option<String>,
    /// With a `file` source: only the first line is the value.
    pub first_line: bool,
    /// Where its source (`env`, `file` or `command`) is written.
    pub span: Span,
}

/// A file a secret is read from ([`Runbook::secret_files`]).
#[derive(Debug, Clone)]
pub struct SecretFile {
    /// Its path, resolved from the folder of the runbook that declares the secret.
    pub path: String,
    /// The secret's name.
    pub secret: String,
    /// Where its `file` is written, in `source`.
    pub span: Span,
    /// The runbook that declares the secret.
    pub source: Arc<Source>,
}

/// A duration or a range of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Lower bound.
    pub low: Duration,
    /// Upper bound (equal to `low` for a single duration).
    pub high: Duration,
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", format_duration(self.low))
        } else {
            write!(f, "{}..{}", format_duration(self.low), format_duration(self.high))
        }
    }
}

/// A duration as a compact humantime string (`1m 30s`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(d).to_string()
}

/// What happens after a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Start nothing new; compensate the steps that succeeded.
    Compensate,
    /// Stop without compensating.
    Stop,
    /// Record and go on; dependents are skipped.
    Continue,
}

/// A retry policy. `attempts` counts every try.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Tries in all (≥ 1).
    pub attempts: u32,
    /// Wait before the second try.
    #[serde(serialize_with = "ser_duration")]
    pub delay: Duration,
    /// Multiplier per try (≥ 1.0).
    pub backoff: f64,
    /// Upper bound of the delay.
    #[serde(serialize_with = "ser_opt_duration")]
    pub max_delay: Option<Duration>,
    /// Full jitter.
    pub jitter: bool,
    /// Retry only on these exit codes (empty: any failure).
    pub on_exit_codes: Vec<i32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            delay: Duration::from_secs(1),
            backoff: 1.0,
            max_delay: None,
            jitter: false,
            on_exit_codes: Vec::new(),
        }
    }
}

/// Serialize a duration as a humantime string.
pub fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Serialize an optional duration as a humantime string or null.
pub fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// An HTTP request.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    /// Upper-case method.
    pub method: String,
    /// URL template.
    pub url: Template,
    /// Header templates.
    pub headers: Vec<(String, Template)>,
    /// Query templates.
    pub query: Vec<(String, Template)>,
    /// Text body template.
    pub body: Option<Template>,
    /// JSON body (string leaves are templates).
    pub json: Option<serde_json::Value>,
    /// Accepted statuses (empty: any 2xx).
    pub expect_status: Vec<u16>,
    /// Latency limit.
    pub max_latency: Option<Duration>,
    /// Assertion.
    pub assert: Option<Expr>,
    /// Extra CA file.
    pub ca_file: Option<String>,
    /// Client-side limit.
    pub request_timeout: Option<Duration>,
}

/// A SQL statement or script.
#[derive(Debug, Clone)]
pub struct SqlSpec {
    /// Database URL template.
    pub url: Template,
    /// Query or file.
    pub statement: SqlStatement,
    /// Bound arguments (string leaves are templates).
    pub args: Vec<serde_json::Value>,
    /// Assertion.
    pub assert: Option<Expr>,
    /// Read-only transaction.
    pub read_only: bool,
}

/// What a SQL step executes.
#[derive(Debug, Clone)]
pub enum SqlStatement {
    /// One statement, text kept as written (never templated).
    Query(String),
    /// A script file run in one transaction.
    File(String),
}

/// A human decision.
#[derive(Debug, Clone)]
pub struct ApprovalSpec {
    /// Question.
    pub prompt: Template,
    /// Typed inputs.
    pub inputs: Vec<Param>,
    /// Allowed identities (empty: anyone).
    pub approvers: Vec<String>,
    /// Approvals needed.
    pub min_approvals: u32,
    /// Whether the run's operator may approve.
    pub allow_self_approval: bool,
    /// Wait limit.
    pub timeout: Option<Duration>,
}

/// A webhook notification.
#[derive(Debug, Clone)]
pub struct NotifySpec {
    /// Webhook URL template.
    pub webhook: Template,
    /// Body.
    pub message: NotifyMessage,
    /// A failed delivery fails the step.
    pub required: bool,
}

/// A notification's body.
#[derive(Debug, Clone)]
pub enum NotifyMessage {
    /// `{"text": ...}`.
    Text(Template),
    /// A custom JSON body.
    Json(serde_json::Value),
}

/// A runbook run as one step.
#[derive(Debug, Clone)]
pub struct IncludeSpec {
    /// File as written.
    pub file: String,
    /// Where `file` was written.
    pub span: Span,
    /// Index of the validated child in [`Runbook::includes`].
    pub child: usize,
    /// Parameters (string leaves are templates).
    pub params: Vec<(String, serde_json::Value)>,
}

/// What a step (or a check, or a compensation) does: exactly one kind.
#[derive(Debug, Clone)]
pub enum Action {
    /// Shell script.
    Run {
        /// Script template (values are shell-quoted).
        script: Template,
        /// Shell argv the script is appended to.
        shell: Vec<String>,
    },
    /// Argv.
    Cmd(Vec<Template>),
    /// HTTP request.
    Http(Box<HttpSpec>),
    /// SQL.
    Sql(Box<SqlSpec>),
    /// Human decision.
    Approval(Box<ApprovalSpec>),
    /// Notification.
    Notify(Box<NotifySpec>),
    /// Another runbook.
    Runbook(Box<IncludeSpec>),
}

impl Action {
    /// The kind's name as in the format.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Run { .. } => "run",
            Action::Cmd(_) => "cmd",
            Action::Http(_) => "http",
            Action::Sql(_) => "sql",
            Action::Approval(_) => "approval",
            Action::Notify(_) => "notify",
            Action::Runbook(_) => "runbook",
        }
    }
}

/// A check before the run or before one step.
#[derive(Debug, Clone)]
pub struct Precondition {
    /// Id.
    pub id: String,
    /// The check.
    pub action: Action,
    /// Message template shown when it fails.
    pub message: Option<Template>,
    /// Environment templates.
    pub env: Vec<(String, Template)>,
    /// Working directory.
    pub dir: Option<String>,
    /// Time limit.
    pub timeout: Duration,
}

/// An undo action.
#[derive(Debug, Clone)]
pub struct Compensation {
    /// What it does.
    pub action: Action,
    /// Environment templates.
    pub env: Vec<(String, Template)>,
    /// Working directory.
    pub dir: Option<String>,
    /// Time limit of one attempt.
    pub timeout: Option<Duration>,
    /// Its own retry policy.
    pub retry: RetryPolicy,
    /// Safe to re-run when in doubt (started, no end record).
    pub idempotent: bool,
    /// Declared outputs (`run`/`cmd`), journaled with its success.
    pub outputs: Vec<String>,
}

/// A step of `[steps]` or `[finally]`.
#[derive(Debug, Clone)]
pub struct Step {
    /// Id.
    pub id: StepId,
    /// Where the id was written.
    pub span: Span,
    /// Title.
    pub title: Option<Template>,
    /// Description.
    pub description: Option<String>,
    /// Direct needs, resolved (implicit sequencing already applied).
    pub needs: Vec<StepId>,
    /// Condition.
    pub when: Option<Expr>,
    /// Confirmation question.
    pub confirm: Option<Template>,
    /// What it does.
    pub action: Action,
    /// Environment templates.
    pub env: Vec<(String, Template)>,
    /// Working directory.
    pub dir: Option<String>,
    /// Declared outputs (for run/cmd/runbook) or the kind's fixed outputs.
    pub outputs: Vec<String>,
    /// Time limit of one attempt.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Safe to re-run when in doubt.
    pub idempotent: bool,
    /// Failure policy.
    pub on_failure: OnFailure,
    /// Undo action.
    pub compensate: Option<Box<Compensation>>,
    /// Checks right before the step.
    pub preconditions: Vec<Precondition>,
    /// Expected duration.
    pub estimate: Option<Estimate>,
    /// `for-each`: the step stands for one instance per element of a list parameter
    /// (before [`crate::foreach::expand`]; expanded runbooks hold no such step).
    pub for_each: Option<ForEach>,
    /// The element this instance of a `for-each` step runs for (after expansion).
    pub item: Option<Item>,
}

/// A step's `for-each`: the list parameter it runs over and how many instances at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ForEach {
    /// The `list` parameter's name.
    pub param: String,
    /// Where `for-each` is written.
    pub span: Span,
    /// Instances in flight at once (`None`: no limit of its own).
    pub max_parallel: Option<u32>,
}

/// The element one instance of a `for-each` step runs for: `{{ item }}` and `{{ item_index }}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The element.
    pub value: ParamValue,
    /// Its position in the list, from 0.
    pub index: usize,
    /// The step id as written (`restart` for `restart[host-a]`).
    pub base: StepId,
}

/// An escalation timer.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// Id.
    pub id: String,
    /// Time since the run started.
    pub after: Duration,
    /// The notification.
    pub notify: NotifySpec,
}

/// A validated runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Its file.
    pub source: Arc<Source>,
    /// Machine name.
    pub name: String,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Expected duration.
    pub estimate: Option<Estimate>,
    /// Parallelism cap (`None`: number of CPUs).
    pub max_parallel: Option<u32>,
    /// Lock name template.
    pub lock: Option<Template>,
    /// Parameters in declaration order.
    pub params: Vec<Param>,
    /// Secrets in declaration order.
    pub secrets: Vec<Secret>,
    /// Runbook-level checks.
    pub preconditions: Vec<Precondition>,
    /// Main steps in declaration order.
    pub steps: Vec<Step>,
    /// Finally steps in declaration order.
    pub finally: Vec<Step>,
    /// Escalations in declaration order.
    pub escalations: Vec<Escalation>,
    /// Included runbooks, validated, indexed by [`IncludeSpec::child`].
    pub includes: Vec<Arc<Runbook>>,
    /// What the report states as observed facts (`[report]`), references checked.
    pub report: crate::journal::ReportFacts,
}

impl Runbook {
    /// A main or finally step by its declared id, exactly. Private: a journaled id (an
    /// instance `x[h2]`, a nested `deploy[eu]/x[h2]`) is resolved by [`Runbook::find_step`]
    /// alone, which understands instances at every level (ARCHITECTURE.md, "One resolver
    /// for journaled ids").
    fn declared(&self, id: &str) -> Option<&Step> {
        self.steps.iter().chain(self.finally.iter()).find(|s| s.id.as_str() == id)
    }

    /// A step by its path in the journal: `id` for a step of this runbook, `include/id` for
    /// a step of the runbook that the `runbook` step `include` runs (and so on down).
    /// An instance of a `for-each` step (`drain[web-1]`) is found as itself in an expanded
    /// runbook, and as its `for-each` step (`drain`) in one as written, which holds what
    /// every instance shares (its kind, approvers, inputs, title template).
    /// The same for an instance of a `for-each` `runbook` step: `deploy[eu]/gate` is `gate`
    /// of the runbook that `deploy` includes.
    pub fn find_step(&self, path: &str) -> Option<&Step> {
        match path.split_once('/') {
            None => self.step_or_for_each(path),
            Some((outer, rest)) => match &self.step_or_for_each(outer)?.action {
                Action::Runbook(inc) => self.includes.get(inc.child)?.find_step(rest),
                _ => None,
            },
        }
    }

    /// Whether undoing `step` does anything: it has a `compensate`, or it is a `runbook`
    /// step whose included runbook (at any depth) has a step that does. The dispatcher
    /// undoes every completed `runbook` step by undoing its included runbook
    /// (`machine::compensations`), so the plan's compensation chains and a hand
    /// `compensate` count such a step as compensable too.
    pub fn undoes(&self, step: &Step) -> bool {
        match (&step.compensate, &step.action) {
            (Some(_), _) => true,
            (None, Action::Runbook(inc)) => {
                self.includes.get(inc.child).is_some_and(|child| child.steps.iter().any(|s| child.undoes(s)))
            }
            (None, _) => false,
        }
    }

    /// Every unit of a run of this runbook that asks for confirmation, as journal-style
    /// paths (`drop`, `cleanup/drop`): its main and `finally` steps, and the steps of every
    /// runbook it includes at any depth (a `for-each` step stands for all its instances).
    /// The one predicate behind every "does this run ask?" check (`submit`, the console's
    /// start form and handler, a terminal run's refusal without a terminal): ARCHITECTURE.md,
    /// "Console and worker write paths (red team adv19a)".
    pub fn confirming_steps(&self) -> Vec<String> {
        let mut out = Vec::new();
        for step in self.steps.iter().chain(self.finally.iter()) {
            if step.confirm.is_some() {
                out.push(step.id.as_str().to_string());
            }
            if let Action::Runbook(inc) = &step.action
                && let Some(child) = self.includes.get(inc.child)
            {
                out.extend(child.confirming_steps().into_iter().map(|p| format!("{}/{p}", step.id.as_str())));
            }
        }
        out
    }

    /// Step `id`, or the `for-each` step whose instance `id` (`STEP[ELEMENT]`) is, in a
    /// runbook as written.
    fn step_or_for_each(&self, id: &str) -> Option<&Step> {
        self.declared(id).or_else(|| {
            let base = id.strip_suffix(']')?.split_once('[')?.0;
            self.declared(base).filter(|s| s.for_each.is_some())
        })
    }

    /// The runbook that the `runbook` step at `path` (as in [`Runbook::find_step`]) runs.
    pub fn find_include(&self, path: &str) -> Option<&Runbook> {
        let (outer, rest) = match path.split_once('/') {
            None => (path, None),
            Some((outer, rest)) => (outer, Some(rest)),
        };
        let Action::Runbook(inc) = &self.step_or_for_each(outer)?.action else { return None };
        let child = self.includes.get(inc.child)?;
        match rest {
            None => Some(child),
            Some(rest) => child.find_include(rest),
        }
    }

    /// True when this runbook, in a run whose journal folds to `state` scoped to it
    /// ([`crate::journal::RunState::scoped`]), failed under `on-failure = "compensate"`: a
    /// compensation of one of its own steps started (whatever became of it), or one of its
    /// steps failed under that policy. What it did is undone (or being undone): it never
    /// goes on. The steps of the runbooks it includes are not its own: an included runbook
    /// that undid itself counts here only through its `runbook` step's failure and policy.
    pub fn undid_itself(&self, state: &crate::journal::RunState) -> bool {
        use crate::journal::{CompensationStatus, StepStatus};
        state.steps.iter().any(|(id, s)| {
            s.compensation != CompensationStatus::None
                || (s.status == StepStatus::Failed
                    && self.find_step(id).is_some_and(|st| st.on_failure == OnFailure::Compensate))
        })
    }

    /// The environment variables that secrets of this runbook and of every runbook it
    /// includes are read from: removed from every step's environment.
    pub fn secret_env_vars(&self) -> Vec<String> {
        let mut vars: Vec<String> = self
            .secrets
            .iter()
            .filter_map(|s| match &s.source {
                SecretSource::Env(var) => Some(var.clone()),
                _ => None,
            })
            .collect();
        for child in &self.includes {
            vars.extend(child.secret_env_vars());
        }
        vars.sort();
        vars.dedup();
        vars
    }

    /// A parameter by name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Every file besides runbooks that a run of this runbook reads from disk (SQL script
    /// files, CA files), in this one and in every runbook it includes, once each, in a stable
    /// order. Paths are resolved from the folder of the runbook that names them, as includes
    /// are. Secret files are not among them: a secret is read at run start and its content
    /// (or any digest of it) must never reach a plan.
    pub fn reads(&self) -> Vec<FileRead> {
        let mut out: Vec<FileRead> = Vec::new();
        let mut push = |kind: ReadKind, file: &str| {
            let path = crate::validate::resolve_include(&self.source.path, file);
            if !out.iter().any(|r| r.path == path) {
                out.push(FileRead { kind, path });
            }
        };
        // A SQL script is read from the step's `dir` when it has one (as the executor does).
        let mut action = |a: &Action, dir: Option<&str>| match a {
            Action::Sql(s) => match &s.statement {
                SqlStatement::File(f) => match dir {
                    Some(d) => push(ReadKind::SqlScript, &std::path::Path::new(d).join(f).to_string_lossy()),
                    None => push(ReadKind::SqlScript, f),
                },
                SqlStatement::Query(_) => {}
            },
            Action::Http(h) => {
                if let Some(ca) = &h.ca_file {
                    push(ReadKind::CaFile, ca);
                }
            }
            Action::Run { .. }
            | Action::Cmd(_)
            | Action::Approval(_)
            | Action::Notify(_)
            | Action::Runbook(_) => {}
        };
        for c in &self.preconditions {
            action(&c.action, c.dir.as_deref());
        }
        for step in self.steps.iter().chain(self.finally.iter()) {
            for c in &step.preconditions {
                action(&c.action, c.dir.as_deref());
            }
            action(&step.action, step.dir.as_deref());
            if let Some(comp) = &step.compensate {
                action(&comp.action, comp.dir.as_deref());
            }
        }
        for child in &self.includes {
            for r in child.reads() {
                if !out.iter().any(|o| o.path == r.path) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// Every file a secret of this runbook or of a runbook it includes is read from (the
    /// `file` sources), resolved as [`Runbook::reads`] resolves paths. None of them may be
    /// read as anything else (RB056).
    pub fn secret_files(&self) -> Vec<SecretFile> {
        let mut out: Vec<SecretFile> = Vec::new();
        for s in &self.secrets {
            if let SecretSource::File(f) = &s.source {
                out.push(SecretFile {
                    path: crate::validate::resolve_include(&self.source.path, f),
                    secret: s.name.clone(),
                    span: s.span,
                    source: Arc::clone(&self.source),
                });
            }
        }
        for child in &self.includes {
            for f in child.secret_files() {
                if !out
                    .iter()
                    .any(|o| o.path == f.path && o.secret == f.secret && o.source.path == f.source.path)
                {
                    out.push(f);
                }
            }
        }
        out
    }

    /// Every source file involved: this one first, then each include's (once each).
    pub fn sources(&self) -> Vec<Arc<Source>> {
        let mut out: Vec<Arc<Source>> = vec![Arc::clone(&self.source)];
        for child in &self.includes {
            for s in child.sources() {
                if !out.iter().any(|o| o.path == s.path) {
                    out.push(s);
                }
            }
        }
        out
    }
}

/// What a file read by a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadKind {
    /// A `sql.file` script.
    SqlScript,
    /// An `http.ca-file` certificate bundle.
    CaFile,
    /// The `--params-file` of `runbook plan` (its values are pinned too).
    ParamsFile,
}

/// A file a run reads besides runbooks (see [`Runbook::reads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    /// What it is.
    pub kind: ReadKind,
    /// Its path, resolved from the folder of the runbook that names it.
    pub path: String,
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    #[test]
    fn a_deadline_saturates_instead_of_wrapping() {
        // A billion years in milliseconds is past i64::MAX as u128 -> i64 wraps negative.
        let huge = Duration::from_secs(1_000_000_000 * 31_557_600);
        assert_eq!(deadline_ms(1_000, huge), i64::MAX);
        assert_eq!(deadline_ms(1_000, Duration::MAX), i64::MAX);
        assert_eq!(deadline_ms(1_000, Duration::from_millis(500)), 1_500);
        assert!(deadline_ms(i64::MAX - 1, MAX_DURATION) == i64::MAX);
        assert!(deadline_ms(0, MAX_DURATION) > 0);
    }
}
