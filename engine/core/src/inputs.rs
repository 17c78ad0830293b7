//! Parameter values given by an operator: `-p name=value` arguments and params files.
//!
//! Every problem points at where the value was written: the params file (`file:line:col`)
//! or the command line (shown as a source named `command line`), or, for a missing
//! parameter, its declaration in the runbook.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::de::DeTable;

use crate::diagnostic::{Code, Diagnostic, Source};
use crate::model::{ParamValue, Runbook};
use crate::params;
use crate::span::Span;
use crate::suggest::did_you_mean_suffix;

/// A value and where it was written.
#[derive(Debug, Clone)]
pub struct Given {
    /// The typed value.
    pub value: ParamValue,
    /// The file or command line it came from.
    pub source: Arc<Source>,
    /// Where in it.
    pub span: Span,
}

/// What a source of values gave: the values that fit, a diagnostic for each one that does
/// not, and the names of the declared parameters given a wrong value (neither given nor
/// missing: the one answer before a run lists them as wrong, not as missing).
pub type Read = (BTreeMap<String, Given>, Vec<Diagnostic>, Vec<String>);

/// Values from `-p name=value` arguments, typed against the runbook's declarations.
pub fn from_args(args: &[(String, String)], runbook: &Runbook) -> Read {
    let mut text = String::new();
    let mut spans = Vec::new();
    for (name, value) in args {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str("-p ");
        let name_start = text.len();
        text.push_str(name);
        text.push('=');
        let value_start = text.len();
        text.push_str(value);
        spans.push((Span::new(name_start, name_start + name.len()), Span::new(value_start, text.len())));
    }
    let source = Source::new("command line", text);
    let mut out = BTreeMap::new();
    let mut diags = Vec::new();
    let mut wrong = Vec::new();
    for ((name, value), (name_span, value_span)) in args.iter().zip(spans) {
        let Some(param) = runbook.param(name) else {
            diags.push(unknown(runbook, &source, name_span, name));
            continue;
        };
        match params::from_text(param.ty, value) {
            Ok(v) => {
                out.insert(name.clone(), Given { value: v, source: Arc::clone(&source), span: value_span });
            }
            Err(e) => {
                diags.push(invalid(&source, value_span, name, &e));
                wrong.push(name.clone());
            }
        }
    }
    (out, diags, wrong)
}

/// Values from a params file: TOML `name = value` lines, or a JSON object when the path
/// ends in `.json`.
pub fn from_file(source: &Arc<Source>, runbook: &Runbook) -> Read {
    if source.path.ends_with(".json") {
        return from_json_file(source, runbook);
    }
    let mut out = BTreeMap::new();
    let mut diags = Vec::new();
    let mut wrong = Vec::new();
    let (table, errors) = DeTable::parse_recoverable(&source.text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().map(Span::from).unwrap_or_default();
            diags.push(
                Diagnostic::error(
                    Code::TomlSyntax,
                    source,
                    span,
                    format!("invalid TOML in params file: {}", e.message().trim()),
                )
                .with_help("a params file holds `name = value` lines, e.g. `environment = \"staging\"`"),
            );
        }
        return (out, diags, wrong);
    }
    for (key, value) in table.into_inner() {
        let name = key.get_ref().to_string();
        let key_span = Span::from(key.span());
        let value_span = Span::from(value.span());
        let Some(param) = runbook.param(&name) else {
            diags.push(unknown(runbook, source, key_span, &name));
            continue;
        };
        let typed = toml::Value::deserialize(value.into_deserializer())
            .map_err(|e| e.message().to_string())
            .and_then(|v| params::from_toml(param.ty, &v));
        match typed {
            Ok(v) => {
                out.insert(name, Given { value: v, source: Arc::clone(source), span: value_span });
            }
            Err(e) => {
                diags.push(invalid(source, value_span, &name, &e));
                wrong.push(name);
            }
        }
    }
    (out, diags, wrong)
}

fn from_json_file(source: &Arc<Source>, runbook: &Runbook) -> Read {
    let mut out = BTreeMap::new();
    let mut diags = Vec::new();
    let mut wrong = Vec::new();
    let map: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(&source.text) {
        Ok(m) => m,
        Err(e) => {
            let offset = offset_of(&source.text, e.line(), e.column());
            diags.push(
                Diagnostic::error(
                    Code::TomlSyntax,
                    source,
                    Span::new(offset, offset),
                    format!("invalid JSON in params file: {e}"),
                )
                .with_help("a JSON params file is one object: `{\"environment\": \"staging\"}`"),
            );
            return (out, diags, wrong);
        }
    };
    for (name, value) in map {
        // JSON carries no spans: point at the first mention of the key.
        let needle = format!("\"{name}\"");
        let span = source.text.find(&needle).map_or_else(Span::default, |p| Span::new(p, p + needle.len()));
        let Some(param) = runbook.param(&name) else {
            diags.push(unknown(runbook, source, span, &name));
            continue;
        };
        match params::from_json(param.ty, &value) {
            Ok(v) => {
                out.insert(name, Given { value: v, source: Arc::clone(source), span });
            }
            Err(e) => {
                diags.push(invalid(source, span, &name, &e));
                wrong.push(name);
            }
        }
    }
    (out, diags, wrong)
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(l.len());
        }
        offset += l.len();
    }
    text.len()
}

