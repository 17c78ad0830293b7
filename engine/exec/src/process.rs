//! One attempt of a `run` or `cmd` step as an operating-system process.
//!
//! Each attempt runs in its own process group. When it times out, is cancelled, or its main
//! process exits, the whole group is ended (SIGTERM, a grace period, then SIGKILL), so a
//! grandchild such as `sleep 1000 &` never outlives its step. Output is read in chunks,
//! redacted as a byte stream (a secret split across chunks or lines is still found) and
//! handed to the caller line by line, a line never longer than [`MAX_LINE`], over a bounded
//! channel: memory stays bounded whatever the step prints, and a caller that falls behind
//! slows the step down (its pipe fills) rather than the engine's memory growing.
//!
//! This is the only module that creates processes (`clippy.toml` disallows
//! `Command::new` everywhere else, and `tests/tidy.rs` checks the text): steps and their
//! `__tie`, the reaper, secret helpers ([`helper_output`]) and the worker's engines
//! ([`spawn_engine`]).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

/// What to start.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment variables added to the engine's (secret sources already removed).
    pub env: Vec<(String, String)>,
    /// Environment variables removed from the engine's before adding `env`.
    pub env_remove: Vec<String>,
    /// Working directory.
    pub dir: PathBuf,
    /// Time limit.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its stream.
    pub stream: Stream,
    /// The text, without the newline.
    pub text: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The main process exited with this code.
    Code(i32),
    /// The main process was killed by this signal.
    Signal(i32),
    /// The time limit was reached; the group was ended.
    TimedOut,
    /// Cancelled (Ctrl-C, SIGTERM to the engine); the group was ended.
    Cancelled,
    /// The program could not be started.
    SpawnFailed(String),
    /// A request, query or check (not a process) succeeded.
    Ok,
    /// A request, query or check (not a process) failed, and why.
    Failed(String),
}

impl Exit {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, Exit::Code(0) | Exit::Ok)
    }

    /// A short description for the journal and the terminal.
    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exited with code {c}"),
            // `resume` reads these three as "ended mid-work" (`journal::ended_mid_work`).
            Exit::Signal(s) => format!("{} {s}", runbook_core::journal::KILLED_BY_SIGNAL),
            Exit::TimedOut => runbook_core::journal::TIMED_OUT.into(),
            Exit::Cancelled => runbook_core::journal::CANCELLED.into(),
            Exit::Ok => "succeeded".into(),
            Exit::Failed(reason) => reason.clone(),
            Exit::SpawnFailed(e) => format!("could not start: {e}"),
        }
    }
}

/// Ties step processes to the engine: a helper process, in its own process group, that the
/// engine tells about every process group it starts. If the engine dies (even by SIGKILL),
/// the pipe to the helper closes and the helper ends every group still registered, so no
/// step runs on unobserved. It is also the engine's watchdog: the engine gives it a deadline
/// with every lease renewal ([`Reaper::watch`]); if the deadline passes without a new one (a
/// frozen or stalled engine), it kills every registered group at once, before the lease can
/// expire for anyone else. If the helper dies, [`Reaper::gone`] turns `true` and the engine
/// starts nothing more.
#[derive(Debug)]
pub struct Reaper {
    pipe: std::sync::Mutex<std::process::ChildStdin>,
    gone: watch::Receiver<bool>,
    /// The `runbook` binary, which also runs [`tie_main`] (`__tie`).
    program: PathBuf,
    /// The small binary that does what `__tie` does (`runbook-tie`, next to `runbook`), if
    /// there is one ([`Reaper::with_tie`]).
    tie: Option<PathBuf>,
    /// Where every group is also written down on this host (see [`end_leftover_groups`]),
    /// and the file once opened: every step writes two lines, and opening the file (and
    /// making its folder) for each was a dozen system calls a step (bench/README.md, issue
    /// 13, "the targets").
    ledger: Option<(PathBuf, std::sync::Mutex<Option<std::fs::File>>)>,
    _child: std::process::Child,
}

