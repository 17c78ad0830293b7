//! `runbook man`: the man pages, made by clap_mangen from the same clap definition as
//! `--help`, so they never disagree with the binary. Without `--out`, the page of `runbook`
//! (its commands listed as `runbook-run(1)`, ...) goes to standard output; with `--out DIR`,
//! that page and one per command, nested commands included (`runbook-state-migrate.1`),
//! are written into DIR. Hidden (internal) commands have no page.

use std::path::Path;

use crate::error::{CliError, CliResult, Exit, Message};
use crate::output::{out, outln};

/// `runbook man [--out DIR]`.
pub fn man(out_dir: Option<&Path>) -> CliResult {
    let mut cmd = crate::args::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = out_dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page).map_err(|e| cannot("render the man page", &e))?;
        out!("{}", String::from_utf8_lossy(&page));
        return Ok(Exit::Success);
    };
    std::fs::create_dir_all(dir).map_err(|e| cannot(&format!("create `{}`", dir.display()), &e))?;
    let mut written = Vec::new();
    write_pages(cmd, dir, &mut written)?;
    written.sort();
    outln!("wrote {} man pages into {}: {}", written.len(), dir.display(), written.join(" "));
    Ok(Exit::Success)
}

/// The page of `cmd` and of each of its visible commands, depth first.
fn write_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<String>) -> Result<(), CliError> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        write_pages(sub, dir, written)?;
    }
    let page = clap_mangen::Man::new(cmd);
    let name = page.get_filename();
    page.generate_to(dir).map_err(|e| cannot(&format!("write `{}`", dir.join(&name).display()), &e))?;
    written.push(name);
    Ok(())
}

fn cannot(what: &str, e: &std::io::Error) -> CliError {
    CliError::CannotStart(Message::new(format!("cannot {what}: {e}")))
}
