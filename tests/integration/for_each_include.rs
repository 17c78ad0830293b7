//! `for-each` on `runbook` (include) steps (issue 17, i18-fei): one nested run per element,
//! `STEP[ELEMENT]`, its steps journaled under `STEP[ELEMENT]/`, the element passed through
//! the include's `params` as `{{ item }}`; `max-parallel` bounds the nested runs at once;
//! resume and compensation per instance; the whole tree under one bound (RB119).

use crate::support::{Scratch, ok, run_in};

/// The included runbook: `a` (undone by `undo`) then `b`, which fails for region `fail`
/// (none by default) and kills its engine in region `kill` the first time (none by default).
fn child(fail: &str, kill: &str) -> String {
    format!(
        r#"[runbook]
name = "region"

[params.region]
type = "string"

[steps.a]
run = "echo a {{{{ params.region }}}} >> trace"
compensate = {{ run = "echo undo {{{{ params.region }}}} >> trace" }}

[steps.b]
needs = ["a"]
run = "if [ {{{{ params.region }}}} = {kill} ] && [ ! -e killed ]; then touch killed; echo b {{{{ params.region }}}} >> trace; kill -9 $PPID; sleep 5; fi; if [ {{{{ params.region }}}} = {fail} ]; then exit 1; fi; echo b {{{{ params.region }}}} >> trace"
"#
    )
}

/// The parent: `deploy` over `regions` (`max-parallel` given), `pre` before it, `post` after.
fn parent(max_parallel: &str, regions: &str) -> String {
    format!(
        r#"[runbook]
name = "world"

[params.regions]
type = "list"
default = [{regions}]

[steps.pre]
run = "echo pre >> trace"

[steps.deploy]
needs = ["pre"]
for-each = "regions"
{max_parallel}
runbook = {{ file = "child.toml", params = {{ region = "{{{{ item }}}}" }} }}

[steps.post]
needs = ["deploy"]
run = "echo post >> trace"
"#
    )
}

fn place(parent_text: &str, child_text: &str) -> Scratch {
    let place = Scratch::new(parent_text);
    std::fs::write(place.path().join("child.toml"), child_text).expect("child");
    place
}

fn lines(place: &Scratch) -> Vec<String> {
    place.read("trace").lines().map(str::to_string).collect()
}

fn started(place: &Scratch, run: &str) -> Vec<String> {
    place.events(run).into_iter().filter(|(k, _)| k == "step_started").map(|(_, s)| s).collect()
}

