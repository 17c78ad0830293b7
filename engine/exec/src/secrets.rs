//! Secrets at run time: reading their values from their sources, and keeping them out of
//! everything the engine shows or writes.

use std::collections::BTreeMap;
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use runbook_core::model::{Runbook, SecretSource};
use serde_json::Value;
use std::sync::Arc;

/// The generated corpus of the decoding rules (under `tests/`: test code, as `tidy` reads it).
#[cfg(test)]
#[path = "secrets/tests/corpus.rs"]
mod corpus;
mod spread;
mod words;
pub use spread::{SPREAD_MIN, is_separator};

/// The shortest secret value the engine accepts (and the shortest form it redacts).
pub const MIN_SECRET_LEN: usize = 4;

/// The largest secret value the engine accepts, and the most bytes a run's secrets (its
/// runbook's and its includes', each distinct value once) may hold in all: the redactor
/// grows with every byte (a hundred forms, some many times as long; about 0.45 GB at its
/// peak for 32 KiB), so more is refused rather than let memory grow with the number of
/// secrets (issue 11, red team adv22 F4; promise 5).
pub const MAX_SECRET_BYTES: usize = 32 * 1024;

/// The most distinct secret values a run may hold: each has a redactor of its own for the
/// checks (and its patterns in the run's), whose fixed part costs about 150 KB however
/// short the value (red team adv24 P5: 8,000 values of 4 bytes, 32,000 bytes in all, took
/// 1.25 GB before `echo hi`).
pub const MAX_SECRET_VALUES: usize = 256;

/// The most bytes of distinct values one redactor is built for: a run's secrets
/// ([`MAX_SECRET_BYTES`]) and the engine's own (a state store's password). Past it the
/// redactor fails closed (every byte is redacted) rather than grow: no caller can make it
/// take more memory than this bound costs.
pub const MAX_REDACTED_BYTES: usize = MAX_SECRET_BYTES + 4 * 1024;

/// Secret values by name. Never serialized, never journaled; resolved anew by every run.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
    /// The secrets of each included runbook, indexed like `Runbook::includes`.
    includes: Vec<Secrets>,
    /// One redactor per distinct value (this runbook's and its includes'), with the names
    /// that hold it, built once for every check of this set of secrets (red team adv23 F1:
    /// one build per name and per check made one value under many names cost without bound).
    per_value: Arc<std::sync::OnceLock<Vec<ValueCheck>>>,
}

/// A distinct secret value's names and a redactor of it alone.
type ValueCheck = (Vec<String>, Redactor);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// Values from a map (tests, resume).
    pub fn from_map(values: BTreeMap<String, String>) -> Self {
        Secrets { values, ..Secrets::default() }
    }

    /// Each distinct value's names (in the order of [`Secrets::all`]) and a redactor of it
    /// alone, built at the first call.
    fn per_value(&self) -> &[ValueCheck] {
        self.per_value.get_or_init(|| {
            let mut order: Vec<(&str, Vec<String>)> = Vec::new();
            for (name, value) in self.all() {
                match order.iter_mut().find(|(v, _)| *v == value) {
                    Some((_, names)) => names.push(name.to_string()),
                    None => order.push((value, vec![name.to_string()])),
                }
            }
            order
                .into_iter()
                .map(|(value, names)| {
                    let redactor = Redactor::from_values([(names[0].as_str(), value)]);
                    (names, redactor)
                })
                .collect()
        })
    }

    /// The secrets of included runbook `index`.
    pub fn include(&self, index: usize) -> Option<&Secrets> {
        self.includes.get(index)
    }

    /// Every value, this runbook's and its includes' (for redaction).
    pub fn all(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self.iter().collect();
        for inc in &self.includes {
            out.extend(inc.all());
        }
        out
    }

    /// The value of a secret.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Names and values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The libpq variables that carry a PostgreSQL store's credentials: a process the engine
/// starts does not get them when the store is PostgreSQL (a step may still set them in its
/// own `env`).
pub const STORE_CREDENTIAL_VARIABLES: &[&str] = &["PGPASSWORD", "PGPASSFILE", "PGSSLKEY", "PGSSLCERT"];

/// The variables the engine sets for a step: the only `RUNBOOK_*` a step sees.
pub const STEP_VARIABLES: &[&str] = &["RUNBOOK_OUTPUT", "RUNBOOK_RUN_ID", "RUNBOOK_STEP"];

/// The engine's own configuration and credentials, which no process it starts (a step, a
/// secret helper, an included runbook's step) may see, and the store's password, which no
/// sink may show (red team adv13b F1, promise 3). [`EngineEnv::hidden`] is the one place
/// that decides what a started process loses from the engine's environment besides the
/// secrets' sources.
#[derive(Clone, Default)]
pub struct EngineEnv {
    /// The store is PostgreSQL: the libpq credential variables are the engine's.
    postgres: bool,
    /// The store's passwords (from its URL's userinfo and `password` parameters, and
    /// `PGPASSWORD`), for the redactor.
    passwords: Vec<String>,
}

impl std::fmt::Debug for EngineEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineEnv").field("postgres", &self.postgres).finish_non_exhaustive()
    }
}

impl EngineEnv {
    /// A SQLite store: no credentials besides the engine's `RUNBOOK_*` variables.
    pub fn sqlite() -> Self {
        EngineEnv::default()
    }

    /// A PostgreSQL store opened with this URL: its passwords are every form the store's
    /// own messages mask (`Location::passwords`: the user info's, each `password=` and
    /// `sslpassword=` value, key and value read decoded; red team adv25 F6 printed a
    /// `?password=` one in clear), and `$PGPASSWORD`.
    pub fn postgres(url: &str) -> Self {
        let mut passwords = runbook_store::Location::Postgres(url.to_string()).passwords();
        passwords.extend(std::env::var("PGPASSWORD").ok());
        passwords.retain(|p| !p.is_empty());
        passwords.sort();
        passwords.dedup();
        EngineEnv { postgres: true, passwords }
    }

    /// The variables of the engine's environment a process it starts does not get: every
    /// `RUNBOOK_*` (the store, the worker's, the tuning; the engine sets [`STEP_VARIABLES`]
    /// for a step afresh), and with a PostgreSQL store the [`STORE_CREDENTIAL_VARIABLES`].
    pub fn hidden(&self) -> Vec<String> {
        let mut out: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("RUNBOOK_"))
            .collect();
        if self.postgres {
            out.extend(STORE_CREDENTIAL_VARIABLES.iter().map(|v| (*v).to_string()));
        }
        out
    }

    /// `(name, value)` pairs the redactor must know besides the runbook's secrets.
    pub fn redacted(&self) -> Vec<(&str, &str)> {
        self.passwords.iter().map(|p| ("state-store-password", p.as_str())).collect()
    }
}

/// How long a secret's `command` may run: `$RUNBOOK_SECRET_TIMEOUT` (a duration), else 30s.
pub fn helper_timeout() -> std::time::Duration {
    std::env::var("RUNBOOK_SECRET_TIMEOUT")
        .ok()
        .and_then(|t| humantime::parse_duration(t.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(std::time::Duration::from_secs(30))
}

/// Why secrets could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// Problems, one line each, naming the secret but never a value.
    Problems(Vec<String>),
    /// Ctrl-C or SIGTERM came while a secret's helper ran (it was ended with its group).
    Interrupted(String),
}

/// Read every secret of a runbook (and of the runbooks it includes) from its source.
/// Problems are returned together, one line each, naming the secret but never a value. A
/// `command` source runs without the secrets' source variables and the engine's own
/// ([`EngineEnv::hidden`]), with bounded output and a time limit ([`helper_timeout`]).
pub fn resolve(runbook: &Runbook, base_dir: &Path, engine: &EngineEnv) -> Result<Secrets, Unresolved> {
    let mut hidden: Vec<String> = source_variables(runbook).into_iter().map(str::to_string).collect();
    hidden.extend(engine.hidden());
    let limits = crate::process::HelperLimits { max_bytes: MAX_SECRET_BYTES + 2, timeout: helper_timeout() };
    let mut interrupted = None;
    resolve_hiding(
        runbook,
        base_dir,
        &hidden,
        &limits,
        Helpers::Run,
        &mut interrupted,
        &mut Default::default(),
    )
    .and_then(|s| bounded(runbook, s))
    .map_err(|problems| match interrupted {
        Some(name) => Unresolved::Interrupted(name),
        None => Unresolved::Problems(problems),
    })
}

/// The secrets a check can read without running anything (is a parameter, a reason, an
/// input a secret?): every `env` and `file` secret of `runbook` and its includes that
/// resolves, as one set bounded as a run's is ([`bounded`]). A `command` secret is never run
/// for a check, and one that does not resolve is left out. One set, so that each distinct
/// value is built and looked for once, however many names and include paths hold it (red
/// team adv25 F1: one set per name made a 32 KiB value under three names cost 908 MB and
/// 135 s for `plan -p`, and the 256-value bound never applied).
pub fn readable(runbook: &Runbook, engine: &EngineEnv) -> Result<Secrets, Vec<String>> {
    fn tree(runbook: &Runbook, engine: &EngineEnv) -> Secrets {
        let base_dir = Path::new(&runbook.source.path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut one = Runbook { secrets: Vec::new(), includes: Vec::new(), ..runbook.clone() };
        let mut values = BTreeMap::new();
        for secret in &runbook.secrets {
            if matches!(secret.source, runbook_core::model::SecretSource::Command(_)) {
                continue;
            }
            one.secrets = vec![secret.clone()];
            if let Ok(s) = resolve(&one, &base_dir, engine) {
                values.extend(s.values);
            }
        }
        let includes = runbook.includes.iter().map(|child| tree(child, engine)).collect();
        Secrets { values, includes, ..Secrets::default() }
    }
    bounded(runbook, tree(runbook, engine))
}

/// The secrets, if their distinct values hold at most [`MAX_SECRET_BYTES`] in all; else
/// the problem, naming the secret that goes past and the included runbook it is in (red
/// team adv22 F4: the bound was per secret, and three secrets at it took 1.26 GB for
/// `echo hi`).
fn bounded(runbook: &Runbook, secrets: Secrets) -> Result<Secrets, Vec<String>> {
    fn walk<'s>(
        runbook: &Runbook,
        secrets: &'s Secrets,
        seen: &mut std::collections::HashSet<&'s str>,
        total: &mut usize,
    ) -> Option<String> {
        for (name, value) in secrets.iter() {
            if seen.insert(value) {
                if seen.len() > MAX_SECRET_VALUES {
                    return Some(format!(
                        "secret `{name}` is the run's secret value number {}; at most {MAX_SECRET_VALUES} distinct values can be redacted with bounded memory",
                        seen.len()
                    ));
                }
                *total += value.len();
                if *total > MAX_SECRET_BYTES {
                    return Some(format!(
                        "secret `{name}` brings the run's secrets to more than {} KiB in all; they could not be redacted with bounded memory",
                        MAX_SECRET_BYTES / 1024
                    ));
                }
            }
        }
        runbook.includes.iter().zip(&secrets.includes).find_map(|(child, s)| {
            walk(child, s, seen, total).map(|p| format!("{p} (in included runbook `{}`)", child.source.path))
        })
    }
    match walk(runbook, &secrets, &mut std::collections::HashSet::new(), &mut 0) {
        Some(problem) => Err(vec![problem]),
        None => Ok(secrets),
    }
}

/// Whether a `command` source's helper runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Helpers {
    /// As a run reads its secrets.
    Run,
    /// A review (a dry run) runs nothing: a helper may issue a credential, write an audit
    /// entry or page someone. Its secret is left out (red team adv19a-4).
    Skip,
}

