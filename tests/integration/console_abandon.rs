//! Abandon with compensation from the console (issue 16): the console runs no step, so
//! the run's queue entry is queued again with who asked and why (redacted), and a real
//! `runbook worker` runs `runbook abandon RUN --compensate` as that operator: the
//! compensations run once, most recent first, and `run_abandoned` is journaled with the
//! console's identity. A second request, or a second worker, runs nothing twice. The real
//! binary on loopback, a temp SQLite store, plain HTTP/1.1 and a real headless chromium.

use std::process::Command;

use crate::console_auth::{add_token, csrf_of, serve};
use crate::console_decide::{kinds, wait_until, worker, worker_env};
use crate::support::{Scratch, ok};

/// `one` and `two` complete, each with an undo; `three` kills its engine the first time
/// (after its side effect): it is then in doubt, and the run waits for an operator.
const UNDO: &str = r#"[runbook]
name = "undo"

[steps.one]
run = "echo one >> effects"
compensate = { run = "echo undo-one >> effects" }

[steps.two]
run = "echo two >> effects"
compensate = { run = "echo undo-two >> effects" }

[steps.three]
run = "echo three >> effects; if [ ! -e killed ]; then touch killed; kill -9 $PPID; sleep 5; fi"
"#;

/// The queue row of `run` as `state|exit_code|abandon_by` (sqlite3, read only).
fn queue_row(scratch: &Scratch, run: &str) -> String {
    let out = Command::new("sqlite3")
        .args([
            "-readonly",
            &scratch.state(),
            &format!(
                "SELECT state || '|' || IFNULL(exit_code, '') || '|' || IFNULL(abandon_by, '') FROM queue WHERE run_id = '{run}'"
            ),
        ])
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A run a worker ran, stopped for an operator (`three` in doubt) after `one` and `two`
/// completed; the worker is stopped (SIGKILL) so nothing claims it before the test asks.
fn interrupted(scratch: &Scratch) -> String {
    let out = scratch.cmd(&["submit", "r.toml", "--yes"], &[]);
    ok(&out, 0);
    let run = out.stdout.trim().to_string();
    let mut w = worker(scratch);
    wait_until("the run waits for an operator", || queue_row(scratch, &run).starts_with("done|4|"));
    crate::support::kill9(w.id());
    let _ = w.wait();
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\n");
    run
}

/// A message the console gives, snapshotted with the run's id and times filtered.
fn said(text: &str, name: &str) {
    insta::with_settings!({ filters => vec![
        (r"\d{8}T\d{6}Z-[0-9a-f]{8}", "[RUN]"),
    ] }, {
        insta::assert_snapshot!(name, text);
    });
}

/// The run page's `Abandon` row, as text.
fn status_row(page: &str) -> String {
    let start = page.find("id=\"abandoning\">").map(|i| i + "id=\"abandoning\">".len()).unwrap_or(0);
    let end = page[start..].find("</td>").map_or(page.len(), |e| start + e);
    page[start..end].to_string()
}

/// Two real workers: one claims the run and runs both undo commands, most recent first,
/// once; `run_abandoned` names bob, compensated; the journal verifies.
fn abandoned_by_one_of_two_workers(scratch: &Scratch, run: &str) {
    let mut w1 = worker(scratch);
    let mut w2 = worker(scratch);
    wait_until("a worker abandons it", || queue_row(scratch, run).starts_with("done|0|"));
    for w in [&mut w1, &mut w2] {
        crate::support::kill9(w.id());
        let _ = w.wait();
    }
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\nundo-two\nundo-one\n");
    let journal = scratch.audit(run);
    let abandoned = journal.lines().find(|l| l.contains("run_abandoned")).expect("run_abandoned");
    for part in ["\"operator\":\"bob\"", "\"compensated\":true", "rolled back after the incident"] {
        assert!(abandoned.contains(part), "{part}: {abandoned}");
    }
    ok(&scratch.cmd(&["audit", "verify", run], &[]), 0);
}

#[test]
fn an_interrupted_run_is_abandoned_with_its_compensations_by_a_worker_as_the_console_operator() {
    let scratch = Scratch::new(UNDO);
    let (dir, state) = (scratch.path(), scratch.state());
    let run = interrupted(&scratch);
    let bob = add_token(dir, &state, "bob");
    let page_path = format!("/runs/{run}");
    let action = format!("/runs/{run}/abandon");
    let before = kinds(&scratch, &run);
    let asked = "compensate=yes&reason=rolled+back+after+the+incident";
    {
        // A read-only console (no `--auth`) takes no write.
        let served = serve(dir, &state, &[]);
        let origin = served.origin();
        let r = served.send("POST", &action, &[("Origin", &origin)], asked);
        assert_eq!(r.status, 405, "{r:?}");
    }
    let served = serve(dir, &state, &["--auth", "token"]);
    // Anonymous, a bearer-less API call, no CSRF token, a wrong one: refused.
    assert_eq!(served.post_form(&action, None, asked).status, 403);
    assert_eq!(served.send("POST", &format!("/api{action}"), &[], asked).status, 401);
    let session = served.login(&bob);
    let page = served.get_as(&page_path, &session);
    assert!(page.body.contains("name=\"compensate\""), "{}", page.body);
    let csrf = csrf_of(&page.body);
    assert_eq!(served.post_form(&action, Some(&session), asked).status, 403);
    assert_eq!(served.post_form(&action, Some(&session), &format!("{asked}&csrf=nope")).status, 403);
    assert_eq!(kinds(&scratch, &run), before);
    assert!(queue_row(&scratch, &run).starts_with("done|4|"));

    // Bob asks: queued for a worker, nothing journaled yet, nothing run by the console.
    let r = served.post_form(&action, Some(&session), &format!("{asked}&csrf={csrf}"));
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(queue_row(&scratch, &run), "queued||bob");
    assert_eq!(kinds(&scratch, &run), before);
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\n");
    let page = served.get_as(&page_path, &session);
    assert!(page.body.contains("abandoning (compensating), asked by bob"), "{}", page.body);
    assert!(!page.body.contains("Abandon the run"), "{}", page.body);
    // A second request: 409, nothing changed.
    let r = served.post_form(&action, Some(&session), &format!("{asked}&csrf={csrf}"));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("its queue entry is queued: its abandon was asked already"), "{}", r.body);
    let api =
        served.send("POST", &format!("/api{action}"), &[("Authorization", &format!("Bearer {bob}"))], asked);
    assert_eq!(api.status, 409, "{api:?}");
    assert_eq!(queue_row(&scratch, &run), "queued||bob");
    said(
        &format!("the status row: {}\na second request (API): {}", status_row(&page.body), api.body),
        "console_abandon_asked",
    );

    // Two workers: one claims it and runs both undo commands, most recent first, once.
    abandoned_by_one_of_two_workers(&scratch, &run);
    assert!(scratch.cmd(&["show", &run], &[]).stdout.contains("abandoned"));
    // Abandoned: no form, no status line, and a third request is refused as the CLI's is.
    let page = served.get_as(&page_path, &session);
    assert!(!page.body.contains("abandoning (compensating)"), "{}", page.body);
    let r = served.post_form(&action, Some(&session), &format!("{asked}&csrf={csrf}"));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("has finished (abandoned); there is nothing to abandon"), "{}", r.body);
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\nundo-two\nundo-one\n");
}

