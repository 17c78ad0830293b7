//! Diagnostics: every problem the core finds, with a stable code, a place in a file and a hint.
//!
//! The core only collects diagnostics; rendering them (carets, colours, JSON) is the CLI's
//! job. Codes are stable: tests, scripts and the book refer to them. Wording may improve.

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::span::Span;

/// One source file: its display path and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user gave it (or as resolved from an include), for messages.
    pub path: String,
    /// The whole text; for a TOML file ([`Source::toml`]) its line ends normalised: every
    /// CRLF read as LF (TOML reads both as a line break, so only multi-line strings change:
    /// a script of a file saved on Windows runs with LF line ends, as on Linux).
    pub text: String,
    /// The file as read, when normalising changed it: what a pinned plan hashes.
    read: Option<String>,
    /// Byte offsets where lines start, computed on first use: thousands of diagnostics in a
    /// big file each find their line in O(log n), not by a scan from the start.
    lines: OnceLock<Vec<usize>>,
}

impl PartialEq for Source {
    fn eq(&self, other: &Source) -> bool {
        self.path == other.path && self.text == other.text
    }
}

impl Eq for Source {}

impl Source {
    /// A new shared source, its text as given.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source { path: path.into(), text: text.into(), read: None, lines: OnceLock::new() })
    }

    /// A TOML file as read (a runbook, an include, a params file): CRLF line ends are read
    /// as LF (see [`Source::text`]); [`Source::file_text`] keeps the bytes for hashes.
    pub fn toml(path: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        let text: String = text.into();
        if !text.contains("\r\n") {
            return Source::new(path, text);
        }
        Arc::new(Source {
            path: path.into(),
            text: text.replace("\r\n", "\n"),
            read: Some(text),
            lines: OnceLock::new(),
        })
    }

    /// The file's text as read, before line ends were normalised: what its hash is of.
    pub fn file_text(&self) -> &str {
        self.read.as_deref().unwrap_or(&self.text)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let starts = self.lines.get_or_init(|| {
            std::iter::once(0).chain(self.text.match_indices('\n').map(|(i, _)| i + 1)).collect()
        });
        // The last line start at or before the offset.
        let line = starts.partition_point(|&s| s <= offset);
        let line_start = starts[line.saturating_sub(1)];
        let col = self.text[line_start..offset].chars().count() + 1;
        (line.max(1), col)
    }

    /// The text of a 1-based line (without its newline), if the file has that line.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        let _ = self.line_col(0);
        let starts = self.lines.get()?;
        let start = *starts.get(line.checked_sub(1)?)?;
        let end = starts.get(line).map_or(self.text.len(), |&next| next - 1);
        self.text.get(start..end)
    }

    /// The text under a span, if the span is inside the file.
    pub fn slice(&self, span: Span) -> Option<&str> {
        self.text.get(span.start..span.end)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

macro_rules! codes {
    ($($variant:ident = $num:literal, $slug:literal, $summary:literal;)*) => {
        /// The stable code of a diagnostic. The book has one section per code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = $summary] $variant,)*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as written in messages, e.g. `RB022`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => concat!("RB", $num),)* }
            }

            /// A short kebab-case name, e.g. `cycle`.
            pub fn slug(self) -> &'static str {
                match self { $(Code::$variant => $slug,)* }
            }

            /// One sentence saying what the code is about.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    Io = "000", "io-error", "A file cannot be read.";
    TomlSyntax = "001", "toml-syntax", "The file is not valid TOML.";
    UnknownKey = "002", "unknown-key", "A key that the format does not have.";
    WrongType = "003", "wrong-type", "A value of the wrong type for its key.";
    MissingKey = "004", "missing-key", "A required key is missing.";
    StepKind = "010", "step-kind", "A step, precondition or compensation needs exactly one kind.";
    ExactlyOneOf = "011", "exactly-one-of", "A table needs exactly one of some keys.";
    InvalidId = "012", "invalid-id", "An id or name does not match its pattern.";
    DuplicateId = "013", "duplicate-id", "The same id is used twice.";
    MisplacedKey = "014", "misplaced-key", "A key that is not allowed where it is written.";
    UnknownNeed = "020", "unknown-need", "`needs` names a step that does not exist.";
    SelfNeed = "021", "self-need", "A step needs itself.";
    Cycle = "022", "cycle", "The needs of some steps form a cycle.";
    NeedsAcross = "023", "needs-across", "A need crosses between `steps` and `finally`.";
    InvalidDuration = "030", "invalid-duration", "A duration that does not parse.";
    InvalidRange = "031", "invalid-range", "An estimate range that does not parse or is reversed.";
    InvalidRetry = "032", "invalid-retry", "A retry policy that cannot work.";
    InvalidValue = "033", "invalid-value", "A value outside its allowed range.";
    TemplateSyntax = "040", "template-syntax", "A template that does not parse.";
    UndeclaredReference = "041", "undeclared-reference", "A template names something that is not declared.";
    OutputNotAncestor = "042", "output-not-ancestor", "A step uses the output of a step that is not among its ancestors.";
    InvalidExpression = "043", "invalid-expression", "A `when` or `assert` expression that does not compile.";
    SecretExposed = "044", "secret-exposed", "A secret used where it would be shown or stored.";
    TemplateInQuotes = "045", "template-in-quotes", "A template inside single quotes or a quoted heredoc in `run` text, where a value cannot expand.";
    UnsafeRaw = "046", "unsafe-raw", "A warning: `unsafe_raw` writes a value into `run` text as shell code.";
    ShellCodeContext = "047", "shell-code-context", "A template where the shell or a program reads the value as code (arithmetic, `eval`, `bash -c`...), for a value whose type does not make it inert.";
    QuotingOff = "048", "quoting-off", "`{% autoescape %}` in `run` text, which would turn the binding of values off.";
    TemplateLimit = "049", "template-limit", "A template or expression nested too deeply or too long to compile safely.";
    UnknownLogic = "058", "unknown-logic", "`run` text that branches or computes (`{% if %}`, a filter...) on a value the plan cannot know: a step output, an approval input, a secret.";
    OptionValue = "059", "option-value", "A parameter whose `default` or `enum` starts with `-`, used where a program would read it as an option (a whole argument, before `--`).";
    InvalidDefault = "050", "invalid-default", "A parameter default that violates its own declaration.";
    InvalidParam = "051", "invalid-param", "A parameter declaration that cannot work.";
    IncludeMissing = "060", "include-missing", "An included runbook file cannot be read.";
    IncludeInvalid = "061", "include-invalid", "An included runbook is not valid.";
    IncludeCycle = "062", "include-cycle", "Runbooks include each other.";
    IncludeParams = "063", "include-params", "An include passes an unknown parameter or misses a required one.";
    IncludeRefused = "064", "include-refused", "An included file is not a runbook, or lives where includes may not.";
    IncludeSize = "065", "include-size", "A runbook has more steps than the limit once its includes are expanded.";
    FileOutside = "066", "file-outside", "A file a runbook reads as content (a `sql.file` script, an `http.ca-file`) is outside the runbook's folder, or is not a regular file.";
    MissingParam = "070", "missing-param", "A required parameter was not given.";
    InvalidParamValue = "071", "invalid-param-value", "A parameter value does not fit its declaration.";
    UnknownParam = "072", "unknown-param", "A parameter that the runbook does not declare.";
    ReportReference = "080", "report-reference", "A `[report]` entry names a step or an output that does not exist.";
    PreconditionWrites = "081", "precondition-writes", "A warning: a `run`/`cmd` precondition that visibly changes something (preconditions only read).";
    PreconditionMethod = "082", "precondition-method", "An `http` precondition with a method other than GET or HEAD (preconditions only read).";
    Preflight = "090", "preflight", "A run cannot start: every missing parameter, secret, file and `--yes` it needs, reported in one answer.";
    SecretFileRead = "056", "secret-file-read", "A file that is a secret's source is also read as something else (a SQL script, a CA file, a runbook, a params file).";
    SecretTransformed = "057", "secret-transformed", "A template computes something from a secret (a filter, slice, test, loop...): only its plain value can be hidden.";
    ScheduleCron = "100", "schedule-cron", "A schedule's cron expression that does not parse, or that has other than five fields.";
    ScheduleTimeZone = "101", "schedule-time-zone", "A schedule's `time-zone` that is not an IANA time zone name.";
    ScheduleRunbook = "102", "schedule-runbook", "A schedule's runbook or params file that is not a relative path inside the schedules file's tree, cannot be read, or is not a valid runbook for its parameters.";
    SchedulePolicy = "103", "schedule-policy", "A schedule's overlap, catch-up or dead-man's switch settings that cannot work.";
    ScheduleChanged = "104", "schedule-changed", "A file a schedule's pinned plan reads (its runbook, included runbooks, params file, scripts) changed since the worker started: the fire is refused.";
    ScheduleCount = "105", "schedule-count", "A schedules file holds more schedules than the limit.";
    ForEachNotList = "110", "for-each-not-list", "A step's `for-each` names a parameter that is not a `list`.";
    ForEachMissing = "111", "for-each-missing", "A step's `for-each` names a parameter the runbook does not declare.";
    ForEachParallel = "112", "for-each-parallel", "A step's `max-parallel` below 1 or above the limit, or without `for-each`.";
    ItemOutside = "113", "item-outside", "A template reads `item` or `item_index` outside a `for-each` step.";
    ForEachOutputs = "114", "for-each-outputs", "A step or a `[report]` fact reads the outputs of a `for-each` step, which has one set per instance.";
    ListInTemplate = "115", "list-in-template", "A template reads a `list` parameter, which only `for-each` reads.";
    ListParam = "116", "list-param", "A `list` parameter's declaration that cannot work: `items` without `type = \"list\"`, a list where only scalars go, or a default whose elements cannot name step instances.";
    ForEachInclude = "117", "for-each-include", "`for-each` on a `runbook` step whose `params` never pass the element.";
    ForEachContinue = "118", "for-each-continue", "`on-failure = \"continue\"` on a `for-each` step with `max-parallel`.";
    ForEachSize = "119", "for-each-size", "With the lists given, the expanded runbook would have more steps or `needs` than the limits, or a `for-each` list is empty.";
    NewName = "120", "new-name", "`runbook new NAME`: NAME is not a runbook name (it names the runbook and its files).";
    NewExists = "121", "new-exists", "`runbook new NAME`: a file it would write exists already; nothing was written.";
    PlanValues = "122", "plan-values", "A plan file (`run --plan`, `plan --diff`) holds more JSON values than a plan of the largest runbook would.";
    PlanKeys = "123", "plan-keys", "A plan file (`run --plan`, `plan --diff`) has a top-level key that no plan document has.";
    ForEachRunTime = "128", "for-each-run-time", "An include passes a value known only at run time (a step output, an approval input, a secret) to a parameter that decides the instances of a `for-each` step, at any depth.";
    FinallyConfirm = "129", "finally-confirm", "A `finally` step has `confirm`: it runs however the run ended, when nobody may be there to answer, and never asks.";
    NulInText = "130", "nul-in-text", "A key or string of the runbook holds a NUL character (`\\u0000`), which no command argument, environment value, header or terminal line can carry.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The runbook cannot run.
    Error,
    /// Suspicious but allowed.
    Warning,
}

