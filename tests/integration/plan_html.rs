//! `runbook plan --format html`: the self-contained review page (issue 15), read as text here
//! and in a real headless browser (tests/integration/browser.rs).

use crate::plan::{REVIEW, review, toml_string};
use crate::support::run_in_with_env;

/// The one policy the page declares: nothing is fetched, nothing runs.
const CSP: &str =
    r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">"#;

/// The elements the page is made of. Anything else (a `script`, an `img`, an `a`, ...) in
/// the page came from a runbook's text and is an injection.
const ELEMENTS: &[&str] = &[
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "main",
    "section",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "ul",
    "li",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "pre",
    "code",
    "strong",
    "em",
    "span",
    "div",
    "blockquote",
    "svg",
    "g",
    "rect",
    "text",
    "line",
    "path",
    "title",
    "defs",
    "marker",
    "footer",
    "dl",
    "dt",
    "dd",
];

/// Text as an HTML parser reads it back: written independently of the engine's escaping.
pub(crate) fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The attributes the page's elements carry.
const ATTRIBUTES: &[&str] = &[
    "lang",
    "charset",
    "http-equiv",
    "content",
    "name",
    "class",
    "id",
    "xmlns",
    "viewbox",
    "width",
    "height",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "d",
    "rx",
    "role",
    "aria-label",
    "marker-end",
    "markerwidth",
    "markerheight",
    "refx",
    "refy",
    "orient",
    "text-anchor",
];

/// Every tag of the page that is not one of [`ELEMENTS`], and every attribute that is not
/// one of [`ATTRIBUTES`] or whose value is not a plain double-quoted string.
fn foreign_tags(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let after = &rest[at + 1..];
        let shown: String = after.chars().take(60).collect();
        let closing = after.starts_with('/');
        let body = after.trim_start_matches('/');
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!' || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        rest = after;
        if name == "!doctype" {
            continue;
        }
        if !ELEMENTS.contains(&name.as_str()) {
            found.push(shown);
            continue;
        }
        let mut attrs = &body[name.len()..];
        loop {
            attrs = attrs.trim_start_matches([' ', '\n']);
            if attrs.starts_with('>') || attrs.starts_with("/>") {
                break;
            }
            if closing {
                found.push(shown.clone());
                break;
            }
            let Some((attr, value)) = attrs.split_once("=\"") else {
                found.push(shown.clone());
                break;
            };
            let Some((value, next)) = value.split_once('"') else {
                found.push(shown.clone());
                break;
            };
            if !ATTRIBUTES.contains(&attr.to_ascii_lowercase().as_str()) || value.contains(['<', '>']) {
                found.push(shown.clone());
                break;
            }
            attrs = next;
        }
    }
    found
}

pub(crate) fn plan_page(
    dir: &std::path::Path,
    file: &str,
    env: &[(&str, &str)],
) -> (String, serde_json::Value) {
    let html = run_in_with_env(dir, &["plan", file, "--format", "html"], env);
    assert_eq!(html.code, 0, "{}", html.stderr);
    let json = run_in_with_env(dir, &["plan", file, "--format", "json"], env);
    assert_eq!(json.code, 0, "{}", json.stderr);
    (html.stdout, serde_json::from_str(&json.stdout).expect("json"))
}

/// Every command text of the JSON plan that the page must show exactly: scripts, argv
/// lines, queries, of steps, compensations and preconditions.
pub(crate) fn commands(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Vec::new();
    let steps =
        doc["steps"].as_array().unwrap_or(&empty).iter().chain(doc["finally"].as_array().unwrap_or(&empty));
    let mut push = |c: &serde_json::Value| {
        if let Some(s) = c["run"]["script"].as_str() {
            out.push(s.trim_end_matches('\n').to_string());
        }
        if let Some(q) = c["sql"]["query"].as_str() {
            out.push(q.trim_end_matches('\n').to_string());
        }
    };
    for s in steps {
        push(&s["command"]);
        push(&s["compensation"]["command"]);
        for p in s["preconditions"].as_array().unwrap_or(&empty) {
            push(&p["command"]);
        }
    }
    out
}

