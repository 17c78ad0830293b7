//! `runbook` steps: included runbooks, checked through the [`Loader`].

use super::*;

impl Validator<'_> {
    /// The number of steps once includes are expanded: each step counts one, and a
    /// `runbook` step adds the expanded size of the file it includes, read from the count
    /// memoised when that file was checked (never by expanding it). A runbook that includes
    /// others and goes past [`MAX_EXPANDED_STEPS`] is refused (RB065) at the include that
    /// takes it past; so is a runbook whose own steps go past it, at the first step beyond.
    pub(super) fn expanded_size(&mut self, steps: &[Step], finally: &[Step]) {
        let mut by_index: Vec<u64> = vec![0; self.includes.len()];
        for (path, &i) in &self.include_index {
            by_index[i] = self.cx.expanded.get(path).copied().unwrap_or(0);
        }
        let own = (steps.len() + finally.len()) as u64;
        let mut total: u64 = 0;
        let mut first_past: Option<Span> = None;
        for s in steps.iter().chain(finally) {
            let size = match &s.action {
                Action::Runbook(inc) => 1u64.saturating_add(by_index.get(inc.child).copied().unwrap_or(0)),
                _ => 1,
            };
            total = total.saturating_add(size);
            if total > MAX_EXPANDED_STEPS && first_past.is_none() {
                first_past = Some(match &s.action {
                    Action::Runbook(inc) => inc.span,
                    _ => s.span,
                });
            }
        }
        // Every runbook, not only one that includes others (red team adv17b F10): plans,
        // review documents and diffs hold per-step sets of steps, so the number of steps
        // bounds their time and memory as the file limit bounds their bytes.
        if total > MAX_EXPANDED_STEPS
            && let Some(span) = first_past
        {
            let (message, help) = if total > own {
                (
                    format!(
                        "this runbook has {total} steps once its includes are expanded, more than the limit of {MAX_EXPANDED_STEPS}"
                    ),
                    "each `runbook` step counts every step of the runbook it includes, once per include; include fewer times, or run the parts as separate runbooks",
                )
            } else {
                (
                    format!("this runbook has {total} steps, more than the limit of {MAX_EXPANDED_STEPS}"),
                    "split it into runbooks of at most that many steps, run one after the other",
                )
            };
            self.err(Code::IncludeSize, span, message).set_label("past the limit here").help =
                Some(help.into());
        }
        self.cx.expanded.insert(self.source.path.clone(), total);
        self.expanded_bytes(steps, finally);
        let height =
            self.include_index.keys().map(|p| self.cx.height.get(p).map_or(1, |h| h + 1)).max().unwrap_or(0);
        self.cx.height.insert(self.source.path.clone(), height);
    }

    /// RB065 for bytes: the file's own text plus, per `runbook` step, the expanded bytes of
    /// the file it includes (memoised per file, never expanded), past [`MAX_EXPANDED_BYTES`]
    /// refused at the include that takes it past (red team adv16t A4). A file on its own is
    /// bounded by the file limit, which is the same.
    fn expanded_bytes(&mut self, steps: &[Step], finally: &[Step]) {
        let mut by_index: Vec<u64> = vec![0; self.includes.len()];
        for (path, &i) in &self.include_index {
            by_index[i] = self.cx.expanded_bytes.get(path).copied().unwrap_or(0);
        }
        let own = self.source.text.len() as u64;
        let mut total = own;
        let mut first_past: Option<Span> = None;
        for s in steps.iter().chain(finally) {
            if let Action::Runbook(inc) = &s.action {
                total = total.saturating_add(by_index.get(inc.child).copied().unwrap_or(0));
                if total > MAX_EXPANDED_BYTES && first_past.is_none() {
                    first_past = Some(inc.span);
                }
            }
        }
        if let Some(span) = first_past {
            let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
            self.err(
                Code::IncludeSize,
                span,
                format!(
                    "this runbook holds {total} bytes once its includes are expanded ({}), more than the limit of {} (one file's limit)",
                    mib(total),
                    mib(MAX_EXPANDED_BYTES)
                ),
            )
            .set_label("past the limit here")
            .help = Some(
                "each `runbook` step counts every byte of the runbook it includes, once per include; include large runbooks fewer times, move long scripts into smaller files, or run the parts as separate runbooks"
                    .into(),
            );
        }
        self.cx.expanded_bytes.insert(self.source.path.clone(), total);
    }

    /// RB065 for depth: an include whose chain goes past [`MAX_INCLUDE_DEPTH`] levels under
    /// the top runbook. `below` is the number of levels the included file has under it (0
    /// when it is not checked yet: it is then refused before it is read, so validation never
    /// recurses deeper than the limit).
    fn too_deep(&mut self, span: Span, path: &str, below: usize) -> bool {
        let level = self.cx.stack.len();
        if level + below <= MAX_INCLUDE_DEPTH {
            return false;
        }
        let msg = if below == 0 {
            format!(
                "this include puts `{path}` at level {level} of a chain of includes: more than {MAX_INCLUDE_DEPTH} levels of includes"
            )
        } else {
            format!(
                "this include puts `{path}` at level {level}, and it has {below} more under it: more than {MAX_INCLUDE_DEPTH} levels of includes"
            )
        };
        let chain = if self.cx.stack.len() <= 8 {
            self.cx.stack.join(" -> ")
        } else {
            let n = self.cx.stack.len();
            format!("{} -> {} -> ... -> {}", self.cx.stack[0], self.cx.stack[1], self.cx.stack[n - 1])
        };
        self.err(Code::IncludeSize, span, msg).set_label("too deep here").help = Some(format!(
            "the chain so far: {chain}; have one runbook include the parts side by side instead of each part including the next"
        ));
        true
    }

    pub(super) fn include(
        &mut self,
        inc: &Spanned<RawInclude>,
        what: &str,
        base: Scope<'_>,
    ) -> Option<IncludeSpec> {
        let r = &inc.value;
        let path = resolve_include(&self.source.path, &r.file.value);
        let mut chain: Option<Vec<String>> = None;
        if let Some(pos) = self.cx.stack.iter().position(|p| *p == path) {
            let mut c: Vec<String> = self.cx.stack[pos..].to_vec();
            c.push(path.clone());
            chain = Some(c);
        }
        if let Some(chain) = chain {
            let msg = if chain.len() == 2 {
                format!("runbook `{}` includes itself", chain[0])
            } else {
                format!("runbooks include each other: {}", chain.join(" -> "))
            };
            self.err(Code::IncludeCycle, r.file.span, msg).help = Some(
                "a runbook cannot run itself, directly or through another runbook; remove this include"
                    .into(),
            );
            return None;
        }
        if !self.cx.cache.contains_key(&path) && self.too_deep(r.file.span, &path, 0) {
            return None;
        }
        let child = match self.cx.cache.get(&path) {
            Some(c) => c.clone(),
            None => match self.loader.load(&path) {
                Err(e) => {
                    self.err(
                        Code::IncludeMissing,
                        r.file.span,
                        format!("cannot read included runbook `{}`: {e}", r.file.value),
                    )
                    .help =
                        Some(format!("the path is relative to this runbook's folder (resolved to `{path}`)"));
                    self.cx.cache.insert(path.clone(), None);
                    return None;
                }
                Ok(text) if !is_runbook_text(&text) => {
                    // Not a runbook: say so in one line and never quote it. The file named
                    // could be anything readable (`/proc/self/environ`, an `.env` file), and
                    // a diagnostic would show its lines.
                    self.err(
                        Code::IncludeRefused,
                        r.file.span,
                        format!("included file `{}` is not a runbook", r.file.value),
                    )
                    .help = Some(format!(
                        "an included runbook is a TOML file with a `[runbook]` table; `{path}` is not one (its content is not shown)"
                    ));
                    self.cx.cache.insert(path.clone(), None);
                    return None;
                }
                Ok(text) => {
                    self.cx.stack.push(path.clone());
                    let (child, mut diags) = check_in(Source::toml(path.clone(), text), self.loader, self.cx);
                    self.cx.stack.pop();
                    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
                    if errors > 0 {
                        self.err(
                            Code::IncludeInvalid,
                            r.file.span,
                            format!(
                                "included runbook `{}` is not valid ({errors} problem{})",
                                r.file.value,
                                if errors == 1 { "" } else { "s" }
                            ),
                        )
                        .help = Some(format!("its problems are listed under `{path}`"));
                    }
                    self.diags.append(&mut diags);
                    self.cx.cache.insert(path.clone(), child.clone());
                    child
                }
            },
        };
        let child = match child {
            Some(c) => c,
            None => {
                if self.cx.cache.contains_key(&path)
                    && !self.diags.iter().any(|d| d.code == Code::IncludeInvalid && d.span == r.file.span)
                {
                    self.err(
                        Code::IncludeInvalid,
                        r.file.span,
                        format!("included runbook `{}` is not valid", r.file.value),
                    )
                    .help = Some(format!("check it on its own: `runbook check {path}`"));
                }
                return None;
            }
        };
        let below = self.cx.height.get(&path).copied().unwrap_or(0);
        if below > 0 && self.too_deep(r.file.span, &path, below) {
            return None;
        }
        let place = Place::Field("runbook.params", what);
        let mut params = Vec::new();
        let mut ok = true;
        let given = r.params.clone().unwrap_or_default();
        let lists = crate::foreach::list_sources(&child);
        for (k, v) in &given {
            match child.param(k) {
                None => {
                    let names: Vec<&str> = child.params.iter().map(|p| p.name.as_str()).collect();
                    self.err(
                        Code::IncludeParams,
                        v.span,
                        format!(
                            "runbook `{}` has no parameter `{k}`{}",
                            r.file.value,
                            did_you_mean_suffix(k, names.iter().copied())
                        ),
                    )
                    .help = Some(if names.is_empty() {
                        "it declares no parameters".to_string()
                    } else {
                        format!("its parameters: {}", names.join(", "))
                    });
                    ok = false;
                }
                Some(p) => {
                    let is_template = matches!(&v.value, toml::Value::String(s) if !template::is_literal(s));
                    if !is_template {
                        let typed = params::from_toml(p.ty, &v.value).and_then(|pv| params::check(p, &pv));
                        if let Err(e) = typed {
                            self.err(
                                Code::IncludeParams,
                                v.span,
                                format!("parameter `{k}` of runbook `{}`: {e}", r.file.value),
                            )
                            .help = Some(format!("see `[params.{k}]` in `{path}`"));
                            ok = false;
                        }
                    }
                    let json = self.json_templates(v, place, base, false);
                    if lists.contains(k)
                        && let Some(read) = crate::foreach::run_time_read(&json)
                    {
                        let (message, help) = crate::foreach::run_time_list_problem(k, &r.file.value, &read);
                        let d = self.err(Code::ForEachRunTime, v.span, message);
                        d.set_label("not known when planning");
                        d.help = Some(help);
                        ok = false;
                    }
                    params.push((k.clone(), json));
                }
            }
        }
        for p in &child.params {
            if p.default.is_none() && !given.contains_key(&p.name) {
                self.err(
                    Code::IncludeParams,
                    inc.span,
                    format!(
                        "{what} does not pass the required parameter `{}` of runbook `{}`",
                        p.name, r.file.value
                    ),
                )
                .help = Some(format!("add it: `params = {{ {} = ... }}`", p.name));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let index = match self.include_index.get(&path) {
            Some(i) => *i,
            None => {
                self.includes.push(child);
                self.include_index.insert(path, self.includes.len() - 1);
                self.includes.len() - 1
            }
        };
        Some(IncludeSpec { file: r.file.value.clone(), span: r.file.span, child: index, params })
    }
}
