//! A review document says an included runbook is undone when the engine undoes it: a
//! `runbook` step has no `compensate` of its own, but the engine undoes it by undoing its
//! included runbook (`Runbook::undoes`), so every sentence, column and colour of the review
//! that says whether a step is undone asks `render::review::undoable` (found after i18-fei:
//! the risk section called such an include a change "that nothing undoes" while its wave
//! table undid it). At depth 1 and 2, in markdown, HTML and the diff's risk lines.

use crate::support::{Scratch, ok, run_in};

const CHILD: &str = r#"[runbook]
name = "child"
[steps.pre]
run = "echo pre"
compensate = { run = "echo undo-pre" }
"#;

const MIDDLE: &str = r#"[runbook]
name = "middle"
[steps.inner]
runbook = { file = "child.toml" }
"#;

fn top(file: &str) -> String {
    format!(
        r#"[runbook]
name = "top"
[steps.inc]
runbook = {{ file = "{file}" }}
[steps.deploy]
needs = ["inc"]
run = "echo deploy"
on-failure = "compensate"
"#
    )
}

fn place(file: &str) -> Scratch {
    let place = Scratch::new(&top(file));
    std::fs::write(place.path().join("child.toml"), CHILD).expect("child");
    std::fs::write(place.path().join("middle.toml"), MIDDLE).expect("middle");
    place
}

#[test]
fn an_include_whose_runbook_can_be_undone_is_shown_as_undone_at_any_depth() {
    for file in ["child.toml", "middle.toml"] {
        let place = place(file);
        let md = run_in(place.path(), &["plan", "r.toml", "--format", "markdown"]);
        ok(&md, 0);
        let text = &md.stdout;
        assert!(!text.contains("**Changes that nothing undoes:** `inc`"), "{file}: {text}");
        assert!(!text.contains("nothing in this runbook can be undone"), "{file}: {text}");
        assert!(
            text.contains("| 1 | `inc` | runbook |  | none | no retry | no | yes (its runbook's) |"),
            "{file}: {text}"
        );
        assert!(!text.contains("class s1,s2 irreversible"), "{file}: {text}");
        assert!(text.contains("class s1 compensable"), "{file}: {text}");
        let html = run_in(place.path(), &["plan", "r.toml", "--format", "html"]);
        ok(&html, 0);
        assert!(
            html.stdout.contains("yes (its runbook&#39;s)") || html.stdout.contains("yes (its runbook's)"),
            "{file}: {}",
            html.stdout
        );
    }
}

#[test]
fn an_include_that_can_no_longer_be_undone_is_a_risk_the_diff_names() {
    let place = place("child.toml");
    ok(&run_in(place.path(), &["plan", "r.toml", "-o", "old.json"]), 0);
    std::fs::write(
        place.path().join("child.toml"),
        "[runbook]\nname = \"child\"\n[steps.pre]\nrun = \"echo pre\"\n",
    )
    .expect("child without undo");
    ok(&run_in(place.path(), &["plan", "r.toml", "-o", "new.json"]), 0);
    let diff = run_in(place.path(), &["plan", "--diff", "old.json", "new.json"]);
    ok(&diff, 1);
    assert!(diff.stdout.contains("`inc` lost its compensation"), "{}", diff.stdout);
}
