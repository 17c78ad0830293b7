//! Step ids, declared outputs, `needs`, cycles and ancestors: the graph of a section.

use super::*;

impl Validator<'_> {
    // ----- steps: ids, needs, graph ------------------------------------------------------

    pub(super) fn check_id(&mut self, id: &Spanned<String>, what: &str) -> bool {
        if is_id(&id.value) {
            return true;
        }
        let suggestion = suggest_id(&id.value);
        self.err(Code::InvalidId, id.span, format!("invalid {what} id `{}`", id.value)).help = Some(format!(
            "ids are lowercase letters, digits and `_`, starting with a letter (`^[a-z][a-z0-9_]*$`) so templates can name them{}",
            suggestion.map(|s| format!("; try `{s}`")).unwrap_or_default()
        ));
        false
    }

    pub(super) fn collect_steps(&mut self, units: &[Unit<RawStep>], section: Section) {
        for u in units {
            self.check_id(&u.id, "step");
            if let Some(prev) = self.steps.get(&u.id.value) {
                let prev_span = prev.span;
                let prev_section = prev.section.table();
                let d = Diagnostic::error(
                    Code::DuplicateId,
                    &self.source,
                    u.id.span,
                    format!("step id `{}` is used twice", u.id.value),
                )
                .with_label("used again here")
                .with_related(prev_span, format!("first used in `[{prev_section}]` here"))
                .with_help("step ids are shared by `[steps]` and `[finally]`; rename one of them");
                self.push(d);
                continue;
            }
            let outputs = u.raw.as_ref().map(|r| self.step_outputs(&u.id.value, r));
            let inert = u
                .raw
                .as_ref()
                .and_then(|r| r.approval.as_ref())
                .and_then(|a| a.value.inputs.as_ref())
                .map(|inputs| {
                    inputs
                        .iter()
                        .filter(|(_, p)| match p.ty.value {
                            RawParamType::String => p.allowed.as_ref().is_some_and(|a| {
                                a.value.iter().all(|v| v.as_str().is_some_and(crate::shell::inert))
                            }),
                            _ => true,
                        })
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let approval = u.raw.as_ref().is_some_and(|r| r.approval.is_some());
            let for_each = u.raw.as_ref().is_some_and(|r| r.for_each.is_some());
            self.steps.insert(
                u.id.value.clone(),
                StepInfo { section, span: u.id.span, outputs, inert, approval, for_each },
            );
        }
    }

    /// The outputs a step offers to others (and checks its `outputs` list).
    pub(super) fn step_outputs(&mut self, id: &str, raw: &RawStep) -> Vec<String> {
        let fixed: Option<(&str, Vec<String>)> = if raw.http.is_some() {
            Some(("http", HTTP_OUTPUTS.iter().map(|s| s.to_string()).collect()))
        } else if raw.sql.is_some() {
            Some(("sql", SQL_OUTPUTS.iter().map(|s| s.to_string()).collect()))
        } else if let Some(a) = &raw.approval {
            Some((
                "approval",
                a.value.inputs.as_ref().map(|i| i.keys().cloned().collect()).unwrap_or_default(),
            ))
        } else if raw.notify.is_some() {
            Some(("notify", Vec::new()))
        } else {
            None
        };
        let declared = raw.outputs.as_deref().unwrap_or(&[]);
        if let (Some((kind, fixed)), Some(first)) = (&fixed, declared.first()) {
            let list =
                if fixed.is_empty() { "none".to_string() } else { format!("`{}`", fixed.join("`, `")) };
            self.err(
                Code::MisplacedKey,
                first.span,
                format!("`outputs` is not allowed on the {kind} step `{id}`"),
            )
            .help = Some(format!("a {kind} step's outputs are fixed: {list}; remove `outputs`"));
        }
        if let Some((_, fixed)) = fixed {
            return fixed;
        }
        let mut seen: FastMap<&str, Span> = FastMap::default();
        let mut out = Vec::new();
        for o in declared {
            self.check_id(o, "output");
            if let Some(first) = seen.get(o.value.as_str()) {
                let first = *first;
                let d = Diagnostic::error(
                    Code::DuplicateId,
                    &self.source,
                    o.span,
                    format!("output `{}` of step `{id}` is listed twice", o.value),
                )
                .with_related(first, "first listed here")
                .with_help("list each output once");
                self.push(d);
                continue;
            }
            seen.insert(&o.value, o.span);
            out.push(o.value.clone());
        }
        out
    }

    /// Direct needs of each step of a section, with the span of each entry (`None`: implicit).
    pub(super) fn needs(&mut self, units: &[Unit<RawStep>], section: Section) -> Needs {
        let mut out = FastMap::with_capacity_and_hasher(units.len(), Default::default());
        let mut previous: Option<&str> = None;
        for u in units {
            let id = u.id.value.as_str();
            let mut list = Vec::new();
            match u.raw.as_ref().and_then(|r| r.needs.as_ref()) {
                Some(needs) => {
                    let mut seen = FastSet::default();
                    for n in &needs.value {
                        if !seen.insert(n.value.as_str()) {
                            self.err(
                                Code::DuplicateId,
                                n.span,
                                format!("step `{id}` needs `{}` twice", n.value),
                            )
                            .help = Some("list each need once".into());
                            continue;
                        }
                        if n.value == id {
                            self.err(Code::SelfNeed, n.span, format!("step `{id}` needs itself"))
                                .set_label("this is the step's own id")
                                .help = Some("remove it from `needs`".into());
                            continue;
                        }
                        match self.steps.get(&n.value).map(|s| s.section) {
                            Some(s) if s == section => list.push((n.value.clone(), Some(n.span))),
                            Some(other) => {
                                let msg = match section {
                                    Section::Main => {
                                        format!("step `{id}` needs `{}`, a `finally` step", n.value)
                                    }
                                    Section::Finally => {
                                        format!("finally step `{id}` needs `{}`, a main step", n.value)
                                    }
                                };
                                let help = match other {
                                    Section::Finally => {
                                        "`finally` steps run after every main step; a main step cannot wait for one"
                                    }
                                    Section::Main => {
                                        "`finally` steps already run after every main step; `needs` in `[finally]` may only name other finally steps"
                                    }
                                };
                                self.err(Code::NeedsAcross, n.span, msg).help = Some(help.into());
                            }
                            None => {
                                // Too many ids to search or list: a generated file, and a
                                // search per unknown reference would be quadratic.
                                let many = self.steps.len() > crate::suggest::MAX_CANDIDATES;
                                let mut candidates: Vec<&str> = if many {
                                    Vec::new()
                                } else {
                                    self.steps
                                        .iter()
                                        .filter(|(k, s)| s.section == section && k.as_str() != id)
                                        .map(|(k, _)| k.as_str())
                                        .collect()
                                };
                                candidates.sort_unstable();
                                let suggestion =
                                    did_you_mean(&n.value, candidates.iter().copied()).map(str::to_string);
                                let help = match &suggestion {
                                    Some(s) => format!("did you mean `{s}`?"),
                                    None if many => format!(
                                        "the runbook has {} steps; check the id against `[{}]`",
                                        self.steps.len(),
                                        section.table()
                                    ),
                                    None if candidates.is_empty() => {
                                        format!("there are no other steps in `[{}]`", section.table())
                                    }
                                    None => {
                                        format!("steps in `[{}]`: {}", section.table(), candidates.join(", "))
                                    }
                                };
                                let d = Diagnostic::error(
                                    Code::UnknownNeed,
                                    &self.source,
                                    n.span,
                                    format!(
                                        "step `{id}` needs unknown step `{}`{}",
                                        n.value,
                                        suggestion
                                            .map(|s| format!(" (did you mean `{s}`?)"))
                                            .unwrap_or_default()
                                    ),
                                )
                                .with_label("no step with this id")
                                .with_help(help);
                                self.push(d);
                            }
                        }
                    }
                }
                None => {
                    if let Some(prev) = previous {
                        list.push((prev.to_string(), None));
                    }
                }
            }
            out.insert(id.to_string(), list);
            previous = Some(id);
        }
        out
    }

    pub(super) fn cycles(&mut self, units: &[Unit<RawStep>], needs: &Needs) {
        let order: FastMap<&str, usize> =
            units.iter().enumerate().map(|(i, u)| (u.id.value.as_str(), i)).collect();
        let edges: Vec<Vec<usize>> = units
            .iter()
            .map(|u| {
                needs
                    .get(&u.id.value)
                    .map(|l| l.iter().filter_map(|(n, _)| order.get(n.as_str()).copied()).collect())
                    .unwrap_or_default()
            })
            .collect();
        // The common case: a topological order covers every step, so there is no cycle.
        let graph = Graph::new(edges);
        if graph.topo_order().len() == units.len() {
            return;
        }
        let mut sccs: Vec<Vec<usize>> =
            graph.strongly_connected().into_iter().filter(|c| c.len() > 1).collect();
        for c in &mut sccs {
            c.sort_unstable();
        }
        sccs.sort();
        for scc in sccs {
            let members: HashSet<usize> = scc.iter().copied().collect();
            let start = scc[0];
            let path = cycle_path(&graph, start, &members);
            let names: Vec<&str> = path.iter().map(|&i| units[i].id.value.as_str()).collect();
            let first = names[0];
            let second = names.get(1).copied().unwrap_or(first);
            let span = needs
                .get(first)
                .and_then(|l| l.iter().find(|(n, _)| n == second))
                .and_then(|(_, s)| *s)
                .unwrap_or(units[start].id.span);
            let implicit: Vec<String> = path
                .windows(2)
                .filter_map(|w| {
                    let a = units[w[0]].id.value.as_str();
                    let b = units[w[1]].id.value.as_str();
                    let is_implicit = needs
                        .get(a)
                        .and_then(|l| l.iter().find(|(n, _)| n == b))
                        .is_some_and(|(_, s)| s.is_none());
                    is_implicit.then(|| {
                        format!("`{a}` has no `needs`, so it follows `{b}`, the step declared before it")
                    })
                })
                .collect();
            let mut help = "remove one of these needs; `a -> b` means `a` needs `b`".to_string();
            if !implicit.is_empty() {
                help.push_str(&format!(" ({})", implicit.join("; ")));
            }
            let d = Diagnostic::error(
                Code::Cycle,
                &self.source,
                span,
                format!("steps form a cycle: {}", names.join(" -> ")),
            )
            .with_label("the cycle starts here")
            .with_help(help);
            self.push(d);
        }
    }

    pub(super) fn compute_ancestors(
        &mut self,
        main: &Needs,
        finally: &Needs,
        main_order: &[&str],
        finally_order: &[&str],
    ) {
        self.main_count = main_order.len();
        self.step_index =
            main_order.iter().chain(finally_order).enumerate().map(|(i, id)| (id.to_string(), i)).collect();
        let needs: Vec<Vec<usize>> = main_order
            .iter()
            .map(|id| (id, main))
            .chain(finally_order.iter().map(|id| (id, finally)))
            .map(|(id, graph)| {
                graph
                    .get(*id)
                    .map(|l| l.iter().filter_map(|(n, _)| self.step_index.get(n).copied()).collect())
                    .unwrap_or_default()
            })
            .collect();
        self.index_needs = Graph::new(needs);
    }

    /// True when `target`'s outputs exist before `current` runs: an ancestor through needs,
    /// or any main step for a finally step. Unknown (a cycle, already reported) counts as true.
    pub(super) fn is_ancestor(&self, current: &str, target: &str) -> bool {
        let (Some(&c), Some(&t)) = (self.step_index.get(current), self.step_index.get(target)) else {
            return false;
        };
        if c >= self.main_count && t < self.main_count {
            return true;
        }
        match self.ancestors.get_or_init(|| self.index_needs.ancestors()).get(c) {
            Some(Some(set)) => set.contains(t),
            _ => true,
        }
    }
}

/// `My-Step` → `my_step`, when that makes a valid id.
pub(super) fn suggest_id(id: &str) -> Option<String> {
    let mut s: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "step_");
    }
    (is_id(&s) && s != id).then_some(s)
}

/// A path `start -> ... -> start` through the strongly connected component `members`.
pub(super) fn cycle_path(graph: &Graph, start: usize, members: &HashSet<usize>) -> Vec<usize> {
    // Breadth-first search for the shortest way back to `start`.
    let mut prev: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = HashSet::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<usize> =
            graph.needs_of(n).iter().copied().filter(|m| members.contains(m)).collect();
        next.sort_unstable();
        for m in next {
            if m == start {
                // Walk the back-pointers from `n` to `start`, then read them forward.
                let mut chain = Vec::new();
                let mut cur = n;
                while cur != start {
                    chain.push(cur);
                    cur = prev[&cur];
                }
                chain.reverse();
                let mut path = vec![start];
                path.extend(chain);
                path.push(start);
                return path;
            }
            if seen.insert(m) {
                prev.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}
