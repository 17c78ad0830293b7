//! Red team adv19a-8 (promise 3): a secret in step output as a hex or character dump
//! (`xxd`, `hexdump -C`, `od -c`), base32 (padded or not, either case), ascii85/base85, a
//! list of its characters, base64 in spaced groups, or every character as an HTML entity,
//! was kept in clear in the logs, the store, `runbook logs` and approval reasons. Failed
//! before (`RUNBOOK_TEST_BIN=<older build>`): every form but the entities' reached the kept
//! logs. The forms are made here by the real tools and by Python, independently of the
//! engine's code; the check looks for every window of eight value characters of every form
//! in every line of every place, so a form cut by a dump's columns is a leak too.

use crate::support::Scratch;

/// Secrets of several lengths, with characters that are special to each encoding: quotes,
/// commas, brackets, colons and spaces (the separators of the second pass), `+/=` (base64),
/// digits and hex letters only, and non-ASCII.
const SECRETS: &[&str] = &[
    "S3cr3tValue-Zq9xW7",
    "Kx8#pQ2!",
    "p@ss w0rd,'q\"[x]:y|z~1",
    "0123456789abcdefABCD",
    "Zm9v+/=base64+looking//tail==",
    "Ünïcødé-sëcret-42",
    "y7Hq2LmN9pRsT4vWxZ1aBcDeFgHiJkLmNoPqRsTuVw",
];

/// The step: prints the secret in every form, alone and after a prefix of 0 to 4 bytes
/// (every alignment of base32/base64/ascii85 and of a dump's columns), then ordinary output
/// that must come out unchanged.
const SCRIPT: &str = r#"
import base64, os, subprocess, sys
s = os.environ["SECRET"].encode()
def tool(args, data):
    try:
        return subprocess.run(args, input=data, capture_output=True).stdout.decode("latin-1")
    except OSError:
        return ""
def xxd(b):
    out = []
    for o in range(0, len(b), 16):
        c = b[o:o+16]
        h = " ".join(c[i:i+2].hex() for i in range(0, len(c), 2))
        a = "".join(chr(x) if 32 <= x < 127 else "." for x in c)
        out.append("%08x: %-39s  %s" % (o, h, a))
    return "\n".join(out)
def hexdump_c(b):
    out = []
    for o in range(0, len(b), 16):
        c = b[o:o+16]
        h1 = " ".join("%02x" % x for x in c[:8]); h2 = " ".join("%02x" % x for x in c[8:])
        a = "".join(chr(x) if 32 <= x < 127 else "." for x in c)
        out.append("%08x  %-23s  %-23s  |%s|" % (o, h1, h2, a))
    out.append("%08x" % len(b))
    return "\n".join(out)
def od_c(b):
    out = []
    for o in range(0, len(b), 16):
        c = b[o:o+16]
        out.append("%07o" % o + "".join("%4s" % (chr(x) if 32 <= x < 127 else "\\%03o" % x) for x in c))
    out.append("%07o" % len(b))
    return "\n".join(out)
for prefix in [b"", b"k", b"ke", b"key", b"key:"]:
    d = prefix + s
    print(xxd(d)); print(hexdump_c(d)); print(od_c(d))
    print(tool(["xxd"], d)); print(tool(["xxd", "-u"], d)); print(tool(["hexdump", "-C"], d)); print(tool(["od", "-c"], d))
    b32 = base64.b32encode(d).decode()
    print("b32:", b32); print("b32 bare:", b32.rstrip("=")); print("b32 lower:", b32.lower()); print("b32 lower bare:", b32.lower().rstrip("="))
    print(tool(["base32"], d))
    print("a85:", base64.a85encode(d).decode()); print("b85:", base64.b85encode(d).decode())
    b64 = base64.b64encode(d).decode()
    print("b64 spaced:", " ".join(b64[i:i+4] for i in range(0, len(b64), 4)))
print("chars:", list(s.decode()))
print("repr:", repr(s.decode()))
print("spaced:", " ".join(s.decode()))
print("hex spaced:", " ".join("%02x" % x for x in s))
print("entities:", "".join("&#%d;" % ord(c) for c in s.decode()))
print("hex entities:", "".join("&#x%x;" % ord(c) for c in s.decode()))
print("ORDINARY-START")
for line in ORDINARY:
    print(line)
