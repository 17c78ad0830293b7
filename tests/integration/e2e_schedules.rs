//! Issue 17, point 2: the shipped schedules file `examples/schedules/inmova.toml`, fired once,
//! end to end, against a fresh sandbox (both environments): a worker whose clock starts
//! three seconds before a due time of `backup_daily` (libfaketime, preloaded into the worker
//! itself) fires exactly that due time; the run goes through the queue and completes against
//! the sandbox's database (a verified dump written, retention applied); the fire is the
//! schedule's journal (after the worker's first watch); and `runbook schedules` shows the last success, not OVERDUE.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::e2e::{E2e, Shape};
use crate::support::{Output, ok, root, run_in_with_env};

mod fired_once {
    #[test]
    fn inmova() {
        super::the_inmova_daily_backup_fires_once_through_the_queue(crate::e2e::Shape::Inmova)
    }
    #[test]
    fn shop() {
        super::the_inmova_daily_backup_fires_once_through_the_queue(crate::e2e::Shape::Shop)
    }
}

/// The repository's layout in `dir` (a git repository, the schedules file's confinement
/// root): the schedules file and the backup runbook copied byte for byte, and the params
/// file the schedules name, written with the sandbox's values (what an operator writes on
/// the host).
fn repository(e: &E2e, dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join(".git")).expect("repo");
    std::fs::create_dir_all(dir.join("runbooks")).expect("runbooks");
    std::fs::create_dir_all(dir.join("examples/schedules")).expect("schedules");
    let copy = |path: &str| {
        let bytes = std::fs::read(root().join(path)).expect(path);
        std::fs::write(dir.join(path), &bytes).expect(path);
    };
    copy("runbooks/backup.toml");
    copy("examples/schedules/inmova.toml");
    std::fs::create_dir_all(dir.join("examples/schedules/params")).expect("params folder");
    std::fs::write(dir.join("examples/schedules/params/inmova.toml"), e.sb.params_toml("backup", &[]))
        .expect("params file");
    dir.join("examples/schedules/inmova.toml")
}

