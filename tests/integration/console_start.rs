//! Starting a run from the console (issue 16, p16-start): the start form of
//! `/runbooks/{name}` (generated from the runbook's parameters), and `POST
//! /runbooks/{name}/start` (and its `/api/` twin with a bearer), which checks the values
//! with the CLI's own parameter code and queues the pinned plan as `runbook submit` does,
//! with the signed-in identity as the operator; a real `runbook worker` then runs it. The
//! real binary on loopback, a temp SQLite store, plain HTTP/1.1 written by hand.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::console_auth::{add_token, csrf_of, serve_env};
use crate::support::{Scratch, bin, ok, run_in_with_env};

const DEPLOY: &str = r#"[runbook]
name = "deploy"

[params.environment]
type = "string"
enum = ["staging", "production"]
default = "staging"
description = "Where it runs"

[params.ticket]
type = "string"
pattern = '^OPS-[0-9]+$'

[params.replicas]
type = "integer"
default = 2

[params.note]
type = "string"
default = "none"

[secrets.TOKEN]
env = "DEPLOY_TOKEN"

[steps.ship]
run = "echo shipped {{ params.environment }} {{ params.ticket }} x{{ params.replicas }}"
"#;

const ENV: [(&str, &str); 1] = [("DEPLOY_TOKEN", "s3cr3t-deploy-token")];

/// The queue's rows as `run_id|submitted_by|plan` (sqlite3 on the store's file, read only).
fn queue(scratch: &Scratch) -> Vec<String> {
    let out = Command::new("sqlite3")
        .args([
            "-readonly",
            // A writer's last close checkpoints the log under a lock for a moment: wait for it.
            "-cmd",
            ".timeout 10000",
            &scratch.state(),
            "SELECT run_id || '|' || submitted_by || '|' || plan FROM queue",
        ])
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // A plan spans lines: a row starts with a run id.
    let mut rows: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("20") && line.contains('|') {
            rows.push(line.to_string());
        } else if let Some(last) = rows.last_mut() {
            last.push('\n');
            last.push_str(line);
        }
    }
    rows
}

fn runs(scratch: &Scratch) -> serde_json::Value {
    let out = scratch.cmd(&["runs", "--format", "json"], &[]);
    ok(&out, 0);
    serde_json::from_str(&out.stdout).expect("JSON")
}

