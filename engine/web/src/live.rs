//! A run followed live: `GET /runs/{id}/events`, Server-Sent Events of the run's new
//! journal records as they are journaled.
//!
//! - Each event is one record: `id:` its journal sequence (a browser that reconnects sends
//!   it back as `Last-Event-ID` and gets the records after it: none lost, none twice),
//!   `data:` one line of JSON with the record's kind, step, time, the step's state after
//!   it, the run's status, and for a `log_kept` record the kept output of that attempt
//!   (vouched by the journal, as `runbook logs` has it; its tail, bounded).
//! - One poller per followed run, whatever the number of browsers following it: it reads
//!   the records after the last it saw once per [`POLL`] and broadcasts them; it stops when
//!   its last follower goes or when the run has finished (its `run_finished` read and its
//!   engine gone: the logs are kept after the end).
//! - Bounded: at most [`MAX_FOLLOWERS`] streams at once and [`FOLLOWERS_PER_PEER`] for one
//!   principal (more are a 503), an event at most
//!   [`MAX_EVENT`] bytes (the output is cut to its tail to fit), a comment every
//!   [`HEARTBEAT`] (so the connection's idle deadline sees progress), a stream at most
//!   [`STREAM_MAX`] long (the browser reconnects with `Last-Event-ID`), and the stream ends
//!   when the run has finished.
//! - A follower that falls behind the broadcast (more than [`BACKLOG`] batches) reads what
//!   it missed from the store itself: still none lost, none twice.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runbook_core::journal::{self, Record, RunEvent};
use runbook_store::Store;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};

use crate::pages::{App, PageError};

/// How often a followed run's journal is read (once per run, whatever the followers).
pub const POLL: Duration = Duration::from_millis(500);
/// The most streams open at once (the connections are capped at 256: pages stay reachable).
pub const MAX_FOLLOWERS: usize = 128;
/// The most streams one principal holds at once (a signed-in identity, else a peer's
/// address): no one client takes every [`MAX_FOLLOWERS`] slot (red team adv16u F4).
pub const FOLLOWERS_PER_PEER: usize = 8;
/// The most bytes of one event (its output is cut to the tail that fits).
pub const MAX_EVENT: usize = 64 * 1024;
/// A comment line this often, so that an idle stream still makes progress.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// The longest one stream lasts; the browser reconnects with `Last-Event-ID`.
pub const STREAM_MAX: Duration = Duration::from_secs(30 * 60);
/// How often a poller that sends something verifies the run's whole journal again: a
/// record edited behind the last one it read is seen within this (red team adv22 L1: live
/// output went on until the engine's next record).
const REVERIFY: Duration = Duration::from_secs(2);
/// Batches a follower may be behind the poller before it reads the store itself.
const BACKLOG: usize = 64;
/// Polls after `run_finished` while the engine still holds the run (keeping its logs).
const AFTER_END: u32 = 60;

/// What the poller of one run broadcasts.
#[derive(Debug, Clone)]
enum Msg {
    /// New events, in journal order.
    Events(Arc<Vec<Event>>),
    /// New live output (issue 16): `live` events, no journal sequence.
    Live(Arc<Vec<LiveSent>>),
    /// The run has finished (or its journal cannot be followed): the streams end.
    End(Arc<String>),
}

/// One event as sent: its sequence and its whole text (`id:`, `event:`, `data:`).
#[derive(Debug)]
pub struct Event {
    pub seq: u64,
    pub text: String,
}

