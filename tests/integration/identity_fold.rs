//! Red team adv19a-3: an identity is one person whatever its spelling. Self-approval,
//! approvers lists, one vote per person and token names compare identities by one key
//! (`journal::identity_key`: NFKC, then Unicode case folding, spaces collapsed), so
//! `jérôme` cannot approve his own run as `JÉrôme` or `jérÔme`, nor `bob` as the full-width
//! `ｂob`, through the console behind a proxy or with the CLI's `--as`. Names that differ in
//! anything but case and compatibility forms stay distinct people.

use crate::console_auth::{csrf_of, serve};
use crate::support::{Scratch, ok, run_in_with_env};

/// Two approvals by two people, no list of approvers, no self-approval.
const GATE: &str = r#"[runbook]
name = "gate"

[steps.gate]
approval = { prompt = "two people must agree", min-approvals = 2, allow-self-approval = false }

[steps.after]
needs = ["gate"]
run = "echo approved"
"#;

/// (the run's starter, spellings of the same person, a distinct person).
const SAME: &[(&str, &[&str], &str)] = &[
    ("jérôme", &["JÉrôme", "jérÔme", "JÉRÔME", "Jérôme"], "jerome"),
    ("bob", &["ｂob", "bｏb", "ＢＯＢ", "Bob"], "bobby"),
    ("straße", &["STRASSE", "strasse", "Straße"], "strase"),
    ("σοφος", &["ΣΟΦΟΣ", "σοφοσ", "Σοφος"], "σοφο"),
    ("ﬁona", &["fiona", "FIONA", "Ｆiona"], "fionna"),
];

fn granted(scratch: &Scratch, run: &str) -> Vec<String> {
    scratch.audit(run).lines().filter(|l| l.contains("approval_granted")).map(str::to_string).collect()
}

/// A run of `GATE` started by `starter` on the CLI, waiting for its approval (exit 4).
fn waiting(starter: &str) -> (Scratch, String) {
    let scratch = Scratch::new(GATE);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", starter)]), 4);
    let run = scratch.latest_run();
    (scratch, run)
}

#[test]
fn one_person_cannot_approve_their_own_run_under_another_spelling_behind_a_proxy() {
    for (starter, spellings, other) in SAME {
        let (scratch, run) = waiting(starter);
        let (dir, state) = (scratch.path(), scratch.state());
        let served = serve(dir, &state, &["--auth", "proxy", "--trusted-proxy", "127.0.0.1"]);
        let action = format!("/runs/{run}/approvals/gate");
        let approve = |who: &str| {
            let page = served.send("GET", "/approvals", &[("X-Forwarded-Email", who)], "");
            assert_eq!(page.status, 200, "{who}: {page:?}");
            // The page offers no decision to someone who may not make it: nothing to post.
            if !page.body.contains("name=\"csrf\"") {
                return None;
            }
            let csrf = csrf_of(&page.body);
            Some(served.send(
                "POST",
                &action,
                &[("Origin", &served.origin()), ("X-Forwarded-Email", who)],
                &format!("decision=approve&csrf={csrf}"),
            ))
        };
        for spelling in *spellings {
            if let Some(r) = approve(spelling) {
                assert_eq!(r.status, 403, "{starter} approved their own run as `{spelling}`: {r:?}");
                assert!(r.body.contains("may not approve its own"), "{spelling}: {}", r.body);
            }
        }
        assert!(granted(&scratch, &run).is_empty(), "{starter}: {:?}", granted(&scratch, &run));
        // A distinct person approves; the same person again under another spelling does not.
        let r = approve(other).expect("a form for a distinct person");
        assert_eq!(r.status, 303, "`{other}` is not `{starter}`: {r:?}");
        if let Some(r) = approve(&other.to_uppercase()) {
            assert_eq!(r.status, 403, "{other} approved twice: {r:?}");
        }
        let g = granted(&scratch, &run);
        assert_eq!(g.len(), 1, "{g:?}");
        assert!(g[0].contains(&format!("\"operator\":\"{other}\"")), "{g:?}");
    }
}

#[test]
fn one_person_cannot_approve_their_own_run_under_another_spelling_with_as() {
    for (starter, spellings, other) in SAME {
        let (scratch, run) = waiting(starter);
        for spelling in *spellings {
            let out = scratch.cmd(&["approve", &run, "gate", "--as", spelling], &[]);
            assert_ne!(out.code, 0, "{starter} approved their own run as `{spelling}`: {}", out.stdout);
            assert!(out.stderr.contains("may not approve its own"), "{spelling}: {}", out.stderr);
        }
        ok(&scratch.cmd(&["approve", &run, "gate", "--as", other], &[]), 0);
        let again = scratch.cmd(&["approve", &run, "gate", "--as", &other.to_uppercase()], &[]);
        assert_ne!(again.code, 0, "{other} approved twice: {}", again.stdout);
        assert_eq!(granted(&scratch, &run).len(), 1);
    }
}