#[test]
fn html_page_is_self_contained_and_forbids_every_fetch_and_script() {
    let (_dir, out) = review(&["--format", "html"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let html = &out.stdout;
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
    assert!(html.contains(CSP), "no CSP meta in\n{html}");
    let lower = html.to_ascii_lowercase();
    for forbidden in [
        "<script",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        " src=",
        " href=",
        "url(",
        "@import",
        "@font-face",
    ] {
        assert!(!lower.contains(forbidden), "{forbidden:?} in\n{html}");
    }
    assert_eq!(foreign_tags(html), Vec::<String>::new());
    // The graph is drawn by the page itself, with the mermaid graph's colour classes.
    assert!(html.contains("<svg"), "{html}");
    for class in ["approval", "compensable", "irreversible"] {
        assert!(html.contains(&format!("class=\"node {class}\"")), "no {class} node in\n{html}");
    }
}

#[test]
fn html_page_shows_every_command_exactly_and_secrets_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("review.toml"), REVIEW).expect("write");
    let env = [("REVIEW_TOKEN", "sentinel-token-value"), ("REVIEW_DB", "postgres://u:sentinel-db-pw@h/db")];
    let (html, doc) = plan_page(dir.path(), "review.toml", &env);
    let expected = commands(&doc);
    assert!(expected.iter().any(|e| e.contains("echo \"now: `date`\"")), "{expected:?}");
    for e in &expected {
        assert!(html.contains(&format!("<code>{}</code></pre>", html_text(e))), "missing {e:?} in\n{html}");
    }
    // The summary and risk facts of the review document.
    for fact in [
        "Worst case",
        "Point of no return",
        "<code>ana</code>, <code>luis</code>",
        "<code>ticket</code> (string, required",
        "json.status == &#39;ok&#39;",
        "Authorization: Bearer &lt;secret:TOKEN&gt;",
    ] {
        assert!(html.contains(fact), "{fact:?} missing in\n{html}");
    }
    assert!(!html.contains("sentinel"), "a secret value in\n{html}");
}

/// Texts that are markup in HTML, SVG or CSS if written raw.
pub(crate) const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "</pre><script>alert(2)</script>",
    "\"><img src=x onerror=alert(3)>",
    "'><svg onload=alert(4)>",
    "]]><!-- comment --><iframe src=javascript:alert(5)>",
    "<a href=\"javascript:alert(6)\">click</a>",
    "</style><style>body{background:url(http://evil.invalid/x)}</style>",
    "</title></text></svg><object data=x>",
    "&lt;already escaped&gt; &amp; &#x3c;script&#x3e;",
    "tab\there \u{200b}zero width and \u{202e}override",
    "multi\nline\n\n  indented `ticks` ``` and ${x} $(id)",
];

/// A runbook whose every text a reviewer reads is hostile, with secrets in a header, an env
/// value and an SQL url.
pub(crate) fn hostile_runbook() -> String {
    let mut toml = format!(
        "[runbook]\nname = \"hostile\"\ntitle = {}\ndescription = {}\n\n[secrets.TOKEN]\nenv = \"HOSTILE_TOKEN\"\n\n[secrets.DB]\nenv = \"HOSTILE_DB\"\n\n",
        toml_string(HOSTILE[0]),
        toml_string(&HOSTILE.join("\n"))
    );
    for (i, h) in HOSTILE.iter().enumerate() {
        let t = toml_string(h);
        toml.push_str(&format!(
            "[steps.s{i}]\ntitle = {t}\ndescription = {t}\nconfirm = {t}\nrun = {t}\nenv = {{ HOSTILE = {t}, TOKEN = \"{{{{ secrets.TOKEN }}}}\" }}\n\n[steps.s{i}.compensate]\nrun = {}\n\n",
            toml_string(&format!("undo {h}"))
        ));
    }
    toml.push_str(&format!(
        "[steps.q]\nsql = {{ url = \"{{{{ secrets.DB }}}}\", query = {} }}\n\n",
        toml_string(&format!("SELECT 1 -- {}", HOSTILE[2]))
    ));
    toml.push_str(&format!(
        "[steps.h]\nhttp = {{ url = \"https://app.invalid/x\", method = \"POST\", headers = {{ Authorization = \"Bearer {{{{ secrets.TOKEN }}}}\", X = {} }} }}\n\n",
        toml_string(HOSTILE[3])
    ));
    toml.push_str(&format!("[params.p]\ntype = \"string\"\ndefault = {}\n\n", toml_string(HOSTILE[6])));
    toml.push_str(&format!(
        "[steps.n]\nnotify = {{ webhook = \"https://hooks.invalid/x\", text = {} }}\n\n",
        toml_string(HOSTILE[4])
    ));
    toml.push_str(&format!(
        "[steps.b]\nhttp = {{ url = \"https://app.invalid/y\", method = \"POST\", body = {} }}\n\n",
        toml_string(HOSTILE[7])
    ));
    toml.push_str(&format!(
        "[steps.ok]\nneeds = [\"h\"]\n\n[steps.ok.approval]\nprompt = {}\napprovers = [{}]\n",
        toml_string(HOSTILE[1]),
        toml_string("eve\"><img src=x>")
    ));
    toml
}

