//! Parse: TOML text to a [`Document`] of raw shapes, collecting every problem on the way.
//!
//! Three passes, each reporting all it finds:
//! 1. TOML syntax, with recovery (`toml::de::DeTable::parse_recoverable`);
//! 2. unknown keys at every depth, driven by the JSON Schema generated from [`crate::raw`],
//!    so the list of known keys has one source; unknown keys are reported and pruned;
//! 3. serde, one unit at a time (the `[runbook]` table, each param, each step...), so one
//!    wrong type hides nothing outside its own unit.

use std::sync::Arc;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Code, Diagnostic, Source};
use crate::raw::{RawDefaults, RawEscalation, RawMeta, RawParam, RawPrecondition, RawSecret, RawStep};
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
}

/// Parse one runbook file. Diagnostics are returned, never thrown: the document holds
/// whatever could be read.
pub fn parse(source: &Arc<Source>) -> (Document, Vec<Diagnostic>) {
    // Optimistic first: most runbooks are valid, and serde refuses unknown keys by itself, so
    // the unknown-key pass is only needed when something is wrong. Then the text is parsed
    // again with it, so that every problem is reported, not one per unit.
    if source.text.len() >= SPLIT_MIN
        && let Some(doc) = split_point(&source.text).and_then(|at| parse_split(source, at))
    {
        return (doc, Vec::new());
    }
    let (doc, diags) = parse_whole(source, false);
    if diags.is_empty() { (doc, diags) } else { parse_whole(source, true) }
}

/// Below this size a runbook parses in well under a millisecond: a second thread would cost
/// more than it saves.
const SPLIT_MIN: usize = 64 * 1024;

/// Where to cut a big runbook in two for [`parse_split`]: the start of the first table header
/// line (`[` in column 0) after the middle of the text.
fn split_point(text: &str) -> Option<usize> {
    let middle = text.len() / 2;
    let from = text.get(middle..)?;
    from.find("\n[").map(|i| middle + i + 1)
}

/// Parse the two halves of a valid runbook, cut at `at`, on two threads, and join them.
/// `None` whenever that might not give exactly what parsing the whole text gives; the caller
/// then parses the whole text. That holds when:
/// - the first half parses without a single problem: TOML has no construct that can be cut at
///   the start of a line and still be complete (strings, arrays and inline tables all close),
///   so the cut is at the top level, where a table header starts afresh;
/// - the second half parses without a problem too (a missing `[runbook]` aside);
/// - no unit (a step, a param...) and no single-table section (`[runbook]`, `[defaults]`) is
///   in both halves, and no section is opened by a bare header (`[steps]`), which TOML allows
///   once: a table defined in both halves is a duplicate the whole parse would report.
///
/// The second half is parsed with the first replaced by spaces, so that its spans are
/// offsets into the whole text.
fn parse_split(source: &Arc<Source>, at: usize) -> Option<Document> {
    let text = &source.text;
    let (head, tail) = (text.get(..at)?, text.get(at..)?);
    if has_bare_section_header(text) {
        return None;
    }
    let mut padded = " ".repeat(at);
    padded.push_str(tail);
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| parse_with(source, &padded, false, false));
        let first = parse_with(source, head, false, false);
        (first, second.join().ok())
    });
    let (mut doc, diags, first_meta) = first;
    let (rest, rest_diags, second_meta) = second?;
    if !diags.is_empty() || !rest_diags.is_empty() {
        return None;
    }
    if !first_meta && !second_meta || first_meta && second_meta {
        return None;
    }
    if rest.meta.is_some() {
        doc.meta = rest.meta;
    }
    if rest.defaults.is_some() {
        if doc.defaults.is_some() {
            return None;
        }
        doc.defaults = rest.defaults;
    }
    join_units(&mut doc.params, rest.params)?;
    join_units(&mut doc.secrets, rest.secrets)?;
    join_units(&mut doc.preconditions, rest.preconditions)?;
    join_units(&mut doc.steps, rest.steps)?;
    join_units(&mut doc.finally, rest.finally)?;
    join_units(&mut doc.escalations, rest.escalations)?;
    Some(doc)
}

