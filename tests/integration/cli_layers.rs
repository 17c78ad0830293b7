//! The modules of the CLI (engine/cli/*.rs) use each other without circles: each may use
//! only modules below it, so a module can be read (and changed) knowing only what is under
//! it. Shared helpers live in leaf modules (`error`, `exit`, `identity`, `runtime`,
//! `input`, `loader`, `output`, `report`, `args`); `commands` is at the top.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::root;

/// The modules `text` names through `crate::` (in `use` lines, groups and paths).
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut uses = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `$crate::` in a macro is the same crate.
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        uses.extend(first_name(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            uses.extend(first_name(&item));
        } else {
            uses.extend(first_name(rest));
        }
    }
    uses
}

fn first_name(path: &str) -> Option<String> {
    let name: String =
        path.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// A circle in `graph`, as `a -> b -> a`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle.join(" -> "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cli_modules_use_each_other_without_circles() {
    let dir = root().join("engine/cli");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("engine/cli is readable").flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let Some(module) = path.file_stem().map(|m| m.to_string_lossy().into_owned()) else { continue };
        let text = std::fs::read_to_string(&path).expect("a module is readable");
        let mut uses = crate_uses(&text);
        uses.remove(&module);
        graph.insert(module, uses);
    }
    assert!(graph.len() > 10, "the CLI's modules are found: {graph:?}");
    // Only modules of the CLI count (`crate::` names nothing else in a binary).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|u| modules.contains(u));
    }
    if let Some(c) = circle(&graph) {
        panic!("the CLI's modules use each other in a circle: {c}\n(move what both need to a leaf module)");
    }
}

#[test]
fn a_circle_is_found_and_named() {
    let mut graph = BTreeMap::new();
    graph.insert("run".to_string(), crate_uses("use crate::{commands::load, output::{out, outln}};"));
    graph.insert("commands".to_string(), crate_uses("let x = crate::run::go();"));
    graph.insert("output".to_string(), crate_uses("$crate::output::write"));
    graph.entry("output".to_string()).or_default().remove("output");
    assert_eq!(graph["run"], ["commands", "output"].map(String::from).into_iter().collect());
    assert_eq!(circle(&graph).as_deref(), Some("commands -> run -> commands"));
    graph.insert("commands".to_string(), BTreeSet::new());
    assert_eq!(circle(&graph), None);
}

/// A command returns its failure as a `CliError`, which `main` prints: no module prints an
/// `error:` line itself, except where there is no command to return to (`output.rs`: standard
/// output is gone; the worker's loop, which logs an engine it could not start and goes on)
/// and the renderers (`error.rs`, and `report.rs`'s summary of diagnostics).
#[test]
fn errors_are_printed_in_one_place() {
    let allowed = ["error.rs", "report.rs", "output.rs", "queue.rs"];
    let dir = root().join("engine/cli");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("engine/cli is readable").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || allowed.contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("a module is readable");
        for (n, line) in text.lines().enumerate() {
            if line.contains("\"error: ") {
                found.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "return a CliError instead of printing it:\n{}", found.join("\n"));
}
