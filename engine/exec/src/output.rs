//! Where a step's output goes once redacted: its log file in the run folder, and the
//! terminal (through [`Report::Output`]).
//!
//! Memory stays bounded whatever a step prints: lines reach the sink over a bounded channel
//! (see [`crate::process`]), the log is written through a small buffer, and the terminal
//! gets a line only while less than [`TERMINAL_BUDGET`] bytes wait to be printed; beyond
//! that, lines are left out of the terminal (never out of the log) and a notice says so. A
//! log that cannot be written to the end (a full disk) ends with [`CUT_MARKER`], and a
//! notice says so too.
//!
//! The log file is a plain stream of redacted lines, `out TEXT` or `err TEXT`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

use tokio::sync::mpsc;

use runbook_core::journal::{OUTPUT_TAIL_BYTES, OUTPUT_TAIL_LINES};

use crate::process::{Line, Stream};
use crate::report::Report;

/// The last line of a log that could not be written to the end.
pub const CUT_MARKER: &str = "[runbook: the log is cut here]";

/// Bytes of output that may wait for the terminal at once.
pub const TERMINAL_BUDGET: usize = 8 << 20;

/// Bytes of output sent to the terminal and not yet printed, in this process.
static TERMINAL_BACKLOG: AtomicUsize = AtomicUsize::new(0);

/// The logs this process wrote, by path: the SHA-256 and length of the bytes written, or
/// `None` for a log that was cut (its end is not what was written). Only these may be kept
/// in the store, and only while their files still hold exactly those bytes: a step can write
/// in the run folder, and another host's engine wrote its own copies.
static WRITTEN: Mutex<BTreeMap<PathBuf, Option<(Sha256, u64)>>> = Mutex::new(BTreeMap::new());

/// What this process wrote to the log at `path`: `Some(Some((sha256, bytes)))`,
/// `Some(None)` for a cut log, `None` for a log it never wrote.
pub fn written_log(path: &Path) -> Option<Option<(String, u64)>> {
    let entry = WRITTEN.lock().ok()?.get(path).cloned()?;
    Some(entry.map(|(digest, bytes)| (digest.finalize().iter().map(|b| format!("{b:02x}")).collect(), bytes)))
}

/// A log's first `cap` bytes (and one more), its length and its SHA-256, read in one pass
/// with bounded memory.
pub fn read_log(path: &Path, cap: usize) -> Option<(Vec<u8>, u64, String)> {
    use std::io::Read as _;
    let mut file = runbook_store::open_outside_store(path, std::fs::OpenOptions::new().read(true)).ok()?;
    let (mut head, mut total, mut digest) = (Vec::new(), 0u64, Sha256::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        total += n as u64;
        let room = (cap + 1).saturating_sub(head.len()).min(n);
        head.extend_from_slice(&buf[..room]);
    }
    Some((head, total, digest.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// How long an attempt may show no line before a [`Report::Heartbeat`] says it is still
/// running, in milliseconds; 0: never. Set once by the CLI ([`set_heartbeat`]): every 30 s
/// without a terminal, never on one (its live view shows each running step's time).
static HEARTBEAT_MS: AtomicU64 = AtomicU64::new(0);

/// Say a quiet attempt is still running every `every` (`None`: never).
pub fn set_heartbeat(every: Option<std::time::Duration>) {
    let ms = every.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
    HEARTBEAT_MS.store(ms, Ordering::Release);
}

fn heartbeat() -> Option<std::time::Duration> {
    match HEARTBEAT_MS.load(Ordering::Acquire) {
        0 => None,
        ms => Some(std::time::Duration::from_millis(ms)),
    }
}

/// The printer calls this once it has shown (or dropped) a report, so that more output
/// may follow.
pub fn shown(report: &Report) {
    if let Report::Output { text, .. } = report {
        let _ = TERMINAL_BACKLOG
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(text.len())));
    }
}

/// The last lines of an attempt's output, as redacted lines reached the sink: what its
/// failure record keeps as the error text (at most [`OUTPUT_TAIL_LINES`] lines and
/// [`OUTPUT_TAIL_BYTES`] bytes, stderr lines marked `! `).
#[derive(Debug, Default, Clone)]
pub struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl Tail {
    /// Keep one redacted line (a long one is cut to its end).
    pub fn push(&mut self, line: &Line) {
        let mark = match line.stream {
            Stream::Stdout => "",
            Stream::Stderr => "! ",
        };
        let text = line.text.trim_end();
        let room = OUTPUT_TAIL_BYTES.saturating_sub(mark.len());
        let mut start = text.len().saturating_sub(room);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let kept = format!("{mark}{}", &text[start..]);
        self.bytes += kept.len() + 1;
        self.lines.push_back(kept);
        while self.lines.len() > OUTPUT_TAIL_LINES || (self.bytes > OUTPUT_TAIL_BYTES && self.lines.len() > 1)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
        }
    }

    /// The lines kept, joined; `None` when the attempt printed nothing.
    pub fn text(&self) -> Option<String> {
        let lines: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let text = lines.join("\n");
        (!text.trim().is_empty()).then_some(text)
    }

    /// Take every line of `lines` until the sender is gone, keeping the tail: the output of
    /// an attempt nobody shows (a precondition's).
    pub async fn collect(mut lines: mpsc::Receiver<Line>) -> Tail {
        let mut tail = Tail::default();
        while let Some(line) = lines.recv().await {
            tail.push(&line);
        }
        tail
    }
}

