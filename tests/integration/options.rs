//! A template value never becomes an option of the program that receives it (issue 12,
//! data finding 2, promise 4).
//!
//! `git ls-remote "$RB_1"` with `--upload-pack=CMD` ran CMD: quoting made the value one
//! word, and git read that word as an option. A value that starts with `-` and stands as a
//! whole argument is refused when it is bound (the step fails before it starts), unless it is
//! a number or follows `--`; `check` refuses it where it is known statically (RB083).

use std::path::Path;

use crate::contexts::{run, write};
use crate::support::run_in;

/// A scratch folder with `canaries/` (empty unless a value ran), `bin/` for fake programs,
/// and the corpus of values.
struct Sandbox {
    dir: tempfile::TempDir,
    canaries: std::path::PathBuf,
    bin: std::path::PathBuf,
    values: Vec<String>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let canaries = dir.path().join("canaries");
        let bin = dir.path().join("bin");
        for d in [&canaries, &bin] {
            std::fs::create_dir_all(d).expect("dir");
        }
        let values = values(&canaries);
        Sandbox { dir, canaries, bin, values }
    }

    /// Write an executable `bin/NAME`.
    fn program(&self, name: &str, text: &str) {
        let path = self.bin.join(name);
        std::fs::write(&path, text).expect("program");
        let mut perm = std::fs::metadata(&path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).expect("chmod");
    }

    /// `PATH` with `bin/` first.
    fn path(&self) -> String {
        format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default())
    }

    /// No canary was created.
    fn no_canary(&self) {
        let injected: Vec<_> =
            std::fs::read_dir(&self.canaries).expect("canaries").flatten().map(|e| e.file_name()).collect();
        assert!(injected.is_empty(), "values ran as commands: {injected:?}");
    }
}

