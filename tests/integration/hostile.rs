//! Hostile input never crashes, hangs or blows up (issue 11, promise 5): included files
//! that are not runbooks (or not files), templates nested past the parser's stack, lines
//! past miette's columns, thousands of unknown references, corrupt state files. Each case
//! runs the real binary under a generous time limit that only turns a hang into a failure.

use std::path::Path;
use std::time::Duration;

use crate::support::{HUNG, Output, run_limited};

/// Only to catch hangs; never a speed assertion. (A corrupt state file must be answered
/// before the 30 s after which the pool used to give up.)
const LIMIT: Duration = Duration::from_secs(20);

/// The same for the big generated files of the class tests (32,000 steps, keys or
/// references: about 10 s each in a debug build on a quiet machine), on a loaded one: CI
/// with other builds on the same 2 cores measured over 60 s. What this catches, a
/// quadratic pass or a hang, takes minutes to hours on these inputs.
const LIMIT_BIG: Duration = Duration::from_secs(180);

fn write(dir: &Path, file: &str, text: &str) {
    if let Some(parent) = dir.join(file).parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(dir.join(file), text).expect("write");
}

fn check(dir: &Path, args: &[&str]) -> Output {
    run_limited(dir, args, &[], LIMIT_BIG)
}

/// Invalid input: exit 3, a diagnostic with a code, no crash and no hang.
fn refused(out: &Output, what: &str) {
    assert_ne!(out.code, HUNG, "{what}: hung");
    assert_eq!(
        out.code,
        3,
        "{what}: exit {}\nstderr: {}",
        out.code,
        &out.stderr[..out.stderr.len().min(3000)]
    );
    assert!(out.stderr.contains("error"), "{what}: {}", &out.stderr[..out.stderr.len().min(3000)]);
}

fn including(file: &str) -> String {
    format!("[runbook]\nname = \"p\"\n[steps.inc]\nrunbook = {{ file = \"{file}\" }}\n")
}

const SENTINEL: &str = "tok-5eNt1nel-9f2c";

#[test]
fn regression_include_of_proc_environ_is_refused_unquoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "r.toml", &including("/proc/self/environ"));
    let out = run_limited(d, &["check", "r.toml"], &[("CI_TOKEN", SENTINEL)], LIMIT);
    refused(&out, "/proc/self/environ");
    assert!(!out.stderr.contains(SENTINEL), "the environment was printed:\n{}", out.stderr);
    assert!(out.stderr.contains("/proc/self/environ"), "{}", out.stderr);
}

#[test]
fn regression_include_outside_the_runbook_folder_is_refused_unquoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "app.env", &format!("DATABASE_PASSWORD={SENTINEL}\n"));
    write(d, "ops/runbooks/r.toml", &including("../../app.env"));
    let out = check(&d.join("ops/runbooks"), &["check", "r.toml"]);
    refused(&out, "../../app.env");
    assert!(!out.stderr.contains(SENTINEL), "the file was printed:\n{}", out.stderr);
    assert!(out.stderr.contains("outside the folder"), "{}", out.stderr);
    // A symbolic link inside the folder that leads out of it is refused the same way.
    std::os::unix::fs::symlink(d.join("app.env"), d.join("ops/runbooks/app.toml")).expect("symlink");
    write(d, "ops/runbooks/s.toml", &including("app.toml"));
    let out = check(&d.join("ops/runbooks"), &["check", "s.toml"]);
    refused(&out, "symlink out");
    assert!(!out.stderr.contains(SENTINEL), "the file was printed:\n{}", out.stderr);
}

#[test]
fn regression_include_of_a_file_that_is_not_a_runbook_is_not_quoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "secrets.env", &format!("PASSWORD={SENTINEL}\nexport X=1\n"));
    write(d, "vars.toml", &format!("password = \"{SENTINEL}\"\n[db]\nhost = 1 2\n"));
    for file in ["secrets.env", "vars.toml"] {
        write(d, "r.toml", &including(file));
        let out = check(d, &["check", "r.toml"]);
        refused(&out, file);
        assert!(!out.stderr.contains(SENTINEL), "{file} was printed:\n{}", out.stderr);
        assert!(out.stderr.contains("RB064") && out.stderr.contains("is not a runbook"), "{}", out.stderr);
    }
}