impl Reaper {
    /// Start the helper: `program args...` must run [`reaper_main`].
    pub fn start(program: &std::path::Path, args: &[&str]) -> std::io::Result<Reaper> {
        use std::os::unix::process::CommandExt as _;
        // It needs no environment: it gets none, so none of the variables secrets are read
        // from (issue 11, promise 3).
        let mut child = std::process::Command::new(program)
            .args(args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take().ok_or_else(|| std::io::Error::other("no pipe to the reaper"))?;
        let mut out = child.stdout.take().ok_or_else(|| std::io::Error::other("no pipe from the reaper"))?;
        // The helper never writes: its end of this pipe closes when (and only when) it dies.
        let (tx, gone) = watch::channel(false);
        // Watched by the engine's runtime (a task, no thread of its own: a thread costs a
        // one-step run about half a millisecond of CPU, issue 13); by a thread without one.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let _entered = runtime.enter();
                let mut pipe =
                    tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(out))?;
                runtime.spawn(async move {
                    use tokio::io::AsyncReadExt as _;
                    let mut buf = [0u8; 64];
                    while matches!(pipe.read(&mut buf).await, Ok(n) if n > 0) {}
                    let _ = tx.send(true);
                });
            }
            Err(_) => {
                std::thread::spawn(move || {
                    use std::io::Read as _;
                    let mut buf = [0u8; 64];
                    while matches!(out.read(&mut buf), Ok(n) if n > 0) {}
                    let _ = tx.send(true);
                });
            }
        }
        Ok(Reaper {
            pipe: std::sync::Mutex::new(pipe),
            gone,
            program: program.to_path_buf(),
            tie: None,
            ledger: None,
            _child: child,
        })
    }

    /// The `runbook` binary that runs `__tie` ([`tie_main`]) when there is no small tie
    /// ([`Reaper::with_tie`]); by default the helper's own program.
    pub fn with_program(mut self, program: PathBuf) -> Reaper {
        self.program = program;
        self
    }

    /// Also write every group started and ended down in `ledger` (the run's folder on this
    /// host), so that a later engine can end what a dead one left behind.
    pub fn with_ledger(mut self, ledger: PathBuf) -> Reaper {
        self.ledger = Some((ledger, std::sync::Mutex::new(None)));
        self
    }

    /// Start step programs through `tie` (`runbook-tie ENGINE_PID EXECUTABLE -- PROGRAM
    /// ARGS...`, which does what [`tie_main`] does in a binary a fraction of the size) rather
    /// than through `runbook __tie`.
    pub fn with_tie(mut self, tie: PathBuf) -> Reaper {
        self.tie = Some(tie);
        self
    }

    fn write_down(&self, line: &str) {
        use std::io::Write as _;
        let Some((path, file)) = &self.ledger else { return };
        let Ok(mut file) = file.lock() else { return };
        if file.is_none() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            *file = runbook_store::open_outside_store(
                path,
                std::fs::OpenOptions::new().create(true).append(true),
            )
            .ok();
        }
        // One `write` of the whole line to a file opened to append (`O_APPEND`): each line
        // lands whole at the end, as when the file was opened for every line.
        if let Some(f) = file.as_mut()
            && f.write_all(line.as_bytes()).is_err()
        {
            // Opened again at the next line.
            *file = None;
        }
    }

    /// Turns `true` when the helper is gone: steps started from then on would not be tied to
    /// the engine, so the engine must start none.
    pub fn gone(&self) -> watch::Receiver<bool> {
        self.gone.clone()
    }

    /// Arm the watchdog: unless told again within `within` (measured by the helper from when
    /// it reads this, which is after the engine sent it), kill every registered group.
    pub fn watch(&self, within: Duration) -> std::io::Result<()> {
        self.tell(format!("deadline {}\n", within.as_millis()))
    }

    /// Kill every registered group now (the engine lost its lock).
    pub fn kill_all(&self) -> std::io::Result<()> {
        self.tell("kill\n".into())
    }

    fn tell(&self, line: String) -> std::io::Result<()> {
        use std::io::Write as _;
        if *self.gone.borrow() {
            return Err(std::io::Error::other("the process reaper is gone"));
        }
        let mut pipe =
            self.pipe.lock().map_err(|_| std::io::Error::other("the reaper's pipe is poisoned"))?;
        pipe.write_all(line.as_bytes()).and_then(|()| pipe.flush())
    }
}

/// The helper's loop: read `add PGID`, `del PGID`, `deadline MS` and `kill` lines until the
/// engine's end of the pipe closes, then end every group still registered. A deadline that
/// passes without a new one kills every registered group at once. Returns when done.
pub fn reaper_main() {
    use std::io::BufRead as _;
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let kill_now = |groups: &[i32]| {
        for pgid in groups {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
    };
    let mut groups: Vec<i32> = Vec::new();
    let mut deadline: Option<std::time::Instant> = None;
    loop {
        let line = match deadline {
            Some(d) => rx.recv_timeout(d.saturating_duration_since(std::time::Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let line = match line {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                // The engine stopped renewing: its lease may soon be taken. Nothing of its
                // steps may still run then.
                kill_now(&groups);
                deadline = None;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match line.split_once(' ').unwrap_or((line.as_str(), "")) {
            ("add", pgid) => groups.extend(pgid.trim().parse::<i32>().ok()),
            ("del", pgid) => {
                if let Ok(pgid) = pgid.trim().parse::<i32>() {
                    groups.retain(|g| *g != pgid);
                }
            }
            ("deadline", ms) => {
                deadline = ms
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .map(|ms| std::time::Instant::now() + Duration::from_millis(ms));
            }
            ("kill", _) => kill_now(&groups),
            _ => {}
        }
    }
    for pgid in &groups {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline && groups.iter().any(|g| group_alive(Pid::from_raw(*g))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_now(&groups);
}

/// The wrapper every step program starts through when the engine has a reaper
/// (`runbook __tie ENGINE_PID -- PROGRAM ARGS...`): it asks the kernel to kill it when its
/// parent (the engine's thread) dies, then becomes the program (same process, same group),
/// which keeps that signal. So the step's main process dies with the engine even when the
/// reaper is killed too. Returns only on failure.
pub fn tie_main(parent: i32, argv: &[std::ffi::OsString]) -> std::io::Error {
    tie_exec(parent, None, argv)
}

/// [`tie_main`], for `runbook-tie` too: `executable` is where the engine found the program
/// (`argv[0]`) on the step's `PATH`, executed first, with `argv[0]` as the program's name;
/// if that fails (a race, a `noexec` mount), the program is searched as `execvp` does.
/// Through std's `Command::exec`, which gives SIGPIPE its default disposition before
/// `execvp` (Rust's runtime ignores SIGPIPE in the tie, and an ignored signal stays ignored
/// across `execve`: red team adv27 T1, through a bare `execvp` in `runbook-tie`,
/// `yes | head -n1` failed with "Broken pipe" and code 1, not 141), with an empty signal
/// mask (red team adv28 T2).
pub fn tie_exec(
    parent: i32,
    executable: Option<&std::ffi::OsStr>,
    argv: &[std::ffi::OsString],
) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        return std::io::Error::from(e);
    }
    // The engine may have died before the signal was asked for.
    if nix::unistd::getppid().as_raw() != parent {
        return std::io::Error::other("the engine is gone");
    }
    let Some((program, args)) = argv.split_first() else { return std::io::Error::other("no program") };
    // std's `exec` resets SIGPIPE only: a signal mask the engine inherited (a launcher that
    // blocks SIGTERM) would block the step's SIGTERM on a timeout (red team adv28 T2). Signals
    // ignored when the engine started stay ignored, as a shell leaves them (`nohup`).
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    let Some(found) = executable.filter(|e| *e != program.as_os_str()) else {
        return std::process::Command::new(program).args(args).exec();
    };
    let _ = std::process::Command::new(found).arg0(program).args(args).exec();
    std::process::Command::new(program).args(args).exec()
}

/// Where `execvp` will find `program` for `spawn`: the first executable regular file named
/// `program` in a folder of the engine's `PATH`, which the step inherits. `None` when
/// `program` names a path (`./x`, `/bin/x`: no search), when the step sets or removes `PATH`
/// (a step's variables may carry secrets, and the found path goes in the tie's argv, which
/// any user can read: promise 3), when a relative folder comes first or nothing is found:
/// `runbook-tie` then
/// searches as execvp does, and says what is missing. Searched once here, in the engine, so
/// that a step's start costs one `execve`, not one per folder of `PATH`.
fn search_path(program: &str, spawn: &Spawn) -> Option<PathBuf> {
    if spawn.env.iter().any(|(k, _)| k == "PATH") || spawn.env_remove.iter().any(|k| k == "PATH") {
        return None;
    }
    search_in(program, &std::env::var_os("PATH")?)
}

/// [`search_path`] in the folders of `path`.
fn search_in(program: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    if program.is_empty() || program.contains('/') {
        return None;
    }
    for dir in std::env::split_paths(path) {
        // A relative folder (`.`, or an empty entry) is the step's working directory's
        // business: left to execvp, in order.
        if !dir.is_absolute() {
            return None;
        }
        let candidate = dir.join(program);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file())
            && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
        {
            return Some(candidate);
        }
    }
    None
}

/// How a secret's helper program (vault, pass) may run: its output and its time are bounded,
/// and a Ctrl-C or SIGTERM ends it (red team adv13b F6).
#[derive(Debug, Clone)]
pub struct HelperLimits {
    /// The most bytes of standard output taken; more is [`HelperError::TooLarge`].
    pub max_bytes: usize,
    /// The longest it may run; longer is [`HelperError::TimedOut`].
    pub timeout: Duration,
}

/// What a helper that ended printed, and how it ended.
#[derive(Debug)]
pub struct HelperOutput {
    /// How it exited.
    pub status: std::process::ExitStatus,
    /// Its standard output (at most [`HelperLimits::max_bytes`]).
    pub stdout: Vec<u8>,
}

/// Why a helper gave no output. In every case but `Start`, its whole process group was
/// killed and waited for: nothing it started is left running.
#[derive(Debug)]
pub enum HelperError {
    /// It could not be started (or read).
    Start(std::io::Error),
    /// It printed more than the limit.
    TooLarge(usize),
    /// It ran past the time limit.
    TimedOut(Duration),
    /// The engine got SIGINT (Ctrl-C), SIGTERM or SIGHUP while it ran.
    Interrupted,
}

/// Run a secret's helper program (vault, pass) to its end in `dir` and take its output,
/// within `limits`. It runs in a process group of its own, with stdin closed and stderr
/// discarded, and without the variables in `hidden` (other secrets' sources and the
/// engine's own configuration and credentials: issue 11 and red team adv13b F1).
///
/// It waits on a thread of its own with a runtime of its own: the caller may be on the
/// engine's one async thread, whose signal task could not run while it waits (F6).
pub fn helper_output(
    program: &str,
    args: &[String],
    dir: &std::path::Path,
    hidden: &[String],
    limits: &HelperLimits,
) -> Result<HelperOutput, HelperError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(HelperError::Start)?;
                runtime.block_on(helper_run(program, args, dir, hidden, limits))
            })
            .join()
            .unwrap_or_else(|_| Err(HelperError::Start(std::io::Error::other("the helper's waiter failed"))))
    })
}

