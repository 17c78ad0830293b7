//! Every value a report or a terminal shows is one line, escaped for its medium.
//!
//! A value the engine did not write (a parameter, an approval input, a step's output or
//! error text, a title, a name from the store) may hold line breaks, carriage returns,
//! escape sequences or invisible Unicode format characters. Shown raw, it can add lines to
//! a line-structured document (a forged "Resultado" in a report), rewrite what a terminal
//! draws (a secret printed in two halves, the second moved over the first by `\r` or
//! `ESC[16D`), or hide characters inside a secret so that the redactor does not match it
//! while the screen draws it whole (U+200B, U+2060, U+00AD). So every such value goes
//! through [`one_line`] (terminal) or [`markdown`] / [`code`] (reports; the HTML report is
//! derived from the markdown and escapes HTML on top): each hidden character is replaced by
//! a visible escape (`\n`, `\r`, `\t`, `\u{1b}`, `\u{200b}`), so nothing is drawn over,
//! nothing is invisible, and the value is one line.

use std::sync::LazyLock;

use regex::Regex;

/// Characters a terminal or a document does not draw as themselves: C0 and C1 controls and
/// DEL (`Cc`), format characters (`Cf`: zero-width, bidi controls, word joiner, soft
/// hyphen, BOM, tags), line and paragraph separators (`Zl`, `Zp`), every space separator
/// but the ASCII space (`Zs`: U+00A0, U+2000..U+200A, U+202F, U+3000...: drawn as a blank,
/// but not a blank to the shell, so `skipped<U+00A0># && rm -rf` is no comment), every
/// other Unicode `White_Space` character (U+0085), and the characters that draw nothing or
/// a blank although they are none of these (combining grapheme joiner, Hangul fillers,
/// Khmer inherent vowels, Mongolian and other variation selectors, the Braille blank
/// U+2800).
static HIDDEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}\p{White_Space}\x{034F}\x{115F}\x{1160}\x{17B4}\x{17B5}\x{180B}-\x{180F}\x{2800}\x{3164}\x{FE00}-\x{FE0F}\x{FFA0}\x{E0100}-\x{E01EF}--[\x20]]",
    )
    .expect("a valid pattern")
});

/// Characters that cannot be part of a name an operator reads and types back (a `for-each`
/// element, an instance id), beyond the [`HIDDEN`] ones: private-use (`Co`) and unassigned
/// (`Cn`) code points, drawn as whatever a font decides or as nothing, and every
/// default-ignorable code point (Unicode's `Default_Ignorable_Code_Point`: tags U+E0000..,
/// variation selectors, Hangul fillers, U+180E...), which a renderer may draw as nothing.
static UNNAMEABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}]").expect("a valid pattern"));

/// True for a character a name read and typed back by an operator cannot hold (red team
/// adv17b L1): every character [`one_line`] escapes ([`is_hidden`]: `Cc`, `Cf`, `Zl`, `Zp`,
/// every space but the ASCII one, the blank-drawing ones), and the private-use, unassigned
/// and default-ignorable code points. The one predicate of every identifier-like value
/// taken from a user: `params::instance_key` (list elements, `for-each` instance ids).
pub fn unnameable(c: char) -> bool {
    let mut buf = [0u8; 4];
    is_hidden(c) || UNNAMEABLE.is_match(c.encode_utf8(&mut buf))
}

/// True for a private-use or unassigned code point (`Co`, `Cn`): how [`unnameable`]'s
/// refusals name it.
pub fn unassigned_or_private(c: char) -> bool {
    static CO_CN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\p{Co}\p{Cn}]").expect("a valid pattern"));
    let mut buf = [0u8; 4];
    CO_CN.is_match(c.encode_utf8(&mut buf))
}