/// A command as the review formats show it (the rule of what is executed, written here
/// independently of the engine): every character but printable ASCII, line feed and tab as
/// its visible escape.
pub(crate) fn shown(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            '\r' => "\\r".to_string(),
            c if !c.is_ascii() || c.is_ascii_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Environment variables set for a planning.
type Env = [(&'static str, &'static str)];

pub(crate) const HOSTILE_ENV: &[(&str, &str)] =
    &[("HOSTILE_TOKEN", "sentinel-hostile-token"), ("HOSTILE_DB", "postgres://u:sentinel-hostile-pw@h/db")];

#[test]
fn html_page_shows_hostile_runbook_text_as_text_never_as_markup() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hostile.toml"), hostile_runbook()).expect("write");
    let (html, doc) = plan_page(dir.path(), "hostile.toml", HOSTILE_ENV);
    assert_eq!(foreign_tags(&html), Vec::<String>::new(), "an injected element in\n{html}");
    for e in commands(&doc) {
        assert!(
            html.contains(&format!("<code>{}</code></pre>", html_text(&shown(&e)))),
            "missing {e:?} in\n{html}"
        );
    }
    // Invisible characters are marked, and a note says where (as in the markdown document).
    assert!(html.contains("Invisible characters, shown above as escapes: line 1: U+200B, U+202E."), "{html}");
    let lower = html.to_ascii_lowercase();
    for forbidden in ["]]>", "<!--"] {
        assert!(!lower.contains(forbidden), "{forbidden:?} in\n{html}");
    }
    assert!(!html.contains("sentinel"), "a secret value in\n{html}");
}

#[test]
fn html_page_reads_right_in_a_real_browser() {
    let browser = crate::browser::Browser::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let review_env =
        [("REVIEW_TOKEN", "sentinel-token-value"), ("REVIEW_DB", "postgres://u:sentinel-db-pw@h/db")];
    let pages: [(&str, String, &Env); 2] =
        [("review", REVIEW.to_string(), &review_env), ("hostile", hostile_runbook(), HOSTILE_ENV)];
    for (name, toml, env) in pages {
        std::fs::write(dir.path().join(format!("{name}.toml")), toml).expect("write");
        let (html, doc) = plan_page(dir.path(), &format!("{name}.toml"), env);
        let text = read_in_browser(&browser, dir.path(), name, &html, &doc);
        if name == "hostile" {
            for h in [HOSTILE[0], HOSTILE[2], HOSTILE[4], HOSTILE[5], HOSTILE[6], HOSTILE[7]] {
                assert!(text.contains(h), "{name}: {h:?} not shown as text in\n{text}");
            }
        }
    }
    // Every shipped runbook's page, with its staging parameters.
    let shipped = crate::support::root().join("runbooks");
    for path in
        crate::support::files(&shipped, "toml").into_iter().filter(|p| p.parent() == Some(shipped.as_path()))
    {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let file = format!("runbooks/{name}.toml");
        let params = format!("runbooks/params/{name}.staging.toml");
        let (html, doc) = crate::support::with_params(&file, &params);
        read_in_browser(&browser, dir.path(), &name, &html, &doc);
    }
}

