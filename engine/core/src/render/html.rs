//! The review page: the review document as one self-contained HTML file (`plan --format
//! html`), and its body for the web console.
//!
//! A pure function of the plan, like every view, and the same facts as the markdown document:
//! both print the review model ([`super::review`]). Its rules (ARCHITECTURE.md, "The review
//! page"):
//! - self-contained: inline CSS, an inline SVG graph, no script, no URL of any kind, and a
//!   Content-Security-Policy that forbids every fetch and every script;
//! - text from the runbook reaches the page only through [`markup::Html::text`], the one
//!   escaping function: the page's buffer is private to [`markup`], and markup can only be
//!   added as `&'static str` (the engine's own tags), so no runbook text can become markup;
//! - every command is shown exactly, in a `<pre><code>`, invisible characters marked as the
//!   markdown document marks them ([`crate::shown::marked`]), with a note saying where.

use std::collections::BTreeMap;

use crate::model::format_duration;
use crate::plan::{Plan, PlanCheck, PlanCommand, PlanCompensation, PlanStep};

use super::review::{self, Phrase, Piece, Risks, changes, on_failure_short, skipped, total_bound};
use super::{argv_text, body_text, read_kind, retry_text, source_text};

/// The one place HTML is written.
mod markup {
    /// A page being written. Its buffer is private to this module: markup goes in only as
    /// `&'static str` ([`Html::tag`]), text only escaped ([`Html::text`]), numbers only as
    /// numbers ([`Html::num`]).
    pub struct Html {
        buf: String,
    }

    impl Html {
        pub fn new() -> Html {
            Html { buf: String::with_capacity(16 * 1024) }
        }

        /// The engine's own markup: a literal, never a value.
        pub fn tag(&mut self, markup: &'static str) -> &mut Html {
            self.buf.push_str(markup);
            self
        }

        /// Text, escaped for element content and double-quoted attribute values alike;
        /// invisible characters as visible escapes, then a note naming them.
        pub fn text(&mut self, s: &str) -> &mut Html {
            self.noted(crate::shown::marked(s))
        }

        /// A marked text, then the note naming what it marked.
        fn noted(&mut self, marked: crate::shown::Marked) -> &mut Html {
            escape_into(&mut self.buf, &marked.text);
            if !marked.replaced.is_empty() {
                self.buf.push_str(" (invisible characters shown as escapes: ");
                escape_into(&mut self.buf, &marked.names());
                self.buf.push(')');
            }
            self
        }

        /// The engine's own words of a phrase ([`super::review::Piece::Lit`], never a
        /// runbook's text: ` → `, a duration): escaped, not marked, as the markdown writes
        /// them.
        pub fn words(&mut self, s: &str) -> &mut Html {
            escape_into(&mut self.buf, s);
            self
        }

        /// A value drawn on one line (a confirm text): as [`Html::text`], its line breaks and
        /// tabs marked too.
        pub fn one_line(&mut self, s: &str) -> &mut Html {
            self.noted(crate::shown::marked_spans(s, &[(0..s.len(), crate::shown::Span::OneLine)]))
        }

        /// A value as inline code drawn on one line: as [`Html::text`], its line breaks and
        /// tabs marked too, the note after the code.
        pub fn code(&mut self, s: &str) -> &mut Html {
            let marked = crate::shown::marked_spans(s, &[(0..s.len(), crate::shown::Span::OneLine)]);
            self.buf.push_str("<code>");
            escape_into(&mut self.buf, &marked.text);
            self.buf.push_str("</code>");
            self.noted(crate::shown::Marked { text: String::new(), replaced: marked.replaced })
        }

        /// Prose (a title, a description, a precondition's message): as [`Html::text`], marked
        /// as prose ([`crate::shown::prose`]): the letters of its language stay.
        pub fn prose(&mut self, s: &str) -> &mut Html {
            self.noted(crate::shown::prose(s))
        }

        /// Text that must stay exactly as written but for its invisible characters (a
        /// command in a `<pre>`): escaped, no note (the caller writes it after the block).
        pub fn exact(&mut self, s: &str) -> &mut Html {
            escape_into(&mut self.buf, &crate::shown::marked(s).text);
            self
        }

        pub fn num(&mut self, n: i64) -> &mut Html {
            self.buf.push_str(&n.to_string());
            self
        }

        pub fn count(&mut self, n: usize) -> &mut Html {
            self.buf.push_str(&n.to_string());
            self
        }

        pub fn finish(self) -> String {
            self.buf
        }
    }

    /// The one escaping function: every character that could start or end markup, in
    /// element content or in a double- or single-quoted attribute, as an entity.
    fn escape_into(out: &mut String, s: &str) {
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
    }
}

use markup::Html;

