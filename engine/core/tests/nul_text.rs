//! Red team adv27 V1, the class: a NUL character anywhere in a runbook's text (a key or a
//! string, written `\u0000`) is refused by `check` as RB130 at its place, whatever field it
//! is in. The corpus: every basic string of the team's runbooks and the examples, each in
//! turn given a NUL, thousands of files in all; each must be refused at that line, and the
//! unchanged files must not be.

use runbook_core::validate::{self, NoIncludes};
use runbook_core::{Code, Source};

fn corpus() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    for dir in ["runbooks", "examples", "tests/fixtures/valid"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "toml")
                && let Ok(text) = std::fs::read_to_string(&path)
                && text.contains("[runbook]")
            {
                out.push((path.display().to_string(), text));
            }
        }
    }
    out.sort();
    out
}

/// Where each basic string of `text` begins (one or three `"`), as TOML reads the file:
/// byte offsets just after the opening quotes. Literal strings (`'`) have no escapes.
fn string_starts(text: &str) -> Vec<usize> {
    use toml::de::{DeTable, DeValue};
    fn walk(value: &toml::Spanned<DeValue<'_>>, text: &str, out: &mut Vec<usize>) {
        match value.get_ref() {
            DeValue::String(_) => {
                let at = value.span().start;
                if text[at..].starts_with("\"\"\"") {
                    out.push(at + 3);
                } else if text[at..].starts_with('"') {
                    out.push(at + 1);
                }
            }
            DeValue::Table(t) => t.iter().for_each(|(_, v)| walk(v, text, out)),
            DeValue::Array(a) => a.iter().for_each(|v| walk(v, text, out)),
            _ => {}
        }
    }
    let Ok(root) = DeTable::parse(text) else { return Vec::new() };
    let mut out = Vec::new();
    walk(&toml::Spanned::new(root.span(), DeValue::Table(root.into_inner())), text, &mut out);
    out.sort_unstable();
    out
}

#[test]
fn a_nul_in_any_string_of_any_runbook_is_refused_at_its_line() {
    let corpus = corpus();
    assert!(corpus.len() >= 10, "the corpus: {} files", corpus.len());
    let mut cases = 0;
    for (name, text) in &corpus {
        let clean = validate::check(Source::new(name.clone(), text.clone()), &NoIncludes);
        assert!(!clean.diagnostics.iter().any(|d| d.code == Code::NulInText), "{name}: RB130 without a NUL");
        for at in string_starts(text) {
            let mut bad = text.clone();
            bad.insert_str(at, "\\u0000");
            let line = text[..at].matches('\n').count() + 1;
            let checked = validate::check(Source::new(name.clone(), bad), &NoIncludes);
            let found = checked.diagnostics.iter().find(|d| d.code == Code::NulInText);
            let Some(found) = found else {
                panic!("{name}:{line}: a NUL in this string was not refused: {:?}", checked.diagnostics)
            };
            assert_eq!(
                found.source.line_col(found.span.start).0,
                line,
                "{name}: RB130 at the line of the NUL"
            );
            assert!(checked.runbook.is_none(), "{name}:{line}: a runbook with a NUL is invalid");
            cases += 1;
        }
    }
    assert!(cases >= 500, "only {cases} strings in the corpus");
    eprintln!("{cases} runbooks with a NUL, each refused at its line");
}

#[test]
fn a_nul_in_a_key_is_refused_at_its_place() {
    for text in [
        "[runbook]\nname = \"k\"\n\n[steps.\"a\\u0000b\"]\nrun = \"true\"\n",
        "[runbook]\nname = \"k\"\n\n[steps.a]\nrun = \"true\"\nenv = { \"X\\u0000\" = \"1\" }\n",
    ] {
        let checked = validate::check(Source::new("k.toml", text.to_string()), &NoIncludes);
        let found = checked.diagnostics.iter().find(|d| d.code == Code::NulInText);
        let found = found.unwrap_or_else(|| panic!("not refused: {text}: {:?}", checked.diagnostics));
        assert!(found.source.slice(found.span).is_some_and(|k| k.contains("\\u0000")), "{text}");
    }
}
