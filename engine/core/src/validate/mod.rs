//! Validate: raw shapes to a checked [`Runbook`], reporting every problem at once.
//!
//! Each rule is checked where its data is: ids and kinds per unit, needs and cycles on the
//! graph, references inside templates against a [`Scope`] that says what each place may
//! read (in particular, where secrets may go). Included runbooks are read through a
//! [`Loader`] supplied by the caller, so this module does no IO.
//!
//! One [`Validator`] walks the document; its methods are split by concern, one file each:
//! this file holds the public API and [`Validator::run`], which calls the others in order;
//! `meta` (`[runbook]`, `[report]`, `[defaults]`, durations, estimates, retry policies),
//! `parameters` (`[params]`, `[secrets]`), `graph` (ids, declared outputs, needs, cycles,
//! ancestors), `steps` (one step, its action and environment), `kinds` (exactly one kind
//! per step, compensation or precondition; the http, sql, approval and notify kinds),
//! `include` (`runbook` steps), `guards` (compensations, preconditions, escalations),
//! `lints` (where a value lands in command text) and `templates` (what each template
//! reads, against its [`Scope`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::{FastMap, FastSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

mod graph;
mod guards;
mod include;
mod kinds;
mod lints;
mod meta;
mod parameters;
mod secret_files;
mod steps;
mod templates;

use kinds::{ActionRef, Carrier};
use meta::on_failure;

/// Reads included runbook files for the validator.
pub trait Loader {
    /// The text of the file at `path` (already joined to the including file's folder), or a
    /// one-line reason it cannot be read.
    fn load(&self, path: &str) -> Result<String, String>;

    /// The file `path` names once symbolic links are resolved, when the loader can tell
    /// (`None`: compared by its lexically normalized path alone). Two paths with the same
    /// answer are the same file (RB056).
    fn canonical(&self, path: &str) -> Option<String> {
        let _ = path;
        None
    }

    /// `Ok` when `path`, a file a runbook names and a plan reads as content (a SQL script, a
    /// CA file; [`Loader::load`] applies the same rule to included runbooks), lies where
    /// such files may (the folder of the runbook named on the command line, or below);
    /// otherwise a one-line reason that never quotes the file (RB066). The default (a
    /// loader that reads no files) confines nothing.
    fn confine(&self, path: &str) -> Result<(), String> {
        let _ = path;
        Ok(())
    }

    /// The file `path` names as `(device, inode)` when the loader can stat it: two paths
    /// with the same identity are the same file, hard links included (RB056).
    fn identity(&self, path: &str) -> Option<(u64, u64)> {
        let _ = path;
        None
    }
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
    let mut cx = IncludeCx {
        stack: vec![normalize(&source.path)],
        cache: HashMap::new(),
        expanded: HashMap::new(),
        expanded_bytes: HashMap::new(),
        height: HashMap::new(),
    };
    let (mut runbook, mut diagnostics) = check_in(source, loader, &mut cx);
    if let Some(rb) = &runbook {
        let read = secret_files::read_as_something_else(rb, loader);
        if !read.is_empty() {
            diagnostics.extend(read);
            runbook = None;
        }
    }
    diagnostic::sort(&mut diagnostics);
    Checked { runbook, diagnostics }
}

struct IncludeCx {
    /// Normalized paths of the files being checked, outermost first.
    stack: Vec<String>,
    /// Files already checked: their runbook if valid.
    cache: HashMap<String, Option<Arc<Runbook>>>,
    /// Steps of each valid file once its includes are expanded, counted once per file (RB065):
    /// a fan-out of includes is measured in O(files), never materialised.
    expanded: HashMap<String, u64>,
    /// Bytes of runbook text of each valid file once its includes are expanded (RB065,
    /// [`MAX_EXPANDED_BYTES`]), counted once per file as `expanded` is.
    expanded_bytes: HashMap<String, u64>,
    /// Levels of includes under each valid file (RB065, [`MAX_INCLUDE_DEPTH`]), so a file
    /// checked once is measured again wherever else it is included, without a new descent.
    height: HashMap<String, usize>,
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

/// Whether a text parses as TOML but has no `[runbook]` table: a parameters or schedules
/// file, or any other TOML (`runbook list` skips it).
pub fn is_other_toml(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| !t.get("runbook").is_some_and(toml::Value::is_table))
}

/// Step, param, output, precondition and escalation ids ([`syntax::ID`]).
fn is_id(s: &str) -> bool {
    syntax::ID.matches(s)
}

/// Secret and environment variable names ([`syntax::ENV_NAME`]).
fn is_env_name(s: &str) -> bool {
    syntax::ENV_NAME.matches(s)
}

/// Runbook names ([`syntax::RUNBOOK_NAME`]).
fn is_runbook_name(s: &str) -> bool {
    syntax::RUNBOOK_NAME.matches(s)
}

pub(crate) const DEFAULT_SHELL: [&str; 5] = ["bash", "-e", "-o", "pipefail", "-c"];
use crate::syntax::{self, HTTP_METHODS};
const HTTP_OUTPUTS: [&str; 5] = ["status", "headers", "body", "json", "latency_ms"];
const SQL_OUTPUTS: [&str; 2] = ["rows", "rows_affected"];
/// minijinja's global functions: names a template may call that are not variables.
const TEMPLATE_FUNCTIONS: [&str; 3] = ["range", "dict", "namespace"];

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
    /// A `for-each` step: one instance per element, so `item` may be read inside it and
    /// its outputs (one set per instance) by no other step.
    for_each: bool,
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
    /// While a `for-each` step is checked: the list parameter it runs over (what `item` is).
    item_of: Option<String>,
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
            item_of: None,
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

        self.expanded_size(&steps, &finally);

        let meta::Meta { name, title, description, estimate, max_parallel, lock } = meta?;
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
