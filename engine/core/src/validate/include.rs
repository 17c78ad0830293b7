//! `runbook` steps: included runbooks, checked through the [`Loader`].

use super::*;

impl Validator<'_> {
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
                    let (child, mut diags) = check_in(Source::new(path.clone(), text), self.loader, self.cx);
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
        let place = Place::Field("runbook.params", what);
        let mut params = Vec::new();
        let mut ok = true;
        let given = r.params.clone().unwrap_or_default();
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
                    params.push((k.clone(), self.json_templates(v, place, base, false)));
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
