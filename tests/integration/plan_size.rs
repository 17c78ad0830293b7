//! Plan documents stay linear in the size of the runbook (promise 5, issue 15): no per-step
//! or per-pair list of a plan, a review document or a plan diff may grow with the square of
//! the number of steps. Through the real binary, on adversarial shapes (a long chain where
//! every step has a compensation, fan-in/fan-out around a hub, complete bipartite layers, a
//! wide fan, many points of no return, repeated includes), in every format, `plan --diff` and
//! `plan --against` in a real git repository. Each asserts the output's bytes against the
//! input's: `output ≤ C × input`. The binary runs under `ulimit -v` (a memory bound, not a
//! time bound): a plan that held the n² chains ran out of memory.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::plan_diff::git;
use crate::support::bin;

/// At most this many bytes of output per byte of runbook, in every format.
const C: u64 = 60;

/// The binary's address space, in KiB (`ulimit -v`): far above what a linear plan of these
/// runbooks needs, far below what the quadratic one took.
const MEMORY_KIB: u64 = 3_000_000;

/// `runbook ARGS` in `dir` under [`MEMORY_KIB`], its standard output written to `out` (not
/// held in memory): the exit code and the output's size in bytes.
fn plan_to_file(dir: &Path, args: &[&str], out: &str) -> (i32, u64) {
    let file = std::fs::File::create(dir.join(out)).expect("output file");
    let script = format!("ulimit -v {MEMORY_KIB}; exec '{}' \"$@\"", bin());
    let mut argv = vec!["-c", script.as_str(), "runbook"];
    argv.extend_from_slice(args);
    let status = Command::new("bash")
        .args(&argv)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::null())
        .status()
        .expect("bash runs");
    let size = std::fs::metadata(dir.join(out)).expect("output").len();
    (status.code().unwrap_or(-1), size)
}

/// Asserts that `output` bytes are at most [`C`] times `input` bytes.
fn linear(what: &str, input: u64, output: u64) {
    assert!(
        output <= C * input,
        "{what}: {output} bytes of output for {input} bytes of runbook ({}×, at most {C}×)",
        output / input.max(1)
    );
}

fn step(id: &str, needs: Option<&[String]>, compensate: bool, extra: &str) -> String {
    let mut t = format!("\n[steps.{id}]\n");
    if let Some(n) = needs {
        let list: Vec<String> = n.iter().map(|x| format!("\"{x}\"")).collect();
        t.push_str(&format!("needs = [{}]\n", list.join(", ")));
    }
    t.push_str(&format!("run = \"echo {id}\"\n"));
    if compensate {
        t.push_str(&format!("compensate = {{ run = \"echo undo {id}\" }}\n"));
    }
    t.push_str(extra);
    t
}

/// `n` steps one after the other (each needs the one before, as steps without `needs` do),
/// every one with a compensation: step i's chain is i long.
fn chain(n: usize, first: &str) -> String {
    let mut t = String::from("[runbook]\nname = \"chain\"\n");
    t.push_str(&step(first, None, true, ""));
    for i in 0..n - 1 {
        t.push_str(&step(&format!("s{i:05}"), None, true, ""));
    }
    t
}

/// `k` compensable steps all needed by a hub without compensation, then `k` compensable
/// steps that need the hub: the chain of each later step is `k` long.
fn fan_in_out(k: usize) -> String {
    let mut t = String::from("[runbook]\nname = \"fan\"\n");
    let firsts: Vec<String> = (0..k).map(|i| format!("a{i:04}")).collect();
    for id in &firsts {
        t.push_str(&step(id, Some(&[]), true, ""));
    }
    t.push_str(&step("hub", Some(&firsts), false, ""));
    for i in 0..k {
        t.push_str(&step(&format!("b{i:04}"), Some(&["hub".to_string()]), true, ""));
    }
    t
}

/// `layers` layers of `width` compensable steps, each step needing every step of the layer
/// before (complete bipartite layers).
fn layers(layers: usize, width: usize) -> String {
    let mut t = String::from("[runbook]\nname = \"layers\"\n");
    let mut before: Vec<String> = Vec::new();
    for l in 0..layers {
        let now: Vec<String> = (0..width).map(|w| format!("l{l:02}w{w:02}")).collect();
        for id in &now {
            t.push_str(&step(id, Some(&before), true, ""));
        }
        before = now;
    }
    t
}

