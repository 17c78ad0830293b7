//! `for-each` steps over `list` parameters (issue 17): each element is a step of its own,
//! `STEP[ELEMENT]`, in the plan and in the journal; runs at most `max-parallel` at once;
//! resumes and compensates per instance; and its element reaches commands through the same
//! contexts as parameters, so no element injects.

use crate::support::{Output, Scratch, kill9, ok, run_in};

/// `runbook plan ARGS` in the folder (a plan reads no store).
fn plan_of(place: &Scratch, args: &[&str]) -> Output {
    let mut all = vec!["plan", "r.toml"];
    all.extend_from_slice(args);
    run_in(place.path(), &all)
}

/// A runbook whose `drain` step runs once per host, recording what it does in `trace`.
fn hosts_runbook(max_parallel: &str, extra: &str) -> String {
    format!(
        r#"[runbook]
name = "rolling"
max-parallel = 8

[params.hosts]
type = "list"
default = ["web-1", "web-2", "web-3"]

[steps.drain]
for-each = "hosts"
{max_parallel}
run = "echo start {{{{ item }}}} >> trace; echo {{{{ item_index }}}} > ran-{{{{ item }}}}; echo end {{{{ item }}}} >> trace"
compensate = {{ run = "echo undo {{{{ item }}}} >> trace" }}

[steps.after]
needs = ["drain"]
run = "echo after >> trace"
{extra}"#
    )
}

fn trace(place: &Scratch) -> Vec<String> {
    place.read("trace").lines().map(str::to_string).collect()
}

#[test]
fn each_element_is_a_step_in_the_plan_and_runs_once() {
    let place = Scratch::new(&hosts_runbook("", ""));
    let plan = plan_of(&place, &["--format", "json"]);
    ok(&plan, 0);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    let ids: Vec<&str> =
        json["steps"].as_array().expect("steps").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["drain[web-1]", "drain[web-2]", "drain[web-3]", "after"]);
    let after = &json["steps"][3];
    assert_eq!(after["needs"], serde_json::json!(["drain[web-1]", "drain[web-2]", "drain[web-3]"]));
    let text = plan_of(&place, &[]);
    ok(&text, 0);
    assert!(text.stdout.contains("drain[web-2] [run]"), "{}", text.stdout);
    assert!(text.stdout.contains("RB_1=web-2"), "{}", text.stdout);

    ok(&place.run(&["--yes"], &[]), 0);
    for (i, host) in ["web-1", "web-2", "web-3"].iter().enumerate() {
        assert_eq!(place.read(&format!("ran-{host}")).trim(), i.to_string());
    }
    let t = trace(&place);
    for host in ["web-1", "web-2", "web-3"] {
        assert_eq!(t.iter().filter(|l| **l == format!("start {host}")).count(), 1, "{t:?}");
    }
    assert_eq!(t.last().map(String::as_str), Some("after"), "the dependent ran after every instance: {t:?}");
    let run = place.latest_run();
    let started: Vec<String> =
        place.events(&run).into_iter().filter(|(k, _)| k == "step_started").map(|(_, s)| s).collect();
    assert_eq!(started.len(), 4, "{started:?}");
    for id in ["drain[web-1]", "drain[web-2]", "drain[web-3]", "after"] {
        assert!(started.iter().any(|s| s == id), "{id} in {started:?}");
    }
}

/// The most instances in flight at once, read from the order of `start`/`end` lines.
fn most_at_once(lines: &[String]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for l in lines {
        if l.starts_with("start ") {
            now += 1;
            most = most.max(now);
        } else if l.starts_with("end ") {
            now = now.saturating_sub(1);
        }
    }
    most
}

