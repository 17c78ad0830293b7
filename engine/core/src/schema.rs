//! The JSON Schema of the runbook format, generated from the serde shapes in [`crate::raw`].
//!
//! Draft-07, because TOML editors (Taplo, Even Better TOML) understand it; `schemas/` holds
//! the committed copy and a test fails when it is stale.

use std::collections::HashMap;
use std::sync::OnceLock;

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::Transform;
use serde_json::{Map, Value, json};

use crate::raw::RawDocument;
use crate::syntax;

/// The schema as JSON (built once).
pub fn schema_json() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = SchemaSettings::draft07().into_generator();
        let mut root = generator.into_root_schema_for::<RawDocument>();
        Refine.transform(&mut root);
        let mut value = root.to_value();
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "$id".into(),
                Value::String("https://runbook.invalid/schemas/runbook.schema.json".into()),
            );
        }
        value
    })
}

/// The validator's rules that a JSON Schema can state and schemars attributes cannot, added to
/// the schema schemars derives from the serde shapes. The shapes' attributes (`raw.rs`) give
/// each field its pattern (names, durations, HTTP methods), range and non-empty lists; this
/// transform adds what spans a table: exactly one kind per unit (and the other "exactly one
/// of" sets), the names of a table's keys, non-zero bounds, unique lists, keys that depend on
/// others, a parameter's values following its type, what a `finally` step may not have, and
/// enums as plain `enum`s (whose editor message lists the allowed values). Every pattern and
/// bound comes from [`crate::syntax`], the definitions the validator checks with. Rules that
/// need more than one place of the file (needs, cycles, templates, secrets in text...) stay
/// with the validator alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refine;

impl Transform for Refine {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(root) = schema.as_object_mut() {
            refine(root);
        }
    }
}

/// What one property of a definition must also satisfy, beyond the schemars attributes of
/// its field.
enum Rule {
    /// Every key of a table matches this pattern.
    Keys(String),
    /// A duration that bounds something, where zero is refused (`Validator::limit`): a
    /// duration with a digit other than 0 somewhere.
    Limit,
    /// An array whose elements are all different.
    Unique,
}

impl Rule {
    fn apply(&self, to: &mut Map<String, Value>) {
        match self {
            Rule::Keys(p) => {
                to.insert("propertyNames".into(), json!({ "pattern": p }));
            }
            Rule::Limit => {
                to.insert("not".into(), json!({ "pattern": "^[^1-9]*$" }));
            }
            Rule::Unique => {
                to.insert("uniqueItems".into(), Value::Bool(true));
            }
        }
    }
}

/// TOML has no null: an optional table is the table, not "the table or null". schemars writes
/// `anyOf: [{$ref}, {type: null}]`, where a mistake inside the table is reported as "not valid
/// under any of the schemas listed in the 'anyOf' keyword" at the table; `allOf: [{$ref}]`
/// reports the mistake itself, at its key (and keeps the description beside the `$ref`).
fn no_null(schema: &mut Map<String, Value>) {
    let only = match schema.get("anyOf").and_then(Value::as_array).map(Vec::as_slice) {
        Some([x, null] | [null, x]) if null == &json!({ "type": "null" }) => Some(x.clone()),
        _ => None,
    };
    if let Some(x) = only {
        schema.remove("anyOf");
        schema.insert("allOf".into(), Value::Array(vec![x]));
    }
    for value in schema.values_mut() {
        match value {
            Value::Object(map) => no_null(map),
            Value::Array(items) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    no_null(item);
                }
            }
            _ => {}
        }
    }
}

