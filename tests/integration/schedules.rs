//! Schedules (issue 17): `runbook check` of a schedules file (every problem at once, with
//! `file:line:col`, a code and a hint; the runbooks it names and their parameters) and
//! `runbook schedules` (next fire times in the schedule's time zone and in UTC, DST rules).

use std::path::Path;

use crate::support::{ok, run, run_in, run_in_with_env};

const RUNBOOK: &str = r#"[runbook]
name = "backup"

[params.environment]
type = "string"
enum = ["staging", "production"]

[params.kind]
type = "string"
enum = ["daily", "weekly"]
default = "daily"

[steps.dump]
run = "echo {{ params.kind }}"
"#;

/// A folder (a git repository: the confinement root) with `backup.toml` and `s.toml`.
fn folder(schedules: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect("git");
    std::fs::write(dir.path().join("backup.toml"), RUNBOOK).expect("runbook");
    std::fs::write(dir.path().join("s.toml"), schedules).expect("schedules");
    dir
}

fn check(dir: &Path) -> crate::support::Output {
    run_in(dir, &["check", "s.toml", "--color", "never"])
}

const GOOD: &str = r#"[schedule.backup_daily]
runbook = "backup.toml"
params = { environment = "production" }
cron = "30 2 * * *"
time-zone = "Europe/Madrid"
expect-success-within = "26h"
notify = { webhook = "https://hooks.example.com/x" }
"#;

#[test]
fn a_valid_schedules_file_checks_clean() {
    let dir = folder(GOOD);
    let out = check(dir.path());
    ok(&out, 0);
    assert_eq!(out.stderr, "ok: 1 schedules file valid\n");
}

/// Every problem of the file in one round, each at its place with its code: an unknown key
/// (did you mean), a cron of 6 fields, a bad cron field, an unknown time zone (did you mean),
/// an unknown overlap policy, a catch-up limit out of range, a bad duration, a `notify`
/// without a dead-man's switch, a parameter the runbook does not declare, a wrong value, a
/// missing required parameter.
#[test]
fn every_problem_of_a_schedules_file_in_one_round() {
    let text = r#"[schedule.a]
runbook = "backup.toml"
params = { environment = "prod", flavour = "x" }
cron = "0 0 2 * * *"
time-zone = "Europe/Madird"
overlap = "skipp"
catch-up = "all"
catch-up-limit = 0
expect-success-within = "26"
cronn = "x"

[schedule.b]
runbook = "backup.toml"
cron = "61 2 * * *"
time-zone = "UTC"
remind-every = "1h"
notify = { webhook = "https://hooks.example.com/x" }
"#;
    let dir = folder(text);
    let out = check(dir.path());
    ok(&out, 3);
    insta::assert_snapshot!("schedules_every_problem", out.stderr);
}

/// Codes through `--format json`: the stable ones of the book.
#[test]
fn schedule_problems_carry_stable_codes() {
    let text = "[schedule.a]\nrunbook = \"/etc/backup.toml\"\ncron = \"x y z\"\ntime-zone = \"Mars/Base\"\novercap = 1\ncatch-up = \"most\"\n";
    let dir = folder(text);
    let out = run_in(dir.path(), &["check", "s.toml", "--format", "json"]);
    ok(&out, 3);
    for code in ["RB002", "RB100", "RB101", "RB102", "RB103"] {
        assert!(out.stdout.contains(code), "{code} missing:\n{}", out.stdout);
    }
}

/// A runbook outside the schedules file's repository is refused, like an include outside
/// the including tree.
#[test]
fn a_runbook_outside_the_repository_is_refused() {
    let outer = tempfile::tempdir().expect("tempdir");
    std::fs::write(outer.path().join("backup.toml"), RUNBOOK).expect("runbook");
    let repo = outer.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).expect("repo");
    std::fs::write(
        repo.join("s.toml"),
        "[schedule.a]\nrunbook = \"../backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"0 2 * * *\"\ntime-zone = \"UTC\"\n",
    )
    .expect("schedules");
    let out = run_in(&repo, &["check", "s.toml", "--color", "never"]);
    ok(&out, 3);
    assert!(out.stderr.contains("RB102"), "{}", out.stderr);
    assert!(out.stderr.contains("is outside"), "{}", out.stderr);
}

/// An invalid runbook is reported with its own problems, and the schedule says it.
#[test]
fn an_invalid_runbook_is_reported_where_it_is_wrong() {
    let dir = folder(GOOD);
    std::fs::write(
        dir.path().join("backup.toml"),
        "[runbook]\nname = \"backup\"\n[steps.a]\nrun = \"x\"\nneeds = [\"nope\"]\n",
    )
    .expect("runbook");
    let out = check(dir.path());
    ok(&out, 3);
    assert!(out.stderr.contains("backup.toml:5:"), "{}", out.stderr);
    assert!(out.stderr.contains("RB020"), "{}", out.stderr);
    assert!(out.stderr.contains("RB102"), "{}", out.stderr);
}

/// A params file is read as `plan --params-file` reads it; what it misses `params` may give.
#[test]
fn a_params_file_gives_what_params_does_not() {
    let text = "[schedule.a]\nrunbook = \"backup.toml\"\nparams-file = \"p.toml\"\ncron = \"0 2 * * *\"\ntime-zone = \"UTC\"\n";
    let dir = folder(text);
    std::fs::write(dir.path().join("p.toml"), "kind = \"weekly\"\n").expect("params");
    let out = check(dir.path());
    ok(&out, 3);
    assert!(out.stderr.contains("RB070") && out.stderr.contains("`environment`"), "{}", out.stderr);
    std::fs::write(dir.path().join("p.toml"), "kind = \"weekly\"\nenvironment = \"staging\"\n")
        .expect("params");
    ok(&check(dir.path()), 0);
    std::fs::write(dir.path().join("p.toml"), "kind = \"hourly\"\nenvironment = \"staging\"\n")
        .expect("params");
    let out = check(dir.path());
    ok(&out, 3);
    assert!(out.stderr.contains("p.toml:1:"), "{}", out.stderr);
}

/// Seconds are for tests only: a user's file stays minute-based unless the test-mode
/// variable is set.
#[test]
fn a_seconds_field_only_in_test_mode() {
    let text = GOOD.replace("30 2 * * *", "*/1 * * * * *");
    let dir = folder(&text);
    let out = check(dir.path());
    ok(&out, 3);
    assert!(
        out.stderr.contains("RB100") && out.stderr.contains("has 6 field(s); it needs 5"),
        "{}",
        out.stderr
    );
    let out = run_in_with_env(dir.path(), &["check", "s.toml"], &[("RUNBOOK_TEST_SCHEDULE_SECONDS", "1")]);
    ok(&out, 0);
}

/// DST in a named time zone, as croner documents it: in Madrid, 2026-03-29 02:00 jumps to
/// 03:00, so a daily 02:30 fires at 03:00 CEST that day; on 2026-10-25 03:00 goes back to
/// 02:00, so 02:30 happens twice and fires once, at its first occurrence (CEST).
#[test]
fn schedules_lists_fire_times_across_dst_changes() {
    let dir = folder(GOOD);
    let spring = run_in(dir.path(), &["schedules", "s.toml", "--next", "3", "--at", "2026-03-27T12:00:00Z"]);
    ok(&spring, 0);
    insta::assert_snapshot!("schedules_spring_forward", spring.stdout);
    let fall = run_in(dir.path(), &["schedules", "s.toml", "--next", "3", "--at", "2026-10-23T12:00:00Z"]);
    ok(&fall, 0);
    assert!(fall.stdout.contains("2026-10-25 02:30 CEST (+02:00) = 2026-10-25 00:30 UTC"), "{}", fall.stdout);
    assert!(!fall.stdout.contains("2026-10-25 02:30 CET"), "fires twice:\n{}", fall.stdout);
    let json = run_in(
        dir.path(),
        &["schedules", "s.toml", "--next", "2", "--at", "2026-03-28T12:00:00Z", "--format", "json"],
    );
    ok(&json, 0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let first = &v["schedules"][0];
    assert_eq!(first["name"], "backup_daily");
    assert_eq!(first["time_zone"], "Europe/Madrid");
    assert_eq!(first["next"][0]["local"], "2026-03-29T03:00:00+02:00");
    assert_eq!(first["next"][0]["utc"], "2026-03-29T01:00:00Z");
    assert_eq!(first["next"][1]["utc"], "2026-03-30T00:30:00Z");
}

/// `schedules` refuses an invalid file with its diagnostics (exit 3) and a runbook (usage).
#[test]
fn schedules_refuses_what_is_not_a_valid_schedules_file() {
    let dir = folder(&GOOD.replace("Europe/Madrid", "Europe/Madird"));
    let out = run_in(dir.path(), &["schedules", "s.toml"]);
    ok(&out, 3);
    assert!(out.stderr.contains("RB101"), "{}", out.stderr);
    let out = run_in(dir.path(), &["schedules", "backup.toml"]);
    ok(&out, 2);
    assert!(out.stderr.contains("is not a schedules file"), "{}", out.stderr);
}

/// The shipped INMOVA schedules (daily 02:00, weekly Sunday 03:00, monthly 1st 04:00 in
/// Europe/Madrid) check clean against the team's backup runbook.
#[test]
fn the_inmova_schedules_check_clean() {
    let out = run(&["check", "examples/schedules/inmova.toml"]);
    ok(&out, 0);
    let out =
        run(&["schedules", "examples/schedules/inmova.toml", "--next", "1", "--at", "2026-12-05T12:00:00Z"]);
    ok(&out, 0);
    for line in [
        "2026-12-06 02:00 CET (+01:00) = 2026-12-06 01:00 UTC",
        "2026-12-06 03:00 CET (+01:00) = 2026-12-06 02:00 UTC",
        "2027-01-01 04:00 CET (+01:00) = 2027-01-01 03:00 UTC",
    ] {
        assert!(out.stdout.contains(line), "{line}:\n{}", out.stdout);
    }
}

/// `runbook schedules --state`: the last run and last success of each schedule from the
/// store, and OVERDUE (a word, red only on a terminal) when the last success is older than
/// `expect-success-within`, evaluated at `--at`. A worker on SQLite fires the schedule.
#[test]
fn schedules_shows_the_last_run_and_overdue_from_the_store() {
    let text = "[schedule.tick]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"2m\"\n";
    let dir = folder(text);
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    // Nothing fired yet: no run, not overdue (nothing to measure from).
    let out = run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state], &env);
    ok(&out, 0);
    assert!(out.stdout.contains("last run     none") && !out.stdout.contains("OVERDUE"), "{}", out.stdout);
    let mut worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", &state])
        .current_dir(dir.path())
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let json = loop {
        let out = run_in_with_env(
            dir.path(),
            &["schedules", "s.toml", "--state", &state, "--format", "json"],
            &env,
        );
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if v["schedules"][0]["last_success"].is_string() {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no success: {}{}", out.stdout, out.stderr);
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    assert_eq!(json["schedules"][0]["overdue"], false);
    assert_eq!(
        json["schedules"][0]["last_run"]["status"]
            .as_str()
            .map(|s| s == "queued" || s == "running" || s == "succeeded"),
        Some(true)
    );
    let success = json["schedules"][0]["last_success"].as_str().unwrap_or_default().to_string();
    let ts = chrono::DateTime::parse_from_rfc3339(&success).expect("time");
    let later = (ts + chrono::Duration::minutes(3)).to_rfc3339();
    let out = run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state, "--at", &later], &env);
    ok(&out, 0);
    assert!(out.stdout.contains("OVERDUE      no successful run within 2m"), "{}", out.stdout);
    // The listing as a user reads it: the last run and success replaced (they change every
    // run, and the worker may have queued another before it was stopped).
    let shown: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("  next") && !l.starts_with("        "))
        .map(|l| match l {
            l if l.starts_with("  last run     ") => "  last run     [run] ([status])".to_string(),
            l if l.starts_with("  last success ") => "  last success [time]".to_string(),
            l => l.to_string(),
        })
        .collect();
    insta::assert_snapshot!("schedules_overdue", shown.join("\n"));
    assert!(!out.stdout.contains('\x1b'), "colour without a terminal: {}", out.stdout);
    let sooner = (ts + chrono::Duration::minutes(1)).to_rfc3339();
    let out = run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state, "--at", &sooner], &env);
    assert!(!out.stdout.contains("OVERDUE"), "{}", out.stdout);
}

