//! The redactor's view of hex numbers (red team adv24 P3-a, P3-b, P3-c): a value's bytes
//! written as numbers with `0x` (`0x5375, 0x7033,` a C array of `uint16_t`; `0x7553` the
//! same word little-endian; `0x537570337253336372657456346c7565` a `uint128`) or as an
//! escape of every byte (`b'\x53\x75'`, `%53%75`, `\123\165`, `\u0053`), however many a
//! line, wrapped, indented or separated.
//!
//! One rule, not one pattern per word width, byte order or layout: a *run* is a sequence of
//! such tokens ([`token_at`]) with only separators ([`is_separator`]) between two of them on
//! a line, or any text around one line break (a comment at a line's end, a logger's prefix
//! or a declaration at the next line's beginning); a blank line ends it. A run is read as one
//! byte sequence in both byte orders: each token's bytes in order (big-endian) and each
//! token's bytes reversed (little-endian), so a word's width, a value's alignment in the
//! words and words of mixed widths do not matter. The spread patterns are matched on both
//! sequences (their separators skipped, as `spread::view` does), and every token a match
//! touches is replaced, one mark a line: no token keeps a byte of the value.
//!
//! This view runs on the raw stream, before the first pass: a pass that replaced a piece of
//! a word first (a swapped piece of the value in a 64-bit word) would leave the run with a
//! hole, and the words between the pieces readable.
//!
//! Lines are held only while a run reaches the end of the text seen and the end of one of its
//! sequences is the beginning of a pattern ([`Spread::under_way_from`]); a line without a
//! token goes out at once, and a line being written without one is not held either.

use super::spread::{Marked, Spread, is_separator, replace};

/// A hex-number token of the text: its byte range and the bytes it stands for, in the order
/// its digits give them (big-endian).
struct Token {
    start: usize,
    end: usize,
    bytes: Vec<u8>,
    /// The line it begins on, counted from the beginning of the text read.
    line: usize,
}

/// The token at `text[i]`, if one begins there:
/// - `0x` or `0X` standing alone (no letter or digit before it) and one or more hex digits,
///   `_` allowed between them (Rust, Go), perhaps with an integer suffix (`u`, `UL`, `u16`,
///   `_u8`, `usize`), and no letter or digit after it: the digits' bytes, an odd count
///   read with a leading zero;
/// - `\x` and two hex digits, `%` and two hex digits, `\` and three octal digits (the
///   first 0 to 3): one byte; `\u` and four hex digits: the character's UTF-8 bytes (a
///   surrogate is none).
///
/// The second value is where the token ends.
fn token_at(text: &[u8], i: usize) -> Option<(Vec<u8>, usize)> {
    let rest = &text[i..];
    match rest {
        [b'\\', b'x', a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
            Some((vec![nibble(*a) << 4 | nibble(*b)], i + 4))
        }
        [b'%', a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
            Some((vec![nibble(*a) << 4 | nibble(*b)], i + 3))
        }
        [b'\\', b'u', a, b, c, d, ..] if [a, b, c, d].iter().all(|h| h.is_ascii_hexdigit()) => {
            let v = [a, b, c, d].iter().fold(0u32, |v, h| v << 4 | u32::from(nibble(**h)));
            let c = char::from_u32(v)?;
            Some((c.to_string().into_bytes(), i + 6))
        }
        [b'\\', a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] => {
            Some((vec![(a - b'0') << 6 | (b - b'0') << 3 | (c - b'0')], i + 4))
        }
        [b'0', b'x' | b'X', first, ..] if first.is_ascii_hexdigit() => {
            // Standing alone: after no letter or digit, unless that ends a colour.
            let after_escape = || {
                (2..=34.min(i)).any(|k| text[i - k] == 0x1b && super::escape_len(&text[i - k..]) == Some(k))
            };
            if i > 0 && text[i - 1].is_ascii_alphanumeric() && !after_escape() {
                return None;
            }
            let mut digits = Vec::new();
            let mut k = 2;
            while k < rest.len() {
                match rest[k] {
                    c if c.is_ascii_hexdigit() => digits.push(c),
                    b'_' if rest.get(k + 1).is_some_and(u8::is_ascii_hexdigit) => {}
                    _ => break,
                }
                k += 1;
            }
            k += suffix_len(&rest[k..]);
            if rest.get(k).is_some_and(u8::is_ascii_alphanumeric) {
                return None;
            }
            if digits.len() % 2 == 1 {
                digits.insert(0, b'0');
            }
            let bytes = digits.chunks(2).map(|d| nibble(d[0]) << 4 | nibble(d[1])).collect();
            Some((bytes, i + k))
        }
        _ => None,
    }
}

