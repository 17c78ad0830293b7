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

/// The ids each step's id stands for after expansion: itself, or each of its instances, or
/// (an empty `for-each`) itself, kept as a skipped stand-in. Computed for EVERY step of the
/// list before any `needs` is rewritten, so a step may need a `for-each` step declared later
/// in the file (red team adv17b F1: a one-pass walk dropped such needs).
fn instance_ids<'s>(
    steps: &'s [Step],
    params: &BTreeMap<String, ParamValue>,
) -> BTreeMap<&'s str, Vec<StepId>> {
    steps
        .iter()
        .map(|step| {
            let ids = match &step.for_each {
                None => vec![step.id.clone()],
                Some(fe) => match params.get(&fe.param) {
                    Some(ParamValue::List(items)) if !items.is_empty() => items
                        .iter()
                        .enumerate()
                        // Checked with the parameter's values (`params::check`); never fails here.
                        .map(|(index, value)| {
                            let key =
                                crate::params::instance_key(value).unwrap_or_else(|_| index.to_string());
                            StepId(format!("{}[{key}]", step.id))
                        })
                        .collect(),
                    _ => vec![step.id.clone()],
                },
            };
            (step.id.as_str(), ids)
        })
        .collect()
}

/// The steps of one list (main or `finally`) expanded: first every step's instance ids
/// ([`instance_ids`]), then every `needs` rewritten with them.
fn expand_steps(steps: &[Step], params: &BTreeMap<String, ParamValue>) -> Vec<Step> {
    let instances = instance_ids(steps, params);
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let needs: Vec<StepId> = step
            .needs
            .iter()
            .flat_map(|n| match instances.get(n.as_str()) {
                Some(ids) => ids.clone(),
                // Validation refused it already; kept so that `dangling_need` names it.
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
            continue;
        }
        let ids = instances.get(step.id.as_str()).map_or(&[][..], Vec::as_slice);
        for (index, (value, id)) in elements.iter().zip(ids).enumerate() {
            let mut needs = needs.clone();
            if let Some(lanes) = fe.max_parallel.map(|m| m as usize)
                && index >= lanes
            {
                needs.push(ids[index - lanes].clone());
            }
            let item = crate::model::Item { value: value.clone(), index, base: step.id.clone() };
            out.push(Step { id: id.clone(), needs, for_each: None, item: Some(item), ..step.clone() });
        }
    }
    out
}

/// The first `needs` of an (expanded) runbook that names no step of its list, as (step,
/// need). After [`expand`] every need names a step: one that does not is an engine bug,
/// which `plan` and the dispatcher refuse instead of treating the need as met.
pub fn dangling_need(runbook: &Runbook) -> Option<(&StepId, &StepId)> {
    [&runbook.steps, &runbook.finally].into_iter().find_map(|list| {
        let ids: std::collections::BTreeSet<&str> = list.iter().map(|s| s.id.as_str()).collect();
        list.iter().find_map(|s| s.needs.iter().find(|n| !ids.contains(n.as_str())).map(|n| (&s.id, n)))
    })
}

/// The most `needs` edges the instances of a runbook may have: a `for-each` step that needs
/// another is every instance of one needing every instance of the other, n × m edges that
/// plans list and the dispatcher holds (two steps over 1,000 hosts would be a million). With
/// [`crate::model::MAX_EXPANDED_STEPS`] instances, it keeps a plan linear in what the
/// runbook and its values say, refused at `plan` (RB119) beyond.
pub const MAX_EXPANDED_NEEDS: u64 = 100_000;

/// The most entries the compensation chains of an expanded runbook's plan may hold, bounded
/// from above by instances × compensable instances: a plan names, for each step, the
/// compensations its failure would run, so 1,000 one-after-the-other instances with an undo
/// list half a million names (13 MB of JSON); 2,000 of them would list two million.
pub const MAX_COMPENSATION_CHAINS: u64 = 2_000_000;

