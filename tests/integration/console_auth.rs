//! The console's identities and first writes (issue 16, p16-auth): operator tokens
//! (`runbook serve token add|list|revoke`, `--auth token`), the trusted proxy's identity
//! header (`--auth proxy`), approving and rejecting from the browser through the CLI's own
//! decision code, CSRF and Origin checks. The real binary serving on loopback, real runs
//! in a temp SQLite store (and a real PostgreSQL cluster), plain HTTP/1.1 written by hand.

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Output, Scratch, bin, ok, run_in_with_env};

pub(crate) const GATE: &str = r#"[runbook]
name = "gate"

[steps.sign_off]
approval = { prompt = "Ship release 42?", approvers = ["alice", "bob", "carol", "dave"], min-approvals = 2, inputs = { ticket = { type = "string", pattern = "^OPS-[0-9]+$", description = "the change ticket" } } }

[steps.deploy]
needs = ["sign_off"]
run = "echo deployed"
"#;

pub(crate) struct Served {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `runbook serve --listen 127.0.0.1:0 --state STATE EXTRA` in `dir`.
pub(crate) fn serve(dir: &Path, state: &str, extra: &[&str]) -> Served {
    serve_env(dir, state, extra, &[])
}

/// [`serve`] with extra environment variables (the sources of a run's secrets).
pub(crate) fn serve_env(dir: &Path, state: &str, extra: &[&str], env: &[(&str, &str)]) -> Served {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--state", state])
        .args(extra)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runbook serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("stdout");
    let port = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no `listening on` line: {line:?}"));
    Served { child, port }
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Served {
    pub(crate) fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One request: `headers` as given (the Host is added), `body` form-encoded.
    pub(crate) fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        self.send_as(&format!("127.0.0.1:{}", self.port), method, path, headers, body)
    }

    /// [`Served::send`] with the given `Host` (what a proxy in front forwards).
    pub(crate) fn send_as(
        &self,
        host: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Resp { status, headers, body: body.to_string() }
    }

    /// A form POST from the console's own page (its Origin), with a session cookie.
    pub(crate) fn post_form(&self, path: &str, cookie: Option<&str>, body: &str) -> Resp {
        let origin = self.origin();
        let mut headers = vec![("Origin", origin.as_str())];
        let c;
        if let Some(cookie) = cookie {
            c = format!("runbook_session={cookie}");
            headers.push(("Cookie", &c));
        }
        self.send("POST", path, &headers, body)
    }

    /// Sign in with `token` on `/login`: the session id.
    pub(crate) fn login(&self, token: &str) -> String {
        let r = self.post_form("/login", None, &format!("token={token}"));
        assert_eq!(r.status, 303, "{r:?}");
        let cookie = r.header("set-cookie").expect("a session cookie").to_string();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attr), "{cookie}");
        }
        cookie.split(';').next().and_then(|c| c.strip_prefix("runbook_session=")).expect("id").to_string()
    }

    pub(crate) fn get_as(&self, path: &str, cookie: &str) -> Resp {
        self.send("GET", path, &[("Cookie", &format!("runbook_session={cookie}"))], "")
    }
}

/// The CSRF token of the first form of a page.
pub(crate) fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().expect("value").to_string()
}

/// `runbook serve token add NAME`: the token printed.
pub(crate) fn add_token(dir: &Path, state: &str, name: &str) -> String {
    let out = run_in_with_env(dir, &["serve", "token", "add", name, "--state", state], &[]);
    ok(&out, 0);
    out.stdout.trim().to_string()
}

fn kinds(scratch: &Scratch, run: &str) -> Vec<String> {
    scratch.events(run).into_iter().map(|(k, _)| k).collect()
}

fn decisions(scratch: &Scratch, run: &str) -> Vec<String> {
    scratch
        .audit(run)
        .lines()
        .filter(|l| l.contains("approval_granted") || l.contains("approval_rejected"))
        .map(str::to_string)
        .collect()
}