fn refine(root: &mut Map<String, Value>) {
    no_null(root);
    let id = || Rule::Keys(syntax::ID.pattern());
    let env = || Rule::Keys(syntax::ENV_NAME.pattern());
    let limit = || Rule::Limit;
    let top: [(&str, Rule); 6] = [
        ("params", id()),
        ("secrets", env()),
        ("preconditions", id()),
        ("steps", id()),
        ("finally", id()),
        ("escalation", id()),
    ];
    for (key, rule) in &top {
        if let Some(p) =
            root.get_mut("properties").and_then(|p| p.get_mut(*key)).and_then(Value::as_object_mut)
        {
            rule.apply(p);
        }
    }
    // A finally step runs while the run ends: no approval, no included runbook, no compensation.
    if let Some(finally) = root
        .get_mut("properties")
        .and_then(|p| p.get_mut("finally"))
        .and_then(|f| f.get_mut("additionalProperties"))
        .and_then(Value::as_object_mut)
    {
        let step = std::mem::take(finally);
        let refused: Map<String, Value> =
            syntax::NOT_IN_FINALLY.iter().map(|k| (k.to_string(), Value::Bool(false))).collect();
        finally.insert("allOf".into(), Value::Array(vec![Value::Object(step)]));
        finally.insert("properties".into(), Value::Object(refused));
    }
    // Patterns, ranges and non-empty lists of single fields are schemars attributes on the
    // serde shapes (`raw.rs`, from the same `syntax` definitions); what needs the names of a
    // table's keys, a duration's non-zero value or uniqueness is stated here.
    let rules: Vec<(&str, &str, Rule)> = vec![
        ("RawDefaults", "timeout", limit()),
        ("RawPrecondition", "env", env()),
        ("RawPrecondition", "timeout", limit()),
        ("RawStep", "needs", Rule::Unique),
        ("RawStep", "outputs", Rule::Unique),
        ("RawAction", "outputs", Rule::Unique),
        ("RawStep", "env", env()),
        ("RawStep", "timeout", limit()),
        ("RawStep", "preconditions", id()),
        ("RawAction", "env", env()),
        ("RawAction", "timeout", limit()),
        ("RawHttp", "max-latency", limit()),
        ("RawHttp", "request-timeout", limit()),
        ("RawApproval", "inputs", id()),
        ("RawApproval", "timeout", limit()),
        ("RawEscalation", "after", limit()),
    ];
    let Some(defs) = root.get_mut("definitions").and_then(Value::as_object_mut) else { return };
    for (def, key, rule) in &rules {
        let prop = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*key))
            .and_then(Value::as_object_mut);
        if let Some(prop) = prop {
            rule.apply(prop);
        }
    }
    let exactly_one: [(&str, &[&str], &str); 6] = [
        ("RawStep", syntax::STEP_KINDS, "kind"),
        ("RawAction", syntax::COMPENSATION_KINDS, "kind"),
        ("RawPrecondition", syntax::PRECONDITION_KINDS, "kind"),
        ("RawSecret", syntax::SECRET_SOURCES, "source"),
        ("RawNotify", syntax::NOTIFY_MESSAGES, "message"),
        ("RawSql", syntax::SQL_STATEMENTS, "statement"),
    ];
    for (def, keys, what) in exactly_one {
        if let Some(d) = defs.get_mut(def).and_then(Value::as_object_mut) {
            let branches: Vec<Value> =
                keys.iter().map(|k| json!({ "title": format!("`{k}`"), "required": [k] })).collect();
            d.insert("oneOf".into(), Value::Array(branches));
            let list: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            let note = format!("Exactly one {what}: {}.", list.join(", "));
            let description = match d.get("description").and_then(Value::as_str) {
                Some(text) if !text.contains(&note) => format!("{text}\n\n{note}"),
                Some(text) => text.to_string(),
                None => note,
            };
            d.insert("description".into(), Value::String(description));
        }
    }
    if let Some(d) = defs.get_mut("RawHttp").and_then(Value::as_object_mut) {
        d.insert("not".into(), json!({ "required": syntax::HTTP_BODIES }));
    }
    // `first-line` reads only the first line of a secret's `file`: with another source the
    // validator refuses it, whatever its value (RB014).
    if let Some(d) = defs.get_mut("RawSecret").and_then(Value::as_object_mut) {
        d.insert("dependencies".into(), json!({ "first-line": ["file"] }));
    }
    // Kinds whose outputs are fixed declare none (`outputs = []` is accepted); a `runbook`
    // step has no `retry` or `timeout` of its own; a `run`'s `shell` is not empty.
    for def in ["RawStep", "RawAction"] {
        if let Some(d) = defs.get_mut(def).and_then(Value::as_object_mut) {
            let mut deps: Map<String, Value> = syntax::FIXED_OUTPUT_KINDS
                .iter()
                .map(|k| (k.to_string(), json!({ "properties": { "outputs": { "maxItems": 0 } } })))
                .collect();
            // Only a `run` reads `shell` (the validator ignores it on other kinds).
            deps.insert("run".into(), json!({ "properties": { "shell": { "minItems": 1 } } }));
            if def == "RawStep" {
                let refused: Map<String, Value> =
                    syntax::NOT_ON_INCLUDE.iter().map(|k| (k.to_string(), Value::Bool(false))).collect();
                deps.insert("runbook".into(), json!({ "properties": refused }));
            }
            d.insert("dependencies".into(), Value::Object(deps));
        }
    }
    // A precondition only reads: its request is a GET or a HEAD.
    if let Some(http) = defs
        .get_mut("RawPrecondition")
        .and_then(|d| d.get_mut("properties"))
        .and_then(|p| p.get_mut("http"))
        .and_then(Value::as_object_mut)
    {
        let read = syntax::methods_pattern(&syntax::READ_METHODS);
        http.insert("properties".into(), json!({ "method": { "pattern": read } }));
    }
    // The lock's reserved namespace.
    if let Some(lock) = defs
        .get_mut("RawMeta")
        .and_then(|d| d.get_mut("properties"))
        .and_then(|p| p.get_mut("lock"))
        .and_then(Value::as_object_mut)
    {
        let reserved = format!("^{}", regex::escape(crate::model::RESERVED_LOCK_PREFIX));
        lock.insert("not".into(), json!({ "pattern": reserved }));
    }
    // A parameter's default, enum values and pattern follow its type.
    if let Some(d) = defs.get_mut("RawParam").and_then(Value::as_object_mut) {
        let mut rule = Value::Null;
        for (ty, json_type) in syntax::PARAM_TYPES.iter().rev() {
            let mut then = json!({ "properties": {
                "default": { "type": json_type },
                "enum": { "items": { "type": json_type } },
            } });
            if *ty != "string" {
                then["properties"]["pattern"] = Value::Bool(false);
            }
            let mut step = json!({ "if": { "properties": { "type": { "const": ty } } }, "then": then });
            if !rule.is_null() {
                step["else"] = rule;
            }
            rule = step;
        }
        if let Value::Object(rule) = rule {
            d.extend(rule);
        }
    }
    // Enums: schemars writes a `oneOf` of documented constants, whose editor message is
    // "not valid under any of the schemas"; a plain `enum` lists the allowed values.
    for def in ["RawOnFailure", "RawParamType"] {
        if let Some(d) = defs.get_mut(def).and_then(Value::as_object_mut) {
            let Some(Value::Array(branches)) = d.remove("oneOf") else { continue };
            let values: Vec<Value> = branches.iter().filter_map(|b| b.get("const").cloned()).collect();
            let docs: Vec<String> = branches
                .iter()
                .filter_map(|b| {
                    Some(format!("`{}`: {}", b.get("const")?.as_str()?, b.get("description")?.as_str()?))
                })
                .collect();
            let text = d.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
            d.insert("description".into(), Value::String(format!("{text}\n\n{}", docs.join("\n"))));
            d.insert("type".into(), Value::String("string".into()));
            d.insert("enum".into(), Value::Array(values));
        }
    }
}