/// Letters that read as a Latin letter they are not, on a line that holds Latin letters:
/// a letter of any script other than Latin (Cyrillic `і` in `gіthub.com`, Greek `ο`), and
/// the Latin-looking letters of the Common script and of the fullwidth forms (`𝐠`, `ｇ`).
/// Latin letters with accents (`á`, `ñ`) are Latin: Spanish text is not marked.
static FOREIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\p{L}\p{M}\p{Nd}--\p{Latin}--\p{Inherited}--[0-9]]|[\x{FF01}-\x{FF5E}]")
        .expect("a valid pattern")
});

/// A letter of the Latin script: a line holding one is read as Latin text.
static LATIN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\p{Latin}").expect("a valid pattern"));

/// True for a character [`one_line`] escapes.
pub fn is_hidden(c: char) -> bool {
    let mut buf = [0u8; 4];
    HIDDEN.is_match(c.encode_utf8(&mut buf))
}

/// The visible escape of one character: `\r`, `\u{a0}`.
pub fn escape(c: char) -> String {
    match c {
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        other => format!("\\u{{{:x}}}", other as u32),
    }
}

/// A value as a terminal may show it: one line, every hidden character (see [`is_hidden`])
/// replaced by a visible escape.
pub fn one_line(text: &str) -> String {
    if !HIDDEN.is_match(text) {
        return text.to_string();
    }
    HIDDEN
        .replace_all(text, |c: &regex::Captures<'_>| c[0].chars().map(escape).collect::<String>())
        .into_owned()
}

/// Text of several lines (a script, a query, a whole plan) as a reviewer reads it: line
/// breaks and tabs stay, every other character the rule of what is executed marks (see
/// [`marks`]) is replaced by the escape [`one_line`] uses (`\r`, `\u{1b}`, `\u{261}`). The
/// escape alone is ambiguous (an author may type the six characters `\u{d}`), so the caller
/// also states, outside the text, what was replaced where: [`Marked::replaced`] holds the
/// 1-based line and the character of each replacement, and [`Marked::note`] words it.
///
/// This is the rule for everything that is executed or sent (a command, a query, a URL, a
/// header, a body, a path, an env value, a `when`): **every character but printable ASCII,
/// line breaks and tabs is marked**, whatever its script or category. A look-alike of a
/// letter (`ɡ` U+0261, `ı` U+0131, `ᴀ` U+1D00, Cyrillic `х`), of shell syntax (`♯` U+266F,
/// `﹟` U+FE5F, `;` U+037E, `ǀ` U+01C0), a symbol drawn blank (U+1D159) or a combining mark
/// (U+0338) cannot read as the ASCII it is not: there is no exemption to get wrong. Prose
/// (a title, a description, a confirm text, a precondition's message) is read, never run,
/// and keeps the letters of its language: see [`prose`].
pub fn marked(text: &str) -> Marked {
    marked_spans(text, &[])
}

/// Prose as a reviewer reads it: every hidden character (see [`is_hidden`]) is marked, and
/// on a line that holds a Latin letter every letter, mark or digit of another script and
/// every fullwidth form ([`is_foreign`]: `gіthub` with a Cyrillic `і`). Accented letters
/// (`á`, `ñ`), Spanish punctuation and a line of Japanese or Cyrillic alone stay as written:
/// a title is read, not run.
pub fn prose(text: &str) -> Marked {
    marked_spans(text, &[(0..text.len(), Span::Prose)])
}

/// A part of a text that [`marked_spans`] does not read by the rule of what is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The runbook's prose (a title, a precondition's message): read as [`prose`] reads it.
    Prose,
    /// The engine's own words (a `&'static str` such as ` · `), never a runbook's text: not
    /// marked.
    Engine,
    /// A value the document draws on one line (a path, an env value, a parameter): read by
    /// the rule of what is executed, and its line breaks and tabs are marked too.
    OneLine,
}

