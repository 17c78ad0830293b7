//! The console's robustness (promise 5, red team adv16 findings 2, 4, 5, 6 and 10): every
//! page answers, in bounded time and memory, whatever the file names, the store, the size
//! of a run or of a runbook, or the clients do. Upper bounds on time are generous: they
//! only tell "answers at all" from "never answers".

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{Console, THREE_STEPS, text_of};
use crate::support::{Scratch, ok};

const VALID: &str = "[runbook]\nname = \"odd\"\n[steps.a]\nrun = 'true'\n";

/// adv16 f10: a file name that is not UTF-8 panicked the runbooks page (a raw path
/// serialized). The class: every path a page shows goes through one conversion; a corpus
/// of odd names (invalid UTF-8, a line break, markup, a very long name, bidi).
#[test]
fn odd_file_names_are_shown_and_never_panic() {
    use std::os::unix::ffi::OsStrExt as _;
    let s = Scratch::new(THREE_STEPS);
    let long = format!("{}.toml", "l".repeat(240));
    let names: Vec<Vec<u8>> = vec![
        b"caf\xe9.toml".to_vec(),
        b"caf\xe8.toml".to_vec(),
        b"\xff\xfe.toml".to_vec(),
        b"line\nbreak.toml".to_vec(),
        b"<b>mark<&amp;\"x\".toml".to_vec(),
        "\u{202e}evil.toml".as_bytes().to_vec(),
        b"tab\there.toml".to_vec(),
        long.as_bytes().to_vec(),
    ];
    for n in &names {
        std::fs::write(s.path().join(std::ffi::OsStr::from_bytes(n)), VALID).expect("write");
    }
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let list = c.get("/runbooks");
    assert_eq!(list.status, 200, "{}", list.body);
    let links = super::links(&list.body);
    let pages: Vec<&String> = links.iter().filter(|l| l.starts_with("/runbooks/")).collect();
    assert!(pages.len() >= names.len() - 1, "{links:?}");
    for link in pages {
        let page = c.get(link);
        assert!(page.status == 200 || page.status == 404, "{link}: {} {}", page.status, page.body);
        if page.status == 200 {
            let text = text_of(&page.body);
            assert!(!text.contains('\u{202e}'), "{text}");
        }
    }
    let long_page = c.get(&format!("/runbooks/{}", "l".repeat(240)));
    assert_eq!(long_page.status, 200);
    let odd = c.get("/runbooks/caf%EF%BF%BD");
    assert_eq!(odd.status, 200, "{}", odd.body);
    assert!(text_of(&odd.body).contains("is not UTF-8"), "{}", odd.body);
    assert_eq!(c.get("/runs").status, 200);
    let (code, stderr) = c.stop(nix::sys::signal::Signal::SIGINT);
    assert_eq!(code, 0);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// adv16 f2: PostgreSQL down. Pages queued on the store's lock (10 s each) and the last
/// ones got no answer at all. Every request gets its 503, each on its own connection.
#[test]
fn a_store_that_is_down_answers_every_page_with_a_503() {
    let s = Scratch::new(THREE_STEPS);
    // A server that accepts and never answers (the worst PostgreSQL), and a refused port.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for conn in silent.incoming().take(64) {
            kept.push(conn);
        }
    });
    for url in [
        "postgres://runbook:pw@127.0.0.1:1/runbook".to_string(),
        format!("postgres://runbook:pw@127.0.0.1:{silent_port}/runbook"),
    ] {
        let c = Console::start(s.path(), &url, &[]);
        let paths = ["/runs", "/api/runs", "/runs/20261206T120000Z-0a1b2c3d", "/runs", "/api/runs", "/runs"];
        let answers: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = paths.iter().map(|p| scope.spawn(|| c.get(p))).collect();
            handles.into_iter().map(|h| h.join().expect("a request")).collect()
        });
        for (path, r) in paths.iter().zip(answers) {
            assert_eq!(r.status, 503, "{url} {path}: {}", r.body);
            assert!(text_of(&r.body).contains("state store unavailable"), "{}", r.body);
            assert!(!r.body.contains(":pw@"), "{}", r.body);
        }
        assert_eq!(c.get("/assets/console.css").status, 200);
    }
    drop(held);
}

