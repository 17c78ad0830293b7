//! The syntax of the text a runbook may not choose freely: names (ids, secret and environment
//! variable names, runbook names), durations, HTTP methods, the kinds of each unit, and the
//! ranges of numbers. Each is defined once, here: the validator checks with it, and the JSON
//! Schema ([`crate::schema`]) states it as a pattern or a bound generated from the same
//! definition, so an editor and `runbook check` cannot drift apart.

use std::ops::RangeInclusive;

/// A class of bytes in a name.
#[derive(Debug, Clone, Copy)]
enum Class {
    Range(u8, u8),
    Byte(u8),
}

use Class::{Byte, Range};

impl Class {
    fn has(self, b: u8) -> bool {
        match self {
            Range(lo, hi) => (lo..=hi).contains(&b),
            Byte(x) => b == x,
        }
    }
}

/// A name: one byte of `first`, then any number of bytes of `rest` (ASCII only).
#[derive(Debug)]
pub struct NameSyntax {
    first: &'static [Class],
    rest: &'static [Class],
}

impl NameSyntax {
    /// Whether `s` is such a name (what the validator asks).
    pub fn matches(&self, s: &str) -> bool {
        let mut bytes = s.bytes();
        bytes.next().is_some_and(|b| self.first.iter().any(|c| c.has(b)))
            && bytes.all(|b| self.rest.iter().any(|c| c.has(b)))
    }

    /// The same rule as a regular expression (what the schema states), e.g. `^[a-z][a-z0-9_]*$`.
    pub fn pattern(&self) -> String {
        format!("^{}{}*$", bracket(self.first), bracket(self.rest))
    }
}

/// A bracket expression of classes; a `-` goes last, where it means itself.
fn bracket(classes: &[Class]) -> String {
    let mut s = String::from("[");
    let mut dash = false;
    for c in classes {
        match *c {
            Range(lo, hi) => {
                s.push(lo as char);
                s.push('-');
                s.push(hi as char);
            }
            Byte(b'-') => dash = true,
            Byte(b) => s.push(b as char),
        }
    }
    if dash {
        s.push('-');
    }
    s.push(']');
    s
}

/// Step, param, output, precondition, escalation and approval input ids: `^[a-z][a-z0-9_]*$`,
/// so templates can name them.
pub const ID: NameSyntax =
    NameSyntax { first: &[Range(b'a', b'z')], rest: &[Range(b'a', b'z'), Range(b'0', b'9'), Byte(b'_')] };

/// Secret and environment variable names: `^[A-Za-z_][A-Za-z0-9_]*$`.
pub const ENV_NAME: NameSyntax = NameSyntax {
    first: &[Range(b'A', b'Z'), Range(b'a', b'z'), Byte(b'_')],
    rest: &[Range(b'A', b'Z'), Range(b'a', b'z'), Range(b'0', b'9'), Byte(b'_')],
};

/// Runbook names: `^[a-z][a-z0-9_-]*$`.
pub const RUNBOOK_NAME: NameSyntax = NameSyntax {
    first: &[Range(b'a', b'z')],
    rest: &[Range(b'a', b'z'), Range(b'0', b'9'), Byte(b'_'), Byte(b'-')],
};

/// The units of a duration: the words humantime 2 reads (its `Unit::from_str`). The validator
/// parses durations with humantime; the schema's pattern is built from this list, and a test
/// holds the two to the same answers over a corpus.
pub const DURATION_UNITS: &[&str] = &[
    "nanos", "nsec", "ns", "usec", "us", "µs", "millis", "msec", "ms", "seconds", "second", "secs", "sec",
    "s", "minutes", "minute", "mins", "min", "m", "hours", "hour", "hrs", "hr", "h", "days", "day", "d",
    "weeks", "week", "wks", "wk", "w", "months", "month", "M", "years", "year", "yrs", "yr", "y",
];