/// The output of one attempt of one step (or compensation, or `finally` step).
#[derive(Debug)]
pub struct Sink {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    /// Why the log was cut, once it was.
    cut: Option<String>,
    /// The step as the terminal shows it.
    step: String,
    /// `step (attempt N)`, for notices.
    label: String,
    report: mpsc::UnboundedSender<Report>,
    /// Lines left out of the terminal.
    elided: u64,
    /// The digest and length of what was written to the log.
    digest: Sha256,
    bytes: u64,
    /// The last lines, for the failure record.
    tail: Tail,
    /// The live tail published to the store, when the engine has one to publish to.
    live: Option<Live>,
}

/// How often at most an attempt's live tail is written to the store.
pub const LIVE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// How long one live write may take before it is given up (the next one carries its bytes).
const LIVE_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An attempt's live output (issue 16): the tail of the redacted lines the log gets, in
/// the log's own format, published to the store's `live_output` table at most every
/// [`LIVE_EVERY`], only when something new came, by a task of its own: the step's path never
/// waits for the store, a write still running makes the next one wait for a later tick, and
/// a failed write is dropped (never retried: the next tick publishes the newer tail).
#[derive(Debug)]
pub struct Live {
    store: runbook_store::Store,
    run_id: String,
    step: String,
    attempt: i64,
    /// The last lines (`out TEXT\n`), at most twice [`runbook_store::LIVE_TAIL_BYTES`] between
    /// publications (cut to the bound when published).
    tail: String,
    /// Bytes of output so far, and when the last publication was.
    seen: u64,
    published: u64,
    last: Option<tokio::time::Instant>,
    /// A write in flight.
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Live {
    /// The live output of attempt `attempt` of `step` (its journal path) of run `run_id`.
    pub fn new(store: runbook_store::Store, run_id: &str, step: &str, attempt: u32) -> Live {
        Live {
            store,
            run_id: run_id.to_string(),
            step: step.to_string(),
            attempt: i64::from(attempt),
            tail: String::new(),
            seen: 0,
            published: 0,
            last: None,
            busy: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// One redacted line, as the log gets it.
    fn push(&mut self, line: &Line) {
        let tag = match line.stream {
            Stream::Stdout => "out ",
            Stream::Stderr => "err ",
        };
        self.tail.push_str(tag);
        self.tail.push_str(&line.text);
        self.tail.push('\n');
        self.seen += (tag.len() + line.text.len() + 1) as u64;
        if self.tail.len() > 2 * runbook_store::LIVE_TAIL_BYTES {
            self.trim();
        }
    }

    /// Keep the last whole lines within the bound (one longer line: its end).
    fn trim(&mut self) {
        trim_tail(&mut self.tail, runbook_store::LIVE_TAIL_BYTES);
    }

    /// When the next publication is due: `None` when nothing new waits.
    fn due(&self) -> Option<tokio::time::Instant> {
        if self.seen == self.published {
            return None;
        }
        Some(self.last.map_or_else(tokio::time::Instant::now, |l| l + LIVE_EVERY))
    }

    /// Publish the tail if something new came and the last publication is old enough;
    /// `force` (the attempt's end) ignores the interval and follows a write still running.
    fn publish(&mut self, force: bool) {
        let now = tokio::time::Instant::now();
        if self.seen == self.published || (!force && self.last.is_some_and(|l| now < l + LIVE_EVERY)) {
            return;
        }
        let waits = self.busy.swap(true, std::sync::atomic::Ordering::AcqRel);
        if waits && !force {
            // The last write still runs: this one waits for a later tick.
            self.last = Some(now);
            return;
        }
        self.trim();
        self.last = Some(now);
        self.published = self.seen;
        let row = runbook_store::LiveOutput {
            step: self.step.clone(),
            attempt: self.attempt,
            bytes_seen: i64::try_from(self.seen).unwrap_or(i64::MAX),
            tail: self.tail.clone(),
            updated_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        };
        let (store, run_id, busy) = (self.store.clone(), self.run_id.clone(), self.busy.clone());
        tokio::spawn(async move {
            let write = async {
                // The attempt's end while a write still runs: this one follows it (off the
                // step's path), both within the bound.
                while waits && busy.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let _ = store.publish_live(&run_id, &row).await;
            };
            let _ = tokio::time::timeout(LIVE_WRITE_WAIT, write).await;
            busy.store(false, std::sync::atomic::Ordering::Release);
        });
    }
}

impl Sink {
    /// A sink writing to the log at `path` (created at the first line) and showing lines
    /// under `step`.
    pub fn new(path: PathBuf, step: String, attempt: u32, report: mpsc::UnboundedSender<Report>) -> Sink {
        let label = format!("`{step}` (attempt {attempt})");
        Sink {
            path,
            file: None,
            cut: None,
            step,
            label,
            report,
            elided: 0,
            digest: Sha256::new(),
            bytes: 0,
            tail: Tail::default(),
            live: None,
        }
    }

    /// Publish the attempt's live tail to the store as well (see [`Live`]).
    pub fn with_live(mut self, live: Live) -> Sink {
        self.live = Some(live);
        self
    }

    /// One redacted line.
    pub fn line(&mut self, line: Line) {
        self.write_log(&line);
        self.tail.push(&line);
        if let Some(live) = self.live.as_mut() {
            live.push(&line);
        }
        let len = line.text.len();
        if TERMINAL_BACKLOG.load(Ordering::Acquire) > TERMINAL_BUDGET {
            self.elided += 1;
            return;
        }
        TERMINAL_BACKLOG.fetch_add(len, Ordering::AcqRel);
        let _ = self.report.send(Report::Output {
            step: self.step.clone(),
            stream: line.stream,
            text: line.text,
        });
    }

    fn write_log(&mut self, line: &Line) {
        if self.cut.is_some() {
            return;
        }
        if self.file.is_none() {
            match crate::files::private_file(&self.path, false) {
                Ok(f) => self.file = Some(std::io::BufWriter::with_capacity(64 * 1024, f)),
                Err(e) => return self.cut_log(e),
            }
        }
        let tag: &[u8] = match line.stream {
            Stream::Stdout => b"out ",
            Stream::Stderr => b"err ",
        };
        let Some(file) = self.file.as_mut() else { return };
        let written = file
            .write_all(tag)
            .and_then(|()| file.write_all(line.text.as_bytes()))
            .and_then(|()| file.write_all(b"\n"));
        if let Err(e) = written {
            return self.cut_log(e);
        }
        for part in [tag, line.text.as_bytes(), b"\n"] {
            self.digest.update(part);
            self.bytes += part.len() as u64;
        }
    }

    /// Note what the log holds now, for [`written_log`].
    fn register(&self) {
        if self.file.is_none() && self.cut.is_none() {
            return;
        }
        // Cheap on every flush: the hash state is copied, finalised only when asked for.
        let entry = self.cut.is_none().then(|| (self.digest.clone(), self.bytes));
        if let Ok(mut written) = WRITTEN.lock() {
            match written.get_mut(&self.path) {
                Some(e) => *e = entry,
                None => {
                    written.insert(self.path.clone(), entry);
                }
            }
        }
    }

    /// The log cannot be written further: end it with the marker, making room for it if
    /// the file cannot grow (the end of the log gives way to the marker).
    fn cut_log(&mut self, error: std::io::Error) {
        self.cut = Some(error.to_string());
        if let Some(file) = self.file.take() {
            // What the buffer still holds may not fit either; the marker says so.
            let _ = file.into_parts();
        }
        let marker = format!("\nerr {CUT_MARKER}\n");
        let Ok(mut f) = crate::files::private_file(&self.path, false) else {
            return;
        };
        if f.write_all(marker.as_bytes()).and_then(|()| f.flush()).is_ok() {
            return;
        }
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        // A whole block freed, on a full disk.
        let room = (marker.len() as u64 + 4096).min(len);
        if f.set_len(len - room).is_ok() {
            let _ = f.write_all(marker.as_bytes()).and_then(|()| f.flush());
        }
    }

    /// Write what the buffer holds to the log. The caller does so whenever no line waits,
    /// so that the log is current when the step is quiet (and when the engine is killed).
    pub fn flush(&mut self) {
        if let Some(file) = self.file.as_mut()
            && let Err(e) = file.flush()
        {
            self.cut_log(e);
        }
        self.register();
    }

    /// Take the lines of an attempt until its end; then say what was left out. Returns the
    /// last lines, for a failure record.
    /// While no line comes for a heartbeat interval, say the attempt is still running.
    pub async fn drain(mut self, mut lines: mpsc::Receiver<Line>) -> Tail {
        let started = tokio::time::Instant::now();
        let every = heartbeat();
        let mut beat = every.map(|e| started + e);
        loop {
            let live_at = self.live.as_ref().and_then(Live::due);
            let next = tokio::select! {
                line = lines.recv() => line,
                () = until(beat) => {
                    let _ = self.report.send(Report::Heartbeat { step: self.step.clone(), running: started.elapsed() });
                    beat = every.zip(beat).map(|(e, at)| at + e);
                    continue;
                }
                () = until(live_at) => {
                    if let Some(live) = self.live.as_mut() {
                        live.publish(false);
                    }
                    continue;
                }
            };
            let Some(line) = next else { break };
            self.line(line);
            if lines.is_empty() {
                self.flush();
                if let Some(live) = self.live.as_mut() {
                    live.publish(false);
                }
            }
            // A line was shown: the next heartbeat is an interval of quiet away.
            beat = every.map(|e| tokio::time::Instant::now() + e);
        }
        self.finish()
    }

    /// The end of the attempt's output: flush the log, and say what was left out. Returns
    /// the last lines.
    pub fn finish(mut self) -> Tail {
        self.flush();
        if let Some(live) = self.live.as_mut() {
            live.publish(true);
        }
        if let Some(error) = &self.cut {
            let _ = self.report.send(Report::Notice(format!(
                "the log of {} is cut: {error}; the rest of its output is not in the log ({})",
                self.label,
                self.path.display()
            )));
        }
        if self.elided > 0 {
            let _ = self.report.send(Report::Notice(format!(
                "{} line(s) of the output of {} were not shown: the terminal fell behind; `runbook logs` has them",
                self.elided, self.label
            )));
        }
        std::mem::take(&mut self.tail)
    }
}

/// Keep the end of `tail` within `max` bytes: from a line's start, or (one line longer than
/// `max`) from a character's.
fn trim_tail(tail: &mut String, max: usize) {
    if tail.len() <= max {
        return;
    }
    let from = tail.len() - max;
    let cut = match tail[from..].find('\n') {
        Some(n) if from + n + 1 < tail.len() => from + n + 1,
        _ => {
            let mut at = from;
            while !tail.is_char_boundary(at) {
                at += 1;
            }
            at
        }
    };
    tail.drain(..cut);
}

/// A log file's step path and attempt, as `log_kept` records name them: `inc+step.2.log`
/// is attempt 2 of `inc/step`.
pub fn log_key(path: &Path) -> Option<(String, i64)> {
    if path.extension().is_none_or(|e| e != "log") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let (step, attempt) = stem.rsplit_once('.').unwrap_or((stem, "1"));
    // Steps of included runbooks are `include+step` in file names, `include/step` in the journal.
    Some((step.replace('+', "/"), attempt.parse().unwrap_or(1)))
}

/// Sleep until `at`; forever without one.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Create a run folder (and its missing parents) readable by the engine's user alone
/// (0700); an existing one is set to 0700.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Remove every `$RUNBOOK_OUTPUT` file (`*.outputs`) of a run folder: what steps of an
/// engine that died wrote there, unredacted.
pub fn remove_outputs_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "outputs") && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A test's line, as the pipe readers would send it after the redactor (only they and the
    // remote actions make lines in the engine: `engine/exec/tests/sinks.rs`).
    fn line(stream: Stream, text: &str) -> Line {
        Line { text: text.to_string(), stream }
    }

    #[test]
    fn the_live_tail_keeps_whole_lines_within_its_bound() {
        let mut tail: String = (0..100).map(|i| format!("out line {i}\n")).collect();
        trim_tail(&mut tail, 40);
        assert!(
            tail.len() <= 40 && tail.starts_with("out line") && tail.ends_with("out line 99\n"),
            "{tail}"
        );
        // One line longer than the bound: its end, from a character's start.
        let mut tail = format!("out {}\n", "é".repeat(50));
        trim_tail(&mut tail, 41);
        assert!(tail.len() <= 41 && tail.ends_with("é\n") && tail.starts_with('é'), "{tail}");
        let mut short = "out a\n".to_string();
        trim_tail(&mut short, 40);
        assert_eq!(short, "out a\n");
        assert_eq!(log_key(Path::new("/r/inc+step.2.log")), Some(("inc/step".to_string(), 2)));
        assert_eq!(log_key(Path::new("/r/step.1.outputs")), None);
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_its_bounds() {
        let mut tail = Tail::default();
        assert_eq!(tail.text(), None);
        for i in 0..100 {
            tail.push(&line(Stream::Stdout, &format!("line {i}")));
        }
        tail.push(&line(Stream::Stderr, "error: the end"));
        let text = tail.text().unwrap_or_default();
        assert_eq!(text.lines().count(), OUTPUT_TAIL_LINES);
        assert!(text.ends_with("line 99\n! error: the end"), "{text}");
        // Long lines: the bytes bound holds, and one huge line keeps its end.
        let mut tail = Tail::default();
        for _ in 0..5 {
            tail.push(&line(Stream::Stdout, &"x".repeat(1000)));
        }
        tail.push(&line(Stream::Stderr, &format!("{}é the cause", "y".repeat(10_000))));
        let text = tail.text().unwrap_or_default();
        assert!(text.len() <= OUTPUT_TAIL_BYTES, "{}", text.len());
        assert!(text.ends_with("é the cause"), "{text}");
    }
}
