//! Every sink gets bytes only through the redactor (issue 11, promise 3).
//!
//! The sinks of a run, enumerated here from the source (a new sink, or a new way into one,
//! fails this test until it is listed with the redaction it goes through):
//!
//! - the local step log: written only by `output::Sink`, from lines that come from
//!   `process::forward` (a `StreamRedactor` per pipe) or `action::remote` (`redact`);
//! - the terminal's step output (`Report::Output`): sent only by `output::Sink`, the same
//!   lines;
//! - the journal (hence the terminal's records, `show`, `audit`, `--output json`, reports):
//!   written by the dispatcher only from `deferred`, which only `defer` fills, after
//!   `redact_event`; by the dispatcher's `decide` and by `runbook approve` after
//!   `redact_event`;
//! - the store's `step_logs`: copies of the local logs (`put_log` in `cli/state.rs`);
//! - the store's `live_output` (issue 16): written only by `output::Live::publish`, whose
//!   tail only `Live::push` fills, called only by `Sink::line` with the log's lines.
//!
//! The run-time half of the rule (no secret form in any of those places) is
//! `tests/integration/secrets.rs`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn source(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `.rs` file under `dir`, relative to the workspace root, with its text.
fn sources(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root()).unwrap_or(&p).display().to_string();
                out.push((
                    rel.replace("engine/exec/../../", ""),
                    std::fs::read_to_string(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// The files (and how many times) where `needle` occurs outside comments.
fn places(files: &[(String, String)], needle: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (path, text) in files {
        let n =
            text.lines().filter(|l| !l.trim_start().starts_with("//")).filter(|l| l.contains(needle)).count();
        if n > 0 {
            out.push((path.clone(), n));
        }
    }
    out.sort();
    out
}

/// Where `OpenOptions::new()` opens a file for writing (the options up to `.open(`, or to
/// the end of the statement that hands them on, name `write`, `append` or `create`), per file.
fn writers(files: &[(String, String)]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (path, text) in files {
        let n = text
            .match_indices("OpenOptions::new()")
            .filter(|(i, _)| {
                let line_start = text[..*i].rfind('\n').map_or(0, |j| j + 1);
                !text[line_start..*i].trim_start().starts_with("//")
            })
            .filter(|(i, _)| {
                let rest = &text[*i..];
                // The options end where they are used: `.open(`, or the statement's end
                // (options handed to `runbook_store::open_outside_store`).
                let end =
                    [rest.find(".open("), rest.find(';')].into_iter().flatten().min().unwrap_or(rest.len());
                let options = &rest[..end];
                [".write(", ".append(", ".create("].iter().any(|o| options.contains(o))
            })
            .count();
        if n > 0 {
            out.push((path.clone(), n));
        }
    }
    out.sort();
    out
}

/// The body of `fn name` in `text` (up to the next function at the same indentation).
fn body<'t>(text: &'t str, signature: &str) -> &'t str {
    let start = text.find(signature).unwrap_or_else(|| panic!("no `{signature}`"));
    let rest = &text[start + signature.len()..];
    let end = [
        "\n    fn ",
        "\n    pub fn ",
        "\n    pub(super) fn ",
        "\n    async fn ",
        "\n    pub async fn ",
        "\n    pub(super) async fn ",
        "\nfn ",
        "\npub fn ",
        "\npub(super) fn ",
        "\nimpl",
    ]
    .iter()
    .filter_map(|m| rest.find(m))
    .min()
    .unwrap_or(rest.len());
    &rest[..end]
}

fn before(text: &str, first: &str, then: &str) -> bool {
    matches!((text.find(first), text.find(then)), (Some(a), Some(b)) if a < b)
}

fn names(v: &[(String, usize)]) -> Vec<String> {
    v.iter().map(|(p, n)| format!("{p}:{n}")).collect()
}

#[test]
fn every_sink_gets_bytes_only_through_the_redactor() {
    let mut engine = sources("engine/exec/src");
    engine.extend(sources("engine/cli"));
    // The console acts through the engine's code (approve, abandon, submit): it has no sink
    // of its own, and this keeps it so.
    engine.extend(sources("engine/web/src"));

    // Files the engine writes during a run: only the step log sink opens one. (Opens for
    // reading, such as the bounded reader of runbooks and scripts, are not sinks.)
    let writers = writers(&engine);
    assert_eq!(
        names(&writers),
        [
            "engine/cli/man.rs:1",
            "engine/cli/queue.rs:1",
            "engine/cli/scaffold.rs:1",
            "engine/exec/src/files.rs:1",
            "engine/exec/src/process.rs:1"
        ],
        "a new file writer: route it through output::Sink, or list it here with why it \
         carries no secret (man.rs: man pages made from the CLI's own definition; queue.rs: a \
         worker's file of an engine's own, already redacted, output; scaffold.rs: `runbook \
         new`'s embedded templates and the name given; files.rs's private_file: the 0600 files \
         of the run folder, the sink's logs and the `$RUNBOOK_OUTPUT` files the engine creates \
         empty, reads back and removes; process.rs: the ledger of process group ids and engine \
         identities)"
    );
    // Terminal output of steps: only the sink sends it.
    assert_eq!(names(&places(&engine, "send(Report::Output")), ["engine/exec/src/output.rs:1"]);
    // Lines: only the pipe readers (after the stream redactor), the remote actions'
    // messages (redacted) and the constant `process::HELD_NOTICE` make them.
    assert_eq!(
        names(&places(&engine, "Line { stream")),
        ["engine/exec/src/action.rs:1", "engine/exec/src/process.rs:3"]
    );
    assert!(
        source("engine/exec/src/process.rs")
            .contains("Line { stream: Stream::Stderr, text: HELD_NOTICE.to_string() }")
    );
    let process = source("engine/exec/src/process.rs");
    let forward = body(&process, "async fn forward<");
    assert!(before(forward, "redactor.push(", "lines.send("), "pipes are redacted before lines are sent");
    assert!(
        body(&source("engine/exec/src/action.rs"), "async fn remote(")
            .contains("text: redactor.redact(&text)")
    );

    // The journal: every append, and what it appends.
    let appends: Vec<_> = ["append_all(", "append_checked(", ".append(&", "start_run("]
        .iter()
        .flat_map(|n| places(&engine, n))
        .filter(|(p, _)| !p.ends_with("secrets.rs") && !p.contains("/secrets/"))
        .collect();
    assert_eq!(
        names(&appends),
        [
            "engine/exec/src/dispatch/record.rs:1",
            "engine/exec/src/approve.rs:1",
            "engine/exec/src/dispatch/approval.rs:1",
            "engine/exec/src/dispatch/record.rs:1"
        ]
    );
    // The dispatcher, every file of it.
    let dispatch: String = sources("engine/exec/src/dispatch").into_iter().map(|(_, text)| text).collect();
    assert_eq!(places(&[("d".into(), dispatch.clone())], "deferred.push(").len(), 1);
    let defer = body(&dispatch, "fn defer(");
    assert!(before(defer, "self.redactor.redact_event(event)", "self.deferred.push("), "{defer}");
    assert!(body(&dispatch, "async fn flush(").contains("std::mem::take(&mut self.deferred)"));
    let decide = body(&dispatch, "async fn decide(");
    assert!(before(decide, "redact_event(", "append_checked("), "{decide}");
    let approve = source("engine/exec/src/approve.rs");
    assert!(before(&approve, "redactor.redact_event(", ".append_checked("));

    // The store's copy of the logs: the local log files, already redacted (with the
    // `log_kept` records that vouch for them, which carry only sizes and digests).
    assert_eq!(names(&places(&engine, ".keep_logs(")), ["engine/cli/state.rs:1"]);

    // The live tail: the log's own lines, from the sink only.
    assert_eq!(names(&places(&engine, ".publish_live(")), ["engine/exec/src/output.rs:1"]);
    let output = source("engine/exec/src/output.rs");
    assert_eq!(places(&[("o".into(), output.clone())], "live.push(").len(), 1);
    let line = body(&output, "pub fn line(");
    assert!(before(line, "self.write_log(&line)", "live.push(&line)"), "{line}");
}
