//! Validate: raw shapes to a checked [`Runbook`], reporting every problem at once.
//!
//! Each rule is checked where its data is: ids and kinds per unit, needs and cycles on the
//! graph, references inside templates against a [`Scope`] that says what each place may
//! read (in particular, where secrets may go). Included runbooks are read through a
//! [`Loader`] supplied by the caller, so this module does no IO.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::{FastMap, FastSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;
use regex::Regex;

use crate::diagnostic::{self, Code, Diagnostic, Severity, Source};
use crate::graph::{BitSet, Graph};
use crate::model::*;
use crate::params;
use crate::parse::{self, Document, Unit};
use crate::raw::*;
use crate::span::{Span, Spanned};
use crate::suggest::{did_you_mean, did_you_mean_suffix};
use crate::template::{self, Mode};

/// Reads included runbook files for the validator.
pub trait Loader {
    /// The text of the file at `path` (already joined to the including file's folder), or a
    /// one-line reason it cannot be read.
    fn load(&self, path: &str) -> Result<String, String>;
}

/// A loader for runbooks that include nothing; any include fails to load.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoIncludes;

impl Loader for NoIncludes {
    fn load(&self, _path: &str) -> Result<String, String> {
        Err("includes are not available here".into())
    }
}

/// The outcome of checking one file and everything it includes.
#[derive(Debug)]
pub struct Checked {
    /// The runbook, when there is no error.
    pub runbook: Option<Arc<Runbook>>,
    /// Every problem found, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// True when at least one diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Parse and validate one runbook file and its includes.
pub fn check(source: Arc<Source>, loader: &dyn Loader) -> Checked {
    crate::suggest::reset();
    let mut cx = IncludeCx { stack: vec![normalize(&source.path)], cache: HashMap::new() };
    let (runbook, mut diagnostics) = check_in(source, loader, &mut cx);
    diagnostic::sort(&mut diagnostics);
    Checked { runbook, diagnostics }
}

struct IncludeCx {
    /// Normalized paths of the files being checked, outermost first.
    stack: Vec<String>,
    /// Files already checked: their runbook if valid.
    cache: HashMap<String, Option<Arc<Runbook>>>,
}

fn check_in(
    source: Arc<Source>,
    loader: &dyn Loader,
    cx: &mut IncludeCx,
) -> (Option<Arc<Runbook>>, Vec<Diagnostic>) {
    let (doc, mut diags) = parse::parse(&source);
    let syntax_ok = !diags.iter().any(|d| d.code == Code::TomlSyntax);
    if !syntax_ok {
        return (None, diags);
    }
    let mut v = Validator::new(&doc, loader, cx);
    let runbook = v.run(&doc);
    diags.append(&mut v.diags);
    let ok = !diags.iter().any(|d| d.severity == Severity::Error);
    (if ok { runbook.map(Arc::new) } else { None }, diags)
}

/// Lexically normalize a path (no file system access): drop `.`, fold `..`.
pub fn normalize(path: &str) -> String {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // Fold `a/..`, never `../..`: a leading `..` stays (popping it would turn
                // `../../x` into `x`).
                let last_is_normal = matches!(out.components().next_back(), Some(Component::Normal(_)));
                if !(last_is_normal && out.pop()) {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.to_string_lossy().into_owned()
}

/// The path of `file` written in the runbook at `including`.
pub fn resolve_include(including: &str, file: &str) -> String {
    let dir = Path::new(including).parent().unwrap_or_else(|| Path::new(""));
    normalize(&dir.join(file).to_string_lossy())
}

/// The candidates of a "did you mean" search, or none when there are too many to search
/// (see [`crate::suggest::MAX_CANDIDATES`]): collecting them per lookup would already be
/// quadratic.
fn few<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Vec<&'a str> {
    if names.len() > crate::suggest::MAX_CANDIDATES { Vec::new() } else { names.collect() }
}

/// Whether a text parses as TOML with a `[runbook]` table: only then may diagnostics quote
/// an included file.
pub fn is_runbook_text(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| t.get("runbook").is_some_and(toml::Value::is_table))
}

