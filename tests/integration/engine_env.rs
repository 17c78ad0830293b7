//! The engine's own configuration and credentials never reach a process it starts, and the
//! engine's inputs are bounded (red team adv13b: F1, F4, F6, F7, F8), through the real binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scratch, bin, run_limited};

/// F1: a step and a secret helper see none of the engine's own `RUNBOOK_*` variables (its
/// store, its worker, its tuning), only those the engine sets for the step.
#[test]
fn f1_steps_and_helpers_get_no_engine_variables() {
    let s = Scratch::new(
        r#"[runbook]
name = "envs"

[secrets.HELPER]
command = ["sh", "-c", "env | grep '^RUNBOOK_' > helper-env.txt; echo helper-value-1234"]

[steps.diag]
run = "env | grep '^RUNBOOK_' | sort > step-env.txt"
"#,
    );
    let state = s.state();
    let out = crate::support::run_in_with_env(
        s.path(),
        &["run", "r.toml"],
        &[
            ("RUNBOOK_STATE", state.as_str()),
            ("RUNBOOK_SUBMITTED_BY", "someone-else"),
            ("RUNBOOK_LEASE_TTL", "61s"),
            ("RUNBOOK_STORE_TRIALS", "3"),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let step = s.read("step-env.txt");
    let names: Vec<&str> = step.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    assert_eq!(names, ["RUNBOOK_OUTPUT", "RUNBOOK_RUN_ID", "RUNBOOK_STEP"], "{step}");
    assert_eq!(s.read("helper-env.txt"), "", "the secret helper saw engine variables");
}

/// F1 on PostgreSQL: the store's password (in its URL, or in `PGPASSWORD`) is in no step's
/// environment, and a step that prints it anyway shows it redacted, in every sink.
#[test]
fn f1_store_password_reaches_no_step_and_is_redacted() {
    const PASSWORD: &str = "pgS3cretPW-f1-never";
    let pg = runbook_sandbox::peers::Postgres::start();
    let url = pg.url("postgres").replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    let s = Scratch::new(
        r#"[runbook]
name = "pgenv"

[steps.diag]
run = "env | grep -i -e runbook -e '^PG' ; cat pw.txt"

[steps.own]
needs = ["diag"]
run = "printf 'own=%s\n' \"$PGPASSWORD\""
env = { PGPASSWORD = "mine-1234" }
"#,
    );
    std::fs::write(s.path().join("pw.txt"), format!("{PASSWORD}\n")).expect("pw");
    let local = s.path().join("host").display().to_string();
    let env =
        [("XDG_STATE_HOME", local.as_str()), ("PGPASSWORD", PASSWORD), ("PGPASSFILE", "/nonexistent/pgpass")];
    let migrate = crate::support::run_in_with_env(s.path(), &["state", "migrate", "--state", &url], &env);
    assert_eq!(migrate.code, 0, "{}{}", migrate.stdout, migrate.stderr);
    let mut all_env = env.to_vec();
    all_env.push(("RUNBOOK_STATE", &url));
    let out = crate::support::run_in_with_env(s.path(), &["run", "r.toml"], &all_env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let mut seen = format!("{}{}", out.stdout, out.stderr);
    assert!(seen.contains("own=mine-1234"), "a step's own PGPASSWORD is kept: {seen}");
    assert!(!seen.contains("PGPASSFILE") && !seen.contains("RUNBOOK_STATE"), "{seen}");
    let run_id = pg.psql("postgres", "SELECT run_id FROM runs");
    for args in [vec!["audit", &run_id, "--format", "jsonl"], vec!["show", &run_id], vec!["report", &run_id]]
    {
        let o = crate::support::run_in_with_env(s.path(), &args, &all_env);
        seen.push_str(&o.stdout);
        seen.push_str(&o.stderr);
    }
    seen.push_str(&pg.psql("postgres", "SELECT string_agg(body::text, ' ') FROM events"));
    seen.push_str(
        &pg.psql("postgres", "SELECT string_agg(encode(body::bytea, 'escape'), ' ') FROM step_logs"),
    );
    for log in crate::support::files(&s.path().join("host"), "log") {
        seen.push_str(&std::fs::read_to_string(log).unwrap_or_default());
    }
    assert!(!seen.contains(PASSWORD), "the store's password leaked:\n{seen}");
    assert!(seen.contains("<secret:"), "the printed password is redacted:\n{seen}");
}

/// Red team adv25 F6 (promise 3): a store password given as the URL's `password` parameter
/// (a form libpq and sqlx read) is redacted too, percent-decoded, in the terminal and in the
/// step's log; before, only the userinfo's password and `$PGPASSWORD` were known.
#[test]
fn a_store_password_given_as_a_url_parameter_is_redacted() {
    let pg = runbook_sandbox::peers::Postgres::start();
    // The parameter as written, and its key percent-encoded as the driver decodes it (red
    // team adv26 S1: `pass%77ord` logged in and was printed in clear).
    for (key, password) in [("password", "pgQuery/Pw-f6 never"), ("pass%77ord", "pgKey/Pw-s1 never")] {
        let encoded = password.replace('/', "%2F").replace(' ', "%20");
        let url = format!("{}&{key}={encoded}", pg.url("postgres"));
        let s = Scratch::new("[runbook]\nname = \"pgq\"\n[steps.diag]\nrun = \"cat pw.txt\"\n");
        std::fs::write(s.path().join("pw.txt"), format!("{password}\n")).expect("pw");
        let local = s.path().join("host").display().to_string();
        let env = [("XDG_STATE_HOME", local.as_str()), ("RUNBOOK_STATE", url.as_str())];
        let migrate = crate::support::run_in_with_env(s.path(), &["state", "migrate"], &env);
        assert_eq!(migrate.code, 0, "{}{}", migrate.stdout, migrate.stderr);
        let out = crate::support::run_in_with_env(s.path(), &["run", "r.toml"], &env);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let mut seen = format!("{}{}", out.stdout, out.stderr);
        let run_id = out.stdout.split_whitespace().nth(1).unwrap_or_default().to_string();
        let logs = crate::support::run_in_with_env(s.path(), &["logs", &run_id], &env);
        seen.push_str(&logs.stdout);
        seen.push_str(
            &pg.psql("postgres", "SELECT string_agg(encode(body::bytea, 'escape'), ' ') FROM step_logs"),
        );
        let core = &password[..10];
        assert!(!seen.contains(core), "the store's password leaked ({key}):\n{seen}");
        assert!(seen.contains("<secret:state-store-password>"), "{seen}");
    }
}

/// F6: a secret helper that never stops writing is cut at a bound, with a clear error naming
/// the secret, exit 3, and nothing run.
#[test]
fn f6_secret_helper_output_is_bounded() {
    let s = Scratch::new(
        r#"[runbook]
name = "yes"

[secrets.FLOOD]
command = ["yes", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]

[steps.never]
run = "touch ran"
"#,
    );
    let state = s.state();
    let out = run_limited(s.path(), &["run", "r.toml", "--state", &state], &[], Duration::from_secs(60));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    insta::assert_snapshot!("secret_helper_too_large", out.stderr);
    assert!(out.stderr.contains("secret `FLOOD`"), "{}", out.stderr);
    assert!(!s.path().join("ran").exists());
}

/// A secret whose helper never ends; the helper's child writes its pid to `child.pid`.
const SLOW_HELPER: &str = r#"[runbook]
name = "slow"

[secrets.SLOW]
command = ["sh", "-c", "sleep 1007 & echo $! > child.pid; wait"]

[steps.never]
run = "touch ran"
"#;

/// F6: a secret helper that never ends is ended at its time limit (`RUNBOOK_SECRET_TIMEOUT`,
/// 30s by default) with its whole process group, exit 3.
#[test]
fn f6_secret_helper_has_a_time_limit() {
    let s = Scratch::new(SLOW_HELPER);
    let state = s.state();
    let started = Instant::now();
    let out = run_limited(
        s.path(),
        &["run", "r.toml", "--state", &state],
        &[("RUNBOOK_SECRET_TIMEOUT", "1s")],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    insta::assert_snapshot!("secret_helper_timed_out", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(out.stderr.contains("secret `SLOW`") && out.stderr.contains("1s"), "{}", out.stderr);
    assert!(!s.path().join("ran").exists());
    assert_gone(&s.path().join("child.pid"));
}

/// F6: Ctrl-C while a secret helper runs ends the engine with 130 and the helper's group.
#[test]
fn f6_ctrl_c_ends_a_secret_helper() {
    let s = Scratch::new(SLOW_HELPER);
    let state = s.state();
    let mut child = Command::new(bin())
        .args(["run", "r.toml", "--state", &state])
        .current_dir(s.path())
        .env_remove("RUNBOOK_STATE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let pid_file = s.path().join("child.pid");
    let t = Instant::now();
    while !pid_file.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let t = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if t.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("the engine ignored Ctrl-C while a secret helper ran");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(!s.path().join("ran").exists());
    assert_gone(&pid_file);
}

/// The process whose pid is in `file` is gone (killed; the test kills it anyway if not).
fn assert_gone(file: &Path) {
    let pid: i32 = std::fs::read_to_string(file).expect("pid file").trim().parse().expect("a pid");
    let t = Instant::now();
    let mut alive = true;
    while t.elapsed() < Duration::from_secs(5) {
        alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    assert!(!alive, "the secret helper's child {pid} was orphaned");
}

/// F7: `--run-id` is a run id, never a path: anything outside `[A-Za-z0-9T_-]` is a usage
/// error (exit 2) and nothing is created.
#[test]
fn f7_run_id_that_is_not_a_run_id_is_refused() {
    let s = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"touch ran\"\n");
    let state = s.state();
    let outside = s.path().join("shared").display().to_string();
    for id in [outside.as_str(), "../../escaped", ".", "..", "a b", "a:b", "", "ü"] {
        let out = crate::support::run_in_with_env(
            s.path(),
            &["run", "r.toml", "--state", &state, "--run-id", id],
            &[("XDG_STATE_HOME", &s.path().join("xdg").display().to_string())],
        );
        assert_eq!(out.code, 2, "--run-id {id:?}: {}{}", out.stdout, out.stderr);
        if id == "../../escaped" {
            insta::assert_snapshot!("run_id_not_a_run_id", out.stderr);
        }
        assert!(out.stderr.contains("run id"), "{id:?}: {}", out.stderr);
        assert!(!s.path().join("ran").exists(), "{id:?} ran");
    }
    assert!(!s.path().join("shared").exists() && !s.path().join("escaped").exists());
    let ok = crate::support::run_in_with_env(
        s.path(),
        &["run", "r.toml", "--state", &state, "--run-id", "20261206T120000Z-0a1b2c3d"],
        &[("XDG_STATE_HOME", &s.path().join("xdg").display().to_string())],
    );
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
}

/// F8: an error printed to a closed stderr keeps its exit code (no panic, no 101).
#[test]
fn f8_closed_stderr_keeps_the_error_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let code_file = dir.path().join("code");
    for (args, code) in [(vec!["check", "nonexistent.toml"], 3), (vec!["runs", "--state", "/"], 5)] {
        // The reader (`true`) is gone before the binary writes its error.
        let status = Command::new("sh")
            .arg("-c")
            .arg(r#"{ sleep 0.3; "$0" "$@" >/dev/null; echo $? > "$CODE"; } 2>&1 | true"#)
            .arg(bin())
            .args(&args)
            .current_dir(dir.path())
            .env("CODE", &code_file)
            .env_remove("RUNBOOK_STATE")
            .stdin(Stdio::null())
            .status()
            .expect("runs");
        assert!(status.success());
        let got = std::fs::read_to_string(&code_file).expect("code");
        assert_eq!(got.trim(), code.to_string(), "{args:?}");
    }
}

/// F4: an identity that starts with `-` (read as a flag by the worker's engine) is refused at
/// `--as`/`$RUNBOOK_OPERATOR`, with the identity message and exit 2.
#[test]
fn f4_identity_starting_with_a_dash_is_refused() {
    let s = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"touch ran\"\n");
    for (args, env) in [
        (vec!["run", "r.toml", "--as=-alice"], vec![]),
        (vec!["run", "r.toml"], vec![("RUNBOOK_OPERATOR", "-alice")]),
    ] {
        let out = s.cmd(&args, &env);
        assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
        insta::assert_snapshot!("identity_starting_with_a_dash", out.stderr);
        assert!(
            out.stderr.contains("--as / RUNBOOK_OPERATOR") && out.stderr.contains("-alice"),
            "{}",
            out.stderr
        );
        assert!(!s.path().join("ran").exists());
    }
}

/// M1: an error that echoes what the user typed shows its control characters escaped: no
/// terminal escape sequence (OSC title, CSI colour) or carriage return reaches the terminal.
#[test]
fn m1_errors_escape_control_characters() {
    let s = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"true\"\n");
    assert_eq!(s.run(&[], &[]).code, 0);
    let out = s.cmd(&["show", "\u{1b}]0;pwned\u{7}\u{1b}[31mred\r\n"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(!out.stderr.contains(['\u{1b}', '\u{7}', '\r']), "{:?}", out.stderr);
    assert!(out.stderr.contains("\\u{1b}]0;pwned"), "{:?}", out.stderr);
}

/// M2: a state store that is not a regular file gets no `mv` hint (`mv /dev/null ...`).
#[test]
fn m2_no_move_hint_for_a_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::support::run_in_with_env(dir.path(), &["runs", "--state", "/dev/null"], &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(!out.stderr.contains("mv /dev/null"), "{}", out.stderr);
}

/// M4: `cancel` of a run that exists but was never queued says so, not "no run".
#[test]
fn m4_cancel_of_a_run_that_was_not_queued() {
    let s = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"true\"\n");
    assert_eq!(s.run(&[], &[]).code, 0);
    let run = s.latest_run();
    let out = s.cmd(&["cancel", &run, "--reason", "x"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(!out.stderr.contains("no run"), "{}", out.stderr);
    assert!(out.stderr.contains("not a queued run"), "{}", out.stderr);
}

/// M5: `logs RUN STEP` for a step the run never had (or never started) is an error, exit 3,
/// not "no output recorded" with exit 0.
#[test]
fn m5_logs_of_a_step_the_run_does_not_have() {
    let s = Scratch::new("[runbook]\nname = \"r\"\n\n[steps.a]\nrun = \"echo hi\"\n");
    assert_eq!(s.run(&[], &[]).code, 0);
    let run = s.latest_run();
    let out = s.cmd(&["logs", &run, "nosuchstep"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("nosuchstep"), "{}", out.stderr);
    assert_eq!(s.cmd(&["logs", &run, "a"], &[]).code, 0);
}