async fn helper_run(
    program: &str,
    args: &[String],
    dir: &std::path::Path,
    hidden: &[String],
    limits: &HelperLimits,
) -> Result<HelperOutput, HelperError> {
    // Listen before starting it: a Ctrl-C (or SIGTERM, or a closed terminal) from then on
    // is seen.
    let mut stops = StopSignals::listen();
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    for var in hidden {
        command.env_remove(var);
    }
    let mut child = command.spawn().map_err(HelperError::Start)?;
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let mut stdout =
        child.stdout.take().ok_or_else(|| HelperError::Start(std::io::Error::other("no pipe")))?;
    let max = limits.max_bytes;
    let work = async {
        let mut out = Vec::new();
        (&mut stdout).take(max as u64 + 1).read_to_end(&mut out).await.map_err(HelperError::Start)?;
        if out.len() > max {
            return Err(HelperError::TooLarge(max));
        }
        let status = child.wait().await.map_err(HelperError::Start)?;
        Ok(HelperOutput { status, stdout: out })
    };
    let signalled = async {
        stops.next().await;
    };
    let result = tokio::select! {
        r = work => r,
        () = tokio::time::sleep(limits.timeout) => Err(HelperError::TimedOut(limits.timeout)),
        () = signalled => Err(HelperError::Interrupted),
    };
    if result.is_err()
        && let Some(pgid) = group
    {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = child.wait().await;
    }
    result
}

/// A signal that stops a run (ARCHITECTURE.md, "A signal is a stop cause, never a
/// failure"): each is journaled with its cause in `run_interrupted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT: Ctrl-C on the terminal.
    Interrupt,
    /// SIGTERM: a service manager, `kill`, a worker handing the run back.
    Terminate,
    /// SIGHUP: the terminal was closed (a dropped SSH session). Writing to it fails from
    /// now on; the CLI's output ignores that while a run is in progress.
    HangUp,
}

impl StopSignal {
    /// Why the run stopped, as `run_interrupted` journals it.
    pub fn reason(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "interrupted by the operator (Ctrl-C, SIGINT)",
            StopSignal::Terminate => "interrupted by SIGTERM",
            StopSignal::HangUp => "interrupted by SIGHUP: the terminal was closed (a dropped SSH session?)",
        }
    }

    fn code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 1,
            StopSignal::Terminate => 2,
            StopSignal::HangUp => 3,
        }
    }
}

/// The first stop signal this process received (0: none).
static FIRST_STOP: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The first stop signal this process received, if any: the cause `run_interrupted` names.
pub fn first_stop_signal() -> Option<StopSignal> {
    match FIRST_STOP.load(std::sync::atomic::Ordering::SeqCst) {
        1 => Some(StopSignal::Interrupt),
        2 => Some(StopSignal::Terminate),
        3 => Some(StopSignal::HangUp),
        _ => None,
    }
}

