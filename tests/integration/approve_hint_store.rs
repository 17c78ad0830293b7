//! The `approve` command a run prints, and the one `show` prints, work as printed against a
//! PostgreSQL store whose URL carries a password: the hint names the store without the
//! password (never `***`, which would be sent as one), keeps the query parameters that say
//! where and how to connect, and the password comes from `PGPASSWORD` (red-team finding F5
//! of issue 14).

use std::process::Command;

use crate::peers::Postgres;
use crate::support::{Scratch, bin, run_in_with_env};

const PASSWORD: &str = "pw-Str0ng!x";

/// The command between "`runbook approve" and the next backquote of `text`.
fn approve_command(text: &str) -> String {
    let start = text.find("`runbook approve ").unwrap_or_else(|| panic!("no approve command in:\n{text}"));
    let rest = &text[start + 1..];
    rest[..rest.find('`').unwrap_or(rest.len())].to_string()
}

/// Run a printed command in a shell, as an operator would paste it, with `PGPASSWORD` set.
fn paste(dir: &std::path::Path, command: &str) -> crate::support::Output {
    let line = command.replacen("runbook", &bin(), 1);
    let out = Command::new("sh")
        .args(["-c", &line])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("PGPASSWORD", PASSWORD)
        .env_remove("RUNBOOK_STATE")
        .output()
        .expect("sh runs");
    out.into()
}

#[test]
fn f5_the_printed_approve_command_works_on_a_password_store() {
    let pg = Postgres::start_tcp();
    pg.psql_secret("postgres", &format!("ALTER ROLE postgres PASSWORD '{PASSWORD}';"));
    let port = pg.port().expect("a TCP port");
    let url = format!("postgres://postgres:pw-Str0ng%21x@127.0.0.1:{port}/postgres?sslmode=disable");
    let s = Scratch::new(
        r#"[runbook]
name = "ap"

[steps.sign]
approval = { prompt = "ok?", inputs = { incident = { type = "string" }, mode = { type = "string", enum = ["fast mode", "slow"] } } }
"#,
    );
    let migrated = run_in_with_env(s.path(), &["state", "migrate", "--state", &url], &[]);
    assert_eq!(migrated.code, 0, "migrate: {}{}", migrated.stdout, migrated.stderr);
    let ran = run_in_with_env(s.path(), &["run", "r.toml", "--state", &url], &[]);
    let all = format!("{}{}", ran.stdout, ran.stderr);
    let notice = approve_command(&all);
    assert!(!notice.contains("***"), "the hint sends `***` as the password: {notice}");
    assert!(!notice.contains("Str0ng"), "the hint shows the password: {notice}");
    assert!(notice.contains("sslmode=disable"), "the hint drops the query string: {notice}");
    assert!(notice.contains("mode=<fast mode|slow>"), "the hint lacks the choices: {notice}");

    // `show`, run with the store as the hint names it, prints the same command.
    let id = notice.split_whitespace().nth(2).expect("a run id").to_string();
    let state =
        notice.rsplit_once("--state ").map(|(_, s)| s.trim_matches('\'')).expect("--state").to_string();
    let shown = paste(s.path(), &format!("runbook show {id} --state '{state}'"));
    assert_eq!(shown.code, 0, "show with the hint's store: {}{}", shown.stdout, shown.stderr);
    assert_eq!(approve_command(&shown.stdout), notice, "show prints another command");

    // The notice's command, placeholders filled, pasted into a shell.
    let filled = notice
        .replace("'incident=<string>'", "incident=INC-1")
        .replace("'mode=<fast mode|slow>'", "mode=slow");
    let approved = paste(s.path(), &filled);
    assert_eq!(approved.code, 0, "`{filled}` failed: {}{}", approved.stdout, approved.stderr);
}
