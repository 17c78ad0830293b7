//! Rendering: the template context, and an action rendered into the work of one attempt.

use std::time::Duration;

use runbook_core::journal::RunStatus;
use runbook_core::model::{Action, Template};
use runbook_core::template::{self, Mode};

use crate::action::{self, Work};
use crate::process::Spawn;
use crate::{http, sql};

use super::Dispatcher;

/// Render `(name, template)` pairs.
fn render_pairs(
    pairs: &[(String, Template)],
    render: &dyn Fn(&Template) -> Result<String, String>,
) -> Result<Vec<(String, String)>, String> {
    pairs.iter().map(|(k, v)| Ok((k.clone(), render(v)?))).collect()
}

/// Render the string leaves of a JSON value as templates; other values are kept.
pub(super) fn render_json(
    value: &serde_json::Value,
    ctx: &template::Context,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(template::render(s, Mode::Plain, ctx).map_err(|e| e.message)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render_json(v, ctx)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), render_json(v, ctx)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

impl Dispatcher<'_> {
    /// The environment variables every step of this run loses: the secrets' sources (this
    /// runbook's, its includes', the including run's) and the engine's own configuration
    /// and credentials ([`crate::secrets::EngineEnv::hidden`]). The one place that decides
    /// a step's environment besides what the step sets (red team adv13b F1).
    pub(super) fn secret_env(&self) -> Vec<String> {
        let mut vars = self.runbook.secret_env_vars();
        vars.extend(self.opts.engine_env.hidden());
        if let Some((_, inherited)) = &self.opts.inherited {
            vars.extend(inherited.iter().cloned());
        }
        vars
    }

    /// A step's name in the run folder's file names: its journal path with `/` as `+`
    /// (`rotate_api+prune.1.log`), so the steps of two includes of one runbook stay apart;
    /// bounded so that every file name made from it fits ([`file_stem`]).
    pub(super) fn stem(&self, id: &str) -> String {
        file_stem(&format!("{}{id}", self.opts.prefix))
    }

    /// The template context with real values (secret values included: they only reach
    /// `env` and the request fields where validation allowed them).
    pub(super) fn context(&self, status: Option<RunStatus>) -> template::Context {
        template::Context::new(&self.context_json(status, true))
    }

    /// The template context as JSON; without secrets for expressions (`assert`), which the
    /// validator keeps secrets out of anyway.
    pub(super) fn context_json(&self, status: Option<RunStatus>, with_secrets: bool) -> serde_json::Value {
        let params: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        let secrets: serde_json::Map<String, serde_json::Value> = if with_secrets {
            self.secrets
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect()
        } else {
            serde_json::Map::new()
        };
        let mut steps = serde_json::Map::new();
        for (id, s) in &self.journal.steps {
            if s.status == runbook_core::journal::StepStatus::Succeeded {
                steps.insert(id.clone(), serde_json::json!({ "outputs": s.outputs }));
            }
        }
        serde_json::json!({
            "params": params,
            "secrets": secrets,
            "steps": steps,
            "run": {
                "id": self.opts.run_id,
                "started_at": self.started_at,
                "status": status.map(RunStatus::as_str).unwrap_or("running"),
            },
            "runbook": { "name": self.runbook.name, "title": self.runbook.title.clone().unwrap_or_default() },
        })
    }

    /// The context of unit `id` (a step, or its compensation or precondition): for an
    /// instance of a `for-each` step, `item` and `item_index` set, and `steps.STEP` reading
    /// the instance's own outputs (its compensation's `steps.restart.outputs.x`). The values
    /// are context values like `params`, so they reach commands as parameters do: bound to
    /// shell variables in `run` text, one argument each in `cmd`, encoded in URLs, bound in
    /// SQL (promise 4).
    pub(super) fn context_json_for(
        &self,
        id: &str,
        status: Option<RunStatus>,
        with_secrets: bool,
    ) -> serde_json::Value {
        let mut json = self.context_json(status, with_secrets);
        let Some((item, step)) = self.runbook.find_step(id).and_then(|s| s.item.as_ref().map(|i| (i, s)))
        else {
            return json;
        };
        if let Some(map) = json.as_object_mut() {
            map.insert("item".into(), serde_json::to_value(&item.value).unwrap_or_default());
            map.insert("item_index".into(), serde_json::Value::from(item.index));
            if let Some(steps) = map.get_mut("steps").and_then(|s| s.as_object_mut())
                && let Some(own) = steps.get(step.id.as_str()).cloned()
            {
                steps.insert(item.base.to_string(), own);
            }
        }
        json
    }

    /// [`Self::context_json_for`] as a template context, secrets included.
    pub(super) fn context_for(&self, id: &str, status: Option<RunStatus>) -> template::Context {
        template::Context::new(&self.context_json_for(id, status, true))
    }

    /// Render a template of unit `id` ([`Self::context_for`]).
    pub(super) fn render_for(
        &self,
        id: &str,
        t: &Template,
        mode: Mode,
        status: Option<RunStatus>,
    ) -> Result<String, String> {
        template::render(&t.text, mode, &self.context_for(id, status)).map_err(|e| e.message)
    }

    pub(super) fn render(
        &self,
        t: &Template,
        mode: Mode,
        status: Option<RunStatus>,
    ) -> Result<String, String> {
        template::render(&t.text, mode, &self.context(status)).map_err(|e| e.message)
    }

    /// The digest a file had when the run started, from [`RunOptions::reads`] (paths there
    /// are as the CLI resolved them, relative to its folder or absolute).
    pub(super) fn pinned_digest(&self, path: &std::path::Path) -> Option<String> {
        let key = |p: &std::path::Path| {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            runbook_core::validate::normalize(&abs.to_string_lossy())
        };
        let want = key(path);
        self.opts.reads.iter().find(|r| key(std::path::Path::new(&r.path)) == want).map(|r| r.sha256.clone())
    }

    /// Render an action into the work of one attempt.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn work(
        &self,
        label: &str,
        action: &Action,
        env: &[(String, Template)],
        dir: Option<&str>,
        timeout: Option<Duration>,
        output_file: &std::path::Path,
        declared: &[String],
        status: Option<RunStatus>,
    ) -> Result<Work, String> {
        let ctx = self.context_for(label, status);
        let render = |t: &Template| template::render(&t.text, Mode::Plain, &ctx).map_err(|e| e.message);
        let assert = |expr: &Option<runbook_core::model::Expr>| {
            expr.as_ref().map(|e| action::Assert {
                expr: e.text.clone(),
                ctx: self.context_json_for(label, status, false),
            })
        };
        let argv = match action {
            Action::Run { script, shell } => {
                let mut argv = shell.clone();
                argv.push(template::render(&script.text, Mode::Shell, &ctx).map_err(|e| e.message)?);
                argv
            }
            Action::Cmd(args) => {
                let argv: Vec<String> = args.iter().map(render).collect::<Result<_, _>>()?;
                // A value that would be read as an option is refused before anything runs.
                let texts: Vec<&str> = args.iter().map(|t| t.text.as_str()).collect();
                template::argv_options(&texts, &argv).map_err(|(_, m)| m)?;
                argv
            }
            Action::Http(spec) => {
                let request = http::Request {
                    method: spec.method.clone(),
                    url: template::render(&spec.url.text, Mode::Url, &ctx).map_err(|e| e.message)?,
                    headers: render_pairs(&spec.headers, &render)?,
                    query: render_pairs(&spec.query, &render)?,
                    body: match (&spec.body, &spec.json) {
                        (Some(b), _) => http::Body::Text(render(b)?),
                        (None, Some(j)) => http::Body::Json(render_json(j, &ctx)?),
                        (None, None) => http::Body::None,
                    },
                    expect_status: spec.expect_status.clone(),
                    max_latency: spec.max_latency,
                    ca_file: spec.ca_file.as_ref().map(|c| self.opts.base_dir.join(c)),
                    ca_sha256: spec
                        .ca_file
                        .as_ref()
                        .and_then(|c| self.pinned_digest(&self.opts.base_dir.join(c))),
                    request_timeout: spec.request_timeout,
                };
                return Ok(Work::Http { request, assert: assert(&spec.assert) });
            }
            Action::Sql(spec) => {
                let base_dir = dir.map_or_else(|| self.opts.base_dir.clone(), |d| self.opts.base_dir.join(d));
                let script_sha256 = match &spec.statement {
                    runbook_core::model::SqlStatement::File(f) => self.pinned_digest(&base_dir.join(f)),
                    runbook_core::model::SqlStatement::Query(_) => None,
                };
                let request = sql::Request {
                    url: template::render(&spec.url.text, Mode::Url, &ctx).map_err(|e| e.message)?,
                    statement: match &spec.statement {
                        runbook_core::model::SqlStatement::Query(q) => sql::Statement::Query(q.clone()),
                        runbook_core::model::SqlStatement::File(f) => sql::Statement::File(f.clone()),
                    },
                    args: spec.args.iter().map(|a| render_json(a, &ctx)).collect::<Result<_, _>>()?,
                    read_only: spec.read_only,
                    base_dir,
                    script_sha256,
                };
                return Ok(Work::Sql { request, assert: assert(&spec.assert) });
            }
            Action::Notify(spec) => {
                let request = self.notify_request_in(spec, &ctx)?;
                return Ok(Work::Notify { request, required: spec.required });
            }
            other => return Err(format!("`{}` steps are not run as an action", other.kind())),
        };
        let mut vars = vec![
            ("RUNBOOK_OUTPUT".to_string(), output_file.display().to_string()),
            ("RUNBOOK_RUN_ID".to_string(), self.opts.run_id.clone()),
            ("RUNBOOK_STEP".to_string(), label.to_string()),
        ];
        for (k, v) in env {
            vars.push((k.clone(), render(v)?));
        }
        // A secret's source variable reaches a step only when the step passes it in `env`:
        // the variables of every secret of the run, including runbooks' and included ones'.
        let env_remove = self.secret_env();
        Ok(Work::Process {
            spawn: Spawn {
                argv,
                env: vars,
                env_remove,
                dir: dir.map_or_else(|| self.opts.base_dir.clone(), |d| self.opts.base_dir.join(d)),
                timeout,
                grace: self.opts.grace,
            },
            output_file: output_file.to_path_buf(),
            declared: declared.to_vec(),
        })
    }

    /// A notification as a JSON POST: `{"text": ...}` or the custom body.
    pub(super) fn notify_request(
        &self,
        spec: &runbook_core::model::NotifySpec,
        status: Option<RunStatus>,
    ) -> Result<http::Request, String> {
        self.notify_request_in(spec, &self.context(status))
    }

    /// A notification rendered in a given context.
    pub(super) fn notify_request_in(
        &self,
        spec: &runbook_core::model::NotifySpec,
        ctx: &template::Context,
    ) -> Result<http::Request, String> {
        let ctx = ctx.clone();
        let body = match &spec.message {
            runbook_core::model::NotifyMessage::Text(t) => {
                serde_json::json!({ "text": template::render(&t.text, Mode::Plain, &ctx).map_err(|e| e.message)? })
            }
            runbook_core::model::NotifyMessage::Json(j) => render_json(j, &ctx)?,
        };
        Ok(http::Request {
            method: "POST".into(),
            url: template::render(&spec.webhook.text, Mode::Url, &ctx).map_err(|e| e.message)?,
            headers: Vec::new(),
            query: Vec::new(),
            body: http::Body::Json(body),
            expect_status: Vec::new(),
            max_latency: None,
            ca_file: None,
            ca_sha256: None,
            request_timeout: Some(Duration::from_secs(10)),
        })
    }
}

