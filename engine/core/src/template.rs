//! Templates and expressions: minijinja with undefined = error, and values bound, never
//! spliced, in `run` text.
//!
//! One environment serves validation, planning and execution, so a plan renders a command
//! exactly as the run will. In `run` text a value never becomes shell text: the template
//! writes a marker, and [`crate::shell::bind`] assigns the value to a variable at the top of
//! the script and writes a quoted reference to it where the value was (or the value itself,
//! in a context that reads it as code, only when it is an inert literal).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use minijinja::value::Kwargs;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{AutoEscape, Environment, ErrorKind, State, UndefinedBehavior, Value};

use crate::diagnostic::Source;
use crate::span::Span;

/// How interpolated values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// As they are (argv elements, URLs, messages, env values).
    Plain,
    /// Bound to shell variables (text of a `run` script).
    Shell,
    /// Percent-encoded for the part of the URL they land in (an `http` step's `url`).
    Url,
}

/// A template or expression that does not parse, or fails to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// What is wrong, without minijinja's location suffix.
    pub message: String,
    /// Byte range inside the template text, when known.
    pub range: Option<Range<usize>>,
    /// True for problems that only appear when rendering (unknown filter, wrong operand).
    pub at_render: bool,
    /// True when the error is an unknown filter, test or function.
    pub unknown_callable: bool,
    /// True when evaluating it costs more than the bounds allow ([`MAX_FUEL`] operations,
    /// [`MAX_RENDERED_BYTES`] of output): a template-limit problem, not a syntax one.
    pub too_costly: bool,
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Every evaluation is bounded in work: loops nested over big ranges end with an
        // error instead of hanging `check`, `plan` or a run.
        env.set_fuel(Some(MAX_FUEL));
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".sh") { AutoEscape::Custom("shell".into()) } else { AutoEscape::None }
        });
        env.set_formatter(|out, state, value| {
            if value.kind() == minijinja::value::ValueKind::Bool {
                let text = value.is_true().to_string();
                return out.write_str(&text).map_err(minijinja::Error::from);
            }
            // By the template's name, not the auto-escape state: `{% autoescape false %}`
            // cannot turn the binding off.
            if state.name() == URL_NAME {
                if let Some(p) = value.downcast_object_ref::<Placeholder>() {
                    return write!(out, "<{}>", p.0).map_err(minijinja::Error::from);
                }
                let marker = bind_value(value_text(value))
                    .map_err(|m| minijinja::Error::new(ErrorKind::InvalidOperation, m))?;
                return out.write_str(&marker).map_err(minijinja::Error::from);
            }
            if state.name() == SHELL_NAME {
                let text = value_text(value);
                if value.downcast_object_ref::<UnsafeRaw>().is_some() {
                    return out.write_str(&text).map_err(minijinja::Error::from);
                }
                let placeholder = value.downcast_object_ref::<Placeholder>().is_some();
                let marker = bind(text, placeholder)
                    .map_err(|m| minijinja::Error::new(ErrorKind::InvalidOperation, m))?;
                out.write_str(&marker).map_err(minijinja::Error::from)
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("operand", operand);
        // Builtins whose result an argument can make far larger than what they read: each is
        // paid for before it builds its text (minijinja charges it once it exists).
        env.add_filter("tojson", tojson_bounded);
        env.add_filter("pprint", |state: &State, value: Value| {
            paid_before(state, &value, 4, PPRINT_BYTES_PER_BYTE)?;
            let text = minijinja::filters::pprint(&value);
            // Charged like minijinja's own `pprint`, once it exists.
            state.consume_fuel(text.len() as u64 / 64)?;
            Ok::<_, minijinja::Error>(text)
        });
        env.add_filter("urlencode", |state: &State, value: Value| {
            paid_before(state, &value, 0, URLENCODE_BYTES_PER_BYTE)?;
            minijinja::filters::urlencode(&value)
        });
        for name in ["escape", "e"] {
            env.add_filter(name, |state: &mut State, value: Value| {
                paid_before(state, &value, 0, ESCAPE_BYTES_PER_BYTE)?;
                minijinja::filters::escape(state, &value)
            });
        }
        env.add_filter("unsafe_raw", |value: Value| Value::from_object(UnsafeRaw(value_text(&value))));
        env
    })
}

/// The most bytes one byte of a string becomes in `tojson` (`\u003c` for `<`).
const JSON_BYTES_PER_BYTE: u64 = 6;
/// ... in `pprint` (Rust's debug escapes, `\u{10ffff}` for a 4-byte character).
const PPRINT_BYTES_PER_BYTE: u64 = 10;
/// ... in `urlencode` (`%XX`).
const URLENCODE_BYTES_PER_BYTE: u64 = 3;
/// ... in `escape` (`&quot;`).
const ESCAPE_BYTES_PER_BYTE: u64 = 6;

/// `tojson`, with the text its `indent` asks for paid for before it is built: minijinja
/// charges the text once it exists, so `indent=3000000` over a list of a thousand items
/// allocated gigabytes (and aborted the process) before the bound was seen.
fn tojson_bounded(
    state: &State,
    value: &Value,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    let indent = match indent {
        Some(i) => Some(i),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let width = match &indent {
        None => 0,
        Some(v) if v.kind() == minijinja::value::ValueKind::Bool => 2 * u64::from(v.is_true()),
        // Not a width: minijinja's own error says so below.
        Some(v) => u64::try_from(v.clone()).unwrap_or(0),
    };
    paid_before(state, value, width, JSON_BYTES_PER_BYTE)?;
    let text = minijinja::filters::tojson(value, indent, kwargs)?;
    // Charged like minijinja's own `tojson`, once it exists.
    state.consume_fuel(text.as_str().map_or(0, str::len) as u64 / 64)?;
    Ok(text)
}

/// Fails with minijinja's out-of-fuel error unless the fuel left pays for the largest text
/// a serialisation of `value` may take: `per_byte` bytes per byte of its strings and
/// `indent` spaces per level of nesting on each line, beside a few bytes per item.
fn paid_before(state: &State, value: &Value, indent: u64, per_byte: u64) -> Result<(), minijinja::Error> {
    let Some((_, remaining)) = state.fuel_levels() else {
        return Ok(());
    };
    let budget = remaining.saturating_mul(64);
    if serialised_size_bound(value, indent, per_byte, budget) >= budget {
        return Err(minijinja::Error::from(ErrorKind::OutOfFuel));
    }
    Ok(())
}

/// An upper bound of the text of `value` serialised with `indent`, counted until it
/// reaches `stop` (then `stop`). Iterative: a value nested deeply does not exhaust the stack.
fn serialised_size_bound(value: &Value, indent: u64, per_byte: u64, stop: u64) -> u64 {
    use minijinja::value::ValueKind;
    let mut total: u64 = 0;
    let mut todo: Vec<(Value, u64)> = vec![(value.clone(), 0)];
    while let Some((v, depth)) = todo.pop() {
        if total >= stop {
            return stop;
        }
        let item_line = indent.saturating_mul(depth + 1).saturating_add(4);
        match v.kind() {
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
                // Brackets, and the closing line of a non-empty container.
                total = total.saturating_add(indent.saturating_mul(depth).saturating_add(4));
                let map = v.kind() == ValueKind::Map;
                let Ok(items) = v.try_iter() else { continue };
                for item in items {
                    total = total.saturating_add(item_line);
                    if total >= stop {
                        return stop;
                    }
                    if map {
                        let inner = v.get_item(&item).unwrap_or_default();
                        total = total.saturating_add(text_bound(&item, per_byte));
                        todo.push((inner, depth + 1));
                    } else {
                        todo.push((item, depth + 1));
                    }
                }
            }
            _ => total = total.saturating_add(text_bound(&v, per_byte)),
        }
    }
    total
}

/// The largest text one plain value may take once escaped.
fn text_bound(value: &Value, per_byte: u64) -> u64 {
    let len = match value.as_str() {
        Some(s) => s.len(),
        // Numbers, booleans, none, objects: their display, bounded like a string.
        None => value.to_string().len(),
    };
    (len as u64).saturating_mul(per_byte).saturating_add(8)
}

/// The name of `run` templates.
const SHELL_NAME: &str = "run.sh";
/// The name of URL templates.
const URL_NAME: &str = "url";

