//! The environment the team's runbooks run against: a database, a git origin, an app.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::peers::{Health, HttpPeer, Postgres};

/// The stand-in for `yarn` (see the script's header).
const YARN: &str = include_str!("../assets/yarn");

/// The first migration: the application's schema at v1.0.0.
const INIT: &str = r#"CREATE TABLE "User" (
    id SERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT '2025-01-01T00:00:00Z'
);
CREATE TABLE "Property" (
    id SERIAL PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES "User"(id),
    title TEXT NOT NULL,
    price NUMERIC(12, 2) NOT NULL
);
"#;

/// The migration of the release after v1.0.1, not deployed yet: what `deploy` publishes.
const ARCHIVED_AT: &str = "ALTER TABLE \"Property\" ADD COLUMN archived_at TIMESTAMPTZ;\n";

/// The reviewed reversal migration of `ARCHIVED_AT`, on a branch for rollback-l2.
pub const REVERSAL: &str = "20250315000000_rollback_archived_at";
const REVERSAL_SQL: &str = "ALTER TABLE \"Property\" DROP COLUMN archived_at;\n";

/// Prisma's own table, as `prisma migrate` creates it.
const PRISMA_MIGRATIONS: &str = r#"CREATE TABLE _prisma_migrations (
    id VARCHAR(36) PRIMARY KEY,
    checksum VARCHAR(64) NOT NULL,
    finished_at TIMESTAMPTZ,
    migration_name VARCHAR(255) NOT NULL,
    logs TEXT,
    rolled_back_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count INTEGER NOT NULL DEFAULT 0
);
"#;

const DATA: &str = r#"INSERT INTO "User" (email, name) VALUES
    ('ana@inmova.test', 'Ana'), ('ben@inmova.test', 'Ben'), ('eva@inmova.test', 'Eva');
INSERT INTO "Property" (owner_id, title, price) VALUES
    (1, 'Piso en Chamberí', 325000.00), (1, 'Ático en Gràcia', 540000.00),
    (2, 'Casa en Triana', 289500.50), (3, 'Estudio en Ruzafa', 119900.00),
    (3, 'Loft en Abando', 410000.00);
"#;

/// A running sandbox. Dropping it stops the database; the app's server thread ends with the
/// process.
#[derive(Debug)]
pub struct Sandbox {
    /// The sandbox folder.
    pub dir: PathBuf,
    /// The database cluster (its own folder, owned by `postgres` when run as root).
    pub pg: Postgres,
    /// The app: `/api/health` and the webhook receiver (`/hooks/...`).
    pub app: HttpPeer,
    /// The Bearer token `/api/health` wants (the runbooks' `CRON_SECRET`).
    pub token: String,
    /// The bare repository that plays `origin`; the app serves what its `main` holds.
    pub origin: PathBuf,
    /// A working clone of it.
    pub repo: PathBuf,
    /// The Next.js app inside the clone (`nextjs_space`).
    pub app_dir: PathBuf,
    /// Where backups go.
    pub backups: PathBuf,
    /// The app's logs (`app.log`, `prisma.log`, `nextjs.log`).
    pub logs: PathBuf,
    /// Programs the runbooks call that the sandbox provides (`yarn`).
    pub bin: PathBuf,
    /// While this file exists, `/api/health` answers 503.
    pub fail_flag: PathBuf,
    /// A backup of the database as deployed at v1.0.0-stable (custom format): what a
    /// level-3 rollback restores.
    pub stable_dump: PathBuf,
}

/// Run a program in `dir`; panics with its output when it fails (the sandbox cannot be built).
fn sh(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Inmova Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@inmova.test")
        .env("GIT_COMMITTER_NAME", "Inmova Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@inmova.test")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create folder");
    }
    std::fs::write(path, text).expect("write file");
}

impl Sandbox {
    /// Build and start a sandbox in `dir` (an empty folder).
    pub fn start(dir: &Path) -> Sandbox {
        let dir = std::path::absolute(dir).expect("absolute sandbox folder");
        let pg = Postgres::start();
        let app = HttpPeer::start();
        let sb = Sandbox {
            token: format!("sandbox-cron-{}", app.port),
            origin: dir.join("origin.git"),
            repo: dir.join("repo"),
            app_dir: dir.join("repo/nextjs_space"),
            backups: dir.join("backups"),
            logs: dir.join("logs"),
            bin: dir.join("bin"),
            fail_flag: dir.join("app-fail"),
            stable_dump: dir.join("backups/sandbox-v1.0.0-stable.dump"),
            dir,
            pg,
            app,
        };
        for d in [&sb.backups, &sb.logs, &sb.bin] {
            std::fs::create_dir_all(d).expect("sandbox folder");
        }
        for log in ["app.log", "prisma.log", "nextjs.log"] {
            write(&sb.logs.join(log), "INFO started\n");
        }
        write(&sb.bin.join("yarn"), YARN);
        sh(&sb.dir, "chmod", &["+x", "bin/yarn"]);
        sb.git();
        sb.database();
        sb.app.set_health(Health {
            token: Some(sb.token.clone()),
            deployed_from: Some(sb.origin.clone()),
            fail_flag: Some(sb.fail_flag.clone()),
            log: Some(sb.logs.join("app.log")),
            ..Health::ok("")
        });
        sb
    }

