//! Tidy: layering rules read from the source tree (rust-analyzer's `tidy` test does the same).
//!
//! Each rule is one function over a root folder, so the same check runs on this repository
//! (the `*_in_this_repository` tests) and on a tiny fake tree that breaks it (the
//! `*_is_reported` tests: each check is shown to fail when it should). Source is read as text,
//! line by line: comments are skipped, and so is everything after a file's first
//! `#[cfg(test)]` (unit tests may spawn, print or speak SQL). Integration tests (`tests/`
//! folders), examples and benches are not engine code and are not read.
//!
//! The rules (ARCHITECTURE.md, "Invariants and the checks that enforce them"):
//! - only the store (`engine/store/src`) and the sql step (`engine/exec/src/sql*`) use `sqlx`;
//! - only `engine/exec/src/process.rs` creates processes (`Command::new`);
//! - only the CLI (`engine/cli`) prints (`print!`, `println!`, `eprint!`, `eprintln!`);
//! - the core (`runbook-core`) names no `tokio`, `sqlx` or `reqwest`, in its code or its
//!   `Cargo.toml`;
//! - the validated model (`engine/core/src/model.rs`) derives no `Deserialize`: only the raw
//!   shapes are read from text, so a model value has passed every check;
//! - the web console's templates (`engine/web/templates`) turn no escaping off (`|safe`,
//!   `autoescape false`), and its code makes no value safe by hand (`from_safe_string`,
//!   `AutoEscape::None`): text from a runbook or a journal reaches HTML only through
//!   minijinja's autoescape;
//! - the modules of `engine/cli`, and those of `engine/exec`, name each other in no circle
//!   (a module is a top-level file or folder of the crate's source; it names another in a
//!   `use crate::...` line or in a path `crate::other::...` written in its code).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One line that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    file: String,
    line: usize,
    text: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.text.trim())
    }
}

/// The `.rs` files under `root/dir`, as paths relative to `root` with `/` separators, sorted.
fn rust_files(root: &Path, dir: &str) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(at) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(rel) = path.strip_prefix(root)
            {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &root.join(dir), &mut out);
    out.sort();
    out
}

/// Engine code: not a `tests/`, `examples/` or `benches/` folder of a crate.
fn is_engine_code(rel: &str) -> bool {
    !rel.split('/').any(|part| matches!(part, "tests" | "examples" | "benches"))
}

