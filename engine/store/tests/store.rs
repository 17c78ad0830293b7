//! The SQLite store on real files: ordering, durability settings, append-only rows,
//! tamper detection, and locks with fencing.

use std::collections::BTreeMap;
use std::time::Duration;

use runbook_core::journal::{self, RunEvent, RunStatus};
use runbook_store::{NewRun, Store, StoreError};
use sqlx::Row;

fn started() -> RunEvent {
    RunEvent::RunStarted {
        runbook: "rollback-l3".into(),
        file: "/srv/runbooks/rollback-l3.toml".into(),
        files: vec![],
        params: BTreeMap::new(),
        operator: "ana@bastion".into(),
        engine_version: "0.1.0".into(),
    }
}

fn step(i: usize) -> RunEvent {
    RunEvent::StepStarted { step: format!("s{i}"), attempt: 1 }
}

async fn store_with_run(dir: &tempfile::TempDir, run_id: &str) -> Store {
    let store = Store::open(&dir.path().join("state.db")).await.expect("open");
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

#[tokio::test]
async fn opens_with_durable_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.db")).await.expect("open");
    let mode: String =
        sqlx::query("PRAGMA journal_mode").fetch_one(store.pool()).await.expect("pragma").get(0);
    let sync: i64 = sqlx::query("PRAGMA synchronous").fetch_one(store.pool()).await.expect("pragma").get(0);
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
    // Reopening is a no-op migration.
    drop(store);
    Store::open(&dir.path().join("state.db")).await.expect("reopen");
}

#[tokio::test]
async fn appends_are_chained_and_read_back_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_run(&dir, "r1").await;
    store.append("r1", "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    for i in 0..20 {
        store.append("r1", "2026-11-30T10:00:01Z", &step(i), None).await.expect("append");
    }
    let finished = RunEvent::RunFinished { status: RunStatus::Succeeded };
    let last = store.append("r1", "2026-11-30T10:00:02Z", &finished, None).await.expect("append");
    let records = store.records("r1").await.expect("records");
    assert_eq!(records.len(), 22);
    assert_eq!(journal::verify(&records, Some(&last.hash)), Ok(()));
    let runs = store.runs().await.expect("runs");
    assert_eq!(runs[0].status, "succeeded");
    assert_eq!(runs[0].last_seq, 22);
    assert_eq!(runs[0].last_hash.as_deref(), Some(last.hash.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_leave_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = store_with_run(&dir, "r1").await;
    // A second pool on the same file behaves like a second process.
    let second = Store::open(&dir.path().join("state.db")).await.expect("open again");
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

#[tokio::test]
async fn journal_rows_cannot_be_changed_or_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_run(&dir, "r1").await;
    store.append("r1", "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    let update = sqlx::query("UPDATE events SET ts = 'x' WHERE run_id = 'r1'").execute(store.pool()).await;
    assert!(update.is_err_and(|e| e.to_string().contains("append-only")));
    let delete = sqlx::query("DELETE FROM events").execute(store.pool()).await;
    assert!(delete.is_err_and(|e| e.to_string().contains("append-only")));
}

#[tokio::test]
async fn tampering_past_the_triggers_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_run(&dir, "r1").await;
    store.append("r1", "2026-11-30T10:00:00Z", &started(), None).await.expect("append");
    for i in 0..5 {
        store.append("r1", "2026-11-30T10:00:01Z", &step(i), None).await.expect("append");
    }
    // Someone with the file drops the triggers and edits a row.
    sqlx::query("DROP TRIGGER events_no_update").execute(store.pool()).await.expect("drop trigger");
    let forged = serde_json::to_string(&RunEvent::StepSkipped { step: "s2".into(), reason: "x".into() })
        .expect("json");
    sqlx::query("UPDATE events SET body = ? WHERE run_id = 'r1' AND seq = 4")
        .bind(forged)
        .execute(store.pool())
        .await
        .expect("tamper");
    let records = store.records("r1").await.expect("records");
    let err = journal::verify(&records, None).expect_err("tampering is detected");
    assert_eq!(err.seq, 4);
}

#[tokio::test]
async fn a_live_lock_is_refused_and_names_its_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_run(&dir, "r1").await;
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

#[tokio::test]
async fn an_expired_holder_is_fenced_out_after_a_takeover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_run(&dir, "r1").await;
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
    // r1 stalls past its lease; r2 takes the lock over.
    let new = store
        .acquire_lock("inmova-production", "r2", "luis@laptop (pid 20)", "t1", 31_000, ttl, None)
        .await
        .expect("takeover of an expired lease");
    assert_eq!(new.fence, 2);
    assert_eq!(new.took_over.as_ref().map(|h| h.run_id.as_str()), Some("r1"));
    // The stalled run wakes up: none of its writes get through.
    let late = store.append("r1", "t2", &step(1), Some(&old)).await;
    assert!(matches!(late, Err(StoreError::Fenced { fence: 1, current: 2, .. })), "{late:?}");
    assert!(matches!(store.renew_lock(&old, 32_000, ttl).await, Err(StoreError::Fenced { .. })));
    assert_eq!(store.records("r1").await.expect("records").len(), 1);
    store.renew_lock(&new, 32_000, ttl).await.expect("the new holder renews");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.expect("open");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', 1, x'00', 0)",
    )
    .execute(store.pool())
    .await
    .expect("fake a newer migration");
    drop(store);
    match Store::open(&path).await {
        Err(e @ StoreError::NewerSchema { found: 99, known: 1 }) => {
            assert!(e.to_string().contains("newer than this runbook knows"));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}
