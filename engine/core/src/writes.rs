//! Whether a precondition's shell text visibly changes something (`RB081`), and whether a
//! SQL text only reads ([`sql_read_refusal`]).
//!
//! A precondition only reads: a resume checks it again when the run stopped before passing
//! it, and an operator reads a failed one as "the world is not ready", never as "the check
//! changed the world". What a shell
//! command does cannot be known in general; this names what it visibly does: a command
//! that writes files or state (`mkdir`, `rm`, `mv`, `cp`, `touch`, `tee FILE`, `chmod`,
//! `chown`, `ln`, `sed -i`...), a redirection to a file (`>`, `>>`, `&>`; `/dev/null`,
//! `/dev/stdout`, `/dev/stderr` and `>&2` are not files), a git command that changes a
//! repository or a remote (`commit`, `push`, `checkout`, `reset`...), a `curl` that sends
//! (`-X POST|PUT|PATCH|DELETE`, `-d`, `-F`, `-T`, `--json`) or saves a file (`-o FILE`).
//!
//! The reading is lexical (quotes, escapes, comments, `;`/`&&`/`||`/`|`, `$(..)`,
//! backquotes, heredoc bodies) and errs on the side of silence: it is a warning, to catch
//! the visible case (`mkdir -p` in a check), not a proof.

use std::ops::Range;

/// Files that a redirection may name without writing anything.
const SINKS: [&str; 4] = ["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"];

/// Commands that change files or their attributes whenever they are given an operand.
const WRITERS: [&str; 14] = [
    "mkdir", "rm", "rmdir", "mv", "cp", "touch", "chmod", "chown", "chgrp", "ln", "truncate", "install",
    "shred", "unlink",
];

/// Words that may stand before a command without being it.
const PREFIXES: [&str; 14] = [
    "sudo", "env", "command", "exec", "nice", "nohup", "time", "!", "if", "then", "else", "elif", "do",
    "while",
];

/// git subcommands that change a repository, its working tree or a remote.
const GIT_WRITES: [&str; 22] = [
    "commit",
    "push",
    "checkout",
    "reset",
    "switch",
    "restore",
    "merge",
    "rebase",
    "pull",
    "clean",
    "stash",
    "add",
    "rm",
    "mv",
    "init",
    "clone",
    "am",
    "apply",
    "cherry-pick",
    "revert",
    "update-ref",
    "gc",
];

#[derive(Debug, Clone)]
struct Word {
    text: String,
    span: Range<usize>,
}

