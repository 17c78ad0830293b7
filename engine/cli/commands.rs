//! The commands: the top of the CLI. `run` hands each command line to its module (`run`,
//! `queue`, `approve`, `history`, `state`) or does it here (`check`, `plan`, `schema`); each
//! prints its output and returns its outcome, or the error that `main` prints.

use std::path::Path;

use runbook_core::{diagnostic, plan, render, schema};

use crate::args::{
    AuditCommand, CheckFormat, Cli, Command, CompletionShell, Decisions, PlanFormat, StateCommand, Target,
};
use crate::error::{CliError, CliResult, Exit, Message};
use crate::input::{display, load, load_with_params, pinned_reads, print_diagnostics};
use crate::output::{out, outln};
use crate::{approve, history, identity, queue, report, run, state};

/// Run one command line: its outcome, or the error `main` prints.
pub fn run(cli: Cli) -> CliResult {
    let color = report::use_color(cli.color);
    crate::output::set_color(report::color_on(
        cli.color,
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
    ));
    identity::declare(cli.operator)?;
    match cli.command {
        Command::Check { files, format } => Ok(check(&files, format, color)),
        Command::Plan { file, params, params_file, format, out, diff, against } => {
            match (diff, file, against) {
                (Some(pair), _, _) => match pair.as_slice() {
                    [old, new] => crate::plan_diff::files(old, new, format),
                    // clap takes exactly two.
                    _ => {
                        Err(CliError::Usage(Message::new("`--diff` takes two plan files: OLD.json NEW.json")))
                    }
                },
                (None, Some(file), Some(rev)) => crate::plan_diff::against(
                    crate::plan_diff::Against {
                        file: &file,
                        rev: &rev,
                        params: &params,
                        params_file: params_file.as_deref(),
                    },
                    format,
                    color,
                ),
                (None, Some(file), None) => {
                    plan_cmd(&file, &params, params_file.as_deref(), format, out.as_deref(), color)
                }
                // clap requires one of them.
                (None, None, _) => {
                    Err(CliError::Usage(Message::new("give a runbook file or `--diff OLD.json NEW.json`")))
                }
            }
        }
        Command::Submit { target, labels, yes, state } => queue::submit(
            queue::SubmitArgs { target: &target, labels: &labels, yes, state: state.state.as_deref() },
            color,
        ),
        Command::Cancel { run_id, reason, state } => queue::cancel(&run_id, &reason, state.state.as_deref()),
        Command::Worker { concurrency, labels, poll, grace, state, schedules } => queue::worker(
            queue::WorkerArgs {
                concurrency: concurrency.max(1),
                labels: &labels,
                poll,
                grace,
                schedules: schedules.as_deref(),
            },
            state.state.as_deref(),
        ),
        Command::Run {
            target: Target { file, params, params_file, plan },
            yes,
            wait,
            state,
            output,
            run_id,
        } => {
            queue::die_with_worker()?;
            let opts = run::RunArgs { yes, wait, state: state.state, output, run_id };
            match (plan, file) {
                (Some(plan), _) => run::run_pinned(&plan, opts, color),
                (None, Some(file)) => run::run(&file, &params, params_file.as_deref(), opts, color),
                // clap requires one of them.
                (None, None) => {
                    Err(CliError::Usage(Message::new("give a runbook file or `--plan PLAN.json`")))
                }
            }
        }
        Command::Resume {
            run_id,
            decisions: Decisions { rerun, skip, undo, reason, expect_hash },
            yes,
            wait,
            state,
            output,
        } => {
            queue::die_with_worker()?;
            run::resume(run::ResumeArgs {
                run_id,
                rerun,
                skip,
                undo,
                reason,
                expect_hash,
                yes,
                wait,
                state: state.state,
                output,
            })
        }
        Command::Compensate {
            run_id,
            decisions: Decisions { rerun, skip, undo, reason, expect_hash },
            yes,
            state,
            output,
        } => run::compensate(run::ResumeArgs {
            run_id,
            rerun,
            skip,
            undo,
            reason,
            expect_hash,
            yes,
            wait: false,
            state: state.state,
            output,
        }),
        Command::Approve { run_id, step, inputs, reason, state } => {
            approve::decide(&run_id, &step, true, &inputs, reason.as_deref().unwrap_or(""), state.state)
        }
        Command::Reject { run_id, step, reason, state } => {
            approve::decide(&run_id, &step, false, &[], &reason, state.state)
        }
        Command::Runs { state, format, watch, runbook, status, by, since, limit } => {
            let filter = runbook_store::RunFilter { runbook, statuses: status, operator: by, since, limit };
            history::runs(state.state, format, watch, &filter)
        }
        Command::Report { run_id, format, drill, state } => {
            history::report(&run_id, format, drill, state.state)
        }
        Command::Show { run_id, follow, state } => history::show(&run_id, follow, state.state),
        Command::Logs { run_id, step, state } => history::logs(&run_id, step.as_deref(), state.state),
        Command::Audit(a) => match a.command {
            Some(AuditCommand::Verify { run_id, expect_hash, schedule: Some(name), state }) => {
                let _ = run_id; // clap refuses a run id beside `--schedule`
                history::verify_schedule(&name, expect_hash.as_deref(), state.state)
            }
            Some(AuditCommand::Verify { run_id, expect_hash, schedule: None, state }) => {
                history::verify(run_id.as_deref(), expect_hash.as_deref(), state.state)
            }
            Some(AuditCommand::Schedule { name, format, state }) => {
                history::audit_schedule(&name, format, state.state)
            }
            None => match a.run_id {
                Some(run_id) => history::audit(&run_id, a.format, a.state.state),
                None => Err(CliError::Usage(Message::new(
                    "give a run id (`runbook audit RUN_ID`) or `runbook audit verify`",
                ))),
            },
        },
        Command::Reaper => {
            runbook_exec::process::reaper_main();
            Ok(Exit::Success)
        }
        Command::Tie { parent, argv } => Err(tie(parent, &argv)),
        Command::Abandon { run_id, reason, reason_file, compensate, yes, state } => {
            let reason = match (reason, reason_file) {
                (Some(reason), _) => reason,
                (None, Some(file)) => crate::abandon::read_reason(&file)?,
                (None, None) => String::new(),
            };
            crate::abandon::abandon(crate::abandon::AbandonArgs {
                run_id,
                reason,
                compensate,
                yes,
                state: state.state,
            })
        }
        Command::State(StateCommand::Migrate { state, identity, map }) => {
            state::migrate(state.state.as_deref(), identity.as_deref(), &map)
        }
        Command::State(StateCommand::Check { state }) => state::check(state.state.as_deref()),
        Command::Serve { command: Some(command), .. } => crate::serve::token(command),
        Command::Serve { command: None, listen, state, runbooks, host, auth, trusted_proxy, user_header } => {
            crate::serve::serve(
                listen,
                state.state,
                runbooks,
                host,
                crate::serve::auth(auth, trusted_proxy, user_header)?,
            )
        }
        Command::Schedules { file, next, at, format, state } => crate::schedules::list(
            crate::schedules::ListArgs {
                file: &file,
                next,
                at: at.as_deref(),
                format,
                state: state.state.as_deref(),
            },
            cli.color,
        ),
        Command::Completions { shell } => crate::complete::script(match shell {
            CompletionShell::Bash => &clap_complete::env::Bash,
            CompletionShell::Zsh => &clap_complete::env::Zsh,
            CompletionShell::Fish => &clap_complete::env::Fish,
            CompletionShell::Powershell => &clap_complete::env::Powershell,
            CompletionShell::Elvish => &clap_complete::env::Elvish,
        }),
        Command::Man { out } => crate::man::man(out.as_deref()),
        Command::New { name, template, dir } => crate::scaffold::new(&name, template, &dir),
        Command::Schema => {
            out!("{}", schema::schema_text());
            Ok(Exit::Success)
        }
        Command::List { dir, format, state } => crate::catalog::list(&dir, format, state.state),
    }
}