fn unknown(runbook: &Runbook, source: &Arc<Source>, span: Span, name: &str) -> Diagnostic {
    let names: Vec<&str> = runbook.params.iter().map(|p| p.name.as_str()).collect();
    let help = if names.is_empty() {
        format!("runbook `{}` declares no parameters", runbook.name)
    } else {
        format!("parameters of `{}`: {}", runbook.name, names.join(", "))
    };
    Diagnostic::error(
        Code::UnknownParam,
        source,
        span,
        format!("unknown parameter `{name}`{}", did_you_mean_suffix(name, names.iter().copied())),
    )
    .with_label("not declared by the runbook")
    .with_help(help)
}

fn invalid(source: &Arc<Source>, span: Span, name: &str, reason: &str) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidParamValue,
        source,
        span,
        format!("invalid value for parameter `{name}`: {reason}"),
    )
    .with_label("this value")
    .with_help(format!("see `[params.{name}]` in the runbook for its type, `enum` and `pattern`"))
}

/// The value of every declared parameter: given (command line over file), else default.
/// Checks enums and patterns; a missing required parameter points at its declaration.
pub fn resolve(
    runbook: &Runbook,
    given: &BTreeMap<String, Given>,
) -> Result<BTreeMap<String, ParamValue>, Vec<Diagnostic>> {
    let mut out = BTreeMap::new();
    let mut diags = Vec::new();
    for p in &runbook.params {
        match (given.get(&p.name), &p.default) {
            (Some(g), _) => match params::check(p, &g.value) {
                Ok(()) => {
                    out.insert(p.name.clone(), g.value.clone());
                }
                Err(e) => diags.push(invalid(&g.source, g.span, &p.name, &e)),
            },
            (None, Some(d)) => {
                out.insert(p.name.clone(), d.clone());
            }
            (None, None) => {
                let example = match (&p.allowed, p.ty) {
                    (Some(values), _) if !values.is_empty() => values[0].to_string(),
                    (_, crate::model::ParamType::String) => "VALUE".into(),
                    (_, crate::model::ParamType::Integer) => "42".into(),
                    (_, crate::model::ParamType::Number) => "1.5".into(),
                    (_, crate::model::ParamType::Boolean) => "true".into(),
                    (_, crate::model::ParamType::StringList) => "A,B".into(),
                    (_, crate::model::ParamType::IntegerList) => "1,2".into(),
                    (_, crate::model::ParamType::NumberList) => "1.5,2.5".into(),
                };
                let choices = match &p.allowed {
                    Some(values) => format!(
                        " (one of {})",
                        values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
                    ),
                    None => String::new(),
                };
                let what = p.description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
                let d = Diagnostic::error(
                    Code::MissingParam,
                    &runbook.source,
                    p.span,
                    format!("missing required parameter `{}` ({})", p.name, p.ty.as_str()),
                )
                .with_label("declared here without a default")
                .with_help(format!(
                    "`{}`{what}: give it with `-p {}={example}`{choices} or in a `--params-file`",
                    p.name, p.name
                ));
                diags.push(d);
            }
        }
    }
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

/// Every string inside `text` read as JSON, decoded (red team adv17b F2: a secret hidden
/// by an escape is looked for in what the value holds), object keys too; nothing when it
/// is not JSON.
pub fn decoded_strings_json(text: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push(k.clone());
                walk(v, out);
            }),
            serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&v, &mut out);
    }
    out
}

/// Every string inside `text` read as a TOML document (keys too); nothing when it is not
/// TOML (then the syntax error quotes only the text given, which is looked at as it is).
pub fn decoded_strings_toml(text: &str) -> Vec<String> {
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::String(s) => out.push(s.clone()),
            toml::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            toml::Value::Table(map) => map.iter().for_each(|(k, v)| {
                out.push(k.clone());
                walk(v, out);
            }),
            toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::Boolean(_)
            | toml::Value::Datetime(_) => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(t) = toml::from_str::<toml::Table>(text) {
        walk(&toml::Value::Table(t), &mut out);
    }
    out
}
