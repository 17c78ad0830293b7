//! Query strings, read by hand: every key is known, every value bounded and UTF-8, or the
//! page is a 400 that says which part is wrong (never a panic, never a silent default).

use std::collections::BTreeMap;

/// The longest query string read.
pub const MAX_QUERY: usize = 2048;
/// The longest value of one key.
pub const MAX_VALUE: usize = 200;
/// The highest page number.
pub const MAX_PAGE: usize = 100_000;

/// `%XX` and `+` decoded; `None` when an escape is broken or the bytes are not UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The pairs of a query string whose keys are all in `known`, empty values left out (a
/// form sends every field). An error says what is wrong, for a 400 page.
pub fn parse(query: Option<&str>, known: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let Some(query) = query else { return Ok(out) };
    if query.len() > MAX_QUERY {
        return Err(format!("the query string is {} bytes long; at most {MAX_QUERY} are read", query.len()));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(key), Some(value)) = (decode(key), decode(value)) else {
            return Err("the query string has a broken %-escape or is not UTF-8".into());
        };
        if !known.contains(&key.as_str()) {
            let shown: String = key.chars().take(40).flat_map(char::escape_default).collect();
            return Err(format!("unknown query parameter `{shown}`; this page reads {}", known.join(", ")));
        }
        if value.chars().count() > MAX_VALUE {
            return Err(format!("the value of `{key}` is longer than {MAX_VALUE} characters"));
        }
        if out.contains_key(&key) {
            return Err(format!("`{key}` is given twice"));
        }
        if !value.is_empty() {
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// `page`: 1 to [`MAX_PAGE`].
pub fn page(value: Option<&String>) -> Result<usize, String> {
    match value {
        None => Ok(1),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(format!("`page` is a number from 1 to {MAX_PAGE}")),
        },
    }
}

/// `date`: `YYYY-MM-DD`.
pub fn date(value: Option<&String>) -> Result<Option<String>, String> {
    day("date", value)
}

/// The value of `key`, a day as `YYYY-MM-DD` (`date`, `since`), or why not.
pub fn day(key: &str, value: Option<&String>) -> Result<Option<String>, String> {
    let Some(v) = value else { return Ok(None) };
    let b = v.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let month = v.get(5..7).and_then(|m| m.parse::<u8>().ok()).unwrap_or(0);
    let day = v.get(8..10).and_then(|d| d.parse::<u8>().ok()).unwrap_or(0);
    if shape && (1..=12).contains(&month) && (1..=31).contains(&day) {
        Ok(Some(v.clone()))
    } else {
        Err(format!("`{key}` is a day as YYYY-MM-DD (UTC)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let known = ["page", "status"];
        for q in ["%", "%zz", "%C3%28", "page=%FF", "nope=1", "page=1&page=2", "a%", "=%", "%%%%"] {
            assert!(parse(Some(q), &known).is_err(), "{q}");
        }
        assert_eq!(parse(Some("status=needs_operator&page=2&"), &known).ok().map(|m| m.len()), Some(2));
        assert_eq!(parse(Some("status=&page="), &known).ok().map(|m| m.len()), Some(0));
        for p in ["0", "-1", "x", "100001", "99999999999999999999999"] {
            assert!(page(Some(&p.to_string())).is_err(), "{p}");
        }
        for d in ["2026-13-01", "2026-1-01", "２０２６-01-01", "2026-01-00", "20260101"] {
            assert!(date(Some(&d.to_string())).is_err(), "{d}");
        }
        assert!(date(Some(&"2026-12-06".to_string())).is_ok());
        assert_eq!(decode("a+b%20c"), Some("a b c".into()));
    }

    proptest::proptest! {
        /// Any query string (any bytes a client can put there, as text): an answer or an
        /// error, never a panic; every value kept is bounded and not empty.
        #[test]
        fn any_query_string_is_read_or_refused(q in "[a-z=&%+0-9A-Fa-f\\x00-\\x7f\\u{80}-\\u{10ffff}]{0,300}") {
            if let Ok(pairs) = parse(Some(&q), &["page", "status", "date"]) {
                for v in pairs.values() {
                    proptest::prop_assert!(!v.is_empty() && v.chars().count() <= MAX_VALUE);
                }
                let _ = page(pairs.get("page"));
                let _ = date(pairs.get("date"));
            }
        }
    }
}
