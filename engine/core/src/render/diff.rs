//! The plan diff: what changed between two versions of a procedure (`plan --diff OLD NEW`,
//! `plan FILE --against REV`), rendered as text, markdown or JSON.
//!
//! A pure function of two plan documents (the JSON of `plan --format json` and `-o`): both
//! commands build the same documents, so they share this code. The rules (ARCHITECTURE.md,
//! "The plan diff"):
//! - **nothing that changes what runs is invisible**: the diff walks every field of the
//!   document; a field is left out only if it is in [`IGNORED_TOP`] or [`IGNORED_STEP`],
//!   each with the reason it cannot change what runs. A test mutates every field of every
//!   shipped runbook's plan and asserts the diff names it;
//! - risk changes come first, computed by the review document's own code
//!   ([`super::markdown::risk_facts`]) on both plans, then the runbook's fields, then the
//!   steps in plan order (removed ones last);
//! - steps are matched by id; a step removed and a step added with the same kind and the
//!   same command are a rename;
//! - a script, a query or any text of several lines is shown as a unified diff (the exact
//!   characters, hidden ones as escapes); any other value as `old → new`;
//! - the output is linear in the size of the two documents: matching is by hash maps, and
//!   each value is shown once; a unified diff is one hunk past [`LINE_DIFF_LIMIT`] lines;
//! - the walk is faithful (it reports nothing exactly when the values are equal), and
//!   `--against` also compares the procedure as written ([`procedure`]): a template whose
//!   change the given values do not show is a change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::model::{OnFailure, ParamType, RetryPolicy, format_duration};
use crate::plan::{
    ChainSummary, CriticalPath, EngineInfo, Plan, PlanCheck, PlanCommand, PlanCompensation, PlanRunbook,
    PlanStep, PlanWhen,
};

use super::markdown::{RiskFacts, code, escape, fenced, risk_facts};

/// The version of the diff's JSON document. Fields are only added within a version.
pub const DIFF_VERSION: u32 = 1;

/// Top-level fields of the plan document that the diff does not compare, and why.
pub const IGNORED_TOP: &[(&str, &str)] = &[
    (
        "format_version",
        "checked: both documents must be of a version this engine reads (a version 1 document is read as version 2)",
    ),
    ("engine", "the engine that made the plan: what runs is what the other fields say"),
    (
        "files",
        "digests of the runbook files: any byte changes them (a comment too); what the files say is compared as written instead (`procedure`, `files_changed`)",
    ),
    ("waves", "derived from each step's `needs`: every step's `wave` and `needs` are compared"),
    ("steps", "compared step by step"),
    ("finally", "compared step by step"),
];

/// Fields of a step that the diff does not compare field by field, and why.
pub const IGNORED_STEP: &[(&str, &str)] =
    &[("id", "the key steps are matched by (a new id is an added step or a rename)")];

/// What changed between two plans.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDiff {
    /// Version of this document's shape.
    pub diff_version: u32,
    /// The runbook's name in the old and the new plan.
    pub runbook: Names,
    /// Notes about the comparison itself (a file absent at the revision).
    pub notes: Vec<String>,
    /// Changes to the risk section of the review document, one sentence each (ids in
    /// backticks).
    pub risks: Vec<String>,
    /// The same sentences as markdown (the markdown view).
    #[serde(skip)]
    pub risks_markdown: Vec<String>,
    /// Changes to the runbook's fields (parameters, lock, secrets, preconditions, ...).
    pub fields: Vec<FieldChange>,
    /// Changes to steps: in the new plan's order, removed steps last.
    pub steps: Vec<StepChange>,
    /// Changes to the procedure as written that the two plans do not show: a template whose
    /// change matters only for other parameter values (`--against`), or runbook files whose
    /// digests differ under equal plans (`--diff`). See [`procedure`] and [`files_changed`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceChange>,
}

/// A change of the procedure as written that the plans for the given values do not show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceChange {
    /// The part of the runbook file (`steps.deploy`, `preconditions.ready`, `params`), or
    /// `files` when only the runbook files' digests are known to differ.
    pub part: String,
    /// What it means, in a sentence.
    pub note: String,
    /// A unified diff of the part as TOML (its values as written, templates unrendered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified: Option<String>,
}

/// The runbook's name on each side.
#[derive(Debug, Clone, Serialize)]
pub struct Names {
    /// In the old plan (`null` when there was none).
    pub old: Option<String>,
    /// In the new plan.
    pub new: Option<String>,
}

/// One changed value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Its path in the plan document (`retry.attempts`, `command.run.script`,
    /// `params.environment`).
    pub field: String,
    /// The old value (`null`/absent: it was not there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The new value (absent: it is not there any more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// For a text of several lines, a script or a query: a unified diff of the old and the
    /// new text (three lines of context).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified: Option<String>,
}

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum StepChange {
    /// A step only the new plan has.
    Added {
        /// Its id.
        step: String,
        /// `steps` or `finally`.
        section: &'static str,
        /// Its kind.
        kind: String,
        /// What it runs, as text (a script as written, an argv as JSON, other kinds as JSON).
        command: String,
        /// Its other fields (timeout, retry, compensation, confirm, ...), each as added.
        fields: Vec<FieldChange>,
    },
    /// A step only the old plan has.
    Removed {
        /// Its id.
        step: String,
        /// `steps` or `finally`.
        section: &'static str,
        /// Its kind.
        kind: String,
        /// What it ran, as [`StepChange::Added`] shows it.
        command: String,
    },
    /// A step with a new id and the same kind and command.
    Renamed {
        /// Its old id.
        from: String,
        /// Its new id.
        to: String,
        /// What else changed.
        changes: Vec<FieldChange>,
    },
    /// A step in both plans whose fields changed.
    Changed {
        /// Its id.
        step: String,
        /// What changed.
        changes: Vec<FieldChange>,
    },
}

impl PlanDiff {
    /// True when nothing that the diff compares changed.
    pub fn is_empty(&self) -> bool {
        self.risks.is_empty() && self.fields.is_empty() && self.steps.is_empty() && self.sources.is_empty()
    }

    /// How many changes: risk sentences, fields and steps.
    pub fn count(&self) -> usize {
        self.risks.len() + self.fields.len() + self.steps.len() + self.sources.len()
    }
}

/// A plan document that is not one this engine can compare: why, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAPlan(pub String);

/// The empty plan: what a runbook absent at a revision is compared as (every step added).
pub fn empty_document() -> Value {
    serde_json::json!({
        "format_version": crate::plan::FORMAT_VERSION,
        "steps": [],
        "finally": [],
        "preconditions": [],
    })
}

/// The previous version of the plan document this engine still reads: its
/// `compensation_chain` lists are read as version 2's summaries ([`upgrade`]), so that a plan
/// saved by the previous release still diffs.
pub const PREVIOUS_FORMAT_VERSION: u32 = 1;

/// The most JSON values (each scalar, array, object and object key counts one) a plan
/// document may hold. A plan of 10,000 compensated steps (the most steps a runbook may have)
/// holds about 920,000 in 21 MB; four times that leaves room for wide `needs` and includes.
/// Counted while parsing, before any value is built: a plan file of 64 MiB padded with
/// 2-byte values (`[0,0,...]`) would otherwise cost ~32 bytes of tree per 2 bytes of file.
pub const MAX_PLAN_VALUES: usize = 4_000_000;

/// A plan file's text as a JSON document, if it holds at most [`MAX_PLAN_VALUES`] values: they
/// are counted by a first pass that builds nothing (serde's visitor over the borrowed text),
/// so memory stays a small multiple of the file whatever it holds (adv17b F5). The error says
/// why in a sentence (with line and column), RB122 for too many values.
///
/// The same pass checks the top-level keys: a key no plan document has ([`PLAN_KEYS`]) is
/// refused with RB123 once the values are counted, before any is built (red team adv18b F5:
/// a million tiny values under an unknown key were walked leaf by leaf, 380 MB for 12 MB).
pub fn parse_document(text: &str) -> Result<Value, NotAPlan> {
    let count = std::cell::Cell::new(0usize);
    let unknown = std::cell::RefCell::new(None);
    let versioned = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let top = Top { count: &count, unknown: &unknown, versioned: &versioned };
    if let Err(e) = serde::de::DeserializeSeed::deserialize(top, &mut de).and_then(|()| de.end()) {
        if count.get() > MAX_PLAN_VALUES {
            return Err(NotAPlan(format!(
                "it holds more than {MAX_PLAN_VALUES} values ({}; line {}, column {}): a plan of 10,000 steps holds about 1,000,000",
                crate::diagnostic::Code::PlanValues,
                e.line(),
                e.column()
            )));
        }
        return Err(NotAPlan(e.to_string()));
    }
    if let Some(key) = unknown.into_inner() {
        // A JSON object that is no plan at all is said as `read_document` says it.
        if !versioned.get() {
            return Err(NotAPlan("it has no `format_version` (not a plan document)".into()));
        }
        return Err(NotAPlan(format!(
            "it has a top-level key {key} that no plan document has ({}): a plan holds only {}; give the file `runbook plan -o` wrote",
            crate::diagnostic::Code::PlanKeys,
            PLAN_KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    serde_json::from_str(text).map_err(|e| NotAPlan(e.to_string()))
}

/// The top-level keys of a plan document: the fields of [`Plan`] (a test checks that they
/// are exactly the keys `plan -o` writes). Within a `format_version` fields are only added,
/// by the engine that writes and reads them; a plan document with any other key was not
/// written by `runbook plan -o` and is refused (RB123).
pub const PLAN_KEYS: &[&str] = &[
    "format_version",
    "engine",
    "runbook",
    "params",
    "secrets",
    "files",
    "reads",
    "preconditions",
    "waves",
    "steps",
    "finally",
    "escalations",
    "critical_path",
];

/// The most bytes of an unknown key an RB123 error shows.
const KEY_SHOWN: usize = 64;

/// [`Count`] for the whole document, which also remembers the first top-level key not in
/// [`PLAN_KEYS`] (as shown: quoted, escaped, cut to [`KEY_SHOWN`] bytes).
struct Top<'a> {
    count: &'a std::cell::Cell<usize>,
    unknown: &'a std::cell::RefCell<Option<String>>,
    /// Whether the document has a `format_version` key.
    versioned: &'a std::cell::Cell<bool>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Top<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Top<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Count(self.count).one()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Count(self.count).one()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Count(self.count).one()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Count(self.count).one()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Count(self.count).one()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Count(self.count).one()
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        serde::de::Visitor::visit_seq(Count(self.count), seq)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let counter = Count(self.count);
        counter.one()?;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            counter.one()?;
            if key == "format_version" {
                self.versioned.set(true);
            }
            if !PLAN_KEYS.contains(&key.as_ref()) && self.unknown.borrow().is_none() {
                let mut cut = KEY_SHOWN.min(key.len());
                while !key.is_char_boundary(cut) {
                    cut -= 1;
                }
                let more = if cut < key.len() { "..." } else { "" };
                *self.unknown.borrow_mut() = Some(format!("`{}{more}`", crate::shown::one_line(&key[..cut])));
            }
            map.next_value_seed(Count(self.count))?;
        }
        Ok(())
    }
}

/// Counts the values of a JSON document without building them, failing past
/// [`MAX_PLAN_VALUES`].
struct Count<'a>(&'a std::cell::Cell<usize>);