/// The page's style sheet (inline: the page fetches nothing). The console shows
/// [`html_body`] with it.
pub const HTML_STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#212529;background:#fff}
.runbook-review{max-width:72rem;margin:0 auto;padding:1rem 2rem}
h1,h2,h3,h4,h5,h6{line-height:1.25}
code,pre{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;font-size:.9em}
code{background:#f1f3f5;padding:0 .2em;border-radius:3px;white-space:pre-wrap;overflow-wrap:anywhere}
pre{background:#f8f9fa;border:1px solid #dee2e6;border-radius:4px;padding:.6em .8em;overflow-x:auto;tab-size:4}
pre code{background:none;padding:0;white-space:break-spaces;overflow-wrap:anywhere}
blockquote{margin:0 0 1em;padding:.2em 1em;border-left:4px solid #dee2e6;color:#495057;white-space:pre-wrap}
table{border-collapse:collapse;margin:.5em 0;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #dee2e6;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f1f3f5}
section.step{border-top:1px solid #dee2e6;margin-top:1.5em}
.note{color:#495057;font-size:.9em}
svg.graph{max-width:100%;height:auto;border:1px solid #dee2e6;border-radius:4px}
svg.graph .node rect{fill:#f1f3f5;stroke:#868e96}
svg.graph .node.approval rect{fill:#fff3bf;stroke:#f08c00}
svg.graph .node.compensable rect{fill:#d3f9d8;stroke:#2f9e44}
svg.graph .node.irreversible rect{fill:#ffe3e3;stroke:#e03131}
svg.graph text{font-size:12px;font-family:ui-monospace,Menlo,Consolas,monospace}
svg.graph .edge{stroke:#495057;fill:none}
svg.graph .head{fill:#495057}
";

/// The review page: one self-contained HTML file.
pub fn html(plan: &Plan) -> String {
    let mut h = Html::new();
    h.tag("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.tag("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    h.tag("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Review of ");
    h.text(&plan.runbook.name);
    h.tag("</title>\n<style>").tag(HTML_STYLE).tag("</style>\n</head>\n<body>\n");
    body(&mut h, plan, Wrapper::Main, Quote::Scripts);
    h.tag("</body>\n</html>\n");
    h.finish()
}

/// The review document's body as markup, made by this module's writer alone: every text in
/// it went through [`Html::text`]. Nothing else can construct one, so the web console may
/// show it as markup (its one value not escaped again) without trusting a `String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewHtml(String);

impl ReviewHtml {
    /// The markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The markup, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// What of the files a runbook reads besides runbooks (`sql.file` scripts) the document
/// quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// Their text, as it will run (`plan --format html`: for the person at that terminal).
    Scripts,
    /// Nothing of their content: each is named with its SHA-256 and a note that `runbook
    /// plan` on the host quotes it. The web console shows pages to whoever reaches it, and
    /// a runbook may name any file the console's user can read (`creds.toml`, `/etc/passwd`).
    Digests,
}

/// The page's body alone (a `<section class="runbook-review">` element), for the web
/// console's own page, which has its own `<main>`; shown with [`HTML_STYLE`].
pub fn html_body(plan: &Plan, quote: Quote) -> ReviewHtml {
    let mut h = Html::new();
    body(&mut h, plan, Wrapper::Section, quote);
    ReviewHtml(h.finish())
}

/// The element around the document: the page's `<main>`, or a `<section>` in the console.
#[derive(Clone, Copy)]
enum Wrapper {
    Main,
    Section,
}

fn body(h: &mut Html, plan: &Plan, wrapper: Wrapper, quote: Quote) {
    let rb = &plan.runbook;
    h.tag(match wrapper {
        Wrapper::Main => "<main class=\"runbook-review\">\n",
        Wrapper::Section => "<section class=\"runbook-review\">\n",
    });
    h.tag("<h1>Review of <code>").text(&rb.name).tag("</code>");
    if let Some(t) = &rb.title {
        h.tag(": ").prose(t);
    }
    h.tag("</h1>\n");
    if let Some(d) = &rb.description {
        description(h, d);
    }
    let risks = Risks::of(plan);
    summary(h, plan, &risks);
    risk_section(h, plan, &risks);
    overview(h, plan);
    graph(h, plan);
    h.tag("<h2>Steps</h2>\n");
    let intro = "<h3>Preconditions (checked before any step; if one fails, nothing runs)</h3>\n";
    check_list(h, intro, &plan.preconditions, "");
    for s in plan.steps.iter().chain(plan.finally.iter()) {
        step_section(h, s, 3, "");
    }
    for r in &plan.reads {
        let Some(t) = &r.text else { continue };
        match quote {
            Quote::Scripts => {
                h.tag("<h3>SQL script <code>").text(&r.path).tag("</code>, as it will run</h3>\n");
                pre(h, t);
            }
            Quote::Digests => {
                h.tag("<h3>SQL script <code>").text(&r.path).tag("</code></h3>\n<p>SHA-256 ");
                code(h, &r.sha256);
                h.tag(". Its text is not shown here (this page is served to whoever reaches it): ")
                    .tag("<code>runbook plan</code> on this host quotes it as it will run.</p>\n");
            }
        }
    }
    h.tag("<footer class=\"note\"><p><em>Dry run by runbook ")
        .text(&plan.engine.version)
        .tag(": nothing was executed.</em></p></footer>\n")
        .tag(match wrapper {
            Wrapper::Main => "</main>\n",
            Wrapper::Section => "</section>\n",
        });
}

// ----- pieces --------------------------------------------------------------------------

fn phrase(h: &mut Html, p: &Phrase) {
    for piece in &p.0 {
        match piece {
            Piece::Lit(s) => {
                h.words(s);
            }
            Piece::Prose(s) => {
                h.prose(s);
            }
            Piece::Code(s) => {
                code(h, s);
            }
        }
    }
}

/// A description as a quote, line by line (the quote keeps its line breaks, `white-space:
/// pre-wrap`), each line prose: any other break is marked.
fn description(h: &mut Html, d: &str) {
    h.tag("<blockquote>");
    for (i, line) in d.trim_end().split('\n').enumerate() {
        if i > 0 {
            h.tag("\n");
        }
        h.prose(line);
    }
    h.tag("</blockquote>\n");
}

/// A value as inline code, on one line: its line breaks and tabs are marked too.
fn code(h: &mut Html, s: &str) {
    h.code(s);
}

fn ids(h: &mut Html, list: &[String]) {
    phrase(h, &review::ids(list));
}

/// A command's exact text: a `<pre><code>` block (one trailing line break dropped, as the
/// markdown fence does), then a note naming the invisible characters shown as escapes.
fn pre(h: &mut Html, text: &str) {
    let text = text.strip_suffix('\n').unwrap_or(text);
    h.tag("<pre><code>").exact(text).tag("</code></pre>\n");
    if let Some(note) = crate::shown::marked(text).note() {
        h.tag("<p class=\"note\">Invisible characters, shown above as escapes: ").text(&note).tag(".</p>\n");
    }
}

/// `<li>words <code>value</code></li>`.
fn li_code(h: &mut Html, words: &'static str, value: &str) {
    h.tag("<li>").tag(words);
    code(h, value);
    h.tag("</li>\n");
}

/// `<li><strong>label:</strong> ` (the caller writes the rest and `</li>`).
fn item(h: &mut Html, label: &'static str) {
    h.tag("<li><strong>").tag(label).tag(":</strong> ");
}

// ----- the summary ---------------------------------------------------------------------

fn summary(h: &mut Html, plan: &Plan, risks: &Risks) {
    let rb = &plan.runbook;
    h.tag("<section class=\"summary\">\n<h2>Summary</h2>\n<ul>\n");
    item(h, "File");
    code(h, &rb.file);
    if !plan.files.is_empty() || !plan.reads.is_empty() {
        h.tag("\n<ul>\n");
        for f in &plan.files {
            h.tag("<li>SHA-256 of ");
            code(h, &f.path);
            h.tag(": ");
            code(h, &f.sha256);
            h.tag("</li>\n");
        }
        for r in &plan.reads {
            h.tag("<li>reads (").text(read_kind(r.kind)).tag(") ");
            code(h, &r.path);
            h.tag(": SHA-256 ");
            code(h, &r.sha256);
            h.tag("</li>\n");
        }
        h.tag("</ul>\n");
    }
    h.tag("</li>\n");
    item(h, "Parameters");
    if plan.params.is_empty() {
        h.tag("none");
    }
    for (i, (k, v)) in plan.params.iter().enumerate() {
        if i > 0 {
            h.tag(", ");
        }
        code(h, k);
        h.tag(" = ");
        code(h, &super::markdown::value_text(v));
    }
    h.tag("</li>\n");
    item(h, "Lock");
    match &rb.lock {
        Some(l) => {
            code(h, l);
            h.tag(" (no other run holding it runs at the same time)");
        }
        None => {
            h.tag("none");
        }
    }
    h.tag("</li>\n");
    item(h, "Estimate");
    h.text(rb.estimate.as_deref().unwrap_or("none declared"));
    let cp = &plan.critical_path;
    if let Some(e) = &cp.estimate {
        h.tag("; critical path ");
        phrase(h, &review::path_text(&cp.steps));
        h.tag(" estimated ").text(e);
        if !cp.unestimated.is_empty() {
            h.tag(" (").count(cp.unestimated.len()).tag(" step(s) without estimate)");
        }
    }
    h.tag("</li>\n");
    item(h, "Worst case");
    phrase(h, &review::worst_text(plan));
    h.tag("</li>\n");
    if let Some(undo) = review::undo_text(plan) {
        item(h, "Undoing at worst");
        phrase(h, &undo);
        h.tag("</li>\n");
    }
    item(h, "Parallelism");
    match rb.max_parallel {
        Some(n) => h.num(i64::from(n)).tag(" steps at a time"),
        None => h.tag("number of CPUs"),
    };
    h.tag("</li>\n");
    let secrets = review::secrets(plan);
    if secrets.is_empty() {
        item(h, "Secrets");
        h.tag("none");
    } else {
        h.tag("<li><strong>Secrets</strong> (names only): ");
        for (i, (by, s)) in secrets.iter().enumerate() {
            if i > 0 {
                h.tag(", ");
            }
            code(h, &s.name);
            h.tag(" (").text(&source_text(&s.source));
            if !by.is_empty() {
                h.tag("; of the runbook included by ");
                code(h, by);
            }
            h.tag(")");
        }
    }
    h.tag("</li>\n");
    item(h, "Approvals");
    if risks.approvals.is_empty() {
        h.tag("none");
    } else {
        h.tag("\n<ul>\n");
        for (id, text) in &risks.approvals {
            h.tag("<li>");
            code(h, id);
            h.tag(": ");
            phrase(h, text);
            h.tag("</li>\n");
        }
        h.tag("</ul>\n");
    }
    h.tag("</li>\n");
    if risks.confirmations.is_empty() {
        item(h, "Confirmations");
        h.tag("none");
    } else {
        h.tag("<li><strong>Confirmations</strong> (the operator answers at the terminal):\n<ul>\n");
        for (id, text) in &risks.confirmations {
            h.tag("<li>");
            code(h, id);
            h.tag(": ").one_line(text).tag("</li>\n");
        }
        h.tag("</ul>\n");
    }
    h.tag("</li>\n");
    if !plan.escalations.is_empty() {
        item(h, "Escalations");
        h.tag("\n<ul>\n");
        for e in &plan.escalations {
            h.tag("<li>after ").text(&e.after).tag(": ");
            code(h, &e.id);
            h.tag(" to ");
            code(h, &e.webhook);
            h.tag(": ").text(&body_text(&e.body)).tag("</li>\n");
        }
        h.tag("</ul>\n</li>\n");
    }
    h.tag("</ul>\n</section>\n");
}

// ----- risks ---------------------------------------------------------------------------

fn risk_section(h: &mut Html, plan: &Plan, risks: &Risks) {
    h.tag("<section class=\"risks\">\n<h2>Risks</h2>\n<ul>\n");
    item(h, "Changes that nothing undoes");
    if risks.irreversible.is_empty() {
        h.tag("none");
    } else {
        ids(h, &risks.irreversible);
        h.tag(" (they may change something and have no compensation)");
    }
    h.tag("</li>\n");
    item(h, "Not idempotent");
    if risks.not_idempotent.is_empty() {
        h.tag("none");
    } else {
        phrase(h, &review::few_shown(&risks.not_idempotent));
        h.tag(" (if the engine dies while one runs, it waits for an operator's decision instead of running again)");
    }
    h.tag("</li>\n");
    if risks.no_return.is_empty() {
        item(h, "Point of no return");
        h.tag(if risks.any_compensable {
            "none (a failure of any step runs the compensations of the steps completed before it; the changes that nothing undoes stay as they are)"
        } else {
            "none (nothing in this runbook can be undone: a failure leaves every completed step as it is)"
        });
    } else if let [(id, lost)] = risks.no_return.as_slice() {
        item(h, "Point of no return");
        code(h, id);
        h.tag(": from there on, a failure stops instead of undoing ");
        phrase(h, lost);
    } else {
        h.tag("<li><strong>Points of no return</strong> (one on each branch):\n<ul>\n");
        for (id, lost) in &risks.no_return {
            h.tag("<li>");
            code(h, id);
            h.tag(": from there on, a failure stops instead of undoing ");
            phrase(h, lost);
            h.tag("</li>\n");
        }
        h.tag("</ul>\n");
    }
    h.tag("</li>\n</ul>\n<h3>What a failure at each wave undoes</h3>\n<table>\n<thead><tr><th>wave</th><th>step</th><th>if it fails</th><th>undoes, in order</th><th>left as it is</th></tr></thead>\n<tbody>\n");
    for s in plan.steps.iter().filter(|s| !skipped(s)) {
        h.tag("<tr><td>").count(s.wave).tag("</td><td>");
        code(h, &s.id);
        h.tag("</td><td>").tag(on_failure_short(s)).tag("</td><td>");
        if s.compensation_chain.is_empty() {
            h.tag("nothing");
        } else {
            phrase(h, &review::few_chain(&s.compensation_chain));
        }
        h.tag("</td><td>");
        match risks.kept.get(&s.id) {
            Some(p) if !p.is_empty() => phrase(h, p),
            _ => {
                h.tag("nothing");
            }
        }
        h.tag("</td></tr>\n");
    }
    h.tag("</tbody>\n</table>\n");
    if risks.any_compensable && plan.waves.iter().any(|w| w.len() > 1) {
        h.tag("<p>Steps of the same wave run in parallel: those that completed before the failure are undone too, if they have a compensation.</p>\n");
    }
    h.tag("</section>\n");
}

// ----- the overview table and the graph ------------------------------------------------

fn overview(h: &mut Html, plan: &Plan) {
    h.tag("<section class=\"order\">\n<h2>Order</h2>\n<table>\n<thead><tr><th>wave</th><th>step</th><th>kind</th><th>needs</th><th>timeout</th><th>retry</th><th>idempotent</th><th>undo</th><th>on failure</th></tr></thead>\n<tbody>\n");
    for s in plan.steps.iter().chain(plan.finally.iter()) {
        h.tag("<tr><td>");
        if s.wave == 0 {
            h.tag("finally");
        } else {
            h.count(s.wave);
        }
        if skipped(s) {
            h.tag(" (skipped: <code>when</code> is false)");
        }
        h.tag("</td><td>");
        code(h, &s.id);
        h.tag("</td><td>").text(&s.kind.to_string()).tag("</td><td>");
        ids(h, &s.needs);
        h.tag("</td><td>").text(super::step_timeout(s).unwrap_or("none")).tag("</td><td>");
        h.text(&super::step_retry(s).map_or_else(|| "no retry".to_string(), retry_text));
        h.tag("</td><td>").tag(match (&s.command, s.idempotent) {
            (PlanCommand::Approval { .. }, _) => "n/a",
            (_, true) => "yes",
            (_, false) => "no",
        });
        h.tag("</td><td>");
        match &s.compensation {
            Some(c) => {
                h.tag("yes (").text(c.command.kind()).tag(")");
            }
            None if super::review::undoable(s) => {
                h.text("yes (its runbook's)");
            }
            None if changes(&s.command) => {
                h.tag("<strong>none</strong>");
            }
            None => {
                h.tag("not needed");
            }
        }
        h.tag("</td><td>").tag(on_failure_short(s)).tag("</td></tr>\n");
    }
    h.tag("</tbody>\n</table>\n</section>\n");
}

/// Node size and gaps of the graph, in SVG user units.
const NODE_W: i64 = 240;
const NODE_H: i64 = 36;
const GAP_X: i64 = 24;
const GAP_Y: i64 = 48;
/// As wide as a gap between columns: the margins are lanes for edges too.
const MARGIN: i64 = GAP_X;
/// Lanes of a corridor: edges that share a corridor are drawn this far apart, in turn.
const LANES: i64 = 5;
const LANE_STEP: i64 = 4;
/// Characters of a label drawn in a node (the whole label is the node's tooltip).
const LABEL_CHARS: usize = 32;

/// The graph as an inline SVG: one row per wave (then each `finally` step, in order), an edge from
/// each need to its step, the mermaid graph's colour classes, and a legend.
fn graph(h: &mut Html, plan: &Plan) {
    h.tag("<section class=\"graph\">\n<h2>Graph</h2>\n");
    let mut rows: Vec<Vec<&PlanStep>> = Vec::new();
    let mut by_wave: BTreeMap<usize, Vec<&PlanStep>> = BTreeMap::new();
    for s in &plan.steps {
        by_wave.entry(s.wave).or_default().push(s);
    }
    rows.extend(by_wave.into_values());
    // The `finally` steps run one after the other: one row each, in their order.
    rows.extend(plan.finally.iter().map(|s| vec![s]));
    let widest = rows.iter().map(Vec::len).max().unwrap_or(0).max(3) as i64;
    let width = 2 * MARGIN + widest * NODE_W + (widest - 1) * GAP_X;
    let legend_y = MARGIN + rows.len() as i64 * (NODE_H + GAP_Y);
    let height = legend_y + 24 + MARGIN;
    let mut at: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (r, row) in rows.iter().enumerate() {
        for (c, s) in row.iter().enumerate() {
            at.insert(
                s.id.as_str(),
                (MARGIN + c as i64 * (NODE_W + GAP_X), MARGIN + r as i64 * (NODE_H + GAP_Y)),
            );
        }
    }
    h.tag("<svg class=\"graph\" role=\"img\" aria-label=\"the steps by wave, each need an edge\" width=\"")
        .num(width)
        .tag("\" height=\"")
        .num(height)
        .tag("\" viewBox=\"0 0 ")
        .num(width)
        .tag(" ")
        .num(height)
        .tag("\">\n");
    let mut long = 0;
    for s in plan.steps.iter().chain(plan.finally.iter()) {
        let Some(&to) = at.get(s.id.as_str()) else { continue };
        for n in &s.needs {
            let Some(&from) = at.get(n.as_str()) else { continue };
            let points = route(from, to, long);
            if points.len() > 2 {
                long += 1;
            }
            h.tag("<path class=\"edge\" d=\"M");
            for (k, &(x, y)) in points.iter().enumerate() {
                h.tag(if k == 0 { " " } else { " L " }).num(x).tag(" ").num(y);
            }
            let (tx, ty) = points[points.len() - 1];
            h.tag("\"/>\n<path class=\"head\" d=\"M ")
                .num(tx)
                .tag(" ")
                .num(ty + 6)
                .tag(" l -4 -7 l 8 0 z\"/>\n");
        }
    }
    let all: Vec<&PlanStep> = plan.steps.iter().chain(plan.finally.iter()).collect();
    let drawn = crate::shown::labels(
        &all.iter().map(|s| format!("{} ({})", s.id, s.kind)).collect::<Vec<_>>(),
        LABEL_CHARS,
    );
    for (s, short) in all.iter().zip(&drawn) {
        let Some(&(x, y)) = at.get(s.id.as_str()) else { continue };
        h.tag(match review::node_class(s) {
            Some("approval") => "<g class=\"node approval\">",
            Some("compensable") => "<g class=\"node compensable\">",
            Some(_) => "<g class=\"node irreversible\">",
            None => "<g class=\"node\">",
        });
        let label = format!("{} ({})", s.id, s.kind);
        h.tag("<title>").text(&label).tag("</title>");
        h.tag("<rect x=\"").num(x).tag("\" y=\"").num(y).tag("\" width=\"").num(NODE_W).tag("\" height=\"");
        h.num(NODE_H)
            .tag("\" rx=\"6\"/><text x=\"")
            .num(x + 8)
            .tag("\" y=\"")
            .num(y + NODE_H / 2 + 4)
            .tag("\">");
        // The engine's `…` is drawn as itself; the name's parts are text.
        for (i, part) in short.split('…').enumerate() {
            if i > 0 {
                h.tag("…");
            }
            h.text(part);
        }
        h.tag("</text></g>\n");
    }
    let legend: [(&'static str, &'static str); 3] = [
        ("<g class=\"node approval\">", "asks for an approval"),
        ("<g class=\"node compensable\">", "has a compensation"),
        ("<g class=\"node irreversible\">", "nothing undoes it"),
    ];
    for (i, &(g, words)) in legend.iter().enumerate() {
        let x = MARGIN + i as i64 * (NODE_W + GAP_X);
        h.tag(g)
            .tag("<rect x=\"")
            .num(x)
            .tag("\" y=\"")
            .num(legend_y)
            .tag("\" width=\"16\" height=\"16\" rx=\"3\"/>");
        h.tag("<text x=\"")
            .num(x + 22)
            .tag("\" y=\"")
            .num(legend_y + 13)
            .tag("\">")
            .tag(words)
            .tag("</text></g>\n");
    }
    h.tag("</svg>\n<p>Yellow: asks for an approval. Green: has a compensation. Red: may change something that nothing undoes.</p>\n</section>\n");
}

/// The points of the edge from the node at `from` (a need) to the node at `to`, its top-left
/// corners, down to 6 units above the arrowhead at the middle of `to`'s top. Rows are
/// separated by bands of `GAP_Y` and columns by corridors of `GAP_X` (the margins included),
/// where no node is. An edge to the next row is one straight segment inside the band between
/// them. A longer edge never crosses a row: it goes down into the band under its need, along
/// it to the corridor left of its step's column, down that corridor to the band above its
/// step, and along it to its step; `lane` (the number of long edges drawn before) spreads
/// edges that share a corridor or a band, so no edge passes under a node it does not connect
/// and two edges rarely run on one line.
fn route(from: (i64, i64), to: (i64, i64), lane: usize) -> Vec<(i64, i64)> {
    let (fx, fy) = (from.0 + NODE_W / 2, from.1 + NODE_H);
    let (tx, ty) = (to.0 + NODE_W / 2, to.1 - 6);
    if to.1 - from.1 <= NODE_H + GAP_Y {
        return vec![(fx, fy), (tx, ty)];
    }
    let offset = (lane as i64 % LANES - LANES / 2) * LANE_STEP;
    let below = from.1 + NODE_H + GAP_Y / 2 + offset;
    let above = to.1 - GAP_Y / 2 + offset;
    let corridor = to.0 - GAP_X / 2 + offset;
    vec![(fx, fy), (fx, below), (corridor, below), (corridor, above), (tx, above), (tx, ty)]
}

// ----- step sections -------------------------------------------------------------------

/// One `<li>` per variable: `words NAME = VALUE`.
fn env_items(h: &mut Html, words: &'static str, env: &BTreeMap<String, String>) {
    for (k, v) in env {
        h.tag(words);
        code(h, k);
        h.tag(" = ");
        code(h, v);
        h.tag("</li>\n");
    }
}

/// `intro` and a list of checks, or nothing when there are none.
fn check_list(h: &mut Html, intro: &'static str, checks: &[PlanCheck], prefix: &str) {
    if checks.is_empty() {
        return;
    }
    h.tag(intro).tag("<ul>\n");
    for c in checks {
        check_item(h, c, prefix);
    }
    h.tag("</ul>\n");
}

fn check_item(h: &mut Html, c: &PlanCheck, prefix: &str) {
    h.tag("<li>");
    code(h, &format!("{prefix}{}", c.id));
    h.tag(" (").text(c.command.kind()).tag(", timeout ").text(&c.timeout).tag("):\n");
    command_block(h, &c.command);
    h.tag("<ul>\n");
    if let Some(d) = &c.dir {
        li_code(h, "directory ", d);
    }
    env_items(h, "<li>env ", &c.env);
    if let Some(m) = &c.message {
        h.tag("<li>if it fails: ").prose(m).tag("</li>\n");
    }
    h.tag("</ul>\n</li>\n");
}

fn heading(h: &mut Html, level: usize, open: bool) {
    h.tag(match (level.min(6), open) {
        (3, true) => "<h3>",
        (3, false) => "</h3>\n",
        (4, true) => "<h4>",
        (4, false) => "</h4>\n",
        (5, true) => "<h5>",
        (5, false) => "</h5>\n",
        (_, true) => "<h6>",
        (_, false) => "</h6>\n",
    });
}

fn step_section(h: &mut Html, s: &PlanStep, level: usize, prefix: &str) {
    let full = format!("{prefix}{}", s.id);
    h.tag("<section class=\"step\">\n");
    heading(h, level, true);
    code(h, &full);
    if let Some(t) = &s.title {
        h.tag(": ").prose(t);
    }
    heading(h, level, false);
    if let Some(d) = &s.description {
        description(h, d);
    }
    h.tag("<ul>\n");
    item(h, "Kind");
    h.text(&s.kind.to_string()).tag(", ");
    if s.wave == 0 {
        h.tag("<code>finally</code> (always runs last)");
    } else {
        h.tag("wave ").count(s.wave);
    }
    if !s.needs.is_empty() {
        h.tag(", after ");
        ids(h, &s.needs);
    }
    h.tag("</li>\n");
    if let Some(w) = &s.when {
        item(h, "When");
        code(h, &w.expr);
        h.tag(match w.value {
            Some(true) => " (true: it runs)",
            Some(false) => " (false: it is skipped)",
            None => " (decided at run time)",
        });
        h.tag("</li>\n");
    }
    item(h, "Timeout");
    h.text(super::step_timeout(s).unwrap_or("none")).tag("</li>\n");
    if let Some(r) = super::step_retry(s) {
        item(h, "Retry");
        h.text(&retry_text(r)).tag("</li>\n");
    }
    match (&s.command, s.idempotent) {
        (PlanCommand::Approval { .. }, _) => {}
        (_, true) => {
            item(h, "Idempotent");
            h.tag("yes: runs again by itself if the engine dies while it runs</li>\n");
        }
        (_, false) => {
            item(h, "Idempotent");
            h.tag("no: if the engine dies while it runs, an operator decides</li>\n");
        }
    }
    if let Some(e) = &s.estimate {
        item(h, "Estimate");
        h.text(e).tag("</li>\n");
    }
    if let Some(d) = &s.dir {
        item(h, "Directory");
        code(h, d);
        h.tag("</li>\n");
    }
    env_items(h, "<li><strong>Env</strong> ", &s.env);
    if !s.outputs.is_empty() {
        item(h, "Outputs");
        ids(h, &s.outputs);
        h.tag("</li>\n");
    }
    item(h, "On failure");
    phrase(h, &review::on_failure_long(s));
    h.tag("</li>\n</ul>\n");
    let intro =
        "<p><strong>Preconditions</strong> (checked right before it; a failure fails the step):</p>\n";
    check_list(h, intro, &s.preconditions, "");
    if let Some(c) = &s.confirm {
        h.tag("<p><strong>Asks first</strong> (the step runs only on a yes): ").one_line(c).tag("</p>\n");
    }
    h.tag("<p><strong>Runs:</strong></p>\n");
    match &s.command {
        PlanCommand::Runbook { file, params, plan } => {
            h.tag("<ul>\n<li>the runbook ");
            code(h, file);
            h.tag(" (");
            code(h, &plan.runbook.name);
            if let Some(t) = &plan.runbook.title {
                h.tag(": ").prose(t);
            }
            h.tag(") with ");
            if params.is_empty() {
                h.tag("no parameters");
            }
            for (i, (k, v)) in params.iter().enumerate() {
                if i > 0 {
                    h.tag(", ");
                }
                code(h, k);
                h.tag(" = ");
                code(h, &v.to_string());
            }
            h.tag("</li>\n<li>its worst case: ");
            h.text(&total_bound(plan).0.map_or("no bound".to_string(), format_duration));
            h.tag("</li>\n</ul>\n");
            let nested = format!("{full}.");
            check_list(h, "", &plan.preconditions, &nested);
            for step in plan.steps.iter().chain(plan.finally.iter()) {
                step_section(h, step, level + 1, &nested);
            }
        }
        other => command_block(h, other),
    }
    if let Some(c) = &s.compensation {
        compensation(h, c);
    }
    h.tag("</section>\n");
}

fn compensation(h: &mut Html, c: &PlanCompensation) {
    h.tag("<p><strong>Compensation</strong> (undoes it if a later step fails; ")
        .text(c.command.kind())
        .tag(", timeout ")
        .text(c.timeout.as_deref().unwrap_or("none"))
        .tag(", ")
        .text(&retry_text(&c.retry))
        .tag(if c.idempotent { ", idempotent):</p>\n" } else { ", not idempotent):</p>\n" });
    command_block(h, &c.command);
    if !c.env.is_empty() || c.dir.is_some() {
        h.tag("<ul>\n");
        env_items(h, "<li>env ", &c.env);
        if let Some(d) = &c.dir {
            li_code(h, "directory ", d);
        }
        h.tag("</ul>\n");
    }
}

/// What a command does: its exact text in a `<pre>`, then its details as a list.
fn command_block(h: &mut Html, c: &PlanCommand) {
    match c {
        PlanCommand::Run { script, shell } => {
            pre(h, script);
            h.tag("<ul>\n<li>shell: ");
            code(h, &argv_text(shell));
            h.tag("</li>\n</ul>\n");
        }
        PlanCommand::Cmd(argv) => {
            pre(h, &argv_text(argv));
            h.tag("<ul>\n<li>argv, no shell:");
            for a in argv {
                h.tag(" ");
                code(h, a);
            }
            h.tag("</li>\n</ul>\n");
        }
        PlanCommand::Http {
            method,
            url,
            headers,
            query,
            body,
            expect_status,
            max_latency,
            assert,
            ca_file,
            request_timeout,
        } => {
            let req = review::http_request_text(method, url, headers, body.as_ref());
            pre(h, &req);
            h.tag("<ul>\n");
            for (k, v) in query {
                h.tag("<li>query ");
                code(h, k);
                h.tag(" = ");
                code(h, v);
                h.tag("</li>\n");
            }
            h.tag("<li>expects status ");
            if expect_status.is_empty() {
                h.tag("any 2xx");
            }
            for (i, st) in expect_status.iter().enumerate() {
                if i > 0 {
                    h.tag(", ");
                }
                h.num(i64::from(*st));
            }
            h.tag("</li>\n");
            if let Some(l) = max_latency {
                h.tag("<li>within ").text(l).tag("</li>\n");
            }
            if let Some(a) = assert {
                li_code(h, "asserts ", a);
            }
            if let Some(f) = ca_file {
                li_code(h, "trusts the CA file ", f);
            }
            if let Some(t) = request_timeout {
                h.tag("<li>request timeout ").text(t).tag("</li>\n");
            }
            h.tag("</ul>\n");
        }
        PlanCommand::Sql { url, query, file, args, assert, read_only } => {
            if let Some(q) = query {
                pre(h, q);
            }
            h.tag("<ul>\n");
            if let (None, Some(f)) = (query, file) {
                h.tag("<li>the script ");
                code(h, f);
                h.tag(" in one transaction (its text is below)</li>\n");
            }
            li_code(h, "on ", url);
            for (i, a) in args.iter().enumerate() {
                h.tag("<li>$").count(i + 1).tag(" = ");
                code(h, &a.to_string());
                h.tag("</li>\n");
            }
            if let Some(a) = assert {
                li_code(h, "asserts ", a);
            }
            if *read_only {
                h.tag("<li>read-only transaction</li>\n");
            }
            h.tag("</ul>\n");
        }
        PlanCommand::Approval { prompt, .. } => {
            pre(h, prompt);
            h.tag("<ul>\n<li>");
            phrase(h, &review::approval_text(c));
            h.tag("</li>\n</ul>\n");
        }
        PlanCommand::Notify { webhook, body, required } => {
            let text = review::notify_text(body);
            pre(h, &text);
            h.tag("<ul>\n<li>posted to ");
            code(h, webhook);
            h.tag("</li>\n");
            if *required {
                h.tag("<li>a failed delivery fails the step</li>\n");
            }
            h.tag("</ul>\n");
        }
        PlanCommand::Runbook { file, .. } => {
            h.tag("<ul>\n<li>the runbook ");
            code(h, file);
            h.tag("</li>\n</ul>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::markup::Html;

    fn plan_of(text: &str) -> crate::plan::Plan {
        let checked = crate::validate::check(
            crate::diagnostic::Source::new("t.toml", text),
            &crate::validate::NoIncludes,
        );
        let runbook = checked.runbook.expect("a valid runbook");
        crate::plan::plan(&runbook, &std::collections::BTreeMap::new()).expect("a plan")
    }

    /// The nodes (`id`, x, y, width, height) and the edges (their points) of a page's graph,
    /// read back from its SVG.
    #[allow(clippy::type_complexity)]
    fn drawn(page: &str) -> (Vec<(String, f64, f64, f64, f64)>, Vec<Vec<(f64, f64)>>) {
        let num = |s: &str, key: &str| -> f64 {
            let at = s.find(key).expect("attribute") + key.len();
            s[at..].split('"').next().and_then(|v| v.parse().ok()).expect("a number")
        };
        let mut nodes = Vec::new();
        for part in page.split("<g class=\"node").skip(1) {
            let Some(title) = part.split("<title>").nth(1) else { continue };
            let id = title.split(' ').next().unwrap_or_default().to_string();
            let rect = part.split("<rect ").nth(1).expect("a rect");
            nodes.push((
                id,
                num(rect, "x=\""),
                num(rect, "y=\""),
                num(rect, "width=\""),
                num(rect, "height=\""),
            ));
        }
        let mut edges = Vec::new();
        for part in page.split("<path class=\"edge\" d=\"M ").skip(1) {
            let d = part.split('"').next().unwrap_or_default();
            let points = d
                .split(" L ")
                .map(|p| {
                    let mut xy = p.split(' ').map(|v| v.parse::<f64>().expect("a coordinate"));
                    (xy.next().expect("x"), xy.next().expect("y"))
                })
                .collect();
            edges.push(points);
        }
        (nodes, edges)
    }

    /// Whether the segment p-q meets the closed rectangle (Liang-Barsky clipping).
    fn meets(p: (f64, f64), q: (f64, f64), r: (f64, f64, f64, f64)) -> bool {
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (den, num) in [(-dx, p.0 - r.0), (dx, r.0 + r.2 - p.0), (-dy, p.1 - r.1), (dy, r.1 + r.3 - p.1)] {
            if den == 0.0 {
                if num < 0.0 {
                    return false;
                }
            } else {
                let t = num / den;
                if den < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        t0 <= t1
    }

    /// The edges of a page's graph that meet the box of a node they do not connect, as
    /// `need -> step crosses other`; also checks that every edge starts at the middle of its
    /// need's bottom and ends above the middle of its step's top.
    fn false_edges(page: &str, needs: &[(String, String)]) -> Vec<String> {
        let (nodes, edges) = drawn(page);
        assert_eq!(edges.len(), needs.len(), "one edge a need");
        let mut found = Vec::new();
        let mut drawn_needs = Vec::new();
        for e in &edges {
            let (first, last) = (e[0], e[e.len() - 1]);
            let from =
                nodes.iter().find(|n| first == (n.1 + n.3 / 2.0, n.2 + n.4)).expect("starts at a need");
            let to = nodes.iter().find(|n| last == (n.1 + n.3 / 2.0, n.2 - 6.0)).expect("ends at a step");
            drawn_needs.push((from.0.clone(), to.0.clone()));
            for w in e.windows(2) {
                for n in nodes.iter().filter(|n| n.0 != from.0 && n.0 != to.0) {
                    if meets(w[0], w[1], (n.1, n.2, n.3, n.4)) {
                        found.push(format!("{} -> {} crosses {}", from.0, to.0, n.0));
                    }
                }
            }
        }
        let (mut a, mut b) = (drawn_needs, needs.to_vec());
        a.sort();
        b.sort();
        assert_eq!(a, b, "the edges drawn are the needs");
        found
    }

    #[test]
    fn regression_no_edge_of_the_graph_passes_under_a_node_it_does_not_connect() {
        // The red team's runbook (adv15a F13): `a_snapshot -> c_delete_old_nodes` ran
        // straight through `b_drain`, which read as `a_snapshot -> b_drain -> c_delete_old_nodes`.
        let plan = plan_of(
            "[runbook]\nname = \"svg\"\n[steps.a_snapshot]\nrun = \"echo snapshot\"\n[steps.z_flag]\nneeds = []\nrun = \"echo flag\"\n[steps.b_drain]\nneeds = [\"z_flag\"]\nrun = \"echo drain\"\n[steps.y_wait]\nneeds = [\"z_flag\"]\nrun = \"echo wait\"\n[steps.c_delete_old_nodes]\nneeds = [\"a_snapshot\", \"y_wait\"]\nrun = \"echo delete\"\n",
        );
        let needs: Vec<(String, String)> = [
            ("z_flag", "b_drain"),
            ("z_flag", "y_wait"),
            ("a_snapshot", "c_delete_old_nodes"),
            ("y_wait", "c_delete_old_nodes"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(false_edges(&super::html(&plan), &needs), Vec::<String>::new());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random DAGs (each step needs some earlier ones, some `finally` steps needing each
        /// other): the real page's SVG has one edge a need, from the need to the step, and no
        /// segment of any edge meets the box of a node it does not connect.
        #[test]
        fn no_edge_of_a_random_graph_passes_under_a_node_it_does_not_connect(
            needs in proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..4), 1..40),
            finally in proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..3), 0..4),
        ) {
            let mut text = String::from("[runbook]\nname = \"g\"\n");
            let mut edges = Vec::new();
            for (part, list) in [("steps", &needs), ("finally", &finally)] {
                for (i, ns) in list.iter().enumerate() {
                    let mut mine: Vec<usize> = if i == 0 { Vec::new() } else { ns.iter().map(|n| n % i).collect() };
                    mine.sort();
                    mine.dedup();
                    let prefix = if part == "steps" { "s" } else { "f" };
                    let named: Vec<String> = mine.iter().map(|n| format!("\"{prefix}{n}\"")).collect();
                    text.push_str(&format!("[{part}.{prefix}{i}]\nneeds = [{}]\nrun = \"true\"\n", named.join(", ")));
                    edges.extend(mine.iter().map(|n| (format!("{prefix}{n}"), format!("{prefix}{i}"))));
                }
            }
            let page = super::html(&plan_of(&text));
            let found = false_edges(&page, &edges);
            proptest::prop_assert!(found.is_empty(), "{found:?}\n{text}");
        }
    }

    #[test]
    fn the_page_is_its_body_in_a_head_that_fetches_nothing() {
        // What the web console embeds (the body and the style) is what the page shows.
        let plan = plan_of("[runbook]\nname = \"t\"\n\n[steps.a]\nrun = \"echo <a>\"\n");
        let page = super::html(&plan);
        let body = super::html_body(&plan, super::Quote::Scripts).into_string();
        assert!(
            body.starts_with("<section class=\"runbook-review\">") && body.ends_with("</section>\n"),
            "{body}"
        );
        let inner =
            body.trim_start_matches("<section class=\"runbook-review\">").trim_end_matches("</section>\n");
        assert!(page.contains(&format!("<main class=\"runbook-review\">{inner}</main>\n")), "{page}");
        assert!(page.contains(super::HTML_STYLE));
        assert!(body.contains("<pre><code>echo &lt;a&gt;</code></pre>"), "{body}");
    }

    #[test]
    fn text_is_never_markup() {
        let mut h = Html::new();
        h.text("<script>\"'&</script>");
        assert_eq!(h.finish(), "&lt;script&gt;&quot;&#39;&amp;&lt;/script&gt;");
    }
}
