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
    let target = dir.join(&name);
    let mut text = Vec::new();
    page.render(&mut text).map_err(|e| cannot("render the man page", &e))?;
    replace(&target, &text).map_err(|e| cannot(&format!("write `{}`", target.display()), &e))?;
    written.push(name);
    Ok(())
}

/// Writes `text` as the file `target`, never through what is there (red team adv17b F9): a
/// new file is created beside it (`create_new`: an existing name, a symbolic link among
/// them, is refused, never followed) and renamed over `target`, which replaces a link
/// planted there rather than the file it points at.
fn replace(target: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written =
        runbook_store::open_outside_store(&tmp, std::fs::OpenOptions::new().write(true).create_new(true))
            .and_then(|mut f| f.write_all(text).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, target));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn cannot(what: &str, e: &std::io::Error) -> CliError {
    CliError::CannotStart(Message::new(format!("cannot {what}: {e}")))
}
