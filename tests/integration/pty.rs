//! A real pseudo-terminal: the engine runs as the leader of a session whose controlling
//! terminal is a pty, and the test is the human at the keyboard. What a terminal does is
//! done by the kernel's line discipline, not imitated: `^C` typed on the terminal sends
//! SIGINT to the foreground process group, and closing the terminal (the SSH session that
//! drops) sends SIGHUP to the session's leader.
//!
//! ```ignore
//! let mut t = Terminal::spawn(support::command_in(dir, &["run", "r.toml"]));
//! t.expect("[y/N]");
//! t.ctrl_c();
//! let status = t.wait();
//! ```

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::pty::{Winsize, openpty};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long [`Terminal::expect`] and [`Terminal::wait`] wait by default: generous, since a
/// loaded 2-core machine builds while the tests run. Not a speed assertion: a hang fails
/// with the screen, instead of hanging the suite.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A process on the slave side of a pty; the test holds the master.
pub struct Terminal {
    master: Option<std::fs::File>,
    child: Child,
    /// Everything the process wrote to the terminal so far (raw bytes).
    seen: Vec<u8>,
    /// How much of `seen` earlier `expect`s consumed.
    consumed: usize,
}

impl Terminal {
    /// Starts `cmd` as the leader of a new session with the pty's slave as its controlling
    /// terminal and as its stdin, stdout and stderr (80 columns, 24 lines, `TERM=xterm`).
    pub fn spawn(cmd: Command) -> Terminal {
        let (master, slave) = open_pty().expect("a pseudo-terminal");
        // util-linux's `setsid --ctty` makes the process a session leader with the terminal
        // on its stdin as the controlling one, then executes it (same process, same pid).
        // `env --default-signal=...` first: a suite started in the background of a
        // non-interactive shell (`cmd &`, as CI scripts do) inherits SIGINT ignored, under
        // `nohup` SIGHUP too, and an ignored signal stays ignored across `exec`, so `^C` or a
        // closed terminal would reach no one; a terminal's foreground job starts with the
        // default actions, as a shell gives them.
        let mut on_tty = Command::new("env");
        on_tty
            .args(["--default-signal=INT,QUIT,HUP,TERM", "setsid", "--ctty"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => on_tty.env(key, v),
                None => on_tty.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            on_tty.current_dir(dir);
        }
        let slave_fd = |s: &OwnedFd| s.try_clone().expect("dup the pty slave");
        on_tty
            .stdin(Stdio::from(slave_fd(&slave)))
            .stdout(Stdio::from(slave_fd(&slave)))
            .stderr(Stdio::from(slave))
            .env("TERM", "xterm");
        let child = on_tty.spawn().expect("start the process on the terminal");
        // The Command holds the slave's descriptors: drop it, so that the master sees the
        // end of the terminal (EIO) when the process and its children are gone.
        drop(on_tty);
        Terminal { master: Some(master), child, seen: Vec::new(), consumed: 0 }
    }

    /// The process's id (the session's leader).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads what is there to read, waiting at most `wait`. False once the terminal has
    /// no writer left (every process on it ended) or is closed.
    fn pump(&mut self, wait: Duration) -> bool {
        let Some(master) = self.master.as_mut() else { return false };
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return true,
            Err(_) => return false,
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
            // EIO: no process has the slave open any more.
            Err(_) => false,
        }
    }

    /// Waits until the screen shows `needle` after what earlier calls consumed; returns the
    /// text from there to the end of the needle. Panics with the screen after [`PATIENCE`].
    pub fn expect(&mut self, needle: &str) -> String {
        self.expect_within(needle, PATIENCE)
    }

