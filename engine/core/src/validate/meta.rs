//! The `[runbook]` and `[report]` tables, `[defaults]`, and the values written as text
//! (durations, estimates, retry policies).

use super::*;

/// The checked `[runbook]` table.
pub(super) struct Meta {
    pub(super) name: String,
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    pub(super) estimate: Option<Estimate>,
    pub(super) max_parallel: Option<u32>,
    pub(super) lock: Option<Template>,
}

impl Validator<'_> {
    // ----- [report] ----------------------------------------------------------------------

    /// The `[report]` table: each entry names a step (of `steps` or `finally`) and one of its
    /// declared outputs, or a step's compensation and one of the compensation's outputs.
    pub(super) fn report_section(&mut self, doc: &Document) -> crate::journal::ReportFacts {
        let mut facts = crate::journal::ReportFacts::default();
        let Some(r) = &doc.report else { return facts };
        let compensation_outputs: FastMap<&str, Vec<String>> = doc
            .steps
            .iter()
            .filter_map(|u| {
                let c = u.raw.as_ref()?.compensate.as_ref()?;
                let outs =
                    c.value.outputs.as_deref().unwrap_or(&[]).iter().map(|o| o.value.clone()).collect();
                Some((u.id.value.as_str(), outs))
            })
            .collect();
        let check = |this: &mut Self, key: &str, s: &SpannedString| -> Option<String> {
            let Some((step, compensate, output)) = crate::journal::parse_fact_ref(&s.value) else {
                this.err(Code::ReportReference, s.span, format!("`report.{key}` is not a reference to an output: `{}`", s.value))
                    .help = Some("write `STEP.OUTPUT` (a step's declared output) or `STEP.compensate.OUTPUT` (its compensation's)".into());
                return None;
            };
            let Some(info) = this.steps.get(step) else {
                let known: Vec<&str> = this.steps.keys().map(String::as_str).collect();
                this.err(
                    Code::ReportReference,
                    s.span,
                    format!(
                        "`report.{key}` names unknown step `{step}`{}",
                        did_you_mean_suffix(step, known.into_iter())
                    ),
                )
                .help = Some("name a step of `[steps]` or `[finally]` of this runbook".into());
                return None;
            };
            if info.for_each {
                // One set of outputs per instance (and per instance's compensation): a fact
                // names one value (red team adv17b F8).
                this.err(
                    Code::ForEachOutputs,
                    s.span,
                    format!("`report.{key}` names `{}`, an output of `{step}`, a `for-each` step", s.value),
                )
                .set_label("one set of outputs per instance")
                .help = Some(format!(
                    "`{step}` runs once per element, each instance with outputs of its own; name the output of a step that observes the fact once"
                ));
                return None;
            }
            if info.approval && !compensate {
                this.err(
                    Code::ReportReference,
                    s.span,
                    format!(
                        "`report.{key}` names `{step}.{output}`, an input of approval `{step}`: what a person typed, not an observation"
                    ),
                )
                .help = Some(
                    "name the output of a step that observes it (a `run`, `cmd`, `http` or `sql` step); what people say goes in an approval input the report shows as theirs (`result`, `root_cause`, `impact`)".into(),
                );
                return None;
            }
            let outputs: Vec<String> = if compensate {
                match compensation_outputs.get(step) {
                    Some(o) => o.clone(),
                    None => {
                        this.err(
                            Code::ReportReference,
                            s.span,
                            format!("`report.{key}` names the compensation of `{step}`, which has none"),
                        )
                        .help = Some(format!(
                            "give `{step}` a `compensate` that declares `outputs = [\"{output}\"]`, or name a step's output"
                        ));
                        return None;
                    }
                }
            } else {
                info.outputs.clone().unwrap_or_default()
            };
            if !outputs.iter().any(|o| o == output) {
                let whose = if compensate {
                    format!("the compensation of `{step}`")
                } else {
                    format!("step `{step}`")
                };
                let list = if outputs.is_empty() {
                    "none".to_string()
                } else {
                    format!("`{}`", outputs.join("`, `"))
                };
                this.err(
                    Code::ReportReference,
                    s.span,
                    format!(
                        "`report.{key}` names output `{output}`, which {whose} does not declare{}",
                        did_you_mean_suffix(output, outputs.iter().map(String::as_str))
                    ),
                )
                .help = Some(format!(
                    "its outputs: {list}; declare it with `outputs = [...]` and write it to `$RUNBOOK_OUTPUT`"
                ));
                return None;
            }
            Some(s.value.clone())
        };
        facts.version_before = r.version_before.as_ref().and_then(|s| check(self, "version-before", s));
        facts.version_after = r.version_after.as_ref().and_then(|s| check(self, "version-after", s));
        facts.restore_point = r.restore_point.as_ref().and_then(|s| check(self, "restore-point", s));
        facts.evidence =
            r.evidence.as_deref().unwrap_or(&[]).iter().filter_map(|s| check(self, "evidence", s)).collect();
        facts
    }

    // ----- [runbook] ---------------------------------------------------------------------

    pub(super) fn meta(&mut self, m: &RawMeta) -> Option<Meta> {
        if !is_runbook_name(&m.name.value) {
            self.err(Code::InvalidId, m.name.span, format!("invalid runbook name `{}`", m.name.value))
                .help = Some("a runbook name is lowercase letters, digits, `_` and `-`, starting with a letter (`^[a-z][a-z0-9_-]*$`)".into());
        }
        let estimate = m.estimate.as_ref().and_then(|e| self.estimate(e));
        let max_parallel = match &m.max_parallel {
            Some(mp) if !syntax::MAX_PARALLEL.contains(&mp.value) => {
                self.err(
                    Code::InvalidValue,
                    mp.span,
                    format!(
                        "`max-parallel` must be between {} and {}, found {}",
                        syntax::MAX_PARALLEL.start(),
                        syntax::MAX_PARALLEL.end(),
                        mp.value
                    ),
                )
                .help = Some("remove it to use the number of CPUs".into());
                None
            }
            Some(mp) => Some(mp.value as u32),
            None => None,
        };
        let lock_scope = Scope { run_vars: false, ..Scope::new(Place::Text("the lock name")) };
        if let Some(l) = &m.lock
            && l.value.starts_with(RESERVED_LOCK_PREFIX)
        {
            self.err(
                Code::InvalidValue,
                l.span,
                format!("lock `{}` is in the `{RESERVED_LOCK_PREFIX}` namespace, which is reserved", l.value),
            )
            .set_label("reserved prefix")
            .help = Some(format!(
                "each run without `lock` holds the private lock `{RESERVED_LOCK_PREFIX}ID`; name the lock after what it guards, e.g. `lock = \"db-{{{{ params.env }}}}\"`"
            ));
        }
        let lock = m.lock.as_ref().map(|l| self.template(l, Mode::Plain, lock_scope));
        Some(Meta {
            name: m.name.value.clone(),
            title: m.title.clone(),
            description: m.description.clone(),
            estimate,
            max_parallel,
            lock,
        })
    }

    // ----- defaults ----------------------------------------------------------------------

    pub(super) fn defaults(&mut self, d: Option<&RawDefaults>) -> Defaults {
        let mut out = Defaults::default();
        let Some(d) = d else { return out };
        out.timeout = d.timeout.as_ref().and_then(|t| self.limit(t, "defaults.timeout"));
        if let Some(r) = &d.retry {
            out.retry = self.retry(r, "defaults.retry");
        }
        if let Some(s) = &d.shell {
            out.shell = self.shell(s);
        }
        if let Some(f) = &d.on_failure {
            out.on_failure = on_failure(f.value);
        }
        out
    }

    pub(super) fn shell(&mut self, s: &Spanned<Vec<String>>) -> Option<Vec<String>> {
        if s.value.is_empty() || s.value[0].trim().is_empty() {
            self.err(Code::InvalidValue, s.span, "`shell` is empty").help = Some(
                "`shell` is an argv array that the script is appended to, e.g. `[\"bash\", \"-c\"]`".into(),
            );
            return None;
        }
        Some(s.value.clone())
    }

    // ----- values ------------------------------------------------------------------------

    pub(super) fn duration(&mut self, s: &SpannedString, key: &str) -> Option<Duration> {
        // (`duration_problem` words humantime's errors: its own hint suggests `0sec`, a zero
        // that a bound refuses.)
        match humantime::parse_duration(s.value.trim()) {
            Ok(d) if d > MAX_DURATION => {
                self.err(
                    Code::InvalidDuration,
                    s.span,
                    format!("duration `{}` for `{key}` is longer than the limit of 100 years", s.value),
                )
                .set_label("too long")
                .help = Some("a duration is at most \"100y\"; a `timeout` left out has no limit".into());
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    Code::InvalidDuration,
                    s.span,
                    format!("invalid duration `{}` for `{key}`: {}", s.value, duration_problem(&e)),
                )
                .set_label("not a duration")
                .help = Some("write a duration such as \"30s\", \"10m\" or \"1h 30m\"".into());
                None
            }
        }
    }

    /// A duration that bounds or delays something, where zero means nothing: a timeout that
    /// ends every attempt at once, a latency no answer meets, an escalation that fires before
    /// anything ran. Zero is refused at the value (RB030). Retry delays and estimates take
    /// [`Validator::duration`]: zero is meaningful there (retry at once, nothing to wait).
    pub(super) fn limit(&mut self, s: &SpannedString, key: &str) -> Option<Duration> {
        let d = self.duration(s, key)?;
        if d.is_zero() {
            let help = if key.ends_with("after") {
                "an escalation fires when the run is still going after this long; give it a duration such as \"15m\"".to_string()
            } else if key.ends_with("max-latency") {
                "no answer comes in zero time; give the slowest acceptable answer, such as \"500ms\", or leave the key out".to_string()
            } else {
                format!(
                    "a zero `{}` would end every attempt at once; give a duration such as \"30s\", or leave the key out for no limit",
                    key.rsplit('.').next().unwrap_or(key)
                )
            };
            self.err(Code::InvalidDuration, s.span, format!("duration `{}` for `{key}` is zero", s.value))
                .set_label("zero")
                .help = Some(help);
            return None;
        }
        if d < MIN_LIMIT {
            // A bound under a millisecond is never met: the step would always time out, the
            // answer always be late (red-team finding F6 of issue 14).
            self.err(
                Code::InvalidDuration,
                s.span,
                format!(
                    "duration `{}` for `{key}` is shorter than 1ms, the shortest bound the engine keeps",
                    s.value
                ),
            )
            .set_label("too short to be met")
            .help = Some(
                "give a bound of 1ms or more, such as \"500ms\" or \"30s\", or leave the key out".into(),
            );
            return None;
        }
        Some(d)
    }

    pub(super) fn estimate(&mut self, s: &SpannedString) -> Option<Estimate> {
        match s.value.split_once("..") {
            None => self.duration(s, "estimate").map(|d| Estimate { low: d, high: d }),
            Some((a, b)) => {
                let low = humantime::parse_duration(a.trim());
                let high = humantime::parse_duration(b.trim());
                match (low, high) {
                    (Ok(low), Ok(high)) if low <= high => Some(Estimate { low, high }),
                    (Ok(_), Ok(_)) => {
                        self.err(
                            Code::InvalidRange,
                            s.span,
                            format!("estimate range `{}` is reversed", s.value),
                        )
                        .help = Some(format!("write the lower bound first: \"{}..{}\"", b.trim(), a.trim()));
                        None
                    }
                    _ => {
                        self.err(
                            Code::InvalidRange,
                            s.span,
                            format!("invalid estimate range `{}`", s.value),
                        )
                        .help = Some(
                            "write a duration (\"5m\") or a range of two durations (\"30m..60m\")".into(),
                        );
                        None
                    }
                }
            }
        }
    }

    pub(super) fn retry(&mut self, r: &Spanned<RawRetry>, key: &str) -> RetryPolicy {
        let raw = &r.value;
        let mut p = RetryPolicy::default();
        if let Some(a) = &raw.attempts {
            if !syntax::ATTEMPTS.contains(&a.value) {
                self.err(
                    Code::InvalidRetry,
                    a.span,
                    format!(
                        "`{key}.attempts` must be between {} and {}, found {}",
                        syntax::ATTEMPTS.start(),
                        syntax::ATTEMPTS.end(),
                        a.value
                    ),
                )
                .help = Some("`attempts` counts every try, the first included: 1 means no retry".into());
            } else {
                p.attempts = a.value as u32;
            }
        }
        if let Some(d) = &raw.delay
            && let Some(d) = self.duration(d, &format!("{key}.delay"))
        {
            p.delay = d;
        }
        if let Some(b) = &raw.backoff {
            if !syntax::BACKOFF.contains(&b.value) {
                self.err(
                    Code::InvalidRetry,
                    b.span,
                    format!(
                        "`{key}.backoff` must be between {:.1} and {:.1}, found {}",
                        syntax::BACKOFF.start(),
                        syntax::BACKOFF.end(),
                        b.value
                    ),
                )
                .help =
                    Some("the delay is multiplied by `backoff` after each try; 1.0 keeps it constant".into());
            } else {
                p.backoff = b.value;
            }
        }
        if let Some(m) = &raw.max_delay
            && let Some(d) = self.duration(m, &format!("{key}.max-delay"))
        {
            if d < p.delay {
                self.err(
                    Code::InvalidRetry,
                    m.span,
                    format!(
                        "`{key}.max-delay` ({}) is below `delay` ({})",
                        format_duration(d),
                        format_duration(p.delay)
                    ),
                )
                .help = Some("`max-delay` caps the growing delay; it must be at least `delay`".into());
            }
            p.max_delay = Some(d);
        }
        p.jitter = raw.jitter.unwrap_or(false);
        if let Some(codes) = &raw.on_exit_codes {
            for c in &codes.value {
                if syntax::EXIT_CODES.contains(c) {
                    p.on_exit_codes.push(*c as i32);
                } else {
                    self.err(
                        Code::InvalidRetry,
                        codes.span,
                        format!("`{key}.on-exit-codes` has {c}, which is not an exit code"),
                    )
                    .help = Some(format!(
                        "exit codes are between {} and {}",
                        syntax::EXIT_CODES.start(),
                        syntax::EXIT_CODES.end()
                    ));
                }
            }
        }
        p
    }
}

pub(super) fn on_failure(f: RawOnFailure) -> OnFailure {
    match f {
        RawOnFailure::Compensate => OnFailure::Compensate,
        RawOnFailure::Stop => OnFailure::Stop,
        RawOnFailure::Continue => OnFailure::Continue,
    }
}

/// The shortest duration that bounds something ([`Validator::limit`]): a shorter one is
/// never met.
pub(super) const MIN_LIMIT: Duration = Duration::from_millis(1);

/// What is wrong with a duration humantime cannot read: its words, except for a number
/// without its unit, where its hint ("for example 0sec or 0ms") suggests a zero, which a
/// bound refuses (red-team finding F6 of issue 14).
fn duration_problem(e: &humantime::DurationError) -> String {
    match e {
        humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
            "a number without its unit (such as `s`, `ms`, `m` or `h`)".to_string()
        }
        other => other.to_string(),
    }
}