/// What a `run` script visibly changes: (byte range in `script`, what).
pub fn visible_writes(script: &str) -> Vec<(Range<usize>, String)> {
    let mut found = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut word: Option<Word> = None;
    // A redirection waiting for its target: (operator, where it starts).
    let mut redirect: Option<(String, usize)> = None;
    let mut heredocs: Vec<(String, bool)> = Vec::new();
    let mut heredoc_next = false;
    let bytes = script.as_bytes();
    let mut i = 0;

    fn end_word(
        word: &mut Option<Word>,
        words: &mut Vec<Word>,
        redirect: &mut Option<(String, usize)>,
        heredoc_next: &mut bool,
        heredocs: &mut Vec<(String, bool)>,
        found: &mut Vec<(Range<usize>, String)>,
    ) {
        let Some(w) = word.take() else { return };
        if *heredoc_next {
            *heredoc_next = false;
            let strip = w.text.starts_with('-');
            heredocs.push((w.text.trim_start_matches('-').to_string(), strip));
            return;
        }
        if let Some((op, start)) = redirect.take() {
            let target = w.text.as_str();
            let harmless = SINKS.contains(&target)
                || (op.ends_with('&') && (target.chars().all(|c| c.is_ascii_digit()) || target == "-"));
            if !harmless {
                found.push((start..w.span.end, format!("redirects output into `{target}` (`{op}`)")));
            }
            return;
        }
        words.push(w);
    }

    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' => {
                end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
                i += 1;
            }
            b'\n' => {
                end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
                command(&std::mem::take(&mut words), &mut found);
                i += 1;
                // Heredoc bodies are data, not commands.
                for (delim, strip) in std::mem::take(&mut heredocs) {
                    while i < bytes.len() {
                        let end = script[i..].find('\n').map_or(bytes.len(), |n| i + n);
                        let line = &script[i..end];
                        i = (end + 1).min(bytes.len());
                        let line = if strip { line.trim_start_matches('\t') } else { line };
                        if line == delim {
                            break;
                        }
                    }
                }
            }
            b'#' if word.is_none() => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' | b'"' => {
                let start = i;
                i += 1;
                let mut text = String::new();
                while i < bytes.len() && bytes[i] != c {
                    if c == b'"' && bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                    }
                    let ch = script[i..].chars().next().unwrap_or(' ');
                    text.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                let w = word.get_or_insert(Word { text: String::new(), span: start..start });
                w.text.push_str(&text);
                w.span.end = i.min(bytes.len());
            }
            b'\\' => {
                let start = i;
                i += 1;
                if i < bytes.len() && bytes[i] != b'\n' {
                    let ch = script[i..].chars().next().unwrap_or(' ');
                    let w = word.get_or_insert(Word { text: String::new(), span: start..start });
                    w.text.push(ch);
                    i += ch.len_utf8();
                    w.span.end = i;
                } else {
                    i += 1;
                }
            }
            b';' | b'|' | b'(' | b')' | b'`' => {
                end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
                command(&std::mem::take(&mut words), &mut found);
                i += 1;
            }
            b'$' if bytes.get(i + 1) == Some(&b'(') => {
                end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
                command(&std::mem::take(&mut words), &mut found);
                i += 2;
            }
            b'&' if bytes.get(i + 1) != Some(&b'>') => {
                end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
                command(&std::mem::take(&mut words), &mut found);
                i += 1;
            }
            b'<' => {
                end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
                if script[i..].starts_with("<<<") {
                    i += 3;
                } else if script[i..].starts_with("<<") {
                    heredoc_next = true;
                    i += 2;
                } else {
                    // An input redirection: its target is read, not written.
                    redirect = None;
                    i += 1;
                    while i < bytes.len() && bytes[i] == b' ' {
                        i += 1;
                    }
                    while i < bytes.len() && !b" \t\n;|&)".contains(&bytes[i]) {
                        i += 1;
                    }
                }
            }
            b'>' | b'&' => {
                // `N>` : the digits were a word of their own so far.
                let mut start = i;
                if let Some(w) = &word
                    && w.text.chars().all(|c| c.is_ascii_digit())
                {
                    start = w.span.start;
                    word = None;
                }
                end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
                let mut op = String::new();
                while i < bytes.len() && b"&>|".contains(&bytes[i]) && op.len() < 3 {
                    op.push(bytes[i] as char);
                    i += 1;
                }
                redirect = Some((op, start));
            }
            _ => {
                let ch = script[i..].chars().next().unwrap_or(' ');
                let w = word.get_or_insert(Word { text: String::new(), span: i..i });
                w.text.push(ch);
                i += ch.len_utf8();
                w.span.end = i;
            }
        }
    }
    end_word(&mut word, &mut words, &mut redirect, &mut heredoc_next, &mut heredocs, &mut found);
    if let Some((op, start)) = redirect {
        found.push((start..script.len(), format!("redirects output (`{op}`)")));
    }
    command(&words, &mut found);
    found
}

