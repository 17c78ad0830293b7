//! The pages: their routes, what each reads from the store, and the templates that render
//! them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::{AutoEscape, Environment};
use runbook_core::journal::{self, RunEvent, StepStatus};
use runbook_core::render::ReviewHtml;
use runbook_store::{Location, RunSummary, Store, StoreError};
use serde::Serialize;

use crate::{Config, Files, WebError, graph, query, view};

/// Runs on one page of `/runs`.
pub const PAGE_SIZE: usize = 50;
/// How long one page may wait for the store before it says the store is unavailable.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most runbooks `/runbooks` lists.
const MAX_RUNBOOKS: usize = 500;
/// Runbook files checked at once (in the background; the machine may have few cores).
const CHECKS_AT_ONCE: usize = 2;
/// How long the check of a runbook that depends on other files (includes, files it reads)
/// is kept: the cache knows only the runbook file's identity.
const CHECK_TTL: Duration = Duration::from_secs(60);
/// How long a runbooks page waits for checks not yet done before it shows them as under
/// way.
const CHECK_WAIT: Duration = Duration::from_secs(5);
/// Pages that read the store built at once.
const PAGES_AT_ONCE: usize = 8;
/// The most runs whose runbook shape is kept in memory.
const SHAPES: usize = 64;

/// A run's steps as its runbook (as the run started it) declares them: (id, rendered
/// title, needs), the main steps then the `finally` ones.
#[derive(Debug, Default)]
pub struct Shape {
    steps: Vec<(String, Option<String>, Vec<String>)>,
    /// The steps' estimates (low, high), where the runbook gives them (the timeline's).
    estimates: HashMap<String, (Duration, Duration)>,
}

impl Shape {
    /// The steps' estimates (low, high).
    pub fn estimates(&self) -> &HashMap<String, (Duration, Duration)> {
        &self.estimates
    }
}

