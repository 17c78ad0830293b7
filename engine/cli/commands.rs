//! The commands: each turns arguments into core calls, prints, and returns an exit code.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use runbook_core::diagnostic;
use runbook_core::model::{ParamValue, Runbook};
use runbook_core::validate::{self, Checked};
use runbook_core::{Diagnostic, Source, inputs, plan, render, schema};

use crate::args::{CheckFormat, Cli, Command, Decisions, PlanFormat};
use crate::output::{out, outln};
use crate::{exit, loader, report};

/// Run one command line.
pub fn run(cli: Cli) -> u8 {
    let color = report::use_color(cli.color);
    if let Some(op) = cli.operator.filter(|o| !o.trim().is_empty()) {
        // A name nobody can read as typed (controls, escapes, invisible characters) is not
        // an identity: refused before anything is written.
        if let Some(problem) = runbook_core::journal::identity_problem(&op) {
            eprintln!("error: --as / RUNBOOK_OPERATOR: {problem}");
            eprintln!(
                "  help: use a name made of visible characters (letters, digits, `.`, `-`, `@`, spaces)"
            );
            return exit::USAGE;
        }
        crate::run::set_operator(op);
    }
    match cli.command {
        Command::Check { files, format } => check(&files, format, color),
        Command::Plan { file, params, params_file, format, out } => {
            plan_cmd(&file, &params, params_file.as_deref(), format, out.as_deref(), color)
        }
        Command::Submit { target, labels, yes, state } => crate::queue::submit(
            crate::queue::SubmitArgs { target: &target, labels: &labels, yes, state: state.as_deref() },
            color,
        ),
        Command::Cancel { run_id, reason, state } => crate::queue::cancel(&run_id, &reason, state.as_deref()),
        Command::Worker { concurrency, labels, poll, grace, state } => {
            crate::queue::worker(concurrency.max(1), &labels, poll, grace, state.as_deref())
        }
        Command::Run {
            target: crate::args::Target { file, params, params_file, plan },
            yes,
            wait,
            state,
            output,
            run_id,
        } => {
            crate::queue::die_with_worker();
            let opts = crate::run::RunArgs { yes, wait, state, output, run_id };
            match (plan, file) {
                (Some(plan), _) => crate::run::run_pinned(&plan, opts, color),
                (None, Some(file)) => crate::run::run(&file, &params, params_file.as_deref(), opts, color),
                (None, None) => exit::USAGE,
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
            crate::queue::die_with_worker();
            crate::run::resume(
                crate::run::ResumeArgs {
                    run_id,
                    rerun,
                    skip,
                    undo,
                    reason,
                    expect_hash,
                    yes,
                    wait,
                    state,
                    output,
                },
                color,
            )
        }
        Command::Compensate {
            run_id,
            decisions: Decisions { rerun, skip, undo, reason, expect_hash },
            yes,
            state,
            output,
        } => crate::run::compensate(
            crate::run::ResumeArgs {
                run_id,
                rerun,
                skip,
                undo,
                reason,
                expect_hash,
                yes,
                wait: false,
                state,
                output,
            },
            color,
        ),
        Command::Approve { run_id, step, inputs, reason, state } => {
            crate::approve::decide(&run_id, &step, true, &inputs, reason.as_deref().unwrap_or(""), state)
        }
        Command::Reject { run_id, step, reason, state } => {
            crate::approve::decide(&run_id, &step, false, &[], &reason, state)
        }
        Command::Runs { state, format, watch } => crate::history::runs(state, format, watch),
        Command::Report { run_id, format, drill, state } => {
            crate::history::report(&run_id, format, drill, state)
        }
        Command::Show { run_id, follow, state } => crate::history::show(&run_id, follow, state),
        Command::Logs { run_id, step, state } => crate::history::logs(&run_id, step.as_deref(), state),
        Command::Audit(a) => match a.command {
            Some(crate::args::AuditCommand::Verify { run_id, expect_hash, state }) => {
                crate::history::verify(run_id.as_deref(), expect_hash.as_deref(), state)
            }
            None => match a.run_id {
                Some(run_id) => crate::history::audit(&run_id, a.format, a.state),
                None => {
                    eprintln!("error: give a run id (`runbook audit RUN_ID`) or `runbook audit verify`");
                    exit::USAGE
                }
            },
        },
        Command::Reaper => {
            runbook_exec::process::reaper_main();
            exit::SUCCESS
        }
        Command::Tie { parent, argv } => tie(parent, &argv),
        Command::State(crate::args::StateCommand::Migrate { state, identity, map }) => {
            crate::state::migrate(state.as_deref(), identity.as_deref(), &map)
        }
        Command::State(crate::args::StateCommand::Check { state }) => crate::state::check(state.as_deref()),
        Command::Schema => {
            out!("{}", schema::schema_text());
            exit::SUCCESS
        }
    }
}

pub fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Read, parse and validate one file (and its includes).
fn load(path: &Path) -> Checked {
    let shown = display(path);
    // A file named on the command line is quoted in diagnostics when it is a runbook, or a
    // `.toml` file named directly (a runbook being written has syntax errors). Anything else
    // (`check evil.toml` where `evil.toml` links to `../../app.env`, `check .env`) gets one
    // line without its content: a CI job may check file names an attacker chose.
    let quotable = |text: &str| {
        validate::is_runbook_text(text)
            || (path.extension().is_some_and(|e| e == "toml")
                && std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink()))
    };
    match loader::read(&shown).and_then(|t| {
        if quotable(&t) {
            Ok(t)
        } else {
            Err("it is not a runbook (a TOML file with a `[runbook]` table); its content is not shown".into())
        }
    }) {
        Ok(text) => {
            let includes = loader::FsLoader::for_runbook(&shown);
            validate::check(Source::new(shown, text), &includes)
        }
        Err(e) => Checked {
            runbook: None,
            diagnostics: vec![
                Diagnostic::error(
                    runbook_core::Code::Io,
                    &Source::new(shown.clone(), ""),
                    Default::default(),
                    format!("cannot read `{shown}`: {e}"),
                )
                .with_help("check the path; it is relative to the current directory"),
            ],
        },
    }
}

