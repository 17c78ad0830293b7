//! Overdue notices are delivered at least once (issue 17, S3, red team adv18a): a failed
//! delivery is retried with a backoff, a worker killed while the webhook holds its request
//! is taken over when its lease expires, every attempt's outcome is journaled, and
//! `runbook schedules --state` says when a notice is not delivered yet. Real workers, real
//! HTTP servers on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{ok, run_in_with_env};

/// What the webhook answers to one request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// This status at once.
    Status(u16),
    /// Nothing until [`ScriptedHook::release`], then 200.
    Hold,
}

/// A webhook on 127.0.0.1 that answers its requests in turn as its script says (200 past
/// the script), keeps every request's body, and counts requests in flight at once.
pub struct ScriptedHook {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
}

impl ScriptedHook {
    pub fn start(script: Vec<Answer>) -> ScriptedHook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hook = ScriptedHook {
            port,
            bodies: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
            released: Arc::default(),
        };
        let (bodies, in_flight, most, released) =
            (hook.bodies.clone(), hook.in_flight.clone(), hook.most_in_flight.clone(), hook.released.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (bodies, in_flight, most, released) =
                    (bodies.clone(), in_flight.clone(), most.clone(), released.clone());
                let script = script.clone();
                std::thread::spawn(move || {
                    let Some(body) = read_request(&mut conn) else { return };
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let index = {
                        let mut b = bodies.lock().expect("lock");
                        b.push(body);
                        b.len() - 1
                    };
                    let status = match script.get(index).copied().unwrap_or(Answer::Status(200)) {
                        Answer::Status(s) => s,
                        Answer::Hold => {
                            while !released.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            200
                        }
                    };
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let _ =
                        write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                });
            }
        });
        hook
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/s3cr3t-path", self.port)
    }

    /// The bodies received, in order, as JSON.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .expect("lock")
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or_default())
            .collect()
    }

    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Waits (at most 90 s) until at least `n` requests arrived.
    pub fn wait_for(&self, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.bodies.lock().expect("lock").len() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} requests",
                self.bodies.lock().expect("lock").len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ScriptedHook {
    fn drop(&mut self) {
        self.release();
    }
}

/// One HTTP/1.1 request's body (by its Content-Length).
fn read_request(conn: &mut std::net::TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = conn.read(&mut buf).ok()?;
                if n == 0 {
                    return None;
                }
                data.extend_from_slice(&buf[..n]);
            }
            return Some(String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned());
        }
    }
}

/// A repository with a runbook that always fails and `s.toml`: schedule `nightly` due every
/// second (test mode), overdue after 2 s, notifying `webhook`.
fn failing_schedule(webhook: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect("git");
    std::fs::write(dir.path().join("r.toml"), "[runbook]\nname = \"broken\"\n[steps.a]\nrun = \"exit 1\"\n")
        .expect("runbook");
    std::fs::write(
        dir.path().join("s.toml"),
        format!(
            "[schedule.nightly]\nrunbook = \"r.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"2s\"\nnotify = {{ webhook = \"{webhook}\" }}\n"
        ),
    )
    .expect("schedules");
    dir
}

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

/// `runbook worker --schedules s.toml` on `st.db`, its output in `log`.
fn worker(dir: &Path, log: &str) -> std::process::Child {
    std::process::Command::new(crate::support::bin())
        .args(["worker", "--schedules", "s.toml", "--state"])
        .arg(dir.join("st.db"))
        .current_dir(dir)
        .envs(env(dir))
        .stdout(std::fs::File::create(dir.join(format!("{log}.out"))).expect("log"))
        .stderr(std::fs::File::create(dir.join(format!("{log}.err"))).expect("log"))
        .spawn()
        .expect("worker")
}

/// The schedule's journal records, none while it has no journal (a worker is starting).
fn journal_so_far(dir: &Path) -> Vec<serde_json::Value> {
    let out = cli(dir, &["audit", "schedule", "nightly", "--format", "jsonl"]);
    out.stdout.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
}

