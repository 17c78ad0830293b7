//! Steps that talk to the world, against real peers: `http` and `notify` against an HTTP
//! server on 127.0.0.1, `sql` against SQLite files and a throwaway PostgreSQL cluster,
//! approvals decided from other processes, escalations that fire once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::peers::{Health, HttpPeer, Postgres};
use crate::support::run_in_with_env;

use crate::support::Scratch as Sandbox;

#[test]
fn a_health_check_polls_with_a_bearer_token_until_healthy() {
    let peer = HttpPeer::start();
    let token = "tok-3f9a1c77e2b84d0d";
    peer.set_health(Health { token: Some(token.into()), healthy_after: 2, ..Health::ok("v1.2.0") });
    let sb = Sandbox::new(&format!(
        r#"[runbook]
name = "health"
[params.version]
type = "string"
[secrets.CRON_SECRET]
env = "CRON_SECRET"
[steps.health]
http = {{ url = "{}", headers = {{ Authorization = "Bearer {{{{ secrets.CRON_SECRET }}}}" }}, expect-status = [200], max-latency = "2s", assert = "json.status == 'ok' and json.version == params.version" }}
retry = {{ attempts = 5, delay = "20ms" }}
[steps.after]
cmd = ["sh", "-c", "echo \"$1 $2\" > seen", "sh", "{{{{ steps.health.outputs.status }}}}", "{{{{ steps.health.outputs.json.version }}}}"]
"#,
        peer.url("/api/health")
    ));
    let out = sb.run(&["-p", "version=v1.2.0"], &[("CRON_SECRET", token)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(std::fs::read_to_string(sb.path().join("seen")).unwrap_or_default(), "200 v1.2.0\n");
    let health: Vec<_> = peer.received().into_iter().filter(|r| r.path == "/api/health").collect();
    assert_eq!(health.len(), 3, "two 503s, then healthy");
    assert!(health.iter().all(|r| r.headers.get("authorization") == Some(&format!("Bearer {token}"))));
    let audit = sb.audit(&sb.latest_run());
    assert!(audit.contains("\"attempt_failed\"") && audit.contains("503"), "{audit}");
    assert!(!audit.contains(token) && !out.stdout.contains(token) && !out.stderr.contains(token));

    // A wrong version fails the assertion after the retries.
    let out = sb.run(&["-p", "version=v9.9.9"], &[("CRON_SECRET", token)]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("assert failed"), "{}", out.stdout);
}

#[test]
fn status_latency_and_unreachable_servers_fail_the_step() {
    let peer = HttpPeer::start();
    peer.set_health(Health { delay: Duration::from_millis(300), ..Health::ok("v1") });
    let sb = Sandbox::new(&format!(
        r#"[runbook]
name = "limits"
[steps.slow]
http = {{ url = "{}", max-latency = "100ms" }}
on-failure = "continue"
[steps.teapot]
http = {{ url = "{}" }}
needs = []
on-failure = "continue"
[steps.accepted]
http = {{ url = "{}", expect-status = [418] }}
needs = []
on-failure = "continue"
[steps.closed]
http = {{ url = "http://127.0.0.1:9/nothing", request-timeout = "2s" }}
needs = []
on-failure = "continue"
"#,
        peer.url("/api/health"),
        peer.url("/status/418"),
        peer.url("/status/418"),
    ));
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("over the 100 ms limit (`max-latency`)"), "{}", out.stdout);
    assert!(out.stdout.contains("answered 418, expected a 2xx status"), "{}", out.stdout);
    assert!(out.stdout.contains("ok accepted"), "{}", out.stdout);
    assert!(
        out.stdout.contains("FAILED closed: GET http://127.0.0.1:9/nothing: request failed"),
        "{}",
        out.stdout
    );
}

#[test]
fn query_values_are_percent_encoded_and_json_bodies_sent_as_json() {
    let peer = HttpPeer::start();
    let sb = Sandbox::new(&format!(
        r#"[runbook]
name = "encode"
[params.q]
type = "string"
[steps.search]
http = {{ method = "POST", url = "{}", query = {{ q = "{{{{ params.q }}}}" }}, json = {{ tag = "{{{{ params.q }}}}", n = 3 }} }}
"#,
        peer.url("/hook")
    ));
    let hostile = "a&b=c d#e?f/../g";
    let out = sb.run(&["-p", &format!("q={hostile}")], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let got = peer.received().pop().expect("a request");
    assert_eq!(got.method, "POST");
    let query = got.path.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
    assert!(!query.contains('&'), "one query parameter: {query}");
    assert_eq!(got.headers.get("content-type").map(String::as_str), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&got.body).expect("json body");
    assert_eq!(body, serde_json::json!({ "tag": hostile, "n": 3 }));
}

#[test]
fn notifications_post_text_and_only_required_ones_fail() {
    let peer = HttpPeer::start();
    let sb = Sandbox::new(&format!(
        r#"[runbook]
name = "notes"
[steps.tell]
notify = {{ webhook = "{hook}", text = "deploy of {{{{ runbook.name }}}} started ({{{{ run.id }}}})" }}
[steps.courtesy]
notify = {{ webhook = "{bad}", json = {{ event = "x" }} }}
[steps.next]
run = "echo after > trace"
[finally.report]
notify = {{ webhook = "{hook}", text = "finished: {{{{ run.status }}}}" }}
"#,
        hook = peer.url("/hook"),
        bad = peer.url("/status/500"),
    ));
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("warning: notification not delivered"), "{}", out.stdout);
    let hooks = peer.hooks();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let first: serde_json::Value = serde_json::from_str(&hooks[0]).expect("json");
    assert!(first["text"].as_str().unwrap_or_default().starts_with("deploy of notes started ("), "{first}");
    assert_eq!(hooks[1], r#"{"text":"finished: succeeded"}"#);

    let sb = Sandbox::new(&format!(
        "[runbook]\nname = \"req\"\n[steps.page]\nnotify = {{ webhook = \"{}\", text = \"x\", required = true }}\n",
        peer.url("/status/500")
    ));
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("notification not delivered"), "{}", out.stdout);
}

const SQL_RUNBOOK: &str = r#"[runbook]
name = "sql"
[params.name]
type = "string"
[secrets.DB]
env = "TEST_DB_URL"
[steps.schema]
sql = { url = "{{ secrets.DB }}", file = "schema.sql" }
[steps.insert]
sql = { url = "{{ secrets.DB }}", query = "INSERT INTO customers (name, balance) VALUES ($1, $2)", args = ["{{ params.name }}", 12.5] }
[steps.count]
sql = { url = "{{ secrets.DB }}", query = "SELECT count(*) AS n, max(name) AS name FROM customers WHERE name = $1", args = ["{{ params.name }}"], read-only = true, assert = "rows[0].n == 1 and rows[0].name == params.name" }
[steps.use]
cmd = ["sh", "-c", "printf '%s' \"$1\" > seen", "sh", "{{ steps.count.outputs.rows[0].name }}"]
"#;

const SQL_SCHEMA: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance REAL);\n\
                          CREATE TABLE audit (note TEXT);\n";

