//! One confined reader for every file the engine reads on behalf of a runbook (red team
//! adv16r F9, F10, F3, F2, F1/F1b, F7): included runbooks (and theirs), `sql.file`,
//! `http.ca-file`, params files in the runbook's folder, and the files `plan --against`
//! reads from the working tree or at REV. Each is opened once and the open file itself is
//! checked (inside the runbook's folder, a regular file, bounded); at REV a symbolic link is
//! resolved in the tree at REV and refused when it leaves the folder (RB066/RB060); a path
//! is never rendered, so template markup in one is refused at check (RB033).

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::plan_diff::git;
use crate::support::{Output, ok, run_in};

/// What every file outside the runbooks' folder holds: it must never be printed.
const TOKEN: &str = "cio_0utS1de_T0KEN_5a7";

fn write(p: &Path, name: &str, text: &str) {
    let path = p.join(name);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn shows(out: &Output, what: &str) -> bool {
    out.stdout.contains(what) || out.stderr.contains(what)
}

/// A repository `t/` with, outside the runbooks' folder `t/rb/`, a TOML file of the runner
/// (the token as a value, as `~/.cargo/credentials.toml` holds one), a runbook (its command
/// prints the token), and a SQL script; inside, a runbook `rb/t.toml`.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "outside/creds.toml", &format!("[registry]\ntoken = \"{TOKEN}\"\n"));
    write(d, "outside/flat.toml", &format!("stripe_key = \"{TOKEN}\"\n"));
    write(
        d,
        "outside/inc.toml",
        &format!("[runbook]\nname = \"inc\"\n\n[steps.i]\ncmd = [\"echo\", \"{TOKEN}\"]\n"),
    );
    write(d, "outside/s.sql", &format!("SELECT '{TOKEN}';\n"));
    write(d, "outside/ca.pem", &format!("{TOKEN}\n"));
    git(d, &["init", "-q", "-b", "main", "."]);
    dir
}

fn inc(word: &str) -> String {
    format!("[runbook]\nname = \"inc\"\n\n[steps.i]\ncmd = [\"echo\", \"{word}\"]\n")
}

/// F9, F10: a runbook included at REV and no longer included now is compared as written
/// only through the confined reader: a link out (to any TOML file, to a runbook), a link to
/// a device, a FIFO, a folder, a non-runbook TOML file inside the folder: none is quoted,
/// none hangs or fills memory, and each is named.
#[test]
fn against_reads_a_file_included_at_rev_from_the_working_tree_only_confined() {
    type Make = fn(&Path);
    let corpus: [(&str, Make); 7] = [
        ("a link out to a TOML file", |d| {
            symlink("../../outside/creds.toml", d.join("rb/lib/inc.toml")).expect("ln")
        }),
        ("a link out to a runbook", |d| {
            symlink("../../outside/inc.toml", d.join("rb/lib/inc.toml")).expect("ln")
        }),
        ("a link to /dev/zero", |d| symlink("/dev/zero", d.join("rb/lib/inc.toml")).expect("ln")),
        ("a link through a folder out", |d| {
            std::fs::remove_dir_all(d.join("rb/lib")).expect("rm");
            symlink("../outside", d.join("rb/lib")).expect("ln");
            std::fs::rename(d.join("outside/creds.toml"), d.join("outside/inc.toml")).expect("mv");
        }),
        ("a FIFO", |d| {
            nix::unistd::mkfifo(&d.join("rb/lib/inc.toml"), nix::sys::stat::Mode::from_bits_truncate(0o600))
                .expect("mkfifo")
        }),
        ("a folder", |d| std::fs::create_dir(d.join("rb/lib/inc.toml")).expect("mkdir")),
        ("a TOML file that is no runbook, inside", |d| {
            write(d, "rb/lib/inc.toml", &format!("[registry]\ntoken = \"{TOKEN}\"\n"))
        }),
    ];
    for (what, make) in corpus {
        let dir = repo();
        let d = dir.path();
        write(
            d,
            "rb/t.toml",
            "[runbook]\nname = \"t\"\n\n[steps.a]\nrunbook = { file = \"lib/inc.toml\" }\n",
        );
        write(d, "rb/lib/inc.toml", &inc("old"));
        git(d, &["add", "-A"]);
        git(d, &["commit", "-qm", "base"]);
        write(d, "rb/t.toml", "[runbook]\nname = \"t\"\n\n[steps.a]\ncmd = [\"true\"]\n");
        std::fs::remove_file(d.join("rb/lib/inc.toml")).expect("rm");
        make(d);
        for format in ["text", "markdown", "json"] {
            let out = run_in(d, &["plan", "rb/t.toml", "--against", "main", "--format", format]);
            assert!(!shows(&out, TOKEN), "{what} ({format}): the outside file is quoted:\n{out:?}");
            assert_eq!(out.code, 1, "{what} ({format}): {out:?}");
            assert!(out.stdout.contains("is not compared"), "{what} ({format}): not named:\n{out:?}");
        }
    }
}