/// The shape of a run's runbook: its steps with their titles rendered with the run's
/// parameters (the planner's own rendering: `plan::plan`), or as written when the plan
/// cannot be made.
fn shape_of(
    rb: &runbook_core::model::Runbook,
    journaled: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Shape {
    let mut values = std::collections::BTreeMap::new();
    for p in &rb.params {
        let value = match journaled.get(&p.name) {
            Some(v) => runbook_core::params::from_json(p.ty, v).ok(),
            None => p.default.clone(),
        };
        if let Some(v) = value {
            values.insert(p.name.clone(), v);
        }
    }
    // By the ids the journal uses: a `for-each` step's estimate is each instance's.
    let expanded = runbook_core::foreach::expand(rb, &values);
    let estimates = expanded
        .steps
        .iter()
        .chain(&expanded.finally)
        .filter_map(|s| s.estimate.as_ref().map(|e| (s.id.to_string(), (e.low, e.high))))
        .collect();
    match runbook_core::plan::plan(rb, &values) {
        Ok(plan) => Shape {
            steps: plan.steps.into_iter().chain(plan.finally).map(|s| (s.id, s.title, s.needs)).collect(),
            estimates,
        },
        Err(_) => Shape {
            steps: rb
                .steps
                .iter()
                .chain(&rb.finally)
                .map(|s| {
                    (
                        s.id.to_string(),
                        s.title.as_ref().map(|t| t.text.clone()),
                        s.needs.iter().map(|n| n.to_string()).collect(),
                    )
                })
                .collect(),
            estimates,
        },
    }
}

/// The templates, embedded in the binary.
const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("../templates/base.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("runbooks.html", include_str!("../templates/runbooks.html")),
    ("runbook.html", include_str!("../templates/runbook.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("output.html", include_str!("../templates/output.html")),
    ("schedules.html", include_str!("../templates/schedules.html")),
];

/// The style sheet, embedded.
const CSS: &str = include_str!("../assets/console.css");

/// The console's state.
pub struct App {
    pub addr: SocketAddr,
    /// The names the `Host` header may give (`guard::Hosts`).
    pub hosts: crate::guard::Hosts,
    /// Who is asking (`--auth`), and the store opened for writing when someone can be.
    pub gate: crate::auth::Gate,
    pub(crate) location: Location,
    pub(crate) runbooks: Option<PathBuf>,
    pub(crate) files: Arc<dyn Files>,
    store: tokio::sync::Mutex<Opened>,
    /// How many times opening or reading the store failed.
    failures: std::sync::atomic::AtomicU64,
    /// The steps of each run's runbook as it started (titles rendered with the run's
    /// parameters, needs), by run id: a run's files are pinned by its journal, so what was
    /// read once stays true. At most [`SHAPES`] runs are kept.
    shapes: std::sync::Mutex<HashMap<String, Arc<Shape>>>,
    /// Each runbook file's check, by path (only the folder's listed files).
    checks: std::sync::Mutex<HashMap<PathBuf, Check>>,
    /// Checks at once ([`CHECKS_AT_ONCE`]), and the wake-up of pages waiting for one.
    checking: tokio::sync::Semaphore,
    checked: tokio::sync::Notify,
    /// Pages built at once ([`PAGES_AT_ONCE`]): the others wait their turn, so memory stays
    /// bounded whatever the number of requests (a 5,000-step run page is megabytes).
    pub turns: tokio::sync::Semaphore,
    /// The runs followed live (`live.rs`).
    pub hub: crate::live::Hub,
    /// The rendered pages of finished runs ([`Pages`]).
    pages: std::sync::Mutex<Pages>,
    env: Environment<'static>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// The store as the pages last found it.
#[derive(Debug)]
enum Opened {
    /// Not opened yet.
    Closed,
    Open(Store),
    /// Opening or reading it failed (the `failure`th failure): the pages that were waiting
    /// for the store when it failed say `why`, and every page until `until` (a slow failure).
    Failed {
        failure: u64,
        why: String,
        until: Option<Instant>,
    },
}

/// An attempt to open the store that fails after this long is slow: its failure is the
/// answer of every page for [`SLOW_RETRY`].
const SLOW: Duration = Duration::from_secs(2);
const SLOW_RETRY: Duration = Duration::from_secs(5);

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum PageError {
    /// 400: the request is malformed (query, path).
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// 503: the store cannot be read now.
    Unavailable(String),
}

impl App {
    pub fn new(config: Config, addr: SocketAddr) -> Result<App, WebError> {
        let mut env = Environment::new();
        // Every template escapes every value for HTML, whatever its name (class rule: text
        // from a runbook or a journal reaches HTML only through this).
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).map_err(|e| WebError::Template(e.to_string()))?;
        }
        crate::actions::templates(&mut env)?;
        Ok(App {
            addr,
            hosts: crate::guard::Hosts::new(addr, config.hosts),
            gate: crate::auth::Gate::new(config.auth, config.location.clone()),
            location: config.location,
            runbooks: config.runbooks,
            files: config.files,
            store: tokio::sync::Mutex::new(Opened::Closed),
            failures: std::sync::atomic::AtomicU64::new(0),
            shapes: std::sync::Mutex::new(HashMap::new()),
            checks: std::sync::Mutex::new(HashMap::new()),
            checking: tokio::sync::Semaphore::new(CHECKS_AT_ONCE),
            checked: tokio::sync::Notify::new(),
            turns: tokio::sync::Semaphore::new(PAGES_AT_ONCE),
            hub: crate::live::Hub::default(),
            pages: std::sync::Mutex::new(Pages::default()),
            env,
        })
    }

    /// Render `template` with `context` as a page with `status`.
    pub fn render(&self, status: StatusCode, template: &str, context: impl Serialize) -> Response {
        match self.render_html(template, context) {
            Ok(html) => html_response(status, html),
            Err(text) => html_response(StatusCode::INTERNAL_SERVER_ERROR, minimal_page(&text)),
        }
    }

    /// Render `template` with `context`: the page, or why it could not be rendered (a bug
    /// of the console: said plainly, without the template's data).
    pub fn render_html(&self, template: &str, context: impl Serialize) -> Result<String, String> {
        let context = crate::actions::with_identity(self, context);
        self.env
            .get_template(template)
            .and_then(|t| t.render(context))
            .map_err(|e| format!("the page could not be rendered: {}", e.kind()))
    }

    /// An error page.
    pub fn error_page(&self, status: StatusCode, title: &str, message: &str) -> Response {
        self.render(
            status,
            "error.html",
            serde_json::json!({ "title": title, "code": status.as_u16(), "message": message }),
        )
    }

    /// An error as a page, or as JSON (`{"status", "error", "message"}`) for the `/api/`
    /// twins: the same status and words either way.
    pub fn error(&self, api: bool, status: StatusCode, title: &str, message: &str) -> Response {
        if api {
            json_response(
                status,
                serde_json::json!({ "status": status.as_u16(), "error": title, "message": message }),
            )
        } else {
            self.error_page(status, title, message)
        }
    }

    fn page_error(&self, e: PageError) -> Response {
        self.failure(false, e)
    }

    fn api_error(&self, e: PageError) -> Response {
        self.failure(true, e)
    }

    pub(crate) fn failure(&self, api: bool, e: PageError) -> Response {
        match e {
            PageError::BadRequest(m) => self.error(api, StatusCode::BAD_REQUEST, "bad request", &m),
            PageError::NotFound(m) => self.error(api, StatusCode::NOT_FOUND, "not found", &m),
            PageError::Unavailable(m) => {
                self.error(api, StatusCode::SERVICE_UNAVAILABLE, "state store unavailable", &m)
            }
        }
    }

    /// The store, opened read-only (`Store::open_read_only`: a page load never writes) on
    /// first use and again after it failed; `None` when the SQLite file does not exist or is
    /// empty (no runs yet: nothing is created by a reader).
    ///
    /// Single-flight with a shared failure: one page opens (bounded by [`STORE_TIMEOUT`]);
    /// the pages that waited for it meanwhile get its failure at once instead of trying
    /// again one after the other (adv16 f2: N pages took N x 10 s); a page that comes after
    /// a failure tries again.
    async fn store(&self) -> Result<Option<Store>, PageError> {
        if let Location::Sqlite(path) = &self.location
            && !path.exists()
        {
            return Ok(None);
        }
        let seen = self.failures.load(std::sync::atomic::Ordering::SeqCst);
        let mut cached = self.store.lock().await;
        match &*cached {
            Opened::Open(store) => return Ok(Some(store.clone())),
            Opened::Failed { failure, why, until }
                if *failure > seen || until.is_some_and(|u| Instant::now() < u) =>
            {
                return Err(PageError::Unavailable(why.clone()));
            }
            Opened::Failed { .. } | Opened::Closed => {}
        }
        let started = Instant::now();
        let opened = tokio::time::timeout(STORE_TIMEOUT, Store::open_read_only(&self.location)).await;
        let failed = match opened {
            // No store yet (a missing or empty SQLite file): no runs, and nothing created.
            Ok(Ok(None)) => return Ok(None),
            Ok(Ok(Some(store))) => {
                *cached = Opened::Open(store.clone());
                return Ok(Some(store));
            }
            Ok(Err(e)) => self.unavailable(&e),
            Err(_) => self.too_slow(),
        };
        if let PageError::Unavailable(why) = &failed {
            let failure = self.failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            // A slow failure is the answer of the next [`SLOW_RETRY`] too (pages arriving
            // one after the other would each wait as long); a quick one is tried again.
            let until = (started.elapsed() >= SLOW).then(|| Instant::now() + SLOW_RETRY);
            *cached = Opened::Failed { failure, why: why.clone(), until };
        }
        Err(failed)
    }

    fn too_slow(&self) -> PageError {
        PageError::Unavailable(format!(
            "the state store {} did not answer within {} s",
            self.location.shown(),
            STORE_TIMEOUT.as_secs()
        ))
    }

    /// A store error as the page's: a missing run is a 404; anything else a 503 (and the
    /// store is opened again by the next page).
    async fn failed(&self, e: StoreError) -> PageError {
        match e {
            StoreError::NoSuchRun(id) => PageError::NotFound(format!("there is no run `{}`", one_line(&id))),
            other => {
                let why = self.unavailable(&other);
                self.forget(&why).await;
                why
            }
        }
    }

    /// The store failed a page: the pages waiting for the store meanwhile say so at once,
    /// the next ones open it again.
    async fn forget(&self, why: &PageError) {
        let why = match why {
            PageError::Unavailable(w) => w.clone(),
            PageError::BadRequest(w) | PageError::NotFound(w) => w.clone(),
        };
        let mut cached = self.store.lock().await;
        let failure = self.failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        *cached = Opened::Failed { failure, why, until: None };
    }

    fn unavailable(&self, e: &StoreError) -> PageError {
        // A connection URL's password is never shown, whatever the driver's message says.
        let text = format!(
            "the state store {} cannot be read: {}",
            self.location.shown(),
            self.location.masked(&e.to_string())
        );
        PageError::Unavailable(one_line(&text))
    }

    /// Run `f` on the store, bounded in time; its errors as the page's.
    pub(crate) async fn read<T>(
        &self,
        f: impl AsyncFnOnce(Store) -> Result<T, StoreError>,
    ) -> Result<Option<T>, PageError> {
        let Some(store) = self.store().await? else { return Ok(None) };
        match tokio::time::timeout(STORE_TIMEOUT, f(store)).await {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(e)) => Err(self.failed(e).await),
            Err(_) => {
                let why = self.too_slow();
                self.forget(&why).await;
                Err(why)
            }
        }
    }
}

fn one_line(text: &str) -> String {
    runbook_core::shown::one_line(text)
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// JSON, with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026` (the same JSON; no
/// text of a runbook or journal is markup in it even where something sniffs it as HTML).
pub(crate) fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    let text = value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    let mut r = (status, text).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A page without a template (when a template itself failed).
fn minimal_page(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!("<!doctype html><html><head><title>error</title></head><body><p>{escaped}</p></body></html>\n")
}

/// The routes, behind the guard (methods, host, headers).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { axum::response::Redirect::to("/runs") }))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/runbooks", get(runbooks_page))
        .route("/runbooks/{name}", get(runbook_page))
        .route("/schedules", get(crate::schedules::page))
        .route("/api/runs", get(runs_api))
        .route("/api/runs/{id}", get(run_api))
        .route("/assets/console.css", get(css))
        .route("/assets/review.css", get(review_css))
        .merge(crate::actions::routes())
        .merge(crate::live::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::guard::guard))
        .with_state(app)
}