/// The followed runs, by id.
#[derive(Debug)]
pub struct Hub {
    runs: std::sync::Mutex<HashMap<String, broadcast::Sender<Msg>>>,
    followers: Arc<Semaphore>,
    /// The streams each principal holds now (see [`FOLLOWERS_PER_PEER`]).
    shares: Arc<std::sync::Mutex<HashMap<Principal, usize>>>,
    /// How many times a followed run's store was read (the bench and a test read it).
    pub polls: std::sync::atomic::AtomicU64,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            runs: std::sync::Mutex::new(HashMap::new()),
            followers: Arc::new(Semaphore::new(MAX_FOLLOWERS)),
            shares: Arc::new(std::sync::Mutex::new(HashMap::new())),
            polls: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Whose share a stream counts in: a signed-in identity (a session's cookie, a trusted
/// proxy's header; by `journal::identity_key`), else the peer's address (anonymous, or a
/// bearer token, which is not read for a stream: using one is recorded in the store).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Principal {
    Identity(String),
    Peer(Option<std::net::IpAddr>),
}

/// One stream's slot: its part of [`MAX_FOLLOWERS`] and of its principal's share, both
/// given back when the stream ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    shares: Arc<std::sync::Mutex<HashMap<Principal, usize>>>,
    who: Principal,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = shares.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shares.remove(&self.who);
            }
        }
    }
}

impl Hub {
    /// A slot for `who`, or why not (its share is taken, or every slot is).
    fn slot(&self, who: Principal) -> Result<Slot, String> {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        if shares.get(&who).copied().unwrap_or(0) >= FOLLOWERS_PER_PEER {
            let whose = match &who {
                Principal::Identity(_) => "of this identity",
                Principal::Peer(_) => "from this address",
            };
            return Err(format!(
                "{FOLLOWERS_PER_PEER} streams {whose} already follow runs on this console: close a page that follows one, then reload this one"
            ));
        }
        let permit = self.followers.clone().try_acquire_owned().map_err(|_| {
            format!(
                "{MAX_FOLLOWERS} browsers already follow runs on this console: reload the page to see the run"
            )
        })?;
        *shares.entry(who.clone()).or_insert(0) += 1;
        Ok(Slot { _permit: permit, shares: self.shares.clone(), who })
    }
}

/// The events of `records` after `after`: each record with its step's state and the run's
/// status just after it (the journal folded up to it, as `runbook show` folds it: the same
/// text whatever the batch it came in, so a reconnection reads what a live follower read),
/// and the output of each `log_kept` record from `logs` (the journal's vouched logs).
pub fn events(
    records: &[Record],
    after: u64,
    logs: &BTreeMap<(String, i64), (String, String)>,
) -> Vec<Event> {
    let mut state = journal::RunState::default();
    let mut out = Vec::new();
    for r in records {
        state.apply(&r.event);
        if r.seq <= after {
            continue;
        }
        let step = r.event.step();
        let status = step.and_then(|s| state.steps.get(s)).map(|st| st.status.as_str());
        let mut data = serde_json::json!({
            "seq": r.seq,
            "ts": r.ts,
            "kind": r.event.kind(),
            "step": step.map(runbook_core::shown::one_line),
            "status": status,
            "run_status": state.status.map(|s| s.as_str()),
            "hash": r.hash.chars().take(16).collect::<String>(),
        });
        if let RunEvent::LogKept { step, attempt, .. } = &r.event
            && let Some((label, body)) = logs.get(&(step.clone(), i64::from(*attempt)))
        {
            data["output"] = output(step, i64::from(*attempt), label, body);
        }
        out.push(Event { seq: r.seq, text: frame(r.seq, "record", &data) });
    }
    out
}

/// One attempt's output for an event: its tail lines that fit [`MAX_EVENT`], and how many
/// bytes before them are not sent.
fn output(step: &str, attempt: i64, label: &str, body: &str) -> serde_json::Value {
    // Escaping can make a byte six (`\u001b`): a tail of a sixth of the bound fits.
    let room = MAX_EVENT / 8;
    let mut logs = BTreeMap::new();
    logs.insert((step.to_string(), attempt), (label.to_string(), body.to_string()));
    let mut views = crate::view::log_views("", logs);
    let Some(v) = views.pop() else { return serde_json::Value::Null };
    let mut lines: Vec<(&str, String)> = Vec::new();
    let mut used = 0;
    let mut omitted = v.omitted;
    for (stream, text) in v.lines.into_iter().rev() {
        if used + text.len() + 1 > room {
            omitted += text.len() + 1;
            continue;
        }
        used += text.len() + 1;
        lines.push((stream, text));
    }
    lines.reverse();
    serde_json::json!({
        "step": runbook_core::shown::one_line(step),
        "attempt": attempt,
        "label": runbook_core::shown::one_line(label),
        "lines": lines,
        "omitted": omitted,
    })
}

