//! `needs` on a `for-each` step hold whatever the order the steps are declared in (red team
//! adv17b F1): a step that needs a `for-each` step declared later in the file needs every one
//! of its instances, in the plan and in the run, an approval gate included; and in an
//! included runbook.

use crate::support::{Scratch, ok, run_in};

fn plan_json(place: &Scratch, file: &str) -> serde_json::Value {
    let out = run_in(place.path(), &["plan", file, "--format", "json"]);
    ok(&out, 0);
    serde_json::from_str(&out.stdout).expect("plan json")
}

fn started(place: &Scratch) -> Vec<String> {
    let run = place.latest_run();
    place.events(&run).into_iter().filter(|(k, _)| k == "step_started").map(|(_, s)| s).collect()
}

const LATER: &str = r#"[runbook]
name = "order"

[params.hosts]
type = "list"
default = ["h1", "h2"]

[steps.a_verify]
needs = ["z_drain"]
run = "echo verify >> trace"

[steps.z_drain]
needs = []
for-each = "hosts"
run = "echo drain {{ item }} >> trace"
"#;

#[test]
fn a_need_on_a_later_for_each_step_needs_every_instance() {
    let place = Scratch::new(LATER);
    let json = plan_json(&place, "r.toml");
    let verify =
        json["steps"].as_array().expect("steps").iter().find(|s| s["id"] == "a_verify").expect("a_verify");
    assert_eq!(verify["needs"], serde_json::json!(["z_drain[h1]", "z_drain[h2]"]), "{verify}");
    assert_eq!(json["waves"], serde_json::json!([["z_drain[h1]", "z_drain[h2]"], ["a_verify"]]));
    ok(&place.run(&["--yes"], &[]), 0);
    assert_eq!(place.read("trace").lines().last(), Some("verify"), "{}", place.read("trace"));
    let started = started(&place);
    assert_eq!(started.last().map(String::as_str), Some("a_verify"), "the journal's order: {started:?}");
}

