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
//!
//! Red team s20: a line is also read through a decoding view ([`view`]): every escape the
//! redactor knows (`\x53`, `\u0053`, `%53`, `=53`, `&#83;`, `0x53`...) read as the bytes it
//! stands for, with a map back to its bytes, so an escape on every character and any mix
//! of escapes and separators are one rule. Dump lines are recognised by shape (an offset
//! after indentation or a logger's prefix, or lines of only hex groups or `od -c` cells),
//! and a line or a dump cut by a bound keeps the beginning of what may continue.
//!
//! Red team adv21: the piece of base64 or hex a line ends in ([`wrap_token`]), whatever is
//! before it (a time stamp, quotes, deep indentation), is read together with the next
//! line's while a form may be under way at its end, so a wrapped form behind a prefix on
//! each line is one sequence; uuencoded lines too. More separators (`_`, `+`, `<`, `>`),
//! braced and CSS escapes, 64-bit and decimal words, bits, and a line bound that grows with
//! the longest pattern.
//!
//! Red team adv22: a dump's numbers are words of 2, 4 or 8 bytes in octal, decimal or hex
//! (the forms are the caller's); a bare line of numbers in columns of one width is a dump
//! line ([`numbers`]), and a dump's whole lines are read too, as `od -An`'s first word reads
//! as an offset.

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
/// quotes, the brackets (angle brackets too: `od -tx1z`'s `>S3cr<`) and commas of a list,
/// the bars and colons of a dump, and the dashes, dots, slashes, underscores and pluses
/// people and tools put between characters or bytes (`53-33-63`, `S.3.c.r`, `S_3_c_r`,
/// `S+3+c+r`: red team adv21-6).
pub fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b"'\",[](){}<>|;:-./_+".contains(&b)
}

/// The value characters of `form`.
pub fn skeleton(form: &[u8]) -> Vec<u8> {
    form.iter().copied().filter(|b| !is_separator(*b)).collect()
}

/// The spread patterns of a redactor: an Aho-Corasick automaton over value characters.
pub struct Spread {
    matcher: AhoCorasick,
    /// The same patterns with every match reported ([`Spread::find_patterns`] reads it
    /// state by state): a leftmost-longest search alone skips a match that begins inside
    /// the one it reports.
    every: aho_corasick::nfa::contiguous::NFA,
    marks: Vec<Arc<[u8]>>,
    /// The separators each pattern's form begins and ends with (a value `Key-AB--`): a
    /// match in a line is extended over them, written as they are or escaped, so that an
    /// escape on every character leaves none of the value.
    edges: Vec<(Vec<u8>, Vec<u8>)>,
    /// The longest pattern, in value characters: what a cut must leave on its far side.
    longest: usize,
    /// The patterns, and their indices by first byte: what the end of wrapped lines may be
    /// the beginning of.
    patterns: Vec<Vec<u8>>,
    by_first: Vec<Vec<usize>>,
    /// Every run of [`WRAP_CARRY`] value characters in a pattern: a view whose end is none
    /// is no beginning of a pattern (one look-up a line, not one a position).
    grams: std::collections::HashSet<[u8; WRAP_CARRY]>,
    /// The first one to three value characters of every pattern: what a view's last few
    /// characters may be the beginning of, when [`Spread::grams`] rules out more.
    heads: std::collections::HashSet<Vec<u8>>,
    /// The most separators in a row in any form: how many a run of numbers may carry
    /// between two of a value's characters.
    separators: usize,
}