fn sql_roundtrip(sb: &Sandbox, url: &str) {
    let hostile = "x'); DROP TABLE customers; --";
    let out = sb.run(&["-p", &format!("name={hostile}")], &[("TEST_DB_URL", url)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(std::fs::read_to_string(sb.path().join("seen")).unwrap_or_default(), hostile);
    assert!(out.stdout.contains("sql: 1 row(s) returned"), "{}", out.stdout);
    let audit = sb.audit(&sb.latest_run());
    assert!(audit.contains("\"rows_affected\":1"), "{audit}");
}

#[test]
fn sql_on_sqlite_binds_values_and_asserts_over_rows() {
    let sb = Sandbox::new(SQL_RUNBOOK);
    std::fs::write(sb.path().join("schema.sql"), SQL_SCHEMA).expect("schema");
    std::fs::write(sb.path().join("app.db"), "").expect("db");
    sql_roundtrip(&sb, "sqlite:app.db");

    // A read-only query cannot write.
    let ro = Sandbox::new(
        "[runbook]\nname = \"ro\"\n[steps.w]\nsql = { url = \"sqlite:app.db\", query = \"DELETE FROM customers\", read-only = true }\n",
    );
    std::fs::copy(sb.path().join("app.db"), ro.path().join("app.db")).expect("copy");
    let out = ro.run(&[], &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("readonly") || out.stdout.contains("read-only"), "{}", out.stdout);
}

#[test]
fn sql_on_postgres_binds_values_rolls_back_failed_scripts_and_reads_types() {
    let pg = Postgres::start();
    let sb = Sandbox::new(SQL_RUNBOOK);
    std::fs::write(
        sb.path().join("schema.sql"),
        SQL_SCHEMA.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY"),
    )
    .expect("schema");
    sql_roundtrip(&sb, &pg.url("postgres"));
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM customers"), "1", "the table survived");

    // A reversal migration that fails half-way leaves nothing behind.
    let sb = Sandbox::new(&format!(
        "[runbook]\nname = \"mig\"\n[steps.migrate]\nsql = {{ url = \"{}\", file = \"reversal.sql\" }}\n",
        pg.url("postgres")
    ));
    std::fs::write(
        sb.path().join("reversal.sql"),
        "ALTER TABLE customers ADD COLUMN archived_at timestamptz;\nINSERT INTO audit VALUES ('x');\nSELECT no_such_function();\n",
    )
    .expect("script");
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("`reversal.sql` failed and was rolled back"), "{}", out.stdout);
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM audit"), "0");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'archived_at'"
        ),
        "0"
    );

    // Types come back as JSON values an assertion can compare.
    let sb = Sandbox::new(&format!(
        r#"[runbook]
name = "types"
[steps.read]
sql = {{ url = "{}", query = "SELECT 42::int8 AS i, 1.50::numeric(10,2) AS n, sum(x)::numeric AS s, true AS b, 't'::text AS t, NULL::text AS z, '{{\"a\":1}}'::jsonb AS j, now() AS ts FROM (VALUES (1),(2)) v(x)", read-only = true, assert = "rows[0].i == 42 and rows[0].n == 1.5 and rows[0].s == 3 and rows[0].b and rows[0].t == 't' and rows[0].z is none and rows[0].j.a == 1" }}
[steps.write]
sql = {{ url = "{}", query = "UPDATE customers SET balance = balance + 1", read-only = true }}
"#,
        pg.url("postgres"),
        pg.url("postgres")
    ));
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("ok read"), "{}", out.stdout);
    assert!(out.stdout.contains("read-only transaction"), "{}", out.stdout);
}

