//! Shell completions (issue 17): clap_complete's dynamic protocol. The script a shell loads
//! (`runbook completions bash`, or `RUNBOOK_COMPLETE=bash runbook`) calls `runbook` back on
//! each TAB with `RUNBOOK_COMPLETE` set and the words of the line; `main` answers before
//! parsing anything ([`clap_complete::CompleteEnv`]). So commands and options always match
//! the binary, and values are completed from what is there now:
//!
//! - runbook files: `*.toml` files, and folders to descend into;
//! - params files: `*.toml` and `*.json` files;
//! - run ids: the runs of the state store named by `--state` on the line, else
//!   `$RUNBOOK_STATE`, else the default store;
//! - step names: the steps journaled by the run named on the line.
//!
//! The store is opened read-only ([`runbook_store::Store::open_read_only`]): a store that does
//! not exist is not created (no candidates), none is migrated, and a store that cannot be
//! reached within [`STORE_WAIT`] gives no candidates. A completer prints nothing: a failure
//! is an empty list.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter};
use clap_complete::env::EnvCompleter;

use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::out;

/// The environment variable of the protocol. Not clap's default `COMPLETE`: a variable that
/// generic could be set for something else, and `runbook` would then answer a completion
/// instead of running.
pub const VAR: &str = "RUNBOOK_COMPLETE";

/// Whether the arguments (after the program) have a shape of the protocol: none (print the
/// script) or `--` first (complete the words after it). Any other command line is a command,
/// whatever `RUNBOOK_COMPLETE` says.
pub fn asks(mut args: impl Iterator<Item = OsString>) -> bool {
    match args.next() {
        None => true,
        Some(first) => first == "--",
    }
}

/// How long a completion waits for the state store (a PostgreSQL server that does not
/// answer): a TAB must not hang.
const STORE_WAIT: Duration = Duration::from_secs(3);

/// `runbook completions SHELL`: the registration script of `shell`, as
/// `RUNBOOK_COMPLETE=SHELL runbook` prints it. The script calls back the binary as it was
/// started (`runbook` through `PATH`, or its full path).
pub fn script(shell: &dyn EnvCompleter) -> CliResult {
    let mut buf = Vec::new();
    shell.write_registration(VAR, "runbook", "runbook", &callback(), &mut buf).map_err(|e| {
        CliError::CannotStart(Message::new(format!("cannot write the completion script: {e}")))
    })?;
    out!("{}", String::from_utf8_lossy(&buf));
    Ok(Exit::Success)
}

/// The program the script calls: `argv[0]`, made absolute when it is a relative path with
/// folders (as clap_complete does for `RUNBOOK_COMPLETE=SHELL runbook`).
fn callback() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| OsString::from("runbook"));
    let path = Path::new(&argv0);
    let path = if path.components().count() > 1 && path.is_relative() {
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    path.to_string_lossy().into_owned()
}

/// The command line as `--help` knows it, with each value's completer attached by the
/// argument's id, in every command at any depth: one rule per kind of value, so a new
/// command's `run_id` or `file` completes without a line of its own (args.rs stays free of
/// completion).
pub fn command() -> clap::Command {
    wire(crate::args::command())
}

fn wire(mut cmd: clap::Command) -> clap::Command {
    let ids: Vec<String> = cmd.get_arguments().map(|a| a.get_id().to_string()).collect();
    for id in ids {
        if let Some(completer) = completer_of(&id) {
            cmd = cmd.mut_arg(id, |a| a.add(completer));
        }
    }
    let subcommands: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, wire);
    }
    cmd
}

/// The completer of an argument, by its id (the field's name in args.rs).
fn completer_of(id: &str) -> Option<ArgValueCompleter> {
    match id {
        // A runbook (`check`, `plan`, `run`, `submit`) or a schedules file.
        "file" | "files" | "schedules" => Some(runbook_files()),
        "params_file" => Some(params_files()),
        // A pinned plan (`run --plan`, `submit --plan`, `plan --diff OLD NEW`).
        "plan" | "diff" => Some(json_files()),
        "run_id" => Some(run_ids()),
        "step" | "rerun" | "skip" | "undo" => Some(steps()),
        _ => None,
    }
}

/// Runbook files (`*.toml`) and folders.
fn runbook_files() -> ArgValueCompleter {
    paths(PathCompleter::any().filter(|p| p.is_file() && has_extension(p, &["toml"])))
}

/// Params files (`*.toml`, `*.json`) and folders.
fn params_files() -> ArgValueCompleter {
    paths(PathCompleter::any().filter(|p| p.is_file() && has_extension(p, &["toml", "json"])))
}

/// Pinned plans (`*.json`) and folders.
fn json_files() -> ArgValueCompleter {
    paths(PathCompleter::any().filter(|p| p.is_file() && has_extension(p, &["json"])))
}