thread_local! {
    /// The values of the `run` template being rendered on this thread, by marker number.
    static BINDINGS: RefCell<Option<(Vec<String>, Vec<bool>)>> = const { RefCell::new(None) };
    /// The bytes of those values, against [`MAX_RENDERED_BYTES`].
    static BOUND_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Record a value of a `run` template; its marker.
fn bind_value(text: String) -> Result<String, String> {
    bind(text, false)
}

/// Record a value, or a placeholder that stands for one in a plan; its marker.
fn bind(text: String, placeholder: bool) -> Result<String, String> {
    // `{{ x | e }}`: `escape` formats the value through this formatter, so its result is
    // the marker of a value already bound; it stands for that value, once.
    let bound = BINDINGS.with(|b| {
        b.borrow().as_ref().is_some_and(|(values, _)| {
            values.len().checked_sub(1).is_some_and(|n| text == crate::shell::marker(n))
        })
    });
    if bound {
        return Ok(text);
    }
    if text.contains(crate::shell::MARK) {
        return Err("a value in `run` text contains a NUL character (or text captured from other values, by `{% set %}`, `{% filter %}` or a macro)".into());
    }
    BINDINGS.with(|b| match b.borrow_mut().as_mut() {
        Some(_) if BOUND_BYTES.with(|n| n.get()) + text.len() > MAX_RENDERED_BYTES => {
            Err(format!("the values it binds are {TOO_LARGE}: more than {} MiB", MAX_RENDERED_BYTES >> 20))
        }
        Some((values, placeholders)) => {
            BOUND_BYTES.with(|n| n.set(n.get() + text.len()));
            values.push(text);
            placeholders.push(placeholder);
            Ok(crate::shell::marker(values.len() - 1))
        }
        None => Err("a `run` template rendered outside a binding".into()),
    })
}

/// Render `f` with values bound: the script that runs, with its assignments, or the URL
/// with each value encoded for its part.
fn with_bindings(
    mode: Mode,
    f: impl FnOnce() -> Result<String, TemplateError>,
) -> Result<String, TemplateError> {
    let previous = BINDINGS.with(|b| b.borrow_mut().replace((Vec::new(), Vec::new())));
    let previous_bytes = BOUND_BYTES.with(|n| n.replace(0));
    let text = f();
    let (values, placeholders) =
        BINDINGS.with(|b| std::mem::replace(&mut *b.borrow_mut(), previous)).unwrap_or_default();
    BOUND_BYTES.with(|n| n.set(previous_bytes));
    let text = text?;
    let bound = match mode {
        Mode::Url => bind_url(&text, &values),
        Mode::Shell | Mode::Plain => crate::shell::bind(&text, &values, &placeholders),
    };
    bound.map_err(|message| TemplateError {
        too_costly: message.contains(TOO_LARGE),
        message,
        range: None,
        at_render: true,
        unknown_callable: false,
    })
}

/// Write each value of a URL for the part it lands in. A value that starts the URL is its
/// base (scheme, host...) and is written as it is; in the host part a value may hold only a
/// host name or a port; in the path every byte but unreserved ones, `/` and `%XX` escapes
/// is percent-encoded (`?` and `#` cannot end the path); in the query and the fragment `&`,
/// `=`, `+`, `#` are encoded too, so a value cannot add a query key or change the host.
fn bind_url(text: &str, values: &[String]) -> Result<String, String> {
    // Each value is placed by looking at what precedes it: linear per value, so a URL of
    // thousands of values (a loop) would be quadratic. A real URL has a handful.
    if values.len() > MAX_URL_VALUES {
        return Err(format!(
            "a URL of {} values is {TOO_LARGE}: at most {MAX_URL_VALUES} values may stand in one URL",
            values.len()
        ));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut next = 0;
    while let Some(open) = rest.find(crate::shell::MARK) {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find(crate::shell::MARK).ok_or("a broken value marker in a URL")?;
        let index: usize = after[..close].parse().map_err(|_| "a broken value marker in a URL")?;
        if index != next {
            return Err("a value in a URL was transformed as text (by a `{% filter %}` block?)".into());
        }
        next += 1;
        let value = values.get(index).ok_or("a marker without a value")?;
        rest = &after[close + 1..];
        let scheme_end = out.find("://");
        let Some(scheme_end) = scheme_end else {
            if out.is_empty() {
                out.push_str(value);
                continue;
            }
            if !out.contains(':') {
                return Err(format!(
                    "a value before the `:` of a URL's scheme: `{}`",
                    value.chars().take(60).collect::<String>()
                ));
            }
            // A URL without an authority (`sqlite:{{ file }}`): the value is part of its
            // path, and cannot start a query or a fragment.
            if !out.contains(['?', '#']) && value.contains(['?', '#']) {
                return Err(format!(
                    "`{}` cannot stand in the path of a URL: it holds `?` or `#`",
                    value.chars().take(60).collect::<String>()
                ));
            }
            let in_path = !out.contains(['?', '#']);
            out.push_str(&if in_path { value.clone() } else { percent_encode(value, false) });
            continue;
        };
        let tail = &out[scheme_end + 3..];
        if !tail.contains(['/', '?', '#']) {
            // The authority. Before an `@` that the template writes later, the value is in
            // the userinfo (a user name or a password) and every reserved byte is encoded;
            // otherwise it is the host part: a host name, an address or a port only.
            let authority_rest = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            if authority_rest.contains('@') {
                out.push_str(&percent_encode(value, false));
                continue;
            }
            if !value.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:[]%".contains(c)) {
                return Err(format!(
                    "`{}` cannot stand in the host part of a URL: only a host name, an address or a port can",
                    value.chars().take(60).collect::<String>()
                ));
            }
            out.push_str(value);
        } else {
            let in_path = !tail.contains(['?', '#']);
            if in_path && has_dot_segment(value) {
                return Err(format!(
                    "`{}` holds a `..` or `.` path segment (maybe percent-encoded): in the path of a URL a value stays in its own segments",
                    value.chars().take(60).collect::<String>()
                ));
            }
            out.push_str(&percent_encode(value, in_path));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `value`, split on `/` with `%2e`/`%2E` read as `.`, has a `.` or `..` segment
/// (which a server or a client would resolve, climbing out of the value's place).
fn has_dot_segment(value: &str) -> bool {
    value.split('/').any(|segment| {
        let s = segment.replace("%2e", ".").replace("%2E", ".");
        s == "." || s == ".."
    })
}

/// Percent-encode `value` for a URL's path (`/` kept) or query and fragment; unreserved
/// characters and existing `%XX` escapes are kept, so `urlencode`'s output is unchanged.
fn percent_encode(value: &str, path: bool) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape =
            b == b'%' && bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (path && b == b'/') || escape {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    out
}

/// The elements of a `cmd` array once rendered (`texts` are their templates): an element
/// that begins with a value and is an argument the program may read as an option
/// ([`crate::shell::argv_options`]) may not start with `-`, unless it is a number
/// ([`crate::shell::option_value`]). The error names the element (from 0) and says why.
pub fn argv_options(texts: &[&str], rendered: &[String]) -> Result<(), (usize, String)> {
    let masked: Vec<String> = texts.iter().map(|t| mask_shell(t).text).collect();
    for (k, argument) in crate::shell::argv_options(&masked).into_iter().enumerate() {
        if let Some(why) = rendered.get(k).filter(|_| argument).and_then(|r| crate::shell::option_value(r)) {
            return Err((
                k,
                format!(
                    "element {} of `cmd`: {why}; add an element `--` before it where the program accepts one, glue the value to its option (`--remote={{{{ x }}}}`), or give the parameter a `pattern` that refuses a leading `-`",
                    k + 1
                ),
            ));
        }
    }
    Ok(())
}

/// `{{ x | operand }}`: the value as it is, refused when it starts with `-`, so that in an
/// operand position (`git checkout {{ params.tag | operand }}`) it can never be read as an
/// option such as `--upload-pack=...` or `-oProxyCommand=...`.
fn operand(value: Value) -> Result<Value, minijinja::Error> {
    let text = value_text(&value);
    if text.starts_with('-') {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "`{}` starts with `-`, so as an operand it would be read as an option; it was refused",
                text.chars().take(60).collect::<String>()
            ),
        ));
    }
    Ok(value)
}

/// The loud opt-out of shell quoting: `{{ x | unsafe_raw }}` writes the value into a `run`
/// script as shell code. Plans flag every use.
#[derive(Debug)]
struct UnsafeRaw(String);

impl Object for UnsafeRaw {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key that marks a placeholder in a JSON context: `{"__runbook_placeholder__": "secret:X"}`.
const PLACEHOLDER_KEY: &str = "__runbook_placeholder__";

/// A JSON context value standing for something unknown at plan time (`secret:DB`,
/// `output:backup.file`, `run.id`). It renders as `<secret:DB>` and answers any attribute
/// with a longer placeholder, so `steps.h.outputs.json.version` renders too.
pub fn placeholder(path: &str) -> serde_json::Value {
    serde_json::json!({ PLACEHOLDER_KEY: path })
}

#[derive(Debug)]
struct Placeholder(String);

impl Object for Placeholder {
    // Iterable (and empty), so filters such as `map` and `join` work on a placeholder for a
    // list the run will produce; attribute access still yields nested placeholders.
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str().map(str::to_string).unwrap_or_else(|| key.to_string());
        Some(Value::from_object(Placeholder(format!("{}.{key}", self.0))))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

/// A render context, converted once from JSON (placeholders made live) and shared by every
/// template rendered against it.
#[derive(Debug, Clone)]
pub struct Context(Value);

impl Context {
    /// Convert a JSON context.
    pub fn new(json: &serde_json::Value) -> Self {
        Context(to_value(json))
    }

    /// This context for one instance of a `for-each` step: `item` and `item_index` set
    /// (values like any other, so they reach commands bound and quoted as parameters do),
    /// and, when `own` is `(base, instance)`, `steps.BASE` reading the instance's own
    /// outputs (its compensation writes `steps.restart.outputs.x`). Costs the context's
    /// top-level keys, and the steps' when `own` is given, not a new conversion.
    pub fn with_item(&self, item: &serde_json::Value, index: usize, own: Option<(&str, &str)>) -> Context {
        let mut map: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
        if let Ok(keys) = self.0.try_iter() {
            for key in keys {
                if let Some(k) = key.as_str() {
                    map.insert(k.to_string(), self.0.get_attr(k).unwrap_or_default());
                }
            }
        }
        map.insert("item".into(), to_value(item));
        map.insert("item_index".into(), Value::from(index));
        if let Some((base, instance)) = own
            && let Some(steps) = map.get("steps")
            && let Ok(mine) = steps.get_attr(instance)
            && !mine.is_undefined()
        {
            let mut copy: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
            if let Ok(keys) = steps.try_iter() {
                for key in keys {
                    if let Some(k) = key.as_str() {
                        copy.insert(k.to_string(), steps.get_attr(k).unwrap_or_default());
                    }
                }
            }
            copy.insert(base.to_string(), mine);
            map.insert("steps".into(), Value::from(copy));
        }
        Context(Value::from(map))
    }
}

/// A JSON context as minijinja values, with placeholders made live.
fn to_value(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Object(map) => {
            if map.len() == 1
                && let Some(J::String(path)) = map.get(PLACEHOLDER_KEY)
            {
                return Value::from_object(Placeholder(path.clone()));
            }
            Value::from(
                map.iter()
                    .map(|(k, v)| (k.clone(), to_value(v)))
                    .collect::<std::collections::BTreeMap<String, Value>>(),
            )
        }
        J::Array(items) => Value::from_iter(items.iter().map(to_value)),
        J::String(s) => Value::from(s.clone()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            _ => Value::from(n.to_string()),
        },
        J::Null => Value::from(()),
    }
}

fn value_text(value: &Value) -> String {
    match value.as_str() {
        Some(s) => s.to_string(),
        // TOML and JSON spell booleans `true` and `false`; so do shells' `test` and most CLIs.
        None if value.kind() == minijinja::value::ValueKind::Bool => value.is_true().to_string(),
        None => value.to_string(),
    }
}

/// Quote `s` for a POSIX shell so that it is exactly one word (the values assigned at the top
/// of a `run` script).
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn convert(e: &minijinja::Error, at_render: bool) -> TemplateError {
    let message = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    let unknown_callable =
        matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownFunction);
    let message = match e.kind() {
        ErrorKind::UnknownFilter if e.detail().is_none() => "unknown filter".to_string(),
        ErrorKind::UnknownTest if e.detail().is_none() => "unknown test".to_string(),
        ErrorKind::UnknownFunction if e.detail().is_none() => "unknown function".to_string(),
        _ => message,
    };
    // minijinja's own bound on repetition says "too large" too.
    let too_costly = matches!(e.kind(), ErrorKind::OutOfFuel)
        || (e.kind() == ErrorKind::InvalidOperation && message.contains(TOO_LARGE));
    let message = match e.kind() {
        ErrorKind::OutOfFuel => format!(
            "evaluating it does more work than the bound ({MAX_FUEL} operations, or about {} MiB of data): a loop over a big range, loops nested, or a value grown too large?",
            (MAX_FUEL * 64) >> 20
        ),
        _ => message,
    };
    TemplateError { message, range: e.range(), at_render, unknown_callable, too_costly }
}

/// The most work (minijinja's "fuel") one evaluation may do: one per operation, and one per
/// 64 bytes of data it creates or reads, so it bounds both time and memory (about 64 MiB).
/// A template of a runbook spends tens; a loop over a few thousand rows of a step's output,
/// some ten thousand. Loops nested over big ranges would otherwise run for hours, and
/// nested joins or doubled strings exhaust memory (the process aborts).
pub const MAX_FUEL: u64 = 1_000_000;

/// The most values one URL may hold (see [`bind_url`]).
pub const MAX_URL_VALUES: usize = 256;

/// How a value over the bounds is described (minijinja's repetition bound says the same).
const TOO_LARGE: &str = "too large";

/// The most bytes one template may render to. A script or a message is kilobytes; a value
/// of megabytes in a command line or a notification is a mistake or an attack.
pub const MAX_RENDERED_BYTES: usize = 4 << 20;

/// An output that refuses to grow past [`MAX_RENDERED_BYTES`]: a loop that prints ends
/// with an error at the bound instead of filling memory.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            return Err(std::io::Error::other("rendered text too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_large() -> TemplateError {
    TemplateError {
        message: format!("it renders to more than {} MiB", MAX_RENDERED_BYTES >> 20),
        range: None,
        at_render: true,
        unknown_callable: false,
        too_costly: true,
    }
}

