//! Issue 11, second round (red team F1, F11): a decision counts only if it is valid against
//! the rules journaled with its request, judged by one pure function (the fold) that the live
//! engine, `resume`, `show`, `report` and `audit verify` share. Correctly chained records
//! written past the CLI (raw SQL, as anyone who can write the store) never make an approval
//! pass; `audit verify` names them; valid decisions still settle the step.

use std::process::Command;

use runbook_core::journal::{Record, RunEvent};

use crate::support::{Output, Scratch, ok};

const GATE: &str = r#"[runbook]
name = "gate"

[steps.sign_off]
approval = { prompt = "Ship?", approvers = ["alice", "bob", "carol"], min-approvals = 2 }

[steps.deploy]
needs = ["sign_off"]
run = "echo deployed"
"#;

fn sqlite(state: &str, sql: &str) {
    let out = Command::new("sqlite3").arg(state).arg(sql).output().expect("sqlite3");
    assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

fn records(scratch: &Scratch, run: &str) -> Vec<Record> {
    scratch.audit(run).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Append one correctly chained record with raw SQL (what any writer of the store can do),
/// moving the run's head with it.
fn forge(scratch: &Scratch, run: &str, event: RunEvent) -> u64 {
    let last = records(scratch, run).pop().expect("a journal");
    let seq = last.seq + 1;
    let r = Record::new(run, seq, "2026-12-06T06:00:00.000Z", event, &last.hash);
    let body = serde_json::to_string(&r.event).expect("json").replace('\'', "''");
    let step = r.event.step().map_or("NULL".to_string(), |s| format!("'{s}'"));
    sqlite(
        &scratch.state(),
        &format!(
            "INSERT INTO events (run_id, seq, ts, kind, step, body, prev_hash, hash) VALUES \
             ('{run}', {seq}, '{}', '{}', {step}, '{body}', '{}', '{}'); \
             UPDATE runs SET last_seq = {seq}, last_hash = '{}' WHERE run_id = '{run}';",
            r.ts,
            r.event.kind(),
            r.prev_hash,
            r.hash,
            r.hash
        ),
    );
    seq
}

fn granted(step: &str, who: &str) -> RunEvent {
    RunEvent::ApprovalGranted {
        step: step.into(),
        operator: who.into(),
        reason: String::new(),
        inputs: Default::default(),
    }
}

fn requested(approvers: &[&str], min: u32, allow_self: bool, by: &str) -> RunEvent {
    RunEvent::ApprovalRequested {
        step: "sign_off".into(),
        prompt: "Ship?".into(),
        approvers: approvers.iter().map(|a| a.to_string()).collect(),
        min_approvals: min,
        allow_self_approval: allow_self,
        requested_by: by.into(),
        inputs: Default::default(),
        deadline_ms: None,
        takes: None,
    }
}

fn deployed(scratch: &Scratch, run: &str) -> bool {
    records(scratch, run)
        .iter()
        .any(|r| matches!(&r.event, RunEvent::StepStarted { step, .. } if step == "deploy"))
}

/// A small deterministic generator: names that are not approvers, and spellings of one.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn stranger(&mut self) -> String {
        let letters = b"abcdefghijklmnopqrstuvwxyz";
        let len = 3 + (self.next() % 8) as usize;
        let name: String = (0..len).map(|_| letters[(self.next() % 26) as usize] as char).collect();
        // Never an approver's name, whatever was drawn.
        format!("x{name}")
    }
    fn spelling(&mut self, name: &str) -> String {
        let mut out: String = name
            .chars()
            .map(|c| if self.next().is_multiple_of(2) { c.to_ascii_uppercase() } else { c })
            .collect();
        if self.next().is_multiple_of(2) {
            out = format!("  {out}\t");
        }
        out
    }
}

