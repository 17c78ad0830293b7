//! Parameter values: typing them from TOML or from `-p name=value` text, and checking them
//! against their declaration (type, enum, pattern). One set of rules serves defaults at
//! check time and given values at plan and run time.

use std::collections::BTreeMap;

use regex::Regex;

use crate::model::{MAX_LIST_ELEMENTS, Param, ParamType, ParamValue};

/// A TOML value as a typed parameter value, if it has the declared type. A number is
/// finite: TOML's `inf` and `nan` have no JSON form (a plan document would show `null`, not
/// the value that runs), and `-p` refuses them ([`from_text`]).
pub fn from_toml(ty: ParamType, value: &toml::Value) -> Result<ParamValue, String> {
    if let Some(element) = ty.element() {
        let toml::Value::Array(items) = value else {
            return Err(format!("expected {}, found {}", article(ty), toml_type(value)));
        };
        return list(items.iter().map(|v| from_toml(element, v)), items.len());
    }
    match (ty, value) {
        (ParamType::String, toml::Value::String(s)) => Ok(ParamValue::String(s.clone())),
        (ParamType::Integer, toml::Value::Integer(i)) => Ok(ParamValue::Integer(*i)),
        (ParamType::Number, toml::Value::Float(f)) if f.is_finite() => Ok(number(*f)),
        (ParamType::Number, toml::Value::Float(f)) => {
            Err(format!("expected a finite number, found `{f}` (a plan cannot state it)"))
        }
        (ParamType::Number, toml::Value::Integer(i)) => Ok(number(*i as f64)),
        (ParamType::Boolean, toml::Value::Boolean(b)) => Ok(ParamValue::Boolean(*b)),
        (ty, other) => Err(format!("expected {}, found {}", article(ty), toml_type(other))),
    }
}

/// A number parameter's value, canonical: `-0` is `0` (adv17b L3). Every value has one text
/// (`f64`'s shortest form: `1`, `1.0`, `1e0` and `01` are all `1`), so an element names one
/// instance per value, and two equal numbers in a list are refused as repeated.
fn number(n: f64) -> ParamValue {
    // IEEE 754: -0 + 0 is +0; every other value is unchanged.
    ParamValue::Number(n + 0.0)
}

/// A JSON value (from a `.json` params file) as a typed parameter value.
pub fn from_json(ty: ParamType, value: &serde_json::Value) -> Result<ParamValue, String> {
    use serde_json::Value as J;
    if let Some(element) = ty.element() {
        let J::Array(items) = value else {
            return Err(format!("expected {}, found {}", article(ty), json_type(value)));
        };
        return list(items.iter().map(|v| from_json(element, v)), items.len());
    }
    match (ty, value) {
        (ParamType::String, J::String(s)) => Ok(ParamValue::String(s.clone())),
        (ParamType::Integer, J::Number(n)) if n.is_i64() => Ok(ParamValue::Integer(n.as_i64().unwrap_or(0))),
        (ParamType::Number, J::Number(n)) => Ok(number(n.as_f64().unwrap_or(0.0))),
        (ParamType::Boolean, J::Bool(b)) => Ok(ParamValue::Boolean(*b)),
        (ty, other) => Err(format!("expected {}, found {}", article(ty), json_type(other))),
    }
}