/// The schedule's journal records as (kind, body).
fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let out = cli(dir, &["audit", "schedule", "nightly", "--format", "jsonl"]);
    ok(&out, 0);
    out.stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("jsonl")).collect()
}

fn of_kind<'a>(records: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["event"]["kind"] == kind).collect()
}

/// Waits (at most 90 s) until the journal holds a `notified` record.
fn wait_notified(dir: &Path) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let records = journal_so_far(dir);
        if !of_kind(&records, "notified").is_empty() {
            return records;
        }
        assert!(Instant::now() < deadline, "never delivered: {records:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A webhook that answers 503 twice is tried again until it takes the notice: three
/// attempts, each journaled with its number (`notify_failed` with `HTTP 503` twice, then
/// exactly one `notified`), each request naming its attempt; while the third is in flight,
/// `runbook schedules --state` says the notice is not delivered. Failed before: one request,
/// one `notify_failed`, never retried.
#[test]
fn a_notice_the_webhook_refuses_twice_is_retried_until_delivered() {
    let hook = ScriptedHook::start(vec![Answer::Status(503), Answer::Status(503), Answer::Hold]);
    let dir = failing_schedule(&hook.url());
    let d = dir.path();
    ok(&cli(d, &["state", "migrate"]), 0);
    let mut w = worker(d, "w1");
    hook.wait_for(3, "the notice was not tried three times");
    // The third attempt is held by the webhook: two failures are recorded, one is in flight.
    let listed = cli(d, &["schedules", "s.toml"]);
    ok(&listed, 0);
    let notice: Vec<&str> = listed.stdout.lines().filter(|l| l.starts_with("  notice")).collect();
    insta::assert_snapshot!("overdue_notice_not_delivered", notice.join("\n"));
    let json = cli(d, &["schedules", "s.toml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["schedules"][0]["notice"]["delivered"], false, "{}", json.stdout);
    assert_eq!(v["schedules"][0]["notice"]["failed_attempts"], 2, "{}", json.stdout);
    assert_eq!(v["schedules"][0]["notice"]["last_failure"], "HTTP 503", "{}", json.stdout);
    hook.release();
    let records = wait_notified(d);
    // More passes after the delivery send nothing more.
    let passes = of_kind(&journal(d), "skipped").len() + of_kind(&journal(d), "fired").len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while of_kind(&journal(d), "skipped").len() + of_kind(&journal(d), "fired").len() < passes + 3 {
        assert!(Instant::now() < deadline, "the worker stopped firing");
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::support::kill9(w.id());
    let _ = w.wait();
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    let attempts: Vec<i64> = bodies.iter().map(|b| b["attempt"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(bodies.iter().all(|b| b["overdue_since"] == bodies[0]["overdue_since"]), "{bodies:#?}");
    let failed = of_kind(&records, "notify_failed");
    let failed: Vec<(i64, &str)> = failed
        .iter()
        .map(|r| (r["event"]["attempt"].as_i64().unwrap_or(-1), r["event"]["failure"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(failed, [(1, "HTTP 503"), (2, "HTTP 503")], "{records:#?}");
    let notified = of_kind(&records, "notified");
    assert_eq!(notified.len(), 1, "{records:#?}");
    assert_eq!(notified[0]["event"]["attempt"], 3, "{records:#?}");
    assert_eq!(of_kind(&records, "overdue").len(), 1, "{records:#?}");
    // The webhook's address (a chat webhook's credential) is in no record, line or listing.
    let all = format!(
        "{}{}{}{}",
        serde_json::to_string(&records).unwrap_or_default(),
        std::fs::read_to_string(d.join("w1.out")).unwrap_or_default(),
        std::fs::read_to_string(d.join("w1.err")).unwrap_or_default(),
        listed.stdout
    );
    assert!(!all.contains("s3cr3t-path"), "{all}");
    let listed = cli(d, &["schedules", "s.toml"]);
    assert!(
        listed.stdout.contains("  notice       overdue notice delivered (attempt 3)\n"),
        "{}",
        listed.stdout
    );
    ok(&cli(d, &["audit", "verify"]), 0);
}

/// A worker SIGKILLed while the webhook holds its request leaves no outcome: once its lease
/// expires another worker takes the notice over, journals the first attempt as lapsed and
/// delivers it (at least once). The journal verifies. Failed before: nobody retried.
#[test]
fn a_notice_whose_worker_died_in_flight_is_delivered_by_another_worker() {
    let hook = ScriptedHook::start(vec![Answer::Hold]);
    let dir = failing_schedule(&hook.url());
    let d = dir.path();
    ok(&cli(d, &["state", "migrate"]), 0);
    let mut first = worker(d, "w1");
    hook.wait_for(1, "the first worker sent nothing");
    crate::support::kill9(first.id());
    let _ = first.wait();
    let mut second = worker(d, "w2");
    let records = wait_notified(d);
    crate::support::kill9(second.id());
    let _ = second.wait();
    let bodies = hook.bodies();
    assert!(bodies.len() >= 2, "{bodies:#?}");
    assert_eq!(bodies[0]["attempt"], 1);
    assert_eq!(bodies[1]["attempt"], 2);
    let failed = of_kind(&records, "notify_failed");
    assert_eq!(failed.len(), 1, "{records:#?}");
    assert_eq!(failed[0]["event"]["attempt"], 1, "{records:#?}");
    assert_eq!(failed[0]["event"]["failure"], "no outcome recorded before its lease expired", "{records:#?}");
    let notified = of_kind(&records, "notified");
    assert_eq!(notified.len(), 1, "{records:#?}");
    assert_eq!(notified[0]["event"]["attempt"], 2, "{records:#?}");
    assert_ne!(notified[0]["event"]["worker"], failed[0]["event"]["worker"]);
    ok(&cli(d, &["audit", "verify"]), 0);
}

/// Issue 17, S1 (red team adv18a): a row of `schedule_fires` inserted by plain SQL stopped
/// its due time with no journal record, and the worker skipped it in silence. The store now
/// refuses such a row (its trigger wants the due time's record first); past the trigger
/// (only the file's owner can drop it), the worker says loudly that a due time was taken
/// with no record, and `audit verify` is BROKEN. Failed before: the insert succeeded and
/// the worker said nothing.
#[test]
fn a_due_time_taken_without_its_record_is_refused_or_said_loudly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join(".git")).expect("git");
    std::fs::write(d.join("r.toml"), "[runbook]\nname = \"tick\"\n[steps.a]\nrun = \"true\"\n")
        .expect("runbook");
    std::fs::write(
        d.join("s.toml"),
        "[schedule.nightly]\nrunbook = \"r.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\n",
    )
    .expect("schedules");
    ok(&cli(d, &["state", "migrate"]), 0);
    let db = d.join("st.db");
    let sqlite =
        |sql: &str| std::process::Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3");
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let forge = |from: u64, to: u64| {
        let rows: Vec<String> = (from..=to)
            .map(|s| {
                format!("('nightly', {}, 'skipped', NULL, '', 'mallory', '2026-01-01T00:00:00Z')", s * 1000)
            })
            .collect();
        format!(
            "INSERT INTO schedule_fires (schedule, due_ms, outcome, run_id, note, fired_by, fired_at) VALUES {}",
            rows.join(", ")
        )
    };
    let refused = sqlite(&forge(now_s + 8, now_s + 10));
    assert!(!refused.status.success(), "a due time was taken with no record");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("taken only with its journal record"));
    // The file's owner drops the trigger and takes the next due times.
    assert!(sqlite("DROP TRIGGER schedule_fires_have_their_record").status.success());
    assert!(sqlite(&forge(now_s + 8, now_s + 10)).status.success());
    // Two workers see it: the store journals it once (`no_record`), each says it.
    let mut w1 = worker(d, "w1");
    let mut w2 = worker(d, "w2");
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let err = |log: &str| std::fs::read_to_string(d.join(format!("{log}.err"))).unwrap_or_default();
        let (e1, e2) = (err("w1"), err("w2"));
        let recorded = !of_kind(&journal_so_far(d), "no_record").is_empty();
        let key = "did not fire: a row of schedule_fires takes it with no record";
        if recorded && e1.contains(key) && e2.contains(key) {
            break e1;
        }
        assert!(Instant::now() < deadline, "nothing said: {e1}{e2}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for w in [&mut w1, &mut w2] {
        crate::support::kill9(w.id());
        let _ = w.wait();
    }
    let last = due_text((now_s + 10) * 1000);
    assert!(said.contains(&format!("schedule `nightly` due {last}")), "{said}");
    let records = journal(d);
    let noted = of_kind(&records, "no_record");
    assert_eq!(noted.len(), 1, "{records:#?}");
    assert_eq!(noted[0]["event"]["table"], "schedule_fires", "{records:#?}");
    assert_eq!(noted[0]["event"]["due"], last.as_str(), "{records:#?}");
    // `schedules --state` shows it (text and JSON) until a later due time fires.
    let shown = cli(d, &["schedules", "s.toml"]);
    ok(&shown, 0);
    let line = shown.stdout.lines().find(|l| l.starts_with("  WARNING ")).unwrap_or_default().to_string();
    let seq = noted[0]["seq"].to_string();
    let ts = noted[0]["ts"].as_str().unwrap_or_default().to_string();
    insta::assert_snapshot!(
        "schedules_state_due_time_without_record",
        line.replace(&last, "<due>")
            .replace(&ts, "<recorded>")
            .replace(&format!("record {seq},"), "record <n>,")
    );
    let json = cli(d, &["schedules", "s.toml", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let warnings = &json["schedules"][0]["warnings"];
    assert_eq!(warnings.as_array().map(Vec::len), Some(1), "{json:#}");
    assert_eq!(warnings[0]["table"], "schedule_fires", "{json:#}");
    assert_eq!(warnings[0]["due"], last.as_str(), "{json:#}");
    let verify = cli(d, &["audit", "verify"]);
    assert_eq!(verify.code, 4, "{}", verify.stdout);
    assert!(verify.stdout.contains("BROKEN schedule nightly: schedule_fires: "), "{}", verify.stdout);
    // A later due time fires: the warning is no longer shown (it stays in the journal).
    let mut w3 = worker(d, "w3");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !journal(d)
        .iter()
        .any(|r| r["event"]["kind"] == "fired" && r["event"]["due"].as_str() > Some(last.as_str()))
    {
        assert!(Instant::now() < deadline, "nothing fired after {last}");
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::support::kill9(w3.id());
    let _ = w3.wait();
    let shown = cli(d, &["schedules", "s.toml"]);
    assert!(!shown.stdout.contains("WARNING"), "{}", shown.stdout);
    assert_eq!(of_kind(&journal(d), "no_record").len(), 1);
}

/// Issue 17, S1 for overdue notices: a row of `schedule_alerts` inserted by plain SQL took
/// the notice with no journal record, and no worker sent it. The store now refuses such a
/// row (migration 14: its trigger wants the `overdue` record first), so the notice is still
/// delivered; past the trigger (dropped by the file's owner), a worker says so loudly, the
/// journal holds one `no_record` record, `schedules --state` shows it, and `audit verify` is
/// BROKEN. Failed before: the forged rows were inserted and nothing was said.
#[test]
fn a_forged_alert_row_is_refused_or_said_loudly() {
    let hook = ScriptedHook::start(vec![]);
    for owner_drops_the_trigger in [false, true] {
        let dir = failing_schedule(&hook.url());
        let d = dir.path();
        ok(&cli(d, &["state", "migrate"]), 0);
        let db = d.join("st.db");
        let sqlite =
            |sql: &str| std::process::Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3");
        // Every overdue period the worker can measure from (its first due time, a second
        // within the next 30), first notice.
        let now_s =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
        let rows: Vec<String> = (now_s.saturating_sub(2)..now_s + 30)
            .map(|s| format!("('nightly', {}, 0, 'mallory', '2026-01-01T00:00:00Z')", s * 1000))
            .collect();
        let forge = format!(
            "INSERT INTO schedule_alerts (schedule, since_ms, reminder, sent_by, sent_at) VALUES {}",
            rows.join(", ")
        );
        let refused = sqlite(&forge);
        assert!(!refused.status.success(), "an overdue notice was taken with no record");
        assert!(
            String::from_utf8_lossy(&refused.stderr)
                .contains("overdue notice is taken only with its journal record"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        if !owner_drops_the_trigger {
            let before = hook.bodies().len();
            let mut w = worker(d, "w1");
            let records = wait_notified(d);
            crate::support::kill9(w.id());
            let _ = w.wait();
            assert!(hook.bodies().len() > before);
            assert_eq!(of_kind(&records, "overdue").len(), 1, "{records:#?}");
            assert!(of_kind(&records, "no_record").is_empty(), "{records:#?}");
            ok(&cli(d, &["audit", "verify"]), 0);
            continue;
        }
        ok(&cli(d, &["state", "check"]), 0);
        assert!(sqlite("DROP TRIGGER schedule_alerts_have_their_record").status.success());
        let check = cli(d, &["state", "check"]);
        assert_eq!(check.code, 5, "{}{}", check.stdout, check.stderr);
        assert!(
            check.stdout.contains("missing, disabled or altered: schedule_alerts_have_their_record"),
            "{}",
            check.stdout
        );
        assert!(sqlite(&forge).status.success());
        let mut w = worker(d, "w1");
        let deadline = Instant::now() + Duration::from_secs(60);
        let noted = loop {
            let records = journal_so_far(d);
            let noted: Vec<serde_json::Value> = of_kind(&records, "no_record").into_iter().cloned().collect();
            if !noted.is_empty() {
                break noted;
            }
            assert!(Instant::now() < deadline, "nothing journaled: {records:#?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_secs(2));
        crate::support::kill9(w.id());
        let _ = w.wait();
        let err = std::fs::read_to_string(d.join("w1.err")).unwrap_or_default();
        assert_eq!(
            err.matches("was not taken by a worker: a row of schedule_alerts takes it").count(),
            1,
            "{err}"
        );
        assert_eq!(of_kind(&journal(d), "no_record").len(), 1);
        assert_eq!(noted[0]["event"]["table"], "schedule_alerts", "{noted:#?}");
        assert_eq!(noted[0]["event"]["reminder"], 0, "{noted:#?}");
        let since = noted[0]["event"]["due"].as_str().unwrap_or_default().to_string();
        let shown = cli(d, &["schedules", "s.toml"]);
        let line = shown.stdout.lines().find(|l| l.starts_with("  WARNING ")).unwrap_or_default().to_string();
        let seq = noted[0]["seq"].to_string();
        let ts = noted[0]["ts"].as_str().unwrap_or_default().to_string();
        insta::assert_snapshot!(
            "schedules_state_alert_without_record",
            line.replace(&since, "<since>")
                .replace(&ts, "<recorded>")
                .replace(&format!("record {seq},"), "record <n>,")
        );
        assert!(!shown.stdout.contains("s3cr3t-path"), "{}", shown.stdout);
        let verify = cli(d, &["audit", "verify"]);
        assert_eq!(verify.code, 4, "{}", verify.stdout);
        assert!(verify.stdout.contains("BROKEN schedule nightly: schedule_alerts: "), "{}", verify.stdout);
    }
}

fn due_text(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
