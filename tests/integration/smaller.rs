//! Issue 14 point 9, "smaller": the rough edges an operator meets around a run, each through
//! the real binary.

use crate::support::{Output, run_in};

fn rb(dir: &std::path::Path, args: &[&str]) -> Output {
    let state = dir.join("state/state.db");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--state", state.to_str().unwrap_or_default()]);
    run_in(dir, &all)
}

/// `runs` on a store that does not exist yet lists no runs (exit 0) in every format and
/// creates nothing; `audit verify` of every run has nothing to verify.
#[test]
fn a_new_store_has_no_runs_and_that_is_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = rb(dir.path(), &["runs"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(text.stdout, "", "{text:?}");
    assert!(text.stderr.contains("no runs yet"), "{text:?}");
    let json = rb(dir.path(), &["runs", "--format", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json.stdout).ok(),
        Some(serde_json::json!([])),
        "{json:?}"
    );
    let verify = rb(dir.path(), &["audit", "verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    // Reading created no store.
    assert!(!dir.path().join("state").exists());
    // A run asked by id of a store that does not exist is an error that says where runs
    // were looked for (tests/integration/cli_errors.rs snapshots it), and creates nothing.
    for cmd in [&["show", "nope"][..], &["logs", "nope"], &["audit", "nope"], &["report", "nope"]] {
        let out = rb(dir.path(), cmd);
        assert_eq!(out.code, 5, "{cmd:?}: {out:?}");
        assert!(out.stderr.contains("no state store at"), "{cmd:?}: {out:?}");
    }
    assert!(!dir.path().join("state").exists());
}

/// A statement that returns rows reports how many it returned, never "affected" (PostgreSQL
/// counts a SELECT's rows as its command count); a write reports the rows it changed, and a
/// write with `RETURNING` both. Against a real PostgreSQL cluster and a SQLite file.
#[test]
fn sql_steps_report_rows_returned_for_reads_and_rows_affected_for_writes() {
    let pg = crate::peers::Postgres::start();
    let runbook = |url: &str| {
        format!(
            r#"[runbook]
name = "rows"
[steps.make]
sql = {{ url = "{url}", query = "CREATE TABLE t (x INTEGER)" }}
[steps.fill]
sql = {{ url = "{url}", query = "INSERT INTO t VALUES (1), (2), (3)" }}
[steps.read]
sql = {{ url = "{url}", query = "SELECT x FROM t WHERE x > 1" }}
[steps.none]
sql = {{ url = "{url}", query = "SELECT x FROM t WHERE x > 9" }}
[steps.change]
sql = {{ url = "{url}", query = "UPDATE t SET x = x + 10 WHERE x < 3" }}
[steps.back]
sql = {{ url = "{url}", query = "DELETE FROM t WHERE x = 3 RETURNING x" }}
"#
        )
    };
    let sqlite = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!("sqlite:{}", sqlite.path().join("app.db").display());
    for url in [pg.url("postgres"), sqlite_url] {
        let sb = crate::support::Scratch::new(&runbook(&url));
        if url.starts_with("sqlite:") {
            std::fs::write(sqlite.path().join("app.db"), "").expect("db");
        }
        let out = sb.run(&[], &[]);
        assert_eq!(out.code, 0, "{url}: {out:?}");
        let said = |step: &str| {
            out.stdout
                .lines()
                .find(|l| l.starts_with(&format!("{step} | sql:")))
                .unwrap_or_else(|| panic!("{url}: no sql line for {step}: {}", out.stdout))
                .to_string()
        };
        assert_eq!(said("fill"), "fill | sql: 3 row(s) affected", "{url}");
        assert_eq!(said("read"), "read | sql: 2 row(s) returned", "{url}");
        assert_eq!(said("none"), "none | sql: 0 row(s) returned", "{url}");
        assert_eq!(said("change"), "change | sql: 2 row(s) affected", "{url}");
        assert_eq!(said("back"), "back | sql: 1 row(s) affected, 1 returned", "{url}");
    }
}

/// Every line the terminal prints about a step of an included runbook names it by its path
/// (`host_b/health`), never by its bare id (`health:` on the retry line, issue 14): start,
/// output, attempt failure, retry, failure, timeout, skip, compensation. A corpus: each kind
/// of line is looked for, and no line of the run names a child step without its prefix.
#[test]
fn every_line_about_an_included_step_carries_its_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("lib")).expect("lib");
    std::fs::write(
        dir.path().join("lib/child.toml"),
        r#"[runbook]
name = "child"
[steps.prep]
run = "echo prepared"
compensate = { run = "echo unprepared" }
[steps.quiet]
run = "echo never"
when = "false"
needs = ["prep"]
[steps.health]
run = "echo probing; exit 1"
retry = { attempts = 2, delay = "10ms" }
needs = ["prep"]
on-failure = "continue"
[steps.skipped]
run = "echo never"
needs = ["health"]
[steps.slow]
run = "sleep 5"
timeout = "200ms"
needs = ["prep"]
"#,
    )
    .expect("child");
    std::fs::write(
        dir.path().join("r.toml"),
        "[runbook]\nname = \"parent\"\n[steps.host_b]\nrunbook = { file = \"lib/child.toml\" }\n",
    )
    .expect("parent");
    let out = rb(dir.path(), &["run", "r.toml"]);
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    for wanted in [
        "> host_b/prep",
        "host_b/prep | prepared",
        "skip host_b/quiet",
        "skip host_b/skipped: `host_b/health` failed",
        "host_b/health | probing",
        "x host_b/health attempt 1",
        "  host_b/health: retrying in 10ms",
        "> host_b/health (attempt 2)",
        "FAILED host_b/health",
        "FAILED host_b/slow: timed out",
        "undo host_b/prep",
        "host_b/prep (undo) | unprepared",
        "undone host_b/prep",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(wanted)),
            "no line starts with {wanted:?}:\n{}",
            out.stdout
        );
    }
    // No line names a child step bare, in any of the shapes above, nor in a reason.
    for bare in ["prep", "quiet", "health", "skipped", "slow"] {
        for shape in [
            format!("> {bare}"),
            format!("{bare} |"),
            format!("{bare} !"),
            format!("  {bare}:"),
            format!("x {bare} "),
            format!("ok {bare}"),
            format!("FAILED {bare}"),
            format!("skip {bare}"),
            format!("undo {bare}"),
            format!("undone {bare}"),
        ] {
            let quoted = format!("`{bare}`");
            assert!(
                !lines.iter().any(|l| l.contains(&quoted)),
                "a line names {quoted} bare:\n{}",
                out.stdout
            );
            assert!(
                !lines.iter().any(|l| l.starts_with(&shape)),
                "a line starts with {shape:?}:\n{}",
                out.stdout
            );
        }
    }
}