/// `overlap = "skip"`: a due time that finds the schedule's previous run still running is
/// not queued, and says why; the skipped due time is recorded, never fired later.
#[test]
fn a_due_time_that_overlaps_the_running_one_is_skipped_with_its_reason() {
    let dir = folder(
        "[schedule.slow]\nrunbook = \"slow.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"skip\"\n",
    );
    let gate = gated(dir.path(), "slow");
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    let log = dir.path().join("worker.out");
    let mut worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", &state, "--concurrency", "2"])
        .current_dir(dir.path())
        .envs(env)
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().filter(|l| l.contains(": skipped: ")).count() >= 2 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "nothing skipped:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::fs::write(&gate, "").expect("gate");
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let queued = text.lines().filter(|l| l.contains(": queued run ")).count();
    assert_eq!(queued, 1, "only the first due time runs while it is running:\n{text}");
    let skipped = text.lines().find(|l| l.contains(": skipped: ")).unwrap_or_default();
    assert!(skipped.starts_with("schedule slow due "), "{skipped}");
    assert!(skipped.contains("of the schedule is still queued or running (overlap = \"skip\")"), "{skipped}");
}

/// A worker with `--schedules` started in `dir` on the SQLite store `st.db`, its standard
/// output in `worker.out`, its standard error in `worker.err`.
fn start_worker(dir: &Path, extra_env: &[(&str, &str)]) -> std::process::Child {
    start_worker_on(dir, &dir.join("st.db"), extra_env)
}

/// [`start_worker`] on the SQLite store `state` (the host folder beside it).
fn start_worker_on(dir: &Path, state: &Path, extra_env: &[(&str, &str)]) -> std::process::Child {
    let host = state.with_file_name("host").display().to_string();
    let state = state.display().to_string();
    let mut env = vec![("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    env.extend_from_slice(extra_env);
    ok(&run_in_with_env(dir, &["state", "migrate", "--state", &state], &env), 0);
    std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", &state])
        .current_dir(dir)
        .envs(env)
        .stdout(std::fs::File::create(dir.join("worker.out")).expect("log"))
        .stderr(std::fs::File::create(dir.join("worker.err")).expect("log"))
        .spawn()
        .expect("worker")
}

/// `NAME.toml` in `dir`: a runbook whose one step waits until the returned gate file exists.
fn gated(dir: &Path, name: &str) -> std::path::PathBuf {
    let gate = dir.join("gate");
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "[runbook]\nname = \"{name}\"\n[steps.wait]\nrun = \"while [ ! -e {} ]; do sleep 0.05; done\"\n",
            gate.display()
        ),
    )
    .expect("runbook");
    gate
}

/// `runbook worker --schedules s.toml` with its clock moved by `offset` (libfaketime,
/// preloaded into the worker itself, so that killing it kills the worker).
fn spawn_skewed(
    dir: &Path,
    state: &str,
    env: &[(&str, &str)],
    log: &Path,
    offset: &str,
) -> std::process::Child {
    std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", state])
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(std::fs::File::create(log).expect("log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the worker (apt package faketime)")
}

/// Spawn `runbook worker --schedules s.toml` in `dir` on `state`, its stdout in `log`.
fn spawn_worker(
    dir: &Path,
    state: &str,
    env: &[(&str, &str)],
    log: &Path,
    extra: &[&str],
) -> std::process::Child {
    std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", state])
        .args(extra)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(log).expect("log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker")
}

/// Waits until the worker's output (stdout and stderr) satisfies `done`, at most 60 s.
fn wait_worker(dir: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = format!(
            "{}{}",
            std::fs::read_to_string(dir.join("worker.out")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("worker.err")).unwrap_or_default()
        );
        if done(&text) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{what}:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Wait (up to 60 s) until `done` holds of the worker's log, and return the log.
fn wait_log(log: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{what}:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Red team adv17a S1 (promise 2): the worker pins, at its start, the runbook and params file
/// of each schedule as read through the confined reader; each fire queues the plan made
/// then. A symbolic link swapped after the start to a runbook outside the repository, or the
/// runbook edited in place, is never run: the fire is skipped with a fixed reason and the
/// schedule's notification is sent once. Failed before: the worker ran `outside/evil.toml`
/// and the edited step.
#[test]
fn a_runbook_changed_after_the_worker_started_is_never_fired() {
    for how in ["link swapped out", "edited in place", "params file edited"] {
        let top = tempfile::tempdir().expect("tempdir");
        let repo = top.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).expect("git");
        std::fs::create_dir(top.path().join("outside")).expect("outside");
        let marks = top.path().join("marks");
        std::fs::create_dir(&marks).expect("marks");
        let step = |word: &str| {
            format!(
                "[runbook]\nname = \"r\"\n[params.kind]\ntype = \"string\"\nenum = [\"a\", \"b\"]\n[steps.s]\nrun = \"touch {}/{word}-{{{{ params.kind }}}}\"\n",
                marks.display()
            )
        };
        std::fs::write(repo.join("inside.toml"), step("inside")).expect("inside");
        std::fs::write(top.path().join("outside/evil.toml"), step("EVIL")).expect("evil");
        std::os::unix::fs::symlink("inside.toml", repo.join("r.toml")).expect("link");
        std::fs::write(repo.join("p.toml"), "kind = \"a\"\n").expect("params");
        let hook = runbook_sandbox::peers::HttpPeer::start();
        std::fs::write(
            repo.join("s.toml"),
            format!(
                "[schedule.tick]\nrunbook = \"r.toml\"\nparams-file = \"p.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"1h\"\nnotify = {{ webhook = \"{}\" }}\n",
                hook.url("/hook")
            ),
        )
        .expect("schedules");
        let mut worker = start_worker(&repo, &[]);
        wait_worker(&repo, "nothing queued", |t| t.contains(": queued run "));
        match how {
            "link swapped out" => {
                std::fs::remove_file(repo.join("r.toml")).expect("rm");
                std::os::unix::fs::symlink("../outside/evil.toml", repo.join("r.toml")).expect("link");
            }
            "edited in place" => std::fs::write(repo.join("inside.toml"), step("EVIL")).expect("edit"),
            _ => std::fs::write(repo.join("p.toml"), "kind = \"b\"\n").expect("edit"),
        }
        let text = wait_worker(&repo, "no fire refused", |t| {
            t.lines().filter(|l| l.contains("skipped: not queued: RB104")).count() >= 3
        });
        while hook.hooks().is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        crate::support::kill9(worker.id());
        let _ = worker.wait();
        let ran: Vec<String> = std::fs::read_dir(&marks)
            .expect("marks")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            ran.iter().all(|m| m == "inside-a"),
            "{how}: only the pinned runbook with the pinned values runs: {ran:?}\n{text}"
        );
        let skipped = text.lines().find(|l| l.contains("skipped: not queued: RB104")).unwrap_or_default();
        assert!(
            skipped.ends_with(
                "the runbook or its params file changed since the worker started: restart the worker after review"
            ),
            "{how}: {skipped}"
        );
        let hooks = hook.hooks();
        assert_eq!(hooks.len(), 1, "{how}: the change is notified once: {hooks:?}");
        assert!(hooks[0].contains("changed since the worker started"), "{how}: {hooks:?}");
    }
}

/// Red team adv17a S8 (promise 3): a secret's value given as a parameter, inline or in a
/// params file, to an enum, a pattern (which it fits) and an integer parameter, through every
/// entry point (`check` of a schedules file, `plan`, `run`, `submit`, a worker firing the
/// schedule): refused, and quoted by no output and no byte of the store. Failed before:
/// `check`, `plan --params-file` and the worker quoted it, the store kept it in
/// `schedule_fires.note`.
#[test]
fn a_secret_given_as_a_parameter_is_quoted_by_no_entry_point() {
    const SECRET: &str = "s3cr3t-T0KEN-4f9a";
    let runbook = "[runbook]\nname = \"r\"\n[secrets.TOKEN]\nenv = \"TOKEN\"\n[params.kind]\ntype = \"string\"\nenum = [\"daily\", \"weekly\"]\ndefault = \"daily\"\n[params.tag]\ntype = \"string\"\npattern = \"^[a-zA-Z0-9-]+$\"\ndefault = \"t\"\n[params.count]\ntype = \"integer\"\ndefault = 1\n[steps.s]\nrun = \"echo {{ params.kind }} {{ params.tag }} {{ params.count }}\"\n";
    let mut leaks = Vec::new();
    let mut cases = 0;
    for param in ["kind", "tag", "count"] {
        for how in ["inline", "file"] {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir(dir.path().join(".git")).expect("git");
            std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
            std::fs::write(dir.path().join("p.toml"), format!("{param} = \"{SECRET}\"\n")).expect("params");
            let given = if how == "inline" {
                format!("params = {{ {param} = \"{SECRET}\" }}\n")
            } else {
                "params-file = \"p.toml\"\n".to_string()
            };
            std::fs::write(
                dir.path().join("s.toml"),
                format!("[schedule.tick]\nrunbook = \"r.toml\"\n{given}cron = \"* * * * * *\"\ntime-zone = \"UTC\"\n"),
            )
            .expect("schedules");
            let state = dir.path().join("st.db").display().to_string();
            let host = dir.path().join("host").display().to_string();
            let env = [
                ("TOKEN", SECRET),
                ("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"),
                ("XDG_STATE_HOME", host.as_str()),
            ];
            ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
            let p = format!("{param}={SECRET}");
            let mut commands: Vec<Vec<&str>> = vec![
                vec!["check", "s.toml"],
                vec!["schedules", "s.toml"],
                vec!["plan", "r.toml"],
                vec!["run", "r.toml", "--yes", "--state", &state],
                vec!["submit", "r.toml", "--state", &state],
            ];
            for c in commands.iter_mut().skip(2) {
                if how == "inline" {
                    c.extend(["-p", p.as_str()]);
                } else {
                    c.extend(["--params-file", "p.toml"]);
                }
            }
            for c in &commands {
                cases += 1;
                let out = run_in_with_env(dir.path(), c, &env);
                if out.code == 0 {
                    leaks.push(format!("{param} {how} {c:?}: not refused: {}{}", out.stdout, out.stderr));
                }
                if out.stdout.contains(SECRET) || out.stderr.contains(SECRET) {
                    leaks.push(format!("{param} {how} {c:?}: {}{}", out.stdout, out.stderr));
                }
            }
            // The worker: started only when `check` is bypassed, as a worker refuses what
            // check refuses. It must say nothing of the value, at start or at a fire.
            cases += 1;
            let mut worker = start_worker(dir.path(), &[("TOKEN", SECRET)]);
            let status = (0..600).find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                worker.try_wait().ok().flatten()
            });
            if status.is_none() {
                crate::support::kill9(worker.id());
                let _ = worker.wait();
                leaks.push(format!("{param} {how}: the worker started"));
            }
            let log = format!(
                "{}{}",
                std::fs::read_to_string(dir.path().join("worker.out")).unwrap_or_default(),
                std::fs::read_to_string(dir.path().join("worker.err")).unwrap_or_default()
            );
            if log.contains(SECRET) {
                leaks.push(format!("{param} {how} worker: {log}"));
            }
            for f in std::fs::read_dir(dir.path()).expect("dir") {
                let f = f.expect("entry").path();
                let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
                if name.starts_with("st.db") {
                    let bytes = std::fs::read(&f).expect("store");
                    if bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()) {
                        leaks.push(format!("{param} {how}: the store file {name} holds the secret"));
                    }
                }
            }
        }
    }
    assert_eq!(cases, 36);
    assert!(leaks.is_empty(), "{} leak(s):\n{}", leaks.len(), leaks.join("\n---\n"));
}