#[test]
fn an_approval_for_each_declared_later_gates_its_dependent() {
    let place = Scratch::new(
        r#"[runbook]
name = "gate"

[params.regions]
type = "list"
default = ["eu", "us"]

[steps.deploy]
needs = ["approve_region"]
run = "echo DEPLOYED > deployed"

[steps.approve_region]
needs = []
for-each = "regions"
approval = { prompt = "deploy to {{ item }}?" }
"#,
    );
    let out = place.run(&["--yes"], &[]);
    assert!(
        !place.path().join("deployed").exists(),
        "deploy ran without approval: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(!started(&place).iter().any(|s| s == "deploy"), "{:?}", started(&place));
    let run = place.latest_run();
    for id in ["approve_region[eu]", "approve_region[us]"] {
        ok(&place.cmd(&["approve", &run, id, "--reason", "ok", "--as", "alice"], &[]), 0);
    }
    ok(&place.cmd(&["resume", &run, "--yes"], &[]), 0);
    assert_eq!(place.read("deployed").trim(), "DEPLOYED");
    assert_eq!(started(&place).last().map(String::as_str), Some("deploy"));
}

#[test]
fn in_an_included_runbook_a_later_for_each_is_needed_too() {
    let place = Scratch::new(
        r#"[runbook]
name = "parent"

[steps.child]
runbook = { file = "child.toml" }
"#,
    );
    std::fs::write(place.path().join("child.toml"), LATER.replace("name = \"order\"", "name = \"child\""))
        .expect("child");
    let json = plan_json(&place, "child.toml");
    assert_eq!(json["waves"], serde_json::json!([["z_drain[h1]", "z_drain[h2]"], ["a_verify"]]));
    ok(&place.run(&["--yes"], &[]), 0);
    let trace = place.read("trace");
    assert_eq!(trace.lines().last(), Some("verify"), "{trace}");
    assert_eq!(trace.lines().count(), 3, "{trace}");
}

/// Every permutation of the declaration order of a small DAG with `for-each` steps (one of
/// them with lanes) plans the same waves.
#[test]
fn every_declaration_order_plans_the_same_waves() {
    let steps = [
        ("a", "needs = []\nfor-each = \"hosts\"\n"),
        ("b", "needs = [\"a\"]\n"),
        ("c", "needs = [\"b\"]\nfor-each = \"hosts\"\nmax-parallel = 1\n"),
        ("d", "needs = [\"a\", \"c\"]\n"),
    ];
    let mut orders: Vec<Vec<usize>> = Vec::new();
    permutations(&mut (0..steps.len()).collect::<Vec<_>>(), 0, &mut orders);
    assert_eq!(orders.len(), 24);
    let place = Scratch::new("");
    let mut first: Option<serde_json::Value> = None;
    for order in &orders {
        let mut text = String::from(
            "[runbook]\nname = \"perm\"\n\n[params.hosts]\ntype = \"list\"\ndefault = [\"h1\", \"h2\", \"h3\"]\n",
        );
        for &i in order {
            let (id, body) = steps[i];
            text.push_str(&format!("\n[steps.{id}]\n{body}run = \"true\"\n"));
        }
        std::fs::write(place.path().join("r.toml"), &text).expect("runbook");
        let waves = plan_json(&place, "r.toml")["waves"].clone();
        let sorted: Vec<Vec<String>> = waves
            .as_array()
            .expect("waves")
            .iter()
            .map(|w| {
                let mut w: Vec<String> =
                    w.as_array().expect("wave").iter().map(|s| s.as_str().expect("id").to_string()).collect();
                w.sort();
                w
            })
            .collect();
        let sorted = serde_json::json!(sorted);
        match &first {
            None => first = Some(sorted),
            Some(f) => assert_eq!(&sorted, f, "order {order:?}:\n{text}"),
        }
    }
    assert_eq!(
        first.expect("waves"),
        serde_json::json!([["a[h1]", "a[h2]", "a[h3]"], ["b"], ["c[h1]"], ["c[h2]"], ["c[h3]"], ["d"]])
    );
}

fn permutations(items: &mut Vec<usize>, k: usize, out: &mut Vec<Vec<usize>>) {
    if k == items.len() {
        out.push(items.clone());
        return;
    }
    for i in k..items.len() {
        items.swap(k, i);
        permutations(items, k + 1, out);
        items.swap(k, i);
    }
}

/// `runbook ARGS` in `dir` under `ulimit -v` (1 GiB: far above a bounded plan, far below
/// a million instances): exit code and standard error.
fn limited(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let script = format!("ulimit -v 1000000; exec '{}' \"$@\" > /dev/null", crate::support::bin());
    let mut argv = vec!["-c", script.as_str(), "runbook"];
    argv.extend_from_slice(args);
    let out = std::process::Command::new("bash")
        .args(&argv)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_STATE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Red team adv17b F11: a leaf with one `for-each` step over 1,000 elements, included twice
/// by each file of a binary tree of depth 10 (1,024 includes: 1,024,000 instances from a few
/// KB of files). The expanded steps are counted over the whole include tree against one
/// bound, before any child is expanded past it: refused (RB119) in bounded memory, nothing
/// runs; a tree of the same leaf within the bound still plans.
#[test]
fn for_each_in_included_runbooks_counts_against_one_bound() {
    let place = Scratch::new("");
    let hosts: Vec<String> = (0..1000).map(|i| format!("\"h{i}\"")).collect();
    std::fs::write(
        place.path().join("leaf.toml"),
        format!(
            "[runbook]\nname = \"leaf\"\n\n[params.hosts]\ntype = \"list\"\ndefault = [{}]\n\n[steps.w]\nfor-each = \"hosts\"\nrun = \"echo {{{{ item }}}} >> trace\"\n",
            hosts.join(", ")
        ),
    )
    .expect("leaf");
    let mut previous = "leaf.toml".to_string();
    for depth in 1..=10 {
        std::fs::write(
            place.path().join(format!("t{depth}.toml")),
            format!("[runbook]\nname = \"t{depth}\"\n\n[steps.a]\nrunbook = {{ file = \"{previous}\" }}\n\n[steps.b]\nrunbook = {{ file = \"{previous}\" }}\n"),
        )
        .expect("tree");
        previous = format!("t{depth}.toml");
    }
    for file in ["t4.toml", "t10.toml"] {
        let (code, stderr) = limited(place.path(), &["plan", file]);
        assert_eq!(code, 3, "{file}: {stderr}");
        assert!(stderr.contains("error[RB119]"), "{file}: {stderr}");
        assert!(stderr.contains("included runbooks"), "{file}: {stderr}");
    }
    let state = place.state();
    let (code, stderr) = limited(place.path(), &["run", "t10.toml", "--yes", "--state", &state]);
    assert_eq!(code, 3, "{stderr}");
    assert!(!place.path().join("trace").exists(), "nothing runs");
    // 8 includes of the leaf: 8,000 instances and 15 include steps, within the bound.
    let (code, stderr) = limited(place.path(), &["plan", "t3.toml"]);
    assert_eq!(code, 0, "{stderr}");
}

/// Red team adv17b F6: log and outputs files are named after the step's id (with the include
/// path before it), which had no bound: a 125-character step id over a 128-byte element, a
/// 300-character plain step id, and the same under an include failed mid-run ("File name
/// too long") after earlier steps had run. File names are now derived so they always fit:
/// every step runs, writes its outputs, and its log reads back.
#[test]
fn any_step_id_makes_file_names_that_fit() {
    let long_step = "s".repeat(125);
    let plain = "p".repeat(300);
    let element = "e".repeat(128);
    let child = format!(
        "[runbook]\nname = \"long\"\n\n[params.hosts]\ntype = \"list\"\n\n[steps.first]\nrun = \"echo side effect >> trace\"\n\n[steps.{long_step}]\nfor-each = \"hosts\"\nrun = \"echo hi {{{{ item }}}}; echo n=1 >> $RUNBOOK_OUTPUT\"\noutputs = [\"n\"]\n\n[steps.{plain}]\nrun = \"echo plain >> trace; echo m=2 >> $RUNBOOK_OUTPUT\"\noutputs = [\"m\"]\ncompensate = {{ run = \"echo undo\" }}\n"
    );
    let place = Scratch::new(&child);
    let hosts = format!("hosts={element}");
    let out = place.run(&["--yes", "-p", &hosts], &[]);
    ok(&out, 0);
    assert_eq!(place.read("trace"), "side effect\nplain\n");
    let run = place.latest_run();
    let logs = place.cmd(&["logs", &run], &[]);
    ok(&logs, 0);
    assert!(logs.stdout.contains(&format!("hi {element}")), "{}", logs.stdout);

    // The same runbook included two levels deep (the include path is in the file names too).
    let long_include = "i".repeat(120);
    std::fs::write(place.path().join("child.toml"), &child).expect("child");
    std::fs::write(
        place.path().join("middle.toml"),
        format!("[runbook]\nname = \"middle\"\n\n[params.hosts]\ntype = \"list\"\n\n[steps.{long_include}]\nrunbook = {{ file = \"child.toml\", params = {{ hosts = [\"{element}\"] }} }}\n"),
    )
    .expect("middle");
    std::fs::write(
        place.path().join("r.toml"),
        format!("[runbook]\nname = \"top\"\n\n[steps.{long_include}]\nrunbook = {{ file = \"middle.toml\", params = {{ hosts = [\"x\"] }} }}\n"),
    )
    .expect("top");
    std::fs::remove_file(place.path().join("trace")).expect("trace");
    let out = place.run(&["--yes"], &[]);
    ok(&out, 0);
    assert_eq!(place.read("trace"), "side effect\nplain\n");
}

/// Red team adv17b F8: `[report]` naming a `for-each` step's output (one set per instance)
/// is refused at `check` with RB114 at the reference, as a template reading it is; its
/// compensation's outputs too.
#[test]
fn report_naming_a_for_each_step_s_outputs_is_refused() {
    for fact in ["obs.version", "obs.compensate.undone"] {
        let place = Scratch::new(&format!(
            "[runbook]\nname = \"rep\"\n\n[params.hosts]\ntype = \"list\"\ndefault = [\"a\", \"b\"]\n\n[report]\nversion-before = \"{fact}\"\n\n[steps.obs]\nfor-each = \"hosts\"\nrun = \"echo version=1 >> $RUNBOOK_OUTPUT\"\noutputs = [\"version\"]\ncompensate = {{ run = \"echo undone=1 >> $RUNBOOK_OUTPUT\", outputs = [\"undone\"] }}\n"
        ));
        let out = run_in(place.path(), &["check", "r.toml"]);
        ok(&out, 3);
        assert!(out.stderr.contains("r.toml:9:18: error[RB114]"), "{fact}: {}", out.stderr);
        assert!(out.stderr.contains("a `for-each` step"), "{fact}: {}", out.stderr);
    }
}
