//! Secrets in plans and diffs, files read at a revision, and the schema's edges (red team
//! adv15b findings 4, 5, 11 and 15): a secret's file is never read as anything else, text
//! read with git is quoted by the working tree's rule, a symbolic link or a folder at REV is
//! what the working tree would make of it, and the schema agrees with `check` on
//! non-finite numbers, integer defaults and `first-line`.

use std::path::Path;

use crate::plan_diff::git;
use crate::support::{Output, root, run_in};

const SECRET: &str = "s3cr3t-value-XYZ";

fn write_all(p: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = p.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
}

fn commit_all(p: &Path) {
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "base"]);
}

/// A git repository with `files` committed once.
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_all(dir.path(), files);
    commit_all(dir.path());
    dir
}

fn shows_secret(out: &Output) -> bool {
    out.stdout.contains("s3cr3t") || out.stderr.contains("s3cr3t")
}

// ----- F4: a secret's file is never read as anything else ----------------------------------

/// The runbooks of the corpus: `(what, files)`; `rb.toml` is the one checked. `token.txt`
/// (and `inc/token.txt`) hold the secret; `link.sql` links to `token.txt`.
fn both_corpus() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let head = "[runbook]\nname = \"t\"\n\n";
    let secret = |file: &str| format!("[secrets.TOKEN]\nfile = \"{file}\"\n\n");
    let sql = |file: &str| {
        format!(
            "[steps.a]\nsql = {{ url = \"{{{{ secrets.TOKEN }}}}\", file = \"{file}\", read-only = true }}\n"
        )
    };
    let mut out: Vec<(&'static str, Vec<(&'static str, String)>)> = Vec::new();
    for (what, s, f) in [
        ("same spelling", "token.txt", "token.txt"),
        ("./ on the script", "token.txt", "./token.txt"),
        ("./ on the secret", "./token.txt", "token.txt"),
        ("through a folder and ..", "token.txt", "sub/../token.txt"),
        ("secret through ..", "sub/../token.txt", "./token.txt"),
        ("a symbolic link to the secret", "token.txt", "link.sql"),
        ("the secret through a symbolic link", "link.sql", "token.txt"),
        ("a doubled slash", "token.txt", ".//token.txt"),
    ] {
        out.push((what, vec![("rb.toml", format!("{head}{}{}", secret(s), sql(f)))]));
    }
    out.push((
        "a script in the step's dir",
        vec![(
            "rb.toml",
            format!(
                "{head}{}[steps.a]\ndir = \"sub\"\nsql = {{ url = \"{{{{ secrets.TOKEN }}}}\", file = \"../token.txt\", read-only = true }}\n",
                secret("token.txt")
            ),
        )],
    ));
    out.push((
        "a CA file",
        vec![(
            "rb.toml",
            format!(
                "{head}{}[steps.a]\nhttp = {{ url = \"https://127.0.0.1:1/\", ca-file = \"./token.txt\" }}\n",
                secret("token.txt")
            ),
        )],
    ));
    out.push((
        "a compensation's script",
        vec![(
            "rb.toml",
            format!(
                "{head}{}[steps.a]\nrun = \"true\"\ncompensate = {{ sql = {{ url = \"{{{{ secrets.TOKEN }}}}\", file = \"token.txt\" }} }}\n",
                secret("token.txt")
            ),
        )],
    ));
    out.push((
        "a precondition's script",
        vec![(
            "rb.toml",
            format!(
                "{head}{}[preconditions.p]\nsql = {{ url = \"{{{{ secrets.TOKEN }}}}\", file = \"token.txt\" }}\n\n[steps.a]\nrun = \"true\"\n",
                secret("token.txt")
            ),
        )],
    ));
    out.push((
        "the runbook itself",
        vec![("rb.toml", format!("{head}{}[steps.a]\nrun = \"true\"\n", secret("rb.toml")))],
    ));
    out.push((
        "an included runbook",
        vec![
            (
                "rb.toml",
                format!(
                    "{head}{}[steps.a]\nrunbook = {{ file = \"inc/child.toml\" }}\n",
                    secret("inc/child.toml")
                ),
            ),
            ("inc/child.toml", "[runbook]\nname = \"child\"\n\n[steps.b]\nrun = \"true\"\n".to_string()),
        ],
    ));
    out.push((
        "a script of an included runbook, the secret of the parent",
        vec![
            ("rb.toml", format!("{head}{}[steps.a]\nrunbook = {{ file = \"inc/child.toml\" }}\n", secret("inc/token.txt"))),
            (
                "inc/child.toml",
                "[runbook]\nname = \"child\"\n\n[secrets.DB]\nenv = \"DB\"\n\n[steps.b]\nsql = { url = \"{{ secrets.DB }}\", file = \"token.txt\" }\n"
                    .to_string(),
            ),
        ],
    ));
    out.push((
        "a secret of an included runbook, the script of the parent",
        vec![
            (
                "rb.toml",
                format!(
                    "{head}[secrets.DB]\nenv = \"DB\"\n\n[steps.a]\nrunbook = {{ file = \"inc/child.toml\" }}\n\n[steps.b]\nsql = {{ url = \"{{{{ secrets.DB }}}}\", file = \"inc/token.txt\" }}\n"
                ),
            ),
            (
                "inc/child.toml",
                "[runbook]\nname = \"child\"\n\n[secrets.TOKEN]\nfile = \"./token.txt\"\n\n[steps.c]\nrun = \"true\"\n"
                    .to_string(),
            ),
        ],
    ));
    out
}