/// Opens the page in the browser and checks what every review page must be; returns the
/// page's `innerText`.
fn read_in_browser(
    browser: &crate::browser::Browser,
    dir: &std::path::Path,
    name: &str,
    html: &str,
    doc: &serde_json::Value,
) -> String {
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).expect("write the page");
    browser.open(&format!("file://{}", page.display()));
    // Nothing runs, nothing is fetched, and the page says so to the browser.
    assert_eq!(browser.eval("return document.querySelectorAll('script').length"), 0, "{name}");
    assert_eq!(browser.eval("return performance.getEntriesByType('resource').length"), 0, "{name}");
    assert_eq!(
        browser.eval(
            "return document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').getAttribute('content')"
        ),
        "default-src 'none'; style-src 'unsafe-inline'",
        "{name}"
    );
    // Only the page's own elements and attributes: the runbook's text made none.
    let allowed = serde_json::to_string(ELEMENTS).expect("json");
    let foreign = browser.eval(&format!(
        "const ok = {allowed}; return Array.from(document.querySelectorAll('*')).map(e => e.localName).filter(n => !ok.includes(n))"
    ));
    assert_eq!(foreign, serde_json::json!([]), "{name}: foreign elements");
    let handlers = browser.eval(
        "return Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes).map(a => a.name)).filter(n => n.startsWith('on') || n === 'src' || n === 'href' || n === 'style')",
    );
    assert_eq!(handlers, serde_json::json!([]), "{name}: handlers or links");
    assert_eq!(
        browser.eval(
            "return document.querySelectorAll('a, img, iframe, object, embed, link, base, form').length"
        ),
        0,
        "{name}"
    );
    // Every command reads back exactly as the JSON plan has it.
    let blocks =
        browser.eval("return Array.from(document.querySelectorAll('pre > code')).map(e => e.textContent)");
    let blocks: Vec<String> = serde_json::from_value(blocks).expect("texts");
    for e in commands(doc) {
        assert!(blocks.contains(&shown(&e)), "{name}: {e:?} not in {blocks:#?}");
    }
    // What the reviewer reads: the facts, no secret value.
    let text = browser.eval("return document.body.innerText");
    let text = text.as_str().expect("text").to_string();
    assert!(!text.contains("sentinel"), "{name}: a secret value in\n{text}");
    for fact in ["Worst case:", "Point", "What a failure at each wave undoes"] {
        assert!(text.contains(fact), "{name}: no {fact:?} in {text}");
    }
    // Nothing makes the page scroll sideways: wide tables, long commands and the graph
    // scroll or shrink inside the page.
    let (client, scroll) = (
        browser.eval("return document.documentElement.clientWidth"),
        browser.eval("return document.documentElement.scrollWidth"),
    );
    assert_eq!(client, scroll, "{name}: the page is wider than the window");
    // The graph: one node per step, three legend entries.
    let steps = doc["steps"].as_array().map_or(0, Vec::len) + doc["finally"].as_array().map_or(0, Vec::len);
    assert_eq!(browser.eval("return document.querySelectorAll('svg g.node').length"), steps + 3, "{name}");
    let crossed = browser.eval(GRAPH_CROSSINGS);
    assert_eq!(crossed, serde_json::json!([]), "{name}: edges under nodes they do not connect");
    text
}

