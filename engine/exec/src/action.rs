//! One attempt of an action, whatever its kind: a process (`run`, `cmd`), an HTTP request,
//! a SQL statement or a webhook delivery. The dispatcher renders a [`Work`], hands it to
//! [`perform`], and journals the [`Done`] it gets back. Approvals and sub-runbooks are not
//! here: they are decided by the dispatcher itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

pub use crate::files::{MAX_FILE_BYTES, private_file, read_pinned};
use crate::process::{self, Exit, Line, Reaper, Spawn, Stream};
pub use crate::report::{Check, Outputs, Produced};
use crate::secrets::Redactor;
use crate::{http, sql};

/// An `assert` expression with the context it is evaluated in (the step's outputs are
/// added to it as top-level names).
#[derive(Debug, Clone)]
pub struct Assert {
    /// The expression as written.
    pub expr: String,
    /// The run's template context as JSON (no secret values: the validator keeps them out
    /// of expressions).
    pub ctx: Value,
}

/// An attempt, rendered and ready.
#[derive(Debug, Clone)]
pub enum Work {
    /// A process.
    Process {
        /// What to start.
        spawn: Spawn,
        /// The `$RUNBOOK_OUTPUT` file.
        output_file: PathBuf,
        /// Outputs the step declares.
        declared: Vec<String>,
    },
    /// An HTTP request.
    Http {
        /// The request.
        request: http::Request,
        /// Its assertion.
        assert: Option<Assert>,
    },
    /// A SQL statement or script.
    Sql {
        /// The statement.
        request: sql::Request,
        /// Its assertion.
        assert: Option<Assert>,
    },
    /// A webhook notification.
    Notify {
        /// The POST.
        request: http::Request,
        /// A failed delivery fails the step.
        required: bool,
    },
}

/// How an attempt ended, with its outputs when it succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The end.
    pub exit: Exit,
    /// Its outputs, why the declared ones are missing, or none.
    pub outputs: Produced,
}

impl Done {
    fn failed(reason: String) -> Done {
        Done { exit: Exit::Failed(reason), outputs: Produced::Nothing }
    }
}

/// Perform one attempt. `timeout` bounds kinds other than processes (a process carries its
/// own); cancellation ends the attempt as [`Exit::Cancelled`]. Every line sent on `lines`
/// has passed `redactor`.
pub async fn perform(
    work: Work,
    timeout: Option<Duration>,
    redactor: &Redactor,
    lines: mpsc::Sender<Line>,
    mut cancel: watch::Receiver<bool>,
    reaper: Option<&Reaper>,
) -> Done {
    if let Work::Process { spawn, output_file, declared } = work {
        // Created by the engine, empty and readable by its user alone, before the step
        // writes values to it (a shell's `>>` keeps the mode; issue 11, promise 3).
        if let Err(e) = private_file(&output_file, true) {
            let reason = format!("cannot create `{}`: {e}", output_file.display());
            return Done { exit: Exit::SpawnFailed(reason), outputs: Produced::Nothing };
        }
        let exit = process::run_tied(&spawn, redactor, lines, cancel, reaper).await;
        return match read_bounded(&output_file) {
            // Too much to be values: the attempt fails, saying so, whatever its process said.
            Err(too_large) => {
                let exit = if exit.success() { Exit::Failed(too_large.clone()) } else { exit };
                Done { exit, outputs: Produced::Missing(too_large) }
            }
            Ok(text) => Done { exit, outputs: parse_outputs(&text, &declared).into() },
        };
    }
    let attempt = remote(work, redactor, &lines);
    let limited = async {
        match timeout {
            Some(t) => tokio::time::timeout(t, attempt)
                .await
                .unwrap_or(Done { exit: Exit::TimedOut, outputs: Produced::Nothing }),
            None => attempt.await,
        }
    };
    if *cancel.borrow() {
        return Done { exit: Exit::Cancelled, outputs: Produced::Nothing };
    }
    tokio::select! {
        done = limited => done,
        _ = cancel.wait_for(|c| *c) => Done { exit: Exit::Cancelled, outputs: Produced::Nothing },
    }
}