/// Red team adv17a S6 and M3: a cron that matches no date (February 30, April 31) is
/// refused with RB100 at its place, decided from a fixed leap-year start (not today); the
/// croner extensions the book does not list (`L`, `W`, `#`, `?`) are refused; a leap day
/// and month or day names holding those letters are accepted. Failed before: all passed.
#[test]
fn a_cron_that_never_fires_or_uses_an_extension_is_refused() {
    let mut text = String::new();
    for (i, cron) in [
        "0 2 30 2 *",
        "0 2 31 4,6,9,11 *",
        "0 2 31 2 *",
        "0 0 L * *",
        "0 0 * * 5#5",
        "0 0 1W * *",
        "0 0 ? * MON",
        "0 0 29 2 *",
        "0 0 * JUL WED",
        "0 0 1 APR,JUN SAT-SUN",
    ]
    .iter()
    .enumerate()
    {
        text.push_str(&format!(
            "[schedule.s{i}]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"{cron}\"\ntime-zone = \"UTC\"\n\n"
        ));
    }
    let dir = folder(&text);
    let out = check(dir.path());
    ok(&out, 3);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("s.toml:")).collect();
    assert_eq!(lines.len(), 7, "{}", out.stderr);
    insta::assert_snapshot!("schedules_cron_never_or_extension", lines.join("\n"));
}

/// Red team adv17a S10 (promise 5): a schedules file holds at most 1000 schedules (RB105 at
/// the first one beyond), and `runbook schedules` lists at most 10,000 fire times in all
/// (fewer per schedule, said on standard error), in both formats. Before: no limit on
/// either; 2000 schedules × `--next 1000` took 3.3 GB.
#[test]
fn schedules_are_bounded_per_file_and_in_what_is_listed() {
    let one = |i: usize| {
        format!(
            "[schedule.s{i}]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"{} * * * *\"\ntime-zone = \"UTC\"\n",
            i % 60
        )
    };
    let text: String = (0..1001).map(one).collect();
    let dir = folder(&text);
    let out = check(dir.path());
    ok(&out, 3);
    let line = out.stderr.lines().next().unwrap_or_default();
    assert_eq!(
        line,
        "s.toml:5001:11: error[RB105]: a schedules file holds at most 1000 schedules; this one holds 1001",
        "{}",
        out.stderr
    );
    let text: String = (0..1000).map(one).collect();
    std::fs::write(dir.path().join("s.toml"), text).expect("schedules");
    let at = "2026-01-01T00:00:00Z";
    let out = run_in(dir.path(), &["schedules", "s.toml", "--next", "1000", "--format", "json", "--at", at]);
    ok(&out, 0);
    assert_eq!(
        out.stderr,
        "note: 1000 schedules × --next 1000 is more than 10000 fire times: showing the next 10 of each\n"
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let list = v["schedules"].as_array().expect("list");
    assert_eq!(list.len(), 1000);
    assert!(list.iter().all(|s| s["next"].as_array().map(Vec::len) == Some(10)));
    let out = run_in(dir.path(), &["schedules", "s.toml", "--next", "1000", "--at", at]);
    ok(&out, 0);
    assert_eq!(out.stdout.lines().filter(|l| l.contains(" = ") && l.ends_with(" UTC")).count(), 10_000);
    // Under the bound, nothing is cut and nothing is said.
    let out = run_in(dir.path(), &["schedules", "s.toml", "--next", "10", "--at", at]);
    ok(&out, 0);
    assert_eq!(out.stderr, "");
}

/// Red team adv17a S4: two schedules files sharing a store and a schedule name, for
/// different runbooks. A worker whose schedule's name the store already fires for another
/// runbook refuses to start, naming both; nothing of it is fired or recorded. Failed before:
/// the second worker started and took due times of the first team's schedule.
#[test]
fn a_schedule_name_fired_for_another_runbook_is_refused() {
    let top = tempfile::tempdir().expect("tempdir");
    for team in ["team1", "team2"] {
        let dir = top.path().join(team);
        std::fs::create_dir_all(dir.join(".git")).expect("git");
        std::fs::write(
            dir.join("backup.toml"),
            format!("[runbook]\nname = \"{team}-backup\"\n[steps.a]\nrun = \"true\"\n"),
        )
        .expect("runbook");
        std::fs::write(
            dir.join("s.toml"),
            "[schedule.nightly]\nrunbook = \"backup.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\n",
        )
        .expect("schedules");
    }
    let state = top.path().join("st.db").display().to_string();
    let host = top.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    let team1 = top.path().join("team1");
    let mut worker = start_worker_on(&team1, &top.path().join("st.db"), &[]);
    wait_worker(&team1, "nothing queued", |t| t.contains(": queued run "));
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let out = crate::support::run_limited(
        &top.path().join("team2"),
        &["worker", "--schedules", "s.toml", "--state", &state],
        &env,
        std::time::Duration::from_secs(20),
    );
    assert_eq!(out.code, 5, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "schedule `nightly` is already fired in this store for runbook `team1-backup`, not `team2-backup`"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("queued run"), "{}", out.stdout);
}

/// Red team adv17a M2: a schedule's window that is not a duration, or out of range, is
/// RB103 (the book's table: RB100-RB103 for schedules), and a params file that is a folder
/// (`params-file = "."`) is RB102 at its line of the schedules file. Failed before: RB030,
/// and `./.:1:1: error[RB000]`.
#[test]
fn schedule_windows_and_params_files_are_reported_with_schedule_codes() {
    let dir = folder(
        "[schedule.a]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\nparams-file = \".\"\ncron = \"0 2 * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"26\"\nremind-every = \"0s\"\n",
    );
    let out = check(dir.path());
    ok(&out, 3);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains(": error[")).collect();
    insta::assert_snapshot!("schedules_windows_and_params_file", lines.join("\n"));
}

/// adv17a S2: a schedule whose every fire is refused (its runbook's secret is missing on
/// the worker's host) never queues a run; the dead-man's switch still measures from the
/// first due time recorded (any outcome) and sends its notification, and `schedules
/// --state` shows it OVERDUE with the last refusal and its reason.
#[test]
fn a_schedule_whose_every_fire_is_refused_goes_overdue_and_says_why() {
    let hook = runbook_sandbox::peers::HttpPeer::start();
    let dir = folder(&format!(
        "[schedule.guarded]\nrunbook = \"guarded.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"3s\"\nnotify = {{ webhook = \"{}\" }}\n",
        hook.url("/hook")
    ));
    std::fs::write(
        dir.path().join("guarded.toml"),
        "[runbook]\nname = \"guarded\"\n[secrets.TOKEN_S2]\nenv = \"RUNBOOK_TEST_S2_TOKEN\"\n[steps.a]\nrun = \"echo ok\"\n",
    )
    .expect("runbook");
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    let log = dir.path().join("worker.out");
    let mut worker = spawn_worker(dir.path(), &state, &env, &log, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while hook.hooks().is_empty() {
        if std::time::Instant::now() > deadline {
            crate::support::kill9(worker.id());
            let _ = worker.wait();
            panic!("no notification: {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains(": queued run "), "{text}");
    assert!(text.contains("schedule guarded overdue: no successful run since "), "{text}");
    let body: serde_json::Value = serde_json::from_str(&hook.hooks()[0]).expect("json");
    assert_eq!(body["schedule"], "guarded");
    let out = run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state], &env);
    ok(&out, 0);
    assert!(out.stdout.contains("  last run     none\n"), "{}", out.stdout);
    assert!(out.stdout.contains("  OVERDUE      no successful run within"), "{}", out.stdout);
    let refused = out.stdout.lines().find(|l| l.starts_with("  last refused ")).unwrap_or_default();
    assert!(refused.contains("not queued: ") && refused.contains("RUNBOOK_TEST_S2_TOKEN"), "{}", out.stdout);
    let out =
        run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state, "--format", "json"], &env);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["schedules"][0]["overdue"], true, "{}", out.stdout);
    assert!(
        v["schedules"][0]["last_refused"]["reason"].as_str().unwrap_or_default().contains("not queued"),
        "{}",
        out.stdout
    );
}

