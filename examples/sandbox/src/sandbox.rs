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

/// Which environment to build. Both are the same product (a Next.js + Prisma + PostgreSQL
/// app deployed from `origin/main`), built independently, so that the team's runbooks are
/// proven not to know one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The first sandbox: database `inmova` over a Unix socket as the superuser, tables
    /// `"User"` and `"Property"`, migration folders named with 14 digits, the app under
    /// `nextjs_space/`, environment `sandbox`.
    Inmova,
    /// A second environment built differently: database `shop` over TCP on 127.0.0.1 as a
    /// role that is not superuser and has a password (in the URL, percent-encoded, with
    /// Prisma's `?schema=public&connection_limit=5`); tables `customers` and `orders` (with
    /// legitimate zero amounts), then a later migration that added `payments` (a foreign key
    /// to `orders`) and a view `order_totals`; migration folders named `20241101_init`; the
    /// app under `services/web/`; environment `staging`. Its stable dump predates `payments`
    /// and the view: restoring it is restoring over a changed schema.
    Shop,
}

impl Shape {
    /// Every shape, for tests that run against each.
    pub const ALL: [Shape; 2] = [Shape::Inmova, Shape::Shop];

    /// What an environment of this shape has that the other does not.
    pub fn spec(self) -> &'static Spec {
        match self {
            Shape::Inmova => &INMOVA,
            Shape::Shop => &SHOP,
        }
    }
}

/// What differs between the shapes, for tests that run against both.
#[derive(Debug)]
pub struct Spec {
    /// The runbooks' `environment` parameter.
    pub environment: &'static str,
    /// The app database's name.
    pub database: &'static str,
    /// The app's folder inside the clone.
    pub app_subdir: &'static str,
    /// The stable tag a level-3 rollback returns to (its dump is `stable_dump`).
    pub stable_tag: &'static str,
    /// The tag deployed now (`git describe --tags main` of origin, before any run).
    pub deployed_tag: &'static str,
    /// A release before the deployed one, for rollback-l1's tag mode.
    pub previous_tag: &'static str,
    /// The version `deploy` publishes.
    pub next_version: &'static str,
    /// Migrations applied in the database now, in order.
    pub applied: &'static [&'static str],
    /// The migration `deploy` applies.
    pub next_migration: &'static str,
    /// `(table, column)` that migration adds.
    pub next_column: (&'static str, &'static str),
    /// The reviewed reversal migration of `next_migration` (rollback-l2).
    pub reversal: &'static str,
    /// Subject of the deployed, frontend-only commit rollback-l1 reverts.
    pub frontend_commit: &'static str,
    /// The file that commit changed (relative to the app folder), and a text only the
    /// version before it holds.
    pub frontend_file: (&'static str, &'static str),
    /// Subject of the unreleased commit with `next_migration`.
    pub release_commit: &'static str,
    /// Subject of the commit holding the reversal migration.
    pub reversal_commit: &'static str,
    /// Tables of the app (schema `public`), in the stable dump.
    pub tables: &'static [&'static str],
    /// Objects that exist in the live database but not in the stable dump.
    pub later_objects: &'static [&'static str],
    /// SQL that damages data the way an incident would (what a level-3 rollback is for).
    pub corrupt: &'static str,
    /// SQL that writes one new row, as the app does during an incident; `{marker}` is
    /// replaced by a text to look for later.
    pub write_row: &'static str,
}

const INMOVA: Spec = Spec {
    environment: "sandbox",
    database: "inmova",
    app_subdir: "nextjs_space",
    stable_tag: "v1.0.0-stable",
    deployed_tag: "v1.0.1",
    previous_tag: "v1.0.0",
    next_version: "v1.0.2",
    applied: &["20250101000000_init"],
    next_migration: "20250301000000_property_archived_at",
    next_column: ("Property", "archived_at"),
    reversal: REVERSAL,
    frontend_commit: "feat: new landing page",
    frontend_file: ("app/page.tsx", "<h1>Inmova</h1>"),
    release_commit: "feat: archive properties",
    reversal_commit: "fix: reversal migration",
    tables: &["User", "Property", "_prisma_migrations"],
    later_objects: &[],
    corrupt: r#"DELETE FROM "Property" WHERE id > 2; UPDATE "User" SET email = 'lost@example.invalid' WHERE id = 1"#,
    write_row: r#"INSERT INTO "Property" (owner_id, title, price) VALUES (2, '{marker}', 1.00)"#,
};