/// How big the expansion of `runbook` with `params` would be, without making it: the steps
/// it would have, the `needs` edges between them, and the steps that have a compensation.
/// Linear in steps and needs.
pub fn size(runbook: &Runbook, params: &BTreeMap<String, ParamValue>) -> (u64, u64, u64) {
    let (mut steps, mut edges, mut undoable) = (0u64, 0u64, 0u64);
    for list in [&runbook.steps, &runbook.finally] {
        // Every step's count first: a step may need a `for-each` step declared after it.
        let count: BTreeMap<&str, u64> =
            list.iter().map(|step| (step.id.as_str(), instances(step, params))).collect();
        for step in list.iter() {
            let n = instances(step, params);
            let needs: u64 = step.needs.iter().map(|d| count.get(d.as_str()).copied().unwrap_or(1)).sum();
            let lanes = u64::from(step.for_each.as_ref().is_some_and(|f| f.max_parallel.is_some()));
            steps = steps.saturating_add(n);
            edges = edges.saturating_add(n.saturating_mul(needs.saturating_add(lanes)));
            if step.compensate.is_some() {
                undoable = undoable.saturating_add(n);
            }
        }
    }
    (steps, edges, undoable)
}

/// How many steps `step` stands for once expanded (an empty `for-each` stays one step).
fn instances(step: &Step, params: &BTreeMap<String, ParamValue>) -> u64 {
    match &step.for_each {
        Some(fe) => match params.get(&fe.param) {
            Some(ParamValue::List(items)) if !items.is_empty() => items.len() as u64,
            _ => 1,
        },
        None => 1,
    }
}

/// RB119 when a `for-each` step's list is empty (adv17b F12: like an empty GitHub Actions
/// matrix, refused; skipping the step would let its dependents run without it, an approval
/// gate included), placed at that step's `for-each`; or when the expansion would be too big
/// ([`size`]), placed at the first `for-each`.
pub fn check_size(runbook: &Runbook, params: &BTreeMap<String, ParamValue>) -> Option<crate::Diagnostic> {
    let span = runbook.steps.iter().chain(&runbook.finally).find_map(|s| s.for_each.as_ref())?.span;
    if let Some((step, fe)) = runbook.steps.iter().chain(&runbook.finally).find_map(|s| {
        s.for_each
            .as_ref()
            .filter(|fe| !matches!(params.get(&fe.param), Some(ParamValue::List(l)) if !l.is_empty()))
            .map(|fe| (s, fe))
    }) {
        return Some(
            crate::Diagnostic::error(
                crate::diagnostic::Code::ForEachSize,
                &runbook.source,
                fe.span,
                format!("the list `{}` is empty: step `{}` would have no instance", fe.param, step.id),
            )
            .with_label("for each element of this list")
            .with_help(format!(
                "give `{}` at least one element (`-p '{}=[\"a\"]'`); a `for-each` step runs once per element and the steps that need it wait for every instance, so an empty list is refused rather than skipped",
                fe.param, fe.param
            )),
        );
    }
    let (steps, edges, undoable) = size(runbook, params);
    let limit = crate::model::MAX_EXPANDED_STEPS;
    let problem = if steps > limit {
        format!(
            "with these lists the runbook has {steps} steps once its `for-each` steps are expanded; the limit is {limit}"
        )
    } else if edges > MAX_EXPANDED_NEEDS {
        format!(
            "with these lists the instances of the `for-each` steps have {edges} `needs` between them; the limit is {MAX_EXPANDED_NEEDS}"
        )
    } else if steps.saturating_mul(undoable) > MAX_COMPENSATION_CHAINS {
        format!(
            "with these lists the runbook has {steps} steps once expanded, {undoable} of them with a `compensate`: its plan would list up to {} compensations to run on a failure; the limit is {MAX_COMPENSATION_CHAINS}",
            steps.saturating_mul(undoable)
        )
    } else {
        return None;
    };
    Some(
        crate::Diagnostic::error(crate::diagnostic::Code::ForEachSize, &runbook.source, span, problem)
            .with_label("expanded here")
            .with_help("a `for-each` step that needs another needs every one of its instances: give shorter lists, or put the work of both steps in one `for-each` step"),
    )
}

