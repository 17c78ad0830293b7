//! Red team adv27 S1: another process holding a SQLite store's write lock for longer than
//! the pool's wait (30 s: a process stopped between its `BEGIN IMMEDIATE` and `COMMIT`, a
//! long migration) only delays a run. With one connection for every store call of the
//! engine, a step's last live-output write (best effort) took that connection into
//! SQLite's busy wait, the journal's append behind it failed with "pool timed out", and the
//! run died with a succeeded step in doubt (an idempotent one was run again by `resume`).
//! The journal's appends have a connection of their own (ARCHITECTURE.md, "the journal
//! never waits behind a best-effort write").

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::Scratch;

const CHAIN: &str = r#"[runbook]
name = "chain"

[steps.first]
run = "sleep 3; echo first done; echo ran >> first.count"
idempotent = true

[steps.second]
needs = ["first"]
run = "echo second ran"
"#;

/// `BEGIN IMMEDIATE` on the store from another process, held for `secs`, then rolled back.
const HOLD: &str = r#"
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")
"#;

/// `runbook run r.toml --yes` in `s` (its store migrated first), with `env`; `after` into the
/// run another process takes the store's write lock for `hold`. The engine's output.
fn run_with_the_lock_held(
    s: &Scratch,
    env: &[(&str, &str)],
    after: Duration,
    hold: Duration,
) -> (Option<i32>, String, String) {
    std::fs::create_dir_all(s.path().join("state")).expect("state folder");
    crate::support::ok(&s.cmd(&["state", "migrate"], &[]), 0);
    let engine = s
        .command(&["run", "r.toml", "--yes"], env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engine");
    std::thread::sleep(after);
    let mut holder = Command::new("python3")
        .args(["-c", HOLD, &s.state(), &hold.as_secs().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = engine.wait_with_output().expect("engine ends");
    let _ = holder.wait();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_write_lock_held_longer_than_the_pool_waits_only_delays_a_run() {
    let s = Scratch::new(CHAIN);
    // One second in: `first` is running, and prints its last line and ends two seconds later,
    // while the lock is held.
    let (code, stdout, stderr) =
        run_with_the_lock_held(&s, &[], Duration::from_secs(1), Duration::from_secs(35));
    assert_eq!(code, Some(0), "the run waits for the lock, then succeeds: {stdout}{stderr}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    let count = std::fs::read_to_string(s.path().join("first.count")).expect("first ran");
    assert_eq!(count, "ran\n", "first ran once");
}

const LONG_STEP: &str = r#"[runbook]
name = "watchdog"

[steps.migrate]
retry = { attempts = 2, delay = "1s" }
run = '''
echo started >> migrate.count
for i in $(seq 1 150); do echo "migrating $i"; sleep 0.2; done
'''
"#;

/// Red team adv27 S2: a renewal of the run's lease that the store does not answer in time
/// (another process holds its write lock) is the lease's loss: the engine ends the steps
/// itself and stops, the attempt in doubt. Before, the reaper's watchdog killed the step,
/// the renewal then went through, and the dispatcher took the kill for the step's failure
/// and ran it again (`retry`): a step killed mid-way, re-run without an operator.
#[test]
fn a_renewal_the_store_does_not_answer_stops_the_run_without_retrying_the_step() {
    let s = Scratch::new(LONG_STEP);
    // An 8-s lease: renewed every 2 s, the watchdog at 6 s, a renewal given 5 s.
    let lease = [("RUNBOOK_LEASE_TTL", "8s")];
    let (code, stdout, stderr) =
        run_with_the_lock_held(&s, &lease, Duration::from_secs(3), Duration::from_secs(12));
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("did not renew lock"), "the engine says why it stopped: {stdout}{stderr}");
    insta::with_settings!({ filters => vec![(r"\d{8}T\d{6}Z-[0-9a-f]{8}", "[RUN]")] }, {
        insta::assert_snapshot!("renewal_stalled", stderr);
    });
    let count = std::fs::read_to_string(s.path().join("migrate.count")).expect("migrate started");
    assert_eq!(count, "started\n", "the step was not run again: {stdout}{stderr}");
}

const LONG_FINALLY: &str = r#"[runbook]
name = "watchdog-finally"

[steps.quick]
run = "true"

[finally.cleanup]
retry = { attempts = 2, delay = "1s" }
run = '''
echo started >> cleanup.count
for i in $(seq 1 150); do echo "cleaning $i"; sleep 0.2; done
'''
"#;

/// The same for a `finally` step (and a compensation: one loop runs both): an attempt the
/// lease's loss ended is in doubt, never the unit's failure, and is not retried.
#[test]
fn a_renewal_the_store_does_not_answer_does_not_retry_a_finally_step() {
    let s = Scratch::new(LONG_FINALLY);
    let lease = [("RUNBOOK_LEASE_TTL", "8s")];
    let (code, stdout, stderr) =
        run_with_the_lock_held(&s, &lease, Duration::from_secs(3), Duration::from_secs(12));
    assert_eq!(code, Some(5), "{stdout}{stderr}");
    assert!(stderr.contains("did not renew lock"), "{stdout}{stderr}");
    let count = std::fs::read_to_string(s.path().join("cleanup.count")).expect("cleanup started");
    assert_eq!(count, "started\n", "the finally step was not run again: {stdout}{stderr}");
}

const SLOW_CHECK: &str = r#"[runbook]
name = "slow-check"

[preconditions.healthy]
run = "sleep 8"

[steps.deploy]
run = "echo deployed >> deploy.count"
"#;

/// Red team adv28 L4: a precondition the lease's loss ended is no failure of what it
/// checks ("the service is not healthy", exit 3, and under a worker a run marked refused):
/// the run stops as for a lost lease (exit 5), and its resume checks again.
#[test]
fn a_renewal_the_store_does_not_answer_is_no_failed_precondition() {
    let s = Scratch::new(SLOW_CHECK);
    let lease = [("RUNBOOK_LEASE_TTL", "8s")];
    let (code, stdout, stderr) =
        run_with_the_lock_held(&s, &lease, Duration::from_secs(2), Duration::from_secs(12));
    assert_eq!(code, Some(5), "{stdout}{stderr}");
    assert!(stderr.contains("did not renew lock"), "{stdout}{stderr}");
    assert!(!s.path().join("deploy.count").exists(), "nothing ran");
}

/// Red team adv28 E1: a lease too long for the engine's arithmetic panicked it, and it
/// then hung deaf to SIGTERM. A lease is from 1 s to a day; another is warned of.
#[test]
fn a_lease_length_out_of_range_is_warned_of_and_the_default_used() {
    let s = Scratch::new(CHAIN.replace("sleep 3; ", "").as_str());
    for ttl in ["300000000000years", "2days", "0s"] {
        let out = s.run(&["--yes"], &[("RUNBOOK_LEASE_TTL", ttl)]);
        assert_eq!(out.code, 0, "{ttl}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("is not a duration from 1s to 1 day; using 60s"),
            "{ttl}: {}",
            out.stderr
        );
    }
}

/// The same for a step of an included runbook: the included run takes no lease of its own
/// and reads the including run's, so an attempt the loss ended is not retried there either.
#[test]
fn a_renewal_the_store_does_not_answer_does_not_retry_an_included_step() {
    let s = Scratch::new(
        r#"[runbook]
name = "outer"

[steps.inner]
runbook = { file = "inner.toml" }
"#,
    );
    std::fs::write(s.path().join("inner.toml"), LONG_STEP.replace("name = \"watchdog\"", "name = \"inner\""))
        .expect("inner");
    let lease = [("RUNBOOK_LEASE_TTL", "8s")];
    let (code, stdout, stderr) =
        run_with_the_lock_held(&s, &lease, Duration::from_secs(3), Duration::from_secs(12));
    assert_eq!(code, Some(5), "{stdout}{stderr}");
    let count = std::fs::read_to_string(s.path().join("migrate.count")).expect("migrate started");
    assert_eq!(count, "started\n", "the included step was not run again: {stdout}{stderr}");
}