impl Count<'_> {
    fn one<E: serde::de::Error>(&self) -> Result<(), E> {
        let n = self.0.get() + 1;
        self.0.set(n);
        if n > MAX_PLAN_VALUES { Err(E::custom("too many values")) } else { Ok(()) }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.one()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.one()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.one()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.one()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.one()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.one()
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.one()?;
        while seq.next_element_seed(Count(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.one()?;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            self.one()?;
            map.next_value_seed(Count(self.0))?;
        }
        Ok(())
    }
}

/// Check that a JSON value is a plan document of a version this engine reads (the current
/// one, or the previous one, [`upgrade`]d), and read the facts the risk section needs from it.
pub fn read_document(doc: &Value) -> Result<Plan, NotAPlan> {
    let Some(top) = doc.as_object() else {
        return Err(NotAPlan("it is not a JSON object".into()));
    };
    match top.get("format_version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(crate::plan::FORMAT_VERSION) => to_plan(doc, ""),
        Some(v) if v == u64::from(PREVIOUS_FORMAT_VERSION) => {
            let mut doc = doc.clone();
            upgrade(&mut doc);
            to_plan(&doc, "")
        }
        Some(v) => Err(NotAPlan(format!(
            "its `format_version` is {v}; this runbook reads plan documents of version {} (and {PREVIOUS_FORMAT_VERSION}, of earlier releases)",
            crate::plan::FORMAT_VERSION
        ))),
        None => Err(NotAPlan("it has no `format_version` (not a plan document)".into())),
    }
}

/// A version 1 plan document as version 2: each step's `compensation_chain`, a whole list
/// (most recent first), becomes its summary `{"count": N, "first": [at most 30 ids]}`, in
/// included plans too. Anything else is left as it is ([`to_plan`] says what is wrong with
/// it). A version 2 document is left as it is.
pub fn upgrade(doc: &mut Value) {
    if doc.get("format_version").and_then(Value::as_u64) != Some(u64::from(PREVIOUS_FORMAT_VERSION)) {
        return;
    }
    doc["format_version"] = Value::from(crate::plan::FORMAT_VERSION);
    upgrade_steps(doc);
}

/// Each step's `compensation_chain` summary that holds the whole chain (`count` ids in
/// `first`) as that list, as the reader knows it from the text plan and version 1 (`[]` when
/// empty, and an added step does not show it); a longer one stays a summary, compared as its
/// `count` and `first`. One-to-one: the diff stays faithful, and linear (at most 30 ids).
fn whole_chains(doc: &mut Value) {
    for section in ["steps", "finally"] {
        let Some(list) = doc.get_mut(section).and_then(Value::as_array_mut) else { continue };
        for s in list {
            if let Some(chain) = s.get_mut("compensation_chain")
                && chain.as_object().is_some_and(|o| o.len() == 2)
                && let (Some(count), Some(first)) =
                    (chain.get("count").and_then(Value::as_u64), chain.get("first").and_then(Value::as_array))
                && usize::try_from(count).is_ok_and(|c| c == first.len())
            {
                *chain = Value::Array(first.clone());
            }
            if let Some(plan) = s.pointer_mut("/command/runbook/plan") {
                whole_chains(plan);
            }
        }
    }
}

fn upgrade_steps(doc: &mut Value) {
    for section in ["steps", "finally"] {
        let Some(list) = doc.get_mut(section).and_then(Value::as_array_mut) else { continue };
        for s in list {
            // Version 1 read an absent or `null` chain as empty.
            let Some(step) = s.as_object_mut() else { continue };
            let chain = step.entry("compensation_chain").or_insert(Value::Array(Vec::new()));
            if chain.is_null() {
                *chain = Value::Array(Vec::new());
            }
            if let Some(ids) = chain.as_array() {
                let first: Vec<Value> = ids.iter().take(crate::plan::CHAIN_SHOWN).cloned().collect();
                *chain = serde_json::json!({ "count": ids.len(), "first": first });
            }
            if let Some(plan) = s.pointer_mut("/command/runbook/plan") {
                upgrade_steps(plan);
            }
        }
    }
}

/// The diff of two plan documents, both checked by [`read_document`] (a version 1 document
/// is compared as its version 2 [`upgrade`]).
pub fn diff(old: &Value, new: &Value) -> Result<PlanDiff, NotAPlan> {
    diff_owned(old.clone(), new.clone())
}

/// [`diff`] of documents the caller gives away: upgraded and compared in place, never copied
/// (a plan file of tens of MiB is held once, adv17b F5).
pub fn diff_owned(mut old: Value, mut new: Value) -> Result<PlanDiff, NotAPlan> {
    upgrade(&mut old);
    upgrade(&mut new);
    let old_plan = read_document(&old)?;
    let new_plan = read_document(&new)?;
    nested(&mut old);
    nested(&mut new);
    whole_chains(&mut old);
    whole_chains(&mut new);
    let (old, new) = (&old, &new);
    let name = |v: &Value| v.pointer("/runbook/name").and_then(Value::as_str).map(str::to_string);
    let mut fields = Vec::new();
    let mut budget = Budget::new();
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return Err(NotAPlan("it is not a JSON object".into()));
    };
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    for k in keys {
        if IGNORED_TOP.iter().any(|(f, _)| f == k) {
            continue;
        }
        field(k, o.get(k), n.get(k), &mut fields, &mut budget);
    }
    let steps = steps(old, new, &mut budget);
    let risks_markdown = risks(&risk_facts(&old_plan), &risk_facts(&new_plan), &old_plan, &new_plan);
    Ok(PlanDiff {
        diff_version: DIFF_VERSION,
        runbook: Names { old: name(old), new: name(new) },
        notes: budget.notes(),
        risks: risks_markdown.iter().map(|m| plain(m)).collect(),
        risks_markdown,
        fields,
        steps,
        sources: Vec::new(),
    })
}

/// For `--diff`, which has plans only: equal plans of runbook files whose digests differ.
/// The files changed; what they run for these plans' values did not; a template may have
/// changed for other values, which only the runbooks show (`plan FILE --against REV`).
pub fn files_changed(old: &Value, new: &Value, d: &PlanDiff) -> Option<SourceChange> {
    let digests = |v: &Value| v.get("files").cloned().unwrap_or(Value::Null);
    (d.is_empty() && digests(old) != digests(new)).then(|| SourceChange {
        part: "files".into(),
        note: "the runbook files changed (their SHA-256 differ), and these plans are equal for their parameters: a template may have changed for other values; compare the runbooks with `runbook plan FILE --against REV` to see it".into(),
        unified: None,
    })
}

/// The procedure as written, compared (`--against`): the TOML values of the two versions of
/// the runbook file (comments, layout, quoting and key order aside), part by part (each
/// step, precondition, parameter, secret, escalation; each other top-level key as a whole).
/// A part whose written value changed while the plan diff shows nothing of it is a
/// [`SourceChange`]: a template that renders the same for these values and may not for
/// others. A text that is not TOML (it was checked before) compares as no part.
pub fn procedure(old_text: &str, new_text: &str, d: &PlanDiff) -> Vec<SourceChange> {
    let mut shown_steps = BTreeSet::new();
    for s in &d.steps {
        match s {
            StepChange::Added { step, .. }
            | StepChange::Removed { step, .. }
            | StepChange::Changed { step, .. } => {
                shown_steps.insert(step.clone());
            }
            StepChange::Renamed { from, to, .. } => {
                shown_steps.insert(from.clone());
                shown_steps.insert(to.clone());
            }
        }
    }
    let shown_field = |prefix: &str| {
        d.fields.iter().any(|f| {
            let p = f.field.replace('-', "_");
            p == prefix || p.starts_with(&format!("{prefix}.")) || p.starts_with(&format!("{prefix}["))
        })
    };
    // A changed line that holds a template may render differently for other values: shown
    // as written even when the plan shows the part changed for these values.
    let templated =
        |u: &str| u.lines().any(|l| l.starts_with(['-', '+']) && (l.contains("{{") || l.contains("{%")));
    procedure_parts(old_text, new_text)
        .into_iter()
        .filter_map(|(part, u)| {
            let shown = match part.split_once('.') {
                Some(("steps" | "finally", id)) => shown_steps.contains(id),
                Some((k, name)) => {
                    let k = k.replace('-', "_");
                    shown_field(&key_path(&k, name)) || shown_field(&name_path(&k, name))
                }
                None => shown_field(&part.replace('-', "_")),
            };
            let note = if shown {
                format!("`{part}` changed as written, and its changed lines hold templates: its plan for these parameters is above; for other values they may render differently")
            } else {
                format!("`{part}` changed as written; the plans for these parameters are the same (its templates may render differently for other values)")
            };
            let keep = !shown || templated(&u);
            keep.then_some(SourceChange { part, note, unified: Some(u) })
        })
        .collect()
}

/// The parts of a runbook file whose written value differs between two texts (see
/// [`procedure`]), each with a unified diff of the part as TOML. A text that is not TOML
/// (it was checked before) has no part.
pub fn procedure_parts(old_text: &str, new_text: &str) -> Vec<(String, String)> {
    let parse = |t: &str| t.parse::<toml::Table>().ok();
    let (Some(old), Some(new)) = (parse(old_text), parse(new_text)) else { return Vec::new() };
    let mut parts: BTreeMap<String, (Option<toml::Value>, Option<toml::Value>)> = BTreeMap::new();
    for (side, table) in [(0, &old), (1, &new)] {
        for (k, v) in table.iter() {
            let named = matches!(
                k.as_str(),
                "steps" | "finally" | "preconditions" | "params" | "secrets" | "escalations"
            );
            let items: Vec<(String, &toml::Value)> = match v.as_table() {
                Some(t) if named => t.iter().map(|(n, v)| (format!("{k}.{n}"), v)).collect(),
                _ => vec![(k.clone(), v)],
            };
            for (name, v) in items {
                let e = parts.entry(name).or_default();
                if side == 0 { e.0 = Some(v.clone()) } else { e.1 = Some(v.clone()) }
            }
        }
    }
    let mut out = Vec::new();
    let mut budget = Budget::new();
    for (part, (o, n)) in parts {
        if o == n {
            continue;
        }
        let as_toml = |v: &Option<toml::Value>| -> String {
            match v {
                None => String::new(),
                Some(v) => {
                    let mut t = toml::Table::new();
                    t.insert(part.clone(), v.clone());
                    toml::to_string_pretty(&t).unwrap_or_default()
                }
            }
        };
        let u = unified(&as_toml(&o), &as_toml(&n), &mut budget);
        out.push((part, u));
    }
    out
}

