//! One predicate for every identity (red team adv18b F4): `--as` and `RUNBOOK_OPERATOR`
//! refuse what `shown::unnameable` refuses in a `for-each` element,
//! unassigned and private-use code points included (`bob` and `bob<U+E000>` look alike yet
//! would count as two approvers), and the refusal never prints the character raw.

use crate::support::{Scratch, ok};

/// Unassigned (`Cn`, noncharacters included) and private-use (`Co`) code points.
const CORPUS: [char; 8] =
    ['\u{0378}', '\u{0380}', '\u{FDD0}', '\u{FFFF}', '\u{2FFFF}', '\u{E000}', '\u{F0000}', '\u{10FFFD}'];

const GATE: &str = "[runbook]\nname = \"u\"\n[steps.g]\napproval = { prompt = \"ok?\" }\n";

#[test]
fn unassigned_and_private_use_identities_are_refused_everywhere() {
    let s = Scratch::new(GATE);
    let out = s.run(&["--yes", "--as", "alice"], &[]);
    assert_ne!(out.code, 0, "the run waits: {}", out.stderr);
    let run = s.latest_run();
    for c in CORPUS {
        let name = format!("bob{c}x");
        let out = s.cmd(&["approve", &run, "g", "--as", &name, "--reason", "r"], &[]);
        ok(&out, 2);
        assert!(out.stderr.contains("is not a valid identity"), "{c:?}: {}", out.stderr);
        assert!(!out.stdout.contains(c) && !out.stderr.contains(c), "{c:?} printed raw: {}", out.stderr);
        let out = s.cmd(&["approve", &run, "g", "--reason", "r"], &[("RUNBOOK_OPERATOR", &name)]);
        ok(&out, 2);
        assert!(!out.stderr.contains(c), "{c:?} printed raw: {}", out.stderr);
        let out = s.cmd(&["run", "r.toml", "--yes", "--as", &name], &[]);
        ok(&out, 2);
    }
    let show = s.cmd(&["show", &run], &[]);
    assert!(!show.stdout.contains("bob"), "no approval was recorded: {}", show.stdout);
}
