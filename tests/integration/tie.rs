//! `runbook-tie`, the small binary every step's program starts through (engine/cli/bin/tie.rs),
//! and `runbook __tie`, the fallback when it is not next to `runbook`: both tie the step's
//! program to the engine (a parent-death SIGKILL the program keeps) and report a program
//! that cannot be started alike. That a tied step dies with its engine and reaper is
//! `holder::a_step_dies_with_its_engine_even_when_the_reaper_dies_too`.

use std::process::Command;

use crate::support::{Output, Scratch, bin, ok};

const TIE: &str = env!("CARGO_BIN_EXE_runbook-tie");

fn tie(args: &[&str]) -> Output {
    Output::from(Command::new(TIE).args(args).env("NO_COLOR", "1").output().expect("runbook-tie runs"))
}

fn runbook(args: &[&str]) -> Output {
    Output::from(Command::new(bin()).args(args).env("NO_COLOR", "1").output().expect("runbook runs"))
}

#[test]
fn runbook_tie_reports_a_program_it_cannot_start_as_runbook_tie_does() {
    let me = std::process::id().to_string();
    let small = tie(&[&me, "/no/such/program", "--", "/no/such/program"]);
    let fallback = runbook(&["__tie", &me, "--", "/no/such/program"]);
    ok(&small, 127);
    ok(&fallback, 127);
    assert_eq!(small.stderr, fallback.stderr);
    assert_eq!(
        small.stderr,
        "runbook: cannot start the step's program `/no/such/program`: No such file or directory (os error 2)\n"
    );
    // What the engine found is gone: the program is searched again, and named as written.
    let gone = tie(&[&me, "/no/such/dir/no-such-tool-i13", "--", "no-such-tool-i13"]);
    ok(&gone, 127);
    assert_eq!(
        gone.stderr,
        "runbook: cannot start the step's program `no-such-tool-i13`: No such file or directory (os error 2)\n"
    );
}

#[test]
fn runbook_tie_starts_nothing_when_its_parent_is_not_the_engine() {
    let out = tie(&["1", "/bin/sh", "--", "sh", "-c", "echo started"]);
    ok(&out, 127);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("the engine is gone"), "{}", out.stderr);
    ok(&tie(&["not-a-pid", "/bin/true", "--", "true"]), 2);
    ok(&tie(&[&std::process::id().to_string(), "/bin/true", "--"]), 2);
}

#[test]
fn runbook_tie_execs_what_the_engine_found_with_the_program_s_own_name() {
    let me = std::process::id().to_string();
    // `$0` of `sh -c` without more arguments is the shell's argv[0]: the name, not the path.
    let out = tie(&[&me, "/bin/sh", "--", "sh", "-c", "echo \"$0 $1\"", "sh", "x"]);
    ok(&out, 0);
    assert_eq!(out.stdout, "sh x\n");
    let out = tie(&[&me, "/bin/sh", "--", "my-sh", "-c", "echo \"$0\""]);
    ok(&out, 0);
    assert_eq!(out.stdout, "my-sh\n");
}

/// A step that writes down the parent-death signal its main process holds
/// (`prctl(PR_GET_PDEATHSIG)`), and the name it was started as.
const PDEATHSIG: &str = r#"
[runbook]
name = "tied"

[steps.probe]
cmd = ["python3", "-c", "import ctypes, sys; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s)); open('tied.txt', 'w').write(f'{s.value}\\n')"]
"#;

/// Run `r.toml` with `engine` and read the file `name` its step wrote.
fn what_a_step_wrote(engine: &str, scratch: &Scratch, name: &str) -> String {
    let state = scratch.state();
    let out = Command::new(engine)
        .args(["run", "r.toml", "--yes", "--state", &state])
        .current_dir(scratch.path())
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .output()
        .expect("runbook runs");
    ok(&Output::from(out), 0);
    std::fs::read_to_string(scratch.path().join(name))
        .unwrap_or_else(|e| panic!("the step wrote {name}: {e}"))
}

fn pdeathsig_of_a_step(engine: &str, scratch: &Scratch) -> String {
    what_a_step_wrote(engine, scratch, "tied.txt")
}

#[test]
fn a_step_s_program_is_tied_with_runbook_tie_and_without_it() {
    // With `runbook-tie` next to `runbook` (the build puts both in one folder).
    let with = Scratch::new(PDEATHSIG);
    assert_eq!(pdeathsig_of_a_step(&bin(), &with), "9\n", "SIGKILL when the engine dies");

    // `runbook` alone in a folder: steps start through `runbook __tie`. A hard link (same
    // file system as the build) so that the engine's own path is that folder.
    let alone = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let engine = alone.path().join("runbook");
    std::fs::hard_link(bin(), &engine).expect("link runbook");
    assert!(!alone.path().join("runbook-tie").exists());
    let without = Scratch::new(PDEATHSIG);
    assert_eq!(pdeathsig_of_a_step(&engine.display().to_string(), &without), "9\n");
}