/// Read in the browser, with the geometry it computes: every point (one a unit of length,
/// `getPointAtLength`) of every edge of the graph that falls inside, or on, the box of a
/// node other than the edge's two ends (the node whose bottom middle is its first point, the
/// node whose top middle is 6 units under its last point). Such an edge would read as a
/// dependency that does not exist (red team adv15a F13).
const GRAPH_CROSSINGS: &str = "
    const nodes = Array.from(document.querySelectorAll('svg.graph g.node')).filter(g => g.querySelector('title'))
      .map(g => { const r = g.querySelector('rect'); return { id: g.querySelector('title').textContent.split(' ')[0],
        x: +r.getAttribute('x'), y: +r.getAttribute('y'), w: +r.getAttribute('width'), h: +r.getAttribute('height') }; });
    const on = (n, p) => p.x >= n.x && p.x <= n.x + n.w && p.y >= n.y && p.y <= n.y + n.h;
    const found = [];
    for (const path of document.querySelectorAll('svg.graph path.edge')) {
      const len = path.getTotalLength(), a = path.getPointAtLength(0), b = path.getPointAtLength(len);
      const from = nodes.find(n => a.x === n.x + n.w / 2 && a.y === n.y + n.h);
      const to = nodes.find(n => b.x === n.x + n.w / 2 && b.y + 6 === n.y);
      if (!from || !to) { found.push(`an edge with no ends: ${path.getAttribute('d')}`); continue; }
      for (const n of nodes) {
        if (n === from || n === to) continue;
        for (let t = 0; t <= len; t += 1) {
          if (on(n, path.getPointAtLength(t))) { found.push(`${from.id} -> ${to.id} crosses ${n.id}`); break; }
        }
      }
    }
    return found;";

/// The red team's runbook (adv15a F13): `c_delete_old_nodes` needs `a_snapshot`, two rows
/// up, and the edge ran straight through `b_drain`; the page read
/// `a_snapshot -> b_drain -> c_delete_old_nodes`. (The shipped runbooks' pages are read by
/// `html_page_reads_right_in_a_real_browser`; 4 of 6 had such an edge.)
#[test]
fn regression_the_graph_shows_no_edge_that_does_not_exist_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.toml"),
        "[runbook]\nname = \"svg\"\n[steps.a_snapshot]\nrun = \"echo snapshot\"\n[steps.z_flag]\nneeds = []\nrun = \"echo flag\"\n[steps.b_drain]\nneeds = [\"z_flag\"]\nrun = \"echo drain traffic\"\n[steps.y_wait]\nneeds = [\"z_flag\"]\nrun = \"echo wait\"\n[steps.c_delete_old_nodes]\nneeds = [\"a_snapshot\", \"y_wait\"]\nrun = \"echo delete old nodes\"\n",
    )
    .expect("write");
    let (html, _) = plan_page(dir.path(), "r.toml", &[]);
    std::fs::write(dir.path().join("r.html"), &html).expect("write");
    let browser = crate::browser::Browser::start();
    browser.open(&format!("file://{}", dir.path().join("r.html").display()));
    assert_eq!(browser.eval("return document.querySelectorAll('svg.graph path.edge').length"), 4);
    assert_eq!(browser.eval(GRAPH_CROSSINGS), serde_json::json!([]));
}

/// A chain of `n` steps, every other one compensable, then a step that stops.
fn chain(n: usize) -> String {
    let mut toml = String::from("[runbook]\nname = \"chain\"\n\n");
    for i in 0..n {
        toml.push_str(&format!("[steps.s{i}]\nrun = \"echo {i}\"\n\n"));
        if i % 2 == 0 {
            toml.push_str(&format!("[steps.s{i}.compensate]\nrun = \"echo undo {i}\"\n\n"));
        }
    }
    toml.push_str("[steps.last]\nrun = \"true\"\non-failure = \"stop\"\n");
    toml
}

#[test]
fn html_page_grows_linearly_with_the_steps() {
    // Each row of the risk table lists at most 30 ids (the review model's `few`), as the
    // markdown document does: twice the steps make about twice the page, never four times.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sizes = Vec::new();
    for n in [200, 400] {
        std::fs::write(dir.path().join("chain.toml"), chain(n)).expect("write");
        let (html, _) = plan_page(dir.path(), "chain.toml", &[]);
        assert!(html.contains(&format!("{} more", n - 30)), "no bounded list in the page of {n} steps");
        sizes.push(html.len());
    }
    assert!(sizes[1] < sizes[0] * 5 / 2, "{sizes:?}");
}
