//! The JSON Schema: generated from the code, committed, and agreeing with the validator.

use std::path::Path;

use crate::support::{files, relative, root, run};

/// Runbook files under a folder of runbooks (params files in `params/` are not runbooks).
/// Runbook files under `dir`: not params files, not the sandbox crate's `Cargo.toml`.
pub fn runbook_files(dir: &str) -> Vec<std::path::PathBuf> {
    files(&root().join(dir), ".toml")
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "params" || c.as_os_str() == "sandbox"))
        // A schedules file is not a runbook: `check` tells them apart by their tables, and
        // so does this list (examples/schedules/, issue 17).
        .filter(|p| !std::fs::read_to_string(p).is_ok_and(|t| runbook_core::schedule::is_schedules_file(&t)))
        .collect()
}

fn schema() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("schemas/runbook.schema.json")).expect("committed schema");
    serde_json::from_str(&text).expect("schema is JSON")
}

/// A TOML file as JSON, the way editors validate it.
fn as_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: toml::Table = toml::from_str(&text).ok()?;
    serde_json::to_value(value).ok()
}

#[test]
fn committed_schema_is_up_to_date() {
    let out = run(&["schema"]);
    assert_eq!(out.code, 0);
    let committed = std::fs::read_to_string(root().join("schemas/runbook.schema.json")).expect("schema");
    assert!(
        committed == out.stdout,
        "schemas/runbook.schema.json is stale: run `cargo run -- schema > schemas/runbook.schema.json`"
    );
    assert_eq!(schema()["$schema"], "http://json-schema.org/draft-07/schema#");
}

#[test]
fn every_valid_runbook_passes_the_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let mut checked = 0;
    for dir in ["tests/fixtures/valid", "runbooks", "examples"] {
        for path in runbook_files(dir) {
            let doc = as_json(&path).unwrap_or_else(|| panic!("{} is TOML", path.display()));
            let errors: Vec<String> =
                validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", relative(&path));
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} files checked");
}

#[test]
fn structurally_invalid_fixtures_fail_the_schema() {
    // Unknown keys, wrong types and missing keys are what a JSON Schema can see; the other
    // codes need the validator (cross-field rules, templates, graphs).
    let structural = ["RB002", "RB003", "RB004"];
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let dir = root().join("tests/fixtures/invalid");
    let mut checked = 0;
    for path in files(&dir, ".toml").into_iter().filter(|p| p.parent() == Some(dir.as_path())) {
        let text = std::fs::read_to_string(&path).expect("fixture");
        let code =
            text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or("").trim().to_string();
        if !structural.contains(&code.as_str()) {
            continue;
        }
        let doc = as_json(&path).expect("structural fixtures are TOML");
        assert!(!validator.is_valid(&doc), "{} ({code}) passes the schema", relative(&path));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} structural fixtures");
}

#[test]
fn every_runbook_and_example_declares_the_schema() {
    for dir in ["runbooks", "examples"] {
        for path in runbook_files(dir) {
            let text = std::fs::read_to_string(&path).expect("readable");
            let first = text.lines().next().unwrap_or("");
            assert!(
                first.starts_with("#:schema ") && first.ends_with("schemas/runbook.schema.json"),
                "{} lacks `#:schema`",
                relative(&path)
            );
            let out = run(&["check", &relative(&path)]);
            assert_eq!(out.code, 0, "{}:\n{}", relative(&path), out.stderr);
        }
    }
}

