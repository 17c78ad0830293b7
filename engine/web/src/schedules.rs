//! `/schedules` (issue 17): each schedule of the schedules files of `--runbooks DIR`, with
//! what the store says of it (last fired run, overdue, its notice, the rows found with no
//! journal record) and its journal's last records with their `audit` verdict and head.
//! Read-only: the page reads the store through [`crate::pages::App::read`] (a read-only
//! store) and fires nothing. No webhook address, parameter value or secret is shown: a
//! schedule's `notify` is said as present or not, its parameters by name only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use runbook_core::schedule::{Schedule, due_text, utc_from_millis};
use runbook_core::schedule_journal::ScheduleRecord;
use runbook_store::Store;

use crate::pages::{App, PageError};

/// Fire times listed per schedule.
const NEXT: usize = 3;
/// The journal's records shown per schedule (its last ones).
const LAST_RECORDS: usize = 10;
/// The most schedules shown in all.
const MAX_SCHEDULES: usize = 200;
/// A due time recorded more than this after now was recorded by a clock that ran ahead
/// (the worker's and `runbook schedules`' rule).
const SKEW_MS: i64 = 60_000;

/// What the store says of one schedule.
#[derive(Debug, Default)]
struct Seen {
    last_run: Option<(String, String, Option<String>)>,
    last_success: Option<String>,
    overdue_since: Option<String>,
    notice: Option<runbook_store::NoticeState>,
    warnings: Vec<ScheduleRecord>,
    records: Vec<ScheduleRecord>,
    count: usize,
    verdict: Option<String>,
    head: Option<String>,
}

