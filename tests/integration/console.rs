//! The web console (`runbook serve`, issue 16): the real binary serving on a free loopback
//! port, real runs made with `runbook run` in a temp SQLite store (and one PostgreSQL
//! cluster), spoken to with plain HTTP/1.1 over a TCP socket (so that the tests choose
//! every byte: the `Host` header, broken escapes, methods).

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Output, Scratch, bin, ok, run_in_with_env};

/// A console started with `runbook serve --listen 127.0.0.1:0`.
struct Console {
    child: Option<Child>,
    port: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// One HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Console {
    /// `runbook serve --listen 127.0.0.1:0 --state STATE [EXTRA]` in `dir`.
    fn start(dir: &Path, state: &str, extra: &[&str]) -> Console {
        Console::start_at(dir, "127.0.0.1:0", state, extra)
    }

    /// [`Console::start`] with extra environment variables (secrets the runbooks read).
    fn start_with_env(dir: &Path, state: &str, extra: &[&str], env: &[(&str, &str)]) -> Console {
        Console::spawn(dir, "127.0.0.1:0", state, extra, env)
    }

    fn start_at(dir: &Path, listen: &str, state: &str, extra: &[&str]) -> Console {
        Console::spawn(dir, listen, state, extra, &[])
    }

    fn spawn(dir: &Path, listen: &str, state: &str, extra: &[&str], env: &[(&str, &str)]) -> Console {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", listen, "--state", state])
            .args(extra)
            .envs(env.iter().copied())
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_STATE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runbook serve starts");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read stdout");
        let port = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no `listening on` line: {line:?}; stderr: {}",
                    stderr.lock().map(|s| s.clone()).unwrap_or_default()
                )
            });
        Console { child: Some(child), port, stderr }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// GET `path` with the console's own Host.
    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, Some(&self.host()))
    }

    /// One request, written by hand: `host` None sends no Host header.
    fn request(&self, method: &str, path: &str, host: Option<&str>) -> Resp {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
        let body = if matches!(method, "POST" | "PUT" | "PATCH") { "a=1" } else { "" };
        let req = format!(
            "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read the response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {text:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        Resp { status, headers, body: body.to_string() }
    }

    /// SIGTERM or SIGINT, then the exit code and what it printed on stderr.
    fn stop(mut self, signal: nix::sys::signal::Signal) -> (i32, String) {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).expect("signal");
        let t0 = std::time::Instant::now();
        let code = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s.code().unwrap_or(-1);
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "runbook serve did not stop on {signal}");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        (code, self.stderr.lock().map(|s| s.clone()).unwrap_or_default())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The text a person reads on a page: each tag a space, entities decoded, each line's
/// spaces folded, blank lines dropped.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `files` (name, text) written into `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write a file");
    }
}

/// Run ids, times and hashes replaced by stable words.
fn normalised(text: &str, run: &str) -> String {
    let t = text.replace(run, "RUN_ID");
    let times = regex_lite(
        &t,
        |w| w.len() >= 20 && w.starts_with("20") && w.contains('T') && w.ends_with('Z'),
        "TIME",
    );
    let hashed = regex_lite(&times, |w| w.len() >= 12 && w.chars().all(|c| c.is_ascii_hexdigit()), "HASH");
    // The timeline's durations (p16-live): `167ms`, `1.5s`, `2m`, `05s`.
    regex_lite(
        &hashed,
        |w| {
            let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            matches!(&w[digits.len()..], "ms" | "s" | "m" | "h")
                && !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        },
        "DURATION",
    )
}