/// The plans of included runbooks without what [`IGNORED_TOP`] leaves out of a plan (the
/// digests of their files, the engine): an included file's comment is no change, as the
/// top file's is; what it runs is compared, and how it is written by [`procedure`].
fn nested(doc: &mut Value) {
    for section in ["steps", "finally"] {
        if let Some(list) = doc.get_mut(section).and_then(Value::as_array_mut) {
            for s in list {
                if let Some(plan) = s.pointer_mut("/command/runbook/plan") {
                    if let Some(o) = plan.as_object_mut() {
                        for (k, _) in IGNORED_TOP.iter().filter(|(k, _)| !matches!(*k, "steps" | "finally")) {
                            o.remove(*k);
                        }
                    }
                    nested(plan);
                }
            }
        }
    }
}

// ----- steps ---------------------------------------------------------------------------

fn all_steps(doc: &Value) -> Vec<(&'static str, &Value)> {
    let mut out = Vec::new();
    for section in ["steps", "finally"] {
        if let Some(list) = doc.get(section).and_then(Value::as_array) {
            out.extend(list.iter().map(|s| (section, s)));
        }
    }
    out
}

fn id_of(s: &Value) -> &str {
    s.get("id").and_then(Value::as_str).unwrap_or("")
}

fn kind_of(s: &Value) -> String {
    s.get("kind").and_then(Value::as_str).unwrap_or("").to_string()
}

/// The text of what a step runs: a script as written, anything else as JSON.
fn command_text(s: &Value) -> String {
    let c = s.get("command").unwrap_or(&Value::Null);
    match c.pointer("/run/script").and_then(Value::as_str) {
        Some(script) => script.to_string(),
        None => match c.get("cmd") {
            Some(argv) => argv.to_string(),
            None => serde_json::to_string_pretty(c).unwrap_or_default(),
        },
    }
}

fn steps(old: &Value, new: &Value, bg: &mut Budget) -> Vec<StepChange> {
    let olds = all_steps(old);
    let news = all_steps(new);
    let old_ids: BTreeMap<&str, usize> = olds.iter().enumerate().map(|(i, (_, s))| (id_of(s), i)).collect();
    let new_ids: BTreeSet<&str> = news.iter().map(|(_, s)| id_of(s)).collect();
    // Removed steps by what they run: a new step that runs the same is a rename.
    let mut gone: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, (_, s)) in olds.iter().enumerate() {
        if !new_ids.contains(id_of(s)) {
            gone.entry((kind_of(s), s.get("command").map(Value::to_string).unwrap_or_default()))
                .or_default()
                .push(i);
        }
    }
    for list in gone.values_mut() {
        list.reverse();
    }
    let mut renamed = BTreeSet::new();
    let mut out = Vec::new();
    for (section, s) in &news {
        let id = id_of(s);
        if let Some(&i) = old_ids.get(id) {
            let mut changes = step_fields(olds[i].1, s, bg);
            moved(olds[i].0, section, &mut changes);
            if !changes.is_empty() {
                out.push(StepChange::Changed { step: id.to_string(), changes });
            }
            continue;
        }
        let key = (kind_of(s), s.get("command").map(Value::to_string).unwrap_or_default());
        if let Some(i) = gone.get_mut(&key).and_then(Vec::pop) {
            renamed.insert(i);
            let mut changes = step_fields(olds[i].1, s, bg);
            moved(olds[i].0, section, &mut changes);
            out.push(StepChange::Renamed { from: id_of(olds[i].1).to_string(), to: id.to_string(), changes });
            continue;
        }
        out.push(StepChange::Added {
            step: id.to_string(),
            section,
            kind: kind_of(s),
            command: command_text(s),
            fields: added_fields(s, bg),
        });
    }
    for (i, (section, s)) in olds.iter().enumerate() {
        if !new_ids.contains(id_of(s)) && !renamed.contains(&i) {
            out.push(StepChange::Removed {
                step: id_of(s).to_string(),
                section,
                kind: kind_of(s),
                command: command_text(s),
            });
        }
    }
    out
}

/// A step matched across sections (`steps` and `finally`): its section is a changed field
/// (when it runs and what its failure does both changed).
fn moved(old: &'static str, new: &'static str, changes: &mut Vec<FieldChange>) {
    if old != new {
        changes.insert(
            0,
            FieldChange {
                field: "section".into(),
                old: Some(Value::from(old)),
                new: Some(Value::from(new)),
                unified: None,
            },
        );
    }
}

/// The fields of an added step besides its id, kind and command (shown on their own); an
/// object that holds a text of several lines field by field, so that a compensation's script
/// or a confirmation of several lines is shown as its text.
fn added_fields(new: &Value, bg: &mut Budget) -> Vec<FieldChange> {
    fn lines(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\n'),
            Value::Object(o) => o.values().any(lines),
            Value::Array(a) => a.iter().any(lines),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    fn leaves(path: &str, v: &Value, out: &mut Vec<FieldChange>, bg: &mut Budget) {
        match v.as_object() {
            // An object holding a text of several lines (a compensation's script): each
            // field on its own, so that the text is shown as text.
            Some(o) if lines(v) => {
                for (k, v) in o {
                    leaves(&key_path(path, k), v, out, bg);
                }
            }
            _ => walk(path, None, Some(v), out, bg),
        }
    }
    let mut out = Vec::new();
    if let Some(o) = new.as_object() {
        for (k, v) in o.iter().filter(|(k, _)| !matches!(k.as_str(), "id" | "kind" | "command")) {
            if !nothing(v) {
                leaves(k, v, &mut out, bg);
            }
        }
    }
    out
}

fn step_fields(old: &Value, new: &Value, bg: &mut Budget) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        walk("step", Some(old), Some(new), &mut out, bg);
        return out;
    };
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    for k in keys {
        if IGNORED_STEP.iter().any(|(f, _)| f == k) {
            continue;
        }
        field(k, o.get(k), n.get(k), &mut out, bg);
    }
    out
}

// ----- the walk ------------------------------------------------------------------------

/// Fields whose text is always shown as a unified diff, even on one line: what runs.
const TEXTS: [&str; 4] = ["script", "query", "text", "prompt"];

/// Lists compared as sets: their order means nothing.
const SETS: [&str; 2] = ["needs", "outputs"];

/// The key that names the items of a list of objects (`id`, `path`, `name`), if every item
/// has one and no two items share it (a JSON Patch names one path twice: matched by key, one
/// item would hide the other).
fn item_key(items: &[Value]) -> Option<&'static str> {
    ["id", "path", "name"].into_iter().find(|k| {
        let mut seen = BTreeSet::new();
        !items.is_empty()
            && items.iter().all(|i| i.get(*k).and_then(Value::as_str).is_some_and(|n| seen.insert(n)))
    })
}

/// A key an object's path shows as `.key`: letters, digits, `_` and `-`, not empty. Any
/// other key (one holding `.`, `[`, `]`, a quote, a space, or empty) is shown bracketed and
/// quoted as a JSON string, `body["user.role"]`, so that no two paths draw the same (red
/// team adv16t A2: `"user.role"` and `user` → `role` both drew `body.user.role`).
fn plain_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn quoted(k: &str) -> String {
    serde_json::to_string(k).unwrap_or_else(|_| format!("{k:?}"))
}

/// The path of an object's key under `path`: `path.key`, or `path["a key"]`.
fn key_path(path: &str, k: &str) -> String {
    if plain_key(k) { format!("{path}.{k}") } else { format!("{path}[{}]", quoted(k)) }
}

/// The path of a named item of a list under `path`: `path[name]`, or `path["a name"]` when
/// the name is not a plain key or is all digits (an index is `path[0]`).
fn name_path(path: &str, n: &str) -> String {
    if plain_key(n) && !n.bytes().all(|b| b.is_ascii_digit()) {
        format!("{path}[{n}]")
    } else {
        format!("{path}[{}]", quoted(n))
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit(['.', ']']).next().unwrap_or(path)
}

/// `null`, an empty list or object.
fn nothing(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(|o| o.is_empty())
}

/// A field of the plan itself (a top-level field of the document, a field of a step): there
/// `null`, empty and absent say the same to the engine (no `env`, no `needs`, no
/// compensation), so they compare equal. Below it, [`walk`] is exact.
fn field(key: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>, bg: &mut Budget) {
    walk(key, old.filter(|v| !nothing(v)), new.filter(|v| !nothing(v)), out, bg);
}

/// Every difference between two values at `path`, leaves first-class. Faithful: it reports
/// nothing exactly when the two are equal (absent, `null`, `[]` and `{}` are four values).
/// Bounded: every change goes through the document's [`Budget`]; past its bytes a change is
/// counted, never built.
fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>, bg: &mut Budget) {
    if old == new {
        return;
    }
    if bg.bytes == 0 {
        bg.unshown += 1;
        return;
    }
    let leaf = |out: &mut Vec<FieldChange>, bg: &mut Budget| {
        let unified = match (old.and_then(Value::as_str), new.and_then(Value::as_str)) {
            (Some(a), Some(b))
                if TEXTS.contains(&last_segment(path)) || a.contains('\n') || b.contains('\n') =>
            {
                Some(unified(a, b, bg))
            }
            (Some(a), None) if a.contains('\n') && new.is_none() => Some(unified(a, "", bg)),
            (None, Some(b)) if b.contains('\n') && old.is_none() => Some(unified("", b, bg)),
            _ => None,
        };
        let (old, new) = if unified.is_some() { (None, None) } else { (old.cloned(), new.cloned()) };
        bg.push(out, FieldChange { field: path.to_string(), old, new, unified });
    };
    match (old, new) {
        // An argv: one argument a line (as JSON strings, exact), so a long command's change
        // is a unified diff like a script's.
        (Some(Value::Array(a)), Some(Value::Array(b)))
            if last_segment(path) == "cmd" && a.iter().chain(b).all(Value::is_string) =>
        {
            let lines = |v: &[Value]| v.iter().map(|x| format!("{x}\n")).collect::<String>();
            let unified = Some(unified(&lines(a), &lines(b), bg));
            bg.push(out, FieldChange { field: path.to_string(), old: None, new: None, unified });
        }
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                walk(&key_path(path, k), a.get(k), b.get(k), out, bg);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if SETS.contains(&last_segment(path)) => {
            let sa: BTreeSet<String> = a.iter().map(shown_value).collect();
            let sb: BTreeSet<String> = b.iter().map(shown_value).collect();
            let added: Vec<Value> = b.iter().filter(|v| !sa.contains(&shown_value(v))).cloned().collect();
            let removed: Vec<Value> = a.iter().filter(|v| !sb.contains(&shown_value(v))).cloned().collect();
            if added.is_empty() && removed.is_empty() {
                // The same set in another order: shown as it is.
                leaf(out, bg);
                return;
            }
            if !removed.is_empty() {
                bg.push(
                    out,
                    FieldChange {
                        field: path.to_string(),
                        old: Some(Value::Array(removed)),
                        new: None,
                        unified: None,
                    },
                );
            }
            if !added.is_empty() {
                bg.push(
                    out,
                    FieldChange {
                        field: path.to_string(),
                        old: None,
                        new: Some(Value::Array(added)),
                        unified: None,
                    },
                );
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            match item_key(a).filter(|k| item_key(b) == Some(*k)) {
                Some(key) => {
                    let name = |v: &Value| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
                    let in_a: BTreeMap<String, &Value> = a.iter().map(|v| (name(v), v)).collect();
                    let in_b: BTreeMap<String, &Value> = b.iter().map(|v| (name(v), v)).collect();
                    let order_a: Vec<String> = a.iter().map(name).filter(|n| in_b.contains_key(n)).collect();
                    let order_b: Vec<String> = b.iter().map(name).filter(|n| in_a.contains_key(n)).collect();
                    for v in b {
                        let n = name(v);
                        walk(&name_path(path, &n), in_a.get(&n).copied(), Some(v), out, bg);
                    }
                    for v in a {
                        let n = name(v);
                        if !in_b.contains_key(&n) {
                            walk(&name_path(path, &n), Some(v), None, out, bg);
                        }
                    }
                    if order_a != order_b {
                        bg.push(
                            out,
                            FieldChange {
                                field: format!("{path} (order)"),
                                old: Some(order_a.into_iter().map(Value::String).collect()),
                                new: Some(order_b.into_iter().map(Value::String).collect()),
                                unified: None,
                            },
                        );
                    }
                }
                None if a.len() == b.len() && a.iter().any(|v| v.is_object()) => {
                    for (i, (x, y)) in a.iter().zip(b).enumerate() {
                        walk(&format!("{path}[{i}]"), Some(x), Some(y), out, bg);
                    }
                }
                None => leaf(out, bg),
            }
        }
        _ => leaf(out, bg),
    }
}

fn shown_value(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    }
}

