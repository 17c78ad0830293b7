//! Values cannot inject in any shell context (issue 11, promise 4).
//!
//! Regression tests, through the real binary, for the contexts where a shell-quoted word
//! was still code: an unquoted heredoc, a comment, `[[ -lt ]]`, and `{% autoescape false %}`.

use std::path::Path;

use crate::support::{ok, run_in};

/// Write `r.toml` and `p.toml` (params, TOML) into `dir`.
pub fn write(dir: &Path, runbook: &str, params: &str) {
    std::fs::write(dir.join("r.toml"), runbook).expect("runbook");
    std::fs::write(dir.join("p.toml"), params).expect("params");
}

/// `run r.toml` with `p.toml`, state `s.db`, approvals given.
pub fn run(dir: &Path) -> crate::support::Output {
    run_in(dir, &["run", "r.toml", "--params-file", "p.toml", "--state", "s.db", "--yes"])
}

#[test]
fn a_value_in_an_unquoted_heredoc_is_text_not_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "[runbook]\nname = \"heredoc\"\n[params.msg]\ntype = \"string\"\n[steps.a]\nrun = '''\ncat <<EOF > out.txt\nmessage: {{ params.msg }}\nEOF\n'''\n",
        "msg = \"$(touch pwned) `touch pwned2` ${HOME}\"\n",
    );
    let out = run(dir.path());
    ok(&out, 0);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
    assert!(!dir.path().join("pwned2").exists(), "the value ran as code");
    let text = std::fs::read_to_string(dir.path().join("out.txt")).expect("out.txt");
    assert_eq!(text, "message: $(touch pwned) `touch pwned2` ${HOME}\n");
}

#[test]
fn a_value_with_a_newline_in_a_comment_stays_in_the_comment() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "[runbook]\nname = \"comment\"\n[params.msg]\ntype = \"string\"\n[steps.a]\nrun = '''\n# deploying {{ params.msg }}\necho done > out.txt\n'''\n",
        "msg = \"v1\\ntouch pwned\\n#\"\n",
    );
    let out = run(dir.path());
    ok(&out, 0);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).ok().as_deref(), Some("done\n"));
}

#[test]
fn a_string_in_an_arithmetic_test_is_refused_by_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = "[runbook]\nname = \"arith\"\n[params.x]\ntype = \"string\"\n[steps.a]\nrun = '[[ 3 -lt {{ params.x }} ]] && echo big > out.txt'\n";
    write(dir.path(), runbook, "x = \"a[$(touch pwned)]\"\n");
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    assert!(check.stderr.contains("r.toml:6:17: error[RB047]"), "{}", check.stderr);
    let out = run(dir.path());
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
    // An integer cannot be code: the same test with a typed parameter runs.
    write(dir.path(), &runbook.replace("\"string\"", "\"integer\""), "x = 5\n");
    ok(&run(dir.path()), 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).ok().as_deref(), Some("big\n"));
}

#[test]
fn autoescape_false_in_run_text_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "[runbook]\nname = \"autoescape\"\n[params.msg]\ntype = \"string\"\n[steps.a]\nrun = '{% autoescape false %}echo {{ params.msg }}{% endautoescape %}'\n",
        "msg = \"x; touch pwned\"\n",
    );
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    assert!(check.stderr.contains("error[RB048]"), "{}", check.stderr);
    let out = run(dir.path());
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!dir.path().join("pwned").exists(), "the value ran as code");
}

/// A place in `run` text where a value may land: the text around it (`@` stands for the
/// template, `%OUT%` for the file the snippet writes), and what that file must then hold.
type Expect = fn(&str) -> String;

/// Every shell context that runs: the value must arrive byte for byte (or as the context
/// transforms it: a heredoc adds a newline, `$(...)` drops trailing newlines).
const RUNS: &[(&str, &str, Expect)] = &[
    ("word", "printf '%s' @ > %OUT%", |v| v.to_string()),
    ("double-quotes", "printf '%s' \"<@>\" > %OUT%", |v| format!("<{v}>")),
    ("joined", "printf '%s' \"@\"@ > %OUT%", |v| format!("{v}{v}")),
    ("twice", "printf '%s' @@ > %OUT%", |v| format!("{v}{v}")),
    ("heredoc", "cat > %OUT% <<EOF\n[@]\nEOF", |v| format!("[{v}]\n")),
    ("heredoc-quotes", "cat > %OUT% <<EOF\n\"@\" '@'\nEOF", |v| format!("\"{v}\" '{v}'\n")),
    ("heredoc-tabs", "cat > %OUT% <<-EOF\n\t@\n\tEOF", |v| format!("{v}\n")),
    ("comment", "# deploying @ now\nprintf ok > %OUT%", |_| "ok".into()),
    ("trailing-comment", "printf ok > %OUT% # @", |_| "ok".into()),
    ("here-string", "cat <<< @ > %OUT%", |v| format!("{v}\n")),
    ("assignment", "x=@; printf '%s' \"$x\" > %OUT%", |v| v.to_string()),
    ("env-prefix", "X=@ bash -c 'printf \"%s\" \"$X\"' > %OUT%", |v| v.to_string()),
    ("export", "export X=@; printf '%s' \"$X\" > %OUT%", |v| v.to_string()),
    ("local", "h() { local y=@; printf '%s' \"$y\" > %OUT%; }; h", |v| v.to_string()),
    ("array", "a=(first @ last); printf '%s' \"${a[1]}\" > %OUT%", |v| v.to_string()),
    ("case-word", "case @ in *) printf matched > %OUT%;; esac", |_| "matched".into()),
    ("case-pattern", "case none in @) printf hit > %OUT%;; *) printf miss > %OUT%;; esac", |_| "miss".into()),
    ("dbracket-eq", "[[ @ == @ ]] && printf eq > %OUT%", |_| "eq".into()),
    ("dbracket-pattern", "[[ xyz == @ ]] || printf ne > %OUT%", |_| "ne".into()),
    ("test", "test -n @ && printf set > %OUT%", |_| "set".into()),
    ("bracket", "[ @ = @ ] && printf eq > %OUT%", |_| "eq".into()),
    ("function-arg", "f() { printf '%s' \"$1\" > %OUT%; }; f @", |v| v.to_string()),
    ("function-body", "g() { printf '%s' @ > %OUT%; }; g", |v| v.to_string()),
    ("subshell", "( printf '%s' @ > %OUT% )", |v| v.to_string()),
    ("group", "{ printf '%s' @; } > %OUT%", |v| v.to_string()),
    ("command-substitution", "x=$(printf '%s.' @); printf '%s' \"${x%.}\" > %OUT%", |v| v.to_string()),
    ("substitution-in-quotes", "printf '%s' \"$(printf '%s' \"@\")\". > %OUT%", |v| {
        format!("{}.", v.trim_end_matches('\n'))
    }),
    ("process-substitution", "cat <(printf '%s' @) > %OUT%", |v| v.to_string()),
    ("pipeline", "printf '%s' @ | cat > %OUT%", |v| v.to_string()),
    ("printf-argument", "printf '%s|%s' x @ > %OUT%", |v| format!("x|{v}")),
    ("bash-c-argument", "bash -c 'printf \"%s\" \"$1\"' _ @ > %OUT%", |v| v.to_string()),
    ("for", "for i in @; do printf '%s' \"$i\" > %OUT%; done", |v| v.to_string()),
    ("if", "if [[ -n @ ]]; then printf '%s' @ > %OUT%; fi", |v| v.to_string()),
    ("or", "false || printf '%s' @ > %OUT%", |v| v.to_string()),
    ("fd", "exec 3> %OUT%; printf '%s' @ >&3; exec 3>&-", |v| v.to_string()),
];