/// Each forgery the red team tried, and generated variations of them.
fn forgeries(g: &mut Gen) -> Vec<(String, Vec<RunEvent>, bool)> {
    let stranger = g.stranger();
    let alice = g.spelling("alice");
    let bob = g.spelling("bob");
    vec![
        // (what, records, named by verify)
        (
            format!("granted by {stranger}"),
            vec![granted("sign_off", &stranger), granted("sign_off", "bob")],
            true,
        ),
        (
            format!("self-approval by `{alice}`"),
            vec![granted("sign_off", &alice), granted("sign_off", "bob")],
            true,
        ),
        (format!("bob twice as `{bob}`"), vec![granted("sign_off", "bob"), granted("sign_off", &bob)], true),
        (
            "step_succeeded without decisions".into(),
            vec![RunEvent::StepSucceeded {
                step: "sign_off".into(),
                attempt: 1,
                outputs: Default::default(),
            }],
            true,
        ),
        (
            "step_skipped of a pending approval".into(),
            vec![RunEvent::StepSkipped { step: "sign_off".into(), reason: "forged".into() }],
            false,
        ),
        (
            format!("new request naming {stranger}"),
            vec![requested(&[&stranger], 1, false, "alice"), granted("sign_off", &stranger)],
            true,
        ),
        (
            "new request allowing self-approval".into(),
            vec![requested(&["alice", "bob", "carol"], 1, true, "nobody"), granted("sign_off", "alice")],
            true,
        ),
        (
            format!("rejected by {stranger}"),
            vec![RunEvent::ApprovalRejected {
                step: "sign_off".into(),
                operator: stranger.clone(),
                reason: "no".into(),
            }],
            true,
        ),
    ]
}

fn code(out: &Output) -> i32 {
    out.code
}

#[test]
fn forged_decisions_never_make_an_approval_pass_and_verify_names_them() {
    let mut g = Gen(0x5eed_0611);
    let trials: usize =
        std::env::var("RUNBOOK_APPROVAL_FORGERY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    for round in 0..trials {
        for (i, (what, events, named)) in forgeries(&mut g).into_iter().enumerate() {
            let scratch = Scratch::new(GATE);
            ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]), 4);
            let run = scratch.latest_run();
            let mut seqs = Vec::new();
            for e in events {
                seqs.push(forge(&scratch, &run, e));
            }
            let verify = scratch.cmd(&["audit", "verify", &run], &[]);
            if named {
                assert_eq!(code(&verify), 4, "{what}: verify passed: {}{}", verify.stdout, verify.stderr);
                assert!(verify.stdout.contains("does not count"), "{what}: {}", verify.stdout);
            }
            // Resumed by someone else: the forged records do not count, nothing deploys.
            let resumed = scratch.cmd(&["resume", &run, "--yes", "--as", "dave"], &[]);
            assert!(!deployed(&scratch, &run), "{what}: deploy ran: {}{}", resumed.stdout, resumed.stderr);
            let show = scratch.cmd(&["show", &run], &[]);
            assert!(!show.stdout.contains("2 of 2"), "{what}: show counts it: {}", show.stdout);
            // Valid decisions still settle the step (one round in three, to keep it short).
            if (round + i) % 3 == 0 {
                let bob = scratch.cmd(&["approve", &run, "sign_off", "--as", "bob"], &[]);
                let carol = scratch.cmd(&["approve", &run, "sign_off", "--as", "carol"], &[]);
                if code(&bob) == 0 && code(&carol) == 0 {
                    ok(&scratch.cmd(&["resume", &run, "--yes", "--as", "dave"], &[]), 0);
                    assert!(deployed(&scratch, &run), "{what}: valid approvals did not settle it");
                }
            }
        }
    }
}

/// F11: self-approval is judged against who started the run, not who resumed it.
#[test]
fn the_operator_who_started_a_run_cannot_approve_it_after_someone_else_resumed_it() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "rq"

[steps.pre]
run = "test -f fixed"
on-failure = "stop"

[steps.sign_off]
needs = ["pre"]
approval = { prompt = "Ship?", approvers = ["alice", "bob"] }

[steps.deploy]
needs = ["sign_off"]
run = "echo deployed"
"#,
    );
    let first = scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "alice")]);
    assert_eq!(first.code, 1, "{}{}", first.stdout, first.stderr);
    let run = scratch.latest_run();
    std::fs::write(scratch.path().join("fixed"), "").expect("fix");
    ok(&scratch.cmd(&["resume", &run, "--yes", "--as", "bob"], &[]), 4);
    let own = scratch.cmd(&["approve", &run, "sign_off", "--as", "alice"], &[]);
    assert_eq!(own.code, 3, "alice approved her own run: {}{}", own.stdout, own.stderr);
    ok(&scratch.cmd(&["approve", &run, "sign_off", "--as", "bob"], &[]), 0);
}