/// The code lines of a file (number, text): no comment lines, nothing after the first
/// `#[cfg(test)]`.
fn code_lines(root: &Path, rel: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(root.join(rel)).unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// Lines of engine code under `dirs` that contain one of `needles`, in files `allowed` says no to.
fn find(root: &Path, dirs: &[&str], needles: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for dir in dirs {
        for rel in rust_files(root, dir).into_iter().filter(|f| is_engine_code(f) && !allowed(f)) {
            for (line, text) in code_lines(root, &rel) {
                if needles.iter().any(|n| contains_word(&text, n)) {
                    out.push(Finding { file: rel.clone(), line, text });
                }
            }
        }
    }
    out
}

/// `needle` in `text`, not as the tail of a longer identifier (`sqlx` is not in `my_sqlx`).
fn contains_word(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// `sqlx` outside the store and the sql step.
fn sqlx_outside_the_store(root: &Path) -> Vec<Finding> {
    find(root, &["engine"], &["sqlx"], |f| {
        f.starts_with("engine/store/src/")
            || f == "engine/exec/src/sql.rs"
            || f.starts_with("engine/exec/src/sql/")
    })
}

/// A file opened by the store outside `engine/store/src/files.rs`: closing a descriptor of a
/// SQLite store's file drops the process's SQLite locks on it (red team adv19a-9), so the
/// store opens files in one module, which keeps the store's descriptors open.
fn store_opens_files_outside_files_rs(root: &Path) -> Vec<Finding> {
    find(
        root,
        &["engine/store"],
        &["File::open", "File::create", "OpenOptions", "fs::read", "fs::write"],
        |f| f == "engine/store/src/files.rs",
    )
}

/// A file opened by the engine, the CLI or the console past the store's guard
/// (`runbook_store::open_outside_store` and its `read`/`write` siblings): red team adv20-1.
/// A process that holds a SQLite store must never close a descriptor of the store's files
/// (it drops the process's SQLite locks), so every file it opens for a runbook, a step, a
/// plan or an operator goes through the guard, which refuses the store's files by any path.
/// Lines that read the kernel's own files (`/proc/...`) are not such files.
fn files_opened_past_the_store_guard(root: &Path) -> Vec<Finding> {
    let needles = [
        "File::open",
        "File::create",
        "fs::read(",
        "fs::read_to_string(",
        "fs::write(",
        "tokio::fs::",
        ".open(",
    ];
    let mut out = Vec::new();
    for dir in ["engine/cli", "engine/exec/src", "engine/web/src"] {
        for rel in rust_files(root, dir).into_iter().filter(|f| is_engine_code(f)) {
            for (line, text) in code_lines(root, &rel) {
                if needles.iter().any(|n| contains_word(&text, n)) && !text.contains("\"/proc/") {
                    out.push(Finding { file: rel.clone(), line, text });
                }
            }
        }
    }
    out
}

/// A process created outside `engine/exec/src/process.rs`.
fn spawns_outside_process_rs(root: &Path) -> Vec<Finding> {
    find(root, &["engine"], &["Command::new"], |f| f == "engine/exec/src/process.rs")
}

/// Printing outside the CLI.
fn prints_outside_the_cli(root: &Path) -> Vec<Finding> {
    find(root, &["engine"], &["print!", "println!", "eprint!", "eprintln!"], |f| f.starts_with("engine/cli/"))
}

/// `Debug` formatting (`{:?}`, `{e:?}`, `{:#?}`) in the code of the engine that builds what
/// a person reads (engine/exec, engine/cli): a library's `Debug` text (`UnknownIssuer`,
/// `Kind(ConnectionRefused)`) is no message. Errors are said with `Display`, walking
/// `source()` (`http::error_words`, `http::error_chain`). `ALLOWED` lists the lines that
/// format a value of this project whose `Debug` is its word, each with why.
fn debug_in_messages(root: &Path) -> Vec<Finding> {
    /// (file, a piece of the line): a state the `show` line lower-cases (`Pending`, `Done`).
    const ALLOWED: &[(&str, &str)] = &[("engine/cli/history.rs", "compensation {:?}")];
    let mut out = Vec::new();
    for dir in ["engine/exec/src", "engine/cli", "engine/web/src"] {
        for rel in rust_files(root, dir).into_iter().filter(|f| is_engine_code(f)) {
            for (line, text) in code_lines(root, &rel) {
                let debug = text.contains(":?}") || text.contains(":#?}");
                let allowed = ALLOWED.iter().any(|(f, piece)| *f == rel && text.contains(piece));
                if debug && !allowed {
                    out.push(Finding { file: rel.clone(), line, text });
                }
            }
        }
    }
    out
}

/// An async runtime, a database or an HTTP client in the core, in its code or its manifest.
fn io_in_the_core(root: &Path) -> Vec<Finding> {
    let names = ["tokio", "sqlx", "reqwest"];
    let mut out = find(root, &["engine/core"], &names, |_| false);
    let manifest = "engine/core/Cargo.toml";
    let text = std::fs::read_to_string(root.join(manifest)).unwrap_or_default();
    let mut section = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_string();
            continue;
        }
        let key = trimmed.split(['=', '.', ' ']).next().unwrap_or_default();
        if section.contains("dependencies]") && !section.contains("dev-") && names.contains(&key) {
            out.push(Finding { file: manifest.into(), line: i + 1, text: line.to_string() });
        }
    }
    out
}

