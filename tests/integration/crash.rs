//! Crash torture: the engine is killed with SIGKILL at random moments, then resumed.
//!
//! After each trial: the run succeeded; every step ran to completion exactly once (a step in
//! doubt that is not idempotent is re-run only by an operator decision, and the test decides
//! from ground truth, as a careful operator would); the journal verifies; no step process
//! outlived a killed engine. `RUNBOOK_TORTURE_TRIALS` sets the number of trials (default 100).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A small deterministic generator, so a failing trial can be replayed from its seed.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// 30 steps in three chains of ten that join, every third step idempotent, every fourth
/// with a compensation. Each step writes `start X` and `done X` around a short sleep.
fn runbook() -> String {
    let mut s = String::from("[runbook]\nname = \"torture\"\nmax-parallel = 3\n");
    for i in 0..30 {
        let chain = i / 10;
        let needs = match (i % 10, i) {
            (0, 0..=9) => "[]".to_string(),
            (0, _) => format!("[\"s{:02}\"]", chain * 10 - 1),
            _ => format!("[\"s{:02}\"]", i - 1),
        };
        s.push_str(&format!(
            "[steps.s{i:02}]\nneeds = {needs}\nrun = \"echo start s{i:02} >> trace; sleep 0.0{}; echo done s{i:02} >> trace\"\n",
            i % 5
        ));
        if i % 3 == 0 {
            s.push_str("idempotent = true\n");
        }
        if i % 4 == 0 {
            s.push_str(&format!("compensate = {{ run = \"echo undo s{i:02} >> trace\" }}\n"));
        }
    }
    s
}