/// The review document as markup in a page: the console's one value that autoescape does
/// not escape again. It can only be a [`ReviewHtml`], which only the core's review writer
/// makes, every text in it escaped there (tests/tidy.rs allows this line alone).
pub(crate) fn review_markup(review: ReviewHtml) -> minijinja::Value {
    minijinja::Value::from_safe_string(review.into_string())
}

/// The review document's style sheet, the same as `plan --format html` inlines.
async fn review_css() -> Response {
    let mut r = (StatusCode::OK, runbook_core::render::HTML_STYLE).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r
}

async fn css() -> Response {
    let mut r = (StatusCode::OK, CSS).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r
}

async fn not_found(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    let api = uri.path().starts_with("/api/");
    app.error(api, StatusCode::NOT_FOUND, "not found", &format!("there is no page `{}`", one_line(&path)))
}

/// A run id as the engine makes them (`runbook run --run-id` accepts only this shape).
pub(crate) fn run_id(id: Result<Path<String>, PathRejection>) -> Result<String, PageError> {
    let Path(id) = id.map_err(|_| PageError::BadRequest("the path is not valid UTF-8 text".into()))?;
    let fits = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if fits { Ok(id) } else { Err(PageError::NotFound(format!("`{}` is not a run id", one_line(&id)))) }
}

// ---------------------------------------------------------------- the runs

/// The filters of `/runs`.
#[derive(Debug, Default, Serialize)]
struct Filters {
    runbook: Option<String>,
    status: Option<String>,
    operator: Option<String>,
    date: Option<String>,
    /// Runs started on or after this day (UTC).
    since: Option<String>,
}

/// The counts at the top of `/runs`.
#[derive(Debug, Default, Serialize)]
struct Counts {
    running: usize,
    waiting_for_approval: usize,
    needing_an_operator: usize,
    failed_today: usize,
}

#[derive(Debug, Serialize)]
struct RunRow {
    run_id: String,
    runbook: String,
    /// The journal's status (as `runbook runs --format json` has it).
    status: String,
    /// The journal says running, and no engine holds the run.
    engine_gone: bool,
    /// What the page shows: the status, or "interrupted (engine gone)" (as `runbook runs`).
    shown_status: String,
    operator: String,
    started_at: String,
    finished_at: Option<String>,
    events: i64,
}

struct Listing {
    rows: Vec<RunRow>,
    total: usize,
    page: usize,
    pages: usize,
    counts: Counts,
    filters: Filters,
    flagged: Vec<String>,
}

