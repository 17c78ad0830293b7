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
}

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
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
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
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
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
    for d in diagnostics {
        let report = Report { d, source: NamedSource::new(d.source.path.clone(), d.source.text.clone()) };
        // The first line is greppable on its own: `path:line:col: error[RB022]: message`.
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{}: {kind}[{}]: {}\n", d.location(), d.code, d.message));
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("  {}\n", d.message));
        }
        out.push('\n');
    }
    out
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