/// Each whitespace- or punctuation-separated word for which `hit` holds, replaced.
fn regex_lite(text: &str, hit: impl Fn(&str) -> bool, by: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if hit(word) {
            out.push_str(by);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | 'T' | 'Z') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

const THREE_STEPS: &str = r#"[runbook]
name = "console-demo"

[params.target]
type = "string"
default = "eu-1"

[steps.prepare]
title = "Prepare {{ params.target }}"
run = 'echo "preparing {{ params.target }}"'

[steps.flaky]
run = 'test -f tried || { touch tried; echo "cannot reach the thing" >&2; exit 3; }; echo reached'
retry = { attempts = 2, delay = "10ms" }
needs = ["prepare"]

[steps.finish]
run = 'echo done'
needs = ["flaky"]
"#;

/// The steps `runbook show` prints: (step, state, attempts).
fn show_steps(s: &Scratch, run: &str) -> Vec<(String, String, u64)> {
    let out = s.cmd(&["show", run], &[]);
    ok(&out, 0);
    out.stdout
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [step, state, "attempts", n, ..] => {
                    Some((step.to_string(), state.to_string(), n.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn the_pages_show_what_show_and_audit_verify_say() {
    let s = Scratch::new(THREE_STEPS);
    ok(&s.run(&["--yes"], &[("RUNBOOK_OPERATOR", "tester")]), 0);
    let run = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);

    let runs = c.get("/runs");
    assert_eq!(runs.status, 200, "{}", runs.body);
    assert!(runs.body.contains(&format!("href=\"/runs/{run}\"")), "{}", runs.body);
    assert_eq!(runs.header("content-type"), Some("text/html; charset=utf-8"));
    insta::assert_snapshot!("console_runs_page", normalised(&text_of(&runs.body), &run));

    // The steps' states and attempts: the words and numbers `runbook show` prints.
    let shown = show_steps(&s, &run);
    assert_eq!(shown.len(), 3, "{shown:?}");
    let api = c.get(&format!("/api/runs/{run}"));
    assert_eq!(api.status, 200, "{}", api.body);
    let json: serde_json::Value = serde_json::from_str(&api.body).expect("JSON");
    let served: Vec<(String, String, u64)> = json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|st| {
            (
                st["step"].as_str().unwrap_or_default().to_string(),
                st["status"].as_str().unwrap_or_default().to_string(),
                st["attempts"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(served, shown);
    let show = s.cmd(&["show", &run], &[]).stdout;
    let status = show.lines().find_map(|l| l.trim().strip_prefix("status")).map(str::trim).expect("status");
    assert_eq!(json["status"], status);

    // The journal's verdict and head hash: what `audit verify` prints.
    let verify = s.cmd(&["audit", "verify", &run], &[]);
    ok(&verify, 0);
    let head = verify.stdout.trim().rsplit(' ').next().expect("hash").to_string();
    assert_eq!(json["journal"]["head_hash"], head.as_str());
    assert_eq!(json["journal"]["intact"], true);

    let page = c.get(&format!("/runs/{run}"));
    assert_eq!(page.status, 200, "{}", page.body);
    let text = text_of(&page.body);
    assert!(
        text.contains(&format!("audit verify: ok, {} records, last hash {head}", json["journal"]["records"])),
        "{text}"
    );
    for (step, state, attempts) in &shown {
        assert!(
            page.body.contains(&format!("<td class=\"state\">{state}</td><td>{attempts}</td>")),
            "{step}: {state} {attempts} not on the page"
        );
    }
    // The DAG: one box per step, one line per need.
    assert_eq!(page.body.matches("<g class=\"node s-").count(), 3);
    assert_eq!(page.body.matches("<line class=\"edge\"").count(), 2);
    // Output from the store's kept logs (the failing step's stderr too).
    assert!(text.contains("preparing eu-1") && text.contains("cannot reach the thing"), "{text}");
    // A step's title as the plan renders it, with the run's parameters.
    assert!(text.contains("prepare Prepare eu-1 succeeded"), "{text}");
    insta::assert_snapshot!("console_run_page", normalised(&text, &run));

    // A second run links back to the first.
    ok(&s.run(&["--yes"], &[]), 0);
    let second = s.latest_run();
    let page = c.get(&format!("/runs/{second}"));
    assert!(page.body.contains(&format!("href=\"/runs/{run}\"")), "no link to the previous run");
    let (code, _) = c.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(code, 0);
}

#[test]
fn every_response_carries_the_security_headers() {
    let s = Scratch::new(THREE_STEPS);
    ok(&s.run(&["--yes"], &[]), 0);
    let run = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let host = c.host();
    let cases: Vec<(&str, String, Option<&str>, u16)> = vec![
        ("GET", "/".into(), Some(&host), 303),
        ("GET", "/runs".into(), Some(&host), 200),
        ("GET", format!("/runs/{run}"), Some(&host), 200),
        ("GET", "/runbooks".into(), Some(&host), 200),
        ("GET", "/runbooks/r".into(), Some(&host), 200),
        ("GET", "/api/runs".into(), Some(&host), 200),
        ("GET", format!("/api/runs/{run}"), Some(&host), 200),
        ("GET", "/assets/console.css".into(), Some(&host), 200),
        ("HEAD", "/runs".into(), Some(&host), 200),
        ("GET", "/nope".into(), Some(&host), 404),
        ("GET", "/runs/20990101T000000Z-00000000".into(), Some(&host), 404),
        ("GET", "/runs?page=0".into(), Some(&host), 400),
        ("POST", "/runs".into(), Some(&host), 405),
        ("GET", "/runs".into(), Some("evil.example"), 421),
    ];
    for (method, path, host, status) in cases {
        let r = c.request(method, &path, host);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        let csp = r.header("content-security-policy").unwrap_or_default();
        for part in ["default-src 'none'", "style-src 'self'", "script-src 'self'", "frame-ancestors 'none'"]
        {
            assert!(csp.contains(part), "{method} {path}: CSP {csp:?} lacks {part}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{method} {path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{method} {path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{method} {path}");
    }
    assert_eq!(c.get("/").header("location"), Some("/runs"));
    // No inline style or script anywhere (the CSP would block it): the pages need none.
    for path in ["/runs".to_string(), format!("/runs/{run}"), "/runbooks".into(), "/runbooks/r".into()] {
        let body = c.get(&path).body;
        // A script only as a file of the console's own, empty element (p16-live's live.js).
        let scripts = body.matches("<script").count();
        let own = body.matches("<script src=\"/assets/live.js\" defer></script>").count();
        assert_eq!(scripts, own, "{path}: an inline script");
        assert!(!body.contains(" style=") && !body.contains("<style"), "{path}");
    }
}

#[test]
fn writes_are_refused_on_every_path() {
    let s = Scratch::new(THREE_STEPS);
    ok(&s.run(&["--yes"], &[]), 0);
    let run = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let host = c.host();
    let paths = [
        "/".to_string(),
        "/runs".into(),
        format!("/runs/{run}"),
        "/runbooks".into(),
        "/runbooks/r".into(),
        "/api/runs".into(),
        format!("/api/runs/{run}"),
        "/assets/console.css".into(),
        "/nope".into(),
        format!("/runs/{run}/approve"),
    ];
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for path in &paths {
            let r = c.request(method, path, Some(&host));
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
            assert!(text_of(&r.body).contains("read-only console"), "{method} {path}: {}", r.body);
        }
    }
    // Nothing was written: the journal is as the run left it.
    let before = s.audit(&run);
    assert_eq!(s.audit(&run), before);
}

#[test]
fn a_host_that_is_not_the_console_is_refused() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &[]);
    let port = c.port;
    for good in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("LocalHost:{port}")] {
        assert_eq!(c.request("GET", "/runs", Some(&good)).status, 200, "{good}");
    }
    let bad = [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "localhost".into(),
        "127.0.0.1".into(),
        String::new(),
    ];
    for host in &bad {
        let r = c.request("GET", "/runs", Some(host));
        assert_eq!(r.status, 421, "Host {host:?}: {}", r.body);
        assert!(text_of(&r.body).contains("DNS rebinding"), "{}", r.body);
    }
    // No Host at all (HTTP/1.1 requires one).
    assert_ne!(c.request("GET", "/runs", None).status, 200);
}

#[test]
fn garbage_in_the_path_or_query_is_a_400_or_404_and_the_console_goes_on() {
    let s = Scratch::new(THREE_STEPS);
    ok(&s.run(&["--yes"], &[]), 0);
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let long = format!("/runs/{}", "a".repeat(5000));
    let long_query = format!("/runs?runbook={}", "x".repeat(5000));
    let corpus: Vec<(&str, u16)> = vec![
        ("/runs/%FF%FE", 400),
        ("/runs/..", 404),
        ("/runs/..%2f..%2fetc%2fpasswd", 404),
        ("/runs/%00", 404),
        ("/runs/-rf", 404),
        ("/runs/a%20b", 404),
        ("/runs/%3Cscript%3E", 404),
        ("/api/runs/%FF", 400),
        ("/api/runs/..", 404),
        ("/runbooks/..", 404),
        ("/runbooks/..%2fr", 404),
        ("/runbooks/%2e%2e%2fetc%2fpasswd", 404),
        ("/runbooks/%FF", 400),
        ("/runbooks/r.toml", 404),
        ("/runs?page=", 200),
        ("/runs?page=0", 400),
        ("/runs?page=-1", 400),
        ("/runs?page=99999999999999999999999999", 400),
        ("/runs?page=1e3", 400),
        ("/runs?page=%", 400),
        ("/runs?status=%FF", 400),
        ("/runs?status=%zz", 400),
        ("/runs?nope=1", 400),
        ("/runs?page=1&page=2", 400),
        ("/runs?date=yesterday", 400),
        ("/runs?date=2026-02-31T", 400),
        ("/runs?date=2026-13-01", 400),
        ("/runs?&&&", 200),
        ("/runs?status=%3Cscript%3E", 200),
        ("/api/runs?page=0", 400),
        ("/runs/", 404),
        ("//runs", 404),
        ("/runs/a/b", 404),
        ("/%FF", 404),
        ("/assets/../Cargo.toml", 404),
        ("/assets/console.css?x=%FF", 200),
    ];
    for (path, status) in &corpus {
        let r = c.get(path);
        assert_eq!(r.status, *status, "{path}: {}", r.body);
        assert!(!r.body.contains("<script>"), "{path} reflects a script");
    }
    for path in [long.as_str(), long_query.as_str()] {
        let r = c.get(path);
        assert!(matches!(r.status, 400 | 404 | 414 | 431), "{}: {}", r.status, r.body);
    }
    // Still serving, and the 400 says what is wrong.
    assert_eq!(c.get("/runs").status, 200);
    assert!(text_of(&c.get("/runs?page=0").body).contains("`page` is a number from 1 to"));
}

#[test]
fn hostile_text_from_a_runbook_or_a_journal_is_shown_as_text() {
    let hostile = r#""><img src=x onerror=alert(1)><script>alert('x')</script>{{ 7*7 }}"#;
    let runbook = r#"[runbook]
name = "hostile"

[params.note]
type = "string"

[steps.show_it]
title = "Title </title><script>alert(2)</script>"
run = '''
printf '%s\n' {{ params.note }}
echo '<iframe src="javascript:alert(3)"></iframe>' >&2
echo "note=<b>{{ params.note }}</b>" >> "$RUNBOOK_OUTPUT"
'''
outputs = ["note"]
"#;
    let s = Scratch::new(runbook);
    ok(&s.run(&["--yes", "-p", &format!("note={hostile}")], &[]), 0);
    let run = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let page = c.get(&format!("/runs/{run}"));
    assert_eq!(page.status, 200, "{}", page.body);
    for raw in ["<script>alert", "<img src=x", "<iframe", "</title><script>", "<b>\"&gt;"] {
        assert!(!page.body.contains(raw), "{raw} reached the page unescaped");
    }
    let text = text_of(&page.body);
    // Shown as text, braces and all (never evaluated: no `49`).
    assert!(text.contains(hostile), "the parameter is not shown as text:\n{text}");
    assert!(text.contains("<iframe src=\"javascript:alert(3)\"></iframe>"), "{text}");
    assert!(text.contains("Title </title><script>alert(2)</script>"), "{text}");
    assert!(!text.contains("{{ 7*7 }}49") && !text.contains(">49<"), "{text}");
    // The runs list and the runbooks pages too.
    for path in ["/runs", "/runbooks", "/runbooks/r", "/api/runs", &format!("/api/runs/{run}")] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains("<script>alert") && !r.body.contains("<img src=x"), "{path}");
    }
    // A hostile runbook name in the list: escaped, and the query that filters on it too.
    let r = c.get("/runs?runbook=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("<script>alert"), "{}", r.body);
}

#[test]
fn a_store_that_cannot_be_read_is_a_503_and_the_console_goes_on() {
    let s = Scratch::new(THREE_STEPS);
    std::fs::create_dir_all(s.path().join("state")).expect("mkdir");
    std::fs::write(s.state(), b"this is not a database, it is a text file of 64 bytes or more....")
        .expect("write");
    let c = Console::start(s.path(), &s.state(), &[]);
    for path in ["/runs", "/api/runs", "/runs/20261206T120000Z-0a1b2c3d"] {
        let r = c.get(path);
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert!(text_of(&r.body).contains("state store unavailable"), "{}", r.body);
    }
    // The console goes on: its assets, and the runs once the store is back.
    assert_eq!(c.get("/assets/console.css").status, 200);
    std::fs::remove_file(s.state()).expect("rm");
    assert_eq!(c.get("/runs").status, 200, "a missing SQLite store is no runs yet");
    ok(&s.run(&["--yes"], &[]), 0);
    let run = s.latest_run();
    let r = c.get("/runs");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&run));
    // Nothing was created by the console while the store was missing.
    let (code, _) = c.stop(nix::sys::signal::Signal::SIGINT);
    assert_eq!(code, 0);
}

#[test]
fn a_missing_store_is_no_runs_and_is_not_created() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &[]);
    let r = c.get("/runs");
    assert_eq!(r.status, 200);
    assert!(text_of(&r.body).contains("No runs yet"), "{}", r.body);
    assert_eq!(c.get("/runs/20261206T120000Z-0a1b2c3d").status, 404);
    assert!(!Path::new(&s.state()).exists(), "a reader created the store");
}