/// A `live` event (issue 16): the lines of an attempt's live row after the `from` bytes a
/// follower already has (all its tail when `from` is 0), cut to fit [`MAX_EVENT`]; no `id`
/// (it is no journal record: `Last-Event-ID` stays the last record's). Its label says the
/// journal does not vouch for it.
fn live_event(row: &runbook_store::LiveOutput, from: i64) -> String {
    let seen = row.bytes_seen.max(0);
    let new = usize::try_from(seen.saturating_sub(from)).unwrap_or(usize::MAX);
    // The tail's last `new` bytes are the lines after `from` (rows hold whole lines).
    let body = if from > 0 && new < row.tail.len() {
        let mut at = row.tail.len() - new;
        while !row.tail.is_char_boundary(at) {
            at += 1;
        }
        &row.tail[at..]
    } else {
        row.tail.as_str()
    };
    let mut data = output(&row.step, row.attempt, crate::view::LIVE_LABEL, body);
    // Bytes after `from` not in these lines: before the tail, and what `output` cut.
    let cut = data["omitted"].as_u64().unwrap_or(0);
    data["omitted"] = serde_json::json!((new.saturating_sub(body.len()) as u64).saturating_add(cut));
    data["from"] = serde_json::json!(from.max(0));
    data["seen"] = serde_json::json!(seen);
    let json = data.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    format!("event: live\ndata: {json}\n\n")
}

/// The `live` events of `rows` that are new against `sent` (bytes already sent, by attempt),
/// skipping attempts whose log the journal keeps; `sent` is updated.
fn live_events(
    records: &[Record],
    rows: Vec<runbook_store::LiveOutput>,
    sent: &mut HashMap<(String, i64), i64>,
) -> Vec<LiveSent> {
    let mut out = Vec::new();
    for row in crate::view::live_not_kept(records, rows) {
        let key = (row.step.clone(), row.attempt);
        let from = sent.get(&key).copied().unwrap_or(0);
        if row.bytes_seen <= from {
            continue;
        }
        sent.insert(key, row.bytes_seen);
        out.push(LiveSent { text: live_event(&row, from), row, from });
    }
    out
}

/// A `live` event as the poller sent it: the row, the bytes it starts after, its text.
#[derive(Debug)]
struct LiveSent {
    row: runbook_store::LiveOutput,
    from: i64,
    text: String,
}

/// An event's text: `id`, `event`, and its data as one line of JSON (with `<`, `>`, `&`
/// escaped as the JSON twins have them).
fn frame(seq: u64, kind: &str, data: &serde_json::Value) -> String {
    let json = data.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    format!("id: {seq}\nevent: {kind}\ndata: {json}\n\n")
}

/// The run has finished: what its stream says last.
fn end_frame(why: &str) -> String {
    let data = serde_json::json!({ "reason": runbook_core::shown::one_line(why) });
    format!("event: end\ndata: {}\n\n", data)
}

/// The run's status when its journal says it has finished.
fn finished(records: &[Record]) -> Option<String> {
    records.iter().rev().find_map(|r| match &r.event {
        RunEvent::RunFinished { status, .. } => Some(format!("the run has finished: {}", status.as_str())),
        RunEvent::RunAbandoned { .. } => Some("the run was abandoned".to_string()),
        _ => None,
    })
}

/// Why a stream stops at a journal the verifier does not vouch for.
const NOT_VERIFIED: &str =
    "the journal does not verify: reload the page for `audit verify`'s verdict (nothing of it is sent)";

