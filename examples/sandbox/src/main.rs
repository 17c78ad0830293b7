//! `runbook-sandbox DIR`: start a sandbox in DIR, print how to use it, and serve until Enter
//! is pressed (or stdin closes); the database stops then.
//!
//!     cargo run -p runbook-sandbox -- /tmp/inmova-sandbox

use std::io::Write as _;
use std::path::PathBuf;

fn main() {
    let usage =
        "usage: runbook-sandbox DIR   (DIR: a new or empty folder; Enter, Ctrl-C or SIGTERM stops it)";
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let arg = dir.to_string_lossy().into_owned();
    if arg == "--help" || arg == "-h" {
        println!("{usage}");
        return;
    }
    if arg.starts_with('-') {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        eprintln!("error: `{}` is not empty; give a new folder", dir.display());
        std::process::exit(2);
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create `{}`: {e}", dir.display());
        std::process::exit(1);
    }
    let sb = runbook_sandbox::Sandbox::start(&dir);
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
        db = sb.database_url(),
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
