//! Where a value lands in shell text, and how it gets there without becoming code.
//!
//! A value never enters `run` text. The template renders each value as a marker (`\0N\0`),
//! [`contexts`] lexes the result as bash reads it and says, for each marker, in which
//! context it stands; [`bind`] then writes the script that runs: one assignment per value
//! at the top (`RB_1='...'`, single-quoted, a context where every byte is inert), and a
//! quoted reference where the value was (`"$RB_1"`, or `${RB_1}` inside double quotes and
//! heredocs). The shell expands a reference once and never reads its value as code, in any
//! context but those where bash evaluates a word a second time (arithmetic, array
//! subscripts, `eval`, `bash -c`, `trap`, a `printf` format...). In those [`Where::Code`]
//! contexts only an inert literal (digits, letters, `_.,:/@%+=-`) is written, as it is;
//! `runbook check` refuses a value there unless its type makes it inert.
//!
//! The lexer follows bash's rules closely enough for the contexts it names (quotes, `$(..)`,
//! backquotes, `${..}`, `$((..))`, `((..))`, `[[..]]`, heredocs, comments, `case`
//! patterns, assignments) and refuses what it cannot follow: a marker it does not
//! understand the place of is never written as a bare word.

/// The character that delimits a value's marker in rendered text.
pub const MARK: char = '\0';

/// The context of one marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// A word, a redirection target, an assignment value, a comment: `"$RB_1"`.
    Word,
    /// Inside double quotes or an unquoted heredoc body: `${RB_1}`.
    Expanded,
    /// Where a reference would not expand (single quotes, `$'..'`, a quoted heredoc): only
    /// an inert literal may stand there.
    Quoted(&'static str),
    /// Where bash reads the value as code even when quoted; the reason.
    Code(String),
}

/// One marker and its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The marker's number.
    pub index: usize,
    /// Byte offset of the marker in the lexed text.
    pub at: usize,
    /// Its context.
    pub context: Where,
    /// The value begins an argument of a command (alone, or after values only, in word
    /// number `n` of the text), where a program reads a leading `-` as an option: see
    /// [`option_value`].
    pub argument: Option<usize>,
}

/// Text with markers: `\0` + decimal index + `\0`.
pub fn marker(index: usize) -> String {
    format!("{MARK}{index}{MARK}")
}

/// Commands that hand a word to a shell when given `-c` (or `-ec`, `-lc`...).
const SHELLS: [&str; 9] = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish"];
/// Shells that read the assignments and references [`bind`] writes (`env` and `busybox`
/// lead to one).
pub const POSIX_SHELLS: [&str; 10] =
    ["bash", "sh", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "env", "yash"];
/// Interpreters whose `-c`/`-e` word is a program.
const INTERPRETERS: [&str; 11] =
    ["python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "Rscript", "osascript"];
/// Programs whose first operand is a program of their own language.
const PROGRAM_FIRST: [&str; 6] = ["awk", "gawk", "mawk", "nawk", "sed", "gsed"];
/// SQL clients: `-c`/`-e`/`--command` or the statement operand is SQL text.
const SQL_CLIENTS: [&str; 6] = ["psql", "mysql", "mariadb", "sqlite3", "duckdb", "clickhouse-client"];
/// Builtins that read every argument as code.
const CODE_BUILTINS: [&str; 12] =
    ["eval", "trap", "source", ".", "let", "alias", "bind", "complete", "compgen", "fc", "enable", "hash"];
/// Variables whose value the shell or programs run (or load) as code.
const CODE_VARIABLES: [&str; 31] = [
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "BASH_ENV",
    "ENV",
    "PATH",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "CDPATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "GIT_SSH_COMMAND",
    "GIT_SSH",
    "GIT_EXEC_PATH",
    "GIT_PROXY_COMMAND",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "GIT_PAGER",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "NODE_OPTIONS",
    "PERL5OPT",
    "RUBYOPT",
];

/// Name shapes that programs read as a command, options, a search path or a file of
/// their own settings (`GIT_EXTERNAL_DIFF`, `SUDO_EDITOR`, `MANPAGER`, `RSYNC_RSH`,
/// `JAVA_TOOL_OPTIONS`, `MAVEN_OPTS`, `PERL5OPT`, `NODE_PATH`, `RUBYLIB`, `PSQLRC`...).
const CODE_SUFFIXES: [&str; 26] = [
    "EDITOR", "VISUAL", "PAGER", "BROWSER", "SHELL", "TERMINAL", "_COMMAND", "_CMD", "_SSH", "_RSH",
    "ASKPASS", "OPTIONS", "OPTS", "OPT", "PATH", "LIB", "HOME", "STARTUP", "_DIFF", "_PROGRAM", "_CONF",
    "PSQLRC", "INPUTRC", "WGETRC", "NPMRC", "CURLRC",
];
/// Prefixes of such names: the dynamic loader, git's configuration and repository, less's
/// preprocessors, glibc's converters, exported functions, npm's configuration.
const CODE_PREFIXES: [&str; 9] =
    ["LD_", "DYLD_", "BASH_FUNC_", "GIT_CONFIG", "GIT_DIR", "GIT_TEMPLATE", "LESS", "GCONV", "NPM_CONFIG_"];

/// Whether programs run (or load) the value of variable `name` as code: the names of
/// [`CODE_VARIABLES`] and every name of a shape in [`CODE_SUFFIXES`] or [`CODE_PREFIXES`]
/// (an inverted rule: a new `FOO_EDITOR` is refused without being listed).
pub fn code_variable(name: &str) -> bool {
    CODE_VARIABLES.contains(&name)
        || CODE_SUFFIXES.iter().any(|s| name.ends_with(s))
        || CODE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The reason an assignment word (`NAME=...`) is code, if its value holds a marker and its
/// name is a [`code_variable`].
fn code_assignment(word: &str) -> Option<String> {
    let eq = word.find('=')?;
    let name = word[..eq].trim_end_matches('+');
    (word[eq..].contains(MARK) && code_variable(name))
        .then(|| format!("the value of `{name}`, which programs run as code"))
}
/// Builtins whose arguments name variables (a subscript in a name is arithmetic).
const NAME_BUILTINS: [&str; 7] = ["read", "unset", "mapfile", "readarray", "getopts", "wait", "coproc"];
/// Declarations: `NAME=value` words (the name part is code; with `-i` or `-n` the value too).
const DECLARE: [&str; 5] = ["declare", "typeset", "local", "export", "readonly"];
/// Commands that run the rest of their words as a command line through a shell.
const REMOTE: [&str; 3] = ["ssh", "watch", "parallel"];
/// Prefixes that run the following words as a command.
const PREFIXES: [&str; 21] = [
    "command", "builtin", "exec", "env", "sudo", "doas", "nohup", "time", "nice", "timeout", "stdbuf",
    "setsid", "xargs", "ionice", "chrt", "taskset", "nsenter", "unshare", "runcon", "fakeroot", "firejail",
];
/// Programs that run a command given after their own operands: everything after `--`
/// (`kubectl exec POD -- CMD`), or after the first `n` operands (`chroot DIR CMD`,
/// `flock FILE CMD`, `docker exec CONTAINER CMD`), is a command line. (program, n)
const LAUNCHERS: [(&str, usize); 9] = [
    ("kubectl", usize::MAX),
    ("oc", usize::MAX),
    ("chroot", 1),
    ("flock", 1),
    ("docker", 2),
    ("podman", 2),
    ("nerdctl", 2),
    ("systemd-run", 0),
    ("script", usize::MAX),
];
/// Options whose value is a shell command line, by program (`flock -c`, `script -c`,
/// `env -S`, `find -exec` is its own rule).
const COMMAND_OPTIONS: [(&str, &[&str]); 5] = [
    ("flock", &["-c", "--command"]),
    ("script", &["-c", "--command"]),
    ("env", &["-S", "--split-string"]),
    ("xterm", &["-e"]),
    ("systemd-run", &["--setenv", "-E"]),
];
/// Options of interpreters whose value is code or chooses code (`perl -M`, `python -m`,
/// `node -r`, `ruby -I`...): a single letter among these, or one of the long options.
const INTERPRETER_CODE_LETTERS: &str = "ceEpMmIrWXxlC";
const INTERPRETER_CODE_LONG: [&str; 8] = [
    "--eval",
    "--print",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "--command",
    "--module",
];
/// The program of a simple command (its words, redirections left out) that reads its
/// standard input as code: the command itself (`bash`, `source`, `psql`, `ssh`...), or a
/// shell, interpreter or SQL client named further on (`sudo -u x bash`, `kubectl exec -i p
/// -- sh`).
fn stdin_reader<'w>(mut names: impl Iterator<Item = &'w str>) -> Option<&'w str> {
    let mut names = names.by_ref().map(base).skip_while(|n| KEYWORDS.contains(n) || is_assignment(n));
    let first = names.next()?;
    if reads_stdin_as_code(first) {
        return Some(first);
    }
    names.find(|n| SHELLS.contains(n) || INTERPRETERS.contains(n) || SQL_CLIENTS.contains(n))
}