/// A step that writes down which program its engine's reaper runs (`/proc/PID/exe` of the
/// engine's child whose command line says `__reaper`; the step's parent is the engine).
const REAPER_PROGRAM: &str = r#"[runbook]
name = "reaper"
[steps.probe]
cmd = ["python3", "-c", '''
import os
engine = os.getppid()
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
        line = open(f"/proc/{p}/cmdline", "rb").read()
        if ppid == engine and line.split(b"\0")[1:2] == [b"__reaper"]:
            open("reaper.txt", "w").write(os.path.basename(os.readlink(f"/proc/{p}/exe")) + "\n")
    except OSError:
        pass
''']
"#;

fn reaper_program(engine: &str, scratch: &Scratch) -> String {
    what_a_step_wrote(engine, scratch, "reaper.txt")
}

/// The reaper, a process every run starts, runs from the small `runbook-tie` when it is
/// next to `runbook` (loading the 130 MB engine cost about 1 ms of CPU a run, bench/README.md
/// issue 13 "the targets"), and from `runbook __reaper` without it. Either way it is the
/// reaper: `holder::*` kill it and the engine through the run.
#[test]
fn the_reaper_runs_from_runbook_tie_when_it_is_there_and_from_runbook_without_it() {
    let with = Scratch::new(REAPER_PROGRAM);
    assert_eq!(reaper_program(&bin(), &with), "runbook-tie\n");

    let alone = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let engine = alone.path().join("runbook");
    std::fs::hard_link(bin(), &engine).expect("link runbook");
    let without = Scratch::new(REAPER_PROGRAM);
    assert_eq!(reaper_program(&engine.display().to_string(), &without), "runbook\n");
}

/// A step that writes down which signals its shell started with ignored (`SigIgn` of
/// `/proc/self/status`, checked for SIGPIPE, bit 12) and how `yes | head -n1` ends under
/// `pipefail`: 141 when the producer dies of SIGPIPE, as in a shell.
const SIGNALS: &str = r#"
[runbook]
name = "signals"

[steps.probe]
run = '''
ign=$(awk '/^SigIgn:/ { print $2 }' /proc/self/status)
if [ $(( 0x$ign & 0x1000 )) -ne 0 ]; then pipe=ignored; else pipe=default; fi
set +e
yes | head -n1 > /dev/null 2> yes.err
code=$?
printf 'SIGPIPE %s, yes|head %s, %s\n' "$pipe" "$code" "$(wc -c < yes.err)" > signals.txt
'''
"#;

/// Red team adv27 T1: a step starts with default signal dispositions whatever starts it.
/// Rust's runtime ignores SIGPIPE in `runbook-tie`, and its bare `execvp` kept that for the
/// step: `yes | head -n1` failed with "Broken pipe" and code 1 (through `runbook __tie`, 141).
#[test]
fn a_step_starts_with_sigpipe_at_its_default_through_runbook_tie_and_without_it() {
    let expected = "SIGPIPE default, yes|head 141, 0\n";
    let with = Scratch::new(SIGNALS);
    assert_eq!(what_a_step_wrote(&bin(), &with, "signals.txt"), expected, "through runbook-tie");

    let alone = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let engine = alone.path().join("runbook");
    std::fs::hard_link(bin(), &engine).expect("link runbook");
    let without = Scratch::new(SIGNALS);
    assert_eq!(
        what_a_step_wrote(&engine.display().to_string(), &without, "signals.txt"),
        expected,
        "through runbook __tie"
    );
}

/// A step that writes down the signals blocked in its shell (`SigBlk`).
const MASK: &str = r#"
[runbook]
name = "mask"

[steps.probe]
run = "awk '/^SigBlk:/ { print $2 }' /proc/self/status > mask.txt"
"#;

/// Red team adv28 T2: a step starts with an empty signal mask whatever started the engine.
/// A launcher that blocks SIGTERM (a supervisor, a CI agent) passed its mask to every step
/// through the tie: a step's `trap ... TERM` cleanup never ran on a timeout.
#[test]
fn a_step_starts_with_no_signal_blocked_when_the_engine_was_started_with_some() {
    let blocking = "import os, signal, sys\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP})\nos.execv(sys.argv[1], sys.argv[1:])\n";
    // `runbook` alone in a folder: steps start through `runbook __tie`.
    let alone = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let lone = alone.path().join("runbook");
    std::fs::hard_link(bin(), &lone).expect("link runbook");
    for engine in [bin(), lone.display().to_string()] {
        let s = Scratch::new(MASK);
        let state = s.state();
        let out = Command::new("python3")
            .args(["-c", blocking, &engine, "run", "r.toml", "--yes", "--state", &state])
            .current_dir(s.path())
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_STATE")
            .output()
            .expect("python3 runs the engine");
        ok(&Output::from(out), 0);
        let mask = std::fs::read_to_string(s.path().join("mask.txt")).expect("the step wrote its mask");
        assert_eq!(mask, "0000000000000000\n", "{engine}: the step's blocked signals");
    }
}
