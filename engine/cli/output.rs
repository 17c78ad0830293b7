//! Writing to standard output and standard error. A closed pipe (`runbook audit ID | head`)
//! ends the program quietly with success, like other Unix tools, instead of a panic from
//! `println!`. Standard error is written with [`err!`]/[`errln!`], which ignore a write that
//! fails (a closed pipe: `runbook check f 2>&1 | head -c1`): the exit code stays the error's
//! own, never a panic's 101 (red team adv13b F8). `eprint!` is denied in this crate
//! (`clippy::print_stderr` in main.rs).

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// While a run is in progress, losing standard output must not stop the engine mid-step:
/// output is then dropped, and the run goes on (it is all in the journal and the logs).
static KEEP_RUNNING: AtomicBool = AtomicBool::new(false);

/// Whether standard output is coloured (`--color`, `NO_COLOR`, a terminal), decided once
/// by `commands::run` before any command prints.
static COLOR: AtomicBool = AtomicBool::new(false);

/// Colour standard output from now on, or not.
pub fn set_color(on: bool) {
    COLOR.store(on, Ordering::SeqCst);
}

/// What an engine's word says: it went well, it is being undone, it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Green.
    Ok,
    /// Yellow.
    Undo,
    /// Red.
    Failed,
}

/// `word` in its tone's colour when standard output is coloured. Only the engine's own
/// words are painted (`ok`, `FAILED`, a status name), never a value: a value reaches the
/// terminal escaped (`runbook_core::shown`), and colour adds no way around that.
pub fn paint(word: &str, tone: Tone) -> String {
    if !COLOR.load(Ordering::SeqCst) {
        return word.to_string();
    }
    let code = match tone {
        Tone::Ok => "32",
        Tone::Undo => "33",
        Tone::Failed => "31",
    };
    format!("\x1b[{code}m{word}\x1b[0m")
}

/// The tone of a status name a list or `show` prints (a run's, a step's, a queued run's);
/// none for the others and for any text the engine does not know.
pub fn status_tone(status: &str) -> Option<Tone> {
    match status {
        "succeeded" => Some(Tone::Ok),
        "failed" | "refused" | "needs_operator" => Some(Tone::Failed),
        s if s == runbook_exec::dispatch::ENGINE_GONE => Some(Tone::Failed),
        "interrupted" | "abandoned" | "compensated" | "cancelled" => Some(Tone::Undo),
        _ => None,
    }
}

/// A status name padded to `width`, painted by its tone (the padding outside the colour).
pub fn status_cell(status: &str, width: usize) -> String {
    let pad = " ".repeat(width.saturating_sub(status.chars().count()));
    match status_tone(status) {
        Some(tone) => format!("{}{pad}", paint(status, tone)),
        None => format!("{status}{pad}"),
    }
}

/// From now on, ignore a closed or failing standard output instead of exiting.
pub fn keep_running_without_stdout() {
    KEEP_RUNNING.store(true, Ordering::SeqCst);
}

/// Write formatted text to standard output.
pub fn write(args: fmt::Arguments<'_>) {
    write_with(|out| out.write_fmt(args));
}

/// Write to standard output with `f`, which gets it locked, and flush it; a big document
/// (a plan's JSON) goes out as it is made instead of through a copy in memory.
pub fn write_with(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = f(&mut out).and_then(|()| out.flush()) {
        if KEEP_RUNNING.load(Ordering::SeqCst) {
            return;
        }
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        write_err(format_args!("error: cannot write to standard output: {e}\n"));
        std::process::exit(i32::from(crate::exit::CANNOT_START));
    }
}

/// `print!` that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*)) };
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Write formatted text to standard error; a failed write (a closed pipe, a full disk) is
/// ignored: there is nowhere left to say it.
pub fn write_err(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.flush());
}

/// `eprint!` that survives a closed pipe.
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!($($arg)*)) };
}

/// `eprintln!` that survives a closed pipe.
macro_rules! errln {
    () => { $crate::output::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {err, errln, out, outln};