/// Text from the command line (`-p name=value`) as a typed parameter value. A list is
/// its elements separated by commas, spaces around them trimmed (`-p hosts=web-1,web-2`;
/// empty text is the empty list),
/// or a JSON array when the text starts with `[` (`-p 'hosts=["a,b", "c"]'`).
pub fn from_text(ty: ParamType, text: &str) -> Result<ParamValue, String> {
    if let Some(element) = ty.element() {
        if text.trim_start().starts_with('[') {
            let json: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| format!("`{}` is not a JSON array: {e}", shown(text)))?;
            return from_json(ty, &json);
        }
        if text.is_empty() {
            return Ok(ParamValue::List(Vec::new()));
        }
        let parts: Vec<&str> = text.split(',').collect();
        let n = parts.len();
        return list(parts.into_iter().map(|p| from_text(element, p.trim())), n);
    }
    match ty {
        ParamType::String => Ok(ParamValue::String(text.to_string())),
        ParamType::Integer => text
            .trim()
            .parse::<i64>()
            .map(ParamValue::Integer)
            .map_err(|_| format!("expected an integer, found `{text}`")),
        ParamType::Number => match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(number(n)),
            _ => Err(format!("expected a number, found `{text}`")),
        },
        ParamType::Boolean => match text.trim() {
            "true" => Ok(ParamValue::Boolean(true)),
            "false" => Ok(ParamValue::Boolean(false)),
            _ => Err(format!("expected `true` or `false`, found `{text}`")),
        },
        // Handled above.
        ParamType::StringList | ParamType::IntegerList | ParamType::NumberList => {
            Err(format!("expected {}, found `{}`", article(ty), shown(text)))
        }
    }
}

/// The typed elements of a list, refused past [`MAX_LIST_ELEMENTS`] before any is typed.
fn list(items: impl Iterator<Item = Result<ParamValue, String>>, len: usize) -> Result<ParamValue, String> {
    if len > MAX_LIST_ELEMENTS {
        return Err(format!(
            "the list has {len} elements; a list parameter holds at most {MAX_LIST_ELEMENTS} (a `for-each` step over it is a step per element)"
        ));
    }
    let mut out = Vec::with_capacity(len);
    for (i, item) in items.enumerate() {
        out.push(item.map_err(|e| format!("element {}: {e}", i + 1))?);
    }
    Ok(ParamValue::List(out))
}

/// The text an element takes between the brackets of an instance id (`restart[web-1]`), or
/// why it cannot: an instance id is journaled, shown and typed back (`resume --rerun
/// 'restart[web-1]'`), so it must read as itself. Refused, not escaped: empty text, text
/// longer than 128 bytes, brackets (the id's own delimiters), `/` (the separator of an
/// included runbook's steps), and every character [`crate::shown::unnameable`] names
/// (controls, format and invisible characters, spaces but the ASCII one, private-use,
/// unassigned and default-ignorable code points).
pub fn instance_key(value: &ParamValue) -> Result<String, String> {
    let text = value.to_string();
    let bad = |c: char| matches!(c, '[' | ']' | '/') || crate::shown::unnameable(c);
    if text.is_empty() {
        return Err("an empty element cannot name a step instance".into());
    }
    if text.len() > 128 {
        return Err(format!("`{}` is longer than 128 bytes, too long to name a step instance", shown(&text)));
    }
    if let Some(c) = text.chars().find(|&c| bad(c)) {
        return Err(format!(
            "`{}` contains {}, which a step instance id (`step[element]`) cannot hold",
            shown(&text),
            match c {
                '[' | ']' | '/' => format!("`{c}`"),
                other if crate::shown::unassigned_or_private(other) => {
                    format!("the private-use or unassigned character U+{:04X}", other as u32)
                }
                other => format!("the invisible character U+{:04X}", other as u32),
            }
        ));
    }
    Ok(text)
}