fn folder(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::create_dir_all(p.join("sub")).expect("mkdir");
    std::fs::create_dir_all(p.join("inc")).expect("mkdir");
    std::fs::write(p.join("token.txt"), format!("{SECRET}\n")).expect("write");
    std::fs::write(p.join("inc/token.txt"), format!("{SECRET}\n")).expect("write");
    std::os::unix::fs::symlink("token.txt", p.join("link.sql")).expect("symlink");
    for (name, text) in files {
        std::fs::write(p.join(name), text).expect("write");
    }
    dir
}

/// Every spelling of one path, every field that reads a file, across includes: `check`
/// refuses it (RB056) and `plan` shows nothing of the file.
#[test]
fn a_file_that_is_a_secrets_source_is_never_read_as_anything_else() {
    let corpus = both_corpus();
    assert!(corpus.len() >= 15);
    for (what, files) in &corpus {
        let dir = folder(files);
        let check = run_in(dir.path(), &["check", "rb.toml"]);
        assert_eq!(check.code, 3, "{what}: check accepts it:\n{}{}", check.stdout, check.stderr);
        assert!(check.stderr.contains("RB056"), "{what}: {}", check.stderr);
        assert!(!shows_secret(&check), "{what}: {}", check.stderr);
        for format in ["text", "json", "markdown", "html"] {
            let plan = run_in(dir.path(), &["plan", "rb.toml", "--format", format]);
            assert_eq!(plan.code, 3, "{what}: plan --format {format}:\n{}", plan.stdout);
            assert!(!shows_secret(&plan), "{what}: plan --format {format}:\n{}{}", plan.stdout, plan.stderr);
        }
    }
    // Files that are not the secret's are read as before (the rule is not "no file at all").
    let dir = folder(&[(
        "rb.toml",
        "[runbook]\nname = \"t\"\n\n[secrets.TOKEN]\nfile = \"token.txt\"\n\n[steps.a]\nsql = { url = \"{{ secrets.TOKEN }}\", file = \"sub/q.sql\", read-only = true }\n".to_string(),
    )]);
    std::fs::write(dir.path().join("sub/q.sql"), "SELECT 1;\n").expect("write");
    let plan = run_in(dir.path(), &["plan", "rb.toml"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("SELECT 1;"), "{}", plan.stdout);
}

/// The params file named on the command line is a secret's file: refused, nothing shown, by
/// every command that reads one.
#[test]
fn a_secrets_file_is_never_read_as_a_params_file() {
    let rb = "[runbook]\nname = \"t\"\n\n[params.x]\ntype = \"string\"\ndefault = \"a\"\n\n[secrets.TOKEN]\nfile = \"token.toml\"\n\n[steps.a]\nrun = \"echo {{ params.x }}\"\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    write_all(p, &[("rb.toml", rb), ("token.toml", &format!("x = \"{SECRET}\"\n"))]);
    std::os::unix::fs::symlink("token.toml", p.join("alias.toml")).expect("symlink");
    commit_all(p);
    let state = p.join("state.db").display().to_string();
    for pf in ["token.toml", "./token.toml", "alias.toml"] {
        for args in [
            &["plan", "rb.toml", "--params-file", pf][..],
            &["plan", "rb.toml", "--params-file", pf, "--format", "json"],
            &["plan", "rb.toml", "--params-file", pf, "--against", "HEAD"],
            &["run", "rb.toml", "--params-file", pf, "--yes", "--state", &state],
        ] {
            let out = run_in(p, args);
            assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
            assert!(out.stderr.contains("RB056"), "{args:?}: {}", out.stderr);
            assert!(!shows_secret(&out), "{args:?}: {}{}", out.stdout, out.stderr);
        }
    }
}

