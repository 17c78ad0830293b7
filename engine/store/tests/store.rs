//! The store's conformance suite: every case runs, unchanged, against SQLite (a real file)
//! and PostgreSQL (a real throwaway cluster, started per case): ordering, append-only rows,
//! tamper detection, locks with fencing, schema versions, step logs.

use std::collections::BTreeMap;
use std::time::Duration;

use runbook_core::journal::{self, RunEvent, RunStatus};
use runbook_store::{Acquire, Backend, Head, KeptLog, Location, NewRun, Store, StoreError, Submission};
use sqlx::Row;

/// A fresh, migrated, empty store and what keeps it alive.
struct Fixture {
    location: Location,
    _dir: tempfile::TempDir,
    _pg: Option<runbook_sandbox::peers::Postgres>,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                Fixture { location: Location::Sqlite(dir.path().join("state.db")), _dir: dir, _pg: None }
            }
            Backend::Postgres => {
                let pg = tokio::task::spawn_blocking(runbook_sandbox::peers::Postgres::start)
                    .await
                    .expect("start PostgreSQL");
                let location = Location::Postgres(pg.url("postgres"));
                Store::connect(&location).await.expect("connect").migrate().await.expect("state migrate");
                Fixture { location, _dir: dir, _pg: Some(pg) }
            }
        }
    }

    fn backend(&self) -> Backend {
        self.location.backend()
    }

    async fn open(&self) -> Store {
        Store::open(&self.location).await.expect("open")
    }

    async fn with_run(&self, run_id: &str) -> Store {
        let store = self.open().await;
        store
            .create_run(&NewRun {
                run_id,
                runbook: "rollback-l3",
                operator: "ana@bastion",
                started_at: "2026-11-30T10:00:00Z",
                lock_name: None,
            })
            .await
            .expect("create run");
        store
    }
}

/// Red team adv25 F2/F2b: every session of a PostgreSQL store, the writer's and the
/// reader's, has a transaction left idle ended by the server (a stopped worker held a
/// schedule's head and froze every other worker's passes until it was killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_session_ends_a_transaction_left_idle() {
    let fixture = Fixture::new(Backend::Postgres).await;
    let writer = Store::connect(&fixture.location).await.expect("connect");
    let reader = fixture.open().await;
    for store in [&writer, &reader] {
        for _ in 0..3 {
            let mut conn = store.pool().acquire().await.expect("a connection");
            let shown: String = sqlx::query("SHOW idle_in_transaction_session_timeout")
                .fetch_one(&mut *conn)
                .await
                .expect("show")
                .try_get(0)
                .expect("text");
            assert_eq!(shown, "1min");
        }
    }
}

/// One test per backend for each case: `mod case { sqlite, postgres }`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$case(super::Fixture::new(runbook_store::Backend::Sqlite).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$case(super::Fixture::new(runbook_store::Backend::Postgres).await).await;
            }
        }
    )*};
}

conformance!(
    appends_are_chained_and_read_back_in_order,
    concurrent_writers_leave_no_gap_and_no_duplicate,
    journal_rows_cannot_be_changed_or_removed,
    tampering_past_the_triggers_is_detected,
    a_live_lock_is_refused_and_names_its_holder,
    an_expired_holder_is_fenced_out_after_a_takeover,
    concurrent_acquisitions_give_the_lock_to_exactly_one,
    one_engine_holds_a_run_decided_in_one_transaction,
    a_newer_schema_is_refused,
    decisions_are_checked_against_the_journal_in_the_same_transaction,
    step_logs_are_kept_per_attempt,
    live_output_is_one_row_per_attempt_cut_to_its_bound_and_dropped_with_the_run,
    kept_logs_are_vouched_for_by_log_kept_records,
    the_health_check_reports_versions_and_contents,
    queued_runs_are_claimed_once_by_workers_with_the_labels,
    a_decided_resume_is_the_decider_s_once,
    a_queued_plan_is_erased_only_when_its_engine_refused_the_run,
    a_cancelled_append_is_all_or_nothing_and_the_next_one_works,
    a_filtered_run_list_reads_only_the_runs_it_lists,
    schedule_decisions_are_journaled_once_each_and_chained,
    a_schedule_is_watched_once_however_many_workers_race,
    a_first_watch_not_believed_is_rewatched_once_however_many_workers_race,
    dropped_guards_are_found_and_put_back,
    overdue_notices_are_claimed_one_attempt_at_a_time_until_delivered,
);

/// `run_list_where` filters in the query: a row that is not a run (no journal) is flagged
/// by the whole list, and not even read by a list that filters it out.
async fn a_filtered_run_list_reads_only_the_runs_it_lists(f: Fixture) {
    let store = f.with_run("r-no-journal").await;
    let run = NewRun {
        run_id: "r-deploy",
        runbook: "deploy",
        operator: "bo",
        started_at: "2026-12-01T10:00:00.000Z",
        lock_name: None,
    };
    let mut first = started();
    if let RunEvent::RunStarted { runbook, operator, .. } = &mut first {
        *runbook = "deploy".into();
        *operator = "bo".into();
    }
    store.start_run(&run, &[first], None).await.expect("start");
    let finished = RunEvent::RunFinished { status: RunStatus::Failed, preconditions: Vec::new() };
    store.append("r-deploy", "2026-12-01T10:01:00.000Z", &finished, None).await.expect("finish");

    let all = store.run_list().await.expect("list");
    assert_eq!(all.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["r-deploy"]);
    assert_eq!(all.flagged.len(), 1, "{:?}", all.flagged);
    for filter in [
        runbook_store::RunFilter { runbook: Some("deploy".into()), ..Default::default() },
        runbook_store::RunFilter { operator: Some("bo".into()), ..Default::default() },
        runbook_store::RunFilter { statuses: vec!["failed".into()], ..Default::default() },
        runbook_store::RunFilter { since: Some("2026-12-01T00:00:00.000Z".into()), ..Default::default() },
    ] {
        let listed = store.run_list_where(&filter).await.expect("filtered");
        assert_eq!(listed.runs.len(), 1, "{filter:?}");
        assert_eq!(listed.runs[0].status, "failed");
        assert!(listed.flagged.is_empty(), "{filter:?} read a row it does not list: {:?}", listed.flagged);
    }
    let none =
        runbook_store::RunFilter { statuses: vec!["queued".into()], limit: Some(1), ..Default::default() };
    assert!(store.run_list_where(&none).await.expect("filtered").runs.is_empty());
}

fn started() -> RunEvent {
    RunEvent::RunStarted {
        runbook: "rollback-l3".into(),
        file: "/srv/runbooks/rollback-l3.toml".into(),
        files: vec![],
        params: BTreeMap::new(),
        operator: "ana@bastion".into(),
        engine_version: "0.1.0".into(),
        submitted_by: None,
        log_digests: false,
        report: Default::default(),
    }
}

fn step(i: usize) -> RunEvent {
    RunEvent::StepStarted { step: format!("s{i}"), attempt: 1 }
}