/// `runbook check`: its report of problems is its output (an invalid file is not an error
/// of the command: exit 3 says the answer).
fn check(files: &[std::path::PathBuf], format: CheckFormat, color: bool) -> Exit {
    let mut all = Vec::new();
    let mut schedule_files = 0;
    for f in files {
        // A schedules file (`[schedule.NAME]` tables, no `[runbook]`) is checked as one,
        // with the runbooks it names; any other file as a runbook.
        if let Ok(text) = crate::loader::read(&display(f))
            && crate::schedules::is_schedules(&text)
        {
            schedule_files += 1;
            let (schedules, diags) = crate::schedules::check_text(f, text);
            all.extend(diags);
            leave_to_exit(schedules);
            continue;
        }
        let checked = load(f);
        all.extend(checked.diagnostics);
        leave_to_exit(checked.runbook);
    }
    diagnostic::sort(&mut all);
    let invalid = all.iter().any(|d| d.severity == runbook_core::Severity::Error);
    match format {
        CheckFormat::Json => outln!("{}", report::json(&all)),
        CheckFormat::Human => {
            print_diagnostics(&all, color);
            if let Some(summary) = report::summary(&all) {
                crate::output::errln!("{summary}");
            }
            if !invalid {
                let n = files.len() - schedule_files;
                let plural = |n: usize| if n == 1 { "" } else { "s" };
                match (n, schedule_files) {
                    (n, 0) => crate::output::errln!("ok: {n} runbook{} valid", plural(n)),
                    (0, m) => crate::output::errln!("ok: {m} schedules file{} valid", plural(m)),
                    (n, m) => crate::output::errln!(
                        "ok: {n} runbook{} and {m} schedules file{} valid",
                        plural(n),
                        plural(m)
                    ),
                }
            }
        }
    }
    if invalid { Exit::Invalid } else { Exit::Success }
}