#[test]
fn regression_special_files_as_includes_params_and_runbooks_do_not_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let fifo = d.join("pipe.toml");
    nix_mkfifo(&fifo);
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.toml")).expect("symlink");
    std::os::unix::fs::symlink("/dev/urandom", d.join("random.sql")).expect("symlink");
    write(d, "ok.toml", "[runbook]\nname = \"ok\"\n[steps.a]\nrun = \"true\"\n");
    write(
        d,
        "sql.toml",
        "[runbook]\nname = \"s\"\n[steps.a]\nsql = { url = \"sqlite:x.db\", file = \"random.sql\" }\n",
    );
    for target in ["pipe.toml", "zero.toml"] {
        write(d, "r.toml", &including(target));
        refused(&check(d, &["check", "r.toml"]), &format!("include {target}"));
        refused(&check(d, &["check", target]), &format!("check {target}"));
        refused(&check(d, &["plan", "ok.toml", "--params-file", target]), &format!("params file {target}"));
    }
    refused(&check(d, &["check", "/dev/zero"]), "check /dev/zero");
    refused(&check(d, &["plan", "sql.toml"]), "sql file /dev/urandom");
    refused(&check(d, &["run", "--plan", "pipe.toml"]), "plan from a FIFO");
}

fn nix_mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[test]
fn regression_deep_templates_are_refused_before_compiling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = [
        ("30,000 not", format!("{{{{ {}params.x }}}}", "not ".repeat(30_000))),
        ("50,000 +", format!("{{{{ {} }}}}", vec!["params.x"; 50_000].join(" + "))),
        ("100,000 filters", format!("{{{{ params.x{} }}}}", "|lower".repeat(100_000))),
    ];
    for (what, template) in cases {
        write(
            d,
            "r.toml",
            &format!(
                "[runbook]\nname = \"t\"\n[params.x]\ntype = \"string\"\ndefault = \"a\"\n[steps.a]\nrun = \"echo {template}\"\n"
            ),
        );
        let out = check(d, &["check", "r.toml"]);
        refused(&out, what);
        assert!(out.stderr.contains("RB049"), "{what}: {}", &out.stderr[..out.stderr.len().min(2000)]);
        // The same in an expression.
        let expr = template.trim_start_matches("{{ ").trim_end_matches(" }}").to_string();
        write(
            d,
            "r.toml",
            &format!(
                "[runbook]\nname = \"t\"\n[params.x]\ntype = \"string\"\ndefault = \"a\"\n[steps.a]\nwhen = \"{expr}\"\nrun = \"true\"\n"
            ),
        );
        let out = check(d, &["check", "r.toml"]);
        refused(&out, what);
        assert!(out.stderr.contains("RB049"), "{what} (when): {}", &out.stderr[..out.stderr.len().min(2000)]);
    }
}

#[test]
fn regression_a_diagnostic_past_column_65535_is_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pad = "x".repeat(200_000);
    write(
        d,
        "r.toml",
        &format!("[runbook]\nname = \"t\"\n[steps.a]\nrun = \"echo {pad} {{{{ params.nope }}}}\"\n"),
    );
    let out = check(d, &["check", "r.toml"]);
    refused(&out, "column 200,000");
    assert!(out.stderr.contains("r.toml:4:200017"), "{}", &out.stderr[..out.stderr.len().min(2000)]);
    assert!(out.stderr.contains("too long to show"), "{}", &out.stderr[..out.stderr.len().min(2000)]);
    assert!(out.stderr.len() < 10_000, "the long line was printed");
    let json = check(d, &["check", "r.toml", "--format", "json"]);
    assert_eq!(json.code, 3, "{}", json.stderr);
    // A TOML syntax error at the end of a long line, too.
    write(d, "r.toml", &format!("[runbook]\nname = \"t\"\nx = \"{pad}\" 1\n"));
    refused(&check(d, &["check", "r.toml"]), "syntax error at column 200,000");
}