#[tokio::test]
async fn sqlite_opens_with_durable_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sqlite(&dir.path().join("state.db")).await.expect("open");
    let mode: String =
        sqlx::query("PRAGMA journal_mode").fetch_one(store.pool()).await.expect("pragma").get(0);
    let sync: i64 = sqlx::query("PRAGMA synchronous").fetch_one(store.pool()).await.expect("pragma").get(0);
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
    // Reopening is a no-op migration.
    drop(store);
    Store::open_sqlite(&dir.path().join("state.db")).await.expect("reopen");
}

#[tokio::test]
async fn a_shared_store_is_not_migrated_behind_the_team_s_back() {
    let pg = tokio::task::spawn_blocking(runbook_sandbox::peers::Postgres::start).await.expect("start");
    let location = Location::Postgres(pg.url("postgres"));
    match Store::open(&location).await {
        Err(e @ StoreError::NeedsMigration { applied: 0, known: 16 }) => {
            assert!(e.to_string().contains("runbook state migrate"), "{e}");
        }
        other => panic!("expected NeedsMigration, got {other:?}"),
    }
    let store = Store::connect(&location).await.expect("connect");
    assert_eq!(store.migrate().await.expect("migrate"), (0, 16));
    assert_eq!(store.migrate().await.expect("migrate again"), (16, 16));
    Store::open(&location).await.expect("open after migrate");
}

#[test]
fn locations_are_read_and_shown_without_credentials() {
    assert_eq!(
        Location::parse("/var/lib/runbook/state.db"),
        Location::Sqlite("/var/lib/runbook/state.db".into())
    );
    assert_eq!(Location::parse("sqlite:///srv/state.db"), Location::Sqlite("/srv/state.db".into()));
    let pg =
        Location::parse("postgres://runbook:s3cr3t-pass@db.internal:5432/ops?sslmode=require&password=x");
    assert_eq!(pg.backend(), Backend::Postgres);
    assert_eq!(pg.shown(), "postgres://runbook:***@db.internal:5432/ops");
    assert_eq!(Location::parse("postgresql://db/ops").shown(), "postgresql://db/ops");
    assert_eq!(Location::parse("postgres://ops@db/ops?host=/tmp").shown(), "postgres://ops@db/ops");
}

async fn appends_are_chained_and_read_back_in_order(f: Fixture) {
    let store = f.with_run("r1").await;
    store.append("r1", "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    for i in 0..20 {
        store.append("r1", "2026-11-30T10:00:01Z", &step(i), None).await.expect("append");
    }
    let finished = RunEvent::RunFinished { status: RunStatus::Succeeded, preconditions: vec![] };
    let last = store.append("r1", "2026-11-30T10:00:02Z", &finished, None).await.expect("append");
    let records = store.records("r1").await.expect("records");
    assert_eq!(records.len(), 22);
    assert_eq!(journal::verify(&records, Some(&last.hash)), Ok(()));
    let runs = store.runs().await.expect("runs");
    assert_eq!(runs[0].status, "succeeded");
    assert_eq!(runs[0].last_seq, 22);
    assert_eq!(runs[0].last_hash.as_deref(), Some(last.hash.as_str()));
}

async fn concurrent_writers_leave_no_gap_and_no_duplicate(f: Fixture) {
    let first = f.with_run("r1").await;
    // A second pool on the same database behaves like a second process.
    let second = f.open().await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 { first.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store.append("r1", "2026-11-30T10:00:00Z", &step(w * 100 + i), None).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let records = first.records("r1").await.expect("records");
    assert_eq!(records.len(), 200);
    assert!(records.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1));
    assert_eq!(journal::verify(&records, None), Ok(()));
}