#[test]
fn each_element_runs_the_included_runbook_once_under_its_instance() {
    let place = place(&parent("max-parallel = 1", r#""eu", "us""#), &child("none", "none"));
    let plan = run_in(place.path(), &["plan", "r.toml", "--format", "json"]);
    ok(&plan, 0);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    let ids: Vec<&str> =
        json["steps"].as_array().expect("steps").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["pre", "deploy[eu]", "deploy[us]", "post"]);
    assert_eq!(json["steps"][3]["needs"], serde_json::json!(["deploy[eu]", "deploy[us]"]));
    assert_eq!(json["steps"][2]["needs"], serde_json::json!(["pre", "deploy[eu]"]), "the lane");
    assert!(plan.stdout.contains("\"region\": \"us\""), "{}", plan.stdout);

    ok(&place.run(&["--yes"], &[]), 0);
    assert_eq!(lines(&place), ["pre", "a eu", "b eu", "a us", "b us", "post"]);
    let run = place.latest_run();
    let starts = started(&place, &run);
    for id in ["deploy[eu]", "deploy[eu]/a", "deploy[eu]/b", "deploy[us]", "deploy[us]/a", "deploy[us]/b"] {
        assert_eq!(starts.iter().filter(|s| *s == id).count(), 1, "{id} once in {starts:?}");
    }
}

#[test]
fn the_text_plan_shows_each_instance_and_its_nested_steps() {
    let place = place(&parent("max-parallel = 1", r#""eu", "us""#), &child("none", "none"));
    let plan = run_in(place.path(), &["plan", "r.toml"]);
    ok(&plan, 0);
    let body = plan.stdout.split_once("\n\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    insta::assert_snapshot!(body);
    for format in ["markdown", "html"] {
        let out = run_in(place.path(), &["plan", "r.toml", "--format", format]);
        ok(&out, 0);
        for id in ["deploy[eu]", "deploy[us]"] {
            assert!(out.stdout.contains(id), "{format}: {id}");
        }
    }
}

/// Instance 3 of 4 fails inside: its own completed step is undone, then the instances that
/// completed, most recent first.
#[test]
fn a_failed_instance_compensates_the_completed_instances_most_recent_first() {
    let place = place(&parent("max-parallel = 1", r#""r1", "r2", "r3", "r4""#), &child("r3", "none"));
    let out = place.run(&["--yes"], &[]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let t = lines(&place);
    let undo: Vec<&String> = t.iter().filter(|l| l.starts_with("undo")).collect();
    assert_eq!(undo, ["undo r3", "undo r2", "undo r1"], "{t:?}");
    assert!(!t.iter().any(|l| l.ends_with("r4") || l == "post"), "{t:?}");
}

/// SIGKILL inside the second instance's `b`: the resume never runs the first instance (nor
/// the second's `a`) again; `b`, not idempotent, waits for an operator naming its path.
#[test]
fn a_run_killed_inside_the_second_instance_resumes_per_instance() {
    let place = place(&parent("max-parallel = 1", r#""eu", "us", "ap""#), &child("none", "us"));
    let mut engine = place.spawn(&["run", "r.toml", "--yes"]);
    // `b` in `us` kills its engine (SIGKILL) after its side effect.
    let status = engine.wait().expect("wait");
    assert!(!status.success());
    assert_eq!(lines(&place), ["pre", "a eu", "b eu", "a us", "b us"]);
    let run = place.latest_run();

    let waits = place.cmd(&["resume", &run, "--yes"], &[]);
    assert_ne!(waits.code, 0, "{}", waits.stdout);
    assert!(waits.stderr.contains("deploy[us]/b"), "{}", waits.stderr);
    assert_eq!(lines(&place), ["pre", "a eu", "b eu", "a us", "b us"], "nothing ran meanwhile");

    let done =
        place.cmd(&["resume", &run, "--yes", "--rerun", "deploy[us]/b", "--reason", "checked us"], &[]);
    ok(&done, 0);
    assert_eq!(lines(&place), ["pre", "a eu", "b eu", "a us", "b us", "b us", "a ap", "b ap", "post"]);
}

/// Instances × nested steps count against the 10,000-step bound before anything expands:
/// 1,000 regions × 20 nested steps is refused at once, and `run` runs nothing.
#[test]
fn instances_times_nested_steps_count_against_the_bound() {
    let mut big = String::from("[runbook]\nname = \"big\"\n\n[params.region]\ntype = \"string\"\n");
    for i in 0..20 {
        big.push_str(&format!("\n[steps.s{i}]\nrun = \"echo {i} >> trace\"\n"));
    }
    let regions = (0..1000).map(|i| format!("\"r{i}\"")).collect::<Vec<_>>().join(", ");
    let place = place(&parent("", &regions), &big);
    let out = run_in(place.path(), &["plan", "r.toml"]);
    ok(&out, 3);
    assert!(out.stderr.contains("RB119"), "{}", out.stderr);
    let out = place.run(&["--yes"], &[]);
    ok(&out, 3);
    assert!(!place.path().join("trace").exists(), "nothing runs");
    // Under the bound it plans: 400 × 20 = 8,000.
    let regions = (0..400).map(|i| format!("\"r{i}\"")).collect::<Vec<_>>().join(", ");
    std::fs::write(place.path().join("r.toml"), parent("", &regions)).expect("parent");
    ok(&run_in(place.path(), &["plan", "r.toml", "--format", "json"]), 0);
}

/// An empty list is refused (RB119) at the include's `for-each`; nothing runs.
#[test]
fn an_empty_list_on_an_include_is_refused() {
    let place = place(&parent("", r#""eu""#), &child("none", "none"));
    let out = place.run(&["--yes", "-p", "regions="], &[]);
    ok(&out, 3);
    assert!(out.stderr.contains("RB119") && out.stderr.contains("`regions` is empty"), "{}", out.stderr);
    assert!(!place.path().join("trace").exists());
}

/// Every declaration order of `pre`, `deploy` (an include over a list, with lanes) and
/// `post` plans the same steps with the same needs, and runs `post` after every instance.
/// (Every step names its `needs`: a step without them follows the one declared before it.)
#[test]
fn every_declaration_order_of_an_include_for_each_plans_the_same() {
    let sections = [
        "[steps.pre]\nneeds = []\nrun = \"echo pre >> trace\"\n",
        "[steps.deploy]\nneeds = [\"pre\"]\nfor-each = \"regions\"\nmax-parallel = 2\nrunbook = { file = \"child.toml\", params = { region = \"{{ item }}\" } }\n",
        "[steps.post]\nneeds = [\"deploy\"]\nrun = \"echo post >> trace\"\n",
    ];
    let head = "[runbook]\nname = \"world\"\n\n[params.regions]\ntype = \"list\"\ndefault = [\"eu\", \"us\", \"ap\"]\n\n";
    let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    let mut first: Option<serde_json::Value> = None;
    for order in orders {
        let text = format!("{head}{}", order.iter().map(|&i| sections[i]).collect::<Vec<_>>().join("\n"));
        let place = place(&text, &child("none", "none"));
        let out = run_in(place.path(), &["plan", "r.toml", "--format", "json"]);
        ok(&out, 0);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        let mut shape: Vec<(String, serde_json::Value, serde_json::Value)> = json["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (s["id"].as_str().unwrap_or_default().to_string(), s["needs"].clone(), s["wave"].clone())
            })
            .collect();
        shape.sort_by(|a, b| a.0.cmp(&b.0));
        let shape = serde_json::to_value(&shape).expect("shape");
        match &first {
            None => first = Some(shape),
            Some(f) => assert_eq!(&shape, f, "order {order:?}"),
        }
        ok(&place.run(&["--yes"], &[]), 0);
        let t = lines(&place);
        assert_eq!(t.first().map(String::as_str), Some("pre"), "{order:?}: {t:?}");
        assert_eq!(t.last().map(String::as_str), Some("post"), "{order:?}: {t:?}");
        assert_eq!(t.len(), 2 + 3 * 2, "{order:?}: {t:?}");
    }
}

/// Instance ids and file names stay bounded: a 120-character include step over 128-byte
/// elements, running a child whose step has outputs and a compensation, twice nested.
#[test]
fn long_include_instances_make_file_names_that_fit() {
    let long = "i".repeat(120);
    let element = "e".repeat(127);
    let leaf = format!(
        "[runbook]\nname = \"leaf\"\n\n[params.region]\ntype = \"string\"\n\n[steps.{}]\nrun = \"echo leaf >> trace; echo n=1 >> $RUNBOOK_OUTPUT\"\noutputs = [\"n\"]\ncompensate = {{ run = \"echo undo\" }}\n",
        "s".repeat(125)
    );
    let middle = format!(
        "[runbook]\nname = \"middle\"\n\n[params.regions]\ntype = \"list\"\n\n[steps.{long}]\nfor-each = \"regions\"\nrunbook = {{ file = \"leaf.toml\", params = {{ region = \"{{{{ item }}}}\" }} }}\n"
    );
    let top = format!(
        "[runbook]\nname = \"top\"\n\n[params.regions]\ntype = \"list\"\ndefault = [\"{element}\", \"b{element}\"]\n\n[steps.{long}]\nfor-each = \"regions\"\nrunbook = {{ file = \"middle.toml\", params = {{ regions = [\"{{{{ item }}}}\"] }} }}\n"
    );
    let place = place(&top, &leaf);
    std::fs::write(place.path().join("leaf.toml"), &leaf).expect("leaf");
    std::fs::write(place.path().join("middle.toml"), &middle).expect("middle");
    let out = place.run(&["--yes"], &[]);
    ok(&out, 0);
    assert_eq!(place.read("trace"), "leaf\nleaf\n");
    let run = place.latest_run();
    let starts = started(&place, &run);
    assert!(starts.iter().any(|s| s == &format!("{long}[b{element}]/{long}[b{element}]")), "{starts:?}");
}

/// A `for-each` include whose `params` never pass the element is refused (RB117): it would
/// run the same nested runbook with the same values once per element. A secret cannot be an
/// element: `for-each` names a `[params]` list (never a template), and a secret given as a
/// list's value is refused before anything runs.
#[test]
fn an_include_that_never_passes_the_element_is_refused_and_secrets_are_no_elements() {
    let same = parent("", r#""eu""#).replace(r#"region = "{{ item }}""#, r#"region = "eu""#);
    let refused = place(&same, &child("none", "none"));
    let out = run_in(refused.path(), &["check", "r.toml"]);
    ok(&out, 3);
    assert!(out.stderr.contains("r.toml:13:12: error[RB117]"), "{}", out.stderr);
    assert!(out.stderr.contains("never pass the element"), "{}", out.stderr);

    let secret =
        parent("", r#""eu""#).replace("[steps.pre]", "[secrets.TOKEN]\nenv = \"TOKEN\"\n\n[steps.pre]");
    let place = place(&secret, &child("none", "none"));
    let out = place.run(&["--yes", "-p", "regions=hunter2-secret"], &[("TOKEN", "hunter2-secret")]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        !out.stdout.contains("hunter2-secret") && !out.stderr.contains("hunter2-secret"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!place.path().join("trace").exists(), "nothing runs");
}

/// Without `max-parallel` the nested runs go at once (one lease, one journal): each nested
/// step runs exactly once and the hash chain verifies.
#[test]
fn instances_without_lanes_run_at_once_and_the_journal_verifies() {
    let regions = (0..6).map(|i| format!("\"r{i}\"")).collect::<Vec<_>>().join(", ");
    let place = place(&parent("", &regions), &child("none", "none"));
    ok(&place.run(&["--yes"], &[]), 0);
    let t = lines(&place);
    for i in 0..6 {
        for step in ["a", "b"] {
            assert_eq!(t.iter().filter(|l| **l == format!("{step} r{i}")).count(), 1, "{t:?}");
        }
    }
    assert_eq!(t.last().map(String::as_str), Some("post"), "{t:?}");
    let run = place.latest_run();
    ok(&place.cmd(&["audit", "verify", &run], &[]), 0);
}

/// An approval inside the included runbook asks once per instance, approved by its path.
#[test]
fn an_approval_in_an_included_runbook_is_approved_per_instance() {
    let gated = "[runbook]\nname = \"gated\"\n\n[params.region]\ntype = \"string\"\n\n[steps.gate]\napproval = { prompt = \"deploy {{ params.region }}?\" }\n\n[steps.go]\nneeds = [\"gate\"]\nrun = \"echo go {{ params.region }} >> trace\"\n";
    let place = place(&parent("", r#""eu", "us""#), gated);
    let out = place.run(&["--yes"], &[]);
    assert!(out.stdout.contains("deploy us?"), "{}", out.stdout);
    assert!(!place.read("trace").contains("go"), "nothing past the gates ran");
    let run = place.latest_run();
    for id in ["deploy[eu]/gate", "deploy[us]/gate"] {
        ok(&place.cmd(&["approve", &run, id, "--reason", "ok", "--as", "alice"], &[]), 0);
    }
    ok(&place.cmd(&["resume", &run, "--yes"], &[]), 0);
    let mut go: Vec<String> = lines(&place).into_iter().filter(|l| l.starts_with("go")).collect();
    go.sort();
    assert_eq!(go, ["go eu", "go us"]);
    assert_eq!(lines(&place).last().map(String::as_str), Some("post"));
}

/// What the plan says a failure undoes is what the run undoes: the instances before it,
/// whose included runbooks have compensations (the run undoes them: see
/// `a_failed_instance_compensates_the_completed_instances_most_recent_first`); and a hand
/// `compensate` of a run that succeeded undoes them too, most recent first.
#[test]
fn the_plan_and_a_hand_compensate_undo_the_included_runbooks() {
    let place = place(&parent("max-parallel = 1", r#""eu", "us""#), &child("none", "none"));
    let plan = run_in(place.path(), &["plan", "r.toml", "--format", "json"]);
    ok(&plan, 0);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    assert_eq!(json["steps"][2]["id"], "deploy[us]");
    assert_eq!(json["steps"][2]["compensation_chain"]["first"], serde_json::json!(["deploy[eu]"]));
    assert_eq!(
        json["steps"][3]["compensation_chain"]["first"],
        serde_json::json!(["deploy[us]", "deploy[eu]"])
    );

    ok(&place.run(&["--yes"], &[]), 0);
    let run = place.latest_run();
    // Exit 1 as for any run undone by hand (its status is `failed`).
    ok(&place.cmd(&["compensate", &run, "--yes"], &[]), 1);
    let undo: Vec<String> = lines(&place).into_iter().filter(|l| l.starts_with("undo")).collect();
    assert_eq!(undo, ["undo us", "undo eu"]);
}
