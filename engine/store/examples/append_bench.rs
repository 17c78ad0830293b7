//! Journal append throughput and latency, SQLite against PostgreSQL, with the durability
//! each ships with (SQLite: WAL + `synchronous=FULL`; PostgreSQL: a throwaway cluster with
//! its defaults, fsync and synchronous commit on). A benchmark, not a test:
//!
//!     cargo run --release -p runbook-store --example append_bench [EVENTS]
//!
//! One writer appends EVENTS events to one run (each a transaction, as a run does), then 8
//! writers append EVENTS/8 each to 8 runs at once (8 engines sharing a store).

use std::time::{Duration, Instant};

use runbook_core::journal::RunEvent;
use runbook_store::{Location, NewRun, Store};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let events: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Location::Sqlite(dir.path().join("state.db"));
    let pg =
        tokio::task::spawn_blocking(runbook_sandbox::peers::Postgres::start_durable).await.expect("postgres");
    let postgres = Location::Postgres(pg.url("postgres"));
    Store::connect(&postgres).await.expect("connect").migrate().await.expect("migrate");
    println!("| store | writers | events | events/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for (name, location) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        for writers in [1usize, 8] {
            let store = Store::open(location).await.expect("open");
            let per = events / writers;
            let started = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..writers {
                let store = store.clone();
                let run = format!("{name}-{writers}-{w}");
                tasks.push(tokio::spawn(async move {
                    let new = NewRun {
                        run_id: &run,
                        runbook: "bench",
                        operator: "bench",
                        started_at: "t",
                        lock_name: None,
                    };
                    store.create_run(&new).await.expect("run");
                    let mut lat = Vec::with_capacity(per);
                    for i in 0..per {
                        let event = RunEvent::StepStarted { step: format!("s{i}"), attempt: 1 };
                        let t = Instant::now();
                        store.append(&run, "2026-11-30T10:00:00Z", &event, None).await.expect("append");
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut lat: Vec<Duration> = Vec::new();
            for t in tasks {
                lat.extend(t.await.expect("task"));
            }
            let took = started.elapsed();
            lat.sort();
            let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
            println!(
                "| {name} | {writers} | {} | {:.0} | {:.2} ms | {:.2} ms |",
                lat.len(),
                lat.len() as f64 / took.as_secs_f64(),
                pct(0.50).as_secs_f64() * 1000.0,
                pct(0.99).as_secs_f64() * 1000.0
            );
        }
    }
}