/// An append whose future is dropped at any point (an engine's task cancelled) wrote all
/// of its records or none, and the store's next append works: on SQLite the journal's own
/// connection may be left inside its transaction, which the next append rolls back first.
async fn a_cancelled_append_is_all_or_nothing_and_the_next_one_works(f: Fixture) {
    let store = f.with_run("r1").await;
    store.append("r1", "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    for i in 0..40u64 {
        let events = [step(2 * i as usize), step(2 * i as usize + 1)];
        let mut append = Box::pin(store.append_all("r1", "2026-11-30T10:00:01Z", &events, None));
        // Dropped after 1, 2... 5 polls, the database given a moment between them: between
        // its round trips, inside its transaction or after it.
        for _ in 0..=i % 5 {
            let poll = std::future::poll_fn(|cx| std::task::Poll::Ready(append.as_mut().poll(cx))).await;
            if poll.is_ready() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(append);
        store.append("r1", "2026-11-30T10:00:02Z", &step(1000 + i as usize), None).await.expect("append");
    }
    let records = store.records("r1").await.expect("records");
    assert_eq!(journal::verify(&records, None), Ok(()));
    let run = store.run("r1").await.expect("run");
    assert_eq!(run.last_seq, records.len() as i64);
    // Each pair of a cancelled append is in the journal together or not at all.
    for i in 0..40usize {
        let has = |n: usize| records.iter().any(|r| r.event == step(n));
        assert_eq!(has(2 * i), has(2 * i + 1), "append {i} was cut in two");
        assert!(has(1000 + i));
    }
}

async fn journal_rows_cannot_be_changed_or_removed(f: Fixture) {
    let store = f.with_run("r1").await;
    store.append("r1", "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    let update = sqlx::query("UPDATE events SET ts = 'x' WHERE run_id = 'r1'").execute(store.pool()).await;
    assert!(update.is_err_and(|e| e.to_string().contains("append-only")));
    let delete = sqlx::query("DELETE FROM events").execute(store.pool()).await;
    assert!(delete.is_err_and(|e| e.to_string().contains("append-only")));
    if f.backend() == Backend::Postgres {
        let truncate = sqlx::query("TRUNCATE events CASCADE").execute(store.pool()).await;
        assert!(truncate.is_err_and(|e| e.to_string().contains("append-only")));
    }
    assert_eq!(store.records("r1").await.expect("records").len(), 1);
}

async fn tampering_past_the_triggers_is_detected(f: Fixture) {
    let store = f.with_run("r1").await;
    store.append("r1", "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    for i in 0..5 {
        store.append("r1", "2026-11-30T10:00:01Z", &step(i), None).await.expect("append");
    }
    // Someone with the file drops the triggers and edits a row.
    let drop_trigger = match f.backend() {
        Backend::Sqlite => "DROP TRIGGER events_no_update",
        Backend::Postgres => "DROP TRIGGER events_no_update ON events",
    };
    sqlx::query(drop_trigger).execute(store.pool()).await.expect("drop trigger");
    let forged = serde_json::to_string(&RunEvent::StepSkipped { step: "s2".into(), reason: "x".into() })
        .expect("json");
    sqlx::query("UPDATE events SET body = $1 WHERE run_id = 'r1' AND seq = 4")
        .bind(forged)
        .execute(store.pool())
        .await
        .expect("tamper");
    let records = store.records("r1").await.expect("records");
    let err = journal::verify(&records, None).expect_err("tampering is detected");
    assert_eq!(err.seq, 4);
}

async fn a_live_lock_is_refused_and_names_its_holder(f: Fixture) {
    let store = f.with_run("r1").await;
    let ttl = Duration::from_secs(30);
    let lease = store
        .acquire_lock(
            "inmova-production",
            "r1",
            "ana@bastion (pid 10)",
            "2026-11-30T10:00:00Z",
            1_000,
            ttl,
            None,
        )
        .await
        .expect("first acquisition");
    assert_eq!(lease.fence, 1);
    assert!(lease.took_over.is_none());
    let second = store
        .acquire_lock(
            "inmova-production",
            "r2",
            "luis@laptop (pid 20)",
            "2026-11-30T10:00:05Z",
            5_000,
            ttl,
            None,
        )
        .await;
    match second {
        Err(StoreError::LockHeld(h)) => {
            assert_eq!(h.run_id, "r1");
            assert_eq!(h.holder, "ana@bastion (pid 10)");
            assert_eq!(h.acquired_at, "2026-11-30T10:00:00Z");
        }
        other => panic!("expected LockHeld, got {other:?}"),
    }
    // Released: the next run takes it with a newer fence.
    store.release_lock(&lease).await.expect("release");
    let next = store
        .acquire_lock(
            "inmova-production",
            "r2",
            "luis@laptop (pid 20)",
            "2026-11-30T10:01:00Z",
            60_000,
            ttl,
            None,
        )
        .await
        .expect("after release");
    assert_eq!(next.fence, 2);
}

async fn an_expired_holder_is_fenced_out_after_a_takeover(f: Fixture) {
    let store = f.with_run("r1").await;
    store
        .create_run(&NewRun {
            run_id: "r2",
            runbook: "rollback-l3",
            operator: "luis@laptop",
            started_at: "2026-11-30T10:05:00Z",
            lock_name: Some("inmova-production"),
        })
        .await
        .expect("second run");
    let ttl = Duration::from_secs(30);
    let old = store
        .acquire_lock("inmova-production", "r1", "ana@bastion (pid 10)", "t0", 0, ttl, None)
        .await
        .expect("acquire");
    store.append("r1", "t0", &started(), Some(&old)).await.expect("holder writes");
    // r1 stalls past its lease. The lock is r1's until r1 has finished (issue 14, point 5):
    // another run is refused, and names the run that keeps it...
    let other =
        store.acquire_lock("inmova-production", "r2", "luis@laptop (pid 20)", "t1", 31_000, ttl, None).await;
    assert!(
        matches!(&other, Err(StoreError::LockKept { holder, status }) if holder.run_id == "r1" && status == "running"),
        "{other:?}"
    );
    // ...and another engine of r1 itself (a worker resuming a dead worker's run) takes it over.
    let new = store
        .acquire_lock("inmova-production", "r1", "luis@laptop (pid 20)", "t1", 31_000, ttl, None)
        .await
        .expect("takeover of an expired lease by the same run");
    assert_eq!(new.fence, 2);
    assert_eq!(new.took_over.as_ref().map(|h| h.run_id.as_str()), Some("r1"));
    // The stalled run wakes up: none of its writes get through.
    let late = store.append("r1", "t2", &step(1), Some(&old)).await;
    assert!(matches!(late, Err(StoreError::Fenced { fence: 1, current: 2, .. })), "{late:?}");
    assert!(matches!(store.renew_lock(&old, 32_000, ttl).await, Err(StoreError::Fenced { .. })));
    assert_eq!(store.records("r1").await.expect("records").len(), 1);
    store.renew_lock(&new, 32_000, ttl).await.expect("the new holder renews");
}

async fn a_newer_schema_is_refused(f: Fixture) {
    let store = f.open().await;
    let future = match f.backend() {
        Backend::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', 1, x'00', 0)"
        }
        Backend::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', TRUE, '\\x00'::bytea, 0)"
        }
    };
    sqlx::query(future).execute(store.pool()).await.expect("fake a newer migration");
    drop(store);
    assert!(matches!(
        Store::connect(&f.location).await.expect("connect").migrate().await,
        Err(StoreError::NewerSchema { .. })
    ));
    match Store::open(&f.location).await {
        Err(e @ StoreError::NewerSchema { found: 99, known: 16 }) => {
            assert!(e.to_string().contains("newer than this runbook knows"));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

async fn concurrent_acquisitions_give_the_lock_to_exactly_one(f: Fixture) {
    let first = f.open().await;
    for trial in 0..10 {
        let name = format!("inmova-{trial}");
        let mut tasks = Vec::new();
        for w in 0..8 {
            // Half the contenders on a second pool: another process.
            let store = if w % 2 == 0 { first.clone() } else { f.open().await };
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .acquire_lock(
                        &name,
                        &format!("r{w}"),
                        &format!("op{w}"),
                        "t0",
                        0,
                        Duration::from_secs(60),
                        None,
                    )
                    .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(lease) => {
                    assert_eq!(lease.fence, 1);
                    won += 1;
                }
                Err(StoreError::LockHeld(h)) => assert!(h.run_id.starts_with('r')),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(won, 1, "exactly one contender holds `{name}`");
    }
}

async fn decisions_are_checked_against_the_journal_in_the_same_transaction(f: Fixture) {
    let store = f.with_run("r1").await;
    store.append("r1", "t0", &started(), None).await.expect("append");
    // Eight deciders at once, each allowed only while no step was skipped yet: the checks
    // run inside the write transaction, so exactly one passes.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 { store.clone() } else { f.open().await };
        tasks.push(tokio::spawn(async move {
            let event = RunEvent::StepSkipped { step: format!("s{w}"), reason: "decided".into() };
            store
                .append_checked("r1", "t1", &event, |state| {
                    if state.steps.values().any(|s| s.status == runbook_core::journal::StepStatus::Skipped) {
                        Err("already decided".into())
                    } else {
                        Ok(())
                    }
                })
                .await
        }));
    }
    let mut passed = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => passed += 1,
            Err(StoreError::Refused(m)) => assert_eq!(m, "already decided"),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(passed, 1);
    assert!(matches!(
        store.append_checked("nope", "t2", &started(), |_| Ok(())).await,
        Err(StoreError::NoSuchRun(_))
    ));
}

async fn step_logs_are_kept_per_attempt(f: Fixture) {
    let store = f.with_run("r1").await;
    store.put_log("r1", "backup", 1, "out dumping\nerr warning: x\n").await.expect("log");
    store.put_log("r1", "backup", 2, "out dumped\n").await.expect("log");
    store.put_log("r1", "inc/step", 1, "out partial").await.expect("log");
    // A second copy of the same attempt (the run folder synced again) replaces the first.
    store.put_log("r1", "inc/step", 1, "out whole\n").await.expect("log");
    let logs = store.logs("r1").await.expect("logs");
    let keys: Vec<(&str, i64)> = logs.iter().map(|l| (l.step.as_str(), l.attempt)).collect();
    assert_eq!(keys, [("backup", 1), ("backup", 2), ("inc/step", 1)]);
    assert_eq!(logs[2].body, "out whole\n");
    assert!(store.put_log("no-such-run", "s", 1, "x").await.is_err(), "logs belong to a run");
}

async fn live_output_is_one_row_per_attempt_cut_to_its_bound_and_dropped_with_the_run(f: Fixture) {
    use runbook_store::{LIVE_TAIL_BYTES, LiveOutput};
    let store = f.with_run("r1").await;
    let row = |step: &str, attempt, seen, tail: &str| LiveOutput {
        step: step.into(),
        attempt,
        bytes_seen: seen,
        tail: tail.into(),
        updated_ms: 1,
    };
    store.publish_live("r1", &row("migrate", 1, 9, "out one\n")).await.expect("publish");
    store.publish_live("r1", &row("migrate", 1, 18, "out one\nout two\n")).await.expect("replace");
    store.publish_live("r1", &row("inc/step", 2, 5, "err x\n")).await.expect("publish");
    // A writer that ignored the bound: the reader cuts the tail to its end.
    let huge = format!("out {}\n", "é".repeat(LIVE_TAIL_BYTES));
    store.publish_live("r2", &row("big", 1, huge.len() as i64, &huge)).await.expect("publish");
    let rows = store.live_output("r1").await.expect("read");
    let keys: Vec<(&str, i64, i64)> =
        rows.iter().map(|r| (r.step.as_str(), r.attempt, r.bytes_seen)).collect();
    assert_eq!(keys, [("inc/step", 2, 5), ("migrate", 1, 18)]);
    assert_eq!(rows[1].tail, "out one\nout two\n");
    let big = store.live_output("r2").await.expect("read");
    assert!(big[0].tail.len() <= LIVE_TAIL_BYTES && big[0].tail.ends_with("é\n"), "{}", big[0].tail.len());
    assert_eq!(store.drop_live("r1").await.expect("drop"), 2);
    assert!(store.live_output("r1").await.expect("read").is_empty());
    assert_eq!(store.live_output("r2").await.expect("read").len(), 1, "another run's rows stay");
}

async fn kept_logs_are_vouched_for_by_log_kept_records(f: Fixture) {
    let store = f.open().await;
    // As the engine does it: every run holds a lock, named in its row.
    store
        .acquire_lock("run:r1", "r1", "ana", "t0", 1_000, Duration::from_secs(60), None)
        .await
        .expect("lock");
    store
        .create_run(&NewRun {
            run_id: "r1",
            runbook: "rollback-l3",
            operator: "ana@bastion",
            started_at: "t0",
            lock_name: Some("run:r1"),
        })
        .await
        .expect("create run");
    store.append("r1", "t1", &started(), None).await.expect("append");
    let log = |step, attempt, body| KeptLog { step, attempt, bytes: 100, body };
    let head = store
        .keep_logs("r1", "t2", &[log("backup", 1, "out dumping\n"), log("inc/step", 1, "out partial")])
        .await
        .expect("keep")
        .expect("records written");
    assert_eq!(head.seq, 3);
    // The same text again: nothing to write. Another text for a log already vouched for:
    // never replaced (issue 11, red team F8), nothing written.
    assert!(store.keep_logs("r1", "t3", &[log("backup", 1, "out dumping\n")]).await.expect("keep").is_none());
    let head = store.keep_logs("r1", "t4", &[log("inc/step", 1, "out whole\n")]).await.expect("keep");
    assert_eq!(head.map(|r| r.seq), None);
    let (histories, orphans) = store.histories(Some("r1")).await.expect("histories");
    assert!(orphans.is_empty());
    let findings: Vec<String> = histories[0].findings(None).iter().map(ToString::to_string).collect();
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(
        histories[0].logs.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["out dumping\n", "out partial"]
    );
    let kinds: Vec<&str> =
        store.records("r1").await.expect("records").iter().map(|r| r.event.kind()).collect();
    assert_eq!(kinds, ["run_started", "log_kept", "log_kept"]);
    // The row and its record go together: a run that does not exist keeps nothing.
    assert!(store.keep_logs("no-such-run", "t5", &[log("s", 1, "x")]).await.is_err());
    // The store's own summary follows the journal (started_at is the first record's time).
    assert_eq!(store.run("r1").await.expect("run").started_at, "t1");
}

async fn the_health_check_reports_versions_and_contents(f: Fixture) {
    let store = f.with_run("r1").await;
    store
        .acquire_lock("inmova", "r1", "ana", "t0", 1_000, Duration::from_secs(60), None)
        .await
        .expect("lock");
    let health = store.check(2_000).await.expect("check");
    assert_eq!((health.backend, health.applied, health.known), (f.backend(), 16, 16));
    assert_eq!((health.runs, health.live_locks), (1, 1));
    assert_eq!(store.check(100_000).await.expect("check").live_locks, 0, "the lease ran out");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    assert!((health.db_now_ms - now).abs() < 60_000, "the database clock is read: {}", health.db_now_ms);
}

/// Red team adv19b-4: a resume decided on the console is run as the decider once; a run
/// handed back after that resume (its engine died) is resumed as its submitter, not again as
/// the decider, who decided nothing more.
async fn a_decided_resume_is_the_decider_s_once(f: Fixture) {
    let store = f.with_run("r1").await;
    store
        .submit(&Submission {
            run_id: "r1",
            runbook: "rollback-l3",
            plan: "{}",
            labels: &[],
            submitted_by: "ana",
            submitted_at: "2026-11-30T10:00:00Z",
        })
        .await
        .expect("submit");
    let first = store.claim("w1", &[], 1_000, 0).await.expect("claim").expect("r1");
    assert_eq!(first.resume_by, None);
    store.release_claim("r1", "w1", Some(4), 0, "needs an operator").await.expect("done");
    assert_eq!(store.requeue_to_resume("r1", "bob", "resume decided by bob").await.expect("requeue"), None);
    let decided = store.claim("w1", &[], 2_000, 0).await.expect("claim").expect("r1");
    assert_eq!(decided.resume_by.as_deref(), Some("bob"));
    // Its engine died: handed back, then claimed by another worker.
    store.release_claim("r1", "w1", None, 0, "engine gone").await.expect("hand back");
    let again = store.claim("w2", &[], 3_000, 0).await.expect("claim").expect("r1");
    assert_eq!(again.resume_by, None, "a resume nobody decided is not the decider's");
}

/// Red team adv25 F3b: a queued run's plan never changes but in one way, its erasure (to
/// '') as its worker records that the engine refused the run before anything ran (exit 3).
/// Any other change of the plan, an erasure of a queued, claimed or otherwise ended run
/// included, is refused by the guard, on both backends (migration 16).
async fn a_queued_plan_is_erased_only_when_its_engine_refused_the_run(f: Fixture) {
    let store = f.open().await;
    for id in ["r1", "r2"] {
        store
            .submit(&Submission {
                run_id: id,
                runbook: "deploy",
                plan: "{\"params\":{\"note\":\"Pr0d-Passw0rd-9f3kQ2\"}}",
                labels: &[],
                submitted_by: "ana",
                submitted_at: "2026-11-30T10:00:00Z",
            })
            .await
            .expect("submit");
    }
    let refused_by_the_guard = |sql: &'static str| {
        let pool = store.pool().clone();
        async move { sqlx::query(sql).execute(&pool).await.is_err_and(|e| e.to_string().contains("never change")) }
    };
    // Queued: neither erased nor changed.
    assert!(refused_by_the_guard("UPDATE queue SET plan = '' WHERE run_id = 'r1'").await);
    assert!(
        refused_by_the_guard("UPDATE queue SET plan = '', state = 'done', exit_code = 3 WHERE run_id = 'r1'")
            .await
    );
    let claimed = store.claim("w1", &[], 1_000, 0).await.expect("claim").expect("a run");
    let other = if claimed.run_id == "r1" { "r2" } else { "r1" };
    // Claimed: not erased while it runs, nor with another end than a refusal.
    assert!(refused_by_the_guard("UPDATE queue SET plan = 'x' WHERE state = 'claimed'").await);
    assert!(
        refused_by_the_guard(
            "UPDATE queue SET plan = '', state = 'done', exit_code = 1 WHERE state = 'claimed'"
        )
        .await
    );
    // Another worker's refusal changes nothing.
    store.release_refused(&claimed.run_id, "w2", "refused").await.expect("no row of w2's");
    assert!(store.queued_plan(&claimed.run_id).await.expect("plan").is_some_and(|p| p.contains("Pr0d")));
    store.release_refused(&claimed.run_id, "w1", "refused: nothing ran").await.expect("refused");
    assert_eq!(store.queued_plan(&claimed.run_id).await.expect("plan").as_deref(), Some(""));
    assert_eq!(store.queued_plan(other).await.expect("plan").map(|p| p.contains("Pr0d")), Some(true));
    // Done: what is erased stays erased, and an ended run's plan is not erased either.
    assert!(refused_by_the_guard("UPDATE queue SET plan = 'back' WHERE plan = ''").await);
    let second = store.claim("w1", &[], 2_000, 0).await.expect("claim").expect("the other run");
    // A claimed run whose engine journaled anything ran: its plan is never erased (red team
    // adv28 A1), not even with the transition a refusal makes.
    store
        .create_run(&NewRun {
            run_id: &second.run_id,
            runbook: "deploy",
            operator: "ana",
            started_at: "2026-11-30T10:00:00Z",
            lock_name: None,
        })
        .await
        .expect("create run");
    store.append(&second.run_id, "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    let erase_ran =
        sqlx::query("UPDATE queue SET plan = '', state = 'done', exit_code = 3 WHERE run_id = $1")
            .bind(second.run_id.clone())
            .execute(store.pool())
            .await;
    assert!(erase_ran.is_err_and(|e| e.to_string().contains("never change")), "a run that ran lost its plan");
    store.release_refused(&second.run_id, "w1", "refused").await.expect_err("refused by the guard");
    store.release_claim(&second.run_id, "w1", Some(0), 0, "succeeded").await.expect("done");
    assert!(
        refused_by_the_guard(
            "UPDATE queue SET plan = '' WHERE run_id <> (SELECT run_id FROM queue WHERE plan = '')"
        )
        .await
    );
}

async fn queued_runs_are_claimed_once_by_workers_with_the_labels(f: Fixture) {
    let store = f.open().await;
    let gpu = vec!["prod".to_string()];
    for i in 0..20 {
        let labels = if i % 5 == 0 { gpu.clone() } else { Vec::new() };
        store
            .submit(&Submission {
                run_id: &format!("q{i:02}"),
                runbook: "deploy",
                plan: "{}",
                labels: &labels,
                submitted_by: "ana",
                submitted_at: &format!("2026-11-30T10:00:{i:02}Z"),
            })
            .await
            .expect("submit");
    }
    // Four workers without labels claim at once, on two pools: each entry once, oldest
    // first, and never one that needs `prod`.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = if w % 2 == 0 { store.clone() } else { f.open().await };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = store.claim(&format!("w{w}"), &[], 1_000, 0).await.expect("claim") {
                assert!(!c.started && c.earlier_claims == 0);
                got.push(c.run_id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.expect("task"));
    }
    claimed.sort();
    let expected: Vec<String> = (0..20).filter(|i| i % 5 != 0).map(|i| format!("q{i:02}")).collect();
    assert_eq!(claimed, expected);
    // A worker with the label takes the rest.
    let first = store.claim("w9", &gpu, 1_000, 0).await.expect("claim").expect("a prod run");
    assert_eq!(first.run_id, "q00");
    // Only the claiming worker releases; a hand-back is claimable again after its delay.
    store.release_claim("q00", "w0", Some(0), 0, "not mine").await.expect("release");
    store.release_claim("q00", "w9", None, 5_000, "lock held").await.expect("hand back");
    assert_eq!(
        store.claim("w9", &gpu, 2_000, 0).await.expect("claim").map(|c| c.run_id).as_deref(),
        Some("q05")
    );
    let again = store.claim("w9", &gpu, 6_000, 0).await.expect("claim").expect("handed back");
    assert_eq!((again.run_id.as_str(), again.earlier_claims), ("q00", 1));
    // A worker that stops heartbeating loses its claims to the next worker.
    store.heartbeat("w9", 7_000).await.expect("heartbeat");
    assert!(store.claim("w1", &gpu, 8_000, 500).await.expect("claim").is_some_and(|c| c.run_id == "q10"));
    let stolen = store.claim("w1", &gpu, 20_000, 10_000).await.expect("claim").expect("stale claim");
    assert_eq!(stolen.run_id, "q00");
    store.release_claim("q00", "w1", Some(0), 0, "succeeded").await.expect("done");
    let queue = store.queue().await.expect("queue");
    let q00 = queue.iter().find(|e| e.run_id == "q00").expect("q00");
    assert_eq!((q00.state.as_str(), q00.exit_code, q00.worker.as_deref()), ("done", Some(0), Some("w1")));
    assert!(store.claim("w1", &gpu, 99_000, 99_000).await.expect("claim").is_some_and(|c| c.run_id != "q00"));
    // A queued run can be taken off the queue; a claimed or finished one cannot.
    store
        .submit(&Submission {
            run_id: "q99",
            runbook: "deploy",
            plan: "{}",
            labels: &[],
            submitted_by: "ana",
            submitted_at: "2026-11-30T11:00:00Z",
        })
        .await
        .expect("submit");
    assert_eq!(store.cancel_queued("q99", "cancelled by ana").await.expect("cancel"), None);
    assert_eq!(store.cancel_queued("q99", "again").await.expect("cancel").as_deref(), Some("done"));
    assert_eq!(store.cancel_queued("q01", "late").await.expect("cancel").as_deref(), Some("claimed"));
    assert!(matches!(store.cancel_queued("nope", "x").await, Err(StoreError::NoSuchRun(_))));
    assert!(store.claim("w1", &[], 999_000, 0).await.expect("claim").is_none_or(|c| c.run_id != "q99"));
}

/// Issue 11: exactly one engine holds a run at a time, decided in the acquiring
/// transaction. Many engines of the same run race for its suspended lock (as `resume`s after
/// an approval do); a live lease refuses the run's own engines; an engine that read the
/// journal before another engine extended it is refused even once the lock is free; a new
/// run cannot take an existing run's id.
async fn one_engine_holds_a_run_decided_in_one_transaction(f: Fixture) {
    let first = f.open().await;
    let second = f.open().await;
    let ttl = Duration::from_secs(60);
    let trials: usize = std::env::var("RUNBOOK_STORE_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(12);
    for trial in 0..trials {
        let run = format!("run-{trial}");
        let lock = format!("run:{run}");
        first
            .create_run(&NewRun {
                run_id: &run,
                runbook: "rollback-l3",
                operator: "ana",
                started_at: "t0",
                lock_name: Some(&lock),
            })
            .await
            .expect("create run");
        let engine =
            first.acquire_lock(&lock, &run, "ana (pid 1 on a)", "t0", 1_000, ttl, None).await.expect("lock");
        first.append(&run, "t0", &started(), Some(&engine)).await.expect("started");
        first.suspend_lock(&engine, "suspended: waits for approval").await.expect("suspend");
        let head = first.records(&run).await.expect("records").len() as u64;

        // A suspended run resumed by many engines at once: one wins.
        let contenders = 4 + trial % 9;
        let mut tasks = Vec::new();
        for w in 0..contenders {
            let store = if w % 2 == 0 { first.clone() } else { second.clone() };
            let (run, lock) = (run.clone(), lock.clone());
            tasks.push(tokio::spawn(async move {
                let holder = format!("op{w} (pid {w} on b)");
                let a = Acquire {
                    name: &lock,
                    run_id: &run,
                    holder: &holder,
                    now: "t1",
                    now_ms: 2_000,
                    ttl,
                    steal_from: None,
                    head: Head::At(head),
                };
                (holder.clone(), store.acquire(&a).await)
            }));
        }
        let mut winners = Vec::new();
        let mut refused = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                (holder, Ok(lease)) => winners.push((holder, lease)),
                (_, Err(StoreError::LockHeld(h))) => refused.push(h),
                (_, Err(e)) => panic!("trial {trial}: unexpected {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "trial {trial}: exactly one engine holds run {run}");
        let (holder, lease) = winners.pop().expect("a winner");
        assert_eq!(lease.fence, 2);
        for h in &refused {
            assert_eq!(
                (h.run_id.as_str(), h.holder.as_str()),
                (run.as_str(), holder.as_str()),
                "names the holder"
            );
        }

        // The same run's live lease refuses its own engines, and a wrong "dead" holder.
        for steal in [None, Some("ana (pid 1 on a)")] {
            let late = second
                .acquire(&Acquire {
                    name: &lock,
                    run_id: &run,
                    holder: "late (pid 99 on c)",
                    now: "t2",
                    now_ms: 3_000,
                    ttl,
                    steal_from: steal,
                    head: Head::At(head),
                })
                .await;
            assert!(matches!(&late, Err(StoreError::LockHeld(h)) if h.holder == holder), "{late:?}");
        }
        // A new run with this id is refused too.
        let new = second.acquire(&Acquire { head: Head::New, ..acquire(&lock, &run, 3_000, ttl) }).await;
        assert!(matches!(new, Err(StoreError::LockHeld(_))), "{new:?}");

        // The winner writes and stops; an engine that read the journal before is refused
        // even though the lock is free, and one that read it after takes it.
        first.append(&run, "t3", &step(1), Some(&lease)).await.expect("winner writes");
        first.release_lock(&lease).await.expect("release");
        let stale =
            second.acquire(&Acquire { head: Head::At(head), ..acquire(&lock, &run, 4_000, ttl) }).await;
        assert!(
            matches!(&stale, Err(StoreError::RunChanged { read: Some(r), found: Some(n), .. }) if *r == head && *n == head + 1),
            "{stale:?}"
        );
        let new = second.acquire(&Acquire { head: Head::New, ..acquire(&lock, &run, 4_000, ttl) }).await;
        assert!(matches!(&new, Err(StoreError::RunChanged { read: None, .. })), "{new:?}");
        let fresh =
            second.acquire(&Acquire { head: Head::At(head + 1), ..acquire(&lock, &run, 4_000, ttl) }).await;
        let fresh = fresh.expect("an engine that read the latest journal");
        assert_eq!(fresh.fence, 3, "refusals do not move the fence");
        // Its holder proved dead on its host is replaced, by exactly that holder's name.
        let after = second
            .acquire(&Acquire {
                steal_from: Some("next (pid 5 on b)"),
                head: Head::At(head + 1),
                ..acquire(&lock, &run, 5_000, ttl)
            })
            .await
            .expect("replaces a dead holder");
        assert_eq!(after.fence, 4);
        assert!(matches!(first.renew_lock(&fresh, 5_000, ttl).await, Err(StoreError::Fenced { .. })));
    }
}

fn acquire<'a>(lock: &'a str, run: &'a str, now_ms: i64, ttl: Duration) -> Acquire<'a> {
    Acquire {
        name: lock,
        run_id: run,
        holder: "next (pid 5 on b)",
        now: "t",
        now_ms,
        ttl,
        steal_from: None,
        head: Head::Any,
    }
}

/// Issue 13: the lock holder is typed. An engine's holder and a suspended run's read back
/// as what was written, and the suspended one names its run and the steps it waits on.
#[tokio::test]
async fn a_lock_holder_reads_back_typed() {
    use runbook_store::Holder;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sqlite(&dir.path().join("state.db")).await.expect("open");
    let (run, lock) = ("r-13", "run:r-13");
    store
        .create_run(&NewRun {
            run_id: run,
            runbook: "rb",
            operator: "ana",
            started_at: "t0",
            lock_name: Some(lock),
        })
        .await
        .expect("create run");
    let engine =
        Holder::Engine { operator: "ana".into(), pid: 7, host: "db-1".into(), process: Some("b/n/1".into()) };
    let lease = store
        .acquire_lock(lock, run, &engine.to_string(), "t0", 1_000, Duration::from_secs(60), None)
        .await
        .expect("lock");
    let held = store.lock_of_run(run).await.expect("lock of run").expect("held");
    assert_eq!(held.parsed_holder(), engine);
    assert!(!held.parsed_holder().is_suspended());
    store.suspend_run_lock(&lease, &["gate".into(), "prod/gate".into()]).await.expect("suspend");
    let held = store.lock_of_run(run).await.expect("lock of run").expect("held");
    assert_eq!(
        held.parsed_holder(),
        Holder::Suspended { run: run.into(), waiting: vec!["gate".into(), "prod/gate".into()] }
    );
    assert!(held.parsed_holder().is_suspended());
    assert_eq!(held.lease_until, runbook_store::SUSPENDED_LEASE);
}

/// Issue 17: every decision about a schedule (fired, skipped, missed, overdue) is one record
/// of its journal, written with the row that decides it; a decision taken by another writer
/// first records nothing; the journal verifies with the run journal's verifier.
async fn schedule_decisions_are_journaled_once_each_and_chained(f: Fixture) {
    use runbook_core::schedule_journal::{ScheduleEvent, SkipReason};
    use runbook_store::{Fire, Fired};
    let store = f.open().await;
    let fire =
        |due_ms| Fire { schedule: "nightly", due_ms, fired_by: "w1", fired_at: "2026-01-01T00:00:00Z" };
    let job = Submission {
        run_id: "r1",
        runbook: "backup",
        plan: "{}",
        labels: &[],
        submitted_by: "w1",
        submitted_at: "2026-01-01T00:00:00Z",
    };
    assert_eq!(store.fire(&fire(1_000), Some(&job), "").await.expect("fire"), Fired::Queued);
    assert_eq!(store.fire(&fire(1_000), None, "late").await.expect("again"), Fired::Taken);
    assert_eq!(
        store.fire(&fire(2_000), None, "run r1 is still running").await.expect("skip"),
        Fired::Skipped
    );
    assert_eq!(
        store
            .fire(&fire(3_000), None, &format!("{}RB104: changed", runbook_store::NOT_QUEUED))
            .await
            .expect("refuse"),
        Fired::Skipped
    );
    assert_eq!(
        store.fire(&fire(4_000), None, &format!("{}1 left out", runbook_store::MISSED)).await.expect("miss"),
        Fired::Skipped
    );
    assert!(store.claim_alert("nightly", 1_000, 0, "w2", "2026-01-01T00:00:05Z").await.expect("alert"));
    assert!(
        !store.claim_alert("nightly", 1_000, 0, "w1", "2026-01-01T00:00:05Z").await.expect("alert again")
    );
    let records = store.schedule_records("nightly").await.expect("records");
    let kinds: Vec<&str> = records.iter().map(|r| r.event.kind()).collect();
    assert_eq!(kinds, ["fired", "skipped", "skipped", "missed", "overdue"]);
    assert_eq!(
        records[0].event,
        ScheduleEvent::Fired { due: "1970-01-01T00:00:01Z".into(), run_id: "r1".into(), worker: "w1".into() }
    );
    assert!(matches!(records[1].event, ScheduleEvent::Skipped { reason: SkipReason::Overlap, .. }));
    assert!(
        matches!(&records[2].event, ScheduleEvent::Skipped { reason: SkipReason::Refused, note, .. } if note == "RB104: changed")
    );
    let journals = store.schedule_journals(None).await.expect("journals");
    assert_eq!(journals.len(), 1);
    assert_eq!(journals[0].findings(), Vec::<String>::new());
    assert!(store.schedule_records("weekly").await.expect("none").is_empty());
}

/// Red team adv23 F2: the first worker to watch a schedule whose journal is empty appends
/// its `watched` record; of 16 workers racing on two pools exactly one does, and every one
/// gets that record back. A schedule whose journal began before (a fire) gets no `watched`
/// record: its first record answers. A `watched` record anywhere but first is a finding.
async fn a_schedule_is_watched_once_however_many_workers_race(f: Fixture) {
    use runbook_core::schedule_journal::{ScheduleEvent, watched_from};
    use runbook_store::{Fire, Fired};
    let first = f.open().await;
    let second = f.open().await;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = if w % 2 == 0 { first.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            let since = format!("2026-01-01T00:00:{w:02}.000Z");
            store
                .watch_schedule("nightly", &since, &format!("w{w}"), "2026-01-01T00:01:00Z")
                .await
                .expect("watch")
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.expect("task"));
    }
    let records = first.schedule_records("nightly").await.expect("records");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].event.kind(), "watched");
    assert!(got.iter().all(|r| *r == records[0]), "every worker gets the one record back");
    // The since of the worker whose record it is.
    let ScheduleEvent::Watched { since, worker } = &records[0].event else { panic!("{records:?}") };
    let w: u32 = worker.trim_start_matches('w').parse().expect("a worker of the race");
    assert_eq!(since, &format!("2026-01-01T00:00:{w:02}.000Z"));
    assert_eq!(watched_from(&records[0]), Some(since.as_str()));
    // Later decisions follow it; watching again appends nothing.
    let fire = Fire { schedule: "nightly", due_ms: 1_000, fired_by: "w1", fired_at: "2026-01-01T00:02:00Z" };
    assert_eq!(
        first.fire(&fire, None, &format!("{}1 left out", runbook_store::MISSED)).await.expect("miss"),
        Fired::Skipped
    );
    let again =
        second.watch_schedule("nightly", "2026-02-01T00:00:00.000Z", "w99", "2026-02-01T00:00:01Z").await;
    assert_eq!(again.expect("watch again"), records[0]);
    let records = first.schedule_records("nightly").await.expect("records");
    let kinds: Vec<&str> = records.iter().map(|r| r.event.kind()).collect();
    assert_eq!(kinds, ["watched", "missed"]);
    // A journal begun before `watched` records: its first record answers, nothing is added.
    let fire = Fire { schedule: "weekly", due_ms: 2_000, fired_by: "w1", fired_at: "2026-01-01T00:03:00Z" };
    assert_eq!(
        first.fire(&fire, None, &format!("{}1 left out", runbook_store::MISSED)).await.expect("miss"),
        Fired::Skipped
    );
    let old = first.watch_schedule("weekly", "2026-02-01T00:00:00.000Z", "w2", "2026-02-01T00:00:01Z").await;
    let old = old.expect("watch");
    assert_eq!((old.seq, old.event.kind()), (1, "missed"));
    assert_eq!(watched_from(&old), Some(old.ts.as_str()));
    assert_eq!(first.schedule_records("weekly").await.expect("records").len(), 1);
    let journals = first.schedule_journals(None).await.expect("journals");
    assert!(
        journals.iter().all(|j| j.findings().is_empty()),
        "{:?}",
        journals.iter().map(|j| j.findings()).collect::<Vec<_>>()
    );
    // A `watched` record that is not the journal's first (no worker writes one) is named.
    let late = ScheduleEvent::Watched { since: "2026-01-01T00:00:00.000Z".into(), worker: "mallory".into() };
    first.record_schedule_event("nightly", "2026-03-01T00:00:00Z", &late).await.expect("append");
    let journal = first.schedule_journals(Some("nightly")).await.expect("journal").pop().expect("one");
    assert_eq!(journal.findings(), ["record 3: a `watched` record is only ever a journal's first"]);
}

/// Red team adv24 S1, S2: of 16 workers racing to append a `rewatched` record after the
/// same watch record, exactly one does; a rewatch after a record that is no longer the last
/// watch record, or once a due time was taken, appends nothing. `watch_records` lists the
/// first record and every `rewatched` one; a `rewatched` record first is a finding. The
/// store says when it began (its first migration): not in the future, not before 2020.
async fn a_first_watch_not_believed_is_rewatched_once_however_many_workers_race(f: Fixture) {
    use runbook_core::schedule_journal::ScheduleEvent;
    use runbook_store::{Fire, Fired};
    let first = f.open().await;
    let second = f.open().await;
    let began = first.began_ms().await.expect("began").expect("a migrated store says when it began");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    assert!(began <= now + 2_000 && began > 1_577_836_800_000, "{began} vs {now}");
    let ahead = first
        .watch_schedule("nightly", "2099-01-01T00:00:00.000Z", "ahead", "2099-01-01T00:00:00.010Z")
        .await
        .expect("watch");
    assert_eq!(ahead.seq, 1);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = if w % 2 == 0 { first.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            let since = format!("2026-01-01T00:00:{w:02}.000Z");
            store
                .rewatch_schedule(
                    "nightly",
                    1,
                    &since,
                    "record 1 is ahead",
                    &format!("w{w}"),
                    "2026-01-01T00:01:00Z",
                )
                .await
                .expect("rewatch")
        }));
    }
    let mut appended = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.expect("task") {
            appended.push(r);
        }
    }
    assert_eq!(appended.len(), 1, "{appended:?}");
    let watches = first.watch_records("nightly").await.expect("watches");
    let kinds: Vec<(u64, &str)> = watches.iter().map(|r| (r.seq, r.event.kind())).collect();
    assert_eq!(kinds, [(1, "watched"), (2, "rewatched")]);
    assert_eq!(watches[1], appended[0]);
    // Judged against record 1 again: nothing (another worker was first).
    let late =
        second.rewatch_schedule("nightly", 1, "2026-01-02T00:00:00.000Z", "x", "w99", "2026-01-02T00:00:01Z");
    assert_eq!(late.await.expect("rewatch"), None);
    // A due time taken: no rewatch however judged.
    let fire = Fire { schedule: "nightly", due_ms: 1_000, fired_by: "w1", fired_at: "2026-01-01T00:02:00Z" };
    assert_eq!(
        first.fire(&fire, None, &format!("{}1 left out", runbook_store::MISSED)).await.expect("miss"),
        Fired::Skipped
    );
    let taken =
        second.rewatch_schedule("nightly", 2, "2026-01-02T00:00:00.000Z", "x", "w99", "2026-01-02T00:00:01Z");
    assert_eq!(taken.await.expect("rewatch"), None);
    let journals = first.schedule_journals(Some("nightly")).await.expect("journals");
    assert!(journals.iter().all(|j| j.findings().is_empty()), "{:?}", journals[0].findings());
    // A `rewatched` record as a journal's first (no worker writes one) is named.
    let forged = ScheduleEvent::Rewatched {
        since: "2026-01-01T00:00:00.000Z".into(),
        doubt: "x".into(),
        worker: "mallory".into(),
    };
    first.record_schedule_event("weekly", "2026-03-01T00:00:00Z", &forged).await.expect("append");
    let journal = first.schedule_journals(Some("weekly")).await.expect("journal").pop().expect("one");
    assert_eq!(journal.findings(), ["record 1: a `rewatched` record is never a journal's first"]);
}