/// The run's records and vouched logs as the store has them now, with the verifier's verdict
/// (`History::findings`, as the run page, `/output` and `runbook logs`): a journal that does
/// not verify has no logs vouched for, and its records are not to be sent.
async fn read_all(
    store: &Store,
    id: &str,
) -> Result<(Vec<Record>, BTreeMap<(String, i64), (String, String)>, bool), runbook_store::StoreError> {
    let (mut histories, _) = store.histories(Some(id)).await?;
    let Some(history) = histories.pop() else { return Ok((Vec::new(), BTreeMap::new(), true)) };
    let (_, verified) = history.verdict(None);
    let records = history.records.clone().unwrap_or_default();
    let intact = verified.is_some();
    let logs = runbook_core::audit::vouched_logs(&records, history.logs, verified);
    Ok((records, logs, intact))
}

/// The poller of one run: reads the records after the last it saw once per [`POLL`] and
/// broadcasts their events, until the run has finished or no one follows it.
async fn poll(app: Arc<App>, id: String, tx: broadcast::Sender<Msg>) {
    let mut records: Vec<Record> = Vec::new();
    let mut after_end = 0u32;
    // The engine was gone at the previous poll already (see the end below).
    let mut was_gone = false;
    // Live output sent, by attempt: bytes seen (issue 16).
    let mut sent: HashMap<(String, i64), i64> = HashMap::new();
    // When the whole journal last verified (its followers verified it as they joined).
    let mut verified_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(POLL).await;
        if tx.receiver_count() == 0 {
            break;
        }
        app.hub.polls.fetch_add(1, Ordering::Relaxed);
        let last = records.last().map_or(0, |r| r.seq);
        let read = app
            .read(async |s| {
                let fresh = s.records_after(&id, last).await?;
                let gone = runbook_exec::dispatch::engine_gone(&s, &id).await;
                // Live output, in the same read (best effort: a store without the table
                // or a role without the grant has none).
                let live = s.live_output(&id).await.unwrap_or_default();
                Ok((fresh, gone, live))
            })
            .await;
        let (fresh, gone, live) = match read {
            Ok(Some(read)) => read,
            // The store is away for now: the next poll tries again (the streams wait).
            Ok(None) | Err(_) => continue,
        };
        let quiet = fresh.is_empty();
        // About to send something: the journal read so far must still verify as a whole,
        // not only where it goes on (a record edited behind the last one read).
        if (!fresh.is_empty() || !live.is_empty()) && verified_at.elapsed() >= REVERIFY {
            match app.read(async |s| read_all(&s, &id).await).await {
                Ok(Some((_, _, false))) => {
                    let _ = tx.send(Msg::End(Arc::new(NOT_VERIFIED.into())));
                    break;
                }
                Ok(Some((_, _, true))) => verified_at = tokio::time::Instant::now(),
                // The store is away for now: the next poll tries again, sending nothing.
                Ok(None) | Err(_) => continue,
            }
        }
        if !fresh.is_empty() {
            // A record that does not follow the last one seen: the chain is broken, and
            // the page (which verifies the whole journal) says what.
            let linked = fresh
                .first()
                .is_some_and(|f| f.seq == last + 1 && records.last().is_none_or(|l| f.prev_hash == l.hash))
                && fresh.windows(2).all(|w| w[1].seq == w[0].seq + 1 && w[1].prev_hash == w[0].hash);
            if !linked {
                let _ = tx.send(Msg::End(Arc::new(
                    "the journal does not follow on: reload the page for `audit verify`'s verdict".into(),
                )));
                break;
            }
            let kept = fresh.iter().any(|r| matches!(r.event, RunEvent::LogKept { .. }));
            records.extend(fresh);
            // The output, only when the batch keeps some (read once, for every follower).
            let logs = if kept {
                match app.read(async |s| read_all(&s, &id).await).await {
                    Ok(Some((_, logs, true))) => logs,
                    Ok(Some((_, _, false))) => {
                        let _ = tx.send(Msg::End(Arc::new(NOT_VERIFIED.into())));
                        break;
                    }
                    Ok(None) | Err(_) => BTreeMap::new(),
                }
            } else {
                BTreeMap::new()
            };
            let batch = events(&records, last, &logs);
            let _ = tx.send(Msg::Events(Arc::new(batch)));
        }
        let live = live_events(&records, live, &mut sent);
        if !live.is_empty() {
            let _ = tx.send(Msg::Live(Arc::new(live)));
        }
        if let Some(why) = finished(&records) {
            after_end += 1;
            // The engine lets go of the run before it keeps its logs (`log_kept` follows
            // `run_finished` and the lock's release): the stream ends at a poll that read
            // nothing new while the engine was already gone at the one before.
            if (gone && was_gone && quiet) || after_end > AFTER_END {
                let _ = tx.send(Msg::End(Arc::new(why)));
                break;
            }
        }
        was_gone = gone;
    }
    if let Ok(mut runs) = app.hub.runs.lock() {
        runs.remove(&id);
    }
}

