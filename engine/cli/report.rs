//! Rendering the core's diagnostics: miette for people, JSON for tools.

use std::fmt;
use std::io::IsTerminal;

use miette::{
    Diagnostic as MietteDiagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource,
    SourceCode,
};
use runbook_core::{Diagnostic, Severity};
use serde_json::json;

use crate::args::Color;

/// A core diagnostic wearing miette's traits.
struct Report<'d> {
    d: &'d Diagnostic,
    source: NamedSource<String>,
    /// False when a line to show is too long: no snippet, no labels (see [`MAX_SHOWN_LINE`]).
    snippet: bool,
}

/// The longest line shown under a diagnostic, in bytes. miette panics on a column past
/// 65,535, and a line of megabytes helps nobody: such a diagnostic is shown without its
/// snippet, with `path:line:col` and a note saying why.
const MAX_SHOWN_LINE: usize = 1_000;

/// Diagnostics past this many are shown without a snippet: finding a span's lines costs
/// miette a scan of the file, and thousands of snippets of one generated file would make
/// printing quadratic. Their first line still says `path:line:col`.
const MAX_SNIPPETS: usize = 200;

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for Report<'_> {}

impl MietteDiagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.d.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.snippet.then_some(&self.source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.snippet {
            return None;
        }
        let main =
            LabeledSpan::new_primary_with_span(self.d.label.clone(), (self.d.span.start, self.d.span.len()));
        let related = self
            .d
            .related
            .iter()
            .map(|l| LabeledSpan::new_with_span(Some(l.message.clone()), (l.span.start, l.span.len())));
        Some(Box::new(std::iter::once(main).chain(related)))
    }
}

/// Whether to colour output on standard error.
pub fn use_color(choice: Color) -> bool {
    color_on(choice, std::io::stderr().is_terminal())
}

/// Whether to colour a stream that is (or is not) a terminal: `--color always|never` says
/// so; `auto` colours a terminal unless `NO_COLOR` is set to anything but the empty string
/// (no-color.org).
pub fn color_on(choice: Color, terminal: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && terminal,
    }
}

/// Render diagnostics for people: `path:line:col`, the source line, a caret, code and hint.
pub fn human(diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_context_lines(1)
        .with_break_words(false);
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i == MAX_SNIPPETS {
            out.push_str(&format!(
                "(the first {MAX_SNIPPETS} problems are shown with their source; the other {} only by their first line)\n\n",
                diagnostics.len() - MAX_SNIPPETS
            ));
        }
        let long = long_line(d);
        // Every byte of the runbook shown goes through the terminal's escaping (red team
        // adv17b F7): the snippet's text, and each span moved by the escapes before it.
        let snippet = long.is_none() && i < MAX_SNIPPETS;
        // Only a diagnostic with a snippet needs its source (thousands of them stay linear).
        let shown = if snippet {
            Shown::of(&d.source.text)
        } else {
            Shown { text: String::new(), moved: Vec::new() }
        };
        // The message, labels and location are one line each (red team adv18a S4: a quoted
        // TOML key with CR/LF printed a forged "ok" line in the first line of a diagnostic);
        // the help stays indented under it, its line breaks kept.
        let one_line = runbook_core::shown::one_line;
        let safe = Diagnostic {
            message: one_line(&d.message),
            label: d.label.as_deref().map(one_line),
            help: d.help.as_deref().map(terminal),
            span: shown.span(d.span),
            related: d
                .related
                .iter()
                .map(|l| runbook_core::diagnostic::Label {
                    message: one_line(&l.message),
                    span: shown.span(l.span),
                })
                .collect(),
            ..d.clone()
        };
        let location = one_line(&d.location());
        let d = &safe;
        let report = Report { d, source: NamedSource::new(terminal(&d.source.path), shown.text), snippet };
        // The first line is greppable on its own: `path:line:col: error[RB022]: message`.
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{}: {kind}[{}]: {}\n", location, d.code, d.message));
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("  {}\n", d.message));
        }
        if let Some((line, len)) = long {
            out.push_str(&format!(
                "  (line {line} is {len} bytes long: too long to show; the column above is exact)\n"
            ));
        }
        out.push('\n');
    }
    out
}