pub(crate) fn runbook_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(args)
        .arg("--state")
        .arg(dir.join("state.db"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Start `args`, kill it with SIGKILL after `after` (if still running). Some(code) if it
/// finished by itself.
fn run_and_maybe_kill(dir: &Path, args: &[&str], after: Option<Duration>) -> (Option<i32>, String) {
    let mut child = runbook_cmd(dir, args).spawn().expect("spawn");
    if let Some(after) = after {
        let deadline = Instant::now() + after;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            return (None, String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    let out = child.wait_with_output().expect("wait");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// Runs `runbook ARGS` and kills it `jitter` after the `trace` file holds `lines` lines,
/// so the kill lands while units run however slow the machine is (a kill at a fixed
/// delay mostly lands before the run starts on a loaded machine, or after it ends on a
/// fast one). A run that ends first is waited for.
fn run_and_kill_at_line(dir: &Path, args: &[&str], lines: usize, jitter: Duration) -> (Option<i32>, String) {
    let mut child = runbook_cmd(dir, args).spawn().expect("spawn");
    let mut seen_at = None;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if seen_at.is_none() && trace(dir).len() >= lines {
            seen_at = Some(Instant::now());
        }
        if seen_at.is_some_and(|t| t.elapsed() >= jitter) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            return (None, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = child.wait_with_output().expect("wait");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// The number of trials (from `var`, else `default`) and the seed (`RUNBOOK_TORTURE_SEED`,
/// else the clock), so a failing trial can be replayed.
pub(crate) fn trials_and_seed(var: &str, default: u64) -> (u64, u64) {
    let trials = std::env::var(var).ok().and_then(|t| t.parse().ok()).unwrap_or(default);
    let seed = std::env::var("RUNBOOK_TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    });
    (trials, seed)
}

pub(crate) fn trace(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("trace")).unwrap_or_default().lines().map(str::to_string).collect()
}

pub(crate) fn run_id(dir: &Path) -> Option<String> {
    crate::support::latest_run_id(dir, &dir.join("state.db"))
}

/// Resume until the run ends, deciding steps in doubt from ground truth: a step whose
/// `done` line is in the trace ran, so it is skipped; otherwise it is re-run.
fn resume_to_end(dir: &Path, id: &str, rng: &mut Lcg, kills_left: &mut u32, reruns: &mut Vec<String>) -> i32 {
    for _ in 0..20 {
        let (code, text) = run_and_maybe_kill(dir, &["resume", id], None);
        if code == Some(4) && text.contains("steps in doubt that are not idempotent: ") {
            let list = text.split("steps in doubt that are not idempotent: ").nth(1).unwrap_or("");
            let steps: Vec<String> =
                list.lines().next().unwrap_or("").split(", ").map(|s| s.trim().to_string()).collect();
            let done = trace(dir);
            let mut args =
                vec!["resume".to_string(), id.to_string(), "--reason".into(), "checked the trace".into()];
            for s in &steps {
                if done.contains(&format!("done {s}")) {
                    args.extend(["--skip".into(), s.clone()]);
                } else {
                    args.extend(["--rerun".into(), s.clone()]);
                    reruns.push(s.clone());
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let after = (*kills_left > 0).then(|| Duration::from_millis(rng.below(300)));
            if after.is_some() {
                *kills_left -= 1;
            }
            match run_and_maybe_kill(dir, &args, after) {
                (Some(0), _) => return 0,
                (Some(code), text) if code != 4 => panic!("resume with decisions exited {code}: {text}"),
                _ => continue,
            }
        }
        match code {
            Some(0) => return 0,
            // Killed after `run_finished` was journaled: there is nothing left to do.
            Some(3) if text.contains("has finished (succeeded)") => return 0,
            // Killed before `run_started`: the run never began.
            Some(3) if text.contains("has no `run_started` record") => return -1,
            Some(code) => panic!("resume exited {code}: {text}"),
            None => continue,
        }
    }
    panic!("the run did not finish after 20 resumes");
}

/// How many trials run at once in the torture tests. Each trial has its own folder, state
/// store and engines, and mostly waits for its steps' sleeps; running several at once keeps
/// every trial (and what each asserts) and only shortens the wall time.
pub(crate) const TRIALS_AT_ONCE: u64 = 4;

/// Runs `trial(index, rng)` for each of `trials` indexes, [`TRIALS_AT_ONCE`] at a time. Each
/// trial's generator is seeded from `seed` and its index alone, so `RUNBOOK_TORTURE_SEED`
/// replays any trial whatever ran beside it. A failing trial's panic fails the test.
pub(crate) fn run_trials(trials: u64, seed: u64, trial: impl Fn(u64, &mut Lcg) + Sync) {
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..TRIALS_AT_ONCE.min(trials) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= trials {
                        break;
                    }
                    let mut rng = Lcg(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    trial(index, &mut rng);
                }
            });
        }
    });
}

/// What the trials of [`killed_and_resumed_runs_never_repeat_completed_work`] saw.
#[derive(Default)]
struct Tally {
    killed: AtomicUsize,
    decided: AtomicUsize,
    before_start: AtomicUsize,
}

#[test]
fn killed_and_resumed_runs_never_repeat_completed_work() {
    let (trials, seed) = trials_and_seed("RUNBOOK_TORTURE_TRIALS", 100);
    let text = runbook();
    let tally = Tally::default();
    run_trials(trials, seed, |trial, rng| {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.toml"), &text).expect("runbook");
        // Kill one trial in five in its first 150 ms, maybe before the run is journaled;
        // the others while steps run, after the trace's 1st to 59th line (of 60).
        let at_line = if rng.below(5) == 0 { 0 } else { 1 + rng.below(59) as usize };
        let jitter = Duration::from_millis(if at_line == 0 { rng.below(150) } else { rng.below(20) });
        let (code, out) = run_and_kill_at_line(dir.path(), &["run", "r.toml"], at_line, jitter);
        let context = format!("trial {trial} (RUNBOOK_TORTURE_SEED={seed})");
        let mut reruns = Vec::new();
        match code {
            Some(0) => {}
            Some(c) => panic!("{context}: the first run exited {c}: {out}"),
            None => {
                tally.killed.fetch_add(1, Ordering::Relaxed);
                let Some(id) = run_id(dir.path()) else {
                    tally.before_start.fetch_add(1, Ordering::Relaxed);
                    // Killed before the run was recorded: nothing may have run.
                    assert!(
                        trace(dir.path()).is_empty(),
                        "{context}: steps ran before the run was journaled"
                    );
                    return;
                };
                let mut kills = 1;
                match resume_to_end(dir.path(), &id, rng, &mut kills, &mut reruns) {
                    0 => {
                        tally.decided.fetch_add(usize::from(!reruns.is_empty()), Ordering::Relaxed);
                    }
                    _ => {
                        tally.before_start.fetch_add(1, Ordering::Relaxed);
                        assert!(
                            trace(dir.path()).is_empty(),
                            "{context}: steps ran before the run was journaled"
                        );
                        return;
                    }
                }
            }
        }
        // Ground truth against the journal.
        let lines = trace(dir.path());
        let mut done: BTreeMap<String, usize> = BTreeMap::new();
        for l in &lines {
            if let Some(step) = l.strip_prefix("done ") {
                *done.entry(step.to_string()).or_default() += 1;
            }
            assert!(!l.starts_with("undo "), "{context}: a compensation ran in a run that did not fail");
        }
        assert_eq!(done.len(), 30, "{context}: not every step completed: {done:?}");
        for (step, n) in &done {
            let idempotent = step[1..].parse::<u32>().map(|i| i % 3 == 0).unwrap_or(false);
            let allowed = if idempotent || reruns.contains(step) { 2 } else { 1 };
            assert!(
                *n <= allowed,
                "{context}: `{step}` completed {n} times (idempotent: {idempotent})\n{lines:#?}"
            );
        }
        let id = run_id(dir.path()).expect("run id");
        let verify = runbook_cmd(dir.path(), &["audit", "verify", &id]).output().expect("verify");
        assert_eq!(verify.status.code(), Some(0), "{context}: {}", String::from_utf8_lossy(&verify.stdout));
        // No step process outlived its engine: no live process works in this trial's folder.
        std::thread::sleep(Duration::from_millis(50));
        let left = processes_in(dir.path());
        assert!(left.is_empty(), "{context}: processes left behind: {left:?}");
    });
    let (killed, decided, before_start) = (
        tally.killed.load(Ordering::Relaxed),
        tally.decided.load(Ordering::Relaxed),
        tally.before_start.load(Ordering::Relaxed),
    );
    eprintln!(
        "crash torture: {trials} trials, {killed} killed mid-run ({before_start} before the run began), \
         {decided} needed an operator re-run; seed {seed}"
    );
    // The test is only worth its time if it kills runs in flight.
    assert!(trials < 10 || killed * 2 >= trials as usize, "too few trials were killed mid-run: {killed}");
}

/// Live (non-zombie) processes whose working directory is `dir`.
pub(crate) fn processes_in(dir: &Path) -> Vec<i32> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .filter(|pid| runbook_exec::process::process_state(*pid).is_some_and(|(s, _)| s != 'Z' && s != 'X'))
        .collect()
}

/// The included runbook of [`units_runbook`]: a step with a compensation and a `finally`.
const UNITS_CHILD: &str = r#"[runbook]
name = "child"

[steps.x]
run = "echo start inc/x >> trace; sleep 0.02; echo done inc/x >> trace"
compensate = { run = "echo start undo-inc/x >> trace; sleep 0.02; echo done undo-inc/x >> trace" }

[finally.y]
run = "echo start inc/y >> trace; sleep 0.02; echo done inc/y >> trace"
"#;

/// Every kind of unit the engine starts: steps (idempotent or not), an included runbook's
/// steps, compensations (idempotent or not, its own and the included runbook's), `finally`
/// steps (its own and the included runbook's). Each writes `start U` and `done U` around a
/// short sleep; `c` fails when the file `fail-c` exists, so half the trials compensate.
fn units_runbook() -> String {
    let unit = |u: &str| format!("echo start {u} >> trace; sleep 0.02; echo done {u} >> trace");
    format!(
        r#"[runbook]
name = "units"
max-parallel = 2

[steps.a]
needs = []
run = "{a}"
compensate = {{ run = "{undo_a}" }}

[steps.b]
needs = []
run = "{b}"
idempotent = true
compensate = {{ run = "{undo_b}", idempotent = true }}

[steps.inc]
needs = ["a"]
runbook = {{ file = "child.toml" }}

[steps.c]
needs = ["inc", "b"]
run = "{c}; test ! -e fail-c"

[finally.f1]
run = "{f1}"

[finally.f2]
run = "{f2}"
idempotent = true
"#,
        a = unit("a"),
        undo_a = unit("undo-a"),
        b = unit("b"),
        undo_b = unit("undo-b"),
        c = unit("c"),
        f1 = unit("f1"),
        f2 = unit("f2"),
    )
}

/// Units that are not idempotent: none may start twice unless an operator said `--rerun`.
const NOT_IDEMPOTENT: [&str; 7] = ["a", "c", "f1", "inc/x", "inc/y", "undo-a", "undo-inc/x"];

/// Ground truth, from the trace: no unit of `units` (not idempotent) started more often than
/// once plus the operators' `--rerun`s of it, none completed twice; and the journal verifies.
pub(crate) fn ran_at_most_as_decided(dir: &Path, id: &str, units: &[&str], reruns: &[String], context: &str) {
    let lines = trace(dir);
    for unit in units {
        let started = lines.iter().filter(|l| **l == format!("start {unit}")).count();
        let done = lines.iter().filter(|l| **l == format!("done {unit}")).count();
        let allowed = 1 + reruns.iter().filter(|r| r == unit).count();
        assert!(done <= 1, "{context}: `{unit}` completed {done} times\n{lines:#?}");
        assert!(
            started <= allowed,
            "{context}: `{unit}` started {started} times (allowed {allowed})\n{lines:#?}"
        );
    }
    let verify = runbook_cmd(dir, &["audit", "verify", id]).output().expect("verify");
    assert_eq!(verify.status.code(), Some(0), "{context}: {}", String::from_utf8_lossy(&verify.stdout));
}

/// Start `drivers` engines of the same command at once; kill one of them after `kill`.
fn race_drivers(
    dir: &Path,
    args: &[&str],
    drivers: usize,
    kill: Option<Duration>,
) -> Vec<(Option<i32>, String)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..drivers)
            .map(|i| s.spawn(move || run_and_maybe_kill(dir, args, if i == 0 { kill } else { None })))
            .collect();
        handles.into_iter().map(|h| h.join().expect("driver")).collect()
    })
}