const SHOP: Spec = Spec {
    environment: "staging",
    database: "shop",
    app_subdir: "services/web",
    stable_tag: "v2.3.0-stable",
    deployed_tag: "v2.4.1",
    previous_tag: "v2.4.0",
    next_version: "v2.5.0",
    applied: &["20241101_init", "20250210_payments"],
    next_migration: "20250301_order_notes",
    next_column: ("orders", "notes"),
    reversal: "20250315_rollback_order_notes",
    frontend_commit: "feat: new checkout button",
    frontend_file: ("app/checkout.tsx", "Pagar"),
    release_commit: "feat: order notes",
    reversal_commit: "fix: reversal migration for order notes",
    tables: &["customers", "orders", "_prisma_migrations"],
    later_objects: &["payments", "order_totals"],
    corrupt: "DELETE FROM payments WHERE order_id > 3; DELETE FROM orders WHERE id > 3; UPDATE customers SET email = 'lost@example.invalid' WHERE id = 1",
    write_row: "INSERT INTO orders (customer_id, amount, note_for_tests) VALUES (2, 0.00, '{marker}')",
};

/// The second environment's schema at v2.3.0. `note_for_tests` lets tests mark a row.
const SHOP_INIT: &str = r#"CREATE TABLE customers (
    id SERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL
);
CREATE TABLE orders (
    id SERIAL PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    amount NUMERIC(10, 2) NOT NULL CHECK (amount >= 0),
    placed_at TIMESTAMPTZ NOT NULL DEFAULT '2024-11-01T00:00:00Z',
    note_for_tests TEXT
);
"#;

/// Free samples are real orders of amount zero.
const SHOP_DATA: &str = r#"INSERT INTO customers (email, full_name) VALUES
    ('alice@shop.test', 'Alice Moreau'), ('bruno@shop.test', 'Bruno Costa'),
    ('chen@shop.test', 'Chen Wei'), ('dana@shop.test', 'Dana Levi');
INSERT INTO orders (customer_id, amount) VALUES
    (1, 49.90), (1, 0.00), (2, 120.00), (3, 0.00), (4, 15.50), (2, 300.00);
"#;

/// v2.4.0's migration: a table that references `orders`, and a view over both.
const SHOP_PAYMENTS: &str = r#"CREATE TABLE payments (
    id SERIAL PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    paid NUMERIC(10, 2) NOT NULL
);
CREATE VIEW order_totals AS
    SELECT o.id, o.amount, coalesce(sum(p.paid), 0) AS paid
    FROM orders o LEFT JOIN payments p ON p.order_id = o.id GROUP BY o.id;
"#;

const SHOP_PAYMENTS_DATA: &str =
    "INSERT INTO payments (order_id, paid) VALUES (1, 49.90), (3, 120.00), (6, 150.00);\n";

const SHOP_NOTES: &str = "ALTER TABLE orders ADD COLUMN notes TEXT;\n";
const SHOP_NOTES_REVERSAL: &str = "ALTER TABLE orders DROP COLUMN notes;\n";