/// Escaping turned off in the web console: in a template (`|safe`, `| safe`, an
/// `autoescape` block), or by hand in its code (`from_safe_string`, `AutoEscape::None`).
fn unescaped_html(root: &Path) -> Vec<Finding> {
    let templates = files_under(root, "engine/web/templates");
    let mut out = Vec::new();
    for rel in templates {
        let text = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if squeezed.contains("|safe")
                || squeezed.contains("{%autoescape")
                || squeezed.contains("escape(false")
            {
                out.push(Finding { file: rel.clone(), line: i + 1, text: line.to_string() });
            }
        }
    }
    out.extend(
        find(root, &["engine/web"], &["from_safe_string", "AutoEscape::None", "Value::from_safe"], |_| false)
            .into_iter()
            .filter(|f| !(f.file == "engine/web/src/pages.rs" && f.text.trim() == REVIEW_MARKUP)),
    );
    out
}

/// Every file under `dir` (relative to `root`, with `/`), sorted.
fn files_under(root: &Path, dir: &str) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(at) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &root.join(dir), &mut out);
    out.sort();
    out
}

/// The console's one value not escaped again: the review document, typed `ReviewHtml`, which
/// only the core's review writer (its `markup` module, checked above) can make.
const REVIEW_MARKUP: &str = "minijinja::Value::from_safe_string(review.into_string())";

/// `Deserialize` in the validated model.
fn deserialize_in_the_model(root: &Path) -> Vec<Finding> {
    find(root, &["engine/core/src"], &["Deserialize"], |f| f != "engine/core/src/model.rs")
}

/// The top-level module of a file of a crate whose source is `src`: `src/a.rs` and
/// `src/a/b.rs` are `a`; the crate root (`lib.rs`, `main.rs`) is none.
fn module_of(src: &str, rel: &str) -> Option<String> {
    let inner = rel.strip_prefix(src)?.strip_prefix('/')?;
    let first = inner.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "mod")).then(|| name.to_string())
}

/// The modules named by the `use crate::...` declarations of `lines` (grouped
/// `use crate::{a, b::c};` included, over several lines too).
fn used_modules(lines: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (number, line) = &lines[i];
        let trimmed = line.trim_start();
        let decl = trimmed.strip_prefix("pub ").or(trimmed.strip_prefix("pub(crate) ")).unwrap_or(trimmed);
        let Some(rest) = decl.strip_prefix("use crate::") else {
            i += 1;
            continue;
        };
        // The whole declaration, up to its `;`.
        let mut text = rest.to_string();
        while !text.contains(';') && i + 1 < lines.len() {
            i += 1;
            text.push_str(&lines[i].1);
        }
        i += 1;
        let text = text.split(';').next().unwrap_or_default().trim();
        // The first word of the first segment: `a` of `a::X`, of `a as b`.
        let head = |entry: &str| {
            entry
                .split("::")
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let heads: Vec<String> = match text.strip_prefix('{') {
            // `{a::X, b, c::{d, e}}`: the first segment of each top-level entry.
            Some(group) => {
                let mut heads = Vec::new();
                let (mut depth, mut start) = (0usize, 0usize);
                let group = group.trim_end().strip_suffix('}').unwrap_or(group);
                for (at, c) in group.char_indices().chain([(group.len(), ',')]) {
                    match c {
                        '{' => depth += 1,
                        '}' => depth = depth.saturating_sub(1),
                        ',' if depth == 0 => {
                            heads.push(head(&group[start..at]));
                            start = at + 1;
                        }
                        _ => {}
                    }
                }
                heads
            }
            None => vec![head(text)],
        };
        for head in heads {
            if !head.is_empty() && head != "self" && head != "*" {
                out.push((*number, head));
            }
        }
    }
    out
}

/// The modules named by paths `crate::module::...` written in code (not in a `use` line).
fn named_modules(lines: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (number, line) in lines {
        if line.trim_start().starts_with("use ") || line.trim_start().starts_with("pub use ") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let rest = &line[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // A module is followed by `::`; `crate::Item` names the crate root.
            if !name.is_empty() && rest[name.len()..].starts_with("::") {
                out.push((*number, name));
            }
        }
    }
    out
}