/// The class rule of issue 11: a start record without an end record means in doubt, for
/// every kind of unit. Runs with every kind of unit are killed at random moments, then
/// driven to their end by several engines at once (`resume`, or `compensate` for a run
/// that was compensating), some killed too; units in doubt are decided from ground truth,
/// as a careful operator would. Checked from the trace and the journal: no unit that is
/// not idempotent started twice unless an operator said `--rerun` for it, none completed
/// twice, exactly one engine won each race. `RUNBOOK_UNIT_TORTURE_TRIALS` (default 8).
#[test]
fn every_kind_of_unit_in_doubt_waits_for_a_decision_or_is_idempotent() {
    let (trials, seed) = trials_and_seed("RUNBOOK_UNIT_TORTURE_TRIALS", 8);
    let text = units_runbook();
    let (decided, killed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let doubted: std::sync::Mutex<std::collections::BTreeSet<String>> = Default::default();
    run_trials(trials, seed, |trial, rng| {
        let context = format!("trial {trial} (RUNBOOK_TORTURE_SEED={seed})");
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        std::fs::write(dir.join("r.toml"), &text).expect("runbook");
        std::fs::write(dir.join("child.toml"), UNITS_CHILD).expect("child");
        if rng.below(2) == 0 {
            std::fs::write(dir.join("fail-c"), "").expect("fail-c");
        }
        // Killed while some unit runs: after the trace's 1st to 13th line (a run that
        // completes writes 14), give or take the length of a unit.
        let at_line = 1 + rng.below(13) as usize;
        let (code, out) =
            run_and_kill_at_line(dir, &["run", "r.toml"], at_line, Duration::from_millis(rng.below(30)));
        let Some(id) = run_id(dir) else {
            assert!(trace(dir).is_empty(), "{context}: units ran before the run was journaled: {out}");
            return;
        };
        let mut reruns: Vec<String> = Vec::new();
        let mut command = "resume";
        let mut decisions: Vec<String> = Vec::new();
        let mut finished = code.is_some_and(|c| c == 0 || c == 1);
        killed.fetch_add(usize::from(code.is_none()), Ordering::Relaxed);
        let mut kills = 2;
        for _ in 0..40 {
            if finished {
                break;
            }
            let mut args = vec![command.to_string(), id.clone(), "--yes".into()];
            args.append(&mut decisions);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let kill = (kills > 0 && rng.below(2) == 0).then(|| Duration::from_millis(rng.below(300)));
            kills -= u32::from(kill.is_some());
            let outs = race_drivers(dir, &args, 1 + rng.below(3) as usize, kill);
            let won = outs
                .iter()
                .filter(|(c, text)| matches!(c, Some(0 | 1)) && !text.contains("nothing to compensate"))
                .count();
            assert!(won <= 1, "{context}: {won} engines carried out the run: {outs:#?}");
            for (c, text) in &outs {
                match c {
                    Some(0 | 1) | None => {}
                    // Lost the race to another engine: refused, naming the holder.
                    Some(5) => assert!(
                        text.contains("held by run") || text.contains("changed since this engine read it"),
                        "{context}: {text}"
                    ),
                    Some(3)
                        if text.contains("has finished") || text.contains("undone, so it cannot go on") => {}
                    Some(4)
                        if text.contains("runbook compensate")
                            && text.contains("compensating when the engine stopped") =>
                    {
                        command = "compensate";
                    }
                    Some(4) if text.contains("in doubt that are not idempotent: ") => {
                        // Decide from ground truth: a unit that wrote `done` ran.
                        let done = trace(dir);
                        decisions.clear();
                        for line in text.lines().filter(|l| l.contains("in doubt that are not idempotent: "))
                        {
                            let compensation = line.contains("compensations in doubt");
                            let list = line.split("not idempotent: ").nth(1).unwrap_or("");
                            for step in list.split(", ").map(str::trim) {
                                let unit =
                                    if compensation { format!("undo-{step}") } else { step.to_string() };
                                let ran = done.contains(&format!("done {unit}"));
                                doubted
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .insert(unit.clone());
                                decisions.push(if ran { "--skip".into() } else { "--rerun".into() });
                                decisions.push(step.to_string());
                                if !ran {
                                    reruns.push(unit);
                                }
                            }
                        }
                        decisions.extend(["--reason".into(), "checked the trace".into()]);
                        decided.fetch_add(1, Ordering::Relaxed);
                    }
                    // `compensate` and a step in doubt that has a compensation: undo it if
                    // it ran (ground truth), leave it if it did not.
                    Some(4) if text.contains("in doubt that can be undone: ") => {
                        let done = trace(dir);
                        decisions.clear();
                        for line in text.lines().filter(|l| l.contains("in doubt that can be undone: ")) {
                            let list = line.split("can be undone: ").nth(1).unwrap_or("");
                            for step in list.split(", ").map(str::trim) {
                                let ran = done.contains(&format!("done {step}"));
                                doubted
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .insert(step.to_string());
                                decisions.push(if ran { "--undo".into() } else { "--skip".into() });
                                decisions.push(step.to_string());
                            }
                        }
                        decisions.extend(["--reason".into(), "checked the trace".into()]);
                        decided.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(c) => panic!("{context}: `{}` exited {c}: {text}", args.join(" ")),
                }
            }
            let journal = runbook_cmd(dir, &["audit", &id, "--format", "jsonl"]).output().expect("audit");
            finished = String::from_utf8_lossy(&journal.stdout)
                .lines()
                .last()
                .is_some_and(|l| l.contains("\"kind\":\"run_finished\""));
        }
        assert!(finished, "{context}: the run did not finish");
        ran_at_most_as_decided(dir, &id, &NOT_IDEMPOTENT, &reruns, &context);
        std::thread::sleep(Duration::from_millis(50));
        assert!(processes_in(dir).is_empty(), "{context}: processes left behind");
    });
    let (decided, killed) = (decided.load(Ordering::Relaxed), killed.load(Ordering::Relaxed));
    let doubted = doubted.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    eprintln!(
        "unit torture: {trials} trials, {killed} killed mid-run, {decided} operator decisions about {doubted:?}; seed {seed}"
    );
    // Only worth its time if it kills runs in flight.
    assert!(trials < 8 || killed * 2 >= trials as usize, "too few trials were killed mid-run: {killed}");
}

/// Starts `runbook ARGS` and SIGKILLs it once the trace holds `line`; waits for it otherwise.
fn kill_when_traced(dir: &Path, args: &[&str], line: &str) -> Option<i32> {
    let mut child = runbook_cmd(dir, args).spawn().expect("spawn");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if trace(dir).iter().any(|l| l == line) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// CI failure of `every_kind_of_unit_in_doubt_waits_for_a_decision_or_is_idempotent`
/// (`compensate --rerun inc/x` exited 2, "`inc/x` is not in doubt"): two engines were given
/// the operator's decision; the first carried it out (the compensation of `inc/x` ran
/// again and ended) and died before the run ended; the second, taking over, refused the
/// same decision as naming a unit not in doubt. A decision already journaled and carried
/// out is accepted again as done (never acted on twice), for every kind of unit: the run
/// goes on and asks only for what is still in doubt.
#[test]
fn a_decision_another_engine_carried_out_is_accepted_as_done() {
    let child = r#"[runbook]
name = "child"

[steps.x]
run = "echo start inc/x >> trace; while grep -qx inc/x hold; do sleep 0.01; done; echo done inc/x >> trace"
compensate = { run = "echo start undo-inc/x >> trace; while grep -qx undo-inc/x hold; do sleep 0.01; done; echo done undo-inc/x >> trace" }

[finally.y]
run = "echo start inc/y >> trace; while grep -qx inc/y hold; do sleep 0.01; done; echo done inc/y >> trace"
"#;
    let top = r#"[runbook]
name = "units"

[steps.a]
run = "echo start a >> trace; while grep -qx a hold; do sleep 0.01; done; echo done a >> trace"
compensate = { run = "echo start undo-a >> trace; while grep -qx undo-a hold; do sleep 0.01; done; echo done undo-a >> trace" }

[steps.inc]
needs = ["a"]
runbook = { file = "child.toml" }

[steps.c]
needs = ["inc"]
run = "echo start c >> trace; while grep -qx c hold; do sleep 0.01; done; test ! -e fail-c"

[finally.f]
run = "echo start f >> trace; while grep -qx f hold; do sleep 0.01; done; echo done f >> trace"
"#;
    // Each case: the unit the first run dies in, the command that decides it, the unit
    // (name in the trace), and whether the run fails (so `compensate` is the command).
    let cases: [(&str, &str, &str); 5] = [
        ("compensate", "inc/x", "undo-inc/x"),
        ("compensate", "a", "undo-a"),
        ("resume", "inc/x", "inc/x"),
        ("resume", "inc/y", "inc/y"),
        ("resume", "a", "a"),
    ];
    for (command, name, unit) in cases {
        let context = format!("{command} --rerun {name}");
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        std::fs::write(dir.join("r.toml"), top).expect("runbook");
        std::fs::write(dir.join("child.toml"), child).expect("child");
        if command == "compensate" {
            std::fs::write(dir.join("fail-c"), "").expect("fail-c");
        }
        // The first engine dies while `unit` runs (held by the file `hold`): it is in doubt.
        std::fs::write(dir.join("hold"), format!("{unit}\n")).expect("hold");
        assert_eq!(kill_when_traced(dir, &["run", "r.toml"], &format!("start {unit}")), None, "{context}");
        let id = run_id(dir).expect("run id");
        let ask = runbook_cmd(dir, &[command, &id, "--yes"]).output().expect("ask");
        let text = String::from_utf8_lossy(&ask.stderr).into_owned();
        assert_eq!(ask.status.code(), Some(4), "{context}: {text}");
        assert!(text.contains(&format!("not idempotent: {name}")), "{context}: {text}");
        // The operator decides; an engine carries the decision out and dies before the run ends.
        let decided = [command, id.as_str(), "--yes", "--rerun", name, "--reason", "checked the trace"];
        let next = match (command, unit) {
            ("compensate", "undo-a") => "f",
            ("compensate", _) => "undo-a",
            _ => "c",
        };
        std::fs::write(dir.join("hold"), format!("{next}\n")).expect("hold");
        assert_eq!(kill_when_traced(dir, &decided, &format!("start {next}")), None, "{context}");
        std::fs::write(dir.join("hold"), "").expect("hold");
        // A second engine given the same decision takes the run over: it accepts the
        // decision as carried out and the run ends, `unit` having started twice, not thrice.
        let mut finished = false;
        let mut reruns = vec![unit.to_string()];
        let mut args: Vec<String> = decided.iter().map(|s| s.to_string()).collect();
        for _ in 0..5 {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = runbook_cmd(dir, &argv).output().expect("engine");
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if (command, name) == ("compensate", "inc/x") && argv.contains(&"checked the trace") {
                let note = text.lines().find(|l| l.contains("already holds")).unwrap_or("no note");
                insta::assert_snapshot!("decision_already_carried_out", note.replace(&id, "[run]"));
            }
            match out.status.code() {
                Some(0 | 1) => {
                    finished = true;
                    break;
                }
                // Something else in doubt (what the dead engine was running): decided again.
                Some(4) if text.contains("not idempotent: ") => {
                    let list =
                        text.split("not idempotent: ").nth(1).unwrap_or("").lines().next().unwrap_or("");
                    args = vec![command.into(), id.clone(), "--yes".into(), "--reason".into(), "r".into()];
                    for step in list.split(", ") {
                        let unit = if text.contains("compensations in doubt") {
                            format!("undo-{step}")
                        } else {
                            step.into()
                        };
                        let ran = trace(dir).contains(&format!("done {unit}"));
                        args.extend([if ran { "--skip" } else { "--rerun" }.into(), step.to_string()]);
                        if !ran {
                            reruns.push(unit);
                        }
                    }
                }
                c => panic!("{context}: `{}` exited {c:?}: {text}", argv.join(" ")),
            }
        }
        assert!(finished, "{context}: the run did not finish");
        ran_at_most_as_decided(dir, &id, &NOT_IDEMPOTENT, &reruns, &context);
    }
}

/// CI failure of `holder::no_unit_is_decided_about_or_run_again_while_a_stalled_or_killed_engine_s_process_lives`
/// (seed 1796603238440715697): a run failed under `on-failure = "compensate"` with nothing
/// to undo, its engine died while the `finally` step ran, and `compensate RUN --rerun f`
/// answered "nothing to compensate" (exit 0): the operator's decision was never carried
/// out and the run could never finish. `compensate` finishes a run that had failed and was
/// undoing itself whether or not a compensation was left (the core's `undid_itself`).
#[test]
fn compensate_finishes_a_failed_run_whose_finally_step_was_in_doubt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    std::fs::write(
        dir.join("r.toml"),
        "[runbook]\nname = \"nothing-to-undo\"\n\n[steps.a]\nrun = \"exit 1\"\non-failure = \"compensate\"\n\n[finally.f]\nrun = \"echo start f >> trace; test -e quick || sleep 30; echo done f >> trace\"\n",
    )
    .expect("runbook");
    assert_eq!(kill_when_traced(dir, &["run", "r.toml", "--yes"], "start f"), None, "killed in f");
    let id = run_id(dir).expect("a run id");
    let out = runbook_cmd(dir, &["compensate", &id, "--yes"]).output().expect("compensate");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("in doubt that are not idempotent: f"), "{text}");
    std::fs::write(dir.join("quick"), "").expect("quick");
    let out = runbook_cmd(dir, &["compensate", &id, "--yes", "--rerun", "f", "--reason", "checked"])
        .output()
        .expect("compensate --rerun");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("nothing to compensate"), "{text}");
    let journal = runbook_cmd(dir, &["audit", &id, "--format", "jsonl"]).output().expect("audit");
    let journal = String::from_utf8_lossy(&journal.stdout).into_owned();
    assert!(journal.lines().last().is_some_and(|l| l.contains("\"kind\":\"run_finished\"")), "{journal}");
}