/// Check a list's elements as instance names: each names one ([`instance_key`]), and no two
/// name the same instance.
fn check_list(items: &[ParamValue]) -> Result<(), String> {
    if items.len() > MAX_LIST_ELEMENTS {
        return Err(format!(
            "the list has {} elements; a list parameter holds at most {MAX_LIST_ELEMENTS}",
            items.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for item in items {
        let key = instance_key(item)?;
        if !seen.insert(key.clone()) {
            return Err(format!(
                "`{}` is in the list twice; each element names one step instance",
                shown(&key)
            ));
        }
    }
    Ok(())
}

/// Check a typed value against the declaration's enum and pattern; a list's elements each
/// against them, and as the names of step instances.
pub fn check(param: &Param, value: &ParamValue) -> Result<(), String> {
    if let ParamValue::List(items) = value {
        for item in items {
            check(param, item)?;
        }
        return check_list(items);
    }
    if let ParamValue::String(s) = value
        && s.contains('\0')
    {
        return Err(format!(
            "`{}` contains a NUL byte, which no command argument, environment value or header can carry",
            shown(s)
        ));
    }
    if let Some(allowed) = &param.allowed
        && !allowed.iter().any(|a| a == value)
    {
        let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
        return Err(format!("`{}` is not one of {}", shown(&value.to_string()), list.join(", ")));
    }
    if let (Some(pattern), ParamValue::String(s)) = (&param.pattern, value) {
        // The pattern compiled when the runbook was validated.
        if let Ok(re) = Regex::new(pattern)
            && !re.is_match(s)
        {
            return Err(format!("`{}` does not match the pattern `{pattern}`", shown(s)));
        }
    }
    Ok(())
}

/// A value as shown in a message: control characters escaped, cut after 80 characters.
pub fn shown(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 80 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Resolve the values of every parameter: given ones, then defaults. Errors name the
/// parameter; they are reported by the caller with a place (command line or params file).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamProblem {
    /// A required parameter has no value.
    Missing(String),
    /// A value was given for a parameter the runbook does not declare.
    Unknown(String),
    /// A value does not fit (`name`, reason).
    Invalid(String, String),
}

/// Values for all declared parameters, from already-typed given values and defaults.
pub fn resolve(
    params: &[Param],
    given: &BTreeMap<String, ParamValue>,
) -> Result<BTreeMap<String, ParamValue>, Vec<ParamProblem>> {
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for name in given.keys() {
        if !params.iter().any(|p| &p.name == name) {
            problems.push(ParamProblem::Unknown(name.clone()));
        }
    }
    for p in params {
        match given.get(&p.name).or(p.default.as_ref()) {
            Some(v) => match check(p, v) {
                Ok(()) => {
                    out.insert(p.name.clone(), v.clone());
                }
                Err(e) => problems.push(ParamProblem::Invalid(p.name.clone(), e)),
            },
            None => problems.push(ParamProblem::Missing(p.name.clone())),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

fn article(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "a string",
        ParamType::Integer => "an integer",
        ParamType::Number => "a number",
        ParamType::Boolean => "a boolean",
        ParamType::StringList => "a list of strings",
        ParamType::IntegerList => "a list of integers",
        ParamType::NumberList => "a list of numbers",
    }
}

fn toml_type(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The parameters of an included runbook from the values its `runbook` step passes
/// (already rendered): typed by the child's declarations (text is parsed for typed
/// parameters), defaults filled in. Problems are messages naming the child's file.
pub fn for_include(
    child: &crate::model::Runbook,
    rendered: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, ParamValue>, Vec<String>> {
    let file = &child.source.path;
    let mut given = BTreeMap::new();
    let mut wrong = Vec::new();
    for (k, v) in rendered {
        let Some(p) = child.param(k) else { continue };
        let typed = match v {
            serde_json::Value::String(s) if p.ty != ParamType::String => from_text(p.ty, s),
            other => from_json(p.ty, other),
        };
        match typed {
            Ok(t) => {
                given.insert(k.clone(), t);
            }
            Err(e) => wrong.push(format!("parameter `{k}` of runbook `{file}`: {e}")),
        }
    }
    if !wrong.is_empty() {
        return Err(wrong);
    }
    let values = resolve(&child.params, &given).map_err(|problems| {
        problems
            .into_iter()
            .map(|problem| match problem {
                ParamProblem::Missing(n) => format!("runbook `{file}` needs parameter `{n}`"),
                ParamProblem::Unknown(n) => format!("runbook `{file}` has no parameter `{n}`"),
                ParamProblem::Invalid(n, e) => format!("parameter `{n}` of runbook `{file}`: {e}"),
            })
            .collect::<Vec<String>>()
    })?;
    // An included runbook's lists are checked as the top level's are (RB119: empty or too
    // big), here where the plan and the dispatcher both type them (adv17b F12).
    if let Some(d) = crate::foreach::check_size(child, &values) {
        return Err(vec![format!("runbook `{file}`: {}", d.message)]);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    fn param(ty: ParamType) -> Param {
        Param {
            name: "p".into(),
            span: Span::default(),
            ty,
            description: None,
            default: None,
            allowed: None,
            pattern: None,
        }
    }

    #[test]
    fn text_is_typed() {
        assert_eq!(from_text(ParamType::Integer, "42"), Ok(ParamValue::Integer(42)));
        assert!(from_text(ParamType::Integer, "4x").is_err());
        assert!(from_text(ParamType::Number, "NaN").is_err());
        assert_eq!(from_text(ParamType::Boolean, "true"), Ok(ParamValue::Boolean(true)));
        assert!(from_text(ParamType::Boolean, "yes").is_err());
    }

    #[test]
    fn enum_and_pattern_are_checked() {
        let mut p = param(ParamType::String);
        p.allowed = Some(vec![ParamValue::String("a".into())]);
        assert!(check(&p, &ParamValue::String("b".into())).is_err());
        p.allowed = None;
        p.pattern = Some(r"^v\d+$".into());
        assert!(check(&p, &ParamValue::String("v1".into())).is_ok());
        assert!(check(&p, &ParamValue::String("x1".into())).is_err());
    }

    #[test]
    fn lists_are_typed_from_text_json_and_toml() {
        let l = |v: &[&str]| ParamValue::List(v.iter().map(|s| ParamValue::String(s.to_string())).collect());
        assert_eq!(from_text(ParamType::StringList, "a, b,c"), Ok(l(&["a", "b", "c"])));
        assert_eq!(from_text(ParamType::StringList, ""), Ok(l(&[])));
        assert_eq!(from_text(ParamType::StringList, r#"["a,b", "c"]"#), Ok(l(&["a,b", "c"])));
        assert_eq!(
            from_text(ParamType::IntegerList, "1,2"),
            Ok(ParamValue::List(vec![ParamValue::Integer(1), ParamValue::Integer(2)]))
        );
        assert!(from_text(ParamType::IntegerList, "1,x").is_err_and(|e| e.starts_with("element 2: ")));
        let toml: toml::Value = toml::Value::Array(vec![toml::Value::String("a".into())]);
        assert_eq!(from_toml(ParamType::StringList, &toml), Ok(l(&["a"])));
        assert!(from_toml(ParamType::StringList, &toml::Value::String("a".into())).is_err());
        let many = (0..=MAX_LIST_ELEMENTS).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert!(from_text(ParamType::StringList, &many).is_err_and(|e| e.contains("at most 1000")));
    }

    #[test]
    fn elements_must_name_instances() {
        let p = param(ParamType::StringList);
        let l = |v: &[&str]| ParamValue::List(v.iter().map(|s| ParamValue::String(s.to_string())).collect());
        assert!(check(&p, &l(&["web-1", "web-2", "a b", "10.0.0.1:80"])).is_ok());
        for bad in [&["a", "a"][..], &["x[1]"], &["a/b"], &[""], &["a\u{202e}b"], &["tab\tx"]] {
            assert!(check(&p, &l(bad)).is_err(), "{bad:?}");
        }
        assert!(check(&p, &l(&[&"x".repeat(129)])).is_err());
    }

    #[test]
    fn resolve_reports_every_problem() {
        let mut a = param(ParamType::String);
        a.name = "a".into();
        let mut b = param(ParamType::Integer);
        b.name = "b".into();
        b.default = Some(ParamValue::Integer(1));
        let given = BTreeMap::from([("zz".to_string(), ParamValue::Integer(1))]);
        let err = resolve(&[a, b], &given).err().unwrap_or_default();
        assert_eq!(err, [ParamProblem::Unknown("zz".into()), ParamProblem::Missing("a".into())]);
    }
}
