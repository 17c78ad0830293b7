//! What surrounds a step's action: its compensation, the preconditions (of the runbook and
//! of a step) and the runbook's escalations.

use super::*;

impl Validator<'_> {
    pub(super) fn compensation(
        &mut self,
        c: &Spanned<RawAction>,
        what: &str,
        base: Scope<'_>,
        defaults: &Defaults,
    ) -> Option<Compensation> {
        let r = &c.value;
        let label = format!("the compensation of {what}");
        let scope = Scope { self_outputs: true, ..base };
        let a = ActionRef::of_compensation(r);
        self.one_kind(&a, Carrier::Compensation, c.span, &label)?;
        let action = self.action(a, &label, scope, defaults);
        let env = self.env(r.env.as_ref(), &label, scope);
        let timeout = r.timeout.as_ref().and_then(|t| self.limit(t, "compensate.timeout"));
        let retry = match &r.retry {
            Some(rt) => self.retry(rt, "compensate.retry"),
            None => RetryPolicy::default(),
        };
        let mut outputs: Vec<String> = Vec::new();
        for o in r.outputs.as_deref().unwrap_or(&[]) {
            if r.run.is_none() && r.cmd.is_none() {
                self.err(Code::MisplacedKey, o.span, format!("`outputs` is not allowed on {label}"))
                    .help = Some("only a `run` or `cmd` compensation writes outputs (to `$RUNBOOK_OUTPUT`); remove `outputs`".into());
                break;
            }
            if !self.check_id(o, "output") {
                continue;
            }
            if outputs.contains(&o.value) {
                self.err(
                    Code::DuplicateId,
                    o.span,
                    format!("output `{}` of {label} is listed twice", o.value),
                )
                .help = Some("list each output once".into());
                continue;
            }
            outputs.push(o.value.clone());
        }
        let action = action?;
        let idempotent = r.idempotent.unwrap_or(match &action {
            Action::Http(h) => h.method == "GET" || h.method == "HEAD",
            _ => false,
        });
        Some(Compensation {
            action,
            env,
            dir: r.dir.as_ref().map(|d| d.value.clone()),
            timeout: timeout.or(defaults.timeout),
            retry,
            idempotent,
            outputs,
        })
    }

    pub(super) fn preconditions(
        &mut self,
        map: &[Unit<RawPrecondition>],
        step: Option<&str>,
        what: &str,
    ) -> Vec<Precondition> {
        let units: Vec<(Spanned<String>, &RawPrecondition)> =
            map.iter().filter_map(|u| u.raw.as_ref().map(|r| (u.id.clone(), r))).collect();
        for u in map {
            self.check_id(&u.id, "precondition");
        }
        self.precondition_list(&units, step, what, false)
    }

    pub(super) fn precondition_list(
        &mut self,
        units: &[(Spanned<String>, &RawPrecondition)],
        step: Option<&str>,
        what: &str,
        finally: bool,
    ) -> Vec<Precondition> {
        let mut out = Vec::new();
        for (id, r) in units {
            if step.is_some() {
                self.check_id(id, "precondition");
            }
            let label = format!("precondition `{}` of {what}", id.value);
            let base = Scope { step, finally, ..Scope::new(Place::Unset) };
            let a = ActionRef::of_precondition(r);
            let counted = self.one_kind(&a, Carrier::Precondition, id.span, &label);
            let action = counted.and_then(|_| self.action(a, &label, base, &Defaults::default()));
            let message = r.message.as_ref().map(|m| {
                self.template(m, Mode::Plain, Scope { place: Place::Field("message", &label), ..base })
            });
            let env = self.env(r.env.as_ref(), &label, base);
            let timeout = r
                .timeout
                .as_ref()
                .and_then(|t| self.limit(t, "precondition timeout"))
                .unwrap_or(Duration::from_secs(60));
            // Preconditions only read: SQL runs in a read-only transaction whatever the file
            // says, HTTP only GETs or HEADs, and writing shell commands are flagged.
            let action = action.map(|a| match a {
                Action::Sql(mut spec) => {
                    spec.read_only = true;
                    Action::Sql(spec)
                }
                other => other,
            });
            if let (Some(Action::Http(h)), Some(raw)) = (&action, &r.http)
                && !crate::syntax::READ_METHODS.contains(&h.method.as_str())
            {
                let span = raw.value.method.as_ref().map_or(raw.span, |m| m.span);
                self.err(
                    Code::PreconditionMethod,
                    span,
                    format!("{label} sends a {} request; a precondition only reads", h.method),
                )
                .help = Some(
                    "check with `method = \"GET\"` or `\"HEAD\"`; a request that changes something is a step"
                        .into(),
                );
            }
            if let Some(run) = &r.run {
                for (range, what) in crate::writes::visible_writes(&run.value) {
                    let d = template::inner_span(&self.source, run.span, Some(range));
                    self.push(
                        Diagnostic::warning(Code::PreconditionWrites, &self.source, d, format!("{label} changes something: {what}"))
                            .with_label("writes")
                            .with_help("a precondition only reads (a resume checks it again when the run stopped before passing it); move what it changes into a step, or write to /dev/null"),
                    );
                }
            }
            if let Some(cmd) = &r.cmd {
                let argv: Vec<&str> = cmd.value.iter().map(|a| a.value.as_str()).collect();
                if let Some(what) = crate::writes::argv_writes(&argv) {
                    self.push(
                        Diagnostic::warning(Code::PreconditionWrites, &self.source, cmd.span, format!("{label} changes something: {what}"))
                            .with_label("writes")
                            .with_help("a precondition only reads (a resume checks it again when the run stopped before passing it); move what it changes into a step"),
                    );
                }
            }
            if let Some(query) = r.sql.as_ref().and_then(|q| q.value.query.as_ref())
                && let Some(why) = crate::writes::sql_read_refusal(&query.value)
            {
                self.push(
                    Diagnostic::warning(Code::PreconditionWrites, &self.source, query.span, format!("{label} does more than read: {why}"))
                        .with_label("not a read-only check")
                        .with_help("a SQL precondition is one SELECT (or WITH, VALUES, TABLE, SHOW, EXPLAIN) with no side-effect function; the engine refuses any other at run time. Move what it changes into a step"),
                );
            }
            if let Some(action) = action {
                out.push(Precondition {
                    id: id.value.clone(),
                    action,
                    message,
                    env,
                    dir: r.dir.as_ref().map(|d| d.value.clone()),
                    timeout,
                });
            }
        }
        out
    }

    pub(super) fn escalations(&mut self, units: &[Unit<RawEscalation>]) -> Vec<Escalation> {
        let mut out = Vec::new();
        for u in units {
            self.check_id(&u.id, "escalation");
            let Some(r) = &u.raw else { continue };
            let what = format!("escalation `{}`", u.id.value);
            let after = self.limit(&r.after, &format!("escalation.{}.after", u.id.value));
            let notify = self.notify(&r.notify, &what, Scope::new(Place::Unset));
            if let (Some(after), Some(notify)) = (after, notify) {
                out.push(Escalation { id: u.id.value.clone(), after, notify });
            }
        }
        out
    }
}