/// `^[a-z][a-z0-9_]*$`: step, param, output, precondition and escalation ids.
fn is_id(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`: secret and environment variable names.
fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `^[a-z][a-z0-9_-]*$`: runbook names.
fn is_runbook_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

const DEFAULT_SHELL: [&str; 5] = ["bash", "-e", "-o", "pipefail", "-c"];
const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const HTTP_OUTPUTS: [&str; 5] = ["status", "headers", "body", "json", "latency_ms"];
const SQL_OUTPUTS: [&str; 2] = ["rows", "rows_affected"];
/// minijinja's global functions: names a template may call that are not variables.
const TEMPLATE_FUNCTIONS: [&str; 3] = ["range", "dict", "namespace"];
const KINDS: &str = "`run`, `cmd`, `http`, `sql`, `approval`, `notify` or `runbook`";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Main,
    Finally,
}

impl Section {
    fn table(self) -> &'static str {
        match self {
            Section::Main => "steps",
            Section::Finally => "finally",
        }
    }
}

/// Direct needs of each step, with the span of each entry (`None`: implicit).
type Needs = FastMap<String, Vec<(String, Option<Span>)>>;

struct StepInfo {
    section: Section,
    span: Span,
    /// Outputs other steps may read; `None` when the step did not parse (unknown).
    outputs: Option<Vec<String>>,
    /// Outputs whose type makes them inert in shell code (typed approval inputs).
    inert: Vec<String>,
    /// An `approval` step: its outputs are what a person typed, never an observation.
    approval: bool,
}

/// Where a template is written, rendered into messages only when one is needed.
#[derive(Clone, Copy)]
enum Place<'s> {
    /// Not yet known (a base scope that callers complete).
    Unset,
    /// `the lock name`, ...: a fixed description.
    Text(&'s str),
    /// "the `FIELD` of WHAT".
    Field(&'s str, &'s str),
    /// "the `PREFIX.KEY` of WHAT".
    Keyed(&'s str, &'s str, &'s str),
    /// "the `run` text of WHAT".
    RunText(&'s str),
}

impl Place<'_> {
    /// True for command text, where a secret would show in `ps`.
    fn is_command(&self) -> bool {
        matches!(self, Place::RunText(_) | Place::Field("cmd", _))
    }
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Unset => f.write_str("a template"),
            Place::Text(t) => f.write_str(t),
            Place::Field(field, of) => write!(f, "the `{field}` of {of}"),
            Place::Keyed(prefix, key, of) => write!(f, "the `{prefix}.{key}` of {of}"),
            Place::RunText(of) => write!(f, "the `run` text of {of}"),
        }
    }
}

/// What a template in one place may read.
#[derive(Clone, Copy)]
struct Scope<'s> {
    /// Where the template is, for messages: "the `run` text of step `backup`".
    place: Place<'s>,
    /// Secrets may be interpolated here.
    secrets: bool,
    /// The step whose ancestors' outputs may be read (`None`: no step outputs).
    step: Option<&'s str>,
    /// The step may read its own outputs (compensations).
    self_outputs: bool,
    /// `run.status` is set (finally steps).
    finally: bool,
    /// `run.*` is available (not in the lock name).
    run_vars: bool,
    /// Names bound by the kind (`status`, `rows`...).
    locals: &'s [&'s str],
}

impl<'s> Scope<'s> {
    fn new(place: Place<'s>) -> Self {
        Scope {
            place,
            secrets: false,
            step: None,
            self_outputs: false,
            finally: false,
            run_vars: true,
            locals: &[],
        }
    }
    fn secrets(mut self, yes: bool) -> Self {
        self.secrets = yes;
        self
    }
    fn locals(mut self, locals: &'s [&'s str]) -> Self {
        self.locals = locals;
        self
    }
}

struct Validator<'a> {
    source: Arc<Source>,
    loader: &'a dyn Loader,
    cx: &'a mut IncludeCx,
    diags: Vec<Diagnostic>,
    params: BTreeMap<String, Option<ParamType>>,
    secrets: BTreeSet<String>,
    steps: FastMap<String, StepInfo>,
    /// Index of every step: main steps first, then finally steps, in declaration order.
    step_index: FastMap<String, usize>,
    main_count: usize,
    /// Needs over `step_index`; their ancestor sets are computed on the first question (most
    /// runbooks never read an output, and the sets cost n²/64 words).
    index_needs: Graph,
    ancestors: std::cell::OnceCell<Vec<Option<BitSet>>>,
    includes: Vec<Arc<Runbook>>,
    include_index: FastMap<String, usize>,
    /// Variables read by each template text already analysed (runbooks repeat templates).
    analysed: FastMap<String, Result<Arc<BTreeSet<String>>, template::TemplateError>>,
    /// Defaults of the parameters, for the placeholder context.
    param_defaults: Vec<Param>,
    /// Built on first use: only templates that call filters or functions need a trial render.
    placeholder: Option<template::Context>,
}

impl<'a> Validator<'a> {
    fn new(doc: &Document, loader: &'a dyn Loader, cx: &'a mut IncludeCx) -> Self {
        Validator {
            source: Arc::clone(&doc.source),
            loader,
            cx,
            diags: Vec::new(),
            params: BTreeMap::new(),
            secrets: BTreeSet::new(),
            steps: FastMap::default(),
            step_index: FastMap::default(),
            main_count: 0,
            index_needs: Graph::new(Vec::new()),
            ancestors: std::cell::OnceCell::new(),
            includes: Vec::new(),
            include_index: FastMap::default(),
            analysed: FastMap::default(),
            param_defaults: Vec::new(),
            placeholder: None,
        }
    }

    fn err(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, &self.source, span, message));
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn run(&mut self, doc: &Document) -> Option<Runbook> {
        let params = self.params_section(&doc.params);
        let secrets = self.secrets_section(&doc.secrets);
        let meta = doc.meta.as_ref().and_then(|m| self.meta(m));
        let defaults = self.defaults(doc.defaults.as_ref());
        self.collect_steps(&doc.steps, Section::Main);
        self.collect_steps(&doc.finally, Section::Finally);
        let main_needs = self.needs(&doc.steps, Section::Main);
        let finally_needs = self.needs(&doc.finally, Section::Finally);
        self.cycles(&doc.steps, &main_needs);
        self.cycles(&doc.finally, &finally_needs);
        let main_order: Vec<&str> = doc.steps.iter().map(|u| u.id.value.as_str()).collect();
        let finally_order: Vec<&str> = doc.finally.iter().map(|u| u.id.value.as_str()).collect();
        self.compute_ancestors(&main_needs, &finally_needs, &main_order, &finally_order);
        self.param_defaults = params.clone();

        let preconditions = self.preconditions(&doc.preconditions, None, "runbook");
        let steps = self.steps(&doc.steps, Section::Main, &main_needs, &defaults);
        let finally = self.steps(&doc.finally, Section::Finally, &finally_needs, &defaults);
        let escalations = self.escalations(&doc.escalations);
        let report = self.report_section(doc);

        let (name, title, description, estimate, max_parallel, lock) = meta?;
        Some(Runbook {
            source: Arc::clone(&self.source),
            name,
            title,
            description,
            estimate,
            max_parallel,
            lock,
            params,
            secrets,
            preconditions,
            steps,
            finally,
            escalations,
            includes: std::mem::take(&mut self.includes),
            report,
        })
    }

    // ----- [report] ----------------------------------------------------------------------

    /// The `[report]` table: each entry names a step (of `steps` or `finally`) and one of its
    /// declared outputs, or a step's compensation and one of the compensation's outputs.
    fn report_section(&mut self, doc: &Document) -> crate::journal::ReportFacts {
        let mut facts = crate::journal::ReportFacts::default();
        let Some(r) = &doc.report else { return facts };
        let compensation_outputs: FastMap<&str, Vec<String>> = doc
            .steps
            .iter()
            .filter_map(|u| {
                let c = u.raw.as_ref()?.compensate.as_ref()?;
                let outs =
                    c.value.outputs.as_deref().unwrap_or(&[]).iter().map(|o| o.value.clone()).collect();
                Some((u.id.value.as_str(), outs))
            })
            .collect();
        let check = |this: &mut Self, key: &str, s: &SpannedString| -> Option<String> {
            let Some((step, compensate, output)) = crate::journal::parse_fact_ref(&s.value) else {
                this.err(Code::ReportReference, s.span, format!("`report.{key}` is not a reference to an output: `{}`", s.value))
                    .help = Some("write `STEP.OUTPUT` (a step's declared output) or `STEP.compensate.OUTPUT` (its compensation's)".into());
                return None;
            };
            let Some(info) = this.steps.get(step) else {
                let known: Vec<&str> = this.steps.keys().map(String::as_str).collect();
                this.err(
                    Code::ReportReference,
                    s.span,
                    format!(
                        "`report.{key}` names unknown step `{step}`{}",
                        did_you_mean_suffix(step, known.into_iter())
                    ),
                )
                .help = Some("name a step of `[steps]` or `[finally]` of this runbook".into());
                return None;
            };
            if info.approval && !compensate {
                this.err(
                    Code::ReportReference,
                    s.span,
                    format!(
                        "`report.{key}` names `{step}.{output}`, an input of approval `{step}`: what a person typed, not an observation"
                    ),
                )
                .help = Some(
                    "name the output of a step that observes it (a `run`, `cmd`, `http` or `sql` step); what people say goes in an approval input the report shows as theirs (`result`, `root_cause`, `impact`)".into(),
                );
                return None;
            }
            let outputs: Vec<String> = if compensate {
                match compensation_outputs.get(step) {
                    Some(o) => o.clone(),
                    None => {
                        this.err(
                            Code::ReportReference,
                            s.span,
                            format!("`report.{key}` names the compensation of `{step}`, which has none"),
                        )
                        .help = Some(format!(
                            "give `{step}` a `compensate` that declares `outputs = [\"{output}\"]`, or name a step's output"
                        ));
                        return None;
                    }
                }
            } else {
                info.outputs.clone().unwrap_or_default()
            };
            if !outputs.iter().any(|o| o == output) {
                let whose = if compensate {
                    format!("the compensation of `{step}`")
                } else {
                    format!("step `{step}`")
                };
                let list = if outputs.is_empty() {
                    "none".to_string()
                } else {
                    format!("`{}`", outputs.join("`, `"))
                };
                this.err(
                    Code::ReportReference,
                    s.span,
                    format!(
                        "`report.{key}` names output `{output}`, which {whose} does not declare{}",
                        did_you_mean_suffix(output, outputs.iter().map(String::as_str))
                    ),
                )
                .help = Some(format!(
                    "its outputs: {list}; declare it with `outputs = [...]` and write it to `$RUNBOOK_OUTPUT`"
                ));
                return None;
            }
            Some(s.value.clone())
        };
        facts.version_before = r.version_before.as_ref().and_then(|s| check(self, "version-before", s));
        facts.version_after = r.version_after.as_ref().and_then(|s| check(self, "version-after", s));
        facts.restore_point = r.restore_point.as_ref().and_then(|s| check(self, "restore-point", s));
        facts.evidence =
            r.evidence.as_deref().unwrap_or(&[]).iter().filter_map(|s| check(self, "evidence", s)).collect();
        facts
    }

    // ----- [runbook] ---------------------------------------------------------------------

    #[allow(clippy::type_complexity)]
    fn meta(
        &mut self,
        m: &RawMeta,
    ) -> Option<(String, Option<String>, Option<String>, Option<Estimate>, Option<u32>, Option<Template>)>
    {
        if !is_runbook_name(&m.name.value) {
            self.err(Code::InvalidId, m.name.span, format!("invalid runbook name `{}`", m.name.value))
                .help = Some("a runbook name is lowercase letters, digits, `_` and `-`, starting with a letter (`^[a-z][a-z0-9_-]*$`)".into());
        }
        let estimate = m.estimate.as_ref().and_then(|e| self.estimate(e));
        let max_parallel = match &m.max_parallel {
            Some(mp) if mp.value < 1 || mp.value > 10_000 => {
                self.err(
                    Code::InvalidValue,
                    mp.span,
                    format!("`max-parallel` must be between 1 and 10000, found {}", mp.value),
                )
                .help = Some("remove it to use the number of CPUs".into());
                None
            }
            Some(mp) => Some(mp.value as u32),
            None => None,
        };
        let lock_scope = Scope { run_vars: false, ..Scope::new(Place::Text("the lock name")) };
        let lock = m.lock.as_ref().map(|l| self.template(l, Mode::Plain, lock_scope));
        Some((m.name.value.clone(), m.title.clone(), m.description.clone(), estimate, max_parallel, lock))
    }

    // ----- params and secrets ------------------------------------------------------------

    fn params_section(&mut self, units: &[Unit<RawParam>]) -> Vec<Param> {
        let mut out = Vec::new();
        for u in units {
            self.check_id(&u.id, "parameter");
            let ty = u.raw.as_ref().map(|r| param_type(r.ty.value));
            self.params.insert(u.id.value.clone(), ty);
            if let Some(raw) = &u.raw
                && let Some(p) = self.param(&u.id, raw, "parameter")
            {
                out.push(p);
            }
        }
        out
    }

    fn param(&mut self, id: &Spanned<String>, raw: &RawParam, what: &str) -> Option<Param> {
        let ty = param_type(raw.ty.value);
        let name = &id.value;
        let mut ok = true;
        let pattern = match &raw.pattern {
            Some(p) if ty != ParamType::String => {
                self.err(
                    Code::MisplacedKey,
                    p.span,
                    format!("`pattern` is only for string {what}s; `{name}` is {}", ty.as_str()),
                )
                .help = Some("remove `pattern`, or use `enum` to restrict the values".into());
                ok = false;
                None
            }
            Some(p) => match Regex::new(&p.value) {
                Ok(_) => Some(p.value.clone()),
                Err(e) => {
                    let detail = e.to_string().lines().last().unwrap_or("").trim().to_string();
                    self.err(Code::InvalidParam, p.span, format!("the pattern of {what} `{name}` does not compile: {detail}"))
                        .help = Some("patterns use Rust regex syntax (https://docs.rs/regex); use a TOML literal string '...' to avoid escaping backslashes".into());
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let allowed = match &raw.allowed {
            Some(list) if list.value.is_empty() => {
                self.err(Code::InvalidParam, list.span, format!("the `enum` of {what} `{name}` is empty"))
                    .help = Some("list the allowed values, or remove `enum`".into());
                ok = false;
                None
            }
            Some(list) => {
                let mut values = Vec::new();
                for v in &list.value {
                    match params::from_toml(ty, v) {
                        Ok(pv) => values.push(pv),
                        Err(e) => {
                            self.err(
                                Code::InvalidParam,
                                list.span,
                                format!("the `enum` of {what} `{name}` has a value of the wrong type: {e}"),
                            )
                            .help = Some(format!("every `enum` value must be {}", ty.as_str()));
                            ok = false;
                        }
                    }
                }
                Some(values)
            }
            None => None,
        };
        let mut param = Param {
            name: name.clone(),
            span: id.span,
            ty,
            description: raw.description.clone(),
            default: None,
            allowed,
            pattern,
        };
        if let Some(d) = &raw.default {
            match params::from_toml(ty, &d.value) {
                Ok(v) => {
                    if ok && let Err(e) = params::check(&param, &v) {
                        self.err(
                            Code::InvalidDefault,
                            d.span,
                            format!("the default of {what} `{name}` is invalid: {e}"),
                        )
                        .help = Some("fix the default, or the `enum`/`pattern` it must satisfy".into());
                        ok = false;
                    }
                    param.default = Some(v);
                }
                Err(e) => {
                    self.err(
                        Code::InvalidDefault,
                        d.span,
                        format!("the default of {what} `{name}` has the wrong type: {e}"),
                    )
                    .help = Some(format!("`{name}` is declared with `type = \"{}\"`", ty.as_str()));
                    ok = false;
                }
            }
        }
        ok.then_some(param)
    }

    fn secrets_section(&mut self, units: &[Unit<RawSecret>]) -> Vec<Secret> {
        let mut out = Vec::new();
        for u in units {
            if !is_env_name(&u.id.value) {
                self.err(Code::InvalidId, u.id.span, format!("invalid secret name `{}`", u.id.value)).help =
                    Some("secret names are environment-style: letters, digits and `_`, not starting with a digit (`^[A-Za-z_][A-Za-z0-9_]*$`)".into());
            }
            self.secrets.insert(u.id.value.clone());
            let Some(raw) = &u.raw else { continue };
            let mut sources = Vec::new();
            if let Some(e) = &raw.env {
                sources.push(("env", e.span, SecretSource::Env(e.value.clone())));
            }
            if let Some(f) = &raw.file {
                sources.push(("file", f.span, SecretSource::File(f.value.clone())));
            }
            if let Some(c) = &raw.command {
                if c.value.is_empty() {
                    self.err(
                        Code::InvalidValue,
                        c.span,
                        format!("the `command` of secret `{}` is empty", u.id.value),
                    )
                    .help = Some(
                        "`command` is an argv array: the program first, e.g. `[\"pass\", \"show\", \"db\"]`"
                            .into(),
                    );
                }
                sources.push(("command", c.span, SecretSource::Command(c.value.clone())));
            }
            if let (Some(f), None) = (&raw.first_line, &raw.file) {
                self.err(
                    Code::MisplacedKey,
                    f.span,
                    format!("`first-line` of secret `{}` needs a `file` source", u.id.value),
                )
                .help = Some(
                    "`first-line = true` reads only the first line of the secret's `file`; remove it".into(),
                );
            }
            match sources.len() {
                1 => {
                    if let Some((_, _, source)) = sources.pop() {
                        out.push(Secret {
                            name: u.id.value.clone(),
                            source,
                            description: raw.description.clone(),
                            first_line: raw.first_line.as_ref().is_some_and(|f| f.value),
                        });
                    }
                }
                0 => {
                    self.err(
                        Code::ExactlyOneOf,
                        u.id.span,
                        format!("secret `{}` has no source", u.id.value),
                    )
                    .help = Some(
                        "give it exactly one of `env = \"VAR\"`, `file = \"path\"` or `command = [...]`"
                            .into(),
                    );
                }
                _ => {
                    let names: Vec<&str> = sources.iter().map(|s| s.0).collect();
                    let span = sources[1].1;
                    self.err(
                        Code::ExactlyOneOf,
                        span,
                        format!(
                            "secret `{}` has {} sources (`{}`)",
                            u.id.value,
                            names.len(),
                            names.join("`, `")
                        ),
                    )
                    .help = Some("keep exactly one of `env`, `file` or `command`".into());
                }
            }
        }
        out
    }

    // ----- defaults ----------------------------------------------------------------------

    fn defaults(&mut self, d: Option<&RawDefaults>) -> Defaults {
        let mut out = Defaults::default();
        let Some(d) = d else { return out };
        out.timeout = d.timeout.as_ref().and_then(|t| self.duration(t, "defaults.timeout"));
        if let Some(r) = &d.retry {
            out.retry = self.retry(r, "defaults.retry");
        }
        if let Some(s) = &d.shell {
            out.shell = self.shell(s);
        }
        if let Some(f) = &d.on_failure {
            out.on_failure = on_failure(f.value);
        }
        out
    }

    fn shell(&mut self, s: &Spanned<Vec<String>>) -> Option<Vec<String>> {
        if s.value.is_empty() || s.value[0].trim().is_empty() {
            self.err(Code::InvalidValue, s.span, "`shell` is empty").help = Some(
                "`shell` is an argv array that the script is appended to, e.g. `[\"bash\", \"-c\"]`".into(),
            );
            return None;
        }
        Some(s.value.clone())
    }

    // ----- steps: ids, needs, graph ------------------------------------------------------

    fn check_id(&mut self, id: &Spanned<String>, what: &str) -> bool {
        if is_id(&id.value) {
            return true;
        }
        let suggestion = suggest_id(&id.value);
        self.err(Code::InvalidId, id.span, format!("invalid {what} id `{}`", id.value)).help = Some(format!(
            "ids are lowercase letters, digits and `_`, starting with a letter (`^[a-z][a-z0-9_]*$`) so templates can name them{}",
            suggestion.map(|s| format!("; try `{s}`")).unwrap_or_default()
        ));
        false
    }

    fn collect_steps(&mut self, units: &[Unit<RawStep>], section: Section) {
        for u in units {
            self.check_id(&u.id, "step");
            if let Some(prev) = self.steps.get(&u.id.value) {
                let prev_span = prev.span;
                let prev_section = prev.section.table();
                let d = Diagnostic::error(
                    Code::DuplicateId,
                    &self.source,
                    u.id.span,
                    format!("step id `{}` is used twice", u.id.value),
                )
                .with_label("used again here")
                .with_related(prev_span, format!("first used in `[{prev_section}]` here"))
                .with_help("step ids are shared by `[steps]` and `[finally]`; rename one of them");
                self.push(d);
                continue;
            }
            let outputs = u.raw.as_ref().map(|r| self.step_outputs(&u.id.value, r));
            let inert = u
                .raw
                .as_ref()
                .and_then(|r| r.approval.as_ref())
                .and_then(|a| a.value.inputs.as_ref())
                .map(|inputs| {
                    inputs
                        .iter()
                        .filter(|(_, p)| match p.ty.value {
                            RawParamType::String => p.allowed.as_ref().is_some_and(|a| {
                                a.value.iter().all(|v| v.as_str().is_some_and(crate::shell::inert))
                            }),
                            _ => true,
                        })
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let approval = u.raw.as_ref().is_some_and(|r| r.approval.is_some());
            self.steps
                .insert(u.id.value.clone(), StepInfo { section, span: u.id.span, outputs, inert, approval });
        }
    }

    /// The outputs a step offers to others (and checks its `outputs` list).
    fn step_outputs(&mut self, id: &str, raw: &RawStep) -> Vec<String> {
        let fixed: Option<(&str, Vec<String>)> = if raw.http.is_some() {
            Some(("http", HTTP_OUTPUTS.iter().map(|s| s.to_string()).collect()))
        } else if raw.sql.is_some() {
            Some(("sql", SQL_OUTPUTS.iter().map(|s| s.to_string()).collect()))
        } else if let Some(a) = &raw.approval {
            Some((
                "approval",
                a.value.inputs.as_ref().map(|i| i.keys().cloned().collect()).unwrap_or_default(),
            ))
        } else if raw.notify.is_some() {
            Some(("notify", Vec::new()))
        } else {
            None
        };
        let declared = raw.outputs.as_deref().unwrap_or(&[]);
        if let (Some((kind, fixed)), Some(first)) = (&fixed, declared.first()) {
            let list =
                if fixed.is_empty() { "none".to_string() } else { format!("`{}`", fixed.join("`, `")) };
            self.err(
                Code::MisplacedKey,
                first.span,
                format!("`outputs` is not allowed on the {kind} step `{id}`"),
            )
            .help = Some(format!("a {kind} step's outputs are fixed: {list}; remove `outputs`"));
        }
        if let Some((_, fixed)) = fixed {
            return fixed;
        }
        let mut seen: FastMap<&str, Span> = FastMap::default();
        let mut out = Vec::new();
        for o in declared {
            self.check_id(o, "output");
            if let Some(first) = seen.get(o.value.as_str()) {
                let first = *first;
                let d = Diagnostic::error(
                    Code::DuplicateId,
                    &self.source,
                    o.span,
                    format!("output `{}` of step `{id}` is listed twice", o.value),
                )
                .with_related(first, "first listed here")
                .with_help("list each output once");
                self.push(d);
                continue;
            }
            seen.insert(&o.value, o.span);
            out.push(o.value.clone());
        }
        out
    }

    /// Direct needs of each step of a section, with the span of each entry (`None`: implicit).
    fn needs(&mut self, units: &[Unit<RawStep>], section: Section) -> Needs {
        let mut out = FastMap::with_capacity_and_hasher(units.len(), Default::default());
        let mut previous: Option<&str> = None;
        for u in units {
            let id = u.id.value.as_str();
            let mut list = Vec::new();
            match u.raw.as_ref().and_then(|r| r.needs.as_ref()) {
                Some(needs) => {
                    let mut seen = FastSet::default();
                    for n in &needs.value {
                        if !seen.insert(n.value.as_str()) {
                            self.err(
                                Code::DuplicateId,
                                n.span,
                                format!("step `{id}` needs `{}` twice", n.value),
                            )
                            .help = Some("list each need once".into());
                            continue;
                        }
                        if n.value == id {
                            self.err(Code::SelfNeed, n.span, format!("step `{id}` needs itself"))
                                .set_label("this is the step's own id")
                                .help = Some("remove it from `needs`".into());
                            continue;
                        }
                        match self.steps.get(&n.value).map(|s| s.section) {
                            Some(s) if s == section => list.push((n.value.clone(), Some(n.span))),
                            Some(other) => {
                                let msg = match section {
                                    Section::Main => {
                                        format!("step `{id}` needs `{}`, a `finally` step", n.value)
                                    }
                                    Section::Finally => {
                                        format!("finally step `{id}` needs `{}`, a main step", n.value)
                                    }
                                };
                                let help = match other {
                                    Section::Finally => {
                                        "`finally` steps run after every main step; a main step cannot wait for one"
                                    }
                                    Section::Main => {
                                        "`finally` steps already run after every main step; `needs` in `[finally]` may only name other finally steps"
                                    }
                                };
                                self.err(Code::NeedsAcross, n.span, msg).help = Some(help.into());
                            }
                            None => {
                                // Too many ids to search or list: a generated file, and a
                                // search per unknown reference would be quadratic.
                                let many = self.steps.len() > crate::suggest::MAX_CANDIDATES;
                                let mut candidates: Vec<&str> = if many {
                                    Vec::new()
                                } else {
                                    self.steps
                                        .iter()
                                        .filter(|(k, s)| s.section == section && k.as_str() != id)
                                        .map(|(k, _)| k.as_str())
                                        .collect()
                                };
                                candidates.sort_unstable();
                                let suggestion =
                                    did_you_mean(&n.value, candidates.iter().copied()).map(str::to_string);
                                let help = match &suggestion {
                                    Some(s) => format!("did you mean `{s}`?"),
                                    None if many => format!(
                                        "the runbook has {} steps; check the id against `[{}]`",
                                        self.steps.len(),
                                        section.table()
                                    ),
                                    None if candidates.is_empty() => {
                                        format!("there are no other steps in `[{}]`", section.table())
                                    }
                                    None => {
                                        format!("steps in `[{}]`: {}", section.table(), candidates.join(", "))
                                    }
                                };
                                let d = Diagnostic::error(
                                    Code::UnknownNeed,
                                    &self.source,
                                    n.span,
                                    format!(
                                        "step `{id}` needs unknown step `{}`{}",
                                        n.value,
                                        suggestion
                                            .map(|s| format!(" (did you mean `{s}`?)"))
                                            .unwrap_or_default()
                                    ),
                                )
                                .with_label("no step with this id")
                                .with_help(help);
                                self.push(d);
                            }
                        }
                    }
                }
                None => {
                    if let Some(prev) = previous {
                        list.push((prev.to_string(), None));
                    }
                }
            }
            out.insert(id.to_string(), list);
            previous = Some(id);
        }
        out
    }

    fn cycles(&mut self, units: &[Unit<RawStep>], needs: &Needs) {
        let order: FastMap<&str, usize> =
            units.iter().enumerate().map(|(i, u)| (u.id.value.as_str(), i)).collect();
        let edges: Vec<Vec<usize>> = units
            .iter()
            .map(|u| {
                needs
                    .get(&u.id.value)
                    .map(|l| l.iter().filter_map(|(n, _)| order.get(n.as_str()).copied()).collect())
                    .unwrap_or_default()
            })
            .collect();
        // The common case: a topological order covers every step, so there is no cycle.
        if Graph::new(edges).topo_order().len() == units.len() {
            return;
        }
        let mut graph: DiGraphMap<usize, ()> = DiGraphMap::new();
        for (id, list) in needs {
            let Some(&from) = order.get(id.as_str()) else { continue };
            graph.add_node(from);
            for (n, _) in list {
                if let Some(&to) = order.get(n.as_str()) {
                    graph.add_edge(from, to, ());
                }
            }
        }
        let mut sccs: Vec<Vec<usize>> = tarjan_scc(&graph).into_iter().filter(|c| c.len() > 1).collect();
        for c in &mut sccs {
            c.sort_unstable();
        }
        sccs.sort();
        for scc in sccs {
            let members: HashSet<usize> = scc.iter().copied().collect();
            let start = scc[0];
            let path = cycle_path(&graph, start, &members);
            let names: Vec<&str> = path.iter().map(|&i| units[i].id.value.as_str()).collect();
            let first = names[0];
            let second = names.get(1).copied().unwrap_or(first);
            let span = needs
                .get(first)
                .and_then(|l| l.iter().find(|(n, _)| n == second))
                .and_then(|(_, s)| *s)
                .unwrap_or(units[start].id.span);
            let implicit: Vec<String> = path
                .windows(2)
                .filter_map(|w| {
                    let a = units[w[0]].id.value.as_str();
                    let b = units[w[1]].id.value.as_str();
                    let is_implicit = needs
                        .get(a)
                        .and_then(|l| l.iter().find(|(n, _)| n == b))
                        .is_some_and(|(_, s)| s.is_none());
                    is_implicit.then(|| {
                        format!("`{a}` has no `needs`, so it follows `{b}`, the step declared before it")
                    })
                })
                .collect();
            let mut help = "remove one of these needs; `a -> b` means `a` needs `b`".to_string();
            if !implicit.is_empty() {
                help.push_str(&format!(" ({})", implicit.join("; ")));
            }
            let d = Diagnostic::error(
                Code::Cycle,
                &self.source,
                span,
                format!("steps form a cycle: {}", names.join(" -> ")),
            )
            .with_label("the cycle starts here")
            .with_help(help);
            self.push(d);
        }
    }

    fn compute_ancestors(
        &mut self,
        main: &Needs,
        finally: &Needs,
        main_order: &[&str],
        finally_order: &[&str],
    ) {
        self.main_count = main_order.len();
        self.step_index =
            main_order.iter().chain(finally_order).enumerate().map(|(i, id)| (id.to_string(), i)).collect();
        let needs: Vec<Vec<usize>> = main_order
            .iter()
            .map(|id| (id, main))
            .chain(finally_order.iter().map(|id| (id, finally)))
            .map(|(id, graph)| {
                graph
                    .get(*id)
                    .map(|l| l.iter().filter_map(|(n, _)| self.step_index.get(n).copied()).collect())
                    .unwrap_or_default()
            })
            .collect();
        self.index_needs = Graph::new(needs);
    }

    /// True when `target`'s outputs exist before `current` runs: an ancestor through needs,
    /// or any main step for a finally step. Unknown (a cycle, already reported) counts as true.
    fn is_ancestor(&self, current: &str, target: &str) -> bool {
        let (Some(&c), Some(&t)) = (self.step_index.get(current), self.step_index.get(target)) else {
            return false;
        };
        if c >= self.main_count && t < self.main_count {
            return true;
        }
        match self.ancestors.get_or_init(|| self.index_needs.ancestors()).get(c) {
            Some(Some(set)) => set.contains(t),
            _ => true,
        }
    }

    // ----- steps: everything else --------------------------------------------------------

    fn steps(
        &mut self,
        units: &[Unit<RawStep>],
        section: Section,
        needs: &Needs,
        defaults: &Defaults,
    ) -> Vec<Step> {
        let mut out = Vec::new();
        for u in units {
            let Some(raw) = &u.raw else { continue };
            if let Some(step) = self.step(u, raw, section, needs, defaults) {
                out.push(step);
            }
        }
        out
    }

    fn step(
        &mut self,
        u: &Unit<RawStep>,
        raw: &RawStep,
        section: Section,
        needs: &Needs,
        defaults: &Defaults,
    ) -> Option<Step> {
        let id = u.id.value.as_str();
        let finally = section == Section::Finally;
        let what = if finally { format!("finally step `{id}`") } else { format!("step `{id}`") };
        let base = Scope { step: Some(id), finally, ..Scope::new(Place::Unset) };

        let title = raw
            .title
            .as_ref()
            .map(|t| self.template(t, Mode::Plain, Scope { place: Place::Field("title", &what), ..base }));
        let confirm = raw
            .confirm
            .as_ref()
            .map(|t| self.template(t, Mode::Plain, Scope { place: Place::Field("confirm", &what), ..base }));
        let when =
            raw.when.as_ref().map(|w| self.expr(w, Scope { place: Place::Field("when", &what), ..base }));

        let kinds = step_kinds(raw);
        let action = self.kind_count(&kinds, &u.id, &what, KINDS).and_then(|_| {
            self.action(
                ActionRef {
                    run: raw.run.as_ref(),
                    cmd: raw.cmd.as_ref(),
                    http: raw.http.as_deref(),
                    sql: raw.sql.as_deref(),
                    approval: raw.approval.as_deref(),
                    notify: raw.notify.as_deref(),
                    runbook: raw.runbook.as_deref(),
                    shell: raw.shell.as_ref(),
                },
                &what,
                base,
                defaults,
            )
        });

        // `finally` steps run while the run ends: nothing there may wait for people or run a
        // whole other runbook.
        if finally {
            for (kind, span) in [
                ("approval", raw.approval.as_ref().map(|a| a.span)),
                ("runbook", raw.runbook.as_ref().map(|r| r.span)),
            ] {
                if let Some(span) = span {
                    self.err(Code::MisplacedKey, span, format!("`{kind}` is not allowed on {what}")).help = Some(
                        "`finally` steps must finish on their own (run, cmd, http, sql, notify); put the step in `[steps]`".into(),
                    );
                }
            }
        }
        // An included runbook's outputs are its steps' outputs: name only those.
        if let (Some(Action::Runbook(inc)), Some(declared)) = (&action, &raw.outputs)
            && let Some(child) = self.includes.get(inc.child).cloned()
        {
            let offered: BTreeSet<&str> =
                child.steps.iter().flat_map(|s| s.outputs.iter().map(String::as_str)).collect();
            for name in declared.iter().filter(|n| !offered.contains(n.value.as_str())) {
                let list = offered.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ");
                self.err(
                    Code::UndeclaredReference,
                    name.span,
                    format!(
                        "{what} declares output `{}`, which no step of `{}` produces",
                        name.value, inc.file
                    ),
                )
                .help = Some(if list.is_empty() {
                    format!("`{}` produces no outputs; remove it from `outputs`", name.value)
                } else {
                    format!("the included runbook's steps produce {list}")
                });
            }
        }

        let env = self.env(raw.env.as_ref(), &what, base);
        let timeout = match &raw.timeout {
            Some(t) => self.duration(t, &format!("{}.{id}.timeout", section.table())),
            None => defaults.timeout,
        };
        let retry = match &raw.retry {
            Some(r) => self.retry(r, &format!("{}.{id}.retry", section.table())),
            None => defaults.retry.clone(),
        };
        let estimate = raw.estimate.as_ref().and_then(|e| self.estimate(e));
        let compensate = match &raw.compensate {
            Some(c) if finally => {
                self.err(Code::MisplacedKey, c.span, format!("`compensate` is not allowed on {what}")).help =
                    Some("`finally` steps are never compensated; remove `compensate`".into());
                None
            }
            Some(c) => self.compensation(c, id, &what, base, defaults).map(Box::new),
            None => None,
        };
        let preconditions = raw
            .preconditions
            .as_ref()
            .map(|p| {
                let units: Vec<(Spanned<String>, &RawPrecondition)> =
                    p.iter().map(|(k, v)| (Spanned::new(k.clone(), u.id.span), v)).collect();
                self.precondition_list(&units, Some(id), &what, finally)
            })
            .unwrap_or_default();

        let action = action?;
        let idempotent = raw.idempotent.unwrap_or(match &action {
            Action::Http(h) => h.method == "GET" || h.method == "HEAD",
            _ => false,
        });
        let outputs = self.steps.get(id).and_then(|s| s.outputs.clone()).unwrap_or_default();
        Some(Step {
            id: StepId(id.to_string()),
            span: u.id.span,
            title,
            description: raw.description.clone(),
            needs: needs
                .get(id)
                .map(|l| l.iter().map(|(n, _)| StepId(n.clone())).collect())
                .unwrap_or_default(),
            when,
            confirm,
            action,
            env,
            dir: raw.dir.as_ref().map(|d| d.value.clone()),
            outputs,
            timeout,
            retry,
            idempotent,
            on_failure: raw.on_failure.as_ref().map(|f| on_failure(f.value)).unwrap_or(defaults.on_failure),
            compensate,
            preconditions,
            estimate,
        })
    }

    fn kind_count(
        &mut self,
        kinds: &[(&str, Span)],
        id: &Spanned<String>,
        what: &str,
        allowed: &str,
    ) -> Option<()> {
        match kinds.len() {
            1 => Some(()),
            0 => {
                self.err(Code::StepKind, id.span, format!("{what} has no kind")).help =
                    Some(format!("give it exactly one of {allowed}"));
                None
            }
            _ => {
                let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
                let d = Diagnostic::error(
                    Code::StepKind,
                    &self.source,
                    kinds[1].1,
                    format!("{what} has {} kinds (`{}`)", kinds.len(), names.join("`, `")),
                )
                .with_label("second kind")
                .with_related(kinds[0].1, "first kind")
                .with_help(format!("keep exactly one of {allowed}; split the work into separate steps"));
                self.push(d);
                None
            }
        }
    }

    fn action(
        &mut self,
        a: ActionRef<'_>,
        what: &str,
        base: Scope<'_>,
        defaults: &Defaults,
    ) -> Option<Action> {
        if let Some(run) = a.run {
            let place = Place::RunText(what);
            let before = self.diags.len();
            let script = self.template(run, Mode::Shell, Scope { place, ..base });
            let parsed = self.diags.len() == before;
            for range in template::unknown_logic(&run.value).into_iter().filter(|_| parsed) {
                let span = template::inner_span(&self.source, run.span, Some(range));
                self.err(Code::UnknownLogic, span, format!("{place} branches or computes on a value the plan cannot know"))
                    .set_label("the plan would show one branch and the run take another")
                    .help = Some("compute in the step instead: pass the value bare (`{{ steps.x.outputs.y }}` binds it to a variable) and branch in the shell (`if [ \"$v\" = yes ]; then ...`)".into());
            }
            let mut from = 0;
            while let Some(at) = run.value[from..].find("unsafe_raw").map(|i| from + i) {
                from = at + "unsafe_raw".len();
                let span = template::inner_span(&self.source, run.span, Some(at..from));
                let d = Diagnostic::warning(
                    Code::UnsafeRaw,
                    &self.source,
                    span,
                    format!("`unsafe_raw` in {place} writes a value as shell code, unquoted"),
                )
                .with_label("shell quoting is off here")
                .with_help("a value with `;`, `$(...)` or a space changes the command; prefer plain `{{ x }}`, which is always one word, unless the value is trusted shell code");
                self.push(d);
            }
            let shell = match a.shell {
                Some(s) => self.shell(s)?,
                None => defaults
                    .shell
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()),
            };
            // Values are bound with POSIX assignments and references: another interpreter
            // would read them as its own code.
            // The interpreter that reads the text: after `env` (its options and assignments)
            // and `busybox`, the program they start (`["env", "node", "-e"]` is node).
            let mut words = shell.iter().map(|p| p.rsplit('/').next().unwrap_or(p));
            let mut program = words.next().unwrap_or_default();
            while program == "env" || program == "busybox" {
                program = words.find(|w| !w.starts_with('-') && !w.contains('=')).unwrap_or_default();
            }
            if crate::shell::POSIX_SHELLS.contains(&program) {
                self.shell_contexts(run, place);
            } else if let Some((range, _)) = template::mask_shell(&run.value).sites.into_iter().next() {
                let span = template::inner_span(&self.source, run.span, Some(range));
                self.err(
                    Code::ShellCodeContext,
                    span,
                    format!("template in {place}, which runs with `{program}`, not a POSIX shell"),
                )
                .set_label("a value here would be code")
                .help = Some(format!(
                    "values reach `run` text through shell variables, which `{program}` does not read; use a POSIX `shell` (bash, sh), or a `cmd` with the value as an argument of its own"
                ));
            }
            return Some(Action::Run { script, shell });
        }
        if let Some(cmd) = a.cmd {
            if cmd.value.is_empty() || cmd.value[0].value.trim().is_empty() {
                self.err(Code::InvalidValue, cmd.span, format!("the `cmd` of {what} is empty")).help =
                    Some("`cmd` is an argv array: the program first, e.g. `[\"git\", \"status\"]`".into());
                return None;
            }
            let place = Place::Field("cmd", what);
            let argv =
                cmd.value.iter().map(|e| self.template(e, Mode::Plain, Scope { place, ..base })).collect();
            self.argv_contexts(&cmd.value, place);
            return Some(Action::Cmd(argv));
        }
        if let Some(h) = a.http {
            return self.http(h, what, base).map(|x| Action::Http(Box::new(x)));
        }
        if let Some(s) = a.sql {
            return self.sql(s, what, base).map(|x| Action::Sql(Box::new(x)));
        }
        if let Some(ap) = a.approval {
            return self.approval(ap, what, base).map(|x| Action::Approval(Box::new(x)));
        }
        if let Some(n) = a.notify {
            return self.notify(n, what, base).map(|x| Action::Notify(Box::new(x)));
        }
        if let Some(r) = a.runbook {
            return self.include(r, what, base).map(|x| Action::Runbook(Box::new(x)));
        }
        None
    }

    fn env(
        &mut self,
        env: Option<&BTreeMap<String, SpannedString>>,
        what: &str,
        base: Scope<'_>,
    ) -> Vec<(String, Template)> {
        let Some(env) = env else { return Vec::new() };
        let mut out = Vec::new();
        for (k, v) in env {
            if !is_env_name(k) {
                self.err(
                    Code::InvalidId,
                    v.span,
                    format!("invalid environment variable name `{k}` in {what}"),
                )
                .help = Some(
                    "environment variable names are letters, digits and `_`, not starting with a digit"
                        .into(),
                );
            }
            let t = self.template(
                v,
                Mode::Plain,
                Scope { place: Place::Keyed("env", k, what), ..base }.secrets(true),
            );
            if crate::shell::code_variable(k) {
                for (range, expr) in template::mask_shell(&v.value).sites {
                    if self.inert_expr(&expr) || expr.starts_with("secrets.") {
                        continue;
                    }
                    let span = template::inner_span(&self.source, v.span, Some(range));
                    self.err(
                        Code::ShellCodeContext,
                        span,
                        format!("template in the value of `{k}` in the `env` of {what}, which programs run as code"),
                    )
                    .set_label("a value here would run")
                    .help = Some(format!("`{k}` decides what programs run; write its value in the runbook, or give the parameter an `enum` of plain words"));
                }
            }
            out.push((k.clone(), t));
        }
        out
    }

    fn http(&mut self, h: &Spanned<RawHttp>, what: &str, base: Scope<'_>) -> Option<HttpSpec> {
        let r = &h.value;
        let mut ok = true;
        let method = match &r.method {
            Some(m) => {
                let upper = m.value.to_ascii_uppercase();
                if !HTTP_METHODS.contains(&upper.as_str()) {
                    self.err(
                        Code::InvalidValue,
                        m.span,
                        format!(
                            "unknown HTTP method `{}` in {what}{}",
                            m.value,
                            did_you_mean_suffix(&upper, HTTP_METHODS)
                        ),
                    )
                    .help = Some(format!("use one of {}", HTTP_METHODS.join(", ")));
                    ok = false;
                }
                upper
            }
            None => "GET".to_string(),
        };
        let url = self.template(
            &r.url,
            Mode::Plain,
            Scope { place: Place::Field("http.url", what), ..base }.secrets(true),
        );
        let headers = self.template_map(r.headers.as_ref(), "http.headers", what, base, true);
        let query = self.template_map(r.query.as_ref(), "http.query", what, base, true);
        let body = r.body.as_ref().map(|b| {
            self.template(
                b,
                Mode::Plain,
                Scope { place: Place::Field("http.body", what), ..base }.secrets(true),
            )
        });
        let json =
            r.json.as_ref().map(|j| self.json_templates(j, Place::Field("http.json", what), base, true));
        if r.body.is_some() && r.json.is_some() {
            let span = r.json.as_ref().map(|j| j.span).unwrap_or(h.span);
            self.err(Code::ExactlyOneOf, span, format!("{what} has both `http.body` and `http.json`")).help =
                Some("send either a text `body` or a `json` body".into());
            ok = false;
        }
        let mut expect_status = Vec::new();
        if let Some(list) = &r.expect_status {
            for s in &list.value {
                if (100..=599).contains(s) {
                    expect_status.push(*s as u16);
                } else {
                    self.err(
                        Code::InvalidValue,
                        list.span,
                        format!("`expect-status` of {what} has {s}, which is not an HTTP status"),
                    )
                    .help = Some("statuses are between 100 and 599".into());
                    ok = false;
                }
            }
        }
        let max_latency = r.max_latency.as_ref().and_then(|d| self.duration(d, "http.max-latency"));
        let request_timeout =
            r.request_timeout.as_ref().and_then(|d| self.duration(d, "http.request-timeout"));
        let assert = r.assert.as_ref().map(|a| {
            self.expr(a, Scope { place: Place::Field("http.assert", what), ..base }.locals(&HTTP_OUTPUTS))
        });
        ok.then_some(HttpSpec {
            method,
            url,
            headers,
            query,
            body,
            json,
            expect_status,
            max_latency,
            assert,
            ca_file: r.ca_file.as_ref().map(|c| c.value.clone()),
            request_timeout,
        })
    }

    fn sql(&mut self, s: &Spanned<RawSql>, what: &str, base: Scope<'_>) -> Option<SqlSpec> {
        let r = &s.value;
        let url = self.template(
            &r.url,
            Mode::Plain,
            Scope { place: Place::Field("sql.url", what), ..base }.secrets(true),
        );
        let statement = match (&r.query, &r.file) {
            (Some(q), None) => {
                if !template::is_literal(&q.value) {
                    self.err(Code::InvalidValue, q.span, format!("the `sql.query` of {what} contains template markup"))
                        .help = Some("SQL text is never templated: write `$1`, `$2`... and pass the values in `args` (bound parameters)".into());
                }
                Some(SqlStatement::Query(q.value.clone()))
            }
            (None, Some(f)) => Some(SqlStatement::File(f.value.clone())),
            (Some(_), Some(f)) => {
                self.err(Code::ExactlyOneOf, f.span, format!("{what} has both `sql.query` and `sql.file`"))
                    .help = Some("run either one `query` or one script `file`".into());
                None
            }
            (None, None) => {
                self.err(
                    Code::ExactlyOneOf,
                    s.span,
                    format!("{what} has neither `sql.query` nor `sql.file`"),
                )
                .help = Some("add `query = \"SELECT ...\"` or `file = \"migration.sql\"`".into());
                None
            }
        };
        let args = match &r.args {
            Some(a) => {
                let place = Place::Field("sql.args", what);
                a.value
                    .iter()
                    .map(|v| self.json_templates(&Spanned::new(v.clone(), a.span), place, base, true))
                    .collect()
            }
            None => Vec::new(),
        };
        let assert = r.assert.as_ref().map(|a| {
            self.expr(a, Scope { place: Place::Field("sql.assert", what), ..base }.locals(&SQL_OUTPUTS))
        });
        Some(SqlSpec { url, statement: statement?, args, assert, read_only: r.read_only.unwrap_or(false) })
    }

    fn approval(&mut self, a: &Spanned<RawApproval>, what: &str, base: Scope<'_>) -> Option<ApprovalSpec> {
        let r = &a.value;
        let prompt = self.template(
            &r.prompt,
            Mode::Plain,
            Scope { place: Place::Field("approval.prompt", what), ..base },
        );
        let mut inputs = Vec::new();
        let mut ok = true;
        if let Some(map) = &r.inputs {
            for (k, v) in map {
                let id = Spanned::new(k.clone(), v.ty.span);
                ok &= self.check_id(&id, "approval input");
                match self.param(&id, v, "approval input") {
                    Some(p) => inputs.push(p),
                    None => ok = false,
                }
            }
        }
        let min_approvals = match &r.min_approvals {
            Some(m) if m.value < 1 || m.value > 100 => {
                self.err(
                    Code::InvalidValue,
                    m.span,
                    format!("`min-approvals` of {what} must be between 1 and 100, found {}", m.value),
                )
                .help = Some("`min-approvals` counts the distinct approvers needed; 1 is the default".into());
                ok = false;
                1
            }
            Some(m) => m.value as u32,
            None => 1,
        };
        let approvers = r.approvers.clone().unwrap_or_default();
        if !approvers.is_empty() && (min_approvals as usize) > approvers.len() {
            let span = r.min_approvals.as_ref().map(|m| m.span).unwrap_or(a.span);
            self.err(
                Code::InvalidValue,
                span,
                format!(
                    "{what} needs {min_approvals} approvals but lists only {} approvers",
                    approvers.len()
                ),
            )
            .help = Some("lower `min-approvals` or add approvers".into());
            ok = false;
        }
        let timeout = r.timeout.as_ref().and_then(|t| self.duration(t, "approval.timeout"));
        ok.then_some(ApprovalSpec {
            prompt,
            inputs,
            allow_self_approval: r.allow_self_approval.unwrap_or(approvers.is_empty()),
            approvers,
            min_approvals,
            timeout,
        })
    }

    fn notify(&mut self, n: &Spanned<RawNotify>, what: &str, base: Scope<'_>) -> Option<NotifySpec> {
        let r = &n.value;
        let webhook = self.template(
            &r.webhook,
            Mode::Plain,
            Scope { place: Place::Field("notify.webhook", what), ..base }.secrets(true),
        );
        let message = match (&r.text, &r.json) {
            (Some(t), None) => {
                let place = Place::Field("notify.text", what);
                Some(NotifyMessage::Text(self.template(t, Mode::Plain, Scope { place, ..base })))
            }
            (None, Some(j)) => {
                let place = Place::Field("notify.json", what);
                Some(NotifyMessage::Json(self.json_templates(j, place, base, false)))
            }
            (Some(_), Some(j)) => {
                self.err(
                    Code::ExactlyOneOf,
                    j.span,
                    format!("{what} has both `notify.text` and `notify.json`"),
                )
                .help = Some("send either a `text` message or a custom `json` body".into());
                None
            }
            (None, None) => {
                self.err(
                    Code::ExactlyOneOf,
                    n.span,
                    format!("{what} has neither `notify.text` nor `notify.json`"),
                )
                .help = Some("add `text = \"...\"` (Slack/Teams/Mattermost) or a custom `json` body".into());
                None
            }
        };
        Some(NotifySpec { webhook, message: message?, required: r.required.unwrap_or(false) })
    }

    fn include(&mut self, inc: &Spanned<RawInclude>, what: &str, base: Scope<'_>) -> Option<IncludeSpec> {
        let r = &inc.value;
        let path = resolve_include(&self.source.path, &r.file.value);
        let mut chain: Option<Vec<String>> = None;
        if let Some(pos) = self.cx.stack.iter().position(|p| *p == path) {
            let mut c: Vec<String> = self.cx.stack[pos..].to_vec();
            c.push(path.clone());
            chain = Some(c);
        }
        if let Some(chain) = chain {
            let msg = if chain.len() == 2 {
                format!("runbook `{}` includes itself", chain[0])
            } else {
                format!("runbooks include each other: {}", chain.join(" -> "))
            };
            self.err(Code::IncludeCycle, r.file.span, msg).help = Some(
                "a runbook cannot run itself, directly or through another runbook; remove this include"
                    .into(),
            );
            return None;
        }
        let child = match self.cx.cache.get(&path) {
            Some(c) => c.clone(),
            None => match self.loader.load(&path) {
                Err(e) => {
                    self.err(
                        Code::IncludeMissing,
                        r.file.span,
                        format!("cannot read included runbook `{}`: {e}", r.file.value),
                    )
                    .help =
                        Some(format!("the path is relative to this runbook's folder (resolved to `{path}`)"));
                    self.cx.cache.insert(path.clone(), None);
                    return None;
                }
                Ok(text) if !is_runbook_text(&text) => {
                    // Not a runbook: say so in one line and never quote it. The file named
                    // could be anything readable (`/proc/self/environ`, an `.env` file), and
                    // a diagnostic would show its lines.
                    self.err(
                        Code::IncludeRefused,
                        r.file.span,
                        format!("included file `{}` is not a runbook", r.file.value),
                    )
                    .help = Some(format!(
                        "an included runbook is a TOML file with a `[runbook]` table; `{path}` is not one (its content is not shown)"
                    ));
                    self.cx.cache.insert(path.clone(), None);
                    return None;
                }
                Ok(text) => {
                    self.cx.stack.push(path.clone());
                    let (child, mut diags) = check_in(Source::new(path.clone(), text), self.loader, self.cx);
                    self.cx.stack.pop();
                    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
                    if errors > 0 {
                        self.err(
                            Code::IncludeInvalid,
                            r.file.span,
                            format!(
                                "included runbook `{}` is not valid ({errors} problem{})",
                                r.file.value,
                                if errors == 1 { "" } else { "s" }
                            ),
                        )
                        .help = Some(format!("its problems are listed under `{path}`"));
                    }
                    self.diags.append(&mut diags);
                    self.cx.cache.insert(path.clone(), child.clone());
                    child
                }
            },
        };
        let child = match child {
            Some(c) => c,
            None => {
                if self.cx.cache.contains_key(&path)
                    && !self.diags.iter().any(|d| d.code == Code::IncludeInvalid && d.span == r.file.span)
                {
                    self.err(
                        Code::IncludeInvalid,
                        r.file.span,
                        format!("included runbook `{}` is not valid", r.file.value),
                    )
                    .help = Some(format!("check it on its own: `runbook check {path}`"));
                }
                return None;
            }
        };
        let place = Place::Field("runbook.params", what);
        let mut params = Vec::new();
        let mut ok = true;
        let given = r.params.clone().unwrap_or_default();
        for (k, v) in &given {
            match child.param(k) {
                None => {
                    let names: Vec<&str> = child.params.iter().map(|p| p.name.as_str()).collect();
                    self.err(
                        Code::IncludeParams,
                        v.span,
                        format!(
                            "runbook `{}` has no parameter `{k}`{}",
                            r.file.value,
                            did_you_mean_suffix(k, names.iter().copied())
                        ),
                    )
                    .help = Some(if names.is_empty() {
                        "it declares no parameters".to_string()
                    } else {
                        format!("its parameters: {}", names.join(", "))
                    });
                    ok = false;
                }
                Some(p) => {
                    let is_template = matches!(&v.value, toml::Value::String(s) if !template::is_literal(s));
                    if !is_template {
                        let typed = params::from_toml(p.ty, &v.value).and_then(|pv| params::check(p, &pv));
                        if let Err(e) = typed {
                            self.err(
                                Code::IncludeParams,
                                v.span,
                                format!("parameter `{k}` of runbook `{}`: {e}", r.file.value),
                            )
                            .help = Some(format!("see `[params.{k}]` in `{path}`"));
                            ok = false;
                        }
                    }
                    params.push((k.clone(), self.json_templates(v, place, base, false)));
                }
            }
        }
        for p in &child.params {
            if p.default.is_none() && !given.contains_key(&p.name) {
                self.err(
                    Code::IncludeParams,
                    inc.span,
                    format!(
                        "{what} does not pass the required parameter `{}` of runbook `{}`",
                        p.name, r.file.value
                    ),
                )
                .help = Some(format!("add it: `params = {{ {} = ... }}`", p.name));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let index = match self.include_index.get(&path) {
            Some(i) => *i,
            None => {
                self.includes.push(child);
                self.include_index.insert(path, self.includes.len() - 1);
                self.includes.len() - 1
            }
        };
        Some(IncludeSpec { file: r.file.value.clone(), span: r.file.span, child: index, params })
    }

    fn compensation(
        &mut self,
        c: &Spanned<RawAction>,
        step: &str,
        what: &str,
        base: Scope<'_>,
        defaults: &Defaults,
    ) -> Option<Compensation> {
        let r = &c.value;
        let kinds = present(&[
            ("run", r.run.as_ref().map(|x| x.span)),
            ("cmd", r.cmd.as_ref().map(|x| x.span)),
            ("http", r.http.as_ref().map(|x| x.span)),
            ("sql", r.sql.as_ref().map(|x| x.span)),
            ("notify", r.notify.as_ref().map(|x| x.span)),
        ]);
        let label = format!("the compensation of {what}");
        let scope = Scope { self_outputs: true, ..base };
        let id = Spanned::new(step.to_string(), c.span);
        self.kind_count(&kinds, &id, &label, "`run`, `cmd`, `http`, `sql` or `notify`")?;
        let action = self.action(
            ActionRef {
                run: r.run.as_ref(),
                cmd: r.cmd.as_ref(),
                http: r.http.as_deref(),
                sql: r.sql.as_deref(),
                approval: None,
                notify: r.notify.as_deref(),
                runbook: None,
                shell: r.shell.as_ref(),
            },
            &label,
            scope,
            defaults,
        );
        let env = self.env(r.env.as_ref(), &label, scope);
        let timeout = r.timeout.as_ref().and_then(|t| self.duration(t, "compensate.timeout"));
        let retry = match &r.retry {
            Some(rt) => self.retry(rt, "compensate.retry"),
            None => RetryPolicy::default(),
        };
        let mut outputs: Vec<String> = Vec::new();
        for o in r.outputs.as_deref().unwrap_or(&[]) {
            if r.run.is_none() && r.cmd.is_none() {
                self.err(Code::MisplacedKey, o.span, format!("`outputs` is not allowed on {label}"))
                    .help = Some("only a `run` or `cmd` compensation writes outputs (to `$RUNBOOK_OUTPUT`); remove `outputs`".into());
                break;
            }
            if !self.check_id(o, "output") {
                continue;
            }
            if outputs.contains(&o.value) {
                self.err(
                    Code::DuplicateId,
                    o.span,
                    format!("output `{}` of {label} is listed twice", o.value),
                )
                .help = Some("list each output once".into());
                continue;
            }
            outputs.push(o.value.clone());
        }
        let action = action?;
        let idempotent = r.idempotent.unwrap_or(match &action {
            Action::Http(h) => h.method == "GET" || h.method == "HEAD",
            _ => false,
        });
        Some(Compensation {
            action,
            env,
            dir: r.dir.as_ref().map(|d| d.value.clone()),
            timeout: timeout.or(defaults.timeout),
            retry,
            idempotent,
            outputs,
        })
    }

    fn preconditions(
        &mut self,
        map: &[Unit<RawPrecondition>],
        step: Option<&str>,
        what: &str,
    ) -> Vec<Precondition> {
        let units: Vec<(Spanned<String>, &RawPrecondition)> =
            map.iter().filter_map(|u| u.raw.as_ref().map(|r| (u.id.clone(), r))).collect();
        for u in map {
            self.check_id(&u.id, "precondition");
        }
        self.precondition_list(&units, step, what, false)
    }

    fn precondition_list(
        &mut self,
        units: &[(Spanned<String>, &RawPrecondition)],
        step: Option<&str>,
        what: &str,
        finally: bool,
    ) -> Vec<Precondition> {
        let mut out = Vec::new();
        for (id, r) in units {
            if step.is_some() {
                self.check_id(id, "precondition");
            }
            let label = format!("precondition `{}` of {what}", id.value);
            let base = Scope { step, finally, ..Scope::new(Place::Unset) };
            let kinds = present(&[
                ("run", r.run.as_ref().map(|x| x.span)),
                ("cmd", r.cmd.as_ref().map(|x| x.span)),
                ("http", r.http.as_ref().map(|x| x.span)),
                ("sql", r.sql.as_ref().map(|x| x.span)),
            ]);
            let counted = self.kind_count(&kinds, id, &label, "`run`, `cmd`, `http` or `sql`");
            let action = counted.and_then(|_| {
                self.action(
                    ActionRef {
                        run: r.run.as_ref(),
                        cmd: r.cmd.as_ref(),
                        http: r.http.as_deref(),
                        sql: r.sql.as_deref(),
                        approval: None,
                        notify: None,
                        runbook: None,
                        shell: None,
                    },
                    &label,
                    base,
                    &Defaults::default(),
                )
            });
            let message = r.message.as_ref().map(|m| {
                self.template(m, Mode::Plain, Scope { place: Place::Field("message", &label), ..base })
            });
            let env = self.env(r.env.as_ref(), &label, base);
            let timeout = r
                .timeout
                .as_ref()
                .and_then(|t| self.duration(t, "precondition timeout"))
                .unwrap_or(Duration::from_secs(60));
            // Preconditions only read: SQL runs in a read-only transaction whatever the file
            // says, HTTP only GETs or HEADs, and writing shell commands are flagged.
            let action = action.map(|a| match a {
                Action::Sql(mut spec) => {
                    spec.read_only = true;
                    Action::Sql(spec)
                }
                other => other,
            });
            if let (Some(Action::Http(h)), Some(raw)) = (&action, &r.http)
                && h.method != "GET"
                && h.method != "HEAD"
            {
                let span = raw.value.method.as_ref().map_or(raw.span, |m| m.span);
                self.err(
                    Code::PreconditionMethod,
                    span,
                    format!("{label} sends a {} request; a precondition only reads", h.method),
                )
                .help = Some(
                    "check with `method = \"GET\"` or `\"HEAD\"`; a request that changes something is a step"
                        .into(),
                );
            }
            if let Some(run) = &r.run {
                for (range, what) in crate::writes::visible_writes(&run.value) {
                    let d = template::inner_span(&self.source, run.span, Some(range));
                    self.push(
                        Diagnostic::warning(Code::PreconditionWrites, &self.source, d, format!("{label} changes something: {what}"))
                            .with_label("writes")
                            .with_help("a precondition only reads (a resume checks it again when the run stopped before passing it); move what it changes into a step, or write to /dev/null"),
                    );
                }
            }
            if let Some(cmd) = &r.cmd {
                let argv: Vec<&str> = cmd.value.iter().map(|a| a.value.as_str()).collect();
                if let Some(what) = crate::writes::argv_writes(&argv) {
                    self.push(
                        Diagnostic::warning(Code::PreconditionWrites, &self.source, cmd.span, format!("{label} changes something: {what}"))
                            .with_label("writes")
                            .with_help("a precondition only reads (a resume checks it again when the run stopped before passing it); move what it changes into a step"),
                    );
                }
            }
            if let Some(query) = r.sql.as_ref().and_then(|q| q.value.query.as_ref())
                && let Some(why) = crate::writes::sql_read_refusal(&query.value)
            {
                self.push(
                    Diagnostic::warning(Code::PreconditionWrites, &self.source, query.span, format!("{label} does more than read: {why}"))
                        .with_label("not a read-only check")
                        .with_help("a SQL precondition is one SELECT (or WITH, VALUES, TABLE, SHOW, EXPLAIN) with no side-effect function; the engine refuses any other at run time. Move what it changes into a step"),
                );
            }
            if let Some(action) = action {
                out.push(Precondition {
                    id: id.value.clone(),
                    action,
                    message,
                    env,
                    dir: r.dir.as_ref().map(|d| d.value.clone()),
                    timeout,
                });
            }
        }
        out
    }

    fn escalations(&mut self, units: &[Unit<RawEscalation>]) -> Vec<Escalation> {
        let mut out = Vec::new();
        for u in units {
            self.check_id(&u.id, "escalation");
            let Some(r) = &u.raw else { continue };
            let what = format!("escalation `{}`", u.id.value);
            let after = self.duration(&r.after, &format!("escalation.{}.after", u.id.value));
            let notify = self.notify(&r.notify, &what, Scope::new(Place::Unset));
            if let (Some(after), Some(notify)) = (after, notify) {
                out.push(Escalation { id: u.id.value.clone(), after, notify });
            }
        }
        out
    }

    // ----- values ------------------------------------------------------------------------

    fn duration(&mut self, s: &SpannedString, key: &str) -> Option<Duration> {
        match humantime::parse_duration(s.value.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    Code::InvalidDuration,
                    s.span,
                    format!("invalid duration `{}` for `{key}`: {e}", s.value),
                )
                .set_label("not a duration")
                .help = Some("write a duration such as \"30s\", \"10m\" or \"1h 30m\"".into());
                None
            }
        }
    }

    fn estimate(&mut self, s: &SpannedString) -> Option<Estimate> {
        match s.value.split_once("..") {
            None => self.duration(s, "estimate").map(|d| Estimate { low: d, high: d }),
            Some((a, b)) => {
                let low = humantime::parse_duration(a.trim());
                let high = humantime::parse_duration(b.trim());
                match (low, high) {
                    (Ok(low), Ok(high)) if low <= high => Some(Estimate { low, high }),
                    (Ok(_), Ok(_)) => {
                        self.err(
                            Code::InvalidRange,
                            s.span,
                            format!("estimate range `{}` is reversed", s.value),
                        )
                        .help = Some(format!("write the lower bound first: \"{}..{}\"", b.trim(), a.trim()));
                        None
                    }
                    _ => {
                        self.err(
                            Code::InvalidRange,
                            s.span,
                            format!("invalid estimate range `{}`", s.value),
                        )
                        .help = Some(
                            "write a duration (\"5m\") or a range of two durations (\"30m..60m\")".into(),
                        );
                        None
                    }
                }
            }
        }
    }

    fn retry(&mut self, r: &Spanned<RawRetry>, key: &str) -> RetryPolicy {
        let raw = &r.value;
        let mut p = RetryPolicy::default();
        if let Some(a) = &raw.attempts {
            if a.value < 1 || a.value > 1000 {
                self.err(
                    Code::InvalidRetry,
                    a.span,
                    format!("`{key}.attempts` must be between 1 and 1000, found {}", a.value),
                )
                .help = Some("`attempts` counts every try, the first included: 1 means no retry".into());
            } else {
                p.attempts = a.value as u32;
            }
        }
        if let Some(d) = &raw.delay
            && let Some(d) = self.duration(d, &format!("{key}.delay"))
        {
            p.delay = d;
        }
        if let Some(b) = &raw.backoff {
            if !(b.value >= 1.0 && b.value <= 100.0) {
                self.err(
                    Code::InvalidRetry,
                    b.span,
                    format!("`{key}.backoff` must be between 1.0 and 100.0, found {}", b.value),
                )
                .help =
                    Some("the delay is multiplied by `backoff` after each try; 1.0 keeps it constant".into());
            } else {
                p.backoff = b.value;
            }
        }
        if let Some(m) = &raw.max_delay
            && let Some(d) = self.duration(m, &format!("{key}.max-delay"))
        {
            if d < p.delay {
                self.err(
                    Code::InvalidRetry,
                    m.span,
                    format!(
                        "`{key}.max-delay` ({}) is below `delay` ({})",
                        format_duration(d),
                        format_duration(p.delay)
                    ),
                )
                .help = Some("`max-delay` caps the growing delay; it must be at least `delay`".into());
            }
            p.max_delay = Some(d);
        }
        p.jitter = raw.jitter.unwrap_or(false);
        if let Some(codes) = &raw.on_exit_codes {
            for c in &codes.value {
                if (0..=255).contains(c) {
                    p.on_exit_codes.push(*c as i32);
                } else {
                    self.err(
                        Code::InvalidRetry,
                        codes.span,
                        format!("`{key}.on-exit-codes` has {c}, which is not an exit code"),
                    )
                    .help = Some("exit codes are between 0 and 255".into());
                }
            }
        }
        p
    }

    // ----- templates ---------------------------------------------------------------------

    /// Where each value of a `run` text lands (see `shell`): refused inside single quotes
    /// or a quoted heredoc (RB045), and where the shell reads it as code unless its type
    /// makes it inert (RB047); `{% autoescape %}` is refused (RB048).
    fn shell_contexts(&mut self, run: &SpannedString, place: Place<'_>) {
        let masked = template::mask_shell(&run.value);
        for range in &masked.autoescape {
            let span = template::inner_span(&self.source, run.span, Some(range.clone()));
            self.err(Code::QuotingOff, span, format!("`{{% autoescape %}}` in {place}"))
                .set_label("values in `run` text are always bound")
                .help = Some("remove the tag: values in `run` text reach the shell through variables whatever it says; for trusted shell code, `{{ x | unsafe_raw }}` writes one value as code, with the warning RB046".into());
        }
        if masked.sites.is_empty() {
            return;
        }
        let sites = match crate::shell::contexts(&masked.text) {
            Ok(sites) => sites,
            Err(e) => {
                self.err(Code::ShellCodeContext, run.span, format!("the shell syntax of {place} cannot be followed: {e}"))
                    .set_label("values cannot be placed safely")
                    .help = Some("check the quotes and parentheses of the script; runbook must know where each value stands".into());
                return;
            }
        };
        let mut group = None;
        for site in sites {
            let Some((range, expr)) = masked.sites.get(site.index).cloned() else { continue };
            let span = template::inner_span(&self.source, run.span, Some(range.clone()));
            let shown = &run.value[range];
            // The first value of a word that is an argument: an option if it starts with `-`.
            if site.argument.is_some() && std::mem::replace(&mut group, site.argument) != site.argument {
                self.option_value(&expr, span, shown, place, "`-- ");
            }
            match site.context {
                crate::shell::Where::Word | crate::shell::Where::Expanded => {}
                crate::shell::Where::Quoted(_) if self.inert_expr(&expr) => {}
                crate::shell::Where::Quoted(what) => {
                    self.err(Code::TemplateInQuotes, span, format!("template inside {what} in {place}"))
                        .set_label("a value cannot expand here")
                        .help = Some(format!(
                        "a value reaches the shell through a variable, which does not expand inside {what}; write `{shown}` outside them, or inside double quotes (`\"...{shown}...\"`), or use an unquoted heredoc (`<<EOF`)"
                    ));
                }
                crate::shell::Where::Code(why) => {
                    if self.inert_expr(&expr) {
                        continue;
                    }
                    self.err(
                        Code::ShellCodeContext,
                        span,
                        format!("template in {why} in {place}, where the shell reads a value as code"),
                    )
                    .set_label("a value here would run")
                    .help = Some(format!(
                        "only a value whose type makes it inert may stand here: an `integer`, `number` or `boolean` parameter or approval input, or one whose `enum` lists only plain words; for a command that runs a script, pass the value as an argument of its own (`bash -c '... \"$1\"' _ {shown}`); trusted shell code may use `{{{{ x | unsafe_raw }}}}` (warning RB046)"
                    ));
                }
            }
        }
    }

    /// `cmd` elements that a program reads as code (`bash -c`, `ssh`, `python -c`...).
    fn argv_contexts(&mut self, argv: &[SpannedString], place: Place<'_>) {
        let words: Vec<String> = argv
            .iter()
            .map(|e| {
                let m = template::mask_shell(&e.value);
                if m.sites.is_empty() { m.text } else { format!("{}{}", m.text, crate::shell::MARK) }
            })
            .collect();
        for (k, argument) in crate::shell::argv_options(&words).into_iter().enumerate() {
            let e = &argv[k];
            if let Some((range, expr)) =
                template::mask_shell(&e.value).sites.first().cloned().filter(|_| argument)
            {
                let span = template::inner_span(&self.source, e.span, Some(range.clone()));
                self.option_value(&expr, span, &e.value[range], place, "an element `--` before `");
            }
        }
        for (k, why) in crate::shell::argv_code(&words).into_iter().enumerate() {
            let Some(why) = why else { continue };
            let e = &argv[k];
            let masked = template::mask_shell(&e.value);
            for (range, expr) in masked.sites {
                if self.inert_expr(&expr) {
                    continue;
                }
                let span = template::inner_span(&self.source, e.span, Some(range.clone()));
                let shown = &e.value[range];
                self.err(
                    Code::ShellCodeContext,
                    span,
                    format!("template in {why} in {place}, where a program reads a value as code"),
                )
                .set_label("a value here would run")
                .help = Some(format!(
                    "only an `integer`, `number` or `boolean` parameter, or a `string` parameter whose `enum` lists only plain words, may stand here; pass the value as an argument of its own instead: `[\"bash\", \"-c\", \"... \\\"$1\\\"\", \"_\", \"{shown}\"]`"
                ));
            }
        }
    }

    /// RB059: a value that begins an argument (where a program reads options) and that is
    /// known to start with `-`: a string parameter's `default` or a member of its `enum`.
    /// Any other value is checked when it is bound, and refused there (`shell::option_value`).
    fn option_value(&mut self, expr: &str, span: Span, shown: &str, place: Place<'_>, dash: &str) {
        let Some(name) = expr.trim().strip_prefix("params.") else { return };
        let Some(p) = self.param_defaults.iter().find(|p| p.name == name) else { return };
        let known = p.default.iter().chain(p.allowed.iter().flatten()).find_map(|v| match v {
            ParamValue::String(s) if crate::shell::option_value(s).is_some() => Some(s.clone()),
            _ => None,
        });
        let Some(value) = known else { return };
        self.err(
            Code::OptionValue,
            span,
            format!("parameter `{name}` may be `{}`, which starts with `-`, and `{shown}` stands as a whole argument in {place}, where a program reads it as an option", value.escape_debug()),
        )
        .set_label("this value would be an option")
        .help = Some(format!(
            "a value that starts with `-` is refused where it begins an argument; if it is data (a file or a branch named `-x`), write {dash}{shown}` where the program accepts `--`, or glue it to its option (`--name={shown}`); if it is an option, write the options in the runbook and let the parameter choose among plain words"
        ));
    }

    /// A template expression whose value cannot be code: a typed parameter.
    fn inert_expr(&self, expr: &str) -> bool {
        let expr = expr.trim();
        if let Some(path) = expr.strip_prefix("steps.")
            && let Some((step, output)) = path.split_once(".outputs.")
        {
            return self.steps.get(step).is_some_and(|s| s.inert.iter().any(|o| o == output));
        }
        let Some(name) = expr.strip_prefix("params.") else { return false };
        let Some(p) = self.param_defaults.iter().find(|p| p.name == name) else { return false };
        match p.ty {
            ParamType::Integer | ParamType::Number | ParamType::Boolean => true,
            ParamType::String => p.allowed.as_ref().is_some_and(|allowed| {
                allowed.iter().all(|v| matches!(v, ParamValue::String(s) if crate::shell::inert(s)))
            }),
        }
    }

    fn template(&mut self, s: &SpannedString, mode: Mode, scope: Scope<'_>) -> Template {
        let t = Template { text: s.value.clone(), span: s.span };
        if template::is_literal(&s.value) {
            return t;
        }
        if let Err(e) = template::limits(&s.value, false) {
            let span = template::inner_span(&self.source, s.span, e.range.clone());
            self.err(
                Code::TemplateLimit,
                span,
                format!("template in {} is too big to check: {}", scope.place, e.message),
            )
            .help = Some(format!(
                "split it: a template may nest at most {} operators, filters or brackets in one tag, open {} blocks at once, and be {} KiB long",
                template::MAX_NESTING,
                template::MAX_BLOCK_DEPTH,
                template::MAX_TEMPLATE_BYTES / 1024
            ));
            return t;
        }
        let analysis = match self.analysed.get(&s.value) {
            Some(a) => a.clone(),
            None => {
                let a = template::analyse(&s.value, mode).map(Arc::new);
                self.analysed.insert(s.value.clone(), a.clone());
                a
            }
        };
        match analysis {
            Err(e) => {
                let span = template::inner_span(&self.source, s.span, e.range.clone());
                self.err(
                    Code::TemplateSyntax,
                    span,
                    format!("template syntax error in {}: {}", scope.place, e.message),
                )
                .help = Some("templates use minijinja syntax: `{{ params.name }}`".into());
            }
            Ok(vars) => {
                let before = self.diags.len();
                self.check_vars(&vars, s, scope);
                let trial = self.diags.len() == before
                    && (template::may_call(&s.value) || template::may_cost(&s.value));
                if let Some(Err(e)) = trial.then(|| template::render(&s.value, mode, self.placeholder())) {
                    let span = template::inner_span(&self.source, s.span, e.range.clone());
                    if e.too_costly {
                        self.err(
                            Code::TemplateLimit,
                            span,
                            format!("template in {} costs too much: {}", scope.place, e.message),
                        )
                        .help = Some(format!(
                            "a template may take at most {} operations and render at most {} MiB: loop over less, or do the work in the step's script",
                            template::MAX_FUEL,
                            template::MAX_RENDERED_BYTES >> 20
                        ));
                    } else if e.unknown_callable {
                        self.err(
                            Code::TemplateSyntax,
                            span,
                            format!("template error in {}: {}", scope.place, e.message),
                        )
                        .help = Some(
                            "see the book's template reference for the filters and functions available"
                                .into(),
                        );
                    }
                }
            }
        }
        t
    }

    fn expr(&mut self, s: &SpannedString, scope: Scope<'_>) -> Expr {
        let mut static_only = true;
        if let Err(e) = template::limits(&s.value, true) {
            self.err(
                Code::TemplateLimit,
                s.span,
                format!("{} is too big to check: {}", scope.place, e.message),
            )
            .help = Some(format!(
                "split the expression: it may nest at most {} operators, filters or brackets",
                template::MAX_NESTING
            ));
            return Expr { text: s.value.clone(), span: s.span, static_only };
        }
        match template::expr_vars(&s.value) {
            Err(e) => {
                let span = template::inner_span(&self.source, s.span, e.range.clone());
                self.err(
                    Code::InvalidExpression,
                    span,
                    format!("{} does not compile: {}", scope.place, e.message),
                )
                .help = Some(
                    "expressions use minijinja syntax without braces, e.g. `params.environment != 'sandbox'`"
                        .into(),
                );
            }
            Ok(vars) => {
                static_only = vars
                    .iter()
                    .all(|v| v == "params" || v.starts_with("params.") || v.starts_with("runbook"));
                let before = self.diags.len();
                self.check_vars(&vars, s, scope);
                let trial = self.diags.len() == before
                    && (template::may_call(&s.value) || template::may_cost(&s.value));
                if let Some(Err(e)) = trial.then(|| template::eval(&s.value, self.placeholder())) {
                    let span = template::inner_span(&self.source, s.span, e.range.clone());
                    if e.too_costly {
                        self.err(
                            Code::TemplateLimit,
                            span,
                            format!("{} costs too much: {}", scope.place, e.message),
                        )
                        .help = Some(format!(
                            "an expression may take at most {} operations: test less, or do the work in a step",
                            template::MAX_FUEL
                        ));
                    } else if e.unknown_callable {
                        self.err(Code::InvalidExpression, span, format!("{}: {}", scope.place, e.message)).help =
                            Some("see the book's template reference for the filters, tests and functions available".into());
                    }
                }
            }
        }
        Expr { text: s.value.clone(), span: s.span, static_only }
    }

    fn template_map(
        &mut self,
        map: Option<&BTreeMap<String, SpannedString>>,
        key: &str,
        what: &str,
        base: Scope<'_>,
        secrets: bool,
    ) -> Vec<(String, Template)> {
        let Some(map) = map else { return Vec::new() };
        map.iter()
            .map(|(k, v)| {
                let place = Place::Keyed(key, k, what);
                (k.clone(), self.template(v, Mode::Plain, Scope { place, ..base }.secrets(secrets)))
            })
            .collect()
    }

    /// Check every string leaf of a TOML value as a template; return it as JSON.
    fn json_templates(
        &mut self,
        v: &Spanned<toml::Value>,
        place: Place<'_>,
        base: Scope<'_>,
        secrets: bool,
    ) -> serde_json::Value {
        fn leaves<'v>(v: &'v toml::Value, out: &mut Vec<&'v str>) {
            match v {
                toml::Value::String(s) => out.push(s),
                toml::Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
                toml::Value::Table(t) => t.values().for_each(|x| leaves(x, out)),
                _ => {}
            }
        }
        let mut strings = Vec::new();
        leaves(&v.value, &mut strings);
        for s in strings {
            let spanned = Spanned::new(s.to_string(), v.span);
            self.template(&spanned, Mode::Plain, Scope { place, ..base }.secrets(secrets));
        }
        serde_json::to_value(&v.value).unwrap_or(serde_json::Value::Null)
    }

    fn check_vars(&mut self, vars: &BTreeSet<String>, s: &SpannedString, scope: Scope<'_>) {
        for var in vars {
            let parts: Vec<&str> = var.split('.').collect();
            let span = var_span(&self.source, s, var);
            let root = parts[0];
            if scope.locals.contains(&root) || TEMPLATE_FUNCTIONS.contains(&root) {
                continue;
            }
            match root {
                "params" => {
                    if let Some(name) = parts.get(1)
                        && !self.params.contains_key(*name)
                    {
                        let names: Vec<&str> = few(self.params.keys().map(String::as_str));
                        let suggestion = did_you_mean(name, names.iter().copied());
                        let help = match suggestion {
                            Some(s) => {
                                format!("use `params.{s}`, or declare `[params.{name}]` with a `type`")
                            }
                            None => format!("declare it: `[params.{name}]` with a `type`"),
                        };
                        let d = Diagnostic::error(
                            Code::UndeclaredReference,
                            &self.source,
                            span,
                            format!(
                                "{} uses undeclared parameter `{name}`{}",
                                scope.place,
                                suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
                            ),
                        )
                        .with_label("not declared")
                        .with_help(help);
                        self.push(d);
                    }
                }
                "secrets" => {
                    let Some(name) = parts.get(1) else {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!("{} reads `secrets` without naming one", scope.place),
                        )
                        .help = Some(
                            "name secrets with a dot: `{{ secrets.NAME }}` (subscripts cannot be checked)"
                                .into(),
                        );
                        continue;
                    };
                    if !scope.secrets {
                        let help = if scope.place.is_command() {
                            format!(
                                "pass it through `env`: `env = {{ {name} = \"{{{{ secrets.{name} }}}}\" }}`, then use \"${name}\" in the command"
                            )
                        } else {
                            "secrets may only go in `env` values, http `url`/`headers`/`query`/`body`/`json`, sql `url`/`args` and notify `webhook`".to_string()
                        };
                        self.err(
                            Code::SecretExposed,
                            span,
                            format!("secret `{name}` is interpolated into {}", scope.place),
                        )
                        .set_label("would be shown in plans, logs or `ps`")
                        .help = Some(help);
                        continue;
                    }
                    if !self.secrets.contains(*name) {
                        let names: Vec<&str> = few(self.secrets.iter().map(String::as_str));
                        let d = Diagnostic::error(
                            Code::UndeclaredReference,
                            &self.source,
                            span,
                            format!(
                                "{} uses undeclared secret `{name}`{}",
                                scope.place,
                                did_you_mean_suffix(name, names.iter().copied())
                            ),
                        )
                        .with_label("not declared")
                        .with_help(format!("declare it: `[secrets.{name}]` with `env = \"{name}\"`"));
                        self.push(d);
                    }
                }
                "steps" => self.check_step_ref(&parts, span, scope),
                "run" => match parts.get(1).copied() {
                    _ if !scope.run_vars => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!("{} cannot use `{var}`", scope.place),
                        )
                        .help = Some(
                            "it is rendered before the run exists; use `params` and `runbook.name`".into(),
                        );
                    }
                    None | Some("id") | Some("started_at") => {}
                    Some("status") if scope.finally => {}
                    Some("status") => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!(
                                "{} uses `run.status`, which is only set in `finally` steps",
                                scope.place
                            ),
                        )
                        .help = Some("move this into a `[finally.*]` step".into());
                    }
                    Some(other) => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!(
                                "{} uses unknown `run.{other}`{}",
                                scope.place,
                                did_you_mean_suffix(other, ["id", "started_at", "status"])
                            ),
                        )
                        .help = Some("`run` has `id`, `started_at` and, in `finally` steps, `status`".into());
                    }
                },
                "runbook" => match parts.get(1).copied() {
                    None | Some("name") | Some("title") => {}
                    Some(other) => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!(
                                "{} uses unknown `runbook.{other}`{}",
                                scope.place,
                                did_you_mean_suffix(other, ["name", "title"])
                            ),
                        )
                        .help = Some("`runbook` has `name` and `title`".into());
                    }
                },
                other => {
                    let mut roots = vec!["params", "secrets", "steps", "run", "runbook"];
                    roots.extend(scope.locals.iter().copied());
                    let d = Diagnostic::error(
                        Code::UndeclaredReference,
                        &self.source,
                        span,
                        format!(
                            "{} uses unknown variable `{other}`{}",
                            scope.place,
                            did_you_mean_suffix(other, roots.iter().copied())
                        ),
                    )
                    .with_label("unknown variable")
                    .with_help(format!(
                        "templates here can read {}",
                        roots.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
                    ));
                    self.push(d);
                }
            }
        }
    }

    fn check_step_ref(&mut self, parts: &[&str], span: Span, scope: Scope<'_>) {
        let Some(target) = parts.get(1).copied() else {
            self.err(
                Code::UndeclaredReference,
                span,
                format!("{} reads `steps` without naming a step", scope.place),
            )
            .help = Some("write `steps.ID.outputs.NAME`".into());
            return;
        };
        let Some(info) = self.steps.get(target) else {
            let mut names: Vec<&str> = few(self.steps.keys().map(String::as_str));
            names.sort_unstable();
            self.err(
                Code::UndeclaredReference,
                span,
                format!(
                    "{} uses the outputs of unknown step `{target}`{}",
                    scope.place,
                    did_you_mean_suffix(target, names.iter().copied())
                ),
            )
            .help = Some("write `steps.ID.outputs.NAME` with the id of a step of this runbook".into());
            return;
        };
        let outputs = info.outputs.clone();
        let Some(current) = scope.step else {
            self.err(Code::UndeclaredReference, span, format!("{} cannot use step outputs", scope.place))
                .help = Some("step outputs exist only inside steps, after the step that makes them".into());
            return;
        };
        let is_self = target == current;
        let is_ancestor = self.is_ancestor(current, target);
        if is_self && !scope.self_outputs {
            self.err(Code::OutputNotAncestor, span, format!("{} uses its own outputs", scope.place)).help =
                Some("a step's outputs exist only after it finishes; its `compensate` may use them".into());
            return;
        }
        if !is_self && !is_ancestor {
            self.err(
                Code::OutputNotAncestor,
                span,
                format!("{} uses the outputs of `{target}`, which is not among its ancestors", scope.place),
            )
            .set_label("may not have run yet")
            .help = Some(format!(
                "add `\"{target}\"` to the `needs` of `{current}` (directly or through another step)"
            ));
            return;
        }
        match parts.get(2).copied() {
            None => {}
            Some("outputs") => {
                if let (Some(name), Some(outputs)) = (parts.get(3), outputs)
                    && !outputs.iter().any(|o| o == name)
                {
                    let list = if outputs.is_empty() {
                        "none".to_string()
                    } else {
                        format!("`{}`", outputs.join("`, `"))
                    };
                    self.err(
                        Code::UndeclaredReference,
                        span,
                        format!(
                            "step `{target}` has no output `{name}`{}",
                            did_you_mean_suffix(name, outputs.iter().map(String::as_str))
                        ),
                    )
                    .help = Some(format!(
                        "its outputs: {list}; a `run`/`cmd` step declares them with `outputs = [...]`"
                    ));
                }
            }
            Some(other) => {
                self.err(
                    Code::UndeclaredReference,
                    span,
                    format!("{} uses `steps.{target}.{other}`; steps only have `outputs`", scope.place),
                )
                .help = Some(format!("write `steps.{target}.outputs.NAME`"));
            }
        }
    }

    /// A context with a value of the right shape for every declared name, so that a trial
    /// render finds unknown filters and functions.
    fn placeholder(&mut self) -> &template::Context {
        if self.placeholder.is_none() {
            let json = self.placeholder_context(&self.param_defaults);
            self.placeholder = Some(template::Context::new(&json));
        }
        self.placeholder.get_or_insert_with(|| template::Context::new(&serde_json::Value::Null))
    }

    fn placeholder_context(&self, params: &[Param]) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let mut p = Map::new();
        for (name, ty) in &self.params {
            let declared = params.iter().find(|x| &x.name == name);
            let v = match declared.and_then(|d| d.default.clone()) {
                Some(d) => serde_json::to_value(d).unwrap_or(Value::Null),
                None => match ty {
                    Some(ParamType::Integer) => json!(0),
                    Some(ParamType::Number) => json!(0.0),
                    Some(ParamType::Boolean) => json!(false),
                    _ => json!(format!("<params.{name}>")),
                },
            };
            p.insert(name.clone(), v);
        }
        let s: Map<String, Value> =
            self.secrets.iter().map(|n| (n.clone(), template::placeholder(&format!("secret:{n}")))).collect();
        let mut steps = Map::new();
        for (id, info) in &self.steps {
            let outs: Map<String, Value> = info
                .outputs
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|o| {
                    let v = template::placeholder(&format!("output:{id}.{o}"));
                    (o, v)
                })
                .collect();
            steps.insert(id.clone(), json!({ "outputs": outs }));
        }
        json!({
            "params": p,
            "secrets": s,
            "steps": steps,
            "run": { "id": template::placeholder("run.id"), "started_at": template::placeholder("run.started_at"), "status": template::placeholder("run.status") },
            "runbook": { "name": "<runbook.name>", "title": "<runbook.title>" },
            "status": 200, "headers": {}, "body": "", "json": null, "latency_ms": 0,
            "rows": [], "rows_affected": 0,
        })
    }
}