/// Circles between the top-level modules of the crate whose source folder is `src`, each
/// reported once as `a -> b -> a` with the `use` lines that make it.
fn module_circles(root: &Path, src: &str) -> Vec<String> {
    // edges[a][b]: where module `a` uses module `b`.
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for rel in rust_files(root, src).into_iter().filter(|f| is_engine_code(f)) {
        let Some(from) = module_of(src, &rel) else { continue };
        edges.entry(from.clone()).or_default();
        let lines = code_lines(root, &rel);
        for (line, to) in used_modules(&lines).into_iter().chain(named_modules(&lines)) {
            if to != from {
                edges.entry(from.clone()).or_default().entry(to).or_insert_with(|| format!("{rel}:{line}"));
            }
        }
    }
    // A circle through `start`: the shortest way back to it (breadth first); each set of
    // modules on a circle is reported once.
    let mut seen: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    let mut out = Vec::new();
    for start in edges.keys() {
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut found = None;
        'search: while let Some(n) = queue.pop_front() {
            for m in edges.get(&n).map(|e| e.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                if &m == start {
                    found = Some(n.clone());
                    break 'search;
                }
                if !prev.contains_key(&m) && m != *start {
                    prev.insert(m.clone(), n.clone());
                    queue.push_back(m);
                }
            }
        }
        let Some(last) = found else { continue };
        let mut path = vec![last.clone()];
        let mut cur = last;
        while &cur != start {
            cur = prev[&cur].clone();
            path.push(cur.clone());
        }
        path.reverse();
        if !seen.insert(path.iter().cloned().collect()) {
            continue;
        }
        path.push(start.clone());
        let mut text = format!("{src}: {}", path.join(" -> "));
        for pair in path.windows(2) {
            let _ = write!(text, "\n    {} uses {} at {}", pair[0], pair[1], edges[&pair[0]][&pair[1]]);
        }
        out.push(text);
    }
    out
}