/// adv17a S11: `overlap = "replace"` takes the queued run back only when the new due time's
/// run is queued in its place. The only worker is busy, so the schedule's run waits in the
/// queue; then the runbook gains a secret the worker's host lacks, and every next due time
/// is refused: the waiting run is kept, and runs once the worker is free.
#[test]
fn replace_keeps_the_queued_run_when_the_new_one_cannot_be_queued() {
    let dir = folder(
        "[schedule.rep]\nrunbook = \"r.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"replace\"\n",
    );
    std::fs::write(dir.path().join("r.toml"), "[runbook]\nname = \"r\"\n[steps.a]\nrun = \"echo ok\"\n")
        .expect("runbook");
    let gate = gated(dir.path(), "long");
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    ok(&run_in_with_env(dir.path(), &["submit", "long.toml", "--state", &state, "--yes"], &env), 0);
    let log = dir.path().join("worker.out");
    let mut worker = spawn_worker(dir.path(), &state, &env, &log, &["--concurrency", "1"]);
    wait_log(&log, "the schedule's run was never queued", |t| t.contains(": queued run "));
    std::fs::write(
        dir.path().join("r.toml"),
        "[runbook]\nname = \"r\"\n[secrets.TOKEN_S11]\nenv = \"RUNBOOK_TEST_S11_TOKEN\"\n[steps.a]\nrun = \"echo ok\"\n",
    )
    .expect("runbook");
    let text = wait_log(&log, "no due time was refused", |t| t.contains(": skipped: not queued: "));
    let kept = text
        .lines()
        .filter_map(|l| l.split_once(": queued run ").map(|(_, id)| id.trim().to_string()))
        .next_back()
        .expect("a queued run");
    std::fs::write(&gate, "").expect("gate");
    let running = format!("{kept}: running");
    let done = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(&running) || std::time::Instant::now() > done {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    assert!(text.contains(&running), "the queued run {kept} was lost:\n{text}");
}

/// adv17a S7: a schedule's overdue notification goes to a webhook that accepts the
/// connection and never answers (a real TCP listener on 127.0.0.1: the request waits its
/// 10 s timeout) while the worker executes a long run. The schedule pass runs off the
/// heartbeat's path, and a worker never claims a run it is itself executing: the run is
/// started once and never resumed.
#[test]
fn a_hung_webhook_does_not_stall_the_heartbeat_of_a_running_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (held, holder) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            // Held open, never answered, until the test ends.
            if held.send(conn).is_err() {
                break;
            }
        }
    });
    let dir = folder(&format!(
        "[schedule.guarded]\nrunbook = \"guarded.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"1s\"\nnotify = {{ webhook = \"http://127.0.0.1:{port}/hook\" }}\n"
    ));
    std::fs::write(
        dir.path().join("guarded.toml"),
        "[runbook]\nname = \"guarded\"\n[secrets.TOKEN_S7]\nenv = \"RUNBOOK_TEST_S7_TOKEN\"\n[steps.a]\nrun = \"echo ok\"\n",
    )
    .expect("runbook");
    let gate = gated(dir.path(), "long");
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    ok(&run_in_with_env(dir.path(), &["submit", "long.toml", "--state", &state, "--yes"], &env), 0);
    let log = dir.path().join("worker.out");
    let errs = dir.path().join("worker.err");
    let mut worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", &state, "--concurrency", "2"])
        .current_dir(dir.path())
        .envs(env)
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(&errs).expect("errs"))
        .spawn()
        .expect("worker");
    wait_log(&log, "the long run never started", |t| t.contains(": running (submitted by "));
    // The notification waited its whole timeout (10 s, twice the time after which a claim
    // is taken to be dead), and the worker went on polling after it.
    wait_log(&errs, "the notification never timed out", |t| t.contains("was not delivered"));
    let fires = std::fs::read_to_string(&log).unwrap_or_default().matches(": skipped: ").count();
    wait_log(&log, "the worker stopped firing", |t| t.matches(": skipped: ").count() >= fires + 3);
    std::fs::write(&gate, "").expect("gate");
    let text = wait_log(&log, "the long run never ended", |t| t.contains(": succeeded (exit 0)"));
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    drop(holder);
    assert!(!text.contains(": resuming "), "a live run was claimed again:\n{text}");
    assert_eq!(text.matches(": running (submitted by ").count(), 1, "{text}");
}

/// Red team adv23 F4: the checks of a fire (the runbook's secrets read, here by a helper
/// that takes 8 s; the parameters held to them, seconds of CPU for a large secret) run off
/// the worker's one thread: its heartbeat goes on, and another worker never takes the run
/// it is executing for a dead worker's. Failed before: the second worker printed
/// "resuming" (its lock held, so the step still ran once).
#[test]
fn a_slow_check_of_a_fire_does_not_stall_the_heartbeat() {
    let dir =
        folder("[schedule.slow]\nrunbook = \"slow.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\n");
    std::fs::write(
        dir.path().join("slow.toml"),
        "[runbook]\nname = \"slow\"\n[secrets.TOKEN]\ncommand = [\"sh\", \"-c\", \"sleep 8; echo s3cr3t-value-xyz\"]\n[steps.a]\nrun = \"echo ok\"\n",
    )
    .expect("runbook");
    let gate = gated(dir.path(), "long");
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    let submitted = run_in_with_env(dir.path(), &["submit", "long.toml", "--state", &state, "--yes"], &env);
    ok(&submitted, 0);
    let long = submitted.stdout.trim().to_string();
    let log = dir.path().join("worker.out");
    let firing =
        crate::support::KillOnDrop(spawn_worker(dir.path(), &state, &env, &log, &["--concurrency", "2"]));
    wait_log(&log, "the long run never started", |t| t.contains(&format!("{long}: running (submitted by ")));
    let other_log = dir.path().join("other.out");
    let other = crate::support::KillOnDrop(
        std::process::Command::new(crate::support::bin())
            .args(["worker", "--state", &state])
            .current_dir(dir.path())
            .envs(env)
            .stdout(std::fs::File::create(&other_log).expect("log"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the other worker"),
    );
    // Two fires checked (16 s of helpers, three times the 5 s after which a claim whose
    // worker is silent is taken to be dead).
    wait_log(&log, "the schedule never fired twice", |t| t.matches("schedule slow due ").count() >= 2);
    std::fs::write(&gate, "").expect("gate");
    let text =
        wait_log(&log, "the long run never ended", |t| t.contains(&format!("{long}: succeeded (exit 0)")));
    drop(other);
    drop(firing);
    let seen = std::fs::read_to_string(&other_log).unwrap_or_default();
    assert!(!seen.contains(": resuming "), "the other worker took the live run:\n{seen}\n{text}");
    // The long run ran once (the schedule's own runs are runs of `slow`).
    assert_eq!(text.matches(&format!("{long}: running (submitted by ")).count(), 1, "{text}");
}

/// adv17a S5: `catch-up = "latest"` after a long downtime fires the latest due time, once,
/// never one of the stale ones. The last fire was made 30 days ago (a worker under
/// `faketime`) by a schedule due every second (2.6 million due times missed); today's
/// worker's first fire is the due time of its first poll, and every next one is newer.
#[test]
fn catch_up_latest_after_a_long_downtime_fires_only_the_latest() {
    let dir = folder(
        "[schedule.tick]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\ncatch-up = \"latest\"\noverlap = \"queue\"\n",
    );
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    let old = dir.path().join("old.out");
    let mut worker = spawn_skewed(dir.path(), &state, &env, &old, "-30d");
    wait_log(&old, "the worker of 30 days ago fired nothing", |t| t.contains(": queued run "));
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let started = chrono::Utc::now();
    let log = dir.path().join("worker.out");
    let mut worker = spawn_worker(dir.path(), &state, &env, &log, &[]);
    let text = wait_log(&log, "today's worker fired nothing", |t| t.matches(": queued run ").count() >= 3);
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let dues: Vec<chrono::DateTime<chrono::Utc>> = text
        .lines()
        .filter(|l| l.contains(": queued run "))
        .filter_map(|l| {
            let due = l.strip_prefix("schedule tick due ")?.split(": ").next()?;
            chrono::DateTime::parse_from_rfc3339(due).ok().map(|t| t.with_timezone(&chrono::Utc))
        })
        .collect();
    assert!(dues.len() >= 3, "{text}");
    assert!(
        dues.iter().all(|d| *d >= started - chrono::Duration::seconds(5)),
        "a stale due time fired (the worker started at {started}):\n{text}"
    );
    assert!(dues.windows(2).all(|w| w[0] < w[1]), "{text}");
}

/// CI stop 25: a due time that passes while a starting worker reads its schedules and pins
/// their plans still fires. Pinning takes a moment (here: schedules whose runbook has 2,000
/// steps; seconds on a loaded host), and the worker took "its start" after it, so a due
/// time in that moment never fired, in silence. The worker's clock starts about a second
/// before a whole minute (libfaketime); `tick` is due at every whole minute.
#[test]
fn a_due_time_that_passes_while_the_worker_pins_its_plans_fires() {
    use std::fmt::Write as _;
    let mut text =
        "[schedule.tick]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"0 * * * * *\"\ntime-zone = \"UTC\"\n"
            .to_string();
    for i in 0..6 {
        let _ = write!(
            text,
            "[schedule.slow{i}]\nrunbook = \"big.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"0 0 1 1 *\"\ntime-zone = \"UTC\"\n"
        );
    }
    let dir = folder(&text);
    let mut big = "[runbook]\nname = \"big\"\n[params.environment]\ntype = \"string\"\n".to_string();
    for i in 0..2000 {
        let _ = write!(big, "[steps.s{i}]\nrun = \"echo {{{{ params.environment }}}} {i}\"\n");
    }
    std::fs::write(dir.path().join("big.toml"), big).expect("big runbook");
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    // Start at the beginning of a second of the real clock (the offset is whole seconds, so
    // the worker's clock then starts 0.9 to 1 second before its next whole minute).
    let now = loop {
        let now = chrono::Utc::now();
        if now.timestamp_subsec_millis() < 100 {
            break now;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let minute = now.timestamp() - now.timestamp() % 60 + 120;
    let offset = format!("{:+}", minute - 1 - now.timestamp());
    let due = chrono::DateTime::from_timestamp(minute, 0)
        .expect("due")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let log = dir.path().join("worker.out");
    let spawned = std::time::Instant::now();
    let worker = crate::support::KillOnDrop(spawn_skewed(dir.path(), &state, &env, &log, &offset));
    let serving = wait_log(&log, "the worker never started", |t| t.contains(" serving "));
    let loading = spawned.elapsed();
    let text = wait_log(&log, "the due time fired nothing", |t| t.contains(": queued run "));
    drop(worker);
    // The premise: the worker took longer to start than the second before the due time.
    assert!(loading > std::time::Duration::from_millis(1500), "the worker started in {loading:?}: {serving}");
    let first = text.lines().find(|l| l.contains(": queued run ")).unwrap_or_default();
    assert!(first.starts_with(&format!("schedule tick due {due}: queued run ")), "{text}");
}

/// Red team adv23 F3: a wall clock stepped back after a worker started (NTP's first step at
/// boot, a VM restored) does not put the worker's start in the future, where a schedule
/// that never fired would have no due time until the clock came back to it, in silence.
/// The worker starts 300 s ahead (libfaketime reading its offset from a file), then the
/// offset goes back to 0 once it serves; a schedule due every 2 s still fires.
#[test]
fn a_clock_stepped_back_after_the_start_does_not_silence_a_new_schedule() {
    let dir = folder(
        "[schedule.tick]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"*/2 * * * * *\"\ntime-zone = \"UTC\"\n",
    );
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    let offset = dir.path().join("offset");
    std::fs::write(&offset, "+300\n").expect("offset");
    let log = dir.path().join("worker.out");
    let worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", &state])
        .current_dir(dir.path())
        .envs(env)
        .env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the worker (apt package faketime)");
    let worker = crate::support::KillOnDrop(worker);
    wait_log(&log, "the worker never started", |t| t.contains(" serving "));
    std::fs::write(&offset, "+0\n").expect("offset");
    let stepped = chrono::Utc::now();
    let text =
        wait_log(&log, "no due time fired after the clock stepped back", |t| t.contains(": queued run "));
    drop(worker);
    let due = text
        .lines()
        .find_map(|l| l.strip_prefix("schedule tick due ")?.split(": ").next())
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .expect("a due time");
    // A due time of today's clock, not of the clock 300 s ahead.
    assert!(due.with_timezone(&chrono::Utc) < stepped + chrono::Duration::seconds(60), "{text}");
}

/// adv17a S3: a worker whose clock was a year ahead (`faketime +365d`) recorded due times
/// and successes in the future; once the clock is right again, a worker does not resume
/// from them (it fires today's due times), says so once, and `schedules --state` shows no
/// success from the future.
#[test]
fn fires_recorded_in_the_future_do_not_stop_the_schedule() {
    let dir = folder(
        "[schedule.tick]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"1m\"\n",
    );
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    let ahead = dir.path().join("ahead.out");
    let mut worker = spawn_skewed(dir.path(), &state, &env, &ahead, "+365d");
    wait_log(&ahead, "the worker a year ahead ran nothing", |t| t.contains(": succeeded (exit 0)"));
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let started = chrono::Utc::now();
    let log = dir.path().join("worker.out");
    let errs = dir.path().join("worker.err");
    let mut worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", &state])
        .current_dir(dir.path())
        .envs(env)
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(&errs).expect("errs"))
        .spawn()
        .expect("worker");
    let fired = |t: &str| {
        t.lines().any(|l| {
            l.strip_prefix("schedule tick due ")
                .and_then(|r| r.split(": ").next())
                .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                .is_some_and(|d| d.with_timezone(&chrono::Utc) < started + chrono::Duration::days(1))
                && l.contains(": queued run ")
        }) && t.contains(": succeeded (exit 0)")
    };
    let text = wait_log(&log, "no due time of today fired", fired);
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let warned = std::fs::read_to_string(&errs).unwrap_or_default();
    assert_eq!(warned.matches("in the future").count(), 1, "{warned}\n{text}");
    let out =
        run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state, "--format", "json"], &env);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let success = v["schedules"][0]["last_success"].as_str().unwrap_or_default();
    let success = chrono::DateTime::parse_from_rfc3339(success).expect("a success");
    assert!(success < chrono::Utc::now() + chrono::Duration::days(1), "{}", out.stdout);
    assert_eq!(v["schedules"][0]["overdue"], false, "{}", out.stdout);
}

/// adv17a S9: `catch-up = "none"` drops the due times that are too late, and says so: the
/// latest dropped one is recorded as skipped with its reason, printed, and shown by
/// `schedules --state`. The last fire was made 10 minutes ago (a worker under faketime).
#[test]
fn catch_up_none_records_the_due_times_it_drops() {
    let dir = folder(
        "[schedule.tick]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\ncatch-up = \"none\"\noverlap = \"queue\"\n",
    );
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
    let old = dir.path().join("old.out");
    let mut worker = spawn_skewed(dir.path(), &state, &env, &old, "-10m");
    wait_log(&old, "the worker of 10 minutes ago fired nothing", |t| t.contains(": queued run "));
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let log = dir.path().join("worker.out");
    let mut worker = spawn_worker(dir.path(), &state, &env, &log, &[]);
    let text = wait_log(&log, "today's worker fired nothing", |t| t.contains(": queued run "));
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let missed = text.lines().find(|l| l.contains(": skipped: missed: ")).unwrap_or_default();
    assert!(missed.starts_with("schedule tick due ") && missed.contains("catch-up = \"none\""), "{text}");
    let out = run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state], &env);
    assert!(out.stdout.contains("  last missed  "), "{}", out.stdout);
}

