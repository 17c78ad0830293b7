//! `runbook run`: check, resolve, then hand the runbook to the executor and show progress.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_core::journal::{RunEvent, RunStatus};
use runbook_exec::dispatch::{self, Dispatcher, ExecError, Outcome, Report, RunOptions};
use runbook_exec::process::Stream;
use runbook_exec::secrets;
use runbook_store::{Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::args::RunOutput;
use crate::commands::{display, load_with_params};
use crate::exit;
use crate::output::outln;

/// What `runbook run` was asked besides the runbook and its parameters.
#[derive(Debug)]
pub struct RunArgs {
    pub yes: bool,
    pub state: Option<PathBuf>,
    pub output: RunOutput,
}

/// The default state store: `$XDG_STATE_HOME/runbook/state.db`, else
/// `~/.local/state/runbook/state.db`, else `.runbook/state.db`.
pub fn default_state_path() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    match base {
        Some(b) => b.join("runbook").join("state.db"),
        None => PathBuf::from(".runbook/state.db"),
    }
}

/// `user@host`, or `RUNBOOK_OPERATOR` when set.
fn operator() -> String {
    if let Some(op) = std::env::var("RUNBOOK_OPERATOR").ok().filter(|o| !o.trim().is_empty()) {
        return op;
    }
    let user =
        std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// `20261130T101500Z-3f9a`: sortable, readable, unique enough for one store.
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now).to_string().replace(['-', ':'], "");
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{stamp}-{:04x}", h.finish() & 0xffff)
}

fn ask_on_terminal(question: &str) -> bool {
    let mut err = std::io::stderr();
    let _ = write!(err, "? {question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub fn run(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    opts: RunArgs,
    color: bool,
) -> u8 {
    let (runbook, params) = match load_with_params(file, args, params_file, color) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Err(e) = dispatch::check_supported(&runbook) {
        eprintln!("error: {e}");
        return exit::INVALID;
    }
    let needs_confirm = runbook.steps.iter().any(|s| s.confirm.is_some());
    let confirm: Option<dispatch::Confirm> = if opts.yes {
        None
    } else if needs_confirm && !std::io::stdin().is_terminal() {
        eprintln!(
            "error: this runbook asks for confirmation before some steps, and there is no terminal to ask on"
        );
        eprintln!("  help: review the plan (`runbook plan`), then run again with `--yes`");
        return exit::INVALID;
    } else {
        Some(Arc::new(ask_on_terminal))
    };
    let base_dir =
        file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let secrets = match secrets::resolve(&runbook, &base_dir) {
        Ok(s) => s,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            eprintln!("  help: secrets are read from their declared sources when a run starts; nothing ran");
            return exit::INVALID;
        }
    };
    let state_path = opts.state.unwrap_or_else(default_state_path);
    if let Some(dir) = state_path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("error: cannot create the state store folder `{}`: {e}", dir.display());
        return exit::CANNOT_START;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::CANNOT_START;
        }
    };
    runtime.block_on(async move {
        let store = match Store::open(&state_path).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot open the state store `{}`: {e}", state_path.display());
                return exit::CANNOT_START;
            }
        };
        let run_id = new_run_id();
        let run_dir = state_path.parent().unwrap_or(Path::new(".")).join("runs").join(&run_id);
        let options = RunOptions {
            run_id: run_id.clone(),
            operator: operator(),
            max_parallel: std::thread::available_parallelism().map_or(2, |n| n.get()),
            base_dir,
            run_dir: run_dir.clone(),
            grace: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(60),
            confirm,
        };
        let json = opts.output == RunOutput::Json;
        if json {
            outln!(
                "{}",
                serde_json::json!({ "run_id": run_id, "runbook": runbook.name, "state": state_path })
            );
        } else {
            outln!(
                "run {run_id} of {} (state {}, logs {})",
                runbook.name,
                state_path.display(),
                display(&run_dir)
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let printer = tokio::spawn(print_reports(rx, json));
        let (cancel_tx, cancel) = watch::channel(false);
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let sigterm = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = sigterm => {}
            }
            let _ = cancel_tx.send(true);
        });
        let started = Instant::now();
        let result = Dispatcher::new(&runbook, &params, &secrets, &store, options, tx).run(cancel).await;
        let _ = printer.await;
        finish(&run_id, result, started.elapsed(), json)
    })
}

