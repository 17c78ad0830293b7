//! `runbook`: run operational runbooks written in TOML.
//!
//! This binary is the only place that prints and picks exit codes; everything it shows
//! comes from `runbook-core`. A command returns its outcome or a [`error::CliError`]; the
//! error is printed here, once, and its `code()` is the exit code.

// Standard error goes through `output::err!`/`errln!`, which survive a closed pipe
// (red team adv13b F8): `eprint!` would panic and exit 101.
#![deny(clippy::print_stderr)]

mod abandon;
mod approve;
mod args;
mod as_started;
mod catalog;
mod commands;
mod complete;
mod error;
mod exit;
mod history;
mod identity;
mod input;
mod loader;
mod man;
mod output;
mod plan_diff;
mod preflight;
mod prompt;
mod queue;
mod queued;
mod report;
mod run;
mod runtime;
mod scaffold;
mod schedules;
mod serve;
mod state;

use std::process::ExitCode;

use clap::FromArgMatches;

fn main() -> ExitCode {
    // `runbook __tie PARENT -- PROGRAM ARGS...` starts every step's program, so every step
    // pays for this process's start: it becomes the program without parsing the command
    // line with clap first (bench/exec). Any other shape is clap's to parse and refuse.
    let mut raw = std::env::args_os().skip(1);
    if raw.next().is_some_and(|a| a == "__tie")
        && let Some(parent) = raw.next().and_then(|p| p.to_str().and_then(|p| p.parse::<i32>().ok()))
        && raw.next().is_some_and(|a| a == "--")
    {
        let argv: Vec<std::ffi::OsString> = raw.collect();
        if !argv.is_empty() {
            let error = commands::tie(parent, &argv);
            crate::output::err!("{}", error.render(report::use_color(args::Color::Auto)));
            return ExitCode::from(error.code());
        }
    }
    // Signals a launcher left blocked (a supervisor that blocks SIGTERM) would never reach
    // the engine's handlers: it could not be stopped cleanly, nor reap its steps (red team
    // adv28 T2). No thread exists yet, so this mask is every later thread's.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    // A shell asking for completions (`RUNBOOK_COMPLETE=bash runbook -- WORDS...`, from the
    // script of `runbook completions`): answered here, before anything is parsed or opened,
    // and the process exits. Only the protocol's shapes ask (`runbook` alone for the script,
    // `runbook -- WORDS`): with the variable left in an environment, clap would answer any
    // command line with the script and exit 0, so `runbook check` in CI would pass without
    // checking anything.
    if complete::asks(std::env::args_os().skip(1)) {
        clap_complete::CompleteEnv::with_factory(complete::command).var(complete::VAR).complete();
    }
    // `args::command()`, not `Cli::parse()`: it shows `--as` only where it is recorded.
    let cli = args::Cli::from_arg_matches(&args::command().get_matches())
        .unwrap_or_else(|e| e.format(&mut args::command()).exit());
    let color = report::use_color(cli.color);
    match commands::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        // The one place an error is printed.
        Err(error) => {
            crate::output::err!("{}", error.render(color));
            ExitCode::from(error.code())
        }
    }
}

// The validator and planner allocate many small values; mimalloc halves that cost and the
// page faults behind it (measured with bench/run on a 5,000-step runbook). Its v2 line: v3
// backed the same work with twice the memory (67 MB against 37 MB for a 5,000-step plan)
// and was slower for it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
