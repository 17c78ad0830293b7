//! Operator decisions from the console (issue 16, i17-decide): a run with a step in doubt
//! (started, no end record, not idempotent) shows each such step with the choices the
//! core's resume rules allow (rerun, skip), a required reason and the signed-in identity;
//! posting journals `operator_decision` as `runbook resume --rerun/--skip` does, and hands
//! the run back to the queue, where a real `runbook worker` resumes it: the completed steps
//! do not run again. A queued run is cancelled from its page as `runbook cancel` does. The
//! real binary on loopback, a temp SQLite store, plain HTTP/1.1 written by hand.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::console_auth::{add_token, csrf_of, serve};
use crate::support::{Scratch, bin, ok};

/// `two` kills its engine the first time (after its side effect): it is then in doubt.
const DOUBT: &str = r#"[runbook]
name = "doubt"

[steps.one]
run = "echo one >> effects"

[steps.two]
run = "echo two >> effects; if [ ! -e killed ]; then touch killed; kill -9 $PPID; sleep 5; fi"

[steps.three]
run = "echo three >> effects"
"#;

pub(crate) fn worker(scratch: &Scratch) -> Child {
    worker_env(scratch, &[])
}

/// A real `runbook worker` on the scratch's store, with `env` added (a run's secret sources).
pub(crate) fn worker_env(scratch: &Scratch, env: &[(&str, &str)]) -> Child {
    Command::new(bin())
        .args(["worker", "--poll", "20ms", "--state", &scratch.state()])
        .current_dir(scratch.path())
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker")
}

