//! A pinned plan pins every byte a run reads (issue 11, promise 2): SQL scripts, CA files,
//! included runbooks and params files are digested in the plan; `run --plan` and `resume`
//! refuse when one changed. The class test derives the list of file fields from the JSON
//! Schema, so a new one fails here until the engine digests it.

use std::path::Path;

use crate::support::{Output, ok, root, run_in};

fn write(dir: &Path, file: &str, text: &str) {
    if let Some(parent) = dir.join(file).parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(dir.join(file), text).expect("write");
}

fn cmd(dir: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--state", "state.db"]);
    run_in(dir, &all)
}

const SQL_RUNBOOK: &str = r#"[runbook]
name = "migrate"

[steps.migrate]
sql = { url = "sqlite:app.db?mode=rwc", file = "migrate.sql" }
"#;

#[test]
fn regression_pinned_plan_refuses_an_edited_sql_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "r.toml", SQL_RUNBOOK);
    write(d, "migrate.sql", "CREATE TABLE reviewed (id INTEGER);\n");
    let out = run_in(d, &["plan", "r.toml", "-o", "plan.json"]);
    ok(&out, 0);
    // The reviewer sees the script and its digest.
    assert!(out.stdout.contains("CREATE TABLE reviewed"), "{}", out.stdout);
    assert!(out.stdout.contains("migrate.sql"), "{}", out.stdout);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("plan.json")).expect("plan")).expect("json");
    assert_eq!(plan["reads"][0]["kind"], "sql-script", "{plan}");
    assert_eq!(plan["reads"][0]["path"], "migrate.sql", "{plan}");
    let md = run_in(d, &["plan", "r.toml", "--format", "markdown"]);
    assert!(
        md.stdout.contains("CREATE TABLE reviewed") && md.stdout.contains("migrate.sql"),
        "{}",
        md.stdout
    );

    write(d, "migrate.sql", "CREATE TABLE attacker (id INTEGER);\n");
    let out = cmd(d, &["run", "--plan", "plan.json", "--yes"]);
    ok(&out, 3);
    assert!(out.stderr.contains("`migrate.sql` changed since it was planned"), "{}", out.stderr);
    // Nothing ran: the database was never created, let alone given the new table.
    assert!(!d.join("app.db").exists(), "the edited script ran");

    // Put back as reviewed: it runs.
    write(d, "migrate.sql", "CREATE TABLE reviewed (id INTEGER);\n");
    ok(&cmd(d, &["run", "--plan", "plan.json", "--yes"]), 0);
}

#[test]
fn regression_resume_refuses_an_edited_sql_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "r.toml",
        r#"[runbook]
name = "migrate"

[steps.gate]
run = "test -e go"
on-failure = "stop"