#[test]
fn max_parallel_bounds_the_instances_in_flight() {
    let runbook = r#"[runbook]
name = "lanes"
max-parallel = 8

[params.hosts]
type = "list"
default = ["h1", "h2", "h3", "h4", "h5", "h6", "h7"]

[steps.work]
for-each = "hosts"
max-parallel = 2
run = "echo start {{ item }} >> trace; sleep 0.2; echo end {{ item }} >> trace"
"#;
    let place = Scratch::new(runbook);
    ok(&place.run(&["--yes"], &[]), 0);
    let t = trace(&place);
    assert_eq!(t.len(), 14, "{t:?}");
    assert!(most_at_once(&t) <= 2, "more than 2 at once: {t:?}");
    // Instance i starts only after instance i - 2 has ended (its lane).
    for i in 3..=7 {
        let start = t.iter().position(|l| *l == format!("start h{i}")).expect("start");
        let end_before = t.iter().position(|l| *l == format!("end h{}", i - 2)).expect("end");
        assert!(end_before < start, "h{i} started before h{} ended: {t:?}", i - 2);
    }
    // `max-parallel = 1`: strictly one after the other.
    let place = Scratch::new(&runbook.replace("max-parallel = 2", "max-parallel = 1"));
    ok(&place.run(&["--yes"], &[]), 0);
    assert_eq!(most_at_once(&trace(&place)), 1);
}