impl Spread {
    /// Patterns from `(form, mark)`, matched on their value characters ([`skeleton`]);
    /// `None` when there are none long enough.
    pub fn new(patterns: Vec<(Vec<u8>, Arc<[u8]>)>) -> Option<Spread> {
        let mut seen = std::collections::HashSet::new();
        let mut pats = Vec::new();
        let mut marks = Vec::new();
        let mut edges = Vec::new();
        let mut separators = 0;
        for (form, m) in patterns {
            let p = skeleton(&form);
            if p.len() >= SPREAD_MIN && seen.insert(p.clone()) {
                let mut in_row = 0;
                for b in &form {
                    in_row = if is_separator(*b) { in_row + 1 } else { 0 };
                    separators = separators.max(in_row);
                }
                let head = form.iter().take_while(|b| is_separator(**b)).copied().collect();
                let tail: Vec<u8> = form.iter().rev().take_while(|b| is_separator(**b)).copied().collect();
                edges.push((head, tail.into_iter().rev().collect()));
                pats.push(p);
                marks.push(m);
            }
        }
        if pats.is_empty() {
            return None;
        }
        let longest = pats.iter().map(Vec::len).max().unwrap_or(SPREAD_MIN);
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&pats)
            .ok()?;
        let every = aho_corasick::nfa::contiguous::Builder::new()
            .match_kind(MatchKind::Standard)
            .build(&pats)
            .ok()?;
        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in pats.iter().enumerate() {
            if let Some(b) = p.first() {
                by_first[usize::from(*b)].push(i);
            }
        }
        let grams = pats
            .iter()
            .flat_map(|p| p.windows(WRAP_CARRY).filter_map(|w| <[u8; WRAP_CARRY]>::try_from(w).ok()))
            .collect();
        let heads = pats.iter().flat_map(|p| (1..WRAP_CARRY).map(|k| p[..k].to_vec())).collect();
        Some(Spread {
            matcher,
            every,
            marks,
            edges,
            longest,
            patterns: pats,
            by_first,
            grams,
            heads,
            separators,
        })
    }

    /// The most separators in a row in any pattern's form.
    pub fn separators(&self) -> usize {
        self.separators
    }

    /// The longest line held before it is cut: [`SPREAD_LINE_MAX`], or eight bytes a value
    /// character of the longest pattern when that is more (a 25,000-character secret with a
    /// separator between its characters is a form of 50,000 bytes, and a cut keeps the far
    /// side's beginning only within half the bound: red team adv21-7).
    pub fn line_max(&self) -> usize {
        SPREAD_LINE_MAX.max(self.longest.saturating_mul(8))
    }

    /// Whether a pattern begins at `view[i]`: the rest of the view is the beginning of one,
    /// or begins with one.
    fn begins_at(&self, view: &[u8], i: usize) -> bool {
        let rest = &view[i..];
        rest.first().is_some_and(|b| {
            self.by_first[usize::from(*b)].iter().any(|&p| {
                let p = &self.patterns[p];
                let k = p.len().min(rest.len());
                p[..k] == rest[..k]
            })
        })
    }

    /// The first position of `view` from which at least `min` value characters to its end
    /// are the beginning of a pattern (which more characters could complete).
    fn under_way(&self, view: &[u8], min: usize) -> Option<usize> {
        let n = view.len();
        let last =
            view.get(n.checked_sub(WRAP_CARRY)?..).and_then(|w| <[u8; WRAP_CARRY]>::try_from(w).ok())?;
        if min >= WRAP_CARRY && !self.grams.contains(&last) {
            return None;
        }
        (n.saturating_sub(self.longest)..=n.saturating_sub(min)).filter(|i| *i < n).find(|&i| {
            let tail = &view[i..];
            self.by_first[usize::from(tail[0])].iter().any(|&p| {
                let p = &self.patterns[p];
                p.len() > tail.len() && p.starts_with(tail)
            })
        })
    }

    /// The first position of `view` from which its rest, one value character or more, is
    /// the beginning of a pattern that more characters could complete: [`Spread::under_way`]
    /// for four or more, then its last three, two, one (a look-up each).
    pub(super) fn under_way_from(&self, view: &[u8]) -> Option<usize> {
        let n = view.len();
        self.under_way(view, WRAP_CARRY)
            .or_else(|| (n.saturating_sub(WRAP_CARRY - 1)..n).find(|&i| self.heads.contains(&view[i..])))
    }

    /// The separators pattern `p`'s form begins and ends with.
    pub(super) fn edges(&self, p: usize) -> (&[u8], &[u8]) {
        (&self.edges[p].0, &self.edges[p].1)
    }

    /// The mark of pattern `p`.
    pub(super) fn mark(&self, p: usize) -> &Arc<[u8]> {
        &self.marks[p]
    }

    /// Matches of the patterns in a view, as `(view start, view end, mark)`.
    fn find(&self, view: &[u8]) -> Vec<(usize, usize, Arc<[u8]>)> {
        self.find_patterns(view).into_iter().map(|(s, e, p)| (s, e, self.marks[p].clone())).collect()
    }

    /// Every stretch of a view that a pattern matches, as `(view start, view end, pattern)`:
    /// matches that overlap are one stretch, with the pattern of the one that begins first.
    ///
    /// Not the leftmost-longest matches alone: one of them may begin before a longer match
    /// and end inside it, and the longer one's rest would be left (red team OD25: `od -tx4`
    /// after `od -An -x`, whose last word `0031` and the next dump's first word are the
    /// value's first five bytes swapped, a form, which took the word that begins the whole
    /// value's words; the value's other words stayed readable). A view read across lines
    /// (a dump, wrapped pieces, a run of numbers) puts the end of one text before the
    /// beginning of the next, so what a form's beginning may follow is anything.
    ///
    /// Linear: the leftmost-longest search (with its prefilter) first, and only when it
    /// finds a match (every match meets one of its matches) one walk of the automaton,
    /// taking at each position the longest pattern that ends there.
    pub(super) fn find_patterns(&self, view: &[u8]) -> Vec<(usize, usize, usize)> {
        use aho_corasick::automaton::Automaton;
        if self.matcher.find(view).is_none() {
            return Vec::new();
        }
        let nfa = &self.every;
        let Ok(mut sid) = nfa.start_state(aho_corasick::Anchored::No) else {
            return self
                .matcher
                .find_iter(view)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                .collect();
        };
        // The longest pattern of each match state (the first in order on a tie), looked up once.
        let mut longest: std::collections::HashMap<aho_corasick::automaton::StateID, (usize, usize)> =
            std::collections::HashMap::new();
        let mut out: Vec<(usize, usize, usize)> = Vec::new();
        for (i, &b) in view.iter().enumerate() {
            sid = nfa.next_state(aho_corasick::Anchored::No, sid, b);
            if !nfa.is_match(sid) {
                continue;
            }
            let (len, pattern) = *longest.entry(sid).or_insert_with(|| {
                (0..nfa.match_len(sid))
                    .map(|k| {
                        let p = nfa.match_pattern(sid, k);
                        (nfa.pattern_len(p), p.as_usize())
                    })
                    .max_by_key(|(len, p)| (*len, std::cmp::Reverse(*p)))
                    .unwrap_or((0, 0))
            });
            if len == 0 || len > i + 1 {
                continue;
            }
            let (mut s, e, mut p) = (i + 1 - len, i + 1, pattern);
            // Stretches it overlaps are one with it (each is popped once: linear).
            while let Some(&(ls, le, lp)) = out.last() {
                if s >= le {
                    break;
                }
                if ls < s {
                    (s, p) = (ls, lp);
                }
                out.pop();
            }
            out.push((s, e, p));
        }
        out
    }

    /// The byte range `start..end` of a match of `pattern` in `line`, extended over the
    /// separators its form begins and ends with, each as it is or escaped, white space
    /// between them allowed.
    fn extend(&self, line: &[u8], pattern: usize, start: usize, end: usize) -> (usize, usize) {
        let (head, tail) = &self.edges[pattern];
        let mut e = end;
        for want in tail {
            let mut q = e;
            while q < line.len() && line[q].is_ascii_whitespace() && !want.is_ascii_whitespace() {
                q += 1;
            }
            match (line.get(q), escape_at(line, q)) {
                (_, Some((bytes, n))) if bytes == [*want] => e = q + n,
                (Some(b), _) if b == want => e = q + 1,
                _ => break,
            }
        }
        let mut s = start;
        for want in head.iter().rev() {
            let mut q = s;
            while q > 0 && line[q - 1].is_ascii_whitespace() && !want.is_ascii_whitespace() {
                q -= 1;
            }
            if q > 0 && line[q - 1] == *want {
                s = q - 1;
                continue;
            }
            match (2..=12.min(q))
                .find(|k| escape_at(line, q - k).is_some_and(|(bytes, n)| n == *k && bytes == [*want]))
            {
                Some(k) => s = q - k,
                None => break,
            }
        }
        (s, e)
    }
}