pub fn print_diagnostics(diags: &[Diagnostic], color: bool) {
    if diags.is_empty() {
        return;
    }
    eprint!("{}", report::human(diags, color));
    if let Some(s) = report::summary(diags) {
        eprintln!("{s}");
    }
}

fn check(files: &[std::path::PathBuf], format: CheckFormat, color: bool) -> u8 {
    let mut all = Vec::new();
    for f in files {
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
            if !invalid {
                let n = files.len();
                eprintln!("ok: {n} runbook{} valid", if n == 1 { "" } else { "s" });
            }
        }
    }
    if invalid { exit::INVALID } else { exit::SUCCESS }
}

/// Load and validate a runbook and resolve its parameters, printing every problem.
/// `Err` is the exit code to return.
pub fn load_with_params(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    color: bool,
) -> Result<(Arc<Runbook>, BTreeMap<String, ParamValue>), u8> {
    let checked = load(file);
    let invalid = checked.diagnostics.iter().any(|d| d.severity == runbook_core::Severity::Error);
    print_diagnostics(&checked.diagnostics, color);
    let Some(runbook) = checked.runbook.filter(|_| !invalid) else {
        return Err(exit::INVALID);
    };
    let mut given = BTreeMap::new();
    let mut problems = Vec::new();
    if let Some(pf) = params_file {
        let shown = display(pf);
        match loader::read(&shown) {
            Ok(text) => {
                let (values, diags) = inputs::from_file(&Source::new(shown.clone(), text), &runbook);
                given.extend(values);
                // Its lines are quoted only when it is a `.toml` file named directly: a link
                // or another kind of file could be anything (an `.env` file of passwords).
                let direct = pf.extension().is_some_and(|e| e == "toml")
                    && std::fs::symlink_metadata(pf).is_ok_and(|m| !m.file_type().is_symlink());
                if direct || diags.is_empty() {
                    problems.extend(diags);
                } else {
                    problems.push(
                        Diagnostic::error(
                            runbook_core::Code::InvalidParamValue,
                            &Source::new(shown.clone(), ""),
                            Default::default(),
                            format!("params file `{shown}` is not valid ({} problems); its content is not shown", diags.len()),
                        )
                        .with_help("name a `.toml` params file directly (not through a symbolic link) to see the problems"),
                    );
                }
            }
            Err(e) => problems.push(Diagnostic::error(
                runbook_core::Code::Io,
                &Source::new(shown.clone(), ""),
                Default::default(),
                format!("cannot read params file `{shown}`: {e}"),
            )),
        }
    }
    let (values, diags) = inputs::from_args(args, &runbook);
    given.extend(values);
    problems.extend(diags);
    if problems.is_empty() {
        match inputs::resolve(&runbook, &given) {
            Ok(v) => return Ok((runbook, v)),
            Err(d) => problems.extend(d),
        }
    }
    print_diagnostics(&problems, color);
    Err(exit::INVALID)
}