/// Programs that read their standard input as code: a heredoc, a here-string or a
/// redirection of theirs carries code.
fn reads_stdin_as_code(name: &str) -> bool {
    SHELLS.contains(&name)
        || INTERPRETERS.contains(&name)
        || SQL_CLIENTS.contains(&name)
        || matches!(name, "source" | "." | "ssh" | "su" | "runuser" | "sudo" | "at" | "batch" | "crontab")
}
/// Reserved words that may stand before a command.
const KEYWORDS: [&str; 12] =
    ["{", "!", "if", "then", "elif", "else", "while", "until", "do", "}", "function", "time"];

/// A word of a simple command: its text (quotes removed, markers kept), the markers in it
/// with their base context, and whether it is a redirection target.
#[derive(Debug, Default, Clone)]
struct Word {
    text: String,
    sites: Vec<usize>,
    redirect: bool,
}

/// The lexer's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Commands; closed by `)` (a subshell, `$(`, `<(`) or the end of the text.
    Cmd {
        paren: bool,
    },
    Double,
    /// `$((` or `((`: closed by `))`; `depth` counts inner parentheses.
    Arith {
        depth: usize,
        dollar: bool,
    },
    /// `${`: closed by `}`.
    Param {
        depth: usize,
    },
    Backtick,
    /// `$[`: the old arithmetic expansion, closed by `]`; `depth` counts inner brackets.
    Bracket {
        depth: usize,
    },
}

/// The state of one `Cmd` frame: the simple command being read.
#[derive(Debug)]
struct Command {
    words: Vec<Word>,
    current: Option<Word>,
    /// The next word is a redirection target.
    redirect_next: bool,
    /// The next word is a heredoc delimiter: (`<<-`, quoted).
    heredoc_next: Option<(bool, bool)>,
    /// In `[[ ... ]]`.
    test: bool,
    /// In a `case` pattern list (`case x in` seen, before `)`).
    case_pattern: bool,
    /// `case` commands open in this frame.
    case_depth: usize,
    /// In an array literal `a=(...)`.
    array: bool,
    /// The first site found in this frame.
    start: usize,
    /// Every word so far is a redirection or a keyword (`if`, `!`...): the next one is the
    /// command word.
    leading: bool,
    /// The first site of the current simple command.
    cmd_from: usize,
    /// In a pipeline (`a | b`): the first site of its first command.
    pipe_from: Option<usize>,
}

impl Default for Command {
    fn default() -> Self {
        Command {
            words: Vec::new(),
            current: None,
            redirect_next: false,
            heredoc_next: None,
            test: false,
            case_pattern: false,
            case_depth: 0,
            array: false,
            start: 0,
            leading: true,
            cmd_from: 0,
            pipe_from: None,
        }
    }
}

struct Lexer<'a> {
    text: &'a str,
    sites: Vec<Site>,
    frames: Vec<Frame>,
    cmds: Vec<Command>,
    /// Heredocs announced on the current line: (delimiter, quoted, strip tabs, the program
    /// that reads it as code, if any).
    heredocs: Vec<(String, bool, bool, Option<String>)>,
    error: Option<String>,
    /// Names declared integers (`declare -i`, `local -i`...) anywhere in the script.
    integers: std::collections::HashSet<String>,
    /// Assignments that hold markers: the variable's name and the sites.
    assignments: Vec<(String, Vec<usize>)>,
    /// Words that are arguments and begin with a value, so far.
    words: usize,
    /// Variables assigned so far, with the values that begin what they hold.
    starts: Vec<(String, Vec<usize>)>,
}

/// The context of every marker in `text`, or why the text cannot be followed.
pub fn contexts(text: &str) -> Result<Vec<Site>, String> {
    let mut lx = Lexer {
        text,
        sites: Vec::new(),
        frames: vec![Frame::Cmd { paren: false }],
        cmds: vec![Command::default()],
        heredocs: Vec::new(),
        integers: std::collections::HashSet::new(),
        assignments: Vec::new(),
        words: 0,
        starts: Vec::new(),
        error: None,
    };
    lx.run();
    if let Some(e) = lx.error {
        return Err(e);
    }
    Ok(lx.sites)
}