#[test]
fn sigterm_and_ctrl_c_stop_it_with_exit_0() {
    for signal in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
        let s = Scratch::new(THREE_STEPS);
        let c = Console::start(s.path(), &s.state(), &[]);
        assert_eq!(c.get("/runs").status, 200);
        let (code, stderr) = c.stop(signal);
        assert_eq!(code, 0, "{signal}: {stderr}");
        assert!(stderr.contains("stopped"), "{stderr}");
    }
}

#[test]
fn a_listen_address_off_loopback_is_warned_about() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start_at(s.path(), "0.0.0.0:0", &s.state(), &["--host", "console.example"]);
    // Off loopback too the Host must name the console (`--host`): DNS rebinding is refused.
    let port = c.port;
    assert_eq!(c.request("GET", "/runs", Some(&format!("console.example:{port}"))).status, 200);
    assert_eq!(c.request("GET", "/runs", Some(&format!("rebind.example:{port}"))).status, 421);
    let (code, stderr) = c.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(code, 0);
    insta::assert_snapshot!("console_listen_warning", stderr.trim());
    // On loopback, no warning.
    let c = Console::start(s.path(), &s.state(), &[]);
    let (_, stderr) = c.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn a_bad_listen_address_or_runbooks_folder_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_in_with_env(dir.path(), &["serve", "--listen", "localhost"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run_in_with_env(dir.path(), &["serve", "--listen", "127.0.0.1:0", "--runbooks", "nope"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!("console_runbooks_not_a_folder", out.stderr.trim());
    // A port in use: said, exit not 0.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr").to_string();
    let state = dir.path().join("s.db").display().to_string();
    let out = run_in_with_env(dir.path(), &["serve", "--listen", &addr, "--state", &state], &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("cannot listen on {addr}")), "{}", out.stderr);
}

#[test]
fn runs_are_filtered_and_paged() {
    // 51 runs (one more than a page): a runbook whose step is skipped runs no process.
    let s = Scratch::new(
        "[runbook]\nname = \"quick\"\n[params.fail]\ntype = \"boolean\"\ndefault = false\n\
         [steps.maybe]\nrun = \"exit 1\"\nwhen = \"params.fail\"\n",
    );
    for _ in 0..50 {
        ok(&s.run(&["--yes"], &[]), 0);
    }
    let out = s.run(&["--yes", "-p", "fail=true"], &[]);
    assert_ne!(out.code, 0);
    let failed = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &[]);
    let first = c.get("/runs");
    assert_eq!(first.status, 200);
    let text = text_of(&first.body);
    assert!(text.contains("51 run(s), page 1 of 2 (50 a page)"), "{text}");
    assert!(first.body.contains("rel=\"next\" href=\"&#x2f;runs?page=2\""), "{}", first.body);
    // Newest first: the failed run is on the first page, first row.
    let first_link = first.body.find("href=\"/runs/2").expect("a run link");
    assert!(first.body[first_link..].starts_with(&format!("href=\"/runs/{failed}\"")));
    let second = c.get("/runs?page=2");
    assert!(text_of(&second.body).contains("page 2 of 2"));
    assert_eq!(second.body.matches("href=\"/runs/2").count(), 1);
    // Counts and filters.
    let api: serde_json::Value = serde_json::from_str(&c.get("/api/runs?status=failed").body).expect("JSON");
    assert_eq!(api["total"], 1);
    assert_eq!(api["runs"][0]["run_id"], failed.as_str());
    assert_eq!(api["counts"]["failed_today"], 1);
    assert_eq!(api["counts"]["running"], 0);
    let none: serde_json::Value = serde_json::from_str(&c.get("/api/runs?runbook=other").body).expect("JSON");
    assert_eq!(none["total"], 0);
    let today = &failed[..8];
    let day = format!("{}-{}-{}", &today[..4], &today[4..6], &today[6..8]);
    let dated: serde_json::Value =
        serde_json::from_str(&c.get(&format!("/api/runs?date={day}")).body).expect("JSON");
    assert_eq!(dated["total"], 51);
    let page_past: serde_json::Value = serde_json::from_str(&c.get("/api/runs?page=9").body).expect("JSON");
    assert_eq!(page_past["runs"].as_array().map(Vec::len), Some(0));
}

#[test]
fn the_runbooks_page_shows_check_results_and_the_plan() {
    let s = Scratch::new(THREE_STEPS);
    write_files(
        s.path(),
        &[
            ("broken.toml", "[runbook]\nname = \"broken\"\n[steps.a]\nrun = 'true'\nneeds = [\"nope\"]\n"),
            (
                "needs-param.toml",
                "[runbook]\nname = \"np\"\n[params.x]\ntype = \"string\"\n[steps.a]\nrun = 'echo {{ params.x }}'\n",
            ),
            ("notes.txt", "not a runbook"),
        ],
    );
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let list = c.get("/runbooks");
    assert_eq!(list.status, 200);
    let text = text_of(&list.body);
    assert!(text.contains("r console-demo valid"), "{text}");
    assert!(text.contains("broken broken invalid") || text.contains("broken - invalid"), "{text}");
    assert!(!text.contains("notes"), "{text}");
    insta::assert_snapshot!("console_runbooks_page", text);
    let check = crate::support::run_in(s.path(), &["check", "broken.toml", "--format", "json"]);
    let code = serde_json::from_str::<serde_json::Value>(&check.stdout).expect("JSON")[0]["code"]
        .as_str()
        .expect("code")
        .to_string();
    let broken = text_of(&c.get("/runbooks/broken").body);
    assert!(broken.contains("invalid") && broken.contains(&code), "{broken}");
    // The plan is `plan --format html`'s document, as markup (its style sheet linked), not
    // escaped a second time.
    let page = c.get("/runbooks/r").body;
    let html = crate::support::run_in(s.path(), &["plan", "./r.toml", "--format", "html"]);
    ok(&html, 0);
    let open = "<main class=\"runbook-review\">\n";
    let start = html.stdout.find(open).expect("the document") + open.len();
    let end = html.stdout.rfind("</main>").expect("its end");
    let document = &html.stdout[start..end];
    assert!(
        page.contains(&format!("<section class=\"runbook-review\">\n{document}</section>")),
        "the page's plan is not `plan --format html`'s document:\n{page}"
    );
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/assets/review.css\">"), "{page}");
    let css = c.get("/assets/review.css");
    assert_eq!(css.status, 200);
    assert!(html.stdout.contains(&css.body), "the style sheet is the page's");
    let np = text_of(&c.get("/runbooks/needs-param").body);
    assert!(np.contains("No plan") && np.contains("x"), "{np}");
    // Without --runbooks: said.
    let bare = Console::start(s.path(), &s.state(), &[]);
    assert!(text_of(&bare.get("/runbooks").body).contains("runbook serve --runbooks DIR"));
    assert_eq!(bare.get("/runbooks/r").status, 404);
}

