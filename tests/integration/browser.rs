//! A real headless browser for tests: chromium driven by chromedriver over the W3C WebDriver
//! protocol (HTTP and JSON on 127.0.0.1).
//!
//! ```ignore
//! let browser = Browser::start();
//! browser.open("file:///tmp/page.html");
//! let title = browser.eval("return document.title");
//! ```
//!
//! Web pages are tested in a real browser (the review page here, the web console next).
//! Missing chromium or chromedriver is a failure, never a skip. The client is a few lines of
//! HTTP/1.1 over a `TcpStream` (one request per connection): the driver speaks plain HTTP on
//! loopback, and a blocking client needs nothing more. Dropping the [`Browser`] ends the
//! session (the browser quits) and the driver.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One headless chromium session and its chromedriver.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    /// The browser's profile, removed after the session.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless session.
    pub fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing (Debian package `{package}`): web pages are tested in a real \
                 browser; install both with `apt-get install chromium chromium-driver`"
            );
        }
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("its address").port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut browser = Browser { driver, port, session: String::new(), _profile: profile };
        browser.wait_ready();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--no-first-run".to_string(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let answer = browser.request("POST", "/session", Some(&caps));
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {answer}"))
            .to_string();
        browser
    }

    /// Waits until the driver answers `/status` as ready (it starts in well under a second;
    /// the bound only stops a broken driver from hanging the test).
    fn wait_ready(&mut self) {
        for _ in 0..400 {
            if let Some(status) = self.try_request("GET", "/status", None)
                && status["value"]["ready"] == json!(true)
            {
                return;
            }
            if let Ok(Some(exit)) = self.driver.try_wait() {
                panic!("chromedriver exited at start: {exit}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("chromedriver on port {} never became ready", self.port);
    }

    /// Navigates to `url` and waits for the page to load (WebDriver's default).
    pub fn open(&self, url: &str) {
        let answer = self.request("POST", &self.path("url"), Some(&json!({"url": url})));
        assert!(answer["value"].is_null(), "cannot open {url}: {answer}");
    }

    /// Runs `script` (a function body: `return ...;`) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        let answer =
            self.request("POST", &self.path("execute/sync"), Some(&json!({"script": script, "args": []})));
        if answer["value"].get("error").is_some() {
            panic!("script failed: {script}\n{answer}");
        }
        answer["value"].clone()
    }

    /// The window's size in CSS pixels (for screenshots of a known size).
    pub fn resize(&self, width: u32, height: u32) {
        let answer =
            self.request("POST", &self.path("window/rect"), Some(&json!({"width": width, "height": height})));
        assert!(answer["value"].get("error").is_none(), "cannot resize: {answer}");
    }

    /// A screenshot of the window, as PNG bytes (WebDriver's base64, decoded).
    pub fn screenshot(&self) -> Vec<u8> {
        let answer = self.request("GET", &self.path("screenshot"), None);
        let text = answer["value"].as_str().unwrap_or_else(|| panic!("no screenshot: {answer}"));
        base64_decode(text).unwrap_or_else(|| panic!("the screenshot is not base64"))
    }

    fn path(&self, what: &str) -> String {
        format!("/session/{}/{what}", self.session)
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_request(method, path, body)
            .unwrap_or_else(|| panic!("chromedriver did not answer {method} {path}"))
    }

    /// One HTTP/1.1 request on its own connection; `None` when the driver cannot be reached
    /// or answers something that is not JSON.
    fn try_request(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body.as_bytes()).ok()?;
        // The driver may keep the connection open: read the head, then exactly the body.
        // A read that never ends (a wedged driver) fails the test instead of hanging it.
        stream.set_read_timeout(Some(std::time::Duration::from_secs(120))).ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let (head, start) = loop {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            answer.extend_from_slice(&buf[..n]);
            if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&answer[..at]).to_ascii_lowercase(), at + 4);
            }
        };
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let body = &answer[start..];
            let done = match length {
                Some(len) => body.len() >= len,
                None if chunked => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if done {
                break;
            }
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let rest = String::from_utf8(answer[start..].to_vec()).ok()?;
        let text = if chunked { dechunk(&rest)? } else { rest };
        serde_json::from_str(&text).ok()
    }
}

/// Standard base64 (with padding) decoded; `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        let mut n = 0u32;
        for &b in &chunk[..chunk.len() - pad] {
            n = (n << 6) | value(b)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// The body of a chunked HTTP answer.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_request("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