/// The parameters of `runbook` whose values decide how many instances its `for-each` steps
/// have, at any depth: those a `for-each` step names, and those an include's `params` read
/// (`params.X`) in the value of such a parameter of the runbook it includes (red team
/// adv18b F1). Their values must be known when planning ([`run_time_read`]). Memoised per
/// file, so a tree of includes is walked once per file it holds.
pub fn list_sources(runbook: &Runbook) -> std::collections::BTreeSet<String> {
    fn walk(
        rb: &Runbook,
        memo: &mut BTreeMap<String, std::collections::BTreeSet<String>>,
    ) -> std::collections::BTreeSet<String> {
        if let Some(known) = memo.get(&rb.source.path) {
            return known.clone();
        }
        // A cycle of includes is refused by validation; this entry ends one all the same.
        memo.insert(rb.source.path.clone(), std::collections::BTreeSet::new());
        let mut out = std::collections::BTreeSet::new();
        for step in rb.steps.iter().chain(&rb.finally) {
            if let Some(fe) = &step.for_each {
                out.insert(fe.param.clone());
            }
            let crate::model::Action::Runbook(inc) = &step.action else { continue };
            let Some(child) = rb.includes.get(inc.child) else { continue };
            let below = walk(child, memo);
            for (k, v) in &inc.params {
                if below.contains(k) {
                    out.extend(param_reads(v));
                }
            }
        }
        memo.insert(rb.source.path.clone(), out.clone());
        out
    }
    walk(runbook, &mut BTreeMap::new())
}

/// Every template path a JSON value's string leaves read; a template that does not compile
/// reads `?` (validation refused it already).
fn reads(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => match crate::template::analyse(s, crate::template::Mode::Plain) {
            Ok(vars) => out.extend(vars),
            Err(_) => out.push("?".into()),
        },
        serde_json::Value::Array(a) => a.iter().for_each(|x| reads(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| reads(x, out)),
        _ => {}
    }
}

/// The parameters (`params.X`) a value reads.
fn param_reads(value: &serde_json::Value) -> Vec<String> {
    let mut all = Vec::new();
    reads(value, &mut all);
    all.iter()
        .filter_map(|path| {
            path.strip_prefix("params.").map(|rest| rest.split('.').next().unwrap_or(rest).to_string())
        })
        .collect()
}

/// The first thing a value passed to an included runbook's parameter reads that is not
/// known when planning: anything but the parameters of the runbook that passes it, the
/// element of a `for-each` include (`item`, `item_index`) and the template functions. A
/// step output, an approval input, a secret, `run.*` are known only when the run gets there.
pub fn run_time_read(value: &serde_json::Value) -> Option<String> {
    let mut all = Vec::new();
    reads(value, &mut all);
    all.into_iter().find(|path| {
        let root = path.split(['.', '[']).next().unwrap_or(path);
        !matches!(root, "params" | "item" | "item_index" | "range" | "dict" | "namespace")
    })
}

/// The first of an include's `params` (name, what it reads) that decides a `for-each` list
/// of `child` ([`list_sources`]) and reads a run-time value ([`run_time_read`]).
pub fn run_time_binding(child: &Runbook, params: &[(String, serde_json::Value)]) -> Option<(String, String)> {
    let lists = list_sources(child);
    params
        .iter()
        .filter(|(k, _)| lists.contains(k))
        .find_map(|(k, v)| run_time_read(v).map(|r| (k.clone(), r)))
}

/// RB128's message and hint: the value passed to `param` of `file` reads `read`.
pub fn run_time_list_problem(param: &str, file: &str, read: &str) -> (String, String) {
    (
        format!(
            "parameter `{param}` of runbook `{file}` decides the instances of a `for-each` step, and this value reads `{read}`, which is known only when the run gets there"
        ),
        format!(
            "a reviewed plan names every instance that will run, so a `for-each` list must be known when planning: pass a literal list (`{param} = [\"a\", \"b\"]`), or a value read from this runbook's own parameters (given with `-p` to the top runbook)"
        ),
    )
}

