//! `for-each`: a step over a list parameter expanded into one ordinary step per element.
//!
//! Expansion happens here, in the pure core, between validation and planning: `plan` and the
//! dispatcher both see only ordinary steps, so resume, compensation, retries, approvals and
//! the journal need nothing new. An instance's id is `STEP[ELEMENT]` (`restart[web-1]`): step
//! ids never hold a bracket, and [`crate::params::instance_key`] refuses elements that could
//! make two instances (or an instance and another step) share an id. A step that needs a
//! `for-each` step needs every instance. `max-parallel = N` becomes order: instance `i`
//! needs instance `i - N`, so at most N instances run at once (two running instances never
//! share a lane, and there are N lanes). An empty list leaves the step in place, skipped by
//! a `when` that states why. The expanded runbook has as many steps as instances: linear
//! in the list's length, which [`crate::model::MAX_LIST_ELEMENTS`] bounds.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::model::{Expr, ParamValue, Runbook, Step, StepId};

/// The runbook with every `for-each` step replaced by its instances, for these (resolved,
/// checked) parameter values. Borrowed as is when no step has `for-each`.
pub fn expand<'r>(runbook: &'r Runbook, params: &BTreeMap<String, ParamValue>) -> Cow<'r, Runbook> {
    if runbook.steps.iter().chain(&runbook.finally).all(|s| s.for_each.is_none()) {
        return Cow::Borrowed(runbook);
    }
    let mut out = runbook.clone();
    out.steps = expand_steps(&runbook.steps, params);
    out.finally = expand_steps(&runbook.finally, params);
    Cow::Owned(out)
}

/// The ids a step's id stands for after expansion: itself, or each of its instances, or
/// (an empty `for-each`) itself, kept as a skipped stand-in.
fn expand_steps(steps: &[Step], params: &BTreeMap<String, ParamValue>) -> Vec<Step> {
    // What each `for-each` step's id becomes in the needs of others.
    let mut instances: BTreeMap<&str, Vec<StepId>> = BTreeMap::new();
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let needs: Vec<StepId> = step
            .needs
            .iter()
            .flat_map(|n| match instances.get(n.as_str()) {
                Some(ids) => ids.clone(),
                None => vec![n.clone()],
            })
            .collect();
        let Some(fe) = &step.for_each else {
            out.push(Step { needs, ..step.clone() });
            continue;
        };
        let elements: &[ParamValue] = match params.get(&fe.param) {
            Some(ParamValue::List(items)) => items,
            _ => &[],
        };
        if elements.is_empty() {
            // The step stays, under its own id, skipped by a condition the plan shows and
            // the journal records: the list is empty.
            let when =
                Expr { text: format!("params.{} | length > 0", fe.param), span: fe.span, static_only: true };
            let item = crate::model::Item {
                value: ParamValue::String(String::new()),
                index: 0,
                base: step.id.clone(),
            };
            out.push(Step { needs, when: Some(when), for_each: None, item: Some(item), ..step.clone() });
            instances.insert(step.id.as_str(), vec![step.id.clone()]);
            continue;
        }
        let mut ids: Vec<StepId> = Vec::with_capacity(elements.len());
        for (index, value) in elements.iter().enumerate() {
            // Checked with the parameter's values (`params::check`); never fails here.
            let key = crate::params::instance_key(value).unwrap_or_else(|_| index.to_string());
            let id = StepId(format!("{}[{key}]", step.id));
            let mut needs = needs.clone();
            if let Some(lanes) = fe.max_parallel.map(|m| m as usize)
                && index >= lanes
            {
                needs.push(ids[index - lanes].clone());
            }
            let item = crate::model::Item { value: value.clone(), index, base: step.id.clone() };
            out.push(Step { id: id.clone(), needs, for_each: None, item: Some(item), ..step.clone() });
            ids.push(id);
        }
        instances.insert(step.id.as_str(), ids);
    }
    out
}

/// The template context of one instance ([`crate::template::Context::with_item`]).
pub fn item_context(base: &crate::template::Context, step: &Step) -> Option<crate::template::Context> {
    let item = step.item.as_ref()?;
    let value = serde_json::to_value(&item.value).unwrap_or(serde_json::Value::Null);
    let own = (!step.outputs.is_empty()).then(|| (item.base.as_str(), step.id.as_str()));
    Some(base.with_item(&value, item.index, own))
}