fn tokens_round_trip(dir: &Path, state: &str) {
    let cmd = |args: &[&str]| -> Output {
        let mut all = args.to_vec();
        all.extend(["--state", state]);
        run_in_with_env(dir, &all, &[])
    };
    let add = cmd(&["serve", "token", "add", "alice"]);
    ok(&add, 0);
    let token = add.stdout.trim().to_string();
    assert!(token.starts_with("rbt_") && token.len() == 68, "{token}");
    assert!(add.stderr.contains("shown once"), "{}", add.stderr);
    let again = cmd(&["serve", "token", "add", "bob"]);
    ok(&again, 0);
    assert_ne!(again.stdout.trim(), token);
    // A name has one token.
    let twice = cmd(&["serve", "token", "add", "alice"]);
    assert_ne!(twice.code, 0, "{twice:?}");
    assert!(twice.stderr.contains("exists already"), "{}", twice.stderr);
    // Names are identities: one visible line.
    let bad = cmd(&["serve", "token", "add", "al\u{1b}[31mice"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    let list = cmd(&["serve", "token", "list"]);
    ok(&list, 0);
    assert!(list.stdout.contains("alice") && list.stdout.contains("bob"), "{}", list.stdout);
    assert!(list.stdout.contains("never"), "{}", list.stdout);
    assert!(!list.stdout.contains(&token[4..]), "the list shows a token: {}", list.stdout);
    let revoke = cmd(&["serve", "token", "revoke", "bob"]);
    ok(&revoke, 0);
    let list = cmd(&["serve", "token", "list"]);
    let bob = list.stdout.lines().find(|l| l.starts_with("bob")).expect("bob listed");
    assert!(!bob.trim_end().ends_with("no"), "bob not revoked: {bob}");
    let none = cmd(&["serve", "token", "revoke", "nobody"]);
    assert_ne!(none.code, 0);
}

#[test]
fn tokens_are_printed_once_kept_hashed_listed_and_revoked() {
    let scratch = Scratch::new(GATE);
    tokens_round_trip(scratch.path(), &scratch.state());
    // The store keeps the hash, never the token.
    let db = std::fs::read(scratch.state()).expect("store");
    let out = run_in_with_env(
        scratch.path(),
        &["serve", "token", "add", "carol", "--state", &scratch.state()],
        &[],
    );
    let token = out.stdout.trim().to_string();
    let db_after = std::fs::read(scratch.state()).expect("store");
    let hex = &token[4..];
    for bytes in [&db, &db_after] {
        assert!(!bytes.windows(hex.len()).any(|w| w == hex.as_bytes()), "the store holds a token");
    }
}

#[test]
fn tokens_on_postgresql() {
    let place = crate::resume::Place::postgres(GATE);
    tokens_round_trip(place.path(), place.state());
    let token = add_token(place.path(), place.state(), "carol");
    let served = serve(place.path(), place.state(), &["--auth", "token"]);
    let session = served.login(&token);
    let page = served.get_as("/approvals", &session);
    assert!(page.body.contains("signed in as carol"), "{}", page.body);
    let list = place.cmd(&["serve", "token", "list"]);
    let carol = list.stdout.lines().find(|l| l.starts_with("carol")).expect("carol listed");
    assert!(!carol.contains("never"), "the sign-in is not recorded as a use: {carol}");
    // A decision from the console lands in the shared store, as the CLI's would.
    ok(&place.cmd(&["run", "r.toml", "--yes", "--as", "alice"]), 4);
    let listed: serde_json::Value =
        serde_json::from_str(&place.cmd(&["runs", "--format", "json"]).stdout).expect("JSON");
    let run = listed[0]["run_id"].as_str().expect("a run").to_string();
    let page = served.get_as("/approvals", &session);
    let csrf = csrf_of(&page.body);
    let r = served.post_form(
        &format!("/runs/{run}/approvals/sign_off"),
        Some(&session),
        &format!("decision=approve&input.ticket=OPS-9&csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let journal = place.cmd(&["audit", &run, "--format", "jsonl"]).stdout;
    assert!(journal.contains("approval_granted") && journal.contains("\"operator\":\"carol\""), "{journal}");
    ok(&place.cmd(&["audit", "verify", &run]), 0);
}

#[test]
fn approvals_from_the_console_are_the_clis_decisions_as_the_signed_in_operator() {
    let scratch = Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
    let run = scratch.latest_run();
    let (dir, state) = (scratch.path(), scratch.state());
    let alice = add_token(dir, &state, "alice");
    let bob = add_token(dir, &state, "bob");
    let carol = add_token(dir, &state, "carol");
    let mallory = add_token(dir, &state, "mallory");
    let served = serve(dir, &state, &["--auth", "token"]);
    let action = format!("/runs/{run}/approvals/sign_off");
    let before = kinds(&scratch, &run);

    // Anonymous: the page shows what waits, no form; a POST is refused.
    let page = served.send("GET", "/approvals", &[], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Ship release 42?") && page.body.contains("Sign in"), "{}", page.body);
    assert!(!page.body.contains("name=\"decision\""), "a form for nobody: {}", page.body);
    let r = served.post_form(&action, None, "decision=approve&input.ticket=OPS-1");
    assert_eq!(r.status, 403, "{r:?}");
    let r = served.send("POST", &format!("/api{action}"), &[], "decision=approve&input.ticket=OPS-1");
    assert_eq!(r.status, 401, "{r:?}");
    // A wrong token signs no one in.
    let r = served.post_form(
        "/login",
        None,
        "token=rbt_0000000000000000000000000000000000000000000000000000000000000000",
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("set-cookie").is_none());

    // Bob signs in: the header says so, the form has the inputs and a CSRF token.
    let bob_session = served.login(&bob);
    let page = served.get_as("/approvals", &bob_session);
    assert!(page.body.contains("signed in as bob"), "{}", page.body);
    assert!(
        page.body.contains("name=\"input.ticket\"") && page.body.contains("^OPS-[0-9]+$"),
        "{}",
        page.body
    );
    assert!(page.body.contains("2 still needed"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    // The run page has the same form.
    let run_page = served.get_as(&format!("/runs/{run}"), &bob_session);
    assert!(
        run_page.body.contains(&format!("action=\"{}\"", action.replace('/', "&#x2f;"))),
        "{}",
        run_page.body
    );

    // Without the CSRF token, with another session's, from another origin: refused.
    let r = served.post_form(&action, Some(&bob_session), "decision=approve&input.ticket=OPS-1");
    assert_eq!(r.status, 403, "{r:?}");
    let r = served.post_form(&action, Some(&bob_session), "decision=approve&input.ticket=OPS-1&csrf=0000");
    assert_eq!(r.status, 403, "{r:?}");
    let evil = served.send(
        "POST",
        &action,
        &[("Origin", "http://evil.example"), ("Cookie", &format!("runbook_session={bob_session}"))],
        &format!("decision=approve&input.ticket=OPS-1&csrf={csrf}"),
    );
    assert_eq!(evil.status, 403, "{evil:?}");
    assert!(evil.body.contains("cross-site"), "{}", evil.body);
    let no_origin = served.send(
        "POST",
        &action,
        &[("Cookie", &format!("runbook_session={bob_session}"))],
        &format!("decision=approve&input.ticket=OPS-1&csrf={csrf}"),
    );
    assert_eq!(no_origin.status, 403, "{no_origin:?}");
    // An input that breaks the approval's pattern: the CLI's check.
    let r = served.post_form(
        &action,
        Some(&bob_session),
        &format!("decision=approve&input.ticket=nope&csrf={csrf}"),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("input `ticket`"), "{}", r.body);
    assert_eq!(kinds(&scratch, &run), before, "a refused request journaled something");

    // Alice started the run: self-approval is refused with the CLI's words.
    let alice_session = served.login(&alice);
    let page = served.get_as("/approvals", &alice_session);
    let alice_csrf = csrf_of(&page.body);
    let r = served.post_form(
        &action,
        Some(&alice_session),
        &format!("decision=approve&input.ticket=OPS-1&csrf={alice_csrf}"),
    );
    assert_eq!(r.status, 403, "{r:?}");
    let cli = scratch.cmd(&["approve", &run, "sign_off", "--input", "ticket=OPS-1", "--as", "alice"], &[]);
    assert_ne!(cli.code, 0);
    let cli_words =
        cli.stderr.lines().find(|l| l.contains("nothing was recorded")).expect("the CLI's refusal");
    let why = cli_words.trim().trim_start_matches(['×', ' ']).trim_start_matches("error: ");
    assert!(r.body.contains(&why.replace('`', "&#96;")) || r.body.contains(why), "{why}\n{}", r.body);
    // Mallory is not an approver.
    let mallory_session = served.login(&mallory);
    let m_csrf = csrf_of(
        &served
            .get_as(&format!("/runs/{run}"), &mallory_session)
            .body
            .replace("name=\"csrf\" value=\"\"", ""),
    );
    let r = served.post_form(
        &action,
        Some(&mallory_session),
        &format!("decision=approve&input.ticket=OPS-1&csrf={m_csrf}"),
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("mallory"), "{}", r.body);
    assert_eq!(kinds(&scratch, &run), before, "a refused decision journaled something");

    // Bob approves (POST-redirect-GET), then again: one vote per person.
    let r = served.post_form(
        &action,
        Some(&bob_session),
        &format!("decision=approve&input.ticket=OPS-7&reason=looks+good&csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some(format!("/runs/{run}").as_str()));
    let r = served.post_form(&action, Some(&bob_session), &format!("decision=approve&csrf={csrf}"));
    assert_eq!(r.status, 403, "{r:?}");

    // Revoked: bob's session and token stop at once.
    ok(&scratch.cmd(&["serve", "token", "revoke", "bob"], &[]), 0);
    let page = served.get_as("/approvals", &bob_session);
    assert!(!page.body.contains("signed in as bob"), "{}", page.body);
    let r = served.send(
        "POST",
        &format!("/api{action}"),
        &[("Authorization", &format!("Bearer {bob}"))],
        "decision=reject",
    );
    assert_eq!(r.status, 401, "{r:?}");

    // Carol's form shows the ticket bob's approval fixed, as text, not as a field: a later
    // approval approves the values as given (red team adv19a-7).
    let carol_session = served.login(&carol);
    let page = served.get_as("/approvals", &carol_session);
    assert!(
        page.body.contains("fixed by the first approval") && page.body.contains("OPS-7"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("name=\"input.ticket\""), "{}", page.body);
    let api = served.send("GET", "/api/approvals", &[("Authorization", &format!("Bearer {carol}"))], "");
    assert!(api.body.contains("\"fixed\":\"OPS-7\""), "{}", api.body);

    // Carol approves through the API with her token.
    let r = served.send(
        "POST",
        &format!("/api{action}"),
        &[("Authorization", &format!("Bearer {carol}"))],
        "decision=approve&reason=ok",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"settled\":true") && r.body.contains("\"operator\":\"carol\""), "{}", r.body);

    // The CLI sees the same decisions with those names; the journal verifies; the run goes on.
    let d = decisions(&scratch, &run);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        d[0].contains("\"operator\":\"bob\"") && d[0].contains("OPS-7") && d[0].contains("looks good"),
        "{d:?}"
    );
    assert!(d[1].contains("\"operator\":\"carol\""), "{d:?}");
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
    let show = scratch.cmd(&["show", &run], &[]);
    assert!(show.stdout.contains("bob") && show.stdout.contains("carol"), "{}", show.stdout);
    ok(&scratch.cmd(&["resume", &run, "--yes", "--as", "dave"], &[]), 0);
    assert!(kinds(&scratch, &run).iter().any(|k| k == "run_finished"), "{:?}", kinds(&scratch, &run));
}

#[test]
fn without_auth_nothing_is_written_and_an_identity_header_means_nothing() {
    let scratch = Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
    let run = scratch.latest_run();
    let served = serve(scratch.path(), &scratch.state(), &[]);
    let before = kinds(&scratch, &run);
    let r = served.send(
        "POST",
        &format!("/runs/{run}/approvals/sign_off"),
        &[("Origin", &served.origin()), ("X-Forwarded-Email", "bob")],
        "decision=approve&input.ticket=OPS-1",
    );
    assert_eq!(r.status, 405, "{r:?}");
    let page = served.send("GET", "/runs", &[("X-Forwarded-Email", "bob")], "");
    assert!(!page.body.contains("signed in as"), "{}", page.body);
    assert!(page.body.contains("Read-only console"), "{}", page.body);
    assert_eq!(kinds(&scratch, &run), before);
}

#[test]
fn the_proxys_identity_header_counts_only_from_a_trusted_proxy() {
    let scratch = Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
    let run = scratch.latest_run();
    let (dir, state) = (scratch.path(), scratch.state());
    let action = format!("/runs/{run}/approvals/sign_off");
    let before = kinds(&scratch, &run);

    // The proxy is 127.0.0.2: this client (127.0.0.1) forges the header, and is anonymous.
    let elsewhere = serve(
        dir,
        &state,
        &["--auth", "proxy", "--trusted-proxy", "127.0.0.2", "--user-header", "X-Forwarded-Email"],
    );
    let page = elsewhere.send("GET", "/approvals", &[("X-Forwarded-Email", "bob")], "");
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("signed in as"), "{}", page.body);
    assert!(!page.body.contains("name=\"decision\""), "{}", page.body);
    let r = elsewhere.send(
        "POST",
        &action,
        &[("Origin", &elsewhere.origin()), ("X-Forwarded-Email", "bob")],
        "decision=approve&input.ticket=OPS-1",
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(kinds(&scratch, &run), before, "a forged header journaled something");
    drop(elsewhere);

    // From the trusted proxy the header names the user.
    let proxied = serve(dir, &state, &["--auth", "proxy", "--trusted-proxy", "127.0.0.1"]);
    let as_bob = [("X-Forwarded-Email", "bob")];
    let page = proxied.send("GET", "/approvals", &as_bob, "");
    assert!(page.body.contains("signed in as bob"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    // Identities that are not one visible, bounded line are refused, never recorded.
    let long = "b".repeat(300);
    for bad in ["bo\tb", "bob\u{202e}", "bo\u{85}b", long.as_str(), "bo\u{200b}b"] {
        let r = proxied.send("GET", "/approvals", &[("X-Forwarded-Email", bad)], "");
        assert_eq!(r.status, 400, "{bad:?}: {r:?}");
    }
    let twice = proxied.send(
        "GET",
        "/approvals",
        &[("X-Forwarded-Email", "bob"), ("X-Forwarded-Email", "carol")],
        "",
    );
    assert_eq!(twice.status, 400, "{twice:?}");
    // Another user's CSRF token is not bob's.
    let carol_page = proxied.send("GET", "/approvals", &[("X-Forwarded-Email", "carol")], "");
    let carol_csrf = csrf_of(&carol_page.body);
    assert_ne!(csrf, carol_csrf);
    let r = proxied.send(
        "POST",
        &action,
        &[("Origin", &proxied.origin()), ("X-Forwarded-Email", "bob")],
        &format!("decision=approve&input.ticket=OPS-1&csrf={carol_csrf}"),
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(kinds(&scratch, &run), before);
    let r = proxied.send(
        "POST",
        &action,
        &[("Origin", &proxied.origin()), ("X-Forwarded-Email", "bob")],
        &format!("decision=reject&reason=not+today&csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let d = decisions(&scratch, &run);
    assert!(
        d.len() == 1 && d[0].contains("approval_rejected") && d[0].contains("\"operator\":\"bob\""),
        "{d:?}"
    );
}

#[test]
fn auth_flags_are_checked_and_an_authenticated_console_off_loopback_is_not_warned_about() {
    let scratch = Scratch::new(GATE);
    for (args, words) in [
        (vec!["--auth", "proxy"], "--trusted-proxy"),
        (vec!["--trusted-proxy", "127.0.0.1"], "--auth proxy"),
        (vec!["--auth", "token", "--trusted-proxy", "127.0.0.1"], "--auth token"),
        (vec!["--auth", "proxy", "--trusted-proxy", "127.0.0.1", "--user-header", "X: y"], "header name"),
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--state", "s.db"];
        all.extend(&args);
        let out = run_in_with_env(scratch.path(), &all, &[]);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
    }
    // Off loopback with `--auth`: no warning (without it, `console::a_listen_address_off_loopback_is_warned_about`).
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--state", "s.db", "--auth", "token"])
        .current_dir(scratch.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("line");
    assert!(line.starts_with("listening on http://0.0.0.0:"), "{line}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().expect("stopped");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn the_token_commands_say_what_they_did() {
    let scratch = Scratch::new(GATE);
    let mut said = String::new();
    for args in [
        vec!["serve", "token", "list"],
        vec!["serve", "token", "add", "alice"],
        vec!["serve", "token", "add", "bob"],
        vec!["serve", "token", "add", "alice"],
        vec!["serve", "token", "add", "al\u{1b}ice"],
        vec!["serve", "token", "revoke", "bob"],
        vec!["serve", "token", "revoke", "nobody"],
        vec!["serve", "token", "list"],
    ] {
        let out = scratch.cmd(&args, &[]);
        said.push_str(&format!(
            "$ runbook {}\n{}{}[exit {}]\n",
            args.join(" ").replace('\u{1b}', "\\u{1b}"),
            out.stdout,
            out.stderr,
            out.code
        ));
    }
    insta::with_settings!({ filters => vec![
        (r"rbt_[0-9a-f]{64}", "rbt_[TOKEN]"),
        (r"`[^`]*/state/state\.db`", "`[STATE]`"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[TIME]"),
    ] }, {
        insta::assert_snapshot!("console_auth_token_commands", said);
    });
}

/// Waits until `script` (a function body) returns `want` in the page, bounded (a page that
/// never gets there fails the test with what it showed).
pub(crate) fn wait_page(browser: &crate::browser::Browser, script: &str, want: &serde_json::Value) {
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        last = browser.eval(script);
        if &last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = browser.eval("return document.body ? document.body.innerText : ''");
    panic!("{script} gave {last}, not {want}; the page says:\n{text}");
}

pub(crate) fn sign_in(browser: &crate::browser::Browser, served: &Served, token: &str) {
    browser.open(&format!("{}/login", served.origin()));
    browser.eval(&format!(
        "document.getElementById('token').value = '{token}'; document.querySelector('form.login button').click(); return null"
    ));
    wait_page(browser, "return location.pathname", &serde_json::json!("/approvals"));
}

#[test]
fn two_operators_approve_in_a_real_browser_and_the_waiting_engine_goes_on() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    let bob = add_token(dir, &state, "bob");
    let carol = add_token(dir, &state, "carol");
    // A real engine, attached, waiting for the approval.
    let (mut engine, run) = waiting_engine(&scratch, None);
    let served = serve(dir, &state, &["--auth", "token"]);
    let browser = crate::browser::Browser::start();

    // Bob signs in and approves from /approvals with the ticket.
    sign_in(&browser, &served, &bob);
    let header = browser.eval("return document.getElementById('signed-in').textContent");
    assert_eq!(header, serde_json::json!("signed in as bob"));
    browser.eval(
        "document.querySelector('input[name=\"input.ticket\"]').value = 'OPS-7'; \
         document.querySelector('input[name=reason]').value = 'checked the canary'; \
         document.querySelector('button.approve').click(); return null",
    );
    wait_page(&browser, "return location.pathname", &serde_json::json!(format!("/runs/{run}")));
    // Bob signs out.
    browser.eval("document.querySelector('form.who button').click(); return null");
    wait_page(&browser, "return location.pathname", &serde_json::json!("/runs"));
    assert_eq!(browser.eval("return document.getElementById('signed-in')"), serde_json::Value::Null);

    // Carol, on the run page: a form without its CSRF token is refused, nothing recorded.
    sign_in(&browser, &served, &carol);
    browser.open(&format!("{}/runs/{run}", served.origin()));
    let before = kinds(&scratch, &run);
    browser.eval(
        "document.querySelector('form.decide input[name=csrf]').remove(); \
         document.querySelector('form.decide button.approve').click(); return null",
    );
    wait_page(&browser, "return document.title.startsWith('403 form refused')", &serde_json::json!(true));
    assert_eq!(kinds(&scratch, &run), before);
    // Then she approves with the page's form as it came.
    browser.open(&format!("{}/runs/{run}", served.origin()));
    browser.eval("document.querySelector('form.decide button.approve').click(); return null");
    wait_page(&browser, "return location.pathname", &serde_json::json!(format!("/runs/{run}")));

    // The engine goes on by itself and finishes; the CLI (`runbook audit --format jsonl`,
    // `audit verify`, `show`) sees the same decisions.
    let status = engine.wait().expect("the engine");
    assert_eq!(status.code(), Some(0), "the engine did not finish the run");
    let d = decisions(&scratch, &run);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        d[0].contains("\"operator\":\"bob\"")
            && d[0].contains("OPS-7")
            && d[0].contains("checked the canary"),
        "{d:?}"
    );
    assert!(d[1].contains("\"operator\":\"carol\""), "{d:?}");
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
    let show = scratch.cmd(&["show", &run], &[]);
    assert!(show.stdout.contains("status    succeeded"), "{}", show.stdout);
}

#[test]
fn what_an_approver_types_is_redacted_and_unchecked_text_is_refused() {
    let runbook = r#"[runbook]
name = "guarded"

[secrets.DB_URL]
env = "SENTINEL_DB_URL"

[steps.sign_off]
approval = { prompt = "Go?", approvers = ["bob", "carol"], min-approvals = 2, inputs = { note = { type = "string", default = "none" } } }

[steps.use]
needs = ["sign_off"]
run = "echo connecting"
env = { DB_URL = "{{ secrets.DB_URL }}" }
"#;
    let secret = crate::secrets::DB_URL;
    let scratch = Scratch::new(runbook);
    let (dir, state) = (scratch.path(), scratch.state());
    let env = [("SENTINEL_DB_URL", secret)];
    ok(&scratch.run(&["--yes", "--as", "alice"], &env), 4);
    let run = scratch.latest_run();
    let bob = add_token(dir, &state, "bob");
    let carol = add_token(dir, &state, "carol");
    let action = format!("/runs/{run}/approvals/sign_off");
    let pasted = format!("decision=approve&reason=pasted+{}", encode(secret));

    // A console given the run's secret sources refuses an input that holds a secret (it
    // would run as its placeholder: red team adv19a-1), and redacts a reason bob pasted.
    let with_sources = serve_env(dir, &state, &["--auth", "token"], &env);
    let session = with_sources.login(&bob);
    let csrf = csrf_of(&with_sources.get_as("/approvals", &session).body);
    let before = kinds(&scratch, &run);
    let r = with_sources.post_form(
        &action,
        Some(&session),
        &format!("{pasted}&input.note={}&csrf={csrf}", encode(secret)),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("contains the value of secret"), "{}", r.body);
    crate::secrets::assert_clean("the refusal", &r.body);
    assert_eq!(kinds(&scratch, &run), before, "a refused approval journaled something");
    let r = with_sources.post_form(&action, Some(&session), &format!("{pasted}&csrf={csrf}"));
    assert_eq!(r.status, 303, "{r:?}");
    let journal = scratch.audit(&run);
    assert!(journal.contains("\"operator\":\"bob\"") && journal.contains("pasted"), "{journal}");
    crate::secrets::assert_clean("the journal", &journal);
    for path in [
        "/approvals".to_string(),
        format!("/runs/{run}"),
        format!("/api/runs/{run}"),
        "/api/approvals".into(),
    ] {
        crate::secrets::assert_clean(&path, &with_sources.get_as(&path, &session).body);
    }
    drop(with_sources);

    // A console without them cannot check text: refused, nothing recorded; a decision
    // without words is recorded.
    let without = serve(dir, &state, &["--auth", "token"]);
    let session = without.login(&carol);
    let csrf = csrf_of(&without.get_as("/approvals", &session).body);
    let before = kinds(&scratch, &run);
    let r = without.post_form(&action, Some(&session), &format!("{pasted}&csrf={csrf}"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("cannot check what was typed") && r.body.contains("nothing was recorded"),
        "{}",
        r.body
    );
    crate::secrets::assert_clean("the refusal", &r.body);
    assert_eq!(kinds(&scratch, &run), before);
    let r = without.post_form(&action, Some(&session), &format!("decision=approve&csrf={csrf}"));
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(decisions(&scratch, &run).len(), 2);
    crate::secrets::assert_clean("the journal", &scratch.audit(&run));
}

/// `text` as a form value (every byte but letters and digits percent-encoded).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[test]
fn an_operator_abandons_a_run_from_the_console_as_the_cli_would() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    ok(&scratch.run(&["--yes", "--as", "alice"], &[]), 4);
    let run = scratch.latest_run();
    let bob = add_token(dir, &state, "bob");
    let carol = add_token(dir, &state, "carol");
    let served = serve(dir, &state, &["--auth", "token"]);
    let action = format!("/runs/{run}/abandon");
    let before = kinds(&scratch, &run);

    // Anonymous, a bearer-less API call, no reason, no CSRF token: refused, nothing journaled.
    assert_eq!(served.post_form(&action, None, "reason=done").status, 403);
    assert_eq!(served.send("POST", &format!("/api{action}"), &[], "reason=done").status, 401);
    let session = served.login(&bob);
    let page = served.get_as(&format!("/runs/{run}"), &session);
    assert!(page.body.contains("Abandon the run"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    assert_eq!(served.post_form(&action, Some(&session), &format!("reason=+&csrf={csrf}")).status, 400);
    assert_eq!(served.post_form(&action, Some(&session), "reason=done").status, 403);
    assert_eq!(kinds(&scratch, &run), before);

    // Bob abandons it: journaled as the CLI journals it, with bob as the operator.
    let r = served.post_form(&action, Some(&session), &format!("reason=rolled+back+by+hand&csrf={csrf}"));
    assert_eq!(r.status, 303, "{r:?}");
    let journal = scratch.audit(&run);
    let abandoned = journal.lines().find(|l| l.contains("run_abandoned")).expect("run_abandoned");
    assert!(
        abandoned.contains("\"operator\":\"bob\"") && abandoned.contains("rolled back by hand"),
        "{abandoned}"
    );
    assert!(abandoned.contains("\"compensated\":false"), "{abandoned}");
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
    assert!(scratch.cmd(&["show", &run], &[]).stdout.contains("abandoned"));
    // Again: the CLI's refusal, in the console's words too.
    let cli = scratch.cmd(&["abandon", &run, "--reason", "again"], &[]);
    assert_ne!(cli.code, 0);
    assert!(cli.stderr.contains("has finished (abandoned); there is nothing to abandon"), "{}", cli.stderr);
    let r = served.post_form(&action, Some(&session), &format!("reason=again&csrf={csrf}"));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("has finished (abandoned); there is nothing to abandon"), "{}", r.body);

    // A run in a live engine is refused; through the API with a bearer.
    let (mut engine, live) = waiting_engine(&scratch, Some(&run));
    let before = kinds(&scratch, &live);
    let r = served.send(
        "POST",
        &format!("/api/runs/{live}/abandon"),
        &[("Authorization", &format!("Bearer {carol}"))],
        "reason=not+while+it+runs",
    );
    let _ = engine.kill();
    let _ = engine.wait();
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("is running in a live engine"), "{}", r.body);
    assert_eq!(kinds(&scratch, &live), before);
}

/// `runbook run r.toml --yes --wait --as alice`, once its run (not `other`) asks for the
/// approval: the engine and the run.
fn waiting_engine(scratch: &Scratch, other: Option<&str>) -> (Child, String) {
    let mut engine = scratch
        .command(&["run", "r.toml", "--yes", "--wait", "--as", "alice"], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runbook run");
    let state = scratch.state();
    for _ in 0..1000 {
        if let Some(id) = crate::support::latest_run_id(scratch.path(), Path::new(&state))
            && Some(id.as_str()) != other
            && scratch.audit(&id).contains("approval_requested")
        {
            return (engine, id);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = engine.kill();
    let _ = engine.wait();
    panic!("the engine never asked for the approval");
}

/// Class rule: every write route, whatever it does, refuses an anonymous form, an API call
/// without a bearer, a form without the session's CSRF token and one from another origin,
/// and journals nothing (the checks are made once, before any route: `actions::admit`).
#[test]
fn every_write_route_refuses_what_is_not_a_signed_in_form_of_this_console() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    ok(&scratch.run(&["--yes", "--as", "alice"], &[]), 4);
    let run = scratch.latest_run();
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token", "--runbooks", "."]);
    let session = served.login(&bob);
    let csrf = csrf_of(&served.get_as(&format!("/runs/{run}"), &session).body);
    let before = kinds(&scratch, &run);
    let body = "decision=approve&input.ticket=OPS-1&reason=x";
    let cookie = format!("runbook_session={session}");
    let runs = || scratch.cmd(&["runs", "--format", "json"], &[]).stdout;
    let runs_before = runs();
    for path in [
        format!("/runs/{run}/approvals/sign_off"),
        format!("/runs/{run}/abandon"),
        format!("/runs/{run}/decisions"),
        format!("/runs/{run}/cancel"),
        "/logout".into(),
        "/runbooks/r/start".into(),
    ] {
        assert_eq!(served.post_form(&path, None, body).status, 403, "anonymous {path}");
        assert_eq!(served.post_form(&path, Some(&session), body).status, 403, "no CSRF {path}");
        let wrong = format!("{body}&csrf={}", "0".repeat(64));
        assert_eq!(served.post_form(&path, Some(&session), &wrong).status, 403, "wrong CSRF {path}");
        let right = format!("{body}&csrf={csrf}");
        for origin in ["http://evil.example", "null", "https://127.0.0.1"] {
            let r = served.send("POST", &path, &[("Origin", origin), ("Cookie", &cookie)], &right);
            assert_eq!(r.status, 403, "{origin} {path}");
        }
        let r =
            served.send("POST", &path, &[("Referer", "http://evil.example/x"), ("Cookie", &cookie)], &right);
        assert_eq!(r.status, 403, "referer {path}");
        let api = format!("/api{path}");
        if path != "/logout" {
            assert_eq!(served.send("POST", &api, &[], body).status, 401, "no bearer {api}");
            let r = served.send("POST", &api, &[("Cookie", &cookie)], &right);
            assert_eq!(r.status, 401, "a cookie on the API {api}");
        }
    }
    assert_eq!(kinds(&scratch, &run), before, "a refused request journaled something");
    assert_eq!(runs(), runs_before, "a refused request queued a run");
    // The session still works: nothing above signed bob out.
    assert!(served.get_as("/approvals", &session).body.contains("signed in as bob"));
}

/// One request with the given `Host` (what a proxy forwards): (status, body).
fn raw_as(
    served: &Served,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let r = served.send_as(host, method, path, headers, body);
    (r.status, r.body)
}

/// adv16s F2: behind the book's TLS proxy (its exact command line; nginx forwards `Host:
/// ops-console.example.com:443`, or the name alone) a browser's form carries `Origin:
/// https://ops-console.example.com`: that is the console's own origin. Every other origin
/// is still refused.
#[test]
fn a_form_through_the_books_tls_proxy_is_accepted_and_other_origins_are_not() {
    let scratch = Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
    let run = scratch.latest_run();
    let (dir, state) = (scratch.path(), scratch.state());
    let book = std::fs::read_to_string(crate::support::root().join("book/src/user-guide/console.md"))
        .expect("the console's book page");
    let line = book
        .lines()
        .find(|l| l.starts_with("$ runbook serve --auth proxy"))
        .expect("the book's proxy command line");
    let args: Vec<&str> = line.trim_start_matches("$ runbook serve ").split_whitespace().collect();
    let served = serve(dir, &state, &args);
    let path = format!("/runs/{run}/approvals/sign_off");
    for (i, (host, origin, want)) in [
        ("ops-console.example.com:443", "http://ops-console.example.com", 403),
        ("ops-console.example.com", "http://ops-console.example.com:8443", 403),
        ("ops-console.example.com:443", "https://evil.example.com", 403),
        ("ops-console.example.com:443", "https://ops-console.example.com:8443", 403),
        ("ops-console.example.com:443", "null", 403),
        ("ops-console.example.com:443", "https://ops-console.example.com", 303),
        // nginx's `proxy_set_header Host $host;` (no port) reaches the same console.
        ("ops-console.example.com", "https://ops-console.example.com", 303),
    ]
    .into_iter()
    .enumerate()
    {
        // bob, then carol (a second vote by bob would be refused for being his second).
        let who = ("X-Forwarded-Email", if i < 6 { "bob" } else { "carol" });
        let (status, page) = raw_as(&served, "GET", &format!("/runs/{run}"), host, &[who], "");
        assert_eq!(status, 200, "{page}");
        let csrf = csrf_of(&page);
        let (status, body) = raw_as(
            &served,
            "POST",
            &path,
            host,
            &[who, ("Origin", origin)],
            &format!("decision=approve&input.ticket=OPS-7&csrf={csrf}"),
        );
        assert_eq!(
            status,
            want,
            "{host} {origin}: {}",
            body.lines().find(|l| l.contains("class=\"error\"")).unwrap_or("")
        );
    }
    let decided = decisions(&scratch, &run);
    assert_eq!(decided.len(), 2, "{decided:?}");
}

/// adv16s F2 for `--auth token` behind a TLS front that forwards the name without a port:
/// `/login` from `https://NAME` signs in; from `http://NAME:8443` it does not.
#[test]
fn token_login_behind_a_tls_front_is_accepted() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    let carol = add_token(dir, &state, "carol");
    let served = serve(dir, &state, &["--auth", "token", "--host", "ops-console.example.com:443"]);
    let host = "ops-console.example.com";
    let body = format!("token={carol}");
    let (status, _) =
        raw_as(&served, "POST", "/login", host, &[("Origin", "http://ops-console.example.com:8443")], &body);
    assert_eq!(status, 403);
    let (status, page) =
        raw_as(&served, "POST", "/login", host, &[("Origin", "https://ops-console.example.com")], &body);
    assert_eq!(status, 303, "{page}");
}

/// adv16s F1: one token holder cannot fill the console's sessions. A token keeps at most
/// its share of sessions (its oldest is ended when it signs in once more), so mallory
/// signing in again and again ends her own first sessions, never carol's sign-in; and
/// revoking mallory ends every one of her sessions.
#[test]
fn one_token_cannot_lock_every_operator_out_of_the_console() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    let mallory = add_token(dir, &state, "mallory");
    let carol = add_token(dir, &state, "carol");
    let served = serve(dir, &state, &["--auth", "token"]);
    let first = served.login(&mallory);
    assert!(served.get_as("/approvals", &first).body.contains("signed in as mallory"));
    let mut last = String::new();
    for _ in 0..200 {
        last = served.login(&mallory);
    }
    assert!(
        !served.get_as("/approvals", &first).body.contains("signed in as mallory"),
        "mallory's first session outlived 200 more"
    );
    assert!(
        served.get_as("/approvals", &last).body.contains("signed in as mallory"),
        "mallory's newest session was ended"
    );
    let c = served.login(&carol);
    assert!(served.get_as("/approvals", &c).body.contains("signed in as carol"));
    ok(&run_in_with_env(dir, &["serve", "token", "revoke", "mallory", "--state", &state], &[]), 0);
    assert!(!served.get_as("/approvals", &last).body.contains("signed in as mallory"));
    assert!(
        served.get_as("/approvals", &c).body.contains("signed in as carol"),
        "revoking mallory ended carol's session"
    );
}

/// adv16s F3: a name is compared as an identity (NFKC, case folded, spaces collapsed: the
/// approval rules' `identity_key`), so a revoked `bob` gets no new token as `BOB`, `Bob`,
/// ` bob` or `ｂｏｂ`, and a live one has no twin either.
#[test]
fn a_revoked_operator_cannot_get_a_new_token_under_another_spelling() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    add_token(dir, &state, "bob");
    add_token(dir, &state, "Élodie");
    for twin in ["BOB", "Bob", "ｂｏｂ", "ＢＯＢ", "ÉLODIE", "Ｅlodie"] {
        let out = run_in_with_env(dir, &["serve", "token", "add", twin, "--state", &state], &[]);
        assert_ne!(out.code, 0, "a second token for `{twin}`: {}", out.stdout);
        assert!(
            out.stderr.contains("exists already") || out.stderr.contains("NFKC"),
            "{twin}: {}",
            out.stderr
        );
    }
    ok(&run_in_with_env(dir, &["serve", "token", "revoke", "bob", "--state", &state], &[]), 0);
    for twin in ["bob", "BOB", "ｂｏｂ"] {
        let out = run_in_with_env(dir, &["serve", "token", "add", twin, "--state", &state], &[]);
        assert_ne!(out.code, 0, "a token for `{twin}` (the identity of revoked `bob`): {}", out.stdout);
    }
    add_token(dir, &state, "bobby");
    let list = run_in_with_env(dir, &["serve", "token", "list", "--state", &state], &[]);
    ok(&list, 0);
    assert!(!list.stdout.contains("BOB") && !list.stdout.contains("ｂｏｂ"), "{}", list.stdout);
}

/// adv16s notes: `--trusted-proxy 0.0.0.0` or `::` (no peer has them: someone meant "every
/// address") is a clear usage error, and a proxy header holding a comma (a client's value
/// appended to) is refused as ambiguous (400), never recorded as an identity.
#[test]
fn an_unspecified_trusted_proxy_and_a_comma_joined_identity_are_refused() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    for any in ["0.0.0.0", "::"] {
        let out = run_in_with_env(
            dir,
            &[
                "serve",
                "--auth",
                "proxy",
                "--trusted-proxy",
                any,
                "--state",
                &state,
                "--listen",
                "127.0.0.1:0",
            ],
            &[],
        );
        assert_eq!(out.code, 2, "{any}: {}", out.stderr);
        assert!(out.stderr.contains("unspecified address"), "{any}: {}", out.stderr);
    }
    let served = serve(dir, &state, &["--auth", "proxy", "--trusted-proxy", "127.0.0.1"]);
    for joined in ["mallory, bob", "bob,", ",bob", "bob,alice"] {
        let r = served.send("GET", "/approvals", &[("X-Forwarded-Email", joined)], "");
        assert_eq!(r.status, 400, "{joined}: {}", r.status);
        assert!(!r.body.contains("signed in as"), "{joined}");
    }
    let r = served.send("GET", "/approvals", &[("X-Forwarded-Email", "bob")], "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("bob"));
}

/// Red team adv19a-9: POSIX record locks belong to the process, and closing any descriptor
/// of a file drops all of them, those of the process's own SQLite connections included. The
/// console's read-only store (an anonymous page) and its read-write one (a signed-in act)
/// each probed the file's header with a `File` it then closed: the next SQLite client that
/// closed cleanly (the book's `sqlite3 state.db ".backup ..."`) believed it was the last,
/// checkpointed and deleted the WAL under the console, which from then on lived on its own
/// deleted log: a revoked token kept working, and what it wrote never reached the store.
#[test]
fn a_clean_sqlite_client_beside_the_console_never_splits_it_from_its_store() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    let bob = add_token(dir, &state, "bob");
    let carol = add_token(dir, &state, "carol");
    let served = serve(dir, &state, &["--auth", "token"]);
    let act = |token: &str| {
        served
            .send("POST", "/api/runs/nope/cancel", &[("Authorization", &format!("Bearer {token}"))], "")
            .status
    };
    // Both orders: read-write then read-only, then read-write again.
    assert_eq!(act(&bob), 404, "bob is signed in, there is no run `nope`");
    assert_eq!(served.send("GET", "/api/runs", &[], "").status, 200);
    assert_eq!(act(&carol), 404);
    let backup = Command::new("sqlite3")
        .arg(&state)
        .arg(format!(".backup {}", dir.join("copy.db").display()))
        .output()
        .expect("sqlite3 runs");
    assert!(backup.status.success(), "{backup:?}");
    let deleted: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", served.child.id()))
        .expect("the console's descriptors")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.contains("state.db") && target.ends_with("(deleted)"))
        .collect();
    assert_eq!(deleted, Vec::<String>::new(), "the console lives on files its store no longer has");
    // What another process writes, the console reads: a revocation stops carol at once.
    ok(&scratch.cmd(&["serve", "token", "revoke", "carol"], &[]), 0);
    assert_eq!(act(&carol), 401, "a revoked token still acts");
    // What the console writes, another process reads.
    ok(&scratch.cmd(&["serve", "token", "add", "dave"], &[]), 0);
    let listed = scratch.cmd(&["serve", "token", "list"], &[]);
    ok(&listed, 0);
    assert!(listed.stdout.contains("carol") && listed.stdout.contains("dave"), "{}", listed.stdout);
}

/// Red team adv20-1: the store's files reached by a runbook's path. The console (and any
/// engine or worker) opened and closed every file a runbook names (an SQL script, a CA file,
/// the runbook itself found in `--runbooks`), and the store kept in that folder is such a
/// file (`file = "state/state.db"`, a hard link, a symbolic link): each close dropped the
/// process's SQLite locks, so the next clean client (`sqlite3 .backup`) deleted the log under
/// the console (approvals answered as done were lost, revoked tokens kept working). Now
/// every file a process that holds the store opens for a runbook, a step, a plan or an
/// operator is refused when it is one of the store's files, by any path, before it is opened.
#[test]
fn a_runbook_that_names_the_store_never_splits_the_console_from_it() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    let carol = add_token(dir, &state, "carol");
    let served = serve(dir, &state, &["--auth", "token", "--runbooks", &dir.display().to_string()]);
    // Three ways to name the store, pushed while the console runs.
    std::fs::write(
        dir.join("x.toml"),
        "[runbook]\nname = \"x\"\n[steps.a]\nsql = { url = \"postgres://db/x\", file = \"state/state.db\" }\nidempotent = true\n",
    )
    .expect("x.toml");
    std::fs::hard_link(&state, dir.join("evil.toml")).expect("a hard link to the store");
    std::os::unix::fs::symlink(&state, dir.join("link.sql")).expect("a symbolic link to the store");
    std::fs::write(
        dir.join("y.toml"),
        "[runbook]\nname = \"y\"\n[steps.a]\nsql = { url = \"postgres://db/y\", file = \"link.sql\" }\nidempotent = true\n",
    )
    .expect("y.toml");
    for page in ["/runbooks", "/runbooks/x", "/runbooks/y", "/runbooks/evil"] {
        let r = served.send("GET", page, &[], "");
        assert!(r.status < 500, "{page}: {} {}", r.status, r.body);
    }
    let x = served.send("GET", "/runbooks/x", &[], "");
    assert!(
        x.body.contains("a file of the state store"),
        "the review says why it cannot read it:\n{}",
        x.body
    );
    let backup = Command::new("sqlite3")
        .arg(&state)
        .arg(format!(".backup {}", dir.join("copy.db").display()))
        .output()
        .expect("sqlite3 runs");
    assert!(backup.status.success(), "{backup:?}");
    let deleted: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", served.child.id()))
        .expect("the console's descriptors")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.ends_with("(deleted)"))
        .collect();
    assert_eq!(deleted, Vec::<String>::new(), "the console lives on files its store no longer has");
    ok(&scratch.cmd(&["serve", "token", "revoke", "carol"], &[]), 0);
    let act =
        served.send("POST", "/api/runs/nope/cancel", &[("Authorization", &format!("Bearer {carol}"))], "");
    assert_eq!(act.status, 401, "a revoked token still acts");

    // The engine: a run whose script is the store is refused before anything runs, saying why.
    let run = scratch.cmd(&["run", "x.toml", "--yes"], &[]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("a file of the state store"), "{}", run.stderr);
}

/// The records of `run` in the store, counted with SQL (what `audit` reads would not count a
/// journal that fails verification the same way).
fn stored_records(state: &str, run: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(state)
        .arg(format!("SELECT count(*) FROM events WHERE run_id = '{run}'"))
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Red team adv22 F3 (promise 6): a decision is judged against the run's journal, so never
/// against one that fails verification. An edited request named an outsider as an approver:
/// the CLI's `approve` then accepted him, and the console's approvals page offered him a
/// form for a run whose own page said BROKEN. Both now refuse, and nothing is added.
#[test]
fn no_decision_is_judged_against_or_added_to_a_journal_that_fails_verification() {
    let scratch = Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
    let run = scratch.latest_run();
    let (dir, state) = (scratch.path(), scratch.state());
    let approve = ["approve", &run, "sign_off", "--input", "ticket=OPS-1", "--as", "mallory"];
    let outsider = scratch.cmd(&approve, &[]);
    assert_ne!(outsider.code, 0, "an outsider approved: {outsider:?}");
    let mallory = add_token(dir, &state, "mallory");
    // The request, edited: mallory where dave was.
    let edit = format!(
        "DROP TRIGGER events_no_update; UPDATE events SET body = replace(body, '\"dave\"', '\"mallory\"') \
         WHERE run_id = '{run}' AND kind = 'approval_requested';"
    );
    let out = Command::new("sqlite3").arg(&state).arg(&edit).output().expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(scratch.cmd(&["audit", "verify", &run], &[]).code, 0, "the edit is not detected");
    let before = stored_records(&state, &run);

    let cli = scratch.cmd(&approve, &[]);
    assert_ne!(cli.code, 0, "approved against an edited journal: {cli:?}");
    assert!(cli.stderr.contains("fails verification"), "{}", cli.stderr);
    insta::assert_snapshot!("approve_broken_journal", cli.stderr.replace(&run, "[run]"));
    assert_eq!(stored_records(&state, &run), before, "a record was added to a broken journal");

    let served = serve(dir, &state, &["--auth", "token"]);
    let session = served.login(&mallory);
    let page = served.get_as("/approvals", &session);
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("Ship release 42?"),
        "a broken run waits on the approvals page: {}",
        page.body
    );
    assert!(!page.body.contains("name=\"decision\""), "a form for a broken run: {}", page.body);
    // The form as it would be posted (the CSRF token of the sign-out form): refused.
    let csrf = csrf_of(&page.body);
    let r = served.post_form(
        &format!("/runs/{run}/approvals/sign_off"),
        Some(&session),
        &format!("decision=approve&input.ticket=OPS-1&csrf={csrf}"),
    );
    assert_ne!(r.status, 303, "the console recorded a decision against a broken journal: {r:?}");
    assert_eq!(stored_records(&state, &run), before, "a record was added to a broken journal");
}

/// Red team adv27 C1: a signed-in act whose answer takes longer than a request's head may
/// (10 s) gets its answer. The act's body (its form) was taken for the next request's head,
/// so the act was prepared under the head's deadline and cut at 10 s with no response at
/// all, dropped wherever it was. Here another process holds the store's write lock for 14 s
/// while bob approves through the API.
#[test]
fn a_signed_in_act_that_waits_longer_than_a_head_gets_its_answer() {
    let scratch = Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
    let run = scratch.latest_run();
    let (dir, state) = (scratch.path(), scratch.state());
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('held', flush=True)\ntime.sleep(14)\nc.execute('ROLLBACK')\n",
            &state,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().expect("stdout")).read_line(&mut line).expect("held");
    assert_eq!(line, "held\n");
    let r = served.send(
        "POST",
        &format!("/api/runs/{run}/approvals/sign_off"),
        &[("Authorization", &format!("Bearer {bob}"))],
        "decision=approve&input.ticket=OPS-7&reason=looks+good",
    );
    let _ = holder.wait();
    assert_eq!(r.status, 200, "an answer, not a closed connection: {r:?}");
    assert!(r.body.contains("\"operator\":\"bob\""), "{}", r.body);
    let d = decisions(&scratch, &run);
    assert_eq!(d.len(), 1, "{d:?}");
}