#[test]
fn regression_thousands_of_unknown_references_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let n = 32_000;
    let mut text = String::from("[runbook]\nname = \"big\"\n");
    for i in 0..n {
        text.push_str(&format!("[steps.s{i:05}]\nrun = \"true\"\nneeds = [\"missing{i:05}\"]\n"));
    }
    write(d, "refs.toml", &text);
    let out = check(d, &["check", "refs.toml"]);
    refused(&out, "32,000 unknown needs");
    // Every unknown need, and RB065: more than 10,000 steps (adv17b F10).
    assert!(out.stderr.contains("error[RB065]: this runbook has 32000 steps"), "the step bound is said too");
    assert!(
        out.stderr.contains(&format!("{} problems", n + 1)),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(500)..]
    );
    let mut text = String::from("[runbook]\nname = \"big\"\n[steps.a]\nrun = \"true\"\n");
    for i in 0..n {
        text.push_str(&format!("runn{i:05} = 1\n"));
    }
    write(d, "keys.toml", &text);
    refused(&check(d, &["check", "keys.toml"]), "32,000 unknown keys");
    let mut text = String::from("[runbook]\nname = \"big\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[steps.s{i:05}]\nrun = \"echo {{{{ steps.t{i:05}.outputs.x }}}} {{{{ params.p{i:05} }}}}\"\n"
        ));
    }
    write(d, "vars.toml", &text);
    refused(&check(d, &["check", "vars.toml"]), "64,000 unknown template references");
}