#[test]
fn a_run_page_of_a_tampered_journal_shows_the_verdict_only() {
    let s = Scratch::new(THREE_STEPS);
    ok(&s.run(&["--yes"], &[]), 0);
    let run = s.latest_run();
    let sql = format!(
        "DROP TRIGGER events_no_update; UPDATE events SET body = replace(body, 'preparing', 'PREPARING') WHERE run_id = '{run}'; \
         UPDATE events SET body = replace(body, '\"succeeded\"', '\"failed\"') WHERE run_id = '{run}' AND kind = 'run_finished';"
    );
    let out = Command::new("sqlite3").arg(s.state()).arg(&sql).output().expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verify = s.cmd(&["audit", "verify", &run], &[]);
    assert_ne!(verify.code, 0);
    let c = Console::start(s.path(), &s.state(), &[]);
    let page = c.get(&format!("/runs/{run}"));
    assert_eq!(page.status, 200);
    let text = text_of(&page.body);
    assert!(text.contains("audit verify: BROKEN"), "{text}");
    let finding =
        verify.stdout.lines().next().and_then(|l| l.split_once(": ")).map(|(_, f)| f).expect("finding");
    assert!(text.contains(finding), "the page's findings are not audit verify's ({finding}):\n{text}");
    assert!(!page.body.contains("class=\"steps\""), "steps of a broken journal were presented");
    for fact in ["Runbook console-demo", "Operator ", "Status ", "Parameters"] {
        assert!(!text.contains(fact), "`{fact}` of a broken journal was presented:\n{text}");
    }
    let api: serde_json::Value =
        serde_json::from_str(&c.get(&format!("/api/runs/{run}")).body).expect("JSON");
    assert_eq!(api["journal"]["intact"], false);
    assert_eq!(api["steps"].as_array().map(Vec::len), Some(0));
}

/// A finished run's page is kept by its journal's head hash (s19-C), and a kept page is
/// never the answer once the store is edited: an edited record (same head hash), an edited
/// output row, the last record deleted (another head hash) each give the verdict, as
/// `audit verify` does. The header `x-runbook-page: kept` says a page came from the cache.
#[test]
fn a_kept_page_of_a_finished_run_gives_way_to_the_verdict_when_its_store_is_edited() {
    let edits: [(&str, &str); 3] = [
        (
            "an edited record (its hash column, the head hash, unchanged)",
            "DROP TRIGGER events_no_update; UPDATE events SET body = replace(body, '\"succeeded\"', '\"failed\"') WHERE run_id = '{run}' AND kind = 'run_finished';",
        ),
        (
            "an edited output",
            "UPDATE step_logs SET body = replace(body, 'done', 'DONE') WHERE run_id = '{run}';",
        ),
        (
            "the last record deleted",
            "DROP TRIGGER events_no_delete; DELETE FROM events WHERE run_id = '{run}' AND seq = (SELECT MAX(seq) FROM events WHERE run_id = '{run}');",
        ),
    ];
    for (what, sql) in edits {
        let s = Scratch::new(THREE_STEPS);
        ok(&s.run(&["--yes"], &[]), 0);
        let run = s.latest_run();
        let c = Console::start(s.path(), &s.state(), &[]);
        let path = format!("/runs/{run}");
        let first = c.get(&path);
        assert_eq!(first.status, 200);
        assert!(text_of(&first.body).contains("audit verify: ok"), "{what}: {}", first.body);
        assert_eq!(first.header("x-runbook-page"), None, "{what}: the first page was kept already");
        let again = c.get(&path);
        assert_eq!(
            again.header("x-runbook-page"),
            Some("kept"),
            "{what}: the finished run's page was not kept"
        );
        assert_eq!(again.body, first.body, "{what}");
        let sql = sql.replace("{run}", &run);
        let out = Command::new("sqlite3").arg(s.state()).arg(&sql).output().expect("sqlite3");
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        assert_ne!(s.cmd(&["audit", "verify", &run], &[]).code, 0, "{what}: audit verify saw nothing");
        let after = c.get(&path);
        assert_eq!(after.status, 200);
        let text = text_of(&after.body);
        assert!(text.contains("audit verify: BROKEN"), "{what}: the kept page was served:\n{text}");
        assert_eq!(after.header("x-runbook-page"), None, "{what}");
        assert!(!after.body.contains("class=\"steps\""), "{what}: steps of a broken journal were presented");
    }
}

#[test]
fn a_5000_step_run_page_renders_and_grows_linearly() {
    fn steps_runbook(n: usize) -> String {
        let mut rb = String::from("[runbook]\nname = \"big\"\n");
        for i in 0..n {
            // Skipped (no process), chained: the graph has n waves and n - 1 edges.
            let needs = if i == 0 { String::new() } else { format!("needs = [\"s{}\"]\n", i - 1) };
            rb.push_str(&format!("[steps.s{i}]\nrun = \"true\"\nwhen = \"false\"\n{needs}"));
        }
        rb
    }
    let mut sizes = Vec::new();
    for n in [500usize, 5000] {
        let s = Scratch::new(&steps_runbook(n));
        let out = crate::support::run_limited(
            s.path(),
            &["run", "r.toml", "--yes", "--state", &s.state()],
            &[],
            Duration::from_secs(600),
        );
        ok(&out, 0);
        let run = s.latest_run();
        let c = Console::start(s.path(), &s.state(), &[]);
        let page = c.get(&format!("/runs/{run}"));
        assert_eq!(page.status, 200);
        assert_eq!(page.body.matches("<tr class=\"s-skipped\">").count(), n);
        assert_eq!(page.body.matches("<g class=\"node s-skipped\">").count(), n);
        assert_eq!(page.body.matches("<line class=\"edge\"").count(), n - 1);
        // A finished run's page is kept (s19-C): the same bytes, from the cache.
        let again = c.get(&format!("/runs/{run}"));
        assert_eq!((again.header("x-runbook-page"), again.body.len()), (Some("kept"), page.body.len()));
        sizes.push(page.body.len());
        if n == 500 {
            // More requests at once than pages are built at once (8): each waits its turn,
            // and every one gets the whole page.
            let len = page.body.len();
            let c = &c;
            let run = &run;
            std::thread::scope(|scope| {
                let handles: Vec<_> =
                    (0..20).map(|_| scope.spawn(move || c.get(&format!("/runs/{run}")))).collect();
                for h in handles {
                    let r = h.join().expect("a request thread");
                    assert_eq!((r.status, r.body.len()), (200, len));
                }
            });
        }
    }
    // Ten times the steps, about ten times the bytes (no quadratic part).
    let ratio = sizes[1] as f64 / sizes[0] as f64;
    eprintln!("run page bytes for 500 and 5000 steps: {sizes:?} (ratio {ratio:.2})");
    assert!((8.0..12.5).contains(&ratio), "sizes {sizes:?}: ratio {ratio}");
}