async fn listing(app: &App, raw_query: Option<&str>) -> Result<Listing, PageError> {
    let q = query::parse(raw_query, &["runbook", "status", "operator", "date", "since", "page"])
        .map_err(PageError::BadRequest)?;
    let page = query::page(q.get("page")).map_err(PageError::BadRequest)?;
    let filters = Filters {
        runbook: q.get("runbook").cloned(),
        status: q.get("status").cloned(),
        operator: q.get("operator").cloned(),
        date: query::date(q.get("date")).map_err(PageError::BadRequest)?,
        since: query::day("since", q.get("since")).map_err(PageError::BadRequest)?,
    };
    let today = today();
    let listed = app
        .read(async |s| {
            let runbook_store::RunList { runs, flagged } = s.run_list().await?;
            let mut counts = Counts::default();
            let mut listed = Vec::with_capacity(runs.len());
            for r in runs {
                let gone = r.status == "running" && runbook_exec::dispatch::engine_gone(&s, &r.run_id).await;
                // Waiting for approval: a run not ended with a step that awaits one (its
                // journal folded as `show` folds it); else the status says.
                let unended = matches!(r.status.as_str(), "running" | "needs_operator");
                let waiting = unended
                    && journal::fold(&s.records(&r.run_id).await?)
                        .steps
                        .values()
                        .any(|st| st.status == StepStatus::AwaitingApproval);
                if waiting {
                    counts.waiting_for_approval += 1;
                } else if r.status == "needs_operator" || gone {
                    counts.needing_an_operator += 1;
                }
                if r.status == "running" && !gone {
                    counts.running += 1;
                }
                if r.status == "failed" && r.finished_at.as_deref().is_some_and(|f| f.starts_with(&today)) {
                    counts.failed_today += 1;
                }
                listed.push((r, gone));
            }
            Ok((listed, flagged, counts))
        })
        .await?;
    let (runs, flagged, counts) = listed.unwrap_or_default();
    let shown = |r: &RunSummary, gone: bool| {
        if gone { runbook_exec::dispatch::ENGINE_GONE.to_string() } else { r.status.clone() }
    };
    let kept: Vec<(RunSummary, bool)> = runs
        .into_iter()
        .filter(|(r, _)| filters.runbook.as_ref().is_none_or(|f| &r.runbook == f))
        // The status the page shows (so a count and the list it links to agree: a run whose
        // engine is gone is not `running`).
        .filter(|(r, gone)| filters.status.as_ref().is_none_or(|f| *f == shown(r, *gone)))
        .filter(|(r, _)| filters.operator.as_ref().is_none_or(|f| &r.operator == f))
        .filter(|(r, _)| filters.date.as_ref().is_none_or(|d| r.started_at.starts_with(d.as_str())))
        // RFC 3339 times of one form order as text: a start on that day or later.
        .filter(|(r, _)| filters.since.as_ref().is_none_or(|d| r.started_at.as_str() >= d.as_str()))
        .collect();
    let total = kept.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let rows = kept
        .into_iter()
        .skip((page - 1).saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .map(|(r, gone)| RunRow {
            shown_status: shown(&r, gone),
            engine_gone: gone,
            run_id: r.run_id,
            runbook: one_line(&r.runbook),
            status: r.status,
            operator: one_line(&r.operator),
            started_at: r.started_at,
            finished_at: r.finished_at,
            events: r.last_seq,
        })
        .collect();
    Ok(Listing { rows, total, page, pages, counts, filters, flagged })
}

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The query string of another page of the same filters.
fn page_link(filters: &Filters, page: usize) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("runbook", &filters.runbook),
        ("status", &filters.status),
        ("operator", &filters.operator),
        ("date", &filters.date),
        ("since", &filters.since),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", encode(v)));
        }
    }
    parts.push(format!("page={page}"));
    format!("/runs?{}", parts.join("&"))
}

/// Percent-encoding of a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn runs_page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    match listing(&app, uri.query()).await {
        Ok(l) => {
            let previous = (l.page > 1).then(|| page_link(&l.filters, l.page - 1));
            let next = (l.page < l.pages).then(|| page_link(&l.filters, l.page + 1));
            app.render(
                StatusCode::OK,
                "runs.html",
                serde_json::json!({
                    "runs": l.rows, "total": l.total, "page": l.page, "pages": l.pages,
                    "counts": l.counts, "filters": l.filters, "flagged": l.flagged,
                    "previous": previous, "next": next, "store": app.location.shown(),
                    "page_size": PAGE_SIZE,
                }),
            )
        }
        Err(e) => app.page_error(e),
    }
}

async fn runs_api(State(app): State<Arc<App>>, uri: Uri) -> Response {
    match listing(&app, uri.query()).await {
        Ok(l) => json_response(
            StatusCode::OK,
            serde_json::json!({
                "counts": l.counts, "total": l.total, "page": l.page, "pages": l.pages, "runs": l.rows,
                "flagged": l.flagged,
            }),
        ),
        Err(e) => app.api_error(e),
    }
}

// ---------------------------------------------------------------- one run

#[derive(Debug, Serialize)]
struct RunView {
    run_id: String,
    runbook: String,
    operator: String,
    /// The journal's status.
    status: String,
    /// The journal says running, and no engine holds the run.
    engine_gone: bool,
    /// What the page shows (as `runbook show`).
    shown_status: String,
    started_at: String,
    finished_at: Option<String>,
    params: Vec<(String, String)>,
    lock: Option<String>,
    lock_holder: Option<String>,
    in_doubt: Vec<String>,
    /// `audit verify`'s verdict: intact, or what does not fit the chain.
    intact: bool,
    findings: Vec<String>,
    records: usize,
    head_hash: Option<String>,
    steps: Vec<view::StepRow>,
    graph: Option<graph::Drawing>,
    graph_from_journal: bool,
    /// The attempts in time (p16-live's `timeline.rs`).
    timeline: Option<crate::timeline::Timeline>,
    logs: Vec<view::LogView>,
    /// Live output (issue 16): attempts whose log is not kept yet, not vouched for.
    live: Vec<view::LogView>,
    journal: Vec<view::RecordRow>,
    previous: Option<String>,
    /// A submitted run no worker started: who submitted it, and what its worker last said.
    submitted_by: Option<String>,
    queue_note: Option<String>,
    /// An abandon with compensation asked and not yet carried out (or dropped): who asked.
    abandoning: Option<String>,
}

