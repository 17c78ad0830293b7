//! A run's output, searched on the server: `GET /runs/{id}/output?q=TEXT&step=STEP`, the
//! page the run page's search box submits to without JavaScript (with it, the box filters
//! the lines in place). What it searches is what `runbook logs` prints: the logs the
//! journal vouches for (`audit::vouched_logs`), of an intact journal only; a secret never
//! reaches them (the engine masks output before it is kept).
//!
//! Bounded: the whole kept output of each attempt is searched (the store bounds it, about
//! 1 MiB an attempt), and at most [`MAX_LINES`] matching lines, [`MAX_BYTES`] in all, are
//! shown; the others are counted.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use runbook_store::StoreError;
use serde::Serialize;

use crate::pages::{App, PageError};

/// The most matching lines one page shows.
pub const MAX_LINES: usize = 2000;
/// The most bytes of matching lines one page shows.
pub const MAX_BYTES: usize = 512 * 1024;

/// One attempt's matching lines.
#[derive(Debug, Serialize)]
struct Found {
    step: String,
    attempt: i64,
    label: String,
    /// (stream, text, line number).
    lines: Vec<(&'static str, String, usize)>,
    /// Lines of this attempt.
    total: usize,
}

#[derive(Debug, Serialize)]
struct Searched {
    run_id: String,
    q: Option<String>,
    step: Option<String>,
    found: Vec<Found>,
    matched: usize,
    shown: usize,
    intact: bool,
}

/// The lines of `logs` (step, attempt, label, body) that contain `q` (case-insensitive;
/// every line without `q`), of `step` only when given, within the bounds.
fn search(
    logs: std::collections::BTreeMap<(String, i64), (String, String)>,
    q: Option<&str>,
    step: Option<&str>,
) -> (Vec<Found>, usize, usize) {
    let needle = q.map(str::to_lowercase);
    let (mut matched, mut shown, mut bytes) = (0, 0, 0);
    let mut out = Vec::new();
    for ((s, attempt), (label, body)) in logs {
        if step.is_some_and(|want| want != s) {
            continue;
        }
        let mut found = Found {
            step: runbook_core::shown::one_line(&s),
            attempt,
            label: runbook_core::shown::one_line(&label),
            lines: Vec::new(),
            total: 0,
        };
        for (n, line) in body.lines().enumerate() {
            found.total += 1;
            let (stream, text) = match line.split_once(' ') {
                Some(("err", text)) => ("err", text),
                Some(("out", text)) => ("out", text),
                _ => ("out", line),
            };
            if needle.as_ref().is_some_and(|q| !text.to_lowercase().contains(q.as_str())) {
                continue;
            }
            matched += 1;
            if shown < MAX_LINES && bytes + text.len() <= MAX_BYTES {
                shown += 1;
                bytes += text.len();
                found.lines.push((stream, runbook_core::shown::one_line(text), n + 1));
            }
        }
        out.push(found);
    }
    (out, matched, shown)
}

/// `GET /runs/{id}/output`.
pub async fn page(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Response {
    let built = async {
        let id = crate::pages::run_id(id)?;
        let query = crate::query::parse(uri.query(), &["q", "step"]).map_err(PageError::BadRequest)?;
        let (q, step) = (query.get("q").cloned(), query.get("step").cloned());
        let read = app
            .read(async |s| {
                let (mut histories, _) = s.histories(Some(&id)).await?;
                histories.pop().ok_or_else(|| StoreError::NoSuchRun(id.clone()))
            })
            .await?;
        let Some(history) = read else {
            return Err(PageError::NotFound(format!(
                "there is no run `{id}`: the state store holds no runs yet"
            )));
        };
        let (_, verified) = history.verdict(None);
        let records = history.records.clone().unwrap_or_default();
        // Only an intact chain vouches for a log (as `runbook logs` requires).
        let intact = verified.is_some();
        let logs = runbook_core::audit::vouched_logs(&records, history.logs, verified);
        let (q2, step2) = (q.clone(), step.clone());
        let (found, matched, shown) =
            tokio::task::spawn_blocking(move || search(logs, q2.as_deref(), step2.as_deref()))
                .await
                .map_err(|_| PageError::Unavailable("searching the output failed".into()))?;
        Ok(Searched {
            run_id: id,
            q: q.map(|q| runbook_core::shown::one_line(&q)),
            step: step.map(|s| runbook_core::shown::one_line(&s)),
            found,
            matched,
            shown,
            intact,
        })
    };
    match built.await {
        Ok(v) => app.render(StatusCode::OK, "output.html", serde_json::json!({ "out": v })),
        Err(e) => app.failure(false, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_matched_without_case_and_bounded() {
        let mut logs = std::collections::BTreeMap::new();
        let body: String = (0..5000).map(|i| format!("out line {i} Needle\nerr other {i}\n")).collect();
        logs.insert(("a".to_string(), 1), ("kept".to_string(), body));
        logs.insert(("b".to_string(), 1), ("kept".to_string(), "out NEEDLE here\n".to_string()));
        let (found, matched, shown) = search(logs.clone(), Some("needle"), None);
        assert_eq!(matched, 5001);
        assert_eq!(shown, MAX_LINES);
        assert!(found[0].lines.iter().all(|l| l.1.contains("Needle") && l.0 == "out"));
        let (found, matched, _) = search(logs, Some("needle"), Some("b"));
        assert_eq!((found.len(), matched), (1, 1));
        assert_eq!(found[0].lines[0], ("out", "NEEDLE here".to_string(), 1));
    }
}