/// The schema as pretty-printed JSON text, ending with a newline.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(schema_json()).unwrap_or_default();
    text.push('\n');
    text
}

/// The shape of a TOML value as the schema allows it, for the parser's unknown-key pass:
/// the schema compiled once into a small tree, so the walk does no JSON lookups.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A table with known keys (sorted) and their shapes; `closed` refuses other keys.
    Table { keys: Vec<(String, usize)>, closed: bool },
    /// A table of user-named entries (`[steps.*]`), each of one shape.
    Map(usize),
    /// An array of one shape.
    Array(usize),
    /// Anything (a scalar, or free-form like `json` bodies).
    Any,
}

/// Every shape of the format; `root` is the document's.
#[derive(Debug)]
pub(crate) struct Shapes {
    pub nodes: Vec<Shape>,
    pub root: usize,
}

impl Shapes {
    /// The key's shape in a table shape, if the key is known.
    pub fn key(&self, table: usize, key: &str) -> Option<usize> {
        match &self.nodes[table] {
            Shape::Table { keys, .. } => {
                keys.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| keys[i].1)
            }
            _ => None,
        }
    }
}

/// The compiled shapes (built once).
pub(crate) fn shapes() -> &'static Shapes {
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let schema = schema_json();
        let defs = schema.get("definitions").cloned().unwrap_or(Value::Null);
        let mut b = Builder { defs: &defs, nodes: Vec::new(), memo: HashMap::new() };
        let root = b.build(schema);
        Shapes { nodes: b.nodes, root }
    })
}

struct Builder<'d> {
    defs: &'d Value,
    nodes: Vec<Shape>,
    memo: HashMap<String, usize>,
}

impl Builder<'_> {
    /// The node for a schema: `$ref`s are shared (memoized before their children are built),
    /// one-branch `anyOf`/`allOf` (an `Option<T>`, or draft-07's wrapped `$ref`) are looked
    /// through, anything ambiguous accepts every key.
    fn build(&mut self, schema: &Value) -> usize {
        if let Some(name) =
            schema.get("$ref").and_then(Value::as_str).map(|r| r.rsplit('/').next().unwrap_or(""))
        {
            if let Some(&id) = self.memo.get(name) {
                return id;
            }
            let id = self.push(Shape::Any);
            self.memo.insert(name.to_string(), id);
            let target = self.defs.get(name).cloned().unwrap_or(Value::Null);
            self.nodes[id] = self.concrete(&target);
            return id;
        }
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .or_else(|| schema.get("allOf"))
            .and_then(Value::as_array);
        if let Some(branches) = branches {
            let real: Vec<&Value> =
                branches.iter().filter(|b| b.get("type") != Some(&Value::String("null".into()))).collect();
            return match real.as_slice() {
                [only] => self.build(only),
                _ => self.push(Shape::Any),
            };
        }
        let shape = self.concrete(schema);
        self.push(shape)
    }

    fn concrete(&mut self, schema: &Value) -> Shape {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            let mut keys: Vec<(String, usize)> =
                props.iter().map(|(k, v)| (k.clone(), self.build(v))).collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            Shape::Table { keys, closed }
        } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
            Shape::Map(self.build(sub))
        } else if let Some(items) = schema.get("items") {
            Shape::Array(self.build(items))
        } else {
            Shape::Any
        }
    }

    fn push(&mut self, shape: Shape) -> usize {
        self.nodes.push(shape);
        self.nodes.len() - 1
    }
}