[steps.migrate]
needs = ["gate"]
sql = { url = "sqlite:app.db?mode=rwc", file = "migrate.sql" }
"#,
    );
    write(d, "migrate.sql", "CREATE TABLE reviewed (id INTEGER);\n");
    let out = cmd(d, &["run", "r.toml", "--yes"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    let run_id = crate::support::latest_run_id(d, &d.join("state.db")).expect("a run");
    write(d, "go", "");
    write(d, "migrate.sql", "CREATE TABLE attacker (id INTEGER);\n");
    let out = cmd(d, &["resume", &run_id, "--yes"]);
    ok(&out, 3);
    assert!(out.stderr.contains("`migrate.sql` changed"), "{}", out.stderr);
    assert!(!d.join("app.db").exists(), "the edited script ran");
}

/// One way a runbook names a file, and how to edit that file.
struct Case {
    /// The schema definition and property, as `RawSql.file`.
    field: &'static str,
    /// The runbook (and, for includes, more files) that uses the field.
    files: &'static [(&'static str, &'static str)],
    /// The file to edit after planning.
    edit: &'static str,
}

const CASES: &[Case] = &[
    Case {
        field: "RawSql.file",
        files: &[("r.toml", SQL_RUNBOOK), ("migrate.sql", "SELECT 1;\n")],
        edit: "migrate.sql",
    },
    Case {
        field: "RawHttp.ca-file",
        files: &[
            (
                "r.toml",
                "[runbook]\nname = \"h\"\n[steps.probe]\nhttp = { url = \"https://127.0.0.1:9/\", ca-file = \"certs/ca.pem\" }\n",
            ),
            ("certs/ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ],
        edit: "certs/ca.pem",
    },
    Case {
        field: "RawInclude.file",
        files: &[
            ("r.toml", "[runbook]\nname = \"p\"\n[steps.child]\nrunbook = { file = \"lib/child.toml\" }\n"),
            ("lib/child.toml", "[runbook]\nname = \"c\"\n[steps.one]\nrun = \"true\"\n"),
        ],
        edit: "lib/child.toml",
    },
];

/// File fields whose content is deliberately not digested, and why.
const NOT_DIGESTED: &[(&str, &str)] = &[(
    "RawSecret.file",
    "a secret's value is read at run start and never reaches a plan, in any encoding (a digest of a short secret can be reversed by guessing)",
)];

/// Every property of the schema that names a file: `file`, or a name ending in `-file`.
fn schema_file_fields() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("schemas/runbook.schema.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut out = Vec::new();
    for (name, def) in schema["definitions"].as_object().expect("definitions") {
        for key in def["properties"].as_object().map(|p| p.keys().collect::<Vec<_>>()).unwrap_or_default() {
            if key == "file" || key.ends_with("-file") || key.ends_with("_file") {
                out.push(format!("{name}.{key}"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn class_every_file_field_is_digested_in_the_pinned_plan() {
    let fields = schema_file_fields();
    assert!(fields.len() >= 4, "the schema names files: {fields:?}");
    for field in &fields {
        let handled = CASES.iter().any(|c| c.field == field) || NOT_DIGESTED.iter().any(|(f, _)| f == field);
        assert!(
            handled,
            "`{field}` names a file that no test pins: digest it in the plan (Runbook::reads) and add a case here"
        );
    }
    for case in CASES {
        assert!(fields.iter().any(|f| f == case.field), "{} is not in the schema any more", case.field);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for (file, text) in case.files {
            write(d, file, text);
        }
        let out = run_in(d, &["plan", "r.toml", "-o", "plan.json"]);
        ok(&out, 0);
        assert!(
            out.stdout.contains(case.edit),
            "{}: the plan shows {}:\n{}",
            case.field,
            case.edit,
            out.stdout
        );
        // Several kinds of edit: appended bytes, one changed byte, an emptied file.
        let original = std::fs::read(d.join(case.edit)).expect("read");
        let mut flipped = original.clone();
        if let Some(b) = flipped.first_mut() {
            *b ^= 1;
        }
        let mut appended = original.clone();
        appended.extend_from_slice(b"\n# edited\n");
        for edited in [appended, flipped, Vec::new()] {
            std::fs::write(d.join(case.edit), &edited).expect("edit");
            let out = cmd(d, &["run", "--plan", "plan.json", "--yes"]);
            ok(&out, 3);
            assert!(
                out.stderr.contains(&format!("`{}` changed since it was planned", case.edit)),
                "{}: {}",
                case.field,
                out.stderr
            );
            assert!(out.stdout.is_empty() || !out.stdout.contains("run "), "{}: a run started", case.field);
        }
        std::fs::write(d.join(case.edit), &original).expect("restore");
    }
}

#[test]
fn regression_pinned_plan_refuses_an_edited_params_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "r.toml",
        "[runbook]\nname = \"p\"\n[params.who]\ntype = \"string\"\n[steps.hello]\nrun = \"echo {{ params.who }} > out\"\n",
    );
    write(d, "p.toml", "who = \"alice\"\n");
    let out = run_in(d, &["plan", "r.toml", "--params-file", "p.toml", "-o", "plan.json"]);
    ok(&out, 0);
    assert!(out.stdout.contains("p.toml"), "{}", out.stdout);
    write(d, "p.toml", "who = \"mallory\"\n");
    let out = cmd(d, &["run", "--plan", "plan.json", "--yes"]);
    ok(&out, 3);
    assert!(out.stderr.contains("`p.toml` changed since it was planned"), "{}", out.stderr);
    assert!(!d.join("out").exists());
}

/// The digest is checked again when the step reads the file: a script edited while the run
/// is under way (here by an earlier step; in life by anyone, while the run waits for an
/// approval) is refused, and the database never sees it.
#[test]
fn regression_a_script_edited_during_the_run_is_refused_when_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "r.toml",
        r#"[runbook]
name = "migrate"

[steps.meddle]
run = "echo 'CREATE TABLE attacker (id INTEGER);' > db/migrate.sql"

[steps.migrate]
needs = ["meddle"]
dir = "db"
sql = { url = "sqlite:app.db?mode=rwc", file = "migrate.sql" }
"#,
    );
    write(d, "db/migrate.sql", "CREATE TABLE reviewed (id INTEGER);\n");
    // The script is resolved from the step's `dir`, as the executor reads it.
    let out = run_in(d, &["plan", "r.toml", "-o", "plan.json"]);
    ok(&out, 0);
    assert!(
        out.stdout.contains("db/migrate.sql") && out.stdout.contains("CREATE TABLE reviewed"),
        "{}",
        out.stdout
    );
    for args in [&["run", "--plan", "plan.json", "--yes"][..], &["run", "r.toml", "--yes"]] {
        write(d, "db/migrate.sql", "CREATE TABLE reviewed (id INTEGER);\n");
        let out = cmd(d, args);
        assert_ne!(out.code, 0, "{args:?}: the edited script ran\n{}", out.stdout);
        let logs = format!("{}{}", out.stdout, out.stderr);
        assert!(logs.contains("changed since the run started"), "{args:?}: {logs}");
        assert!(!d.join("db/app.db").exists(), "{args:?}: the database was opened");
    }
}

/// The script a reviewer reads cannot hide lines from the terminal: control characters are
/// shown as escapes (the plan JSON keeps the exact text, and the digest covers it).
#[test]
fn a_script_shown_in_a_plan_cannot_hide_lines_with_escape_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "r.toml", SQL_RUNBOOK);
    write(d, "migrate.sql", "SELECT 1;\nDROP TABLE users; -- \u{1b}[2K\u{1b}[1A\rSELECT 2;\n");
    for format in ["text", "markdown"] {
        let out = run_in(d, &["plan", "r.toml", "--format", format]);
        ok(&out, 0);
        assert!(!out.stdout.contains('\u{1b}') && !out.stdout.contains('\r'), "{format}: {:?}", out.stdout);
        assert!(out.stdout.contains("DROP TABLE users; -- \\u{1b}[2K"), "{format}: {}", out.stdout);
    }
}

/// A script swapped back and forth while `run --plan` starts: what runs is the reviewed
/// script or nothing. (The step once compared the script with a digest taken a moment
/// after the plan was checked, not with the plan's own: a swap in between pinned the
/// unreviewed script.)
#[test]
fn regression_a_script_swapped_while_a_pinned_run_starts_never_runs_unreviewed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let db = d.join("x.db");
    write(
        d,
        "r.toml",
        &format!(
            "[runbook]\nname = \"swap\"\n[steps.s]\nsql = {{ url = \"sqlite:{}?mode=rwc\", file = \"x.sql\" }}\n",
            db.display()
        ),
    );
    write(d, "good.sql", "CREATE TABLE IF NOT EXISTS good(a int);\n");
    write(d, "evil.sql", "CREATE TABLE IF NOT EXISTS evil(a int);\n");
    std::fs::copy(d.join("good.sql"), d.join("x.sql")).expect("script");
    ok(&run_in(d, &["plan", "r.toml", "-o", "plan.json"]), 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, d) = (stop.clone(), d.to_path_buf());
        std::thread::spawn(move || {
            let mut evil = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                evil = !evil;
                let from = if evil { "evil.sql" } else { "good.sql" };
                let _ = std::fs::copy(d.join(from), d.join("x.sql.new"));
                let _ = std::fs::rename(d.join("x.sql.new"), d.join("x.sql"));
            }
        })
    };
    let trials: usize = std::env::var("RUNBOOK_SWAP_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    for _ in 0..trials {
        let _ = cmd(d, &["run", "--plan", "plan.json", "--yes"]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().expect("swapper");
    let tables = std::fs::read(&db).unwrap_or_default();
    assert!(
        !tables.windows(b"CREATE TABLE evil".len()).any(|w| w == b"CREATE TABLE evil"),
        "an unreviewed script ran"
    );
}