/// Text as a terminal may receive it: line breaks and tabs kept (a CR only before a line
/// feed), every other control character (C0, DEL, C1: ESC among them) and every character
/// [`runbook_core::shown::unnameable`] names (bidi controls, zero-width, private-use...)
/// replaced by its visible escape (`\u{1b}`, `\u{202e}`), as
/// [`runbook_core::shown::one_line`] shows values.
fn terminal(text: &str) -> String {
    Shown::of(text).text
}

/// A source text with its control characters escaped ([`terminal`]), and where each
/// escape moved the bytes after it, so a span of the original points at the same
/// characters in the escaped text.
struct Shown {
    text: String,
    /// (byte offset in the original just after an escaped character, bytes added so far).
    moved: Vec<(usize, usize)>,
}

impl Shown {
    fn of(original: &str) -> Shown {
        // Controls, and every invisible, format (bidi controls, zero-width: Trojan Source),
        // private-use, unassigned or default-ignorable character: `shown::unnameable`, the
        // predicate that refuses them in names.
        let bad = |c: char, next: Option<char>| {
            c != '\n'
                && c != '\t'
                && !(c == '\r' && next == Some('\n'))
                && (c.is_control() || (!c.is_ascii() && runbook_core::shown::unnameable(c)))
        };
        let mut chars = original.char_indices().peekable();
        if original.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t') {
            return Shown { text: original.to_string(), moved: Vec::new() };
        }
        let mut text = String::with_capacity(original.len() + 16);
        let mut moved = Vec::new();
        let mut added = 0;
        while let Some((i, c)) = chars.next() {
            if bad(c, chars.peek().map(|(_, n)| *n)) {
                let e = runbook_core::shown::escape(c);
                added += e.len() - c.len_utf8();
                text.push_str(&e);
                moved.push((i + c.len_utf8(), added));
            } else {
                text.push(c);
            }
        }
        Shown { text, moved }
    }

    /// Where byte `at` of the original is in the escaped text.
    fn at(&self, at: usize) -> usize {
        let n = self.moved.partition_point(|(end, _)| *end <= at);
        at + n.checked_sub(1).map_or(0, |k| self.moved[k].1)
    }

    fn span(&self, span: runbook_core::Span) -> runbook_core::Span {
        runbook_core::Span::new(self.at(span.start), self.at(span.end))
    }
}

/// The first line longer than [`MAX_SHOWN_LINE`] among those a diagnostic's snippet would
/// show (each label's lines and one line of context around them): its number and length.
fn long_line(d: &Diagnostic) -> Option<(usize, usize)> {
    let spans = std::iter::once(d.span).chain(d.related.iter().map(|l| l.span));
    for span in spans {
        let (first, _) = d.source.line_col(span.start);
        let (last, _) = d.source.line_col(span.end);
        for line in first.saturating_sub(1).max(1)..=last + 1 {
            if let Some(text) = d.source.line_text(line)
                && text.len() > MAX_SHOWN_LINE
            {
                return Some((line, text.len()));
            }
        }
    }
    None
}

/// Render diagnostics for tools: a JSON array.
pub fn json(diagnostics: &[Diagnostic]) -> String {
    let items: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|d| {
            let (line, column) = d.source.line_col(d.span.start);
            let (end_line, end_column) = d.source.line_col(d.span.end);
            json!({
                "code": d.code.as_str(),
                "slug": d.code.slug(),
                "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": d.message,
                "file": d.source.path,
                "line": line,
                "column": column,
                "end_line": end_line,
                "end_column": end_column,
                "label": d.label,
                "help": d.help,
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
}

/// `N problems in M files` (or nothing when there are none).
pub fn summary(diagnostics: &[Diagnostic]) -> Option<String> {
    let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    if errors == 0 {
        return None;
    }
    let mut files: Vec<&str> = diagnostics.iter().map(|d| d.source.path.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    let s = if errors == 1 { "" } else { "s" };
    let fs = if files.len() == 1 { "" } else { "s" };
    Some(format!("error: {errors} problem{s} in {} file{fs}; nothing was run", files.len()))
}
