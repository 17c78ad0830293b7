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

fn toml_escape(c: char) -> String {
    if (c as u32) < 0x10000 { format!("\\u{:04X}", c as u32) } else { format!("\\U{:08X}", c as u32) }
}

/// How a document shows a marked character.
fn escaped(c: char) -> String {
    match c {
        '\r' => "\\r".into(),
        other => format!("\\u{{{:x}}}", other as u32),
    }
}

/// Every class of non-ASCII character a command may hold, generated from Unicode's own
/// tables (the `regex` crate's): symbols, punctuation, marks (the Inherited ones too),
/// separators, format characters, Latin Extended, IPA, small capitals, Cyrillic, Greek,
/// fullwidth forms, mathematical letters. Each class is sampled evenly (its first and last
/// code points always in), so the binary renders a few thousand characters, not a million;
/// `shown::tests::every_non_ascii_character_of_a_command_is_marked` walks them all.
fn corpus() -> Vec<char> {
    let classes = [
        r"\p{S}",
        r"\p{P}",
        r"\p{M}",
        r"\p{Inherited}",
        r"\p{Z}",
        r"\p{Cf}",
        r"\p{Co}",
        r"[\p{Latin}--\p{ASCII}]",
        r"[\x{0250}-\x{02AF}\x{1D00}-\x{1DBF}]",
        r"\p{Cyrillic}",
        r"\p{Greek}",
        r"[\x{FF01}-\x{FFEE}]",
        r"[\x{1D400}-\x{1D7FF}]",
        r"\p{Nd}",
        r"\p{L}",
    ];
    let mut out: BTreeSet<char> = BTreeSet::new();
    // The findings' own characters.
    out.extend("ɡıᴀǀ♯﹟\u{37E}\u{1D159}\u{338}\u{20DD}хѕһ\u{A0}\u{200B}áñ¿".chars());
    for class in classes {
        let re = regex::Regex::new(&format!("^[{class}]$")).expect("pattern");
        let all: Vec<char> = (0x80..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| re.is_match(c.encode_utf8(&mut [0u8; 4])))
            .collect();
        assert!(!all.is_empty(), "{class}");
        let step = (all.len() / 120).max(1);
        out.extend(all.iter().step_by(step));
        out.extend(all.last());
    }
    out.into_iter().filter(|c| !c.is_ascii()).collect()
}

/// F1/F2/F3: every non-ASCII character of a command (look-alike letters of the Latin script
/// itself, look-alikes of shell syntax, symbols drawn blank, combining marks, a line with no
/// Latin letter) is shown as its escape, with its code point named, in the text, markdown
/// and HTML plans alike: the sets of marked characters are equal, and equal to the corpus.
#[test]
fn every_non_ascii_character_of_a_command_is_marked_alike_in_every_document() {
    let chars = corpus();
    assert!(chars.len() > 1500, "{}", chars.len());
    let mut toml = String::from("[runbook]\nname = \"marks\"\ntitle = \"¿Listo? Migración: ñandú\"\n\n");
    for (n, chunk) in chars.chunks(6).enumerate() {
        let lines: Vec<String> = chunk.iter().map(|c| format!("echo a{}b", toml_escape(*c))).collect();
        let _ = write!(toml, "[steps.s{n}]\nrun = \"{}\"\nidempotent = true\n\n", lines.join("\\n"));
    }
    // A line of look-alikes and ASCII punctuation only (F3).
    toml.push_str("[steps.nolatin]\nrun = \"./\\u0445.\\u0455\\u04BB\"\n");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("m.toml"), toml).expect("write");
    let mut sets = Vec::new();
    for format in ["text", "markdown", "html"] {
        let out = run_in(dir.path(), &["plan", "m.toml", "--format", format]);
        assert_eq!(out.code, 0, "{format}: {}", out.stderr);
        let doc = out.stdout;
        let marked: BTreeSet<char> =
            chars.iter().copied().filter(|c| doc.contains(&format!("a{}b", escaped(*c)))).collect();
        let raw: Vec<String> = chars
            .iter()
            .filter(|c| doc.contains(&format!("a{c}b")))
            .map(|c| format!("U+{:04X}", *c as u32))
            .collect();
        assert!(raw.is_empty(), "{format} shows raw: {raw:?}");
        let missing: Vec<String> =
            chars.iter().filter(|c| !marked.contains(c)).map(|c| format!("U+{:04X}", *c as u32)).collect();
        assert!(missing.is_empty(), "{format} does not mark {} characters: {missing:?}", missing.len());
        // Named by code point in a note, for the findings' characters.
        for c in ['\u{261}', '\u{266F}', '\u{1D159}', '\u{338}', '\u{445}'] {
            assert!(
                doc.contains(&format!("U+{:04X}", c as u32)),
                "{format} does not name U+{:04X}",
                c as u32
            );
        }
        assert!(doc.contains("./\\u{445}.\\u{455}\\u{4bb}"), "{format}: the Cyrillic path is not marked");
        // A title is prose: the letters of its language stay.
        assert!(doc.contains("Migración") && doc.contains("ñandú"), "{format}: the title was marked");
        sets.push((format, marked));
    }
    assert_eq!(sets[0].1, sets[1].1, "text and markdown mark differently");
    assert_eq!(sets[0].1, sets[2].1, "text and html mark differently");
}

/// Every field that is executed or sent (a precondition, a compensation, an env value, a
/// directory, `when`, an HTTP URL, header and body, an SQL query, an argv element) marks a
/// Latin look-alike in every document; prose (titles, descriptions, messages) keeps its
/// letters, and the three documents agree on both.
#[test]
fn every_executed_field_marks_a_look_alike_and_prose_keeps_its_letters() {
    let g = "\\u0261"; // ɡ, LATIN SMALL LETTER SCRIPT G
    let toml = format!(
        r#"[runbook]
name = "fields"
title = "Migración de ñandú"
description = "Año nuevo"

[params.go]
type = "boolean"
default = true

[preconditions.pre]
run = "test -d /srv/pre{g}"
message = "falta el señor"

[steps.a]
title = "Paso único"
run = "echo run{g}"
env = {{ E = "env{g}" }}
dir = "/tmp"
when = "params.go or 'when{g}' == 'x'"
idempotent = true
compensate = {{ run = "echo undo{g}" }}

[steps.b]
needs = ["a"]
http = {{ url = "https://url{g}.invalid/x", method = "POST", headers = {{ X-H = "hdr{g}" }}, body = "body{g}" }}

[steps.c]
needs = ["b"]
cmd = ["echo", "argv{g}"]

[steps.d]
needs = ["c"]
sql = {{ url = "sqlite:///tmp/x.db", query = "SELECT 'sql{g}'" }}
"#
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f.toml"), toml).expect("write");
    for format in ["text", "markdown", "html"] {
        let out = run_in(dir.path(), &["plan", "f.toml", "--format", format]);
        assert_eq!(out.code, 0, "{format}: {}", out.stderr);
        let doc = out.stdout;
        for field in ["pre", "run", "env", "when", "undo", "url", "hdr", "body", "argv", "sql"] {
            assert!(doc.contains(&format!("{field}\\u{{261}}")), "{format}: {field} is not marked in\n{doc}");
            assert!(!doc.contains(&format!("{field}\u{261}")), "{format}: {field} is shown raw");
        }
        for prose in ["Migración de ñandú", "falta el señor", "Paso único"] {
            assert!(doc.contains(prose), "{format}: {prose:?} was marked in\n{doc}");
        }
    }
}