/// The length of an integer literal's suffix at the start of `rest`: C's `u`/`l` in any
/// case and number, or Rust's `u8`..`u128`, `i8`..`i128`, `usize`, `isize`, perhaps after
/// `_`. Zero when there is none.
fn suffix_len(rest: &[u8]) -> usize {
    let skip = usize::from(rest.first() == Some(&b'_'));
    let body = &rest[skip..];
    let c = body.iter().take(3).take_while(|c| matches!(c, b'u' | b'U' | b'l' | b'L')).count();
    if c > 0 && !body.get(c).is_some_and(u8::is_ascii_alphanumeric) {
        return skip + c;
    }
    for s in [
        &b"usize"[..],
        b"isize",
        b"u128",
        b"i128",
        b"u64",
        b"i64",
        b"u32",
        b"i32",
        b"u16",
        b"i16",
        b"u8",
        b"i8",
    ] {
        if body.starts_with(s) {
            return skip + s.len();
        }
    }
    0
}

/// The value of a hex digit (0 for any other byte: callers pass hex digits only).
fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Whether a token may begin in `text` (or at its very end, with more bytes to come).
fn may_hold_token(text: &[u8]) -> bool {
    text.windows(2).any(|w| {
        matches!(w, [b'0', b'x' | b'X'] | [b'\\', b'x' | b'u' | b'0'..=b'3'])
            || (w[0] == b'%' && w[1].is_ascii_hexdigit())
    }) || matches!(text.last(), Some(b'0' | b'\\' | b'%'))
}

