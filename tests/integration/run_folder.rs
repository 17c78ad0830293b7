//! Issue 11, promise 3 (second round, F6): the run folder is the engine's alone. The
//! folder is 0700, logs and `$RUNBOOK_OUTPUT` files are 0600 whatever the umask, and an
//! outputs file a dead engine left behind is removed when the run is taken up again.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::side_columns::run_id;
use crate::support::{Scratch, files};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
}

#[test]
fn the_run_folder_its_logs_and_outputs_files_are_private() {
    let s = Scratch::new(
        r#"[runbook]
name = "private"

[steps.emit]
run = 'printf "tok=value\n" >> "$RUNBOOK_OUTPUT"; stat -c %a "$RUNBOOK_OUTPUT" > outputs-mode; echo done'
outputs = ["tok"]

[steps.after]
run = 'echo "${T}"'
env = { T = "{{ steps.emit.outputs.tok }}" }
needs = ["emit"]
"#,
    );
    let out = s.run(&[], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(s.read("outputs-mode").trim(), "600", "the outputs file while the step writes it");
    let id = run_id(&out);
    let dir = s.path().join("state/runs").join(&id);
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let logs = files(&dir, "log");
    assert!(!logs.is_empty(), "no logs in {}", dir.display());
    for log in logs {
        assert_eq!(mode(&log), 0o600, "{}", log.display());
    }
}

#[test]
fn an_outputs_file_left_by_a_dead_engine_is_removed_when_the_run_is_resumed() {
    let s = Scratch::new(
        r#"[runbook]
name = "left"

[steps.emit]
run = 'printf "tok=Zq7vB2Xq4wP9kLm2\n" >> "$RUNBOOK_OUTPUT"; if [ ! -e killed ]; then touch killed; kill -9 $PPID; sleep 5; fi'
outputs = ["tok"]
idempotent = true
"#,
    );
    let out = s.run(&[], &[]);
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let id = run_id(&out);
    let dir = s.path().join("state/runs").join(&id);
    let out = s.cmd(&["resume", &id], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let left = files(&dir, "outputs");
    assert!(left.is_empty(), "outputs files left after resume: {left:?}");
}

/// F3: the team's backup runbook gives libpq the database password in its environment,
/// never on a command line: while pg_dump connects (to a listener that never answers), no
/// process's /proc/PID/cmdline holds the password.
#[test]
fn the_backup_runbook_never_puts_the_database_password_on_a_command_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("bk")).expect("bk");
    let password = "S3cr3tPa55w0rdXq7";
    let url = format!("postgres://app:{password}@127.0.0.1:{port}/app?connect_timeout=2");
    let runbook = crate::support::root().join("runbooks/backup.toml");
    let backup_dir = format!("backup_dir={}", dir.path().join("bk").display());
    let state = dir.path().join("s.db").display().to_string();
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["run", &runbook.display().to_string(), "-p", "environment=staging", "-p", &backup_dir])
        .args(["--state", &state, "--yes"])
        .env("DATABASE_URL", &url)
        .env("SLACK_WEBHOOK", "http://127.0.0.1:1/hook")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runbook");
    let (mut saw_pg_dump, mut leaks) = (false, Vec::new());
    while child.try_wait().ok().flatten().is_none() {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            saw_pg_dump |= text.starts_with("pg_dump") || text.contains("/pg_dump ");
            if text.contains(password) && leaks.is_empty() {
                leaks.push(text);
            }
        }
    }
    assert!(saw_pg_dump, "pg_dump was never seen running: the test saw nothing");
    assert!(leaks.is_empty(), "the password is on a command line: {leaks:?}");
}
