//! Secrets never leak: sentinel values (a database URL with a password, a Bearer token, a
//! multi-line PEM key), read from each kind of source, used by steps that echo them in every
//! way a program might (raw, base64, percent-encoded by an HTTP client, JSON-escaped by a
//! server, line by line, in failure messages), and then every place the engine writes is
//! searched for every form: zero hits.

use std::path::Path;

use crate::peers::HttpPeer;
use crate::support::{Output, files, run_in_with_env};

pub(crate) const DB_URL: &str = "postgres://app:Pa55-w0rd-Sentinel-7d1c@127.0.0.1:9/app";
pub(crate) const TOKEN: &str = "tok-Sentinel-b7c1e9d2a4f6";
const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAsentinelKeyLine1x\n\
Q2hhbmdlIG1lOiB0aGlzIGlzIGEgc2VudGluZWwga2V5IGxpbmUgdHdvLi4uLi4u\n\
c2VudGluZWwga2V5IGxpbmUgdGhyZWUgZm9yIHRoZSByZWRhY3Rpb24gdGVzdA==\n\
-----END PRIVATE KEY-----";

pub(crate) fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { T[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Every form a leak could take: raw, base64 (without padding, which depends on what
/// follows), percent-encoded, JSON-escaped, and each long line of a multi-line value.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    forms.push(base64(secret.as_bytes()).trim_end_matches('=').to_string());
    forms.push(base64(format!("{secret}\n").as_bytes()).trim_end_matches('=').to_string());
    let pct: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    forms.push(pct);
    let json = serde_json::to_string(secret).unwrap_or_default();
    forms.push(json.trim_matches('"').to_string());
    forms.extend(
        secret.lines().map(str::trim).filter(|l| l.len() >= 8 && !l.starts_with("-----")).map(str::to_string),
    );
    forms.sort();
    forms.dedup();
    forms
}

pub(crate) fn assert_clean(what: &str, text: &str) {
    for secret in [DB_URL, TOKEN, PEM] {
        for form in forms(secret) {
            assert!(!text.contains(&form), "{what} holds a secret (form {form:?}):\n{text}");
        }
    }
}

#[test]
fn sentinel_secrets_leave_no_trace_anywhere() {
    let peer = HttpPeer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("token.txt"), format!("{TOKEN}\nsecond line is ignored\n")).expect("token");
    std::fs::write(path.join("key.pem"), format!("{PEM}\n")).expect("pem");
    let runbook = format!(
        r#"[runbook]
name = "leaky"

[secrets.DB_URL]
env = "SENTINEL_DB_URL"
[secrets.TOKEN]
file = "token.txt"
first-line = true
[secrets.PEM]
command = ["cat", "key.pem"]

[steps.echo]
run = '''
echo "db=$DB_URL token=$TOKEN"
printf '%s' "$TOKEN" | base64
printf '%s\n' "$DB_URL" | base64
printf '%s' "$PEM" | base64 -w0; echo
echo "$PEM"
echo "$PEM" >&2
printf 'half=%s' "${{TOKEN:0:12}}"; sleep 0.1; printf '%s\n' "${{TOKEN:12}}"
echo "leak=$TOKEN" >> "$RUNBOOK_OUTPUT"
'''
env = {{ DB_URL = "{{{{ secrets.DB_URL }}}}", TOKEN = "{{{{ secrets.TOKEN }}}}", PEM = "{{{{ secrets.PEM }}}}" }}
outputs = ["leak"]

[steps.fails]
run = 'echo "cannot connect to $DB_URL" >&2; exit 3'
env = {{ DB_URL = "{{{{ secrets.DB_URL }}}}" }}
retry = {{ attempts = 2, delay = "10ms" }}
on-failure = "continue"
needs = []

[steps.reflect]
http = {{ url = "{echo}", headers = {{ Authorization = "Bearer {{{{ secrets.TOKEN }}}}" }}, query = {{ db = "{{{{ secrets.DB_URL }}}}" }} }}
needs = []

[steps.reflect_json]
http = {{ method = "POST", url = "{echo}", json = {{ key = "{{{{ secrets.PEM }}}}", db = "{{{{ secrets.DB_URL }}}}" }} }}
needs = []

[steps.unreachable]
http = {{ url = "http://127.0.0.1:9/hooks/{{{{ secrets.TOKEN }}}}", request-timeout = "2s" }}
on-failure = "continue"
needs = []

[steps.database]
sql = {{ url = "{{{{ secrets.DB_URL }}}}", query = "SELECT 1" }}
on-failure = "continue"
needs = []
"#,
        echo = peer.url("/echo")
    );
    std::fs::write(path.join("r.toml"), runbook).expect("runbook");
    let env = [("SENTINEL_DB_URL", DB_URL)];
    let run = |args: &[&str]| -> Output {
        let mut all = args.to_vec();
        if args[0] != "plan" {
            all.extend(["--state", "state/state.db"]);
        }
        run_in_with_env(path, &all, &env)
    };

    let plan = run(&["plan", "r.toml", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_clean("plan", &plan.stdout);

    let text = run(&["run", "r.toml"]);
    assert_eq!(text.code, 1, "{}{}", text.stdout, text.stderr);
    // The steps did see the values: redaction marks show where they were.
    assert!(text.stdout.contains("db=<secret:DB_URL> token=<secret:TOKEN>"), "{}", text.stdout);
    assert!(text.stdout.contains("half=<secret:TOKEN>"), "a value printed in two chunks: {}", text.stdout);
    let reflected = peer.received().into_iter().find(|r| r.path.starts_with("/echo?")).expect("reflected");
    assert_eq!(reflected.headers.get("authorization"), Some(&format!("Bearer {TOKEN}")));
    let json = run(&["run", "r.toml", "--output", "json"]);
    assert_eq!(json.code, 1);

    let id = crate::support::latest_run_id(path, &path.join("state/state.db")).expect("a run");
    let mut places: Vec<(String, String)> = vec![
        ("run stdout".into(), text.stdout),
        ("run stderr".into(), text.stderr),
        ("--output json".into(), json.stdout),
        ("--output json stderr".into(), json.stderr),
    ];
    for args in [
        vec!["audit", id.as_str(), "--format", "jsonl"],
        vec!["audit", id.as_str()],
        vec!["show", id.as_str()],
        vec!["logs", id.as_str()],
        vec!["runs"],
    ] {
        let out = run(&args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        places.push((args.join(" "), out.stdout + &out.stderr));
    }
    // Every file the engine wrote: the database, its WAL, step logs, output files.
    for file in files(&path.join("state"), "") {
        let bytes = std::fs::read(&file).unwrap_or_default();
        places.push((file.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    assert!(places.len() > 10);
    for (what, text) in &places {
        assert_clean(what, text);
    }
    // The journal kept the reflected responses, redacted.
    let audit = &places.iter().find(|(w, _)| w.ends_with("jsonl")).expect("audit").1;
    assert!(audit.contains("<secret:DB_URL>") && audit.contains("<secret:PEM>"), "{audit}");
    assert!(!Path::new(&path.join("state/runs").join(&id).join("echo.1.outputs")).exists());
}

// ---------------------------------------------------------------------------------------
// Issue 11: secrets in any encoding, split over lines and chunks, in JSON numbers, inside
// parameters and in approval inputs.

/// Random alphanumerics from a per-test seed (xorshift; no dependency).
pub(crate) fn random_alnum(seed: &mut u64, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            A[(*seed % A.len() as u64) as usize] as char
        })
        .collect()
}

pub(crate) fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64) | 1
}

/// Test-side encoders, written independently of the engine's: every text a leak of
/// `secret` could leave behind, as the characters that depend on the secret alone.
pub(crate) fn encoded_forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![secret.to_string()];
    for prefix in [&b""[..], b"x", b"xy"] {
        let mut data = prefix.to_vec();
        data.extend_from_slice(bytes);
        let std = base64(&data);
        // Characters whose six bits all come from the secret.
        let first = (prefix.len() * 8).div_ceil(6);
        let last = (data.len() * 8) / 6;
        let core = &std[first..last];
        forms.push(core.to_string());
        forms.push(core.replace('+', "-").replace('/', "_"));
    }
    forms.push(bytes.iter().map(|b| format!("{b:02x}")).collect());
    forms.push(bytes.iter().map(|b| format!("{b:02X}")).collect());
    for safe in ["", "/"] {
        for lower in [false, true] {
            let pct: String = bytes
                .iter()
                .map(|&b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || safe.as_bytes().contains(&b) {
                        (b as char).to_string()
                    } else if lower {
                        format!("%{b:02x}")
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            forms.push(pct);
        }
    }
    let ascii_json: String = secret
        .chars()
        .map(|c| if c.is_ascii() { c.to_string() } else { format!("\\u{:04x}", c as u32) })
        .collect();
    forms.push(ascii_json);
    forms.sort();
    forms.dedup();
    forms
}

/// Every window of `width` characters of every form of `secret`, searched in `text` with
/// its line breaks removed (a form wrapped over lines, or split in two, is still a leak).
fn assert_no_window(what: &str, text: &str, secret: &str, width: usize) {
    let joined: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    for form in encoded_forms(secret) {
        let chars: Vec<char> = form.chars().collect();
        for w in chars.windows(width.min(chars.len())) {
            let w: String = w.iter().collect();
            assert!(
                !joined.contains(&w),
                "{what} holds {w:?}, a piece of the form {form:?} of a secret:\n{text}"
            );
        }
    }
}

/// Every place a run writes, as text: the run's own output, the reports, every file of
/// the state folder (database, WAL, logs, output files).
fn sinks(s: &crate::support::Scratch, run: &Output, env: &[(&str, &str)]) -> Vec<(String, String)> {
    let id = s.latest_run();
    let mut places =
        vec![("run stdout".to_string(), run.stdout.clone()), ("run stderr".to_string(), run.stderr.clone())];
    for args in [
        vec!["audit", id.as_str(), "--format", "jsonl"],
        vec!["audit", id.as_str()],
        vec!["show", id.as_str()],
        vec!["logs", id.as_str()],
        vec!["runs"],
        vec!["report", id.as_str()],
        vec!["report", id.as_str(), "--format", "html", "--drill"],
    ] {
        let out = s.cmd(&args, env);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        places.push((args.join(" "), out.stdout + &out.stderr));
    }
    for file in files(&s.path().join("state"), "") {
        let bytes = std::fs::read(&file).unwrap_or_default();
        places.push((file.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    places
}

#[test]
fn secrets_in_every_encoding_split_and_wrapped_leave_no_trace() {
    let mut seed = seed();
    // Over 57 bytes, so `base64` wraps it over two lines; a non-ASCII letter, so JSON
    // encoders write it as `\u00e9`; a `/` that `urllib.parse.quote` keeps.
    let secret = format!(
        "postgres://u{}:{}\u{e9}@h{}.example:5432/d{}?k={}",
        random_alnum(&mut seed, 12),
        random_alnum(&mut seed, 20),
        random_alnum(&mut seed, 10),
        random_alnum(&mut seed, 10),
        random_alnum(&mut seed, 16)
    );
    assert!(secret.len() > 57);
    let hook =
        format!("http://LOCALHOST:9/Hooks/{} x/{}", random_alnum(&mut seed, 16), random_alnum(&mut seed, 16));
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "encodings"

[secrets.T]
env = "LEAK_T"
[secrets.HOOK]
env = "LEAK_HOOK"

[steps.encode]
run = '''
printf %s "$T" | base64
printf %s "$T" | base64 -w 64 | sed 's/$/\r/'
printf 'x%s' "$T" | base64 >&2
printf 'xy%s\n' "$T" | basenc --base64url
printf %s "$T" | basenc --base64url -w0; echo
printf %s "$T" | xxd -p
printf %s "$T" | basenc --base16
python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$T"
python3 -c 'import sys, re, urllib.parse; print(re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(sys.argv[1], safe="")))' "$T"
python3 -c 'import sys, json; print(json.dumps({"t": sys.argv[1]}))' "$T"
printf '%s\n%s\n' "${T:0:30}" "${T:30}"
printf 'half=%s' "${T:0:40}"; sleep 0.3; printf '%s\n' "${T:40}"
'''
env = { T = "{{ secrets.T }}" }

[steps.webhook]
http = { url = "{{ secrets.HOOK }}", request-timeout = "2s" }
on-failure = "continue"
needs = []
"#,
    );
    let env = [("LEAK_T", secret.as_str()), ("LEAK_HOOK", hook.as_str())];
    let run = s.run(&[], &env);
    assert!(run.stdout.contains("<secret:T>"), "{}{}", run.stdout, run.stderr);
    let mut places = sinks(&s, &run, &env);
    let json = s.run(&["--output", "json"], &env);
    places.push(("--output json".into(), json.stdout + &json.stderr));
    assert!(places.len() > 8);
    for (what, text) in &places {
        assert_no_window(what, text, &secret, 12);
        assert_no_window(what, text, &hook, 12);
        // The webhook URL as the HTTP client normalises it in its messages.
        assert!(!text.to_lowercase().contains("localhost:9/hooks"), "{what}: {text}");
    }
}

#[test]
fn a_numeric_secret_in_a_json_number_is_redacted_value_by_value() {
    let pin = "731942";
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "numbers"

[secrets.PIN]
env = "LEAK_PIN"

[steps.count]
sql = { url = "sqlite:app.db?mode=rwc", query = "SELECT 731935 + 7 AS n, 'code ' || (731935 + 7) AS s, 3 AS k" }
"#,
    );
    let env = [("LEAK_PIN", pin)];
    let run = s.run(&["--output", "json"], &env);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let id = s.latest_run();
    let audit = s.audit(&id);
    let succeeded = audit.lines().find(|l| l.contains("step_succeeded")).expect("step_succeeded");
    assert!(!succeeded.contains(pin), "the secret is in the journal: {succeeded}");
    assert!(succeeded.contains("<secret:PIN>"), "{succeeded}");
    // The other values of the same event are kept as they were.
    assert!(succeeded.contains(r#""k":3"#), "{succeeded}");
    let json_line = run.stdout.lines().find(|l| l.contains("step_succeeded")).expect("json record");
    assert!(!json_line.contains(pin), "{json_line}");
    let show = s.cmd(&["show", &id], &env);
    assert!(!show.stdout.contains(pin), "{}", show.stdout);
    let db = std::fs::read(s.path().join("state/state.db")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&db).contains(pin), "the secret is in the state store");
}

const PARAM_RUNBOOK: &str = r#"[runbook]
name = "params"

[params.branch]
type = "string"
pattern = '^release-\d+$'

[secrets.DB_PASSWORD]
env = "DB_PASSWORD"

[steps.gate]
approval = { prompt = "Go?" }

[steps.use]
run = 'printf %s "$B" > used.txt'
env = { B = "{{ params.branch }}" }
needs = ["gate"]
"#;

#[test]
fn a_parameter_that_contains_a_secret_is_refused_before_anything_runs() {
    let s = crate::support::Scratch::new(PARAM_RUNBOOK);
    let out = s.run(&["-p", "branch=release-2024"], &[("DB_PASSWORD", "release")]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("`DB_PASSWORD`") && out.stderr.contains("`branch`"), "{}", out.stderr);
    assert!(!out.stderr.contains("release-2024"), "the error names, never shows: {}", out.stderr);
    insta::assert_snapshot!("param_holds_secret", out.stderr);
    assert!(crate::support::latest_run_id(s.path(), Path::new(&s.state())).is_none(), "a run was created");
}

#[test]
fn resume_checks_every_parameter_again_against_the_secrets_and_the_pattern() {
    let s = crate::support::Scratch::new(PARAM_RUNBOOK);
    let out = s.run(&["-p", "branch=release-2024"], &[("DB_PASSWORD", "hunter2-x")]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    let id = s.latest_run();
    let audit = s.audit(&id);
    assert!(audit.contains(r#""branch":"release-2024""#), "parameters are journaled as given: {audit}");
    assert_eq!(s.cmd(&["approve", &id, "gate"], &[("DB_PASSWORD", "hunter2-x")]).code, 0);
    // The secret changed meanwhile and now hides inside the parameter: refused.
    let out = s.cmd(&["resume", &id], &[("DB_PASSWORD", "2024")]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("`DB_PASSWORD`") && out.stderr.contains("`branch`"), "{}", out.stderr);
    assert_eq!(s.read("used.txt"), "");
    let out = s.cmd(&["resume", &id], &[("DB_PASSWORD", "hunter2-x")]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(s.read("used.txt"), "release-2024");
}

#[test]
fn a_secret_typed_into_an_approval_input_is_redacted_everywhere() {
    let token = "tok-Approval-5f1e2d3c4b";
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "inputs"

[secrets.TOKEN]
env = "APPROVAL_TOKEN"

[steps.gate]
approval = { prompt = "Go?", inputs = { note = { type = "string" } } }
"#,
    );
    let env = [("APPROVAL_TOKEN", token)];
    assert_eq!(s.run(&[], &env).code, 4);
    let id = s.latest_run();
    let note = format!("note=pasted {token} by mistake");
    let reason = format!("ok, {token}");
    // An input holding the secret is refused, never echoed (it would run as its
    // placeholder: red team adv19a-1); a reason holding it is redacted.
    let out = s.cmd(&["approve", &id, "gate", "--input", &note, "--reason", &reason], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("contains the value of secret `TOKEN`") && !out.stderr.contains(token),
        "{}",
        out.stderr
    );
    let out = s.cmd(&["approve", &id, "gate", "--input", "note=typed", "--reason", &reason], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let audit = s.audit(&id);
    assert!(!audit.contains(token), "{audit}");
    assert!(audit.contains("ok, <secret:TOKEN>"), "{audit}");
    for args in [vec!["show", id.as_str()], vec!["audit", id.as_str()]] {
        let out = s.cmd(&args, &env);
        assert!(!out.stdout.contains(token), "{args:?}: {}", out.stdout);
    }
    let db = std::fs::read(s.path().join("state/state.db")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&db).contains(token), "the secret is in the state store");
    // Without the run's secrets, `approve` cannot keep them out of the journal: refused.
    let s2 = crate::support::Scratch::new(&s.read("r.toml"));
    assert_eq!(s2.run(&[], &env).code, 4);
    let id2 = s2.latest_run();
    let out = s2.cmd(&["approve", &id2, "gate", "--input", "note=x"], &[]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("APPROVAL_TOKEN"), "{}", out.stderr);
    insta::assert_snapshot!("approve_without_the_secrets", out.stderr);
}

/// `runbook run r.toml` in the scratch folder, started by `bash -c SCRIPT` (which ends with
/// `exec "$@"`), for what the support helpers cannot do: limits, unread pipes.
fn engine_run(s: &crate::support::Scratch, script: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", script, "bash", env!("CARGO_BIN_EXE_runbook"), "run", "r.toml", "--state", &s.state()])
        .current_dir(s.path())
        .env("NO_COLOR", "1");
    cmd
}

#[test]
fn a_log_cut_by_a_write_error_says_so() {
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "big"

[steps.print]
run = "head -c 3000000 /dev/zero | tr '\\0' a | fold -w 100; echo; echo done"
"#,
    );
    // Files may not grow past 1 MiB (`ulimit -f`), as on a full disk; SIGXFSZ ignored, so
    // writes fail with an error instead of killing the engine.
    let out = engine_run(&s, "ulimit -f 1024; trap '' XFSZ; exec \"$@\"").output().expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("print | done"), "the step ran to its end: {stderr}");
    assert!(
        stdout.contains("log of `print`") && stdout.contains("is cut"),
        "a notice says the log is cut: {stdout}{stderr}"
    );
    let id = s.latest_run();
    let log =
        std::fs::read_to_string(s.path().join("state/runs").join(&id).join("print.1.log")).expect("log");
    assert!(log.len() <= 1024 * 1024);
    assert!(
        log.trim_end().ends_with("[runbook: the log is cut here]"),
        "{}",
        &log[log.len().saturating_sub(300)..]
    );
}

#[test]
fn a_terminal_that_falls_behind_loses_lines_not_the_log_and_is_told() {
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "flood"

[steps.print]
run = "head -c 12000000 /dev/zero | tr '\\0' a | fold -w 99; echo; echo done"
"#,
    );
    // Nobody reads the engine's output until the run has finished: the printer is stuck
    // on a full pipe, and the engine must neither wait for it nor hold the output.
    let state = s.state();
    let mut child = engine_run(&s, "exec \"$@\"")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runbook starts");
    let finished = (0..6000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        crate::support::latest_run_id(s.path(), Path::new(&state))
            .is_some_and(|id| s.audit(&id).contains("run_finished"))
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read as _;
        let _ = out.read_to_string(&mut stdout);
    }
    let _ = child.wait();
    assert!(finished, "the run finished while its output waited");
    assert!(
        stdout.contains("were not shown: the terminal fell behind"),
        "{}",
        &stdout[stdout.len().saturating_sub(2000)..]
    );
    let id = s.latest_run();
    let log =
        std::fs::read_to_string(s.path().join("state/runs").join(&id).join("print.1.log")).expect("log");
    assert_eq!(log.lines().count(), 12_000_000 / 99 + 2, "the log has every line");
    assert!(log.ends_with("out done\n"));
}

#[test]
fn the_log_of_a_quiet_step_is_current_while_it_waits() {
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "quiet"

[steps.wait]
run = "echo first; while [ ! -f go ]; do sleep 0.05; done; echo second"
"#,
    );
    let mut child = engine_run(&s, "exec \"$@\"")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runbook starts");
    let state = s.state();
    // While the step waits, what it printed is in its log (and would survive the engine).
    let seen = (0..1000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        crate::support::latest_run_id(s.path(), Path::new(&state))
            .is_some_and(|id| s.read(&format!("state/runs/{id}/wait.1.log")) == "out first\n")
    });
    std::fs::write(s.path().join("go"), "").expect("go");
    let status = child.wait().expect("the run ends");
    assert!(seen, "the log held nothing while the step waited");
    assert!(status.success());
    assert_eq!(s.read(&format!("state/runs/{}/wait.1.log", s.latest_run())), "out first\nout second\n");
}

#[test]
fn a_precondition_that_prints_a_lot_does_not_stall_the_run() {
    let s = crate::support::Scratch::new(
        r#"[runbook]
name = "chatty"

[preconditions.chatty]
run = "seq 1 200000"

[steps.a]
run = "echo ran > trace"
"#,
    );
    let mut child = engine_run(&s, "exec \"$@\"")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runbook starts");
    // A hang guard, not a speed check: the run takes well under a second.
    let ended = (0..3000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    assert!(ended, "the run hung on its precondition's output");
    assert_eq!(s.read("trace"), "ran\n");
}

/// Red team adv20-2: a new store was created 0644 (the umask's), its log and shared memory
/// too, while the run folder's logs are 0600: any local user could read the step logs the
/// store keeps. A store a command creates is its user's alone, whatever the umask.
#[test]
fn a_new_store_and_its_log_are_readable_by_their_user_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = crate::support::Scratch::new("[runbook]\nname = \"t\"\n[steps.a]\nrun = \"echo hello\"\n");
    let state = s.state();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask 022; exec \"$0\" run r.toml --yes --state '{state}'"))
        .arg(crate::support::bin())
        .current_dir(s.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("runbook");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A second process holds the store open, so its log and shared memory exist.
    let mut holder = s.spawn(&["runs", "--watch"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{state}{suffix}");
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
        } else {
            assert!(!suffix.is_empty(), "no store at {path}");
        }
    }
    let _ = holder.kill();
    let _ = holder.wait();
    // adv21-10: an empty file made first (`touch state.db`, umask 022) becomes the store
    // with the same mode.
    let touched = s.path().join("touched.db");
    std::fs::write(&touched, "").expect("touch");
    std::fs::set_permissions(&touched, std::fs::Permissions::from_mode(0o644)).expect("0644");
    let touched = touched.display().to_string();
    crate::support::ok(&crate::support::run_in(s.path(), &["state", "migrate", "--state", &touched]), 0);
    let mode = std::fs::metadata(&touched).expect("the store").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{touched}");
}