/// Red team adv23 F2: a due time of a schedule that never fired, passing between one
/// worker's stop and the next one's start, is caught up as after any downtime: fired with
/// `catch-up = "latest"` or `"all"`, recorded as missed with `"none"` (it is 30 minutes
/// late). The first worker to watch the schedule journals it (`watched`, once), and every
/// later worker counts the never-fired schedule's due times from there. Worker 1 runs with
/// its clock an hour behind (libfaketime): it watches `daily`, due once a day at a time 30
/// minutes in its own future, and stops (SIGTERM) before that; worker 2, on the real clock,
/// starts after it. `pulse` (due every second, after `daily` in the file) shows that a
/// worker's pass went over `daily`. Failed before: worker 2 neither fired nor recorded the
/// due time, under every policy (`/work/adv23/repro-restart-gap.sh`).
#[test]
fn a_due_time_between_two_workers_of_a_schedule_that_never_fired_is_caught_up() {
    use chrono::Timelike as _;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let due =
        (chrono::Utc::now() - chrono::Duration::minutes(30)).with_nanosecond(0).expect("a whole second");
    let due_text = due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cron = format!("{} {} {} * * *", due.second(), due.minute(), due.hour());
    for catch_up in ["latest", "all", "none"] {
        let dir = folder(&format!(
            "[schedule.daily]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"{cron}\"\ntime-zone = \"UTC\"\ncatch-up = \"{catch_up}\"\n\n\
             [schedule.pulse]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"queue\"\n"
        ));
        let db = dir.path().join("st.db");
        let state = db.display().to_string();
        let host = dir.path().join("host").display().to_string();
        let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
        // The store began before worker 1's watch (adv24 S2: no watch is believed earlier).
        migrate_skewed(dir.path(), &state, &env, "-2h");
        let first = dir.path().join("w1.out");
        let mut w1 = spawn_skewed(dir.path(), &state, &env, &first, "-1h");
        let w1_pid = w1.id();
        wait_log(&first, "worker 1 made no pass", |t| t.contains("schedule pulse due "));
        kill(Pid::from_raw(w1_pid as i32), Signal::SIGTERM).expect("SIGTERM");
        let _ = w1.wait();
        let text = std::fs::read_to_string(&first).unwrap_or_default();
        assert!(!text.contains("schedule daily due "), "{catch_up}: worker 1 decided on `daily`:\n{text}");
        let second = dir.path().join("w2.out");
        let w2 = crate::support::KillOnDrop(spawn_worker(dir.path(), &state, &env, &second, &[]));
        let text = wait_log(&second, "worker 2 made no pass", |t| t.contains("schedule pulse due "));
        drop(w2);
        let line = text.lines().find(|l| l.starts_with("schedule daily due ")).unwrap_or_default();
        let expected = match catch_up {
            "none" => ": skipped: missed: ",
            _ => ": queued run ",
        };
        assert!(
            line.starts_with(&format!("schedule daily due {due_text}{expected}")),
            "{catch_up}: the due time {due_text} between the workers was neither fired nor recorded:\n{text}"
        );
        // The journal: worker 1's first watch (its start, an hour behind), then the decision.
        let (kinds, out) = journal_kinds(dir.path(), "daily");
        let decided = if catch_up == "none" { "missed" } else { "fired" };
        assert_eq!(kinds, ["watched", decided], "{catch_up}: {}", out.stdout);
        let watched: serde_json::Value =
            serde_json::from_str(out.stdout.lines().next().unwrap_or_default()).expect("a JSON line");
        let worker = watched["event"]["worker"].as_str().unwrap_or_default();
        assert!(worker.contains(&format!("(pid {w1_pid} ")), "{catch_up}: {watched}");
        let since =
            watched["event"]["since"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        assert!(since.is_some_and(|t| t < due), "{catch_up}: {watched}");
        // Exactly one `watched` record however many workers watched, and it verifies.
        let (pulse, _) = journal_kinds(dir.path(), "pulse");
        assert_eq!(pulse.iter().filter(|k| *k == "watched").count(), 1, "{pulse:?}");
        assert_eq!(pulse.first().map(String::as_str), Some("watched"), "{pulse:?}");
        let verified = run_in_with_env(dir.path(), &["audit", "verify", "--state", &state], &env);
        ok(&verified, 0);
        assert!(verified.stdout.contains("ok schedule daily: 2 records"), "{}", verified.stdout);
    }
}

/// The rows of `sql` in the SQLite store `state` (the sqlite3 program).
fn sqlite_rows(state: &Path, sql: &str) -> Vec<String> {
    let out = std::process::Command::new("sqlite3").arg(state).arg(sql).output().expect("sqlite3");
    assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// A folder whose store `st.db` holds schedule `slow`'s first fire (its run blocked), two or
/// more skips and an overdue notice; the worker killed (SIGKILL), the run's gate opened.
fn slow_fired_skipped_and_overdue() -> tempfile::TempDir {
    let dir = folder(
        "[schedule.slow]\nrunbook = \"slow.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"skip\"\nexpect-success-within = \"2s\"\n",
    );
    let gate = gated(dir.path(), "slow");
    let mut worker = start_worker(dir.path(), &[]);
    wait_worker(dir.path(), "no overdue notice and two skips", |t| {
        t.contains("schedule slow overdue: ") && t.matches(": skipped: ").count() >= 2
    });
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    std::fs::write(&gate, "").expect("gate");
    dir
}

/// Issue 17, point 1: a schedule's life is a hash-chained journal like a run's. A worker
/// fires a due time (its run blocks), skips the next ones (`overlap = "skip"`) and notices
/// the schedule overdue: each decision is one record of `runbook audit schedule NAME`, in
/// the order the store took them, exactly one per row of `schedule_fires` and
/// `schedule_alerts`. `runbook audit verify` verifies it, and detects a record edited,
/// deleted, two swapped and the tail cut. Failed before: there was no schedule journal
/// (`audit schedule` was not a command).
#[test]
fn a_schedule_s_decisions_are_journaled_chained_and_verified() {
    let dir = slow_fired_skipped_and_overdue();
    let db = dir.path().join("st.db");
    let state = db.display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    let rb = |args: &[&str]| run_in_with_env(dir.path(), args, &env);

    let jsonl = rb(&["audit", "schedule", "slow", "--state", &state, "--format", "jsonl"]);
    ok(&jsonl, 0);
    let records: Vec<serde_json::Value> =
        jsonl.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let kinds: Vec<&str> = records.iter().map(|r| r["kind"].as_str().unwrap_or_default()).collect();
    // The first worker's watch opens the journal (red team adv23 F2), then its first fire.
    assert_eq!(kinds.first(), Some(&"watched"), "{}", jsonl.stdout);
    assert_eq!(kinds.iter().filter(|k| **k == "watched").count(), 1, "{}", jsonl.stdout);
    assert_eq!(kinds.get(1), Some(&"fired"), "{}", jsonl.stdout);
    let run = records[1]["event"]["run_id"].as_str().expect("the run it queued").to_string();
    let queued = sqlite_rows(&db, "SELECT run_id FROM schedule_fires WHERE outcome = 'queued'");
    assert_eq!(queued, vec![run.clone()], "one run queued, the one the journal names");
    // One record per decision the store took, in seq order, chained.
    let count = |sql: &str| sqlite_rows(&db, sql).first().and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
    assert_eq!(
        kinds.iter().filter(|k| **k == "skipped").count(),
        count("SELECT COUNT(*) FROM schedule_fires WHERE outcome = 'skipped'")
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "overdue").count(),
        count("SELECT COUNT(*) FROM schedule_alerts")
    );
    assert!(kinds.contains(&"skipped") && kinds.contains(&"overdue"), "{}", jsonl.stdout);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i + 1, "{r}");
        assert_eq!(r["schedule"], "slow", "{r}");
    }
    for pair in records.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "{pair:?}");
    }
    let skipped = records.iter().find(|r| r["kind"] == "skipped").expect("a skip");
    assert_eq!(skipped["event"]["reason"], "overlap", "{skipped}");

    // The text view: one line per record.
    let text = rb(&["audit", "schedule", "slow", "--state", &state]);
    ok(&text, 0);
    assert_eq!(text.stdout.lines().count(), records.len(), "{}", text.stdout);
    assert!(text.stdout.lines().next().unwrap_or_default().contains(" watched from "), "{}", text.stdout);
    assert!(
        text.stdout.lines().nth(1).unwrap_or_default().contains(&format!("fired: run {run}")),
        "{}",
        text.stdout
    );
    // A schedule without a journal is an error, not an empty one.
    let none = rb(&["audit", "schedule", "nope", "--state", &state]);
    ok(&none, 3);
    insta::assert_snapshot!("audit_schedule_without_a_journal", none.stderr);

    // `audit verify` checks it beside the runs.
    let verified = rb(&["audit", "verify", "--state", &state]);
    ok(&verified, 0);
    assert!(
        verified.stdout.contains(&format!("ok schedule slow: {} records", records.len())),
        "{}",
        verified.stdout
    );

    // Tampering past the triggers, each on a fresh copy of the store.
    let last = records.len();
    let cases = [
        ("edited", "DROP TRIGGER schedule_events_no_update; UPDATE schedule_events SET ts = '2020-01-01T00:00:00Z' WHERE seq = 2".to_string(), 2),
        ("deleted", "DROP TRIGGER schedule_events_no_delete; DELETE FROM schedule_events WHERE seq = 2".to_string(), 2),
        (
            "reordered",
            "DROP TRIGGER schedule_events_no_update; UPDATE schedule_events SET seq = -1 WHERE seq = 2; \
             UPDATE schedule_events SET seq = 2 WHERE seq = 3; UPDATE schedule_events SET seq = 3 WHERE seq = -1"
                .to_string(),
            2,
        ),
        ("cut", format!("DROP TRIGGER schedule_events_no_delete; DELETE FROM schedule_events WHERE seq = {last}"), last),
    ];
    for (what, sql, seq) in cases {
        let copy = dir.path().join(format!("{what}.db"));
        sqlite_rows(&db, &format!("VACUUM INTO '{}'", copy.display()));
        sqlite_rows(&copy, &sql);
        let copy = copy.display().to_string();
        let out = rb(&["audit", "verify", "--state", &copy]);
        assert_eq!(out.code, 4, "{what}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains(&format!("BROKEN schedule slow: record {seq}")),
            "{what}: {}",
            out.stdout
        );
        // The run's own journal is still checked, and still intact.
        assert!(
            out.stdout.lines().any(|l| l.starts_with("ok ") && l.contains(&run)),
            "{what}: {}",
            out.stdout
        );
    }
    // The database itself refuses to change the journal.
    let refused = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE schedule_events SET ts = 'x'")
        .output()
        .expect("sqlite3");
    assert!(!refused.status.success(), "an update of the schedule journal passed");
}

