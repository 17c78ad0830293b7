//! Templates cannot inject: a corpus of hostile values fed to every parameter of every
//! runbook in `runbooks/` and `examples/`.
//!
//! For each runbook and each value, every string parameter gets a hostile value (rotated,
//! so each parameter sees each value), the runbook is planned with the engine's own
//! renderer, and every rendered `run` script is executed by real bash in a sandbox. External
//! commands are not executed: with an empty `PATH`, bash hands each one to
//! `command_not_found_handle`, which records its argv. Payloads use only shell builtins
//! (`echo > CANARY`), so an injection would create the canary file. Every value ends with a
//! unique marker; any argv element that holds a marker must hold the whole value, so a value
//! split into several words is caught too. A value that a parameter's type, `enum` or
//! `pattern`, or an `operand` filter, refuses must be refused with a clear message.
//!
//! SQL values travel as bound parameters: the corpus goes through real `sql` steps into
//! SQLite and must come back byte for byte, with no table dropped or created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use runbook_core::model::{ParamType, ParamValue, Runbook};
use runbook_core::plan::{self, PlanCommand};
use runbook_core::validate::Loader;

struct Fs;

impl Loader for Fs {
    fn load(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
}

/// The hostile values, each ending with a unique marker `#Mnnn.` (NUL values are checked
/// apart). An injection of value `nnn` would create the file `CANARY-nnn` in `canaries`.
pub fn corpus(canaries: &Path) -> Vec<String> {
    let c = "@CANARY@";
    let payloads: Vec<String> = vec![
        format!("$(echo pwned > {c})"),
        format!("`echo pwned > {c}`"),
        format!("; echo pwned > {c}"),
        format!("&& echo pwned > {c}"),
        format!("|| echo pwned > {c}"),
        format!("| echo pwned > {c}"),
        format!("\necho pwned > {c}\n"),
        format!("\r\necho pwned > {c}"),
        format!("'; echo pwned > {c}; '"),
        format!("\"; echo pwned > {c}; \""),
        format!("' $(echo pwned > {c}) '"),
        format!("\" $(echo pwned > {c}) \""),
        format!("\\'; echo pwned > {c}; #"),
        format!("${{IFS}}echo${{IFS}}pwned>{c}"),
        format!("$((0)); echo pwned > {c}"),
        format!("<(echo pwned > {c})"),
        format!(">(echo pwned > {c})"),
        format!("a > {c}"),
        format!("a >> {c}"),
        format!("& echo pwned > {c} &"),
        format!("$'\\n'echo pwned > {c}"),
        format!("{{echo,pwned}} > {c}"),
        format!("x\u{0}; echo pwned > {c}").replace('\u{0}', ""),
        format!("--upload-pack=echo pwned > {c}"),
        format!("-oProxyCommand=echo pwned > {c}"),
        format!("--output={c}"),
        "-rf /".to_string(),
        "--force".to_string(),
        "-".to_string(),
        "--".to_string(),
        "'; DROP TABLE customers; --".to_string(),
        "1; DELETE FROM customers".to_string(),
        "' OR '1'='1".to_string(),
        "\\x27; CREATE TABLE canary (x int); --".to_string(),
        "$HOME".to_string(),
        "${PATH}".to_string(),
        "~root".to_string(),
        "*".to_string(),
        "/*/*".to_string(),
        "?".to_string(),
        "[a-z]*".to_string(),
        "!!".to_string(),
        "#not a comment".to_string(),
        "%s%s%s%n".to_string(),
        "{{ secrets.DATABASE_URL }}".to_string(),
        "{% raw %}x{% endraw %}".to_string(),
        "\u{202e}gnp.exe".to_string(),
        "ｒｍ －ｒｆ ／".to_string(),
        "a\u{200b}b\u{200d}c".to_string(),
        "e\u{301}\u{301}\u{301}".to_string(),
        "🦀 rust".to_string(),
        "\t\ttabs\t".to_string(),
        " leading and trailing ".to_string(),
        "back\\slash\\".to_string(),
        "quote's \"double\"".to_string(),
        "x".repeat(20_000),
        "../../../../etc/passwd".to_string(),
        "http://evil.example/?a=1&b=2#frag".to_string(),
        "line1\nline2\nline3".to_string(),
        // Contexts where a quoted word was still code (issue 11).
        format!("a[$(echo pwned > {c})]"),
        format!("x[`echo pwned > {c}`]+1"),
        format!("x\nEOF\necho pwned > {c}\ncat <<EOF"),
        format!("v1\necho pwned > {c}\n#"),
        format!("\\$(echo pwned > {c})"),
        format!("${{x:-$(echo pwned > {c})}}"),
        format!("-c\necho pwned > {c}"),
        format!("%s$(echo pwned > {c})%b"),
    ];
    // Prefixes and suffixes multiply the payloads into a corpus of several hundred values.
    let wraps: [(&str, &str); 4] = [("", ""), ("ok ", " ok"), ("'", "'"), ("\"", "\"")];
    let mut values = Vec::new();
    for (pre, post) in wraps {
        for p in &payloads {
            values.push(format!("{pre}{p}{post}"));
        }
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| format!("{}#M{i:03}.", v.replace(c, &format!("{}/CANARY-{i:03}", canaries.display()))))
        .collect()
}

fn runbook_files() -> Vec<PathBuf> {
    let mut files = crate::schema::runbook_files("runbooks");
    files.extend(crate::schema::runbook_files("examples"));
    files
}

fn load(file: &Path) -> Arc<Runbook> {
    let text = std::fs::read_to_string(file).expect("read runbook");
    let checked =
        runbook_core::validate::check(runbook_core::Source::new(file.display().to_string(), text), &Fs);
    assert!(!checked.has_errors(), "{} is valid", file.display());
    checked.runbook.expect("a runbook")
}

/// A value that passes a parameter's checks, for parameters without a default.
fn benign(p: &runbook_core::model::Param) -> ParamValue {
    let candidates: Vec<ParamValue> = match p.ty {
        ParamType::String => [
            "v1.0.0",
            "staging",
            "main",
            "abc1234",
            "benign",
            "http://127.0.0.1:9",
            "/tmp/x",
            "20261130120000_reversal",
            "5 minutes",
        ]
        .iter()
        .map(|s| ParamValue::String((*s).to_string()))
        .chain(p.allowed.iter().flatten().cloned())
        .collect(),
        ParamType::Integer => vec![ParamValue::Integer(1)],
        ParamType::Number => vec![ParamValue::Number(1.0)],
        ParamType::Boolean => vec![ParamValue::Boolean(false)],
        // A list's elements are the corpus of tests/integration/for_each.rs.
        ParamType::StringList | ParamType::IntegerList | ParamType::NumberList => {
            vec![ParamValue::List(Vec::new())]
        }
    };
    candidates
        .into_iter()
        .find(|v| runbook_core::params::check(p, v).is_ok())
        .unwrap_or_else(|| panic!("no benign value for parameter `{}`", p.name))
}

/// The bash driver: record each external command's argv, NUL-separated, in a file of its
/// own (commands of a pipeline run at once), run each script
/// in a subshell with errexit, as the engine does.
const DRIVER: &str = r#"
n=0
record() { n=$((n + 1)); printf '%s\0' "$@" > "$RECORD/$BASHPID.$n"; return 0; }
command_not_found_handle() { record "$@"; }
# The usual commands as functions: recorded without a fork (a pipeline still forks).
for c in git yarn npx npm node pg_dump pg_restore psql createdb dropdb curl mkdir find wc rm cp mv ls \
         cat grep sed awk tr sort head tail date sleep tar gzip gunzip sha256sum du df xargs touch \
         chmod ln basename dirname jq docker ssh env tee realpath stat mktemp cut uniq diff; do
  eval "$c() { record $c \"\$@\"; }"
done
for f in "$SCRIPTS"/*.sh; do
  ( set -eo pipefail; . "$f" ) </dev/null >/dev/null 2>&1 || true
done
"#;

#[test]
fn hostile_values_never_inject_into_commands() {
    let sandbox = tempfile::tempdir().expect("tempdir");
    let canaries = sandbox.path().join("canaries");
    std::fs::create_dir_all(&canaries).expect("canaries");
    let values = corpus(&canaries);
    assert!(values.len() >= 200, "{} values", values.len());
    let mut refused = 0usize;
    let mut arrived = 0usize;
    for file in runbook_files() {
        let runbook = load(&file);
        let strings: Vec<_> = runbook.params.iter().filter(|p| p.ty == ParamType::String).collect();
        // Non-string parameters refuse text outright, with a message.
        for p in runbook.params.iter().filter(|p| p.ty != ParamType::String) {
            for v in values.iter().take(40) {
                let e = runbook_core::params::from_text(p.ty, v).expect_err("typed parameters refuse text");
                assert!(e.starts_with("expected "), "{e}");
                refused += 1;
            }
        }
        if strings.is_empty() {
            continue;
        }
        let mut scripts = Scripts::default();
        let mut all_used: Vec<&str> = Vec::new();
        for round in 0..values.len() {
            let mut params: BTreeMap<String, ParamValue> = BTreeMap::new();
            let mut used: Vec<&str> = Vec::new();
            for (k, p) in runbook.params.iter().enumerate() {
                let fallback = p.default.clone().unwrap_or_else(|| benign(p));
                let value = if p.ty == ParamType::String {
                    let hostile = &values[(round + k) % values.len()];
                    let typed = ParamValue::String(hostile.clone());
                    match runbook_core::params::check(p, &typed) {
                        Ok(()) => {
                            used.push(hostile);
                            typed
                        }
                        Err(e) => {
                            assert!(
                                e.contains("is not one of") || e.contains("does not match the pattern"),
                                "{e}"
                            );
                            refused += 1;
                            fallback
                        }
                    }
                } else {
                    fallback
                };
                params.insert(p.name.clone(), value);
            }
            let plan = match plan::plan(&runbook, &params) {
                Ok(plan) => plan,
                Err(diags) => {
                    // Refused while rendering (an `operand` seeing `-...`, or an included
                    // runbook's parameter pattern, e.g. l3's `git_remote`): a clear error.
                    for d in &diags {
                        assert!(
                            d.message.contains("starts with `-`")
                                || d.message.contains("subscript with an expansion")
                                || d.message.contains("does not match the pattern"),
                            "{}: {}",
                            file.display(),
                            d.message
                        );
                    }
                    refused += 1;
                    continue;
                }
            };
            check_argv(&plan, &used, &file);
            scripts.add_plan(&plan);
            all_used.extend(used);
        }
        let record = scripts.execute(sandbox.path());
        let injected: Vec<String> = std::fs::read_dir(&canaries)
            .expect("canaries")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(injected.is_empty(), "{}: values executed as shell code: {injected:?}", file.display());
        all_used.sort_unstable();
        all_used.dedup();
        arrived += check_intact(&record, &all_used, &file);
    }
    assert!(arrived > 1_000, "hostile values reached recorded commands {arrived} times");
    assert!(refused > 100, "{refused} refusals");
}

/// Rendered `run` scripts that hold a hostile value (the others cannot inject), with their
/// environment as `export` lines.
#[derive(Default)]
struct Scripts(Vec<String>);

impl Scripts {
    fn add(&mut self, command: &PlanCommand, env: &BTreeMap<String, String>) {
        let PlanCommand::Run { script, .. } = command else { return };
        if !script.contains("#M") && !env.values().any(|v| v.contains("#M")) {
            return;
        }
        let mut text = String::new();
        for (k, v) in env {
            text.push_str(&format!("export {k}={}\n", runbook_core::template::shell_quote(v)));
        }
        text.push_str(script);
        self.0.push(text);
    }

    fn add_plan(&mut self, plan: &plan::Plan) {
        for c in &plan.preconditions {
            self.add(&c.command, &c.env);
        }
        for s in plan.steps.iter().chain(plan.finally.iter()) {
            for c in &s.preconditions {
                self.add(&c.command, &c.env);
            }
            self.add(&s.command, &s.env);
            if let Some(comp) = &s.compensation {
                self.add(&comp.command, &comp.env);
            }
        }
    }

    /// Run them all in one bash, external commands recorded; every recorded argv element.
    fn execute(self, dir: &Path) -> String {
        let scripts = dir.join("scripts");
        let record = dir.join("record");
        for d in [&scripts, &record] {
            let _ = std::fs::remove_dir_all(d);
            std::fs::create_dir_all(d).expect("dir");
        }
        // Two shells, each with half of the scripts, use both cores of a CI machine.
        let halves = [scripts.join("a"), scripts.join("b")];
        for (n, text) in self.0.iter().enumerate() {
            let half = &halves[n % 2];
            std::fs::create_dir_all(half).expect("dir");
            std::fs::write(half.join(format!("{n:06}.sh")), text).expect("script");
        }
        let shells: Vec<_> = halves
            .iter()
            .filter(|h| h.exists())
            .map(|half| {
                Command::new(bash())
                    .args(["-c", DRIVER])
                    .current_dir(dir)
                    .env_clear()
                    .env("PATH", "/nonexistent")
                    .env("RECORD", &record)
                    .env("SCRIPTS", half)
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("bash")
            })
            .collect();
        for mut shell in shells {
            assert!(shell.wait().is_ok_and(|s| s.success()));
        }
        let mut text = String::new();
        for entry in std::fs::read_dir(&record).expect("record").flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            text.push_str(&String::from_utf8_lossy(&bytes));
            text.push('\0');
        }
        text
    }
}

/// bash, found on the test's own `PATH` (the sandbox's is empty).
fn bash() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("bash"))
        .find(|p| p.exists())
        .expect("bash on PATH")
}

/// Every recorded argv element that holds a value's marker holds the whole value, and no
/// value that starts with `-` arrives as a whole argument before `--` (where the program
/// would read it as an option). Returns how many values arrived.
fn check_intact(record: &str, used: &[&str], file: &Path) -> usize {
    for command in record.split("\0\0") {
        let argv: Vec<&str> = command.split('\0').collect();
        for arg in argv.iter().skip(1).take_while(|a| **a != "--") {
            assert!(
                !(arg.starts_with('-') && used.contains(arg)),
                "{}: the value {arg:?} reached {argv:?} as an option",
                file.display()
            );
        }
    }
    let mut arrived = 0;
    for value in used {
        let marker = &value[value.rfind("#M").unwrap_or(0)..];
        for arg in record.split('\0').filter(|a| a.contains(marker)) {
            assert!(
                arg.contains(value),
                "{}: value split across words: {value:?} arrived as {arg:?} in {:?}",
                file.display(),
                record.split('\0').filter(|a| a.contains(marker)).collect::<Vec<_>>()
            );
            arrived += 1;
        }
    }
    arrived
}

/// `cmd` elements: a value is always inside one element.
fn check_argv(plan: &plan::Plan, used: &[&str], file: &Path) {
    for s in plan.steps.iter().chain(plan.finally.iter()) {
        if let PlanCommand::Cmd(argv) = &s.command {
            for value in used {
                let marker = &value[value.rfind("#M").unwrap_or(0)..];
                for arg in argv.iter().filter(|a| a.contains(marker)) {
                    assert!(arg.contains(value), "{}: {value:?} split in {arg:?}", file.display());
                }
            }
        }
    }
}

#[test]
fn nul_bytes_are_refused_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.toml"),
        "[runbook]\nname = \"nul\"\n[params.tag]\ntype = \"string\"\n[steps.a]\ncmd = [\"echo\", \"{{ params.tag }}\"]\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("p.toml"), "tag = \"v1\\u0000; rm -rf /\"\n").expect("write");
    let out =
        crate::support::run_in(dir.path(), &["run", "r.toml", "--params-file", "p.toml", "--state", "s.db"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("contains a NUL byte"), "{}", out.stderr);
    assert!(!dir.path().join("s.db").exists(), "nothing ran, no run was recorded");
}

#[test]
fn hostile_values_are_bound_in_sql_never_executed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values: Vec<String> = corpus(dir.path()).into_iter().take(220).collect();
    let mut runbook = String::from(
        "[runbook]\nname = \"bind\"\nmax-parallel = 1\n[steps.schema]\nsql = { url = \"sqlite:app.db\", query = \"CREATE TABLE customers (i INTEGER, v TEXT)\" }\n",
    );
    let mut params = String::new();
    for (i, v) in values.iter().enumerate() {
        runbook.push_str(&format!("[params.v{i}]\ntype = \"string\"\n"));
        runbook.push_str(&format!(
            "[steps.s{i}]\nneeds = [\"schema\"]\nsql = {{ url = \"sqlite:app.db\", query = \"INSERT INTO customers (i, v) VALUES ($1, $2)\", args = [{i}, \"{{{{ params.v{i} }}}}\"] }}\n"
        ));
        params.push_str(&format!("v{i} = {}\n", toml_string(v)));
    }
    std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
    std::fs::write(dir.path().join("p.toml"), params).expect("params");
    std::fs::write(dir.path().join("app.db"), "").expect("db");
    let out =
        crate::support::run_in(dir.path(), &["run", "r.toml", "--params-file", "p.toml", "--state", "s.db"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Read back with the engine itself: a read-only sql step whose rows land in the journal.
    std::fs::write(
        dir.path().join("read.toml"),
        "[runbook]\nname = \"read\"\n[steps.all]\nsql = { url = \"sqlite:app.db\", query = \"SELECT i, v, (SELECT count(*) FROM sqlite_master WHERE type = 'table') AS tables FROM customers ORDER BY i\", read-only = true }\n",
    )
    .expect("read runbook");
    let out =
        crate::support::run_in(dir.path(), &["run", "read.toml", "--state", "s.db", "--output", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = journaled_rows(&out.stdout);
    assert_eq!(rows.len(), values.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["v"].as_str(), Some(values[i].as_str()), "value {i} came back intact");
        assert_eq!(row["tables"], 1, "no table was created or dropped");
    }
}

/// The rows of the first `sql` step that succeeded, from `run --output json` lines.
pub fn journaled_rows(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            (v["event"]["kind"] == "step_succeeded")
                .then(|| v["event"]["outputs"]["rows"].as_array().cloned())
        })
        .flatten()
        .expect("rows in the journal")
}

pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
