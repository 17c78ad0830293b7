//! `[params]` and `[secrets]`.

use super::*;

impl Validator<'_> {
    // ----- params and secrets ------------------------------------------------------------

    pub(super) fn params_section(&mut self, units: &[Unit<RawParam>]) -> Vec<Param> {
        let mut out = Vec::new();
        for u in units {
            self.check_id(&u.id, "parameter");
            let ty = u.raw.as_ref().map(|r| param_type(r.ty.value, r.items.as_ref().map(|i| i.value)));
            self.params.insert(u.id.value.clone(), ty);
            if let Some(raw) = &u.raw
                && let Some(p) = self.param(&u.id, raw, "parameter")
            {
                out.push(p);
            }
        }
        out
    }

    pub(super) fn param(&mut self, id: &Spanned<String>, raw: &RawParam, what: &str) -> Option<Param> {
        let ty = param_type(raw.ty.value, raw.items.as_ref().map(|i| i.value));
        let name = &id.value;
        let mut ok = true;
        if let Some(items) = &raw.items
            && ty.element().is_none()
        {
            self.err(
                Code::ListParam,
                items.span,
                format!("`items` is only for list {what}s; `{name}` is {}", ty.as_str()),
            )
            .help = Some(format!("write `type = \"list\"` to make `{name}` a list, or remove `items`"));
            ok = false;
        }
        if ty.element().is_some() && what != "parameter" {
            self.err(Code::ListParam, raw.ty.span, format!("{what} `{name}` cannot be a list")).help =
                Some("only `[params]` may be lists (for `for-each` steps); use a string".into());
            ok = false;
        }
        // `enum` values and `pattern` apply to each element of a list.
        let scalar = ty.element().unwrap_or(ty);
        let pattern = match &raw.pattern {
            Some(p) if scalar != ParamType::String => {
                self.err(
                    Code::MisplacedKey,
                    p.span,
                    format!("`pattern` is only for string {what}s; `{name}` is {}", ty.as_str()),
                )
                .help = Some("remove `pattern`, or use `enum` to restrict the values".into());
                ok = false;
                None
            }
            Some(p) => match Regex::new(&p.value) {
                Ok(_) => Some(p.value.clone()),
                Err(e) => {
                    let detail = e.to_string().lines().last().unwrap_or("").trim().to_string();
                    self.err(Code::InvalidParam, p.span, format!("the pattern of {what} `{name}` does not compile: {detail}"))
                        .help = Some("patterns use Rust regex syntax (https://docs.rs/regex); use a TOML literal string '...' to avoid escaping backslashes".into());
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let allowed = match &raw.allowed {
            Some(list) if list.value.is_empty() => {
                self.err(Code::InvalidParam, list.span, format!("the `enum` of {what} `{name}` is empty"))
                    .help = Some("list the allowed values, or remove `enum`".into());
                ok = false;
                None
            }
            Some(list) => {
                let mut values = Vec::new();
                for v in &list.value {
                    match params::from_toml(scalar, v) {
                        Ok(pv) => values.push(pv),
                        Err(e) => {
                            self.err(
                                Code::InvalidParam,
                                list.span,
                                format!("the `enum` of {what} `{name}` has a value of the wrong type: {e}"),
                            )
                            .help = Some(format!("every `enum` value must be {}", scalar.as_str()));
                            ok = false;
                        }
                    }
                }
                Some(values)
            }
            None => None,
        };
        let mut param = Param {
            name: name.clone(),
            span: id.span,
            ty,
            description: raw.description.clone(),
            default: None,
            allowed,
            pattern,
        };
        if let Some(d) = &raw.default {
            match params::from_toml(ty, &d.value) {
                Ok(v) => {
                    if ok && let Err(e) = params::check(&param, &v) {
                        // A list's elements that cannot name step instances have a code of
                        // their own (RB116); `enum` and `pattern` misses are RB0xx as for scalars.
                        let naming = matches!(&v, ParamValue::List(items) if items.iter().all(|i| params::check(&param, i).is_ok()));
                        self.err(
                            if naming { Code::ListParam } else { Code::InvalidDefault },
                            d.span,
                            format!("the default of {what} `{name}` is invalid: {e}"),
                        )
                        .help = Some(if naming {
                            "each element names a step instance (`step[element]`): no `[`, `]` or `/`, no control or invisible characters, no repeats, at most 128 bytes".into()
                        } else {
                            "fix the default, or the `enum`/`pattern` it must satisfy".into()
                        });
                        ok = false;
                    }
                    param.default = Some(v);
                }
                Err(e) => {
                    self.err(
                        Code::InvalidDefault,
                        d.span,
                        format!("the default of {what} `{name}` has the wrong type: {e}"),
                    )
                    .help = Some(format!("`{name}` is declared with `type = \"{}\"`", ty.as_str()));
                    ok = false;
                }
            }
        }
        ok.then_some(param)
    }

    pub(super) fn secrets_section(&mut self, units: &[Unit<RawSecret>]) -> Vec<Secret> {
        let mut out = Vec::new();
        for u in units {
            if !is_env_name(&u.id.value) {
                self.err(Code::InvalidId, u.id.span, format!("invalid secret name `{}`", u.id.value)).help =
                    Some("secret names are environment-style: letters, digits and `_`, not starting with a digit (`^[A-Za-z_][A-Za-z0-9_]*$`)".into());
            }
            self.secrets.insert(u.id.value.clone());
            let Some(raw) = &u.raw else { continue };
            let mut sources = Vec::new();
            if let Some(e) = &raw.env {
                sources.push(("env", e.span, SecretSource::Env(e.value.clone())));
            }
            if let Some(f) = &raw.file {
                // A secret's file is read at run start, never rendered: markup would be read
                // as a literal file name (red team adv15c, M1).
                if ["{{", "{%", "{#"].iter().any(|m| f.value.contains(m)) {
                    self.err(
                        Code::InvalidValue,
                        f.span,
                        format!("the `file` of secret `{}` contains template markup", u.id.value),
                    )
                    .set_label("never rendered")
                    .help = Some(
                        "a secret's file is read as written, before any value is known; name one fixed path (a file per environment is a secret per environment, or a `command` source that takes the environment as an argument)"
                            .into(),
                    );
                }
                sources.push(("file", f.span, SecretSource::File(f.value.clone())));
            }
            if let Some(c) = &raw.command {
                if c.value.is_empty() {
                    self.err(
                        Code::InvalidValue,
                        c.span,
                        format!("the `command` of secret `{}` is empty", u.id.value),
                    )
                    .help = Some(
                        "`command` is an argv array: the program first, e.g. `[\"pass\", \"show\", \"db\"]`"
                            .into(),
                    );
                }
                sources.push(("command", c.span, SecretSource::Command(c.value.clone())));
            }
            if let (Some(f), None) = (&raw.first_line, &raw.file) {
                self.err(
                    Code::MisplacedKey,
                    f.span,
                    format!("`first-line` of secret `{}` needs a `file` source", u.id.value),
                )
                .help = Some(
                    "`first-line = true` reads only the first line of the secret's `file`; remove it".into(),
                );
            }
            match sources.len() {
                1 => {
                    if let Some((_, span, source)) = sources.pop() {
                        out.push(Secret {
                            name: u.id.value.clone(),
                            source,
                            description: raw.description.clone(),
                            first_line: raw.first_line.as_ref().is_some_and(|f| f.value),
                            span,
                        });
                    }
                }
                0 => {
                    self.err(
                        Code::ExactlyOneOf,
                        u.id.span,
                        format!("secret `{}` has no source", u.id.value),
                    )
                    .help = Some(
                        "give it exactly one of `env = \"VAR\"`, `file = \"path\"` or `command = [...]`"
                            .into(),
                    );
                }
                _ => {
                    let names: Vec<&str> = sources.iter().map(|s| s.0).collect();
                    let span = sources[1].1;
                    self.err(
                        Code::ExactlyOneOf,
                        span,
                        format!(
                            "secret `{}` has {} sources (`{}`)",
                            u.id.value,
                            names.len(),
                            names.join("`, `")
                        ),
                    )
                    .help = Some("keep exactly one of `env`, `file` or `command`".into());
                }
            }
        }
        out
    }
}

pub(super) fn param_type(t: RawParamType, items: Option<RawItemType>) -> ParamType {
    match (t, items) {
        (RawParamType::String, _) => ParamType::String,
        (RawParamType::Integer, _) => ParamType::Integer,
        (RawParamType::Number, _) => ParamType::Number,
        (RawParamType::Boolean, _) => ParamType::Boolean,
        (RawParamType::List, None | Some(RawItemType::String)) => ParamType::StringList,
        (RawParamType::List, Some(RawItemType::Integer)) => ParamType::IntegerList,
        (RawParamType::List, Some(RawItemType::Number)) => ParamType::NumberList,
    }
}