/// The second environment's role: owns its database, is not superuser, has a password with
/// characters a URL must percent-encode.
const SHOP_ROLE: &str = "shop_owner";
const SHOP_PASSWORD: &str = "Sh0p/s3cr3t+pw@9";
const SHOP_PASSWORD_URL: &str = "Sh0p%2Fs3cr3t%2Bpw%409";

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
    /// Which environment this is.
    pub shape: Shape,
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
    /// Build and start the first sandbox ([`Shape::Inmova`]) in `dir` (an empty folder).
    pub fn start(dir: &Path) -> Sandbox {
        Sandbox::start_shaped(dir, Shape::Inmova)
    }

    /// Build and start an environment of `shape` in `dir` (an empty folder).
    pub fn start_shaped(dir: &Path, shape: Shape) -> Sandbox {
        let dir = std::path::absolute(dir).expect("absolute sandbox folder");
        let pg = match shape {
            Shape::Inmova => Postgres::start(),
            Shape::Shop => Postgres::start_tcp(),
        };
        let app = HttpPeer::start();
        let spec = shape.spec();
        let sb = Sandbox {
            shape,
            token: format!("sandbox-cron-{}", app.port),
            origin: dir.join("origin.git"),
            repo: dir.join("repo"),
            app_dir: dir.join("repo").join(spec.app_subdir),
            backups: dir.join("backups"),
            logs: dir.join("logs"),
            bin: dir.join("bin"),
            fail_flag: dir.join("app-fail"),
            stable_dump: dir.join(format!("backups/{}-{}.dump", spec.environment, spec.stable_tag)),
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
        match shape {
            Shape::Inmova => {
                sb.git();
                sb.database();
            }
            Shape::Shop => {
                sb.git_shop();
                sb.database_shop();
            }
        }
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
        self.init_repos("Inmova Dev", "dev@inmova.test", "inmova", "1.0.0");
        let app = &self.app_dir;
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

    /// The bare `origin`, a clone wired to it, and the app's skeleton (package.json,
    /// yarn.lock, schema.prisma) in the app folder.
    fn init_repos(&self, name: &str, email: &str, package: &str, version: &str) {
        let repo = &self.repo;
        sh(&self.dir, "git", &["init", "--quiet", "--bare", "--initial-branch=main", "origin.git"]);
        sh(&self.dir, "git", &["init", "--quiet", "--initial-branch=main", "repo"]);
        sh(repo, "git", &["config", "user.name", name]);
        sh(repo, "git", &["config", "user.email", email]);
        sh(repo, "git", &["remote", "add", "origin", &self.origin.display().to_string()]);
        let app = &self.app_dir;
        write(
            &app.join("package.json"),
            &format!(
                "{{\n  \"name\": \"{package}\",\n  \"private\": true,\n  \"version\": \"{version}\"\n}}\n"
            ),
        );
        write(&app.join("yarn.lock"), "# yarn lockfile v1\n");
        write(
            &app.join("prisma/schema.prisma"),
            "datasource db {\n  provider = \"postgresql\"\n  url      = env(\"DATABASE_URL\")\n}\n",
        );
    }

    /// The second environment's history: v2.3.0 (= v2.3.0-stable: customers and orders),
    /// v2.4.0 (payments and a view), v2.4.1 (frontend only, deployed now), and one commit on
    /// `main` with a migration, not released yet; the reviewed reversal of that migration on
    /// a branch. Migration folders are named `YYYYMMDD_name`, as a team that renamed Prisma's
    /// folders by hand would have them.
    fn git_shop(&self) {
        let repo = &self.repo;
        let app = &self.app_dir;
        let migration =
            |name: &str, sql: &str| write(&app.join(format!("prisma/migrations/{name}/migration.sql")), sql);
        self.init_repos("Shop Dev", "dev@shop.test", "shop-web", "2.3.0");
        write(&repo.join("README.md"), "# Shop monorepo\n\nThe web app lives in services/web.\n");
        write(&repo.join("services/worker/main.py"), "print('worker')\n");
        migration("20241101_init", SHOP_INIT);
        write(
            &app.join("app/checkout.tsx"),
            "export function Checkout() { return <button>Pagar</button>; }\n",
        );
        sh(repo, "git", &["add", "-A"]);
        sh(repo, "git", &["commit", "--quiet", "-m", "feat: shop with customers and orders"]);
        sh(repo, "git", &["tag", "-a", "v2.3.0", "-m", "Release v2.3.0"]);
        sh(repo, "git", &["tag", "-a", "v2.3.0-stable", "-m", "Stable: v2.3.0"]);
        migration("20250210_payments", SHOP_PAYMENTS);
        write(&app.join("app/payments.tsx"), "export function Payments() { return null; }\n");
        sh(repo, "git", &["add", "-A"]);
        sh(repo, "git", &["commit", "--quiet", "-m", "feat: payments"]);
        sh(repo, "git", &["tag", "-a", "v2.4.0", "-m", "Release v2.4.0: payments"]);
        write(
            &app.join("app/checkout.tsx"),
            "export function Checkout() { return <button>Comprar ahora</button>; }\n",
        );
        sh(repo, "git", &["commit", "--quiet", "-am", "feat: new checkout button"]);
        sh(repo, "git", &["tag", "-a", "v2.4.1", "-m", "Release v2.4.1: new checkout button"]);
        sh(repo, "git", &["push", "--quiet", "origin", "main", "--tags"]);
        migration("20250301_order_notes", SHOP_NOTES);
        write(&app.join("app/notes.tsx"), "export function Notes() { return null; }\n");
        sh(repo, "git", &["add", "-A"]);
        sh(repo, "git", &["commit", "--quiet", "-m", "feat: order notes"]);
        sh(repo, "git", &["push", "--quiet", "origin", "main"]);
        sh(repo, "git", &["checkout", "--quiet", "-b", "fix/rollback-notes"]);
        migration(SHOP.reversal, SHOP_NOTES_REVERSAL);
        sh(repo, "git", &["add", "-A"]);
        sh(repo, "git", &["commit", "--quiet", "-m", "fix: reversal migration for order notes"]);
        sh(repo, "git", &["push", "--quiet", "origin", "fix/rollback-notes"]);
        sh(repo, "git", &["checkout", "--quiet", "main"]);
    }

    /// The database `shop`, owned by a role that is not superuser: v2.3.0's schema and
    /// data, the stable dump taken then (by that role), then v2.4.0's migration (payments,
    /// the view) and its data. Each migration is recorded in `_prisma_migrations` as Prisma
    /// would, with the checksum of its file.
    fn database_shop(&self) {
        // On psql's standard input: the password is what tests look for in process lists.
        self.pg
            .psql_secret("postgres", &format!("CREATE ROLE {SHOP_ROLE} LOGIN PASSWORD '{SHOP_PASSWORD}';"));
        self.pg.psql("postgres", &format!("CREATE DATABASE shop OWNER {SHOP_ROLE}"));
        let record = |name: &str, n: u32| {
            let file = format!("prisma/migrations/{name}/migration.sql");
            let checksum = sh(&self.app_dir, "sha256sum", &[&file]);
            let checksum = checksum.split_whitespace().next().unwrap_or_default().to_string();
            format!(
                "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count) VALUES ('7a3c0000-0000-4000-8000-00000000000{n}', '{checksum}', '{name}', now(), now(), 1);"
            )
        };
        let as_owner = |sql: &str| self.pg.psql("shop", &format!("SET ROLE {SHOP_ROLE};\n{sql}"));
        as_owner(&format!("{SHOP_INIT}{PRISMA_MIGRATIONS}{SHOP_DATA}{}", record("20241101_init", 1)));
        let pg_dump = self.pg.bin().join("pg_dump");
        let file = self.stable_dump.display().to_string();
        let owner_url = self.pg.url("shop").replacen("postgres@", &format!("{SHOP_ROLE}@"), 1);
        sh(&self.dir, &pg_dump.display().to_string(), &["--format=custom", "--file", &file, &owner_url]);
        as_owner(&format!("{SHOP_PAYMENTS}{SHOP_PAYMENTS_DATA}{}", record("20250210_payments", 2)));
    }

    /// What differs between this environment and the other one.
    pub fn spec(&self) -> &'static Spec {
        self.shape.spec()
    }

    /// The database password the runbooks receive in `DATABASE_URL` (plain, as the server
    /// knows it), when the environment has one: a test looks for it where it must not be.
    pub fn db_password(&self) -> Option<&'static str> {
        match self.shape {
            Shape::Inmova => None,
            Shape::Shop => Some(SHOP_PASSWORD),
        }
    }

    /// Damage the data the way an incident would ([`Spec::corrupt`]).
    pub fn corrupt(&self) {
        self.psql(self.spec().corrupt);
    }

    /// Write one new row carrying `marker`, as the live app would ([`Spec::write_row`]).
    pub fn write_row(&self, marker: &str) {
        self.psql(&self.spec().write_row.replace("{marker}", marker));
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
        match self.shape {
            Shape::Inmova => self.pg.url("inmova"),
            Shape::Shop => format!(
                "postgresql://{SHOP_ROLE}:{SHOP_PASSWORD_URL}@127.0.0.1:{}/shop?schema=public&connection_limit=5",
                self.pg.port().unwrap_or_default()
            ),
        }
    }

    /// A URL for the tests' own inspection: the superuser over the cluster's socket.
    pub fn admin_url(&self) -> String {
        self.pg.url(self.spec().database)
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
            ("environment", self.spec().environment.to_string()),
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
                p.insert("version".into(), self.spec().next_version.into());
                p.insert("release_notes".into(), "Archivar inmuebles".into());
                p.insert("latency_samples".into(), "5".into());
                p.insert("health_reports_version".into(), "true".into());
            }
            "rollback-l2" => {
                p.insert("commit".into(), self.commit(self.spec().release_commit));
                p.insert("reversal_commit".into(), self.commit(self.spec().reversal_commit));
                p.insert("reversal_migration".into(), self.spec().reversal.into());
            }
            "rollback-l1" => {
                p.insert("commit".into(), self.commit(self.spec().frontend_commit));
            }
            "rollback-l3" => {
                p.insert("stable_tag".into(), self.spec().stable_tag.into());
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
                p.insert("stable_tag".into(), self.spec().stable_tag.into());
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
        self.pg.psql(self.spec().database, sql)
    }

    /// A plain-text dump of the app database (schema and data), to compare states. The
    /// `\restrict` lines recent pg_dump versions add carry a random key; they are dropped.
    pub fn dump(&self) -> String {
        let pg_dump = self.pg.bin().join("pg_dump");
        let text = sh(&self.dir, &pg_dump.display().to_string(), &["--no-owner", &self.admin_url()]);
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