/// The secrets that can be read without running anything (`env` and `file` sources, in
/// this runbook and the runbooks it includes): what a review (the console's "Review the
/// plan") holds the values it shows to. A `command` source's helper never runs here
/// (ARCHITECTURE.md, "Console and worker write paths (red team adv19a)").
pub fn resolve_for_review(runbook: &Runbook, base_dir: &Path) -> Result<Secrets, Unresolved> {
    let limits = crate::process::HelperLimits { max_bytes: MAX_SECRET_BYTES + 2, timeout: helper_timeout() };
    let mut interrupted = None;
    resolve_hiding(runbook, base_dir, &[], &limits, Helpers::Skip, &mut interrupted, &mut Default::default())
        .and_then(|s| bounded(runbook, s))
        .map_err(Unresolved::Problems)
}

/// [`resolve`], `command` sources run without the variables in `hidden`. After a Ctrl-C,
/// `interrupted` names the secret whose helper it stopped, and no other helper runs.
fn resolve_hiding(
    runbook: &Runbook,
    base_dir: &Path,
    hidden: &[String],
    limits: &crate::process::HelperLimits,
    helpers: Helpers,
    interrupted: &mut Option<String>,
    read: &mut std::collections::HashMap<String, Result<Secrets, Vec<String>>>,
) -> Result<Secrets, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    let mut includes = Vec::new();
    for child in &runbook.includes {
        let dir = Path::new(&child.source.path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        // A file's secrets are read once a run, however many include paths reach it (red
        // team adv25 F5: a `command` secret ran once per path, 128 times at depth 8, and a
        // helper minting a value per read went past the 256-value bound from one secret).
        let resolved = match read.get(&child.source.path) {
            Some(done) => done.clone(),
            None => {
                let done = resolve_hiding(child, &dir, hidden, limits, helpers, interrupted, read);
                read.insert(child.source.path.clone(), done.clone());
                done
            }
        };
        match resolved {
            Ok(s) => includes.push(s),
            Err(p) => {
                problems.extend(
                    p.into_iter().map(|p| format!("{p} (in included runbook `{}`)", child.source.path)),
                );
                includes.push(Secrets::default());
            }
        }
    }
    for secret in &runbook.secrets {
        if interrupted.is_some() {
            problems.push(format!("secret `{}`: not read (interrupted)", secret.name));
            continue;
        }
        if helpers == Helpers::Skip && matches!(secret.source, SecretSource::Command(_)) {
            continue;
        }
        let value = match &secret.source {
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("secret `{}`: environment variable `{var}` is not set", secret.name)),
            // Bounded, regular files only, never blocking on a FIFO (issue 11, promise 5).
            SecretSource::File(file) => crate::files::read_pinned(&base_dir.join(file), None)
                .and_then(|b| String::from_utf8(b).map_err(|_| "it is not UTF-8 text".to_string()))
                .map(|text| match secret.first_line {
                    true => text.lines().next().unwrap_or_default().trim_end_matches('\r').to_string(),
                    false => text.trim_end_matches(['\n', '\r']).to_string(),
                })
                .map_err(|e| format!("secret `{}`: cannot read `{file}`: {e}", secret.name)),
            SecretSource::Command(argv) => match argv.split_first() {
                None => Err(format!("secret `{}`: empty command", secret.name)),
                Some((program, args)) => {
                    // The helper (vault, pass) does not see the variables other secrets are
                    // read from (issue 11, promise 3).
                    use crate::process::HelperError;
                    match crate::process::helper_output(program, args, base_dir, hidden, limits) {
                        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
                            .trim_end_matches(['\n', '\r'])
                            .to_string()),
                        Ok(out) => {
                            Err(format!("secret `{}`: `{program}` exited with {}", secret.name, out.status))
                        }
                        Err(HelperError::Start(e)) => {
                            Err(format!("secret `{}`: cannot run `{program}`: {e}", secret.name))
                        }
                        Err(HelperError::TooLarge(_)) => Err(format!(
                            "secret `{}`: `{program}` printed more than {} KiB; it was ended",
                            secret.name,
                            MAX_SECRET_BYTES / 1024
                        )),
                        Err(HelperError::TimedOut(limit)) => Err(format!(
                            "secret `{}`: `{program}` did not finish within {} (RUNBOOK_SECRET_TIMEOUT); it was ended",
                            secret.name,
                            humantime::format_duration(limit)
                        )),
                        Err(HelperError::Interrupted) => {
                            *interrupted = Some(secret.name.clone());
                            Err(format!(
                                "secret `{}`: `{program}` was interrupted; it was ended",
                                secret.name
                            ))
                        }
                    }
                }
            },
        };
        match value {
            Ok(v) if v.is_empty() => problems.push(format!("secret `{}` is empty", secret.name)),
            // Shorter values cannot be told apart from ordinary text, so they could not be kept
            // out of output and logs: refuse them rather than leak them.
            Ok(v) if v.chars().count() < MIN_SECRET_LEN => problems.push(format!(
                "secret `{}` is shorter than {MIN_SECRET_LEN} characters; it could not be redacted reliably",
                secret.name
            )),
            // No environment value or argument can carry one: the step that used it failed
            // at its start, after the steps before it had run (red team adv28 N3).
            Ok(v) if v.contains('\0') => problems.push(format!(
                "secret `{}` holds a NUL character, which no environment value or argument can carry",
                secret.name
            )),
            Ok(v) if v.len() > MAX_SECRET_BYTES => problems.push(format!(
                "secret `{}` is larger than {} KiB; it could not be redacted with bounded memory",
                secret.name,
                MAX_SECRET_BYTES / 1024
            )),
            Ok(v) => {
                values.insert(secret.name.clone(), v);
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() { Ok(Secrets { values, includes, ..Secrets::default() }) } else { Err(problems) }
}

/// The environment variables the secrets of `runbook` and of its includes are read from.
pub fn source_variables(runbook: &Runbook) -> Vec<&str> {
    let mut out: Vec<&str> = runbook
        .secrets
        .iter()
        .filter_map(|s| match &s.source {
            SecretSource::Env(var) => Some(var.as_str()),
            SecretSource::File(_) | SecretSource::Command(_) => None,
        })
        .collect();
    for child in &runbook.includes {
        out.extend(source_variables(child));
    }
    out
}

/// Replaces secret values, in every form a program is likely to print them, by
/// `<secret:NAME>`: over whole texts ([`Redactor::redact`]), over byte streams cut anywhere
/// ([`Redactor::stream`]) and over structured values, value by value
/// ([`Redactor::redact_event`], [`Redactor::redact_value`]).
///
/// The forms of each value are generated once ([`forms`]): raw; JSON string escapes
/// (`\uXXXX` in either case, `\/`, HTML-safe); percent-encoding in either case, with and
/// without `/` and the characters JavaScript's encoders keep, `+` for spaces; base64 and
/// base64url, padded or not, at each of the three alignments the value can take in the
/// encoded bytes; hex in either case, bare or with spaces; a URL as an HTTP client writes
/// it back (lower-case host, re-encoded path) and its password; each long line of a
/// multi-line value; UTF-16 of a non-ASCII value; uuencode. Matching ignores single line
/// breaks (`\n`, `\r\n`) in the text and in the forms, so a form wrapped at any width
/// (base64 at 64 or 76 columns) or a value split over two lines is found too; and, in a
/// second view, the indentation after such a break (a form folded by a YAML printer).
/// The second pass (`spread`) reads lines through a decoding view (separators skipped,
/// escapes decoded) and dumps across their lines. Before both, hex numbers (`0x5375`,
/// `\x53`) are read in runs across lines as one byte sequence in both byte orders (`words`).
#[derive(Clone, Default)]
pub struct Redactor {
    patterns: Option<Arc<Patterns>>,
}

struct Patterns {
    matcher: AhoCorasick,
    /// The mark of each pattern, by pattern index.
    marks: Vec<Arc<[u8]>>,
    /// The longest pattern, in bytes of normalised text (line breaks removed).
    longest: usize,
    /// The patterns (normalised), by pattern index, and their indices by first byte: what
    /// the end of a stream may be the beginning of.
    patterns: Vec<Vec<u8>>,
    by_first: Vec<Vec<usize>>,
    /// The second pass: forms with separators between their characters, and dumps.
    spread: Option<spread::Spread>,
}

impl Patterns {
    fn new(matcher: AhoCorasick, marks: Vec<Arc<[u8]>>, patterns: Vec<Vec<u8>>) -> Patterns {
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(1);
        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in patterns.iter().enumerate() {
            if let Some(b) = p.first() {
                by_first[usize::from(*b)].push(i);
            }
        }
        Patterns { matcher, marks, longest, patterns, by_first, spread: None }
    }

    /// Whether `tail` is the beginning of a pattern and more bytes could complete it (or a
    /// longer one).
    fn may_grow(&self, tail: &[u8]) -> bool {
        let Some(first) = tail.first() else { return false };
        self.by_first[usize::from(*first)].iter().any(|&i| {
            let p = &self.patterns[i];
            p.len() > tail.len() && p.starts_with(tail)
        })
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.patterns.as_ref().map_or(0, |p| p.marks.len());
        write!(f, "Redactor({n} patterns)")
    }
}

impl Redactor {
    /// A redactor for these secrets (this runbook's and its includes').
    pub fn new(secrets: &Secrets) -> Self {
        Redactor::from_values(secrets.all())
    }

    /// A redactor for `(name, value)` pairs.
    pub fn from_values<'v>(values: impl IntoIterator<Item = (&'v str, &'v str)>) -> Self {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut marks: Vec<Arc<[u8]>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut spread_patterns = Vec::new();
        let values: Vec<(&str, &str)> = values.into_iter().collect();
        let mut distinct = std::collections::HashSet::new();
        let bytes: usize = values.iter().filter(|(_, v)| distinct.insert(*v)).map(|(_, v)| v.len()).sum();
        // The run's values and the engine's own (a state store's password).
        if bytes > MAX_REDACTED_BYTES || distinct.len() > MAX_SECRET_VALUES + 4 {
            return Redactor::fail_closed();
        }
        let mut built = std::collections::HashSet::new();
        for (name, value) in values {
            // A value under several names: its forms once, marked with its first name
            // (red team adv23 F1).
            if !built.insert(value) {
                continue;
            }
            let mark: Arc<[u8]> = Arc::from(format!("<secret:{name}>").into_bytes());
            for form in spread_forms(value) {
                spread_patterns.push((form, mark.clone()));
            }
            for form in forms(value) {
                // As the text's two views read it: with the indentation after its line breaks
                // and without.
                for indent in [false, true] {
                    let (norm, _) = normalise(&form, true, indent);
                    if norm.len() >= MIN_SECRET_LEN && seen.insert(norm.clone()) {
                        patterns.push(norm);
                        marks.push(mark.clone());
                    }
                }
            }
        }
        if patterns.is_empty() {
            return Redactor { patterns: None };
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            // An NFA: memory in proportion to the patterns' bytes (a DFA costs 256 transitions per
            // state, about 1 KB per byte of a secret; issue 11, promise 5).
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&patterns);
        let matcher = match matcher {
            Ok(m) => m,
            Err(_) => return Redactor::fail_closed(),
        };
        let mut p = Patterns::new(matcher, marks, patterns);
        p.spread = spread::Spread::new(spread_patterns);
        Redactor { patterns: Some(Arc::new(p)) }
    }

    /// A redactor that matches every byte, so that nothing is shown rather than something
    /// leaking: what is left when a matcher cannot be built, or would pass
    /// [`MAX_REDACTED_BYTES`].
    fn fail_closed() -> Redactor {
        match AhoCorasick::builder().build((0..=255u8).map(|b| [b])) {
            Ok(m) => {
                let mark: Arc<[u8]> = Arc::from(&b"<redacted>"[..]);
                let every: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
                Redactor { patterns: Some(Arc::new(Patterns::new(m, vec![mark; 256], every))) }
            }
            Err(_) => Redactor { patterns: None },
        }
    }

    /// Whether there is anything to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_none()
    }

    /// A streaming redactor over one byte stream (a step's stdout, say): feed it chunks cut
    /// anywhere; it holds back only the end that could begin a form (at most the longest
    /// pattern minus one byte, without line breaks), so memory stays bounded whatever the
    /// stream.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            patterns: self.patterns.clone(),
            pending: Vec::new(),
            spread: Default::default(),
            words: Default::default(),
        }
    }

    /// `text` with every known secret form replaced.
    pub fn redact(&self, text: &str) -> String {
        if self.patterns.is_none() {
            return text.to_string();
        }
        String::from_utf8_lossy(&self.redact_bytes(text.as_bytes())).into_owned()
    }

    /// `bytes` with every known secret form replaced.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut stream = self.stream();
        stream.push(bytes, &mut out);
        stream.finish(&mut out);
        out
    }

    /// A JSON value redacted value by value: every string, every number whose digits hold
    /// a secret (it becomes a string), every object key. Never by text replacement over
    /// serialised JSON, which a number or an escape could defeat.
    pub fn redact_value(&self, value: &mut Value) {
        if self.patterns.is_none() {
            return;
        }
        let mut changes = Vec::new();
        self.changes(value, &mut Vec::new(), &mut changes);
        for change in &changes {
            change.apply(value);
        }
    }

    /// An event with every value in it redacted ([`Redactor::redact_value`] over its JSON
    /// form). Should a redacted value not fit its field (a secret equal to a word of the
    /// engine's vocabulary, such as a status), the other values are still redacted one by
    /// one.
    pub fn redact_event(&self, event: runbook_core::journal::RunEvent) -> runbook_core::journal::RunEvent {
        use runbook_core::journal::RunEvent;
        if self.patterns.is_none() {
            return event;
        }
        let Ok(original) = serde_json::to_value(&event) else { return event };
        let mut changes = Vec::new();
        self.changes(&original, &mut Vec::new(), &mut changes);
        if changes.is_empty() {
            return event;
        }
        let mut all = original.clone();
        for change in &changes {
            change.apply(&mut all);
        }
        if let Ok(e) = serde_json::from_value::<RunEvent>(all) {
            return e;
        }
        let mut current = original;
        for change in &changes {
            let mut next = current.clone();
            change.apply(&mut next);
            if serde_json::from_value::<RunEvent>(next.clone()).is_ok() {
                current = next;
            }
        }
        serde_json::from_value(current).unwrap_or(event)
    }

    /// The changes redaction makes to `value`, children before the key that holds them.
    fn changes(&self, value: &Value, path: &mut Vec<PathPart>, out: &mut Vec<Change>) {
        match value {
            Value::String(s) => {
                let r = self.redact(s);
                if &r != s {
                    out.push(Change::Value(path.clone(), Value::String(r)));
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                let r = self.redact(&text);
                if r != text {
                    out.push(Change::Value(path.clone(), Value::String(r)));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathPart::Index(i));
                    self.changes(item, path, out);
                    path.pop();
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    path.push(PathPart::Key(key.clone()));
                    self.changes(item, path, out);
                    path.pop();
                    let r = self.redact(key);
                    if &r != key {
                        out.push(Change::Key(path.clone(), key.clone(), r));
                    }
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

/// One redaction in a JSON value: a value replaced, or an object key renamed.
#[derive(Debug, Clone)]
enum Change {
    Value(Vec<PathPart>, Value),
    Key(Vec<PathPart>, String, String),
}

impl Change {
    fn apply(&self, root: &mut Value) {
        fn walk<'v>(mut v: &'v mut Value, path: &[PathPart]) -> Option<&'v mut Value> {
            for part in path {
                v = match (part, v) {
                    (PathPart::Key(k), Value::Object(m)) => m.get_mut(k)?,
                    (PathPart::Index(i), Value::Array(a)) => a.get_mut(*i)?,
                    _ => return None,
                };
            }
            Some(v)
        }
        match self {
            Change::Value(path, new) => {
                if let Some(v) = walk(root, path) {
                    *v = new.clone();
                }
            }
            Change::Key(path, old, new) => {
                if let Some(Value::Object(map)) = walk(root, path)
                    && let Some(v) = map.remove(old)
                {
                    map.insert(new.clone(), v);
                }
            }
        }
    }
}

/// The redactor of one byte stream. See [`Redactor::stream`].
pub struct StreamRedactor {
    patterns: Option<Arc<Patterns>>,
    /// Bytes seen but not yet written out: a match may still begin in them.
    pending: Vec<u8>,
    /// The second pass's lines held back (see `spread`).
    spread: spread::SpreadStream,
    /// The hex-number view's lines held back (see `words`), before the first pass.
    words: words::WordsStream,
}

impl std::fmt::Debug for StreamRedactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamRedactor({} bytes held)", self.pending.len())
    }
}