/// Whitespace as humantime and `str::trim` see it (`char::is_whitespace`, Unicode's
/// White_Space), spelled out: `\s` differs between regex engines (ECMA-262's has U+FEFF and
/// lacks U+0085), and an editor's engine must not refuse what the validator reads.
const WHITESPACE: &str = r"[\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// One duration as humantime reads it once trimmed: `0`, or numbers (ASCII digits, an
/// optional fraction, spaces allowed between digits) each followed by a unit.
fn duration_body() -> String {
    let units = DURATION_UNITS.join("|");
    let (w, d) = (WHITESPACE, "[0-9]");
    let digits_or_space = format!("(?:{d}|{w})*");
    format!(r"{w}*(?:0|(?:{d}{digits_or_space}(?:\.{w}*{d}{digits_or_space})?(?:{units}){w}*)+){w}*")
}

/// The pattern of a duration (`"30s"`, `"1h 30m"`).
pub fn duration_pattern() -> String {
    format!("^{}$", duration_body())
}

/// The pattern of an estimate: a duration or a range of two (`"30m..60m"`).
pub fn estimate_pattern() -> String {
    let d = duration_body();
    format!(r"^(?:{d}|{d}\.\.{d})$")
}

/// The HTTP methods an `http` step may use (any case).
pub const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The HTTP methods a precondition may use: it only reads.
pub const READ_METHODS: [&str; 2] = ["GET", "HEAD"];

/// The pattern of an HTTP method, in any case as the validator reads it (`get`, `Get`, `GET`).
pub fn http_method_pattern() -> String {
    methods_pattern(&HTTP_METHODS)
}

/// The pattern of one of `methods`, in any case.
pub fn methods_pattern(methods: &[&str]) -> String {
    let any_case: Vec<String> = methods
        .iter()
        .map(|m| {
            m.chars().map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())).collect()
        })
        .collect();
    format!("^(?:{})$", any_case.join("|"))
}

/// The kinds a step may have (exactly one).
pub const STEP_KINDS: &[&str] = &["run", "cmd", "http", "sql", "approval", "notify", "runbook"];
/// The kinds a compensation may have (exactly one).
pub const COMPENSATION_KINDS: &[&str] = &["run", "cmd", "http", "sql", "notify"];
/// The kinds a precondition may have (exactly one).
pub const PRECONDITION_KINDS: &[&str] = &["run", "cmd", "http", "sql"];
/// The sources of a secret (exactly one).
pub const SECRET_SOURCES: &[&str] = &["env", "file", "command"];
/// The messages of a notification (exactly one).
pub const NOTIFY_MESSAGES: &[&str] = &["text", "json"];
/// The statements of a `sql` action (exactly one).
pub const SQL_STATEMENTS: &[&str] = &["query", "file"];
/// The bodies of an HTTP request (at most one).
pub const HTTP_BODIES: &[&str] = &["body", "json"];

/// Kinds whose outputs are fixed (a step of these kinds declares no `outputs`; a
/// compensation writes outputs only as `run` or `cmd`).
pub const FIXED_OUTPUT_KINDS: &[&str] = &["http", "sql", "approval", "notify"];
/// What a `finally` step may not have: it runs while the run ends, so nothing there waits
/// for people, runs a whole other runbook, or is compensated.
pub const NOT_IN_FINALLY: &[&str] = &["approval", "runbook", "compensate"];
/// What a `runbook` step may not have: an include is not retried or timed as a whole.
pub const NOT_ON_INCLUDE: &[&str] = &["retry", "timeout"];
/// Parameter types, with the JSON type of their values (a `number` takes integers too).
pub const PARAM_TYPES: &[(&str, &str)] =
    &[("string", "string"), ("integer", "integer"), ("number", "number"), ("boolean", "boolean")];