async fn remote(work: Work, redactor: &Redactor, lines: &mpsc::Sender<Line>) -> Done {
    // A few lines per attempt, on a channel made for many: `try_send` does not wait.
    let say = |stream, text: String| {
        let _ = lines.try_send(Line { stream, text: redactor.redact(&text) });
    };
    match work {
        Work::Process { .. } => Done::failed("internal: a process reached the remote path".into()),
        Work::Http { request, assert } => {
            let outputs = match http::send(&request, redactor).await {
                Ok(o) => o,
                Err(e) => return Done::failed(format!("{} {}: {e}", request.method, request.url)),
            };
            match http::judge(&request, &outputs) {
                Check::Failed(reason) => {
                    say(Stream::Stderr, reason.clone());
                    Done::failed(reason)
                }
                Check::Passed(line) => {
                    say(Stream::Stdout, line);
                    finish(outputs, assert.as_ref(), &say)
                }
            }
        }
        Work::Sql { request, assert } => match sql::execute(&request).await {
            Err(e) => Done::failed(e),
            Ok((outputs, said)) => {
                say(Stream::Stdout, said);
                finish(outputs, assert.as_ref(), &say)
            }
        },
        Work::Notify { request, required } => {
            let verdict = match http::send(&request, redactor).await {
                Err(e) => Check::Failed(e),
                Ok(outputs) => http::judge(&request, &outputs),
            };
            match verdict {
                Check::Passed(_) => {
                    say(Stream::Stdout, "notification delivered".into());
                    Done {
                        exit: Exit::Ok,
                        outputs: Produced::Values(BTreeMap::from([(
                            "delivered".to_string(),
                            Value::Bool(true),
                        )])),
                    }
                }
                Check::Failed(reason) if required => {
                    Done::failed(format!("notification not delivered: {reason}"))
                }
                Check::Failed(reason) => {
                    // A notification is a courtesy unless `required`: say it, go on.
                    say(Stream::Stderr, format!("warning: notification not delivered: {reason}"));
                    Done {
                        exit: Exit::Ok,
                        outputs: Produced::Values(BTreeMap::from([
                            ("delivered".to_string(), Value::Bool(false)),
                            ("error".to_string(), Value::String(reason)),
                        ])),
                    }
                }
            }
        }
    }
}

/// Evaluate the step's `assert` over its outputs.
fn finish(outputs: Outputs, assert: Option<&Assert>, say: &dyn Fn(Stream, String)) -> Done {
    let Some(assert) = assert else {
        return Done { exit: Exit::Ok, outputs: Produced::Values(outputs) };
    };
    match check_assert(assert, &outputs) {
        Check::Passed(line) => {
            say(Stream::Stdout, line);
            Done { exit: Exit::Ok, outputs: Produced::Values(outputs) }
        }
        Check::Failed(reason) => {
            say(Stream::Stderr, reason.clone());
            Done::failed(reason)
        }
    }
}

/// Whether `assert` holds over `outputs` (each a top-level name beside `params`, `steps`...).
pub fn check_assert(assert: &Assert, outputs: &Outputs) -> Check {
    let mut ctx = match &assert.ctx {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for (k, v) in outputs {
        ctx.insert(k.clone(), v.clone());
    }
    match runbook_core::template::eval(
        &assert.expr,
        &runbook_core::template::Context::new(&Value::Object(ctx)),
    ) {
        Ok(v) if runbook_core::template::truthy(&v) => {
            Check::Passed(format!("assert holds: {}", assert.expr))
        }
        Ok(v) => Check::Failed(format!("assert failed: `{}` is {}", assert.expr, short(&v))),
        Err(e) => Check::Failed(format!("assert `{}` cannot be evaluated: {}", assert.expr, e.message)),
    }
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// `key=value` lines a step wrote to `$RUNBOOK_OUTPUT`; every declared output must be there.
/// The file is removed: a step may have written a secret into it, and what matters goes,
/// redacted, into the journal.
/// A file over [`MAX_OUTPUTS_BYTES`] fails the attempt (the outputs are then an error).
pub fn read_outputs(path: &std::path::Path, declared: &[String]) -> Result<Outputs, String> {
    parse_outputs(&read_bounded(path)?, declared)
}

/// The most bytes a step's `$RUNBOOK_OUTPUT` may hold. Outputs are values (a version, a
/// path, a count) that go into the journal and into templates, never data: a value of
/// 200 MB read whole, then redacted, made the engine abort for memory and left its run in
/// doubt. A template cannot use more than [`runbook_core::template::MAX_RENDERED_BYTES`].
pub const MAX_OUTPUTS_BYTES: u64 = 1 << 20;

/// The text of `$RUNBOOK_OUTPUT`, read in bounded memory, and the file removed; an error
/// that says so when it holds more than [`MAX_OUTPUTS_BYTES`].
fn read_bounded(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    let read = runbook_store::open_outside_store(path, std::fs::OpenOptions::new().read(true))
        .and_then(|f| f.take(MAX_OUTPUTS_BYTES + 1).read_to_end(&mut bytes));
    let _ = std::fs::remove_file(path);
    if read.is_ok() && bytes.len() as u64 > MAX_OUTPUTS_BYTES {
        return Err(format!(
            "$RUNBOOK_OUTPUT holds more than {} MiB: outputs are values (a version, a path, a count), not data; write data to a file and its path as the output",
            MAX_OUTPUTS_BYTES >> 20
        ));
    }
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

/// `key=value` lines of `$RUNBOOK_OUTPUT`; every declared output must be there.
fn parse_outputs(text: &str, declared: &[String]) -> Result<Outputs, String> {
    let mut outputs = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            outputs.insert(k.trim().to_string(), Value::String(v.to_string()));
        }
    }
    let missing: Vec<&str> =
        declared.iter().filter(|d| !outputs.contains_key(*d)).map(String::as_str).collect();
    if missing.is_empty() {
        outputs.retain(|k, _| declared.contains(k));
        Ok(outputs)
    } else {
        Err(format!("declared output(s) missing from $RUNBOOK_OUTPUT: {}", missing.join(", ")))
    }
}