/// A zero duration where zero means nothing (a timeout that ends every attempt at once, an
/// escalation that fires before anything ran, a latency no answer meets) is refused by
/// `check` at the value, with code RB030 and a hint; where zero has a meaning (retry at once,
/// an estimate of nothing) it is accepted. A corpus over every duration field, each in the
/// spellings of zero humantime reads.
#[test]
fn a_zero_duration_that_means_nothing_is_refused_at_the_value() {
    // (field, a runbook with `@` where the duration goes)
    let refused: &[(&str, &str)] = &[
        ("step timeout", "[steps.a]\nrun = \"true\"\ntimeout = \"@\"\n"),
        ("defaults.timeout", "[defaults]\ntimeout = \"@\"\n[steps.a]\nrun = \"true\"\n"),
        (
            "compensate.timeout",
            "[steps.a]\nrun = \"true\"\ncompensate = { run = \"true\", timeout = \"@\" }\n",
        ),
        ("finally timeout", "[steps.a]\nrun = \"true\"\n[finally.b]\nrun = \"true\"\ntimeout = \"@\"\n"),
        (
            "precondition timeout",
            "[preconditions.p]\nrun = \"true\"\ntimeout = \"@\"\n[steps.a]\nrun = \"true\"\n",
        ),
        ("approval.timeout", "[steps.a]\napproval = { prompt = \"go?\", timeout = \"@\" }\n"),
        (
            "http.request-timeout",
            "[steps.a]\nhttp = { url = \"http://127.0.0.1:9/\", request-timeout = \"@\" }\n",
        ),
        ("http.max-latency", "[steps.a]\nhttp = { url = \"http://127.0.0.1:9/\", max-latency = \"@\" }\n"),
        (
            "escalation after",
            "[escalation.page]\nafter = \"@\"\nnotify = { webhook = \"http://127.0.0.1:9/\" }\n[steps.a]\nrun = \"true\"\n",
        ),
    ];
    let accepted: &[(&str, &str)] = &[
        ("retry.delay", "[steps.a]\nrun = \"true\"\nretry = { attempts = 2, delay = \"@\" }\n"),
        ("estimate", "[steps.a]\nrun = \"true\"\nestimate = \"@\"\n"),
    ];
    for zero in ["0s", "0ms", "0 s", "0m 0s"] {
        for (field, body) in refused {
            let text = format!("[runbook]\nname = \"z\"\n{}", body.replace('@', zero));
            let sb = crate::support::Scratch::new(&text);
            let out = run_in(sb.path(), &["check", "r.toml"]);
            assert_eq!(out.code, 3, "{field} = {zero:?} was accepted:\n{text}\n{out:?}");
            let (line, col) = text
                .lines()
                .enumerate()
                .find_map(|(i, l)| l.find(&format!("\"{zero}\"")).map(|c| (i + 1, c + 1)))
                .expect("the value");
            let at = format!("r.toml:{line}:{col}: error[RB030]");
            assert!(out.stderr.contains(&at), "{field} = {zero:?}: not reported at {at}:\n{}", out.stderr);
            assert!(out.stderr.contains("help:"), "{field}: no hint:\n{}", out.stderr);
        }
        for (field, body) in accepted {
            let text = format!("[runbook]\nname = \"z\"\n{}", body.replace('@', zero));
            let sb = crate::support::Scratch::new(&text);
            let out = run_in(sb.path(), &["check", "r.toml"]);
            assert_eq!(out.code, 0, "{field} = {zero:?} was refused:\n{text}\n{out:?}");
        }
    }
}