/// Issue 17, point 1: a schedule noticed overdue that succeeds again is journaled
/// `back_in_time` once, after its `overdue` record, by the worker whose claim the store
/// took; later polls record nothing more. (Written after the feature, with the journal.)
#[test]
fn an_overdue_schedule_that_succeeds_again_is_journaled_back_in_time_once() {
    let dir = folder(
        "[schedule.slow]\nrunbook = \"slow.toml\"\ncron = \"*/2 * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"skip\"\nexpect-success-within = \"3s\"\n",
    );
    let gate = gated(dir.path(), "slow");
    let mut worker = start_worker(dir.path(), &[]);
    wait_worker(dir.path(), "no overdue notice", |t| t.contains("schedule slow overdue: "));
    std::fs::write(&gate, "").expect("gate");
    wait_worker(dir.path(), "not back in time", |t| {
        t.contains("schedule slow back in time: ") && t.matches(": queued run ").count() >= 3
    });
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let (kinds, _) = journal_kinds(dir.path(), "slow");
    let back: Vec<usize> =
        kinds.iter().enumerate().filter(|(_, k)| *k == "back_in_time").map(|(i, _)| i).collect();
    assert_eq!(back.len(), 1, "{kinds:?}");
    let overdue = kinds.iter().position(|k| k == "overdue").expect("an overdue record");
    assert!(overdue < back[0], "{kinds:?}");
}

/// Issue 17, point 1: a notification that cannot be delivered is journaled `notify_failed`,
/// once, after its `overdue` record, and the journal never holds the webhook's address (a
/// chat webhook's address is its credential). (Written after the feature.)
#[test]
fn an_undelivered_notification_is_journaled_without_its_address() {
    // A port nobody listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let hook = format!("http://127.0.0.1:{port}/hook-s3cr3t-path");
    let dir = folder(&format!(
        "[schedule.broken]\nrunbook = \"fails.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"2s\"\nnotify = {{ webhook = \"{hook}\" }}\n"
    ));
    std::fs::write(
        dir.path().join("fails.toml"),
        "[runbook]\nname = \"fails\"\n[steps.a]\nrun = \"exit 1\"\n",
    )
    .expect("runbook");
    let mut worker = start_worker(dir.path(), &[]);
    wait_worker(dir.path(), "no failed notification", |t| {
        t.contains("notification of schedule `broken` was not delivered")
    });
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let (kinds, out) = journal_kinds(dir.path(), "broken");
    assert_eq!(kinds.iter().filter(|k| *k == "notify_failed").count(), 1, "{kinds:?}");
    let overdue = kinds.iter().position(|k| k == "overdue").expect("overdue");
    let failed = kinds.iter().position(|k| k == "notify_failed").expect("notify_failed");
    assert!(overdue < failed, "{kinds:?}");
    assert!(!out.stdout.contains("s3cr3t") && !out.stdout.contains(&port.to_string()), "{}", out.stdout);
    let bytes = std::fs::read(dir.path().join("st.db")).expect("store");
    assert!(!String::from_utf8_lossy(&bytes).contains("s3cr3t"), "the webhook's address is in the store");
}