/// A decomposed accent (`e` + U+0301) is the precomposed `é` once normalised: it never
/// approves `jérôme`'s own run (refused as his, or as a name with a combining mark).
#[test]
fn a_decomposed_accent_is_the_same_person_as_the_precomposed_one() {
    let (scratch, run) = waiting("jérôme");
    for spelling in ["je\u{301}ro\u{302}me", "JE\u{301}RO\u{302}ME"] {
        let out = scratch.cmd(&["approve", &run, "gate", "--as", spelling], &[]);
        assert_ne!(out.code, 0, "`{spelling}` approved the run of `jérôme`: {}", out.stdout);
    }
    assert!(granted(&scratch, &run).is_empty());
}

/// An approvers list names people, not byte strings: `Jérôme` in the list lets `JÉRÔME`
/// approve, and nobody else.
#[test]
fn an_approvers_list_names_people_whatever_the_spelling() {
    let scratch = Scratch::new(&GATE.replace(
        "allow-self-approval = false",
        "allow-self-approval = false, approvers = [\"Jérôme\", \"ｂob\"]",
    ));
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
    let run = scratch.latest_run();
    let out = scratch.cmd(&["approve", &run, "gate", "--as", "jerome"], &[]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    ok(&scratch.cmd(&["approve", &run, "gate", "--as", "JÉRÔME"], &[]), 0);
    ok(&scratch.cmd(&["approve", &run, "gate", "--as", "BOB"], &[]), 0);
    assert_eq!(granted(&scratch, &run).len(), 2);
}

/// Token names are unique by the same key: `JÉRÔME` and `Straße`'s `STRASSE` get no twin.
#[test]
fn token_names_are_unique_by_the_identity_key() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    crate::console_auth::add_token(dir, &state, "jérôme");
    crate::console_auth::add_token(dir, &state, "straße");
    for twin in ["JÉRÔME", "jérÔme", "STRASSE"] {
        let out = run_in_with_env(dir, &["serve", "token", "add", twin, "--state", &state], &[]);
        assert_ne!(out.code, 0, "a second token for `{twin}`: {}", out.stdout);
        assert!(out.stderr.contains("exists already"), "{twin}: {}", out.stderr);
        // The hint names the token that exists, as `revoke` needs it (it named the new one).
        let existing = if twin == "STRASSE" { "'straße'" } else { "'jérôme'" };
        assert!(
            out.stderr.contains(&format!("runbook serve token revoke {existing}")),
            "{twin}: {}",
            out.stderr
        );
    }
    crate::console_auth::add_token(dir, &state, "jerome");
    // `revoke` takes the operator, not the spelling (red team adv20-6: an NFD or upper-case
    // spelling answered "no token" and left it live), and names the token it revoked.
    for (given, token) in [("je\u{301}ro\u{302}me", "jérôme"), ("STRASSE", "straße")] {
        let out = run_in_with_env(dir, &["serve", "token", "revoke", given, "--state", &state], &[]);
        assert_eq!(out.code, 0, "{given}: {}", out.stderr);
        assert!(out.stdout.contains(&format!("revoked the token of `{token}`")), "{given}: {}", out.stdout);
    }
    let listed = run_in_with_env(dir, &["serve", "token", "list", "--state", &state], &[]);
    let live: Vec<&str> = listed.stdout.lines().filter(|l| l.trim_end().ends_with(" no")).collect();
    assert!(live.iter().all(|l| !l.starts_with("jérôme") && !l.starts_with("straße")), "{}", listed.stdout);
    assert!(live.iter().any(|l| l.starts_with("jerome")), "`jerome` is another operator: {}", listed.stdout);
}

/// A store written before this folding may hold two live tokens of one person (`jérôme`
/// and `JÉRÔME`): neither signs in (403, a message that names both and says what to do),
/// never one identity merged silently; once one is revoked, the other signs in.
#[test]
fn two_tokens_of_one_person_from_an_older_store_are_refused_until_one_is_revoked() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path(), scratch.state());
    let first = crate::console_auth::add_token(dir, &state, "jérôme");
    let second = crate::console_auth::add_token(dir, &state, "zed");
    // What an older binary let an administrator write: the same person under another case.
    let out = std::process::Command::new("sqlite3")
        .arg(&state)
        .arg("UPDATE console_tokens SET name = 'JÉRÔME' WHERE name = 'zed'")
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let served = serve(dir, &state, &["--auth", "token"]);
    for token in [&first, &second] {
        let r = served.post_form("/login", None, &format!("token={token}"));
        assert_eq!(r.status, 403, "{r:?}");
        assert!(r.body.contains("names the same person"), "{}", r.body);
        assert!(r.header("set-cookie").is_none(), "{r:?}");
        let api = served.send("GET", "/api/approvals", &[("Authorization", &format!("Bearer {token}"))], "");
        assert_eq!(api.status, 400, "{api:?}");
        assert!(api.body.contains("names the same person"), "{}", api.body);
    }
    ok(&run_in_with_env(dir, &["serve", "token", "revoke", "JÉRÔME", "--state", &state], &[]), 0);
    served.login(&first);
}
