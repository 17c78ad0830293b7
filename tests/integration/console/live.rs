//! A run followed live (p16-live): `GET /runs/{id}/events` over a real `runbook run`
//! process, read as a browser's EventSource reads it (Server-Sent Events over HTTP/1.x).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Console;
use crate::support::Scratch;

/// A step that waits for the file `go` (the test creates it), then one after it.
pub const WAITS_FOR_GO: &str = r#"[runbook]
name = "follow-me"

[steps.wait]
title = "wait for the go"
run = "while [ ! -f go ]; do sleep 0.05; done; echo 'done <b>waiting</b> & going'"

[steps.after]
needs = ["wait"]
run = "echo after-line"
"#;

/// One event as an EventSource sees it.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

/// A stream of events opened on the console.
pub struct Stream {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Stream {
    /// `GET path` (HTTP/1.0: the body is the stream as written), with `Last-Event-ID`.
    pub fn open(c: &Console, path: &str, last_event_id: Option<u64>) -> Stream {
        let last = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        Stream::open_with(c, path, &last)
    }

    /// `GET path` with extra header lines (each ending in CRLF).
    pub fn open_with(c: &Console, path: &str, extra: &str) -> Stream {
        let mut s = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
        let req =
            format!("GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: text/event-stream\r\n{extra}\r\n", c.host());
        s.write_all(req.as_bytes()).expect("write");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status");
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("a header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_lowercase(), v.trim().to_string()));
            }
        }
        Stream { reader, status, headers }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The next event (comments and `retry:` skipped); `None` when the stream has ended.
    pub fn next(&mut self) -> Option<Sse> {
        let mut ev = Sse { id: None, event: "message".into(), data: String::new() };
        let mut any = false;
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).expect("read the stream");
            if n == 0 {
                return None;
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if any {
                    return Some(ev);
                }
                continue;
            }
            if l.starts_with(':') {
                continue;
            }
            let (field, value) = l.split_once(": ").unwrap_or((l, ""));
            match field {
                "id" => ev.id = value.parse().ok(),
                "event" => ev.event = value.to_string(),
                "data" => ev.data.push_str(value),
                _ => continue,
            }
            any = field != "retry";
        }
    }

    /// Events until one satisfies `until` (included).
    pub fn until(&mut self, until: impl Fn(&Sse) -> bool) -> Vec<Sse> {
        let mut seen = Vec::new();
        while let Some(e) = self.next() {
            let stop = until(&e);
            seen.push(e);
            if stop {
                return seen;
            }
        }
        panic!("the stream ended before the event waited for: {seen:?}");
    }

    /// Every event to the stream's end.
    pub fn rest(&mut self) -> Vec<Sse> {
        std::iter::from_fn(|| self.next()).collect()
    }
}

pub fn data(e: &Sse) -> serde_json::Value {
    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("{err}: {}", e.data))
}