/// Past this many differing lines (both sides, after the common first and last lines), a
/// change is shown as one hunk: every old line removed, every new line added. The line diff
/// is O(N·D); this keeps it bounded, and the output is the same on every machine (a size,
/// never a clock, decides).
pub const LINE_DIFF_LIMIT: usize = 4000;

/// The differing lines (both sides, as [`LINE_DIFF_LIMIT`] counts them) the line diffs of
/// one document may compare in all (red team adv18b F2: 100 texts of 2,000 wholly changed
/// lines each took 44 s, and a plan file holds 10,000 of them). A line diff costs at most
/// the square of its differing lines, so one document's line diffs cost at most
/// `LINE_DIFF_LIMIT × LINE_DIFF_BUDGET` steps; past the budget a change is one hunk (linear),
/// and the diff says how many were.
pub const LINE_DIFF_BUDGET: usize = 20_000;

/// The bytes of changes (paths, values and unified diffs) one diff shows (red team adv18b
/// F5: a plan padded with a million tiny values under one key showed 72 MB of changes for a
/// 12 MB file). Past it, the remaining changes are counted, not built, and the diff says how
/// many.
pub const SHOWN_BYTES: usize = 16 * 1024 * 1024;

/// What the diff of one document may still spend: differing lines for [`unified`]'s line
/// diffs, bytes of shown changes; and what it had to summarise.
#[derive(Debug)]
struct Budget {
    /// Differing lines the line diffs may still compare ([`LINE_DIFF_BUDGET`]).
    lines: usize,
    /// Changed texts shown as one hunk because `lines` ran out.
    whole: usize,
    /// Bytes of changes still shown ([`SHOWN_BYTES`]).
    bytes: usize,
    /// Changes not shown because `bytes` ran out.
    unshown: usize,
}

impl Budget {
    fn new() -> Self {
        Budget { lines: LINE_DIFF_BUDGET, whole: 0, bytes: SHOWN_BYTES, unshown: 0 }
    }

    /// Keeps `c` if the bytes it shows fit, else counts it.
    fn push(&mut self, out: &mut Vec<FieldChange>, c: FieldChange) {
        // What any change costs to show besides its path and values (`{"field":...}`, `→`).
        const EACH: usize = 32;
        let size = EACH
            + c.field.len()
            + c.unified.as_ref().map_or(0, String::len)
            + c.old.as_ref().map_or(0, value_bytes)
            + c.new.as_ref().map_or(0, value_bytes);
        if size > self.bytes {
            self.bytes = 0;
            self.unshown += 1;
            return;
        }
        self.bytes -= size;
        out.push(c);
    }

    /// What the output must say it summarised.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.whole > 0 {
            notes.push(format!(
                "the line diffs of this plan compare at most {LINE_DIFF_BUDGET} differing lines in all: {} more changed text(s) are shown as one hunk each (every old line removed, every new line added)",
                self.whole
            ));
        }
        if self.unshown > 0 {
            notes.push(format!(
                "the diff shows at most {} MiB of changes: {} more change(s) are not shown (the rest of the plans differ too; compare them part by part with `jq`)",
                SHOWN_BYTES / (1024 * 1024),
                self.unshown
            ));
        }
        notes
    }
}

/// About the bytes `v` takes as JSON, without writing it.
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| value_bytes(x) + 1).sum::<usize>(),
        Value::Object(o) => 2 + o.iter().map(|(k, x)| k.len() + 4 + value_bytes(x)).sum::<usize>(),
    }
}

/// A unified diff of two texts, three lines of context, without file headers. Bounded:
/// linear past [`LINE_DIFF_LIMIT`] differing lines, or once the document's [`Budget`] of
/// differing lines is spent.
fn unified(a: &str, b: &str, bg: &mut Budget) -> String {
    let la: Vec<&str> = a.split_inclusive('\n').collect();
    let lb: Vec<&str> = b.split_inclusive('\n').collect();
    let head = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    let tail = la[head..].iter().rev().zip(lb[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let mut out = String::new();
    let differing = la.len() + lb.len() - 2 * (head + tail);
    let over_budget = differing > bg.lines;
    if differing > LINE_DIFF_LIMIT || over_budget {
        if over_budget && differing <= LINE_DIFF_LIMIT {
            bg.whole += 1;
        }
        let from = head.saturating_sub(3);
        let to_a = (la.len() - tail + 3).min(la.len());
        let to_b = (lb.len() - tail + 3).min(lb.len());
        let range = |start: usize, end: usize| match end - start {
            0 => format!("{start},0"),
            n => format!("{},{n}", start + 1),
        };
        let _ = writeln!(out, "@@ -{} +{} @@", range(from, to_a), range(from, to_b));
        let line = |out: &mut String, mark: char, l: &str| {
            out.push(mark);
            out.push_str(l);
            if !l.ends_with('\n') {
                out.push('\n');
            }
        };
        for l in &la[from..head] {
            line(&mut out, ' ', l);
        }
        for l in &la[head..la.len() - tail] {
            line(&mut out, '-', l);
        }
        for l in &lb[head..lb.len() - tail] {
            line(&mut out, '+', l);
        }
        for l in &la[la.len() - tail..to_a] {
            line(&mut out, ' ', l);
        }
        return out;
    }
    bg.lines -= differing;
    let diff = similar::TextDiff::from_lines(a, b);
    for hunk in diff.unified_diff().context_radius(3).missing_newline_hint(false).iter_hunks() {
        let _ = write!(out, "{hunk}");
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

// ----- risks ---------------------------------------------------------------------------

/// The risk changes as markdown sentences: ids as code spans ([`code`]), an author's text
/// escaped ([`escape`]), the review document's own rule texts as it writes them.
fn risks(old: &RiskFacts, new: &RiskFacts, old_plan: &Plan, new_plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    // Sets and maps: a plan of thousands of steps is compared in n log n, never n².
    let compensable = |plan: &Plan| -> BTreeMap<String, bool> {
        plan.steps
            .iter()
            .chain(plan.finally.iter())
            .map(|s| (s.id.clone(), super::review::undoable(s)))
            .collect()
    };
    let (old_steps, new_steps) = (compensable(old_plan), compensable(new_plan));
    // A step that changed sections: when it runs and what its failure does both changed.
    let ids = |l: &[PlanStep]| -> BTreeSet<String> { l.iter().map(|s| s.id.clone()).collect() };
    let (old_main, old_fin) = (ids(&old_plan.steps), ids(&old_plan.finally));
    for s in &new_plan.steps {
        if old_fin.contains(&s.id) {
            out.push(format!(
                "{} moved from the `finally` steps to the main steps: it no longer runs at the end whatever happened; it runs in its wave, and its failure stops or compensates the run",
                code(&s.id)
            ));
        }
    }
    for s in &new_plan.finally {
        if old_main.contains(&s.id) {
            out.push(format!(
                "{} moved from the main steps to the `finally` steps: it runs at the end whatever happened, after a failure too",
                code(&s.id)
            ));
        }
    }
    let had = |steps: &BTreeMap<String, bool>, id: &str| steps.get(id).copied();
    let set = |l: &[String]| -> BTreeSet<String> { l.iter().cloned().collect() };
    let (old_irr, new_irr) = (set(&old.irreversible), set(&new.irreversible));
    let (old_ni, new_ni) = (set(&old.not_idempotent), set(&new.not_idempotent));
    // Whether a plan has the step (`` `x` ``) or the compensation (`` `x`'s compensation ``)
    // that an entry of the risk facts names.
    let there = |steps: &BTreeMap<String, bool>, entry: &str| {
        let (id, compensation) = match entry.strip_suffix("'s compensation") {
            Some(step) => (step, true),
            None => (entry, false),
        };
        had(steps, id.trim_matches('`')).is_some_and(|c| c || !compensation)
    };
    let (old_plan, new_plan) = (&old_steps, &new_steps);
    for id in new.irreversible.iter().filter(|i| !old_irr.contains(*i)) {
        out.push(match had(old_plan, id) {
            Some(true) => {
                format!("{} lost its compensation: it changes things and nothing undoes it now", code(id))
            }
            Some(false) => format!("{} changes things now, and nothing undoes it", code(id)),
            None => format!("new step {} changes things, and nothing undoes it", code(id)),
        });
    }
    for id in old.irreversible.iter().filter(|i| !new_irr.contains(*i)) {
        out.push(match had(new_plan, id) {
            Some(true) => format!("{} gained a compensation: it can be undone now", code(id)),
            Some(false) => {
                format!("{} no longer changes anything the engine can see (or is skipped)", code(id))
            }
            None => format!("step {}, which nothing undid, is gone", code(id)),
        });
    }
    for s in new.not_idempotent.iter().filter(|s| !old_ni.contains(*s)) {
        if there(old_plan, s) {
            out.push(format!("{s} is no longer idempotent (after a crash, an operator decides)"));
        } else {
            out.push(format!("new: {s} is not idempotent (after a crash, an operator decides)"));
        }
    }
    // Only what is still there: a step or a compensation that is gone is said elsewhere.
    for s in old.not_idempotent.iter().filter(|s| !new_ni.contains(*s) && there(new_plan, s)) {
        out.push(format!("{s} is idempotent now (after a crash, it runs again by itself)"));
    }
    if old.no_return != new.no_return {
        let list = |l: &[String]| {
            if l.is_empty() {
                "none".to_string()
            } else {
                l.iter().map(|i| code(i)).collect::<Vec<_>>().join(", ")
            }
        };
        out.push(match (old.no_return.as_slice(), new.no_return.as_slice()) {
            ([a], [b]) => format!("the point of no return moved from {} to {}", code(a), code(b)),
            ([], l) => format!("a point of no return appeared: {}", list(l)),
            (l, []) => format!("no point of no return any more (was {})", list(l)),
            (a, b) => format!("the points of no return changed: {} before, {} now", list(a), list(b)),
        });
    }
    // Approval rules come as the review document writes them (markdown); questions are the
    // author's text.
    let asks = |old: &[(String, String)], new: &[(String, String)], what: &str, out: &mut Vec<String>| {
        let md = |t: &str| if what == "confirmation" { escape(t) } else { t.to_string() };
        let o: BTreeMap<&str, &str> = old.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let n: BTreeMap<&str, &str> = new.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        for (id, text) in &n {
            match o.get(id) {
                None => out.push(format!("new {what} {}: {}", code(id), md(text))),
                Some(was) if was != text => {
                    out.push(format!("{what} {} changed: {}; now {}", code(id), md(was), md(text)))
                }
                Some(_) => {}
            }
        }
        for (id, text) in &o {
            if !n.contains_key(id) {
                out.push(format!("{what} {} removed (was: {})", code(id), md(text)));
            }
        }
    };
    asks(&old.approvals, &new.approvals, "approval", &mut out);
    asks(&old.confirmations, &new.confirmations, "confirmation", &mut out);
    if old.worst != new.worst {
        let show = |b: Option<Duration>| b.map_or("no bound".to_string(), format_duration);
        out.push(format!("worst case went from {} to {}", show(old.worst), show(new.worst)));
    }
    out
}

/// A markdown sentence of ours as plain text: backslash escapes removed, `<br>` as a line
/// break; code spans keep their backticks.
fn plain(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut rest = md;
    while let Some(c) = rest.chars().next() {
        let mut next = rest[c.len_utf8()..].chars();
        match (c, next.next()) {
            ('\\', Some(n)) if n.is_ascii_punctuation() => {
                out.push(n);
                rest = &rest[1 + n.len_utf8()..];
            }
            // An unescaped `<br>` is a line break ([`escape`]); a typed one is `\<br\>`.
            ('<', _) if rest.starts_with("<br>") => {
                out.push('\n');
                rest = &rest[4..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

// ----- the plan's facts from its document ----------------------------------------------

/// The facts of a plan document that the risk section reads, as a [`Plan`] (the other
/// fields empty): steps, their commands, needs, retries, timeouts, compensations.
fn to_plan(doc: &Value, at: &str) -> Result<Plan, NotAPlan> {
    let list = |key: &str| -> Result<Vec<PlanStep>, NotAPlan> {
        match doc.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                items.iter().enumerate().map(|(i, s)| to_step(s, &format!("{at}{key}[{i}]"))).collect()
            }
            Some(_) => Err(NotAPlan(format!("`{at}{key}` is not a list"))),
        }
    };
    let steps = list("steps")?;
    let finally = list("finally")?;
    // Steps are matched by id: two steps of one id would hide one of them.
    let mut seen = BTreeSet::new();
    if let Some(s) = steps.iter().chain(finally.iter()).find(|s| !seen.insert(s.id.as_str())) {
        return Err(NotAPlan(format!("step id `{}` appears twice in `{at}steps`/`{at}finally`", s.id)));
    }
    let preconditions = checks(doc.get("preconditions"), &format!("{at}preconditions"))?;
    Ok(Plan {
        format_version: crate::plan::FORMAT_VERSION,
        engine: EngineInfo { name: String::new(), version: String::new() },
        runbook: PlanRunbook {
            name: String::new(),
            title: None,
            description: None,
            file: String::new(),
            estimate: None,
            max_parallel: None,
            lock: None,
        },
        params: BTreeMap::new(),
        secrets: Vec::new(),
        files: Vec::new(),
        reads: Vec::new(),
        preconditions,
        waves: Vec::new(),
        steps,
        finally,
        escalations: Vec::new(),
        critical_path: CriticalPath { steps: Vec::new(), estimate: None, unestimated: Vec::new() },
    })
}

fn bad(at: &str, what: &str) -> NotAPlan {
    NotAPlan(format!("`{at}` is not {what}"))
}

fn string_at(v: &Value, key: &str, at: &str) -> Result<String, NotAPlan> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad(&format!("{at}.{key}"), "a string"))
}

fn opt_text(v: &Value, key: &str, at: &str) -> Result<Option<String>, NotAPlan> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(&format!("{at}.{key}"), "a string or null")),
    }
}

fn flag(v: &Value, key: &str, at: &str) -> Result<bool, NotAPlan> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(&format!("{at}.{key}"), "true or false")),
    }
}

