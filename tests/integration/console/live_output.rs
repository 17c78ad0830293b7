//! Live output (issue 16): a running attempt's redacted output reaches the console through
//! the store (`live_output`), before its log is kept, labelled as not vouched for.

use std::time::{Duration, Instant};

use super::live::{Stream, data, started};
use super::{Console, text_of};
use crate::support::Scratch;

/// A step that prints a line, then waits for the file `go` before it ends.
const PRINTS_THEN_WAITS: &str = r#"[runbook]
name = "migrate-slowly"

[steps.migrate]
run = "echo 'progress: 1 of 3 <tables> & more'; while [ ! -f go ]; do sleep 0.05; done; echo 'migration done'"
"#;

/// The `live` events of `events`, as JSON.
fn live_of(events: &[super::live::Sse]) -> Vec<serde_json::Value> {
    events.iter().filter(|e| e.event == "live").map(data).collect()
}

/// The stream shows a running step's line while it runs (a `live` event, labelled "live,
/// not yet kept"), the run page too; once the log is kept, the kept output (a `log_kept`
/// record with its output) follows, and no live event of that attempt after it.
#[test]
fn a_running_steps_output_is_streamed_live_then_the_kept_output_replaces_it() {
    let s = Scratch::new(PRINTS_THEN_WAITS);
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    let run = started(&s, "migrate");
    let c = Console::start(s.path(), &s.state(), &[]);
    let mut stream = Stream::open(&c, &format!("/runs/{run}/events"), None);
    assert_eq!(stream.status, 200);
    stream.timeout(Duration::from_secs(10));
    let before = stream.until(|e| {
        e.event == "live" && data(e)["lines"].to_string().contains("progress: 1 of 3 <tables> & more")
    });
    let live = live_of(&before);
    let first = live.last().expect("a live event");
    assert_eq!(first["step"], "migrate");
    assert_eq!(first["attempt"], 1);
    assert!(first["label"].as_str().is_some_and(|l| l.starts_with("live, not yet kept")), "{first}");
    assert!(before.iter().all(|e| !e.data.contains('<') && !e.data.contains('&')), "markup escaped in JSON");
    // The step is still running: its journal has no end for it.
    assert!(!s.events(&run).iter().any(|(k, _)| k == "step_succeeded" || k == "log_kept"));
    // The run page shows it too, under the label.
    let page = text_of(&c.get(&format!("/runs/{run}")).body);
    assert!(page.contains("progress: 1 of 3 <tables> & more"), "{page}");
    assert!(page.contains("live, not yet kept"), "{page}");
    std::fs::write(s.path().join("go"), "").expect("go");
    let rest = stream.rest();
    let status = engine.wait().expect("the engine ends");
    assert!(status.success(), "{status:?}");
    // Each line once on the stream: a live event carries the lines after those sent.
    let mut all = before.clone();
    all.extend(rest.iter().cloned());
    let sent = live_of(&all).iter().filter(|d| d["lines"].to_string().contains("progress: 1 of 3")).count();
    assert_eq!(sent, 1, "{all:?}");
    // The kept output arrives with its record; no live event of the attempt after it.
    let kept_at = rest
        .iter()
        .position(|e| e.event == "record" && data(e)["kind"] == "log_kept")
        .unwrap_or_else(|| panic!("a log_kept record: {rest:?}"));
    let kept = data(&rest[kept_at]);
    let lines = kept["output"]["lines"].to_string();
    assert!(lines.contains("progress: 1 of 3") && lines.contains("migration done"), "{kept}");
    assert!(live_of(&rest[kept_at..]).is_empty(), "{rest:?}");
    // The engine stopped: its live rows are gone; the finished run's page shows none.
    let rows = std::process::Command::new("sqlite3")
        .arg(s.state())
        .arg("SELECT count(*) FROM live_output")
        .output()
        .expect("sqlite3");
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "0");
    let page = text_of(&c.get(&format!("/runs/{run}")).body);
    assert!(!page.contains("live, not yet kept") && page.contains("migration done"), "{page}");
}

