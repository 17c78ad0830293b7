//! Issue 11, promise 3 (second round): nothing an operator types reaches the store in
//! clear through a column beside the journal (`runs.operator`, `locks.holder`,
//! `queue.plan`, `queue.submitted_by`, `queue.labels`, `queue.note`). Each command that
//! writes one of them reads the run's secrets first and refuses a text that holds one.

use crate::support::{Scratch, files, run_in_with_env};

const RUNBOOK: &str = r#"[runbook]
name = "side-columns"

[params.note]
type = "string"
default = "nothing"

[secrets.DB_USER]
env = "DB_USER_SRC"

[steps.hello]
run = 'printf "%s\n" "$NOTE"'
env = { NOTE = "{{ params.note }}" }
"#;

/// The id of the run `runbook run` printed first (`run ID of NAME ...`).
pub(crate) fn run_id(out: &crate::support::Output) -> String {
    out.stdout.split_whitespace().nth(1).expect("the run's id").to_string()
}

/// Every file of the state folder (database, WAL, journal copies, logs), as text.
fn state_bytes(s: &Scratch) -> Vec<(String, String)> {
    files(&s.path().join("state"), "")
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap_or_default();
            (f.display().to_string(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

fn assert_store_clean(s: &Scratch, secret: &str) {
    for (file, text) in state_bytes(s) {
        for form in crate::secrets::encoded_forms(secret) {
            assert!(!text.contains(&form), "{file} holds the secret (form {form:?})");
        }
    }
}

#[test]
fn an_operator_name_holding_a_secret_is_refused_before_a_run_row_or_lock_is_written() {
    let s = Scratch::new(RUNBOOK);
    let env = [("DB_USER_SRC", "deploy-bot")];
    let out = s.run(&["--as", "deploy-bot@ci-runner-7"], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("`DB_USER`") && out.stderr.contains("operator"), "{}", out.stderr);
    assert!(!out.stderr.contains("deploy-bot"), "the error names, never shows: {}", out.stderr);
    insta::assert_snapshot!("operator_holds_secret", out.stderr);
    assert_store_clean(&s, "deploy-bot");
    // The same name without the secret in it runs.
    let out = s.run(&["--as", "release-bot@ci-runner-7"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn submit_reads_the_secrets_and_refuses_a_parameter_an_operator_or_a_label_holding_one() {
    let token = "Zq7vB2Xq4wP9kLm2";
    let s = Scratch::new(RUNBOOK);
    let env = [("DB_USER_SRC", token)];
    let (param, op, labels) = (format!("note={token}"), format!("ci-{token}"), format!("prod,{token}"));
    for args in [
        vec!["submit", "r.toml", "-p", &param],
        vec!["submit", "r.toml", "--as", &op],
        vec!["submit", "r.toml", "--labels", &labels],
    ] {
        let out = s.cmd(&args, &env);
        assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("`DB_USER`"), "{}", out.stderr);
        assert!(!out.stderr.contains(token), "{}", out.stderr);
    }
    assert_store_clean(&s, token);
    // Secrets that cannot be read: nothing is queued either (as `run` would refuse).
    let out = s.cmd(&["submit", "r.toml"], &[]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let out = s.cmd(&["submit", "r.toml", "-p", "note=fine"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn a_cancel_reason_holding_a_secret_is_refused_and_never_stored() {
    let token = "Zq7vB2Xq4wP9kLm2";
    let s = Scratch::new(RUNBOOK);
    let env = [("DB_USER_SRC", token)];
    let out = s.cmd(&["submit", "r.toml"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let id = out.stdout.trim().to_string();
    let reason = format!("pasted: {token}");
    let out = s.cmd(&["cancel", &id, "--reason", &reason], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("`DB_USER`") && !out.stderr.contains(token), "{}", out.stderr);
    assert_store_clean(&s, token);
    // A reason typed without the secrets' sources cannot be checked: refused too.
    let out = s.cmd(&["cancel", &id, "--reason", "wrong environment"], &[]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    insta::assert_snapshot!("cancel_reason_unchecked", out.stderr);
    let out = s.cmd(&["cancel", &id, "--reason", "wrong environment"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// The class: a generated secret placed in every input an operator controls (operator
/// name, parameters, labels, reasons, approval inputs and reasons), through every command
/// that writes a column of the store; the store's files never hold it in any form.
#[test]
fn a_generated_secret_typed_into_every_operator_input_never_reaches_the_store() {
    let mut seed = crate::secrets::seed();
    for _ in 0..3 {
        let secret = format!("Sk{}", crate::secrets::random_alnum(&mut seed, 22));
        let s = Scratch::new(&format!(
            "{RUNBOOK}\n[steps.gate]\napproval = {{ prompt = \"Go?\", inputs = {{ ticket = {{ type = \"string\" }} }} }}\nneeds = [\"hello\"]\n"
        ));
        let env = [("DB_USER_SRC", secret.as_str())];
        let param = format!("note=x{secret}y");
        let op = format!("{secret}@host");
        let reason = format!("because {secret}");
        let label = format!("eu,{secret}");
        let refused: Vec<Vec<&str>> = vec![
            vec!["run", "r.toml", "-p", &param],
            vec!["run", "r.toml", "--as", &op],
            vec!["submit", "r.toml", "-p", &param],
            vec!["submit", "r.toml", "--as", &op],
            vec!["submit", "r.toml", "--labels", &label],
        ];
        for args in &refused {
            let out = s.cmd(args, &env);
            assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
        }
        // A run waiting for approval, then every typed text on it.
        let out = s.run(&[], &env);
        assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
        let id = run_id(&out);
        // An input holding a secret is refused (it would run as its placeholder: red team
        // adv19a-1); the reason is redacted.
        let input = format!("ticket={secret}");
        let out = s.cmd(&["approve", &id, "gate", "--reason", &reason, "--input", &input], &env);
        assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
        let out = s.cmd(&["approve", &id, "gate", "--reason", &reason, "--input", "ticket=OPS-1"], &env);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let out = s.cmd(&["submit", "r.toml"], &env);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let queued = out.stdout.trim().to_string();
        let out = s.cmd(&["cancel", &queued, "--reason", &reason], &env);
        assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
        let out = s.cmd(&["cancel", &queued, "--as", &op], &env);
        assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
        assert_store_clean(&s, &secret);
    }
}

/// A real HTTP server on 127.0.0.1 that answers every request with `body` (until the test
/// ends); its URL.
fn serve(body: String, content_type: &'static str) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
        }
    });
    url
}

/// F7: an HTTP response is redacted before it is cut (64 KiB of `body`) or parsed (`json`
/// numbers beyond what a u64 or an f64 holds): no piece of the secret reaches the journal.
#[test]
fn an_http_response_is_redacted_before_it_is_cut_or_parsed() {
    let tok = "tok_Zq7vB2Xq4wP9kLm2Zq7vB2Xq4wP9kLm2Zq7vB2Xq4wP9kLm2";
    let num = "98765432109876543210123";
    // The secret straddles the 64 KiB cut of `body`.
    let cut_body = format!("{}{tok} and more", "A".repeat(64 * 1024 - 30));
    let cut_url = serve(cut_body, "text/plain");
    let num_url = serve(format!("{{\"account\": {num}, \"ok\": true}}"), "application/json");
    let s = Scratch::new(&format!(
        r#"[runbook]
name = "http-outputs"

[secrets.TOK]
env = "TOK_SRC"
[secrets.ACCT]
env = "NUM_SRC"

[steps.cut]
http = {{ url = "{cut_url}", headers = {{ Authorization = "Bearer {{{{ secrets.TOK }}}}" }} }}

[steps.num]
http = {{ url = "{num_url}", headers = {{ X-Acct = "{{{{ secrets.ACCT }}}}" }} }}
"#
    ));
    let env = [("TOK_SRC", tok), ("NUM_SRC", num)];
    let out = s.run(&[], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let audit = s.audit(&run_id(&out));
    for (secret, piece) in [(tok, &tok[..20]), (num, &num[..12])] {
        assert!(!audit.contains(piece), "a piece of {secret:?} is journaled");
    }
    // A big number that is no secret stays in the body as it came.
    assert!(
        audit.contains("<secret:TOK>") && audit.contains("<secret:ACCT>"),
        "{}",
        &audit[..audit.len().min(2000)]
    );
    let float = "9.87654321098765";
    assert!(!audit.contains(float), "the number was re-encoded before redaction");
    assert_store_clean(&s, &tok[..20]);
}

/// What a terminal shows of `text`: escape sequences play no part, a backspace erases the
/// character before it, NUL and a lone carriage return show nothing.
fn as_shown(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\u{8}' => {
                out.pop();
            }
            '\0' | '\r' => {}
            c => out.push(c),
        }
    }
    out.into_iter().collect()
}

/// F1: ordinary tools print a secret with control bytes inside it (grep's colours, a
/// backspace, UTF-16) or in escaped forms (shell quoting, HTML entities, quoted-printable,
/// Java's URLEncoder, SQL literals): none reaches the terminal, the logs, `show`, the journal
/// or the store.
#[test]
fn secrets_printed_with_control_bytes_or_escapes_by_ordinary_tools_are_redacted() {
    let token = "Zq7vB2Xq4wP9kLm2";
    let pw = "it's~a*p@ss&w<rd>!";
    let qp = "Zq7=vB2Xq4wP9kLm2";
    let s = Scratch::new(
        r#"[runbook]
name = "forms"

[secrets.TOKEN]
env = "TOKEN_SRC"
[secrets.PW]
env = "PW_SRC"
[secrets.QP]
env = "QP_SRC"

[defaults]
on-failure = "continue"

[steps.tools]
run = '''
echo "token: $T" | grep --color=always "Zq7"
printf "%s_\b%s\n" "${T:0:6}" "${T:6}"
printf "%s\n" "$T" | iconv -t UTF-16LE; echo
( set -x; true -u "admin:$P" ) 2>&1
printf "%q\n" "$P"
jq -rn "env.P | @sh"
jq -rn "env.P | @html"
perl -MData::Dumper -e 'print Dumper($ENV{P})'
python3 -c 'import html,os; print(html.escape(os.environ["P"]))'
python3 -c 'import os; print("".join(c if c.isalnum() else "&#%d;" % ord(c) for c in os.environ["P"]))'
python3 -c 'import os; print("".join(c if c.isalnum() else "&#x%x;" % ord(c) for c in os.environ["P"]))'
python3 -c 'import os,urllib.parse as u; print(u.quote_plus(os.environ["P"], safe="*").replace("~", "%7E"))'
python3 -c 'import quopri,os,sys; sys.stdout.write(quopri.encodestring(os.environ["Q"].encode()).decode())'; echo
printf "'%s'\n" "${P//\'/\'\'}"
echo "colored=$(echo "$T" | grep --color=always Zq7)" >> "$RUNBOOK_OUTPUT"
printf 'bs=%s_\b%s\n' "${T:0:6}" "${T:6}" >> "$RUNBOOK_OUTPUT"
'''
env = { T = "{{ secrets.TOKEN }}", P = "{{ secrets.PW }}", Q = "{{ secrets.QP }}" }
outputs = ["colored", "bs"]
"#,
    );
    let env = [("TOKEN_SRC", token), ("PW_SRC", pw), ("QP_SRC", qp)];
    let out = s.run(&[], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let id = run_id(&out);
    let mut places = vec![("run".to_string(), out.stdout.clone() + &out.stderr)];
    for args in [
        vec!["show", id.as_str()],
        vec!["logs", id.as_str()],
        vec!["audit", id.as_str(), "--format", "jsonl"],
    ] {
        let o = s.cmd(&args, &env);
        places.push((args.join(" "), o.stdout + &o.stderr));
    }
    for f in files(&s.path().join("state"), "") {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let text: String = String::from_utf8_lossy(&bytes).chars().filter(|c| *c != '\0').collect();
        places.push((f.display().to_string(), text));
    }
    // Pieces that each form leaves of the secrets, whatever escapes surround them.
    let pieces = [
        "Zq7vB2Xq4",
        "Xq4wP9kLm2",
        "vB2Xq4wP9",
        "p@ss",
        "s~a",
        "a*p",
        "ss&w",
        "%7Ea*p",
        "&lt;rd&gt;",
        "&#60;rd&#62;",
        "&#x3c;rd&#x3e;",
        "it'\\''s",
        "it\\'s",
        "it''s",
        "Zq7=3DvB2",
        "w\\<rd",
    ];
    for (what, text) in &places {
        let shown = as_shown(text);
        for piece in pieces {
            assert!(!shown.contains(piece), "{what} shows {piece:?}:\n{shown}");
        }
        assert!(!text.contains("\\u001b[01;31m\\u001b[KZq7"), "{what} journals the coloured secret");
    }
}

/// F2/F8: the engine's own HTTP errors carry a secret as the client rewrote it (a host in
/// lower case, a query value form-encoded), and a webhook secret's path is printed without
/// its host (`curl -v`): each is redacted.
#[test]
fn secrets_in_url_parts_are_redacted_as_http_clients_and_tools_rewrite_them() {
    let token = "Zq7vB2Xq4wP9kLm2";
    let tilde = "Zq7~vB2Xq4wP9kLm2";
    let hook = "https://hooks.example.test/services/T0AB12CD3/B0XY98ZW7/k3yS3cr3tW3bh00kT0k3n";
    let s = Scratch::new(
        r#"[runbook]
name = "url-parts"

[secrets.TOKEN]
env = "TOKEN_SRC"
[secrets.TILDE]
env = "TILDE_SRC"
[secrets.HOOK]
env = "HOOK_SRC"

[defaults]
on-failure = "continue"

[steps.host]
http = { url = "http://{{ secrets.TOKEN }}.localhost:1/x" }

[steps.query]
http = { url = "http://127.0.0.1:1/api", query = { token = "{{ secrets.TILDE }}" } }

[steps.verbose]
run = 'printf "> GET /%s HTTP/1.1\n" "${H#https://*/}"'
env = { H = "{{ secrets.HOOK }}" }
"#,
    );
    let env = [("TOKEN_SRC", token), ("TILDE_SRC", tilde), ("HOOK_SRC", hook)];
    let out = s.run(&[], &env);
    let id = run_id(&out);
    let mut places = vec![("run".to_string(), out.stdout.clone() + &out.stderr)];
    for args in [vec!["show", id.as_str()], vec!["audit", id.as_str(), "--format", "jsonl"]] {
        let o = s.cmd(&args, &env);
        places.push((args.join(" "), o.stdout + &o.stderr));
    }
    for (what, text) in &places {
        for piece in ["zq7vb2xq4wp9klm2", "Zq7%7EvB2", "Zq7~vB2", "k3yS3cr3tW3bh00kT0k3n", "B0XY98ZW7/k3y"] {
            assert!(!text.contains(piece), "{what} holds {piece:?}:\n{text}");
        }
    }
}

/// F9: a `command` secret source runs without the variables other secrets are read from.
#[test]
fn a_command_secret_source_does_not_see_the_other_secrets_source_variables() {
    let s = Scratch::new(
        r#"[runbook]
name = "helper-env"

[secrets.TOP]
env = "TOP_SECRET_SRC"
[secrets.VIA]
command = ["sh", "-c", "printf 'value-%s-end' \"${TOP_SECRET_SRC:-unset}\" > seen.txt; echo helper-value-1234"]

[steps.s]
run = "true"
"#,
    );
    let out = s.run(&[], &[("TOP_SECRET_SRC", "Zq7vB2Xq4wP9kLm2")]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(s.read("seen.txt"), "value-unset-end");
}

/// Red team adv22 F4 (promise 5): the bound is the run's, not each secret's. Secrets under
/// 32 KiB each but over it together (here two of 20 KiB, and one of them in an included
/// runbook) are refused before anything runs, naming the secret that goes past; before,
/// each was accepted and every one cost about 0.45 GB (three: 1.26 GB for `echo hi`).
#[test]
fn secrets_over_the_limit_together_are_refused_before_anything_runs() {
    let s = Scratch::new(
        r#"[runbook]
name = "many-secrets"

[secrets.FIRST]
env = "FIRST_SRC"

[secrets.SECOND]
env = "SECOND_SRC"

[steps.s]
run = "touch ran"

[steps.inner]
runbook = { file = "child.toml" }
"#,
    );
    std::fs::write(
        s.path().join("child.toml"),
        "[runbook]\nname = \"child\"\n[secrets.THIRD]\nenv = \"THIRD_SRC\"\n[steps.c]\nrun = \"touch ran-child\"\n",
    )
    .expect("child");
    let value = |seed: &str| seed.repeat(20 * 1024 / 16);
    let (a, b, c) = (value("Zq7vB2Xq4wP9kLm2"), value("Hn3kW8pR5tY1uJ6e"), value("Lm4cV9bN2xZ7qA5s"));
    let small = "Pt8sK3dF6gH1jW4e";
    for (case, env) in [
        (
            "secrets_too_large_together",
            [("FIRST_SRC", a.as_str()), ("SECOND_SRC", b.as_str()), ("THIRD_SRC", small)],
        ),
        (
            "secrets_too_large_with_an_include",
            [("FIRST_SRC", a.as_str()), ("SECOND_SRC", small), ("THIRD_SRC", c.as_str())],
        ),
    ] {
        let out = s.run(&[], &env);
        assert_eq!(out.code, 3, "{case}: {}{}", out.stdout, out.stderr);
        assert!(!s.path().join("ran").exists() && !s.path().join("ran-child").exists(), "{case}");
        insta::assert_snapshot!(case, out.stderr);
    }
}

/// A runbook of 257 secrets `S000`.. read from `SRC_000`.. (`extra` after its header) and a
/// step that touches `ran`; the variables' names, and 257 distinct values for them.
fn many_secret_values(extra: &str) -> (Scratch, Vec<String>, Vec<String>) {
    use std::fmt::Write as _;
    let mut text = format!("[runbook]\nname = \"many-values\"\n{extra}");
    for i in 0..257 {
        let _ = write!(text, "[secrets.S{i:03}]\nenv = \"SRC_{i:03}\"\n");
    }
    text.push_str("[steps.s]\nrun = \"touch ran\"\n");
    let names = (0..257).map(|i| format!("SRC_{i:03}")).collect();
    let distinct = (0..257).map(|i| format!("value-{i:03}-Zq7v")).collect();
    (Scratch::new(&text), names, distinct)
}

/// Red team adv24 P5 (promise 5): short secrets are bounded in number too (8,000 values of
/// 4 bytes, 32,000 bytes in all, took 1.25 GB before `echo hi`): the 257th distinct value
/// is refused before anything runs; one value under many names is one.
#[test]
fn more_distinct_secret_values_than_the_limit_are_refused_before_anything_runs() {
    let (s, names, distinct) = many_secret_values("");
    let env: Vec<(&str, &str)> = names.iter().zip(&distinct).map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let out = s.run(&[], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!s.path().join("ran").exists());
    insta::assert_snapshot!("too_many_secret_values", out.stderr);
    let env: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "one-shared-value-Zq7v")).collect();
    let out = s.run(&[], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Red team adv25 F1 (promise 5): the check that no parameter holds a secret (`plan -p`, a
/// dry run, as `run`, `submit` and a schedules file's `check` do) reads the secrets as one
/// set bounded as a run's: the 257th distinct value is refused before a redactor is built.
/// Before, each name was a set of its own: no bound applied, and one value under many names
/// was built and looked for once per name (a 32 KiB value under 3 names: 135 s, 908 MB).
#[test]
fn the_parameters_check_bounds_the_secrets_as_a_run_does() {
    let (s, names, distinct) = many_secret_values("[params.p]\ntype = \"string\"\n");
    let env: Vec<(&str, &str)> = names.iter().zip(&distinct).map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let out = run_in_with_env(s.path(), &["plan", "r.toml", "-p", "p=y"], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("value number 257"), "{}", out.stderr);
    // One value under every name is one value: the check runs and finds it in `p`.
    let env: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "one-shared-value-Zq7v")).collect();
    let out = run_in_with_env(s.path(), &["plan", "r.toml", "-p", "p=x-one-shared-value-Zq7v"], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("contains the value of secret `S256`"), "{}", out.stderr);
    assert!(!out.stderr.contains("one-shared-value"), "{}", out.stderr);
    let out = run_in_with_env(s.path(), &["plan", "r.toml", "-p", "p=y"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!s.path().join("ran").exists());
}

/// Red team adv25 F5 (promise 5): a file's secrets are read once a run, however many
/// include paths reach it: a `command` secret of a runbook included twice at each of three
/// levels (8 paths) runs once. Before, once per path: 128 times at depth 8, and a helper
/// minting a value per read went past the 256-value bound from one declared secret.
#[test]
fn a_secret_of_a_runbook_reached_by_many_include_paths_is_read_once() {
    // Two files a level, each including both files of the next; the last level includes `d`.
    let includes = |next: &str| {
        format!(
            "[steps.a]\nrunbook = {{ file = \"{next}a.toml\" }}\n[steps.b]\nrunbook = {{ file = \"{next}b.toml\" }}\n"
        )
    };
    let s = Scratch::new(&format!("[runbook]\nname = \"top\"\n{}", includes("l1")));
    for level in 1..=3 {
        for side in ["a", "b"] {
            let body = match level {
                3 => "[steps.d]\nrunbook = { file = \"d.toml\" }\n".to_string(),
                _ => includes(&format!("l{}", level + 1)),
            };
            let text = format!("[runbook]\nname = \"l{level}{side}\"\n{body}");
            std::fs::write(s.path().join(format!("l{level}{side}.toml")), text).expect("level");
        }
    }
    let count = s.path().join("reads");
    std::fs::write(
        s.path().join("d.toml"),
        format!(
            "[runbook]\nname = \"leaf\"\n[secrets.K]\ncommand = [\"sh\", \"-c\", \"echo read >> '{}'; echo minted-value-Zq7v\"]\n[steps.s]\nrun = \"true\"\n",
            count.display()
        ),
    )
    .expect("leaf");
    let out = s.run(&[], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(s.read("reads"), "read\n", "the helper ran once for 8 include paths");
}

/// F10 (promise 5): a secret larger than the redactor can hold in bounded memory is refused
/// before anything runs, with a clear message (its matcher grows with every byte).
#[test]
fn a_secret_larger_than_the_limit_is_refused_before_anything_runs() {
    let s = Scratch::new(
        r#"[runbook]
name = "big-secret"

[secrets.BIG]
env = "BIG_SRC"

[steps.s]
run = "touch ran"
"#,
    );
    let big = "Zq7vB2Xq4wP9kLm2".repeat(40 * 1024 / 16);
    let out = s.run(&[], &[("BIG_SRC", big.as_str())]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!std::path::Path::new(&s.path().join("ran")).exists());
    insta::assert_snapshot!("secret_too_large", out.stderr);
    let fits = "Zq7vB2Xq4wP9kLm2".repeat(16 * 1024 / 16);
    let out = s.run(&[], &[("BIG_SRC", fits.as_str())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Red team adv25 F3b: `submit` checks the parameters against the secrets as the
/// submitter's host reads them. With another value under the same variable the check
/// passes, and the plan (the run's real secret in a parameter, in clear) was queued and kept
/// after the worker's engine, which reads the run's own value, refused the run: in the
/// queue's `plan` and in the worker's plan file. A plan its engine refuses before anything
/// ran is now erased from both; the queue keeps how it ended.
#[test]
fn a_plan_its_engine_refuses_is_erased_from_the_queue_and_the_worker_s_folder() {
    let token = "Pr0d-Passw0rd-9f3kQ2";
    let s = Scratch::new(RUNBOOK);
    let xdg = s.path().join("xdg");
    let xdg = xdg.to_str().expect("utf-8 path");
    let note = format!("note={token}");
    let submitter = [("DB_USER_SRC", "st4ging-us3r"), ("XDG_STATE_HOME", xdg)];
    let out = s.cmd(&["submit", "r.toml", "-p", &note, "--yes"], &submitter);
    assert_eq!(out.code, 0, "the submitter's own value passes its check: {}{}", out.stdout, out.stderr);
    let run = out.stdout.trim().to_string();

    let worker = crate::support::KillOnDrop(crate::console_decide::worker_env(
        &s,
        &[("DB_USER_SRC", token), ("XDG_STATE_HOME", xdg)],
    ));
    let row = |run: &str| {
        let out = std::process::Command::new("sqlite3")
            .args([
                "-readonly",
                &s.state(),
                &format!(
                    "SELECT state || '|' || IFNULL(exit_code, '') || '|' || IFNULL(note, '') || '|' || length(plan) FROM queue WHERE run_id = '{run}'"
                ),
            ])
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !row(&run).starts_with("done|") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(worker);
    assert_eq!(
        row(&run),
        "done|3|refused: nothing ran; its plan was erased (it may hold what the engine refused)|0",
        "the engine refused the run, and its plan is gone from the queue"
    );
    // Nothing under the scratch folder holds the value: the store (database and its log),
    // the worker's folder (its plan files and its engines' output), the run folders.
    for file in files(s.path(), "") {
        if file.ends_with("r.toml") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        for form in crate::secrets::encoded_forms(token) {
            assert!(!text.contains(&form), "{} holds the secret (form {form:?})", file.display());
        }
    }
    // The same plan with a value that holds no secret runs.
    let out = s.cmd(&["submit", "r.toml", "-p", "note=fine", "--yes"], &submitter);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let fine = out.stdout.trim().to_string();
    let worker = crate::support::KillOnDrop(crate::console_decide::worker_env(
        &s,
        &[("DB_USER_SRC", token), ("XDG_STATE_HOME", xdg)],
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !row(&fine).starts_with("done|") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(worker);
    let ended = row(&fine);
    assert!(ended.starts_with("done|0|") && !ended.ends_with("|0"), "kept with its plan: {ended}");
}
