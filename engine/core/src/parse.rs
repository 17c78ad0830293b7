//! Parse: TOML text to a [`Document`] of raw shapes, collecting every problem on the way.
//!
//! A valid runbook is read by the fast path (`quick.rs`) in one pass. Anything it
//! leaves goes through three passes, each reporting all it finds:
//! 1. TOML syntax, with recovery (`toml::de::DeTable::parse_recoverable`);
//! 2. unknown keys at every depth, driven by the JSON Schema generated from [`crate::raw`],
//!    so the list of known keys has one source; unknown keys are reported and pruned;
//! 3. serde, one unit at a time (the `[runbook]` table, each param, each step...), so one
//!    wrong type hides nothing outside its own unit; inside it, the key whose value is wrong
//!    is reported and taken out and the unit read again, so it hides nothing beside it
//!    either (issue 14), unless the unit's shape depends on it (a step's kind).

use std::sync::Arc;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Code, Diagnostic, Source};
use crate::quick::{self, NodeDeserializer};
use crate::raw::{
    RawDefaults, RawEscalation, RawMeta, RawParam, RawPrecondition, RawReport, RawSecret, RawStep,
};
use crate::schema::{self, Shape};
use crate::span::{Span, Spanned};
use crate::suggest::did_you_mean_suffix;

type TomlSpanned<T> = toml::Spanned<T>;

/// One named entry of a section: `[steps.backup]` is the unit `backup` of `steps`.
#[derive(Debug)]
pub struct Unit<T> {
    /// The name, with the span of the key.
    pub id: Spanned<String>,
    /// The span of the whole value.
    pub span: Span,
    /// The shape, or `None` when it failed to deserialize (already reported).
    pub raw: Option<T>,
}

/// A parsed runbook file: raw shapes in declaration order, nothing checked across fields.
#[derive(Debug)]
pub struct Document {
    /// The file.
    pub source: Arc<Source>,
    /// The `[runbook]` table, if present and well-formed.
    pub meta: Option<RawMeta>,
    /// `[params.*]`.
    pub params: Vec<Unit<RawParam>>,
    /// `[secrets.*]`.
    pub secrets: Vec<Unit<RawSecret>>,
    /// `[defaults]`.
    pub defaults: Option<RawDefaults>,
    /// `[preconditions.*]`.
    pub preconditions: Vec<Unit<RawPrecondition>>,
    /// `[steps.*]`.
    pub steps: Vec<Unit<RawStep>>,
    /// `[finally.*]`.
    pub finally: Vec<Unit<RawStep>>,
    /// `[escalation.*]`.
    pub escalations: Vec<Unit<RawEscalation>>,
    /// `[report]`.
    pub report: Option<RawReport>,
}

impl Document {
    /// A document of `source` with nothing read yet.
    fn empty(source: &Arc<Source>) -> Document {
        Document {
            source: Arc::clone(source),
            meta: None,
            params: Vec::new(),
            secrets: Vec::new(),
            defaults: None,
            preconditions: Vec::new(),
            steps: Vec::new(),
            finally: Vec::new(),
            escalations: Vec::new(),
            report: None,
        }
    }
}

/// Parse one runbook file. Diagnostics are returned, never thrown: the document holds
/// whatever could be read.
pub fn parse(source: &Arc<Source>) -> (Document, Vec<Diagnostic>) {
    // Optimistic first: most runbooks are valid, and the fast path reads a valid one in one
    // pass. What it leaves is nearly always wrong somewhere, so `toml` parses it with the
    // unknown-key pass, and every problem is reported, not one per unit. (On a file without
    // problems that pass changes nothing: a valid runbook the fast path left gets the same
    // document.)
    if let Some(doc) = parse_quick(source) {
        return (doc, Vec::new());
    }
    parse_with(source, true)
}