/// Every context where the shell (or a program) reads even a quoted value as code, or
/// where a reference cannot expand: `check` refuses a string there, with this code.
const REFUSED: &[(&str, &str)] = &[
    ("echo '@'", "RB045"),
    ("echo $'@'", "RB045"),
    ("cat <<'EOF'\n@\nEOF", "RB045"),
    ("cat <<\"EOF\"\n@\nEOF", "RB045"),
    ("(( x = @ ))", "RB047"),
    ("echo $(( @ + 1 ))", "RB047"),
    ("for (( i = 0; i < @; i++ )); do :; done", "RB047"),
    // `((` glued to a keyword (red team cases 9, 10).
    ("if((1<@)); then :; fi", "RB047"),
    ("for((i=0;i<@;i++)); do break; done", "RB047"),
    ("while((@)); do break; done", "RB047"),
    ("until((@)); do :; done", "RB047"),
    // `$[ ]`, also in an unquoted heredoc (red team cases 4, 5).
    ("echo $[ 1 + @ ]", "RB047"),
    ("cat <<EOF\n$[ @ ]\nEOF", "RB047"),
    ("[[ 3 -lt @ ]]", "RB047"),
    ("[[ @ -eq 3 ]]", "RB047"),
    ("[[ -v @ ]]", "RB047"),
    ("test -v @", "RB047"),
    ("let x=@", "RB047"),
    ("a[@]=1", "RB047"),
    ("echo ${x:-@}", "RB047"),
    ("eval @", "RB047"),
    ("eval \"echo @\"", "RB047"),
    ("eval \"$(echo @)\"", "RB047"),
    ("bash -c @", "RB047"),
    ("sh -c \"echo @\"", "RB047"),
    ("sudo -u root bash -c @", "RB047"),
    ("timeout 5 bash -ec @", "RB047"),
    ("env X=1 sh -c @", "RB047"),
    ("trap @ EXIT", "RB047"),
    ("printf @", "RB047"),
    ("printf -v @ x", "RB047"),
    ("read @ <<< x", "RB047"),
    ("unset @", "RB047"),
    ("mapfile @ < /dev/null", "RB047"),
    ("declare @=1", "RB047"),
    ("f() { local -i x=@; }", "RB047"),
    ("echo `echo @`", "RB047"),
    ("ssh host @", "RB047"),
    ("su -c @ root", "RB047"),
    ("xargs sh -c @", "RB047"),
    ("find . -exec sh -c @ \\;", "RB047"),
    ("python3 -c @", "RB047"),
    ("perl -e @", "RB047"),
    ("node -e @", "RB047"),
    ("awk @ /dev/null", "RB047"),
    ("sed -e @ /dev/null", "RB047"),
    ("psql -c @", "RB047"),
    ("sqlite3 app.db @", "RB047"),
    ("source @", "RB047"),
    (". @", "RB047"),
    ("@ --version", "RB047"),
    ("cat <<EOF\n$(echo @)\nEOF", "RB047"),
    ("watch @", "RB047"),
    ("PATH=@ make", "RB047"),
    ("export LD_PRELOAD=@", "RB047"),
    ("env GIT_SSH_COMMAND=@ git fetch", "RB047"),
    ("PS4=@; set -x", "RB047"),
    ("fc -e @", "RB047"),
    ("declare -i n; n=@", "RB047"),
    ("time (( @ ))", "RB047"),
];

/// The hostile corpus (tests/integration/injection.rs), with values for `-`, unicode and
/// long values already in it.
/// The hostile corpus without the values that bind refuses whatever their context (a
/// subscript with an expansion, `runbook_core::shell::evaluable`): those are tested by
/// `values_bash_could_evaluate_are_refused_whatever_the_lexer_sees`; nor those that start
/// with `-`, refused where they begin an argument (`runbook_core::shell::option_value`):
/// tested by `options::values_that_begin_an_argument_never_become_options`.
fn hostile(canaries: &Path) -> Vec<String> {
    crate::injection::corpus(canaries)
        .into_iter()
        .filter(|v| {
            runbook_core::shell::evaluable(v).is_none() && runbook_core::shell::option_value(v).is_none()
        })
        .collect()
}

#[test]
fn hostile_values_are_inert_in_every_shell_context_that_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canaries = dir.path().join("canaries");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&canaries).expect("canaries");
    std::fs::create_dir_all(&out).expect("out");
    let values = hostile(&canaries);
    assert!(values.len() >= 200, "{} values", values.len());
    // Batches of values small enough for one argv element (the script, with its values).
    let mut batches: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0;
    for (i, v) in values.iter().enumerate() {
        if size + v.len() > 40_000 && !batches.last().is_some_and(Vec::is_empty) {
            batches.push(Vec::new());
            size = 0;
        }
        size += v.len();
        batches.last_mut().expect("a batch").push(i);
    }
    // Its steps are independent and mostly wait on the engine's journal: 8 at a time
    // (the default is one per CPU) changes no value and no check, only the wall time.
    let mut runbook = String::from("[runbook]\nname = \"contexts\"\nmax-parallel = 8\n");
    let mut params = String::new();
    for (i, v) in values.iter().enumerate() {
        runbook.push_str(&format!("[params.v{i}]\ntype = \"string\"\n"));
        params.push_str(&format!("v{i} = {}\n", crate::injection::toml_string(v)));
    }
    for (c, (name, text, _)) in RUNS.iter().enumerate() {
        for (b, batch) in batches.iter().enumerate() {
            let script: Vec<String> = batch
                .iter()
                .map(|&i| {
                    text.replace('@', &format!("{{{{ params.v{i} }}}}"))
                        .replace("%OUT%", &out.join(format!("{name}-{i}")).display().to_string())
                })
                .collect();
            runbook.push_str(&format!(
                "[steps.c{c}_{b}]\nneeds = []\nrun = {}\n",
                crate::injection::toml_string(&script.join("\n"))
            ));
        }
    }
    write(dir.path(), &runbook, &params);
    let check = run_in(dir.path(), &["check", "r.toml"]);
    ok(&check, 0);
    let run = run(dir.path());
    ok(&run, 0);
    let injected: Vec<String> = std::fs::read_dir(&canaries)
        .expect("canaries")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(injected.is_empty(), "values ran as shell code: {injected:?}");
    let mut cases = 0;
    for (name, _, expect) in RUNS {
        for (i, v) in values.iter().enumerate() {
            let file = out.join(format!("{name}-{i}"));
            let got = std::fs::read(&file).unwrap_or_else(|e| panic!("{name}: value {i} wrote nothing: {e}"));
            assert!(
                got == expect(v).as_bytes(),
                "{name}: value {i} {v:?} arrived as {:?}",
                String::from_utf8_lossy(&got)
            );
            cases += 1;
        }
    }
    assert!(cases >= 5_000, "{cases} cases");
}