impl Lexer<'_> {
    fn top(&self) -> Frame {
        self.frames.last().copied().unwrap_or(Frame::Cmd { paren: false })
    }

    fn cmd(&mut self) -> &mut Command {
        if self.cmds.is_empty() {
            self.cmds.push(Command::default());
        }
        let n = self.cmds.len() - 1;
        &mut self.cmds[n]
    }

    /// Append to the current word of the innermost command.
    fn push_text(&mut self, s: &str) {
        let cmd = self.cmd();
        let redirect = std::mem::take(&mut cmd.redirect_next) || cmd.heredoc_next.is_some();
        let w = cmd.current.get_or_insert_with(|| Word { redirect, ..Word::default() });
        w.text.push_str(s);
    }

    fn end_word(&mut self) {
        let cmd = self.cmd();
        if let Some(w) = cmd.current.take() {
            if let Some((strip, quoted)) = cmd.heredoc_next.take() {
                let delim = w.text.clone();
                for &s in &w.sites {
                    self.sites[s].context = Where::Code("a heredoc delimiter".into());
                }
                let reader =
                    stdin_reader(self.cmd().words.iter().filter(|w| !w.redirect).map(|w| w.text.as_str()))
                        .map(str::to_string);
                self.heredocs.push((delim, quoted, strip, reader));
                self.cmd().words.push(w);
                return;
            }
            let cmd = self.cmd();
            if cmd.leading && !cmd.test && !cmd.case_pattern {
                match w.text.as_str() {
                    "[[" => cmd.test = true,
                    "case" => cmd.case_depth += 1,
                    _ => {}
                }
            }
            if cmd.case_depth > 0
                && !cmd.case_pattern
                && w.text == "in"
                && cmd.words.first().is_some_and(|f| f.text == "case")
            {
                cmd.case_pattern = true;
                cmd.words.push(w);
                self.classify();
                return;
            }
            if w.text == "esac" && cmd.words.is_empty() {
                cmd.case_depth = cmd.case_depth.saturating_sub(1);
                cmd.case_pattern = false;
            }
            cmd.leading &= w.redirect || KEYWORDS.contains(&w.text.as_str());
            cmd.words.push(w);
            if cmd.test && self.cmd().words.last().is_some_and(|w| w.text == "]]") {
                self.classify();
            }
        }
    }

    fn add_site(&mut self, index: usize, at: usize, context: Where) {
        let id = self.sites.len();
        self.sites.push(Site { index, at, context, argument: None });
        let cmd = self.cmd();
        let redirect = std::mem::take(&mut cmd.redirect_next) || cmd.heredoc_next.is_some();
        let w = cmd.current.get_or_insert_with(|| Word { redirect, ..Word::default() });
        w.sites.push(id);
        w.text.push_str(&marker(index));
    }

    /// The end of a simple command: decide the contexts of its markers.
    fn classify(&mut self) {
        self.end_word_plain();
        let cmd = self.cmd();
        let words = std::mem::take(&mut cmd.words);
        cmd.test = false;
        cmd.array = false;
        cmd.leading = true;
        let (cmd_from, pipe_from) = (cmd.cmd_from, cmd.pipe_from.take());
        let now = self.sites.len();
        self.cmd().cmd_from = now;
        self.note_assignments(&words);
        // `echo {{ x }} | bash`: what a pipeline writes into a program that reads its input
        // as code is code.
        if let Some(from) = pipe_from
            && let Some(reader) = stdin_reader(words.iter().filter(|w| !w.redirect).map(|w| w.text.as_str()))
        {
            for site in &mut self.sites[from..cmd_from] {
                if matches!(site.context, Where::Word | Where::Expanded) {
                    site.context = Where::Code(format!("text piped into `{reader}`, which reads it as code"));
                }
            }
            // A heredoc announced on this line (`cat <<EOF | psql`) is read after it.
            for doc in &mut self.heredocs {
                doc.3.get_or_insert_with(|| reader.to_string());
            }
        }
        // A value that begins an argument may be read as an option (`git ls-remote "$RB_1"`).
        for (w, argument) in words.iter().zip(argument_words(&words, true)) {
            if !argument {
                continue;
            }
            // The values the word begins with, or that begin the variable it begins with
            // (`x={{ v }}; git fetch "$x"`).
            let ids: Vec<usize> = if w.text.starts_with(MARK) {
                w.sites.iter().take(leading_markers(&w.text)).copied().collect()
            } else {
                leading_variable(&w.text)
                    .and_then(|name| self.starts.iter().find(|(n, _)| n == name))
                    .map(|(_, ids)| ids.clone())
                    .unwrap_or_default()
            };
            if !ids.is_empty() {
                self.words += 1;
            }
            for s in ids {
                self.sites[s].argument = Some(self.words);
            }
        }
        let codes = code_words(&words);
        for (w, reason) in words.iter().zip(codes) {
            if let Some(reason) = reason {
                for &s in &w.sites {
                    if matches!(self.sites[s].context, Where::Word | Where::Expanded) {
                        self.sites[s].context = Where::Code(reason.clone());
                    }
                }
            }
        }
    }

    fn end_word_plain(&mut self) {
        if self.cmd().current.is_some() {
            self.end_word();
        }
    }

    /// A marker at byte `i`: its index and the offset after it.
    fn read_marker(&mut self, i: usize) -> Option<(usize, usize)> {
        let rest = &self.text[i + 1..];
        let end = rest.find(MARK)?;
        let index = rest[..end].parse().ok()?;
        Some((index, i + 1 + end + 1))
    }

    fn run(&mut self) {
        let bytes = self.text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if self.error.is_some() {
                return;
            }
            let c = bytes[i];
            let rest = &self.text[i..];
            // `\{{ x }}` would escape the reference's first character, not the value.
            if c == b'\\' && bytes.get(i + 1) == Some(&0) && !matches!(self.top(), Frame::Backtick) {
                self.error =
                    Some("a backslash right before a value, which would escape the value's reference".into());
                return;
            }
            if c == 0 {
                let Some((index, next)) = self.read_marker(i) else {
                    self.error = Some("a NUL character in shell text".into());
                    return;
                };
                let context = match self.top() {
                    Frame::Cmd { .. } => {
                        let cmd = self.cmd();
                        let in_subscript = cmd.current.as_ref().is_some_and(|w| {
                            // `name[` before the marker, inside an assignment's name or an
                            // array literal's `[key]=`.
                            let t = &w.text;
                            t.contains('[') && !t.contains('=') && !t.contains(']')
                        });
                        if in_subscript { Where::Code("an array subscript".into()) } else { Where::Word }
                    }
                    Frame::Double => Where::Expanded,
                    Frame::Arith { .. } => Where::Code("arithmetic".into()),
                    Frame::Param { .. } => Where::Code("a parameter expansion `${...}`".into()),
                    Frame::Backtick => Where::Code("backquotes".into()),
                    Frame::Bracket { .. } => Where::Code("arithmetic `$[ ]`".into()),
                };
                self.add_site(index, i, context);
                i = next;
                continue;
            }
            match self.top() {
                Frame::Cmd { paren } => {
                    i = self.cmd_byte(i, paren);
                }
                Frame::Double => {
                    i = match c {
                        b'\\' => {
                            let n = self.escape_len(i);
                            self.push_text(&rest[1..n]);
                            i + n
                        }
                        b'"' => {
                            self.frames.pop();
                            i + 1
                        }
                        _ => self.dollar_or_text(i),
                    };
                }
                Frame::Arith { depth, dollar } => {
                    i = match c {
                        b'(' => {
                            self.set_top(Frame::Arith { depth: depth + 1, dollar });
                            i + 1
                        }
                        b')' if depth > 0 => {
                            self.set_top(Frame::Arith { depth: depth - 1, dollar });
                            i + 1
                        }
                        b')' if rest.starts_with("))") => {
                            self.frames.pop();
                            self.push_text("))");
                            i + 2
                        }
                        b')' => {
                            self.error = Some("an unbalanced `)` in arithmetic".into());
                            i + 1
                        }
                        _ => self.dollar_or_text(i),
                    };
                }
                Frame::Bracket { depth } => {
                    i = match c {
                        b'[' => {
                            self.set_top(Frame::Bracket { depth: depth + 1 });
                            self.push_text("[");
                            i + 1
                        }
                        b']' if depth > 0 => {
                            self.set_top(Frame::Bracket { depth: depth - 1 });
                            self.push_text("]");
                            i + 1
                        }
                        b']' => {
                            self.frames.pop();
                            self.push_text("]");
                            i + 1
                        }
                        _ => self.dollar_or_text(i),
                    };
                }
                Frame::Param { depth } => {
                    i = match c {
                        b'{' => {
                            self.set_top(Frame::Param { depth: depth + 1 });
                            i + 1
                        }
                        b'}' if depth > 0 => {
                            self.set_top(Frame::Param { depth: depth - 1 });
                            i + 1
                        }
                        b'}' => {
                            self.frames.pop();
                            self.push_text("}");
                            i + 1
                        }
                        b'\\' => i + self.escape_len(i),
                        _ => self.dollar_or_text(i),
                    };
                }
                Frame::Backtick => {
                    i = match c {
                        b'\\' => i + self.escape_len(i),
                        b'`' => {
                            self.frames.pop();
                            i + 1
                        }
                        _ => i + rest.chars().next().map_or(1, char::len_utf8),
                    };
                }
            }
        }
        // Unclosed quotes or substitutions: bash would refuse the script; say so now.
        if self.frames.len() > 1 {
            let what = match self.top() {
                Frame::Cmd { .. } => "a `$(`, `<(` or `(` that is not closed",
                Frame::Double => "an unclosed `\"`",
                Frame::Arith { .. } => "an arithmetic `((` that is not closed",
                Frame::Param { .. } => "a `${` that is not closed",
                Frame::Backtick => "an unclosed backquote",
                Frame::Bracket { .. } => "an arithmetic `$[` that is not closed",
            };
            self.error = Some(format!("the script ends inside {what}"));
            return;
        }
        // The end of the text ends every open command.
        while !self.cmds.is_empty() {
            self.classify();
            self.cmds.pop();
        }
        // bash evaluates an assignment to an integer variable arithmetically.
        for (name, ids) in std::mem::take(&mut self.assignments) {
            if self.integers.contains(&name) {
                for id in ids {
                    if matches!(self.sites[id].context, Where::Word | Where::Expanded) {
                        self.sites[id].context =
                            Where::Code(format!("an assignment to `{name}`, declared an integer (`-i`)"));
                    }
                }
            }
        }
    }

    /// Record integer declarations and assignments that hold markers.
    fn note_assignments(&mut self, words: &[Word]) {
        let lead = words.iter().take_while(|w| KEYWORDS.contains(&w.text.as_str())).count();
        let mut declare = false;
        let mut integer = false;
        for w in words.iter().skip(lead).filter(|w| !w.redirect) {
            let t = w.text.as_str();
            if declare && t.starts_with('-') && !t.contains(MARK) {
                integer |= t.contains('i');
                continue;
            }
            if !declare && !is_assignment(t) {
                // The command word: a declaration reads the words after it.
                declare = DECLARE.contains(&base(t));
                if declare {
                    continue;
                }
                break;
            }
            let name = t.split(['=', '[', '+']).next().unwrap_or("").to_string();
            if integer {
                self.integers.insert(name.clone());
            }
            if !w.sites.is_empty() && t.contains('=') {
                self.assignments.push((name.clone(), w.sites.clone()));
            }
            // The values that begin what is assigned: they begin every argument that starts
            // with the variable (`x={{ v }}; git fetch "$x"`).
            if let Some((_, value)) = t.split_once('=') {
                let ids = w.sites.iter().take(leading_markers(value)).copied().collect();
                self.starts.retain(|(n, _)| *n != name);
                self.starts.push((name, ids));
            }
        }
    }

    fn set_top(&mut self, f: Frame) {
        if let Some(t) = self.frames.last_mut() {
            *t = f;
        }
    }

    /// `$(`, `$((`, `${`, `` ` `` or one character of text, in any frame that expands.
    fn dollar_or_text(&mut self, i: usize) -> usize {
        let rest = &self.text[i..];
        if rest.starts_with("$((") {
            self.frames.push(Frame::Arith { depth: 0, dollar: true });
            self.push_text("$((");
            return i + 3;
        }
        if rest.starts_with("$(") {
            self.open_cmd();
            return i + 2;
        }
        if rest.starts_with("$[") {
            self.frames.push(Frame::Bracket { depth: 0 });
            self.push_text("$[");
            return i + 2;
        }
        if rest.starts_with("${") {
            self.frames.push(Frame::Param { depth: 0 });
            self.push_text("${");
            return i + 2;
        }
        if rest.starts_with('`') {
            self.frames.push(Frame::Backtick);
            return i + 1;
        }
        let n = rest.chars().next().map_or(1, char::len_utf8);
        self.push_text(&rest[..n]);
        i + n
    }

    /// Close a `Cmd` frame (`)`): its markers join the word of the enclosing command, so a
    /// substitution inside `eval "$(...)"` is code too.
    fn close_cmd(&mut self) {
        self.classify();
        self.frames.pop();
        let inner = self.cmds.pop().unwrap_or_default();
        let ids: Vec<usize> = (inner.start..self.sites.len()).collect();
        if !ids.is_empty() {
            let cmd = self.cmd();
            let w = cmd.current.get_or_insert_with(Word::default);
            w.sites.extend(ids);
        }
    }

    fn open_cmd(&mut self) {
        self.frames.push(Frame::Cmd { paren: true });
        let start = self.sites.len();
        self.cmds.push(Command { start, cmd_from: start, ..Command::default() });
    }

    /// The length of a backslash escape at `i` (a marker after it is not escaped).
    fn escape_len(&self, i: usize) -> usize {
        match self.text[i + 1..].chars().next() {
            None | Some(MARK) => 1,
            Some(c) => 1 + c.len_utf8(),
        }
    }

    fn cmd_byte(&mut self, i: usize, paren: bool) -> usize {
        let rest = &self.text[i..];
        let c = rest.as_bytes()[0];
        let at_word_start = self.cmd().current.is_none();
        match c {
            b' ' | b'\t' => {
                self.end_word_plain();
                i + 1
            }
            b'\n' => {
                let cmd = self.cmd();
                if !cmd.array {
                    self.classify();
                } else {
                    self.end_word_plain();
                }
                self.heredoc_bodies(i + 1)
            }
            b'#' if at_word_start => {
                // A comment runs to the end of the line; a reference in it is inert.
                let end = rest.find('\n').map_or(self.text.len(), |n| i + n);
                let mut j = i;
                while j < end {
                    if self.text.as_bytes()[j] == 0
                        && let Some((index, next)) = self.read_marker(j)
                    {
                        self.sites.push(Site { index, at: j, context: Where::Word, argument: None });
                        j = next;
                    } else {
                        j += 1;
                    }
                }
                end
            }
            b'\\' => {
                let n = self.escape_len(i);
                if rest[1..].starts_with('\n') {
                    return i + 2;
                }
                self.push_text(&rest[1..n]);
                i + n
            }
            b'\'' => {
                let Some(end) = rest[1..].find('\'') else {
                    self.error = Some("an unclosed `'`".into());
                    return self.text.len();
                };
                self.quoted_run(i + 1, i + 1 + end, "single quotes");
                i + 1 + end + 1
            }
            b'$' if rest.starts_with("$'") => {
                // ANSI-C quoting: backslash escapes, no expansion.
                let bytes = rest.as_bytes();
                let mut j = 2;
                while j < bytes.len() && bytes[j] != b'\'' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                self.quoted_run(i + 2, (i + j).min(self.text.len()), "`$'...'` quotes");
                i + j + 1
            }
            b'"' => {
                self.push_text("");
                self.frames.push(Frame::Double);
                i + 1
            }
            b'(' if rest.starts_with("((")
                && !at_word_start
                && self.cmd().current.as_ref().is_some_and(|w| {
                    matches!(
                        w.text.as_str(),
                        "if" | "elif" | "while" | "until" | "for" | "do" | "then" | "else" | "!"
                    )
                })
                && self
                    .cmd()
                    .words
                    .iter()
                    .all(|w| w.text == "for" || KEYWORDS.contains(&w.text.as_str())) =>
            {
                // `if((`, `while((`, `for((`: bash reads the keyword, then an arithmetic command.
                self.end_word_plain();
                self.frames.push(Frame::Arith { depth: 0, dollar: false });
                self.push_text("((");
                i + 2
            }
            b'(' if rest.starts_with("((")
                && at_word_start
                && self
                    .cmd()
                    .words
                    .iter()
                    .all(|w| w.text == "for" || KEYWORDS.contains(&w.text.as_str())) =>
            {
                self.frames.push(Frame::Arith { depth: 0, dollar: false });
                self.push_text("((");
                i + 2
            }
            b'(' if !at_word_start && self.cmd().current.as_ref().is_some_and(|w| w.text.ends_with('=')) => {
                // An array literal: `a=(x y)`.
                self.end_word_plain();
                self.cmd().array = true;
                i + 1
            }
            b')' if self.cmd().array => {
                self.end_word_plain();
                self.cmd().array = false;
                i + 1
            }
            b')' if self.cmd().case_pattern => {
                self.end_word_plain();
                let cmd = self.cmd();
                cmd.case_pattern = false;
                cmd.words.clear();
                i + 1
            }
            b'(' => {
                // A subshell or a function's `()`.
                self.classify();
                if rest.starts_with("()") {
                    return i + 2;
                }
                self.open_cmd();
                i + 1
            }
            b')' if paren => {
                self.close_cmd();
                i + 1
            }
            b')' => {
                self.error = Some("an unbalanced `)`".into());
                i + 1
            }
            b'<' | b'>' if rest[1..].starts_with('(') => {
                self.end_word_plain();
                self.open_cmd();
                i + 2
            }
            b'<' if rest.starts_with("<<<") => {
                self.end_word_plain();
                self.cmd().redirect_next = true;
                i + 3
            }
            b'<' if rest.starts_with("<<") => {
                self.end_word_plain();
                let strip = rest.starts_with("<<-");
                // Whether the delimiter is quoted is read from the raw text.
                let after = &rest[if strip { 3 } else { 2 }..];
                let word = after.trim_start_matches([' ', '\t']);
                let raw: String = word.chars().take_while(|c| !" \t\n;&|<>()".contains(*c)).collect();
                let quoted = raw.contains(['\'', '"', '\\']);
                self.cmd().heredoc_next = Some((strip, quoted));
                i + if strip { 3 } else { 2 }
            }
            b'<' | b'>' => {
                // `>`, `>>`, `<`, `>&`, `<&`, `>|`, `&>` and the fd number before them.
                let cmd = self.cmd();
                if cmd
                    .current
                    .as_ref()
                    .is_some_and(|w| !w.text.is_empty() && w.text.bytes().all(|b| b.is_ascii_digit()))
                {
                    cmd.current = None;
                }
                self.end_word_plain();
                self.cmd().redirect_next = true;
                let mut j = i + 1;
                while j < self.text.len() && b">&|".contains(&self.text.as_bytes()[j]) {
                    j += 1;
                }
                j
            }
            b';' | b'&' | b'|' => {
                if c == b';' && rest.starts_with(";;") || rest.starts_with(";&") {
                    self.classify();
                    let cmd = self.cmd();
                    if cmd.case_depth > 0 {
                        cmd.case_pattern = true;
                    }
                    let n = if rest.starts_with(";;&") { 3 } else { 2 };
                    return i + n;
                }
                if c == b'&' && rest.starts_with("&>") {
                    self.end_word_plain();
                    self.cmd().redirect_next = true;
                    return i + if rest.starts_with("&>>") { 3 } else { 2 };
                }
                if rest.starts_with("||") || rest.starts_with("&&") {
                    self.classify();
                    return i + 2;
                }
                if c == b'|' {
                    // A pipe: the pipeline goes on into the next command.
                    let cmd = self.cmd();
                    let from = cmd.pipe_from.unwrap_or(cmd.cmd_from);
                    self.classify();
                    self.cmd().pipe_from = Some(from);
                    return i + if rest.starts_with("|&") { 2 } else { 1 };
                }
                self.classify();
                i + 1
            }
            _ => self.dollar_or_text(i),
        }
    }

    /// Single-quoted text from `start` to `end` (exclusive): markers in it cannot expand.
    fn quoted_run(&mut self, start: usize, end: usize, what: &'static str) {
        let mut j = start;
        let mut literal = String::new();
        while j < end {
            if self.text.as_bytes()[j] == 0
                && let Some((index, next)) = self.read_marker(j)
            {
                self.push_text(&literal);
                literal.clear();
                self.add_site(index, j, Where::Quoted(what));
                j = next;
            } else {
                let n = self.text[j..].chars().next().map_or(1, char::len_utf8);
                literal.push_str(&self.text[j..j + n]);
                j += n;
            }
        }
        self.push_text(&literal);
    }

    /// Read the bodies of the heredocs announced on the line that ended before `i`; the
    /// offset after them.
    fn heredoc_bodies(&mut self, mut i: usize) -> usize {
        let docs = std::mem::take(&mut self.heredocs);
        for (delim, quoted, strip, reader) in docs {
            loop {
                if i >= self.text.len() {
                    return i;
                }
                let end = self.text[i..].find('\n').map_or(self.text.len(), |n| i + n);
                let line = &self.text[i..end];
                let cmp = if strip { line.trim_start_matches('\t') } else { line };
                if cmp == delim {
                    i = (end + 1).min(self.text.len());
                    break;
                }
                self.heredoc_line(i, end, quoted, reader.as_deref());
                i = (end + 1).min(self.text.len());
            }
        }
        i
    }

    /// One line of a heredoc body. In an unquoted body, `$(`, `${`, `$((` and backquotes
    /// expand: a marker inside one of them is refused (it would be code or a pattern).
    fn heredoc_line(&mut self, start: usize, end: usize, quoted: bool, reader: Option<&str>) {
        let bytes = self.text.as_bytes();
        let mut depth = 0usize;
        let mut tick = false;
        let mut j = start;
        while j < end {
            let b = bytes[j];
            if b == 0
                && let Some((index, next)) = self.read_marker(j)
            {
                let context = if let Some(reader) = reader {
                    Where::Code(format!("a heredoc that `{reader}` reads as code"))
                } else if quoted {
                    Where::Quoted("a quoted heredoc")
                } else if depth > 0 || tick {
                    Where::Code("a substitution inside a heredoc".into())
                } else {
                    Where::Expanded
                };
                self.sites.push(Site { index, at: j, context, argument: None });
                j = next;
                continue;
            }
            if !quoted {
                match b {
                    b'\\' if bytes.get(j + 1) == Some(&0) => {
                        self.error = Some(
                            "a backslash right before a value, which would escape the value's reference"
                                .into(),
                        );
                        return;
                    }
                    b'\\' => j += 1,
                    b'$' if bytes.get(j + 1).is_some_and(|n| *n == b'(' || *n == b'{' || *n == b'[') => {
                        depth += 1
                    }
                    // `$[` is never closed here: the rest of the line counts as inside it.
                    b')' | b'}' if depth > 0 => depth -= 1,
                    b'`' => tick = !tick,
                    _ => {}
                }
            }
            j += 1;
        }
    }
}

