//! Team mode: the same commands on a shared PostgreSQL store (a real throwaway cluster per
//! test), several processes and operators at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runbook_sandbox::peers::Postgres;

use crate::support::{Output, ok, run_in_with_env};

/// The password in the store URL: it must never be printed (the cluster trusts local
/// connections, so it is never checked either).
const PASSWORD: &str = "pw-9f3kq2-never-shown";

/// A folder with runbooks and a migrated PostgreSQL store.
struct Team {
    dir: tempfile::TempDir,
    url: String,
    pg: Postgres,
}

impl Team {
    fn new(runbook: &str) -> Team {
        let team = Team::unmigrated(runbook);
        let out = team.cmd(&["state", "migrate"], "admin");
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        team
    }

    fn unmigrated(runbook: &str) -> Team {
        let pg = Postgres::start();
        let url = pg.url("postgres").replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.toml"), runbook).expect("runbook");
        Team { dir, url, pg }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `runbook ARGS --state URL` as operator `who`; output checked for the password.
    fn cmd(&self, args: &[&str], who: &str) -> Output {
        let mut all = args.to_vec();
        all.extend(["--state", &self.url, "--as", who]);
        let out = run_in_with_env(self.path(), &all, &[("XDG_STATE_HOME", &self.local())]);
        assert!(
            !out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD),
            "the store's password leaked: {}{}",
            out.stdout,
            out.stderr
        );
        out
    }

    /// This "host's" local folder (run folders of a shared store live under it).
    fn local(&self) -> String {
        self.path().join("host").display().to_string()
    }

    fn spawn(&self, args: &[&str], who: &str, env: &[(&str, &str)]) -> std::process::Child {
        let mut all = args.to_vec();
        all.extend(["--state", &self.url]);
        self.spawn_with_state_in_env(&all, who, env)
    }

    /// As [`Team::spawn`], with the store URL in `RUNBOOK_STATE` only (not on the command line).
    fn spawn_with_state_in_env(&self, args: &[&str], who: &str, env: &[(&str, &str)]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(args)
            .args(["--as", who])
            .env("RUNBOOK_STATE", &self.url)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("XDG_STATE_HOME", self.local())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runbook")
    }

    fn runs(&self) -> Vec<serde_json::Value> {
        let out = self.cmd(&["runs", "--format", "json"], "ana");
        serde_json::from_str(&out.stdout).unwrap_or_default()
    }

    fn latest_run(&self) -> String {
        self.runs().first().and_then(|r| r["run_id"].as_str()).map(str::to_string).expect("a run")
    }