/// F3 and the `bob\u{200b}` finding: a name holding a character nobody sees (controls,
/// zero-width and bidirectional formatting, combining marks, other spaces than ASCII's) is
/// not an identity: no approval by it counts, through the CLI or a forged record. Generated
/// names: every such character at every position of an approver's name.
#[test]
fn names_with_invisible_characters_never_approve() {
    let hidden = [
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{2060}',
        '\u{feff}',
        '\u{202e}',
        '\u{202a}',
        '\u{2066}',
        '\u{061c}',
        '\u{00ad}',
        '\u{034f}',
        '\u{fe0f}',
        '\u{0301}',
        '\u{0308}',
        '\u{20dd}',
        '\u{00a0}',
        '\u{2003}',
        '\u{3000}',
        '\u{0007}',
        '\u{001b}',
        '\u{007f}',
        '\u{0085}',
        '\u{e0041}',
    ];
    let scratch = Scratch::new(&GATE.replace("min-approvals = 2", "min-approvals = 3"));
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "dave")]), 4);
    let run = scratch.latest_run();
    ok(&scratch.cmd(&["approve", &run, "sign_off", "--as", "bob"], &[]), 0);
    let mut tried = 0;
    for c in hidden {
        for at in 0..=3 {
            let mut name: Vec<char> = "bob".chars().collect();
            name.insert(at, c);
            let name: String = name.into_iter().collect();
            if name.trim() == "bob" {
                continue; // NEL and the like at the ends are trimmed by no one: still refused below
            }
            tried += 1;
            let out = scratch.cmd(&["approve", &run, "sign_off", "--as", &name], &[]);
            assert_eq!(out.code, 2, "{name:?} approved: {}{}", out.stdout, out.stderr);
            assert!(out.stderr.contains("not a valid identity"), "{name:?}: {}", out.stderr);
            forge(&scratch, &run, granted("sign_off", &name));
        }
    }
    assert!(tried >= 80, "{tried}");
    // Three approvals needed, one counted: the forged ones are named, none counts.
    let verify = scratch.cmd(&["audit", "verify", &run], &[]);
    assert_eq!(verify.code, 4, "{}", verify.stdout);
    assert!(verify.stdout.matches("not a valid identity").count() >= tried, "{}", verify.stdout);
    // `show` presents nothing of a run with records that do not count (exit 4).
    let show = scratch.cmd(&["show", &run], &[]);
    assert_eq!(show.code, 4, "{}", show.stdout);
    assert!(show.stdout.is_empty(), "{}", show.stdout);
    // Names a reader can tell apart remain people of their own.
    ok(&scratch.cmd(&["approve", &run, "sign_off", "--as", "carol"], &[]), 0);
    ok(&scratch.cmd(&["approve", &run, "sign_off", "--as", " ALICE "], &[]), 0);
}

/// Minor findings: a name with control characters or escape sequences is refused before
/// anything is written, and text from the journal reaches a terminal with its control
/// characters escaped (a reason cannot rewrite the screen).
#[test]
fn control_characters_never_reach_the_terminal_raw() {
    let scratch = Scratch::new(GATE);
    let forged = scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "mallory\r\x1b[2Kbob")]);
    assert_eq!(forged.code, 2, "{}{}", forged.stdout, forged.stderr);
    assert!(forged.stderr.contains("not a valid identity"), "{}", forged.stderr);
    assert!(!forged.stderr.contains('\x1b'), "{:?}", forged.stderr);
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "dave")]), 4);
    let run = scratch.latest_run();
    ok(
        &scratch
            .cmd(&["reject", &run, "sign_off", "--as", "bob", "--reason", "no\r\x1b[2Kapproved by all"], &[]),
        0,
    );
    for args in [vec!["show", run.as_str()], vec!["runs"]] {
        let out = scratch.cmd(&args, &[]);
        assert!(!out.stdout.contains('\x1b') && !out.stdout.contains('\r'), "{args:?}: {:?}", out.stdout);
    }
    let show = scratch.cmd(&["show", &run], &[]);
    assert!(show.stdout.contains("\\u{1b}[2K"), "{}", show.stdout);
}

