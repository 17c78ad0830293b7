//! Crash torture: the engine is killed with SIGKILL at random moments, then resumed.
//!
//! After each trial: the run succeeded; every step ran to completion exactly once (a step in
//! doubt that is not idempotent is re-run only by an operator decision, and the test decides
//! from ground truth, as a careful operator would); the journal verifies; no step process
//! outlived a killed engine. `RUNBOOK_TORTURE_TRIALS` sets the number of trials (default 100).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small deterministic generator, so a failing trial can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
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

fn runbook_cmd(dir: &Path, args: &[&str]) -> Command {
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

fn trace(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("trace")).unwrap_or_default().lines().map(str::to_string).collect()
}

fn run_id(dir: &Path) -> Option<String> {
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

#[test]
fn killed_and_resumed_runs_never_repeat_completed_work() {
    let trials: u64 =
        std::env::var("RUNBOOK_TORTURE_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(100);
    let seed = std::env::var("RUNBOOK_TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    });
    let mut rng = Lcg(seed);
    let text = runbook();
    let (mut killed, mut decided, mut before_start) = (0, 0, 0);
    for trial in 0..trials {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.toml"), &text).expect("runbook");
        // Kill somewhere in the first ~700 ms (a full run takes about that long).
        let (code, out) =
            run_and_maybe_kill(dir.path(), &["run", "r.toml"], Some(Duration::from_millis(rng.below(700))));
        let context = format!("trial {trial} (RUNBOOK_TORTURE_SEED={seed})");
        let mut reruns = Vec::new();
        match code {
            Some(0) => {}
            Some(c) => panic!("{context}: the first run exited {c}: {out}"),
            None => {
                killed += 1;
                let Some(id) = run_id(dir.path()) else {
                    before_start += 1;
                    // Killed before the run was recorded: nothing may have run.
                    assert!(
                        trace(dir.path()).is_empty(),
                        "{context}: steps ran before the run was journaled"
                    );
                    continue;
                };
                let mut kills = 1;
                match resume_to_end(dir.path(), &id, &mut rng, &mut kills, &mut reruns) {
                    0 => decided += usize::from(!reruns.is_empty()),
                    _ => {
                        before_start += 1;
                        assert!(
                            trace(dir.path()).is_empty(),
                            "{context}: steps ran before the run was journaled"
                        );
                        continue;
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
    }
    eprintln!(
        "crash torture: {trials} trials, {killed} killed mid-run ({before_start} before the run began), \
         {decided} needed an operator re-run; seed {seed}"
    );
    // The test is only worth its time if it kills runs in flight.
    assert!(trials < 10 || killed * 2 >= trials as usize, "too few trials were killed mid-run: {killed}");
}

/// Live (non-zombie) processes whose working directory is `dir`.
fn processes_in(dir: &Path) -> Vec<i32> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .filter(|pid| runbook_exec::process::process_state(*pid).is_some_and(|(s, _)| s != 'Z' && s != 'X'))
        .collect()
}