    fn journal(&self, run: &str) -> Vec<serde_json::Value> {
        self.cmd(&["audit", run, "--format", "jsonl"], "ana")
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn wait(child: std::process::Child) -> Output {
    Output::from(child.wait_with_output().expect("wait"))
}

const APPROVAL: &str = r#"[runbook]
name = "team"
lock = "inmova-production"

[steps.prepare]
run = "echo preparing; echo 'warning: slow disk' >&2; echo ready=yes >> $RUNBOOK_OUTPUT"
outputs = ["ready"]

[steps.go]
needs = ["prepare"]
approval = { prompt = "Restore production?", approvers = ["ben", "eve"] }

[steps.restore]
needs = ["go"]
cmd = ["echo", "restored"]
"#;

#[test]
fn a_shared_store_is_migrated_explicitly_and_checked() {
    let team = Team::unmigrated(APPROVAL);
    let refused = team.cmd(&["run", "r.toml", "--yes"], "ana");
    ok(&refused, 5);
    assert!(refused.stderr.contains("runbook state migrate"), "{}", refused.stderr);
    assert!(refused.stderr.contains("postgres://postgres:***@localhost/postgres"), "{}", refused.stderr);
    ok(&team.cmd(&["state", "check"], "ana"), 5);

    let migrated = team.cmd(&["state", "migrate"], "admin");
    ok(&migrated, 0);
    assert!(migrated.stdout.contains("migrated from schema version 0 to 16"), "{}", migrated.stdout);
    let again = team.cmd(&["state", "migrate"], "admin");
    assert!(again.stdout.contains("up to date (schema version 16)"), "{}", again.stdout);

    let check = team.cmd(&["state", "check"], "ana");
    ok(&check, 0);
    assert!(check.stdout.contains("(postgres)") && check.stdout.contains("version 16"), "{}", check.stdout);
    assert!(check.stdout.contains("0 run(s), 0 lock(s) held"), "{}", check.stdout);
}

#[test]
fn runs_approvals_history_logs_and_reports_work_across_operators() {
    let team = Team::new(APPROVAL);
    // Ana's run stays attached, waiting for an approval from someone else.
    let waiting = team.spawn(&["run", "r.toml", "--yes", "--wait"], "ana", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let waits = team.runs().first().is_some_and(|r| {
            let id = r["run_id"].as_str().unwrap_or_default();
            team.journal(id).iter().any(|e| e["kind"] == "approval_requested")
        });
        if waits {
            break team.latest_run();
        }
        assert!(Instant::now() < deadline, "the run never asked for approval");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Eve follows the run from her machine while it waits.
    let follower = team.spawn(&["show", &run, "--follow"], "eve", &[]);
    // Ana cannot approve her own run; Ben, from another process, can.
    let own = team.cmd(&["approve", &run, "go"], "ana");
    ok(&own, 3);
    ok(&team.cmd(&["approve", &run, "go", "--reason", "checked the backup"], "ben"), 0);
    let done = wait(waiting);
    ok(&done, 0);
    assert!(done.stdout.contains("restore | restored"), "{}", done.stdout);
    let followed = wait(follower);
    ok(&followed, 0);
    let kinds: Vec<&str> = followed.stdout.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    for kind in ["run_started", "approval_requested", "approval_granted", "step_succeeded", "run_finished"] {
        assert!(kinds.contains(&kind), "{kind} not followed: {}", followed.stdout);
    }
    assert!(followed.stdout.contains("status    succeeded"), "{}", followed.stdout);

    let journal = team.journal(&run);
    let granted = journal.iter().find(|e| e["kind"] == "approval_granted").expect("granted");
    assert_eq!(granted["event"]["operator"], "ben", "{granted}");
    ok(&team.cmd(&["audit", "verify", &run], "eve"), 0);

    // Any operator reads the history; the logs come from the store, not this host's folder.
    std::fs::remove_dir_all(Path::new(&team.local()).join("runbook/runs")).expect("remove local logs");
    let logs = team.cmd(&["logs", &run], "eve");
    ok(&logs, 0);
    assert!(logs.stdout.contains("prepare | preparing"), "{}", logs.stdout);
    assert!(logs.stdout.contains("prepare ! warning: slow disk"), "{}", logs.stdout);
    let show = team.cmd(&["show", &run], "eve");
    ok(&show, 0);
    assert!(show.stdout.contains("restore") && show.stdout.contains("succeeded"), "{}", show.stdout);
    let report = team.cmd(&["report", &run], "eve");
    ok(&report, 0);
    assert!(report.stdout.contains("ben"), "{}", report.stdout);
}

#[test]
fn of_two_conflicting_decisions_from_two_hosts_exactly_one_wins() {
    let team = Team::new(APPROVAL);
    for _ in 0..5 {
        ok(&team.cmd(&["run", "r.toml", "--yes"], "ana"), 4);
        let run = team.latest_run();
        let a = team.spawn(&["approve", &run, "go"], "ben", &[]);
        let b = team.spawn(&["reject", &run, "go", "--reason", "not now"], "eve", &[]);
        let wins = [wait(a), wait(b)].iter().filter(|o| o.code == 0).count();
        assert_eq!(wins, 1, "exactly one decision is recorded");
        let decisions = team
            .journal(&run)
            .iter()
            .filter(|e| e["kind"] == "approval_granted" || e["kind"] == "approval_rejected")
            .count();
        assert_eq!(decisions, 1);
        // Finish the run so that the next one can take the lock.
        let end = team.cmd(&["resume", &run, "--yes"], "ana");
        assert!(end.code == 0 || end.code == 1, "{}{}", end.stdout, end.stderr);
    }
}

const HOLD: &str = r#"[runbook]
name = "hold"
lock = "inmova-production"

[steps.hold]
run = "while [ ! -f release ]; do sleep 0.02; done"
"#;

/// 2 to 8 engines on one lock, again and again: exactly one runs, the others exit 5
/// naming the holder. `RUNBOOK_LOCK_TRIALS` (default 200) sets the number of trials.
#[test]
fn of_concurrent_runs_on_one_lock_exactly_one_runs() {
    let team = Team::new(HOLD);
    let trials: usize = std::env::var("RUNBOOK_LOCK_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(200);
    for trial in 0..trials {
        let contenders = 2 + trial % 7;
        let _ = std::fs::remove_file(team.path().join("release"));
        let mut children: Vec<_> = (0..contenders)
            .map(|i| Some(team.spawn(&["run", "r.toml", "--yes"], &format!("op{i}"), &[])))
            .collect();
        // The holder waits for `release`, so the others all meet a held lock however slow the
        // machine. Release it once every contender but one has given up.
        let mut outs: Vec<Output> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while outs.len() < contenders - 1 {
            for child in children.iter_mut() {
                if child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
                    && let Some(c) = child.take()
                {
                    outs.push(wait(c));
                }
            }
            assert!(Instant::now() < deadline, "trial {trial}: more than one run holds the lock: {outs:#?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(team.path().join("release"), "").expect("release");
        outs.extend(children.into_iter().flatten().map(wait));
        let ran = outs.iter().filter(|o| o.code == 0).count();
        assert_eq!(ran, 1, "trial {trial}: {outs:#?}");
        for o in outs.iter().filter(|o| o.code != 0) {
            assert_eq!(o.code, 5, "trial {trial}: {o:#?}");
            assert!(o.stderr.contains("lock `inmova-production` is held by run"), "{}", o.stderr);
        }
    }
    assert_eq!(team.runs().iter().filter(|r| r["status"] == "succeeded").count(), trials);
}

#[cfg(unix)]
#[test]
fn a_stopped_holder_gets_no_write_through_after_its_lease_is_taken_over() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let team = Team::new(
        "[runbook]\nname = \"stall\"\nlock = \"inmova-production\"\n\
         [steps.first]\nrun = \"touch first.started; sleep 1\"\nidempotent = true\n\
         [steps.second]\nneeds = [\"first\"]\nrun = \"touch second.ran\"\n",
    );
    let ttl = [("RUNBOOK_LEASE_TTL", "2s")];
    let holder = team.spawn(&["run", "r.toml", "--yes"], "ana", &ttl);
    let started = team.path().join("first.started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the first run never started its step");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = Pid::from_raw(holder.id() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    // A write already on the wire when the engine stopped may still land: let it.
    std::thread::sleep(Duration::from_millis(300));
    let stalled = team.latest_run();
    std::thread::sleep(Duration::from_secs(3));
    // The lease ran out, but the lock is the stalled run's until it has finished (issue 14,
    // point 5; this test used to start another run here): another run is refused...
    let other = team.cmd(&["run", "r.toml", "--yes"], "ben");
    ok(&other, 5);
    assert!(other.stderr.contains(&format!("is kept by run {stalled}")), "{}", other.stderr);
    // ...and another engine of the same run takes the lock over (a new fence) and runs it.
    let second = team.cmd(&["resume", &stalled, "--yes"], "ben");
    ok(&second, 0);
    let seen = team.journal(&stalled).len();
    kill(pid, Signal::SIGCONT).expect("SIGCONT");
    let woken = wait(holder);
    assert_ne!(woken.code, 0, "{}{}", woken.stdout, woken.stderr);
    assert!(woken.stderr.contains("lost lock"), "{}", woken.stderr);
    // Not one record of the stalled engine got through after the takeover.
    assert_eq!(team.journal(&stalled).len(), seen, "{:#?}", team.journal(&stalled));
    ok(&team.cmd(&["audit", "verify"], "eve"), 0);
}

#[test]
fn runs_watch_shows_runs_of_other_hosts_as_they_change() {
    use std::io::BufRead;
    let team = Team::new("[runbook]\nname = \"quick\"\n[steps.a]\ncmd = [\"true\"]\n");
    let mut watcher = team.spawn(&["runs", "--watch"], "eve", &[]);
    let stdout = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).as_deref(), Ok("no runs yet"));
    ok(&team.cmd(&["run", "r.toml"], "ana"), 0);
    let run = team.latest_run();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the new run shows");
        if line.starts_with(&run) && line.contains("succeeded") && line.contains("ana") {
            break;
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
}

/// 3 workers, 50 queued runs, one worker killed with SIGKILL mid-way: every run ends
/// succeeded or names what an operator must decide, and no run is executed by two engines
/// at once.
#[cfg(unix)]
#[test]
fn workers_run_queued_runs_and_survive_one_of_them_dying() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("trace");
    let t = trace.display();
    let team = Team::new(&format!(
        r#"[runbook]
name = "job"
[steps.a]
run = "echo \"$RUNBOOK_RUN_ID a $PPID\" >> {t}; sleep 0.1"
idempotent = true
[steps.b]
needs = ["a"]
run = "echo \"$RUNBOOK_RUN_ID b $PPID\" >> {t}; sleep 0.3"
[steps.c]
needs = ["b"]
run = "echo \"$RUNBOOK_RUN_ID c $PPID\" >> {t}"
idempotent = true
"#
    ));
    let runs = 50;
    for _ in 0..runs {
        ok(&team.cmd(&["submit", "r.toml"], "ana"), 0);
    }
    let queued = team.cmd(&["runs"], "ana");
    assert_eq!(queued.stdout.lines().filter(|l| l.contains(" queued ")).count(), runs, "{}", queued.stdout);
    let lease = [("RUNBOOK_LEASE_TTL", "2s")];
    let mut workers: Vec<_> = (0..3)
        .map(|_| team.spawn_with_state_in_env(&["worker", "--concurrency", "4"], "runner", &lease))
        .collect();
    // Mid-way: kill the first worker, engines and all.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&trace).map_or(0, |t| t.lines().count()) < 30 {
        assert!(Instant::now() < deadline, "the workers never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The engines the workers started do not show the store's password to `ps`.
    let worker_pids: Vec<String> = workers.iter().map(|w| w.id().to_string()).collect();
    let mut engines_seen = 0;
    for _ in 0..100 {
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: the parent is the second field after the comm.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .unwrap_or_default();
            if !worker_pids.iter().any(|w| w == ppid) {
                continue;
            }
            let cmdline =
                String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).unwrap_or_default())
                    .replace('\0', " ");
            assert!(!cmdline.contains(PASSWORD), "{cmdline}");
            engines_seen += usize::from(cmdline.contains(" run ") || cmdline.contains(" resume "));
        }
        if engines_seen > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(engines_seen > 0, "no engine of a worker was running to look at");
    kill(Pid::from_raw(workers[0].id() as i32), Signal::SIGKILL).expect("SIGKILL");
    let _ = workers[0].wait();
    let deadline = Instant::now() + Duration::from_secs(120);
    while team.pg.psql("postgres", "SELECT COUNT(*) FROM queue WHERE state = 'done'") != runs.to_string() {
        assert!(
            Instant::now() < deadline,
            "{}",
            team.pg.psql("postgres", "SELECT run_id, state, worker, note FROM queue WHERE state <> 'done'")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The others stop cleanly on SIGTERM.
    for w in workers.drain(1..) {
        kill(Pid::from_raw(w.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        let out = wait(w);
        ok(&out, 0);
        assert!(out.stdout.contains("stopped"), "{}", out.stdout);
    }
    let resumed = team.pg.psql("postgres", "SELECT COUNT(*) FROM queue WHERE claims > 1");
    assert_ne!(resumed, "0", "the killed worker's runs were claimed again");

    // Each run: succeeded, or waits for an operator about the one step in doubt.
    let mut succeeded = 0;
    for line in team.pg.psql("postgres", "SELECT run_id, exit_code FROM queue").lines() {
        let (run, code) = line.split_once('|').expect("row");
        match code {
            "0" => succeeded += 1,
            "4" => {
                let show = team.cmd(&["show", run], "eve");
                assert!(show.stdout.contains("in doubt  b"), "{}", show.stdout);
            }
            other => panic!("run {run} ended with exit {other}"),
        }
    }
    assert!(succeeded >= runs - 12, "{succeeded} of {runs} succeeded");
    ok(&team.cmd(&["audit", "verify"], "eve"), 0);

    // No run was executed by two engines at once: a run's engines appear one after the other
    // in the trace, and `b`, not idempotent, ran at most once.
    let text = std::fs::read_to_string(&trace).expect("trace");
    let mut engines: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut b_runs: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(run), Some(step), Some(engine)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let seen = engines.entry(run).or_default();
        if seen.last() != Some(&engine) {
            assert!(!seen.contains(&engine), "run {run}: engines interleave: {seen:?} then {engine}");
            seen.push(engine);
        }
        if step == "b" {
            *b_runs.entry(run).or_default() += 1;
        }
    }
    assert_eq!(engines.len(), runs);
    assert!(b_runs.values().all(|&n| n == 1), "{b_runs:?}");
}

/// SIGTERM: a worker lets its runs finish for `--grace`, then interrupts them and hands them
/// back; the next worker resumes them.
#[cfg(unix)]
#[test]
fn a_stopping_worker_hands_its_runs_back_and_the_next_one_resumes_them() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let team = Team::new(
        "[runbook]\nname = \"long\"\n\
         [steps.wait]\nrun = \"touch waiting; while [ ! -f release ]; do sleep 0.02; done\"\nidempotent = true\n\
         [steps.after]\nneeds = [\"wait\"]\ncmd = [\"touch\", \"after.ran\"]\n",
    );
    let submitted = team.cmd(&["submit", "r.toml"], "ana");
    ok(&submitted, 0);
    let run = submitted.stdout.trim().to_string();
    let first = team.spawn(&["worker", "--grace", "300ms"], "runner", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !team.path().join("waiting").exists() {
        assert!(Instant::now() < deadline, "the worker never started the run");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(first.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let stopped = wait(first);
    ok(&stopped, 0);
    assert!(stopped.stdout.contains(&format!("{run}: interrupted, handed back")), "{}", stopped.stdout);
    assert_eq!(team.pg.psql("postgres", "SELECT state || ' ' || claims FROM queue"), "queued 1");
    assert!(!team.path().join("after.ran").exists());

    std::fs::write(team.path().join("release"), "").expect("release");
    let second = team.spawn(&["worker"], "runner", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while team.pg.psql("postgres", "SELECT state FROM queue") != "done" {
        assert!(Instant::now() < deadline, "the run was never resumed");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(second.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let out = wait(second);
    assert!(out.stdout.contains(&format!("{run}: resuming")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{run}: succeeded (exit 0)")), "{}", out.stdout);
    assert!(team.path().join("after.ran").exists());
    let kinds: Vec<String> =
        team.journal(&run).iter().map(|e| e["kind"].as_str().unwrap_or_default().to_string()).collect();
    assert!(
        kinds.contains(&"run_interrupted".to_string()) && kinds.contains(&"run_resumed".to_string()),
        "{kinds:?}"
    );
}

#[test]
fn a_queued_run_can_be_cancelled_before_a_worker_takes_it() {
    let team = Team::new("[runbook]\nname = \"quick\"\n[steps.a]\ncmd = [\"touch\", \"ran\"]\n");
    let submitted = team.cmd(&["submit", "r.toml"], "ana");
    ok(&submitted, 0);
    let run = submitted.stdout.trim().to_string();
    let cancelled = team.cmd(&["cancel", &run, "--reason", "wrong environment"], "ana");
    ok(&cancelled, 0);
    assert!(cancelled.stderr.contains("taken off the queue"), "{}", cancelled.stderr);
    ok(&team.cmd(&["cancel", &run], "ana"), 3);
    ok(&team.cmd(&["cancel", "20261130T000000Z-00000000"], "ana"), 3);
    let runs = team.cmd(&["runs"], "ana");
    assert!(runs.stdout.lines().any(|l| l.starts_with(&run) && l.contains("cancelled")), "{}", runs.stdout);
    assert_eq!(team.pg.psql("postgres", "SELECT note FROM queue"), "cancelled by ana: wrong environment");
    // A worker finds nothing to do.
    let worker = team.spawn(&["worker", "--poll", "20ms"], "runner", &[]);
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let out = wait(worker);
    ok(&out, 0);
    assert!(!out.stdout.contains(&run), "{}", out.stdout);
    assert!(!team.path().join("ran").exists());
}

/// Issue 14 point 6 (q-prompt): a queued run's `confirm` is answered by the `--yes` its
/// submitter passed: the journal names the submitter, not the worker that ran it.
#[test]
fn a_queued_runs_confirmation_names_who_passed_yes() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let team = Team::new(
        "[runbook]\nname = \"asks\"\n[steps.a]\ncmd = [\"touch\", \"ran\"]\nconfirm = \"Touch it?\"\n",
    );
    let submitted = team.cmd(&["submit", "r.toml", "--yes"], "ana");
    ok(&submitted, 0);
    let run = submitted.stdout.trim().to_string();
    let worker = team.spawn(&["worker", "--poll", "20ms"], "runner", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while team.pg.psql("postgres", "SELECT state FROM queue") != "done" {
        assert!(Instant::now() < deadline, "the run never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(worker.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let _ = wait(worker);
    let given: Vec<serde_json::Value> = team
        .journal(&run)
        .into_iter()
        .filter(|r| r["event"]["kind"] == "confirmation_given")
        .map(|r| r["event"].clone())
        .collect();
    assert_eq!(given.len(), 1, "{given:#?}");
    assert_eq!(
        (given[0]["operator"].as_str(), given[0]["by_yes"].as_bool(), given[0]["question"].as_str()),
        (Some("ana"), Some(true), Some("Touch it?"))
    );
}

/// Issue 14, point 4, team mode: a run suspended at an approval on the shared PostgreSQL
/// store keeps its lock; the operator who started it abandons it (journaled with who and
/// why), and the next run on that lock starts. Failed before: there was no `abandon`, and
/// `reject` by the operator who started it was refused (not an approver).
#[test]
fn a_suspended_run_is_abandoned_on_the_shared_store_and_its_lock_let_go() {
    let team = Team::new(
        "[runbook]\nname = \"gated\"\nlock = \"inmova-production\"\n\
         [steps.push]\nrun = \"echo push >> trace\"\n\
         [steps.gate]\nneeds = [\"push\"]\napproval = { prompt = \"Go?\", approvers = [\"ben\"] }\n",
    );
    std::fs::write(
        team.path().join("other.toml"),
        "[runbook]\nname = \"other\"\nlock = \"inmova-production\"\n[steps.b]\nrun = \"echo other >> trace\"\n",
    )
    .expect("other runbook");
    ok(&team.cmd(&["run", "r.toml", "--yes"], "ana"), 4);
    let run = team.latest_run();
    let refused = team.cmd(&["run", "other.toml", "--yes"], "eve");
    ok(&refused, 5);
    ok(&team.cmd(&["abandon", &run, "--reason", "window closed"], "ana"), 0);
    let journal = team.journal(&run);
    let last = journal.last().expect("records");
    assert_eq!(last["kind"], "run_abandoned", "{journal:#?}");
    assert_eq!(last["event"]["operator"], "ana", "{last}");
    assert_eq!(last["event"]["reason"], "window closed", "{last}");
    assert_eq!(
        team.runs().iter().find(|r| r["run_id"] == run.as_str()).map(|r| r["status"].clone()),
        Some("abandoned".into())
    );
    ok(&team.cmd(&["resume", &run, "--yes"], "ana"), 3);
    ok(&team.cmd(&["run", "other.toml", "--yes"], "eve"), 0);
    assert_eq!(std::fs::read_to_string(team.path().join("trace")).unwrap_or_default(), "push\nother\n");
}

/// Issue 17: three workers fire one schedule due every second (TEST MODE: a seconds field)
/// on a shared PostgreSQL store; one of them is killed (SIGKILL) mid-way. Every due time is
/// fired exactly once: one row per due time, one queued run per row, the due times without
/// a gap (`catch-up = "all"`: a time missed while workers were busy is fired late, never
/// dropped), each run an ordinary queued run that a worker runs.
#[test]
fn three_workers_fire_each_due_time_exactly_once_and_survive_one_dying() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let team = Team::new(
        "[runbook]\nname = \"tick\"\n[params.note]\ntype = \"string\"\n[steps.a]\nrun = \"echo {{ params.note }}\"\n",
    );
    std::fs::create_dir(team.path().join(".git")).expect("repo");
    std::fs::write(
        team.path().join("s.toml"),
        "[schedule.tick]\nrunbook = \"r.toml\"\nparams = { note = \"every second\" }\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\ncatch-up = \"all\"\ncatch-up-limit = 100\noverlap = \"queue\"\n",
    )
    .expect("schedules");
    let test_mode = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1")];
    let mut workers: Vec<_> = (0..3)
        .map(|_| team.spawn(&["worker", "--schedules", "s.toml", "--concurrency", "2"], "runner", &test_mode))
        .collect();
    let count = |sql: &str| team.pg.psql("postgres", sql).trim().parse::<i64>().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count("SELECT COUNT(*) FROM schedule_fires") < 4 {
        assert!(Instant::now() < deadline, "no schedule fired");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Kill the worker that fired the latest due time: the one that would fire next.
    let last = team.pg.psql("postgres", "SELECT fired_by FROM schedule_fires ORDER BY due_ms DESC LIMIT 1");
    let victim = workers.iter().position(|w| last.contains(&format!("pid {} ", w.id()))).unwrap_or(0);
    kill(Pid::from_raw(workers[victim].id() as i32), Signal::SIGKILL).expect("SIGKILL");
    let _ = workers[victim].wait();
    let killed_at = count("SELECT MAX(due_ms) FROM schedule_fires");
    while count("SELECT COUNT(*) FROM schedule_fires") < 10 {
        assert!(Instant::now() < deadline, "the others stopped firing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut survivors: Vec<_> =
        workers.into_iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, w)| w).collect();
    for w in &survivors {
        kill(Pid::from_raw(w.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    }
    for w in survivors.drain(..) {
        ok(&wait(w), 0);
    }
    // Exactly once: one row per due time (the key), one queued run per row, no run twice.
    assert_eq!(count("SELECT COUNT(*) FROM schedule_fires WHERE outcome <> 'queued' OR run_id IS NULL"), 0);
    let fires = count("SELECT COUNT(*) FROM schedule_fires");
    assert_eq!(count("SELECT COUNT(DISTINCT run_id) FROM schedule_fires"), fires);
    assert_eq!(count("SELECT COUNT(*) FROM queue q JOIN schedule_fires f ON f.run_id = q.run_id"), fires);
    // Without a gap, after the kill too: every second from the first to the last.
    let (first, last) =
        (count("SELECT MIN(due_ms) FROM schedule_fires"), count("SELECT MAX(due_ms) FROM schedule_fires"));
    assert_eq!((last - first) / 1000 + 1, fires, "a due time was dropped");
    assert!(last > killed_at, "nothing fired after the kill");
    // Fired by more than one worker: the store decided, not a leader.
    assert!(count("SELECT COUNT(DISTINCT fired_by) FROM schedule_fires") >= 2);
    // Ordinary runs: `runbook runs` lists them with their runbook.
    let runs = team.runs();
    assert!(runs.iter().filter(|r| r["runbook"] == "tick").count() >= 3, "{runs:?}");
    // Each says in its journal which schedule queued it, for which due time, right after
    // `run_started`.
    let started = team.pg.psql(
        "postgres",
        "SELECT f.run_id || ' ' || f.due_ms FROM schedule_fires f JOIN runs r ON r.run_id = f.run_id ORDER BY f.due_ms LIMIT 1",
    );
    let (run, due_ms) = started.trim().split_once(' ').expect("a started run");
    let due = chrono::DateTime::from_timestamp_millis(due_ms.parse().expect("ms")).expect("due");
    let journal = team.journal(run);
    assert_eq!(journal[0]["kind"], "run_started", "{journal:?}");
    assert_eq!(journal[1]["kind"], "schedule_fired", "{journal:?}");
    let body = &journal[1]["event"];
    assert_eq!(body["schedule"], "tick", "{journal:?}");
    assert_eq!(body["due"], due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "{journal:?}");
    // Issue 17, point 1: the schedule's own journal holds exactly one record per decision
    // the store took (here, per row of `schedule_fires`), whichever of the racing workers
    // took it, chained without a gap; `audit verify` checks it. Failed before: no journal.
    // Plus the one `watched` record of the first worker to watch it, however many raced
    // (red team adv23 F2).
    assert_eq!(count("SELECT COUNT(*) FROM schedule_events WHERE schedule = 'tick'"), fires + 1);
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM schedule_events WHERE schedule = 'tick' AND kind = 'watched' AND seq = 1"
        ),
        1
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM schedule_fires f WHERE (SELECT COUNT(*) FROM schedule_events e \
             WHERE e.schedule = f.schedule AND e.due_ms = f.due_ms AND e.kind = 'fired' \
             AND e.body::jsonb ->> 'run_id' = f.run_id) <> 1"
        ),
        0,
        "a fire without exactly one record"
    );
    let records = fires + 1;
    assert_eq!(count("SELECT MAX(seq) FROM schedule_events WHERE schedule = 'tick'"), records);
    let verified = team.cmd(&["audit", "verify"], "ana");
    ok(&verified, 0);
    assert!(verified.stdout.contains(&format!("ok schedule tick: {records} records")), "{}", verified.stdout);
    let shown = team.cmd(&["audit", "schedule", "tick", "--format", "jsonl"], "ana");
    ok(&shown, 0);
    assert_eq!(shown.stdout.lines().count() as i64, records, "{}", shown.stdout);
    // The same guards as the run journal: no update, delete or truncate; past them (a
    // superuser disabling the triggers), an edit is detected.
    for sql in [
        "UPDATE schedule_events SET ts = 'x'",
        "DELETE FROM schedule_events",
        "TRUNCATE schedule_events",
        "DELETE FROM schedule_heads",
    ] {
        let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| team.pg.psql("postgres", sql)));
        assert!(tried.is_err(), "{sql} passed");
    }
    // Past them (a superuser disabling the triggers), each tampering is detected: a record
    // edited, deleted, two swapped, the last one cut; the journal restored between cases.
    team.pg.psql(
        "postgres",
        "ALTER TABLE schedule_events DISABLE TRIGGER USER; CREATE TABLE kept AS SELECT * FROM schedule_events",
    );
    let restore = "DELETE FROM schedule_events; INSERT INTO schedule_events SELECT * FROM kept";
    let cases = [
        ("edited", "UPDATE schedule_events SET ts = '2020-01-01T00:00:00Z' WHERE seq = 3".to_string(), 3),
        ("deleted", "DELETE FROM schedule_events WHERE seq = 2".to_string(), 2),
        (
            "reordered",
            "UPDATE schedule_events SET seq = -1 WHERE seq = 2; UPDATE schedule_events SET seq = 2 WHERE seq = 3; \
             UPDATE schedule_events SET seq = 3 WHERE seq = -1"
                .to_string(),
            2,
        ),
        ("cut", format!("DELETE FROM schedule_events WHERE seq = {records}"), records),
    ];
    for (what, sql, seq) in cases {
        team.pg.psql("postgres", &sql);
        let broken = team.cmd(&["audit", "verify"], "ana");
        assert_eq!(broken.code, 4, "{what}: {}{}", broken.stdout, broken.stderr);
        assert!(
            broken.stdout.contains(&format!("BROKEN schedule tick: record {seq}")),
            "{what}: {}",
            broken.stdout
        );
        team.pg.psql("postgres", restore);
        // The journal verifies again; the guards still disabled are themselves tampering
        // (red team adv24), and the only BROKEN lines.
        let restored = team.cmd(&["audit", "verify"], "ana");
        assert_eq!(restored.code, 4, "{what}: {}{}", restored.stdout, restored.stderr);
        assert!(restored.stdout.contains("ok schedule tick: "), "{what}: {}", restored.stdout);
        assert!(
            restored
                .stdout
                .lines()
                .filter(|l| l.starts_with("BROKEN"))
                .all(|l| l.starts_with("BROKEN store: guard trigger `schedule_events_")
                    && l.contains("` is disabled")),
            "{what}: {}",
            restored.stdout
        );
    }
    team.pg.psql("postgres", "ALTER TABLE schedule_events ENABLE TRIGGER USER");
    ok(&team.cmd(&["audit", "verify"], "ana"), 0);
}

/// Issue 17, the dead-man's switch: a schedule whose runs all fail becomes overdue; of two
/// workers on the shared store exactly one sends the notification, once, to a real HTTP
/// server on 127.0.0.1, however many polls and fires follow (no `remind-every`).
#[test]
fn an_overdue_schedule_is_notified_exactly_once_across_two_workers() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let hook = runbook_sandbox::peers::HttpPeer::start();
    let team = Team::new("[runbook]\nname = \"broken\"\n[steps.a]\nrun = \"exit 1\"\n");
    std::fs::create_dir(team.path().join(".git")).expect("repo");
    std::fs::write(
        team.path().join("s.toml"),
        format!(
            "[schedule.nightly]\nrunbook = \"r.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"2s\"\nnotify = {{ webhook = \"{}\" }}\n",
            hook.url("/hook")
        ),
    )
    .expect("schedules");
    let test_mode = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1")];
    let workers: Vec<_> =
        (0..2).map(|_| team.spawn(&["worker", "--schedules", "s.toml"], "runner", &test_mode)).collect();
    let count = |sql: &str| team.pg.psql("postgres", sql).trim().parse::<i64>().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while hook.hooks().is_empty() {
        assert!(Instant::now() < deadline, "no notification arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Many more polls and fires by both workers: still one notification.
    let fires = count("SELECT COUNT(*) FROM schedule_fires");
    while count("SELECT COUNT(*) FROM schedule_fires") < fires + 5 {
        assert!(Instant::now() < deadline, "the workers stopped firing");
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in &workers {
        kill(Pid::from_raw(w.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    }
    let outs: Vec<Output> = workers.into_iter().map(wait).collect();
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let body: serde_json::Value = serde_json::from_str(&hooks[0]).expect("json");
    assert_eq!(body["schedule"], "nightly");
    assert!(body["text"].as_str().unwrap_or_default().contains("is overdue"), "{body}");
    assert_eq!(count("SELECT COUNT(*) FROM schedule_alerts"), 1);
    // Issue 17, point 1: the notice and its delivery are one record each in the
    // schedule's journal, whichever worker took them. Failed before: no journal.
    assert_eq!(count("SELECT COUNT(*) FROM schedule_events WHERE kind = 'overdue'"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM schedule_events WHERE kind = 'notified'"), 1);
    let said: usize = outs.iter().map(|o| o.stdout.matches("overdue notification sent").count()).sum();
    assert_eq!(said, 1, "{outs:?}");
    // The webhook's URL (a chat webhook's credential) is printed by no worker.
    for o in &outs {
        assert!(!o.stdout.contains("/hook") && !o.stderr.contains("/hook"), "{o:?}");
    }
}

/// Red team adv18a S1 and S2 on PostgreSQL (promise 6): a role with exactly the book's
/// grants (`SELECT, INSERT` on `schedule_fires` and `schedule_alerts`) inserts rows for
/// future due times and an overdue period, with no journal record: `runbook audit verify`
/// reports the schedule BROKEN and exits 4. The schema owner then cuts the journal's tail
/// (its triggers disabled, the head moved back): BROKEN too, the cut record's row remains.
/// Failed before: `ok schedule tick` and exit 0 for both.
#[test]
fn audit_verify_finds_schedule_rows_no_journal_record_stands_for_on_postgres() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let team = Team::new("[runbook]\nname = \"tick\"\n[steps.a]\nrun = \"true\"\n");
    std::fs::create_dir(team.path().join(".git")).expect("repo");
    std::fs::write(
        team.path().join("s.toml"),
        "[schedule.tick]\nrunbook = \"r.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\n",
    )
    .expect("schedules");
    let worker =
        team.spawn(&["worker", "--schedules", "s.toml"], "runner", &[("RUNBOOK_TEST_SCHEDULE_SECONDS", "1")]);
    let count = |sql: &str| team.pg.psql("postgres", sql).trim().parse::<i64>().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count("SELECT COUNT(*) FROM schedule_fires") < 3 {
        assert!(Instant::now() < deadline, "no schedule fired");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(worker.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let _ = wait(worker);
    let clean = team.cmd(&["audit", "verify"], "ana");
    ok(&clean, 0);
    assert!(clean.stdout.contains("ok schedule tick: "), "{}", clean.stdout);

    // The book's grants for an operator's role (book/src/user-guide/team-mode.md).
    team.pg.psql(
        "postgres",
        "CREATE ROLE ben LOGIN; GRANT SELECT, INSERT ON schedule_fires, schedule_alerts, schedule_events TO ben; \
         GRANT SELECT, INSERT, UPDATE ON schedule_heads TO ben",
    );
    // Issue 17, S1: a row without its journal record is refused by the store (failed
    // before: the insert succeeded and the worker skipped those due times in silence).
    let forge = "INSERT INTO schedule_fires (schedule, due_ms, outcome, run_id, note, fired_by, fired_at) \
         SELECT 'tick', 4102444800000 + g * 1000, 'skipped', NULL, '', 'mallory', '2026-01-01T00:00:00Z' FROM generate_series(1, 5) g";
    let refused = Command::new(team.pg.bin().join("psql"))
        .args([&team.pg.url("postgres"), "-v", "ON_ERROR_STOP=1", "-Atc", &format!("SET ROLE ben; {forge}")])
        .output()
        .expect("psql");
    assert!(!refused.status.success(), "a due time was taken with no record");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("taken only with its journal record"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Past that trigger (only the schema's owner can disable it), the rows are found.
    team.pg.psql(
        "postgres",
        &format!(
            "ALTER TABLE schedule_fires DISABLE TRIGGER schedule_fires_have_their_record; SET ROLE ben; {forge}; \
             RESET ROLE; ALTER TABLE schedule_fires ENABLE TRIGGER schedule_fires_have_their_record"
        ),
    );
    let forged = team.cmd(&["audit", "verify"], "ana");
    assert_eq!(forged.code, 4, "{}{}", forged.stdout, forged.stderr);
    assert_eq!(
        forged.stdout.lines().filter(|l| l.starts_with("BROKEN schedule tick: schedule_fires: ")).count(),
        5,
        "{}",
        forged.stdout
    );
    team.pg.psql(
        "postgres",
        "ALTER TABLE schedule_fires DISABLE TRIGGER ALL; DELETE FROM schedule_fires WHERE fired_by = 'mallory'; \
         ALTER TABLE schedule_fires ENABLE TRIGGER ALL",
    );
    // Issue 17, S1 for alerts (migration 14): an alert row without its `overdue` record is
    // refused with the book's grants (failed before: it was inserted, and silenced the
    // notice of that overdue period).
    let forge_alert = "INSERT INTO schedule_alerts (schedule, since_ms, reminder, sent_by, sent_at) \
         VALUES ('tick', 4102444800000, 0, 'mallory', '2026-01-01T00:00:00Z')";
    let refused = Command::new(team.pg.bin().join("psql"))
        .args([
            &team.pg.url("postgres"),
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            &format!("SET ROLE ben; {forge_alert}"),
        ])
        .output()
        .expect("psql");
    assert!(!refused.status.success(), "an overdue notice was taken with no record");
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("overdue notice is taken only with its journal record"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Past that trigger (only the schema's owner can disable it), the row is found; while
    // it is disabled, `state check` names it.
    team.pg.psql("postgres", "ALTER TABLE schedule_alerts DISABLE TRIGGER schedule_alerts_have_their_record");
    let check = team.cmd(&["state", "check"], "ana");
    assert_eq!(check.code, 5, "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("schedule_alerts_have_their_record"), "{}", check.stdout);
    team.pg.psql(
        "postgres",
        &format!(
            "ALTER TABLE schedule_alerts DISABLE TRIGGER schedule_alerts_have_their_record; SET ROLE ben; {forge_alert}; \
             RESET ROLE; ALTER TABLE schedule_alerts ENABLE TRIGGER schedule_alerts_have_their_record"
        ),
    );
    let alert = team.cmd(&["audit", "verify"], "ana");
    assert_eq!(alert.code, 4, "{}{}", alert.stdout, alert.stderr);
    assert!(alert.stdout.contains("BROKEN schedule tick: schedule_alerts: "), "{}", alert.stdout);
    team.pg.psql(
        "postgres",
        "ALTER TABLE schedule_alerts DISABLE TRIGGER ALL; DELETE FROM schedule_alerts WHERE sent_by = 'mallory'; \
         ALTER TABLE schedule_alerts ENABLE TRIGGER ALL",
    );
    ok(&team.cmd(&["audit", "verify"], "ana"), 0);

    // The schema owner cuts the tail and moves the head back.
    team.pg.psql(
        "postgres",
        "ALTER TABLE schedule_events DISABLE TRIGGER ALL; ALTER TABLE schedule_heads DISABLE TRIGGER ALL; \
         DELETE FROM schedule_events WHERE seq = (SELECT MAX(seq) FROM schedule_events); \
         UPDATE schedule_heads SET last_seq = (SELECT MAX(seq) FROM schedule_events), \
         last_hash = (SELECT hash FROM schedule_events WHERE seq = (SELECT MAX(seq) FROM schedule_events))",
    );
    let cut = team.cmd(&["audit", "verify"], "ana");
    assert_eq!(cut.code, 4, "{}{}", cut.stdout, cut.stderr);
    assert!(cut.stdout.contains("BROKEN schedule tick: schedule_fires: "), "{}", cut.stdout);
}

/// Issue 17, S3 on PostgreSQL: three workers share an overdue schedule whose webhook
/// answers 503 three times, then 200. Each delivery attempt is claimed by exactly one
/// worker (the store's primary key decides): the webhook gets attempts 1, 2, 3, 4 once
/// each and never two requests at once; the journal has `notify_failed` for attempts 1-3
/// (`HTTP 503`) and exactly one `notified` (attempt 4). Failed before: one request, never
/// retried.
#[test]
fn three_workers_retry_an_overdue_notice_one_attempt_at_a_time_until_delivered() {
    use crate::schedule_notices::{Answer, ScriptedHook};
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let hook = ScriptedHook::start(vec![Answer::Status(503); 3]);
    let team = Team::new("[runbook]\nname = \"broken\"\n[steps.a]\nrun = \"exit 1\"\n");
    std::fs::create_dir(team.path().join(".git")).expect("repo");
    std::fs::write(
        team.path().join("s.toml"),
        format!(
            "[schedule.nightly]\nrunbook = \"r.toml\"\ncron = \"* * * * * *\"\ntime-zone = \"UTC\"\nexpect-success-within = \"2s\"\nnotify = {{ webhook = \"{}\" }}\n",
            hook.url()
        ),
    )
    .expect("schedules");
    let test_mode = [("RUNBOOK_TEST_SCHEDULE_SECONDS", "1")];
    let workers: Vec<_> =
        (0..3).map(|_| team.spawn(&["worker", "--schedules", "s.toml"], "runner", &test_mode)).collect();
    let count = |sql: &str| team.pg.psql("postgres", sql).trim().parse::<i64>().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while count("SELECT COUNT(*) FROM schedule_events WHERE kind = 'notified'") < 1 {
        assert!(Instant::now() < deadline, "never delivered");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Many more passes by every worker: nothing more is sent.
    let fires = count("SELECT COUNT(*) FROM schedule_fires");
    while count("SELECT COUNT(*) FROM schedule_fires") < fires + 5 {
        assert!(Instant::now() < deadline, "the workers stopped firing");
        std::thread::sleep(Duration::from_millis(100));
    }
    for w in &workers {
        kill(Pid::from_raw(w.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    }
    let outs: Vec<Output> = workers.into_iter().map(wait).collect();
    let attempts: Vec<i64> = hook.bodies().iter().map(|b| b["attempt"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(attempts, [1, 2, 3, 4], "{outs:?}");
    assert_eq!(hook.most_in_flight(), 1);
    assert_eq!(count("SELECT COUNT(*) FROM schedule_events WHERE kind = 'notified'"), 1);
    let failed = team.pg.psql(
        "postgres",
        "SELECT string_agg((body::json->>'attempt') || ' ' || (body::json->>'failure'), ',' ORDER BY seq) \
         FROM schedule_events WHERE kind = 'notify_failed'",
    );
    assert_eq!(failed.trim(), "1 HTTP 503,2 HTTP 503,3 HTTP 503");
    assert_eq!(
        team.pg
            .psql("postgres", "SELECT body::json->>'attempt' FROM schedule_events WHERE kind = 'notified'")
            .trim(),
        "4"
    );
    // One row per attempt, each claimed once; the outcome is set once (the guard refuses
    // rewriting it).
    assert_eq!(count("SELECT COUNT(*) FROM schedule_notices"), 4);
    let guards = team.cmd(&["state", "check"], "admin");
    assert_eq!(guards.code, 0, "{}{}", guards.stdout, guards.stderr);
    let refused = std::process::Command::new(team.pg.bin().join("psql"))
        .args([
            &team.pg.url("postgres"),
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "UPDATE schedule_notices SET outcome = 'failed' WHERE outcome = 'delivered'",
        ])
        .output()
        .expect("psql");
    assert!(!refused.status.success(), "an outcome was rewritten");
    ok(&team.cmd(&["audit", "verify"], "ana"), 0);
    for o in &outs {
        assert!(!o.stdout.contains("s3cr3t-path") && !o.stderr.contains("s3cr3t-path"), "{o:?}");
    }
}