/// Listens for the signals that stop a run (SIGINT, SIGTERM, SIGHUP). Made before the run
/// starts: from then on, none of them kills the engine before it journals.
#[derive(Debug)]
pub struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
    hang_up: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Install the handlers (one that cannot be installed never fires).
    pub fn listen() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hang_up: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The next stop signal; the first one of the process is kept as the cause
    /// ([`first_stop_signal`]).
    pub async fn next(&mut self) -> StopSignal {
        let got = tokio::select! {
            () = next_signal(&mut self.interrupt) => StopSignal::Interrupt,
            () = next_signal(&mut self.terminate) => StopSignal::Terminate,
            () = next_signal(&mut self.hang_up) => StopSignal::HangUp,
        };
        let _ = FIRST_STOP.compare_exchange(
            0,
            got.code(),
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
        got
    }
}

/// The next delivery of a signal (never, if its handler could not be installed).
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// An engine a worker starts for one claim (`runbook run --plan ...` or `runbook resume ...`).
#[derive(Debug)]
pub struct EngineCommand {
    /// The `runbook` binary.
    pub program: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    /// Variables to set. A store URL goes here, never in `args`: it may carry a password, and
    /// any user of the host can read a process's arguments (`ps`).
    pub env: Vec<(String, std::ffi::OsString)>,
    /// Variables of the worker's environment the engine does not get.
    pub env_remove: Vec<String>,
    /// Where the engine's stdout and stderr go (the worker's file for the run).
    pub output: std::fs::File,
    /// What the engine reads on its stdin (`None`: stdin closed): a text that must never be
    /// on its command line (an abandon's reason, `--reason-file -`). At most
    /// [`MAX_ENGINE_STDIN`] bytes, written into a pipe by a thread of the worker.
    pub stdin: Option<Vec<u8>>,
}

/// The most an engine is handed on its stdin.
pub const MAX_ENGINE_STDIN: usize = 32 * 1024;

/// Start an engine for a worker: stdin closed (or a pipe holding `stdin`), stdout and stderr to `output`, in the
/// worker's process group (a signal to the worker's group reaches its engines too), and not
/// killed when the handle is dropped: the worker reads how it ended (`try_wait`). An engine
/// dies with its worker through the parent-death signal it asks for itself when it sees
/// `RUNBOOK_WORKER_PID` (the CLI's `queue.rs`).
pub fn spawn_engine(engine: EngineCommand) -> std::io::Result<tokio::process::Child> {
    let mut cmd = Command::new(&engine.program);
    cmd.args(&engine.args);
    for k in &engine.env_remove {
        cmd.env_remove(k);
    }
    let stdin = match &engine.stdin {
        None => Stdio::null(),
        Some(bytes) => {
            use std::io::Write as _;
            if bytes.len() > MAX_ENGINE_STDIN {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("an engine's stdin holds at most {MAX_ENGINE_STDIN} bytes"),
                ));
            }
            let (reader, mut writer) = std::io::pipe()?;
            // From a thread: a pipe's buffer can be one page when the user's pipes are over
            // their quota, and the worker must never wait on its engine reading. It ends when
            // all is written or the engine is gone (a broken pipe).
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                let _ = writer.write_all(&bytes);
            });
            Stdio::from(reader)
        }
    };
    cmd.envs(engine.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .stdout(engine.output.try_clone()?)
        .stderr(engine.output)
        .kill_on_drop(false)
        .spawn()
}

/// The longest line handed on: a longer one (300 MB without a newline) is cut in pieces
/// of this size, after redaction.
pub const MAX_LINE: usize = 64 * 1024;

/// How many bytes are read from a pipe at once.
const CHUNK: usize = 64 * 1024;

/// What redacts an attempt's output: one [`StreamRedaction`] per pipe. The engine's is
/// `secrets::Redactor`; this module knows no secrets (it is below `secrets`, which asks it
/// to run secret helpers).
pub trait Redaction: Sync {
    /// A redactor for one byte stream.
    fn stream(&self) -> Box<dyn StreamRedaction>;
}