/// The kinds of schedule `name`'s journal (`runbook audit schedule NAME --format jsonl` on
/// the SQLite store `st.db` in `dir`), and the command's output.
fn journal_kinds(dir: &Path, name: &str) -> (Vec<String>, crate::support::Output) {
    let state = dir.join("st.db").display().to_string();
    let host = dir.join("host").display().to_string();
    let out = run_in_with_env(
        dir,
        &["audit", "schedule", name, "--state", &state, "--format", "jsonl"],
        &[("XDG_STATE_HOME", host.as_str())],
    );
    ok(&out, 0);
    let kinds = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|r| r["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    (kinds, out)
}

/// Every trigger of the SQLite store `db` dropped, as the file's owner can.
fn drop_triggers(db: &Path) {
    for name in sqlite_rows(db, "SELECT name FROM sqlite_master WHERE type = 'trigger'") {
        sqlite_rows(db, &format!("DROP TRIGGER \"{name}\""));
    }
}

/// Red team adv18a S1 and S2 (promise 6): the rows that decide a schedule
/// (`schedule_fires`, `schedule_alerts`) are cross-checked by `runbook audit verify`
/// against the schedule's journal, both ways: a row with no record (inserted by plain SQL, as
/// a role with the book's grants can), a record whose row says something else (run, due
/// time, kind), a `due_ms` column that is not the body's due time, a cut tail with its head
/// moved back (its row remains), and a whole journal deleted (its rows remain) are each
/// BROKEN, exit 4. Failed before: `audit verify` said `ok schedule slow` and exited 0 for
/// each of them.
#[test]
fn audit_verify_cross_checks_the_rows_that_decide_a_schedule_with_its_journal() {
    let dir = slow_fired_skipped_and_overdue();
    let db = dir.path().join("st.db");
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    let rb = |args: &[&str]| run_in_with_env(dir.path(), args, &env);
    let clean = rb(&["audit", "verify", "--state", &db.display().to_string()]);
    ok(&clean, 0);
    assert!(clean.stdout.contains("ok schedule slow: "), "{}", clean.stdout);

    let future = "4102444800000"; // 2100-01-01
    let cases = [
        (
            "a forged skipped fire",
            format!("INSERT INTO schedule_fires (schedule, due_ms, outcome, run_id, note, fired_by, fired_at) VALUES ('slow', {future}, 'skipped', NULL, '', 'mallory', '2026-01-01T00:00:00Z')"),
        ),
        (
            "a forged queued fire",
            format!("INSERT INTO schedule_fires (schedule, due_ms, outcome, run_id, note, fired_by, fired_at) VALUES ('slow', {future}, 'queued', 'r-x', '', 'mallory', '2026-01-01T00:00:00Z')"),
        ),
        (
            "a forged alert",
            format!("INSERT INTO schedule_alerts (schedule, since_ms, reminder, sent_by, sent_at) VALUES ('slow', {future}, 0, 'mallory', '2026-01-01T00:00:00Z')"),
        ),
        (
            "a forged back in time",
            format!("INSERT INTO schedule_alerts (schedule, since_ms, reminder, sent_by, sent_at) VALUES ('slow', {future}, -1, 'mallory', '2026-01-01T00:00:00Z')"),
        ),
        ("a fire's run changed", "UPDATE schedule_fires SET run_id = 'r-other' WHERE outcome = 'queued'".to_string()),
        (
            "a skip turned into a queued fire",
            "UPDATE schedule_fires SET outcome = 'queued', run_id = 'r-other' WHERE due_ms = (SELECT MIN(due_ms) FROM schedule_fires WHERE outcome = 'skipped')".to_string(),
        ),
        ("a fire's due time moved", "UPDATE schedule_fires SET due_ms = due_ms + 500 WHERE outcome = 'queued'".to_string()),
        ("a record's due_ms column moved", "UPDATE schedule_events SET due_ms = due_ms + 1000 WHERE kind = 'fired'".to_string()),
        ("a due time set beside the watch", "UPDATE schedule_events SET due_ms = 1000 WHERE kind = 'watched'".to_string()),
        ("an alert's reminder changed", "UPDATE schedule_alerts SET reminder = reminder + 1".to_string()),
        ("a fire moved to another schedule", "UPDATE schedule_fires SET schedule = 'other' WHERE outcome = 'queued'".to_string()),
        (
            "the tail cut and the head moved back",
            "DELETE FROM schedule_events WHERE seq = (SELECT MAX(seq) FROM schedule_events); \
             UPDATE schedule_heads SET last_seq = (SELECT MAX(seq) FROM schedule_events), \
             last_hash = (SELECT hash FROM schedule_events WHERE seq = (SELECT MAX(seq) FROM schedule_events))"
                .to_string(),
        ),
        ("the whole journal deleted", "DELETE FROM schedule_events; DELETE FROM schedule_heads".to_string()),
    ];
    for (what, sql) in cases {
        let copy = dir.path().join("copy.db");
        let _ = std::fs::remove_file(&copy);
        sqlite_rows(&db, &format!("VACUUM INTO '{}'", copy.display()));
        drop_triggers(&copy);
        sqlite_rows(&copy, &sql);
        let out = rb(&["audit", "verify", "--state", &copy.display().to_string()]);
        assert_eq!(out.code, 4, "{what}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("BROKEN schedule slow: ") || l.starts_with("BROKEN schedule other: ")),
            "{what}: {}",
            out.stdout
        );
    }
}

/// Red team adv18a S2 (promise 6): a schedule journal has an anchor kept elsewhere, as a
/// run's has. `runbook audit schedule NAME` and `audit verify` print its last hash;
/// `audit verify --schedule NAME --expect-hash HASH` is ok while a record of that hash is
/// still in the chain (the journal grows after it), and BROKEN (exit 4) once the tail is cut
/// below it with the head moved back and no row left to betray it, or the journal is gone.
/// Failed before: there was no `--schedule` option (`--expect-hash` required a run id).
#[test]
fn a_schedule_journal_cut_below_a_kept_hash_is_detected() {
    let dir = slow_fired_skipped_and_overdue();
    let db = dir.path().join("st.db");
    let state = db.display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", host.as_str())];
    let rb = |args: &[&str]| run_in_with_env(dir.path(), args, &env);
    let text = rb(&["audit", "schedule", "slow", "--state", &state]);
    ok(&text, 0);
    let kept = text
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("last hash "))
        .expect("audit schedule prints the last hash")
        .trim()
        .to_string();
    let verified = rb(&["audit", "verify", "--state", &state]);
    ok(&verified, 0);
    assert!(verified.stdout.contains(&format!("last hash {kept}")), "{}", verified.stdout);
    ok(&rb(&["audit", "verify", "--schedule", "slow", "--expect-hash", &kept, "--state", &state]), 0);
    // Cut the last record, its alert or fire row with it, and move the head back.
    let copy = dir.path().join("cut.db");
    sqlite_rows(&db, &format!("VACUUM INTO '{}'", copy.display()));
    drop_triggers(&copy);
    let last: Vec<String> =
        sqlite_rows(&copy, "SELECT kind, due_ms FROM schedule_events ORDER BY seq DESC LIMIT 1");
    let (kind, due) = last[0].split_once('|').expect("kind|due");
    let row = match kind {
        "overdue" => {
            "DELETE FROM schedule_alerts WHERE reminder = (SELECT MAX(reminder) FROM schedule_alerts)"
                .to_string()
        }
        _ => format!("DELETE FROM schedule_fires WHERE due_ms = {due}"),
    };
    sqlite_rows(
        &copy,
        &format!(
            "{row}; DELETE FROM schedule_events WHERE seq = (SELECT MAX(seq) FROM schedule_events); \
             UPDATE schedule_heads SET last_seq = (SELECT MAX(seq) FROM schedule_events), \
             last_hash = (SELECT hash FROM schedule_events WHERE seq = (SELECT MAX(seq) FROM schedule_events))"
        ),
    );
    let copy_state = copy.display().to_string();
    // The chain alone cannot tell (the head moved back with the tail); the dropped guard
    // triggers can (red team adv24): every BROKEN line is the store's, none the journal's.
    let plain = rb(&["audit", "verify", "--state", &copy_state]);
    ok(&plain, 4);
    assert!(plain.stdout.contains("ok schedule slow: "), "{}", plain.stdout);
    assert!(
        plain
            .stdout
            .lines()
            .filter(|l| l.starts_with("BROKEN"))
            .all(|l| l.starts_with("BROKEN store: guard trigger `")),
        "{}",
        plain.stdout
    );
    let cut = rb(&["audit", "verify", "--schedule", "slow", "--expect-hash", &kept, "--state", &copy_state]);
    assert_eq!(cut.code, 4, "{}{}", cut.stdout, cut.stderr);
    insta::assert_snapshot!("schedule_journal_cut_below_the_kept_hash", cut.stdout.replace(&kept, "HASH"));
    // The whole journal and its rows gone: the anchor still names the schedule.
    sqlite_rows(
        &copy,
        "DELETE FROM schedule_events; DELETE FROM schedule_heads; DELETE FROM schedule_fires; DELETE FROM schedule_alerts",
    );
    let gone = rb(&["audit", "verify", "--schedule", "slow", "--expect-hash", &kept, "--state", &copy_state]);
    assert_eq!(gone.code, 4, "{}{}", gone.stdout, gone.stderr);
    assert!(gone.stdout.contains("BROKEN schedule slow: "), "{}", gone.stdout);
}