/// Append the second half's units; `None` when a unit is in both halves.
fn join_units<T>(units: &mut Vec<Unit<T>>, rest: Vec<Unit<T>>) -> Option<()> {
    if !units.is_empty() && !rest.is_empty() {
        let ids: std::collections::HashSet<&str> = units.iter().map(|u| u.id.value.as_str()).collect();
        if rest.iter().any(|u| ids.contains(u.id.value.as_str())) {
            return None;
        }
    }
    units.extend(rest);
    Some(())
}

/// Whether a line opens a section of units with a bare header such as `[steps]` (TOML
/// allows each table to be defined once, so two halves could not both have it). `[runbook]`
/// and `[defaults]` are single tables: [`parse_split`] sees when both halves have one.
fn has_bare_section_header(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with('[')
            && line.trim_start_matches('[').split(']').next().is_some_and(|name| {
                let name = name.trim().trim_matches('"').trim_matches('\'');
                name != "runbook" && name != "defaults" && SECTIONS.contains(&name)
            })
    })
}

/// Parse the whole text.
fn parse_whole(source: &Arc<Source>, report_unknown_keys: bool) -> (Document, Vec<Diagnostic>) {
    let (doc, diags, _) = parse_with(source, &source.text, report_unknown_keys, true);
    (doc, diags)
}

const SECTIONS: [&str; 8] =
    ["runbook", "params", "secrets", "defaults", "preconditions", "steps", "finally", "escalation"];

/// Parse `text`: the source's text, or a part of it at the same offsets. Also says whether
/// it has a `[runbook]` table, and reports it missing if `require_meta`.
fn parse_with(
    source: &Arc<Source>,
    text: &str,
    report_unknown_keys: bool,
    require_meta: bool,
) -> (Document, Vec<Diagnostic>, bool) {
    let mut diags = Vec::new();
    let mut doc = Document {
        source: Arc::clone(source),
        meta: None,
        params: Vec::new(),
        secrets: Vec::new(),
        defaults: None,
        preconditions: Vec::new(),
        steps: Vec::new(),
        finally: Vec::new(),
        escalations: Vec::new(),
    };

    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            diags.push(syntax_error(source, &e));
        }
        return (doc, diags, false);
    }
    let root_span = Span::from(root.span());
    let mut root = TomlSpanned::new(root.span(), DeValue::Table(root.into_inner()));

    if report_unknown_keys {
        prune_unknown_keys(&mut root, schema::shapes().root, &String::new, source, &mut diags);
    } else if let DeValue::Table(t) = root.get_ref()
        && t.keys().any(|k| !SECTIONS.contains(&k.get_ref().as_ref()))
    {
        // An unknown section: the full pass reports it.
        return (doc, vec![Diagnostic::error(Code::UnknownKey, source, root_span, "unknown section")], false);
    }

    let DeValue::Table(table) = root.into_inner() else {
        return (doc, diags, false);
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
            // Unknown sections were reported and pruned above.
            _ => {}
        }
    }
    if !has_meta && require_meta {
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
    (doc, diags, has_meta)
}