#[test]
fn check_refuses_strings_in_every_code_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canaries = dir.path().join("canaries");
    std::fs::create_dir_all(&canaries).expect("canaries");
    let mut runbook = String::from("[runbook]\nname = \"code\"\n[params.v]\ntype = \"string\"\n");
    let mut lines = Vec::new();
    for (k, (text, _)) in REFUSED.iter().enumerate() {
        lines.push(runbook.lines().count() + 3);
        let text = text.replace('@', "{{ params.v }}");
        runbook
            .push_str(&format!("[steps.s{k}]\nneeds = []\nrun = {}\n", crate::injection::toml_string(&text)));
    }
    std::fs::write(dir.path().join("r.toml"), &runbook).expect("runbook");
    let check = run_in(dir.path(), &["check", "--format", "json", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&check.stdout).expect("json diagnostics");
    for (k, (text, code)) in REFUSED.iter().enumerate() {
        let found: Vec<&serde_json::Value> = diags.iter().filter(|d| d["line"] == lines[k]).collect();
        assert!(
            found.len() == 1 && found[0]["code"] == *code,
            "{text:?} (line {}): expected {code}, got {found:?}",
            lines[k]
        );
        assert!(found[0]["help"].is_string(), "{text:?}: a hint");
    }
    assert_eq!(diags.len(), REFUSED.len(), "{diags:#?}");
    // Nothing runs, whatever the value.
    for v in hostile(&canaries).iter().step_by(5) {
        std::fs::write(dir.path().join("p.toml"), format!("v = {}\n", crate::injection::toml_string(v)))
            .expect("params");
        let out = run(dir.path());
        assert_eq!(out.code, 3, "{}", out.stderr);
    }
    assert!(std::fs::read_dir(&canaries).expect("canaries").next().is_none(), "a value ran");
}

/// A value whose type makes it inert may stand where the shell reads code.
#[test]
fn typed_values_run_in_code_contexts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str)] = &[
        ("(( x = {{ params.n }} )); printf '%s' \"$x\"", "7"),
        ("printf '%s' $(( {{ params.n }} + 1 ))", "8"),
        ("[[ 3 -lt {{ params.n }} ]] && printf lt", "lt"),
        ("let x={{ params.n }}*2; printf '%s' \"$x\"", "14"),
        ("a[{{ params.n }}]=1; printf '%s' \"${!a[@]}\"", "7"),
        ("[[ -v {{ params.colour }} ]] || printf unset", "unset"),
        ("bash -c 'printf \"%s\" {{ params.colour }}'", "blue"),
        ("[[ {{ params.on }} == true ]] && printf on", "on"),
    ];
    let mut runbook = String::from(
        "[runbook]\nname = \"typed\"\n[params.n]\ntype = \"integer\"\n[params.on]\ntype = \"boolean\"\n[params.colour]\ntype = \"string\"\nenum = [\"blue\", \"green\"]\n",
    );
    for (k, (text, _)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out-{k}"));
        runbook.push_str(&format!(
            "[steps.s{k}]\nneeds = []\nrun = {}\n",
            crate::injection::toml_string(&format!("{{ {text}; }} > {}", out.display()))
        ));
    }
    write(dir.path(), &runbook, "n = 7\non = true\ncolour = \"blue\"\n");
    ok(&run(dir.path()), 0);
    for (k, (text, want)) in cases.iter().enumerate() {
        let got = std::fs::read_to_string(dir.path().join(format!("out-{k}"))).unwrap_or_default();
        assert_eq!(&got, want, "{text}");
    }
    // A typed approval input may stand there too; the plan shows its placeholder.
    std::fs::write(
        dir.path().join("ap.toml"),
        "[runbook]\nname = \"ap\"\n[steps.ok]\napproval = { prompt = \"go?\", approvers = [\"ben\"], inputs = { n = { type = \"integer\" } } }\n[steps.use]\nrun = \"(( x = {{ steps.ok.outputs.n }} )); echo $x\"\n",
    )
    .expect("runbook");
    let plan = run_in(dir.path(), &["plan", "ap.toml"]);
    ok(&plan, 0);
    assert!(plan.stdout.contains("(( x = <output:ok.n> ))"), "{}", plan.stdout);
    // An enum with a word that could be code is no protection.
    let risky = runbook.replace("enum = [\"blue\", \"green\"]", "enum = [\"blue\", \"a[$(touch pwned)]\"]");
    write(dir.path(), &risky, "n = 7\non = true\ncolour = \"blue\"\n");
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    assert!(check.stderr.contains("error[RB047]"), "{}", check.stderr);
}

/// A value in a URL cannot add a query key or leave the path; in the host part it can only
/// be a host; a header value cannot add a header.
#[test]
fn http_values_stay_in_their_part_of_the_url_and_headers() {
    let peer = crate::peers::HttpPeer::start();
    let sb = crate::support::Scratch::new(&format!(
        r#"[runbook]
name = "url"
[params.key]
type = "string"
[params.tag]
type = "string"
[steps.get]
http = {{ url = "{}/files/{{{{ params.key }}}}?tag={{{{ params.tag }}}}", headers = {{ X-Tag = "{{{{ params.tag }}}}" }}, expect-status = [200, 404] }}
"#,
        peer.url("/hook")
    ));
    let out = sb.run(&["-p", "key=x?admin=1#frag", "-p", "tag=v1&admin=true"], &[]);
    ok(&out, 0);
    let got = peer.received().pop().expect("a request");
    let (path, query) = got.path.split_once('?').unwrap_or((&got.path, ""));
    assert_eq!(path, "/hook/files/x%3Fadmin%3D1%23frag");
    assert_eq!(query, "tag=v1%26admin%3Dtrue", "one query key, the value encoded");
    assert_eq!(got.headers.get("x-tag").map(String::as_str), Some("v1&admin=true"));
    // A header value with a line break is refused; it never becomes a second header.
    let out = sb.run(&["-p", "key=k", "-p", "tag=v1\r\nX-Injected: yes"], &[]);
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(peer.received().iter().all(|r| !r.headers.contains_key("x-injected")));
    // In the host part, a value can only be a host or a port.
    std::fs::write(
        sb.path().join("r.toml"),
        "[runbook]\nname = \"host\"\n[params.host]\ntype = \"string\"\n[steps.get]\nhttp = { url = \"http://{{ params.host }}/hook\" }\n",
    )
    .expect("runbook");
    let out = sb.run(
        &["-p", &format!("host=127.0.0.1:{}/hook?x=", peer.url("").rsplit(':').next().unwrap_or("1"))],
        &[],
    );
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("host part of a URL"), "{}", out.stderr);
}

/// Compound commands that nest a snippet: a value keeps its context inside them.
const WRAPS: &[(&str, &str)] = &[
    ("(\n", "\n)"),
    ("{\n", "\n}"),
    ("if true; then\n", "\nfi"),
    ("if ! false; then :\n", "\nelse :; fi"),
    ("w() {\n", "\n}\nw"),
    ("w2() (\n", "\n)\nw2"),
    ("for _ in 1; do\n", "\ndone"),
    ("while true; do\n", "\nbreak; done"),
    ("case k in k)\n", "\n;; esac"),
    ("x=$(\n", "\n)"),
    ("true &&\n", ""),
];