/// The sentinel secrets of `secrets.rs`, in every encoding its test looks for.
#[test]
fn no_secret_reaches_a_page() {
    let runbook = r#"[runbook]
name = "leaky"

[secrets.DB_URL]
env = "SENTINEL_DB_URL"

[params.region]
type = "string"
default = "eu"

[steps.echo]
run = '''
echo "db=$DB_URL"
printf '%s\n' "$DB_URL" | base64
echo "leak=$DB_URL" >> "$RUNBOOK_OUTPUT"
echo "cannot connect to $DB_URL" >&2
exit 3
'''
env = { DB_URL = "{{ secrets.DB_URL }}" }
outputs = ["leak"]
retry = { attempts = 2, delay = "10ms" }
"#;
    let s = Scratch::new(runbook);
    let env = [("SENTINEL_DB_URL", crate::secrets::DB_URL)];
    let out = s.run(&["--yes"], &env);
    assert_ne!(out.code, 0);
    let run = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    for path in [
        "/runs".to_string(),
        format!("/runs/{run}"),
        "/api/runs".into(),
        format!("/api/runs/{run}"),
        "/runbooks".into(),
        "/runbooks/r".into(),
    ] {
        let r = c.get(&path);
        assert_eq!(r.status, 200, "{path}");
        crate::secrets::assert_clean(&path, &r.body);
        crate::secrets::assert_clean(&path, &text_of(&r.body));
    }
    // The step's output is there, redacted.
    assert!(text_of(&c.get(&format!("/runs/{run}")).body).contains("db="));
}

#[test]
fn a_postgresql_store_is_served_and_its_loss_is_a_503() {
    use runbook_sandbox::peers::Postgres;
    let pg = Postgres::start();
    let password = "pw-console-never-shown";
    let url = pg.url("postgres").replacen("postgres@", &format!("postgres:{password}@"), 1);
    let s = Scratch::new(THREE_STEPS);
    let local = s.path().join("host").display().to_string();
    let env = [("XDG_STATE_HOME", local.as_str())];
    let team = |args: &[&str]| -> Output {
        let mut all = args.to_vec();
        all.extend(["--state", &url]);
        run_in_with_env(s.path(), &all, &env)
    };
    ok(&team(&["state", "migrate"]), 0);
    ok(&team(&["run", "r.toml", "--yes"]), 0);
    let listed: serde_json::Value =
        serde_json::from_str(&team(&["runs", "--format", "json"]).stdout).expect("JSON");
    let run = listed[0]["run_id"].as_str().expect("a run").to_string();
    let c = Console::start(s.path(), &url, &[]);
    let api: serde_json::Value =
        serde_json::from_str(&c.get(&format!("/api/runs/{run}")).body).expect("JSON");
    assert_eq!(api["status"], "succeeded");
    let show = team(&["show", &run]);
    ok(&show, 0);
    for st in api["steps"].as_array().expect("steps") {
        let line = format!(
            "{} {} attempts {}",
            st["step"].as_str().unwrap_or_default(),
            st["status"].as_str().unwrap_or_default(),
            st["attempts"]
        );
        let shown = show
            .stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").starts_with(&line));
        assert!(shown, "{line} not in show:\n{}", show.stdout);
    }
    assert_eq!(c.get("/runs").status, 200);
    // The cluster goes away: 503, the password never shown, the console still answers.
    drop(pg);
    let r = c.get("/runs");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!r.body.contains(password), "{}", r.body);
    assert_eq!(c.get(&format!("/runs/{run}")).status, 503);
    assert_eq!(c.get("/assets/console.css").status, 200);
    let (code, stderr) = c.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(code, 0);
    assert!(!stderr.contains(password));
}

#[test]
fn a_submitted_run_that_has_not_started_has_a_page() {
    let s = Scratch::new(THREE_STEPS);
    let out = s.cmd(&["submit", "r.toml", "--yes"], &[("RUNBOOK_OPERATOR", "sam")]);
    ok(&out, 0);
    let id = out.stdout.split_whitespace().find(|w| w.starts_with("20")).expect("the run id").to_string();
    let c = Console::start(s.path(), &s.state(), &[]);
    let list = c.get("/runs");
    assert!(list.body.contains(&format!("href=\"/runs/{id}\"")), "{}", list.body);
    // The list links to it: its page says where it stands (not a 404).
    let page = c.get(&format!("/runs/{id}"));
    assert_eq!(page.status, 200, "{}", page.body);
    let text = text_of(&page.body);
    assert!(text.contains("Status queued") && text.contains("Submitted by sam"), "{text}");
    let api: serde_json::Value = serde_json::from_str(&c.get(&format!("/api/runs/{id}")).body).expect("JSON");
    assert_eq!(api["status"], "queued");
    ok(&s.cmd(&["cancel", &id, "--reason", "not today <b>"], &[]), 0);
    let text = text_of(&c.get(&format!("/runs/{id}")).body);
    assert!(text.contains("Status cancelled"), "{text}");
}

/// Every `href` of a page (same site), entities decoded, without its `#fragment`.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&#x2f;", "/").replace("&amp;", "&"))
        .map(|h| h.split('#').next().unwrap_or_default().to_string())
        .filter(|h| h.starts_with('/'))
        .collect()
}