/// How `process` redacts an attempt's output without knowing secrets.
impl crate::process::Redaction for Redactor {
    fn stream(&self) -> Box<dyn crate::process::StreamRedaction> {
        Box::new(Redactor::stream(self))
    }
}

impl crate::process::StreamRedaction for StreamRedactor {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        StreamRedactor::push(self, chunk, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        StreamRedactor::finish(self, out);
    }
}

impl StreamRedactor {
    /// Redact `chunk`, appending to `out` what can no longer be part of a secret.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.patterns.is_none() {
            out.extend_from_slice(chunk);
            return;
        }
        match self.patterns.as_ref().and_then(|p| p.spread.as_ref()) {
            // Hex numbers first: a pass that replaced a piece of a word would leave a hole.
            Some(s) => self.words.push(s, chunk, &mut self.pending),
            None => self.pending.extend_from_slice(chunk),
        }
        self.drain_both(false, out);
    }

    /// The end of the stream: write out everything held back, redacted.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(s) = self.patterns.as_ref().and_then(|p| p.spread.as_ref()) {
            self.words.finish(s, &mut self.pending);
        }
        self.drain_both(true, out);
    }

    /// How many bytes are held back: by the first pass, bounded by three times the longest
    /// pattern; by the second, the line being written (the caller hands on whole lines
    /// anyway; at most `Spread::line_max`: [`spread::SPREAD_LINE_MAX`], more for a secret
    /// whose longest spread form is over 8 KiB), a dump's lines and wrapped lines; by the
    /// hex-number view, a line being written that may hold a number (at most as much) and
    /// the lines from the number where a form may be under way.
    pub fn held(&self) -> usize {
        self.pending.len() + self.spread.held() + self.words.held()
    }

    /// The first pass (forms as they are, line breaks ignored), then the second over its
    /// output (forms spread with separators, dumps): see `spread`.
    fn drain_both(&mut self, last: bool, out: &mut Vec<u8>) {
        let spread = self.patterns.as_ref().and_then(|p| p.spread.as_ref().map(|_| p.clone()));
        let Some(p) = spread else {
            self.drain(last, out);
            return;
        };
        let mut first = Vec::new();
        self.drain(last, &mut first);
        if let Some(s) = p.spread.as_ref() {
            self.spread.push(s, &first, out);
            if last {
                self.spread.finish(s, out);
            }
        }
    }

    fn drain(&mut self, last: bool, out: &mut Vec<u8>) {
        let Some(p) = self.patterns.clone() else {
            out.append(&mut self.pending);
            return;
        };
        // Two views when a line break is followed by indentation: the text as it is (a
        // value may itself hold the space a continuation line begins with) and the text
        // with that indentation skipped (a value wrapped by a YAML or JSON printer, a PEM
        // key indented in a config). Each match in either is replaced; what is held back is
        // what either holds back.
        let indented =
            self.pending.split(|b| *b == b'\n').skip(1).any(|l| matches!(l.first(), Some(b' ' | b'\t')));
        let mut byte_boundary = usize::MAX;
        let mut matches: Vec<(usize, usize, usize)> = Vec::new();
        for indent in [false, true] {
            if indent && !indented {
                continue;
            }
            let (norm, map) = normalise(&self.pending, last, indent);
            let (boundary, bytes) = self.boundary(&p, &norm, &map, last);
            byte_boundary = byte_boundary.min(bytes);
            for m in p.matcher.find_iter(&norm) {
                if m.start() >= boundary {
                    break;
                }
                matches.push((map[m.start()], map[m.end() - 1] + 1, m.pattern().as_usize()));
            }
        }
        matches.sort_unstable();
        let mut cursor = 0;
        for (start, end, pattern) in matches {
            // Overlapping matches of the two views are one replacement.
            if start < cursor {
                if end > cursor {
                    let breaks = self.pending[cursor..end].iter().filter(|b| **b == b'\n').count();
                    out.extend(std::iter::repeat_n(b'\n', breaks));
                    cursor = end;
                }
                continue;
            }
            out.extend_from_slice(&self.pending[cursor..start]);
            out.extend_from_slice(&p.marks[pattern]);
            // Line breaks inside the match are kept: the text keeps its lines.
            let breaks = self.pending[start..end].iter().filter(|b| **b == b'\n').count();
            out.extend(std::iter::repeat_n(b'\n', breaks));
            cursor = end;
        }
        let stop = byte_boundary.max(cursor);
        out.extend_from_slice(&self.pending[cursor..stop]);
        self.pending.drain(..stop);
    }

    /// Where a view of the pending bytes is held back from: in the view and in the bytes.
    fn boundary(&self, p: &Patterns, norm: &[u8], map: &[usize], last: bool) -> (usize, usize) {
        // Held back: from the first position whose rest is the beginning of a pattern, which
        // more bytes could complete (at most the longest pattern minus one byte). A match
        // that begins before `boundary` is final: no byte to come can make it longer or move
        // it. The rest goes out now, so a step that prints a line and waits is shown at once
        // unless its last bytes could begin a secret.
        let boundary = if last {
            norm.len()
        } else {
            // The last byte may yet be erased by a backspace to come (an overstrike cut
            // between two reads): what comes before it counts as a beginning too.
            let n = norm.len();
            let window = n.saturating_sub(p.longest);
            (window..n)
                .find(|&i| p.may_grow(&norm[i..]) || (i + 1 < n && p.may_grow(&norm[i..n - 1])))
                .unwrap_or(n)
        };
        let byte_boundary = if last {
            self.pending.len()
        } else if boundary < norm.len() {
            map[boundary]
        } else if p.may_grow(b"\n") || p.may_grow(b"\r") {
            // One or two line breaks at the end, not yet known to be a single break: they
            // wait only if a pattern could begin with them.
            norm.len().checked_sub(1).map_or(0, |last| map[last] + 1)
        } else {
            self.pending.len()
        };
        (boundary, byte_boundary)
    }
}

