//! Helpers to run the binary and locate repository files.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (tests run with it as the working directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `path` relative to the repository root, with `/` separators, for stable messages.
pub fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// The output of one invocation.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Assert that a command exited with `code`, showing its output if not.
pub fn ok(out: &Output, code: i32) {
    assert_eq!(out.code, code, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
}

/// Run `runbook ARGS` from `dir` with colours off.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    run_in_with_env(dir, args, &[])
}

/// Run `runbook ARGS` from the repository root.
pub fn run(args: &[&str]) -> Output {
    run_in(&root(), args)
}

/// Every file under `dir` (recursively) whose name ends with `ext`, sorted.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Run `runbook ARGS` from `dir` with extra environment variables.
pub fn run_in_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(env.iter().copied())
        .output()
        .expect("the runbook binary runs");
    Output::from(out)
}

/// The id of the newest run in the state store at `state`, if there is one.
pub fn latest_run_id(dir: &Path, state: &Path) -> Option<String> {
    let out = run_in(dir, &["runs", "--format", "json", "--state", state.to_str().unwrap_or_default()]);
    // A store that does not fit its chain is never what a test expects: say why at once.
    assert_ne!(out.code, 4, "`runs` found the store inconsistent: {}{}", out.stdout, out.stderr);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    runs.get(0)?.get("run_id")?.as_str().map(str::to_string)
}

/// The journal's last hash, as `runbook run` prints it at its end.
pub fn printed_hash(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("journal hash "))?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// A temp folder with a runbook `r.toml` and its own state store (`state/state.db`).
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(runbook: &str) -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.toml"), runbook).expect("write runbook");
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> String {
        self.path().join("state/state.db").display().to_string()
    }

    /// `runbook ARGS --state S` in the folder, with extra environment variables.
    pub fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let state = self.state();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--state", &state]);
        run_in_with_env(self.path(), &all, env)
    }

    /// `runbook ARGS --state S` in the folder, as a [`Command`] to start on a real
    /// pseudo-terminal ([`crate::pty::Terminal::spawn`]) or elsewhere.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .args(["--state", &self.state()])
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_STATE")
            .envs(env.iter().copied());
        cmd
    }

    /// `runbook ARGS --state S` on a real pseudo-terminal: the test is the operator.
    pub fn terminal(&self, args: &[&str], env: &[(&str, &str)]) -> crate::pty::Terminal {
        crate::pty::Terminal::spawn(self.command(args, env))
    }

    /// `runbook run r.toml EXTRA --state S`.
    pub fn run(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args = vec!["run", "r.toml"];
        args.extend_from_slice(extra);
        self.cmd(&args, env)
    }

    /// The newest run's id in this folder's store.
    pub fn latest_run(&self) -> String {
        latest_run_id(self.path(), Path::new(&self.state())).expect("a run")
    }

    /// A run's journal as JSON lines.
    pub fn audit(&self, run: &str) -> String {
        self.cmd(&["audit", run, "--format", "jsonl"], &[]).stdout
    }

    /// A file of the folder ("" when missing).
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_default()
    }

    /// A run's journal events as (kind, step) pairs ("" where an event names no step).
    pub fn events(&self, run: &str) -> Vec<(String, String)> {
        self.audit(run)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|r| {
                (
                    r["event"]["kind"].as_str().unwrap_or_default().to_string(),
                    r["event"]["step"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// `runbook ARGS --state S` started in the folder, stdin closed, output piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args, &[])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    }

    /// Waits (at most a minute: a hang fails, no speed is asserted) until `file` holds `text`
    /// ("" waits for it to exist).
    pub fn wait_for(&self, file: &str, text: &str) {
        let t0 = std::time::Instant::now();
        while !(self.path().join(file).exists() && self.read(file).contains(text)) {
            assert!(t0.elapsed() < std::time::Duration::from_secs(60), "{file} never held {text:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// What `run_limited` returns as the exit code of a process it had to kill: a hang.
pub const HUNG: i32 = -99;

/// Run `runbook ARGS` from `dir`, killing it after `limit` (a generous bound, only to turn
/// a hang into a failure: never a speed assertion). A killed process gets code [`HUNG`]; one
/// killed by a signal of its own (a crash: SIGABRT, SIGSEGV) gets `-signal`.
pub fn run_limited(dir: &Path, args: &[&str], env: &[(&str, &str)], limit: std::time::Duration) -> Output {
    run_program_limited(&bin(), dir, args, env, limit)
}

/// [`run_limited`] for another program (a shell that caps the binary's memory, say).
pub fn run_program_limited(
    program: &str,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: std::time::Duration,
) -> Output {
    use std::io::Read as _;
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program runs");
    // Drained on threads: a process that writes much must not block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break HUNG;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        code,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

/// The binary under test: this build's, or `$RUNBOOK_TEST_BIN` (to show that a regression
/// test fails on an older build).
pub fn bin() -> String {
    std::env::var("RUNBOOK_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_runbook").to_string())
}

/// SIGKILL to `pid`: an engine dying with no chance to record anything.
pub fn kill9(pid: u32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("SIGKILL");
}

/// A child process killed (SIGKILL) and reaped when dropped, so that a failing test leaves
/// no worker behind polling a deleted store.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `runbook plan FILE --params-file PARAMS` from the repository root, as the review page and
/// as the JSON plan.
pub fn with_params(file: &str, params: &str) -> (String, serde_json::Value) {
    let html = run(&["plan", file, "--params-file", params, "--format", "html"]);
    assert_eq!(html.code, 0, "{file}: {}", html.stderr);
    let json = run(&["plan", file, "--params-file", params, "--format", "json"]);
    assert_eq!(json.code, 0, "{file}: {}", json.stderr);
    (html.stdout, serde_json::from_str(&json.stdout).expect("json"))
}