/// `runbook state migrate` on `state` with the clock moved by `offset` (libfaketime): the
/// store begins then (its first migration's time is the migrating process's clock).
fn migrate_skewed(dir: &Path, state: &str, env: &[(&str, &str)], offset: &str) {
    let out = std::process::Command::new(crate::support::bin())
        .args(["state", "migrate", "--state", state])
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .output()
        .expect("runbook state migrate (apt package faketime)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `runbook worker --schedules s.toml` with its clock moved by `offset`, stdout and stderr
/// both in `log`.
fn spawn_skewed_logged(
    dir: &Path,
    state: &str,
    env: &[(&str, &str)],
    log: &Path,
    offset: Option<&str>,
) -> std::process::Child {
    let file = std::fs::File::create(log).expect("log");
    let mut cmd = std::process::Command::new(crate::support::bin());
    cmd.args(["worker", "--schedules", "s.toml", "--state", state])
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdout(file.try_clone().expect("log"))
        .stderr(file);
    if let Some(offset) = offset {
        cmd.env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
            .env("FAKETIME", offset)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    cmd.spawn().expect("the worker (apt package faketime)")
}

/// The `since` of each watch record (`watched`, `rewatched`) of schedule `name`, in order,
/// with its kind.
fn watch_records(dir: &Path, name: &str) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
    let (_, out) = journal_kinds(dir, name);
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| {
            let kind = r["event"]["kind"].as_str()?.to_string();
            let since = chrono::DateTime::parse_from_rfc3339(r["event"]["since"].as_str()?).ok()?;
            Some((kind, since.with_timezone(&chrono::Utc)))
        })
        .collect()
}

/// Red team adv24 S1: a `watched` record written by a worker whose clock ran far AHEAD
/// (here a day, libfaketime) no longer switches the adv23 F2 catch-up off. It is not
/// believed (its start is later than the reader's now); the first worker with a believable
/// clock says so (a warning) and appends a `rewatched` record with its own start, and every
/// later worker counts from there: a due time between that worker's stop and the next
/// one's start is fired (`latest`, `all`) or recorded as missed (`none`). `runbook
/// schedules --state` shows the record not believed. The store began two hours ago and
/// worker 1 runs an hour behind (both under libfaketime) so that the due time, 30 minutes
/// ago, falls between worker 1 and worker 2. Failed before: worker 2 counted from its own
/// start, and the due time was neither fired nor recorded (nothing printed).
#[test]
fn a_watch_from_a_clock_ahead_does_not_silence_a_restart_gap() {
    use chrono::Timelike as _;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let due =
        (chrono::Utc::now() - chrono::Duration::minutes(30)).with_nanosecond(0).expect("a whole second");
    let due_text = due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cron = format!("{} {} {} * * *", due.second(), due.minute(), due.hour());
    for (catch_up, ahead) in [("latest", "+1d"), ("all", "+3650d"), ("none", "+2h")] {
        let dir = folder(&format!(
            "[schedule.daily]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"{cron}\"\ntime-zone = \"UTC\"\ncatch-up = \"{catch_up}\"\n\n\
             [schedule.pulse]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"queue\"\n"
        ));
        let db = dir.path().join("st.db");
        let state = db.display().to_string();
        let host = dir.path().join("host").display().to_string();
        let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
        migrate_skewed(dir.path(), &state, &env, "-2h");
        // Worker A, its clock ahead: the first watch, from the future.
        let a_log = dir.path().join("wa.out");
        let mut a = spawn_skewed_logged(dir.path(), &state, &env, &a_log, Some(ahead));
        let a_pid = a.id();
        wait_log(&a_log, "worker A made no pass", |t| t.contains("schedule pulse due "));
        kill(Pid::from_raw(a_pid as i32), Signal::SIGTERM).expect("SIGTERM");
        let _ = a.wait();
        // Worker 1, an hour behind (after the store's beginning): stopped before the due time.
        let first = dir.path().join("w1.out");
        let mut w1 = spawn_skewed_logged(dir.path(), &state, &env, &first, Some("-1h"));
        let w1_pid = w1.id();
        wait_log(&first, "worker 1 made no pass", |t| t.matches("schedule pulse due ").count() >= 2);
        kill(Pid::from_raw(w1_pid as i32), Signal::SIGTERM).expect("SIGTERM");
        let _ = w1.wait();
        let w1_text = std::fs::read_to_string(&first).unwrap_or_default();
        assert!(
            !w1_text.contains("schedule daily due "),
            "{catch_up}: worker 1 decided on `daily`:\n{w1_text}"
        );
        // Worker 2, on the real clock.
        let second = dir.path().join("w2.out");
        let w2 = crate::support::KillOnDrop(spawn_skewed_logged(dir.path(), &state, &env, &second, None));
        let text = wait_log(&second, "worker 2 made no pass", |t| t.contains("schedule pulse due "));
        drop(w2);
        let line = text.lines().find(|l| l.starts_with("schedule daily due ")).unwrap_or_default();
        let expected = if catch_up == "none" { ": skipped: missed: " } else { ": queued run " };
        assert!(
            line.starts_with(&format!("schedule daily due {due_text}{expected}")),
            "{catch_up}: the due time {due_text} between the workers was neither fired nor recorded:\n{text}"
        );
        assert!(
            w1_text.contains("warning: schedule `daily`: its watch record 1 says a worker watched it from ")
                && w1_text.contains("a clock ran ahead"),
            "{catch_up}: worker 1 did not say the first watch is not believed:\n{w1_text}"
        );
        // The journal: A's watch (tomorrow), worker 1's `rewatched` (before the due time).
        let watches = watch_records(dir.path(), "daily");
        assert_eq!(watches.len(), 2, "{catch_up}: {watches:?}");
        assert_eq!(watches[0].0, "watched", "{catch_up}: {watches:?}");
        assert!(watches[0].1 > chrono::Utc::now() + chrono::Duration::minutes(30), "{catch_up}: {watches:?}");
        assert_eq!(watches[1].0, "rewatched", "{catch_up}: {watches:?}");
        assert!(watches[1].1 < due, "{catch_up}: {watches:?}");
        let verified = run_in_with_env(dir.path(), &["audit", "verify", "--state", &state], &env);
        ok(&verified, 0);
        assert!(verified.stdout.contains("ok schedule daily: 3 records"), "{}", verified.stdout);
    }
}

/// Red team adv24 S2: a `watched` record written by a worker whose clock was far BEHIND
/// (30 days; 1970, an RTC-less host before NTP) no longer makes a brand-new schedule catch
/// up days it never existed for. Its start is earlier than the store's own beginning (the
/// first migration, on a right clock): not believed, said (a warning) and shown by
/// `runbook schedules --state`; the first worker with a right clock appends a `rewatched`
/// record with its start and fires nothing until the next due time. Failed before: the
/// right worker at once recorded a `missed`, fired a run for a due time of last month and
/// recorded overlap skips for the others.
#[test]
fn a_watch_from_a_clock_behind_does_not_catch_up_days_before_the_store() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for (catch_up, behind) in
        [("all", "-30d"), ("latest", "-30d"), ("all", "@1970-01-08 15:35:36"), ("none", "-400d")]
    {
        let dir = folder(&format!(
            "[schedule.nightly]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"0 2 * * *\"\ntime-zone = \"UTC\"\ncatch-up = \"{catch_up}\"\n\n\
             [schedule.pulse]\nrunbook = \"backup.toml\"\nparams = {{ environment = \"staging\" }}\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"queue\"\n"
        ));
        let db = dir.path().join("st.db");
        let state = db.display().to_string();
        let host = dir.path().join("host").display().to_string();
        let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
        ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &state], &env), 0);
        let a_log = dir.path().join("wa.out");
        let mut a = spawn_skewed_logged(dir.path(), &state, &env, &a_log, Some(behind));
        let a_pid = a.id();
        wait_log(&a_log, "worker A made no pass", |t| t.contains("schedule pulse due "));
        kill(Pid::from_raw(a_pid as i32), Signal::SIGTERM).expect("SIGTERM");
        let _ = a.wait();
        let log = dir.path().join("wb.out");
        let mut b = spawn_skewed_logged(dir.path(), &state, &env, &log, None);
        let b_pid = b.id();
        let text = wait_log(&log, "worker B made no pass", |t| t.matches("schedule pulse due ").count() >= 3);
        kill(Pid::from_raw(b_pid as i32), Signal::SIGTERM).expect("SIGTERM");
        let _ = b.wait();
        let text = format!("{text}{}", std::fs::read_to_string(&log).unwrap_or_default());
        assert!(
            !text.contains("schedule nightly due "),
            "{catch_up} {behind}: a schedule made seconds ago caught up due times from before the store:\n{text}"
        );
        assert!(
            text.contains("warning: schedule `nightly`: its watch record 1 says a worker watched it from ")
                && text.contains("earlier than the state store's creation"),
            "{catch_up} {behind}: worker B did not say the first watch is not believed:\n{text}"
        );
        let fires = sqlite_rows(&db, "SELECT COUNT(*) FROM schedule_fires WHERE schedule = 'nightly'");
        assert_eq!(fires, ["0"], "{catch_up} {behind}");
        let watches = watch_records(dir.path(), "nightly");
        let kinds: Vec<&str> = watches.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["watched", "rewatched"], "{catch_up} {behind}: {watches:?}");
        assert!(watches[1].1 > chrono::Utc::now() - chrono::Duration::minutes(5), "{watches:?}");
        // `schedules --state` shows the watch not believed, and the watch again.
        let out = run_in_with_env(dir.path(), &["schedules", "s.toml", "--state", &state], &env);
        ok(&out, 0);
        assert!(
            out.stdout.contains("WARNING      watch record 1 says a worker watched it from ")
                && out.stdout.contains("not believed, it is earlier than the state store's creation"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("WARNING      watched again from "), "{}", out.stdout);
        // What the operator reads, worker and view (times and the worker redacted).
        if behind == "-30d" && catch_up == "all" {
            let warnings: String = text
                .lines()
                .chain(out.stdout.lines())
                .filter(|l| l.contains("warning: schedule `nightly`") || l.contains("WARNING"))
                .map(|l| format!("{l}\n"))
                .collect();
            insta::with_settings!({ filters => vec![
                (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
                (r"\(pid \d+ on [^)]+\)", "(pid [pid] on [host])"),
            ] }, {
                insta::assert_snapshot!("watch_from_a_clock_behind_warnings", warnings);
            });
        }
        let verified = run_in_with_env(dir.path(), &["audit", "verify", "--state", &state], &env);
        ok(&verified, 0);
        assert!(verified.stdout.contains("ok schedule nightly: 2 records"), "{}", verified.stdout);
    }
}

/// Red team adv24 S2, inside one worker: a worker started with its clock 30 days behind (a
/// VM restored from a snapshot; libfaketime reading its offset from a file) watches a
/// never-fired daily schedule, then its clock is stepped forward to the right time. The
/// watch record it wrote is its own, and its monotonic clock now says its start was 30 days
/// later: not believed, the worker appends a `rewatched` record with its start on today's
/// clock, and fires nothing for the month it never ran in. (The store began 40 days ago, so
/// that the record is not refused as earlier than the store.) Failed before: the worker kept
/// the earlier start (`start.min(since)`) and caught the month up at once (a fire, a
/// `missed` and overlap skips).
#[test]
fn a_clock_stepped_forward_after_the_start_does_not_catch_up_the_month_before() {
    let dir = folder(
        "[schedule.nightly]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"0 2 * * *\"\ntime-zone = \"UTC\"\ncatch-up = \"all\"\n\n\
         [schedule.pulse]\nrunbook = \"backup.toml\"\nparams = { environment = \"staging\" }\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\noverlap = \"queue\"\n",
    );
    let state = dir.path().join("st.db").display().to_string();
    let host = dir.path().join("host").display().to_string();
    let env = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1"), ("XDG_STATE_HOME", host.as_str())];
    migrate_skewed(dir.path(), &state, &env, "-40d");
    let offset = dir.path().join("offset");
    std::fs::write(&offset, "-2592000\n").expect("offset");
    let log = dir.path().join("worker.out");
    let file = std::fs::File::create(&log).expect("log");
    let worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state", &state])
        .current_dir(dir.path())
        .envs(env)
        .env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("the worker (apt package faketime)");
    let worker = crate::support::KillOnDrop(worker);
    wait_log(&log, "the worker made no pass", |t| t.contains("schedule pulse due "));
    std::fs::write(&offset, "+0\n").expect("offset");
    let before = std::fs::read_to_string(&log).unwrap_or_default().matches("schedule pulse due ").count();
    let text = wait_log(&log, "the worker made no pass after the step", |t| {
        t.matches("schedule pulse due ").count() >= before + 4
    });
    drop(worker);
    assert!(
        !text.contains("schedule nightly due "),
        "a daily schedule caught up the month its worker's clock was behind:\n{text}"
    );
    assert!(
        text.contains("warning: schedule `nightly`: its watch record 1 says a worker watched it from ")
            && text.contains("this worker's clock was stepped since it read its start"),
        "{text}"
    );
    let watches = watch_records(dir.path(), "nightly");
    let kinds: Vec<&str> = watches.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["watched", "rewatched"], "{watches:?}");
    assert!(watches[1].1 > chrono::Utc::now() - chrono::Duration::minutes(5), "{watches:?}");
}