/// The most spaces and tabs after a single line break that matching skips as indentation.
const INDENT_MAX: usize = 64;

/// `bytes` without its single line breaks (`\n` and `\r\n` between two other bytes; longer
/// runs of breaks, a blank line, stay), and for each byte kept its index in `bytes`. When
/// `last` is false, one or two breaks at the very end are kept out (the next bytes decide).
/// With `indent`, the spaces and tabs after a single break are left out too.
fn normalise(bytes: &[u8], last: bool, indent: bool) -> (Vec<u8>, Vec<usize>) {
    let mut norm = Vec::with_capacity(bytes.len());
    let mut map = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // What a terminal does not show as characters is no part of a match: NUL (UTF-16
        // text), escape sequences (colours), and a backspace with the byte it erases (an
        // overstrike); the match still covers the original bytes (issue 11, promise 3).
        match b {
            0 => {
                i += 1;
                continue;
            }
            0x08 => {
                norm.pop();
                map.pop();
                i += 1;
                continue;
            }
            0x1b => match escape_len(&bytes[i..]) {
                Some(n) => {
                    i += n;
                    continue;
                }
                // Not complete yet: the next bytes tell.
                None if !last => break,
                None => {}
            },
            _ => {}
        }
        if b == b'\n' || b == b'\r' {
            let run_end =
                bytes[i..].iter().position(|c| *c != b'\n' && *c != b'\r').map_or(bytes.len(), |n| i + n);
            let run = &bytes[i..run_end];
            // A lone carriage return between two characters too: a terminal writes what
            // follows over the line, and can show a value put together from both parts.
            let single = run == b"\n" || run == b"\r\n" || run == b"\r";
            if run_end == bytes.len() && !last && run.len() <= 2 {
                // Undecided: the next bytes tell whether it is a single break. A longer run
                // is decided already (it can only grow), so a stream of blank lines is not
                // held back.
                break;
            }
            if !single {
                for (k, c) in run.iter().enumerate() {
                    norm.push(*c);
                    map.push(i + k);
                }
            } else if indent {
                // The indentation after a single break is skipped too: a value wrapped by a
                // YAML or JSON printer, or a PEM key indented in a config, has it on each
                // continuation line. Not before another break (a blank line stays one), and
                // at most `INDENT_MAX` spaces and tabs (so that nothing unbounded waits).
                let rest = &bytes[run_end..];
                match rest.iter().take(INDENT_MAX + 1).position(|c| *c != b' ' && *c != b'\t') {
                    Some(n) if n > 0 && n <= INDENT_MAX && !matches!(rest[n], b'\n' | b'\r') => {
                        i = run_end + n;
                        continue;
                    }
                    // Only spaces so far: the next bytes tell.
                    None if !last && rest.len() <= INDENT_MAX => break,
                    _ => {}
                }
            }
            i = run_end;
            continue;
        }
        norm.push(b);
        map.push(i);
        i += 1;
    }
    (norm, map)
}

/// The length of the escape sequence at the start of `bytes` (which begins with ESC):
/// a CSI (`ESC [` parameters, a final byte in `@`..=`~`), or ESC and one more byte. `None`
/// when it is not complete yet; a CSI longer than 32 bytes is no escape (ESC alone is
/// skipped), so nothing unbounded is held back.
fn escape_len(bytes: &[u8]) -> Option<usize> {
    match bytes.get(1) {
        None => None,
        Some(b'[') => {
            for (k, c) in bytes.iter().enumerate().skip(2).take(32) {
                if (0x40..=0x7e).contains(c) {
                    return Some(k + 1);
                }
            }
            if bytes.len() < 34 { None } else { Some(1) }
        }
        Some(_) => Some(2),
    }
}

/// Every form of `value` that the redactor looks for (before normalisation).
pub fn forms(value: &str) -> Vec<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out: Vec<Vec<u8>> = vec![bytes.to_vec()];
    // Each long line of a multi-line value (a PEM key printed line by line, indented).
    out.extend(value.lines().map(str::trim).filter(|l| l.len() >= 8).map(|l| l.as_bytes().to_vec()));
    for ascii in [None, Some(false), Some(true)] {
        for html in [false, true] {
            for slash in [false, true] {
                out.push(json_escaped(value, ascii, html, slash).into_bytes());
            }
        }
    }
    // JSON inside JSON (a log line of a JSON document: Docker's json-file), two and three
    // levels, and Python's `repr` of such text (red team adv21-4).
    let mut nested = value.to_string();
    for _ in 0..3 {
        nested = json_escaped(&nested, None, false, false);
        out.push(nested.clone().into_bytes());
        out.push(nested.replace('\\', "\\\\").into_bytes());
    }
    for keep in [PCT_UNRESERVED, PCT_PATH, PCT_COMPONENT, PCT_URI, PCT_MINIJINJA] {
        for upper in [true, false] {
            let pct = percent_encoded(bytes, keep, upper);
            // application/x-www-form-urlencoded (query strings, form bodies): space is `+`.
            out.push(pct.replace("%20", "+").into_bytes());
            out.push(pct.into_bytes());
        }
    }
    for alphabet in [B64_STD, B64_URL, &UU_GRAVE, &UU_SPACE] {
        for offset in 0..3 {
            out.extend(base64_forms(bytes, offset, alphabet));
        }
    }
    // UTF-16, little- and big-endian: matching skips NUL bytes, which leaves ASCII as it
    // is; these are the forms of the other characters.
    if !value.is_ascii() {
        out.push(value.encode_utf16().flat_map(u16::to_le_bytes).collect());
        out.push(value.encode_utf16().flat_map(u16::to_be_bytes).collect());
    }
    // Encodings of its UTF-16, ASCII values too (red team adv21-3): PowerShell's
    // `-EncodedCommand` is base64 of UTF-16LE; a hex dump of UTF-16 text.
    for utf16 in utf16_forms(value) {
        for offset in 0..3 {
            out.extend(base64_forms(&utf16, offset, B64_STD));
        }
        out.push(hex(&utf16, false, "").into_bytes());
        out.push(hex(&utf16, true, "").into_bytes());
    }
    out.push(hex(bytes, false, "").into_bytes());
    out.push(hex(bytes, true, "").into_bytes());
    out.push(hex(bytes, false, " ").into_bytes());
    out.push(hex(bytes, true, " ").into_bytes());
    out.push(hex(bytes, false, ":").into_bytes());
    out.push(hex(bytes, true, ":").into_bytes());
    out.extend(url_forms(value));
    out.extend(escaped_forms(value));
    // Base32 and ascii85/base85 (red team adv19a-8): long enough pieces only, as these
    // alphabets are plain letters and digits.
    out.extend(block_forms(bytes).into_iter().filter(|f| f.len() >= 8));
    // A host name as an HTTP client writes it back (`http://{{ secrets.T }}.example/`), and
    // a token of hex digits in the other case (`tr a-f A-F`, `xxd -u`: red team adv20-2).
    out.push(value.to_ascii_lowercase().into_bytes());
    out.push(value.to_ascii_uppercase().into_bytes());
    // Base64 of the value's base64 (a value encoded twice: Kubernetes secrets of an
    // already-encoded token): the standard form, padded or not, encoded again.
    for inner in base64_forms(bytes, 0, B64_STD) {
        out.extend(base64_forms(&inner, 0, B64_STD));
    }
    // Two encodings in a row (red team adv22 L2): the hex of its base64 (`base64 | xxd -p`)
    // and the base64 of its hex (`xxd -p | base64`), the value anywhere in the data.
    for offset in 0..3 {
        for inner in base64_forms(bytes, offset, B64_STD) {
            out.push(hex(&inner, false, "").into_bytes());
            out.push(hex(&inner, true, "").into_bytes());
        }
    }
    for upper in [false, true] {
        let digits = hex(bytes, upper, "");
        for offset in 0..3 {
            out.extend(base64_forms(digits.as_bytes(), offset, B64_STD));
        }
    }
    out.retain(|f| !f.is_empty());
    out.sort();
    out.dedup();
    out
}