/// The review page's renderer: after its `markup` module (`use markup::Html;`), nothing may
/// reach the page's buffer or turn text into a `&'static str` that `Html::tag` would take as
/// markup (ARCHITECTURE.md, "The review page and the review model").
fn html_written_outside_markup(root: &Path) -> Vec<Finding> {
    let rel = "engine/core/src/render/html.rs";
    let lines = code_lines(root, rel);
    let Some(start) = lines.iter().position(|(_, t)| t.trim() == "use markup::Html;") else {
        return vec![Finding { file: rel.into(), line: 0, text: "no `use markup::Html;`".into() }];
    };
    lines[start..]
        .iter()
        .filter(|(_, t)| {
            ["buf", "leak", "unsafe ", "from_utf8_unchecked"].iter().any(|n| contains_word(t, n))
        })
        .map(|(line, text)| Finding { file: rel.into(), line: *line, text: text.clone() })
        .collect()
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fail with every finding, and what the rule is.
fn assert_none(rule: &str, findings: &[impl std::fmt::Display]) {
    if !findings.is_empty() {
        let list: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
        panic!("tidy: {rule}; found:\n{}\n", list.join("\n"));
    }
}

#[test]
fn sqlx_only_in_the_store_and_the_sql_step_in_this_repository() {
    assert_none(
        "only engine/store/src and the sql step (engine/exec/src/sql.rs) may use `sqlx`",
        &sqlx_outside_the_store(&repository()),
    );
}

#[test]
fn the_store_opens_files_only_in_files_rs_in_this_repository() {
    assert_none(
        "only engine/store/src/files.rs may open a file in the store (a descriptor of the store's file closed elsewhere drops the process's SQLite locks)",
        &store_opens_files_outside_files_rs(&repository()),
    );
}

#[test]
fn files_are_opened_only_through_the_store_guard_in_this_repository() {
    assert_none(
        "engine/cli, engine/exec and engine/web open files only through `runbook_store::open_outside_store` (or read/write_outside_store): a descriptor of the store's file closed elsewhere drops the process's SQLite locks (adv20-1)",
        &files_opened_past_the_store_guard(&repository()),
    );
}

#[test]
fn a_file_opened_past_the_store_guard_is_reported() {
    let t = tree(&[
        (
            "engine/cli/a.rs",
            "fn f() {\n    let x = runbook_store::read_outside_store(p);\n    let y = std::fs::read(p);\n}\n",
        ),
        (
            "engine/exec/src/b.rs",
            "fn g() {\n    let f = std::fs::OpenOptions::new()\n        .read(true)\n        .open(p);\n    let s = std::fs::read_to_string(\"/proc/self/stat\");\n}\n",
        ),
        ("engine/web/src/c.rs", "fn h() { tokio::fs::read(p); std::fs::File::open(p); }\n"),
    ]);
    let found = files_opened_past_the_store_guard(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [("engine/cli/a.rs", 3), ("engine/exec/src/b.rs", 4), ("engine/web/src/c.rs", 1)]
    );
}

#[test]
fn only_process_rs_spawns_in_this_repository() {
    assert_none(
        "only engine/exec/src/process.rs may create a process (`Command::new`); add a function there",
        &spawns_outside_process_rs(&repository()),
    );
}

#[test]
fn only_the_cli_prints_in_this_repository() {
    assert_none(
        "only engine/cli may print; a library returns values or reports over a channel",
        &prints_outside_the_cli(&repository()),
    );
}

#[test]
fn no_debug_text_in_messages_in_this_repository() {
    assert_none(
        "engine/exec and engine/cli say errors with Display through `source()`, never `{:?}`",
        &debug_in_messages(&repository()),
    );
}

#[test]
fn the_core_does_no_io_in_this_repository() {
    assert_none("runbook-core may not use tokio, sqlx or reqwest", &io_in_the_core(&repository()));
}

#[test]
fn the_model_is_not_deserialize_in_this_repository() {
    assert_none(
        "model types are not `Deserialize` (only raw.rs is read from text; validate builds the model)",
        &deserialize_in_the_model(&repository()),
    );
}

#[test]
fn no_module_circles_in_cli_and_exec_in_this_repository() {
    let root = repository();
    let mut circles = module_circles(&root, "engine/cli");
    circles.extend(module_circles(&root, "engine/exec/src"));
    assert_none(
        "the `use crate::...` lines of engine/cli and engine/exec form no circle between modules",
        &circles,
    );
}

#[test]
fn the_review_page_is_written_only_by_its_markup_module_in_this_repository() {
    assert_none(
        "engine/core/src/render/html.rs writes HTML only through its `markup` module (text escaped by `Html::text`)",
        &html_written_outside_markup(&repository()),
    );
}

// ----- each check fails when it should ------------------------------------------------------

/// A fake tree: `files` as (path, text) under a new temporary folder.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
        std::fs::write(path, text).expect("a file");
    }
    dir
}

#[test]
fn html_written_around_the_markup_module_is_reported() {
    let page = "mod markup {\n    pub struct Html { buf: String }\n}\nuse markup::Html;\nfn f(h: &mut Html) { h.text(\"x\"); }\n";
    let t = tree(&[("engine/core/src/render/html.rs", page)]);
    assert!(html_written_outside_markup(t.path()).is_empty());
    let leaked = format!("{page}fn g(h: &mut Html, s: String) {{ h.tag(s.leak()); }}\n");
    let t = tree(&[("engine/core/src/render/html.rs", &leaked)]);
    let found = html_written_outside_markup(t.path());
    assert_eq!(found.iter().map(|f| f.line).collect::<Vec<_>>(), [6], "{found:?}");
    let t = tree(&[("engine/core/src/render/html.rs", "fn f() {}\n")]);
    assert_eq!(html_written_outside_markup(t.path()).len(), 1);
}

#[test]
fn the_console_escapes_everything_in_this_repository() {
    assert_none(
        "text reaches the console's HTML only through minijinja's autoescape (no |safe, no autoescape block, no safe value made by hand)",
        &unescaped_html(&repository()),
    );
    // The rule reads real templates: the console has some.
    assert!(repository().join("engine/web/templates/run.html").exists());
}