#[test]
fn regression_a_corrupt_state_file_is_reported_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A real store to damage.
    write(d, "r.toml", "[runbook]\nname = \"ok\"\n[steps.a]\nrun = \"true\"\n");
    let good = run_limited(d, &["run", "r.toml", "--yes", "--state", "good.db"], &[], LIMIT);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let db = std::fs::read(d.join("good.db")).expect("db");
    let mut random = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..65_536 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push(x as u8);
    }
    let mut damaged = db.clone();
    for b in damaged.iter_mut().skip(100).take(db.len() / 2) {
        *b = 0xff;
    }
    let kinds: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random.clone()),
        ("truncated sqlite", db[..db.len() / 3].to_vec()),
        ("damaged sqlite", damaged),
        ("a text file", b"this is not a database\n".repeat(100)),
        ("sqlite header then random", [&db[..100], &random[..8000]].concat()),
    ];
    for (what, bytes) in &kinds {
        std::fs::write(d.join("bad.db"), bytes).expect("write");
        for args in [
            &["runs", "--state", "bad.db"][..],
            &["run", "r.toml", "--yes", "--state", "bad.db"],
            &["state", "check", "--state", "bad.db"],
        ] {
            let out = run_limited(d, args, &[], LIMIT);
            assert_ne!(out.code, HUNG, "{what}: {args:?} hung");
            assert_eq!(out.code, 5, "{what}: {args:?}: {}", out.stderr);
            assert!(out.stderr.contains("bad.db"), "{what}: {}", out.stderr);
            assert!(!out.stderr.contains("pool timed out"), "{what}: {}", out.stderr);
            assert!(out.stderr.contains("help:"), "{what}: {}", out.stderr);
        }
    }
    // A directory in the file's place.
    std::fs::create_dir_all(d.join("dir.db")).expect("dir");
    let out = run_limited(d, &["runs", "--state", "dir.db"], &[], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("directory"), "{}", out.stderr);
    // An empty file is an empty store (SQLite's rule): it works at once.
    std::fs::write(d.join("empty.db"), b"").expect("write");
    let out = run_limited(d, &["run", "r.toml", "--yes", "--state", "empty.db"], &[], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A small deterministic generator (xorshift), so a failing case can be replayed by seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A deep template of one of the constructs that nest in minijinja.
fn deep_template(g: &mut Gen, depth: usize) -> String {
    match g.below(6) {
        0 => format!("{}params.x", "not ".repeat(depth)),
        1 => vec!["params.x"; depth].join(g.pick(&[" + ", " ~ ", " and ", " * ", " == "])),
        2 => format!("params.x{}", g.pick(&["|lower", "|upper", "|trim", "|length"]).repeat(depth)),
        3 => format!("{}params.x{}", "(".repeat(depth), ")".repeat(depth)),
        4 => format!("{}params.x{}", "[".repeat(depth), "]".repeat(depth)),
        _ => format!("{}params.x{}", "-".repeat(depth), ""),
    }
}

/// One generated hostile runbook: its text and what it is.
fn hostile_runbook(g: &mut Gen) -> (String, String) {
    let head = "[runbook]\nname = \"gen\"\n[params.x]\ntype = \"string\"\ndefault = \"a\"\n";
    match g.below(9) {
        0 => {
            let depth = [250, 2_000, 30_000, 100_000][g.below(4) as usize];
            let t = deep_template(g, depth);
            let place = g.pick(&["run", "when", "title", "env"]);
            let body = match place {
                "when" => format!("when = \"{t}\"\nrun = \"true\"\n"),
                "title" => format!("title = \"{{{{ {t} }}}}\"\nrun = \"true\"\n"),
                "env" => format!("env = {{ X = \"{{{{ {t} }}}}\" }}\nrun = \"true\"\n"),
                _ => format!("run = \"echo {{{{ {t} }}}}\"\n"),
            };
            (format!("{head}[steps.a]\n{body}"), format!("template depth {depth} in {place}"))
        }
        1 => {
            let blocks = [60, 1_000, 20_000][g.below(3) as usize];
            let t = format!("{}x{}", "{% if params.x %}".repeat(blocks), "{% endif %}".repeat(blocks));
            (format!("{head}[steps.a]\nrun = \"{t}\"\n"), format!("{blocks} nested blocks"))
        }
        2 => {
            let depth = [1_000, 10_000, 100_000][g.below(3) as usize];
            let (open, close) = match g.below(3) {
                0 => ("[".repeat(depth), "]".repeat(depth)),
                1 => ("{ a = ".repeat(depth), " }".repeat(depth)),
                _ => (String::new(), String::new()),
            };
            let value = if open.is_empty() {
                format!("[steps.{}]\nrun = \"true\"\n", vec!["a"; depth].join("."))
            } else {
                format!("[steps.a]\nrun = \"true\"\nx = {open}1{close}\n")
            };
            (format!("{head}{value}"), format!("TOML nesting {depth}"))
        }
        3 => {
            let width = [70_000, 200_000, 1_000_000][g.below(3) as usize];
            let pad = "y".repeat(width);
            let text = match g.below(4) {
                0 => format!("{head}[steps.a]\nrun = \"echo {pad} {{{{ params.nope }}}}\"\n"),
                1 => format!("{head}[steps.a]\nrun = \"echo {pad}\" junk\n"),
                2 => format!("{head}[steps.a]\nrun = \"true\"\n{pad} = 1\n"),
                _ => format!("{head}[steps.a]\nrun = \"true\"\nneeds = [\"{pad}\"]\n"),
            };
            (text, format!("line of {width} columns"))
        }
        4 => {
            let n = [2_000, 8_000, 16_000][g.below(3) as usize];
            let mut text = head.to_string();
            for i in 0..n {
                let line = match g.below(4) {
                    0 => format!("[steps.s{i}]\nrun = \"true\"\nneeds = [\"t{i}\"]\n"),
                    1 => format!("[steps.s{i}]\nrun = \"echo {{{{ steps.u{i}.outputs.o }}}}\"\n"),
                    2 => format!("[steps.s{i}]\nrunn = \"true\"\n"),
                    _ => {
                        format!("[steps.s{i}]\nrun = \"echo {{{{ params.p{i} }}}} {{{{ secrets.S{i} }}}}\"\n")
                    }
                };
                text.push_str(&line);
            }
            (text, format!("{n} steps with unknown references"))
        }
        5 => {
            let n = [5_000, 20_000][g.below(2) as usize];
            let mut text = head.to_string();
            for i in 0..n {
                text.push_str(&format!("[steps.s{i}]\nrun = \"true\"\nneeds = [\"s{}\"]\n", (i + 1) % n));
            }
            (text, format!("a cycle of {n} steps"))
        }
        6 => {
            let bytes: Vec<u8> = (0..g.below(100_000) + 1).map(|_| g.next() as u8).collect();
            (String::from_utf8_lossy(&bytes).into_owned(), "random bytes".into())
        }
        7 => {
            let n = [1_000, 20_000][g.below(2) as usize];
            let mut text = head.to_string();
            text.push_str("[steps.a]\nrun = \"true\"\n");
            for i in 0..n {
                text.push_str(&format!("[params.p{i}]\ntype = \"strin\"\n"));
            }
            (text, format!("{n} bad params"))
        }
        _ => {
            let s = "\"".repeat(g.below(50_000) as usize + 1);
            (format!("{head}[steps.a]\nrun = {s}\n"), "unbalanced quotes".into())
        }
    }
}

/// Class test: generated hostile runbooks and special files, through `check` and `plan`.
/// Every one must be refused with exit 3 and a diagnostic: no panic (101), abort (134),
/// signal or hang. The limit per process only turns a hang into a failure.
#[test]
fn class_hostile_corpus_is_refused_without_crash_or_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let seed =
        std::env::var("HOSTILE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut g = Gen(seed);
    let trials = 60;
    for trial in 0..trials {
        let (text, what) = hostile_runbook(&mut g);
        write(d, "gen.toml", &text);
        for cmd in ["check", "plan"] {
            let out = check(d, &[cmd, "gen.toml"]);
            refused(&out, &format!("seed {seed:#x} trial {trial} ({what}) through {cmd}"));
            assert!(out.stderr.contains("error["), "trial {trial} ({what}): no coded diagnostic");
        }
    }
    // Special files in every place that names a file.
    nix_mkfifo(&d.join("fifo"));
    std::fs::create_dir_all(d.join("adir")).expect("dir");
    std::fs::write(d.join("big"), vec![b'#'; 9 * 1024 * 1024]).expect("big");
    for (i, target) in
        ["fifo", "/dev/zero", "/dev/urandom", "adir", "/proc/self/environ", "/proc/self/mem", "big"]
            .iter()
            .enumerate()
    {
        let link = format!("special{i}");
        let _ = std::fs::remove_file(d.join(&link));
        std::os::unix::fs::symlink(
            if target.starts_with('/') { target.to_string() } else { d.join(target).display().to_string() },
            d.join(&link),
        )
        .expect("symlink");
        let places = [
            including(&link),
            format!(
                "[runbook]\nname = \"s\"\n[steps.a]\nsql = {{ url = \"sqlite:x.db\", file = \"{link}\" }}\n"
            ),
            format!(
                "[runbook]\nname = \"h\"\n[steps.a]\nhttp = {{ url = \"https://127.0.0.1:9/\", ca-file = \"{link}\" }}\n"
            ),
        ];
        for (p, text) in places.iter().enumerate() {
            write(d, "gen.toml", text);
            // An include is read by `check`; scripts and CA files by `plan` (they are digested).
            let cmd = if p == 0 { "check" } else { "plan" };
            refused(&check(d, &[cmd, "gen.toml"]), &format!("{target} as place {p}"));
        }
        write(d, "ok.toml", "[runbook]\nname = \"ok\"\n[steps.a]\nrun = \"true\"\n");
        refused(&check(d, &["plan", "ok.toml", "--params-file", &link]), &format!("{target} as params file"));
        refused(&check(d, &["check", &link]), &format!("{target} as the runbook"));
        refused(&check(d, &["run", "--plan", &link, "--state", "s.db"]), &format!("{target} as a plan"));
    }
}

/// A CI job may run `check` on file names an attacker chose: a link named like a runbook
/// to a file outside, or a file that is not a runbook, is refused in one line.
#[test]
fn regression_check_does_not_quote_a_named_file_that_is_not_a_runbook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "app.env", &format!("DATABASE_PASSWORD={SENTINEL}\n"));
    write(d, "repo/notes.txt", &format!("token = {SENTINEL}\n"));
    std::os::unix::fs::symlink(d.join("app.env"), d.join("repo/evil.toml")).expect("symlink");
    for name in ["evil.toml", "notes.txt", "../app.env"] {
        let out = check(&d.join("repo"), &["check", name]);
        refused(&out, name);
        assert!(!out.stderr.contains(SENTINEL), "{name} was quoted:\n{}", out.stderr);
        assert!(out.stderr.contains("not a runbook"), "{name}: {}", out.stderr);
    }
    // The same for a params file.
    write(d, "repo/ok.toml", "[runbook]\nname = \"ok\"\n[steps.a]\nrun = \"true\"\n");
    for name in ["evil.toml", "notes.txt", "../app.env"] {
        let out = check(&d.join("repo"), &["plan", "ok.toml", "--params-file", name]);
        refused(&out, name);
        assert!(!out.stderr.contains(SENTINEL), "params file {name} was quoted:\n{}", out.stderr);
    }
    // A runbook being written, with a syntax error, is still quoted: that is how it is fixed.
    write(d, "repo/wip.toml", "[runbook]\nname = \"wip\"\n[steps.a]\nrun = \"true\" oops\n");
    let out = check(&d.join("repo"), &["check", "wip.toml"]);
    refused(&out, "wip.toml");
    assert!(out.stderr.contains("oops"), "{}", out.stderr);
}

