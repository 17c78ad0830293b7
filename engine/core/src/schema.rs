//! The JSON Schema of the runbook format, generated from the serde shapes in [`crate::raw`].
//!
//! Draft-07, because TOML editors (Taplo, Even Better TOML) understand it; `schemas/` holds
//! the committed copy and a test fails when it is stale.

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
