//! Real peers for the steps that talk to the world: an HTTP server on 127.0.0.1 and a
//! throwaway PostgreSQL cluster. No mocks: the engine speaks real HTTP and the PostgreSQL
//! wire protocol to them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// How `/api/health` answers.
#[derive(Debug, Clone)]
pub struct Health {
    /// The Bearer token it requires (`None`: no auth).
    pub token: Option<String>,
    /// The status it answers with when authorised.
    pub status: u16,
    /// How long it waits before answering.
    pub delay: Duration,
    /// The version it reports.
    pub version: String,
    /// Answer `status` only after this many requests (earlier ones get 503): a service
    /// that becomes healthy.
    pub healthy_after: usize,
    /// Report the version deployed from this bare repository instead of `version`: the tag
    /// on its `main` (`git describe --tags`), as a pipeline would deploy it.
    pub deployed_from: Option<PathBuf>,
    /// While this file exists, answer 503: the app can be told to fail.
    pub fail_flag: Option<PathBuf>,
    /// Append a line per request here (the app's log, read by the runbooks' log scan).
    pub log: Option<PathBuf>,
}

impl Health {
    /// A health endpoint that answers 200 with `version`, without auth.
    pub fn ok(version: &str) -> Health {
        Health {
            token: None,
            status: 200,
            delay: Duration::ZERO,
            version: version.into(),
            healthy_after: 0,
            deployed_from: None,
            fail_flag: None,
            log: None,
        }
    }