/// Waits (bounded, generous: a hang fails, no speed asserted) for the run's journal to
/// have a `step_started` of `step`; returns the run id.
pub fn started(s: &Scratch, step: &str) -> String {
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "the run never started {step}");
        if let Some(run) = crate::support::latest_run_id(s.path(), std::path::Path::new(&s.state()))
            && s.events(&run).iter().any(|(k, st)| k == "step_started" && st == step)
        {
            return run;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The records of a live run reach a follower as they are journaled, in order, each once,
/// with its step's state, the output kept, and the end; a follower that reconnects with
/// `Last-Event-ID` gets exactly the records after it.
#[test]
fn a_live_run_is_followed_and_a_reconnection_resumes_without_loss_or_duplicate() {
    let s = Scratch::new(WAITS_FOR_GO);
    let mut engine = s.spawn(&["run", "r.toml", "--yes"]);
    let run = started(&s, "wait");
    let c = Console::start(s.path(), &s.state(), &[]);
    let path = format!("/runs/{run}/events");
    let mut a = Stream::open(&c, &path, None);
    assert_eq!(a.status, 200);
    assert!(a.header("content-type").is_some_and(|t| t.starts_with("text/event-stream")), "{:?}", a.headers);
    assert!(a.header("content-security-policy").is_some(), "the guard's headers: {:?}", a.headers);
    // Followers at once: the same events for each.
    let mut b = Stream::open(&c, &path, None);
    let before_a = a.until(|e| data(e)["kind"] == "step_started" && data(e)["step"] == "wait");
    let before_b = b.until(|e| data(e)["kind"] == "step_started" && data(e)["step"] == "wait");
    assert_eq!(before_a.last().map(|e| data(e)["status"].clone()), Some("started".into()));
    std::fs::write(s.path().join("go"), "").expect("go");
    let mut all_a = before_a;
    all_a.extend(a.rest());
    let mut all_b = before_b;
    all_b.extend(b.rest());
    let status = engine.wait().expect("the engine ends");
    assert!(status.success(), "{status:?}");
    // The stream ends with the run, saying so.
    let end = all_a.last().expect("events");
    assert_eq!(end.event, "end", "{all_a:?}");
    assert!(data(end)["reason"].as_str().is_some_and(|r| r.contains("succeeded")), "{}", end.data);
    // Every record, once, in order: the journal's own sequence (as `audit` has it).
    let journal = s.events(&run);
    let ids: Vec<u64> = all_a.iter().filter_map(|e| e.id).collect();
    assert_eq!(ids, (1..=journal.len() as u64).collect::<Vec<_>>(), "{all_a:?}");
    let kinds: Vec<String> = all_a
        .iter()
        .filter(|e| e.event == "record")
        .map(|e| data(e)["kind"].as_str().unwrap_or("").into())
        .collect();
    assert_eq!(kinds, journal.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    let ids_b: Vec<u64> = all_b.iter().filter_map(|e| e.id).collect();
    assert_eq!(ids, ids_b, "two followers see the same records");
    // The step turned succeeded, and its output arrived, as text in JSON (no raw markup).
    assert!(all_a.iter().any(|e| data(e)["kind"] == "step_succeeded" && data(e)["status"] == "succeeded"));
    assert!(all_a.iter().any(|e| data(e)["kind"] == "step_started"
        && data(e)["step"] == "after"
        && data(e)["status"] == "started"));
    let outputs: Vec<serde_json::Value> = all_a
        .iter()
        .map(data_or_null)
        .filter(|d| !d["output"].is_null())
        .map(|d| d["output"].clone())
        .collect();
    let wait_out = outputs.iter().find(|o| o["step"] == "wait").expect("the wait step's output");
    assert_eq!(wait_out["lines"][0][1], "done <b>waiting</b> & going", "{wait_out}");
    assert!(all_a.iter().all(|e| !e.data.contains('<') && !e.data.contains('&')), "markup escaped in JSON");
    assert!(outputs.iter().any(|o| o["step"] == "after" && o["lines"][0][1] == "after-line"));

    // Reconnections: each Last-Event-ID gets exactly the records after it, then the end.
    let last = *ids.last().expect("ids");
    for from in [0, 1, last / 2, last - 1, last] {
        let mut again = Stream::open(&c, &path, Some(from));
        let got = again.rest();
        let ids: Vec<u64> = got.iter().filter_map(|e| e.id).collect();
        assert_eq!(ids, ((from + 1)..=last).collect::<Vec<_>>(), "after {from}");
        assert_eq!(got.last().map(|e| e.event.as_str()), Some("end"));
        // The same text as the live follower read: each record's state is the state just
        // after it, whatever the batch it came in.
        let live: Vec<&String> =
            all_a.iter().filter(|e| e.id.is_some_and(|i| i > from)).map(|e| &e.data).collect();
        assert_eq!(got.iter().filter(|e| e.id.is_some()).map(|e| &e.data).collect::<Vec<_>>(), live);
    }
    // `?after=` (the page's last record, for the first connection) does the same.
    let got = Stream::open(&c, &format!("{path}?after={}", last - 2), None).rest();
    assert_eq!(got.iter().filter_map(|e| e.id).collect::<Vec<_>>(), vec![last - 1, last]);
    // Garbage is refused; a run that does not exist is a 404.
    assert_eq!(Stream::open(&c, &path, None).status, 200);
    let bad = Stream::open_with(&c, &path, "Last-Event-ID: x\r\n");
    assert_eq!(bad.status, 400);
    assert_eq!(c.get(&format!("{path}?after=-1")).status, 400);
    assert_eq!(c.get(&format!("{path}?nope=1")).status, 400);
    assert_eq!(c.get("/runs/no-such-run/events").status, 404);
}

fn data_or_null(e: &Sse) -> serde_json::Value {
    serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null)
}