/// The fast path (`quick.rs`): a valid runbook in one pass, or `None` and the whole
/// parse with `toml` decides.
fn parse_quick(source: &Arc<Source>) -> Option<Document> {
    // A NUL character is written only as an escape (TOML refuses the raw byte): the full
    // pass reports it (`nul_in_text`).
    if source.text.contains("\\u0000") || source.text.contains("\\U00000000") {
        return None;
    }
    let root = quick::document(&source.text)?;
    let mut doc = Document::empty(source);
    for (key, node) in root.entries {
        match key.name.as_ref() {
            "runbook" => doc.meta = Some(RawMeta::deserialize(NodeDeserializer(node)).ok()?),
            "defaults" => doc.defaults = Some(RawDefaults::deserialize(NodeDeserializer(node)).ok()?),
            "params" => doc.params = quick_section(node)?,
            "secrets" => doc.secrets = quick_section(node)?,
            "preconditions" => doc.preconditions = quick_section(node)?,
            "steps" => doc.steps = quick_section(node)?,
            "finally" => doc.finally = quick_section(node)?,
            "escalation" => doc.escalations = quick_section(node)?,
            "report" => doc.report = Some(RawReport::deserialize(NodeDeserializer(node)).ok()?),
            _ => return None,
        }
    }
    doc.meta.is_some().then_some(doc)
}

fn quick_section<T>(node: quick::Node<'_>) -> Option<Vec<Unit<T>>>
where
    T: for<'de> Deserialize<'de>,
{
    let quick::Value::Table(table) = node.value else { return None };
    let mut units = Vec::with_capacity(table.entries.len());
    for (key, node) in table.entries {
        let span = Span::from(node.span.clone());
        let raw = T::deserialize(NodeDeserializer(node)).ok()?;
        units.push(Unit {
            id: Spanned::new(key.name.into_owned(), Span::from(key.span)),
            span,
            raw: Some(raw),
        });
    }
    units.sort_by_key(|u| u.id.span.start);
    Some(units)
}

const SECTIONS: [&str; 9] =
    ["runbook", "params", "secrets", "defaults", "preconditions", "steps", "finally", "escalation", "report"];

fn parse_with(source: &Arc<Source>, report_unknown_keys: bool) -> (Document, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut doc = Document::empty(source);

    let (root, errors) = DeTable::parse_recoverable(&source.text);
    if !errors.is_empty() {
        for e in errors {
            diags.push(syntax_error(source, &e));
        }
        return (doc, diags);
    }
    let root_span = Span::from(root.span());
    let mut root = TomlSpanned::new(root.span(), DeValue::Table(root.into_inner()));
    nul_in_text(&root, source, &mut diags);

    if report_unknown_keys {
        prune_unknown_keys(&mut root, schema::shapes().root, &String::new, source, &mut diags);
    } else if let DeValue::Table(t) = root.get_ref()
        && t.keys().any(|k| !SECTIONS.contains(&k.get_ref().as_ref()))
    {
        // An unknown section: the full pass reports it.
        return (doc, vec![Diagnostic::error(Code::UnknownKey, source, root_span, "unknown section")]);
    }

    let DeValue::Table(table) = root.into_inner() else {
        return (doc, diags);
    };
    let mut sections: Vec<(TomlSpanned<std::borrow::Cow<'_, str>>, TomlSpanned<DeValue<'_>>)> =
        table.into_iter().collect();
    sections.sort_by_key(|(k, _)| k.span().start);

    let mut has_meta = false;
    for (key, value) in sections {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "runbook" => {
                has_meta = true;
                doc.meta = deserialize_unit(value, "runbook", source, &mut diags);
            }
            "defaults" => doc.defaults = deserialize_unit(value, "defaults", source, &mut diags),
            "params" => doc.params = section(value, &name, source, &mut diags),
            "secrets" => doc.secrets = section(value, &name, source, &mut diags),
            "preconditions" => doc.preconditions = section(value, &name, source, &mut diags),
            "steps" => doc.steps = section(value, &name, source, &mut diags),
            "finally" => doc.finally = section(value, &name, source, &mut diags),
            "escalation" => doc.escalations = section(value, &name, source, &mut diags),
            "report" => doc.report = deserialize_unit(value, "report", source, &mut diags),
            // Unknown sections were reported and pruned above.
            _ => {}
        }
    }
    if !has_meta {
        diags.push(
            Diagnostic::error(
                Code::MissingKey,
                source,
                Span::new(root_span.start, root_span.start),
                "missing `[runbook]` table",
            )
            .with_help(
                "every runbook starts with `[runbook]` and a `name`, e.g. `[runbook]\\nname = \"deploy\"`",
            ),
        );
    }
    (doc, diags)
}