print(tool(["xxd"], b"deploy v1.42.0 to eu-west-1: 12 pods ready\n"))
"#;

/// Ordinary deploy output, which must come out byte for byte.
const ORDINARY: &[&str] = &[
    "2026-12-07T05:00:01Z deploy: pulling image registry.example/app:v1.42.0",
    "00:00:03 migrations: 0 pending, schema version 20261207",
    "1000000 rows copied in 3.2s",
    "ok: [web-1, web-2, web-3] changed=2 unreachable=0 failed=0",
    "sha256:3b1f0e8a9c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f",
    "['web-1', 'web-2']  {\"status\": \"green\", \"replicas\": 3}",
];

/// The value characters of a text: every character but white space, quotes, commas,
/// brackets, bars, colons and semicolons.
fn value_chars(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace() && !"'\",[](){}|;:".contains(*c)).collect()
}

/// The forms the check looks for, made independently of the engine (and of the script).
fn forms(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let mut out = vec![secret.to_string(), hex.clone(), hex.to_uppercase()];
    out.push(radix(b, 6, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"));
    out.push(radix(b, 5, BASE32));
    out.push(radix(b, 5, BASE32).to_lowercase());
    out.push(secret.chars().map(|c| format!("&#{};", c as u32)).collect());
    out
}

const BASE32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in an alphabet of `bits` bits per character, as a bit stream (no padding).
fn radix(bytes: &[u8], bits: usize, alphabet: &str) -> String {
    let alphabet: Vec<char> = alphabet.chars().collect();
    let all: Vec<bool> = bytes.iter().flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1)).collect();
    all.chunks(bits)
        .map(|c| {
            let mut n = 0;
            for k in 0..bits {
                n = n << 1 | usize::from(c.get(k).copied().unwrap_or(false));
            }
            alphabet[n]
        })
        .collect()
}

/// Every window of eight value characters of every form, searched in the value characters
/// of each line of `text` (a form spread with separators, or cut at a dump's line, is a
/// leak if eight characters of it stay together).
fn assert_no_piece(what: &str, text: &str, secret: &str) {
    for form in forms(secret) {
        let chars: Vec<char> = value_chars(&form).chars().collect();
        for line in text.lines() {
            let seen = value_chars(line);
            for w in chars.windows(8.min(chars.len())) {
                let w: String = w.iter().collect();
                assert!(!seen.contains(&w), "{what}: {w:?} of {form:?} survives in {line:?}");
            }
        }
    }
}

const RUNBOOK: &str = r#"[runbook]
name = "dumps"

[secrets.TOKEN]
env = "RB_SECRET"

[steps.debug]
run = "python3 forms.py"
env = { SECRET = "{{ secrets.TOKEN }}" }

[steps.gate]
needs = ["debug"]
approval = { prompt = "Go?" }
"#;

