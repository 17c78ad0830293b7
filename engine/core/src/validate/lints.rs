//! Where a template value lands in command text: shell contexts (RB045, RB047, RB048) and
//! values that would begin an argument as an option (RB059).

use super::*;

impl Validator<'_> {
    // ----- templates ---------------------------------------------------------------------

    /// Where each value of a `run` text lands (see `shell`): refused inside single quotes
    /// or a quoted heredoc (RB045), and where the shell reads it as code unless its type
    /// makes it inert (RB047); `{% autoescape %}` is refused (RB048).
    pub(super) fn shell_contexts(&mut self, run: &SpannedString, place: Place<'_>) {
        let masked = template::mask_shell(&run.value);
        for range in &masked.autoescape {
            let span = template::inner_span(&self.source, run.span, Some(range.clone()));
            self.err(Code::QuotingOff, span, format!("`{{% autoescape %}}` in {place}"))
                .set_label("values in `run` text are always bound")
                .help = Some("remove the tag: values in `run` text reach the shell through variables whatever it says; for trusted shell code, `{{ x | unsafe_raw }}` writes one value as code, with the warning RB046".into());
        }
        if masked.sites.is_empty() {
            return;
        }
        let sites = match crate::shell::contexts(&masked.text) {
            Ok(sites) => sites,
            Err(e) => {
                self.err(Code::ShellCodeContext, run.span, format!("the shell syntax of {place} cannot be followed: {e}"))
                    .set_label("values cannot be placed safely")
                    .help = Some("check the quotes and parentheses of the script; runbook must know where each value stands".into());
                return;
            }
        };
        let mut group = None;
        for site in sites {
            let Some((range, expr)) = masked.sites.get(site.index).cloned() else { continue };
            let span = template::inner_span(&self.source, run.span, Some(range.clone()));
            let shown = &run.value[range];
            // The first value of a word that is an argument: an option if it starts with `-`.
            if site.argument.is_some() && std::mem::replace(&mut group, site.argument) != site.argument {
                self.option_value(&expr, span, shown, place, "`-- ");
            }
            match site.context {
                crate::shell::Where::Word | crate::shell::Where::Expanded => {}
                crate::shell::Where::Quoted(_) if self.inert_expr(&expr) => {}
                crate::shell::Where::Quoted(what) => {
                    self.err(Code::TemplateInQuotes, span, format!("template inside {what} in {place}"))
                        .set_label("a value cannot expand here")
                        .help = Some(format!(
                        "a value reaches the shell through a variable, which does not expand inside {what}; write `{shown}` outside them, or inside double quotes (`\"...{shown}...\"`), or use an unquoted heredoc (`<<EOF`)"
                    ));
                }
                crate::shell::Where::Code(why) => {
                    if self.inert_expr(&expr) {
                        continue;
                    }
                    self.err(
                        Code::ShellCodeContext,
                        span,
                        format!("template in {why} in {place}, where the shell reads a value as code"),
                    )
                    .set_label("a value here would run")
                    .help = Some(format!(
                        "only a value whose type makes it inert may stand here: an `integer`, `number` or `boolean` parameter or approval input, or one whose `enum` lists only plain words; for a command that runs a script, pass the value as an argument of its own (`bash -c '... \"$1\"' _ {shown}`); trusted shell code may use `{{{{ x | unsafe_raw }}}}` (warning RB046)"
                    ));
                }
            }
        }
    }

    /// `cmd` elements that a program reads as code (`bash -c`, `ssh`, `python -c`...).
    pub(super) fn argv_contexts(&mut self, argv: &[SpannedString], place: Place<'_>) {
        let words: Vec<String> = argv
            .iter()
            .map(|e| {
                let m = template::mask_shell(&e.value);
                if m.sites.is_empty() { m.text } else { format!("{}{}", m.text, crate::shell::MARK) }
            })
            .collect();
        for (k, argument) in crate::shell::argv_options(&words).into_iter().enumerate() {
            let e = &argv[k];
            if let Some((range, expr)) =
                template::mask_shell(&e.value).sites.first().cloned().filter(|_| argument)
            {
                let span = template::inner_span(&self.source, e.span, Some(range.clone()));
                self.option_value(&expr, span, &e.value[range], place, "an element `--` before `");
            }
        }
        for (k, why) in crate::shell::argv_code(&words).into_iter().enumerate() {
            let Some(why) = why else { continue };
            let e = &argv[k];
            let masked = template::mask_shell(&e.value);
            for (range, expr) in masked.sites {
                if self.inert_expr(&expr) {
                    continue;
                }
                let span = template::inner_span(&self.source, e.span, Some(range.clone()));
                let shown = &e.value[range];
                self.err(
                    Code::ShellCodeContext,
                    span,
                    format!("template in {why} in {place}, where a program reads a value as code"),
                )
                .set_label("a value here would run")
                .help = Some(format!(
                    "only an `integer`, `number` or `boolean` parameter, or a `string` parameter whose `enum` lists only plain words, may stand here; pass the value as an argument of its own instead: `[\"bash\", \"-c\", \"... \\\"$1\\\"\", \"_\", \"{shown}\"]`"
                ));
            }
        }
    }

    /// RB059: a value that begins an argument (where a program reads options) and that is
    /// known to start with `-`: a string parameter's `default` or a member of its `enum`.
    /// Any other value is checked when it is bound, and refused there (`shell::option_value`).
    pub(super) fn option_value(&mut self, expr: &str, span: Span, shown: &str, place: Place<'_>, dash: &str) {
        let Some(name) = expr.trim().strip_prefix("params.") else { return };
        let Some(p) = self.param_defaults.iter().find(|p| p.name == name) else { return };
        let known = p.default.iter().chain(p.allowed.iter().flatten()).find_map(|v| match v {
            ParamValue::String(s) if crate::shell::option_value(s).is_some() => Some(s.clone()),
            _ => None,
        });
        let Some(value) = known else { return };
        self.err(
            Code::OptionValue,
            span,
            format!("parameter `{name}` may be `{}`, which starts with `-`, and `{shown}` stands as a whole argument in {place}, where a program reads it as an option", value.escape_debug()),
        )
        .set_label("this value would be an option")
        .help = Some(format!(
            "a value that starts with `-` is refused where it begins an argument; if it is data (a file or a branch named `-x`), write {dash}{shown}` where the program accepts `--`, or glue it to its option (`--name={shown}`); if it is an option, write the options in the runbook and let the parameter choose among plain words"
        ));
    }

    /// A template expression whose value cannot be code: a typed parameter.
    pub(super) fn inert_expr(&self, expr: &str) -> bool {
        let expr = expr.trim();
        // An instance's position is a number; its element is inert when every element of
        // its list is (numbers, or strings of an `enum` of plain words).
        if expr == "item_index" {
            return true;
        }
        let list = if expr == "item" { self.item_of.as_deref() } else { None };
        if let Some(p) = list.and_then(|name| self.param_defaults.iter().find(|p| p.name == name)) {
            return match p.ty {
                ParamType::IntegerList | ParamType::NumberList => true,
                ParamType::StringList => p.allowed.as_ref().is_some_and(|allowed| {
                    allowed.iter().all(|v| matches!(v, ParamValue::String(s) if crate::shell::inert(s)))
                }),
                ParamType::String | ParamType::Integer | ParamType::Number | ParamType::Boolean => false,
            };
        }
        if let Some(path) = expr.strip_prefix("steps.")
            && let Some((step, output)) = path.split_once(".outputs.")
        {
            return self.steps.get(step).is_some_and(|s| s.inert.iter().any(|o| o == output));
        }
        let Some(name) = expr.strip_prefix("params.") else { return false };
        let Some(p) = self.param_defaults.iter().find(|p| p.name == name) else { return false };
        match p.ty {
            ParamType::Integer | ParamType::Number | ParamType::Boolean => true,
            // Never read in templates (RB115): its elements are read as `item`.
            ParamType::StringList | ParamType::IntegerList | ParamType::NumberList => false,
            ParamType::String => p.allowed.as_ref().is_some_and(|allowed| {
                allowed.iter().all(|v| matches!(v, ParamValue::String(s) if crate::shell::inert(s)))
            }),
        }
    }
}