/// Redaction of one byte stream cut anywhere (`secrets::StreamRedactor`).
pub trait StreamRedaction: Send {
    /// Redact `chunk`, appending to `out` what can no longer be part of a secret.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// The end of the stream: write out everything held back, redacted.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// No redaction: output as it comes (an attempt that knows no secrets).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unredacted;

impl Redaction for Unredacted {
    fn stream(&self) -> Box<dyn StreamRedaction> {
        Box::new(Unredacted)
    }
}

impl StreamRedaction for Unredacted {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(chunk);
    }
    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

/// Run one attempt to its end, sending output lines to `lines`. `cancel` turning `true`
/// ends the attempt.
pub async fn run(spawn: &Spawn, lines: mpsc::Sender<Line>, cancel: watch::Receiver<bool>) -> Exit {
    run_tied(spawn, &Unredacted, lines, cancel, None).await
}

/// [`run`], with output redacted by `redactor` and the attempt's process group registered
/// with `reaper` while it lives.
pub async fn run_tied(
    spawn: &Spawn,
    redactor: &dyn Redaction,
    lines: mpsc::Sender<Line>,
    mut cancel: watch::Receiver<bool>,
    reaper: Option<&Reaper>,
) -> Exit {
    let Some((program, args)) = spawn.argv.split_first() else {
        return Exit::SpawnFailed("empty command".into());
    };
    // Through the tie when there is a reaper: the program then dies with the engine.
    let mut cmd = match reaper {
        Some(Reaper { tie: Some(tie), .. }) => {
            let mut c = Command::new(tie);
            let executable =
                search_path(program, spawn).map_or_else(|| program.into(), PathBuf::into_os_string);
            c.arg(std::process::id().to_string()).arg(executable).arg("--").arg(program);
            c
        }
        Some(r) => {
            let mut c = Command::new(&r.program);
            c.arg("__tie").arg(std::process::id().to_string()).arg("--").arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args)
        .current_dir(&spawn.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for k in &spawn.env_remove {
        cmd.env_remove(k);
    }
    cmd.envs(spawn.env.iter().map(|(k, v)| (k, v)));
    if reaper.is_some_and(|r| *r.gone.borrow()) {
        return Exit::Cancelled;
    }
    // Said plainly: the OS's error for a missing working directory names no folder.
    if !spawn.dir.is_dir() {
        return Exit::SpawnFailed(format!("the working directory `{}` does not exist", spawn.dir.display()));
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Exit::SpawnFailed(format!("`{}`: {e}", program)),
    };
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let untied = match (reaper, pgid) {
        (Some(r), Some(pgid)) => {
            // `add PGID GROUP_START ENGINE_IDENTITY`, before the reaper hears of it.
            if let (Some(start), Some(engine)) = (start_time(pgid.as_raw()), engine_identity()) {
                r.write_down(&format!("add {pgid} {start} {} {engine}\n", std::process::id()));
            }
            r.tell(format!("add {pgid}\n")).is_err()
        }
        _ => false,
    };
    // Turned `true` once the group is gone: the readers then take what is left in the pipes
    // and stop, whoever else holds them open.
    let (group_gone, gone_rx) = watch::channel(false);
    let readers = [
        child.stdout.take().map(|s| {
            tokio::spawn(forward(s, Stream::Stdout, redactor.stream(), lines.clone(), gone_rx.clone()))
        }),
        child.stderr.take().map(|s| {
            tokio::spawn(forward(s, Stream::Stderr, redactor.stream(), lines.clone(), gone_rx.clone()))
        }),
    ];
    let deadline = async {
        match spawn.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let exit = tokio::select! {
        // No reaper: a step untied to the engine must not go on (the dispatcher stops too).
        () = std::future::ready(()), if untied => Exit::Cancelled,
        status = child.wait() => match status {
            Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::Code(-1),
            },
            Err(e) => Exit::SpawnFailed(e.to_string()),
        },
        () = deadline => Exit::TimedOut,
        _ = cancel.wait_for(|c| *c) => Exit::Cancelled,
    };
    // Whatever ended the attempt, nothing of its process group may live on.
    if let Some(pgid) = pgid {
        end_group(pgid, spawn.grace).await;
        if let Some(r) = reaper {
            let _ = r.tell(format!("del {pgid}\n"));
            r.write_down(&format!("del {pgid}\n"));
        }
    }
    let _ = child.wait().await;
    let _ = group_gone.send(true);
    let mut held = false;
    for reader in readers.into_iter().flatten() {
        held |= reader.await.unwrap_or(false);
    }
    if held {
        let _ = lines.send(Line { stream: Stream::Stderr, text: HELD_NOTICE.to_string() }).await;
    }
    exit
}

/// Said when a process outside the attempt's group still held its output at its end.
pub const HELD_NOTICE: &str = "runbook: a process that left its process group (`setsid`, a daemon) still holds this attempt's output; the attempt ended with its group, and what that process prints is not read";

/// Once the group is gone, how long a pipe may stay quiet before the reader stops (all the
/// group wrote is already in the pipe: only a process outside it can write more).
const DRAIN_PAUSE: Duration = Duration::from_millis(250);

/// Once the group is gone, the most bytes read from a pipe that is still being written.
const DRAIN_MAX: usize = 1 << 20;

/// SIGTERM to the group, then SIGKILL after `grace` if anything is left.
async fn end_group(pgid: Pid, grace: Duration) {
    if !group_alive(pgid) || killpg(pgid, Signal::SIGTERM).is_err() {
        return;
    }
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while waited < grace {
        tokio::time::sleep(step).await;
        waited += step;
        if !group_alive(pgid) {
            return;
        }
    }
    let _ = killpg(pgid, Signal::SIGKILL);
}

/// Whether any process of the group is still running. Zombies do not count: where PID 1
/// does not reap orphans (containers without an init), a dead grandchild stays a zombie,
/// and waiting for it would only delay the step.
pub fn group_alive(pgid: Pid) -> bool {
    // The common case, cheaply: no member at all, zombies included.
    if killpg(pgid, None).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: fall back to the kernel's answer, zombies included.
        return killpg(pgid, None).is_ok();
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else { return false };
        process_state(pid).is_some_and(|(state, pgrp)| pgrp == pgid.as_raw() && state != 'Z' && state != 'X')
    })
}

/// State letter and process group of a process, from `/proc/PID/stat`.
pub fn process_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// An identity of a process that no other process can share, on any host or in any
/// container: `BOOT/PIDNS/START` (the kernel's boot id, the inode of the PID namespace the
/// pid is counted in, the process's start time in clock ticks since boot). `None` without
/// `/proc`.
pub fn process_identity(pid: i32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let ns = ns.to_str()?.trim_start_matches("pid:[").trim_end_matches(']').to_string();
    Some(format!("{}/{ns}/{}", boot.trim(), start_time(pid)?))
}

/// This engine's own [`process_identity`], read once: none of its parts changes while the
/// process lives, and reading it for every step cost three files of `/proc` a step.
fn engine_identity() -> Option<&'static str> {
    static IDENTITY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(|| process_identity(std::process::id() as i32)).as_deref()
}