fn finish(run_id: &str, result: Result<Outcome, ExecError>, elapsed: Duration, json: bool) -> u8 {
    let took = humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64));
    match result {
        Ok(outcome) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "run_id": run_id, "status": outcome.status.as_str(), "last_hash": outcome.last_hash })
                );
            } else {
                outln!("run {run_id} {} in {took}", outcome.status.as_str());
                outln!("journal hash {} (keep it to detect a cut journal)", outcome.last_hash);
            }
            match outcome.status {
                RunStatus::Succeeded => exit::SUCCESS,
                RunStatus::Failed => exit::FAILED,
                RunStatus::NeedsOperator => exit::NEEDS_OPERATOR,
                RunStatus::Interrupted => exit::INTERRUPTED,
                RunStatus::Running => exit::FAILED,
            }
        }
        Err(ExecError::Store(StoreError::LockHeld(h))) => {
            eprintln!(
                "error: lock `{}` is held by run {} ({}, since {}); nothing ran",
                h.name, h.run_id, h.holder, h.acquired_at
            );
            exit::CANNOT_START
        }
        Err(e @ ExecError::Preconditions(_)) | Err(e @ ExecError::Unsupported(_)) => {
            eprintln!("error: {e}");
            exit::INVALID
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::CANNOT_START
        }
    }
}

async fn print_reports(mut rx: mpsc::UnboundedReceiver<Report>, json: bool) {
    let mut started: BTreeMap<String, Instant> = BTreeMap::new();
    while let Some(report) = rx.recv().await {
        if json {
            let value = match &report {
                Report::Recorded(r) => serde_json::to_value(r.as_ref()).unwrap_or_default(),
                Report::Output { step, stream, text } => serde_json::json!({
                    "output": { "step": step, "stream": if *stream == Stream::Stdout { "stdout" } else { "stderr" }, "text": text }
                }),
                Report::RetryScheduled { step, delay } => {
                    serde_json::json!({ "retry": { "step": step, "delay_ms": delay.as_millis() as u64 } })
                }
            };
            outln!("{value}");
            continue;
        }
        let line = match report {
            Report::Output { step, stream, text } => match stream {
                Stream::Stdout => format!("{step} | {text}"),
                Stream::Stderr => format!("{step} ! {text}"),
            },
            Report::RetryScheduled { step, delay } => {
                format!(
                    "  {step}: retrying in {}",
                    humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
                )
            }
            Report::Recorded(record) => match record.event {
                RunEvent::RunStarted { .. } | RunEvent::RunFinished { .. } => continue,
                RunEvent::StepStarted { step, attempt } => {
                    started.insert(step.clone(), Instant::now());
                    if attempt > 1 { format!("> {step} (attempt {attempt})") } else { format!("> {step}") }
                }
                RunEvent::StepSucceeded { step, outputs, .. } => {
                    let took = started
                        .get(&step)
                        .map(|t| format!(" in {:.1}s", t.elapsed().as_secs_f64()))
                        .unwrap_or_default();
                    let outs: Vec<String> = outputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let outs =
                        if outs.is_empty() { String::new() } else { format!(" ({})", outs.join(", ")) };
                    format!("ok {step}{took}{outs}")
                }
                RunEvent::AttemptFailed { step, attempt, reason, .. } => {
                    format!("x {step} attempt {attempt} {reason}")
                }
                RunEvent::StepFailed { step, reason, .. } => format!("FAILED {step}: {reason}"),
                RunEvent::StepSkipped { step, reason } => format!("skip {step}: {reason}"),
                RunEvent::CompensationStarted { step, .. } => format!("undo {step}"),
                RunEvent::CompensationSucceeded { step } => format!("undone {step}"),
                RunEvent::CompensationFailed { step, reason } => format!("UNDO FAILED {step}: {reason}"),
                RunEvent::RunInterrupted { reason } => format!("interrupted: {reason}"),
                RunEvent::OperatorDecision { step, decision, operator, reason } => {
                    format!("{operator} decided {decision:?} for {step}: {reason}")
                }
            },
        };
        outln!("{line}");
    }
}