/// An include of an include: the second level too is read by the confined reader now.
#[test]
fn against_reads_an_include_of_an_include_confined() {
    let dir = repo();
    let d = dir.path();
    write(d, "rb/t.toml", "[runbook]\nname = \"t\"\n\n[steps.a]\nrunbook = { file = \"lib/mid.toml\" }\n");
    write(
        d,
        "rb/lib/mid.toml",
        "[runbook]\nname = \"mid\"\n\n[steps.m]\nrunbook = { file = \"deep/inc.toml\" }\n",
    );
    write(d, "rb/lib/deep/inc.toml", &inc("old"));
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "base"]);
    write(d, "rb/t.toml", "[runbook]\nname = \"t\"\n\n[steps.a]\ncmd = [\"true\"]\n");
    std::fs::remove_file(d.join("rb/lib/deep/inc.toml")).expect("rm");
    symlink("../../../outside/creds.toml", d.join("rb/lib/deep/inc.toml")).expect("ln");
    std::fs::remove_file(d.join("rb/lib/mid.toml")).expect("rm");
    symlink("../../outside/inc.toml", d.join("rb/lib/mid.toml")).expect("ln");
    let out = run_in(d, &["plan", "rb/t.toml", "--against", "main"]);
    assert!(!shows(&out, TOKEN), "quoted:\n{out:?}");
    ok(&out, 1);
}

/// F2: a symbolic link committed at REV is resolved in the tree at REV and refused when it
/// leaves the runbook's folder, with the working tree's codes: a `sql.file` (also from a
/// `dir`), a `ca-file`, an include, an include of an include, a link through a folder.
#[test]
fn against_refuses_a_link_at_rev_that_leaves_the_folder() {
    let sql = "[runbook]\nname = \"t\"\n\n[steps.a]\nsql = { url = \"postgres://ro@127.0.0.1:1/app\", file = \"s.sql\", read-only = true }\n";
    let sql_dir = "[runbook]\nname = \"t\"\n\n[steps.a]\ndir = \"sub\"\nsql = { url = \"postgres://ro@127.0.0.1:1/app\", file = \"s.sql\", read-only = true }\n";
    let ca = "[runbook]\nname = \"t\"\n\n[steps.a]\nhttp = { url = \"https://127.0.0.1:1/\", ca-file = \"ca.pem\" }\n";
    let include = "[runbook]\nname = \"t\"\n\n[steps.a]\nrunbook = { file = \"inc.toml\" }\n";
    let mid = "[runbook]\nname = \"mid\"\n\n[steps.m]\nrunbook = { file = \"lib/inc.toml\" }\n";
    // (what, runbook, links at REV (path, target), other files at REV, code)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<(&'a str, String)>, &'a str);
    let corpus: Vec<Case<'_>> = vec![
        ("sql.file", sql, vec![("rb/s.sql", "../outside/s.sql")], vec![], "RB066"),
        ("sql.file from dir", sql_dir, vec![("rb/sub/s.sql", "../../outside/s.sql")], vec![], "RB066"),
        ("sql.file through a folder", sql_dir, vec![("rb/sub", "../outside")], vec![], "RB066"),
        ("ca-file", ca, vec![("rb/ca.pem", "../outside/ca.pem")], vec![], "RB066"),
        ("include", include, vec![("rb/inc.toml", "../outside/inc.toml")], vec![], "RB060"),
        (
            "include of include",
            include,
            vec![("rb/lib/inc.toml", "../../outside/inc.toml")],
            vec![("rb/inc.toml", mid.to_string())],
            "RB060",
        ),
    ];
    for (what, runbook, links, files, code) in corpus {
        let dir = repo();
        let d = dir.path();
        write(d, "rb/t.toml", runbook);
        for (path, text) in &files {
            write(d, path, text);
        }
        for (path, target) in &links {
            std::fs::create_dir_all(d.join(path).parent().expect("parent")).expect("mkdir");
            symlink(target, d.join(path)).expect("ln");
        }
        git(d, &["add", "-A"]);
        git(d, &["commit", "-qm", "base"]);
        // The working tree's check refuses the same tree with the same code.
        let check = run_in(d, &["check", "rb/t.toml"]);
        assert!(check.stderr.contains(code), "{what}: check:\n{check:?}");
        // Now: the links replaced by plain files inside.
        for (path, _) in &links {
            std::fs::remove_file(d.join(path)).expect("rm");
        }
        write(d, "rb/s.sql", "SELECT 'new';\n");
        write(d, "rb/sub/s.sql", "SELECT 'new';\n");
        write(d, "rb/ca.pem", "new\n");
        write(d, "rb/inc.toml", &inc("new"));
        write(d, "rb/lib/inc.toml", &inc("new"));
        assert!(run_in(d, &["check", "rb/t.toml"]).code == 0, "{what}: the new tree is valid");
        for format in ["text", "markdown", "json"] {
            let out = run_in(d, &["plan", "rb/t.toml", "--against", "main", "--format", format]);
            assert!(!shows(&out, TOKEN), "{what} ({format}): the outside file is quoted:\n{out:?}");
            assert_eq!(out.code, 3, "{what} ({format}): {out:?}");
            assert!(out.stderr.contains(code), "{what} ({format}): not {code}:\n{out:?}");
        }
    }
}