/// Every runnable context inside every compound command, each with a rotating share of the
/// hostile corpus (every value goes through every context, in some compound command): inert,
/// intact.
#[test]
fn nested_contexts_keep_values_inert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canaries = dir.path().join("canaries");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&canaries).expect("canaries");
    std::fs::create_dir_all(&out).expect("out");
    // Long values are covered by the flat corpus; here they would only make scripts long.
    let values: Vec<String> = hostile(&canaries).into_iter().filter(|v| v.len() < 1_000).collect();
    // Its steps are independent and mostly wait on the engine's journal: 8 at a time
    // (the default is one per CPU) changes no value and no check, only the wall time.
    let mut runbook = String::from("[runbook]\nname = \"nested\"\nmax-parallel = 8\n");
    let mut params = String::new();
    for (i, v) in values.iter().enumerate() {
        runbook.push_str(&format!("[params.v{i}]\ntype = \"string\"\n"));
        params.push_str(&format!("v{i} = {}\n", crate::injection::toml_string(v)));
    }
    let mut expected = Vec::new();
    for (c, (name, text, expect)) in RUNS.iter().enumerate() {
        for (w, (pre, post)) in WRAPS.iter().enumerate() {
            let mut script = Vec::new();
            for (i, v) in values.iter().enumerate().filter(|(i, _)| (i + c + w) % 8 == 0) {
                let file = out.join(format!("{name}-{w}-{i}"));
                let snippet = text
                    .replace('@', &format!("{{{{ params.v{i} }}}}"))
                    .replace("%OUT%", &file.display().to_string());
                script.push(format!("{pre}{snippet}{post}"));
                expected.push((file, expect(v), format!("{name} in {pre:?}..{post:?}, value {i} {v:?}")));
            }
            runbook.push_str(&format!(
                "[steps.c{c}_{w}]\nneeds = []\nrun = {}\n",
                crate::injection::toml_string(&script.join("\n"))
            ));
        }
    }
    write(dir.path(), &runbook, &params);
    ok(&run_in(dir.path(), &["check", "r.toml"]), 0);
    ok(&run(dir.path()), 0);
    let injected: Vec<_> =
        std::fs::read_dir(&canaries).expect("canaries").flatten().map(|e| e.file_name()).collect();
    assert!(injected.is_empty(), "values ran as shell code: {injected:?}");
    for (file, want, what) in &expected {
        let got = std::fs::read(file).unwrap_or_else(|e| panic!("{what}: wrote nothing: {e}"));
        assert!(got == want.as_bytes(), "{what}: arrived as {:?}", String::from_utf8_lossy(&got));
    }
    assert!(expected.len() >= 5_000, "{} cases", expected.len());
}

