//! Which files a runbook may read as content, and which a secret's file may be (red team
//! adv15c, findings 5 and 4 and M1): a `sql.file` script or an `http.ca-file` lives in the
//! folder of the runbook named on the command line, as included runbooks do (RB066); a
//! secret's file is the same file as a script through a hard link too (RB056); a secret's
//! `file` is never rendered, so template markup in it is refused (RB033).

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::support::{Output, run_in};

/// What the file outside the runbooks' folder holds: it must never be printed.
const TOKEN: &str = "ghs_0utS1deT0ken-7c1e";
/// What the secret's file holds.
const SECRET: &str = "S3cretPW-hunter2";
/// What the script inside the folder holds: it is quoted.
const INSIDE: &str = "SELECT 'inside-ok'";

fn write(p: &Path, name: &str, text: &str) {
    let path = p.join(name);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn head() -> &'static str {
    "[runbook]\nname = \"t\"\ntitle = \"t\"\n\n"
}

fn sql_step(file: &str, dir: Option<&str>) -> String {
    let dir = dir.map(|d| format!("dir = \"{d}\"\n")).unwrap_or_default();
    format!(
        "[steps.a]\n{dir}sql = {{ url = \"postgres://ro@127.0.0.1:1/app\", file = \"{file}\", read-only = true }}\n"
    )
}

fn ca_step(file: &str) -> String {
    format!("[steps.a]\nhttp = {{ url = \"https://127.0.0.1:1/\", ca-file = \"{file}\" }}\n")
}

/// A folder `t/` with `outside.txt` (the token) next to the runbooks' folder `t/rb/`, which
/// holds `ok.sql`, `sub/ok.sql` and the links the corpus needs.
fn layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "outside.txt", &format!("[http]\nextraheader = AUTHORIZATION: basic {TOKEN}\n"));
    write(d, ".git/config", &format!("[http]\nextraheader = AUTHORIZATION: basic {TOKEN}\n"));
    write(d, "rb/ok.sql", &format!("{INSIDE};\n"));
    write(d, "rb/sub/ok.sql", &format!("{INSIDE};\n"));
    symlink("..", d.join("rb/up")).expect("symlink");
    symlink("l2", d.join("rb/l1")).expect("symlink");
    symlink("../outside.txt", d.join("rb/l2")).expect("symlink");
    symlink("ok.sql", d.join("rb/inlink.sql")).expect("symlink");
    symlink("sub", d.join("rb/subdir")).expect("symlink");
    symlink(d, d.join("rb/top")).expect("symlink");
    nix::unistd::mkfifo(&d.join("rb/fifo.sql"), nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("mkfifo");
    dir
}

fn shows(out: &Output, what: &str) -> bool {
    out.stdout.contains(what) || out.stderr.contains(what)
}

/// The spellings that leave the folder `rb/` (or name a special file), for a `sql.file`
/// (`dir` too) and a `ca-file`, from the runbook `rb/rb.toml`.
fn escaping(d: &Path) -> Vec<(String, String)> {
    let abs = d.join("outside.txt").to_string_lossy().into_owned();
    let mut out = Vec::new();
    for f in [
        "../outside.txt",
        "../.git/config",
        abs.as_str(),
        "/etc/passwd",
        "a/../../outside.txt",
        "./sub/../../outside.txt",
        "up/outside.txt",
        "l1",
        "top/outside.txt",
        "top/rb/../outside.txt",
        "up/not-yet-there.sql",
        "/proc/self/environ",
        "/dev/zero",
        "fifo.sql",
        "sub",
    ] {
        out.push((format!("sql.file {f}"), format!("{}{}", head(), sql_step(f, None))));
        out.push((format!("ca-file {f}"), format!("{}{}", head(), ca_step(f))));
    }
    out.push(("sql.file from dir ..".into(), format!("{}{}", head(), sql_step("outside.txt", Some("..")))));
    out.push(("sql.file from dir /etc".into(), format!("{}{}", head(), sql_step("passwd", Some("/etc")))));
    out.push((
        "a compensation's script".into(),
        format!(
            "{}[steps.a]\nrun = \"true\"\ncompensate = {{ sql = {{ url = \"postgres://ro@127.0.0.1:1/app\", file = \"../outside.txt\" }} }}\n",
            head()
        ),
    ));
    out.push((
        "a precondition's script".into(),
        format!(
            "{}[preconditions.p]\nsql = {{ url = \"postgres://ro@127.0.0.1:1/app\", file = \"../outside.txt\" }}\n\n[steps.a]\nrun = \"true\"\n",
            head()
        ),
    ));
    out
}