fn plan_cmd(
    file: &Path,
    args: &[(String, String)],
    params_file: Option<&Path>,
    format: PlanFormat,
    out: Option<&Path>,
    color: bool,
) -> u8 {
    let (runbook, values) = match load_with_params(file, args, params_file, color) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut plan = match plan::plan(&runbook, &values) {
        Ok(p) => p,
        Err(d) => {
            print_diagnostics(&d, color);
            return exit::INVALID;
        }
    };
    // Every other file the run will read, digested (and a SQL script shown): the reviewer
    // sees what runs, and `run --plan` refuses if any of them changed.
    plan.reads = match pinned_reads(&runbook, params_file) {
        Ok(r) => r,
        Err(code) => return code,
    };
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
        return exit::SUCCESS;
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
    if let Some(out) = out
        && let Err(e) = std::fs::write(out, format!("{json}\n"))
    {
        eprintln!("error: cannot write the plan to `{}`: {e}", display(out));
        return exit::CANNOT_START;
    }
    match format {
        PlanFormat::Text => out!("{}", render::text(&plan)),
        PlanFormat::Json => outln!("{json}"),
        PlanFormat::Markdown => out!("{}", render::markdown(&plan)),
        PlanFormat::Dot => out!("{}", render::dot(&plan)),
    }
    if let Some(out) = out {
        eprintln!("pinned plan written to {}", display(out));
    }
    leave_to_exit((runbook, plan, json));
    exit::SUCCESS
}

/// The `reads` of a plan: every other file a run of `runbook` reads, and the params file the
/// values came from, each with its digest (a SQL script with its text). `Err` is the exit
/// code, the reasons printed.
pub fn pinned_reads(runbook: &Runbook, params_file: Option<&Path>) -> Result<Vec<plan::PlanRead>, u8> {
    let mut reads = loader::reads(runbook).map_err(|problems| {
        for p in problems {
            eprintln!("error: {p}");
        }
        eprintln!("  help: paths are relative to the folder of the runbook that names them");
        exit::INVALID
    })?;
    if let Some(pf) = params_file {
        let read = runbook_core::model::FileRead {
            kind: runbook_core::model::ReadKind::ParamsFile,
            path: display(pf),
        };
        match loader::read_bytes(&read.path) {
            Ok(bytes) => reads.push(plan::reads_entry(&read, &bytes)),
            Err(e) => {
                eprintln!("error: cannot read params file `{}`: {e}", read.path);
                return Err(exit::INVALID);
            }
        }
    }
    Ok(reads)
}

/// The command is done and the process ends right after: freeing a big runbook and its plan
/// value by value (thousands of small allocations) would only delay the exit. The operating
/// system takes the memory back at once.
fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// `runbook __tie PARENT -- PROGRAM ARGS...`: become the step's program (returns only when
/// that failed). `main` calls it before clap parses anything (every step pays for it).
pub fn tie(parent: i32, argv: &[std::ffi::OsString]) -> u8 {
    let error = runbook_exec::process::tie_main(parent, argv);
    let program = argv.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    eprintln!("runbook: cannot start the step's program `{program}`: {error}");
    exit::STEP_NOT_STARTED
}