/// The most bytes a template or expression may have. A `run` script of a few thousand
/// lines fits; anything bigger is a mistake or an attack.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;

/// The most nesting one tag (`{{ }}`, `{% %}`) or expression may have, counted by
/// [`nesting`]: open brackets plus operators, filters, tests and `not`, each of which can add
/// a level to minijinja's parser, compiler or evaluator (all recursive). Measured with
/// minijinja 3.1 in a debug build (compile, list variables, render), the worst constructs
/// being a chain of `+` and nested `not` or filters: about 1,190 levels survive on a 2 MiB
/// thread (the smallest stack a template meets: tokio's blocking threads) and about 4,890 on
/// the 8 MiB main thread. The bound is six times under the first; real templates use a
/// handful. Brackets and blocks have limits of their own in minijinja (an error, not a
/// crash), which [`MAX_BLOCK_DEPTH`] keeps well under.
pub const MAX_NESTING: usize = 200;

/// The most block tags (`{% if %}`, `{% for %}`...) open at once in one template.
pub const MAX_BLOCK_DEPTH: usize = 50;

/// Refuse a template (or, with `expression`, an expression) too long or nested too deeply
/// to compile safely, before minijinja sees it: its parser recurses, and a stack overflow
/// aborts the process. The message names the bound; `range` points at the offending tag.
pub fn limits(text: &str, expression: bool) -> Result<(), TemplateError> {
    let refuse = |message: String, range: Option<Range<usize>>| {
        Err(TemplateError { message, range, at_render: false, unknown_callable: false, too_costly: false })
    };
    if text.len() > MAX_TEMPLATE_BYTES {
        return refuse(
            format!("it is {} bytes long; templates are limited to {MAX_TEMPLATE_BYTES} bytes", text.len()),
            None,
        );
    }
    if expression {
        let n = nesting(text);
        if n > MAX_NESTING {
            return refuse(
                format!("it nests {n} operators, filters or brackets; the limit is {MAX_NESTING}"),
                None,
            );
        }
        return Ok(());
    }
    let mut blocks = 0usize;
    let mut at = 0;
    while let Some(open) = text[at..].find('{').map(|i| at + i) {
        let close = match text.as_bytes().get(open + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                at = open + 1;
                continue;
            }
        };
        let body_start = open + 2;
        let end = tag_end(text, body_start, close);
        let body = &text[body_start..end];
        if close != "#}" {
            let n = nesting(body);
            if n > MAX_NESTING {
                return refuse(
                    format!("one tag nests {n} operators, filters or brackets; the limit is {MAX_NESTING}"),
                    Some(open..end.min(text.len())),
                );
            }
        }
        if close == "%}" {
            let word = body.trim_start_matches(['-', '+']).split_whitespace().next().unwrap_or("");
            if BLOCK_TAGS.contains(&word) {
                blocks += 1;
                if blocks > MAX_BLOCK_DEPTH {
                    return refuse(
                        format!("more than {MAX_BLOCK_DEPTH} blocks are open at once"),
                        Some(open..end.min(text.len())),
                    );
                }
            } else if word.starts_with("end") {
                blocks = blocks.saturating_sub(1);
            }
        }
        at = (end + close.len()).min(text.len());
    }
    Ok(())
}

/// Roots of the values that a plan does not know (it shows a placeholder for them): step
/// outputs and approval inputs (`steps`), secrets and the run's own fields.
const UNKNOWN_ROOTS: [&str; 3] = ["steps", "secrets", "run"];