/// Paths that stay in `rb/`: allowed, and the script is quoted as before.
fn inside(d: &Path) -> Vec<(String, String)> {
    let abs = d.join("rb/ok.sql").to_string_lossy().into_owned();
    let mut out = Vec::new();
    for f in
        ["ok.sql", "./ok.sql", "sub/ok.sql", "sub/../ok.sql", "inlink.sql", "subdir/ok.sql", abs.as_str()]
    {
        out.push((format!("sql.file {f}"), format!("{}{}", head(), sql_step(f, None))));
    }
    out.push(("sql.file from dir sub".into(), format!("{}{}", head(), sql_step("ok.sql", Some("sub")))));
    out.push((
        "sql.file from dir sub, ..".into(),
        format!("{}{}", head(), sql_step("../ok.sql", Some("sub"))),
    ));
    out
}

/// F5: a script or CA file outside the runbook's folder is refused by `check` with RB066 at
/// its `file:line:col`, and no plan format prints it. Failed before: `check` passed and
/// every plan quoted `../.git/config`.
#[test]
fn a_file_read_as_content_outside_the_runbooks_folder_is_refused() {
    let dir = layout();
    let d = dir.path();
    for (what, text) in escaping(d) {
        write(d, "rb/rb.toml", &text);
        // From the runbooks' folder and from above it: paths resolve from the runbook.
        for (cwd, file) in [(d.join("rb"), "rb.toml"), (d.to_path_buf(), "rb/rb.toml")] {
            let out = run_in(&cwd, &["check", file]);
            assert_eq!(out.code, 3, "{what}: check passed\n{}{}", out.stdout, out.stderr);
            assert!(out.stderr.contains("error[RB066]"), "{what}: {}", out.stderr);
            assert!(out.stderr.contains(&format!("{file}:")), "{what}: no file:line:col: {}", out.stderr);
            assert!(!shows(&out, TOKEN), "{what}: the file was printed: {}", out.stderr);
        }
        for fmt in ["text", "markdown", "html", "json"] {
            let out = run_in(d, &["plan", "rb/rb.toml", "--format", fmt]);
            assert_ne!(out.code, 0, "{what}: plan --format {fmt} made a plan:\n{}", out.stdout);
            assert!(out.stderr.contains("RB066"), "{what} ({fmt}): {}", out.stderr);
            assert!(!shows(&out, TOKEN), "{what}: plan --format {fmt} printed the file");
        }
    }
}