#[derive(Debug, Clone)]
struct Defaults {
    timeout: Option<Duration>,
    retry: RetryPolicy,
    shell: Option<Vec<String>>,
    on_failure: OnFailure,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: None,
            retry: RetryPolicy::default(),
            shell: None,
            on_failure: OnFailure::Compensate,
        }
    }
}

struct ActionRef<'r> {
    run: Option<&'r SpannedString>,
    cmd: Option<&'r Spanned<Vec<SpannedString>>>,
    http: Option<&'r Spanned<RawHttp>>,
    sql: Option<&'r Spanned<RawSql>>,
    approval: Option<&'r Spanned<RawApproval>>,
    notify: Option<&'r Spanned<RawNotify>>,
    runbook: Option<&'r Spanned<RawInclude>>,
    shell: Option<&'r Spanned<Vec<String>>>,
}

fn step_kinds(raw: &RawStep) -> Vec<(&'static str, Span)> {
    let mut kinds = present(&[
        ("run", raw.run.as_ref().map(|x| x.span)),
        ("cmd", raw.cmd.as_ref().map(|x| x.span)),
        ("http", raw.http.as_ref().map(|x| x.span)),
        ("sql", raw.sql.as_ref().map(|x| x.span)),
        ("approval", raw.approval.as_ref().map(|x| x.span)),
        ("notify", raw.notify.as_ref().map(|x| x.span)),
        ("runbook", raw.runbook.as_ref().map(|x| x.span)),
    ]);
    kinds.sort_by_key(|k| k.1.start);
    kinds
}