/// Every code context inside every compound command is still refused, with its code.
#[test]
fn nested_code_contexts_are_still_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runbook = String::from("[runbook]\nname = \"code\"\n[params.v]\ntype = \"string\"\n");
    let mut cases = Vec::new();
    for (text, code) in REFUSED {
        for (pre, post) in WRAPS {
            let line = runbook.lines().count() + 3;
            let k = cases.len();
            let script = format!("{pre}{}{post}", text.replace('@', "{{ params.v }}"));
            runbook.push_str(&format!(
                "[steps.s{k}]\nneeds = []\nrun = {}\n",
                crate::injection::toml_string(&script)
            ));
            cases.push((line, *code, script));
        }
    }
    // The same code contexts in `cmd` arrays that start a shell or an interpreter.
    let argv: &[(&str, &str)] = &[
        (r#"["bash", "-c", "echo @"]"#, "RB047"),
        (r#"["sh", "-ec", "@"]"#, "RB047"),
        (r#"["sudo", "-u", "app", "bash", "-c", "@"]"#, "RB047"),
        (r#"["env", "A=1", "python3", "-c", "print('@')"]"#, "RB047"),
        (r#"["ssh", "-p", "22", "host", "ls", "@"]"#, "RB047"),
        (r#"["su", "-c", "@", "app"]"#, "RB047"),
        (r#"["find", ".", "-exec", "sh", "-c", "@", ";"]"#, "RB047"),
        (r#"["xargs", "-n", "1", "sh", "-c", "@"]"#, "RB047"),
        (r#"["psql", "-c", "SELECT '@'"]"#, "RB047"),
        (r#"["awk", "{ print \"@\" }"]"#, "RB047"),
        (r#"["@", "--version"]"#, "RB047"),
    ];
    for (cmd, code) in argv {
        let line = runbook.lines().count() + 3;
        let k = cases.len();
        let cmd = cmd.replace('@', "{{ params.v }}");
        runbook.push_str(&format!("[steps.s{k}]\nneeds = []\ncmd = {cmd}\n"));
        cases.push((line, *code, cmd));
    }
    std::fs::write(dir.path().join("r.toml"), &runbook).expect("runbook");
    let check = run_in(dir.path(), &["check", "--format", "json", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&check.stdout).expect("json diagnostics");
    for (line, code, script) in &cases {
        let found: Vec<&serde_json::Value> = diags.iter().filter(|d| d["line"] == *line).collect();
        assert!(
            !found.is_empty() && found.iter().all(|d| d["code"] == *code),
            "{script:?}: expected {code}, got {found:?}"
        );
    }
    // Arguments of those commands, and the same words where they are data, are allowed.
    let allowed = [
        r#"["bash", "-c", "echo \"$1\"", "_", "@"]"#,
        r#"["ssh", "@", "uptime"]"#,
        r#"["git", "commit", "-m", "bash -c @"]"#,
        r#"["printf", "%s", "@"]"#,
    ];
    let mut ok_runbook = String::from("[runbook]\nname = \"data\"\n[params.v]\ntype = \"string\"\n");
    for (k, cmd) in allowed.iter().enumerate() {
        ok_runbook
            .push_str(&format!("[steps.a{k}]\nneeds = []\ncmd = {}\n", cmd.replace('@', "{{ params.v }}")));
    }
    std::fs::write(dir.path().join("ok.toml"), &ok_runbook).expect("runbook");
    ok(&run_in(dir.path(), &["check", "ok.toml"]), 0);
}

/// Variables whose value programs run as code (`PATH`, `LD_PRELOAD`, `GIT_SSH_COMMAND`...)
/// take no value from a template, in `env` as in `run` text.
#[test]
fn variables_that_run_code_take_no_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = "[runbook]\nname = \"vars\"\n[params.v]\ntype = \"string\"\n[params.dir]\ntype = \"string\"\nenum = [\"/usr/local/bin\", \"/opt/bin\"]\n[steps.a]\nrun = \"git fetch\"\nenv = { GIT_SSH_COMMAND = \"ssh -i {{ params.v }}\", PATH = \"{{ params.dir }}:/usr/bin\", TAG = \"{{ params.v }}\" }\n";
    std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
    let check = run_in(dir.path(), &["check", "--format", "json", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&check.stdout).expect("json diagnostics");
    // Only `GIT_SSH_COMMAND`: `PATH` takes an enum of plain words, `TAG` is data.
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0]["code"], "RB047");
    assert!(diags[0]["message"].as_str().is_some_and(|m| m.contains("GIT_SSH_COMMAND")), "{diags:#?}");
}

/// A `run` script given to another interpreter cannot take values: it would not read the
/// shell variables they are bound to, and would read the text as its own code.
#[test]
fn values_are_refused_in_scripts_for_other_interpreters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = "[runbook]\nname = \"py\"\n[params.v]\ntype = \"string\"\n[steps.py]\nshell = [\"python3\", \"-c\"]\nrun = \"print({{ params.v }})\"\n[steps.sh]\nshell = [\"/bin/sh\", \"-c\"]\nrun = \"echo {{ params.v }}\"\n";
    std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
    let check = run_in(dir.path(), &["check", "--format", "json", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&check.stdout).expect("json diagnostics");
    assert_eq!(diags.len(), 1, "only the python script: {diags:#?}");
    assert_eq!(diags[0]["code"], "RB047");
    assert_eq!(diags[0]["line"], 7);
}

/// Every URL field renders its values for their part of the URL (red team, issue 11 round
/// 2): `sql.url` and `notify.webhook` were rendered as plain text, so a parameter could move
/// the host (`x@127.0.0.1:PORT/?`) or add query keys (`appdb?host=...&port=...`) and send a
/// secret elsewhere; a path value with `..` climbed out of its segment.
#[test]
fn url_fields_keep_values_in_their_part() {
    let peer = crate::peers::HttpPeer::start();
    let port = peer.url("").rsplit(':').next().unwrap_or("1").trim_end_matches('/').to_string();
    let trap = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    trap.set_nonblocking(true).expect("nonblocking");
    let trap_port = trap.local_addr().expect("addr").port();
    let sb = crate::support::Scratch::new(&format!(
        r#"[runbook]
name = "urls"
[params.svc]
type = "string"
[params.region]
type = "string"
default = "eu"
[params.database]
type = "string"
default = "appdb"
[secrets.HOOK]
env = "RB_TEST_HOOK"
[secrets.DBPASS]
env = "RB_TEST_DBPASS"
[steps.hook]
notify = {{ webhook = "{}/services/{{{{ params.svc }}}}", text = "x", required = true }}
"#,
        peer.url("/hook")
    ));
    let env = [("RB_TEST_HOOK", "hook-secret-1"), ("RB_TEST_DBPASS", "pa:ss@w/rd")];
    let out = sb.run(&["-p", "svc=a?leak=1#x"], &env);
    ok(&out, 0);
    let got = peer.received().pop().expect("a request");
    assert_eq!(got.path, "/hook/services/a%3Fleak%3D1%23x", "one path segment, no query");
    // A value in the host part of a webhook can only be a host: `x@HOST:PORT/?` is refused.
    std::fs::write(
        sb.path().join("r.toml"),
        "[runbook]\nname = \"h\"\n[params.region]\ntype = \"string\"\n[secrets.HOOK]\nenv = \"RB_TEST_HOOK\"\n[steps.hook]\nnotify = { webhook = \"http://{{ params.region }}.hooks.example.invalid/services/{{ secrets.HOOK }}\", text = \"x\", required = true }\n",
    )
    .expect("runbook");
    let before = peer.received().len();
    let out = sb.run(&["-p", &format!("region=x@127.0.0.1:{port}/?")], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("host part of a URL"), "{}", out.stderr);
    assert_eq!(peer.received().len(), before, "no request left");
    // `sql.url`: a database name cannot add `host=`/`port=` query keys; the secret in the
    // userinfo is encoded there and never reaches the trap.
    std::fs::write(
        sb.path().join("r.toml"),
        "[runbook]\nname = \"s\"\n[params.database]\ntype = \"string\"\n[secrets.DBPASS]\nenv = \"RB_TEST_DBPASS\"\n[steps.q]\nsql = { url = \"postgres://app:{{ secrets.DBPASS }}@127.0.0.1:1/{{ params.database }}\", query = \"SELECT 1\" }\n",
    )
    .expect("runbook");
    let out = sb.run(&["-p", &format!("database=appdb?host=127.0.0.1&port={trap_port}")], &env);
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the database name moved the connection to the trap: {}{}",
        out.stdout,
        out.stderr
    );
    let plan = crate::support::run_in_with_env(
        sb.path(),
        &["plan", "r.toml", "-p", "database=appdb?host=127.0.0.1&port=5997"],
        &env,
    );
    ok(&plan, 0);
    assert!(plan.stdout.contains("appdb%3Fhost%3D127.0.0.1%26port%3D5997"), "{}", plan.stdout);
    // A path value cannot climb out of its segment with `..` (plain or encoded).
    std::fs::write(
        sb.path().join("r.toml"),
        format!(
            "[runbook]\nname = \"p\"\n[params.v]\ntype = \"string\"\n[steps.get]\nhttp = {{ url = \"{}/users/{{{{ params.v }}}}/profile\", expect-status = [200, 404] }}\n",
            peer.url("/api")
        ),
    )
    .expect("runbook");
    for v in ["../../admin/drop-all", "%2e%2e/%2E%2e/admin", "x/../../admin", ".."] {
        let before = peer.received().len();
        let out = sb.run(&["-p", &format!("v={v}")], &env);
        assert_eq!(out.code, 3, "{v}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("`..`"), "{v}: {}", out.stderr);
        assert_eq!(peer.received().len(), before, "{v}: a request left");
    }
}

/// Class rule: every field that is a URL renders its values in URL mode. The URL fields are
/// found in the JSON schema (a property named `*url*` or `webhook`, or described as a URL);
/// each must have a row here, whose plan shows a value with `?`, `=` and `&` encoded. A new
/// URL field fails this test until it is rendered in URL mode and listed.
#[test]
fn every_url_field_in_the_schema_is_rendered_in_url_mode() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::root().join("schemas/runbook.schema.json")).expect("schema"),
    )
    .expect("json");
    let mut found = Vec::new();
    for (def, body) in schema["definitions"].as_object().expect("definitions") {
        for (name, prop) in body["properties"].as_object().into_iter().flatten() {
            let described = prop["description"].as_str().unwrap_or("").contains("URL");
            if name.to_lowercase().contains("url") || name.contains("webhook") || described {
                found.push(format!("{def}.{name}"));
            }
        }
    }
    let rows: &[(&str, &str)] = &[
        ("RawHttp.url", "http = { url = \"http://127.0.0.1:1/x/{{ params.v }}\" }"),
        ("RawNotify.webhook", "notify = { webhook = \"http://127.0.0.1:1/x/{{ params.v }}\", text = \"t\" }"),
        ("RawSql.url", "sql = { url = \"postgres://u@127.0.0.1:1/{{ params.v }}\", query = \"SELECT 1\" }"),
    ];
    found.sort();
    let mut listed: Vec<String> = rows.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "a URL field is not rendered in URL mode (or not listed here)");
    let dir = tempfile::tempdir().expect("tempdir");
    for (field, step) in rows {
        std::fs::write(
            dir.path().join("r.toml"),
            format!("[runbook]\nname = \"u\"\n[params.v]\ntype = \"string\"\n[steps.s]\n{step}\n"),
        )
        .expect("runbook");
        let plan = run_in(dir.path(), &["plan", "r.toml", "-p", "v=a?b=c&d#e"]);
        ok(&plan, 0);
        assert!(plan.stdout.contains("/a%3Fb%3Dc%26d%23e"), "{field}: {}", plan.stdout);
        assert!(!plan.stdout.contains("/a?b=c"), "{field}: {}", plan.stdout);
    }
}

/// Promise 2 (red team case 36): `run` text that branches or computes on a step output was
/// planned with the placeholder (`echo safe`, `RB_1=0`) and ran the other branch. Such text
/// is refused by `check` (RB058) and nothing runs; a bare output stays allowed.
#[test]
fn run_text_never_branches_on_a_value_the_plan_cannot_know() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canary = dir.path().join("CANARY");
    let step = |body: &str| {
        format!(
            "[runbook]\nname = \"b\"\n[secrets.S]\nenv = \"RB_TEST_S\"\n[steps.p]\nrun = 'echo o=yes >> \"$RUNBOOK_OUTPUT\"'\noutputs = [\"o\"]\n[steps.ask]\napproval = {{ prompt = \"go?\", inputs = {{ why = {{ type = \"string\" }} }} }}\n[steps.q]\nneeds = [\"p\", \"ask\"]\nrun = '''\n{body}\n'''\n"
        )
    };
    let case36 = format!(
        "{{% if steps.p.outputs.o == \"yes\" %}}touch {}{{% else %}}echo safe{{% endif %}}",
        canary.display()
    );
    write(dir.path(), &step(&case36), "");
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}{}", check.stdout, check.stderr);
    assert!(check.stderr.contains("error[RB058]"), "{}", check.stderr);
    let out = run(dir.path());
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!canary.exists(), "the branch the plan did not show ran");
    // The class: every value the plan cannot know, under every construct that branches or
    // computes, is refused; the same constructs over parameters, and bare values, pass.
    let unknown = ["steps.p.outputs.o", "steps.ask.outputs.why", "secrets.S", "run.id"];
    let shapes = [
        "{% if X == \"yes\" %}a{% else %}b{% endif %}",
        "{% if X %}a{% endif %}",
        "{% if not X %}a{% endif %}",
        "{% for c in X %}{{ c }}{% endfor %}",
        "{% set v = X %}{{ v }}",
        "{% set v %}{{ X }}{% endset %}{{ v }}",
        "{% with v = X %}{{ v }}{% endwith %}",
        "{% macro m(a) %}{% if a %}x{% endif %}{% endmacro %}{{ m(X) }}",
        "{% filter upper %}{{ X }}{% endfilter %}",
        "{{ X | length }}",
        "{{ X[0:2] }}",
        "{{ X | default(\"n\") }}",
        "{{ X ~ \"x\" }}",
        "{{ \"a\" if X else \"b\" }}",
        "{{ X is defined }}",
        "{{ X == \"yes\" }}",
        "{{ X | upper | operand }}",
        "{{- X | trim -}}",
        "{{ (X) }}",
        "{{ X[\"k\" ~ \"\"] }}",
        "{{ X[-1] }}",
    ];
    let mut n = 0;
    for x in unknown {
        for shape in shapes {
            let body = format!("echo {}", shape.replace('X', x));
            write(dir.path(), &step(&body), "");
            let check = run_in(dir.path(), &["check", "r.toml"]);
            assert_eq!(check.code, 3, "{body}: {}{}", check.stdout, check.stderr);
            // A secret in `run` text is refused on its own (RB044).
            let secret = x.starts_with("secrets.") && check.stderr.contains("error[RB044]");
            assert!(secret || check.stderr.contains("error[RB058]"), "{body}: {}", check.stderr);
            n += 1;
        }
    }
    assert_eq!(n, unknown.len() * shapes.len());
    for body in [
        "echo {{ steps.p.outputs.o }} {{ steps.ask.outputs.why }}",
        "echo {{ steps.p.outputs.o | operand }} {{ steps.p.outputs.o[0] }} {{ steps.p.outputs.o[\"k\"].v }}",
        "{% if params.x == \"a\" %}echo {{ steps.p.outputs.o }}{% endif %}",
        "{% for c in params.list %}echo {{ c }} {{ run.id }}{% endfor %}",
        "echo '{% raw %}{% if steps %}{% endraw %}'",
        "echo {{ params.x | upper }} \"steps\"",
    ] {
        let runbook = step(body).replace(
            "[steps.p]",
            "[params.x]\ntype = \"string\"\ndefault = \"a\"\n[params.list]\ntype = \"list\"\ndefault = [\"a\"]\n[steps.p]",
        );
        write(dir.path(), &runbook, "");
        let check = run_in(dir.path(), &["check", "r.toml"]);
        assert!(!check.stderr.contains("RB058"), "{body}: {}", check.stderr);
    }
}

/// Red team case 34: `GIT_EXTERNAL_DIFF` from a parameter ran as a command (`git diff`), and
/// the deny-list missed dozens of such names. The rule is by shape (names ending in
/// `EDITOR`, `PAGER`, `_COMMAND`, `_SSH`, `_RSH`, `_OPTIONS`, `PATH`, prefixes `LD_`,
/// `DYLD_`, `GIT_CONFIG`...): every name of the table is refused with a string value, in a
/// step's `env` and as an assignment in `run` text; data names pass.
#[test]
fn variables_that_programs_run_take_no_values_by_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    let canary = dir.path().join("CANARY");
    let git = |args: &[&str]| {
        std::process::Command::new("git").arg("-C").arg(&repo).args(args).output().expect("git")
    };
    std::fs::create_dir_all(&repo).expect("repo");
    git(&["init", "-q"]);
    std::fs::write(repo.join("f"), "a\n").expect("f");
    git(&["add", "f"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]);
    std::fs::write(repo.join("f"), "b\n").expect("f");
    let runbook = format!(
        "[runbook]\nname = \"d\"\n[params.v]\ntype = \"string\"\n[steps.diff]\ncmd = [\"git\", \"-C\", \"{}\", \"diff\"]\nenv = {{ GIT_EXTERNAL_DIFF = \"{{{{ params.v }}}}\" }}\n",
        repo.display()
    );
    write(dir.path(), &runbook, &format!("v = \"touch {};\"\n", canary.display()));
    let check = run_in(dir.path(), &["check", "r.toml"]);
    assert_eq!(check.code, 3, "{}{}", check.stdout, check.stderr);
    assert!(check.stderr.contains("error[RB047]"), "{}", check.stderr);
    let out = run(dir.path());
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!canary.exists(), "GIT_EXTERNAL_DIFF ran the value");
    let code = [
        "GIT_EXTERNAL_DIFF",
        "GIT_EDITOR",
        "GIT_SEQUENCE_EDITOR",
        "GIT_PAGER",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_VALUE_0",
        "GIT_CONFIG_GLOBAL",
        "GIT_SSH",
        "GIT_DIR",
        "GIT_TEMPLATE_DIR",
        "RSYNC_RSH",
        "CVS_RSH",
        "PSQL_PAGER",
        "PAGER",
        "MANPAGER",
        "SYSTEMD_PAGER",
        "LESSOPEN",
        "LESSCLOSE",
        "EDITOR",
        "VISUAL",
        "SUDO_EDITOR",
        "BROWSER",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "MAVEN_OPTS",
        "PERL5LIB",
        "PERL5OPT",
        "PERLLIB",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "NODE_OPTIONS",
        "NODE_PATH",
        "RUBYOPT",
        "RUBYLIB",
        "GCONV_PATH",
        "LD_PRELOAD",
        "LD_AUDIT",
        "LD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "PATH",
        "CLASSPATH",
        "FZF_DEFAULT_COMMAND",
        "KUBECTL_EXTERNAL_DIFF",
        "SHELL",
        "TERMINAL",
        "SSH_ASKPASS",
        "GIT_ASKPASS",
        "MY_TOOL_CMD",
        "HOOK_PROGRAM",
        "DOCKER_HOST_SSH",
        "PGSSLKEY_COMMAND",
        "OPENSSL_CONF",
        "PSQLRC",
        "INPUTRC",
        "CURL_HOME",
        "WGETRC",
        "NPM_CONFIG_SCRIPT_SHELL",
        "GIT_PROXY_COMMAND",
        "HGEDITOR",
        "LESSKEY",
    ];
    let data = [
        "TAG",
        "VERSION",
        "GIT_AUTHOR_NAME",
        "GIT_COMMITTER_EMAIL",
        "REGION",
        "DB_NAME",
        "MESSAGE",
        "HOME_DIR_NAME",
    ];
    let mut steps = String::new();
    for (i, name) in code.iter().chain(data.iter()).enumerate() {
        steps.push_str(&format!(
            "[steps.e{i}]\nrun = \"true\"\nenv = {{ \"{name}\" = \"{{{{ params.v }}}}\" }}\n[steps.r{i}]\nrun = \"{name}={{{{ params.v }}}} true\"\n"
        ));
    }
    write(dir.path(), &format!("[runbook]\nname = \"t\"\n[params.v]\ntype = \"string\"\n{steps}"), "");
    let check = run_in(dir.path(), &["check", "--format", "json", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&check.stdout).expect("json diagnostics");
    for (i, name) in code.iter().chain(data.iter()).enumerate() {
        let hits = diags
            .iter()
            .filter(|d| {
                d["code"] == "RB047"
                    && d["message"].as_str().is_some_and(|m| {
                        m.contains(&format!("step `e{i}`")) || m.contains(&format!("step `r{i}`"))
                    })
            })
            .count();
        let expected = if i < code.len() { 2 } else { 0 };
        assert_eq!(hits, expected, "{name}: {diags:#?}");
    }
    assert!(code.len() > 60);
}

/// The red team's cases 1-13 (and 35): with the value `a[$(touch CANARY)]`, every place
/// where bash evaluates a word arithmetically or as a name and the lexer missed it (`[[ ]]`
/// with `&&`/`(`, `$[ ]`, `$( )` nested in arithmetic or a subscript, `if((`, `for((`,
/// `declare -i`/`-n` followed by `read`, `printf -v`, a nameref). Whatever the lexer sees,
/// such a value is refused when the script is bound: the run fails, no canary. Also every
/// value of the hostile corpus with that shape, in a plain `echo`.
#[test]
fn values_bash_could_evaluate_are_refused_whatever_the_lexer_sees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canary = dir.path().join("CANARY");
    let scripts = [
        "[[ -n x && 1 -eq {{ params.v }} ]]",
        "[[ -n x && -v {{ params.v }} ]]",
        "[[ ( 1 -eq {{ params.v }} ) ]]",
        "echo $[ 1 + {{ params.v }} ]",
        "cat <<EOF\n$[ {{ params.v }} ]\nEOF",
        "echo $(( $(printf %s {{ params.v }}) ))",
        "a[$(printf %s {{ params.v }})]=1",
        "echo ${a[$(printf %s {{ params.v }})]}",
        "if((1<{{ params.v }})); then :; fi",
        "for((i=0;i<{{ params.v }};i++)); do break; done",
        "declare -i n; read -r n <<< {{ params.v }}",
        "declare -i n; printf -v n %s {{ params.v }}",
        "declare -n r; r={{ params.v }}; echo \"$r\"",
        "echo {{ params.v }}",
    ];
    let payloads = [
        format!("a[$(touch {})]", canary.display()),
        format!("a[`touch {}`]", canary.display()),
        format!("x[${{y:-$(touch {})}}]", canary.display()),
    ];
    let mut cases = 0;
    for script in scripts {
        for v in &payloads {
            write(
                dir.path(),
                &format!(
                    "[runbook]\nname = \"e\"\n[params.v]\ntype = \"string\"\n[steps.s]\nrun = {}\n",
                    crate::injection::toml_string(script)
                ),
                &format!("v = {}\n", crate::injection::toml_string(v)),
            );
            let out = run(dir.path());
            assert_ne!(out.code, 0, "{script} with {v}: {}{}", out.stdout, out.stderr);
            assert!(!canary.exists(), "{script} with {v}: the value ran");
            assert!(
                out.stderr.contains("subscript with an expansion") || out.stderr.contains("RB047"),
                "{script}: {}",
                out.stderr
            );
            cases += 1;
        }
    }
    let canaries = dir.path().join("canaries");
    std::fs::create_dir_all(&canaries).expect("canaries");
    let evaluable: Vec<String> = crate::injection::corpus(&canaries)
        .into_iter()
        .filter(|v| runbook_core::shell::evaluable(v).is_some())
        .collect();
    assert!(evaluable.len() >= 8, "{}", evaluable.len());
    for v in &evaluable {
        write(
            dir.path(),
            "[runbook]\nname = \"e\"\n[params.v]\ntype = \"string\"\n[steps.s]\nrun = \"echo {{ params.v }}\"\n",
            &format!("v = {}\n", crate::injection::toml_string(v)),
        );
        let out = run(dir.path());
        assert_eq!(out.code, 3, "{v}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("subscript with an expansion"), "{v}: {}", out.stderr);
        cases += 1;
    }
    assert!(std::fs::read_dir(&canaries).expect("canaries").next().is_none());
    assert!(cases >= 50, "{cases}");
}

/// Red team cases 14-33: programs that run an argument, an option value or their standard
/// input as code, reached through prefixes, launchers, options and redirections the first
/// lexer did not follow; each rule has rows beyond the red team's. Every row is refused by
/// `check` (RB047) at its step; the runnable ones, run anyway with the value
/// `touch CANARY`, create nothing.
#[test]
fn programs_that_run_arguments_or_input_as_code_take_no_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canary = dir.path().join("CANARY");
    let run_rows: &[&str] = &[
        // prefixes and keywords (F)
        "exec -a x bash -c @",
        "time -p bash -c @",
        "env -S @",
        "env --split-string=@",
        "nohup bash -c @",
        "nice -n 5 bash -c @",
        "ionice -c 3 sh -c @",
        "setsid sh -c @",
        "stdbuf -oL sh -c @",
        "sudo -u x bash -c @",
        "command bash -c @",
        "builtin eval @",
        "xargs -I{} sh -c @",
        "nsenter -t 1 -m @",
        "unshare -r @",
        // options whose value is code
        "ssh -o ProxyCommand=@ nohost.invalid true",
        "ssh -oProxyCommand=@ nohost.invalid true",
        "ssh -o LocalCommand=@ -o PermitLocalCommand=yes nohost.invalid true",
        "ssh -F @ nohost.invalid true",
        "perl -M@ -e 1",
        "perl -I @ -e 1",
        "python3 -m @",
        "node -r @ x.js",
        "node --require=@ x.js",
        "ruby -I@ -e 1",
        "flock /tmp/l -c @",
        "flock /tmp/l --command @",
        "script -q -c @ /dev/null",
        // every -exec of find
        "find /tmp -maxdepth 0 -exec true {} \\; -exec sh -c @ \\;",
        "find /tmp -maxdepth 0 -execdir true {} + -ok @ \\;",
        // launchers (G)
        "chroot / bash -c @",
        "chroot / @",
        "kubectl exec -n prod deploy/api -- sh -c @",
        "kubectl exec -n prod deploy/api -- @",
        "docker exec c sh -c @",
        "docker exec c @",
        "docker run --rm img @",
        "podman exec c @",
        "flock /tmp/l @",
        // standard input read as code (H)
        "bash <<EOF\necho @\nEOF",
        "sh <<'EOF'\necho @\nEOF",
        "bash <<< \"echo @\"",
        "source /dev/stdin <<< @",
        "sqlite3 x.db <<EOF\nselect '@';\nEOF",
        "psql -X <<EOF\nselect '@';\nEOF",
        "python3 - <<EOF\nprint('@')\nEOF",
        "ssh nohost.invalid <<EOF\necho @\nEOF",
        "mysql < @",
        "echo @ | bash",
        "printf '%s\\n' @ | tr a b | sh -s",
        "echo @ |& python3",
        "cat <<EOF | psql -X\nselect '@';\nEOF",
        "echo @ | sudo -u x bash",
    ];
    let cmd_rows: &[&str] = &[
        r#"["env", "-S", "@"]"#,
        r#"["flock", "/tmp/l", "-c", "@"]"#,
        r#"["perl", "-M@", "-e", "1"]"#,
        r#"["ssh", "-o", "ProxyCommand=@", "-o", "BatchMode=yes", "nohost.invalid", "true"]"#,
        r#"["find", "/tmp", "-maxdepth", "0", "-exec", "true", ";", "-exec", "sh", "-c", "@", ";"]"#,
        r#"["chroot", "/", "bash", "-c", "@"]"#,
        r#"["kubectl", "exec", "p", "--", "sh", "-c", "@"]"#,
        r#"["nice", "-n", "5", "bash", "-c", "@"]"#,
        r#"["python3", "-m", "@"]"#,
    ];
    let mut runbook = String::from("[runbook]\nname = \"progs\"\n[params.v]\ntype = \"string\"\n");
    for (i, row) in run_rows.iter().enumerate() {
        let text = row.replace('@', "{{ params.v }}");
        runbook.push_str(&format!("[steps.r{i}]\nrun = {}\n", crate::injection::toml_string(&text)));
    }
    for (i, row) in cmd_rows.iter().enumerate() {
        runbook.push_str(&format!("[steps.c{i}]\ncmd = {}\n", row.replace('@', "{{ params.v }}")));
    }
    write(dir.path(), &runbook, &format!("v = \"touch {}\"\n", canary.display()));
    let check = run_in(dir.path(), &["check", "--format", "json", "r.toml"]);
    assert_eq!(check.code, 3, "{}", check.stderr);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&check.stdout).expect("json diagnostics");
    let refused = |step: &str| {
        diags.iter().any(|d| {
            d["code"] == "RB047"
                && d["message"].as_str().is_some_and(|m| m.contains(&format!("step `{step}`")))
        })
    };
    let missed: Vec<String> = run_rows
        .iter()
        .enumerate()
        .filter(|(i, _)| !refused(&format!("r{i}")))
        .map(|(_, r)| r.to_string())
        .chain(
            cmd_rows
                .iter()
                .enumerate()
                .filter(|(i, _)| !refused(&format!("c{i}")))
                .map(|(_, r)| r.to_string()),
        )
        .collect();
    assert!(missed.is_empty(), "not refused: {missed:#?}");
    // The ones that run here, run anyway (check refuses the whole runbook, so each alone).
    for row in [
        "exec -a x bash -c @",
        "time -p bash -c @",
        "env -S @",
        "chroot / bash -c @",
        "bash <<EOF\n@\nEOF",
        "source /dev/stdin <<< @",
        "bash <<< @",
        "echo @ | bash",
    ] {
        let text = row.replace('@', "{{ params.v }}");
        write(
            dir.path(),
            &format!(
                "[runbook]\nname = \"one\"\n[params.v]\ntype = \"string\"\n[steps.s]\nrun = {}\n",
                crate::injection::toml_string(&text)
            ),
            &format!("v = \"touch {}\"\n", canary.display()),
        );
        let out = run(dir.path());
        assert_eq!(out.code, 3, "{row}: {}{}", out.stdout, out.stderr);
        assert!(!canary.exists(), "{row}: the value ran");
    }
}