const APPROVAL_RUNBOOK: &str = r#"[runbook]
name = "gate"
[steps.before]
run = "echo before >> trace"
[steps.go]
approval = { prompt = "Purge the queue?", approvers = ["ana", "ben", "eve"], min-approvals = 2, inputs = { ticket = { type = "string" } } }
[steps.after]
cmd = ["sh", "-c", "echo \"after $1\" >> trace", "sh", "{{ steps.go.outputs.ticket }}"]
"#;

#[test]
fn an_approval_suspends_the_run_until_enough_people_approve() {
    let sb = Sandbox::new(APPROVAL_RUNBOOK);
    let as_ana = [("RUNBOOK_OPERATOR", "ana")];
    let out = sb.run(&[], &as_ana);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("suspended: waiting for approval of go"), "{}", out.stdout);
    let run = sb.latest_run();
    let read = || std::fs::read_to_string(sb.path().join("trace")).unwrap_or_default();
    assert_eq!(read(), "before\n");

    // The run's own operator may not approve; strangers may not either.
    let own = sb.cmd(&["approve", &run, "go"], &as_ana);
    assert_eq!(own.code, 3, "{}", own.stderr);
    assert!(own.stderr.contains("may not approve its own steps"), "{}", own.stderr);
    let stranger = sb.cmd(&["approve", &run, "go", "--as", "mallory"], &[]);
    assert_eq!(stranger.code, 3);
    assert!(stranger.stderr.contains("not among the approvers"), "{}", stranger.stderr);
    let bad_input = sb.cmd(&["approve", &run, "go", "--as", "ben", "--input", "tiket=1"], &[]);
    assert_eq!(bad_input.code, 3);
    assert!(
        bad_input.stderr.contains("a name given is not an input of the approval"),
        "{}",
        bad_input.stderr
    );

    let ben = sb
        .cmd(&["approve", &run, "go", "--as", "ben", "--input", "ticket=OPS-7", "--reason", "checked"], &[]);
    assert_eq!(ben.code, 0, "{}", ben.stderr);
    assert!(ben.stdout.contains("(1 of 2 approval(s))"), "{}", ben.stdout);
    let twice = sb.cmd(&["approve", &run, "go", "--as", "ben"], &[]);
    assert!(twice.stderr.contains("already approved"), "{}", twice.stderr);
    // Resuming before enough approvals just waits again.
    assert_eq!(sb.cmd(&["resume", &run], &[]).code, 4);
    let eve = sb.cmd(&["approve", &run, "go", "--as", "eve"], &[]);
    assert!(eve.stdout.contains("runbook resume"), "{}", eve.stdout);

    let resumed = sb.cmd(&["resume", &run], &as_ana);
    assert_eq!(resumed.code, 0, "{}{}", resumed.stdout, resumed.stderr);
    assert_eq!(read(), "before\nafter OPS-7\n");
    let audit = sb.audit(&run);
    for who in ["\"operator\":\"ben\"", "\"operator\":\"eve\"", "\"reason\":\"checked\""] {
        assert!(audit.contains(who), "{who} in {audit}");
    }
    assert_eq!(sb.cmd(&["audit", "verify", &run], &[]).code, 0);
}