/// The broadcast of run `id`'s poller, started by its first follower.
fn subscribe(app: &Arc<App>, id: &str) -> Option<broadcast::Receiver<Msg>> {
    let mut runs = app.hub.runs.lock().ok()?;
    if let Some(tx) = runs.get(id) {
        return Some(tx.subscribe());
    }
    let (tx, rx) = broadcast::channel(BACKLOG);
    runs.insert(id.to_string(), tx.clone());
    tokio::spawn(poll(app.clone(), id.to_string(), tx));
    Some(rx)
}

/// Where the follower starts: `Last-Event-ID` (a reconnection), else `?after=SEQ` (the
/// page's last record), else the start.
fn start_after(headers: &HeaderMap, query: Option<&str>) -> Result<u64, PageError> {
    if let Some(v) = headers.get("last-event-id") {
        return v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| PageError::BadRequest("`Last-Event-ID` is not a journal sequence".into()));
    }
    let q = crate::query::parse(query, &["after"]).map_err(PageError::BadRequest)?;
    match q.get("after") {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| PageError::BadRequest(format!("`after` is a journal sequence, not `{}`", v))),
    }
}

/// `GET /runs/{id}/events`.
pub async fn follow(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    info: Option<axum::Extension<axum::extract::ConnectInfo<crate::idle::Conn>>>,
) -> Response {
    let started = async {
        let id = crate::pages::run_id(id)?;
        let after = start_after(&headers, uri.query())?;
        let peer =
            info.as_ref().map(|axum::Extension(axum::extract::ConnectInfo(c))| c.remote.ip().to_canonical());
        let signed_in = if headers.contains_key(header::AUTHORIZATION) {
            None
        } else {
            app.gate.identify(&headers, peer).await.ok().flatten()
        };
        let who = match signed_in {
            Some(w) => Principal::Identity(runbook_core::journal::identity_key(&w.name)),
            None => Principal::Peer(peer),
        };
        let permit = app.hub.slot(who).map_err(PageError::Unavailable)?;
        // Subscribed before reading: a record is either in what is read or broadcast after.
        let rx = subscribe(&app, &id);
        let read = app
            .read(async |s| {
                let all = read_all(&s, &id).await?;
                let live = s.live_output(&id).await.unwrap_or_default();
                Ok((all, live))
            })
            .await?;
        let Some(((records, logs, intact), live)) = read.filter(|((r, _, _), _)| !r.is_empty()) else {
            return Err(PageError::NotFound(format!("run `{id}` has no journal to follow")));
        };
        Ok((id, after, permit, records, logs, intact, live, rx))
    };
    let (id, after, permit, records, logs, intact, live, rx) = match started.await {
        Ok(s) => s,
        Err(e) => return app.error(false, status_of(&e), "cannot follow the run", &message_of(&e)),
    };
    // The stream has its own bounds: the connection's total deadline does not apply.
    if let Some(axum::Extension(axum::extract::ConnectInfo(conn))) = info {
        conn.streaming();
    }
    let (out, body) = mpsc::channel::<Bytes>(8);
    // A journal that does not verify: none of its records, only why.
    let (done, mut backlog) = if intact {
        (finished(&records), events(&records, after, &logs))
    } else {
        (Some(NOT_VERIFIED.to_string()), Vec::new())
    };
    // The live output as it is now (whole tails), after the records; none of a journal that
    // does not verify, none of a finished run. `known`: the bytes this follower has of each
    // attempt (the poller's events repeat nothing it has).
    let mut known: HashMap<(String, i64), i64> = HashMap::new();
    if intact && done.is_none() {
        let seq = records.last().map_or(0, |r| r.seq);
        backlog
            .extend(live_events(&records, live, &mut known).into_iter().map(|l| Event { seq, text: l.text }));
    }
    let last = records.last().map_or(0, |r| r.seq).max(after);
    tokio::spawn(send(app.clone(), id, rx, (backlog, known), last, done, out, permit));
    let mut r = Body::from_stream(Stream(body)).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    r
}