/// What a `cmd` argv visibly changes.
pub fn argv_writes(argv: &[&str]) -> Option<String> {
    let words: Vec<Word> = argv.iter().map(|a| Word { text: a.to_string(), span: 0..0 }).collect();
    let mut found = Vec::new();
    command(&words, &mut found);
    found.into_iter().next().map(|(_, what)| what)
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// One simple command's words: whether the command writes.
fn command(words: &[Word], found: &mut Vec<(Range<usize>, String)>) {
    let mut rest = words;
    while let Some((first, tail)) = rest.split_first() {
        let w = first.text.as_str();
        if is_assignment(w) || PREFIXES.contains(&w) || w == "{" || w == "until" {
            rest = tail;
        } else if w == "timeout" {
            // `timeout DURATION COMMAND...`
            rest = tail.get(1..).unwrap_or(&[]);
        } else {
            break;
        }
    }
    let Some((first, args)) = rest.split_first() else { return };
    let name = first.text.rsplit('/').next().unwrap_or(&first.text);
    let span = first.span.start..args.last().map_or(first.span.end, |a| a.span.end);
    let operands = || args.iter().filter(|a| !a.text.starts_with('-'));
    let what = match name {
        n if WRITERS.contains(&n) && operands().next().is_some() => Some(format!("`{n}` changes files")),
        "tee" => operands()
            .find(|a| !SINKS.contains(&a.text.as_str()))
            .map(|a| format!("`tee` writes into `{}`", a.text)),
        "sed" if args.iter().any(|a| a.text.starts_with("-i") || a.text.starts_with("--in-place")) => {
            Some("`sed -i` edits a file in place".into())
        }
        "dd" => args
            .iter()
            .find_map(|a| a.text.strip_prefix("of="))
            .filter(|t| !SINKS.contains(t))
            .map(|t| format!("`dd` writes into `{t}`")),
        "git" => git(args),
        "curl" => curl(args),
        "psql" => psql(args),
        "prisma" => prisma(args),
        "npx" | "yarn" | "pnpm" | "bunx" if args.first().is_some_and(|a| a.text == "prisma") => {
            prisma(&args[1..])
        }
        "rsync" if operands().count() >= 2 => Some("`rsync` writes into its destination".into()),
        "find"
            if args
                .iter()
                .any(|a| matches!(a.text.as_str(), "-delete" | "-fprint" | "-fprintf" | "-fls")) =>
        {
            Some("`find -delete` removes files".into())
        }
        "kill" | "pkill" | "killall" if !args.iter().any(|a| a.text == "-0" || a.text == "-s0") => {
            Some(format!("`{name}` signals processes"))
        }
        _ => None,
    };
    if let Some(what) = what {
        found.push((span, what));
    }
}

/// `psql -c TEXT` (or `--command`) with a statement that is not a read-only check
/// ([`sql_read_refusal`]).
fn psql(args: &[Word]) -> Option<String> {
    let mut texts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let t = a.text.as_str();
        if t == "-c" || t == "--command" {
            texts.extend(it.next().map(|n| n.text.clone()));
        } else if let Some(v) = t.strip_prefix("--command=") {
            texts.push(v.to_string());
        } else if let Some(flags) = t.strip_prefix('-').filter(|f| !f.starts_with('-')) {
            // A cluster of short options (`-tAc TEXT`, `-cTEXT`); one that takes a value
            // ends it.
            for (k, f) in flags.char_indices() {
                if "dfhpUvoLPTFR".contains(f) {
                    break;
                }
                if f == 'c' {
                    match &flags[k + 1..] {
                        "" => texts.extend(it.next().map(|n| n.text.clone())),
                        rest => texts.push(rest.to_string()),
                    }
                    break;
                }
            }
        }
    }
    texts
        .iter()
        .find_map(|t| sql_read_refusal(t))
        .map(|why| format!("`psql -c` runs SQL that does not only read ({why})"))
}

/// `prisma migrate ...` (but `status`, `diff`), `prisma db push|execute|seed|pull`,
/// `prisma generate`: Prisma's commands that change a database or files.
fn prisma(args: &[Word]) -> Option<String> {
    let subs: Vec<&str> = args.iter().map(|a| a.text.as_str()).filter(|a| !a.starts_with('-')).collect();
    match subs.as_slice() {
        ["migrate", "status" | "diff", ..] => None,
        ["migrate", rest @ ..] => {
            Some(format!("`prisma migrate {}` changes the database", rest.first().unwrap_or(&"")))
        }
        ["db", sub @ ("push" | "execute" | "seed" | "pull"), ..] => {
            Some(format!("`prisma db {sub}` changes the database or the schema file"))
        }
        ["generate", ..] => Some("`prisma generate` writes files".into()),
        _ => None,
    }
}

fn git(args: &[Word]) -> Option<String> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.text.as_str() {
            "-C" | "-c" | "--git-dir" | "--work-tree" | "--namespace" => i += 2,
            t if t.starts_with('-') => i += 1,
            sub => {
                let rest = &args[i + 1..];
                let writes = GIT_WRITES.contains(&sub)
                    || (sub == "tag"
                        && rest.iter().any(|a| !a.text.starts_with('-'))
                        && !rest.iter().any(|a| {
                            matches!(
                                a.text.as_str(),
                                "-l" | "--list" | "--contains" | "--points-at" | "-v" | "--verify"
                            )
                        }))
                    || (sub == "branch"
                        && rest.iter().any(|a| {
                            matches!(
                                a.text.as_str(),
                                "-d" | "-D"
                                    | "-m"
                                    | "-M"
                                    | "-c"
                                    | "-C"
                                    | "-f"
                                    | "--delete"
                                    | "--move"
                                    | "--copy"
                                    | "--force"
                            )
                        }));
                return writes.then(|| format!("`git {sub}` changes a repository"));
            }
        }
    }
    None
}