#[test]
fn a_failure_compensates_each_completed_instance_in_reverse() {
    let place = Scratch::new(&hosts_runbook(
        "max-parallel = 1",
        "\n[steps.fails]\nneeds = [\"after\"]\nrun = \"exit 1\"\n",
    ));
    let out = place.run(&["--yes"], &[]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let undo: Vec<String> = trace(&place).into_iter().filter(|l| l.starts_with("undo")).collect();
    assert_eq!(undo, ["undo web-3", "undo web-2", "undo web-1"]);
    let run = place.latest_run();
    let compensated: Vec<String> = place
        .events(&run)
        .into_iter()
        .filter(|(k, _)| k == "compensation_succeeded")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(compensated, ["drain[web-3]", "drain[web-2]", "drain[web-1]"]);
}

#[test]
fn a_killed_run_resumes_per_instance_and_refuses_a_changed_list() {
    let runbook = r#"[runbook]
name = "crash"

[params.hosts]
type = "list"
default = ["web-1", "web-2", "web-3"]

[steps.drain]
for-each = "hosts"
max-parallel = 1
run = "echo {{ item }} >> ran; if [ {{ item }} = web-2 ] && [ ! -f go ]; then sleep 600; fi"
"#;
    let place = Scratch::new(runbook);
    let mut engine = place.spawn(&["run", "r.toml", "--yes"]);
    place.wait_for("ran", "web-2");
    kill9(engine.id());
    let _ = engine.wait();
    std::fs::write(place.path().join("go"), "").expect("go");
    let run = place.latest_run();

    // The runbook's list changed since the start: the resume refuses, nothing runs.
    std::fs::write(place.path().join("r.toml"), runbook.replace("\"web-3\"]", "\"web-3\", \"web-4\"]"))
        .expect("edit");
    let refused = place.cmd(&["resume", &run, "--yes"], &[]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(refused.stderr.contains("changed"), "{}", refused.stderr);
    std::fs::write(place.path().join("r.toml"), runbook).expect("restore");

    // The instance that was running is not idempotent: an operator decides, by its id.
    let waits = place.cmd(&["resume", &run, "--yes"], &[]);
    assert_ne!(waits.code, 0, "{}", waits.stdout);
    assert!(waits.stderr.contains("drain[web-2]"), "{}", waits.stderr);
    assert_eq!(place.read("ran").lines().collect::<Vec<_>>(), ["web-1", "web-2"], "nothing ran meanwhile");

    let done =
        place.cmd(&["resume", &run, "--yes", "--rerun", "drain[web-2]", "--reason", "checked web-2"], &[]);
    ok(&done, 0);
    // web-1 completed before the crash and never runs again; web-2 ran again by decision.
    assert_eq!(place.read("ran").lines().collect::<Vec<_>>(), ["web-1", "web-2", "web-2", "web-3"]);
}

/// An empty list is refused at `plan` and `run` (adv17b F12; it used to skip the step and
/// run its dependents, so an empty list turned an approval gate off), for every step kind,
/// naming the parameter at the step's `for-each`. Nothing runs.
#[test]
fn an_empty_list_is_refused_for_every_step_kind() {
    let kinds = [
        "run = \"echo {{ item }} >> trace\"",
        "cmd = [\"sh\", \"-c\", \"echo x >> trace\", \"{{ item }}\"]",
        "approval = { prompt = \"go {{ item }}?\" }",
    ];
    for kind in kinds {
        let place = Scratch::new(&format!(
            "[runbook]\nname = \"empty\"\n\n[params.hosts]\ntype = \"list\"\ndefault = [\"a\"]\n\n[steps.each]\nfor-each = \"hosts\"\n{kind}\n\n[steps.after]\nneeds = [\"each\"]\nrun = \"echo after >> trace\"\n"
        ));
        for args in [vec!["plan", "r.toml", "-p", "hosts="], vec!["run", "r.toml", "--yes", "-p", "hosts="]] {
            let mut args = args;
            let state = place.state();
            if args[0] == "run" {
                args.extend(["--state", state.as_str()]);
            }
            let out = run_in(place.path(), &args);
            ok(&out, 3);
            assert!(out.stderr.contains("r.toml:9:12: error[RB119]"), "{kind}: {}", out.stderr);
            assert!(out.stderr.contains("`hosts` is empty"), "{kind}: {}", out.stderr);
            assert!(!place.path().join("trace").exists(), "{kind}: nothing runs");
        }
    }
}

#[test]
fn given_lists_are_checked_like_declared_ones() {
    let place = Scratch::new(&hosts_runbook("", ""));
    for (value, says) in [
        ("web-1,web-1", "is in the list twice"),
        ("web[1]", "contains `[`"),
        ("a/b", "contains `/`"),
        ("[\"a\\u0007b\"]", "invisible character U+0007"),
    ] {
        let out = plan_of(&place, &["-p", &format!("hosts={value}")]);
        assert_eq!(out.code, 3, "{value}: {}", out.stderr);
        assert!(out.stderr.contains("RB071") && out.stderr.contains(says), "{value}: {}", out.stderr);
    }
    let json = plan_of(&place, &["-p", r#"hosts=["a,b", "c"]"#, "--format", "json"]);
    ok(&json, 0);
    assert!(json.stdout.contains("\"drain[a,b]\""), "{}", json.stdout);
    let too_many = (0..1001).map(|i| format!("h{i}")).collect::<Vec<_>>().join(",");
    let out = plan_of(&place, &["-p", &format!("hosts={too_many}")]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("at most 1000"), "{}", out.stderr);
    insta::assert_snapshot!(plan_of(&place, &["-p", "hosts=web-1,web[2]"]).stderr);
}

/// The injection corpus as elements: through `run` text, `env`, `cmd` arguments and bound
/// SQL arguments, every element arrives as itself and nothing it says runs. Elements that
/// cannot name an instance are refused with a message.
#[test]
fn hostile_elements_never_inject_in_any_context() {
    let place = Scratch::new("");
    let all: Vec<String> = crate::injection::corpus(std::path::Path::new("."))
        .into_iter()
        .map(|v| v.replace("./CANARY-", "CANARY-"))
        .collect();
    let (good, bad): (Vec<String>, Vec<String>) = all.into_iter().partition(|v| {
        runbook_core::params::instance_key(&runbook_core::model::ParamValue::String(v.clone())).is_ok()
    });
    assert!(good.len() >= 200, "{} elements accepted", good.len());
    assert!(!bad.is_empty());
    let runbook = r#"[runbook]
name = "hostile"
max-parallel = 4

[params.vals]
type = "list"

[steps.schema]
sql = { url = "sqlite:app.db", query = "CREATE TABLE v (i INTEGER, v TEXT)" }

[steps.shell]
needs = ["schema"]
for-each = "vals"
env = { V = "{{ item }}" }
run = "printf -- '%s' {{ item }} > run.{{ item_index }}; printf -- '%s' \"$V\" > env.{{ item_index }}"

[steps.argv]
needs = ["schema"]
for-each = "vals"
cmd = ["touch", "cmd-{{ item }}"]

[steps.bound]
needs = ["schema"]
for-each = "vals"
sql = { url = "sqlite:app.db", query = "INSERT INTO v (i, v) VALUES ($1, $2)", args = ["{{ item_index }}", "{{ item }}"] }
"#;
    std::fs::write(place.path().join("r.toml"), runbook).expect("runbook");
    std::fs::write(place.path().join("app.db"), "").expect("db");
    let list: Vec<String> = good.iter().map(|v| crate::injection::toml_string(v)).collect();
    std::fs::write(place.path().join("p.toml"), format!("vals = [{}]\n", list.join(", "))).expect("params");
    let out = place.run(&["--yes", "--params-file", "p.toml"], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for (i, v) in good.iter().enumerate() {
        assert_eq!(&place.read(&format!("run.{i}")), v, "run text, element {i}");
        assert_eq!(&place.read(&format!("env.{i}")), v, "env, element {i}");
        assert!(place.path().join(format!("cmd-{v}")).exists(), "cmd argument, element {i}: {v:?}");
    }
    let canaries: Vec<_> = std::fs::read_dir(place.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("CANARY-"))
        .map(|e| e.file_name())
        .collect();
    assert!(canaries.is_empty(), "injected: {canaries:?}");
    // The SQL arguments came back byte for byte.
    std::fs::write(
        place.path().join("read.toml"),
        "[runbook]\nname = \"read\"\n[steps.all]\nsql = { url = \"sqlite:app.db\", query = \"SELECT i, v FROM v ORDER BY i\", read-only = true }\n",
    )
    .expect("read runbook");
    let read = place.cmd(&["run", "read.toml", "--output", "json"], &[]);
    assert_eq!(read.code, 0, "{}", read.stderr);
    let rows = crate::injection::journaled_rows(&read.stdout);
    assert_eq!(rows.len(), good.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["v"].as_str(), Some(good[i].as_str()), "sql, element {i}");
    }
    // Refused elements are refused with a message, and nothing runs.
    for v in bad.iter().take(20) {
        let p = format!("vals = [{}]\n", crate::injection::toml_string(v));
        std::fs::write(place.path().join("bad.toml"), p).expect("params");
        let out = plan_of(&place, &["--params-file", "bad.toml"]);
        assert_eq!(out.code, 3, "{v:?}: {}", out.stderr);
        assert!(out.stderr.contains("RB071"), "{v:?}: {}", out.stderr);
    }
}

#[test]
fn each_instance_is_approved_by_its_own_id() {
    let place = Scratch::new(
        r#"[runbook]
name = "gated"

[params.hosts]
type = "list"
default = ["web-1", "web-2"]

[steps.gate]
for-each = "hosts"
approval = { prompt = "restart {{ item }}?" }

[steps.restart]
for-each = "hosts"
needs = ["gate"]
run = "echo {{ item }} >> ran"
"#,
    );
    let out = place.run(&["--yes"], &[]);
    assert!(out.stdout.contains("restart web-2?"), "{}", out.stdout);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("'gate[web-2]'"), "the hint quotes the instance id: {all}");
    let run = place.latest_run();
    for id in ["gate[web-1]", "gate[web-2]"] {
        ok(&place.cmd(&["approve", &run, id, "--reason", "ok", "--as", "alice"], &[]), 0);
    }
    ok(&place.cmd(&["resume", &run, "--yes"], &[]), 0);
    let mut ran: Vec<String> = place.read("ran").lines().map(str::to_string).collect();
    ran.sort();
    assert_eq!(ran, ["web-1", "web-2"]);
}

#[test]
fn every_plan_format_shows_the_instances() {
    let place = Scratch::new(&hosts_runbook("max-parallel = 1", ""));
    for format in ["markdown", "html", "json", "dot"] {
        let out = plan_of(&place, &["--format", format]);
        ok(&out, 0);
        for host in ["web-1", "web-2", "web-3"] {
            assert!(out.stdout.contains(&format!("drain[{host}]")), "{format}: {}", out.stdout);
        }
    }
}

/// Promise 2: the instances a reviewed plan lists are the ones that run, and a `when` over
/// `item` is decided in the plan as in the run.
#[test]
fn a_pinned_plan_runs_its_instances_and_decides_when_on_item() {
    let place = Scratch::new(
        r#"[runbook]
name = "pinned"

[params.hosts]
type = "list"
default = ["web-1", "web-2", "db-1"]

[steps.restart]
for-each = "hosts"
when = "item != 'db-1'"
run = "echo {{ item }} >> ran"
"#,
    );
    let out = plan_of(&place, &["-p", "hosts=web-1,db-1", "-o", "plan.json"]);
    ok(&out, 0);
    let out = plan_of(&place, &["-p", "hosts=web-1,db-1"]);
    assert!(out.stdout.contains("item != 'db-1' (false: skipped)"), "{}", out.stdout);
    assert!(out.stdout.contains("item != 'db-1' (true: runs)"), "{}", out.stdout);
    ok(&place.cmd(&["run", "--plan", "plan.json", "--yes"], &[]), 0);
    assert_eq!(place.read("ran").lines().collect::<Vec<_>>(), ["web-1"]);
    let run = place.latest_run();
    let skipped: Vec<String> =
        place.events(&run).into_iter().filter(|(k, _)| k == "step_skipped").map(|(_, s)| s).collect();
    assert_eq!(skipped, ["restart[db-1]"]);
}

/// An element of a list of numbers is inert where the shell reads a value as code
/// (arithmetic), as a number parameter is; an element of a list of strings is not (RB047).
#[test]
fn numbers_from_a_list_may_go_where_the_shell_computes() {
    let runbook = r#"[runbook]
name = "arith"

[params.ports]
type = "list"
items = "integer"
default = [8080, 8081]

[steps.next]
for-each = "ports"
run = "echo $(( {{ item }} + 1 )) >> out"
"#;
    let place = Scratch::new(runbook);
    ok(&place.run(&["--yes"], &[]), 0);
    let mut out: Vec<String> = place.read("out").lines().map(str::to_string).collect();
    out.sort();
    assert_eq!(out, ["8081", "8082"]);
    let place = Scratch::new(
        &runbook.replace("items = \"integer\"\ndefault = [8080, 8081]", "default = [\"a\", \"b\"]"),
    );
    let out = run_in(place.path(), &["check", "r.toml"]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("RB047"), "{}", out.stderr);
}

/// Promise 3: an element that holds a secret's value is refused before anything runs or is
/// journaled, as a parameter is.
#[test]
fn an_element_holding_a_secret_is_refused() {
    let place = Scratch::new(
        r#"[runbook]
name = "secretive"

[params.hosts]
type = "list"

[secrets.TOKEN]
env = "FE_TOKEN"

[steps.touch]
for-each = "hosts"
env = { T = "{{ secrets.TOKEN }}" }
run = "echo {{ item }} >> ran"
"#,
    );
    let out = place.run(&["--yes", "-p", "hosts=web-1,zq-s3cr3t-zq"], &[("FE_TOKEN", "zq-s3cr3t-zq")]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("contains the value of secret `TOKEN`"), "{}", out.stderr);
    assert!(!out.stderr.contains("zq-s3cr3t-zq") && !out.stdout.contains("zq-s3cr3t-zq"));
    assert_eq!(place.read("ran"), "", "nothing ran");
}

/// Promise 5: the plan stays linear in what the runbook and its values say. Two `for-each`
/// steps over the same long list, one needing the other, would be n² needs: refused (RB119)
/// before anything runs; one over 1,000 elements plans as 1,000 steps.
#[test]
fn an_expansion_that_would_grow_quadratically_is_refused() {
    let runbook = r#"[runbook]
name = "big"

[params.hosts]
type = "list"

[steps.drain]
for-each = "hosts"
cmd = ["echo", "drain", "{{ item }}"]

[steps.restart]
for-each = "hosts"
cmd = ["echo", "restart", "{{ item }}"]
"#;
    let place = Scratch::new(runbook);
    let hosts = |n: usize| (0..n).map(|i| format!("h{i}")).collect::<Vec<_>>().join(",");
    let out = plan_of(&place, &["-p", &format!("hosts={}", hosts(400)), "--format", "json"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("RB119") && out.stderr.contains("160000 `needs`"), "{}", out.stderr);
    let out = place.run(&["--yes", "-p", &format!("hosts={}", hosts(400))], &[]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("RB119"), "{}", out.stderr);
    // One step over 1,000 elements, and a dependent: linear.
    let one = Scratch::new(
        &runbook
            .replace("[steps.restart]\nfor-each = \"hosts\"\n", "[steps.restart]\n")
            .replace("\"restart\", \"{{ item }}\"", "\"restart\""),
    );
    let out = plan_of(&one, &["-p", &format!("hosts={}", hosts(1000)), "--format", "json"]);
    ok(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan json");
    assert_eq!(json["steps"].as_array().map(Vec::len), Some(1001));
    assert!(out.stdout.len() < 4 << 20, "{} bytes", out.stdout.len());
    // Two independent one-after-the-other lists of 1,000 with an undo each: every plan
    // step would name up to 2,000 compensations.
    let undo = Scratch::new(
        r#"[runbook]
name = "undo"

[params.a]
type = "list"

[params.b]
type = "list"

[steps.one]
for-each = "a"
max-parallel = 1
cmd = ["echo", "{{ item }}"]
compensate = { cmd = ["echo", "undo", "{{ item }}"] }

[steps.two]
needs = []
for-each = "b"
max-parallel = 1
cmd = ["echo", "{{ item }}"]
compensate = { cmd = ["echo", "undo", "{{ item }}"] }
"#,
    );
    let out = plan_of(&undo, &["-p", &format!("a={}", hosts(1000)), "-p", &format!("b={}", hosts(1000))]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("RB119") && out.stderr.contains("4000000 compensations"), "{}", out.stderr);
}

/// An included runbook given an empty list is refused too (RB119's reason, naming the
/// child and the list), at `plan` and at `run`, before the child runs.
#[test]
fn an_empty_list_given_to_an_included_runbook_is_refused() {
    let place = Scratch::new(
        "[runbook]\nname = \"parent\"\n\n[steps.child]\nrunbook = { file = \"child.toml\", params = { hosts = [] } }\n\n[steps.after]\nneeds = [\"child\"]\nrun = \"echo after >> trace\"\n",
    );
    std::fs::write(
        place.path().join("child.toml"),
        "[runbook]\nname = \"child\"\n\n[params.hosts]\ntype = \"list\"\n\n[steps.gate]\nfor-each = \"hosts\"\napproval = { prompt = \"go {{ item }}?\" }\n",
    )
    .expect("child");
    let plan = plan_of(&place, &[]);
    assert_ne!(plan.code, 0, "{}", plan.stdout);
    assert!(plan.stderr.contains("the list `hosts` is empty"), "{}", plan.stderr);
    let out = place.run(&["--yes"], &[]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(!place.path().join("trace").exists(), "the step after the include ran: {}", out.stdout);
}