/// The tags of `text` that branch or compute on a value unknown when a plan is made: a
/// `{% %}` tag (`if`, `for`, `set`, `with`, `macro`, `call`, `filter`...) that names a root
/// of [`UNKNOWN_ROOTS`], or a `{{ }}` tag naming one that is not a bare path (a filter, a
/// test, an operator, a call, a subscript). The plan cannot show such text as it will
/// run (it would pick a branch or a length from the placeholder), so `check` refuses it.
/// Names are found as words outside string literals, so the rule is conservative: a local
/// named `steps` is refused too. `{% raw %}` bodies are text.
pub fn unknown_logic(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    // Blocks whose body is captured as text and transformed (`{% set x %}`, `filter`,
    // `macro`, `call`): inside them even a bare value is computed on.
    let mut blocks: Vec<bool> = Vec::new();
    let mut at = 0;
    while let Some(open) = text[at..].find('{').map(|i| at + i) {
        let close = match text.as_bytes().get(open + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                at = open + 1;
                continue;
            }
        };
        let end = tag_end(text, open + 2, close);
        let body = &text[open + 2..end];
        let inner = body.trim_start_matches(['-', '+']).trim_end_matches(['-', '+']).trim();
        let next = (end + close.len()).min(text.len());
        if close == "%}" && inner.split_whitespace().next() == Some("raw") {
            at = text[next..].find("endraw").map_or(text.len(), |i| next + i);
            continue;
        }
        if close == "%}" {
            let mut words = inner.split_whitespace();
            let word = words.next().unwrap_or("");
            if BLOCK_TAGS.contains(&word) || (word == "set" && !inner.contains('=')) {
                blocks.push(matches!(word, "set" | "filter" | "macro" | "call"));
            } else if word.starts_with("end") {
                blocks.pop();
            }
        }
        let captured = blocks.iter().any(|&c| c);
        let names_unknown = close != "#}" && words_outside_strings(inner).any(|w| UNKNOWN_ROOTS.contains(&w));
        // `{{ x | operand }}` passes the value or fails the step: it computes nothing.
        let bare = close == "}}"
            && match inner.split_once('|') {
                Some((path, filter)) => is_selection(path.trim()) && filter.trim() == "operand",
                None => is_selection(inner),
            };
        if names_unknown && (!bare || captured) {
            found.push(open..next);
        }
        at = next;
    }
    found
}

/// A path with literal subscripts (`rows[0].name`, `json["k"]`): it selects, computes nothing.
fn is_selection(text: &str) -> bool {
    let mut flat = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        flat.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']').map(|c| open + c) else { return false };
        let index = &rest[open + 1..close];
        let quoted = index.len() >= 2
            && (index.starts_with('"') && index.ends_with('"')
                || index.starts_with('\'') && index.ends_with('\''))
            && !index[1..index.len() - 1].contains(['"', '\'', '\\']);
        if !(quoted || (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))) {
            return false;
        }
        flat.push_str(".x");
        rest = &rest[close + 1..];
    }
    flat.push_str(rest);
    is_path(&flat)
}

/// The identifiers of an expression that are not attributes (`.name`) and not inside string
/// literals.
fn words_outside_strings(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let attribute = text[..start].trim_end().ends_with('.');
                if !attribute {
                    words.push(&text[start..i]);
                }
            }
            _ => i += 1,
        }
    }
    words.into_iter()
}

/// Where the tag whose body starts at `from` ends: the first `close` outside brackets and
/// string literals (a dict literal's `}}` does not end a `{{ }}` tag), or the end of the
/// text. Conservative: the body measured is never shorter than the one minijinja parses.
fn tag_end(text: &str, from: usize, close: &str) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') if close != "#}" => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' if close != "#}" => depth += 1,
            b')' | b']' if close != "#}" => depth = depth.saturating_sub(1),
            b'}' | b'%' | b'#' if depth == 0 && text[i..].starts_with(close) => return i,
            b'}' if close != "#}" => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    text.len()
}

/// Tags that open a block closed by an `end...` tag.
const BLOCK_TAGS: [&str; 8] = ["if", "for", "with", "macro", "call", "filter", "block", "autoescape"];

