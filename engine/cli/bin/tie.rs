//! `runbook-tie ENGINE_PID EXECUTABLE -- PROGRAM ARGS...`: the small binary every step's
//! program starts through when the engine has a reaper (`engine/exec/src/process.rs`,
//! `run_tied`). It asks the kernel to SIGKILL it when its parent (the engine's thread) dies,
//! checks that the parent is still `ENGINE_PID`, then becomes the program with one `execvp`
//! (same process, same group), which keeps that signal: the step's main process dies with the
//! engine even when the reaper is killed too.
//!
//! It does what `runbook __tie ENGINE_PID -- PROGRAM ARGS...` does (`process::tie_main`,
//! kept as the fallback when this binary is not next to `runbook`), without starting the
//! whole engine's binary for every step: no clap, no tokio, no allocator of its own, a few
//! hundred relocations instead of 36,000 (bench/README.md, issue 13). `EXECUTABLE` is where
//! the engine found `PROGRAM` on the step's `PATH` (or `PROGRAM` itself), so a step costs one
//! `execve`; if that one fails, `PROGRAM` is searched again as `execvp` always did.
//!
//! `runbook-tie __reaper` is the engine's reaper (`process::reaper_main`, as `runbook
//! __reaper` runs it): a process of every run that, started from the 130 MB `runbook`, cost
//! its dynamic loader about 1 ms of CPU a run (bench/README.md, issue 13, "the targets").
//!
//! It creates no process: it replaces itself (`clippy.toml`, `tests/tidy.rs`: only
//! `process.rs` spawns). A program that cannot be started is reported as `runbook __tie`
//! reports it (`CliError::StepNotStarted`, exit code 127, `exit::STEP_NOT_STARTED`).

use std::ffi::OsString;
use std::process::ExitCode;

/// `exit::STEP_NOT_STARTED`: the program could not be started (as a shell says it).
const STEP_NOT_STARTED: u8 = 127;
/// A command line this binary does not understand (clap's code for usage errors).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "__reaper") {
        runbook_exec::process::reaper_main();
        return ExitCode::SUCCESS;
    }
    let mut raw = std::env::args_os().skip(1);
    let parent = raw.next().and_then(|p| p.to_str().and_then(|p| p.parse::<i32>().ok()));
    let executable = raw.next();
    let dashes = raw.next().is_some_and(|a| a == "--");
    let argv: Vec<OsString> = raw.collect();
    let (Some(parent), Some(executable), true, Some(program)) =
        (parent, executable, dashes, argv.first().cloned())
    else {
        eprintln!(
            "runbook-tie: usage: runbook-tie ENGINE_PID EXECUTABLE -- PROGRAM ARGS... (the engine starts it)"
        );
        return ExitCode::from(USAGE);
    };
    let error = tie(parent, executable, argv);
    // `CliError::StepNotStarted`, as `runbook __tie` prints it.
    eprintln!("runbook: cannot start the step's program `{}`: {error}", program.to_string_lossy());
    ExitCode::from(STEP_NOT_STARTED)
}

/// Become the program; returns only on failure ([`runbook_exec::process::tie_exec`], as
/// `runbook __tie` does: default signal dispositions for the program, red team adv27 T1).
fn tie(parent: i32, executable: OsString, argv: Vec<OsString>) -> std::io::Error {
    runbook_exec::process::tie_exec(parent, Some(&executable), &argv)
}