#[test]
fn a_rejection_fails_the_step() {
    let sb = Sandbox::new(APPROVAL_RUNBOOK);
    assert_eq!(sb.run(&[], &[("RUNBOOK_OPERATOR", "ana")]).code, 4);
    let run = sb.latest_run();
    let no_reason = sb.cmd(&["reject", &run, "go", "--as", "ben"], &[]);
    assert_eq!(no_reason.code, 2, "--reason is required");
    let rejected = sb.cmd(&["reject", &run, "go", "--as", "ben", "--reason", "queue holds invoices"], &[]);
    assert_eq!(rejected.code, 0, "{}", rejected.stderr);
    let late = sb.cmd(&["approve", &run, "go", "--as", "eve"], &[]);
    assert!(late.stderr.contains("already rejected"), "{}", late.stderr);
    let out = sb.cmd(&["resume", &run], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAILED go: rejected by ben: queue holds invoices"), "{}", out.stdout);
    assert!(!std::fs::read_to_string(sb.path().join("trace")).unwrap_or_default().contains("after"));
}

#[test]
fn an_attached_run_continues_when_another_terminal_approves() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"attached\"\n[steps.go]\napproval = { prompt = \"Go?\", approvers = [\"ben\"] }\n[steps.after]\nrun = \"echo done > trace\"\n",
    );
    let state = sb.state();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "r.toml", "--wait", "--state", &state])
        .current_dir(sb.path())
        .env("RUNBOOK_OPERATOR", "ana")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    // Wait for the request to be journaled.
    let mut run = None;
    for _ in 0..3000 {
        if let Some(id) = crate::support::latest_run_id(sb.path(), Path::new(&state))
            && sb.audit(&id).contains("approval_requested")
        {
            run = Some(id);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = run.expect("the run asked for approval");
    let out = sb.cmd(&["approve", &run, "go", "--as", "ben"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("continues by itself"), "{}", out.stdout);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(sb.path().join("trace")).unwrap_or_default(), "done\n");
}

#[test]
fn of_two_conflicting_decisions_at_once_exactly_one_wins() {
    for _ in 0..5 {
        let sb = Sandbox::new(
            "[runbook]\nname = \"race\"\n[steps.go]\napproval = { prompt = \"Go?\", approvers = [\"ben\", \"eve\"] }\n",
        );
        assert_eq!(sb.run(&[], &[("RUNBOOK_OPERATOR", "ana")]).code, 4);
        let run = sb.latest_run();
        let state = sb.state();
        let spawn = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_runbook"))
                .args(args)
                .args(["--state", &state])
                .current_dir(sb.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn")
        };
        let mut a = spawn(&["approve", &run, "go", "--as", "ben"]);
        let mut b = spawn(&["reject", &run, "go", "--as", "eve", "--reason", "no"]);
        let wins = [a.wait(), b.wait()].into_iter().filter(|s| s.as_ref().is_ok_and(|s| s.success())).count();
        assert_eq!(wins, 1, "exactly one decision is recorded");
        let audit = sb.audit(&run);
        let decisions = audit
            .lines()
            .filter(|l| l.contains("approval_granted") || l.contains("approval_rejected"))
            .count();
        assert_eq!(decisions, 1, "{audit}");
    }
}

#[test]
fn escalations_fire_once_while_the_run_is_still_going() {
    let peer = HttpPeer::start();
    let sb = Sandbox::new(&format!(
        r#"[runbook]
name = "slow"
[steps.wait]
run = "sleep 1.2"
[escalation.first]
after = "300ms"
notify = {{ webhook = "{hook}", text = "{{{{ runbook.name }}}} still going" }}
[escalation.never]
after = "1h"
notify = {{ webhook = "{hook}", text = "never" }}
"#,
        hook = peer.url("/hook")
    ));
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(peer.hooks(), vec![r#"{"text":"slow still going"}"#.to_string()]);
    let audit = sb.audit(&sb.latest_run());
    assert_eq!(audit.lines().filter(|l| l.contains("escalation_fired")).count(), 1, "{audit}");
    assert!(audit.contains("\"delivered\":true"));
}

/// `openssl s_server -www` on 127.0.0.1 with a certificate from a private CA: a real TLS
/// server that no system trust store knows.
pub(crate) struct TlsPeer {
    child: std::process::Child,
    pub(crate) port: u16,
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn tls_peer(dir: &Path) -> TlsPeer {
    // A private CA, and a server certificate for 127.0.0.1 that it signed.
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .expect("ext");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    for args in [
        vec![
            "req",
            "-x509",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=runbook test CA",
        ],
        vec!["req", "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
    ] {
        let ok = Command::new("openssl")
            .args(&args[..1])
            .args(ec)
            .args(&args[1..])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(ok.success(), "openssl {args:?}");
    }
    let ok = Command::new("openssl")
        .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"])
        .args(["-out", "cert.pem", "-days", "1", "-extfile", "ext.cnf"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success(), "openssl signed the server certificate");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let child = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert", "cert.pem", "-key", "key.pem"])
        .args(["-www", "-quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_server");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsPeer { child, port }
}

#[test]
fn a_custom_ca_file_makes_a_private_certificate_trusted() {
    let sb = Sandbox::new("");
    let peer = tls_peer(sb.path());
    std::fs::write(
        sb.path().join("r.toml"),
        format!(
            r#"[runbook]
name = "tls"
[steps.trusted]
http = {{ url = "https://127.0.0.1:{port}/", ca-file = "ca.pem", request-timeout = "5s" }}
[steps.untrusted]
http = {{ url = "https://127.0.0.1:{port}/", request-timeout = "5s" }}
needs = []
"#,
            port = peer.port
        ),
    )
    .expect("runbook");
    let out = sb.run(&[], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ok trusted"), "{}", out.stdout);
    assert!(out.stdout.contains("FAILED untrusted"), "{}", out.stdout);
    assert!(out.stdout.to_lowercase().contains("certificate"), "{}", out.stdout);
}

#[test]
fn an_approval_that_nobody_answers_times_out() {
    let sb = Sandbox::new(
        "[runbook]\nname = \"late\"\n[steps.go]\napproval = { prompt = \"Go?\", timeout = \"300ms\" }\n[steps.after]\nrun = \"echo after > trace\"\n",
    );
    let out = sb.run(&["--wait"], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("no decision within the approval timeout (0 of 1 approvals)"),
        "{}",
        out.stdout
    );
    assert!(!sb.path().join("trace").exists());
}

#[test]
fn approval_inputs_follow_their_declarations_and_a_late_approval_is_refused() {
    let sb = Sandbox::new(
        r#"[runbook]
name = "rules"
lock = "queue-prod"
[steps.sign_off]
approval = { prompt = "Purge?", approvers = ["ben"], inputs = { ticket = { type = "string", pattern = '^CHG-\d+$' }, batch = { type = "integer", enum = [10, 100], default = 10 } } }
[steps.late]
approval = { prompt = "Late?", timeout = "1s" }
needs = []
"#,
    );
    assert_eq!(sb.run(&[], &[("RUNBOOK_OPERATOR", "ana")]).code, 4);
    let run = sb.latest_run();
    let approve = |args: &[&str]| {
        let mut all = vec!["approve", run.as_str()];
        all.extend_from_slice(args);
        sb.cmd(&all, &[])
    };
    let missing = approve(&["sign_off", "--as", "ben"]);
    assert!(missing.stderr.contains("input `ticket` is required"), "{}", missing.stderr);
    let pattern = approve(&["sign_off", "--as", "ben", "--input", "ticket=not-a-ticket"]);
    assert!(pattern.stderr.contains("does not match the pattern"), "{}", pattern.stderr);
    let not_allowed = approve(&["sign_off", "--as", "ben", "--input", "ticket=CHG-1", "--input", "batch=50"]);
    assert!(not_allowed.stderr.contains("is not one of"), "{}", not_allowed.stderr);
    assert_eq!(approve(&["sign_off", "--as", "ben", "--input", "ticket=CHG-1"]).code, 0);

    // A suspended run keeps its lock: nothing else runs on `queue-prod` meanwhile.
    let other =
        Sandbox::new("[runbook]\nname = \"other\"\nlock = \"queue-prod\"\n[steps.a]\nrun = \"true\"\n");
    let out = run_in_with_env(other.path(), &["run", "r.toml", "--state", &sb.state()], &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("suspended: run"), "{}", out.stderr);

    std::thread::sleep(Duration::from_millis(1100));
    let late = approve(&["late", "--as", "ben"]);
    assert_eq!(late.code, 3, "{}", late.stderr);
    assert!(late.stderr.contains("timed out"), "{}", late.stderr);
    let out = sb.cmd(&["resume", &sb.latest_run()], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ok sign_off (batch=10, ticket=CHG-1)"), "{}", out.stdout);
    assert!(out.stdout.contains("FAILED late: no decision within the approval timeout"), "{}", out.stdout);
    // Finished: the lock is free again.
    assert_eq!(run_in_with_env(other.path(), &["run", "r.toml", "--state", &sb.state()], &[]).code, 0);
}