/// A secondary place that explains the main one (e.g. where a duplicate was first defined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there.
    pub message: String,
}

/// One problem, pointing into one source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, lowercase, naming things in backticks.
    pub message: String,
    /// The file the spans point into.
    pub source: Arc<Source>,
    /// The main place.
    pub span: Span,
    /// Text shown under the caret of the main place.
    pub label: Option<String>,
    /// Other places that help explain.
    pub related: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error at `span` in `source`.
    pub fn error(code: Code, source: &Arc<Source>, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            source: Arc::clone(source),
            span,
            label: None,
            related: Vec::new(),
            help: None,
        }
    }

    /// A new warning: shown, never blocking.
    pub fn warning(code: Code, source: &Arc<Source>, span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, source, span, message) }
    }

    /// Set the text under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Set the text under the caret, in place.
    pub fn set_label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = Some(label.into());
        self
    }

    /// Add a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Add a hint if there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Add a secondary place.
    pub fn with_related(mut self, span: Span, message: impl Into<String>) -> Self {
        self.related.push(Label { span, message: message.into() });
        self
    }

    /// `path:line:col` of the main place.
    pub fn location(&self) -> String {
        let (line, col) = self.source.line_col(self.span.start);
        format!("{}:{}:{}", self.source.path, line, col)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: [{}] {}", self.location(), self.code, self.message)
    }
}