fn plan_cmd(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    format: PlanFormat,
    out: Option<&Path>,
    color: bool,
) -> CliResult {
    let (runbook, values) = load_with_params(file, args, params_file, color)?;
    let mut plan = plan::plan(&runbook, &values).map_err(CliError::Diagnostics)?;
    // Every other file the run will read, digested (and a SQL script shown): the reviewer
    // sees what runs, and `run --plan` refuses if any of them changed.
    plan.reads = pinned_reads(&runbook, params_file)?;
    // Only to the terminal or a pipe: streamed as it is made, through a buffer of its own
    // (standard output's line buffering would write it a line at a time).
    if format == PlanFormat::Json && out.is_none() {
        crate::output::write_with(|w| {
            use std::io::Write as _;
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, w);
            serde_json::to_writer_pretty(&mut w, &plan)?;
            w.write_all(b"\n")?;
            w.flush()
        });
        leave_to_exit((runbook, plan));
        return Ok(Exit::Success);
    }
    // The JSON document only when it is asked for. Sized up front: a plan runs to about
    // 750 bytes a step, and regrowing a buffer of megabytes costs more than writing it.
    let json = if format == PlanFormat::Json || out.is_some() {
        let mut buf = Vec::with_capacity(4096 + 1024 * (plan.steps.len() + plan.finally.len()));
        match serde_json::to_writer_pretty(&mut buf, &plan) {
            Ok(()) => String::from_utf8(buf).unwrap_or_default(),
            Err(_) => String::new(),
        }
    } else {
        String::new()
    };
    // What `plan -o` writes, `run --plan` reads (red team adv17b F4: a pretty-printed plan
    // indents each included runbook once more, so deep includes could write a plan past the
    // bound a plan file is read with).
    if let Some(out) = out
        && json.len() as u64 + 1 > crate::loader::MAX_PLAN_BYTES
    {
        return Err(CliError::Invalid(Message::new(format!(
            "the plan is {} MiB, more than the {} MiB a pinned plan may hold (`run --plan` reads no more): nothing was written to `{}`; include fewer levels deep, or split the runbook",
            json.len() / (1024 * 1024),
            crate::loader::MAX_PLAN_BYTES / (1024 * 1024),
            display(out)
        ))));
    }
    if let Some(out) = out
        && let Err(e) = runbook_store::write_outside_store(out, format!("{json}\n").as_bytes())
    {
        return Err(CliError::CannotStart(Message::new(format!(
            "cannot write the plan to `{}`: {e}",
            display(out)
        ))));
    }
    match format {
        PlanFormat::Text => out!("{}", render::text(&plan)),
        PlanFormat::Json => outln!("{json}"),
        PlanFormat::Markdown => out!("{}", render::markdown(&plan)),
        PlanFormat::Dot => out!("{}", render::dot(&plan)),
        PlanFormat::Html => out!("{}", render::html(&plan)),
    }
    if let Some(out) = out {
        crate::output::errln!("pinned plan written to {}", display(out));
    }
    leave_to_exit((runbook, plan, json));
    Ok(Exit::Success)
}

/// The command is done and the process ends right after: freeing a big runbook and its plan
/// value by value (thousands of small allocations) would only delay the exit. The operating
/// system takes the memory back at once.
fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// `runbook __tie PARENT -- PROGRAM ARGS...`: become the step's program; returns only when
/// that failed, with the error to print. `main` calls it before clap parses anything (every
/// step pays for this process's start: bench/exec).
pub fn tie(parent: i32, argv: &[std::ffi::OsString]) -> CliError {
    let error = runbook_exec::process::tie_main(parent, argv);
    let program = argv.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    CliError::StepNotStarted { program, error: error.to_string() }
}