pub(crate) fn syntax_error(source: &Arc<Source>, e: &toml::de::Error) -> Diagnostic {
    let span = e.span().map(Span::from).unwrap_or_default();
    let mut message = e.message().trim().to_string();
    if message == "duplicate key" {
        if let Some(key) = source.slice(span).filter(|k| !k.is_empty()) {
            message = format!("duplicate key `{key}`");
        }
        return Diagnostic::error(Code::TomlSyntax, source, span, message)
            .with_label("defined again here")
            .with_help("TOML allows each key and table once; merge the two definitions");
    }
    Diagnostic::error(Code::TomlSyntax, source, span, format!("invalid TOML: {message}"))
        .with_help("see https://toml.io for the syntax")
}

/// Deserialize every entry of a section table (`[steps.*]`...) as its own unit.
fn section<T>(
    value: TomlSpanned<DeValue<'_>>,
    section: &str,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Unit<T>>
where
    T: for<'de> Deserialize<'de>,
{
    let span = Span::from(value.span());
    let DeValue::Table(table) = value.into_inner() else {
        diags.push(
            Diagnostic::error(Code::WrongType, source, span, format!("`{section}` must be a table"))
                .with_help(format!("write entries as `[{section}.NAME]` tables")),
        );
        return Vec::new();
    };
    let mut units: Vec<Unit<T>> = table
        .into_iter()
        .map(|(key, value)| {
            let id = Spanned::new(key.get_ref().to_string(), Span::from(key.span()));
            let span = Span::from(value.span());
            let path = format!("{section}.{}", id.value);
            let raw = deserialize_unit(value, &path, source, diags);
            Unit { id, span, raw }
        })
        .collect();
    units.sort_by_key(|u| u.id.span.start);
    units
}

pub(crate) fn deserialize_unit<T>(
    value: TomlSpanned<DeValue<'_>>,
    path: &str,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    let unit_span = Span::from(value.span());
    // How many values may be taken out of this unit: each costs a copy of the unit, so a
    // budget of copied values keeps a huge unit linear (issue 11), and a small one gets all.
    let budget = (PRUNE_BUDGET / count_values(&value)).max(MIN_PRUNED);
    // Values are named as written: after `needs[0]` is taken out, `needs[2]` is still `needs[2]`.
    let written = value.clone();
    let mut value = value;
    // Values of this unit taken out because they were wrong, at any depth (`env.A`,
    // `retry.attempts`, `needs[1]`): the rest of the unit is still read and checked, so one
    // wrong value hides nothing beside it, in the unit or in its nested tables (issue 14, F4).
    let mut pruned: Vec<String> = Vec::new();
    // Whether a value that decides what the unit is (a kind key, a secret's source) was
    // taken out: then the unit is read on to report its other mistakes, but not kept, so no
    // later check reports its absence ("has no kind", "has no source"): a follow-on.
    let mut shape_lost = false;
    loop {
        // Kept to word an error and to take the wrong value out of.
        let mut copy = value.clone();
        let e = match T::deserialize(value.into_deserializer()) {
            Ok(v) => return (!shape_lost).then_some(v),
            Err(e) => e,
        };
        let Some(span) = e.span().map(Span::from) else {
            diags.push(serde_error(&e, unit_span, path, source));
            return None;
        };
        let at = innermost(&copy, span);
        let at_name = render(path, &innermost(&written, span));
        // A key a table needs, missing because its wrong value was taken out: said already;
        // the table goes too (silently), and the reading goes on.
        if let Some(field) = e.message().trim().strip_prefix("missing field ") {
            let field = field.trim_matches('`');
            if pruned.iter().any(|p| *p == format!("{at_name}.{field}")) {
                if at.is_empty() {
                    return None;
                }
                remove(&mut copy, &at);
                pruned.push(at_name);
                value = copy;
                continue;
            }
        }
        diags.push(serde_error(&e, unit_span, &at_name, source));
        // The error is about the unit as a whole, or too many were taken out already.
        if at.is_empty() || pruned.len() >= budget {
            return None;
        }
        shape_lost |= shapes_unit(path, &at);
        remove(&mut copy, &at);
        pruned.push(at_name);
        value = copy;
    }
}

/// One step of a path inside a unit: a key of a table or an index of an array.
enum Seg {
    Key(String),
    Index(usize),
}

/// The keys of a step (or compensation, or check) whose value decides what it is: its kind.
/// Taking a wrong one out would leave it without a kind, a follow-on.
const KIND_KEYS: [&str; 8] = ["run", "cmd", "http", "sql", "approval", "notify", "runbook", "file"];

/// The keys of a secret that name its source.
const SOURCE_KEYS: [&str; 3] = ["env", "file", "command"];

/// At least this many wrong values are taken out of one unit before it is given up...
const MIN_PRUNED: usize = 32;

/// ... and more while the copies they cost stay under this many values in all.
const PRUNE_BUDGET: usize = 20_000_000;

/// Whether taking the value at `at` out of the unit at `path` would change what the unit
/// is: a kind key of a step, compensation or check, or a secret's source.
fn shapes_unit(path: &str, at: &[Seg]) -> bool {
    let Some(Seg::Key(last)) = at.last() else { return false };
    let section = path.split('.').next().unwrap_or("");
    match section {
        "secrets" => at.len() == 1 && SOURCE_KEYS.contains(&last.as_str()),
        "steps" | "finally" | "preconditions" => {
            // Not a key of a map of names (`env.run`, `outputs.file`).
            let parent_is_map =
                matches!(at.iter().rev().nth(1), Some(Seg::Key(k)) if k == "env" || k == "outputs");
            KIND_KEYS.contains(&last.as_str()) && !parent_is_map
        }
        _ => false,
    }
}

/// Every key and string of the file that holds a NUL character (written `\u0000`), as
/// RB130 at its place (red team adv27 V1): no command argument, environment value, header
/// or terminal line can carry one, and a step that had one failed only when it started,
/// after the steps before it had run. Every string is looked at, wherever it is, so a field
/// added to the format later is covered too.
pub(crate) fn nul_in_text(
    value: &TomlSpanned<DeValue<'_>>,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) {
    let refuse = |span: std::ops::Range<usize>, what: &str, diags: &mut Vec<Diagnostic>| {
        diags.push(
            Diagnostic::error(Code::NulInText, source, Span::from(span), format!("{what} holds a NUL character"))
                .with_label("`\\u0000` here")
                .with_help("no command argument, environment value, header or terminal line can carry a NUL character; remove it"),
        );
    };
    match value.get_ref() {
        DeValue::String(text) if text.contains('\0') => refuse(value.span(), "this text", diags),
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                if k.get_ref().contains('\0') {
                    refuse(k.span(), "this key", diags);
                }
                nul_in_text(v, source, diags);
            }
        }
        DeValue::Array(a) => {
            for v in a.iter() {
                nul_in_text(v, source, diags);
            }
        }
        _ => {}
    }
}