/// The line-holding state of one stream's second pass.
#[derive(Default)]
pub struct SpreadStream {
    /// The line being written (no line break yet).
    line: Vec<u8>,
    /// Complete dump lines, held until the dump ends.
    block: Vec<u8>,
    /// Complete lines that end in a piece of an encoding (see [`wrap_token`]) which a form
    /// may continue from on the next line, held until none can.
    wrap: Vec<u8>,
    /// The last value characters (fewer than [`WRAP_CARRY`]) of the wrapped pieces that
    /// went out: a form that begins in them is found, and replaced from the next line on.
    carry: Vec<u8>,
}

/// A form is followed from one line's end into the next when at least this many of its
/// value characters end the line (fewer go out, and are the carry).
const WRAP_CARRY: usize = 4;

impl SpreadStream {
    /// Bytes held back.
    pub fn held(&self) -> usize {
        self.line.len() + self.block.len() + self.wrap.len()
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
        if self.line.len() > spread.line_max() {
            // A line too long to hold: what is decided goes out, and its end, which may be
            // the beginning of a form, stays (a form across the cut is not left in two).
            self.flush_block(spread, out);
            self.settle_wrap(spread, true, out);
            self.carry.clear();
            let line = std::mem::take(&mut self.line);
            let keep = redact_line_before_cut(spread, &line, out);
            self.line = line[keep..].to_vec();
        }
    }

    /// The end of the stream.
    pub fn finish(&mut self, spread: &Spread, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.complete(spread, line, out);
        }
        self.flush_block(spread, out);
        self.settle_wrap(spread, true, out);
    }

    fn complete(&mut self, spread: &Spread, line: Vec<u8>, out: &mut Vec<u8>) {
        // A blank line inside a dump waits with it (a dump printed with blank lines between
        // its lines: red team adv21-6). It ends a wrapped form: pieces of a value with a
        // blank line between them are two texts (the first pass's rule too).
        let blank_in_dump = line.iter().all(u8::is_ascii_whitespace) && !self.block.is_empty();
        // An offset alone (`od`'s last line) continues a dump and never begins one: alone
        // it is a piece of a wrapped form as likely (`xxd -p -c 8`, indented).
        let dump = dump_line(&line, !self.block.is_empty()).filter(|(hex, (cs, ce))| {
            !(self.block.is_empty() && hex.is_empty() && line[*cs..*ce].trim_ascii().is_empty())
        });
        if blank_in_dump || dump.is_some() {
            self.settle_wrap(spread, true, out);
            self.carry.clear();
            self.block.extend_from_slice(&line);
            if self.block.len() > SPREAD_BLOCK_MAX {
                // The block's last lines, which may hold the beginning of a form, stay.
                let block = std::mem::take(&mut self.block);
                let keep = redact_dump_before_cut(spread, &block, out);
                self.block = block[keep..].to_vec();
            }
        } else if let Some((ts, te)) = wrap_token(&line) {
            self.flush_block(spread, out);
            if self.wrap.is_empty() {
                // The common case, a line alone (base64 at 76 columns, a word at a line's
                // end): when no form may be under way at its end and none begins in the
                // carry, it is a line like any other, and its piece is the next carry.
                let mut view = std::mem::take(&mut self.carry);
                let carried = view.len();
                view.extend(line[ts..te].iter().filter(|b| !is_separator(**b)));
                if spread.under_way(&view, WRAP_CARRY).is_none()
                    && !(0..carried).any(|i| spread.begins_at(&view, i))
                {
                    out.extend(redact_line(spread, &line));
                    self.carry = view[view.len().saturating_sub(WRAP_CARRY - 1)..].to_vec();
                    return;
                }
                view.truncate(carried);
                self.carry = view;
            }
            self.wrap.extend_from_slice(&line);
            let last = self.wrap.len() > SPREAD_BLOCK_MAX;
            self.settle_wrap(spread, last, out);
        } else {
            self.flush_block(spread, out);
            self.settle_wrap(spread, true, out);
            self.carry.clear();
            out.extend(redact_line(spread, &line));
        }
    }

    fn flush_block(&mut self, spread: &Spread, out: &mut Vec<u8>) {
        if self.block.is_empty() {
            return;
        }
        let block = std::mem::take(&mut self.block);
        let (ranges, _) = dump_ranges(spread, &block);
        out.extend(replace(&block, ranges));
    }

    /// The wrapped lines held: their pieces (each line's [`wrap_token`]) are read as one
    /// sequence after the carry, and the lines go out, redacted, up to the line where a
    /// form may be under way at the end (at least [`WRAP_CARRY`] value characters that
    /// begin a pattern); with `last`, all of them.
    fn settle_wrap(&mut self, spread: &Spread, last: bool, out: &mut Vec<u8>) {
        if self.wrap.is_empty() {
            return;
        }
        let mut view = self.carry.clone();
        let mut map: Vec<Option<usize>> = vec![None; view.len()];
        let mut starts = Vec::new();
        let mut at = 0;
        while at < self.wrap.len() {
            let end =
                self.wrap[at..].iter().position(|b| *b == b'\n').map_or(self.wrap.len(), |p| at + p + 1);
            starts.push(at);
            if let Some((s, e)) = wrap_token(&self.wrap[at..end]) {
                for k in at + s..at + e {
                    if !is_separator(self.wrap[k]) {
                        view.push(self.wrap[k]);
                        map.push(Some(k));
                    }
                }
            }
            at = end;
        }
        let matches = spread.find_patterns(&view);
        // The view position from which a form may still be under way.
        let pending = if last { None } else { spread.under_way(&view, WRAP_CARRY) };
        // The lines before the one it is in go out, unless a match that reaches a kept line
        // begins in them (it is replaced whole, later).
        let release = match pending {
            None => self.wrap.len(),
            Some(mut from) => {
                let line_of =
                    |pos: Option<usize>| pos.map(|b| starts.iter().rposition(|s| *s <= b).unwrap_or(0));
                let mut moved = true;
                while moved {
                    moved = false;
                    let first_kept = map[from..].iter().flatten().next().copied();
                    let kept_line = line_of(first_kept);
                    for &(s, e, _) in &matches {
                        let reaches = map[s..e].iter().flatten().any(|b| line_of(Some(*b)) >= kept_line);
                        if s < from && reaches {
                            from = s;
                            moved = true;
                        }
                    }
                }
                // A form under way from the carry keeps every line.
                match map.get(from).copied().flatten() {
                    Some(b) => starts[starts.iter().rposition(|s| *s <= b).unwrap_or(0)],
                    None => 0,
                }
            }
        };
        if release == 0 {
            return;
        }
        let mut ranges = Vec::new();
        let mut line_ids = vec![0usize; release];
        for (n, &s) in starts.iter().enumerate().filter(|(_, s)| **s < release) {
            let e = self.wrap[s..release].iter().position(|b| *b == b'\n').map_or(release, |p| s + p + 1);
            for id in &mut line_ids[s..e] {
                *id = n;
            }
            let (r, _) = line_ranges(spread, &self.wrap[s..e]);
            ranges.extend(r.into_iter().map(|(a, b, m)| (a + s, b + s, m)));
        }
        for (s, e, p) in matches {
            let positions: Vec<usize> =
                map[s..e].iter().flatten().copied().filter(|b| *b < release).collect();
            pieces(&positions, &line_ids, &spread.marks[p], &mut ranges);
        }
        let wrap = std::mem::take(&mut self.wrap);
        out.extend(replace(&wrap[..release], ranges));
        self.wrap = wrap[release..].to_vec();
        // What went out may hold the beginning of a form continued on the next line.
        self.carry = if self.wrap.is_empty() {
            view[view.len().saturating_sub(WRAP_CARRY - 1)..].to_vec()
        } else {
            Vec::new()
        };
    }
}