/// An upper bound on how deeply the text of one tag or expression can nest in minijinja's
/// syntax tree: the deepest bracket nesting plus every operator, filter, test, `not` and
/// attribute access (each can add a level). String literals are skipped. Linear.
pub fn nesting(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut ops = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                // Skip the literal (with its escapes).
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'~' | b'|' | b'<' | b'>' | b'=' | b'!' | b'.' | b',' => {
                ops += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if matches!(&text[start..i], "not" | "and" | "or" | "in" | "is" | "if" | "else") {
                    ops += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    max_depth + ops
}

/// A template compiled once, for analysis and rendering.
#[derive(Debug)]
pub struct Compiled<'s>(minijinja::Template<'s, 's>, Mode);

impl<'s> Compiled<'s> {
    /// Compile `text`; `mode` decides how it will quote values.
    pub fn new(text: &'s str, mode: Mode) -> Result<Self, TemplateError> {
        let name = match mode {
            Mode::Plain => "text",
            Mode::Shell => SHELL_NAME,
            Mode::Url => URL_NAME,
        };
        limits(text, false)?;
        let env: &'s Environment<'s> = env();
        env.template_from_named_str(name, text).map(|t| Compiled(t, mode)).map_err(|e| convert(&e, false))
    }

    /// The variables it reads, as dotted paths.
    pub fn vars(&self) -> BTreeSet<String> {
        self.0.undeclared_variables(true).into_iter().collect()
    }

    /// Render against a context.
    pub fn render(&self, ctx: &Context) -> Result<String, TemplateError> {
        let render = || {
            let mut out = Capped(Vec::new());
            let result = self.0.render_captured_to(ctx.0.clone(), &mut out).map(|_| ());
            match result {
                Ok(()) => String::from_utf8(out.0).map_err(|_| too_large()),
                // The only write that fails is one past the bound.
                Err(e) if e.kind() == ErrorKind::WriteFailure => Err(too_large()),
                Err(e) => Err(convert(&e, true)),
            }
        };
        match self.1 {
            Mode::Plain => render(),
            Mode::Shell | Mode::Url => with_bindings(self.1, render),
        }
    }
}

/// The variables an expression reads, as dotted paths.
pub fn expr_vars(text: &str) -> Result<BTreeSet<String>, TemplateError> {
    limits(text, true)?;
    let expr = env().compile_expression(text).map_err(|e| convert(&e, false))?;
    let mut vars: BTreeSet<String> = expr.undeclared_variables(true).into_iter().collect();
    vars.extend(secret_mentions(text, true).into_iter().map(|(_, path)| path));
    Ok(vars)
}

/// Render a template against a context.
pub fn render(text: &str, mode: Mode, ctx: &Context) -> Result<String, TemplateError> {
    if let Some(out) = simple(text).and_then(|pieces| render_fast(&pieces, mode, ctx)) {
        return out;
    }
    Compiled::new(text, mode)?.render(ctx)
}

/// Render a [`simple`] template, values bound in `run` text; `None` when declined.
fn render_fast(pieces: &[Piece<'_>], mode: Mode, ctx: &Context) -> Option<Result<String, TemplateError>> {
    match mode {
        Mode::Plain => render_simple(pieces, mode, ctx).map(Ok),
        Mode::Shell | Mode::Url => {
            let mut declined = false;
            let out = with_bindings(mode, || {
                render_simple(pieces, mode, ctx).ok_or_else(|| {
                    declined = true;
                    TemplateError {
                        message: String::new(),
                        range: None,
                        at_render: true,
                        unknown_callable: false,
                        too_costly: false,
                    }
                })
            });
            (!declined).then_some(out)
        }
    }
}

/// The variables a template reads, as dotted paths (`params.x`, `steps.a.outputs.b`); its
/// syntax error otherwise.
pub fn analyse(text: &str, mode: Mode) -> Result<BTreeSet<String>, TemplateError> {
    match simple(text) {
        Some(pieces) => Ok(pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Var(path) => Some((*path).to_string()),
                Piece::Text(_) => None,
            })
            .collect()),
        None => {
            let mut vars = Compiled::new(text, mode)?.vars();
            vars.extend(secret_mentions(text, false).into_iter().map(|(_, path)| path));
            Ok(vars)
        }
    }
}

/// A piece of a [`simple`] template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `{{ params.x }}`: a dotted path.
    Var(&'a str),
}

/// Most runbook templates are literal text and `{{ params.x }}` substitutions. Those are
/// analysed and rendered here without compiling a minijinja template (the bulk of the time
/// `check` and `plan` spend on templates); anything else (filters, tests, blocks, comments,
/// whitespace control, expressions) is `None` and goes to minijinja. A property test checks
/// that both give the same text and the same variables.
fn simple(text: &str) -> Option<Vec<Piece<'_>>> {
    // minijinja drops one trailing newline (`keep_trailing_newline` is off).
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.ends_with('\r') {
        return None;
    }
    let literal = |t: &str| !t.contains("{%") && !t.contains("{#");
    let mut pieces = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("{{") {
        let (text, after) = rest.split_at(open);
        if !literal(text) {
            return None;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let after = &after[2..];
        let close = after.find("}}")?;
        let inner = &after[..close];
        let path = inner.trim();
        if inner.starts_with(['-', '+']) || inner.ends_with(['-', '+']) || !is_path(path) {
            return None;
        }
        pieces.push(Piece::Var(path));
        rest = &after[close + 2..];
    }
    if !literal(rest) {
        return None;
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Some(pieces)
}

/// `name(.name)*`, where the first name is not a keyword or constant of the language.
fn is_path(path: &str) -> bool {
    const RESERVED: [&str; 13] =
        ["true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else"];
    let ident = |s: &str| {
        let mut bytes = s.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let mut names = path.split('.');
    names.next().is_some_and(|first| ident(first) && !RESERVED.contains(&first)) && names.all(ident)
}

/// Render a [`simple`] template; `None` when a value is anything but a string, an integer
/// or a boolean (minijinja then renders it, or reports what is missing).
fn render_simple(pieces: &[Piece<'_>], mode: Mode, ctx: &Context) -> Option<String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(path) => {
                let mut value = ctx.0.clone();
                for name in path.split('.') {
                    value = value.get_attr(name).ok()?;
                    if value.is_undefined() {
                        return None;
                    }
                }
                // As the formatter of `env()` writes them.
                match value.kind() {
                    minijinja::value::ValueKind::Bool => {
                        out.push_str(if value.is_true() { "true" } else { "false" })
                    }
                    minijinja::value::ValueKind::String | minijinja::value::ValueKind::Number
                        if value.as_str().is_some() || value.is_integer() =>
                    {
                        let text = value_text(&value);
                        match mode {
                            Mode::Shell | Mode::Url => out.push_str(&bind_value(text).ok()?),
                            Mode::Plain => out.push_str(&text),
                        }
                    }
                    _ => return None,
                }
            }
        }
    }
    Some(out)
}

/// Jinja truthiness of a JSON value (what `when` and `assert` test).
pub fn truthy(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Evaluate an expression against a context.
pub fn eval(text: &str, ctx: &Context) -> Result<serde_json::Value, TemplateError> {
    limits(text, true)?;
    let expr = env().compile_expression(text).map_err(|e| convert(&e, false))?;
    let value = expr.eval(ctx.0.clone()).map_err(|e| convert(&e, true))?;
    serde_json::to_value(&value).map_err(|e| TemplateError {
        message: e.to_string(),
        range: None,
        at_render: true,
        unknown_callable: false,
        too_costly: false,
    })
}

/// A `run` template with its markup replaced, for the shell lexer ([`crate::shell`]).
#[derive(Debug, Default)]
pub struct Masked {
    /// The text with each `{{ ... }}` as a marker (`unsafe_raw` ones as a plain word),
    /// statements and comments removed, `{% raw %}` bodies kept.
    pub text: String,
    /// For each marker: its range in the template and its expression.
    pub sites: Vec<(Range<usize>, String)>,
    /// Ranges of `{% autoescape ... %}` tags.
    pub autoescape: Vec<Range<usize>>,
}

/// Replace the markup of a `run` template (see [`Masked`]). Every branch of an `if` is
/// kept, so the lexer sees each value in every place it may render.
pub fn mask_shell(text: &str) -> Masked {
    let mut m = Masked::default();
    let mut rest = 0;
    while let Some(open) = text[rest..].find('{').map(|i| rest + i) {
        let tail = &text[open..];
        let close = match tail.as_bytes().get(1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                m.text.push_str(&text[rest..open + 1]);
                rest = open + 1;
                continue;
            }
        };
        m.text.push_str(&text[rest..open]);
        let Some(end) = tail[2..].find(close).map(|e| open + 2 + e + 2) else {
            rest = text.len();
            break;
        };
        let inner = text[open + 2..end - 2].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        rest = end;
        match close {
            "}}" if inner.contains("unsafe_raw") => m.text.push_str("RAW"),
            "}}" => {
                m.text.push_str(&crate::shell::marker(m.sites.len()));
                m.sites.push((open..end, inner.to_string()));
            }
            "%}" if inner == "raw" => {
                // The body up to `{% endraw %}` is text.
                let mut search = end;
                while let Some(tag) = text[search..].find("{%").map(|i| search + i) {
                    let Some(tag_end) = text[tag..].find("%}").map(|e| tag + e + 2) else { break };
                    let word = text[tag + 2..tag_end - 2]
                        .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
                    if word == "endraw" {
                        m.text.push_str(&text[end..tag]);
                        rest = tag_end;
                        break;
                    }
                    search = tag_end;
                }
            }
            "%}" if inner.starts_with("autoescape") => m.autoescape.push(open..end),
            _ => {}
        }
    }
    m.text.push_str(&text[rest.min(text.len())..]);
    m
}

/// True when a template or expression may call a filter, test or function (`|`, `is`,
/// `(`): only those can fail on an unknown name, which a trial render detects.
pub fn may_call(text: &str) -> bool {
    text.contains('|') || text.contains('(') || text.contains(" is ")
}

/// True when evaluating a template may cost more than reading its values: repetition
/// (`*`), concatenation (`~`), blocks (`{% for %}`) and calls. A trial render at check time
/// then finds a template that costs too much ([`MAX_FUEL`], [`MAX_RENDERED_BYTES`]).
pub fn may_cost(text: &str) -> bool {
    text.contains('*') || text.contains('~') || text.contains("{%") || may_call(text)
}

/// True when a template has no `{{`/`{%` markup at all (renders to itself).
pub fn is_literal(text: &str) -> bool {
    !text.contains("{{") && !text.contains("{%") && !text.contains("{#")
}

/// Map a byte range inside a template's value to a span in the file, when the TOML literal
/// holds the value verbatim (no escapes); otherwise the whole literal.
pub fn inner_span(source: &Source, literal: Span, range: Option<Range<usize>>) -> Span {
    let Some(range) = range else { return literal };
    let Some(raw) = source.slice(literal) else { return literal };
    let (open, basic) = if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with("'''") {
        (3, false)
    } else if raw.starts_with('"') {
        (1, true)
    } else if raw.starts_with('\'') {
        (1, false)
    } else {
        return literal;
    };
    let mut body_start = open;
    if open == 3 && raw[open..].starts_with('\n') {
        body_start += 1;
    }
    if basic && raw.contains('\\') {
        return literal;
    }
    let start = literal.start + body_start + range.start;
    let end = (literal.start + body_start + range.end).min(literal.end.saturating_sub(open)).max(start);
    Span::new(start, end)
}

/// The filters a secret may go through in a template: the redactor knows the text each one
/// makes of a value (percent-encoding, JSON strings), so what they print is hidden like the
/// value itself. Any other transform of a secret makes text the redactor cannot know.
pub const SECRET_FILTERS: [&str; 2] = ["urlencode", "tojson"];

/// The statements a template that prints a secret may hold: they choose whether a tag is
/// printed, never capture what it prints (`set` blocks, `filter`, `macro`, `call`, `for ...
/// recursive`, `autoescape` do).
const SECRET_STATEMENTS: [&str; 4] = ["if", "elif", "else", "endif"];

/// Where `text` reads a secret in any form but a plain tag: `{{ secrets.NAME }}`, or
/// `{{ secrets.NAME | F }}` with `F` one of [`SECRET_FILTERS`]. A secret may only reach the
/// rendered text verbatim (or in an encoding the redactor mirrors): a filter, a slice, a
/// subscript, a method, a test, a concatenation, a loop or a `set` over `secrets` computes a
/// value the redactor has never seen. `None` when every read is plain.
///
/// By construction, not by enumerating transforms: the plain tags are cut out of the text,
/// and what remains must not read `secrets` at all (minijinja's own analysis of the
/// variables, so no syntax escapes it); a template with plain tags may hold only the
/// statements of [`SECRET_STATEMENTS`], which cannot capture the text a tag prints.
pub fn secret_transform(text: &str, mode: Mode) -> Option<Range<usize>> {
    let plain = plain_secret_tags(text);
    let mut rest = String::with_capacity(text.len());
    let mut kept = Vec::new(); // (offset in `rest`, offset in `text`) of each kept piece
    let mut at = 0;
    for r in &plain {
        kept.push((rest.len(), at));
        rest.push_str(&text[at..r.start]);
        at = r.end;
    }
    kept.push((rest.len(), at));
    rest.push_str(&text[at..]);
    let back = |pos: usize| {
        let (r, t) = kept.iter().rev().find(|(r, _)| *r <= pos).copied().unwrap_or((0, 0));
        t + (pos - r)
    };
    let reads = match Compiled::new(&rest, mode) {
        Ok(c) => c.vars().iter().any(|v| v == "secrets" || v.starts_with("secrets.")),
        // Cutting whole tags out of a template that compiles leaves one that compiles; if
        // not, refuse rather than guess.
        Err(_) => return Some(0..text.len()),
    };
    let mention = secret_mentions(&rest, false).first().map(|(pos, _)| *pos);
    if reads || mention.is_some() {
        let pos = mention.or_else(|| word_positions(&rest, "secrets").next()).unwrap_or(0);
        let start = back(pos);
        return Some(start..start + "secrets".len());
    }
    if plain.is_empty() {
        return None;
    }
    // Every `{%` is looked at, none skipped: a scan that jumped from a tag's start to the
    // next `%}` could be led past a real statement by a fake start (`{# {%if #}` before a
    // `{% filter upper %}`: the comment's `{%if` reaches the filter's `%}`). Looking at every
    // occurrence can only refuse more (a `{%` in a comment or a string), never less.
    let mut from = 0;
    while let Some(open) = text[from..].find("{%").map(|o| o + from) {
        let inner = text[open + 2..].trim_start_matches(['-', '+']).trim_start();
        let word: String = inner.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !SECRET_STATEMENTS.contains(&word.as_str()) {
            let end = text[open..].find("%}").map(|e| open + e + 2).unwrap_or(text.len());
            return Some(open..end);
        }
        from = open + 2;
    }
    None
}

/// The byte ranges of the plain secret tags of `text` (see [`secret_transform`]).
fn plain_secret_tags(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|o| o + from) {
        let Some(close) = text[open + 2..].find("}}").map(|c| open + 2 + c) else { break };
        let inner = text[open + 2..close].trim_start_matches(['-', '+']).trim_end_matches(['-', '+']).trim();
        let (path, filter) = match inner.split_once('|') {
            Some((p, f)) => (p.trim(), Some(f.trim())),
            None => (inner, None),
        };
        let named = path.strip_prefix("secrets.").is_some_and(|n| is_path(n) && !n.contains('.'));
        if named && filter.is_none_or(|f| SECRET_FILTERS.contains(&f)) {
            out.push(open..close + 2);
            from = close + 2;
        } else {
            from = open + 2;
        }
    }
    out
}