    /// The history: v1.0.0 (= v1.0.0-stable, the schema), v1.0.1 (frontend only, deployed
    /// now), and one commit on `main` with a migration, not released yet.
    fn git(&self) {
        let repo = &self.repo;
        sh(&self.dir, "git", &["init", "--quiet", "--bare", "--initial-branch=main", "origin.git"]);
        sh(&self.dir, "git", &["init", "--quiet", "--initial-branch=main", "repo"]);
        sh(repo, "git", &["config", "user.name", "Inmova Dev"]);
        sh(repo, "git", &["config", "user.email", "dev@inmova.test"]);
        sh(repo, "git", &["remote", "add", "origin", &self.origin.display().to_string()]);
        let app = &self.app_dir;
        write(
            &app.join("package.json"),
            "{\n  \"name\": \"inmova\",\n  \"private\": true,\n  \"version\": \"1.0.0\"\n}\n",
        );
        write(&app.join("yarn.lock"), "# yarn lockfile v1\n");
        write(
            &app.join("prisma/schema.prisma"),
            "datasource db {\n  provider = \"postgresql\"\n  url      = env(\"DATABASE_URL\")\n}\n",
        );
        write(&app.join("prisma/migrations/20250101000000_init/migration.sql"), INIT);
        write(&app.join("app/page.tsx"), "export default function Home() { return <h1>Inmova</h1>; }\n");
        sh(repo, "git", &["add", "-A"]);
        sh(repo, "git", &["commit", "--quiet", "-m", "feat: Inmova app with users and properties"]);
        sh(repo, "git", &["tag", "-a", "v1.0.0", "-m", "Release v1.0.0"]);
        sh(repo, "git", &["tag", "-a", "v1.0.0-stable", "-m", "Stable: v1.0.0"]);
        write(
            &app.join("app/page.tsx"),
            "export default function Home() { return <h1>Inmova: inmuebles</h1>; }\n",
        );
        sh(repo, "git", &["commit", "--quiet", "-am", "feat: new landing page"]);
        sh(repo, "git", &["tag", "-a", "v1.0.1", "-m", "Release v1.0.1: new landing page"]);
        sh(repo, "git", &["push", "--quiet", "origin", "main", "--tags"]);
        write(&app.join("prisma/migrations/20250301000000_property_archived_at/migration.sql"), ARCHIVED_AT);
        write(&app.join("app/archive.tsx"), "export function Archive() { return null; }\n");
        sh(repo, "git", &["add", "-A"]);
        sh(repo, "git", &["commit", "--quiet", "-m", "feat: archive properties"]);
        sh(repo, "git", &["push", "--quiet", "origin", "main"]);
        // The reviewed reversal of that migration, as `prisma migrate dev` made it on a
        // developer machine, waiting on a branch for a level-2 rollback.
        sh(repo, "git", &["checkout", "--quiet", "-b", "fix/rollback-archive"]);
        write(&app.join(format!("prisma/migrations/{REVERSAL}/migration.sql")), REVERSAL_SQL);
        sh(repo, "git", &["add", "-A"]);
        sh(repo, "git", &["commit", "--quiet", "-m", "fix: reversal migration for archive properties"]);
        sh(repo, "git", &["push", "--quiet", "origin", "fix/rollback-archive"]);
        sh(repo, "git", &["checkout", "--quiet", "main"]);
    }

    /// The commit `subject` (a commit message's first line) in the clone.
    pub fn commit(&self, subject: &str) -> String {
        sh(
            &self.repo,
            "git",
            &["log", "--all", "--format=%h", "--fixed-strings", &format!("--grep={subject}")],
        )
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
    }

    /// Make `origin` refuse (or accept again) every push, with a real `pre-receive` hook.
    pub fn set_origin_refusing(&self, refusing: bool) {
        let hook = self.origin.join("hooks/pre-receive");
        if refusing {
            write(&hook, "#!/bin/sh\necho 'sandbox: pushes are refused' >&2\nexit 1\n");
            sh(&self.dir, "chmod", &["+x", &hook.display().to_string()]);
        } else {
            let _ = std::fs::remove_file(hook);
        }
    }

    /// The database `inmova` as deployed: the schema of v1.0.0 with its data, recorded in
    /// `_prisma_migrations`, and a custom-format backup of it.
    fn database(&self) {
        self.pg.psql("postgres", "CREATE DATABASE inmova");
        let checksum =
            sh(&self.app_dir, "sha256sum", &["prisma/migrations/20250101000000_init/migration.sql"]);
        let checksum = checksum.split_whitespace().next().unwrap_or_default().to_string();
        self.pg.psql(
            "inmova",
            &format!(
                "{INIT}{PRISMA_MIGRATIONS}{DATA}INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count) VALUES ('00000000-0000-0000-0000-000000000001', '{checksum}', '20250101000000_init', '2025-01-01T00:00:00Z', '2025-01-01T00:00:01Z', 1);"
            ),
        );
        let pg_dump = self.pg.bin().join("pg_dump");
        let file = self.stable_dump.display().to_string();
        sh(
            &self.dir,
            &pg_dump.display().to_string(),
            &["--format=custom", "--file", &file, &self.database_url()],
        );
    }

