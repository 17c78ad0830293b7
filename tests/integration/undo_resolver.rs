//! Red team adv18b F3/F3b/F3c/F6/F7: a journaled id (`deploy[eu]/x[h2]`, instance brackets
//! at any level, `/` nesting) always resolves to its declaration, so a failure under
//! `on-failure = "compensate"` inside an included runbook is recognised whatever shape the
//! failed unit has (plain step, for-each instance), at any depth, under a plain or a
//! for-each include (promise 1).

use crate::support::{Scratch, bin, ok};

/// How the failing unit of the innermost runbook is written.
#[derive(Clone, Copy, Debug)]
enum Unit {
    /// Two plain steps: `x1` (the sibling still running) and `x2` (fails).
    Plain,
    /// `x` for-each over `[h1, h2]`: `x[h2]` fails.
    Each2,
    /// `x` for-each over `[h1, h2, h3]`: `x[h3]` fails, `x[h2]` succeeds.
    Each3,
}

/// How the runbook above includes the innermost one.
#[derive(Clone, Copy, Debug)]
enum Wrap {
    Plain,
    Each,
}

/// The innermost runbook: `a` (undone by `undo-a`), the failing unit, then `after`.
fn leaf(unit: Unit) -> String {
    let head = "[runbook]\nname = \"leaf\"\n[params.region]\ntype = \"string\"\ndefault = \"r\"\n\
                [steps.a]\nrun = \"echo a >> trace\"\ncompensate = { run = \"echo undo-a >> trace\" }\n";
    let body = match unit {
        Unit::Plain => "[steps.x1]\nneeds = [\"a\"]\nidempotent = true\nrun = \"sh unit.sh h1 $PPID\"\n\
                        [steps.x2]\nneeds = [\"a\"]\nidempotent = true\nrun = \"sh unit.sh h2 $PPID\"\n\
                        [steps.after]\nneeds = [\"x1\", \"x2\"]\nrun = \"echo after >> trace\"\n"
            .to_string(),
        Unit::Each2 | Unit::Each3 => {
            let hosts = if matches!(unit, Unit::Each2) { r#""h1", "h2""# } else { r#""h1", "h2", "h3""# };
            format!(
                "[params.hosts]\ntype = \"list\"\ndefault = [{hosts}]\n\
                 [steps.x]\nneeds = [\"a\"]\nidempotent = true\nfor-each = \"hosts\"\nrun = \"sh unit.sh {{{{ item }}}} $PPID\"\n\
                 [steps.after]\nneeds = [\"x\"]\nrun = \"echo after >> trace\"\n"
            )
        }
    };
    format!("{head}{body}")
}

/// A runbook named `name` whose `pre` (undone by `undo-NAME`) runs before `deploy`, which
/// includes `file` (plainly or for-each over `[eu]`).
fn wrapper(name: &str, wrap: Wrap, file: &str) -> String {
    let each = match wrap {
        Wrap::Plain => "runbook = { file = \"FILE\" }\n".replace("FILE", file),
        Wrap::Each => format!(
            "for-each = \"regions\"\nrunbook = {{ file = \"{file}\", params = {{ region = \"{{{{ item }}}}\" }} }}\n"
        ),
    };
    format!(
        "[runbook]\nname = \"{name}\"\n[params.regions]\ntype = \"list\"\ndefault = [\"eu\"]\n\
         [steps.pre]\nrun = \"echo pre-{name} >> trace\"\ncompensate = {{ run = \"echo undo-{name} >> trace\" }}\n\
         [steps.deploy]\nneeds = [\"pre\"]\n{each}"
    )
}

/// The failing unit's script: `fail` fails; `h1` waits until the journal records that
/// failure, then kills its engine (SIGKILL: after the failure, before any undo starts);
/// any other element succeeds.
fn unit_script(place: &Scratch, fail: &str, failed_id: &str) -> String {
    format!(
        r#"item=$1; engine=$2
echo "x $item" >> trace
if [ "$item" = {fail} ]; then exit 1; fi
if [ "$item" = h1 ] && [ ! -e killed ]; then
  touch killed
  n=0
  until '{bin}' audit "$RUNBOOK_RUN_ID" --format jsonl --state '{state}' | grep step_failed | grep -qF '{failed_id}"'; do
    n=$((n+1)); if [ $n -gt 2400 ]; then exit 3; fi; sleep 0.05
  done
  kill -9 "$engine"; sleep 5
fi
"#,
        bin = bin(),
        state = place.state(),
    )
}

/// One case of the corpus: the folder, killed at the failure.
fn killed_at_the_failure(unit: Unit, wrap: Wrap, depth: u8) -> (Scratch, String) {
    let top = match depth {
        1 => wrapper("top", wrap, "leaf.toml"),
        _ => wrapper("top", Wrap::Plain, "mid.toml"),
    };
    let place = Scratch::new(&top);
    std::fs::write(place.path().join("leaf.toml"), leaf(unit)).expect("leaf");
    if depth == 2 {
        std::fs::write(place.path().join("mid.toml"), wrapper("mid", wrap, "leaf.toml")).expect("mid");
    }
    let (fail, local) = match unit {
        Unit::Plain => ("h2", "x2"),
        Unit::Each2 => ("h2", "x[h2]"),
        Unit::Each3 => ("h3", "x[h3]"),
    };
    let inc = match wrap {
        Wrap::Plain => "deploy",
        Wrap::Each => "deploy[eu]",
    };
    let failed_id = match depth {
        1 => format!("{inc}/{local}"),
        _ => format!("deploy/{inc}/{local}"),
    };
    std::fs::write(place.path().join("unit.sh"), unit_script(&place, fail, &failed_id)).expect("unit.sh");
    let out = place.run(&["--yes"], &[]);
    assert_ne!(out.code, 0, "the engine was killed: {}{}", out.stdout, out.stderr);
    assert!(place.path().join("killed").exists(), "{unit:?} {wrap:?} {depth}: the kill ran");
    let run = place.latest_run();
    (place, run)
}

fn cases() -> Vec<(Unit, Wrap, u8)> {
    let mut all = Vec::new();
    for depth in [1, 2] {
        for wrap in [Wrap::Plain, Wrap::Each] {
            for unit in [Unit::Plain, Unit::Each2, Unit::Each3] {
                all.push((unit, wrap, depth));
            }
        }
    }
    all
}

/// F3/F3b: whatever the failed unit's shape, `resume` of a run killed after a failure under
/// `compensate` inside an included runbook is refused as for two plain steps, and nothing
/// past the failure runs.
#[test]
fn resume_is_refused_after_a_failure_under_compensate_in_an_include_of_any_shape() {
    for (unit, wrap, depth) in cases() {
        let (place, run) = killed_at_the_failure(unit, wrap, depth);
        let before = place.read("trace");
        let out = place.cmd(&["resume", &run, "--yes"], &[]);
        ok(&out, 4);
        assert!(
            out.stderr.contains("had failed and was compensating when the engine stopped")
                && out.stderr.contains("was undoing itself); it cannot go on"),
            "{unit:?} {wrap:?} depth {depth}: {}",
            out.stderr
        );
        assert_eq!(place.read("trace"), before, "{unit:?} {wrap:?} depth {depth}: nothing ran");
        // F6: `compensate` undoes everything that completed, most recent first, once each:
        // the included runbook left in doubt first (its `a`), then the `pre` steps above it.
        let out = place.cmd(&["compensate", &run, "--yes"], &[]);
        ok(&out, 1);
        let again = place.cmd(&["compensate", &run, "--yes"], &[]);
        let undo: Vec<String> =
            place.read("trace").lines().filter(|l| l.starts_with("undo")).map(str::to_string).collect();
        let want: &[&str] =
            if depth == 1 { &["undo-a", "undo-top"] } else { &["undo-a", "undo-mid", "undo-top"] };
        assert_eq!(
            undo, want,
            "{unit:?} {wrap:?} depth {depth}: {}{}{}",
            out.stdout, out.stderr, again.stderr
        );
        assert!(!place.read("trace").contains("after"));
    }
}

/// F3c (no kill): an include with `on-failure = "continue"` whose runbook failed under its
/// own `compensate` (nothing to undo) stays failed on `resume`, whatever the failed unit's
/// shape and the include's: the unit past the failure never runs.
#[test]
fn an_include_that_undid_itself_stays_failed_on_resume_whatever_its_shape() {
    for (unit, wrap, depth) in cases() {
        let top = match depth {
            1 => wrapper("top", wrap, "leaf.toml"),
            _ => wrapper("top", Wrap::Plain, "mid.toml"),
        }
        .replace("[steps.deploy]\n", "[steps.deploy]\non-failure = \"continue\"\n");
        let place = Scratch::new(&top);
        // No compensation in the failing runbook: it undoes nothing and still undid itself.
        let leaf_text = leaf(unit).replace("compensate = { run = \"echo undo-a >> trace\" }\n", "");
        std::fs::write(place.path().join("leaf.toml"), leaf_text).expect("leaf");
        if depth == 2 {
            let mid = wrapper("mid", wrap, "leaf.toml")
                .replace("[steps.deploy]\n", "[steps.deploy]\non-failure = \"continue\"\n");
            std::fs::write(place.path().join("mid.toml"), mid).expect("mid");
        }
        let fail = if matches!(unit, Unit::Each3) { "h3" } else { "h2" };
        // The failing element fails once only: a second attempt would succeed.
        let script = format!(
            "echo \"x $1\" >> trace\nif [ \"$1\" = {fail} ] && [ ! -e failed ]; then touch failed; exit 1; fi\n"
        );
        std::fs::write(place.path().join("unit.sh"), script).expect("unit.sh");
        let out = place.run(&["--yes"], &[]);
        ok(&out, 1);
        let run = place.latest_run();
        let before = place.read("trace");
        assert!(!before.contains("after"), "{unit:?} {wrap:?} depth {depth}: {before}");
        let out = place.cmd(&["resume", &run, "--yes"], &[]);
        let after = place.read("trace");
        assert!(
            !after.contains("after") && after.matches(&format!("x {fail}")).count() == 1,
            "{unit:?} {wrap:?} depth {depth}: resume re-ran past the failure: {after}\n{}{}",
            out.stdout,
            out.stderr
        );
        assert_ne!(out.code, 0, "{unit:?} {wrap:?} depth {depth}: the run stays failed");
    }
}

/// F3b: the failed unit is a for-each include instance itself (`m/deploy[us]`), one level
/// down: `resume` is refused.
#[test]
fn a_failed_for_each_include_instance_one_level_down_is_undone_not_resumed() {
    let place = Scratch::new("[runbook]\nname = \"top\"\n[steps.m]\nrunbook = { file = \"mid.toml\" }\n");
    let leaf = "[runbook]\nname = \"leaf\"\n[params.region]\ntype = \"string\"\n\
                [steps.x]\nidempotent = true\nrun = \"sh unit.sh {{ params.region }} $PPID\"\n";
    let mid = "[runbook]\nname = \"mid\"\n[params.regions]\ntype = \"list\"\ndefault = [\"eu\", \"us\"]\n\
               [steps.pre]\nrun = \"echo pre >> trace\"\ncompensate = { run = \"echo undo-pre >> trace\" }\n\
               [steps.deploy]\nneeds = [\"pre\"]\nfor-each = \"regions\"\n\
               runbook = { file = \"leaf.toml\", params = { region = \"{{ item }}\" } }\n\
               [steps.after]\nneeds = [\"deploy\"]\nrun = \"echo after >> trace\"\n";
    std::fs::write(place.path().join("leaf.toml"), leaf).expect("leaf");
    std::fs::write(place.path().join("mid.toml"), mid).expect("mid");
    let script = unit_script(&place, "us", "m/deploy[us]").replace("= h1 ]", "= eu ]");
    std::fs::write(place.path().join("unit.sh"), script).expect("unit.sh");
    assert_ne!(place.run(&["--yes"], &[]).code, 0);
    assert!(place.path().join("killed").exists());
    let run = place.latest_run();
    let out = place.cmd(&["resume", &run, "--yes"], &[]);
    ok(&out, 4);
    assert!(
        out.stderr.contains("(the runbook included by m was undoing itself); it cannot go on"),
        "{}",
        out.stderr
    );
    let out = place.cmd(&["compensate", &run, "--yes"], &[]);
    let trace = place.read("trace");
    assert_eq!(trace.matches("undo-pre").count(), 1, "{trace}\n{}{}", out.stdout, out.stderr);
    assert!(!trace.contains("after"), "{trace}");
}

/// F6: an include (plain, or a for-each instance) left in doubt by SIGKILL after a nested
/// step with a `compensate` succeeded: `compensate` undoes that nested step, then the
/// steps before the include, most recent first, once each (a second `compensate` does
/// nothing more).
#[test]
fn compensate_undoes_the_completed_nested_steps_of_an_include_left_in_doubt() {
    for wrap in [Wrap::Plain, Wrap::Each] {
        let place = Scratch::new(&wrapper("top", wrap, "leaf.toml"));
        let leaf = "[runbook]\nname = \"leaf\"\n[params.region]\ntype = \"string\"\ndefault = \"r\"\n\
                    [steps.a]\nrun = \"echo a >> trace\"\ncompensate = { run = \"echo undo-a >> trace\" }\n\
                    [steps.slow]\nneeds = [\"a\"]\nrun = \"echo slow >> trace; kill -9 $PPID; sleep 5\"\n";
        std::fs::write(place.path().join("leaf.toml"), leaf).expect("leaf");
        assert_ne!(place.run(&["--yes"], &[]).code, 0);
        let run = place.latest_run();
        let out = place.cmd(&["compensate", &run, "--yes"], &[]);
        ok(&out, 1);
        let again = place.cmd(&["compensate", &run, "--yes"], &[]);
        let undo: Vec<String> =
            place.read("trace").lines().filter(|l| l.starts_with("undo")).map(str::to_string).collect();
        assert_eq!(undo, ["undo-a", "undo-top"], "{wrap:?}: {}{}{}", out.stdout, out.stderr, again.stderr);
        let inc = if matches!(wrap, Wrap::Plain) { "deploy" } else { "deploy[eu]" };
        assert!(
            out.stderr.contains(&format!("left as they are: {inc}/slow\n")),
            "the include itself is undone, not left: {}",
            out.stderr
        );
    }
}

/// F7: an include that failed and stopped (`on-failure = "stop"` inside and on it) leaves
/// its succeeded nested `pre`; `compensate` does not undo it and says so, naming it (it
/// said "no succeeded step with a `compensate` is left", which was false).
#[test]
fn compensate_names_the_succeeded_steps_left_inside_an_include_that_stopped() {
    let place = Scratch::new(
        "[runbook]\nname = \"w\"\n[params.regions]\ntype = \"list\"\ndefault = [\"eu\"]\n\
         [steps.deploy]\nfor-each = \"regions\"\non-failure = \"stop\"\n\
         runbook = { file = \"child.toml\", params = { region = \"{{ item }}\" } }\n",
    );
    let child = "[runbook]\nname = \"c\"\n[params.region]\ntype = \"string\"\n\
                 [steps.pre]\nrun = \"echo pre >> trace\"\ncompensate = { run = \"echo undo-pre >> trace\" }\n\
                 [steps.bad]\nneeds = [\"pre\"]\non-failure = \"stop\"\nrun = \"exit 1\"\n";
    std::fs::write(place.path().join("child.toml"), child).expect("child");
    ok(&place.run(&["--yes"], &[]), 1);
    let run = place.latest_run();
    let out = place.cmd(&["compensate", &run, "--yes"], &[]);
    ok(&out, 0);
    assert!(!out.stderr.contains("no succeeded step with a `compensate` is left"), "{}", out.stderr);
    insta::assert_snapshot!(out.stderr.replace(&run, "RUN"));
}