/// The queue row of `run` as `state|exit_code|note` (sqlite3, read only).
fn queue_row(scratch: &Scratch, run: &str) -> String {
    let out = Command::new("sqlite3")
        .args([
            "-readonly",
            &scratch.state(),
            &format!(
                "SELECT state || '|' || IFNULL(exit_code, '') || '|' || IFNULL(note, '') FROM queue WHERE run_id = '{run}'"
            ),
        ])
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits (at most two minutes: a hang fails, no speed is asserted) until `done` holds.
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `runbook runs --format json` lists `run` as succeeded.
fn succeeded(runs: &str, run: &str) -> bool {
    let all: serde_json::Value = serde_json::from_str(runs).unwrap_or_default();
    all.as_array().into_iter().flatten().any(|r| r["run_id"] == run && r["status"] == "succeeded")
}

pub(crate) fn kinds(scratch: &Scratch, run: &str) -> Vec<String> {
    scratch.events(run).into_iter().map(|(k, _)| k).collect()
}

fn submit(scratch: &Scratch) -> String {
    let out = scratch.cmd(&["submit", "r.toml", "--yes"], &[]);
    ok(&out, 0);
    out.stdout.trim().to_string()
}

#[test]
fn an_operator_decides_about_a_step_in_doubt_and_a_worker_resumes_the_run() {
    let scratch = Scratch::new(DOUBT);
    let (dir, state) = (scratch.path(), scratch.state());
    let run = submit(&scratch);
    let mut w = worker(&scratch);
    // The worker's engine dies in `two`; the next claim resumes it and stops: `two` is in
    // doubt and not idempotent (exit 4, needs an operator).
    wait_until("the run waits for an operator", || queue_row(&scratch, &run).starts_with("done|4|"));
    assert_eq!(scratch.read("effects"), "one\ntwo\n");
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let page_path = format!("/runs/{run}");
    let action = format!("/runs/{run}/decisions");
    let before = kinds(&scratch, &run);

    // Anonymous: the steps in doubt are shown, no form; a POST is refused.
    let page = served.send("GET", &page_path, &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Needs an operator's decision"), "{}", page.body);
    assert!(page.body.contains("<code>two</code>"), "{}", page.body);
    assert!(!page.body.contains("name=\"step.two\""), "{}", page.body);
    assert_eq!(served.post_form(&action, None, "step.two=rerun&reason=x").status, 403);
    assert_eq!(served.send("POST", &format!("/api{action}"), &[], "step.two=rerun&reason=x").status, 401);

    // Signed in: the choices for `two` only (the core's assessment), a required reason.
    let session = served.login(&bob);
    let page = served.get_as(&page_path, &session);
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("name=\"step.two\" value=\"rerun\""), "{body}");
    assert!(body.contains("name=\"step.two\" value=\"skip\""), "{body}");
    assert!(!body.contains("name=\"step.one\"") && !body.contains("name=\"step.three\""), "{body}");
    let form = body.find("class=\"decisions\"").expect("the decision form");
    let csrf = csrf_of(&body[form..]);

    // No CSRF token, a wrong one, a foreign origin, no reason, no decision, a step not in
    // doubt, an unknown choice: refused, nothing journaled, still not queued.
    let cookie = format!("runbook_session={session}");
    let good = format!("step.two=rerun&reason=it+never+reached+the+API&csrf={csrf}");
    assert_eq!(served.post_form(&action, Some(&session), "step.two=rerun&reason=x").status, 403);
    assert_eq!(served.post_form(&action, Some(&session), "step.two=rerun&reason=x&csrf=nope").status, 403);
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let r = served.send("POST", &action, &[("Origin", origin), ("Cookie", &cookie)], &good);
        assert_eq!(r.status, 403, "{origin}: {r:?}");
    }
    let r = served.post_form(&action, Some(&session), &format!("step.two=rerun&reason=+&csrf={csrf}"));
    assert_eq!(r.status, 400, "{r:?}");
    let r = served.post_form(&action, Some(&session), &format!("reason=why&csrf={csrf}"));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("steps in doubt that are not idempotent: two"), "{}", r.body);
    let r = served.post_form(
        &action,
        Some(&session),
        &format!("step.one=rerun&step.two=rerun&reason=x&csrf={csrf}"),
    );
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("`one` is not in doubt"), "{}", r.body);
    let r = served.post_form(&action, Some(&session), &format!("step.two=again&reason=x&csrf={csrf}"));
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(kinds(&scratch, &run), before);
    assert!(queue_row(&scratch, &run).starts_with("done|4|"));

    // Bob decides: `operator_decision` as `runbook resume --rerun two --reason ...` records
    // it, with bob as the operator; the run is queued again and the worker resumes it.
    let r = served.post_form(&action, Some(&session), &good);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some(page_path.as_str()));
    let journal = scratch.audit(&run);
    let decision = journal.lines().find(|l| l.contains("operator_decision")).expect("operator_decision");
    for part in
        ["\"step\":\"two\"", "\"decision\":\"rerun\"", "\"operator\":\"bob\"", "it never reached the API"]
    {
        assert!(decision.contains(part), "{part}: {decision}");
    }
    wait_until("the resumed run succeeds", || {
        succeeded(&scratch.cmd(&["runs", "--format", "json"], &[]).stdout, &run)
    });
    crate::support::kill9(w.id());
    let _ = w.wait();
    // `one` ran once, `two` again by the decision, `three` once.
    assert_eq!(scratch.read("effects"), "one\ntwo\ntwo\nthree\n");
    let events = scratch.events(&run);
    let started = |step: &str| events.iter().filter(|(k, s)| k == "step_started" && s == step).count();
    assert_eq!((started("one"), started("two"), started("three")), (1, 2, 1), "{events:?}");
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
    // Decided and finished: no form any more, and a second decision is refused.
    let page = served.get_as(&page_path, &session);
    assert!(!page.body.contains("name=\"step.two\""), "{}", page.body);
    let r = served.post_form(&action, Some(&session), &good);
    assert_eq!(r.status, 409, "{r:?}");
}

