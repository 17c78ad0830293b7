//! One step: its fields, its action and its environment.

use super::*;

impl Validator<'_> {
    // ----- steps: everything else --------------------------------------------------------

    pub(super) fn steps(
        &mut self,
        units: &[Unit<RawStep>],
        section: Section,
        needs: &Needs,
        defaults: &Defaults,
    ) -> Vec<Step> {
        let mut out = Vec::new();
        for u in units {
            let Some(raw) = &u.raw else { continue };
            if let Some(step) = self.step(u, raw, section, needs, defaults) {
                out.push(step);
            }
        }
        self.item_of = None;
        out
    }

    pub(super) fn step(
        &mut self,
        u: &Unit<RawStep>,
        raw: &RawStep,
        section: Section,
        needs: &Needs,
        defaults: &Defaults,
    ) -> Option<Step> {
        let id = u.id.value.as_str();
        let finally = section == Section::Finally;
        let what = if finally { format!("finally step `{id}`") } else { format!("step `{id}`") };
        let base = Scope { step: Some(id), finally, ..Scope::new(Place::Unset) };
        // `item` in this step's templates is an element of this list (see `inert_expr`).
        self.item_of = raw.for_each.as_ref().map(|f| f.value.clone());

        let title = raw
            .title
            .as_ref()
            .map(|t| self.template(t, Mode::Plain, Scope { place: Place::Field("title", &what), ..base }));
        // A `finally` step runs whatever became of the run, when nobody may be there to
        // answer: it never asks, so a question written there is refused, not ignored
        // (ARCHITECTURE.md, "Console and worker write paths (red team adv19a)").
        let confirm = match &raw.confirm {
            Some(c) if finally => {
                self.err(Code::FinallyConfirm, c.span, format!("`confirm` is not allowed on {what}")).help = Some(
                    "a `finally` step runs however the run ended and never asks; put the question on a main step, or remove `confirm`"
                        .into(),
                );
                None
            }
            Some(t) => {
                Some(self.template(t, Mode::Plain, Scope { place: Place::Field("confirm", &what), ..base }))
            }
            None => None,
        };
        let when =
            raw.when.as_ref().map(|w| self.expr(w, Scope { place: Place::Field("when", &what), ..base }));

        let a = ActionRef::of_step(raw);
        let action = self
            .one_kind(&a, Carrier::Step, u.id.span, &what)
            .and_then(|_| self.action(a, &what, base, defaults));

        // `finally` steps run while the run ends: nothing there may wait for people or run a
        // whole other runbook.
        if finally {
            for (kind, span) in [
                ("approval", raw.approval.as_ref().map(|a| a.span)),
                ("runbook", raw.runbook.as_ref().map(|r| r.span)),
            ] {
                if let Some(span) = span {
                    self.err(Code::MisplacedKey, span, format!("`{kind}` is not allowed on {what}")).help = Some(
                        "`finally` steps must finish on their own (run, cmd, http, sql, notify); put the step in `[steps]`".into(),
                    );
                }
            }
        }
        // An included runbook's outputs are its steps' outputs: name only those.
        if let (Some(Action::Runbook(inc)), Some(declared)) = (&action, &raw.outputs)
            && let Some(child) = self.includes.get(inc.child).cloned()
        {
            let offered: BTreeSet<&str> =
                child.steps.iter().flat_map(|s| s.outputs.iter().map(String::as_str)).collect();
            for name in declared.iter().filter(|n| !offered.contains(n.value.as_str())) {
                let list = offered.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ");
                self.err(
                    Code::UndeclaredReference,
                    name.span,
                    format!(
                        "{what} declares output `{}`, which no step of `{}` produces",
                        name.value, inc.file
                    ),
                )
                .help = Some(if list.is_empty() {
                    format!("`{}` produces no outputs; remove it from `outputs`", name.value)
                } else {
                    format!("the included runbook's steps produce {list}")
                });
            }
        }

        // A `runbook` step runs no process of its own: its included steps carry their own
        // `retry` and `timeout` (adv13a finding 5: these keys were accepted and ignored).
        if raw.runbook.is_some() {
            for (key, span) in [
                ("retry", raw.retry.as_ref().map(|r| r.span)),
                ("timeout", raw.timeout.as_ref().map(|t| t.span)),
            ] {
                if let Some(span) = span {
                    self.err(
                        Code::MisplacedKey,
                        span,
                        format!("`{key}` is not allowed on {what}, a `runbook` step"),
                    )
                    .help = Some(format!(
                        "an include is not retried or timed as a whole; put `{key}` on the steps of the included runbook (or in its `[defaults]`)"
                    ));
                }
            }
        }
        let env = self.env(raw.env.as_ref(), &what, base);
        let timeout = match &raw.timeout {
            Some(t) => self.limit(t, &format!("{}.{id}.timeout", section.table())),
            None => defaults.timeout,
        };
        let retry = match &raw.retry {
            Some(r) => self.retry(r, &format!("{}.{id}.retry", section.table())),
            None => defaults.retry.clone(),
        };
        let estimate = raw.estimate.as_ref().and_then(|e| self.estimate(e));
        let compensate = match &raw.compensate {
            Some(c) if finally => {
                self.err(Code::MisplacedKey, c.span, format!("`compensate` is not allowed on {what}")).help =
                    Some("`finally` steps are never compensated; remove `compensate`".into());
                None
            }
            Some(c) => self.compensation(c, &what, base, defaults).map(Box::new),
            None => None,
        };
        let preconditions = raw
            .preconditions
            .as_ref()
            .map(|p| {
                let units: Vec<(Spanned<String>, &RawPrecondition)> =
                    p.iter().map(|(k, v)| (Spanned::new(k.clone(), u.id.span), v)).collect();
                self.precondition_list(&units, Some(id), &what, finally)
            })
            .unwrap_or_default();

        let action = action?;
        let idempotent = raw.idempotent.unwrap_or(match &action {
            Action::Http(h) => h.method == "GET" || h.method == "HEAD",
            _ => false,
        });
        let outputs = self.steps.get(id).and_then(|s| s.outputs.clone()).unwrap_or_default();
        let for_each = self.for_each(raw, &what);
        Some(Step {
            id: StepId(id.to_string()),
            span: u.id.span,
            title,
            description: raw.description.clone(),
            needs: needs
                .get(id)
                .map(|l| l.iter().map(|(n, _)| StepId(n.clone())).collect())
                .unwrap_or_default(),
            when,
            confirm,
            action,
            env,
            dir: raw.dir.as_ref().map(|d| d.value.clone()),
            outputs,
            timeout,
            retry,
            idempotent,
            on_failure: raw.on_failure.as_ref().map(|f| on_failure(f.value)).unwrap_or(defaults.on_failure),
            compensate,
            preconditions,
            estimate,
            for_each,
            item: None,
        })
    }

    /// A step's `for-each` and `max-parallel` (RB110-RB112, RB117, RB118).
    fn for_each(&mut self, raw: &RawStep, what: &str) -> Option<ForEach> {
        let Some(list) = &raw.for_each else {
            if let Some(m) = &raw.max_parallel {
                self.err(Code::ForEachParallel, m.span, format!("`max-parallel` on {what}, which has no `for-each`"))
                    .help = Some("`max-parallel` on a step bounds its `for-each` instances; the runbook's own is `[runbook] max-parallel`".into());
            }
            return None;
        };
        let mut ok = true;
        let name = list.value.as_str();
        match self.params.get(name) {
            None => {
                let names: Vec<&str> = few(self.params.keys().map(String::as_str));
                self.err(
                    Code::ForEachMissing,
                    list.span,
                    format!(
                        "`for-each` of {what} names undeclared parameter `{name}`{}",
                        did_you_mean_suffix(name, names.iter().copied())
                    ),
                )
                .set_label("not declared")
                .help = Some(format!(
                    "declare it: `[params.{name}]` with `type = \"list\"`; `for-each` names a list parameter (not a template)"
                ));
                ok = false;
            }
            Some(ty) => {
                if let Some(ty) = ty.filter(|t| t.element().is_none()) {
                    self.err(
                        Code::ForEachNotList,
                        list.span,
                        format!(
                            "`for-each` of {what} names parameter `{name}`, which is {}, not a list",
                            ty.as_str()
                        ),
                    )
                    .set_label("not a list")
                    .help = Some(format!(
                        "declare `[params.{name}]` with `type = \"list\"` (and `items` if its elements are numbers)"
                    ));
                    ok = false;
                }
            }
        }
        // A `finally` step's instances run as `finally` steps do: one after the other, in
        // declaration order, each journaled under its own id (i18-fei).
        // A `for-each` include passes its element through its `params` (`{{ item }}`): one
        // that never does would run the same nested runbook, with the same values, once per
        // element (i18-fei).
        if let Some(inc) = &raw.runbook
            && !include_reads_item(&inc.value)
        {
            self.err(
                Code::ForEachInclude,
                list.span,
                format!("`for-each` on {what}: its `params` never pass the element (`{{{{ item }}}}`)"),
            )
            .set_label("each element would run the same included runbook")
            .help = Some("pass the element as a parameter of the included runbook: `runbook = { file = \"...\", params = { region = \"{{ item }}\" } }`".into());
            ok = false;
        }
        let max_parallel = match &raw.max_parallel {
            Some(m) if !syntax::MAX_PARALLEL.contains(&m.value) => {
                self.err(
                    Code::ForEachParallel,
                    m.span,
                    format!("`max-parallel` of {what} is {}; it must be between {} and {}", m.value, syntax::MAX_PARALLEL.start(), syntax::MAX_PARALLEL.end()),
                )
                .help = Some("`max-parallel = 1` runs the instances one after the other; leave it out to run them all at once (within the runbook's `max-parallel`)".into());
                ok = false;
                None
            }
            Some(m) => u32::try_from(m.value).ok(),
            None => None,
        };
        if let (Some(m), Some(f)) = (&raw.max_parallel, &raw.on_failure)
            && f.value == RawOnFailure::Continue
        {
            let d = Diagnostic::error(
                Code::ForEachContinue,
                &self.source,
                f.span,
                format!("{what} has `on-failure = \"continue\"` and `max-parallel`"),
            )
            .with_label("a failed instance would skip the ones queued after it")
            .with_related(m.span, "instances wait in lanes here")
            .with_help("with `max-parallel`, each instance waits for the one `max-parallel` places before it; drop `max-parallel`, or let a failure `compensate` or `stop`");
            self.push(d);
            ok = false;
        }
        ok.then(|| ForEach { param: name.to_string(), span: list.span, max_parallel })
    }

    pub(super) fn action(
        &mut self,
        a: ActionRef<'_>,
        what: &str,
        base: Scope<'_>,
        defaults: &Defaults,
    ) -> Option<Action> {
        self.paths_literal(&a, what);
        if let Some(run) = a.run {
            let place = Place::RunText(what);
            let before = self.diags.len();
            let script = self.template(run, Mode::Shell, Scope { place, ..base });
            let parsed = self.diags.len() == before;
            for range in template::unknown_logic(&run.value).into_iter().filter(|_| parsed) {
                let span = template::inner_span(&self.source, run.span, Some(range));
                self.err(Code::UnknownLogic, span, format!("{place} branches or computes on a value the plan cannot know"))
                    .set_label("the plan would show one branch and the run take another")
                    .help = Some("compute in the step instead: pass the value bare (`{{ steps.x.outputs.y }}` binds it to a variable) and branch in the shell (`if [ \"$v\" = yes ]; then ...`)".into());
            }
            let mut from = 0;
            while let Some(at) = run.value[from..].find("unsafe_raw").map(|i| from + i) {
                from = at + "unsafe_raw".len();
                let span = template::inner_span(&self.source, run.span, Some(at..from));
                let d = Diagnostic::warning(
                    Code::UnsafeRaw,
                    &self.source,
                    span,
                    format!("`unsafe_raw` in {place} writes a value as shell code, unquoted"),
                )
                .with_label("shell quoting is off here")
                .with_help("a value with `;`, `$(...)` or a space changes the command; prefer plain `{{ x }}`, which is always one word, unless the value is trusted shell code");
                self.push(d);
            }
            let shell = match a.shell {
                Some(s) => self.shell(s)?,
                None => defaults
                    .shell
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()),
            };
            // Values are bound with POSIX assignments and references: another interpreter
            // would read them as its own code.
            // The interpreter that reads the text: after `env` (its options and assignments)
            // and `busybox`, the program they start (`["env", "node", "-e"]` is node).
            let mut words = shell.iter().map(|p| p.rsplit('/').next().unwrap_or(p));
            let mut program = words.next().unwrap_or_default();
            while program == "env" || program == "busybox" {
                program = words.find(|w| !w.starts_with('-') && !w.contains('=')).unwrap_or_default();
            }
            if crate::shell::POSIX_SHELLS.contains(&program) {
                self.shell_contexts(run, place);
            } else if let Some((range, _)) = template::mask_shell(&run.value).sites.into_iter().next() {
                let span = template::inner_span(&self.source, run.span, Some(range));
                self.err(
                    Code::ShellCodeContext,
                    span,
                    format!("template in {place}, which runs with `{program}`, not a POSIX shell"),
                )
                .set_label("a value here would be code")
                .help = Some(format!(
                    "values reach `run` text through shell variables, which `{program}` does not read; use a POSIX `shell` (bash, sh), or a `cmd` with the value as an argument of its own"
                ));
            }
            return Some(Action::Run { script, shell });
        }
        if let Some(cmd) = a.cmd {
            if cmd.value.is_empty() || cmd.value[0].value.trim().is_empty() {
                self.err(Code::InvalidValue, cmd.span, format!("the `cmd` of {what} is empty")).help =
                    Some("`cmd` is an argv array: the program first, e.g. `[\"git\", \"status\"]`".into());
                return None;
            }
            let place = Place::Field("cmd", what);
            let argv =
                cmd.value.iter().map(|e| self.template(e, Mode::Plain, Scope { place, ..base })).collect();
            self.argv_contexts(&cmd.value, place);
            return Some(Action::Cmd(argv));
        }
        self.files_inside(&a, what);
        if let Some(h) = a.http {
            return self.http(h, what, base).map(|x| Action::Http(Box::new(x)));
        }
        if let Some(s) = a.sql {
            return self.sql(s, what, base).map(|x| Action::Sql(Box::new(x)));
        }
        if let Some(ap) = a.approval {
            return self.approval(ap, what, base).map(|x| Action::Approval(Box::new(x)));
        }
        if let Some(n) = a.notify {
            return self.notify(n, what, base).map(|x| Action::Notify(Box::new(x)));
        }
        if let Some(r) = a.runbook {
            return self.include(r, what, base).map(|x| Action::Runbook(Box::new(x)));
        }
        None
    }

    pub(super) fn env(
        &mut self,
        env: Option<&BTreeMap<String, SpannedString>>,
        what: &str,
        base: Scope<'_>,
    ) -> Vec<(String, Template)> {
        let Some(env) = env else { return Vec::new() };
        let mut out = Vec::new();
        for (k, v) in env {
            if !is_env_name(k) {
                self.err(
                    Code::InvalidId,
                    v.span,
                    format!("invalid environment variable name `{k}` in {what}"),
                )
                .help = Some(
                    "environment variable names are letters, digits and `_`, not starting with a digit"
                        .into(),
                );
            }
            let t = self.template(
                v,
                Mode::Plain,
                Scope { place: Place::Keyed("env", k, what), ..base }.secrets(true),
            );
            if crate::shell::code_variable(k) {
                for (range, expr) in template::mask_shell(&v.value).sites {
                    if self.inert_expr(&expr) || expr.starts_with("secrets.") {
                        continue;
                    }
                    let span = template::inner_span(&self.source, v.span, Some(range));
                    self.err(
                        Code::ShellCodeContext,
                        span,
                        format!("template in the value of `{k}` in the `env` of {what}, which programs run as code"),
                    )
                    .set_label("a value here would run")
                    .help = Some(format!("`{k}` decides what programs run; write its value in the runbook, or give the parameter an `enum` of plain words"));
                }
            }
            out.push((k.clone(), t));
        }
        out
    }
}

/// Whether an include's `params` read the `for-each` element (`item` or `item_index`) in any
/// string, at any depth.
fn include_reads_item(inc: &RawInclude) -> bool {
    fn reads(v: &toml::Value) -> bool {
        match v {
            toml::Value::String(s) => template::analyse(s, Mode::Plain).is_ok_and(|vars| {
                vars.iter().any(|v| matches!(v.split('.').next(), Some("item" | "item_index")))
            }),
            toml::Value::Array(a) => a.iter().any(reads),
            toml::Value::Table(t) => t.values().any(reads),
            _ => false,
        }
    }
    inc.params.iter().flatten().any(|(_, v)| reads(&v.value))
}