/// `text` with the inside of its string literals blanked (same length): a word in a string
/// is not a name.
fn without_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                    continue;
                }
                out.extend(std::iter::repeat_n(' ', c.len_utf8()));
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// Where `word` stands alone in `text` (not inside a longer name).
fn word_positions<'t>(text: &'t str, word: &'t str) -> impl Iterator<Item = usize> + 't {
    text.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let before = i == 0 || !name(text.as_bytes()[i - 1]);
        let after = text.as_bytes().get(i + word.len()).is_none_or(|&b| !name(b));
        before && after
    })
}

/// Every `secrets` (and `secrets.NAME`) written inside the tags of a template (the whole text
/// of an expression), with its position: minijinja's analysis of the variables misses the
/// target of a slice (`secrets.PW[2:]`), so what reads a secret is also found by its text.
/// The inside of string literals is skipped (`'/secrets/'` is no read).
fn secret_mentions(text: &str, expression: bool) -> Vec<(usize, String)> {
    let mut regions = Vec::new();
    if expression {
        regions.push(0..text.len());
    } else {
        let mut from = 0;
        while let Some(open) = text[from..].find('{').map(|o| o + from) {
            let close = match text.as_bytes().get(open + 1) {
                Some(b'{') => "}}",
                Some(b'%') => "%}",
                Some(b'#') => "#}",
                _ => {
                    from = open + 1;
                    continue;
                }
            };
            let end = tag_end(text, open + 2, close);
            if close != "#}" {
                regions.push(open + 2..end);
            }
            from = (end + 2).min(text.len());
            if from <= open {
                break;
            }
        }
    }
    let mut out = Vec::new();
    for r in regions {
        let inner = &without_strings(&text[r.clone()]);
        for pos in word_positions(inner, "secrets") {
            let after = &inner[pos + "secrets".len()..];
            let name: String = after
                .strip_prefix('.')
                .map(|n| n.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
                .unwrap_or_default();
            let path = if name.is_empty() { "secrets".to_string() } else { format!("secrets.{name}") };
            out.push((r.start + pos, path));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// The form of a secret the redactor mirrors for the `urlencode` filter
    /// (`secrets::tests::the_redactor_knows_the_urlencode_filters_form` in exec).
    #[test]
    fn minijinja_urlencode_keeps_slash_and_encodes_tilde() {
        let v = minijinja::Value::from("ab/cd ef+gh~ij");
        assert_eq!(minijinja::filters::urlencode(&v).ok().as_deref(), Some("ab/cd%20ef%2Bgh%7Eij"));
    }

    /// Red team adv14c F1: a comment holding a fake statement start could hide a real
    /// `filter`/`set` block from the scan; every `{%` is looked at now.
    #[test]
    fn a_comment_cannot_hide_a_statement_that_captures_a_secret() {
        for text in [
            "{# {%if #}{% filter upper %}{{ secrets.PW }}{# {%if #}{% endfilter %}",
            "{# {%if #}{% set s %}{{ secrets.PW }}{# {%if #}{% endset %}{{ s[1:] }}",
            "{#- {%- if -#}{%- filter upper -%}{{ secrets.PW }}{%- endfilter -%}",
            "{% if true %}{# %} #}{% filter lower %}{{ secrets.PW }}{% endfilter %}{% endif %}",
            "{{ '{%if' }}{% filter upper %}{{ secrets.PW }}{% endfilter %}",
        ] {
            assert!(secret_transform(text, Mode::Plain).is_some(), "{text}");
        }
        for text in ["{{ secrets.PW }}", "{% if params.x %}{{ secrets.PW }}{% else %}-{% endif %}"] {
            assert_eq!(secret_transform(text, Mode::Plain), None, "{text}");
        }
    }

    /// Every template built from costly pieces (loops nested over big ranges, joins with
    /// big separators, repetition, doubling by concatenation, recursive macros, filters
    /// over big sequences), in each mode, ends quickly with a bounded result or an error
    /// marked `too_costly`; never a hang or an allocation abort. Cheap templates over the
    /// same sizes still render.
    #[test]
    fn filters_paid_for_before_they_build_still_give_minijinjas_text() {
        let ctx = Context::new(&serde_json::json!({ "v": [1, [2, []], { "a": "<b> & 'c'", "d": {} }] }));
        let pretty = render("{{ v | tojson(indent=2) }}", Mode::Plain, &ctx).expect("tojson");
        assert_eq!(
            pretty,
            "[\n  1,\n  [\n    2,\n    []\n  ],\n  {\n    \"a\": \"\\u003cb\\u003e \\u0026 \\u0027c\\u0027\",\n    \"d\": {}\n  }\n]"
        );
        for (text, want) in [
            ("{{ v | tojson }}", r#"[1, [2, []], {"a": "\u003cb\u003e \u0026 \u0027c\u0027", "d": {}}]"#),
            ("{{ v | tojson(true) == v | tojson(indent=2) }}", "true"),
            ("{{ v | tojson(indent=false) == v | tojson }}", "true"),
            ("{{ 'a b/<' | urlencode }}", "a%20b/%3C"),
            ("{{ '<a>' | escape }}", "&lt;a&gt;"),
            ("{{ '<a>' | e }}", "&lt;a&gt;"),
            ("{{ [1] | pprint }}", "[\n    1,\n]"),
        ] {
            assert_eq!(render(text, Mode::Plain, &ctx).expect(text), want, "{text}");
        }
    }

    #[test]
    fn costly_templates_end_with_a_bounded_result_or_a_limit_error() {
        let big = ["range(100000)", "range(99999)", "params.rows"];
        let mut cases: Vec<String> = Vec::new();
        for r in big {
            cases.push(format!("{{% for a in {r} %}}{{% for b in {r} %}}{{% endfor %}}{{% endfor %}}"));
            cases.push(format!("{{% for a in {r} %}}{{% for b in {r} %}}x{{% endfor %}}{{% endfor %}}"));
            cases.push(format!("{{% for a in {r} %}}{{% for b in {r} %}}{{% for c in {r} %}}{{% endfor %}}{{% endfor %}}{{% endfor %}}"));
            cases.push(format!("{{{{ {r} | map('string') | join(({r} | map('string') | join(','))) }}}}"));
            cases.push(format!("{{{{ {r} | join({r} | join('-')) | length }}}}"));
            cases.push(format!("{{{{ ({r} | list) * 1000 | length }}}}"));
            cases.push(format!("{{{{ {r} | map('string') | map('upper') | map('lower') | join }}}}"));
            cases.push(format!("{{% for a in {r} %}}{{{{ a }}}}{{% endfor %}}"));
            cases.push(format!("{{{{ {r} | select('odd') | map('string') | join('x' * 1000) }}}}"));
            // Filters whose output size an argument picks, or that multiply what they read.
            cases.push(format!("{{{{ ({r} | list) | tojson(indent=3000000) | length }}}}"));
            cases.push(format!("{{{{ [({r} | list), [({r} | list)]] | tojson(indent=true) | length }}}}"));
            cases.push(format!("{{{{ ({r} | map('string') | join('<')) | tojson | tojson | length }}}}"));
            cases.push(format!("{{{{ ({r} | map('string') | join('<\"')) | escape | escape | length }}}}"));
            cases.push(format!(
                "{{{{ ({r} | map('string') | join('/')) | urlencode | urlencode | length }}}}"
            ));
            cases.push(format!("{{{{ ({r} | map('string') | join('\x01')) | pprint | pprint | length }}}}"));
        }
        for n in [1_000_000usize, 10_000_000, 100_000_000, 1_000_000_000] {
            cases.push(format!("{{{{ 'x' * {n} }}}}"));
            cases.push(format!("{{{{ ('x' * {n}) ~ ('y' * {n}) }}}}"));
            cases.push(format!(
                "{{% set s = 'ab' * {n} %}}{{% set s = s ~ s %}}{{% set s = s ~ s %}}{{{{ s | length }}}}"
            ));
            cases.push(format!("{{{{ ['a'] * {n} | join }}}}"));
        }
        for depth in [10, 20, 40] {
            cases.push(format!(
                "{{% macro f(n) %}}{{% if n > 0 %}}{{{{ f(n - 1) }}}}{{{{ f(n - 1) }}}}{{% else %}}x{{% endif %}}{{% endmacro %}}{{{{ f({depth}) }}}}"
            ));
        }
        cases.push("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}".into());
        let rows: Vec<u32> = (0..100_000).collect();
        let ctx = Context::new(&serde_json::json!({ "params": { "rows": rows } }));
        let mut limited = 0;
        for text in &cases {
            for mode in [Mode::Plain, Mode::Shell, Mode::Url] {
                let text = if mode == Mode::Url { format!("https://h.test/{text}") } else { text.clone() };
                match render(&text, mode, &ctx) {
                    Ok(out) => assert!(out.len() <= MAX_RENDERED_BYTES + 1024, "{text}: {} bytes", out.len()),
                    Err(e) => limited += usize::from(e.too_costly),
                }
            }
        }
        assert!(limited >= cases.len(), "{limited} of {} cases hit a limit", cases.len() * 3);
        // Cheap templates over the same sizes are fine.
        for text in [
            "{% for r in params.rows[:5000] %}{{ r }},{% endfor %}",
            "{{ params.rows | length }}",
            "{{ 'x' * 1000 }}",
        ] {
            assert!(render(text, Mode::Plain, &ctx).is_ok(), "{text}");
        }
        for expr in ["params.rows | length > 5", "range(1000) | map('string') | join(',') | length > 0"] {
            assert!(eval(expr, &ctx).is_ok(), "{expr}");
        }
        for expr in [
            "range(100000) | map('string') | join(range(100000) | map('string') | join(',')) | length > 0",
            "('x' * 100000000) ~ ('x' * 100000000) ~ ('x' * 100000000) != ''",
        ] {
            assert!(eval(expr, &ctx).is_err_and(|e| e.too_costly), "{expr}");
        }
    }
    use super::*;

    /// The bounds hold with margin: at the bound, the worst constructs compile, list their
    /// variables and render on a 2 MiB thread; far past it, they are refused before
    /// minijinja sees them.
    #[test]
    fn nesting_bound_is_safe_and_enforced() {
        let worst = |n: usize| {
            vec![
                format!("{{{{ {}x }}}}", "not ".repeat(n)),
                format!("{{{{ {} }}}}", vec!["x"; n + 1].join(" + ")),
                format!("{{{{ x{} }}}}", "|lower".repeat(n)),
                format!("{}x{}", "{% if x %}".repeat(n), "{% endif %}".repeat(n)),
            ]
        };
        let at_bound: Vec<String> =
            worst(MAX_BLOCK_DEPTH).into_iter().chain(worst(MAX_NESTING).into_iter().take(3)).collect();
        let ok = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let ctx = Context::new(&serde_json::json!({ "x": "a" }));
                at_bound.iter().all(|t| {
                    limits(t, false).is_ok()
                        && Compiled::new(t, Mode::Plain).is_ok_and(|c| {
                            let _ = c.vars();
                            let _ = c.render(&ctx);
                            true
                        })
                })
            })
            .expect("thread")
            .join()
            .expect("no crash");
        assert!(ok, "templates at the bound compile");
        for n in [MAX_NESTING + 1, 30_000, 100_000] {
            for t in worst(n) {
                assert!(limits(&t, false).is_err(), "refused at {n}: {}", &t[..40.min(t.len())]);
                assert!(Compiled::new(&t, Mode::Plain).is_err());
            }
            let expr = format!("{}x", "not ".repeat(n));
            assert!(limits(&expr, true).is_err() && expr_vars(&expr).is_err());
        }
    }

    mod simple_templates {
        use proptest::prelude::*;

        use super::super::*;

        /// Text pieces with what could confuse a scanner: braces, markers, quotes, newlines.
        fn text() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("a"),
                    Just(" "),
                    Just("{"),
                    Just("}"),
                    Just("%"),
                    Just("#"),
                    Just("-"),
                    Just("\n"),
                    Just("\r"),
                    Just("'"),
                    Just("\""),
                    Just("$x"),
                    Just("{%"),
                    Just("{#"),
                ],
                0..6,
            )
            .prop_map(|parts| parts.concat())
        }

        fn var() -> impl Strategy<Value = String> {
            let path = prop_oneof![
                Just("params.s"),
                Just("params.i"),
                Just("params.b"),
                Just("params.f"),
                Just("params.n"),
                Just("params.missing"),
                Just("steps.a.outputs.o"),
                Just("secrets.TOKEN"),
                Just("params"),
                Just("true"),
                Just("none"),
                Just("params.s|upper"),
                Just("params.i + 1"),
            ];
            let open = prop_oneof![Just("{{ "), Just("{{"), Just("{{- "), Just("{{\n")];
            let close = prop_oneof![Just(" }}"), Just("}}"), Just(" -}}"), Just("\n}}")];
            (open, path, close).prop_map(|(o, p, c)| format!("{o}{p}{c}"))
        }

        fn template() -> impl Strategy<Value = String> {
            proptest::collection::vec(prop_oneof![text(), var()], 0..6).prop_map(|parts| parts.concat())
        }

        fn context(s: &str, i: i64, b: bool) -> Context {
            Context::new(&serde_json::json!({
                "params": { "s": s, "i": i, "b": b, "f": 1.5, "n": null },
                "steps": { "a": { "outputs": placeholder("output:a.o") } },
                "secrets": { "TOKEN": placeholder("secret:TOKEN") },
            }))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Whatever the fast path answers, minijinja answers the same.
            #[test]
            fn the_fast_path_agrees_with_minijinja(
                text in template(),
                s in "[ -~\n]{0,12}",
                i in -1000i64..1000,
                b in any::<bool>(),
            ) {
                let Some(pieces) = simple(&text) else { return Ok(()) };
                let compiled = Compiled::new(&text, Mode::Plain);
                prop_assert!(compiled.is_ok(), "a simple template compiles: {text:?}");
                let vars: BTreeSet<String> = pieces
                    .iter()
                    .filter_map(|p| match p { Piece::Var(v) => Some((*v).to_string()), Piece::Text(_) => None })
                    .collect();
                prop_assert_eq!(&vars, &compiled.map(|c| c.vars()).unwrap_or_default(), "{:?}", text);
                let ctx = context(&s, i, b);
                for mode in [Mode::Plain, Mode::Shell] {
                    let slow = Compiled::new(&text, mode).and_then(|c| c.render(&ctx));
                    // `None`: declined; minijinja renders it (or reports what is missing).
                    if let Some(fast) = render_fast(&pieces, mode, &ctx) {
                        prop_assert_eq!(fast, slow, "{:?} {:?}", text, mode);
                    }
                }
            }
        }

        #[test]
        fn common_templates_take_the_fast_path() {
            for text in ["echo {{ params.x }} > /dev/null", "{{params.a}}-{{ steps.b.outputs.c }}\n", "plain"]
            {
                assert!(simple(text).is_some(), "{text}");
            }
            for text in
                ["{{ x | upper }}", "{% if a %}b{% endif %}", "{{- x }}", "{# c #}{{ x }}", "{{ true }}"]
            {
                assert!(simple(text).is_none(), "{text}");
            }
        }
    }
    use serde_json::json;

    #[test]
    fn booleans_render_as_toml_spells_them() {
        let ctx = Context::new(&serde_json::json!({ "yes": true, "no": false }));
        assert_eq!(
            render("{{ yes }} {{ no }}", Mode::Plain, &ctx).map_err(|e| e.message),
            Ok("true false".into())
        );
        assert_eq!(
            render("test {{ no }}", Mode::Shell, &ctx).map_err(|e| e.message),
            Ok("test false".into())
        );
    }

    #[test]
    fn shell_values_are_one_word() {
        let ctx = json!({"params": {"x": "a b; rm -rf / $(touch x) 'q'", "tag": "v1.0.0"}});
        let out = render("echo {{ params.x }} {{ params.tag }}", Mode::Shell, &Context::new(&ctx))
            .unwrap_or_default();
        assert_eq!(out, "RB_1='a b; rm -rf / $(touch x) '\\''q'\\'''\nRB_2=v1.0.0\necho \"$RB_1\" \"$RB_2\"");
    }

    #[test]
    fn plain_values_are_verbatim() {
        let ctx = json!({"params": {"x": "a b"}});
        assert_eq!(render("{{ params.x }}", Mode::Plain, &Context::new(&ctx)).ok().as_deref(), Some("a b"));
    }

    #[test]
    fn placeholders_answer_any_attribute() {
        let ctx = Context::new(&json!({"steps": {"h": {"outputs": {"json": placeholder("output:h.json")}}}}));
        let out = render("{{ steps.h.outputs.json.version }}", Mode::Plain, &ctx);
        assert_eq!(out.ok().as_deref(), Some("<output:h.json.version>"));
        let quoted = render("echo {{ steps.h.outputs.json }}", Mode::Shell, &ctx);
        assert_eq!(quoted.ok().as_deref(), Some("RB_1='<output:h.json>'\necho \"$RB_1\""));
        let mapped =
            render("[{{ steps.h.outputs.json | map(attribute='name') | join(',') }}]", Mode::Plain, &ctx);
        assert_eq!(mapped.ok().as_deref(), Some("[]"));
    }

    #[test]
    fn undefined_is_an_error() {
        let err = render("{{ params.nope }}", Mode::Plain, &Context::new(&json!({"params": {}})));
        assert!(err.is_err());
    }

    #[test]
    fn quoting_handles_empty_and_quotes() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("/backups/db"), "/backups/db");
    }

    #[test]
    fn no_filter_or_tag_turns_binding_off() {
        let ctx = Context::new(&json!({"params": {"x": "$(touch pwned)"}}));
        for text in [
            "echo {{ params.x | safe }}",
            "echo {{ params.x | e }}",
            "echo {{ params.x | escape }}",
            "echo {{ params.x | string }}",
            "echo {{ params.x ~ '' }}",
            "echo {{ params.x | trim }}",
            "{% autoescape false %}echo {{ params.x }}{% endautoescape %}",
            "{% autoescape 'html' %}echo {{ params.x }}{% endautoescape %}",
            "{% autoescape true %}echo {{ params.x | safe }}{% endautoescape %}",
        ] {
            // Refused, or bound: the payload is never in the script's text.
            if let Ok(out) = render(text, Mode::Shell, &ctx) {
                let (binding, body) = out.split_once('\n').unwrap_or_default();
                assert!(binding.starts_with("RB_1=") && !body.contains("$(touch"), "{text}: {out}");
            }
        }
        // Captured values cannot be smuggled as text either.
        for text in [
            "{% set y %}{{ params.x }}{% endset %}echo {{ y }}",
            "{% filter upper %}{{ params.x }}{% endfilter %}",
        ] {
            let out = render(text, Mode::Shell, &ctx);
            assert!(
                out.as_ref().map_or(true, |o| !o.contains("$(touch") || o.starts_with("RB_1=")),
                "{text}: {out:?}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Any value, in the userinfo, the path, the query and the fragment of a URL: the
        /// URL either is refused or parses with the template's scheme, host, port, user and
        /// query keys, and each part decodes back to the value.
        #[test]
        fn url_values_stay_in_their_part(v in "[a-z0-9:/?#\\[\\]@!$&'()*+,;=%. ~\n-]{0,12}") {
            let ctx = Context::new(&json!({"params": {"v": v}}));
            let text = "https://u:{{ params.v }}@h.test:8443/p/{{ params.v }}/x?q={{ params.v }}&n=1#{{ params.v }}";
            if let Ok(out) = render(text, Mode::Url, &ctx) {
                let parsed = url::Url::parse(&out).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{out}: {e}")))?;
                let decode = |s: &str| {
                    let b = s.as_bytes();
                    let mut out = Vec::new();
                    let mut i = 0;
                    while i < b.len() {
                        match (b[i], b.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit)).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok())) {
                            (b'%', Some(x)) => { out.push(x); i += 3; }
                            (c, _) => { out.push(c); i += 1; }
                        }
                    }
                    String::from_utf8_lossy(&out).into_owned()
                };
                proptest::prop_assert_eq!(parsed.scheme(), "https");
                proptest::prop_assert_eq!(parsed.host_str(), Some("h.test"));
                proptest::prop_assert_eq!(parsed.port(), Some(8443));
                proptest::prop_assert_eq!(parsed.username(), "u");
                // Existing `%XX` escapes are kept (so `urlencode` output is unchanged): each part
                // decodes to the value read the same way.
                let v = decode(&v);
                proptest::prop_assert_eq!(decode(parsed.password().unwrap_or_default()), v.clone());
                let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
                proptest::prop_assert_eq!(keys, vec!["q".to_string(), "n".to_string()]);
                let q = parsed.query().unwrap_or_default().split('&').next().unwrap_or_default();
                proptest::prop_assert_eq!(decode(q.trim_start_matches("q=")), v.clone());
                let path = parsed.path();
                proptest::prop_assert!(path.starts_with("/p/") && path.ends_with("/x"), "{}", path);
                proptest::prop_assert_eq!(decode(&path[3..path.len() - 2]), v.clone());
                proptest::prop_assert_eq!(decode(parsed.fragment().unwrap_or_default()), v.clone());
            } else {
                proptest::prop_assert!(has_dot_segment(&v) || v.contains('\n') || v.contains('%'), "refused: {:?}", v);
            }
        }
    }

    #[test]
    fn userinfo_values_are_encoded_and_opaque_paths_keep_their_query() {
        let ctx =
            Context::new(&json!({"params": {"pw": "pa:ss@w/rd?#", "f": "x.db?mode=ro", "g": "app.db"}}));
        let url = |t: &str| render(t, Mode::Url, &ctx).map_err(|e| e.message);
        assert_eq!(
            url("postgres://app:{{ params.pw }}@db:5432/app").as_deref(),
            Ok("postgres://app:pa%3Ass%40w%2Frd%3F%23@db:5432/app")
        );
        assert!(url("sqlite:{{ params.f }}").is_err());
        assert_eq!(url("sqlite:{{ params.g }}?mode=rwc").as_deref(), Ok("sqlite:app.db?mode=rwc"));
        assert_eq!(url("sqlite:x.db?vfs={{ params.f }}").as_deref(), Ok("sqlite:x.db?vfs=x.db%3Fmode%3Dro"));
    }

    #[test]
    fn url_values_cannot_change_the_host_or_add_query_keys() {
        let ctx = Context::new(&json!({"params": {
            "base": "https://api.example.test/v1",
            "host": "evil.test/x?",
            "key": "a b/../c?admin=1#x",
            "q": "1&admin=true#f",
            "port": 8443,
            "enc": "reports/2026%20Q4.pdf",
        }}));
        let url = |t: &str| render(t, Mode::Url, &ctx).map_err(|e| e.message);
        assert_eq!(url("{{ params.base }}/health").as_deref(), Ok("https://api.example.test/v1/health"));
        assert_eq!(url("https://h:{{ params.port }}/x").as_deref(), Ok("https://h:8443/x"));
        assert!(url("https://{{ params.host }}/x").is_err());
        assert!(url("https://h/files/{{ params.key }}").is_err(), "a `..` segment is refused");
        assert_eq!(
            url("https://h/s?q={{ params.q }}&n=1").as_deref(),
            Ok("https://h/s?q=1%26admin%3Dtrue%23f&n=1")
        );
        assert_eq!(url("https://h/o/{{ params.enc }}").as_deref(), Ok("https://h/o/reports/2026%20Q4.pdf"));
        assert!(url("{{ params.port }}://h").is_err() || url("x{{ params.port }}://h").is_err());
        let placeholder = Context::new(&json!({"steps": {"a": {"outputs": placeholder("output:a")}}}));
        assert_eq!(
            render("https://h/{{ steps.a.outputs.id }}", Mode::Url, &placeholder)
                .map_err(|e| e.message)
                .as_deref(),
            Ok("https://h/<output:a.id>")
        );
    }

    #[test]
    fn masks_markup_for_the_lexer() {
        let m = mask_shell(
            "echo {{ a }} {% if b %}{{ c | upper }}{% endif %}{# x #} {% raw %}{{ d }}{% endraw %} {{ e | unsafe_raw }}",
        );
        assert_eq!(
            m.text,
            format!("echo {} {} {{{{ d }}}} RAW", crate::shell::marker(0), crate::shell::marker(1))
        );
        assert_eq!(m.sites.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(), ["a", "c | upper"]);
        assert_eq!(mask_shell("{% autoescape false %}x{% endautoescape %}").autoescape, vec![0..22]);
    }

    #[test]
    fn vars_are_dotted_paths() {
        let vars = analyse("{{ steps.b.outputs.file }} {{ params.x }}", Mode::Plain).unwrap_or_default();
        assert!(vars.contains("steps.b.outputs.file") && vars.contains("params.x"));
    }
}