#[test]
fn an_interrupted_run_is_abandoned_with_its_compensations_from_a_real_browser() {
    use crate::console_auth::{sign_in, wait_page};
    let scratch = Scratch::new(UNDO);
    let (dir, state) = (scratch.path(), scratch.state());
    let run = interrupted(&scratch);
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let browser = crate::browser::Browser::start();
    sign_in(&browser, &served, &bob);
    browser.resize(1200, 900);
    browser.open(&format!("{}/runs/{run}", served.origin()));
    browser.eval(
        "document.querySelector('details.abandon').open = true; \
         document.getElementById('abandon-reason').value = 'rolled back after the incident'; \
         document.getElementById('abandon-compensate').click(); \
         document.querySelector('button.abandon').click(); return null",
    );
    wait_page(&browser, "return location.pathname", &serde_json::json!(format!("/runs/{run}")));
    // Back on the run's page: its status says a worker is to compensate it; no form.
    wait_page(
        &browser,
        "return document.getElementById('abandoning') ? document.getElementById('abandoning').textContent : ''",
        &serde_json::json!(
            "abandoning (compensating), asked by bob: a worker runs its compensations, most recent first, then abandons it"
        ),
    );
    assert_eq!(browser.eval("return document.querySelectorAll('form.abandon').length"), serde_json::json!(0));
    assert_eq!(queue_row(&scratch, &run), "queued||bob");
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\n", "the console ran a step");
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let shots = crate::support::root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("the screenshots' folder");
    std::fs::write(shots.join("console-abandoning.png"), png).expect("save the screenshot");

    abandoned_by_one_of_two_workers(&scratch, &run);
    // A second click (the form posted again from the page, as a double click would): refused.
    browser.open(&format!("{}/runs/{run}", served.origin()));
    let status = browser.eval(
        "const f = new FormData(); f.append('reason', 'again'); f.append('compensate', 'yes'); \
         f.append('csrf', document.querySelector('input[name=csrf]') ? document.querySelector('input[name=csrf]').value : ''); \
         const r = new XMLHttpRequest(); r.open('POST', location.pathname + '/abandon', false); \
         r.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded'); \
         r.send(new URLSearchParams(f).toString()); return r.status",
    );
    assert_eq!(status, serde_json::json!(409));
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\nundo-two\nundo-one\n");
}