/// F3: a params file in the runbook's folder (as a CI script finds `params/NAME.ENV.toml`)
/// is held to the folder rule, now and at REV: a link out (to a flat TOML file of the
/// runner, through a linked `params/` folder) is refused and its values never shown; one
/// inside is read; one the operator names elsewhere is their own choice and is read.
#[test]
fn a_params_file_in_the_runbooks_folder_is_confined_now_and_at_rev() {
    let runbook = "[runbook]\nname = \"t\"\ntitle = \"t\"\n\n[params.stripe_key]\ntype = \"string\"\ndefault = \"none\"\n\n[steps.a]\ncmd = [\"echo\", \"{{ params.stripe_key }}\"]\n";
    type Make = fn(&Path);
    let corpus: [(&str, Make); 3] = [
        ("a link out", |d| symlink("../../outside/flat.toml", d.join("rb/params/t.prod.toml")).expect("ln")),
        ("a link to an inside link out", |d| {
            symlink("../outside/flat.toml", d.join("rb/flat.toml")).expect("ln");
            symlink("../flat.toml", d.join("rb/params/t.prod.toml")).expect("ln");
        }),
        ("a linked params folder", |d| {
            std::fs::remove_dir(d.join("rb/params")).expect("rmdir");
            std::fs::copy(d.join("outside/flat.toml"), d.join("outside/t.prod.toml")).expect("cp");
            symlink("../outside", d.join("rb/params")).expect("ln");
        }),
    ];
    for (what, make) in corpus {
        let dir = repo();
        let d = dir.path();
        write(d, "rb/t.toml", runbook);
        std::fs::create_dir_all(d.join("rb/params")).expect("mkdir");
        make(d);
        let plan = run_in(d, &["plan", "rb/t.toml", "--params-file", "rb/params/t.prod.toml"]);
        assert!(!shows(&plan, TOKEN), "{what}: plan shows the outside values:\n{plan:?}");
        assert_eq!(plan.code, 3, "{what}: {plan:?}");
        assert!(plan.stderr.contains("outside the folder"), "{what}: {plan:?}");
        // At REV: the same tree committed, compared with itself.
        git(d, &["add", "-A"]);
        git(d, &["commit", "-qm", "base"]);
        let against =
            run_in(d, &["plan", "rb/t.toml", "--params-file", "rb/params/t.prod.toml", "--against", "main"]);
        assert!(!shows(&against, TOKEN), "{what}: --against shows the outside values:\n{against:?}");
        assert_eq!(against.code, 3, "{what}: {against:?}");
    }
    // Inside: read; named elsewhere by the operator: read too.
    let dir = repo();
    let d = dir.path();
    write(d, "rb/t.toml", runbook);
    write(d, "rb/params/t.prod.toml", "stripe_key = \"inside-value\"\n");
    let inside = run_in(d, &["plan", "rb/t.toml", "--params-file", "rb/params/t.prod.toml"]);
    ok(&inside, 0);
    assert!(inside.stdout.contains("inside-value"), "{inside:?}");
    write(d, "elsewhere/p.toml", "stripe_key = \"operator-choice\"\n");
    let elsewhere = run_in(d, &["plan", "rb/t.toml", "--params-file", "elsewhere/p.toml"]);
    ok(&elsewhere, 0);
    assert!(elsewhere.stdout.contains("operator-choice"), "{elsewhere:?}");
}

