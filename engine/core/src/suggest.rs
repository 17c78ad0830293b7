//! "Did you mean" suggestions for misspelled keys, step ids and parameter names.
//!
//! Bounded: a file with thousands of unknown references among thousands of ids would
//! otherwise cost their product in string distances (32,000 of each: minutes). Each lookup
//! compares at most [`MAX_CANDIDATES`] candidates, and one thread (one `check`) computes at most [`BUDGET`] distances in all;
//! past it, messages simply carry no suggestion. So checking is linear in the file.

use std::cell::Cell;

/// The most candidates one lookup compares: a typo among more ids than this gets no
/// suggestion (a list that long is generated, not typed).
pub const MAX_CANDIDATES: usize = 2_000;

/// The most string distances computed on one thread before suggestions stop.
pub const BUDGET: u64 = 200_000;

thread_local! {
    static SPENT: Cell<u64> = const { Cell::new(0) };
}

/// Distances computed on this thread since the last [`reset`].
pub fn spent() -> u64 {
    SPENT.with(Cell::get)
}

/// Start a new budget on this thread (at the start of a check).
pub fn reset() {
    SPENT.with(|s| s.set(0));
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &'a str)> = None;
    for (seen, candidate) in candidates.into_iter().enumerate() {
        if seen >= MAX_CANDIDATES || spent() >= BUDGET {
            return None;
        }
        if candidate == word {
            continue;
        }
        SPENT.with(|s| s.set(s.get() + 1));
        let score = strsim::jaro_winkler(word, candidate);
        let distance = strsim::levenshtein(word, candidate);
        // Close in shape (jaro-winkler) or a couple of edits away for short words.
        let plausible = score >= 0.85 || distance <= word.len().min(candidate.len()) / 3 + 1;
        if plausible && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `" (did you mean `x`?)"`, or an empty string.
pub fn did_you_mean_suffix<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match did_you_mean(word, candidates) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        assert_eq!(did_you_mean("neeeds", ["needs", "when", "run"]), Some("needs"));
        assert_eq!(did_you_mean("retyr", ["retry", "run", "timeout"]), Some("retry"));
        assert_eq!(did_you_mean("migrte", ["backup", "migrate"]), Some("migrate"));
        assert_eq!(did_you_mean("timout", ["timeout", "title"]), Some("timeout"));
    }

    /// 32,000 unknown references among 32,000 ids: the distances computed stay under the
    /// budget (linear), where comparing all pairs would be a billion.
    #[test]
    fn suggestions_are_bounded() {
        reset();
        let ids: Vec<String> = (0..32_000).map(|i| format!("step_{i:05}")).collect();
        for i in 0..32_000 {
            let _ = did_you_mean(&format!("missing_{i:05}"), ids.iter().map(String::as_str));
        }
        assert!(spent() <= BUDGET, "{} distances", spent());
        // A small set still gets its suggestions after a reset.
        reset();
        assert_eq!(did_you_mean("migrte", ["backup", "migrate"]), Some("migrate"));
        assert!(spent() <= 2);
        // And a typo in a big list is compared with at most MAX_CANDIDATES of them.
        reset();
        let _ = did_you_mean("step_0001", ids.iter().take(MAX_CANDIDATES * 3).map(String::as_str));
        assert!(spent() <= MAX_CANDIDATES as u64);
    }

    #[test]
    fn ignores_unrelated_words() {
        assert_eq!(did_you_mean("zzzzzz", ["needs", "when", "run"]), None);
        assert_eq!(did_you_mean("frobnicate", ["backup", "restore"]), None);
    }
}
