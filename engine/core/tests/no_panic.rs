//! The validator and the planner never panic, whatever the input (promise 5).
//!
//! Two generators: arbitrary text, and mutations of the valid fixture corpus (so most cases
//! get past the TOML parser and exercise validation, planning and rendering). Set
//! `PROPTEST_CASES` for a longer run.

use std::collections::BTreeMap;

use proptest::prelude::*;
use runbook_core::model::{ParamType, ParamValue};
use runbook_core::validate::{self, NoIncludes};
use runbook_core::{Source, plan, render};

const CORPUS: &[&str] = &[
    include_str!("../../../tests/fixtures/valid/rollback-l3.toml"),
    include_str!("../../../tests/fixtures/valid/deploy-canary.toml"),
    include_str!("../../../tests/fixtures/valid/health-check.toml"),
    include_str!("../../../tests/fixtures/valid/restore-staging.toml"),
    include_str!("../../../tests/fixtures/valid/sync-object-storage.toml"),
    include_str!("../../../tests/fixtures/valid/rebuild-search-index.toml"),
    include_str!("../../../tests/fixtures/valid/rotate-tls-cert.toml"),
    include_str!("../../../tests/fixtures/valid/incident-page.toml"),
];

/// Pieces that make interesting runbooks when spliced in.
const SNIPPETS: &[&str] = &[
    "\n[steps.x]\nrun = \"true\"\n",
    "\n[steps.y]\nneeds = [\"x\", \"y\"]\ncmd = [\"true\"]\n",
    "needs = []\n",
    "needs = [\"backup\"]\n",
    "{{ ",
    " }}",
    "{% for a in params.x %}",
    "{{ steps.backup.outputs.file }}",
    "{{ secrets.DATABASE_URL }}",
    "{{ params.environment | upper }}",
    "\"",
    "'",
    "'''",
    "..",
    "retry = { attempts = 0, delay = \"1s\", max-delay = \"0s\" }\n",
    "timeout = \"-5s\"\n",
    "estimate = \"9h..1s\"\n",
    "when = \"params.environment ==\"\n",
    "compensate = { }\n",
    "[finally.z]\nneeds = [\"backup\"]\nrun = \"{{ run.status }}\"\n",
    "runbook = { file = \"missing.toml\" }\n",
    "é",
    "\u{1F680}",
    "\0",
    "[",
    "]",
    "= =",
    "\n[params.p]\ntype = \"integer\"\ndefault = 9223372036854775807\n",
    "max-parallel = -1\n",
];

fn check_and_plan(text: &str) {
    let checked = validate::check(Source::new("fuzz.toml", text.to_string()), &NoIncludes);
    for d in &checked.diagnostics {
        // Every diagnostic can be located and shown.
        let _ = d.location();
        let _ = d.to_string();
        assert!(
            d.span.start <= d.span.end && d.span.end <= d.source.text.len(),
            "span out of its file: {d:?}"
        );
    }
    let Some(runbook) = checked.runbook else { return };
    // Give every parameter a value of its type, honouring enums.
    let mut values = BTreeMap::new();
    for p in &runbook.params {
        let v = match (&p.default, &p.allowed) {
            (Some(d), _) => d.clone(),
            (None, Some(a)) if !a.is_empty() => a[0].clone(),
            (None, _) => match p.ty {
                ParamType::String => ParamValue::String("v1.0.0".into()),
                ParamType::Integer => ParamValue::Integer(1),
                ParamType::Number => ParamValue::Number(1.5),
                ParamType::Boolean => ParamValue::Boolean(true),
                ParamType::StringList => ParamValue::List(vec![ParamValue::String("a".into())]),
                ParamType::IntegerList => ParamValue::List(vec![ParamValue::Integer(1)]),
                ParamType::NumberList => ParamValue::List(vec![ParamValue::Number(1.5)]),
            },
        };
        values.insert(p.name.clone(), v);
    }
    if let Ok(p) = plan::plan(&runbook, &values) {
        let _ = render::text(&p);
        let _ = render::markdown(&p);
        let _ = render::dot(&p);
        let _ = serde_json::to_string(&p);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 0..SNIPPETS.len()).prop_map(|(a, s)| Mutation::Insert(a, s)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let boundary = |i: usize| {
        let mut i = if text.is_empty() { 0 } else { i % (text.len() + 1) };
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match m {
        Mutation::Delete(a, n) => {
            let start = boundary(*a);
            let end = boundary((start + n).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Mutation::Insert(a, s) => {
            let at = boundary(*a);
            format!("{}{}{}", &text[..at], SNIPPETS[*s], &text[at..])
        }
        Mutation::DuplicateLine(a) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = a % lines.len();
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let (i, j) = (a % lines.len(), b % lines.len());
                lines.swap(i, j);
            }
            lines.join("\n")
        }
    }
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_and_plan(&text);
    }

    #[test]
    fn mutated_runbooks_never_panic(base in 0..CORPUS.len(), mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut text = CORPUS[base].to_string();
        for m in &mutations {
            text = apply(&text, m);
        }
        check_and_plan(&text);
    }
}

#[test]
fn unmutated_corpus_plans() {
    // Guards the generator itself: the corpus must reach the planner.
    for text in CORPUS {
        let checked = validate::check(Source::new("corpus.toml", text.to_string()), &NoIncludes);
        let includes_only = checked.diagnostics.iter().all(|d| d.code == runbook_core::Code::IncludeMissing);
        assert!(checked.runbook.is_some() || includes_only, "{:?}", checked.diagnostics);
    }
}