/// adv16 f3: a run whose steps each printed a lot made a page of hundreds of megabytes.
/// A run page inlines at most a bounded tail of each step's output and a bounded total;
/// the rest is named with the command that prints it.
#[test]
fn a_run_page_is_bounded_whatever_its_output() {
    let mut rb = String::from("[runbook]\nname = \"loud\"\n");
    for i in 0..12 {
        rb.push_str(&format!(
            "[steps.s{i}]\nrun = '''python3 -c 'print((\"<>&/\"*40+\"\\n\")*6400, end=\"\")' '''\n"
        ));
    }
    let s = Scratch::new(&rb);
    ok(&s.run(&["--yes"], &[]), 0);
    let run = s.latest_run();
    let c = Console::start(s.path(), &s.state(), &[]);
    let page = c.get(&format!("/runs/{run}"));
    assert_eq!(page.status, 200);
    // 12 steps x 1 MiB of output, escaped: 40 MB before the bound.
    assert!(page.body.len() < 4 * 1024 * 1024, "a page of {} bytes", page.body.len());
    let text = text_of(&page.body);
    assert!(text.contains(&format!("runbook logs {run} s0")), "{}", &text[..2000.min(text.len())]);
    assert!(text.contains(&format!("runbook logs {run} s11")), "every step names its rest");
    assert!(text.contains("more bytes"), "the rest is counted");
    // The page shows the tail: the last line of every step.
    assert!(page.body.matches("&lt;&gt;&amp;&#x2f;").count() > 12);
    assert_eq!(c.get("/assets/console.css").status, 200);
}

/// adv16 f4: clients that trickle a header line now and then were never cut off. The head
/// of a request has a total deadline, not reset by each byte.
#[test]
fn a_client_that_trickles_its_head_is_cut_off() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &[]);
    let mut t = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
    t.write_all(format!("GET /runs HTTP/1.1\r\nHost: {}\r\n", c.host()).as_bytes()).expect("write");
    t.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    let cut = loop {
        // Generous: only "never cut" fails (the idle deadline, reset by each line, never ends).
        if t0.elapsed() > Duration::from_secs(100) {
            break false;
        }
        if t.write_all(b"X-Slow: 1\r\n").is_err() {
            break true;
        }
        match t.read(&mut buf) {
            Ok(_) => break true,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break true,
        }
    };
    assert!(cut, "a trickling client held its connection for 100 s");
    assert_eq!(c.get("/runs").status, 200);
}

/// Red team adv28 W1, W2: a request whose head or body never ends, in the ways the
/// console's byte counter could not follow, is cut like a trickling head. Empty lines
/// before a request line ended a "head" (hyper skips them and waits for one), and a body
/// of unknown length (`Transfer-Encoding`, a `Content-Length` too long or not a number) was
/// never timed: each held a connection for ever, and 256 held the console.
#[test]
fn requests_whose_head_or_body_never_ends_are_cut_off() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &["--auth", "token"]);
    let host = c.host();
    let post = |length_header: &str| {
        format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: application/x-www-form-urlencoded\r\n{length_header}\r\n\r\n"
        )
    };
    let attacks = [
        "\r\n\r\n".to_string(),
        "\n\n\r\n\r\n".to_string(),
        post("Transfer-Encoding: chunked"),
        post(&format!("Content-Length: {}1", "0".repeat(300))),
        post(&format!("Content-Length:{}1", " ".repeat(300))),
        post("Content-Length: 5"),
    ];
    let mut open: Vec<(String, TcpStream)> = attacks
        .iter()
        .map(|a| {
            let mut t = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
            t.write_all(a.as_bytes()).expect("write");
            t.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
            (a.clone(), t)
        })
        .collect();
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    while !open.is_empty() {
        // Generous: only "never cut" fails.
        assert!(
            t0.elapsed() < Duration::from_secs(100),
            "held for 100 s: {:?}",
            open.iter().map(|(a, _)| a.escape_debug().to_string()).collect::<Vec<_>>()
        );
        open.retain_mut(|(_, t)| match t.read(&mut buf) {
            Ok(0) => false,
            // An answer (a 400, a 408) is an end too; read on to the close.
            Ok(_) => true,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                true
            }
            Err(_) => false,
        });
    }
    assert_eq!(c.get("/runs").status, 200);
}

