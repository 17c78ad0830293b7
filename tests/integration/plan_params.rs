//! The parameters a plan shows are the parameters that ran (promise 2, red team adv17b L2):
//! a list parameter is shown as the JSON array `-p` accepts back, never its elements joined
//! with commas (`["a,b","c"]` and `a,b,c` printed the same line). Copying the text plan's
//! `params` line back, word by word through a real shell, as `-p` values gives the same
//! instances, for a corpus of hostile elements (brackets, the delimiters of an instance id,
//! are refused in elements, RB071). Printable ASCII only: the text plan marks every other
//! character of a value as an escape (`\u{e9}`) and says so, by the rule of what is
//! executed (`shown::marked`), so such a line is read, not pasted.

use std::process::Command;

use crate::support::{Scratch, ok, run_in};

const RUNBOOK: &str = r#"[runbook]
name = "params"

[params.hosts]
type = "list"

[params.tags]
type = "list"
default = []

[params.note]
type = "string"
default = "n"

[steps.drain]
for-each = "hosts"
run = "echo {{ item }}"
"#;

/// `runbook plan r.toml EXTRA -p P...`, which must succeed.
fn plan(place: &Scratch, extra: &[&str], params: &[String]) -> crate::support::Output {
    let mut args = vec!["plan", "r.toml"];
    args.extend_from_slice(extra);
    for p in params {
        args.extend(["-p", p.as_str()]);
    }
    let out = run_in(place.path(), &args);
    ok(&out, 0);
    out
}

/// The instance ids of the plan with these `-p` values.
fn instances(place: &Scratch, params: &[String]) -> Vec<String> {
    let out = plan(place, &["--format", "json"], params);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan json");
    json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect()
}

/// The text plan's `params` line, split into words by `sh` as an operator's paste would be.
fn params_words(place: &Scratch, params: &[String]) -> Vec<String> {
    let out = plan(place, &[], params);
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("params "))
        .unwrap_or_else(|| panic!("a params line: {}", out.stdout))
        .trim()
        .to_string();
    let split = Command::new("sh")
        .args(["-c", &format!("for w in {line}; do printf '%s\\0' \"$w\"; done")])
        .output()
        .expect("sh runs");
    assert!(split.status.success(), "{line}");
    String::from_utf8(split.stdout)
        .expect("utf-8")
        .split('\0')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_list_parameter_is_shown_as_the_array_p_accepts_back() {
    let place = Scratch::new(RUNBOOK);
    let commas = params_words(&place, &[r#"hosts=["a,b","c"]"#.into()]);
    let plain = params_words(&place, &["hosts=a,b,c".into()]);
    assert_ne!(commas, plain, "two lists print two different lines");
    assert!(commas.contains(&r#"hosts=["a,b","c"]"#.to_string()), "{commas:?}");
}

#[test]
fn the_printed_params_give_back_the_same_instances_for_hostile_elements() {
    let place = Scratch::new(RUNBOOK);
    let corpus: &[&[&str]] = &[
        &["a,b", "c"],
        &["a", "b,c"],
        &["x y", " lead", "trail "],
        &["it's", "\"q\"", "back\\slash", "\\\"", "\\u0065"],
        &["$(touch PWNED)", "`id`", "a;b", "a|b", "*", "~", "#c"],
        &["{x}", "{{ item }}", "%", "a=b", "x=-p", "y--yes"],
        &["1", "01", "true", "null", "{}"],
    ];
    for elements in corpus {
        let hosts = format!("hosts={}", serde_json::to_string(elements).expect("json"));
        let tags =
            format!("tags={}", serde_json::to_string(&["a,b", "x y", "it's", "\"", ","]).expect("json"));
        let given = vec![hosts, tags, "note=a b,c".to_string()];
        let before = instances(&place, &given);
        let words = params_words(&place, &given);
        assert_eq!(words.len(), 3, "one word per parameter: {words:?}");
        let after = instances(&place, &words);
        assert_eq!(before, after, "{elements:?}: the printed params {words:?} give other instances");
        let again = params_words(&place, &words);
        assert_eq!(words, again, "{elements:?}: the printed line is a fixed point");
    }
    assert!(!place.path().join("PWNED").exists());
}