#[test]
fn unescaped_html_is_reported() {
    let t = tree(&[
        ("engine/web/templates/a.html", "<p>{{ run.id }}</p>\n<p>{{ step.title|safe }}</p>\n"),
        ("engine/web/templates/b.html", "{% autoescape false %}{{ x }}{% endautoescape %}\n"),
        ("engine/web/templates/c.svg", "<text>{{ n | safe }}</text>\n"),
        ("engine/web/templates/d.html", "<p>{{ note }} is safe to read</p>\n"),
        (
            "engine/web/src/pages.rs",
            "fn f() { Value::from_safe_string(s) }\nfn review_markup(review: ReviewHtml) -> minijinja::Value {\n    minijinja::Value::from_safe_string(review.into_string())\n}\n",
        ),
        ("engine/web/src/lib.rs", "fn f() { env.set_auto_escape_callback(|_| AutoEscape::None); }\n"),
    ]);
    let found = unescaped_html(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [
            ("engine/web/templates/a.html", 2),
            ("engine/web/templates/b.html", 1),
            ("engine/web/templates/c.svg", 1),
            ("engine/web/src/lib.rs", 1),
            ("engine/web/src/pages.rs", 1),
        ]
    );
}

#[test]
fn sqlx_outside_the_store_is_reported() {
    let t = tree(&[
        ("engine/store/src/lib.rs", "use sqlx::Row;\n"),
        ("engine/exec/src/sql.rs", "use sqlx::AnyPool;\n"),
        (
            "engine/exec/src/dispatch.rs",
            "// sqlx in a comment is fine\nfn f() { let _ = sqlx::query(\"\"); }\n",
        ),
        ("engine/cli/state.rs", "fn my_sqlx() {}\n#[cfg(test)]\nmod tests { use sqlx::Row; }\n"),
        ("engine/store/tests/store.rs", "use sqlx::Row;\n"),
    ]);
    let found = sqlx_outside_the_store(t.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].file.as_str(), found[0].line), ("engine/exec/src/dispatch.rs", 2));
}

#[test]
fn a_spawn_outside_process_rs_is_reported() {
    let t = tree(&[
        ("engine/exec/src/process.rs", "fn f() { std::process::Command::new(\"x\"); }\n"),
        ("engine/cli/queue.rs", "fn f() { tokio::process::Command::new(\"runbook\"); }\n"),
        ("engine/exec/tests/t.rs", "fn f() { std::process::Command::new(\"x\"); }\n"),
    ]);
    let found = spawns_outside_process_rs(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [("engine/cli/queue.rs", 1)]
    );
}

#[test]
fn debug_text_in_messages_is_reported() {
    let t = tree(&[
        ("engine/exec/src/http.rs", "fn f(e: E) -> String {\n    format!(\"request failed: {e:?}\")\n}\n"),
        ("engine/cli/run.rs", "fn f(e: E) -> String { format!(\"{:#?}\", e) }\n"),
        (
            "engine/cli/history.rs",
            "fn f() { line.push_str(&format!(\"  compensation {:?}\", s.compensation)); }\n",
        ),
        (
            "engine/exec/src/sql.rs",
            "fn f() {}\n#[cfg(test)]\nmod tests { fn t() { assert!(x, \"{x:?}\"); } }\n",
        ),
        ("engine/store/src/lib.rs", "fn f(e: E) -> String { format!(\"{e:?}\") }\n"),
    ]);
    let found = debug_in_messages(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [("engine/exec/src/http.rs", 2), ("engine/cli/run.rs", 1)]
    );
}

#[test]
fn printing_outside_the_cli_is_reported() {
    let t = tree(&[
        ("engine/cli/run.rs", "fn f() { println!(\"ok\"); }\n"),
        ("engine/core/src/plan.rs", "fn f() {\n    eprintln!(\"debug\");\n}\n"),
        ("engine/store/src/lib.rs", "fn f() { print!(\"x\"); }\n"),
        ("engine/store/examples/bench.rs", "fn main() { println!(\"x\"); }\n"),
    ]);
    let found = prints_outside_the_cli(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [("engine/core/src/plan.rs", 2), ("engine/store/src/lib.rs", 1)]
    );
}