    /// [`Terminal::expect`] with its own patience.
    pub fn expect_within(&mut self, needle: &str, patience: Duration) -> String {
        let until = Instant::now() + patience;
        let find = |seen: &[u8]| seen.windows(needle.len().max(1)).position(|w| w == needle.as_bytes());
        loop {
            if let Some(at) = find(&self.seen[self.consumed..]) {
                let end = self.consumed + at + needle.len();
                let text = String::from_utf8_lossy(&self.seen[self.consumed..end]).replace('\r', "");
                self.consumed = end;
                return text;
            }
            let now = Instant::now();
            if now >= until {
                panic!("the terminal never showed {needle:?}; it shows:\n{}", self.screen());
            }
            if !self.pump((until - now).min(Duration::from_millis(200))) {
                if find(&self.seen[self.consumed..]).is_some() {
                    continue;
                }
                if self.child.try_wait().ok().flatten().is_some() {
                    panic!(
                        "the process ended before the terminal showed {needle:?}; it shows:\n{}",
                        self.screen()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits until the prompt that asks `question` is on the screen: `? {question} [`, the
    /// prompt itself, not a line that only names the question (an approval's `wait gate:
    /// Ship it?` comes first). Keys typed before a prompt is shown are no answer to it: the
    /// prompt discards them, and the kernel's discard also drops a Ctrl-C whose byte its line
    /// discipline has not read yet (CI stop 26: a Ctrl-C typed on `wait gate:` was lost).
    pub fn expect_prompt(&mut self, question: &str) -> String {
        self.expect(&format!("? {question} ["))
    }

    /// Types `text` (no newline added).
    pub fn send(&mut self, text: &str) {
        if let Some(master) = self.master.as_mut() {
            master.write_all(text.as_bytes()).expect("type on the terminal");
            master.flush().ok();
        }
    }

    /// Types raw bytes (not necessarily UTF-8: a terminal set to another encoding).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        if let Some(master) = self.master.as_mut() {
            master.write_all(bytes).expect("type on the terminal");
            master.flush().ok();
        }
    }

    /// Types `line` and Enter.
    pub fn send_line(&mut self, line: &str) {
        self.send(&format!("{line}\r"));
    }

    /// Types Ctrl-C: the line discipline sends SIGINT to the foreground process group.
    pub fn ctrl_c(&mut self) {
        self.send("\x03");
    }

    /// Closes the terminal, as a dropped SSH session does: the kernel sends SIGHUP to the
    /// session's leader (and SIGCONT), and its reads and writes on the terminal fail.
    pub fn hang_up(&mut self) {
        self.master = None;
    }

    /// Waits for the process to end (reading the screen meanwhile, so that it never blocks
    /// writing to a full terminal). Panics with the screen after [`PATIENCE`].
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_within(PATIENCE)
    }

    /// [`Terminal::wait`] with its own patience.
    pub fn wait_within(&mut self, patience: Duration) -> ExitStatus {
        let until = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the process") {
                // What it wrote last.
                while self.pump(Duration::from_millis(50)) {}
                return status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                panic!("the process did not end within {patience:?}; the terminal shows:\n{}", self.screen());
            }
            if !self.pump(Duration::from_millis(50)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Everything the process wrote to the terminal, carriage returns removed.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.seen).replace('\r', "")
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A pty pair with an 80×24 window: (master, slave), both close-on-exec so that no step
/// process inherits them.
fn open_pty() -> nix::Result<(std::fs::File, OwnedFd)> {
    let size = Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = openpty(&size, None)?;
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((std::fs::File::from(pty.master), pty.slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: a shell on the terminal sees a terminal, `^C` reaches the
    /// foreground group as SIGINT, and closing the terminal sends SIGHUP.
    #[test]
    fn the_terminal_is_real_ctrl_c_interrupts_and_closing_hangs_up() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "[ -t 0 ] && echo on-a-terminal; trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.05; done"]);
        let mut t = Terminal::spawn(sh);
        t.expect("on-a-terminal");
        t.expect("ready");
        t.ctrl_c();
        t.expect("got-int");
        assert_eq!(t.wait().code(), Some(7), "{}", t.screen());

        let dir = tempfile::tempdir().expect("tempdir");
        let mark = dir.path().join("hup");
        let mut sh = Command::new("sh");
        sh.args([
            "-c",
            &format!(
                "trap 'echo hup > {}; exit 9' HUP; echo ready; while :; do sleep 0.05; done",
                mark.display()
            ),
        ]);
        let mut t = Terminal::spawn(sh);
        t.expect("ready");
        assert!(std::path::Path::new(&format!("/proc/{}", t.pid())).exists());
        t.hang_up();
        let status = t.wait();
        assert_eq!(status.code(), Some(9), "{status:?}");
        assert_eq!(std::fs::read_to_string(&mark).expect("the HUP trap ran"), "hup\n");
    }
}

#[cfg(test)]
mod on_the_binary {
    use crate::support::Scratch;

    /// The binary sees the terminal: a `confirm` question is asked on it and answered by
    /// typing, as an operator does.
    #[test]
    fn a_confirm_question_is_asked_on_the_terminal_and_answered_by_typing() {
        let s = Scratch::new(
            "[runbook]\nname = \"t\"\n[steps.a]\ncmd = [\"echo\", \"hello\"]\nconfirm = \"Say hello?\"\n",
        );
        let mut t = s.terminal(&["run", "r.toml"], &[]);
        t.expect("Say hello?");
        t.send_line("y");
        let status = t.wait();
        assert_eq!(status.code(), Some(0), "{}", t.screen());
        assert!(t.screen().contains("hello"), "{}", t.screen());
    }
}

/// adv14a F4 (book user-guide/running.md: "a prompt holds nothing but the steps that need
/// its answer"): while `b`'s question waits on the terminal, the independent step `p` runs.
/// (F4's reproduction declared `p` without `needs`, so `p` followed `b`: `runbook plan`
/// shows "p needs b"; held by design, not by the question.)
#[test]
fn an_independent_step_runs_while_a_question_waits() {
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "held"
max-parallel = 4

[steps.b]
cmd = ["sh", "-c", "echo b-ran >> b.log"]
confirm = "Go on with b?"

[steps.p]
needs = []
run = "echo p-ran >> p.log"
"#,
    );
    let mut t = s.terminal(&["run", "r.toml"], &[]);
    t.expect("Go on with b?");
    // `p` needs nothing (`needs = []`: a step without `needs` follows the one declared
    // before it, as adv14a's reproduction of F4 did, and that one waits for `b` by design): it runs while the question waits (no time bound: the answer is
    // given only once `p` has run, or the test gives up after a minute).
    let t0 = std::time::Instant::now();
    while s.read("p.log").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "independent step `p` waited for the answer to `b`: {}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.send_line("y");
    let status = t.wait();
    assert_eq!(status.code(), Some(0), "{}", t.screen());
    assert_eq!(s.read("b.log"), "b-ran\n");
}