/// A process's start time (clock ticks since boot), from `/proc/PID/stat`.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; fields after `comm` start at field 3.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// True only when `identity` (from [`process_identity`], recorded by `pid`) names a process
/// that provably no longer runs: this kernel boot, this PID namespace, and the pid is free,
/// a zombie, or taken by a process started at another time. Anything else (another host,
/// container or boot, an unreadable `/proc`) proves nothing.
pub fn identity_is_gone(pid: i32, identity: &str) -> bool {
    let mut parts = identity.splitn(3, '/');
    let (Some(boot), Some(ns), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Some(mine) = process_identity(std::process::id() as i32) else { return false };
    let mut here = mine.splitn(3, '/');
    if here.next() != Some(boot) || here.next() != Some(ns) {
        return false;
    }
    match process_state(pid) {
        None => true,
        Some((state, _)) if state == 'Z' || state == 'X' => true,
        Some(_) => start_time(pid).is_some_and(|t| t.to_string() != start),
    }
}

/// End the process groups that engines now dead left behind, as written down in `ledger`
/// by [`Reaper::with_ledger`] on this host: each group still registered whose engine is
/// provably gone ([`identity_is_gone`]) and that is still the same group (its leader, if
/// alive, started when recorded; Linux keeps a pid allocated while its group has members)
/// gets SIGKILL, and this waits (a few seconds at most) until it is gone. Groups of a live
/// engine are left alone (its reaper's watchdog answers for them). Returns the groups
/// ended.
pub fn end_leftover_groups(ledger: &std::path::Path) -> Vec<i32> {
    let Ok(text) = runbook_store::read_to_string_outside_store(ledger) else { return Vec::new() };
    let mut live: Vec<(i32, u64, i32, String)> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next().and_then(|p| p.parse::<i32>().ok())) {
            (Some("add"), Some(pgid)) => {
                let start = f.next().and_then(|s| s.parse::<u64>().ok());
                let engine = f.next().and_then(|s| s.parse::<i32>().ok());
                if let (Some(start), Some(engine), Some(id)) = (start, engine, f.next()) {
                    live.push((pgid, start, engine, id.to_string()));
                }
            }
            (Some("del"), Some(pgid)) => live.retain(|(g, ..)| *g != pgid),
            _ => {}
        }
    }
    let mut ended = Vec::new();
    for (pgid, start, engine, identity) in live {
        let same_group = match process_state(pgid) {
            Some((s, _)) if s != 'Z' && s != 'X' => start_time(pgid) == Some(start),
            _ => true,
        };
        let group = Pid::from_raw(pgid);
        if identity_is_gone(engine, &identity) && same_group && group_alive(group) {
            let _ = killpg(group, Signal::SIGKILL);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while group_alive(group) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            ended.push(pgid);
        }
    }
    ended
}

/// Read a pipe to its end in chunks (any bytes: invalid UTF-8 is replaced in the lines
/// handed on, never a reason to stop reading, which could leave the child blocked on a full
/// pipe), redact the byte stream, and send it on line by line. A receiver that is gone
/// only means nobody listens any more: keep draining.
///
/// When `group_gone` turns `true` (the attempt's process group is ended), it reads what is
/// left and stops at the first pause of [`DRAIN_PAUSE`] or after [`DRAIN_MAX`] more bytes:
/// a process that left the group (`setsid sleep 1000 &`) may hold the pipe open for ever.
/// Returns `true` when it stopped so, before the pipe's end.
async fn forward<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    mut redactor: Box<dyn StreamRedaction>,
    lines: mpsc::Sender<Line>,
    mut group_gone: watch::Receiver<bool>,
) -> bool {
    let mut chunk = vec![0u8; CHUNK];
    let mut redacted = Vec::with_capacity(CHUNK);
    let mut splitter = LineSplitter::default();
    let mut listening = true;
    let mut draining: Option<usize> = None;
    let mut held = false;
    loop {
        let read = match draining {
            None => tokio::select! {
                // Reading is cancel-safe: nothing read is lost when the other branch wins.
                r = reader.read(&mut chunk) => r,
                _ = group_gone.wait_for(|g| *g) => {
                    draining = Some(0);
                    continue;
                }
            },
            Some(after) if after > DRAIN_MAX => {
                held = true;
                break;
            }
            Some(_) => match tokio::time::timeout(DRAIN_PAUSE, reader.read(&mut chunk)).await {
                Ok(r) => r,
                Err(_) => {
                    held = true;
                    break;
                }
            },
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(after) = draining.as_mut() {
            *after += n;
        }
        redacted.clear();
        redactor.push(&chunk[..n], &mut redacted);
        for text in splitter.push(&redacted) {
            if listening {
                listening = lines.send(Line { stream, text }).await.is_ok();
            }
        }
    }
    redacted.clear();
    redactor.finish(&mut redacted);
    let mut rest = splitter.push(&redacted);
    rest.extend(splitter.finish());
    for text in rest {
        if listening {
            listening = lines.send(Line { stream, text }).await.is_ok();
        }
    }
    held
}

/// Cuts a byte stream into lines (without their `\n` or `\r\n`), none longer than
/// [`MAX_LINE`] bytes (cut at a character boundary where there is one).
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// The lines that `bytes` completes.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            // A full line that ends with `\r` waits for one more byte: `\n` ends it there.
            if self.partial.len() > MAX_LINE {
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    self.partial.pop();
                    out.push(self.take(self.partial.len()));
                } else {
                    out.push(self.take(MAX_LINE));
                }
                continue;
            }
            let room = MAX_LINE - self.partial.len();
            // The line ends within the room, or just past it with `\r\n`.
            let newline = bytes
                .iter()
                .take(room + 2)
                .position(|b| *b == b'\n')
                .filter(|&i| i <= room || bytes[i - 1] == b'\r');
            match newline {
                Some(i) => {
                    self.partial.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    if self.partial.last() == Some(&b'\r') {
                        self.partial.pop();
                    }
                    out.push(self.take(self.partial.len()));
                }
                None if bytes.len() <= room || (bytes.len() == room + 1 && bytes[room] == b'\r') => {
                    self.partial.extend_from_slice(bytes);
                    bytes = &[];
                }
                None => {
                    self.partial.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    // Cut before an incomplete character at the end, if any.
                    let keep = utf8_complete_prefix(&self.partial);
                    out.push(self.take(keep));
                }
            }
        }
        out
    }

    /// The first `n` bytes of the partial line, as a line; the rest stays.
    fn take(&mut self, n: usize) -> String {
        let rest = self.partial.split_off(n);
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial = rest;
        line
    }

    /// The last line, if the stream did not end with a newline.
    pub fn finish(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        Some(line)
    }
}