#[test]
fn a_run_no_worker_ran_is_resumed_where_it_ran_and_a_read_only_console_takes_nothing() {
    let scratch = Scratch::new(DOUBT);
    let (dir, state) = (scratch.path(), scratch.state());
    // `runbook run` on a terminal: the engine dies in `two`.
    assert_ne!(scratch.run(&["--yes"], &[]).code, 0);
    let run = scratch.latest_run();
    let bob = add_token(dir, &state, "bob");
    let before = kinds(&scratch, &run);
    {
        let served = serve(dir, &state, &["--auth", "token"]);
        let session = served.login(&bob);
        let page = served.get_as(&format!("/runs/{run}"), &session);
        assert!(page.body.contains("No worker ran this run"), "{}", page.body);
        assert!(!page.body.contains("name=\"step.two\""), "{}", page.body);
        let csrf = csrf_of(&page.body);
        let r = served.post_form(
            &format!("/runs/{run}/decisions"),
            Some(&session),
            &format!("step.two=skip&reason=done+by+hand&csrf={csrf}"),
        );
        assert_eq!(r.status, 409, "{r:?}");
        assert!(r.body.contains("was not started by a worker"), "{}", r.body);
        assert!(r.body.contains("runbook resume"), "{}", r.body);
    }
    // A read-only console (no `--auth`): shows the steps in doubt, takes no write.
    let served = serve(dir, &state, &[]);
    let page = served.send("GET", &format!("/runs/{run}"), &[], "");
    assert!(page.body.contains("read-only"), "{}", page.body);
    let origin = served.origin();
    let r = served.send(
        "POST",
        &format!("/runs/{run}/decisions"),
        &[("Origin", &origin)],
        "step.two=skip&reason=x",
    );
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(kinds(&scratch, &run), before);
    // The CLI decides it where it ran.
    ok(&scratch.cmd(&["resume", &run, "--yes", "--skip", "two", "--reason", "done by hand"], &[]), 0);
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\n");
}