fn status_of(e: &PageError) -> StatusCode {
    match e {
        PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
        PageError::NotFound(_) => StatusCode::NOT_FOUND,
        PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn message_of(e: &PageError) -> String {
    match e {
        PageError::BadRequest(m) | PageError::NotFound(m) | PageError::Unavailable(m) => m.clone(),
    }
}

/// One follower: the backlog, then the broadcast's events after the last sent (the store
/// read again when it fell behind), heartbeats, and the end.
#[allow(clippy::too_many_arguments)]
async fn send(
    app: Arc<App>,
    id: String,
    mut rx: Option<broadcast::Receiver<Msg>>,
    (backlog, mut known): (Vec<Event>, HashMap<(String, i64), i64>),
    mut last: u64,
    done: Option<String>,
    out: mpsc::Sender<Bytes>,
    _slot: Slot,
) {
    let deadline = tokio::time::Instant::now() + STREAM_MAX;
    // The retry delay, then the events the browser has not seen.
    if out.send(Bytes::from_static(b"retry: 2000\n\n")).await.is_err() {
        return;
    }
    for e in backlog {
        if out.send(Bytes::from(e.text)).await.is_err() {
            return;
        }
    }
    if let Some(why) = done {
        let _ = out.send(Bytes::from(end_frame(&why))).await;
        return;
    }
    let Some(rx) = rx.as_mut() else { return };
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(Msg::Events(batch)) => {
                    for e in batch.iter() {
                        if e.seq <= last {
                            continue;
                        }
                        last = e.seq;
                        if out.send(Bytes::from(e.text.clone())).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Msg::Live(sent)) => {
                    for l in sent.iter() {
                        let key = (l.row.step.clone(), l.row.attempt);
                        let have = known.get(&key).copied().unwrap_or(0);
                        if l.row.bytes_seen <= have {
                            continue;
                        }
                        // The poller's text when it starts where this follower is; else
                        // the lines after what this follower has.
                        let text = if l.from == have { l.text.clone() } else { live_event(&l.row, have) };
                        known.insert(key, l.row.bytes_seen);
                        if out.send(Bytes::from(text)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Msg::End(why)) => {
                    let _ = out.send(Bytes::from(end_frame(&why))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Behind the poller: what was missed, from the store.
                    let Ok(Some((records, logs, intact))) = app.read(async |s| read_all(&s, &id).await).await else {
                        return;
                    };
                    if !intact {
                        let _ = out.send(Bytes::from(end_frame(NOT_VERIFIED))).await;
                        return;
                    }
                    for e in events(&records, last, &logs) {
                        last = e.seq;
                        if out.send(Bytes::from(e.text)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = beat.tick() => {
                if out.send(Bytes::from_static(b": still following\n\n")).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// The follower's channel as the response body's stream.
struct Stream(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Stream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx).map(|b| b.map(Ok))
    }
}

/// The routes of this module (merged into the pages' router).
pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/runs/{id}/events", axum::routing::get(follow))
        .route("/runs/{id}/output", axum::routing::get(crate::output::page))
        .route("/assets/live.js", axum::routing::get(script))
}

/// The script that applies the events to the run page (`assets/live.js`).
const SCRIPT: &str = include_str!("../assets/live.js");

async fn script() -> Response {
    let mut r = (StatusCode::OK, SCRIPT).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r
}