fn strings(v: &Value, key: &str, at: &str) -> Result<Vec<String>, NotAPlan> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| bad(&format!("{at}.{key}"), "a list of strings"))
            })
            .collect(),
        Some(_) => Err(bad(&format!("{at}.{key}"), "a list of strings")),
    }
}

/// A step's `compensation_chain` summary (required: every plan of version 2 has one).
fn chain(s: &Value, at: &str) -> Result<ChainSummary, NotAPlan> {
    let at = format!("{at}.compensation_chain");
    match s.get("compensation_chain") {
        Some(c @ Value::Object(_)) => {
            let count = c
                .get("count")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad(&format!("{at}.count"), "a whole number"))?;
            let first = strings(c, "first", &at)?;
            if first.len() > count.min(crate::plan::CHAIN_SHOWN) {
                return Err(bad(&format!("{at}.first"), "at most `count` ids, and at most 30"));
            }
            Ok(ChainSummary { count, first })
        }
        _ => Err(bad(&at, "a compensation chain (`count` and `first`)")),
    }
}

fn checks(v: Option<&Value>, at: &str) -> Result<Vec<PlanCheck>, NotAPlan> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let Some(items) = v.as_array() else { return Err(bad(at, "a list")) };
    items
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("{at}[{i}]");
            Ok(PlanCheck {
                id: string_at(c, "id", &at)?,
                command: PlanCommand::Cmd(Vec::new()),
                message: None,
                env: BTreeMap::new(),
                dir: None,
                timeout: string_at(c, "timeout", &at)?,
            })
        })
        .collect()
}

fn retry(v: Option<&Value>, at: &str) -> Result<RetryPolicy, NotAPlan> {
    let Some(r) = v.filter(|v| !v.is_null()) else { return Ok(RetryPolicy::default()) };
    let duration = |key: &str| -> Result<Option<Duration>, NotAPlan> {
        match opt_text(r, key, at)? {
            None => Ok(None),
            Some(t) => {
                humantime::parse_duration(&t).map(Some).map_err(|_| bad(&format!("{at}.{key}"), "a duration"))
            }
        }
    };
    let attempts = r
        .get("attempts")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(&format!("{at}.attempts"), "a whole number"))?;
    Ok(RetryPolicy {
        attempts,
        delay: duration("delay")?.unwrap_or_default(),
        backoff: r.get("backoff").and_then(Value::as_f64).unwrap_or(1.0),
        max_delay: duration("max_delay")?,
        jitter: flag(r, "jitter", at)?,
        on_exit_codes: Vec::new(),
    })
}

fn command(v: Option<&Value>, at: &str) -> Result<PlanCommand, NotAPlan> {
    let Some((kind, c)) = v.and_then(Value::as_object).filter(|o| o.len() == 1).and_then(|o| o.iter().next())
    else {
        return Err(bad(at, "a command (an object of one kind)"));
    };
    let at = format!("{at}.{kind}");
    Ok(match kind.as_str() {
        "run" => PlanCommand::Run { script: string_at(c, "script", &at)?, shell: strings(c, "shell", &at)? },
        "cmd" => PlanCommand::Cmd(
            c.as_array()
                .ok_or_else(|| bad(&at, "a list of strings"))?
                .iter()
                .map(|a| a.as_str().map(str::to_string).ok_or_else(|| bad(&at, "a list of strings")))
                .collect::<Result<_, _>>()?,
        ),
        "http" => PlanCommand::Http {
            method: string_at(c, "method", &at)?,
            url: string_at(c, "url", &at)?,
            headers: BTreeMap::new(),
            query: BTreeMap::new(),
            body: None,
            expect_status: Vec::new(),
            max_latency: None,
            assert: None,
            ca_file: None,
            request_timeout: opt_text(c, "request_timeout", &at)?,
        },
        "sql" => PlanCommand::Sql {
            url: string_at(c, "url", &at)?,
            query: opt_text(c, "query", &at)?,
            file: opt_text(c, "file", &at)?,
            args: Vec::new(),
            assert: None,
            read_only: flag(c, "read_only", &at)?,
        },
        "approval" => PlanCommand::Approval {
            prompt: string_at(c, "prompt", &at)?,
            inputs: match c.get("inputs").and_then(Value::as_object) {
                Some(o) => o
                    .iter()
                    .map(|(k, t)| {
                        let ty = match t.as_str() {
                            Some("string") => ParamType::String,
                            Some("integer") => ParamType::Integer,
                            Some("number") => ParamType::Number,
                            Some("boolean") => ParamType::Boolean,
                            _ => return Err(bad(&format!("{at}.inputs.{k}"), "a type")),
                        };
                        Ok((k.clone(), ty))
                    })
                    .collect::<Result<_, _>>()?,
                None => BTreeMap::new(),
            },
            // Shown by the diff as JSON fields (`input_rules[...]`); the added step's text
            // names the inputs and their types.
            input_rules: BTreeMap::new(),
            approvers: strings(c, "approvers", &at)?,
            min_approvals: c
                .get("min_approvals")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(&format!("{at}.min_approvals"), "a whole number"))?,
            allow_self_approval: flag(c, "allow_self_approval", &at)?,
            timeout: opt_text(c, "timeout", &at)?,
        },
        "notify" => PlanCommand::Notify {
            webhook: string_at(c, "webhook", &at)?,
            body: Value::Null,
            required: flag(c, "required", &at)?,
        },
        "runbook" => PlanCommand::Runbook {
            file: string_at(c, "file", &at)?,
            params: BTreeMap::new(),
            plan: Box::new(to_plan(c.get("plan").unwrap_or(&Value::Null), &format!("{at}.plan."))?),
        },
        other => return Err(bad(&at, &format!("a known kind of step (`{other}`)"))),
    })
}