/// Sort diagnostics by file (in first-seen order) then position, and drop exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    let mut order: Vec<String> = Vec::new();
    for d in diagnostics.iter() {
        if !order.contains(&d.source.path) {
            order.push(d.source.path.clone());
        }
    }
    let rank = |d: &Diagnostic| order.iter().position(|p| *p == d.source.path).unwrap_or(usize::MAX);
    diagnostics.sort_by(|a, b| {
        (rank(a), a.span.start, a.span.end, a.code).cmp(&(rank(b), b.span.start, b.span.end, b.code))
    });
    diagnostics.dedup_by(|a, b| {
        a.source.path == b.source.path && a.span == b.span && a.code == b.code && a.message == b.message
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let s = Source::new("f.toml", "a = 1\ntítulo = \"x\"\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        let pos = s.text.find('=').map(|_| s.text.rfind('=').unwrap_or(0)).unwrap_or(0);
        assert_eq!(s.line_col(pos), (2, 8));
    }

    #[test]
    fn codes_are_unique_and_formatted() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            assert!(c.as_str().starts_with("RB") && c.as_str().len() == 5);
        }
    }

    /// The line index gives what a scan from the start gives, at every offset of texts with
    /// multi-byte characters, empty lines and no final newline.
    #[test]
    fn line_col_matches_a_scan_from_the_start() {
        fn scan(text: &str, offset: usize) -> (usize, usize) {
            let offset = floor_char_boundary(text, offset.min(text.len()));
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            (line, text[start..offset].chars().count() + 1)
        }
        let pieces = ["a", "é", "\n", "", "日本", "\n\n", "x = 1", "\r\n", "🦀"];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let source = Source::toml("f", text.clone());
            // The index is of the text as read (CRLF normalised to LF), its file text kept.
            assert_eq!(source.file_text(), text);
            let text = text.replace("\r\n", "\n");
            assert_eq!(source.text, text);
            for offset in 0..=text.len() + 2 {
                assert_eq!(source.line_col(offset), scan(&text, offset), "{text:?} at {offset}");
            }
            for (n, line) in text.split('\n').enumerate() {
                assert_eq!(source.line_text(n + 1), Some(line), "{text:?} line {}", n + 1);
            }
        }
    }
}
