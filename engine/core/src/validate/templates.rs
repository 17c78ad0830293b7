//! Templates and expressions: what each one reads, checked against its [`Scope`], and the
//! placeholder context of trial renders.

use super::*;

impl Validator<'_> {
    pub(super) fn template(&mut self, s: &SpannedString, mode: Mode, scope: Scope<'_>) -> Template {
        let t = Template { text: s.value.clone(), span: s.span };
        if template::is_literal(&s.value) {
            return t;
        }
        if let Err(e) = template::limits(&s.value, false) {
            let span = template::inner_span(&self.source, s.span, e.range.clone());
            self.err(
                Code::TemplateLimit,
                span,
                format!("template in {} is too big to check: {}", scope.place, e.message),
            )
            .help = Some(format!(
                "split it: a template may nest at most {} operators, filters or brackets in one tag, open {} blocks at once, and be {} KiB long",
                template::MAX_NESTING,
                template::MAX_BLOCK_DEPTH,
                template::MAX_TEMPLATE_BYTES / 1024
            ));
            return t;
        }
        let analysis = match self.analysed.get(&s.value) {
            Some(a) => a.clone(),
            None => {
                let a = template::analyse(&s.value, mode).map(Arc::new);
                self.analysed.insert(s.value.clone(), a.clone());
                a
            }
        };
        match analysis {
            Err(e) => {
                let span = template::inner_span(&self.source, s.span, e.range.clone());
                self.err(
                    Code::TemplateSyntax,
                    span,
                    format!("template syntax error in {}: {}", scope.place, e.message),
                )
                .help = Some("templates use minijinja syntax: `{{ params.name }}`".into());
            }
            Ok(vars) => {
                let before = self.diags.len();
                self.check_vars(&vars, s, scope);
                if self.diags.len() == before
                    && reads_secret(&vars)
                    && let Some(range) = template::secret_transform(&s.value, mode)
                {
                    let span = template::inner_span(&self.source, s.span, Some(range));
                    self.secret_transformed(span, scope);
                }
                let trial = self.diags.len() == before
                    && (template::may_call(&s.value) || template::may_cost(&s.value));
                if let Some(Err(e)) = trial.then(|| template::render(&s.value, mode, self.placeholder())) {
                    let span = template::inner_span(&self.source, s.span, e.range.clone());
                    if e.too_costly {
                        self.err(
                            Code::TemplateLimit,
                            span,
                            format!("template in {} costs too much: {}", scope.place, e.message),
                        )
                        .help = Some(format!(
                            "a template may take at most {} operations and render at most {} MiB: loop over less, or do the work in the step's script",
                            template::MAX_FUEL,
                            template::MAX_RENDERED_BYTES >> 20
                        ));
                    } else if e.unknown_callable {
                        self.err(
                            Code::TemplateSyntax,
                            span,
                            format!("template error in {}: {}", scope.place, e.message),
                        )
                        .help = Some(
                            "see the book's template reference for the filters and functions available"
                                .into(),
                        );
                    }
                }
            }
        }
        t
    }

    pub(super) fn expr(&mut self, s: &SpannedString, scope: Scope<'_>) -> Expr {
        let mut static_only = true;
        if let Err(e) = template::limits(&s.value, true) {
            self.err(
                Code::TemplateLimit,
                s.span,
                format!("{} is too big to check: {}", scope.place, e.message),
            )
            .help = Some(format!(
                "split the expression: it may nest at most {} operators, filters or brackets",
                template::MAX_NESTING
            ));
            return Expr { text: s.value.clone(), span: s.span, static_only };
        }
        match template::expr_vars(&s.value) {
            Err(e) => {
                let span = template::inner_span(&self.source, s.span, e.range.clone());
                self.err(
                    Code::InvalidExpression,
                    span,
                    format!("{} does not compile: {}", scope.place, e.message),
                )
                .help = Some(
                    "expressions use minijinja syntax without braces, e.g. `params.environment != 'sandbox'`"
                        .into(),
                );
            }
            Ok(vars) => {
                static_only = vars
                    .iter()
                    // An instance's element is known when the plan is made, like a parameter.
                    .all(|v| {
                        v == "params"
                            || v.starts_with("params.")
                            || v.starts_with("runbook")
                            || v == "item"
                            || v == "item_index"
                    });
                let before = self.diags.len();
                self.check_vars(&vars, s, scope);
                if self.diags.len() == before && reads_secret(&vars) {
                    // An expression computes a value from what it reads: no plain form.
                    let span = var_span(&self.source, s, "secrets");
                    self.secret_transformed(span, scope);
                }
                let trial = self.diags.len() == before
                    && (template::may_call(&s.value) || template::may_cost(&s.value));
                if let Some(Err(e)) = trial.then(|| template::eval(&s.value, self.placeholder())) {
                    let span = template::inner_span(&self.source, s.span, e.range.clone());
                    if e.too_costly {
                        self.err(
                            Code::TemplateLimit,
                            span,
                            format!("{} costs too much: {}", scope.place, e.message),
                        )
                        .help = Some(format!(
                            "an expression may take at most {} operations: test less, or do the work in a step",
                            template::MAX_FUEL
                        ));
                    } else if e.unknown_callable {
                        self.err(Code::InvalidExpression, span, format!("{}: {}", scope.place, e.message)).help =
                            Some("see the book's template reference for the filters, tests and functions available".into());
                    }
                }
            }
        }
        Expr { text: s.value.clone(), span: s.span, static_only }
    }

    /// A template or expression that computes something from a secret (RB057).
    fn secret_transformed(&mut self, span: Span, scope: Scope<'_>) {
        self.err(
            Code::SecretTransformed,
            span,
            format!("a secret is transformed in {}: only its plain value can be hidden", scope.place),
        )
        .set_label("makes text the redactor has never seen")
        .help = Some(format!(
            "write the secret alone in its tag, `{{{{ secrets.NAME }}}}` or `{{{{ secrets.NAME | FILTER }}}}` with FILTER one of {}, outside `set`, `filter`, `macro` and `for` blocks; to send another form of it, declare that form as its own secret",
            template::SECRET_FILTERS.map(|f| format!("`{f}`")).join(", ")
        ));
    }

    pub(super) fn template_map(
        &mut self,
        map: Option<&BTreeMap<String, SpannedString>>,
        key: &str,
        what: &str,
        base: Scope<'_>,
        secrets: bool,
    ) -> Vec<(String, Template)> {
        let Some(map) = map else { return Vec::new() };
        map.iter()
            .map(|(k, v)| {
                let place = Place::Keyed(key, k, what);
                (k.clone(), self.template(v, Mode::Plain, Scope { place, ..base }.secrets(secrets)))
            })
            .collect()
    }

    /// Check every string leaf of a TOML value as a template; return it as JSON.
    pub(super) fn json_templates(
        &mut self,
        v: &Spanned<toml::Value>,
        place: Place<'_>,
        base: Scope<'_>,
        secrets: bool,
    ) -> serde_json::Value {
        fn leaves<'v>(v: &'v toml::Value, out: &mut Vec<&'v str>) {
            match v {
                toml::Value::String(s) => out.push(s),
                toml::Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
                toml::Value::Table(t) => t.values().for_each(|x| leaves(x, out)),
                _ => {}
            }
        }
        let mut strings = Vec::new();
        leaves(&v.value, &mut strings);
        for s in strings {
            let spanned = Spanned::new(s.to_string(), v.span);
            self.template(&spanned, Mode::Plain, Scope { place, ..base }.secrets(secrets));
        }
        serde_json::to_value(&v.value).unwrap_or(serde_json::Value::Null)
    }

    pub(super) fn check_vars(&mut self, vars: &BTreeSet<String>, s: &SpannedString, scope: Scope<'_>) {
        for var in vars {
            let parts: Vec<&str> = var.split('.').collect();
            let span = var_span(&self.source, s, var);
            let root = parts[0];
            if scope.locals.contains(&root) || TEMPLATE_FUNCTIONS.contains(&root) {
                continue;
            }
            match root {
                "item" | "item_index" => {
                    let inside = scope.step.and_then(|id| self.steps.get(id)).is_some_and(|s| s.for_each);
                    if !inside {
                        self.err(
                            Code::ItemOutside,
                            span,
                            format!("{} uses `{root}` outside a `for-each` step", scope.place),
                        )
                        .set_label("no element here")
                        .help = Some(format!(
                            "`{root}` is set in the steps that have `for-each = \"LIST_PARAM\"` (their templates, `env`, preconditions and compensation); add `for-each` to the step, or use `params`"
                        ));
                    }
                }
                "params"
                    if parts.get(1).is_some_and(|n| {
                        self.params.get(*n).is_some_and(|t| t.is_some_and(|t| t.element().is_some()))
                    }) =>
                {
                    let name = parts.get(1).copied().unwrap_or_default();
                    self.err(
                        Code::ListInTemplate,
                        span,
                        format!("{} reads list parameter `{name}`", scope.place),
                    )
                    .set_label("a list has no one text form")
                    .help = Some(format!(
                        "a list is read one element at a time: give the step `for-each = \"{name}\"` and write `{{{{ item }}}}`"
                    ));
                }
                "params" => {
                    if let Some(name) = parts.get(1)
                        && !self.params.contains_key(*name)
                    {
                        let names: Vec<&str> = few(self.params.keys().map(String::as_str));
                        let suggestion = did_you_mean(name, names.iter().copied());
                        let help = match suggestion {
                            Some(s) => {
                                format!("use `params.{s}`, or declare `[params.{name}]` with a `type`")
                            }
                            None => format!("declare it: `[params.{name}]` with a `type`"),
                        };
                        let d = Diagnostic::error(
                            Code::UndeclaredReference,
                            &self.source,
                            span,
                            format!(
                                "{} uses undeclared parameter `{name}`{}",
                                scope.place,
                                suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
                            ),
                        )
                        .with_label("not declared")
                        .with_help(help);
                        self.push(d);
                    }
                }
                "secrets" => {
                    let Some(name) = parts.get(1) else {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!("{} reads `secrets` without naming one", scope.place),
                        )
                        .help = Some(
                            "name secrets with a dot: `{{ secrets.NAME }}` (subscripts cannot be checked)"
                                .into(),
                        );
                        continue;
                    };
                    if !scope.secrets {
                        let help = if scope.place.is_command() {
                            format!(
                                "pass it through `env`: `env = {{ {name} = \"{{{{ secrets.{name} }}}}\" }}`, then use \"${name}\" in the command"
                            )
                        } else {
                            "secrets may only go in `env` values, http `url`/`headers`/`query`/`body`/`json`, sql `url`/`args` and notify `webhook`".to_string()
                        };
                        self.err(
                            Code::SecretExposed,
                            span,
                            format!("secret `{name}` is interpolated into {}", scope.place),
                        )
                        .set_label("would be shown in plans, logs or `ps`")
                        .help = Some(help);
                        continue;
                    }
                    if !self.secrets.contains(*name) {
                        let names: Vec<&str> = few(self.secrets.iter().map(String::as_str));
                        let d = Diagnostic::error(
                            Code::UndeclaredReference,
                            &self.source,
                            span,
                            format!(
                                "{} uses undeclared secret `{name}`{}",
                                scope.place,
                                did_you_mean_suffix(name, names.iter().copied())
                            ),
                        )
                        .with_label("not declared")
                        .with_help(format!("declare it: `[secrets.{name}]` with `env = \"{name}\"`"));
                        self.push(d);
                    }
                }
                "steps" => self.check_step_ref(&parts, span, scope),
                "run" => match parts.get(1).copied() {
                    _ if !scope.run_vars => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!("{} cannot use `{var}`", scope.place),
                        )
                        .help = Some(
                            "it is rendered before the run exists; use `params` and `runbook.name`".into(),
                        );
                    }
                    None | Some("id") | Some("started_at") => {}
                    Some("status") if scope.finally => {}
                    Some("status") => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!(
                                "{} uses `run.status`, which is only set in `finally` steps",
                                scope.place
                            ),
                        )
                        .help = Some("move this into a `[finally.*]` step".into());
                    }
                    Some(other) => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!(
                                "{} uses unknown `run.{other}`{}",
                                scope.place,
                                did_you_mean_suffix(other, ["id", "started_at", "status"])
                            ),
                        )
                        .help = Some("`run` has `id`, `started_at` and, in `finally` steps, `status`".into());
                    }
                },
                "runbook" => match parts.get(1).copied() {
                    None | Some("name") | Some("title") => {}
                    Some(other) => {
                        self.err(
                            Code::UndeclaredReference,
                            span,
                            format!(
                                "{} uses unknown `runbook.{other}`{}",
                                scope.place,
                                did_you_mean_suffix(other, ["name", "title"])
                            ),
                        )
                        .help = Some("`runbook` has `name` and `title`".into());
                    }
                },
                other => {
                    let mut roots = vec!["params", "secrets", "steps", "run", "runbook"];
                    if scope.step.and_then(|id| self.steps.get(id)).is_some_and(|s| s.for_each) {
                        roots.extend(["item", "item_index"]);
                    }
                    roots.extend(scope.locals.iter().copied());
                    let d = Diagnostic::error(
                        Code::UndeclaredReference,
                        &self.source,
                        span,
                        format!(
                            "{} uses unknown variable `{other}`{}",
                            scope.place,
                            did_you_mean_suffix(other, roots.iter().copied())
                        ),
                    )
                    .with_label("unknown variable")
                    .with_help(format!(
                        "templates here can read {}",
                        roots.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
                    ));
                    self.push(d);
                }
            }
        }
    }

    pub(super) fn check_step_ref(&mut self, parts: &[&str], span: Span, scope: Scope<'_>) {
        let Some(target) = parts.get(1).copied() else {
            self.err(
                Code::UndeclaredReference,
                span,
                format!("{} reads `steps` without naming a step", scope.place),
            )
            .help = Some("write `steps.ID.outputs.NAME`".into());
            return;
        };
        let Some(info) = self.steps.get(target) else {
            let mut names: Vec<&str> = few(self.steps.keys().map(String::as_str));
            names.sort_unstable();
            self.err(
                Code::UndeclaredReference,
                span,
                format!(
                    "{} uses the outputs of unknown step `{target}`{}",
                    scope.place,
                    did_you_mean_suffix(target, names.iter().copied())
                ),
            )
            .help = Some("write `steps.ID.outputs.NAME` with the id of a step of this runbook".into());
            return;
        };
        let outputs = info.outputs.clone();
        if info.for_each && scope.step != Some(target) {
            self.err(
                Code::ForEachOutputs,
                span,
                format!("{} uses the outputs of `{target}`, a `for-each` step", scope.place),
            )
            .set_label("one set of outputs per instance")
            .help = Some(format!(
                "`{target}` runs once per element, each instance with outputs of its own; read them inside `{target}` (its compensation may), or write what later steps need to a file they read"
            ));
            return;
        }
        let Some(current) = scope.step else {
            self.err(Code::UndeclaredReference, span, format!("{} cannot use step outputs", scope.place))
                .help = Some("step outputs exist only inside steps, after the step that makes them".into());
            return;
        };
        let is_self = target == current;
        let is_ancestor = self.is_ancestor(current, target);
        if is_self && !scope.self_outputs {
            self.err(Code::OutputNotAncestor, span, format!("{} uses its own outputs", scope.place)).help =
                Some("a step's outputs exist only after it finishes; its `compensate` may use them".into());
            return;
        }
        if !is_self && !is_ancestor {
            self.err(
                Code::OutputNotAncestor,
                span,
                format!("{} uses the outputs of `{target}`, which is not among its ancestors", scope.place),
            )
            .set_label("may not have run yet")
            .help = Some(format!(
                "add `\"{target}\"` to the `needs` of `{current}` (directly or through another step)"
            ));
            return;
        }
        match parts.get(2).copied() {
            None => {}
            Some("outputs") => {
                if let (Some(name), Some(outputs)) = (parts.get(3), outputs)
                    && !outputs.iter().any(|o| o == name)
                {
                    let list = if outputs.is_empty() {
                        "none".to_string()
                    } else {
                        format!("`{}`", outputs.join("`, `"))
                    };
                    self.err(
                        Code::UndeclaredReference,
                        span,
                        format!(
                            "step `{target}` has no output `{name}`{}",
                            did_you_mean_suffix(name, outputs.iter().map(String::as_str))
                        ),
                    )
                    .help = Some(format!(
                        "its outputs: {list}; a `run`/`cmd` step declares them with `outputs = [...]`"
                    ));
                }
            }
            Some(other) => {
                self.err(
                    Code::UndeclaredReference,
                    span,
                    format!("{} uses `steps.{target}.{other}`; steps only have `outputs`", scope.place),
                )
                .help = Some(format!("write `steps.{target}.outputs.NAME`"));
            }
        }
    }

    /// A context with a value of the right shape for every declared name, so that a trial
    /// render finds unknown filters and functions.
    pub(super) fn placeholder(&mut self) -> &template::Context {
        if self.placeholder.is_none() {
            let json = self.placeholder_context(&self.param_defaults);
            self.placeholder = Some(template::Context::new(&json));
        }
        self.placeholder.get_or_insert_with(|| template::Context::new(&serde_json::Value::Null))
    }

    pub(super) fn placeholder_context(&self, params: &[Param]) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let mut p = Map::new();
        for (name, ty) in &self.params {
            let declared = params.iter().find(|x| &x.name == name);
            let v = match declared.and_then(|d| d.default.clone()) {
                Some(d) => serde_json::to_value(d).unwrap_or(Value::Null),
                None => match ty {
                    Some(ParamType::Integer) => json!(0),
                    Some(ParamType::Number) => json!(0.0),
                    Some(ParamType::Boolean) => json!(false),
                    _ => json!(format!("<params.{name}>")),
                },
            };
            p.insert(name.clone(), v);
        }
        let s: Map<String, Value> =
            self.secrets.iter().map(|n| (n.clone(), template::placeholder(&format!("secret:{n}")))).collect();
        let mut steps = Map::new();
        for (id, info) in &self.steps {
            let outs: Map<String, Value> = info
                .outputs
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|o| {
                    let v = template::placeholder(&format!("output:{id}.{o}"));
                    (o, v)
                })
                .collect();
            steps.insert(id.clone(), json!({ "outputs": outs }));
        }
        json!({
            "params": p,
            "secrets": s,
            "steps": steps,
            "run": { "id": template::placeholder("run.id"), "started_at": template::placeholder("run.started_at"), "status": template::placeholder("run.status") },
            "runbook": { "name": "<runbook.name>", "title": "<runbook.title>" },
            "status": 200, "headers": {}, "body": "", "json": null, "latency_ms": 0,
            "rows": [], "rows_affected": 0,
            "item": "<item>", "item_index": 0,
        })
    }
}

/// True when `vars` (dotted paths) read a secret.
fn reads_secret(vars: &BTreeSet<String>) -> bool {
    vars.iter().any(|v| v == "secrets" || v.starts_with("secrets."))
}

pub(super) fn var_span(source: &Source, s: &SpannedString, var: &str) -> Span {
    match s.value.find(var) {
        Some(pos) => template::inner_span(source, s.span, Some(pos..pos + var.len())),
        None => {
            let root = var.split('.').next().unwrap_or(var);
            match s.value.find(root) {
                Some(pos) => template::inner_span(source, s.span, Some(pos..pos + root.len())),
                None => s.span,
            }
        }
    }
}