/// The due times (UTC, RFC 3339) of `schedule` after `at`, as `runbook schedules` gives them.
fn due_times(dir: &Path, schedule: &str, at: &str) -> Vec<String> {
    let out = run_in_with_env(
        dir,
        &["schedules", "examples/schedules/inmova.toml", "--next", "3", "--at", at, "--format", "json"],
        &[],
    );
    ok(&out, 0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    doc["schedules"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == schedule))
        .and_then(|s| s["next"].as_array())
        .map(|n| n.iter().filter_map(|t| t["utc"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn the_inmova_daily_backup_fires_once_through_the_queue(shape: Shape) {
    let e = E2e::with(shape);
    let repo = tempfile::tempdir().expect("tempdir");
    let dir = repo.path();
    let file = repository(&e, dir);
    assert_eq!(
        std::fs::read(&file).expect("copy"),
        std::fs::read(root().join("examples/schedules/inmova.toml")).expect("shipped"),
        "the shipped file, unchanged"
    );
    let state = e.state();
    let env = e.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let host = dir.join("host").display().to_string();
    env.push(("XDG_STATE_HOME", &host));
    ok(&run_in_with_env(dir, &["check", "examples/schedules/inmova.toml"], &env), 0);
    ok(&run_in_with_env(dir, &["state", "migrate", "--state", &state], &env), 0);

    // The latest due time of the daily backup at least a minute ago (a day has one).
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(26)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let due = due_times(dir, "backup_daily", &from)
        .into_iter()
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(&t).ok().map(|t| t.with_timezone(&chrono::Utc)))
        .rfind(|t| *t < now - chrono::Duration::minutes(1))
        .expect("a daily due time in the last 26 hours");
    let due_text = due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Old and recent backups of this kind: retention removes the old one.
    let environment = e.sb.spec().environment;
    let daily = e.sb.backups.join("daily");
    std::fs::create_dir_all(&daily).expect("daily");
    let old = format!("{environment}-daily-20250101T020000Z.dump");
    let recent = format!("{environment}-daily-20250105T020000Z.dump");
    for (name, age) in [(old.as_str(), "10 days ago"), (recent.as_str(), "3 days ago")] {
        std::fs::write(daily.join(name), "x").expect("old backup");
        let touched = std::process::Command::new("touch").args(["-d", age]).arg(daily.join(name)).status();
        assert!(touched.is_ok_and(|s| s.success()));
    }

    // The worker's clock starts 3 seconds before the due time.
    // An offset (not a start time) so that the engines it starts keep the same clock.
    let offset = format!("{:+}", (due - chrono::Duration::seconds(3) - chrono::Utc::now()).num_seconds());
    let log = dir.join("worker.out");
    let worker = std::process::Command::new(crate::support::bin())
        .args([
            "worker",
            "--schedules",
            "examples/schedules/inmova.toml",
            "--state",
            &state,
            "--as",
            "scheduler",
        ])
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("TZ", "UTC")
        .env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
        .env("FAKETIME", &offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(dir.join("worker.err")).expect("log"))
        .spawn()
        .expect("the worker (apt package faketime)");
    let worker = crate::support::KillOnDrop(worker);
    let rb = |args: &[&str]| -> Output {
        let mut all = args.to_vec();
        all.extend(["--state", &state]);
        run_in_with_env(dir, &all, &env)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let runs: Vec<serde_json::Value> =
            serde_json::from_str(&rb(&["runs", "--format", "json"]).stdout).unwrap_or_default();
        if let Some(r) = runs
            .iter()
            .find(|r| !["queued", "claimed", "running"].contains(&r["status"].as_str().unwrap_or_default()))
        {
            break r.clone();
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let err = std::fs::read_to_string(dir.join("worker.err")).unwrap_or_default();
        assert!(Instant::now() < deadline, "the fired run did not end:\n{text}\n{err}");
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(worker);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(run["status"], "succeeded", "{run}\n{text}");
    let run_id = run["run_id"].as_str().expect("run id").to_string();
    // Exactly one due time fired: this one, queued as this run, by the worker.
    assert_eq!(
        text.lines().filter(|l| l.contains(": queued run ")).collect::<Vec<_>>(),
        [format!("schedule backup_daily due {due_text}: queued run {run_id}").as_str()],
        "{text}"
    );
    // Through the queue: the journal says which schedule queued it, for which due time.
    let journal: Vec<serde_json::Value> = rb(&["audit", &run_id, "--format", "jsonl"])
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(journal.get(1).map(|r| &r["kind"]), Some(&"schedule_fired".into()), "{journal:?}");
    assert_eq!(journal[1]["event"]["schedule"], "backup_daily");
    assert_eq!(journal[1]["event"]["due"], due_text.as_str());
    // Against the sandbox: a verified dump written, the old backup pruned, the recent kept.
    let names: Vec<String> = std::fs::read_dir(&daily)
        .expect("daily")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains(&old), "retention applied: {names:?}");
    assert!(names.contains(&recent), "{names:?}");
    let dump = names
        .iter()
        .find(|n| n.starts_with(&format!("{environment}-daily-")) && n.ends_with(".dump") && **n != recent)
        .expect("the new backup");
    let list = std::process::Command::new(e.sb.pg.bin().join("pg_restore"))
        .arg("--list")
        .arg(daily.join(dump))
        .output()
        .expect("pg_restore");
    assert!(list.status.success(), "a readable custom-format dump");
    // The fire is the schedule's journal, which verifies.
    let records: Vec<serde_json::Value> = rb(&["audit", "schedule", "backup_daily", "--format", "jsonl"])
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // The worker's first watch (red team adv23 F2), then exactly one fire.
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["kind"], "watched");
    assert_eq!(records[1]["kind"], "fired");
    assert_eq!(records[1]["event"]["run_id"], run_id.as_str());
    assert_eq!(records[1]["due"], due_text.as_str());
    let verified = rb(&["audit", "verify"]);
    ok(&verified, 0);
    assert!(verified.stdout.contains("ok schedule backup_daily: 2 records"), "{}", verified.stdout);
    // Nothing else fired (the weekly and monthly backups were not due): their journals
    // hold the worker's watch only.
    for other in ["backup_weekly", "backup_monthly"] {
        assert!(verified.stdout.contains(&format!("ok schedule {other}: 1 records")), "{}", verified.stdout);
        let kinds: Vec<String> = rb(&["audit", "schedule", other, "--format", "jsonl"])
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|r| r["kind"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(kinds, ["watched"], "{other}");
    }
    // `runbook schedules` shows its last success, and it is not overdue.
    let shown = rb(&["schedules", "examples/schedules/inmova.toml"]);
    ok(&shown, 0);
    let daily_view = shown.stdout.split("\n\n").next().unwrap_or_default().to_string();
    assert!(daily_view.starts_with("backup_daily\n"), "{}", shown.stdout);
    assert!(daily_view.contains(&format!("  last run     {run_id} (succeeded)")), "{daily_view}");
    assert!(!daily_view.contains("  last success none"), "{daily_view}");
    assert!(!daily_view.contains("OVERDUE"), "{daily_view}");
}