/// Walk `value` alongside `schema`, recording `Definition.property` for every key used.
fn record_used(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    defs: &serde_json::Value,
    at: &str,
    used: &mut std::collections::BTreeSet<String>,
) {
    // Resolve `$ref` (possibly wrapped in a one-element allOf) and Option's anyOf-with-null.
    let mut schema = schema;
    let mut at = at.to_string();
    for _ in 0..8 {
        if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
            let name = r.rsplit('/').next().unwrap_or_default();
            at = name.to_string();
            schema = &defs[name];
            continue;
        }
        let branches = schema.get("anyOf").or_else(|| schema.get("allOf")).and_then(|b| b.as_array());
        match branches.map(|b| b.iter().filter(|x| x["type"] != "null").collect::<Vec<_>>()) {
            Some(real) if real.len() == 1 => schema = real[0],
            _ => break,
        }
    }
    match value {
        serde_json::Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (k, v) in map {
                    if let Some(sub) = props.get(k) {
                        used.insert(format!("{at}.{k}"));
                        record_used(v, sub, defs, &at, used);
                    }
                }
            } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for v in map.values() {
                    record_used(v, sub, defs, &at, used);
                }
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items {
                    record_used(v, sub, defs, &at, used);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn valid_fixtures_use_every_key_of_the_format() {
    let schema = schema();
    let defs = schema["definitions"].clone();
    let mut all = std::collections::BTreeSet::new();
    for (name, def) in defs.as_object().expect("definitions") {
        for key in def
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().collect())
            .unwrap_or_else(Vec::new)
        {
            all.insert(format!("{name}.{key}"));
        }
    }
    for key in schema["properties"].as_object().expect("top-level properties").keys() {
        all.insert(format!("runbook.{key}"));
    }
    let mut used = std::collections::BTreeSet::new();
    for path in files(&root().join("tests/fixtures/valid"), ".toml") {
        let doc = as_json(&path).expect("valid fixture is TOML");
        record_used(&doc, &schema, &defs, "runbook", &mut used);
    }
    assert!(all.len() > 80, "the schema walk found only {} keys", all.len());
    let missing: Vec<&String> = all.difference(&used).collect();
    assert!(missing.is_empty(), "no valid fixture uses these keys of the format: {missing:#?}");
}

#[test]
fn every_runbook_plans_with_its_sample_params() {
    for path in runbook_files("runbooks") {
        let file = relative(&path);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let params = format!("runbooks/params/{stem}.staging.toml");
        let mut args = vec!["plan", file.as_str(), "--format", "json"];
        if root().join(&params).exists() {
            args.extend(["--params-file", params.as_str()]);
        }
        let out = run(&args);
        assert_eq!(out.code, 0, "{file} does not plan with {params}:\n{}", out.stderr);
    }
    let examples = runbook_files("examples");
    let texts: Vec<String> =
        examples.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
    for path in &examples {
        let file = relative(path);
        // A runbook that another example includes gets its parameters from there.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let included =
            texts.iter().any(|t| t.contains(&format!("/{name}\"")) || t.contains(&format!("\"{name}\"")));
        if included {
            continue;
        }
        let out = run(&["plan", &file]);
        assert_eq!(out.code, 0, "{file} must plan without parameters:\n{}", out.stderr);
    }
}

// ----- issue 15: the JSON Schema catches what a schema can ---------------------------------

/// Codes whose every fixture is a mistake of structure, which a JSON Schema can see: an
/// unknown key, a wrong type, a missing key, no kind or two kinds (and the other "exactly one
/// of" pairs), a bad id or name.
const STRUCTURAL_CODES: &[&str] = &["RB002", "RB003", "RB004", "RB010", "RB011", "RB012"];

/// Fixtures of codes that mix structural and semantic mistakes, whose own mistake is one of
/// structure: a bad duration, a value out of its range, a bad HTTP method or status, an empty
/// list. The other fixtures of these codes need the validator (a zero timeout, a reserved
/// lock prefix, `max-delay` below `delay`, ...).
const STRUCTURAL_FIXTURES: &[&str] = &[
    "52-duration-words",
    "53-duration-unknown-unit",
    "54-duration-negative",
    "56-estimate-open-range",
    "58-retry-attempts-zero",
    "59-retry-backoff-below-one",
    "60-retry-exit-code-out-of-range",
    "61-max-parallel-zero",
    "62-http-method-unknown",
    "63-http-status-out-of-range",
    "64-approval-min-approvals-zero",
    "65-cmd-empty",
    "66-shell-empty",
    "93-enum-empty",
];

/// One invalid fixture: its name, its code, its mistake (the `# mistake:` line), and whether
/// the schema rejects it (`None`: not TOML, so an editor's TOML parser reports it).
struct Caught {
    name: String,
    code: String,
    mistake: String,
    by_schema: Option<bool>,
}

/// Every invalid fixture (tests/fixtures/invalid/*.toml and the many-mistakes runbook) through
/// the real JSON Schema validator.
fn what_the_schema_catches() -> Vec<Caught> {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let dir = root().join("tests/fixtures/invalid");
    let mut out = Vec::new();
    for path in files(&dir, ".toml").into_iter().filter(|p| p.parent() == Some(dir.as_path())) {
        let text = std::fs::read_to_string(&path).expect("fixture");
        let mut lines = text.lines();
        let code = lines.next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or("").trim().to_string();
        let mistake =
            lines.next().and_then(|l| l.strip_prefix("# mistake: ")).unwrap_or("").trim().to_string();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let by_schema = as_json(&path).map(|doc| !validator.is_valid(&doc));
        out.push(Caught { name, code, mistake, by_schema });
    }
    out.sort_by(|a, b| (a.code.as_str(), a.name.as_str()).cmp(&(b.code.as_str(), b.name.as_str())));
    out
}