/// The forms the second pass looks for with separators between their characters (see
/// `spread`): the value, its hex in either case, and its base64, base32 and ascii85/base85
/// forms.
fn spread_forms(value: &str) -> Vec<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = vec![bytes.to_vec(), hex(bytes, false, "").into_bytes(), hex(bytes, true, "").into_bytes()];
    for alphabet in [B64_STD, B64_URL] {
        for offset in 0..3 {
            out.extend(base64_forms(bytes, offset, alphabet));
        }
    }
    out.extend(block_forms(bytes));
    // UTF-16 (LE, BE) of any value, NUL bytes and all (a decoded `b'S\x003\x00'` keeps
    // its NULs), its hex and base64 (adv21-3).
    for utf16 in utf16_forms(value) {
        out.push(hex(&utf16, false, "").into_bytes());
        out.push(hex(&utf16, true, "").into_bytes());
        for offset in 0..3 {
            out.extend(base64_forms(&utf16, offset, B64_STD));
        }
        out.push(utf16);
    }
    // The bytes as numbers (red team adv20-2): decimal (`od -An -tu1`, Python's
    // `list(b"...")`, a JSON array of bytes) and octal as `od -b` pads it; the separators
    // between the numbers are the spread's own.
    out.push(bytes.iter().map(u8::to_string).collect::<String>().into_bytes());
    out.push(bytes.iter().map(|b| format!("{b:03o}")).collect::<String>().into_bytes());
    // Its bits, eight digits a byte (`xxd -b`: red team adv21-6).
    out.push(bytes.iter().map(|b| format!("{b:08b}")).collect::<String>().into_bytes());
    // Uuencode (its lines read as one sequence by the second pass: adv21-6).
    for alphabet in [&UU_GRAVE, &UU_SPACE] {
        for offset in 0..3 {
            out.extend(base64_forms(bytes, offset, alphabet));
        }
    }
    // A dump's numbers are words of 2, 4 or 8 bytes, little-endian, in base 8, 10 or 16
    // (one rule, not one pattern per tool: red team adv21-6, adv22 F1, F2): the value's
    // whole words at every alignment, in octal as `od` pads it (`od`, `od -o`, `hexdump -o`:
    // six digits; `od -to4`: eleven; `od -to8`: twenty-two) and in decimal, unsigned and
    // signed (`od -td2`, `-tu2`, `od -i`, `-tu4`, `od -l`, `-tu8`); the hex forms follow.
    // A value that ends the data ends in a word `od` pads with zero bytes: the whole words
    // with that word after them, and that word alone when it holds four or more bytes of
    // the value, are forms too.
    for width in [2usize, 4, 8] {
        let numbers = |words: &[u64]| -> [Vec<u8>; 3] {
            let digits = (width * 8).div_ceil(3);
            let shift = 64 - 8 * u32::try_from(width).unwrap_or(8);
            [
                words.iter().map(|w| format!("{w:0digits$o}")).collect::<String>().into_bytes(),
                words.iter().map(u64::to_string).collect::<String>().into_bytes(),
                // Signed: the word's top bit is its sign (the `-` is a separator).
                words
                    .iter()
                    .map(|w| (i64::from_ne_bytes((w << shift).to_ne_bytes()) >> shift).to_string())
                    .collect::<String>()
                    .into_bytes(),
            ]
        };
        let word = |w: &[u8]| w.iter().rev().fold(0u64, |v, b| v << 8 | u64::from(*b));
        for start in 0..width.min(bytes.len()) {
            let chunks = bytes[start..].chunks_exact(width);
            let rest = chunks.remainder();
            let mut words: Vec<u64> = chunks.map(word).collect();
            out.extend(numbers(&words));
            if !rest.is_empty() && !words.is_empty() {
                words.push(word(rest));
                out.extend(numbers(&words));
            }
        }
        for k in 4..width.min(bytes.len()) {
            out.extend(numbers(&[word(&bytes[bytes.len() - k..])]));
        }
    }
    // A 64-bit word shared with other data holds up to seven bytes of the value: the bytes
    // of the value it holds, swapped, are a form when they are four or more (eight hex
    // digits), at the value's beginning and at its end.
    for k in 4..8.min(bytes.len()) {
        for piece in [&bytes[..k], &bytes[bytes.len() - k..]] {
            let swapped: Vec<u8> = piece.iter().rev().copied().collect();
            out.push(hex(&swapped, false, "").into_bytes());
            out.push(hex(&swapped, true, "").into_bytes());
        }
    }
    for width in [2, 4, 8] {
        for align in 0..width {
            let start = (width - align) % width;
            let words: Vec<u8> = bytes[start.min(bytes.len())..]
                .chunks_exact(width)
                .flat_map(|w| w.iter().rev().copied())
                .collect();
            out.push(hex(&words, false, "").into_bytes());
            out.push(hex(&words, true, "").into_bytes());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The value in UTF-16, little- and big-endian.
fn utf16_forms(value: &str) -> [Vec<u8>; 2] {
    [
        value.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        value.encode_utf16().flat_map(u16::to_be_bytes).collect(),
    ]
}

/// RFC 4648 base32.
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// RFC 4648 base32 with the extended hex alphabet (Python's `b32hexencode`, DNSSEC).
const B32_HEX: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
/// Ascii85 as Adobe and Python's `a85encode` write it (`!` to `u`, `z` for four zero bytes).
const A85_FIRST: u8 = b'!';
/// Base85 as RFC 1924, Python's `b85encode` and git write it.
const B85: &[u8; 85] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";

/// Base32 (upper and lower case) at each of the five alignments of the value in the
/// encoded bytes, and ascii85/base85 at each of the four: the characters that come from the
/// value only, and, for a value that ends the data, with its last characters and padding.
fn block_forms(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (offset, alphabet) in (0..5).flat_map(|o| [(o, B32), (o, B32_HEX)]) {
        let mut data = vec![0u8; offset];
        data.extend_from_slice(bytes);
        let chars = bits_encoded(&data, 5, alphabet);
        let first = (offset * 8).div_ceil(5);
        let pure_end = (data.len() * 8) / 5;
        let mut forms = Vec::new();
        if pure_end > first {
            forms.push(chars[first..pure_end].to_vec());
        }
        if chars.len() > pure_end && chars.len() > first {
            forms.push(chars[first..].to_vec());
            let mut padded = chars[first..].to_vec();
            padded.extend(std::iter::repeat_n(b'=', chars.len().next_multiple_of(8) - chars.len()));
            forms.push(padded);
        }
        for f in forms {
            // Base32hex is written in upper case (Python, DNSSEC): its lower case would only
            // add letters a stream must hold back at a line's end (`e` ends many lines).
            if alphabet == B32 {
                out.push(f.to_ascii_lowercase());
            }
            out.push(f);
        }
    }
    for offset in 0..4 {
        let mut data = vec![0u8; offset];
        data.extend_from_slice(bytes);
        let first_group = offset.div_ceil(4);
        for adobe in [true, false] {
            let mut pure = Vec::new();
            let mut ended = Vec::new();
            for chunk in data.chunks(4).skip(first_group) {
                let enc = base85_group(chunk, adobe);
                if chunk.len() == 4 {
                    pure.extend_from_slice(&enc);
                }
                ended.extend_from_slice(&enc);
            }
            out.push(pure);
            out.push(ended);
        }
    }
    out.retain(|f| !f.is_empty());
    out
}

/// `data` in an alphabet of `bits` bits per character, without padding (the last
/// character takes zero bits after the data).
fn bits_encoded(data: &[u8], bits: u32, alphabet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 8 / bits as usize + 1);
    let mut acc: u32 = 0;
    let mut have: u32 = 0;
    let mask = (1u32 << bits) - 1;
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        have += 8;
        while have >= bits {
            have -= bits;
            out.push(alphabet[((acc >> have) & mask) as usize]);
        }
        acc &= (1u32 << have) - 1;
    }
    if have > 0 {
        out.push(alphabet[((acc << (bits - have)) & mask) as usize]);
    }
    out
}

/// One group of up to four bytes in base85: five characters, or one more than the bytes
/// of a short last group; Adobe's ascii85 writes four zero bytes as `z`.
fn base85_group(chunk: &[u8], adobe: bool) -> Vec<u8> {
    let mut word = [0u8; 4];
    word[..chunk.len()].copy_from_slice(chunk);
    let mut n = u32::from_be_bytes(word);
    if adobe && chunk.len() == 4 && n == 0 {
        return b"z".to_vec();
    }
    let mut digits = [0u8; 5];
    for d in digits.iter_mut().rev() {
        let r = (n % 85) as u8;
        *d = if adobe { A85_FIRST + r } else { B85[usize::from(r)] };
        n /= 85;
    }
    digits[..chunk.len() + 1].to_vec()
}

/// The value inside a JSON string: `ascii` escapes non-ASCII as `\u` (upper-case hex when
/// true), `html` escapes `<`, `>`, `&`, `'` (as Go does), `slash` escapes `/` (as PHP does).
fn json_escaped(s: &str, ascii: Option<bool>, html: bool, slash: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 8);
    let u = |out: &mut String, unit: u16, upper: bool| {
        let _ = if upper { write!(out, "\\u{unit:04X}") } else { write!(out, "\\u{unit:04x}") };
    };
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '/' if slash => out.push_str("\\/"),
            '<' | '>' | '&' | '\'' if html => u(&mut out, c as u16, ascii == Some(true)),
            c if (c as u32) < 0x20 => u(&mut out, c as u16, ascii == Some(true)),
            c if !c.is_ascii() && ascii.is_some() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    u(&mut out, *unit, ascii == Some(true));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The forms quoting and escaping give a value: shell quoting (bash's xtrace and jq's
/// `@sh`: `'\''`; Perl and `\'`; `printf %q`: a backslash before each special character),
/// SQL string literals (`''`), HTML and XML entities (named, decimal, hex, as Python, jq and
/// PHP write them), quoted-printable (`=XX`), and Java's `URLEncoder` (form encoding that
/// keeps `*` and encodes `~`). Each is a rule for every character of the value, so the
/// number of forms does not grow with the value.
fn escaped_forms(value: &str) -> Vec<Vec<u8>> {
    let map = |f: &dyn Fn(char) -> Option<String>| -> Vec<u8> {
        let mut out = String::with_capacity(value.len() * 2);
        for c in value.chars() {
            match f(c) {
                Some(r) => out.push_str(&r),
                None => out.push(c),
            }
        }
        out.into_bytes()
    };
    let mut out = Vec::new();
    if value.contains('\'') {
        out.push(map(&|c| (c == '\'').then(|| "'\\''".to_string())));
        out.push(map(&|c| (c == '\'').then(|| "''".to_string())));
        out.push(map(&|c| matches!(c, '\'' | '\\').then(|| format!("\\{c}"))));
    }
    // bash's `printf %q` (and `${var@Q}`-less quoting of `ls`, `declare -p`).
    const SH_SPECIAL: &str = " \t'\"\\|&;()<>!{}*[?]^$`,#~=%";
    out.push(map(&|c| SH_SPECIAL.contains(c).then(|| format!("\\{c}"))));
    out.push(map(&|c| (SH_SPECIAL.contains(c) && !"~=%#,".contains(c)).then(|| format!("\\{c}"))));
    for apos in ["&apos;", "&#39;", "&#x27;"] {
        out.push(map(&|c| match c {
            '&' => Some("&amp;".to_string()),
            '<' => Some("&lt;".to_string()),
            '>' => Some("&gt;".to_string()),
            '"' => Some("&quot;".to_string()),
            '\'' => Some(apos.to_string()),
            _ => None,
        }));
    }
    out.push(map(&|c| (!c.is_alphanumeric()).then(|| format!("&#{};", c as u32))));
    // Every character as an entity (red team adv19a-8: `&#83;&#51;...`).
    out.push(map(&|c| Some(format!("&#{};", c as u32))));
    out.push(map(&|c| Some(format!("&#x{:x};", c as u32))));
    out.push(map(&|c| Some(format!("&#x{:X};", c as u32))));
    out.push(map(&|c| (!c.is_alphanumeric()).then(|| format!("&#x{:x};", c as u32))));
    out.push(map(&|c| (!c.is_alphanumeric()).then(|| format!("&#x{:X};", c as u32))));
    let qp: String = value
        .bytes()
        .map(|b| {
            if b == b'=' || !(0x20..0x7f).contains(&b) {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            }
        })
        .collect();
    out.push(qp.into_bytes());
    for upper in [true, false] {
        out.push(percent_encoded(value.as_bytes(), PCT_JAVA, upper).replace("%20", "+").into_bytes());
    }
    out
}

/// Java's `URLEncoder` (and HTML form encoding): `*` kept, `~` encoded.
const PCT_JAVA: &[u8] = b"-._*";
/// Bytes each percent-encoding keeps as they are (besides ASCII letters and digits).
const PCT_UNRESERVED: &[u8] = b"-._~";
/// Python's `urllib.parse.quote`: `/` too.
const PCT_PATH: &[u8] = b"-._~/";
/// JavaScript's `encodeURIComponent`.
const PCT_COMPONENT: &[u8] = b"-._~!'()*";
/// minijinja's `urlencode` filter (the one filter on a secret that `check` allows besides
/// `tojson`, RB057): keeps `/`, encodes `~`. Red team adv14c F2: no other form did both.
const PCT_MINIJINJA: &[u8] = b"-._/";
/// JavaScript's `encodeURI`.
const PCT_URI: &[u8] = b"-._~!'()*;,/?:@&=+$#";

fn percent_encoded(bytes: &[u8], keep: &[u8], upper: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// uuencode (`uuencode`, Python's `binascii.b2a_uu`): six bits as the character 32 more,
/// zero as `` ` `` or as a space.
const UU_GRAVE: [u8; 64] = uu_alphabet(b'`');
const UU_SPACE: [u8; 64] = uu_alphabet(b' ');

const fn uu_alphabet(zero: u8) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut i = 1;
    out[0] = zero;
    while i < 64 {
        out[i] = 32 + i as u8;
        i += 1;
    }
    out
}

/// The base64 forms of `bytes` placed `offset` bytes after a group boundary: the
/// characters whose six bits all come from the value (the same whatever surrounds it), and,
/// for a value that ends the encoded data, those followed by the last character and its
/// padding (with and without `=`).
fn base64_forms(bytes: &[u8], offset: usize, alphabet: &[u8; 64]) -> Vec<Vec<u8>> {
    let mut data = vec![0u8; offset];
    data.extend_from_slice(bytes);
    let encoded = base64_with(&data, alphabet);
    let first = (offset * 8).div_ceil(6);
    let pure_end = (data.len() * 8) / 6;
    let mut out = Vec::new();
    if pure_end > first {
        out.push(encoded[first..pure_end].to_vec());
    }
    // The value ends the data: its last character (zero bits after it) and the padding.
    let chars = (data.len() * 8).div_ceil(6);
    if chars > pure_end && chars > first {
        out.push(encoded[first..chars].to_vec());
        out.push(encoded[first..].to_vec());
    }
    out
}

fn base64_with(bytes: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8], upper: bool, separator: &str) -> String {
    let parts: Vec<String> =
        bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
    parts.join(separator)
}