#[test]
fn io_in_the_core_is_reported() {
    let t = tree(&[
        ("engine/core/src/journal.rs", "use tokio::sync::mpsc;\n"),
        (
            "engine/core/Cargo.toml",
            "[package]\nname = \"runbook-core\"\n\n[dependencies]\nserde.workspace = true\nreqwest = \"0.13\"\n\n[dev-dependencies]\ntokio.workspace = true\n",
        ),
        ("engine/exec/src/lib.rs", "use tokio::sync::mpsc;\n"),
    ]);
    let found = io_in_the_core(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [("engine/core/src/journal.rs", 1), ("engine/core/Cargo.toml", 6)]
    );
}

#[test]
fn deserialize_in_the_model_is_reported() {
    let t = tree(&[
        ("engine/core/src/raw.rs", "#[derive(Deserialize)]\npub struct RawStep;\n"),
        (
            "engine/core/src/model.rs",
            "//! Not `Deserialize`.\n#[derive(Debug, serde::Deserialize)]\npub struct Step;\n",
        ),
    ]);
    let found = deserialize_in_the_model(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [("engine/core/src/model.rs", 2)]
    );
}

#[test]
fn a_module_circle_is_reported() {
    let t = tree(&[
        ("engine/cli/main.rs", "mod commands;\nmod run;\nmod queue;\nuse crate::commands::dispatch;\n"),
        ("engine/cli/commands.rs", "use crate::{args::Cli, run::{self, start}};\n"),
        ("engine/cli/run.rs", "use std::io;\nfn f() -> crate::queue::Claim { todo!() }\n"),
        ("engine/cli/queue.rs", "use crate::{\n    output,\n    commands::dispatch,\n};\n"),
        ("engine/cli/args.rs", "use crate::output::shown;\nfn f() -> crate::Root { $crate::run::x }\n"),
        ("engine/cli/output.rs", "#[cfg(test)]\nmod tests { use crate::args::Cli; }\n"),
        ("engine/exec/src/dispatch/mod.rs", "use crate::action::perform;\nuse super::phase::Phase;\n"),
        ("engine/exec/src/dispatch/phase.rs", "use crate::dispatch::Dispatcher;\n"),
        ("engine/exec/src/action.rs", "use crate::process::run;\n"),
    ]);
    let cli = module_circles(t.path(), "engine/cli");
    assert_eq!(cli.len(), 1, "{cli:?}");
    assert!(cli[0].starts_with("engine/cli: commands -> run -> queue -> commands"), "{}", cli[0]);
    assert!(cli[0].contains("run uses queue at engine/cli/run.rs:2"), "{}", cli[0]);
    // Uses inside one module (dispatch/ and its files) and a tree of uses are no circle.
    assert_eq!(module_circles(t.path(), "engine/exec/src"), Vec::<String>::new());
}

#[test]
fn grouped_and_multi_line_uses_are_read() {
    let lines: Vec<(usize, String)> = [
        "use crate::a::X;",
        "pub(crate) use crate::{b, c::{D, e::F}, d as dd};",
        "use crate::{",
        "    g::H,",
        "};",
        "use std::io;",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| (i + 1, l.to_string()))
    .collect();
    let names: Vec<String> = used_modules(&lines).into_iter().map(|(_, m)| m).collect();
    assert_eq!(names, ["a", "b", "c", "d", "g"].map(String::from));
    let code: Vec<(usize, String)> =
        [(1, "let x = crate::state::open(crate::Root, $crate::m::x, my_crate::n::y);".to_string())].into();
    let named: Vec<String> = named_modules(&code).into_iter().map(|(_, m)| m).collect();
    assert_eq!(named, ["state"]);
}