/// Red team adv21-1 (promise 1): a `sql` step whose SQLite database is the engine's own
/// store, opened with a VFS that closes its own descriptor (`vfs=unix-none`), dropped the
/// engine's locks; a backup then deleted the log under the run, and a step the journal had
/// recorded ran again after a crash. A SQLite step never opens the store (any path, any
/// VFS), nor attaches a database; the store keeps its log and the run its records.
#[test]
fn a_sql_step_never_opens_the_engines_store() {
    let s = crate::support::Scratch::new("[runbook]\nname = \"x\"\n");
    let state = s.state();
    let runbook = format!(
        "[runbook]\nname = \"guard\"\nmax-parallel = 1\n\n[steps.peek]\nsql = {{ url = \"sqlite://{state}?mode=ro&vfs=unix-none\", query = \"SELECT count(*) AS n FROM sqlite_master\", read-only = true }}\non-failure = \"continue\"\n\n[steps.attach]\nneeds = []\nsql = {{ url = \"sqlite:other.db\", query = \"ATTACH DATABASE 'file:{state}?vfs=unix-none' AS s\" }}\non-failure = \"continue\"\n\n[steps.backup]\nneeds = []\nrun = \"sqlite3 '{state}' '.backup copy.db'\"\n\n[steps.pay]\nneeds = []\nrun = \"echo paid >> side-effects\"\n"
    );
    std::fs::write(s.path().join("r.toml"), runbook).expect("runbook");
    let out = s.run(&["--yes"], &[]);
    assert!(
        out.stdout.contains("is the state store this engine journals to"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("attaches a database"), "{}", out.stdout);
    assert_eq!(s.read("side-effects"), "paid\n");
    // The engine kept its locks: the backup beside it left the store whole, and a fresh
    // process reads every record the run wrote, its end included.
    let run = s.latest_run();
    let show = s.cmd(&["show", &run], &[]);
    assert!(show.stdout.contains("pay") && show.stdout.contains("succeeded"), "{}", show.stdout);
    crate::support::ok(&s.cmd(&["audit", "verify", &run], &[]), 0);
}