/// Promise 3: a step prints a secret and its base64 while it runs; the live table (every
/// file of the store, rows included) and the stream never hold either. (The visible line
/// ends with `.`: a line that ends with what could begin a form of the secret is held back
/// until the step prints more, as the book's secrets chapter says.)
#[test]
fn a_secret_printed_by_a_running_step_reaches_neither_the_live_table_nor_the_stream() {
    let secret = format!("s3cr3t-{}", std::process::id());
    let b64 = base64(secret.as_bytes());
    let rb = "[runbook]\nname = \"leaky\"\n[secrets.TOKEN]\nenv = \"MY_TOKEN\"\n[steps.leak]\nrun = \"echo \\\"token=$T\\\"; echo \\\"b64=$(printf %s \\\"$T\\\" | base64)\\\"; echo visible-line.; while [ ! -f go ]; do sleep 0.05; done\"\nenv = { T = \"{{ secrets.TOKEN }}\" }\n";
    let s = Scratch::new(rb);
    let mut engine = s
        .command(&["run", "r.toml", "--yes"], &[("MY_TOKEN", secret.as_str())])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let run = started(&s, "leak");
    let c = Console::start(s.path(), &s.state(), &[]);
    let mut stream = Stream::open(&c, &format!("/runs/{run}/events"), None);
    stream.timeout(Duration::from_secs(10));
    let seen = stream.until(|e| e.event == "live" && e.data.contains("visible-line"));
    // The row is there while the step runs: read it, and every file of the store.
    let t0 = Instant::now();
    let tail = loop {
        let out = std::process::Command::new("sqlite3")
            .arg(s.state())
            .arg("SELECT tail FROM live_output")
            .output()
            .expect("sqlite3");
        let tail = String::from_utf8_lossy(&out.stdout).to_string();
        if tail.contains("visible-line") || t0.elapsed() > Duration::from_secs(60) {
            break tail;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(tail.contains("visible-line"), "the live row: {tail}");
    let page = c.get(&format!("/runs/{run}")).body;
    std::fs::write(s.path().join("go"), "").expect("go");
    let mut all = seen;
    all.extend(stream.rest());
    let _ = engine.wait();
    let mut files = vec![tail, page];
    files.extend(all.iter().map(|e| e.data.clone()));
    // The store's files (the database, its write-ahead log) as they are on disk.
    let store_dir = s.path().join("state");
    for entry in std::fs::read_dir(&store_dir).expect("the store's folder").flatten() {
        files.push(String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap_or_default()).to_string());
    }
    for text in &files {
        assert!(!text.contains(&secret), "the secret leaked: {text}");
        assert!(!text.contains(&b64), "its base64 leaked: {text}");
    }
}

/// Standard base64 with padding (what `base64` prints for a short value).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Team mode: a worker (another process, its own database role) runs the step; the
/// console, connected as a role with the book's grants, streams its line while it runs.
#[test]
fn on_postgresql_a_workers_running_step_is_streamed_live_to_the_console() {
    let pg = runbook_sandbox::peers::Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), PRINTS_THEN_WAITS).expect("runbook");
    let roles = crate::audit::Roles { pg, dir };
    crate::support::ok(&roles.cmd("postgres", &["state", "migrate", "--identity", "db-role"], None), 0);
    roles.operators(&["web", "ana", "wkr"]);
    let out = roles.cmd("ana", &["submit", "r.toml", "--yes"], None);
    crate::support::ok(&out, 0);
    let run = out.stdout.trim().to_string();
    let mut worker = std::process::Command::new(crate::support::bin())
        .args(["worker", "--poll", "20ms", "--state", &roles.url("wkr")])
        .current_dir(roles.dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", roles.dir.path().join("wkr"))
        .env_remove("RUNBOOK_STATE")
        .env_remove("RUNBOOK_OPERATOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker");
    let c = Console::start(roles.dir.path(), &roles.url("web"), &[]);
    let path = format!("/runs/{run}/events");
    let t0 = Instant::now();
    let mut stream = loop {
        let s = Stream::open(&c, &path, None);
        if s.status == 200 {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "the worker never started the run");
        std::thread::sleep(Duration::from_millis(200));
    };
    stream.timeout(Duration::from_secs(10));
    let before = stream.until(|e| e.event == "live" && e.data.contains("progress: 1 of 3"));
    assert!(live_of(&before).iter().all(|d| d["step"] == "migrate"));
    let page = text_of(&c.get(&format!("/runs/{run}")).body);
    assert!(page.contains("progress: 1 of 3") && page.contains("live, not yet kept"), "{page}");
    std::fs::write(roles.dir.path().join("go"), "").expect("go");
    let rest = stream.rest();
    let kept = rest
        .iter()
        .find(|e| e.event == "record" && data(e)["kind"] == "log_kept")
        .unwrap_or_else(|| panic!("a log_kept record: {rest:?}"));
    assert!(data(kept)["output"]["lines"].to_string().contains("migration done"), "{}", kept.data);
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    // The worker's engine removed its rows when it stopped.
    assert_eq!(roles.pg.psql("postgres", "SELECT count(*) FROM live_output").trim(), "0");
}

