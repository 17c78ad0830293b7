//! A `for-each` element names a step instance that an operator reads and types back
//! (`resume --rerun 'drain[web-1]'`), so it must read as itself (promise 5, red team adv17b
//! L1): an element holding a character that draws nothing, or draws as something else, is
//! refused with RB071 naming it as `U+XXXX`, by one predicate (`shown::unnameable`): general
//! categories Cc, Cf, Zl, Zp, Co, Cn, every space but the ASCII one, and the default-ignorable
//! code points. Letters of many scripts are accepted.

use regex::Regex;

use crate::support::{Scratch, run_in};

const RUNBOOK: &str = r#"[runbook]
name = "chars"

[params.hosts]
type = "list"

[steps.drain]
for-each = "hosts"
run = "echo {{ item }}"
"#;

fn plan_with(place: &Scratch, elements: &[String]) -> crate::support::Output {
    let hosts = format!("hosts={}", serde_json::to_string(elements).expect("json"));
    run_in(place.path(), &["plan", "r.toml", "--format", "json", "-p", &hosts])
}

/// Every code point of the refused classes that is assigned (all of Cc, Cf, Zl, Zp, the
/// default-ignorable ones, the spaces), and a sample of the private-use and unassigned
/// ones (hundreds of thousands: the unit test `shown::tests` reads every one).
fn refused_corpus() -> Vec<char> {
    let class =
        Regex::new(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}\p{Default_Ignorable_Code_Point}--[\x20]]").expect("re");
    let unassigned = Regex::new(r"[\p{Co}\p{Cn}]").expect("re");
    let mut out = Vec::new();
    let mut sampled = 0usize;
    for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
        if c == '\0' {
            continue;
        }
        let mut b = [0u8; 4];
        let s: &str = c.encode_utf8(&mut b);
        if unassigned.is_match(s) {
            sampled += 1;
            if sampled % 4999 == 1 && !class.is_match(s) {
                out.push(c);
            }
        } else if class.is_match(s) {
            out.push(c);
        }
    }
    out
}

#[test]
fn an_element_with_an_invisible_format_private_or_unassigned_character_is_refused() {
    let place = Scratch::new(RUNBOOK);
    let corpus = refused_corpus();
    assert!(corpus.len() > 400, "{}", corpus.len());
    let mut accepted = Vec::new();
    for c in &corpus {
        let out = plan_with(&place, &["web1".into(), format!("web{c}1")]);
        let named = format!("U+{:04X}", *c as u32);
        if out.code != 3 || !out.stderr.contains("RB071") || !out.stderr.contains(&named) {
            accepted.push(named);
        }
    }
    assert!(
        accepted.is_empty(),
        "{} of {} accepted or not named: {:?}",
        accepted.len(),
        corpus.len(),
        accepted
    );
}

#[test]
fn letters_of_many_scripts_name_instances() {
    let place = Scratch::new(RUNBOOK);
    let letters: Vec<String> = [
        "web-1",
        "café",
        "straße",
        "Ωμέγα",
        "кириллица",
        "עברית",
        "العربية",
        "हिन्दी",
        "বাংলা",
        "ไทย",
        "日本語",
        "中文",
        "한국어",
        "ქართული",
        "Հայերեն",
        "ꯃꯤꯇꯩ",
        "ᏣᎳᎩ",
        "ᐃᓄᒃᑎᑐᑦ",
        "🙂",
        "x y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = plan_with(&place, &letters);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan json");
    let ids: Vec<&str> =
        json["steps"].as_array().expect("steps").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), letters.len(), "{ids:?}");
}

const NUMBERS: &str = r#"[runbook]
name = "numbers"

[params.xs]
type = "list"
items = "number"

[steps.s]
for-each = "xs"
run = "echo {{ item }}"
"#;

/// Red team adv17b L3: a number names one instance per value. `0` and `-0` (and `1`,
/// `1.0`, `1e0`, `01`) are the same value: one instance key (`s[0]`, `s[1]`), so two of them
/// in one list are refused as a repeated element, as two equal strings are.
#[test]
fn equal_numbers_name_one_instance_and_are_refused_twice() {
    let place = Scratch::new(NUMBERS);
    for list in ["0,-0", "-0,0", "1,1.0", "1,1e0", "1,01", "[0, -0]", "[0, -0.0]", "[1, 1.0]", "0.5,5e-1"] {
        let given = format!("xs={list}");
        let out = run_in(place.path(), &["plan", "r.toml", "--format", "json", "-p", &given]);
        assert_eq!(out.code, 3, "{list}: {}", out.stdout);
        assert!(out.stderr.contains("RB071") && out.stderr.contains("twice"), "{list}: {}", out.stderr);
    }
    for (list, id) in [("-0", "s[0]"), ("-0.0", "s[0]"), ("1.0", "s[1]"), ("1e0", "s[1]"), ("[-0]", "s[0]")] {
        let given = format!("xs={list}");
        let out = run_in(place.path(), &["plan", "r.toml", "--format", "json", "-p", &given]);
        assert_eq!(out.code, 0, "{list}: {}", out.stderr);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan json");
        assert_eq!(json["steps"][0]["id"], id, "{list}");
    }
}

/// Issue 15 point 6: every command a message suggests quotes its arguments for a POSIX shell
/// (`hint::word`), so an instance id with a space or a quote is copied and pasted as one
/// word: `--rerun 'gate[web 1]'`, never `--rerun gate[web 1]` (two words, a glob).
#[test]
fn a_suggested_command_quotes_an_instance_id_as_one_shell_word() {
    let place = Scratch::new(
        "[runbook]\nname = \"q\"\n\n[params.hosts]\ntype = \"list\"\ndefault = [\"web 1\", \"it's\"]\n\n[steps.gate]\nfor-each = \"hosts\"\napproval = { approvers = [\"ana\"], prompt = \"ok?\" }\n",
    );
    let out = run_in(place.path(), &["run", "r.toml", "--yes", "--state", "s.db"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let runs = run_in(place.path(), &["runs", "--state", "s.db"]);
    let id = runs.stdout.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("a run").to_string();
    for step in ["gate[web 1]", "gate[it's]"] {
        let out = run_in(
            place.path(),
            &["resume", &id, "--state", "s.db", "--rerun", step, "--skip", step, "--reason", "x"],
        );
        assert_eq!(out.code, 2, "{}", out.stderr);
        insta::assert_snapshot!(
            format!("rerun_and_skip_{}", if step.contains(' ') { "space" } else { "quote" }),
            out.stderr
        );
    }
}
