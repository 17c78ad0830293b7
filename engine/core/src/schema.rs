//! The JSON Schema of the runbook format, generated from the serde shapes in [`crate::raw`].
//!
//! Draft-07, because TOML editors (Taplo, Even Better TOML) understand it; `schemas/` holds
//! the committed copy and a test fails when it is stale.

use std::collections::HashMap;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::raw::RawDocument;

/// The schema as JSON (built once).
pub fn schema_json() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = SchemaSettings::draft07().into_generator();
        let root = generator.into_root_schema_for::<RawDocument>();
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
