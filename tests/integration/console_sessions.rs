//! The console's sessions live in the state store (issue 16, s19-C): a `/login` session
//! survives a restart of `runbook serve`, two consoles on one store share it, revoking its
//! token ends it on every console at once, and the store holds only a hash of its id (the
//! CSRF token of its forms is derived from the id, held nowhere). The real binary on
//! loopback; a SQLite file and a real PostgreSQL cluster.

use std::path::Path;
use std::process::Command;

use runbook_sandbox::peers::Postgres;

use crate::console_auth::{GATE, Served, add_token, csrf_of, serve};
use crate::support::{Scratch, ok, run_in_with_env};

fn signed_in_as(served: &Served, session: &str) -> Option<String> {
    let page = served.get_as("/approvals", session);
    assert_eq!(page.status, 200, "{page:?}");
    let at = page.body.find("signed in as ")? + "signed in as ".len();
    page.body[at..].split('<').next().map(str::to_string)
}

/// The whole story on one store (`state`, a path or a URL), `scan` returning everything
/// the store holds as bytes after each step.
fn sessions_are_kept_in_the_store(dir: &Path, state: &str, scan: &dyn Fn() -> Vec<u8>) {
    let alice = add_token(dir, state, "alice");
    let bob = add_token(dir, state, "bob");
    let first = serve(dir, state, &["--auth", "token"]);
    let session = first.login(&alice);
    let bobs = first.login(&bob);
    assert_eq!(signed_in_as(&first, &session).as_deref(), Some("alice"));
    let csrf = csrf_of(&first.get_as("/approvals", &session).body);
    drop(first);

    // A restart: the same cookie, the same CSRF token.
    let again = serve(dir, state, &["--auth", "token"]);
    assert_eq!(signed_in_as(&again, &session).as_deref(), Some("alice"), "a restart signed alice out");
    assert_eq!(csrf_of(&again.get_as("/approvals", &session).body), csrf, "the CSRF token changed");
    // Two consoles on one store (behind one proxy): each knows the other's sessions.
    let other = serve(dir, state, &["--auth", "token"]);
    let on_other = other.login(&alice);
    assert_eq!(signed_in_as(&again, &on_other).as_deref(), Some("alice"));
    assert_eq!(signed_in_as(&other, &session).as_deref(), Some("alice"));
    // A forged or unknown cookie is nobody, on both.
    for forged in [&"0".repeat(64), "x", &session[..63]] {
        assert_eq!(signed_in_as(&other, forged), None, "{forged}");
    }

    // The store never holds a session id or its CSRF token, in any of its files or tables.
    let bytes = scan();
    for secret in [&session, &on_other, &bobs, &csrf] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the store holds a session's id or CSRF token"
        );
    }

    // The CSRF token a restarted console derives is accepted by the other console's form,
    // a wrong one is refused: sign out on `other` ends the session on both.
    let wrong = other.post_form("/logout", Some(&session), &format!("csrf={}", "0".repeat(64)));
    assert_eq!(wrong.status, 403, "{wrong:?}");
    let out = other.post_form("/logout", Some(&session), &format!("csrf={csrf}"));
    assert_eq!(out.status, 303, "{out:?}");
    assert_eq!(
        signed_in_as(&again, &session),
        None,
        "a session signed out on one console lived on the other"
    );
    assert_eq!(
        signed_in_as(&other, &on_other).as_deref(),
        Some("alice"),
        "signing out ended another session"
    );

    // Revoking the token ends its sessions on both consoles at once; bob's stay.
    ok(&run_in_with_env(dir, &["serve", "token", "revoke", "alice", "--state", state], &[]), 0);
    for served in [&again, &other] {
        assert_eq!(signed_in_as(served, &on_other), None, "a revoked token's session was accepted");
        assert_eq!(signed_in_as(served, &bobs).as_deref(), Some("bob"), "revoking alice ended bob's session");
    }
}

#[test]
fn sessions_survive_a_restart_and_are_shared_on_sqlite() {
    let scratch = Scratch::new(GATE);
    let (dir, state) = (scratch.path().to_path_buf(), scratch.state());
    let folder = Path::new(&state).parent().expect("the store's folder").to_path_buf();
    let scan = || {
        // The database and its write-ahead log (what a session's insert wrote first).
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&folder).expect("dir").flatten() {
            all.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
        assert!(!all.is_empty(), "no store file found");
        all
    };
    sessions_are_kept_in_the_store(&dir, &state, &scan);
}

#[test]
fn sessions_survive_a_restart_and_are_shared_on_postgresql() {
    let pg = Postgres::start();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), GATE).expect("runbook");
    ok(&run_in_with_env(dir.path(), &["state", "migrate", "--state", &url], &[]), 0);
    let scan = || {
        // Every table's data as the server holds it.
        let out =
            Command::new(pg.bin().join("pg_dump")).args(["--data-only", &url]).output().expect("pg_dump");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("console_sessions"),
            "no sessions table dumped"
        );
        out.stdout
    };
    sessions_are_kept_in_the_store(dir.path(), &url, &scan);
}