/// The table of what an editor (the schema) catches and what only `runbook check` finds, as
/// the book's editor page shows it.
fn caught_table(rows: &[Caught]) -> String {
    let caught = rows.iter().filter(|r| r.by_schema == Some(true)).count();
    let toml = rows.iter().filter(|r| r.by_schema.is_none()).count();
    let mut t = format!(
        "Of {} deliberate mistakes, the editor flags {} through the schema and {} through its TOML parser; {} are found only by `runbook check`.\n\n",
        rows.len(),
        caught,
        toml,
        rows.len() - caught - toml
    );
    t.push_str("| Code | Mistake | Editor |\n|---|---|---|\n");
    for r in rows {
        let editor = match r.by_schema {
            None => "TOML syntax",
            Some(true) => "yes",
            Some(false) => "only `runbook check`",
        };
        t.push_str(&format!("| {} | {} | {editor} |\n", r.code, r.mistake.replace('|', "\\|")));
    }
    t
}

#[test]
fn which_mistakes_the_schema_catches() {
    let rows = what_the_schema_catches();
    assert!(rows.len() >= 110, "only {} invalid fixtures", rows.len());
    insta::assert_snapshot!("schema_catches", caught_table(&rows));
}

#[test]
fn the_schema_catches_every_structural_mistake() {
    let rows = what_the_schema_catches();
    let mut missed = Vec::new();
    for name in STRUCTURAL_FIXTURES {
        assert!(rows.iter().any(|r| r.name == *name), "no fixture {name}");
    }
    for r in &rows {
        let structural =
            STRUCTURAL_CODES.contains(&r.code.as_str()) || STRUCTURAL_FIXTURES.contains(&r.name.as_str());
        if structural && r.by_schema != Some(true) {
            missed.push(format!("{} ({}): {}", r.name, r.code, r.mistake));
        }
    }
    assert!(missed.is_empty(), "the schema misses structural mistakes:\n{}", missed.join("\n"));
    // The runbook with many mistakes: the schema sees every structural one at its place.
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let doc = as_json(&root().join("tests/fixtures/many-mistakes/r.toml")).expect("TOML");
    let places: std::collections::BTreeSet<String> =
        validator.iter_errors(&doc).map(|e| e.instance_path().to_string()).collect();
    for place in [
        "/runbook",
        "/params/env/type",
        "/steps/build",
        "/steps/deploy/on-failure",
        "/steps/deploy/timeout",
        "/steps/notify/cmd",
        "/steps/both",
        "/steps/empty",
        "/steps/bad_retry/retry/attempts",
    ] {
        assert!(places.contains(place), "the schema says nothing at `{place}`: {places:#?}");
    }
}

#[test]
fn the_editor_page_lists_what_the_schema_catches() {
    let page = std::fs::read_to_string(root().join("book/src/user-guide/editor.md")).expect("page");
    let begin = "<!-- generated: schema catches -->\n";
    let end = "<!-- end of generated -->";
    let start = page.find(begin).expect("the editor page has the generated table") + begin.len();
    let stop = page[start..].find(end).expect("the generated table ends") + start;
    let expected = caught_table(&what_the_schema_catches());
    assert!(
        page[start..stop].trim() == expected.trim(),
        "book/src/user-guide/editor.md is stale: paste the table of the `schema_catches` snapshot between the markers"
    );
}

