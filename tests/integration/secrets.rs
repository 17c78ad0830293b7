//! Secrets never leak: sentinel values (a database URL with a password, a Bearer token, a
//! multi-line PEM key), read from each kind of source, used by steps that echo them in every
//! way a program might (raw, base64, percent-encoded by an HTTP client, JSON-escaped by a
//! server, line by line, in failure messages), and then every place the engine writes is
//! searched for every form: zero hits.

use std::path::Path;

use crate::peers::HttpPeer;
use crate::support::{Output, files, run_in_with_env};

const DB_URL: &str = "postgres://app:Pa55-w0rd-Sentinel-7d1c@127.0.0.1:9/app";
const TOKEN: &str = "tok-Sentinel-b7c1e9d2a4f6";
const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAsentinelKeyLine1x\n\
Q2hhbmdlIG1lOiB0aGlzIGlzIGEgc2VudGluZWwga2V5IGxpbmUgdHdvLi4uLi4u\n\
c2VudGluZWwga2V5IGxpbmUgdGhyZWUgZm9yIHRoZSByZWRhY3Rpb24gdGVzdA==\n\
-----END PRIVATE KEY-----";

fn base64(bytes: &[u8]) -> String {
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

fn assert_clean(what: &str, text: &str) {
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
