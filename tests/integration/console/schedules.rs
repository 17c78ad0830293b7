//! `/schedules` (issue 17): the console shows each schedule of the schedules files of
//! `--runbooks DIR` with what real workers recorded in the store: the last fired run (a
//! link to its page), an overdue schedule in red with its notice, a row found with no
//! journal record, the journal's last records with their `audit` verdict and head hash.
//! Never a webhook address or a parameter's value.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Console;
use crate::schedule_notices::ScriptedHook;
use crate::support::{ok, run_in_with_env};

fn env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("RUNBOOK_TEST_SCHEDULE_SECONDS", "1".to_string()),
        ("XDG_STATE_HOME", dir.join("host").display().to_string()),
        ("NO_COLOR", "1".to_string()),
    ]
}

fn cli(dir: &Path, args: &[&str]) -> crate::support::Output {
    let env = env(dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let state = dir.join("st.db").display().to_string();
    let mut all = args.to_vec();
    all.extend(["--state", &state]);
    run_in_with_env(dir, &all, &env)
}

fn journal(dir: &Path, name: &str) -> Vec<serde_json::Value> {
    let out = cli(dir, &["audit", "schedule", name, "--format", "jsonl"]);
    out.stdout.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
}

fn has(records: &[serde_json::Value], kind: &str) -> bool {
    records.iter().any(|r| r["event"]["kind"] == kind)
}

/// Failed before: `/schedules` was a 404 and the navigation had no link to it.
#[test]
fn the_schedules_page_shows_fires_overdue_warnings_and_the_journal_head() {
    let hook = ScriptedHook::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join(".git")).expect("git");
    std::fs::write(
        d.join("ok.toml"),
        "[runbook]\nname = \"tick\"\n[params.region]\ntype = \"string\"\n[steps.a]\nrun = \"true\"\n",
    )
    .expect("runbook");
    std::fs::write(d.join("broken.toml"), "[runbook]\nname = \"broken\"\n[steps.a]\nrun = \"exit 1\"\n")
        .expect("runbook");
    std::fs::write(
        d.join("s.toml"),
        format!(
            "[schedule.tick]\nrunbook = \"ok.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"Europe/Paris\"\nparams = {{ region = \"eu-hidden-value\" }}\n\n\
             [schedule.late]\nrunbook = \"broken.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"2s\"\nnotify = {{ webhook = \"{}\" }}\n\n\
             [schedule.gap]\nrunbook = \"ok.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nparams = {{ region = \"eu-hidden-value\" }}\n",
            hook.url()
        ),
    )
    .expect("schedules");
    ok(&cli(d, &["state", "migrate"]), 0);
    // The file's owner drops the trigger and takes a due time of `gap` ahead with no record.
    let db = d.join("st.db");
    let sqlite =
        |sql: &str| std::process::Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3");
    assert!(sqlite("DROP TRIGGER schedule_fires_have_their_record").status.success());
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    // Within the minute a clock may run ahead (beyond it, a row is a clock's error and the
    // schedule fires from now).
    let forged = (now_s + 45) * 1000;
    assert!(
        sqlite(&format!(
            "INSERT INTO schedule_fires (schedule, due_ms, outcome, run_id, note, fired_by, fired_at) \
             VALUES ('gap', {forged}, 'skipped', NULL, '', 'mallory', '2026-01-01T00:00:00Z')"
        ))
        .status
        .success()
    );
    let mut worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state"])
        .arg(&db)
        .current_dir(d)
        .envs(env(d))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (tick, late, gap) = (journal(d, "tick"), journal(d, "late"), journal(d, "gap"));
        if has(&tick, "fired") && has(&late, "notified") && has(&gap, "no_record") {
            break;
        }
        assert!(Instant::now() < deadline, "{tick:#?}{late:#?}{gap:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let state = cli(d, &["schedules", "s.toml", "--format", "json"]);
    let state: serde_json::Value = serde_json::from_str(&state.stdout).expect("json");
    let tick_run = state["schedules"][0]["last_run"]["run_id"].as_str().expect("a run of tick").to_string();
    let head = |name: &str| {
        journal(d, name).last().and_then(|r| r["hash"].as_str().map(str::to_string)).expect("a head")
    };
    let (late_head, gap_head) = (head("late"), head("gap"));

    let console_env = env(d);
    let console_env: Vec<(&str, &str)> = console_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let console = Console::start_with_env(d, &db.display().to_string(), &["--runbooks", "."], &console_env);
    let runs = console.get("/runs");
    assert!(runs.body.contains("<a href=\"/schedules\">Schedules</a>"), "{}", runs.body);
    let page = console.get("/schedules");
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    // The last fired run of `tick`, linked; its cron and time zone; next fire times.
    assert!(body.contains(&format!("<a href=\"/runs/{tick_run}\">{tick_run}</a>")), "{body}");
    assert!(body.contains("<code>* * * * * *</code> in Europe&#x2f;Paris"), "{body}");
    assert!(body.contains("<th>Next</th>"), "{body}");
    // `late` is overdue, in red, with its notice delivered.
    assert!(body.contains("<h3>late <span class=\"bad overdue\">OVERDUE</span></h3>"), "{body}");
    assert!(
        body.contains("<tr class=\"bad overdue\"><th>Overdue</th><td>no successful run since "),
        "{body}"
    );
    assert!(body.contains(": delivered (attempt 1); 1 attempt(s)</td>"), "{body}");
    // `gap`'s due time taken with no record: the warning, in red.
    let due = chrono::DateTime::from_timestamp_millis(forged as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    assert!(
        body.contains(&format!(
            "<tr class=\"bad warning\"><th>Warning</th><td>due {due} did not fire: a row of schedule_fires takes it with no record in this journal"
        )),
        "{body}"
    );
    // Each journal's verdict and head, as `runbook audit schedule` has them.
    assert!(body.contains(&format!("head <code class=\"head\">{late_head}</code>")), "{body}");
    assert!(body.contains(&format!("head <code class=\"head\">{gap_head}</code>")), "{body}");
    assert!(body.contains("<span class=\"bad verdict\">BROKEN: schedule_fires: "), "{body}");
    assert!(body.contains("<span class=\"ok verdict\">ok</span>"), "{body}");
    // No webhook address, no parameter value.
    assert!(!body.contains("s3cr3t-path") && !body.contains("127.0.0.1:"), "{body}");
    assert!(!body.contains("eu-hidden-value"), "{body}");
    // In a real browser: reached from the navigation, the overdue mark and the warning
    // are red (the console's `.bad`), the run link leads to the run's page.
    let browser = crate::browser::Browser::start();
    browser.open(&format!("http://{}/runs", console.host()));
    browser.eval("document.querySelector('nav a[href=\"/schedules\"]').click(); return null");
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.eval("return location.pathname") != "/schedules" {
        assert!(Instant::now() < deadline, "the navigation link did not lead to /schedules");
        std::thread::sleep(Duration::from_millis(100));
    }
    let colour = |selector: &str| {
        browser.eval(&format!(
            "const e = document.querySelector('{selector}'); return e ? getComputedStyle(e).color : null"
        ))
    };
    assert_eq!(colour("#schedule-late .overdue"), "rgb(164, 14, 38)");
    assert_eq!(colour("#schedule-gap tr.warning"), "rgb(164, 14, 38)");
    assert_eq!(
        browser.eval("return document.querySelector('#schedule-tick a[href^=\"/runs/\"]').textContent"),
        tick_run.as_str()
    );
    assert_eq!(browser.eval("return document.querySelectorAll('script').length"), 0);
    drop(browser);
    // Read-only: the page queued nothing.
    let before = journal(d, "tick").len();
    let _ = console.get("/schedules");
    assert_eq!(journal(d, "tick").len(), before);
}

/// A schedules file `check` refuses is listed with where and which code only: a
/// diagnostic's excerpt would quote the file, webhook address included.
#[test]
fn a_schedules_file_with_errors_is_shown_without_its_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("ok.toml"), "[runbook]\nname = \"tick\"\n[steps.a]\nrun = \"true\"\n")
        .expect("runbook");
    std::fs::write(
        d.join("s.toml"),
        "[schedule.tick]\nrunbook = \"ok.toml\"\ncron = \"61 * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"1h\"\nnotify = { webhook = \"https://hooks.example/s3cr3t-path\" }\n",
    )
    .expect("schedules");
    let db = d.join("st.db");
    let console = Console::start(d, &db.display().to_string(), &["--runbooks", "."]);
    let page = console.get("/schedules");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("s.toml:3:8: error[RB100]"), "{}", page.body);
    assert!(!page.body.contains("s3cr3t-path") && !page.body.contains("hooks.example"), "{}", page.body);
}