/// A URL as HTTP clients write it back in their messages (scheme and host lower-cased,
/// path and query re-encoded, a `/` added to an empty path), with and without that `/`,
/// and its password, as written and decoded.
fn url_forms(value: &str) -> Vec<Vec<u8>> {
    let Ok(url) = reqwest::Url::parse(value.trim()) else { return Vec::new() };
    if !url.has_host() {
        return Vec::new();
    }
    let mut out = vec![url.as_str().as_bytes().to_vec()];
    if let Some(bare) = url.as_str().strip_suffix('/') {
        out.push(bare.as_bytes().to_vec());
    }
    // A webhook's secret is its path or query (`curl -v` prints `GET /services/...`
    // without the host): each long path segment and query value is a form of its own, and
    // the path with its query.
    // Only parts that look like keys (16 characters, or 8 with letters and digits), so that
    // `/app` or `services` are not redacted everywhere.
    let key_like = |p: &str| {
        p.len() >= 16
            || (p.len() >= 8
                && p.bytes().any(|b| b.is_ascii_digit())
                && p.bytes().any(|b| b.is_ascii_alphabetic()))
    };
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    let tail = format!("{}{query}", url.path());
    if key_like(&tail) {
        out.push(tail.into_bytes());
    }
    for segment in url.path_segments().into_iter().flatten().filter(|p| key_like(p)) {
        out.push(segment.as_bytes().to_vec());
    }
    for (_, v) in url.query_pairs().filter(|(_, v)| key_like(v)) {
        out.push(v.as_bytes().to_vec());
    }
    if let Some(password) = url.password() {
        out.push(password.as_bytes().to_vec());
        if let Ok(decoded) = percent_decoded(password) {
            out.push(decoded.into_bytes());
        }
    }
    out
}