#[test]
fn a_secret_dumped_or_spread_in_step_output_is_redacted_in_logs_store_and_reasons() {
    let ordinary = format!("ORDINARY = {ORDINARY:?}\n");
    for secret in SECRETS {
        let s = Scratch::new(RUNBOOK);
        std::fs::write(s.path().join("forms.py"), format!("{ordinary}{SCRIPT}")).expect("script");
        let env = [("RB_SECRET", *secret)];
        let out = s.run(&[], &env);
        assert_eq!(out.code, 4, "{secret:?}: {}{}", out.stdout, out.stderr);
        let id = s.latest_run();
        // An approval reason holding spread forms (a list of characters, base32, entities).
        let chars: Vec<String> = secret.chars().map(|c| format!("'{c}'")).collect();
        let reason = format!(
            "checked [{}] and {} and {}",
            chars.join(", "),
            radix(secret.as_bytes(), 5, BASE32),
            secret.chars().map(|c| format!("&#{};", c as u32)).collect::<String>()
        );
        let approved = s.cmd(&["approve", &id, "gate", "--reason", &reason], &env);
        assert_eq!(approved.code, 0, "{secret:?}: {}{}", approved.stdout, approved.stderr);
        let logs = s.cmd(&["logs", &id], &env);
        assert_eq!(logs.code, 0, "{}", logs.stderr);
        assert!(logs.stdout.contains("<secret:TOKEN>"), "{secret:?}: nothing redacted:\n{}", logs.stdout);
        // Ordinary output (and the dump of ordinary bytes) comes out unchanged.
        let tail = logs.stdout.split("ORDINARY-START").nth(1).unwrap_or_default().to_string();
        for line in ORDINARY {
            assert!(tail.contains(line), "{secret:?}: {line:?} was changed:\n{tail}");
        }
        assert!(!tail.contains("<secret:"), "{secret:?}: ordinary output redacted:\n{tail}");
        let mut places = vec![
            ("run".to_string(), out.stdout + &out.stderr),
            ("runbook logs".to_string(), logs.stdout),
            ("audit".to_string(), s.audit(&id)),
            ("show".to_string(), s.cmd(&["show", &id], &env).stdout),
        ];
        for file in crate::support::files(&s.path().join("state"), "") {
            let bytes = std::fs::read(&file).unwrap_or_default();
            places.push((file.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
        for (what, text) in &places {
            assert_no_piece(&format!("{secret:?} in {what}"), text, secret);
        }
        assert!(places[2].1.contains("checked"), "the reason is journaled: {}", places[2].1);
    }
}

/// Red team adv19a-2 (promise 3): a SQL script holding a secret's value (in clear, base64,
/// hex, spread) was quoted in clear in the plan: the console's review API, the queued plan in
/// the store. Failed before: `submit` queued it and the review API answered it (200). Now
/// `submit`, the console's review and its start refuse it, naming the secret, never showing
/// a value; nothing is queued and the store holds no form of it.
#[test]
fn a_plan_quoting_a_script_that_holds_a_secret_is_refused_and_never_stored() {
    use crate::console_auth::{add_token, serve_env};
    const SECRET: &str = "Hunter2-LongSecretValue";
    let runbook = "[runbook]\nname = \"sqlsec\"\n\n[secrets.DB]\nfile = \"db.secret\"\n\n[steps.rotate]\nsql = { url = \"postgres://app:{{ secrets.DB }}@127.0.0.1:1/db\", file = \"rotate.sql\" }\n";
    let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    let spaced: String = SECRET.chars().map(String::from).collect::<Vec<_>>().join(" ");
    for script in [
        format!("ALTER ROLE app PASSWORD '{SECRET}';\n"),
        format!("-- {}\nSELECT 1;\n", radix(SECRET.as_bytes(), 5, BASE32)),
        format!("SELECT decode('{hex}', 'hex');\n"),
        format!("-- {spaced}\nSELECT 1;\n"),
    ] {
        let s = Scratch::new(runbook);
        let dir = s.path();
        std::fs::write(dir.join("db.secret"), format!("{SECRET}\n")).expect("secret");
        std::fs::write(dir.join("rotate.sql"), &script).expect("script");
        let out = s.cmd(&["submit", "r.toml"], &[]);
        assert_eq!(out.code, 3, "{script}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("contains the value of secret `DB`"), "{}", out.stderr);
        assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET), "{}", out.stderr);
        if script.starts_with("ALTER") {
            insta::assert_snapshot!("plan_quoting_a_secret_refused", out.stderr);
        }
        let state = s.state();
        let bob = add_token(dir, &state, "bob");
        let served = serve_env(dir, &state, &["--auth", "token", "--runbooks", "."], &[]);
        for body in ["review=yes", ""] {
            let r = served.send(
                "POST",
                "/api/runbooks/r/start",
                &[("Authorization", &format!("Bearer {bob}"))],
                body,
            );
            assert_eq!(r.status, 400, "{body:?}: {r:?}");
            assert!(r.body.contains("contains the value of secret `DB`"), "{}", r.body);
            assert!(!r.body.contains(SECRET) && !r.body.contains(&hex), "{}", r.body);
        }
        drop(served);
        for file in crate::support::files(&dir.join("state"), "") {
            let bytes = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
            assert_no_piece(&file.display().to_string(), &bytes, SECRET);
        }
    }
}