/// The tokens of `text`, in order.
fn tokens(text: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 0;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\n' => line += 1,
            b'0' | b'\\' | b'%' => {
                if let Some((bytes, end)) = token_at(text, i) {
                    out.push(Token { start: i, end, bytes, line });
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether the text between two tokens keeps them in one run: only separators on one line
/// (and the escape sequences a terminal does not show as characters: a highlighter's
/// colours), or anything around a single line break.
fn joins(gap: &[u8]) -> bool {
    match gap.iter().filter(|b| **b == b'\n').count() {
        0 => {
            let mut i = 0;
            while i < gap.len() {
                match gap[i] {
                    0x1b => match super::escape_len(&gap[i..]) {
                        Some(n) => i += n,
                        None => return false,
                    },
                    b if is_separator(b) => i += 1,
                    _ => return false,
                }
            }
            true
        }
        1 => true,
        _ => false,
    }
}

/// The runs of `tokens` in `text`, as ranges of token indices. A line break after more
/// separators in a row than any form holds (`separators`; counted over the tokens that
/// stand only for separators, `%20`, `0x2f`, since the last that stands for a value
/// character) ends a run: no value's bytes carry more. Without the bound, one number near
/// the beginning of a pattern followed by URL-encoded lines (`a%20b` on each) held every
/// later line and read it again at each line, without end (red team adv26 W1: 8,000 such
/// lines took 24 s of CPU, and nothing was shown until the step ended).
fn runs(text: &[u8], tokens: &[Token], separators: usize) -> Vec<std::ops::Range<usize>> {
    // Separator bytes since the last token that stands for a value character.
    let blank = |t: &Token, before: usize| {
        if t.bytes.iter().any(|b| !is_separator(*b)) { 0 } else { before + t.bytes.len() }
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut seps = tokens.first().map_or(0, |t| blank(t, 0));
    for k in 1..=tokens.len() {
        let next = tokens.get(k).map(|t| blank(t, seps));
        if k == tokens.len()
            || !joins(&text[tokens[k - 1].end..tokens[k].start])
            || (tokens[k].line != tokens[k - 1].line && next.is_some_and(|n| n > separators))
        {
            if k > start {
                out.push(start..k);
            }
            start = k;
            seps = tokens.get(k).map_or(0, |t| blank(t, 0));
        } else {
            seps = next.unwrap_or(0);
        }
    }
    out
}

/// A run read as one byte sequence: its value characters (separators skipped), each with
/// the index of the token it comes from. `little` reverses each token's bytes.
fn sequence(tokens: &[Token], run: &std::ops::Range<usize>, little: bool) -> (Vec<u8>, Vec<usize>) {
    let mut view = Vec::new();
    let mut map = Vec::new();
    for t in run.clone() {
        let bytes = &tokens[t].bytes;
        let mut push = |b: u8| {
            if !is_separator(b) {
                view.push(b);
                map.push(t);
            }
        };
        if little {
            bytes.iter().rev().copied().for_each(&mut push);
        } else {
            bytes.iter().copied().for_each(&mut push);
        }
    }
    (view, map)
}

/// The held text of one stream's hex-number view.
#[derive(Default)]
pub struct WordsStream {
    /// Complete lines (and the rest of a line cut by the bound) in which a run may still
    /// be under way at the end.
    held: Vec<u8>,
    /// The line being written, when it may hold a token.
    line: Vec<u8>,
}

impl WordsStream {
    /// Bytes held back.
    pub fn held(&self) -> usize {
        self.held.len() + self.line.len()
    }

    /// Take `bytes` (raw output), appending what is decided to `out`.
    pub fn push(&mut self, spread: &Spread, bytes: &[u8], out: &mut Vec<u8>) {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..=nl]);
            rest = &rest[nl + 1..];
            let line = std::mem::take(&mut self.line);
            if self.held.is_empty() && !may_hold_token(&line) {
                // The common case: a line without a token goes out as it is.
                out.extend_from_slice(&line);
                continue;
            }
            self.held.extend_from_slice(&line);
            self.settle(spread, false, false, out);
        }
        self.line.extend_from_slice(rest);
        if self.held.is_empty() && !may_hold_token(&self.line) {
            // A line being written without a token goes on at once (the next passes decide).
            out.append(&mut self.line);
        } else if self.line.len() > spread.line_max() {
            let line = std::mem::take(&mut self.line);
            self.held.extend_from_slice(&line);
            self.settle(spread, false, true, out);
        }
    }

    /// The end of the stream.
    pub fn finish(&mut self, spread: &Spread, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        self.held.extend_from_slice(&line);
        self.settle(spread, true, false, out);
    }

    /// Every run of the held text matched in both byte orders; what is decided goes out,
    /// redacted: all of it with `last`, else the text before the token from which a run at
    /// the end may still be the beginning of a pattern (and, with `cut`, before a token the
    /// next bytes may continue), never inside a match.
    fn settle(&mut self, spread: &Spread, last: bool, cut: bool, out: &mut Vec<u8>) {
        let text = std::mem::take(&mut self.held);
        let tokens = tokens(&text);
        let runs = runs(&text, &tokens, spread.separators());
        let mut ranges: Vec<Marked> = Vec::new();
        // Each match as the range of tokens it touches.
        let mut matched: Vec<(usize, usize)> = Vec::new();
        let mut keep_from = text.len();
        for (r, run) in runs.iter().enumerate() {
            let final_run = r + 1 == runs.len();
            let mut from = None;
            for little in [false, true] {
                let (view, map) = sequence(&tokens, run, little);
                for (s, e, p) in spread.find_patterns(&view) {
                    let (first, last_token) = edged(&tokens, run, spread.edges(p), map[s], map[e - 1]);
                    matched.push((first, last_token));
                    pieces(&tokens[first..=last_token], spread.mark(p), &mut ranges);
                }
                // A run that may go on after the text seen (one line break at most after
                // its last token) and whose sequence ends in the beginning of a pattern.
                let open = !last
                    && final_run
                    && text[tokens[run.end - 1].end..].iter().filter(|b| **b == b'\n').count() <= 1;
                if open && let Some(i) = spread.under_way_from(&view) {
                    from = Some(from.map_or(map[i], |f: usize| f.min(map[i])));
                }
            }
            if let Some(mut first) = from {
                // A match across the token kept first is kept whole (and found again).
                let mut moved = true;
                while moved {
                    moved = false;
                    for &(s, e) in &matched {
                        if s < first && e >= first {
                            first = s;
                            moved = true;
                        }
                    }
                }
                keep_from = tokens[first].start;
            }
        }
        if cut && !last {
            // A token at the very end, or the beginning of one, may go on with the next bytes.
            let tail = tokens.last().filter(|t| t.end == text.len()).map(|t| t.start);
            let n = text.len();
            let partial = if [&b"0x"[..], b"0X", b"\\x"].iter().any(|p| text.ends_with(p)) {
                Some(n - 2)
            } else if n >= 3 && text[n - 3..n - 1] == *b"\\x" {
                Some(n - 3)
            } else if text.ends_with(b"0") || text.ends_with(b"\\") {
                Some(n - 1)
            } else {
                None
            };
            keep_from = [Some(keep_from), tail, partial].into_iter().flatten().min().unwrap_or(keep_from);
            // Bounded: a cut keeps at most half the line bound.
            keep_from = keep_from.max(text.len().saturating_sub(spread.line_max() / 2));
        }
        ranges.retain(|r| r.1 <= keep_from);
        out.extend(replace(&text[..keep_from], ranges));
        self.held = text[keep_from..].to_vec();
    }
}

/// A match's tokens `first..=last` in `run`, extended over the tokens next to them that
/// stand for the separators its form begins and ends with (a value `--Key`: its skeleton
/// leaves them out), as many bytes as the form has.
fn edged(
    tokens: &[Token],
    run: &std::ops::Range<usize>,
    (head, tail): (&[u8], &[u8]),
    mut first: usize,
    mut last: usize,
) -> (usize, usize) {
    let separators = |t: &Token| t.bytes.iter().all(|b| is_separator(*b));
    let mut n = 0;
    while first > run.start && n < head.len() && separators(&tokens[first - 1]) {
        first -= 1;
        n += tokens[first].bytes.len();
    }
    n = 0;
    while last + 1 < run.end && n < tail.len() && separators(&tokens[last + 1]) {
        last += 1;
        n += tokens[last].bytes.len();
    }
    (first, last)
}

/// The ranges that replace `tokens` (a match's): one a line, from its first token to its
/// last.
fn pieces(tokens: &[Token], mark: &std::sync::Arc<[u8]>, ranges: &mut Vec<Marked>) {
    let mut piece: Option<(usize, usize, usize)> = None;
    for t in tokens {
        piece = match piece {
            Some((s, _, line)) if line == t.line => Some((s, t.end, line)),
            Some((s, e, _)) => {
                ranges.push((s, e, mark.clone()));
                Some((t.start, t.end, t.line))
            }
            None => Some((t.start, t.end, t.line)),
        };
    }
    if let Some((s, e, _)) = piece {
        ranges.push((s, e, mark.clone()));
    }
}

#[cfg(test)]
mod tests {
    use crate::secrets::Redactor;

    const V: &str = "Sup3rS3cretV4lue-xyz9Q";

    /// `V`'s bytes in words of `n` bytes (zero-padded), in either byte order, as `0x` words.
    fn words(n: usize, little: bool) -> Vec<String> {
        V.as_bytes()
            .chunks(n)
            .map(|c| {
                let mut w = c.to_vec();
                w.resize(n, 0);
                if little {
                    w.reverse();
                }
                format!("0x{}", w.iter().map(|b| format!("{b:02x}")).collect::<String>())
            })
            .collect()
    }

    #[test]
    fn a_c_array_wrapped_at_one_or_two_words_a_line_is_redacted_whole() {
        let r = Redactor::from_values([("T", V)]);
        for n in [1, 2, 4, 8, 10, 16] {
            for little in [false, true] {
                for per in [1, 2, 3] {
                    let lines: Vec<String> =
                        words(n, little).chunks(per).map(|c| format!("    {},", c.join(", "))).collect();
                    let text = format!("static const uint{}_t k[] = {{\n{}\n}};\n", n * 8, lines.join("\n"));
                    let out = r.redact(&text);
                    assert!(!out.contains("0x"), "{n} {little} {per}: {out}");
                    assert_eq!(out.lines().count(), text.lines().count(), "{out}");
                    assert!(out.starts_with("static const uint") && out.ends_with("};\n"), "{out}");
                }
            }
        }
    }

    #[test]
    fn colours_between_the_numbers_do_not_hide_them() {
        let r = Redactor::from_values([("T", V)]);
        let text: Vec<String> = words(4, true).iter().map(|w| format!("\x1b[33m{w}\x1b[0m")).collect();
        let out = r.redact(&format!("{}\n", text.join(", ")));
        assert!(!out.contains("0x"), "{out:?}");
    }

    #[test]
    fn escapes_of_every_byte_wrapped_over_lines_are_redacted() {
        let r = Redactor::from_values([("T", V)]);
        let escapes: [fn(u8) -> String; 4] = [
            |b| format!("\\x{b:02x}"),
            |b| format!("%{b:02X}"),
            |b| format!("\\{b:03o}"),
            |b| format!("\\u{b:04x}"),
        ];
        for f in escapes {
            let escaped: Vec<String> = V.bytes().map(f).collect();
            let text: Vec<String> = escaped.chunks(3).map(|c| format!("  \"{}\"", c.concat())).collect();
            let out = r.redact(&format!("{}\n", text.join("\n")));
            assert!(out.lines().all(|l| l.contains("<secret:T>")), "{out}");
        }
    }

    #[test]
    fn ordinary_numbers_are_unchanged() {
        let r = Redactor::from_values([("T", V)]);
        for text in [
            "static const uint32_t k[] = {\n    0xdeadbeef, 0x00000001,\n    0x7f3a2b1c,\n};\n",
            "mask=0xFF addr=0x7ffe5375 \\x1b[0m\n",
            "let a = [0x53_75u16, 0x1234usize];\n",
        ] {
            assert_eq!(r.redact(text), text);
        }
    }
}