    /// The app database's URL (a Unix socket in the cluster's folder).
    pub fn database_url(&self) -> String {
        self.pg.url("inmova")
    }

    /// The environment the runbooks run with: `PATH` (the sandbox's `yarn`, PostgreSQL's
    /// programs) and the runbooks' secrets.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = format!(
            "{}:{}:{}",
            self.bin.display(),
            self.pg.bin().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        vec![
            ("PATH".into(), path),
            ("DATABASE_URL".into(), self.database_url()),
            ("CRON_SECRET".into(), self.token.clone()),
            ("SLACK_WEBHOOK".into(), self.app.url("/hooks/slack")),
        ]
    }

    /// Parameters for one of the team's runbooks (`deploy`, `rollback-l1`...), pointing at
    /// the sandbox; `extra` adds or replaces some.
    pub fn params(&self, runbook: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut p: BTreeMap<String, String> = [
            ("environment", "sandbox".to_string()),
            ("repo_dir", self.repo.display().to_string()),
            ("app_dir", self.app_dir.display().to_string()),
            ("git_remote", "origin".to_string()),
            ("branch", "main".to_string()),
            ("base_url", format!("http://127.0.0.1:{}", self.app.port)),
            ("backup_dir", self.backups.display().to_string()),
            ("log_dir", self.logs.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        match runbook {
            "deploy" => {
                p.insert("version".into(), "v1.0.2".into());
                p.insert("release_notes".into(), "Archivar inmuebles".into());
                p.insert("latency_samples".into(), "5".into());
                p.insert("health_reports_version".into(), "true".into());
            }
            "rollback-l2" => {
                p.insert("commit".into(), self.commit("feat: archive properties"));
                p.insert("reversal_commit".into(), self.commit("fix: reversal migration"));
                p.insert("reversal_migration".into(), REVERSAL.into());
            }
            "rollback-l1" => {
                p.insert("commit".into(), self.commit("feat: new landing page"));
            }
            "rollback-l3" => {
                p.insert("stable_tag".into(), "v1.0.0-stable".into());
                p.insert("restore_file".into(), self.stable_dump.display().to_string());
            }
            _ => {}
        }
        match runbook {
            "rollback-l1" => {
                p.remove("app_dir");
            }
            "backup" => {
                p.retain(|k, _| k == "environment" || k == "backup_dir");
            }
            "drill" => {
                p.insert("production_backup".into(), self.stable_dump.display().to_string());
                p.insert("stable_tag".into(), "v1.0.0-stable".into());
            }
            _ => {}
        }
        for (k, v) in extra {
            p.insert((*k).to_string(), (*v).to_string());
        }
        p
    }

    /// The same, as a params file (TOML) for `--params-file`.
    pub fn params_toml(&self, runbook: &str, extra: &[(&str, &str)]) -> String {
        let mut out = String::new();
        // The runbooks' typed (non-string) parameters; a commit hash of digits stays a string.
        const TYPED: [&str; 4] =
            ["latency_samples", "max_latency_ms", "backup_database", "health_reports_version"];
        for (k, v) in self.params(runbook, extra) {
            if TYPED.contains(&k.as_str()) {
                out.push_str(&format!("{k} = {v}\n"));
            } else {
                out.push_str(&format!("{k} = {}\n", serde_json::Value::String(v)));
            }
        }
        out
    }

    /// Run SQL on the app database.
    pub fn psql(&self, sql: &str) -> String {
        self.pg.psql("inmova", sql)
    }

    /// A plain-text dump of the app database (schema and data), to compare states. The
    /// `\restrict` lines recent pg_dump versions add carry a random key; they are dropped.
    pub fn dump(&self) -> String {
        let pg_dump = self.pg.bin().join("pg_dump");
        let text = sh(&self.dir, &pg_dump.display().to_string(), &["--no-owner", &self.database_url()]);
        text.lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What the app reports as deployed (the tag on `origin/main`).
    pub fn deployed_version(&self) -> String {
        sh(&self.dir, "git", &["--git-dir", &self.origin.display().to_string(), "describe", "--tags", "main"])
    }

    /// The commit a ref of `origin` points at (`main`, `v1.0.0-stable^{commit}`).
    pub fn origin_commit(&self, reference: &str) -> String {
        sh(&self.dir, "git", &["--git-dir", &self.origin.display().to_string(), "rev-parse", reference])
    }

    /// Make `/api/health` fail (503) or recover.
    pub fn set_failing(&self, failing: bool) {
        if failing {
            write(&self.fail_flag, "");
        } else {
            let _ = std::fs::remove_file(&self.fail_flag);
        }
    }
}