/// Red team, smaller finding: `shell = ["env", "node", "-e"]` passed as a POSIX shell (only
/// `env` was looked at). The interpreter after `env` (and `busybox`) is judged.
#[test]
fn the_interpreter_after_env_is_judged() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, refused) in [
        (r#"["env", "node", "-e"]"#, true),
        (r#"["env", "-i", "A=1", "python3", "-c"]"#, true),
        (r#"["/usr/bin/env", "perl", "-e"]"#, true),
        (r#"["busybox", "awk"]"#, true),
        (r#"["env"]"#, true),
        (r#"["env", "bash", "-c"]"#, false),
        (r#"["busybox", "sh", "-c"]"#, false),
        (r#"["bash", "-c"]"#, false),
    ] {
        write(
            dir.path(),
            &format!(
                "[runbook]\nname = \"s\"\n[params.v]\ntype = \"string\"\n[steps.s]\nshell = {shell}\nrun = \"echo {{{{ params.v }}}}\"\n"
            ),
            "",
        );
        let check = run_in(dir.path(), &["check", "r.toml"]);
        assert_eq!(check.code, if refused { 3 } else { 0 }, "{shell}: {}", check.stderr);
        assert_eq!(check.stderr.contains("not a POSIX shell"), refused, "{shell}: {}", check.stderr);
    }
}

/// Red team, smaller finding: `{{ v | e }}` in `run` text passed check, then plan and run
/// failed with a misleading "NUL character" message. It is bound like any other value.
#[test]
fn an_escaped_value_is_bound_like_any_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    for filter in ["e", "escape"] {
        write(
            dir.path(),
            &format!(
                "[runbook]\nname = \"e\"\n[params.v]\ntype = \"string\"\n[steps.s]\nrun = \"printf %s {{{{ params.v | {filter} }}}} > {}\"\n",
                out.display()
            ),
            "v = \"a b'c$(x)\"\n",
        );
        let plan = run_in(dir.path(), &["plan", "r.toml", "--params-file", "p.toml"]);
        ok(&plan, 0);
        assert!(plan.stdout.contains("RB_1="), "{}", plan.stdout);
        let run = run(dir.path());
        ok(&run, 0);
        let got = std::fs::read_to_string(&out).expect("out");
        assert!(!got.contains('\0') && got.contains("a b") && !got.is_empty(), "{filter}: {got:?}");
        std::fs::remove_file(&out).expect("rm");
    }
}