/// The piece of an encoding a line ends in, which a wrapped form may continue from or into
/// (`base64 -w 20`, `xxd -p`, each line behind a time stamp, `> ` quotes, a CRI log's
/// `stdout F`, any indentation: red team adv21-5): the characters of base64, base64url and
/// hex at the line's end, after whatever comes before them; or a uuencoded line, whose
/// first character counts the bytes of the rest (`M` and 60 characters: adv21-6). `None`
/// when the line ends in anything else.
pub fn wrap_token(line: &[u8]) -> Option<Span> {
    let end = line.iter().rposition(|b| *b != b'\n' && *b != b'\r').map_or(0, |p| p + 1);
    let uu = |c: &u8| (0x20..=0x60).contains(c);
    if end >= 5 && uu(&line[0]) {
        let n = usize::from((line[0] - 0x20) & 63);
        if n > 0 && end - 1 == n.div_ceil(3) * 4 && line[1..end].iter().all(uu) {
            return Some((1, end));
        }
    }
    let encoding = |b: &u8| b.is_ascii_alphanumeric() || b"+/=_-".contains(b);
    let start = line[..end].iter().rposition(|b| !encoding(b)).map_or(0, |p| p + 1);
    (end > start).then_some((start, end))
}

/// A byte range `(start, end)` of a line.
pub type Span = (usize, usize);

/// A byte range to replace, and the mark that replaces it.
pub(super) type Marked = (usize, usize, Arc<[u8]>);

/// The most bytes of a line before its offset that may be a prefix (a logger's time stamp,
/// host and program), and the most words in it.
const DUMP_PREFIX_MAX: usize = 200;
const DUMP_PREFIX_WORDS: usize = 12;

/// The fewest groups of a dump line without an offset (`od -An`, `xxd -i`), unless it
/// continues a dump.
const BARE_DUMP_MIN: usize = 4;

/// The columns of a dump line: `None` when `line` is no dump line. Else the byte ranges of
/// its hex digits and of its character column. A dump line is:
/// - an offset (six to sixteen hex or octal digits, an optional `:`, then white space or
///   the end), after indentation or after a prefix of a few words (a logger's) when two
///   hex groups follow it (one when the line continues a dump); then the hex column (groups of 2 to 16 hex digits, an even number,
///   each perhaps written `0x..` or `\x..` with a `,` after it, up to the first other word)
///   and the character column (the rest);
/// - or, without an offset (`od -An`, `xxd -i`), only hex groups, or only the one-character
///   cells of `od -c` (a character, a backslash escape or three octal digits): at least
///   [`BARE_DUMP_MIN`] of them, or one when the line continues a dump (`continuing`).
pub fn dump_line(line: &[u8], continuing: bool) -> Option<(Vec<Span>, Span)> {
    let end = line.iter().rposition(|b| *b != b'\n' && *b != b'\r').map_or(0, |p| p + 1);
    let first = line.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(end).min(end);
    if let Some(d) = dump_from(line, first, end, 0) {
        return Some(d);
    }
    // A logger's prefix: the offset is one of the first few words.
    let mut i = first;
    for _ in 0..DUMP_PREFIX_WORDS {
        while i < end && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        while i < end && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= end || i > DUMP_PREFIX_MAX {
            break;
        }
        if (line[i].is_ascii_hexdigit() || bar_at(line, i, end) > 0)
            && let Some(d) = dump_from(line, i, end, if continuing { 1 } else { 2 })
        {
            return Some(d);
        }
    }
    bare_dump(line, first, end, if continuing { 1 } else { BARE_DUMP_MIN })
}

/// The hex digits of a dump's group `token` (relative to it): 2 to 16 hex digits (`od -tx8`:
/// red team adv21-6), an even number, perhaps after `0x` or `\x` and before a `,`.
fn hex_group(token: &[u8]) -> Option<Span> {
    let mut s = 0;
    let mut e = token.len();
    if e > 0 && token[e - 1] == b',' {
        e -= 1;
    }
    if e >= 2 && (token[..2].eq_ignore_ascii_case(b"0x") || &token[..2] == b"\\x") {
        s = 2;
    }
    let n = e.checked_sub(s)?;
    ((2..=16).contains(&n) && n.is_multiple_of(2) && token[s..e].iter().all(u8::is_ascii_hexdigit))
        .then_some((s, e))
}