/// The page of a submitted run that has no journal (queued, claimed, cancelled, refused).
fn queued_view(q: runbook_store::QueueEntry) -> RunView {
    RunView {
        shown_status: q.status(),
        engine_gone: false,
        status: q.status(),
        run_id: q.run_id,
        runbook: one_line(&q.runbook),
        operator: String::new(),
        started_at: q.submitted_at,
        finished_at: None,
        params: Vec::new(),
        lock: None,
        lock_holder: None,
        in_doubt: Vec::new(),
        intact: true,
        findings: Vec::new(),
        records: 0,
        head_hash: None,
        steps: Vec::new(),
        graph: None,
        graph_from_journal: false,
        timeline: None,
        logs: Vec::new(),
        live: Vec::new(),
        journal: Vec::new(),
        previous: None,
        submitted_by: Some(one_line(&q.submitted_by)),
        queue_note: q.note.as_deref().map(one_line),
        abandoning: None,
    }
}

/// What a run page draws beyond its head: the records (read and verified once per page),
/// their fold, the output rows, the runbook's shape, the verdict.
struct Body {
    records: Vec<journal::Record>,
    folded: journal::RunState,
    /// The verifier's token, from the one verification of `run_head`.
    verified: Option<runbook_core::audit::Verified>,
    logs: Vec<runbook_core::audit::StoredLog>,
    /// The live rows of a run not finished (issue 16), as the store has them.
    live: Vec<runbook_store::LiveOutput>,
    shape: Option<Arc<Shape>>,
}

/// The run page's context.
#[derive(Serialize)]
struct RunPage<'a> {
    run: &'a RunView,
    actions: &'a crate::actions::RunActions,
}

/// A run's view without its heavy parts (steps, graph, timeline, output, records), and what
/// they are drawn from: `None` when the journal is not presented (a submitted run, a chain
/// that does not verify).
async fn run_head(app: &App, id: &str) -> Result<(RunView, Option<Body>), PageError> {
    let read = app
        .read(async |s| {
            let history = match s.histories(Some(id)).await {
                Ok((mut histories, _)) => {
                    histories.pop().ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?
                }
                // Submitted and not started (or never to start): the queue says where it stands.
                Err(StoreError::NoSuchRun(_)) => {
                    let entry = s.queue().await?.into_iter().find(|q| q.run_id == id);
                    return entry.map(Err).ok_or_else(|| StoreError::NoSuchRun(id.to_string()));
                }
                Err(e) => return Err(e),
            };
            let gone = runbook_exec::dispatch::engine_gone(&s, id).await;
            let holder = s.lock_of_run(id).await.ok().flatten().map(|h| one_line(&h.holder));
            // The runs of this runbook alone (the filter is the query's): the previous one.
            let same =
                runbook_store::RunFilter { runbook: Some(history.row.runbook.clone()), ..Default::default() };
            let list = s.run_list_where(&same).await?.runs;
            let abandoning = s.abandoning(id).await?;
            // Live output (issue 16) of a run not finished: best effort, never the page's failure.
            let live = if history.row.finished_at.is_none() {
                s.live_output(id).await.unwrap_or_default()
            } else {
                Vec::new()
            };
            Ok(Ok((history, gone, holder, list, abandoning, live)))
        })
        .await?;
    let (history, gone, holder, list, abandoning, live) = match read {
        Some(Ok(found)) => found,
        Some(Err(queued)) => return Ok((queued_view(queued), None)),
        None => {
            return Err(PageError::NotFound(format!(
                "there is no run `{id}`: the state store holds no runs yet"
            )));
        }
    };
    // One verifier: `runbook audit verify` says the same of this run.
    let (verdict, verified) = history.verdict(None);
    let findings: Vec<String> = verdict.iter().map(|f| one_line(&f.to_string())).collect();
    let records = history.records.unwrap_or_default();
    let head_hash = records.last().map(|r| r.hash.clone());
    let summary = runbook_core::audit::summary(&records);
    let previous = list
        .iter()
        .filter(|r| {
            r.runbook == history.row.runbook
                && (&r.started_at, &r.run_id) < (&history.row.started_at, &history.row.run_id)
        })
        .max_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)))
        .map(|r| r.run_id.clone());
    let mut v = RunView {
        run_id: id.to_string(),
        runbook: one_line(&history.row.runbook),
        operator: one_line(&history.row.operator),
        status: history.row.status.clone(),
        engine_gone: false,
        shown_status: history.row.status.clone(),
        started_at: history.row.started_at.clone(),
        finished_at: history.row.finished_at.clone(),
        params: Vec::new(),
        lock: history.row.lock_name.as_deref().map(one_line),
        lock_holder: holder,
        in_doubt: Vec::new(),
        intact: findings.is_empty(),
        findings,
        records: records.len(),
        head_hash,
        steps: Vec::new(),
        graph: None,
        graph_from_journal: false,
        timeline: None,
        logs: Vec::new(),
        live: Vec::new(),
        journal: Vec::new(),
        previous,
        submitted_by: None,
        queue_note: None,
        abandoning: abandoning.as_deref().map(one_line),
    };
    // What does not fit the chain is not presented (as `runbook show`): the verdict only.
    let Some(summary) = summary.filter(|_| v.intact) else { return Ok((v, None)) };
    let summary = RunSummary::from_journal(id.to_string(), summary);
    v.runbook = one_line(&summary.runbook);
    v.operator = one_line(&summary.operator);
    v.engine_gone = summary.status == "running" && gone;
    v.shown_status =
        if v.engine_gone { runbook_exec::dispatch::ENGINE_GONE.to_string() } else { summary.status.clone() };
    v.status = summary.status;
    v.started_at = summary.started_at;
    v.finished_at = summary.finished_at;
    let folded = journal::fold(&records);
    v.in_doubt = folded.in_doubt().into_iter().map(one_line).collect();
    v.params = view::params(&records);
    // The runbook as the run started it, for titles and the graph's edges (read once per run).
    let cached = app.shapes.lock().ok().and_then(|m| m.get(id).cloned());
    let started = match records.first().map(|r| &r.event) {
        Some(RunEvent::RunStarted { file, files, params, .. }) => {
            Some((file.clone(), files.clone(), params.clone()))
        }
        Some(_) | None => None,
    };
    let shape = match (cached, started) {
        (Some(shape), _) => Some(shape),
        (None, None) => None,
        (None, Some((file, files, params))) => {
            let files_api = app.files.clone();
            let read = tokio::task::spawn_blocking(move || {
                files_api.as_started(&file, &files).map(|rb| Arc::new(shape_of(&rb, &params)))
            })
            .await
            .ok()
            .flatten();
            if let (Some(shape), Ok(mut m)) = (&read, app.shapes.lock()) {
                if m.len() >= SHAPES {
                    m.clear();
                }
                m.insert(id.to_string(), shape.clone());
            }
            read
        }
    };
    v.graph_from_journal = shape.is_none();
    Ok((v, Some(Body { records, folded, verified, logs: history.logs, live, shape })))
}