/// The file names of `completer`, only those that are plain shell words ([`shell_word`]).
fn paths(completer: PathCompleter) -> ArgValueCompleter {
    ArgValueCompleter::new(move |current: &OsStr| plain(completer.complete(current)))
}

/// Red team adv17b F3 (promise 4): a candidate is inserted into the command line as shell
/// text (bash's registration puts it in `COMPREPLY` without `-o filenames`, and how zsh,
/// fish, PowerShell and elvish quote differs, as does what the operator already typed: an
/// open quote), so a candidate the shell could interpret is left out rather than quoted:
/// a file or step named `$(touch x)` is still usable, typed by hand and quoted.
fn plain(candidates: Vec<CompletionCandidate>) -> Vec<CompletionCandidate> {
    candidates.into_iter().filter(|c| c.get_value().to_str().is_some_and(shell_word)).collect()
}

/// Whether `text` means itself as an unquoted word in every shell completed: letters and
/// digits (any script) and `. _ / @ % + = : , - ~` (`~` only after the first character),
/// and `[` `]` (a step instance's brackets: a glob in bash and zsh that can only match a file
/// name, never run anything). No whitespace, quote, `$`, backquote, `;|&<>()*?{}!#\^`, or
/// control or invisible character.
fn shell_word(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('~')
        && text.chars().all(|c| {
            c.is_alphanumeric() && !c.is_control()
                || matches!(c, '.' | '_' | '/' | '@' | '%' | '+' | '=' | ':' | ',' | '-' | '~' | '[' | ']')
        })
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension().and_then(OsStr::to_str).is_some_and(|e| extensions.contains(&e))
}

/// The run ids of the store, newest first, with their runbook and status as help; then the
/// runs submitted that no worker has started yet (`cancel`).
fn run_ids() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| -> Vec<CompletionCandidate> {
        let current = current.to_string_lossy();
        let Some((runs, queue)) = with_store(|store| async move {
            let runs = store.runs().await.ok()?;
            let queue = store.queue().await.unwrap_or_default();
            Some((runs, queue))
        }) else {
            return Vec::new();
        };
        let started: BTreeSet<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        let queued = queue
            .iter()
            .filter(|q| q.state == "queued" && !started.contains(q.run_id.as_str()))
            .map(|q| (q.run_id.clone(), format!("{} queued", q.runbook)));
        runs.iter()
            .map(|r| (r.run_id.clone(), format!("{} {}", r.runbook, r.status)))
            .chain(queued)
            .filter(|(id, _)| id.starts_with(current.as_ref()))
            .filter(|(id, _)| shell_word(id))
            .map(|(id, help)| CompletionCandidate::new(id).help(Some(help.into())))
            .collect()
    })
}

/// The steps journaled by the run named on the line (any word that is one of the store's
/// run ids), sorted.
fn steps() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| -> Vec<CompletionCandidate> {
        let current = current.to_string_lossy();
        let words = line_words();
        let steps = with_store(|store| async move {
            let runs = store.runs().await.ok()?;
            let run = runs.into_iter().find(|r| words.contains(&r.run_id))?;
            let records = store.records(&run.run_id).await.ok()?;
            let steps: BTreeSet<String> =
                records.iter().filter_map(|r| r.event.step().map(str::to_string)).collect();
            Some(steps)
        });
        steps
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.starts_with(current.as_ref()) && shell_word(s))
            .map(CompletionCandidate::new)
            .collect()
    })
}

/// The words of the line being completed: what follows `--` in this process's arguments.
fn line_words() -> Vec<String> {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// The store named on the line (`--state X`, `--state=X`), else by `$RUNBOOK_STATE`, else
/// the default one.
fn state_on_the_line(words: &[String]) -> Option<String> {
    let mut named = None;
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        if word == "--state" {
            named = iter.next().cloned();
        } else if let Some(value) = word.strip_prefix("--state=") {
            named = Some(value.to_string());
        }
    }
    named.filter(|s| !s.is_empty()).or_else(|| std::env::var("RUNBOOK_STATE").ok().filter(|s| !s.is_empty()))
}

/// `f` with the store opened read-only, or `None` when there is none, it cannot be opened,
/// or it takes longer than [`STORE_WAIT`].
fn with_store<T, F, Fut>(f: F) -> Option<T>
where
    F: FnOnce(runbook_store::Store) -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let state = state_on_the_line(&line_words());
    let location = crate::state::location(state.as_deref());
    crate::runtime::block_on(async move {
        let work = async move {
            let store = runbook_store::Store::open_read_only(&location).await.ok()??;
            f(store).await
        };
        Ok(tokio::time::timeout(STORE_WAIT, work).await.ok().flatten())
    })
    .ok()
    .flatten()
}