/// A secret file that is a FIFO or a device is refused when the run starts: no hang, no
/// read until memory runs out, nothing run.
#[test]
fn regression_special_secret_files_do_not_hang_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    nix_mkfifo(&d.join("token.fifo"));
    for source in ["token.fifo", "/dev/zero"] {
        write(
            d,
            "r.toml",
            &format!(
                "[runbook]\nname = \"s\"\n[secrets.TOKEN]\nfile = \"{source}\"\n[steps.a]\nrun = \"touch ran\"\nenv = {{ T = \"{{{{ secrets.TOKEN }}}}\" }}\n"
            ),
        );
        let out = run_limited(d, &["run", "r.toml", "--yes", "--state", "s.db"], &[], LIMIT);
        refused(&out, source);
        assert!(out.stderr.contains("TOKEN"), "{source}: {}", out.stderr);
        assert!(!d.join("ran").exists(), "{source}: a step ran");
    }
}

/// Templates whose evaluation costs without bound: loops nested over big ranges hung
/// `check` and `plan`, nested joins exhausted memory (the process aborted), and a repeated
/// string printed 100 MB. Each is refused with RB049, quickly, by `check`, `plan` and `run`,
/// and nothing runs.
#[test]
fn regression_templates_that_cost_without_bound_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let r = "range(100000)";
    let cases = [
        ("nested loops", format!("{{% for a in {r} %}}{{% for b in {r} %}}{{% endfor %}}{{% endfor %}}")),
        (
            "nested loops that print",
            format!("{{% for a in {r} %}}{{% for b in {r} %}}x{{% endfor %}}{{% endfor %}}"),
        ),
        ("nested joins", format!("{{{{ {r} | map('string') | join(({r} | map('string') | join(','))) }}}}")),
        ("a 100 MB string", "{{ 'x' * 100000000 }}".to_string()),
        (
            "doubling",
            "{% set s = 'x' * 10000000 %}{% set s = s ~ s %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s }}"
                .to_string(),
        ),
        ("nested joins in an expression", String::new()),
    ];
    for (what, template) in cases {
        let step = if template.is_empty() {
            format!(
                "when = \"{r} | map('string') | join({r} | map('string') | join(',')) | length > 0\"\nrun = \"true\""
            )
        } else {
            format!("run = \"echo {template} > {}\"", d.join("ran").display())
        };
        write(d, "r.toml", &format!("[runbook]\nname = \"t\"\n[steps.a]\n{step}\n"));
        for args in
            [&["check", "r.toml"][..], &["plan", "r.toml"], &["run", "r.toml", "--yes", "--state", "s.db"]]
        {
            let out = check(d, args);
            assert_ne!(out.code, HUNG, "{what} {args:?}: hung");
            assert!(
                out.code == 3 || out.code == 1,
                "{what} {args:?}: exit {}\n{}",
                out.code,
                &out.stderr[..out.stderr.len().min(2000)]
            );
            assert!(
                out.stderr.contains("RB049") || out.stdout.contains("RB049"),
                "{what} {args:?}: {}{}",
                &out.stdout[..out.stdout.len().min(2000)],
                &out.stderr[..out.stderr.len().min(2000)]
            );
            assert!(
                out.stdout.len() + out.stderr.len() < 1 << 20,
                "{what} {args:?}: printed {} bytes",
                out.stdout.len() + out.stderr.len()
            );
            assert!(!d.join("ran").exists(), "{what} {args:?}: the step ran");
        }
    }
}

