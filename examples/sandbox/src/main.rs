//! `runbook-sandbox DIR`: start a sandbox in DIR, print how to use it, and serve until Enter
//! is pressed (or stdin closes); the database stops then.
//!
//!     cargo run -p runbook-sandbox -- /tmp/inmova-sandbox

use std::io::Write as _;
use std::path::PathBuf;

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: runbook-sandbox DIR   (DIR: an empty or missing folder)");
        std::process::exit(2);
    };
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
         Press Enter here to stop it (the database stops with it).",
        dir = sb.dir.display(),
        db = sb.database_url(),
        app = sb.app.url("/api/health"),
        origin = sb.origin.display(),
        version = sb.deployed_version(),
        repo = sb.repo.display(),
    );
    let _ = out.flush();
    // Serve until interrupted; dropping the sandbox on the way out stops the database.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        // End on EOF of stdin too, so a script can stop it by closing the pipe.
        while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            line.clear();
        }
        let _ = tx.send(());
    });
    let _ = rx.recv();
    drop(sb);
}
