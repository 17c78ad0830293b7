//! Secrets at run time: reading their values from their sources, and keeping them out of
//! everything the engine shows or writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use runbook_core::model::{Runbook, SecretSource};

/// The shortest secret value the engine accepts (and the shortest form it redacts).
pub const MIN_SECRET_LEN: usize = 4;

/// Secret values by name. Never serialized, never journaled; resolved anew by every run.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
    /// The secrets of each included runbook, indexed like `Runbook::includes`.
    includes: Vec<Secrets>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// Values from a map (tests, resume).
    pub fn from_map(values: BTreeMap<String, String>) -> Self {
        Secrets { values, includes: Vec::new() }
    }

    /// The secrets of included runbook `index`.
    pub fn include(&self, index: usize) -> Option<&Secrets> {
        self.includes.get(index)
    }

    /// Every value, this runbook's and its includes' (for redaction).
    fn all(&self) -> Vec<(&str, &str)> {
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

/// Read every secret of a runbook (and of the runbooks it includes) from its source.
/// Problems are returned together, one line each, naming the secret but never a value.
pub fn resolve(runbook: &Runbook, base_dir: &Path) -> Result<Secrets, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    let mut includes = Vec::new();
    for child in &runbook.includes {
        let dir = Path::new(&child.source.path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        match resolve(child, &dir) {
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
        let value = match &secret.source {
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("secret `{}`: environment variable `{var}` is not set", secret.name)),
            // Bounded, regular files only, never blocking on a FIFO (issue 11, promise 5).
            SecretSource::File(file) => crate::action::read_pinned(&base_dir.join(file), None)
                .and_then(|b| String::from_utf8(b).map_err(|_| "it is not UTF-8 text".to_string()))
                .map(|text| match secret.first_line {
                    true => text.lines().next().unwrap_or_default().trim_end_matches('\r').to_string(),
                    false => text.trim_end_matches(['\n', '\r']).to_string(),
                })
                .map_err(|e| format!("secret `{}`: cannot read `{file}`: {e}", secret.name)),
            SecretSource::Command(argv) => match argv.split_first() {
                None => Err(format!("secret `{}`: empty command", secret.name)),
                Some((program, args)) => {
                    match Command::new(program).args(args).current_dir(base_dir).output() {
                        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
                            .trim_end_matches(['\n', '\r'])
                            .to_string()),
                        Ok(out) => {
                            Err(format!("secret `{}`: `{program}` exited with {}", secret.name, out.status))
                        }
                        Err(e) => Err(format!("secret `{}`: cannot run `{program}`: {e}", secret.name)),
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
            Ok(v) => {
                values.insert(secret.name.clone(), v);
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() { Ok(Secrets { values, includes }) } else { Err(problems) }
}

/// Replaces secret values, in the forms a program is likely to print them, by `<secret:NAME>`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (needle, replacement), longest needles first.
    needles: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor for these secrets: each value raw, JSON-escaped, percent-encoded and in
    /// base64, and each line of a multi-line value.
    pub fn new(secrets: &Secrets) -> Self {
        let mut needles = Vec::new();
        for (name, value) in secrets.all() {
            let mark = format!("<secret:{name}>");
            let mut forms = vec![
                value.to_string(),
                json_escaped(value),
                percent_encoded(value),
                // application/x-www-form-urlencoded (query strings, form bodies): space is `+`.
                percent_encoded(value).replace("%20", "+"),
                base64(value),
            ];
            forms.extend(base64_cores(value));
            forms.extend(value.lines().map(str::trim).filter(|l| l.len() >= 8).map(str::to_string));
            for form in forms {
                // Very short values would redact ordinary text; they are not secrets worth the name.
                if form.len() >= MIN_SECRET_LEN {
                    needles.push((form, mark.clone()));
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
        needles.dedup_by(|a, b| a.0 == b.0);
        Redactor { needles }
    }

    /// An event with every string in it redacted (through its JSON form, whose escaped
    /// secret forms are needles too). An event that would not come back unchanged in shape
    /// is returned as it was, which cannot happen for events the engine builds.
    pub fn redact_event(&self, event: runbook_core::journal::RunEvent) -> runbook_core::journal::RunEvent {
        if self.needles.is_empty() {
            return event;
        }
        let Ok(text) = serde_json::to_string(&event) else { return event };
        let redacted = self.redact(&text);
        if redacted == text {
            return event;
        }
        serde_json::from_str(&redacted).unwrap_or(event)
    }

    /// `text` with every known secret form replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (needle, mark) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), mark);
            }
        }
        out
    }
}

/// The value as it stands inside a JSON string (without the surrounding quotes).
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(&quoted).to_string()
}

fn percent_encoded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The part of a value's base64 that is the same wherever the value stands in the encoded
/// text (after 0, 1 or 2 other bytes, followed by anything, a newline from `echo` included):
/// the characters that encode only bytes of the value.
fn base64_cores(s: &str) -> Vec<String> {
    let bytes = s.as_bytes();
    let mut cores = Vec::new();
    for offset in 0..3usize {
        // Skip the value bytes that share a group with what precedes them.
        let skip = (3 - offset) % 3;
        if bytes.len() <= skip {
            continue;
        }
        let whole = (bytes.len() - skip) / 3 * 3;
        if whole >= 6 {
            let core = &bytes[skip..skip + whole];
            cores.push(base64(&String::from_utf8_lossy(core)));
        }
    }
    cores
}

fn base64(s: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::from_map(BTreeMap::from([
            ("DATABASE_URL".to_string(), "postgres://app:p@ss w/rd@db:5432/app".to_string()),
            ("TOKEN".to_string(), "tok_3f9a8b7c6d".to_string()),
        ]))
    }

    #[test]
    fn every_form_is_redacted() {
        let r = Redactor::new(&secrets());
        let url = "postgres://app:p@ss w/rd@db:5432/app";
        for shown in [
            url.to_string(),
            percent_encoded(url),
            json_escaped("tok_3f9a8b7c6d"),
            base64("tok_3f9a8b7c6d"),
            format!("Authorization: Bearer tok_3f9a8b7c6d and {url}"),
        ] {
            let out = r.redact(&shown);
            assert!(!out.contains("tok_3f9a8b7c6d") && !out.contains("p@ss"), "{out}");
            assert!(out.contains("<secret:"), "{out}");
        }
    }

    #[test]
    fn events_are_redacted_in_every_string() {
        let r = Redactor::new(&secrets());
        let event = runbook_core::journal::RunEvent::StepFailed {
            step: "s".into(),
            attempt: 1,
            reason: "could not start: bad value \"tok_3f9a8b7c6d\" in postgres://app:p@ss w/rd@db:5432/app"
                .into(),
        };
        let text = serde_json::to_string(&r.redact_event(event)).unwrap_or_default();
        assert!(!text.contains("tok_3f9a8b7c6d") && !text.contains("p@ss"), "{text}");
        assert!(text.contains("<secret:TOKEN>") && text.contains("<secret:DATABASE_URL>"), "{text}");
    }

    #[test]
    fn a_value_ending_in_a_quote_is_redacted_whole_in_json() {
        let secrets = Secrets::from_map(BTreeMap::from([("T".to_string(), "abc\"def\"".to_string())]));
        let r = Redactor::new(&secrets);
        let json = serde_json::json!({ "token": "abc\"def\"" }).to_string();
        assert_eq!(r.redact(&json), r#"{"token":"<secret:T>"}"#);
    }

    #[test]
    fn base64_is_caught_at_any_alignment() {
        let r = Redactor::new(&secrets());
        for prefix in ["", "x", "xy", "token: "] {
            for suffix in ["", "\n", " trailing"] {
                let encoded = base64(&format!("{prefix}tok_3f9a8b7c6d{suffix}"));
                let out = r.redact(&encoded);
                assert!(out.contains("<secret:TOKEN>"), "{prefix:?}+{suffix:?}: {encoded} -> {out}");
            }
        }
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64("hola"), "aG9sYQ==");
        assert_eq!(base64("abc"), "YWJj");
        assert_eq!(base64("ab"), "YWI=");
    }

    #[test]
    fn debug_shows_names_only() {
        assert_eq!(format!("{:?}", secrets()), r#"["DATABASE_URL", "TOKEN"]"#);
    }
}