#[test]
fn a_file_read_as_content_inside_the_runbooks_folder_is_quoted_as_before() {
    let dir = layout();
    let d = dir.path();
    for (what, text) in inside(d) {
        write(d, "rb/rb.toml", &text);
        let out = run_in(d, &["check", "rb/rb.toml"]);
        assert_eq!(out.code, 0, "{what}: {}", out.stderr);
        let out = run_in(d, &["plan", "rb/rb.toml", "--format", "markdown"]);
        assert_eq!(out.code, 0, "{what}: {}", out.stderr);
        assert!(out.stdout.contains(INSIDE), "{what}: the script is not quoted:\n{}", out.stdout);
    }
    // A CA file in the folder is digested, as before.
    write(d, "rb/rb.toml", &format!("{}{}", head(), ca_step("sub/ok.sql")));
    let out = run_in(d, &["check", "rb/rb.toml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// An included runbook's script resolves from the included file's folder, and is confined
/// to the folder of the runbook named on the command line: `inc/child.toml` may read
/// `../ok.sql` (in `rb/`), not `../../outside.txt`.
#[test]
fn an_included_runbooks_script_is_confined_to_the_including_runbooks_folder() {
    let dir = layout();
    let d = dir.path();
    let parent = format!("{}[steps.inc]\nrunbook = {{ file = \"inc/child.toml\" }}\n", head());
    write(d, "rb/rb.toml", &parent);
    for (file, allowed) in [("../ok.sql", true), ("../../outside.txt", false), ("../up/outside.txt", false)] {
        write(d, "rb/inc/child.toml", &format!("[runbook]\nname = \"child\"\n\n{}", sql_step(file, None)));
        let out = run_in(d, &["check", "rb/rb.toml"]);
        if allowed {
            assert_eq!(out.code, 0, "{file}: {}", out.stderr);
        } else {
            assert_eq!(out.code, 3, "{file}: {}", out.stderr);
            assert!(out.stderr.contains("rb/inc/child.toml:"), "{file}: {}", out.stderr);
            assert!(out.stderr.contains("error[RB066]"), "{file}: {}", out.stderr);
            assert!(!shows(&out, TOKEN), "{file}: {}", out.stderr);
        }
    }
    // The included runbook checked on its own has its own folder: `../ok.sql` leaves it.
    write(d, "rb/inc/child.toml", &format!("[runbook]\nname = \"child\"\n\n{}", sql_step("../ok.sql", None)));
    let out = run_in(d, &["check", "rb/inc/child.toml"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("error[RB066]"), "{}", out.stderr);
}

// ----- F4: a hard link to a secret's file ---------------------------------------------------

/// F4: a script, a CA file or a params file that is a hard link to a secret's file (under
/// any spelling) is RB056, and the secret is printed nowhere. Failed before: `check` passed
/// and every plan format printed the database URL.
#[test]
fn a_hard_link_to_a_secrets_file_is_the_secrets_file() {
    let secret = "[secrets.DATABASE_URL]\nfile = \"db.url\"\n\n";
    let sql = |f: &str| {
        format!(
            "[steps.count]\nsql = {{ url = \"{{{{ secrets.DATABASE_URL }}}}\", file = \"{f}\", read-only = true }}\n"
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("a hard link", format!("{}{secret}{}", head(), sql("count.sql"))),
        ("a hard link in a subfolder", format!("{}{secret}{}", head(), sql("sub/count.sql"))),
        ("a symbolic link to a hard link", format!("{}{secret}{}", head(), sql("link.sql"))),
        ("a CA file that is a hard link", format!("{}{secret}{}", head(), ca_step("count.sql"))),
        (
            "a hard link read by an included runbook",
            format!("{}{secret}[steps.inc]\nrunbook = {{ file = \"inc/child.toml\" }}\n", head()),
        ),
    ];
    for (what, text) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(d, "db.url", &format!("postgres://app:{SECRET}@db.internal/app\n"));
        std::fs::create_dir_all(d.join("sub")).expect("mkdir");
        std::fs::hard_link(d.join("db.url"), d.join("count.sql")).expect("link");
        std::fs::hard_link(d.join("db.url"), d.join("sub/count.sql")).expect("link");
        symlink("sub/count.sql", d.join("link.sql")).expect("symlink");
        write(
            d,
            "inc/child.toml",
            &format!("[runbook]\nname = \"child\"\n\n{}", sql_step("../count.sql", None)),
        );
        write(d, "hl.toml", &text);
        let out = run_in(d, &["check", "hl.toml"]);
        assert_eq!(out.code, 3, "{what}: check passed: {}", out.stderr);
        assert!(out.stderr.contains("hl.toml:6:8: error[RB056]"), "{what}: {}", out.stderr);
        assert!(!shows(&out, SECRET), "{what}: {}", out.stderr);
        for fmt in ["text", "markdown", "html", "json"] {
            let out = run_in(d, &["plan", "hl.toml", "--format", fmt]);
            assert_ne!(out.code, 0, "{what}: plan --format {fmt} made a plan");
            assert!(!shows(&out, SECRET), "{what}: plan --format {fmt} printed the secret");
        }
    }
    // A params file that is a hard link to the secret's file is not read either.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "db.url", &format!("postgres://app:{SECRET}@db.internal/app\n"));
    std::fs::hard_link(d.join("db.url"), d.join("p.toml")).expect("link");
    write(d, "hl.toml", &format!("{}{secret}[steps.a]\nrun = \"true\"\n", head()));
    let out = run_in(d, &["plan", "hl.toml", "--params-file", "p.toml"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("RB056"), "{}", out.stderr);
    assert!(!shows(&out, SECRET), "{}", out.stderr);
}

// ----- M1: a secret's file is never rendered ------------------------------------------------

/// M1: template markup in a secret's `file` is refused by `check` (it would be read as a
/// literal name at run). Failed before: `check` and `plan` passed, `run` failed.
#[test]
fn template_markup_in_a_secrets_file_is_refused_by_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (i, markup) in ["{{ params.env }}/db.url", "db-{% if true %}x{% endif %}.url", "db{# note #}.url"]
        .into_iter()
        .enumerate()
    {
        write(
            d,
            "m.toml",
            &format!(
                "{}[params.env]\ntype = \"string\"\ndefault = \"prod\"\n\n[secrets.DB]\nfile = \"{markup}\"\n\n[steps.a]\nrun = \"true\"\n",
                head()
            ),
        );
        let out = run_in(d, &["check", "m.toml"]);
        assert_eq!(out.code, 3, "{markup}: {}", out.stderr);
        assert!(out.stderr.contains("m.toml:10:8: error[RB033]"), "{markup}: {}", out.stderr);
        if i == 0 {
            insta::assert_snapshot!("secret_file_template", format!("exit: {}\n{}", out.code, out.stderr));
        }
    }
}

/// The version at REV is held to the same folder rule (`plan --against`): a base whose
/// script was outside the runbook's folder is not read, so the diff quotes nothing of it;
/// the comparison fails with RB066 and says there is nothing to compare.
#[test]
fn a_script_outside_the_folder_at_a_revision_is_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "outside.txt", &format!("[http]\nextraheader = AUTHORIZATION: basic {TOKEN}\n"));
    write(d, "rb/ok.sql", &format!("{INSIDE};\n"));
    for (what, file) in
        [("above the folder", "../outside.txt"), ("through a folder", "./x/../../outside.txt")]
    {
        write(d, "rb/rb.toml", &format!("{}{}", head(), sql_step(file, None)));
        crate::plan_diff::git(d, &["init", "-q", "-b", "main"]);
        crate::plan_diff::git(d, &["add", "-A"]);
        crate::plan_diff::git(d, &["commit", "-q", "-m", "base"]);
        write(d, "rb/rb.toml", &format!("{}{}", head(), sql_step("ok.sql", None)));
        for fmt in ["text", "markdown", "json"] {
            let out = run_in(d, &["plan", "rb/rb.toml", "--against", "HEAD", "--format", fmt]);
            assert_eq!(out.code, 3, "{what} ({fmt}): {}{}", out.stdout, out.stderr);
            assert!(out.stderr.contains("RB066"), "{what} ({fmt}): {}", out.stderr);
            assert!(!shows(&out, TOKEN), "{what} ({fmt}): the file at HEAD was quoted");
        }
    }
}

/// A runbook at the top of a working tree may not read the repository's own folder: its
/// `.git/config` holds a CI checkout's token.
#[test]
fn a_runbook_at_the_top_of_a_repository_reads_nothing_of_its_git_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    crate::plan_diff::git(d, &["init", "-q", "-b", "main"]);
    crate::plan_diff::git(
        d,
        &["config", "http.https://github.com/.extraheader", &format!("AUTHORIZATION: basic {TOKEN}")],
    );
    symlink(".git", d.join("g")).expect("symlink");
    for file in [".git/config", "./.git/config", "g/config", "sub/../.git/config"] {
        for text in [sql_step(file, None), ca_step(file)] {
            write(d, "rb.toml", &format!("{}{text}", head()));
            let out = run_in(d, &["check", "rb.toml"]);
            assert_eq!(out.code, 3, "{file}: {}", out.stderr);
            assert!(out.stderr.contains("error[RB066]"), "{file}: {}", out.stderr);
            let out = run_in(d, &["plan", "rb.toml", "--format", "markdown"]);
            assert_ne!(out.code, 0, "{file}: {}", out.stdout);
            assert!(!shows(&out, TOKEN), "{file}: the token was printed");
        }
    }
}