/// The length of a bar at `at` (`|`, or the box-drawing `│`), 0 when there is none.
fn bar_at(line: &[u8], at: usize, end: usize) -> usize {
    if at < end && line[at] == b'|' {
        1
    } else if at + 3 <= end && &line[at..at + 3] == "│".as_bytes() {
        3
    } else {
        0
    }
}

/// A dump line whose offset begins at `start`, with at least `min_hex` hex groups.
fn dump_from(line: &[u8], start: usize, end: usize, min_hex: usize) -> Option<(Vec<Span>, Span)> {
    // The offset: 4 to 16 hex digits, perhaps after `0x` (`tcpdump -X`: `0x0010:`), perhaps
    // between bars (Netty's `|00000010|`, hexyl's `│00000010│`), then `:`, a bar or blanks
    // (`tshark -x`: `0010  65 61`). Red team adv21-2.
    let barred = bar_at(line, start, end);
    let mut i = start + barred;
    let prefixed = i + 2 <= end && line[i..i + 2].eq_ignore_ascii_case(b"0x");
    if prefixed {
        i += 2;
    }
    let digits_start = i;
    while i < end && line[i].is_ascii_hexdigit() {
        i += 1;
    }
    let digits = i - digits_start;
    if !(4..=16).contains(&digits) {
        return None;
    }
    // A short offset is marked as one (`0x`, a bar, `:`, or two blanks after it); else it
    // is a word of a dump without offsets (`od -An -x`: `3353 7263 ...`).
    let marked = |at: usize| {
        (at < end && line[at] == b':')
            || bar_at(line, at, end) > 0
            || (at + 2 <= end && line[at].is_ascii_whitespace() && line[at + 1].is_ascii_whitespace())
    };
    if digits < 6 && !prefixed && barred == 0 && !marked(i) {
        return None;
    }
    if i < end && line[i] == b':' {
        i += 1;
    } else {
        i += bar_at(line, i, end);
    }
    if i < end && !line[i].is_ascii_whitespace() {
        return None;
    }
    let mut hex = Vec::new();
    let mut digits = 0;
    let mut narrowest: Option<usize> = None;
    let mut binary = true;
    loop {
        let gap = i;
        while i < end && line[i].is_ascii_whitespace() {
            i += 1;
        }
        let t = i;
        // `xxd`: the character column follows two spaces and has one character per byte
        // of the hex column, whatever it looks like (`cafe` is characters there), spaces
        // too: a column that begins with a space byte begins inside this gap.
        // The column's gap is wider than the gaps between the groups: `od -tx1 -c`'s
        // groups, two blanks apart, are no column of the last few (adv21-6).
        // In bits (`xxd -b`: eight binary digits a group) a byte is a character too.
        let bytes = if binary { digits / 8 } else { digits / 2 };
        let column = end.saturating_sub(bytes);
        if !hex.is_empty()
            && digits > 0
            && column >= gap + 2
            && column <= t
            && narrowest.is_none_or(|n| t - gap > n)
        {
            i = column;
            break;
        }
        let mut k = i;
        while k < end && !line[k].is_ascii_whitespace() {
            k += 1;
        }
        match hex_group(&line[t..k]).filter(|_| t < end) {
            Some((s, e)) => {
                if !hex.is_empty() {
                    narrowest = Some(narrowest.map_or(t - gap, |n: usize| n.min(t - gap)));
                }
                binary &= e - s == 8 && line[t + s..t + e].iter().all(|c| matches!(c, b'0' | b'1'));
                hex.push((t + s, t + e));
                digits += e - s;
                i = k;
            }
            None => break,
        }
    }
    (hex.len() >= min_hex).then(|| (hex, (i.min(end), end)))
}

/// A dump line without an offset: only hex groups, or only `od -c` cells, at least `min`.
fn bare_dump(line: &[u8], first: usize, end: usize, min: usize) -> Option<(Vec<Span>, Span)> {
    // Hex groups and `od -c` cells first (a line of digits alone is cells: `od -c` of `0`);
    // else bytes as decimal numbers.
    hex_or_cells(line, first, end, min).or_else(|| {
        let (numbers, bytes) = numbers(line, first, end)?;
        // Bytes (`od -An -tu1`) begin a dump as hex groups do; words in `od`'s columns of
        // one width (`od -An -tu8`: two a line) begin one from two.
        let min = if bytes { min } else { min.min(2) };
        (numbers.len() >= min).then_some((numbers, (end, end)))
    })
}