#[test]
fn a_signed_in_operator_starts_a_run_that_a_worker_executes() {
    let scratch = Scratch::new(DEPLOY);
    let (dir, state) = (scratch.path(), scratch.state());
    // The runbook is valid and plans (the CLI agrees).
    ok(&run_in_with_env(scratch.path(), &["check", "r.toml"], &[]), 0);
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &ENV);
    let action = "/runbooks/r/start";
    // The attribute as autoescape writes it (a browser reads `/`).
    let form = "action=\"&#x2f;runbooks&#x2f;r&#x2f;start\"";

    // Anonymous: the page has no start form, and a POST is refused.
    let page = served.send("GET", "/runbooks/r", &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains(form), "{}", page.body);
    assert_eq!(served.post_form(action, None, "param.ticket=OPS-1").status, 403);
    assert_eq!(served.send("POST", &format!("/api{action}"), &[], "param.ticket=OPS-1").status, 401);

    // Signed in: the form, generated from the parameters.
    let session = served.login(&bob);
    let page = served.get_as("/runbooks/r", &session);
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(body.contains(form), "{body}");
    assert!(body.contains("<select name=\"param.environment\""), "{body}");
    assert!(body.contains("<option value=\"staging\" selected>staging</option>"), "{body}");
    assert!(body.contains("<option value=\"production\">production</option>"), "{body}");
    assert!(body.contains("name=\"param.ticket\""), "{body}");
    assert!(body.contains("pattern=\"^OPS-[0-9]+$\""), "{body}");
    assert!(body.contains("name=\"param.replicas\" value=\"2\""), "{body}");
    // A secret is never asked for.
    assert!(!body.contains("param.TOKEN") && !body.contains("DEPLOY_TOKEN"), "{body}");
    let csrf = csrf_of(&body[body.find(form).expect("the form")..]);

    // No CSRF token, a wrong value, an unknown parameter, a missing one: refused with the
    // CLI's words, nothing queued.
    assert_eq!(served.post_form(action, Some(&session), "param.ticket=OPS-1").status, 403);
    let cli = scratch.cmd(&["submit", "r.toml", "-p", "ticket=nope"], &ENV);
    assert_ne!(cli.code, 0);
    assert!(cli.stderr.contains("`nope` does not match the pattern `^OPS-[0-9]+$`"), "{}", cli.stderr);
    let r = served.post_form(action, Some(&session), &format!("param.ticket=nope&csrf={csrf}"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains(
            "invalid value for parameter `ticket`: `nope` does not match the pattern `^OPS-[0-9]+$`"
        ),
        "{}",
        r.body
    );
    // The form is shown again, with the defaults: nothing typed is sent back in a field.
    assert!(r.body.contains(form) && !r.body.contains("value=\"nope\""), "{}", r.body);
    let r = served.post_form(action, Some(&session), &format!("param.ticket=OPS-1&param.tick=1&csrf={csrf}"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("unknown parameter `tick`"), "{}", r.body);
    let r = served.post_form(
        action,
        Some(&session),
        &format!("param.environment=moon&param.ticket=OPS-1&csrf={csrf}"),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("`moon` is not one of"), "{}", r.body);
    let r = served.post_form(action, Some(&session), &format!("csrf={csrf}"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("ticket"), "{}", r.body);
    // A value holding the runbook's secret is refused (the CLI's rule), nothing kept.
    let r = served.post_form(
        action,
        Some(&session),
        &format!("param.ticket=OPS-1&param.note=s3cr3t-deploy-token&csrf={csrf}"),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(!r.body.contains("s3cr3t-deploy-token"), "{}", r.body);
    assert!(r.body.contains("note"), "{}", r.body);
    assert_eq!(queue(&scratch), Vec::<String>::new());
    assert_eq!(runs(&scratch), serde_json::json!([]));

    // A valid start: queued, pinned to the runbook's digest, operator bob; the answer is
    // the queued run's page.
    let r = served.post_form(
        action,
        Some(&session),
        &format!("param.environment=production&param.ticket=OPS-7&param.replicas=3&csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let to = r.header("location").expect("a redirect").to_string();
    let run = to.strip_prefix("/runs/").expect("a run's page").to_string();
    let rows = queue(&scratch);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (id, rest) = rows[0].split_once('|').expect("row");
    let (by, plan) = rest.split_once('|').expect("row");
    assert_eq!((id, by), (run.as_str(), "bob"));
    let digest: String = sha2::Sha256::digest(DEPLOY.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert!(plan.contains(&digest), "the plan is not pinned to r.toml's digest: {plan}");
    assert!(!plan.contains("s3cr3t-deploy-token"));
    let page = served.get_as(&to, &session);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("queued"), "{}", page.body);

    // The API twin with a bearer: queued too, as bob.
    let r = served.send(
        "POST",
        &format!("/api{action}"),
        &[("Authorization", &format!("Bearer {bob}"))],
        "param.ticket=OPS-8",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let api: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(api["queued"].as_str().map(|s| s.starts_with("20")), Some(true), "{api}");
    assert_eq!(api["operator"], "bob");
    let second = api["queued"].as_str().unwrap_or_default().to_string();

    // A real worker runs both to success; `runbook show` agrees.
    let mut worker = Command::new(bin())
        .args(["worker", "--poll", "20ms", "--state", &state])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = runs(&scratch);
        let done = |id: &str| {
            all.as_array().into_iter().flatten().any(|r| r["run_id"] == id && r["status"] == "succeeded")
        };
        if done(&run) && done(&second) {
            break;
        }
        assert!(Instant::now() < deadline, "the queued runs never succeeded: {all}");
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    let shown = scratch.cmd(&["show", &run], &[]);
    ok(&shown, 0);
    assert!(shown.stdout.contains("succeeded"), "{}", shown.stdout);
    assert!(shown.stdout.contains("bob"), "{}", shown.stdout);
    let out = scratch.cmd(&["logs", &run, "ship"], &[]);
    assert!(out.stdout.contains("shipped production OPS-7 x3"), "{}{}", out.stdout, out.stderr);
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
}

#[test]
fn a_runbook_that_does_not_pass_check_is_not_started() {
    let scratch =
        Scratch::new("[runbook]\nname = \"broken\"\n\n[steps.a]\nrun = \"echo {{ params.nope }}\"\n");
    let (dir, state) = (scratch.path(), scratch.state());
    assert_ne!(run_in_with_env(scratch.path(), &["check", "r.toml"], &[]).code, 0);
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &[]);
    let r = served.send("POST", "/api/runbooks/r/start", &[("Authorization", &format!("Bearer {bob}"))], "");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("nothing was queued"), "{}", r.body);
    assert_eq!(queue(&scratch), Vec::<String>::new());
    // A runbook the folder does not list: 404.
    let r =
        served.send("POST", "/api/runbooks/other/start", &[("Authorization", &format!("Bearer {bob}"))], "");
    assert_eq!(r.status, 404, "{r:?}");
}

/// `application/x-www-form-urlencoded` for a value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The class rule: the console accepts exactly what `runbook submit -p` accepts, with the
/// CLI's words when it refuses, and queues the same pinned plan. A corpus of values, each
/// given to both: `runbook submit` into one store, the console's API into another.
#[test]
fn the_console_accepts_exactly_what_submit_accepts() {
    let scratch = Scratch::new(DEPLOY);
    let (dir, state) = (scratch.path(), scratch.state());
    let cli_state = dir.join("cli.db").display().to_string();
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &ENV);
    let corpus: &[&[(&str, &str)]] = &[
        &[],
        &[("ticket", "OPS-1")],
        &[("ticket", "OPS-")],
        &[("ticket", "ops-1")],
        &[("ticket", "OPS-1 ")],
        &[("ticket", "OPS-1\nOPS-2")],
        &[("replicas", "x"), ("ticket", "OPS-1")],
        &[("replicas", "3"), ("ticket", "OPS-1")],
        &[("replicas", "-1"), ("ticket", "OPS-1")],
        &[("replicas", "99999999999999999999"), ("ticket", "OPS-1")],
        &[("replicas", "2.5"), ("ticket", "OPS-1")],
        &[("environment", "Production"), ("ticket", "OPS-1")],
        &[("environment", "production"), ("ticket", "OPS-2")],
        &[("note", "s3cr3t-deploy-token"), ("ticket", "OPS-1")],
        &[("note", "x s3cr3t-deploy-token y"), ("ticket", "OPS-1")],
        &[("note", "ünïcode ✓ <b>&amp;"), ("ticket", "OPS-1")],
        &[("note", "$(touch pwned); `id` {{ params.ticket }}"), ("ticket", "OPS-1")],
        &[("note", "a\nb\u{202e}c"), ("ticket", "OPS-1")],
        &[("ticket", "OPS-1"), ("unknown", "1")],
        &[("TOKEN", "x"), ("ticket", "OPS-1")],
    ];
    for values in corpus {
        let mut args: Vec<String> = vec!["submit".into(), "r.toml".into()];
        for (k, v) in *values {
            args.push("-p".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(["--state".into(), cli_state.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cli = run_in_with_env(dir, &args, &ENV);
        let body: Vec<String> = values.iter().map(|(k, v)| format!("param.{k}={}", encode(v))).collect();
        let before = queue(&scratch).len();
        let r = served.send(
            "POST",
            "/api/runbooks/r/start",
            &[("Authorization", &format!("Bearer {bob}"))],
            &body.join("&"),
        );
        let api: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        if cli.code == 0 {
            assert_eq!(r.status, 200, "{values:?}: submit queued it, the console did not: {api}");
            let rows = queue(&scratch);
            assert_eq!(rows.len(), before + 1, "{values:?}");
        } else {
            assert_eq!(r.status, 400, "{values:?}: submit refused it ({}), the console: {api}", cli.stderr);
            let words = cli.stderr.lines().next().unwrap_or_default();
            let message = api["message"].as_str().unwrap_or_default();
            assert!(message.contains(words), "{values:?}: the CLI said {words:?}, the console {message:?}");
            assert!(message.ends_with("nothing was queued"), "{message}");
            assert_eq!(queue(&scratch).len(), before, "{values:?}");
        }
        assert!(!r.body.contains("s3cr3t-deploy-token") || !cli.stderr.contains("secret"), "{}", r.body);
    }
    assert!(!dir.join("pwned").exists());
    // Both queues hold the same plans (the same pinned documents, in the same order), but
    // for the runbook's path: the console names it as `--runbooks .` lists it (`./r.toml`),
    // the command line as typed (`r.toml`).
    let plans = |db: &str| -> Vec<String> {
        let out = Command::new("sqlite3")
            .args(["-readonly", "-json", db, "SELECT plan FROM queue ORDER BY rowid"])
            .output()
            .expect("sqlite3");
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        rows.as_array()
            .into_iter()
            .flatten()
            .map(|r| r["plan"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (ours, theirs) = (plans(&state), plans(&cli_state));
    assert!(ours.len() >= 6, "{}", ours.len());
    assert_eq!(ours.len(), theirs.len());
    for (ours, theirs) in ours.iter().zip(&theirs) {
        assert!(ours.contains("\"./r.toml\""), "{ours}");
        assert!(ours.replace("\"./r.toml\"", "\"r.toml\"") == *theirs, "{ours}\n---\n{theirs}");
    }
}

/// A runbook with a step that asks for confirmation: the form asks for it, and without it
/// the start is refused with `submit`'s words (a queued run has no terminal).
#[test]
fn a_confirmation_is_asked_on_the_form_as_submit_asks_for_yes() {
    let scratch = Scratch::new(
        "[runbook]\nname = \"careful\"\n\n[steps.push]\nconfirm = \"Push it?\"\nrun = \"echo pushed\"\n",
    );
    let (dir, state) = (scratch.path(), scratch.state());
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &[]);
    let session = served.login(&bob);
    let page = served.get_as("/runbooks/r", &session);
    assert!(page.body.contains("name=\"confirm\" value=\"yes\""), "{}", page.body);
    let csrf = csrf_of(&page.body[page.body.find("class=\"start\"").expect("the form")..]);
    let cli = scratch.cmd(&["submit", "r.toml"], &[]);
    assert_ne!(cli.code, 0);
    let words = cli.stderr.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
    assert!(words.contains("asks for confirmation"), "{}", cli.stderr);
    let r = served.post_form("/runbooks/r/start", Some(&session), &format!("csrf={csrf}"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains(&words), "{}", r.body);
    assert_eq!(queue(&scratch), Vec::<String>::new());
    let r = served.post_form("/runbooks/r/start", Some(&session), &format!("confirm=yes&csrf={csrf}"));
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(queue(&scratch).len(), 1);
}

/// adv19a-10: a step that asks, anywhere in the run (an included runbook at any depth, an
/// included runbook of a `for-each` step), is asked for as a top-level
/// one is: the start form has the checkbox, the console and `submit` refuse without the
/// confirmation, nothing is queued. Before the fix only top-level steps counted: every
/// case here was queued without it and the worker's `--yes` answered the question.
#[test]
fn a_confirmation_anywhere_in_the_run_is_asked_before_it_is_queued() {
    let leaf = "[runbook]\nname = \"drop\"\n\n[params.db]\ntype = \"string\"\ndefault = \"main\"\n\n[steps.drop]\nconfirm = \"Really DROP the production database?\"\nrun = \"echo dropped\"\n";
    let middle = "[runbook]\nname = \"middle\"\n\n[steps.inner]\nrunbook = { file = \"drop.toml\" }\n";
    let cases = [
        ("include", "[steps.cleanup]\nrunbook = { file = \"lib/drop.toml\" }\n"),
        ("two deep", "[steps.outer]\nrunbook = { file = \"lib/middle.toml\" }\n"),
        (
            "for-each include",
            "[params.dbs]\ntype = \"list\"\ndefault = [\"a\", \"b\"]\n\n[steps.each]\nfor-each = \"dbs\"\nrunbook = { file = \"lib/drop.toml\", params = { db = \"{{ item }}\" } }\n",
        ),
    ];
    for (case, steps) in cases {
        let scratch = Scratch::new(&format!("[runbook]\nname = \"wrapper\"\n\n{steps}"));
        let (dir, state) = (scratch.path(), scratch.state());
        std::fs::create_dir_all(dir.join("lib")).expect("lib");
        std::fs::write(dir.join("lib/drop.toml"), leaf).expect("leaf");
        std::fs::write(dir.join("lib/middle.toml"), middle).expect("middle");
        ok(&run_in_with_env(dir, &["check", "r.toml"], &[]), 0);
        let cli = scratch.cmd(&["submit", "r.toml"], &[]);
        assert_ne!(cli.code, 0, "{case}: {cli:?}");
        assert!(cli.stderr.contains("asks for confirmation"), "{case}: {}", cli.stderr);
        // A run without a terminal is refused too, and names the step that asks.
        let run = scratch.cmd(&["run", "r.toml"], &[]);
        assert_ne!(run.code, 0, "{case}: {run:?}");
        assert!(!run.stdout.contains("dropped"), "{case}: {}", run.stdout);
        assert!(run.stderr.contains("drop`"), "{case}: {}", run.stderr);
        let bob = add_token(dir, &state, "bob");
        let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &[]);
        let session = served.login(&bob);
        let page = served.get_as("/runbooks/r", &session);
        assert!(page.body.contains("name=\"confirm\" value=\"yes\""), "{case}: {}", page.body);
        let auth = format!("Bearer {bob}");
        let r = served.send("POST", "/api/runbooks/r/start", &[("Authorization", &auth)], "");
        assert_eq!(r.status, 400, "{case}: {r:?}");
        assert!(r.body.contains("asks for confirmation"), "{case}: {}", r.body);
        assert_eq!(queue(&scratch), Vec::<String>::new(), "{case}");
        let r = served.send("POST", "/api/runbooks/r/start", &[("Authorization", &auth)], "confirm=yes");
        assert_eq!(r.status, 200, "{case}: {r:?}");
        assert_eq!(queue(&scratch).len(), 1, "{case}");
    }
}

/// adv19a-4: "Review the plan" is a dry run: it runs no secret's helper (a helper may issue
/// a credential or page someone), as `runbook plan` runs none; a refused review neither.
/// The start that queues reads the secrets (and runs the helper) once. Before the fix each
/// review, and each refused one, ran the helper in the console's process.
#[test]
fn a_review_runs_no_secret_helper() {
    let scratch = Scratch::new(
        "[runbook]\nname = \"helper\"\n\n[params.n]\ntype = \"integer\"\ndefault = 1\n\n[secrets.API]\ncommand = [\"sh\", \"-c\", \"echo ran >> helper-ran.txt; echo Issued-Credential-$((123000 + 456))\"]\n\n[secrets.TOKEN]\nenv = \"DEPLOY_TOKEN\"\n\n[steps.call]\nrun = \"echo n={{ params.n }}\"\n",
    );
    let (dir, state) = (scratch.path(), scratch.state());
    let ran = || std::fs::read_to_string(dir.join("helper-ran.txt")).unwrap_or_default().lines().count();
    ok(&run_in_with_env(dir, &["plan", "r.toml"], &ENV), 0);
    assert_eq!(ran(), 0);
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &ENV);
    let auth = format!("Bearer {bob}");
    let api = |body: &str| served.send("POST", "/api/runbooks/r/start", &[("Authorization", &auth)], body);
    for _ in 0..2 {
        let r = api("review=yes&param.n=3");
        assert_eq!(r.status, 200, "{r:?}");
    }
    // Refused reviews: a bad value, an unknown name, a value holding an `env` secret (still
    // refused without echoing it: what can be read without running anything is read).
    for body in ["review=yes&param.n=x", "review=yes&param.nope=1", "review=yes&param.n=s3cr3t-deploy-token"]
    {
        let r = api(body);
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(!r.body.contains("s3cr3t-deploy-token"), "{body}: {}", r.body);
    }
    // The HTML form's review too.
    let session = served.login(&bob);
    let page = served.get_as("/runbooks/r", &session);
    let csrf = csrf_of(&page.body[page.body.find("class=\"start\"").expect("the form")..]);
    let r =
        served.post_form("/runbooks/r/start", Some(&session), &format!("review=yes&param.n=2&csrf={csrf}"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ran(), 0, "a review ran the secret's helper");
    assert_eq!(queue(&scratch), Vec::<String>::new());
    // The start reads the secrets: the helper runs, the run is queued.
    let r = api("param.n=3");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ran(), 1);
    assert_eq!(queue(&scratch).len(), 1);
}

/// In a real browser: bob signs in, fills the start form of a runbook's page, and lands on
/// the queued run's page; a real worker runs it.
#[test]
fn an_operator_starts_a_run_from_the_form_in_a_real_browser() {
    use crate::console_auth::{sign_in, wait_page};
    let scratch = Scratch::new(DEPLOY);
    let (dir, state) = (scratch.path(), scratch.state());
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &ENV);
    let browser = crate::browser::Browser::start();
    sign_in(&browser, &served, &bob);
    browser.open(&format!("{}/runbooks/r", served.origin()));
    browser.eval(
        "document.querySelector('select[name=\"param.environment\"]').value = 'production'; \
         document.querySelector('input[name=\"param.ticket\"]').value = 'OPS-9'; \
         document.querySelector('form.start button').click(); return null",
    );
    // The plan to review, then start.
    wait_page(&browser, "return !!document.querySelector('form.start-reviewed')", &serde_json::json!(true));
    let text = browser.eval("return document.body.innerText");
    assert!(text.as_str().is_some_and(|t| t.contains("OPS-9") && t.contains("production")), "{text}");
    assert_eq!(queue(&scratch), Vec::<String>::new());
    browser.eval("document.querySelector('form.start-reviewed button').click(); return null");
    wait_page(&browser, "return location.pathname.startsWith('/runs/')", &serde_json::json!(true));
    let path = browser.eval("return location.pathname");
    let run = path.as_str().and_then(|p| p.strip_prefix("/runs/")).expect("a run's page").to_string();
    let rows = queue(&scratch);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].starts_with(&format!("{run}|bob|")), "{rows:?}");
    let mut worker = Command::new(bin())
        .args(["worker", "--poll", "20ms", "--state", &state])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !runs(&scratch)
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["run_id"] == run && r["status"] == "succeeded")
    {
        assert!(Instant::now() < deadline, "the run never succeeded");
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::support::kill9(worker.id());
    let _ = worker.wait();
    browser.open(&format!("{}/runs/{run}", served.origin()));
    let text = browser.eval("return document.body.innerText");
    assert!(text.as_str().is_some_and(|t| t.contains("succeeded")), "{text}");
    let out = scratch.cmd(&["logs", &run, "ship"], &[]);
    assert!(out.stdout.contains("shipped production OPS-9 x2"), "{}{}", out.stdout, out.stderr);
}

/// The plan shown for review is the plan queued: the review form carries its SHA-256, and a
/// start whose values make another plan now (the runbook changed) is refused.
#[test]
fn a_reviewed_plan_is_exactly_what_is_queued() {
    let scratch = Scratch::new(DEPLOY);
    let (dir, state) = (scratch.path(), scratch.state());
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &ENV);
    let session = served.login(&bob);
    let page = served.get_as("/runbooks/r", &session);
    let csrf = csrf_of(&page.body[page.body.find("class=\"start\"").expect("the form")..]);
    let review = |ticket: &str| {
        let r = served.post_form(
            "/runbooks/r/start",
            Some(&session),
            &format!("review=yes&param.ticket={ticket}&csrf={csrf}"),
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains("Start this run as bob") && r.body.contains(ticket), "{}", r.body);
        let at = r.body.find("name=\"plan\" value=\"").expect("the plan's digest") + 19;
        r.body[at..].split('"').next().expect("value").to_string()
    };
    let digest = review("OPS-3");
    assert_eq!(digest.len(), 64);
    // The API's review: the same plan's digest, and the plan; nothing queued either.
    let r = served.send(
        "POST",
        "/api/runbooks/r/start",
        &[("Authorization", &format!("Bearer {bob}"))],
        "review=yes&param.ticket=OPS-3",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let api: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(api["plan_sha256"], digest.as_str(), "{api}");
    assert!(api["plan"].as_str().is_some_and(|p| p.contains("OPS-3")), "{api}");
    assert_eq!(queue(&scratch), Vec::<String>::new(), "a review queued a run");
    // The runbook changes after the review: the reviewed plan is not what would run.
    std::fs::write(dir.join("r.toml"), DEPLOY.replace("echo shipped", "echo SHIPPED")).expect("edit");
    let start = |digest: &str| {
        served.post_form(
            "/runbooks/r/start",
            Some(&session),
            &format!("plan={digest}&param.ticket=OPS-3&csrf={csrf}"),
        )
    };
    let r = start(&digest);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("not the plan you reviewed"), "{}", r.body);
    assert_eq!(queue(&scratch), Vec::<String>::new());
    // Reviewed again: that plan is queued, byte for byte the one whose digest was shown.
    let digest = review("OPS-3");
    let r = start(&digest);
    assert_eq!(r.status, 303, "{r:?}");
    let rows = queue(&scratch);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let plan = rows[0].splitn(3, '|').nth(2).expect("plan");
    let queued: String = sha2::Sha256::digest(plan.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(queued, digest);
    assert!(plan.contains("SHIPPED"), "{plan}");
}

/// adv16u F1 (promise 3): a secret typed into a start (the form, the API, `runbook submit
/// -p`) is refused before any check that quotes the value or the name, and never sent back:
/// the secret in every position (whole value, inside a value, a name, a name and a value) of
/// every kind of parameter (pattern, integer, enum, free string, unknown).
#[test]
fn a_secret_typed_into_a_start_is_refused_and_never_sent_back() {
    const SECRET: &str = "s3cr3t-deploy-token";
    let scratch = Scratch::new(DEPLOY);
    let (dir, state) = (scratch.path(), scratch.state());
    let cli_state = dir.join("cli.db").display().to_string();
    let bob = add_token(dir, &state, "bob");
    let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &ENV);
    let session = served.login(&bob);
    let page = served.get_as("/runbooks/r", &session);
    let csrf = csrf_of(&page.body[page.body.find("class=\"start\"").expect("the form")..]);
    let mut corpus: Vec<Vec<(String, String)>> = Vec::new();
    for name in ["ticket", "replicas", "environment", "note", "unknown"] {
        for value in
            [SECRET.to_string(), format!("x{SECRET}y"), format!("OPS-1{SECRET}"), format!("{SECRET}7")]
        {
            let mut given = vec![(name.to_string(), value)];
            if name != "ticket" {
                given.push(("ticket".into(), "OPS-1".into()));
            }
            corpus.push(given);
        }
    }
    corpus.push(vec![("ticket".into(), "OPS-1".into()), (SECRET.into(), "1".into())]);
    corpus.push(vec![(SECRET.into(), SECRET.into())]);
    corpus.push(vec![(format!("a{SECRET}"), "production".into())]);
    corpus.push(vec![("replicas".into(), "x".into()), (SECRET.into(), "1".into())]);
    let mut leaks = Vec::new();
    for given in &corpus {
        let body: Vec<String> =
            given.iter().map(|(k, v)| format!("param.{}={}", encode(k), encode(v))).collect();
        let body = body.join("&");
        let r =
            served.post_form("/runbooks/r/start", Some(&session), &format!("review=yes&{body}&csrf={csrf}"));
        if r.body.contains(SECRET) || r.status < 400 {
            leaks.push(format!("page {} for {given:?}: {}", r.status, r.body));
        }
        let r = served.send(
            "POST",
            "/api/runbooks/r/start",
            &[("Authorization", &format!("Bearer {bob}"))],
            &body,
        );
        if r.body.contains(SECRET) || r.status != 400 {
            leaks.push(format!("api {} for {given:?}: {}", r.status, r.body));
        }
        if !r.body.contains("contains the value of secret `TOKEN`") {
            leaks.push(format!("api: not refused for the secret {given:?}: {}", r.body));
        }
        // The CLI's `submit -p` and `run -p` do the same.
        for command in ["submit", "run"] {
            let mut args: Vec<String> = vec![command.into(), "r.toml".into(), "--yes".into()];
            for (k, v) in given {
                args.extend(["-p".into(), format!("{k}={v}")]);
            }
            args.extend(["--state".into(), cli_state.clone()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let cli = run_in_with_env(dir, &args, &ENV);
            let said = format!("{}{}", cli.stdout, cli.stderr);
            if said.contains(SECRET)
                || cli.code == 0
                || !said.contains("contains the value of secret `TOKEN`")
            {
                leaks.push(format!("{command} for {given:?}: {said}"));
            }
        }
    }
    assert!(queue(&scratch).is_empty(), "nothing queued");
    assert!(leaks.is_empty(), "the secret came back in: {leaks:#?}");
}