/// One compensable root and `n` compensable steps that need it alone.
fn wide_fan(n: usize) -> String {
    let mut t = String::from("[runbook]\nname = \"wide\"\n");
    t.push_str(&step("root", Some(&[]), true, ""));
    for i in 0..n {
        t.push_str(&step(&format!("f{i:05}"), Some(&["root".to_string()]), true, ""));
    }
    t
}

/// `k` compensable steps one after the other, then `k` steps that stop on failure and need
/// the last of them: each is a point of no return that would leave all `k` as they are.
fn no_return(k: usize) -> String {
    let mut t = String::from("[runbook]\nname = \"noreturn\"\n");
    for i in 0..k {
        t.push_str(&step(&format!("a{i:04}"), None, true, ""));
    }
    let last = vec![format!("a{:04}", k - 1)];
    for i in 0..k {
        t.push_str(&step(&format!("b{i:04}"), Some(&last), false, "on-failure = \"stop\"\n"));
    }
    t
}

/// `runbook ARGS --format F` for every format of a plan diff: each exits 1 (different), is
/// linear in `input` bytes and shows the changed command. The markdown diff, returned.
fn every_diff_format(dir: &Path, args: &[&str], input: u64) -> String {
    let mut markdown = String::new();
    for format in ["text", "markdown", "json"] {
        let out = format!("diff.{format}");
        let mut all = args.to_vec();
        all.extend(["--format", format]);
        let (code, bytes) = plan_to_file(dir, &all, &out);
        assert_eq!(code, 1, "{args:?} --format {format}");
        linear(&format!("{args:?} --format {format}"), input, bytes);
        let text = std::fs::read_to_string(dir.join(&out)).expect("diff");
        assert!(text.contains("echo changed"), "{format}: the changed command is shown");
        assert!(text.contains("compensation_chain") || !args.contains(&"--diff"), "{format}");
        if format == "markdown" {
            markdown = text;
        }
    }
    markdown
}

const FORMATS: &[&str] = &["text", "json", "markdown", "html", "dot"];

/// Every format of `runbook plan FILE` for the runbook `text`, each linear in `input` bytes
/// (the runbook's, or its expanded size when it includes others).
fn every_format(dir: &Path, name: &str, input: Option<u64>) {
    let size = input.unwrap_or_else(|| std::fs::metadata(dir.join(name)).expect("runbook").len());
    for format in FORMATS {
        let out = format!("{name}.{format}");
        let (code, bytes) = plan_to_file(dir, &["plan", name, "--format", format], &out);
        assert_eq!(code, 0, "{name} --format {format}");
        linear(&format!("{name} --format {format}"), size, bytes);
    }
}

/// A 2,000-step chain where every step has a compensation: each step's compensation chain
/// lists every step before it, n²/2 ids (the JSON plan of 5,000 steps was 215 MB before format
/// version 2; at 2,000 steps the quadratic plan is still over 100 times its runbook, so the
/// bound below tells the two apart at a size CI runs in seconds). Every format stays a small
/// multiple of the runbook.
#[test]
fn every_format_of_a_2000_step_compensated_chain_is_linear_in_the_runbook() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("chain.toml"), chain(2000, "start")).expect("write");
    every_format(dir.path(), "chain.toml", None);
}

/// Fan-in/fan-out: 2,000 compensable steps, a hub, 2,000 compensable steps after it.
#[test]
fn every_format_of_a_fan_in_fan_out_around_a_hub_is_linear_in_the_runbook() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fan.toml"), fan_in_out(2000)).expect("write");
    every_format(dir.path(), "fan.toml", None);
}