/// The class of the queued-run 404: a page links only to pages. Every link of every page,
/// followed from `/runs` and `/runbooks` over a store with runs of every kind (succeeded,
/// failed, waiting for approval, queued, cancelled) and a folder with a broken runbook,
/// answers 200.
#[test]
fn every_link_on_every_page_leads_to_a_page() {
    let s = Scratch::new(THREE_STEPS);
    write_files(
        s.path(),
        &[
            ("broken.toml", "[runbook]\nname = \"broken\"\n[steps.a]\nrun = 'true'\nneeds = [\"b\"]\n"),
            (
                "gate.toml",
                "[runbook]\nname = \"gate\"\n[steps.ask]\napproval = { prompt = \"go?\" }\n[steps.after]\nrun = 'echo after'\nneeds = [\"ask\"]\n",
            ),
            ("fails.toml", "[runbook]\nname = \"fails\"\n[steps.a]\nrun = 'exit 2'\n"),
            // A file name that is markup, and one with a space, `%` and `&`: escaped, and
            // its link works.
            ("a\"><img src=x onerror=alert(9)>.toml", "[runbook]\nname = \"odd\"\n[steps.a]\nrun = 'true'\n"),
            ("100% sure & ready.toml", "[runbook]\nname = \"pct\"\n[steps.a]\nrun = 'true'\n"),
        ],
    );
    ok(&s.run(&["--yes"], &[]), 0);
    ok(&s.run(&["--yes"], &[]), 0);
    assert_ne!(s.cmd(&["run", "fails.toml", "--yes"], &[]).code, 0);
    let waiting = s.cmd(&["run", "gate.toml", "--yes"], &[]);
    assert_eq!(waiting.code, 4, "{}", waiting.stderr);
    let queued = s.cmd(&["submit", "r.toml", "--yes"], &[]);
    ok(&queued, 0);
    let cancelled = s.cmd(&["submit", "r.toml", "--yes"], &[]);
    ok(&cancelled, 0);
    let id = cancelled.stdout.split_whitespace().find(|w| w.starts_with("20")).expect("id").to_string();
    ok(&s.cmd(&["cancel", &id], &[]), 0);

    // An engine killed in the middle of a step: its run is "interrupted (engine gone)".
    std::fs::write(
        s.path().join("slow.toml"),
        "[runbook]\nname = \"slow\"\n[steps.wait]\nrun = 'touch started; sleep 60'\n",
    )
    .expect("write");
    let mut engine = s.spawn(&["run", "slow.toml", "--yes"]);
    s.wait_for("started", "");
    crate::support::kill9(engine.id());
    let _ = engine.wait();

    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let counts: serde_json::Value = serde_json::from_str(&c.get("/api/runs").body).expect("JSON");
    assert_eq!(counts["total"], 7, "{counts}");
    assert_eq!(counts["counts"]["waiting_for_approval"], 1, "{counts}");
    assert_eq!(counts["counts"]["failed_today"], 1, "{counts}");
    assert_eq!(counts["counts"]["needing_an_operator"], 1, "{counts}");
    assert_eq!(counts["counts"]["running"], 0, "{counts}");
    let gone: serde_json::Value =
        serde_json::from_str(&c.get("/api/runs?status=interrupted+%28engine+gone%29").body).expect("JSON");
    assert_eq!(gone["total"], 1, "{gone}");
    assert_eq!(gone["runs"][0]["runbook"], "slow");
    // Every run with a journal: its status and steps are what `runbook show` prints.
    for listed in counts["runs"].as_array().expect("runs") {
        let id = listed["run_id"].as_str().expect("id");
        if listed["events"] == 0 {
            continue;
        }
        let api: serde_json::Value =
            serde_json::from_str(&c.get(&format!("/api/runs/{id}")).body).expect("JSON");
        let show = s.cmd(&["show", id], &[]).stdout;
        let status =
            show.lines().find_map(|l| l.trim().strip_prefix("status")).map(str::trim).expect("status");
        // JSON keeps the journal's status, as `runs --format json` does; the pages say
        // what `show` and `runs` print.
        let gone = api["engine_gone"] == true;
        let journal_status = if gone { "running" } else { status };
        assert_eq!(api["status"], journal_status, "{id}: {show}");
        assert_eq!(listed["status"], journal_status, "{id}: the list says otherwise");
        assert_eq!(listed["engine_gone"], api["engine_gone"], "{id}");
        let page = text_of(&c.get(&format!("/runs/{id}")).body);
        assert!(page.contains(&format!("Status {status}")), "{id}: {page}");
        let runs = s.cmd(&["runs"], &[]).stdout;
        assert!(runs.lines().any(|l| l.starts_with(id) && l.contains(status)), "{runs}");
        let steps: Vec<(String, String, u64)> = api["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|st| {
                (
                    st["step"].as_str().unwrap_or_default().to_string(),
                    st["status"].as_str().unwrap_or_default().to_string(),
                    st["attempts"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(steps, show_steps(&s, id), "{id}");
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec!["/runs".to_string(), "/runbooks".to_string()];
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        assert!(seen.len() < 500, "too many pages");
        let r = c.get(&path);
        assert_eq!(r.status, 200, "{path} (linked) answers {}: {}", r.status, text_of(&r.body));
        assert!(!r.body.contains("<img src=x"), "{path} holds markup from a file name");
        if r.header("content-type").is_some_and(|t| t.starts_with("text/html")) {
            todo.extend(links(&r.body).into_iter().filter(|l| !seen.contains(l)));
        }
    }
    // Each run's page, each runbook's page, the style sheet were reached.
    assert!(seen.iter().filter(|p| p.starts_with("/runs/")).count() >= 7, "{seen:?}");
    assert!(seen.contains("/runbooks/broken") && seen.contains("/assets/console.css"), "{seen:?}");
    assert_eq!(seen.iter().filter(|p| p.starts_with("/runbooks/")).count(), 7, "{seen:?}");
}

/// A browser's idle connection, or a client that sent half a request and nothing more,
/// never keeps the console from stopping: SIGTERM ends it (exit 0) once the requests in
/// flight had a bounded grace.
#[test]
fn a_half_sent_request_or_an_idle_connection_does_not_hold_the_shutdown() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &[]);
    let mut half = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
    half.write_all(format!("GET /runs HTTP/1.1\r\nHost: {}\r\n", c.host()).as_bytes()).expect("write");
    let mut idle = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
    idle.write_all(format!("GET /runs HTTP/1.1\r\nHost: {}\r\n\r\n", c.host()).as_bytes()).expect("write");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).expect("a response");
    assert_eq!(&first, b"HTTP/1.1 200");
    // Both stay open while the console is told to stop (`stop` fails on a hang).
    let (code, stderr) = c.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(code, 0, "{stderr}");
    drop((half, idle));
}

/// What each error page says (the text a person reads), in one snapshot.
#[test]
fn the_error_pages_say_what_is_wrong() {
    let s = Scratch::new(THREE_STEPS);
    ok(&s.run(&["--yes"], &[]), 0);
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let host = c.host();
    let mut all = String::new();
    for (method, path, host) in [
        ("GET", "/nope", host.as_str()),
        ("GET", "/runs/20990101T000000Z-00000000", &host),
        ("GET", "/runs/..", &host),
        ("GET", "/runs/%FF", &host),
        ("GET", "/runbooks/nope", &host),
        ("GET", "/runs?page=0", &host),
        ("GET", "/runs?sort=asc", &host),
        ("GET", "/runs?date=06-12-2026", &host),
        ("GET", "/runs?status=%E0%A4", &host),
        ("POST", "/runs", &host),
        ("GET", "/runs", "evil.example"),
    ] {
        let r = c.request(method, path, Some(host));
        let body = text_of(&r.body).replace(&c.port.to_string(), "PORT");
        // The page's own text: from its heading on.
        let main = body
            .lines()
            .skip_while(|l| !l.starts_with(&r.status.to_string()) || l.contains(" · "))
            .collect::<Vec<_>>();
        all.push_str(&format!(
            "{method} {path} (Host {})\n{}\n\n",
            host.replace(&c.port.to_string(), "PORT"),
            main.join("\n")
        ));
    }
    let bad = Scratch::new(THREE_STEPS);
    std::fs::create_dir_all(bad.path().join("state")).expect("mkdir");
    std::fs::write(bad.state(), b"this is not a database, it is a text file of 64 bytes or more....")
        .expect("write");
    let b = Console::start(bad.path(), &bad.state(), &[]);
    let r = b.get("/runs");
    let body = text_of(&r.body).replace(&bad.state(), "STATE");
    let main = body.lines().skip_while(|l| !l.starts_with("503") || l.contains(" · ")).collect::<Vec<_>>();
    all.push_str(&format!("GET /runs (a store that is not a database)\n{}\n", main.join("\n")));
    insta::assert_snapshot!("console_error_pages", all);
}

/// A connection that says nothing (half a request, then silence) is closed by the console
/// after its idle time (30 s): such clients cannot pile up and take every file descriptor.
#[test]
fn a_silent_connection_is_closed_by_the_console() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &[]);
    let mut half = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
    half.write_all(format!("GET /runs HTTP/1.1\r\nHost: {}\r\n", c.host()).as_bytes()).expect("write");
    // Generous: only a hang fails (a connection the console never closes).
    half.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let mut buf = [0u8; 64];
    match half.read(&mut buf) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the console kept a silent connection open: {e}"
        ),
    }
    // And it still serves.
    assert_eq!(c.get("/runs").status, 200);
}

/// A `.toml` file of the folder that is not a runbook (credentials, say) is listed as such,
/// and nothing of its content reaches a page: the console widens the audience of `check`'s
/// quoted excerpts from one terminal to every browser that can reach it.
#[test]
fn a_toml_file_that_is_not_a_runbook_is_never_quoted() {
    let s = Scratch::new(THREE_STEPS);
    for (name, text) in [
        (
            "creds.toml",
            "[aws]\naccess_key = \"AKIA-console-sentinel-1\"\nsecret = \"console-sentinel-2\" oops\n",
        ),
        ("settings.toml", "token = \"console-sentinel-3\"\n"),
        ("half.toml", "[runbook\nname = \"console-sentinel-4\"\n"),
    ] {
        std::fs::write(s.path().join(name), text).expect("write");
    }
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let list = c.get("/runbooks");
    assert_eq!(list.status, 200);
    for page in ["/runbooks", "/runbooks/creds", "/runbooks/settings", "/runbooks/half"] {
        let r = c.get(page);
        assert_eq!(r.status, 200, "{page}");
        for n in 1..=4 {
            let sentinel = format!("console-sentinel-{n}");
            assert!(!r.body.contains(&sentinel), "{page} quotes {sentinel}:\n{}", text_of(&r.body));
        }
    }
    let creds = text_of(&c.get("/runbooks/creds").body);
    assert!(creds.contains("does not parse as a runbook") && creds.contains("invalid"), "{creds}");
}