fn to_step(s: &Value, at: &str) -> Result<PlanStep, NotAPlan> {
    if !s.is_object() {
        return Err(bad(at, "a step (an object)"));
    }
    let on_failure = match s.get("on_failure").and_then(Value::as_str) {
        Some("compensate") => OnFailure::Compensate,
        Some("stop") => OnFailure::Stop,
        Some("continue") => OnFailure::Continue,
        _ => return Err(bad(&format!("{at}.on_failure"), "`compensate`, `stop` or `continue`")),
    };
    let when = match s.get("when") {
        None | Some(Value::Null) => None,
        Some(w) => Some(PlanWhen {
            expr: string_at(w, "expr", &format!("{at}.when"))?,
            value: w.get("value").and_then(Value::as_bool),
        }),
    };
    let compensation = match s.get("compensation") {
        None | Some(Value::Null) => None,
        Some(c) => {
            let cat = format!("{at}.compensation");
            Some(Box::new(PlanCompensation {
                command: command(c.get("command"), &format!("{cat}.command"))?,
                env: BTreeMap::new(),
                dir: None,
                timeout: opt_text(c, "timeout", &cat)?,
                retry: retry(c.get("retry"), &format!("{cat}.retry"))?,
                idempotent: flag(c, "idempotent", &cat)?,
            }))
        }
    };
    Ok(PlanStep {
        id: string_at(s, "id", at)?,
        kind: string_at(s, "kind", at)?,
        title: None,
        description: None,
        needs: strings(s, "needs", at)?,
        wave: s.get("wave").and_then(Value::as_u64).and_then(|w| usize::try_from(w).ok()).unwrap_or(0),
        when,
        command: command(s.get("command"), &format!("{at}.command"))?,
        env: BTreeMap::new(),
        dir: None,
        outputs: Vec::new(),
        preconditions: checks(s.get("preconditions"), &format!("{at}.preconditions"))?,
        timeout: opt_text(s, "timeout", at)?,
        retry: retry(s.get("retry"), &format!("{at}.retry"))?,
        idempotent: flag(s, "idempotent", at)?,
        confirm: opt_text(s, "confirm", at)?,
        on_failure,
        compensation,
        compensation_chain: chain(s, at)?,
        estimate: None,
    })
}

// ----- views ---------------------------------------------------------------------------

fn value_text(v: Option<&Value>) -> String {
    match v {
        None => "(none)".into(),
        // What `shown::marked` marks (look-alike letters too), then the note, as the
        // markdown's code spans do.
        Some(v) => {
            let marked = crate::shown::marked(&v.to_string());
            let shown = crate::shown::one_line(&marked.text);
            if marked.replaced.is_empty() {
                shown
            } else {
                format!("{shown} (invisible characters shown as escapes: {})", marked.names())
            }
        }
    }
}

fn heading(d: &PlanDiff) -> String {
    let name = d.runbook.new.as_deref().or(d.runbook.old.as_deref()).unwrap_or("?");
    let mut h = format!("`{}`", crate::shown::one_line(name));
    if let (Some(o), Some(n)) = (&d.runbook.old, &d.runbook.new)
        && o != n
    {
        h = format!("`{}` (was `{}`)", crate::shown::one_line(n), crate::shown::one_line(o));
    }
    h
}

fn count_text(d: &PlanDiff) -> String {
    match d.count() {
        0 => "no change".into(),
        1 => "1 change".into(),
        n => format!("{n} changes"),
    }
}

/// The path of a field as the text diff shows it: a header name, a query parameter name, a
/// JSON key or a read file's path is sent or read, so it is marked by the rule of what is
/// executed, on one line (`shown::Span::OneLine`), with the note the markdown's code span
/// has (red team adv16r F5).
fn field_text(field: &str) -> String {
    let marked = crate::shown::marked_spans(field, &[(0..field.len(), crate::shown::Span::OneLine)]);
    if marked.replaced.is_empty() {
        marked.text
    } else {
        format!("{} (invisible characters shown as escapes: {})", marked.text, marked.names())
    }
}

/// A field change as one line: `field: old → new`, `needs added [..]`, `field:` before a
/// unified diff.
fn field_line(c: &FieldChange) -> String {
    let f = field_text(&c.field);
    if c.unified.is_some() {
        return format!("{f}:");
    }
    match (&c.old, &c.new) {
        (None, Some(n)) if SETS.contains(&last_segment(&c.field)) => format!("{f} added {}", list_text(n)),
        (Some(o), None) if SETS.contains(&last_segment(&c.field)) => format!("{f} removed {}", list_text(o)),
        (None, Some(n)) if n.is_object() => format!("{f} added:"),
        (Some(o), None) if o.is_object() => format!("{f} removed, it was:"),
        (None, Some(n)) => format!("{f} added: {}", value_text(Some(n))),
        (Some(o), None) => format!("{f} removed (was {})", value_text(Some(o))),
        (o, n) => format!("{f}: {} → {}", value_text(o.as_ref()), value_text(n.as_ref())),
    }
}

/// An object added or removed as a whole (a compensation, a precondition, a `when`): shown
/// as a block of indented JSON under its line, every field of it exact.
fn whole_object(c: &FieldChange) -> Option<String> {
    match (&c.old, &c.new, &c.unified) {
        (None, Some(v), None) | (Some(v), None, None) if v.is_object() => {
            serde_json::to_string_pretty(v).ok()
        }
        _ => None,
    }
}

fn list_text(v: &Value) -> String {
    match v.as_array() {
        Some(items) => items
            .iter()
            .map(|i| format!("`{}`", crate::shown::one_line(&shown_value(i))))
            .collect::<Vec<_>>()
            .join(", "),
        None => value_text(Some(v)),
    }
}

fn indented(text: &str, indent: &str) -> String {
    let marked = crate::shown::marked(text.strip_suffix('\n').unwrap_or(text));
    let mut out = String::new();
    for line in marked.text.split('\n') {
        let _ = writeln!(out, "{indent}{line}");
    }
    if let Some(note) = marked.note() {
        let _ = writeln!(out, "{indent}(invisible characters shown as escapes: {note})");
    }
    out
}

/// The diff for a terminal.
pub fn text(d: &PlanDiff) -> String {
    let mut out = format!("Plan diff of {}: {}\n", heading(d), count_text(d));
    for n in &d.notes {
        let _ = writeln!(out, "note: {}", crate::shown::one_line(n));
    }
    if !d.risks.is_empty() {
        let _ = writeln!(out, "\nRisk changes:");
        for r in &d.risks {
            let _ = writeln!(out, "  ! {}", crate::shown::one_line(r));
        }
    }
    if !d.fields.is_empty() {
        let _ = writeln!(out, "\nRunbook:");
        fields_text(&mut out, &d.fields, "  ");
    }
    if !d.steps.is_empty() {
        let _ = writeln!(out, "\nSteps:");
        for s in &d.steps {
            match s {
                StepChange::Added { step, section, kind, command, fields } => {
                    let fin = if *section == "finally" { " (finally)" } else { "" };
                    let _ = writeln!(out, "  + added `{}`{fin} ({kind}):", crate::shown::one_line(step));
                    out.push_str(&indented(command, "      | "));
                    let note = non_ascii(command);
                    if !note.is_empty() {
                        let _ = writeln!(out, "     {note}");
                    }
                    for c in fields {
                        let f = field_text(&c.field);
                        match (&c.unified, &c.new) {
                            (Some(u), _) => {
                                let _ = writeln!(out, "      {f}:{}", lookalikes(c));
                                out.push_str(&indented(u, "        "));
                            }
                            (None, v) => {
                                let v = v.as_ref().map_or_else(|| "(none)".into(), list_text);
                                let _ = writeln!(out, "      {f}: {v}{}", lookalikes(c));
                            }
                        }
                    }
                }
                StepChange::Removed { step, section, kind, command } => {
                    let fin = if *section == "finally" { " (finally)" } else { "" };
                    let _ = writeln!(
                        out,
                        "  - removed `{}`{fin} ({kind}), it ran:",
                        crate::shown::one_line(step)
                    );
                    out.push_str(&indented(command, "      | "));
                    let note = non_ascii(command);
                    if !note.is_empty() {
                        let _ = writeln!(out, "     {note}");
                    }
                }
                StepChange::Renamed { from, to, changes } => {
                    let _ = writeln!(
                        out,
                        "  ~ renamed `{}` → `{}`",
                        crate::shown::one_line(from),
                        crate::shown::one_line(to)
                    );
                    fields_text(&mut out, changes, "      ");
                }
                StepChange::Changed { step, changes } => {
                    let _ = writeln!(out, "  ~ `{}`", crate::shown::one_line(step));
                    fields_text(&mut out, changes, "      ");
                }
            }
        }
    }
    if !d.sources.is_empty() {
        let _ = writeln!(out, "\nChanges as written, for other parameter values:");
        for s in &d.sources {
            let _ = writeln!(out, "  ~ {}", crate::shown::one_line(&s.note));
            if let Some(u) = &s.unified {
                out.push_str(&indented(u, "      "));
            }
        }
    }
    out
}

/// Non-ASCII characters in the changed lines of a change (`-`/`+` lines of its unified diff,
/// or its old and new values): a no-break space or a Cyrillic `а` reads like an ASCII one,
/// so the view names them (` (non-ASCII characters in this change: U+00A0)`), or nothing.
fn lookalikes(c: &FieldChange) -> String {
    let mut text = String::new();
    if let Some(u) = &c.unified {
        for l in u.lines().filter(|l| l.starts_with(['-', '+'])) {
            text.push_str(l);
        }
    }
    for v in [&c.old, &c.new].into_iter().flatten() {
        text.push_str(&v.to_string());
    }
    non_ascii(&text)
}

