//! Red team adv17b F2 (promise 3): a secret's value given as a parameter, written with an
//! escape (TOML or JSON), is refused like the plain value: the refusal looks at the DECODED
//! values (every string inside every value, list elements included, and the names), not
//! only at the text given. Failed before: `plan` printed the secret (params line, instance
//! id, command, every format, `-o`), and `check` of a schedules file passed it.

use crate::support::{ok, run_in_with_env};

const SECRET: &str = "hunter2/secret";

const RUNBOOK: &str = "[runbook]\nname = \"sec\"\n[secrets.TOKEN]\nenv = \"MY_TOKEN\"\n[params.hosts]\ntype = \"list\"\ndefault = [\"a\"]\n[params.host]\ntype = \"string\"\ndefault = \"x\"\n[params.count]\ntype = \"integer\"\ndefault = 1\n[steps.drain]\nfor-each = \"hosts\"\nrun = \"echo {{ item }} {{ params.host }} {{ params.count }}\"\n";

/// Every way of writing the secret (or a name holding it) that TOML and JSON decode to it.
/// Each is (how it is given, text): `-p` is `-p TEXT`, `toml`/`json` a params file, `inline`
/// a schedule's inline `params = { TEXT }`.
fn corpus() -> Vec<(&'static str, String)> {
    let mut out = vec![
        // JSON lists on the command line.
        ("-p", r#"hosts=["a","hunt\u0065r2/secret"]"#.to_string()),
        ("-p", r#"hosts=["hunter2\/secret"]"#.to_string()),
        ("-p", r#"hosts=["\u0068\u0075nter2\u002fsecret"]"#.to_string()),
        ("-p", r#"hosts=["hunt\ud835\udc1e", "hunter2\u002Fsecret"]"#.to_string()),
    ];
    let toml_values = [
        r#""hunt\u0065r2/secret""#,
        r#""hunt\U00000065r2/secret""#,
        "\"\"\"hunt\\\n     er2/secret\"\"\"",
        "\"\"\"\\\n  hunter2\\u002fsecret\"\"\"",
        r#""hunter2\u002Fsecret""#,
    ];
    for v in toml_values {
        out.push(("toml", format!("host = {v}\n")));
        out.push(("toml", format!("hosts = [\"b\", {v}]\n")));
        out.push(("toml", format!("count = {v}\n")));
        out.push(("toml", format!("{v} = \"x\"\n")));
        out.push(("inline", format!("host = {}", v.replace('\n', "\\n"))));
        out.push(("inline", format!("hosts = [{}]", v.replace('\n', "\\n"))));
    }
    for v in [r#""hunt\u0065r2/secret""#, r#""hunter2\/secret""#, r#""\u0068unter2\u002Fsecret""#] {
        out.push(("json", format!("{{\"host\": {v}}}")));
        out.push(("json", format!("{{\"hosts\": [\"b\", {v}]}}")));
        out.push(("json", format!("{{\"count\": {v}}}")));
        out.push(("json", format!("{{{v}: \"x\"}}")));
    }
    // Multiline strings are not inline-table material: keep the inline cases that parse.
    out.retain(|(how, text)| *how != "inline" || !text.contains("\"\"\""));
    out
}

#[test]
fn a_secret_written_with_escapes_is_refused_and_quoted_nowhere() {
    let mut leaks = Vec::new();
    let mut cases = 0;
    for (how, text) in corpus() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".git")).expect("git");
        std::fs::write(dir.path().join("r.toml"), RUNBOOK).expect("runbook");
        let state = dir.path().join("st.db").display().to_string();
        let env = [("MY_TOKEN", SECRET)];
        let mut commands: Vec<Vec<String>> = Vec::new();
        let given: Vec<String> = match how {
            "-p" => vec!["-p".into(), text.clone()],
            "toml" | "json" => {
                let name = format!("p.{how}");
                std::fs::write(dir.path().join(&name), &text).expect("params");
                vec!["--params-file".into(), name]
            }
            _ => Vec::new(),
        };
        if how == "inline" || how == "toml" {
            let line = if how == "inline" {
                format!("params = {{ {text} }}\n")
            } else {
                "params-file = \"p.toml\"\n".to_string()
            };
            std::fs::write(
                dir.path().join("s.toml"),
                format!(
                    "[schedule.tick]\nrunbook = \"r.toml\"\n{line}cron = \"* * * * *\"\ntime-zone = \"UTC\"\n"
                ),
            )
            .expect("schedules");
            commands.push(vec!["check".into(), "s.toml".into()]);
        }
        if how != "inline" {
            for format in ["text", "json", "markdown", "html"] {
                commands.push(vec!["plan".into(), "r.toml".into(), "--format".into(), format.into()]);
            }
            commands.push(vec!["plan".into(), "r.toml".into(), "-o".into(), "pinned.json".into()]);
            commands.push(vec![
                "run".into(),
                "r.toml".into(),
                "--yes".into(),
                "--state".into(),
                state.clone(),
            ]);
            commands.push(vec!["submit".into(), "r.toml".into(), "--state".into(), state.clone()]);
            for c in commands.iter_mut().skip(usize::from(how == "toml")) {
                c.extend(given.iter().cloned());
            }
        }
        for c in &commands {
            cases += 1;
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            let out = run_in_with_env(dir.path(), &args, &env);
            if out.code == 0 {
                leaks.push(format!("{how} {text:?} {c:?}: not refused: {}{}", out.stdout, out.stderr));
            }
            if out.stdout.contains(SECRET) || out.stderr.contains(SECRET) {
                leaks.push(format!("{how} {text:?} {c:?}: quoted: {}{}", out.stdout, out.stderr));
            }
        }
        for f in walk(dir.path()) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            if bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()) {
                leaks.push(format!("{how} {text:?}: written to {}", f.display()));
            }
        }
    }
    assert!(cases > 100, "{cases}");
    assert!(leaks.is_empty(), "{} of {cases}:\n{}", leaks.len(), leaks.join("\n"));
}

/// A plain value is still refused. A literal string, which TOML does not decode, that
/// holds an escape of the secret is refused too (s20-R): the redactor reads escapes in
/// text (`printf` or a JSON reader downstream would decode it), so it is a form of the
/// secret; a literal string whose escape decodes to another value is accepted.
#[test]
fn a_literal_string_is_not_decoded_and_the_control_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), RUNBOOK).expect("runbook");
    let env = [("MY_TOKEN", SECRET)];
    let out = run_in_with_env(dir.path(), &["plan", "r.toml", "-p", "hosts=hunter2/secret"], &env);
    ok(&out, 3);
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    std::fs::write(dir.path().join("p.toml"), "host = 'hunt\\u0065r2/secret'\n").expect("params");
    let out = run_in_with_env(dir.path(), &["plan", "r.toml", "--params-file", "p.toml"], &env);
    ok(&out, 3);
    assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET), "{}", out.stderr);
    std::fs::write(dir.path().join("p.toml"), "host = 'hunt\\u0066r2/secret'\n").expect("params");
    let out = run_in_with_env(dir.path(), &["plan", "r.toml", "--params-file", "p.toml"], &env);
    ok(&out, 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