/// The runbooks page in a real browser: the review document of a hostile runbook reads as
/// text (no element, handler or link of the runbook's making), every command exactly as the
/// JSON plan has it, and the console's Content-Security-Policy holds (no script, nothing
/// fetched but the console's own style sheets).
#[test]
fn a_runbook_page_reads_right_in_a_real_browser() {
    use crate::plan_html::{HOSTILE, HOSTILE_ENV, commands, hostile_runbook, plan_page, shown};
    let s = Scratch::new(THREE_STEPS);
    write_files(s.path(), &[("hostile.toml", &hostile_runbook())]);
    let (_, doc) = plan_page(s.path(), "hostile.toml", HOSTILE_ENV);
    let c = Console::start_with_env(s.path(), &s.state(), &["--runbooks", "."], HOSTILE_ENV);
    let browser = crate::browser::Browser::start();
    browser.open(&format!("http://{}/runbooks/hostile", c.host()));
    assert_eq!(browser.eval("return document.querySelectorAll('script').length"), 0);
    let fetched =
        browser.eval("return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)");
    // (and the icon the browser asks every site for on its own: the console has none, 404)
    assert_eq!(fetched, serde_json::json!(["/assets/review.css", "/assets/console.css", "/favicon.ico"]));
    // The runbook's text made no element: inside the document, only the review's own.
    let made = browser.eval(
        "return Array.from(document.querySelectorAll('.runbook-review *')).filter(e => ['script','img','iframe','a','object','embed','form','link','base','style'].includes(e.localName) || Array.from(e.attributes).some(a => a.name.startsWith('on') || a.name === 'src' || a.name === 'href' || a.name === 'style')).map(e => e.outerHTML.slice(0, 80))",
    );
    assert_eq!(made, serde_json::json!([]));
    let blocks = browser.eval(
        "return Array.from(document.querySelectorAll('.runbook-review pre > code')).map(e => e.textContent)",
    );
    let blocks: Vec<String> = serde_json::from_value(blocks).expect("texts");
    for e in commands(&doc) {
        assert!(blocks.contains(&shown(&e)), "{e:?} not in {blocks:#?}");
    }
    let text = browser.eval("return document.body.innerText");
    let text = text.as_str().expect("text");
    for h in [HOSTILE[0], HOSTILE[2], HOSTILE[4]] {
        assert!(text.contains(h), "{h:?} not shown as text in\n{text}");
    }
    assert!(!text.contains("sentinel"), "a secret value in\n{text}");
    // The review's style applies (its sheet loaded, not refused by the CSP).
    assert_eq!(
        browser.eval("return getComputedStyle(document.querySelector('.runbook-review')).maxWidth"),
        "1152px"
    );
}

/// A runbook of the folder pulls other files into its plan (`sql.file`): the console quotes
/// none of them, wherever they are (a `creds.toml` beside it, an absolute path, `..`, a
/// `.sql` file under the folder); it names each with its SHA-256 and says where the text is
/// shown (`runbook plan` on this host). `plan --format html` on a terminal still quotes them.
/// Failed before (red team adv16 F1): the page quoted `aws_secret_access_key`.
#[test]
fn the_console_quotes_no_file_that_a_runbook_reads() {
    let s = Scratch::new(THREE_STEPS);
    let outside = s.path().join("elsewhere");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.sql"), "SELECT 'fx-sentinel-2';\n").expect("write");
    std::fs::write(s.path().join("up.sql"), "SELECT 'fx-sentinel-3';\n").expect("write");
    let rb = s.path().join("rb");
    std::fs::create_dir_all(rb.join("scripts")).expect("mkdir");
    std::fs::write(rb.join("scripts/migrate.sql"), "SELECT 'fx-sentinel-4';\n").expect("write");
    std::fs::write(rb.join("creds.toml"), "[default]\naws_secret_access_key = \"fx-sentinel-1\"\n")
        .expect("write");
    let runbook = r#"[runbook]
name = "audit-db"

[secrets.DATABASE_URL]
env = "DATABASE_URL"

[steps.creds]
sql = { url = "{{ secrets.DATABASE_URL }}", file = "creds.toml" }

[steps.own]
needs = ["creds"]
sql = { url = "{{ secrets.DATABASE_URL }}", file = "scripts/migrate.sql" }
"#;
    std::fs::write(rb.join("audit-db.toml"), runbook).expect("write");
    // Scripts outside the runbooks' folder are refused by `check` (RB066, adv15c F5): the
    // page lists the problem, never the file.
    let elsewhere = format!(
        r#"[runbook]
name = "elsewhere"

[steps.absolute]
sql = {{ url = "postgres://ro@127.0.0.1:1/app", file = "{}" }}

[steps.up]
needs = ["absolute"]
sql = {{ url = "postgres://ro@127.0.0.1:1/app", file = "../up.sql" }}
"#,
        outside.join("secret.sql").display()
    );
    std::fs::write(rb.join("elsewhere.toml"), &elsewhere).expect("write");
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "rb"]);
    let refused = text_of(&c.get("/runbooks/elsewhere").body);
    assert!(refused.contains("RB066"), "{refused}");
    for page in ["/runbooks", "/runbooks/audit-db", "/runbooks/creds", "/runbooks/elsewhere"] {
        let r = c.get(page);
        assert_eq!(r.status, 200, "{page}: {}", r.body);
        for n in 1..=4 {
            assert!(
                !r.body.contains(&format!("fx-sentinel-{n}")),
                "{page} quotes fx-sentinel-{n}:\n{}",
                r.body
            );
        }
    }
    let page = text_of(&c.get("/runbooks/audit-db").body);
    assert!(page.contains("Review of audit-db"), "{page}");
    assert!(page.contains("runbook plan"), "the page says where the text is shown: {page}");
    use sha2::Digest as _;
    let digest: String = sha2::Sha256::digest(b"[default]\naws_secret_access_key = \"fx-sentinel-1\"\n")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(page.contains(&digest), "the file is named with its SHA-256: {page}");
    // The terminal's review document is unchanged: it quotes the scripts as they will run.
    let out = run_in_with_env(&rb, &["plan", "audit-db.toml", "--format", "html"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("fx-sentinel-4"), "{}", out.stdout);
}

/// The `Host` header must name the console whatever it listens on: an IP address (a name
/// is what DNS rebinding needs), `localhost`, or a name given with `--host`. IPv4-mapped
/// loopback is loopback (no warning). Failed before (adv16 F7): `[::ffff:127.0.0.1]` was
/// warned about and answered any Host; off loopback any Host was answered.
#[test]
fn the_host_must_name_the_console_on_every_address() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start_at(s.path(), "[::ffff:127.0.0.1]:0", &s.state(), &[]);
    let port = c.port;
    for good in
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::ffff:127.0.0.1]:{port}")]
    {
        assert_eq!(c.request("GET", "/api/runs", Some(&good)).status, 200, "{good}");
    }
    assert_eq!(c.request("GET", "/api/runs", Some(&format!("rebind.attacker.example:{port}"))).status, 421);
    let (_, stderr) = c.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(!stderr.contains("warning"), "IPv4-mapped loopback is loopback: {stderr}");

    let c = Console::start_at(s.path(), "0.0.0.0:0", &s.state(), &[]);
    let port = c.port;
    for good in [format!("127.0.0.1:{port}"), format!("10.1.2.3:{port}"), format!("localhost:{port}")] {
        assert_eq!(c.request("GET", "/runs", Some(&good)).status, 200, "{good}");
    }
    for bad in [
        format!("rebind.attacker.example:{port}"),
        "console.example".to_string(),
        format!("console.example:{port}"),
        format!("10.1.2.3:{}", port.wrapping_add(1)),
    ] {
        assert_eq!(c.request("GET", "/runs", Some(&bad)).status, 421, "{bad}");
    }
    drop(c);

    let c = Console::start_at(
        s.path(),
        "0.0.0.0:0",
        &s.state(),
        &["--host", "console.example", "--host", "ops.example:8443"],
    );
    let port = c.port;
    for good in
        [format!("console.example:{port}"), format!("Console.Example:{port}"), "ops.example:8443".into()]
    {
        assert_eq!(c.request("GET", "/runs", Some(&good)).status, 200, "{good}");
    }
    for bad in [
        "console.example".to_string(),
        format!("evil.example:{port}"),
        format!("ops.example:{port}"),
        format!("console.example.evil:{port}"),
    ] {
        let r = c.request("GET", "/runs", Some(&bad));
        assert_eq!(r.status, 421, "{bad}");
    }
    // A `--host` that is not a host name is refused at start (usage, exit 2).
    for bad in ["", "a b", "http://x", "x:notaport", "x/y"] {
        let out = run_in_with_env(s.path(), &["serve", "--listen", "127.0.0.1:0", "--host", bad], &[]);
        assert_eq!(out.code, 2, "--host {bad:?}: {}", out.stderr);
    }
}