/// The red team's case: `git_remote = "--upload-pack=touch MARKER;:"` in a precondition and
/// in a first step (`needs = []`) of real `git ls-remote`, as in deploy.toml and
/// rollback-l3.toml. Nothing runs, and the message says why.
#[test]
fn regression_git_remote_option_runs_no_command() {
    for (name, runbook) in [
        (
            "precondition",
            "[runbook]\nname = \"r\"\n[params.git_remote]\ntype = \"string\"\n[preconditions.remote_reachable]\nrun = \"git ls-remote --exit-code --heads {{ params.git_remote }} refs/heads/main > /dev/null\"\n[steps.a]\nrun = \"true\"\n",
        ),
        (
            "step",
            "[runbook]\nname = \"r\"\n[params.git_remote]\ntype = \"string\"\n[steps.observe_version_before]\nneeds = []\nrun = \"git ls-remote --tags \\\"{{ params.git_remote }}\\\" || true\"\n",
        ),
        (
            "cmd",
            "[runbook]\nname = \"r\"\n[params.git_remote]\ntype = \"string\"\n[steps.observe]\ncmd = [\"git\", \"ls-remote\", \"--tags\", \"{{ params.git_remote }}\"]\n",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("pwned");
        write(
            dir.path(),
            runbook,
            &format!(
                "git_remote = {}\n",
                crate::injection::toml_string(&format!("--upload-pack=touch {};:", marker.display()))
            ),
        );
        let out = run(dir.path());
        assert!(
            !marker.exists(),
            "{name}: the value ran a command through git: {}{}",
            out.stdout,
            out.stderr
        );
        assert_ne!(out.code, 0, "{name}: {}", out.stdout);
        assert!(out.stderr.contains("starts with `-`"), "{name}: {}", out.stderr);
    }
}

/// Commands (`@` is the value) where a value begins an argument of a program that reads
/// options: git, pg_dump, psql, curl, tar, rsync, ssh's scp, find, builtins and functions,
/// behind prefixes, in pipelines, substitutions and compound commands.
const REFUSED_RUN: &[&str] = &[
    "git ls-remote --exit-code --heads @ refs/heads/main > /dev/null",
    "git ls-remote \"@\"",
    "git fetch --tags origin @",
    "git -C /tmp push @ v1",
    "git checkout --detach @",
    "pg_dump @",
    "pg_dump --format=custom \"@\" > /dev/null",
    "pg_restore --dbname=app @",
    "curl -fsS @",
    "curl -o /tmp/x \"@\"",
    "tar -czf /tmp/x.tgz @",
    "tar -xf @ -C /tmp",
    "rsync -a @ /tmp/copy",
    "rsync -a /tmp/src/ \"@\"",
    "scp @ host:/tmp",
    "find /tmp @",
    "echo \"@\"",
    "printf '%s\\n' x \"@\"",
    "cd @",
    "f() { :; }; f @",
    "sudo -u app git fetch @",
    "sudo -- git fetch @",
    "timeout 5 git fetch @",
    "x=$(git rev-parse @)",
    "{ git fetch @; } 2>&1",
    "if git ls-remote @; then :; fi",
    "git ls-remote @ | wc -l",
    "( cd /tmp && tar -xf \"@\" )",
    "test -n @",
    "[ @ = x ]",
    "git fetch origin \"@\"\"@\"",
    // Through a variable that begins with the value.
    "remote=@; git fetch --tags \"$remote\" main",
    "dump=@\npg_restore --clean \"${dump}\"",
    "f() { local d=@; tar -xf \"$d/a.tgz\"; }; f",
];

/// `cmd` arrays where a value begins an argument.
const REFUSED_CMD: &[&[&str]] = &[
    &["git", "ls-remote", "@"],
    &["git", "@"],
    &["pg_dump", "-Fc", "@"],
    &["psql", "-X", "-d", "@"],
    &["curl", "-o", "/tmp/x", "@"],
    &["tar", "-xf", "@"],
    &["rsync", "-a", "@", "/tmp/c"],
    &["sudo", "--", "git", "fetch", "@"],
    &["env", "--", "git", "fetch", "@"],
];

/// The values: every value of the hostile corpus that starts with `-`, and options that run
/// a command or write a file in the programs above.
fn values(canaries: &Path) -> Vec<String> {
    let c = canaries.join("CANARY").display().to_string();
    let mut v: Vec<String> =
        crate::injection::corpus(canaries).into_iter().filter(|v| v.starts_with('-')).collect();
    v.extend([
        format!("--upload-pack=touch {c};:"),
        format!("--checkpoint-action=exec=touch {c}"),
        format!("-e touch {c}"),
        format!("--rsh=touch {c}"),
        format!("--to-command=touch {c}"),
        format!("-oProxyCommand=touch {c}"),
        format!("--output={c}"),
        "-exec".to_string(),
        "--config=core.sshCommand=touch".to_string(),
        "-x".to_string(),
        "-5x".to_string(),
    ]);
    v
}

fn runbook_with(steps: &[String], values: usize) -> String {
    let mut r = String::from("[runbook]\nname = \"options\"\n");
    for i in 0..values {
        r.push_str(&format!("[params.v{i}]\ntype = \"string\"\n"));
    }
    r.push_str(&steps.concat());
    r
}

fn params(values: &[String]) -> String {
    values.iter().enumerate().map(|(i, v)| format!("v{i} = {}\n", crate::injection::toml_string(v))).collect()
}

/// Every program, every position, every value: `plan` refuses each step with the reason, and
/// `run` fails before the program starts (fake programs on `PATH` record every call).
#[test]
fn values_that_begin_an_argument_never_become_options() {
    let sb = Sandbox::new();
    let (dir, values) = (&sb.dir, &sb.values);
    assert!(values.len() >= 15, "{} values", values.len());
    let calls = dir.path().join("calls");
    for program in
        ["git", "pg_dump", "pg_restore", "psql", "curl", "tar", "rsync", "scp", "find", "sudo", "timeout"]
    {
        sb.program(program, &format!("#!/bin/sh\necho {program} \"$@\" >> '{}'\n", calls.display()));
    }
    let path = sb.path();
    let mut cases = 0;
    let positions: Vec<(String, bool)> = REFUSED_RUN
        .iter()
        .map(|t| (t.to_string(), true))
        .chain(REFUSED_CMD.iter().map(|a| {
            let elems: Vec<String> = a.iter().map(|e| crate::injection::toml_string(e)).collect();
            (format!("[{}]", elems.join(", ")), false)
        }))
        .collect();
    for (position, is_run) in &positions {
        // `plan`: one step per value, each refused with the reason.
        let steps: Vec<String> = (0..values.len())
            .map(|i| {
                let t = position.replace('@', &format!("{{{{ params.v{i} }}}}"));
                if *is_run {
                    format!("[steps.s{i}]\nneeds = []\nrun = {}\n", crate::injection::toml_string(&t))
                } else {
                    format!("[steps.s{i}]\nneeds = []\ncmd = {t}\n")
                }
            })
            .collect();
        std::fs::write(dir.path().join("r.toml"), runbook_with(&steps, values.len())).expect("runbook");
        std::fs::write(dir.path().join("p.toml"), params(values)).expect("params");
        let check = run_in(dir.path(), &["check", "r.toml"]);
        assert_eq!(check.code, 0, "{position}: check passes (values are not known yet): {}", check.stderr);
        let plan = run_in(dir.path(), &["plan", "r.toml", "--params-file", "p.toml"]);
        assert_ne!(plan.code, 0, "{position}: {}", plan.stdout);
        let refused =
            plan.stderr.lines().filter(|l| l.starts_with("r.toml:") && l.contains("starts with `-`")).count();
        assert_eq!(refused, values.len(), "{position}: {}", plan.stderr);
        cases += refused;
        // `run`, one value: the step fails before its program starts.
        let one = &steps[..1];
        std::fs::write(dir.path().join("r.toml"), runbook_with(one, values.len())).expect("runbook");
        let state = format!("s{cases}.db");
        let run = crate::support::run_in_with_env(
            dir.path(),
            &["run", "r.toml", "--params-file", "p.toml", "--state", &state, "--yes"],
            &[("PATH", &path)],
        );
        assert_ne!(run.code, 0, "{position}: {}", run.stdout);
        assert!(
            run.stderr.contains("starts with `-`") || run.stdout.contains("starts with `-`"),
            "{position}: {}{}",
            run.stdout,
            run.stderr
        );
        assert!(
            !calls.exists(),
            "{position}: a program ran: {}",
            std::fs::read_to_string(&calls).unwrap_or_default()
        );
    }
    sb.no_canary();
    assert!(cases >= 500, "{cases} cases");
}

/// Where a value that starts with `-` is not an option, it is not refused and arrives byte
/// for byte: after `--`, glued to an option, inside a word, in an assignment, a heredoc, a
/// comment, `[[ ]]`, `case`, `for`; and a number is never refused.
const ALLOWED_RUN: &[(&str, Option<&str>)] = &[
    ("rec -- @", Some("@")),
    ("rec --remote=@", Some("--remote=@")),
    ("rec -C@", Some("-C@")),
    ("rec \"refs/@\"", Some("refs/@")),
    ("rec x -- \"@\"", Some("@")),
    ("x=@; rec -- \"$x\"", Some("@")),
    ("export X=@; rec -- \"$X\"", Some("@")),
    ("rec -- < /dev/null @", Some("@")),
    ("[[ @ == -* ]] && rec ok", Some("ok")),
    ("case @ in -*) rec ok;; esac", Some("ok")),
    ("for i in @; do rec -- \"$i\"; done", Some("@")),
    ("# @\nrec ok", Some("ok")),
    ("rec ok > /dev/null <<EOF\n@\nEOF\nrec ok", Some("ok")),
    ("printf '%s' \"-- @\" > /dev/null; rec ok", Some("ok")),
];

const ALLOWED_CMD: &[(&[&str], &str)] = &[
    (&["rec", "--", "@"], "@"),
    (&["rec", "--remote=@"], "--remote=@"),
    (&["rec", "-C@"], "-C@"),
    (&["rec", "refs/@"], "refs/@"),
];

#[test]
fn values_that_are_not_options_arrive_and_numbers_are_never_refused() {
    let sb = Sandbox::new();
    let (dir, values) = (&sb.dir, &sb.values);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("out");
    // `rec FILE ARGS...` writes its arguments, NUL-terminated, to FILE.
    sb.program("rec", "#!/bin/sh\nf=$1; shift\nprintf '%s\\0' \"$@\" > \"$f\"\n");
    let path = sb.path();
    let mut r = String::from("[runbook]\nname = \"options\"\nmax-parallel = 2\n");
    for i in 0..values.len() {
        r.push_str(&format!("[params.v{i}]\ntype = \"string\"\n"));
    }
    r.push_str("[params.n]\ntype = \"integer\"\n[params.x]\ntype = \"number\"\n");
    let mut expected: Vec<(String, String)> = Vec::new();
    for (c, (text, want)) in ALLOWED_RUN.iter().enumerate() {
        for (i, v) in values.iter().enumerate() {
            let file = out.join(format!("r{c}-{i}"));
            let t = text
                .replace("rec ", &format!("rec {} ", file.display()))
                .replace('@', &format!("{{{{ params.v{i} }}}}"));
            r.push_str(&format!(
                "[steps.r{c}_{i}]\nneeds = []\nrun = {}\n",
                crate::injection::toml_string(&t)
            ));
            if let Some(w) = want {
                expected.push((file.display().to_string(), w.replace('@', v)));
            }
        }
    }
    for (c, (argv, want)) in ALLOWED_CMD.iter().enumerate() {
        for (i, v) in values.iter().enumerate() {
            let file = out.join(format!("c{c}-{i}"));
            let mut elems = vec![
                crate::injection::toml_string("rec"),
                crate::injection::toml_string(&file.display().to_string()),
            ];
            elems.extend(
                argv[1..].iter().map(|e| {
                    crate::injection::toml_string(&e.replace('@', &format!("{{{{ params.v{i} }}}}")))
                }),
            );
            r.push_str(&format!("[steps.c{c}_{i}]\nneeds = []\ncmd = [{}]\n", elems.join(", ")));
            expected.push((file.display().to_string(), want.replace('@', v)));
        }
    }
    // Numbers, typed or not, where options are read.
    for (k, (text, want)) in [
        ("rec {{ params.n }}", "-5"),
        ("rec \"{{ params.x }}\"", "-0.5"),
        ("rec {{ params.v0 | length * -1 }}", ""),
    ]
    .iter()
    .enumerate()
    {
        let file = out.join(format!("n{k}"));
        let t = text.replace("rec ", &format!("rec {} ", file.display()));
        r.push_str(&format!("[steps.n{k}]\nneeds = []\nrun = {}\n", crate::injection::toml_string(&t)));
        if !want.is_empty() {
            expected.push((file.display().to_string(), want.to_string()));
        }
    }
    let mut p = params(values);
    p.push_str("n = -5\nx = -0.5\n");
    std::fs::write(dir.path().join("r.toml"), r).expect("runbook");
    std::fs::write(dir.path().join("p.toml"), p).expect("params");
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let run = crate::support::run_in_with_env(
        dir.path(),
        &["run", "r.toml", "--params-file", "p.toml", "--state", "s.db", "--yes"],
        &[("PATH", &path)],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for (file, want) in &expected {
        let got = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = String::from_utf8_lossy(&got);
        let args: Vec<&str> = got.trim_end_matches('\0').split('\0').collect();
        assert!(args.contains(&want.as_str()), "{file}: {want:?} not in {args:?}");
    }
    assert!(expected.len() >= 300, "{} cases", expected.len());
    sb.no_canary();
}

/// What `check` can know: a parameter whose `default` or `enum` starts with `-`, where it
/// begins an argument, is RB059 at its `file:line:col`, in `run` text and in `cmd`; the same
/// parameter after `--` or glued to an option passes. Other values are refused when bound,
/// with a message that says why and what to write instead.
#[test]
fn check_refuses_a_known_option_value_where_it_begins_an_argument() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = "[runbook]\nname = \"r\"\n[params.mode]\ntype = \"string\"\nenum = [\"--force\", \"plain\"]\n[params.file]\ntype = \"string\"\ndefault = \"-rf\"\n";
    let refused = format!(
        "{head}[steps.push]\nrun = \"git push origin {{{{ params.mode }}}}\"\n[steps.rm]\ncmd = [\"rm\", \"{{{{ params.file }}}}\"]\n"
    );
    std::fs::write(dir.path().join("r.toml"), &refused).expect("runbook");
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    assert!(check.stderr.contains("r.toml:10:24: error[RB059]"), "{}", check.stderr);
    assert!(check.stderr.contains("r.toml:12:15: error[RB059]"), "{}", check.stderr);
    insta::assert_snapshot!("option_value_check", check.stderr);
    let allowed = format!(
        "{head}[steps.push]\nrun = \"git push origin -- {{{{ params.mode }}}} && git push --repo={{{{ params.mode }}}}\"\n[steps.rm]\ncmd = [\"rm\", \"--\", \"{{{{ params.file }}}}\"]\n"
    );
    std::fs::write(dir.path().join("r.toml"), &allowed).expect("runbook");
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    // The bind-time refusal, as a user reads it.
    write(
        dir.path(),
        "[runbook]\nname = \"r\"\n[params.remote]\ntype = \"string\"\n[steps.fetch]\nrun = \"git fetch {{ params.remote }}\"\n",
        "remote = \"--upload-pack=touch /tmp/x\"\n",
    );
    let plan = run_in(dir.path(), &["plan", "r.toml", "--params-file", "p.toml"]);
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    insta::assert_snapshot!("option_value_plan", plan.stderr);
}