/// The one marking function: `text` read by the rule of what is executed ([`marks`]) but
/// for the byte ranges of `spans` (sorted, not overlapping): a [`Span::Prose`] range is read
/// as [`prose`] reads a value of its own (each range's lines apart: its Latin letters
/// decide, not the engine's words around it), a [`Span::Engine`] range is the engine's own
/// text. The text plan passes its whole output with the ranges of its titles, messages and
/// separators; every other view passes one value.
pub fn marked_spans(text: &str, spans: &[(std::ops::Range<usize>, Span)]) -> Marked {
    // A line break or a tab is the document's own structure only outside prose and one-line
    // values: a value never draws a line or a column of its own.
    let breaks_in_a_value = spans
        .iter()
        .any(|(r, k)| *k != Span::Engine && text.get(r.clone()).is_some_and(|t| t.contains(['\n', '\t'])));
    if text.is_ascii() && !breaks_in_a_value && !text.chars().any(|c| c != '\n' && c != '\t' && is_hidden(c))
    {
        return Marked { text: text.to_string(), replaced: Vec::new() };
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut replaced = Vec::new();
    let mut spans = spans.iter().peekable();
    let mut at = 0;
    // The line of the marked text: a marked line break does not start one.
    let mut n = 1;
    for line in text.split_inclusive('\n') {
        // The Latin letters of the part of a prose range on this line, once per range.
        let mut latin: Option<(usize, bool)> = None;
        for (off, c) in line.char_indices() {
            let p = at + off;
            while spans.next_if(|(r, _)| r.end <= p).is_some() {}
            let mark = match spans.peek().filter(|(r, _)| r.start <= p) {
                None => marks(c),
                Some((_, Span::Engine)) => false,
                Some((_, Span::OneLine)) => marks(c) || c == '\n' || c == '\t',
                Some((r, Span::Prose)) => {
                    let foreign = match latin {
                        Some((start, l)) if start == r.start => l,
                        _ => {
                            let from = r.start.max(at);
                            let to = r.end.min(at + line.len());
                            let l = text.get(from..to).is_some_and(|t| !t.is_ascii() && LATIN.is_match(t));
                            latin = Some((r.start, l));
                            l
                        }
                    };
                    is_hidden(c) || (foreign && is_foreign(c))
                }
            };
            if mark {
                out.push_str(&escape(c));
                replaced.push((n, c));
            } else {
                out.push(c);
                if c == '\n' {
                    n += 1;
                }
            }
        }
        at += line.len();
    }
    Marked { text: out, replaced }
}

/// The rule of what is executed, one character: true for every character but printable
/// ASCII, line breaks and tabs (see [`marked`]). The plan diff names the non-ASCII ones of a
/// change with it.
pub fn marks(c: char) -> bool {
    c != '\n' && c != '\t' && (!c.is_ascii() || c.is_ascii_control())
}

/// True for a letter that [`prose`] replaces on a line of Latin text: a letter, mark or
/// digit of a script other than Latin, or a fullwidth form.
pub fn is_foreign(c: char) -> bool {
    let mut buf = [0u8; 4];
    !c.is_ascii() && FOREIGN.is_match(c.encode_utf8(&mut buf))
}

/// The labels a graph draws in its nodes, at most `max` characters each, one per name and
/// never two alike: a name that does not fit keeps its head and its tail around `…`
/// (`drop_the_prod…replica_one_keep`), where two long names sharing a prefix differ; names
/// that would still be drawn alike (same head, same tail) are numbered by their place in
/// `names` (`#3`), so no two nodes of a graph read the same. The whole name stays the
/// node's tooltip.
pub fn labels(names: &[String], max: usize) -> Vec<String> {
    let max = max.max(8);
    let cut = |name: &str, max: usize| -> String {
        let chars: Vec<char> = name.chars().collect();
        if chars.len() <= max {
            return name.to_string();
        }
        let tail = (max - 1) / 2;
        let head = max - 1 - tail;
        let mut out: String = chars[..head].iter().collect();
        out.push('…');
        out.extend(&chars[chars.len() - tail..]);
        out
    };
    let mut drawn: Vec<String> = names.iter().map(|n| cut(n, max)).collect();
    let mut count: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for d in &drawn {
        *count.entry(d.clone()).or_default() += 1;
    }
    for (i, d) in drawn.iter_mut().enumerate() {
        if count[d.as_str()] > 1 {
            let number = format!(" #{}", i + 1);
            let room = max.saturating_sub(number.chars().count()).max(4);
            let chars: Vec<char> = names[i].chars().collect();
            *d = if chars.len() <= room { names[i].clone() } else { cut(&names[i], room) } + &number;
        }
    }
    drawn
}

/// What [`marked`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    /// The text with every hidden character but line breaks and tabs escaped.
    pub text: String,
    /// The 1-based line and the character of each replacement, in order.
    pub replaced: Vec<(usize, char)>,
}