/// A run with nothing to compensate is abandoned by the console itself, as without the
/// box; a run no worker ran (started with `runbook run` on a terminal) is refused with
/// where to do it, nothing recorded.
#[test]
fn nothing_to_compensate_is_abandoned_directly_and_a_terminal_run_is_refused() {
    let scratch = Scratch::new(
        &UNDO
            .replace("compensate = { run = \"echo undo-one >> effects\" }\n", "")
            .replace("compensate = { run = \"echo undo-two >> effects\" }\n", ""),
    );
    let (dir, state) = (scratch.path(), scratch.state());
    let run = interrupted(&scratch);
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let session = served.login(&bob);
    let csrf = csrf_of(&served.get_as(&format!("/runs/{run}"), &session).body);
    let r = served.post_form(
        &format!("/runs/{run}/abandon"),
        Some(&session),
        &format!("compensate=yes&reason=nothing+to+undo&csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let journal = scratch.audit(&run);
    let abandoned = journal.lines().find(|l| l.contains("run_abandoned")).expect("run_abandoned");
    assert!(
        abandoned.contains("\"operator\":\"bob\"") && abandoned.contains("\"compensated\":false"),
        "{abandoned}"
    );
    assert_eq!(queue_row(&scratch, &run), "done|4|", "queued for nothing");

    let scratch = Scratch::new(UNDO);
    let (dir, state) = (scratch.path(), scratch.state());
    assert_ne!(scratch.run(&["--yes"], &[]).code, 0);
    let run = scratch.latest_run();
    let before = kinds(&scratch, &run);
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let session = served.login(&bob);
    let csrf = csrf_of(&served.get_as(&format!("/runs/{run}"), &session).body);
    let r = served.post_form(
        &format!("/runs/{run}/abandon"),
        Some(&session),
        &format!("compensate=yes&reason=undo+it&csrf={csrf}"),
    );
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("no worker ran run"), "{}", r.body);
    assert!(r.body.contains("--compensate"), "{}", r.body);
    let api = served.send(
        "POST",
        &format!("/api/runs/{run}/abandon"),
        &[("Authorization", &format!("Bearer {bob}"))],
        "compensate=yes&reason=undo+it",
    );
    assert_eq!(api.status, 409, "{api:?}");
    said(&api.body, "console_abandon_no_worker");
    assert_eq!(kinds(&scratch, &run), before);
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\n");
}

/// On PostgreSQL: the request and the claim are the same statements (migration 0009 in
/// both backends); two workers, the compensations once, the console's identity.
#[test]
fn an_abandon_with_compensation_on_postgresql_is_run_once_by_one_of_two_workers() {
    let place = crate::resume::Place::postgres(UNDO);
    let out = place.cmd(&["submit", "r.toml", "--yes"]);
    ok(&out, 0);
    let run = out.stdout.trim().to_string();
    let bob = add_token(place.path(), place.state(), "bob");
    let served = serve(place.path(), place.state(), &["--auth", "token"]);
    let action = format!("/api/runs/{run}/abandon");
    let bearer = format!("Bearer {bob}");
    let ask = || {
        served.send(
            "POST",
            &action,
            &[("Authorization", &bearer)],
            "compensate=yes&reason=rolled+back+after+the+incident",
        )
    };
    // Queued, no worker has started it: nothing to abandon yet, a 409 that says to cancel it
    // (it was a 404, "no run", and this test's wait below stopped on it under load).
    for asked in [ask(), served.send("POST", &action, &[("Authorization", &bearer)], "reason=not+yet")] {
        assert_eq!(asked.status, 409, "{asked:?}");
        assert!(
            asked.body.contains("no worker has started it yet") && asked.body.contains("runbook cancel"),
            "{asked:?}"
        );
    }
    let mut w1 = place.spawn(&["worker", "--poll", "20ms"]);
    // Until the worker's engine stopped for an operator (its entry `done`), the request is
    // refused with nothing recorded; then it is taken, once.
    let mut r = ask();
    wait_until("the request is taken", || {
        if r.status == 409 {
            r = ask();
        }
        r.status != 409
    });
    assert_eq!(r.status, 202, "{r:?}");
    let again = ask();
    assert_eq!(again.status, 409, "{again:?}");
    let mut w2 = place.spawn(&["worker", "--poll", "20ms"]);
    wait_until("the run is abandoned", || {
        let runs: serde_json::Value =
            serde_json::from_str(&place.cmd(&["runs", "--format", "json"]).stdout).unwrap_or_default();
        runs.as_array().into_iter().flatten().any(|r| r["run_id"] == run && r["status"] == "abandoned")
    });
    for w in [&mut w1, &mut w2] {
        crate::support::kill9(w.id());
        let _ = w.wait();
    }
    assert_eq!(place.lines("effects"), ["one", "two", "three", "undo-two", "undo-one"]);
    let journal = place.journal(&run);
    let abandoned: Vec<&serde_json::Value> =
        journal.iter().filter(|r| r["event"]["kind"] == "run_abandoned").collect();
    assert_eq!(abandoned.len(), 1, "{journal:#?}");
    assert_eq!(abandoned[0]["event"]["operator"], "bob");
    assert_eq!(abandoned[0]["event"]["compensated"], true);
    place.verify(&run);
}

/// Promise 3: a secret pasted in the reason is redacted before it is stored in the queue
/// (and so before the worker's command line and the journal have it); without the run's
/// secret sources the console refuses, nothing stored.
#[test]
fn a_secret_pasted_in_the_reason_never_reaches_the_queue_nor_the_journal() {
    let runbook = format!("{UNDO}\n[secrets.DB_URL]\nenv = \"SENTINEL_DB_URL\"\n");
    let secret = crate::secrets::DB_URL;
    let env = [("SENTINEL_DB_URL", secret)];
    let scratch = Scratch::new(&runbook);
    let (dir, state) = (scratch.path(), scratch.state());
    let out = scratch.cmd(&["submit", "r.toml", "--yes"], &env);
    ok(&out, 0);
    let run = out.stdout.trim().to_string();
    let mut w = worker_env(&scratch, &env);
    wait_until("the run waits for an operator", || queue_row(&scratch, &run).starts_with("done|4|"));
    crate::support::kill9(w.id());
    let _ = w.wait();
    let bob = add_token(dir, &state, "bob");
    let pasted = format!("compensate=yes&reason=pasted+{}", crate::argv_sampler::percent_encode(secret));
    let bearer = format!("Bearer {bob}");
    let action = format!("/api/runs/{run}/abandon");
    {
        let without = serve(dir, &state, &["--auth", "token"]);
        let r = without.send("POST", &action, &[("Authorization", &bearer)], &pasted);
        assert_eq!(r.status, 400, "{r:?}");
        crate::secrets::assert_clean("the refusal", &r.body);
        assert_eq!(queue_row(&scratch, &run), "done|4|");
    }
    let with_sources = crate::console_auth::serve_env(dir, &state, &["--auth", "token"], &env);
    let r = with_sources.send("POST", &action, &[("Authorization", &bearer)], &pasted);
    assert_eq!(r.status, 202, "{r:?}");
    let stored = Command::new("sqlite3")
        .args(["-readonly", &state, &format!("SELECT * FROM queue WHERE run_id = '{run}'")])
        .output()
        .expect("sqlite3");
    let stored = String::from_utf8_lossy(&stored.stdout).to_string();
    assert!(stored.contains("pasted"), "{stored}");
    crate::secrets::assert_clean("the queue", &stored);
    let mut w = worker_env(&scratch, &env);
    wait_until("a worker abandons it", || queue_row(&scratch, &run).starts_with("done|0|"));
    crate::support::kill9(w.id());
    let _ = w.wait();
    let journal = scratch.audit(&run);
    assert!(journal.contains("run_abandoned") && journal.contains("pasted"), "{journal}");
    crate::secrets::assert_clean("the journal", &journal);
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\nundo-two\nundo-one\n");
}

/// Promise 1 on this path: the worker's engine dies inside `two`'s undo (not idempotent).
/// The entry goes back to the queue and the next claim runs the same `abandon
/// --compensate`, which finds that undo in doubt: it runs nothing again (`undo-two` once,
/// `undo-one` never, the run not abandoned) and the entry is done, `abandon refused`.
#[test]
fn an_engine_that_dies_inside_an_undo_never_runs_it_again_by_itself() {
    let scratch = Scratch::new(&UNDO.replace(
        "compensate = { run = \"echo undo-two >> effects\" }",
        "compensate = { run = \"echo undo-two >> effects; if [ ! -e undo-killed ]; then touch undo-killed; kill -9 $PPID; sleep 5; fi\" }",
    ));
    let (dir, state) = (scratch.path(), scratch.state());
    let run = interrupted(&scratch);
    let bob = add_token(dir, &state, "bob");
    let served = serve(dir, &state, &["--auth", "token"]);
    let r = served.send(
        "POST",
        &format!("/api/runs/{run}/abandon"),
        &[("Authorization", &format!("Bearer {bob}"))],
        "compensate=yes&reason=rolled+back+after+the+incident",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let mut w = worker(&scratch);
    wait_until("the abandon is refused", || queue_row(&scratch, &run).starts_with("done|4|"));
    crate::support::kill9(w.id());
    let _ = w.wait();
    assert_eq!(scratch.read("effects"), "one\ntwo\nthree\nundo-two\n", "an undo in doubt ran again");
    assert!(!kinds(&scratch, &run).iter().any(|k| k == "run_abandoned"));
    ok(&scratch.cmd(&["audit", "verify", &run], &[]), 0);
}