async fn seen_of(store: &Store, s: &Schedule, now: DateTime<Utc>) -> Result<Seen, runbook_store::StoreError> {
    let name = &s.target.name;
    let runs = store.schedule_runs_until(name, now.timestamp_millis() + SKEW_MS).await?;
    let parse = |t: &Option<String>| {
        t.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
    };
    let success = parse(&runs.last_success);
    let first = runs.first_due_ms.and_then(utc_from_millis);
    let overdue_since = s
        .overdue(success, first, now)
        .then(|| success.or(first).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .flatten();
    let notice = store.notice_state(name).await.ok().flatten();
    let warnings = store.schedule_warnings(name).await.unwrap_or_default();
    let mut seen = Seen {
        last_run: runs.last_run,
        last_success: runs.last_success,
        overdue_since,
        notice,
        warnings,
        ..Seen::default()
    };
    if let Some(journal) = store.schedule_journals(Some(name)).await?.pop() {
        let findings = journal.findings();
        seen.verdict = Some(match findings.first() {
            None => "ok".to_string(),
            Some(first) => format!("BROKEN: {}", runbook_core::shown::one_line(first)),
        });
        seen.head = journal.head.as_ref().and_then(|(_, h)| h.clone());
        if let Ok(records) = journal.records {
            seen.count = records.len();
            let from = records.len().saturating_sub(LAST_RECORDS);
            seen.records = records[from..].to_vec();
        }
    }
    Ok(seen)
}

use runbook_core::schedule::span_text;

fn notice_text(n: &runbook_store::NoticeState) -> String {
    match (n.delivered, n.failed, &n.last_failure) {
        (Some(0), ..) => "delivered".to_string(),
        (Some(a), ..) => format!("delivered (attempt {a})"),
        (None, 0, _) => "not delivered yet".to_string(),
        (None, k, Some(why)) => {
            format!("not delivered: {k} attempt(s) failed, last {}", runbook_core::shown::one_line(why))
        }
        (None, k, None) => format!("not delivered: {k} attempt(s) failed"),
    }
}

fn record_json(r: &ScheduleRecord) -> serde_json::Value {
    serde_json::json!({
        "seq": r.seq,
        "ts": r.ts,
        "kind": r.event.kind(),
        "worker": runbook_core::shown::one_line(r.event.worker()),
        "text": runbook_core::shown::one_line(&r.event.summary()),
        "hash": r.hash,
    })
}

fn schedule_json(s: &Schedule, seen: &Seen, now: DateTime<Utc>, active: bool) -> serde_json::Value {
    let one = runbook_core::shown::one_line;
    let next: Vec<serde_json::Value> = s
        .next_after(now, NEXT)
        .iter()
        .map(|t| {
            serde_json::json!({
                "local": t.format("%Y-%m-%d %H:%M %Z (%:z)").to_string(),
                "utc": t.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "name": one(&s.target.name),
        "runbook": one(&s.target.runbook.value),
        "params": s.target.params.keys().map(|k| one(k)).collect::<Vec<_>>(),
        "cron": one(&s.cron_text),
        "time_zone": s.time_zone.name(),
        "next": next,
        "expects": s.expect_success_within.map(span_text),
        "notify": s.notify.is_some(),
        "store": active,
        "last_run": seen.last_run.as_ref().map(|(id, status, started)| serde_json::json!({
            "id": one(id), "status": one(status), "started": started.as_deref().map(one),
        })),
        "last_success": seen.last_success.as_deref().map(one),
        "overdue_since": seen.overdue_since,
        "notice": seen.notice.as_ref().filter(|_| s.notify.is_some()).map(|n| serde_json::json!({
            "since": due_text(n.since_ms),
            "reminder": n.reminder,
            "delivered": n.delivered.is_some(),
            "text": notice_text(n),
            "attempts": n.failed + u32::from(n.delivered.is_some()) + u32::from(n.in_flight.is_some()),
        })),
        "warnings": seen.warnings.iter().map(record_json).collect::<Vec<_>>(),
        "records": seen.records.iter().rev().map(record_json).collect::<Vec<_>>(),
        "count": seen.count,
        "verdict": seen.verdict,
        "head": seen.head,
    })
}

/// `GET /schedules`.
pub(crate) async fn page(State(app): State<Arc<App>>) -> Response {
    match view(&app).await {
        Ok(context) => app.render(StatusCode::OK, "schedules.html", context),
        Err(e) => app.failure(false, e),
    }
}

async fn view(app: &Arc<App>) -> Result<serde_json::Value, PageError> {
    let dir = app.runbooks.clone();
    let shown_dir = dir.as_deref().map(crate::shown_path);
    let Some(dir) = dir else {
        return Ok(serde_json::json!({ "dir": shown_dir, "files": [] }));
    };
    let files = app.files.clone();
    let found = tokio::task::spawn_blocking(move || files.schedules(&dir))
        .await
        .map_err(|_| PageError::Unavailable("reading the schedules files failed".into()))?;
    let now = DateTime::<Utc>::from(std::time::SystemTime::now());
    let mut total = 0usize;
    let mut out = Vec::new();
    for f in found {
        let schedules = match &f.schedules {
            Err(problems) => {
                out.push(serde_json::json!({
                    "file": crate::shown_path(&f.file),
                    "problems": problems,
                    "schedules": [],
                }));
                continue;
            }
            Ok(list) => list,
        };
        let take: Vec<Schedule> =
            schedules.iter().take(MAX_SCHEDULES.saturating_sub(total)).cloned().collect();
        total += take.len();
        let seen: Option<Vec<Seen>> = app
            .read(async move |store: Store| {
                let mut all = Vec::with_capacity(take.len());
                for s in &take {
                    all.push(seen_of(&store, s, now).await?);
                }
                Ok(all)
            })
            .await?;
        let items: Vec<serde_json::Value> = match &seen {
            Some(seen) => schedules.iter().zip(seen).map(|(s, x)| schedule_json(s, x, now, true)).collect(),
            None => schedules
                .iter()
                .take(MAX_SCHEDULES)
                .map(|s| schedule_json(s, &Seen::default(), now, false))
                .collect(),
        };
        out.push(serde_json::json!({
            "file": crate::shown_path(&f.file),
            "problems": null,
            "schedules": items,
        }));
    }
    Ok(serde_json::json!({ "dir": shown_dir, "files": out, "max": MAX_SCHEDULES }))
}