#[test]
fn a_queued_run_is_cancelled_from_its_page_as_runbook_cancel_does() {
    let scratch = Scratch::new(DOUBT);
    let (dir, state) = (scratch.path(), scratch.state());
    let run = submit(&scratch);
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let action = format!("/runs/{run}/cancel");

    // Anonymous: no form, refused.
    let page = served.send("GET", &format!("/runs/{run}"), &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("Cancel the queued run"), "{}", page.body);
    assert_eq!(served.post_form(&action, None, "reason=x").status, 403);
    assert_eq!(served.send("POST", &format!("/api{action}"), &[], "reason=x").status, 401);
    let session = served.login(&bob);
    let page = served.get_as(&format!("/runs/{run}"), &session);
    assert!(page.body.contains("Cancel the queued run"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    assert_eq!(served.post_form(&action, Some(&session), "reason=x").status, 403);
    let cookie = format!("runbook_session={session}");
    let r = served.send(
        "POST",
        &action,
        &[("Origin", "http://evil.example"), ("Cookie", &cookie)],
        &format!("reason=x&csrf={csrf}"),
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(queue_row(&scratch, &run).starts_with("queued|"), "{}", queue_row(&scratch, &run));

    // Bob cancels it: the queue keeps `cancelled by bob: REASON`, as `runbook cancel` keeps it.
    let r = served.post_form(&action, Some(&session), &format!("reason=wrong+ticket&csrf={csrf}"));
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(queue_row(&scratch, &run), "done||cancelled by bob: wrong ticket");
    let runs = scratch.cmd(&["runs"], &[]);
    assert!(runs.stdout.contains("cancelled"), "{}", runs.stdout);
    // Again: the CLI's refusal, nothing changed; no worker ever runs it.
    let cli = scratch.cmd(&["cancel", &run], &[]);
    assert_ne!(cli.code, 0);
    assert!(cli.stderr.contains("is not queued any more (done)"), "{}", cli.stderr);
    let r = served.post_form(&action, Some(&session), &format!("reason=again&csrf={csrf}"));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("is not queued any more (done)"), "{}", r.body);
    // Through the API with a bearer, another queued run.
    let other = submit(&scratch);
    let r = served.send(
        "POST",
        &format!("/api/runs/{other}/cancel"),
        &[("Authorization", &format!("Bearer {bob}"))],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(queue_row(&scratch, &other), "done||cancelled by bob");
    assert!(!scratch.path().join("effects").exists());
}

/// The resume choice in a real browser (Chromium): bob signs in, opens the page of a run
/// whose step `two` is in doubt, picks **skip**, types a reason and records it; the page
/// comes back, a real worker resumes the run: `two` does not run again, `three` runs. The
/// page with the form is saved as a screenshot (`target/console-screenshots/console-decision.png`).
#[test]
fn an_operator_skips_a_step_in_doubt_in_a_real_browser_and_the_worker_resumes() {
    use crate::console_auth::{sign_in, wait_page};
    let scratch = Scratch::new(DOUBT);
    let (dir, state) = (scratch.path(), scratch.state());
    let run = submit(&scratch);
    let mut w = worker(&scratch);
    wait_until("the run waits for an operator", || queue_row(&scratch, &run).starts_with("done|4|"));
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let browser = crate::browser::Browser::start();
    sign_in(&browser, &served, &bob);
    browser.resize(1200, 900);
    browser.open(&format!("{}/runs/{run}", served.origin()));
    let steps = browser.eval(
        "return Array.from(document.querySelectorAll('form.decisions input[type=radio]')).map(e => e.name + '=' + e.value)",
    );
    assert_eq!(steps, serde_json::json!(["step.two=rerun", "step.two=skip"]));
    browser.eval("document.getElementById('in-doubt').scrollIntoView(); return null");
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let shots = crate::support::root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("the screenshots' folder");
    std::fs::write(shots.join("console-decision.png"), png).expect("save the screenshot");
    browser.eval(
        "document.querySelector('input[name=\"step.two\"][value=skip]').click(); \
         document.getElementById('decision-reason').value = 'it ran: the effect is there'; \
         document.querySelector('button.decide').click(); return null",
    );
    wait_page(&browser, "return location.pathname", &serde_json::json!(format!("/runs/{run}")));
    let decision = scratch.audit(&run);
    let decision = decision.lines().find(|l| l.contains("operator_decision")).expect("operator_decision");
    for part in ["\"decision\":\"skip\"", "\"operator\":\"bob\"", "it ran: the effect is there"] {
        assert!(decision.contains(part), "{part}: {decision}");
    }
    wait_until("the resumed run succeeds", || {
        succeeded(&scratch.cmd(&["runs", "--format", "json"], &[]).stdout, &run)
    });
    crate::support::kill9(w.id());
    let _ = w.wait();
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\n", "a skipped step ran again");
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
}

/// `/runs` and `/api/runs` take `since=YYYY-MM-DD` (runs started on or after that day, UTC)
/// beside `runbook`, `status`, `operator`, `date` and `page`; a bad day is a 400 that says
/// what is expected, on the page and as JSON; the pages' links keep the filter.
#[test]
fn the_runs_can_be_filtered_since_a_day_and_a_bad_day_is_a_400() {
    let scratch = Scratch::new("[runbook]\nname = \"quick\"\n[steps.a]\nrun = \"true\"\n");
    for _ in 0..2 {
        ok(&scratch.run(&["--yes"], &[]), 0);
    }
    let out = scratch.cmd(&["runs", "--format", "json"], &[]);
    let all: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let today = all[0]["started_at"].as_str().expect("a start")[..10].to_string();
    let served = serve(scratch.path(), &scratch.state(), &[]);
    let listed = |query: &str| -> usize {
        let r = served.send("GET", &format!("/api/runs?{query}"), &[], "");
        assert_eq!(r.status, 200, "{query}: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        v["runs"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(listed(&format!("since={today}")), 2);
    assert_eq!(listed("since=2000-01-01"), 2);
    assert_eq!(listed("since=9999-12-31"), 0);
    assert_eq!(listed(&format!("since={today}&runbook=quick&status=succeeded")), 2);
    assert_eq!(listed(&format!("since={today}&runbook=other")), 0);
    let page = served.send("GET", &format!("/runs?since={today}"), &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!("name=\"since\" placeholder=\"YYYY-MM-DD\" value=\"{today}\"")),
        "{}",
        page.body
    );
    for bad in ["yesterday", "2026-13-01", "2026-1-1", "2026-12-06T00:00", "%FF"] {
        let r = served.send("GET", &format!("/runs?since={bad}"), &[], "");
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        let r = served.send("GET", &format!("/api/runs?since={bad}"), &[], "");
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert!(r.body.starts_with('{'), "{bad}: {}", r.body);
    }
    let r = served.send("GET", "/api/runs?since=2026-13-01", &[], "");
    assert!(r.body.contains("`since` is a day as YYYY-MM-DD (UTC)"), "{}", r.body);
}

/// The same on PostgreSQL (the team's store): the decision is journaled, the queue entry
/// handed back (`Store::requeue_to_resume` in PostgreSQL's SQL), and a real worker resumes
/// the run without running its completed step again.
#[test]
fn a_decision_on_postgresql_is_resumed_by_a_worker() {
    let place = crate::resume::Place::postgres(DOUBT);
    let out = place.cmd(&["submit", "r.toml", "--yes"]);
    ok(&out, 0);
    let run = out.stdout.trim().to_string();
    let mut w = place.spawn(&["worker", "--poll", "20ms"]);
    let bob = add_token(place.path(), place.state(), "bob");
    let served = serve(place.path(), place.state(), &["--auth", "token"]);
    let session = served.login(&bob);
    let page_path = format!("/runs/{run}");
    // The page offers the choice once the worker's second engine stopped for an operator.
    let mut page = served.get_as(&page_path, &session);
    wait_until("the decision form", || {
        page = served.get_as(&page_path, &session);
        page.body.contains("name=\"step.two\" value=\"skip\"")
    });
    let form = page.body.find("class=\"decisions\"").expect("the decision form");
    let csrf = csrf_of(&page.body[form..]);
    let good = format!("step.two=skip&reason=it+ran&csrf={csrf}");
    let mut r = served.post_form(&format!("/runs/{run}/decisions"), Some(&session), &good);
    // The worker may not have recorded its engine's end yet: refused (nothing recorded), then taken.
    wait_until("the decision is taken", || {
        if r.status == 409 && r.body.contains("in the worker queue") {
            r = served.post_form(&format!("/runs/{run}/decisions"), Some(&session), &good);
        }
        r.status != 409 || !r.body.contains("in the worker queue")
    });
    assert_eq!(r.status, 303, "{r:?}");
    wait_until("the resumed run succeeds", || {
        succeeded(&place.cmd(&["runs", "--format", "json"]).stdout, &run)
    });
    crate::support::kill9(w.id());
    let _ = w.wait();
    assert_eq!(place.lines("effects"), ["one", "two", "three"], "a skipped step ran again");
    let journal = place.journal(&run);
    let decided: Vec<&serde_json::Value> =
        journal.iter().filter(|r| r["event"]["kind"] == "operator_decision").collect();
    assert_eq!(decided.len(), 1, "{journal:#?}");
    assert_eq!(decided[0]["event"]["operator"], "bob");
    place.verify(&run);
}

/// Promise 3: a reason pasted with the run's secret is journaled redacted when the console
/// has the run's secret sources, and refused (nothing recorded) when it has not; no page
/// or answer shows the secret.
#[test]
fn a_secret_pasted_in_a_decision_s_reason_is_redacted_or_refused() {
    let runbook = format!("{DOUBT}\n[secrets.DB_URL]\nenv = \"SENTINEL_DB_URL\"\n");
    let secret = crate::secrets::DB_URL;
    let env = [("SENTINEL_DB_URL", secret)];
    let scratch = Scratch::new(&runbook);
    let (dir, state) = (scratch.path(), scratch.state());
    let out = scratch.cmd(&["submit", "r.toml", "--yes"], &env);
    ok(&out, 0);
    let run = out.stdout.trim().to_string();
    let mut w = worker_env(&scratch, &env);
    wait_until("the run waits for an operator", || queue_row(&scratch, &run).starts_with("done|4|"));
    let bob = add_token(dir, &state, "bob");
    let action = format!("/runs/{run}/decisions");
    let pasted = format!("step.two=skip&reason=pasted+{}", crate::argv_sampler::percent_encode(secret));

    // Without the run's secret sources: refused, nothing recorded.
    {
        let without = serve(dir, &state, &["--auth", "token"]);
        let session = without.login(&bob);
        let page = without.get_as(&format!("/runs/{run}"), &session);
        let csrf = csrf_of(&page.body[page.body.find("class=\"decisions\"").expect("the form")..]);
        let before = kinds(&scratch, &run);
        let r = without.post_form(&action, Some(&session), &format!("{pasted}&csrf={csrf}"));
        assert_eq!(r.status, 400, "{r:?}");
        assert!(r.body.contains("nothing was recorded"), "{}", r.body);
        crate::secrets::assert_clean("the refusal", &r.body);
        assert_eq!(kinds(&scratch, &run), before);
    }
    // With them: recorded, the secret redacted; the pages stay clean.
    let with_sources = crate::console_auth::serve_env(dir, &state, &["--auth", "token"], &env);
    let session = with_sources.login(&bob);
    let page = with_sources.get_as(&format!("/runs/{run}"), &session);
    let csrf = csrf_of(&page.body[page.body.find("class=\"decisions\"").expect("the form")..]);
    let r = with_sources.post_form(&action, Some(&session), &format!("{pasted}&csrf={csrf}"));
    assert_eq!(r.status, 303, "{r:?}");
    let journal = scratch.audit(&run);
    assert!(journal.contains("operator_decision") && journal.contains("pasted"), "{journal}");
    crate::secrets::assert_clean("the journal", &journal);
    wait_until("the resumed run succeeds", || {
        succeeded(&scratch.cmd(&["runs", "--format", "json"], &[]).stdout, &run)
    });
    crate::support::kill9(w.id());
    let _ = w.wait();
    for path in [format!("/runs/{run}"), format!("/api/runs/{run}"), "/runs".into()] {
        crate::secrets::assert_clean(&path, &with_sources.get_as(&path, &session).body);
    }
    crate::secrets::assert_clean("the journal", &scratch.audit(&run));
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\n");
}

/// The console judges steps in doubt against the runbook a resume runs: its `for-each`
/// steps as their instances (issue 16, point 4). The instance `s[b]` kills its engine the
/// first time: the page shows `s[b]` in doubt (not `s`), and a rerun decided there reruns
/// exactly that instance; `s[a]` never runs again.
#[test]
fn a_for_each_instance_in_doubt_is_decided_from_the_console() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "each"

[params.items]
type = "list"
default = ["a", "b", "c"]

[steps.s]
for-each = "items"
max-parallel = 1
run = "echo {{ item }} >> effects; if [ {{ item }} = b ] && [ ! -e killed ]; then touch killed; kill -9 $PPID; sleep 5; fi"
"#,
    );
    let (dir, state) = (scratch.path(), scratch.state());
    let run = submit(&scratch);
    let mut w = worker(&scratch);
    wait_until("the run waits for an operator", || queue_row(&scratch, &run).starts_with("done|4|"));
    assert_eq!(scratch.read("effects"), "a\nb\n");
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let session = served.login(&bob);
    let page_path = format!("/runs/{run}");
    let page = served.get_as(&page_path, &session);
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("Needs an operator's decision"), "{body}");
    assert!(body.contains("name=\"step.s[b]\" value=\"rerun\""), "{body}");
    assert!(!body.contains("name=\"step.s\"") && !body.contains("name=\"step.s[a]\""), "{body}");
    let form = body.find("class=\"decisions\"").expect("the decision form");
    let csrf = csrf_of(&body[form..]);
    let action = format!("/runs/{run}/decisions");
    let r = served.post_form(
        &action,
        Some(&session),
        &format!("step.s%5Bb%5D=rerun&reason=checked+b&csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{r:?}");
    wait_until("the resumed run succeeds", || {
        succeeded(&scratch.cmd(&["runs", "--format", "json"], &[]).stdout, &run)
    });
    crate::support::kill9(w.id());
    let _ = w.wait();
    assert_eq!(scratch.read("effects"), "a\nb\nb\nc\n");
    let events = scratch.events(&run);
    let started = |step: &str| events.iter().filter(|(k, s)| k == "step_started" && s == step).count();
    assert_eq!((started("s[a]"), started("s[b]"), started("s[c]")), (1, 2, 1), "{events:?}");
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
}

/// The class of point 4: the console judged a run against its runbook before the
/// `for-each` expansion, unlike `runbook resume`. `s[b]` fails under
/// `on-failure = "compensate"` while `t` runs; `t` then kills its engine: the run was
/// undoing itself, so `resume` refuses to go on (`runbook compensate` is the way). The
/// console must agree: no decision form for `t`, and a decision posted anyway is refused
/// with nothing journaled (it used to offer `t`, record the decision and requeue a run no
/// worker could resume: `s[b]` was not found in the unexpanded runbook).
#[test]
fn the_console_judges_a_for_each_run_as_resume_does() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "each"

[params.items]
type = "list"
default = ["a", "b"]

[steps.t]
needs = []
run = "touch t-started; while [ ! -e b-done ]; do sleep 0.05; done; sleep 1; kill -9 $PPID; sleep 5"

[steps.s]
needs = []
for-each = "items"
on-failure = "compensate"
run = "while [ ! -e t-started ]; do sleep 0.05; done; echo {{ item }} >> effects; if [ {{ item }} = b ]; then touch b-done; exit 1; fi"
"#,
    );
    let (dir, state) = (scratch.path(), scratch.state());
    let run = submit(&scratch);
    let mut w = worker(&scratch);
    wait_until("the run waits for an operator", || queue_row(&scratch, &run).starts_with("done|"));
    crate::support::kill9(w.id());
    let _ = w.wait();
    let events = scratch.events(&run);
    assert!(events.iter().any(|(k, s)| k == "step_failed" && s == "s[b]"), "{events:?}");
    // `runbook resume` refuses: the run was undoing itself.
    let resume = scratch.cmd(&["resume", &run, "--yes"], &[]);
    assert_ne!(resume.code, 0, "{}", resume.stdout);
    assert!(resume.stderr.contains("was compensating when the engine stopped"), "{}", resume.stderr);
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let session = served.login(&bob);
    let page_path = format!("/runs/{run}");
    let page = served.get_as(&page_path, &session);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("name=\"step.t\""), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let before = kinds(&scratch, &run);
    let r = served.post_form(
        &format!("/runs/{run}/decisions"),
        Some(&session),
        &format!("step.t=rerun&reason=checked&csrf={csrf}"),
    );
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("was compensating when the engine stopped"), "{}", r.body);
    assert_eq!(kinds(&scratch, &run), before);
    assert!(queue_row(&scratch, &run).starts_with("done|"));
}