fn syntax_error(source: &Arc<Source>, e: &toml::de::Error) -> Diagnostic {
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

fn deserialize_unit<T>(
    value: TomlSpanned<DeValue<'_>>,
    path: &str,
    source: &Arc<Source>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    let unit_span = Span::from(value.span());
    match T::deserialize(value.into_deserializer()) {
        Ok(v) => Some(v),
        Err(e) => {
            let keys = unit_key_spans(source, path);
            diags.push(serde_error(&e, unit_span, &keys, path, source));
            None
        }
    }
}

/// Key paths of one unit (`steps.sync`), read again from the text: only needed to word an
/// error, so the common path never pays for it.
fn unit_key_spans(source: &Source, path: &str) -> Vec<(String, Span)> {
    let Ok(root) = DeTable::parse(&source.text) else { return Vec::new() };
    let root = root.into_inner();
    let (section, unit) = match path.split_once('.') {
        Some((s, u)) => (s, Some(u)),
        None => (path, None),
    };
    let Some(value) = root.get(section) else { return Vec::new() };
    let value = match (unit, value.get_ref()) {
        (Some(u), DeValue::Table(t)) => match t.get(u) {
            Some(v) => v,
            None => return Vec::new(),
        },
        (Some(_), _) => return Vec::new(),
        (None, _) => value,
    };
    key_spans(value, path)
}

/// Dotted key paths with the span of their value, to name the key a serde error is about.
fn key_spans(value: &TomlSpanned<DeValue<'_>>, path: &str) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    fn walk(value: &TomlSpanned<DeValue<'_>>, path: &str, out: &mut Vec<(String, Span)>) {
        out.push((path.to_string(), Span::from(value.span())));
        match value.get_ref() {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    walk(v, &format!("{path}.{}", k.get_ref()), out);
                }
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    walk(value, path, &mut out);
    out
}

fn serde_error(
    e: &toml::de::Error,
    unit_span: Span,
    keys: &[(String, Span)],
    path: &str,
    source: &Arc<Source>,
) -> Diagnostic {
    let span = e.span().map(Span::from).unwrap_or(unit_span);
    // The innermost key whose value contains the error.
    let at = keys
        .iter()
        .filter(|(_, s)| s.start <= span.start && span.end <= s.end)
        .min_by_key(|(_, s)| s.len())
        .map(|(p, _)| p.as_str())
        .unwrap_or(path);
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

    /// The start of every line that begins with `[`: every place [`split_point`] could pick.
    fn header_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
        text.match_indices("\n[").map(|(i, _)| i + 1)
    }

    /// The split parse either declines or gives exactly what the whole parse gives, at every
    /// place it could cut, for every runbook and fixture of the repository, valid or not. And
    /// it never accepts a text the whole parse finds a problem in.
    #[test]
    fn a_split_parse_gives_what_the_whole_parse_gives_or_declines() {
        let mut joined = 0;
        for (path, text) in corpus() {
            let source = Source::new(path.clone(), text.clone());
            let (whole, diags) = parse_whole(&source, false);
            let whole = format!("{whole:?}");
            for at in header_starts(&text) {
                let Some(split) = parse_split(&source, at) else { continue };
                assert!(diags.is_empty(), "{path} cut at {at}: accepted, but the whole parse says {diags:?}");
                assert_eq!(format!("{split:?}"), whole, "{path} cut at {at}");
                joined += 1;
            }
        }
        assert!(joined > 100, "the split parse declined almost everything: {joined}");
    }

    #[test]
    fn a_split_parse_declines_what_only_the_whole_text_shows() {
        let head = "[runbook]\nname = \"x\"\n[steps.a]\nrun = \"true\"\n";
        let cases = [
            // A step in both halves: a duplicate table.
            format!("{head}[steps.a]\nrun = \"true\"\n"),
            // The cut inside a multi-line string, an array and a multi-line literal.
            "[runbook]\nname = \"x\"\n[steps.a]\nrun = \"\"\"\n[steps.b]\nrun = 1\n\"\"\"\n".to_string(),
            "[runbook]\nname = \"x\"\n[steps.a]\ncmd = [\n\"true\",\n[steps.b]\n]\n".to_string(),
            "[runbook]\nname = \"x\"\n[steps.a]\nrun = \'\'\'\n[steps.b]\nrun = 1\n\'\'\'\n".to_string(),
            // `[runbook]` or `[defaults]` in both halves, a bare `[steps]` header.
            format!("{head}[runbook]\nname = \"y\"\n"),
            format!("[defaults]\ntimeout = \"1s\"\n{head}[defaults]\ntimeout = \"2s\"\n"),
            format!("{head}[steps]\n[steps.c]\nrun = \"true\"\n"),
            // No `[runbook]` at all.
            "[steps.a]\nrun = \"true\"\n[steps.b]\nrun = \"true\"\n".to_string(),
        ];
        for text in cases {
            let source = Source::new("t.toml", text.clone());
            let cut = text.rfind("\n[steps.b]").or_else(|| text.rfind("\n[")).map(|i| i + 1);
            let cut = cut.expect("a header to cut at");
            assert!(parse_split(&source, cut).is_none(), "accepted:\n{text}");
        }
        // And it does join two clean halves.
        let text = "[runbook]\nname = \"x\"\n[steps.a]\nrun = \"true\"\n[steps.b]\nrun = \"true\"\n";
        let source = Source::new("t.toml", text);
        let at = text.find("[steps.b]").expect("b");
        let doc = parse_split(&source, at).expect("joined");
        let ids: Vec<&str> = doc.steps.iter().map(|u| u.id.value.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(doc.steps[1].id.span.start, at + "[steps.".len(), "spans are offsets in the whole text");
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