fn curl(args: &[Word]) -> Option<String> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        let next = args.get(i + 1).map(|w| w.text.as_str());
        let method = match t {
            "-X" | "--request" => next,
            _ => t.strip_prefix("-X").or_else(|| t.strip_prefix("--request=")).filter(|m| !m.is_empty()),
        };
        if let Some(m) = method
            && !matches!(m.to_ascii_uppercase().as_str(), "GET" | "HEAD" | "OPTIONS")
        {
            return Some(format!("`curl -X {m}` sends a request that changes something"));
        }
        if matches!(t, "-d" | "-F" | "-T" | "--json" | "--form" | "--upload-file")
            || t.starts_with("--data")
            || (t.starts_with("-d") && t.len() > 2 && !t.starts_with("--"))
        {
            return Some(format!("`curl {t}` sends data"));
        }
        let output = match t {
            "-o" | "--output" => next,
            _ => t.strip_prefix("--output=").or_else(|| t.strip_prefix("-o").filter(|o| !o.is_empty())),
        };
        if let Some(o) = output
            && !SINKS.contains(&o)
            && o != "-"
        {
            return Some(format!("`curl -o {o}` writes a file"));
        }
        if t == "-O" || t == "--remote-name" {
            return Some("`curl -O` writes a file".into());
        }
        i += 1;
    }
    None
}

/// The first words a statement that only reads may start with (`sql_read_refusal`).
const SQL_READS: [&str; 6] = ["SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"];

/// Functions with side effects that a read-only transaction does not stop: they end or
/// signal other sessions, write the server's files, reach another database or change the
/// session (`sql_read_refusal`). Names ending in `_` stand for every function they begin.
const SQL_SIDE_EFFECTS: [&str; 24] = [
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_signal_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_log_backend_memory_contexts",
    "pg_file_",
    "pg_stat_reset",
    "pg_replication_",
    "pg_create_",
    "pg_drop_",
    "pg_notify",
    "lo_export",
    "lo_import",
    "lo_unlink",
    "dblink",
    "set_config",
    "load_extension",
    "writefile",
    // They run a query given as text, which the reading above cannot see.
    "query_to_xml",
    "ts_stat",
];

/// A SQL text's statements, read lexically: each one's words (upper-cased; a quoted
/// identifier, `".."` or `` `..` ``, as `"NAME`) outside string literals (`'..'`, `E'..'`,
/// `$tag$..$tag$`) and comments (`--`, nested `/* */`); empty statements are dropped.
pub fn sql_statements(text: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    // Whether the statement so far holds anything (a literal counts).
    let mut any = false;
    let mut word = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let flush = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(std::mem::take(word).to_uppercase());
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            flush(&mut word, &mut words);
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            flush(&mut word, &mut words);
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' || c == '"' || c == '`' {
            // `E'..'` takes backslash escapes.
            let escapes = c == '\'' && word.eq_ignore_ascii_case("e");
            flush(&mut word, &mut words);
            any = true;
            i += 1;
            // A quoted identifier is a name all the same (`"pg_terminate_backend"(pid)`).
            let mut name = String::new();
            while i < chars.len() {
                if escapes && chars[i] == '\\' {
                    i += 2;
                } else if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        name.push(c);
                        i += 2;
                    } else {
                        break;
                    }
                } else {
                    name.push(chars[i]);
                    i += 1;
                }
            }
            if c != '\'' {
                // Marked quoted: a name, never a keyword.
                words.push(format!("\"{}", name.to_uppercase()));
            }
            i += 1;
        } else if c == '$' && word.is_empty() && !next.is_some_and(|n| n.is_ascii_digit()) {
            // `$tag$ .. $tag$` (a `$1` is a parameter).
            let tag_end = (i + 1..chars.len()).find(|&k| !(chars[k].is_alphanumeric() || chars[k] == '_'));
            match tag_end {
                Some(e) if chars[e] == '$' => {
                    let tag: String = chars[i..=e].iter().collect();
                    any = true;
                    let rest: String = chars[e + 1..].iter().collect();
                    i = match rest.find(&tag) {
                        Some(at) => e + 1 + rest[..at].chars().count() + tag.chars().count(),
                        None => chars.len(),
                    };
                }
                _ => i += 1,
            }
        } else if c == ';' {
            flush(&mut word, &mut words);
            if any || !words.is_empty() {
                out.push(std::mem::take(&mut words));
            }
            any = false;
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || (c == '$' && !word.is_empty()) {
            word.push(c);
            i += 1;
        } else {
            flush(&mut word, &mut words);
            if !c.is_whitespace() {
                any = true;
            }
            i += 1;
        }
    }
    flush(&mut word, &mut words);
    if any || !words.is_empty() {
        out.push(words);
    }
    out
}

