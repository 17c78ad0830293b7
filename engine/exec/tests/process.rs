//! Real processes: exit codes, output lines, and that nothing of a step's process group
//! outlives it.

use std::time::Duration;

use runbook_exec::process::{Exit, Line, Spawn, Stream, run};
use tokio::sync::{mpsc, watch};

fn bash(script: &str, dir: &std::path::Path, timeout: Option<Duration>) -> Spawn {
    Spawn {
        argv: vec!["bash".into(), "-e".into(), "-o".into(), "pipefail".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hola".into())],
        env_remove: vec![],
        dir: dir.to_path_buf(),
        timeout,
        grace: Duration::from_millis(200),
    }
}

async fn run_collect(spawn: &Spawn) -> (Exit, Vec<Line>) {
    let (tx, mut rx) = mpsc::channel(4096);
    let (_cancel_tx, cancel) = watch::channel(false);
    let exit = run(spawn, tx, cancel).await;
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    (exit, lines)
}

/// Running, not a zombie (where PID 1 does not reap, a killed orphan stays a zombie).
fn alive(pid: i32) -> bool {
    runbook_exec::process::process_state(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn read_pid(dir: &std::path::Path) -> i32 {
    std::fs::read_to_string(dir.join("pid")).expect("pid file").trim().parse().expect("a pid")
}

#[tokio::test]
async fn exit_codes_and_lines_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exit, lines) =
        run_collect(&bash("echo \"$GREETING\"; echo oops >&2; pwd; exit 3", dir.path(), None)).await;
    assert_eq!(exit, Exit::Code(3));
    assert!(lines.contains(&Line { stream: Stream::Stdout, text: "hola".into() }));
    assert!(lines.contains(&Line { stream: Stream::Stderr, text: "oops".into() }));
    let cwd = std::fs::canonicalize(dir.path()).expect("canonical");
    assert!(lines.iter().any(|l| l.text == cwd.to_string_lossy()), "{lines:?}");
}

#[tokio::test]
async fn a_line_longer_than_the_limit_comes_in_pieces_cut_between_characters() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 150,001 bytes without a newline: `a`, then two-byte characters across the 64 KiB cuts.
    let script = "printf a; for i in $(seq 75000); do printf '\\303\\251'; done";
    let (exit, lines) = run_collect(&bash(script, dir.path(), None)).await;
    assert_eq!(exit, Exit::Code(0));
    assert!(lines.len() >= 3, "{}", lines.len());
    assert!(lines.iter().all(|l| l.text.len() <= runbook_exec::process::MAX_LINE));
    let whole: String = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(whole, format!("a{}", "\u{e9}".repeat(75000)), "no character was cut or replaced");
}

#[tokio::test]
async fn a_timeout_kills_grandchildren_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = bash("sleep 1000 & echo $! > pid; wait", dir.path(), Some(Duration::from_millis(300)));
    let (exit, _) = run_collect(&spawn).await;
    assert_eq!(exit, Exit::TimedOut);
    let pid = read_pid(dir.path());
    // The group was signalled; give the kernel a moment to reap.
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "grandchild {pid} survived its step's timeout");
}

#[tokio::test]
async fn a_background_child_ends_with_its_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = bash("sleep 1000 & echo $! > pid; echo started", dir.path(), None);
    let started = std::time::Instant::now();
    let (exit, lines) = run_collect(&spawn).await;
    assert_eq!(exit, Exit::Code(0));
    assert!(lines.iter().any(|l| l.text == "started"));
    assert!(started.elapsed() < Duration::from_secs(30), "the step waited for its background child");
    let pid = read_pid(dir.path());
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "background child {pid} outlived its step");
}

#[tokio::test]
async fn a_term_ignoring_process_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = bash(
        "trap '' TERM; echo $$ > pid; while true; do sleep 0.05; done",
        dir.path(),
        Some(Duration::from_millis(200)),
    );
    let (exit, _) = run_collect(&spawn).await;
    assert_eq!(exit, Exit::TimedOut);
    assert!(!alive(read_pid(dir.path())));
}

#[tokio::test]
async fn cancellation_ends_the_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = bash("echo $$ > pid; sleep 1000", dir.path(), None);
    let (tx, _rx) = mpsc::channel(4096);
    let (cancel_tx, cancel) = watch::channel(false);
    let handle = tokio::spawn(async move { run(&spawn, tx, cancel).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel_tx.send(true).expect("send");
    assert_eq!(handle.await.expect("join"), Exit::Cancelled);
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = Spawn { argv: vec!["/nonexistent/program".into()], ..bash("", dir.path(), None) };
    let (exit, _) = run_collect(&spawn).await;
    assert!(matches!(exit, Exit::SpawnFailed(_)), "{exit:?}");
}

#[tokio::test]
async fn invalid_utf8_output_does_not_stop_the_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exit, lines) =
        run_collect(&bash("printf 'a\\377b\\n'; seq 1 20000 | tail -n 1", dir.path(), None)).await;
    assert_eq!(exit, Exit::Code(0));
    assert!(lines.iter().any(|l| l.text == "20000"), "{:?}", lines.last());
}

#[test]
fn a_line_of_exactly_the_limit_is_one_line() {
    use runbook_exec::process::{LineSplitter, MAX_LINE};
    let mut s = LineSplitter::default();
    let mut text = vec![b'x'; MAX_LINE];
    text.extend_from_slice(b"\r\nnext\n");
    for cut in [0, 1, MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, MAX_LINE + 2] {
        let mut s2 = LineSplitter::default();
        let mut lines = s2.push(&text[..cut]);
        lines.extend(s2.push(&text[cut..]));
        lines.extend(s2.finish());
        assert_eq!(lines.len(), 2, "cut at {cut}");
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "next");
    }
    assert!(s.push(b"").is_empty() && s.finish().is_none());
}