/// adv19a-6 and adv19a-5: a started run that an operator's decision handed back to the queue
/// (queued again, with a journal) is not cancelled: the console's cancel and `runbook
/// cancel` refuse it (409, "abandon it instead"), in the store's one statement; the queue
/// row is untouched. Then a worker resumes it as bob, who decided: `run_resumed` names bob,
/// not the submitter. Before the fix the cancel took it off the queue (stranded, nothing
/// journaled) and `run_resumed` named the submitter.
#[test]
fn a_decided_resume_is_not_cancelled_and_is_journaled_as_the_decider_s() {
    let scratch = Scratch::new(DOUBT);
    let (dir, state) = (scratch.path(), scratch.state());
    let out = scratch.cmd(&["submit", "r.toml", "--yes", "--as", "alice"], &[]);
    ok(&out, 0);
    let run = out.stdout.trim().to_string();
    let mut w = worker(&scratch);
    wait_until("the run waits for an operator", || queue_row(&scratch, &run).starts_with("done|4|"));
    crate::support::kill9(w.id());
    let _ = w.wait();
    let bob = add_token(dir, &state, "bob");
    let carol = add_token(dir, &state, "carol");
    let served = serve(dir, &state, &["--auth", "token"]);
    let r = served.send(
        "POST",
        &format!("/api/runs/{run}/decisions"),
        &[("Authorization", &format!("Bearer {bob}"))],
        "step.two=rerun&reason=it+never+reached+the+API",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let queued = queue_row(&scratch, &run);
    assert!(queued.starts_with("queued|"), "{queued}");
    let before = kinds(&scratch, &run);

    let r = served.send(
        "POST",
        &format!("/api/runs/{run}/cancel"),
        &[("Authorization", &format!("Bearer {carol}"))],
        "reason=changed+my+mind",
    );
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("has started") && r.body.contains("runbook abandon"), "{}", r.body);
    let cli = scratch.cmd(&["cancel", &run, "--as", "carol"], &[]);
    assert_ne!(cli.code, 0, "{cli:?}");
    assert!(cli.stderr.contains("has started") && cli.stderr.contains("runbook abandon"), "{}", cli.stderr);
    assert_eq!(queue_row(&scratch, &run), queued);
    assert_eq!(kinds(&scratch, &run), before);

    let mut w = worker(&scratch);
    wait_until("the resumed run succeeds", || {
        succeeded(&scratch.cmd(&["runs", "--format", "json"], &[]).stdout, &run)
    });
    crate::support::kill9(w.id());
    let _ = w.wait();
    let journal = scratch.audit(&run);
    let started = journal.lines().find(|l| l.contains("\"run_started\"")).expect("run_started");
    assert!(started.contains("\"operator\":\"alice\""), "{started}");
    let resumed: Vec<&str> = journal.lines().filter(|l| l.contains("\"run_resumed\"")).collect();
    // The worker's first resume (before the decision) is the submitter's; the decided one is bob's.
    let last = resumed.last().expect("run_resumed");
    assert!(last.contains("\"operator\":\"bob\""), "{journal}");
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
}
