//! Red team adv15c, F1/F2/F3 and M2 (promise 2: a reviewer reads exactly what runs): every
//! non-ASCII character of what is executed is marked alike in the text, markdown and HTML
//! plans, and no two nodes of the HTML graph are drawn alike.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::support::run_in;

/// The labels drawn in the graph's nodes, in order.
fn drawn_labels(html: &str) -> Vec<String> {
    let graph = html.split("<section class=\"graph\">").nth(1).expect("a graph");
    let mut out = Vec::new();
    for node in graph.split("<g class=\"node").skip(1) {
        if !node.contains("<title>") {
            continue; // the legend
        }
        let text = node.split("\">").find(|p| p.ends_with("</text></g>\n") || p.contains("</text></g>"));
        let text = text.expect("a label");
        out.push(text.split("</text>").next().expect("label").to_string());
    }
    out
}

/// M2: long step names that share a prefix, a suffix, or both (differing only in the middle)
/// are drawn as distinct labels, one per step.
#[test]
fn every_step_of_the_graph_is_drawn_with_its_own_label() {
    let prefix = "drop_the_production_database_replica_number_";
    let mut names: Vec<String> = Vec::new();
    for tail in ["one_keep", "one_drop", "two_keep", "one_keep_again", "x"] {
        names.push(format!("{prefix}{tail}"));
    }
    for head in ["a", "b", "ab", "restore"] {
        names.push(format!("{head}_from_the_nightly_snapshot_of_the_primary_cluster_in_eu_west"));
    }
    for middle in ["one", "two", "six", "ten"] {
        names.push(format!("rotate_the_credentials_of_{middle}_service_accounts_and_restart_them_all"));
    }
    names.push("short".into());
    let mut toml = String::from("[runbook]\nname = \"g\"\n\n");
    let mut prev: Option<&str> = None;
    for n in &names {
        let _ = write!(toml, "[steps.{n}]\nrun = \"true\"\n");
        if let Some(p) = prev {
            let _ = writeln!(toml, "needs = [\"{p}\"]");
        }
        toml.push('\n');
        prev = Some(n);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("g.toml"), toml).expect("write");
    let out = run_in(dir.path(), &["plan", "g.toml", "--format", "html"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let labels = drawn_labels(&out.stdout);
    assert_eq!(labels.len(), names.len(), "{labels:?}");
    let distinct: BTreeSet<&String> = labels.iter().collect();
    assert_eq!(distinct.len(), labels.len(), "two steps drawn alike: {labels:?}");
    for l in &labels {
        assert!(l.chars().count() <= 32, "{l:?}");
    }
    // A cut label keeps the head and the distinguishing tail of its name.
    assert!(labels.iter().any(|l| l.starts_with("drop_the_") && l.contains("one_drop")), "{labels:?}");
}