/// The corpus of other adversarial shapes, every format: complete bipartite layers, a wide
/// fan, many points of no return, and a runbook that includes a compensated chain many
/// times (plans expand includes: the bound is the expanded runbook text, which RB065 caps).
#[test]
fn every_format_of_adversarial_shapes_is_linear_in_the_runbook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("layers.toml"), layers(60, 12)).expect("write");
    every_format(p, "layers.toml", None);
    std::fs::write(p.join("wide.toml"), wide_fan(3000)).expect("write");
    every_format(p, "wide.toml", None);
    std::fs::write(p.join("noreturn.toml"), no_return(1500)).expect("write");
    every_format(p, "noreturn.toml", None);
    let child = chain(300, "start");
    std::fs::write(p.join("child.toml"), &child).expect("write");
    let mut parent = String::from("[runbook]\nname = \"parent\"\n");
    for i in 0..10 {
        parent.push_str(&format!(
            "\n[steps.inc{i:02}]\nrunbook = {{ file = \"child.toml\" }}\ncompensate = {{ run = \"echo undo {i}\" }}\n"
        ));
    }
    std::fs::write(p.join("parent.toml"), &parent).expect("write");
    let expanded = (parent.len() + 10 * child.len()) as u64;
    every_format(p, "parent.toml", Some(expanded));
}

/// `plan --diff` of two 3,000-step compensated chains, the second with one more step at
/// its start (every step's chain changed) and one command changed: linear in the plans'
/// runbooks, in every diff format. (The quadratic plan of 3,000 steps was 80 MB.)
#[test]
fn plan_diff_of_two_3000_step_compensated_chains_is_linear_in_the_runbook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let old = chain(3000, "start");
    let new = chain(3000, "begin").replace("[runbook]\nname = \"chain\"\n", "[runbook]\nname = \"chain\"\n\n[steps.first]\nrun = \"echo first\"\ncompensate = { run = \"echo undo first\" }\n").replace("echo s01500\"", "echo changed\"");
    std::fs::write(p.join("old.toml"), &old).expect("write");
    std::fs::write(p.join("new.toml"), &new).expect("write");
    assert_eq!(plan_to_file(p, &["plan", "old.toml", "-o", "old.json"], "o.out").0, 0);
    assert_eq!(plan_to_file(p, &["plan", "new.toml", "-o", "new.json"], "n.out").0, 0);
    let input = (old.len() + new.len()) as u64;
    let text = every_diff_format(p, &["plan", "--diff", "old.json", "new.json"], input);
    assert!(text.contains("compensation_chain"), "the changed chains are shown");
}

/// `plan FILE --against REV` of a 2,500-step compensated chain in a real git repository, a
/// step added at its start (a 6,000-step chain ran out of memory when every plan held its
/// n²/2 chain ids).
#[test]
fn plan_against_a_revision_of_a_2500_step_compensated_chain_is_linear_in_the_runbook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let old = chain(2500, "start");
    std::fs::write(p.join("r.toml"), &old).expect("write");
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "chain"]);
    // A new first step changes every step's chain (the old plans listed each whole chain
    // in the diff, was and now: quadratic), and one command changes.
    let new = old
        .replace("[runbook]\nname = \"chain\"\n", "[runbook]\nname = \"chain\"\n\n[steps.first]\nrun = \"echo first\"\ncompensate = { run = \"echo undo first\" }\n")
        .replace("echo s01200\"", "echo changed\"");
    std::fs::write(p.join("r.toml"), &new).expect("write");
    let input = (old.len() + new.len()) as u64;
    every_diff_format(p, &["plan", "r.toml", "--against", "HEAD"], input);
}