/// Red team adv24 (deleted history): the guard triggers are read from the migrations; a
/// migrated store holds every one (no finding, nothing to put back); the health check
/// agrees.
async fn dropped_guards_are_found_and_put_back(f: Fixture) {
    let store = f.open().await;
    let guards = store.backend().guards();
    assert!(guards.len() >= 21, "{guards:?}");
    assert!(
        guards.iter().any(|(_, n, _)| n == "schedule_fires_no_update" || n == "schedule_fires_append_only")
    );
    assert!(guards.iter().all(|(_, n, s)| s.starts_with("CREATE TRIGGER ") && s.contains(n.as_str())));
    assert_eq!(store.guard_findings().await.expect("findings"), Vec::<String>::new());
    assert_eq!(store.restore_guards().await.expect("restore"), Vec::<String>::new());
    let health = store.check(0).await.expect("health");
    assert_eq!(health.missing_guards, Vec::<String>::new());
}

/// Issue 17, S3: the delivery attempts of an overdue notice are claimed one at a time (a
/// live lease or a backoff makes every other claim a no-op), each outcome is journaled with
/// its attempt, a claim whose lease expired is taken over and journaled as lapsed, a lapsed
/// attempt may still record its delivery, and a delivered notice is never claimed again.
/// The outcome is set once: the guard refuses rewriting it.
async fn overdue_notices_are_claimed_one_attempt_at_a_time_until_delivered(f: Fixture) {
    use runbook_core::schedule_journal::ScheduleEvent;
    let store = f.open().await;
    let other = f.open().await;
    let at = "2026-01-01T00:00:05Z";
    assert_eq!(store.claim_notice("nightly", 0, 100, "w1", at).await.expect("no alert"), None);
    assert!(store.claim_alert("nightly", 1_000, 0, "w1", at).await.expect("alert"));
    let first =
        store.claim_notice("nightly", 10_000, 100, "w1", at).await.expect("claim").expect("attempt 1");
    assert_eq!((first.since_ms, first.reminder, first.attempt), (1_000, 0, 1));
    // Held under a live lease: nobody else claims.
    assert_eq!(other.claim_notice("nightly", 10_050, 100, "w2", at).await.expect("held"), None);
    store.record_notice_outcome("nightly", &first, Some("HTTP 503"), 11_000, "w1", at).await.expect("failed");
    // Backing off until 11 000.
    assert_eq!(other.claim_notice("nightly", 10_999, 100, "w2", at).await.expect("backoff"), None);
    let second =
        other.claim_notice("nightly", 11_000, 100, "w2", at).await.expect("claim").expect("attempt 2");
    assert_eq!(second.attempt, 2);
    // w2 dies with attempt 2 in flight: once its lease expired, w1 takes over.
    assert_eq!(store.claim_notice("nightly", 11_099, 100, "w1", at).await.expect("held"), None);
    let third =
        store.claim_notice("nightly", 11_100, 100, "w1", at).await.expect("claim").expect("attempt 3");
    assert_eq!(third.attempt, 3);
    store.record_notice_outcome("nightly", &third, None, 0, "w1", at).await.expect("delivered");
    // w2's delivery, late, is kept too (at least once); a late failure is not.
    other.record_notice_outcome("nightly", &second, None, 0, "w2", at).await.expect("late delivery");
    assert_eq!(
        store.record_notice_outcome("nightly", &third, Some("HTTP 500"), 0, "w1", at).await.expect("late"),
        None
    );
    assert_eq!(store.claim_notice("nightly", 99_000, 100, "w1", at).await.expect("settled"), None);
    let state = store.notice_state("nightly").await.expect("state").expect("a notice");
    assert_eq!((state.delivered.is_some(), state.failed, state.in_flight), (true, 1, None));
    let records = store.schedule_records("nightly").await.expect("records");
    let attempts: Vec<(&str, Option<u32>, &str)> = records
        .iter()
        .map(|r| match &r.event {
            ScheduleEvent::Notified { attempt, worker, .. } => ("notified", *attempt, worker.as_str()),
            ScheduleEvent::NotifyFailed { attempt, worker, .. } => {
                ("notify_failed", *attempt, worker.as_str())
            }
            other => (other.kind(), None, other.worker()),
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("overdue", None, "w1"),
            ("notify_failed", Some(1), "w1"),
            ("notify_failed", Some(2), "w2"),
            ("notified", Some(3), "w1"),
            ("notified", Some(2), "w2"),
        ]
    );
    assert!(
        matches!(&records[2].event, ScheduleEvent::NotifyFailed { failure: Some(f), .. } if f == runbook_store::LAPSED)
    );
    // A new reminder is a new notice, claimed from attempt 1.
    assert!(store.claim_alert("nightly", 1_000, 1, "w1", at).await.expect("reminder"));
    let again =
        store.claim_notice("nightly", 99_000, 100, "w1", at).await.expect("claim").expect("reminder 1");
    assert_eq!((again.reminder, again.attempt), (1, 1));
    let rewrite = sqlx::query("UPDATE schedule_notices SET outcome = 'failed' WHERE outcome = 'delivered'")
        .execute(store.pool())
        .await;
    assert!(rewrite.is_err(), "an outcome was rewritten");
    let delete = sqlx::query("DELETE FROM schedule_notices").execute(store.pool()).await;
    assert!(delete.is_err(), "a notice was deleted");
    let journals = store.schedule_journals(None).await.expect("journals");
    assert_eq!(journals[0].findings(), Vec::<String>::new());
}