/// Lines and characters a note names before "and N more": a note stays short whatever
/// the text.
const NOTE_SHOWN: usize = 8;

impl Marked {
    /// The distinct characters replaced, as `U+000D, U+001B`, at most [`NOTE_SHOWN`].
    pub fn names(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        for (_, c) in &self.replaced {
            let name = format!("U+{:04X}", *c as u32);
            if !names.contains(&name) {
                if names.len() == NOTE_SHOWN {
                    names.push("...".into());
                    break;
                }
                names.push(name);
            }
        }
        names.join(", ")
    }

    /// `None` when nothing was replaced, else one line such as `line 1: U+001B, U+000D;
    /// line 3: U+200B`, at most [`NOTE_SHOWN`] lines and characters per line named.
    pub fn note(&self) -> Option<String> {
        if self.replaced.is_empty() {
            return None;
        }
        let mut lines: Vec<(usize, Vec<char>)> = Vec::new();
        for &(n, c) in &self.replaced {
            match lines.last_mut() {
                Some((last, chars)) if *last == n => chars.push(c),
                _ => lines.push((n, vec![c])),
            }
        }
        let total = lines.len();
        let mut parts: Vec<String> = lines
            .into_iter()
            .take(NOTE_SHOWN)
            .map(|(n, chars)| {
                let mut names: Vec<String> = Vec::new();
                for c in &chars {
                    let name = format!("U+{:04X}", *c as u32);
                    if !names.contains(&name) && names.len() < NOTE_SHOWN {
                        names.push(name);
                    }
                }
                format!("line {n}: {}", names.join(", "))
            })
            .collect();
        if total > NOTE_SHOWN {
            parts.push(format!("and {} more line(s)", total - NOTE_SHOWN));
        }
        Some(parts.join("; "))
    }
}