    fn current_version(&self) -> String {
        let Some(repo) = &self.deployed_from else { return self.version.clone() };
        Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(["describe", "--tags", "main"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

#[derive(Debug, Default)]
struct Shared {
    received: Vec<Received>,
    health: Option<Health>,
    health_hits: usize,
}

/// An HTTP/1.1 server on 127.0.0.1 with a health endpoint (`/api/health`), a webhook
/// receiver (`/hook`, records bodies) and `/status/NNN` (answers NNN). Every request is
/// recorded. It stops with the test process.
#[derive(Debug)]
pub struct HttpPeer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl HttpPeer {
    pub fn start() -> HttpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Mutex::new(Shared { health: Some(Health::ok("v1.0.0")), ..Shared::default() }));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        HttpPeer { port, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_health(&self, health: Health) {
        if let Ok(mut s) = self.shared.lock() {
            s.health = Some(health);
            s.health_hits = 0;
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().map(|s| s.received.clone()).unwrap_or_default()
    }

    /// Bodies posted to `/hook` (or `/hooks/...`).
    pub fn hooks(&self) -> Vec<String> {
        self.received().into_iter().filter(|r| r.path.starts_with("/hook")).map(|r| r.body).collect()
    }
}

fn serve(stream: TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let path = target.split('?').next().unwrap_or_default().to_string();
    let received = Received {
        method,
        path: target.clone(),
        headers: headers.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (status, reply, delay) = {
        let mut s = shared.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        s.received.push(received);
        if path == "/api/health" {
            s.health_hits += 1;
            let hits = s.health_hits;
            match s.health.clone() {
                Some(h) => {
                    let authorised = h
                        .token
                        .as_ref()
                        .is_none_or(|t| headers.get("authorization") == Some(&format!("Bearer {t}")));
                    let answer = if !authorised {
                        (401, r#"{"error":"unauthorized"}"#.to_string(), Duration::ZERO)
                    } else if hits <= h.healthy_after || h.fail_flag.as_ref().is_some_and(|f| f.exists()) {
                        (503, r#"{"status":"unavailable"}"#.to_string(), h.delay)
                    } else {
                        let version = h.current_version();
                        (
                            h.status,
                            serde_json::json!({ "status": "ok", "version": version }).to_string(),
                            h.delay,
                        )
                    };
                    if let Some(log) = &h.log {
                        let level = if answer.0 >= 500 { "ERROR" } else { "INFO" };
                        let line = format!("{level} GET /api/health {}\n", answer.0);
                        let _ = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(log)
                            .and_then(|mut f| f.write_all(line.as_bytes()));
                    }
                    answer
                }
                None => (404, String::new(), Duration::ZERO),
            }
        } else if path == "/echo" {
            // What the server saw, as JSON: a service that reflects a request (or an error
            // page that quotes it) is how secrets end up in response bodies.
            let echo = serde_json::json!({ "target": target, "headers": headers, "body": String::from_utf8_lossy(&body) });
            (200, echo.to_string(), Duration::ZERO)
        } else if path.starts_with("/hook") {
            (200, "ok".to_string(), Duration::ZERO)
        } else if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse::<u16>().ok()) {
            (code, format!(r#"{{"status":{code}}}"#), Duration::ZERO)
        } else {
            (404, String::new(), Duration::ZERO)
        }
    };
    std::thread::sleep(delay);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nX-Peer: runbook-tests\r\n\r\n{reply}",
        reply.len()
    )?;
    out.flush()
}

/// A throwaway PostgreSQL cluster in a temp folder, on a Unix socket there. Stopped and
/// removed on drop. `initdb` refuses root, so as root it runs as the `postgres` user.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    port: Option<u16>,
}

impl Postgres {
    /// Start one. PostgreSQL must be installed (`.ci/run` installs it). Durability is off
    /// (no fsync): tests want speed, not crash safety of the test cluster.
    pub fn start() -> Postgres {
        Postgres::start_with(false, false)
    }

    /// Start one that also listens on 127.0.0.1 (a free port), where roles log in with a
    /// password (SCRAM); the Unix socket in the cluster's folder stays open, without one, for
    /// the tests' own inspection.
    pub fn start_tcp() -> Postgres {
        Postgres::start_with(false, true)
    }

    /// Start one with PostgreSQL's default durability (fsync, synchronous commit), for
    /// benchmarks that must measure what a real server costs.
    pub fn start_durable() -> Postgres {
        Postgres::start_with(true, false)
    }

    fn start_with(durable: bool, tcp: bool) -> Postgres {
        let bin = pg_bin()
            .expect("PostgreSQL binaries under /usr/lib/postgresql/*/bin: apt-get install postgresql");
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
            assert!(ok.is_ok_and(|s| s.success()), "chown the cluster folder to postgres");
        }
        let port = if tcp { Some(free_port()) } else { None };
        let pg = Postgres { dir, bin, as_postgres, port };
        let data = pg.dir.path().join("data");
        // A copy of what `initdb` makes with these arguments, made once on this machine
        // (see [`template`]): each cluster still has its own data folder, socket and port.
        let template = template(&pg.bin, as_postgres, tcp);
        let copied = Command::new("cp").arg("-a").arg(&template).arg(&data).output();
        assert!(
            copied.as_ref().is_ok_and(|o| o.status.success()),
            "cp -a {} {}: {copied:?}",
            template.display(),
            data.display()
        );
        let speed =
            if durable { "" } else { " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" };
        let listen = match port {
            Some(port) => format!("-c listen_addresses=127.0.0.1 -p {port}"),
            None => "-c listen_addresses=''".to_string(),
        };
        let opts = format!("-k {} {listen}{speed}", pg.dir.path().display());
        let log = pg.dir.path().join("log");
        pg.tool(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-l",
                log.to_str().unwrap_or_default(),
                "-w",
                "-s",
                "-o",
                &opts,
                "start",
            ],
        );
        pg
    }

    fn tool(&self, name: &str, args: &[&str]) {
        pg_tool(&self.bin, self.as_postgres, name, args);
    }

    /// The folder of the PostgreSQL programs (`psql`, `pg_dump`, `pg_restore`).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The TCP port on 127.0.0.1, for a cluster started with [`Postgres::start_tcp`].
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URL of database `db` (over the socket in the cluster's folder).
    pub fn url(&self, db: &str) -> String {
        let port = self.port.map(|p| format!("&port={p}")).unwrap_or_default();
        format!("postgres://postgres@localhost/{db}?host={}{port}", self.dir.path().display())
    }

    /// Run SQL with psql; its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([&self.url(db), "-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Run SQL that holds a secret (a role's password) with psql, given on its standard
    /// input: never in its argv, where the tests that scan every process list for the
    /// password would find it while another test builds its sandbox.
    pub fn psql_secret(&self, db: &str, sql: &str) {
        let mut child = Command::new(self.bin.join("psql"))
            .args([&self.url(db), "-v", "ON_ERROR_STOP=1", "-Aqt"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("psql");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes()).expect("psql's standard input");
        }
        let out = child.wait_with_output().expect("psql");
        assert!(out.status.success(), "psql (SQL on stdin): {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let args = ["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "-w", "-s", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}

/// The arguments of `initdb` for a cluster: trust on the socket; on TCP, SCRAM passwords
/// for [`Postgres::start_tcp`], trust otherwise.
fn initdb_args(tcp: bool) -> [&'static str; 8] {
    [
        "-U",
        "postgres",
        "--auth-local=trust",
        if tcp { "--auth-host=scram-sha-256" } else { "--auth-host=trust" },
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    ]
}

/// A data folder that `initdb` (of the PostgreSQL in `bin`, with [`initdb_args`]) made once
/// on this machine, for clusters to start from a copy of it (`cp -a`, a tenth of the time
/// of `initdb`). Its name holds everything that shapes what `initdb` writes: the version
/// `initdb --version` prints, its folder, the arguments and the owner; so another
/// PostgreSQL or other arguments get their own. It is made in a private folder and renamed
/// into place whole, so a reader never sees half of one, and two processes that make it at
/// once (nextest runs each test in its own) both succeed: the second rename finds the
/// first's and its copy is dropped. Never written after: clusters run on their copies.
fn template(bin: &Path, as_postgres: bool, tcp: bool) -> PathBuf {
    static MAKING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let version = Command::new(bin.join("initdb"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let key = format!("{version}\n{}\n{}\n{as_postgres}", bin.display(), initdb_args(tcp).join(" "));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let path = std::env::temp_dir().join(format!("runbook-pg-template-{hash:016x}"));
    if path.join("PG_VERSION").exists() && path.join("global/pg_control").exists() {
        return path;
    }
    let making = tempfile::Builder::new()
        .prefix(".runbook-pg-template-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir for a PostgreSQL template");
    if as_postgres {
        let ok = Command::new("chown").args(["postgres:postgres"]).arg(making.path()).status();
        assert!(ok.is_ok_and(|s| s.success()), "chown the template folder to postgres");
    }
    let data = making.path().join("data");
    let mut args = vec!["-D", data.to_str().unwrap_or_default()];
    args.extend(initdb_args(tcp));
    pg_tool(bin, as_postgres, "initdb", &args);
    // Another process may have put its own in place meanwhile: either is the same.
    if std::fs::rename(&data, &path).is_err() {
        assert!(path.join("PG_VERSION").exists(), "a PostgreSQL template at {}", path.display());
    }
    path
}

/// Run PostgreSQL's program `name` from `bin` (as the `postgres` user when `as_postgres`);
/// it must succeed.
fn pg_tool(bin: &Path, as_postgres: bool, name: &str, args: &[&str]) {
    let program = bin.join(name);
    let out = if as_postgres {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
    } else {
        Command::new(&program).args(args).output()
    }
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

/// A port on 127.0.0.1 that nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