/// Includes that fan out (each file including the next twice) grow as 2^depth: `check`,
/// `plan` and `run` refuse them at once (RB065), with the expanded size counted per file,
/// never materialised (red team adv13b F5).
#[test]
fn regression_include_diamonds_are_refused_before_they_expand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // 2^15 = 32,768 leaves, within the 16 levels of includes: the size is what is refused.
    let depth = 15;
    for i in 0..depth {
        let next = format!("l{}.toml", i + 1);
        write(
            d,
            &format!("l{i}.toml"),
            &format!(
                "[runbook]\nname = \"l{i}\"\n[steps.a]\nrunbook = {{ file = \"{next}\" }}\n[steps.b]\nrunbook = {{ file = \"{next}\" }}\n"
            ),
        );
    }
    write(
        d,
        &format!("l{depth}.toml"),
        &format!(
            "[runbook]\nname = \"l{depth}\"\n[steps.leaf]\nrun = \"touch {}\"\n",
            d.join("ran").display()
        ),
    );
    for args in
        [&["check", "l0.toml"][..], &["plan", "l0.toml"], &["run", "l0.toml", "--yes", "--state", "s.db"]]
    {
        let started = std::time::Instant::now();
        let out = run_limited(d, args, &[], LIMIT);
        refused(&out, &format!("{args:?}"));
        assert!(out.stderr.contains("RB065"), "{args:?}: {}", &out.stderr[..out.stderr.len().min(3000)]);
        assert!(out.stderr.contains("10000"), "{args:?}: the limit is named: {}", out.stderr);
        assert!(started.elapsed() < LIMIT, "{args:?}: took {:?}", started.elapsed());
        assert!(!d.join("ran").exists(), "{args:?}: a step ran");
    }
}

