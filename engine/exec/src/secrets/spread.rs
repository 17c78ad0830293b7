//! The second pass of the redactor: a secret's value, or one of its encodings, written with
//! separators between its characters (`S 3 c r`, `['S', '3', ...]`, `UzNj cjN0`), and hex
//! or character dumps that cut it over lines between offsets and columns (`xxd`,
//! `hexdump -C`, `od -c`). Red team adv19a-8.
//!
//! One rule, not one pattern per tool: text is read as its *value characters*, every byte
//! that is not a separator ([`is_separator`]); a pattern is the value characters of a form.
//! A line that is not part of a dump is matched on its own value characters. Consecutive
//! lines that begin with an offset ([`dump_line`]) are a dump: its hex columns are read as
//! one sequence and its character columns as another, across the lines, so a value cut at
//! any width, with offsets and the other column between its pieces, is one sequence again.
//! Every piece of a match is replaced by the secret's mark, on each line it covers.
//!
//! Patterns shorter than [`SPREAD_MIN`] value characters are not looked for: eight letters
//! and digits with separators allowed between them would match ordinary text.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

/// The fewest value characters a spread pattern has (shorter ones are not looked for).
pub const SPREAD_MIN: usize = 8;

/// The longest line held back before it is matched as it is (the caller hands on lines,
/// so a line is held until it ends; this bounds memory on output without line breaks).
pub const SPREAD_LINE_MAX: usize = 64 * 1024;

/// The most bytes of a dump held back before it is matched and handed on.
pub const SPREAD_BLOCK_MAX: usize = 1024 * 1024;

/// Bytes that may stand between the characters of a value without hiding it: white space,
/// quotes, the brackets and commas of a list, the bars and colons of a dump.
pub fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b"'\",[](){}|;:".contains(&b)
}

/// The value characters of `form`.
pub fn skeleton(form: &[u8]) -> Vec<u8> {
    form.iter().copied().filter(|b| !is_separator(*b)).collect()
}

/// The spread patterns of a redactor: an Aho-Corasick automaton over value characters.
pub struct Spread {
    matcher: AhoCorasick,
    marks: Vec<Arc<[u8]>>,
}

impl Spread {
    /// Patterns from `(value characters, mark)`; `None` when there are none long enough.
    pub fn new(patterns: Vec<(Vec<u8>, Arc<[u8]>)>) -> Option<Spread> {
        let mut seen = std::collections::HashSet::new();
        let mut pats = Vec::new();
        let mut marks = Vec::new();
        for (p, m) in patterns {
            if p.len() >= SPREAD_MIN && seen.insert(p.clone()) {
                pats.push(p);
                marks.push(m);
            }
        }
        if pats.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&pats)
            .ok()?;
        Some(Spread { matcher, marks })
    }

    /// Matches of the patterns in a view, as `(view start, view end, mark)`.
    fn find(&self, view: &[u8]) -> Vec<(usize, usize, Arc<[u8]>)> {
        self.matcher
            .find_iter(view)
            .map(|m| (m.start(), m.end(), self.marks[m.pattern().as_usize()].clone()))
            .collect()
    }
}

/// The line-holding state of one stream's second pass.
#[derive(Default)]
pub struct SpreadStream {
    /// The line being written (no line break yet).
    line: Vec<u8>,
    /// Complete dump lines, held until the dump ends.
    block: Vec<u8>,
}

impl SpreadStream {
    /// Bytes held back.
    pub fn held(&self) -> usize {
        self.line.len() + self.block.len()
    }

    /// Take `bytes` (already through the first pass), appending what is decided to `out`.
    pub fn push(&mut self, spread: &Spread, bytes: &[u8], out: &mut Vec<u8>) {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..=nl]);
            rest = &rest[nl + 1..];
            let line = std::mem::take(&mut self.line);
            self.complete(spread, line, out);
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > SPREAD_LINE_MAX {
            let line = std::mem::take(&mut self.line);
            self.complete(spread, line, out);
        }
    }

    /// The end of the stream.
    pub fn finish(&mut self, spread: &Spread, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.complete(spread, line, out);
        }
        self.flush_block(spread, out);
    }

    fn complete(&mut self, spread: &Spread, line: Vec<u8>, out: &mut Vec<u8>) {
        if dump_line(&line).is_some() {
            self.block.extend_from_slice(&line);
            if self.block.len() > SPREAD_BLOCK_MAX {
                self.flush_block(spread, out);
            }
        } else {
            self.flush_block(spread, out);
            out.extend(redact_line(spread, &line));
        }
    }

    fn flush_block(&mut self, spread: &Spread, out: &mut Vec<u8>) {
        if self.block.is_empty() {
            return;
        }
        let block = std::mem::take(&mut self.block);
        out.extend(redact_dump(spread, &block));
    }
}