/// How many values a unit holds (tables and arrays included).
fn count_values(value: &TomlSpanned<DeValue<'_>>) -> usize {
    1 + match value.get_ref() {
        DeValue::Table(t) => t.iter().map(|(_, v)| count_values(v)).sum(),
        DeValue::Array(a) => a.iter().map(count_values).sum(),
        _ => 0,
    }
}

/// The path, from the unit, of the innermost value whose span holds `span`. Every value is
/// looked at: the span of a table written as `[steps.a.env]` is its header's, which does
/// not hold its values'.
fn innermost(value: &TomlSpanned<DeValue<'_>>, span: Span) -> Vec<Seg> {
    #[derive(Clone, Copy)]
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    fn walk<'a>(
        value: &'a TomlSpanned<DeValue<'_>>,
        span: Span,
        at: &mut Vec<Step<'a>>,
        best: &mut Option<(usize, Vec<Step<'a>>)>,
    ) {
        let s = Span::from(value.span());
        if s.start <= span.start && span.end <= s.end && best.as_ref().is_none_or(|(len, _)| s.len() < *len) {
            *best = Some((s.len(), at.clone()));
        }
        match value.get_ref() {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    at.push(Step::Key(k.get_ref()));
                    walk(v, span, at, best);
                    at.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    at.push(Step::Index(i));
                    walk(v, span, at, best);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    walk(value, span, &mut Vec::new(), &mut best);
    best.map(|(_, at)| at)
        .unwrap_or_default()
        .into_iter()
        .map(|s| match s {
            Step::Key(k) => Seg::Key(k.to_string()),
            Step::Index(i) => Seg::Index(i),
        })
        .collect()
}

/// The dotted name of `at` under `path`: `steps.a.env.A`, `steps.a.needs[1]`.
fn render(path: &str, at: &[Seg]) -> String {
    let mut out = path.to_string();
    for seg in at {
        match seg {
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Take the value at `at` (not empty) out of the unit.
fn remove(value: &mut TomlSpanned<DeValue<'_>>, at: &[Seg]) {
    let Some((last, parents)) = at.split_last() else { return };
    let mut cur = value;
    for seg in parents {
        let next = match (cur.get_mut(), seg) {
            (DeValue::Table(t), Seg::Key(k)) => {
                t.iter_mut().find(|(key, _)| key.get_ref().as_ref() == k).map(|(_, v)| v)
            }
            (DeValue::Array(a), Seg::Index(i)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return };
        cur = next;
    }
    match (cur.get_mut(), last) {
        (DeValue::Table(t), Seg::Key(k)) => {
            let old = std::mem::take(t);
            *t = old.into_iter().filter(|(key, _)| key.get_ref().as_ref() != k).collect();
        }
        (DeValue::Array(a), Seg::Index(i)) => {
            let old = std::mem::replace(a, toml::de::DeArray::new());
            for (j, v) in old.iter().enumerate() {
                if j != *i {
                    a.push(v.clone());
                }
            }
        }
        _ => {}
    }
}

/// `at`: the dotted name of the innermost value that holds the error.
fn serde_error(e: &toml::de::Error, unit_span: Span, at: &str, source: &Arc<Source>) -> Diagnostic {
    let span = e.span().map(Span::from).unwrap_or(unit_span);
    let message = e.message().trim();
    if let Some(field) = message.strip_prefix("missing field ") {
        let field = field.trim_matches('`');
        return Diagnostic::error(
            Code::MissingKey,
            source,
            header_span(source, span),
            format!("missing key `{field}` in `{at}`"),
        )
        .with_help(format!("add `{field} = ...` to `{at}`"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        // "unknown variant `x`, expected one of `a`, `b`"
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let found = found.trim_matches('`');
        let options: Vec<&str> =
            expected.trim_start_matches("one of ").split(", ").map(|s| s.trim_matches('`')).collect();
        return Diagnostic::error(
            Code::WrongType,
            source,
            span,
            format!(
                "invalid value `{found}` for `{at}`{}",
                did_you_mean_suffix(found, options.iter().copied())
            ),
        )
        .with_label("not allowed here")
        .with_help(format!("expected {expected}"));
    }
    let (found, expected) = match message.strip_prefix("invalid type: ") {
        Some(rest) => {
            let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "another type"));
            (describe_found(found), describe_expected(expected))
        }
        None => (String::new(), message.to_string()),
    };
    let text = if found.is_empty() {
        format!("invalid value for `{at}`: {expected}")
    } else {
        format!("wrong type for `{at}`: expected {expected}, found {found}")
    };
    Diagnostic::error(Code::WrongType, source, span, text).with_label(format!("expected {expected}"))
}

/// For a table's span, the first line only (the `[steps.x]` header or the `{` of an inline table).
fn header_span(source: &Source, span: Span) -> Span {
    let text = source.slice(span).unwrap_or("");
    match text.find('\n') {
        Some(n) => Span::new(span.start, span.start + n),
        None => span,
    }
}

fn describe_expected(expected: &str) -> String {
    let e = expected.trim();
    if e.starts_with("struct ") || e == "a map" {
        return "a table".into();
    }
    match e {
        "i64" | "i32" | "u32" | "u64" | "an integer" => "an integer".into(),
        "f64" | "f32" => "a number".into(),
        "a sequence" => "an array".into(),
        "a boolean" => "a boolean (`true` or `false`)".into(),
        other => other.to_string(),
    }
}

fn describe_found(found: &str) -> String {
    let f = found.trim();
    if let Some(rest) = f.strip_prefix("floating point ") {
        return format!("the number {}", rest.trim_matches('`'));
    }
    if let Some(rest) = f.strip_prefix("integer ") {
        return format!("the integer {}", rest.trim_matches('`'));
    }
    if let Some(rest) = f.strip_prefix("string ") {
        return format!("the string {rest}");
    }
    if let Some(rest) = f.strip_prefix("boolean ") {
        return format!("the boolean {}", rest.trim_matches('`'));
    }
    match f {
        "sequence" => "an array".into(),
        "map" => "a table".into(),
        other => other.to_string(),
    }
}

/// Report and remove, at every depth, keys the schema does not know. The dotted path of
/// the current table is only built when a problem is reported.
fn prune_unknown_keys(
    value: &mut TomlSpanned<DeValue<'_>>,
    shape: usize,
    path: &dyn Fn() -> String,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) {
    let shapes = schema::shapes();
    match (value.get_mut(), &shapes.nodes[shape]) {
        (DeValue::Table(table), Shape::Table { keys, closed }) => {
            if *closed && table.keys().any(|k| shapes.key(shape, k.get_ref()).is_none()) {
                let known: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
                report_unknown(table, &known, &path(), source, diags);
                let old = std::mem::take(table);
                *table = old.into_iter().filter(|(k, _)| shapes.key(shape, k.get_ref()).is_some()).collect();
            }
            for (k, v) in table.iter_mut() {
                if let Some(sub) = shapes.key(shape, k.get_ref()) {
                    let key: &str = k.get_ref();
                    prune_unknown_keys(v, sub, &|| join(&path(), key), source, diags);
                }
            }
        }
        (DeValue::Table(table), Shape::Map(sub)) => {
            for (k, v) in table.iter_mut() {
                let key: &str = k.get_ref();
                prune_unknown_keys(v, *sub, &|| join(&path(), key), source, diags);
            }
        }
        (DeValue::Array(items), Shape::Array(sub)) => {
            for (i, v) in items.iter_mut().enumerate() {
                prune_unknown_keys(v, *sub, &|| format!("{}[{i}]", path()), source, diags);
            }
        }
        _ => {}
    }
}

fn report_unknown(
    table: &DeTable<'_>,
    known: &[&str],
    path: &str,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) {
    for (k, _) in table.iter() {
        let name = k.get_ref().as_ref();
        if known.contains(&name) {
            continue;
        }
        let place = if path.is_empty() { "the top level".to_string() } else { format!("`{path}`") };
        let hint = format!("keys allowed in {place}: {}", known.join(", "));
        diags.push(
            Diagnostic::error(
                Code::UnknownKey,
                source,
                Span::from(k.span()),
                format!(
                    "unknown key `{name}` in {place}{}",
                    did_you_mean_suffix(name, known.iter().copied())
                ),
            )
            .with_label("unknown key")
            .with_help(hint),
        );
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Document, Vec<Diagnostic>) {
        parse(&Source::new("t.toml", text))
    }

    /// Every `.toml` file under the repository's folders of runbooks and fixtures.
    fn corpus() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        let mut dirs: Vec<std::path::PathBuf> =
            ["runbooks", "examples", "tests/fixtures"].iter().map(|d| root.join(d)).collect();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "toml")
                    && let Ok(text) = std::fs::read_to_string(&path)
                {
                    files.push((path.display().to_string(), text));
                }
            }
        }
        assert!(files.len() > 100, "the corpus was not found: {}", files.len());
        files
    }

    /// The fast path either declines or gives exactly what `toml` gives, for every runbook
    /// and fixture of the repository; it takes every valid one; it never accepts a text the
    /// whole parse finds a problem in; and on a valid text the unknown-key pass changes
    /// nothing.
    #[test]
    fn the_fast_path_gives_what_toml_gives_or_declines() {
        let (mut taken, mut valid) = (0, 0);
        let mut missed = Vec::new();
        for (path, text) in corpus() {
            let source = Source::new(path.clone(), text);
            let (whole, diags) = parse_with(&source, false);
            valid += usize::from(diags.is_empty());
            if diags.is_empty() {
                // `parse` goes straight to the unknown-key pass when the fast path declines: on
                // a valid file it must change nothing.
                let (pruned, more) = parse_with(&source, true);
                assert!(more.is_empty(), "{path}: {more:?}");
                assert_eq!(format!("{pruned:?}"), format!("{whole:?}"), "{path}");
            }
            match parse_quick(&source) {
                Some(quick) => {
                    assert!(diags.is_empty(), "{path}: accepted, but the whole parse says {diags:?}");
                    assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "{path}");
                    taken += 1;
                }
                None if diags.is_empty() => missed.push(path),
                None => {}
            }
        }
        assert!(missed.is_empty(), "valid, yet left to toml: {missed:#?}");
        assert_eq!(taken, valid);
    }

    /// TOML that the fast path must read as `toml` does, or leave to it.
    const TOML_SNIPPETS: &[&str] = &[
        "\n[steps.q]\nrun = \"a\\tb\\u00e9\\\"c\\\\\"\n",
        "\n[steps.\"quoted key\"]\ncmd = ['lit', \"\"\"multi\\\n  line\"\"\", '''raw\nlines''']\n",
        "\n[steps.n]\ncmd = [\"true\",]\nretry.attempts = 0x10\nretry.delay = \"1s\"\n",
        "\n[steps.n.retry]\nattempts = 1_000\nbackoff = 1e3\n",
        "\n[[steps]]\nrun = \"x\"\n",
        "\nwhen = 1979-05-27T07:32:00Z\n",
        "\nenv = { A = \"1\", B.C = \"2\" }\n",
        "\nenv = { A = \"1\", A = \"2\" }\n",
        "\nenv = { }\n",
        "\nretry = { attempts = +3, backoff = inf }\n",
        "\nretry = { attempts = 9223372036854775808 }\n",
        "\nidempotent = true # a comment\n",
        "\r\n",
        "\n[steps]\n",
        "\n[runbook]\nname = \"again\"\n",
        "\n[steps.a.b.c]\nx = 1\n",
        "\n'lit key' = 1\n",
        "\nneeds = [ # c\n  \"backup\", # d\n]\n",
        "\ntimeout = '''5s'''\n",
        "\n[defaults]\ntimeout = \"1m\"\n",
        "\n[params.z]\ntype = \"number\"\ndefault = -0.5e-3\n",
        "\u{00e9}",
        "\\",
        "\"",
        "=",
        ".",
    ];

    /// The fast path agrees with `toml` on thousands of edits of the repository's runbooks:
    /// snippets of TOML spliced in at random places, and random cuts.
    #[test]
    fn the_fast_path_agrees_with_toml_on_edited_runbooks() {
        use proptest::prelude::*;
        let corpus = corpus();
        let files = corpus.len();
        // 4,000 cases unless `PROPTEST_CASES` asks for another number (60,000 pass).
        let config = match std::env::var_os("PROPTEST_CASES") {
            Some(_) => ProptestConfig::default(),
            None => ProptestConfig::with_cases(4000),
        };
        proptest!(config, |(file in 0..files, at in any::<prop::sample::Index>(), cut in 0usize..40,
                            snippet in 0..TOML_SNIPPETS.len(), splice in any::<bool>())| {
            let text = &corpus[file].1;
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let edited = if splice {
                format!("{}{}{}", &text[..at], TOML_SNIPPETS[snippet], &text[at..])
            } else {
                let mut end = (at + cut).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}{}", &text[..at], &text[end..])
            };
            let source = Source::new("edited.toml", edited);
            if let Some(quick) = parse_quick(&source) {
                let (whole, diags) = parse_with(&source, false);
                prop_assert!(diags.is_empty(), "accepted, but the whole parse says {diags:?}\n{}", source.text);
                prop_assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "{}", source.text);
            }
        });
    }

    #[test]
    fn reads_units_in_declaration_order() {
        let (doc, diags) = parse_str(
            "[runbook]\nname = \"x\"\n[steps.zeta]\nrun = \"true\"\n[steps.alpha]\nrun = \"true\"\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let ids: Vec<&str> = doc.steps.iter().map(|u| u.id.value.as_str()).collect();
        assert_eq!(ids, ["zeta", "alpha"]);
    }

    #[test]
    fn reports_every_unknown_key_and_keeps_going() {
        let (doc, diags) = parse_str(
            "[runbook]\nname = \"x\"\nnmae = 1\n[steps.a]\nrun = \"true\"\nneeeds = []\nretry = { attempts = 2, dleay = \"1s\" }\n",
        );
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, [Code::UnknownKey, Code::UnknownKey, Code::UnknownKey], "{diags:#?}");
        assert!(diags[1].message.contains("did you mean `needs`"), "{}", diags[1].message);
        assert!(doc.meta.is_some());
        assert!(doc.steps[0].raw.is_some(), "pruned unit still deserializes");
    }

    #[test]
    fn one_wrong_type_per_unit() {
        let (doc, diags) = parse_str(
            "[runbook]\nname = \"x\"\n[steps.a]\nrun = \"true\"\ntimeout = 10\n[steps.b]\nrun = \"true\"\nidempotent = \"yes\"\n",
        );
        assert_eq!(diags.len(), 2, "{diags:#?}");
        assert!(diags.iter().all(|d| d.code == Code::WrongType));
        assert!(diags[0].message.contains("steps.a.timeout"), "{}", diags[0].message);
        assert_eq!(doc.steps.len(), 2);
    }
}