/// Draw the heavy parts of `v` from `body`: CPU only, each linear in the journal.
fn fill(v: &mut RunView, body: Body) {
    let Body { records, folded, verified, logs, live, shape } = body;
    let mut titles = HashMap::new();
    let mut needs: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(shape) = &shape {
        for (step, title, step_needs) in &shape.steps {
            if let Some(t) = title {
                titles.insert(step.clone(), t.clone());
            }
            needs.insert(step.clone(), step_needs.clone());
        }
    }
    v.steps = view::step_rows(&records, &folded, &titles);
    // Every step of the runbook (those not started yet are pending), then the journal's
    // others (included runbooks' steps); without the runbook, the journal's order.
    let mut drawn: Vec<graph::Step> = Vec::new();
    if let Some(shape) = &shape {
        for (step, _, _) in &shape.steps {
            let status = folded.steps.get(step.as_str()).map_or("pending", |st| st.status.as_str());
            drawn.push(graph::Step {
                name: one_line(step),
                needs: needs.remove(step.as_str()).unwrap_or_default(),
                status,
            });
        }
    }
    let known: std::collections::HashSet<String> = drawn.iter().map(|s| s.name.clone()).collect();
    let mut prev: Option<String> = None;
    for step in &folded.order {
        if known.contains(step) {
            continue;
        }
        let status = folded.steps.get(step).map_or("pending", |st| st.status.as_str());
        // Without the runbook, one after the other as the journal met them.
        let needs = if shape.is_none() { prev.iter().cloned().collect() } else { Vec::new() };
        drawn.push(graph::Step { name: one_line(step), needs, status });
        prev = Some(one_line(step));
    }
    v.graph = Some(graph::layout(&drawn));
    v.timeline = crate::timeline::of_run(&records, shape.as_deref(), v.finished_at.is_none());
    // Only an intact chain gets here (`run_head`), as `runbook logs` requires of a vouched log.
    v.logs = view::log_views(&v.run_id, runbook_core::audit::vouched_logs(&records, logs, verified));
    // Live output only beside an intact chain (as the kept output), of attempts not kept.
    v.live =
        if v.intact { view::live_views(&v.run_id, view::live_not_kept(&records, live)) } else { Vec::new() };
    v.journal = view::record_rows(&records);
}

async fn run_view(app: &App, id: &str) -> Result<RunView, PageError> {
    let (mut v, body) = run_head(app, id).await?;
    if let Some(body) = body {
        fill(&mut v, body);
    }
    Ok(v)
}

/// The key of a finished run's page in [`Pages`]: a SHA-256 of everything the page shows
/// that is not drawn from the verified journal (the head of the view, the forms, who asks
/// and the console's mode), the journal's head hash and record count (in the head), the
/// output rows as stored, and whether the runbook's shape was read. The journal of a
/// finished run never changes; if its rows are edited, the chain no longer verifies (the
/// page is the verdict, never cached) or its head hash is another (another key).
fn page_key(
    app: &App,
    v: &RunView,
    body: &Body,
    who: &Option<(String, String)>,
    actions: &crate::actions::RunActions,
) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(&serde_json::to_vec(v).ok()?);
    part(&serde_json::to_vec(actions).ok()?);
    part(&serde_json::to_vec(who).ok()?);
    part(match &app.gate.auth {
        crate::auth::Auth::None => "none".as_bytes(),
        crate::auth::Auth::Token => "token".as_bytes(),
        crate::auth::Auth::Proxy { .. } => "proxy".as_bytes(),
    });
    part(&[u8::from(body.shape.is_some())]);
    for log in &body.logs {
        part(log.step.as_bytes());
        part(&log.attempt.to_le_bytes());
        part(log.body.as_bytes());
    }
    Some(h.finalize().into())
}

/// The rendered pages of finished runs, by [`page_key`]: at most [`PAGES_KEPT`] pages and
/// [`PAGE_BYTES_KEPT`] bytes, the oldest dropped first.
#[derive(Debug, Default)]
pub struct Pages {
    kept: HashMap<[u8; 32], Arc<String>>,
    order: std::collections::VecDeque<[u8; 32]>,
    bytes: usize,
}

/// The most pages [`Pages`] keeps.
const PAGES_KEPT: usize = 32;
/// The most bytes of pages [`Pages`] keeps (a 5,000-step run's page is about 2.6 MB).
const PAGE_BYTES_KEPT: usize = 64 << 20;

impl Pages {
    fn get(&self, key: &[u8; 32]) -> Option<Arc<String>> {
        self.kept.get(key).cloned()
    }

