//! `runbook-sandbox DIR`: start a sandbox in DIR, print how to use it, and serve until Enter
//! is pressed (or stdin closes); the database stops then.
//!
//!     cargo run -p runbook-sandbox -- /tmp/inmova-sandbox
//!     cargo run -p runbook-sandbox -- --shape shop /tmp/shop-sandbox

// The test environment starts real peers (PostgreSQL, git, an HTTP server): it may create
// processes (clippy.toml allows it to engine/exec/src/process.rs alone in the engine).
#![allow(clippy::disallowed_methods)]

use std::io::Write as _;
use std::path::PathBuf;

fn main() {
    let usage = "usage: runbook-sandbox [--shape inmova|shop] DIR   (DIR: a new or empty folder; Enter, Ctrl-C or SIGTERM stops it)\n\
                 --shape shop builds the second environment (database over TCP with a password, other\n\
                 tables, migration folders and app folder); inmova, the default, the first.";
    let mut args: Vec<String> =
        std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let mut shape = runbook_sandbox::sandbox::Shape::Inmova;
    if let Some(i) = args.iter().position(|a| a == "--shape") {
        shape = match args.get(i + 1).map(String::as_str) {
            Some("inmova") => runbook_sandbox::sandbox::Shape::Inmova,
            Some("shop") => runbook_sandbox::sandbox::Shape::Shop,
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        };
        args.drain(i..=i + 1);
    }
    let Some(arg) = args.first().cloned() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    if arg == "--help" || arg == "-h" {
        println!("{usage}");
        return;
    }
    if arg.starts_with('-') || args.len() > 1 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let dir = PathBuf::from(arg);
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        eprintln!("error: `{}` is not empty; give a new folder", dir.display());
        std::process::exit(2);
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create `{}`: {e}", dir.display());
        std::process::exit(1);
    }
    let sb = runbook_sandbox::Sandbox::start_shaped(&dir, shape);
    let mut env = String::new();
    for (k, v) in sb.env() {
        env.push_str(&format!("export {k}='{v}'\n"));
    }
    let env_file = sb.dir.join("sandbox.env");
    let _ = std::fs::write(&env_file, env);
    for runbook in ["deploy", "rollback-l1", "rollback-l2", "rollback-l3", "backup", "drill"] {
        let _ = std::fs::write(sb.dir.join(format!("{runbook}.params.toml")), sb.params_toml(runbook, &[]));
    }
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "sandbox ready in {dir}\n  database   {db}\n  app        {app} (Bearer token in CRON_SECRET)\n  origin     {origin} (deployed: {version})\n  clone      {repo}\n\n\
         In another terminal:\n  source {dir}/sandbox.env\n  runbook plan runbooks/rollback-l3.toml --params-file {dir}/rollback-l3.params.toml\n\n\
         Press Enter here (or Ctrl-C) to stop it; the database stops with it.",
        dir = sb.dir.display(),
        // The password (the second environment has one) stays in sandbox.env.
        db = match sb.db_password() {
            Some(_) => sb
                .database_url()
                .split_once('@')
                .map_or(String::new(), |(_, host)| format!("postgresql://…@{host}")),
            None => sb.database_url(),
        },
        app = sb.app.url("/api/health"),
        origin = sb.origin.display(),
        version = sb.deployed_version(),
        repo = sb.repo.display(),
    );
    let _ = out.flush();
    // Serve until Enter, end of input, Ctrl-C or SIGTERM; dropping the sandbox on the way out
    // stops the database.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match runtime {
        Ok(rt) => {
            rt.block_on(async {
                let stdin = tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                });
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                let sigterm = async {
                    match term.as_mut() {
                        Some(t) => {
                            t.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stdin => {}
                    _ = tokio::signal::ctrl_c() => {}
                    _ = sigterm => {}
                }
            });
            // The stdin reader may still be blocked: do not wait for it.
            rt.shutdown_background();
        }
        Err(e) => eprintln!("error: {e}; stopping"),
    }
    eprintln!("stopping the sandbox");
    drop(sb);
}
