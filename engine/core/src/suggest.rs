//! "Did you mean" suggestions for misspelled keys, step ids and parameter names.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
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

    #[test]
    fn ignores_unrelated_words() {
        assert_eq!(did_you_mean("zzzzzz", ["needs", "when", "run"]), None);
        assert_eq!(did_you_mean("frobnicate", ["backup", "restore"]), None);
    }
}