/// Tries of a retry policy, the first included.
pub const ATTEMPTS: RangeInclusive<i64> = 1..=1000;
/// The factor of a retry delay after each try.
pub const BACKOFF: RangeInclusive<f64> = 1.0..=100.0;
/// Exit codes a retry policy may name.
pub const EXIT_CODES: RangeInclusive<i64> = 0..=255;
/// HTTP statuses an `http` check may expect.
pub const HTTP_STATUS: RangeInclusive<i64> = 100..=599;
/// Steps in flight at once.
pub const MAX_PARALLEL: RangeInclusive<i64> = 1..=10_000;
/// Distinct approvers an approval may ask for.
pub const MIN_APPROVALS: RangeInclusive<i64> = 1..=100;

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    const NAMES: &[&str] = &[
        "a",
        "a1",
        "a_b",
        "abc_123",
        "_a",
        "_",
        "__",
        "A",
        "Ab",
        "aB",
        "AB_1",
        "1a",
        "9",
        "a-b",
        "a-",
        "-a",
        "a.b",
        "a b",
        " a",
        "a ",
        "é",
        "aé",
        "ab_",
        "z9",
        "Z",
        "snake_case",
        "kebab-case",
        "camelCase",
        "PascalCase",
        "SCREAMING_CASE",
        "x\n",
        "\ny",
        "a\u{0}",
        "",
        "a$",
        "a*",
        "[a]",
        "a|b",
        "ß",
        "ı",
        "K",
        "ǅ",
        "a\u{200b}",
        "DATABASE_URL",
        "deploy-canary",
        "rollback_l3",
        "0",
        "_0",
        "a0_",
        "tab\t",
    ];

    #[test]
    fn the_schema_patterns_of_names_agree_with_the_validator_on_a_corpus() {
        // Every string of up to three bytes over an alphabet of the edges, and the corpus.
        let alphabet = ['a', 'z', 'A', 'Z', '0', '9', '_', '-', '.', ' ', 'é', '`', '@', '[', '{'];
        let mut corpus: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        let mut layer = vec![String::new()];
        for _ in 0..3 {
            layer = layer.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            corpus.extend(layer.iter().cloned());
        }
        for syntax in [&ID, &ENV_NAME, &RUNBOOK_NAME] {
            let re = Regex::new(&syntax.pattern()).expect("the pattern compiles");
            let mut accepted = 0;
            for name in &corpus {
                assert_eq!(re.is_match(name), syntax.matches(name), "{name:?} under {}", syntax.pattern());
                accepted += usize::from(syntax.matches(name));
            }
            assert!(accepted > 50, "{}: only {accepted} names accepted", syntax.pattern());
        }
        assert_eq!(ID.pattern(), "^[a-z][a-z0-9_]*$");
        assert_eq!(ENV_NAME.pattern(), "^[A-Za-z_][A-Za-z0-9_]*$");
        assert_eq!(RUNBOOK_NAME.pattern(), "^[a-z][a-z0-9_-]*$");
    }

    /// What the validator reads as a duration: humantime over the trimmed text.
    fn humantime_reads(s: &str) -> bool {
        humantime::parse_duration(s.trim()).is_ok()
    }

    const DURATIONS: &[&str] = &[
        "0",
        " 0 ",
        "0s",
        "1s",
        "30s",
        "10m",
        "1h 30m",
        "1h30m",
        "2h 37min",
        "1.5s",
        "4.2h",
        "500ms",
        "1 s",
        "1d",
        "2w",
        "1M",
        "1y",
        "100y",
        "1000ns",
        "10us",
        "10µs",
        "7 days",
        "3 weeks",
        "1 0s",
        " 5m ",
        "1 hour",
        "2 hrs",
        "1mins",
        "1sec",
        "1secs",
        "1wk",
        "2wks",
        "1yr",
        "1yrs",
        "1m 1s 1ms",
        "1 . 5s",
        "10msec",
        "10nsec",
        "10usec",
        "1millis",
        "1nanos",
        "5minute",
        "5second",
        "5seconds",
        "5hour",
        "5hours",
        "1day",
        "1week",
        "1weeks",
        "1month",
        "1months",
        "1year",
        "1years",
        "5",
        "5 parsecs",
        "-1s",
        "1.s",
        ".5s",
        "1h-30m",
        "1..2",
        "s",
        "",
        " ",
        "1e3s",
        "1_000s",
        "1s,2s",
        "PT5M",
        "5 m",
        "1Y",
        "1H",
        "1S",
        "0.0s",
        "01s",
        "1\ts",
        "1s\n",
        "00",
        "0 0",
        "1s0",
        "1.5",
        "1s.",
        "1 s 5",
        "1m30",
        "1μs",
        "1\u{a0}s",
        "1ms2",
        "1msx",
        "2 h 3 m",
        "10 minutes",
        "1.000s",
        "1.05m",
        "3.",
        "3.s",
        "1 .5s",
    ];

    #[test]
    fn the_schema_pattern_of_durations_agrees_with_the_validator_on_a_corpus() {
        let re = Regex::new(&duration_pattern()).expect("the pattern compiles");
        // Every string of up to four characters over an alphabet of the edges, and the corpus.
        let alphabet = ['0', '1', ' ', '.', 's', 'm', 'h', 'n', 'M', 'µ', 'x', '-'];
        let mut corpus: Vec<String> = DURATIONS.iter().map(|s| s.to_string()).collect();
        let mut layer = vec![String::new()];
        for _ in 0..4 {
            layer = layer.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            corpus.extend(layer.iter().cloned());
        }
        let (mut yes, mut no, mut unseen) = (0, 0, 0);
        for d in &corpus {
            let reads = humantime::parse_duration(d.trim());
            match (re.is_match(d), &reads) {
                (true, Ok(_)) => yes += 1,
                (false, Err(_)) => no += 1,
                // Never a false error: what the validator reads, the schema accepts.
                (false, Ok(_)) => panic!("{d:?} is a duration the schema refuses"),
                // What a pattern cannot see: a number too large for humantime, or a fraction
                // that is not a whole number of its unit's smallest step ("0.1M"). The
                // validator alone refuses them.
                (true, Err(e)) => {
                    assert!(matches!(e, humantime::DurationError::NumberOverflow), "{d:?}: {e}");
                    unseen += 1;
                }
            }
        }
        assert!(yes > 300 && no > 1000, "{yes} durations read, {no} refused, {unseen} unseen");
        for d in ["99999999999999999999s", "1.5ns", "0.1M"] {
            assert!(re.is_match(d) && !humantime_reads(d), "{d:?}");
        }
    }

    #[test]
    fn the_schema_pattern_of_estimates_agrees_with_the_validator() {
        let re = Regex::new(&estimate_pattern()).expect("the pattern compiles");
        let reads = |s: &str| match s.split_once("..") {
            None => humantime_reads(s),
            Some((a, b)) => humantime_reads(a) && humantime_reads(b),
        };
        for a in DURATIONS {
            assert_eq!(re.is_match(a), reads(a), "{a:?}");
            for b in ["5m", " 1h ", "x", "", "1.5s"] {
                for e in [format!("{a}..{b}"), format!("{b}..{a}")] {
                    assert_eq!(re.is_match(&e), reads(&e), "{e:?}");
                }
            }
        }
        assert!(re.is_match("30m..60m") && !re.is_match("30m..") && !re.is_match("..5m"));
    }

    #[test]
    fn the_schema_pattern_of_http_methods_is_the_validators_list_in_any_case() {
        let re = Regex::new(&http_method_pattern()).expect("the pattern compiles");
        for m in HTTP_METHODS {
            for s in [m.to_string(), m.to_lowercase(), format!("{}{}", &m[..1], m[1..].to_lowercase())] {
                assert!(re.is_match(&s), "{s}");
            }
        }
        for s in ["", "TRACE", "CONNECT", "GETS", " GET", "GET ", "G", "get\n", "ǴET"] {
            assert_eq!(re.is_match(s), HTTP_METHODS.contains(&s.to_ascii_uppercase().as_str()), "{s:?}");
        }
        let read = Regex::new(&methods_pattern(&READ_METHODS)).expect("the pattern compiles");
        for m in HTTP_METHODS.iter().flat_map(|m| [m.to_string(), m.to_lowercase()]) {
            assert_eq!(read.is_match(&m), READ_METHODS.contains(&m.to_ascii_uppercase().as_str()), "{m}");
        }
    }
}