/// A plan saved by the previous release (`format_version` 1, whole `compensation_chain`
/// lists) still diffs against a version 2 plan: equal when the runbook did not change (its
/// lists read as their summaries), and the change shown when it did. A chain longer than 30
/// is read as its count and first 30.
#[test]
fn a_version_1_plan_of_the_previous_release_still_diffs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("r.toml"), chain(40, "start")).expect("write");
    assert_eq!(plan_to_file(p, &["plan", "r.toml", "-o", "v2.json"], "o.out").0, 0);
    let v2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("v2.json")).expect("read")).expect("json");
    assert_eq!(v2["format_version"], 2);
    // The version 1 document of the same plan: every chain as its whole list (the ids
    // before the step in a chain, the latest first).
    let mut v1 = v2.clone();
    v1["format_version"] = 1.into();
    let ids: Vec<String> = v2["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    for (i, s) in v1["steps"].as_array_mut().expect("steps").iter_mut().enumerate() {
        let whole: Vec<serde_json::Value> = ids[..i].iter().rev().map(|id| id.as_str().into()).collect();
        assert_eq!(s["compensation_chain"]["count"], whole.len());
        s["compensation_chain"] = serde_json::Value::Array(whole);
    }
    std::fs::write(p.join("v1.json"), v1.to_string()).expect("write");
    let same = crate::support::run_in(p, &["plan", "--diff", "v1.json", "v2.json"]);
    crate::support::ok(&same, 0);
    assert!(same.stdout.contains("no change"), "{}", same.stdout);
    // A version 1 plan with one step fewer in its chains: the counts are shown.
    let mut shorter = v1.clone();
    for s in shorter["steps"].as_array_mut().expect("steps") {
        if let Some(list) = s["compensation_chain"].as_array_mut() {
            list.retain(|id| id != "start");
        }
    }
    std::fs::write(p.join("shorter.json"), shorter.to_string()).expect("write");
    let changed = crate::support::run_in(p, &["plan", "--diff", "shorter.json", "v2.json"]);
    crate::support::ok(&changed, 1);
    assert!(changed.stdout.contains("compensation_chain.count: 38 → 39"), "{}", changed.stdout);
    assert!(
        changed.stdout.contains("compensation_chain: [\"s00000\"] → [\"s00000\",\"start\"]"),
        "{}",
        changed.stdout
    );
}

/// The plan of a 5,000-step compensated chain (about 10 MB of JSON, more than a runbook file
/// may be) reads back: `plan --diff` of it with itself is equal, `run --plan` accepts it as
/// the reviewed plan. A plan file is bounded by its own limit, [`MAX_PLAN_MIB`] MiB, not by a
/// runbook's 8 MiB.
#[test]
fn the_plan_of_a_5000_step_chain_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("r.toml"), chain(5000, "start")).expect("write");
    assert_eq!(plan_to_file(p, &["plan", "r.toml", "-o", "p.json"], "o.out").0, 0);
    let size = std::fs::metadata(p.join("p.json")).expect("plan").len();
    assert!(size > 8 * 1024 * 1024, "the plan is larger than a runbook file may be: {size}");
    let (code, _) = plan_to_file(p, &["plan", "--diff", "p.json", "p.json"], "d.out");
    let said = std::fs::read_to_string(p.join("d.out")).unwrap_or_default();
    assert_eq!(code, 0, "a plan equals itself: {said}");
}

/// A plan file larger than the limit is refused with a clear error naming the limit.
#[test]
fn a_plan_file_beyond_its_limit_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let f = std::fs::File::create(p.join("big.json")).expect("create");
    f.set_len(MAX_PLAN_MIB * 1024 * 1024 + 1).expect("grow");
    let out = crate::support::run_in(p, &["plan", "--diff", "big.json", "big.json"]);
    let err = &out.stderr;
    assert_ne!(out.code, 0);
    assert!(err.contains(&format!("larger than {MAX_PLAN_MIB} MiB")), "{err}");
}

/// The limit of a plan file, as the book states it.
const MAX_PLAN_MIB: u64 = 64;