/// adv16 f4: connections are capped. Many silent clients take at most the cap of the
/// console's descriptors; the others wait in the kernel's queue, and a normal request is
/// answered once the head deadline cuts the silent ones.
#[test]
fn connections_are_capped_and_a_flood_does_not_lock_everyone_out() {
    let s = Scratch::new(THREE_STEPS);
    let c = Console::start(s.path(), &s.state(), &[]);
    let pid = c.child.as_ref().expect("running").id();
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let before = fds();
    let mut flood = Vec::new();
    for _ in 0..400 {
        let mut t = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
        t.write_all(b"GET /runs HTTP/1.1\r\n").expect("write");
        flood.push(t);
    }
    // Let the console accept what it will (more waiting only makes an uncapped count grow).
    std::thread::sleep(Duration::from_secs(2));
    let during = fds();
    assert!(
        during <= before + runbook_web_cap(),
        "{during} descriptors open with 400 silent clients (before: {before})"
    );
    // A normal request is answered (the silent ones are cut at the head deadline).
    let r = c.get("/runs");
    assert_eq!(r.status, 200);
    drop(flood);
}

/// The documented cap (book/src/user-guide/console.md).
fn runbook_web_cap() -> usize {
    256
}

/// adv16 f8: the runbooks pages checked the whole folder on every request, without a time
/// bound. Checks are cached by file identity, a page waits a bounded time for them, and a
/// runbook's page checks its own file only.
#[test]
fn big_runbooks_are_checked_once_and_pages_answer_meanwhile() {
    let s = Scratch::new(THREE_STEPS);
    let mut big = String::from("[runbook]\nname = \"big\"\n");
    // As many steps as a runbook may have (RB065: 10,000), each with a description, so a
    // check costs enough to be seen.
    for i in 0..10_000 {
        big.push_str(&format!(
            "[steps.s{i}]\ndescription = \"step {i} of a big runbook, checked once\"\nrun = 'true'\n"
        ));
    }
    for n in ["big1.toml", "big2.toml"] {
        std::fs::write(s.path().join(n), &big).expect("write");
    }
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let t0 = Instant::now();
    loop {
        let r = c.get("/runbooks");
        assert_eq!(r.status, 200, "{}", r.body);
        let text = text_of(&r.body);
        if text.contains("big1 big valid") && text.contains("big2 big valid") {
            break;
        }
        assert!(text.contains("big1") && text.contains("big2"), "every file is named: {text}");
        assert!(t0.elapsed() < Duration::from_secs(600), "never checked: {text}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Checked once: more requests take no new check (the console's CPU time barely moves).
    let pid = c.child.as_ref().expect("running").id();
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    };
    let first = cpu();
    for _ in 0..4 {
        assert_eq!(c.get("/runbooks").status, 200);
    }
    let spent = cpu() - first;
    assert!(spent < first / 2, "{spent} ticks for cached pages, {first} for the first checks");
}

/// The cache of checks is keyed by the runbook file's identity only: a runbook whose check
/// depends on other files (here an included runbook) is checked again after a while, so a
/// broken include does not stay "valid" on the page.
#[test]
fn a_cached_check_that_depends_on_another_file_is_renewed() {
    let s = Scratch::new(THREE_STEPS);
    std::fs::create_dir_all(s.path().join("lib")).expect("mkdir");
    std::fs::write(s.path().join("lib/child.toml"), "[runbook]\nname = \"child\"\n[steps.a]\nrun = 'true'\n")
        .expect("write");
    std::fs::write(
        s.path().join("parent.toml"),
        "[runbook]\nname = \"parent\"\n[steps.inner]\nrunbook = { file = \"lib/child.toml\" }\n",
    )
    .expect("write");
    let c = Console::start(s.path(), &s.state(), &["--runbooks", "."]);
    let text = text_of(&c.get("/runbooks").body);
    assert!(text.contains("parent parent valid"), "{text}");
    std::fs::write(
        s.path().join("lib/child.toml"),
        "[runbook]\nname = \"child\"\n[steps.a]\nrun = 'true'\nneeds = [\"nope\"]\n",
    )
    .expect("write");
    let t0 = Instant::now();
    loop {
        let text = text_of(&c.get("/runbooks").body);
        if text.contains("parent - invalid") || text.contains("parent parent invalid") {
            break;
        }
        // Generous: the cache keeps such a check a minute.
        assert!(t0.elapsed() < Duration::from_secs(300), "the include's change never showed: {text}");
        std::thread::sleep(Duration::from_secs(2));
    }
}