/// The longest stem of a run folder's file name, in bytes: with the longest suffix made
/// from it (`.compensation.ATTEMPT.outputs`, `precondition-` before it) a name stays far
/// under the 255 bytes file systems allow.
pub const MAX_STEM: usize = 160;

/// A journal path as a file name's stem: `/` as `+`; past [`MAX_STEM`] bytes (step ids,
/// `for-each` elements and include paths have no common bound: red team adv17b F6), its
/// first 90 bytes, `~`, the SHA-256 of the whole path in hex and `]]`. Real stems never
/// hold `]]` (an element holds no bracket, a step id none), so a shortened stem is never
/// another step's; two paths share a stem only if their digests collide.
pub fn file_stem(path: &str) -> String {
    let stem = path.replace('/', "+");
    if stem.len() <= MAX_STEM {
        return stem;
    }
    let mut head = 90;
    while !stem.is_char_boundary(head) {
        head -= 1;
    }
    format!("{}~{}]]", &stem[..head], runbook_core::plan::sha256_hex_bytes(path.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_bounded_and_distinct() {
        let long = |c: char, n: usize| c.to_string().repeat(n);
        let paths = [
            "deploy".to_string(),
            format!("{}[{}]", long('s', 125), long('e', 128)),
            format!("{}[{}]", long('s', 125), long('e', 127)),
            format!("{}/{}/{}", long('i', 120), long('i', 120), long('p', 300)),
            format!("{}[{}]", long('s', 10), "é".repeat(100)),
        ];
        let stems: Vec<String> = paths.iter().map(|p| file_stem(p)).collect();
        for (p, s) in paths.iter().zip(&stems) {
            assert!(s.len() <= MAX_STEM, "{s}");
            assert!(format!("precondition-{s}.compensation.4294967295.outputs").len() < 255);
            assert!(!s.contains('/'), "{s}");
            if p.len() <= MAX_STEM {
                assert_eq!(s, &p.replace('/', "+"));
            }
        }
        let unique: std::collections::BTreeSet<&String> = stems.iter().collect();
        assert_eq!(unique.len(), stems.len(), "{stems:?}");
    }
}