/// Small runbooks around one unit, each with no kind or two kinds, wherever a kind is asked.
#[test]
fn no_kind_and_two_kinds_fail_the_schema_wherever_a_kind_is_asked() {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let wrap = |body: &str| -> serde_json::Value {
        let text = format!("[runbook]\nname = \"k\"\n{body}");
        serde_json::to_value(toml::from_str::<toml::Table>(&text).expect("TOML")).expect("JSON")
    };
    let good = [
        "[steps.a]\nrun = \"true\"\n",
        "[finally.a]\ncmd = [\"true\"]\n",
        "[steps.a]\nrun = \"true\"\ncompensate = { run = \"true\" }\n",
        "[preconditions.p]\nrun = \"true\"\n[steps.a]\nrun = \"true\"\n",
        "[steps.a]\nrun = \"true\"\npreconditions = { p = { cmd = [\"true\"] } }\n",
        "[secrets.S]\nenv = \"S\"\n[steps.a]\nrun = \"true\"\n",
    ];
    let bad = [
        "[steps.a]\ntitle = \"nothing\"\n",
        "[steps.a]\nrun = \"true\"\ncmd = [\"true\"]\n",
        "[steps.a]\napproval = { prompt = \"ok?\" }\nnotify = { webhook = \"http://x\", text = \"t\" }\n",
        "[finally.a]\ntitle = \"nothing\"\n",
        "[finally.a]\nrun = \"true\"\nsql = { url = \"sqlite://x\", query = \"SELECT 1\" }\n",
        "[steps.a]\nrun = \"true\"\ncompensate = { dir = \"/tmp\" }\n",
        "[steps.a]\nrun = \"true\"\ncompensate = { run = \"true\", cmd = [\"true\"] }\n",
        "[steps.a]\nrun = \"true\"\ncompensate = { approval = { prompt = \"ok?\" } }\n",
        "[preconditions.p]\nmessage = \"no check\"\n[steps.a]\nrun = \"true\"\n",
        "[preconditions.p]\nrun = \"true\"\nhttp = { url = \"http://x\" }\n[steps.a]\nrun = \"true\"\n",
        "[steps.a]\nrun = \"true\"\npreconditions = { p = { timeout = \"1s\" } }\n",
        "[steps.a]\nrun = \"true\"\npreconditions = { p = { notify = { webhook = \"http://x\", text = \"t\" } } }\n",
        "[secrets.S]\nenv = \"S\"\ncommand = [\"pass\"]\n[steps.a]\nrun = \"true\"\n",
        "[secrets.S]\ndescription = \"no source\"\n[steps.a]\nrun = \"true\"\n",
        "[steps.a]\nhttp = { url = \"http://x\", body = \"b\", json = { a = 1 } }\n",
        "[steps.a]\nsql = { url = \"sqlite://x\" }\n",
        "[steps.a]\nnotify = { webhook = \"http://x\" }\n",
    ];
    for body in good {
        let errors: Vec<String> = validator.iter_errors(&wrap(body)).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{body}: {errors:#?}");
    }
    for body in bad {
        assert!(!validator.is_valid(&wrap(body)), "passes the schema:\n{body}");
    }
}

/// Point 2 of the schema part of issue 15: a runbook that `check` accepts is never rejected by
/// the schema (a false error in an editor is worse than a missed one). The corpus: the
/// runbooks with warnings only, every complete runbook of the book, and a generated corpus of
/// units in every kind with every option, at the edges of every range and syntax.
#[test]
fn what_check_accepts_the_schema_accepts() {
    use runbook_core::validate::{self, NoIncludes};
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let mut texts: Vec<(String, String)> = Vec::new();
    for path in files(&root().join("tests/fixtures/warnings"), ".toml") {
        texts.push((relative(&path), std::fs::read_to_string(&path).expect("fixture")));
    }
    for page in files(&root().join("book/src"), ".md") {
        let text = std::fs::read_to_string(&page).expect("page");
        for (info, line, body) in crate::book::blocks(&text) {
            if info == "toml" {
                texts.push((format!("{}:{line}", relative(&page)), body));
            }
        }
    }
    texts.extend(generated_corpus().into_iter().map(|t| ("generated".to_string(), t)));
    let (mut accepted, mut refused) = (0, 0);
    for (place, text) in &texts {
        let checked = validate::check(runbook_core::Source::new(place.clone(), text.clone()), &NoIncludes);
        if checked.has_errors() {
            refused += 1;
            continue;
        }
        let doc: toml::Table = toml::from_str(text).expect("accepted text is TOML");
        let doc = serde_json::to_value(doc).expect("JSON");
        let errors: Vec<String> =
            validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{place}: `check` accepts, the schema refuses:\n{text}\n{errors:#?}");
        accepted += 1;
    }
    assert!(accepted >= 600, "only {accepted} accepted runbooks ({refused} refused)");
    assert!(refused >= 20, "the generated corpus never reaches past an edge ({refused} refused)");
}

/// Runbooks that vary one thing at a time around a small base: every kind of every unit, every
/// option, names, durations and numbers at the edges of what the validator accepts (and past).
fn generated_corpus() -> Vec<String> {
    let base = "[runbook]\nname = \"g\"\n";
    let step = |body: &str| format!("{base}[steps.a]\n{body}\n");
    let mut out = Vec::new();
    let kinds = [
        "run = \"true\"",
        "cmd = [\"true\"]",
        "http = { url = \"http://127.0.0.1:1/\" }",
        "sql = { url = \"sqlite://x.db\", query = \"SELECT 1\" }",
        "sql = { url = \"sqlite://x.db\", file = \"x.sql\", read-only = true }",
        "approval = { prompt = \"go?\" }",
        "notify = { webhook = \"http://127.0.0.1:1/\", text = \"t\" }",
        "notify = { webhook = \"http://127.0.0.1:1/\", json = { text = \"t\" }, required = true }",
    ];
    for k in kinds {
        out.push(step(k));
        out.push(format!("{base}[steps.a]\nrun = \"true\"\n[finally.f]\n{k}\n"));
        if !k.starts_with("approval") {
            out.push(step(&format!("run = \"true\"\ncompensate = {{ {k} }}")));
        }
        if !k.starts_with("approval") && !k.starts_with("notify") {
            out.push(format!("{base}[preconditions.p]\n{k}\n[steps.a]\nrun = \"true\"\n"));
            out.push(step(&format!("run = \"true\"\npreconditions = {{ p = {{ {k} }} }}")));
        }
    }
    // The syntax itself is held to humantime's by `syntax::tests` over a large corpus; here,
    // the places a duration goes, with a few of each class (zero, units, spaces, fractions,
    // bounds, mistakes).
    let durations = [
        "0",
        "0s",
        "1ms",
        "250us",
        "10µs",
        "1.5s",
        "1 0s",
        " 5m ",
        "1h30m",
        "2 hrs 3 mins",
        "7 days",
        "1M",
        "100y",
        "101y",
        // Whitespace where regex engines differ (U+0085 is whitespace to humantime, U+FEFF is not).
        "1\u{85}s",
        "\u{85}1s",
        "\u{feff}1s",
        "1\u{a0}h",
        "\u{3000}2m",
        "99999999999999999999s",
        "0.1M",
        "5",
        "5 parsecs",
        "-1s",
        ".5s",
        "1..2",
        "",
        "PT5M",
        "1S",
    ];
    for d in durations {
        out.push(step(&format!("run = \"true\"\ntimeout = \"{d}\"")));
        out.push(step(&format!("run = \"true\"\nretry = {{ delay = \"{d}\", max-delay = \"100y\" }}")));
        out.push(step(&format!("run = \"true\"\nestimate = \"{d}\"")));
        out.push(step(&format!("run = \"true\"\nestimate = \"0s..{d}\"")));
        out.push(format!("{base}estimate = \"{d}..100y\"\n[steps.a]\nrun = \"true\"\n"));
        out.push(format!(
            "{base}[steps.a]\nrun = \"true\"\n[escalation.e]\nafter = \"{d}\"\nnotify = {{ webhook = \"http://127.0.0.1:1/\", text = \"t\" }}\n"
        ));
    }
    let names = [
        "a",
        "a1",
        "a_b",
        "abc_123",
        "_a",
        "A",
        "aB",
        "1a",
        "a-b",
        "a.b",
        "é",
        "a b",
        "ab_",
        "z9",
        "Z",
        "__",
        "a__b",
        "snake_case_name",
        "kebab-name",
        "x-",
        "-x",
    ];
    for n in names {
        out.push(format!("{base}[steps.{n:?}]\nrun = \"true\"\n"));
        out.push(format!(
            "{base}[params.{n:?}]\ntype = \"string\"\ndefault = \"v\"\n[steps.a]\nrun = \"true\"\n"
        ));
        out.push(format!("{base}[secrets.{n:?}]\nenv = \"X\"\n[steps.a]\nrun = \"true\"\n"));
        out.push(format!("[runbook]\nname = {n:?}\n[steps.a]\nrun = \"true\"\n"));
        out.push(step(&format!("run = \"true\"\noutputs = [{n:?}]")));
        out.push(step(&format!("run = \"true\"\nenv = {{ {n:?} = \"v\" }}")));
        out.push(step(&format!(
            "approval = {{ prompt = \"go?\", inputs = {{ {n:?} = {{ type = \"string\" }} }} }}"
        )));
        out.push(format!(
            "{base}[steps.a]\nrun = \"true\"\n[escalation.{n:?}]\nafter = \"1m\"\nnotify = {{ webhook = \"http://127.0.0.1:1/\", text = \"t\" }}\n"
        ));
    }
    for m in [
        "GET", "get", "Get", "HEAD", "POST", "put", "PATCH", "DELETE", "options", "TRACE", "CONNECT",
        "FETCH", "",
    ] {
        out.push(step(&format!("http = {{ url = \"http://127.0.0.1:1/\", method = \"{m}\" }}")));
    }
    for m in ["GET", "head", "Head", "POST", "delete", "options"] {
        let http = format!("http = {{ url = \"http://127.0.0.1:1/\", method = \"{m}\" }}");
        out.push(format!("{base}[preconditions.p]\n{http}\n[steps.a]\nrun = \"true\"\n"));
        out.push(step(&format!("run = \"true\"\npreconditions = {{ p = {{ {http} }} }}")));
    }
    for s in [99, 100, 200, 204, 404, 599, 600, 0, -1] {
        out.push(step(&format!("http = {{ url = \"http://127.0.0.1:1/\", expect-status = [200, {s}] }}")));
    }
    for a in [-1, 0, 1, 2, 1000, 1001] {
        out.push(step(&format!("run = \"true\"\nretry = {{ attempts = {a} }}")));
        out.push(format!("{base}max-parallel = {a}\n[steps.a]\nrun = \"true\"\n"));
        out.push(step(&format!("approval = {{ prompt = \"go?\", min-approvals = {a} }}")));
    }
    out.push(format!("{base}max-parallel = 10000\n[steps.a]\nrun = \"true\"\n"));
    out.push(format!("{base}max-parallel = 10001\n[steps.a]\nrun = \"true\"\n"));
    out.push(step("approval = { prompt = \"go?\", min-approvals = 100 }"));
    out.push(step("approval = { prompt = \"go?\", min-approvals = 101 }"));
    for b in ["0.5", "1.0", "1", "2.5", "100.0", "100.5"] {
        out.push(step(&format!("run = \"true\"\nretry = {{ backoff = {b} }}")));
    }
    for c in [-1, 0, 1, 255, 256] {
        out.push(step(&format!("run = \"true\"\nretry = {{ on-exit-codes = [{c}] }}")));
    }
    for f in ["compensate", "stop", "continue", "Stop", "explode", "ignore"] {
        out.push(step(&format!("run = \"true\"\non-failure = \"{f}\"")));
        out.push(format!("{base}[defaults]\non-failure = \"{f}\"\n[steps.a]\nrun = \"true\"\n"));
    }
    for t in ["string", "integer", "number", "boolean", "String", "int", "float", "bool"] {
        out.push(format!("{base}[params.p]\ntype = \"{t}\"\n[steps.a]\nrun = \"true\"\n"));
    }
    for (t, v) in
        [("string", "\"x\""), ("integer", "3"), ("number", "1.5"), ("number", "2"), ("boolean", "true")]
    {
        out.push(format!(
            "{base}[params.p]\ntype = \"{t}\"\ndefault = {v}\nenum = [{v}]\n[steps.a]\nrun = \"true\"\n"
        ));
    }
    for sh in ["[]", "[\"bash\", \"-c\"]", "[\"\"]", "[\"sh\"]"] {
        out.push(step(&format!("run = \"true\"\nshell = {sh}")));
        out.push(format!("{base}[defaults]\nshell = {sh}\n[steps.a]\nrun = \"true\"\n"));
        out.push(step(&format!("cmd = {sh}")));
    }
    out.push(format!("{base}[params.p]\ntype = \"string\"\nenum = []\n[steps.a]\nrun = \"true\"\n"));
    for k in &kinds {
        for outputs in ["[]", "[\"o\"]", "[\"o\", \"o\"]"] {
            out.push(step(&format!("{k}\noutputs = {outputs}")));
            out.push(step(&format!("run = \"true\"\ncompensate = {{ {k}, outputs = {outputs} }}")));
        }
    }
    // Every modifier beside every kind, at the edge of what the validator accepts or where it
    // ignores the key: a rule the schema states everywhere but the validator only for some
    // kinds would refuse one of these.
    let step_modifiers = [
        "timeout = \"1ms\"",
        "retry = { attempts = 1, delay = \"0s\", backoff = 1, on-exit-codes = [0, 255], jitter = true }",
        "retry = { attempts = 1000, backoff = 100.0, max-delay = \"100y\" }",
        "estimate = \"0s..1s\"",
        "needs = []",
        "outputs = []",
        "env = { _X = \"v\", a1 = \"\" }",
        "preconditions = {}",
        "idempotent = true",
        "on-failure = \"continue\"",
        "dir = \".\"",
        "when = \"true\"",
        "confirm = \"ok?\"",
        "title = \"t\"\ndescription = \"\"",
    ];
    let action_modifiers = [
        "timeout = \"1ms\"",
        "retry = { attempts = 1 }",
        "outputs = []",
        "env = {}",
        "idempotent = false",
        "dir = \".\"",
    ];
    for k in &kinds {
        for m in step_modifiers {
            out.push(step(&format!("{k}\n{m}")));
            out.push(format!("{base}[steps.a]\nrun = \"true\"\n[finally.f]\n{k}\n{m}\n"));
        }
        for m in action_modifiers {
            out.push(step(&format!("run = \"true\"\ncompensate = {{ {k}, {m} }}")));
        }
    }
    // Keys that only some kinds read (`shell` by `run`) are accepted, empty or not, on others.
    for k in &kinds {
        for shell in ["[]", "[\"\"]", "[\"sh\", \"-c\"]"] {
            out.push(step(&format!("{k}\nshell = {shell}")));
            out.push(step(&format!("run = \"true\"\ncompensate = {{ {k}, shell = {shell} }}")));
        }
    }
    for lock in ["run:x", "runs:x", "x-run:", "RUN:x", "run", "db-{{ runbook.name }}"] {
        out.push(format!("{base}lock = \"{lock}\"\n[steps.a]\nrun = \"true\"\n"));
    }
    for (t, extra) in
        [("string", "pattern = '^v'"), ("integer", "pattern = '^1'"), ("boolean", "enum = [true]")]
    {
        out.push(format!("{base}[params.p]\ntype = \"{t}\"\n{extra}\n[steps.a]\nrun = \"true\"\n"));
    }
    out.push(format!("{base}[steps.a]\nrun = \"true\"\n[steps.b]\nneeds = [\"a\", \"a\"]\nrun = \"true\"\n"));
    out.push(format!(
        "{base}[steps.a]\nrun = \"true\"\n[finally.f]\nrun = \"true\"\ncompensate = {{ run = \"true\" }}\n"
    ));
    out.push(format!("{base}[secrets.S]\ncommand = []\n[steps.a]\nrun = \"true\"\n"));
    out.push(format!("{base}[secrets.S]\nfile = \"s\"\nfirst-line = true\n[steps.a]\nrun = \"true\"\n"));
    // Red team adv15b F15: numbers that are not finite, floats for integers, `first-line`
    // beside every source, a secret's file named as a script.
    for v in ["inf", "-inf", "+inf", "nan", "-nan", "1e308", "-0.0", "5e-324"] {
        out.push(format!("{base}[params.p]\ntype = \"number\"\ndefault = {v}\n[steps.a]\nrun = \"true\"\n"));
        out.push(format!(
            "{base}[params.p]\ntype = \"number\"\nenum = [1.5, {v}]\n[steps.a]\nrun = \"true\"\n"
        ));
    }
    for v in ["1.0", "1.5", "-0.0", "1e3"] {
        out.push(format!("{base}[params.p]\ntype = \"integer\"\ndefault = {v}\n[steps.a]\nrun = \"true\"\n"));
        out.push(format!("{base}[params.p]\ntype = \"integer\"\nenum = [{v}]\n[steps.a]\nrun = \"true\"\n"));
    }
    for source in ["env = \"S\"", "file = \"s\"", "command = [\"pass\"]"] {
        for v in ["true", "false"] {
            out.push(format!("{base}[secrets.S]\n{source}\nfirst-line = {v}\n[steps.a]\nrun = \"true\"\n"));
        }
    }
    for (secret, script) in [("s.sql", "s.sql"), ("./s.sql", "s.sql"), ("s.sql", "t.sql")] {
        out.push(format!(
            "{base}[secrets.S]\nfile = \"{secret}\"\n[steps.a]\nsql = {{ url = \"{{{{ secrets.S }}}}\", file = \"{script}\" }}\n"
        ));
    }
    out
}

/// Walk every subschema of `schema` (objects under keywords that hold schemas).
fn subschemas<'a>(
    schema: &'a serde_json::Value,
    out: &mut Vec<&'a serde_json::Map<String, serde_json::Value>>,
) {
    let Some(map) = schema.as_object() else { return };
    out.push(map);
    for (key, value) in map {
        match key.as_str() {
            "properties" | "definitions" | "dependencies" => {
                for sub in value.as_object().into_iter().flat_map(|m| m.values()) {
                    subschemas(sub, out);
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                for sub in value.as_array().into_iter().flatten() {
                    subschemas(sub, out);
                }
            }
            "items" | "additionalProperties" | "propertyNames" | "not" | "if" | "then" | "else" => {
                subschemas(value, out)
            }
            _ => {}
        }
    }
}

/// Editors read the schema with their own validator (Taplo: the `jsonschema` crate, draft-04
/// to draft-07; VS Code's JSON language service for `.json`): the schema is valid draft-07,
/// uses only draft-07 keywords, ECMA-262 patterns without flags or lookaround, and every
/// table is closed, as the parser refuses unknown keys everywhere.
#[test]
fn the_schema_is_plain_draft_07_that_every_editor_reads() {
    let schema = schema();
    assert!(jsonschema::draft7::meta::is_valid(&schema), "not a valid draft-07 schema");
    jsonschema::draft7::new(&schema).expect("compiles as draft-07");
    let keywords = [
        "$schema",
        "$id",
        "$ref",
        "title",
        "description",
        "default",
        "type",
        "properties",
        "additionalProperties",
        "required",
        "definitions",
        "items",
        "enum",
        "const",
        "format",
        "pattern",
        "propertyNames",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "uniqueItems",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "dependencies",
    ];
    let mut all = Vec::new();
    subschemas(&schema, &mut all);
    assert!(all.len() > 150, "only {} subschemas", all.len());
    for sub in &all {
        for key in sub.keys() {
            assert!(keywords.contains(&key.as_str()), "keyword `{key}` is not plain draft-07: {sub:?}");
        }
        if let Some(p) = sub.get("pattern").and_then(|p| p.as_str()) {
            // (`jsonschema::draft7::new` above compiled it, with ECMA-262 semantics.)
            let groups_ok = p.match_indices("(?").all(|(i, _)| p[i..].starts_with("(?:"));
            assert!(groups_ok && !p.contains("\\p") && !p.contains("\\A"), "{p} is not plain ECMA-262");
        }
        if sub.contains_key("properties") && sub.get("type") == Some(&serde_json::Value::from("object")) {
            assert_eq!(
                sub.get("additionalProperties"),
                Some(&serde_json::Value::Bool(false)),
                "open table: {sub:?}"
            );
        }
    }
}

/// The duration pattern through the real JSON Schema validator (ECMA-262 regexes) against
/// `check` (humantime over the trimmed text): every string of up to four characters over an
/// alphabet of digits, units, a dot and whitespace that regex engines disagree on. The schema
/// refuses exactly what `check` refuses, except numbers humantime cannot hold.
#[test]
fn the_schema_reads_durations_as_check_does_through_the_real_validator() {
    use runbook_core::validate::{self, NoIncludes};
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let alphabet = ['1', '0', ' ', '.', 's', 'm', '\u{85}', '\u{feff}', '\u{a0}', '\t'];
    let mut layer = vec![String::new()];
    let mut corpus = Vec::new();
    for _ in 0..4 {
        layer = layer.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
        corpus.extend(layer.iter().cloned());
    }
    let toml_string = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_control() || c == '"' || c == '\\' {
                    format!("\\u{:04X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let (mut both, mut neither) = (0, 0);
    for d in &corpus {
        let text = format!(
            "[runbook]\nname = \"d\"\n[steps.a]\nrun = \"true\"\nretry = {{ delay = \"{}\" }}\n",
            toml_string(d)
        );
        let checked = validate::check(runbook_core::Source::new("d.toml", text.clone()), &NoIncludes);
        let doc = serde_json::to_value(toml::from_str::<toml::Table>(&text).expect("TOML")).expect("JSON");
        match (checked.has_errors(), validator.is_valid(&doc)) {
            (false, true) => both += 1,
            (true, false) => neither += 1,
            (false, false) => panic!("{d:?}: `check` reads it, the schema refuses it"),
            (true, true) => panic!("{d:?}: the schema accepts what `check` refuses"),
        }
    }
    assert!(both > 500 && neither > 5000, "{both} read by both, {neither} by neither");
}