/// Without a terminal (output to a pipe), a long quiet step says it is still running every
/// `$RUNBOOK_HEARTBEAT` (30 s when unset): a line on the terminal, never a journal record
/// nor a line of the step's log. `sleep 3` with a 1 s heartbeat says so at least twice
/// (the bound the issue asks for); the default says nothing in 3 s.
#[test]
fn a_long_quiet_step_has_a_heartbeat_line_without_a_terminal() {
    let sb = crate::support::Scratch::new(
        "[runbook]\nname = \"beat\"\n[steps.wait]\nrun = \"echo begun; sleep 3\"\n",
    );
    let out = sb.run(&[], &[("RUNBOOK_HEARTBEAT", "1s")]);
    assert_eq!(out.code, 0, "{out:?}");
    let beats: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("  wait: still running (")).collect();
    assert!(beats.len() >= 2, "fewer than 2 heartbeat lines:\n{}", out.stdout);
    let run = sb.latest_run();
    let audit = sb.audit(&run);
    assert!(!audit.contains("still running"), "{audit}");
    let logs = sb.cmd(&["logs", &run], &[]);
    assert!(logs.stdout.contains("begun") && !logs.stdout.contains("still running"), "{logs:?}");
    // The default interval is long: a 3 s step has none.
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("still running"), "{}", out.stdout);
    // A value that is not a duration is said, once, and the default is used.
    let out = sb.run(&[], &[("RUNBOOK_HEARTBEAT", "often")]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("RUNBOOK_HEARTBEAT"), "{out:?}");
}

/// An HTTP step that cannot get an answer says why in words, never with a library's
/// `Debug` text (`InvalidContentType`, `UnknownIssuer`, `client error (Connect)`): HTTPS to
/// a plain-HTTP server, a certificate nobody trusts, one for another name, a refused
/// connection, a server that never answers, a name that does not resolve. Real servers on
/// 127.0.0.1.
#[test]
fn http_failures_are_said_in_words_without_debug_strings() {
    use std::io::{Read as _, Write as _};
    let sb = crate::support::Scratch::new("");
    let tls = crate::world::tls_peer(sb.path());
    // A plain HTTP server: answers every connection with a 200.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let plain_port = plain.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut c in plain.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    // A server that accepts and never answers.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mute_port = mute.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in mute.incoming().flatten() {
            held.push(c);
        }
    });
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let cases = [
        ("plain", format!("https://127.0.0.1:{plain_port}/"), "TLS"),
        ("untrusted", format!("https://127.0.0.1:{}/", tls.port), "not trusted"),
        (
            "other_name",
            format!("https://localhost:{}/\", ca-file = \"ca.pem", tls.port),
            "not valid for the host name",
        ),
        ("refused", format!("http://127.0.0.1:{closed_port}/"), "connection refused (nothing listens"),
        ("mute", format!("http://127.0.0.1:{mute_port}/"), "no answer within 1s (`request-timeout`)"),
        // `.invalid` never resolves (RFC 6761), online or not.
        ("dns", "http://no-such-host.invalid/".to_string(), "the host name does not resolve (DNS)"),
    ];
    let mut text = String::from("[runbook]\nname = \"words\"\n");
    for (id, url, _) in &cases {
        text.push_str(&format!(
            "[steps.{id}]\nhttp = {{ url = \"{url}\", request-timeout = \"1s\" }}\nneeds = []\non-failure = \"continue\"\n"
        ));
    }
    std::fs::write(sb.path().join("r.toml"), &text).expect("runbook");
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{out:?}");
    for (id, _, words) in &cases {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("FAILED {id}:")))
            .unwrap_or_else(|| panic!("no failure line for {id}:\n{}", out.stdout));
        assert!(line.contains(words), "{id}: {words:?} not in {line:?}\n{}", out.stdout);
    }
    // No Debug text of rustls, reqwest, hyper or io anywhere: a variant name glued in
    // CamelCase, a `Kind(..)`, `Custom {`, `(Connect)`.
    let all = format!("{}{}", out.stdout, out.stderr);
    for debug in [
        "InvalidContentType",
        "UnknownIssuer",
        "NotValidForName",
        "InvalidCertificate",
        "client error (Connect)",
        "Kind(",
        "Custom {",
        "error sending request for url",
        "os error",
    ] {
        assert!(!all.contains(debug), "{debug:?} reached the terminal:\n{all}");
    }
}