/// A `lock` that renders to `run:ID` would squat the private lock of another run: the
/// `run:` prefix is reserved, refused before anything runs, even when only the rendered
/// name has it (red team adv13b F9).
#[test]
fn regression_a_rendered_lock_in_the_run_namespace_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "r.toml",
        &format!(
            "[runbook]\nname = \"squat\"\nlock = \"{{{{ params.prefix }}}}victim\"\n[params.prefix]\ntype = \"string\"\n[steps.work]\nrun = \"touch {}\"\n",
            d.join("ran").display()
        ),
    );
    // `plan` says it too (RB033, at the `lock`), so a reviewed plan never holds such a lock.
    let plan = run_limited(d, &["plan", "r.toml", "-p", "prefix=run:"], &[], LIMIT);
    refused(&plan, "plan with lock run:victim");
    assert!(plan.stderr.contains("RB033") && plan.stderr.contains("reserved"), "{}", plan.stderr);
    let out = run_limited(d, &["run", "r.toml", "--yes", "--state", "s.db", "-p", "prefix=run:"], &[], LIMIT);
    refused(&out, "lock run:victim");
    assert!(out.stderr.contains("`run:`"), "{}", out.stderr);
    assert!(out.stderr.contains("reserved"), "{}", out.stderr);
    assert!(!d.join("ran").exists(), "the step ran");
    // An ordinary rendered lock still runs.
    let out = run_limited(d, &["run", "r.toml", "--yes", "--state", "s.db", "-p", "prefix=env-"], &[], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(d.join("ran").exists());
}