/// `/api/runs` carries the page's warning of a row that disagrees with its journal, and
/// the "running" count is the number of runs its link lists (a run whose engine is gone
/// is "interrupted (engine gone)", needing an operator, not running). Failed before (adv16
/// F8, F9): no `flagged` in the JSON; "0 running" linked to a list of 1.
#[test]
fn the_runs_api_says_what_the_page_says_and_counts_match_their_lists() {
    let s = Scratch::new("[runbook]\nname = \"fails\"\n[steps.boom]\nrun = \"exit 3\"\n");
    assert_eq!(s.run(&["--yes"], &[]).code, 1);
    let failed = s.latest_run();
    std::fs::write(
        s.path().join("slow.toml"),
        "[runbook]\nname = \"slow\"\n[steps.wait]\nrun = \"touch started; sleep 30\"\n",
    )
    .expect("write");
    let mut engine = s.spawn(&["run", "slow.toml", "--yes"]);
    s.wait_for("started", "");
    crate::support::kill9(engine.id());
    let _ = engine.wait();
    let out = Command::new("sqlite3")
        .arg(s.state())
        .arg(format!("UPDATE runs SET status = 'succeeded' WHERE run_id = '{failed}'"))
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Console::start(s.path(), &s.state(), &[]);
    let api = c.get("/api/runs");
    assert_eq!(api.status, 200, "{}", api.body);
    let json: serde_json::Value = serde_json::from_str(&api.body).expect("json");
    let flagged = json["flagged"].as_array().unwrap_or_else(|| panic!("no `flagged`: {}", api.body));
    assert_eq!(flagged.len(), 1, "{}", api.body);
    let page = text_of(&c.get("/runs").body);
    let said = flagged[0].as_str().expect("text");
    assert!(said.contains(&failed) && said.contains("the journal says `failed`"), "{said}");
    assert!(page.contains(said), "the page and the API say the same: {page}\n{said}");
    // Every count and the list it links to agree, on the page and in the API.
    let running = json["counts"]["running"].as_u64().expect("count");
    let listed: serde_json::Value =
        serde_json::from_str(&c.get("/api/runs?status=running").body).expect("json");
    assert_eq!(listed["total"].as_u64(), Some(running), "{listed}");
    assert_eq!(running, 0);
    assert_eq!(json["counts"]["needing_an_operator"].as_u64(), Some(1), "{}", api.body);
    let html_list = c.get("/runs?status=running");
    assert!(!text_of(&html_list.body).contains("engine gone"), "{}", text_of(&html_list.body));
    let gone: serde_json::Value = serde_json::from_str(
        &c.get(&format!("/api/runs?status={}", "interrupted%20%28engine%20gone%29")).body,
    )
    .expect("json");
    assert_eq!(gone["total"].as_u64(), Some(1), "{gone}");
}

/// The `/api/` twins answer their errors as JSON (`{"error": ..., "status": N}`, the
/// status of the page's error), never as an HTML page.
#[test]
fn the_api_answers_its_errors_as_json() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &[]);
    let port = c.port;
    for (method, path, host, status) in [
        ("GET", "/api/runs?bogus=1", c.host(), 400),
        ("GET", "/api/runs/20261206T120000Z-0a1b2c3d", c.host(), 404),
        ("GET", "/api/runs/..%2Fx", c.host(), 404),
        ("GET", "/api/nothing", c.host(), 404),
        ("POST", "/api/runs", c.host(), 405),
        ("GET", "/api/runs", format!("evil.example:{port}"), 421),
    ] {
        let r = c.request(method, path, Some(&host));
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert!(
            r.header("content-type").is_some_and(|t| t.starts_with("application/json")),
            "{path}: {:?}",
            r.headers
        );
        let json: serde_json::Value =
            serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body));
        assert_eq!(json["status"].as_u64(), Some(u64::from(status)), "{}", r.body);
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", r.body);
    }
    // The pages keep their HTML errors.
    let r = c.get("/runs?bogus=1");
    assert_eq!(r.status, 400);
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/html")));
}

/// A page load never writes the store: the console opens it read-only (no schema, no WAL
/// switch, no lock file); an empty file is no runs; a SQLite file of another application
/// is refused (503) and left as it was. Failed before (adv16 F10): the first GET added the
/// runbook schema, switched the file to WAL and left `app.db.migrating`.
#[test]
fn a_page_load_never_writes_the_store() {
    let s = Scratch::new(THREE_STEPS);
    let sqlite = |db: &Path, sql: &str| {
        let out = Command::new("sqlite3").arg(db).arg(sql).output().expect("sqlite3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let foreign = s.path().join("app.db");
    sqlite(&foreign, "CREATE TABLE notes(x); INSERT INTO notes VALUES ('mine');");
    let empty = s.path().join("empty.db");
    std::fs::write(&empty, b"").expect("write");
    for (db, status) in [(&foreign, 503), (&empty, 200)] {
        let before = std::fs::read(db).expect("read");
        let c = Console::start(s.path(), &db.display().to_string(), &[]);
        for path in ["/runs", "/api/runs", "/runs/20261206T120000Z-0a1b2c3d"] {
            let r = c.get(path);
            let want = if path.starts_with("/runs/") && status == 200 { 404 } else { status };
            assert_eq!(r.status, want, "{} {path}: {}", db.display(), r.body);
        }
        if status == 503 {
            let r = text_of(&c.get("/runs").body);
            assert!(r.contains("not a runbook state store"), "{r}");
        }
        drop(c);
        assert_eq!(std::fs::read(db).expect("read"), before, "{} was written", db.display());
        let names: Vec<String> = std::fs::read_dir(s.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        for n in &names {
            assert!(!n.ends_with("-wal") && !n.ends_with(".migrating"), "a reader left {n}: {names:?}");
        }
    }
    assert_eq!(sqlite(&foreign, "PRAGMA journal_mode"), "delete");
    // A real store is read as before, and its file is not changed by the pages.
    ok(&s.run(&["--yes"], &[]), 0);
    let run = s.latest_run();
    let before = std::fs::read(s.state()).expect("read");
    let c = Console::start(s.path(), &s.state(), &[]);
    assert!(c.get("/runs").body.contains(&run));
    assert_eq!(c.get(&format!("/runs/{run}")).status, 200);
    drop(c);
    assert_eq!(std::fs::read(s.state()).expect("read"), before, "the store was written by a page");
}

mod limits;

// The console followed live (p16-live).
mod live;

// The schedules page (issue 17).
mod schedules;
// Live output through the store (issue 16).
mod live_output;

/// A `for-each` run's page names each instance by its id and its rendered title, in the
/// graph too (issue 17).
#[test]
fn a_for_each_run_page_shows_each_instance() {
    let s = Scratch::new(
        "[runbook]\nname = \"rolling\"\n[params.hosts]\ntype = \"list\"\ndefault = [\"web-1\", \"web-2\"]\n[steps.drain]\nfor-each = \"hosts\"\ntitle = \"Drain {{ item }}\"\nestimate = \"1s\"\ncmd = [\"true\"]\n[steps.after]\ncmd = [\"true\"]\n",
    );
    ok(&s.run(&["--yes"], &[]), 0);
    let run = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &[]);
    let page = c.get(&format!("/runs/{run}"));
    assert_eq!(page.status, 200);
    let text = text_of(&page.body);
    for shown in ["drain[web-1]", "drain[web-2]", "Drain web-1", "Drain web-2"] {
        assert!(text.contains(shown), "`{shown}` missing:\n{text}");
    }
    assert!(!text.contains("pending"), "no step of the runbook as written is drawn as pending:\n{text}");
}