/// [`bare_dump`]'s hex groups (`od -An -tx1`, `xxd -p -c1`), perhaps followed by two blanks
/// and a character column, or `od -c` cells.
fn hex_or_cells(line: &[u8], first: usize, end: usize, min: usize) -> Option<(Vec<Span>, Span)> {
    let mut hex = Vec::new();
    let mut cells = 0;
    let mut i = first;
    while i < end {
        let t = i;
        while i < end && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        let token = &line[t..i];
        match hex_group(token) {
            Some((s, e)) if cells == 0 => hex.push((t + s, t + e)),
            _ if hex.is_empty() && is_cell(token) => cells += 1,
            // Hex groups, then two blanks and a character column (`od -An -tx1z`'s
            // `>...<`: red team adv21-6).
            _ if hex.len() >= min && t >= 2 && line[t - 2..t].iter().all(u8::is_ascii_whitespace) => {
                return Some((hex, (t, end)));
            }
            _ => return None,
        }
        while i < end && line[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    if hex.len() >= min {
        Some((hex, (end, end)))
    } else if cells >= min {
        Some((Vec::new(), (first, end)))
    } else {
        None
    }
}

/// A line of numbers without offsets (red team adv20-2, adv22 F1, F2), each perhaps before
/// a `,`: bytes (`od -An -tu1`, a list of bytes printed over lines: every token 1 to 3
/// digits, at most 377, octal `od -b` too; the second value is true), or words (`od -An`
/// with `-o`, `-td4`, `-tu8`...: up to 22 digits, perhaps after a `-`, right-aligned in
/// columns of one width, as `od` prints them; a table of counts is not). Their digits are
/// read as one sequence across the lines, as hex groups are; a value's numbers are spread
/// forms.
fn numbers(line: &[u8], first: usize, end: usize) -> Option<(Vec<Span>, bool)> {
    let mut spans = Vec::new();
    let mut bytes = true;
    let mut width = None;
    // The first column begins at the line's beginning (`od` pads it as the others).
    let mut last_end = 0;
    let mut even = true;
    let mut i = first;
    while i < end {
        let t = i;
        while i < end && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut e = i;
        if e > t && line[e - 1] == b',' {
            e -= 1;
        }
        let s = t + usize::from(line[t] == b'-');
        let digits = &line[s..e];
        if !(1..=22).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        bytes &= s == t && digits.len() <= 3 && std::str::from_utf8(digits).ok()?.parse::<u16>().ok()? <= 377;
        // The columns: each number ends one width after the one before it.
        let w = i - last_end;
        even &= width.is_none_or(|x| x == w);
        width = Some(w);
        last_end = i;
        spans.push((s, e));
        while i < end && line[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    (bytes || even).then_some((spans, bytes))
}

/// A cell of `od -c`: one character (perhaps several bytes of UTF-8), a backslash escape,
/// three octal digits, or `**` (the rest of a character).
fn is_cell(token: &[u8]) -> bool {
    match token {
        [_] | [b'\\', _] | [b'*', b'*'] => true,
        [a, b, c] if [a, b, c].iter().all(|d| (b'0'..=b'7').contains(d)) => true,
        t => t.len() <= 4 && std::str::from_utf8(t).is_ok_and(|s| s.chars().count() == 1),
    }
}

/// A view of a line: its value characters, each with the byte range of the line it comes
/// from. With `decode`, each escape the redactor knows is read as the bytes it stands for
/// (see [`escape_at`]); what it decodes to is a value character unless a separator. The
/// second value says whether any escape was decoded.
fn view(line: &[u8], decode: bool) -> (Vec<u8>, Vec<Span>, bool) {
    let mut view = Vec::with_capacity(line.len());
    let mut map = Vec::with_capacity(line.len());
    let mut decoded = false;
    let mut i = 0;
    while i < line.len() {
        if decode && let Some((bytes, n)) = escape_at(line, i) {
            for b in bytes.iter().filter(|b| !is_separator(**b)) {
                view.push(*b);
                map.push((i, i + n));
            }
            decoded = true;
            i += n;
            continue;
        }
        if !is_separator(line[i]) {
            view.push(line[i]);
            map.push((i, i + 1));
        }
        i += 1;
    }
    (view, map, decoded)
}

/// Whether `line` may hold an escape [`escape_at`] decodes.
fn may_hold_escape(line: &[u8]) -> bool {
    let mut zero = false;
    for &b in line {
        if matches!(b, b'\\' | b'%' | b'=' | b'&') || (zero && (b | 0x20) == b'x') {
            return true;
        }
        zero = b == b'0';
    }
    false
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The escape at `line[i]`, as the bytes it stands for and its length in `line`:
/// `\xHH`, `\uHHHH` (a surrogate pair as one character), `\UHHHHHHHH`, `\NNN` (octal),
/// `%HH`, `=HH` (quoted-printable, upper-case hex), `&#N;` and `&#xH;` (zero-padded or
/// not, `;` or not), `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` (`;` or not), and `0xHH`
/// standing alone (`xxd -i`), or a big-endian word of 2 to 8 bytes (`0xHHHH`).
fn escape_at(line: &[u8], i: usize) -> Option<(Vec<u8>, usize)> {
    let rest = &line[i..];
    let byte = |v: u32| Some(vec![u8::try_from(v).ok()?]);
    let char_bytes = |v: u32| char::from_u32(v).map(|c| c.to_string().into_bytes());
    match rest.first()? {
        // Perl's `\x{53}`, Rust's `\u{53}`: a code point in braces (red team adv21-6).
        b'\\' if matches!(rest.get(1), Some(b'x' | b'u')) && rest.get(2) == Some(&b'{') => {
            let close = rest.iter().skip(3).take(9).position(|c| *c == b'}')?;
            Some((char_bytes(hex_value(&rest[3..3 + close])?)?, close + 4))
        }
        // CSS: six hex digits (`\000053`) before `\NNN` octal reads `\000` of them.
        b'\\' if rest.len() >= 7 && rest[1..7].iter().all(u8::is_ascii_hexdigit) => {
            let n = 7 + usize::from(matches!(rest.get(7), Some(b' ' | b'\t')));
            Some((char_bytes(hex_value(&rest[1..7])?)?, n))
        }
        b'\\' => match rest.get(1)? {
            b'x' => Some((byte(hex_value(rest.get(2..4)?)?)?, 4)),
            b'u' => {
                let unit = hex_value(rest.get(2..6)?)?;
                if (0xD800..0xDC00).contains(&unit) {
                    let low =
                        rest.get(6..8).filter(|p| *p == b"\\u").and_then(|_| hex_value(rest.get(8..12)?))?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    return Some((char_bytes(c)?, 12));
                }
                Some((char_bytes(unit)?, 6))
            }
            b'U' => Some((char_bytes(hex_value(rest.get(2..10)?)?)?, 10)),
            b'0'..=b'3' if rest.get(1..4).is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c))) => {
                let d = rest.get(1..4)?;
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                Some((byte(v)?, 4))
            }
            // CSS: one to five hex digits and the one blank that ends them (`\53 `).
            _ => css_escape(rest),
        },
        b'%' => Some((byte(hex_value(rest.get(1..3)?)?)?, 3)),
        b'=' => {
            let d = rest.get(1..3)?;
            if d.iter().any(u8::is_ascii_lowercase) {
                return None;
            }
            Some((byte(hex_value(d)?)?, 3))
        }
        b'&' => {
            if rest.get(1) == Some(&b'#') {
                let (start, radix) = if matches!(rest.get(2), Some(b'x' | b'X')) { (3, 16) } else { (2, 10) };
                let digits = rest[start..].iter().take(8).take_while(|c| match radix {
                    16 => c.is_ascii_hexdigit(),
                    _ => c.is_ascii_digit(),
                });
                let n = digits.count();
                if n == 0 || n > 7 {
                    return None;
                }
                let text = std::str::from_utf8(&rest[start..start + n]).ok()?;
                let v = u32::from_str_radix(text, radix).ok()?;
                let semi = usize::from(rest.get(start + n) == Some(&b';'));
                return Some((char_bytes(v)?, start + n + semi));
            }
            for (name, c) in
                [(&b"amp"[..], b'&'), (b"lt", b'<'), (b"gt", b'>'), (b"quot", b'"'), (b"apos", b'\'')]
            {
                if rest[1..].starts_with(name) {
                    let semi = usize::from(rest.get(1 + name.len()) == Some(&b';'));
                    return Some((vec![c], 1 + name.len() + semi));
                }
            }
            None
        }
        // `0xHH`, and big-endian words `0xHHHH`, `0xHHHHHHHH`... up to 8 bytes (red team
        // adv22 L2: `0x5333 0x6372`), standing alone: their bytes in order.
        b'0' => {
            let alone = i == 0 || !line[i - 1].is_ascii_alphanumeric();
            let n = rest.iter().skip(2).take(17).take_while(|c| c.is_ascii_hexdigit()).count();
            let after = rest.get(2 + n).is_none_or(|c| !c.is_ascii_alphanumeric());
            (alone && after && (rest.get(1)? | 0x20) == b'x' && (2..=16).contains(&n) && n % 2 == 0)
                .then_some(())?;
            let bytes = rest[2..2 + n].chunks(2).map(|d| hex_value(d).and_then(|v| u8::try_from(v).ok()));
            Some((bytes.collect::<Option<Vec<u8>>>()?, 2 + n))
        }
        _ => None,
    }
}

/// A CSS escape at the start of `rest` (a backslash): one to six hex digits, the code point,
/// and one space or tab after them that belongs to the escape (`\53 \33 `; a line break
/// stays the line's). The blank is what
/// marks the escape's end, so fewer than six digits need it or a byte that is no hex
/// digit after them; a backslash before a letter that is no hex digit (`\n`) is none.
fn css_escape(rest: &[u8]) -> Option<(Vec<u8>, usize)> {
    let n = rest.iter().skip(1).take(6).take_while(|c| c.is_ascii_hexdigit()).count();
    if n == 0 {
        return None;
    }
    let v = hex_value(&rest[1..1 + n])?;
    let c = char::from_u32(v)?;
    let blank = usize::from(matches!(rest.get(1 + n), Some(b' ' | b'\t')));
    Some((c.to_string().into_bytes(), 1 + n + blank))
}

/// The matches in `line`'s views: its value characters as they are, and, when the line
/// may hold escapes, as decoded ([`view`]). As byte ranges of the line.
fn line_ranges(spread: &Spread, line: &[u8]) -> (Vec<Marked>, Vec<Span>) {
    let mut ranges = Vec::new();
    let (plain, map, _) = view(line, false);
    for (s, e, p) in spread.find_patterns(&plain) {
        let (s, e) = spread.extend(line, p, map[s].0, map[e - 1].1);
        ranges.push((s, e, spread.marks[p].clone()));
    }
    if may_hold_escape(line) {
        let (decoded, dmap, changed) = view(line, true);
        if changed {
            for (s, e, p) in spread.find_patterns(&decoded) {
                let (s, e) = spread.extend(line, p, dmap[s].0, dmap[e - 1].1);
                ranges.push((s, e, spread.marks[p].clone()));
            }
        }
    }
    (ranges, map)
}

/// One line (not a dump) with every spread form in its views replaced.
fn redact_line(spread: &Spread, line: &[u8]) -> Vec<u8> {
    let (ranges, _) = line_ranges(spread, line);
    replace(line, ranges)
}

/// A line cut because it is too long: appends to `out` its part that is decided,
/// redacted, and returns where the rest begins. The rest holds the last value characters a
/// form could begin in (the longest pattern's worth, at most half the line's bound) and
/// never the end of a match whose beginning went out.
fn redact_line_before_cut(spread: &Spread, line: &[u8], out: &mut Vec<u8>) -> usize {
    let (mut ranges, map) = line_ranges(spread, line);
    let by_view = map.len().checked_sub(spread.longest).map_or(0, |k| map[k].0);
    let mut cut = by_view.max(line.len().saturating_sub(spread.line_max() / 2));
    ranges.sort_by_key(|r| (r.0, r.1));
    for r in &ranges {
        if r.0 < cut && r.1 > cut {
            cut = r.1;
        }
    }
    ranges.retain(|r| r.1 <= cut);
    out.extend(replace(&line[..cut], ranges));
    cut
}

/// A dump block cut because it is too large: appends to `out` its lines that are decided,
/// redacted, and returns where the rest begins: the last lines, which hold the longest
/// pattern's worth of hex digits and of characters (at most half the block's bound), and
/// never the end of a match whose beginning went out.
fn redact_dump_before_cut(spread: &Spread, block: &[u8], out: &mut Vec<u8>) -> usize {
    let (ranges, matches) = dump_ranges(spread, block);
    let starts: Vec<usize> = std::iter::once(0)
        .chain(block.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
        .filter(|s| *s < block.len())
        .collect();
    let (mut hex, mut chars) = (0, 0);
    let mut cut = block.len();
    for &s in starts.iter().rev() {
        if (hex >= spread.longest && chars >= spread.longest) || block.len() - s > SPREAD_BLOCK_MAX / 2 {
            break;
        }
        let end = block[s..].iter().position(|b| *b == b'\n').map_or(block.len(), |p| s + p + 1);
        if let Some((h, (cs, ce))) = dump_line(&block[s..end], true) {
            hex += h.iter().map(|(a, b)| b - a).sum::<usize>();
            chars += block[s + cs..s + ce].iter().filter(|b| !is_separator(**b)).count();
        }
        cut = s;
    }
    // A match across the cut goes out whole: the cut moves to the line after it.
    let mut moved = true;
    while moved {
        moved = false;
        for &(ms, me) in &matches {
            if ms < cut && me > cut {
                cut = block[me - 1..].iter().position(|b| *b == b'\n').map_or(block.len(), |p| me + p);
                moved = true;
            }
        }
    }
    let ranges = ranges.into_iter().filter(|r| r.1 <= cut).collect();
    out.extend(replace(&block[..cut], ranges));
    cut
}

/// The matches in a dump (complete lines that begin with offsets): its hex columns and its
/// character columns are each one sequence across the lines; a match is replaced line by
/// line. Returns the ranges to replace and each match's extent in the block.
fn dump_ranges(spread: &Spread, block: &[u8]) -> (Vec<Marked>, Vec<Span>) {
    let mut hex_view = Vec::new();
    let mut hex_map = Vec::new();
    let mut char_view = Vec::new();
    let mut char_map = Vec::new();
    let mut hex_col: Vec<Option<usize>> = Vec::new();
    let mut both_view = Vec::new();
    let mut both_map = Vec::new();
    let mut line_view = Vec::new();
    let mut line_map = Vec::new();
    let mut at = 0;
    let mut line_no = 0usize;
    let mut line_ids = vec![0usize; block.len()];
    while at < block.len() {
        let end = block[at..].iter().position(|b| *b == b'\n').map_or(block.len(), |p| at + p + 1);
        let line = &block[at..end];
        for id in &mut line_ids[at..end] {
            *id = line_no;
        }
        if let Some((hex, (cs, ce))) = dump_line(line, true) {
            // Both columns as one sequence too: numbers that the split read partly as hex
            // groups (`od -td2`'s `8513`: red team adv21-6) are whole again.
            let from = hex.first().map_or(cs, |h| h.0.min(cs));
            for (k, b) in line.iter().enumerate().take(ce).skip(from) {
                if !is_separator(*b) {
                    both_view.push(*b);
                    both_map.push(at + k);
                }
            }
            // And whole lines, what reads as an offset too: in a dump without offsets a
            // first number of six or more digits is a word (`od -An -o`'s `072523`,
            // `od -An -tu4`'s `863008083`: red team adv22 F1, F2).
            // A word's `0x` is no digit of it: `0x5333 0x6372` (big-endian words, red team
            // adv22 L2) reads its first word as an offset, and is the value's hex whole
            // only without the prefixes.
            let mut k = 0;
            while k < ce {
                let b = line[k];
                let word_start = k == 0 || line[k - 1].is_ascii_whitespace() || is_separator(line[k - 1]);
                if word_start
                    && k + 2 < ce
                    && line[k..k + 2].eq_ignore_ascii_case(b"0x")
                    && line[k + 2].is_ascii_hexdigit()
                {
                    k += 2;
                    continue;
                }
                if !is_separator(b) {
                    line_view.push(b);
                    line_map.push(at + k);
                }
                k += 1;
            }
            // A character column with one character a byte of the hex column (`xxd`,
            // `hexdump -C` within its bars, `od -tx1z` within `>...<`): the characters of
            // the bytes a hex match covers are replaced too, whatever they show (`.` for a byte it cannot print).
            let digits: usize = hex.iter().map(|(s, e)| e - s).sum();
            let (mut bs, mut be) = (cs, ce);
            if be > bs + 1 && matches!((line[bs], line[be - 1]), (b'|', b'|') | (b'>', b'<')) {
                bs += 1;
                be -= 1;
            }
            let column = (digits > 0 && be - bs == digits / 2).then_some(at + bs);
            let mut d = 0;
            for (s, e) in hex {
                hex_view.extend_from_slice(&line[s..e]);
                hex_map.extend((s..e).map(|k| at + k));
                hex_col.extend((d..d + e - s).map(|k| column.map(|c| c + k / 2)));
                d += e - s;
            }
            let column = &line[cs..ce];
            let cells = column.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty()).all(is_cell);
            let mut k = cs;
            while k < ce {
                // `od -c` cells: three octal digits are the byte they stand for, `\\` a
                // backslash; another backslash escape (`\n`) and `**` stand for nothing.
                if cells && !line[k].is_ascii_whitespace() {
                    let t = k;
                    while k < ce && !line[k].is_ascii_whitespace() {
                        k += 1;
                    }
                    let token = &line[t..k];
                    let byte = match token {
                        [b'\\', b'\\'] => Some(b'\\'),
                        [b'\\', _] | [b'*', b'*'] => None,
                        [a, b, c] if token.iter().all(|d| (b'0'..=b'7').contains(d)) => u8::try_from(
                            (u32::from(a - b'0') << 6) | (u32::from(b - b'0') << 3) | u32::from(c - b'0'),
                        )
                        .ok(),
                        _ => {
                            for (j, b) in token.iter().enumerate() {
                                if !is_separator(*b) {
                                    char_view.push(*b);
                                    char_map.push(at + t + j);
                                }
                            }
                            None
                        }
                    };
                    if let Some(b) = byte.filter(|b| !is_separator(*b)) {
                        char_view.push(b);
                        char_map.push(at + k - 1);
                    }
                    continue;
                }
                if !is_separator(line[k]) {
                    char_view.push(line[k]);
                    char_map.push(at + k);
                }
                k += 1;
            }
        }
        at = end;
        line_no += 1;
    }
    let mut ranges = Vec::new();
    let mut extents = Vec::new();
    for (is_hex, view, map) in [
        (true, &hex_view, &hex_map),
        (false, &char_view, &char_map),
        (false, &both_view, &both_map),
        (false, &line_view, &line_map),
    ] {
        for (s, e, mark) in spread.find(view) {
            extents.push((map[s], map[e - 1] + 1));
            pieces(&map[s..e], &line_ids, &mark, &mut ranges);
            if is_hex {
                let column: Vec<usize> = hex_col[s..e].iter().flatten().copied().collect();
                pieces(&column, &line_ids, &mark, &mut ranges);
            }
        }
    }
    (ranges, extents)
}

/// The ranges of a match at block positions `positions`: one a line it covers.
fn pieces(positions: &[usize], line_ids: &[usize], mark: &Arc<[u8]>, ranges: &mut Vec<Marked>) {
    let mut piece: Option<(usize, usize)> = None;
    for &b in positions {
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

/// `bytes` with each range replaced by its mark (overlapping ranges merged, the first
/// one's mark kept).
pub(super) fn replace(bytes: &[u8], mut ranges: Vec<Marked>) -> Vec<u8> {
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