/// The red team's reproduction: the diff in every format.
#[test]
fn a_secret_files_value_never_reaches_a_plan_diff() {
    let old =
        "[runbook]\nname = \"t\"\n\n[secrets.TOKEN]\nfile = \"token.txt\"\n\n[steps.a]\nrun = \"echo hi\"\n";
    let dir = repo(&[("rb.toml", old), (".gitignore", "token.txt\n")]);
    std::fs::write(dir.path().join("token.txt"), format!("{SECRET}\n")).expect("write");
    let new = format!(
        "{old}\n[steps.check_db]\nsql = {{ url = \"{{{{ secrets.TOKEN }}}}\", file = \"token.txt\", read-only = true }}\n"
    );
    std::fs::write(dir.path().join("rb.toml"), new).expect("write");
    for format in ["text", "markdown", "json"] {
        let out = run_in(dir.path(), &["plan", "rb.toml", "--against", "HEAD", "--format", format]);
        assert_eq!(out.code, 3, "{format}: {}{}", out.stdout, out.stderr);
        assert!(
            !shows_secret(&out),
            "{format}: the secret's value is in the diff:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

/// At REV, a script that was a symbolic link to the secret's file (both committed) is the
/// secret's file: the old version is refused (RB056), and the diff never shows its text.
#[test]
fn a_secrets_file_behind_a_link_at_a_revision_is_the_same_file() {
    let old = "[runbook]\nname = \"t\"\n\n[secrets.TOKEN]\nfile = \"token.txt\"\n\n[steps.a]\nsql = { url = \"{{ secrets.TOKEN }}\", file = \"current.sql\", read-only = true }\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    write_all(p, &[("rb.toml", old), ("token.txt", &format!("{SECRET}\n")), ("q.sql", "SELECT 1;\n")]);
    std::os::unix::fs::symlink("token.txt", p.join("current.sql")).expect("symlink");
    commit_all(p);
    // Now: the script is another file, the link is gone.
    std::fs::remove_file(p.join("current.sql")).expect("rm");
    std::fs::write(p.join("rb.toml"), old.replace("current.sql", "q.sql")).expect("write");
    for format in ["text", "markdown", "json"] {
        let out = run_in(p, &["plan", "rb.toml", "--against", "HEAD", "--format", format]);
        assert_eq!(out.code, 3, "{format}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("RB056"), "{format}: {}", out.stderr);
        assert!(!shows_secret(&out), "{format}: {}{}", out.stdout, out.stderr);
    }
}

// ----- F5: text read at REV is quoted by the working tree's rule --------------------------

/// Files that are not runbooks, committed; `plan` refuses them without their lines, in the
/// working tree and at REV alike, as a runbook and as a params file.
#[test]
fn against_quotes_a_file_read_at_a_revision_by_the_working_trees_rule() {
    let env = "DB_PASSWORD=hunter2-very-secret\nAPI_TOKEN=tok_live_abcdef123456\n";
    let toml_creds = "access_key = \"hunter2-very-secret\"\nx = [\n";
    let rb = "[runbook]\nname = \"t\"\n\n[params.x]\ntype = \"string\"\ndefault = \"a\"\n\n[steps.a]\nrun = \"echo {{ params.x }}\"\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    write_all(
        p,
        &[
            ("deploy.env", env),
            (".env", env),
            ("creds.json", env),
            ("creds.toml", toml_creds),
            ("rb.toml", rb),
        ],
    );
    std::os::unix::fs::symlink("deploy.env", p.join("link.toml")).expect("symlink");
    std::os::unix::fs::symlink("creds.toml", p.join("creds-link.toml")).expect("symlink");
    commit_all(p);
    let leaks = |out: &Output| out.stderr.contains("hunter2") || out.stderr.contains("tok_live");
    for file in ["deploy.env", ".env", "creds.json", "link.toml", "creds-link.toml"] {
        let now = run_in(p, &["plan", file]);
        assert!(!leaks(&now), "plan {file}: {}", now.stderr);
        let at = run_in(p, &["plan", file, "--against", "HEAD"]);
        assert_eq!(at.code, 3, "plan {file} --against HEAD: {}", at.stderr);
        assert!(!leaks(&at), "plan {file} --against HEAD prints it:\n{}", at.stderr);
        assert!(at.stderr.contains("not shown"), "plan {file} --against HEAD: {}", at.stderr);
        let pf = run_in(p, &["plan", "rb.toml", "--params-file", file]);
        assert!(!leaks(&pf), "--params-file {file}: {}", pf.stderr);
        let pf_at = run_in(p, &["plan", "rb.toml", "--params-file", file, "--against", "HEAD"]);
        assert_eq!(pf_at.code, 3, "--params-file {file} --against HEAD: {}", pf_at.stderr);
        assert!(!leaks(&pf_at), "--params-file {file} --against HEAD prints it:\n{}", pf_at.stderr);
    }
    // A `.toml` file named directly is quoted at REV as in the working tree: the rule is
    // the same, not "never quote".
    let now = run_in(p, &["plan", "creds.toml"]);
    let at = run_in(p, &["plan", "creds.toml", "--against", "HEAD"]);
    assert!(now.stderr.contains("x = ["), "{}", now.stderr);
    assert!(at.stderr.contains("x = ["), "{}", at.stderr);
}

// ----- F11: symbolic links and folders at REV ---------------------------------------------

/// A SQL script and a runbook reached through symbolic links, nothing changed: no change.
#[test]
fn a_symbolic_link_at_a_revision_is_followed_as_in_the_working_tree() {
    let rb = "[runbook]\nname = \"purge\"\n\n[secrets.DATABASE_URL]\nenv = \"DATABASE_URL\"\n\n[steps.purge]\nsql = { url = \"{{ secrets.DATABASE_URL }}\", file = \"current.sql\" }\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    write_all(
        p,
        &[("ops/purge.toml", rb), ("ops/sql/0042.sql", "DELETE FROM sessions WHERE expires < now();\n")],
    );
    std::os::unix::fs::symlink("sql/0042.sql", p.join("ops/current.sql")).expect("symlink");
    std::os::unix::fs::symlink("purge.toml", p.join("ops/current.toml")).expect("symlink");
    std::os::unix::fs::symlink(".", p.join("ops/here")).expect("symlink");
    std::os::unix::fs::symlink("current.toml", p.join("ops/twice.toml")).expect("symlink");
    commit_all(p);
    for (cwd, file) in [
        ("ops", "purge.toml"),
        ("ops", "current.toml"),
        ("ops", "twice.toml"),
        ("ops", "here/purge.toml"),
        ("ops", "here/here/current.toml"),
        (".", "ops/current.toml"),
    ] {
        let out = run_in(&p.join(cwd), &["plan", file, "--against", "HEAD"]);
        assert_eq!(
            out.code, 0,
            "{cwd}/{file}: nothing changed; the diff says:\n{}{}",
            out.stdout, out.stderr
        );
    }
    // The link's target changes: the old script is the old target's text.
    std::fs::write(p.join("ops/sql/0042.sql"), "DELETE FROM sessions;\n").expect("write");
    let out = run_in(&p.join("ops"), &["plan", "purge.toml", "--against", "HEAD"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("-DELETE FROM sessions WHERE expires < now();"), "{}", out.stdout);
    assert!(!out.stdout.contains("sql/0042.sql\n"), "{}", out.stdout);
}

/// A link at REV that leaves the repository, a folder, a link loop: a clear error (exit 3)
/// that says what the object is, never a TOML error about git's output.
#[test]
fn a_folder_or_a_link_out_of_the_repository_at_a_revision_is_a_clear_error() {
    let rb = "[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"echo a\"\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    write_all(p, &[("rb.toml", rb), ("d/x.toml", rb)]);
    std::os::unix::fs::symlink("/etc/hostname", p.join("abs.toml")).expect("symlink");
    std::os::unix::fs::symlink("../../outside.toml", p.join("d/out.toml")).expect("symlink");
    std::os::unix::fs::symlink("loop-b.toml", p.join("loop-a.toml")).expect("symlink");
    std::os::unix::fs::symlink("loop-a.toml", p.join("loop-b.toml")).expect("symlink");
    commit_all(p);
    // The working tree now has runbooks where REV had links and a folder.
    std::fs::remove_dir_all(p.join("d")).expect("rm");
    write_all(p, &[("d", rb)]);
    for name in ["abs.toml", "d/out.toml", "loop-a.toml"] {
        let _ = std::fs::remove_file(p.join(name));
    }
    write_all(p, &[("abs.toml", rb), ("loop-a.toml", rb)]);
    for (file, says) in
        [("d", "is a folder"), ("abs.toml", "outside the repository"), ("loop-a.toml", "symbolic links")]
    {
        let out = run_in(p, &["plan", file, "--against", "HEAD"]);
        assert_eq!(out.code, 3, "{file}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{file}: {}", out.stderr);
        assert!(!out.stderr.contains("RB001") && !out.stderr.contains("tree HEAD"), "{file}: {}", out.stderr);
        assert!(out.stderr.contains("help"), "{file}: {}", out.stderr);
    }
    // A folder where a SQL script was: refused, not read as a listing.
    let rb2 = "[runbook]\nname = \"t\"\n\n[secrets.DB]\nenv = \"DB\"\n\n[steps.a]\nsql = { url = \"{{ secrets.DB }}\", file = \"q.sql\" }\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    write_all(p, &[("rb.toml", rb2), ("q.sql/x", "SELECT 1;\n")]);
    commit_all(p);
    std::fs::remove_dir_all(p.join("q.sql")).expect("rm");
    std::fs::write(p.join("q.sql"), "SELECT 1;\n").expect("write");
    let out = run_in(p, &["plan", "rb.toml", "--against", "HEAD"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("is a folder"), "{}", out.stderr);
    assert!(out.stderr.contains("help"), "{}", out.stderr);
}

/// The hint of an unknown revision fits the case: a repository with no commit yet, a name
/// that is a tree or a blob, a commit a shallow clone lacks.
#[test]
fn an_unknown_revision_gets_the_hint_of_its_case() {
    let rb = "[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"echo a\"\n";
    let empty = tempfile::tempdir().expect("tempdir");
    write_all(empty.path(), &[("rb.toml", rb)]);
    git(empty.path(), &["init", "-q", "-b", "main"]);
    let out = run_in(empty.path(), &["plan", "rb.toml", "--against", "HEAD"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("no commit"), "{}", out.stderr);
    assert!(!out.stderr.contains("shallow"), "{}", out.stderr);
    let dir = repo(&[("rb.toml", rb)]);
    for rev in ["HEAD^{tree}", "HEAD:rb.toml"] {
        let out = run_in(dir.path(), &["plan", "rb.toml", "--against", rev]);
        assert_eq!(out.code, 3, "{rev}: {}", out.stderr);
        assert!(out.stderr.contains("not a commit"), "{rev}: {}", out.stderr);
        assert!(!out.stderr.contains("shallow"), "{rev}: {}", out.stderr);
    }
    let out = run_in(dir.path(), &["plan", "rb.toml", "--against", "no-such-branch"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("shallow"), "{}", out.stderr);
}

// ----- F15: the schema and check agree ----------------------------------------------------

fn schema_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/runbook.schema.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("json");
    jsonschema::validator_for(&schema).expect("compiles")
}

fn check_text(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), text).expect("write");
    run_in(dir.path(), &["check", "r.toml"])
}

/// A non-finite number (`inf`, `nan`) cannot be written in a JSON plan (it became `null`:
/// the reviewed plan said nothing of the value that ran) and `-p` refuses it: `check`
/// refuses it as a default, in an `enum` and in a params file; the schema may not refuse
/// anything `check` accepts.
#[test]
fn a_non_finite_number_is_refused_everywhere_a_value_is_given() {
    for value in ["inf", "-inf", "+inf", "nan", "-nan"] {
        let default = format!(
            "[runbook]\nname = \"g\"\n\n[params.rate]\ntype = \"number\"\ndefault = {value}\n\n[steps.a]\nrun = \"echo {{{{ params.rate }}}}\"\n"
        );
        let out = check_text(&default);
        assert_eq!(out.code, 3, "default = {value}: {}", out.stderr);
        assert!(out.stderr.contains("RB050") && out.stderr.contains("finite"), "{value}: {}", out.stderr);
        let allowed = format!(
            "[runbook]\nname = \"g\"\n\n[params.rate]\ntype = \"number\"\nenum = [0.5, {value}]\n\n[steps.a]\nrun = \"echo {{{{ params.rate }}}}\"\n"
        );
        let out = check_text(&allowed);
        assert_eq!(out.code, 3, "enum with {value}: {}", out.stderr);
        assert!(out.stderr.contains("RB051"), "{value}: {}", out.stderr);
        let dir = tempfile::tempdir().expect("tempdir");
        let rb = "[runbook]\nname = \"g\"\n\n[params.rate]\ntype = \"number\"\n\n[steps.a]\nrun = \"echo {{ params.rate }}\"\n";
        write_all(dir.path(), &[("r.toml", rb), ("p.toml", &format!("rate = {value}\n"))]);
        let out = run_in(dir.path(), &["plan", "r.toml", "--params-file", "p.toml", "--format", "json"]);
        assert_eq!(out.code, 3, "params file rate = {value}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("RB071"), "{value}: {}", out.stderr);
    }
    // Finite numbers at the edges are still numbers.
    for value in ["1e308", "-1e308", "5e-324", "0.0", "-0.0"] {
        let text = format!(
            "[runbook]\nname = \"g\"\n\n[params.rate]\ntype = \"number\"\ndefault = {value}\n\n[steps.a]\nrun = \"echo {{{{ params.rate }}}}\"\n"
        );
        let out = check_text(&text);
        assert_eq!(out.code, 0, "default = {value}: {}", out.stderr);
        let doc = serde_json::to_value(toml::from_str::<toml::Table>(&text).expect("toml")).expect("json");
        assert!(schema_validator().is_valid(&doc), "default = {value}");
    }
}

/// `first-line` without `file`: `check` refuses it (RB014) whatever its value; the schema
/// says so too. With `file` it is accepted by both.
#[test]
fn the_schema_refuses_first_line_without_a_file_as_check_does() {
    let validator = schema_validator();
    for (source, value, accepted) in [
        ("env = \"T\"", "true", false),
        ("env = \"T\"", "false", false),
        ("command = [\"pass\", \"t\"]", "true", false),
        ("file = \"t.txt\"", "true", true),
        ("file = \"t.txt\"", "false", true),
    ] {
        let text = format!(
            "[runbook]\nname = \"g\"\n\n[secrets.T]\n{source}\nfirst-line = {value}\n\n[steps.a]\nrun = \"true\"\n"
        );
        let out = check_text(&text);
        assert_eq!(out.code == 0, accepted, "{source}, first-line = {value}: {}", out.stderr);
        let doc = serde_json::to_value(toml::from_str::<toml::Table>(&text).expect("toml")).expect("json");
        assert_eq!(validator.is_valid(&doc), accepted, "{source}, first-line = {value}");
    }
}

/// The editor page does not claim what a JSON Schema cannot see: `1.0` is an integer to
/// JSON Schema, so a float default of an integer parameter is listed as found only by
/// `runbook check`.
#[test]
fn the_editor_page_claims_only_what_the_schema_catches() {
    let validator = schema_validator();
    let text = "[runbook]\nname = \"g\"\n\n[params.replicas]\ntype = \"integer\"\ndefault = 1.0\n\n[steps.a]\nrun = \"true\"\n";
    assert_eq!(check_text(text).code, 3);
    let doc = serde_json::to_value(toml::from_str::<toml::Table>(text).expect("toml")).expect("json");
    let caught = !validator.is_valid(&doc);
    let page = std::fs::read_to_string(root().join("book/src/user-guide/editor.md")).expect("page");
    if !caught {
        assert!(
            !page.contains("a default or enum value of the wrong type"),
            "the editor page claims the schema catches a float default of an integer parameter"
        );
        assert!(page.contains("`1.0`"), "the editor page says what the schema cannot see");
    }
}