/// A byte range `(start, end)` of a line.
pub type Span = (usize, usize);

/// The columns of a dump line: `None` when `line` does not begin with an offset (six to
/// sixteen hex or octal digits, an optional `:`, then white space or the end). Else the
/// byte ranges of its hex column (tokens of 2 to 8 hex digits, an even number, up to the
/// first other token) and of its character column (the rest).
pub fn dump_line(line: &[u8]) -> Option<(Vec<Span>, Span)> {
    let end = line.iter().rposition(|b| *b != b'\n' && *b != b'\r').map_or(0, |p| p + 1);
    let mut i = line.iter().position(|b| *b != b' ').unwrap_or(end).min(end);
    let start = i;
    while i < end && line[i].is_ascii_hexdigit() {
        i += 1;
    }
    if !(6..=16).contains(&(i - start)) {
        return None;
    }
    if i < end && line[i] == b':' {
        i += 1;
    }
    if i < end && !line[i].is_ascii_whitespace() {
        return None;
    }
    let mut hex = Vec::new();
    let mut digits = 0;
    loop {
        let gap = i;
        while i < end && line[i].is_ascii_whitespace() {
            i += 1;
        }
        let t = i;
        // `xxd`: the character column follows two spaces and has one character per byte
        // of the hex column, whatever it looks like (`cafe` is characters there).
        if !hex.is_empty() && t - gap >= 2 && end - t == digits / 2 {
            return Some((hex, (t, end)));
        }
        let mut k = i;
        while k < end && !line[k].is_ascii_whitespace() {
            k += 1;
        }
        let token = &line[t..k];
        let n = token.len();
        if t < end && (2..=8).contains(&n) && n.is_multiple_of(2) && token.iter().all(u8::is_ascii_hexdigit) {
            hex.push((t, k));
            digits += n;
            i = k;
        } else {
            return Some((hex, (t.min(end), end)));
        }
    }
}

/// One line (not a dump) with every spread form in its value characters replaced.
fn redact_line(spread: &Spread, line: &[u8]) -> Vec<u8> {
    let mut view = Vec::new();
    let mut map = Vec::new();
    for (i, b) in line.iter().enumerate() {
        if !is_separator(*b) {
            view.push(*b);
            map.push(i);
        }
    }
    let mut ranges = Vec::new();
    for (s, e, mark) in spread.find(&view) {
        ranges.push((map[s], map[e - 1] + 1, mark));
    }
    replace(line, ranges)
}

/// A dump (complete lines that begin with offsets): its hex columns and its character
/// columns are each one sequence across the lines; a match is replaced line by line.
fn redact_dump(spread: &Spread, block: &[u8]) -> Vec<u8> {
    let mut hex_view = Vec::new();
    let mut hex_map = Vec::new();
    let mut char_view = Vec::new();
    let mut char_map = Vec::new();
    let mut at = 0;
    let mut line_no = 0usize;
    let mut line_ids = vec![0usize; block.len()];
    while at < block.len() {
        let end = block[at..].iter().position(|b| *b == b'\n').map_or(block.len(), |p| at + p + 1);
        let line = &block[at..end];
        for id in &mut line_ids[at..end] {
            *id = line_no;
        }
        if let Some((hex, (cs, ce))) = dump_line(line) {
            for (s, e) in hex {
                hex_view.extend_from_slice(&line[s..e]);
                hex_map.extend((s..e).map(|k| at + k));
            }
            for (k, b) in line.iter().enumerate().take(ce).skip(cs) {
                if !is_separator(*b) {
                    char_view.push(*b);
                    char_map.push(at + k);
                }
            }
        }
        at = end;
        line_no += 1;
    }
    let mut ranges = Vec::new();
    for (view, map) in [(&hex_view, &hex_map), (&char_view, &char_map)] {
        for (s, e, mark) in spread.find(view) {
            // One range per line the match covers.
            let mut piece: Option<(usize, usize)> = None;
            for &b in &map[s..e] {
                piece = match piece {
                    Some((ps, pe)) if line_ids[ps] == line_ids[b] => Some((ps, pe.max(b + 1))),
                    Some((ps, pe)) => {
                        ranges.push((ps, pe, mark.clone()));
                        Some((b, b + 1))
                    }
                    None => Some((b, b + 1)),
                };
            }
            if let Some((ps, pe)) = piece {
                ranges.push((ps, pe, mark.clone()));
            }
        }
    }
    replace(block, ranges)
}