/// The non-ASCII characters of a text as ` (non-ASCII characters in this change: U+00A0)`,
/// or nothing.
fn non_ascii(text: &str) -> String {
    let mut seen = Vec::new();
    // The rule of what is executed (`shown::marks`), its non-ASCII part: the ASCII controls
    // of a value are named by the value's own note.
    for ch in text.chars().filter(|ch| !ch.is_ascii() && crate::shown::marks(*ch)) {
        if !seen.contains(&ch) {
            seen.push(ch);
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    let more = if seen.len() > 12 { ", ..." } else { "" };
    let list: Vec<String> = seen.iter().take(12).map(|ch| format!("U+{:04X}", u32::from(*ch))).collect();
    format!(" (non-ASCII characters in this change: {}{more})", list.join(", "))
}

fn fields_text(out: &mut String, changes: &[FieldChange], indent: &str) {
    for c in changes {
        let _ = writeln!(out, "{indent}{}{}", field_line(c), lookalikes(c));
        if let Some(u) = c.unified.clone().or_else(|| whole_object(c)) {
            out.push_str(&indented(&u, &format!("{indent}  ")));
        }
    }
}

/// The diff as markdown, for a pull request comment.
pub fn markdown(d: &PlanDiff) -> String {
    let name = d.runbook.new.as_deref().or(d.runbook.old.as_deref()).unwrap_or("?");
    let mut out = format!("## Plan diff of {}: {}\n", code(name), count_text(d));
    for n in &d.notes {
        let _ = writeln!(out, "\n> **Note:** {}", backticked(n));
    }
    if !d.risks.is_empty() {
        let _ = writeln!(out, "\n### Risk changes\n");
        for r in &d.risks_markdown {
            let _ = writeln!(out, "- {r}");
        }
    }
    if !d.fields.is_empty() {
        let _ = writeln!(out, "\n### Runbook\n");
        fields_markdown(&mut out, d.fields.as_slice(), "");
    }
    if !d.steps.is_empty() {
        let _ = writeln!(out, "\n### Steps\n");
        for s in &d.steps {
            match s {
                StepChange::Added { step, section, kind, command, fields } => {
                    let fin = if *section == "finally" { " (`finally`)" } else { "" };
                    let _ = writeln!(out, "- **added** {}{fin} ({}):\n", code(step), escape(kind));
                    let lang = if kind == "run" { "sh" } else { "json" };
                    out.push_str(&fenced(lang, command, "  "));
                    let note = non_ascii(command);
                    if !note.is_empty() {
                        let _ = writeln!(out, "  {}\n", note.trim_start());
                    }
                    for c in fields {
                        match (&c.unified, &c.new) {
                            (Some(u), _) => {
                                let _ = writeln!(out, "  - {}:{}\n", code(&c.field), lookalikes(c));
                                out.push_str(&fenced("diff", u, "    "));
                            }
                            (None, v) => {
                                let v = v.as_ref().map_or_else(|| "(none)".into(), md_list);
                                let _ = writeln!(out, "  - {}: {v}{}", code(&c.field), lookalikes(c));
                            }
                        }
                    }
                }
                StepChange::Removed { step, section, kind, command } => {
                    let fin = if *section == "finally" { " (`finally`)" } else { "" };
                    let _ = writeln!(out, "- **removed** {}{fin} ({}), it ran:\n", code(step), escape(kind));
                    let lang = if kind == "run" { "sh" } else { "json" };
                    out.push_str(&fenced(lang, command, "  "));
                    let note = non_ascii(command);
                    if !note.is_empty() {
                        let _ = writeln!(out, "  {}\n", note.trim_start());
                    }
                }
                StepChange::Renamed { from, to, changes } => {
                    let _ = writeln!(out, "- **renamed** {} → {}", code(from), code(to));
                    fields_markdown(&mut out, changes, "  ");
                }
                StepChange::Changed { step, changes } => {
                    let _ = writeln!(out, "- **changed** {}", code(step));
                    fields_markdown(&mut out, changes, "  ");
                }
            }
        }
    }
    if !d.sources.is_empty() {
        let _ = writeln!(out, "\n### Changes as written, for other parameter values\n");
        for s in &d.sources {
            let _ = writeln!(out, "- {}", backticked(&s.note));
            if let Some(u) = &s.unified {
                let _ = writeln!(out);
                out.push_str(&fenced("diff", u, "  "));
            }
        }
    }
    out
}

/// A sentence of ours whose `ids` are in backticks: the ids as code spans, the rest escaped.
fn backticked(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 { out.push_str(&code(part)) } else { out.push_str(&escape(part)) }
    }
    out
}

fn fields_markdown(out: &mut String, changes: &[FieldChange], indent: &str) {
    for c in changes {
        let f = code(&c.field);
        let set = SETS.contains(&last_segment(&c.field));
        let v = |v: &Value| code(&v.to_string());
        let line = match (&c.old, &c.new, &c.unified) {
            (_, _, Some(_)) => format!("{f}:"),
            (None, Some(n), _) if set => format!("{f} added {}", md_list(n)),
            (Some(o), None, _) if set => format!("{f} removed {}", md_list(o)),
            (None, Some(n), _) if n.is_object() => format!("{f} added:"),
            (Some(o), None, _) if o.is_object() => format!("{f} removed, it was:"),
            (None, Some(n), _) => format!("{f} added: {}", v(n)),
            (Some(o), None, _) => format!("{f} removed (was {})", v(o)),
            (Some(o), Some(n), _) => format!("{f}: {} → {}", v(o), v(n)),
            (None, None, None) => f,
        };
        let _ = writeln!(out, "{indent}- {line}{}", lookalikes(c));
        if let Some(u) = &c.unified {
            let _ = writeln!(out);
            out.push_str(&fenced("diff", u, &format!("{indent}  ")));
        } else if let Some(block) = whole_object(c) {
            let _ = writeln!(out);
            out.push_str(&fenced("json", &block, &format!("{indent}  ")));
        }
    }
}

fn md_list(v: &Value) -> String {
    match v.as_array() {
        Some(items) => items.iter().map(|i| code(&shown_value(i))).collect::<Vec<_>>().join(", "),
        None => code(&v.to_string()),
    }
}

/// The diff as its JSON document (documented in the book: reference/plan-diff-json.md).
pub fn json(d: &PlanDiff) -> String {
    serde_json::to_string_pretty(d).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Source;
    use crate::validate::{NoIncludes, check};

    /// The plan document of a runbook text (no parameters).
    fn doc(text: &str) -> Value {
        let checked = check(Source::toml("r.toml", text), &NoIncludes);
        let runbook = checked.runbook.unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
        let plan = crate::plan::plan(&runbook, &BTreeMap::new()).expect("a plan");
        serde_json::to_value(plan).expect("json")
    }

    fn risks_between(old: &str, new: &str) -> Vec<String> {
        diff(&doc(old), &doc(new)).expect("a diff").risks
    }

    const BASE: &str = "[runbook]\nname = \"r\"\n\n[steps.scan_logs]\nrun = \"scan\"\ncompensate = { run = \"unscan\" }\ntimeout = \"1h\"\n\n[steps.health]\nrun = \"check\"\ntimeout = \"1h\"\n\n[steps.push]\nrun = \"push\"\nidempotent = true\ntimeout = \"1h\"\non-failure = \"stop\"\n";

    #[test]
    fn the_same_plan_is_no_change() {
        let d = diff(&doc(BASE), &doc(BASE)).expect("a diff");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(text(&d), "Plan diff of `r`: no change\n");
    }

    #[test]
    fn risk_changes_name_what_a_reviewer_must_see() {
        let new = BASE
            .replace("idempotent = true\n", "")
            .replace(
                "[steps.health]\nrun = \"check\"\n",
                "[steps.health]\nrun = \"check\"\non-failure = \"stop\"\n",
            )
            .replace("timeout = \"1h\"\non-failure", "timeout = \"4h\"\non-failure");
        let risks = risks_between(BASE, &new);
        for expected in [
            "`push` is no longer idempotent (after a crash, an operator decides)",
            "the point of no return moved from `push` to `health`",
            "worst case went from 3h to 6h",
        ] {
            assert!(risks.iter().any(|r| r == expected), "{expected}: {risks:#?}");
        }
        let lost = risks_between(BASE, &BASE.replace("compensate = { run = \"unscan\" }\n", ""));
        assert!(lost.iter().any(|r| r.starts_with("`scan_logs` lost its compensation")), "{lost:#?}");
    }

    #[test]
    fn approvals_and_confirmations_added_and_removed_are_risk_changes() {
        let new = format!(
            "{BASE}\n[steps.sign_off]\napproval = {{ prompt = \"ok?\", approvers = [\"ana\"], min-approvals = 1, timeout = \"30m\" }}\n"
        )
        .replace("[steps.health]\n", "[steps.health]\nconfirm = \"Really?\"\n");
        let risks = risks_between(BASE, &new);
        assert!(
            risks.iter().any(|r| r.starts_with("new approval `sign_off`: 1 approval(s) from `ana`")),
            "{risks:#?}"
        );
        assert!(risks.iter().any(|r| r == "new confirmation `health`: Really?"), "{risks:#?}");
        let back = risks_between(&new, BASE);
        assert!(back.iter().any(|r| r.starts_with("approval `sign_off` removed")), "{back:#?}");
    }

    #[test]
    fn a_command_change_is_a_unified_diff_of_the_exact_text() {
        let old = "[runbook]\nname = \"r\"\n\n[steps.a]\nrun = '''\necho one\necho \"now: `date`\"\necho three\n'''\n";
        let new = old.replace("now: `date`", "now: `date -u`");
        let d = diff(&doc(old), &doc(&new)).expect("a diff");
        let t = text(&d);
        assert!(t.contains("-echo \"now: `date`\"\n") && t.contains("+echo \"now: `date -u`\"\n"), "{t}");
        assert!(t.contains(" echo one\n") && t.contains(" echo three\n"), "context lines: {t}");
        let md = markdown(&d);
        assert!(md.contains("+echo \"now: `date -u`\""), "{md}");
    }

    #[test]
    fn added_and_removed_steps_show_what_they_run() {
        let new = BASE.replace("[steps.health]\nrun = \"check\"", "[steps.probe]\nrun = \"probe --all\"");
        let d = diff(&doc(BASE), &doc(&new)).expect("a diff");
        let t = text(&d);
        assert!(t.contains("  + added `probe` (run):\n      | probe --all\n"), "{t}");
        assert!(t.contains("  - removed `health` (run), it ran:\n      | check\n"), "{t}");
        let md = markdown(&d);
        assert!(md.contains("- **removed** `health` (run), it ran:\n\n  ```sh\n  check\n  ```"), "{md}");
    }

    #[test]
    fn a_step_with_a_new_id_and_the_same_command_is_a_rename() {
        let d =
            diff(&doc(BASE), &doc(&BASE.replace("[steps.health]", "[steps.health_check]"))).expect("a diff");
        assert!(text(&d).contains("renamed `health` → `health_check`"), "{}", text(&d));
        assert!(!d.steps.iter().any(|s| matches!(s, StepChange::Removed { .. } | StepChange::Added { .. })));
    }

    #[test]
    fn secrets_are_compared_by_name_and_source_only() {
        let old = "[runbook]\nname = \"r\"\n\n[secrets.TOKEN]\nenv = \"TOKEN\"\n\n[steps.a]\nrun = \"curl -H \\\"$T\\\" x\"\nenv = { T = \"{{ secrets.TOKEN }}\" }\n";
        let new = old.replace("env = \"TOKEN\"", "env = \"NEW_TOKEN\"");
        let t = text(&diff(&doc(old), &doc(&new)).expect("a diff"));
        assert!(t.contains("secrets[TOKEN].source.env: \"TOKEN\" → \"NEW_TOKEN\""), "{t}");
    }

    #[test]
    fn risk_sentences_are_plain_text_of_the_markdown() {
        assert_eq!(plain("a \\_b\\_ `c` x\\<br\\> y<br>z"), "a _b_ `c` x<br> y\nz");
        let old = "[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"x\"\n";
        let new = "[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"x\"\nconfirm = \"Push *main* to `prod`?\"\n";
        let d = diff(&doc(old), &doc(new)).expect("a diff");
        assert_eq!(d.risks, vec!["new confirmation `a`: Push *main* to `prod`?".to_string()]);
        assert_eq!(
            d.risks_markdown,
            vec!["new confirmation `a`: Push \\*main\\* to \\`prod\\`?".to_string()]
        );
    }

    /// A pinned plan is a file anyone can edit: ids and texts in it can neither add lines
    /// or markup to the markdown comment nor reach a terminal raw.
    #[test]
    fn hostile_ids_and_texts_cannot_add_markup_or_escape_sequences() {
        let old = doc(BASE);
        let mut new = old.clone();
        new["steps"][0]["id"] = Value::from("x`\n# pwned <img src=x>");
        new["steps"][0]["command"]["run"]["script"] = Value::from("scan\u{1b}[2K\rok\n```\n# out");
        new["steps"][1]["confirm"] = Value::from("sure?\n# pwned too");
        let d = diff(&old, &new).expect("a diff");
        let md = markdown(&d);
        assert!(!md.lines().any(|l| l.starts_with("# pwned")), "{md}");
        // Raw HTML only ever inside a code span (shown as text).
        assert!(md.lines().filter(|l| l.contains("<img")).all(|l| l.contains("``x`")), "{md}");
        assert!(!md.contains('\u{1b}'), "{md}");
        let t = text(&d);
        assert!(!t.contains('\u{1b}') && !t.contains('\r'), "{t}");
        assert!(!t.lines().any(|l| l.starts_with("# pwned")), "{t}");
    }

    /// Small JSON values of every shape: absent, `null`, empty and not, lists of objects
    /// with unique and with shared keys, texts of one and several lines.
    fn corpus() -> Vec<Option<Value>> {
        use serde_json::json;
        let base = vec![
            json!(null),
            json!(false),
            json!(0),
            json!(1.0),
            json!(""),
            json!("a"),
            json!("a\nb"),
            json!([]),
            json!({}),
            json!([null]),
            json!([[]]),
            json!([{}]),
            json!(["a", "a"]),
            json!(["a"]),
            json!([1]),
            json!(["1"]),
            json!({"a": null}),
            json!({"a": []}),
            json!({"a": {}}),
            json!({"id": "x"}),
            json!([{"id": "x"}, {"id": "y"}]),
            json!([{"id": "y"}, {"id": "x"}]),
            json!([{"id": "x", "v": 1}, {"id": "x", "v": 2}]),
            json!([{"id": "x", "v": 2}, {"id": "x", "v": 2}]),
            json!([{"op": "test", "path": "/r", "value": 3}, {"op": "replace", "path": "/r", "value": 5}]),
            json!([{"op": "replace", "path": "/r", "value": 5}, {"op": "replace", "path": "/r", "value": 5}]),
        ];
        let mut out = vec![None];
        for v in &base {
            out.push(Some(v.clone()));
            // One level deeper, as a value inside a body.
            out.push(Some(json!({"k": v})));
            out.push(Some(json!([v])));
        }
        out
    }

    /// The walk is a faithful structural diff: for every pair of the corpus, at every kind of
    /// path (a body, a set-like `needs`, a text field, an argv), it reports nothing exactly
    /// when the two values are equal.
    #[test]
    fn the_walk_reports_nothing_exactly_when_the_values_are_equal() {
        let values = corpus();
        for path in
            ["command.http.body", "command.sql.args", "needs", "command.run.script", "cmd", "x.outputs"]
        {
            for a in &values {
                for b in &values {
                    let mut out = Vec::new();
                    walk(path, a.as_ref(), b.as_ref(), &mut out, &mut Budget::new());
                    assert_eq!(out.is_empty(), a == b, "{path}: {a:?} vs {b:?}: {out:?}");
                }
            }
        }
    }

    /// The same through the whole document: a step's http body set to each corpus value.
    #[test]
    fn a_body_of_any_value_is_compared_exactly() {
        let plain =
            doc("[runbook]\nname = \"r\"\n\n[steps.a]\nhttp = { method = \"POST\", url = \"http://x\" }\n");
        let values = corpus();
        let with = |v: &Option<Value>| {
            let mut d = plain.clone();
            match v {
                Some(v) => d["steps"][0]["command"]["http"]["body"] = v.clone(),
                None => {
                    if let Some(h) = d["steps"][0]["command"]["http"].as_object_mut() {
                        h.remove("body");
                    }
                }
            }
            d
        };
        for a in &values {
            for b in &values {
                let d = diff(&with(a), &with(b)).expect("a diff");
                assert_eq!(d.is_empty(), a == b, "{a:?} vs {b:?}: {d:?}");
            }
        }
    }

    /// Past the limit, a change is one hunk of every old and every new line: linear, the same
    /// everywhere, and still exact.
    #[test]
    fn a_long_change_is_one_hunk() {
        let old: String = (0..3000).map(|i| format!("echo x{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("echo y{i}\n")).collect();
        let (old, new) = (format!("same\n{old}tail\n"), format!("same\n{new}tail\n"));
        let u = unified(&old, &new, &mut Budget::new());
        assert!(u.starts_with("@@ -1,3002 +1,3002 @@\n same\n-echo x0\n"), "{}", &u[..80]);
        assert!(u.ends_with("+echo y2999\n tail\n"));
        assert_eq!(u.lines().filter(|l| l.starts_with('-')).count(), 3000);
        assert_eq!(u.lines().filter(|l| l.starts_with('+')).count(), 3000);
        // Under the limit, the line diff as before.
        assert_eq!(
            unified("a\nb\nc\n", "a\nB\nc\n", &mut Budget::new()),
            "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
    }

    /// The keys a plan file may have are exactly the keys `plan -o` writes: a field added to
    /// [`Plan`] fails here until [`PLAN_KEYS`] names it (else RB123 would refuse new plans).
    #[test]
    fn plan_keys_are_the_fields_of_the_plan() {
        let d = doc(BASE);
        let written: BTreeSet<&str> = d.as_object().expect("object").keys().map(String::as_str).collect();
        let known: BTreeSet<&str> = PLAN_KEYS.iter().copied().collect();
        assert_eq!(written, known);
        let text = serde_json::to_string(&d).expect("json");
        assert!(parse_document(&text).is_ok());
        let extra = format!("{},\"x\\u202e\":{{\"a\":1}}}}", text.strip_suffix('}').expect("an object"));
        let e = parse_document(&extra).expect_err("refused");
        assert!(e.0.contains("top-level key `x\\u{202e}` that no plan document has (RB123)"), "{}", e.0);
    }

    /// Red team adv18b F2: the line diffs of one document share one budget of differing
    /// lines; past it a changed text is one hunk (still exact), and the diff says how many.
    #[test]
    fn line_diffs_share_one_budget_per_document() {
        let (old, new) = ("a\n".repeat(2000), "b\n".repeat(2000));
        let mut bg = Budget::new();
        let per_text = LINE_DIFF_BUDGET / 4000;
        for i in 0..per_text + 3 {
            let u = unified(&old, &new, &mut bg);
            assert_eq!(u.lines().count(), 4001, "text {i}: every line, exactly");
        }
        assert_eq!(bg.whole, 3);
        assert!(
            bg.notes()[0].contains("3 more changed text(s) are shown as one hunk each"),
            "{:?}",
            bg.notes()
        );
        // A small change past the budget is still exact, as one hunk.
        assert_eq!(unified("x\ny\n", "x\nz\n", &mut bg), "@@ -1,2 +1,2 @@\n x\n-y\n+z\n");
    }

    /// The procedure compared as written: a template that renders the same for the given
    /// values is a change; comments and layout are not; a part the plan diff shows is not
    /// repeated.
    #[test]
    fn the_procedure_is_compared_as_written() {
        let doc = |text: &str| {
            let checked = check(Source::toml("r.toml", text), &NoIncludes);
            let runbook = checked.runbook.unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
            let values = crate::inputs::resolve(&runbook, &BTreeMap::new()).expect("defaults");
            serde_json::to_value(crate::plan::plan(&runbook, &values).expect("a plan")).expect("json")
        };
        let old = "[runbook]\nname = \"r\"\n\n[params.e]\ntype = \"string\"\ndefault = \"s\"\n\n[steps.a]\nrun = \"x {{ params.e }}\"\n";
        let new = old
            .replace("x {{ params.e }}", "x {% if params.e == 'p' %}evil{% else %}{{ params.e }}{% endif %}");
        let d = diff(&doc(old), &doc(&new)).expect("a diff");
        assert!(d.is_empty());
        let sources = procedure(old, &new, &d);
        assert_eq!(sources.len(), 1, "{sources:?}");
        assert_eq!(sources[0].part, "steps.a");
        assert!(sources[0].unified.as_deref().is_some_and(|u| u.contains("+run = \"x {% if")), "{sources:?}");
        let layout = format!("# c\n{}", old.replace("type = \"string\"", "type = 'string' # t"));
        assert!(procedure(old, &layout, &d).is_empty());
        // A literal change the plan shows: said by the plan only.
        let shown = format!("{old}timeout = \"1h\"\n");
        let d = diff(&doc(old), &doc(&shown)).expect("a diff");
        assert!(!d.is_empty() && procedure(old, &shown, &d).is_empty());
        // A changed line with a template: said as written too, whatever the plan shows.
        let templated = old.replace("x {{", "y {{");
        let d = diff(&doc(old), &doc(&templated)).expect("a diff");
        let sources = procedure(old, &templated, &d);
        assert!(!d.is_empty() && sources.len() == 1 && sources[0].note.contains("above"), "{sources:?}");
    }

    #[test]
    fn garbage_documents_are_refused_with_a_reason() {
        for (bad, why) in [
            (serde_json::json!([]), "not a JSON object"),
            // The format is at version 2 (read, with version 1): another version is refused.
            (serde_json::json!({"format_version": 3}), "version 2 (and 1, of earlier releases)"),
            (serde_json::json!({"format_version": 1, "steps": 3}), "`steps` is not a list"),
            (serde_json::json!({"format_version": 1, "steps": [{"id": "a"}]}), "`steps[0].on_failure`"),
            (serde_json::json!({"format_version": 2, "steps": 3}), "`steps` is not a list"),
            (
                serde_json::json!({"format_version": 2, "steps": [{"id": "a", "kind": "cmd", "on_failure": "stop", "command": {"cmd": []}, "compensation_chain": ["x"]}]}),
                "`steps[0].compensation_chain` is not a compensation chain",
            ),
            (
                serde_json::json!({"format_version": 2, "steps": [{"id": "a", "kind": "cmd", "on_failure": "stop", "command": {"cmd": []}, "compensation_chain": {"count": 1, "first": ["x", "y"]}}]}),
                "`steps[0].compensation_chain.first` is not at most `count` ids",
            ),
        ] {
            let e = read_document(&bad).expect_err("refused");
            assert!(e.0.contains(why), "{why}: {}", e.0);
        }
    }
}
