//! The book and the README: every complete TOML example is a valid runbook, fragments are valid TOML, and
//! every diagnostic code and exit code has its documentation.

use runbook_core::validate::{self, NoIncludes};
use runbook_core::{Code, Source};

use crate::support::{files, relative, root};

/// Fenced blocks of a markdown file: (info string, first line number, body).
pub fn blocks(text: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => out.push(block),
                None => current = Some((rest.trim().to_string(), n + 2, String::new())),
            }
        } else if let Some((_, _, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn toml_examples_in_the_book_are_valid() {
    let mut complete = 0;
    let mut pages = files(&root().join("book/src"), ".md");
    pages.push(root().join("README.md"));
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("page");
        for (info, line, body) in blocks(&text) {
            let place = format!("{}:{line}", relative(&page));
            match info.as_str() {
                "toml" => {
                    let checked = validate::check(Source::new(place.clone(), body), &NoIncludes);
                    let problems: Vec<String> = checked.diagnostics.iter().map(ToString::to_string).collect();
                    assert!(
                        problems.is_empty(),
                        "{place}: a ```toml block must be a valid runbook:\n{problems:#?}"
                    );
                    complete += 1;
                }
                // A schedules file (issue 17): every schedule valid (its runbook is not read).
                "toml,schedules" => {
                    let checked = runbook_core::schedule::check(
                        &Source::new(place.clone(), body),
                        runbook_core::schedule::CheckOptions::default(),
                    );
                    let problems: Vec<String> = checked.diagnostics.iter().map(ToString::to_string).collect();
                    assert!(
                        problems.is_empty() && !checked.schedules.is_empty(),
                        "{place}: a ```toml,schedules block must be a valid schedules file:\n{problems:#?}"
                    );
                }
                "toml,fragment" => {
                    if let Err(e) = toml::from_str::<toml::Table>(&body) {
                        panic!("{place}: a ```toml,fragment block must be valid TOML: {e}");
                    }
                }
                _ => {}
            }
        }
    }
    assert!(complete >= 5, "only {complete} complete runbooks in the book");
}

#[test]
fn every_diagnostic_code_has_a_section() {
    let text =
        std::fs::read_to_string(root().join("book/src/reference/diagnostics.md")).expect("diagnostics page");
    for code in Code::ALL {
        let heading = format!("## {}: {}", code.as_str(), code.slug());
        assert!(text.contains(&heading), "book/src/reference/diagnostics.md lacks `{heading}`");
    }
}

#[test]
fn exit_codes_are_documented() {
    let text =
        std::fs::read_to_string(root().join("book/src/reference/exit-codes.md")).expect("exit codes page");
    for code in ["0", "1", "2", "3", "4", "5", "130"] {
        assert!(
            text.contains(&format!("| {code} ")) || text.contains(&format!("| `{code}`")),
            "exit code {code} is not in the table"
        );
    }
}