/// `bytes` with each range replaced by its mark (overlapping ranges merged, the first
/// one's mark kept).
fn replace(bytes: &[u8], mut ranges: Vec<(usize, usize, Arc<[u8]>)>) -> Vec<u8> {
    if ranges.is_empty() {
        return bytes.to_vec();
    }
    ranges.sort_by_key(|r| (r.0, r.1));
    let mut out = Vec::with_capacity(bytes.len());
    let mut cursor = 0;
    let mut i = 0;
    while i < ranges.len() {
        let (s, mut e, mark) = ranges[i].clone();
        let mut j = i + 1;
        while j < ranges.len() && ranges[j].0 < e {
            e = e.max(ranges[j].1);
            j += 1;
        }
        let s = s.max(cursor);
        out.extend_from_slice(&bytes[cursor..s]);
        if e > s {
            out.extend_from_slice(&mark);
        }
        cursor = cursor.max(e);
        i = j;
    }
    out.extend_from_slice(&bytes[cursor..]);
    out
}

#[cfg(test)]
mod tests {
    use crate::secrets::Redactor;

    const V: &str = "S3cr3tValue-Zq9xW7";

    fn redact(text: &str) -> String {
        Redactor::from_values([("T", V)]).redact(text)
    }

    /// Red team adv19a-8: base32 and ascii85/base85 as Python writes them (the expected
    /// strings are Python's `base64` module's output for `V`).
    #[test]
    fn base32_and_base85_are_forms() {
        for text in [
            "KMZWG4RTORLGC3DVMUWVU4JZPBLTO===",
            "KMZWG4RTORLGC3DVMUWVU4JZPBLTO",
            "kmzwg4rtorlgc3dvmuwvu4jzpblto===",
            ";_qp(1NZZ+Cis;@>&cQI=#U",
            "Q!`_7GjvvAY;|QVT5&meS2q",
        ] {
            let out = redact(&format!("enc: {text}\n"));
            assert!(out.contains("<secret:T>"), "{text}: {out}");
            assert!(!out.contains(&text[3..12]), "{text}: {out}");
        }
    }

    #[test]
    fn a_spread_value_is_found_within_a_line() {
        let chars: Vec<String> = V.chars().map(|c| format!("'{c}'")).collect();
        for text in
            [format!("[{}]", chars.join(", ")), V.chars().map(String::from).collect::<Vec<_>>().join(" ")]
        {
            let out = redact(&format!("{text}\n"));
            // From the first value character of the match to its last: the list's own
            // brackets and quotes around it stay.
            assert!(out.contains("<secret:T>") && !out.contains("'V', 'a'") && !out.contains("V a"), "{out}");
        }
    }

    #[test]
    fn a_dump_is_followed_across_its_lines_and_columns() {
        let xxd = "00000000: 6b65 793a 5333 6372 3374 5661 6c75 652d  key:S3cr3tValue-\n\
                   00000010: 5a71 3978 5737                           Zq9xW7\n";
        let out = redact(xxd);
        assert!(!out.contains("5333") && !out.contains("Zq9xW7") && !out.contains("S3cr3t"), "{out}");
        assert!(out.contains("6b65 793a") && out.contains("key"), "what is not the secret stays: {out}");
        assert_eq!(out.lines().count(), 2, "{out}");
    }

    #[test]
    fn ordinary_lines_and_dumps_are_unchanged() {
        for text in [
            "1000000 rows copied in 3.2s\n",
            "00000000: 6465 706c 6f79 2076 312e 3432  deploy v1.42\n",
            "ok: [web-1, web-2] changed=2\n",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
