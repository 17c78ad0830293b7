//! Whether a precondition's shell text visibly changes something (`RB081`).
//!
//! A precondition only reads: it runs again at every resume, and an operator reads a failed
//! one as "the world is not ready", never as "the check changed the world". What a shell
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
        _ => None,
    };
    if let Some(what) = what {
        found.push((span, what));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