/// Whether a SQL text only reads, lexically: every statement starts with `SELECT`, `WITH`,
/// `VALUES`, `TABLE`, `SHOW` or `EXPLAIN` and writes no table on the way (no `INSERT`,
/// `UPDATE`, `DELETE`, `MERGE`, and no `SELECT .. INTO`). It decides how a step's result is
/// reported ("N row(s) returned", never "affected"); it is not a safety check (that is
/// [`sql_read_refusal`] and the read-only transaction).
pub fn sql_only_reads(text: &str) -> bool {
    let statements = sql_statements(text);
    !statements.is_empty()
        && statements.iter().all(|words| {
            words.first().is_some_and(|w| SQL_READS.contains(&w.as_str()))
                && !words
                    .iter()
                    .any(|w| matches!(w.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "INTO"))
        })
}

/// Why a SQL text cannot run as a read-only check, or `None`: a read-only transaction stops
/// writes to tables, but not a second statement that ends it (`COMMIT; INSERT ..`), one that
/// changes its mode (`SET TRANSACTION READ WRITE`), `COPY .. TO` a server file or program,
/// SQLite's `VACUUM INTO`, or a function with side effects (`pg_terminate_backend`, `lo_export`,
/// `dblink`, `set_config`...). So a read-only text is ONE statement that starts with `SELECT`,
/// `WITH`, `VALUES`, `TABLE`, `SHOW` or `EXPLAIN` and calls none of [`SQL_SIDE_EFFECTS`].
/// What a function written in the database does is not seen: that is the database role's job.
pub fn sql_read_refusal(text: &str) -> Option<String> {
    // `U&"..."` spells a name with escapes (`U&"pg_t\0065rminate_backend"`), out of sight.
    if text.to_ascii_uppercase().contains("U&\"") || text.to_ascii_uppercase().contains("U&'") {
        return Some(
            "it uses a Unicode-escaped name or string (`U&\"..\"`), which hides what it calls".into(),
        );
    }
    let statements = sql_statements(text);
    let first = match statements.as_slice() {
        [] => return Some("it holds no statement".into()),
        [one] => one,
        more => {
            return Some(format!(
                "it holds {} statements; a read-only check is one statement (a second one could end its read-only transaction)",
                more.len()
            ));
        }
    };
    match first.first() {
        Some(w) if SQL_READS.contains(&w.as_str()) => {}
        Some(w) => {
            return Some(format!(
                "it starts with `{w}`; a read-only check starts with SELECT, WITH, VALUES, TABLE, SHOW or EXPLAIN"
            ));
        }
        None => return Some("it holds no statement".into()),
    }
    for w in first {
        let lower = w.trim_start_matches('"').to_lowercase();
        let hit = SQL_SIDE_EFFECTS.iter().any(|f| {
            if f.ends_with('_') {
                lower.starts_with(f)
            } else {
                lower == *f || lower.starts_with(&format!("{f}_"))
            }
        });
        if hit {
            return Some(format!(
                "it calls `{lower}`, which has effects a read-only transaction does not stop"
            ));
        }
        if matches!(w.as_str(), "COPY" | "VACUUM" | "ATTACH" | "PRAGMA" | "COMMIT" | "ROLLBACK") {
            return Some(format!("it uses `{w}`, which a read-only transaction does not stop"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a SQL step's result is said: rows returned for a text that only reads, rows
    /// affected for anything that writes (issue 14: a SELECT said "1 affected").
    #[test]
    fn only_reads_is_every_statement_a_read_that_writes_no_table() {
        for read in [
            "SELECT 1",
            "select x from t where x > 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "VALUES (1), (2)",
            "TABLE t",
            "SHOW server_version",
            "EXPLAIN SELECT 1",
            "SELECT 'INSERT INTO t' AS text_not_a_write",
            "SELECT 1; SELECT 2;",
            "-- a comment\nSELECT 1",
        ] {
            assert!(sql_only_reads(read), "{read}");
        }
        for write in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET x = 1",
            "DELETE FROM t RETURNING x",
            "WITH gone AS (DELETE FROM t RETURNING x) SELECT count(*) FROM gone",
            "SELECT * INTO copy FROM t",
            "SELECT 1; UPDATE t SET x = 2",
            "CREATE TABLE t (x INTEGER)",
            "MERGE INTO t USING s ON t.x = s.x WHEN MATCHED THEN DELETE",
            "",
            "-- only a comment",
        ] {
            assert!(!sql_only_reads(write), "{write}");
        }
    }

    /// Preconditions that visibly write: each must be flagged.
    const WRITING: &[&str] = &[
        "mkdir -p /backups/database/daily",
        "test -d \"$d\" || mkdir -p \"$d\"",
        "rm -f /tmp/lock",
        "mv a b",
        "cp x y",
        "touch /tmp/stamp",
        "echo ok | tee /var/log/check.log",
        "chmod 600 key",
        "chown app: /srv",
        "echo x > /tmp/out",
        "date >> \"$LOG\"",
        "pg_isready 2>/tmp/err",
        "cmd &> out.txt",
        "git commit -m wip",
        "git -C \"$repo\" push origin main",
        "git checkout main",
        "git reset --hard HEAD",
        "cd \"$repo\" && git checkout -q \"$branch\"",
        "curl -fsS -X POST \"$url\"",
        "curl -XDELETE \"$url\"",
        "curl --request PUT \"$url\"",
        "curl -d '{}' \"$url\"",
        "curl --data-binary @f \"$url\"",
        "curl -o page.html \"$url\"",
        "x=$(mktemp) && rm \"$x\"",
        "sudo mkdir /srv/app",
        "FOO=1 touch f",
        "sed -i s/a/b/ file",
        "git tag v1.2.3",
        "if true; then rm -rf /tmp/x; fi",
        "echo `touch f`",
        "ln -s a b",
        "psql \"$DATABASE_URL\" -c \"DELETE FROM users\"",
        "psql -X --command='TRUNCATE sessions' \"$url\"",
        "psql \"$url\" -tAc 'select 1; drop table t'",
        "yarn prisma migrate reset --force",
        "npx prisma migrate deploy",
        "pnpm prisma db push --accept-data-loss",
        "prisma db execute --file x.sql",
        "rsync -a --delete a/ b/",
        "find . -delete",
        "find /tmp -name '*.lock' -delete",
        "kill -9 1234",
        "pkill -f worker",
    ];

    /// Preconditions that only read: none may be flagged.
    const READING: &[&str] = &[
        "test -d \"$repo_dir\"",
        "git -C \"$repo\" diff --quiet && git -C \"$repo\" diff --cached --quiet",
        "git -C \"$repo\" rev-parse --abbrev-ref HEAD | grep -qx main",
        "! git -C \"$repo\" rev-parse -q --verify \"refs/tags/$tag\" >/dev/null",
        "command -v pg_dump >/dev/null 2>&1 || { echo 'falta pg_dump' >&2; exit 1; }",
        "for t in git psql pg_dump; do command -v \"$t\" >/dev/null || { echo \"falta $t\" >&2; exit 1; }; done",
        "curl -fsS \"$url\" -o /dev/null",
        "curl -fsS -X GET \"$url\"",
        "curl -sI \"$url\"",
        "psql \"$url\" -tAc 'select 1' > /dev/null",
        "psql \"$url\" -c 'SELECT count(*) FROM users'",
        "npx prisma migrate status",
        "yarn prisma --version",
        "kill -0 \"$pid\"",
        "rsync --version",
        "echo 'rm -rf /' # a string, not a command",
        "# mkdir -p /x\ntrue",
        "echo \"a > b\"",
        "grep -q x <<EOF\nrm -rf /\nmkdir y\nEOF\n",
        "cat <<'EOF' >/dev/stderr\ntouch z\nEOF",
        "df -P \"$dir\" | awk 'NR==2 {exit ($4 < 1000)}'",
        "git tag -l 'v*' | grep -q .",
        "git ls-remote --tags origin",
        "git fetch -q origin",
        "ls \"$backup_dir\" 2>&1 >/dev/null",
        "[ \"$(git -C \"$r\" status --porcelain)\" = \"\" ]",
        "echo ok >&2",
        "exec 3>&1",
        "test -w \"$dir\"",
        "pg_restore --list \"$dump\" > /dev/null",
    ];

    #[test]
    fn every_writing_precondition_is_flagged() {
        for script in WRITING {
            let found = visible_writes(script);
            assert!(!found.is_empty(), "not flagged: {script}");
            for (span, _) in &found {
                assert!(script.get(span.clone()).is_some(), "bad span {span:?} in {script}");
            }
        }
    }

    #[test]
    fn no_reading_precondition_is_flagged() {
        for script in READING {
            assert_eq!(visible_writes(script), vec![], "flagged: {script}");
        }
    }

    #[test]
    fn argv_preconditions_are_read_like_scripts() {
        assert!(argv_writes(&["mkdir", "-p", "/x"]).is_some());
        assert!(argv_writes(&["curl", "-X", "POST", "http://h"]).is_some());
        assert!(argv_writes(&["git", "push"]).is_some());
        assert_eq!(argv_writes(&["test", "-d", "/x"]), None);
        assert_eq!(argv_writes(&["pg_isready", "-h", "db"]), None);
        assert_eq!(argv_writes(&["mkdir", "--version"]), None);
    }

    /// SQL that a read-only check must refuse: several statements, a first word that is not
    /// a read, or a side effect a read-only transaction does not stop.
    const SQL_REFUSED: &[&str] = &[
        "SET TRANSACTION READ WRITE; INSERT INTO t VALUES (1);",
        "COMMIT;\nINSERT INTO t VALUES (2);",
        "COMMIT; VACUUM INTO 'copy.db';",
        "COPY (SELECT 'pwned') TO '/tmp/x'",
        "COPY t TO PROGRAM 'sh -c id'",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "select PG_CANCEL_BACKEND(1)",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(x int)",
        "SELECT dblink_exec('host=x', 'DELETE FROM t')",
        "SELECT set_config('search_path', 'x', false)",
        "SELECT pg_reload_conf()",
        "SELECT 1; SELECT 2",
        "SELECT 1 /* ; */ ; DELETE FROM t",
        "SELECT $$;$$; DELETE FROM t",
        "SELECT 'a''b'; DELETE FROM t",
        "SELECT E'\\'; x'; DELETE FROM t",
        "DELETE FROM t",
        "UPDATE t SET a = 1",
        "DO $$ BEGIN PERFORM 1; END $$",
        "SELECT \"pg_terminate_backend\"(pid) FROM pg_stat_activity",
        "SELECT pg_catalog.set_config('a.b', 'c', false)",
        "SELECT U&\"pg_t\\0065rminate_backend\"(1)",
        "SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, true, '')",
        "SELECT * FROM ts_stat('SELECT pg_cancel_backend(1)')",
        "CALL p()",
        "PRAGMA query_only = 0",
        "ATTACH 'x.db' AS x",
        "VACUUM INTO 'copy.db'",
        "SET default_transaction_read_only = off",
        "BEGIN",
        "",
        "-- only a comment",
        "WITH x AS (SELECT 1) SELECT pg_notify('c', 'p')",
    ];

    /// SQL a read-only check may run.
    const SQL_READ: &[&str] = &[
        "SELECT 1",
        "SELECT 1;",
        "  select count(*) AS n FROM _prisma_migrations WHERE finished_at IS NULL ;\n-- done\n",
        "SELECT 'COMMIT; DELETE FROM t' AS s",
        "SELECT \"copy\" FROM t -- ; DELETE",
        "SELECT $x$ ; COPY $x$ AS body",
        "SELECT a FROM t WHERE b = $1 AND c = $2",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "VALUES (1), (2)",
        "TABLE users",
        "SHOW search_path",
        "EXPLAIN SELECT 1",
        "SELECT current_schema() AS s /* ; nested /* ; */ still */",
    ];

    #[test]
    fn sql_that_does_more_than_read_is_refused() {
        for text in SQL_REFUSED {
            assert!(sql_read_refusal(text).is_some(), "not refused: {text}");
        }
        for text in SQL_READ {
            assert_eq!(sql_read_refusal(text), None, "refused: {text}");
        }
    }
}