/// For each word of a simple command, the reason it is code, if it is.
fn code_words(words: &[Word]) -> Vec<Option<String>> {
    let mut out = vec![None; words.len()];
    let mut lead = words.iter().take_while(|w| !w.redirect && KEYWORDS.contains(&w.text.as_str())).count();
    // `time -p CMD`: `-p` is the keyword's option.
    if lead > 0 && words[lead - 1].text == "time" && words.get(lead).is_some_and(|w| w.text == "-p") {
        lead += 1;
    }
    // `[[ ... ]]`: the operands of arithmetic comparisons, and of `-v`.
    if words.get(lead).is_some_and(|w| w.text == "[[") {
        let arith = ["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];
        for (k, o) in out.iter_mut().enumerate().skip(lead) {
            let prev = k.checked_sub(1).map(|p| words[p].text.as_str());
            let next = words.get(k + 1).map(|w| w.text.as_str());
            if prev.is_some_and(|p| arith.contains(&p)) || next.is_some_and(|n| arith.contains(&n)) {
                *o = Some("an arithmetic comparison in `[[ ]]`".into());
            }
            if prev == Some("-v") {
                *o = Some("a variable name (`-v`)".into());
            }
        }
        return out;
    }
    // Assignments before the command: a subscript in the name is arithmetic.
    let mut k = lead;
    while k < words.len() && (words[k].redirect || is_assignment(&words[k].text)) {
        if !words[k].redirect
            && let Some(eq) = words[k].text.find('=')
            && words[k].text[..eq].contains(MARK)
        {
            out[k] = Some("a variable name".into());
        } else if !words[k].redirect {
            out[k] = code_assignment(&words[k].text);
        }
        k += 1;
    }
    let args: Vec<usize> = (k..words.len()).filter(|&n| !words[n].redirect).collect();
    // Skip prefixes (`sudo`, `env X=1`, `timeout 5`...) to the command word.
    let mut a = 0;
    while a < args.len() && PREFIXES.contains(&base(&words[args[a]].text)) {
        let prefix = base(&words[args[a]].text);
        a += 1;
        while a < args.len() {
            let w = words[args[a]].text.as_str();
            if prefix == "env" && w.contains(MARK) && (w.starts_with("-S") || w.starts_with("--split-string"))
            {
                // `env -S{{ x }}`, `env --split-string={{ x }}`: a command line.
                out[args[a]] = Some("the command line of `env --split-string`".into());
                a += 1;
            } else if w.starts_with('-') && w.len() == 2 && prefix_option_arg(prefix).contains(&w[1..]) {
                a += 2;
            } else if is_assignment(w) {
                out[args[a]] = code_assignment(w);
                a += 1;
            } else if w.starts_with('-')
                || (prefix == "timeout" || prefix == "nice")
                    && w.bytes().all(|b| b.is_ascii_digit() || b"._smhd".contains(&b))
            {
                a += 1;
            } else {
                break;
            }
        }
    }
    let Some(&first) = args.get(a) else { return out };
    // A program that reads its standard input as code (`bash <<< x`, `sqlite3 db < f`,
    // `source /dev/stdin <<< x`): a value in any of its redirections is code.
    if let Some(reader) = stdin_reader(args[a..].iter().map(|&n| words[n].text.as_str())) {
        for (n, w) in words.iter().enumerate() {
            if w.redirect && w.text.contains(MARK) && out[n].is_none() {
                out[n] = Some(format!("the input of `{reader}`, which reads it as code"));
            }
        }
    }
    if words[first].text.contains(MARK) {
        out[first] = Some("the command name".into());
    }
    let t = |n: usize| words[n].text.as_str();
    let mark = |out: &mut Vec<Option<String>>, n: usize, why: String| {
        if out[n].is_none() {
            out[n] = Some(why);
        }
    };
    builtin_rules(base(t(first)), &args[a + 1..], words, &mut out);
    // Programs that read a word as code: the command (after prefixes such as `sudo -u x`,
    // `xargs -0`, `timeout 5`) and the command of `find -exec`. Words after it are its
    // arguments (`sh -c '...' sh ARG`), whatever they say.
    let mut commands = vec![a];
    for (e, &n) in args.iter().enumerate().filter(|&(e, _)| e > a) {
        if matches!(t(n), "-exec" | "-execdir" | "-ok" | "-okdir") {
            commands.push(e + 1);
            if let Some(&p) = args.get(e + 1)
                && t(p).contains(MARK)
            {
                mark(&mut out, p, "the command name".into());
            }
        }
    }
    let program = base(t(first));
    // Launchers: after `--`, or after their first operands, a command line.
    if let Some(&(_, n)) = LAUNCHERS.iter().find(|(p, _)| *p == program) {
        let rest = &args[a + 1..];
        let from = match rest.iter().position(|&w| t(w) == "--") {
            Some(dash) => Some(dash + 1),
            None if n == usize::MAX => None,
            None => rest.iter().enumerate().filter(|&(_, &w)| !t(w).starts_with('-')).nth(n).map(|(r, _)| r),
        };
        if let Some(from) = from {
            for &w in &rest[from..] {
                mark(&mut out, w, format!("a command line that `{program}` runs"));
            }
        }
    }
    // Options whose value is a command line.
    if let Some((_, options)) = COMMAND_OPTIONS.iter().find(|(p, _)| *p == program) {
        let rest = &args[a + 1..];
        for (r, &w) in rest.iter().enumerate() {
            if options.contains(&t(w)) {
                if let Some(&p) = rest.get(r + 1) {
                    mark(&mut out, p, format!("the command of `{program} {}`", t(w)));
                }
            } else if t(w).contains(MARK) && options.iter().any(|o| t(w).starts_with(o)) {
                mark(&mut out, w, format!("the command of `{program}`"));
            }
        }
    }
    // A shell or an interpreter named further on (`chroot / bash -c`, `exec -a x bash -c`,
    // `time -p bash -c`, `kubectl exec p -- sh -c`): its options are read as its own.
    let nested: Vec<usize> = (a + 1..args.len())
        .filter(|&j| {
            let n = base(t(args[j]));
            SHELLS.contains(&n) || INTERPRETERS.contains(&n)
        })
        .collect();
    let direct = commands.len();
    commands.extend(nested);
    for (c, j) in commands.into_iter().enumerate() {
        let Some(&at) = args.get(j) else { continue };
        let name = base(t(at));
        let rest = &args[j + 1..];
        if SHELLS.contains(&name) || INTERPRETERS.contains(&name) || name == "su" || name == "runuser" {
            let interpreter = INTERPRETERS.contains(&name);
            let is_flag = |w: &str| {
                w.starts_with('-')
                    && !w.starts_with("--")
                    && if interpreter {
                        w[1..].contains(|c| INTERPRETER_CODE_LETTERS.contains(c))
                    } else {
                        w[1..].contains('c')
                    }
            };
            let mut flagged = false;
            for (r, &n) in rest.iter().enumerate() {
                let long = t(n) == "--command" || (interpreter && INTERPRETER_CODE_LONG.contains(&t(n)));
                if (is_flag(t(n)) || long)
                    && let Some(&p) = rest.get(r + 1)
                {
                    flagged = true;
                    mark(&mut out, p, format!("the program of `{name} {}`", t(n)));
                }
                // An option written with a value (`-M{{ x }}`, `--require={{ x }}`).
                if interpreter && t(n).starts_with('-') && t(n).contains(MARK) {
                    flagged = true;
                    mark(&mut out, n, format!("an option of `{name}`, read as code"));
                }
                if !t(n).starts_with('-') && !interpreter {
                    break;
                }
            }
            // `bash SCRIPT`: a script chosen by a value is code too.
            if c < direct
                && !flagged
                && name != "su"
                && name != "runuser"
                && let Some(&p) = rest.iter().find(|&&n| !t(n).starts_with('-'))
                && t(p).contains(MARK)
            {
                mark(&mut out, p, format!("the script that `{name}` runs"));
            }
        } else if PROGRAM_FIRST.contains(&name) {
            let mut r = 0;
            let mut program = false;
            while r < rest.len() {
                let w = t(rest[r]);
                if matches!(w, "-e" | "--expression" | "-f" | "--file") {
                    if let Some(&p) = rest.get(r + 1) {
                        mark(&mut out, p, format!("the program of `{name}`"));
                    }
                    program = true;
                    r += 2;
                } else if w.starts_with('-') && !w.contains(MARK) {
                    // awk's `-v name=value` and `-F sep` take a word, read as code.
                    if (w == "-v" || w == "-F") && name.ends_with("awk") {
                        if let Some(&p) = rest.get(r + 1) {
                            mark(&mut out, p, format!("an option of `{name}` read as code"));
                        }
                        r += 1;
                    }
                    r += 1;
                } else {
                    break;
                }
            }
            if !program && let Some(&p) = rest.get(r) {
                mark(&mut out, p, format!("the program of `{name}`"));
            }
        } else if SQL_CLIENTS.contains(&name) {
            for (r, &n) in rest.iter().enumerate() {
                let w = t(n);
                if matches!(w, "-c" | "-e" | "--command" | "--execute" | "-cmd") {
                    if let Some(&p) = rest.get(r + 1) {
                        mark(&mut out, p, format!("SQL text given to `{name}`"));
                    }
                } else if w.starts_with("--command=")
                    || w.starts_with("--execute=")
                    || (w.starts_with("-c") && w.len() > 2)
                {
                    mark(&mut out, n, format!("SQL text given to `{name}`"));
                }
            }
            if name == "sqlite3" || name == "duckdb" {
                // `sqlite3 DB SQL`: operands after the database.
                for &p in rest.iter().filter(|&&n| !t(n).starts_with('-')).skip(1) {
                    mark(&mut out, p, format!("SQL text given to `{name}`"));
                }
            }
        } else if REMOTE.contains(&name) {
            // Everything after the destination (ssh) or the options (watch, parallel).
            let mut r = 0;
            while r < rest.len() && t(rest[r]).starts_with('-') {
                let w = t(rest[r]);
                if w.contains(MARK) {
                    // `-oProxyCommand={{ x }}`: an option chosen by a value.
                    mark(&mut out, rest[r], format!("an option of `{name}`"));
                }
                let with_arg = name == "ssh" && w.len() == 2 && "bcDEeFIiJLlmOopQRSWw".contains(&w[1..]);
                if with_arg && let Some(&p) = rest.get(r + 1) {
                    // `-o ProxyCommand=...`, `-F config`, `-i key`: never from a value.
                    mark(&mut out, p, format!("the value of `{name} {w}`"));
                }
                r += if with_arg { 2 } else { 1 };
            }
            let from = if name == "ssh" { r + 1 } else { r };
            for &n in rest.iter().skip(from) {
                mark(&mut out, n, format!("a command line that `{name}` runs through a shell"));
            }
        }
    }
    out
}

/// Rules of builtins that read an argument as code or as a variable name.
fn builtin_rules(name: &str, rest: &[usize], words: &[Word], out: &mut [Option<String>]) {
    let t = |n: usize| words[n].text.as_str();
    let mut mark = |n: usize, why: String| {
        if out[n].is_none() {
            out[n] = Some(why);
        }
    };
    if CODE_BUILTINS.contains(&name) {
        for &n in rest {
            mark(n, format!("an argument of `{name}`, which runs it as code"));
        }
    } else if NAME_BUILTINS.contains(&name) {
        for &n in rest {
            mark(n, format!("an argument of `{name}`, a variable name"));
        }
    } else if DECLARE.contains(&name) {
        let typed = rest.iter().any(|&n| t(n).starts_with('-') && (t(n).contains('i') || t(n).contains('n')));
        for &n in rest {
            match t(n).find('=') {
                Some(eq) if !t(n)[..eq].contains(MARK) && !typed && code_assignment(t(n)).is_none() => {}
                _ if t(n).starts_with('-') && !t(n).contains(MARK) => {}
                _ => mark(n, format!("a declaration by `{name}`")),
            }
        }
    } else if name == "printf" {
        // `printf [-v NAME] FORMAT ARGS...`: the name and the format.
        let mut r = 0;
        while r < rest.len() {
            let w = t(rest[r]);
            if w == "-v" {
                if let Some(&n) = rest.get(r + 1) {
                    mark(n, "the variable of `printf -v`".into());
                }
                r += 2;
            } else if w == "--" {
                r += 1;
                break;
            } else if w.starts_with('-') && !w.contains(MARK) {
                r += 1;
            } else {
                break;
            }
        }
        if let Some(&n) = rest.get(r) {
            mark(n, "the format of `printf`".into());
        }
    } else if name == "test" || name == "[" {
        for r in 1..rest.len() {
            if t(rest[r - 1]) == "-v" {
                mark(rest[r], "a variable name (`-v`)".into());
            }
        }
    }
}

/// For each element of an argv (`cmd`, markers where templates are), why a program reads it
/// as code, if it does.
pub fn argv_code(argv: &[String]) -> Vec<Option<String>> {
    let words: Vec<Word> =
        argv.iter().map(|t| Word { text: t.clone(), sites: Vec::new(), redirect: false }).collect();
    let mut out = code_words(&words);
    // No shell reads a `cmd`: its builtins are not commands there.
    if let Some(first) = words.first()
        && (CODE_BUILTINS.contains(&first.text.as_str()) || NAME_BUILTINS.contains(&first.text.as_str()))
    {
        for o in out.iter_mut().skip(1) {
            *o = None;
        }
    }
    out
}

/// Commands whose words a value cannot turn into an option: bash parses the operators of
/// `[[ ]]` before it expands, and `case`, `for`, `select` take words, not options.
const NO_OPTIONS: [&str; 4] = ["[[", "case", "for", "select"];

/// For each word of a simple command, whether it is an argument of a program that may read
/// it as an option: every word after the command word (not a redirection, not an
/// assignment before the command), until a `--` that ends the options of that program. A
/// `--` after a prefix, launcher or shell (`sudo`, `kubectl exec p --`, `ssh`, `bash`) may
/// end only the options of the prefix, so it ends nothing here. `shell` is false for a
/// `cmd` array (no assignments, no redirections).
fn argument_words(words: &[Word], shell: bool) -> Vec<bool> {
    let mut out = vec![false; words.len()];
    let lead = if shell {
        words.iter().take_while(|w| !w.redirect && KEYWORDS.contains(&w.text.as_str())).count()
    } else {
        0
    };
    let args: Vec<usize> = (lead..words.len())
        .filter(|&n| !words[n].redirect)
        .skip_while(|&n| shell && is_assignment(&words[n].text))
        .collect();
    let Some(&first) = args.first() else { return out };
    if NO_OPTIONS.contains(&words[first].text.as_str()) {
        return out;
    }
    let mut launched = false;
    for &n in &args {
        let t = words[n].text.as_str();
        let name = base(t);
        launched |= PREFIXES.contains(&name)
            || LAUNCHERS.iter().any(|(p, _)| *p == name)
            || REMOTE.contains(&name)
            || SHELLS.contains(&name)
            || POSIX_SHELLS.contains(&name);
        if n == first {
            continue;
        }
        if t == "--" && !launched {
            break;
        }
        out[n] = true;
    }
    out
}

/// The variable a word begins with (`$x/y`, `${x}`), if any.
fn leading_variable(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('$')?;
    let rest = rest.strip_prefix('{').unwrap_or(rest);
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let name = &rest[..end];
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

/// How many markers a word's text begins with, with nothing between them.
fn leading_markers(text: &str) -> usize {
    let mut rest = text;
    let mut n = 0;
    while let Some(after) = rest.strip_prefix(MARK) {
        match after.find(MARK) {
            Some(end) if after[..end].bytes().all(|b| b.is_ascii_digit()) => {
                rest = &after[end + 1..];
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// For each element of an argv (`cmd`, markers where templates are), whether it begins
/// with a value and is an argument that the program may read as an option.
pub fn argv_options(argv: &[String]) -> Vec<bool> {
    let words: Vec<Word> =
        argv.iter().map(|t| Word { text: t.clone(), sites: Vec::new(), redirect: false }).collect();
    argument_words(&words, false).into_iter().zip(argv).map(|(a, t)| a && t.starts_with(MARK)).collect()
}

/// A number, negative or not (`-5`, `-0.25`, `-1e3`): as an option it can only be a count,
/// never a command, a file or a hook.
fn number(value: &str) -> bool {
    let v = value.strip_prefix('-').unwrap_or(value);
    let (mantissa, exponent) = match v.find(['e', 'E']) {
        Some(e) => (&v[..e], Some(v[e + 1..].trim_start_matches(['+', '-']))),
        None => (v, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(int) && digits(frac) && exponent.is_none_or(digits)
}

/// Why a value that begins an argument may not stand there: it starts with `-` (and is not
/// a number), so the program would read it as an option (`--upload-pack=CMD`,
/// `-oProxyCommand=CMD`, `--output=FILE`, `-rf`).
pub fn option_value(value: &str) -> Option<String> {
    (value.starts_with('-') && !number(value)).then(|| {
        format!(
            "`{}` starts with `-` and stands as a whole argument, where the program would read it as an option",
            value.chars().take(60).collect::<String>().escape_debug()
        )
    })
}

/// The one-letter options of a prefix command that take a word.
fn prefix_option_arg(prefix: &str) -> &'static str {
    match prefix {
        "sudo" => "uUgCDhpRrT",
        "doas" => "uC",
        "xargs" => "nLPsdEIal",
        "timeout" => "sk",
        "nice" => "n",
        "env" => "uC",
        "exec" => "a",
        "ionice" => "cnp",
        "chrt" => "p",
        "taskset" => "pc",
        "nsenter" => "tSG",
        "unshare" => "",
        "stdbuf" => "ioe",
        _ => "",
    }
}

/// `NAME=...` or `NAME+=...` (NAME possibly with a subscript).
fn is_assignment(t: &str) -> bool {
    let Some(eq) = t.find('=') else { return false };
    let name = t[..eq].trim_end_matches('+');
    let name = name.split('[').next().unwrap_or("");
    !name.is_empty()
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The base name of a command word (`/usr/bin/bash` → `bash`).
fn base(t: &str) -> &str {
    t.rsplit('/').next().unwrap_or(t)
}

/// A value that cannot be code in any context: non-empty, made of letters, digits and
/// `_.,:/@%+=-`, not starting with `-`.
pub fn inert(value: &str) -> bool {
    !value.is_empty()
        && !value.starts_with('-')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "_.,:/@%+=-".contains(c))
}

/// The name of the variable that carries value number `n` (from 1).
pub fn var(n: usize) -> String {
    format!("RB_{n}")
}

/// Defence in depth, independent of the lexer: a value that bash would run if it ever
/// evaluated it as an arithmetic expression or a variable name (a subscript holding an
/// expansion: `a[$(cmd)]`, `` x[`cmd`] ``, `a[${x@P}]`, `a[$[..]]`, `a[$v]`), whatever
/// the context the lexer found. Bash runs an expansion in a value only inside a subscript
/// (`[` ... `$`/backquote), so text without that shape is inert there. Returns the reason.
pub fn evaluable(value: &str) -> Option<&'static str> {
    let open = value.find('[')?;
    let after = &value[open..];
    let b = after.as_bytes();
    let expansion = b.iter().enumerate().any(|(i, &c)| {
        c == b'`'
            || (c == b'$'
                && b.get(i + 1).is_some_and(|&n| {
                    n == b'(' || n == b'{' || n == b'[' || n.is_ascii_alphabetic() || n == b'_'
                }))
    });
    expansion.then_some("a subscript with an expansion (`[` then `$(`, `${`, `$[`, `$name` or a backquote)")
}

/// Write the script that runs: assignments of the values at the top, references where the
/// markers were. An error names the first value that may not stand where it is.
///
/// `placeholders[n]` is true when value `n` is a plan's placeholder (`<output:a.n>`), not a
/// value: where only an inert literal may stand, it is shown as it is (a plan runs nothing;
/// the run binds the real value, which must then be inert).
/// Every value is refused if [`evaluable`].
pub fn bind(text: &str, values: &[String], placeholders: &[bool]) -> Result<String, String> {
    if !text.contains(MARK) {
        return Ok(text.to_string());
    }
    let mut sites = contexts(text)?;
    sites.sort_by_key(|s| s.at);
    // Values are written in order, each once: anything else means that text holding
    // markers was transformed (a `{% filter %}` block), and no marker can be trusted.
    if !sites.iter().map(|s| s.index).eq(0..values.len()) {
        return Err("a value in `run` text was transformed as text (by a `{% filter %}` block?); apply filters to the value instead: `{{ x | upper }}`".into());
    }
    // (value, variable) in order of first use; equal values share one variable.
    let mut names: Vec<(&str, String)> = Vec::new();
    let mut by_value: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    // The word of the last value that begins an argument, and whether every value of it so
    // far was empty.
    let mut group: Option<(usize, bool)> = None;
    for s in &sites {
        let Some(value) = values.get(s.index) else { return Err("a marker without a value".into()) };
        out.push_str(&text[last..s.at]);
        last = s.at + marker(s.index).len();
        let mut name = || match by_value.get(value.as_str()) {
            Some(&k) => names[k].1.clone(),
            None => {
                let n = var(names.len() + 1);
                by_value.insert(value.as_str(), names.len());
                names.push((value.as_str(), n.clone()));
                n
            }
        };
        if !placeholders.get(s.index).copied().unwrap_or(false)
            && let Some(why) = evaluable(value)
        {
            return Err(format!(
                "`{}` holds {why}: bash would run it wherever it evaluates the value (arithmetic, a `-v` test, a nameref), and the script cannot be proven free of such places; give the parameter a `pattern` or an `enum` that excludes it",
                value.chars().take(60).collect::<String>()
            ));
        }
        // The values that begin an argument: the first, and those after empty ones.
        let first = match (s.argument, group) {
            (Some(g), Some((h, empty))) if g == h => empty,
            (Some(_), _) => true,
            (None, _) => false,
        };
        group = s.argument.map(|g| {
            let before = match group {
                Some((h, empty)) if h == g => empty,
                _ => true,
            };
            (g, before && value.is_empty())
        });
        if first
            && !placeholders.get(s.index).copied().unwrap_or(false)
            && let Some(why) = option_value(value)
        {
            return Err(format!(
                "{why}; write `-- {{{{ x }}}}` where the program accepts `--`, glue the value to its option (`--remote={{{{ x }}}}`), or give the parameter a `pattern` that refuses a leading `-`"
            ));
        }
        match &s.context {
            Where::Word => out.push_str(&format!("\"${}\"", name())),
            Where::Expanded => out.push_str(&format!("${{{}}}", name())),
            Where::Quoted(_) | Where::Code(_) if placeholders.get(s.index).copied().unwrap_or(false) => {
                out.push_str(value);
            }
            Where::Quoted(what) => {
                // Nothing expands there: only an inert literal may be written as it is.
                if !inert(value) {
                    return Err(format!(
                        "a value inside {what} cannot be bound: remove the quotes around the template"
                    ));
                }
                out.push_str(value);
            }
            Where::Code(why) => {
                if !inert(value) {
                    return Err(format!(
                        "`{}` stands in {why}, where the shell reads a value as code; only a value of letters, digits and `_.,:/@%+=-` may stand there",
                        value.chars().take(60).collect::<String>()
                    ));
                }
                out.push_str(value);
            }
        }
    }
    out.push_str(&text[last..]);
    if names.is_empty() {
        return Ok(out);
    }
    let mut script = String::new();
    for (value, name) in &names {
        script.push_str(&format!("{name}={}\n", crate::template::shell_quote(value)));
    }
    script.push_str(&out);
    Ok(script)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// Any text, markers or not, is lexed and bound without a panic or a hang.
        #[test]
        fn any_text_is_lexed_without_panic(
            parts in proptest::collection::vec(prop_oneof![
                Just("'".to_string()), Just("\"".to_string()), Just("\\".to_string()), Just("$(".to_string()),
                Just("$((".to_string()), Just("${".to_string()), Just("`".to_string()), Just("(".to_string()),
                Just(")".to_string()), Just("}".to_string()), Just("<<EOF\n".to_string()), Just("<<'E'\n".to_string()),
                Just("\nEOF\n".to_string()), Just("#".to_string()), Just("\n".to_string()), Just(" ".to_string()),
                Just(";;".to_string()), Just("case x in".to_string()), Just("esac".to_string()), Just("[[".to_string()),
                Just("]]".to_string()), Just("-lt".to_string()), Just("eval".to_string()), Just("bash -c".to_string()),
                Just("a=(".to_string()), Just("$'".to_string()), Just("é".to_string()), Just("\0".to_string()),
                Just(marker(0)), Just(marker(1)), Just("\u{0}9".to_string()), "[ -~]{0,4}",
            ], 0..40),
        ) {
            let text = parts.concat();
            let _ = contexts(&text);
            let _ = bind(&text, &["a'b".to_string(), "$(x)".to_string()], &[false, true]);
        }
    }

    fn ctx(text: &str) -> Vec<Where> {
        let t = text.replace("@", &marker(0));
        let mut s = contexts(&t).unwrap_or_default();
        s.sort_by_key(|s| s.at);
        s.into_iter().map(|s| s.context).collect()
    }

    fn is_code(text: &str) -> bool {
        let c = ctx(text);
        !c.is_empty() && c.iter().all(|w| matches!(w, Where::Code(_)))
    }

    #[test]
    fn plain_words_are_words() {
        for t in [
            "echo @",
            "x=@",
            "echo a@b > @",
            "cat <<< @",
            "f() { echo @; }",
            "(echo @)",
            "echo $(echo @)",
            "a=(1 @ 2)",
            "case @ in x) echo @;; esac",
            "[[ @ == x ]]",
            "[ @ -lt 3 ]",
            "printf '%s' @",
            "# @",
            "bash -c 'echo $1' _ @",
            "ssh @ uptime",
            "declare x=@",
            "for i in @; do echo $i; done",
        ] {
            let c = ctx(t);
            assert!(!c.is_empty() && c.iter().all(|w| *w == Where::Word), "{t}: {c:?}");
        }
    }

    #[test]
    fn expanded_places() {
        for t in ["echo \"a @ b\"", "cat <<EOF\nx @\nEOF\n", "cat <<-EOF\n\tx @\n\tEOF\n"] {
            assert_eq!(ctx(t), vec![Where::Expanded], "{t}");
        }
    }

    #[test]
    fn quoted_places() {
        for t in ["echo '@'", "echo $'@'", "cat <<'EOF'\n@\nEOF\n", "cat <<\"EOF\"\n@\nEOF\n"] {
            assert!(matches!(ctx(t).as_slice(), [Where::Quoted(_)]), "{t}: {:?}", ctx(t));
        }
    }

    #[test]
    fn code_places() {
        for t in [
            "(( x = @ ))",
            "echo $(( @ + 1 ))",
            "[[ 3 -lt @ ]]",
            "[[ @ -eq 1 ]]",
            "let x=@",
            "a[@]=1",
            "echo ${a[@]}",
            "echo ${x:-@}",
            "eval @",
            "eval \"echo @\"",
            "bash -c @",
            "sh -ec \"echo @\"",
            "sudo bash -c @",
            "trap @ EXIT",
            "printf @",
            "printf -v @ x",
            "read @",
            "unset @",
            "declare @=1",
            "local -i x=@",
            "ssh host @",
            "su -c @ root",
            "xargs sh -c @",
            "find . -exec sh -c @ \\;",
            "echo `echo @`",
            "python3 -c @",
            "awk @ file",
            "sed -e @",
            "psql -c @",
            "sqlite3 db @",
            "test -v @",
            "[[ -v @ ]]",
            "cat <<EOF\n$(echo @)\nEOF\n",
            "eval \"$(echo @)\"",
            "watch @",
            "PATH=@ make",
            "export LD_PRELOAD=@",
            "env GIT_SSH_COMMAND=@ git fetch",
            "PS4=@",
            "fc -e @",
            "declare -i n; n=@",
            "f() { local -i n; n+=@; }",
            "time (( @ ))",
            "source @",
            ". @",
            "@ arg",
        ] {
            assert!(is_code(t), "{t}: {:?}", ctx(t));
        }
    }

    #[test]
    fn unclosed_scripts_are_refused() {
        for t in [
            "echo \"@",
            "echo $(echo @",
            "echo $(( @",
            "echo ${x:-@",
            "echo `@",
            "( echo @",
            "echo \\@",
            "echo \"\\@\"",
            "cat <<EOF\n\\@\nEOF\n",
        ] {
            let t = t.replace('@', &marker(0));
            assert!(contexts(&t).is_err(), "{t:?}");
        }
    }

    #[test]
    fn bind_assigns_and_references() {
        let text = format!("echo {} \"x {}\" {}", marker(0), marker(1), marker(2));
        let out = bind(&text, &["it's".into(), "b c".into(), "it's".into()], &[]);
        assert_eq!(out.as_deref(), Ok("RB_1='it'\\''s'\nRB_2='b c'\necho \"$RB_1\" \"x ${RB_2}\" \"$RB_1\""));
        assert!(bind(&format!("(( {} ))", marker(0)), &["a[$(id)]".into()], &[]).is_err());
        assert_eq!(bind(&format!("(( {} ))", marker(0)), &["42".into()], &[]).as_deref(), Ok("(( 42 ))"));
        // A plan's placeholder is shown where a value would have to be inert.
        assert_eq!(
            bind(&format!("(( {} ))", marker(0)), &["<output:a.n>".into()], &[true]).as_deref(),
            Ok("(( <output:a.n> ))")
        );
        // Markers out of order or repeated: text holding them was transformed.
        assert!(bind(&format!("echo {} {}", marker(1), marker(0)), &["a".into(), "b".into()], &[]).is_err());
        assert!(bind(&format!("echo {} {}", marker(0), marker(0)), &["a".into(), "b".into()], &[]).is_err());
    }
}

#[cfg(test)]
mod scale {
    use super::*;

    /// Large and deeply nested scripts are lexed (linearly: no blow-up on any input) and
    /// still place their values right.
    #[test]
    fn large_scripts_are_lexed() {
        let word = |text: &str| contexts(text).map(|s| s.into_iter().map(|s| s.context).collect::<Vec<_>>());
        let words = format!("echo {}{}\n", "a ".repeat(200_000), marker(0));
        assert_eq!(word(&words), Ok(vec![Where::Word]));
        let many = format!("{}eval {}", "x=1; ".repeat(50_000), marker(0));
        assert!(matches!(word(&many).as_deref(), Ok([Where::Code(_)])));
        let nested = format!("echo {}{}{}", "$(echo ".repeat(20_000), marker(0), ")".repeat(20_000));
        assert_eq!(word(&nested), Ok(vec![Where::Word]));
        let quotes = format!("{}'{}'", "'a' \"b\" ".repeat(50_000), marker(0));
        assert!(matches!(word(&quotes).as_deref(), Ok([Where::Quoted(_)])));
    }

    fn bound(text: &str, values: &[&str]) -> Result<String, String> {
        let mut t = text.to_string();
        for k in 0..values.len() {
            t = t.replacen('@', &marker(k), 1);
        }
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        bind(&t, &values, &vec![false; values.len()])
    }

    #[test]
    fn a_value_that_begins_an_argument_is_not_an_option() {
        for t in [
            "git ls-remote @",
            "git ls-remote \"@\"",
            "git -C @ fetch",
            "sudo -- git fetch @",
            "env X=1 git fetch @",
            "a | git fetch @",
            "f @",
            "echo ok; cd @",
            "test -n @",
        ] {
            let e = bound(t, &["--upload-pack=x"]).expect_err(t);
            assert!(e.contains("starts with `-`"), "{t}: {e}");
        }
        // Through a variable that begins with the value.
        for t in [
            "x=@; git fetch \"$x\"",
            "x=@/y; git fetch ${x}",
            "local d=@; tar -xf \"$d/a\"",
            "x=@; f(){ :; }; f $x",
        ] {
            assert!(bound(t, &["--upload-pack=x"]).is_err(), "{t}");
        }
        for t in [
            "x=@; git fetch -- \"$x\"",
            "x=a@; git fetch \"$x\"",
            "x=@; x=a; git fetch \"$x\"",
            "x=@; echo ok > \"$x\"",
            "x=@; git fetch \"a$x\"",
        ] {
            assert!(bound(t, &["--upload-pack=x"]).is_ok(), "{t}");
        }
        // After empty values in the same word; not after a non-empty one.
        assert!(bound("git fetch @@", &["", "--x"]).is_err());
        assert!(bound("git fetch \"@\"@", &["", "--x"]).is_err());
        assert!(bound("git fetch @@", &["a", "--x"]).is_ok());
        for t in [
            "git ls-remote -- @",
            "git --git-dir=@",
            "git -C@ fetch",
            "git fetch refs/@",
            "x=@",
            "export X=@",
            "git fetch > @",
            "[[ @ == x ]]",
            "case @ in *) ;; esac",
            "for i in @; do :; done",
            "# git fetch @",
            "cat <<EOF\n@\nEOF",
            "X=@ git fetch",
        ] {
            assert!(bound(t, &["--upload-pack=x"]).is_ok(), "{t}");
        }
        for n in ["-5", "-0.25", "-1e3", "-2E+4", "5"] {
            assert!(bound("head -n @", &[n]).is_ok(), "{n}");
        }
        for v in ["-", "--", "-e", "-5x", "-1e", "-.5", "-1.", "--5"] {
            assert!(bound("head @", &[v]).is_err(), "{v}");
        }
    }

    #[test]
    fn argv_options_follow_the_double_dash_of_the_program_only() {
        let argv =
            |a: &[&str]| argv_options(&a.iter().map(|s| s.replace('@', &marker(0))).collect::<Vec<_>>());
        assert_eq!(argv(&["git", "ls-remote", "@"]), [false, false, true]);
        assert_eq!(argv(&["git", "--", "@"]), [false, false, false]);
        assert_eq!(argv(&["git", "--remote=@", "x@"]), [false, false, false]);
        assert_eq!(argv(&["sudo", "--", "git", "@"]), [false, false, false, true]);
        assert_eq!(argv(&["@", "x"]), [false, false]);
    }
}