/// Red team adv17b F10: review documents and diffs keep per-step sets of steps, so a runbook
/// of its own (not only one that includes others) is bounded to 10,000 steps (RB065 at the
/// first step past the limit); 10,000 steps still check.
#[test]
fn a_runbook_of_more_than_10000_steps_is_refused_and_10000_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("max.toml"), chain(10_000, "start")).expect("write");
    let out = crate::support::run_in(p, &["check", "max.toml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::write(p.join("over.toml"), chain(10_001, "start")).expect("write");
    let out = crate::support::run_in(p, &["check", "over.toml"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("error[RB065]: this runbook has 10001 steps, more than the limit of 10000"),
        "{}",
        out.stderr
    );
    let out = crate::support::run_in(p, &["plan", "over.toml", "--format", "markdown"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing is planned");
}

/// Red team adv17b F4: what `plan -o` writes, `run --plan` reads. A pretty-printed plan
/// indents each included runbook once more: 15 levels of includes over a 5,000-step
/// compensated chain made a 90 MB plan that `run --plan` refused. `plan -o` now refuses it,
/// writing nothing.
#[test]
fn plan_o_never_writes_a_plan_that_run_plan_cannot_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("leaf.toml"), chain(5000, "start").replace("name = \"chain\"", "name = \"leaf\""))
        .expect("write");
    let mut prev = "leaf.toml".to_string();
    for d in 1..=15 {
        std::fs::write(
            p.join(format!("c{d}.toml")),
            format!("[runbook]\nname = \"c{d}\"\n\n[steps.i]\nrunbook = {{ file = \"{prev}\" }}\n"),
        )
        .expect("write");
        prev = format!("c{d}.toml");
    }
    let out = crate::support::run_in(p, &["plan", "c15.toml", "-o", "c15.json"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("more than the 64 MiB a pinned plan may hold"), "{}", out.stderr);
    assert!(!p.join("c15.json").exists(), "nothing is written");
}

/// The address space (`ulimit -v`, KiB) a plan file of at most [`MAX_PLAN_MIB`] MiB is read
/// within, whatever it holds: the file, its parse and the comparison, a small multiple of the
/// file. A parsed `serde_json::Value` costs ~32 bytes per 2-byte value, cloned: the padded
/// files below took 1.1 GB (16 MiB) and 4.3 GB (64 MiB) of resident memory before.
const PLAN_FILE_MEMORY_KIB: u64 = 1_200_000;

/// `runbook ARGS` in `dir` under [`PLAN_FILE_MEMORY_KIB`]: its output.
fn bounded(dir: &Path, args: &[&str]) -> crate::support::Output {
    bounded_kib(dir, args, PLAN_FILE_MEMORY_KIB)
}

/// `runbook ARGS` in `dir` under `kib` KiB of address space (`ulimit -v`): its output.
pub(crate) fn bounded_kib(dir: &Path, args: &[&str], kib: u64) -> crate::support::Output {
    let script = format!("ulimit -v {kib}; exec '{}' \"$@\"", bin());
    let mut argv = vec!["-c", script.as_str(), "runbook"];
    argv.extend_from_slice(args);
    Command::new("bash")
        .args(&argv)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .stdin(Stdio::null())
        .output()
        .expect("bash runs")
        .into()
}

/// Red team adv17b F5: a plan document padded with a long array of small numbers (`"pad":
/// [0,0,...]`, 2 bytes a value), 16 MiB and at the 64 MiB bound, is refused by `plan --diff`
/// and `run --plan` with RB122 (too many values), counted while parsing before anything is
/// built, within a memory bound: never parsed whole into a tree of values. A real plan of
/// 5,000 compensated steps still reads back (`the_plan_of_a_5000_step_chain_reads_back`).
#[test]
fn a_plan_file_padded_with_millions_of_values_is_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("pin.toml"), "[runbook]\nname = \"pin\"\n\n[steps.a]\nrun = \"echo a\"\n")
        .expect("write");
    let out = crate::support::run_in(p, &["plan", "pin.toml", "-o", "small.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let small = std::fs::read_to_string(p.join("small.json")).expect("plan");
    let head = small.trim_end().strip_suffix('}').expect("a JSON object").to_string();
    for (name, mib) in [("pad16.json", 16u64), ("pad64.json", MAX_PLAN_MIB)] {
        let budget = (mib * 1024 * 1024) as usize - head.len() - 64;
        let mut doc = String::with_capacity(budget + head.len() + 64);
        doc.push_str(&head);
        doc.push_str(",\n  \"pad\": [0");
        while doc.len() + 4 < budget + head.len() {
            doc.push_str(",0");
        }
        doc.push_str("]\n}\n");
        assert!(doc.len() as u64 <= MAX_PLAN_MIB * 1024 * 1024, "under the bound");
        std::fs::write(p.join(name), &doc).expect("write");
        drop(doc);
        for args in [
            vec!["plan", "--diff", name, name],
            vec!["plan", "--diff", "small.json", name],
            vec!["run", "--plan", name, "--yes", "--state", "s.db"],
        ] {
            let out = bounded(p, &args);
            assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
            assert!(out.stderr.contains("RB122"), "{args:?}: {}", out.stderr);
            assert!(out.stderr.contains("more than 4000000 values"), "{args:?}: {}", out.stderr);
            assert!(!out.stderr.contains("memory allocation"), "{args:?}: {}", out.stderr);
        }
        assert!(!p.join("s.db").exists() || !p.join("marks").exists());
    }
}
