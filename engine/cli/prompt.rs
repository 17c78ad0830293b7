//! Every question the CLI asks on the terminal, and every line it writes around one (the
//! `confirm` question, the inline approval and its reason, the missing parameters, the
//! `compensate` command's question), goes through this module, and only through it:
//!
//! - What a prompt shows goes through [`ask`] and [`say`], which make every control and
//!   format character visible with [`runbook_core::shown::one_line`] (the notation `show`
//!   uses: `\n`, `\r`, `\u{1b}`, `\u{202e}`): a value in a question (a parameter, a step's
//!   output, an enum choice, a description) cannot move the cursor, erase the line, conceal
//!   what follows or reorder the text, so the question answered is the question journaled
//!   (red team adv14b F1).
//! - [`ask`] discards what was typed before the question is shown (`tcflush(TCIFLUSH)`, as
//!   sudo and ssh do): the Enter pressed during a long step is not an answer (F11).
//! - [`choose`] takes only the answers it lists and asks again on anything else, so a
//!   choice with consequences ("no" fails a step and may start compensations) is never
//!   assumed from a typo, an arrow key or an empty line (F11).
//! - An answer that is not UTF-8 is said to be unreadable and asked again (F6).

use std::os::fd::{AsFd, BorrowedFd};

use runbook_core::shown::one_line;

/// What a prompt read from the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line the operator typed (without its end), valid UTF-8.
    Typed(String),
    /// End of input: the terminal closed (a dropped session) or Ctrl-D.
    Closed,
    /// The engine withdrew the question (Ctrl-C, a failed step, decided elsewhere).
    Withdrawn,
    /// A line that is not UTF-8 text (a terminal set to another encoding).
    NotText,
}

/// What [`choose`] got: one of the listed answers, or none at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    Chosen(T),
    Closed,
    Withdrawn,
}

/// Said when an answer is not UTF-8.
const NOT_TEXT: &str = "  not UTF-8 text (the terminal sent bytes that are no text); type it again";

/// Standard input read whole as data, at most `limit` bytes (`--reason-file -`: the worker
/// pipes an abandon's reason to its engine, never on its command line). Not a question: no
/// prompt is shown and typeahead is not discarded; it lives here because this module alone
/// reads standard input (`prompt_text::the_terminal_is_asked_only_through_the_prompt_module`).
pub fn read_input(limit: u64, into: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::io::Read as _;
    std::io::stdin().lock().take(limit).read_to_end(into)
}

/// Writes one line around a question (a heading, a note under it) to standard error, every
/// control and format character made visible.
pub fn say(text: &str) {
    crate::output::err!("{}\n", one_line(text));
}

/// Shows `prompt` (as [`say`] makes it visible, without a line end) once the input typed
/// before it is discarded, and reads the answer, unless `withdrawn` becomes readable first.
pub fn ask(prompt: &str, withdrawn: Option<BorrowedFd<'_>>) -> Line {
    discard_typeahead();
    crate::output::err!("{}", one_line(prompt));
    read_line_unless(withdrawn)
}

/// Asks `prompt` until the answer (trimmed, any case) is one of the words `choices` list;
/// anything else is answered with `again` and asked again. No answer (end of input, the
/// question withdrawn) is no choice: it ends the line the prompt was on.
pub fn choose<T: Clone>(
    prompt: &str,
    choices: &[(&[&str], T)],
    again: &str,
    withdrawn: Option<BorrowedFd<'_>>,
) -> Reply<T> {
    until(prompt, withdrawn, |text| {
        let answer = text.trim().to_ascii_lowercase();
        let chosen = choices.iter().find(|(words, _)| words.contains(&answer.as_str()));
        if chosen.is_none() {
            say(again);
        }
        chosen.map(|(_, chosen)| chosen.clone())
    })
}

/// A free answer (a reason, a value): asked again while it is not UTF-8.
pub fn text(prompt: &str, withdrawn: Option<BorrowedFd<'_>>) -> Reply<String> {
    until(prompt, withdrawn, Some)
}

/// Asks `prompt` until `take` takes the text typed (a line that is not UTF-8 is said to be
/// unreadable and asked again) or there is no answer.
fn until<T>(
    prompt: &str,
    withdrawn: Option<BorrowedFd<'_>>,
    mut take: impl FnMut(String) -> Option<T>,
) -> Reply<T> {
    loop {
        match ask(prompt, withdrawn) {
            Line::Typed(text) => {
                if let Some(taken) = take(text) {
                    return Reply::Chosen(taken);
                }
            }
            Line::NotText => say(NOT_TEXT),
            Line::Closed => {
                say("");
                return Reply::Closed;
            }
            Line::Withdrawn => {
                say("");
                return Reply::Withdrawn;
            }
        }
    }
}

/// Throws away what was typed on the terminal and not read yet: keys pressed before a
/// question is shown are no answer to it. Nothing to do when standard input is no terminal.
///
/// Known limit, shared with sudo and ssh (which discard the same way): a Ctrl-C typed in the
/// instant before the question shows, whose byte the kernel's line discipline has not read
/// yet, is discarded with the typeahead and sends no SIGINT (measured: 2 in 400 on a host
/// loaded with 8 busy loops, none unloaded). The question then shows and waits; Ctrl-C at it
/// interrupts. Draining in non-canonical mode instead would keep such a Ctrl-C but leave the
/// terminal raw if the engine died between the two mode changes.
fn discard_typeahead() {
    let _ = nix::sys::termios::tcflush(std::io::stdin().as_fd(), nix::sys::termios::FlushArg::TCIFLUSH);
}

/// Read one line from standard input in the terminal's ordinary (canonical) mode, or stop as
/// soon as `withdrawn` becomes readable. The descriptors are polled together, so the read
/// never outlives the question: a blocking read that nobody can stop would swallow the
/// interruption and keep the process alive (the runtime waits for blocking tasks).
fn read_line_unless(withdrawn: Option<BorrowedFd<'_>>) -> Line {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdin = std::io::stdin();
    let mut line = Vec::new();
    loop {
        let mut fds = vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        fds.extend(withdrawn.map(|w| PollFd::new(w, PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            // A signal (Ctrl-C): the engine's handler saw it; it withdraws the question.
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Line::Closed,
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        if fds.get(1).is_some_and(ready) {
            return Line::Withdrawn;
        }
        if !ready(&fds[0]) {
            continue;
        }
        let mut buf = [0u8; 512];
        match nix::unistd::read(stdin.as_fd(), &mut buf) {
            Ok(0) => return Line::Closed,
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if let Some(end) = line.iter().position(|&b| b == b'\n') {
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return match String::from_utf8(line) {
                        Ok(text) => Line::Typed(text),
                        Err(_) => Line::NotText,
                    };
                }
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return Line::Closed,
        }
    }
}