/// p16-live: the console's scripts put text from the journal into a page only as text
/// (`textContent`, `createElement`): no way of writing markup or code from a string
/// (`innerHTML`, `outerHTML`, `insertAdjacentHTML`, `document.write`, `eval`,
/// `new Function`, a string to `setTimeout`/`setInterval`), and the templates have no
/// inline script (the CSP's `script-src 'self'` would block it; the rule says it first).
fn markup_from_scripts(root: &Path) -> Vec<Finding> {
    let files = files_under(root, "engine/web");
    let mut out = Vec::new();
    for rel in files {
        let script = rel.ends_with(".js");
        let template = rel.starts_with("engine/web/templates/");
        if !script && !template {
            continue;
        }
        let text = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            let bad = if script {
                [
                    "innerHTML",
                    "outerHTML",
                    "insertAdjacentHTML",
                    "document.write",
                    "eval(",
                    "Function(",
                    "setTimeout(\"",
                    "setTimeout('",
                    "setInterval(\"",
                    "setInterval('",
                    "srcdoc",
                ]
                .iter()
                .any(|w| squeezed.contains(w))
            } else {
                let lower = squeezed.to_ascii_lowercase();
                (lower.contains("<script") && !lower.contains("<scriptsrc="))
                    || lower.contains("javascript:")
                    || line.to_ascii_lowercase().split_whitespace().any(|w| {
                        w.starts_with("on")
                            && w.contains('=')
                            && w[2..w.find('=').unwrap_or(2)].chars().all(|c| c.is_ascii_lowercase())
                            && w.find('=').unwrap_or(0) > 2
                    })
            };
            if bad {
                out.push(Finding { file: rel.clone(), line: i + 1, text: line.to_string() });
            }
        }
    }
    out
}

#[test]
fn the_console_scripts_write_text_never_markup() {
    assert_none(
        "the console's scripts put journal text into a page only as text (textContent), never as markup or code, and templates have no inline script",
        &markup_from_scripts(&repository()),
    );
    assert!(repository().join("engine/web/assets/live.js").exists());
}

#[test]
fn markup_from_scripts_is_reported() {
    let t = tree(&[
        (
            "engine/web/assets/a.js",
            "x.textContent = d.step;\nx.innerHTML = d.step;\ny.outerHTML=z;\nel.insertAdjacentHTML('beforeend', s);\ndocument.write(s);\neval (s);\nnew Function('return 1');\nsetTimeout(\"go()\", 5);\nsetTimeout(go, 5);\n",
        ),
        (
            "engine/web/templates/t.html",
            "<script src=\"/assets/live.js\" defer></script>\n<script>alert(1)</script>\n<a href=\"javascript:go()\">x</a>\n<button onclick=\"go()\">x</button>\n<p>one=1 only</p>\n",
        ),
    ]);
    let found = markup_from_scripts(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [
            ("engine/web/assets/a.js", 2),
            ("engine/web/assets/a.js", 3),
            ("engine/web/assets/a.js", 4),
            ("engine/web/assets/a.js", 5),
            ("engine/web/assets/a.js", 6),
            ("engine/web/assets/a.js", 7),
            ("engine/web/assets/a.js", 8),
            ("engine/web/templates/t.html", 2),
            ("engine/web/templates/t.html", 3),
            ("engine/web/templates/t.html", 4),
        ]
    );
}

#[test]
fn a_file_opened_in_the_store_outside_files_rs_is_reported() {
    let t = tree(&[
        ("engine/store/src/files.rs", "fn f() { std::fs::File::open(p); }\n"),
        (
            "engine/store/src/lib.rs",
            "fn g() {\n    let h = std::fs::File::open(path);\n}\nfn k() { std::fs::read(p); }\n",
        ),
    ]);
    let found = store_opens_files_outside_files_rs(t.path());
    assert_eq!(
        found.iter().map(|f| (f.file.as_str(), f.line)).collect::<Vec<_>>(),
        [("engine/store/src/lib.rs", 2), ("engine/store/src/lib.rs", 4)]
    );
}
