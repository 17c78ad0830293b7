//! A sampler of every process's argv (`/proc/*/cmdline`), for promise 3: the database
//! password never appears in a process list, in any encoding.
//!
//! The e2e harness (`E2e`) runs one for its whole life, so every `runbook` invocation it makes
//! (and every engine a test spawns itself) is watched from start to end. It reads the command
//! lines of all processes in a loop, as often as it can, and records a leak when one holds the
//! password plainly, percent-encoded or in base64, and the process is the `runbook` binary or
//! one of its descendants (the harness's own helpers, and other tests' processes, are not the
//! product's). Environments (`/proc/*/environ`) are not a leak: only what `ps` shows is.
//! Limit: a process that outlives its parent is re-parented and no longer traced to the engine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    passes: Arc<AtomicU64>,
    leaks: Arc<Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

/// The forms of `secret` a command line could carry it in.
pub(crate) fn encodings(secret: &str) -> Vec<(String, &'static str)> {
    let mut out = vec![(secret.to_string(), "plain")];
    let pct = percent_encode(secret);
    if pct != secret {
        out.push((pct.clone(), "percent-encoded"));
        out.push((pct.to_lowercase(), "percent-encoded"));
    }
    // Base64 at each of the three alignments the secret can start at inside a longer text:
    // only the characters that depend on the secret's bytes alone.
    for shift in 0..3usize {
        let mut bytes = vec![0u8; shift];
        bytes.extend(secret.as_bytes());
        for url_safe in [false, true] {
            let enc = base64(&bytes, url_safe);
            let first = (shift * 8).div_ceil(6);
            let whole = (bytes.len() * 8) / 6;
            if whole > first + 4 {
                out.push((enc[first..whole].to_string(), "base64"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every byte but the unreserved ones of RFC 3986 as `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(bytes: &[u8], url_safe: bool) -> String {
    let table: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn cmdline(pid: &str) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/cmdline")).ok()
}

fn parent(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1).map(str::to_string)
}

/// `pid` is the engine, or a descendant of one.
fn under_engine(pid: &str, engine: &[u8]) -> bool {
    let mut pid = pid.to_string();
    for _ in 0..64 {
        if let Some(argv) = cmdline(&pid)
            && argv.split(|b| *b == 0).next() == Some(engine)
        {
            return true;
        }
        match parent(&pid) {
            Some(p) if p != "0" && p != pid => pid = p,
            _ => return false,
        }
    }
    false
}

impl Sampler {
    /// Start watching for `secret` in the argv of the engine's processes.
    pub(crate) fn start(secret: &str) -> Sampler {
        Sampler::start_with(secret, &[])
    }

    /// [`Sampler::start`], also watching for `more` forms of it (such as the exact text the
    /// URL carries, whatever encoding its author chose).
    pub(crate) fn start_with(secret: &str, more: &[String]) -> Sampler {
        let mut needles = encodings(secret);
        needles.extend(more.iter().filter(|m| !m.is_empty()).map(|m| (m.clone(), "as in the URL")));
        let engine = PathBuf::from(env!("CARGO_BIN_EXE_runbook")).into_os_string().into_encoded_bytes();
        let stop = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(AtomicU64::new(0));
        let leaks = Arc::new(Mutex::new(Vec::new()));
        let (s, p, l) = (Arc::clone(&stop), Arc::clone(&passes), Arc::clone(&leaks));
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(dir) = std::fs::read_dir("/proc") else { return };
                for entry in dir.flatten() {
                    let name = entry.file_name();
                    let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
                        continue;
                    };
                    let Some(argv) = cmdline(pid) else { continue };
                    for (needle, form) in &needles {
                        if argv.windows(needle.len()).any(|w| w == needle.as_bytes())
                            && under_engine(pid, &engine)
                        {
                            // Described without the secret itself: the program and the form.
                            let program =
                                String::from_utf8_lossy(argv.split(|b| *b == 0).next().unwrap_or_default())
                                    .into_owned();
                            let leak = format!("pid {pid} `{program}` had the password ({form}) in its argv");
                            if let Ok(mut l) = l.lock()
                                && !l.contains(&leak)
                            {
                                l.push(leak);
                            }
                        }
                    }
                }
                p.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
        Sampler { stop, passes, leaks, handle: Some(handle) }
    }

    /// Stop, and the leaks seen (with how many passes over `/proc` were made); taken, so a
    /// second call returns none.
    pub(crate) fn finish(&mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let leaks = self.leaks.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
        (leaks, self.passes.load(Ordering::Relaxed))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.finish();
    }
}

#[test]
fn encodings_hold_every_form_of_the_secret() {
    let forms = encodings("e2e-S3ntinel/p@ss:w%rd");
    let has = |s: &str| forms.iter().any(|(f, _)| f == s);
    assert!(has("e2e-S3ntinel/p@ss:w%rd"));
    assert!(has("e2e-S3ntinel%2Fp%40ss%3Aw%25rd"));
    // Whatever precedes it, the base64 of a text holding the secret contains one of the forms.
    for prefix in ["", "x", "xy", "postgres://u:"] {
        for suffix in ["", "@h/db", "z"] {
            let text = format!("{prefix}e2e-S3ntinel/p@ss:w%rd{suffix}");
            for url_safe in [false, true] {
                let enc = base64(text.as_bytes(), url_safe);
                assert!(
                    forms.iter().any(|(f, k)| *k == "base64" && enc.contains(f.as_str())),
                    "{text} -> {enc}"
                );
            }
        }
    }
    assert_eq!(base64(b"Man", false), "TWFu");
    assert_eq!(base64(b"Ma", false), "TWE");
}