    fn keep(&mut self, key: [u8; 32], page: Arc<String>) {
        if page.len() > PAGE_BYTES_KEPT || self.kept.contains_key(&key) {
            return;
        }
        while self.kept.len() >= PAGES_KEPT || self.bytes + page.len() > PAGE_BYTES_KEPT {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(p) = self.kept.remove(&old) {
                self.bytes -= p.len();
            }
        }
        self.bytes += page.len();
        self.order.push_back(key);
        self.kept.insert(key, page);
    }
}

/// The header that says a page came from [`Pages`] (tests read it; a browser ignores it).
const CACHED: &str = "x-runbook-page";

async fn run_page(State(app): State<Arc<App>>, id: Result<Path<String>, PathRejection>) -> Response {
    let head = match run_id(id) {
        Ok(id) => run_head(&app, &id).await,
        Err(e) => Err(e),
    };
    let (mut v, body) = match head {
        Ok(found) => found,
        Err(e) => return app.page_error(e),
    };
    let (who, actions) = crate::actions::on_run_page(
        &app,
        &v.run_id,
        body.as_ref().map(|b| (b.records.as_slice(), &b.folded)),
    )
    .await;
    // A finished run's page is kept: its journal does not change.
    let key =
        body.as_ref().filter(|_| v.finished_at.is_some()).and_then(|b| page_key(&app, &v, b, &who, &actions));
    if let Some(key) = &key
        && let Some(page) = app.pages.lock().ok().and_then(|p| p.get(key))
    {
        let mut r = html_response(StatusCode::OK, page.as_str().to_owned());
        r.headers_mut().insert(CACHED, HeaderValue::from_static("kept"));
        return r;
    }
    // Drawing and rendering a big run takes CPU: off the runtime's thread, so the other
    // requests (the style sheet, other pages) are not held behind it.
    let on = app.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        if let Some(body) = body {
            fill(&mut v, body);
        }
        crate::auth::SIGNED_IN.sync_scope(who, || {
            // Borrowed, not a `serde_json::Value` first: a 5,000-step run's view is
            // converted once, into the template's values.
            on.render_html("run.html", RunPage { run: &v, actions: &actions })
        })
    })
    .await;
    match rendered {
        Ok(Ok(html)) => {
            if let (Some(key), Ok(mut pages)) = (key, app.pages.lock()) {
                let page = Arc::new(html);
                pages.keep(key, page.clone());
                return html_response(StatusCode::OK, page.as_str().to_owned());
            }
            html_response(StatusCode::OK, html)
        }
        Ok(Err(e)) => html_response(StatusCode::INTERNAL_SERVER_ERROR, minimal_page(&e)),
        Err(_) => app.page_error(PageError::Unavailable("rendering the page failed".into())),
    }
}

async fn run_api(State(app): State<Arc<App>>, id: Result<Path<String>, PathRejection>) -> Response {
    let view = match run_id(id) {
        Ok(id) => run_view(&app, &id).await,
        Err(e) => Err(e),
    };
    match view {
        Ok(v) => json_response(
            StatusCode::OK,
            serde_json::json!({
                "run_id": v.run_id, "runbook": v.runbook, "operator": v.operator, "status": v.status, "engine_gone": v.engine_gone,
                "started_at": v.started_at, "finished_at": v.finished_at, "params": v.params,
                "lock": v.lock, "in_doubt": v.in_doubt,
                "journal": { "intact": v.intact, "findings": v.findings, "records": v.records, "head_hash": v.head_hash },
                "steps": v.steps, "previous": v.previous, "submitted_by": v.submitted_by, "queue_note": v.queue_note,
                // A pending abandon with compensation (red team adv18c D): who asked; never
                // the reason (it may hold a value only the worker's secrets redact).
                "abandoning": v.abandoning.as_ref().map(|by| serde_json::json!({ "by": by, "compensating": true })),
            }),
        ),
        Err(e) => app.api_error(e),
    }
}

// ---------------------------------------------------------------- the runbooks

/// A file's identity for the check cache: its size, modification and change times, inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

fn identity(file: &std::path::Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(file).ok()?;
    Some(Identity {
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
    })
}

/// One file's check: under way, or done for the file as it was.
#[derive(Debug, Clone)]
enum Check {
    Running(Option<Identity>),
    Done(Option<Identity>, Instant, Arc<crate::RunbookFile>),
}

/// One entry of the runbooks page: checked, or still being checked (its name only).
#[derive(Debug, Serialize)]
struct Entry {
    #[serde(flatten)]
    file: crate::RunbookFile,
    pending: bool,
}