/// One `check` reports every mistake that does not depend on another, in its first round
/// (issue 14: three rounds for 15 mistakes). The fixture marks each mistake with `# ->` on
/// its line: unknown keys, bad enum values, wrong types, bad and zero durations, unknown and
/// doubled dependencies, a cycle, templates and expressions that do not compile, steps with
/// no kind or two, an include's unknown parameter; several in one step, beside each other.
#[test]
fn check_reports_every_independent_mistake_in_one_round() {
    let file = "tests/fixtures/many-mistakes/r.toml";
    let text = std::fs::read_to_string(crate::support::root().join(file)).expect("fixture");
    let marked: Vec<usize> =
        text.lines().enumerate().filter(|(_, l)| l.contains("# ->")).map(|(i, _)| i + 1).collect();
    assert!(marked.len() >= 15, "the fixture has {} mistakes", marked.len());
    let out = crate::support::run(&["check", "--format", "json", file]);
    assert_eq!(out.code, 3, "{out:?}");
    let diags: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json diagnostics");
    let lines: Vec<u64> = diags
        .iter()
        .filter(|d| d["file"] == file && d["severity"] != "warning")
        .filter_map(|d| d["line"].as_u64())
        .collect();
    let missed: Vec<usize> = marked.iter().copied().filter(|l| !lines.contains(&(*l as u64))).collect();
    assert!(
        missed.is_empty(),
        "lines with a mistake not reported in the first round: {missed:?}\n{}",
        out.stdout
    );
    // Nothing reported twice, nor where there is no mistake (a follow-on of a pruned value).
    let unmarked: Vec<u64> = lines.iter().copied().filter(|l| !marked.contains(&(*l as usize))).collect();
    assert!(unmarked.is_empty(), "diagnostics on lines without a mistake: {unmarked:?}\n{}", out.stdout);
    let human = crate::support::run(&["check", file]);
    insta::assert_snapshot!(format!("exit: {}\n{}", human.code, human.stderr));
}

/// The class behind the fixture above: a wrong value in any optional key of a step hides
/// no other mistake of that step. A corpus: each such key given a wrong value, in a step
/// whose `run` text names an undeclared parameter; one `check` reports both.
#[test]
fn a_wrong_value_in_any_key_of_a_step_hides_no_other_mistake_of_it() {
    let wrong: &[&str] = &[
        "on-failure = \"explode\"",
        "idempotent = \"yes\"",
        "outputs = \"x\"",
        "needs = \"first\"",
        "env = \"X=1\"",
        "timeout = 5",
        "retry = \"3\"",
        "estimate = 5",
        "dir = 5",
        "title = 5",
        "description = 5",
        "when = 5",
        "confirm = 5",
        "compensate = \"undo\"",
        "shell = \"bash\"",
        "preconditions = 5",
    ];
    for line in wrong {
        let text = format!(
            "[runbook]\nname = \"w\"\n[steps.first]\nrun = \"true\"\n[steps.s]\nrun = \"echo {{{{ params.nope }}}}\"\n{line}\n"
        );
        let sb = crate::support::Scratch::new(&text);
        let out = run_in(sb.path(), &["check", "--format", "json", "r.toml"]);
        assert_eq!(out.code, 3, "{line}: {out:?}");
        let diags: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
        let at: Vec<(u64, &str)> = diags
            .iter()
            .map(|d| (d["line"].as_u64().unwrap_or(0), d["code"].as_str().unwrap_or("")))
            .collect();
        assert!(at.contains(&(6, "RB041")), "{line}: the template's mistake is hidden: {at:?}");
        assert!(at.iter().any(|(l, _)| *l == 7), "{line}: the wrong value is not reported: {at:?}");
        assert_eq!(at.len(), 2, "{line}: a follow-on was reported: {at:?}\n{}", out.stdout);
    }
}

/// `runs --watch` on a store that does not exist yet waits for it (as it waits for new
/// runs) instead of failing: it is still watching when it is stopped.
#[test]
fn runs_watch_on_a_new_store_keeps_watching() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state/state.db");
    let out = crate::support::run_limited(
        dir.path(),
        &["runs", "--watch", "--state", state.to_str().unwrap_or_default()],
        &[],
        std::time::Duration::from_secs(2),
    );
    assert_eq!(out.code, crate::support::HUNG, "it stopped watching: {out:?}");
    assert!(out.stderr.contains("no runs yet"), "{out:?}");
    assert!(!dir.path().join("state").exists());
}