/// F1/F1b: the check is on the file actually read. A thread swaps, as fast as it can, a link
/// out and a regular file over `rb/s.sql` (and over an included runbook) while `plan` runs a
/// bounded number of times: no plan ever quotes the outside file (each either reads the
/// inside file or refuses the link).
#[test]
fn a_link_swapped_in_during_plan_is_never_read() {
    for (what, runbook, name, good) in [
        (
            "sql.file",
            "[runbook]\nname = \"t\"\ntitle = \"t\"\n\n[steps.a]\nsql = { url = \"postgres://ro@127.0.0.1:1/app\", file = \"s.sql\", read-only = true }\n",
            "s.sql",
            "SELECT 'inside';\n".to_string(),
        ),
        (
            "include",
            "[runbook]\nname = \"t\"\n\n[steps.a]\nrunbook = { file = \"inc.toml\" }\n",
            "inc.toml",
            inc("inside"),
        ),
    ] {
        let dir = repo();
        let d = dir.path().to_path_buf();
        let target = if name == "s.sql" { "../outside/s.sql" } else { "../outside/inc.toml" };
        write(&d, "rb/t.toml", runbook);
        write(&d, &format!("rb/{name}"), &good);
        write(&d, "rb/good.keep", &good);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (d, stop) = (d.clone(), stop.clone());
            std::thread::spawn(move || {
                let path = d.join("rb").join(name);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::remove_file(d.join("rb/evil.tmp"));
                    let _ = symlink(target, d.join("rb/evil.tmp"));
                    let _ = std::fs::rename(d.join("rb/evil.tmp"), &path);
                    let _ = std::fs::remove_file(d.join("rb/good.tmp"));
                    let _ = std::fs::hard_link(d.join("rb/good.keep"), d.join("rb/good.tmp"));
                    let _ = std::fs::rename(d.join("rb/good.tmp"), &path);
                }
            })
        };
        let mut leaks = 0;
        for _ in 0..60 {
            let out = run_in(&d, &["plan", "rb/t.toml"]);
            if shows(&out, TOKEN) {
                leaks += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().expect("swapper");
        assert_eq!(leaks, 0, "{what}: plans that quoted the outside file");
    }
}

/// F7: `dir`, `sql.file` and `http.ca-file` are paths read as written, never rendered:
/// template markup in any of them, in a step, a compensation or a precondition, is refused
/// by `check` (RB033, file:line:col, a hint), so `check` and `plan` agree.
#[test]
fn template_markup_in_a_path_is_refused_by_check() {
    let head =
        "[runbook]\nname = \"t\"\ntitle = \"t\"\n\n[params.ca]\ntype = \"string\"\ndefault = \"x\"\n\n";
    let sql = |file: &str| {
        format!("sql = {{ url = \"postgres://ro@127.0.0.1:1/app\", file = \"{file}\", read-only = true }}")
    };
    let ca = |file: &str| format!("http = {{ url = \"https://127.0.0.1:1/\", ca-file = \"{file}\" }}");
    let mut corpus = Vec::new();
    for markup in ["{{ params.ca }}", "{% if true %}a{% endif %}", "a{# note #}.sql"] {
        corpus.push(("sql.file", format!("[steps.a]\n{}\n", sql(markup))));
        corpus.push(("http.ca-file", format!("[steps.a]\n{}\n", ca(markup))));
        corpus.push(("dir", format!("[steps.a]\ndir = \"{markup}\"\ncmd = [\"true\"]\n")));
        corpus.push(("dir", format!("[steps.a]\ndir = \"{markup}\"\n{}\n", sql("s.sql"))));
        corpus.push((
            "sql.file",
            format!("[steps.a]\ncmd = [\"true\"]\n\n[steps.a.compensate]\n{}\n", sql(markup)),
        ));
        corpus.push((
            "dir",
            format!(
                "[steps.a]\ncmd = [\"true\"]\n\n[steps.a.compensate]\ndir = \"{markup}\"\ncmd = [\"true\"]\n"
            ),
        ));
        corpus.push((
            "http.ca-file",
            format!("[preconditions.p]\n{}\n\n[steps.a]\ncmd = [\"true\"]\n", ca(markup)),
        ));
    }
    for (field, body) in &corpus {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(d, "rb/s.sql", "SELECT 1;\n");
        write(d, "rb/t.toml", &format!("{head}{body}"));
        let out = run_in(d, &["check", "rb/t.toml"]);
        assert_eq!(out.code, 3, "{field} in\n{body}\n{out:?}");
        assert!(
            out.stderr.contains("error[RB033]") && out.stderr.contains(&format!("`{field}`")),
            "{field} in\n{body}\n{out:?}"
        );
        assert!(out.stderr.contains("rb/t.toml:"), "no file:line:col:\n{out:?}");
        assert!(out.stderr.contains("never rendered"), "no hint:\n{out:?}");
    }
    // The message a user reads.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "rb/t.toml", &format!("{head}[steps.a]\n{}\n", ca("{{ params.ca }}")));
    let out = run_in(d, &["check", "rb/t.toml"]);
    insta::assert_snapshot!(out.stderr);
}