/// The template context of one instance ([`crate::template::Context::with_item`]).
pub fn item_context(base: &crate::template::Context, step: &Step) -> Option<crate::template::Context> {
    let item = step.item.as_ref()?;
    let value = serde_json::to_value(&item.value).unwrap_or(serde_json::Value::Null);
    let own = (!step.outputs.is_empty()).then(|| (item.base.as_str(), step.id.as_str()));
    Some(base.with_item(&value, item.index, own))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{self, Loader};

    struct NoIncludes;
    impl Loader for NoIncludes {
        fn load(&self, path: &str) -> Result<String, String> {
            Err(format!("no include {path}"))
        }
    }

    fn runbook(text: &str) -> Runbook {
        let checked = validate::check(crate::Source::toml("r.toml", text.to_string()), &NoIncludes);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        checked.runbook.map(|r| (*r).clone()).expect("a runbook")
    }

    fn hosts(n: usize) -> BTreeMap<String, ParamValue> {
        let items = (0..n).map(|i| ParamValue::String(format!("h{i}"))).collect();
        BTreeMap::from([("hosts".to_string(), ParamValue::List(items))])
    }

    const LANES: &str = "[runbook]\nname = \"r\"\n[params.hosts]\ntype = \"list\"\n[steps.a]\nfor-each = \"hosts\"\nmax-parallel = 3\ncmd = [\"echo\", \"{{ item }}\"]\n[steps.b]\ncmd = [\"echo\"]\n";

    /// With `max-parallel = N`, instance i needs exactly instance i - N: at most N lanes.
    #[test]
    fn lanes_are_needs_on_the_instance_n_places_before() {
        for n in [0, 1, 2, 3, 4, 10] {
            let rb = runbook(LANES);
            let expanded = expand(&rb, &hosts(n));
            let a: Vec<&Step> = expanded.steps.iter().filter(|s| s.item.is_some()).collect();
            assert_eq!(a.len(), n.max(1));
            for (i, s) in a.iter().enumerate().filter(|_| n > 0) {
                assert_eq!(s.id.as_str(), format!("a[h{i}]"));
                let want: Vec<String> = if i >= 3 { vec![format!("a[h{}]", i - 3)] } else { Vec::new() };
                assert_eq!(s.needs.iter().map(|x| x.to_string()).collect::<Vec<_>>(), want);
            }
            let b = expanded.find_step("b").expect("b");
            let ids: Vec<String> = a.iter().map(|s| s.id.to_string()).collect();
            assert_eq!(
                b.needs.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                ids,
                "b needs every instance"
            );
            let (steps, _, _) = size(&rb, &hosts(n));
            assert_eq!(steps as usize, expanded.steps.len());
        }
    }

    const LATER: &str = "[runbook]\nname = \"r\"\n[params.hosts]\ntype = \"list\"\n[steps.b]\nneeds = [\"a\"]\ncmd = [\"echo\"]\n[steps.a]\nneeds = []\nfor-each = \"hosts\"\ncmd = [\"echo\", \"{{ item }}\"]\n";

    /// A need on a `for-each` step declared later names its instances; [`size`] counts the
    /// edges expansion makes; a need left naming no step is found by [`dangling_need`].
    #[test]
    fn needs_on_a_later_for_each_step_name_every_instance() {
        for n in [0, 1, 3] {
            let rb = runbook(LATER);
            let expanded = expand(&rb, &hosts(n));
            assert_eq!(dangling_need(&expanded), None);
            let b = expanded.find_step("b").expect("b");
            let want: Vec<String> =
                if n == 0 { vec!["a".into()] } else { (0..n).map(|i| format!("a[h{i}]")).collect() };
            assert_eq!(b.needs.iter().map(|x| x.to_string()).collect::<Vec<_>>(), want);
            let (_, edges, _) = size(&rb, &hosts(n));
            assert_eq!(edges as usize, expanded.steps.iter().map(|s| s.needs.len()).sum::<usize>());
        }
        let mut broken = runbook(LATER);
        broken.steps[0].needs = vec![StepId("gone".into())];
        assert_eq!(dangling_need(&broken).map(|(s, n)| (s.as_str(), n.as_str())), Some(("b", "gone")));
    }
}