/// The length of `bytes` without a UTF-8 character cut at its end (at most 3 bytes less).
fn utf8_complete_prefix(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=3.min(n) {
        let b = bytes[n - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let width = if b >= 0xF0 {
            4
        } else if b >= 0xE0 {
            3
        } else if b >= 0xC0 {
            2
        } else {
            1
        };
        return if width > back { n - back } else { n };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(program: &str, env: &[(&str, &str)], env_remove: &[&str]) -> Spawn {
        Spawn {
            argv: vec![program.into()],
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            env_remove: env_remove.iter().map(|k| k.to_string()).collect(),
            dir: PathBuf::from("/"),
            timeout: None,
            grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_engine_finds_a_program_where_execvp_would() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, second) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&first, &second] {
            std::fs::create_dir(d).expect("dir");
        }
        use std::os::unix::fs::PermissionsExt as _;
        let write = |path: PathBuf, mode: u32| {
            std::fs::write(&path, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        // Not executable in the first folder, a folder of that name too: the second one's.
        write(first.join("tool"), 0o644);
        std::fs::create_dir(first.join("dir-tool")).expect("dir");
        write(second.join("tool"), 0o755);
        write(second.join("dir-tool"), 0o755);
        let path = format!("{}:{}", first.display(), second.display());
        let found = |program: &str, path: &str| search_in(program, std::ffi::OsStr::new(path));
        assert_eq!(found("tool", &path), Some(second.join("tool")));
        assert_eq!(found("dir-tool", &path), Some(second.join("dir-tool")));
        assert_eq!(found("absent", &path), None);
        // Left to execvp: a path, a relative folder first (`.`, an empty entry), an empty name.
        assert_eq!(found("./tool", &path), None);
        assert_eq!(found(&second.join("tool").display().to_string(), &path), None);
        assert_eq!(found("tool", &format!(".:{path}")), None);
        assert_eq!(found("tool", &format!(":{path}")), None);
        assert_eq!(found("", &path), None);
        // A step that sets or removes PATH: its variables may carry secrets, and the found
        // path would be in the tie's argv.
        assert_eq!(search_path("sh", &spawn("sh", &[("PATH", &path)], &[])), None);
        assert_eq!(search_path("sh", &spawn("sh", &[], &["PATH"])), None);
        // Otherwise the engine's own PATH, which the step inherits.
        let sh = search_path("sh", &spawn("sh", &[("HOME", "/")], &[]));
        assert!(sh.as_ref().is_some_and(|p| p.is_absolute() && p.ends_with("sh")), "{sh:?}");
    }
}

/// What `git` gave for a file at a revision ([`git_show`]).
#[derive(Debug)]
pub enum GitShow {
    /// The file's bytes at the revision; `linked`: reached through a symbolic link.
    Found {
        /// The blob's bytes.
        bytes: Vec<u8>,
        /// A symbolic link (of the path or of a folder on it) was followed.
        linked: bool,
        /// The file's path from the repository's top, links followed: two names with the
        /// same `path` are the same file at that revision.
        path: String,
        /// The folder git ran in (`dir`) from the repository's top: empty or ending in `/`.
        /// A file whose `path` does not start with it was reached through a link out of
        /// that folder (the caller's confinement, red team adv16r F2).
        folder: String,
    },
    /// The revision exists; the file does not in it.
    Absent,
    /// No commit has this name in the repository.
    UnknownRevision,
    /// The repository has no commit yet.
    NoCommits,
    /// The name is an object of the repository that is not a commit (`tree`, `blob`, `tag`).
    NotACommit(String),
    /// The path is a folder (`"a folder"`) or a submodule (`"a submodule"`) at the revision.
    NotAFile(&'static str),
    /// A symbolic link on the way leads outside the repository (or is absolute).
    LinkOutside,
    /// More than [`MAX_LINKS`] symbolic links on the way (a loop).
    LinkLoop,
    /// The file is larger than the limit.
    TooLarge,
    /// `git` could not be started, or the folder is in no git repository: git's own words.
    Failed(String),
}

/// The most symbolic links followed for one path at a revision (Linux's own limit).
pub const MAX_LINKS: usize = 40;

/// The file at `name` (a path relative to the folder `dir`, such as `include/l1.toml`) as it
/// was at revision `rev`, read with git in `dir`, up to `max_bytes`. The folders on the way
/// need not exist any more.
///
/// The path is walked in the revision's trees one name at a time (`git ls-tree OID`), so the
/// type of every object is known: a symbolic link is followed as the working tree would
/// (its target read from its blob, relative to its folder, inside the repository only), a
/// folder or a submodule is said to be one, never read as git's listing of it; the file is
/// read as its blob (`git cat-file blob OID`).
///
/// No shell: the revision and the path are argv elements of their own, after
/// `--end-of-options` where git reads options; a revision that starts with `-` or holds a
/// control character is refused here as well as by the caller.
pub fn git_show(dir: &std::path::Path, rev: &str, name: &str, max_bytes: u64) -> GitShow {
    if rev.is_empty() || rev.starts_with('-') || rev.chars().any(char::is_control) {
        return GitShow::UnknownRevision;
    }
    // The repository is the one the working tree's `.git` names, never one the runbook's
    // folder could itself be: a pull request can commit the files of a bare repository
    // (HEAD, config, objects/, refs/) into that folder, and git would discover it and read
    // the "old" version there; nor are replace refs followed (refs/replace/BASE could swap
    // the base commit for another). Red team adv15c F8.
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-c", "safe.bareRepository=explicit", "--no-replace-objects", "-C"])
            .arg(dir)
            .args(args)
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
    };
    let status = |args: &[&str]| -> Result<(bool, String), String> {
        let out =
            git(args).and_then(|c| c.wait_with_output()).map_err(|e| format!("cannot start git: {e}"))?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_string()))
    };
    // A command's standard output, up to `max` bytes (`None`: more).
    let output = |args: &[&str], max: u64| -> Result<Option<Vec<u8>>, String> {
        use std::io::Read as _;
        let mut child = git(args).map_err(|e| format!("cannot start git: {e}"))?;
        let mut bytes = Vec::new();
        let read = child.stdout.take().map(|out| out.take(max + 1).read_to_end(&mut bytes));
        if bytes.len() as u64 > max {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        match (read, child.wait_with_output()) {
            (Some(Ok(_)), Ok(out)) if out.status.success() => Ok(Some(bytes)),
            (_, Ok(out)) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            (_, Err(e)) => Err(e.to_string()),
        }
    };
    let commit = format!("{rev}^{{commit}}");
    match status(&["rev-parse", "--verify", "--quiet", "--end-of-options", &commit]) {
        Ok((true, _)) => {}
        Ok((false, _)) => {
            // Outside a repository, git says so; an unknown name says nothing.
            return match status(&["rev-parse", "--git-dir"]) {
                Ok((true, _)) => match output(&["cat-file", "-t", "--end-of-options", rev], 64) {
                    Ok(Some(t)) => GitShow::NotACommit(String::from_utf8_lossy(&t).trim().to_string()),
                    _ => match status(&["rev-parse", "--verify", "--quiet", "HEAD"]) {
                        Ok((false, _)) => GitShow::NoCommits,
                        _ => GitShow::UnknownRevision,
                    },
                },
                Ok((false, why)) => GitShow::Failed(why),
                Err(e) => GitShow::Failed(e),
            };
        }
        Err(e) => return GitShow::Failed(e),
    }
    // The path from the repository's top: `dir`'s place in it, then `name`.
    let prefix = match output(&["rev-parse", "--show-prefix"], 64 * 1024) {
        Ok(Some(p)) => String::from_utf8_lossy(&p).trim_end_matches('\n').to_string(),
        Ok(None) => return GitShow::Failed("the folder's path in the repository is too long".into()),
        Err(e) => return GitShow::Failed(e),
    };
    let Some(mut parts) = repo_path(&[], &format!("{prefix}{name}")) else {
        return GitShow::LinkOutside;
    };
    let root = match output(&["rev-parse", "--verify", "--end-of-options", &format!("{rev}^{{tree}}")], 1024)
    {
        Ok(Some(t)) => String::from_utf8_lossy(&t).trim().to_string(),
        Ok(None) => return GitShow::Failed("unexpected output of git rev-parse".into()),
        Err(e) => return GitShow::Failed(e),
    };
    let mut links = 0;
    let mut linked = false;
    'walk: loop {
        let mut tree = root.clone();
        for i in 0..parts.len() {
            // One folder's entries: `MODE SP TYPE SP OID TAB NAME NUL`.
            let listing =
                match output(&["ls-tree", "-z", "--full-tree", "--end-of-options", &tree], max_bytes) {
                    Ok(Some(l)) => l,
                    Ok(None) => return GitShow::TooLarge,
                    Err(e) => return GitShow::Failed(e),
                };
            let entry = listing.split(|b| *b == 0).find_map(|e| {
                let e = std::str::from_utf8(e).ok()?;
                let (meta, entry_name) = e.split_once('\t')?;
                (entry_name == parts[i]).then(|| {
                    let mut m = meta.split(' ');
                    (
                        m.next().unwrap_or("").to_string(),
                        m.next().unwrap_or("").to_string(),
                        m.next().unwrap_or("").to_string(),
                    )
                })
            });
            let Some((mode, kind, oid)) = entry else { return GitShow::Absent };
            let last = i + 1 == parts.len();
            if mode == "120000" {
                links += 1;
                if links > MAX_LINKS {
                    return GitShow::LinkLoop;
                }
                let target = match output(&["cat-file", "blob", &oid], 4096) {
                    Ok(Some(t)) => String::from_utf8_lossy(&t).into_owned(),
                    Ok(None) => return GitShow::LinkOutside,
                    Err(e) => return GitShow::Failed(e),
                };
                let mut rest = vec![target];
                rest.extend(parts[i + 1..].iter().cloned());
                let Some(next) = repo_path(&parts[..i], &rest.join("/")) else { return GitShow::LinkOutside };
                parts = next;
                linked = true;
                continue 'walk;
            }
            match (kind.as_str(), last) {
                ("tree", false) => tree = oid,
                ("blob", true) => {
                    return match output(&["cat-file", "blob", &oid], max_bytes) {
                        Ok(Some(bytes)) => {
                            GitShow::Found { bytes, linked, path: parts.join("/"), folder: prefix }
                        }
                        Ok(None) => GitShow::TooLarge,
                        Err(e) => GitShow::Failed(e),
                    };
                }
                ("tree", true) => return GitShow::NotAFile("a folder"),
                ("commit", _) => return GitShow::NotAFile("a submodule"),
                // A file where a folder is named (`a.txt/b`).
                _ => return GitShow::Absent,
            }
        }
        // The path is the repository's top folder itself.
        return GitShow::NotAFile("a folder");
    }
}

/// `path` (a symbolic link's target, or a path from the top) read from the folder `base`
/// (names from the repository's top), as names from the top; `None` when it is absolute or
/// climbs above the top.
fn repo_path(base: &[String], path: &str) -> Option<Vec<String>> {
    if path.starts_with('/') {
        return None;
    }
    let mut out: Vec<String> = base.to_vec();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            other => out.push(other.to_string()),
        }
    }
    Some(out)
}

#[cfg(test)]
mod git_path_tests {
    use super::repo_path;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_links_target_is_read_from_its_folder_and_never_leaves_the_top() {
        let ops = names(&["ops"]);
        assert_eq!(repo_path(&ops, "sql/0042.sql"), Some(names(&["ops", "sql", "0042.sql"])));
        assert_eq!(repo_path(&ops, "./a//b/../c"), Some(names(&["ops", "a", "c"])));
        assert_eq!(repo_path(&ops, "../x"), Some(names(&["x"])));
        assert_eq!(repo_path(&ops, "."), Some(ops.clone()));
        assert_eq!(repo_path(&ops, "../../x"), None);
        assert_eq!(repo_path(&ops, "/etc/hostname"), None);
        assert_eq!(repo_path(&[], ".."), None);
        assert_eq!(repo_path(&[], ""), Some(Vec::new()));
    }
}