/// Red team adv19a-7: with `min-approvals = 2`, the second approver's inputs replaced the
/// first's (`target=prod-dlq`, `batch=100000` after bob approved `staging-dlq` and the
/// default batch), so what ran had one approver. The first approval fixes the inputs, given
/// or defaulted; a later approval approves them as given: a different or added value is
/// refused by `approve` (the value never echoed) and, written past it, counts for nothing.
#[test]
fn a_later_approval_cannot_change_the_inputs_the_first_approval_fixed() {
    let scratch = Scratch::new(
        r#"[runbook]
name = "purge"

[steps.gate]
approval = { prompt = "Purge the queue?", approvers = ["bob", "carol", "dave"], min-approvals = 2, inputs = { target = { type = "string" }, batch = { type = "integer", default = 10 } } }

[steps.purge]
needs = ["gate"]
run = "echo purging {{ steps.gate.outputs.target }} in batches of {{ steps.gate.outputs.batch }} >> effects"
"#,
    );
    ok(&scratch.run(&["--yes"], &[("RUNBOOK_OPERATOR", "ops")]), 4);
    let run = scratch.latest_run();
    let approve = |who: &str, inputs: &[&str]| {
        let mut args = vec!["approve", run.as_str(), "gate", "--as", who];
        for i in inputs {
            args.extend(["--input", i]);
        }
        scratch.cmd(&args, &[])
    };
    ok(&approve("bob", &["target=staging-dlq"]), 0);
    let before = records(&scratch, &run).len();
    for (inputs, named) in [
        (&["target=prod-dlq"][..], "`target`"),
        (&["batch=100000"][..], "`batch`"),
        (&["target=staging-dlq", "batch=5"][..], "`batch`"),
    ] {
        let out = approve("carol", inputs);
        assert_eq!(code(&out), 3, "{inputs:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("fixed the inputs") && out.stderr.contains(named), "{}", out.stderr);
        assert!(
            !out.stderr.contains("prod-dlq") && !out.stderr.contains("100000"),
            "a value echoed: {}",
            out.stderr
        );
        assert_eq!(records(&scratch, &run).len(), before, "{inputs:?}: something was journaled");
    }
    // Written past `approve`: carol's changed approval counts for nothing, and says so.
    forge(
        &scratch,
        &run,
        RunEvent::ApprovalGranted {
            step: "gate".into(),
            operator: "carol".into(),
            reason: String::new(),
            inputs: [("target".to_string(), serde_json::json!("prod-dlq"))].into_iter().collect(),
        },
    );
    let verify = scratch.cmd(&["audit", "verify", &run], &[]);
    assert!(
        verify.stdout.contains("fixed the inputs") || verify.stderr.contains("fixed the inputs"),
        "{}{}",
        verify.stdout,
        verify.stderr
    );
    ok(&scratch.cmd(&["resume", &run, "--yes"], &[]), 4);
    assert!(!deployed_step(&scratch, &run, "purge"), "the purge ran on one approval");
    // The same values, or none: the second approval counts, and what runs is what both approved.
    ok(&approve("carol", &["target=staging-dlq"]), 0);
    ok(&scratch.cmd(&["resume", &run, "--yes"], &[]), 0);
    assert_eq!(scratch.read("effects"), "purging staging-dlq in batches of 10\n");
}

fn deployed_step(scratch: &Scratch, run: &str, name: &str) -> bool {
    records(scratch, run)
        .iter()
        .any(|r| matches!(&r.event, RunEvent::StepStarted { step, .. } if step == name))
}

/// Red team adv19b-8: `check` counted approvers by spelling, so `["bob", "BOB", "ｂｏｂ"]`
/// with `min-approvals = 2` passed and the gate could never be met (the engine counts one
/// person); a name that cannot be an identity passed too. Both are refused before anything
/// runs, with where and why.
#[test]
fn check_counts_approvers_as_people_and_refuses_names_that_can_never_approve() {
    for (name, approvers) in [
        ("approvers_one_person", r#"["bob", "BOB", "ｂｏｂ"]"#),
        ("approvers_never_an_identity", "[\"bob\", \"b\\u200Bob\", \"eve\"]"),
    ] {
        let scratch = Scratch::new(&format!(
            "[runbook]\nname = \"gate\"\n\n[steps.sign_off]\napproval = {{ prompt = \"Ship?\", approvers = {approvers}, min-approvals = 2 }}\n\n[steps.deploy]\nneeds = [\"sign_off\"]\nrun = \"echo deployed >> effects\"\n"
        ));
        let out = crate::support::run_in(scratch.path(), &["check", "r.toml"]);
        insta::assert_snapshot!(name, format!("exit {}\n{}", out.code, out.stderr));
        assert_eq!(out.code, 3, "{}", out.stderr);
        let ran = scratch.run(&["--yes"], &[]);
        assert_eq!(ran.code, 3, "{}", ran.stderr);
        assert!(!scratch.path().join("effects").exists());
    }
    // Three people, two needed: fine.
    let scratch = Scratch::new(
        "[runbook]\nname = \"gate\"\n\n[steps.sign_off]\napproval = { prompt = \"Ship?\", approvers = [\"bob\", \"BOB\", \"eve\"], min-approvals = 2 }\n",
    );
    ok(&crate::support::run_in(scratch.path(), &["check", "r.toml"]), 0);
}

/// Red team adv20-4: `ben` and `ben` with a combining mark (U+0E47, a Thai mark drawn as a
/// speck), a format character or a skin-tone square were two approvers to `check` and got
/// two console tokens: a reader sees one name twice. Such a decoration is refused wherever a
/// name becomes an identity (`check`'s RB033, `serve token add`); marks on the letters of
/// their own script (Devanagari, Thai names) still spell names.
#[test]
fn a_name_decorated_with_a_mark_or_a_format_character_is_not_an_identity() {
    let decorated = [
        "ben\u{0E47}",
        "ben\u{302A}",
        "ben\u{05C1}",
        "ben\u{0610}",
        "ben\u{1CD0}",
        "ben\u{0F71}",
        "ben\u{0CBC}",
        "ben\u{093C}",
        "ben\u{20DD}",
        "\u{0301}ben",
        "ben\u{FFFC}",
        "ben\u{1F3FB}",
        "ben\u{2061}",
        "be\u{00AD}n",
        "ben\u{E0001}",
        // adv21-9: on a non-ASCII Latin letter, and a spacing mark (Mc).
        "jos\u{E9}\u{0E47}",
        "jos\u{E9}\u{0E48}",
        "be\u{F1}\u{0E47}",
        "ben\u{0903}",
    ];
    for name in decorated {
        let scratch = Scratch::new(&format!(
            "[runbook]\nname = \"gate\"\n\n[steps.sign_off]\napproval = {{ prompt = \"Ship?\", approvers = [\"ben\", \"{}\"], min-approvals = 2 }}\n",
            name.chars().map(|c| format!("\\U{:08X}", u32::from(c))).collect::<String>()
        ));
        let out = crate::support::run_in(scratch.path(), &["check", "r.toml"]);
        assert_eq!(out.code, 3, "{}: {}", name.escape_unicode(), out.stderr);
        assert!(out.stderr.contains("error[RB033]"), "{}: {}", name.escape_unicode(), out.stderr);
        let token = crate::support::run_in(
            scratch.path(),
            &["serve", "token", "add", name, "--state", &scratch.state()],
        );
        assert_ne!(token.code, 0, "a token for {}: {}", name.escape_unicode(), token.stdout);
    }
    // Names of other scripts, marks and all: identities, tokens.
    for name in ["सुरेश", "สุดา", "שלום", "José"] {
        let scratch = Scratch::new(&format!(
            "[runbook]\nname = \"gate\"\n\n[steps.sign_off]\napproval = {{ prompt = \"Ship?\", approvers = [\"ben\", \"{name}\"], min-approvals = 2 }}\n"
        ));
        ok(&crate::support::run_in(scratch.path(), &["check", "r.toml"]), 0);
        let token = crate::support::run_in(
            scratch.path(),
            &["serve", "token", "add", name, "--state", &scratch.state()],
        );
        assert_eq!(token.code, 0, "{name}: {}", token.stderr);
    }
}