/// One poller per followed run, whatever the followers (p16-live), live output included:
/// six streams follow a running run; the console's pollers read the store at most once
/// per half second in all (`runbook serve` says how many reads when it stops), not once
/// per follower.
#[test]
fn six_followers_of_a_run_share_one_poller() {
    let s = Scratch::new(PRINTS_THEN_WAITS);
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    let run = started(&s, "migrate");
    let c = Console::start(s.path(), &s.state(), &[]);
    let t0 = Instant::now();
    let mut streams: Vec<Stream> =
        (0..6).map(|_| Stream::open(&c, &format!("/runs/{run}/events"), None)).collect();
    for stream in &mut streams {
        assert_eq!(stream.status, 200);
        stream.timeout(Duration::from_secs(10));
        stream.until(|e| e.event == "live" && e.data.contains("progress: 1 of 3"));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (code, stderr) = c.stop(nix::sys::signal::Signal::SIGTERM);
    let followed = t0.elapsed();
    assert_eq!(code, 0, "{stderr}");
    let reads: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("followed runs: their pollers read the store "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of the pollers' reads: {stderr}"));
    let most = followed.as_millis() as u64 / 500 + 2;
    assert!(reads >= 1 && reads <= most, "{reads} reads in {followed:?} (one poller: at most {most})");
    std::fs::write(s.path().join("go"), "").expect("go");
    assert!(engine.wait().expect("the engine ends").success());
}

/// The browser sees a running step's new line appear under the step without a reload, as
/// text, labelled "live, not yet kept"; the search box filters it; the kept output then
/// replaces it.
#[test]
fn a_browser_sees_a_live_line_appear_without_a_reload_then_the_kept_output() {
    let rb = "[runbook]\nname = \"slow\"\n[steps.migrate]\nrun = \"echo 'progress 1'; while [ ! -f more ]; do sleep 0.05; done; echo 'progress 2 <b>bold</b>'; while [ ! -f go ]; do sleep 0.05; done\"\n";
    let s = Scratch::new(rb);
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    let run = started(&s, "migrate");
    let c = Console::start(s.path(), &s.state(), &[]);
    // The first line is in the store (the page, served, shows it).
    let t0 = Instant::now();
    while !text_of(&c.get(&format!("/runs/{run}")).body).contains("progress 1") {
        assert!(t0.elapsed() < Duration::from_secs(60), "the live line never reached the page");
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser = crate::browser::Browser::start();
    browser.open(&format!("http://{}/runs/{run}", c.host()));
    browser.eval("window.notReloaded = 'yes'; return null;");
    let t0 = Instant::now();
    loop {
        let note = browser.eval("return document.getElementById('live').textContent");
        if note.as_str().is_some_and(|n| n.starts_with("Following the run live")) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the page never followed the run: {note}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(s.path().join("more"), "").expect("more");
    let live = "var sec = document.querySelector('section.log.live'); \
                return sec ? [sec.querySelector('p.label').textContent, \
                  Array.prototype.map.call(sec.querySelectorAll('pre span'), function (s) { return s.textContent; }), \
                  sec.querySelectorAll('b').length, window.notReloaded || 'reloaded'] : null;";
    let t0 = Instant::now();
    let seen = loop {
        let seen = browser.eval(live);
        if seen[1].as_array().is_some_and(|l| l.iter().any(|x| x == "progress 2 <b>bold</b>")) {
            break seen;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the live line never appeared: {seen}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen[0].as_str().is_some_and(|l| l.starts_with("live, not yet kept")), "{seen}");
    assert_eq!(
        seen[1],
        serde_json::json!(["progress 1", "progress 2 <b>bold</b>"]),
        "each line once: {seen}"
    );
    assert_eq!(seen[2], 0, "the output's markup is text: {seen}");
    assert_eq!(seen[3], "yes", "no reload: {seen}");
    // The search box filters live lines too.
    let shown = "var box = document.getElementById('output-search'); box.value = 'progress 2'; \
                 box.dispatchEvent(new Event('input')); \
                 return Array.prototype.filter.call(document.querySelectorAll('section.log.live pre span'), function (s) { return !s.hidden; }).map(function (s) { return s.textContent; });";
    assert_eq!(browser.eval(shown), serde_json::json!(["progress 2 <b>bold</b>"]));
    browser.eval("var box = document.getElementById('output-search'); box.value = ''; box.dispatchEvent(new Event('input')); return null;");
    std::fs::write(s.path().join("go"), "").expect("go");
    assert!(engine.wait().expect("the engine").success());
    let kept = "return [document.querySelectorAll('section.log.live').length, document.getElementById('live-output').textContent.indexOf('kept in the store') >= 0, \
                document.getElementById('live-output').textContent.indexOf('progress 2 <b>bold</b>') >= 0];";
    let t0 = Instant::now();
    loop {
        let seen = browser.eval(kept);
        if seen == serde_json::json!([0, true, true]) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the kept output never replaced the live one: {seen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running run whose journal does not verify gets no live output: not on its stream (only
/// the `end` that says why), not on its page. (A regression guard: before live output
/// existed there was none to send.)
#[test]
fn a_running_run_whose_journal_does_not_verify_gets_no_live_output() {
    let s = Scratch::new(PRINTS_THEN_WAITS);
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    let run = started(&s, "migrate");
    let t0 = Instant::now();
    loop {
        let out = std::process::Command::new("sqlite3")
            .arg(s.state())
            .arg("SELECT count(*) FROM live_output")
            .output()
            .expect("sqlite3");
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no live row");
        std::thread::sleep(Duration::from_millis(100));
    }
    let sql = "DROP TRIGGER IF EXISTS events_no_update; UPDATE events SET body = replace(body, 'migrate-slowly', 'migrate-quickly') WHERE seq = 1;";
    let out = std::process::Command::new("sqlite3").arg(s.state()).arg(sql).output().expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Console::start(s.path(), &s.state(), &[]);
    let mut stream = Stream::open(&c, &format!("/runs/{run}/events"), None);
    stream.timeout(Duration::from_secs(10));
    let seen = stream.rest();
    assert!(seen.iter().all(|e| e.event != "live" && !e.data.contains("progress")), "{seen:?}");
    assert!(seen.iter().any(|e| e.event == "end" && e.data.contains("does not verify")), "{seen:?}");
    let page = text_of(&c.get(&format!("/runs/{run}")).body);
    assert!(!page.contains("progress: 1 of 3") && !page.contains("live, not yet kept"), "{page}");
    std::fs::write(s.path().join("go"), "").expect("go");
    let _ = engine.wait();
}

/// Red team adv22 L1 (promise 6): a stream opened while the journal verified ends, saying
/// why, once a record behind the last one it sent is edited, while the step still prints
/// (no new record comes to show the break where the journal goes on). Before, the stream
/// went on sending the step's live output until the engine's next record.
#[test]
fn a_stream_ends_when_a_record_it_already_sent_is_edited_while_output_flows() {
    let s = Scratch::new(
        r#"[runbook]
name = "prints-steadily"

[steps.migrate]
run = "while [ ! -f go ]; do echo progress; sleep 0.1; done"
"#,
    );
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    let run = started(&s, "migrate");
    let c = Console::start(s.path(), &s.state(), &[]);
    let mut stream = Stream::open(&c, &format!("/runs/{run}/events"), None);
    assert_eq!(stream.status, 200);
    stream.timeout(Duration::from_secs(20));
    stream.until(|e| e.event == "live");
    let sql = "DROP TRIGGER IF EXISTS events_no_update; UPDATE events SET body = replace(body, 'prints-steadily', 'prints-quietly') WHERE seq = 1;";
    let out = std::process::Command::new("sqlite3").arg(s.state()).arg(sql).output().expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Bounded: the step prints ten lines a second, so events keep coming until the end.
    let t0 = Instant::now();
    let mut after = Vec::new();
    let ended = loop {
        match stream.next() {
            Some(e) if e.event == "end" => break Some(e),
            Some(e) => after.push(e),
            None => break None,
        }
        if t0.elapsed() > Duration::from_secs(60) {
            break None;
        }
    };
    std::fs::write(s.path().join("go"), "").expect("go");
    let _ = engine.wait();
    let ended =
        ended.unwrap_or_else(|| panic!("no end after the edit; {} events sent after it", after.len()));
    assert!(ended.data.contains("does not verify"), "{ended:?}");
    // Nothing of the journal's records was sent after the edit (the step never ended).
    assert!(after.iter().all(|e| e.event == "live"), "{after:?}");
}