/// The kinds that are present, with where each was written.
fn present(kinds: &[(&'static str, Option<Span>)]) -> Vec<(&'static str, Span)> {
    kinds.iter().filter_map(|(name, span)| span.map(|s| (*name, s))).collect()
}

fn param_type(t: RawParamType) -> ParamType {
    match t {
        RawParamType::String => ParamType::String,
        RawParamType::Integer => ParamType::Integer,
        RawParamType::Number => ParamType::Number,
        RawParamType::Boolean => ParamType::Boolean,
    }
}

fn on_failure(f: RawOnFailure) -> OnFailure {
    match f {
        RawOnFailure::Compensate => OnFailure::Compensate,
        RawOnFailure::Stop => OnFailure::Stop,
        RawOnFailure::Continue => OnFailure::Continue,
    }
}

/// `My-Step` → `my_step`, when that makes a valid id.
fn suggest_id(id: &str) -> Option<String> {
    let mut s: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "step_");
    }
    (is_id(&s) && s != id).then_some(s)
}

/// A path `start -> ... -> start` through the strongly connected component `members`.
fn cycle_path(graph: &DiGraphMap<usize, ()>, start: usize, members: &HashSet<usize>) -> Vec<usize> {
    // Breadth-first search for the shortest way back to `start`.
    let mut prev: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = HashSet::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<usize> = graph.neighbors(n).filter(|m| members.contains(m)).collect();
        next.sort_unstable();
        for m in next {
            if m == start {
                // Walk the back-pointers from `n` to `start`, then read them forward.
                let mut chain = Vec::new();
                let mut cur = n;
                while cur != start {
                    chain.push(cur);
                    cur = prev[&cur];
                }
                chain.reverse();
                let mut path = vec![start];
                path.extend(chain);
                path.push(start);
                return path;
            }
            if seen.insert(m) {
                prev.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}

fn var_span(source: &Source, s: &SpannedString, var: &str) -> Span {
    match s.value.find(var) {
        Some(pos) => template::inner_span(source, s.span, Some(pos..pos + var.len())),
        None => {
            let root = var.split('.').next().unwrap_or(var);
            match s.value.find(root) {
                Some(pos) => template::inner_span(source, s.span, Some(pos..pos + root.len())),
                None => s.span,
            }
        }
    }
}