/// The check of each of `files`, from the cache when the file is as it was checked;
/// the others are checked in the background (at most [`CHECKS_AT_ONCE`] at once, each
/// file once whatever the number of pages asking), and this page waits for them at most
/// [`CHECK_WAIT`]: those not done by then are shown as being checked. A check goes on
/// when its page has gone, and its result serves the next page.
async fn checks(app: &Arc<App>, files: Vec<PathBuf>) -> Vec<Entry> {
    let deadline = tokio::time::Instant::now() + CHECK_WAIT;
    let ids: Vec<Option<Identity>> = {
        let files = files.clone();
        tokio::task::spawn_blocking(move || files.iter().map(|f| identity(f)).collect())
            .await
            .unwrap_or_else(|_| Vec::new())
    };
    loop {
        // Registered before looking, so a check that ends meanwhile wakes this page.
        let notified = app.checked.notified();
        let mut out = Vec::with_capacity(files.len());
        let mut waiting = false;
        if let Ok(mut cache) = app.checks.lock() {
            for (file, id) in files.iter().zip(ids.iter().cloned().chain(std::iter::repeat(None))) {
                let entry = match cache.get(file) {
                    Some(Check::Done(was, at, checked))
                        if *was == id && (!checked.others || at.elapsed() < CHECK_TTL) =>
                    {
                        Entry { file: (**checked).clone(), pending: false }
                    }
                    Some(Check::Running(was)) if *was == id => {
                        waiting = true;
                        Entry { file: pending_file(file), pending: true }
                    }
                    _ => {
                        cache.insert(file.clone(), Check::Running(id.clone()));
                        start_check(app, file.clone(), id);
                        waiting = true;
                        Entry { file: pending_file(file), pending: true }
                    }
                };
                out.push(entry);
            }
        }
        if !waiting || tokio::time::Instant::now() >= deadline {
            return out;
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

fn pending_file(file: &std::path::Path) -> crate::RunbookFile {
    crate::RunbookFile {
        name: crate::runbook_name(file),
        file: file.to_path_buf(),
        runbook: None,
        valid: false,
        problems: String::new(),
        others: false,
    }
}

/// Check `file` in the background and keep the result for the file as it was (`id`).
fn start_check(app: &Arc<App>, file: PathBuf, id: Option<Identity>) {
    let app = app.clone();
    tokio::spawn(async move {
        let _turn = app.checking.acquire().await;
        let files = app.files.clone();
        let path = file.clone();
        let checked = tokio::task::spawn_blocking(move || files.check(&path)).await;
        if let Ok(mut cache) = app.checks.lock() {
            match checked {
                Ok(checked) => {
                    cache.insert(file, Check::Done(id, Instant::now(), Arc::new(checked)));
                }
                Err(_) => {
                    cache.remove(&file);
                }
            }
        }
        app.checked.notify_waiters();
    });
}

/// The runbook files of the folder (not read), at most [`MAX_RUNBOOKS`]; the cache keeps
/// only theirs.
async fn listed(app: &App) -> Result<Vec<PathBuf>, PageError> {
    let Some(dir) = app.runbooks.clone() else { return Ok(Vec::new()) };
    let files = app.files.clone();
    let mut list = tokio::task::spawn_blocking(move || files.runbooks(&dir))
        .await
        .map_err(|_| PageError::Unavailable("reading the runbooks failed".into()))?;
    list.truncate(MAX_RUNBOOKS);
    if let Ok(mut cache) = app.checks.lock() {
        let keep: std::collections::HashSet<&PathBuf> = list.iter().collect();
        cache.retain(|f, _| keep.contains(f));
    }
    Ok(list)
}

async fn catalog(app: &Arc<App>) -> Result<Vec<Entry>, PageError> {
    let list = listed(app).await?;
    Ok(checks(app, list).await)
}

async fn runbooks_page(State(app): State<Arc<App>>) -> Response {
    match catalog(&app).await {
        Ok(list) => app.render(
            StatusCode::OK,
            "runbooks.html",
            serde_json::json!({
                "runbooks": list,
                "dir": app.runbooks.as_deref().map(crate::shown_path),
                "max": MAX_RUNBOOKS,
            }),
        ),
        Err(e) => app.page_error(e),
    }
}

async fn runbook_page(State(app): State<Arc<App>>, name: Result<Path<String>, PathRejection>) -> Response {
    match name {
        Ok(Path(name)) => runbook_view(&app, &name, None).await,
        Err(_) => app.page_error(PageError::BadRequest("the path is not valid UTF-8 text".into())),
    }
}

/// The file of the runbook `name` of the folder: only a name the folder's listing has,
/// never a path built from the URL.
pub(crate) async fn runbook_file(app: &App, name: &str) -> Result<PathBuf, PageError> {
    listed(app)
        .await?
        .into_iter()
        .find(|f| crate::runbook_name(f) == name)
        .ok_or_else(|| PageError::NotFound(format!("there is no runbook `{}` here", one_line(name))))
}

/// A start form sent back (its values refused): the CLI's words.
#[derive(Debug, Clone, Default)]
pub(crate) struct Retry {
    pub problems: String,
}

/// The runbook page; with `retry`, a start form refused (400) with its problems.
pub(crate) async fn runbook_view(app: &Arc<App>, name: &str, retry: Option<Retry>) -> Response {
    let found = async {
        // Only this file is checked (or taken from the cache).
        let file = runbook_file(app, name).await?;
        let entry = checks(app, vec![file])
            .await
            .pop()
            .ok_or_else(|| PageError::Unavailable("reading the runbook failed".into()))?;
        if entry.pending {
            return Err(PageError::Unavailable(format!(
                "`{}` is still being checked (a big runbook): reload this page in a moment",
                one_line(name)
            )));
        }
        let entry = entry.file;
        let files = app.files.clone();
        let file = entry.file.clone();
        let signed_in = crate::auth::signed_in().is_some();
        let (review, start) = tokio::task::spawn_blocking(move || {
            let review = files.review(&file);
            // The start form: only for a signed-in operator, from the runbook as it is now.
            let start = file.to_str().filter(|_| signed_in).and_then(|f| files.as_now(f));
            (review, start)
        })
        .await
        .map_err(|_| PageError::Unavailable("reading the runbook failed".into()))?;
        let start = start.filter(|_| entry.valid).map(|r| crate::actions::start_form(&r, name));
        Ok::<_, PageError>((entry, review, start))
    };
    match found.await {
        Ok((entry, review, start)) => {
            let (plan, problems) = match review {
                Ok(plan) => (Some(plan), None),
                Err(problems) => (None, Some(problems)),
            };
            let status = if retry.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            app.render(
                status,
                "runbook.html",
                minijinja::context! {
                    runbook => minijinja::Value::from(minijinja::value::Serde(&entry)),
                    plan => plan.map(review_markup),
                    plan_problems => problems,
                    start => start.map(|s| minijinja::Value::from(minijinja::value::Serde(s))),
                    start_problems => retry.map(|r| r.problems),
                },
            )
        }
        Err(e) => app.page_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_is_a_date() {
        let t = today();
        assert!(query::date(Some(&t)).is_ok(), "{t}");
    }
}