/// A value as markdown prose: one line as [`one_line`] makes it, and every character that markdown (or the
/// report's HTML conversion) reads as structure is backslash-escaped: emphasis, code,
/// links, HTML, table cells, and a block marker at its start (`#`, `-`, `+`, `=`, `>`,
/// `1.`), so that the value is shown as written and can add neither a line nor markup.
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if is_hidden(c) {
            // `\n`, `\u{..}`: a backslash before a letter is shown as written.
            out.push_str(&escape(c));
            continue;
        }
        let leading = (i == 0 && matches!(c, '#' | '-' | '+' | '=' | '>'))
            || (i == digits && digits > 0 && matches!(c, '.' | ')'));
        // `snake_case`: an underscore inside a word is no emphasis (CommonMark), left as is.
        let intraword = c == '_'
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if leading || (!intraword && matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~'))
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value inside a markdown code span (`` `...` ``): [`one_line`], with backticks (which
/// would end the span) and table-cell bars shown as `'` and `¦`.
pub fn code(text: &str) -> String {
    one_line(text).replace('`', "'").replace('|', "¦")
}

#[cfg(test)]
mod tests {
    /// adv17b L1: every code point of the refused classes, all of them, is unnameable; the
    /// ASCII letters, digits and `-_.:@ ` and a sample of letters of many scripts are not.
    #[test]
    fn unnameable_refuses_every_code_point_of_its_classes() {
        let class =
            regex::Regex::new(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}]")
                .expect("re");
        let mut n = 0;
        for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
            let mut b = [0u8; 4];
            if class.is_match(c.encode_utf8(&mut b)) {
                assert!(super::unnameable(c), "U+{:04X}", c as u32);
                n += 1;
            }
        }
        assert!(n > 900_000, "{n}");
        for c in "azAZ09-_.:@ éßΩжעعहবไ日한ქՀ🙂".chars() {
            assert!(!super::unnameable(c), "U+{:04X}", c as u32);
        }
    }

    use super::*;

    /// Every character a terminal or a document would not draw as itself: all C0/C1
    /// controls, DEL, and the whole Unicode `Cf` category, checked against the `regex`
    /// crate's own tables char by char (an independent reading of the category).
    fn corpus() -> Vec<char> {
        let cf = Regex::new(r"^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]$").expect("pattern");
        let all: Vec<char> = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
        let hidden: Vec<char> = all.iter().copied().filter(|c| cf.is_match(&c.to_string())).collect();
        // The corpus holds what it must: C0, DEL, C1, and the format characters named in
        // the findings.
        for c in
            (0..0x20).chain(0x7F..0xA0).chain([0xAD, 0x200B, 0x200D, 0x202E, 0x2060, 0x2066, 0xFEFF, 0xE0001])
        {
            assert!(hidden.contains(&char::from_u32(c).expect("char")), "{c:x}");
        }
        assert!(hidden.len() > 200, "{}", hidden.len());
        hidden
    }

    #[test]
    fn every_control_and_format_character_is_made_visible_on_one_line() {
        for c in corpus() {
            let text = format!("ab{c}cd");
            for (name, shown) in
                [("one_line", one_line(&text)), ("markdown", markdown(&text)), ("code", code(&text))]
            {
                assert!(!shown.chars().any(is_hidden), "{name} kept U+{:04X}: {shown:?}", c as u32);
                assert!(!shown.contains(c), "{name} kept U+{:04X}", c as u32);
                assert!(!shown.contains('\n') && !shown.contains('\r'), "{name}: {shown:?}");
                assert!(shown.starts_with("ab") && shown.ends_with("cd"), "{name}: {shown:?}");
                assert!(shown.len() > 4, "{name} dropped U+{:04X} instead of showing it", c as u32);
            }
        }
    }

    #[test]
    fn escape_sequences_and_cursor_moves_are_shown_as_text() {
        for (raw, shown) in [
            ("    K2pL\rZq7w", "    K2pL\\rZq7w"),
            ("K2pL\x1b[16DZq7w", "K2pL\\u{1b}[16DZq7w"),
            ("\x1b]0;title\x07", "\\u{1b}]0;title\\u{7}"),
            ("\u{9b}2J", "\\u{9b}2J"),
            ("Zq7w\u{200b}K2pL", "Zq7w\\u{200b}K2pL"),
            ("Zq7w\u{ad}K2pL", "Zq7w\\u{ad}K2pL"),
            ("a\u{2028}b\u{2029}c", "a\\u{2028}b\\u{2029}c"),
            ("x\u{fe0f}\u{e0100}\u{3164}", "x\\u{fe0f}\\u{e0100}\\u{3164}"),
            ("tab\there\r\n", "tab\\there\\r\\n"),
            ("plain ñ 東京 😀", "plain ñ 東京 😀"),
        ] {
            assert_eq!(one_line(raw), shown);
        }
    }

    #[test]
    fn a_block_keeps_its_lines_and_says_what_it_replaced() {
        let m = marked("printf one\rtwo\n\techo \u{202e}x\u{200b}");
        assert_eq!(m.text, "printf one\\rtwo\n\techo \\u{202e}x\\u{200b}");
        assert_eq!(m.note().as_deref(), Some("line 1: U+000D; line 2: U+202E, U+200B"));
        // Six typed characters are text: nothing is replaced, nothing is noted.
        let typed = marked("printf one\\u{d}two");
        assert_eq!(typed.text, "printf one\\u{d}two");
        assert_eq!(typed.note(), None);
        // Every hidden character of the corpus is replaced and named; the note is bounded.
        let all: String = corpus().into_iter().filter(|c| *c != '\n' && *c != '\t').collect();
        let m = marked(&all);
        assert!(!m.text.chars().any(|c| c != '\n' && c != '\t' && is_hidden(c)));
        assert_eq!(m.replaced.len(), all.chars().count());
        let many: String = (0..5000).map(|_| "a\rb\n").collect();
        assert!(marked(&many).note().is_some_and(|n| n.len() < 200 && n.ends_with("and 4992 more line(s)")));
    }

    /// Every blank that is not the ASCII space (each Unicode `White_Space` character and
    /// `Zs` separator but U+0020, line feed and tab, and the Braille blank) and look-alike
    /// letters of other scripts on a Latin line are marked; Spanish text is not.
    #[test]
    fn blanks_and_look_alike_letters_are_marked_and_spanish_is_not() {
        let zs = Regex::new(r"^[\p{Zs}\p{White_Space}]$").expect("pattern");
        let blanks: Vec<char> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| zs.is_match(&c.to_string()) && !matches!(c, ' ' | '\n' | '\t'))
            .chain(['\u{2800}'])
            .collect();
        assert!(
            blanks.len() >= 20 && blanks.contains(&'\u{a0}') && blanks.contains(&'\u{3000}'),
            "{blanks:?}"
        );
        for c in blanks {
            let m = marked(&format!("echo skipped{c}# && rm -rf /srv/data"));
            assert_eq!(m.replaced, vec![(1, c)], "U+{:04X}", c as u32);
            assert!(!m.text.contains(c));
        }
        // Letters of other scripts, fullwidth and mathematical forms, on a Latin line.
        for c in [
            '\u{456}',
            '\u{430}',
            '\u{3BF}',
            '\u{561}',
            '\u{13AA}',
            '\u{5D5}',
            '\u{FF47}',
            '\u{1D420}',
            '\u{FF10}',
        ] {
            let m = marked(&format!("curl https://g{c}thub.com | sh"));
            assert_eq!(m.replaced, vec![(1, c)], "U+{:04X}", c as u32);
            assert_eq!(m.text, format!("curl https://g\\u{{{:x}}}thub.com | sh", c as u32));
        }
        // In prose, Spanish (Latin with accents, ¿ ¡ « »), and a line of another script
        // alone, stay; in a command, every one of them is marked.
        for text in [
            "echo '¿Listo? ¡Migración en curso! «ñandú», pingüino, Ångström, œuvre'",
            "東京都 москва",
            "plain ascii",
        ] {
            assert_eq!(prose(text).text, text);
            let m = marked(text);
            assert_eq!(m.replaced.len(), text.chars().filter(|c| !c.is_ascii()).count(), "{text}");
        }
        // Prose is one line: its line breaks are marked (red team adv16r F4); each part
        // between them is read for its own script, as it was written.
        let m = prose("echo hola\nпривет\necho gіt");
        assert_eq!(m.replaced, vec![(1, '\n'), (1, '\n'), (1, '\u{456}')]);
        assert_eq!(m.text, "echo hola\\nпривет\\necho g\\u{456}t");
    }

    /// Every character but printable ASCII, line feed and tab, of all of Unicode (all 1.1
    /// million scalar values: symbols, punctuation, marks, separators, letters of every
    /// script, Latin Extended, IPA, small capitals, fullwidth and mathematical forms, private
    /// use), is marked and named in a command, alone on a line or between ASCII letters; a
    /// prose range inside the text changes nothing outside it.
    #[test]
    fn every_non_ascii_character_of_a_command_is_marked() {
        for c in (0x80..=0x10FFFFu32).filter_map(char::from_u32) {
            assert!(marks(c), "U+{:04X}", c as u32);
        }
        for c in (0..0x80u8).map(char::from) {
            assert_eq!(marks(c), c.is_ascii_control() && c != '\n' && c != '\t', "{c:?}");
        }
        // Through the whole function, a chunk of the walk per call.
        let all: Vec<char> = (0x80..=0x10FFFFu32).filter_map(char::from_u32).collect();
        for chunk in all.chunks(4096) {
            let text: String = chunk.iter().flat_map(|c| ['a', *c, 'b']).collect();
            let m = marked(&text);
            assert_eq!(m.replaced.len(), chunk.len());
            assert!(m.text.is_ascii());
            let title = "¿Título? ñ";
            let with = format!("{title}\n{text}");
            let m = marked_spans(&with, &[(0..title.len(), Span::Prose)]);
            assert_eq!(m.replaced.len(), chunk.len(), "the prose range leaked");
            assert!(m.text.starts_with(title));
        }
        // The findings' look-alikes, each alone in a command, named in the note.
        for c in "ɡıᴀǀ♯﹟\u{37E}\u{1D159}\u{338}\u{20DD}".chars() {
            let m = marked(&format!("echo skipped {c} && rm -rf /data"));
            assert_eq!(m.note(), Some(format!("line 1: U+{:04X}", c as u32)));
        }
        assert_eq!(marked("./\u{445}.\u{455}\u{4bb}").text, "./\\u{445}.\\u{455}\\u{4bb}");
    }

    /// Names that differ at any one position (head, middle, tail), of every length around
    /// the width: the drawn labels are distinct, within the width, and a name that fits is
    /// drawn as it is.
    #[test]
    fn graph_labels_are_distinct_and_bounded() {
        for max in [8, 22, 32] {
            let base: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789_abcdefghijklmnop".chars().collect();
            let mut names = vec!["short".to_string()];
            for len in [max - 1, max, max + 1, max + 5, base.len()] {
                for at in 0..len {
                    let mut n: Vec<char> = base[..len].to_vec();
                    n[at] = 'X';
                    names.push(n.into_iter().collect());
                }
            }
            let drawn = labels(&names, max);
            assert_eq!(drawn.len(), names.len());
            let distinct: std::collections::BTreeSet<&String> = drawn.iter().collect();
            assert_eq!(distinct.len(), drawn.len(), "{drawn:?}");
            for (n, d) in names.iter().zip(&drawn) {
                assert!(d.chars().count() <= max, "{d:?}");
                if n.chars().count() <= max {
                    assert_eq!(n, d);
                }
            }
        }
    }

    #[test]
    fn markdown_values_cannot_add_lines_or_markup() {
        for (raw, shown) in [
            ("v1.0.0", "v1.0.0"),
            ("observe_before _x_ a_", "observe_before \\_x\\_ a\\_"),
            ("x\n- **Resultado:** Éxito", "x\\n- \\*\\*Resultado:\\*\\* Éxito"),
            ("# h", "\\# h"),
            ("- item", "\\- item"),
            ("12. item", "12\\. item"),
            ("a | b", "a \\| b"),
            ("<script>", "\\<script\\>"),
            ("`code` _(fill)_ [l](u) ~~s~~ \\", "\\`code\\` \\_(fill)\\_ \\[l\\](u) \\~\\~s\\~\\~ \\\\"),
        ] {
            assert_eq!(markdown(raw), shown, "{raw:?}");
        }
        assert_eq!(code("a`b|c\nd"), "a'b¦c\\nd");
    }
}