fn percent_decoded(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hexval = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) =
                (b.get(i + 1).and_then(|c| hexval(*c)), b.get(i + 2).and_then(|c| hexval(*c)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Parameters that hold a secret (in any form the redactor knows): a value journaled as
/// given would then hold the secret, and a value redacted in the journal would be another
/// value on resume. One line each, naming the parameter and the secret, never a value.
pub fn params_holding_secrets(
    secrets: &Secrets,
    params: &BTreeMap<String, runbook_core::model::ParamValue>,
) -> Vec<String> {
    // Each text is looked at once per distinct value; the names only word the message.
    let mut problems = Vec::new();
    for (names, redactor) in secrets.per_value() {
        for (name, v) in params {
            let text = match serde_json::to_value(v) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(_) => continue,
            };
            if redactor.redact(&text) != text {
                problems.extend(names.iter().map(|secret| {
                    format!("the value of parameter `{name}` contains the value of secret `{secret}`")
                }));
            }
        }
    }
    problems
}

/// Free texts an operator typed (an operator name, a label, a reason), as `(what, text)`,
/// that hold a secret in any form the redactor knows: one line each, naming the text and
/// the secret, never showing either. The CLI refuses them before a command writes anything
/// to a column of the store beside the journal (`runs.operator`, `locks.holder`, `queue.*`),
/// where redaction would leave a false identity or a false reason (issue 11, promise 3).
pub fn texts_holding_secrets<'t>(
    secrets: &Secrets,
    texts: impl IntoIterator<Item = (&'t str, &'t str)>,
) -> Vec<String> {
    let texts: Vec<(&str, &str)> = texts.into_iter().collect();
    // Each text is looked at once per distinct value; the names only word the message.
    let mut problems = Vec::new();
    for (names, redactor) in secrets.per_value() {
        for (what, text) in &texts {
            if redactor.redact(text) != *text {
                problems.extend(
                    names.iter().map(|secret| format!("{what} contains the value of secret `{secret}`")),
                );
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A runbook of one step and no include (what `bounded` walks).
    fn one_step_runbook() -> Arc<Runbook> {
        let checked = runbook_core::validate::check(
            runbook_core::Source::new(
                "t.toml",
                "[runbook]\nname = \"t\"\n[steps.a]\nrun = \"true\"\n".to_string(),
            ),
            &runbook_core::validate::NoIncludes,
        );
        match checked.runbook {
            Some(rb) => rb,
            None => panic!("{:?}", checked.diagnostics),
        }
    }

    /// Red team adv22 F4: the run's secrets are bounded in all, each distinct value once
    /// (one token under two names costs one redactor's worth), the one past named.
    #[test]
    fn the_run_s_secrets_are_bounded_in_all_each_value_once() {
        let rb = one_step_runbook();
        let big = "k".repeat(MAX_SECRET_BYTES / 2 + 1);
        let same = Secrets::from_map(BTreeMap::from([("A".into(), big.clone()), ("B".into(), big.clone())]));
        assert!(bounded(&rb, same).is_ok());
        let other = big.replace('k', "j");
        let two = Secrets::from_map(BTreeMap::from([("A".into(), big), ("B".into(), other)]));
        let problems = bounded(&rb, two).err().unwrap_or_default();
        assert_eq!(
            problems,
            [
                "secret `B` brings the run's secrets to more than 32 KiB in all; they could not be redacted with bounded memory"
            ]
        );
    }

    /// Red team adv23 F1: one value under many names is one redactor for the checks, built
    /// once for every check of the set; every name is still reported.
    #[test]
    fn the_checks_build_one_redactor_per_value_whatever_the_names() {
        let value = "tok_3f9a8b7c6d-shared";
        let names: BTreeMap<String, String> =
            (0..200).map(|i| (format!("S{i:03}"), value.to_string())).collect();
        let mut all = names.clone();
        all.insert("OTHER".into(), "another-secret-value".into());
        let secrets = Secrets::from_map(all);
        let per_value = secrets.per_value();
        assert_eq!(per_value.len(), 2);
        assert_eq!(per_value.iter().map(|(n, _)| n.len()).sum::<usize>(), 201);
        let first = secrets.per_value().as_ptr();
        let params = BTreeMap::from([(
            "note".to_string(),
            runbook_core::model::ParamValue::String(format!("x {value} y")),
        )]);
        let problems = params_holding_secrets(&secrets, &params);
        assert_eq!(problems.len(), 200, "{problems:?}");
        assert!(problems[0].ends_with("contains the value of secret `S000`"), "{problems:?}");
        let texts = texts_holding_secrets(&secrets, [("the operator's name", "another-secret-value")]);
        assert_eq!(texts, ["the operator's name contains the value of secret `OTHER`"]);
        // Built once: the checks above used the same redactors.
        assert_eq!(secrets.per_value().as_ptr(), first);
        // The run's redactor: the forms of a value once, marked with its first name.
        let r = Redactor::from_values(secrets.all());
        assert_eq!(r.redact(value), "<secret:S000>");
    }

    /// Red team adv24 P5: the run's distinct values are bounded in number too (each costs
    /// a redactor's fixed part however short it is); the redactor fails closed past it.
    #[test]
    fn the_run_s_secret_values_are_bounded_in_number() {
        let rb = one_step_runbook();
        let values = |n: usize| -> BTreeMap<String, String> {
            (0..n).map(|i| (format!("S{i:04}"), format!("v{i:04}x"))).collect()
        };
        assert!(bounded(&rb, Secrets::from_map(values(MAX_SECRET_VALUES))).is_ok());
        let problems =
            bounded(&rb, Secrets::from_map(values(MAX_SECRET_VALUES + 1))).err().unwrap_or_default();
        assert_eq!(
            problems,
            [
                "secret `S0256` is the run's secret value number 257; at most 256 distinct values can be redacted with bounded memory"
            ]
        );
        // The same value under more names than that is one value.
        let same: BTreeMap<String, String> =
            (0..1000).map(|i| (format!("S{i:04}"), "v-shared-x".to_string())).collect();
        assert!(bounded(&rb, Secrets::from_map(same)).is_ok());
        let many = values(MAX_SECRET_VALUES + 5);
        let r = Redactor::from_values(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert!(!r.redact("an ordinary line").contains("ordinary"));
    }

    /// No caller can build a redactor past [`MAX_REDACTED_BYTES`]: past it, every byte is
    /// redacted (fail closed), and building it costs nothing.
    #[test]
    fn a_redactor_past_its_bound_fails_closed() {
        let a = "a".repeat(MAX_REDACTED_BYTES / 2 + 1);
        let b = "b".repeat(MAX_REDACTED_BYTES / 2 + 1);
        let r = Redactor::from_values([("A", a.as_str()), ("B", b.as_str())]);
        assert!(!r.redact("an ordinary line").contains("ordinary"));
        // The same value twice is within it.
        let r = Redactor::from_values([("A", "tok_3f9a8b7c6d"), ("B", "tok_3f9a8b7c6d")]);
        assert_eq!(r.redact("x tok_3f9a8b7c6d y"), "x <secret:A> y");
    }

    /// Red team adv14c F2: `{{ secrets.PW | urlencode }}` (allowed by RB057) keeps `/` and
    /// encodes `~`; the redactor looks for that form too. The expected text is minijinja's
    /// own output (`template::tests::minijinja_urlencode_keeps_slash_and_encodes_tilde`).
    #[test]
    fn the_redactor_knows_the_urlencode_filters_form() {
        let forms = forms("ab/cd ef+gh~ij");
        assert!(forms.iter().any(|f| f.as_slice() == b"ab/cd%20ef%2Bgh%7Eij"), "{forms:?}");
    }

    fn secrets() -> Secrets {
        Secrets::from_map(BTreeMap::from([
            ("DATABASE_URL".to_string(), "postgres://app:p@ss w/rd@db:5432/app".to_string()),
            ("TOKEN".to_string(), "tok_3f9a8b7c6d".to_string()),
        ]))
    }

    /// Base64 written independently of the engine's: a bit buffer, not groups of three.
    fn b64(bytes: &[u8], url: bool, pad: bool) -> String {
        let table: Vec<char> = if url {
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect()
        } else {
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".chars().collect()
        };
        let (mut acc, mut bits, mut out) = (0u32, 0, String::new());
        for b in bytes {
            acc = (acc << 8) | u32::from(*b);
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                out.push(table[((acc >> bits) & 63) as usize]);
            }
        }
        if bits > 0 {
            out.push(table[((acc << (6 - bits)) & 63) as usize]);
        }
        while pad && out.len() % 4 != 0 {
            out.push('=');
        }
        out
    }

    fn wrap(text: &str, width: usize, crlf: bool) -> String {
        let chars: Vec<char> = text.chars().collect();
        let lines: Vec<String> = chars.chunks(width).map(|c| c.iter().collect()).collect();
        lines.join(if crlf { "\r\n" } else { "\n" })
    }

    /// Feed `text` in pieces cut at `cuts`, as a pipe would deliver it.
    fn stream(r: &Redactor, text: &[u8], cuts: &[usize]) -> String {
        String::from_utf8_lossy(&stream_bytes(r, text, cuts)).into_owned()
    }

    fn stream_bytes(r: &Redactor, text: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = r.stream();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts {
            s.push(&text[at..c.max(at)], &mut out);
            at = c.max(at);
            // The first pass holds at most three patterns' worth; the second, the line being
            // written (and a dump's lines).
            assert!(
                s.pending.len() <= 3 * r.patterns.as_ref().map_or(0, |p| p.longest) + 2,
                "held {}",
                s.held()
            );
            assert!(s.spread.held() <= spread::SPREAD_LINE_MAX + spread::SPREAD_BLOCK_MAX + text.len());
        }
        s.push(&text[at..], &mut out);
        s.finish(&mut out);
        out
    }

    fn joined(text: &str) -> String {
        text.chars().filter(|c| *c != '\n' && *c != '\r').collect()
    }

    #[test]
    fn every_form_is_redacted() {
        let r = Redactor::new(&secrets());
        let url = "postgres://app:p@ss w/rd@db:5432/app";
        for shown in [
            url.to_string(),
            percent_encoded(url.as_bytes(), PCT_UNRESERVED, true),
            percent_encoded(url.as_bytes(), PCT_PATH, false),
            serde_json::to_string("tok_3f9a8b7c6d").unwrap_or_default(),
            b64(b"tok_3f9a8b7c6d", false, true),
            b64(b"tok_3f9a8b7c6d", true, false),
            "746f6b5f3366396138623763366".to_string() + "4",
            "746F6B5F3366396138623763366".to_string() + "4",
            format!("Authorization: Bearer tok_3f9a8b7c6d and {url}"),
        ] {
            let out = r.redact(&shown);
            assert!(!out.contains("tok_3f9a8b7c6d") && !out.contains("p@ss"), "{out}");
            assert!(out.contains("<secret:"), "{shown} -> {out}");
        }
    }

    #[test]
    fn base64_wrapped_at_76_columns_is_caught_whole() {
        // Over 57 bytes: `base64` prints it on two lines.
        let value = "postgres://release:Xk29fjQ0pLmZ88s@db.internal.example:5432/app?sslmode=require";
        let r = Redactor::from_values([("DB", value)]);
        for crlf in [false, true] {
            for width in [64, 76] {
                let text = format!("{}\n", wrap(&b64(value.as_bytes(), false, true), width, crlf));
                let out = r.redact(&text);
                assert!(out.starts_with("<secret:DB>"), "{width} {crlf}: {out:?}");
                assert_eq!(out.lines().count(), text.lines().count(), "lines are kept: {out:?}");
            }
        }
    }

    #[test]
    fn a_value_split_over_two_lines_or_two_chunks_is_caught() {
        let r = Redactor::new(&secrets());
        assert_eq!(r.redact("half=tok_3f9a\n8b7c6d"), "half=<secret:TOKEN>\n");
        let text = b"half=tok_3f9a\r\n8b7c6d end";
        for cut in 0..text.len() {
            assert_eq!(stream(&r, text, &[cut]), "half=<secret:TOKEN>\n end", "cut at {cut}");
        }
    }

    #[test]
    fn blank_lines_and_long_lines_are_not_held_back() {
        let r = Redactor::new(&secrets());
        for unit in [&b"\n"[..], b"\r\n", b"\r", b"x"] {
            let mut s = r.stream();
            let mut out = Vec::new();
            let bound = r.patterns.as_ref().map_or(0, |p| p.longest);
            for _ in 0..10_000 {
                s.push(&unit.repeat(100), &mut out);
                // The second pass holds the line being written (at most `SPREAD_LINE_MAX`).
                assert!(
                    s.held() < bound + spread::SPREAD_LINE_MAX + 100,
                    "{unit:?}: {} bytes held",
                    s.held()
                );
            }
            s.finish(&mut out);
            assert_eq!(out, unit.repeat(1_000_000));
        }
    }

    #[test]
    fn a_line_is_given_at_once_when_it_ends() {
        let r = Redactor::new(&secrets());
        let mut s = r.stream();
        let mut out = Vec::new();
        s.push(b"waiting for the replica...\n", &mut out);
        assert_eq!(out, b"waiting for the replica...\n", "shown before the step prints more");
        out.clear();
        // The second pass (spread forms) matches whole lines: the caller hands on whole
        // lines only, so this shows nothing later.
        s.push(b"token tok_3f9", &mut out);
        assert_eq!(out, b"", "an unfinished line waits");
        s.push(b"a8b7c6d\n", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"token <secret:TOKEN>\n");
    }

    #[test]
    fn a_blank_line_is_not_a_wrap() {
        let r = Redactor::new(&secrets());
        assert_eq!(r.redact("tok_3f9a\n\n8b7c6d"), "tok_3f9a\n\n8b7c6d");
    }

    #[test]
    fn a_url_is_caught_as_the_http_client_rewrites_it() {
        let hook = "https://Hooks.EXAMPLE.com/services/T0 1/B2?x=a b";
        let r = Redactor::from_values([("HOOK", hook)]);
        let normalised = reqwest::Url::parse(hook).map(|u| u.to_string()).unwrap_or_default();
        assert_eq!(normalised, "https://hooks.example.com/services/T0%201/B2?x=a%20b");
        let message = format!("error sending request for url ({normalised})");
        assert_eq!(r.redact(&message), "error sending request for url (<secret:HOOK>)");
        let db = "postgres://app:s3cr%2Ft-pw@db/app";
        let r = Redactor::from_values([("DB", db)]);
        assert_eq!(r.redact("password s3cr/t-pw rejected"), "password <secret:DB> rejected");
    }

    #[test]
    fn json_escapes_of_every_kind_are_caught() {
        let value = "pässword/<&>\"x";
        let r = Redactor::from_values([("P", value)]);
        for shown in [
            serde_json::to_string(value).unwrap_or_default(),
            r#""p\u00e4ssword/\u003c\u0026\u003e\"x""#.to_string(),
            r#""p\u00E4ssword\/<&>\"x""#.to_string(),
        ] {
            assert_eq!(r.redact(&shown), "\"<secret:P>\"", "{shown}");
        }
    }

    #[test]
    fn events_are_redacted_value_by_value_numbers_included() {
        let r = Redactor::from_values([("PIN", "731942"), ("TOKEN", "tok_3f9a8b7c6d")]);
        let event = runbook_core::journal::RunEvent::StepSucceeded {
            step: "s".into(),
            attempt: 1,
            outputs: BTreeMap::from([
                (
                    "rows".to_string(),
                    serde_json::json!([{ "n": 731942, "s": "code 731942", "k": 3, "tok_3f9a8b7c6d": true }]),
                ),
                ("big".to_string(), serde_json::json!(17319420)),
            ]),
        };
        let text = serde_json::to_string(&r.redact_event(event)).unwrap_or_default();
        assert!(!text.contains("731942") && !text.contains("tok_3f9a8b7c6d"), "{text}");
        assert!(text.contains(r#""n":"<secret:PIN>""#) && text.contains(r#""k":3"#), "{text}");
        assert!(text.contains(r#""big":"1<secret:PIN>0""#), "{text}");
        assert!(text.contains(r#""<secret:TOKEN>":true"#), "{text}");
    }

    #[test]
    fn a_secret_equal_to_a_word_of_the_engine_still_leaves_other_values_redacted() {
        // `succeeded` is a status the journal writes itself: that field cannot change, the
        // others still are redacted.
        let r = Redactor::from_values([("S", "succeeded"), ("T", "tok_3f9a8b7c6d")]);
        let event = runbook_core::journal::RunEvent::RunFinished {
            status: runbook_core::journal::RunStatus::Succeeded,
            preconditions: vec![],
        };
        let back = r.redact_event(event.clone());
        assert_eq!(back, event);
        let failed = runbook_core::journal::RunEvent::StepFailed {
            step: "s".into(),
            attempt: 1,
            reason: "tok_3f9a8b7c6d succeeded".into(),
            output: None,
        };
        let text = serde_json::to_string(&r.redact_event(failed)).unwrap_or_default();
        assert!(text.contains("<secret:T> <secret:S>"), "{text}");
    }

    #[test]
    fn parameters_that_hold_a_secret_are_named() {
        let s = Secrets::from_map(BTreeMap::from([("DB_PASSWORD".to_string(), "release".to_string())]));
        let params = BTreeMap::from([
            ("branch".to_string(), runbook_core::model::ParamValue::String("release-2024".into())),
            ("other".to_string(), runbook_core::model::ParamValue::String("main".into())),
        ]);
        assert_eq!(
            params_holding_secrets(&s, &params),
            vec!["the value of parameter `branch` contains the value of secret `DB_PASSWORD`".to_string()]
        );
    }

    #[test]
    fn a_multi_line_value_is_caught_whole_and_line_by_line() {
        let pem = "-----BEGIN KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8w\nc2VudGluZWwga2V5IGxpbmUgdGhyZWUgZm9y\n-----END KEY-----";
        let r = Redactor::from_values([("PEM", pem)]);
        assert_eq!(r.redact(&format!("{pem}\n")), "<secret:PEM>\n\n\n\n");
        assert_eq!(r.redact("  MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8w\n"), "  <secret:PEM>\n");
    }

    #[test]
    fn debug_shows_names_only() {
        assert_eq!(format!("{:?}", secrets()), r#"["DATABASE_URL", "TOKEN"]"#);
        assert!(!format!("{:?}", Redactor::new(&secrets())).contains("tok_"));
    }

    /// A secret: upper-case letters, digits, punctuation, spaces and non-ASCII letters;
    /// never the lower-case letters that the ordinary text around it is made of.
    fn secret_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                8 => proptest::char::range('A', 'Z'),
                4 => proptest::char::range('0', '9'),
                2 => proptest::sample::select(vec!['/', '+', '=', '@', ':', '%', '&', '"', '\\', ' ', '?', '#', '_', '-', '.']),
                1 => proptest::sample::select(vec!['é', 'ü', 'ß', '日', '本', '🙂']),
            ],
            8..90,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    /// A secret with the characters shells, SQL and HTML escape.
    fn quoted_secret_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                6 => proptest::char::range('A', 'Z'),
                3 => proptest::char::range('0', '9'),
                4 => proptest::sample::select(vec!['\'', '~', '*', '@', '&', '<', '>', '!', '"', '$', ' ', '\\', '=']),
                1 => proptest::sample::select(vec!['é', '日']),
            ],
            8..40,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    /// What a terminal shows of `bytes`: escape sequences, NULs and lone carriage returns
    /// show nothing, a backspace erases the character before it.
    fn terminal_view(bytes: &[u8]) -> String {
        let mut out: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                0x1b if bytes.get(i + 1) == Some(&b'[') => {
                    i += 2;
                    while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                        i += 1;
                    }
                }
                0x08 => {
                    out.pop();
                }
                0 | b'\r' => {}
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z ,.;!?\\n-]{0,200}").unwrap_or_else(|_| unreachable!())
    }

    /// The ways a program prints a value: (the text it prints, the part of it that depends
    /// on the value alone and must not survive).
    fn encodings(
        secret: &str,
        prefix: &str,
        suffix: &str,
        which: usize,
        wrap_at: usize,
        crlf: bool,
    ) -> (String, String) {
        let bytes = secret.as_bytes();
        match which % 10 {
            0 => (format!("{prefix}{secret}{suffix}"), secret.to_string()),
            1 => {
                // Split over two lines at some point.
                let cut = (wrap_at % secret.len()).max(1);
                let cut = (cut..=secret.len()).find(|c| secret.is_char_boundary(*c)).unwrap_or(secret.len());
                let nl = if crlf { "\r\n" } else { "\n" };
                (format!("{prefix}{}{nl}{}{suffix}", &secret[..cut], &secret[cut..]), secret.to_string())
            }
            2 | 3 => {
                // base64 (std or url) of prefix+secret+suffix, wrapped like `base64` does.
                let url = which % 10 == 3;
                let data = format!("{prefix}{secret}{suffix}");
                let enc = b64(data.as_bytes(), url, !url);
                let all = b64(format!("{prefix}{secret}").as_bytes(), url, false);
                let first = (prefix.len() * 8).div_ceil(6);
                let last = ((prefix.len() + bytes.len()) * 8) / 6;
                let pure = all.get(first..last.min(all.len())).unwrap_or_default().to_string();
                let width = [64, 76, 0][wrap_at % 3];
                let shown = if width == 0 { enc } else { wrap(&enc, width, crlf) };
                (format!("{shown}\n"), pure)
            }
            4 | 5 => {
                let upper = which % 10 == 5;
                let hex: String = bytes
                    .iter()
                    .map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") })
                    .collect();
                let shown = if wrap_at.is_multiple_of(2) { wrap(&hex, 60, crlf) } else { hex.clone() };
                (format!("{prefix}{shown}{suffix}"), hex)
            }
            6 | 7 => {
                // Percent-encoding, `/` kept or not, either case.
                let keep_slash = which % 10 == 6;
                let pct: String = bytes
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
                            (b as char).to_string()
                        } else if crlf {
                            format!("%{b:02x}")
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                (format!("{prefix}{pct}{suffix}"), pct)
            }
            8 => {
                let json = serde_json::to_string(secret).unwrap_or_default();
                let inner = json[1..json.len() - 1].to_string();
                (format!("{prefix}{json}{suffix}"), inner)
            }
            _ => {
                // JSON with every non-ASCII character as `\u` (Python's json.dumps).
                let mut inner = String::new();
                for c in secret.chars() {
                    match c {
                        '"' => inner.push_str("\\\""),
                        '\\' => inner.push_str("\\\\"),
                        c if c.is_ascii() => inner.push(c),
                        c => {
                            let mut units = [0u16; 2];
                            for u in c.encode_utf16(&mut units) {
                                inner.push_str(&format!("\\u{:04x}", u));
                            }
                        }
                    }
                }
                (format!("{prefix}{{\"t\": \"{inner}\"}}{suffix}"), inner)
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

        /// No form of a secret survives, whatever the encoding, the wrapping and the chunks
        /// the stream arrives in.
        #[test]
        fn no_secret_form_survives_any_encoding_or_split(
            secret in secret_strategy(),
            other in secret_strategy(),
            prefix in "[a-z ]{0,5}",
            suffix in "[a-z .]{0,5}",
            which in 0usize..10,
            wrap_at in 0usize..1000,
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(0usize..10_000, 0..8),
        ) {
            let r = Redactor::from_values([("S", secret.as_str()), ("O", other.as_str())]);
            let (shown, form) = encodings(&secret, &prefix, &suffix, which, wrap_at, crlf);
            let out = stream(&r, shown.as_bytes(), &cuts);
            let flat = joined(&out);
            prop_assert!(out.contains("<secret:S>"), "{shown:?} -> {out:?}");
            // No piece of the form longer than what a boundary may leave (3 characters of
            // base64 or an escape's worth of the neighbours) remains.
            let chars: Vec<char> = form.chars().collect();
            let width = 8.min(chars.len());
            for w in chars.windows(width) {
                let w: String = w.iter().collect();
                prop_assert!(!flat.contains(&w), "{w:?} of {form:?} survives: {shown:?} -> {out:?}");
            }
        }

        /// A URL secret is caught as an HTTP client writes it back in its errors (host in
        /// lower case, path and query re-encoded), cut anywhere.
        #[test]
        fn a_url_secret_is_caught_as_http_clients_rewrite_it(
            path in secret_strategy(),
            cuts in proptest::collection::vec(0usize..300, 0..6),
        ) {
            let value = format!("https://Hooks.Example.COM/t/{path}");
            let normalised = reqwest::Url::parse(&value).map(|u| u.to_string());
            prop_assume!(normalised.is_ok());
            let normalised = normalised.unwrap_or_default();
            let r = Redactor::from_values([("HOOK", value.as_str())]);
            let text = format!("error sending request for url ({normalised}): connection refused\n");
            let out = stream(&r, text.as_bytes(), &cuts);
            prop_assert!(out.contains("(<secret:HOOK>"), "{text:?} -> {out:?}");
            let tail: Vec<char> = normalised["https://hooks.example.com/t/".len()..].chars().collect();
            for w in tail.windows(8.min(tail.len())) {
                let w: String = w.iter().collect();
                prop_assert!(!out.contains(&w), "{w:?} survives: {out:?}");
            }
        }

        /// The red team's cases as a class (issue 11, F1): control bytes a terminal does not
        /// show, put anywhere between the characters of a secret (colours, overstrikes, UTF-16
        /// NULs, a lone carriage return), and the escapes of shells, SQL and HTML, cut
        /// anywhere: no 8-character piece of the secret (as a terminal shows the text) or
        /// of its escaped form survives.
        #[test]
        fn control_bytes_and_escapes_do_not_hide_a_secret(
            secret in quoted_secret_strategy(),
            prefix in "[a-z ]{0,5}",
            which in 0usize..8,
            at in proptest::collection::vec(0usize..100, 1..4),
            cuts in proptest::collection::vec(0usize..1000, 0..6),
        ) {
            prop_assume!(which != 2 || secret.is_ascii());
            let r = Redactor::from_values([("S", secret.as_str())]);
            let chars: Vec<char> = secret.chars().collect();
            let between = |insert: &str| -> String {
                let mut out = String::new();
                for (i, c) in chars.iter().enumerate() {
                    if i > 0 && at.iter().any(|a| a % chars.len() == i) {
                        out.push_str(insert);
                    }
                    out.push(*c);
                }
                out
            };
            let each = |f: &dyn Fn(char) -> Option<String>| -> String {
                chars.iter().map(|c| f(*c).unwrap_or_else(|| c.to_string())).collect()
            };
            let (shown, form): (Vec<u8>, String) = match which {
                0 => (between("\u{1b}[01;31m\u{1b}[K").into_bytes(), secret.clone()),
                1 => (between("_\u{8}").into_bytes(), secret.clone()),
                2 => (secret.bytes().flat_map(|b| [b, 0]).collect(), secret.clone()),
                3 => (between("\r").into_bytes(), secret.clone()),
                4 => { let f = each(&|c| (c == '\'').then(|| "'\\''".into())); (f.clone().into_bytes(), f) }
                5 => { let f = each(&|c| "'\"\\*&<>!$ ;|()`?[]{}^".contains(c).then(|| format!("\\{c}"))); (f.clone().into_bytes(), f) }
                6 => { let f = each(&|c| (!c.is_alphanumeric()).then(|| format!("&#{};", c as u32))); (f.clone().into_bytes(), f) }
                _ => { let f = each(&|c| (c == '\'').then(|| "''".into())); (f.clone().into_bytes(), f) }
            };
            let mut text = prefix.clone().into_bytes();
            text.extend_from_slice(&shown);
            text.extend_from_slice(b" end\n");
            let out = stream_bytes(&r, &text, &cuts);
            let view = terminal_view(&out);
            prop_assert!(view.contains("<secret:S>"), "{text:?} -> {view:?}");
            let form_chars: Vec<char> = form.chars().collect();
            for w in form_chars.windows(8.min(form_chars.len())) {
                let w: String = w.iter().collect();
                prop_assert!(!view.contains(&w), "{w:?} survives: {text:?} -> {view:?}");
            }
        }

        /// Ordinary text (no secret in it) comes out byte for byte, however it is cut.
        #[test]
        fn ordinary_text_is_unchanged(
            secrets in proptest::collection::vec(secret_strategy(), 0..4),
            text in text_strategy(),
            cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            let named: Vec<(String, String)> =
                secrets.iter().enumerate().map(|(i, s)| (format!("S{i}"), s.clone())).collect();
            let r = Redactor::from_values(named.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            prop_assert_eq!(stream(&r, text.as_bytes(), &cuts), text.clone());
            prop_assert_eq!(r.redact(&text), text);
        }

        /// Any bytes at all (invalid UTF-8 included) pass through a redactor without secrets
        /// unchanged, and the stream never holds more than its bound.
        #[test]
        fn any_bytes_pass_a_stream(bytes in proptest::collection::vec(any::<u8>(), 0..2000), cuts in proptest::collection::vec(0usize..3000, 0..8)) {
            let r = Redactor::from_values([("S", "ZZZZ-never-there-ZZZZ")]);
            prop_assert_eq!(stream_bytes(&r, &bytes, &cuts), bytes);
        }
    }
}
